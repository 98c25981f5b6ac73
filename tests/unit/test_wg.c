/* The wgtunnel WireGuard engine (examples/wgtunnel): primitives against known answers
 * (computed independently: Python's hashlib.blake2s and hmac, RFC 7693, RFC 7748), the
 * replay window (RFC 6479), allowed IPs, the configuration parser, and two engines talking
 * to each other in memory under a clock the test moves: handshakes, transport, cookies,
 * rekeying, keepalives and the drop counters. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <sodium.h>

#include "wg.h"
#include "wg_allowedips.h"
#include "wg_crypto.h"
#include "wg_noise.h"
#include "wg_replay.h"
#include "wgconf.h"

#define NSEC 1000000000ULL

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	size_t bin_len;

	assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &bin_len, NULL), 0);
	assert_int_equal(bin_len, n);
}

static void assert_hex(const uint8_t *got, size_t n, const char *hex)
{
	uint8_t want[64];

	unhex(hex, want, n);
	assert_memory_equal(got, want, n);
}

/* ---- known answers ------------------------------------------------------------------ */

static void test_hash_constants(void **state)
{
	uint8_t ck[32], h[32], k[32];
	uint8_t pub[32];

	wg_hash2(h, "abc", 3, NULL, 0); /* RFC 7693 appendix B */
	assert_hex(h, 32, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
	wg_hash2(ck, wg_construction, strlen(wg_construction), NULL, 0);
	assert_hex(ck, 32, "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
	wg_hash2(h, ck, 32, wg_identifier, strlen(wg_identifier));
	assert_hex(h, 32, "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
	for (int i = 0; i < 32; i++)
		pub[i] = (uint8_t)(100 + i);
	wg_label_key(k, wg_label_mac1, pub);
	assert_hex(k, 32, "614329af9bf878204a896ec12cbf430fd2f6bba10647dec4df9c14c69e59ead5");
}

static void test_hmac_kdf_mac(void **state)
{
	static const char in[] = "netext wgtunnel kdf input";
	uint8_t key[32], out[32], t1[32], t2[32], t3[32], mac[16];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	wg_hmac(out, key, 32, in, strlen(in));
	assert_hex(out, 32, "2872056d005a571b4e6d80473c04893b8f0dd410a0946ee0290f72f48a7ade96");
	wg_kdf(t1, t2, t3, key, in, strlen(in));
	assert_hex(t1, 32, "60f76be404b4ae896ac6c304eb285e8e52ce2c30bb323947d0b57a2cbcbb60ea");
	assert_hex(t2, 32, "ea62d4665c5d9e5cb3bd9910c4030573572293c0d1e61b96667f368b1a931650");
	assert_hex(t3, 32, "c15ab665484773e0ec59e911548fe2592014867619263ebdb51558635794aafd");
	wg_kdf(out, NULL, NULL, key, in, strlen(in)); /* KDF1 is KDF3's first output */
	assert_memory_equal(out, t1, 32);
	wg_mac(mac, key, 32, "mac input", 9);
	assert_hex(mac, 16, "cd15b4715680ff8852bf47f5e1381753");
	wg_mac(mac, key, 16, "mac input", 9); /* a cookie is a 16-byte key */
	assert_hex(mac, 16, "7cfdfb39da17d8fc26d60b1a1836aabc");
}

static void test_tai64n(void **state)
{
	uint8_t ts[12];

	wg_tai64n(ts, 1234567890ULL * NSEC + 500000000);
	assert_hex(ts, 12, "40000000499602dc1dcd6500");
	wg_tai64n(ts, 0);
	assert_hex(ts, 12, "400000000000000a00000000");
}

static void test_x25519(void **state)
{
	uint8_t a[32], bpub[32], out[32], zero[32] = { 0 };

	/* RFC 7748 §6.1 */
	unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", a, 32);
	unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", bpub, 32);
	assert_int_equal(wg_dh(out, a, bpub), 0);
	assert_hex(out, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
	assert_int_equal(wg_public_from_private(a, out), 0);
	assert_hex(out, 32, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	/* A low-order point gives an all-zero secret: refused. */
	assert_int_equal(wg_dh(out, a, zero), -EINVAL);
}

static void test_aead_nonce(void **state)
{
	uint8_t key[32], n[12] = { 0 }, a[64], b[64], back[48];
	unsigned long long blen;

	randombytes_buf(key, sizeof(key));
	/* The counter is little-endian after four zero bytes. */
	n[4] = 0x02;
	n[5] = 0x01;
	wg_aead_seal(a, key, 0x0102, (const uint8_t *)"0123456789abcdef", 16, NULL, 0);
	crypto_aead_chacha20poly1305_ietf_encrypt(b, &blen, (const uint8_t *)"0123456789abcdef",
						  16, NULL, 0, NULL, n, key);
	assert_int_equal(blen, 32);
	assert_memory_equal(a, b, 32);
	assert_int_equal(wg_aead_open(back, key, 0x0102, a, 32, NULL, 0), 0);
	assert_memory_equal(back, "0123456789abcdef", 16);
	a[3] ^= 1;
	assert_int_equal(wg_aead_open(back, key, 0x0102, a, 32, NULL, 0), -EBADMSG);
}

static void test_base64_keys(void **state)
{
	uint8_t k[32], k2[32];
	char b64[45];

	randombytes_buf(k, sizeof(k));
	wg_key_to_base64(k, b64);
	assert_int_equal(strlen(b64), 44);
	assert_int_equal(wg_key_from_base64(b64, k2), 0);
	assert_memory_equal(k, k2, 32);
	assert_int_equal(wg_key_from_base64("AAAA", k2), -EINVAL);
	b64[43] = 'x'; /* not '=' */
	assert_int_equal(wg_key_from_base64(b64, k2), -EINVAL);
}

/* ---- replay window (RFC 6479) ------------------------------------------------------- */

static void test_replay(void **state)
{
	struct wg_replay r;
	const uint64_t lim = UINT64_MAX - (1ULL << 13);

	wg_replay_init(&r);
	assert_true(wg_replay_check(&r, 0, lim));
	assert_false(wg_replay_check(&r, 0, lim)); /* duplicate */
	assert_true(wg_replay_check(&r, 2, lim));
	assert_true(wg_replay_check(&r, 1, lim)); /* out of order, inside the window */
	assert_false(wg_replay_check(&r, 1, lim));
	/* Far ahead: accepted; what fell out of the window is refused, the edge is not. */
	assert_true(wg_replay_check(&r, 10000, lim));
	assert_false(wg_replay_check(&r, 10000, lim));
	assert_false(wg_replay_check(&r, 3, lim));
	assert_false(wg_replay_check(&r, 10000 - WG_REPLAY_WINDOW - 1, lim));
	assert_true(wg_replay_check(&r, 10000 - WG_REPLAY_WINDOW, lim));
	assert_true(wg_replay_check(&r, 9999, lim));
	/* Sliding by a little keeps the bits that are still inside. */
	assert_true(wg_replay_check(&r, 10100, lim));
	assert_false(wg_replay_check(&r, 9999, lim));
	assert_true(wg_replay_check(&r, 10050, lim));
	/* Every counter of a window accepted once, in reverse. */
	wg_replay_init(&r);
	assert_true(wg_replay_check(&r, 5000, lim));
	for (uint64_t c = 4999; c > 5000 - WG_REPLAY_WINDOW; c--)
		assert_true(wg_replay_check(&r, c, lim));
	for (uint64_t c = 4999; c > 5000 - WG_REPLAY_WINDOW; c--)
		assert_false(wg_replay_check(&r, c, lim));
	/* REJECT_AFTER_MESSAGES */
	assert_false(wg_replay_check(&r, lim, lim));
	assert_true(wg_replay_check(&r, lim - 1, lim));
}

/* ---- allowed IPs ------------------------------------------------------------------- */

static void aip_add(struct wg_allowedips *t, const char *cidr, uint32_t peer)
{
	char buf[64], *slash;
	uint8_t a[16];
	int fam;

	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = strchr(buf, '/');
	*slash = '\0';
	fam = strchr(buf, ':') ? AF_INET6 : AF_INET;
	assert_int_equal(inet_pton(fam, buf, a), 1);
	assert_int_equal(wg_aip_insert(t, fam, a, (uint8_t)atoi(slash + 1), peer), 0);
}

static long aip_find(struct wg_allowedips *t, const char *addr)
{
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
	uint8_t a[16];

	assert_int_equal(inet_pton(fam, addr, a), 1);
	return wg_aip_lookup(t, fam, a);
}

static void test_allowedips(void **state)
{
	struct wg_allowedips t = { 0 };

	aip_add(&t, "10.0.0.0/8", 0);
	aip_add(&t, "10.1.2.3/32", 2);
	aip_add(&t, "10.1.0.0/16", 1);
	aip_add(&t, "10.1.2.99/25", 3); /* host bits are cleared: 10.1.2.0/25 */
	aip_add(&t, "2001:db8::/32", 0);
	aip_add(&t, "2001:db8:1::/48", 1);
	aip_add(&t, "::/0", 4);
	assert_int_equal(aip_find(&t, "10.1.2.3"), 2);
	assert_int_equal(aip_find(&t, "10.1.2.4"), 3);
	assert_int_equal(aip_find(&t, "10.1.2.200"), 1);
	assert_int_equal(aip_find(&t, "10.9.9.9"), 0);
	assert_int_equal(aip_find(&t, "11.0.0.1"), -1);
	assert_int_equal(aip_find(&t, "2001:db8:1::5"), 1);
	assert_int_equal(aip_find(&t, "2001:db8:2::5"), 0);
	assert_int_equal(aip_find(&t, "fe80::1"), 4);
	/* The same prefix again moves to the later peer. */
	aip_add(&t, "10.1.0.0/16", 5);
	assert_int_equal(aip_find(&t, "10.1.2.200"), 5);
	aip_add(&t, "0.0.0.0/0", 6);
	assert_int_equal(aip_find(&t, "11.0.0.1"), 6);
	wg_aip_free(&t);
}

/* ---- two engines in memory ----------------------------------------------------------- */

#define QMAX 256

struct dgram {
	struct wg_endpoint to;
	uint8_t buf[2048];
	size_t len;
};

struct side {
	struct wg_engine *e;
	struct wg_endpoint addr;
	uint8_t priv[32], pub[32];
	struct dgram out[QMAX];
	size_t n_out;
	uint8_t in[QMAX][2048];
	size_t in_len[QMAX], n_in;
	unsigned events[8];
};

static uint64_t fake_now = 1000 * NSEC;

static uint64_t cb_now(void *ud)
{
	return fake_now;
}

static uint64_t cb_realtime(void *ud)
{
	return 1700000000ULL * NSEC + fake_now;
}

static void cb_send(void *ud, const struct wg_endpoint *to, const uint8_t *buf, size_t len)
{
	struct side *s = ud;

	assert_true(s->n_out < QMAX);
	assert_true(len <= sizeof(s->out[0].buf));
	s->out[s->n_out].to = *to;
	memcpy(s->out[s->n_out].buf, buf, len);
	s->out[s->n_out++].len = len;
}

static void cb_write(void *ud, uint8_t *pkt, size_t len)
{
	struct side *s = ud;

	assert_true(s->n_in < QMAX);
	memcpy(s->in[s->n_in], pkt, len);
	s->in_len[s->n_in++] = len;
}

static void cb_event(void *ud, size_t peer, enum wg_event ev)
{
	((struct side *)ud)->events[ev]++;
}

static const struct wg_callbacks callbacks = {
	.size = sizeof(struct wg_callbacks), .now = cb_now, .realtime = cb_realtime,
	.send_udp = cb_send, .write_ip = cb_write, .event = cb_event,
};

struct pair {
	struct side a, b;
};

static void set_addr(struct wg_endpoint *ep, const char *ip, uint16_t port)
{
	memset(ep, 0, sizeof(*ep));
	ep->in4.sin_family = AF_INET;
	ep->in4.sin_port = htons(port);
	inet_pton(AF_INET, ip, &ep->in4.sin_addr);
}

static void make_aip(struct wg_allowedip *a, const char *v4, uint8_t cidr)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	inet_pton(AF_INET, v4, a->addr);
	a->cidr = cidr;
}

/* A (10.0.0.1, 192.0.2.1:1001) and B (10.0.0.2, 192.0.2.2:1002), each the other's only peer
 * with a preshared key; A knows B's endpoint, B learns A's. keepalive_a: A's persistent
 * keepalive towards B. */
static struct pair *pair_new(uint16_t keepalive_a)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct wg_allowedip aip_b, aip_a;
	struct wg_peer_config pa = { 0 }, pb = { 0 };
	struct wg_config ca = { 0 }, cb = { 0 };
	uint8_t psk[32];

	assert_non_null(p);
	wg_dh_generate(p->a.priv, p->a.pub);
	wg_dh_generate(p->b.priv, p->b.pub);
	randombytes_buf(psk, sizeof(psk));
	set_addr(&p->a.addr, "192.0.2.1", 1001);
	set_addr(&p->b.addr, "192.0.2.2", 1002);
	make_aip(&aip_b, "10.0.0.2", 32);
	make_aip(&aip_a, "10.0.0.1", 32);
	memcpy(pa.public_key, p->b.pub, 32); /* A's peer is B */
	memcpy(pa.preshared_key, psk, 32);
	pa.endpoint = p->b.addr;
	pa.allowed_ips = &aip_b;
	pa.n_allowed_ips = 1;
	pa.persistent_keepalive = keepalive_a;
	memcpy(pb.public_key, p->a.pub, 32);
	memcpy(pb.preshared_key, psk, 32);
	pb.allowed_ips = &aip_a;
	pb.n_allowed_ips = 1;
	memcpy(ca.private_key, p->a.priv, 32);
	ca.peers = &pa;
	ca.n_peers = 1;
	memcpy(cb.private_key, p->b.priv, 32);
	cb.peers = &pb;
	cb.n_peers = 1;
	assert_int_equal(wg_engine_new(&ca, &callbacks, &p->a, &p->a.e), 0);
	assert_int_equal(wg_engine_new(&cb, &callbacks, &p->b, &p->b.e), 0);
	return p;
}

static void pair_free(struct pair *p)
{
	wg_engine_free(p->a.e);
	wg_engine_free(p->b.e);
	free(p);
}

/* Delivers from's datagrams to to; returns how many. */
static size_t deliver(struct side *from, struct side *to)
{
	size_t n = from->n_out;

	for (size_t i = 0; i < n; i++)
		wg_recv_udp(to->e, &from->addr, from->out[i].buf, from->out[i].len);
	memmove(from->out, from->out + n, (from->n_out - n) * sizeof(from->out[0]));
	from->n_out -= n;
	return n;
}

static void pump(struct pair *p)
{
	while (deliver(&p->a, &p->b) + deliver(&p->b, &p->a))
		;
}

static size_t ipv4(uint8_t *pkt, const char *src, const char *dst, size_t payload, uint8_t fill)
{
	size_t len = 20 + payload;

	memset(pkt, 0, 20);
	pkt[0] = 0x45;
	pkt[2] = (uint8_t)(len >> 8);
	pkt[3] = (uint8_t)len;
	pkt[8] = 64;
	pkt[9] = 17;
	inet_pton(AF_INET, src, pkt + 12);
	inet_pton(AF_INET, dst, pkt + 16);
	memset(pkt + 20, fill, payload);
	return len;
}

static struct wg_counters counters(struct side *s)
{
	struct wg_counters c;

	wg_get_counters(s->e, &c);
	return c;
}

static bool session(struct side *s)
{
	struct wg_peer_status st;

	assert_int_equal(wg_peer_status(s->e, 0, &st), 0);
	return st.has_session;
}

/* A sends one packet to B; B must deliver exactly it. */
static void a_to_b(struct pair *p, size_t payload, uint8_t fill)
{
	uint8_t pkt[1500];
	size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.2", payload, fill);
	size_t before = p->b.n_in;

	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	pump(p);
	assert_int_equal(p->b.n_in, before + 1);
	assert_int_equal(p->b.in_len[before], len);
	assert_memory_equal(p->b.in[before], pkt, len);
}

static void b_to_a(struct pair *p, size_t payload, uint8_t fill)
{
	uint8_t pkt[1500];
	size_t len = ipv4(pkt, "10.0.0.2", "10.0.0.1", payload, fill);
	size_t before = p->a.n_in;

	assert_int_equal(wg_send_ip(p->b.e, pkt, len), 0);
	pump(p);
	assert_int_equal(p->a.n_in, before + 1);
	assert_memory_equal(p->a.in[before], pkt, len);
}

static void test_handshake_and_transport(void **state)
{
	struct pair *p = pair_new(0);
	struct wg_peer_status st;
	struct wg_counters ca, cb;

	/* The first packet waits for the handshake, which pump completes. */
	a_to_b(p, 100, 0xab);
	assert_int_equal(p->a.events[WG_EV_SESSION_INITIATOR], 1);
	assert_int_equal(p->b.events[WG_EV_SESSION_RESPONDER], 1);
	assert_int_equal(p->b.events[WG_EV_SESSION_CONFIRMED], 1);
	assert_true(session(&p->a) && session(&p->b));
	/* B learnt A's endpoint from the initiation. */
	assert_int_equal(wg_peer_status(p->b.e, 0, &st), 0);
	assert_int_equal(st.endpoint.in4.sin_port, htons(1001));
	for (int i = 0; i < 20; i++) {
		a_to_b(p, (size_t)i * 37, (uint8_t)i);
		b_to_a(p, (size_t)i * 41 + 1, (uint8_t)(i + 100));
	}
	ca = counters(&p->a);
	cb = counters(&p->b);
	assert_int_equal(ca.handshakes_sent, 1);
	assert_int_equal(ca.handshakes_completed, 1);
	assert_int_equal(cb.handshakes_received, 1);
	assert_int_equal(ca.tx_packets, 21);
	assert_int_equal(cb.rx_packets, 21);
	assert_int_equal(ca.rx_packets, 20);
	assert_int_equal(cb.drop_decrypt + cb.drop_replay + cb.drop_bad_mac1, 0);
	/* No peer for the destination. */
	{
		uint8_t pkt[64];
		size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.77", 10, 0);

		assert_int_equal(wg_send_ip(p->a.e, pkt, len), -ENETUNREACH);
		assert_int_equal(counters(&p->a).drop_no_peer, 1);
	}
	pair_free(p);
}

static void test_encrypt_inplace(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t buf[WG_HEADROOM + 1500 + WG_OVERHEAD];
	struct wg_endpoint to;
	size_t len, out_len;

	a_to_b(p, 10, 1);
	len = ipv4(buf + WG_HEADROOM, "10.0.0.1", "10.0.0.2", 33, 7);
	assert_int_equal(wg_encrypt_inplace(p->a.e, buf, WG_HEADROOM + len + 4, len, &out_len,
					    &to), -ENOBUFS);
	assert_int_equal(wg_encrypt_inplace(p->a.e, buf, sizeof(buf), len, &out_len, &to), 0);
	/* Padded to 16: 53 → 64, plus header and tag. */
	assert_int_equal(out_len, 16 + 64 + 16);
	assert_int_equal(to.in4.sin_port, htons(1002));
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, buf, out_len), 0);
	assert_int_equal(p->b.in_len[p->b.n_in - 1], len);
	/* From a read-only packet, and back without write_ip (the batch paths). */
	{
		uint8_t src[200], out[WG_HEADROOM + 200 + WG_OVERHEAD], *pkt;
		size_t plen, before = p->b.n_in;

		len = ipv4(src, "10.0.0.1", "10.0.0.2", 100, 9);
		assert_int_equal(wg_encrypt_into(p->a.e, src, len, out, sizeof(out), &out_len, &to),
				 0);
		assert_int_equal(wg_decrypt_inplace(p->b.e, &p->a.addr, out, out_len, &pkt, &plen),
				 1);
		assert_int_equal(p->b.n_in, before);
		assert_int_equal(plen, len);
		assert_memory_equal(pkt, src, len);
	}
	pair_free(p);
}

static void test_replay_engine(void **state)
{
	struct pair *p = pair_new(0);
	struct dgram d[3];
	uint8_t pkt[100], copy[2048];
	size_t len;

	a_to_b(p, 10, 1);
	for (int i = 0; i < 3; i++) {
		len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 20, (uint8_t)i);
		assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	}
	assert_int_equal(p->a.n_out, 3);
	memcpy(d, p->a.out, sizeof(d));
	p->a.n_out = 0;
	/* Out of order is fine; each only once. */
	size_t before = p->b.n_in;
	for (int i = 2; i >= 0; i--) {
		memcpy(copy, d[i].buf, d[i].len);
		assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, copy, d[i].len), 0);
	}
	assert_int_equal(p->b.n_in, before + 3);
	memcpy(copy, d[1].buf, d[1].len);
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, copy, d[1].len), -EALREADY);
	assert_int_equal(counters(&p->b).drop_replay, 1);
	/* A forged tag fails authentication and never reaches the window. */
	memcpy(copy, d[0].buf, d[0].len);
	copy[d[0].len - 1] ^= 1;
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, copy, d[0].len), -EBADMSG);
	assert_int_equal(counters(&p->b).drop_decrypt, 1);
	pair_free(p);
}

static void test_bad_input_counters(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t pkt[100], init[WG_INIT_LEN], junk[64] = { WG_MSG_DATA };
	size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 10, 0);
	struct wg_counters c;

	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	assert_int_equal(p->a.n_out, 1);
	memcpy(init, p->a.out[0].buf, WG_INIT_LEN);
	init[50] ^= 1; /* MAC1 no longer matches */
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, init, WG_INIT_LEN), -EBADMSG);
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, init, 100), -EINVAL);
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, junk, 3), -EINVAL);
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, junk, sizeof(junk)), -ENOENT);
	junk[0] = 9;
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, junk, sizeof(junk)), -EINVAL);
	c = counters(&p->b);
	assert_int_equal(c.drop_bad_mac1, 1);
	assert_int_equal(c.drop_malformed, 3);
	assert_int_equal(c.drop_unknown_index, 1);
	/* The untouched initiation still works, once: a replayed one is refused by timestamp. */
	memcpy(init, p->a.out[0].buf, WG_INIT_LEN);
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, init, WG_INIT_LEN), 0);
	fake_now += NSEC;
	memcpy(init, p->a.out[0].buf, WG_INIT_LEN);
	assert_int_equal(wg_recv_udp(p->b.e, &p->a.addr, init, WG_INIT_LEN), -EALREADY);
	assert_int_equal(counters(&p->b).drop_replay, 1);
	pair_free(p);
}

static void test_allowed_source(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t pkt[100];
	size_t len, before;

	a_to_b(p, 10, 1);
	before = p->b.n_in;
	/* Routed by its destination, but B does not let A use 10.0.0.99. */
	len = ipv4(pkt, "10.0.0.99", "10.0.0.2", 10, 0);
	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	pump(p);
	assert_int_equal(p->b.n_in, before);
	assert_int_equal(counters(&p->b).drop_allowed_ip, 1);
	/* Not IP at all: dropped as malformed by the receiver, too. */
	pair_free(p);
}

static void test_cookie(void **state)
{
	struct pair *p = pair_new(0);
	struct wg_counters ca, cb;
	uint8_t pkt[100];
	size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 10, 0);

	wg_set_under_load(p->b.e, true);
	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	pump(p); /* initiation without MAC2 → cookie reply */
	cb = counters(&p->b);
	ca = counters(&p->a);
	assert_int_equal(cb.drop_needs_cookie, 1);
	assert_int_equal(cb.cookies_sent, 1);
	assert_int_equal(ca.cookies_received, 1);
	assert_false(session(&p->a));
	/* The retransmission carries MAC2 with the cookie and is accepted under load. */
	fake_now += 6 * NSEC;
	wg_tick(p->a.e, fake_now);
	pump(p);
	assert_true(session(&p->a));
	assert_int_equal(p->b.n_in, 1); /* the staged packet arrived */
	cb = counters(&p->b);
	assert_int_equal(cb.drop_needs_cookie, 1);
	assert_int_equal(cb.handshakes_received, 1);
	/* A forged cookie reply (wrong receiver index / wrong key) is dropped. */
	{
		uint8_t fake[WG_COOKIE_LEN] = { WG_MSG_COOKIE };

		assert_int_equal(wg_recv_udp(p->a.e, &p->b.addr, fake, sizeof(fake)), -ENOENT);
	}
	pair_free(p);
}

static void test_load_threshold(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t init[WG_INIT_LEN];
	uint8_t pkt[100];
	size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 10, 0);

	/* Replays of one valid initiation: past the default 1000 a second the engine demands
	 * cookies instead of doing Diffie-Hellman. */
	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	memcpy(init, p->a.out[0].buf, WG_INIT_LEN);
	for (int i = 0; i < 1100; i++) {
		uint8_t copy[WG_INIT_LEN];

		memcpy(copy, init, sizeof(copy));
		wg_recv_udp(p->b.e, &p->a.addr, copy, sizeof(copy));
	}
	assert_true(counters(&p->b).cookies_sent >= 99);
	pair_free(p);
}

static void test_responder_waits_for_confirmation(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t pkt[100];
	size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 10, 0);

	/* A's initiation reaches B, B's response reaches A, A's first packet is held back. */
	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	deliver(&p->a, &p->b);
	assert_false(session(&p->b)); /* "next" only */
	deliver(&p->b, &p->a);
	assert_true(session(&p->a));
	/* B's own packet waits: it may not use an unconfirmed session. */
	len = ipv4(pkt, "10.0.0.2", "10.0.0.1", 10, 0);
	assert_int_equal(wg_send_ip(p->b.e, pkt, len), 0);
	assert_int_equal(p->b.n_out, 0);
	pump(p); /* A's staged packet confirms; B flushes its own */
	assert_true(session(&p->b));
	assert_int_equal(p->a.n_in, 1);
	assert_int_equal(p->b.n_in, 1);
	pair_free(p);
}

static void test_rekey_after_time(void **state)
{
	struct pair *p = pair_new(0);

	a_to_b(p, 10, 1);
	/* Past REKEY_AFTER_TIME the initiator's next packet still goes out, and a handshake
	 * follows it. */
	fake_now += 121 * NSEC;
	a_to_b(p, 10, 2);
	assert_int_equal(counters(&p->a).handshakes_completed, 2);
	b_to_a(p, 10, 3);
	/* Past REJECT_AFTER_TIME nothing is sent with old keys: staged, handshake, delivered. */
	fake_now += 181 * NSEC;
	a_to_b(p, 10, 4);
	assert_int_equal(counters(&p->a).handshakes_completed, 3);
	/* The responder does not rekey on time by itself (only the initiator does)... */
	assert_int_equal(counters(&p->b).handshakes_sent, 3); /* its three responses */
	fake_now += 121 * NSEC;
	b_to_a(p, 10, 5);
	assert_int_equal(counters(&p->b).handshakes_sent, 3);
	/* ...and nobody may use keys past REJECT_AFTER_TIME: B's packet waits for a new
	 * handshake, which B starts itself. */
	fake_now += 60 * NSEC;
	{
		uint8_t pkt[100];
		size_t len = ipv4(pkt, "10.0.0.2", "10.0.0.1", 10, 6);
		uint64_t tx = counters(&p->b).tx_packets;

		assert_int_equal(wg_send_ip(p->b.e, pkt, len), 0);
		assert_int_equal(counters(&p->b).tx_packets, tx);
		assert_int_equal(counters(&p->b).handshakes_sent, 4);
		pump(p);
		assert_int_equal(counters(&p->b).tx_packets, tx + 1);
	}
	pair_free(p);
}

static void test_retransmit_and_give_up(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t pkt[100];
	size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 10, 0);

	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	assert_int_equal(counters(&p->a).handshakes_sent, 1);
	/* Rate limit: another packet does not send another initiation. */
	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	assert_int_equal(counters(&p->a).handshakes_sent, 1);
	p->a.n_out = 0; /* lost */
	for (int i = 0; i < 20 * 6 * 10; i++) {
		fake_now += NSEC / 10;
		wg_tick(p->a.e, fake_now);
	}
	/* 90 s of attempts every 5 s (+ jitter), then it gives up. */
	assert_in_range(counters(&p->a).handshakes_sent, 17, 19);
	assert_int_equal(p->a.events[WG_EV_HANDSHAKE_GAVE_UP], 1);
	pair_free(p);
}

static void test_keepalive(void **state)
{
	struct pair *p = pair_new(0);

	a_to_b(p, 10, 1);
	/* B received data and sent nothing: after KEEPALIVE_TIMEOUT it sends a keepalive. */
	fake_now += 9 * NSEC;
	wg_tick(p->b.e, fake_now);
	assert_int_equal(p->b.n_out, 0);
	fake_now += 1 * NSEC;
	wg_tick(p->b.e, fake_now);
	assert_int_equal(p->b.n_out, 1);
	assert_int_equal(p->b.out[0].len, 32);
	pump(p);
	assert_int_equal(counters(&p->b).keepalives_tx, 1);
	assert_int_equal(counters(&p->a).keepalives_rx, 1);
	assert_int_equal(p->a.n_in, 0); /* keepalives are not packets */
	/* Only once. */
	fake_now += 11 * NSEC;
	wg_tick(p->b.e, fake_now);
	assert_int_equal(p->b.n_out, 0);
	pair_free(p);
}

static void test_persistent_keepalive(void **state)
{
	struct pair *p = pair_new(25);

	/* With a persistent keepalive, A reaches out by itself (handshake, keepalive). */
	wg_tick(p->a.e, fake_now);
	pump(p);
	assert_true(session(&p->a) && session(&p->b));
	uint64_t k = counters(&p->a).keepalives_tx;
	fake_now += 24 * NSEC;
	wg_tick(p->a.e, fake_now);
	assert_int_equal(counters(&p->a).keepalives_tx, k);
	fake_now += 1 * NSEC;
	wg_tick(p->a.e, fake_now);
	assert_int_equal(counters(&p->a).keepalives_tx, k + 1);
	pump(p);
	pair_free(p);
}

static void test_new_handshake_when_unanswered(void **state)
{
	struct pair *p = pair_new(0);
	uint8_t pkt[100];
	size_t len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 10, 0);

	a_to_b(p, 10, 1);
	b_to_a(p, 10, 2);
	fake_now += NSEC;
	/* A sends, hears nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: new handshake. */
	assert_int_equal(wg_send_ip(p->a.e, pkt, len), 0);
	p->a.n_out = 0;
	fake_now += 14 * NSEC;
	wg_tick(p->a.e, fake_now);
	assert_int_equal(counters(&p->a).handshakes_sent, 1);
	fake_now += 1 * NSEC;
	wg_tick(p->a.e, fake_now);
	assert_int_equal(counters(&p->a).handshakes_sent, 2);
	pump(p);
	assert_int_equal(counters(&p->a).handshakes_completed, 2);
	pair_free(p);
}

static void test_roaming(void **state)
{
	struct pair *p = pair_new(0);
	struct wg_peer_status st;

	a_to_b(p, 10, 1);
	/* A appears at a new address: B answers there after A's next packet. */
	set_addr(&p->a.addr, "198.51.100.7", 4444);
	a_to_b(p, 10, 2);
	assert_int_equal(wg_peer_status(p->b.e, 0, &st), 0);
	assert_int_equal(st.endpoint.in4.sin_port, htons(4444));
	assert_int_equal(p->b.events[WG_EV_ENDPOINT_CHANGED], 2); /* learnt, then moved */
	b_to_a(p, 10, 3);
	assert_int_equal(p->b.n_out, 0);
	pair_free(p);
}

static void test_keys_zeroed(void **state)
{
	struct pair *p = pair_new(0);

	a_to_b(p, 10, 1);
	fake_now += 3 * 180 * NSEC;
	wg_tick(p->a.e, fake_now);
	assert_int_equal(p->a.events[WG_EV_KEYS_ZEROED], 1);
	assert_false(session(&p->a));
	pair_free(p);
}

/* ---- threads ------------------------------------------------------------------------- */

/* A and B wired back to back: a datagram is handed to the other engine at once, from the
 * sending thread (copied first, as a socket would). Several threads send from A, one from
 * B, and a ticker moves the clock fast enough to force rekeying under traffic. */
#define T_SENDERS 4
#define T_PACKETS 3000

static _Atomic uint64_t t_clock = 1000 * NSEC;
static _Atomic uint64_t t_delivered[2];
static struct wg_engine *t_engines[2];
static atomic_bool t_stop;

static uint64_t t_now(void *ud)
{
	return atomic_load(&t_clock);
}

static void t_send(void *ud, const struct wg_endpoint *to, const uint8_t *buf, size_t len)
{
	int self = (int)(intptr_t)ud;
	uint8_t copy[2048];
	struct wg_endpoint from = { 0 };

	assert_true(len <= sizeof(copy));
	memcpy(copy, buf, len);
	set_addr(&from, self ? "192.0.2.2" : "192.0.2.1", (uint16_t)(1001 + self));
	wg_recv_udp(t_engines[!self], &from, copy, len);
}

static void t_write(void *ud, uint8_t *pkt, size_t len)
{
	atomic_fetch_add(&t_delivered[(intptr_t)ud], 1);
}

static const struct wg_callbacks t_callbacks = {
	.size = sizeof(struct wg_callbacks), .now = t_now, .realtime = cb_realtime,
	.send_udp = t_send, .write_ip = t_write,
};

static void *t_sender(void *arg)
{
	int self = (int)(intptr_t)arg;
	uint8_t pkt[200];
	size_t len = ipv4(pkt, self ? "10.0.0.2" : "10.0.0.1", self ? "10.0.0.1" : "10.0.0.2",
			  100, 0x5a);

	for (int i = 0; i < T_PACKETS; i++)
		wg_send_ip(t_engines[self], pkt, len);
	return NULL;
}

static void *t_ticker(void *arg)
{
	while (!atomic_load(&t_stop)) {
		uint64_t now = atomic_fetch_add(&t_clock, NSEC / 2) + NSEC / 2;

		wg_tick(t_engines[0], now);
		wg_tick(t_engines[1], now);
		usleep(200);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct pair *p = pair_new(0);
	pthread_t senders[T_SENDERS + 1], ticker;
	struct wg_counters ca, cb;

	/* Reuse pair_new's keys and configuration, with the threaded callbacks. */
	wg_engine_free(p->a.e);
	wg_engine_free(p->b.e);
	{
		struct wg_allowedip aip_b, aip_a;
		struct wg_peer_config pa = { 0 }, pb = { 0 };
		struct wg_config ca_ = { .peers = &pa, .n_peers = 1 }, cb_ = { .peers = &pb, .n_peers = 1 };

		make_aip(&aip_b, "10.0.0.2", 32);
		make_aip(&aip_a, "10.0.0.1", 32);
		memcpy(pa.public_key, p->b.pub, 32);
		pa.endpoint = p->b.addr;
		pa.allowed_ips = &aip_b;
		pa.n_allowed_ips = 1;
		memcpy(pb.public_key, p->a.pub, 32);
		pb.endpoint = p->a.addr;
		pb.allowed_ips = &aip_a;
		pb.n_allowed_ips = 1;
		memcpy(ca_.private_key, p->a.priv, 32);
		memcpy(cb_.private_key, p->b.priv, 32);
		assert_int_equal(wg_engine_new(&ca_, &t_callbacks, (void *)0, &t_engines[0]), 0);
		assert_int_equal(wg_engine_new(&cb_, &t_callbacks, (void *)1, &t_engines[1]), 0);
	}
	assert_int_equal(pthread_create(&ticker, NULL, t_ticker, NULL), 0);
	for (intptr_t i = 0; i <= T_SENDERS; i++)
		assert_int_equal(pthread_create(&senders[i], NULL, t_sender,
						(void *)(intptr_t)(i == T_SENDERS)), 0);
	for (int i = 0; i <= T_SENDERS; i++)
		pthread_join(senders[i], NULL);
	atomic_store(&t_stop, true);
	pthread_join(ticker, NULL);
	wg_get_counters(t_engines[0], &ca);
	wg_get_counters(t_engines[1], &cb);
	if (getenv("TEST_WG_VERBOSE")) {
		const uint64_t *x = (const uint64_t *)&ca, *y = (const uint64_t *)&cb;

		for (size_t i = 0; i < sizeof(ca) / 8; i++)
			fprintf(stderr, "counter %zu: a %llu b %llu\n", i, (unsigned long long)x[i],
				(unsigned long long)y[i]);
	}
	/* Each side delivered what the other encrypted, nothing failed authentication, and
	 * sessions were renewed under traffic. */
	assert_int_equal(cb.rx_packets, atomic_load(&t_delivered[1]));
	assert_int_equal(ca.rx_packets, atomic_load(&t_delivered[0]));
	/* What was encrypted and not delivered met a session that had just expired or been
	 * replaced (the clock runs fast here), or came too late for the replay window. (Unknown
	 * indices also count responses to abandoned crossing initiations.) */
	assert_true(cb.rx_packets <= ca.tx_packets && ca.rx_packets <= cb.tx_packets);
	assert_true(cb.rx_packets + cb.drop_unknown_index + cb.drop_replay >= ca.tx_packets);
	assert_true(ca.rx_packets + ca.drop_unknown_index + ca.drop_replay >= cb.tx_packets);
	assert_true(cb.drop_unknown_index + cb.drop_replay < ca.tx_packets / 100);
	assert_true(cb.rx_packets > T_SENDERS * T_PACKETS / 2);
	assert_int_equal(ca.drop_decrypt + cb.drop_decrypt, 0);
	assert_int_equal(ca.drop_allowed_ip + cb.drop_allowed_ip, 0);
	assert_true(ca.handshakes_completed + cb.handshakes_completed >= 2);
	wg_engine_free(t_engines[0]);
	wg_engine_free(t_engines[1]);
	p->a.e = p->b.e = NULL;
	pair_free(p);
}

/* ---- configuration parser ------------------------------------------------------------ */

static const char good_conf[] =
	"# a comment\n"
	"[Interface]\n"
	"  privatekey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=  # inline comment\n"
	"ListenPort=51820\n"
	"Address = 10.77.0.1/24, fd77::1/64\n"
	"Address = 10.78.0.1\n"
	"DNS = 10.77.0.53, fd77::53, corp.example, lab.example\n"
	"MTU = 1380\n"
	"FwMark = 0x1234\n"
	"Table = off\n"
	"PostUp = iptables -A FORWARD -i %i -j ACCEPT\n"
	"\n"
	"[Peer]\n"
	"PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
	"PresharedKey = FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=\n"
	"Endpoint = 192.95.5.67:1234\n"
	"AllowedIPs = 10.192.122.3/32, 10.192.124.1/24\n"
	"AllowedIPs = ::/0\n"
	"PersistentKeepalive = 25\n"
	"[peer]\n"
	"PublicKey = TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=\n"
	"Endpoint = [2607:5300:60:6b0::c05f:543]:2468\n"
	"AllowedIPs = 10.10.10.230/32\n";

static void test_conf_good(void **state)
{
	struct wgconf *c;
	char err[256];
	const struct wg_peer_config *p;

	assert_int_equal(wgconf_parse(good_conf, strlen(good_conf), "good", &c, err,
				      sizeof(err)), 0);
	assert_int_equal(c->wg.listen_port, 51820);
	assert_int_equal(c->n_addresses, 3);
	assert_int_equal(c->addresses[0].family, AF_INET);
	assert_int_equal(c->addresses[0].prefix, 24);
	assert_int_equal(c->addresses[1].family, AF_INET6);
	assert_int_equal(c->addresses[2].prefix, 32);
	assert_int_equal(c->n_dns, 2);
	assert_int_equal(c->n_search, 2);
	assert_string_equal(c->search[1], "lab.example");
	assert_int_equal(c->mtu, 1380);
	assert_int_equal(c->fwmark, 0x1234);
	assert_int_equal(c->n_warnings, 2);
	assert_non_null(strstr(c->warnings[0], "good:10: Table"));
	assert_int_equal(c->wg.n_peers, 2);
	p = &c->wg.peers[0];
	assert_int_equal(p->n_allowed_ips, 3);
	assert_int_equal(p->allowed_ips[2].family, AF_INET6);
	assert_int_equal(p->allowed_ips[2].cidr, 0);
	assert_int_equal(p->persistent_keepalive, 25);
	assert_int_equal(p->endpoint.sa.sa_family, AF_INET);
	assert_int_equal(ntohs(p->endpoint.in4.sin_port), 1234);
	assert_int_not_equal(p->preshared_key[0] | p->preshared_key[1], 0);
	p = &c->wg.peers[1];
	assert_int_equal(p->endpoint.sa.sa_family, AF_INET6);
	assert_int_equal(ntohs(p->endpoint.in6.sin6_port), 2468);
	wgconf_free(c);
}

static void expect_bad(const char *text, const char *msg)
{
	struct wgconf *c = NULL;
	char err[256];

	assert_int_equal(wgconf_parse(text, strlen(text), "bad.conf", &c, err, sizeof(err)),
			 -EINVAL);
	assert_null(c);
	if (!strstr(err, msg))
		fail_msg("error '%s' lacks '%s'", err, msg);
}

#define KEY "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
#define IF "[Interface]\nPrivateKey = " KEY "\n"

/* Host-name endpoints: recorded by the parser (never resolved there), resolved by
 * wgconf_resolve() into the peer's endpoint with the file's port. "localhost" comes from
 * /etc/hosts, so no DNS server is needed. */
static void test_conf_names(void **state)
{
	static const char text[] = IF "[Peer]\nPublicKey = " KEY "\nEndpoint = 1.2.3.4:1\n"
				       "Endpoint = localhost:51999\n"
				       "[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
				       "Endpoint = 10.0.0.1:7\n";
	const struct wg_endpoint *ep;
	struct wgconf *c;
	char err[256];

	assert_int_equal(wgconf_parse(text, strlen(text), "names", &c, err, sizeof(err)), 0);
	assert_int_equal(c->n_names, 1);
	assert_string_equal(c->names[0].host, "localhost");
	assert_int_equal(c->names[0].peer, 0);
	assert_int_equal(c->names[0].port, 51999);
	assert_int_equal(c->names[0].line, 6);
	assert_int_equal(c->wg.peers[0].endpoint.sa.sa_family, AF_UNSPEC); /* not yet */
	assert_int_equal(c->wg.peers[1].endpoint.sa.sa_family, AF_INET);
	assert_int_equal(wgconf_resolve(c, "names", 3000, err, sizeof(err)), 0);
	assert_int_equal(c->n_names, 1); /* kept for messages */
	ep = &c->wg.peers[0].endpoint;
	if (ep->sa.sa_family == AF_INET) {
		assert_int_equal(ntohl(ep->in4.sin_addr.s_addr), INADDR_LOOPBACK);
		assert_int_equal(ntohs(ep->in4.sin_port), 51999);
	} else {
		assert_int_equal(ep->sa.sa_family, AF_INET6);
		assert_true(IN6_IS_ADDR_LOOPBACK(&ep->in6.sin6_addr));
		assert_int_equal(ntohs(ep->in6.sin6_port), 51999);
	}
	assert_int_equal(ntohs(c->wg.peers[1].endpoint.in4.sin_port), 7); /* untouched */
	wgconf_free(c);

	/* A numeric Endpoint after a name replaces it. */
	static const char again[] = IF "[Peer]\nPublicKey = " KEY "\nEndpoint = localhost:1\n"
					"Endpoint = 10.1.1.1:2\n";
	assert_int_equal(wgconf_parse(again, strlen(again), "again", &c, err, sizeof(err)), 0);
	assert_int_equal(c->n_names, 0);
	assert_int_equal(c->wg.peers[0].endpoint.sa.sa_family, AF_INET);
	assert_int_equal(wgconf_resolve(c, "again", 10, err, sizeof(err)), 0);
	wgconf_free(c);
}

static void test_conf_bad(void **state)
{
	expect_bad("[Interface]\nListenPort = 1\n", "bad.conf:2: no PrivateKey");
	expect_bad("[Interface]\nPrivateKey = abc\n", "bad.conf:2: PrivateKey is not a base64");
	expect_bad(IF "ListenPort = 70000\n", "bad.conf:3: ListenPort");
	expect_bad(IF "Address = 10.0.0.1/33\n", "bad.conf:3: Address: '10.0.0.1'");
	expect_bad(IF "MTU = 9x\n", "bad.conf:3: MTU");
	expect_bad(IF "DNS = bad$name\n", "bad.conf:3: DNS");
	expect_bad(IF "Bogus = 1\n", "bad.conf:3: unknown key 'Bogus'");
	expect_bad(IF "[Peer]\nAllowedIPs = 10.0.0.0/8\n", "bad.conf:4: the [Peer] section");
	expect_bad(IF "[Peer]\nPublicKey = " KEY "\nEndpoint = vpn_example!com:51820\n",
		   "bad.conf:5: Endpoint: 'vpn_example!com' is neither an IP address nor a host name");
	expect_bad(IF "[Peer]\nPublicKey = " KEY "\nEndpoint = a..b:51820\n", "bad.conf:5: Endpoint");
	expect_bad(IF "[Peer]\nPublicKey = " KEY "\nEndpoint = vpn.example.com:0\n", "bad.conf:5: Endpoint");
	expect_bad(IF "[Peer]\nPublicKey = " KEY "\nEndpoint = 1.2.3.4\n", "bad.conf:5: Endpoint");
	expect_bad(IF "[Peer]\nPublicKey = " KEY "\nEndpoint = [::1:80\n", "bad.conf:5: Endpoint");
	expect_bad(IF "[Peer]\nPublicKey = " KEY "\nAllowedIPs = 10.0.0.0/8, x\n",
		   "bad.conf:5: AllowedIPs: 'x'");
	expect_bad(IF "[Peer]\nPublicKey = " KEY "\nPersistentKeepalive = -1\n",
		   "bad.conf:5: PersistentKeepalive");
	expect_bad("PrivateKey = " KEY "\n", "bad.conf:1: 'PrivateKey' outside");
	expect_bad(IF "[Peers]\n", "bad.conf:3: unknown section");
	expect_bad(IF "just words\n", "bad.conf:3: expected Key = Value");
	expect_bad(IF "ListenPort =\n", "bad.conf:3: ListenPort has no value");
}

static void test_conf_engine(void **state)
{
	struct wgconf *c;
	struct wg_engine *e;
	char err[256];

	assert_int_equal(wgconf_parse(good_conf, strlen(good_conf), "good", &c, err,
				      sizeof(err)), 0);
	assert_int_equal(wg_engine_new(&c->wg, &callbacks, NULL, &e), 0);
	assert_int_equal(wg_peer_count(e), 2);
	wg_engine_free(e);
	wgconf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_constants),
		cmocka_unit_test(test_hmac_kdf_mac),
		cmocka_unit_test(test_tai64n),
		cmocka_unit_test(test_x25519),
		cmocka_unit_test(test_aead_nonce),
		cmocka_unit_test(test_base64_keys),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_allowedips),
		cmocka_unit_test(test_handshake_and_transport),
		cmocka_unit_test(test_encrypt_inplace),
		cmocka_unit_test(test_replay_engine),
		cmocka_unit_test(test_bad_input_counters),
		cmocka_unit_test(test_allowed_source),
		cmocka_unit_test(test_cookie),
		cmocka_unit_test(test_load_threshold),
		cmocka_unit_test(test_responder_waits_for_confirmation),
		cmocka_unit_test(test_rekey_after_time),
		cmocka_unit_test(test_retransmit_and_give_up),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_persistent_keepalive),
		cmocka_unit_test(test_new_handshake_when_unanswered),
		cmocka_unit_test(test_roaming),
		cmocka_unit_test(test_keys_zeroed),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_conf_good),
		cmocka_unit_test(test_conf_bad),
		cmocka_unit_test(test_conf_names),
		cmocka_unit_test(test_conf_engine),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
