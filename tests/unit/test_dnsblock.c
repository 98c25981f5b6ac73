/* The dnsblock example: its hash set, its list parser (hosts format, plain names, comments,
 * bad lines counted and skipped), the 100,000-name list of make-list.sh, parent-domain
 * matching, the block answers (they parse, answer the question, and carry the sinkhole
 * address) and CNAME cloaking; through the harness when it drives dns-proxy providers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netext/harness.h>

#define main dnsblock_main
int dnsblock_main(void);
#include "../../examples/dnsblock/dnsblock.c"
#undef main

#include <unistd.h>

static char tmpdir[64];

static const char *write_file(const char *name, const char *text, char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_set(void **state)
{
	struct db_set s = { 0 };
	char name[64];
	unsigned i;

	assert_false(set_contains(&s, "a.example"));
	assert_null(set_match(&s, "a.example"));
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "n%u.example", i);
		assert_int_equal(set_add(&s, name), 0);
	}
	assert_int_equal(set_add(&s, "n17.example"), 1);
	assert_int_equal(s.n, 5000);
	assert_true(s.cap >= 2 * s.n);
	for (i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "n%u.example", i);
		assert_true(set_contains(&s, name));
		snprintf(name, sizeof(name), "m%u.example", i);
		assert_false(set_contains(&s, name));
	}
	set_clear(&s);
	(void)state;
}

static void test_match_parents(void **state)
{
	struct db_set s = { 0 };

	assert_int_equal(set_add(&s, "ads.test"), 0);
	assert_int_equal(set_add(&s, "x.y.example"), 0);
	assert_string_equal(set_match(&s, "ads.test"), "ads.test");
	assert_string_equal(set_match(&s, "sub.ads.test"), "ads.test");
	assert_string_equal(set_match(&s, "a.b.c.ads.test"), "ads.test");
	assert_null(set_match(&s, "badads.test"));
	assert_null(set_match(&s, "test"));
	assert_null(set_match(&s, "ads.test.example"));
	assert_null(set_match(&s, "y.example"));
	assert_string_equal(set_match(&s, "w.x.y.example"), "x.y.example");
	assert_null(set_match(&s, ""));
	set_clear(&s);
	(void)state;
}

static const char list_text[] =
	"# a hosts-file list\n"
	"127.0.0.1 localhost\n"
	"::1 localhost ip6-localhost ip6-loopback\n"
	"255.255.255.255 broadcasthost\n"
	"0.0.0.0 ads.test\n"
	"0.0.0.0   Tracker.Test.   # trailing comment\n"
	"127.0.0.1 a.example b.example\n"
	":: v6.example\n"
	"plain.example\n"
	"\t  indented.example  \n"
	"||adblock.example^\n"
	"*.wild.example\n"
	"! an adblock comment\n"
	"\n"
	"plain.example\n"                 /* a duplicate */
	"bad_line with two words\n"       /* invalid: line 16 */
	"0.0.0.0\n"                       /* invalid: an address alone (17) */
	"0.0.0.0 bad..name\n"             /* invalid (18) */
	"name-with-ü.example\n"           /* invalid (19) */
	"0.0.0.0 ok.example bad!name\n";  /* invalid (20), ok.example still added */

static void test_list_parse(void **state)
{
	struct db_load_stats st;
	struct db_set s = { 0 };
	char path[128], err[256] = "";

	write_file("l.list", list_text, path, sizeof(path));
	assert_int_equal(list_load(path, &s, &st, err, sizeof(err)), 0);
	assert_int_equal(st.lines, 20);
	assert_int_equal(st.invalid, 5);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.first_invalid[0], 16);
	assert_int_equal(st.first_invalid[1], 17);
	assert_int_equal(st.first_invalid[2], 18);
	assert_true(set_contains(&s, "ads.test"));
	assert_true(set_contains(&s, "tracker.test"));
	assert_true(set_contains(&s, "a.example"));
	assert_true(set_contains(&s, "b.example"));
	assert_true(set_contains(&s, "v6.example"));
	assert_true(set_contains(&s, "plain.example"));
	assert_true(set_contains(&s, "indented.example"));
	assert_true(set_contains(&s, "adblock.example"));
	assert_true(set_contains(&s, "wild.example"));
	assert_true(set_contains(&s, "ok.example"));
	assert_false(set_contains(&s, "localhost"));
	assert_false(set_contains(&s, "broadcasthost"));
	assert_false(set_contains(&s, "ip6-localhost"));
	assert_false(set_contains(&s, "bad_line"));
	assert_int_equal(s.n, 10);
	set_clear(&s);
	(void)state;
}

static void test_list_long_line(void **state)
{
	struct db_load_stats st;
	struct db_set s = { 0 };
	char path[128], err[256] = "", *text = malloc(5000);

	assert_non_null(text);
	memset(text, 'a', 3000);
	strcpy(text + 3000, "\nafter.example\n");
	write_file("long.list", text, path, sizeof(path));
	free(text);
	assert_int_equal(list_load(path, &s, &st, err, sizeof(err)), 0);
	assert_int_equal(st.invalid, 1);
	assert_int_equal(st.lines, 2);
	assert_true(set_contains(&s, "after.example"));
	assert_int_equal(s.n, 1);
	set_clear(&s);
	assert_int_equal(list_load("/nonexistent/x.list", &s, &st, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "/nonexistent/x.list: No such file or directory");
	(void)state;
}

/* The list of make-list.sh: 100,000 names, none invalid, the fixed test names present. */
static void test_list_100k(void **state)
{
	struct db_load_stats st;
	struct db_set s = { 0 };
	char path[128], cmd[512], err[256] = "";

	snprintf(path, sizeof(path), "%s/100k.list", tmpdir);
	snprintf(cmd, sizeof(cmd), "sh '%s' 100000 > '%s'", MAKE_LIST, path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(list_load(path, &s, &st, err, sizeof(err)), 0);
	assert_int_equal(s.n, 100000);
	assert_int_equal(st.invalid, 0);
	assert_true(set_contains(&s, "ads.test"));
	assert_true(set_contains(&s, "tracker.test"));
	assert_string_equal(set_match(&s, "sub.ads.test"), "ads.test");
	assert_string_equal(set_match(&s, "metrics.tracker.test"), "metrics.tracker.test");
	assert_null(set_match(&s, "example.org"));
	assert_null(set_match(&s, "web.test"));
	/* Lines of each format in the file: hosts, plain, upper case with a final dot, two a line. */
	assert_true(set_contains(&s, "ads1.hotel-83.invalid"));
	assert_true(set_contains(&s, "count2.victor-53.test"));
	assert_true(set_contains(&s, "cdn7.romeo.example"));
	assert_true(set_contains(&s, "collect7.delta-38.test"));
	assert_true(set_bytes(&s) < 8u * 1024 * 1024);
	set_clear(&s);
	(void)state;
}

/* --- answers --------------------------------------------------------------------------------- */

static ne_dns_message *query(const char *name, uint16_t type)
{
	ne_dns_builder *b;
	ne_dns_message *m;

	assert_int_equal(ne_dns_builder_new_query(0x1234, name, type, &b), 0);
	assert_int_equal(ne_dns_builder_finish(b, &m), 0);
	return m;
}

static void options_db(struct dnsblock *db, const char *const *kv)
{
	/* db_configure reads options through ne_options; these tests set the fields it sets. */
	memset(db, 0, sizeof(*db));
	db->ttl = 60;
	db->cname = true;
	inet_pton(AF_INET, "0.0.0.0", db->sink4);
	inet_pton(AF_INET6, "::", db->sink6);
	for (; kv && kv[0]; kv += 2) {
		if (!strcmp(kv[0], "mode"))
			db->mode = !strcmp(kv[1], "sinkhole") ? DB_SINKHOLE : DB_NXDOMAIN;
		else if (!strcmp(kv[0], "sinkhole4"))
			assert_int_equal(inet_pton(AF_INET, kv[1], db->sink4), 1);
		else if (!strcmp(kv[0], "sinkhole6"))
			assert_int_equal(inet_pton(AF_INET6, kv[1], db->sink6), 1);
		else if (!strcmp(kv[0], "ttl"))
			assert_int_equal(parse_ttl(kv[1], &db->ttl), 0);
	}
}

static void test_answer_nxdomain(void **state)
{
	struct dnsblock db;
	ne_dns_message *q = query("sub.ads.test", NE_DNS_TYPE_A), *a = NULL;

	options_db(&db, NULL);
	assert_int_equal(db_answer(&db, q, &a), 0);
	assert_true(ne_dns_message_is_response(a));
	assert_int_equal(ne_dns_message_id(a), 0x1234);
	assert_int_equal(ne_dns_message_rcode(a), NE_DNS_RCODE_NXDOMAIN);
	assert_string_equal(ne_dns_message_qname(a), "sub.ads.test");
	assert_int_equal(ne_dns_message_qtype(a), NE_DNS_TYPE_A);
	assert_int_equal(ne_dns_message_count(a, NE_DNS_ANSWER), 0);
	assert_int_equal(ne_dns_message_count(a, NE_DNS_AUTHORITY), 0); /* no SOA */
	ne_dns_message_free(a);
	ne_dns_message_free(q);
	(void)state;
}

/* type, expected family (0: no record), expected address text. */
static void expect_sinkhole(struct dnsblock *db, uint16_t type, int family, const char *addr)
{
	ne_dns_message *q = query("ads.test", type), *a = NULL;
	struct ne_dns_record r;
	uint8_t want[16];

	assert_int_equal(db_answer(db, q, &a), 0);
	assert_int_equal(ne_dns_message_rcode(a), NE_DNS_RCODE_NOERROR);
	assert_int_equal(ne_dns_message_qtype(a), type);
	if (!family) {
		assert_int_equal(ne_dns_message_count(a, NE_DNS_ANSWER), 0); /* NODATA */
	} else {
		assert_int_equal(ne_dns_message_count(a, NE_DNS_ANSWER), 1);
		assert_int_equal(ne_dns_message_record(a, NE_DNS_ANSWER, 0, &r), 0);
		assert_string_equal(r.name, "ads.test");
		assert_int_equal(r.type, type);
		assert_int_equal(r.ttl, db->ttl);
		assert_int_equal(r.family, family);
		assert_int_equal(inet_pton(family, addr, want), 1);
		assert_memory_equal(r.addr, want, family == AF_INET ? 4 : 16);
	}
	ne_dns_message_free(a);
	ne_dns_message_free(q);
}

static void test_answer_sinkhole(void **state)
{
	const char *const custom[] = { "mode", "sinkhole", "sinkhole4", "198.18.0.9",
				       "sinkhole6", "fd00::9", "ttl", "5", NULL };
	const char *const dflt[] = { "mode", "sinkhole", NULL };
	struct dnsblock db;

	options_db(&db, dflt);
	expect_sinkhole(&db, NE_DNS_TYPE_A, AF_INET, "0.0.0.0");
	expect_sinkhole(&db, NE_DNS_TYPE_AAAA, AF_INET6, "::");
	expect_sinkhole(&db, NE_DNS_TYPE_TXT, 0, NULL);
	expect_sinkhole(&db, NE_DNS_TYPE_HTTPS, 0, NULL);
	options_db(&db, custom);
	expect_sinkhole(&db, NE_DNS_TYPE_A, AF_INET, "198.18.0.9");
	expect_sinkhole(&db, NE_DNS_TYPE_AAAA, AF_INET6, "fd00::9");
	(void)state;
}

/* An upstream answer: qname CNAME target, target A 192.0.2.1. */
static ne_dns_message *cname_response(const ne_dns_message *q, const char *target)
{
	static const uint8_t addr[4] = { 192, 0, 2, 1 };
	ne_dns_builder *b;
	ne_dns_message *m;

	assert_int_equal(ne_dns_builder_new_response(q, NE_DNS_RCODE_NOERROR, &b), 0);
	assert_int_equal(ne_dns_builder_add_name(b, NE_DNS_ANSWER, ne_dns_message_qname(q),
						 NE_DNS_TYPE_CNAME, 300, target), 0);
	assert_int_equal(ne_dns_builder_add_address(b, NE_DNS_ANSWER, target, 300, AF_INET, addr), 0);
	assert_int_equal(ne_dns_builder_finish(b, &m), 0);
	return m;
}

static void test_cname_cloaking(void **state)
{
	ne_dns_message *q = query("metrics.shop.example", NE_DNS_TYPE_A), *r1, *r2;
	struct dnsblock db;
	const char *listed = NULL;

	options_db(&db, NULL);
	assert_int_equal(set_add(&db.set, "tracker.test"), 0);
	r1 = cname_response(q, "eu.collect.tracker.test");
	r2 = cname_response(q, "cdn.example.net");
	assert_string_equal(cname_listed(&db, r1, &listed), "eu.collect.tracker.test");
	assert_string_equal(listed, "tracker.test");
	assert_null(cname_listed(&db, r2, &listed));
	set_clear(&db.set);
	ne_dns_message_free(r1);
	ne_dns_message_free(r2);
	ne_dns_message_free(q);
	(void)state;
}

#ifdef HAVE_HARNESS_DNS
/* --- the provider through the harness ------------------------------------------------------ */
/* (filled in when the harness drives dns-proxy providers) */
#endif

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-dnsblock.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)state;
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_match_parents),
		cmocka_unit_test(test_list_parse),
		cmocka_unit_test(test_list_long_line),
		cmocka_unit_test(test_list_100k),
		cmocka_unit_test(test_answer_nxdomain),
		cmocka_unit_test(test_answer_sinkhole),
		cmocka_unit_test(test_cname_cloaking),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
