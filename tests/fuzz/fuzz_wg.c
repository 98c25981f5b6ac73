/* Fuzz harness for the wgtunnel WireGuard engine's receive path and its configuration
 * parser (examples/wgtunnel): datagrams come from anyone on the network, configuration files
 * from an operator.
 *
 * Input: the first byte picks the target. Even: the rest is a configuration file. Odd: the
 * rest is a script run against two engines (A, B) that completed a handshake in memory:
 * each step is [op][len][bytes]; ops send raw datagrams to either side, mutate real
 * messages (initiation, response, cookie reply, transport, keepalive) by XOR, truncate or
 * extend them, move the clock and tick, send IP packets, and force "under load".
 *
 * Besides what ASan/UBSan catch, it checks what the engine promises: every datagram given
 * to wg_recv_udp is counted exactly once (delivered, a keepalive, a handshake or cookie
 * accepted, or one drop counter), and a packet B delivers is a whole IPv4/IPv6 packet whose
 * source A may use. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wg.h"
#include "wgconf.h"

#define NSEC 1000000000ULL
#define QMAX 64
#define DMAX 2048

struct dgram {
	uint8_t buf[DMAX];
	size_t len;
};

struct side {
	struct wg_engine *e;
	struct wg_endpoint addr;
	struct dgram out[QMAX];
	size_t n_out;
	const char *allowed_src; /* the one source address the other side may use */
};

/* Real messages captured during setup, mutated by the script. */
enum { T_INIT, T_RESPONSE, T_COOKIE, T_DATA, T_KEEPALIVE, T_COUNT };

static struct side sa, sb;
static struct dgram templates[T_COUNT];
static uint64_t now = 1000 * NSEC;
static uint64_t recv_calls;
static const uint8_t priv_a[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17 };
static const uint8_t priv_b[32] = { 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18 };

static void die(const char *why)
{
	fprintf(stderr, "fuzz-wg: %s\n", why);
	abort();
}

static uint64_t cb_now(void *ud)
{
	return now;
}

static uint64_t cb_realtime(void *ud)
{
	return 1700000000ULL * NSEC + now;
}

static void cb_send(void *ud, const struct wg_endpoint *to, const uint8_t *buf, size_t len)
{
	struct side *s = ud;

	if (len > DMAX)
		die("a datagram longer than any input");
	if (s->n_out == QMAX)
		return; /* a lossy link */
	memcpy(s->out[s->n_out].buf, buf, len);
	s->out[s->n_out++].len = len;
}

static void cb_write(void *ud, uint8_t *pkt, size_t len)
{
	struct side *s = ud;
	uint8_t want[16];
	int fam = strchr(s->allowed_src, ':') ? AF_INET6 : AF_INET;

	inet_pton(fam, s->allowed_src, want);
	if (len >= 20 && pkt[0] >> 4 == 4 && fam == AF_INET) {
		if ((size_t)(pkt[2] << 8 | pkt[3]) != len || memcmp(pkt + 12, want, 4) != 0)
			die("delivered an IPv4 packet with a wrong length or source");
	} else if (len >= 40 && pkt[0] >> 4 == 6 && fam == AF_INET6) {
		if ((size_t)(pkt[4] << 8 | pkt[5]) + 40 != len || memcmp(pkt + 8, want, 16) != 0)
			die("delivered an IPv6 packet with a wrong length or source");
	} else {
		die("delivered something that is not an allowed IP packet");
	}
}

static const struct wg_callbacks callbacks = {
	.size = sizeof(struct wg_callbacks), .now = cb_now, .realtime = cb_realtime,
	.send_udp = cb_send, .write_ip = cb_write,
};

/* Everything a datagram can end up as; one of them moves per wg_recv_udp. */
static uint64_t accounted(struct wg_engine *e)
{
	struct wg_counters c;

	wg_get_counters(e, &c);
	return c.rx_packets + c.keepalives_rx + c.handshakes_received + c.cookies_received +
	       c.drop_bad_mac1 + c.drop_needs_cookie + c.drop_decrypt + c.drop_replay +
	       c.drop_allowed_ip + c.drop_unknown_index + c.drop_malformed + c.drop_unknown_peer;
}

static void recv_one(struct side *from, struct side *to, uint8_t *buf, size_t len)
{
	uint64_t before = accounted(to->e);

	recv_calls++;
	wg_recv_udp(to->e, &from->addr, buf, len);
	if (accounted(to->e) != before + 1)
		die("a datagram was not counted exactly once");
}

static size_t deliver(struct side *from, struct side *to)
{
	size_t n = from->n_out;
	static struct dgram q[QMAX];

	memcpy(q, from->out, n * sizeof(q[0]));
	from->n_out = 0;
	for (size_t i = 0; i < n; i++)
		recv_one(from, to, q[i].buf, q[i].len);
	return n;
}

static void pump(void)
{
	for (int rounds = 0; rounds < 8 && deliver(&sa, &sb) + deliver(&sb, &sa); rounds++)
		;
	sa.n_out = sb.n_out = 0;
}

static size_t ipv4(uint8_t *pkt, const char *src, const char *dst, size_t payload)
{
	size_t len = 20 + payload;

	memset(pkt, 0, len);
	pkt[0] = 0x45;
	pkt[2] = (uint8_t)(len >> 8);
	pkt[3] = (uint8_t)len;
	pkt[8] = 64;
	pkt[9] = 17;
	inet_pton(AF_INET, src, pkt + 12);
	inet_pton(AF_INET, dst, pkt + 16);
	return len;
}

static void set_ep(struct wg_endpoint *ep, const char *ip, uint16_t port)
{
	memset(ep, 0, sizeof(*ep));
	ep->in4.sin_family = AF_INET;
	ep->in4.sin_port = htons(port);
	inet_pton(AF_INET, ip, &ep->in4.sin_addr);
}

static void aip(struct wg_allowedip *a, int fam, const char *addr, uint8_t cidr)
{
	memset(a, 0, sizeof(*a));
	a->family = fam;
	inet_pton(fam, addr, a->addr);
	a->cidr = cidr;
}

static void capture(int t, struct side *s)
{
	if (s->n_out == 0)
		die("setup: a message is missing");
	templates[t] = s->out[s->n_out - 1];
}

/* A and B as in the unit tests; A initiates. Captures each message kind on the way. */
static void setup(void)
{
	struct wg_allowedip aa[2], ab[2];
	struct wg_peer_config pa = { 0 }, pb = { 0 };
	struct wg_config ca = { .peers = &pa, .n_peers = 1 }, cb = { .peers = &pb, .n_peers = 1 };
	uint8_t pkt[64];
	size_t len;

	memset(&sa, 0, sizeof(sa));
	memset(&sb, 0, sizeof(sb));
	now = 1000 * NSEC;
	set_ep(&sa.addr, "192.0.2.1", 1001);
	set_ep(&sb.addr, "192.0.2.2", 1002);
	sa.allowed_src = "10.0.0.2";
	sb.allowed_src = "10.0.0.1";
	aip(&ab[0], AF_INET, "10.0.0.2", 32);
	aip(&ab[1], AF_INET6, "fd00::2", 128);
	aip(&aa[0], AF_INET, "10.0.0.1", 32);
	aip(&aa[1], AF_INET6, "fd00::1", 128);
	memcpy(ca.private_key, priv_a, 32);
	memcpy(cb.private_key, priv_b, 32);
	wg_public_from_private(priv_b, pa.public_key);
	wg_public_from_private(priv_a, pb.public_key);
	pa.endpoint = sb.addr;
	pa.allowed_ips = ab;
	pa.n_allowed_ips = 2;
	pb.allowed_ips = aa;
	pb.n_allowed_ips = 2;
	if (wg_engine_new(&ca, &callbacks, &sa, &sa.e) < 0 ||
	    wg_engine_new(&cb, &callbacks, &sb, &sb.e) < 0)
		die("setup: engines");
	/* Under load first: B answers A's initiation with a cookie reply. */
	wg_set_under_load(sb.e, true);
	len = ipv4(pkt, "10.0.0.1", "10.0.0.2", 8);
	wg_send_ip(sa.e, pkt, len);
	capture(T_INIT, &sa);
	deliver(&sa, &sb);
	capture(T_COOKIE, &sb);
	deliver(&sb, &sa);
	wg_set_under_load(sb.e, false);
	now += 6 * NSEC;
	wg_tick(sa.e, now);
	deliver(&sa, &sb);
	capture(T_RESPONSE, &sb);
	deliver(&sb, &sa);
	capture(T_DATA, &sa); /* the staged packet */
	deliver(&sa, &sb);
	now += 10 * NSEC;
	wg_tick(sb.e, now);
	capture(T_KEEPALIVE, &sb);
	pump();
}

static void teardown(void)
{
	wg_engine_free(sa.e);
	wg_engine_free(sb.e);
	sa.e = sb.e = NULL;
}

/* One step of the script; returns the bytes consumed. */
static size_t step(const uint8_t *d, size_t n)
{
	uint8_t op, buf[DMAX];
	size_t len, tl;
	struct side *to, *from;

	if (n < 2)
		return n;
	op = d[0];
	len = d[1] < n - 2 ? d[1] : n - 2;
	d += 2;
	to = op & 0x80 ? &sa : &sb;
	from = to == &sa ? &sb : &sa;
	switch (op & 7) {
	case 0: /* a raw datagram */
		memcpy(buf, d, len);
		recv_one(from, to, buf, len);
		break;
	case 1: /* a real message XORed with the bytes at an offset */
	case 2: /* a real message truncated or extended */
		tl = templates[(op >> 3) % T_COUNT].len;
		memcpy(buf, templates[(op >> 3) % T_COUNT].buf, tl);
		if ((op & 7) == 1) {
			size_t off = len ? d[0] % (tl ? tl : 1) : 0;

			for (size_t i = 1; i < len && off + i - 1 < tl; i++)
				buf[off + i - 1] ^= d[i];
		} else {
			size_t nl = len ? d[0] * 8u : tl / 2;

			memset(buf + tl, 0, sizeof(buf) - tl);
			if (nl > tl)
				memcpy(buf + tl, d, nl - tl > len ? len : nl - tl);
			tl = nl > sizeof(buf) ? sizeof(buf) : nl;
		}
		recv_one(from, to, buf, tl);
		break;
	case 3: /* time passes (up to ~4 minutes), timers run */
		now += (uint64_t)(len ? d[0] : 1) * NSEC + (len > 1 ? d[1] : 0) * (NSEC / 256);
		wg_tick(sa.e, now);
		wg_tick(sb.e, now);
		break;
	case 4: /* a packet into the tunnel (any bytes: the engine must cope) */
		wg_send_ip(from->e, d, len);
		break;
	case 5:
		wg_set_under_load(to->e, len && (d[0] & 1));
		break;
	case 6: /* a well-formed packet through the tunnel */
		tl = ipv4(buf, from->allowed_src, to->allowed_src, len);
		memcpy(buf + 20, d, len);
		wg_send_ip(from->e, buf, tl);
		break;
	default: /* let the engines talk */
		pump();
		break;
	}
	return 2 + len;
}

static void run_engine(const uint8_t *data, size_t size)
{
	setup();
	while (size) {
		size_t used = step(data, size);

		data += used;
		size -= used;
		/* Whatever the engines said to each other goes through too, minus losses. */
		if (sa.n_out + sb.n_out > QMAX / 2)
			pump();
	}
	pump();
	teardown();
}

static void run_conf(const uint8_t *data, size_t size)
{
	struct wgconf *c = NULL;
	struct wg_engine *e;
	char err[256];

	if (wgconf_parse((const char *)data, size, "fuzz", &c, err, sizeof(err)) < 0) {
		if (c || !err[0])
			die("a failed parse without a message, or with a result");
		return;
	}
	/* What parses must be accepted by the engine. */
	if (wg_engine_new(&c->wg, &callbacks, &sa, &e) < 0)
		die("the engine refused a configuration the parser accepted");
	wg_engine_free(e);
	wgconf_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		run_engine(data + 1, size - 1);
	else
		run_conf(data + 1, size - 1);
	return 0;
}

static const char seed_conf[] =
	"\x00[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"
	"ListenPort = 51820\nAddress = 10.0.0.1/24, fd00::1/64\nDNS = 10.0.0.53, corp.example\n"
	"MTU = 1420\nTable = off\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n"
	"Endpoint = [2001:db8::1]:51820\nAllowedIPs = 10.0.0.2/32, ::/0\nPersistentKeepalive = 25\n";

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	/* Scripts: one step of each kind and each template. */
	static const uint8_t scripts[][12] = {
		{ 1, 0x06, 4, 'p', 'i', 'n', 'g', 0x07, 0 },
		{ 1, 0x01 | 3 << 3, 2, 20, 0xff, 0x07, 0 },
		{ 1, 0x01 | 0 << 3, 2, 100, 0x01 },
		{ 1, 0x02 | 1 << 3, 1, 11 },
		{ 1, 0x01 | 2 << 3, 2, 40, 0x80 },
		{ 1, 0x03, 2, 125, 0, 0x06, 1, 'x', 0x07, 0 },
		{ 1, 0x05, 1, 1, 0x83, 1, 20, 0x07, 0 },
		{ 1, 0x82 | 4 << 3, 1, 4 },
		{ 1, 0x00, 4, 4, 0, 0, 0 },
		{ 1, 0x04, 3, 0x60, 0, 0 },
	};

	add((const uint8_t *)seed_conf, sizeof(seed_conf) - 1, userdata);
	for (size_t i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		add(scripts[i], sizeof(scripts[i]), userdata);
}
