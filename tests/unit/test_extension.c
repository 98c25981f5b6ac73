/* libnetext's extension side, driven through the harness (providers) and over a raw
 * socketpair with the wire codec (handshake, heartbeat, protocol faults). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netext/harness.h>

#include "wire.h"

/* --- a provider to test ------------------------------------------------------------ */

struct state {
	char greeting[64];
	size_t n_options;
	ne_provider *pending_start; /* completed by idle() */
	int idle_turns;
	ne_message *deferred;
	ne_provider *last;
	int stops;
	ne_stop_reason reason;
};

static void t_start(ne_provider *pv, const ne_options *options, void *userdata)
{
	struct state *s = userdata;
	const char *g = ne_options_get(options, "greeting");

	snprintf(s->greeting, sizeof(s->greeting), "%s", g ? g : "none");
	s->n_options = ne_options_count(options);
	s->last = pv;
	ne_extension_log(ne_provider_extension(pv), NE_LOG_INFO, "starting %s",
			 ne_provider_configuration(pv));
	if (ne_options_get(options, "fail"))
		ne_provider_start_done(pv, -EINVAL, "told to fail");
	else if (ne_options_get(options, "async"))
		s->pending_start = pv;
	else
		ne_provider_start_done(pv, 0, NULL);
}

static void t_stop(ne_provider *pv, ne_stop_reason reason, void *userdata)
{
	struct state *s = userdata;

	s->stops++;
	s->reason = reason;
	assert_int_equal(ne_provider_stop_done(pv), 0);
}

static void t_message(ne_provider *pv, ne_message *msg, const void *data, size_t len,
		      void *userdata)
{
	struct state *s = userdata;

	if (len >= 5 && memcmp(data, "echo:", 5) == 0)
		ne_message_reply(msg, 0, (const char *)data + 5, len - 5);
	else if (len == 5 && memcmp(data, "defer", 5) == 0)
		s->deferred = msg;
	else
		ne_message_reply(msg, -EIO, NULL, 0);
}

static const struct ne_provider_ops ops = {
	.size = sizeof(ops), .start = t_start, .stop = t_stop, .app_message = t_message,
};

/* Completes a deferred start a few turns later, as an author's own loop would. */
static void idle(void *userdata)
{
	struct state *s = userdata;

	if (!s->pending_start || ++s->idle_turns < 3)
		return;
	assert_int_equal(ne_provider_start_done(s->pending_start, 0, NULL), 0);
	s->pending_start = NULL;
}

struct fixture {
	struct state s;
	ne_extension *ext;
	ne_harness *h;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(ne_extension_new(&f->ext), 0);
	assert_int_equal(ne_extension_register(f->ext, NE_PROVIDER_MESSAGE, &ops, &f->s), 0);
	assert_int_equal(ne_harness_new(f->ext, &f->h), 0);
	ne_harness_set_idle(f->h, idle, &f->s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ne_harness_free(f->h);
	ne_extension_free(f->ext);
	free(f);
	return 0;
}

static void start_ok(struct fixture *f, const char *config)
{
	int err = 1;

	assert_int_equal(ne_harness_start(f->h, config, NE_PROVIDER_MESSAGE, NULL, &err), 0);
	assert_int_equal(err, 0);
}

static void test_start_options_async(void **state)
{
	struct fixture *f = *state;
	const char *const opts[] = { "greeting", "bonjour", "async", "1", NULL };
	int err = 1;

	assert_string_equal(ne_extension_identifier(f->ext), "harness");
	assert_int_equal(ne_harness_start(f->h, "demo", NE_PROVIDER_MESSAGE, opts, &err), 0);
	assert_int_equal(err, 0);
	assert_string_equal(f->s.greeting, "bonjour");
	assert_int_equal(f->s.n_options, 2);
	assert_true(f->s.idle_turns >= 3);
	assert_string_equal(ne_harness_log_line(f->h, 0), "starting demo");
	assert_null(ne_harness_log_line(f->h, 1));
	/* A second start of a running configuration is refused by the harness. */
	assert_int_equal(ne_harness_start(f->h, "demo", NE_PROVIDER_MESSAGE, NULL, &err), -EALREADY);
}

static void test_message_roundtrip(void **state)
{
	struct fixture *f = *state;
	char buf[16];
	size_t len = 0;
	int err = 1;

	start_ok(f, "demo");
	assert_int_equal(ne_harness_message(f->h, "demo", "echo:abc", 8, &err, buf, sizeof(buf), &len), 0);
	assert_int_equal(err, 0);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "abc", 3);
	/* An error reply, a reply longer than the buffer, an unknown configuration. */
	assert_int_equal(ne_harness_message(f->h, "demo", "what", 4, &err, buf, sizeof(buf), &len), 0);
	assert_int_equal(err, -EIO);
	assert_int_equal(ne_harness_message(f->h, "demo", "echo:0123456789abcdefgh", 23, &err, buf,
					    sizeof(buf), &len), -EMSGSIZE);
	assert_int_equal(ne_harness_message(f->h, "nope", "x", 1, &err, buf, sizeof(buf), &len), -ENOENT);
}

static void test_stop_reason(void **state)
{
	struct fixture *f = *state;
	size_t len;
	int err = 0;

	start_ok(f, "demo");
	assert_int_equal(ne_harness_stop(f->h, "demo", NE_STOP_REASON_APP_UPDATE), 0);
	assert_int_equal(f->s.stops, 1);
	assert_int_equal(f->s.reason, NE_STOP_REASON_APP_UPDATE);
	/* The provider is gone: messages get -ENOENT, and the configuration can start again. */
	assert_int_equal(ne_harness_message(f->h, "demo", "echo:x", 6, &err, NULL, 0, &len), 0);
	assert_int_equal(err, -ENOENT);
	start_ok(f, "demo");
	/* Stopping a configuration whose provider is gone is answered at once. */
	assert_int_equal(ne_harness_stop(f->h, "demo", NE_STOP_REASON_USER_INITIATED), 0);
	assert_int_equal(ne_harness_stop(f->h, "demo", NE_STOP_REASON_USER_INITIATED), 0);
	assert_int_equal(f->s.stops, 2);
}

static void test_start_errors(void **state)
{
	struct fixture *f = *state;
	const char *const opts[] = { "fail", "1", NULL };
	size_t len;
	int err = 0;

	assert_int_equal(ne_harness_start(f->h, "dns", NE_PROVIDER_DNS_PROXY, NULL, &err), 0);
	assert_int_equal(err, -EOPNOTSUPP);
	assert_int_equal(ne_harness_start(f->h, "bad", NE_PROVIDER_MESSAGE, opts, &err), 0);
	assert_int_equal(err, -EINVAL);
	/* A failed start leaves no provider behind. */
	assert_int_equal(ne_harness_message(f->h, "bad", "echo:x", 6, &err, NULL, 0, &len), 0);
	assert_int_equal(err, -ENOENT);
}

static void test_default_callbacks(void **state)
{
	static const struct ne_provider_ops empty = { .size = sizeof(empty) };
	ne_extension *ext;
	ne_harness *h;
	size_t len;
	int err = 1;

	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register(ext, NE_PROVIDER_FILTER_DATA, &empty, NULL), 0);
	assert_int_equal(ne_harness_new(ext, &h), 0);
	assert_int_equal(ne_harness_start(h, "f", NE_PROVIDER_FILTER_DATA, NULL, &err), 0);
	assert_int_equal(err, 0);
	assert_int_equal(ne_harness_message(h, "f", "hi", 2, &err, NULL, 0, &len), 0);
	assert_int_equal(err, -EOPNOTSUPP);
	assert_int_equal(ne_harness_stop(h, "f", NE_STOP_REASON_USER_INITIATED), 0);
	ne_harness_free(h);
	ne_extension_free(ext);
	(void)state;
}

static void test_completions_twice(void **state)
{
	struct fixture *f = *state;
	char buf[8];
	ne_message *msg;
	ne_provider *pv;
	int err = 1;

	ne_harness_set_timeout(f->h, 100);
	assert_int_equal(ne_harness_message(f->h, "x", "defer", 5, &err, NULL, 0, NULL), -ENOENT);
	start_ok(f, "demo");
	pv = f->s.last;
	assert_int_equal(ne_provider_start_done(pv, 0, NULL), -EALREADY);
	/* The deferred message times out in the harness; replying later is still fine. */
	assert_int_equal(ne_harness_message(f->h, "demo", "defer", 5, &err, NULL, 0, NULL), -ETIMEDOUT);
	msg = f->s.deferred;
	assert_non_null(msg);
	assert_int_equal(ne_message_reply(msg, 1, NULL, 0), -EINVAL); /* stays pending */
	assert_int_equal(ne_message_reply(msg, 0, "late", 4), 0);
	assert_int_equal(ne_message_reply(msg, 0, "late", 4), -ENOENT);
	/* The late reply is ignored by the harness; the next call works. */
	assert_int_equal(ne_harness_message(f->h, "demo", "echo:y", 6, &err, buf, sizeof(buf), NULL), 0);
	assert_int_equal(err, 0);
	assert_int_equal(buf[0], 'y');
	assert_int_equal(ne_harness_stop(f->h, "demo", NE_STOP_REASON_USER_INITIATED), 0);
	assert_int_equal(ne_provider_stop_done(pv), -ENOENT);
	assert_int_equal(ne_provider_start_done(pv, 0, NULL), -ENOENT);
	/* A message still pending when its extension is freed. */
	start_ok(f, "demo");
	pv = f->s.last;
	assert_int_equal(ne_harness_message(f->h, "demo", "defer", 5, &err, NULL, 0, NULL), -ETIMEDOUT);
	msg = f->s.deferred;
	ne_harness_free(f->h);
	ne_extension_free(f->ext);
	f->h = NULL;
	f->ext = NULL;
	assert_int_equal(ne_message_reply(msg, 0, NULL, 0), -ENOENT);
	assert_int_equal(ne_provider_stop_done(pv), -ENOENT);
}

static void test_log_sanitized(void **state)
{
	struct fixture *f = *state;
	char big[3000];
	const char *line;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(ne_extension_log(f->ext, NE_LOG_WARNING, "a\tb\nc%d", 7), 0);
	assert_int_equal(ne_extension_log(f->ext, NE_LOG_DEBUG, "%s", big), 0);
	assert_int_equal(ne_extension_log(f->ext, (ne_log_level)9, "x"), -EINVAL);
	start_ok(f, "demo"); /* lets the harness read the logs */
	assert_string_equal(ne_harness_log_line(f->h, 0), "a b c7");
	line = ne_harness_log_line(f->h, 1);
	assert_non_null(line);
	assert_int_equal(strlen(line), 1024);
}

static void test_register_errors(void **state)
{
	struct ne_provider_ops small = { .size = 8 };
	ne_extension *ext;

	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register(ext, (ne_provider_type)0, &ops, NULL), -EINVAL);
	assert_int_equal(ne_extension_register(ext, (ne_provider_type)9, &ops, NULL), -EINVAL);
	assert_int_equal(ne_extension_register(ext, NE_PROVIDER_MESSAGE, &small, NULL), -EINVAL);
	assert_int_equal(ne_extension_register(ext, NE_PROVIDER_MESSAGE, &ops, NULL), 0);
	assert_int_equal(ne_extension_register(ext, NE_PROVIDER_MESSAGE, &ops, NULL), -EEXIST);
	assert_true(ne_extension_fd(ext) < 0);
	assert_int_equal(ne_extension_dispatch(ext), -ENOTCONN);
	assert_null(ne_extension_identifier(ext));
	ne_extension_free(ext);
	ne_extension_free(NULL);
	(void)state;
}

static void test_connect_not_netextd(void **state)
{
	ne_extension *ext;
	char num[16];
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(ne_extension_new(&ext), 0);
	snprintf(num, sizeof(num), "%d", p[0]);
	setenv("NETEXT_FD", num, 1);
	assert_int_equal(ne_extension_connect(ext), -ENOTCONN);
	setenv("NETEXT_FD", "3x", 1);
	assert_int_equal(ne_extension_connect(ext), -ENOTCONN);
	unsetenv("NETEXT_FD");
	assert_int_equal(ne_extension_run(ext) < 0, 1); /* fd 3 is no channel here */
	ne_extension_free(ext);
	close(p[0]);
	close(p[1]);
	(void)state;
}

/* --- raw: the test plays netextd with the codec ---------------------------------------- */

static uint8_t frame[NE_WIRE_MAX];
static struct state raw_state;

struct raw {
	ne_extension *ext;
	int d;
};

/* Receives one frame from the extension; returns the payload length. */
static size_t raw_recv(int d, struct ne_msg_hdr *h)
{
	int n = ne_wire_recv(d, frame, sizeof(frame), NULL, NULL);

	assert_true(n >= NE_WIRE_HDR_LEN);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)n, h), 0);
	return (size_t)n - NE_WIRE_HDR_LEN;
}

static void raw_send(int d, int len)
{
	assert_true(len > 0);
	assert_int_equal(ne_wire_send(d, frame, (size_t)len, NULL, 0), len);
}

static void raw_open(struct raw *r, bool welcome)
{
	struct ne_msg_welcome w = { NE_WIRE_VERSION, { "d", 1 }, 1000 };
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_hello hello;
	struct ne_msg_hdr h;
	int sv[2];
	size_t len;

	assert_int_equal(ne_extension_new(&r->ext), 0);
	assert_int_equal(ne_extension_register(r->ext, NE_PROVIDER_MESSAGE, &ops, &raw_state), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(ne_extension_connect_fd(r->ext, sv[0]), 0);
	assert_int_equal(ne_extension_connect_fd(r->ext, sv[0]), -EISCONN);
	assert_true(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
	r->d = sv[1];
	len = raw_recv(r->d, &h);
	assert_int_equal(h.type, NE_MSG_HELLO);
	assert_int_equal(ne_msg_hello_decode(frame + NE_WIRE_HDR_LEN, len, &hello), 0);
	assert_int_equal(hello.min_version, NE_WIRE_VERSION);
	assert_int_equal(hello.n_providers, 1);
	assert_int_equal(hello.providers[0], NE_PROVIDER_MESSAGE);
	assert_true(hello.library.len > 10 && memcmp(hello.library.p, "libnetext ", 10) == 0);
	if (!welcome)
		return;
	raw_send(r->d, ne_msg_welcome_encode(&b, &w));
	assert_int_equal(ne_extension_dispatch(r->ext), 0);
	assert_string_equal(ne_extension_identifier(r->ext), "d");
}

static void raw_close(struct raw *r)
{
	close(r->d);
	ne_extension_free(r->ext);
}

static void test_ping(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_hdr h;
	struct raw r;

	raw_open(&r, true);
	raw_send(r.d, ne_msg_empty_encode(&b, NE_MSG_PING, 77));
	raw_send(r.d, ne_msg_empty_encode(&b, NE_MSG_PING, 78));
	assert_int_equal(ne_extension_dispatch(r.ext), 0);
	assert_int_equal(raw_recv(r.d, &h), 0);
	assert_int_equal(h.type, NE_MSG_PONG);
	assert_int_equal(h.id, 77);
	raw_recv(r.d, &h);
	assert_int_equal(h.id, 78);
	raw_close(&r);
	(void)state;
}

static void test_stop_unknown_and_duplicate_start(void **state)
{
	struct ne_msg_start m = { .provider = 5, .type = NE_PROVIDER_MESSAGE, .config = { "c", 1 } };
	struct ne_msg_stop stop = { 9, NE_STOP_REASON_USER_INITIATED };
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct ne_msg_result res;
	struct ne_msg_hdr h;
	struct raw r;
	size_t len;

	raw_open(&r, true);
	raw_send(r.d, ne_msg_stop_encode(&b, 3, &stop));
	assert_int_equal(ne_extension_dispatch(r.ext), 0);
	raw_recv(r.d, &h);
	assert_int_equal(h.type, NE_MSG_STOP_DONE);
	assert_int_equal(h.id, 3);
	/* The same provider handle twice while the first is live is a protocol fault. */
	raw_send(r.d, ne_msg_start_encode(&b, 4, &m));
	raw_send(r.d, ne_msg_start_encode(&b, 5, &m));
	assert_int_equal(ne_extension_dispatch(r.ext), -EPROTO);
	raw_recv(r.d, &h);
	assert_int_equal(h.type, NE_MSG_LOG); /* t_start logs first */
	len = raw_recv(r.d, &h);
	assert_int_equal(h.type, NE_MSG_START_DONE);
	assert_int_equal(h.id, 4);
	assert_int_equal(ne_msg_result_decode(frame + NE_WIRE_HDR_LEN, len, &res), 0);
	assert_int_equal(res.error, 0);
	raw_close(&r);
	(void)state;
}

static void expect_fault(bool welcome, int (*build)(struct ne_wbuf *b), int fault)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct raw r;

	raw_open(&r, welcome);
	raw_send(r.d, build(&b));
	assert_int_equal(ne_extension_dispatch(r.ext), fault);
	assert_int_equal(ne_extension_dispatch(r.ext), fault); /* sticky */
	raw_close(&r);
}

static int b_ping(struct ne_wbuf *b)
{
	return ne_msg_empty_encode(b, NE_MSG_PING, 1);
}

static int b_flags(struct ne_wbuf *b)
{
	int len = ne_msg_empty_encode(b, NE_MSG_PING, 1);

	b->p[3] = 1;
	return len;
}

static int b_unknown(struct ne_wbuf *b)
{
	return ne_msg_empty_encode(b, 99, 1);
}

static int b_from_extension(struct ne_wbuf *b)
{
	return ne_msg_empty_encode(b, NE_MSG_PONG, 1);
}

static int b_welcome(struct ne_wbuf *b)
{
	struct ne_msg_welcome w = { NE_WIRE_VERSION, { "d", 1 }, 1000 };

	return ne_msg_welcome_encode(b, &w);
}

static int b_bad_version(struct ne_wbuf *b)
{
	struct ne_msg_welcome w = { NE_WIRE_VERSION + 1, { "d", 1 }, 1000 };

	return ne_msg_welcome_encode(b, &w);
}

static int b_truncated_start(struct ne_wbuf *b)
{
	struct ne_msg_start m = { .provider = 5, .type = NE_PROVIDER_MESSAGE, .config = { "c", 1 } };
	int len = ne_msg_start_encode(b, 4, &m);

	/* Claims one byte less payload: the header length must still match the datagram. */
	b->p[7] = (uint8_t)(len - 1);
	return len - 1;
}

static int b_ping_payload(struct ne_wbuf *b)
{
	ne_msg_begin(b, NE_MSG_PING, 1);
	ne_put_u8(b, 0);
	return ne_msg_finish(b);
}

static void test_protocol_faults(void **state)
{
	expect_fault(false, b_ping, -EPROTO);            /* before the handshake */
	expect_fault(false, b_bad_version, -EPROTO);
	expect_fault(true, b_welcome, -EPROTO);          /* handshake twice */
	expect_fault(true, b_flags, -EBADMSG);
	expect_fault(true, b_unknown, -EPROTO);
	expect_fault(true, b_from_extension, -EPROTO);
	expect_fault(true, b_truncated_start, -EBADMSG);
	expect_fault(true, b_ping_payload, -EBADMSG);
	(void)state;
}

static void test_fd_refused(void **state)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };
	struct raw r;
	int len, fd = dup(0);

	raw_open(&r, true);
	len = ne_msg_empty_encode(&b, NE_MSG_PING, 1);
	assert_int_equal(ne_wire_send(r.d, frame, (size_t)len, &fd, 1), len);
	assert_int_equal(ne_extension_dispatch(r.ext), -EBADMSG);
	close(fd);
	raw_close(&r);
	(void)state;
}

static void test_eof(void **state)
{
	struct raw r;

	raw_open(&r, true);
	close(r.d);
	assert_int_equal(ne_extension_dispatch(r.ext), 1);
	assert_int_equal(ne_extension_dispatch(r.ext), 1);
	assert_int_equal(ne_extension_run(r.ext), 0);
	ne_extension_free(r.ext);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_options_async, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_completions_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_sanitized, setup, teardown),
		cmocka_unit_test(test_default_callbacks),
		cmocka_unit_test(test_register_errors),
		cmocka_unit_test(test_connect_not_netextd),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_stop_unknown_and_duplicate_start),
		cmocka_unit_test(test_protocol_faults),
		cmocka_unit_test(test_fd_refused),
		cmocka_unit_test(test_eof),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
