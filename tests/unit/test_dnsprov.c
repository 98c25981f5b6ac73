/* netextd's dns-proxy provider glue (src/daemon/dnsprov.c) against a fake engine, store and
 * extension channel: which configuration is used, the DNS_QUERY a provider gets (with the
 * asking process), verdicts and response verdicts handed to the engine, late and malformed
 * frames, deadlines and the fail policy (provider missing, gone, slow, not reading), the bound
 * on held queries, and an engine that finishes a query from inside a verdict. The real
 * sd-event loop runs the deadlines. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include <netext/dnsproxy.h>

#include "daemon.h"
#include "dnsprov.h"
#include "dnsproxy.h"
#include "store.h"
#include "util.h"
#include "wire.h"

/* --- fakes -------------------------------------------------------------------------------- */

struct fake_cfg {
	const char *name;
	bool enabled, fail_open;
	const char *order, *timeout;
};

static struct fake_cfg cfgs[4];
static size_t n_cfgs;

int store_config_foreach(struct store *s, const char *extension,
			 int (*cb)(const struct store_config *c, void *userdata), void *userdata)
{
	size_t i;

	(void)s;
	(void)extension;
	for (i = 0; i < n_cfgs; i++) {
		char *keys[2] = { "order", "verdict_timeout_ms" };
		char *values[2] = { (char *)(cfgs[i].order ? cfgs[i].order : "100"),
				    (char *)(cfgs[i].timeout ? cfgs[i].timeout : "1000") };
		struct store_config c = { .provider_type = NE_PROVIDER_DNS_PROXY, .enabled = cfgs[i].enabled,
					  .fail_open = cfgs[i].fail_open, .n_options = 2, .keys = keys,
					  .values = values };
		int r;

		ne_strscpy(c.name, cfgs[i].name, sizeof(c.name));
		r = cb(&c, userdata);
		if (r)
			return r;
	}
	return 0;
}

/* The frames sent to the extension, the last one kept. */
static int send_result;         /* what ext_send_raw returns */
static unsigned n_sent;
static uint8_t last_frame[NE_WIRE_MAX];
static size_t last_len;

int ext_send_raw(struct ext *e, const void *frame, size_t len, bool fault_when_full)
{
	assert_non_null(e);
	assert_false(fault_when_full);
	if (send_result < 0)
		return send_result;
	n_sent++;
	memcpy(last_frame, frame, len);
	last_len = len;
	return 0;
}

struct call {
	uint64_t id;
	int action;
	char target[64];
	size_t len;
};

static struct call qcalls[64], rcalls[64];
static size_t n_qcalls, n_rcalls, n_reconfigure;
static int engine_result;
static bool engine_finishes; /* the engine calls dnsprov_query_done from inside the verdict */
static struct daemon D;

int dnsproxy_query_verdict(struct daemon *d, uint64_t id, enum dnsq_action a, const char *target,
			   const uint8_t *bytes, size_t len)
{
	struct call *c = &qcalls[n_qcalls++ % 64];

	c->id = id;
	c->action = a;
	snprintf(c->target, sizeof(c->target), "%s", target ? target : "");
	c->len = bytes ? len : 0;
	if (engine_finishes)
		dnsprov_query_done(d, id);
	return engine_result;
}

int dnsproxy_response_verdict(struct daemon *d, uint64_t id, enum dnsr_action a, const uint8_t *bytes,
			      size_t len)
{
	struct call *c = &rcalls[n_rcalls++ % 64];

	(void)d;
	c->id = id;
	c->action = a;
	c->len = bytes ? len : 0;
	return engine_result;
}

void dnsproxy_reconfigure(struct daemon *d)
{
	(void)d;
	n_reconfigure++;
}

/* --- helpers ---------------------------------------------------------------------------- */

static struct ext *const EXT = (struct ext *)0x1; /* never dereferenced by dnsprov.c */
static const uint8_t QBYTES[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
				  1, 'x', 0, 0, 1, 0, 1 };
static uint8_t frame[NE_WIRE_MAX];

static struct dnsq_view view(uint64_t id)
{
	static const struct dns_msg *parsed = (const struct dns_msg *)QBYTES; /* only tested for NULL */
	struct dnsq_view v = { .id = id, .protocol = IPPROTO_UDP, .msg = QBYTES, .len = sizeof(QBYTES),
			       .parsed = parsed };
	struct sockaddr_in *c = (struct sockaddr_in *)&v.client, *s = (struct sockaddr_in *)&v.server;

	c->sin_family = s->sin_family = AF_INET;
	c->sin_addr.s_addr = htonl(0x7f000001);
	c->sin_port = htons(40000);
	s->sin_addr.s_addr = htonl(0x0a000035);
	s->sin_port = htons(53);
	return v;
}

static int settings(const char *config, uint32_t handle, uint8_t mode, bool responses)
{
	struct ne_msg_dns_settings m = { handle, mode, responses };
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	int len = ne_msg_dns_settings_encode(&b, &m);

	assert_true(len > 0);
	return dnsprov_on_settings(&D, config, frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN);
}

static int verdict(const char *config, uint32_t handle, uint64_t id, uint8_t kind, const char *target,
		   size_t nbytes)
{
	struct ne_msg_dns_verdict m = { handle, kind, { target, strlen(target) }, { (const char *)QBYTES, nbytes } };
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	int len = ne_msg_dns_verdict_encode(&b, id, &m);

	assert_true(len > 0);
	return dnsprov_on_verdict(&D, config, id, frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN);
}

static int response_verdict(const char *config, uint32_t handle, uint64_t id, uint8_t kind, size_t nbytes)
{
	struct ne_msg_dns_response_verdict m = { handle, kind, { (const char *)QBYTES, nbytes } };
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	int len = ne_msg_dns_response_verdict_encode(&b, id, &m);

	assert_true(len > 0);
	return dnsprov_on_response_verdict(&D, config, id, frame + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN);
}

/* Runs the event loop until the engine heard n query verdicts (a guard of 5 s, not a measure). */
static void run_until_qcalls(size_t n)
{
	unsigned long long end = ne_now_usec() + 5000000ULL;

	while (n_qcalls < n && ne_now_usec() < end)
		assert_true(sd_event_run(D.event, 100000) >= 0);
	assert_int_equal(n_qcalls, n);
}

static void run_until_rcalls(size_t n)
{
	unsigned long long end = ne_now_usec() + 5000000ULL;

	while (n_rcalls < n && ne_now_usec() < end)
		assert_true(sd_event_run(D.event, 100000) >= 0);
	assert_int_equal(n_rcalls, n);
}

static void start_provider(const char *config, uint32_t handle, uint8_t mode, bool responses)
{
	dnsprov_provider_present(&D, config, EXT, handle);
	assert_int_equal(settings(config, handle, mode, responses), 0);
	dnsprov_provider_running(&D, config);
}

static int setup(void **state)
{
	(void)state;
	memset(cfgs, 0, sizeof(cfgs));
	n_cfgs = n_qcalls = n_rcalls = n_reconfigure = 0;
	n_sent = 0;
	send_result = 0;
	engine_result = 0;
	engine_finishes = false;
	assert_int_equal(sd_event_new(&D.event), 0);
	assert_int_equal(dnsprov_init(&D), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dnsprov_fini(&D);
	D.event = sd_event_unref(D.event);
	return 0;
}

static void add_cfg(const char *name, bool fail_open, const char *order, const char *timeout)
{
	cfgs[n_cfgs++] = (struct fake_cfg){ name, true, fail_open, order, timeout };
	dnsprov_reconfigure(&D);
}

/* --- tests ------------------------------------------------------------------------------ */

static void test_no_configuration(void **state)
{
	struct dnsq_view v = view(1);

	assert_false(dnsprov_enabled(&D));
	assert_int_equal(dnsprov_query(&D, &v), 0);
	assert_int_equal(n_sent, 0);
	(void)state;
}

static void test_not_running_fail_policy(void **state)
{
	struct dnsq_view v = view(1);

	add_cfg("closed", false, NULL, NULL);
	assert_true(dnsprov_enabled(&D));
	assert_int_equal(n_reconfigure, 1);
	assert_int_equal(dnsprov_query(&D, &v), -ECONNREFUSED);
	/* Started but not running yet: still the fail policy. */
	dnsprov_provider_present(&D, "closed", EXT, 7);
	assert_int_equal(dnsprov_query(&D, &v), -ECONNREFUSED);
	cfgs[0].fail_open = true;
	dnsprov_reconfigure(&D);
	assert_int_equal(dnsprov_query(&D, &v), 0);
	assert_int_equal(n_sent, 0);
	(void)state;
}

static void test_query_frame(void **state)
{
	struct pi_process proc = { .pid = 4242, .ppid = 1, .uid = 1000, .gid = 100, .start_time = 77,
				   .exe = "/usr/bin/dig", .cmdline = "dig\x01 x", .cgroup = "/user.slice" };
	struct dnsq_view v = view(5);
	struct ne_msg_dns_query m;
	struct ne_msg_hdr h;

	add_cfg("dns", true, NULL, NULL);
	start_provider("dns", 7, 0, false);
	v.has_proc = v.has_uid = true;
	v.proc = &proc;
	v.uid = 1000;
	assert_int_equal(dnsprov_query(&D, &v), 1);
	assert_int_equal(n_sent, 1);
	assert_int_equal(ne_msg_hdr_decode(last_frame, last_len, &h), 0);
	assert_int_equal(h.type, NE_MSG_DNS_QUERY);
	assert_int_equal(h.id, 5);
	assert_int_equal(ne_msg_dns_query_decode(last_frame + NE_WIRE_HDR_LEN, last_len - NE_WIRE_HDR_LEN, &m), 0);
	assert_int_equal(m.provider, 7);
	assert_int_equal(m.protocol, IPPROTO_UDP);
	assert_int_equal(m.flow.family, 4);
	assert_int_equal(m.flow.direction, NE_FLOW_OUTBOUND);
	assert_int_equal(m.flow.local_port, 40000);
	assert_int_equal(m.flow.remote_port, 53);
	assert_int_equal(m.flow.remote_addr[0], 10);
	assert_int_equal(m.flow.remote_addr[3], 0x35);
	assert_int_equal(m.flow.pid, 4242);
	assert_true(m.flow.has_ids);
	assert_int_equal(m.flow.uid, 1000);
	assert_int_equal(m.flow.gid, 100);
	assert_int_equal(m.flow.executable.len, strlen("/usr/bin/dig"));
	assert_memory_equal(m.flow.executable.p, "/usr/bin/dig", m.flow.executable.len);
	/* A control character in argv does not reach the wire (the extension would refuse it). */
	assert_memory_equal(m.flow.cmdline.p, "dig? x", m.flow.cmdline.len);
	assert_int_equal(m.message.len, sizeof(QBYTES));

	/* Only the uid known (no process): pid -1. */
	v = view(6);
	v.has_uid = true;
	v.uid = 33;
	assert_int_equal(dnsprov_query(&D, &v), 1);
	assert_int_equal(ne_msg_dns_query_decode(last_frame + NE_WIRE_HDR_LEN, last_len - NE_WIRE_HDR_LEN, &m), 0);
	assert_int_equal(m.flow.pid, -1);
	assert_true(m.flow.has_ids);
	assert_int_equal(m.flow.uid, 33);
	assert_int_equal(m.flow.executable.len, 0);
	(void)state;
}

static void test_verdicts(void **state)
{
	struct dnsq_view v;
	uint64_t id;

	add_cfg("dns", false, NULL, NULL);
	start_provider("dns", 7, 0, false);
	for (id = 1; id <= 4; id++) {
		v = view(id);
		assert_int_equal(dnsprov_query(&D, &v), 1);
	}
	assert_int_equal(verdict("dns", 7, 1, NE_DNS_VERDICT_FORWARD, "10.0.0.53:53", 0), 0);
	assert_int_equal(verdict("dns", 7, 2, NE_DNS_VERDICT_ANSWER, "", sizeof(QBYTES)), 0);
	assert_int_equal(verdict("dns", 7, 3, NE_DNS_VERDICT_REFUSE, "", 0), 0);
	assert_int_equal(verdict("dns", 7, 4, NE_DNS_VERDICT_DROP, "", 0), 0);
	assert_int_equal(n_qcalls, 4);
	assert_int_equal(qcalls[0].action, DNSQ_FORWARD);
	assert_string_equal(qcalls[0].target, "10.0.0.53:53");
	assert_int_equal(qcalls[1].action, DNSQ_ANSWER);
	assert_int_equal(qcalls[1].len, sizeof(QBYTES));
	assert_int_equal(qcalls[2].action, DNSQ_REFUSE);
	assert_int_equal(qcalls[3].action, DNSQ_DROP);
	/* Late (answered already, unknown id): ignored, no fault. */
	assert_int_equal(verdict("dns", 7, 1, NE_DNS_VERDICT_DROP, "", 0), 0);
	assert_int_equal(verdict("dns", 7, 99, NE_DNS_VERDICT_DROP, "", 0), 0);
	assert_int_equal(n_qcalls, 4);
	/* Malformed: a protocol fault. */
	assert_int_equal(dnsprov_on_verdict(&D, "dns", 5, frame + NE_WIRE_HDR_LEN, 3), -EBADMSG);
	/* Settings once running: a protocol fault. */
	assert_int_equal(settings("dns", 7, 1, true), -EPROTO);
	(void)state;
}

/* A verdict the engine refuses is counted, not a fault; the engine answers SERVFAIL itself. */
static void test_bad_verdict_counted(void **state)
{
	struct dnsq_view v = view(1);
	json_t *st, *counters;

	add_cfg("dns", false, NULL, NULL);
	start_provider("dns", 7, 0, false);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	engine_result = -EBADMSG;
	assert_int_equal(verdict("dns", 7, 1, NE_DNS_VERDICT_ANSWER, "", 0), 0);
	st = dnsprov_status_json(&D);
	counters = json_object_get(st, "counters");
	assert_int_equal(json_integer_value(json_object_get(counters, "bad_verdicts")), 1);
	assert_int_equal(json_integer_value(json_object_get(counters, "answered")), 1);
	assert_string_equal(json_string_value(json_object_get(st, "configuration")), "dns");
	assert_string_equal(json_string_value(json_object_get(st, "state")), "running");
	assert_string_equal(json_string_value(json_object_get(st, "fail_policy")), "closed");
	assert_string_equal(json_string_value(json_object_get(st, "mode")), "parsed");
	json_decref(st);
	(void)state;
}

static void test_deadline_closed_and_open(void **state)
{
	struct dnsq_view v = view(1);

	add_cfg("dns", false, NULL, "50");
	start_provider("dns", 7, 0, false);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	run_until_qcalls(1);
	assert_int_equal(qcalls[0].id, 1);
	assert_int_equal(qcalls[0].action, DNSQ_SERVFAIL);
	/* The late verdict is ignored. */
	assert_int_equal(verdict("dns", 7, 1, NE_DNS_VERDICT_DROP, "", 0), 0);
	assert_int_equal(n_qcalls, 1);

	cfgs[0].fail_open = true;
	dnsprov_reconfigure(&D);
	v = view(2);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	run_until_qcalls(2);
	assert_int_equal(qcalls[1].id, 2);
	assert_int_equal(qcalls[1].action, DNSQ_FORWARD);
	assert_string_equal(qcalls[1].target, "");
	(void)state;
}

static void test_provider_gone(void **state)
{
	struct dnsq_view v;
	uint64_t id;

	add_cfg("dns", false, NULL, NULL);
	start_provider("dns", 7, 0, false);
	for (id = 1; id <= 3; id++) {
		v = view(id);
		assert_int_equal(dnsprov_query(&D, &v), 1);
	}
	engine_finishes = true;
	dnsprov_provider_gone(&D, "dns", "extension exited");
	assert_int_equal(n_qcalls, 3);
	for (id = 0; id < 3; id++)
		assert_int_equal(qcalls[id].action, DNSQ_SERVFAIL);
	v = view(4);
	assert_int_equal(dnsprov_query(&D, &v), -ECONNREFUSED);
	/* Restarted: queries go to it again. */
	start_provider("dns", 8, 0, false);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	(void)state;
}

static void test_channel_full(void **state)
{
	struct dnsq_view v = view(1);

	add_cfg("dns", true, NULL, NULL);
	start_provider("dns", 7, 0, false);
	send_result = -EAGAIN;
	assert_int_equal(dnsprov_query(&D, &v), 0);
	cfgs[0].fail_open = false;
	dnsprov_reconfigure(&D);
	assert_int_equal(dnsprov_query(&D, &v), -ECONNREFUSED);
	send_result = 0;
	assert_int_equal(dnsprov_query(&D, &v), 1);
	(void)state;
}

static void test_responses(void **state)
{
	struct dnsq_view v = view(1);
	struct ne_msg_hdr h;

	add_cfg("dns", false, NULL, "50");
	start_provider("dns", 7, 1, true);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	assert_int_equal(verdict("dns", 7, 1, NE_DNS_VERDICT_FORWARD, "", 0), 0);
	assert_int_equal(dnsprov_response(&D, 1, QBYTES, sizeof(QBYTES)), 1);
	assert_int_equal(ne_msg_hdr_decode(last_frame, last_len, &h), 0);
	assert_int_equal(h.type, NE_MSG_DNS_RESPONSE);
	assert_int_equal(h.id, 1);
	assert_int_equal(response_verdict("dns", 7, 1, NE_DNS_RESPONSE_REWRITE, sizeof(QBYTES)), 0);
	assert_int_equal(n_rcalls, 1);
	assert_int_equal(rcalls[0].action, DNSR_REWRITE);
	assert_int_equal(rcalls[0].len, sizeof(QBYTES));
	/* A refused query has no answer to show; an unknown one neither. */
	v = view(2);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	assert_int_equal(verdict("dns", 7, 2, NE_DNS_VERDICT_REFUSE, "", 0), 0);
	assert_int_equal(dnsprov_response(&D, 2, QBYTES, sizeof(QBYTES)), 0);
	assert_int_equal(dnsprov_response(&D, 77, QBYTES, sizeof(QBYTES)), 0);
	/* No response verdict in time: fail-closed drops the answer. */
	v = view(3);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	assert_int_equal(verdict("dns", 7, 3, NE_DNS_VERDICT_FORWARD, "", 0), 0);
	assert_int_equal(dnsprov_response(&D, 3, QBYTES, sizeof(QBYTES)), 1);
	run_until_rcalls(2);
	assert_int_equal(rcalls[1].id, 3);
	assert_int_equal(rcalls[1].action, DNSR_DROP);
	/* The engine finished a forwarded query (upstream timeout): its answer is not expected. */
	v = view(4);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	assert_int_equal(verdict("dns", 7, 4, NE_DNS_VERDICT_FORWARD, "", 0), 0);
	dnsprov_query_done(&D, 4);
	assert_int_equal(dnsprov_response(&D, 4, QBYTES, sizeof(QBYTES)), 0);
	(void)state;
}

static void test_responses_not_wanted(void **state)
{
	struct dnsq_view v = view(1);

	add_cfg("dns", false, NULL, NULL);
	start_provider("dns", 7, 0, false);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	assert_int_equal(verdict("dns", 7, 1, NE_DNS_VERDICT_FORWARD, "", 0), 0);
	assert_int_equal(dnsprov_response(&D, 1, QBYTES, sizeof(QBYTES)), 0);
	/* A response verdict nobody asked for is late, not a fault. */
	assert_int_equal(response_verdict("dns", 7, 1, NE_DNS_RESPONSE_DROP, 0), 0);
	assert_int_equal(n_rcalls, 0);
	(void)state;
}

/* One configuration is used: the first by order, then by name. */
static void test_order(void **state)
{
	struct dnsq_view v = view(1);
	json_t *st;

	add_cfg("b", true, "100", NULL);
	add_cfg("a", true, "100", NULL);
	add_cfg("z", false, "10", NULL);
	st = dnsprov_status_json(&D);
	assert_string_equal(json_string_value(json_object_get(st, "configuration")), "z");
	json_decref(st);
	start_provider("a", 1, 0, false);
	/* z comes first and is not running: its policy (closed) applies, a is not asked. */
	assert_int_equal(dnsprov_query(&D, &v), -ECONNREFUSED);
	cfgs[2].enabled = false;
	dnsprov_reconfigure(&D);
	st = dnsprov_status_json(&D);
	assert_string_equal(json_string_value(json_object_get(st, "configuration")), "a");
	json_decref(st);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	(void)state;
}

/* A configuration that goes away releases its queries as if none were enabled. */
static void test_configuration_removed(void **state)
{
	struct dnsq_view v = view(1);
	size_t before;

	add_cfg("dns", false, NULL, NULL);
	start_provider("dns", 7, 0, false);
	assert_int_equal(dnsprov_query(&D, &v), 1);
	before = n_reconfigure;
	n_cfgs = 0;
	dnsprov_reconfigure(&D);
	assert_int_equal(n_reconfigure, before + 1);
	assert_false(dnsprov_enabled(&D));
	assert_int_equal(n_qcalls, 1);
	assert_int_equal(qcalls[0].action, DNSQ_FORWARD);
	assert_int_equal(dnsprov_query(&D, &v), 0);
	(void)state;
}

static void test_table_bound(void **state)
{
	struct dnsq_view v;
	uint64_t id;

	add_cfg("dns", false, NULL, NULL);
	start_provider("dns", 7, 0, false);
	for (id = 1; id <= 8192; id++) {
		v = view(id);
		assert_int_equal(dnsprov_query(&D, &v), 1);
	}
	v = view(id);
	assert_int_equal(dnsprov_query(&D, &v), -ECONNREFUSED);
	/* An id the table holds already is not taken twice. */
	assert_int_equal(verdict("dns", 7, 1, NE_DNS_VERDICT_DROP, "", 0), 0);
	v = view(2);
	assert_int_equal(dnsprov_query(&D, &v), -ECONNREFUSED);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_configuration, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_running_fail_policy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_query_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_verdict_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_closed_and_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_provider_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_channel_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_responses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_responses_not_wanted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configuration_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_bound, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
