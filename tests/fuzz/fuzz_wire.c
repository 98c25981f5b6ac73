/* Fuzz harness for the daemon ⇄ extension codec (src/common/wire.c), the first code that
 * reads bytes from an extension.
 *
 * Besides what ASan/UBSan catch, it checks one property: every payload a decoder accepts
 * re-encodes to exactly the same bytes. A decoder that accepts something its encoder would
 * write differently reads the wire differently from the sender, which is a bug even when
 * it does not crash. The input is tried as a whole frame (header, then the decoder for its
 * type) and, to reach decoders the header check would gate off, as a bare payload for
 * every decoder. */
#include "fuzz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define NOT_DECODED 1 /* a codec's return when the decoder refused the payload */

/* Decodes p with one decoder; if it accepts, re-encodes into b and returns the frame
 * length (or the encoder's negative errno). */
typedef int (*roundtrip_fn)(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b);

struct codec {
	uint16_t type;  /* the type the encoder writes */
	bool has_id;    /* whether the encoder writes the caller's id (else 0) */
	roundtrip_fn fn;
};

static uint8_t out[NE_WIRE_MAX];

/* Decoders write their output only on success (STYLE.md): a refused frame must leave the
 * caller's struct as it was, since callers may keep using it. */
static void poison(void *m, size_t size)
{
	memset(m, 0xa5, size);
}

static int refused(const void *m, size_t size)
{
	const uint8_t *b = m;
	size_t i;

	for (i = 0; i < size; i++)
		if (b[i] != 0xa5) {
			fprintf(stderr, "fuzz-wire: a decoder wrote its output on failure\n");
			abort();
		}
	return NOT_DECODED;
}

static int rt_hello(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_hello m;

	poison(&m, sizeof(m));
	if (ne_msg_hello_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_hello_encode(b, &m);
}

static int rt_welcome(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_welcome m;

	poison(&m, sizeof(m));
	if (ne_msg_welcome_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_welcome_encode(b, &m);
}

static int rt_empty(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	if (ne_msg_empty_decode(p, n) < 0)
		return NOT_DECODED;
	return ne_msg_empty_encode(b, type, id);
}

static int rt_start(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	static struct ne_msg_start m; /* 2 KiB of views: keep it off the stack */

	poison(&m, sizeof(m));
	if (ne_msg_start_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_start_encode(b, id, &m);
}

static int rt_result(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_result m;

	poison(&m, sizeof(m));
	if (ne_msg_result_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_result_encode(b, id, &m);
}

static int rt_stop(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_stop m;

	poison(&m, sizeof(m));
	if (ne_msg_stop_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_stop_encode(b, id, &m);
}

static int rt_app_message(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_app_message m;

	poison(&m, sizeof(m));
	if (ne_msg_app_message_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_app_message_encode(b, id, &m);
}

static int rt_app_reply(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_app_reply m;

	poison(&m, sizeof(m));
	if (ne_msg_app_reply_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_app_reply_encode(b, id, &m);
}

static int rt_log(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_log m;

	poison(&m, sizeof(m));
	if (ne_msg_log_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_log_encode(b, &m);
}

static int rt_result2(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_result m;

	poison(&m, sizeof(m));
	if (ne_msg_result_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_result2_encode(b, type, id, &m);
}

static int rt_filter_settings(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	static struct ne_wire_rule rules[NE_WIRE_RULES_MAX];
	struct ne_msg_filter_settings m;

	poison(&m, sizeof(m));
	m.rules = rules;
	if (ne_msg_filter_settings_decode(p, n, &m) < 0) {
		if (m.rules != rules)
			abort();
		m.rules = (void *)(uintptr_t)0xa5a5a5a5a5a5a5a5ULL;
		return refused(&m, sizeof(m));
	}
	return ne_msg_filter_settings_encode(b, id, &m);
}

static int rt_flow_new(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_flow_new m;

	poison(&m, sizeof(m));
	if (ne_msg_flow_new_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_flow_new_encode(b, &m);
}

static int rt_flow_verdict(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_flow_verdict m;

	poison(&m, sizeof(m));
	if (ne_msg_flow_verdict_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_flow_verdict_encode(b, id, &m);
}

static int rt_flow_report(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_flow_report m;

	poison(&m, sizeof(m));
	if (ne_msg_flow_report_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_flow_report_encode(b, &m);
}

static int rt_dns_settings(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_dns_settings m;

	poison(&m, sizeof(m));
	if (ne_msg_dns_settings_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_dns_settings_encode(b, &m);
}

static int rt_dns_query(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_dns_query m;

	poison(&m, sizeof(m));
	if (ne_msg_dns_query_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_dns_query_encode(b, id, &m);
}

static int rt_dns_verdict(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_dns_verdict m;

	poison(&m, sizeof(m));
	if (ne_msg_dns_verdict_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_dns_verdict_encode(b, id, &m);
}

static int rt_dns_response(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_dns_response m;

	poison(&m, sizeof(m));
	if (ne_msg_dns_response_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_dns_response_encode(b, id, &m);
}

static int rt_dns_response_verdict(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_dns_response_verdict m;

	poison(&m, sizeof(m));
	if (ne_msg_dns_response_verdict_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_dns_response_verdict_encode(b, id, &m);
}

static int rt_packet_settings(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	static struct ne_wire_packet_rule rules[NE_WIRE_PACKET_RULES_MAX];
	struct ne_msg_packet_settings m;

	poison(&m, sizeof(m));
	m.rules = rules;
	if (ne_msg_packet_settings_decode(p, n, &m) < 0) {
		if (m.rules != rules)
			abort();
		m.rules = (void *)(uintptr_t)0xa5a5a5a5a5a5a5a5ULL;
		return refused(&m, sizeof(m));
	}
	return ne_msg_packet_settings_encode(b, id, &m);
}

static int rt_packet_queue(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_packet_queue m;

	poison(&m, sizeof(m));
	if (ne_msg_packet_queue_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_packet_queue_encode(b, &m);
}

static int rt_tunnel_settings(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	static struct ne_msg_tunnel_settings m;

	poison(&m, sizeof(m));
	if (ne_msg_tunnel_settings_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_tunnel_settings_encode(b, id, &m);
}

static int rt_tunnel_device(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_tunnel_device m;

	poison(&m, sizeof(m));
	if (ne_msg_tunnel_device_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_tunnel_device_encode(b, &m);
}

static int rt_tunnel_state(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_tunnel_state m;

	poison(&m, sizeof(m));
	if (ne_msg_tunnel_state_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_tunnel_state_encode(b, &m);
}

static int rt_tunnel_cancel(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_tunnel_cancel m;

	poison(&m, sizeof(m));
	if (ne_msg_tunnel_cancel_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_tunnel_cancel_encode(b, &m);
}

static int rt_tunnel_socket(const uint8_t *p, size_t n, uint16_t type, uint64_t id, struct ne_wbuf *b)
{
	struct ne_msg_tunnel_socket m;

	poison(&m, sizeof(m));
	if (ne_msg_tunnel_socket_decode(p, n, &m) < 0)
		return refused(&m, sizeof(m));
	return ne_msg_tunnel_socket_encode(b, id, &m);
}

/* Indexed by type - 1. FLOW_NEW and FLOW_REPORT carry the flow's id in the header, not the
 * caller's. */
static const struct codec codecs[NE_MSG_TYPE_MAX] = {
	{ NE_MSG_HELLO, false, rt_hello },
	{ NE_MSG_WELCOME, false, rt_welcome },
	{ NE_MSG_PING, true, rt_empty },
	{ NE_MSG_PONG, true, rt_empty },
	{ NE_MSG_START, true, rt_start },
	{ NE_MSG_START_DONE, true, rt_result },
	{ NE_MSG_STOP, true, rt_stop },
	{ NE_MSG_STOP_DONE, true, rt_empty },
	{ NE_MSG_APP_MESSAGE, true, rt_app_message },
	{ NE_MSG_APP_REPLY, true, rt_app_reply },
	{ NE_MSG_LOG, false, rt_log },
	{ NE_MSG_RESULT, true, rt_result2 },
	{ NE_MSG_FILTER_SETTINGS, true, rt_filter_settings },
	{ NE_MSG_FLOW_NEW, false, rt_flow_new },
	{ NE_MSG_FLOW_VERDICT, true, rt_flow_verdict },
	{ NE_MSG_FLOW_REPORT, false, rt_flow_report },
	{ NE_MSG_DNS_SETTINGS, false, rt_dns_settings },
	{ NE_MSG_DNS_QUERY, true, rt_dns_query },
	{ NE_MSG_DNS_VERDICT, true, rt_dns_verdict },
	{ NE_MSG_DNS_RESPONSE, true, rt_dns_response },
	{ NE_MSG_DNS_RESPONSE_VERDICT, true, rt_dns_response_verdict },
	{ NE_MSG_PACKET_SETTINGS, true, rt_packet_settings },
	{ NE_MSG_PACKET_QUEUE, false, rt_packet_queue },
	{ NE_MSG_TUNNEL_SETTINGS, true, rt_tunnel_settings },
	{ NE_MSG_TUNNEL_DEVICE, false, rt_tunnel_device },
	{ NE_MSG_TUNNEL_STATE, false, rt_tunnel_state },
	{ NE_MSG_TUNNEL_CANCEL, false, rt_tunnel_cancel },
	{ NE_MSG_TUNNEL_SOCKET, true, rt_tunnel_socket },
	{ NE_MSG_TUNNEL_SOCKET_FD, true, rt_result2 },
};

static void die(const struct codec *c, const char *why)
{
	fprintf(stderr, "fuzz-wire: %s: %s\n", ne_msg_type_name(c->type), why);
	abort();
}

/* hdr, when not NULL, is the input's header, which the re-encoded frame must also match
 * (except the id for encoders that always write 0). */
static void roundtrip(const struct codec *c, const uint8_t *hdr, const uint8_t *p, size_t n, uint64_t id)
{
	struct ne_wbuf b = { out, 0, sizeof(out), 0 };
	int len = c->fn(p, n, c->type, id, &b);

	if (len == NOT_DECODED)
		return;
	if (len < 0)
		die(c, "the encoder refuses what the decoder accepted");
	if ((size_t)len != NE_WIRE_HDR_LEN + n || (n && memcmp(out + NE_WIRE_HDR_LEN, p, n) != 0))
		die(c, "re-encoded payload differs from the decoded one");
	if (hdr && memcmp(out, hdr, c->has_id ? NE_WIRE_HDR_LEN : 8) != 0)
		die(c, "re-encoded header differs from the decoded one");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ne_msg_hdr h;
	size_t i;

	if (ne_msg_hdr_decode(data, size, &h) == 0) {
		const struct codec *c = &codecs[h.type - 1];

		if (c->type != h.type)
			die(c, "codec table out of order");
		(void)ne_msg_from_extension(h.type);
		roundtrip(c, data, data + NE_WIRE_HDR_LEN, size - NE_WIRE_HDR_LEN, h.id);
	}
	for (i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++)
		roundtrip(&codecs[i], NULL, data, size, 0);
	return 0;
}

/* One valid frame of every type, for the standalone driver and the seed corpus. */
static void add_frame(fuzz_add_fn add, void *userdata, int len)
{
	if (len < 0) {
		fprintf(stderr, "fuzz-wire: building a seed failed: %d\n", len);
		abort();
	}
	add(out, (size_t)len, userdata);
}

static void add_filter_frames(fuzz_add_fn add, void *userdata, struct ne_wbuf *b)
{
	static struct ne_wire_rule rules[2] = {
		{ .action = 2, .direction = 1, .protocol = 6, .remote_network = { "198.18.0.0/15", 13 },
		  .remote_port = 443, .remote_hostname = { "example.com", 11 } },
		{ .action = 3, .executable = { "/usr/bin/curl", 13 }, .match_uid = true, .uid = 1000,
		  .cgroup = { "/user.slice", 11 } },
	};
	struct ne_msg_filter_settings fs = { 7, 3, 3, 1000, 2, rules };
	struct ne_msg_result res = { 0, { "", 0 } };
	struct ne_msg_flow_new fn = { .provider = 7, .flow = {
		.id = 42, .direction = 1, .family = 4, .protocol = 6, .local_addr = { 198, 18, 1, 1 },
		.local_port = 40000, .remote_addr = { 198, 18, 1, 2 }, .remote_port = 80,
		.hostname = { "web.test", 8 }, .pid = 123, .ppid = 1, .has_ids = true, .uid = 65534,
		.gid = 65534, .start_time = 4711, .executable = { "/usr/bin/curl", 13 },
		.cmdline = { "curl http://web.test/", 21 }, .cgroup = { "/x", 2 } } };
	struct ne_msg_flow_verdict fv = { 7, 3, 0, 0, 0 };
	struct ne_msg_flow_report fr = { .provider = 7, .event = 2, .verdict = 1, .bytes_in = 1000,
					 .bytes_out = 200, .packets_in = 5, .packets_out = 4,
					 .detail = { "", 0 }, .flow = fn.flow };

	add_frame(add, userdata, ne_msg_result2_encode(b, NE_MSG_RESULT, (uint64_t)7 << 32 | 1, &res));
	add_frame(add, userdata, ne_msg_filter_settings_encode(b, (uint64_t)7 << 32 | 1, &fs));
	add_frame(add, userdata, ne_msg_flow_new_encode(b, &fn));
	add_frame(add, userdata, ne_msg_flow_verdict_encode(b, 42, &fv));
	add_frame(add, userdata, ne_msg_flow_report_encode(b, &fr));
}

static void add_dns_frames(fuzz_add_fn add, void *userdata, struct ne_wbuf *b)
{
	/* example. A, and an answer to it (192.0.2.1, TTL 60). */
	static const char q[] = "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
				"\x07" "example" "\x00\x00\x01\x00\x01";
	static const char a[] = "\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
				"\x07" "example" "\x00\x00\x01\x00\x01"
				"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x01";
	struct ne_msg_dns_settings st = { 7, 0, true };
	struct ne_msg_dns_query dq = { .provider = 7, .protocol = 17, .flow = {
		.id = 77, .direction = 1, .family = 4, .protocol = 17, .local_addr = { 127, 0, 0, 1 },
		.local_port = 40000, .remote_addr = { 10, 0, 0, 53 }, .remote_port = 53, .pid = 123,
		.ppid = 1, .has_ids = true, .uid = 1000, .gid = 1000, .start_time = 4711,
		.executable = { "/usr/bin/dig", 12 }, .cmdline = { "dig example", 11 } },
		.message = { q, sizeof(q) - 1 } };
	struct ne_msg_dns_verdict fwd = { 7, 1, { "10.0.0.53:53", 12 }, { "", 0 } };
	struct ne_msg_dns_verdict ans = { 7, 2, { "", 0 }, { a, sizeof(a) - 1 } };
	struct ne_msg_dns_response resp = { 7, { a, sizeof(a) - 1 } };
	struct ne_msg_dns_response_verdict rv = { 7, 2, { a, sizeof(a) - 1 } };

	add_frame(add, userdata, ne_msg_dns_settings_encode(b, &st));
	add_frame(add, userdata, ne_msg_dns_query_encode(b, 77, &dq));
	add_frame(add, userdata, ne_msg_dns_verdict_encode(b, 77, &fwd));
	add_frame(add, userdata, ne_msg_dns_verdict_encode(b, 77, &ans));
	add_frame(add, userdata, ne_msg_dns_response_encode(b, 77, &resp));
	add_frame(add, userdata, ne_msg_dns_response_verdict_encode(b, 77, &rv));
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static const struct ne_view keys[] = { { "greeting", 8 }, { "mtu", 3 } };
	static const struct ne_view values[] = { { "hello", 5 }, { "1400", 4 } };
	struct ne_wbuf b = { out, 0, sizeof(out), 0 };
	struct ne_msg_hello hello = { 1, 1, { "libnetext 0.1.0", 15 }, 2, { 1, 3 } };
	struct ne_msg_welcome welcome = { 1, { "com.example.filter", 18 }, 5000 };
	struct ne_msg_result result = { -22, { "bad option", 10 } };
	struct ne_msg_stop stop = { 7, 2 };
	struct ne_msg_app_message msg = { 7, { "\x00\x01\x02ping", 7 } };
	struct ne_msg_app_reply reply = { 0, { "pong", 4 } };
	struct ne_msg_log lg = { 6, { "started", 7 } };
	static struct ne_msg_start start = { .provider = 7, .type = 1, .config = { "demo", 4 }, .n_options = 2 };

	memcpy(start.keys, keys, sizeof(keys));
	memcpy(start.values, values, sizeof(values));
	add_frame(add, userdata, ne_msg_hello_encode(&b, &hello));
	add_frame(add, userdata, ne_msg_welcome_encode(&b, &welcome));
	add_frame(add, userdata, ne_msg_empty_encode(&b, NE_MSG_PING, 1));
	add_frame(add, userdata, ne_msg_empty_encode(&b, NE_MSG_PONG, 1));
	add_frame(add, userdata, ne_msg_start_encode(&b, 2, &start));
	add_frame(add, userdata, ne_msg_result_encode(&b, 2, &result));
	add_frame(add, userdata, ne_msg_stop_encode(&b, 3, &stop));
	add_frame(add, userdata, ne_msg_empty_encode(&b, NE_MSG_STOP_DONE, 3));
	add_frame(add, userdata, ne_msg_app_message_encode(&b, 4, &msg));
	add_frame(add, userdata, ne_msg_app_reply_encode(&b, 4, &reply));
	add_frame(add, userdata, ne_msg_log_encode(&b, &lg));
	add_filter_frames(add, userdata, &b);
	add_dns_frames(add, userdata, &b);
}
