/* Round trips and malformed input for the daemon ⇄ extension codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

static uint8_t frame[NE_WIRE_MAX];

static struct ne_view V(const char *s)
{
	struct ne_view v = { s, strlen(s) };
	return v;
}

static int eqv(struct ne_view v, const char *s)
{
	return v.len == strlen(s) && memcmp(v.p, s, v.len) == 0;
}

static void test_start_roundtrip(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_start m = { .provider = 7, .type = 1, .config = V("demo"), .n_options = 2 };
	struct ne_msg_start d;
	struct ne_msg_hdr h;
	int len;

	m.keys[0] = V("greeting");
	m.values[0] = V("hello");
	m.keys[1] = V("empty");
	m.values[1] = V("");
	len = ne_msg_start_encode(&b, 42, &m);
	assert_true(len > NE_WIRE_HDR_LEN);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), 0);
	assert_int_equal(h.type, NE_MSG_START);
	assert_int_equal(h.id, 42);
	assert_int_equal(h.length, len);
	assert_int_equal(ne_msg_start_decode(frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, &d), 0);
	assert_int_equal(d.provider, 7);
	assert_true(eqv(d.config, "demo"));
	assert_int_equal(d.n_options, 2);
	assert_true(eqv(d.keys[0], "greeting") && eqv(d.values[0], "hello"));
	assert_true(eqv(d.values[1], ""));

	/* Every truncation of the payload is refused. */
	for (int cut = NE_WIRE_HDR_LEN; cut < len; cut++)
		assert_int_equal(ne_msg_start_decode(frame + NE_WIRE_HDR_LEN, (size_t)cut - NE_WIRE_HDR_LEN, &d), -EBADMSG);
	/* The header must match the datagram length. */
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len - 1, &h), -EBADMSG);
	(void)state;
}

static void test_hello_and_reply(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_hello hi = { 1, 1, { "libnetext 0.1.0", 15 }, 2, { 1, 3 } }, dh;
	struct ne_msg_app_reply r = { -EIO, { "abc", 3 } }, dr;
	int len;

	len = ne_msg_hello_encode(&b, &hi);
	assert_true(len > 0);
	assert_int_equal(ne_msg_hello_decode(frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, &dh), 0);
	assert_int_equal(dh.n_providers, 2);
	assert_int_equal(dh.providers[1], 3);

	len = ne_msg_app_reply_encode(&b, 9, &r);
	assert_int_equal(ne_msg_app_reply_decode(frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, &dr), 0);
	assert_int_equal(dr.error, -EIO);
	assert_true(eqv(dr.data, "abc"));
	(void)state;
}

static void test_malformed(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_log lg = { 6, { "ok", 2 } }, dl;
	struct ne_msg_hdr h;
	int len;

	len = ne_msg_log_encode(&b, &lg);
	assert_int_equal(ne_msg_log_decode(frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, &dl), 0);
	/* Control characters in strings are refused. */
	frame[len - 1] = '\n';
	assert_int_equal(ne_msg_log_decode(frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, &dl), -EBADMSG);
	/* Reserved flags, unknown types and short frames. */
	len = ne_msg_empty_encode(&b, NE_MSG_PONG, 1);
	frame[3] = 1;
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), -EBADMSG);
	frame[3] = 0;
	frame[1] = 200;
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), -EPROTO);
	assert_int_equal(ne_msg_hdr_decode(frame, 3, &h), -EBADMSG);
	/* Trailing bytes after an empty payload. */
	assert_int_equal(ne_msg_empty_decode(frame, 1), -EBADMSG);
	/* A positive error code is not a valid result. */
	{
		struct ne_msg_result res = { 5, { "", 0 } }, dres;
		len = ne_msg_result_encode(&b, 1, &res);
		assert_int_equal(ne_msg_result_decode(frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, &dres), -EBADMSG);
	}
	assert_false(ne_msg_from_extension(NE_MSG_START));
	assert_true(ne_msg_from_extension(NE_MSG_PONG));
	(void)state;
}

/* A refused START must leave the caller's struct untouched (outputs only on success); the
 * decoder used to fill it field by field before checking the whole payload. */
static void test_start_refused_leaves_output(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_start m = { .provider = 7, .type = 1, .config = V("demo"), .n_options = 1 };
	static struct ne_msg_start d, before;
	int len;

	m.keys[0] = V("k");
	m.values[0] = V("v");
	len = ne_msg_start_encode(&b, 1, &m);
	assert_true(len > 0);
	memset(&d, 0xa5, sizeof(d));
	before = d;
	/* Trailing garbage: every field decodes, then the decode is refused. */
	frame[len] = 0;
	assert_int_equal(ne_msg_start_decode(frame + NE_WIRE_HDR_LEN, (size_t)len + 1 - NE_WIRE_HDR_LEN, &d),
			 -EBADMSG);
	assert_memory_equal(&d, &before, sizeof(d));
	(void)state;
}

static void test_overflow(void **state)
{
	static char big[NE_WIRE_BLOB_MAX + 1];
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_app_message m = { 1, { big, sizeof(big) } };

	assert_int_equal(ne_msg_app_message_encode(&b, 1, &m), -EMSGSIZE);
	b.cap = 20;
	m.data.len = 100;
	assert_int_equal(ne_msg_app_message_encode(&b, 1, &m), -EMSGSIZE);
	(void)state;
}

static void test_socket_fds(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	int sv[2], p[2], fds[NE_WIRE_MAX_FDS];
	size_t nfds = NE_WIRE_MAX_FDS;
	uint8_t in[NE_WIRE_MAX];
	int len;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe(p), 0);
	len = ne_msg_empty_encode(&b, NE_MSG_PING, 3);
	assert_int_equal(ne_wire_send(sv[0], frame, (size_t)len, &p[0], 1), len);
	assert_int_equal(ne_wire_recv(sv[1], in, sizeof(in), fds, &nfds), len);
	assert_int_equal(nfds, 1);
	close(fds[0]);
	/* A receiver that accepts no fds gets -EBADMSG and the fds are closed. */
	assert_int_equal(ne_wire_send(sv[0], frame, (size_t)len, &p[0], 1), len);
	assert_int_equal(ne_wire_recv(sv[1], in, sizeof(in), NULL, NULL), -EBADMSG);
	/* A datagram larger than the buffer is reported, not silently cut. */
	assert_int_equal(ne_wire_send(sv[0], frame, (size_t)len, NULL, 0), len);
	assert_int_equal(ne_wire_recv(sv[1], in, 4, NULL, NULL), -EMSGSIZE);
	assert_int_equal(ne_wire_recv(sv[1], in, sizeof(in), NULL, NULL), -EAGAIN);
	close(sv[0]);
	assert_int_equal(ne_wire_recv(sv[1], in, sizeof(in), NULL, NULL), 0);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	(void)state;
}


/* --- dns proxy ------------------------------------------------------------------------ */

#define PAYLOAD(len) (frame + NE_WIRE_HDR_LEN), ((size_t)(len) - NE_WIRE_HDR_LEN)

static const uint8_t dns_q[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
				 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1 };

static struct ne_flow_record dns_flow(void)
{
	struct ne_flow_record f = { .id = 99, .direction = 1, .family = 6, .protocol = 17,
				    .local_port = 40000, .remote_port = 53, .pid = 321, .ppid = 1,
				    .has_ids = true, .uid = 1000, .gid = 1000, .start_time = 5,
				    .executable = { "/usr/bin/dig", 12 }, .cmdline = { "dig example", 11 } };

	f.local_addr[15] = 1;
	f.remote_addr[0] = 0xfd;
	f.remote_addr[15] = 0x53;
	return f;
}

static void test_dns_settings(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_dns_settings m = { 7, 1, true }, d;
	struct ne_msg_hdr h;
	int len;

	len = ne_msg_dns_settings_encode(&b, &m);
	assert_int_equal(len, NE_WIRE_HDR_LEN + 6);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), 0);
	assert_int_equal(h.type, NE_MSG_DNS_SETTINGS);
	assert_int_equal(h.id, 0);
	assert_int_equal(ne_msg_dns_settings_decode(PAYLOAD(len), &d), 0);
	assert_int_equal(d.provider, 7);
	assert_int_equal(d.mode, 1);
	assert_true(d.want_responses);
	/* Mode and bool in range, exact length. */
	frame[NE_WIRE_HDR_LEN + 4] = 2;
	assert_int_equal(ne_msg_dns_settings_decode(PAYLOAD(len), &d), -EBADMSG);
	frame[NE_WIRE_HDR_LEN + 4] = 0;
	frame[NE_WIRE_HDR_LEN + 5] = 2;
	assert_int_equal(ne_msg_dns_settings_decode(PAYLOAD(len), &d), -EBADMSG);
	frame[NE_WIRE_HDR_LEN + 5] = 0;
	assert_int_equal(ne_msg_dns_settings_decode(PAYLOAD(len), &d), 0);
	assert_false(d.want_responses);
	assert_int_equal(ne_msg_dns_settings_decode(PAYLOAD(len - 1), &d), -EBADMSG);
	assert_int_equal(ne_msg_dns_settings_decode(PAYLOAD(len + 1), &d), -EBADMSG);
	assert_string_equal(ne_msg_type_name(NE_MSG_DNS_SETTINGS), "DNS_SETTINGS");
	(void)state;
}

static void test_dns_query(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_dns_query m = { .provider = 3, .protocol = 17, .flow = dns_flow(),
				      .message = { (const char *)dns_q, sizeof(dns_q) } }, d;
	struct ne_msg_hdr h;
	int len, cut;

	len = ne_msg_dns_query_encode(&b, 99, &m);
	assert_true(len > 0);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), 0);
	assert_int_equal(h.id, 99);
	assert_int_equal(ne_msg_dns_query_decode(PAYLOAD(len), &d), 0);
	assert_int_equal(d.provider, 3);
	assert_int_equal(d.protocol, 17);
	assert_int_equal(d.flow.family, 6);
	assert_int_equal(d.flow.remote_port, 53);
	assert_int_equal(d.flow.pid, 321);
	assert_true(eqv(d.flow.executable, "/usr/bin/dig"));
	assert_int_equal(d.message.len, sizeof(dns_q));
	assert_memory_equal(d.message.p, dns_q, sizeof(dns_q));
	for (cut = NE_WIRE_HDR_LEN; cut < len; cut++)
		assert_int_equal(ne_msg_dns_query_decode(PAYLOAD(cut), &d), -EBADMSG);
	/* Only UDP and TCP. */
	frame[NE_WIRE_HDR_LEN + 4] = 1;
	assert_int_equal(ne_msg_dns_query_decode(PAYLOAD(len), &d), -EBADMSG);
	frame[NE_WIRE_HDR_LEN + 4] = 6;
	assert_int_equal(ne_msg_dns_query_decode(PAYLOAD(len), &d), 0);
	assert_int_equal(d.protocol, 6);
	assert_false(ne_msg_from_extension(NE_MSG_DNS_QUERY));
	assert_false(ne_msg_from_extension(NE_MSG_DNS_RESPONSE));
	(void)state;
}

static void test_dns_verdicts(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_dns_verdict v = { 3, 1, V("10.0.0.53:53"), { (const char *)dns_q, sizeof(dns_q) } }, dv;
	struct ne_msg_dns_response r = { 3, { (const char *)dns_q, sizeof(dns_q) } }, dr;
	struct ne_msg_dns_response_verdict rv = { 3, 2, { (const char *)dns_q, sizeof(dns_q) } }, drv;
	int len, k;

	len = ne_msg_dns_verdict_encode(&b, 5, &v);
	assert_int_equal(ne_msg_dns_verdict_decode(PAYLOAD(len), &dv), 0);
	assert_int_equal(dv.kind, 1);
	assert_true(eqv(dv.target, "10.0.0.53:53"));
	assert_int_equal(dv.message.len, sizeof(dns_q));
	/* Kinds 1..4: LATER never travels. */
	for (k = 0; k < 256; k++) {
		frame[NE_WIRE_HDR_LEN + 4] = (uint8_t)k;
		assert_int_equal(ne_msg_dns_verdict_decode(PAYLOAD(len), &dv), k >= 1 && k <= 4 ? 0 : -EBADMSG);
	}
	v.target = V("");
	v.message = V("");
	len = ne_msg_dns_verdict_encode(&b, 5, &v);
	assert_int_equal(len, NE_WIRE_HDR_LEN + 4 + 1 + 2 + 4);
	assert_int_equal(ne_msg_dns_verdict_decode(PAYLOAD(len), &dv), 0);
	assert_int_equal(dv.target.len, 0);
	assert_int_equal(dv.message.len, 0);

	len = ne_msg_dns_response_encode(&b, 5, &r);
	assert_int_equal(ne_msg_dns_response_decode(PAYLOAD(len), &dr), 0);
	assert_int_equal(dr.message.len, sizeof(dns_q));
	assert_int_equal(ne_msg_dns_response_decode(PAYLOAD(len - 1), &dr), -EBADMSG);

	len = ne_msg_dns_response_verdict_encode(&b, 5, &rv);
	for (k = 0; k < 256; k++) {
		frame[NE_WIRE_HDR_LEN + 4] = (uint8_t)k;
		assert_int_equal(ne_msg_dns_response_verdict_decode(PAYLOAD(len), &drv),
				 k >= 1 && k <= 3 ? 0 : -EBADMSG);
	}
	assert_true(ne_msg_from_extension(NE_MSG_DNS_SETTINGS));
	assert_true(ne_msg_from_extension(NE_MSG_DNS_VERDICT));
	assert_true(ne_msg_from_extension(NE_MSG_DNS_RESPONSE_VERDICT));
	(void)state;
}

/* DNS messages are at most 65535 bytes (their TCP length prefix), target strings at most
 * NE_WIRE_STR_MAX: encoders refuse more, decoders too. */
static void test_dns_limits(void **state)
{
	static char big[65536], target[NE_WIRE_STR_MAX + 1];
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_dns_verdict v = { 3, 2, V(""), { big, sizeof(big) } }, dv;
	struct ne_msg_dns_response r = { 3, { big, sizeof(big) } };
	struct ne_msg_dns_response_verdict rv = { 3, 2, { big, sizeof(big) } };
	struct ne_msg_dns_query q = { .provider = 3, .protocol = 6, .flow = dns_flow(),
				      .message = { big, sizeof(big) } };
	int len;

	assert_int_equal(ne_msg_dns_verdict_encode(&b, 1, &v), -EMSGSIZE);
	assert_int_equal(ne_msg_dns_response_encode(&b, 1, &r), -EMSGSIZE);
	assert_int_equal(ne_msg_dns_response_verdict_encode(&b, 1, &rv), -EMSGSIZE);
	assert_int_equal(ne_msg_dns_query_encode(&b, 1, &q), -EMSGSIZE);
	q.message.len = 65535;
	assert_true(ne_msg_dns_query_encode(&b, 1, &q) > 65535);
	/* A 65536-byte blob built by hand is refused by the decoder. */
	v.message.len = 65535;
	len = ne_msg_dns_verdict_encode(&b, 1, &v);
	assert_true(len > 0);
	assert_int_equal(ne_msg_dns_verdict_decode(PAYLOAD(len), &dv), 0);
	frame[NE_WIRE_HDR_LEN + 4 + 1 + 2 + 1] = 1; /* blob length 0x0000ffff → 0x00010000 */
	frame[NE_WIRE_HDR_LEN + 4 + 1 + 2 + 2] = 0;
	frame[NE_WIRE_HDR_LEN + 4 + 1 + 2 + 3] = 0;
	frame[len] = 0;
	assert_int_equal(ne_msg_dns_verdict_decode(PAYLOAD(len + 1), &dv), -EBADMSG);
	memset(target, 'a', sizeof(target));
	v.message.len = 0;
	v.target = (struct ne_view){ target, sizeof(target) };
	assert_int_equal(ne_msg_dns_verdict_encode(&b, 1, &v), -EMSGSIZE);
	(void)state;
}

static void test_packet_settings(void **state)
{
	static struct ne_wire_packet_rule drules[NE_WIRE_PACKET_RULES_MAX];
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_wire_packet_rule rules[2] = {
		{ .direction = 1, .family = 2, .protocol = 6, .interface = V("eth0"),
		  .local_network = V("10.0.0.0/8"), .remote_network = V(""), .local_port = 0,
		  .remote_port = 443 },
		{ .direction = 2, .family = 10, .protocol = 17, .interface = V(""),
		  .local_network = V(""), .remote_network = V("2001:db8::/32"), .local_port = 53 },
	};
	struct ne_msg_packet_settings m = { .provider = 9, .copy_range = 65535, .queues = 4,
					    .n_rules = 2, .rules = rules };
	struct ne_msg_packet_settings d = { .rules = drules };
	struct ne_msg_hdr h;
	int len;

	len = ne_msg_packet_settings_encode(&b, 77, &m);
	assert_true(len > NE_WIRE_HDR_LEN);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), 0);
	assert_int_equal(h.type, NE_MSG_PACKET_SETTINGS);
	assert_int_equal(h.id, 77);
	assert_int_equal(ne_msg_packet_settings_decode(PAYLOAD(len), &d), 0);
	assert_int_equal(d.provider, 9);
	assert_int_equal(d.copy_range, 65535);
	assert_int_equal(d.queues, 4);
	assert_int_equal(d.n_rules, 2);
	assert_ptr_equal(d.rules, drules);
	assert_int_equal(drules[0].direction, 1);
	assert_int_equal(drules[0].family, 2);
	assert_int_equal(drules[0].protocol, 6);
	assert_true(eqv(drules[0].interface, "eth0"));
	assert_true(eqv(drules[0].local_network, "10.0.0.0/8"));
	assert_true(eqv(drules[0].remote_network, ""));
	assert_int_equal(drules[0].remote_port, 443);
	assert_true(eqv(drules[1].remote_network, "2001:db8::/32"));
	assert_int_equal(drules[1].local_port, 53);
	assert_int_equal(drules[1].protocol, 17);
	for (int cut = NE_WIRE_HDR_LEN; cut < len; cut++)
		assert_int_equal(ne_msg_packet_settings_decode(PAYLOAD(cut), &d), -EBADMSG);
	/* A trailing byte is refused too. */
	assert_int_equal(ne_msg_packet_settings_decode(frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN + 1, &d),
			 -EBADMSG);

	/* No rules at all is a valid message. */
	m.n_rules = 0;
	len = ne_msg_packet_settings_encode(&b, 78, &m);
	assert_int_equal(len, NE_WIRE_HDR_LEN + 4 + 4 + 2 + 2);
	assert_int_equal(ne_msg_packet_settings_decode(PAYLOAD(len), &d), 0);
	assert_int_equal(d.n_rules, 0);
	/* More rules than the decoder's array holds: refused both ways. */
	m.n_rules = NE_WIRE_PACKET_RULES_MAX + 1;
	assert_int_equal(ne_msg_packet_settings_encode(&b, 79, &m), -E2BIG);
	frame[NE_WIRE_HDR_LEN + 10] = (NE_WIRE_PACKET_RULES_MAX + 1) >> 8;
	frame[NE_WIRE_HDR_LEN + 11] = (NE_WIRE_PACKET_RULES_MAX + 1) & 0xff;
	assert_int_equal(ne_msg_packet_settings_decode(PAYLOAD(len), &d), -EBADMSG);

	assert_true(ne_msg_from_extension(NE_MSG_PACKET_SETTINGS));
	(void)state;
}

static void test_packet_queue(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_packet_queue m = { .provider = 5, .index = 2, .count = 4, .map_size = 4096 + 2 * 65536 };
	struct ne_msg_packet_queue d;
	struct ne_msg_hdr h;
	int len;

	len = ne_msg_packet_queue_encode(&b, &m);
	assert_int_equal(len, NE_WIRE_HDR_LEN + 12);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), 0);
	assert_int_equal(h.type, NE_MSG_PACKET_QUEUE);
	assert_int_equal(h.id, 0);
	assert_int_equal(ne_msg_packet_queue_decode(PAYLOAD(len), &d), 0);
	assert_int_equal(d.provider, 5);
	assert_int_equal(d.index, 2);
	assert_int_equal(d.count, 4);
	assert_int_equal(d.map_size, 4096 + 2 * 65536);
	for (int cut = NE_WIRE_HDR_LEN; cut < len; cut++)
		assert_int_equal(ne_msg_packet_queue_decode(PAYLOAD(cut), &d), -EBADMSG);
	/* index < count <= 8 */
	struct { uint16_t index, count; int r; } cases[] = {
		{ 0, 1, 0 }, { 7, 8, 0 }, { 0, 0, -EBADMSG }, { 4, 4, -EBADMSG }, { 0, 9, -EBADMSG },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m.index = cases[i].index;
		m.count = cases[i].count;
		len = ne_msg_packet_queue_encode(&b, &m);
		assert_int_equal(ne_msg_packet_queue_decode(PAYLOAD(len), &d), cases[i].r);
	}
	assert_false(ne_msg_from_extension(NE_MSG_PACKET_QUEUE));
	(void)state;
}

static void test_tunnel_messages(void **state)
{
	static struct ne_msg_tunnel_settings m, d;
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_tunnel_device dev = { .provider = 3, .ifname = V("netext0"), .ifindex = 12,
					    .mtu = 1420, .vnet_hdr_len = 10, .offloads = 0x7f, .count = 2 };
	struct ne_msg_tunnel_device ddev;
	struct ne_msg_tunnel_state st = { 3, true }, dst;
	struct ne_msg_tunnel_cancel cn = { 3, -ECONNREFUSED, V("peer said no") }, dcn;
	struct ne_msg_tunnel_socket so = { 3, 0, 17, 51820 }, dso;
	struct ne_msg_hdr h;
	int len;

	memset(&m, 0, sizeof(m));
	m.provider = 3;
	m.flags = NE_TUNNEL_F_INCLUDE_ALL | NE_TUNNEL_F_EXCLUDE_LOCAL;
	m.remote_address = V("192.0.2.2");
	m.mtu = 1420;
	m.queues = 2;
	m.n_addresses = 2;
	m.addresses[0] = V("10.77.0.1/24");
	m.addresses[1] = V("fd77::1/64");
	m.n_included = 2;
	m.included[0] = V("0.0.0.0/0");
	m.included[1] = V("::/0");
	m.n_excluded = 1;
	m.excluded[0] = V("192.0.2.0/24");
	m.n_dns = 1;
	m.dns[0] = V("10.77.0.53");
	m.n_match = 1;
	m.match[0] = V("corp.example");
	len = ne_msg_tunnel_settings_encode(&b, 41, &m);
	assert_true(len > NE_WIRE_HDR_LEN);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)len, &h), 0);
	assert_int_equal(h.type, NE_MSG_TUNNEL_SETTINGS);
	assert_int_equal(h.id, 41);
	assert_int_equal(ne_msg_tunnel_settings_decode(PAYLOAD(len), &d), 0);
	assert_int_equal(d.flags, m.flags);
	assert_true(eqv(d.remote_address, "192.0.2.2"));
	assert_int_equal(d.mtu, 1420);
	assert_int_equal(d.queues, 2);
	assert_int_equal(d.n_addresses, 2);
	assert_true(eqv(d.addresses[1], "fd77::1/64"));
	assert_int_equal(d.n_included, 2);
	assert_true(eqv(d.included[1], "::/0"));
	assert_true(eqv(d.excluded[0], "192.0.2.0/24"));
	assert_true(eqv(d.dns[0], "10.77.0.53"));
	assert_int_equal(d.n_search, 0);
	assert_true(eqv(d.match[0], "corp.example"));
	for (int cut = NE_WIRE_HDR_LEN; cut < len; cut++)
		assert_int_equal(ne_msg_tunnel_settings_decode(PAYLOAD(cut), &d), -EBADMSG);
	/* Unknown flags and over-long lists are refused. */
	frame[NE_WIRE_HDR_LEN + 4] = 0x80;
	assert_int_equal(ne_msg_tunnel_settings_decode(PAYLOAD(len), &d), -EBADMSG);
	m.n_dns = NE_WIRE_TUNNEL_DNS_MAX + 1;
	assert_int_equal(ne_msg_tunnel_settings_encode(&b, 42, &m), -E2BIG);
	assert_true(ne_msg_from_extension(NE_MSG_TUNNEL_SETTINGS));

	len = ne_msg_tunnel_device_encode(&b, &dev);
	assert_int_equal(ne_msg_tunnel_device_decode(PAYLOAD(len), &ddev), 0);
	assert_true(eqv(ddev.ifname, "netext0"));
	assert_int_equal(ddev.ifindex, 12);
	assert_int_equal(ddev.count, 2);
	assert_false(ne_msg_from_extension(NE_MSG_TUNNEL_DEVICE));
	dev.count = NE_WIRE_TUNNEL_QUEUES_MAX + 1;
	len = ne_msg_tunnel_device_encode(&b, &dev);
	assert_int_equal(ne_msg_tunnel_device_decode(PAYLOAD(len), &ddev), -EBADMSG);
	dev.count = 1;
	dev.vnet_hdr_len = 12;
	len = ne_msg_tunnel_device_encode(&b, &dev);
	assert_int_equal(ne_msg_tunnel_device_decode(PAYLOAD(len), &ddev), -EBADMSG);

	len = ne_msg_tunnel_state_encode(&b, &st);
	assert_int_equal(ne_msg_tunnel_state_decode(PAYLOAD(len), &dst), 0);
	assert_true(dst.reasserting);
	frame[len - 1] = 2;
	assert_int_equal(ne_msg_tunnel_state_decode(PAYLOAD(len), &dst), -EBADMSG);

	len = ne_msg_tunnel_cancel_encode(&b, &cn);
	assert_int_equal(ne_msg_tunnel_cancel_decode(PAYLOAD(len), &dcn), 0);
	assert_int_equal(dcn.error, -ECONNREFUSED);
	assert_true(eqv(dcn.message, "peer said no"));
	cn.error = 5; /* errors are negative errnos */
	len = ne_msg_tunnel_cancel_encode(&b, &cn);
	assert_int_equal(ne_msg_tunnel_cancel_decode(PAYLOAD(len), &dcn), -EBADMSG);

	len = ne_msg_tunnel_socket_encode(&b, 43, &so);
	assert_int_equal(len, NE_WIRE_HDR_LEN + 8);
	assert_int_equal(ne_msg_tunnel_socket_decode(PAYLOAD(len), &dso), 0);
	assert_int_equal(dso.port, 51820);
	assert_int_equal(dso.protocol, 17);
	so.protocol = 1;
	len = ne_msg_tunnel_socket_encode(&b, 43, &so);
	assert_int_equal(ne_msg_tunnel_socket_decode(PAYLOAD(len), &dso), -EBADMSG);
	assert_true(ne_msg_from_extension(NE_MSG_TUNNEL_SOCKET));
	assert_false(ne_msg_from_extension(NE_MSG_TUNNEL_SOCKET_FD));
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_roundtrip),
		cmocka_unit_test(test_hello_and_reply),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_start_refused_leaves_output),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_socket_fds),
		cmocka_unit_test(test_dns_settings),
		cmocka_unit_test(test_dns_query),
		cmocka_unit_test(test_dns_verdicts),
		cmocka_unit_test(test_dns_limits),
		cmocka_unit_test(test_packet_settings),
		cmocka_unit_test(test_packet_queue),
		cmocka_unit_test(test_tunnel_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
