/* The pure half of the packet tunnel (tunnel_plan.c): settings checked field by field, the
 * routes and rules a slot gets (whole host and per app, excluded routes, the addresses' own
 * networks, connected networks), split-DNS routes, slots and interface names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dnsroutes.h"
#include "tunnel.h"

#define V(s) ((struct ne_view){ (s), sizeof(s) - 1 })

static struct ne_msg_tunnel_settings msg;
static struct tunnel_settings set;
static struct tunnel_plan plan;
static char err[512];

static void reset(void)
{
	memset(&msg, 0, sizeof(msg));
	msg.addresses[0] = V("10.77.0.1/24");
	msg.addresses[1] = V("fd77::1/64");
	msg.n_addresses = 2;
	err[0] = '\0';
}

static int parse(void)
{
	return tunnel_settings_parse(&msg, &set, err, sizeof(err));
}

static bool has_route(const char *text, bool via_dev)
{
	struct dp_prefix p;
	size_t i;

	assert_int_equal(dp_prefix_parse(text, false, &p), 0);
	for (i = 0; i < plan.n_routes; i++)
		if (!memcmp(&plan.routes[i].prefix, &p, sizeof(p)))
			return plan.routes[i].via_dev == via_dev;
	return false;
}

static void test_parse_ok(void **state)
{
	reset();
	msg.remote_address = V("192.0.2.2");
	msg.included[0] = V("0.0.0.0/0");
	msg.included[1] = V("::/0");
	msg.n_included = 2;
	msg.excluded[0] = V("10.99.5.0/24");
	msg.n_excluded = 1;
	msg.dns[0] = V("10.77.0.53");
	msg.dns[1] = V("[fd77::53]:5353");
	msg.n_dns = 2;
	msg.match[0] = V("Corp.Example.");
	msg.n_match = 1;
	msg.search[0] = V("corp.example");
	msg.n_search = 1;
	msg.queues = 2;
	assert_int_equal(parse(), 0);
	assert_string_equal(set.remote, "192.0.2.2");
	assert_int_equal(set.mtu, 1420);
	assert_int_equal(set.queues, 2);
	assert_int_equal(set.n_addr, 2);
	assert_int_equal(set.addr[0].len, 24);
	assert_int_equal(set.addr[1].family, AF_INET6);
	assert_string_equal(set.match[0], "corp.example");
	msg.mtu = 0;
	msg.overhead = 80;
	assert_int_equal(parse(), 0);
	assert_int_equal(set.mtu, 1420);
	msg.overhead = 60;
	assert_int_equal(parse(), 0);
	assert_int_equal(set.mtu, 1440);
	msg.mtu = 1280;
	assert_int_equal(parse(), 0);
	assert_int_equal(set.mtu, 1280);
	(void)state;
}

/* Each bad value is -EINVAL with the field and index in the message. */
static void test_parse_bad(void **state)
{
	reset();
	msg.addresses[1] = V("fd77::1/129");
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "addresses[1]"));
	reset();
	msg.included[0] = V("10.0.0.1/8"); /* host bits in a route */
	msg.n_included = 1;
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "included_routes[0]"));
	reset();
	msg.excluded[0] = V("nonsense");
	msg.n_excluded = 1;
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "excluded_routes[0]"));
	reset();
	msg.dns[0] = V("10.77.0.53:99999");
	msg.n_dns = 1;
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "dns_servers[0]"));
	reset();
	msg.dns[0] = V("10.77.0.53");
	msg.n_dns = 1;
	msg.match[0] = V("bad..name");
	msg.n_match = 1;
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "match_domains[0]"));
	reset();
	msg.match[0] = V("corp.example");
	msg.n_match = 1;
	assert_int_equal(parse(), -EINVAL); /* match domains without servers */
	assert_non_null(strstr(err, "match_domains"));
	reset();
	msg.search[0] = (struct ne_view){ "a\0b", 3 };
	msg.n_search = 1;
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "search_domains[0]"));
	reset();
	msg.mtu = 100;
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "mtu"));
	reset();
	msg.queues = 5;
	assert_int_equal(parse(), -EINVAL);
	assert_non_null(strstr(err, "queues"));
	reset();
	msg.addresses[0] = V("0.0.0.0/0");
	assert_int_equal(parse(), -EINVAL);
	/* CLEAR ignores the rest. */
	reset();
	msg.flags = NE_TUNNEL_F_CLEAR;
	msg.addresses[0] = V("garbage");
	assert_int_equal(parse(), 0);
	assert_int_equal(tunnel_plan_build(&set, 0, false, NULL, 0, &plan), 0);
	assert_int_equal(plan.n_routes + plan.n_rules, 0);
	(void)state;
}

static void test_plan_whole_host(void **state)
{
	struct dp_prefix conn[2];
	size_t i;

	reset();
	msg.included[0] = V("0.0.0.0/0");
	msg.included[1] = V("10.99.0.0/16");
	msg.included[2] = V("10.99.5.0/24");
	msg.n_included = 3;
	msg.excluded[0] = V("10.99.5.0/24");
	msg.n_excluded = 1;
	assert_int_equal(parse(), 0);
	assert_int_equal(dp_prefix_parse("198.18.7.0/24", false, &conn[0]), 0);
	assert_int_equal(dp_prefix_parse("fd00:198:18:7::/64", false, &conn[1]), 0);
	/* Without enforce_routes connected networks stay local (throw). */
	assert_int_equal(tunnel_plan_build(&set, 3, false, conn, 2, &plan), 0);
	assert_true(has_route("0.0.0.0/0", true));
	assert_true(has_route("10.99.0.0/16", true));
	assert_true(has_route("10.99.5.0/24", false)); /* excluded wins over included */
	assert_true(has_route("198.18.7.0/24", false));
	assert_true(has_route("fd00:198:18:7::/64", false));
	assert_false(has_route("10.77.0.0/24", true)); /* an included list replaces the addresses' */
	assert_int_equal(plan.n_rules, 4);
	for (i = 0; i < plan.n_rules; i++) {
		assert_true(plan.rules[i].spec.invert);
		assert_int_equal(plan.rules[i].spec.mark, TUNNEL_MARK_BYPASS);
		assert_int_equal(plan.rules[i].spec.table, TUNNEL_TABLE_BASE + 3);
		if (plan.rules[i].spec.priority == TUNNEL_PRIO_SPECIFIC + 3)
			assert_int_equal(plan.rules[i].spec.suppress, 0);
		else
			assert_int_equal(plan.rules[i].spec.priority, TUNNEL_PRIO_DEFAULT + 3);
	}
	/* enforce_routes: connected networks go through the tunnel too... */
	msg.flags = NE_TUNNEL_F_ENFORCE_ROUTES;
	assert_int_equal(parse(), 0);
	assert_int_equal(tunnel_plan_build(&set, 3, false, conn, 2, &plan), 0);
	assert_false(has_route("198.18.7.0/24", false));
	/* ...unless exclude_local_networks. */
	msg.flags = NE_TUNNEL_F_ENFORCE_ROUTES | NE_TUNNEL_F_EXCLUDE_LOCAL;
	assert_int_equal(parse(), 0);
	assert_int_equal(tunnel_plan_build(&set, 3, false, conn, 2, &plan), 0);
	assert_true(has_route("198.18.7.0/24", false));
	assert_int_equal(tunnel_plan_build(&set, TUNNEL_MAX, false, conn, 2, &plan), -EINVAL);
	(void)state;
}

static void test_plan_per_app_and_own_networks(void **state)
{
	size_t i;

	reset();
	msg.addresses[2] = V("10.78.0.1"); /* a /32: no network route */
	msg.n_addresses = 3;
	msg.flags = NE_TUNNEL_F_ENFORCE_ROUTES;
	assert_int_equal(parse(), 0);
	assert_int_equal(tunnel_plan_build(&set, 14, true, NULL, 0, &plan), 0);
	assert_int_equal(plan.n_routes, 2);
	assert_true(has_route("10.77.0.0/24", true));
	assert_true(has_route("fd77::/64", true));
	assert_int_equal(plan.n_rules, 2);
	for (i = 0; i < plan.n_rules; i++) {
		assert_false(plan.rules[i].spec.invert);
		assert_int_equal(plan.rules[i].spec.mark, TUNNEL_APP_MARK(14));
		assert_int_equal(plan.rules[i].spec.mask, TUNNEL_APP_MASK);
		assert_int_equal(plan.rules[i].spec.priority, TUNNEL_PRIO_APP + 14);
		assert_int_equal(plan.rules[i].spec.suppress, -1);
	}
	/* The app marks of all slots fit the mask and differ. */
	for (i = 0; i < TUNNEL_MAX; i++) {
		assert_int_equal(TUNNEL_APP_MARK(i) & ~TUNNEL_APP_MASK, 0);
		assert_int_equal(TUNNEL_APP_MARK(i) & TUNNEL_MARK_BYPASS, 0);
		assert_true(TUNNEL_APP_MARK(i) != 0);
	}
	(void)state;
}

static void test_dns_routes(void **state)
{
	struct dns_route *r = calloc(8, sizeof(*r));
	size_t n;

	reset();
	assert_int_equal(parse(), 0);
	assert_int_equal(tunnel_dns_routes(&set, "vpn", r, 8, &n), 0);
	assert_int_equal(n, 0);
	msg.dns[0] = V("10.77.0.53");
	msg.n_dns = 1;
	assert_int_equal(parse(), 0);
	assert_int_equal(tunnel_dns_routes(&set, "vpn", r, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].suffix, ""); /* servers without match domains: the default route */
	assert_string_equal(r[0].source, "tunnel:vpn");
	assert_int_equal(r[0].n_servers, 1);
	msg.match[0] = V("corp.example");
	msg.match[1] = V("lab.example");
	msg.n_match = 2;
	assert_int_equal(parse(), 0);
	assert_int_equal(tunnel_dns_routes(&set, "vpn", r, 8, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].suffix, "corp.example");
	assert_string_equal(r[1].suffix, "lab.example");
	assert_int_equal(tunnel_dns_routes(&set, "vpn", r, 1, &n), -E2BIG);
	free(r);
	(void)state;
}

static void test_slots_and_names(void **state)
{
	bool used[TUNNEL_MAX] = { 0 };
	int i;

	for (i = 0; i < TUNNEL_MAX; i++) {
		int s = tunnel_slot_alloc(used);

		assert_int_equal(s, i);
		used[s] = true;
	}
	assert_int_equal(tunnel_slot_alloc(used), -ENOSPC);
	used[7] = false;
	assert_int_equal(tunnel_slot_alloc(used), 7);
	assert_int_equal(tunnel_ifname_check("netext0"), 0);
	assert_int_equal(tunnel_ifname_check("wg-corp_1"), 0);
	assert_int_equal(tunnel_ifname_check(""), -EINVAL);
	assert_int_equal(tunnel_ifname_check("0123456789abcdef"), -EINVAL);
	assert_int_equal(tunnel_ifname_check("a/b"), -EINVAL);
	assert_int_equal(tunnel_ifname_check("a b"), -EINVAL);
	assert_int_equal(tunnel_ifname_check(".."), -EINVAL);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_plan_whole_host),
		cmocka_unit_test(test_plan_per_app_and_own_networks),
		cmocka_unit_test(test_dns_routes),
		cmocka_unit_test(test_slots_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
