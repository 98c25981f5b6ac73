/* The supervisor: one process per enabled extension, and the daemon side of the wire
 * protocol (wire.h).
 *
 * Trust: an extension is foreign code running as an unprivileged user. Everything it
 * sends is checked before use (role, header, exact decode, conversation state); any fault
 * closes its channel, kills its cgroup and restarts it with back-off. It can never block
 * the daemon: the channel is non-blocking both ways, reads are budgeted per wake-up, log
 * lines are rate-limited, and an extension that stops reading its channel or answering
 * pings is killed as hung. Nothing it says is trusted to be true about itself except the
 * provider types it offers, which only limit what the daemon will ask of it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <netext/netext.h>

#include "bundle.h"
#include "cgroup.h"
#include "dnsprov.h"
#include "filter.h"
#include "daemon.h"
#include "log.h"
#include "pktfilter.h"
#include "sandbox.h"
#include "store.h"
#include "tunnel.h"
#include "util.h"
#include "wire.h"

#define EXT_READ_BUDGET 64          /* frames handled per wake-up before yielding */
#define EXT_BACKOFF_MIN_MS 100     /* after the first restart, which is immediate */
#define EXT_EOF_GRACE_MS 1000
#define EXT_BACKOFF_MAX_MS 30000
#define EXT_STABLE_USEC (30ULL * 1000000ULL) /* running this long resets the back-off */
#define EXT_LOG_BURST 200           /* log lines an extension may send at once ... */
#define EXT_LOG_RATE 100            /* ... and per second after that */
#define EXT_SNDBUF (1 << 20)

enum ext_state {
	EXT_STOPPED,   /* not running, not wanted (disabled, or daemon stopping) */
	EXT_STARTING,  /* spawned, waiting for HELLO */
	EXT_RUNNING,   /* handshake done */
	EXT_STOPPING,  /* asked to stop: providers stopping, then channel closed */
	EXT_BACKOFF,   /* crashed; restart timer armed */
	EXT_FAILED,    /* crashed too often; waits for `netextctl restart` */
};

static const char *const ext_state_names[] = {
	[EXT_STOPPED] = "stopped", [EXT_STARTING] = "starting", [EXT_RUNNING] = "running",
	[EXT_STOPPING] = "stopping", [EXT_BACKOFF] = "restarting", [EXT_FAILED] = "failed",
};

enum prov_state { PROV_STARTING, PROV_RUNNING, PROV_STOPPING };
static const char *const prov_state_names[] = { "starting", "running", "stopping" };

struct provider {
	struct ne_list link;
	struct ext *ext;
	char config[NE_WIRE_NAME_MAX + 1];
	uint32_t handle;
	uint16_t type;
	enum prov_state state;
	uint64_t since_usec;
};

enum pending_kind { PENDING_START, PENDING_STOP, PENDING_MESSAGE };

/* A request sent to the extension and not answered yet. */
struct pending {
	struct ne_list link;
	struct ext *ext;
	uint64_t id;
	enum pending_kind kind;
	uint32_t provider;
	struct ctl_req *req;      /* control request to answer, or NULL */
	char config[NE_WIRE_NAME_MAX + 1]; /* stop: the configuration, for the answer */
	sd_event_source *timeout;
};

struct ext {
	struct ne_list link;
	struct daemon *d;
	char id[NE_WIRE_NAME_MAX + 1];
	char executable[PATH_MAX];
	char user[64];
	uid_t uid;
	gid_t gid;
	enum ext_state state;
	bool removing;            /* free once the process is gone */
	bool deactivating;        /* removing for sysext: tell it when gone */
	struct store_bundle b;    /* the installed bundle; b.dir "" for developer registrations */
	struct store_extension *next; /* replacing: what starts once the old process is gone */

	pid_t pid;
	int pidfd, fd, errfd;
	sd_event_source *child_src, *io_src, *err_src, *timer, *ping_timer;
	char cgroup[PATH_MAX];    /* relative to the cgroup2 mount */

	uint64_t next_id, ping_seq, ping_sent_usec;
	bool ping_outstanding;
	uint16_t offered[16];
	unsigned n_offered;
	struct ne_list providers; /* struct provider */
	struct ne_list pending;   /* struct pending */
	uint32_t next_handle;

	uint64_t started_usec;
	unsigned restarts, backoff_ms, n_crashes;
	uint64_t crash_usec[64];
	unsigned faults;
	char last_exit[256];      /* why the previous process ended, shown by list */
	char reason[256];         /* why the daemon ended the current one, if it did */
	/* log rate limit: a token bucket */
	double log_tokens;
	uint64_t log_refill_usec;
	unsigned long log_dropped;
	char errline[1024];
	size_t errlen;
};

static uint8_t ext_rbuf[NE_WIRE_MAX];
static uint8_t ext_wbuf[NE_WIRE_MAX];

static void ext_spawn(struct ext *e);
static void ext_fault(struct ext *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ext_start_enabled_configs(struct ext *e);
static void ext_arm_timer(struct ext *e, unsigned ms);
static int ext_apply(struct ext *e, const struct store_extension *se);

bool ext_restart_pending(const struct ext *e)
{
	return !e->removing && !e->deactivating &&
	       (e->state == EXT_STARTING || e->state == EXT_RUNNING || e->state == EXT_BACKOFF);
}

const char *ext_identifier(const struct ext *e)
{
	return e->id;
}

struct ext *ext_find(struct daemon *d, const char *identifier)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &d->exts) {
		struct ext *e = ne_container_of(pos, struct ext, link);

		if (!strcmp(e->id, identifier))
			return e;
	}
	return NULL;
}

static struct provider *prov_by_config(struct daemon *d, const char *config)
{
	struct ne_list *epos, *etmp, *pos, *tmp;

	ne_list_for_each(epos, etmp, &d->exts) {
		struct ext *e = ne_container_of(epos, struct ext, link);

		ne_list_for_each(pos, tmp, &e->providers) {
			struct provider *p = ne_container_of(pos, struct provider, link);

			if (!strcmp(p->config, config))
				return p;
		}
	}
	return NULL;
}

static struct provider *prov_by_handle(struct ext *e, uint32_t handle)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &e->providers) {
		struct provider *p = ne_container_of(pos, struct provider, link);

		if (p->handle == handle)
			return p;
	}
	return NULL;
}

static void prov_free(struct provider *p)
{
	if (p->type == NE_PROVIDER_FILTER_DATA)
		filter_provider_gone(p->ext->d, p->config, p->ext->fd >= 0 ? "provider stopped" : "extension exited");
	if (p->type == NE_PROVIDER_DNS_PROXY)
		dnsprov_provider_gone(p->ext->d, p->config, p->ext->fd >= 0 ? "provider stopped" : "extension exited");
	if (p->type == NE_PROVIDER_FILTER_PACKET)
		pktfilter_provider_gone(p->ext->d, p->config, p->ext->fd >= 0 ? "provider stopped" : "extension exited");
	if (p->type == NE_PROVIDER_PACKET_TUNNEL)
		tunnel_provider_gone(p->ext->d, p->config, p->ext->fd >= 0 ? "provider stopped" : "extension exited");
	ne_list_remove(&p->link);
	free(p);
}

/* ---- outgoing -------------------------------------------------------------------- */

static int ext_send(struct ext *e, int len)
{
	int r;

	if (len < 0) {
		log_warnx("extension %s: cannot encode message: %s", e->id, strerror(-len));
		return len;
	}
	if (e->fd < 0)
		return -ENOTCONN;
	r = ne_wire_send(e->fd, ext_wbuf, (size_t)len, NULL, 0);
	if (r == -EAGAIN) {
		ext_fault(e, "not reading its channel (send buffer full)");
		return -EAGAIN;
	}
	if (r < 0) {
		ext_fault(e, "channel send failed: %s", strerror(-r));
		return r;
	}
	return 0;
}

int ext_send_raw(struct ext *e, const void *frame, size_t len, bool fault_when_full)
{
	int r;

	if (e->fd < 0 || e->state != EXT_RUNNING)
		return -ENOTCONN;
	r = ne_wire_send(e->fd, frame, len, NULL, 0);
	if (r == -EAGAIN && !fault_when_full)
		return -EAGAIN;
	if (r == -EAGAIN)
		ext_fault(e, "not reading its channel (send buffer full)");
	else if (r < 0)
		ext_fault(e, "channel send failed: %s", strerror(-r));
	return r < 0 ? r : 0;
}

int ext_send_fds(struct ext *e, const void *frame, size_t len, const int *fds, size_t nfds)
{
	int r;

	if (e->fd < 0 || e->state != EXT_RUNNING)
		return -ENOTCONN;
	r = ne_wire_send(e->fd, frame, len, fds, nfds);
	if (r == -EAGAIN)
		ext_fault(e, "not reading its channel (send buffer full)");
	else if (r < 0)
		ext_fault(e, "channel send failed: %s", strerror(-r));
	return r < 0 ? r : 0;
}

void ext_fault_extern(struct ext *e, const char *why)
{
	ext_fault(e, "%s", why);
}

static struct ne_wbuf ext_wb(void)
{
	struct ne_wbuf b = { ext_wbuf, 0, sizeof(ext_wbuf), 0 };

	return b;
}

static void pending_free(struct pending *p)
{
	ne_list_remove(&p->link);
	sd_event_source_disable_unref(p->timeout);
	if (p->req)
		ctl_req_unref(p->req);
	free(p);
}

static int pending_on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pending *p = userdata;
	struct ext *e = p->ext;
	static const char *const what[] = { "start", "stop", "app message" };

	if (p->req)
		ctl_req_error(p->req, "timeout", "extension %s did not answer the %s request in time",
			      e->id, what[p->kind]);
	/* A provider that does not complete a start or stop is broken: restart the process. */
	if (p->kind != PENDING_MESSAGE) {
		ext_fault(e, "no answer to %s request %llu within the deadline", what[p->kind],
			  (unsigned long long)p->id);
		return 0;
	}
	pending_free(p);
	return 0;
}

static struct pending *pending_new(struct ext *e, enum pending_kind kind, uint32_t provider,
				   struct ctl_req *req, unsigned timeout_ms)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->ext = e;
	p->id = ++e->next_id;
	p->kind = kind;
	p->provider = provider;
	p->req = req ? ctl_req_ref(req) : NULL;
	if (sd_event_add_time_relative(e->d->event, &p->timeout, CLOCK_MONOTONIC,
				       (uint64_t)timeout_ms * 1000, 0, pending_on_timeout, p) < 0) {
		if (p->req)
			ctl_req_unref(p->req);
		free(p);
		return NULL;
	}
	ne_list_init(&p->link);
	ne_list_append(&e->pending, &p->link);
	return p;
}

static struct pending *pending_take(struct ext *e, uint64_t id, enum pending_kind kind)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &e->pending) {
		struct pending *p = ne_container_of(pos, struct pending, link);

		if (p->id == id && p->kind == kind)
			return p;
	}
	return NULL;
}

/* Fails every outstanding request (the process is gone). */
static void pending_fail_all(struct ext *e, const char *why)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &e->pending) {
		struct pending *p = ne_container_of(pos, struct pending, link);

		if (p->req)
			ctl_req_error(p->req, "failed", "extension %s %s", e->id, why);
		pending_free(p);
	}
}

/* ---- providers ------------------------------------------------------------------- */

/* tunnel.start's options over the configuration's: same key replaces, new keys append. */
static void merge_start_options(struct daemon *d, const char *config, struct ne_msg_start *m)
{
	const char *const *keys, *const *values;
	size_t n = tunnel_start_options(d, config, &keys, &values), i, k;

	for (i = 0; i < n; i++) {
		struct ne_view kv = { keys[i], strlen(keys[i]) }, vv = { values[i], strlen(values[i]) };

		for (k = 0; k < m->n_options; k++)
			if (m->keys[k].len == kv.len && !memcmp(m->keys[k].p, kv.p, kv.len))
				break;
		if (k == m->n_options) {
			if (m->n_options >= NE_WIRE_OPTIONS_MAX)
				continue;
			m->n_options++;
		}
		m->keys[k] = kv;
		m->values[k] = vv;
	}
}

static int prov_send_start(struct ext *e, const struct store_config *c, struct ctl_req *req)
{
	struct ne_msg_start m = { 0 };
	struct provider *p;
	struct pending *pd;
	struct ne_wbuf b = ext_wb();
	size_t i;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ext = e;
	ne_strscpy(p->config, c->name, sizeof(p->config));
	p->handle = ++e->next_handle;
	p->type = (uint16_t)c->provider_type;
	p->state = PROV_STARTING;
	p->since_usec = ne_now_usec();
	pd = pending_new(e, PENDING_START, p->handle, req, e->d->opt.start_timeout_ms);
	if (!pd) {
		free(p);
		return -ENOMEM;
	}
	ne_list_init(&p->link);
	ne_list_append(&e->providers, &p->link);

	m.provider = p->handle;
	m.type = p->type;
	m.config = (struct ne_view){ c->name, strlen(c->name) };
	m.n_options = (uint16_t)NE_MIN(c->n_options, (size_t)NE_WIRE_OPTIONS_MAX);
	for (i = 0; i < m.n_options; i++) {
		m.keys[i] = (struct ne_view){ c->keys[i], strlen(c->keys[i]) };
		m.values[i] = (struct ne_view){ c->values[i], strlen(c->values[i]) };
	}
	if (p->type == NE_PROVIDER_PACKET_TUNNEL)
		merge_start_options(e->d, c->name, &m);
	log_info("extension %s: starting provider for configuration %s (%s)", e->id, c->name,
		 ne_provider_type_name(c->provider_type));
	if (p->type == NE_PROVIDER_FILTER_DATA)
		filter_provider_present(e->d, p->config, e, p->handle);
	if (p->type == NE_PROVIDER_DNS_PROXY)
		dnsprov_provider_present(e->d, p->config, e, p->handle);
	if (p->type == NE_PROVIDER_FILTER_PACKET)
		pktfilter_provider_present(e->d, p->config, e, p->handle);
	if (p->type == NE_PROVIDER_PACKET_TUNNEL)
		tunnel_provider_present(e->d, p->config, e, p->handle);
	return ext_send(e, ne_msg_start_encode(&b, pd->id, &m));
}

static int prov_send_stop(struct provider *p, ne_stop_reason reason, struct ctl_req *req)
{
	struct ext *e = p->ext;
	struct ne_msg_stop m = { p->handle, (uint32_t)reason };
	struct ne_wbuf b = ext_wb();
	struct pending *pd;

	if (p->state == PROV_STOPPING) {
		if (req)
			ctl_req_error(req, "busy", "configuration %s is already stopping", p->config);
		return 0;
	}
	pd = pending_new(e, PENDING_STOP, p->handle, req, e->d->opt.stop_timeout_ms);
	if (!pd)
		return -ENOMEM;
	ne_strscpy(pd->config, p->config, sizeof(pd->config));
	p->state = PROV_STOPPING;
	log_info("extension %s: stopping provider for %s (%s)", e->id, p->config,
		 ne_stop_reason_name(reason));
	if (p->type == NE_PROVIDER_FILTER_DATA)
		filter_provider_gone(e->d, p->config, ne_stop_reason_name(reason));
	if (p->type == NE_PROVIDER_DNS_PROXY)
		dnsprov_provider_gone(e->d, p->config, ne_stop_reason_name(reason));
	if (p->type == NE_PROVIDER_FILTER_PACKET)
		pktfilter_provider_gone(e->d, p->config, ne_stop_reason_name(reason));
	if (p->type == NE_PROVIDER_PACKET_TUNNEL)
		tunnel_provider_stopping(e->d, p->config, ne_stop_reason_name(reason));
	return ext_send(e, ne_msg_stop_encode(&b, pd->id, &m));
}

static bool ext_offers(const struct ext *e, int type)
{
	unsigned i;

	for (i = 0; i < e->n_offered; i++)
		if (e->offered[i] == type)
			return true;
	return false;
}

static int start_config_cb(const struct store_config *c, void *userdata)
{
	struct ext *e = userdata;

	if (!c->enabled || prov_by_config(e->d, c->name))
		return 0;
	if (!ext_offers(e, c->provider_type)) {
		log_warnx("extension %s: does not offer %s, configuration %s not started", e->id,
			  ne_provider_type_name(c->provider_type), c->name);
		return 0;
	}
	prov_send_start(e, c, NULL);
	return e->state == EXT_RUNNING ? 0 : 1; /* stop iterating if a send faulted */
}

static void ext_start_enabled_configs(struct ext *e)
{
	store_config_foreach(e->d->store, e->id, start_config_cb, e);
}

/* ---- incoming -------------------------------------------------------------------- */

static int on_hello(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct ne_msg_hello m;
	struct ne_msg_welcome w = { NE_WIRE_VERSION, { e->id, strlen(e->id) },
				    e->d->opt.heartbeat_ms };
	struct ne_wbuf b = ext_wb();
	unsigned i;

	if (e->state != EXT_STARTING)
		return -EPROTO;
	if (ne_msg_hello_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (m.min_version > NE_WIRE_VERSION || m.max_version < NE_WIRE_VERSION) {
		ext_fault(e, "speaks protocol versions %u..%u, netextd speaks %u", m.min_version,
			  m.max_version, NE_WIRE_VERSION);
		return 0;
	}
	e->n_offered = 0;
	for (i = 0; i < m.n_providers; i++)
		if (m.providers[i] >= 1 && m.providers[i] <= NE_PROVIDER_TYPE_MAX)
			e->offered[e->n_offered++] = m.providers[i];
	sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
	e->state = EXT_RUNNING;
	log_info("extension %s: running as pid %d (%.*s)", e->id, (int)e->pid,
		 (int)m.library.len, m.library.p);
	if (ext_send(e, ne_msg_welcome_encode(&b, &w)) < 0)
		return 0;
	sd_event_source_set_enabled(e->ping_timer, SD_EVENT_ON);
	ext_start_enabled_configs(e);
	(void)h;
	return 0;
}

static int on_pong(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	if (ne_msg_empty_decode(p, len) < 0)
		return -EBADMSG;
	if (!e->ping_outstanding || h->id != e->ping_seq)
		return -EPROTO;
	e->ping_outstanding = false;
	return 0;
}

static int on_start_done(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct ne_msg_result m;
	struct pending *pd;
	struct provider *pv;

	if (ne_msg_result_decode(p, len, &m) < 0)
		return -EBADMSG;
	pd = pending_take(e, h->id, PENDING_START);
	if (!pd)
		return -EPROTO;
	pv = prov_by_handle(e, pd->provider);
	if (m.error == 0 && pv) {
		/* A stop sent while it was starting is still on its way: stay stopping. */
		if (pv->state == PROV_STARTING)
			pv->state = PROV_RUNNING;
		pv->since_usec = ne_now_usec();
		log_info("extension %s: provider for %s started", e->id, pv->config);
		if (pv->type == NE_PROVIDER_FILTER_DATA && pv->state == PROV_RUNNING)
			filter_provider_running(e->d, pv->config);
		if (pv->type == NE_PROVIDER_DNS_PROXY && pv->state == PROV_RUNNING)
			dnsprov_provider_running(e->d, pv->config);
		if (pv->type == NE_PROVIDER_FILTER_PACKET && pv->state == PROV_RUNNING)
			pktfilter_provider_running(e->d, pv->config);
		if (pv->type == NE_PROVIDER_PACKET_TUNNEL && pv->state == PROV_RUNNING)
			tunnel_provider_running(e->d, pv->config);
		if (pd->req)
			ctl_req_reply(pd->req, json_pack("{s:s, s:s}", "configuration", pv->config,
							 "state", "running"));
	} else if (pv) {
		log_warnx("extension %s: provider for %s failed to start: %s (%.*s)", e->id,
			  pv->config, strerror(-m.error), (int)m.message.len, m.message.p);
		if (pd->req)
			ctl_req_error(pd->req, "failed", "provider failed to start: %s%s%.*s",
				      strerror(-m.error), m.message.len ? ": " : "",
				      (int)m.message.len, m.message.p);
		if (pv->type == NE_PROVIDER_PACKET_TUNNEL) {
			char msg[NE_WIRE_STR_MAX + 1];

			snprintf(msg, sizeof(msg), "%.*s", (int)m.message.len, m.message.p);
			tunnel_provider_failed(e->d, pv->config, m.error < 0 ? m.error : -EIO, msg);
		}
		prov_free(pv);
	}
	pending_free(pd);
	return 0;
}

static void ext_close_channel_if_done(struct ext *e)
{
	if (e->state == EXT_STOPPING && ne_list_empty(&e->providers) && e->fd >= 0)
		shutdown(e->fd, SHUT_RDWR); /* the extension sees EOF and exits */
}

static int on_stop_done(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct pending *pd;
	struct provider *pv;

	if (ne_msg_empty_decode(p, len) < 0)
		return -EBADMSG;
	pd = pending_take(e, h->id, PENDING_STOP);
	if (!pd)
		return -EPROTO;
	pv = prov_by_handle(e, pd->provider);
	if (pv) {
		log_info("extension %s: provider for %s stopped", e->id, pv->config);
		if (pd->req)
			ctl_req_reply(pd->req, json_pack("{s:s, s:s}", "configuration", pv->config,
							 "state", "stopped"));
		prov_free(pv);
	} else if (pd->req) {
		/* Stopped while starting: the start failed (cancelled) and freed it already. */
		ctl_req_reply(pd->req, json_pack("{s:s, s:s}", "configuration", pd->config,
						 "state", "stopped"));
	}
	pending_free(pd);
	ext_close_channel_if_done(e);
	return 0;
}

/* Replies are bytes; JSON strings must be UTF-8, so anything else goes out as hex. */
static json_t *reply_data_json(const struct ne_view *v)
{
	static const char hex[] = "0123456789abcdef";
	json_t *s = json_stringn(v->p, v->len);
	char *h;
	size_t i;

	if (s)
		return json_pack("{s:o}", "data", s);
	h = malloc(v->len * 2 + 1);
	if (!h)
		return json_object();
	for (i = 0; i < v->len; i++) {
		h[2 * i] = hex[(unsigned char)v->p[i] >> 4];
		h[2 * i + 1] = hex[(unsigned char)v->p[i] & 15];
	}
	h[2 * v->len] = '\0';
	s = json_pack("{s:s}", "data_hex", h);
	free(h);
	return s;
}

static int on_app_reply(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct ne_msg_app_reply m;
	struct pending *pd;

	if (ne_msg_app_reply_decode(p, len, &m) < 0)
		return -EBADMSG;
	pd = pending_take(e, h->id, PENDING_MESSAGE);
	if (!pd)
		return -EPROTO;
	if (pd->req) {
		if (m.error)
			ctl_req_error(pd->req, "failed", "provider answered: %s", strerror(-m.error));
		else
			ctl_req_reply(pd->req, reply_data_json(&m.data));
	}
	pending_free(pd);
	return 0;
}

static bool log_allowed(struct ext *e)
{
	uint64_t now = ne_now_usec();

	e->log_tokens += (double)(now - e->log_refill_usec) * EXT_LOG_RATE / 1e6;
	if (e->log_tokens > EXT_LOG_BURST)
		e->log_tokens = EXT_LOG_BURST;
	e->log_refill_usec = now;
	if (e->log_tokens < 1.0) {
		e->log_dropped++;
		return false;
	}
	if (e->log_dropped) {
		log_warnx("extension %s: %lu log lines suppressed (rate limit)", e->id, e->log_dropped);
		e->log_dropped = 0;
	}
	e->log_tokens -= 1.0;
	return true;
}

static void ext_log_line(struct ext *e, int prio, const char *text)
{
	char source[NE_WIRE_NAME_MAX + 8];

	if (!log_allowed(e))
		return;
	snprintf(source, sizeof(source), "ext:%s", e->id);
	log_emit(prio, source, text);
}

static int on_log(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct ne_msg_log m;
	char text[NE_WIRE_STR_MAX + 1];

	if (ne_msg_log_decode(p, len, &m) < 0)
		return -EBADMSG;
	memcpy(text, m.text.p, m.text.len);
	text[m.text.len] = '\0';
	ext_log_line(e, m.level < LOG_ERR ? LOG_ERR : m.level, text);
	(void)h;
	return 0;
}

/* Filter and DNS frames go to filter.c and dnsprov.c once the provider handle is known to be
 * a provider of that type. */
static struct provider *typed_prov(struct ext *e, const uint8_t *p, size_t len, uint16_t type)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	uint32_t handle = ne_get_u32(&r); /* every filter and DNS frame starts with it */
	struct provider *pv;

	if (r.err)
		return NULL;
	pv = prov_by_handle(e, handle);
	return pv && pv->type == type ? pv : NULL;
}

static struct provider *filter_prov(struct ext *e, const uint8_t *p, size_t len)
{
	return typed_prov(e, p, len, NE_PROVIDER_FILTER_DATA);
}

static int on_filter_settings(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = filter_prov(e, p, len);

	if (!pv)
		return -EPROTO;
	return filter_on_settings(e->d, pv->config, h->id, p, len);
}

static int on_flow_verdict(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = filter_prov(e, p, len);

	if (!pv)
		return len < 4 ? -EBADMSG : 0; /* a provider that stopped meanwhile: late, not hostile */
	return filter_on_verdict(e->d, pv->config, h->id, p, len);
}

static int on_dns_settings(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_DNS_PROXY);

	if (!pv || h->id != 0)
		return -EPROTO;
	return dnsprov_on_settings(e->d, pv->config, p, len);
}

/* A verdict from a provider that stopped meanwhile is late, not hostile. */
static int on_dns_verdict(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_DNS_PROXY);

	if (!pv)
		return len < 4 ? -EBADMSG : 0;
	return dnsprov_on_verdict(e->d, pv->config, h->id, p, len);
}

static int on_dns_response_verdict(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_DNS_PROXY);

	if (!pv)
		return len < 4 ? -EBADMSG : 0;
	return dnsprov_on_response_verdict(e->d, pv->config, h->id, p, len);
}

static int on_packet_settings(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_FILTER_PACKET);

	if (!pv)
		return -EPROTO;
	return pktfilter_on_settings(e->d, pv->config, h->id, p, len);
}

/* Tunnel frames from a provider of another type, or for a provider that is gone, are faults:
 * a tunnel provider stops only after the daemon asked it to. */
static int on_tunnel_settings(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_PACKET_TUNNEL);

	if (!pv)
		return len < 4 ? -EBADMSG : -EPROTO;
	return tunnel_on_settings(e->d, pv->config, h->id, p, len);
}

static int on_tunnel_state(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_PACKET_TUNNEL);

	if (!pv || h->id != 0)
		return len < 4 ? -EBADMSG : -EPROTO;
	return tunnel_on_state(e->d, pv->config, p, len);
}

static int on_tunnel_cancel(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_PACKET_TUNNEL);

	if (!pv || h->id != 0)
		return len < 4 ? -EBADMSG : -EPROTO;
	if (pv->state == PROV_STOPPING)
		return 0; /* crossed our STOP */
	return tunnel_on_cancel(e->d, pv->config, p, len);
}

static int on_tunnel_socket(struct ext *e, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	struct provider *pv = typed_prov(e, p, len, NE_PROVIDER_PACKET_TUNNEL);

	if (!pv)
		return len < 4 ? -EBADMSG : -EPROTO;
	return tunnel_on_socket(e->d, pv->config, h->id, p, len);
}

typedef int (*frame_handler)(struct ext *, const struct ne_msg_hdr *, const uint8_t *, size_t);

static const frame_handler frame_handlers[NE_MSG_TYPE_MAX + 1] = {
	[NE_MSG_HELLO] = on_hello,
	[NE_MSG_PONG] = on_pong,
	[NE_MSG_START_DONE] = on_start_done,
	[NE_MSG_STOP_DONE] = on_stop_done,
	[NE_MSG_APP_REPLY] = on_app_reply,
	[NE_MSG_LOG] = on_log,
	[NE_MSG_FILTER_SETTINGS] = on_filter_settings,
	[NE_MSG_FLOW_VERDICT] = on_flow_verdict,
	[NE_MSG_DNS_SETTINGS] = on_dns_settings,
	[NE_MSG_DNS_VERDICT] = on_dns_verdict,
	[NE_MSG_DNS_RESPONSE_VERDICT] = on_dns_response_verdict,
	[NE_MSG_PACKET_SETTINGS] = on_packet_settings,
	[NE_MSG_TUNNEL_SETTINGS] = on_tunnel_settings,
	[NE_MSG_TUNNEL_STATE] = on_tunnel_state,
	[NE_MSG_TUNNEL_CANCEL] = on_tunnel_cancel,
	[NE_MSG_TUNNEL_SOCKET] = on_tunnel_socket,
};

/* Checks in the order of wire.h: role, header, state, exact decode (in the handler). */
static void ext_handle_frame(struct ext *e, const uint8_t *frame, size_t len)
{
	struct ne_msg_hdr h;
	int r;

	r = ne_msg_hdr_decode(frame, len, &h);
	if (r == -EPROTO) {
		ext_fault(e, "unknown message type %u", (unsigned)(frame[0] << 8 | frame[1]));
		return;
	}
	if (r < 0) {
		ext_fault(e, "malformed frame header (%zu bytes)", len);
		return;
	}
	if (!ne_msg_from_extension(h.type)) {
		ext_fault(e, "sent %s, which only the daemon may send", ne_msg_type_name(h.type));
		return;
	}
	if (e->state == EXT_STARTING && h.type != NE_MSG_HELLO) {
		ext_fault(e, "sent %s before HELLO", ne_msg_type_name(h.type));
		return;
	}
	r = frame_handlers[h.type](e, &h, frame + NE_WIRE_HDR_LEN, len - NE_WIRE_HDR_LEN);
	if (r == -EBADMSG)
		ext_fault(e, "malformed %s payload (%zu bytes)", ne_msg_type_name(h.type), len);
	else if (r == -EPROTO)
		ext_fault(e, "unexpected %s (id %llu) in state %s", ne_msg_type_name(h.type),
			  (unsigned long long)h.id, ext_state_names[e->state]);
}

static int ext_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ext *e = userdata;
	int i, n;

	for (i = 0; i < EXT_READ_BUDGET && e->fd >= 0; i++) {
		n = ne_wire_recv(e->fd, ext_rbuf, sizeof(ext_rbuf), NULL, NULL);
		if (n == -EAGAIN || n == -EINTR)
			break;
		if (n == 0 || n == -ECONNRESET) {
			/* Usually the process is dying (ECONNRESET: it died with frames unread, as
			 * when the administrator's restart killed it): wait for its exit status,
			 * which says why, and kill it only if it lingers without a channel. */
			sd_event_source_disable_unref(e->io_src);
			e->io_src = NULL;
			ne_closep(&e->fd);
			ext_arm_timer(e, EXT_EOF_GRACE_MS);
			break;
		}
		if (n == -EMSGSIZE) {
			ext_fault(e, "sent an oversized frame (limit %d bytes)", NE_WIRE_MAX);
			break;
		}
		if (n == -EBADMSG) {
			ext_fault(e, "passed file descriptors, which extensions may not send");
			break;
		}
		if (n < 0) {
			ext_fault(e, "channel receive failed: %s", strerror(-n));
			break;
		}
		ext_handle_frame(e, ext_rbuf, (size_t)n);
	}
	(void)s;
	(void)revents;
	return 0;
}

/* The extension's stdout and stderr, logged line by line under its name. */
static int ext_on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ext *e = userdata;
	char buf[4096];
	ssize_t n, i;

	n = read(fd, buf, sizeof(buf));
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		sd_event_source_disable_unref(e->err_src);
		e->err_src = NULL;
		ne_closep(&e->errfd);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (buf[i] == '\n' || e->errlen == sizeof(e->errline) - 1) {
			e->errline[e->errlen] = '\0';
			if (e->errlen)
				ext_log_line(e, LOG_INFO, e->errline);
			e->errlen = 0;
			if (buf[i] == '\n')
				continue;
		}
		e->errline[e->errlen++] = (buf[i] >= 0x20 || buf[i] == '\t') ? buf[i] : '?';
	}
	(void)s;
	(void)revents;
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------------- */

static void ext_kill(struct ext *e)
{
	if (e->child_src && e->pid > 0)
		sd_event_source_send_child_signal(e->child_src, SIGKILL, NULL, 0);
}

static void ext_fault(struct ext *e, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->fd < 0 && e->pid <= 0)
		return;
	e->faults++;
	log_warnx("extension %s: protocol fault: %s; killing pid %d", e->id, msg, (int)e->pid);
	snprintf(e->reason, sizeof(e->reason), "protocol fault: %s", msg);
	/* Stop reading at once: nothing more from this process is trusted. */
	sd_event_source_disable_unref(e->io_src);
	e->io_src = NULL;
	ne_closep(&e->fd);
	ext_kill(e);
}

static int ext_on_ping(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct ext *e = userdata;
	struct ne_wbuf b = ext_wb();
	uint64_t now = ne_now_usec();

	sd_event_source_set_time_relative(s, (uint64_t)e->d->opt.heartbeat_ms * 1000);
	if (e->state != EXT_RUNNING && e->state != EXT_STOPPING)
		return 0;
	if (e->ping_outstanding) {
		if (now - e->ping_sent_usec >= (uint64_t)e->d->opt.heartbeat_timeout_ms * 1000) {
			log_warnx("extension %s: hung: no heartbeat answer in %u ms", e->id,
				  e->d->opt.heartbeat_timeout_ms);
			snprintf(e->reason, sizeof(e->reason), "hung: no heartbeat answer in %u ms",
				 e->d->opt.heartbeat_timeout_ms);
			e->faults++;
			ext_kill(e);
		}
		return 0;
	}
	e->ping_outstanding = true;
	e->ping_sent_usec = now;
	ext_send(e, ne_msg_empty_encode(&b, NE_MSG_PING, ++e->ping_seq));
	(void)usec;
	return 0;
}

static int ext_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct ext *e = userdata;

	if (e->fd < 0 && e->pid > 0 && e->state != EXT_STOPPING) {
		log_warnx("extension %s: closed its channel but did not exit; killing it", e->id);
		snprintf(e->reason, sizeof(e->reason), "closed its channel without exiting");
		e->faults++;
		ext_kill(e);
		return 0;
	}
	switch (e->state) {
	case EXT_BACKOFF:
		ext_spawn(e);
		break;
	case EXT_STARTING:
		log_warnx("extension %s: no handshake within %u ms", e->id, e->d->opt.start_timeout_ms);
		snprintf(e->reason, sizeof(e->reason), "no handshake within %u ms",
			 e->d->opt.start_timeout_ms);
		ext_kill(e);
		break;
	case EXT_STOPPING:
		log_warnx("extension %s: did not stop within %u ms, killing it", e->id,
			  e->d->opt.stop_timeout_ms);
		ext_kill(e);
		break;
	default:
		break;
	}
	(void)s;
	(void)usec;
	return 0;
}

static void ext_arm_timer(struct ext *e, unsigned ms)
{
	sd_event_source_set_time_relative(e->timer, (uint64_t)ms * 1000);
	sd_event_source_set_enabled(e->timer, SD_EVENT_ONESHOT);
}

static void describe_status(const siginfo_t *si, char *buf, size_t size)
{
	if (si->si_code == CLD_EXITED)
		snprintf(buf, size, "exited with status %d", si->si_status);
	else
		snprintf(buf, size, "killed by signal %s%s", strsignal(si->si_status),
			 si->si_code == CLD_DUMPED ? " (core dumped)" : "");
}

/* Records a crash; returns true when the extension crashed too often to restart. */
static bool ext_record_crash(struct ext *e)
{
	uint64_t now = ne_now_usec(), window = (uint64_t)e->d->opt.restart_window_s * 1000000;
	unsigned i, n = 0;

	if (now - e->started_usec >= EXT_STABLE_USEC)
		e->backoff_ms = 0;
	if (e->n_crashes < NE_ARRAY_SIZE(e->crash_usec))
		e->crash_usec[e->n_crashes++] = now;
	else {
		memmove(e->crash_usec, e->crash_usec + 1, sizeof(e->crash_usec) - sizeof(uint64_t));
		e->crash_usec[e->n_crashes - 1] = now;
	}
	for (i = 0; i < e->n_crashes; i++)
		if (now - e->crash_usec[i] < window)
			n++;
	return n >= e->d->opt.restart_max;
}

static void ext_teardown(struct ext *e)
{
	struct ne_list *pos, *tmp;

	sd_event_source_disable_unref(e->io_src);
	sd_event_source_disable_unref(e->child_src);
	e->io_src = e->child_src = NULL;
	ne_closep(&e->fd);
	ne_closep(&e->pidfd);
	if (e->err_src) {
		ext_on_stderr(e->err_src, e->errfd, EPOLLIN, e); /* last words */
		sd_event_source_disable_unref(e->err_src);
		e->err_src = NULL;
	}
	ne_closep(&e->errfd);
	sd_event_source_set_enabled(e->ping_timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
	e->ping_outstanding = false;
	e->pid = 0;
	pending_fail_all(e, "exited before answering");
	ne_list_for_each(pos, tmp, &e->providers)
		prov_free(ne_container_of(pos, struct provider, link));
	/* Children the extension forked die with its cgroup. */
	if (e->d->cgroup_mount[0])
		cgroup_remove(e->d->cgroup_mount, e->cgroup);
}

static void ext_free(struct ext *e)
{
	free(e->next);
	e->next = NULL;
	sd_event_source_disable_unref(e->timer);
	sd_event_source_disable_unref(e->ping_timer);
	ne_list_remove(&e->link);
	free(e);
}

/* Frees a removed extension; tells sysext when it asked for the removal. */
static void ext_removed(struct ext *e)
{
	struct daemon *d = e->d;
	char id[sizeof(e->id)];
	bool tell = e->deactivating;

	ne_strscpy(id, e->id, sizeof(id));
	log_info("extension %s: removed", id);
	ext_free(e);
	if (tell)
		sysext_on_deactivated(d, id);
	/* Its configurations went with its record: a fail-closed filter or DNS proxy must not
	 * outlive them. */
	filter_reconfigure(d);
	dnsprov_reconfigure(d);
	pktfilter_reconfigure(d);
	tunnel_reconfigure(d);
}

/* The old version of a replaced extension is gone: start the new one. */
static void ext_switch(struct ext *e)
{
	struct store_extension *se = e->next;

	e->next = NULL;
	e->n_crashes = 0;
	e->backoff_ms = 0;
	e->state = EXT_STOPPED;
	if (ext_apply(e, se) < 0)
		e->state = EXT_FAILED;
	log_info("extension %s: now version %u (%s)", e->id, se->b.version, se->b.short_version);
	free(se);
	if (e->state == EXT_STOPPED && !e->d->shutting_down)
		ext_spawn(e);
	sysext_on_replaced(e->d, e->id);
}

static void ext_after_exit(struct ext *e, const char *status, bool expected)
{
	unsigned delay;

	if (e->removing) {
		ext_removed(e);
		return;
	}
	if (e->next) {
		ext_switch(e);
		return;
	}
	if (expected) {
		e->state = EXT_STOPPED;
		return;
	}
	e->restarts++;
	if (ext_record_crash(e)) {
		e->state = EXT_FAILED;
		log_warnx("extension %s: %s; crashed %u times in %u s, giving up (netextctl restart %s)",
			  e->id, status, e->d->opt.restart_max, e->d->opt.restart_window_s, e->id);
		tunnel_reconfigure(e->d);
		return;
	}
	/* The first crash after a stable run restarts at once; a crash loop backs off. */
	delay = e->backoff_ms;
	e->backoff_ms = e->backoff_ms ? NE_MIN(e->backoff_ms * 2, EXT_BACKOFF_MAX_MS) : EXT_BACKOFF_MIN_MS;
	e->state = EXT_BACKOFF;
	log_warnx("extension %s: %s; restarting in %u ms", e->id, status, delay);
	if (delay == 0) {
		ext_spawn(e);
		return;
	}
	ext_arm_timer(e, delay);
}

static int ext_on_child(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct ext *e = userdata;
	struct daemon *d = e->d;
	char status[128];
	bool expected = e->state == EXT_STOPPING || d->shutting_down;

	describe_status(si, status, sizeof(status));
	if (e->reason[0] && !expected)
		snprintf(e->last_exit, sizeof(e->last_exit), "%s (%s)", e->reason, status);
	else
		snprintf(e->last_exit, sizeof(e->last_exit), "%s", status);
	if (expected)
		log_info("extension %s: pid %d %s", e->id, (int)e->pid, status);
	ext_teardown(e);
	ext_after_exit(e, e->last_exit, expected);
	daemon_maybe_exit(d);
	(void)s;
	return 0;
}

static size_t build_env(char **env, size_t max, char *store, size_t store_size, const char *id,
			const char *bundle)
{
	static const char *const pass[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "TZ", "LANG" };
	size_t n = 0, off = 0, i;
	int w;

#define ENV_ADD(...)                                                                      \
	do {                                                                              \
		w = snprintf(store + off, store_size - off, __VA_ARGS__);                  \
		if (w < 0 || (size_t)w >= store_size - off || n + 1 >= max)                \
			break;                                                            \
		env[n++] = store + off;                                                   \
		off += (size_t)w + 1;                                                     \
	} while (0)

	ENV_ADD("NETEXT_FD=%d", NE_EXTENSION_FD);
	ENV_ADD("NETEXT_IDENTIFIER=%s", id);
	if (bundle)
		ENV_ADD("NETEXT_BUNDLE=%s", bundle);
	ENV_ADD("PATH=/usr/local/bin:/usr/bin:/bin");
	for (i = 0; i < NE_ARRAY_SIZE(pass); i++) {
		const char *v = getenv(pass[i]);

		if (!v)
			continue;
		/* LeakSanitizer needs ptrace, which the seccomp filter refuses. */
		if (!strcmp(pass[i], "ASAN_OPTIONS"))
			ENV_ADD("%s=%s:detect_leaks=0", pass[i], v);
		else
			ENV_ADD("%s=%s", pass[i], v);
	}
#undef ENV_ADD
	env[n] = NULL;
	return n;
}

static int ext_setup_channel(struct ext *e, int fd, int errfd)
{
	struct daemon *d = e->d;
	int sndbuf = EXT_SNDBUF;

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	e->fd = fd;
	e->errfd = errfd;
	if (sd_event_add_io(d->event, &e->io_src, fd, EPOLLIN, ext_on_io, e) < 0)
		return -ENOMEM;
	if (sd_event_add_io(d->event, &e->err_src, errfd, EPOLLIN, ext_on_stderr, e) < 0)
		return -ENOMEM;
	return sd_event_add_child_pidfd(d->event, &e->child_src, e->pidfd, WEXITED, ext_on_child, e);
}

/* Binaries are executed through an fd opened here, as root, so the extension's user needs
 * no access to the path's directories. Scripts cannot be (their interpreter reopens the
 * fd by path, and it is close-on-exec): they run by path, which that user must reach. */
static int open_executable(const char *path, int *ret_fd)
{
	char magic[2] = { 0, 0 };
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ne_negerrno();
	if (read(fd, magic, sizeof(magic)) == 2 && magic[0] == '#' && magic[1] == '!') {
		close(fd);
		*ret_fd = -1;
		return 0;
	}
	*ret_fd = fd;
	return 0;
}

static int ext_do_spawn(struct ext *e, char *err, size_t errlen)
{
	struct daemon *d = e->d;
	char envstore[8192], *env[16], bundle[PATH_MAX];
	char *argv[] = { e->executable, NULL };
	_cleanup_close_ int procs = -1, exec_fd = -1;
	int sv[2] = { -1, -1 }, ep[2] = { -1, -1 };
	struct sandbox_spec spec = { 0 };
	int r;

	if (e->b.dir[0])
		snprintf(bundle, sizeof(bundle), "%s/%s", d->bundles_dir, e->b.dir);
	build_env(env, NE_ARRAY_SIZE(env), envstore, sizeof(envstore), e->id,
		  e->b.dir[0] ? bundle : NULL);
	r = open_executable(e->executable, &exec_fd);
	if (r < 0) {
		snprintf(err, errlen, "cannot open %s: %s", e->executable, strerror(-r));
		return r;
	}
	if (d->cgroup_mount[0]) {
		cgroup_remove(d->cgroup_mount, e->cgroup);
		r = cgroup_create(d->cgroup_mount, e->cgroup);
		if (r < 0) {
			snprintf(err, errlen, "cannot create cgroup %s: %s", e->cgroup, strerror(-r));
			return r;
		}
		procs = cgroup_open_procs(d->cgroup_mount, e->cgroup);
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0 ||
	    pipe2(ep, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "cannot make channel: %s", strerror(errno));
		r = ne_negerrno();
		goto fail;
	}
	spec.executable = e->executable;
	spec.argv = argv;
	spec.envp = env;
	spec.uid = e->uid;
	spec.gid = e->gid;
	spec.channel_fd = sv[1];
	spec.stdout_fd = ep[1];
	spec.stderr_fd = ep[1];
	spec.cgroup_procs_fd = procs;
	spec.seccomp = true;
	spec.exec_fd = exec_fd;
	/* Bundles get Internet sockets only when their manifest asks for "network";
	 * developer registrations (no manifest) keep them. Bundled extensions run in their
	 * bundle directory. */
	spec.allow_inet = !e->b.dir[0] || (e->b.permissions & NE_PERM_NETWORK);
	spec.cwd = e->b.dir[0] ? bundle : NULL;
	r = sandbox_spawn(&spec, &e->pid, &e->pidfd, err, errlen);
	ne_closep(&sv[1]);
	ne_closep(&ep[1]);
	if (r < 0)
		goto fail;
	r = ext_setup_channel(e, sv[0], ep[0]);
	if (r < 0) {
		snprintf(err, errlen, "cannot watch the process: %s", strerror(-r));
		sv[0] = ep[0] = -1; /* owned by e now; teardown closes them */
		kill(e->pid, SIGKILL);
		return r;
	}
	return 0;
fail:
	ne_closep(&sv[0]);
	ne_closep(&sv[1]);
	ne_closep(&ep[0]);
	ne_closep(&ep[1]);
	return r;
}

static void ext_spawn(struct ext *e)
{
	char err[256] = "";
	int r;

	e->state = EXT_STARTING;
	e->reason[0] = '\0';
	e->started_usec = ne_now_usec();
	e->ping_outstanding = false;
	r = ext_do_spawn(e, err, sizeof(err));
	if (r < 0) {
		snprintf(e->last_exit, sizeof(e->last_exit), "cannot start: %s", err);
		if (e->child_src) {
			/* The process exists; its exit handler does the accounting. */
			return;
		}
		ext_teardown(e);
		ext_after_exit(e, e->last_exit, false);
		return;
	}
	log_debug("extension %s: spawned pid %d", e->id, (int)e->pid);
	ext_arm_timer(e, e->d->opt.start_timeout_ms);
}

/* Takes the executable, user and bundle of se; a user that cannot run extensions leaves e
 * unusable (-EPERM / -ENOENT), with the reason in last_exit. */
static int ext_apply(struct ext *e, const struct store_extension *se)
{
	int r;

	ne_strscpy(e->executable, se->executable, sizeof(e->executable));
	ne_strscpy(e->user, se->user, sizeof(e->user));
	e->b = se->b;
	r = sandbox_resolve_user(e->user, &e->uid, &e->gid);
	if (r < 0) {
		log_warnx("extension %s: user '%s' cannot run extensions: %s", e->id, e->user,
			  strerror(-r));
		snprintf(e->last_exit, sizeof(e->last_exit), "user '%s' is unusable: %s", e->user,
			 strerror(-r));
	}
	return r;
}

static int ext_new(struct daemon *d, const struct store_extension *se, struct ext **ret)
{
	struct ext *e;
	int r;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->d = d;
	e->fd = e->pidfd = e->errfd = -1;
	ne_strscpy(e->id, se->identifier, sizeof(e->id));
	snprintf(e->cgroup, sizeof(e->cgroup), "%s/ext-%s", d->cgroup_base, e->id);
	e->log_tokens = EXT_LOG_BURST;
	e->log_refill_usec = ne_now_usec();
	ne_list_init(&e->providers);
	ne_list_init(&e->pending);
	r = ext_apply(e, se);
	if (sd_event_add_time_relative(d->event, &e->timer, CLOCK_MONOTONIC, UINT64_MAX / 2, 0,
				       ext_on_timer, e) < 0 ||
	    sd_event_add_time_relative(d->event, &e->ping_timer, CLOCK_MONOTONIC,
				       (uint64_t)d->opt.heartbeat_ms * 1000, 0, ext_on_ping, e) < 0) {
		sd_event_source_disable_unref(e->timer);
		free(e);
		return -ENOMEM;
	}
	sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
	sd_event_source_set_enabled(e->ping_timer, SD_EVENT_OFF);
	ne_list_init(&e->link);
	ne_list_append(&d->exts, &e->link);
	e->state = r < 0 ? EXT_FAILED : EXT_STOPPED;
	*ret = e;
	return 0;
}

static int load_cb(const struct store_extension *se, void *userdata)
{
	ext_install(userdata, se, NULL); /* one that cannot be set up is skipped, logged */
	return 0;
}

int ext_load_all(struct daemon *d)
{
	return store_extension_foreach(d->store, load_cb, d);
}

int ext_add(struct daemon *d, const char *identifier, const char *executable, const char *user,
	    struct ext **ret)
{
	struct store_extension se = { 0 };
	int r;

	ne_strscpy(se.identifier, identifier, sizeof(se.identifier));
	ne_strscpy(se.executable, executable, sizeof(se.executable));
	ne_strscpy(se.user, user, sizeof(se.user));
	se.enabled = true;
	se.developer = true;
	se.created = (int64_t)time(NULL);
	r = store_extension_put(d->store, &se);
	if (r < 0)
		return r;
	return ext_install(d, &se, ret);
}

int ext_install(struct daemon *d, const struct store_extension *se, struct ext **ret)
{
	struct ext *e;
	int r;

	r = ext_new(d, se, &e);
	if (r < 0)
		return r;
	if (e->state == EXT_STOPPED && se->enabled)
		ext_spawn(e);
	if (ret)
		*ret = e;
	return 0;
}

static void ext_stop_process(struct ext *e, ne_stop_reason reason);

int ext_replace(struct ext *e, const struct store_extension *se)
{
	struct store_extension *copy;

	if (e->pid <= 0) {
		sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
		e->state = EXT_STOPPED;
		e->n_crashes = 0;
		e->backoff_ms = 0;
		if (ext_apply(e, se) < 0)
			e->state = EXT_FAILED;
		else if (se->enabled)
			ext_spawn(e);
		return 0;
	}
	copy = malloc(sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	*copy = *se;
	free(e->next);
	e->next = copy;
	log_info("extension %s: replacing version %u with %u: stopping providers (app-update)",
		 e->id, e->b.version, se->b.version);
	ext_stop_process(e, NE_STOP_REASON_APP_UPDATE);
	/* A process that never got to the handshake is killed; either way the exit
	 * handler starts the new version. */
	return 1;
}

int ext_deactivate(struct ext *e)
{
	e->removing = true;
	free(e->next);
	e->next = NULL;
	if (e->pid <= 0) {
		ext_teardown(e);
		ext_free(e);
		return 0;
	}
	e->deactivating = true;
	log_info("extension %s: deactivating: stopping providers", e->id);
	ext_stop_process(e, NE_STOP_REASON_CONFIGURATION_REMOVED);
	return 1;
}

const char *ext_lifecycle(const struct ext *e)
{
	return e->next ? "replacing" : e->removing ? "deactivating" : "enabled";
}

/* Stops every provider with reason, then closes the channel; the process exits. */
static void ext_stop_process(struct ext *e, ne_stop_reason reason)
{
	struct ne_list *pos, *tmp;

	if (e->pid <= 0) {
		if (e->removing) {
			ext_teardown(e);
			ext_removed(e);
		} else {
			e->state = EXT_STOPPED;
			sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
		}
		return;
	}
	if (e->state == EXT_STARTING || e->fd < 0) {
		e->state = EXT_STOPPING;
		ext_kill(e);
		return;
	}
	e->state = EXT_STOPPING;
	ext_arm_timer(e, e->d->opt.stop_timeout_ms);
	ne_list_for_each(pos, tmp, &e->providers) {
		struct provider *p = ne_container_of(pos, struct provider, link);

		if (p->state != PROV_STOPPING && prov_send_stop(p, reason, NULL) < 0)
			return;
	}
	ext_close_channel_if_done(e);
}

int ext_remove(struct ext *e)
{
	int r = store_extension_delete(e->d->store, e->id);

	if (r < 0)
		return r;
	e->removing = true;
	log_info("extension %s: removing", e->id);
	ext_stop_process(e, NE_STOP_REASON_CONFIGURATION_REMOVED);
	return 0;
}

int ext_restart(struct ext *e)
{
	e->n_crashes = 0;
	e->backoff_ms = 0;
	if (e->state == EXT_FAILED || e->state == EXT_STOPPED || e->state == EXT_BACKOFF) {
		sd_event_source_set_enabled(e->timer, SD_EVENT_OFF);
		if (sandbox_resolve_user(e->user, &e->uid, &e->gid) < 0)
			return -EPERM;
		ext_spawn(e);
		return 0;
	}
	/* Running: kill it; the exit path restarts it at once. */
	snprintf(e->reason, sizeof(e->reason), "restarted by the administrator");
	e->backoff_ms = 0;
	ext_kill(e);
	return 0;
}

void ext_shutdown_all(struct daemon *d)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &d->exts)
		ext_stop_process(ne_container_of(pos, struct ext, link), NE_STOP_REASON_DAEMON_SHUTDOWN);
}

bool ext_all_exited(const struct daemon *d)
{
	const struct ne_list *pos;

	for (pos = d->exts.next; pos != &d->exts; pos = pos->next)
		if (ne_container_of(pos, struct ext, link)->pid > 0)
			return false;
	return true;
}

/* ---- configurations (control requests) -------------------------------------------- */

static int running_ext_for(struct daemon *d, const struct store_config *c, struct ctl_req *req,
			   struct ext **ret)
{
	struct ext *e = ext_find(d, c->extension);

	if (!e) {
		ctl_req_error(req, "not-found", "extension %s is not installed", c->extension);
		return -ENOENT;
	}
	if (e->state == EXT_FAILED) {
		ctl_req_error(req, "failed", "extension %s has failed (%s); run: netextctl restart %s",
			      e->id, e->last_exit, e->id);
		return -EIO;
	}
	*ret = e;
	return 0;
}

int ext_config_start(struct daemon *d, const char *config, struct ctl_req *req)
{
	struct store_config c = { 0 };
	struct ext *e;
	int r;

	r = store_config_get(d->store, config, &c);
	if (r < 0) {
		ctl_req_error(req, "not-found", "no configuration named %s", config);
		return 0;
	}
	if (running_ext_for(d, &c, req, &e) < 0)
		goto out;
	if (prov_by_config(d, config)) {
		ctl_req_error(req, "exists", "configuration %s is already started", config);
		goto out;
	}
	if (e->state == EXT_RUNNING && !ext_offers(e, c.provider_type)) {
		ctl_req_error(req, "unsupported", "extension %s does not offer a %s provider", e->id,
			      ne_provider_type_name(c.provider_type));
		goto out;
	}
	r = store_config_set_enabled(d->store, config, true);
	if (r < 0) {
		ctl_req_error(req, "internal", "cannot save: %s", strerror(-r));
		goto out;
	}
	filter_reconfigure(d);
	dnsprov_reconfigure(d);
	pktfilter_reconfigure(d);
	if (e->state == EXT_RUNNING)
		prov_send_start(e, &c, req);
	else
		ctl_req_reply(req, json_pack("{s:s, s:s, s:s}", "configuration", config, "state",
					     "enabled", "message",
					     "starts when its extension is running"));
out:
	store_config_clear(&c);
	return 0;
}

int ext_config_stop(struct daemon *d, const char *config, struct ctl_req *req)
{
	struct provider *p;
	int r;

	r = store_config_set_enabled(d->store, config, false);
	if (r == -ENOENT) {
		ctl_req_error(req, "not-found", "no configuration named %s", config);
		return 0;
	}
	filter_reconfigure(d);
	dnsprov_reconfigure(d);
	pktfilter_reconfigure(d);
	tunnel_reconfigure(d);
	p = prov_by_config(d, config);
	if (!p || p->ext->fd < 0) {
		ctl_req_reply(req, json_pack("{s:s, s:s}", "configuration", config, "state", "stopped"));
		return 0;
	}
	prov_send_stop(p, NE_STOP_REASON_USER_INITIATED, req);
	return 0;
}

void ext_config_stop_reason(struct daemon *d, const char *config, int reason)
{
	struct provider *p = prov_by_config(d, config);

	/* Not restarted with its extension: a provider that gave up stays stopped. */
	store_config_set_enabled(d->store, config, false);
	tunnel_reconfigure(d);
	if (p && p->ext->fd >= 0)
		prov_send_stop(p, (ne_stop_reason)reason, NULL);
}

void ext_config_removed(struct daemon *d, const char *config)
{
	struct provider *p = prov_by_config(d, config);

	if (p && p->ext->fd >= 0)
		prov_send_stop(p, NE_STOP_REASON_CONFIGURATION_REMOVED, NULL);
}

int ext_config_message(struct daemon *d, const char *config, const void *data, size_t len,
		       struct ctl_req *req)
{
	struct provider *p = prov_by_config(d, config);
	struct ne_msg_app_message m;
	struct ne_wbuf b = ext_wb();
	struct pending *pd;

	if (!p || p->state != PROV_RUNNING || p->ext->fd < 0) {
		ctl_req_error(req, "not-running", "configuration %s is not running", config);
		return 0;
	}
	if (len > NE_WIRE_BLOB_MAX) {
		ctl_req_error(req, "invalid-params", "message too large (%zu bytes, limit %d)", len,
			      NE_WIRE_BLOB_MAX);
		return 0;
	}
	pd = pending_new(p->ext, PENDING_MESSAGE, p->handle, req, d->opt.message_timeout_ms);
	if (!pd) {
		ctl_req_error(req, "internal", "out of memory");
		return 0;
	}
	m.provider = p->handle;
	m.data = (struct ne_view){ data, len };
	ext_send(p->ext, ne_msg_app_message_encode(&b, pd->id, &m));
	return 0;
}

/* ---- descriptions ---------------------------------------------------------------- */

static json_t *prov_json(const struct provider *p)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "configuration", p->config, "extension",
			 p->ext->id, "provider", ne_provider_type_name(p->type), "state",
			 prov_state_names[p->state], "uptime_ms",
			 (json_int_t)((ne_now_usec() - p->since_usec) / 1000));
}

static json_t *ext_json(const struct ext *e)
{
	json_t *provs = json_array(), *offered = json_array();
	const struct ne_list *pos;
	unsigned i;

	for (pos = e->providers.next; pos != &e->providers; pos = pos->next)
		json_array_append_new(provs, prov_json(ne_container_of(pos, struct provider, link)));
	for (i = 0; i < e->n_offered; i++)
		json_array_append_new(offered, json_string(ne_provider_type_name(e->offered[i])));
	return json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:i, s:I, s:i, s:i, s:s, s:s, s:o, s:o,"
			 " s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s}",
			 "identifier", e->id, "executable", e->executable, "user", e->user,
			 "uid", (int)e->uid, "gid", (int)e->gid, "state", ext_state_names[e->state],
			 "pid", (int)e->pid, "uptime_ms",
			 (json_int_t)(e->pid > 0 ? (ne_now_usec() - e->started_usec) / 1000 : 0),
			 "restarts", (int)e->restarts, "faults", (int)e->faults,
			 "last_exit", e->last_exit, "cgroup", e->cgroup, "offers", offered,
			 "providers", provs, "lifecycle", ext_lifecycle(e), "team", e->b.team,
			 "version", (json_int_t)e->b.version, "short_version", e->b.short_version,
			 "declared_providers", e->b.providers, "permissions",
			 e->b.dir[0] ? ((e->b.permissions & NE_PERM_NETWORK) ? "network" : "") : "network",
			 "description", e->b.description, "digest", e->b.digest, "bundle", e->b.dir);
}

void *ext_list_json(struct daemon *d)
{
	json_t *a = json_array();
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &d->exts)
		json_array_append_new(a, ext_json(ne_container_of(pos, struct ext, link)));
	return a;
}

void *ext_provider_json(struct daemon *d, const char *config)
{
	struct provider *p = prov_by_config(d, config);

	return p ? prov_json(p) : NULL;
}
