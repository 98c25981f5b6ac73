/* udpecho: numbered UDP datagrams for the packet filter's tests, and a UDP flood for its
 * benchmark. IPv4 or IPv6 by the address's form.
 *
 *   udpecho send ADDR PORT [-n COUNT] [-p PAYLOAD] [-i INTERVAL_US] [-s SRCPORT]
 *       COUNT datagrams "NNNNNN PAYLOAD" (a 6-digit sequence number from 0), one socket,
 *       so one flow; prints "sent=N".
 *   udpecho recv ADDR PORT [-n COUNT] [-t IDLE_MS]
 *       prints "SRCPORT DATAGRAM" per datagram, in arrival order, until COUNT arrived or
 *       nothing came for IDLE_MS (default 3000).
 *   udpecho flood ADDR PORT [-d SECONDS] [-l SIZE] [-p PAYLOAD] [-f FLOWS]
 *       sendmmsg as fast as it can for SECONDS (default 5) from FLOWS sockets in turn;
 *       datagrams of SIZE bytes (default 64) filled with PAYLOAD repeated; prints "sent=N".
 *   udpecho sink ADDR PORT [-d SECONDS] [-w WARMUP]
 *       counts datagrams for SECONDS after the first one plus WARMUP seconds; prints
 *       "received=N seconds=S pps=P bytes=B". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXLEN 65536

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static socklen_t addr_of(const char *a, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (void *)ss;
	struct sockaddr_in6 *s6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, a, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return sizeof(*s6);
	}
	fprintf(stderr, "udpecho: bad address %s\n", a);
	exit(2);
}

static int sock_for(const struct sockaddr_storage *ss)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int sz = 8 << 20;

	if (fd < 0)
		die("socket");
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	return fd;
}

static int peer_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
					      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

struct opts {
	long count, interval_us, idle_ms, size, flows, sport;
	double seconds, warmup;
	const char *payload;
};

static int do_send(const struct sockaddr_storage *dst, socklen_t dl, const struct opts *o)
{
	struct sockaddr_storage src;
	char buf[MAXLEN];
	long i;
	int fd = sock_for(dst), n;

	if (o->sport > 0) {
		socklen_t sl = addr_of(dst->ss_family == AF_INET ? "0.0.0.0" : "::", (int)o->sport, &src);
		if (bind(fd, (struct sockaddr *)&src, sl) < 0)
			die("bind");
	}
	if (connect(fd, (const struct sockaddr *)dst, dl) < 0)
		die("connect");
	for (i = 0; i < o->count; i++) {
		n = snprintf(buf, sizeof(buf), "%06ld %s", i, o->payload);
		while (send(fd, buf, (size_t)n, 0) < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED)
				die("send");
			usleep(1000);
		}
		if (o->interval_us > 0)
			usleep((useconds_t)o->interval_us);
	}
	printf("sent=%ld\n", i);
	return 0;
}

static int do_recv(const struct sockaddr_storage *a, socklen_t al, const struct opts *o)
{
	struct sockaddr_storage from;
	socklen_t fl;
	char buf[MAXLEN + 1];
	struct pollfd pfd;
	long got = 0;
	ssize_t n;
	int fd = sock_for(a), on = 1;

	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)a, al) < 0)
		die("bind");
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (o->count <= 0 || got < o->count) {
		int r = poll(&pfd, 1, (int)o->idle_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		fl = sizeof(from);
		n = recvfrom(fd, buf, MAXLEN, 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			continue;
		while (n > 0 && buf[n - 1] == '\n')
			n--;
		buf[n] = '\0';
		printf("%d %s\n", peer_port(&from), buf);
		got++;
	}
	return 0;
}

static int do_flood(const struct sockaddr_storage *dst, socklen_t dl, const struct opts *o)
{
	static char buf[MAXLEN];
	struct mmsghdr msgs[BATCH];
	struct iovec iov = { buf, (size_t)o->size };
	int fds[64], nf = (int)(o->flows < 1 ? 1 : o->flows > 64 ? 64 : o->flows), k = 0, i;
	size_t pl = strlen(o->payload), off;
	unsigned long long sent = 0;
	double end;

	for (off = 0; off < (size_t)o->size; off++)
		buf[off] = pl ? o->payload[off % pl] : 'x';
	for (i = 0; i < nf; i++) {
		fds[i] = sock_for(dst);
		if (connect(fds[i], (const struct sockaddr *)dst, dl) < 0)
			die("connect");
	}
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	end = now() + o->seconds;
	while (now() < end) {
		int r = sendmmsg(fds[k], msgs, BATCH, 0);
		if (r > 0)
			sent += (unsigned long long)r;
		else if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED && errno != EPERM)
			die("sendmmsg");
		k = (k + 1) % nf;
	}
	printf("sent=%llu\n", sent);
	return 0;
}

static int do_sink(const struct sockaddr_storage *a, socklen_t al, const struct opts *o)
{
	static char bufs[BATCH][2048];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	unsigned long long got = 0, bytes = 0;
	double t0 = 0, start = 0, end = 0, last = 0;
	struct pollfd pfd;
	int fd = sock_for(a), i, r;

	if (bind(fd, (const struct sockaddr *)a, al) < 0)
		die("bind");
	for (i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	for (;;) {
		if (poll(&pfd, 1, start ? 1000 : 30000) <= 0)
			break; /* the sender stopped, or never started */
		r = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (r <= 0)
			continue;
		double t = now();
		if (!t0) {
			t0 = t;
			start = t0 + o->warmup;
			end = start + o->seconds;
		}
		if (t >= end)
			break;
		if (t >= start) {
			got += (unsigned long long)r;
			for (i = 0; i < r; i++)
				bytes += msgs[i].msg_len;
			last = t;
		}
	}
	double secs = (last > start) ? (end < last ? end : last) - start : 0;
	if (secs <= 0)
		secs = 1e-9;
	printf("received=%llu seconds=%.3f pps=%.0f bytes=%llu\n", got, secs, (double)got / secs, bytes);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .count = 10, .idle_ms = 3000, .size = 64, .flows = 1, .seconds = 5,
			  .payload = "ping" };
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *mode;
	int c;

	if (argc < 4) {
		fprintf(stderr, "usage: udpecho send|recv|flood|sink ADDR PORT [options]\n");
		return 2;
	}
	mode = argv[1];
	sl = addr_of(argv[2], atoi(argv[3]), &ss);
	optind = 4;
	while ((c = getopt(argc, argv, "n:p:i:s:t:l:f:d:w:")) != -1) {
		switch (c) {
		case 'n': o.count = atol(optarg); break;
		case 'p': o.payload = optarg; break;
		case 'i': o.interval_us = atol(optarg); break;
		case 's': o.sport = atol(optarg); break;
		case 't': o.idle_ms = atol(optarg); break;
		case 'l': o.size = atol(optarg); break;
		case 'f': o.flows = atol(optarg); break;
		case 'd': o.seconds = atof(optarg); break;
		case 'w': o.warmup = atof(optarg); break;
		default: return 2;
		}
	}
	if (o.size < 1 || o.size > MAXLEN)
		o.size = 64;
	if (!strcmp(mode, "send"))
		return do_send(&ss, sl, &o);
	if (!strcmp(mode, "recv"))
		return do_recv(&ss, sl, &o);
	if (!strcmp(mode, "flood"))
		return do_flood(&ss, sl, &o);
	if (!strcmp(mode, "sink"))
		return do_sink(&ss, sl, &o);
	fprintf(stderr, "udpecho: unknown mode %s\n", mode);
	return 2;
}
