/* libnetext's packet-tunnel side against a fake daemon (a seqpacket socketpair speaking the
 * wire codec) and fake TUN queues (seqpacket socketpairs: one datagram = one packet, with the
 * 10-byte vnet header in front): settings encoding, -EBUSY, the RESULT completion,
 * TUNNEL_DEVICE with two queue fds, packets read through the packet threads (plain,
 * NEEDS_CSUM, TSO over IPv4 and IPv6, USO over IPv4 and IPv6, each segment checked against a
 * byte-by-byte checksum written here), writes with a zero vnet header, transport sockets
 * (fd, error, cancelled by the stop), reasserting and cancel frames, and the stop closing the
 * queues. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <netext/harness.h>
#include <netext/tunnel.h>

#include "pkt.h"
#include "testpkt.h"
#include "wire.h"

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5
#endif

#define PROVIDER 7
#define MAXSEEN 64

/* --- the provider under test --------------------------------------------------------------- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t n;
	uint8_t bytes[MAXSEEN][2048];
	size_t len[MAXSEEN];
	int family[MAXSEEN];
	unsigned queue[MAXSEEN];
} seen = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static struct {
	ne_provider *pv;
	int settings_r, settings_again_r;
	int done_calls, done_error;
	char done_message[128];
	int sock_calls, sock_fd, sock_error;
	int stop_calls;
	bool clear;
} ts;

static void read_packets(ne_provider *p, const ne_tunnel_packet *pk, size_t n, unsigned queue, void *ud)
{
	size_t i;

	(void)p;
	(void)ud;
	pthread_mutex_lock(&seen.lock);
	for (i = 0; i < n && seen.n < MAXSEEN; i++) {
		assert_true(pk[i].len <= sizeof(seen.bytes[0]));
		memcpy(seen.bytes[seen.n], pk[i].bytes, pk[i].len);
		seen.len[seen.n] = pk[i].len;
		seen.family[seen.n] = pk[i].family;
		seen.queue[seen.n] = queue;
		seen.n++;
	}
	pthread_cond_broadcast(&seen.cond);
	pthread_mutex_unlock(&seen.lock);
}

static void settings_done(ne_provider *p, int error, const char *message, void *ud)
{
	(void)ud;
	assert_ptr_equal(p, ts.pv);
	ts.done_calls++;
	ts.done_error = error;
	snprintf(ts.done_message, sizeof(ts.done_message), "%s", message ? message : "");
}

static void t_start(ne_provider *p, const ne_options *o, void *ud)
{
	static const char *addrs[] = { "10.77.0.1/24", "fd77::1/64" };
	static const char *routes[] = { "0.0.0.0/0" };
	static const char *dns[] = { "10.77.0.53" };
	static const char *match[] = { "corp.example" };
	struct ne_tunnel_settings s = { .size = sizeof(s), .remote_address = "192.0.2.2",
					.addresses = addrs, .n_addresses = 2, .included_routes = routes,
					.n_included_routes = 1, .dns_servers = dns, .n_dns_servers = 1,
					.match_domains = match, .n_match_domains = 1, .mtu = 1400,
					.include_all_networks = true, .enforce_routes = true, .queues = 2 };

	(void)o;
	(void)ud;
	ts.pv = p;
	ts.settings_r = ne_tunnel_set_network_settings(p, &s, settings_done, NULL);
	ts.settings_again_r = ne_tunnel_set_network_settings(p, &s, settings_done, NULL);
}

static void t_stop(ne_provider *p, ne_stop_reason reason, void *ud)
{
	(void)reason;
	(void)ud;
	ts.stop_calls++;
	ne_provider_stop_done(p);
}

static void socket_done(ne_provider *p, int fd, int error, const char *message, void *ud)
{
	(void)p;
	(void)message;
	(void)ud;
	ts.sock_calls++;
	ts.sock_fd = fd;
	ts.sock_error = error;
}

static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = t_start, .stop = t_stop };
static const struct ne_tunnel_ops tops = { .size = sizeof(tops), .read_packets = read_packets };

/* --- the fake daemon ----------------------------------------------------------------------- */

static uint8_t frame[NE_WIRE_MAX];

struct fx {
	ne_extension *ext;
	int d;     /* the daemon's end */
	int tun[2]; /* the kernel's ends of the two queues */
};

static size_t d_recv(struct fx *f, struct ne_msg_hdr *h, int *fds, size_t *nfds)
{
	int n = ne_wire_recv(f->d, frame, sizeof(frame), fds, nfds);

	assert_true(n >= NE_WIRE_HDR_LEN);
	assert_int_equal(ne_msg_hdr_decode(frame, (size_t)n, h), 0);
	return (size_t)n - NE_WIRE_HDR_LEN;
}

static void d_send(struct fx *f, int len, const int *fds, size_t nfds)
{
	assert_true(len > 0);
	assert_int_equal(ne_wire_send(f->d, frame, (size_t)len, fds, nfds), len);
}

static struct ne_wbuf wb(void)
{
	return (struct ne_wbuf){ frame, 0, sizeof(frame), 0 };
}

static void d_result(struct fx *f, uint16_t type, uint64_t id, int error, const char *msg, const int *fds,
		     size_t nfds)
{
	struct ne_msg_result m = { .error = error, .message = { msg, strlen(msg) } };
	struct ne_wbuf b = wb();

	d_send(f, ne_msg_result2_encode(&b, type, id, &m), fds, nfds);
}

static void check_settings(const uint8_t *p, size_t len)
{
	struct ne_msg_tunnel_settings *m = malloc(sizeof(*m));

	assert_non_null(m);
	assert_int_equal(ne_msg_tunnel_settings_decode(p, len, m), 0);
	assert_int_equal(m->provider, PROVIDER);
	assert_int_equal(m->flags, NE_TUNNEL_F_INCLUDE_ALL | NE_TUNNEL_F_ENFORCE_ROUTES);
	assert_int_equal(m->mtu, 1400);
	assert_int_equal(m->queues, 2);
	assert_int_equal(m->n_addresses, 2);
	assert_memory_equal(m->addresses[1].p, "fd77::1/64", 10);
	assert_int_equal(m->n_included, 1);
	assert_int_equal(m->n_excluded, 0);
	assert_int_equal(m->n_dns, 1);
	assert_int_equal(m->n_match, 1);
	assert_int_equal(m->remote_address.len, 9);
	free(m);
}

/* Handshake, START, the settings, the device with two queues, the RESULT. */
static void fx_open(struct fx *f)
{
	struct ne_msg_welcome w = { NE_WIRE_VERSION, { "d", 1 }, 1000 };
	struct ne_msg_start st = { .provider = PROVIDER, .type = NE_PROVIDER_PACKET_TUNNEL, .config = { "t", 1 } };
	struct ne_msg_tunnel_device dev = { .provider = PROVIDER, .ifname = { "tun7", 4 }, .ifindex = 9,
					    .mtu = 1400, .vnet_hdr_len = 10, .offloads = 0x7f, .count = 2 };
	struct ne_wbuf b = wb();
	struct ne_msg_hdr h;
	int sv[2], q[2][2], i, sfds[2];
	uint64_t id;
	size_t len;

	memset(&ts, 0, sizeof(ts));
	pthread_mutex_lock(&seen.lock);
	seen.n = 0;
	pthread_mutex_unlock(&seen.lock);
	assert_int_equal(ne_extension_new(&f->ext), 0);
	assert_int_equal(ne_extension_register_packet_tunnel(f->ext, &ops, &tops, NULL), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(ne_extension_connect_fd(f->ext, sv[0]), 0);
	f->d = sv[1];
	d_recv(f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_HELLO);
	d_send(f, ne_msg_welcome_encode(&b, &w), NULL, 0);
	d_send(f, ne_msg_start_encode(&b, 5, &st), NULL, 0);
	assert_int_equal(ne_extension_dispatch(f->ext), 0);
	assert_int_equal(ts.settings_r, 0);
	assert_int_equal(ts.settings_again_r, -EBUSY);
	assert_null(ne_tunnel_interface_name(ts.pv));
	len = d_recv(f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_TUNNEL_SETTINGS);
	id = h.id;
	check_settings(frame + NE_WIRE_HDR_LEN, len);
	for (i = 0; i < 2; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q[i]), 0);
		sfds[i] = q[i][0];
		f->tun[i] = q[i][1];
	}
	b = wb();
	d_send(f, ne_msg_tunnel_device_encode(&b, &dev), sfds, 2);
	close(sfds[0]);
	close(sfds[1]);
	d_result(f, NE_MSG_RESULT, id, 0, "", NULL, 0);
	assert_int_equal(ne_extension_dispatch(f->ext), 0);
	assert_int_equal(ts.done_calls, 1);
	assert_int_equal(ts.done_error, 0);
	assert_string_equal(ne_tunnel_interface_name(ts.pv), "tun7");
	assert_int_equal(ne_provider_start_done(ts.pv, 0, NULL), 0);
	d_recv(f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_START_DONE);
	assert_int_equal(h.id, 5);
}

/* STOP, then STOP_DONE; the library closed its queue ends (the kernel side sees EOF). */
static void fx_stop(struct fx *f)
{
	struct ne_msg_stop m = { .provider = PROVIDER, .reason = NE_STOP_REASON_USER_INITIATED };
	struct ne_wbuf b = wb();
	struct ne_msg_hdr h;
	uint8_t c;
	int i;

	d_send(f, ne_msg_stop_encode(&b, 6, &m), NULL, 0);
	assert_int_equal(ne_extension_dispatch(f->ext), 0);
	assert_int_equal(ts.stop_calls, 1);
	d_recv(f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_STOP_DONE);
	assert_int_equal(h.id, 6);
	for (i = 0; i < 2; i++)
		assert_int_equal(read(f->tun[i], &c, 1), 0);
}

static void fx_close(struct fx *f)
{
	ne_extension_free(f->ext);
	close(f->d);
	close(f->tun[0]);
	close(f->tun[1]);
}

/* --- packets ---------------------------------------------------------------------------------- */

static size_t wait_seen(size_t n)
{
	struct timespec t;
	size_t got;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 5;
	pthread_mutex_lock(&seen.lock);
	while (seen.n < n && pthread_cond_timedwait(&seen.cond, &seen.lock, &t) == 0)
		;
	got = seen.n;
	pthread_mutex_unlock(&seen.lock);
	return got;
}

static void reset_seen(void)
{
	pthread_mutex_lock(&seen.lock);
	seen.n = 0;
	pthread_mutex_unlock(&seen.lock);
}

static void inject(int fd, const struct virtio_net_hdr *vh, const uint8_t *p, size_t len)
{
	struct iovec iov[2] = { { (void *)vh, sizeof(*vh) }, { (void *)p, len } };

	assert_int_equal(sizeof(*vh), 10);
	assert_int_equal(writev(fd, iov, 2), (ssize_t)(10 + len));
}

/* RFC 1071 one 16-bit word at a time, independent of pkt.c. */
static uint32_t ref_add(uint32_t s, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

static bool ref_l4_ok(const uint8_t *p, size_t len, int family, size_t l4off, uint8_t proto)
{
	size_t l4len = len - l4off;
	uint32_t s;

	if (family == AF_INET) {
		if (ref_add(0, p, (size_t)(p[0] & 15) * 4) != 0xffff)
			return false;
		s = ref_add(0, p + 12, 8);
	} else {
		s = ref_add(0, p + 8, 32);
	}
	s = ref_add(s + proto + (uint32_t)l4len, p + l4off, l4len);
	return s == 0xffff;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)be16(p) << 16 | be16(p + 2);
}

static uint8_t pattern[65536];

static void fill_pattern(void)
{
	size_t i;

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 3);
}

static void test_plain_and_csum(void **state)
{
	static uint8_t p[2048];
	struct virtio_net_hdr vh = { 0 };
	struct fx f;
	size_t n;

	(void)state;
	fx_open(&f);
	n = testpkt_v4n(p, IPPROTO_UDP, 1000, 2000, "hello", 5);
	inject(f.tun[1], &vh, p, n);
	assert_int_equal(wait_seen(1), 1);
	assert_int_equal(seen.len[0], n);
	assert_memory_equal(seen.bytes[0], p, n);
	assert_int_equal(seen.family[0], AF_INET);
	assert_int_equal(seen.queue[0], 1);
	reset_seen();

	/* NEEDS_CSUM: the field holds the pseudo-header sum, the library completes it. */
	n = testpkt_v6n(p, IPPROTO_TCP, 1000, 2000, pattern, 1000);
	{
		uint32_t s = ref_add(0, p + 8, 32);

		s = ref_add(s + IPPROTO_TCP + (uint32_t)(n - 40), (const uint8_t *)"", 0);
		p[40 + 16] = (uint8_t)(s >> 8);
		p[40 + 17] = (uint8_t)s;
	}
	vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	vh.csum_start = 40;
	vh.csum_offset = 16;
	inject(f.tun[0], &vh, p, n);
	assert_int_equal(wait_seen(1), 1);
	assert_int_equal(seen.len[0], n);
	assert_int_equal(seen.family[0], AF_INET6);
	assert_int_equal(seen.queue[0], 0);
	assert_true(ref_l4_ok(seen.bytes[0], n, AF_INET6, 40, IPPROTO_TCP));
	reset_seen();

	/* Malformed: a bad version and a csum offset beyond the packet are dropped. */
	memset(&vh, 0, sizeof(vh));
	p[0] = 0x55;
	inject(f.tun[0], &vh, p, 40);
	n = testpkt_v4n(p, IPPROTO_UDP, 1, 2, "x", 1);
	vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	vh.csum_start = 20;
	vh.csum_offset = 100;
	inject(f.tun[0], &vh, p, n);
	memset(&vh, 0, sizeof(vh));
	inject(f.tun[0], &vh, p, n);
	assert_int_equal(wait_seen(1), 1);
	assert_int_equal(seen.len[0], n);
	fx_stop(&f);
	fx_close(&f);
}

/* One GSO packet (proto, family, payload bytes, gso_size) must arrive as these segments. */
static void check_gso(int family, uint8_t proto, size_t payload, uint16_t gso_size)
{
	static uint8_t p[70000];
	struct virtio_net_hdr vh = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_size = gso_size };
	size_t n, hl = family == AF_INET ? 20 : 40, l4h = proto == IPPROTO_TCP ? 20 : 8, k, nseg, seglen;
	struct fx f;
	const uint8_t *s;

	n = family == AF_INET ? testpkt_v4n(p, proto, 1234, 80, pattern, payload)
			      : testpkt_v6n(p, proto, 1234, 80, pattern, payload);
	if (family == AF_INET) {
		p[4] = 0x12, p[5] = 0x34; /* id */
		vh.gso_type = proto == IPPROTO_TCP ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_UDP_L4;
	} else {
		vh.gso_type = proto == IPPROTO_TCP ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_UDP_L4;
	}
	if (proto == IPPROTO_TCP) {
		p[hl + 4] = 0xff, p[hl + 5] = 0xff, p[hl + 6] = 0xfc, p[hl + 7] = 0x00; /* wraps */
		p[hl + 13] = 0x80 | 0x10 | 0x08 | 0x01;                                 /* CWR ACK PSH FIN */
	}
	vh.hdr_len = (uint16_t)(hl + l4h);
	vh.csum_start = (uint16_t)hl;
	vh.csum_offset = proto == IPPROTO_TCP ? 16 : 6;
	nseg = (payload + gso_size - 1) / gso_size;
	assert_true(nseg <= MAXSEEN);
	fx_open(&f);
	inject(f.tun[0], &vh, p, n);
	assert_int_equal(wait_seen(nseg), nseg);
	for (k = 0; k < nseg; k++) {
		s = seen.bytes[k];
		seglen = k + 1 < nseg ? gso_size : payload - k * gso_size;
		assert_int_equal(seen.len[k], hl + l4h + seglen);
		assert_int_equal(seen.family[k], family);
		if (family == AF_INET) {
			assert_int_equal(be16(s + 2), hl + l4h + seglen);
			assert_int_equal(be16(s + 4), 0x1234 + k);
		} else {
			assert_int_equal(be16(s + 4), l4h + seglen);
		}
		if (proto == IPPROTO_TCP) {
			assert_int_equal(be32(s + hl + 4), (uint32_t)(0xfffffc00u + k * gso_size));
			assert_int_equal(!!(s[hl + 13] & 0x80), k == 0);
			assert_int_equal(!!(s[hl + 13] & 0x09), k + 1 == nseg);
			assert_int_equal(s[hl + 13] & 0x10, 0x10);
		} else {
			assert_int_equal(be16(s + hl + 4), 8 + seglen);
		}
		assert_memory_equal(s + hl + l4h, pattern + k * gso_size, seglen);
		assert_true(ref_l4_ok(s, seen.len[k], family, hl, proto));
	}
	fx_stop(&f);
	fx_close(&f);
	reset_seen();
}

static void test_tso4(void **state)
{
	(void)state;
	check_gso(AF_INET, IPPROTO_TCP, 5000, 1400);
}

static void test_tso6(void **state)
{
	(void)state;
	check_gso(AF_INET6, IPPROTO_TCP, 3000, 1000);
}

static void test_uso(void **state)
{
	(void)state;
	check_gso(AF_INET, IPPROTO_UDP, 3001, 1200);
	check_gso(AF_INET6, IPPROTO_UDP, 2400, 1200);
}

static void test_big_tso(void **state)
{
	(void)state;
	check_gso(AF_INET, IPPROTO_TCP, 60000, 1448); /* 42 segments */
}

/* --- writes, sockets, state ----------------------------------------------------------------------- */

static void test_write(void **state)
{
	static uint8_t p[2][256], got[512];
	ne_tunnel_packet pk[2];
	struct pollfd pf[2];
	struct fx f;
	size_t i, total = 0;
	ssize_t r;

	(void)state;
	fx_open(&f);
	pk[0] = (ne_tunnel_packet){ p[0], testpkt_v4n(p[0], IPPROTO_UDP, 5, 6, "abc", 3), 0 };
	pk[1] = (ne_tunnel_packet){ p[1], testpkt_v6n(p[1], IPPROTO_UDP, 5, 6, "defg", 4), AF_INET6 };
	assert_int_equal(ne_tunnel_write_packets(ts.pv, pk, 2), 2);
	for (i = 0; i < 2; i++)
		pf[i] = (struct pollfd){ .fd = f.tun[i], .events = POLLIN };
	while (total < 2) {
		assert_true(poll(pf, 2, 2000) > 0);
		for (i = 0; i < 2; i++) {
			if (!(pf[i].revents & POLLIN))
				continue;
			r = read(f.tun[i], got, sizeof(got));
			assert_true(r > 10);
			assert_memory_equal(got, "\0\0\0\0\0\0\0\0\0\0", 10);
			assert_int_equal((size_t)r - 10, pk[total].len);
			assert_memory_equal(got + 10, pk[total].bytes, pk[total].len);
			total++;
		}
	}
	/* Malformed first packet; a family that contradicts the version. */
	p[0][0] = 0x75;
	assert_int_equal(ne_tunnel_write_packets(ts.pv, pk, 2), -EINVAL);
	pk[1].family = AF_INET;
	assert_int_equal(ne_tunnel_write_packets(ts.pv, &pk[1], 1), -EINVAL);
	assert_int_equal(ne_tunnel_write_packets(ts.pv, pk, 0), 0);
	fx_stop(&f);
	pk[1].family = 0;
	assert_int_equal(ne_tunnel_write_packets(ts.pv, &pk[1], 1), -ENOTCONN);
	fx_close(&f);
}

/* Reads one datagram from either fake queue. */
static ssize_t fake_read(struct fx *f, uint8_t *buf, size_t cap)
{
	struct pollfd pf[2] = { { .fd = f->tun[0], .events = POLLIN }, { .fd = f->tun[1], .events = POLLIN } };
	int i;

	assert_true(poll(pf, 2, 2000) > 0);
	for (i = 0; i < 2; i++)
		if (pf[i].revents & POLLIN)
			return read(f->tun[i], buf, cap);
	return -1;
}

static size_t tcp_seg(uint8_t *p, int family, uint32_t seq, size_t off, size_t len, uint8_t flags)
{
	size_t n = family == AF_INET ? testpkt_v4n(p, IPPROTO_TCP, 4000, 80, pattern + off, len)
				     : testpkt_v6n(p, IPPROTO_TCP, 4000, 80, pattern + off, len);
	size_t l4 = family == AF_INET ? 20 : 40;

	p[l4 + 4] = (uint8_t)(seq >> 24), p[l4 + 5] = (uint8_t)(seq >> 16);
	p[l4 + 6] = (uint8_t)(seq >> 8), p[l4 + 7] = (uint8_t)seq;
	p[l4 + 13] = flags;
	return n;
}

/* Contiguous segments of one flow are written as one GSO packet; its completed checksum is
 * right; a gap in the sequence starts a new write. */
static void check_merge(int family)
{
	static uint8_t seg[4][2048], got[70000];
	size_t l4 = family == AF_INET ? 20 : 40, total;
	struct virtio_net_hdr vh;
	ne_tunnel_packet pk[4];
	uint32_t s;
	struct fx f;
	ssize_t r;

	fx_open(&f);
	pk[0] = (ne_tunnel_packet){ seg[0], tcp_seg(seg[0], family, 1000, 0, 1000, 0x10), 0 };
	pk[1] = (ne_tunnel_packet){ seg[1], tcp_seg(seg[1], family, 2000, 1000, 1000, 0x10), 0 };
	pk[2] = (ne_tunnel_packet){ seg[2], tcp_seg(seg[2], family, 3000, 2000, 500, 0x18), 0 };
	pk[3] = (ne_tunnel_packet){ seg[3], tcp_seg(seg[3], family, 9000, 0, 100, 0x10), 0 };
	assert_int_equal(ne_tunnel_write_packets(ts.pv, pk, 4), 4);
	r = fake_read(&f, got, sizeof(got));
	total = l4 + 20 + 2500;
	assert_int_equal(r, 10 + (ssize_t)total);
	memcpy(&vh, got, 10);
	assert_int_equal(vh.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(vh.gso_type, family == AF_INET ? VIRTIO_NET_HDR_GSO_TCPV4 : VIRTIO_NET_HDR_GSO_TCPV6);
	assert_int_equal(vh.gso_size, 1000);
	assert_int_equal(vh.hdr_len, l4 + 20);
	assert_int_equal(vh.csum_start, l4);
	assert_int_equal(vh.csum_offset, 16);
	if (family == AF_INET)
		assert_int_equal(be16(got + 10 + 2), total);
	else
		assert_int_equal(be16(got + 10 + 4), total - 40);
	assert_int_equal(be32(got + 10 + l4 + 4), 1000);
	assert_int_equal(got[10 + l4 + 13], 0x18); /* the last one's PSH */
	assert_memory_equal(got + 10 + l4 + 20, pattern, 2500);
	/* What the kernel does with NEEDS_CSUM, then an independent check. */
	s = ref_add(0, got + 10 + l4, total - l4);
	got[10 + l4 + 16] = (uint8_t)(~s >> 8);
	got[10 + l4 + 17] = (uint8_t)~s;
	assert_true(ref_l4_ok(got + 10, total, family, l4, IPPROTO_TCP));
	/* The one after the gap: alone, with a zero vnet header. */
	r = fake_read(&f, got, sizeof(got));
	assert_int_equal(r, 10 + (ssize_t)pk[3].len);
	assert_memory_equal(got, "\0\0\0\0\0\0\0\0\0\0", 10);
	fx_stop(&f);
	fx_close(&f);
}

static void test_write_merge(void **state)
{
	(void)state;
	check_merge(AF_INET);
	check_merge(AF_INET6);
}

static void test_socket_state_cancel(void **state)
{
	struct ne_msg_tunnel_socket sm;
	struct ne_msg_tunnel_state st;
	struct ne_msg_tunnel_cancel cm;
	struct ne_msg_hdr h;
	struct fx f;
	size_t len;
	int u;

	(void)state;
	fx_open(&f);
	/* A socket given. */
	assert_int_equal(ne_tunnel_open_socket(ts.pv, AF_UNSPEC, IPPROTO_UDP, 5000, socket_done, NULL), 0);
	len = d_recv(&f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_TUNNEL_SOCKET);
	assert_int_equal(ne_msg_tunnel_socket_decode(frame + NE_WIRE_HDR_LEN, len, &sm), 0);
	assert_int_equal(sm.family, 0);
	assert_int_equal(sm.protocol, 17);
	assert_int_equal(sm.port, 5000);
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(u >= 0);
	d_result(&f, NE_MSG_TUNNEL_SOCKET_FD, h.id, 0, "", &u, 1);
	close(u);
	assert_int_equal(ne_extension_dispatch(f.ext), 0);
	assert_int_equal(ts.sock_calls, 1);
	assert_int_equal(ts.sock_error, 0);
	assert_true(ts.sock_fd >= 0);
	assert_true(fcntl(ts.sock_fd, F_GETFD) & FD_CLOEXEC);
	assert_false(fcntl(ts.sock_fd, F_GETFL) & O_NONBLOCK); /* made blocking, as promised */
	close(ts.sock_fd);
	/* A socket refused. */
	assert_int_equal(ne_tunnel_open_socket(ts.pv, AF_INET6, IPPROTO_TCP, 0, socket_done, NULL), 0);
	d_recv(&f, &h, NULL, NULL);
	d_result(&f, NE_MSG_TUNNEL_SOCKET_FD, h.id, -EADDRINUSE, "port taken", NULL, 0);
	assert_int_equal(ne_extension_dispatch(f.ext), 0);
	assert_int_equal(ts.sock_calls, 2);
	assert_int_equal(ts.sock_fd, -1);
	assert_int_equal(ts.sock_error, -EADDRINUSE);
	assert_int_equal(ne_tunnel_open_socket(ts.pv, AF_PACKET, IPPROTO_UDP, 0, socket_done, NULL), -EINVAL);
	assert_int_equal(ne_tunnel_open_socket(ts.pv, AF_INET, IPPROTO_ICMP, 0, socket_done, NULL), -EINVAL);
	/* Reasserting and cancel frames. */
	assert_int_equal(ne_tunnel_set_reasserting(ts.pv, true), 0);
	len = d_recv(&f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_TUNNEL_STATE);
	assert_int_equal(ne_msg_tunnel_state_decode(frame + NE_WIRE_HDR_LEN, len, &st), 0);
	assert_int_equal(st.provider, PROVIDER);
	assert_true(st.reasserting);
	assert_int_equal(ne_tunnel_cancel(ts.pv, -ECONNRESET, "gone"), 0);
	len = d_recv(&f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_TUNNEL_CANCEL);
	assert_int_equal(ne_msg_tunnel_cancel_decode(frame + NE_WIRE_HDR_LEN, len, &cm), 0);
	assert_int_equal(cm.error, -ECONNRESET);
	assert_memory_equal(cm.message.p, "gone", 4);
	assert_int_equal(ne_tunnel_cancel(ts.pv, 5, "bad"), -EINVAL);
	/* A socket still asked for when the stop comes: -ECANCELED. */
	assert_int_equal(ne_tunnel_open_socket(ts.pv, AF_INET, IPPROTO_UDP, 0, socket_done, NULL), 0);
	d_recv(&f, &h, NULL, NULL);
	fx_stop(&f);
	assert_int_equal(ts.sock_calls, 3);
	assert_int_equal(ts.sock_error, -ECANCELED);
	assert_int_equal(ne_tunnel_set_reasserting(ts.pv, false), -EINVAL);
	fx_close(&f);
}

/* Settings cleared (NULL); a settings RESULT with an error; a device for an unknown
 * provider (its fds are closed, not a fault); a device with fds that do not match count. */
static void test_settings_errors(void **state)
{
	struct ne_msg_tunnel_settings *m = malloc(sizeof(*m));
	struct ne_msg_tunnel_device dev = { .provider = 99, .ifname = { "x", 1 }, .count = 1 };
	struct ne_tunnel_settings bad = { .size = sizeof(bad), .n_addresses = 1 };
	struct ne_wbuf b;
	struct ne_msg_hdr h;
	struct fx f;
	size_t len;
	int q[2];
	char c;

	(void)state;
	assert_non_null(m);
	fx_open(&f);
	assert_int_equal(ne_tunnel_set_network_settings(ts.pv, &bad, settings_done, NULL), -EINVAL);
	bad.n_addresses = 0;
	bad.queues = 3;
	assert_int_equal(ne_tunnel_set_network_settings(ts.pv, &bad, settings_done, NULL), -EINVAL);
	assert_int_equal(ne_tunnel_set_network_settings(ts.pv, NULL, settings_done, NULL), 0);
	len = d_recv(&f, &h, NULL, NULL);
	assert_int_equal(h.type, NE_MSG_TUNNEL_SETTINGS);
	assert_int_equal(ne_msg_tunnel_settings_decode(frame + NE_WIRE_HDR_LEN, len, m), 0);
	assert_int_equal(m->flags, NE_TUNNEL_F_CLEAR);
	d_result(&f, NE_MSG_RESULT, h.id, -EINVAL, "addresses[0]: bad", NULL, 0);
	assert_int_equal(ne_extension_dispatch(f.ext), 0);
	assert_int_equal(ts.done_calls, 2);
	assert_int_equal(ts.done_error, -EINVAL);
	assert_string_equal(ts.done_message, "addresses[0]: bad");
	/* A device for a provider that is gone: fds closed, no fault. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q), 0);
	b = wb();
	d_send(&f, ne_msg_tunnel_device_encode(&b, &dev), &q[0], 1);
	close(q[0]);
	assert_int_equal(ne_extension_dispatch(f.ext), 0);
	assert_int_equal(read(q[1], &c, 1), 0);
	close(q[1]);
	fx_stop(&f);
	fx_close(&f);
	free(m);
}

/* A device whose fd count differs from its count field is a protocol fault. */
static void test_device_fault(void **state)
{
	struct ne_msg_tunnel_device dev = { .provider = PROVIDER, .ifname = { "x", 1 }, .count = 2 };
	struct ne_wbuf b = wb();
	struct fx f;
	int q[2];

	(void)state;
	fx_open(&f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, q), 0);
	d_send(&f, ne_msg_tunnel_device_encode(&b, &dev), &q[0], 1);
	close(q[0]);
	close(q[1]);
	assert_int_equal(ne_extension_dispatch(f.ext), -EBADMSG);
	fx_close(&f);
}

static void test_register(void **state)
{
	struct ne_tunnel_ops none = { .size = sizeof(none) };
	ne_extension *ext;

	(void)state;
	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register_packet_tunnel(ext, &ops, &none, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_packet_tunnel(ext, &ops, NULL, NULL), -EINVAL);
	assert_int_equal(ne_extension_register_packet_tunnel(ext, &ops, &tops, NULL), 0);
	assert_int_equal(ne_extension_register_packet_tunnel(ext, &ops, &tops, NULL), -EEXIST);
	assert_int_equal(ne_tunnel_write_packets(NULL, NULL, 1), -EINVAL);
	assert_null(ne_tunnel_interface_name(NULL));
	ne_extension_free(ext);
}

/* --- the harness ----------------------------------------------------------------------------- */

/* An echo tunnel: every packet read goes back into the tunnel. */
static int h_sock = -1;

static void h_read(ne_provider *p, const ne_tunnel_packet *pk, size_t n, unsigned queue, void *ud)
{
	(void)queue;
	(void)ud;
	assert_int_equal(ne_tunnel_write_packets(p, pk, n), (int)n);
}

static void h_settings_done(ne_provider *p, int error, const char *message, void *ud)
{
	(void)message;
	(void)ud;
	ne_provider_start_done(p, error, NULL);
}

static void h_socket_done(ne_provider *p, int fd, int error, const char *message, void *ud)
{
	static const char *addrs[] = { "10.9.0.1/24" };
	struct ne_tunnel_settings s = { .size = sizeof(s), .addresses = addrs, .n_addresses = 1, .mtu = 1380 };

	(void)message;
	(void)ud;
	h_sock = fd;
	if (fd < 0)
		ne_provider_start_done(p, error, "no socket");
	else
		assert_int_equal(ne_tunnel_set_network_settings(p, &s, h_settings_done, NULL), 0);
}

static void h_start(ne_provider *p, const ne_options *o, void *ud)
{
	(void)o;
	(void)ud;
	assert_int_equal(ne_tunnel_open_socket(p, AF_INET, IPPROTO_UDP, 0, h_socket_done, NULL), 0);
}

static void h_message(ne_provider *p, ne_message *m, const void *data, size_t len, void *ud)
{
	(void)data;
	(void)len;
	(void)ud;
	ne_tunnel_set_reasserting(p, true);
	ne_tunnel_cancel(p, -ETIMEDOUT, "server gone");
	ne_message_reply(m, 0, NULL, 0);
}

static void test_harness(void **state)
{
	static const struct ne_provider_ops hops = { .size = sizeof(hops), .start = h_start, .app_message = h_message };
	static const struct ne_tunnel_ops htops = { .size = sizeof(htops), .read_packets = h_read };
	struct ne_harness_tunnel_info info = { .size = sizeof(info) };
	uint8_t p[256], got[256];
	ne_extension *ext;
	ne_harness *h;
	size_t n, len;
	int err;

	(void)state;
	assert_int_equal(ne_extension_new(&ext), 0);
	assert_int_equal(ne_extension_register_packet_tunnel(ext, &hops, &htops, NULL), 0);
	assert_int_equal(ne_harness_new(ext, &h), 0);
	assert_int_equal(ne_harness_tunnel_send(h, "vpn", 0, "x", 1), -ENOENT);
	assert_int_equal(ne_harness_start(h, "vpn", NE_PROVIDER_PACKET_TUNNEL, NULL, &err), 0);
	assert_int_equal(err, 0);
	assert_true(h_sock >= 0);
	close(h_sock);
	assert_int_equal(ne_harness_tunnel_settings(h, "vpn", &info), 0);
	assert_string_equal(info.interface, "harness1"); /* handles start at 1 */
	assert_int_equal(info.queues, 1);
	assert_int_equal(info.mtu, 1380);
	assert_int_equal(info.n_addresses, 1);
	n = testpkt_v4n(p, IPPROTO_UDP, 7, 8, "echo", 4);
	assert_int_equal(ne_harness_tunnel_send(h, "vpn", 0, p, n), 0);
	assert_int_equal(ne_harness_tunnel_receive(h, "vpn", got, sizeof(got), &len), 0);
	assert_int_equal(len, n);
	assert_memory_equal(got, p, n);
	assert_int_equal(ne_harness_tunnel_send(h, "vpn", 1, p, n), -EINVAL);
	assert_int_equal(ne_harness_message(h, "vpn", "x", 1, &err, NULL, 0, &len), 0);
	assert_int_equal(ne_harness_tunnel_settings(h, "vpn", &info), 0);
	assert_true(info.reasserting);
	assert_true(info.cancelled);
	assert_int_equal(info.cancel_error, -ETIMEDOUT);
	assert_int_equal(ne_harness_stop(h, "vpn", NE_STOP_REASON_PROVIDER_FAILED), 0);
	ne_harness_free(h);
	ne_extension_free(ext);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register),
		cmocka_unit_test(test_plain_and_csum),
		cmocka_unit_test(test_tso4),
		cmocka_unit_test(test_tso6),
		cmocka_unit_test(test_uso),
		cmocka_unit_test(test_big_tso),
		cmocka_unit_test(test_write),
		cmocka_unit_test(test_write_merge),
		cmocka_unit_test(test_socket_state_cancel),
		cmocka_unit_test(test_settings_errors),
		cmocka_unit_test(test_device_fault),
		cmocka_unit_test(test_harness),
	};

	fill_pattern();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
