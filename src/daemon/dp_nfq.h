/* A reusable NFQUEUE reader: one queue, one non-blocking netlink socket, batched verdicts.
 *
 * Run dp_nfq_dispatch() whenever dp_nfq_fd() is readable. The callback sees each packet once
 * and fills a verdict; DP_VERDICT_DEFER keeps the packet in the kernel until dp_nfq_verdict()
 * answers it. Verdicts are sent when a read finds the socket empty, so a caller never needs
 * a timer for latency; dp_nfq_flush() exists for callers that answer deferred packets in bulk. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_NFQ_F_GSO (1u << 0)       /* whole GSO packets, checksums maybe not ready (fast) */
#define DP_NFQ_F_FAIL_OPEN (1u << 1) /* accept instead of drop when the queue is full */
#define DP_NFQ_F_UID_GID (1u << 2)   /* uid/gid of the sending socket when known */
#define DP_NFQ_F_CONNTRACK (1u << 3) /* conntrack info (only ct info is parsed today) */

struct dp_nfq_options {
	uint32_t copy_range;   /* payload bytes copied to us; 0: 0xffff */
	uint32_t queue_maxlen; /* packets the kernel holds for us; 0: kernel default (1024) */
	uint32_t flags;        /* DP_NFQ_F_* */
	uint32_t rcvbuf;       /* socket receive buffer; 0: 8 MiB */
};

/* A queued packet as the callback sees it. Valid only during the callback. */
struct dp_packet {
	uint32_t id;
	uint16_t hw_protocol; /* ETH_P_IP / ETH_P_IPV6, host order */
	uint8_t hook;         /* NF_INET_* */
	uint32_t mark;
	bool has_uid, has_gid;
	uint32_t uid, gid;
	uint32_t indev, outdev; /* ifindex, 0 when absent */
	bool has_ct_info;
	uint32_t ct_info; /* enum ip_conntrack_info, with DP_NFQ_F_CONNTRACK */
	const uint8_t *payload;
	size_t len;      /* bytes at payload (at most copy_range) */
	size_t orig_len; /* the packet's length in the kernel */
	/* Checksums not filled in yet (CSUMNOTREADY, typical with DP_NFQ_F_GSO): a replacement
	 * payload derived from this one must compute complete checksums itself. */
	bool csum_not_ready;
	bool gso;
};

enum dp_verdict_kind {
	DP_VERDICT_ACCEPT,
	DP_VERDICT_DROP,
	DP_VERDICT_REPEAT, /* run the hook again from the top; set a mark the rule skips */
	DP_VERDICT_DEFER,  /* answer later with dp_nfq_verdict() */
};

struct dp_verdict {
	enum dp_verdict_kind kind;
	bool set_mark;
	uint32_t mark;
	const void *payload; /* replacement packet, or NULL; copied before the call returns */
	size_t payload_len;
};

struct dp_nfq_stats {
	uint64_t received;
	uint64_t accepted;
	uint64_t dropped;
	uint64_t repeated;
	uint64_t deferred;
	uint64_t batch_msgs;   /* NFQNL_MSG_VERDICT_BATCH messages sent */
	uint64_t verdict_msgs; /* individual NFQNL_MSG_VERDICT messages sent */
	uint64_t sends;        /* sendmsg calls carrying verdicts */
	uint64_t errors;       /* error replies from the kernel, malformed messages */
};

struct dp_nfq;
struct nlmsghdr;

/* Parses one NFQNL_MSG_PACKET message (for readers with their own socket loop, such as the
 * packet filter's): 0, or -EBADMSG without a packet header. payload points into nlh. */
int dp_nfq_parse_packet(const struct nlmsghdr *nlh, struct dp_packet *ret);

/* The callback: v arrives as a plain ACCEPT. It may call dp_nfq_verdict() for other, earlier
 * deferred packets but must not close q. */
typedef void (*dp_nfq_cb)(struct dp_nfq *q, const struct dp_packet *p, struct dp_verdict *v, void *userdata);

/* Binds queue `queue` (-EBUSY when another process has it). o may be NULL for defaults. */
int dp_nfq_open(struct dp_nfq **ret, uint16_t queue, const struct dp_nfq_options *o, dp_nfq_cb cb,
		void *userdata);
/* Sends pending verdicts and closes; the kernel drops packets still deferred. */
void dp_nfq_close(struct dp_nfq *q);
int dp_nfq_fd(const struct dp_nfq *q);
/* Reads until the socket is empty, then sends all verdicts. Returns 0 or a fatal error. */
int dp_nfq_dispatch(struct dp_nfq *q);
/* Answers a deferred packet (-ENOENT when id is not deferred; kind must not be DEFER). Sent
 * at once outside dispatch, with the batch at the end of dispatch inside it. */
int dp_nfq_verdict(struct dp_nfq *q, uint32_t id, const struct dp_verdict *v);
/* Sends every verdict collected so far. */
int dp_nfq_flush(struct dp_nfq *q);
/* Turns DP_NFQ_F_FAIL_OPEN on or off on an open queue without disturbing held packets. */
int dp_nfq_set_fail_open(struct dp_nfq *q, bool fail_open);
void dp_nfq_get_stats(const struct dp_nfq *q, struct dp_nfq_stats *ret);
