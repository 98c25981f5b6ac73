/* libnetext, filter-data provider: flows, verdicts, settings and reports (filter.h).
 *
 * Trust: as extension.c. Frames come from netextd and are decoded strictly; the author's
 * calls (resume twice, resume a flow the daemon resolved, a handle from another provider)
 * are checked against the provider's list of waiting flows before a handle is used. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netext/filter.h>

#include "lib-internal.h"
#include "util.h"

struct ne_flow {
	ne_flow *next;       /* in the provider's waiting list */
	uint64_t id;
	ne_flow_direction direction;
	int family, protocol;
	uint8_t local[16], remote[16];
	uint16_t local_port, remote_port;
	int32_t pid, ppid;
	int64_t uid, gid;
	uint64_t start_time;
	char *hostname, *executable, *cmdline, *cgroup; /* NULL when unknown; in strings[] */
	bool paused;
	char strings[];
};

struct settings_wait {
	struct settings_wait *next;
	uint64_t id;
	ne_filter_settings_done done;
	void *userdata;
};

struct nelib_filter {
	ne_flow *waiting;            /* paused, or handed out without a verdict yet */
	struct settings_wait *settings;
	uint64_t next_settings_id;
};

struct nelib_filter *nelib_filter_new(void)
{
	return calloc(1, sizeof(struct nelib_filter));
}

void nelib_filter_free(struct nelib_filter *f)
{
	ne_flow *fl;
	struct settings_wait *w;

	if (!f)
		return;
	while ((fl = f->waiting)) {
		f->waiting = fl->next;
		free(fl);
	}
	while ((w = f->settings)) {
		f->settings = w->next;
		free(w);
	}
	free(f);
}

/* --- flows ------------------------------------------------------------------------------- */

static char *put_string(char **pos, struct ne_view v)
{
	char *s = *pos;

	if (!v.len)
		return NULL;
	memcpy(s, v.p, v.len);
	s[v.len] = '\0';
	*pos += v.len + 1;
	return s;
}

ne_flow *nelib_flow_new(const struct ne_flow_record *r)
{
	size_t extra = r->hostname.len + r->executable.len + r->cmdline.len + r->cgroup.len + 4;
	ne_flow *f = calloc(1, sizeof(*f) + extra);
	char *pos;

	if (!f)
		return NULL;
	f->id = r->id;
	f->direction = (ne_flow_direction)r->direction;
	f->family = r->family == 6 ? AF_INET6 : AF_INET;
	f->protocol = r->protocol;
	memcpy(f->local, r->local_addr, 16);
	memcpy(f->remote, r->remote_addr, 16);
	f->local_port = r->local_port;
	f->remote_port = r->remote_port;
	f->pid = r->pid;
	f->ppid = r->ppid;
	f->uid = r->has_ids ? (int64_t)r->uid : -1;
	f->gid = r->has_ids ? (int64_t)r->gid : -1;
	f->start_time = r->start_time;
	pos = f->strings;
	f->hostname = put_string(&pos, r->hostname);
	f->executable = put_string(&pos, r->executable);
	f->cmdline = put_string(&pos, r->cmdline);
	f->cgroup = put_string(&pos, r->cgroup);
	return f;
}

static void waiting_add(struct nelib_filter *st, ne_flow *f)
{
	f->next = st->waiting;
	st->waiting = f;
}

/* Unlinks f if it is waiting; false when it is not (a stale or foreign handle). */
static bool waiting_remove(struct nelib_filter *st, const ne_flow *f)
{
	ne_flow **pp;

	for (pp = &st->waiting; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			return true;
		}
	return false;
}

static bool waiting_has(const struct nelib_filter *st, const ne_flow *f)
{
	const ne_flow *w;

	for (w = st->waiting; w; w = w->next)
		if (w == f)
			return true;
	return false;
}

static ne_flow *waiting_find(struct nelib_filter *st, uint64_t id)
{
	ne_flow *f;

	for (f = st->waiting; f; f = f->next)
		if (f->id == id)
			return f;
	return NULL;
}

static int send_verdict(ne_provider *pv, uint64_t flow_id, const ne_filter_verdict *v)
{
	ne_extension *ext = ne_provider_extension(pv);
	struct ne_msg_flow_verdict m = {
		.provider = nelib_provider_handle(pv),
		.kind = (uint8_t)v->kind,
		.flags = (uint8_t)((v->filter_inbound ? 1 : 0) | (v->filter_outbound ? 2 : 0)),
		.peek_inbound = v->peek_inbound_bytes,
		.peek_outbound = v->peek_outbound_bytes,
	};
	struct ne_wbuf b = nelib_wbuf(ext);

	return nelib_send(ext, ne_msg_flow_verdict_encode(&b, flow_id, &m));
}

/* A verdict for a new flow, returned by the author: allow and drop free the flow, pause and
 * "later" keep it waiting. Anything else (a filter-data verdict built by hand, an unknown
 * kind) is passed to the daemon, which refuses it with the configuration's fail policy and
 * logs why, rather than the library guessing. */
static int new_flow_verdict(ne_provider *pv, struct nelib_filter *st, ne_flow *f, ne_filter_verdict v)
{
	int r = 0;

	switch (v.kind) {
	case NE_VERDICT_NONE:
		waiting_add(st, f);
		return 0;
	case NE_VERDICT_PAUSE:
		f->paused = true;
		waiting_add(st, f);
		return send_verdict(pv, f->id, &v);
	default:
		if ((unsigned)v.kind > NE_VERDICT_FILTER_DATA)
			v.kind = NE_VERDICT_FILTER_DATA;
		r = send_verdict(pv, f->id, &v);
		free(f);
		return r;
	}
}

static int on_flow_new(ne_extension *ext, const uint8_t *p, size_t len)
{
	const struct ne_filter_ops *ops;
	struct ne_msg_flow_new m;
	struct nelib_filter *st;
	ne_provider *pv;
	void *ud;
	ne_flow *f;

	if (ne_msg_flow_new_decode(p, len, &m) < 0)
		return -EBADMSG;
	pv = nelib_find_provider(ext, m.provider);
	if (!pv)
		return 0; /* stopped meanwhile: the daemon's deadline answers for it */
	if (ne_provider_get_type(pv) != NE_PROVIDER_FILTER_DATA)
		return -EPROTO;
	st = nelib_provider_filter(pv, &ops, &ud);
	if (!st)
		return 0;
	if (waiting_find(st, m.flow.id))
		return -EPROTO;
	f = nelib_flow_new(&m.flow);
	if (!f)
		return 0; /* out of memory: the deadline applies the fail policy */
	if (!ops->handle_new_flow)
		return new_flow_verdict(pv, st, f, ne_filter_verdict_allow());
	return new_flow_verdict(pv, st, f, ops->handle_new_flow(pv, f, ud));
}

static int on_flow_report(ne_extension *ext, const uint8_t *p, size_t len)
{
	char detail[NE_WIRE_STR_MAX + 1];
	const struct ne_filter_ops *ops;
	struct ne_msg_flow_report m;
	struct ne_filter_report rep = { .size = sizeof(rep) };
	struct nelib_filter *st;
	ne_flow *f, *waiting = NULL;
	ne_provider *pv;
	void *ud;

	if (ne_msg_flow_report_decode(p, len, &m) < 0)
		return -EBADMSG;
	pv = nelib_find_provider(ext, m.provider);
	if (!pv)
		return 0;
	if (ne_provider_get_type(pv) != NE_PROVIDER_FILTER_DATA)
		return -EPROTO;
	st = nelib_provider_filter(pv, &ops, &ud);
	if (!st)
		return 0;
	if (m.event == NE_FILTER_REPORT_RESOLVED && (waiting = waiting_find(st, m.flow.id)))
		waiting_remove(st, waiting);
	f = waiting ? waiting : nelib_flow_new(&m.flow);
	if (!f)
		return 0;
	memcpy(detail, m.detail.p ? m.detail.p : "", m.detail.len);
	detail[m.detail.len] = '\0';
	rep.event = (ne_filter_report_event)m.event;
	rep.flow = f;
	rep.verdict = (ne_verdict_kind)m.verdict;
	rep.bytes_inbound = m.bytes_in;
	rep.bytes_outbound = m.bytes_out;
	rep.packets_inbound = m.packets_in;
	rep.packets_outbound = m.packets_out;
	rep.detail = m.detail.len ? detail : NULL;
	if (ops->handle_report)
		ops->handle_report(pv, &rep, ud);
	free(f);
	return 0;
}

/* --- settings ------------------------------------------------------------------------------ */

static struct ne_view view_of(const char *s)
{
	return (struct ne_view){ s ? s : "", s ? strlen(s) : 0 };
}

static int on_result(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	char text[NE_WIRE_STR_MAX + 1];
	const struct ne_filter_ops *ops;
	struct settings_wait **pp, *w;
	struct ne_msg_result m;
	struct nelib_filter *st;
	ne_provider *pv;
	void *ud;

	if (ne_msg_result_decode(p, len, &m) < 0)
		return -EBADMSG;
	/* The id carries the provider handle (ne_filter_apply_settings). */
	pv = nelib_find_provider(ext, (uint32_t)(id >> 32));
	if (!pv || !(st = nelib_provider_filter(pv, &ops, &ud)))
		return 0; /* stopped meanwhile */
	for (pp = &st->settings; *pp && (*pp)->id != id; pp = &(*pp)->next)
		;
	if (!*pp)
		return -EPROTO;
	w = *pp;
	*pp = w->next;
	memcpy(text, m.message.p ? m.message.p : "", m.message.len);
	text[m.message.len] = '\0';
	if (w->done)
		w->done(pv, m.error, m.message.len ? text : NULL, w->userdata);
	free(w);
	return 0;
}

static void rule_to_wire(const struct ne_filter_rule *r, struct ne_wire_rule *w)
{
	w->action = (uint8_t)r->action;
	w->direction = (uint8_t)r->direction;
	w->protocol = r->protocol;
	w->remote_network = view_of(r->remote_network);
	w->remote_port = r->remote_port;
	w->remote_hostname = view_of(r->remote_hostname);
	w->local_network = view_of(r->local_network);
	w->local_port = r->local_port;
	w->executable = view_of(r->executable);
	w->match_uid = r->match_uid;
	w->uid = r->uid;
	w->cgroup = view_of(r->cgroup);
}

int ne_filter_apply_settings(ne_provider *provider, const struct ne_filter_settings *settings,
			     ne_filter_settings_done done, void *userdata)
{
	struct ne_msg_filter_settings m = { 0 };
	const struct ne_filter_ops *ops;
	struct nelib_filter *st;
	struct settings_wait *w;
	struct ne_wbuf b;
	void *ud;
	size_t i;
	int r;

	if (!nelib_provider_live(provider) || !settings ||
	    settings->size < offsetof(struct ne_filter_settings, report_flags) ||
	    (settings->n_rules && !settings->rules))
		return -EINVAL;
	if (settings->n_rules > NE_FILTER_RULES_MAX)
		return -E2BIG;
	st = nelib_provider_filter(provider, &ops, &ud);
	if (!st)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	m.rules = calloc(settings->n_rules + 1, sizeof(*m.rules));
	if (!w || !m.rules) {
		free(w);
		free(m.rules);
		return -ENOMEM;
	}
	m.provider = nelib_provider_handle(provider);
	m.default_action = (uint8_t)settings->default_action;
	if (settings->size >= sizeof(struct ne_filter_settings)) {
		m.report_flags = settings->report_flags;
		m.stats_interval_ms = settings->statistics_interval_ms;
	}
	m.n_rules = (uint16_t)settings->n_rules;
	for (i = 0; i < settings->n_rules; i++)
		rule_to_wire(&settings->rules[i], &m.rules[i]);
	/* Ids carry the provider handle, so a RESULT finds its provider without a search. */
	w->id = (uint64_t)m.provider << 32 | (++st->next_settings_id & 0xffffffffu);
	w->done = done;
	w->userdata = userdata;
	b = nelib_wbuf(ne_provider_extension(provider));
	r = ne_msg_filter_settings_encode(&b, w->id, &m);
	free(m.rules);
	if (r == -EMSGSIZE)
		r = -E2BIG;
	if (r >= 0)
		r = nelib_send(ne_provider_extension(provider), r);
	if (r < 0) {
		free(w);
		return r;
	}
	w->next = st->settings;
	st->settings = w;
	return 0;
}

int nelib_filter_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	switch (h->type) {
	case NE_MSG_RESULT:
		return on_result(ext, h->id, p, len);
	case NE_MSG_FLOW_NEW:
		return on_flow_new(ext, p, len);
	case NE_MSG_FLOW_REPORT:
		return on_flow_report(ext, p, len);
	default:
		return -EPROTO;
	}
}

/* --- verdicts ------------------------------------------------------------------------------ */

int ne_filter_verdict_filter_data(bool filter_inbound, uint32_t peek_inbound_bytes,
				  bool filter_outbound, uint32_t peek_outbound_bytes,
				  ne_filter_verdict *ret)
{
	(void)filter_inbound;
	(void)peek_inbound_bytes;
	(void)filter_outbound;
	(void)peek_outbound_bytes;
	(void)ret;
	return -EOPNOTSUPP; /* netextd does not deliver flow data yet (filter.h) */
}

int ne_filter_resume_flow(ne_provider *provider, ne_flow *flow, ne_filter_verdict verdict)
{
	const struct ne_filter_ops *ops;
	struct nelib_filter *st;
	void *ud;
	int r;

	if (!nelib_provider_live(provider) || !flow)
		return -EINVAL;
	st = nelib_provider_filter(provider, &ops, &ud);
	/* By address first: a handle that was decided is freed, so it is never dereferenced
	 * before it is found among the waiting ones. */
	if (!st || !waiting_has(st, flow))
		return -ENOENT;
	switch (verdict.kind) {
	case NE_VERDICT_ALLOW:
	case NE_VERDICT_DROP:
		waiting_remove(st, flow);
		r = send_verdict(provider, flow->id, &verdict);
		free(flow);
		return r;
	case NE_VERDICT_PAUSE:
		if (flow->paused)
			return 0;
		flow->paused = true;
		return send_verdict(provider, flow->id, &verdict);
	case NE_VERDICT_FILTER_DATA:
		return -EOPNOTSUPP;
	default:
		return -EINVAL;
	}
}

ne_flow *ne_filter_waiting_flow(ne_provider *provider, uint64_t id)
{
	const struct ne_filter_ops *ops;
	struct nelib_filter *st;
	void *ud;

	if (!nelib_provider_live(provider))
		return NULL;
	st = nelib_provider_filter(provider, &ops, &ud);
	return st ? waiting_find(st, id) : NULL;
}

/* --- accessors ----------------------------------------------------------------------------- */

uint64_t ne_flow_id(const ne_flow *flow)
{
	return flow ? flow->id : 0;
}

ne_flow_direction ne_flow_get_direction(const ne_flow *flow)
{
	return flow ? flow->direction : NE_FLOW_ANY;
}

int ne_flow_family(const ne_flow *flow)
{
	return flow ? flow->family : -EINVAL;
}

int ne_flow_protocol(const ne_flow *flow)
{
	return flow ? flow->protocol : -EINVAL;
}

static int endpoint(const ne_flow *flow, const uint8_t *addr, uint16_t port,
		    struct sockaddr_storage *ret)
{
	if (!flow || !ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	if (flow->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ret;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, addr, 16);
		s6->sin6_port = htons(port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ret;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, addr, 4);
		s4->sin_port = htons(port);
	}
	return 0;
}

int ne_flow_local_endpoint(const ne_flow *flow, struct sockaddr_storage *ret)
{
	return flow ? endpoint(flow, flow->local, flow->local_port, ret) : -EINVAL;
}

int ne_flow_remote_endpoint(const ne_flow *flow, struct sockaddr_storage *ret)
{
	return flow ? endpoint(flow, flow->remote, flow->remote_port, ret) : -EINVAL;
}

const char *ne_flow_remote_hostname(const ne_flow *flow)
{
	return flow ? flow->hostname : NULL;
}

int32_t ne_flow_pid(const ne_flow *flow)
{
	return flow ? flow->pid : -1;
}

int32_t ne_flow_ppid(const ne_flow *flow)
{
	return flow ? flow->ppid : -1;
}

int64_t ne_flow_uid(const ne_flow *flow)
{
	return flow ? flow->uid : -1;
}

int64_t ne_flow_gid(const ne_flow *flow)
{
	return flow ? flow->gid : -1;
}

uint64_t ne_flow_process_start_time(const ne_flow *flow)
{
	return flow ? flow->start_time : 0;
}

const char *ne_flow_executable(const ne_flow *flow)
{
	return flow ? flow->executable : NULL;
}

const char *ne_flow_command_line(const ne_flow *flow)
{
	return flow ? flow->cmdline : NULL;
}

const char *ne_flow_cgroup(const ne_flow *flow)
{
	return flow ? flow->cgroup : NULL;
}

static const char *proto_name(int proto, char *buf, size_t size)
{
	if (proto == IPPROTO_TCP)
		return "tcp";
	if (proto == IPPROTO_UDP)
		return "udp";
	if (proto == IPPROTO_ICMP)
		return "icmp";
	if (proto == IPPROTO_ICMPV6)
		return "icmpv6";
	snprintf(buf, size, "proto-%d", proto);
	return buf;
}

static void addr_text(const ne_flow *flow, const uint8_t *addr, uint16_t port, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(flow->family, addr, a, sizeof(a));
	if (flow->family == AF_INET6)
		snprintf(buf, size, "[%s]:%u", a, port);
	else
		snprintf(buf, size, "%s:%u", a, port);
}

int ne_flow_format(const ne_flow *flow, char *buf, size_t size)
{
	char local[64], remote[64], pbuf[16], proc[700];

	if (!flow || (!buf && size))
		return -EINVAL;
	addr_text(flow, flow->local, flow->local_port, local, sizeof(local));
	addr_text(flow, flow->remote, flow->remote_port, remote, sizeof(remote));
	if (flow->pid > 0)
		snprintf(proc, sizeof(proc), "%s[%d]", flow->executable ? flow->executable : "?",
			 (int)flow->pid);
	else
		snprintf(proc, sizeof(proc), "process unknown");
	if (flow->uid >= 0)
		snprintf(proc + strlen(proc), sizeof(proc) - strlen(proc), " uid %lld",
			 (long long)flow->uid);
	return snprintf(buf, size, "%s %s %s -> %s%s%s %s", proto_name(flow->protocol, pbuf, sizeof(pbuf)),
			flow->direction == NE_FLOW_INBOUND ? "in" : "out", local,
			flow->hostname ? flow->hostname : "", flow->hostname ? "=" : "", remote, proc);
}
