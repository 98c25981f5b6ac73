/* The DNS message builder (src/common/dnsbuild.c): everything it writes goes back through
 * dns_parse(); compression, copying records out of other messages, the canned answers
 * (rcode, FORMERR, truncation), matching responses to queries, and the text→wire names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "dns_build.h"

static struct dns_msg msg, msg2; /* 20 KiB each: not on the stack */
static struct tb b;
static uint8_t out[DNS_MSG_MAX];

static const struct dns_header hq = { .id = 0x4242, .rd = true };
static const struct dns_header hr = { .id = 0x4242, .qr = true, .rd = true, .ra = true };

static void assert_text(const struct dns_msg *m, size_t off, const char *want)
{
	char text[DNS_NAME_TEXT_MAX];

	assert_int_equal(dns_name_text(m, off, text, sizeof(text)), (int)strlen(want));
	assert_string_equal(text, want);
}

static void assert_wire(const char *text, const void *want, int n)
{
	uint8_t w[DNS_NAME_MAX];

	assert_int_equal(dns_name_from_text(text, w, sizeof(w)), n);
	assert_memory_equal(w, want, (size_t)n);
}

static void test_name_from_text(void **state)
{
	uint8_t w[DNS_NAME_MAX];
	char name[300];
	size_t i;

	assert_wire("", "\0", 1);
	assert_wire(".", "\0", 1);
	assert_wire("www.Example.com", "\3www\7Example\3com", 17);
	assert_wire("www.Example.com.", "\3www\7Example\3com", 17);
	assert_wire("a\\.b.c", "\3a.b\1c", 7);
	assert_wire("\\065\\255\\000", "\3A\xff\0\0", 5);
	assert_wire("\\\\x", "\2\\x", 4);
	assert_wire("*.x_y-z", "\1*\5x_y-z", 9);
	assert_int_equal(dns_name_from_text("\\256", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("\\12", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("\\1a2", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("a\\", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("a..b", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text(".a", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("..", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("a b", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("a\tb", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("caf\xc3\xa9", w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text(NULL, w, sizeof(w)), -EINVAL);
	assert_int_equal(dns_name_from_text("abc", w, 4), -ENOBUFS);
	assert_int_equal(dns_name_from_text("abc", w, 5), 5);

	/* Labels: 63 bytes fit, 64 do not (escaped bytes count once). */
	memset(name, 'a', 63);
	name[63] = '\0';
	assert_int_equal(dns_name_from_text(name, w, sizeof(w)), 65);
	name[63] = 'a';
	name[64] = '\0';
	assert_int_equal(dns_name_from_text(name, w, sizeof(w)), -EINVAL);
	memcpy(name + 62, "\\097", 5);
	assert_int_equal(dns_name_from_text(name, w, sizeof(w)), 65);

	/* 255 wire bytes: 63+63+63+61, four length bytes and the root; one more is too many. */
	for (i = 0; i < 253; i++)
		name[i] = (i + 1) % 64 == 0 ? '.' : 'x';
	name[253] = '\0';
	assert_int_equal(dns_name_from_text(name, w, sizeof(w)), 255);
	name[253] = 'x';
	name[254] = '\0';
	assert_int_equal(dns_name_from_text(name, w, sizeof(w)), -EINVAL);
	name[252] = '.';
	assert_int_equal(dns_name_from_text(name, w, sizeof(w)), -EINVAL);
	(void)state;
}

/* Builds the answer of test_build_parse into out; returns its length. */
static int build_answer(void)
{
	static const uint8_t addr[4] = { 192, 0, 2, 7 };
	struct dns_builder bd;

	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_question(&bd, "WWW.Example.COM", DNS_TYPE_A, DNS_CLASS_IN);
	dns_builder_rr_name(&bd, DNS_SEC_ANSWER, "www.example.com", DNS_TYPE_CNAME, 60, "cdn.example.com");
	dns_builder_rr(&bd, DNS_SEC_ANSWER, "cdn.example.com", DNS_TYPE_A, DNS_CLASS_IN, 30, addr, 4);
	dns_builder_rr_name(&bd, DNS_SEC_AUTHORITY, "example.com", DNS_TYPE_NS, 3600, "ns1.example.net");
	dns_builder_opt(&bd, 1232, 0, true);
	return dns_builder_finish(&bd);
}

static void test_build_parse(void **state)
{
	int n = build_answer(), family;
	size_t off;

	/* Every name after the question is compressed against what came before:
	 * 12 header, 21 question, 2+10+(4+2) CNAME, 2+10+4 A, 2+10+(4+2) NS... */
	assert_true(n > 0);
	assert_int_equal(dns_parse(out, (size_t)n, &msg), 0);
	assert_int_equal(msg.h.id, 0x4242);
	assert_true(msg.h.qr && msg.h.rd && msg.h.ra && !msg.h.tc && !msg.h.aa);
	assert_int_equal(msg.h.qdcount, 1);
	assert_int_equal(msg.h.ancount, 2);
	assert_int_equal(msg.h.nscount, 1);
	assert_int_equal(msg.h.arcount, 1);
	assert_true(msg.has_opt);
	assert_int_equal(msg.udp_size, 1232);
	assert_int_equal(msg.rr[4].ttl, 0x8000); /* DO */
	/* The question keeps its case; the answer's owner is a pointer to it. */
	assert_memory_equal(out + 12, "\3WWW\7Example\3COM", 17);
	assert_int_equal(out[33], 0xc0);
	assert_int_equal(out[34], 12);
	assert_text(&msg, msg.rr[1].name_off, "www.example.com");
	assert_int_equal(dns_rr_cname_target(&msg, &msg.rr[1], &off), 0);
	assert_text(&msg, off, "cdn.example.com");
	/* "cdn" then a pointer to "Example.COM" inside the question. */
	assert_int_equal(msg.rr[1].rdlen, 6);
	assert_memory_equal(out + msg.rr[1].rdata_off, "\3cdn\xc0\x10", 6);
	assert_int_equal(msg.rr[2].name_off, msg.rr[1].rdata_off + msg.rr[1].rdlen);
	assert_text(&msg, msg.rr[2].name_off, "cdn.example.com");
	assert_int_equal(out[msg.rr[2].name_off], 0xc0); /* pointer to the CNAME's target */
	assert_non_null(dns_rr_addr(&msg, &msg.rr[2], &family));
	assert_int_equal(family, AF_INET);
	assert_text(&msg, msg.rr[3].name_off, "example.com");
	assert_int_equal(dns_rr_cname_target(&msg, &msg.rr[3], &off), -EINVAL);
	assert_text(&msg, msg.rr[3].rdata_off, "ns1.example.net");
	assert_int_equal(n, 12 + 21 + (2 + 10 + 6) + (2 + 10 + 4) + (2 + 10 + 17) + 11);
	(void)state;
}

static void test_builder_errors(void **state)
{
	struct dns_builder bd;
	uint8_t small[40];

	/* Sections go forward only; the first error sticks. */
	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_rr_name(&bd, DNS_SEC_AUTHORITY, "a", DNS_TYPE_NS, 1, "b");
	dns_builder_rr_name(&bd, DNS_SEC_ANSWER, "a", DNS_TYPE_CNAME, 1, "b");
	dns_builder_rr(&bd, DNS_SEC_ADDITIONAL, "a", 99, 1, 1, "x", 1);
	assert_int_equal(dns_builder_finish(&bd), -EPROTO);
	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_rr(&bd, DNS_SEC_ANSWER, "a", 99, 1, 1, NULL, 0);
	dns_builder_question(&bd, "a", DNS_TYPE_A, DNS_CLASS_IN);
	assert_int_equal(dns_builder_finish(&bd), -EPROTO);

	/* Bad arguments. */
	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_rr(&bd, DNS_SEC_QUESTION, "a", 99, 1, 1, NULL, 0);
	assert_int_equal(dns_builder_finish(&bd), -EINVAL);
	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_rr_name(&bd, DNS_SEC_ANSWER, "a", DNS_TYPE_A, 1, "b");
	assert_int_equal(dns_builder_finish(&bd), -EINVAL);
	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_question(&bd, "a..b", DNS_TYPE_A, DNS_CLASS_IN);
	dns_builder_opt(&bd, 512, 0, false);
	assert_int_equal(dns_builder_finish(&bd), -EINVAL);
	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_rr(&bd, DNS_SEC_ANSWER, "a", 99, 1, 1, NULL, 3);
	assert_int_equal(dns_builder_finish(&bd), -EINVAL);

	/* No room: not even for the header, or one byte short of a record. */
	dns_builder_init(&bd, small, 11, &hr);
	assert_int_equal(dns_builder_finish(&bd), -EMSGSIZE);
	dns_builder_init(&bd, small, sizeof(small), &hr);
	dns_builder_question(&bd, "example.com", DNS_TYPE_A, DNS_CLASS_IN); /* 12 + 17 */
	dns_builder_opt(&bd, 512, 0, false);                                /* + 11 = 40 */
	assert_int_equal(dns_builder_finish(&bd), 40);
	assert_int_equal(dns_parse(small, 40, &msg), 0);
	dns_builder_init(&bd, small, sizeof(small) - 1, &hr);
	dns_builder_question(&bd, "example.com", DNS_TYPE_A, DNS_CLASS_IN);
	dns_builder_opt(&bd, 512, 0, false);
	assert_int_equal(dns_builder_finish(&bd), -EMSGSIZE);
	(void)state;
}

/* Many names, far more than the builder remembers, and past the 16 KiB a pointer can reach:
 * every name still comes out right. */
static void test_many_names(void **state)
{
	static const uint8_t addr[4] = { 10, 0, 0, 1 };
	static uint8_t filler[16000];
	struct dns_builder bd;
	char name[64];
	int n, i;

	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_question(&bd, "zone.example", DNS_TYPE_A, DNS_CLASS_IN);
	for (i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "host-%03d.sub%d.zone.example", i, i % 7);
		dns_builder_rr(&bd, DNS_SEC_ANSWER, name, 999, DNS_CLASS_IN, 5, NULL, 0);
		dns_builder_rr(&bd, DNS_SEC_ANSWER, name, DNS_TYPE_A, DNS_CLASS_IN, 5, addr, 4);
		if (i == 254)
			dns_builder_rr(&bd, DNS_SEC_ANSWER, name, 1000, DNS_CLASS_IN, 5, filler, sizeof(filler));
	}
	n = dns_builder_finish(&bd);
	assert_true(n > 16384);
	assert_int_equal(dns_parse(out, (size_t)n, &msg), -E2BIG); /* 1002 records */
	dns_builder_init(&bd, out, sizeof(out), &hr);
	dns_builder_question(&bd, "zone.example", DNS_TYPE_A, DNS_CLASS_IN);
	for (i = 0; i < 250; i++) {
		snprintf(name, sizeof(name), "host-%03d.sub%d.zone.example", i, i % 7);
		dns_builder_rr(&bd, DNS_SEC_ANSWER, name, DNS_TYPE_A, DNS_CLASS_IN, 5, addr, 4);
		if (i == 100)
			dns_builder_rr(&bd, DNS_SEC_ANSWER, name, 1000, DNS_CLASS_IN, 5, filler, sizeof(filler));
		dns_builder_rr_name(&bd, DNS_SEC_ANSWER, name, DNS_TYPE_CNAME, 5, name + 9);
	}
	n = dns_builder_finish(&bd);
	assert_true(n > 16384);
	assert_int_equal(dns_parse(out, (size_t)n, &msg), 0);
	assert_int_equal(msg.n_rr, 1 + 501);
	snprintf(name, sizeof(name), "host-%03d.sub%d.zone.example", 249, 249 % 7);
	assert_text(&msg, msg.rr[msg.n_rr - 1].name_off, name);
	assert_text(&msg, msg.rr[msg.n_rr - 1].rdata_off, name + 9);
	(void)state;
}

/* A message with every kind of name-bearing rdata, compressed the way servers do, plus
 * opaque types whose rdata looks like pointers. */
static void build_rich(void)
{
	size_t q, at, soa_at;

	tb_header(&b, 77, TB_RESPONSE | TB_AA, 1, 6, 1, 2);
	q = tb_question(&b, "Example.ORG", DNS_TYPE_ANY);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_MX, 300);
	tb_u16(&b, 10);
	tb_labels(&b, "mail");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_labels(&b, "_sip._tcp");
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_SRV, 301);
	tb_u16(&b, 1);
	tb_u16(&b, 5);
	tb_u16(&b, 5060);
	tb_labels(&b, "sip");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_HTTPS, 302);
	tb_bytes(&b, "\x00\x01\x00\x00\x01\x00\x03\x02h2", 10);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, 65280, 303);
	tb_bytes(&b, "\xc0\x0c\xc0\xff", 4); /* pointer-like bytes in opaque rdata */
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_TXT, 304);
	tb_bytes(&b, "\5hello\0", 7);
	tb_rr_end(&b, at);
	tb_labels(&b, "alias");
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_CNAME, 305);
	tb_labels(&b, "Target");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	soa_at = tb_rr(&b, DNS_TYPE_SOA, 900);
	tb_labels(&b, "ns1");
	tb_ptr(&b, q);
	tb_labels(&b, "hostmaster");
	tb_ptr(&b, q);
	tb_u32(&b, 2024010101);
	tb_u32(&b, 7200);
	tb_u32(&b, 3600);
	tb_u32(&b, 1209600);
	tb_u32(&b, 60);
	tb_rr_end(&b, soa_at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_PTR, 306);
	tb_labels(&b, "p");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_u8(&b, 0);
	tb_u16(&b, DNS_TYPE_OPT);
	tb_u16(&b, 4096);
	tb_u32(&b, 0x8000);
	at = b.n;
	tb_u16(&b, 0);
	tb_bytes(&b, "\x00\x0a\x00\x08\1\2\3\4\5\6\7\10", 12); /* COOKIE */
	tb_rr_end(&b, at);
}

/* rdata with every name flattened (lower-cased), as dns_parse()'s checks walk it. */
static size_t flat_rdata(const struct dns_msg *m, const struct dns_rr *rr, uint8_t *dst)
{
	static const struct { uint16_t type; size_t pre, names, post; } kinds[] = {
		{ DNS_TYPE_CNAME, 0, 1, 0 }, { DNS_TYPE_NS, 0, 1, 0 }, { DNS_TYPE_PTR, 0, 1, 0 },
		{ DNS_TYPE_MX, 2, 1, 0 }, { DNS_TYPE_SRV, 6, 1, 0 }, { DNS_TYPE_SOA, 0, 2, 20 },
	};
	size_t i, k, n = 0, off = rr->rdata_off;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i].type == rr->type)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0])) {
		memcpy(dst, m->p + off, rr->rdlen);
		return rr->rdlen;
	}
	memcpy(dst, m->p + off, kinds[i].pre);
	n += kinds[i].pre;
	off += kinds[i].pre;
	for (k = 0; k < kinds[i].names; k++) {
		int len = dns_name_canonical(m, off, dst + n, DNS_NAME_MAX);

		assert_true(len > 0);
		n += (size_t)len;
		/* Skip the name's own bytes: labels up to the root or a pointer. */
		while (m->p[off] && (m->p[off] & 0xc0) != 0xc0)
			off += 1 + m->p[off];
		off += m->p[off] ? 2 : 1;
	}
	memcpy(dst + n, m->p + off, kinds[i].post);
	return n + kinds[i].post;
}

static void assert_same_records(const struct dns_msg *a, const struct dns_msg *c)
{
	static uint8_t ra[DNS_MSG_MAX], rc[DNS_MSG_MAX];
	uint8_t na[DNS_NAME_MAX], nc[DNS_NAME_MAX];
	size_t i, la, lc;

	assert_int_equal(a->n_rr, c->n_rr);
	for (i = 0; i < a->n_rr; i++) {
		assert_int_equal(a->rr[i].section, c->rr[i].section);
		assert_int_equal(a->rr[i].type, c->rr[i].type);
		assert_int_equal(a->rr[i].class, c->rr[i].class);
		assert_int_equal(a->rr[i].ttl, c->rr[i].ttl);
		la = (size_t)dns_name_canonical(a, a->rr[i].name_off, na, sizeof(na));
		lc = (size_t)dns_name_canonical(c, c->rr[i].name_off, nc, sizeof(nc));
		assert_int_equal(la, lc);
		assert_memory_equal(na, nc, la);
		la = flat_rdata(a, &a->rr[i], ra);
		lc = flat_rdata(c, &c->rr[i], rc);
		assert_int_equal(la, lc);
		assert_memory_equal(ra, rc, la);
	}
}

static int copy_all(const struct dns_msg *m, uint8_t *dst, size_t cap)
{
	struct dns_builder bd;
	size_t i;

	dns_builder_init(&bd, dst, cap, &m->h);
	for (i = 0; i < m->n_rr; i++)
		dns_builder_copy_rr(&bd, m->rr[i].section, m, &m->rr[i]);
	return dns_builder_finish(&bd);
}

static void test_copy_rr(void **state)
{
	int n;
	size_t i;

	build_rich();
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	n = copy_all(&msg, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_int_equal(msg2.h.id, 77);
	assert_true(msg2.h.aa && msg2.h.qr);
	assert_true(msg2.has_opt);
	assert_int_equal(msg2.udp_size, 4096);
	assert_same_records(&msg, &msg2);
	for (i = 0; i < msg2.n_rr; i++) {
		const struct dns_rr *rr = &msg2.rr[i];

		/* Opaque types byte for byte; the SRV target uncompressed (RFC 2782). */
		if (rr->type == 65280 || rr->type == DNS_TYPE_HTTPS || rr->type == DNS_TYPE_OPT ||
		    rr->type == DNS_TYPE_TXT)
			assert_memory_equal(out + rr->rdata_off, b.p + msg.rr[i].rdata_off, rr->rdlen);
		if (rr->type == DNS_TYPE_SRV)
			assert_memory_equal(out + rr->rdata_off + 6, "\3sip\7Example\3ORG\0", 17);
		if (rr->type == DNS_TYPE_SOA)
			assert_int_equal(rr->rdlen, 6 + 13 + 20); /* both names compressed */
	}
	/* As compact as what the server sent, but for the SRV target: "sip" and a pointer there,
	 * 17 bytes uncompressed here. */
	assert_int_equal((size_t)n, b.n - 6 + 17);

	/* A copy into the question section keeps name, type and class; a question copied into a
	 * record section gets no rdata. */
	{
		struct dns_builder bd;

		dns_builder_init(&bd, out, sizeof(out), &hq);
		dns_builder_copy_rr(&bd, DNS_SEC_QUESTION, &msg, &msg.rr[1]);
		dns_builder_copy_rr(&bd, DNS_SEC_ANSWER, &msg, &msg.rr[0]);
		n = dns_builder_finish(&bd);
		assert_true(n > 0);
		assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
		assert_int_equal(msg2.rr[0].type, DNS_TYPE_MX);
		assert_int_equal(msg2.rr[1].type, DNS_TYPE_ANY);
		assert_int_equal(msg2.rr[1].rdlen, 0);
		assert_text(&msg2, msg2.rr[1].name_off, "example.org");
	}
	/* A record that is not of that message is refused, not read out of bounds. */
	{
		struct dns_builder bd;
		struct dns_rr bad = msg.rr[1];

		bad.rdata_off = b.n - 1;
		dns_builder_init(&bd, out, sizeof(out), &hq);
		dns_builder_copy_rr(&bd, DNS_SEC_ANSWER, &msg, &bad);
		assert_int_equal(dns_builder_finish(&bd), -EINVAL);
		bad = msg.rr[1];
		bad.name_off = b.n;
		dns_builder_init(&bd, out, sizeof(out), &hq);
		dns_builder_copy_rr(&bd, DNS_SEC_ANSWER, &msg, &bad);
		assert_int_equal(dns_builder_finish(&bd), -EINVAL);
		bad = msg.rr[1];
		bad.rdlen--; /* the name no longer fits its rdata */
		dns_builder_init(&bd, out, sizeof(out), &hq);
		dns_builder_copy_rr(&bd, DNS_SEC_ANSWER, &msg, &bad);
		assert_int_equal(dns_builder_finish(&bd), -EINVAL);
	}
	(void)state;
}

/* Copies into buffers too small fail cleanly at every size. */
static void test_copy_every_cap(void **state)
{
	size_t cap;
	int n, full;

	build_rich();
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	full = copy_all(&msg, out, sizeof(out));
	for (cap = 0; cap < (size_t)full; cap++)
		assert_int_equal(copy_all(&msg, out, cap), -EMSGSIZE);
	n = copy_all(&msg, out, (size_t)full);
	assert_int_equal(n, full);
	(void)state;
}

/* A query: "WwW.ExAmPle.CoM" A, with or without EDNS (DO set). */
static void build_query(bool edns)
{
	tb_header(&b, 0xbeef, TB_RD | (2 << 11) /* opcode STATUS, why not */, 1, 0, 0, edns ? 1 : 0);
	tb_question(&b, "WwW.ExAmPle.CoM", DNS_TYPE_A);
	if (edns) {
		tb_u8(&b, 0);
		tb_u16(&b, DNS_TYPE_OPT);
		tb_u16(&b, 4096);
		tb_u32(&b, 0x8000);
		tb_u16(&b, 0);
	}
}

static void test_answer_rcode(void **state)
{
	int n;

	build_query(true);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	n = dns_answer_rcode(&msg, DNS_RCODE_NXDOMAIN, out, sizeof(out));
	assert_true(n > 0);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_int_equal(msg2.h.id, 0xbeef);
	assert_int_equal(msg2.h.opcode, 2);
	assert_true(msg2.h.qr && msg2.h.rd && msg2.h.ra && !msg2.h.aa && !msg2.h.tc);
	assert_int_equal(msg2.h.rcode, DNS_RCODE_NXDOMAIN);
	assert_int_equal(msg2.h.qdcount, 1);
	assert_int_equal(msg2.h.ancount + msg2.h.nscount, 0);
	assert_int_equal(msg2.h.arcount, 1);
	assert_true(msg2.has_opt);
	assert_int_equal(msg2.udp_size, 1232);
	assert_int_equal(msg2.rr[1].ttl, 0x8000); /* DO echoed, version 0 */
	assert_memory_equal(out + 12, "\3WwW\7ExAmPle\3CoM", 17); /* 0x20 case kept */
	assert_true(dns_response_matches(&msg, &msg2));

	/* Without EDNS: no OPT; RD not set in the query, not in the answer. */
	build_query(false);
	b.p[2] &= (uint8_t)~0x01;
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	n = dns_answer_rcode(&msg, DNS_RCODE_REFUSED, out, sizeof(out));
	assert_int_equal(n, 12 + 17 + 4);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_false(msg2.has_opt || msg2.h.rd);
	assert_int_equal(msg2.h.rcode, DNS_RCODE_REFUSED);
	assert_true(dns_response_matches(&msg, &msg2));

	/* No question: FORMERR with none. */
	tb_header(&b, 9, 0, 0, 0, 0, 0);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_answer_rcode(&msg, DNS_RCODE_FORMERR, out, sizeof(out)), 12);
	assert_int_equal(dns_parse(out, 12, &msg2), 0);
	assert_int_equal(msg2.h.rcode, DNS_RCODE_FORMERR);
	assert_true(dns_response_matches(&msg, &msg2));

	build_query(true);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_answer_rcode(&msg, 16, out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_answer_rcode(&msg, 0, out, 12 + 17 + 4 + 10), -EMSGSIZE);
	assert_int_equal(dns_answer_rcode(&msg, 0, out, 12 + 17 + 4 + 11), 12 + 17 + 4 + 11);
	(void)state;
}

/* Answers written over the query they answer, as a server reusing its receive buffer does. */
static void test_answer_in_place(void **state)
{
	static uint8_t buf[512];
	int n;

	build_query(true);
	memcpy(buf, b.p, b.n);
	assert_int_equal(dns_parse(buf, b.n, &msg), 0);
	n = dns_answer_rcode(&msg, DNS_RCODE_REFUSED, buf, sizeof(buf));
	assert_int_equal(n, 12 + 21 + 11);
	assert_int_equal(dns_parse(buf, (size_t)n, &msg2), 0);
	assert_memory_equal(buf + 12, "\3WwW\7ExAmPle\3CoM", 17);
	assert_int_equal(msg2.h.rcode, DNS_RCODE_REFUSED);

	/* A question whose name is a pointer into the header (offset 4 holds 0: the root). */
	tb_header(&b, 0x0101, 0, 1, 0, 0, 0);
	tb_ptr(&b, 4);
	tb_u16(&b, DNS_TYPE_NS);
	tb_u16(&b, 1);
	memcpy(buf, b.p, b.n);
	assert_int_equal(dns_parse(buf, b.n, &msg), 0);
	n = dns_answer_rcode(&msg, DNS_RCODE_NOERROR, buf, sizeof(buf));
	assert_int_equal(n, 12 + 1 + 4);
	assert_int_equal(dns_parse(buf, (size_t)n, &msg2), 0);
	assert_text(&msg2, msg2.rr[0].name_off, "");
	assert_int_equal(msg2.rr[0].type, DNS_TYPE_NS);

	/* FORMERR over its input. */
	memset(buf, 0xee, 40);
	buf[2] = 0x08; /* opcode 1 */
	assert_int_equal(dns_answer_formerr_raw(buf, 40, buf, sizeof(buf)), 12);
	assert_int_equal(dns_parse(buf, 12, &msg), 0);
	assert_int_equal(msg.h.id, 0xeeee);
	assert_int_equal(msg.h.opcode, 1);
	assert_int_equal(msg.h.rcode, DNS_RCODE_FORMERR);
	(void)state;
}

static void test_formerr_raw(void **state)
{
	static const uint8_t junk[20] = { 0x12, 0x34, 0x29 /* opcode 5, RD */, 0xff, 0xff, 0xff };
	uint8_t resp[20];

	assert_int_equal(dns_answer_formerr_raw(junk, 11, out, sizeof(out)), -EBADMSG);
	assert_int_equal(dns_answer_formerr_raw(junk, 12, out, 11), -EMSGSIZE);
	assert_int_equal(dns_answer_formerr_raw(junk, sizeof(junk), out, sizeof(out)), 12);
	assert_int_equal(dns_parse(out, 12, &msg), 0);
	assert_int_equal(msg.h.id, 0x1234);
	assert_int_equal(msg.h.opcode, 5);
	assert_true(msg.h.qr);
	assert_int_equal(msg.h.rcode, DNS_RCODE_FORMERR);
	assert_int_equal(msg.n_rr, 0);
	/* A response is never answered. */
	memcpy(resp, junk, sizeof(resp));
	resp[2] |= 0x80;
	assert_int_equal(dns_answer_formerr_raw(resp, sizeof(resp), out, sizeof(out)), -EBADMSG);
	(void)state;
}

/* An answer of n A records for the query of build_query(edns), with a COOKIE option. */
static void build_big_answer(bool edns, int n)
{
	size_t q, at;
	int i;

	tb_header(&b, 0xbeef, TB_RESPONSE, 1, (uint16_t)n, 0, edns ? 1 : 0);
	q = tb_question(&b, "www.example.com", DNS_TYPE_A);
	for (i = 0; i < n; i++) {
		char a[16];

		snprintf(a, sizeof(a), "10.0.%d.%d", i / 250, i % 250);
		tb_addr_rr(&b, q, a, 60);
	}
	if (edns) {
		tb_u8(&b, 0);
		tb_u16(&b, DNS_TYPE_OPT);
		tb_u16(&b, 1232);
		tb_u32(&b, 0);
		at = b.n;
		tb_u16(&b, 0);
		tb_bytes(&b, "\x00\x0a\x00\x08\1\2\3\4\5\6\7\10", 12);
		tb_rr_end(&b, at);
	}
}

static void test_truncate(void **state)
{
	int n;

	/* 40 records: 12 + 21 + 40 × 16 = 673 bytes. */
	build_big_answer(false, 40);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	n = dns_truncate(&msg, 512, out, sizeof(out));
	assert_int_equal(n, 12 + 21);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_true(msg2.h.tc && msg2.h.qr);
	assert_int_equal(msg2.h.ancount, 0);
	assert_text(&msg2, msg2.rr[0].name_off, "www.example.com");
	/* Fits: copied as is. */
	n = dns_truncate(&msg, 4096, out, sizeof(out));
	assert_int_equal(n, (int)b.n);
	assert_memory_equal(out, b.p, b.n);
	n = dns_truncate(&msg, b.n, out, b.n);
	assert_int_equal(n, (int)b.n);
	n = dns_truncate(&msg, b.n - 1, out, sizeof(out));
	assert_int_equal(n, 12 + 21);

	/* With EDNS, the OPT and its options stay. */
	build_big_answer(true, 40);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	n = dns_truncate(&msg, 512, out, sizeof(out));
	assert_int_equal(n, 12 + 21 + 11 + 12);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_true(msg2.h.tc && msg2.has_opt);
	assert_int_equal(msg2.udp_size, 1232);
	assert_int_equal(msg2.rr[1].rdlen, 12);
	/* Room for the question only, then for the header only, then not even that. */
	n = dns_truncate(&msg, 12 + 21 + 22, out, sizeof(out));
	assert_int_equal(n, 12 + 21);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_false(msg2.has_opt);
	n = dns_truncate(&msg, 20, out, sizeof(out));
	assert_int_equal(n, 12);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_true(msg2.h.tc);
	assert_int_equal(msg2.h.qdcount, 0);
	assert_int_equal(dns_truncate(&msg, 11, out, sizeof(out)), -EMSGSIZE);
	/* A limit above cap is cap. */
	n = dns_truncate(&msg, 4096, out, 100);
	assert_int_equal(n, 12 + 21 + 11 + 12);
	/* In place: fine when it fits, refused when it would have to be rebuilt over itself. */
	memcpy(out, b.p, b.n);
	assert_int_equal(dns_parse(out, b.n, &msg), 0);
	assert_int_equal(dns_truncate(&msg, 4096, out, sizeof(out)), (int)b.n);
	assert_memory_equal(out, b.p, b.n);
	assert_int_equal(dns_truncate(&msg, 512, out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_truncate(&msg, 512, out + 100, 512), -EINVAL);
	assert_int_equal(dns_truncate(&msg, 512, out + b.n, 512), 12 + 21 + 11 + 12);
	(void)state;
}

static void test_response_matches(void **state)
{
	static struct tb q;
	int n;

	build_query(false);
	q = b;
	assert_int_equal(dns_parse(q.p, q.n, &msg), 0);
	n = dns_answer_rcode(&msg, 0, out, sizeof(out));
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_true(dns_response_matches(&msg, &msg2));
	/* The query itself is no response. */
	assert_false(dns_response_matches(&msg, &msg));

	/* Case differs: still the same question. */
	memcpy(out + 13, "WWW", 3);
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_true(dns_response_matches(&msg, &msg2));
	/* Another name. */
	out[13] = 'x';
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_false(dns_response_matches(&msg, &msg2));
	out[13] = 'w';
	/* Another id, type, class, opcode. */
	out[1] ^= 1;
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_false(dns_response_matches(&msg, &msg2));
	out[1] ^= 1;
	out[n - 3] = DNS_TYPE_AAAA;
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_false(dns_response_matches(&msg, &msg2));
	out[n - 3] = DNS_TYPE_A;
	out[n - 1] = 3; /* CH */
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_false(dns_response_matches(&msg, &msg2));
	out[n - 1] = 1;
	out[2] ^= 0x08;
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_false(dns_response_matches(&msg, &msg2));
	out[2] ^= 0x08;
	assert_int_equal(dns_parse(out, (size_t)n, &msg2), 0);
	assert_true(dns_response_matches(&msg, &msg2));
	/* No question in the response (what a FORMERR carries). */
	assert_int_equal(dns_answer_formerr_raw(q.p, q.n, out, sizeof(out)), 12);
	assert_int_equal(dns_parse(out, 12, &msg2), 0);
	assert_false(dns_response_matches(&msg, &msg2));
	(void)state;
}

static void test_udp_limit(void **state)
{
	static const struct { uint16_t size; size_t want; } cases[] = {
		{ 0, 512 }, { 100, 512 }, { 512, 512 }, { 513, 513 }, { 1232, 1232 },
		{ 4096, 4096 }, { 4097, 4096 }, { 65535, 4096 },
	};
	size_t i;

	build_query(false);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_udp_limit(&msg), 512);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		build_query(true);
		tb_set16(&b, b.n - 8, cases[i].size);
		assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
		assert_int_equal(msg.udp_size, cases[i].size);
		assert_int_equal(dns_udp_limit(&msg), cases[i].want);
	}
	(void)state;
}

/* NXDOMAIN with an SOA of the given TTL and MINIMUM, plus an additional record. */
static void build_negative(uint32_t soa_ttl, uint32_t minimum)
{
	size_t q, at;

	tb_header(&b, 3, TB_RESPONSE | DNS_RCODE_NXDOMAIN, 1, 0, 1, 1);
	q = tb_question(&b, "nope.example.com", DNS_TYPE_A);
	tb_ptr(&b, q + 5);
	at = tb_rr(&b, DNS_TYPE_SOA, soa_ttl);
	tb_labels(&b, "ns1");
	tb_ptr(&b, q + 5);
	tb_labels(&b, "hostmaster");
	tb_ptr(&b, q + 5);
	tb_u32(&b, 1);
	tb_u32(&b, 7200);
	tb_u32(&b, 3600);
	tb_u32(&b, 1209600);
	tb_u32(&b, minimum);
	tb_rr_end(&b, at);
	tb_addr_rr(&b, q, "10.0.0.1", 1); /* additional: does not count */
}

static void test_min_ttl(void **state)
{
	size_t q;

	build_negative(900, 300);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_min_ttl(&msg), 300);
	build_negative(100, 300);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_min_ttl(&msg), 100);
	build_negative(900, 0x80000000u);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_min_ttl(&msg), 0);

	/* Answers: the lowest; a TTL with the top bit set is 0 (RFC 2181 §8). */
	tb_header(&b, 1, TB_RESPONSE, 1, 3, 0, 0);
	q = tb_question(&b, "a.example", DNS_TYPE_A);
	tb_addr_rr(&b, q, "10.0.0.1", 300);
	tb_addr_rr(&b, q, "10.0.0.2", 60);
	tb_addr_rr(&b, q, "10.0.0.3", 120);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_min_ttl(&msg), 60);
	tb_set16(&b, b.n - 10, 0x8000);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_min_ttl(&msg), 0);

	/* Nothing to go by. */
	build_query(true);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_min_ttl(&msg), UINT32_MAX);

	/* An SOA asked for (answer section): its MINIMUM is not a TTL of anything here. */
	build_negative(900, 5);
	tb_set16(&b, 6, 1);
	tb_set16(&b, 8, 0);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(msg.rr[1].section, DNS_SEC_ANSWER);
	assert_int_equal(dns_min_ttl(&msg), 900);
	build_rich(); /* SOA in the authority section: ttl 900, minimum 60 */
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_min_ttl(&msg), 60);
	(void)state;
}

static void test_question(void **state)
{
	char name[DNS_NAME_TEXT_MAX];
	uint16_t type = 0, class = 0;

	build_query(true);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_question(&msg, name, sizeof(name), &type, &class), 0);
	assert_string_equal(name, "www.example.com");
	assert_int_equal(type, DNS_TYPE_A);
	assert_int_equal(class, DNS_CLASS_IN);
	type = 7;
	assert_int_equal(dns_question(&msg, name, 15, &type, &class), -ENOBUFS);
	assert_int_equal(type, 7);
	tb_header(&b, 9, 0, 0, 0, 0, 0);
	assert_int_equal(dns_parse(b.p, b.n, &msg), 0);
	assert_int_equal(dns_question(&msg, name, sizeof(name), &type, &class), -ENOENT);
	(void)state;
}

/* Names from text with escapes survive the trip to the wire and back to text. */
static void test_escape_roundtrip(void **state)
{
	static const char *const names[] = { "a\\.b.example", "\\000\\255.x", "sp\\032ace", "" };
	struct dns_builder bd;
	size_t i;
	int n;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		dns_builder_init(&bd, out, sizeof(out), &hq);
		dns_builder_question(&bd, names[i], DNS_TYPE_A, DNS_CLASS_IN);
		n = dns_builder_finish(&bd);
		assert_true(n > 0);
		assert_int_equal(dns_parse(out, (size_t)n, &msg), 0);
		assert_text(&msg, msg.rr[0].name_off, i == 0 ? "a\\046b.example" : names[i]);
	}
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_from_text),
		cmocka_unit_test(test_build_parse),
		cmocka_unit_test(test_builder_errors),
		cmocka_unit_test(test_many_names),
		cmocka_unit_test(test_copy_rr),
		cmocka_unit_test(test_copy_every_cap),
		cmocka_unit_test(test_answer_rcode),
		cmocka_unit_test(test_answer_in_place),
		cmocka_unit_test(test_formerr_raw),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_response_matches),
		cmocka_unit_test(test_udp_limit),
		cmocka_unit_test(test_min_ttl),
		cmocka_unit_test(test_question),
		cmocka_unit_test(test_escape_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
