/* libnetext, packet tunnel: segmentation of what the kernel reads out, merging of what the
 * provider writes (tunseg.h). Pure code: no I/O, no allocation.
 *
 * Trust: the reads come from the kernel through netextd's TUN fds and the writes from the
 * provider's transport, so neither is taken on faith: every vnet header and IP header is
 * parsed (pkt_parse) before it is used, and a read that does not add up is dropped and
 * counted, never handed over half-made. tests/fuzz/fuzz_tunseg.c drives both directions.
 *
 * Segmentation happens in place in the batch buffer: a GSO packet of header H and payload D is
 * cut into segments of gso_size G from the last one backwards; segment k's output starts at
 * k * (H + G), at or after its input at H + k * G, so nothing is overwritten before it is
 * read. Every segment gets its lengths, IPv4 id (+ k), TCP sequence number and flags (FIN and
 * PSH on the last only, CWR on the first only) and full checksums. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "tunseg.h"

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* NEEDS_CSUM: the field at csum_start + csum_offset holds the pseudo-header sum; the
 * checksum covers everything from csum_start on (as the kernel's skb_checksum_help). It
 * never lies in the fixed IP header, whose version was already read. */
static int complete_csum(uint8_t *p, size_t len, int family, const struct virtio_net_hdr *h)
{
	size_t start = h->csum_start, off = h->csum_offset;
	uint16_t c;

	if (start < (family == AF_INET ? 20u : 40u) || start >= len || off + 2 > len - start)
		return -EBADMSG;
	c = pkt_csum_fold(pkt_csum_add(0, p + start, len - start));
	put16(p + start + off, c ? c : 0xffff);
	return 0;
}

/* The fields every segment of one GSO packet starts from. */
struct gso {
	const struct pkt_info *pi;
	size_t hlen, gso_size, nseg;
	uint32_t addr_sum, seq;
	uint16_t ip_id;
	uint8_t flags;
};

static void fix_segment(uint8_t *d, size_t seglen, size_t k, const struct gso *g)
{
	const struct pkt_info *pi = g->pi;
	size_t l4len = g->hlen - pi->l4_off + seglen, csum_off;
	uint8_t *l4 = d + pi->l4_off, flags;
	uint16_t c;

	if (pi->family == AF_INET) {
		put16(d + 2, (uint32_t)(g->hlen + seglen));
		put16(d + 4, (uint16_t)(g->ip_id + k));
		put16(d + 10, 0);
		put16(d + 10, pkt_csum_fold(pkt_csum_add(0, d, (size_t)(d[0] & 0x0f) * 4)));
	} else {
		put16(d + 4, (uint32_t)(g->hlen - 40 + seglen));
	}
	if (pi->protocol == IPPROTO_TCP) {
		put32(l4 + 4, g->seq + (uint32_t)(k * g->gso_size));
		flags = g->flags;
		if (k + 1 != g->nseg)
			flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (k != 0)
			flags &= (uint8_t)~TCP_CWR;
		l4[13] = flags;
		csum_off = 16;
	} else {
		put16(l4 + 4, (uint32_t)l4len);
		csum_off = 6;
	}
	put16(l4 + csum_off, 0);
	c = pkt_csum_fold(pkt_csum_add(g->addr_sum + (uint32_t)l4len + pi->protocol, l4, l4len));
	put16(l4 + csum_off, c || pi->protocol == IPPROTO_TCP ? c : 0xffff);
}

static bool gso_type_fits(uint8_t type, const struct pkt_info *pi)
{
	switch (type) {
	case VIRTIO_NET_HDR_GSO_TCPV4:
		return pi->family == AF_INET && pi->protocol == IPPROTO_TCP;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		return pi->family == AF_INET6 && pi->protocol == IPPROTO_TCP;
	case VIRTIO_NET_HDR_GSO_UDP_L4:
		return pi->protocol == IPPROTO_UDP;
	default:
		return false; /* UFO (fragments) is never offered */
	}
}

static void drop(struct tunseg_batch *q)
{
	q->drops++;
}

static void flush(struct tunseg_batch *q)
{
	q->flush(q, q->userdata);
	q->n = 0;
	q->used = 0;
}

static void add(struct tunseg_batch *q, uint8_t *p, size_t len, int family)
{
	q->pkts[q->n++] = (ne_tunnel_packet){ .bytes = p, .len = len, .family = family };
	q->used = (size_t)(p + len - q->buf);
}

/* Cuts the GSO packet p (at q->buf + q->used, just read) into segments in place. */
static void segment(struct tunseg_batch *q, uint8_t *p, size_t len, const struct virtio_net_hdr *h)
{
	struct pkt_info pi;
	struct gso g = { .pi = &pi };
	size_t payload, out, k, seglen;
	uint8_t *d;

	if (pkt_parse(p, len, false, &pi) < 0 || pi.fragment || !gso_type_fits(h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN, &pi) ||
	    !h->gso_size || pi.l4_hdr_len == 0) {
		drop(q);
		return;
	}
	g.hlen = pi.payload_off;
	g.gso_size = h->gso_size;
	payload = len - g.hlen;
	g.nseg = payload ? (payload + g.gso_size - 1) / g.gso_size : 1;
	out = len + (g.nseg - 1) * g.hlen;
	if (g.nseg > q->max || out > q->cap) {
		drop(q);
		return;
	}
	if (q->n + g.nseg > q->max || (size_t)(p - q->buf) + out > q->cap) {
		flush(q); /* the earlier packets lie before p: untouched */
		memmove(q->buf, p, len);
		p = q->buf;
	}
	g.addr_sum = pi.family == AF_INET ? pkt_csum_add(0, p + 12, 8) : pkt_csum_add(0, p + 8, 32);
	g.ip_id = pi.family == AF_INET ? get16(p + 4) : 0;
	if (pi.protocol == IPPROTO_TCP) {
		g.seq = get32(p + pi.l4_off + 4);
		g.flags = p[pi.l4_off + 13];
	}
	for (k = g.nseg; k-- > 0;) {
		seglen = k + 1 == g.nseg ? payload - k * g.gso_size : g.gso_size;
		d = p + k * (g.hlen + g.gso_size);
		if (k) {
			memmove(d + g.hlen, p + g.hlen + k * g.gso_size, seglen);
			memcpy(d, p, g.hlen);
		}
		fix_segment(d, seglen, k, &g);
		q->pkts[q->n + k] = (ne_tunnel_packet){ .bytes = d, .len = g.hlen + seglen, .family = pi.family };
	}
	q->n += g.nseg;
	q->used = (size_t)(p - q->buf) + out;
}

int tunseg_family(const uint8_t *p, size_t len)
{
	if (len >= 20 && p[0] >> 4 == 4)
		return AF_INET;
	if (len >= 40 && p[0] >> 4 == 6)
		return AF_INET6;
	return 0;
}

void tunseg_take(struct tunseg_batch *q, size_t vnet, size_t r)
{
	uint8_t *p = q->buf + q->used;
	struct virtio_net_hdr h = { 0 };
	size_t len = r;
	int family;

	if (vnet) {
		if (len < vnet) {
			drop(q);
			return;
		}
		memcpy(&h, p, sizeof(h));
		p += vnet;
		len -= vnet;
	}
	family = tunseg_family(p, len);
	if (!family) {
		drop(q);
		return;
	}
	if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
		segment(q, p, len, &h);
		return;
	}
	if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && complete_csum(p, len, family, &h) < 0) {
		drop(q);
		return;
	}
	add(q, p, len, family);
}

/* --- coalescing (GRO) --------------------------------------------------------------------
 * Consecutive TCP segments of one flow in one call are written as one GSO packet (with the
 * vnet header's TSO fields), as the kernel's own GRO would merge them: the host's stack then
 * handles one large packet instead of dozens. The rules are GRO's: same addresses, ports,
 * IP fields (but the IPv4 id), ACK, window and options; contiguous sequence numbers; equal
 * payload sizes but for a last one that may be shorter; no SYN, FIN, RST, URG, ECE or CWR;
 * PSH only on the last; no IPv4 options or IPv6 extension headers. The kernel marks the merged
 * packet's checksum as complete (the tunnel's own integrity check covers the payload). */

#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_URG 0x20
#define TCP_ECE 0x40

static bool gro_head(const ne_tunnel_packet *pk, struct tunseg_gro *g)
{
	const struct pkt_info *pi = &g->pi;

	if (pkt_parse(pk->bytes, pk->len, false, &g->pi) < 0 || pi->protocol != IPPROTO_TCP || pi->fragment ||
	    pi->l4_off != (pi->family == AF_INET ? 20u : 40u) || !pi->payload_len ||
	    (pi->tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG | TCP_ECE | TCP_CWR | TCP_PSH)))
		return false;
	g->p = pk->bytes;
	g->hlen = pi->payload_off;
	g->seg = pi->payload_len;
	return true;
}

/* Whether pk continues the run at sequence number seq; *ret_last when nothing may follow it. */
static bool gro_next(const struct tunseg_gro *g, const ne_tunnel_packet *pk, uint32_t seq, bool *ret_last)
{
	const uint8_t *p = pk->bytes;
	struct pkt_info pi;
	size_t l4 = g->pi.l4_off;

	if (pk->len < g->hlen || pk->len - g->hlen > g->seg || pk->len == g->hlen || (p[0] >> 4) != (g->p[0] >> 4))
		return false;
	if (pkt_parse(p, pk->len, false, &pi) < 0 || pi.payload_off != g->hlen || pi.l4_off != l4 ||
	    pi.protocol != IPPROTO_TCP || pi.tcp_seq != seq)
		return false;
	if (g->pi.family == AF_INET ? memcmp(p, g->p, 2) || memcmp(p + 6, g->p + 6, 4) || memcmp(p + 12, g->p + 12, 8)
				    : memcmp(p, g->p, 4) || memcmp(p + 6, g->p + 6, 34))
		return false;
	/* ports; ack, offset, flags but PSH, window; urgent and options */
	if (memcmp(p + l4, g->p + l4, 4) || memcmp(p + l4 + 8, g->p + l4 + 8, 5) ||
	    (p[l4 + 13] & (uint8_t)~TCP_PSH) != g->p[l4 + 13] || memcmp(p + l4 + 14, g->p + l4 + 14, 2) ||
	    memcmp(p + l4 + 18, g->p + l4 + 18, g->hlen - l4 - 18))
		return false;
	*ret_last = (p[l4 + 13] & TCP_PSH) || pk->len - g->hlen < g->seg;
	return true;
}

/* How many packets from pk on (at least 1) can go out as one. */
size_t tunseg_gro_span(const ne_tunnel_packet *pk, size_t n, struct tunseg_gro *g)
{
	uint32_t seq;
	size_t k, total;
	bool last = false;

	if (n < 2 || !gro_head(&pk[0], g))
		return 1;
	seq = g->pi.tcp_seq + (uint32_t)g->seg;
	total = pk[0].len;
	for (k = 1; k < n && k < TUNSEG_GRO_MAX && !last; k++) {
		if (total + pk[k].len - g->hlen > PKT_MAX || !gro_next(g, &pk[k], seq, &last))
			break;
		seq += (uint32_t)(pk[k].len - g->hlen);
		total += pk[k].len - g->hlen;
	}
	return k;
}

/* The merged header: lengths of the whole, the TCP checksum field holding the pseudo-header
 * sum (NEEDS_CSUM: the kernel completes it), the last segment's PSH. */
size_t tunseg_gro_header(const ne_tunnel_packet *pk, size_t k, const struct tunseg_gro *g,
			 struct virtio_net_hdr *vh, uint8_t *hdr)
{
	size_t i, total = g->hlen, l4 = g->pi.l4_off;
	uint32_t sum;

	*vh = (struct virtio_net_hdr){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_size = (uint16_t)g->seg,
				       .hdr_len = (uint16_t)g->hlen, .csum_start = (uint16_t)l4, .csum_offset = 16 };
	for (i = 0; i < k; i++)
		total += pk[i].len - g->hlen;
	memcpy(hdr, g->p, g->hlen);
	hdr[l4 + 13] |= pk[k - 1].bytes[l4 + 13] & TCP_PSH;
	if (g->pi.family == AF_INET) {
		vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		put16(hdr + 2, (uint32_t)total);
		put16(hdr + 10, 0);
		put16(hdr + 10, pkt_csum_fold(pkt_csum_add(0, hdr, 20)));
		sum = pkt_csum_add(0, hdr + 12, 8);
	} else {
		vh->gso_type = VIRTIO_NET_HDR_GSO_TCPV6;
		put16(hdr + 4, (uint32_t)(total - 40));
		sum = pkt_csum_add(0, hdr + 8, 32);
	}
	sum = pkt_csum_add(sum + IPPROTO_TCP + (uint32_t)(total - l4), "", 0); /* folds */
	put16(hdr + l4 + 16, sum);
	return total;
}
