/* Fuzz harness for DNS snooping (src/daemon/dnssnoop.c): IP headers, UDP, and TCP
 * reassembly, all from packets anyone can send from port 53.
 *
 * The input is a sequence of packets, each as: 1 byte of time passing (×200 ms, so idle
 * connections age out), 2 bytes of length (big-endian), then the packet (cut short by the
 * end of the input). Each packet is copied to a buffer of exactly its size so that ASan sees
 * a read past its end. Every message handed out goes through dns_parse() and
 * namecache_learn(), as the daemon does; messages must fit a TCP length field and come with
 * a UDP or TCP tuple, and the name cache must stay within its memory bound. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/dns_build.h"
#include "dns.h"
#include "dnssnoop.h"
#include "namecache.h"

#define CACHE_BYTES 4096

struct run {
	struct namecache *nc;
	size_t msgs;
};

static struct dns_msg msg;

static void die(const char *why)
{
	fprintf(stderr, "fuzz-dnssnoop: %s\n", why);
	abort();
}

static void on_msg(const struct pi_tuple *t, const uint8_t *p, size_t len, void *userdata)
{
	if (len > DNS_MSG_MAX || len < 12)
		die("a message of impossible size");
	if ((t->proto != IPPROTO_UDP && t->proto != IPPROTO_TCP) || t->remote_port != 53 ||
	    (t->family != AF_INET && t->family != AF_INET6))
		die("a message with a wrong tuple");
	struct run *run = userdata;
	struct nc_owner owner = { t->local_port, 1 };
	struct namecache_stats st;

	run->msgs++;
	if (dns_parse(p, len, &msg) < 0)
		return;
	if (namecache_learn(run->nc, t->local_port & 1 ? &owner : NULL, &msg, run->msgs) > 0) {
		namecache_get_stats(run->nc, &st);
		if (st.bytes > CACHE_BYTES || st.entries == 0)
			die("the name cache broke its memory bound");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dnssnoop_stats st;
	struct dnssnoop *s;
	struct run run = { NULL, 0 };
	uint64_t now = 0;
	size_t off = 0, n;

	if (namecache_new(CACHE_BYTES, &run.nc) < 0 || dnssnoop_new(on_msg, &run, &s) < 0)
		die("setting up failed");
	while (size - off >= 3) {
		uint8_t *pkt;

		now += (uint64_t)data[off] * 200000;
		n = (size_t)(data[off + 1] << 8 | data[off + 2]);
		off += 3;
		if (n > size - off)
			n = size - off;
		pkt = malloc(n ? n : 1);
		if (!pkt)
			abort();
		if (n)
			memcpy(pkt, data + off, n);
		dnssnoop_packet(s, pkt, n, now);
		free(pkt);
		off += n;
	}
	dnssnoop_get_stats(s, &st);
	if (st.udp_msgs + st.tcp_msgs != run.msgs)
		die("message counters differ from the messages handed out");
	dnssnoop_free(s);
	namecache_free(run.nc);
	return 0;
}

/* Appends one packet record. */
static void rec(struct tb *in, uint8_t dt, const struct tb *pkt)
{
	tb_u8(in, dt);
	tb_u16(in, (uint16_t)pkt->n);
	tb_bytes(in, pkt->p, pkt->n);
}

static void tcp_rec(struct tb *in, uint32_t seq, uint8_t flags, const uint8_t *d, size_t n)
{
	static struct tb l4, pkt;

	tb_tcp(&l4, 53, 41000, seq, flags, d, n);
	tb_ip4(&pkt, "192.0.2.53", "10.0.0.2", IPPROTO_TCP, &l4);
	rec(in, 0, &pkt);
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static const uint8_t ext[] = { IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0 };
	static struct tb in, m1, m2, l4, pkt, payload, stream;
	size_t cut;

	/* UDP over IPv4 and IPv6 (the latter behind a hop-by-hop header). */
	tb_answer_a(&m1, 1, "www.example.com", "93.184.216.34");
	tb_udp(&l4, 53, 40000, m1.p, m1.n);
	tb_ip4(&pkt, "192.0.2.53", "10.0.0.2", IPPROTO_UDP, &l4);
	in.n = 0;
	rec(&in, 0, &pkt);
	add(in.p, in.n, userdata);
	tb_answer_a(&m2, 2, "v6.example", "2001:db8::1");
	tb_udp(&l4, 53, 40000, m2.p, m2.n);
	payload.n = 0;
	tb_bytes(&payload, ext, sizeof(ext));
	tb_bytes(&payload, l4.p, l4.n);
	tb_ip6(&pkt, "2001:db8::53", "2001:db8::2", IPPROTO_HOPOPTS, &payload);
	in.n = 0;
	rec(&in, 0, &pkt);
	add(in.p, in.n, userdata);

	/* TCP: SYN-ACK, two pipelined answers in three segments, FIN. */
	stream.n = 0;
	tb_u16(&stream, (uint16_t)m1.n);
	tb_bytes(&stream, m1.p, m1.n);
	tb_u16(&stream, (uint16_t)m2.n);
	tb_bytes(&stream, m2.p, m2.n);
	cut = 2 + m1.n + 7;
	in.n = 0;
	tcp_rec(&in, 1000, TB_SYN | TB_ACK, NULL, 0);
	tcp_rec(&in, 1001, TB_ACK, stream.p, 1);
	tcp_rec(&in, 1002, TB_ACK, stream.p + 1, cut - 1);
	tcp_rec(&in, 1001 + (uint32_t)cut, TB_ACK | TB_PSH | TB_FIN, stream.p + cut, stream.n - cut);
	add(in.p, in.n, userdata);
}
