/* The shaper example: its heap (earliest due first, ties in arrival order), per-flow order
 * under jitter, the timer thread's release order (with a recording resume), the rules its
 * options become; through the harness, a delayed packet released after the delay and not
 * before, packets that are not selected passing at once, the counters, a stop with packets
 * still held, and the options it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netext/harness.h>

#define main shaper_main
int shaper_main(void);
#include "../../examples/shaper/shaper.c"
#undef main

#include "testpkt.h"

static void test_heap_order(void **state)
{
	struct sh_heap h = { 0 };
	struct sh_item it, prev = { 0, 0, 0 };
	size_t i;

	srand(7);
	for (i = 0; i < 2000; i++) {
		it = (struct sh_item){ (uint64_t)(rand() % 50), i, i };
		assert_int_equal(sh_heap_push(&h, &it), 0);
	}
	for (i = 0; i < 2000; i++) {
		sh_heap_pop(&h, &it);
		if (i)
			assert_true(sh_before(&prev, &it));
		prev = it;
	}
	assert_int_equal(h.n, 0);
	free(h.v);
}

static void test_flow_order_with_jitter(void **state)
{
	struct shaper *sh = sh_new();
	uint64_t due, prev = 0, now = 1000000;
	size_t i;

	sh->delay_ms = 10;
	sh->jitter_ms = 50;
	for (i = 0; i < 1000; i++, now += 100) {
		due = sh_due(sh, 17, now);
		assert_true(due >= prev);
		assert_true(due >= now + 10000);
		prev = due;
	}
	/* Another flow is not held back by this one. */
	assert_true(sh_due(sh, 18, 1000000) < prev);
	sh_free(sh);
}

/* --- the timer thread, with a recording resume -------------------------------------------- */

static _Atomic uint64_t released[64]; /* read by the test while the timer thread runs */
static atomic_size_t n_released;

static int record(ne_provider *p, uint64_t id, ne_packet_verdict v)
{
	size_t i = atomic_fetch_add(&n_released, 1);

	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	if (i < 64)
		released[i] = id;
	return 0;
}

static void test_timer_releases_in_order(void **state)
{
	struct shaper *sh = sh_new();
	uint64_t now = now_usec();
	size_t i;

	sh->resume = record;
	sh->max_queued = 100;
	assert_int_equal(sh_start_timer(sh), 0);
	/* ids 1..20: due in 40, 30, 20, 10 ms (five each, arriving in id order) */
	for (i = 0; i < 20; i++)
		assert_true(sh_hold(sh, i + 1, now + (4 - i / 5) * 10000));
	usleep(100000);
	assert_int_equal(atomic_load(&n_released), 20);
	for (i = 0; i < 20; i++)
		assert_int_equal(released[i], (3 - i / 5) * 5 + i % 5 + 1);
	assert_int_equal(atomic_load(&sh->n.released), 20);
	sh->max_queued = 0;
	assert_false(sh_hold(sh, 99, now));
	sh_free(sh);
}

static void test_rules(void **state)
{
	struct ne_packet_rule rules[6];
	struct shaper sh = { 0 };

	assert_int_equal(sh_rules(&sh, rules), 0);
	sh.protocol = IPPROTO_ICMP;
	assert_int_equal(sh_rules(&sh, rules), 2);
	assert_int_equal(rules[1].protocol, IPPROTO_ICMPV6);
	assert_int_equal(rules[1].family, AF_INET6);
	sh.protocol = 0;
	sh.port = 443;
	assert_int_equal(sh_rules(&sh, rules), 4);
	sh.protocol = IPPROTO_TCP;
	sh.direction = NE_PACKET_INBOUND;
	assert_int_equal(sh_rules(&sh, rules), 2);
	assert_int_equal(rules[1].local_port, 443);
	assert_int_equal(rules[1].direction, NE_PACKET_INBOUND);
}

/* --- through the harness ----------------------------------------------------------------- */

static ne_extension *ext;
static ne_harness *h;

static int setup(void **state)
{
	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register_packet_filter(ext, &shaper_ops, &shaper_packet_ops, NULL), 0);
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

	assert_int_equal(ne_harness_start(h, "sh", NE_PROVIDER_FILTER_PACKET, opts, &err), 0);
	assert_int_equal(err, want);
}

static void test_delays(void **state)
{
	const char *opts[] = { "delay_ms", "40", "protocol", "udp", "stats_interval", "0", NULL };
	ne_packet_verdict v;
	uint64_t id, ids[30], t0;
	uint8_t pkt[256];
	char reply[256];
	size_t n, i, rlen = 0;
	int err;

	start(opts, 0);
	n = testpkt_v4(pkt, IPPROTO_UDP, 1000, 53, "slow");
	t0 = now_usec();
	assert_int_equal(ne_harness_packet(h, "sh", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_DELAY);
	assert_int_equal(ne_harness_packet_verdict(h, id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);
	assert_true(now_usec() - t0 >= 40000);
	assert_true(now_usec() - t0 < 1000000);

	n = testpkt_v6(pkt, IPPROTO_TCP, 1000, 80, "fast");
	assert_int_equal(ne_harness_packet(h, "sh", pkt, n, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_ALLOW);

	for (i = 0; i < 30; i++) {
		n = testpkt_v6(pkt, IPPROTO_UDP, (uint16_t)(1000 + i % 3), 53, "burst");
		assert_int_equal(ne_harness_packet_send(h, "sh", pkt, n, NE_PACKET_OUTBOUND, &ids[i]), 0);
	}
	for (i = 0; i < 30; i++) {
		assert_int_equal(ne_harness_packet_verdict(h, ids[i], &v), 0);
		assert_int_equal(v.kind, NE_PACKET_ALLOW);
	}
	assert_int_equal(ne_harness_message(h, "sh", "stats", 5, &err, reply, sizeof(reply) - 1, &rlen), 0);
	reply[rlen] = '\0';
	/* queued_max depends on how fast the burst was filed: 30 unless the machine is slow. */
	assert_non_null(strstr(reply, "{\"packets\":32,\"delayed\":31,\"released\":31,\"overflow\":0,\"failed\":0,"
				      "\"queued\":0,\"queued_max\":"));
}

static void test_stop_with_held_packets(void **state)
{
	const char *opts[] = { "delay_ms", "5000", "protocol", "icmp", NULL };
	ne_packet_verdict v;
	uint64_t id, t0;
	uint8_t pkt[64] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, IPPROTO_ICMP, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
			    8, 0, 0, 0, 0, 1, 0, 1 };

	start(opts, 0);
	assert_int_equal(ne_harness_packet(h, "sh", pkt, 28, NE_PACKET_OUTBOUND, &id, &v), 0);
	assert_int_equal(v.kind, NE_PACKET_DELAY);
	t0 = now_usec();
	assert_int_equal(ne_harness_stop(h, "sh", NE_STOP_REASON_USER_INITIATED), 0);
	assert_true(now_usec() - t0 < 1000000);
}

static void test_bad_options(void **state)
{
	const char *bad[][5] = {
		{ "delay_ms", "10001", NULL }, { "delay_ms", "x", NULL },
		{ "delay_ms", "9000", "jitter_ms", "2000", NULL }, { "protocol", "sctp", NULL },
		{ "protocol", "icmp", "port", "80", NULL }, { "port", "0", NULL },
		{ "direction", "sideways", NULL }, { "queues", "0", NULL }, { "max_queued", "0", NULL },
	};
	const char *ok[] = { "delay_max_ms", "20000", "delay_ms", "15000", NULL };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		start(bad[i], -EINVAL);
	start(ok, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heap_order),
		cmocka_unit_test(test_flow_order_with_jitter),
		cmocka_unit_test(test_timer_releases_in_order),
		cmocka_unit_test(test_rules),
		cmocka_unit_test_setup_teardown(test_delays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_with_held_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
