/* libnetext, DNS proxy: the dns-proxy provider (NEDNSProxyProvider for Linux).
 *
 * netextd diverts every DNS query that a process on the host sends (UDP and TCP, IPv4 and IPv6,
 * to any address on port 53) to itself, parses it once, and hands it to the enabled dns-proxy
 * provider already parsed, with the asking process attached (the same ne_flow accessors as the
 * content filter: ne_flow_executable(), ne_flow_pid() …; the flow's remote endpoint is the
 * server the application asked). The provider decides:
 *
 *     static ne_dns_verdict query(ne_provider *p, ne_dns_query *q, void *ud)
 *     {
 *             const ne_dns_message *m = ne_dns_query_message(q);
 *             if (ne_dns_name_in_domain(ne_dns_message_qname(m), "corp.example"))
 *                     return ne_dns_verdict_forward("10.0.0.53");   // a named server
 *             return ne_dns_verdict_forward(NULL);                  // the split-DNS routes
 *     }
 *
 * Verdicts: forward (by netextd's split-DNS routes, to the route of a named domain, or to a
 * named server "ADDR", "ADDR:PORT", "[V6ADDR]:PORT"), answer (with a message the provider built
 * with ne_dns_builder_*; netextd sets the id, checks that it answers the question, and truncates
 * it for UDP clients), refuse (REFUSED), drop (no answer: the client times out), or later
 * (ne_dns_query_resume() follows within the configuration's "verdict_timeout_ms", default 1000).
 * netextd forwards from its own sockets (random ids and source ports, answers checked against
 * the query, retries, failover between a route's servers, TCP fallback on truncation); the
 * provider never opens a socket for DNS.
 *
 * With handle_response set, every upstream answer to a forwarded query comes back to the
 * provider before the client sees it: pass, rewrite (a new message answering the same
 * question), or drop.
 *
 * Raw mode: with handle_raw set instead of handle_query, the provider gets each query as bytes
 * (one datagram, or one message of a TCP stream without its 2-byte length), as Apple's flows
 * give them, and may forward modified bytes or answer with bytes of its own. netextd still
 * checks what it sends to clients and servers: bytes that do not parse are not sent. Only
 * queries that parse reach the provider (garbage is answered FORMERR by netextd itself).
 *
 * Fail policy: while the extension is not running, is hung, or misses the deadline, queries
 * follow the configuration's fail_policy: "open" resolves through the split-DNS routes as if no
 * provider were enabled; "closed" answers SERVFAIL. One dns-proxy configuration is used at a
 * time: the first enabled one by "order", then name.
 *
 * Threading: as extension.h; every function here is for the dispatch thread. */
#ifndef NETEXT_DNSPROXY_H
#define NETEXT_DNSPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netext/dns.h>
#include <netext/extension.h>
#include <netext/filter.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One client query, from handle_query / handle_raw until its verdict is final (returned, or
 * given to ne_dns_query_resume), and again during handle_response. */
typedef struct ne_dns_query ne_dns_query;

NE_EXPORT uint64_t ne_dns_query_id(const ne_dns_query *q);           /* never 0 */
/* The parsed query, in raw mode too. Bytes that do not parse never reach a provider: netextd
 * answers them FORMERR (or drops them when even the header is missing) and counts them. */
NE_EXPORT const ne_dns_message *ne_dns_query_message(const ne_dns_query *q);
NE_EXPORT const uint8_t *ne_dns_query_bytes(const ne_dns_query *q, size_t *ret_len);
NE_EXPORT int ne_dns_query_protocol(const ne_dns_query *q);          /* IPPROTO_UDP, IPPROTO_TCP */
/* The asking process and the endpoints (local: the client socket; remote: the server it
 * asked). Valid as long as q. */
NE_EXPORT const ne_flow *ne_dns_query_flow(const ne_dns_query *q);

typedef enum ne_dns_verdict_kind {
	NE_DNS_VERDICT_LATER = 0,
	NE_DNS_VERDICT_FORWARD = 1,
	NE_DNS_VERDICT_ANSWER = 2,
	NE_DNS_VERDICT_REFUSE = 3,
	NE_DNS_VERDICT_DROP = 4,
} ne_dns_verdict_kind;

/* A verdict refers to its target and bytes; they must stay valid until the call that takes the
 * verdict returns (the library copies them). */
typedef struct ne_dns_verdict {
	ne_dns_verdict_kind kind;
	const char *target;   /* FORWARD: NULL (routes), a route's domain, or a server */
	const void *bytes;    /* ANSWER: the answer; FORWARD in raw mode: the query to send
			       * instead (NULL: the original) */
	size_t len;
} ne_dns_verdict;

static inline ne_dns_verdict ne_dns_verdict_forward(const char *target)
{
	ne_dns_verdict v = { NE_DNS_VERDICT_FORWARD, target, NULL, 0 };
	return v;
}
static inline ne_dns_verdict ne_dns_verdict_forward_bytes(const char *target, const void *bytes, size_t len)
{
	ne_dns_verdict v = { NE_DNS_VERDICT_FORWARD, target, bytes, len };
	return v;
}
static inline ne_dns_verdict ne_dns_verdict_answer_bytes(const void *bytes, size_t len)
{
	ne_dns_verdict v = { NE_DNS_VERDICT_ANSWER, NULL, bytes, len };
	return v;
}
static inline ne_dns_verdict ne_dns_verdict_refuse(void)
{
	ne_dns_verdict v = { NE_DNS_VERDICT_REFUSE, NULL, NULL, 0 };
	return v;
}
static inline ne_dns_verdict ne_dns_verdict_drop(void)
{
	ne_dns_verdict v = { NE_DNS_VERDICT_DROP, NULL, NULL, 0 };
	return v;
}
static inline ne_dns_verdict ne_dns_verdict_later(void)
{
	ne_dns_verdict v = { NE_DNS_VERDICT_LATER, NULL, NULL, 0 };
	return v;
}
/* Answers with a parsed message (from ne_dns_builder_finish); the message stays the caller's. */
NE_EXPORT ne_dns_verdict ne_dns_verdict_answer(const ne_dns_message *answer);

/* The verdict for a query that got LATER. The handle is freed unless a response is expected
 * (forward with handle_response set). -ENOENT when the query is no longer waiting (its deadline
 * passed), -EINVAL for LATER. */
NE_EXPORT int ne_dns_query_resume(ne_provider *provider, ne_dns_query *q, ne_dns_verdict verdict);

typedef enum ne_dns_response_kind {
	NE_DNS_RESPONSE_PASS = 1,
	NE_DNS_RESPONSE_REWRITE = 2,
	NE_DNS_RESPONSE_DROP = 3,
} ne_dns_response_kind;

typedef struct ne_dns_response_verdict {
	ne_dns_response_kind kind;
	const void *bytes; /* REWRITE: the new answer */
	size_t len;
} ne_dns_response_verdict;

static inline ne_dns_response_verdict ne_dns_response_pass(void)
{
	ne_dns_response_verdict v = { NE_DNS_RESPONSE_PASS, NULL, 0 };
	return v;
}
static inline ne_dns_response_verdict ne_dns_response_drop(void)
{
	ne_dns_response_verdict v = { NE_DNS_RESPONSE_DROP, NULL, 0 };
	return v;
}
NE_EXPORT ne_dns_response_verdict ne_dns_response_rewrite(const ne_dns_message *answer);

/* Set .size = sizeof(struct ne_dns_proxy_ops). Set handle_query or handle_raw (raw mode). */
struct ne_dns_proxy_ops {
	uint32_t size;
	ne_dns_verdict (*handle_query)(ne_provider *provider, ne_dns_query *q, void *userdata);
	/* Optional: every upstream answer to a forwarded query, before the client sees it.
	 * Must answer at once (no LATER); the query handle is freed after it returns. */
	ne_dns_response_verdict (*handle_response)(ne_provider *provider, ne_dns_query *q,
						   const ne_dns_message *response, void *userdata);
	/* Raw mode: the query's bytes (also in ne_dns_query_bytes). */
	ne_dns_verdict (*handle_raw)(ne_provider *provider, ne_dns_query *q, const void *bytes,
				     size_t len, void *userdata);
};

/* Registers a dns-proxy provider: ops as for ne_extension_register (start is startProxy, stop
 * is stopProxy), dns_ops for the queries. -EINVAL when neither or both of handle_query and
 * handle_raw are set. */
NE_EXPORT int ne_extension_register_dns_proxy(ne_extension *ext, const struct ne_provider_ops *ops,
					      const struct ne_dns_proxy_ops *dns_ops, void *userdata);

#ifdef __cplusplus
}
#endif

#endif
