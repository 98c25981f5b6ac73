/* netext-testtunnel: a plaintext packet-tunnel extension for the integration tests and the
 * tunnel benchmark. No crypto, no framing: every IP packet read from the tunnel is sent to the
 * peer as one UDP datagram, and every datagram received is written into the tunnel as one IP
 * packet (tests/tools/udptun.c is the peer's side). One process serves several tunnel
 * configurations at once, each with its own socket and receive thread. Not an example to
 * copy (examples/wgtunnel is).
 *
 * Options (netextctl tunnel start NAME --option K=V):
 *   peer=IP:PORT | [IPv6]:PORT   the peer (required)
 *   port=N                       local UDP port (default 0: any)
 *   addresses=CIDR,…             tunnel addresses
 *   routes=CIDR,…                included routes
 *   excluded=CIDR,…              excluded routes
 *   dns=SERVER,…  match=DOMAIN,…  search=DOMAIN,…
 *   include_all=yes|no  exclude_local=yes|no  enforce_routes=yes|no
 *   queues=N  mtu=N  remote=ADDR (default: the peer's address)
 * Start: the transport socket (ne_tunnel_open_socket, AF_UNSPEC), then the settings, then
 * ne_provider_start_done.
 * App messages:
 *   stats     "to_peer_packets=N to_peer_bytes=N from_peer_packets=N from_peer_bytes=N
 *              send_errors=N write_drops=N bad=N reasserting=0|1 ifname=NAME"
 *   reassert  toggles reasserting; replies "reasserting=0|1"
 *   cancel    replies "cancelling", then ne_tunnel_cancel(-ECONNRESET, "cancelled by app message") */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netext/tunnel.h>

#define RX_BATCH 32
#define RX_BUF 65536
#define TX_BATCH 64
#define LIST_MAX 512

struct list {
	char *copy;
	const char *items[LIST_MAX];
	size_t n;
};

/* One per running provider (ne_provider_set_context): one process serves every tunnel
 * configuration of its extension, at once. */
struct tt {
	ne_provider *provider;
	int sock, stop_fd;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	char peer_host[INET6_ADDRSTRLEN];
	pthread_t rx;
	bool rx_started, reasserting;
	struct ne_tunnel_settings settings;
	struct list addresses, routes, excluded, dns, match, search;
	char remote[256];
	atomic_ullong to_peer_packets, to_peer_bytes, from_peer_packets, from_peer_bytes;
	atomic_ullong send_errors, write_drops, bad;
};

static ne_extension *ext;

/* --- options -------------------------------------------------------------------------------- */

static void list_free(struct list *l)
{
	free(l->copy);
	memset(l, 0, sizeof(*l));
}

static int list_parse(struct list *l, const char *v)
{
	char *s, *save = NULL;

	list_free(l);
	if (!v || !*v)
		return 0;
	l->copy = strdup(v);
	if (!l->copy)
		return -ENOMEM;
	for (s = strtok_r(l->copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
		if (l->n == LIST_MAX)
			return -E2BIG;
		l->items[l->n++] = s;
	}
	return 0;
}

static bool yes(const char *v)
{
	return v && (!strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on"));
}

/* "IP:PORT" or "[IPv6]:PORT". */
static int parse_peer(struct tt *T, const char *v)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *h = v;
	size_t hl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&T->peer;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&T->peer;
	long port;
	char *end;

	if (!v)
		return -EINVAL;
	if (*v == '[') {
		colon = strstr(v, "]:");
		if (!colon)
			return -EINVAL;
		h = v + 1;
		hl = (size_t)(colon - h);
		colon++;
	} else {
		colon = strrchr(v, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - v);
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return -EINVAL;
	memset(&T->peer, 0, sizeof(T->peer));
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		T->peer_len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		T->peer_len = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	snprintf(T->peer_host, sizeof(T->peer_host), "%s", host);
	return 0;
}

/* An IPv6 socket (AF_UNSPEC asked) reaches an IPv4 peer by its v4-mapped address. */
static void map_peer(struct tt *T, int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	struct sockaddr_in v4;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&T->peer;

	if (getsockname(fd, (struct sockaddr *)&ss, &l) < 0 || ss.ss_family != AF_INET6 ||
	    T->peer.ss_family != AF_INET)
		return;
	memcpy(&v4, &T->peer, sizeof(v4));
	memset(&T->peer, 0, sizeof(T->peer));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = v4.sin_port;
	s6->sin6_addr.s6_addr[10] = 0xff;
	s6->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&s6->sin6_addr.s6_addr[12], &v4.sin_addr, 4);
	T->peer_len = sizeof(*s6);
}

static int parse_settings(struct tt *T, const ne_options *o)
{
	struct ne_tunnel_settings *s = &T->settings;
	const char *v;
	int r = 0;

	memset(s, 0, sizeof(*s));
	s->size = sizeof(*s);
	r = list_parse(&T->addresses, ne_options_get(o, "addresses"));
	if (r == 0)
		r = list_parse(&T->routes, ne_options_get(o, "routes"));
	if (r == 0)
		r = list_parse(&T->excluded, ne_options_get(o, "excluded"));
	if (r == 0)
		r = list_parse(&T->dns, ne_options_get(o, "dns"));
	if (r == 0)
		r = list_parse(&T->match, ne_options_get(o, "match"));
	if (r == 0)
		r = list_parse(&T->search, ne_options_get(o, "search"));
	if (r < 0)
		return r;
	s->addresses = T->addresses.items;
	s->n_addresses = T->addresses.n;
	s->included_routes = T->routes.items;
	s->n_included_routes = T->routes.n;
	s->excluded_routes = T->excluded.items;
	s->n_excluded_routes = T->excluded.n;
	s->dns_servers = T->dns.items;
	s->n_dns_servers = T->dns.n;
	s->match_domains = T->match.items;
	s->n_match_domains = T->match.n;
	s->search_domains = T->search.items;
	s->n_search_domains = T->search.n;
	s->include_all_networks = yes(ne_options_get(o, "include_all"));
	s->exclude_local_networks = yes(ne_options_get(o, "exclude_local"));
	s->enforce_routes = yes(ne_options_get(o, "enforce_routes"));
	if ((v = ne_options_get(o, "queues")))
		s->queues = (uint16_t)atoi(v);
	if ((v = ne_options_get(o, "mtu")))
		s->mtu = (uint32_t)atoi(v);
	snprintf(T->remote, sizeof(T->remote), "%s", ne_options_get(o, "remote") ?: T->peer_host);
	s->remote_address = T->remote;
	return 0;
}

/* --- packets ---------------------------------------------------------------------------------- */

static void read_packets(ne_provider *p, const ne_tunnel_packet *pk, size_t n, unsigned queue, void *ud)
{
	struct tt *T = ne_provider_get_context(p);
	struct mmsghdr msgs[TX_BATCH];
	struct iovec iov[TX_BATCH];
	size_t i, done = 0, chunk;
	unsigned long long bytes = 0;
	int r;

	(void)queue;
	(void)ud;
	while (done < n) {
		chunk = n - done < TX_BATCH ? n - done : TX_BATCH;
		for (i = 0; i < chunk; i++) {
			iov[i] = (struct iovec){ (void *)pk[done + i].bytes, pk[done + i].len };
			msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &T->peer, .msg_namelen = T->peer_len,
								 .msg_iov = &iov[i], .msg_iovlen = 1 } };
		}
		r = sendmmsg(T->sock, msgs, (unsigned)chunk, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) { /* the first one failed: skip it */
			atomic_fetch_add(&T->send_errors, 1);
			done++;
			continue;
		}
		for (i = 0; i < (size_t)r; i++)
			bytes += pk[done + i].len;
		atomic_fetch_add(&T->to_peer_packets, (unsigned long long)r);
		done += (size_t)r;
	}
	atomic_fetch_add(&T->to_peer_bytes, bytes);
}

static void write_batch(struct tt *T, ne_tunnel_packet *pk, size_t n)
{
	int r;

	while (n) {
		r = ne_tunnel_write_packets(T->provider, pk, n);
		if (r == -EINVAL) { /* not an IP packet: skip it */
			atomic_fetch_add(&T->bad, 1);
			pk++;
			n--;
			continue;
		}
		if (r < 0) {
			atomic_fetch_add(&T->write_drops, n);
			return;
		}
		atomic_fetch_add(&T->write_drops, n - (size_t)r);
		return;
	}
}

static void *receiver(void *arg)
{
	struct tt *T = arg;
	struct mmsghdr msgs[RX_BATCH];
	struct iovec iov[RX_BATCH];
	ne_tunnel_packet pk[RX_BATCH];
	uint8_t *buf = malloc((size_t)RX_BATCH * RX_BUF);
	struct pollfd p[2] = { { .fd = T->sock, .events = POLLIN }, { .fd = T->stop_fd, .events = POLLIN } };
	unsigned long long bytes;
	int i, r;

	if (!buf)
		return NULL;
	for (i = 0; i < RX_BATCH; i++)
		iov[i] = (struct iovec){ buf + (size_t)i * RX_BUF, RX_BUF };
	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		for (i = 0; i < RX_BATCH; i++)
			msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
		r = recvmmsg(T->sock, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
		if (r <= 0)
			continue;
		bytes = 0;
		for (i = 0; i < r; i++) {
			pk[i] = (ne_tunnel_packet){ .bytes = iov[i].iov_base, .len = msgs[i].msg_len };
			bytes += msgs[i].msg_len;
		}
		atomic_fetch_add(&T->from_peer_packets, (unsigned long long)r);
		atomic_fetch_add(&T->from_peer_bytes, bytes);
		write_batch(T, pk, (size_t)r);
	}
	free(buf);
	return NULL;
}

/* --- lifecycle -------------------------------------------------------------------------------- */

static void teardown(struct tt *T)
{
	uint64_t one = 1;

	if (T->rx_started) {
		if (write(T->stop_fd, &one, sizeof(one)) < 0)
			perror("testtunnel: eventfd");
		pthread_join(T->rx, NULL);
		T->rx_started = false;
	}
	if (T->sock >= 0)
		close(T->sock);
	if (T->stop_fd >= 0)
		close(T->stop_fd);
	T->sock = T->stop_fd = -1;
}

static void tt_free(struct tt *T)
{
	if (!T)
		return;
	teardown(T);
	list_free(&T->addresses);
	list_free(&T->routes);
	list_free(&T->excluded);
	list_free(&T->dns);
	list_free(&T->match);
	list_free(&T->search);
	free(T);
}

/* A failed start frees the provider (unless a stop is pending, whose callback finds no
 * context then). */
static void fail_start(struct tt *T, ne_provider *p, int error, const char *message)
{
	ne_provider_set_context(p, NULL);
	tt_free(T);
	ne_provider_start_done(p, error, message);
}

static void settings_done(ne_provider *p, int error, const char *message, void *ud)
{
	struct tt *T = ud;

	if (error < 0) {
		fail_start(T, p, error, message ? message : "settings refused");
		return;
	}
	T->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (T->stop_fd < 0 || pthread_create(&T->rx, NULL, receiver, T) != 0) {
		fail_start(T, p, -EAGAIN, "cannot start the receive thread");
		return;
	}
	T->rx_started = true;
	ne_extension_log(ext, NE_LOG_INFO, "testtunnel: %s up, peer %s", ne_tunnel_interface_name(p) ?: "?",
			 T->peer_host);
	ne_provider_start_done(p, 0, NULL);
}

static void socket_done(ne_provider *p, int fd, int error, const char *message, void *ud)
{
	struct tt *T = ud;
	int r;

	if (fd < 0) {
		fail_start(T, p, error, message ? message : "no transport socket");
		return;
	}
	T->sock = fd;
	/* Bursts from the peer: a larger receive buffer (capped by net.core.rmem_max). */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){ 4 << 20 }, sizeof(int));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){ 4 << 20 }, sizeof(int));
	map_peer(T, fd);
	r = ne_tunnel_set_network_settings(p, &T->settings, settings_done, T);
	if (r < 0)
		fail_start(T, p, r, "cannot send the settings");
}

static void start(ne_provider *p, const ne_options *o, void *ud)
{
	struct tt *T;
	const char *v;
	int port = 0, r;

	(void)ud;
	T = calloc(1, sizeof(*T));
	if (!T) {
		ne_provider_start_done(p, -ENOMEM, "out of memory");
		return;
	}
	T->sock = T->stop_fd = -1;
	T->provider = p;
	ne_provider_set_context(p, T);
	if (parse_peer(T, ne_options_get(o, "peer")) < 0) {
		fail_start(T, p, -EINVAL, "peer=IP:PORT is required");
		return;
	}
	if ((v = ne_options_get(o, "port")))
		port = atoi(v);
	if (port < 0 || port > 65535 || parse_settings(T, o) < 0) {
		fail_start(T, p, -EINVAL, "bad options");
		return;
	}
	r = ne_tunnel_open_socket(p, AF_UNSPEC, IPPROTO_UDP, (uint16_t)port, socket_done, T);
	if (r < 0)
		fail_start(T, p, r, "cannot ask for the transport socket");
}

static void stop(ne_provider *p, ne_stop_reason reason, void *ud)
{
	(void)reason;
	(void)ud;
	tt_free(ne_provider_get_context(p));
	ne_provider_set_context(p, NULL);
	ne_provider_stop_done(p);
}

static void app_message(ne_provider *p, ne_message *m, const void *data, size_t len, void *ud)
{
	struct tt *T = ne_provider_get_context(p);
	char out[512];
	int n;

	(void)ud;
	if (!T) {
		ne_message_reply(m, -ENOTCONN, NULL, 0);
		return;
	}
	if (len == 5 && !memcmp(data, "stats", 5)) {
		n = snprintf(out, sizeof(out),
			     "to_peer_packets=%llu to_peer_bytes=%llu from_peer_packets=%llu from_peer_bytes=%llu "
			     "send_errors=%llu write_drops=%llu bad=%llu reasserting=%d ifname=%s",
			     T->to_peer_packets, T->to_peer_bytes, T->from_peer_packets, T->from_peer_bytes,
			     T->send_errors, T->write_drops, T->bad, T->reasserting, ne_tunnel_interface_name(p) ?: "-");
		ne_message_reply(m, 0, out, (size_t)n);
	} else if (len == 8 && !memcmp(data, "reassert", 8)) {
		n = ne_tunnel_set_reasserting(p, !T->reasserting);
		if (n == 0)
			T->reasserting = !T->reasserting;
		n = n < 0 ? n : snprintf(out, sizeof(out), "reasserting=%d", T->reasserting);
		if (n < 0)
			ne_message_reply(m, n, NULL, 0);
		else
			ne_message_reply(m, 0, out, (size_t)n);
	} else if (len == 6 && !memcmp(data, "cancel", 6)) {
		ne_message_reply(m, 0, "cancelling", 10);
		ne_tunnel_cancel(p, -ECONNRESET, "cancelled by app message");
	} else {
		ne_message_reply(m, -EINVAL, NULL, 0);
	}
}

int main(void)
{
	static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = start, .stop = stop,
						    .app_message = app_message };
	static const struct ne_tunnel_ops tops = { .size = sizeof(tops), .read_packets = read_packets };
	int r;

	if (ne_extension_new(&ext) < 0 || ne_extension_register_packet_tunnel(ext, &ops, &tops, NULL) < 0)
		return 1;
	r = ne_extension_run(ext);
	ne_extension_free(ext); /* the providers still running: their threads outlive it */

	return r < 0;
}
