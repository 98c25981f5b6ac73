/* Conntrack events and counters (ctnetlink): tells the flow tracker when a flow it decided has
 * ended and how many bytes and packets went each way.
 *
 * Trust: kernel messages only. Byte counters need connection accounting, which is off by
 * default; ct_acct_enable() turns on net.netfilter.nf_conntrack_acct in the daemon's network
 * namespace and ct_acct_restore() puts back the value it found (docs/architecture.md). */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nlmsghdr;

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

/* Called for each destroyed conntrack entry, from ct_events_dispatch(); it must not close ev. */
typedef void (*ct_destroy_cb)(const struct ct_flow *f, void *userdata);

/* Subscribes to DESTROY events (non-blocking socket, receive buffer `rcvbuf` bytes, 0: 4 MiB).
 * Only entries whose mark & mark_mask is non-zero are reported; mark_mask 0 reports every
 * entry. Filtering happens in userspace: ctnetlink has no mark filter for event groups.
 * Only entries created while a listener exists carry the event extension (the kernel's
 * default nf_conntrack_events=2), so open this before the traffic it should see. */
int ct_events_open(struct ct_events **ret, uint32_t mark_mask, size_t rcvbuf, ct_destroy_cb cb,
		   void *userdata);
void ct_events_close(struct ct_events *ev);
int ct_events_fd(const struct ct_events *ev);
/* Reads the events that are ready, at most a bounded number of datagrams per call so that an
 * event storm cannot starve the loop (the fd then stays readable). An ENOBUFS overrun (events
 * lost) is counted, not fatal: flows whose end was missed are aged out by the tracker.
 * Malformed or unexpected messages are counted and skipped. Returns 0 or a fatal error. */
int ct_events_dispatch(struct ct_events *ev);
/* Events lost to receive-buffer overruns so far: the socket's drop count (SO_MEMINFO), or the
 * number of ENOBUFS reports when the kernel cannot tell. */
uint64_t ct_events_lost(const struct ct_events *ev);
/* Messages skipped so far because they were malformed, truncated or unexpected. */
uint64_t ct_events_errors(const struct ct_events *ev);

/* Current counters of one entry, looked up by its original tuple (f's family, addresses,
 * ports, protocol; the default zone). Fills ret (including has_counters). -ENOENT when the
 * entry is gone; -EINVAL from the kernel for protocols whose tuple needs more than ports
 * (ICMP). Synchronous: one short-lived netlink socket per call. */
int ct_get(const struct ct_flow *f, struct ct_flow *ret);
/* Deletes one entry by its original tuple (as ct_get); listeners get its DESTROY event.
 * -ENOENT when it is already gone. */
int ct_delete(const struct ct_flow *f);

/* Size of the buffer ct_msg_build() needs. */
#define CT_MSG_BUILD_SIZE 256
/* Builds a ctnetlink request of `type` (IPCTNL_MSG_CT_GET, _DELETE, ...) carrying f's original
 * tuple into buf (CT_MSG_BUILD_SIZE bytes). Exposed for the unit tests. */
struct nlmsghdr *ct_msg_build(void *buf, uint16_t type, uint32_t seq, const struct ct_flow *f);
/* Parses one ctnetlink conntrack message (IPCTNL_MSG_CT_NEW or _DELETE) whose nlmsg_len the
 * caller has checked against its buffer (mnl_nlmsg_ok). -EBADMSG when it is malformed or lacks
 * the original tuple. Exposed for the unit tests. */
int ct_msg_parse(const struct nlmsghdr *nlh, struct ct_flow *ret);

/* Turns connection accounting on in this network namespace, remembering the old value.
 * Only entries created afterwards have counters. -ENOENT when the namespace has no conntrack
 * sysctls yet (nf_conntrack not loaded or not used there). */
int ct_acct_enable(void);
/* Restores the value ct_acct_enable() found; a no-op (0) when it changed nothing. */
int ct_acct_restore(void);
