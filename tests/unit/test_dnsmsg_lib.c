/* libnetext's DNS messages (include/netext/dns.h), through the static library as an
 * extension links it: parsing and every accessor, names in domains, and builders whose
 * output is parsed back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <netext/dns.h>

#include "dns_build.h"

static struct tb b;

/* A response with one record of each kind a provider looks at. */
static void build_rich(void)
{
	size_t q, at, cname;

	tb_header(&b, 0x1234, TB_RESPONSE | TB_AA | 0x0010 /* CD */, 1, 5, 1, 2);
	q = tb_question(&b, "WWW.Example.ORG", NE_DNS_TYPE_A);
	tb_ptr(&b, q);
	at = tb_rr(&b, NE_DNS_TYPE_CNAME, 60);
	cname = tb_labels(&b, "edge");
	tb_ptr(&b, q + 4);
	tb_rr_end(&b, at);
	tb_addr_rr(&b, cname, "192.0.2.1", 30);
	tb_addr_rr(&b, cname, "2001:db8::1", 30);
	tb_ptr(&b, q + 4);
	at = tb_rr(&b, NE_DNS_TYPE_MX, 300);
	tb_u16(&b, 10);
	tb_labels(&b, "mail");
	tb_ptr(&b, q + 4);
	tb_rr_end(&b, at);
	tb_ptr(&b, q + 4);
	at = tb_rr(&b, NE_DNS_TYPE_TXT, 301);
	tb_bytes(&b, "\2hi", 3);
	tb_rr_end(&b, at);
	tb_ptr(&b, q + 4);
	at = tb_rr(&b, NE_DNS_TYPE_NS, 3600);
	tb_labels(&b, "ns1");
	tb_ptr(&b, q + 4);
	tb_rr_end(&b, at);
	tb_labels(&b, "_x._tcp");
	tb_ptr(&b, q + 4);
	at = tb_rr(&b, NE_DNS_TYPE_SRV, 5);
	tb_bytes(&b, "\0\1\0\2\0\3", 6);
	tb_name(&b, "srv.example.org");
	tb_rr_end(&b, at);
	tb_u8(&b, 0);
	tb_u16(&b, NE_DNS_TYPE_OPT);
	tb_u16(&b, 1400);
	tb_u32(&b, 0x01008000); /* extended rcode bits 1, DO */
	tb_u16(&b, 0);
}

static ne_dns_message *parse_ok(const void *p, size_t n)
{
	ne_dns_message *m = NULL;

	assert_int_equal(ne_dns_message_parse(p, n, &m), 0);
	assert_non_null(m);
	return m;
}

static void test_parse_accessors(void **state)
{
	static const uint8_t v4[4] = { 192, 0, 2, 1 };
	struct ne_dns_record r;
	ne_dns_message *m;
	const uint8_t *bytes;
	size_t len;

	build_rich();
	m = parse_ok(b.p, b.n);
	/* The message owns a copy of the bytes. */
	bytes = ne_dns_message_bytes(m, &len);
	assert_int_equal(len, b.n);
	assert_ptr_not_equal(bytes, b.p);
	assert_memory_equal(bytes, b.p, b.n);
	memset(b.p, 0xff, b.n);

	assert_int_equal(ne_dns_message_id(m), 0x1234);
	assert_true(ne_dns_message_is_response(m));
	assert_int_equal(ne_dns_message_flags(m), NE_DNS_FLAG_QR | NE_DNS_FLAG_AA | NE_DNS_FLAG_RD |
						      NE_DNS_FLAG_RA | NE_DNS_FLAG_CD);
	assert_int_equal(ne_dns_message_opcode(m), 0);
	assert_int_equal(ne_dns_message_rcode(m), 16); /* BADVERS: 1 << 4 | 0 */
	assert_int_equal(ne_dns_message_edns_udp_size(m), 1400);
	assert_string_equal(ne_dns_message_qname(m), "www.example.org");
	assert_int_equal(ne_dns_message_qtype(m), NE_DNS_TYPE_A);
	assert_int_equal(ne_dns_message_qclass(m), NE_DNS_CLASS_IN);
	assert_int_equal(ne_dns_message_count(m, NE_DNS_QUESTION), 1);
	assert_int_equal(ne_dns_message_count(m, NE_DNS_ANSWER), 5);
	assert_int_equal(ne_dns_message_count(m, NE_DNS_AUTHORITY), 1);
	assert_int_equal(ne_dns_message_count(m, NE_DNS_ADDITIONAL), 2);
	assert_int_equal(ne_dns_message_count(m, (ne_dns_section)4), 0);

	assert_int_equal(ne_dns_message_record(m, NE_DNS_QUESTION, 0, &r), 0);
	assert_int_equal(r.section, NE_DNS_QUESTION);
	assert_string_equal(r.name, "www.example.org");
	assert_int_equal(r.ttl, 0);
	assert_int_equal(r.rdlen, 0);
	assert_null(r.target);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_QUESTION, 1, &r), -ERANGE);

	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 0, &r), 0);
	assert_int_equal(r.type, NE_DNS_TYPE_CNAME);
	assert_string_equal(r.name, "www.example.org");
	assert_string_equal(r.target, "edge.example.org");
	assert_int_equal(r.ttl, 60);
	assert_int_equal(r.family, 0);
	assert_int_equal(r.rdlen, 7); /* as on the wire: "edge" and a pointer */
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 1, &r), 0);
	assert_string_equal(r.name, "edge.example.org");
	assert_int_equal(r.family, AF_INET);
	assert_memory_equal(r.addr, v4, 4);
	assert_memory_equal(r.rdata, v4, 4);
	assert_null(r.target);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 2, &r), 0);
	assert_int_equal(r.family, AF_INET6);
	assert_int_equal(r.type, NE_DNS_TYPE_AAAA);
	assert_int_equal(r.addr[0], 0x20);
	assert_int_equal(r.addr[15], 1);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 3, &r), 0);
	assert_string_equal(r.target, "mail.example.org");
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 4, &r), 0);
	assert_int_equal(r.type, NE_DNS_TYPE_TXT);
	assert_null(r.target);
	assert_int_equal(r.rdlen, 3);
	assert_memory_equal(r.rdata, "\2hi", 3);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 5, &r), -ERANGE);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_AUTHORITY, 0, &r), 0);
	assert_string_equal(r.name, "example.org");
	assert_string_equal(r.target, "ns1.example.org");
	assert_int_equal(r.section, NE_DNS_AUTHORITY);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ADDITIONAL, 0, &r), 0);
	assert_string_equal(r.name, "_x._tcp.example.org");
	assert_string_equal(r.target, "srv.example.org");
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ADDITIONAL, 1, &r), 0);
	assert_int_equal(r.type, NE_DNS_TYPE_OPT);
	assert_string_equal(r.name, "");
	assert_int_equal(r.rclass, 1400);
	assert_int_equal(ne_dns_message_record(m, (ne_dns_section)7, 0, &r), -EINVAL);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 0, NULL), -EINVAL);
	ne_dns_message_free(m);
	ne_dns_message_free(NULL);
	(void)state;
}

static void test_parse_refused(void **state)
{
	ne_dns_message *m = (ne_dns_message *)&b; /* must stay untouched */
	size_t i;

	build_rich();
	for (i = 0; i < b.n; i++)
		assert_int_equal(ne_dns_message_parse(b.p, i, &m), -EBADMSG);
	assert_ptr_equal(m, (ne_dns_message *)&b);
	tb_u8(&b, 0);
	assert_int_equal(ne_dns_message_parse(b.p, b.n, &m), -EBADMSG);
	assert_int_equal(ne_dns_message_parse(NULL, 12, &m), -EINVAL);
	assert_int_equal(ne_dns_message_parse(b.p, 12, NULL), -EINVAL);
	assert_int_equal(ne_dns_message_parse(b.p, 70000, &m), -EBADMSG);
	tb_header(&b, 1, TB_RESPONSE, 513, 0, 0, 0);
	for (i = 0; i < 513; i++)
		tb_question(&b, "", NE_DNS_TYPE_A);
	assert_int_equal(ne_dns_message_parse(b.p, b.n, &m), -E2BIG);
	/* No question: the accessors say so. */
	tb_header(&b, 1, 0, 0, 0, 0, 0);
	m = parse_ok(b.p, b.n);
	assert_string_equal(ne_dns_message_qname(m), "");
	assert_int_equal(ne_dns_message_qtype(m), 0);
	assert_int_equal(ne_dns_message_qclass(m), 0);
	assert_int_equal(ne_dns_message_edns_udp_size(m), 0);
	assert_false(ne_dns_message_is_response(m));
	ne_dns_message_free(m);
	(void)state;
}

static void test_name_in_domain(void **state)
{
	assert_true(ne_dns_name_in_domain("a.corp.example", "corp.example"));
	assert_true(ne_dns_name_in_domain("corp.example", "corp.example"));
	assert_true(ne_dns_name_in_domain("A.Corp.Example.", "corp.EXAMPLE"));
	assert_true(ne_dns_name_in_domain("x.y.corp.example", "corp.example."));
	assert_true(ne_dns_name_in_domain("anything.at.all", ""));
	assert_true(ne_dns_name_in_domain("", ""));
	assert_true(ne_dns_name_in_domain("anything", "."));
	assert_false(ne_dns_name_in_domain("badcorp.example", "corp.example"));
	assert_false(ne_dns_name_in_domain("example", "corp.example"));
	assert_false(ne_dns_name_in_domain("", "corp.example"));
	assert_false(ne_dns_name_in_domain("corp.example.net", "corp.example"));
	/* One label "a.corp": in "example", not in "corp.example". */
	assert_false(ne_dns_name_in_domain("a\\.corp.example", "corp.example"));
	assert_true(ne_dns_name_in_domain("a\\.corp.example", "example"));
	/* Escapes and case mean the same bytes. */
	assert_true(ne_dns_name_in_domain("a.\\099orp.example", "CORP.example"));
	/* Invalid names are in nothing. */
	assert_false(ne_dns_name_in_domain("a..corp.example", "corp.example"));
	assert_false(ne_dns_name_in_domain("a.corp.example", "corp..example"));
	assert_false(ne_dns_name_in_domain(NULL, ""));
	assert_false(ne_dns_name_in_domain("a", NULL));
	(void)state;
}

static void test_response_builder(void **state)
{
	static const uint8_t v4[4] = { 10, 1, 2, 3 }, v6[16] = { 0xfd, [15] = 9 };
	char text[600];
	struct ne_dns_record r;
	ne_dns_message *q, *a;
	ne_dns_builder *bd;
	size_t len;

	/* A query with EDNS (DO) and 0x20 case. */
	tb_header(&b, 0x5151, TB_RD, 1, 0, 0, 1);
	tb_question(&b, "Ads.Example", NE_DNS_TYPE_A);
	tb_opt_rr(&b, 4096, 0);
	tb_set16(&b, b.n - 4, 0x8000);
	q = parse_ok(b.p, b.n);

	assert_int_equal(ne_dns_builder_new_response(q, NE_DNS_RCODE_NOERROR, &bd), 0);
	assert_int_equal(ne_dns_builder_add_name(bd, NE_DNS_ANSWER, "ads.example", NE_DNS_TYPE_CNAME, 60,
						 "sink.example"), 0);
	assert_int_equal(ne_dns_builder_add_address(bd, NE_DNS_ANSWER, "sink.example", 30, AF_INET, v4), 0);
	assert_int_equal(ne_dns_builder_add_address(bd, NE_DNS_ANSWER, "sink.example", 30, AF_INET6, v6), 0);
	memset(text, 't', 300);
	text[300] = '\0';
	assert_int_equal(ne_dns_builder_add_txt(bd, NE_DNS_ADDITIONAL, "sink.example", 5, text), 0);
	assert_int_equal(ne_dns_builder_add_record(bd, NE_DNS_ADDITIONAL, "sink.example", 65280, 5,
						   "\1\2\3", 3), 0);
	assert_int_equal(ne_dns_builder_finish(bd, &a), 0);

	assert_int_equal(ne_dns_message_id(a), 0x5151);
	assert_int_equal(ne_dns_message_flags(a), NE_DNS_FLAG_QR | NE_DNS_FLAG_RD | NE_DNS_FLAG_RA);
	assert_int_equal(ne_dns_message_rcode(a), 0);
	assert_int_equal(ne_dns_message_edns_udp_size(a), 1232);
	assert_string_equal(ne_dns_message_qname(a), "ads.example");
	assert_memory_equal(ne_dns_message_bytes(a, &len) + 12, "\3Ads\7Example", 12); /* case kept */
	assert_int_equal(ne_dns_message_count(a, NE_DNS_ANSWER), 3);
	assert_int_equal(ne_dns_message_count(a, NE_DNS_ADDITIONAL), 3); /* with the OPT, last */
	assert_int_equal(ne_dns_message_record(a, NE_DNS_ANSWER, 0, &r), 0);
	assert_string_equal(r.target, "sink.example");
	assert_int_equal(r.rdlen, 7); /* "sink" and a pointer to "example" in the question */
	assert_int_equal(ne_dns_message_record(a, NE_DNS_ANSWER, 2, &r), 0);
	assert_int_equal(r.family, AF_INET6);
	assert_memory_equal(r.addr, v6, 16);
	assert_int_equal(ne_dns_message_record(a, NE_DNS_ADDITIONAL, 0, &r), 0);
	assert_int_equal(r.type, NE_DNS_TYPE_TXT);
	assert_int_equal(r.rdlen, 302);
	assert_int_equal(r.rdata[0], 255);
	assert_int_equal(r.rdata[256], 45);
	assert_int_equal(ne_dns_message_record(a, NE_DNS_ADDITIONAL, 1, &r), 0);
	assert_int_equal(r.type, 65280);
	assert_memory_equal(r.rdata, "\1\2\3", 3);
	assert_int_equal(ne_dns_message_record(a, NE_DNS_ADDITIONAL, 2, &r), 0);
	assert_int_equal(r.type, NE_DNS_TYPE_OPT);
	assert_int_equal(r.ttl, 0x8000); /* DO echoed */
	ne_dns_message_free(a);

	/* An extended rcode needs EDNS, which this query has. */
	assert_int_equal(ne_dns_builder_new_response(q, 16, &bd), 0);
	assert_int_equal(ne_dns_builder_set_flags(bd, NE_DNS_FLAG_QR | NE_DNS_FLAG_AA), 0);
	assert_int_equal(ne_dns_builder_set_flags(bd, 0x0040), -EINVAL);
	assert_int_equal(ne_dns_builder_finish(bd, &a), 0);
	assert_int_equal(ne_dns_message_rcode(a), 16);
	assert_int_equal(ne_dns_message_flags(a), NE_DNS_FLAG_QR | NE_DNS_FLAG_AA);
	ne_dns_message_free(a);
	ne_dns_message_free(q);

	/* Without EDNS: none in the answer, and no extended rcode. */
	tb_header(&b, 7, 0, 1, 0, 0, 0);
	tb_question(&b, "x.example", NE_DNS_TYPE_AAAA);
	q = parse_ok(b.p, b.n);
	assert_int_equal(ne_dns_builder_new_response(q, 16, &bd), -EINVAL);
	assert_int_equal(ne_dns_builder_new_response(q, NE_DNS_RCODE_NXDOMAIN, &bd), 0);
	assert_int_equal(ne_dns_builder_set_rcode(bd, 16), -EINVAL);
	assert_int_equal(ne_dns_builder_set_rcode(bd, NE_DNS_RCODE_REFUSED), 0);
	assert_int_equal(ne_dns_builder_finish(bd, &a), 0);
	assert_int_equal(ne_dns_message_rcode(a), NE_DNS_RCODE_REFUSED);
	assert_int_equal(ne_dns_message_edns_udp_size(a), 0);
	assert_int_equal(ne_dns_message_flags(a), NE_DNS_FLAG_QR | NE_DNS_FLAG_RA);
	assert_int_equal(ne_dns_message_qtype(a), NE_DNS_TYPE_AAAA);
	ne_dns_message_free(a);
	ne_dns_message_free(q);
	(void)state;
}

static void test_builder_errors(void **state)
{
	static const uint8_t v4[4] = { 10, 1, 2, 3 };
	ne_dns_message *m = NULL;
	ne_dns_builder *bd;

	/* Sections out of order: the first error is what finish returns. */
	assert_int_equal(ne_dns_builder_new_query(9, "a.example", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_add_address(bd, NE_DNS_AUTHORITY, "a", 1, AF_INET, v4), 0);
	assert_int_equal(ne_dns_builder_add_address(bd, NE_DNS_ANSWER, "a", 1, AF_INET, v4), -EPROTO);
	assert_int_equal(ne_dns_builder_add_address(bd, NE_DNS_ADDITIONAL, "a", 1, 99, v4), -EPROTO);
	assert_int_equal(ne_dns_builder_finish(bd, &m), -EPROTO);
	assert_null(m);

	assert_int_equal(ne_dns_builder_new_query(9, "a.example", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_add_address(bd, NE_DNS_ANSWER, "a", 1, 99, v4), -EAFNOSUPPORT);
	assert_int_equal(ne_dns_builder_finish(bd, &m), -EAFNOSUPPORT);
	assert_int_equal(ne_dns_builder_new_query(9, "a.example", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_add_address(bd, NE_DNS_QUESTION, "a", 1, AF_INET, v4), -EINVAL);
	ne_dns_builder_free(bd);
	assert_int_equal(ne_dns_builder_new_query(9, "a.example", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_add_name(bd, NE_DNS_ANSWER, "a", NE_DNS_TYPE_A, 1, "b"), -EINVAL);
	ne_dns_builder_free(bd);
	assert_int_equal(ne_dns_builder_new_query(9, "a.example", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_add_name(bd, NE_DNS_ANSWER, "a..b", NE_DNS_TYPE_CNAME, 1, "b"),
			 -EINVAL);
	assert_int_equal(ne_dns_builder_finish(bd, NULL), -EINVAL); /* and freed */
	assert_int_equal(ne_dns_builder_new_query(9, "a..example", NE_DNS_TYPE_A, &bd), -EINVAL);
	assert_int_equal(ne_dns_builder_new_query(9, NULL, NE_DNS_TYPE_A, &bd), -EINVAL);
	assert_int_equal(ne_dns_builder_new_response(NULL, 0, &bd), -EINVAL);
	assert_int_equal(ne_dns_builder_finish(NULL, &m), -EINVAL);
	ne_dns_builder_free(NULL);
	/* Opaque rdata that is not what its type says: caught when the result is parsed. */
	assert_int_equal(ne_dns_builder_new_query(9, "a.example", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_add_record(bd, NE_DNS_ANSWER, "a", NE_DNS_TYPE_CNAME, 1, "\5", 1), 0);
	assert_int_equal(ne_dns_builder_finish(bd, &m), -EBADMSG);
	(void)state;
}

/* The buffer grows from its first 512 bytes up to 65535, and no further. */
static void test_builder_growth(void **state)
{
	static char text[1001];
	ne_dns_message *m;
	ne_dns_builder *bd;
	int i, r = 0;

	memset(text, 'z', 1000);
	assert_int_equal(ne_dns_builder_new_query(1, "big.example", NE_DNS_TYPE_TXT, &bd), 0);
	for (i = 0; i < 40; i++)
		assert_int_equal(ne_dns_builder_add_txt(bd, NE_DNS_ANSWER, "big.example", 1, text), 0);
	assert_int_equal(ne_dns_builder_finish(bd, &m), 0);
	assert_int_equal(ne_dns_message_count(m, NE_DNS_ANSWER), 40);
	assert_true(ne_dns_message_bytes(m, &(size_t){ 0 }) != NULL);
	ne_dns_message_free(m);

	assert_int_equal(ne_dns_builder_new_query(1, "big.example", NE_DNS_TYPE_TXT, &bd), 0);
	for (i = 0; i < 100 && r == 0; i++)
		r = ne_dns_builder_add_txt(bd, NE_DNS_ANSWER, "big.example", 1, text);
	assert_int_equal(r, -EMSGSIZE);
	/* 12 + 17 bytes, then records of 2 + 10 + 1004: the 65th does not fit in 65535. */
	assert_int_equal(i, 65);
	assert_int_equal(ne_dns_builder_finish(bd, &m), -EMSGSIZE);
	(void)state;
}

static void test_query_and_copy(void **state)
{
	struct ne_dns_record r;
	ne_dns_message *src, *q, *m;
	ne_dns_builder *bd;
	uint16_t ids[8];
	int i, same = 0;

	for (i = 0; i < 8; i++) {
		assert_int_equal(ne_dns_builder_new_query(0, "Rand.Example.", NE_DNS_TYPE_AAAA, &bd), 0);
		assert_int_equal(ne_dns_builder_finish(bd, &q), 0);
		ids[i] = ne_dns_message_id(q);
		assert_int_not_equal(ids[i], 0);
		same += i > 0 && ids[i] == ids[0];
		assert_int_equal(ne_dns_message_flags(q), NE_DNS_FLAG_RD);
		assert_string_equal(ne_dns_message_qname(q), "rand.example");
		assert_int_equal(ne_dns_message_qtype(q), NE_DNS_TYPE_AAAA);
		assert_int_equal(ne_dns_message_qclass(q), NE_DNS_CLASS_IN);
		ne_dns_message_free(q);
	}
	assert_true(same < 7);

	/* Records copied from a response: names in rdata come out right in the new message. */
	build_rich();
	src = parse_ok(b.p, b.n);
	assert_int_equal(ne_dns_builder_new_query(77, "www.example.org", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_message_count(src, NE_DNS_ANSWER), 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(ne_dns_builder_copy_record(bd, NE_DNS_ANSWER, src, NE_DNS_ANSWER, (size_t)i), 0);
	assert_int_equal(ne_dns_builder_copy_record(bd, NE_DNS_ADDITIONAL, src, NE_DNS_ADDITIONAL, 0), 0);
	assert_int_equal(ne_dns_builder_copy_record(bd, NE_DNS_ADDITIONAL, src, NE_DNS_ADDITIONAL, 1), 0);
	assert_int_equal(ne_dns_builder_finish(bd, &m), 0);
	assert_int_equal(ne_dns_message_id(m), 77);
	assert_int_equal(ne_dns_message_rcode(m), 16); /* the copied OPT carries its bits */
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 0, &r), 0);
	assert_string_equal(r.target, "edge.example.org");
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 3, &r), 0);
	assert_string_equal(r.target, "mail.example.org");
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ADDITIONAL, 0, &r), 0);
	assert_string_equal(r.name, "_x._tcp.example.org");
	assert_string_equal(r.target, "srv.example.org");
	ne_dns_message_free(m);

	/* Past the end; into the question section; an OPT into a builder that writes its own. */
	assert_int_equal(ne_dns_builder_new_query(77, "www.example.org", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_copy_record(bd, NE_DNS_ANSWER, src, NE_DNS_ANSWER, 5), -ERANGE);
	ne_dns_builder_free(bd);
	assert_int_equal(ne_dns_builder_new_query(77, "www.example.org", NE_DNS_TYPE_A, &bd), 0);
	assert_int_equal(ne_dns_builder_copy_record(bd, NE_DNS_QUESTION, src, NE_DNS_ANSWER, 0), -EINVAL);
	ne_dns_builder_free(bd);
	assert_int_equal(ne_dns_builder_new_response(src, 0, &bd), 0);
	assert_int_equal(ne_dns_builder_copy_record(bd, NE_DNS_ADDITIONAL, src, NE_DNS_ADDITIONAL, 1), -EINVAL);
	ne_dns_builder_free(bd);
	ne_dns_message_free(src);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_accessors),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_name_in_domain),
		cmocka_unit_test(test_response_builder),
		cmocka_unit_test(test_builder_errors),
		cmocka_unit_test(test_builder_growth),
		cmocka_unit_test(test_query_and_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
