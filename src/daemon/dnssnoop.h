/* DNS answers seen on the wire, for hostname learning. The filter datapath queues the host's
 * inbound DNS responses (UDP and TCP from port 53) and accepts them at once; this file turns
 * those IP packets into whole DNS messages.
 *
 * Trust: every byte is hostile (anyone can send a packet from port 53). UDP datagrams are
 * parsed directly; TCP segments are reassembled per connection in order (RFC 7766 length
 * framing, several messages per connection), with a bounded buffer per connection and a
 * bounded number of connections (oldest evicted); out-of-order or overlapping data resets that
 * connection's buffer rather than guessing. Nothing here blocks or allocates without bound. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "procinfo.h"

#define DNSSNOOP_TCP_CONNS_MAX 256
#define DNSSNOOP_TCP_BUF_MAX (64 * 1024 + 2)
#define DNSSNOOP_TCP_IDLE_USEC (30ULL * 1000 * 1000) /* a connection quiet this long is dropped */

/* malformed: bad IP, UDP or TCP headers, or a "message" shorter than a DNS header;
 * ignored: well-formed but not for us (fragments, other protocols or source ports). */
struct dnssnoop_stats {
	uint64_t packets, udp_msgs, tcp_msgs, malformed, tcp_resets, tcp_evicted;
	uint64_t ignored;
};

struct dnssnoop;

/* Called with each complete DNS message. `t` is the receiving socket's view: local = the
 * packet's destination (the asking process), remote = the server. msg is valid during the
 * call only; the callback must not call back into this dnssnoop. */
typedef void (*dnssnoop_cb)(const struct pi_tuple *t, const uint8_t *msg, size_t len, void *userdata);

int dnssnoop_new(dnssnoop_cb cb, void *userdata, struct dnssnoop **ret);
void dnssnoop_free(struct dnssnoop *s);
/* Feeds one IPv4 or IPv6 packet (network header first) of length len. Packets that are not
 * UDP/TCP from port 53 are ignored. now_usec (monotonic) ages TCP state. */
void dnssnoop_packet(struct dnssnoop *s, const uint8_t *pkt, size_t len, uint64_t now_usec);
void dnssnoop_get_stats(const struct dnssnoop *s, struct dnssnoop_stats *ret);
