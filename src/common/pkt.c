/* IP packet parser, checksums and TCP sequence shifts (see pkt.h).
 *
 * Trust: packets come from anyone on the network, replacements from an extension. The parser
 * checks every length field against the bytes it has before it moves an offset, and the
 * IPv6 extension-header walk is bounded. Later functions take a parse made by pkt_parse()
 * and still check the offsets they write through against len.
 *
 * The checksum is our own: the kernel's helpers are not reachable from user space, and the
 * libraries that offer one (libnetfilter_queue's nfq_*_compute_checksum) want a pkt_buff,
 * handle neither ICMPv6 nor a pseudo-header length that differs from the packet's, and sum
 * 16 bits at a time, slow on the 64 KiB GSO packets we see. */
#include "pkt.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#define IPV4_HDR_MIN 20
#define IPV6_HDR_LEN 40
#define IPV6_EXT_MAX 16 /* more extension headers than any real packet carries */
#define TCP_HDR_MIN 20
#define UDP_HDR_LEN 8
#define ICMP_HDR_LEN 8

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static int parse_ipv4(const uint8_t *p, size_t len, struct pkt_info *pi)
{
	size_t ihl;
	uint16_t frag;

	if (len < IPV4_HDR_MIN)
		return -EBADMSG;
	ihl = (size_t)(p[0] & 0x0f) * 4;
	if (ihl < IPV4_HDR_MIN)
		return -EPROTO;
	if (ihl > len)
		return -EBADMSG;
	pi->family = AF_INET;
	pi->ip_len = get16(p + 2);
	if (pi->ip_len < ihl)
		return -EBADMSG;
	frag = get16(p + 6);
	pi->fragment = (frag & 0x3fff) != 0; /* MF or an offset */
	pi->first_fragment = pi->fragment && (frag & 0x1fff) == 0;
	pi->protocol = p[9];
	pi->saddr = p + 12;
	pi->daddr = p + 16;
	pi->l4_off = ihl;
	return 0;
}

/* Walks the extension headers up to the transport header, within the first `have` bytes
 * (those both present and claimed). A non-first fragment ends the walk: what follows its
 * fragment header is the middle of someone's payload. */
static int parse_ipv6_ext(const uint8_t *p, size_t have, struct pkt_info *pi)
{
	size_t off = IPV6_HDR_LEN, hlen;
	uint8_t nh = p[6];
	uint16_t frag;
	int i;

	for (i = 0; i < IPV6_EXT_MAX; i++) {
		switch (nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if (have - off < 2)
				return -EBADMSG;
			hlen = ((size_t)p[off + 1] + 1) * 8;
			break;
		case IPPROTO_AH:
			if (have - off < 2)
				return -EBADMSG;
			hlen = ((size_t)p[off + 1] + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			if (have - off < 8)
				return -EBADMSG;
			hlen = 8;
			frag = get16(p + off + 2);
			pi->fragment = true;
			pi->first_fragment = (frag & 0xfff8) == 0;
			if (!pi->first_fragment) {
				pi->protocol = p[off];
				pi->l4_off = off + hlen;
				return 0;
			}
			break;
		default:
			pi->protocol = nh;
			pi->l4_off = off;
			return 0;
		}
		if (have - off < hlen)
			return -EBADMSG;
		nh = p[off];
		off += hlen;
	}
	return -EBADMSG;
}

static int parse_ipv6(const uint8_t *p, size_t len, struct pkt_info *pi)
{
	if (len < IPV6_HDR_LEN)
		return -EBADMSG;
	pi->family = AF_INET6;
	pi->ip_len = IPV6_HDR_LEN + (size_t)get16(p + 4);
	pi->saddr = p + 8;
	pi->daddr = p + 24;
	/* Extension headers cut by the copy range leave the protocol unknown: refuse. */
	return parse_ipv6_ext(p, len < pi->ip_len ? len : pi->ip_len, pi);
}

/* The transport header at l4_off: `claimed` bytes from there by the IP header, `have` of
 * them present. */
static int parse_l4(const uint8_t *p, size_t claimed, size_t have, struct pkt_info *pi)
{
	const uint8_t *l4 = p + pi->l4_off;
	size_t hlen;

	switch (pi->protocol) {
	case IPPROTO_TCP:
		if (claimed < TCP_HDR_MIN)
			return -EBADMSG;
		if (have < TCP_HDR_MIN)
			return 0;
		hlen = (size_t)(l4[12] >> 4) * 4;
		if (hlen < TCP_HDR_MIN || hlen > claimed)
			return -EBADMSG;
		if (hlen > have)
			return 0;
		pi->tcp_seq = get32(l4 + 4);
		pi->tcp_ack = get32(l4 + 8);
		pi->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
		hlen = UDP_HDR_LEN;
		if (claimed < hlen)
			return -EBADMSG;
		if (have < hlen)
			return 0;
		/* A first fragment's UDP length counts the whole datagram. */
		if (pi->fragment ? get16(l4 + 4) < claimed : get16(l4 + 4) != claimed)
			return -EBADMSG;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if ((pi->protocol == IPPROTO_ICMP) != (pi->family == AF_INET))
			return 0;
		hlen = ICMP_HDR_LEN;
		if (claimed < hlen)
			return -EBADMSG;
		if (have < hlen)
			return 0;
		break;
	default:
		return 0;
	}
	if (pi->protocol == IPPROTO_TCP || pi->protocol == IPPROTO_UDP) {
		pi->sport = get16(l4);
		pi->dport = get16(l4 + 2);
	}
	pi->l4_hdr_len = hlen;
	pi->payload_off = pi->l4_off + hlen;
	pi->payload_len = claimed - hlen;
	return 0;
}

int pkt_parse(const uint8_t *p, size_t len, bool truncated, struct pkt_info *ret)
{
	struct pkt_info pi = { 0 };
	size_t have;
	int r;

	if (len < 1)
		return -EBADMSG;
	switch (p[0] >> 4) {
	case 4:
		r = parse_ipv4(p, len, &pi);
		break;
	case 6:
		r = parse_ipv6(p, len, &pi);
		break;
	default:
		return -EPROTO;
	}
	if (r < 0)
		return r;
	if (truncated ? len > pi.ip_len : len != pi.ip_len)
		return -EBADMSG;
	if (pi.l4_off > pi.ip_len)
		return -EBADMSG;
	/* Without a transport header the rest is payload, l4_hdr_len 0. */
	pi.payload_off = pi.l4_off;
	pi.payload_len = pi.ip_len - pi.l4_off;
	have = len > pi.l4_off ? len - pi.l4_off : 0;
	if (!pi.fragment || pi.first_fragment) {
		r = parse_l4(p, pi.ip_len - pi.l4_off, have, &pi);
		if (r < 0)
			return r;
	}
	*ret = pi;
	return 0;
}

int pkt_check_replacement(const struct pkt_info *oi, const uint8_t *repl, size_t len, struct pkt_info *ret)
{
	int version = oi->family == AF_INET ? 4 : 6;

	if (len > PKT_MAX)
		return -EMSGSIZE;
	if (len < 1)
		return -EBADMSG;
	if (repl[0] >> 4 != version)
		return -EPROTO;
	return pkt_parse(repl, len, false, ret);
}

/* --- checksums ---------------------------------------------------------------------- */

/* Folds a one's-complement sum to 16 bits, end-around carries included. */
static uint32_t fold64(uint64_t s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

/* The one's-complement sum is independent of byte order up to a final swap (RFC 1071
 * 2(B)), so we add native 64-bit words, with end-around carry, and swap at the end on
 * little-endian machines. buf must start at an even offset of the summed data. */
uint32_t pkt_csum_add(uint32_t sum, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t acc = 0, w;
	uint32_t r;

	while (len >= 32) {
		uint64_t w0, w1, w2, w3;

		memcpy(&w0, p, 8);
		memcpy(&w1, p + 8, 8);
		memcpy(&w2, p + 16, 8);
		memcpy(&w3, p + 24, 8);
		acc += w0;
		acc += acc < w0;
		acc += w1;
		acc += acc < w1;
		acc += w2;
		acc += acc < w2;
		acc += w3;
		acc += acc < w3;
		p += 32;
		len -= 32;
	}
	while (len >= 8) {
		memcpy(&w, p, 8);
		acc += w;
		acc += acc < w;
		p += 8;
		len -= 8;
	}
	w = 0;
	memcpy(&w, p, len); /* the tail, zero-padded as the odd byte must be */
	acc += w;
	acc += acc < w;
	r = fold64(acc);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	r = (uint16_t)(r << 8 | r >> 8);
#endif
	return fold64((uint64_t)sum + r);
}

uint16_t pkt_csum_fold(uint32_t sum)
{
	return (uint16_t)~fold64(sum);
}

/* Offset of the checksum field in the transport header; 0 when none we maintain. */
static size_t l4_csum_field(const struct pkt_info *pi)
{
	switch (pi->protocol) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 2;
	default:
		return 0;
	}
}

/* Whether the transport checksum can be computed: a whole, unfragmented datagram (a first
 * fragment's checksum covers bytes it does not carry) with a known header. */
static bool l4_summable(size_t len, const struct pkt_info *pi)
{
	return !pi->fragment && pi->l4_hdr_len && l4_csum_field(pi) && len == pi->ip_len &&
	       pi->l4_off + pi->l4_hdr_len <= len;
}

/* The pseudo-header sum (RFC 768, RFC 8200 8.1). ICMP over IPv4 has none. The destination
 * is the one in the IPv6 header: a routing header's final destination is not used. */
static uint32_t pseudo_sum(const uint8_t *p, const struct pkt_info *pi, size_t l4len)
{
	uint32_t s;

	if (pi->protocol == IPPROTO_ICMP)
		return 0;
	if (pi->family == AF_INET)
		s = pkt_csum_add(0, p + 12, 8);
	else
		s = pkt_csum_add(0, p + 8, 32);
	return fold64((uint64_t)s + (l4len >> 16) + (l4len & 0xffff) + pi->protocol);
}

static uint32_t l4_sum(const uint8_t *p, const struct pkt_info *pi)
{
	size_t l4len = pi->ip_len - pi->l4_off;

	return pkt_csum_add(pseudo_sum(p, pi, l4len), p + pi->l4_off, l4len);
}

static bool ipv4_hdr_ok(size_t len, const struct pkt_info *pi)
{
	return pi->family == AF_INET && pi->l4_off >= IPV4_HDR_MIN && pi->l4_off <= len;
}

void pkt_fix_checksums(uint8_t *p, size_t len, const struct pkt_info *pi)
{
	uint8_t *field;
	uint16_t c;

	if (ipv4_hdr_ok(len, pi)) {
		put16(p + 10, 0);
		put16(p + 10, pkt_csum_fold(pkt_csum_add(0, p, pi->l4_off)));
	}
	if (!l4_summable(len, pi))
		return;
	field = p + pi->l4_off + l4_csum_field(pi);
	if (pi->family == AF_INET && pi->protocol == IPPROTO_UDP && get16(field) == 0)
		return; /* sent without a checksum: keep it that way */
	put16(field, 0);
	c = pkt_csum_fold(l4_sum(p, pi));
	if (c == 0 && pi->protocol == IPPROTO_UDP)
		c = 0xffff; /* 0 means "no checksum" in UDP */
	put16(field, c);
}

bool pkt_checksums_ok(const uint8_t *p, size_t len, const struct pkt_info *pi)
{
	const uint8_t *field;

	if (ipv4_hdr_ok(len, pi) && pkt_csum_fold(pkt_csum_add(0, p, pi->l4_off)) != 0)
		return false;
	if (!l4_summable(len, pi))
		return true;
	field = p + pi->l4_off + l4_csum_field(pi);
	if (pi->protocol == IPPROTO_UDP && get16(field) == 0)
		return pi->family == AF_INET;
	return pkt_csum_fold(l4_sum(p, pi)) == 0;
}

/* --- TCP sequence shifts ------------------------------------------------------------ */

#define SEQADJ_LINGER_SEC 10 /* after a RST or the second FIN: late retransmissions */
#define SEQADJ_BUCKETS_MAX (1u << 20)
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_SACK 5
#define TCPOLEN_SACK_PERBLOCK 8

/* One direction's shifts. The kernel's nf_ct_seqadj keeps one correction point; a segment
 * retransmitted from before the latest change then gets the wrong offset, which a rewriter
 * that grows every segment of a bulk stream hits whenever a segment is lost (measured: about
 * one grown 2 MB stream in eight stalled, and still some with the last 16 points). So keep
 * every change point that may still be retransmitted: pos[i] is the start of a changed
 * segment in its sender's numbering, after[i] the total offset of everything after that
 * start; base is the offset before pos[0]. Points the peer has acknowledged are folded into
 * base (nothing before the acknowledgement is sent again), and at most SEQADJ_POINTS_MAX are
 * kept (then the oldest is folded). Sorted in serial-number order: looked up by bisection. */
#define SEQADJ_POINTS_MAX 8192

struct seqadj_dir {
	uint32_t n, cap;
	int32_t base;
	uint32_t *pos;
	int32_t *after;
};

/* Endpoint 0 is the smaller (address, port), so both orientations build the same key. No
 * implicit padding: keys are hashed and compared as bytes. */
struct seqadj_key {
	uint8_t family;
	uint8_t zero;
	uint8_t addr[2][16];
	uint16_t port[2];
};

_Static_assert(sizeof(struct seqadj_key) == 38, "seqadj_key has padding");

struct seqadj_flow {
	struct seqadj_key key;
	struct seqadj_dir dir[2];    /* indexed by the sending endpoint */
	uint8_t fin_seen;            /* bit per sending endpoint */
	uint64_t last_used;
	uint64_t linger_until;       /* 0: not closing */
	struct seqadj_flow *hnext;   /* hash chain */
	struct seqadj_flow *prev, *next; /* LRU list, most recent first */
};

struct pkt_seqadj {
	struct seqadj_flow **buckets;
	size_t n_buckets; /* power of two */
	size_t count, max_flows;
	unsigned idle_sec;
	struct seqadj_flow *lru_head, *lru_tail;
	uint64_t seed;
};

/* Serial-number comparison (RFC 1982), as the kernel's before()/after(). */
static bool seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static bool seq_after(uint32_t a, uint32_t b)
{
	return seq_before(b, a);
}

/* Builds the key of pi's flow; *ret_dir is the index of pi's sender. */
static int flow_key(const struct pkt_info *pi, struct seqadj_key *k, int *ret_dir)
{
	size_t alen = pi->family == AF_INET ? 4 : 16;
	int c, d;

	if (pi->protocol != IPPROTO_TCP || !pi->saddr || !pi->daddr)
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)pi->family;
	c = memcmp(pi->saddr, pi->daddr, alen);
	d = c < 0 || (c == 0 && pi->sport <= pi->dport) ? 0 : 1;
	memcpy(k->addr[d], pi->saddr, alen);
	memcpy(k->addr[!d], pi->daddr, alen);
	k->port[d] = pi->sport;
	k->port[!d] = pi->dport;
	*ret_dir = d;
	return 0;
}

/* A seeded multiply-xorshift over the key: the flows are picked by whoever sends traffic
 * that an extension chooses to rewrite, so chains must not be predictable. */
static size_t key_hash(const struct pkt_seqadj *t, const struct seqadj_key *k)
{
	const uint8_t *b = (const uint8_t *)k;
	uint64_t h = t->seed, w;
	size_t i;

	for (i = 0; i + 8 <= sizeof(*k); i += 8) {
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	for (; i < sizeof(*k); i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	h ^= h >> 32;
	return (size_t)h & (t->n_buckets - 1);
}

static void lru_unlink(struct pkt_seqadj *t, struct seqadj_flow *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		t->lru_head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	else
		t->lru_tail = f->prev;
	f->prev = f->next = NULL;
}

static void lru_push(struct pkt_seqadj *t, struct seqadj_flow *f)
{
	f->prev = NULL;
	f->next = t->lru_head;
	if (t->lru_head)
		t->lru_head->prev = f;
	else
		t->lru_tail = f;
	t->lru_head = f;
}

static struct seqadj_flow *flow_find(struct pkt_seqadj *t, const struct seqadj_key *k)
{
	struct seqadj_flow *f;

	for (f = t->buckets[key_hash(t, k)]; f; f = f->hnext)
		if (!memcmp(&f->key, k, sizeof(*k)))
			return f;
	return NULL;
}

static void flow_free(struct seqadj_flow *f)
{
	for (int i = 0; i < 2; i++) {
		free(f->dir[i].pos);
		free(f->dir[i].after);
	}
	free(f);
}

static void flow_remove(struct pkt_seqadj *t, struct seqadj_flow *f)
{
	struct seqadj_flow **pp = &t->buckets[key_hash(t, &f->key)];

	while (*pp != f)
		pp = &(*pp)->hnext;
	*pp = f->hnext;
	lru_unlink(t, f);
	t->count--;
	flow_free(f);
}

static void flow_touch(struct pkt_seqadj *t, struct seqadj_flow *f, uint64_t now_sec)
{
	f->last_used = now_sec;
	lru_unlink(t, f);
	lru_push(t, f);
}

struct pkt_seqadj *pkt_seqadj_new(size_t max_flows, unsigned idle_sec)
{
	struct pkt_seqadj *t;
	size_t n = 16;

	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->max_flows = max_flows ? max_flows : 1;
	t->idle_sec = idle_sec;
	while (n < t->max_flows && n < SEQADJ_BUCKETS_MAX)
		n <<= 1;
	t->n_buckets = n;
	t->buckets = calloc(n, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return NULL;
	}
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != sizeof(t->seed))
		t->seed = (uint64_t)(uintptr_t)t ^ 0x5851f42d4c957f2dull;
	return t;
}

void pkt_seqadj_free(struct pkt_seqadj *t)
{
	struct seqadj_flow *f, *next;

	if (!t)
		return;
	for (f = t->lru_head; f; f = next) {
		next = f->next;
		flow_free(f);
	}
	free(t->buckets);
	free(t);
}

/* Folds the k oldest points into base. */
static void fold(struct seqadj_dir *d, uint32_t k)
{
	if (k == 0 || k > d->n)
		return;
	d->base = d->after[k - 1];
	memmove(d->pos, d->pos + k, (d->n - k) * sizeof(d->pos[0]));
	memmove(d->after, d->after + k, (d->n - k) * sizeof(d->after[0]));
	d->n -= k;
}

static int grow(struct seqadj_dir *d)
{
	uint32_t cap = d->cap ? d->cap * 2 : 8;
	uint32_t *pos;
	int32_t *after;

	if (cap > SEQADJ_POINTS_MAX)
		cap = SEQADJ_POINTS_MAX;
	pos = realloc(d->pos, cap * sizeof(*pos));
	if (!pos)
		return -ENOMEM;
	d->pos = pos;
	after = realloc(d->after, cap * sizeof(*after));
	if (!after)
		return -ENOMEM;
	d->after = after;
	d->cap = cap;
	return 0;
}

int pkt_seqadj_record(struct pkt_seqadj *t, const struct pkt_info *pi, int32_t delta, uint64_t now_sec)
{
	struct seqadj_flow *f;
	struct seqadj_dir *d;
	struct seqadj_key k;
	int dir, created = 0;
	size_t b;

	if (flow_key(pi, &k, &dir) < 0 || !pi->l4_hdr_len)
		return -EINVAL;
	/* As nf_ct_seqadj_set(): no change, nothing to remember. */
	if (delta == 0)
		return 0;
	f = flow_find(t, &k);
	if (!f) {
		if (t->count >= t->max_flows)
			flow_remove(t, t->lru_tail);
		f = calloc(1, sizeof(*f));
		if (!f)
			return -ENOMEM;
		memcpy(&f->key, &k, sizeof(k));
		b = key_hash(t, &k);
		f->hnext = t->buckets[b];
		t->buckets[b] = f;
		lru_push(t, f);
		t->count++;
		created = 1;
	}
	flow_touch(t, f, now_sec);
	d = &f->dir[dir];
	/* A segment at or before the latest point is a retransmission: its change was counted
	 * the first time (a different change now cannot be honoured, as in the kernel). */
	if (d->n == 0 || seq_before(d->pos[d->n - 1], pi->tcp_seq)) {
		int32_t prev = d->n ? d->after[d->n - 1] : d->base;

		if (d->n == SEQADJ_POINTS_MAX)
			fold(d, 1);
		if (d->n == d->cap && grow(d) < 0)
			return -ENOMEM;
		d->pos[d->n] = pi->tcp_seq;
		d->after[d->n] = (int32_t)((uint32_t)prev + (uint32_t)delta);
		d->n++;
	}
	return created;
}

/* The number of points strictly before v (pos[i] before v), by bisection. */
static uint32_t points_before(const struct seqadj_dir *d, uint32_t v)
{
	uint32_t lo = 0, hi = d->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (seq_before(d->pos[mid], v))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The offset for a segment starting at seq (sender's numbering): that of the latest change
 * point strictly before it (nf_ct_seq_adjust: a segment starting at a point is the changed
 * segment itself, or its retransmission, and keeps the offset before it). */
static int32_t shift_for(const struct seqadj_dir *d, uint32_t seq)
{
	uint32_t k = points_before(d, seq);

	return k ? d->after[k - 1] : d->base;
}

/* Maps a sequence number of the other direction's shifted stream back to what its sender
 * sent: the acknowledgement number and SACK edges (nf_ct_seq_adjust, nf_ct_sack_adjust, with
 * the history above). Point i covers v when v minus the offset before it lies after pos[i];
 * that test is monotonic in i, hence the bisection. */
static uint32_t unshift(const struct seqadj_dir *o, uint32_t v)
{
	uint32_t lo = 0, hi = o->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int32_t before = mid ? o->after[mid - 1] : o->base;

		if (seq_after(v - (uint32_t)before, o->pos[mid]))
			lo = mid + 1;
		else
			hi = mid;
	}
	return v - (uint32_t)(lo ? o->after[lo - 1] : o->base);
}

/* Adjusts the SACK blocks in the TCP options opt[0..optlen); returns whether any changed.
 * Malformed options end the walk, as in the kernel. */
static bool sack_adjust(uint8_t *opt, size_t optlen, const struct seqadj_dir *o)
{
	size_t off = 0, end, i;
	bool changed = false;
	uint32_t v, nv;

	while (off < optlen) {
		if (opt[off] == TCPOPT_EOL)
			break;
		if (opt[off] == TCPOPT_NOP) {
			off++;
			continue;
		}
		if (optlen - off < 2 || opt[off + 1] < 2 || opt[off + 1] > optlen - off)
			break;
		end = off + opt[off + 1];
		if (opt[off] == TCPOPT_SACK && opt[off + 1] >= 2 + TCPOLEN_SACK_PERBLOCK &&
		    (opt[off + 1] - 2) % TCPOLEN_SACK_PERBLOCK == 0) {
			for (i = off + 2; i + 4 <= end; i += 4) {
				v = get32(opt + i);
				nv = unshift(o, v);
				if (nv != v) {
					put32(opt + i, nv);
					changed = true;
				}
			}
		}
		off = end;
	}
	return changed;
}

int pkt_seqadj_apply(struct pkt_seqadj *t, uint8_t *p, size_t len, struct pkt_info *pi, uint64_t now_sec)
{
	const struct seqadj_dir *d;
	struct seqadj_dir *o;
	struct seqadj_flow *f;
	struct seqadj_key k;
	uint32_t seq, ack;
	bool changed = false;
	uint8_t *th;
	int dir;

	if (flow_key(pi, &k, &dir) < 0 || pi->l4_hdr_len < TCP_HDR_MIN ||
	    pi->l4_off > len || len - pi->l4_off < pi->l4_hdr_len)
		return 0;
	f = flow_find(t, &k);
	if (!f)
		return 0;
	/* A new connection on the ports of one that closed: its numbers have nothing to do
	 * with the old shifts. */
	if (f->linger_until && (pi->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
		flow_remove(t, f);
		return 0;
	}
	flow_touch(t, f, now_sec);
	d = &f->dir[dir];
	o = &f->dir[!dir];
	th = p + pi->l4_off;
	seq = pi->tcp_seq + (uint32_t)shift_for(d, pi->tcp_seq);
	if (seq != pi->tcp_seq) {
		put32(th + 4, seq);
		pi->tcp_seq = seq;
		changed = true;
	}
	if (pi->tcp_flags & TCP_ACK) {
		ack = unshift(o, pi->tcp_ack);
		/* The other side's sender never sends again what this acknowledges: points strictly
		 * before it are settled (shift_for of any later start gives the same offset). */
		fold(&f->dir[!dir], points_before(o, ack));
		if (ack != pi->tcp_ack) {
			put32(th + 8, ack);
			pi->tcp_ack = ack;
			changed = true;
		}
		changed |= sack_adjust(th + TCP_HDR_MIN, pi->l4_hdr_len - TCP_HDR_MIN, o);
	}
	if (pi->tcp_flags & TCP_FIN)
		f->fin_seen |= (uint8_t)(1u << dir);
	if (!f->linger_until && (pi->tcp_flags & TCP_RST || f->fin_seen == 3))
		f->linger_until = now_sec + SEQADJ_LINGER_SEC;
	return changed;
}

bool pkt_seqadj_known(struct pkt_seqadj *t, const struct pkt_info *pi)
{
	struct seqadj_key k;
	int dir;

	return flow_key(pi, &k, &dir) == 0 && flow_find(t, &k);
}

void pkt_seqadj_expire(struct pkt_seqadj *t, uint64_t now_sec)
{
	struct seqadj_flow *f, *prev;

	/* Closing flows can sit anywhere in the LRU order: walk it all (once a second at most,
	 * over at most max_flows entries). */
	for (f = t->lru_tail; f; f = prev) {
		prev = f->prev;
		if ((f->linger_until && f->linger_until <= now_sec) ||
		    now_sec - f->last_used >= t->idle_sec)
			flow_remove(t, f);
	}
}

size_t pkt_seqadj_count(const struct pkt_seqadj *t)
{
	return t->count;
}
