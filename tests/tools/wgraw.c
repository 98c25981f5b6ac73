/* wgraw: the wgtunnel engine over a plain TUN device and a UDP socket, without netext.
 *
 *   wgraw -c wg.conf -i IFNAME [-L]
 *
 * Creates (or attaches to) the TUN device IFNAME (IFF_TUN | IFF_NO_PI) and configures nothing
 * else: the caller sets addresses, MTU and link state with `ip`. The configuration's
 * Address/DNS/MTU lines are therefore ignored; ListenPort is the UDP port (0: any).
 * It proves interoperability with wireguard-go before the netext daemon side exists, and is
 * the netext-less baseline of the benchmarks.
 *
 * -L forces the engine "under load": every handshake message needs a valid MAC2, so peers
 * first get a cookie reply (the interop test uses it to check cookies with wireguard-go).
 *
 * Threads: TUN → encrypt in place → sendmmsg; recvmmsg → decrypt in place → TUN write; the
 * main thread ticks the timers every 100 ms and waits for signals. SIGUSR1 prints the
 * counters and peers to stderr, SIGINT/SIGTERM stop (and print them too).
 *
 * Root only (TUN). It trusts its configuration file and the caller; datagrams from the
 * network go to the engine, which trusts nothing. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "wg.h"
#include "wgconf.h"

#define BATCH 64
#define BUF_SIZE (WG_HEADROOM + 65535 + WG_OVERHEAD)

struct wgraw {
	struct wg_engine *e;
	int tun, sock, family;
	atomic_bool stop;
};

/* The coarse clock (a few ms, as the kernel's WireGuard uses): the engine reads it for every
 * packet, and on a VM the precise one costs ten times more. */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cb_now(void *ud)
{
	return mono_ns();
}

/* On a dual-stack socket, IPv4 peers are v4-mapped IPv6 addresses. */
static socklen_t to_sock(const struct wgraw *w, const struct wg_endpoint *ep,
			 struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (w->family == AF_INET6 && ep->sa.sa_family == AF_INET) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = ep->in4.sin_port;
		s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&s6->sin6_addr.s6_addr[12], &ep->in4.sin_addr, 4);
		return sizeof(*s6);
	}
	if (ep->sa.sa_family == AF_INET) {
		memcpy(out, &ep->in4, sizeof(ep->in4));
		return sizeof(ep->in4);
	}
	memcpy(out, &ep->in6, sizeof(ep->in6));
	return sizeof(ep->in6);
}

static void from_sock(const struct sockaddr_storage *ss, struct wg_endpoint *ret)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	memset(ret, 0, sizeof(*ret));
	if (ss->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		ret->in4.sin_family = AF_INET;
		ret->in4.sin_port = s6->sin6_port;
		memcpy(&ret->in4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	} else if (ss->ss_family == AF_INET6) {
		ret->in6 = *s6;
	} else {
		ret->in4 = *(const struct sockaddr_in *)ss;
	}
}

static void cb_send_udp(void *ud, const struct wg_endpoint *to, const uint8_t *buf, size_t len)
{
	struct wgraw *w = ud;
	struct sockaddr_storage ss;
	socklen_t sl = to_sock(w, to, &ss);

	(void)!sendto(w->sock, buf, len, 0, (struct sockaddr *)&ss, sl);
}

static void cb_write_ip(void *ud, uint8_t *pkt, size_t len)
{
	struct wgraw *w = ud;

	(void)!write(w->tun, pkt, len);
}

static void cb_event(void *ud, size_t peer, enum wg_event ev)
{
	static const char *const names[] = {
		[WG_EV_HANDSHAKE_SENT] = "handshake initiation sent",
		[WG_EV_SESSION_INITIATOR] = "session (initiator)",
		[WG_EV_SESSION_RESPONDER] = "session (responder, unconfirmed)",
		[WG_EV_SESSION_CONFIRMED] = "session confirmed",
		[WG_EV_ENDPOINT_CHANGED] = "endpoint changed",
		[WG_EV_HANDSHAKE_GAVE_UP] = "handshake gave up",
		[WG_EV_KEYS_ZEROED] = "keys zeroed",
	};

	fprintf(stderr, "wgraw: peer %zu: %s\n", peer, names[ev]);
}

static void print_endpoint(const struct wg_endpoint *ep, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "(none)";

	if (ep->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->in4.sin_addr, a, sizeof(a));
		snprintf(out, n, "%s:%u", a, ntohs(ep->in4.sin_port));
	} else if (ep->sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->in6.sin6_addr, a, sizeof(a));
		snprintf(out, n, "[%s]:%u", a, ntohs(ep->in6.sin6_port));
	} else {
		snprintf(out, n, "%s", a);
	}
}

static void print_counters(const char *who, const struct wg_counters *c)
{
	fprintf(stderr,
		"wgraw: %s: rx %llu pkts %llu bytes, tx %llu pkts %llu bytes, keepalives rx %llu "
		"tx %llu, handshakes sent %llu received %llu completed %llu, cookies sent %llu "
		"received %llu, drops: mac1 %llu cookie %llu decrypt %llu replay %llu allowed_ip "
		"%llu unknown_index %llu malformed %llu no_peer %llu no_session %llu "
		"unknown_peer %llu\n",
		who, (unsigned long long)c->rx_packets, (unsigned long long)c->rx_bytes,
		(unsigned long long)c->tx_packets, (unsigned long long)c->tx_bytes,
		(unsigned long long)c->keepalives_rx, (unsigned long long)c->keepalives_tx,
		(unsigned long long)c->handshakes_sent, (unsigned long long)c->handshakes_received,
		(unsigned long long)c->handshakes_completed, (unsigned long long)c->cookies_sent,
		(unsigned long long)c->cookies_received, (unsigned long long)c->drop_bad_mac1,
		(unsigned long long)c->drop_needs_cookie, (unsigned long long)c->drop_decrypt,
		(unsigned long long)c->drop_replay, (unsigned long long)c->drop_allowed_ip,
		(unsigned long long)c->drop_unknown_index, (unsigned long long)c->drop_malformed,
		(unsigned long long)c->drop_no_peer, (unsigned long long)c->drop_no_session,
		(unsigned long long)c->drop_unknown_peer);
}

static void print_status(struct wgraw *w)
{
	struct wg_counters c;
	struct wg_peer_status st;
	char ep[80], key[45], who[128];

	wg_get_counters(w->e, &c);
	print_counters("total", &c);
	for (size_t i = 0; i < wg_peer_count(w->e); i++) {
		if (wg_peer_status(w->e, i, &st) < 0)
			continue;
		print_endpoint(&st.endpoint, ep, sizeof(ep));
		wg_key_to_base64(st.public_key, key);
		fprintf(stderr, "wgraw: peer %zu %s endpoint %s session %s\n", i, key, ep,
			st.has_session ? "yes" : "no");
		snprintf(who, sizeof(who), "peer %zu", i);
		print_counters(who, &st.counters);
	}
}

static int open_tun(const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static void bigger_buffers(int fd)
{
	int sz = 8 << 20;

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/* A dual-stack socket on [::]:port, or IPv4 only where IPv6 is off. */
static int open_udp(uint16_t port, int *ret_family)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	int off = 0, fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd >= 0) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		if (bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0) {
			*ret_family = AF_INET6;
			bigger_buffers(fd);
			return fd;
		}
		close(fd);
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&s4, sizeof(s4)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	*ret_family = AF_INET;
	bigger_buffers(fd);
	return fd;
}

struct batch {
	uint8_t *bufs[BATCH];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_storage addrs[BATCH];
};

static struct batch *batch_new(void)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	for (int i = 0; i < BATCH; i++) {
		b->bufs[i] = malloc(BUF_SIZE);
		if (!b->bufs[i])
			exit(1);
	}
	return b;
}

static void batch_free(struct batch *b)
{
	for (int i = 0; b && i < BATCH; i++)
		free(b->bufs[i]);
	free(b);
}

static void flush(struct wgraw *w, struct batch *b, unsigned n)
{
	unsigned done = 0;

	while (done < n) {
		int r = sendmmsg(w->sock, b->msgs + done, n - done, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			break; /* the packets are lost, as on a congested link */
		}
		done += (unsigned)r;
	}
}

/* TUN → engine → UDP, up to BATCH datagrams per sendmmsg. */
static void *tun_loop(void *arg)
{
	struct wgraw *w = arg;
	struct batch *b = batch_new();
	unsigned n = 0;

	while (b && !atomic_load(&w->stop)) {
		uint8_t *buf = b->bufs[n];
		ssize_t len = read(w->tun, buf + WG_HEADROOM, BUF_SIZE - WG_OVERHEAD);
		struct wg_endpoint to;
		size_t out_len;

		if (len <= 0) {
			struct pollfd pfd = { .fd = w->tun, .events = POLLIN };

			if (n) {
				flush(w, b, n);
				n = 0;
			}
			if (len < 0 && errno != EAGAIN && errno != EINTR)
				break;
			poll(&pfd, 1, 250);
			continue;
		}
		if (wg_encrypt_inplace(w->e, buf, BUF_SIZE, (size_t)len, &out_len, &to) < 0)
			continue;
		b->iov[n] = (struct iovec){ buf, out_len };
		b->msgs[n].msg_hdr = (struct msghdr){
			.msg_name = &b->addrs[n],
			.msg_namelen = to_sock(w, &to, &b->addrs[n]),
			.msg_iov = &b->iov[n],
			.msg_iovlen = 1,
		};
		if (++n == BATCH) {
			flush(w, b, n);
			n = 0;
		}
	}
	batch_free(b);
	return NULL;
}

/* UDP → engine → TUN, up to BATCH datagrams per recvmmsg. */
static void *udp_loop(void *arg)
{
	struct wgraw *w = arg;
	struct batch *b = batch_new();

	for (int i = 0; b && i < BATCH; i++)
		b->iov[i] = (struct iovec){ b->bufs[i], BUF_SIZE };
	while (b && !atomic_load(&w->stop)) {
		struct pollfd pfd = { .fd = w->sock, .events = POLLIN };
		int n;

		for (int i = 0; i < BATCH; i++)
			b->msgs[i].msg_hdr = (struct msghdr){
				.msg_name = &b->addrs[i],
				.msg_namelen = sizeof(b->addrs[i]),
				.msg_iov = &b->iov[i],
				.msg_iovlen = 1,
			};
		n = recvmmsg(w->sock, b->msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			poll(&pfd, 1, 250);
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct wg_endpoint from;

			from_sock(&b->addrs[i], &from);
			wg_recv_udp(w->e, &from, b->bufs[i], b->msgs[i].msg_len);
		}
	}
	batch_free(b);
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: wgraw -c WG.CONF -i IFNAME [-L]\n");
	return 2;
}

/* Timers every 100 ms; signals decide when to print and when to stop. */
static void main_loop(struct wgraw *w, const sigset_t *sigs)
{
	struct timespec tick = { 0, 100 * 1000 * 1000 };

	for (;;) {
		int sig = sigtimedwait(sigs, NULL, &tick);

		wg_tick(w->e, mono_ns());
		if (sig == SIGUSR1)
			print_status(w);
		else if (sig == SIGINT || sig == SIGTERM)
			return;
	}
}

static int run(struct wgraw *w, const struct wgconf *conf, const char *ifname, bool load)
{
	struct wg_callbacks cb = {
		.size = sizeof(cb), .now = cb_now, .send_udp = cb_send_udp,
		.write_ip = cb_write_ip, .event = cb_event,
	};
	pthread_t t_tun, t_udp;
	sigset_t sigs;
	int r;

	w->tun = open_tun(ifname);
	if (w->tun < 0) {
		fprintf(stderr, "wgraw: %s: %s\n", ifname, strerror(-w->tun));
		return 1;
	}
	w->sock = open_udp(conf->wg.listen_port, &w->family);
	if (w->sock < 0) {
		fprintf(stderr, "wgraw: UDP port %u: %s\n", conf->wg.listen_port, strerror(-w->sock));
		return 1;
	}
	r = wg_engine_new(&conf->wg, &cb, w, &w->e);
	if (r < 0) {
		fprintf(stderr, "wgraw: engine: %s\n", strerror(-r));
		return 1;
	}
	wg_set_under_load(w->e, load);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (pthread_create(&t_tun, NULL, tun_loop, w) || pthread_create(&t_udp, NULL, udp_loop, w)) {
		fprintf(stderr, "wgraw: cannot start threads\n");
		return 1;
	}
	fprintf(stderr, "wgraw: running on %s, UDP port %u, %zu peer(s)\n", ifname,
		conf->wg.listen_port, conf->wg.n_peers);
	main_loop(w, &sigs);
	atomic_store(&w->stop, true);
	pthread_join(t_tun, NULL);
	pthread_join(t_udp, NULL);
	print_status(w);
	wg_engine_free(w->e);
	close(w->sock);
	close(w->tun);
	return 0;
}

int main(int argc, char **argv)
{
	const char *conf_path = NULL, *ifname = NULL;
	struct wgraw w = { .tun = -1, .sock = -1 };
	struct wgconf *conf;
	char err[512];
	bool load = false;
	int opt, rc;

	while ((opt = getopt(argc, argv, "c:i:Lh")) != -1) {
		if (opt == 'c')
			conf_path = optarg;
		else if (opt == 'i')
			ifname = optarg;
		else if (opt == 'L')
			load = true;
		else
			return usage();
	}
	if (!conf_path || !ifname || optind != argc)
		return usage();
	if (wgconf_parse_file(conf_path, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "wgraw: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < conf->n_warnings; i++)
		fprintf(stderr, "wgraw: warning: %s\n", conf->warnings[i]);
	setvbuf(stderr, NULL, _IOLBF, 0);
	rc = run(&w, conf, ifname, load);
	wgconf_free(conf);
	return rc;
}
