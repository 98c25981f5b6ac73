/* dp_route against the kernel, in a private network namespace (unshare(CLONE_NEWNET), so
 * nothing outside this process changes): the DNS proxy's fwmark rule and local default route
 * in both families, idempotent adds and deletes, and a flush that removes only what points
 * at its table. What the kernel holds is read back with `ip` (iproute2). Skipped without
 * root or without permission for a new namespace. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp_route.h"

#define TABLE 7153u
#define MARK 0x00400000u

static bool have_netns;
static struct dp_route *rt;

static int lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return r;
}

/* The output of an iproute2 command (in this process's namespace). */
static char *run(const char *cmd)
{
	static char out[16384];
	size_t n = 0, k;
	FILE *f = popen(cmd, "r");

	assert_non_null(f);
	while ((k = fread(out + n, 1, sizeof(out) - 1 - n, f)) > 0)
		n += k;
	out[n] = '\0';
	assert_int_equal(pclose(f), 0);
	return out;
}

static bool has(const char *cmd, const char *needle)
{
	return strstr(run(cmd), needle) != NULL;
}

#define RULE4 "ip -4 rule show"
#define RULE6 "ip -6 rule show"
#define ROUTE4 "ip -4 route show table all"
#define ROUTE6 "ip -6 route show table all"

static void add_all(void)
{
	assert_int_equal(dp_route_fwmark_rule(rt, true, AF_INET, MARK, MARK, TABLE, TABLE), 0);
	assert_int_equal(dp_route_fwmark_rule(rt, true, AF_INET6, MARK, MARK, TABLE, TABLE), 0);
	assert_int_equal(dp_route_local_default(rt, true, AF_INET, TABLE), 0);
	assert_int_equal(dp_route_local_default(rt, true, AF_INET6, TABLE), 0);
}

static void check_present(bool present)
{
	assert_int_equal(has(RULE4, "7153:\tfrom all fwmark 0x400000/0x400000 lookup 7153"), present);
	assert_int_equal(has(RULE6, "7153:\tfrom all fwmark 0x400000/0x400000 lookup 7153"), present);
	assert_int_equal(has(ROUTE4, "local default dev lo table 7153"), present);
	assert_int_equal(has(ROUTE6, "local default dev lo table 7153"), present);
}

static void test_add_del(void **state)
{
	if (!have_netns)
		skip();
	check_present(false);
	add_all();
	check_present(true);
	/* Adding what exists is a success, and adds nothing. */
	add_all();
	assert_null(strstr(strstr(run(RULE4), "lookup 7153") + 1, "lookup 7153"));
	assert_int_equal(dp_route_fwmark_rule(rt, false, AF_INET, MARK, MARK, TABLE, TABLE), 0);
	assert_int_equal(dp_route_fwmark_rule(rt, false, AF_INET6, MARK, MARK, TABLE, TABLE), 0);
	assert_int_equal(dp_route_local_default(rt, false, AF_INET, TABLE), 0);
	assert_int_equal(dp_route_local_default(rt, false, AF_INET6, TABLE), 0);
	check_present(false);
	/* Deleting what is gone too. */
	assert_int_equal(dp_route_fwmark_rule(rt, false, AF_INET, MARK, MARK, TABLE, TABLE), 0);
	assert_int_equal(dp_route_local_default(rt, false, AF_INET6, TABLE), 0);
}

/* A killed daemon's leftovers (made here by dp_route and by `ip`, as an admin could) go;
 * rules and routes of other tables stay. */
static void test_flush(void **state)
{
	if (!have_netns)
		skip();
	add_all();
	run("ip -4 rule add fwmark 0x10 lookup 7153 priority 7000 && "
	    "ip -6 rule add from fd00::/64 lookup 7153 priority 7001 && "
	    "ip -4 route add 198.18.0.0/24 dev lo table 7153 && "
	    "ip -4 rule add fwmark 0x20 lookup 100 priority 7002 && "
	    "ip -4 route add local default dev lo table 100");
	assert_true(has(RULE4, "lookup 7153"));
	assert_int_equal(dp_route_flush_table(rt, TABLE), 0);
	check_present(false);
	assert_false(has(RULE4, "lookup 7153"));
	assert_false(has(RULE6, "lookup 7153"));
	assert_false(has(ROUTE4, "table 7153"));
	assert_false(has(ROUTE6, "table 7153"));
	assert_true(has(RULE4, "fwmark 0x20 lookup 100"));
	assert_true(has(ROUTE4, "local default dev lo table 100"));
	/* Flushing an empty table is fine; the main and local tables are untouched. */
	assert_int_equal(dp_route_flush_table(rt, TABLE), 0);
	assert_true(has(RULE4, "lookup main"));
	assert_true(has(ROUTE4, "local 127.0.0.1 dev lo table local"));
	run("ip -4 rule del fwmark 0x20 lookup 100 priority 7002 && ip -4 route flush table 100");
}

/* A table above 255 and one below both work (rtm_table holds only 8 bits). */
static void test_small_table(void **state)
{
	if (!have_netns)
		skip();
	assert_int_equal(dp_route_fwmark_rule(rt, true, AF_INET, MARK, MARK, 200, 200), 0);
	assert_int_equal(dp_route_local_default(rt, true, AF_INET6, 200), 0);
	assert_true(has(RULE4, "200:\tfrom all fwmark 0x400000/0x400000 lookup 200"));
	assert_true(has(ROUTE6, "local default dev lo table 200"));
	assert_int_equal(dp_route_flush_table(rt, 200), 0);
	assert_false(has(RULE4, "lookup 200"));
	assert_false(has(ROUTE6, "table 200"));
}

/* Packet tunnels: inverted rules with suppress_prefixlength, routes via a device and throw
 * routes in a tunnel table, addresses (IPv6 without DAD), link settings, connected networks,
 * statistics, and a flush of more routes than one dump pass holds. */
static void test_tunnel(void **state)
{
	struct dp_rule_spec spec = { 0x04000000, 0x04000000, true, 0, 7160, 7160 };
	struct dp_rule_spec def = { 0x04000000, 0x04000000, true, -1, 7160, 7180 };
	struct dp_prefix p, conn[16];
	struct dp_link_stats st;
	unsigned dummy;
	size_t n, i;
	char cmd[128];

	if (!have_netns)
		skip();
	run("ip link add nxt0 type veth peer name nxt1 && "
	    "ip addr add 198.18.9.1/24 dev nxt1 && ip link set nxt1 up");
	dummy = if_nametoindex("nxt0");
	assert_true(dummy > 0);
	assert_int_equal(dp_route_link_set(rt, dummy, 0, true, false), 0);
	assert_int_equal(dp_route_link_set(rt, dummy, 1400, false, true), 0);
	assert_true(has("ip link show nxt0", "mtu 1400"));
	assert_int_equal(dp_prefix_parse("fd77::1/64", true, &p), 0);
	assert_int_equal(dp_route_addr(rt, true, dummy, &p), 0);
	assert_int_equal(dp_route_addr(rt, true, dummy, &p), 0);
	assert_true(has("ip -6 addr show dev nxt0", "inet6 fd77::1/64 scope global nodad"));
	assert_false(has("ip -6 addr show dev nxt0", "fe80::"));
	assert_false(has("ip -6 addr show dev nxt0", "tentative"));
	assert_int_equal(dp_prefix_parse("10.77.0.1/24", true, &p), 0);
	assert_int_equal(dp_route_addr(rt, true, dummy, &p), 0);
	assert_true(has("ip -4 addr show dev nxt0", "inet 10.77.0.1/24"));

	assert_int_equal(dp_route_rule(rt, true, AF_INET, &spec), 0);
	assert_int_equal(dp_route_rule(rt, true, AF_INET6, &def), 0);
	assert_int_equal(dp_route_rule(rt, true, AF_INET6, &def), 0);
	assert_true(has(RULE4, "7160:\tnot from all fwmark 0x4000000/0x4000000 lookup 7160 suppress_prefixlength 0"));
	assert_true(has(RULE6, "7180:\tnot from all fwmark 0x4000000/0x4000000 lookup 7160"));
	assert_int_equal(dp_prefix_parse("0.0.0.0/0", false, &p), 0);
	assert_int_equal(dp_route_prefix(rt, true, 7160, &p, dummy), 0);
	assert_int_equal(dp_prefix_parse("10.99.5.0/24", false, &p), 0);
	assert_int_equal(dp_route_prefix(rt, true, 7160, &p, 0), 0);
	assert_int_equal(dp_route_prefix(rt, true, 7160, &p, 0), 0);
	assert_true(has("ip -4 route show table 7160", "default dev nxt0"));
	assert_true(has("ip -4 route show table 7160", "throw 10.99.5.0/24"));
	/* The throw sends the lookup on to main, which has no route here. */
	assert_false(has("ip -4 route get 10.99.5.1 2>&1 || true", "nxt0"));

	assert_int_equal(dp_route_connected(rt, &dummy, 1, conn, 16, &n), 0);
	for (i = 0; i < n; i++)
		if (conn[i].family == AF_INET && conn[i].len == 24 && conn[i].addr[2] == 9)
			break;
	assert_true(i < n); /* 198.18.9.0/24 on nxt1 */
	for (i = 0; i < n; i++)
		assert_false(conn[i].family == AF_INET && conn[i].addr[0] == 10); /* not the skipped nxt0 */
	assert_int_equal(dp_route_link_stats(rt, dummy, &st), 0);

	/* More routes than a dump pass holds (256): the flush repeats. */
	for (i = 0; i < 300; i++) {
		snprintf(cmd, sizeof(cmd), "10.%zu.%zu.0/24", 100 + i / 256, i % 256);
		assert_int_equal(dp_prefix_parse(cmd, false, &p), 0);
		assert_int_equal(dp_route_prefix(rt, true, 7161, &p, 0), 0);
	}
	assert_int_equal(dp_route_flush_routes(rt, 7160), 0);
	assert_false(has(ROUTE4, "table 7160"));
	assert_true(has(RULE4, "lookup 7160"));
	assert_int_equal(dp_route_flush_table(rt, 7160), 0);
	assert_false(has(RULE4, "lookup 7160"));
	assert_false(has(RULE6, "lookup 7160"));
	assert_int_equal(dp_route_flush_table(rt, 7161), 0);
	assert_false(has(ROUTE4, "table 7161"));
	run("ip link del nxt0");
}

static void test_prefix_parse(void **state)
{
	struct dp_prefix p;
	char buf[64];

	assert_int_equal(dp_prefix_parse("10.1.2.3", true, &p), 0);
	assert_int_equal(p.len, 32);
	assert_int_equal(dp_prefix_parse("10.1.2.3/8", false, &p), -EINVAL);
	assert_int_equal(dp_prefix_parse("10.1.2.3/8", true, &p), 0);
	dp_prefix_network(&p);
	assert_string_equal(dp_prefix_format(&p, buf, sizeof(buf)), "10.0.0.0/8");
	assert_int_equal(dp_prefix_parse("fd00::1/129", true, &p), -EINVAL);
	assert_int_equal(dp_prefix_parse("fd00::/7", false, &p), -EINVAL);
	assert_int_equal(dp_prefix_parse("fc00::/7", false, &p), 0);
	assert_string_equal(dp_prefix_format(&p, buf, sizeof(buf)), "fc00::/7");
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(dp_prefix_parse("fd00::/", true, &p), -EINVAL);
	assert_int_equal(dp_prefix_parse("10.0.0.0/8x", true, &p), -EINVAL);
	assert_int_equal(dp_prefix_parse("/8", true, &p), -EINVAL);
	assert_int_equal(dp_prefix_parse("example.com", true, &p), -EINVAL);
	assert_int_equal(dp_prefix_parse("10.0.0.0/-1", true, &p), -EINVAL);
	(void)state;
}

static int group_setup(void **state)
{
	if (geteuid() == 0 && unshare(CLONE_NEWNET) == 0 && lo_up() == 0)
		have_netns = true;
	else
		print_message("no private network namespace (%s): tests skipped\n", strerror(errno));
	if (system("ip -V >/dev/null 2>&1") != 0) {
		print_message("no iproute2: tests skipped\n");
		have_netns = false;
	}
	return have_netns && dp_route_open(&rt) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	dp_route_close(rt);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_del),
		cmocka_unit_test(test_flush),
		cmocka_unit_test(test_small_table),
		cmocka_unit_test(test_tunnel),
		cmocka_unit_test(test_prefix_parse),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
