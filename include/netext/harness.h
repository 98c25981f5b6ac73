/* libnetext test harness: drives an extension's providers in-process, without netextd and
 * without root, so authors can unit-test them (with cmocka, gtest, anything).
 *
 *     ne_extension *ext;  ne_harness *h;  int err;
 *     ne_extension_new(&ext);
 *     ne_extension_register(ext, NE_PROVIDER_MESSAGE, &my_ops, NULL);
 *     ne_harness_new(ext, &h);                      // connects ext to the harness
 *     ne_harness_start(h, "cfg", NE_PROVIDER_MESSAGE, NULL, &err);
 *     ne_harness_message(h, "cfg", "ping", 4, &err, buf, sizeof buf, &len);
 *     ne_harness_stop(h, "cfg", NE_STOP_REASON_USER_INITIATED);
 *     ne_harness_free(h); ne_extension_free(ext);
 *
 * The harness speaks the real wire protocol to the extension over a socketpair and runs
 * the extension's dispatch itself while it waits, so asynchronous completions that the
 * provider makes from its callbacks work. Calls time out after timeout_ms (default 5000)
 * with -ETIMEDOUT, e.g. when a provider never completes. */
#ifndef NETEXT_HARNESS_H
#define NETEXT_HARNESS_H

#include <netext/dnsproxy.h>
#include <netext/extension.h>
#include <netext/filter.h>
#include <netext/packet.h>
#include <netext/tunnel.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ne_harness ne_harness;

NE_EXPORT int ne_harness_new(ne_extension *ext, ne_harness **ret_harness);
NE_EXPORT void ne_harness_free(ne_harness *harness);
NE_EXPORT void ne_harness_set_timeout(ne_harness *harness, int timeout_ms);
/* Called on every turn of the harness's wait loop (every few milliseconds while a call
 * waits), after the extension's dispatch: the place to run work a provider defers to its
 * own event loop, such as a timer that completes a start later. NULL removes it. */
NE_EXPORT void ne_harness_set_idle(ne_harness *harness, void (*idle)(void *userdata),
				   void *userdata);

/* Starts a provider for configuration `config`. options is a NULL-terminated array of
 * "key", "value" strings (NULL ok). *ret_error gets the provider's completion error. */
NE_EXPORT int ne_harness_start(ne_harness *harness, const char *config, ne_provider_type type,
			       const char *const *options, int *ret_error);
/* Stops it and waits for the stop completion. */
NE_EXPORT int ne_harness_stop(ne_harness *harness, const char *config, ne_stop_reason reason);
/* Sends an app message and waits for the reply: *ret_error, and up to cap bytes of data. */
NE_EXPORT int ne_harness_message(ne_harness *harness, const char *config, const void *data,
				 size_t len, int *ret_error, void *reply, size_t cap,
				 size_t *ret_len);
/* --- filter-data providers ------------------------------------------------------------
 * The harness accepts every FILTER_SETTINGS a provider applies (and remembers the last per
 * configuration), so a provider that completes its start after its settings starts here.
 *
 *     struct ne_harness_flow f = { .size = sizeof(f), .remote = "93.184.216.34:443",
 *             .hostname = "example.com", .executable = "/usr/bin/curl", .pid = 42 };
 *     ne_filter_verdict v;  uint64_t id;
 *     ne_harness_new_flow(h, "fw", &f, &id, &v);       // v.kind == NE_VERDICT_DROP ? */
struct ne_harness_flow {
	uint32_t size;               /* sizeof(struct ne_harness_flow) */
	ne_flow_direction direction; /* 0: outbound */
	int protocol;                /* 0: IPPROTO_TCP */
	const char *local, *remote;  /* "198.18.0.1:40000", "[2001:db8::1]:443"; NULL: defaults */
	const char *hostname, *executable, *command_line, *cgroup; /* NULL: unknown */
	int32_t pid;                 /* 0: no process known (pid -1 to the provider) */
	bool has_ids;
	uint32_t uid, gid;
};

/* Shows the flow to configuration config's provider and returns its verdict: allow, drop,
 * pause, or NE_VERDICT_NONE when handle_new_flow returned "later". *ret_id names the flow
 * for ne_harness_flow_verdict(). -EINVAL for an endpoint that does not parse. */
NE_EXPORT int ne_harness_new_flow(ne_harness *harness, const char *config,
				  const struct ne_harness_flow *flow, uint64_t *ret_id,
				  ne_filter_verdict *ret_verdict);
/* Waits (up to the timeout) for a final verdict for flow id: one the provider gives after a
 * pause or "later", typically once a test sent it an app message. */
NE_EXPORT int ne_harness_flow_verdict(ne_harness *harness, uint64_t id, ne_filter_verdict *ret_verdict);
/* The settings the provider applied last: -ENOENT when it applied none. */
NE_EXPORT int ne_harness_filter_settings(ne_harness *harness, const char *config,
					 size_t *ret_n_rules, ne_filter_action *ret_default_action);

/* --- dns-proxy providers --------------------------------------------------------------
 * The harness accepts the DNS settings a provider sends as it starts, and plays netextd's
 * side of a query: it offers the query's bytes with a fake process and endpoints, returns the
 * verdict, and then, for a forwarded query, offers an upstream answer.
 *
 *     struct ne_harness_flow f = { .size = sizeof(f), .executable = "/usr/bin/dig", .pid = 42,
 *             .local = "127.0.0.1:40000", .remote = "10.0.0.53:53" };
 *     ne_dns_verdict v;  ne_dns_response_verdict rv;  uint64_t id;
 *     ne_harness_dns_query(h, "dns", &f, query, query_len, &id, &v);
 *     // v.kind == NE_DNS_VERDICT_FORWARD && !strcmp(v.target, "10.0.0.53") ?
 *     ne_harness_dns_response(h, "dns", id, answer, answer_len, &rv);
 *
 * The flow's protocol is IPPROTO_UDP unless set (IPPROTO_TCP); local is the client's address,
 * remote the server it asked (default 198.51.100.53:53); its hostname is not used. A verdict's
 * target and bytes, and a response verdict's bytes, point into the harness: they stay valid
 * until the next call on it. */

/* Shows a query (a DNS message, which need not parse for a provider in raw mode) to
 * configuration config's provider and returns its verdict: NE_DNS_VERDICT_LATER when it has
 * not given one yet. *ret_id names the query for ne_harness_dns_verdict() and
 * ne_harness_dns_response(). flow may be NULL (process unknown). -EINVAL for an endpoint that
 * does not parse. */
NE_EXPORT int ne_harness_dns_query(ne_harness *harness, const char *config, const struct ne_harness_flow *flow,
				   const void *query, size_t len, uint64_t *ret_id, ne_dns_verdict *ret_verdict);
/* Waits (up to the timeout) for the verdict of a query that got LATER. */
NE_EXPORT int ne_harness_dns_verdict(ne_harness *harness, uint64_t id, ne_dns_verdict *ret_verdict);
/* Offers the upstream answer to query id, as netextd does after a forward verdict when the
 * provider has handle_response, and returns the provider's response verdict. Otherwise (no
 * handle_response, or the query was not forwarded) netextd passes the answer on unseen, and so
 * does this: *ret_verdict is PASS without the provider being asked. */
NE_EXPORT int ne_harness_dns_response(ne_harness *harness, const char *config, uint64_t id,
				      const void *response, size_t len, ne_dns_response_verdict *ret_verdict);
/* The DNS settings the provider sent as it started: -ENOENT when it sent none. */
NE_EXPORT int ne_harness_dns_settings(ne_harness *harness, const char *config, bool *ret_raw,
				      bool *ret_responses);

/* --- filter-packet providers ---------------------------------------------------------
 * The harness accepts every PACKET_SETTINGS a provider applies (and remembers the last per
 * configuration) and plays netextd's side of the packet queues with real shared-memory rings
 * and eventfds, so the provider's handlers run on the library's worker threads as they do
 * under netextd. Every packet goes to queue 0; the copy range of the settings applies (a
 * longer packet arrives truncated). Checksums are not checked or fixed.
 *
 *     ne_packet_verdict v;  uint64_t id;
 *     ne_harness_packet(h, "pf", bytes, len, NE_PACKET_OUTBOUND, &id, &v);
 *     // v.kind == NE_PACKET_MODIFY: v.bytes, v.len hold the replacement
 *     // v.kind == NE_PACKET_DELAY:  ne_harness_packet_verdict(h, id, &v) waits for the resume
 *
 * The harness remembers the verdicts of the last 4096 packets it queued. A verdict's bytes
 * point into the harness: valid until the next call on it. */

/* Queues one packet (an IP packet, header first) for configuration config's provider and
 * waits for its first verdict (which may be DELAY). *ret_id names it for
 * ne_harness_packet_verdict(). -ENOTCONN before the provider applied settings. */
NE_EXPORT int ne_harness_packet(ne_harness *harness, const char *config, const void *bytes, size_t len,
				ne_packet_direction direction, uint64_t *ret_id, ne_packet_verdict *ret_verdict);
/* Queues one packet without waiting: packets queued back to back reach a batch handler
 * together. */
NE_EXPORT int ne_harness_packet_send(ne_harness *harness, const char *config, const void *bytes,
				     size_t len, ne_packet_direction direction, uint64_t *ret_id);
/* Waits (up to the timeout) for the final verdict of packet id (not DELAY): the one its
 * handler returned, or its resume. -ENOENT for a packet queued 4096 packets ago or more. */
NE_EXPORT int ne_harness_packet_verdict(ne_harness *harness, uint64_t id, ne_packet_verdict *ret_verdict);
/* The packet settings the provider applied last: -ENOENT when it applied none. */
NE_EXPORT int ne_harness_packet_settings(ne_harness *harness, const char *config, size_t *ret_n_rules,
					 unsigned *ret_queues, uint32_t *ret_copy_range);

/* --- packet-tunnel providers ---------------------------------------------------------
 * The harness accepts every TUNNEL_SETTINGS a provider applies (and remembers the last per
 * configuration); the first settings that are not a clear make a fake device named
 * "harness<N>": one seqpacket socketpair per queue, where a datagram is one packet with a
 * 10-byte vnet header in front, as on netextd's TUN fds (no offloads: no GSO packets). It
 * answers ne_tunnel_open_socket() with an ordinary socket of the test process, bound to the
 * port asked for, and records reasserting and cancel (it does not stop the provider on a
 * cancel: call ne_harness_stop with NE_STOP_REASON_PROVIDER_FAILED as netextd would).
 *
 *     ne_harness_start(h, "vpn", NE_PROVIDER_PACKET_TUNNEL, opts, &err);
 *     ne_harness_tunnel_send(h, "vpn", 0, ip_packet, len);    // → ops->read_packets
 *     ne_harness_tunnel_receive(h, "vpn", buf, sizeof buf, &n); // ← ne_tunnel_write_packets */
struct ne_harness_tunnel_info {
	uint32_t size;           /* sizeof(struct ne_harness_tunnel_info) */
	const char *interface;   /* the fake device's name; NULL before settings made it */
	unsigned queues;
	uint32_t mtu;            /* of the last settings (their default applied) */
	size_t n_addresses, n_included_routes, n_excluded_routes, n_dns_servers;
	bool include_all_networks;
	bool reasserting;        /* the last ne_tunnel_set_reasserting() */
	bool cancelled;          /* ne_tunnel_cancel() was called, with: */
	int cancel_error;
};

/* What the provider asked for since its start: -ENOENT when nothing yet. interface points
 * into the harness: valid until the next start of config or ne_harness_free. */
NE_EXPORT int ne_harness_tunnel_settings(ne_harness *harness, const char *config,
					 struct ne_harness_tunnel_info *ret_info);
/* Writes one packet into the device's queue (0 .. queues - 1), as the host's stack would: the
 * provider's read_packets gets it on that queue's packet thread. -ENOTCONN before the device. */
NE_EXPORT int ne_harness_tunnel_send(ne_harness *harness, const char *config, unsigned queue,
				     const void *bytes, size_t len);
/* Waits (up to the timeout) for a packet the provider wrote with ne_tunnel_write_packets()
 * and copies it (without the vnet header) to buf. -EMSGSIZE when it is longer than cap. */
NE_EXPORT int ne_harness_tunnel_receive(ne_harness *harness, const char *config, void *buf, size_t cap,
					size_t *ret_len);

/* Log lines the extension sent, oldest first; NULL past the end. */
NE_EXPORT const char *ne_harness_log_line(const ne_harness *harness, size_t i);

#ifdef __cplusplus
}
#endif

#endif
