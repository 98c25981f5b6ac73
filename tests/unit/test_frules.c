/* Filter rules (src/daemon/frules.c): compilation checks and NEFilterSettings matching. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "frules.h"

#define V(s) ((struct ne_view){ s, sizeof(s) - 1 })

static struct frule_flow flow4(uint8_t dir, uint8_t proto, const char *local, uint16_t lport,
			       const char *remote, uint16_t rport)
{
	struct frule_flow f = { .direction = dir, .protocol = proto, .family = AF_INET,
				.local_port = lport, .remote_port = rport };

	assert_int_equal(inet_pton(AF_INET, local, f.local), 1);
	assert_int_equal(inet_pton(AF_INET, remote, f.remote), 1);
	return f;
}

static enum frule_action match(const struct ne_wire_rule *w, size_t n, uint8_t def,
			       const struct frule_flow *f, int *ret_rule)
{
	struct frules fr;
	char err[256];
	enum frule_action a;

	assert_int_equal(frules_compile(w, n, def, &fr, err, sizeof(err)), 0);
	a = frules_match(&fr, f, ret_rule);
	frules_clear(&fr);
	return a;
}

static void test_first_match_wins(void **state)
{
	struct ne_wire_rule w[3] = {
		{ .action = 1, .remote_network = V("198.18.1.0/24"), .remote_port = 80 },
		{ .action = 2, .remote_network = V("198.18.0.0/15") },
		{ .action = 3, .protocol = IPPROTO_UDP },
	};
	struct frule_flow f = flow4(1, IPPROTO_TCP, "10.0.0.1", 4000, "198.18.1.9", 80);
	int rule;

	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_ALLOW);
	assert_int_equal(rule, 0);
	f.remote_port = 81;
	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_DROP);
	assert_int_equal(rule, 1);
	f = flow4(1, IPPROTO_UDP, "10.0.0.1", 4000, "203.0.113.1", 53);
	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_ASK);
	f.protocol = IPPROTO_TCP;
	assert_int_equal(match(w, 3, 2, &f, &rule), FRULE_DROP); /* default */
	assert_int_equal(rule, -1);
	(void)state;
}

static void test_direction_and_local(void **state)
{
	struct ne_wire_rule w[1] = { { .action = 3, .direction = 2, .protocol = IPPROTO_TCP, .local_port = 8888 } };
	struct frule_flow f = flow4(2, IPPROTO_TCP, "198.18.1.1", 8888, "198.18.1.2", 50000);
	int rule;

	assert_int_equal(match(w, 1, 1, &f, &rule), FRULE_ASK);
	f.direction = 1;
	assert_int_equal(match(w, 1, 1, &f, &rule), FRULE_ALLOW);
	(void)state;
}

static void test_hostname_semantics(void **state)
{
	struct ne_wire_rule dom[1] = { { .action = 2, .remote_hostname = V("Example.COM.") } };
	struct ne_wire_rule host[1] = { { .action = 2, .remote_hostname = V("printer") } };
	struct frule_flow f = flow4(1, IPPROTO_TCP, "10.0.0.1", 1, "192.0.2.1", 443);
	int rule;

	f.hostname = "example.com";
	assert_int_equal(match(dom, 1, 1, &f, &rule), FRULE_DROP);
	f.hostname = "a.b.example.com";
	assert_int_equal(match(dom, 1, 1, &f, &rule), FRULE_DROP);
	f.hostname = "badexample.com";
	assert_int_equal(match(dom, 1, 1, &f, &rule), FRULE_ALLOW);
	f.hostname = NULL; /* unknown: a hostname rule does not match */
	assert_int_equal(match(dom, 1, 1, &f, &rule), FRULE_ALLOW);
	f.hostname = "printer";
	assert_int_equal(match(host, 1, 1, &f, &rule), FRULE_DROP);
	f.hostname = "x.printer";
	assert_int_equal(match(host, 1, 1, &f, &rule), FRULE_ALLOW);
	(void)state;
}

static void test_process_fields(void **state)
{
	struct ne_wire_rule w[3] = {
		{ .action = 2, .executable = V("/usr/bin/curl") },
		{ .action = 2, .match_uid = true, .uid = 0 },
		{ .action = 3, .cgroup = V("/system.slice/") },
	};
	struct frule_flow f = flow4(1, IPPROTO_TCP, "10.0.0.1", 1, "192.0.2.1", 443);
	int rule;

	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_ALLOW); /* nothing known */
	f.executable = "/usr/bin/curl";
	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_DROP);
	f.executable = "/usr/bin/curl2";
	f.has_uid = true;
	f.uid = 1000;
	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_ALLOW);
	f.uid = 0; /* uid 0 is a real value, not "any" */
	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_DROP);
	f.uid = 5;
	f.cgroup = "/system.slice/foo.service";
	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_ASK);
	f.cgroup = "/system.slicer";
	assert_int_equal(match(w, 3, 1, &f, &rule), FRULE_ALLOW);
	(void)state;
}

static void test_loopback(void **state)
{
	struct ne_wire_rule all[1] = { { .action = 2 } };
	struct ne_wire_rule lo[2] = { { .action = 2, .remote_network = V("127.0.0.0/8"), .remote_port = 25 },
				      { .action = 2 } };
	struct frule_flow f = flow4(1, IPPROTO_TCP, "127.0.0.1", 1, "127.0.0.53", 53);
	int rule;

	/* A catch-all drop does not name loopback: loopback stays allowed. */
	assert_int_equal(match(all, 1, 2, &f, &rule), FRULE_ALLOW);
	assert_int_equal(match(lo, 2, 2, &f, &rule), FRULE_ALLOW);
	f.remote_port = 25;
	assert_int_equal(match(lo, 2, 2, &f, &rule), FRULE_DROP);
	assert_int_equal(rule, 0);
	(void)state;
}

static void test_ipv6(void **state)
{
	struct ne_wire_rule w[1] = { { .action = 2, .remote_network = V("2001:db8::/32") } };
	struct frule_flow f = { .direction = 1, .protocol = IPPROTO_TCP, .family = AF_INET6 };
	int rule;

	inet_pton(AF_INET6, "2001:db8:1::5", f.remote);
	assert_int_equal(match(w, 1, 1, &f, &rule), FRULE_DROP);
	inet_pton(AF_INET6, "2001:db9::5", f.remote);
	assert_int_equal(match(w, 1, 1, &f, &rule), FRULE_ALLOW);
	/* An IPv4 network never matches an IPv6 flow. */
	inet_pton(AF_INET6, "::ffff:198.18.0.1", f.remote);
	w[0].remote_network = V("198.18.0.0/15");
	assert_int_equal(match(w, 1, 1, &f, &rule), FRULE_ALLOW);
	(void)state;
}

static void test_compile_errors(void **state)
{
	static const struct { struct ne_wire_rule w; const char *needle; } bad[] = {
		{ { .action = 0 }, "action" },
		{ { .action = 4 }, "action" },
		{ { .action = 1, .direction = 3 }, "direction" },
		{ { .action = 1, .protocol = 1 }, "protocol" },
		{ { .action = 1, .remote_network = V("10.0.0.0/33") }, "remote_network" },
		{ { .action = 1, .remote_network = V("10.0.0.1/8") }, "remote_network" },
		{ { .action = 1, .local_network = V("nonsense") }, "local_network" },
		{ { .action = 1, .remote_hostname = V("a..b") }, "remote_hostname" },
		{ { .action = 1, .remote_hostname = V("bad host") }, "remote_hostname" },
		{ { .action = 1, .executable = V("curl") }, "absolute" },
		{ { .action = 1, .cgroup = V("/a/../b") }, "absolute" },
	};
	struct ne_wire_rule ok = { .action = 1 };
	struct frules fr;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ne_wire_rule w[2] = { ok, bad[i].w };

		assert_int_equal(frules_compile(w, 2, 1, &fr, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "rule 2"));
		assert_non_null(strstr(err, bad[i].needle));
	}
	assert_int_equal(frules_compile(&ok, 1, 0, &fr, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "default action"));
	(void)state;
}

static void test_parse_net(void **state)
{
	struct frule_net n;
	uint8_t a[16];

	assert_int_equal(frules_parse_net("198.18.0.0/15", &n), 0);
	assert_int_equal(n.prefix, 15);
	inet_pton(AF_INET, "198.19.255.255", a);
	assert_true(frules_net_contains(&n, AF_INET, a));
	inet_pton(AF_INET, "198.20.0.0", a);
	assert_false(frules_net_contains(&n, AF_INET, a));
	assert_int_equal(frules_parse_net("::1", &n), 0);
	assert_int_equal(n.prefix, 128);
	assert_int_equal(frules_parse_net("10.0.0.0/", &n), -EINVAL);
	assert_int_equal(frules_parse_net("10.0.0.0/-1", &n), -EINVAL);
	assert_int_equal(frules_parse_net("", &n), -EINVAL);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_match_wins),
		cmocka_unit_test(test_direction_and_local),
		cmocka_unit_test(test_hostname_semantics),
		cmocka_unit_test(test_process_fields),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_parse_net),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
