/* The dns-proxy provider's daemon side (dnsprov.h, docs/dns.md).
 *
 * Trust: queries come from the engine (already parsed and attributed); frames come from the
 * provider, foreign code: they are decoded strictly (a malformed one is a protocol fault,
 * reported to ext.c), and a verdict is acted on only for a query that waits for that very
 * configuration's provider. A verdict for anything else (its deadline passed, the engine gave
 * up, another provider's query) is late, not hostile: counted and ignored. Verdict bytes and
 * targets are not interpreted here; the engine checks them (a bad one is counted). Every wait a
 * provider can cause ends at the configuration's deadline in its fail policy, and the table of
 * queries a provider holds is bounded.
 *
 * Re-entrancy: the engine may call dnsprov_query_done() from inside dnsproxy_query_verdict(),
 * so an entry is unlinked and freed (or re-filed) before the engine hears of it, and loops over
 * entries always restart from a list head. */
#include "dnsprov.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netext/dnsproxy.h>

#include "daemon.h"
#include "dnsproxy.h"
#include "list.h"
#include "log.h"
#include "procinfo.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#define ORDER_DEFAULT 100
#define TIMEOUT_MS_DEFAULT 1000
#define TIMEOUT_MS_MIN 50
#define TIMEOUT_MS_MAX 10000
#define QUERIES_MAX 8192         /* queries held for providers (waiting or forwarded) */
#define BUCKETS 8192             /* power of two */

enum pq_state {
	PQ_QUERY,     /* DNS_QUERY sent, waiting for DNS_VERDICT (deadline) */
	PQ_FORWARDED, /* forwarded by the provider's verdict; its answer goes to the provider */
	PQ_RESPONSE,  /* DNS_RESPONSE sent, waiting for DNS_RESPONSE_VERDICT (deadline) */
};

struct pcfg;

struct pq {
	struct pq *hnext;
	struct ne_list link;   /* cfg->waiting (deadline order) or cfg->forwarded */
	uint64_t id;
	enum pq_state state;
	struct pcfg *cfg;
	uint64_t deadline;     /* monotonic usec; PQ_QUERY and PQ_RESPONSE */
};

struct pcounters {
	uint64_t queries, answered, forwarded, refused, dropped, deadline, fail_policy, bad_verdicts,
		late, responses, passed, rewritten, response_dropped;
};

struct pcfg {
	struct ne_list link;        /* P->cfgs, in order: the first is the active one */
	char name[NE_WIRE_NAME_MAX + 1];
	int order;
	bool fail_open;
	unsigned timeout_ms;
	bool present, running;      /* START sent / START_DONE ok */
	struct ext *ext;
	uint32_t handle;
	bool has_settings, raw, want_responses;
	struct ne_list waiting;     /* struct pq in PQ_QUERY or PQ_RESPONSE, deadline order */
	struct ne_list forwarded;   /* struct pq in PQ_FORWARDED */
	struct pcounters n;
	bool seen;
};

struct dnsprov {
	struct daemon *d;
	struct ne_list cfgs;
	unsigned n_cfgs;
	sd_event_source *timer;
	struct pq *by_id[BUCKETS];
	unsigned n_queries;
};

static struct dnsprov *P; /* one per daemon */
static uint8_t fbuf[NE_WIRE_MAX];

static void timer_rearm(void);

/* --- the query table ------------------------------------------------------------------- */

static size_t bucket(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 51) & (BUCKETS - 1);
}

static struct pq *pq_find(uint64_t id)
{
	struct pq *q;

	for (q = P->by_id[bucket(id)]; q; q = q->hnext)
		if (q->id == id)
			return q;
	return NULL;
}

static struct pq *pq_new(struct pcfg *c, uint64_t id)
{
	struct pq *q;

	if (P->n_queries >= QUERIES_MAX || pq_find(id) || !(q = calloc(1, sizeof(*q))))
		return NULL;
	q->id = id;
	q->cfg = c;
	ne_list_init(&q->link);
	q->hnext = P->by_id[bucket(id)];
	P->by_id[bucket(id)] = q;
	P->n_queries++;
	return q;
}

static void pq_free(struct pq *q)
{
	struct pq **pp;

	for (pp = &P->by_id[bucket(q->id)]; *pp; pp = &(*pp)->hnext)
		if (*pp == q) {
			*pp = q->hnext;
			break;
		}
	ne_list_remove(&q->link);
	P->n_queries--;
	free(q);
}

/* Files q as waiting for its provider until timeout_ms from now. */
static void pq_wait(struct pq *q, enum pq_state st)
{
	ne_list_remove(&q->link);
	q->state = st;
	q->deadline = ne_now_usec() + (uint64_t)q->cfg->timeout_ms * 1000;
	ne_list_append(&q->cfg->waiting, &q->link);
	timer_rearm();
}

/* --- fail policy and deadlines ------------------------------------------------------- */

/* Ends q's wait without the provider: the configuration's fail policy. q is freed first, since
 * the engine may come back for it. */
static void pq_fail(struct pq *q)
{
	struct pcfg *c = q->cfg;
	enum pq_state st = q->state;
	uint64_t id = q->id;

	pq_free(q);
	if (st == PQ_FORWARDED)
		return; /* forwarded already: its answer simply goes to the client */
	c->n.fail_policy++;
	if (st == PQ_QUERY)
		(void)dnsproxy_query_verdict(P->d, id, c->fail_open ? DNSQ_FORWARD : DNSQ_SERVFAIL, NULL,
					     NULL, 0);
	else
		(void)dnsproxy_response_verdict(P->d, id, c->fail_open ? DNSR_PASS : DNSR_DROP, NULL, 0);
}

/* Every query c's provider holds gets the fail policy (provider gone, configuration gone). */
static void cfg_release(struct pcfg *c)
{
	while (!ne_list_empty(&c->waiting))
		pq_fail(ne_container_of(c->waiting.next, struct pq, link));
	while (!ne_list_empty(&c->forwarded))
		pq_fail(ne_container_of(c->forwarded.next, struct pq, link));
	timer_rearm();
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	uint64_t now = ne_now_usec();
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &P->cfgs) {
		struct pcfg *c = ne_container_of(pos, struct pcfg, link);

		while (!ne_list_empty(&c->waiting)) {
			struct pq *q = ne_container_of(c->waiting.next, struct pq, link);

			if (q->deadline > now)
				break;
			c->n.deadline++;
			log_debug("dns-proxy %s: query %llu missed its deadline (%s)", c->name,
				  (unsigned long long)q->id, c->fail_open ? "fail-open" : "fail-closed");
			pq_fail(q);
		}
	}
	timer_rearm();
	(void)s;
	(void)usec;
	(void)ud;
	return 0;
}

static void timer_rearm(void)
{
	struct ne_list *pos, *tmp;
	uint64_t next = 0;

	if (!P || !P->timer)
		return;
	ne_list_for_each(pos, tmp, &P->cfgs) {
		struct pcfg *c = ne_container_of(pos, struct pcfg, link);
		struct pq *q;

		if (ne_list_empty(&c->waiting))
			continue;
		q = ne_container_of(c->waiting.next, struct pq, link);
		if (!next || q->deadline < next)
			next = q->deadline;
	}
	if (!next) {
		sd_event_source_set_enabled(P->timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(P->timer, next);
	sd_event_source_set_enabled(P->timer, SD_EVENT_ONESHOT);
}

/* --- configurations -------------------------------------------------------------------- */

static struct pcfg *cfg_find(const char *name)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &P->cfgs) {
		struct pcfg *c = ne_container_of(pos, struct pcfg, link);

		if (!strcmp(c->name, name))
			return c;
	}
	return NULL;
}

static struct pcfg *cfg_active(void)
{
	return P && !ne_list_empty(&P->cfgs) ? ne_container_of(P->cfgs.next, struct pcfg, link) : NULL;
}

static unsigned option_uint(const struct store_config *sc, const char *key, unsigned def,
			    unsigned min, unsigned max)
{
	size_t i;

	for (i = 0; i < sc->n_options; i++)
		if (!strcmp(sc->keys[i], key)) {
			char *end;
			unsigned long v = strtoul(sc->values[i], &end, 10);

			if (*sc->values[i] && !*end && v >= min && v <= max)
				return (unsigned)v;
			log_warnx("dns-proxy %s: option %s=%s is not a number in %u..%u; using %u", sc->name,
				  key, sc->values[i], min, max, def);
			return def;
		}
	return def;
}

static void cfg_free(struct pcfg *c)
{
	/* The configuration is gone: what its provider held goes on as if none were enabled. */
	c->fail_open = true;
	c->running = false;
	cfg_release(c);
	ne_list_remove(&c->link);
	P->n_cfgs--;
	free(c);
}

static struct pcfg *cfg_new(const char *name)
{
	struct pcfg *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	ne_strscpy(c->name, name, sizeof(c->name));
	ne_list_init(&c->waiting);
	ne_list_init(&c->forwarded);
	ne_list_append(&P->cfgs, &c->link);
	P->n_cfgs++;
	return c;
}

static int load_cfg_cb(const struct store_config *sc, void *ud)
{
	bool *changed = ud;
	struct pcfg *c;

	if (sc->provider_type != NE_PROVIDER_DNS_PROXY || !sc->enabled)
		return 0;
	c = cfg_find(sc->name);
	if (!c) {
		c = cfg_new(sc->name);
		if (!c) {
			log_warnx("dns-proxy %s: out of memory; not using it", sc->name);
			return 0;
		}
		*changed = true;
	}
	c->seen = true;
	c->fail_open = sc->fail_open;
	c->order = (int)option_uint(sc, "order", ORDER_DEFAULT, 0, 1000000);
	c->timeout_ms = option_uint(sc, "verdict_timeout_ms", TIMEOUT_MS_DEFAULT, TIMEOUT_MS_MIN,
				    TIMEOUT_MS_MAX);
	return 0;
}

static int cfg_cmp(const void *pa, const void *pb)
{
	const struct pcfg *a = *(const struct pcfg *const *)pa, *b = *(const struct pcfg *const *)pb;

	return a->order != b->order ? (a->order < b->order ? -1 : 1) : strcmp(a->name, b->name);
}

/* The documented order: "order", then the name. */
static int cfgs_sort(void)
{
	struct ne_list *pos, *tmp;
	struct pcfg **v;
	size_t n = 0, i;

	v = calloc(P->n_cfgs + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	ne_list_for_each(pos, tmp, &P->cfgs) {
		v[n++] = ne_container_of(pos, struct pcfg, link);
		ne_list_remove(pos);
	}
	qsort(v, n, sizeof(v[0]), cfg_cmp);
	for (i = 0; i < n; i++)
		ne_list_append(&P->cfgs, &v[i]->link);
	free(v);
	return 0;
}

/* Reads the store; true when the set of configurations or the active one changed. */
static bool cfgs_load(struct daemon *d)
{
	struct pcfg *before = cfg_active();
	struct ne_list *pos, *tmp;
	bool changed = false;

	ne_list_for_each(pos, tmp, &P->cfgs)
		ne_container_of(pos, struct pcfg, link)->seen = false;
	if (store_config_foreach(d->store, NULL, load_cfg_cb, &changed) < 0) {
		log_warnx("dns-proxy: cannot read the configurations; keeping the ones in use");
		return false;
	}
	ne_list_for_each(pos, tmp, &P->cfgs) {
		struct pcfg *c = ne_container_of(pos, struct pcfg, link);

		if (!c->seen) {
			cfg_free(c);
			changed = true;
		}
	}
	(void)cfgs_sort();
	return changed || cfg_active() != before;
}

void dnsprov_reconfigure(struct daemon *d)
{
	struct pcfg *c;

	if (!P || !cfgs_load(d))
		return;
	c = cfg_active();
	if (c)
		log_info("dns-proxy: configuration %s is the DNS proxy (%s, verdict deadline %u ms)%s",
			 c->name, c->fail_open ? "fail-open" : "fail-closed", c->timeout_ms,
			 P->n_cfgs > 1 ? "; other dns-proxy configurations wait" : "");
	else
		log_info("dns-proxy: no dns-proxy configuration enabled");
	dnsproxy_reconfigure(d);
}

bool dnsprov_enabled(struct daemon *d)
{
	(void)d;
	return P && P->n_cfgs > 0;
}

/* --- providers ------------------------------------------------------------------------- */

void dnsprov_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle)
{
	struct pcfg *c;

	if (!P)
		return;
	if (!(c = cfg_find(config))) {
		dnsprov_reconfigure(d);
		if (!(c = cfg_find(config)))
			return;
	}
	c->present = true;
	c->running = false;
	c->ext = e;
	c->handle = handle;
	c->has_settings = c->raw = c->want_responses = false;
}

void dnsprov_provider_running(struct daemon *d, const char *config)
{
	struct pcfg *c = P ? cfg_find(config) : NULL;

	if (!c || !c->present)
		return;
	c->running = true;
	log_info("dns-proxy %s: provider running (%s mode%s, %s, verdict deadline %u ms)%s", c->name,
		 c->raw ? "raw" : "parsed", c->want_responses ? ", sees responses" : "",
		 c->fail_open ? "fail-open" : "fail-closed", c->timeout_ms,
		 c == cfg_active() ? "" : "; not in use (another configuration comes first)");
	(void)d;
}

void dnsprov_provider_gone(struct daemon *d, const char *config, const char *why)
{
	struct pcfg *c = P ? cfg_find(config) : NULL;

	if (!c || !c->present)
		return;
	log_info("dns-proxy %s: provider gone (%s); queries get the fail policy (%s)", c->name, why,
		 c->fail_open ? "open: resolved by the routes" : "closed: SERVFAIL");
	c->present = c->running = false;
	c->ext = NULL;
	cfg_release(c);
	(void)d;
}

/* --- queries ----------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 (as filter.c). */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* A wire string from process metadata (anything a process may put in its argv): control
 * characters and bytes that are not UTF-8 become '?', at most NE_WIRE_STR_MAX bytes, never cut
 * inside a character. buf has NE_WIRE_STR_MAX + 1 bytes. */
static struct ne_view clean_view(const char *s, char *buf)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0, n;

	while (u[i]) {
		n = utf8_len(u + i);
		if (!n || u[i] < 0x20 || u[i] == 0x7f) {
			if (o + 1 > NE_WIRE_STR_MAX)
				break;
			buf[o++] = '?';
			i++;
			continue;
		}
		if (o + n > NE_WIRE_STR_MAX)
			break;
		memcpy(buf + o, u + i, n);
		o += n;
		i += n;
	}
	buf[o] = '\0';
	return (struct ne_view){ buf, o };
}

/* The IP version and address bytes of a socket address (v4-mapped v6 as v4); 0 for others. */
static int endpoint_of(const struct sockaddr_storage *ss, uint8_t addr[16], uint16_t *ret_port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		memcpy(addr, &s4->sin_addr, 4);
		*ret_port = ntohs(s4->sin_port);
		return 4;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		*ret_port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
			return 4;
		}
		memcpy(addr, &s6->sin6_addr, 16);
		return 6;
	}
	return 0;
}

static char exe_buf[NE_WIRE_STR_MAX + 1], cmd_buf[NE_WIRE_STR_MAX + 1], cg_buf[NE_WIRE_STR_MAX + 1];

static int record_of(const struct dnsq_view *v, struct ne_flow_record *r)
{
	int lv, rv;

	memset(r, 0, sizeof(*r));
	lv = endpoint_of(&v->client, r->local_addr, &r->local_port);
	rv = endpoint_of(&v->server, r->remote_addr, &r->remote_port);
	if (!lv || lv != rv)
		return -EAFNOSUPPORT;
	r->id = v->id;
	r->direction = NE_FLOW_OUTBOUND;
	r->family = (uint8_t)lv;
	r->protocol = v->protocol;
	r->hostname = (struct ne_view){ "", 0 };
	r->pid = r->ppid = -1;
	r->executable = r->cmdline = r->cgroup = (struct ne_view){ "", 0 };
	if (v->has_proc && v->proc) {
		r->pid = v->proc->pid;
		r->ppid = v->proc->ppid;
		r->has_ids = true;
		r->uid = v->proc->uid;
		r->gid = v->proc->gid;
		r->start_time = v->proc->start_time;
		r->executable = clean_view(v->proc->exe, exe_buf);
		r->cmdline = clean_view(v->proc->cmdline, cmd_buf);
		r->cgroup = clean_view(v->proc->cgroup, cg_buf);
	} else if (v->has_uid) {
		r->has_ids = true; /* the socket's owner is known even when no process holds it */
		r->uid = v->uid;
		r->gid = (uint32_t)-1;
	}
	return 0;
}

static int send_query(struct pcfg *c, const struct dnsq_view *v)
{
	struct ne_msg_dns_query m = { .provider = c->handle, .protocol = v->protocol,
				      .message = { (const char *)v->msg, v->len } };
	struct ne_wbuf b = { fbuf, 0, sizeof(fbuf), 0 };
	int r;

	r = record_of(v, &m.flow);
	if (r < 0)
		return r;
	r = ne_msg_dns_query_encode(&b, v->id, &m);
	if (r < 0)
		return r;
	return ext_send_raw(c->ext, fbuf, (size_t)r, false);
}

static int fail_policy_now(struct pcfg *c, const char *why)
{
	c->n.fail_policy++;
	log_debug("dns-proxy %s: %s; %s", c->name, why, c->fail_open ? "resolving by the routes" : "SERVFAIL");
	return c->fail_open ? 0 : -ECONNREFUSED;
}

int dnsprov_query(struct daemon *d, const struct dnsq_view *v)
{
	struct pcfg *c = cfg_active();
	struct pq *q;
	int r;

	(void)d;
	if (!c)
		return 0;
	/* A parsed-mode provider only sees queries that parse; the engine answers the others. */
	if (!v->parsed && !c->raw)
		return 0;
	if (!c->running || !c->ext)
		return fail_policy_now(c, "provider not running");
	if (!(q = pq_new(c, v->id)))
		return fail_policy_now(c, "too many queries waiting for the provider");
	r = send_query(c, v);
	if (r < 0) {
		pq_free(q);
		return fail_policy_now(c, r == -EAGAIN ? "extension not keeping up" : "cannot send the query");
	}
	c->n.queries++;
	pq_wait(q, PQ_QUERY);
	return 1;
}

void dnsprov_query_done(struct daemon *d, uint64_t id)
{
	struct pq *q = P ? pq_find(id) : NULL;

	if (q) {
		pq_free(q);
		timer_rearm();
	}
	(void)d;
}

int dnsprov_response(struct daemon *d, uint64_t id, const uint8_t *resp, size_t len)
{
	struct pq *q = P ? pq_find(id) : NULL;
	struct ne_msg_dns_response m;
	struct ne_wbuf b = { fbuf, 0, sizeof(fbuf), 0 };
	struct pcfg *c;
	int r;

	(void)d;
	if (!q || q->state != PQ_FORWARDED)
		return 0;
	c = q->cfg;
	if (!c->running || !c->want_responses || !c->ext) {
		pq_free(q);
		return 0;
	}
	m.provider = c->handle;
	m.message = (struct ne_view){ (const char *)resp, len };
	r = ne_msg_dns_response_encode(&b, id, &m);
	if (r >= 0)
		r = ext_send_raw(c->ext, fbuf, (size_t)r, false);
	if (r < 0 && c->fail_open) {
		c->n.fail_policy++;
		pq_free(q);
		return 0;
	}
	pq_wait(q, PQ_RESPONSE);
	if (r >= 0) {
		c->n.responses++;
		return 1;
	}
	/* Fail-closed and the provider cannot take it: the timer drops the answer at once (counted
	 * as a missed deadline), outside this call. */
	ne_list_remove(&q->link);
	q->deadline = ne_now_usec();
	ne_list_append(c->waiting.next, &q->link); /* in front: the earliest deadline */
	timer_rearm();
	return 1;
}

/* --- frames from providers ---------------------------------------------------------------- */

int dnsprov_on_settings(struct daemon *d, const char *config, const uint8_t *p, size_t len)
{
	struct ne_msg_dns_settings m;
	struct pcfg *c = P ? cfg_find(config) : NULL;

	(void)d;
	if (ne_msg_dns_settings_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!c || !c->present)
		return 0; /* the configuration was disabled meanwhile */
	/* Settings belong to the start: the library sends them right before START_DONE. */
	if (c->running || m.provider != c->handle)
		return -EPROTO;
	c->has_settings = true;
	c->raw = m.mode == 1;
	c->want_responses = m.want_responses;
	return 0;
}

/* The query id waits for c's provider in state st; else it is late (or someone else's). */
static struct pq *waiting_for(struct pcfg *c, uint64_t id, enum pq_state st)
{
	struct pq *q = pq_find(id);

	if (!q || q->cfg != c || q->state != st) {
		c->n.late++;
		return NULL;
	}
	return q;
}

static void count_verdict(struct pcfg *c, uint8_t kind)
{
	switch (kind) {
	case NE_DNS_VERDICT_FORWARD:
		c->n.forwarded++;
		break;
	case NE_DNS_VERDICT_ANSWER:
		c->n.answered++;
		break;
	case NE_DNS_VERDICT_REFUSE:
		c->n.refused++;
		break;
	default:
		c->n.dropped++;
	}
}

static void engine_result(struct pcfg *c, uint64_t id, int r)
{
	if (r == -EBADMSG || r == -EINVAL) {
		c->n.bad_verdicts++;
		log_info("dns-proxy %s: the provider's verdict for query %llu was refused (%s); the "
			 "client gets SERVFAIL", c->name, (unsigned long long)id, strerror(-r));
	} else if (r == -ENOENT)
		c->n.late++;
}

int dnsprov_on_verdict(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len)
{
	static const enum dnsq_action actions[] = { 0, DNSQ_FORWARD, DNSQ_ANSWER, DNSQ_REFUSE, DNSQ_DROP };
	char target[NE_WIRE_STR_MAX + 1];
	struct ne_msg_dns_verdict m;
	struct pcfg *c = P ? cfg_find(config) : NULL;
	struct pq *q;
	bool follow;
	int r;

	if (ne_msg_dns_verdict_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!c || !(q = waiting_for(c, id, PQ_QUERY)))
		return 0;
	memcpy(target, m.target.p, m.target.len);
	target[m.target.len] = '\0';
	count_verdict(c, m.kind);
	/* The answer to a forwarded query comes back to a provider that asked for answers. */
	follow = m.kind == NE_DNS_VERDICT_FORWARD && c->want_responses;
	if (follow) {
		ne_list_remove(&q->link);
		q->state = PQ_FORWARDED;
		ne_list_append(&c->forwarded, &q->link);
	} else
		pq_free(q);
	timer_rearm();
	r = dnsproxy_query_verdict(d, id, actions[m.kind], m.target.len ? target : NULL,
				   m.message.len ? (const uint8_t *)m.message.p : NULL, m.message.len);
	if (r < 0 && follow && (q = pq_find(id)))
		pq_free(q);
	engine_result(c, id, r);
	return 0;
}

int dnsprov_on_response_verdict(struct daemon *d, const char *config, uint64_t id, const uint8_t *p,
				size_t len)
{
	static const enum dnsr_action actions[] = { 0, DNSR_PASS, DNSR_REWRITE, DNSR_DROP };
	struct ne_msg_dns_response_verdict m;
	struct pcfg *c = P ? cfg_find(config) : NULL;
	struct pq *q;
	int r;

	if (ne_msg_dns_response_verdict_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!c || !(q = waiting_for(c, id, PQ_RESPONSE)))
		return 0;
	pq_free(q);
	timer_rearm();
	if (m.kind == DNSR_PASS)
		c->n.passed++;
	else if (m.kind == DNSR_REWRITE)
		c->n.rewritten++;
	else
		c->n.response_dropped++;
	r = dnsproxy_response_verdict(d, id, actions[m.kind],
				      m.message.len ? (const uint8_t *)m.message.p : NULL, m.message.len);
	engine_result(c, id, r);
	return 0;
}

/* --- control API and life ------------------------------------------------------------------ */

static json_t *counters_json(const struct pcounters *n)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "queries", (json_int_t)n->queries, "answered", (json_int_t)n->answered,
			 "forwarded", (json_int_t)n->forwarded, "refused", (json_int_t)n->refused,
			 "dropped", (json_int_t)n->dropped, "deadline", (json_int_t)n->deadline,
			 "fail_policy", (json_int_t)n->fail_policy, "bad_verdicts",
			 (json_int_t)n->bad_verdicts, "late", (json_int_t)n->late, "responses",
			 (json_int_t)n->responses, "passed", (json_int_t)n->passed, "rewritten",
			 (json_int_t)n->rewritten, "response_dropped", (json_int_t)n->response_dropped);
}

static const char *cfg_state(const struct pcfg *c)
{
	return c->running ? "running" : c->present ? "starting" : "not running";
}

void *dnsprov_status_json(struct daemon *d)
{
	struct pcfg *c = cfg_active();
	struct ne_list *pos, *tmp;
	json_t *waiting;

	(void)d;
	if (!c)
		return json_pack("{s:n, s:b}", "configuration", "enabled", false);
	waiting = json_array();
	ne_list_for_each(pos, tmp, &P->cfgs)
		if (pos != &c->link)
			json_array_append_new(waiting, json_string(ne_container_of(pos, struct pcfg, link)->name));
	return json_pack("{s:s, s:b, s:s, s:s, s:b, s:s, s:i, s:i, s:i, s:o, s:o}",
			 "configuration", c->name, "enabled", true, "state", cfg_state(c), "mode",
			 c->raw ? "raw" : "parsed", "responses", c->want_responses, "fail_policy",
			 c->fail_open ? "open" : "closed", "verdict_timeout_ms", (int)c->timeout_ms,
			 "order", c->order, "outstanding", (int)P->n_queries, "counters",
			 counters_json(&c->n), "standby", waiting);
}

int dnsprov_init(struct daemon *d)
{
	int r;

	P = calloc(1, sizeof(*P));
	if (!P)
		return -ENOMEM;
	P->d = d;
	ne_list_init(&P->cfgs);
	r = sd_event_add_time(d->event, &P->timer, CLOCK_MONOTONIC, 0, 1000, on_timer, NULL);
	if (r < 0) {
		dnsprov_fini(d);
		return r;
	}
	sd_event_source_set_enabled(P->timer, SD_EVENT_OFF);
	/* The engine starts after us and reads dnsprov_enabled() itself. */
	(void)cfgs_load(d);
	return 0;
}

/* After dnsproxy_fini(): the engine has answered everything in flight, so the queries held
 * here are only forgotten. */
void dnsprov_fini(struct daemon *d)
{
	struct ne_list *pos, *tmp;
	size_t i;

	(void)d;
	if (!P)
		return;
	for (i = 0; i < BUCKETS; i++)
		while (P->by_id[i])
			pq_free(P->by_id[i]);
	ne_list_for_each(pos, tmp, &P->cfgs) {
		struct pcfg *c = ne_container_of(pos, struct pcfg, link);

		ne_list_remove(&c->link);
		free(c);
	}
	sd_event_source_disable_unref(P->timer);
	free(P);
	P = NULL;
}
