/* Private to libnetext (tunnel.c): the packet work of the packet-tunnel provider that needs no
 * I/O, so that a fuzz harness can drive it. Reading: a read from a TUN queue (vnet header
 * first) becomes ordinary IP packets with complete checksums, GSO packets cut in place.
 * Writing: consecutive TCP segments of one flow are merged into one GSO packet (GRO). */
#pragma once

#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netext/tunnel.h>

#include "pkt.h"

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define TUNSEG_VNET_LEN 10
#define TUNSEG_READ_MAX (TUNSEG_VNET_LEN + PKT_MAX) /* room a read needs in buf */
#define TUNSEG_GRO_MAX 64                          /* segments merged into one write */
#define TUNSEG_HDR_MAX 120                         /* IP + TCP header of a merged write */

/* One batch for read_packets: packets point into buf. flush hands pkts[0..n) over (the
 * packet thread's read_packets) and must leave n and used at 0. */
struct tunseg_batch {
	uint8_t *buf;
	size_t cap, used;          /* cap ≥ TUNSEG_READ_MAX */
	ne_tunnel_packet *pkts;
	size_t n, max;             /* max ≥ 1 */
	uint64_t drops;            /* malformed or unsupported reads */
	void (*flush)(struct tunseg_batch *b, void *userdata);
	void *userdata;
};

/* AF_INET or AF_INET6 from the version nibble when the header fits, else 0. */
int tunseg_family(const uint8_t *p, size_t len);

/* Takes the len bytes just read at b->buf + b->used (with a vnet header of vnet bytes, 0 or
 * TUNSEG_VNET_LEN, in front): appends the packet, or its segments, or counts a drop. May
 * flush first when the segments do not fit after the batch. */
void tunseg_take(struct tunseg_batch *b, size_t vnet, size_t len);

/* The first packet of a run that may be merged, as gro_span found it. */
struct tunseg_gro {
	struct pkt_info pi;
	const uint8_t *p;
	size_t hlen; /* IP + TCP header */
	size_t seg;  /* payload of each segment */
};

/* How many packets from pk on (1 .. TUNSEG_GRO_MAX) can be written as one. */
size_t tunseg_gro_span(const ne_tunnel_packet *pk, size_t n, struct tunseg_gro *g);
/* The vnet header and IP + TCP header (g->hlen bytes into hdr) of the k packets of a span
 * merged; the payloads follow them unchanged. Returns the merged packet's length. */
size_t tunseg_gro_header(const ne_tunnel_packet *pk, size_t k, const struct tunseg_gro *g,
			 struct virtio_net_hdr *vh, uint8_t *hdr);
