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
#include <string.h>
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
