/* DNS snooping on hand-built IP packets: UDP over IPv4 and IPv6 (with extension headers),
 * TCP reassembly (pipelining, segments cut anywhere, gaps, retransmissions, eviction, idle
 * ageing, RST), and malformed headers that must be counted and ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "dns_build.h"
#include "dns.h"
#include "dnssnoop.h"

#define SEC 1000000ULL

struct seen {
	size_t n;
	struct pi_tuple t[8];
	uint8_t msg[8][512];
	size_t len[8];
};

static struct seen seen;
static struct tb pkt, l4, m1, m2;

static void on_msg(const struct pi_tuple *t, const uint8_t *msg, size_t len, void *userdata)
{
	struct seen *s = userdata;

	assert_true(s->n < 8 && len <= sizeof(s->msg[0]));
	s->t[s->n] = *t;
	memcpy(s->msg[s->n], msg, len);
	s->len[s->n++] = len;
}

static struct dnssnoop *snoop(void)
{
	struct dnssnoop *s = NULL;

	memset(&seen, 0, sizeof(seen));
	assert_int_equal(dnssnoop_new(on_msg, &seen, &s), 0);
	return s;
}

static void assert_seen(size_t i, const struct tb *msg)
{
	assert_true(i < seen.n);
	assert_int_equal(seen.len[i], msg->n);
	assert_memory_equal(seen.msg[i], msg->p, msg->n);
}

static void feed(struct dnssnoop *s, uint64_t now)
{
	dnssnoop_packet(s, pkt.p, pkt.n, now);
}

static void udp4(struct dnssnoop *s, uint16_t sport, const struct tb *msg)
{
	tb_udp(&l4, sport, 40000, msg->p, msg->n);
	tb_ip4(&pkt, "192.0.2.53", "10.0.0.2", IPPROTO_UDP, &l4);
	feed(s, 0);
}

static void test_udp4(void **state)
{
	struct dnssnoop *s = snoop();
	struct dnssnoop_stats st;
	uint8_t a[4];

	tb_answer_a(&m1, 1, "www.example.com", "93.184.216.34");
	udp4(s, 53, &m1);
	assert_int_equal(seen.n, 1);
	assert_seen(0, &m1);
	assert_int_equal(seen.t[0].family, AF_INET);
	assert_int_equal(seen.t[0].proto, IPPROTO_UDP);
	assert_int_equal(seen.t[0].local_port, 40000);
	assert_int_equal(seen.t[0].remote_port, 53);
	inet_pton(AF_INET, "10.0.0.2", a);
	assert_memory_equal(&seen.t[0].local.v4, a, 4);
	inet_pton(AF_INET, "192.0.2.53", a);
	assert_memory_equal(&seen.t[0].remote.v4, a, 4);
	/* Not from port 53: ignored. */
	udp4(s, 5353, &m1);
	assert_int_equal(seen.n, 1);
	/* Link-layer padding after the IP packet is not part of it. */
	tb_udp(&l4, 53, 40000, m1.p, m1.n);
	tb_ip4(&pkt, "192.0.2.53", "10.0.0.2", IPPROTO_UDP, &l4);
	tb_u32(&pkt, 0);
	feed(s, 0);
	assert_int_equal(seen.n, 2);
	assert_seen(1, &m1);
	/* A fragment (MF set) is ignored. */
	tb_ip4(&pkt, "192.0.2.53", "10.0.0.2", IPPROTO_UDP, &l4);
	pkt.p[6] = 0x20;
	feed(s, 0);
	assert_int_equal(seen.n, 2);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.packets, 4);
	assert_int_equal(st.udp_msgs, 2);
	assert_int_equal(st.ignored, 2);
	assert_int_equal(st.malformed, 0);
	dnssnoop_free(s);
	(void)state;
}

/* An IPv6 packet whose payload starts with the given extension headers (next-header chain
 * already linked) before the UDP datagram in l4. */
static void ip6_with_ext(uint8_t first_nh, const uint8_t *ext, size_t ext_len)
{
	struct tb payload = { .n = 0 };

	tb_bytes(&payload, ext, ext_len);
	tb_bytes(&payload, l4.p, l4.n);
	tb_ip6(&pkt, "2001:db8::53", "2001:db8::2", first_nh, &payload);
}

static void test_udp6(void **state)
{
	/* hop-by-hop (8 bytes, PadN) → destination options (16 bytes) → atomic fragment → UDP */
	static const uint8_t ext[] = {
		IPPROTO_DSTOPTS, 0, 1, 4, 0, 0, 0, 0,
		IPPROTO_FRAGMENT, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		IPPROTO_UDP, 0, 0, 0, 0, 0, 0, 7,
	};
	struct dnssnoop *s = snoop();
	struct dnssnoop_stats st;
	uint8_t frag[sizeof(ext)];
	uint8_t a[16];

	tb_answer_a(&m1, 2, "v6.example", "2001:db8::1");
	tb_udp(&l4, 53, 50000, m1.p, m1.n);
	tb_ip6(&pkt, "2001:db8::53", "2001:db8::2", IPPROTO_UDP, &l4);
	feed(s, 0);
	assert_int_equal(seen.n, 1);
	assert_seen(0, &m1);
	assert_int_equal(seen.t[0].family, AF_INET6);
	assert_int_equal(seen.t[0].local_port, 50000);
	inet_pton(AF_INET6, "2001:db8::2", a);
	assert_memory_equal(&seen.t[0].local.v6, a, 16);
	inet_pton(AF_INET6, "2001:db8::53", a);
	assert_memory_equal(&seen.t[0].remote.v6, a, 16);

	ip6_with_ext(IPPROTO_HOPOPTS, ext, sizeof(ext));
	feed(s, 0);
	assert_int_equal(seen.n, 2);
	assert_seen(1, &m1);
	/* A real fragment (M set, or an offset) is ignored. */
	memcpy(frag, ext, sizeof(ext));
	frag[24 + 3] = 1;
	ip6_with_ext(IPPROTO_HOPOPTS, frag, sizeof(frag));
	feed(s, 0);
	frag[24 + 3] = 0;
	frag[24 + 2] = 1;
	ip6_with_ext(IPPROTO_HOPOPTS, frag, sizeof(frag));
	feed(s, 0);
	/* An extension header longer than the packet is malformed. */
	memcpy(frag, ext, sizeof(ext));
	frag[9] = 200;
	ip6_with_ext(IPPROTO_HOPOPTS, frag, sizeof(frag));
	feed(s, 0);
	assert_int_equal(seen.n, 2);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.udp_msgs, 2);
	assert_int_equal(st.ignored, 2);
	assert_int_equal(st.malformed, 1);
	dnssnoop_free(s);
	(void)state;
}

/* The TCP stream of two pipelined answers: length, message, length, message. */
static struct tb stream;

static void build_stream(void)
{
	tb_answer_a(&m1, 10, "one.example", "10.0.0.1");
	tb_answer_a(&m2, 11, "two.example", "2001:db8::2");
	stream.n = 0;
	tb_u16(&stream, (uint16_t)m1.n);
	tb_bytes(&stream, m1.p, m1.n);
	tb_u16(&stream, (uint16_t)m2.n);
	tb_bytes(&stream, m2.p, m2.n);
}

static void tcp4(struct dnssnoop *s, uint16_t cport, uint32_t seq, uint8_t flags, const uint8_t *data, size_t n,
		 uint64_t now)
{
	tb_tcp(&l4, 53, cport, seq, flags, data, n);
	tb_ip4(&pkt, "192.0.2.53", "10.0.0.2", IPPROTO_TCP, &l4);
	feed(s, now);
}

/* Stream bytes [from, to) as one segment (ISN 1000: data starts at 1001). */
static void seg(struct dnssnoop *s, uint16_t cport, size_t from, size_t to, uint8_t flags, uint64_t now)
{
	tcp4(s, cport, 1001 + (uint32_t)from, flags | TB_ACK, stream.p + from, to - from, now);
}

static void test_tcp_pipelined(void **state)
{
	struct dnssnoop *s = snoop();
	struct dnssnoop_stats st;
	size_t cut1, cut2;

	build_stream();
	/* Cut inside the first length field and inside the second message. */
	cut1 = 1;
	cut2 = 2 + m1.n + 2 + 5;
	tcp4(s, 41000, 1000, TB_SYN | TB_ACK, NULL, 0, 0);
	seg(s, 41000, 0, cut1, 0, 0);
	assert_int_equal(seen.n, 0);
	seg(s, 41000, cut1, cut2, 0, 0);
	assert_int_equal(seen.n, 1);
	seg(s, 41000, cut2, stream.n, TB_PSH, 0);
	assert_int_equal(seen.n, 2);
	assert_seen(0, &m1);
	assert_seen(1, &m2);
	assert_int_equal(seen.t[1].proto, IPPROTO_TCP);
	assert_int_equal(seen.t[1].local_port, 41000);
	assert_int_equal(seen.t[1].remote_port, 53);
	/* Every pair of cuts, on a connection joined mid-stream (no SYN seen), ending in FIN. */
	for (cut1 = 0; cut1 <= stream.n; cut1 += 3)
		for (cut2 = cut1; cut2 <= stream.n; cut2 += 7) {
			seen.n = 0;
			if (cut1)
				seg(s, 42000, 0, cut1, 0, 0);
			if (cut2 > cut1)
				seg(s, 42000, cut1, cut2, 0, 0);
			seg(s, 42000, cut2, stream.n, TB_FIN, 0);
			assert_int_equal(seen.n, 2);
			assert_seen(0, &m1);
			assert_seen(1, &m2);
		}
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.tcp_resets, 0);
	assert_int_equal(st.malformed, 0);
	dnssnoop_free(s);
	(void)state;
}

static void test_tcp_out_of_order(void **state)
{
	struct dnssnoop *s = snoop();
	struct dnssnoop_stats st;

	build_stream();
	/* A retransmission of bytes already taken is harmless. */
	tcp4(s, 41000, 1000, TB_SYN | TB_ACK, NULL, 0, 0);
	seg(s, 41000, 0, 10, 0, 0);
	seg(s, 41000, 0, 10, 0, 0);
	seg(s, 41000, 10, stream.n, 0, 0);
	assert_int_equal(seen.n, 2);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.tcp_resets, 0);

	/* A gap resets the connection: nothing more comes from it, even once the gap fills. */
	seen.n = 0;
	tcp4(s, 41001, 1000, TB_SYN | TB_ACK, NULL, 0, 0);
	seg(s, 41001, 0, 10, 0, 0);
	seg(s, 41001, 20, stream.n, 0, 0);
	seg(s, 41001, 10, 20, 0, 0);
	seg(s, 41001, 20, stream.n, 0, 0);
	assert_int_equal(seen.n, 0);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.tcp_resets, 1);

	/* So does an overlap. */
	tcp4(s, 41002, 1000, TB_SYN | TB_ACK, NULL, 0, 0);
	seg(s, 41002, 0, 10, 0, 0);
	seg(s, 41002, 5, stream.n, 0, 0);
	assert_int_equal(seen.n, 0);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.tcp_resets, 2);

	/* A new handshake on the same ports starts over. */
	tcp4(s, 41002, 1000, TB_SYN | TB_ACK, NULL, 0, 0);
	seg(s, 41002, 0, stream.n, 0, 0);
	assert_int_equal(seen.n, 2);
	dnssnoop_free(s);
	(void)state;
}

static void test_tcp_limits(void **state)
{
	struct dnssnoop *s = snoop();
	struct dnssnoop_stats st;
	uint16_t p;

	build_stream();
	/* Half a message on the oldest connection, then DNSSNOOP_TCP_CONNS_MAX newer ones:
	 * the oldest goes, and the rest of its message is not taken for a message. */
	seg(s, 30000, 0, 20, 0, 0);
	for (p = 1; p <= DNSSNOOP_TCP_CONNS_MAX; p++)
		tcp4(s, (uint16_t)(30000 + p), 1000, TB_SYN | TB_ACK, NULL, 0, 1);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.tcp_evicted, 1);
	seg(s, 30000, 20, 2 + m1.n, 0, 2);
	assert_int_equal(seen.n, 0);
	/* The newest connections still work (30000 came back and pushed out 30001). */
	seg(s, (uint16_t)(30000 + DNSSNOOP_TCP_CONNS_MAX), 0, stream.n, 0, 3);
	assert_int_equal(seen.n, 2);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.tcp_evicted, 2);

	/* Idle connections age out: the rest of a message after too long is not joined to it. */
	seen.n = 0;
	tcp4(s, 29000, 1000, TB_SYN | TB_ACK, NULL, 0, 10 * SEC);
	seg(s, 29000, 0, 20, 0, 10 * SEC);
	seg(s, 29000, 20, 2 + m1.n, 0, 10 * SEC + DNSSNOOP_TCP_IDLE_USEC - 1);
	assert_int_equal(seen.n, 1);
	seg(s, 29000, 2 + m1.n, 2 + m1.n + 20, 0, 10 * SEC + DNSSNOOP_TCP_IDLE_USEC - 1);
	seg(s, 29000, 2 + m1.n + 20, stream.n, 0, 20 * SEC + 2 * DNSSNOOP_TCP_IDLE_USEC);
	assert_int_equal(seen.n, 1);

	/* RST drops the state at once. */
	seen.n = 0;
	tcp4(s, 28000, 1000, TB_SYN | TB_ACK, NULL, 0, 100 * SEC);
	seg(s, 28000, 0, 20, 0, 100 * SEC);
	tcp4(s, 28000, 1021, TB_RST, NULL, 0, 100 * SEC);
	seg(s, 28000, 20, 2 + m1.n, 0, 100 * SEC);
	assert_int_equal(seen.n, 0);
	dnssnoop_free(s);
	(void)state;
}

/* A message longer than one segment's worth, arriving a byte at a time. */
static void test_tcp_bytewise(void **state)
{
	struct dnssnoop *s = snoop();
	size_t i;

	tb_header(&m1, 1, TB_RESPONSE, 1, 20, 0, 0);
	tb_question(&m1, "many.example", DNS_TYPE_A);
	for (i = 0; i < 20; i++)
		tb_addr_rr(&m1, 12, "10.9.8.7", 60);
	stream.n = 0;
	tb_u16(&stream, (uint16_t)m1.n);
	tb_bytes(&stream, m1.p, m1.n);
	tcp4(s, 41000, 1000, TB_SYN | TB_ACK, NULL, 0, 0);
	for (i = 0; i < stream.n; i++)
		seg(s, 41000, i, i + 1, 0, 0);
	assert_int_equal(seen.n, 1);
	assert_seen(0, &m1);
	/* Two empty "messages" are malformed, not delivered. */
	tcp4(s, 41000, 1001 + (uint32_t)stream.n, TB_ACK, (const uint8_t *)"\0\0\0\0", 4, 0);
	assert_int_equal(seen.n, 1);
	dnssnoop_free(s);
	(void)state;
}

static void test_malformed(void **state)
{
	struct dnssnoop *s = snoop();
	struct dnssnoop_stats st;
	size_t n = 0;

	tb_answer_a(&m1, 1, "www.example.com", "10.0.0.1");
	tb_udp(&l4, 53, 40000, m1.p, m1.n);
#define BAD(edit)                                                                  \
	do {                                                                       \
		tb_ip4(&pkt, "192.0.2.53", "10.0.0.2", IPPROTO_UDP, &l4);          \
		edit;                                                              \
		feed(s, 0);                                                        \
		n++;                                                               \
	} while (0)
	BAD(pkt.n = 0);
	BAD(pkt.n = 19);
	BAD(pkt.p[0] = 0x44);                   /* IHL 4 */
	BAD(pkt.p[0] = 0x4f; pkt.n = 40);       /* IHL 60 > captured */
	BAD(pkt.p[0] = 0x55);                   /* version 5 */
	BAD(pkt.n -= 1);                        /* total length > captured */
	BAD(tb_set16(&pkt, 2, 19));             /* total length < IHL */
	BAD(tb_set16(&pkt, 24, 7));             /* UDP length < 8 */
	BAD(tb_set16(&pkt, 24, (uint16_t)(l4.n + 1)));
	BAD(tb_set16(&pkt, 2, 27));             /* UDP header cut */
	BAD(tb_set16(&pkt, 24, 8 + 11));        /* 11 bytes: no DNS header */
	tb_tcp(&l4, 53, 40000, 1, TB_ACK, m1.p, m1.n);
	BAD(pkt.p[9] = IPPROTO_TCP; pkt.p[32] = 4 << 4);  /* data offset 4 */
	BAD(pkt.p[9] = IPPROTO_TCP; pkt.p[32] = 15 << 4; tb_set16(&pkt, 2, 20 + 40); pkt.n = 60);
	BAD(pkt.p[9] = IPPROTO_TCP; tb_set16(&pkt, 2, 20 + 19));
#undef BAD
	tb_udp(&l4, 53, 40000, m1.p, m1.n);
	tb_ip6(&pkt, "2001:db8::53", "2001:db8::2", IPPROTO_UDP, &l4);
	pkt.n -= 1; /* payload length > captured */
	feed(s, 0);
	n++;
	pkt.n = 39;
	feed(s, 0);
	n++;
	assert_int_equal(seen.n, 0);
	dnssnoop_get_stats(s, &st);
	assert_int_equal(st.malformed, n);
	assert_int_equal(st.packets, n);
	dnssnoop_free(s);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_udp4),
		cmocka_unit_test(test_udp6),
		cmocka_unit_test(test_tcp_pipelined),
		cmocka_unit_test(test_tcp_out_of_order),
		cmocka_unit_test(test_tcp_limits),
		cmocka_unit_test(test_tcp_bytewise),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
