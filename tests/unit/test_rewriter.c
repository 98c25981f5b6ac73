/* The rewriter example: pattern replacement within a payload (same length, longer, shorter,
 * several and adjacent occurrences, none, too long), the option escapes and checks, the rules
 * the options become; through the harness, IPv4/IPv6 TCP/UDP replacements that pass netextd's
 * replacement check (pkt_check_replacement) with the right length fields, flows that are not
 * selected, the counters of the stats message, and the allow-all mode without options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netext/harness.h>

#define main rewriter_main
int rewriter_main(void);
#include "../../examples/rewriter/rewriter.c"
#undef main

#include "pkt.h"
#include "testpkt.h"

static int replace(const char *in, const char *m, const char *r, char *out, size_t cap)
{
	size_t len = 0;
	int n = rw_replace((const uint8_t *)in, strlen(in), (const uint8_t *)m, strlen(m),
			   (const uint8_t *)r, strlen(r), (uint8_t *)out, cap, &len);

	if (n > 0)
		out[len] = '\0';
	return n;
}

static void test_replace(void **state)
{
	char out[128];

	assert_int_equal(replace("say hello!", "hello", "HELLO", out, sizeof(out)), 1);
	assert_string_equal(out, "say HELLO!");
	assert_int_equal(replace("hello hello", "hello", "HELLO, WORLD", out, sizeof(out)), 2);
	assert_string_equal(out, "HELLO, WORLD HELLO, WORLD");
	assert_int_equal(replace("hellohello", "hello", "hi", out, sizeof(out)), 2);
	assert_string_equal(out, "hihi");
	assert_int_equal(replace("xhellox", "hello", "", out, sizeof(out)), 1);
	assert_string_equal(out, "xx");
	assert_int_equal(replace("aaa", "aa", "b", out, sizeof(out)), 1); /* not overlapping */
	assert_string_equal(out, "ba");
	assert_int_equal(replace("hell", "hello", "x", out, sizeof(out)), 0);
	assert_int_equal(replace("", "hello", "x", out, sizeof(out)), 0);
	assert_int_equal(replace("hello", "hello", "HELLO, WORLD", out, 11), -ENOBUFS);
	assert_int_equal(replace("hello", "hello", "HELLO, WORLD", out, 12), 1);
	assert_int_equal(replace("hello tail", "hello", "HELLO", out, 9), -ENOBUFS);
}

static void test_unescape(void **state)
{
	uint8_t out[8];
	size_t n = 0;

	assert_int_equal(rw_unescape("a\\n\\x41\\\\", out, sizeof(out), &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "a\nA\\", 4);
	assert_int_equal(rw_unescape("\\x4", out, sizeof(out), &n), -EINVAL);
	assert_int_equal(rw_unescape("\\q", out, sizeof(out), &n), -EINVAL);
	assert_int_equal(rw_unescape("123456789", out, sizeof(out), &n), -EINVAL);
	assert_int_equal(rw_unescape("", out, sizeof(out), &n), 0);
	assert_int_equal(n, 0);
}

static void test_rules(void **state)
{
	struct ne_packet_rule rules[4];
	struct rw rw = { 0 };

	assert_int_equal(rw_rules(&rw, rules), 0); /* allow-all: every packet */
	rw.direction = NE_PACKET_OUTBOUND;
	assert_int_equal(rw_rules(&rw, rules), 1);
	rw.port = 9000;
	assert_int_equal(rw_rules(&rw, rules), 4);
	assert_int_equal(rules[0].protocol, IPPROTO_TCP);
	assert_int_equal(rules[0].remote_port, 9000);
	assert_int_equal(rules[1].local_port, 9000);
	assert_int_equal(rules[3].protocol, IPPROTO_UDP);
	rw.protocol = IPPROTO_UDP;
	assert_int_equal(rw_rules(&rw, rules), 2);
	assert_int_equal(rules[0].protocol, IPPROTO_UDP);
	assert_int_equal(rules[0].direction, NE_PACKET_OUTBOUND);
}

/* --- through the harness ----------------------------------------------------------------- */

static ne_extension *ext;
static ne_harness *h;

static int setup(void **state)
{
	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register_packet_filter(ext, &rewriter_ops, &rewriter_packet_ops, NULL), 0);
	assert_int_equal(ne_harness_new(ext, &h), 0);
	return 0;
}

static int teardown(void **state)
{
	ne_harness_free(h);
	ne_extension_free(ext);
	return 0;
}

static void start(const char *const *opts, int want)
{
	int err = 1;

	assert_int_equal(ne_harness_start(h, "rw", NE_PROVIDER_FILTER_PACKET, opts, &err), 0);
	assert_int_equal(err, want);
}

/* The replacement passes netextd's check and carries the expected payload. */
static void check_rewritten(const uint8_t *orig, size_t olen, const ne_packet_verdict *v, const char *want)
{
	struct pkt_info oi, ri;

	assert_int_equal(v->kind, NE_PACKET_MODIFY);
	assert_int_equal(pkt_parse(orig, olen, false, &oi), 0);
	assert_int_equal(pkt_check_replacement(&oi, v->bytes, v->len, &ri), 0);
	assert_int_equal(ri.payload_len, strlen(want));
	assert_memory_equal((const uint8_t *)v->bytes + ri.payload_off, want, strlen(want));
	assert_int_equal(ri.sport, oi.sport);
	assert_int_equal(ri.dport, oi.dport);
}

static void test_rewrite_flows(void **state)
{
	const char *opts[] = { "match", "hello", "replace", "HELLO, WORLD", "protocol", "tcp", "port", "9000",
			       "stats_interval", "0", NULL };
	ne_packet_verdict v;
	char reply[512];
	uint8_t pkt[2048];
	size_t n, rlen = 0, rules = 0;
	unsigned queues = 0;
	uint64_t id;
	int err = 1;

	start(opts, 0);
	assert_int_equal(ne_harness_packet_settings(h, "rw", &rules, &queues, NULL), 0);
	assert_int_equal(rules, 2);
	assert_int_equal(queues, 1);

	n = testpkt_v4(pkt, IPPROTO_TCP, 40000, 9000, "hello there, hello");
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	check_rewritten(pkt, n, &v, "HELLO, WORLD there, HELLO, WORLD");
	n = testpkt_v6(pkt, IPPROTO_TCP, 9000, 40000, "hello");
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_INBOUND, &id, &v), 0);
	check_rewritten(pkt, n, &v, "HELLO, WORLD");
	/* Not selected: UDP, another port; no occurrence. */
	n = testpkt_v4(pkt, IPPROTO_UDP, 40000, 9000, "hello");
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	n = testpkt_v4(pkt, IPPROTO_TCP, 40000, 80, "hello");
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	n = testpkt_v6(pkt, IPPROTO_TCP, 40000, 9000, "HELLO");
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);

	assert_int_equal(ne_harness_message(h, "rw", "stats", 5, &err, reply, sizeof(reply) - 1, &rlen), 0);
	assert_int_equal(err, 0);
	reply[rlen] = '\0';
	assert_string_equal(reply, "{\"packets\":5,\"selected\":3,\"rewritten\":2,\"occurrences\":3,"
				   "\"bytes_delta\":21,\"skipped\":0}");
	assert_int_equal(ne_harness_stop(h, "rw", NE_STOP_REASON_USER_INITIATED), 0);
}

static void test_rewrite_udp_shorter(void **state)
{
	const char *opts[] = { "match", "\\x00secret\\x00", "replace", "x", "protocol", "udp", NULL };
	ne_packet_verdict v;
	uint8_t pkt[256];
	size_t n;
	uint64_t id;

	start(opts, 0);
	n = testpkt_v4n(pkt, IPPROTO_UDP, 53, 5353, "a\0secret\0b", 10);
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_FORWARD, &id, &v), 0);
	check_rewritten(pkt, n, &v, "axb");
	n = testpkt_v6n(pkt, IPPROTO_UDP, 53, 5353, "\0secret\0", 8);
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_FORWARD, &id, &v), 0);
	check_rewritten(pkt, n, &v, "x");
}

static void test_truncated_skipped(void **state)
{
	const char *opts[] = { "match", "a", "replace", "b", "copy_range", "128", "stats_interval", "0", NULL };
	ne_packet_verdict v;
	char payload[600], reply[256];
	uint8_t pkt[1024];
	size_t n, rlen = 0;
	uint64_t id;
	int err;

	start(opts, 0);
	memset(payload, 'a', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	n = testpkt_v4(pkt, IPPROTO_TCP, 1, 2, payload);
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	assert_int_equal(ne_harness_message(h, "rw", "stats", 5, &err, reply, sizeof(reply) - 1, &rlen), 0);
	reply[rlen] = '\0';
	assert_non_null(strstr(reply, "\"skipped\":1"));
}

static void test_allow_all(void **state)
{
	ne_packet_verdict v;
	uint8_t pkt[256];
	size_t n, rules = 9;
	unsigned queues = 0;
	uint64_t id;
	const char *opts[] = { "queues", "4", NULL };

	start(opts, 0);
	assert_int_equal(ne_harness_packet_settings(h, "rw", &rules, &queues, NULL), 0);
	assert_int_equal(rules, 0);
	assert_int_equal(queues, 4);
	n = testpkt_v4(pkt, IPPROTO_TCP, 1, 2, "hello");
	assert_int_equal(ne_harness_packet(h, "rw", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	memset(pkt, 0, 20); /* not even IP */
	assert_int_equal(ne_harness_packet(h, "rw", pkt, 20, NE_PACKET_INBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
}

static void test_bad_options(void **state)
{
	const char *bad[][3] = {
		{ "protocol", "icmp", NULL }, { "port", "0", NULL }, { "port", "65536", NULL },
		{ "direction", "up", NULL },  { "queues", "9", NULL }, { "match", "\\z", NULL },
		{ "copy_range", "64", NULL }, { "stats_interval", "-1", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		start(bad[i], -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_rules),
		cmocka_unit_test_setup_teardown(test_rewrite_flows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewrite_udp_shorter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
