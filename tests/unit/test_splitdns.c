/* The splitdns example: its rule file (parse errors name the line), its decisions (longest
 * suffix, exemptions, per-app rules, servers in turn) and, through the harness, the provider
 * as netextd drives it: verdicts, start errors, reload and stats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netext/harness.h>

#define main splitdns_main
int splitdns_main(void);
#include "../../examples/splitdns/splitdns.c"
#undef main

#include <unistd.h>

static char tmpdir[64];

/* Writes text to a file in tmpdir and returns its path (static buffer per call site). */
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

static const char sample[] =
	"# Company names go to the company's resolvers; everything else to the system resolver.\n"
	"route corp.example      10.0.0.53 10.0.0.54\n"
	"route 10.in-addr.arpa   10.0.0.53\n"
	"exempt www.corp.example         # public site: system resolver\n"
	"app /usr/bin/ssh        10.0.0.53   # optional: per-app (by executable) override\n"
	"\n"
	"route Eng.Corp.Example. [fd00::53]:5353\n"
	"app /usr/bin/firefox system\n"
	"route lab.corp.example 10.0.9.9:5353 fd00::99\n";

static void load_ok(const char *text, struct sd_rules *rs)
{
	char path[128], err[512] = "";

	write_file("ok.conf", text, path, sizeof(path));
	if (rules_load(path, rs, err, sizeof(err)) < 0)
		fail_msg("rules_load: %s", err);
}

static void test_parse_sample(void **state)
{
	struct sd_rules rs = { 0 };

	load_ok(sample, &rs);
	assert_int_equal(rs.n, 7);
	assert_int_equal(count_kind(&rs, SD_ROUTE), 4);
	assert_int_equal(count_kind(&rs, SD_EXEMPT), 1);
	assert_int_equal(count_kind(&rs, SD_APP), 2);
	assert_string_equal(rs.v[0].match, "corp.example");
	assert_int_equal(rs.v[0].n_servers, 2);
	assert_string_equal(rs.v[0].servers[1], "10.0.0.54");
	assert_int_equal(rs.v[0].line, 2);
	assert_string_equal(rs.v[4].match, "eng.corp.example"); /* normalized */
	assert_string_equal(rs.v[4].servers[0], "[fd00::53]:5353");
	assert_int_equal(rs.v[4].line, 7);
	assert_int_equal(rs.v[5].n_servers, 0); /* app ... system */
	rules_clear(&rs);
	(void)state;
}

/* The shipped sample file parses. */
static void test_parse_shipped_sample(void **state)
{
	struct sd_rules rs = { 0 };
	char err[512] = "";

	if (rules_load(SPLITDNS_SAMPLE, &rs, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_true(rs.n >= 4);
	assert_non_null(rules_find(&rs, "corp.example", false));
	rules_clear(&rs);
	(void)state;
}

static void expect_error(const char *text, const char *want)
{
	struct sd_rules rs = { 0 };
	char path[128], err[512] = "";

	write_file("bad.conf", text, path, sizeof(path));
	assert_true(rules_load(path, &rs, err, sizeof(err)) < 0);
	if (!strstr(err, want))
		fail_msg("error \"%s\" does not contain \"%s\"", err, want);
	assert_int_equal(rs.n, 0);
	assert_null(rs.v);
}

static void test_parse_errors(void **state)
{
	expect_error("route corp.example 10.0.0.53\nroute x.example 10.0.0.300\n",
		     "bad.conf:2: '10.0.0.300' is not a server");
	expect_error("# c\n\nforward corp.example 10.0.0.53\n", "bad.conf:3: a rule begins with");
	expect_error("route corp.example\n", "bad.conf:1: route needs at least one server");
	expect_error("route\n", "bad.conf:1: route needs a domain");
	expect_error("exempt www.corp.example 10.0.0.53\n", "bad.conf:1: exempt takes no servers");
	expect_error("app ssh 10.0.0.53\n", "bad.conf:1: 'ssh' is not an absolute path");
	expect_error("app /usr/bin/ssh\n", "bad.conf:1: app needs at least one server or 'system'");
	expect_error("route corp..example 10.0.0.53\n", "bad.conf:1: 'corp..example' is not a domain");
	expect_error("route corp.example 10.0.0.53\nexempt CORP.example.\n",
		     "bad.conf:2: corp.example has a rule already");
	expect_error("route a.example 1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5\n",
		     "bad.conf:1: more than 4 servers");
	expect_error("route a.example 10.0.0.53:0\n", "is not a server");
	expect_error("route a.example 10.0.0.53:70000\n", "is not a server");
	expect_error("route a.example [fd00::1]\n", "is not a server");
	expect_error("route a.example [10.0.0.1]:53\n", "is not a server");
	(void)state;
}

static void test_missing_file(void **state)
{
	struct sd_rules rs = { 0 };
	char err[512] = "";

	assert_int_equal(rules_load("/nonexistent/splitdns.conf", &rs, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "/nonexistent/splitdns.conf: No such file or directory");
	(void)state;
}

static void expect(struct sd_rules *rs, const char *qname, const char *exe, enum sd_via via,
		   const char *server)
{
	struct sd_decision d = sd_decide(rs, qname, exe);

	if (d.via != via)
		fail_msg("%s from %s: via %d, want %d", qname, exe ? exe : "-", d.via, via);
	if (server)
		assert_string_equal(d.server, server);
	else
		assert_null(d.server);
}

static void test_decide(void **state)
{
	struct sd_rules rs = { 0 };

	load_ok(sample, &rs);
	/* Servers of a route in turn. */
	expect(&rs, "corp.example", NULL, SD_VIA_ROUTE, "10.0.0.53");
	expect(&rs, "a.corp.example", "/usr/bin/curl", SD_VIA_ROUTE, "10.0.0.54");
	expect(&rs, "b.a.corp.example", NULL, SD_VIA_ROUTE, "10.0.0.53");
	/* Not below the suffix. */
	expect(&rs, "badcorp.example", NULL, SD_VIA_SYSTEM, NULL);
	expect(&rs, "example", NULL, SD_VIA_SYSTEM, NULL);
	expect(&rs, "example.org", "/usr/bin/curl", SD_VIA_SYSTEM, NULL);
	expect(&rs, "", NULL, SD_VIA_SYSTEM, NULL);
	/* Exemptions and longer suffixes win over shorter ones. */
	expect(&rs, "www.corp.example", NULL, SD_VIA_EXEMPT, NULL);
	expect(&rs, "img.www.corp.example", NULL, SD_VIA_EXEMPT, NULL);
	expect(&rs, "wiki.eng.corp.example", NULL, SD_VIA_ROUTE, "[fd00::53]:5353");
	expect(&rs, "eng.corp.example", NULL, SD_VIA_ROUTE, "[fd00::53]:5353");
	expect(&rs, "x.lab.corp.example", NULL, SD_VIA_ROUTE, "10.0.9.9:5353");
	expect(&rs, "x.lab.corp.example", NULL, SD_VIA_ROUTE, "fd00::99");
	expect(&rs, "4.3.2.10.in-addr.arpa", NULL, SD_VIA_ROUTE, "10.0.0.53");
	expect(&rs, "4.3.2.11.in-addr.arpa", NULL, SD_VIA_SYSTEM, NULL);
	/* Per-app rules come first, for any name, and only for the exact executable. */
	expect(&rs, "example.org", "/usr/bin/ssh", SD_VIA_APP, "10.0.0.53");
	expect(&rs, "www.corp.example", "/usr/bin/ssh", SD_VIA_APP, "10.0.0.53");
	expect(&rs, "corp.example", "/usr/bin/firefox", SD_VIA_APP, NULL);
	expect(&rs, "corp.example", "/usr/bin/ssh2", SD_VIA_ROUTE, "10.0.0.54");
	/* Hits per rule. */
	assert_int_equal(rules_find(&rs, "corp.example", false)->hits, 4);
	assert_int_equal(rules_find(&rs, "/usr/bin/ssh", true)->hits, 2);
	rules_clear(&rs);
	(void)state;
}

static void test_check_server(void **state)
{
	assert_int_equal(check_server("10.0.0.53"), 0);
	assert_int_equal(check_server("10.0.0.53:5353"), 0);
	assert_int_equal(check_server("fd00::53"), 0);
	assert_int_equal(check_server("[fd00::53]:53"), 0);
	assert_int_equal(check_server("corp.example"), -EINVAL);
	assert_int_equal(check_server("10.0.0.53:"), -EINVAL);
	assert_int_equal(check_server("10.0.0.53:5x"), -EINVAL);
	assert_int_equal(check_server("[fd00::53]:"), -EINVAL);
	assert_int_equal(check_server(""), -EINVAL);
	(void)state;
}

/* --- the provider through the harness ------------------------------------------------------ */

struct fixture {
	ne_extension *ext;
	ne_harness *h;
};

static void fixture_up(struct fixture *fx, const char *config_path, int want_err)
{
	const char *const opts[] = { "config", config_path, NULL };
	int err = 1;

	assert_int_equal(ne_extension_new(&fx->ext), 0);
	assert_int_equal(ne_extension_register_dns_proxy(fx->ext, &splitdns_ops, &splitdns_dns_ops, NULL), 0);
	assert_int_equal(ne_harness_new(fx->ext, &fx->h), 0);
	assert_int_equal(ne_harness_start(fx->h, "sd", NE_PROVIDER_DNS_PROXY, opts, &err), 0);
	assert_int_equal(err, want_err);
}

static void fixture_down(struct fixture *fx)
{
	ne_harness_free(fx->h);
	ne_extension_free(fx->ext);
}

/* A query for name (type A) from exe (NULL: process unknown); checks the forward target. */
static void ask(struct fixture *fx, const char *name, const char *exe, const char *want_target)
{
	struct ne_harness_flow f = { .size = sizeof(f), .executable = exe, .pid = 42 };
	const uint8_t *bytes;
	ne_dns_builder *b;
	ne_dns_message *m;
	ne_dns_verdict v;
	uint64_t id;
	size_t len;

	assert_int_equal(ne_dns_builder_new_query(0, name, NE_DNS_TYPE_A, &b), 0);
	assert_int_equal(ne_dns_builder_finish(b, &m), 0);
	bytes = ne_dns_message_bytes(m, &len);
	assert_int_equal(ne_harness_dns_query(fx->h, "sd", exe ? &f : NULL, bytes, len, &id, &v), 0);
	ne_dns_message_free(m);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	if (want_target)
		assert_string_equal(v.target, want_target);
	else
		assert_true(!v.target || v.target[0] == '\0');
}

static void message(struct fixture *fx, const char *msg, char *buf, size_t cap)
{
	size_t len = 0;
	int err = 1;

	assert_int_equal(ne_harness_message(fx->h, "sd", msg, strlen(msg), &err, buf, cap - 1, &len), 0);
	assert_int_equal(err, 0);
	buf[len] = '\0';
}

static void test_provider(void **state)
{
	char path[128], buf[1024];
	struct fixture fx;
	size_t i;
	bool logged = false;

	write_file("p.conf", sample, path, sizeof(path));
	fixture_up(&fx, path, 0);
	ask(&fx, "host.corp.example", NULL, "10.0.0.53");
	ask(&fx, "www.corp.example", NULL, NULL);
	ask(&fx, "example.org", NULL, NULL);
	ask(&fx, "example.org", "/usr/bin/ssh", "10.0.0.53");
	message(&fx, "stats", buf, sizeof(buf));
	assert_string_equal(buf, "{\"queries\":4,\"app\":1,\"route\":1,\"exempt\":1,\"system\":1,"
				 "\"rules\":7,\"reloads\":0}");
	for (i = 0; ne_harness_log_line(fx.h, i); i++)
		logged |= strstr(ne_harness_log_line(fx.h, i), "host.corp.example A from ?[-1]: "
							       "route corp.example (line 2) -> 10.0.0.53") != NULL;
	if (!logged)
		for (i = 0; ne_harness_log_line(fx.h, i); i++)
			print_message("log: %s\n", ne_harness_log_line(fx.h, i));
	assert_true(logged);

	/* Reload: a bad file keeps the rules, a good one replaces them. */
	write_file("p.conf", "route corp.example 10.0.0.53\nroute bad\n", path, sizeof(path));
	message(&fx, "reload", buf, sizeof(buf));
	assert_non_null(strstr(buf, "error: "));
	assert_non_null(strstr(buf, "p.conf:2: route needs at least one server"));
	ask(&fx, "www.corp.example", NULL, NULL);
	write_file("p.conf", "route corp.example 10.1.1.1\n", path, sizeof(path));
	message(&fx, "reload", buf, sizeof(buf));
	assert_true(strncmp(buf, "ok: 1 rules from /", 18) == 0);
	ask(&fx, "www.corp.example", NULL, "10.1.1.1");
	message(&fx, "rules", buf, sizeof(buf));
	assert_string_equal(buf, "route corp.example 10.1.1.1  # line 1, 1 queries");
	assert_int_equal(ne_harness_stop(fx.h, "sd", NE_STOP_REASON_USER_INITIATED), 0);
	fixture_down(&fx);
	(void)state;
}

static void test_provider_bad_file(void **state)
{
	char path[128];
	struct fixture fx;

	write_file("b.conf", "route corp.example 10.0.0.53\n\nexempt\n", path, sizeof(path));
	fixture_up(&fx, path, -EINVAL);
	fixture_down(&fx);
	(void)state;
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-splitdns.XXXXXX");
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
		cmocka_unit_test(test_parse_sample),
		cmocka_unit_test(test_parse_shipped_sample),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_check_server),
		cmocka_unit_test(test_provider),
		cmocka_unit_test(test_provider_bad_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
