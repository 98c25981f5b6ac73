/* libnetext, extension side: the conversation with netextd over the seqpacket channel.
 *
 * Trust: frames come from netextd, which is privileged and means well, but the library
 * still checks each one in the daemon's order (header, role, exact decode, fit with the
 * conversation) and reports any failure as a protocol fault instead of guessing: the
 * extension then exits and netextd restarts it. The callbacks are the author's code: not
 * hostile, but not necessarily careful, so completions called twice, late, or after
 * ne_extension_free are detected by looking the handle up among the live ones before it
 * is dereferenced. (A handle whose memory was reused by a newer handle cannot be told
 * apart from it; that is the one case the lookup cannot catch.) */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netext/dnsproxy.h>
#include <netext/extension.h>
#include <netext/filter.h>
#include <netext/packet.h>
#include <netext/tunnel.h>

#include "lib-internal.h"
#include "util.h"

#define SEND_TIMEOUT_MS 5000
#define LOG_MAX 1024
#define LIBRARY_NAME "libnetext " NE_VERSION_STRING
/* The first table ever published: later headers may only append, so this stays fixed. */
#define OPS_MIN_SIZE \
	(offsetof(struct ne_provider_ops, app_message) + sizeof(((struct ne_provider_ops *)0)->app_message))

struct registration {
	bool used;
	struct ne_provider_ops ops;
	struct ne_filter_ops fops; /* filter-data providers */
	struct ne_dns_proxy_ops dops; /* dns-proxy providers */
	struct ne_packet_filter_ops pops; /* filter-packet providers */
	struct ne_tunnel_ops tops; /* packet-tunnel providers */
	void *userdata;
};

struct ne_provider {
	ne_extension *ext;
	ne_provider *next;
	uint32_t handle;
	ne_provider_type type;
	char *config;
	void *context;
	bool start_pending, started, stop_pending;
	uint64_t start_id, stop_id;
	struct nelib_filter *filter; /* filter-data providers: flows and settings (filter.c) */
	struct nelib_dns *dns;       /* dns-proxy providers: queries held (dnsproxy.c) */
	struct nelib_packet *packet; /* filter-packet providers: queues (packet.c); read by
				      * resume on any thread, under live_lock */
	struct nelib_tunnel *tunnel; /* packet-tunnel providers: device and requests
				      * (tunnel.c); read by writers under live_lock */
};

struct ne_message {
	ne_extension *ext;
	ne_message *next;
	const ne_provider *provider;
	uint64_t id;
};

struct ne_extension {
	ne_extension *next_live;
	int fd;
	int status; /* 0; 1 once the daemon closed the channel; or the protocol fault */
	bool welcomed, dispatching;
	char *identifier;
	uint32_t heartbeat_ms;
	struct registration regs[NE_PROVIDER_TYPE_MAX + 1];
	ne_provider *providers;
	ne_message *messages;
	uint8_t rbuf[NE_WIRE_MAX];
	uint8_t wbuf[NE_WIRE_MAX];
};

/* Every live extension, so that completion functions can check a handle before use. The
 * lock guards this list and the provider and message lists hanging off it; it is never
 * held while a callback runs. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static ne_extension *live_exts;

static bool provider_live(const ne_provider *pv)
{
	const ne_extension *e;
	const ne_provider *q;
	bool found = false;

	pthread_mutex_lock(&live_lock);
	for (e = live_exts; e && !found; e = e->next_live)
		for (q = e->providers; q && !found; q = q->next)
			found = q == pv;
	pthread_mutex_unlock(&live_lock);
	return pv && found;
}

static bool message_live(const ne_message *msg)
{
	const ne_extension *e;
	const ne_message *q;
	bool found = false;

	pthread_mutex_lock(&live_lock);
	for (e = live_exts; e && !found; e = e->next_live)
		for (q = e->messages; q && !found; q = q->next)
			found = q == msg;
	pthread_mutex_unlock(&live_lock);
	return msg && found;
}

static void live_remove(ne_extension *ext)
{
	ne_extension **pp;

	pthread_mutex_lock(&live_lock);
	for (pp = &live_exts; *pp; pp = &(*pp)->next_live)
		if (*pp == ext) {
			*pp = ext->next_live;
			break;
		}
	pthread_mutex_unlock(&live_lock);
}

/* --- sending ------------------------------------------------------------------------ */

static struct ne_wbuf wbuf(ne_extension *ext)
{
	struct ne_wbuf b = { ext->wbuf, 0, sizeof(ext->wbuf), 0 };

	return b;
}

static int wait_writable(int fd, unsigned long long deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int ms = nelib_ms_left(deadline, SEND_TIMEOUT_MS);

	if (ms == 0)
		return -ETIMEDOUT;
	if (poll(&p, 1, ms) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Sends the frame of length len (or passes on the encoder's error) from ext->wbuf. The
 * channel is non-blocking; an extension may wait for the daemon to read, but not forever. */
static int send_frame(ne_extension *ext, int len)
{
	unsigned long long deadline = ne_now_usec() + SEND_TIMEOUT_MS * 1000ULL;
	int r;

	if (len < 0)
		return len;
	if (ext->fd < 0)
		return -ENOTCONN;
	for (;;) {
		r = ne_wire_send(ext->fd, ext->wbuf, (size_t)len, NULL, 0);
		if (r >= 0)
			return 0;
		if (r != -EAGAIN && r != -EINTR)
			return r;
		r = wait_writable(ext->fd, deadline);
		if (r < 0)
			return r;
	}
}

int nelib_send(ne_extension *ext, int len)
{
	return send_frame(ext, len);
}

struct ne_wbuf nelib_wbuf(ne_extension *ext)
{
	return wbuf(ext);
}

static int send_empty(ne_extension *ext, uint16_t type, uint64_t id)
{
	struct ne_wbuf b = wbuf(ext);

	return send_frame(ext, ne_msg_empty_encode(&b, type, id));
}

static int send_start_done(ne_extension *ext, uint64_t id, int error, const char *message)
{
	char text[NE_WIRE_STR_MAX + 1];
	struct ne_msg_result m = { .error = error, .message = { text, 0 } };
	struct ne_wbuf b = wbuf(ext);

	m.message.len = nelib_sanitize(text, message, NE_WIRE_STR_MAX);
	return send_frame(ext, ne_msg_result_encode(&b, id, &m));
}

static int send_app_reply(ne_extension *ext, uint64_t id, int error, const void *data,
			  size_t len)
{
	struct ne_msg_app_reply m = { .error = error, .data = { data ? data : "", len } };
	struct ne_wbuf b = wbuf(ext);

	return send_frame(ext, ne_msg_app_reply_encode(&b, id, &m));
}

static int send_hello(ne_extension *ext)
{
	struct ne_msg_hello m = { .min_version = NE_WIRE_VERSION, .max_version = NE_WIRE_VERSION,
				  .library = { LIBRARY_NAME, strlen(LIBRARY_NAME) } };
	struct ne_wbuf b = wbuf(ext);
	int t;

	for (t = 1; t <= NE_PROVIDER_TYPE_MAX; t++)
		if (ext->regs[t].used)
			m.providers[m.n_providers++] = (uint16_t)t;
	return send_frame(ext, ne_msg_hello_encode(&b, &m));
}

/* --- providers and messages ------------------------------------------------------------ */

static ne_provider *find_provider(const ne_extension *ext, uint32_t handle)
{
	ne_provider *pv;

	for (pv = ext->providers; pv; pv = pv->next)
		if (pv->handle == handle)
			return pv;
	return NULL;
}

static void message_free(ne_message *msg)
{
	ne_message **pp;

	pthread_mutex_lock(&live_lock);
	for (pp = &msg->ext->messages; *pp; pp = &(*pp)->next)
		if (*pp == msg) {
			*pp = msg->next;
			break;
		}
	pthread_mutex_unlock(&live_lock);
	free(msg);
}

static int message_new(ne_extension *ext, const ne_provider *pv, uint64_t id,
		       ne_message **ret_msg)
{
	ne_message *msg = calloc(1, sizeof(*msg));

	if (!msg)
		return -ENOMEM;
	msg->ext = ext;
	msg->provider = pv;
	msg->id = id;
	pthread_mutex_lock(&live_lock);
	msg->next = ext->messages;
	ext->messages = msg;
	pthread_mutex_unlock(&live_lock);
	*ret_msg = msg;
	return 0;
}

/* Frees a provider and the app messages still waiting for its reply: once a provider is
 * gone the daemon no longer expects those replies. */
static void provider_free(ne_provider *pv)
{
	ne_extension *ext = pv->ext;
	ne_provider **pp;
	ne_message *msg, *next;

	for (msg = ext->messages; msg; msg = next) {
		next = msg->next;
		if (msg->provider == pv)
			message_free(msg);
	}
	pthread_mutex_lock(&live_lock);
	for (pp = &ext->providers; *pp; pp = &(*pp)->next)
		if (*pp == pv) {
			*pp = pv->next;
			break;
		}
	pthread_mutex_unlock(&live_lock);
	nelib_filter_free(pv->filter);
	nelib_dns_free(pv->dns);
	nelib_packet_free(pv->packet); /* joins the workers, which use pv */
	nelib_tunnel_free(pv->tunnel); /* joins the packet threads, which use pv */
	free(pv->config);
	free(pv);
}

static int provider_new(ne_extension *ext, const struct ne_msg_start *m, uint64_t id,
			ne_provider **ret_pv)
{
	ne_provider *pv = calloc(1, sizeof(*pv));

	if (!pv)
		return -ENOMEM;
	pv->config = strndup(m->config.p, m->config.len);
	if (!pv->config) {
		free(pv);
		return -ENOMEM;
	}
	pv->ext = ext;
	pv->handle = m->provider;
	pv->type = (ne_provider_type)m->type;
	pv->start_pending = true;
	pv->start_id = id;
	pthread_mutex_lock(&live_lock);
	pv->next = ext->providers;
	ext->providers = pv;
	pthread_mutex_unlock(&live_lock);
	*ret_pv = pv;
	return 0;
}

static const struct registration *registration_for(const ne_extension *ext, uint16_t type)
{
	if (type == 0 || type > NE_PROVIDER_TYPE_MAX || !ext->regs[type].used)
		return NULL;
	return &ext->regs[type];
}

ne_provider *nelib_find_provider(const ne_extension *ext, uint32_t handle)
{
	return find_provider(ext, handle);
}

bool nelib_provider_live(const ne_provider *pv)
{
	return provider_live(pv);
}

/* The provider's filter state, created on first use; NULL for other provider types and
 * providers that are stopping (settings may be applied while the start is pending). */
struct nelib_filter *nelib_provider_filter(ne_provider *pv, const struct ne_filter_ops **ret_ops,
					   void **ret_userdata)
{
	const struct registration *reg = registration_for(pv->ext, (uint16_t)pv->type);

	if (pv->type != NE_PROVIDER_FILTER_DATA || !reg || !(pv->started || pv->start_pending) ||
	    pv->stop_pending)
		return NULL;
	if (!pv->filter)
		pv->filter = nelib_filter_new();
	*ret_ops = &reg->fops;
	*ret_userdata = reg->userdata;
	return pv->filter;
}

uint32_t nelib_provider_handle(const ne_provider *pv)
{
	return pv->handle;
}

/* Created at the start (on_start), so NULL here means another type or no memory. */
struct nelib_dns *nelib_provider_dns(ne_provider *pv, const struct ne_dns_proxy_ops **ret_ops,
				     void **ret_userdata)
{
	const struct registration *reg = registration_for(pv->ext, (uint16_t)pv->type);

	if (pv->type != NE_PROVIDER_DNS_PROXY || !reg || !pv->started || pv->stop_pending)
		return NULL;
	*ret_ops = &reg->dops;
	*ret_userdata = reg->userdata;
	return pv->dns;
}

struct nelib_packet *nelib_provider_packet(ne_provider *pv)
{
	if (pv->type != NE_PROVIDER_FILTER_PACKET || !(pv->started || pv->start_pending) ||
	    pv->stop_pending)
		return NULL;
	return pv->packet;
}

struct nelib_packet *nelib_provider_packet_ref(ne_provider *pv)
{
	const ne_extension *e;
	const ne_provider *q;
	struct nelib_packet *st = NULL;

	pthread_mutex_lock(&live_lock);
	for (e = live_exts; e && !st; e = e->next_live)
		for (q = e->providers; q && !st; q = q->next)
			if (q == pv && pv->packet) {
				st = pv->packet;
				nelib_packet_ref(st);
			}
	pthread_mutex_unlock(&live_lock);
	return st;
}

struct nelib_tunnel *nelib_provider_tunnel(ne_provider *pv)
{
	if (pv->type != NE_PROVIDER_PACKET_TUNNEL || !(pv->started || pv->start_pending) ||
	    pv->stop_pending)
		return NULL;
	return pv->tunnel;
}

struct nelib_tunnel *nelib_provider_tunnel_ref(ne_provider *pv)
{
	const ne_extension *e;
	const ne_provider *q;
	struct nelib_tunnel *st = NULL;
	bool found = false;

	pthread_mutex_lock(&live_lock);
	for (e = live_exts; e && !found; e = e->next_live)
		for (q = e->providers; q && !found; q = q->next)
			if (q == pv) {
				found = true;
				st = pv->tunnel;
				if (st)
					nelib_tunnel_ref(st);
			}
	pthread_mutex_unlock(&live_lock);
	return st;
}

/* --- handlers of daemon frames: each returns 0 or a protocol fault ---------------------- */

static int on_welcome(ne_extension *ext, const uint8_t *p, size_t len)
{
	struct ne_msg_welcome m;
	char *id;

	if (ne_msg_welcome_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (m.version != NE_WIRE_VERSION)
		return -EPROTO;
	id = strndup(m.identifier.p, m.identifier.len);
	if (!id)
		return -ENOMEM;
	free(ext->identifier);
	ext->identifier = id;
	ext->heartbeat_ms = m.heartbeat_ms;
	ext->welcomed = true;
	return 0;
}

static int on_ping(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	if (ne_msg_empty_decode(p, len) < 0)
		return -EBADMSG;
	return send_empty(ext, NE_MSG_PONG, id);
}

static int refuse_start(ne_extension *ext, uint64_t id, uint16_t type)
{
	const char *name = ne_provider_type_name((ne_provider_type)type);
	char text[128];

	if (name)
		snprintf(text, sizeof(text), "provider type %s is not offered by this extension", name);
	else
		snprintf(text, sizeof(text), "provider type %u is not offered by this extension", type);
	return send_start_done(ext, id, -EOPNOTSUPP, text);
}

static int on_start(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	struct ne_msg_start m;
	const struct registration *reg;
	ne_options *opts;
	ne_provider *pv;
	int r;

	if (ne_msg_start_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (find_provider(ext, m.provider))
		return -EPROTO;
	reg = registration_for(ext, m.type);
	if (!reg)
		return refuse_start(ext, id, m.type);
	r = provider_new(ext, &m, id, &pv);
	if (r < 0)
		return send_start_done(ext, id, r, "libnetext: out of memory");
	r = nelib_options_new(&m, &opts);
	if (r == 0 && pv->type == NE_PROVIDER_DNS_PROXY && !(pv->dns = nelib_dns_new(opts))) {
		nelib_options_free(opts);
		r = -ENOMEM;
	}
	if (r == 0 && pv->type == NE_PROVIDER_FILTER_PACKET &&
	    !(pv->packet = nelib_packet_new(pv, opts, &reg->pops, reg->userdata))) {
		nelib_options_free(opts);
		r = -ENOMEM;
	}
	if (r == 0 && pv->type == NE_PROVIDER_PACKET_TUNNEL &&
	    !(pv->tunnel = nelib_tunnel_new(pv, &reg->tops, reg->userdata))) {
		nelib_options_free(opts);
		r = -ENOMEM;
	}
	if (r < 0) {
		provider_free(pv);
		return send_start_done(ext, id, r, "libnetext: out of memory");
	}
	if (reg->ops.start)
		reg->ops.start(pv, opts, reg->userdata);
	else
		r = ne_provider_start_done(pv, 0, NULL);
	nelib_options_free(opts);
	return r;
}

static int on_stop(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	const struct registration *reg;
	struct ne_msg_stop m;
	ne_provider *pv;

	if (ne_msg_stop_decode(p, len, &m) < 0)
		return -EBADMSG;
	pv = find_provider(ext, m.provider);
	if (!pv)
		return send_empty(ext, NE_MSG_STOP_DONE, id);
	if (pv->stop_pending)
		return -EPROTO;
	pv->stop_pending = true;
	pv->stop_id = id;
	reg = &ext->regs[pv->type];
	/* The packet handlers end before the stop callback frees what they use. */
	nelib_packet_stop(pv->packet);
	/* Requests still waiting fail first; their callbacks may complete the stop already. */
	nelib_tunnel_stop(pv->tunnel, true);
	if (!provider_live(pv))
		return 0;
	if (!reg->ops.stop)
		return ne_provider_stop_done(pv);
	/* Unknown reasons are passed on as they are: newer daemons may add some. */
	reg->ops.stop(pv, (ne_stop_reason)m.reason, reg->userdata);
	return 0;
}

static int on_app_message(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	const struct registration *reg;
	struct ne_msg_app_message m;
	ne_message *msg;
	ne_provider *pv;
	int r;

	if (ne_msg_app_message_decode(p, len, &m) < 0)
		return -EBADMSG;
	pv = find_provider(ext, m.provider);
	if (!pv)
		return send_app_reply(ext, id, -ENOENT, NULL, 0);
	if (!pv->started)
		return send_app_reply(ext, id, -ENOTCONN, NULL, 0);
	if (pv->stop_pending)
		return send_app_reply(ext, id, -ESHUTDOWN, NULL, 0);
	reg = &ext->regs[pv->type];
	if (!reg->ops.app_message)
		return send_app_reply(ext, id, -EOPNOTSUPP, NULL, 0);
	r = message_new(ext, pv, id, &msg);
	if (r < 0)
		return send_app_reply(ext, id, r, NULL, 0);
	reg->ops.app_message(pv, msg, m.data.p, m.data.len, reg->userdata);
	return 0;
}

static bool packet_result(const ne_extension *ext, uint64_t id)
{
	const ne_provider *pv = find_provider(ext, (uint32_t)(id >> 32));

	return pv && pv->type == NE_PROVIDER_FILTER_PACKET;
}

static bool tunnel_result(const ne_extension *ext, uint64_t id)
{
	const ne_provider *pv = find_provider(ext, (uint32_t)(id >> 32));

	return pv && pv->type == NE_PROVIDER_PACKET_TUNNEL;
}

static void close_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/* Only PACKET_QUEUE, TUNNEL_DEVICE and TUNNEL_SOCKET_FD carry fds; they are closed in
 * every other case. */
static int handle_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p,
			size_t len, int *fds, size_t nfds)
{
	if (h->type == NE_MSG_PACKET_QUEUE || (h->type == NE_MSG_RESULT && packet_result(ext, h->id)))
		return nelib_packet_frame(ext, h, p, len, fds, nfds);
	if (h->type == NE_MSG_TUNNEL_DEVICE || h->type == NE_MSG_TUNNEL_SOCKET_FD ||
	    (h->type == NE_MSG_RESULT && tunnel_result(ext, h->id)))
		return nelib_tunnel_frame(ext, h, p, len, fds, nfds);
	if (nfds) {
		close_fds(fds, nfds);
		return -EBADMSG;
	}
	switch (h->type) {
	case NE_MSG_WELCOME:
		return h->id == 0 ? on_welcome(ext, p, len) : -EBADMSG;
	case NE_MSG_PING:
		return on_ping(ext, h->id, p, len);
	case NE_MSG_START:
		return on_start(ext, h->id, p, len);
	case NE_MSG_STOP:
		return on_stop(ext, h->id, p, len);
	case NE_MSG_APP_MESSAGE:
		return on_app_message(ext, h->id, p, len);
	case NE_MSG_RESULT:
	case NE_MSG_FLOW_NEW:
	case NE_MSG_FLOW_REPORT:
		return nelib_filter_frame(ext, h, p, len);
	case NE_MSG_DNS_QUERY:
	case NE_MSG_DNS_RESPONSE:
		return nelib_dns_frame(ext, h, p, len);
	default:
		return -EPROTO;
	}
}

/* Receives and handles one frame: 0, -EAGAIN when none is ready, 1 at EOF, or a fault. */
static int dispatch_one(ne_extension *ext)
{
	int fds[NE_WIRE_MAX_FDS];
	size_t nfds = NE_WIRE_MAX_FDS;
	struct ne_msg_hdr h;
	int n, r;

	n = ne_wire_recv(ext->fd, ext->rbuf, sizeof(ext->rbuf), fds, &nfds);
	if (n <= 0)
		nfds = 0; /* ne_wire_recv closed any */
	if (n == 0)
		return 1;
	if (n == -EINTR)
		return 0;
	if (n == -EMSGSIZE)
		return -EBADMSG;
	if (n < 0)
		return n;
	r = ne_msg_hdr_decode(ext->rbuf, (size_t)n, &h);
	if (r == 0 && ne_msg_from_extension(h.type))
		r = -EPROTO;
	/* The handshake comes first and only once. */
	if (r == 0 && ext->welcomed == (h.type == NE_MSG_WELCOME))
		r = -EPROTO;
	if (r < 0) {
		close_fds(fds, nfds);
		return r;
	}
	return handle_frame(ext, &h, ext->rbuf + NE_WIRE_HDR_LEN, (size_t)n - NE_WIRE_HDR_LEN, fds, nfds);
}

/* --- public API --------------------------------------------------------------------------- */

int ne_extension_new(ne_extension **ret_ext)
{
	ne_extension *ext;

	if (!ret_ext)
		return -EINVAL;
	ext = calloc(1, sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	ext->fd = -1;
	pthread_mutex_lock(&live_lock);
	ext->next_live = live_exts;
	live_exts = ext;
	pthread_mutex_unlock(&live_lock);
	*ret_ext = ext;
	return 0;
}

/* Not from inside a callback of the same extension. */
void ne_extension_free(ne_extension *ext)
{
	if (!ext)
		return;
	live_remove(ext);
	while (ext->providers)
		provider_free(ext->providers);
	while (ext->messages)
		message_free(ext->messages);
	if (ext->fd >= 0)
		close(ext->fd);
	free(ext->identifier);
	free(ext);
}

int ne_extension_register(ne_extension *ext, ne_provider_type type,
			  const struct ne_provider_ops *ops, void *userdata)
{
	struct registration *reg;

	if (!ext || !ops || (int)type <= 0 || type > NE_PROVIDER_TYPE_MAX)
		return -EINVAL;
	if (ops->size < OPS_MIN_SIZE)
		return -EINVAL;
	if (ext->fd >= 0)
		return -EISCONN;
	reg = &ext->regs[type];
	if (reg->used)
		return -EEXIST;
	/* A table from newer headers may be longer: take the part this library knows. */
	memcpy(&reg->ops, ops, NE_MIN((size_t)ops->size, sizeof(reg->ops)));
	reg->ops.size = sizeof(reg->ops);
	reg->userdata = userdata;
	reg->used = true;
	return 0;
}

int ne_extension_register_filter(ne_extension *ext, const struct ne_provider_ops *ops,
				 const struct ne_filter_ops *filter_ops, void *userdata)
{
	int r;

	if (!ext || !filter_ops || filter_ops->size < sizeof(uint32_t) + sizeof(void *))
		return -EINVAL;
	r = ne_extension_register(ext, NE_PROVIDER_FILTER_DATA, ops, userdata);
	if (r < 0)
		return r;
	memcpy(&ext->regs[NE_PROVIDER_FILTER_DATA].fops, filter_ops,
	       NE_MIN((size_t)filter_ops->size, sizeof(struct ne_filter_ops)));
	ext->regs[NE_PROVIDER_FILTER_DATA].fops.size = sizeof(struct ne_filter_ops);
	return 0;
}

int nelib_register_packet(ne_extension *ext, const struct ne_provider_ops *ops,
			  const struct ne_packet_filter_ops *packet_ops, void *userdata)
{
	int r = ne_extension_register(ext, NE_PROVIDER_FILTER_PACKET, ops, userdata);

	if (r < 0)
		return r;
	memcpy(&ext->regs[NE_PROVIDER_FILTER_PACKET].pops, packet_ops,
	       NE_MIN((size_t)packet_ops->size, sizeof(struct ne_packet_filter_ops)));
	ext->regs[NE_PROVIDER_FILTER_PACKET].pops.size = sizeof(struct ne_packet_filter_ops);
	return 0;
}

int nelib_register_tunnel(ne_extension *ext, const struct ne_provider_ops *ops,
			  const struct ne_tunnel_ops *tunnel_ops, void *userdata)
{
	int r = ne_extension_register(ext, NE_PROVIDER_PACKET_TUNNEL, ops, userdata);

	if (r < 0)
		return r;
	memcpy(&ext->regs[NE_PROVIDER_PACKET_TUNNEL].tops, tunnel_ops,
	       NE_MIN((size_t)tunnel_ops->size, sizeof(struct ne_tunnel_ops)));
	ext->regs[NE_PROVIDER_PACKET_TUNNEL].tops.size = sizeof(struct ne_tunnel_ops);
	return 0;
}

int nelib_register_dns(ne_extension *ext, const struct ne_provider_ops *ops,
		       const struct ne_dns_proxy_ops *dns_ops, void *userdata)
{
	int r = ne_extension_register(ext, NE_PROVIDER_DNS_PROXY, ops, userdata);

	if (r < 0)
		return r;
	memcpy(&ext->regs[NE_PROVIDER_DNS_PROXY].dops, dns_ops,
	       NE_MIN((size_t)dns_ops->size, sizeof(struct ne_dns_proxy_ops)));
	ext->regs[NE_PROVIDER_DNS_PROXY].dops.size = sizeof(struct ne_dns_proxy_ops);
	return 0;
}

static int check_channel(int fd)
{
	int type = 0, domain = 0;
	socklen_t l = sizeof(type);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -ENOTCONN;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_SEQPACKET)
		return -ENOTCONN;
	l = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) < 0 || domain != AF_UNIX)
		return -ENOTCONN;
	return 0;
}

static int channel_fd(int *ret_fd)
{
	const char *s = getenv("NETEXT_FD");
	char *end;
	long v;

	if (!s) {
		*ret_fd = NE_EXTENSION_FD;
		return 0;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > INT_MAX)
		return -ENOTCONN;
	*ret_fd = (int)v;
	return 0;
}

static int set_fd_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return ne_negerrno();
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return ne_negerrno();
	return 0;
}

int ne_extension_connect(ne_extension *ext)
{
	int fd, r;

	if (!ext)
		return -EINVAL;
	if (ext->fd >= 0)
		return -EISCONN;
	r = channel_fd(&fd);
	if (r < 0)
		return r;
	return ne_extension_connect_fd(ext, fd);
}

/* On success the extension owns fd; on failure the caller still does. */
int ne_extension_connect_fd(ne_extension *ext, int fd)
{
	int r;

	if (!ext || fd < 0)
		return -EINVAL;
	if (ext->fd >= 0)
		return -EISCONN;
	r = check_channel(fd);
	if (r < 0)
		return r;
	r = set_fd_flags(fd);
	if (r < 0)
		return r;
	ext->fd = fd;
	ext->status = 0;
	ext->welcomed = false;
	r = send_hello(ext);
	if (r < 0)
		ext->fd = -1;
	return r;
}

int ne_extension_fd(const ne_extension *ext)
{
	return ext ? ext->fd : -EINVAL;
}

/* A packet worker found a ring garbled: a protocol fault like a bad frame. */
static int packet_fault(const ne_extension *ext)
{
	const ne_provider *pv;
	int r;

	for (pv = ext->providers; pv; pv = pv->next)
		if ((r = nelib_packet_fault(pv->packet)) < 0)
			return r;
	return 0;
}

/* The channel is gone: the daemon no longer reads verdicts, so the handlers stop. */
static void stop_packets(ne_extension *ext)
{
	ne_provider *pv;

	for (pv = ext->providers; pv; pv = pv->next) {
		nelib_packet_stop(pv->packet);
		nelib_tunnel_stop(pv->tunnel, false);
	}
}

/* Once the channel closed or faulted, every later call returns the same result. */
int ne_extension_dispatch(ne_extension *ext)
{
	int r;

	if (!ext)
		return -EINVAL;
	if (ext->fd < 0)
		return -ENOTCONN;
	if (ext->status)
		return ext->status;
	if (ext->dispatching) /* called from one of its own callbacks */
		return -EBUSY;
	ext->dispatching = true;
	do
		r = dispatch_one(ext);
	while (r == 0);
	ext->dispatching = false;
	if (r == -EAGAIN)
		r = packet_fault(ext);
	if (r == 0)
		return 0;
	ext->status = r;
	stop_packets(ext);
	return r;
}

static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, -1) < 0)
		return errno == EINTR ? 0 : -errno;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return 0;
}

int ne_extension_run(ne_extension *ext)
{
	int r;

	if (!ext)
		return -EINVAL;
	if (ext->fd < 0) {
		r = ne_extension_connect(ext);
		if (r < 0)
			return r;
	}
	for (;;) {
		r = ne_extension_dispatch(ext);
		if (r == 1)
			return 0;
		if (r < 0)
			return r;
		r = wait_readable(ext->fd);
		if (r < 0)
			return r;
	}
}

int ne_extension_log(ne_extension *ext, ne_log_level level, const char *fmt, ...)
{
	char raw[LOG_MAX + 1], text[LOG_MAX + 1];
	struct ne_msg_log m = { .level = (uint8_t)level, .text = { text, 0 } };
	struct ne_wbuf b;
	va_list ap;
	int n;

	if (!ext || !fmt || (unsigned)level > 7)
		return -EINVAL;
	if (ext->fd < 0)
		return -ENOTCONN;
	va_start(ap, fmt);
	n = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	m.text.len = nelib_sanitize(text, raw, LOG_MAX);
	b = wbuf(ext);
	return send_frame(ext, ne_msg_log_encode(&b, &m));
}

const char *ne_extension_identifier(const ne_extension *ext)
{
	return ext && ext->welcomed ? ext->identifier : NULL;
}

ne_provider_type ne_provider_get_type(const ne_provider *provider)
{
	return provider ? provider->type : (ne_provider_type)0;
}

const char *ne_provider_configuration(const ne_provider *provider)
{
	return provider ? provider->config : NULL;
}

ne_extension *ne_provider_extension(const ne_provider *provider)
{
	return provider ? provider->ext : NULL;
}

void ne_provider_set_context(ne_provider *provider, void *context)
{
	if (provider)
		provider->context = context;
}

void *ne_provider_get_context(const ne_provider *provider)
{
	return provider ? provider->context : NULL;
}

static bool error_valid(int error)
{
	return error <= 0 && error >= -4095;
}

/* -ENOENT for a handle that is not live (freed, or its extension freed), -EALREADY when
 * the start was completed already, -EINVAL for an error outside [-4095, 0] (the start is
 * then still pending). A failed start frees the provider unless a stop is pending, whose
 * completion frees it. */
int ne_provider_start_done(ne_provider *provider, int error, const char *message)
{
	int r;

	if (!provider_live(provider))
		return -ENOENT;
	if (!provider->start_pending)
		return -EALREADY;
	if (!error_valid(error))
		return -EINVAL;
	/* A dns-proxy provider's settings go first: the daemon sends queries once it has started. */
	if (error == 0 && provider->type == NE_PROVIDER_DNS_PROXY)
		(void)nelib_dns_send_settings(provider, &provider->ext->regs[NE_PROVIDER_DNS_PROXY].dops);
	provider->start_pending = false;
	r = send_start_done(provider->ext, provider->start_id, error, message);
	if (error == 0)
		provider->started = true;
	else if (!provider->stop_pending)
		provider_free(provider);
	return r;
}

/* -ENOENT for a handle that is not live, -EINVAL when no stop was requested. A start
 * still pending is completed first with -ECANCELED, so the daemon hears about both. */
int ne_provider_stop_done(ne_provider *provider)
{
	ne_extension *ext;
	uint64_t id;

	if (!provider_live(provider))
		return -ENOENT;
	if (!provider->stop_pending)
		return -EINVAL;
	ext = provider->ext;
	id = provider->stop_id;
	if (provider->start_pending)
		(void)send_start_done(ext, provider->start_id, -ECANCELED,
				      "stopped before the start completed");
	provider_free(provider);
	return send_empty(ext, NE_MSG_STOP_DONE, id);
}

/* -ENOENT for a handle that is not live (replied already, its provider stopped, or its
 * extension freed); -EINVAL or -EMSGSIZE for bad arguments, which leave it pending. */
int ne_message_reply(ne_message *message, int error, const void *data, size_t len)
{
	ne_extension *ext;
	uint64_t id;

	if (!message_live(message))
		return -ENOENT;
	if (!error_valid(error) || (len && !data))
		return -EINVAL;
	if (len > NE_MESSAGE_MAX)
		return -EMSGSIZE;
	ext = message->ext;
	id = message->id;
	message_free(message);
	if (error)
		return send_app_reply(ext, id, error, NULL, 0);
	return send_app_reply(ext, id, 0, data, len);
}
