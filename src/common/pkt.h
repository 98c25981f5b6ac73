/* IP packets for the packet filter: a validating parser, checksums, replacement checks and
 * TCP sequence shifts after length changes. Used by netextd (verdicts) and by libnetext (the
 * packet accessors). Pure code: no I/O, no allocation except the seqadj table.
 *
 * Trust: every byte is foreign. pkt_parse() reads nothing beyond len and treats every length
 * field as a claim to check. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 65535

struct pkt_info {
	int family;         /* AF_INET or AF_INET6 */
	uint8_t protocol;   /* transport protocol (after IPv6 extension headers) */
	bool fragment;      /* any IPv4/IPv6 fragment: no transport header to trust */
	bool first_fragment; /* a fragment with offset 0 (transport header present) */
	size_t ip_len;      /* bytes the IP header claims (v4 total length, v6 40 + payload) */
	size_t l4_off;      /* transport header offset (after options / extension headers) */
	size_t l4_hdr_len;  /* transport header length: TCP data offset, UDP 8, ICMP 8; 0 other */
	size_t payload_off; /* transport payload offset (l4_off + l4_hdr_len) */
	size_t payload_len; /* transport payload bytes the headers claim */
	const uint8_t *saddr, *daddr; /* 4 or 16 bytes, into the packet */
	uint16_t sport, dport;       /* host order; 0 without ports */
	uint32_t tcp_seq, tcp_ack;   /* host order */
	uint8_t tcp_flags;
};

/* Parses p. With `truncated` (the copy range cut the packet), len may be less than the IP
 * length the header claims, and transport fields may be missing (l4_hdr_len 0 then);
 * otherwise len must equal it exactly. Returns 0, -EPROTO (not IPv4/IPv6, bad header length
 * or version), -EBADMSG (lengths that do not add up, a transport header that does not fit). */
int pkt_parse(const uint8_t *p, size_t len, bool truncated, struct pkt_info *ret);

/* Checks a replacement `repl` for the original packet `orig` (whose parse is `oi`): same IP
 * version, parses exactly (not truncated), at most PKT_MAX. Returns 0 and its parse in *ret,
 * or -EPROTO (other version), -EBADMSG (malformed), -EMSGSIZE (oversized). */
int pkt_check_replacement(const struct pkt_info *oi, const uint8_t *repl, size_t len, struct pkt_info *ret);

/* Recomputes in place the IPv4 header checksum (v4) and the full TCP, UDP, ICMP or ICMPv6
 * checksum (not for non-first fragments). UDP over IPv4 with a zero checksum stays zero;
 * a computed 0 is sent as 0xffff. */
void pkt_fix_checksums(uint8_t *p, size_t len, const struct pkt_info *pi);
/* Whether the transport checksum (and the v4 header checksum) is correct: for tests, fuzzing
 * and the integration tools. */
bool pkt_checksums_ok(const uint8_t *p, size_t len, const struct pkt_info *pi);
/* The Internet checksum of buf folded from an initial 32-bit sum (RFC 1071). */
uint32_t pkt_csum_add(uint32_t sum, const void *buf, size_t len);
uint16_t pkt_csum_fold(uint32_t sum);

/* TCP sequence shifts, per flow and direction, with the kernel's nf_ct_seqadj semantics
 * generalised to the last 16 change points per direction: a segment gets the offset of the
 * latest change strictly before its start, so retransmissions of older segments keep theirs;
 * the other direction's acknowledgement numbers (and SACK blocks) are shifted back. Flows are found by address and port in either
 * orientation. Bounded: at most `max_flows` (the least recently used is forgotten) and
 * flows idle for idle_sec are dropped by pkt_seqadj_expire(). */
struct pkt_seqadj;

struct pkt_seqadj *pkt_seqadj_new(size_t max_flows, unsigned idle_sec);
void pkt_seqadj_free(struct pkt_seqadj *t);
/* A TCP segment of the flow `pi` (as the sender sent it, before any shift) was replaced by
 * one whose payload is `delta` bytes longer (negative: shorter). Returns 1 when this is the
 * flow's first shift (the caller arranges to see both directions from now on), 0 for a
 * known flow, -ENOMEM. now_sec: a monotonic clock. */
int pkt_seqadj_record(struct pkt_seqadj *t, const struct pkt_info *pi, int32_t delta, uint64_t now_sec);
/* Applies the recorded shifts to a TCP packet in place (sequence number for its own
 * direction, acknowledgement number and SACK blocks for the other); pi is its parse and is
 * updated. Returns 1 when the packet changed (fix the checksums afterwards), 0 when the flow
 * has no shift. A RST or the second FIN schedules the flow's removal (after a short linger for
 * retransmissions); a SYN without ACK on such a flow forgets it at once (a new connection). */
int pkt_seqadj_apply(struct pkt_seqadj *t, uint8_t *p, size_t len, struct pkt_info *pi, uint64_t now_sec);
/* Whether the flow of pi has a shift recorded. */
bool pkt_seqadj_known(struct pkt_seqadj *t, const struct pkt_info *pi);
void pkt_seqadj_expire(struct pkt_seqadj *t, uint64_t now_sec);
size_t pkt_seqadj_count(const struct pkt_seqadj *t);
