/* The DNS proxy engine: docs/dns.md.
 *
 * Interception: DNS from processes on the host (UDP and TCP to port 53, IPv4 and IPv6) is marked
 * in a `type route` output chain, rerouted to lo by a policy rule of netextd's own, and taken by
 * TPROXY in prerouting to the engine's transparent listeners. netextd's own upstream sockets
 * carry DNS_MARK_EXEMPT (SO_MARK), extensions are exempt by cgroup, and a local stub resolver
 * named in resolv.conf is exempt by its cgroup (or uid) so its upstream queries are not proxied
 * twice. Interception is on while split routes exist or a dns-proxy configuration is enabled
 * ("intercept = auto"), or always / never as configured.
 *
 * Each query is parsed once (FORMERR for garbage with a header, silence without), attributed to
 * its process (sock_diag on the client's socket), offered to the dns-proxy provider if one is
 * enabled (dnsprov.c), else routed by the split-DNS routes (dnsroutes.c) and forwarded from a
 * pool of randomly bound sockets with random ids; answers are accepted only from the server
 * asked, with the id and question of the query. Timeouts, retries, failover between a route's
 * servers, TCP fallback on TC. Answers feed the content filter's name cache, keyed by the
 * asking process. An optional TTL-bounded cache with a memory bound. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "procinfo.h"

struct daemon;
struct dp_ruleset;
struct dns_msg;

/* Packet marks and conntrack marks (docs/architecture.md lists every bit netext uses). */
#define DNS_MARK_DIVERT 0x00400000u   /* packet: reroute to lo for TPROXY (policy rule) */
#define DNS_MARK_EXEMPT 0x00800000u   /* packet: netextd's own sockets (SO_MARK) skip all chains */
#define DNS_CTMARK_PROXIED 0x00400000u /* conntrack: a flow the proxy answered (no snooping) */
#define DNS_PROXY_PORT_DEFAULT 7153   /* the transparent listeners, on 127.0.0.1 and ::1 */
#define DNS_ROUTE_TABLE_DEFAULT 7153  /* the policy-routing table with the local default route */
#define DNS_RULE_PRIORITY 7153        /* priority of the fwmark rule */

/* A client query as the provider glue (dnsprov.c) sees it. Valid during dnsprov_query(). */
struct dnsq_view {
	uint64_t id;               /* the engine's id for this query, never 0 */
	uint8_t protocol;          /* IPPROTO_UDP, IPPROTO_TCP */
	const uint8_t *msg;        /* the query as the client sent it */
	size_t len;
	const struct dns_msg *parsed; /* NULL when it did not parse (raw mode only sees those) */
	struct sockaddr_storage client, server; /* server: the address the client asked */
	bool has_uid;
	uint32_t uid;
	bool has_proc;
	const struct pi_process *proc;
};

int dnsproxy_init(struct daemon *d);
void dnsproxy_fini(struct daemon *d);
/* Appends the interception chains and rules (nothing while interception is off). */
int dnsproxy_add_rules(struct daemon *d, struct dp_ruleset *rs);
/* Routes, the provider set or the options changed: turns interception on or off (listeners,
 * policy rule and route, nftables) as needed. In-flight queries are kept. */
void dnsproxy_reconfigure(struct daemon *d);
bool dnsproxy_intercepting(const struct daemon *d);

/* From the provider glue, for a query it took (dnsprov_query returned 1). A query that is no
 * longer in flight is ignored (returns -ENOENT). ANSWER bytes (and FORWARD bytes in raw mode)
 * must parse and, for ANSWER, answer the query's question: else -EBADMSG and the client gets
 * SERVFAIL. target for FORWARD: NULL or "" (routes), a route's suffix, or a server. */
enum dnsq_action { DNSQ_FORWARD = 1, DNSQ_ANSWER = 2, DNSQ_REFUSE = 3, DNSQ_DROP = 4, DNSQ_SERVFAIL = 5 };
int dnsproxy_query_verdict(struct daemon *d, uint64_t id, enum dnsq_action a, const char *target,
			   const uint8_t *bytes, size_t len);
/* For an answer the glue took (dnsprov_response returned 1). REWRITE bytes must parse and
 * answer the question. */
enum dnsr_action { DNSR_PASS = 1, DNSR_REWRITE = 2, DNSR_DROP = 3 };
int dnsproxy_response_verdict(struct daemon *d, uint64_t id, enum dnsr_action a, const uint8_t *bytes,
			      size_t len);

/* Control API: counters, listeners, cache, in-flight queries (json_t object). */
void *dnsproxy_status_json(struct daemon *d);
