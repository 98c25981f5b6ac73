/* DNS messages from queued IP packets (see dnssnoop.h).
 *
 * Trust: every byte is hostile, and so is the packet count: anyone can send packets from
 * port 53 with any addresses. Each header length is checked against the bytes that were
 * captured before it is used; state is a bounded list of TCP connections, each holding at
 * most one partial message, so memory stays below DNSSNOOP_TCP_CONNS_MAX ×
 * DNSSNOOP_TCP_BUF_MAX whatever arrives.
 *
 * Reassembly follows only in-order data. A connection first seen in the middle (the daemon
 * started after it opened) is assumed to be at a message boundary: if it is not, the
 * "messages" are garbage the DNS parser refuses, and a server that wanted to feed us garbage
 * could send it directly anyway. A gap or overlap drops the partial message and stops
 * following the connection until it ends, since the next message boundary is unknown. */
#include "dnssnoop.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "list.h"
#include "util.h"

#define DNS_PORT 53
#define DNS_HDR_LEN 12
#define IP6_EXT_MAX 8            /* extension headers we walk before giving up */
#define TCP_BUF_KEEP 4096        /* a bigger buffer is freed once its message is out */

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04

struct tcp_conn {
	struct ne_list link;   /* in dnssnoop.conns, most recently active first */
	struct pi_tuple t;
	uint32_t next_seq;     /* sequence number of the next byte we expect */
	bool lost;             /* data went missing: ignored until it ends */
	uint8_t *buf;          /* the partial message: 2-byte length, then its bytes */
	size_t len, cap;
	uint64_t last_usec;
};

struct dnssnoop {
	dnssnoop_cb cb;
	void *userdata;
	struct ne_list conns;
	size_t n_conns;
	struct dnssnoop_stats stats;
};

/* The transport part of a packet, once the IP layer has been checked. */
struct l4 {
	struct pi_tuple t;
	const uint8_t *p;  /* transport header */
	size_t len;        /* header and payload, as the IP header says */
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

int dnssnoop_new(dnssnoop_cb cb, void *userdata, struct dnssnoop **ret)
{
	struct dnssnoop *s;

	if (!cb)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cb = cb;
	s->userdata = userdata;
	ne_list_init(&s->conns);
	*ret = s;
	return 0;
}

static void conn_free(struct dnssnoop *s, struct tcp_conn *c)
{
	ne_list_remove(&c->link);
	s->n_conns--;
	free(c->buf);
	free(c);
}

void dnssnoop_free(struct dnssnoop *s)
{
	struct ne_list *pos, *tmp;

	if (!s)
		return;
	ne_list_for_each(pos, tmp, &s->conns)
		conn_free(s, ne_container_of(pos, struct tcp_conn, link));
	free(s);
}

void dnssnoop_get_stats(const struct dnssnoop *s, struct dnssnoop_stats *ret)
{
	*ret = s->stats;
}

/* IPv4: header length, total length against what was captured; fragments are ignored (a
 * first fragment alone holds a cut message, later ones no port). */
static int parse_ip4(const uint8_t *pkt, size_t len, struct l4 *ret)
{
	size_t ihl, total;

	if (len < 20)
		return -EBADMSG;
	ihl = (size_t)(pkt[0] & 0x0f) * 4;
	total = get16(pkt + 2);
	if (ihl < 20 || total < ihl || total > len)
		return -EBADMSG;
	if (get16(pkt + 6) & 0x3fff) /* MF or a fragment offset */
		return -EOPNOTSUPP;
	memset(ret, 0, sizeof(*ret));
	ret->t.family = AF_INET;
	ret->t.proto = pkt[9];
	memcpy(&ret->t.remote.v4, pkt + 12, 4);
	memcpy(&ret->t.local.v4, pkt + 16, 4);
	ret->p = pkt + ihl;
	ret->len = total - ihl;
	return 0;
}

/* Skips IPv6 extension headers up to the transport header; *off and *nh advance. Only
 * unfragmented packets (or atomic fragments, RFC 6946) go on. */
static int skip_ip6_ext(const uint8_t *pkt, size_t end, size_t *off, uint8_t *nh)
{
	size_t i, hlen;

	for (i = 0; i < IP6_EXT_MAX; i++) {
		switch (*nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if (end - *off < 8)
				return -EBADMSG;
			hlen = ((size_t)pkt[*off + 1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			if (end - *off < 8)
				return -EBADMSG;
			if (get16(pkt + *off + 2) & 0xfff9) /* offset or M set */
				return -EOPNOTSUPP;
			hlen = 8;
			break;
		default:
			return 0;
		}
		if (end - *off < hlen)
			return -EBADMSG;
		*nh = pkt[*off];
		*off += hlen;
	}
	return -EOPNOTSUPP;
}

static int parse_ip6(const uint8_t *pkt, size_t len, struct l4 *ret)
{
	size_t off = 40, end;
	uint8_t nh;
	int r;

	if (len < 40)
		return -EBADMSG;
	end = 40 + (size_t)get16(pkt + 4);
	if (end == 40)
		return -EOPNOTSUPP; /* jumbogram (or nothing at all) */
	if (end > len)
		return -EBADMSG;
	nh = pkt[6];
	r = skip_ip6_ext(pkt, end, &off, &nh);
	if (r < 0)
		return r;
	memset(ret, 0, sizeof(*ret));
	ret->t.family = AF_INET6;
	ret->t.proto = nh;
	memcpy(&ret->t.remote.v6, pkt + 8, 16);
	memcpy(&ret->t.local.v6, pkt + 24, 16);
	ret->p = pkt + off;
	ret->len = end - off;
	return 0;
}

static void deliver(struct dnssnoop *s, const struct pi_tuple *t, const uint8_t *msg, size_t len)
{
	if (len < DNS_HDR_LEN) {
		s->stats.malformed++;
		return;
	}
	if (t->proto == IPPROTO_TCP)
		s->stats.tcp_msgs++;
	else
		s->stats.udp_msgs++;
	s->cb(t, msg, len, s->userdata);
}

static int udp_packet(struct dnssnoop *s, struct l4 *l)
{
	size_t ulen;

	if (l->len < 8)
		return -EBADMSG;
	ulen = get16(l->p + 4);
	if (ulen < 8 || ulen > l->len)
		return -EBADMSG;
	l->t.remote_port = get16(l->p);
	l->t.local_port = get16(l->p + 2);
	if (l->t.remote_port != DNS_PORT)
		return -EOPNOTSUPP;
	deliver(s, &l->t, l->p + 8, ulen - 8);
	return 0;
}

static bool tuple_equal(const struct pi_tuple *a, const struct pi_tuple *b)
{
	size_t alen = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && a->local_port == b->local_port &&
	       a->remote_port == b->remote_port && memcmp(&a->local, &b->local, alen) == 0 &&
	       memcmp(&a->remote, &b->remote, alen) == 0;
}

static struct tcp_conn *conn_find(struct dnssnoop *s, const struct pi_tuple *t)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &s->conns) {
		struct tcp_conn *c = ne_container_of(pos, struct tcp_conn, link);

		if (tuple_equal(&c->t, t))
			return c;
	}
	return NULL;
}

/* A new connection at the head of the list; the least recently active one makes room. */
static struct tcp_conn *conn_new(struct dnssnoop *s, const struct pi_tuple *t, uint32_t seq)
{
	struct tcp_conn *c;

	if (s->n_conns >= DNSSNOOP_TCP_CONNS_MAX) {
		conn_free(s, ne_container_of(s->conns.prev, struct tcp_conn, link));
		s->stats.tcp_evicted++;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->t = *t;
	c->next_seq = seq;
	ne_list_init(&c->link);
	ne_list_append(s->conns.next, &c->link); /* before the first: the new head */
	s->n_conns++;
	return c;
}

static void conn_touch(struct dnssnoop *s, struct tcp_conn *c, uint64_t now_usec)
{
	ne_list_remove(&c->link);
	ne_list_append(s->conns.next, &c->link);
	c->last_usec = now_usec;
}

/* Frees connections idle for DNSSNOOP_TCP_IDLE_USEC, oldest first (they sit at the tail). */
static void conns_age(struct dnssnoop *s, uint64_t now_usec)
{
	while (!ne_list_empty(&s->conns)) {
		struct tcp_conn *c = ne_container_of(s->conns.prev, struct tcp_conn, link);

		if (now_usec < c->last_usec || now_usec - c->last_usec <= DNSSNOOP_TCP_IDLE_USEC)
			break;
		conn_free(s, c);
	}
}

static void conn_lose(struct dnssnoop *s, struct tcp_conn *c)
{
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
	c->lost = true;
	s->stats.tcp_resets++;
}

/* Bytes the partial message needs in all: its length field, then the message. */
static size_t conn_need(const struct tcp_conn *c)
{
	return c->len < 2 ? 2 : 2 + (size_t)get16(c->buf);
}

/* Appends up to what the partial message still needs; returns the bytes taken. */
static int conn_fill(struct tcp_conn *c, const uint8_t *data, size_t n, size_t *ret_taken)
{
	size_t need = conn_need(c), take = NE_MIN(need - c->len, n);

	if (need > c->cap) {
		uint8_t *b = realloc(c->buf, need);

		if (!b)
			return -ENOMEM;
		c->buf = b;
		c->cap = need;
	}
	memcpy(c->buf + c->len, data, take);
	c->len += take;
	*ret_taken = take;
	return 0;
}

static void conn_done_msg(struct dnssnoop *s, struct tcp_conn *c)
{
	deliver(s, &c->t, c->buf + 2, c->len - 2);
	c->len = 0;
	if (c->cap > TCP_BUF_KEEP) {
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
}

/* In-order stream bytes: whole messages in the segment go out without a copy; the rest
 * accumulates in the connection's buffer. */
static void conn_stream(struct dnssnoop *s, struct tcp_conn *c, const uint8_t *data, size_t n)
{
	size_t take;

	c->next_seq += (uint32_t)n;
	while (n) {
		if (c->len == 0 && n >= 2 && n - 2 >= get16(data)) {
			take = 2 + (size_t)get16(data);
			deliver(s, &c->t, data + 2, take - 2);
		} else {
			if (conn_fill(c, data, n, &take) < 0) {
				conn_lose(s, c);
				return;
			}
			if (c->len >= 2 && c->len == conn_need(c))
				conn_done_msg(s, c);
		}
		data += take;
		n -= take;
	}
}

static void conn_data(struct dnssnoop *s, struct tcp_conn *c, uint32_t seq, const uint8_t *data, size_t n)
{
	uint32_t end = seq + (uint32_t)n;

	if (c->lost)
		return;
	if (seq == c->next_seq)
		conn_stream(s, c, data, n);
	else if ((int32_t)(c->next_seq - end) >= 0)
		return; /* a retransmission of bytes already taken */
	else
		conn_lose(s, c);
}

static int tcp_packet(struct dnssnoop *s, struct l4 *l, uint64_t now_usec)
{
	struct tcp_conn *c;
	size_t doff;
	uint32_t seq;
	uint8_t flags;

	if (l->len < 20)
		return -EBADMSG;
	doff = (size_t)(l->p[12] >> 4) * 4;
	if (doff < 20 || doff > l->len)
		return -EBADMSG;
	l->t.remote_port = get16(l->p);
	l->t.local_port = get16(l->p + 2);
	if (l->t.remote_port != DNS_PORT)
		return -EOPNOTSUPP;
	seq = get32(l->p + 4);
	flags = l->p[13];
	c = conn_find(s, &l->t);
	if (flags & TCP_RST) {
		if (c)
			conn_free(s, c);
		return 0;
	}
	if (flags & TCP_SYN) {
		/* A (new) handshake: the stream starts after the SYN's own sequence number. */
		if (c)
			conn_free(s, c);
		c = conn_new(s, &l->t, ++seq);
	} else if (!c && l->len > doff)
		c = conn_new(s, &l->t, seq);
	if (!c)
		return 0;
	conn_touch(s, c, now_usec);
	if (l->len > doff)
		conn_data(s, c, seq, l->p + doff, l->len - doff);
	if (flags & TCP_FIN)
		conn_free(s, c);
	return 0;
}

static int ip_packet(struct dnssnoop *s, const uint8_t *pkt, size_t len, uint64_t now_usec)
{
	struct l4 l;
	int r;

	if (len < 1)
		return -EBADMSG;
	switch (pkt[0] >> 4) {
	case 4:
		r = parse_ip4(pkt, len, &l);
		break;
	case 6:
		r = parse_ip6(pkt, len, &l);
		break;
	default:
		return -EBADMSG;
	}
	if (r < 0)
		return r;
	if (l.t.proto == IPPROTO_UDP)
		return udp_packet(s, &l);
	if (l.t.proto == IPPROTO_TCP)
		return tcp_packet(s, &l, now_usec);
	return -EOPNOTSUPP;
}

void dnssnoop_packet(struct dnssnoop *s, const uint8_t *pkt, size_t len, uint64_t now_usec)
{
	int r;

	s->stats.packets++;
	conns_age(s, now_usec);
	r = ip_packet(s, pkt, len, now_usec);
	if (r == -EBADMSG)
		s->stats.malformed++;
	else if (r < 0)
		s->stats.ignored++;
}
