/* Filter rules as the daemon keeps them: checked once when a provider applies its settings
 * (frules_compile), then matched against each new flow without allocation (frules_match).
 *
 * Semantics (NEFilterSettings, docs/filter.md): rules in order, the first whose every set
 * field matches decides; otherwise the default action. A flow on loopback is allowed without
 * looking at the rules unless some rule's remote network is a loopback network. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

enum frule_action { FRULE_ALLOW = 1, FRULE_DROP = 2, FRULE_ASK = 3 }; /* = ne_filter_action */

struct frule_net {
	bool set;
	int family;          /* AF_INET, AF_INET6 */
	uint8_t addr[16];
	uint8_t prefix;
};

struct frule {
	enum frule_action action;
	uint8_t direction;   /* 0 any, 1 outbound, 2 inbound */
	uint8_t protocol;    /* 0 any */
	struct frule_net remote, local;
	uint16_t remote_port, local_port; /* 0 any */
	char *hostname;      /* normalized, or NULL */
	char *executable;    /* or NULL */
	bool match_uid;
	uint32_t uid;
	char *cgroup;        /* without a trailing '/', or NULL */
	bool names_loopback; /* remote network is inside 127.0.0.0/8 or ::1 */
};

struct frules {
	enum frule_action default_action;
	size_t n;
	struct frule *rules;
	bool any_loopback;   /* some rule names loopback */
	bool needs_process;  /* some rule matches executable, uid or cgroup */
	bool needs_hostname;
	bool any_ask;        /* the default or some rule asks the provider */
};

/* What a flow offers to the matcher. Strings may be NULL (unknown): a rule that needs a
 * field that is unknown does not match. */
struct frule_flow {
	uint8_t direction, protocol;
	int family;
	uint8_t local[16], remote[16];
	uint16_t local_port, remote_port;
	const char *hostname, *executable, *cgroup;
	bool has_uid;
	uint32_t uid;
};

/* Checks and copies wire rules. On failure writes a message naming the rule ("rule 3:
 * remote_network '10.0.0.0/33' is not a network") and returns -EINVAL. */
int frules_compile(const struct ne_wire_rule *w, size_t n, uint8_t default_action, struct frules *ret,
		   char *err, size_t errlen);
void frules_clear(struct frules *fr);
/* The action for f, and the index of the rule that decided (-1: default or loopback). */
enum frule_action frules_match(const struct frules *fr, const struct frule_flow *f, int *ret_rule);
/* Parses "198.18.0.0/15", "2001:db8::1" (host), etc. -EINVAL when it is not a network or has
 * bits set past the prefix. */
int frules_parse_net(const char *s, struct frule_net *ret);
bool frules_net_contains(const struct frule_net *n, int family, const uint8_t *addr);
bool frules_is_loopback(int family, const uint8_t *addr);
