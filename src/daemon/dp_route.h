/* Routes and policy-routing rules through rtnetlink (libmnl): the only file that changes the
 * kernel's routing state. netextd adds only routes in tables it owns and rules that point at
 * them, and removes them on exit; dp_route_flush_table() removes what a killed daemon left. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct dp_route;

int dp_route_open(struct dp_route **ret);
void dp_route_close(struct dp_route *r); /* NULL ok */

/* `ip [-6] rule add|del fwmark MARK/MASK lookup TABLE priority PRIO`. Adding an existing rule
 * is 0; deleting a missing one is 0. */
int dp_route_fwmark_rule(struct dp_route *r, bool add, int family, uint32_t mark, uint32_t mask,
			 uint32_t table, uint32_t priority);
/* `ip [-6] route add|del local 0.0.0.0/0 (::/0) dev lo table TABLE`: everything in the table is
 * delivered locally (TPROXY). Idempotent like the rules. */
int dp_route_local_default(struct dp_route *r, bool add, int family, uint32_t table);
/* Deletes every route in table and every rule whose lookup is table, both families. */
int dp_route_flush_table(struct dp_route *r, uint32_t table);

/* ---- packet tunnels (tunnel.c) ---------------------------------------------------- */

/* An IPv4 or IPv6 prefix. */
struct dp_prefix {
	int family; /* AF_INET, AF_INET6 */
	uint8_t addr[16];
	uint8_t len;
};

/* A policy-routing rule: `[not] fwmark MARK/MASK lookup TABLE [suppress_prefixlength N]
 * priority PRIO`. suppress < 0: none. */
struct dp_rule_spec {
	uint32_t mark, mask;
	bool invert;
	int suppress;
	uint32_t table, priority;
};

/* Adds (idempotent) or deletes (0 when missing) a rule of family. */
int dp_route_rule(struct dp_route *r, bool add, int family, const struct dp_rule_spec *s);
/* `ip route add|del PREFIX dev IFINDEX table TABLE` (type unicast, scope link) or, with
 * ifindex 0, `throw PREFIX table TABLE`. Idempotent. */
int dp_route_prefix(struct dp_route *r, bool add, uint32_t table, const struct dp_prefix *p, unsigned ifindex);
/* `ip addr add|del ADDR/LEN dev IFINDEX` (IPv6 with nodad: usable at once). Idempotent. */
int dp_route_addr(struct dp_route *r, bool add, unsigned ifindex, const struct dp_prefix *p);
/* Sets the MTU (0: unchanged), the IPv6 address generation mode none (no link-local address)
 * and up/down. */
int dp_route_link_set(struct dp_route *r, unsigned ifindex, uint32_t mtu, bool addrgen_none, bool up);
/* `ip link del` by index (0 when it is gone already). The caller must know the index is still
 * its device: tunnel.c deletes its TUN device while it still holds the queue fds. */
int dp_route_link_del(struct dp_route *r, unsigned ifindex);
/* The directly connected networks of the main table (unicast routes without a gateway, not
 * through lo or skip_ifindex[0..n_skip)), both families, into out (max entries). */
int dp_route_connected(struct dp_route *r, const unsigned *skip_ifindex, size_t n_skip,
		       struct dp_prefix *out, size_t max, size_t *ret_n);
struct dp_link_stats {
	uint64_t rx_bytes, rx_packets, tx_bytes, tx_packets, rx_dropped, tx_dropped;
};
int dp_route_link_stats(struct dp_route *r, unsigned ifindex, struct dp_link_stats *ret);
/* Deletes every route of table (both families), keeping the rules. */
int dp_route_flush_routes(struct dp_route *r, uint32_t table);
/* "10.0.0.0/8", "fd00::1" (no length: host) → prefix; -EINVAL otherwise. host_bits_ok false:
 * bits past the length must be 0 (a route); true: an address with its network length. */
int dp_prefix_parse(const char *text, bool host_bits_ok, struct dp_prefix *ret);
/* The prefix with the bits past its length cleared. */
void dp_prefix_network(struct dp_prefix *p);
const char *dp_prefix_format(const struct dp_prefix *p, char *buf, size_t size); /* size ≥ 50 */
