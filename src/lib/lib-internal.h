/* Private to libnetext: shared between extension.c, options.c and harness.c. Nothing here
 * is exported (see libnetext.map). */
#pragma once

#include <netext/extension.h>
#include <netext/filter.h>
#include <stdbool.h>

#include "wire.h"

/* Copies the options of a START into NUL-terminated strings owned by the returned object.
 * Returns 0 or -ENOMEM. */
int nelib_options_new(const struct ne_msg_start *m, ne_options **ret_options);
void nelib_options_free(ne_options *options);

/* Copies at most max bytes of s into dst (capacity max + 1), replacing the control
 * characters the wire refuses in strings by spaces, and NUL-terminates. Returns the
 * length written. */
size_t nelib_sanitize(char *dst, const char *s, size_t max);

/* Milliseconds left until deadline_usec (monotonic), at least 0, at most cap_ms. */
int nelib_ms_left(unsigned long long deadline_usec, int cap_ms);

/* extension.c, for the provider types' own files (filter.c, dnsproxy.c): */
struct ne_filter_ops;
struct nelib_filter;
struct ne_dns_proxy_ops;
struct nelib_dns;
struct ne_packet_filter_ops;
struct nelib_packet;
int nelib_send(ne_extension *ext, int len);  /* sends the frame encoded in nelib_wbuf() */
struct ne_wbuf nelib_wbuf(ne_extension *ext);
ne_provider *nelib_find_provider(const ne_extension *ext, uint32_t handle);
bool nelib_provider_live(const ne_provider *pv);
struct nelib_filter *nelib_provider_filter(ne_provider *pv, const struct ne_filter_ops **ret_ops,
					   void **ret_userdata);
uint32_t nelib_provider_handle(const ne_provider *pv);
/* The provider's DNS state (NULL for other types, and unless it has started and is not
 * stopping), its registration's DNS ops and userdata. */
struct nelib_dns *nelib_provider_dns(ne_provider *pv, const struct ne_dns_proxy_ops **ret_ops,
				     void **ret_userdata);
/* Registers a dns-proxy provider with dns_ops already checked by dnsproxy.c. */
int nelib_register_dns(ne_extension *ext, const struct ne_provider_ops *ops,
		       const struct ne_dns_proxy_ops *dns_ops, void *userdata);

/* filter.c: the filter-data provider's flows and settings. */
/* A flow handle from a wire record, one allocation (free() frees it); NULL without memory.
 * Also the flow of a DNS query (dnsproxy.c). */
struct ne_flow_record;
ne_flow *nelib_flow_new(const struct ne_flow_record *r);
struct nelib_filter *nelib_filter_new(void);
void nelib_filter_free(struct nelib_filter *f); /* NULL ok */
/* Handles RESULT, FLOW_NEW and FLOW_REPORT: 0 or a protocol fault. */
int nelib_filter_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len);

/* dnsproxy.c: the dns-proxy provider's queries. */
/* The state of a provider started with options (its "verdict_timeout_ms" tells how long the
 * daemon waits for a verdict, so that LATER queries can be forgotten when it has given up). */
struct nelib_dns *nelib_dns_new(const ne_options *options);
void nelib_dns_free(struct nelib_dns *dns); /* NULL ok; frees every query still held */
/* Sends DNS_SETTINGS for a provider whose start is about to complete successfully. */
int nelib_dns_send_settings(ne_provider *pv, const struct ne_dns_proxy_ops *ops);
/* Handles DNS_QUERY and DNS_RESPONSE: 0 or a protocol fault. */
int nelib_dns_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len);

/* packet.c: the filter-packet provider's queues, workers and settings. */
/* The state of a provider started with options ("delay_max_ms": how long a delayed packet
 * is remembered), holding one reference. NULL without memory. */
struct nelib_packet *nelib_packet_new(ne_provider *pv, const ne_options *options,
				      const struct ne_packet_filter_ops *ops, void *userdata);
/* Stops and joins the workers and unmaps the queues (dispatch thread; not from a handler).
 * Later resumes fail with -EINVAL. NULL ok. */
void nelib_packet_stop(struct nelib_packet *st);
/* Stops, then drops the provider's reference. NULL ok. */
void nelib_packet_free(struct nelib_packet *st);
void nelib_packet_ref(struct nelib_packet *st);
void nelib_packet_unref(struct nelib_packet *st);
/* A worker's protocol fault (a ring the daemon garbled), else 0. */
int nelib_packet_fault(const struct nelib_packet *st);
/* Handles RESULT (for a filter-packet provider) and PACKET_QUEUE, taking the received fds in
 * every case: 0 or a protocol fault. */
int nelib_packet_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len,
		       int *fds, size_t nfds);
/* extension.c: the provider's packet state, NULL for other types and unless it has started
 * or is starting and is not stopping (dispatch thread). */
struct nelib_packet *nelib_provider_packet(ne_provider *pv);
/* Any thread: the packet state of a live provider with a reference taken, or NULL. */
struct nelib_packet *nelib_provider_packet_ref(ne_provider *pv);
/* Registers a filter-packet provider with packet_ops already checked by packet.c. */
int nelib_register_packet(ne_extension *ext, const struct ne_provider_ops *ops,
			  const struct ne_packet_filter_ops *packet_ops, void *userdata);

/* tunnel.c: the packet-tunnel provider's device queues, packet threads and requests. */
struct ne_tunnel_ops;
struct nelib_tunnel;
/* The state of a starting provider, holding one reference. NULL without memory. */
struct nelib_tunnel *nelib_tunnel_new(ne_provider *pv, const struct ne_tunnel_ops *ops, void *userdata);
/* Stops and joins the packet threads and closes the queues (dispatch thread; not from
 * read_packets). Later writes fail with -ENOTCONN. With notify, the settings and socket
 * requests still waiting get their done with -ECANCELED. NULL ok. */
void nelib_tunnel_stop(struct nelib_tunnel *st, bool notify);
/* Stops (without notifying), then drops the provider's reference. NULL ok. */
void nelib_tunnel_free(struct nelib_tunnel *st);
void nelib_tunnel_ref(struct nelib_tunnel *st);
void nelib_tunnel_unref(struct nelib_tunnel *st);
/* Handles TUNNEL_DEVICE, TUNNEL_SOCKET_FD and RESULT (for a packet-tunnel provider), taking
 * the received fds in every case: 0 or a protocol fault. */
int nelib_tunnel_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len,
		       int *fds, size_t nfds);
/* extension.c: the provider's tunnel state, NULL for other types and unless it has started
 * or is starting and is not stopping (dispatch thread). */
struct nelib_tunnel *nelib_provider_tunnel(ne_provider *pv);
/* Any thread: the tunnel state of a live provider with a reference taken, or NULL. */
struct nelib_tunnel *nelib_provider_tunnel_ref(ne_provider *pv);
/* Registers a packet-tunnel provider with tunnel_ops already checked by tunnel.c. */
int nelib_register_tunnel(ne_extension *ext, const struct ne_provider_ops *ops,
			  const struct ne_tunnel_ops *tunnel_ops, void *userdata);
