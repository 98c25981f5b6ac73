/* The packet-tunnel provider's daemon side: docs/tunnel.md.
 *
 * Per running packet-tunnel configuration ("tunnel") netextd owns: one slot index (0 ..
 * TUNNEL_MAX - 1), which fixes its routing table, rule priorities and marks; a multi-queue TUN
 * device with the vnet header and offloads (kernel-facts.md), whose fds go to the extension
 * (TUNNEL_DEVICE) and which vanishes when they close; its addresses; routes in its own table;
 * policy-routing rules pointing at that table; nftables rules (kill switch, per-app marks) in
 * netextd's table; split-DNS routes with source "tunnel:NAME". All of it is removed when the
 * tunnel stops, its extension dies or netextd exits (and at start-up, whatever a killed
 * netextd left in the tables and priorities below).
 *
 * Routing, per tunnel with slot i (table T = TUNNEL_TABLE_BASE + i):
 *   - T holds the included routes (dev TUN), `throw` routes for the excluded ones and, per
 *     exclude_local_networks / enforce_routes, for the directly connected networks.
 *   - Whole-host tunnel: `not fwmark BYPASS/BYPASS lookup T suppress_prefixlength 0` at priority
 *     TUNNEL_PRIO_SPECIFIC + i (every tunnel's specific routes before any default route), then
 *     `not fwmark BYPASS/BYPASS lookup T` at TUNNEL_PRIO_DEFAULT + i.
 *   - Per-app tunnel (configuration option apps=CGROUP[,CGROUP…]): nftables marks the packets of
 *     sockets in those cgroups with TUNNEL_APP_MARK(i) in a route-type output chain (so the
 *     kernel routes them again), and only `fwmark TUNNEL_APP_MARK(i)/TUNNEL_APP_MASK lookup T`
 *     at TUNNEL_PRIO_APP + i sends traffic into the tunnel.
 *   - Transport sockets (TUNNEL_SOCKET) carry SO_MARK TUNNEL_MARK_BYPASS | the daemon's exempt
 *     mark, so they follow the main table and skip the kill switch and interception.
 * Kill switch (include_all_networks): an output (and forward) filter chain drops what leaves
 * through an interface that is not a tunnel device of netextd's, except loopback, marked
 * transport, the extension's cgroup, DHCP, IPv6 neighbour discovery and, with
 * exclude_local_networks, the connected networks.
 *
 * Status: states invalid, disconnected, connecting, connected, reasserting, disconnecting;
 * the last disconnect error; counters. ext.c tells this module when packet-tunnel providers
 * come and go and passes their frames. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dp_route.h"
#include "wire.h"

struct daemon;
struct dns_route;
struct ext;
struct ctl_req;
struct dp_ruleset;

#define TUNNEL_MAX 15
#define TUNNEL_TABLE_BASE 7160u        /* routing tables 7160 .. 7174 */
#define TUNNEL_PRIO_APP 7130u          /* rule priorities: + slot */
#define TUNNEL_PRIO_SPECIFIC 7160u
#define TUNNEL_PRIO_DEFAULT 7180u
#define TUNNEL_MARK_BYPASS 0x04000000u /* transport sockets: not into any tunnel */
#define TUNNEL_APP_MASK 0x78000000u    /* per-app routing: slot + 1 in bits 27..30 */
#define TUNNEL_APP_MARK(slot) ((uint32_t)((slot) + 1) << 27)
#define TUNNEL_IFNAME_DEFAULT "netext%u" /* with the slot; option interface=NAME overrides */

int tunnel_init(struct daemon *d);     /* after dp_route is usable: removes leftovers */
void tunnel_fini(struct daemon *d);    /* tears every tunnel down (daemon exit) */
/* Appends the kill-switch and per-app chains to the daemon's table (main.c). */
int tunnel_add_rules(struct daemon *d, struct dp_ruleset *rs);

/* ext.c: a packet-tunnel provider for config was sent START (connecting), has started
 * (connected), is stopping (disconnecting) or is gone (disconnected; why: the reason or the
 * exit). Gone tears everything down. */
void tunnel_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle);
void tunnel_provider_running(struct daemon *d, const char *config);
void tunnel_provider_stopping(struct daemon *d, const char *config, const char *why);
void tunnel_provider_gone(struct daemon *d, const char *config, const char *why);
/* A failed start: recorded as the last disconnect error. */
void tunnel_provider_failed(struct daemon *d, const char *config, int error, const char *message);
/* Configurations or extensions changed (stopped, removed, given up on): a kill switch held
 * for a crashed tunnel goes when no restart of its provider will come. */
void tunnel_reconfigure(struct daemon *d);

/* Frames from a packet-tunnel provider (ext.c checks the type and provider first). Return 0,
 * or a negative errno that makes the frame a protocol fault (-EBADMSG, -EPROTO). */
int tunnel_on_settings(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len);
int tunnel_on_state(struct daemon *d, const char *config, const uint8_t *p, size_t len);
int tunnel_on_cancel(struct daemon *d, const char *config, const uint8_t *p, size_t len);
int tunnel_on_socket(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len);

/* Control methods (control.c):
 *   tunnel.start  {"name": N, "options": {K: V…}} → answered when the provider's start completes
 *   tunnel.stop   {"name": N}                     → answered when it has stopped
 *   tunnel.status {"name": N?}                    → {"tunnels": [...]}
 *   tunnel.watch  {"name": N?}                    → an event per state change, never answered */
void tunnel_ctl_start(struct daemon *d, struct ctl_req *req, void *params);
void tunnel_ctl_stop(struct daemon *d, struct ctl_req *req, void *params);
void tunnel_ctl_status(struct daemon *d, struct ctl_req *req, void *params);
void tunnel_ctl_watch(struct daemon *d, struct ctl_req *req, void *params);

/* Extra start options (tunnel.start's "options"), merged over the configuration's options in
 * the START ext.c sends: n pairs, valid until the next tunnel.start / stop of config. */
size_t tunnel_start_options(struct daemon *d, const char *config, const char *const **ret_keys,
			    const char *const **ret_values);

/* ---- the pure part (tunnel_plan.c, unit-tested) ---------------------------------------- */

#define TUNNEL_DOMAIN_MAX 254
#define TUNNEL_PLAN_ROUTES_MAX (2 * NE_WIRE_TUNNEL_ROUTES_MAX + NE_WIRE_TUNNEL_ADDRESSES_MAX + 256)

/* TUNNEL_SETTINGS, checked. */
struct tunnel_settings {
	uint8_t flags;                 /* NE_TUNNEL_F_* */
	char remote[256];
	uint32_t mtu;                  /* resolved: mtu, else 1500 - overhead, else 1420 */
	uint16_t queues;               /* 0: unchanged / 1 */
	size_t n_addr, n_incl, n_excl, n_dns, n_search, n_match;
	struct dp_prefix addr[NE_WIRE_TUNNEL_ADDRESSES_MAX];
	struct dp_prefix incl[NE_WIRE_TUNNEL_ROUTES_MAX];
	struct dp_prefix excl[NE_WIRE_TUNNEL_ROUTES_MAX];
	struct sockaddr_storage dns[NE_WIRE_TUNNEL_DNS_MAX];
	char search[NE_WIRE_TUNNEL_SEARCH_MAX][TUNNEL_DOMAIN_MAX];  /* normalized */
	char match[NE_WIRE_TUNNEL_MATCH_MAX][TUNNEL_DOMAIN_MAX];
};

struct tunnel_plan_rule {
	int family;
	struct dp_rule_spec spec;
};

/* What a tunnel installs in its table and rules. */
struct tunnel_plan {
	size_t n_routes;
	struct {
		struct dp_prefix prefix;
		bool via_dev; /* else throw */
	} routes[TUNNEL_PLAN_ROUTES_MAX];
	size_t n_rules;
	struct tunnel_plan_rule rules[6];
};

/* Checks m into *s: -EINVAL with err naming the field ("included_routes[2]: ..."). */
int tunnel_settings_parse(const struct ne_msg_tunnel_settings *m, struct tunnel_settings *s,
			  char *err, size_t errlen);
/* The routes (excluded → throw, included or the addresses' networks → dev, connected
 * networks → throw with exclude_local_networks or without enforce_routes) and rules
 * (whole-host or per-app) of slot. -E2BIG past TUNNEL_PLAN_ROUTES_MAX. */
int tunnel_plan_build(const struct tunnel_settings *s, unsigned slot, bool per_app,
		      const struct dp_prefix *connected, size_t n_connected, struct tunnel_plan *p);
/* The split-DNS routes of s with source "tunnel:NAME": one per match domain, or the default
 * route ("") for servers without match domains; none without servers. */
int tunnel_dns_routes(const struct tunnel_settings *s, const char *name, struct dns_route *out,
		      size_t max, size_t *ret_n);
/* The lowest free slot, -ENOSPC. */
int tunnel_slot_alloc(const bool used[TUNNEL_MAX]);
/* An interface name the kernel accepts (1..15 bytes, no '/', ':', spaces): 0 or -EINVAL. */
int tunnel_ifname_check(const char *name);
