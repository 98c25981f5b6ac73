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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_roundtrip),
		cmocka_unit_test(test_hello_and_reply),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_start_refused_leaves_output),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_socket_fds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
