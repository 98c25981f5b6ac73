/* The packet parser, checksums, replacement checks and TCP sequence shifts. Packets are built
 * by hand here; checksums are cross-checked against a plain 16-bit RFC 1071 sum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pkt.h"

static uint8_t buf[70000];

static const uint8_t A4[4] = { 10, 0, 0, 1 }, B4[4] = { 10, 0, 0, 2 };
static const uint8_t A6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
static const uint8_t B6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 };

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

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* --- reference checksum: the textbook loop ------------------------------------------- */

static uint32_t ref_sum(uint32_t s, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

static uint16_t ref_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* The transport checksum of a v4/v6 packet whose transport header is at l4 (checksum field
 * at l4 + field, taken as zero). */
static uint16_t ref_l4(const uint8_t *p, size_t len, int family, uint8_t proto, size_t l4, size_t field)
{
	size_t l4len = len - l4;
	uint32_t s = 0;
	uint8_t *copy = malloc(len);

	memcpy(copy, p, len);
	copy[l4 + field] = copy[l4 + field + 1] = 0;
	if (family == AF_INET && proto != IPPROTO_ICMP)
		s = ref_sum(0, copy + 12, 8) + proto + (uint32_t)l4len;
	else if (family == AF_INET6)
		s = ref_sum(0, copy + 8, 32) + proto + (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffff);
	s = ref_sum(s, copy + l4, l4len);
	free(copy);
	return ref_fold(s);
}

/* --- builders ----------------------------------------------------------------------- */

/* IPv4 header with `optlen` bytes of options (NOPs) around an l4 of l4len bytes. */
static size_t ipv4(uint8_t *p, uint8_t proto, size_t optlen, size_t l4len, uint16_t frag)
{
	size_t ihl = 20 + optlen;

	memset(p, 0, ihl);
	p[0] = (uint8_t)(0x40 | ihl / 4);
	put16(p + 2, (uint16_t)(ihl + l4len));
	put16(p + 4, 0x1234);
	put16(p + 6, frag);
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, A4, 4);
	memcpy(p + 16, B4, 4);
	memset(p + 20, 1, optlen);
	return ihl;
}

static size_t ipv6(uint8_t *p, uint8_t nh, size_t rest)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	put16(p + 4, (uint16_t)rest);
	p[6] = nh;
	p[7] = 64;
	memcpy(p + 8, A6, 16);
	memcpy(p + 24, B6, 16);
	return 40;
}

/* A TCP header with `optlen` bytes of options (NOPs, or SACK blocks when sack > 0). */
static size_t tcp(uint8_t *p, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
		  const uint32_t *sack, int n_sack, size_t payload)
{
	size_t optlen = n_sack ? (size_t)(2 + 2 + 8 * n_sack) : 0, i;

	memset(p, 0, 20 + optlen);
	put16(p, sport);
	put16(p + 2, dport);
	put32(p + 4, seq);
	put32(p + 8, ack);
	p[12] = (uint8_t)(((20 + optlen) / 4) << 4);
	p[13] = flags;
	put16(p + 14, 65535);
	if (n_sack) {
		p[20] = p[21] = 1; /* NOP NOP */
		p[22] = 5;
		p[23] = (uint8_t)(2 + 8 * n_sack);
		for (i = 0; i < (size_t)n_sack * 2; i++)
			put32(p + 24 + 4 * i, sack[i]);
	}
	for (i = 0; i < payload; i++)
		p[20 + optlen + i] = (uint8_t)(i * 7 + 3);
	return 20 + optlen + payload;
}

static size_t udp(uint8_t *p, uint16_t sport, uint16_t dport, size_t payload)
{
	put16(p, sport);
	put16(p + 2, dport);
	put16(p + 4, (uint16_t)(8 + payload));
	put16(p + 6, 0x1111);
	for (size_t i = 0; i < payload; i++)
		p[8 + i] = (uint8_t)(i * 13 + 1);
	return 8 + payload;
}

static size_t v4_tcp(uint8_t *p, size_t optlen, size_t payload)
{
	size_t l4 = tcp(p + 20 + optlen, 40000, 80, 1000, 2000, 0x18, NULL, 0, payload);

	return ipv4(p, IPPROTO_TCP, optlen, l4, 0x4000) + l4;
}

static size_t v4_udp(uint8_t *p, size_t payload)
{
	size_t l4 = udp(p + 20, 5353, 53, payload);

	return ipv4(p, IPPROTO_UDP, 0, l4, 0) + l4;
}

static size_t v6_udp(uint8_t *p, size_t payload)
{
	size_t l4 = udp(p + 40, 5353, 53, payload);

	return ipv6(p, IPPROTO_UDP, l4) + l4;
}

static size_t v6_tcp(uint8_t *p, size_t payload)
{
	size_t l4 = tcp(p + 40, 40000, 443, 7, 9, 0x10, NULL, 0, payload);

	return ipv6(p, IPPROTO_TCP, l4) + l4;
}

static struct pkt_info parse_ok(const uint8_t *p, size_t len)
{
	struct pkt_info pi;

	assert_int_equal(pkt_parse(p, len, false, &pi), 0);
	return pi;
}

/* --- parser ------------------------------------------------------------------------- */

static void test_parse_v4(void **state)
{
	struct pkt_info pi;
	size_t len;

	len = v4_tcp(buf, 8, 100);
	pi = parse_ok(buf, len);
	assert_int_equal(pi.family, AF_INET);
	assert_int_equal(pi.protocol, IPPROTO_TCP);
	assert_false(pi.fragment);
	assert_int_equal(pi.ip_len, len);
	assert_int_equal(pi.l4_off, 28);
	assert_int_equal(pi.l4_hdr_len, 20);
	assert_int_equal(pi.payload_off, 48);
	assert_int_equal(pi.payload_len, 100);
	assert_ptr_equal(pi.saddr, buf + 12);
	assert_ptr_equal(pi.daddr, buf + 16);
	assert_int_equal(pi.sport, 40000);
	assert_int_equal(pi.dport, 80);
	assert_int_equal(pi.tcp_seq, 1000);
	assert_int_equal(pi.tcp_ack, 2000);
	assert_int_equal(pi.tcp_flags, 0x18);

	/* TCP options: the data offset counts. */
	len = ipv4(buf, IPPROTO_TCP, 0, 0, 0);
	len += tcp(buf + 20, 1, 2, 3, 4, 0x10, (uint32_t[]){ 1, 2 }, 1, 5);
	put16(buf + 2, (uint16_t)len);
	pi = parse_ok(buf, len);
	assert_int_equal(pi.l4_hdr_len, 32);
	assert_int_equal(pi.payload_len, 5);

	len = v4_udp(buf, 30);
	pi = parse_ok(buf, len);
	assert_int_equal(pi.protocol, IPPROTO_UDP);
	assert_int_equal(pi.l4_hdr_len, 8);
	assert_int_equal(pi.payload_len, 30);
	assert_int_equal(pi.sport, 5353);
	assert_int_equal(pi.dport, 53);
	put16(buf + 24, 37); /* UDP length disagrees */
	assert_int_equal(pkt_parse(buf, len, false, &pi), -EBADMSG);
	put16(buf + 24, 39);
	assert_int_equal(pkt_parse(buf, len, false, &pi), -EBADMSG);

	/* ICMP: 8-byte header, no ports. */
	len = ipv4(buf, IPPROTO_ICMP, 0, 12, 0);
	memset(buf + 20, 0, 12);
	buf[20] = 8;
	pi = parse_ok(buf, len + 12);
	assert_int_equal(pi.l4_hdr_len, 8);
	assert_int_equal(pi.payload_len, 4);
	assert_int_equal(pi.sport, 0);
	assert_int_equal(pkt_parse(buf, 20 + 7, false, &pi), -EBADMSG);

	/* Some other protocol: all payload. */
	len = ipv4(buf, 47, 4, 10, 0);
	pi = parse_ok(buf, len + 10);
	assert_int_equal(pi.l4_hdr_len, 0);
	assert_int_equal(pi.payload_off, 24);
	assert_int_equal(pi.payload_len, 10);
	(void)state;
}

static void test_parse_v4_errors(void **state)
{
	struct pkt_info pi, before;
	size_t len = v4_tcp(buf, 0, 10);

	memset(&before, 0x5a, sizeof(before));
	pi = before;
	assert_int_equal(pkt_parse(buf, 0, false, &pi), -EBADMSG);
	assert_int_equal(pkt_parse(buf, 19, true, &pi), -EBADMSG);
	assert_int_equal(pkt_parse(buf, len - 1, false, &pi), -EBADMSG); /* total length says more */
	assert_int_equal(memcmp(&pi, &before, sizeof(pi)), 0);           /* untouched on failure */
	buf[0] = 0x55;
	assert_int_equal(pkt_parse(buf, len, false, &pi), -EPROTO);
	buf[0] = 0x44; /* IHL 16 bytes */
	assert_int_equal(pkt_parse(buf, len, false, &pi), -EPROTO);
	buf[0] = 0x4f; /* IHL 60 > 50 bytes present */
	assert_int_equal(pkt_parse(buf, len, false, &pi), -EBADMSG);
	buf[0] = 0x45;
	put16(buf + 2, 10); /* total length below the header */
	assert_int_equal(pkt_parse(buf, 10, true, &pi), -EBADMSG);
	put16(buf + 2, (uint16_t)len);
	buf[32] = 0x40; /* TCP data offset 16 */
	assert_int_equal(pkt_parse(buf, len, false, &pi), -EBADMSG);
	buf[32] = 0xf0; /* 60, more than the 30 bytes of segment */
	assert_int_equal(pkt_parse(buf, len, false, &pi), -EBADMSG);
	buf[32] = 0x50;
	/* A segment too short for a TCP header. */
	put16(buf + 2, 20 + 19);
	assert_int_equal(pkt_parse(buf, 39, false, &pi), -EBADMSG);
	(void)state;
}

static void test_parse_truncated(void **state)
{
	struct pkt_info pi;
	size_t len = v4_tcp(buf, 0, 1400);

	assert_int_equal(pkt_parse(buf, 60, false, &pi), -EBADMSG);
	assert_int_equal(pkt_parse(buf, 60, true, &pi), 0);
	assert_int_equal(pi.ip_len, len);
	assert_int_equal(pi.l4_hdr_len, 20);
	assert_int_equal(pi.payload_len, 1400);
	assert_int_equal(pi.tcp_seq, 1000);
	/* Cut inside the TCP header: no transport fields. */
	assert_int_equal(pkt_parse(buf, 30, true, &pi), 0);
	assert_int_equal(pi.l4_hdr_len, 0);
	assert_int_equal(pi.sport, 0);
	assert_int_equal(pkt_parse(buf, 20, true, &pi), 0);
	assert_int_equal(pi.l4_hdr_len, 0);
	/* Longer than the header claims is wrong either way. */
	assert_int_equal(pkt_parse(buf, len + 1, true, &pi), -EBADMSG);
	assert_int_equal(pkt_parse(buf, len, true, &pi), 0);

	len = v6_udp(buf, 1000);
	assert_int_equal(pkt_parse(buf, 48, true, &pi), 0);
	assert_int_equal(pi.l4_hdr_len, 8);
	assert_int_equal(pi.payload_len, 1000);
	assert_int_equal(pkt_parse(buf, 44, true, &pi), 0);
	assert_int_equal(pi.protocol, IPPROTO_UDP);
	assert_int_equal(pi.l4_hdr_len, 0);
	assert_int_equal(pkt_parse(buf, 39, true, &pi), -EBADMSG);
	(void)state;
}

static void test_parse_v4_fragments(void **state)
{
	struct pkt_info pi;
	size_t len;

	/* First fragment (MF): the UDP header is there, its length counts the whole datagram. */
	len = ipv4(buf, IPPROTO_UDP, 0, 1008, 0x2000);
	udp(buf + 20, 1, 2, 1000);
	put16(buf + 24, 3000);
	pi = parse_ok(buf, len + 1008);
	assert_true(pi.fragment);
	assert_true(pi.first_fragment);
	assert_int_equal(pi.l4_hdr_len, 8);
	assert_int_equal(pi.sport, 1);
	put16(buf + 24, 100); /* shorter than this fragment alone */
	assert_int_equal(pkt_parse(buf, len + 1008, false, &pi), -EBADMSG);

	/* Later fragment: no transport header, even if the bytes would parse as one. */
	len = ipv4(buf, IPPROTO_TCP, 0, 3, 0x0010);
	pi = parse_ok(buf, len + 3);
	assert_true(pi.fragment);
	assert_false(pi.first_fragment);
	assert_int_equal(pi.l4_hdr_len, 0);
	assert_int_equal(pi.sport, 0);
	assert_int_equal(pi.payload_off, 20);
	assert_int_equal(pi.payload_len, 3);
	/* The last fragment (offset, no MF) is one too; DF alone is not. */
	put16(buf + 6, 0x0001);
	assert_true(parse_ok(buf, len + 3).fragment);
	len = v4_udp(buf, 4);
	put16(buf + 6, 0x4000);
	assert_false(parse_ok(buf, len).fragment);
	(void)state;
}

/* Appends an 8-byte extension header with next header nh at p. */
static size_t ext8(uint8_t *p, uint8_t nh)
{
	memset(p, 0, 8);
	p[0] = nh;
	p[1] = 0;
	return 8;
}

static void test_parse_v6(void **state)
{
	struct pkt_info pi;
	size_t len, off, l4;
	int i;

	len = v6_udp(buf, 20);
	pi = parse_ok(buf, len);
	assert_int_equal(pi.family, AF_INET6);
	assert_int_equal(pi.protocol, IPPROTO_UDP);
	assert_int_equal(pi.l4_off, 40);
	assert_ptr_equal(pi.saddr, buf + 8);
	assert_ptr_equal(pi.daddr, buf + 24);
	assert_int_equal(pkt_parse(buf, len + 1, false, &pi), -EBADMSG);

	/* Hop-by-hop, routing (24 bytes), destination options, fragment (first), TCP. */
	off = 40;
	off += ext8(buf + off, IPPROTO_ROUTING);
	memset(buf + off, 0, 24);
	buf[off] = IPPROTO_DSTOPTS;
	buf[off + 1] = 2;
	off += 24;
	off += ext8(buf + off, IPPROTO_FRAGMENT);
	off += ext8(buf + off, IPPROTO_TCP);
	put16(buf + off - 6, 0x0001); /* offset 0, M */
	l4 = tcp(buf + off, 1, 2, 3, 4, 0x02, NULL, 0, 10);
	ipv6(buf, IPPROTO_HOPOPTS, off - 40 + l4);
	pi = parse_ok(buf, off + l4);
	assert_int_equal(pi.protocol, IPPROTO_TCP);
	assert_int_equal(pi.l4_off, off);
	assert_true(pi.fragment);
	assert_true(pi.first_fragment);
	assert_int_equal(pi.l4_hdr_len, 20);
	assert_int_equal(pi.sport, 1);
	/* The same as a later fragment: the walk stops at the fragment header. */
	put16(buf + off - 6, 0x0100);
	pi = parse_ok(buf, off + l4);
	assert_false(pi.first_fragment);
	assert_int_equal(pi.protocol, IPPROTO_TCP);
	assert_int_equal(pi.l4_hdr_len, 0);
	assert_int_equal(pi.sport, 0);
	/* An extension header running past the packet. */
	buf[49] = 200;
	assert_int_equal(pkt_parse(buf, off + l4, false, &pi), -EBADMSG);
	buf[49] = 0;
	/* The chain cut by the copy range. */
	assert_int_equal(pkt_parse(buf, 50, true, &pi), -EBADMSG);

	/* A chain longer than any real packet's is refused. */
	off = 40;
	for (i = 0; i < 20; i++)
		off += ext8(buf + off, IPPROTO_DSTOPTS);
	buf[off - 8] = IPPROTO_NONE;
	ipv6(buf, IPPROTO_DSTOPTS, off - 40);
	assert_int_equal(pkt_parse(buf, off, false, &pi), -EBADMSG);
	/* A shorter one ends at "no next header". */
	off = 40;
	for (i = 0; i < 3; i++)
		off += ext8(buf + off, i == 2 ? IPPROTO_NONE : IPPROTO_DSTOPTS);
	ipv6(buf, IPPROTO_DSTOPTS, off - 40);
	pi = parse_ok(buf, off);
	assert_int_equal(pi.protocol, IPPROTO_NONE);
	assert_int_equal(pi.payload_len, 0);

	/* ICMPv6 */
	ipv6(buf, IPPROTO_ICMPV6, 16);
	memset(buf + 40, 0, 16);
	buf[40] = 128;
	pi = parse_ok(buf, 56);
	assert_int_equal(pi.l4_hdr_len, 8);
	assert_int_equal(pi.payload_len, 8);
	/* Bad version nibble. */
	buf[0] = 0x70;
	assert_int_equal(pkt_parse(buf, 56, false, &pi), -EPROTO);
	(void)state;
}

/* --- checksums ---------------------------------------------------------------------- */

static void test_csum_primitive(void **state)
{
	/* A well-known IPv4 header (UDP, 192.168.0.1 → 192.168.0.199): checksum b861. */
	const uint8_t h[20] = { 0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0xb8, 0x61,
				0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7 };
	uint8_t z[20];
	size_t off, len;

	memcpy(z, h, 20);
	z[10] = z[11] = 0;
	assert_int_equal(pkt_csum_fold(pkt_csum_add(0, z, 20)), 0xb861);
	assert_int_equal(pkt_csum_fold(pkt_csum_add(0, h, 20)), 0);
	/* Any length, any alignment of the buffer, chained on a start value. */
	srand(7);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (off = 0; off < 8; off++)
		for (len = 0; len < 300; len++) {
			assert_int_equal(pkt_csum_fold(pkt_csum_add(0, buf + off, len)),
					 ref_fold(ref_sum(0, buf + off, len)));
			assert_int_equal(pkt_csum_fold(pkt_csum_add(0x1fffe, buf + off, len)),
					 ref_fold(ref_sum(0x1fffe, buf + off, len)));
		}
	assert_int_equal(pkt_csum_fold(pkt_csum_add(0, buf + 1, 65535)), ref_fold(ref_sum(0, buf + 1, 65535)));
	/* All ones: the largest sums, where the carries are. */
	memset(buf, 0xff, 70000);
	assert_int_equal(pkt_csum_fold(pkt_csum_add(0xffff, buf, 65536)), ref_fold(ref_sum(0xffff, buf, 65536)));
	assert_int_equal(pkt_csum_fold(pkt_csum_add(0, buf, 0)), 0xffff);
	(void)state;
}

/* Fixes p's checksums and compares them with the reference. */
static void check_fix(uint8_t *p, size_t len, size_t field)
{
	struct pkt_info pi = parse_ok(p, len);
	uint32_t s;

	pkt_fix_checksums(p, len, &pi);
	assert_true(pkt_checksums_ok(p, len, &pi));
	if (pi.family == AF_INET) {
		s = ref_sum(0, p, 10) + ref_sum(0, p + 12, pi.l4_off - 12);
		assert_int_equal(get16(p + 10), ref_fold(s));
	}
	assert_int_equal(get16(p + pi.l4_off + field), ref_l4(p, len, pi.family, pi.protocol, pi.l4_off, field));
	/* Any flipped bit is noticed. */
	p[len - 1] ^= 0x10;
	assert_false(pkt_checksums_ok(p, len, &pi));
	p[len - 1] ^= 0x10;
	p[8] ^= 1; /* v4: the TTL (header checksum); v6: a source address byte (pseudo-header) */
	assert_false(pkt_checksums_ok(p, len, &pi));
	p[8] ^= 1;
}

static void test_checksums(void **state)
{
	size_t len, l4;

	check_fix(buf, v4_tcp(buf, 0, 100), 16);
	check_fix(buf, v4_tcp(buf, 12, 101), 16); /* odd length, options */
	check_fix(buf, v4_udp(buf, 33), 6);
	check_fix(buf, v6_udp(buf, 34), 6);
	check_fix(buf, v6_tcp(buf, 1), 16);
	check_fix(buf, v6_tcp(buf, 65535 - 20), 16); /* largest payload length */
	check_fix(buf, v4_tcp(buf, 0, 65535 - 40), 16);
	/* ICMP: no pseudo-header; ICMPv6: with one. */
	len = ipv4(buf, IPPROTO_ICMP, 0, 13, 0);
	memset(buf + len, 0x42, 13);
	check_fix(buf, len + 13, 2);
	len = ipv6(buf, IPPROTO_ICMPV6, 13);
	memset(buf + len, 0x42, 13);
	check_fix(buf, len + 13, 2);
	/* IPv6 with extension headers: the pseudo-header length is the transport's. */
	len = 40 + ext8(buf + 40, IPPROTO_UDP);
	l4 = udp(buf + len, 9, 10, 21);
	ipv6(buf, IPPROTO_DSTOPTS, 8 + l4);
	check_fix(buf, len + l4, 6);
	(void)state;
}

static void test_checksums_udp_zero(void **state)
{
	struct pkt_info pi;
	size_t len;
	uint16_t c;

	/* IPv4 UDP without a checksum keeps none. */
	len = v4_udp(buf, 10);
	put16(buf + 26, 0);
	pi = parse_ok(buf, len);
	pkt_fix_checksums(buf, len, &pi);
	assert_int_equal(get16(buf + 26), 0);
	assert_true(pkt_checksums_ok(buf, len, &pi));
	/* IPv6 UDP must have one. */
	len = v6_udp(buf, 10);
	put16(buf + 46, 0);
	pi = parse_ok(buf, len);
	assert_false(pkt_checksums_ok(buf, len, &pi));
	pkt_fix_checksums(buf, len, &pi);
	assert_int_not_equal(get16(buf + 46), 0);
	assert_true(pkt_checksums_ok(buf, len, &pi));

	/* A payload word chosen so that the sum comes out as 0: sent as 0xffff. */
	for (int v6 = 0; v6 < 2; v6++) {
		len = v6 ? v6_udp(buf, 10) : v4_udp(buf, 10);
		pi = parse_ok(buf, len);
		put16(buf + pi.payload_off, 0);
		c = ref_l4(buf, len, pi.family, IPPROTO_UDP, pi.l4_off, 6);
		put16(buf + pi.payload_off, c);
		assert_int_equal(ref_l4(buf, len, pi.family, IPPROTO_UDP, pi.l4_off, 6), 0);
		pkt_fix_checksums(buf, len, &pi);
		assert_int_equal(get16(buf + pi.l4_off + 6), 0xffff);
		assert_true(pkt_checksums_ok(buf, len, &pi));
	}
	(void)state;
}

static void test_checksums_skip(void **state)
{
	struct pkt_info pi;
	size_t len;

	/* Fragments: the transport checksum covers bytes that are not here; only the v4 header
	 * checksum is made. */
	len = ipv4(buf, IPPROTO_UDP, 0, 16, 0x2000);
	udp(buf + 20, 1, 2, 8);
	put16(buf + 24, 1000);
	pi = parse_ok(buf, len + 16);
	pkt_fix_checksums(buf, len + 16, &pi);
	assert_int_equal(get16(buf + 26), 0x1111);
	assert_true(pkt_checksums_ok(buf, len + 16, &pi));
	/* A truncated packet: header only. */
	len = v4_tcp(buf, 0, 100);
	assert_int_equal(pkt_parse(buf, 60, true, &pi), 0);
	pkt_fix_checksums(buf, 60, &pi);
	assert_int_equal(get16(buf + 36), 0);
	assert_true(pkt_checksums_ok(buf, 60, &pi));
	(void)state;
}

/* --- replacements ------------------------------------------------------------------- */

static void test_replacement(void **state)
{
	static uint8_t orig[200], big[PKT_MAX + 1];
	struct pkt_info oi, ri;
	size_t olen = v4_tcp(orig, 0, 50), len;

	oi = parse_ok(orig, olen);
	len = v4_tcp(buf, 0, 57);
	assert_int_equal(pkt_check_replacement(&oi, buf, len, &ri), 0);
	assert_int_equal(ri.payload_len, 57);
	len = v6_tcp(buf, 57);
	assert_int_equal(pkt_check_replacement(&oi, buf, len, &ri), -EPROTO);
	len = v4_tcp(buf, 0, 57);
	assert_int_equal(pkt_check_replacement(&oi, buf, len - 1, &ri), -EBADMSG);
	assert_int_equal(pkt_check_replacement(&oi, buf, 0, &ri), -EBADMSG);
	buf[32] = 0x30;
	assert_int_equal(pkt_check_replacement(&oi, buf, len, &ri), -EBADMSG);
	memcpy(big, buf, 60);
	assert_int_equal(pkt_check_replacement(&oi, big, sizeof(big), &ri), -EMSGSIZE);
	/* The largest v4 packet is fine. */
	len = v4_udp(buf, PKT_MAX - 28);
	assert_int_equal(pkt_check_replacement(&oi, buf, len, &ri), 0);
	/* For a v6 original, a v4 replacement is the wrong version. */
	len = v6_udp(orig, 10);
	oi = parse_ok(orig, len);
	len = v4_udp(buf, 10);
	assert_int_equal(pkt_check_replacement(&oi, buf, len, &ri), -EPROTO);
	len = v6_udp(buf, 12);
	assert_int_equal(pkt_check_replacement(&oi, buf, len, &ri), 0);
	(void)state;
}

/* --- sequence shifts ---------------------------------------------------------------- */

/* A segment of the test flow: from A (a_to_b) or B, as a parsed packet in pkt. */
struct seg {
	uint8_t p[200];
	size_t len;
	struct pkt_info pi;
};

static struct seg *mkseg(int family, bool a_to_b, uint32_t seq, uint32_t ack, uint8_t flags,
			 const uint32_t *sack, int n_sack, size_t payload)
{
	static struct seg s;
	size_t ip = family == AF_INET ? 20 : 40, l4;

	memset(&s, 0, sizeof(s));
	l4 = tcp(s.p + ip, a_to_b ? 40000 : 80, a_to_b ? 80 : 40000, seq, ack, flags, sack, n_sack, payload);
	if (family == AF_INET) {
		ipv4(s.p, IPPROTO_TCP, 0, l4, 0);
		if (!a_to_b) {
			memcpy(s.p + 12, B4, 4);
			memcpy(s.p + 16, A4, 4);
		}
	} else {
		ipv6(s.p, IPPROTO_TCP, l4);
		if (!a_to_b) {
			memcpy(s.p + 8, B6, 16);
			memcpy(s.p + 24, A6, 16);
		}
	}
	s.len = ip + l4;
	s.pi = parse_ok(s.p, s.len);
	return &s;
}

#define ACK 0x10
#define PSH 0x08
#define FIN 0x01
#define RST 0x04
#define SYN 0x02

/* Applies the table to a segment and returns its parse afterwards (from the bytes). */
static struct pkt_info apply(struct pkt_seqadj *t, struct seg *s, int changed, uint64_t now)
{
	assert_int_equal(pkt_seqadj_apply(t, s->p, s->len, &s->pi, now), changed);
	return parse_ok(s->p, s->len);
}

static void record(struct pkt_seqadj *t, int family, bool a_to_b, uint32_t seq, int32_t delta, int ret)
{
	struct seg *s = mkseg(family, a_to_b, seq, 0, ACK | PSH, NULL, 0, 100);

	assert_int_equal(pkt_seqadj_record(t, &s->pi, delta, 0), ret);
}

static void run_stream(int family)
{
	struct pkt_seqadj *t = pkt_seqadj_new(16, 300);
	struct pkt_info pi;
	struct seg *s;

	assert_non_null(t);
	/* Before any shift, nothing changes and the flow is unknown. */
	s = mkseg(family, true, 1000, 5000, ACK, NULL, 0, 100);
	assert_false(pkt_seqadj_known(t, &s->pi));
	pi = apply(t, s, 0, 0);
	assert_int_equal(pi.tcp_seq, 1000);
	/* delta 0 records nothing. */
	record(t, family, true, 1100, 0, 0);
	assert_int_equal(pkt_seqadj_count(t), 0);

	/* A's segment at 1100 grows by 7. */
	record(t, family, true, 1100, 7, 1);
	s = mkseg(family, false, 5000, 1000, ACK, NULL, 0, 0);
	assert_true(pkt_seqadj_known(t, &s->pi)); /* either orientation */
	/* The modified segment itself keeps its sequence number. */
	pi = apply(t, mkseg(family, true, 1100, 5000, ACK, NULL, 0, 107), 0, 1);
	assert_int_equal(pi.tcp_seq, 1100);
	/* Later ones move by 7. */
	s = mkseg(family, true, 1200, 5000, ACK, NULL, 0, 100);
	pi = apply(t, s, 1, 1);
	assert_int_equal(pi.tcp_seq, 1207);
	assert_int_equal(s->pi.tcp_seq, 1207);
	assert_int_equal(pi.tcp_ack, 5000);
	/* The modified segment retransmitted (and modified again): same numbers. */
	record(t, family, true, 1100, 7, 0);
	pi = apply(t, mkseg(family, true, 1100, 5000, ACK, NULL, 0, 107), 0, 3);
	assert_int_equal(pi.tcp_seq, 1100);
	pi = apply(t, mkseg(family, true, 1000, 5000, ACK, NULL, 0, 100), 0, 3);
	assert_int_equal(pi.tcp_seq, 1000);
	/* Changed differently on retransmission: like the kernel, the first change stands. */
	record(t, family, true, 1100, 9, 0);
	pi = apply(t, mkseg(family, true, 1200, 5000, ACK, NULL, 0, 100), 1, 3);
	assert_int_equal(pi.tcp_seq, 1207);
	/* B's acknowledgements move back (in order: an acknowledgement settles the points
	 * before it, which the sender never sends again). */
	pi = apply(t, mkseg(family, false, 5000, 1100, ACK, NULL, 0, 0), 0, 2);
	assert_int_equal(pi.tcp_ack, 1100);
	pi = apply(t, mkseg(family, false, 5000, 1207, ACK, NULL, 0, 0), 1, 2);
	assert_int_equal(pi.tcp_ack, 1200);
	pi = apply(t, mkseg(family, false, 5000, 1307, ACK, NULL, 0, 0), 1, 2);
	assert_int_equal(pi.tcp_ack, 1300);
	/* Without ACK the acknowledgement field is left alone. */
	pi = apply(t, mkseg(family, false, 5000, 1307, 0x02, NULL, 0, 0), 0, 2);
	assert_int_equal(pi.tcp_ack, 1307);

	/* A second change, at 1300, by +5: the correction point moves. */
	record(t, family, true, 1300, 5, 0);
	pi = apply(t, mkseg(family, true, 1300, 5000, ACK, NULL, 0, 105), 1, 4);
	assert_int_equal(pi.tcp_seq, 1307);
	pi = apply(t, mkseg(family, true, 1400, 5000, ACK, NULL, 0, 100), 1, 4);
	assert_int_equal(pi.tcp_seq, 1412);
	/* A retransmission from before the point gets the offset of its own place (7). */
	pi = apply(t, mkseg(family, true, 1200, 5000, ACK, NULL, 0, 100), 1, 4);
	assert_int_equal(pi.tcp_seq, 1207);
	pi = apply(t, mkseg(family, false, 5000, 1307, ACK, NULL, 0, 0), 1, 4);
	assert_int_equal(pi.tcp_ack, 1300);
	pi = apply(t, mkseg(family, false, 5000, 1412, ACK, NULL, 0, 0), 1, 4);
	assert_int_equal(pi.tcp_ack, 1400);

	/* SACK blocks in B's acknowledgements: both edges. */
	s = mkseg(family, false, 5000, 1412, ACK, (uint32_t[]){ 1512, 1612, 1712, 1812 }, 2, 0);
	pi = apply(t, s, 1, 5);
	assert_int_equal(pi.tcp_ack, 1400);
	assert_int_equal(get32(s->p + pi.l4_off + 24), 1500);
	assert_int_equal(get32(s->p + pi.l4_off + 28), 1600);
	assert_int_equal(get32(s->p + pi.l4_off + 32), 1700);
	assert_int_equal(get32(s->p + pi.l4_off + 36), 1800);

	/* B's own change (shorter by 3) shifts A's acknowledgements the other way. */
	record(t, family, false, 5000, -3, 0);
	pi = apply(t, mkseg(family, true, 1500, 5097, ACK, NULL, 0, 10), 1, 6);
	assert_int_equal(pi.tcp_seq, 1512);
	assert_int_equal(pi.tcp_ack, 5100);
	pi = apply(t, mkseg(family, false, 5100, 1612, ACK, NULL, 0, 10), 1, 6);
	assert_int_equal(pi.tcp_seq, 5097);
	assert_int_equal(pi.tcp_ack, 1600);
	assert_int_equal(pkt_seqadj_count(t), 1);
	pkt_seqadj_free(t);
}

static void test_seqadj_stream(void **state)
{
	run_stream(AF_INET);
	run_stream(AF_INET6);
	(void)state;
}

/* A bulk stream where every 100-byte segment grows by 7: a retransmission of any changed
 * segment not yet acknowledged, and the acknowledgement of it, use that segment's own
 * offset; an acknowledgement settles the points before it. */
static void test_seqadj_history(void **state)
{
	struct pkt_seqadj *t = pkt_seqadj_new(16, 300);
	struct pkt_info pi;

	for (uint32_t i = 0; i < 20; i++)
		record(t, AF_INET, true, 1000 + i * 100, 7, i == 0);
	/* Segment 4 (seq 1400) follows 4 changes: +28, however many came after it. */
	pi = apply(t, mkseg(AF_INET, true, 1400, 5000, ACK, NULL, 0, 100), 1, 1);
	assert_int_equal(pi.tcp_seq, 1428);
	/* Segment 10 (seq 2000) follows 10 changes: +70; its retransmission keeps +70. */
	pi = apply(t, mkseg(AF_INET, true, 2000, 5000, ACK, NULL, 0, 100), 1, 1);
	assert_int_equal(pi.tcp_seq, 2070);
	/* B acknowledges up to the end of segment 10 as it saw it (2070 + 107). */
	pi = apply(t, mkseg(AF_INET, false, 5000, 2177, ACK, NULL, 0, 0), 1, 1);
	assert_int_equal(pi.tcp_ack, 2100);
	/* Settled points are gone, the rest still count: 2100 follows 11 changes, the latest
	 * segment (19, seq 2900) keeps +133, the next new one gets +140. */
	pi = apply(t, mkseg(AF_INET, true, 2100, 5000, ACK, NULL, 0, 100), 1, 1);
	assert_int_equal(pi.tcp_seq, 2177);
	pi = apply(t, mkseg(AF_INET, true, 2900, 5000, ACK, NULL, 0, 100), 1, 1);
	assert_int_equal(pi.tcp_seq, 3033);
	pi = apply(t, mkseg(AF_INET, true, 3000, 5000, ACK, NULL, 0, 100), 1, 1);
	assert_int_equal(pi.tcp_seq, 3140);
	pi = apply(t, mkseg(AF_INET, false, 5000, 3140, ACK, NULL, 0, 0), 1, 1);
	assert_int_equal(pi.tcp_ack, 3000);
	pkt_seqadj_free(t);
	(void)state;
}

static void test_seqadj_wrap(void **state)
{
	struct pkt_seqadj *t = pkt_seqadj_new(4, 300);
	const uint32_t s0 = 0xffffffb0u;
	struct pkt_info pi;

	record(t, AF_INET, true, s0, 7, 1);
	pi = apply(t, mkseg(AF_INET, true, s0 + 100, 1, ACK, NULL, 0, 10), 1, 0);
	assert_int_equal(pi.tcp_seq, s0 + 107);
	assert_true(pi.tcp_seq < 100); /* wrapped */
	pi = apply(t, mkseg(AF_INET, true, s0 - 100, 1, ACK, NULL, 0, 10), 0, 0);
	assert_int_equal(pi.tcp_seq, s0 - 100);
	pi = apply(t, mkseg(AF_INET, false, 1, s0, ACK, NULL, 0, 0), 0, 0);
	assert_int_equal(pi.tcp_ack, s0);
	pi = apply(t, mkseg(AF_INET, false, 1, s0 + 107, ACK, NULL, 0, 0), 1, 0);
	assert_int_equal(pi.tcp_ack, s0 + 100);
	/* A second change past the wrap: before() still holds. */
	record(t, AF_INET, true, 50, -20, 0);
	pi = apply(t, mkseg(AF_INET, true, 200, 1, ACK, NULL, 0, 10), 1, 0);
	assert_int_equal(pi.tcp_seq, 200 + 7 - 20);
	pi = apply(t, mkseg(AF_INET, true, s0 + 100, 1, ACK, NULL, 0, 10), 1, 0);
	assert_int_equal(pi.tcp_seq, s0 + 107);
	pkt_seqadj_free(t);
	(void)state;
}

static void flow_seg(struct seg *s, uint16_t port, uint8_t flags, bool a_to_b)
{
	struct seg *m = mkseg(AF_INET, a_to_b, 1000, 1, flags, NULL, 0, 10);

	*s = *m;
	put16(s->p + 20 + (a_to_b ? 0 : 2), port);
	s->pi = parse_ok(s->p, s->len);
	/* pi points into s->p, not into mkseg's buffer */
}

static void test_seqadj_lru_expiry(void **state)
{
	struct pkt_seqadj *t = pkt_seqadj_new(2, 60);
	struct seg f[5];
	int i;

	for (i = 0; i < 5; i++)
		flow_seg(&f[i], (uint16_t)(1000 + i), ACK, true);
	assert_int_equal(pkt_seqadj_record(t, &f[0].pi, 5, 0), 1);
	assert_int_equal(pkt_seqadj_record(t, &f[1].pi, 5, 1), 1);
	assert_int_equal(pkt_seqadj_record(t, &f[0].pi, 5, 2), 0); /* f0 is now the most recent */
	assert_int_equal(pkt_seqadj_record(t, &f[2].pi, 5, 3), 1); /* evicts f1 */
	assert_int_equal(pkt_seqadj_count(t), 2);
	assert_true(pkt_seqadj_known(t, &f[0].pi));
	assert_false(pkt_seqadj_known(t, &f[1].pi));
	assert_true(pkt_seqadj_known(t, &f[2].pi));
	/* apply() counts as use too. */
	flow_seg(&f[3], 1002, ACK, true);
	assert_int_equal(pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 4), 0);
	assert_int_equal(pkt_seqadj_record(t, &f[4].pi, 5, 5), 1); /* evicts f0 */
	assert_false(pkt_seqadj_known(t, &f[0].pi));
	assert_true(pkt_seqadj_known(t, &f[2].pi));

	/* Idle expiry: f2 last used at 4, f4 at 5. */
	pkt_seqadj_expire(t, 63);
	assert_int_equal(pkt_seqadj_count(t), 2);
	pkt_seqadj_expire(t, 64);
	assert_false(pkt_seqadj_known(t, &f[2].pi));
	assert_true(pkt_seqadj_known(t, &f[4].pi));
	pkt_seqadj_expire(t, 65);
	assert_int_equal(pkt_seqadj_count(t), 0);

	/* RST: gone after the linger, even while in use. */
	assert_int_equal(pkt_seqadj_record(t, &f[0].pi, 5, 100), 1);
	flow_seg(&f[3], 1000, ACK | RST, false);
	pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 101);
	flow_seg(&f[3], 1000, ACK, true);
	pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 105);
	pkt_seqadj_expire(t, 110);
	assert_true(pkt_seqadj_known(t, &f[0].pi));
	pkt_seqadj_expire(t, 111);
	assert_false(pkt_seqadj_known(t, &f[0].pi));

	/* FIN from one side only: stays; from both: lingers. */
	assert_int_equal(pkt_seqadj_record(t, &f[1].pi, 5, 200), 1);
	flow_seg(&f[3], 1001, ACK | FIN, true);
	pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 200);
	pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 230); /* retransmitted FIN */
	pkt_seqadj_expire(t, 250);
	assert_true(pkt_seqadj_known(t, &f[1].pi));
	flow_seg(&f[3], 1001, ACK | FIN, false);
	pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 250);
	pkt_seqadj_expire(t, 259);
	assert_true(pkt_seqadj_known(t, &f[1].pi));
	pkt_seqadj_expire(t, 260);
	assert_false(pkt_seqadj_known(t, &f[1].pi));

	/* A SYN on the ports of a closing flow starts afresh; on an open one it is ignored. */
	assert_int_equal(pkt_seqadj_record(t, &f[2].pi, 5, 300), 1);
	flow_seg(&f[3], 1002, SYN, true);
	pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 301);
	assert_true(pkt_seqadj_known(t, &f[2].pi));
	flow_seg(&f[3], 1002, ACK | RST, false);
	pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 302);
	flow_seg(&f[3], 1002, SYN, true);
	assert_int_equal(pkt_seqadj_apply(t, f[3].p, f[3].len, &f[3].pi, 303), 0);
	assert_false(pkt_seqadj_known(t, &f[2].pi));

	/* Only TCP. */
	size_t len = v4_udp(buf, 10);
	struct pkt_info pi = parse_ok(buf, len);
	assert_int_equal(pkt_seqadj_record(t, &pi, 5, 0), -EINVAL);
	assert_int_equal(pkt_seqadj_apply(t, buf, len, &pi, 0), 0);
	pkt_seqadj_free(t);
	pkt_seqadj_free(NULL);
	(void)state;
}

/* Many flows: the table stays at its bound and finds every flow it keeps. */
static void test_seqadj_many(void **state)
{
	struct pkt_seqadj *t = pkt_seqadj_new(1000, 60);
	struct seg s;
	int i;

	for (i = 0; i < 5000; i++) {
		flow_seg(&s, (uint16_t)i, ACK, i % 2);
		assert_int_equal(pkt_seqadj_record(t, &s.pi, 1, 0), 1);
	}
	assert_int_equal(pkt_seqadj_count(t), 1000);
	for (i = 0; i < 5000; i++) {
		flow_seg(&s, (uint16_t)i, ACK, i % 2);
		assert_int_equal(pkt_seqadj_known(t, &s.pi), i >= 4000);
	}
	pkt_seqadj_expire(t, 60);
	assert_int_equal(pkt_seqadj_count(t), 0);
	pkt_seqadj_free(t);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4),
		cmocka_unit_test(test_parse_v4_errors),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_v4_fragments),
		cmocka_unit_test(test_parse_v6),
		cmocka_unit_test(test_csum_primitive),
		cmocka_unit_test(test_checksums),
		cmocka_unit_test(test_checksums_udp_zero),
		cmocka_unit_test(test_checksums_skip),
		cmocka_unit_test(test_replacement),
		cmocka_unit_test(test_seqadj_stream),
		cmocka_unit_test(test_seqadj_history),
		cmocka_unit_test(test_seqadj_wrap),
		cmocka_unit_test(test_seqadj_lru_expiry),
		cmocka_unit_test(test_seqadj_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
