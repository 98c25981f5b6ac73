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
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
