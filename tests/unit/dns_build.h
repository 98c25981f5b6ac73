/* Builders for hand-made DNS messages and the IP packets that carry them, shared by the DNS,
 * name cache and snooping tests and by the fuzz harnesses' seeds. Test code only: a
 * builder that runs out of room aborts. */
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TB_MAX 8192

struct tb {
	uint8_t p[TB_MAX];
	size_t n;
};

enum {
	TB_QR = 0x8000, TB_AA = 0x0400, TB_TC = 0x0200, TB_RD = 0x0100, TB_RA = 0x0080,
	TB_RESPONSE = TB_QR | TB_RD | TB_RA,
};

static inline void tb_room(const struct tb *b, size_t n)
{
	if (TB_MAX - b->n < n) {
		fprintf(stderr, "dns_build.h: buffer full\n");
		abort();
	}
}

static inline void tb_u8(struct tb *b, uint8_t v)
{
	tb_room(b, 1);
	b->p[b->n++] = v;
}

static inline void tb_u16(struct tb *b, uint16_t v)
{
	tb_u8(b, (uint8_t)(v >> 8));
	tb_u8(b, (uint8_t)v);
}

static inline void tb_u32(struct tb *b, uint32_t v)
{
	tb_u16(b, (uint16_t)(v >> 16));
	tb_u16(b, (uint16_t)v);
}

static inline void tb_bytes(struct tb *b, const void *p, size_t n)
{
	tb_room(b, n);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static inline void tb_set16(struct tb *b, size_t at, uint16_t v)
{
	b->p[at] = (uint8_t)(v >> 8);
	b->p[at + 1] = (uint8_t)v;
}

/* Labels of a dotted name, without the root label; returns where they start. */
static inline size_t tb_labels(struct tb *b, const char *dotted)
{
	size_t at = b->n;
	const char *s = dotted, *dot;

	while (*s) {
		dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);

		tb_u8(b, (uint8_t)len);
		tb_bytes(b, s, len);
		s += len + (dot ? 1 : 0);
	}
	return at;
}

/* A whole uncompressed name ("" is the root); returns where it starts. */
static inline size_t tb_name(struct tb *b, const char *dotted)
{
	size_t at = tb_labels(b, dotted);

	tb_u8(b, 0);
	return at;
}

static inline void tb_ptr(struct tb *b, size_t off)
{
	tb_u16(b, (uint16_t)(0xc000 | off));
}

static inline void tb_header(struct tb *b, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
			     uint16_t ar)
{
	b->n = 0;
	tb_u16(b, id);
	tb_u16(b, flags);
	tb_u16(b, qd);
	tb_u16(b, an);
	tb_u16(b, ns);
	tb_u16(b, ar);
}

static inline size_t tb_question(struct tb *b, const char *name, uint16_t type)
{
	size_t at = tb_name(b, name);

	tb_u16(b, type);
	tb_u16(b, 1);
	return at;
}

/* Type, class IN, ttl and a placeholder rdlength, after the owner name the caller wrote;
 * returns the rdlength's offset for tb_rr_end. */
static inline size_t tb_rr(struct tb *b, uint16_t type, uint32_t ttl)
{
	tb_u16(b, type);
	tb_u16(b, 1);
	tb_u32(b, ttl);
	tb_u16(b, 0);
	return b->n - 2;
}

static inline void tb_rr_end(struct tb *b, size_t rdlen_at)
{
	tb_set16(b, rdlen_at, (uint16_t)(b->n - rdlen_at - 2));
}

/* owner (a pointer) A/AAAA text-address. */
static inline void tb_addr_rr(struct tb *b, size_t owner, const char *addr, uint32_t ttl)
{
	uint8_t a[16];
	int v6 = strchr(addr, ':') != NULL;
	size_t at;

	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, a) != 1)
		abort();
	tb_ptr(b, owner);
	at = tb_rr(b, v6 ? 28 : 1, ttl);
	tb_bytes(b, a, v6 ? 16 : 4);
	tb_rr_end(b, at);
}

/* owner (a pointer) CNAME target (uncompressed); returns the target's offset. */
static inline size_t tb_cname_rr(struct tb *b, size_t owner, const char *target, uint32_t ttl)
{
	size_t at, t;

	tb_ptr(b, owner);
	at = tb_rr(b, 5, ttl);
	t = tb_name(b, target);
	tb_rr_end(b, at);
	return t;
}

/* EDNS(0) OPT: root owner, UDP size, extended rcode bits, no options. */
static inline void tb_opt_rr(struct tb *b, uint16_t udp_size, uint8_t ext_rcode)
{
	tb_u8(b, 0);
	tb_u16(b, 41);
	tb_u16(b, udp_size);
	tb_u32(b, (uint32_t)ext_rcode << 24);
	tb_u16(b, 0);
}

/* --- IP packets from a server (port 53) to a client -------------------------------- */

static inline void tb_ip4(struct tb *pkt, const char *src, const char *dst, uint8_t proto, const struct tb *l4)
{
	uint8_t a[4];

	pkt->n = 0;
	tb_u8(pkt, 0x45);
	tb_u8(pkt, 0);
	tb_u16(pkt, (uint16_t)(20 + l4->n));
	tb_u32(pkt, 0x12344000); /* id, DF */
	tb_u8(pkt, 64);
	tb_u8(pkt, proto);
	tb_u16(pkt, 0);
	inet_pton(AF_INET, src, a);
	tb_bytes(pkt, a, 4);
	inet_pton(AF_INET, dst, a);
	tb_bytes(pkt, a, 4);
	tb_bytes(pkt, l4->p, l4->n);
}

static inline void tb_ip6(struct tb *pkt, const char *src, const char *dst, uint8_t proto, const struct tb *l4)
{
	uint8_t a[16];

	pkt->n = 0;
	tb_u32(pkt, 0x60000000);
	tb_u16(pkt, (uint16_t)l4->n);
	tb_u8(pkt, proto);
	tb_u8(pkt, 64);
	inet_pton(AF_INET6, src, a);
	tb_bytes(pkt, a, 16);
	inet_pton(AF_INET6, dst, a);
	tb_bytes(pkt, a, 16);
	tb_bytes(pkt, l4->p, l4->n);
}

static inline void tb_udp(struct tb *l4, uint16_t sport, uint16_t dport, const void *data, size_t n)
{
	l4->n = 0;
	tb_u16(l4, sport);
	tb_u16(l4, dport);
	tb_u16(l4, (uint16_t)(8 + n));
	tb_u16(l4, 0);
	tb_bytes(l4, data, n);
}

enum { TB_FIN = 0x01, TB_SYN = 0x02, TB_RST = 0x04, TB_PSH = 0x08, TB_ACK = 0x10 };

static inline void tb_tcp(struct tb *l4, uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags,
			  const void *data, size_t n)
{
	l4->n = 0;
	tb_u16(l4, sport);
	tb_u16(l4, dport);
	tb_u32(l4, seq);
	tb_u32(l4, 1);
	tb_u8(l4, 5 << 4);
	tb_u8(l4, flags);
	tb_u16(l4, 65535);
	tb_u32(l4, 0);
	if (n)
		tb_bytes(l4, data, n);
}

/* An A answer for name → addr, the kind a resolver sends. */
static inline void tb_answer_a(struct tb *b, uint16_t id, const char *name, const char *addr)
{
	size_t q;

	tb_header(b, id, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(b, name, strchr(addr, ':') ? 28 : 1);
	tb_addr_rr(b, q, addr, 300);
}
