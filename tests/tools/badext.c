/* netext-badext: a deliberately hostile fake extension for netextd's integration tests.
 * It finds its channel where a real extension does (fd 3, or $NETEXT_FD), sends what the
 * mode asks for, then lingers, reading and discarding, until the channel closes or it is
 * killed. It never uses libnetext: it speaks the raw wire with the shared codec, and
 * breaks it on purpose.
 *
 *   netext-badext random N [SEED]   N frames of random bytes, lengths 0..NE_WIRE_MAX+100
 *   netext-badext malformed N       HELLO, then N broken frames (see malformed())
 *   netext-badext oversize          HELLO, then one frame longer than NE_WIRE_MAX
 *   netext-badext fds               HELLO, then a valid PONG carrying an fd (SCM_RIGHTS)
 *   netext-badext outoforder        START_DONE for a request never made, before HELLO
 *   netext-badext flood N           HELLO, then N valid LOG frames as fast as possible
 *   netext-badext silent            HELLO, then never answers (pings time out)
 *
 * Exit: 0 once the channel closed, 1 without a channel, 2 for bad arguments. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"
#include "wire.h"

#define SEND_WAIT_MS 2000

static int chan = -1;
static uint8_t frame[NE_WIRE_MAX + 128];
static uint64_t rng = 1;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static struct ne_wbuf wbuf(void)
{
	struct ne_wbuf b = { frame, 0, sizeof(frame), 0 };

	return b;
}

/* Sends one datagram, waiting a little while the daemon's queue is full. Returns 0,
 * -EPIPE once the daemon hung up, or another negative errno (ignored by most modes: a
 * hostile extension does not care). */
static int send_raw(const void *p, size_t len, const int *fds, size_t nfds)
{
	struct pollfd pf = { .fd = chan, .events = POLLOUT };
	int r;

	for (;;) {
		r = ne_wire_send(chan, p, len, fds, nfds);
		if (r >= 0)
			return 0;
		if (r == -ECONNRESET || r == -ENOTCONN)
			return -EPIPE;
		if (r != -EAGAIN && r != -EINTR)
			return r;
		if (poll(&pf, 1, SEND_WAIT_MS) == 0)
			return -ETIMEDOUT;
	}
}

static int send_built(int len)
{
	return len < 0 ? len : send_raw(frame, (size_t)len, NULL, 0);
}

static int send_hello(void)
{
	struct ne_msg_hello m = { NE_WIRE_VERSION, NE_WIRE_VERSION, { "netext-badext", 13 }, 1,
				  { 1 } };
	struct ne_wbuf b = wbuf();

	return send_built(ne_msg_hello_encode(&b, &m));
}

static int send_log(const char *text)
{
	struct ne_msg_log m = { 6, { text, strlen(text) } };
	struct ne_wbuf b = wbuf();

	return send_built(ne_msg_log_encode(&b, &m));
}

/* Overwrites the length field of the frame in `frame`. */
static void set_length(uint32_t len)
{
	frame[4] = (uint8_t)(len >> 24);
	frame[5] = (uint8_t)(len >> 16);
	frame[6] = (uint8_t)(len >> 8);
	frame[7] = (uint8_t)len;
}

static int random_frames(long n)
{
	long i;
	size_t len, k;
	int r;

	for (i = 0; i < n; i++) {
		len = rnd() % (NE_WIRE_MAX + 101);
		for (k = 0; k < len; k++)
			frame[k] = (uint8_t)rnd();
		/* One in four gets a plausible header, so that the payload decoders run too. */
		if (len >= NE_WIRE_HDR_LEN && rnd() % 4 == 0) {
			frame[0] = 0;
			frame[1] = (uint8_t)(rnd() % (NE_MSG_TYPE_MAX + 2));
			frame[2] = frame[3] = 0;
			set_length((uint32_t)len);
		}
		r = send_raw(frame, len, NULL, 0);
		if (r == -EPIPE)
			return r;
	}
	return 0;
}

/* Builds broken frame number `kind` in `frame`; returns its length. */
static int malformed(unsigned kind)
{
	struct ne_msg_start start = { .provider = 1, .type = 1, .config = { "x", 1 } };
	struct ne_msg_welcome welcome = { NE_WIRE_VERSION, { "x", 1 }, 1000 };
	struct ne_msg_log log = { 6, { "hello", 5 } };
	struct ne_wbuf b = wbuf();
	int len;

	switch (kind % 13) {
	case 0: /* PONG with a payload */
		ne_msg_begin(&b, NE_MSG_PONG, 1);
		ne_put_u8(&b, 0);
		return ne_msg_finish(&b);
	case 1: /* length field says more than the datagram */
		len = ne_msg_log_encode(&b, &log);
		set_length((uint32_t)len + 10);
		return len;
	case 2: /* reserved flags */
		len = ne_msg_log_encode(&b, &log);
		frame[3] = 0x80;
		return len;
	case 3: /* unknown type */
		return ne_msg_empty_encode(&b, 200, 0);
	case 4: /* a type only the daemon may send */
		return ne_msg_start_encode(&b, 1, &start);
	case 5: /* string longer than the payload */
		len = ne_msg_log_encode(&b, &log);
		frame[NE_WIRE_HDR_LEN + 1] = 0;
		frame[NE_WIRE_HDR_LEN + 2] = 100;
		return len;
	case 6: /* control character in a string */
		len = ne_msg_log_encode(&b, &log);
		frame[len - 1] = '\n';
		return len;
	case 7: /* positive error in START_DONE */
		ne_msg_begin(&b, NE_MSG_START_DONE, 1);
		ne_put_u32(&b, 5);
		ne_put_str(&b, "", 0);
		return ne_msg_finish(&b);
	case 8: /* blob length far beyond the frame */
		ne_msg_begin(&b, NE_MSG_APP_REPLY, 1);
		ne_put_u32(&b, 0);
		ne_put_u32(&b, 0x7fffffff);
		return ne_msg_finish(&b);
	case 9: /* a second handshake */
		return send_hello() < 0 ? -EIO : ne_msg_empty_encode(&b, NE_MSG_PONG, 0);
	case 10: /* shorter than a header */
		len = ne_msg_empty_encode(&b, NE_MSG_PONG, 1);
		return 8;
	case 11: /* trailing bytes */
		ne_msg_begin(&b, NE_MSG_LOG, 0);
		ne_put_u8(&b, 6);
		ne_put_str(&b, "x", 1);
		ne_put_u32(&b, 0xdeadbeef);
		return ne_msg_finish(&b);
	default: /* WELCOME, the daemon's own handshake */
		return ne_msg_welcome_encode(&b, &welcome);
	}
}

static int malformed_frames(long n)
{
	long i;
	int r;

	r = send_hello();
	for (i = 0; i < n && r != -EPIPE; i++)
		r = send_built(malformed((unsigned)i));
	return 0;
}

static int oversize(void)
{
	struct ne_msg_log log = { 6, { "big", 3 } };
	struct ne_wbuf b = wbuf();
	size_t len = NE_WIRE_MAX + 1;

	send_hello();
	ne_msg_log_encode(&b, &log);
	memset(frame + b.len, 'A', len - b.len);
	set_length((uint32_t)len);
	return send_raw(frame, len, NULL, 0);
}

/* Waits up to ms for a PING and returns its id, or 1 when none came. */
static uint64_t await_ping(int ms)
{
	struct pollfd pf = { .fd = chan, .events = POLLIN };
	struct ne_msg_hdr h;
	int n;

	while (poll(&pf, 1, ms) == 1) {
		n = ne_wire_recv(chan, frame, sizeof(frame), NULL, NULL);
		if (n == 0)
			break;
		if (n > 0 && ne_msg_hdr_decode(frame, (size_t)n, &h) == 0 && h.type == NE_MSG_PING)
			return h.id;
	}
	return 1;
}

static int pass_fd(void)
{
	struct ne_wbuf b = wbuf();
	uint64_t id;
	int fd, len, r;

	send_hello();
	id = await_ping(3000);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	len = ne_msg_empty_encode(&b, NE_MSG_PONG, id);
	r = len < 0 ? len : send_raw(frame, (size_t)len, &fd, 1);
	close(fd);
	return r;
}

static int out_of_order(void)
{
	struct ne_msg_result m = { 0, { "", 0 } };
	struct ne_wbuf b = wbuf();

	return send_built(ne_msg_result_encode(&b, 12345, &m));
}

static int flood(long n)
{
	char text[64];
	long i;
	int r;

	r = send_hello();
	for (i = 0; i < n && r != -EPIPE; i++) {
		snprintf(text, sizeof(text), "flood %ld", i);
		r = send_log(text);
	}
	return 0;
}

/* Reads and drops whatever comes until the daemon closes the channel. */
static void linger(void)
{
	struct pollfd pf = { .fd = chan, .events = POLLIN };
	int n;

	for (;;) {
		if (poll(&pf, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		n = ne_wire_recv(chan, frame, sizeof(frame), NULL, NULL);
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR && n != -EMSGSIZE))
			return;
	}
}

static int open_channel(void)
{
	const char *s = getenv("NETEXT_FD");
	int fd = NE_EXTENSION_FD, type = 0;
	socklen_t l = sizeof(type);
	char *end;
	long v;

	if (s) {
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || end == s || *end || v < 0 || v > INT_MAX)
			return -EINVAL;
		fd = (int)v;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0 || type != SOCK_SEQPACKET)
		return -ENOTCONN;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	chan = fd;
	return 0;
}

static long count_arg(int argc, char **argv, long dflt)
{
	char *end;
	long v;

	if (argc < 3)
		return dflt;
	v = strtol(argv[2], &end, 10);
	return *end || v < 0 ? -1 : v;
}

static int usage(void)
{
	fprintf(stderr, "usage: netext-badext random N [SEED] | malformed N | oversize | fds |"
			" outoforder | flood N | silent\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	long n = count_arg(argc, argv, 100);

	if (n < 0)
		return usage();
	if (argc > 3)
		rng = strtoull(argv[3], NULL, 10) | 1;
	if (open_channel() < 0) {
		fprintf(stderr, "netext-badext: no channel at fd 3 / $NETEXT_FD\n");
		return 1;
	}
	if (strcmp(mode, "random") == 0)
		random_frames(n);
	else if (strcmp(mode, "malformed") == 0)
		malformed_frames(n);
	else if (strcmp(mode, "oversize") == 0)
		oversize();
	else if (strcmp(mode, "fds") == 0)
		pass_fd();
	else if (strcmp(mode, "outoforder") == 0)
		out_of_order();
	else if (strcmp(mode, "flood") == 0)
		flood(n);
	else if (strcmp(mode, "silent") == 0)
		send_hello();
	else
		return usage();
	linger();
	return 0;
}
