/* The hello example, driven through the harness: its own-loop timer runs as the harness's
 * idle work, so its asynchronous start completes as it does under netextd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netext/harness.h>

#define main hello_main
int hello_main(void);
#include "../../examples/hello/hello.c"
#undef main

static void idle(void *userdata)
{
	struct hello *h = userdata;
	struct pollfd p = { .fd = h->timer, .events = POLLIN };

	if (poll(&p, 1, 0) == 1)
		on_timer(h);
}

static void ask(ne_harness *hn, const char *msg, int want_err, const char *want_prefix)
{
	char buf[1024];
	size_t len = 0;
	int err = 1;

	assert_int_equal(ne_harness_message(hn, "hi", msg, strlen(msg), &err, buf, sizeof(buf) - 1,
					    &len), 0);
	assert_int_equal(err, want_err);
	buf[len] = '\0';
	if (want_prefix)
		assert_true(strncmp(buf, want_prefix, strlen(want_prefix)) == 0);
}

static void test_hello(void **state)
{
	const char *const opts[] = { "greeting", "salut", NULL };
	struct hello h = { .timer = -1 };
	ne_harness *hn;
	int err = 1;

	assert_int_equal(ne_extension_new(&h.ext), 0);
	assert_int_equal(ne_extension_register(h.ext, NE_PROVIDER_MESSAGE, &hello_ops, &h), 0);
	h.timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	assert_true(h.timer >= 0);
	assert_int_equal(ne_harness_new(h.ext, &hn), 0);
	ne_harness_set_idle(hn, idle, &h);
	assert_int_equal(ne_harness_start(hn, "hi", NE_PROVIDER_MESSAGE, opts, &err), 0);
	assert_int_equal(err, 0);
	ask(hn, "ping", 0, "pong");
	ask(hn, "whoami", 0, "uid=");
	ask(hn, "world", 0, "salut, world");
	ask(hn, "crash", -EPERM, NULL);
	ask(hn, "hang", -EPERM, NULL);
	assert_int_equal(ne_harness_stop(hn, "hi", NE_STOP_REASON_USER_LOGOUT), 0);
	assert_string_equal(ne_harness_log_line(hn, 0), "hi: starting, greeting \"salut\"");
	assert_string_equal(ne_harness_log_line(hn, 1), "hi: started");
	assert_string_equal(ne_harness_log_line(hn, 2), "hi: stopping (user-logout)");
	assert_null(h.providers);
	ne_harness_free(hn);
	ne_extension_free(h.ext);
	close(h.timer);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
