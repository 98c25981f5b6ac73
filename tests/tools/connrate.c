/* connrate: new TCP connections per second, and how long each takes to set up.
 * A benchmark tool (bench/filter-data/run), not a test.
 *
 *   connrate --server ADDR:PORT [--ports P] [--bytes N] [--threads T]
 *       listens on ports PORT..PORT+P-1 (default P = 1); accepts, writes N bytes (default 3,
 *       "ok\n"), closes; forever. T threads (default 1), each with an epoll set of all the
 *       listening sockets.
 *   connrate ADDR:PORT [--ports P] [--inflight K] [--duration S] [--warmup S] [--bytes N]
 *            [--timeout-ms MS] [--abort]
 *       keeps K connections in flight (default 1) for S seconds (default 5, after S warm-up
 *       seconds, default 0.5): non-blocking connect, wait for established, read N bytes
 *       (default 3; 0: close as soon as established), close, start the next. Connections
 *       go to PORT..PORT+P-1 in turn. Prints key=value lines: completed connections, errors,
 *       connections/s and the median and p99 (nearest rank) of connect→established and
 *       connect→first byte, in microseconds.
 *
 * The server closes first, so TIME_WAIT stays on the server's side and the client's ports
 * are free again at once (no exhaustion of the ephemeral range at tens of thousands per
 * second). With --abort the client closes with SO_LINGER 0 once it has its bytes: a RST, so
 * no socket of either side stays in TIME_WAIT. Tens of thousands of TIME_WAIT sockets make
 * every sock_diag dump on the machine slow (the kernel walks one hash table for all network
 * namespaces), which would slow down a peer such as OpenSnitch for the wrong reason. Several server ports make 5-tuples repeat P times less often: a conntrack entry
 * lives 120 s in TIME_WAIT, and a reused 5-tuple is not quite a new flow to a filter.
 * ADDR is an IPv4 or IPv6 address, IPv6 in brackets: [fd00:198:18:1::2]:5001. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 4096

static void usage(void)
{
	fprintf(stderr, "usage: connrate --server ADDR:PORT [--ports P] [--bytes N] [--threads T]\n"
			"       connrate ADDR:PORT [--ports P] [--inflight K] [--duration S] [--warmup S]"
			" [--bytes N] [--timeout-ms MS] [--abort]\n");
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *port;
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	size_t n;

	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (!e || e[1] != ':')
			return -1;
		n = (size_t)(e - s - 1);
		if (n >= sizeof(host))
			return -1;
		memcpy(host, s + 1, n);
		port = e + 2;
	} else {
		const char *c = strrchr(s, ':');

		if (!c)
			return -1;
		n = (size_t)(c - s);
		if (n >= sizeof(host))
			return -1;
		memcpy(host, s, n);
		port = c + 1;
	}
	host[n] = '\0';
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* ---- server ------------------------------------------------------------------------- */

#define MAX_PORTS 256

static int srv_fds[MAX_PORTS];
static int srv_nports = 1;
static char srv_buf[4096];
static size_t srv_bytes = 3;

static void *serve(void *ud)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE }, evs[64];
	int ep = epoll_create1(EPOLL_CLOEXEC), i, n, c;

	(void)ud;
	if (ep < 0) {
		perror("connrate: epoll_create1");
		exit(1);
	}
	for (i = 0; i < srv_nports; i++) {
		ev.data.fd = srv_fds[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, srv_fds[i], &ev) < 0) {
			perror("connrate: epoll_ctl");
			exit(1);
		}
	}
	for (;;) {
		n = epoll_wait(ep, evs, 64, -1);
		for (i = 0; i < n; i++)
			while ((c = accept4(evs[i].data.fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				if (srv_bytes && write(c, srv_buf, srv_bytes) < 0) {
					/* the client went away: nothing to do */
				}
				close(c);
			}
		if (n < 0 && errno != EINTR)
			usleep(1000);
	}
	return NULL;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static int get_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
					       : ((const struct sockaddr_in *)ss)->sin_port);
}

static int server(const struct sockaddr_storage *ss0, socklen_t len, int threads)
{
	struct sockaddr_storage ss = *ss0;
	pthread_t t;
	int one = 1, i, base = get_port(ss0);

	for (i = 0; i < srv_nports; i++) {
		set_port(&ss, base + i);
		srv_fds[i] = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (srv_fds[i] < 0 || setsockopt(srv_fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(srv_fds[i], (const struct sockaddr *)&ss, len) < 0 || listen(srv_fds[i], 4096) < 0) {
			fprintf(stderr, "connrate: server socket on port %d: %s\n", base + i, strerror(errno));
			return 1;
		}
	}
	memset(srv_buf, 'x', sizeof(srv_buf));
	if (srv_bytes >= 3)
		memcpy(srv_buf + srv_bytes - 3, "ok\n", 3);
	fprintf(stderr, "connrate: serving ports %d-%d, %d thread(s), %zu bytes per connection\n", base,
		base + srv_nports - 1, threads, srv_bytes);
	for (i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, serve, NULL) != 0) {
			fprintf(stderr, "connrate: cannot start thread %d\n", i);
			return 1;
		}
	serve(NULL);
	return 0;
}

/* ---- client ------------------------------------------------------------------------- */

enum { IDLE, CONNECTING, ESTABLISHED };

struct conn {
	int fd;
	int state;
	size_t got;
	uint64_t t0, t_est, t_first;
};

struct samples {
	uint64_t *v;
	size_t n, cap;
};

static void add(struct samples *s, uint64_t x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v) {
			perror("connrate: realloc");
			exit(1);
		}
	}
	s->v[s->n++] = x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least p% of the samples at or below it. */
static double pct_us(struct samples *s, double p)
{
	size_t k;

	if (!s->n)
		return 0;
	k = (size_t)((p / 100.0) * (double)s->n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > s->n)
		k = s->n;
	return (double)s->v[k - 1] / 1000.0;
}

static struct {
	struct sockaddr_storage ss;
	socklen_t len;
	int base_port, nports, next_port;
	int ep;
	size_t bytes;
	int abort_close;
	uint64_t measure_from, end, timeout;
	uint64_t ok, errors, timeouts, resets, short_reads, started;
	int last_errno;
	struct samples est, first;
} C;

static void finish(struct conn *c, int ok, int err)
{
	uint64_t t = now_ns();
	struct linger lg = { 1, 0 };

	if (c->fd >= 0) {
		if (ok && C.abort_close)
			(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c->fd); /* also removes it from the epoll set */
	}
	c->fd = -1;
	c->state = IDLE;
	if (t < C.measure_from || t > C.end)
		return;
	if (ok) {
		C.ok++;
		add(&C.est, c->t_est - c->t0);
		add(&C.first, (C.bytes ? c->t_first : c->t_est) - c->t0);
		return;
	}
	C.errors++;
	if (err) {
		C.last_errno = err;
		if (err == ETIMEDOUT)
			C.timeouts++;
		if (err == ECONNRESET)
			C.resets++;
	} else {
		C.short_reads++;
	}
}

static void start(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c };

	c->got = 0;
	c->t_est = c->t_first = 0;
	c->fd = socket(C.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		finish(c, 0, errno);
		return;
	}
	C.started++;
	set_port(&C.ss, C.base_port + C.next_port);
	C.next_port = (C.next_port + 1) % C.nports;
	c->t0 = now_ns();
	c->state = CONNECTING;
	if (connect(c->fd, (const struct sockaddr *)&C.ss, C.len) < 0 && errno != EINPROGRESS) {
		finish(c, 0, errno);
		return;
	}
	if (epoll_ctl(C.ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		finish(c, 0, errno);
}

static void on_event(struct conn *c, uint32_t ev)
{
	char buf[4096];
	ssize_t n;
	int err = 0;
	socklen_t el = sizeof(err);

	if (c->state == CONNECTING) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			finish(c, 0, err);
			return;
		}
		c->t_est = now_ns();
		c->state = ESTABLISHED;
		if (!C.bytes) {
			finish(c, 1, 0);
			return;
		}
	}
	if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		n = read(c->fd, buf, sizeof(buf));
		if (n > 0) {
			if (!c->got)
				c->t_first = now_ns();
			c->got += (size_t)n;
			if (c->got >= C.bytes) {
				finish(c, 1, 0);
				return;
			}
			continue;
		}
		if (n == 0) {
			finish(c, 0, 0); /* closed before N bytes */
			return;
		}
		if (errno == EAGAIN)
			return;
		if (errno != EINTR) {
			finish(c, 0, errno);
			return;
		}
	}
}

static int client(int inflight, double duration, double warmup, double timeout_ms)
{
	static struct conn conns[MAX_INFLIGHT];
	struct epoll_event evs[256];
	uint64_t t, start_t, last_scan = 0;
	struct rusage ru;
	double measured, cpu;
	int i, n;

	C.ep = epoll_create1(EPOLL_CLOEXEC);
	if (C.ep < 0) {
		perror("connrate: epoll_create1");
		return 1;
	}
	start_t = now_ns();
	C.measure_from = start_t + (uint64_t)(warmup * 1e9);
	C.end = C.measure_from + (uint64_t)(duration * 1e9);
	C.timeout = (uint64_t)(timeout_ms * 1e6);
	for (i = 0; i < inflight; i++) {
		conns[i].fd = -1;
		start(&conns[i]);
	}
	for (;;) {
		t = now_ns();
		if (t >= C.end)
			break;
		n = epoll_wait(C.ep, evs, 256, 10);
		if (n < 0 && errno != EINTR) {
			perror("connrate: epoll_wait");
			return 1;
		}
		for (i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events);
		t = now_ns();
		if (t - last_scan >= 5000000) {
			last_scan = t;
			for (i = 0; i < inflight; i++)
				if (conns[i].state != IDLE && t - conns[i].t0 > C.timeout)
					finish(&conns[i], 0, ETIMEDOUT);
		}
		if (t < C.end)
			for (i = 0; i < inflight; i++)
				if (conns[i].state == IDLE)
					start(&conns[i]);
	}
	for (i = 0; i < inflight; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	measured = (double)(C.end - C.measure_from) / 1e9;
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	qsort(C.est.v, C.est.n, sizeof(uint64_t), cmp_u64);
	qsort(C.first.v, C.first.n, sizeof(uint64_t), cmp_u64);
	printf("inflight=%d\n", inflight);
	printf("ports=%d\n", C.nports);
	printf("close=%s\n", C.abort_close ? "abort" : "normal");
	printf("duration_s=%.3f\n", measured);
	printf("started=%llu\n", (unsigned long long)C.started);
	printf("conns=%llu\n", (unsigned long long)C.ok);
	printf("errors=%llu\n", (unsigned long long)C.errors);
	printf("timeouts=%llu\n", (unsigned long long)C.timeouts);
	printf("resets=%llu\n", (unsigned long long)C.resets);
	printf("short_reads=%llu\n", (unsigned long long)C.short_reads);
	printf("last_error=%s\n", C.last_errno ? strerror(C.last_errno) : "none");
	printf("conn_per_s=%.1f\n", (double)C.ok / measured);
	printf("client_cpu_pct=%.0f\n", cpu * 100 / ((double)(now_ns() - start_t) / 1e9));
	printf("connect_p50_us=%.1f\n", pct_us(&C.est, 50));
	printf("connect_p99_us=%.1f\n", pct_us(&C.est, 99));
	printf("first_byte_p50_us=%.1f\n", pct_us(&C.first, 50));
	printf("first_byte_p99_us=%.1f\n", pct_us(&C.first, 99));
	return 0;
}

static double num(const char *s, double lo, double hi)
{
	char *e;
	double v = strtod(s, &e);

	if (*s == '\0' || *e != '\0' || v < lo || v > hi)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	const char *addr = NULL;
	int is_server = 0, threads = 1, inflight = 1, i;
	double duration = 5, warmup = 0.5, timeout_ms = 3000, bytes = 3;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--server"))
			is_server = 1;
		else if (!strcmp(a, "--abort"))
			C.abort_close = 1;
		else if (i + 1 < argc && !strcmp(a, "--bytes"))
			bytes = num(argv[++i], 0, sizeof(srv_buf));
		else if (i + 1 < argc && !strcmp(a, "--ports"))
			srv_nports = (int)num(argv[++i], 1, MAX_PORTS);
		else if (i + 1 < argc && !strcmp(a, "--threads"))
			threads = (int)num(argv[++i], 1, 64);
		else if (i + 1 < argc && !strcmp(a, "--inflight"))
			inflight = (int)num(argv[++i], 1, MAX_INFLIGHT);
		else if (i + 1 < argc && !strcmp(a, "--duration"))
			duration = num(argv[++i], 0.1, 3600);
		else if (i + 1 < argc && !strcmp(a, "--warmup"))
			warmup = num(argv[++i], 0, 3600);
		else if (i + 1 < argc && !strcmp(a, "--timeout-ms"))
			timeout_ms = num(argv[++i], 1, 600000);
		else if (a[0] != '-' && !addr)
			addr = a;
		else
			usage();
	}
	if (!addr)
		usage();
	if (parse_addr(addr, &C.ss, &C.len) < 0) {
		fprintf(stderr, "connrate: bad address '%s' (ADDR:PORT, IPv6 as [ADDR]:PORT)\n", addr);
		return 2;
	}
	if (get_port(&C.ss) + srv_nports - 1 > 65535) {
		fprintf(stderr, "connrate: PORT + P - 1 is beyond 65535\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (is_server) {
		srv_bytes = (size_t)bytes;
		return server(&C.ss, C.len, threads);
	}
	C.bytes = (size_t)bytes;
	C.base_port = get_port(&C.ss);
	C.nports = srv_nports;
	return client(inflight, duration, warmup, timeout_ms);
}
