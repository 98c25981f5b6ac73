/* libnetext's filter-data side through the harness: settings complete a start, verdicts come
 * back as returned, pause then resume, "later", the flow's metadata as the provider sees it,
 * and the calls that must refuse (filter-data verdicts, resuming what is not waiting). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <netext/harness.h>

static ne_provider *last_provider;
static ne_flow *held;
static char seen[512];

static void settings_done(ne_provider *p, int error, const char *message, void *ud)
{
	ne_provider_start_done(p, error, message);
}

static void start(ne_provider *p, const ne_options *o, void *ud)
{
	static const struct ne_filter_rule rules[] = {
		{ .action = NE_FILTER_ACTION_DROP, .remote_hostname = "ads.example" },
		{ .action = NE_FILTER_ACTION_FILTER_DATA, .protocol = IPPROTO_TCP },
	};
	struct ne_filter_settings s = { .size = sizeof(s), .rules = rules, .n_rules = 2,
					.default_action = NE_FILTER_ACTION_ALLOW };

	last_provider = p;
	assert_int_equal(ne_filter_apply_settings(p, &s, settings_done, NULL), 0);
}

static ne_filter_verdict new_flow(ne_provider *p, ne_flow *f, void *ud)
{
	const char *exe = ne_flow_executable(f);
	struct sockaddr_storage ss;

	ne_flow_format(f, seen, sizeof(seen));
	assert_int_equal(ne_flow_remote_endpoint(f, &ss), 0);
	if (exe && !strcmp(exe, "/usr/bin/telnet"))
		return ne_filter_verdict_drop();
	if (exe && !strcmp(exe, "/usr/bin/ask")) {
		held = f;
		return ne_filter_verdict_pause();
	}
	if (exe && !strcmp(exe, "/usr/bin/slow")) {
		held = f;
		return ne_filter_verdict_later();
	}
	return ne_filter_verdict_allow();
}

static ne_extension *ext;
static ne_harness *h;

static int setup(void **state)
{
	static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = start };
	static const struct ne_filter_ops fops = { .size = sizeof(fops), .handle_new_flow = new_flow };
	int err = -1;

	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register_filter(ext, &ops, &fops, NULL), 0);
	assert_int_equal(ne_harness_new(ext, &h), 0);
	assert_int_equal(ne_harness_start(h, "fw", NE_PROVIDER_FILTER_DATA, NULL, &err), 0);
	assert_int_equal(err, 0);
	return 0;
}

static int teardown(void **state)
{
	ne_harness_free(h);
	ne_extension_free(ext);
	return 0;
}

static void test_settings_applied(void **state)
{
	size_t n = 0;
	ne_filter_action def = 0;

	assert_int_equal(ne_harness_filter_settings(h, "fw", &n, &def), 0);
	assert_int_equal(n, 2);
	assert_int_equal(def, NE_FILTER_ACTION_ALLOW);
}

static void test_verdicts_and_metadata(void **state)
{
	struct ne_harness_flow f = { .size = sizeof(f), .remote = "[2001:db8::5]:23", .local = "[2001:db8::1]:40000",
				     .hostname = "host.example", .executable = "/usr/bin/telnet", .pid = 42,
				     .has_ids = true, .uid = 1000, .gid = 1000 };
	ne_filter_verdict v;
	uint64_t id;

	assert_int_equal(ne_harness_new_flow(h, "fw", &f, &id, &v), 0);
	assert_int_equal(v.kind, NE_VERDICT_DROP);
	assert_non_null(strstr(seen, "tcp out [2001:db8::1]:40000 -> host.example=[2001:db8::5]:23"));
	assert_non_null(strstr(seen, "/usr/bin/telnet[42] uid 1000"));
	f.executable = "/usr/bin/curl";
	assert_int_equal(ne_harness_new_flow(h, "fw", &f, &id, &v), 0);
	assert_int_equal(v.kind, NE_VERDICT_ALLOW);
	f.executable = NULL;
	f.pid = 0;
	f.has_ids = false;
	f.remote = "198.51.100.7:53";
	assert_int_equal(ne_harness_new_flow(h, "fw", &f, &id, &v), -EINVAL); /* v4 remote, v6 local */
	f.local = NULL;
	assert_int_equal(ne_harness_new_flow(h, "fw", &f, &id, &v), 0);
	assert_non_null(strstr(seen, "process unknown"));
}

static void test_pause_resume(void **state)
{
	struct ne_harness_flow f = { .size = sizeof(f), .executable = "/usr/bin/ask", .pid = 7 };
	ne_filter_verdict v;
	uint64_t id;

	assert_int_equal(ne_harness_new_flow(h, "fw", &f, &id, &v), 0);
	assert_int_equal(v.kind, NE_VERDICT_PAUSE);
	assert_ptr_equal(ne_filter_waiting_flow(last_provider, id), held);
	assert_int_equal(ne_filter_resume_flow(last_provider, held, ne_filter_verdict_pause()), 0);
	assert_int_equal(ne_filter_resume_flow(last_provider, held, ne_filter_verdict_drop()), 0);
	assert_int_equal(ne_harness_flow_verdict(h, id, &v), 0);
	assert_int_equal(v.kind, NE_VERDICT_DROP);
	/* Decided: the handle is gone and a second resume is refused. */
	assert_null(ne_filter_waiting_flow(last_provider, id));
	assert_int_equal(ne_filter_resume_flow(last_provider, held, ne_filter_verdict_allow()), -ENOENT);
}

static void test_later(void **state)
{
	struct ne_harness_flow f = { .size = sizeof(f), .executable = "/usr/bin/slow", .pid = 8 };
	ne_filter_verdict v, fd;
	uint64_t id;

	assert_int_equal(ne_harness_new_flow(h, "fw", &f, &id, &v), 0);
	assert_int_equal(v.kind, NE_VERDICT_NONE);
	assert_int_equal(ne_filter_verdict_filter_data(true, 1024, false, 0, &fd), -EOPNOTSUPP);
	fd.kind = NE_VERDICT_FILTER_DATA;
	assert_int_equal(ne_filter_resume_flow(last_provider, held, fd), -EOPNOTSUPP);
	assert_int_equal(ne_filter_resume_flow(last_provider, held, ne_filter_verdict_later()), -EINVAL);
	assert_int_equal(ne_filter_resume_flow(last_provider, held, ne_filter_verdict_allow()), 0);
	assert_int_equal(ne_harness_flow_verdict(h, id, &v), 0);
	assert_int_equal(v.kind, NE_VERDICT_ALLOW);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings_applied),
		cmocka_unit_test(test_verdicts_and_metadata),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_later),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
