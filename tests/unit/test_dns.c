/* The DNS message parser on hand-built answers, and every kind of malformed message it must
 * refuse; the text helpers rules use. */
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

static struct dns_msg msg; /* 20 KiB of records: not on the stack */
static struct tb b;

static int parse(void)
{
	return dns_parse(b.p, b.n, &msg);
}

static void assert_text(size_t off, const char *want)
{
	char text[DNS_NAME_TEXT_MAX];

	assert_int_equal(dns_name_text(&msg, off, text, sizeof(text)), (int)strlen(want));
	assert_string_equal(text, want);
}

static void test_a_answer(void **state)
{
	const uint8_t want[4] = { 93, 184, 216, 34 };
	uint8_t canon[DNS_NAME_MAX];
	const uint8_t *a;
	int family = 0;

	tb_answer_a(&b, 0x1234, "www.Example.com", "93.184.216.34");
	assert_int_equal(parse(), 0);
	assert_int_equal(msg.h.id, 0x1234);
	assert_true(msg.h.qr && msg.h.rd && msg.h.ra && !msg.h.aa && !msg.h.tc);
	assert_int_equal(msg.h.rcode, 0);
	assert_int_equal(msg.n_rr, 2);
	assert_false(msg.has_opt);
	assert_int_equal(msg.rr[0].section, DNS_SEC_QUESTION);
	assert_int_equal(msg.rr[0].type, DNS_TYPE_A);
	assert_int_equal(msg.rr[1].section, DNS_SEC_ANSWER);
	assert_int_equal(msg.rr[1].ttl, 300);
	assert_text(msg.rr[0].name_off, "www.example.com");
	assert_text(msg.rr[1].name_off, "www.example.com");
	assert_true(dns_name_equal(&msg, msg.rr[0].name_off, msg.rr[1].name_off));
	assert_int_equal(dns_name_canonical(&msg, msg.rr[1].name_off, canon, sizeof(canon)), 17);
	assert_memory_equal(canon, "\3www\7example\3com", 17);
	assert_int_equal(dns_name_canonical(&msg, msg.rr[1].name_off, canon, 16), -ENOBUFS);
	a = dns_rr_addr(&msg, &msg.rr[1], &family);
	assert_non_null(a);
	assert_int_equal(family, AF_INET);
	assert_memory_equal(a, want, 4);
	assert_null(dns_rr_addr(&msg, &msg.rr[0], &family));
	(void)state;
}

/* www.example.com CNAME cdn.example.net (target compressed against the question),
 * cdn CNAME edge, edge AAAA; with an EDNS OPT carrying an option. */
static void test_cname_chain_edns(void **state)
{
	size_t q, cdn, edge, at;
	size_t off;
	int family;

	tb_header(&b, 7, TB_RESPONSE, 1, 3, 0, 1);
	q = tb_question(&b, "www.example.com", DNS_TYPE_AAAA);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_CNAME, 60);
	cdn = tb_labels(&b, "cdn");
	tb_ptr(&b, q + 4); /* "example.com" inside the question */
	tb_rr_end(&b, at);
	edge = tb_cname_rr(&b, cdn, "EDGE.cdn.NET", 30);
	tb_addr_rr(&b, edge, "2001:db8::1", 20);
	tb_u8(&b, 0);
	tb_u16(&b, DNS_TYPE_OPT);
	tb_u16(&b, 1232);
	tb_u32(&b, 1u << 24);
	at = b.n;
	tb_u16(&b, 0);
	tb_u16(&b, 10); /* COOKIE */
	tb_u16(&b, 8);
	tb_bytes(&b, "\1\2\3\4\5\6\7\10", 8);
	tb_rr_end(&b, at);
	assert_int_equal(parse(), 0);
	assert_int_equal(msg.n_rr, 5);
	assert_true(msg.has_opt);
	assert_int_equal(msg.udp_size, 1232);
	assert_int_equal(msg.ext_rcode, 16);
	assert_int_equal(dns_rr_cname_target(&msg, &msg.rr[1], &off), 0);
	assert_text(off, "cdn.example.com");
	assert_int_equal(dns_rr_cname_target(&msg, &msg.rr[2], &off), 0);
	assert_text(off, "edge.cdn.net");
	assert_true(dns_name_equal(&msg, off, msg.rr[3].name_off));
	assert_false(dns_name_equal(&msg, msg.rr[0].name_off, msg.rr[3].name_off));
	assert_int_equal(dns_rr_cname_target(&msg, &msg.rr[3], &off), -EINVAL);
	assert_non_null(dns_rr_addr(&msg, &msg.rr[3], &family));
	assert_int_equal(family, AF_INET6);
	assert_int_equal(msg.rr[4].section, DNS_SEC_ADDITIONAL);
	(void)state;
}

/* A pointer to a pointer to a name, all backwards, is fine. */
static void test_pointer_chain(void **state)
{
	size_t q, p1;

	tb_header(&b, 1, TB_RESPONSE, 1, 2, 0, 0);
	q = tb_question(&b, "a.example", DNS_TYPE_A);
	p1 = b.n;
	tb_addr_rr(&b, q, "10.0.0.1", 5);
	tb_addr_rr(&b, p1, "10.0.0.2", 5);
	assert_int_equal(parse(), 0);
	assert_text(msg.rr[2].name_off, "a.example");
	(void)state;
}

static void test_every_truncation(void **state)
{
	size_t n, cut;

	tb_answer_a(&b, 1, "www.example.com", "10.1.2.3");
	n = b.n;
	for (cut = 0; cut < n; cut++)
		assert_int_equal(dns_parse(b.p, cut, &msg), -EBADMSG);
	/* A trailing byte is refused too. */
	tb_u8(&b, 0);
	assert_int_equal(parse(), -EBADMSG);
	(void)state;
}

static void test_counts(void **state)
{
	size_t i;

	tb_answer_a(&b, 1, "www.example.com", "10.1.2.3");
	tb_set16(&b, 4, 2);
	assert_int_equal(parse(), -EBADMSG);
	tb_set16(&b, 4, 1);
	tb_set16(&b, 6, 0xffff);
	assert_int_equal(parse(), -EBADMSG);
	tb_set16(&b, 6, 1);
	tb_set16(&b, 10, 1);
	assert_int_equal(parse(), -EBADMSG);

	/* More records than we keep, in a message that does hold them. */
	tb_header(&b, 1, TB_RESPONSE, DNS_MAX_RECORDS + 1, 0, 0, 0);
	for (i = 0; i <= DNS_MAX_RECORDS; i++)
		tb_question(&b, "", DNS_TYPE_A);
	assert_int_equal(parse(), -E2BIG);
	tb_set16(&b, 4, DNS_MAX_RECORDS);
	b.n -= 5;
	assert_int_equal(parse(), 0);
	assert_int_equal(msg.n_rr, DNS_MAX_RECORDS);
	assert_text(msg.rr[DNS_MAX_RECORDS - 1].name_off, "");
	(void)state;
}

/* A question whose name the caller writes (then type A, class IN). */
static void question_raw(const uint8_t *name, size_t n)
{
	tb_header(&b, 1, TB_RESPONSE, 1, 0, 0, 0);
	tb_bytes(&b, name, n);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
}

static void test_bad_pointers(void **state)
{
	static const uint8_t self[] = { 0xc0, 12 };
	static const uint8_t loop[] = { 1, 'a', 0xc0, 12 };       /* back to its own start */
	static const uint8_t forward[] = { 0xc0, 14, 0 };
	static const uint8_t outside[] = { 0xc0, 200 };
	static const uint8_t cut[] = { 1, 'a', 0xc0 };
	size_t q, at;

	question_raw(self, sizeof(self));
	assert_int_equal(parse(), -EBADMSG);
	question_raw(loop, sizeof(loop));
	assert_int_equal(parse(), -EBADMSG);
	question_raw(forward, sizeof(forward));
	assert_int_equal(parse(), -EBADMSG);
	question_raw(outside, sizeof(outside));
	assert_int_equal(parse(), -EBADMSG);
	question_raw(cut, sizeof(cut));
	assert_int_equal(parse(), -EBADMSG);

	/* Two names pointing at each other: whichever comes first points forward. */
	tb_header(&b, 1, TB_RESPONSE, 2, 0, 0, 0);
	tb_ptr(&b, 18);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	tb_ptr(&b, 12);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	assert_int_equal(parse(), -EBADMSG);

	/* A name pointing into the middle of an earlier one is fine... */
	tb_header(&b, 1, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(&b, "abc.example", DNS_TYPE_A); /* at 12 */
	tb_labels(&b, "x");
	tb_ptr(&b, q + 4);
	at = tb_rr(&b, DNS_TYPE_A, 1);
	tb_bytes(&b, "\1\2\3\4", 4);
	tb_rr_end(&b, at);
	assert_int_equal(parse(), 0);
	/* ...one that points back into its own labels is a loop. */
	b.p[b.n - 14 - 2 + 1] = (uint8_t)(q + 17);
	assert_int_equal(parse(), -EBADMSG);
	(void)state;
}

/* A pointer into an earlier label's data, where the bytes read as labels end in a pointer
 * back to that same spot: backwards from where it sits, yet a loop. Refused because a jump
 * must land before the start of the run of labels it was read in. */
static void test_loop_inside_label(void **state)
{
	uint8_t name[18];

	name[0] = 16;
	memset(name + 1, 'a', 3);
	name[4] = 10;           /* at 16 */
	memset(name + 5, 'b', 10);
	name[15] = 0xc0;        /* at 27: back to 16 */
	name[16] = 16;
	name[17] = 0;
	tb_header(&b, 1, TB_RESPONSE, 1, 1, 0, 0);
	tb_bytes(&b, name, sizeof(name));
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	assert_int_equal(parse(), -EBADMSG); /* ancount 1, no answer yet */
	tb_addr_rr(&b, 16, "10.0.0.1", 5);
	assert_int_equal(parse(), -EBADMSG);
	tb_set16(&b, 6, 0);
	b.n -= 16;
	assert_int_equal(parse(), 0);
	(void)state;
}

static void test_bad_labels(void **state)
{
	uint8_t name[300];
	size_t i, n = 0;

	/* 0x40 (a "64-byte label") and 0x80 are reserved label types. */
	name[n++] = 0x40;
	memset(name + n, 'a', 64);
	n += 64;
	name[n++] = 0;
	question_raw(name, n);
	assert_int_equal(parse(), -EBADMSG);
	name[0] = 0x80;
	question_raw(name, n);
	assert_int_equal(parse(), -EBADMSG);

	/* 255 bytes on the wire is the most a name may have: 63+63+63+61 and four length bytes
	 * and the root. One more byte is too many. */
	for (n = 0, i = 0; i < 4; i++) {
		size_t len = i < 3 ? 63 : 61;

		name[n++] = (uint8_t)len;
		memset(name + n, 'a' + (int)i, len);
		n += len;
	}
	name[n++] = 0;
	assert_int_equal(n, 255);
	question_raw(name, n);
	assert_int_equal(parse(), 0);
	name[192] = 62;
	name[n - 1] = 'x';
	name[n++] = 0;
	question_raw(name, n);
	assert_int_equal(parse(), -EBADMSG);
	(void)state;
}

/* A name just under the limit, then a pointer to it after two more labels: too long only
 * once put together. */
static void test_long_through_pointer(void **state)
{
	char name[260];
	size_t q;

	memset(name, 'a', 63);
	name[63] = '.';
	memset(name + 64, 'b', 63);
	name[127] = '.';
	memset(name + 128, 'c', 63);
	name[191] = '.';
	memset(name + 192, 'd', 57);
	name[249] = '\0';
	tb_header(&b, 1, TB_RESPONSE, 2, 0, 0, 0);
	q = tb_question(&b, name, DNS_TYPE_A); /* 251 bytes */
	tb_labels(&b, "x");
	tb_ptr(&b, q);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	assert_int_equal(parse(), 0);  /* 253 */
	tb_header(&b, 1, TB_RESPONSE, 2, 0, 0, 0);
	q = tb_question(&b, name, DNS_TYPE_A);
	tb_labels(&b, "xy.z");
	tb_ptr(&b, q);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	assert_int_equal(parse(), -EBADMSG); /* 256 */
	(void)state;
}

static void test_opt_rules(void **state)
{
	size_t q;

	/* Two OPTs. */
	tb_header(&b, 1, TB_RESPONSE, 1, 0, 0, 2);
	tb_question(&b, "example.com", DNS_TYPE_A);
	tb_opt_rr(&b, 1232, 0);
	tb_opt_rr(&b, 1232, 0);
	assert_int_equal(parse(), -EBADMSG);
	/* One: fine. */
	tb_header(&b, 1, TB_RESPONSE, 1, 0, 0, 1);
	tb_question(&b, "example.com", DNS_TYPE_A);
	tb_opt_rr(&b, 4096, 0);
	assert_int_equal(parse(), 0);
	assert_true(msg.has_opt);
	assert_int_equal(msg.udp_size, 4096);
	/* In the answer section. */
	tb_set16(&b, 6, 1);
	tb_set16(&b, 10, 0);
	assert_int_equal(parse(), -EBADMSG);
	/* Owned by a name other than the root. */
	tb_header(&b, 1, TB_RESPONSE, 1, 0, 0, 1);
	q = tb_question(&b, "example.com", DNS_TYPE_A);
	tb_ptr(&b, q);
	tb_u16(&b, DNS_TYPE_OPT);
	tb_u16(&b, 512);
	tb_u32(&b, 0);
	tb_u16(&b, 0);
	assert_int_equal(parse(), -EBADMSG);
	/* An option longer than the rdata. */
	tb_header(&b, 1, TB_RESPONSE, 1, 0, 0, 1);
	tb_question(&b, "example.com", DNS_TYPE_A);
	tb_opt_rr(&b, 1232, 0);
	tb_set16(&b, b.n - 2, 4);
	tb_u16(&b, 10);
	tb_u16(&b, 1);
	assert_int_equal(parse(), -EBADMSG);
	(void)state;
}

static void test_rdata(void **state)
{
	size_t q, at;

	/* rdlength past the end. */
	tb_answer_a(&b, 1, "example.com", "10.0.0.1");
	tb_set16(&b, b.n - 6, 5);
	assert_int_equal(parse(), -EBADMSG);
	/* An A record of 5 bytes is opaque, not an address. */
	tb_u8(&b, 0);
	assert_int_equal(parse(), 0);
	assert_null(dns_rr_addr(&msg, &msg.rr[1], &(int){ 0 }));
	/* A CNAME whose name does not fill its rdata, or overruns it. */
	tb_header(&b, 1, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(&b, "example.com", DNS_TYPE_A);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_CNAME, 5);
	tb_name(&b, "a.example");
	tb_u8(&b, 0);
	tb_rr_end(&b, at);
	assert_int_equal(parse(), -EBADMSG);
	tb_set16(&b, at, (uint16_t)(b.n - at - 2 - 2));
	b.n--;
	assert_int_equal(parse(), -EBADMSG);
	/* A CNAME pointing forward into the next record. */
	tb_header(&b, 1, TB_RESPONSE, 1, 2, 0, 0);
	q = tb_question(&b, "example.com", DNS_TYPE_A);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_CNAME, 5);
	tb_ptr(&b, b.n + 2);
	tb_rr_end(&b, at);
	tb_addr_rr(&b, q, "10.0.0.1", 5);
	assert_int_equal(parse(), -EBADMSG);
	/* Unknown types are opaque. */
	tb_header(&b, 1, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(&b, "example.com", 999);
	tb_ptr(&b, q);
	at = tb_rr(&b, 999, 5);
	tb_bytes(&b, "\xc0\xff\x00", 3);
	tb_rr_end(&b, at);
	assert_int_equal(parse(), 0);
	assert_int_equal(msg.rr[1].rdlen, 3);
	(void)state;
}

static void test_name_text_escapes(void **state)
{
	static const uint8_t name[] = { 8, 'A', '_', 'b', 0, '.', ' ', '\\', 0xff, 3, 'x', '-', '9', 0 };
	char small[8];

	question_raw(name, sizeof(name));
	assert_int_equal(parse(), 0);
	assert_text(12, "a_b\\000\\046\\032\\092\\255.x-9");
	assert_int_equal(dns_name_text(&msg, 12, small, sizeof(small)), -ENOBUFS);
	/* The root. */
	tb_header(&b, 1, TB_RESPONSE, 1, 0, 0, 0);
	tb_question(&b, "", DNS_TYPE_A);
	assert_int_equal(parse(), 0);
	assert_text(12, "");
	(void)state;
}

static void test_normalize(void **state)
{
	char out[DNS_NAME_TEXT_MAX], tiny[4], long_name[300];

	assert_int_equal(dns_name_normalize("Example.COM.", out, sizeof(out)), 0);
	assert_string_equal(out, "example.com");
	assert_int_equal(dns_name_normalize("_sip._tcp.Example", out, sizeof(out)), 0);
	assert_string_equal(out, "_sip._tcp.example");
	assert_int_equal(dns_name_normalize("localhost", out, sizeof(out)), 0);
	assert_string_equal(out, "localhost");
	assert_int_equal(dns_name_normalize("", out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_name_normalize(".", out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_name_normalize("a..b", out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_name_normalize(".a", out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_name_normalize("a.b..", out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_name_normalize("a b", out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_name_normalize("a*.b", out, sizeof(out)), -EINVAL);
	assert_int_equal(dns_name_normalize("example.com", tiny, sizeof(tiny)), -ENOBUFS);
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	assert_int_equal(dns_name_normalize(long_name, out, sizeof(out)), -EINVAL);
	long_name[63] = '\0';
	assert_int_equal(dns_name_normalize(long_name, out, sizeof(out)), 0);
	/* 253 characters is the longest name; 254 is too long (with or without the dot). */
	for (int i = 0; i < 253; i++)
		long_name[i] = i % 50 == 49 ? '.' : 'a';
	long_name[253] = '\0';
	assert_int_equal(dns_name_normalize(long_name, out, sizeof(out)), 0);
	long_name[253] = '.';
	long_name[254] = '\0';
	assert_int_equal(dns_name_normalize(long_name, out, sizeof(out)), 0);
	long_name[253] = 'a';
	assert_int_equal(dns_name_normalize(long_name, out, sizeof(out)), -EINVAL);
	(void)state;
}

static void test_matches(void **state)
{
	assert_true(dns_name_matches("example.com", "example.com"));
	assert_true(dns_name_matches("example.com", "a.example.com"));
	assert_true(dns_name_matches("example.com", "a.b.example.com"));
	assert_false(dns_name_matches("example.com", "badexample.com"));
	assert_false(dns_name_matches("example.com", "example.com.evil"));
	assert_false(dns_name_matches("example.com", "com"));
	assert_false(dns_name_matches("example.com", "xexample.com"));
	assert_true(dns_name_matches("localhost", "localhost"));
	assert_false(dns_name_matches("localhost", "a.localhost"));
	assert_false(dns_name_matches("localhost", "localhost2"));
	assert_false(dns_name_matches("a.example.com", "example.com"));
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_answer),
		cmocka_unit_test(test_cname_chain_edns),
		cmocka_unit_test(test_pointer_chain),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_bad_pointers),
		cmocka_unit_test(test_loop_inside_label),
		cmocka_unit_test(test_bad_labels),
		cmocka_unit_test(test_long_through_pointer),
		cmocka_unit_test(test_opt_rules),
		cmocka_unit_test(test_rdata),
		cmocka_unit_test(test_name_text_escapes),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_matches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
