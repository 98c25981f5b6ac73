/* libnetext's dns-proxy side through the harness: the settings a provider sends as it starts,
 * every verdict kind as the daemon receives it, LATER then resume (and the calls that must
 * refuse), the asking process as the provider sees it, upstream answers passed, rewritten and
 * dropped, raw mode, and the registrations that must fail. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <netext/harness.h>

static ne_provider *last_provider;
static ne_dns_query *held;
static char seen_exe[256], seen_cmd[256], seen_name[256];
static int32_t seen_pid;
static int64_t seen_uid;
static int seen_proto, seen_family;
static struct sockaddr_storage seen_local, seen_remote;
static unsigned n_responses;
static uint8_t answer_buf[NE_DNS_MESSAGE_MAX];

static void start(ne_provider *p, const ne_options *o, void *ud)
{
	last_provider = p;
	ne_provider_start_done(p, 0, NULL);
	(void)o;
	(void)ud;
}

/* An A answer to m with one address, kept in answer_buf (the verdict refers to it). */
static ne_dns_verdict answer_with(const ne_dns_message *m, const char *addr)
{
	ne_dns_message *a = NULL;
	ne_dns_builder *b;
	struct in_addr in;
	const uint8_t *bytes;
	size_t len;

	assert_int_equal(inet_pton(AF_INET, addr, &in), 1);
	assert_int_equal(ne_dns_builder_new_response(m, NE_DNS_RCODE_NOERROR, &b), 0);
	assert_int_equal(ne_dns_builder_add_address(b, NE_DNS_ANSWER, ne_dns_message_qname(m), 60, AF_INET, &in), 0);
	assert_int_equal(ne_dns_builder_finish(b, &a), 0);
	bytes = ne_dns_message_bytes(a, &len);
	memcpy(answer_buf, bytes, len);
	ne_dns_message_free(a);
	return ne_dns_verdict_answer_bytes(answer_buf, len);
}

static ne_dns_verdict handle_query(ne_provider *p, ne_dns_query *q, void *ud)
{
	const ne_dns_message *m = ne_dns_query_message(q);
	const ne_flow *f = ne_dns_query_flow(q);
	const char *name = ne_dns_message_qname(m);

	assert_non_null(m);
	assert_true(ne_dns_query_id(q) != 0);
	snprintf(seen_name, sizeof(seen_name), "%s", name);
	snprintf(seen_exe, sizeof(seen_exe), "%s", ne_flow_executable(f) ? ne_flow_executable(f) : "-");
	snprintf(seen_cmd, sizeof(seen_cmd), "%s", ne_flow_command_line(f) ? ne_flow_command_line(f) : "-");
	seen_pid = ne_flow_pid(f);
	seen_uid = ne_flow_uid(f);
	seen_proto = ne_dns_query_protocol(q);
	seen_family = ne_flow_family(f);
	assert_int_equal(ne_flow_local_endpoint(f, &seen_local), 0);
	assert_int_equal(ne_flow_remote_endpoint(f, &seen_remote), 0);
	if (ne_dns_name_in_domain(name, "corp.example"))
		return ne_dns_verdict_forward("10.0.0.53");
	if (!strcmp(name, "answer.test"))
		return answer_with(m, "192.0.2.7");
	if (!strcmp(name, "refuse.test"))
		return ne_dns_verdict_refuse();
	if (!strcmp(name, "drop.test"))
		return ne_dns_verdict_drop();
	if (!strcmp(name, "later.test")) {
		held = q;
		return ne_dns_verdict_later();
	}
	if (!strcmp(name, "bad.test"))
		return ne_dns_verdict_answer(NULL); /* no message: netextd refuses it (SERVFAIL) */
	if (!strcmp(name, "badtarget.test"))
		return ne_dns_verdict_forward("10.0.0.53\n");
	(void)p;
	(void)ud;
	return ne_dns_verdict_forward(NULL);
}

static ne_dns_response_verdict handle_response(ne_provider *p, ne_dns_query *q, const ne_dns_message *resp,
					       void *ud)
{
	const char *name = ne_dns_message_qname(ne_dns_query_message(q));
	ne_dns_message *a = NULL;
	ne_dns_builder *b;
	struct in_addr in;
	const uint8_t *bytes;
	size_t len;

	n_responses++;
	assert_true(ne_dns_message_is_response(resp));
	if (!strcmp(name, "dropresp.test"))
		return ne_dns_response_drop();
	if (strcmp(name, "rewrite.test"))
		return ne_dns_response_pass();
	inet_pton(AF_INET, "192.0.2.55", &in);
	assert_int_equal(ne_dns_builder_new_response(ne_dns_query_message(q), NE_DNS_RCODE_NOERROR, &b), 0);
	assert_int_equal(ne_dns_builder_add_address(b, NE_DNS_ANSWER, name, 30, AF_INET, &in), 0);
	assert_int_equal(ne_dns_builder_finish(b, &a), 0);
	bytes = ne_dns_message_bytes(a, &len);
	memcpy(answer_buf, bytes, len);
	ne_dns_message_free(a);
	(void)p;
	(void)ud;
	return (ne_dns_response_verdict){ NE_DNS_RESPONSE_REWRITE, answer_buf, len };
}

static ne_extension *ext;
static ne_harness *h;
static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = start };

static int setup(void **state)
{
	static const struct ne_dns_proxy_ops dops = { .size = sizeof(dops), .handle_query = handle_query,
						      .handle_response = handle_response };
	static const char *const options[] = { "verdict_timeout_ms", "200", NULL };
	int err = -1;

	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register_dns_proxy(ext, &ops, &dops, NULL), 0);
	assert_int_equal(ne_harness_new(ext, &h), 0);
	assert_int_equal(ne_harness_start(h, "dns", NE_PROVIDER_DNS_PROXY, options, &err), 0);
	assert_int_equal(err, 0);
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	ne_harness_free(h);
	ne_extension_free(ext);
	(void)state;
	return 0;
}

/* A query for name/type as a client would send it: bytes in buf, length returned. */
static size_t make_query(const char *name, uint16_t type, uint8_t *buf)
{
	ne_dns_message *m = NULL;
	ne_dns_builder *b;
	const uint8_t *bytes;
	size_t len;

	assert_int_equal(ne_dns_builder_new_query(0x1234, name, type, &b), 0);
	assert_int_equal(ne_dns_builder_finish(b, &m), 0);
	bytes = ne_dns_message_bytes(m, &len);
	memcpy(buf, bytes, len);
	ne_dns_message_free(m);
	return len;
}

/* An upstream answer to the query in q (its id and question) with one A record. */
static size_t make_answer(const uint8_t *q, size_t qlen, const char *addr, uint8_t *buf)
{
	ne_dns_message *qm = NULL, *a = NULL;
	ne_dns_builder *b;
	struct in_addr in;
	const uint8_t *bytes;
	size_t len;

	assert_int_equal(ne_dns_message_parse(q, qlen, &qm), 0);
	inet_pton(AF_INET, addr, &in);
	assert_int_equal(ne_dns_builder_new_response(qm, NE_DNS_RCODE_NOERROR, &b), 0);
	assert_int_equal(ne_dns_builder_add_address(b, NE_DNS_ANSWER, ne_dns_message_qname(qm), 300, AF_INET, &in), 0);
	assert_int_equal(ne_dns_builder_finish(b, &a), 0);
	bytes = ne_dns_message_bytes(a, &len);
	memcpy(buf, bytes, len);
	ne_dns_message_free(a);
	ne_dns_message_free(qm);
	return len;
}

/* The first answer record's IPv4 address in bytes, as text. */
static void first_address(const void *bytes, size_t len, char *out, size_t size)
{
	ne_dns_message *m = NULL;
	struct ne_dns_record rec;

	assert_int_equal(ne_dns_message_parse(bytes, len, &m), 0);
	assert_int_equal(ne_dns_message_record(m, NE_DNS_ANSWER, 0, &rec), 0);
	assert_int_equal(rec.family, AF_INET);
	inet_ntop(AF_INET, rec.addr, out, (socklen_t)size);
	ne_dns_message_free(m);
}

static void test_settings(void **state)
{
	bool raw = true, responses = false;

	assert_int_equal(ne_harness_dns_settings(h, "dns", &raw, &responses), 0);
	assert_false(raw);
	assert_true(responses);
	(void)state;
}

static void test_verdict_kinds(void **state)
{
	uint8_t q[512];
	char addr[INET_ADDRSTRLEN];
	ne_dns_verdict v;
	uint64_t id;
	size_t n;

	n = make_query("www.corp.example", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	assert_string_equal(v.target, "10.0.0.53");
	assert_int_equal(v.len, 0);

	n = make_query("www.example", NE_DNS_TYPE_AAAA, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	assert_null(v.target);

	n = make_query("answer.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	assert_non_null(v.bytes);
	first_address(v.bytes, v.len, addr, sizeof(addr));
	assert_string_equal(addr, "192.0.2.7");

	n = make_query("refuse.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_REFUSE);

	n = make_query("drop.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_DROP);
	(void)state;
}

/* A verdict netextd's decoder would refuse never reaches the wire (the extension would be
 * killed): it becomes an answer without bytes, which netextd refuses and answers SERVFAIL. */
static void test_bad_verdicts(void **state)
{
	uint8_t q[512];
	ne_dns_verdict v;
	uint64_t id;
	size_t n;

	n = make_query("bad.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	assert_int_equal(v.len, 0);
	n = make_query("badtarget.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	assert_int_equal(v.len, 0);
	(void)state;
}

static void test_process_and_endpoints(void **state)
{
	struct ne_harness_flow f = { .size = sizeof(f), .executable = "/usr/bin/dig", .pid = 4242,
				     .command_line = "dig @10.0.0.53 x.corp.example", .has_ids = true,
				     .uid = 1000, .gid = 100, .local = "[2001:db8::1]:40001",
				     .remote = "[2001:db8::53]:53", .protocol = IPPROTO_TCP };
	struct sockaddr_in6 *l6 = (struct sockaddr_in6 *)&seen_local, *r6 = (struct sockaddr_in6 *)&seen_remote;
	char a[INET6_ADDRSTRLEN];
	uint8_t q[512];
	ne_dns_verdict v;
	uint64_t id;
	size_t n;

	n = make_query("x.corp.example", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", &f, q, n, &id, &v), 0);
	assert_string_equal(seen_name, "x.corp.example");
	assert_string_equal(seen_exe, "/usr/bin/dig");
	assert_string_equal(seen_cmd, "dig @10.0.0.53 x.corp.example");
	assert_int_equal(seen_pid, 4242);
	assert_int_equal(seen_uid, 1000);
	assert_int_equal(seen_proto, IPPROTO_TCP);
	assert_int_equal(seen_family, AF_INET6);
	assert_int_equal(ntohs(l6->sin6_port), 40001);
	assert_int_equal(ntohs(r6->sin6_port), 53);
	inet_ntop(AF_INET6, &r6->sin6_addr, a, sizeof(a));
	assert_string_equal(a, "2001:db8::53");

	/* Unknown process: pid -1, uid -1, no executable; UDP by default. */
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_string_equal(seen_exe, "-");
	assert_int_equal(seen_pid, -1);
	assert_int_equal(seen_uid, -1);
	assert_int_equal(seen_proto, IPPROTO_UDP);
	assert_int_equal(seen_family, AF_INET);
	/* Endpoints of different families do not make a flow. */
	f.remote = "10.0.0.53:53";
	assert_int_equal(ne_harness_dns_query(h, "dns", &f, q, n, &id, &v), -EINVAL);
	(void)state;
}

static void test_later_resume(void **state)
{
	uint8_t q[512];
	ne_dns_verdict v;
	uint64_t id;
	size_t n;

	n = make_query("later.test", NE_DNS_TYPE_A, q);
	held = NULL;
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_LATER);
	assert_non_null(held);
	assert_int_equal(ne_dns_query_id(held), id);
	/* LATER is not a final verdict; bad verdicts leave it held. */
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_later()), -EINVAL);
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_answer_bytes(NULL, 0)), -EINVAL);
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_forward("a\tb")), -EINVAL);
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_forward("corp.example")), 0);
	assert_int_equal(ne_harness_dns_verdict(h, id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	assert_string_equal(v.target, "corp.example");
	/* Decided: the handle is gone and a second resume is refused without touching it. */
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_drop()), -ENOENT);
	(void)state;
}

/* After the configuration's verdict_timeout_ms (200 here) netextd has applied the fail policy:
 * the library forgets the query too. */
static void test_later_deadline(void **state)
{
	uint8_t q[512];
	ne_dns_verdict v;
	uint64_t id;
	size_t n;

	n = make_query("later.test", NE_DNS_TYPE_A, q);
	held = NULL;
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_LATER);
	usleep(250 * 1000);
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_drop()), -ENOENT);
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_drop()), -ENOENT);
	(void)state;
}

static void test_responses(void **state)
{
	uint8_t q[512], a[512];
	char addr[INET_ADDRSTRLEN];
	ne_dns_response_verdict rv;
	ne_dns_verdict v;
	unsigned before;
	uint64_t id;
	size_t n, an;

	/* Passed. */
	n = make_query("www.example", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	an = make_answer(q, n, "203.0.113.1", a);
	before = n_responses;
	assert_int_equal(ne_harness_dns_response(h, "dns", id, a, an, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_PASS);
	assert_int_equal(n_responses, before + 1);
	/* The handle went with its answer: a second one is passed by the library, unseen. */
	assert_int_equal(ne_harness_dns_response(h, "dns", id, a, an, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_PASS);
	assert_int_equal(n_responses, before + 1);

	/* Rewritten. */
	n = make_query("rewrite.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	an = make_answer(q, n, "203.0.113.1", a);
	assert_int_equal(ne_harness_dns_response(h, "dns", id, a, an, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_REWRITE);
	first_address(rv.bytes, rv.len, addr, sizeof(addr));
	assert_string_equal(addr, "192.0.2.55");

	/* Dropped. */
	n = make_query("dropresp.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	an = make_answer(q, n, "203.0.113.1", a);
	assert_int_equal(ne_harness_dns_response(h, "dns", id, a, an, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_DROP);

	/* A refused query has no upstream answer to show. */
	n = make_query("refuse.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	before = n_responses;
	assert_int_equal(ne_harness_dns_response(h, "dns", id, a, an, &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_PASS);
	assert_int_equal(n_responses, before);
	(void)state;
}

/* A held query dies with its provider (LeakSanitizer checks that it is freed). */
static void test_stop_frees_held(void **state)
{
	uint8_t q[512];
	ne_dns_verdict v;
	uint64_t id;
	size_t n;
	int err = -1;

	n = make_query("later.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0);
	assert_int_equal(v.kind, NE_DNS_VERDICT_LATER);
	n = make_query("www.example", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(h, "dns", NULL, q, n, &id, &v), 0); /* held for its answer */
	assert_int_equal(ne_harness_stop(h, "dns", NE_STOP_REASON_USER_INITIATED), 0);
	assert_int_equal(ne_dns_query_resume(last_provider, held, ne_dns_verdict_drop()), -EINVAL);
	assert_int_equal(ne_harness_start(h, "dns", NE_PROVIDER_DNS_PROXY, NULL, &err), 0);
	assert_int_equal(err, 0);
	(void)state;
}

/* --- raw mode ------------------------------------------------------------------------------ */

static uint8_t raw_seen[64];
static size_t raw_seen_len;
static bool raw_parsed;

static ne_dns_verdict handle_raw(ne_provider *p, ne_dns_query *q, const void *bytes, size_t len, void *ud)
{
	static uint8_t changed[512];
	size_t qlen;

	raw_seen_len = len < sizeof(raw_seen) ? len : sizeof(raw_seen);
	memcpy(raw_seen, bytes, raw_seen_len);
	assert_ptr_equal(ne_dns_query_bytes(q, &qlen), bytes);
	assert_int_equal(qlen, len);
	raw_parsed = ne_dns_query_message(q) != NULL;
	if (raw_parsed && !strcmp(ne_dns_message_qname(ne_dns_query_message(q)), "answer.test"))
		return answer_with(ne_dns_query_message(q), "192.0.2.8");
	memcpy(changed, bytes, len);
	changed[0] ^= 0xff; /* a changed query: netextd checks it before sending */
	(void)p;
	(void)ud;
	return ne_dns_verdict_forward_bytes("10.0.0.1:5353", changed, len);
}

static void test_raw_mode(void **state)
{
	static const struct ne_dns_proxy_ops dops = { .size = sizeof(dops), .handle_raw = handle_raw };
	static const uint8_t garbage[] = { 0xde, 0xad, 0xbe, 0xef, 0x00 };
	ne_extension *rext;
	ne_harness *rh;
	bool raw = false, responses = true;
	char addr[INET_ADDRSTRLEN];
	ne_dns_response_verdict rv;
	uint8_t q[512];
	ne_dns_verdict v;
	uint64_t id;
	size_t n;
	int err = -1;

	assert_int_equal(ne_extension_new(&rext), 0);
	assert_int_equal(ne_extension_register_dns_proxy(rext, &ops, &dops, NULL), 0);
	assert_int_equal(ne_harness_new(rext, &rh), 0);
	assert_int_equal(ne_harness_start(rh, "raw", NE_PROVIDER_DNS_PROXY, NULL, &err), 0);
	assert_int_equal(err, 0);
	assert_int_equal(ne_harness_dns_settings(rh, "raw", &raw, &responses), 0);
	assert_true(raw);
	assert_false(responses);

	/* Bytes that are not a DNS message still reach a raw provider. */
	assert_int_equal(ne_harness_dns_query(rh, "raw", NULL, garbage, sizeof(garbage), &id, &v), 0);
	assert_false(raw_parsed);
	assert_int_equal(raw_seen_len, sizeof(garbage));
	assert_memory_equal(raw_seen, garbage, sizeof(garbage));
	assert_int_equal(v.kind, NE_DNS_VERDICT_FORWARD);
	assert_string_equal(v.target, "10.0.0.1:5353");
	assert_int_equal(v.len, sizeof(garbage));
	assert_int_equal(((const uint8_t *)v.bytes)[0], 0xde ^ 0xff);
	/* Without handle_response its answers are passed on unseen. */
	assert_int_equal(ne_harness_dns_response(rh, "raw", id, garbage, sizeof(garbage), &rv), 0);
	assert_int_equal(rv.kind, NE_DNS_RESPONSE_PASS);

	n = make_query("answer.test", NE_DNS_TYPE_A, q);
	assert_int_equal(ne_harness_dns_query(rh, "raw", NULL, q, n, &id, &v), 0);
	assert_true(raw_parsed);
	assert_int_equal(v.kind, NE_DNS_VERDICT_ANSWER);
	first_address(v.bytes, v.len, addr, sizeof(addr));
	assert_string_equal(addr, "192.0.2.8");

	ne_harness_free(rh);
	ne_extension_free(rext);
	(void)state;
}

/* --- registration -------------------------------------------------------------------------- */

static ne_dns_verdict raw_nop(ne_provider *p, ne_dns_query *q, const void *b, size_t l, void *ud)
{
	return ne_dns_verdict_forward(NULL);
}

static void test_bad_registration(void **state)
{
	struct ne_dns_proxy_ops neither = { .size = sizeof(neither) };
	struct ne_dns_proxy_ops both = { .size = sizeof(both), .handle_query = handle_query, .handle_raw = raw_nop };
	struct ne_dns_proxy_ops small = { .size = sizeof(uint32_t), .handle_query = handle_query };
	struct ne_dns_proxy_ops good = { .size = sizeof(good), .handle_raw = raw_nop };
	ne_extension *e;

	assert_int_equal(ne_extension_new(&e), 0);
	assert_int_equal(ne_extension_register_dns_proxy(e, &ops, &neither, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_dns_proxy(e, &ops, &both, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_dns_proxy(e, &ops, &small, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_dns_proxy(e, &ops, NULL, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_dns_proxy(e, NULL, &good, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_dns_proxy(NULL, &ops, &good, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_dns_proxy(e, &ops, &good, NULL), 0);
	assert_int_equal(ne_extension_register_dns_proxy(e, &ops, &good, NULL), -EEXIST);
	ne_extension_free(e);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdict_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_verdicts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_process_and_endpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_later_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_later_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_responses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_frees_held, setup, teardown),
		cmocka_unit_test(test_raw_mode),
		cmocka_unit_test(test_bad_registration),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
