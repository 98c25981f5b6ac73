/* Fuzz harness for what a packet-tunnel provider's settings become in the daemon: the
 * TUNNEL_SETTINGS decoder, then tunnel_settings_parse (every string checked), then the
 * routes and rules of a slot (whole host and per app, with connected networks) and the
 * split-DNS routes. The input is a TUNNEL_SETTINGS payload. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsroutes.h"
#include "tunnel.h"
#include "wire.h"

static struct ne_msg_tunnel_settings msg;
static struct tunnel_settings set;
static struct tunnel_plan plan;
static struct dns_route routes[NE_WIRE_TUNNEL_MATCH_MAX];
static uint8_t out[NE_WIRE_MAX];

static void check_plan(unsigned slot, bool per_app, const struct dp_prefix *conn, size_t n_conn)
{
	size_t i;

	if (tunnel_plan_build(&set, slot, per_app, conn, n_conn, &plan) < 0)
		return;
	if (plan.n_routes > TUNNEL_PLAN_ROUTES_MAX || plan.n_rules > 6)
		abort();
	for (i = 0; i < plan.n_rules; i++)
		if (plan.rules[i].spec.table != TUNNEL_TABLE_BASE + slot)
			abort();
	for (i = 0; i < plan.n_routes; i++)
		if (plan.routes[i].prefix.len > (plan.routes[i].prefix.family == AF_INET ? 32 : 128))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dp_prefix conn[2];
	char err[512];
	size_t n, i;

	if (ne_msg_tunnel_settings_decode(data, size, &msg) < 0)
		return 0;
	if (tunnel_settings_parse(&msg, &set, err, sizeof(err)) < 0) {
		if (!memchr(err, '\0', sizeof(err)) || !err[0])
			abort();
		return 0;
	}
	dp_prefix_parse("198.18.7.0/24", false, &conn[0]);
	dp_prefix_parse("fd00:198:18:7::/64", false, &conn[1]);
	check_plan(0, false, conn, 2);
	check_plan(TUNNEL_MAX - 1, true, NULL, 0);
	if (tunnel_dns_routes(&set, "fuzz", routes, NE_WIRE_TUNNEL_MATCH_MAX, &n) == 0)
		for (i = 0; i < n; i++)
			if (routes[i].n_servers < 1 || routes[i].n_servers > DNSROUTE_SERVERS_MAX)
				abort();
	return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	struct ne_msg_tunnel_settings s = { 0 };
	struct ne_wbuf b = { out, 0, sizeof(out), 0 };
	int len;

	s.provider = 1;
	s.flags = 0x06;
	s.remote_address = (struct ne_view){ "192.0.2.2", 9 };
	s.mtu = 1420;
	s.queues = 2;
	s.n_addresses = 2;
	s.addresses[0] = (struct ne_view){ "10.77.0.1/24", 12 };
	s.addresses[1] = (struct ne_view){ "fd77::1/64", 10 };
	s.n_included = 2;
	s.included[0] = (struct ne_view){ "0.0.0.0/0", 9 };
	s.included[1] = (struct ne_view){ "::/0", 4 };
	s.n_excluded = 1;
	s.excluded[0] = (struct ne_view){ "10.99.5.0/24", 12 };
	s.n_dns = 2;
	s.dns[0] = (struct ne_view){ "10.77.0.53", 10 };
	s.dns[1] = (struct ne_view){ "[fd77::53]:5353", 15 };
	s.n_search = 1;
	s.search[0] = (struct ne_view){ "corp.example", 12 };
	s.n_match = 1;
	s.match[0] = (struct ne_view){ "corp.example", 12 };
	len = ne_msg_tunnel_settings_encode(&b, 1, &s);
	if (len < NE_WIRE_HDR_LEN)
		abort();
	add(out + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, userdata);
}
