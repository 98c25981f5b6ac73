/* libnetext test harness: plays netextd for one extension inside the test process.
 *
 * Trust: the extension under test is the code being tested, so every frame it sends is
 * checked the way netextd checks it (role, header, exact decode with the shared decoders,
 * a reply only to a request that was made) and a failure fails the harness call instead
 * of being papered over. The harness sends requests and answers only the settings frames
 * (it accepts them, as netextd would valid ones) and TUNNEL_SOCKET; it takes DNS_SETTINGS
 * only while the start is pending, as netextd does. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <netext/harness.h>

#include "lib-internal.h"
#include "pktring.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 5000
#define TURN_MS 10
#define HEARTBEAT_MS 10000
#define IDENTIFIER "harness"
#define PKT_RING_SIZE (256u * 1024)
#define PKT_MAX_LEN 65535

/* netextd's side of one packet queue. */
struct hqueue {
	void *map;
	size_t map_len;
	int efd_pkt, efd_vd;
	struct pr_ring pkt, vd; /* producer of packets, consumer of verdicts */
};

struct hconfig {
	char *name;
	uint32_t handle;
	bool live;
	bool has_settings;
	size_t n_rules;
	ne_filter_action default_action;
	bool has_dns_settings, dns_raw, dns_responses;
	bool has_packet_settings;
	size_t n_packet_rules;
	uint32_t copy_range;
	unsigned n_queues;
	struct hqueue *queues; /* n_queues, made by the first packet settings of a start */
	/* Packet tunnels: the last settings, the fake TUN queues (the kernel's ends), state. */
	bool has_tunnel_settings, tunnel_include_all, reasserting, cancelled;
	int cancel_error;
	uint32_t tunnel_mtu;
	size_t n_addresses, n_included, n_excluded, n_dns;
	char ifname[16];
	unsigned n_tun;
	int tun[NE_WIRE_TUNNEL_QUEUES_MAX];
};

/* A DNS verdict as the extension sent it, with copies of its target and bytes. */
struct dverdict {
	uint64_t id;
	ne_dns_verdict_kind kind;
	char *target;
	uint8_t *bytes;
	size_t len;
};

#define VERDICTS_KEPT 64
#define PVERDICTS_KEPT 4096

/* The reply a call waits for, filled in by the frame handlers. */
struct want {
	uint16_t type;
	uint64_t id;
	int32_t error;
	void *buf;     /* APP_REPLY data goes here */
	size_t cap, len;
	bool too_long;
};

struct ne_harness {
	ne_extension *ext;
	int fd;
	int timeout_ms;
	bool hello_seen;
	uint64_t next_id;
	uint32_t next_handle;
	void (*idle)(void *userdata);
	void *idle_userdata;
	struct hconfig *configs;
	size_t n_configs;
	char **logs;
	size_t n_logs;
	struct { uint64_t id; ne_filter_verdict v; } verdicts[VERDICTS_KEPT]; /* a ring */
	size_t next_verdict;
	uint64_t next_flow_id;
	struct dverdict dverdicts[VERDICTS_KEPT]; /* a ring */
	size_t next_dverdict;
	uint64_t next_dns_id;
	struct { uint64_t id; ne_dns_response_kind kind; uint8_t *bytes; size_t len; } rverdict;
	/* The latest verdict of each of the last PVERDICTS_KEPT packets, by slot. */
	struct { uint64_t id; ne_packet_verdict_kind kind; uint8_t *bytes; size_t len; } pverdicts[PVERDICTS_KEPT];
	uint64_t next_slot;
	uint8_t rbuf[NE_WIRE_MAX];
	uint8_t wbuf[NE_WIRE_MAX];
};

static struct ne_wbuf hwbuf(ne_harness *h)
{
	struct ne_wbuf b = { h->wbuf, 0, sizeof(h->wbuf), 0 };

	return b;
}

/* NULL is the empty string (unknown metadata). */
static struct ne_view view(const char *s)
{
	struct ne_view v = { s ? s : "", s ? strlen(s) : 0 };

	return v;
}

/* --- frames from the extension ------------------------------------------------------ */

/* 1 when (type, id) is the awaited reply, 0 for a late reply to a request the harness
 * gave up on, -EPROTO for a reply to a request never made. */
static int match_reply(const ne_harness *h, const struct want *w, uint16_t type, uint64_t id)
{
	if (w && w->type == type && w->id == id)
		return 1;
	if (id != 0 && id < h->next_id && !(w && w->id == id))
		return 0;
	return -EPROTO;
}

static int on_hello(ne_harness *h, const uint8_t *p, size_t len, const struct want *w)
{
	struct ne_msg_hello m;
	uint16_t i;

	if (h->hello_seen || ne_msg_hello_decode(p, len, &m) < 0)
		return -EPROTO;
	if (m.min_version > NE_WIRE_VERSION || m.max_version < NE_WIRE_VERSION)
		return -EPROTO;
	for (i = 0; i < m.n_providers; i++)
		if (m.providers[i] == 0 || m.providers[i] > NE_PROVIDER_TYPE_MAX)
			return -EPROTO;
	h->hello_seen = true;
	return w && w->type == NE_MSG_HELLO ? 1 : 0;
}

static int on_log(ne_harness *h, const uint8_t *p, size_t len)
{
	struct ne_msg_log m;
	char **logs, *line;

	if (ne_msg_log_decode(p, len, &m) < 0)
		return -EBADMSG;
	line = strndup(m.text.p, m.text.len);
	logs = line ? realloc(h->logs, (h->n_logs + 1) * sizeof(*logs)) : NULL;
	if (!logs) {
		free(line);
		return -ENOMEM;
	}
	logs[h->n_logs++] = line;
	h->logs = logs;
	return 0;
}

static int on_result(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len,
		     struct want *w)
{
	struct ne_msg_result m;
	int r;

	if (ne_msg_result_decode(p, len, &m) < 0)
		return -EBADMSG;
	r = match_reply(h, w, hd->type, hd->id);
	if (r == 1)
		w->error = m.error;
	return r;
}

static int on_empty(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len,
		    struct want *w)
{
	if (ne_msg_empty_decode(p, len) < 0)
		return -EBADMSG;
	return match_reply(h, w, hd->type, hd->id);
}

static int on_app_reply(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p,
			size_t len, struct want *w)
{
	struct ne_msg_app_reply m;
	int r;

	if (ne_msg_app_reply_decode(p, len, &m) < 0)
		return -EBADMSG;
	r = match_reply(h, w, hd->type, hd->id);
	if (r != 1)
		return r;
	w->error = m.error;
	w->len = m.data.len;
	w->too_long = m.data.len > w->cap;
	if (!w->too_long && m.data.len)
		memcpy(w->buf, m.data.p, m.data.len);
	return 1;
}

static struct hconfig *config_by_handle(const ne_harness *h, uint32_t handle)
{
	size_t i;

	for (i = 0; i < h->n_configs; i++)
		if (h->configs[i].handle == handle)
			return &h->configs[i];
	return NULL;
}

static int on_filter_settings(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len)
{
	static struct ne_wire_rule rules[NE_WIRE_RULES_MAX];
	struct ne_msg_filter_settings m = { .rules = rules };
	struct ne_msg_result res = { 0, { "", 0 } };
	struct ne_wbuf b = hwbuf(h);
	struct hconfig *c;
	int r;

	if (ne_msg_filter_settings_decode(p, len, &m) < 0)
		return -EBADMSG;
	c = config_by_handle(h, m.provider);
	if (!c)
		return -EPROTO;
	c->has_settings = true;
	c->n_rules = m.n_rules;
	c->default_action = (ne_filter_action)m.default_action;
	r = ne_msg_result2_encode(&b, NE_MSG_RESULT, hd->id, &res);
	return r < 0 ? r : NE_MIN(ne_wire_send(h->fd, h->wbuf, (size_t)r, NULL, 0), 0);
}

static void queues_free(struct hconfig *c)
{
	unsigned i;

	for (i = 0; i < c->n_queues; i++) {
		pr_shm_unmap(c->queues[i].map, c->queues[i].map_len);
		if (c->queues[i].efd_pkt >= 0)
			close(c->queues[i].efd_pkt);
		if (c->queues[i].efd_vd >= 0)
			close(c->queues[i].efd_vd);
	}
	free(c->queues);
	c->queues = NULL;
	c->n_queues = 0;
}

/* Makes queue i and hands it to the provider with PACKET_QUEUE, as netextd does. */
static int queue_make(ne_harness *h, struct hconfig *c, unsigned i, unsigned count)
{
	struct ne_msg_packet_queue m = { c->handle, (uint16_t)i, (uint16_t)count, 0 };
	struct hqueue *q = &c->queues[i];
	struct ne_wbuf b = hwbuf(h);
	int fds[3] = { -1, -1, -1 };
	int r;

	q->efd_pkt = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->efd_vd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd_pkt < 0 || q->efd_vd < 0)
		return ne_negerrno();
	r = pr_shm_create(PKT_RING_SIZE, PKT_RING_SIZE, &fds[0], &q->map, &q->map_len);
	if (r < 0)
		return r;
	pr_ring_attach(&q->pkt, q->map, 0, true);
	pr_ring_attach(&q->vd, q->map, 1, false);
	m.map_size = (uint32_t)q->map_len;
	fds[1] = q->efd_pkt;
	fds[2] = q->efd_vd;
	r = ne_msg_packet_queue_encode(&b, &m);
	if (r >= 0)
		r = ne_wire_send(h->fd, h->wbuf, (size_t)r, fds, 3);
	close(fds[0]);
	return NE_MIN(r, 0);
}

static int queues_make(ne_harness *h, struct hconfig *c, unsigned count)
{
	unsigned i;
	int r = 0;

	c->queues = calloc(count, sizeof(*c->queues));
	if (!c->queues)
		return -ENOMEM;
	for (i = 0; i < count; i++)
		c->queues[i].efd_pkt = c->queues[i].efd_vd = -1;
	c->n_queues = count;
	for (i = 0; i < count && r == 0; i++)
		r = queue_make(h, c, i, count);
	if (r < 0)
		queues_free(c);
	return r;
}

/* Answers with RESULT; the queues go first, before the first settings' answer. */
static int on_packet_settings(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len)
{
	static struct ne_wire_packet_rule rules[NE_WIRE_PACKET_RULES_MAX];
	static const char fixed[] = "queues: fixed by the first settings";
	struct ne_msg_packet_settings m = { .rules = rules };
	struct ne_msg_result res = { 0, { "", 0 } };
	struct ne_wbuf b = hwbuf(h);
	struct hconfig *c;
	unsigned count;
	int r;

	if (ne_msg_packet_settings_decode(p, len, &m) < 0)
		return -EBADMSG;
	c = config_by_handle(h, m.provider);
	if (!c)
		return -EPROTO;
	count = m.queues ? m.queues : 1;
	if (c->n_queues && c->n_queues != count) {
		res.error = -EINVAL;
		res.message = (struct ne_view){ fixed, strlen(fixed) };
	} else {
		c->has_packet_settings = true;
		c->n_packet_rules = m.n_rules;
		c->copy_range = m.copy_range;
		if (!c->n_queues && (r = queues_make(h, c, count)) < 0)
			return r;
	}
	r = ne_msg_result2_encode(&b, NE_MSG_RESULT, hd->id, &res);
	return r < 0 ? r : NE_MIN(ne_wire_send(h->fd, h->wbuf, (size_t)r, NULL, 0), 0);
}

/* --- packet tunnels: netextd's side ---------------------------------------------------------- */

static void tun_close(struct hconfig *c)
{
	unsigned i;

	for (i = 0; i < c->n_tun; i++)
		close(c->tun[i]);
	c->n_tun = 0;
	c->ifname[0] = '\0';
}

static int send_result(ne_harness *h, uint16_t type, uint64_t id, int error, const char *msg,
		       const int *fds, size_t nfds)
{
	struct ne_msg_result res = { error, { msg, strlen(msg) } };
	struct ne_wbuf b = hwbuf(h);
	int r = ne_msg_result2_encode(&b, type, id, &res);

	return r < 0 ? r : NE_MIN(ne_wire_send(h->fd, h->wbuf, (size_t)r, fds, nfds), 0);
}

/* The fake device: one seqpacket pair per queue (a datagram is a packet, as on a TUN fd),
 * with the 10-byte vnet header and no offloads. */
static int tun_make(ne_harness *h, struct hconfig *c, unsigned count, uint32_t mtu)
{
	struct ne_msg_tunnel_device m = { .provider = c->handle, .ifindex = 1000 + c->handle, .mtu = mtu,
					  .vnet_hdr_len = 10, .count = (uint16_t)count };
	int ext_fds[NE_WIRE_TUNNEL_QUEUES_MAX], sv[2], r = 0;
	struct ne_wbuf b = hwbuf(h);
	unsigned i;

	snprintf(c->ifname, sizeof(c->ifname), "harness%u", c->handle);
	m.ifname = view(c->ifname);
	for (i = 0; i < count && r == 0; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			r = ne_negerrno();
			break;
		}
		ext_fds[i] = sv[0];
		c->tun[c->n_tun++] = sv[1];
		r = fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0 ? ne_negerrno() : 0;
	}
	if (r == 0) {
		r = ne_msg_tunnel_device_encode(&b, &m);
		if (r >= 0)
			r = NE_MIN(ne_wire_send(h->fd, h->wbuf, (size_t)r, ext_fds, count), 0);
	}
	for (i = 0; i < c->n_tun; i++)
		close(ext_fds[i]);
	if (r < 0)
		tun_close(c);
	return r;
}

static void tunnel_settings_keep(struct hconfig *c, const struct ne_msg_tunnel_settings *m)
{
	c->has_tunnel_settings = true;
	c->tunnel_include_all = m->flags & NE_TUNNEL_F_INCLUDE_ALL;
	c->tunnel_mtu = m->mtu ? m->mtu : m->overhead ? 1500 - NE_MIN(m->overhead, 1500u - 576u) : 1420;
	c->n_addresses = m->n_addresses;
	c->n_included = m->n_included;
	c->n_excluded = m->n_excluded;
	c->n_dns = m->n_dns;
}

/* Accepts the settings; the first that are not a clear make the device, whose fds go first. */
static int on_tunnel_settings(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len)
{
	static const char fixed[] = "queues: fixed by the first settings";
	struct ne_msg_tunnel_settings *m = malloc(sizeof(*m)); /* ~21 KiB */
	struct hconfig *c;
	unsigned count;
	int r = 0;

	if (!m)
		return -ENOMEM;
	if (ne_msg_tunnel_settings_decode(p, len, m) < 0 || !(c = config_by_handle(h, m->provider))) {
		free(m);
		return -EBADMSG;
	}
	count = m->queues ? m->queues : 1;
	if (c->n_tun && m->queues && m->queues != c->n_tun) {
		free(m);
		return send_result(h, NE_MSG_RESULT, hd->id, -EINVAL, fixed, NULL, 0);
	}
	if (!(m->flags & NE_TUNNEL_F_CLEAR)) {
		tunnel_settings_keep(c, m);
		if (!c->n_tun)
			r = tun_make(h, c, count, c->tunnel_mtu);
	} else {
		c->n_addresses = c->n_included = c->n_excluded = c->n_dns = 0;
		c->tunnel_include_all = false;
		c->has_tunnel_settings = true;
	}
	free(m);
	return r < 0 ? r : send_result(h, NE_MSG_RESULT, hd->id, 0, "", NULL, 0);
}

/* An ordinary socket of the test process's own: nothing to bypass here. */
static int tunnel_socket(const struct ne_msg_tunnel_socket *m, int *ret_fd)
{
	int family = m->family == 4 ? AF_INET : AF_INET6, off = 0, fd;
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(m->port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(m->port) };

	fd = socket(family, (m->protocol == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ne_negerrno();
	if ((m->family == 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0) ||
	    (family == AF_INET ? bind(fd, (struct sockaddr *)&a4, sizeof(a4))
			       : bind(fd, (struct sockaddr *)&a6, sizeof(a6))) < 0) {
		int r = ne_negerrno();

		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

static int on_tunnel_socket(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len)
{
	struct ne_msg_tunnel_socket m;
	int fd = -1, r;

	if (ne_msg_tunnel_socket_decode(p, len, &m) < 0 || !config_by_handle(h, m.provider))
		return -EBADMSG;
	r = tunnel_socket(&m, &fd);
	if (r < 0)
		return send_result(h, NE_MSG_TUNNEL_SOCKET_FD, hd->id, r, "harness: cannot make the socket", NULL, 0);
	r = send_result(h, NE_MSG_TUNNEL_SOCKET_FD, hd->id, 0, "", &fd, 1);
	close(fd);
	return r;
}

static int on_tunnel_state(ne_harness *h, const uint8_t *p, size_t len)
{
	struct ne_msg_tunnel_state m;
	struct hconfig *c;

	if (ne_msg_tunnel_state_decode(p, len, &m) < 0 || !(c = config_by_handle(h, m.provider)))
		return -EBADMSG;
	c->reasserting = m.reasserting;
	return 0;
}

static int on_tunnel_cancel(ne_harness *h, const uint8_t *p, size_t len)
{
	struct ne_msg_tunnel_cancel m;
	struct hconfig *c;

	if (ne_msg_tunnel_cancel_decode(p, len, &m) < 0 || !(c = config_by_handle(h, m.provider)))
		return -EBADMSG;
	c->cancelled = true;
	c->cancel_error = m.error;
	return 0;
}

static int on_flow_verdict(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len,
			   struct want *w)
{
	struct ne_msg_flow_verdict m;
	size_t i = h->next_verdict++ % VERDICTS_KEPT;

	if (ne_msg_flow_verdict_decode(p, len, &m) < 0 || m.kind == NE_VERDICT_NONE)
		return -EBADMSG;
	h->verdicts[i].id = hd->id;
	h->verdicts[i].v = (ne_filter_verdict){ (ne_verdict_kind)m.kind, m.flags & 1, (m.flags & 2) != 0,
					       m.peek_inbound, m.peek_outbound };
	return w && w->type == NE_MSG_FLOW_VERDICT && w->id == hd->id &&
	       (m.kind != NE_VERDICT_PAUSE || !w->cap) ? 1 : 0;
}

static int on_dns_settings(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len)
{
	struct ne_msg_dns_settings m;
	struct hconfig *c;

	if (hd->id != 0 || ne_msg_dns_settings_decode(p, len, &m) < 0)
		return -EBADMSG;
	c = config_by_handle(h, m.provider);
	if (!c || c->live) /* settings belong to a start that is still pending */
		return -EPROTO;
	c->has_dns_settings = true;
	c->dns_raw = m.mode == 1;
	c->dns_responses = m.want_responses;
	return 0;
}

static void *dup_bytes(const void *p, size_t len)
{
	void *d = malloc(len ? len : 1);

	if (d && len)
		memcpy(d, p, len);
	return d;
}

static int on_dns_verdict(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p, size_t len,
			  const struct want *w)
{
	struct ne_msg_dns_verdict m;
	struct dverdict *v;
	char *target = NULL;
	uint8_t *bytes;

	if (ne_msg_dns_verdict_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (hd->id == 0 || hd->id > h->next_dns_id || !config_by_handle(h, m.provider))
		return -EPROTO;
	bytes = dup_bytes(m.message.p, m.message.len);
	if (m.target.len)
		target = strndup(m.target.p, m.target.len);
	if (!bytes || (m.target.len && !target)) {
		free(bytes);
		free(target);
		return -ENOMEM;
	}
	v = &h->dverdicts[h->next_dverdict++ % VERDICTS_KEPT];
	free(v->target);
	free(v->bytes);
	*v = (struct dverdict){ hd->id, (ne_dns_verdict_kind)m.kind, target, bytes, m.message.len };
	return w && w->type == NE_MSG_DNS_VERDICT && w->id == hd->id ? 1 : 0;
}

static int on_dns_response_verdict(ne_harness *h, const struct ne_msg_hdr *hd, const uint8_t *p,
				   size_t len, const struct want *w)
{
	struct ne_msg_dns_response_verdict m;
	uint8_t *bytes;

	if (ne_msg_dns_response_verdict_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (hd->id == 0 || hd->id > h->next_dns_id)
		return -EPROTO;
	/* Only the answer the harness offered last waits for a verdict: others are late. */
	if (!w || w->type != NE_MSG_DNS_RESPONSE_VERDICT || w->id != hd->id)
		return 0;
	bytes = dup_bytes(m.message.p, m.message.len);
	if (!bytes)
		return -ENOMEM;
	free(h->rverdict.bytes);
	h->rverdict.id = hd->id;
	h->rverdict.kind = (ne_dns_response_kind)m.kind;
	h->rverdict.bytes = bytes;
	h->rverdict.len = m.message.len;
	return 1;
}

/* Checks and handles one frame: 1 when it is the awaited reply, 0, or a fault. */
static int handle_frame(ne_harness *h, size_t n, struct want *w)
{
	const uint8_t *p = h->rbuf + NE_WIRE_HDR_LEN;
	size_t len = n - NE_WIRE_HDR_LEN;
	struct ne_msg_hdr hd;
	int r;

	r = ne_msg_hdr_decode(h->rbuf, n, &hd);
	if (r < 0)
		return r;
	if (!ne_msg_from_extension(hd.type))
		return -EPROTO;
	if (hd.type == NE_MSG_HELLO)
		return hd.id == 0 ? on_hello(h, p, len, w) : -EBADMSG;
	if (!h->hello_seen)
		return -EPROTO;
	switch (hd.type) {
	case NE_MSG_LOG:
		return hd.id == 0 ? on_log(h, p, len) : -EBADMSG;
	case NE_MSG_START_DONE:
		return on_result(h, &hd, p, len, w);
	case NE_MSG_APP_REPLY:
		return on_app_reply(h, &hd, p, len, w);
	case NE_MSG_FILTER_SETTINGS:
		return on_filter_settings(h, &hd, p, len);
	case NE_MSG_FLOW_VERDICT:
		return on_flow_verdict(h, &hd, p, len, w);
	case NE_MSG_DNS_SETTINGS:
		return on_dns_settings(h, &hd, p, len);
	case NE_MSG_DNS_VERDICT:
		return on_dns_verdict(h, &hd, p, len, w);
	case NE_MSG_DNS_RESPONSE_VERDICT:
		return on_dns_response_verdict(h, &hd, p, len, w);
	case NE_MSG_PACKET_SETTINGS:
		return on_packet_settings(h, &hd, p, len);
	case NE_MSG_TUNNEL_SETTINGS:
		return on_tunnel_settings(h, &hd, p, len);
	case NE_MSG_TUNNEL_SOCKET:
		return on_tunnel_socket(h, &hd, p, len);
	case NE_MSG_TUNNEL_STATE:
		return hd.id == 0 ? on_tunnel_state(h, p, len) : -EBADMSG;
	case NE_MSG_TUNNEL_CANCEL:
		return hd.id == 0 ? on_tunnel_cancel(h, p, len) : -EBADMSG;
	default: /* PONG, STOP_DONE */
		return on_empty(h, &hd, p, len, w);
	}
}

/* Reads what is ready: 1 once the awaited reply came, 0 when nothing more is ready. */
static int read_frames(ne_harness *h, struct want *w)
{
	int n, r;

	for (;;) {
		n = ne_wire_recv(h->fd, h->rbuf, sizeof(h->rbuf), NULL, NULL);
		if (n == -EAGAIN)
			return 0;
		if (n == -EINTR)
			continue;
		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return n == -EMSGSIZE ? -EBADMSG : n;
		r = handle_frame(h, (size_t)n, w);
		if (r != 0)
			return r;
	}
}

static void wait_turn(const ne_harness *h, int ms)
{
	struct pollfd p[2] = {
		{ .fd = ne_extension_fd(h->ext), .events = POLLIN },
		{ .fd = h->fd, .events = POLLIN },
	};

	(void)poll(p, 2, ms); /* EINTR or not: the caller loops */
}

/* One turn: the extension dispatches, the author's idle work runs, the harness reads. */
static int turn(ne_harness *h, struct want *w)
{
	int r = ne_extension_dispatch(h->ext);

	if (r < 0)
		return r;
	if (r == 1)
		return -ECONNRESET;
	if (h->idle)
		h->idle(h->idle_userdata);
	return read_frames(h, w);
}

static int harness_wait(ne_harness *h, struct want *w)
{
	unsigned long long deadline = ne_now_usec() + (unsigned long long)h->timeout_ms * 1000ULL;
	int r, ms;

	for (;;) {
		r = turn(h, w);
		if (r != 0)
			return r < 0 ? r : 0;
		ms = nelib_ms_left(deadline, TURN_MS);
		if (ms == 0)
			return -ETIMEDOUT;
		wait_turn(h, ms);
	}
}

/* Sends the frame in h->wbuf. The extension is drained while its queue is full. */
static int send_frame(ne_harness *h, int len)
{
	unsigned long long deadline = ne_now_usec() + (unsigned long long)h->timeout_ms * 1000ULL;
	int r;

	if (len < 0)
		return len;
	for (;;) {
		r = ne_wire_send(h->fd, h->wbuf, (size_t)len, NULL, 0);
		if (r >= 0)
			return 0;
		if (r != -EAGAIN && r != -EINTR)
			return r;
		r = turn(h, NULL);
		if (r < 0)
			return r;
		if (nelib_ms_left(deadline, TURN_MS) == 0)
			return -ETIMEDOUT;
		wait_turn(h, TURN_MS);
	}
}

/* --- configurations -------------------------------------------------------------------- */

static struct hconfig *config_find(const ne_harness *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->n_configs; i++)
		if (strcmp(h->configs[i].name, name) == 0)
			return &h->configs[i];
	return NULL;
}

/* Handles are assigned once per configuration name and kept across restarts. */
static int config_get(ne_harness *h, const char *name, struct hconfig **ret)
{
	struct hconfig *c = config_find(h, name), *v;
	char *copy;

	if (c) {
		*ret = c;
		return 0;
	}
	copy = strdup(name);
	v = copy ? realloc(h->configs, (h->n_configs + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(copy);
		return -ENOMEM;
	}
	h->configs = v;
	c = &v[h->n_configs++];
	memset(c, 0, sizeof(*c));
	c->name = copy;
	c->handle = h->next_handle++;
	c->live = false;
	*ret = c;
	return 0;
}

/* --- public API ------------------------------------------------------------------------ */

static int handshake(ne_harness *h)
{
	struct ne_msg_welcome m = { NE_WIRE_VERSION, { IDENTIFIER, strlen(IDENTIFIER) },
				    HEARTBEAT_MS };
	struct want w = { .type = NE_MSG_HELLO };
	struct ne_wbuf b = hwbuf(h);
	int r;

	r = harness_wait(h, &w);
	if (r < 0)
		return r;
	r = send_frame(h, ne_msg_welcome_encode(&b, &m));
	if (r < 0)
		return r;
	/* Lets the extension take the WELCOME now, so its identifier is set on return. */
	r = ne_extension_dispatch(h->ext);
	return r == 1 ? -ECONNRESET : NE_MIN(r, 0);
}

/* Connects ext to the new harness. On failure after the connection was made, ext is left
 * connected to a closed channel and should be freed. */
int ne_harness_new(ne_extension *ext, ne_harness **ret_harness)
{
	ne_harness *h;
	int sv[2], r;

	if (!ext || !ret_harness)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->ext = ext;
	h->fd = -1;
	h->timeout_ms = DEFAULT_TIMEOUT_MS;
	h->next_id = 1;
	h->next_handle = 1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
		r = ne_negerrno();
		goto fail;
	}
	r = ne_extension_connect_fd(ext, sv[0]);
	if (r < 0) {
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	h->fd = sv[1];
	r = handshake(h);
	if (r < 0)
		goto fail;
	*ret_harness = h;
	return 0;
fail:
	ne_harness_free(h);
	return r;
}

void ne_harness_free(ne_harness *harness)
{
	size_t i;

	if (!harness)
		return;
	if (harness->fd >= 0)
		close(harness->fd);
	for (i = 0; i < harness->n_configs; i++) {
		free(harness->configs[i].name);
		queues_free(&harness->configs[i]);
		tun_close(&harness->configs[i]);
	}
	for (i = 0; i < PVERDICTS_KEPT; i++)
		free(harness->pverdicts[i].bytes);
	for (i = 0; i < harness->n_logs; i++)
		free(harness->logs[i]);
	for (i = 0; i < VERDICTS_KEPT; i++) {
		free(harness->dverdicts[i].target);
		free(harness->dverdicts[i].bytes);
	}
	free(harness->rverdict.bytes);
	free(harness->configs);
	free(harness->logs);
	free(harness);
}

void ne_harness_set_timeout(ne_harness *harness, int timeout_ms)
{
	if (harness)
		harness->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
}

void ne_harness_set_idle(ne_harness *harness, void (*idle)(void *userdata), void *userdata)
{
	if (!harness)
		return;
	harness->idle = idle;
	harness->idle_userdata = userdata;
}

static int fill_options(struct ne_msg_start *m, const char *const *options)
{
	uint16_t n = 0;

	for (; options && options[0]; options += 2) {
		if (!options[1])
			return -EINVAL;
		if (n == NE_WIRE_OPTIONS_MAX)
			return -E2BIG;
		m->keys[n] = view(options[0]);
		m->values[n] = view(options[1]);
		n++;
	}
	m->n_options = n;
	return 0;
}

/* -EALREADY when the configuration's provider is running already. A call that timed out
 * leaves the provider counted as running, since the extension may still complete it. */
int ne_harness_start(ne_harness *harness, const char *config, ne_provider_type type,
		     const char *const *options, int *ret_error)
{
	struct ne_msg_start m = { .type = (uint16_t)type };
	struct want w = { .type = NE_MSG_START_DONE };
	struct hconfig *c;
	struct ne_wbuf b;
	int r;

	if (!harness || !config || !ret_error)
		return -EINVAL;
	r = fill_options(&m, options);
	if (r < 0)
		return r;
	r = config_get(harness, config, &c);
	if (r < 0)
		return r;
	if (c->live)
		return -EALREADY;
	m.provider = c->handle;
	m.config = view(c->name);
	c->has_dns_settings = false;
	queues_free(c); /* a new start makes new queues */
	tun_close(c);
	c->has_tunnel_settings = c->reasserting = c->cancelled = false;
	c->cancel_error = 0;
	w.id = harness->next_id++;
	b = hwbuf(harness);
	r = send_frame(harness, ne_msg_start_encode(&b, w.id, &m));
	if (r < 0)
		return r;
	r = harness_wait(harness, &w);
	c->live = r == -ETIMEDOUT || (r == 0 && w.error == 0);
	if (r < 0)
		return r;
	*ret_error = w.error;
	return 0;
}

static int request(ne_harness *h, const char *config, struct hconfig **ret_c)
{
	if (!h || !config)
		return -EINVAL;
	*ret_c = config_find(h, config);
	return *ret_c ? 0 : -ENOENT;
}

int ne_harness_stop(ne_harness *harness, const char *config, ne_stop_reason reason)
{
	struct want w = { .type = NE_MSG_STOP_DONE };
	struct ne_msg_stop m;
	struct hconfig *c;
	struct ne_wbuf b;
	int r;

	r = request(harness, config, &c);
	if (r < 0)
		return r;
	m.provider = c->handle;
	m.reason = (uint32_t)reason;
	w.id = harness->next_id++;
	b = hwbuf(harness);
	r = send_frame(harness, ne_msg_stop_encode(&b, w.id, &m));
	if (r < 0)
		return r;
	r = harness_wait(harness, &w);
	if (r == 0) {
		c->live = false;
		queues_free(c);
	}
	return r;
}

/* -EMSGSIZE when the reply is longer than cap (nothing is returned then). */
int ne_harness_message(ne_harness *harness, const char *config, const void *data, size_t len,
		       int *ret_error, void *reply, size_t cap, size_t *ret_len)
{
	struct want w = { .type = NE_MSG_APP_REPLY, .buf = reply, .cap = reply ? cap : 0 };
	struct ne_msg_app_message m;
	struct hconfig *c;
	struct ne_wbuf b;
	int r;

	if (!ret_error || (len && !data))
		return -EINVAL;
	if (len > NE_MESSAGE_MAX)
		return -EMSGSIZE;
	r = request(harness, config, &c);
	if (r < 0)
		return r;
	m.provider = c->handle;
	m.data.p = data ? data : "";
	m.data.len = len;
	w.id = harness->next_id++;
	b = hwbuf(harness);
	r = send_frame(harness, ne_msg_app_message_encode(&b, w.id, &m));
	if (r < 0)
		return r;
	r = harness_wait(harness, &w);
	if (r < 0)
		return r;
	if (w.too_long)
		return -EMSGSIZE;
	*ret_error = w.error;
	if (ret_len)
		*ret_len = w.len;
	return 0;
}

const char *ne_harness_log_line(const ne_harness *harness, size_t i)
{
	if (!harness || i >= harness->n_logs)
		return NULL;
	return harness->logs[i];
}

/* --- filter-data providers ------------------------------------------------------------- */

static bool verdict_find(const ne_harness *h, uint64_t id, bool final, ne_filter_verdict *ret)
{
	size_t i, n = NE_MIN(h->next_verdict, (size_t)VERDICTS_KEPT);

	/* Newest first: a pause followed by a resume has two entries. */
	for (i = 1; i <= n; i++) {
		size_t k = (h->next_verdict - i) % VERDICTS_KEPT;

		if (h->verdicts[k].id == id && (!final || h->verdicts[k].v.kind != NE_VERDICT_PAUSE)) {
			*ret = h->verdicts[k].v;
			return true;
		}
	}
	return false;
}

/* "a.b.c.d:port" or "[v6]:port" into 16 address bytes; returns the IP version or -EINVAL. */
static int parse_endpoint(const char *s, uint8_t *addr, uint16_t *port)
{
	char buf[INET6_ADDRSTRLEN + 8], *colon, *a = buf;
	unsigned long p;
	char *end;
	int v = 4;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	colon = strrchr(buf, ':');
	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (buf[0] == '[') {
		if (colon[-1] != ']')
			return -EINVAL;
		colon[-1] = '\0';
		a = buf + 1;
		v = 6;
	}
	p = strtoul(colon + 1, &end, 10);
	if (*end || p > 65535 || inet_pton(v == 6 ? AF_INET6 : AF_INET, a, addr) != 1)
		return -EINVAL;
	*port = (uint16_t)p;
	return v;
}

static int flow_record(const struct ne_harness_flow *f, uint64_t id, struct ne_flow_record *r)
{
	int lv, rv;

	memset(r, 0, sizeof(*r));
	lv = parse_endpoint(f->local ? f->local : "192.0.2.1:40000", r->local_addr, &r->local_port);
	rv = parse_endpoint(f->remote ? f->remote : "198.51.100.1:443", r->remote_addr, &r->remote_port);
	if (lv < 0 || rv < 0 || lv != rv)
		return -EINVAL;
	r->id = id;
	r->family = (uint8_t)lv;
	r->direction = f->direction ? (uint8_t)f->direction : NE_FLOW_OUTBOUND;
	r->protocol = f->protocol ? (uint8_t)f->protocol : IPPROTO_TCP;
	r->hostname = view(f->hostname);
	r->executable = view(f->executable);
	r->cmdline = view(f->command_line);
	r->cgroup = view(f->cgroup);
	r->pid = f->pid ? f->pid : -1;
	r->ppid = -1;
	r->has_ids = f->has_ids;
	r->uid = f->uid;
	r->gid = f->gid;
	return r->direction <= 2 ? 0 : -EINVAL;
}

int ne_harness_new_flow(ne_harness *harness, const char *config, const struct ne_harness_flow *flow,
			uint64_t *ret_id, ne_filter_verdict *ret_verdict)
{
	struct want w = { .type = NE_MSG_FLOW_VERDICT };
	struct ne_msg_flow_new m = { 0 };
	struct hconfig *c;
	struct ne_wbuf b;
	int r;

	if (!flow || flow->size < sizeof(uint32_t) || !ret_verdict)
		return -EINVAL;
	r = request(harness, config, &c);
	if (r < 0)
		return r;
	m.provider = c->handle;
	w.id = ++harness->next_flow_id;
	r = flow_record(flow, w.id, &m.flow);
	if (r < 0)
		return r;
	b = hwbuf(harness);
	r = send_frame(harness, ne_msg_flow_new_encode(&b, &m));
	if (r < 0)
		return r;
	/* The provider answers inside its dispatch, or not at all ("later"): one turn tells. */
	w.cap = 1; /* a pause counts as an answer here */
	r = turn(harness, &w);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = w.id;
	if (!verdict_find(harness, w.id, false, ret_verdict))
		*ret_verdict = ne_filter_verdict_later();
	return 0;
}

int ne_harness_flow_verdict(ne_harness *harness, uint64_t id, ne_filter_verdict *ret_verdict)
{
	struct want w = { .type = NE_MSG_FLOW_VERDICT, .id = id };
	int r;

	if (!harness || !ret_verdict)
		return -EINVAL;
	if (!verdict_find(harness, id, true, ret_verdict)) {
		r = harness_wait(harness, &w);
		if (r < 0)
			return r;
		if (!verdict_find(harness, id, true, ret_verdict))
			return -EPROTO;
	}
	return 0;
}

int ne_harness_filter_settings(ne_harness *harness, const char *config, size_t *ret_n_rules,
			       ne_filter_action *ret_default_action)
{
	struct hconfig *c;
	int r = request(harness, config, &c);

	if (r < 0)
		return r;
	if (!c->has_settings)
		return -ENOENT;
	if (ret_n_rules)
		*ret_n_rules = c->n_rules;
	if (ret_default_action)
		*ret_default_action = c->default_action;
	return 0;
}

/* --- dns-proxy providers ------------------------------------------------------------- */

static const struct dverdict *dverdict_find(const ne_harness *h, uint64_t id)
{
	size_t i, n = NE_MIN(h->next_dverdict, (size_t)VERDICTS_KEPT);

	for (i = 1; i <= n; i++) {
		const struct dverdict *v = &h->dverdicts[(h->next_dverdict - i) % VERDICTS_KEPT];

		if (v->id == id)
			return v;
	}
	return NULL;
}

static void dverdict_out(const struct dverdict *v, ne_dns_verdict *ret)
{
	ret->kind = v->kind;
	ret->target = v->target;
	ret->bytes = v->len ? v->bytes : NULL;
	ret->len = v->len;
}

int ne_harness_dns_query(ne_harness *harness, const char *config, const struct ne_harness_flow *flow,
			 const void *query, size_t len, uint64_t *ret_id, ne_dns_verdict *ret_verdict)
{
	struct ne_harness_flow f = { .size = sizeof(f) };
	struct want w = { .type = NE_MSG_DNS_VERDICT };
	struct ne_msg_dns_query m = { 0 };
	const struct dverdict *v;
	struct hconfig *c;
	struct ne_wbuf b;
	int r;

	if (!ret_verdict || (len && !query) || (flow && flow->size < sizeof(uint32_t)))
		return -EINVAL;
	if (len > NE_DNS_MESSAGE_MAX)
		return -EMSGSIZE;
	r = request(harness, config, &c);
	if (r < 0)
		return r;
	/* The part of the caller's table this library knows; DNS defaults for the rest. */
	if (flow)
		memcpy(&f, flow, NE_MIN((size_t)flow->size, sizeof(f)));
	if (!f.remote)
		f.remote = "198.51.100.53:53";
	if (!f.protocol)
		f.protocol = IPPROTO_UDP;
	if (f.protocol != IPPROTO_UDP && f.protocol != IPPROTO_TCP)
		return -EINVAL;
	f.direction = NE_FLOW_OUTBOUND;
	f.hostname = NULL;
	m.provider = c->handle;
	m.protocol = (uint8_t)f.protocol;
	m.message.p = query ? query : "";
	m.message.len = len;
	w.id = ++harness->next_dns_id;
	r = flow_record(&f, w.id, &m.flow);
	if (r < 0)
		return r;
	b = hwbuf(harness);
	r = send_frame(harness, ne_msg_dns_query_encode(&b, w.id, &m));
	if (r < 0)
		return r;
	/* The provider answers inside its dispatch, or later: one turn tells. */
	r = turn(harness, &w);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = w.id;
	v = dverdict_find(harness, w.id);
	if (v)
		dverdict_out(v, ret_verdict);
	else
		*ret_verdict = ne_dns_verdict_later();
	return 0;
}

int ne_harness_dns_verdict(ne_harness *harness, uint64_t id, ne_dns_verdict *ret_verdict)
{
	struct want w = { .type = NE_MSG_DNS_VERDICT, .id = id };
	const struct dverdict *v;
	int r;

	if (!harness || !ret_verdict)
		return -EINVAL;
	v = dverdict_find(harness, id);
	if (!v) {
		r = harness_wait(harness, &w);
		if (r < 0)
			return r;
		v = dverdict_find(harness, id);
		if (!v)
			return -EPROTO;
	}
	dverdict_out(v, ret_verdict);
	return 0;
}

int ne_harness_dns_response(ne_harness *harness, const char *config, uint64_t id, const void *response,
			    size_t len, ne_dns_response_verdict *ret_verdict)
{
	struct want w = { .type = NE_MSG_DNS_RESPONSE_VERDICT, .id = id };
	struct ne_msg_dns_response m;
	const struct dverdict *v;
	struct hconfig *c;
	struct ne_wbuf b;
	int r;

	if (!ret_verdict || (len && !response))
		return -EINVAL;
	if (len > NE_DNS_MESSAGE_MAX)
		return -EMSGSIZE;
	r = request(harness, config, &c);
	if (r < 0)
		return r;
	v = dverdict_find(harness, id);
	if (!v || v->kind != NE_DNS_VERDICT_FORWARD || !c->dns_responses) {
		*ret_verdict = ne_dns_response_pass(); /* netextd passes it on unseen */
		return 0;
	}
	m.provider = c->handle;
	m.message.p = response ? response : "";
	m.message.len = len;
	b = hwbuf(harness);
	r = send_frame(harness, ne_msg_dns_response_encode(&b, id, &m));
	if (r < 0)
		return r;
	r = harness_wait(harness, &w);
	if (r < 0)
		return r;
	ret_verdict->kind = harness->rverdict.kind;
	ret_verdict->bytes = harness->rverdict.len ? harness->rverdict.bytes : NULL;
	ret_verdict->len = harness->rverdict.len;
	return 0;
}

int ne_harness_dns_settings(ne_harness *harness, const char *config, bool *ret_raw, bool *ret_responses)
{
	struct hconfig *c;
	int r = request(harness, config, &c);

	if (r < 0)
		return r;
	if (!c->has_dns_settings)
		return -ENOENT;
	if (ret_raw)
		*ret_raw = c->dns_raw;
	if (ret_responses)
		*ret_responses = c->dns_responses;
	return 0;
}

/* --- filter-packet providers ----------------------------------------------------------- */

/* Takes the verdicts the provider published on queue q, as netextd would. */
static int collect_verdicts(ne_harness *h, struct hqueue *q)
{
	const struct pr_rec *rec;
	struct pr_verdict v;
	uint8_t *bytes;
	size_t k;
	int err = 0;

	while ((rec = pr_peek(&q->vd, &err))) {
		memcpy(&v, rec, sizeof(v));
		if (rec->type != PR_REC_VERDICT || v.len > q->vd.peek_len - sizeof(v) ||
		    v.kind < NE_PACKET_ALLOW || v.kind > NE_PACKET_MODIFY ||
		    (v.kind != NE_PACKET_MODIFY && v.len) || v.slot == 0 || v.slot > h->next_slot ||
		    v.id != v.slot)
			return -EPROTO;
		bytes = dup_bytes(((const struct pr_verdict *)rec)->data, v.len);
		if (!bytes)
			return -ENOMEM;
		/* A packet's final verdict follows its DELAY, never the other way round. */
		k = v.slot % PVERDICTS_KEPT;
		free(h->pverdicts[k].bytes);
		h->pverdicts[k].id = v.slot;
		h->pverdicts[k].kind = (ne_packet_verdict_kind)v.kind;
		h->pverdicts[k].bytes = bytes;
		h->pverdicts[k].len = v.len;
		pr_consume(&q->vd);
	}
	pr_release(&q->vd);
	return err ? -EPROTO : 0;
}

static int collect_all(ne_harness *h)
{
	size_t i;
	unsigned k;
	int r;

	for (i = 0; i < h->n_configs; i++)
		for (k = 0; k < h->configs[i].n_queues; k++)
			if ((r = collect_verdicts(h, &h->configs[i].queues[k])) < 0)
				return r;
	return 0;
}

static bool pverdict_find(const ne_harness *h, uint64_t id, bool final, ne_packet_verdict *ret)
{
	size_t k = id % PVERDICTS_KEPT;

	if (h->pverdicts[k].id != id || (final && h->pverdicts[k].kind == NE_PACKET_DELAY))
		return false;
	ret->kind = h->pverdicts[k].kind;
	ret->bytes = h->pverdicts[k].len ? h->pverdicts[k].bytes : NULL;
	ret->len = h->pverdicts[k].len;
	return true;
}

/* Sleeps until the extension, its channel or a verdict ring has something, at most ms. */
static void packet_wait_turn(ne_harness *h, int ms)
{
	struct pollfd p[2 + NE_PACKET_QUEUES_MAX] = {
		{ .fd = ne_extension_fd(h->ext), .events = POLLIN },
		{ .fd = h->fd, .events = POLLIN },
	};
	struct hqueue *qs[NE_PACKET_QUEUES_MAX];
	size_t i, n = 0;
	unsigned k;
	uint64_t v;

	for (i = 0; i < h->n_configs; i++)
		for (k = 0; k < h->configs[i].n_queues && n < NE_PACKET_QUEUES_MAX; k++) {
			qs[n] = &h->configs[i].queues[k];
			if (!pr_prepare_wait(&qs[n]->vd))
				ms = 0; /* verdicts came meanwhile */
			p[2 + n] = (struct pollfd){ .fd = qs[n]->efd_vd, .events = POLLIN };
			n++;
		}
	if (ms)
		(void)poll(p, 2 + n, ms);
	for (i = 0; i < n; i++) {
		pr_wake_done(&qs[i]->vd);
		(void)!read(qs[i]->efd_vd, &v, sizeof(v));
	}
}

static int packet_wait(ne_harness *h, uint64_t id, bool final, ne_packet_verdict *ret)
{
	unsigned long long deadline = ne_now_usec() + (unsigned long long)h->timeout_ms * 1000ULL;
	int r, ms;

	for (;;) {
		r = turn(h, NULL);
		if (r == 0)
			r = collect_all(h);
		if (r < 0)
			return r;
		if (pverdict_find(h, id, final, ret))
			return 0;
		ms = nelib_ms_left(deadline, TURN_MS);
		if (ms == 0)
			return -ETIMEDOUT;
		packet_wait_turn(h, ms);
	}
}

/* Writes the packet record (cut to the copy range) into queue 0's ring, waiting for room. */
static int packet_put(ne_harness *h, struct hconfig *c, const void *bytes, size_t len,
		      ne_packet_direction direction, uint64_t *ret_slot)
{
	unsigned long long deadline = ne_now_usec() + (unsigned long long)h->timeout_ms * 1000ULL;
	size_t copy = NE_MIN(len, c->copy_range ? (size_t)c->copy_range : (size_t)PKT_MAX_LEN);
	struct hqueue *q = &c->queues[0];
	struct pr_packet *rec;
	int r;

	while (!(rec = pr_reserve(&q->pkt, (uint32_t)(sizeof(*rec) + copy)))) {
		r = turn(h, NULL);
		if (r == 0)
			r = collect_all(h);
		if (r < 0)
			return r;
		if (nelib_ms_left(deadline, TURN_MS) == 0)
			return -ETIMEDOUT;
		packet_wait_turn(h, 1);
	}
	rec->rec.type = PR_REC_PACKET;
	rec->rec.flags = 0;
	rec->slot = rec->id = (uint32_t)++h->next_slot;
	rec->len = (uint32_t)copy;
	rec->orig_len = (uint32_t)len;
	rec->indev = direction == NE_PACKET_OUTBOUND ? 0 : 1;
	rec->outdev = direction == NE_PACKET_INBOUND ? 0 : 2;
	rec->direction = (uint8_t)direction;
	rec->flags = copy < len ? PR_PKT_TRUNCATED : 0;
	rec->reserved = 0;
	rec->reserved2 = 0;
	memcpy(rec->data, bytes, copy);
	pr_commit(&q->pkt, rec);
	r = pr_publish(&q->pkt);
	if (r < 0)
		return -EPROTO;
	if (r > 0) {
		uint64_t one = 1;

		(void)!write(q->efd_pkt, &one, sizeof(one));
	}
	*ret_slot = h->next_slot;
	return 0;
}

int ne_harness_packet_send(ne_harness *harness, const char *config, const void *bytes, size_t len,
			   ne_packet_direction direction, uint64_t *ret_id)
{
	struct hconfig *c;
	uint64_t slot;
	int r;

	if (!bytes || !len || (unsigned)direction < NE_PACKET_OUTBOUND || direction > NE_PACKET_FORWARD)
		return -EINVAL;
	if (len > PKT_MAX_LEN)
		return -EMSGSIZE;
	r = request(harness, config, &c);
	if (r < 0)
		return r;
	if (!c->n_queues)
		return -ENOTCONN;
	r = packet_put(harness, c, bytes, len, direction, &slot);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = slot;
	return 0;
}

int ne_harness_packet(ne_harness *harness, const char *config, const void *bytes, size_t len,
		      ne_packet_direction direction, uint64_t *ret_id, ne_packet_verdict *ret_verdict)
{
	uint64_t id;
	int r;

	if (!ret_verdict)
		return -EINVAL;
	r = ne_harness_packet_send(harness, config, bytes, len, direction, &id);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = id;
	return packet_wait(harness, id, false, ret_verdict);
}

int ne_harness_packet_verdict(ne_harness *harness, uint64_t id, ne_packet_verdict *ret_verdict)
{
	if (!harness || !ret_verdict || id == 0 || id > harness->next_slot)
		return -EINVAL;
	if (id + PVERDICTS_KEPT <= harness->next_slot)
		return -ENOENT; /* forgotten */
	return packet_wait(harness, id, true, ret_verdict);
}

int ne_harness_packet_settings(ne_harness *harness, const char *config, size_t *ret_n_rules,
			       unsigned *ret_queues, uint32_t *ret_copy_range)
{
	struct hconfig *c;
	int r = request(harness, config, &c);

	if (r < 0)
		return r;
	if (!c->has_packet_settings)
		return -ENOENT;
	if (ret_n_rules)
		*ret_n_rules = c->n_packet_rules;
	if (ret_queues)
		*ret_queues = c->n_queues;
	if (ret_copy_range)
		*ret_copy_range = c->copy_range;
	return 0;
}

/* --- packet tunnels: public ---------------------------------------------------------------- */

int ne_harness_tunnel_settings(ne_harness *harness, const char *config, struct ne_harness_tunnel_info *ret)
{
	struct ne_harness_tunnel_info info = { .size = sizeof(info) };
	struct hconfig *c;
	int r = request(harness, config, &c);

	if (r < 0)
		return r;
	if (!ret || ret->size < sizeof(uint32_t))
		return -EINVAL;
	if (!c->has_tunnel_settings && !c->cancelled && !c->reasserting)
		return -ENOENT;
	info.interface = c->n_tun ? c->ifname : NULL;
	info.queues = c->n_tun;
	info.mtu = c->tunnel_mtu;
	info.n_addresses = c->n_addresses;
	info.n_included_routes = c->n_included;
	info.n_excluded_routes = c->n_excluded;
	info.n_dns_servers = c->n_dns;
	info.include_all_networks = c->tunnel_include_all;
	info.reasserting = c->reasserting;
	info.cancelled = c->cancelled;
	info.cancel_error = c->cancel_error;
	memcpy(ret, &info, NE_MIN((size_t)ret->size, sizeof(info)));
	ret->size = (uint32_t)NE_MIN((size_t)ret->size, sizeof(info));
	return 0;
}

int ne_harness_tunnel_send(ne_harness *harness, const char *config, unsigned queue, const void *bytes,
			   size_t len)
{
	static const uint8_t vnet[10];
	struct iovec iov[2] = { { (void *)vnet, sizeof(vnet) }, { (void *)bytes, len } };
	struct hconfig *c;
	int r = request(harness, config, &c);

	if (r < 0)
		return r;
	if ((!bytes && len) || len > PKT_MAX_LEN)
		return -EINVAL;
	if (!c->n_tun)
		return -ENOTCONN;
	if (queue >= c->n_tun)
		return -EINVAL;
	return writev(c->tun[queue], iov, 2) < 0 ? ne_negerrno() : 0;
}

/* One packet from any queue, without its vnet header: 1, 0 when none is ready, or an error. */
static int tun_take(struct hconfig *c, void *buf, size_t cap, size_t *ret_len)
{
	static uint8_t pkt[10 + PKT_MAX_LEN];
	unsigned i;
	ssize_t n;

	for (i = 0; i < c->n_tun; i++) {
		n = read(c->tun[i], pkt, sizeof(pkt));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 10)
			return n < 0 ? ne_negerrno() : -EBADMSG;
		*ret_len = (size_t)n - 10;
		if (*ret_len > cap)
			return -EMSGSIZE;
		memcpy(buf, pkt + 10, *ret_len);
		return 1;
	}
	return 0;
}

int ne_harness_tunnel_receive(ne_harness *harness, const char *config, void *buf, size_t cap, size_t *ret_len)
{
	unsigned long long deadline;
	struct hconfig *c;
	int r = request(harness, config, &c);

	if (r < 0)
		return r;
	if (!ret_len || (!buf && cap))
		return -EINVAL;
	deadline = ne_now_usec() + (unsigned long long)harness->timeout_ms * 1000ULL;
	for (;;) {
		if (!c->n_tun)
			return -ENOTCONN;
		r = tun_take(c, buf, cap, ret_len);
		if (r != 0)
			return r < 0 ? r : 0;
		r = turn(harness, NULL);
		if (r < 0)
			return r;
		if (nelib_ms_left(deadline, TURN_MS) == 0)
			return -ETIMEDOUT;
		wait_turn(harness, 1);
	}
}
