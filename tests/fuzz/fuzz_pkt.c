/* Fuzz harness for the packet parser, checksums, replacement checks and TCP sequence shifts
 * (src/common/pkt.c): packets come from anyone on the network, replacements from an
 * extension.
 *
 * Besides what ASan/UBSan catch, it checks what netextd relies on once pkt_parse() accepted
 * a packet: every offset lies inside the bytes claimed, pkt_fix_checksums() yields checksums
 * pkt_checksums_ok() accepts, a replacement accepted is one that parses exactly, and
 * pkt_seqadj_apply() changes numbers only, so the packet still parses the same way. */
#include "fuzz.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pkt.h"

static uint8_t copy[PKT_MAX + 64], rev[PKT_MAX + 64];

static void die(const char *why)
{
	fprintf(stderr, "fuzz-pkt: %s\n", why);
	abort();
}

static void check_offsets(const struct pkt_info *pi, size_t len, bool truncated, const uint8_t *p)
{
	size_t alen = pi->family == AF_INET ? 4 : 16;

	if (truncated ? pi->ip_len < len : pi->ip_len != len)
		die("ip_len disagrees with the length");
	if (pi->l4_off > pi->ip_len || pi->payload_off + pi->payload_len != pi->ip_len ||
	    pi->payload_off != pi->l4_off + pi->l4_hdr_len)
		die("offsets do not add up");
	if (pi->l4_hdr_len && pi->l4_off + pi->l4_hdr_len > len)
		die("a transport header past the bytes present");
	if (pi->saddr < p || pi->daddr < p || pi->saddr + alen > p + len || pi->daddr + alen > p + len)
		die("addresses outside the packet");
	if (pi->fragment && !pi->first_fragment && pi->l4_hdr_len)
		die("a transport header in a later fragment");
}

static void check_checksums(const uint8_t *data, size_t size, bool truncated)
{
	struct pkt_info pi;

	if (pkt_parse(data, size, truncated, &pi) < 0)
		return;
	check_offsets(&pi, size, truncated, data);
	memcpy(copy, data, size);
	/* pi's pointers are into data; the copy has its own parse. */
	if (pkt_parse(copy, size, truncated, &pi) < 0)
		die("a copy does not parse");
	pkt_fix_checksums(copy, size, &pi);
	if (!pkt_checksums_ok(copy, size, &pi))
		die("checksums wrong after pkt_fix_checksums");
}

static void check_replacement(const uint8_t *data, size_t size)
{
	static const uint8_t v4[] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
				      0, 53, 0, 53, 0, 8, 0, 0 };
	static const uint8_t v6[48] = { 0x60, 0, 0, 0, 0, 8, 17, 64, [23] = 1, [39] = 2,
					[41] = 53, [43] = 53, [45] = 8 };
	const uint8_t *origs[] = { v4, v6 };
	size_t olens[] = { sizeof(v4), sizeof(v6) };
	struct pkt_info oi, ri, pi;
	int r;

	for (int i = 0; i < 2; i++) {
		if (pkt_parse(origs[i], olens[i], false, &oi) < 0)
			die("an original does not parse");
		r = pkt_check_replacement(&oi, data, size, &ri);
		if (size > PKT_MAX && r != -EMSGSIZE)
			die("an oversized replacement passed");
		if (r == 0 && (ri.family != oi.family || pkt_parse(data, size, false, &pi) < 0 ||
			       pi.ip_len != size))
			die("an accepted replacement does not parse exactly");
		if (r != 0 && r != -EPROTO && r != -EBADMSG && r != -EMSGSIZE)
			die("an unexpected error");
	}
}

/* The same packet the other way round: addresses and ports swapped. */
static size_t reverse(const uint8_t *p, size_t len, const struct pkt_info *pi, uint8_t *out)
{
	size_t alen = pi->family == AF_INET ? 4 : 16, s = (size_t)(pi->saddr - p), d = (size_t)(pi->daddr - p);

	memcpy(out, p, len);
	memcpy(out + s, p + d, alen);
	memcpy(out + d, p + s, alen);
	if (pi->l4_hdr_len >= 4) {
		memcpy(out + pi->l4_off, p + pi->l4_off + 2, 2);
		memcpy(out + pi->l4_off + 2, p + pi->l4_off, 2);
	}
	return len;
}

static void apply_checked(struct pkt_seqadj *t, uint8_t *p, size_t len, bool truncated, uint64_t now)
{
	struct pkt_info pi, after;
	int r;

	if (pkt_parse(p, len, truncated, &pi) < 0)
		return;
	r = pkt_seqadj_apply(t, p, len, &pi, now);
	if (r < 0 || r > 1)
		die("pkt_seqadj_apply returned nonsense");
	if (pkt_parse(p, len, truncated, &after) < 0)
		die("a shifted packet no longer parses");
	if (after.l4_hdr_len != pi.l4_hdr_len || after.payload_len != pi.payload_len)
		die("pkt_seqadj_apply changed the packet's shape");
	if (after.l4_hdr_len && (after.tcp_seq != pi.tcp_seq || after.tcp_ack != pi.tcp_ack))
		die("pkt_seqadj_apply left pi stale");
}

static void check_seqadj(const uint8_t *data, size_t size, bool truncated)
{
	struct pkt_seqadj *t;
	struct pkt_info pi;
	int32_t delta;
	int r;

	if (pkt_parse(data, size, truncated, &pi) < 0)
		return;
	t = pkt_seqadj_new(2, 30);
	if (!t)
		die("out of memory");
	/* A delta from the packet itself, so that inputs choose it. */
	delta = (int32_t)(int8_t)data[size - 1] * 97;
	r = pkt_seqadj_record(t, &pi, delta, 0);
	if (pi.protocol != IPPROTO_TCP || !pi.l4_hdr_len) {
		if (r != -EINVAL)
			die("a shift recorded for a non-TCP packet");
	} else if (r != (delta != 0)) {
		die("pkt_seqadj_record: wrong result for a new flow");
	}
	/* Twice, so that a second correction point is set when the sequence moved on. */
	pi.tcp_seq += (uint32_t)size;
	pkt_seqadj_record(t, &pi, -delta / 2, 1);
	memcpy(copy, data, size);
	apply_checked(t, copy, size, truncated, 2);
	if (pkt_parse(data, size, truncated, &pi) == 0) {
		reverse(data, size, &pi, rev);
		apply_checked(t, rev, size, truncated, 3);
		apply_checked(t, rev, size, truncated, 4);
	}
	if (pkt_seqadj_count(t) > 2)
		die("more flows than max_flows");
	pkt_seqadj_expire(t, 1000);
	if (pkt_seqadj_count(t) != 0)
		die("idle flows survived expiry");
	pkt_seqadj_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > PKT_MAX + 40)
		return 0;
	for (int truncated = 0; truncated < 2; truncated++) {
		check_checksums(data, size, truncated);
		check_seqadj(data, size, truncated);
	}
	check_replacement(data, size);
	return 0;
}

/* --- seeds: a few well-formed packets ----------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t seed_ip(uint8_t *p, int family, uint8_t proto, size_t ext, size_t l4len)
{
	if (family == AF_INET) {
		memset(p, 0, 20);
		p[0] = 0x45;
		put16(p + 2, (uint16_t)(20 + l4len));
		p[8] = 64;
		p[9] = proto;
		p[12] = 10, p[15] = 1, p[16] = 10, p[19] = 2;
		return 20;
	}
	memset(p, 0, 40 + ext);
	p[0] = 0x60;
	put16(p + 4, (uint16_t)(ext + l4len));
	p[6] = ext ? IPPROTO_DSTOPTS : proto;
	p[7] = 64;
	p[8] = 0x20, p[9] = 0x01, p[23] = 1;
	p[24] = 0x20, p[25] = 0x01, p[39] = 2;
	if (ext)
		p[40] = proto;
	return 40 + ext;
}

static size_t seed_tcp(uint8_t *p, bool sack, size_t payload)
{
	size_t hl = sack ? 32 : 20;

	memset(p, 0, hl + payload);
	put16(p, 40000);
	put16(p + 2, 80);
	p[4] = 0xff, p[5] = 0xff, p[6] = 0xff, p[7] = 0x80; /* near the wrap */
	p[11] = 100;
	p[12] = (uint8_t)(hl / 4) << 4;
	p[13] = 0x18;
	if (sack) {
		p[20] = 1, p[21] = 1, p[22] = 5, p[23] = 10;
		p[27] = 200, p[31] = 250;
	}
	memset(p + hl, 'x', payload);
	return hl + payload;
}

static size_t seed_udp(uint8_t *p, size_t payload)
{
	put16(p, 5353);
	put16(p + 2, 53);
	put16(p + 4, (uint16_t)(8 + payload));
	put16(p + 6, 0);
	memset(p + 8, 'q', payload);
	return 8 + payload;
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static uint8_t p[2048];
	struct pkt_info pi;
	size_t ip, l4;

	for (int family = AF_INET; family <= AF_INET6; family += AF_INET6 - AF_INET) {
		for (int kind = 0; kind < 4; kind++) {
			uint8_t tmp[600];
			size_t ext = kind == 3 && family == AF_INET6 ? 8 : 0;

			if (kind < 2)
				l4 = seed_tcp(tmp, kind == 1, 37);
			else
				l4 = seed_udp(tmp, 21);
			ip = seed_ip(p, family, kind < 2 ? IPPROTO_TCP : IPPROTO_UDP, ext, l4);
			memcpy(p + ip, tmp, l4);
			if (pkt_parse(p, ip + l4, false, &pi) == 0)
				pkt_fix_checksums(p, ip + l4, &pi);
			add(p, ip + l4, userdata);
		}
	}
}
