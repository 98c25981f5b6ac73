/* dnsbad: hostile DNS input for tests/integration/test_dns_badinput.sh. Not a test itself.
 *
 *   dnsbad udp|tcp ADDR CASE        sends one crafted message to ADDR:53 and prints what came
 *                                   back: "rcode=N id=ok|bad", "noreply" (1 s) or "closed"
 *   dnsbad pipeline ADDR N          N queries in one TCP write; prints "answers=K" (all ids
 *                                   matched) once every answer arrived, in any order
 *   dnsbad slowloris ADDR           one byte of a TCP frame, then silence; prints "closed"
 *                                   when the server closes (waits up to 30 s) or "open"
 *   dnsbad hold ADDR N              opens N TCP connections, prints how many the server
 *                                   closed within 1 s ("closed=K"), keeps the rest 2 s
 *   dnsbad fake-upstream ADDR ADDR2 a UDP server on ADDR:53 that answers each query first
 *                                   from ADDR:5353 and from ADDR2:53 (wrong source), then
 *                                   with a wrong id, then garbage, then another question,
 *                                   and last correctly (A 198.18.9.9); runs until killed
 *
 * CASE: truncated loop forward longlabel longname counts short qr notimp noquestion
 *       zero (TCP) oversized (TCP) shortframe (TCP) good */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint8_t msg[70000];
static size_t len;

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void header(unsigned id, unsigned flags, unsigned qd)
{
	memset(msg, 0, 12);
	put16(msg, id);
	put16(msg + 2, flags);
	put16(msg + 4, qd);
	len = 12;
}

static void name(const char *text)
{
	const char *p = text;

	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		msg[len++] = (uint8_t)l;
		memcpy(msg + len, p, l);
		len += l;
		p += l + (dot ? 1 : 0);
	}
	msg[len++] = 0;
}

static void qtail(void)
{
	put16(msg + len, 1); /* A */
	put16(msg + len + 2, 1); /* IN */
	len += 4;
}

static void question(unsigned id, const char *n)
{
	header(id, 0x0100, 1);
	name(n);
	qtail();
}

static int build(const char *c)
{
	if (!strcmp(c, "good")) {
		question(0x1234, "example.org");
	} else if (!strcmp(c, "truncated")) {
		question(0x1234, "example.org");
		len -= 3;
	} else if (!strcmp(c, "loop")) {
		header(0x1234, 0x0100, 1);
		msg[12] = 0xc0; /* a pointer to itself */
		msg[13] = 12;
		len = 14;
		qtail();
	} else if (!strcmp(c, "forward")) {
		header(0x1234, 0x0100, 1);
		msg[12] = 0xc0; /* a pointer past itself */
		msg[13] = 18;
		len = 14;
		qtail();
		name("example.org");
	} else if (!strcmp(c, "longlabel")) {
		char n[100];

		memset(n, 'a', 64);
		strcpy(n + 64, ".org");
		question(0x1234, n);
	} else if (!strcmp(c, "longname")) {
		char n[400] = "";

		for (int i = 0; i < 5; i++)
			strcat(n, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
		strcat(n, "org");
		question(0x1234, n);
	} else if (!strcmp(c, "counts")) {
		question(0x1234, "example.org");
		put16(msg + 4, 50);
		put16(msg + 6, 1000);
	} else if (!strcmp(c, "short")) {
		question(0x1234, "example.org");
		len = 5;
	} else if (!strcmp(c, "qr")) {
		question(0x1234, "example.org");
		msg[2] |= 0x80;
	} else if (!strcmp(c, "notimp")) {
		question(0x1234, "example.org");
		msg[2] |= 2 << 3; /* STATUS */
	} else if (!strcmp(c, "noquestion")) {
		header(0x1234, 0x0100, 0);
	} else if (!strcmp(c, "zero")) {
		len = 0;
	} else if (!strcmp(c, "oversized")) {
		memset(msg, 0, 40000);
		len = 40000; /* more than a query may be */
	} else if (!strcmp(c, "shortframe")) {
		len = 6;
		memset(msg, 0, len);
	} else {
		return -1;
	}
	return 0;
}

static int addr(const char *text, uint16_t port, struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*sl = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*sl = sizeof(*s6);
		return 0;
	}
	return -1;
}

static int wait_in(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms);
}

static void print_answer(const uint8_t *a, ssize_t n)
{
	if (n < 12) {
		printf("short=%zd\n", n);
		return;
	}
	printf("rcode=%d id=%s\n", a[3] & 0x0f, (a[0] << 8 | a[1]) == 0x1234 ? "ok" : "bad");
}

static int do_udp(const char *server, const char *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t a[4096];
	int fd;

	if (build(c) < 0 || addr(server, 53, &ss, &sl) < 0)
		return 2;
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0 || sendto(fd, msg, len, 0, (struct sockaddr *)&ss, sl) < 0) {
		perror("send");
		return 1;
	}
	if (wait_in(fd, 1000) <= 0) {
		printf("noreply\n");
		return 0;
	}
	print_answer(a, recv(fd, a, sizeof(a), 0));
	return 0;
}

static int tcp_connect(const char *server)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd;

	if (addr(server, 53, &ss, &sl) < 0)
		return -1;
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		perror("connect");
		return -1;
	}
	return fd;
}

/* Reads one framed answer; 0 on EOF, -1 on timeout. */
static ssize_t tcp_read_msg(int fd, uint8_t *a, size_t cap, int ms)
{
	uint8_t h[2];
	size_t want, got = 0;
	ssize_t n;

	for (size_t hg = 0; hg < 2; hg += (size_t)n) {
		if (wait_in(fd, ms) <= 0)
			return -1;
		n = read(fd, h + hg, 2 - hg);
		if (n <= 0)
			return 0;
	}
	want = (size_t)(h[0] << 8 | h[1]);
	if (want > cap)
		return 0;
	while (got < want) {
		if (wait_in(fd, ms) <= 0)
			return -1;
		n = read(fd, a + got, want - got);
		if (n <= 0)
			return 0;
		got += (size_t)n;
	}
	return (ssize_t)want;
}

static int do_tcp(const char *server, const char *c)
{
	static uint8_t frame[70002];
	uint8_t a[65536];
	ssize_t n;
	int fd;

	if (build(c) < 0)
		return 2;
	fd = tcp_connect(server);
	if (fd < 0)
		return 1;
	put16(frame, (unsigned)len);
	if (len > 65535)
		put16(frame, 65535);
	memcpy(frame + 2, msg, len);
	if (write(fd, frame, len + 2) < 0 && errno != EPIPE && errno != ECONNRESET) {
		perror("write");
		return 1;
	}
	n = tcp_read_msg(fd, a, sizeof(a), 2000);
	if (n < 0)
		printf("noreply\n");
	else if (n == 0)
		printf("closed\n");
	else
		print_answer(a, n);
	return 0;
}

static int do_pipeline(const char *server, int count)
{
	static uint8_t buf[100 * 40];
	uint8_t a[4096], seen[100] = { 0 };
	size_t off = 0;
	int fd, got = 0;

	if (count < 1 || count > 100)
		return 2;
	for (int i = 0; i < count; i++) {
		question(0x1000u + (unsigned)i, i % 2 ? "example.org" : "host.corp.example");
		put16(buf + off, (unsigned)len);
		memcpy(buf + off + 2, msg, len);
		off += len + 2;
	}
	fd = tcp_connect(server);
	if (fd < 0 || write(fd, buf, off) != (ssize_t)off)
		return 1;
	while (got < count) {
		ssize_t n = tcp_read_msg(fd, a, sizeof(a), 5000);
		unsigned id;

		if (n < 12)
			break;
		id = (unsigned)(a[0] << 8 | a[1]) - 0x1000u;
		if (id >= (unsigned)count || seen[id] || (a[3] & 0x0f) != 0)
			break;
		seen[id] = 1;
		got++;
	}
	printf("answers=%d\n", got);
	return 0;
}

static int do_slowloris(const char *server)
{
	uint8_t b = 0;
	int fd = tcp_connect(server);

	if (fd < 0 || write(fd, &b, 1) != 1)
		return 1;
	if (wait_in(fd, 30000) > 0 && read(fd, &b, 1) <= 0)
		printf("closed\n");
	else
		printf("open\n");
	return 0;
}

static int do_hold(const char *server, int count)
{
	int fds[64], closed = 0;

	if (count < 1 || count > 64)
		return 2;
	for (int i = 0; i < count; i++)
		if ((fds[i] = tcp_connect(server)) < 0)
			return 1;
	for (int i = 0; i < count; i++) {
		uint8_t b;

		if (wait_in(fds[i], i == count - 1 ? 1000 : 100) > 0 && read(fds[i], &b, 1) <= 0)
			closed++;
	}
	printf("closed=%d\n", closed);
	fflush(stdout);
	sleep(2);
	return 0;
}

/* ---- the fake upstream ----------------------------------------------------------------- */

static int bound(const char *a, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	if (addr(a, port, &ss, &sl) < 0)
		return -1;
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		perror(a);
		return -1;
	}
	return fd;
}

/* q (n bytes) turned into an answer with one A record. */
static size_t answer_of(const uint8_t *q, size_t n, uint8_t *a)
{
	static const uint8_t rr[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 9, 9 };

	memcpy(a, q, n);
	a[2] |= 0x80;
	a[3] = 0x80;
	put16(a + 6, 1);
	put16(a + 8, 0);
	put16(a + 10, 0);
	/* Keep only the question (drop an OPT the query had). */
	n = 12;
	while (a[n])
		n += 1 + a[n];
	n += 5;
	memcpy(a + n, rr, sizeof(rr));
	return n + sizeof(rr);
}

static int do_fake(const char *a1, const char *a2)
{
	int main_fd = bound(a1, 53), alt_port = bound(a1, 5353), alt_addr = bound(a2, 53);
	uint8_t q[4096], a[4200], bad[4200];

	if (main_fd < 0 || alt_port < 0 || alt_addr < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(main_fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
		size_t al;

		if (n < 17)
			continue;
		al = answer_of(q, (size_t)n, a);
		/* Wrong source port, wrong source address: right id and question. */
		sendto(alt_port, a, al, 0, (struct sockaddr *)&from, fl);
		sendto(alt_addr, a, al, 0, (struct sockaddr *)&from, fl);
		/* Right source, wrong id. */
		memcpy(bad, a, al);
		put16(bad, (unsigned)(a[0] << 8 | a[1]) ^ 0x5a5a);
		sendto(main_fd, bad, al, 0, (struct sockaddr *)&from, fl);
		/* Right source and id: garbage (a count larger than the message). */
		memcpy(bad, a, al);
		put16(bad + 6, 40);
		sendto(main_fd, bad, al, 0, (struct sockaddr *)&from, fl);
		/* Right source and id, another question. */
		memcpy(bad, a, al);
		bad[13] ^= 0x01;
		sendto(main_fd, bad, al, 0, (struct sockaddr *)&from, fl);
		usleep(20000);
		sendto(main_fd, a, al, 0, (struct sockaddr *)&from, fl);
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "udp"))
		return do_udp(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "tcp"))
		return do_tcp(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "pipeline"))
		return do_pipeline(argv[2], atoi(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "slowloris"))
		return do_slowloris(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "hold"))
		return do_hold(argv[2], atoi(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "fake-upstream"))
		return do_fake(argv[2], argv[3]);
	fprintf(stderr, "usage: see the comment at the top of tests/tools/dnsbad.c\n");
	return 2;
}
