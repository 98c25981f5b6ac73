/* The wire protocol between netextd and an extension process.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET socketpair made by netextd; the extension's end sits
 * at fd 3. One datagram is one frame, so a frame is never split or merged; the header's
 * length must equal the datagram's length.
 *
 * Frame: a 16-byte header in network byte order, then the payload:
 *     u16 type     enum ne_msg_type
 *     u16 flags    0 (reserved; a frame with other bits set is malformed)
 *     u32 length   header + payload, at most NE_WIRE_MAX
 *     u64 id       request id (replies echo it); 0 where a type says so
 * Payload fields are encoded with the put/get helpers below, in the order each message's
 * comment gives; strings are u16 length + bytes (no NUL), byte blobs u32 length + bytes.
 * A decoder consumes the payload exactly: trailing bytes are malformed.
 *
 * Trust: the daemon treats every frame from an extension as hostile. It checks, in this
 * order: that the type may be sent by an extension (ne_msg_from_extension), the header,
 * the exact decode, then that the message fits the conversation (handshake first, replies
 * only to outstanding requests). Any failure is a protocol fault: the daemon logs the
 * fault, closes the channel and restarts the extension. Only the daemon passes fds. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NE_WIRE_VERSION 1
#define NE_WIRE_HDR_LEN 16
#define NE_WIRE_MAX (128 * 1024)
#define NE_WIRE_MAX_FDS 4
#define NE_WIRE_STR_MAX 1024    /* longest string field */
#define NE_WIRE_NAME_MAX 128    /* identifiers, configuration names */
#define NE_WIRE_OPTIONS_MAX 64  /* key/value pairs in a start request */
#define NE_WIRE_BLOB_MAX 65536  /* app message bodies */
#define NE_EXTENSION_FD 3       /* where the extension finds its channel */

enum ne_msg_type {
	NE_MSG_HELLO = 1,        /* E→D id 0: u16 min_version, u16 max_version, str library,
				  *           u16 n, n × u16 provider type offered */
	NE_MSG_WELCOME = 2,      /* D→E id 0: u16 version, str identifier, u32 heartbeat_ms */
	NE_MSG_PING = 3,         /* D→E id seq: empty */
	NE_MSG_PONG = 4,         /* E→D id seq: empty */
	NE_MSG_START = 5,        /* D→E id req: u32 provider, u16 type, str config,
				  *             u16 n, n × (str key, str value) */
	NE_MSG_START_DONE = 6,   /* E→D id req: i32 error, str message */
	NE_MSG_STOP = 7,         /* D→E id req: u32 provider, u32 reason */
	NE_MSG_STOP_DONE = 8,    /* E→D id req: empty */
	NE_MSG_APP_MESSAGE = 9,  /* D→E id req: u32 provider, blob data */
	NE_MSG_APP_REPLY = 10,   /* E→D id req: i32 error, blob data */
	NE_MSG_LOG = 11,         /* E→D id 0: u8 level, str text */
	NE_MSG_RESULT = 12,      /* D→E id req: i32 error, str message (answers FILTER_SETTINGS) */
	NE_MSG_FILTER_SETTINGS = 13, /* E→D id req: u32 provider, u8 default_action,
				  *             u32 report_flags, u32 stats_interval_ms,
				  *             u16 n, n × rule (ne_wire_rule below) */
	NE_MSG_FLOW_NEW = 14,    /* D→E id flow: u32 provider, flow (ne_flow_record below) */
	NE_MSG_FLOW_VERDICT = 15, /* E→D id flow: u32 provider, u8 kind, u8 flags,
				  *             u32 peek_inbound, u32 peek_outbound */
	NE_MSG_FLOW_REPORT = 16, /* D→E id flow: u32 provider, u8 event, u8 verdict,
				  *             u64 bytes_in, u64 bytes_out, u64 packets_in,
				  *             u64 packets_out, str detail, flow */
	NE_MSG_DNS_SETTINGS = 17, /* E→D id 0: u32 provider, u8 mode (0 parsed, 1 raw),
				  *           u8 want_responses (0/1). Sent before START_DONE. */
	NE_MSG_DNS_QUERY = 18,   /* D→E id query: u32 provider, u8 protocol, flow (ne_flow_record),
				  *           blob message (the query as the client sent it) */
	NE_MSG_DNS_VERDICT = 19, /* E→D id query: u32 provider, u8 kind (ne_dns_verdict_kind, not
				  *           LATER), str target, blob message ("" / empty: none) */
	NE_MSG_DNS_RESPONSE = 20, /* D→E id query: u32 provider, blob response */
	NE_MSG_DNS_RESPONSE_VERDICT = 21, /* E→D id query: u32 provider, u8 kind
				  *           (ne_dns_response_kind), blob message */
	NE_MSG_PACKET_SETTINGS = 22, /* E→D id req: u32 provider, u32 copy_range, u16 queues,
				  *             u16 n, n × packet rule (ne_wire_packet_rule below).
				  *             Answered by RESULT. */
	NE_MSG_PACKET_QUEUE = 23, /* D→E id 0: u32 provider, u16 index, u16 count, u32 map_size;
				  *           fds: memfd (pktring.h), eventfd the daemon writes when
				  *           packets are ready, eventfd the extension writes when
				  *           verdicts are. One per queue, before the RESULT of the
				  *           first settings. */
	NE_MSG_TUNNEL_SETTINGS = 24, /* E→D id req: u32 provider, u8 flags (NE_TUNNEL_F_*), str
				  *   remote_address, u32 mtu, u32 overhead, u16 queues, then six lists,
				  *   each u16 n + n × str: addresses, included_routes, excluded_routes,
				  *   dns_servers, search_domains, match_domains. Answered by RESULT;
				  *   TUNNEL_DEVICE comes first when these settings made the device. */
	NE_MSG_TUNNEL_DEVICE = 25, /* D→E id 0: u32 provider, str ifname, u32 ifindex, u32 mtu,
				  *   u16 vnet_hdr_len (0 or 10), u32 offloads (TUN_F_* flags set with
				  *   TUNSETOFFLOAD), u16 count; fds: count TUN queue fds (1..4). */
	NE_MSG_TUNNEL_STATE = 26, /* E→D id 0: u32 provider, u8 reasserting (0/1) */
	NE_MSG_TUNNEL_CANCEL = 27, /* E→D id 0: u32 provider, i32 error, str message: the provider
				  *   gives up (cancelTunnelWithError); the daemon answers with STOP
				  *   (reason PROVIDER_FAILED) and records the error. */
	NE_MSG_TUNNEL_SOCKET = 28, /* E→D id req: u32 provider, u8 family (4, 6, 0: IPv6 socket
				  *   accepting IPv4 too), u8 protocol (17 UDP, 6 TCP), u16 local port
				  *   (0: any). Answered by TUNNEL_SOCKET_FD. */
	NE_MSG_TUNNEL_SOCKET_FD = 29, /* D→E id req: i32 error, str message; fds: the socket (only
				  *   when error is 0), marked so it bypasses every tunnel. */
	NE_MSG_TYPE_MAX = 29,
};

struct ne_msg_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t length;
	uint64_t id;
};

/* A view into a frame: not NUL-terminated, valid as long as the frame buffer. */
struct ne_view {
	const char *p;
	size_t len;
};

struct ne_msg_hello {
	uint16_t min_version, max_version;
	struct ne_view library;
	uint16_t n_providers;
	uint16_t providers[16];
};

struct ne_msg_welcome {
	uint16_t version;
	struct ne_view identifier;
	uint32_t heartbeat_ms;
};

struct ne_msg_start {
	uint32_t provider;
	uint16_t type;
	struct ne_view config;
	uint16_t n_options;
	struct ne_view keys[NE_WIRE_OPTIONS_MAX];
	struct ne_view values[NE_WIRE_OPTIONS_MAX];
};

struct ne_msg_result { /* START_DONE */
	int32_t error;
	struct ne_view message;
};

struct ne_msg_stop {
	uint32_t provider;
	uint32_t reason;
};

struct ne_msg_app_message {
	uint32_t provider;
	struct ne_view data;
};

struct ne_msg_app_reply {
	int32_t error;
	struct ne_view data;
};

struct ne_msg_log {
	uint8_t level;
	struct ne_view text;
};

/* A flow as the daemon describes it to a filter (FLOW_NEW, FLOW_REPORT):
 *     u64 id, u8 direction, u8 family, u8 protocol, 16 × u8 local address, u16 local port,
 *     16 × u8 remote address, u16 remote port, str hostname, i32 pid, i32 ppid,
 *     u8 has_ids, u32 uid, u32 gid, u64 start_time, str executable, str cmdline, str cgroup
 * IPv4 addresses use the first 4 address bytes, the rest zero. */
struct ne_flow_record {
	uint64_t id;
	uint8_t direction; /* ne_flow_direction */
	uint8_t family;    /* 4 or 6: the IP version, not an AF_* value (those differ by OS) */
	uint8_t protocol;
	uint8_t local_addr[16], remote_addr[16];
	uint16_t local_port, remote_port;
	struct ne_view hostname, executable, cmdline, cgroup;
	int32_t pid, ppid;  /* -1 unknown */
	bool has_ids;       /* uid and gid known */
	uint32_t uid, gid;
	uint64_t start_time;
};

/* One filter rule (struct ne_filter_rule):
 *     u8 action, u8 direction, u8 protocol, str remote_network, u16 remote_port,
 *     str remote_hostname, str local_network, u16 local_port, str executable,
 *     u8 match_uid, u32 uid, str cgroup
 * Strings are "" for "any"; their meaning is checked by the daemon, not the decoder. */
struct ne_wire_rule {
	uint8_t action, direction, protocol;
	struct ne_view remote_network, remote_hostname, local_network, executable, cgroup;
	uint16_t remote_port, local_port;
	bool match_uid;
	uint32_t uid;
};

#define NE_WIRE_RULES_MAX 1024

struct ne_msg_filter_settings {
	uint32_t provider;
	uint8_t default_action;
	uint32_t report_flags;
	uint32_t stats_interval_ms;
	uint16_t n_rules;
	struct ne_wire_rule *rules; /* encode: n_rules entries; decode: caller's array of
				     * NE_WIRE_RULES_MAX entries */
};

struct ne_msg_flow_new {
	uint32_t provider;
	struct ne_flow_record flow;
};

struct ne_msg_flow_verdict {
	uint32_t provider;
	uint8_t kind;  /* ne_verdict_kind */
	uint8_t flags; /* bit 0 filter inbound, bit 1 filter outbound */
	uint32_t peek_inbound, peek_outbound;
};

struct ne_msg_flow_report {
	uint32_t provider;
	uint8_t event;   /* ne_filter_report_event */
	uint8_t verdict; /* ne_verdict_kind */
	uint64_t bytes_in, bytes_out, packets_in, packets_out;
	struct ne_view detail;
	struct ne_flow_record flow;
};

struct ne_msg_dns_settings {
	uint32_t provider;
	uint8_t mode;           /* 0 parsed, 1 raw */
	bool want_responses;
};

struct ne_msg_dns_query {
	uint32_t provider;
	uint8_t protocol;       /* IPPROTO_UDP or IPPROTO_TCP */
	struct ne_flow_record flow;
	struct ne_view message; /* at most 65535 bytes */
};

struct ne_msg_dns_verdict {
	uint32_t provider;
	uint8_t kind;           /* 1..4 */
	struct ne_view target;  /* at most NE_WIRE_STR_MAX; decoded without checking its form */
	struct ne_view message;
};

struct ne_msg_dns_response {
	uint32_t provider;
	struct ne_view message;
};

struct ne_msg_dns_response_verdict {
	uint32_t provider;
	uint8_t kind;           /* 1..3 */
	struct ne_view message;
};

/* One packet-filter rule (struct ne_packet_rule):
 *     u8 direction, u8 family (0, 4, 6), u8 protocol, str interface, str local_network,
 *     u16 local_port, str remote_network, u16 remote_port
 * Strings are "" for "any"; the daemon checks their meaning. */
struct ne_wire_packet_rule {
	uint8_t direction, family, protocol;
	struct ne_view interface, local_network, remote_network;
	uint16_t local_port, remote_port;
};

#define NE_WIRE_PACKET_RULES_MAX 256

struct ne_msg_packet_settings {
	uint32_t provider;
	uint32_t copy_range;
	uint16_t queues;
	uint16_t n_rules;
	struct ne_wire_packet_rule *rules; /* encode: n_rules entries; decode: caller's array of
					    * NE_WIRE_PACKET_RULES_MAX entries */
};

struct ne_msg_packet_queue {
	uint32_t provider;
	uint16_t index, count; /* index < count ≤ 8 */
	uint32_t map_size;
};

/* TUNNEL_SETTINGS flags. CLEAR: no settings (setTunnelNetworkSettings(nil)): every other
 * field is empty/zero. */
#define NE_TUNNEL_F_CLEAR 0x01
#define NE_TUNNEL_F_INCLUDE_ALL 0x02
#define NE_TUNNEL_F_EXCLUDE_LOCAL 0x04
#define NE_TUNNEL_F_ENFORCE_ROUTES 0x08
#define NE_TUNNEL_F_ALL 0x0f

#define NE_WIRE_TUNNEL_ADDRESSES_MAX 32
#define NE_WIRE_TUNNEL_ROUTES_MAX 512    /* included, and excluded, each */
#define NE_WIRE_TUNNEL_DNS_MAX 8
#define NE_WIRE_TUNNEL_SEARCH_MAX 16
#define NE_WIRE_TUNNEL_MATCH_MAX 256
#define NE_WIRE_TUNNEL_QUEUES_MAX 4      /* = NE_WIRE_MAX_FDS */

/* Strings are decoded without checking their meaning (the daemon parses and checks them). */
struct ne_msg_tunnel_settings {
	uint32_t provider;
	uint8_t flags;
	struct ne_view remote_address;
	uint32_t mtu, overhead;
	uint16_t queues;
	uint16_t n_addresses, n_included, n_excluded, n_dns, n_search, n_match;
	struct ne_view addresses[NE_WIRE_TUNNEL_ADDRESSES_MAX];
	struct ne_view included[NE_WIRE_TUNNEL_ROUTES_MAX];
	struct ne_view excluded[NE_WIRE_TUNNEL_ROUTES_MAX];
	struct ne_view dns[NE_WIRE_TUNNEL_DNS_MAX];
	struct ne_view search[NE_WIRE_TUNNEL_SEARCH_MAX];
	struct ne_view match[NE_WIRE_TUNNEL_MATCH_MAX];
};

struct ne_msg_tunnel_device {
	uint32_t provider;
	struct ne_view ifname;  /* 1..15 bytes */
	uint32_t ifindex, mtu;
	uint16_t vnet_hdr_len;  /* 0 or 10 */
	uint32_t offloads;
	uint16_t count;         /* 1..NE_WIRE_TUNNEL_QUEUES_MAX */
};

struct ne_msg_tunnel_state {
	uint32_t provider;
	bool reasserting;
};

struct ne_msg_tunnel_cancel {
	uint32_t provider;
	int32_t error;
	struct ne_view message;
};

struct ne_msg_tunnel_socket {
	uint32_t provider;
	uint8_t family;   /* 0, 4, 6 */
	uint8_t protocol; /* 6, 17 */
	uint16_t port;
};

/* TUNNEL_SOCKET_FD has RESULT's payload: struct ne_msg_result (ne_msg_result2_encode with
 * type NE_MSG_TUNNEL_SOCKET_FD, decoded with ne_msg_result_decode). */

/* Output buffer: fixed capacity; an overflow sets err and later puts do nothing. */
struct ne_wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

/* Input cursor: a short read sets err and later gets return zeros. */
struct ne_rbuf {
	const uint8_t *p;
	size_t len, off;
	int err;
};

void ne_put_u8(struct ne_wbuf *b, uint8_t v);
void ne_put_u16(struct ne_wbuf *b, uint16_t v);
void ne_put_u32(struct ne_wbuf *b, uint32_t v);
void ne_put_u64(struct ne_wbuf *b, uint64_t v);
void ne_put_str(struct ne_wbuf *b, const char *s, size_t len);
void ne_put_blob(struct ne_wbuf *b, const void *p, size_t len);

uint8_t ne_get_u8(struct ne_rbuf *b);
uint16_t ne_get_u16(struct ne_rbuf *b);
uint32_t ne_get_u32(struct ne_rbuf *b);
uint64_t ne_get_u64(struct ne_rbuf *b);
/* Strings are limited to max bytes and may not contain NUL or control characters. */
struct ne_view ne_get_str(struct ne_rbuf *b, size_t max);
struct ne_view ne_get_blob(struct ne_rbuf *b, size_t max);

const char *ne_msg_type_name(uint16_t type);
/* Whether an extension may send this type (the daemon refuses everything else). */
bool ne_msg_from_extension(uint16_t type);

/* Starts a frame in b (whose storage is the caller's, ≥ NE_WIRE_HDR_LEN bytes); the
 * encoders below then append the payload and ne_msg_finish writes the length. Returns the
 * frame length, or a negative errno (-EMSGSIZE when the message does not fit). */
void ne_msg_begin(struct ne_wbuf *b, uint16_t type, uint64_t id);
int ne_msg_finish(struct ne_wbuf *b);

/* Parses and validates a header against the datagram length. */
int ne_msg_hdr_decode(const uint8_t *frame, size_t len, struct ne_msg_hdr *ret_hdr);

/* Encoders append a whole frame (header included) to an empty b and return its length or
 * a negative errno. Decoders take the payload (frame + NE_WIRE_HDR_LEN) and fail with
 * -EBADMSG on anything malformed. */
int ne_msg_hello_encode(struct ne_wbuf *b, const struct ne_msg_hello *m);
int ne_msg_hello_decode(const uint8_t *p, size_t len, struct ne_msg_hello *ret);
int ne_msg_welcome_encode(struct ne_wbuf *b, const struct ne_msg_welcome *m);
int ne_msg_welcome_decode(const uint8_t *p, size_t len, struct ne_msg_welcome *ret);
int ne_msg_empty_encode(struct ne_wbuf *b, uint16_t type, uint64_t id); /* PING, PONG, STOP_DONE */
int ne_msg_empty_decode(const uint8_t *p, size_t len);
int ne_msg_start_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_start *m);
int ne_msg_start_decode(const uint8_t *p, size_t len, struct ne_msg_start *ret);
int ne_msg_result_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_result *m);
int ne_msg_result_decode(const uint8_t *p, size_t len, struct ne_msg_result *ret);
int ne_msg_stop_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_stop *m);
int ne_msg_stop_decode(const uint8_t *p, size_t len, struct ne_msg_stop *ret);
int ne_msg_app_message_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_app_message *m);
int ne_msg_app_message_decode(const uint8_t *p, size_t len, struct ne_msg_app_message *ret);
int ne_msg_app_reply_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_app_reply *m);
int ne_msg_app_reply_decode(const uint8_t *p, size_t len, struct ne_msg_app_reply *ret);
int ne_msg_log_encode(struct ne_wbuf *b, const struct ne_msg_log *m);
int ne_msg_log_decode(const uint8_t *p, size_t len, struct ne_msg_log *ret);
/* RESULT has START_DONE's payload: struct ne_msg_result. */
int ne_msg_result2_encode(struct ne_wbuf *b, uint16_t type, uint64_t id, const struct ne_msg_result *m);
int ne_msg_filter_settings_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_filter_settings *m);
int ne_msg_filter_settings_decode(const uint8_t *p, size_t len, struct ne_msg_filter_settings *ret);
int ne_msg_flow_new_encode(struct ne_wbuf *b, const struct ne_msg_flow_new *m);
int ne_msg_flow_new_decode(const uint8_t *p, size_t len, struct ne_msg_flow_new *ret);
int ne_msg_flow_verdict_encode(struct ne_wbuf *b, uint64_t flow_id, const struct ne_msg_flow_verdict *m);
int ne_msg_flow_verdict_decode(const uint8_t *p, size_t len, struct ne_msg_flow_verdict *ret);
int ne_msg_flow_report_encode(struct ne_wbuf *b, const struct ne_msg_flow_report *m);
int ne_msg_flow_report_decode(const uint8_t *p, size_t len, struct ne_msg_flow_report *ret);

int ne_msg_dns_settings_encode(struct ne_wbuf *b, const struct ne_msg_dns_settings *m);
int ne_msg_dns_settings_decode(const uint8_t *p, size_t len, struct ne_msg_dns_settings *ret);
int ne_msg_dns_query_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_dns_query *m);
int ne_msg_dns_query_decode(const uint8_t *p, size_t len, struct ne_msg_dns_query *ret);
int ne_msg_dns_verdict_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_dns_verdict *m);
int ne_msg_dns_verdict_decode(const uint8_t *p, size_t len, struct ne_msg_dns_verdict *ret);
int ne_msg_dns_response_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_dns_response *m);
int ne_msg_dns_response_decode(const uint8_t *p, size_t len, struct ne_msg_dns_response *ret);
int ne_msg_dns_response_verdict_encode(struct ne_wbuf *b, uint64_t id,
				       const struct ne_msg_dns_response_verdict *m);
int ne_msg_dns_response_verdict_decode(const uint8_t *p, size_t len,
				       struct ne_msg_dns_response_verdict *ret);

int ne_msg_packet_settings_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_packet_settings *m);
int ne_msg_packet_settings_decode(const uint8_t *p, size_t len, struct ne_msg_packet_settings *ret);
int ne_msg_packet_queue_encode(struct ne_wbuf *b, const struct ne_msg_packet_queue *m);
int ne_msg_packet_queue_decode(const uint8_t *p, size_t len, struct ne_msg_packet_queue *ret);

int ne_msg_tunnel_settings_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_tunnel_settings *m);
/* ret may be large (~21 KiB): allocate it, don't put it on a small stack. */
int ne_msg_tunnel_settings_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_settings *ret);
int ne_msg_tunnel_device_encode(struct ne_wbuf *b, const struct ne_msg_tunnel_device *m);
int ne_msg_tunnel_device_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_device *ret);
int ne_msg_tunnel_state_encode(struct ne_wbuf *b, const struct ne_msg_tunnel_state *m);
int ne_msg_tunnel_state_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_state *ret);
int ne_msg_tunnel_cancel_encode(struct ne_wbuf *b, const struct ne_msg_tunnel_cancel *m);
int ne_msg_tunnel_cancel_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_cancel *ret);
int ne_msg_tunnel_socket_encode(struct ne_wbuf *b, uint64_t id, const struct ne_msg_tunnel_socket *m);
int ne_msg_tunnel_socket_decode(const uint8_t *p, size_t len, struct ne_msg_tunnel_socket *ret);

/* Socket I/O. send: one frame plus up to NE_WIRE_MAX_FDS fds, non-blocking; -EAGAIN when
 * the peer is not reading. recv: one frame into buf (cap ≥ NE_WIRE_MAX); received fds are
 * close-on-exec and returned in fds (*nfds in: capacity, out: count; pass NULL to refuse
 * fds, which are then closed and reported as -EBADMSG). Returns the frame length, 0 at EOF,
 * -EAGAIN when nothing is ready, -EMSGSIZE for a truncated datagram. */
int ne_wire_send(int fd, const void *frame, size_t len, const int *fds, size_t nfds);
int ne_wire_recv(int fd, uint8_t *buf, size_t cap, int *fds, size_t *nfds);
