/* Conntrack events and counters (libnetfilter_conntrack): tells the flow tracker when a flow
 * it decided has ended and how many bytes and packets went each way.
 *
 * Trust: kernel messages only. Byte counters need connection accounting, which is off by
 * default; ct_acct_enable() turns on net.netfilter.nf_conntrack_acct in the daemon's network
 * namespace and ct_acct_restore() puts back the value it found (docs/architecture.md). */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

/* A conntrack entry as the flow tracker needs it: the original direction's tuple. */
struct ct_flow {
	int family;    /* AF_INET, AF_INET6 */
	uint8_t proto; /* IPPROTO_* */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} src, dst;    /* original direction */
	uint16_t sport, dport; /* host byte order; 0 for protocols without ports */
	uint32_t mark;
	uint32_t id;   /* CTA_ID */
	bool has_counters;
	uint64_t orig_packets, orig_bytes, reply_packets, reply_bytes;
};

struct ct_events;

/* Called for each destroyed conntrack entry. */
typedef void (*ct_destroy_cb)(const struct ct_flow *f, void *userdata);

/* Subscribes to DESTROY events (non-blocking socket, receive buffer `rcvbuf` bytes, 0: 4 MiB).
 * Only entries whose mark & mark_mask is non-zero are reported (filtered in userspace; kernels
 * that can filter events by mark do it there). */
int ct_events_open(struct ct_events **ret, uint32_t mark_mask, ct_destroy_cb cb, void *userdata);
void ct_events_close(struct ct_events *ev);
int ct_events_fd(const struct ct_events *ev);
/* Reads every event that is ready. An ENOBUFS overrun (events lost) is counted, not fatal:
 * flows whose end was missed are aged out by the tracker. Returns 0 or a fatal error. */
int ct_events_dispatch(struct ct_events *ev);
/* Events lost to receive-buffer overruns so far. */
uint64_t ct_events_lost(const struct ct_events *ev);

/* Current counters of one entry, looked up by its original tuple (f's addresses, ports,
 * protocol). Fills ret (including has_counters). -ENOENT when the entry is gone. */
int ct_get(const struct ct_flow *f, struct ct_flow *ret);

/* Turns connection accounting on in this network namespace, remembering the old value. */
int ct_acct_enable(void);
/* Restores the value ct_acct_enable() found; a no-op when it changed nothing. */
void ct_acct_restore(void);
