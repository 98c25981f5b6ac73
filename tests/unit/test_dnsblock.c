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

/* --- the provider through the harness ------------------------------------------------------ */

struct fixture {
	ne_extension *ext;
	ne_harness *h;
	char list[128];
};

static const char harness_list[] = "0.0.0.0 ads.test\ntracker.test\nbad line here\n";

static int fixture_up(struct fixture *fx, const char *const *extra)
{
	const char *opts[16];
	size_t n = 0;
	int err = 1;

	/* The extra options first: they may name another list. */
	write_file("h.list", harness_list, fx->list, sizeof(fx->list));
	for (; extra && *extra && n < 12; extra++)
		opts[n++] = *extra;
	opts[n++] = "list";
	opts[n++] = fx->list;
	opts[n] = NULL;
	assert_int_equal(ne_extension_new(&fx->ext), 0);
	assert_int_equal(ne_extension_register_dns_proxy(fx->ext, &dnsblock_ops, &dnsblock_dns_ops, NULL), 0);
	assert_int_equal(ne_harness_new(fx->ext, &fx->h), 0);
	assert_int_equal(ne_harness_start(fx->h, "db", NE_PROVIDER_DNS_PROXY, opts, &err), 0);
	return err;
}

static void fixture_down(struct fixture *fx)
{
	ne_harness_free(fx->h);
	ne_extension_free(fx->ext);
}

/* Shows the query to the provider: its verdict in *v, the query's id in *ret_id. */
static void show(struct fixture *fx, const ne_dns_message *q, uint64_t *ret_id, ne_dns_verdict *v)
{
	struct ne_harness_flow f = { .size = sizeof(f), .executable = "/usr/bin/dig", .pid = 7 };
	const uint8_t *bytes;
	size_t len;

	bytes = ne_dns_message_bytes(q, &len);
	assert_int_equal(ne_harness_dns_query(fx->h, "db", &f, bytes, len, ret_id, v), 0);
}

/* The answer of an ANSWER verdict (or a REWRITE), parsed. */
static ne_dns_message *parse_answer(const void *bytes, size_t len)
{
	ne_dns_message *a;

	assert_non_null(bytes);
	assert_int_equal(ne_dns_message_parse(bytes, len, &a), 0);
	return a;
}

static void reply(struct fixture *fx, const char *msg, char *buf, size_t cap)
{
	size_t len = 0;
	int err = 1;

	assert_int_equal(ne_harness_message(fx->h, "db", msg, strlen(msg), &err, buf, cap - 1, &len), 0);
	assert_int_equal(err, 0);
	buf[len] = '\0';
}

static void test_provider_nxdomain(void **state)
{
	ne_dns_message *q1 = query("sub.ads.test", NE_DNS_TYPE_A), *q2 = query("example.org", NE_DNS_TYPE_A);
	ne_dns_message *a, *r;
	ne_dns_response_verdict rv;
	struct fixture fx;
	ne_dns_verdict v;
	bool raw = true, responses = false;
	const uint8_t *rb;
	uint64_t id;
	size_t rlen;
	char buf[512];

	assert_int_equal(fixture_up(&fx, NULL), 0);
	assert_int_equal(ne_harness_dns_settings(fx.h, "db", &raw, &responses), 0);
	assert_false(raw);
	assert_true(responses);
	show(&fx, q1, &id, &v);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	a = parse_answer(v.bytes, v.len);
	assert_int_equal(ne_dns_message_rcode(a), NE_DNS_RCODE_NXDOMAIN);
	assert_string_equal(ne_dns_message_qname(a), "sub.ads.test");
	ne_dns_message_free(a);
	show(&fx, q2, &id, &v);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	assert_true(!v.target || !v.target[0]);
	/* Its upstream answer: a CNAME to a listed name is replaced by the block answer. */
	r = cname_response(q2, "eu.tracker.test");
	rb = ne_dns_message_bytes(r, &rlen);
	assert_int_equal(ne_harness_dns_response(fx.h, "db", id, rb, rlen, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_REWRITE);
	a = parse_answer(rv.bytes, rv.len);
	assert_int_equal(ne_dns_message_rcode(a), NE_DNS_RCODE_NXDOMAIN);
	assert_string_equal(ne_dns_message_qname(a), "example.org");
	ne_dns_message_free(a);
	ne_dns_message_free(r);
	/* Any other answer passes. */
	show(&fx, q2, &id, &v);
	r = cname_response(q2, "cdn.example.net");
	rb = ne_dns_message_bytes(r, &rlen);
	assert_int_equal(ne_harness_dns_response(fx.h, "db", id, rb, rlen, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_PASS);
	ne_dns_message_free(r);

	reply(&fx, "check a.b.tracker.test", buf, sizeof(buf));
	assert_string_equal(buf, "blocked by tracker.test");
	reply(&fx, "check example.org", buf, sizeof(buf));
	assert_string_equal(buf, "not listed");
	reply(&fx, "stats", buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"listed\":2,\"blocked\":1,\"cname_blocked\":1,\"passed\":2,"));
	assert_non_null(strstr(buf, "\"lines\":3,\"invalid\":1,\"duplicates\":0,"));
	assert_non_null(strstr(buf, "\"mode\":\"nxdomain\"}"));
	/* Reload: the new list replaces the old one; one that cannot be read keeps it. */
	write_file("h.list", "example.org\n", buf, sizeof(buf));
	reply(&fx, "reload", buf, sizeof(buf));
	assert_true(strncmp(buf, "ok: 1 names, 0 invalid lines, ", 30) == 0);
	show(&fx, q2, &id, &v);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	show(&fx, q1, &id, &v);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	unlink(fx.list);
	reply(&fx, "reload", buf, sizeof(buf));
	assert_non_null(strstr(buf, "error: "));
	assert_non_null(strstr(buf, "No such file or directory"));
	show(&fx, q2, &id, &v);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	assert_int_equal(ne_harness_stop(fx.h, "db", NE_STOP_REASON_USER_INITIATED), 0);
	fixture_down(&fx);
	ne_dns_message_free(q1);
	ne_dns_message_free(q2);
	(void)state;
}

static void test_provider_sinkhole(void **state)
{
	const char *const opts[] = { "mode", "sinkhole", "sinkhole4", "198.18.0.7", "ttl", "9",
				     "cname", "off", NULL };
	ne_dns_message *q4 = query("ads.test", NE_DNS_TYPE_A), *q6 = query("x.ads.test", NE_DNS_TYPE_AAAA);
	ne_dns_message *a, *r;
	ne_dns_response_verdict rv;
	struct ne_dns_record rec;
	struct fixture fx;
	ne_dns_verdict v;
	const uint8_t *rb;
	uint64_t id;
	size_t rlen;

	assert_int_equal(fixture_up(&fx, opts), 0);
	show(&fx, q4, &id, &v);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	a = parse_answer(v.bytes, v.len);
	assert_int_equal(ne_dns_message_rcode(a), NE_DNS_RCODE_NOERROR);
	assert_int_equal(ne_dns_message_record(a, NE_DNS_ANSWER, 0, &rec), 0);
	assert_int_equal(rec.family, AF_INET);
	assert_int_equal(rec.ttl, 9);
	assert_memory_equal(rec.addr, ((uint8_t[]){ 198, 18, 0, 7 }), 4);
	ne_dns_message_free(a);
	show(&fx, q6, &id, &v);
	a = parse_answer(v.bytes, v.len);
	assert_int_equal(ne_dns_message_record(a, NE_DNS_ANSWER, 0, &rec), 0);
	assert_int_equal(rec.family, AF_INET6);
	assert_memory_equal(rec.addr, ((uint8_t[16]){ 0 }), 16);
	ne_dns_message_free(a);
	/* cname=off: answers pass. */
	ne_dns_message_free(q4);
	q4 = query("shop.example", NE_DNS_TYPE_A);
	show(&fx, q4, &id, &v);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	r = cname_response(q4, "tracker.test");
	rb = ne_dns_message_bytes(r, &rlen);
	assert_int_equal(ne_harness_dns_response(fx.h, "db", id, rb, rlen, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_PASS);
	ne_dns_message_free(r);
	assert_int_equal(ne_harness_stop(fx.h, "db", NE_STOP_REASON_USER_INITIATED), 0);
	fixture_down(&fx);
	ne_dns_message_free(q4);
	ne_dns_message_free(q6);
	(void)state;
}

static void test_provider_bad_options(void **state)
{
	const char *const bad[][3] = {
		{ "mode", "block", NULL }, { "sinkhole4", "::1", NULL }, { "sinkhole6", "1.2.3.4", NULL },
		{ "ttl", "86401", NULL }, { "ttl", "-1", NULL }, { "cname", "yes", NULL },
		{ "list", "/nonexistent/block.list", NULL },
	};
	struct fixture fx;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = fixture_up(&fx, bad[i]);

		if (err == 0)
			fail_msg("started with %s=%s", bad[i][0], bad[i][1]);
		fixture_down(&fx);
	}
	(void)state;
}

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
		cmocka_unit_test(test_provider_nxdomain),
		cmocka_unit_test(test_provider_sinkhole),
		cmocka_unit_test(test_provider_bad_options),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
