/* Encoders, decoders and validators of the daemon ⇄ extension protocol (see wire.h).
 * Decoders run on untrusted bytes: every length is checked before it is used, nothing is
 * copied, and a decode that leaves bytes over fails. */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void ne_put_u8(struct ne_wbuf *b, uint8_t v)
{
	if (b->err || b->cap - b->len < 1) {
		b->err = -EMSGSIZE;
		return;
	}
	b->p[b->len++] = v;
}

void ne_put_u16(struct ne_wbuf *b, uint16_t v)
{
	ne_put_u8(b, (uint8_t)(v >> 8));
	ne_put_u8(b, (uint8_t)v);
}

void ne_put_u32(struct ne_wbuf *b, uint32_t v)
{
	ne_put_u16(b, (uint16_t)(v >> 16));
	ne_put_u16(b, (uint16_t)v);
}

void ne_put_u64(struct ne_wbuf *b, uint64_t v)
{
	ne_put_u32(b, (uint32_t)(v >> 32));
	ne_put_u32(b, (uint32_t)v);
}

static void put_bytes(struct ne_wbuf *b, const void *p, size_t len)
{
	if (b->err || b->cap - b->len < len) {
		b->err = -EMSGSIZE;
		return;
	}
	if (len)
		memcpy(b->p + b->len, p, len);
	b->len += len;
}

void ne_put_str(struct ne_wbuf *b, const char *s, size_t len)
{
	if (len > NE_WIRE_STR_MAX) {
		b->err = -EMSGSIZE;
		return;
	}
	ne_put_u16(b, (uint16_t)len);
	put_bytes(b, s, len);
}

void ne_put_blob(struct ne_wbuf *b, const void *p, size_t len)
{
	if (len > NE_WIRE_BLOB_MAX) {
		b->err = -EMSGSIZE;
		return;
	}
	ne_put_u32(b, (uint32_t)len);
	put_bytes(b, p, len);
}

static const uint8_t *get_bytes(struct ne_rbuf *b, size_t n)
{
	const uint8_t *p;

	if (b->err || b->len - b->off < n) {
		b->err = -EBADMSG;
		return NULL;
	}
	p = b->p + b->off;
	b->off += n;
	return p;
}

uint8_t ne_get_u8(struct ne_rbuf *b)
{
	const uint8_t *p = get_bytes(b, 1);

	return p ? p[0] : 0;
}

uint16_t ne_get_u16(struct ne_rbuf *b)
{
	const uint8_t *p = get_bytes(b, 2);

	return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t ne_get_u32(struct ne_rbuf *b)
{
	uint32_t hi = ne_get_u16(b);

	return hi << 16 | ne_get_u16(b);
}

uint64_t ne_get_u64(struct ne_rbuf *b)
{
	uint64_t hi = ne_get_u32(b);

	return hi << 32 | ne_get_u32(b);
}

struct ne_view ne_get_str(struct ne_rbuf *b, size_t max)
{
	struct ne_view v = { "", 0 };
	size_t len = ne_get_u16(b), i;
	const uint8_t *p;

	if (len > max || len > NE_WIRE_STR_MAX) {
		b->err = -EBADMSG;
		return v;
	}
	p = get_bytes(b, len);
	if (!p)
		return v;
	for (i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] == 0x7f) {
			b->err = -EBADMSG;
			return v;
		}
	v.p = (const char *)p;
	v.len = len;
	return v;
}

struct ne_view ne_get_blob(struct ne_rbuf *b, size_t max)
{
	struct ne_view v = { "", 0 };
	size_t len = ne_get_u32(b);
	const uint8_t *p;

	if (len > max || len > NE_WIRE_BLOB_MAX) {
		b->err = -EBADMSG;
		return v;
	}
	p = get_bytes(b, len);
	if (p) {
		v.p = (const char *)p;
		v.len = len;
	}
	return v;
}

static const char *const msg_names[NE_MSG_TYPE_MAX + 1] = {
	[NE_MSG_HELLO] = "HELLO",
	[NE_MSG_WELCOME] = "WELCOME",
	[NE_MSG_PING] = "PING",
	[NE_MSG_PONG] = "PONG",
	[NE_MSG_START] = "START",
	[NE_MSG_START_DONE] = "START_DONE",
	[NE_MSG_STOP] = "STOP",
	[NE_MSG_STOP_DONE] = "STOP_DONE",
	[NE_MSG_APP_MESSAGE] = "APP_MESSAGE",
	[NE_MSG_APP_REPLY] = "APP_REPLY",
	[NE_MSG_LOG] = "LOG",
	[NE_MSG_RESULT] = "RESULT",
	[NE_MSG_FILTER_SETTINGS] = "FILTER_SETTINGS",
	[NE_MSG_FLOW_NEW] = "FLOW_NEW",
	[NE_MSG_FLOW_VERDICT] = "FLOW_VERDICT",
	[NE_MSG_FLOW_REPORT] = "FLOW_REPORT",
	[NE_MSG_DNS_SETTINGS] = "DNS_SETTINGS",
	[NE_MSG_DNS_QUERY] = "DNS_QUERY",
	[NE_MSG_DNS_VERDICT] = "DNS_VERDICT",
	[NE_MSG_DNS_RESPONSE] = "DNS_RESPONSE",
	[NE_MSG_DNS_RESPONSE_VERDICT] = "DNS_RESPONSE_VERDICT",
	[NE_MSG_PACKET_SETTINGS] = "PACKET_SETTINGS",
	[NE_MSG_PACKET_QUEUE] = "PACKET_QUEUE",
	[NE_MSG_TUNNEL_SETTINGS] = "TUNNEL_SETTINGS",
	[NE_MSG_TUNNEL_DEVICE] = "TUNNEL_DEVICE",
	[NE_MSG_TUNNEL_STATE] = "TUNNEL_STATE",
	[NE_MSG_TUNNEL_CANCEL] = "TUNNEL_CANCEL",
	[NE_MSG_TUNNEL_SOCKET] = "TUNNEL_SOCKET",
	[NE_MSG_TUNNEL_SOCKET_FD] = "TUNNEL_SOCKET_FD",
};

const char *ne_msg_type_name(uint16_t type)
{
	if (type == 0 || type > NE_MSG_TYPE_MAX)
		return "UNKNOWN";
	return msg_names[type];
}

bool ne_msg_from_extension(uint16_t type)
{
	switch (type) {
	case NE_MSG_HELLO:
	case NE_MSG_PONG:
	case NE_MSG_START_DONE:
	case NE_MSG_STOP_DONE:
	case NE_MSG_APP_REPLY:
	case NE_MSG_LOG:
	case NE_MSG_FILTER_SETTINGS:
	case NE_MSG_FLOW_VERDICT:
	case NE_MSG_DNS_SETTINGS:
	case NE_MSG_DNS_VERDICT:
	case NE_MSG_DNS_RESPONSE_VERDICT:
	case NE_MSG_PACKET_SETTINGS:
	case NE_MSG_TUNNEL_SETTINGS:
	case NE_MSG_TUNNEL_STATE:
	case NE_MSG_TUNNEL_CANCEL:
	case NE_MSG_TUNNEL_SOCKET:
		return true;
	default:
		return false;
	}
}

void ne_msg_begin(struct ne_wbuf *b, uint16_t type, uint64_t id)
{
	b->len = 0;
	b->err = 0;
	ne_put_u16(b, type);
	ne_put_u16(b, 0);
	ne_put_u32(b, 0); /* length, filled in by ne_msg_finish */
	ne_put_u64(b, id);
}

int ne_msg_finish(struct ne_wbuf *b)
{
	if (b->err)
		return b->err;
	if (b->len > NE_WIRE_MAX)
		return -EMSGSIZE;
	b->p[4] = (uint8_t)(b->len >> 24);
	b->p[5] = (uint8_t)(b->len >> 16);
	b->p[6] = (uint8_t)(b->len >> 8);
	b->p[7] = (uint8_t)b->len;
	return (int)b->len;
}

int ne_msg_hdr_decode(const uint8_t *frame, size_t len, struct ne_msg_hdr *ret_hdr)
{
	struct ne_rbuf r = { frame, len, 0, 0 };
	struct ne_msg_hdr h;

	if (len < NE_WIRE_HDR_LEN || len > NE_WIRE_MAX)
		return -EBADMSG;
	h.type = ne_get_u16(&r);
	h.flags = ne_get_u16(&r);
	h.length = ne_get_u32(&r);
	h.id = ne_get_u64(&r);
	if (r.err || h.length != len || h.flags != 0)
		return -EBADMSG;
	if (h.type == 0 || h.type > NE_MSG_TYPE_MAX)
		return -EPROTO;
	*ret_hdr = h;
	return 0;
}

static int decode_end(const struct ne_rbuf *r)
{
	if (r->err || r->off != r->len)
		return -EBADMSG;
	return 0;
}

int ne_msg_hello_encode(struct ne_wbuf *b, const struct ne_msg_hello *m)
{
	uint16_t i;

	if (m->n_providers > 16)
		return -EINVAL;
	ne_msg_begin(b, NE_MSG_HELLO, 0);
	ne_put_u16(b, m->min_version);
	ne_put_u16(b, m->max_version);
	ne_put_str(b, m->library.p, m->library.len);
	ne_put_u16(b, m->n_providers);
	for (i = 0; i < m->n_providers; i++)
		ne_put_u16(b, m->providers[i]);
	return ne_msg_finish(b);
}

int ne_msg_hello_decode(const uint8_t *p, size_t len, struct ne_msg_hello *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_hello m;
	uint16_t i;

	m.min_version = ne_get_u16(&r);
	m.max_version = ne_get_u16(&r);
	m.library = ne_get_str(&r, NE_WIRE_NAME_MAX);
	m.n_providers = ne_get_u16(&r);
	if (r.err || m.n_providers > 16 || m.min_version > m.max_version)
		return -EBADMSG;
	for (i = 0; i < m.n_providers; i++)
		m.providers[i] = ne_get_u16(&r);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_welcome_encode(struct ne_wbuf *b, const struct ne_msg_welcome *m)
{
	ne_msg_begin(b, NE_MSG_WELCOME, 0);
	ne_put_u16(b, m->version);
	ne_put_str(b, m->identifier.p, m->identifier.len);
	ne_put_u32(b, m->heartbeat_ms);
	return ne_msg_finish(b);
}

int ne_msg_welcome_decode(const uint8_t *p, size_t len, struct ne_msg_welcome *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_welcome m;

	m.version = ne_get_u16(&r);
	m.identifier = ne_get_str(&r, NE_WIRE_NAME_MAX);
	m.heartbeat_ms = ne_get_u32(&r);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_empty_encode(struct ne_wbuf *b, uint16_t type, uint64_t id)
{
	ne_msg_begin(b, type, id);
	return ne_msg_finish(b);
}

int ne_msg_empty_decode(const uint8_t *p, size_t len)
{
	(void)p;
	return len == 0 ? 0 : -EBADMSG;
}

int ne_msg_start_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_start *m)
{
	uint16_t i;

	if (m->n_options > NE_WIRE_OPTIONS_MAX)
		return -EINVAL;
	ne_msg_begin(b, NE_MSG_START, id);
	ne_put_u32(b, m->provider);
	ne_put_u16(b, m->type);
	ne_put_str(b, m->config.p, m->config.len);
	ne_put_u16(b, m->n_options);
	for (i = 0; i < m->n_options; i++) {
		ne_put_str(b, m->keys[i].p, m->keys[i].len);
		ne_put_str(b, m->values[i].p, m->values[i].len);
	}
	return ne_msg_finish(b);
}

int ne_msg_start_decode(const uint8_t *p, size_t len, struct ne_msg_start *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_start m;
	uint16_t i;

	/* Decode into m (2 KiB of views) and copy only on success, like every other
	 * decoder: a refused frame must not leave half a message in the caller's struct. */
	m.provider = ne_get_u32(&r);
	m.type = ne_get_u16(&r);
	m.config = ne_get_str(&r, NE_WIRE_NAME_MAX);
	m.n_options = ne_get_u16(&r);
	if (r.err || m.n_options > NE_WIRE_OPTIONS_MAX || m.config.len == 0)
		return -EBADMSG;
	for (i = 0; i < m.n_options; i++) {
		m.keys[i] = ne_get_str(&r, NE_WIRE_NAME_MAX);
		m.values[i] = ne_get_str(&r, NE_WIRE_STR_MAX);
	}
	if (decode_end(&r))
		return -EBADMSG;
	ret->provider = m.provider;
	ret->type = m.type;
	ret->config = m.config;
	ret->n_options = m.n_options;
	memcpy(ret->keys, m.keys, m.n_options * sizeof(m.keys[0]));
	memcpy(ret->values, m.values, m.n_options * sizeof(m.values[0]));
	return 0;
}

int ne_msg_result_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_result *m)
{
	ne_msg_begin(b, NE_MSG_START_DONE, id);
	ne_put_u32(b, (uint32_t)m->error);
	ne_put_str(b, m->message.p, m->message.len);
	return ne_msg_finish(b);
}

int ne_msg_result_decode(const uint8_t *p, size_t len, struct ne_msg_result *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_result m;

	m.error = (int32_t)ne_get_u32(&r);
	m.message = ne_get_str(&r, NE_WIRE_STR_MAX);
	if (decode_end(&r) || m.error > 0 || m.error < -4095)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_stop_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_stop *m)
{
	ne_msg_begin(b, NE_MSG_STOP, id);
	ne_put_u32(b, m->provider);
	ne_put_u32(b, m->reason);
	return ne_msg_finish(b);
}

int ne_msg_stop_decode(const uint8_t *p, size_t len, struct ne_msg_stop *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_stop m;

	m.provider = ne_get_u32(&r);
	m.reason = ne_get_u32(&r);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_app_message_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_app_message *m)
{
	ne_msg_begin(b, NE_MSG_APP_MESSAGE, id);
	ne_put_u32(b, m->provider);
	ne_put_blob(b, m->data.p, m->data.len);
	return ne_msg_finish(b);
}

int ne_msg_app_message_decode(const uint8_t *p, size_t len, struct ne_msg_app_message *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_app_message m;

	m.provider = ne_get_u32(&r);
	m.data = ne_get_blob(&r, NE_WIRE_BLOB_MAX);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_app_reply_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_app_reply *m)
{
	ne_msg_begin(b, NE_MSG_APP_REPLY, id);
	ne_put_u32(b, (uint32_t)m->error);
	ne_put_blob(b, m->data.p, m->data.len);
	return ne_msg_finish(b);
}

int ne_msg_app_reply_decode(const uint8_t *p, size_t len, struct ne_msg_app_reply *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_app_reply m;

	m.error = (int32_t)ne_get_u32(&r);
	m.data = ne_get_blob(&r, NE_WIRE_BLOB_MAX);
	if (decode_end(&r) || m.error > 0 || m.error < -4095)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_log_encode(struct ne_wbuf *b, const struct ne_msg_log *m)
{
	ne_msg_begin(b, NE_MSG_LOG, 0);
	ne_put_u8(b, m->level);
	ne_put_str(b, m->text.p, m->text.len);
	return ne_msg_finish(b);
}

int ne_msg_log_decode(const uint8_t *p, size_t len, struct ne_msg_log *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_log m;

	m.level = ne_get_u8(&r);
	m.text = ne_get_str(&r, NE_WIRE_STR_MAX);
	if (decode_end(&r) || m.level > 7)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_wire_send(int fd, const void *frame, size_t len, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * NE_WIRE_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)frame, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > NE_WIRE_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (int)n;
}

static void close_fds(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

int ne_wire_recv(int fd, uint8_t *buf, size_t cap, int *fds, size_t *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * NE_WIRE_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	size_t got = 0, want = nfds ? *nfds : 0;
	struct cmsghdr *c;
	int bad = 0;
	ssize_t n;

	n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		const int *cfds;
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cfds = (const int *)(void *)CMSG_DATA(c);
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (got + k > want) {
			close_fds(cfds, k);
			bad = 1;
			continue;
		}
		memcpy(fds + got, cfds, k * sizeof(int));
		got += k;
	}
	if (nfds)
		*nfds = got;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		close_fds(fds, got);
		if (nfds)
			*nfds = 0;
		return -EMSGSIZE;
	}
	if (bad) {
		close_fds(fds, got);
		if (nfds)
			*nfds = 0;
		return -EBADMSG;
	}
	return (int)n;
}

int ne_msg_result2_encode(struct ne_wbuf *b, uint16_t type, uint64_t id, const struct ne_msg_result *m)
{
	ne_msg_begin(b, type, id);
	ne_put_u32(b, (uint32_t)m->error);
	ne_put_str(b, m->message.p, m->message.len);
	return ne_msg_finish(b);
}

/* --- content filter ------------------------------------------------------------------ */

/* 0 or 1 only: anything else would not re-encode to the same bytes. */
static bool get_bool(struct ne_rbuf *b)
{
	uint8_t v = ne_get_u8(b);

	if (v > 1)
		b->err = -EBADMSG;
	return v == 1;
}

static void put_view(struct ne_wbuf *b, struct ne_view v)
{
	ne_put_str(b, v.p ? v.p : "", v.p ? v.len : 0);
}

static void put_rule(struct ne_wbuf *b, const struct ne_wire_rule *r)
{
	ne_put_u8(b, r->action);
	ne_put_u8(b, r->direction);
	ne_put_u8(b, r->protocol);
	put_view(b, r->remote_network);
	ne_put_u16(b, r->remote_port);
	put_view(b, r->remote_hostname);
	put_view(b, r->local_network);
	ne_put_u16(b, r->local_port);
	put_view(b, r->executable);
	ne_put_u8(b, r->match_uid);
	ne_put_u32(b, r->uid);
	put_view(b, r->cgroup);
}

static void get_rule(struct ne_rbuf *b, struct ne_wire_rule *r)
{
	r->action = ne_get_u8(b);
	r->direction = ne_get_u8(b);
	r->protocol = ne_get_u8(b);
	r->remote_network = ne_get_str(b, NE_WIRE_STR_MAX);
	r->remote_port = ne_get_u16(b);
	r->remote_hostname = ne_get_str(b, NE_WIRE_STR_MAX);
	r->local_network = ne_get_str(b, NE_WIRE_STR_MAX);
	r->local_port = ne_get_u16(b);
	r->executable = ne_get_str(b, NE_WIRE_STR_MAX);
	r->match_uid = get_bool(b);
	r->uid = ne_get_u32(b);
	r->cgroup = ne_get_str(b, NE_WIRE_STR_MAX);
}

int ne_msg_filter_settings_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_filter_settings *m)
{
	uint16_t i;

	if (m->n_rules > NE_WIRE_RULES_MAX)
		return -E2BIG;
	ne_msg_begin(b, NE_MSG_FILTER_SETTINGS, id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->default_action);
	ne_put_u32(b, m->report_flags);
	ne_put_u32(b, m->stats_interval_ms);
	ne_put_u16(b, m->n_rules);
	for (i = 0; i < m->n_rules; i++)
		put_rule(b, &m->rules[i]);
	return ne_msg_finish(b);
}

/* The rules land in the caller's array (ret->rules) even when the decode fails later; the
 * other fields are written only on success. */
int ne_msg_filter_settings_decode(const uint8_t *p, size_t len, struct ne_msg_filter_settings *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_filter_settings m = { .rules = ret->rules };
	uint16_t i;

	m.provider = ne_get_u32(&r);
	m.default_action = ne_get_u8(&r);
	m.report_flags = ne_get_u32(&r);
	m.stats_interval_ms = ne_get_u32(&r);
	m.n_rules = ne_get_u16(&r);
	if (m.n_rules > NE_WIRE_RULES_MAX)
		return -EBADMSG;
	for (i = 0; i < m.n_rules && !r.err; i++)
		get_rule(&r, &m.rules[i]);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

static void put_flow(struct ne_wbuf *b, const struct ne_flow_record *f)
{
	int i;

	ne_put_u64(b, f->id);
	ne_put_u8(b, f->direction);
	ne_put_u8(b, f->family);
	ne_put_u8(b, f->protocol);
	for (i = 0; i < 16; i++)
		ne_put_u8(b, f->local_addr[i]);
	ne_put_u16(b, f->local_port);
	for (i = 0; i < 16; i++)
		ne_put_u8(b, f->remote_addr[i]);
	ne_put_u16(b, f->remote_port);
	put_view(b, f->hostname);
	ne_put_u32(b, (uint32_t)f->pid);
	ne_put_u32(b, (uint32_t)f->ppid);
	ne_put_u8(b, f->has_ids);
	ne_put_u32(b, f->uid);
	ne_put_u32(b, f->gid);
	ne_put_u64(b, f->start_time);
	put_view(b, f->executable);
	put_view(b, f->cmdline);
	put_view(b, f->cgroup);
}

/* Also checks what the library relies on: a known direction and IP version. */
static void get_flow(struct ne_rbuf *b, struct ne_flow_record *f)
{
	int i;

	f->id = ne_get_u64(b);
	f->direction = ne_get_u8(b);
	f->family = ne_get_u8(b);
	f->protocol = ne_get_u8(b);
	for (i = 0; i < 16; i++)
		f->local_addr[i] = ne_get_u8(b);
	f->local_port = ne_get_u16(b);
	for (i = 0; i < 16; i++)
		f->remote_addr[i] = ne_get_u8(b);
	f->remote_port = ne_get_u16(b);
	f->hostname = ne_get_str(b, NE_WIRE_STR_MAX);
	f->pid = (int32_t)ne_get_u32(b);
	f->ppid = (int32_t)ne_get_u32(b);
	f->has_ids = get_bool(b);
	f->uid = ne_get_u32(b);
	f->gid = ne_get_u32(b);
	f->start_time = ne_get_u64(b);
	f->executable = ne_get_str(b, NE_WIRE_STR_MAX);
	f->cmdline = ne_get_str(b, NE_WIRE_STR_MAX);
	f->cgroup = ne_get_str(b, NE_WIRE_STR_MAX);
	if (f->id == 0 || (f->direction != 1 && f->direction != 2) ||
	    (f->family != 4 && f->family != 6))
		b->err = -EBADMSG;
}

int ne_msg_flow_new_encode(struct ne_wbuf *b, const struct ne_msg_flow_new *m)
{
	ne_msg_begin(b, NE_MSG_FLOW_NEW, m->flow.id);
	ne_put_u32(b, m->provider);
	put_flow(b, &m->flow);
	return ne_msg_finish(b);
}

int ne_msg_flow_new_decode(const uint8_t *p, size_t len, struct ne_msg_flow_new *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_flow_new m;

	m.provider = ne_get_u32(&r);
	get_flow(&r, &m.flow);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_flow_verdict_encode(struct ne_wbuf *b, uint64_t flow_id, const struct ne_msg_flow_verdict *m)
{
	ne_msg_begin(b, NE_MSG_FLOW_VERDICT, flow_id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->kind);
	ne_put_u8(b, m->flags);
	ne_put_u32(b, m->peek_inbound);
	ne_put_u32(b, m->peek_outbound);
	return ne_msg_finish(b);
}

int ne_msg_flow_verdict_decode(const uint8_t *p, size_t len, struct ne_msg_flow_verdict *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_flow_verdict m;

	m.provider = ne_get_u32(&r);
	m.kind = ne_get_u8(&r);
	m.flags = ne_get_u8(&r);
	m.peek_inbound = ne_get_u32(&r);
	m.peek_outbound = ne_get_u32(&r);
	if (decode_end(&r) || m.kind > 4 || m.flags > 3)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_flow_report_encode(struct ne_wbuf *b, const struct ne_msg_flow_report *m)
{
	ne_msg_begin(b, NE_MSG_FLOW_REPORT, m->flow.id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->event);
	ne_put_u8(b, m->verdict);
	ne_put_u64(b, m->bytes_in);
	ne_put_u64(b, m->bytes_out);
	ne_put_u64(b, m->packets_in);
	ne_put_u64(b, m->packets_out);
	put_view(b, m->detail);
	put_flow(b, &m->flow);
	return ne_msg_finish(b);
}

int ne_msg_flow_report_decode(const uint8_t *p, size_t len, struct ne_msg_flow_report *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_flow_report m;

	m.provider = ne_get_u32(&r);
	m.event = ne_get_u8(&r);
	m.verdict = ne_get_u8(&r);
	m.bytes_in = ne_get_u64(&r);
	m.bytes_out = ne_get_u64(&r);
	m.packets_in = ne_get_u64(&r);
	m.packets_out = ne_get_u64(&r);
	m.detail = ne_get_str(&r, NE_WIRE_STR_MAX);
	get_flow(&r, &m.flow);
	if (decode_end(&r) || m.event < 1 || m.event > 4 || m.verdict > 4)
		return -EBADMSG;
	*ret = m;
	return 0;
}

/* --- dns proxy ------------------------------------------------------------------------ */

#define DNS_MESSAGE_MAX 65535 /* a DNS message's own limit (its TCP length prefix) */

/* Blob of a DNS message: bounded by DNS's limit, not by NE_WIRE_BLOB_MAX. */
static void put_dns_blob(struct ne_wbuf *b, struct ne_view v)
{
	if (v.len > DNS_MESSAGE_MAX) {
		b->err = -EMSGSIZE;
		return;
	}
	ne_put_blob(b, v.p ? v.p : "", v.p ? v.len : 0);
}

int ne_msg_dns_settings_encode(struct ne_wbuf *b, const struct ne_msg_dns_settings *m)
{
	ne_msg_begin(b, NE_MSG_DNS_SETTINGS, 0);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->mode);
	ne_put_u8(b, m->want_responses);
	return ne_msg_finish(b);
}

int ne_msg_dns_settings_decode(const uint8_t *p, size_t len, struct ne_msg_dns_settings *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_dns_settings m;

	m.provider = ne_get_u32(&r);
	m.mode = ne_get_u8(&r);
	m.want_responses = get_bool(&r);
	if (decode_end(&r) || m.mode > 1)
		return -EBADMSG;
	*ret = m;
	return 0;
}

static bool dns_protocol_ok(uint8_t protocol)
{
	return protocol == 6 || protocol == 17; /* IPPROTO_TCP, IPPROTO_UDP */
}

int ne_msg_dns_query_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_dns_query *m)
{
	ne_msg_begin(b, NE_MSG_DNS_QUERY, id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->protocol);
	put_flow(b, &m->flow);
	put_dns_blob(b, m->message);
	return ne_msg_finish(b);
}

int ne_msg_dns_query_decode(const uint8_t *p, size_t len, struct ne_msg_dns_query *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_dns_query m;

	m.provider = ne_get_u32(&r);
	m.protocol = ne_get_u8(&r);
	get_flow(&r, &m.flow);
	m.message = ne_get_blob(&r, DNS_MESSAGE_MAX);
	if (decode_end(&r) || !dns_protocol_ok(m.protocol))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_dns_verdict_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_dns_verdict *m)
{
	ne_msg_begin(b, NE_MSG_DNS_VERDICT, id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->kind);
	put_view(b, m->target);
	put_dns_blob(b, m->message);
	return ne_msg_finish(b);
}

int ne_msg_dns_verdict_decode(const uint8_t *p, size_t len, struct ne_msg_dns_verdict *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_dns_verdict m;

	m.provider = ne_get_u32(&r);
	m.kind = ne_get_u8(&r);
	m.target = ne_get_str(&r, NE_WIRE_STR_MAX);
	m.message = ne_get_blob(&r, DNS_MESSAGE_MAX);
	if (decode_end(&r) || m.kind < 1 || m.kind > 4)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_dns_response_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_dns_response *m)
{
	ne_msg_begin(b, NE_MSG_DNS_RESPONSE, id);
	ne_put_u32(b, m->provider);
	put_dns_blob(b, m->message);
	return ne_msg_finish(b);
}

int ne_msg_dns_response_decode(const uint8_t *p, size_t len, struct ne_msg_dns_response *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_dns_response m;

	m.provider = ne_get_u32(&r);
	m.message = ne_get_blob(&r, DNS_MESSAGE_MAX);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_dns_response_verdict_encode(struct ne_wbuf *b, uint64_t id,
				       const struct ne_msg_dns_response_verdict *m)
{
	ne_msg_begin(b, NE_MSG_DNS_RESPONSE_VERDICT, id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->kind);
	put_dns_blob(b, m->message);
	return ne_msg_finish(b);
}

int ne_msg_dns_response_verdict_decode(const uint8_t *p, size_t len,
				       struct ne_msg_dns_response_verdict *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_dns_response_verdict m;

	m.provider = ne_get_u32(&r);
	m.kind = ne_get_u8(&r);
	m.message = ne_get_blob(&r, DNS_MESSAGE_MAX);
	if (decode_end(&r) || m.kind < 1 || m.kind > 3)
		return -EBADMSG;
	*ret = m;
	return 0;
}

static void put_packet_rule(struct ne_wbuf *b, const struct ne_wire_packet_rule *r)
{
	ne_put_u8(b, r->direction);
	ne_put_u8(b, r->family);
	ne_put_u8(b, r->protocol);
	put_view(b, r->interface);
	put_view(b, r->local_network);
	ne_put_u16(b, r->local_port);
	put_view(b, r->remote_network);
	ne_put_u16(b, r->remote_port);
}

static void get_packet_rule(struct ne_rbuf *b, struct ne_wire_packet_rule *r)
{
	r->direction = ne_get_u8(b);
	r->family = ne_get_u8(b);
	r->protocol = ne_get_u8(b);
	r->interface = ne_get_str(b, NE_WIRE_STR_MAX);
	r->local_network = ne_get_str(b, NE_WIRE_STR_MAX);
	r->local_port = ne_get_u16(b);
	r->remote_network = ne_get_str(b, NE_WIRE_STR_MAX);
	r->remote_port = ne_get_u16(b);
}

int ne_msg_packet_settings_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_packet_settings *m)
{
	if (m->n_rules > NE_WIRE_PACKET_RULES_MAX)
		return -E2BIG;
	ne_msg_begin(b, NE_MSG_PACKET_SETTINGS, id);
	ne_put_u32(b, m->provider);
	ne_put_u32(b, m->copy_range);
	ne_put_u16(b, m->queues);
	ne_put_u16(b, m->n_rules);
	for (uint16_t i = 0; i < m->n_rules; i++)
		put_packet_rule(b, &m->rules[i]);
	return ne_msg_finish(b);
}

int ne_msg_packet_settings_decode(const uint8_t *p, size_t len, struct ne_msg_packet_settings *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_packet_settings m = { .rules = ret->rules };

	m.provider = ne_get_u32(&r);
	m.copy_range = ne_get_u32(&r);
	m.queues = ne_get_u16(&r);
	m.n_rules = ne_get_u16(&r);
	if (m.n_rules > NE_WIRE_PACKET_RULES_MAX)
		return -EBADMSG;
	for (uint16_t i = 0; i < m.n_rules && !r.err; i++)
		get_packet_rule(&r, &m.rules[i]);
	if (decode_end(&r))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_packet_queue_encode(struct ne_wbuf *b, const struct ne_msg_packet_queue *m)
{
	ne_msg_begin(b, NE_MSG_PACKET_QUEUE, 0);
	ne_put_u32(b, m->provider);
	ne_put_u16(b, m->index);
	ne_put_u16(b, m->count);
	ne_put_u32(b, m->map_size);
	return ne_msg_finish(b);
}

int ne_msg_packet_queue_decode(const uint8_t *p, size_t len, struct ne_msg_packet_queue *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_packet_queue m;

	m.provider = ne_get_u32(&r);
	m.index = ne_get_u16(&r);
	m.count = ne_get_u16(&r);
	m.map_size = ne_get_u32(&r);
	if (decode_end(&r) || m.count == 0 || m.count > 8 || m.index >= m.count)
		return -EBADMSG;
	*ret = m;
	return 0;
}

/* --- packet tunnel ------------------------------------------------------------------- */

static void put_views(struct ne_wbuf *b, const struct ne_view *v, uint16_t n)
{
	ne_put_u16(b, n);
	for (uint16_t i = 0; i < n; i++)
		put_view(b, v[i]);
}

static uint16_t get_views(struct ne_rbuf *b, struct ne_view *v, uint16_t max)
{
	uint16_t n = ne_get_u16(b);

	if (n > max) {
		b->err = -EBADMSG;
		return 0;
	}
	for (uint16_t i = 0; i < n && !b->err; i++)
		v[i] = ne_get_str(b, NE_WIRE_STR_MAX);
	return n;
}

int ne_msg_tunnel_settings_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_tunnel_settings *m)
{
	if (m->n_addresses > NE_WIRE_TUNNEL_ADDRESSES_MAX || m->n_included > NE_WIRE_TUNNEL_ROUTES_MAX ||
	    m->n_excluded > NE_WIRE_TUNNEL_ROUTES_MAX || m->n_dns > NE_WIRE_TUNNEL_DNS_MAX ||
	    m->n_search > NE_WIRE_TUNNEL_SEARCH_MAX || m->n_match > NE_WIRE_TUNNEL_MATCH_MAX)
		return -E2BIG;
	ne_msg_begin(b, NE_MSG_TUNNEL_SETTINGS, id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->flags);
	put_view(b, m->remote_address);
	ne_put_u32(b, m->mtu);
	ne_put_u32(b, m->overhead);
	ne_put_u16(b, m->queues);
	put_views(b, m->addresses, m->n_addresses);
	put_views(b, m->included, m->n_included);
	put_views(b, m->excluded, m->n_excluded);
	put_views(b, m->dns, m->n_dns);
	put_views(b, m->search, m->n_search);
	put_views(b, m->match, m->n_match);
	return ne_msg_finish(b);
}

int ne_msg_tunnel_settings_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_settings *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_tunnel_settings *m = malloc(sizeof(*m)); /* ~21 KiB: not on the stack */
	int err = 0;

	if (!m)
		return -ENOMEM;
	m->provider = ne_get_u32(&r);
	m->flags = ne_get_u8(&r);
	m->remote_address = ne_get_str(&r, NE_WIRE_STR_MAX);
	m->mtu = ne_get_u32(&r);
	m->overhead = ne_get_u32(&r);
	m->queues = ne_get_u16(&r);
	m->n_addresses = get_views(&r, m->addresses, NE_WIRE_TUNNEL_ADDRESSES_MAX);
	m->n_included = get_views(&r, m->included, NE_WIRE_TUNNEL_ROUTES_MAX);
	m->n_excluded = get_views(&r, m->excluded, NE_WIRE_TUNNEL_ROUTES_MAX);
	m->n_dns = get_views(&r, m->dns, NE_WIRE_TUNNEL_DNS_MAX);
	m->n_search = get_views(&r, m->search, NE_WIRE_TUNNEL_SEARCH_MAX);
	m->n_match = get_views(&r, m->match, NE_WIRE_TUNNEL_MATCH_MAX);
	if (decode_end(&r) || (m->flags & ~NE_TUNNEL_F_ALL))
		err = -EBADMSG;
	else
		memcpy(ret, m, sizeof(*m));
	free(m);
	return err;
}

int ne_msg_tunnel_device_encode(struct ne_wbuf *b, const struct ne_msg_tunnel_device *m)
{
	ne_msg_begin(b, NE_MSG_TUNNEL_DEVICE, 0);
	ne_put_u32(b, m->provider);
	put_view(b, m->ifname);
	ne_put_u32(b, m->ifindex);
	ne_put_u32(b, m->mtu);
	ne_put_u16(b, m->vnet_hdr_len);
	ne_put_u32(b, m->offloads);
	ne_put_u16(b, m->count);
	return ne_msg_finish(b);
}

int ne_msg_tunnel_device_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_device *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_tunnel_device m;

	m.provider = ne_get_u32(&r);
	m.ifname = ne_get_str(&r, 15);
	m.ifindex = ne_get_u32(&r);
	m.mtu = ne_get_u32(&r);
	m.vnet_hdr_len = ne_get_u16(&r);
	m.offloads = ne_get_u32(&r);
	m.count = ne_get_u16(&r);
	if (decode_end(&r) || m.ifname.len == 0 || (m.vnet_hdr_len != 0 && m.vnet_hdr_len != 10) ||
	    m.count == 0 || m.count > NE_WIRE_TUNNEL_QUEUES_MAX)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_tunnel_state_encode(struct ne_wbuf *b, const struct ne_msg_tunnel_state *m)
{
	ne_msg_begin(b, NE_MSG_TUNNEL_STATE, 0);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->reasserting ? 1 : 0);
	return ne_msg_finish(b);
}

int ne_msg_tunnel_state_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_state *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_tunnel_state m;
	uint8_t v;

	m.provider = ne_get_u32(&r);
	v = ne_get_u8(&r);
	if (decode_end(&r) || v > 1)
		return -EBADMSG;
	m.reasserting = v == 1;
	*ret = m;
	return 0;
}

int ne_msg_tunnel_cancel_encode(struct ne_wbuf *b, const struct ne_msg_tunnel_cancel *m)
{
	ne_msg_begin(b, NE_MSG_TUNNEL_CANCEL, 0);
	ne_put_u32(b, m->provider);
	ne_put_u32(b, (uint32_t)m->error);
	put_view(b, m->message);
	return ne_msg_finish(b);
}

int ne_msg_tunnel_cancel_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_cancel *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_tunnel_cancel m;

	m.provider = ne_get_u32(&r);
	m.error = (int32_t)ne_get_u32(&r);
	m.message = ne_get_str(&r, NE_WIRE_STR_MAX);
	if (decode_end(&r) || m.error > 0)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int ne_msg_tunnel_socket_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_tunnel_socket *m)
{
	ne_msg_begin(b, NE_MSG_TUNNEL_SOCKET, id);
	ne_put_u32(b, m->provider);
	ne_put_u8(b, m->family);
	ne_put_u8(b, m->protocol);
	ne_put_u16(b, m->port);
	return ne_msg_finish(b);
}

int ne_msg_tunnel_socket_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_socket *ret)
{
	struct ne_rbuf r = { p, len, 0, 0 };
	struct ne_msg_tunnel_socket m;

	m.provider = ne_get_u32(&r);
	m.family = ne_get_u8(&r);
	m.protocol = ne_get_u8(&r);
	m.port = ne_get_u16(&r);
	if (decode_end(&r) || (m.family != 0 && m.family != 4 && m.family != 6) ||
	    (m.protocol != 6 && m.protocol != 17))
		return -EBADMSG;
	*ret = m;
	return 0;
}
