/* libnetext, packet filter: the filter-packet provider (NEFilterPacketProvider for Linux),
 * plus what Apple refuses: change a packet's bytes and send it on.
 *
 * netextd queues the packets the provider's settings select (NFQUEUE, whole GSO packets) and
 * hands them to the extension through shared-memory rings; the provider answers each with
 * allow, drop, delay or modify. Verdicts go back in batches, so the packets never wait for a
 * timer.
 *
 *     static ne_packet_verdict on_packet(ne_provider *p, const ne_packet *pkt, void *ud)
 *     {
 *             return ne_packet_protocol(pkt) == IPPROTO_ICMP ? ne_packet_drop() : ne_packet_allow();
 *     }
 *     static void start(ne_provider *p, const ne_options *o, void *ud)
 *     {
 *             struct ne_packet_rule r = { .direction = NE_PACKET_OUTBOUND, .protocol = IPPROTO_ICMP };
 *             struct ne_packet_settings s = { .size = sizeof(s), .rules = &r, .n_rules = 1 };
 *             ne_packet_apply_settings(p, &s, applied, NULL); // applied → ne_provider_start_done
 *     }
 *     ...
 *     ne_extension_register_packet_filter(ext, &lifecycle_ops, &packet_ops, NULL);
 *
 * Modify: the verdict carries the whole new IP packet (header first). netextd checks it (same
 * IP version, lengths that add up, at most 65535 bytes, not derived from a packet truncated by
 * the copy range), then rebuilds the IPv4 header checksum and the TCP, UDP, ICMP and ICMPv6
 * checksums itself, so the provider may leave them stale. A refused replacement is counted
 * and the original packet gets the configuration's fail policy. ne_packet_build() makes a
 * replacement with a new transport payload and correct length fields.
 *
 * TCP length changes: when a replacement changes the length of a TCP segment, netextd shifts
 * the sequence numbers of the rest of that direction of the flow, and the acknowledgement
 * numbers (and SACK blocks) of the other direction, for the rest of the flow, the way the
 * kernel's NAT helpers do (keeping every change the peer has not acknowledged yet). Both
 * directions of such a flow pass through netextd from then on; the provider sees only the
 * packets its rules select. A retransmitted segment must be changed the same way again.
 *
 * Delay: the packet stays queued in the kernel until ne_packet_resume() gives its verdict, at
 * most the configuration's "delay_max_ms" (default 10000); then the fail policy decides.
 * A packet without any verdict after "verdict_timeout_ms" (default 2000), or while the
 * extension is not running, gets the fail policy too: "fail_policy" open (allowed, the
 * default) or closed (dropped). Configuration options, see netextctl(8).
 *
 * Threading: the packet handlers run on one thread per queue (settings.queues), never on the
 * dispatch thread, and with several queues on several threads at once: make them thread-safe.
 * All packets of one flow (both directions) go to the same queue, in order. ne_packet_resume()
 * may be called from any thread. Everything else (settings, lifecycle) is for the dispatch
 * thread, as extension.h says. */
#ifndef NETEXT_PACKET_H
#define NETEXT_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netext/extension.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ne_packet_direction {
	NE_PACKET_ANY = 0,      /* rules only */
	NE_PACKET_OUTBOUND = 1, /* sent by a process on this host (output hook) */
	NE_PACKET_INBOUND = 2,  /* addressed to this host (input hook) */
	NE_PACKET_FORWARD = 3,  /* routed through this host (forward hook) */
} ne_packet_direction;

/* A queued packet: valid during the handler only (copy what you keep). */
typedef struct ne_packet ne_packet;

/* The handle ne_packet_resume() takes for a delayed packet; unique per provider. */
NE_EXPORT uint64_t ne_packet_id(const ne_packet *packet);
/* The packet from its IP header on: length bytes, at most the copy range. */
NE_EXPORT const uint8_t *ne_packet_bytes(const ne_packet *packet);
NE_EXPORT size_t ne_packet_length(const ne_packet *packet);
/* Its length in the kernel: more than ne_packet_length() when the copy range cut it (such a
 * packet cannot be modified). */
NE_EXPORT size_t ne_packet_original_length(const ne_packet *packet);
NE_EXPORT ne_packet_direction ne_packet_get_direction(const ne_packet *packet);
/* Interface indexes (if_indextoname()): where it came in, where it goes out; 0 when none. */
NE_EXPORT unsigned ne_packet_in_interface(const ne_packet *packet);
NE_EXPORT unsigned ne_packet_out_interface(const ne_packet *packet);
/* True for a large packet that the kernel segments (or the receiver coalesced): its length
 * can reach 64 KiB, above the MTU. Treat it as one packet. */
NE_EXPORT bool ne_packet_is_gso(const ne_packet *packet);
/* The queue (0 .. settings.queues - 1), which is also the thread, that delivered it. */
NE_EXPORT unsigned ne_packet_queue(const ne_packet *packet);

/* Parsed views, computed on first use: AF_INET / AF_INET6; the transport protocol after
 * IPv6 extension headers (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, ...), -1 when the packet
 * does not parse or is a non-first fragment. */
NE_EXPORT int ne_packet_family(const ne_packet *packet);
NE_EXPORT int ne_packet_protocol(const ne_packet *packet);
/* Source and destination as sockaddr_in / sockaddr_in6 with the ports (0 without ports).
 * -EPROTO when the packet does not parse. */
struct sockaddr_storage;
NE_EXPORT int ne_packet_source(const ne_packet *packet, struct sockaddr_storage *ret);
NE_EXPORT int ne_packet_destination(const ne_packet *packet, struct sockaddr_storage *ret);
/* The TCP or UDP payload: *ret points into the packet. -EPROTO for other protocols or a
 * packet that does not parse, -ENODATA when the copy range cut into it. */
NE_EXPORT int ne_packet_payload(const ne_packet *packet, const uint8_t **ret, size_t *ret_len);

/* Writes into buf a copy of packet's IP and TCP/UDP headers followed by payload, with the
 * IPv4 total length, IPv6 payload length and UDP length set (checksums are netextd's job).
 * Returns the new packet's length, -EPROTO when packet is not TCP or UDP, -ENOBUFS when cap
 * is too small, -EMSGSIZE beyond 65535 bytes. */
NE_EXPORT long ne_packet_build(const ne_packet *packet, const void *payload, size_t len,
			       uint8_t *buf, size_t cap);

typedef enum ne_packet_verdict_kind {
	NE_PACKET_ALLOW = 1,
	NE_PACKET_DROP = 2,
	NE_PACKET_DELAY = 3,  /* ne_packet_resume() follows within delay_max_ms */
	NE_PACKET_MODIFY = 4, /* send bytes instead of the packet */
} ne_packet_verdict_kind;

typedef struct ne_packet_verdict {
	ne_packet_verdict_kind kind;
	const void *bytes; /* MODIFY: the whole new IP packet, valid until the handler returns */
	size_t len;
} ne_packet_verdict;

static inline ne_packet_verdict ne_packet_allow(void)
{
	ne_packet_verdict v = { NE_PACKET_ALLOW, NULL, 0 };
	return v;
}
static inline ne_packet_verdict ne_packet_drop(void)
{
	ne_packet_verdict v = { NE_PACKET_DROP, NULL, 0 };
	return v;
}
static inline ne_packet_verdict ne_packet_delay(void)
{
	ne_packet_verdict v = { NE_PACKET_DELAY, NULL, 0 };
	return v;
}
static inline ne_packet_verdict ne_packet_modify(const void *bytes, size_t len)
{
	ne_packet_verdict v = { NE_PACKET_MODIFY, bytes, len };
	return v;
}

/* The verdict for a delayed packet (not DELAY again); bytes are copied before it returns.
 * Any thread. 0 once queued for netextd (which ignores, and counts, a verdict that comes
 * after the packet's deadline), -EINVAL for a bad verdict or a provider that is not a started
 * packet filter, -ENOENT for an id this provider never delayed, -EAGAIN when the verdict ring
 * is full (netextd is behind; try again shortly). */
NE_EXPORT int ne_packet_resume(ne_provider *provider, uint64_t packet_id, ne_packet_verdict verdict);

/* Which packets the provider sees: a packet is queued when any rule matches (all set fields
 * of a rule must match). No rules: every packet, except on the loopback interface. */
struct ne_packet_rule {
	ne_packet_direction direction;
	int family;                 /* AF_INET, AF_INET6; 0: both (networks imply it) */
	uint8_t protocol;           /* IPPROTO_*; 0: any */
	const char *interface;      /* name: the input interface of inbound packets, the output
				     * interface of outbound ones, either for forwarded ones */
	const char *local_network;  /* "198.18.0.0/15", "2001:db8::1"; for forwarded packets
				     * "local" is the source */
	uint16_t local_port;        /* with protocol TCP or UDP */
	const char *remote_network;
	uint16_t remote_port;
};

#define NE_PACKET_RULES_MAX 256
#define NE_PACKET_QUEUES_MAX 8

struct ne_packet_settings {
	uint32_t size; /* sizeof(struct ne_packet_settings) */
	const struct ne_packet_rule *rules;
	size_t n_rules;
	/* Bytes of each packet copied to the provider; 0: all (65535). At least 128. */
	uint32_t copy_range;
	/* Queues, each with its own handler thread; 0: 1. Flows are spread over them by address.
	 * Fixed by the first settings applied; later settings must name the same number. */
	uint16_t queues;
};

typedef void (*ne_packet_settings_done)(ne_provider *provider, int error, const char *message,
					void *userdata);

/* Replaces the provider's settings; packets already queued keep their place. Returns 0 once
 * sent (done follows with 0, or an error and a message naming the bad rule), -EINVAL for a
 * provider that is not a started packet filter or bad settings, -E2BIG when they do not fit a
 * message. The first successful settings start the packet threads. */
NE_EXPORT int ne_packet_apply_settings(ne_provider *provider, const struct ne_packet_settings *settings,
				       ne_packet_settings_done done, void *userdata);

/* The callbacks of a filter-packet provider; lifecycle stays in struct ne_provider_ops.
 * Set .size = sizeof(struct ne_packet_filter_ops). One of the two handlers is required; with
 * both, handle_packets is used. */
struct ne_packet_filter_ops {
	uint32_t size;
	/* One packet, one verdict. */
	ne_packet_verdict (*handle_packet)(ne_provider *provider, const ne_packet *packet, void *userdata);
	/* The batch form: fill verdicts[i] for packets[i], i < n (n ≥ 1). verdicts[] arrives
	 * filled with allow. Modify bytes must stay valid until it returns. */
	void (*handle_packets)(ne_provider *provider, const ne_packet *const *packets,
			       ne_packet_verdict *verdicts, size_t n, void *userdata);
};

/* Registers a filter-packet provider: ops as for ne_extension_register (start is
 * startFilter, stop is stopFilter), packet_ops for the packets. */
NE_EXPORT int ne_extension_register_packet_filter(ne_extension *ext, const struct ne_provider_ops *ops,
						  const struct ne_packet_filter_ops *packet_ops,
						  void *userdata);

#ifdef __cplusplus
}
#endif

#endif
