/* netext-wgtunnel: a WireGuard VPN client as a packet-tunnel provider. It speaks the WireGuard
 * protocol (wg.h: Noise IK, cookies, timers, replay window, roaming) with any WireGuard peer —
 * the kernel module, wireguard-go, the apps — from a standard wg-quick configuration file.
 *
 * Endpoints given by host name are resolved at start, before the tunnel's routes exist (so
 * the lookup cannot be routed into the tunnel), all at once and within WGT_RESOLVE_MS: the
 * start callback must not hold the dispatch thread past netextd's heartbeat deadline
 * (5 s by default). A name that does not resolve fails the start with the file's line.
 *
 * Datapath: netextd makes the TUN device and applies the settings built from the file
 * (Address → addresses, every peer's AllowedIPs → included routes, DNS → servers and search
 * domains, MTU); libnetext hands over the host's packets on its packet threads, which encrypt
 * them in place and send each batch with one sendmmsg on the transport socket netextd made
 * (marked to bypass the tunnel). One receive thread takes datagrams with recvmmsg, decrypts
 * them in place (wg_decrypt_inplace) and writes each batch of packets into the tunnel with
 * one call. A timer thread
 * drives the protocol's timers every 100 ms.
 *
 * Options:   config=PATH            the wg-quick file (required); readable by the extension's user
 *            match=DOMAIN[,DOMAIN]  DNS match domains: only those names go to the file's DNS
 *                                   servers (default: all DNS goes to them)
 *            include_all=yes|no     the kill switch (includeAllNetworks; default no)
 *            exclude_local=yes|no   keep directly connected networks outside (default no)
 *            queues=N               TUN queues, each with a packet thread, 1-4 (default 1)
 *            under_load=yes         demand cookies from every handshake (tests, attacks)
 *            time_scale=N           run the protocol's clock N times faster, 1-1000 (tests:
 *                                   rekeying after 120/N s instead of 120 s)
 *            rekey_after_seconds=N  the same, said the other way: time_scale = 120 / N
 * Messages:  stats    key=value lines: the engine's counters, the peers, the datagrams the
 *                     transport refused
 *
 * Trust: the configuration file and options come from the administrator; datagrams come from
 * the network and are checked by the engine (MACs, AEAD, replay window, allowed IPs) before
 * anything reaches the tunnel. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netext/tunnel.h>

#include "wg.h"
#include "wgconf.h"

#define WGT_BATCH 64
/* Slots sized for jumbo frames, not for 64 KiB: the library cuts the host's large packets to
 * the tunnel MTU, and 64 slots of 64 KiB each would spread a batch over 4 MiB (a TLB miss per
 * packet). A larger packet takes the one big slot and goes out alone; a larger datagram is
 * truncated and dropped (counted in rx_truncated). */
#define WGT_SLOT 9216
#define WGT_BIG_SLOT (WG_HEADROOM + 65535 + WG_OVERHEAD)
#define WGT_RX_SLOT 9216
#define WGT_TICK_NS 100000000ull
#define WGT_LIST_MAX 512
#define WGT_TEXT_MAX 64
#define WGT_RESOLVE_MS 3000

/* One per configuration (provider). */
struct wgt {
	ne_provider *provider;
	ne_extension *ext;
	struct wgconf *conf;
	struct wg_engine *engine;
	int sock;                 /* from netextd: IPv6, accepting IPv4 (v4-mapped) */
	int stop_fd;              /* eventfd: the receive and timer threads return */
	pthread_t rx_thread, timer_thread;
	bool rx_started, timer_started;
	unsigned time_scale;
	uint64_t t0;              /* monotonic ns at start */
	bool include_all, exclude_local, under_load;
	unsigned queues;
	/* The settings' strings (they must live until the settings are sent). */
	char text[4 * WGT_LIST_MAX][WGT_TEXT_MAX];
	const char *addresses[WGT_LIST_MAX], *routes[WGT_LIST_MAX], *dns[WGT_LIST_MAX],
		*search[WGT_LIST_MAX], *match[WGT_LIST_MAX];
	size_t n_text, n_addresses, n_routes, n_dns, n_search, n_match;
	char remote[WGT_TEXT_MAX];
	atomic_uint_fast64_t send_errors, tun_write_drops, rx_truncated;
};

/* Per-thread buffers: the packet threads' encryption batch and the receive thread's batch. */
struct wgt_txbuf {
	uint8_t *slots; /* WGT_BATCH × WGT_SLOT */
	uint8_t *big;   /* WGT_BIG_SLOT, on first use */
	struct mmsghdr msgs[WGT_BATCH];
	struct iovec iov[WGT_BATCH];
	struct sockaddr_in6 to[WGT_BATCH];
};

static pthread_key_t tx_key;
static pthread_once_t tx_once = PTHREAD_ONCE_INIT;


/* --- clocks and addresses ---------------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The engine's clock: real time, or faster by time_scale for tests of the timers. */
static uint64_t wgt_now(void *ud)
{
	struct wgt *w = ud;
	uint64_t real = mono_ns();

	return w->t0 + (real - w->t0) * w->time_scale;
}

/* The transport socket is IPv6 with v4-mapped addresses; the engine sees IPv4 as AF_INET so a
 * peer's endpoint compares equal whichever way it was learnt. */
static void to_sockaddr6(const struct wg_endpoint *ep, struct sockaddr_in6 *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->sin6_family = AF_INET6;
	if (ep->sa.sa_family == AF_INET6) {
		*ret = ep->in6;
		return;
	}
	ret->sin6_port = ep->in4.sin_port;
	ret->sin6_addr.s6_addr[10] = 0xff;
	ret->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&ret->sin6_addr.s6_addr[12], &ep->in4.sin_addr, 4);
}

static void from_sockaddr6(const struct sockaddr_in6 *sa, struct wg_endpoint *ret)
{
	memset(ret, 0, sizeof(*ret));
	if (IN6_IS_ADDR_V4MAPPED(&sa->sin6_addr)) {
		ret->in4.sin_family = AF_INET;
		ret->in4.sin_port = sa->sin6_port;
		memcpy(&ret->in4.sin_addr, &sa->sin6_addr.s6_addr[12], 4);
		return;
	}
	ret->in6 = *sa;
}

/* --- engine callbacks (any thread) ---------------------------------------------------------- */

static void wgt_send_udp(void *ud, const struct wg_endpoint *to, const uint8_t *buf, size_t len)
{
	struct wgt *w = ud;
	struct sockaddr_in6 sa;

	to_sockaddr6(to, &sa);
	if (sendto(w->sock, buf, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		atomic_fetch_add(&w->send_errors, 1);
}

/* Packets the engine delivers outside the receive thread's batches (a queue flushed by a
 * handshake, for instance). */
static void wgt_write_ip(void *ud, uint8_t *pkt, size_t len)
{
	struct wgt *w = ud;
	ne_tunnel_packet one = { pkt, len, 0 };

	if (ne_tunnel_write_packets(w->provider, &one, 1) != 1)
		atomic_fetch_add(&w->tun_write_drops, 1);
}

static void wgt_event(void *ud, size_t peer, enum wg_event ev)
{
	(void)ud;
	(void)peer;
	(void)ev; /* the counters and `stats` tell the story; the log stays quiet per packet */
}

/* --- packet threads: TUN → encrypt → sendmmsg ------------------------------------------------ */

static void txbuf_free(void *p)
{
	struct wgt_txbuf *t = p;

	free(t->slots);
	free(t->big);
	free(t);
}

static void txbuf_key(void)
{
	if (pthread_key_create(&tx_key, txbuf_free) != 0)
		abort();
}

/* The calling packet thread's buffers, made on its first batch and freed when it exits. */
static struct wgt_txbuf *txbuf(void)
{
	struct wgt_txbuf *t;

	pthread_once(&tx_once, txbuf_key);
	t = pthread_getspecific(tx_key);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->slots = malloc((size_t)WGT_BATCH * WGT_SLOT);
	if (!t->slots || pthread_setspecific(tx_key, t) != 0) {
		free(t->slots);
		free(t);
		return NULL;
	}
	return t;
}

static void wgt_flush(struct wgt *w, struct wgt_txbuf *t, unsigned n)
{
	unsigned done = 0;
	int r;

	while (done < n) {
		r = sendmmsg(w->sock, t->msgs + done, n - done, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* ENOBUFS / EPERM (a firewall) / unreachable: this batch is lost, like a
			 * full interface queue; TCP inside the tunnel retransmits. */
			atomic_fetch_add(&w->send_errors, n - done);
			return;
		}
		done += (unsigned)r;
	}
}

/* A packet above the jumbo size: encrypted in the big slot and sent at once (rare: only
 * when the tunnel MTU is above 9 KiB). */
static void wgt_send_big(struct wgt *w, struct wgt_txbuf *t, const ne_tunnel_packet *pk)
{
	struct wg_endpoint ep;
	size_t out;

	if (!t->big && !(t->big = malloc(WGT_BIG_SLOT)))
		return;
	if (wg_encrypt_into(w->engine, pk->bytes, pk->len, t->big, WGT_BIG_SLOT, &out, &ep) == 0)
		wgt_send_udp(w, &ep, t->big, out);
}

static void wgt_read_packets(ne_provider *provider, const ne_tunnel_packet *pkts, size_t n,
			     unsigned queue, void *userdata)
{
	struct wgt *w = ne_provider_get_context(provider);
	struct wgt_txbuf *t = txbuf();
	struct wg_endpoint ep;
	unsigned k = 0;
	size_t i, out;
	uint8_t *slot;

	(void)queue;
	(void)userdata;
	if (!w || !t || !w->engine)
		return;
	for (i = 0; i < n; i++) {
		if (pkts[i].len > 65535)
			continue;
		if (pkts[i].len + WG_OVERHEAD > WGT_SLOT) {
			wgt_send_big(w, t, &pkts[i]);
			continue;
		}
		slot = t->slots + (size_t)k * WGT_SLOT;
		/* One copy: the library's buffer is read-only; the engine encrypts in the slot. */
		if (wg_encrypt_into(w->engine, pkts[i].bytes, pkts[i].len, slot, WGT_SLOT, &out, &ep) < 0)
			continue; /* queued for a handshake, or no peer for it (counted by the engine) */
		to_sockaddr6(&ep, &t->to[k]);
		t->iov[k] = (struct iovec){ slot, out };
		t->msgs[k].msg_hdr = (struct msghdr){ .msg_name = &t->to[k], .msg_namelen = sizeof(t->to[k]),
						      .msg_iov = &t->iov[k], .msg_iovlen = 1 };
		if (++k == WGT_BATCH) {
			wgt_flush(w, t, k);
			k = 0;
		}
	}
	if (k)
		wgt_flush(w, t, k);
}

/* --- receive and timer threads ----------------------------------------------------------------- */

static void *wgt_rx_main(void *arg)
{
	struct wgt *w = arg;
	ne_tunnel_packet pkts[WGT_BATCH];
	size_t np;
	struct mmsghdr msgs[WGT_BATCH];
	struct iovec iov[WGT_BATCH];
	struct sockaddr_in6 from[WGT_BATCH];
	struct pollfd pfd[2] = { { w->sock, POLLIN, 0 }, { w->stop_fd, POLLIN, 0 } };
	struct wg_endpoint ep;
	uint8_t *bufs = malloc((size_t)WGT_BATCH * WGT_RX_SLOT);
	int n, i, r;

	if (!bufs) {
		ne_extension_log(w->ext, NE_LOG_ERROR, "%s: out of memory for the receive buffers",
				 ne_provider_configuration(w->provider));
		return NULL;
	}
	for (;;) {
		for (i = 0; i < WGT_BATCH; i++) {
			iov[i] = (struct iovec){ bufs + (size_t)i * WGT_RX_SLOT, WGT_RX_SLOT };
			msgs[i].msg_hdr = (struct msghdr){ .msg_name = &from[i], .msg_namelen = sizeof(from[i]),
							   .msg_iov = &iov[i], .msg_iovlen = 1 };
		}
		n = recvmmsg(w->sock, msgs, WGT_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
				break;
			if (poll(pfd, 2, -1) < 0 && errno != EINTR)
				break;
			if (pfd[1].revents)
				break;
			continue;
		}
		np = 0;
		for (i = 0; i < n; i++) {
			uint8_t *pkt;
			size_t len;

			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
				atomic_fetch_add(&w->rx_truncated, 1);
				continue;
			}
			if (msgs[i].msg_hdr.msg_namelen < sizeof(struct sockaddr_in6))
				continue;
			from_sockaddr6(&from[i], &ep);
			/* Decrypted in place: the datagram buffers stay untouched until the batch
			 * is written below. */
			if (wg_decrypt_inplace(w->engine, &ep, iov[i].iov_base, msgs[i].msg_len, &pkt, &len) == 1)
				pkts[np++] = (ne_tunnel_packet){ pkt, len, 0 };
		}
		if (np) {
			r = ne_tunnel_write_packets(w->provider, pkts, np);
			if (r < (int)np)
				atomic_fetch_add(&w->tun_write_drops, np - (size_t)(r < 0 ? 0 : r));
		}
	}
	free(bufs);
	return NULL;
}

static void *wgt_timer_main(void *arg)
{
	struct wgt *w = arg;
	struct pollfd pfd = { w->stop_fd, POLLIN, 0 };
	/* Ticks come time_scale times as often, so the engine's timers keep their resolution. */
	int ms = (int)(WGT_TICK_NS / 1000000ull / w->time_scale);

	if (ms < 1)
		ms = 1;
	for (;;) {
		int r = poll(&pfd, 1, ms);

		if (r > 0 || (r < 0 && errno != EINTR))
			break;
		wg_tick(w->engine, wgt_now(w));
	}
	return NULL;
}

/* --- configuration -------------------------------------------------------------------------- */

static bool opt_bool(const ne_options *o, const char *key, bool dflt, int *bad)
{
	const char *v = ne_options_get(o, key);

	if (!v)
		return dflt;
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		return true;
	if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		return false;
	*bad = 1;
	return dflt;
}

static const char *keep(struct wgt *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *keep(struct wgt *w, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (w->n_text >= sizeof(w->text) / sizeof(w->text[0]))
		return NULL;
	s = w->text[w->n_text++];
	va_start(ap, fmt);
	vsnprintf(s, WGT_TEXT_MAX, fmt, ap);
	va_end(ap);
	return s;
}

static const char *addr_text(struct wgt *w, int family, const uint8_t *addr, unsigned prefix, bool with_prefix)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, a, sizeof(a));
	return with_prefix ? keep(w, "%s/%u", a, prefix) : keep(w, "%s", a);
}

/* The settings from the file: Address, the peers' AllowedIPs (as wg-quick routes them), DNS. */
static int wgt_build_settings(struct wgt *w, const ne_options *o, char *err, size_t errlen)
{
	const struct wgconf *c = w->conf;
	const char *m = ne_options_get(o, "match");
	const char *s;
	size_t i, j;

	for (i = 0; i < c->n_addresses && w->n_addresses < WGT_LIST_MAX; i++) {
		s = addr_text(w, c->addresses[i].family, c->addresses[i].addr, c->addresses[i].prefix, true);
		if (s)
			w->addresses[w->n_addresses++] = s;
	}
	for (i = 0; i < c->wg.n_peers; i++) {
		const struct wg_peer_config *p = &c->wg.peers[i];

		for (j = 0; j < p->n_allowed_ips && w->n_routes < WGT_LIST_MAX; j++) {
			s = addr_text(w, p->allowed_ips[j].family, p->allowed_ips[j].addr, p->allowed_ips[j].cidr, true);
			if (s)
				w->routes[w->n_routes++] = s;
		}
		if (!w->remote[0] && p->endpoint.sa.sa_family != AF_UNSPEC) {
			const void *a = p->endpoint.sa.sa_family == AF_INET ? (const void *)&p->endpoint.in4.sin_addr
									     : (const void *)&p->endpoint.in6.sin6_addr;
			inet_ntop(p->endpoint.sa.sa_family, a, w->remote, sizeof(w->remote));
		}
	}
	for (i = 0; i < c->n_dns && w->n_dns < WGT_LIST_MAX; i++) {
		s = addr_text(w, c->dns[i].family, c->dns[i].addr, 0, false);
		if (s)
			w->dns[w->n_dns++] = s;
	}
	for (i = 0; i < c->n_search && w->n_search < WGT_LIST_MAX; i++)
		w->search[w->n_search++] = c->search[i];
	while (m && *m && w->n_match < WGT_LIST_MAX) {
		size_t len = strcspn(m, ",");

		if (len == 0 || len >= WGT_TEXT_MAX) {
			snprintf(err, errlen, "option match: an empty or over-long domain");
			return -EINVAL;
		}
		w->match[w->n_match++] = keep(w, "%.*s", (int)len, m);
		m += len + (m[len] == ',');
	}
	if (w->n_match && !w->n_dns) {
		snprintf(err, errlen, "option match needs DNS servers in the configuration file");
		return -EINVAL;
	}
	return 0;
}

/* Host-name endpoints to addresses (wgconf_resolve), each logged. */
static int wgt_resolve(struct wgt *w, const char *path, char *err, size_t errlen)
{
	int r = wgconf_resolve(w->conf, path, WGT_RESOLVE_MS, err, errlen);

	for (size_t i = 0; r == 0 && i < w->conf->n_names; i++) {
		const struct wg_endpoint *ep = &w->conf->wg.peers[w->conf->names[i].peer].endpoint;
		bool v6 = ep->sa.sa_family == AF_INET6;
		char a[INET6_ADDRSTRLEN] = "?";

		inet_ntop(ep->sa.sa_family, v6 ? (const void *)&ep->in6.sin6_addr : (const void *)&ep->in4.sin_addr,
			  a, sizeof(a));
		ne_extension_log(w->ext, NE_LOG_INFO, "Endpoint %s is %s%s%s:%u", w->conf->names[i].host,
				 v6 ? "[" : "", a, v6 ? "]" : "", w->conf->names[i].port);
	}
	return r;
}

static int wgt_configure(struct wgt *w, const ne_options *o, char *err, size_t errlen)
{
	const char *path = ne_options_get(o, "config");
	const char *v;
	int bad = 0, r;
	char *end;

	if (!path || !*path) {
		snprintf(err, errlen, "option config=PATH (a wg-quick configuration file) is required");
		return -EINVAL;
	}
	r = wgconf_parse_file(path, &w->conf, err, errlen);
	if (r < 0)
		return r;
	if (w->conf->wg.n_peers == 0) {
		snprintf(err, errlen, "%s: no [Peer]", path);
		return -EINVAL;
	}
	r = wgt_resolve(w, path, err, errlen);
	if (r < 0)
		return r;
	w->include_all = opt_bool(o, "include_all", false, &bad);
	w->exclude_local = opt_bool(o, "exclude_local", false, &bad);
	w->under_load = opt_bool(o, "under_load", false, &bad);
	if (bad) {
		snprintf(err, errlen, "options include_all, exclude_local and under_load take yes or no");
		return -EINVAL;
	}
	w->queues = 1;
	if ((v = ne_options_get(o, "queues"))) {
		unsigned long q = strtoul(v, &end, 10);

		if (*end || q < 1 || q > 4) {
			snprintf(err, errlen, "option queues: '%s' is not 1-4", v);
			return -EINVAL;
		}
		w->queues = (unsigned)q;
	}
	w->time_scale = 1;
	if ((v = ne_options_get(o, "time_scale"))) {
		unsigned long t = strtoul(v, &end, 10);

		if (*end || t < 1 || t > 1000) {
			snprintf(err, errlen, "option time_scale: '%s' is not 1-1000", v);
			return -EINVAL;
		}
		w->time_scale = (unsigned)t;
	}
	if ((v = ne_options_get(o, "rekey_after_seconds"))) {
		unsigned long t = strtoul(v, &end, 10);

		if (*end || t < 1 || t > 120) {
			snprintf(err, errlen, "option rekey_after_seconds: '%s' is not 1-120", v);
			return -EINVAL;
		}
		w->time_scale = (unsigned)(120 / t);
	}
	for (size_t i = 0; i < w->conf->n_warnings; i++)
		ne_extension_log(w->ext, NE_LOG_WARNING, "%s", w->conf->warnings[i]);
	return wgt_build_settings(w, o, err, errlen);
}

/* --- lifecycle (dispatch thread) ------------------------------------------------------------- */

/* Ends the receive and timer threads (they use the provider and the engine). */
static void wgt_stop_threads(struct wgt *w)
{
	uint64_t one = 1;

	if (w->stop_fd >= 0 && write(w->stop_fd, &one, sizeof(one)) < 0)
		(void)0; /* an eventfd write only fails on overflow */
	if (w->rx_started)
		pthread_join(w->rx_thread, NULL);
	if (w->timer_started)
		pthread_join(w->timer_thread, NULL);
	w->rx_started = w->timer_started = false;
}

static void wgt_free(struct wgt *w)
{
	if (!w)
		return;
	wgt_stop_threads(w);
	if (w->engine)
		wg_engine_free(w->engine);
	if (w->sock >= 0)
		close(w->sock);
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	wgconf_free(w->conf);
	free(w);
}

/* A failed start. The library's packet threads may already run (the device came before a
 * refusal) and read w: they end inside ne_provider_start_done(), so w is freed after it; our
 * own threads use the provider, so they end before it. */
static void wgt_fail(ne_provider *provider, struct wgt *w, int error, const char *message)
{
	wgt_stop_threads(w);
	/* A stop that came during the start is still pending: its callback must not see w. */
	ne_provider_set_context(provider, NULL);
	ne_provider_start_done(provider, error, message);
	wgt_free(w);
}

static void settings_done(ne_provider *provider, int error, const char *message, void *userdata)
{
	struct wgt *w = userdata;
	char key[45];
	uint8_t pub[WG_KEY_LEN];

	if (error < 0) {
		wgt_fail(provider, w, error, message);
		return;
	}
	wg_public_key(w->engine, pub);
	wg_key_to_base64(pub, key);
	ne_extension_log(w->ext, NE_LOG_INFO, "%s: WireGuard interface %s up, public key %s, %zu peer%s",
			 ne_provider_configuration(provider), ne_tunnel_interface_name(provider), key,
			 w->conf->wg.n_peers, w->conf->wg.n_peers == 1 ? "" : "s");
	ne_provider_start_done(provider, 0, NULL);
}

static void socket_done(ne_provider *provider, int fd, int error, const char *message, void *userdata)
{
	struct wgt *w = userdata;
	struct wg_callbacks cb = { .size = sizeof(cb), .now = wgt_now, .send_udp = wgt_send_udp,
				   .write_ip = wgt_write_ip, .event = wgt_event };
	struct ne_tunnel_settings s = { .size = sizeof(s) };
	char err[256];
	int r;

	if (fd < 0) {
		snprintf(err, sizeof(err), "no transport socket: %s", message ? message : strerror(-error));
		wgt_fail(provider, w, error, err);
		return;
	}
	w->sock = fd;
	r = wg_engine_new(&w->conf->wg, &cb, w, &w->engine);
	if (r < 0) {
		wgt_fail(provider, w, r, "the WireGuard engine refused the configuration");
		return;
	}
	if (w->under_load)
		wg_set_under_load(w->engine, true);
	if (pthread_create(&w->rx_thread, NULL, wgt_rx_main, w) != 0) {
		wgt_fail(provider, w, -EAGAIN, "cannot start the receive thread");
		return;
	}
	w->rx_started = true;
	if (pthread_create(&w->timer_thread, NULL, wgt_timer_main, w) != 0) {
		wgt_fail(provider, w, -EAGAIN, "cannot start the timer thread");
		return;
	}
	w->timer_started = true;
	s.remote_address = w->remote;
	s.addresses = w->addresses;
	s.n_addresses = w->n_addresses;
	s.included_routes = w->routes;
	s.n_included_routes = w->n_routes;
	s.dns_servers = w->dns;
	s.n_dns_servers = w->n_dns;
	s.search_domains = w->search;
	s.n_search_domains = w->n_search;
	s.match_domains = w->match;
	s.n_match_domains = w->n_match;
	s.mtu = w->conf->mtu ? w->conf->mtu : WG_DEFAULT_MTU;
	s.include_all_networks = w->include_all;
	s.exclude_local_networks = w->exclude_local;
	s.queues = (uint16_t)w->queues;
	r = ne_tunnel_set_network_settings(provider, &s, settings_done, w);
	if (r < 0)
		wgt_fail(provider, w, r, "cannot send the tunnel settings");
}

static void wgt_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	struct wgt *w = calloc(1, sizeof(*w));
	uint16_t port;
	char err[512];
	int r;

	(void)userdata;
	if (!w) {
		ne_provider_start_done(provider, -ENOMEM, "out of memory");
		return;
	}
	w->provider = provider;
	w->ext = ne_provider_extension(provider);
	w->sock = -1;
	w->t0 = mono_ns();
	w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->stop_fd < 0) {
		wgt_fail(provider, w, -errno, "eventfd failed");
		return;
	}
	err[0] = 0;
	r = wgt_configure(w, options, err, sizeof(err));
	if (r < 0) {
		wgt_fail(provider, w, r, err);
		return;
	}
	/* The packet threads read the context: set before the settings start them. */
	ne_provider_set_context(provider, w);
	port = w->conf->wg.listen_port;
	r = ne_tunnel_open_socket(provider, AF_UNSPEC, IPPROTO_UDP, port, socket_done, w);
	if (r < 0)
		wgt_fail(provider, w, r, "cannot ask netextd for the transport socket");
}

/* The library has stopped the packet threads before this runs. */
static void wgt_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct wgt *w = ne_provider_get_context(provider);
	const char *why = ne_stop_reason_name(reason);

	(void)userdata;
	if (w)
		ne_extension_log(w->ext, NE_LOG_INFO, "%s: stopping (%s)", ne_provider_configuration(provider),
				 why ? why : "unknown reason");
	ne_provider_set_context(provider, NULL);
	wgt_free(w);
	ne_provider_stop_done(provider);
}

static int wgt_stats(struct wgt *w, char *buf, size_t size)
{
	struct wg_counters c;
	struct wg_peer_status ps;
	char key[45];
	size_t off = 0, i;
	uint64_t now = wgt_now(w);

#define PUT(...) off += (size_t)snprintf(buf + off, off < size ? size - off : 0, __VA_ARGS__)
	wg_get_counters(w->engine, &c);
	PUT("rx_packets=%" PRIu64 "\nrx_bytes=%" PRIu64 "\ntx_packets=%" PRIu64 "\ntx_bytes=%" PRIu64 "\n",
	    c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes);
	PUT("keepalives_rx=%" PRIu64 "\nkeepalives_tx=%" PRIu64 "\n", c.keepalives_rx, c.keepalives_tx);
	PUT("handshakes_sent=%" PRIu64 "\nhandshakes_received=%" PRIu64 "\nhandshakes_completed=%" PRIu64 "\n",
	    c.handshakes_sent, c.handshakes_received, c.handshakes_completed);
	PUT("cookies_sent=%" PRIu64 "\ncookies_received=%" PRIu64 "\n", c.cookies_sent, c.cookies_received);
	PUT("drop_mac1=%" PRIu64 "\ndrop_needs_cookie=%" PRIu64 "\ndrop_decrypt=%" PRIu64 "\ndrop_replay=%" PRIu64
	    "\ndrop_allowed_ip=%" PRIu64 "\ndrop_unknown_index=%" PRIu64 "\ndrop_short=%" PRIu64
	    "\ndrop_no_peer=%" PRIu64 "\ndrop_no_session=%" PRIu64 "\ndrop_unknown_peer=%" PRIu64 "\n",
	    c.drop_bad_mac1, c.drop_needs_cookie, c.drop_decrypt, c.drop_replay, c.drop_allowed_ip,
	    c.drop_unknown_index, c.drop_malformed, c.drop_no_peer, c.drop_no_session, c.drop_unknown_peer);
	PUT("send_errors=%" PRIuFAST64 "\ntun_write_drops=%" PRIuFAST64 "\nrx_truncated=%" PRIuFAST64 "\n",
	    atomic_load(&w->send_errors), atomic_load(&w->tun_write_drops), atomic_load(&w->rx_truncated));
	for (i = 0; i < wg_peer_count(w->engine); i++) {
		char ep[INET6_ADDRSTRLEN] = "none";
		unsigned port = 0;

		if (wg_peer_status(w->engine, i, &ps) < 0)
			continue;
		wg_key_to_base64(ps.public_key, key);
		if (ps.endpoint.sa.sa_family == AF_INET) {
			inet_ntop(AF_INET, &ps.endpoint.in4.sin_addr, ep, sizeof(ep));
			port = ntohs(ps.endpoint.in4.sin_port);
		} else if (ps.endpoint.sa.sa_family == AF_INET6) {
			inet_ntop(AF_INET6, &ps.endpoint.in6.sin6_addr, ep, sizeof(ep));
			port = ntohs(ps.endpoint.in6.sin6_port);
		}
		PUT("peer%zu=%s endpoint=%s:%u session=%s last_handshake_s=%" PRIu64 " rx_bytes=%" PRIu64
		    " tx_bytes=%" PRIu64 "\n", i, key, ep, port, ps.has_session ? "yes" : "no",
		    ps.last_handshake_ns ? (uint64_t)((now - ps.last_handshake_ns) / 1000000000ull / w->time_scale) : (uint64_t)0,
		    ps.counters.rx_bytes, ps.counters.tx_bytes);
	}
#undef PUT
	return (int)(off < size ? off : size - 1);
}

static void wgt_app_message(ne_provider *provider, ne_message *message, const void *data, size_t len,
			    void *userdata)
{
	struct wgt *w = ne_provider_get_context(provider);
	char buf[8192];
	int n;

	(void)userdata;
	if (!w || !w->engine || len != 5 || memcmp(data, "stats", 5)) {
		ne_message_reply(message, -EINVAL, NULL, 0);
		return;
	}
	n = wgt_stats(w, buf, sizeof(buf));
	ne_message_reply(message, 0, buf, (size_t)n);
}

static const struct ne_provider_ops wgt_ops = {
	.size = sizeof(wgt_ops),
	.start = wgt_start,
	.stop = wgt_stop,
	.app_message = wgt_app_message,
};

static const struct ne_tunnel_ops wgt_tunnel_ops = {
	.size = sizeof(wgt_tunnel_ops),
	.read_packets = wgt_read_packets,
};

int main(void)
{
	ne_extension *ext;
	int r;

	r = ne_extension_new(&ext);
	if (r < 0)
		return 1;
	r = ne_extension_register_packet_tunnel(ext, &wgt_ops, &wgt_tunnel_ops, NULL);
	if (r == 0)
		r = ne_extension_run(ext);
	ne_extension_free(ext);
	return r < 0;
}
