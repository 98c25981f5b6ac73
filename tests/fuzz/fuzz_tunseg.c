/* Fuzz harness for the packet tunnel's packet work (src/lib/tunseg.c): what the kernel reads
 * out of a TUN queue (vnet header + packet, GSO packets cut into segments) and what a provider
 * writes (TCP segments merged into one GSO packet).
 *
 * Input: byte 0 chooses the path (bit 0: with a vnet header; bit 1: the write path), byte 1
 * where the read lands in a batch that already holds packets (so the flush-and-move path runs).
 * Read path: the rest is one read. Besides what ASan/UBSan catch: every packet handed over
 * lies in the batch buffer; each segment of a GSO read parses exactly and has correct
 * checksums. Write path: the rest is packets, each a u16 length and its bytes; a merged run's
 * header, once its checksum is completed as the kernel does, gives a packet that parses, and
 * cutting it again gives back the run's sequence numbers and payloads. */
#include "fuzz.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tunseg.h"

#define CAP (160 * 1024)
#define MAXPK 256
#define IN_MAX 80

static uint8_t buf[CAP];
static ne_tunnel_packet pkts[MAXPK];
static uint8_t merged[TUNSEG_VNET_LEN + PKT_MAX + 64];
static bool gso_read;
static size_t handed;

static void die(const char *why)
{
	fprintf(stderr, "fuzz-tunseg: %s\n", why);
	abort();
}

static void check_flush(struct tunseg_batch *b, void *userdata)
{
	struct pkt_info pi;
	size_t i;

	(void)userdata;
	for (i = 0; i < b->n; i++) {
		const ne_tunnel_packet *p = &b->pkts[i];

		if (p->bytes < b->buf || p->bytes + p->len > b->buf + b->cap || p->len > PKT_MAX)
			die("a packet outside the batch buffer");
		if (!p->len)
			continue; /* a placeholder of the prefilled batch */
		if (tunseg_family(p->bytes, p->len) != p->family)
			die("family differs from the version");
		if (gso_read && (pkt_parse(p->bytes, p->len, false, &pi) < 0 || !pkt_checksums_ok(p->bytes, p->len, &pi)))
			die("a segment that does not parse or has a bad checksum");
	}
	handed += b->n;
	b->n = 0;
	b->used = 0;
}

static void read_path(const uint8_t *data, size_t size, bool vnet, uint8_t at)
{
	struct tunseg_batch b = { .buf = buf, .cap = CAP, .pkts = pkts, .max = MAXPK, .flush = check_flush };
	size_t i;

	if (size > TUNSEG_READ_MAX)
		size = TUNSEG_READ_MAX;
	/* A batch already holding `at` placeholders and some bytes. */
	b.used = (size_t)at * 300;
	if (b.used > CAP - TUNSEG_READ_MAX)
		b.used = CAP - TUNSEG_READ_MAX;
	for (i = 0; i < at % 64; i++)
		pkts[b.n++] = (ne_tunnel_packet){ buf, 0, 0 };
	gso_read = false;
	if (vnet && size >= TUNSEG_VNET_LEN) {
		struct virtio_net_hdr h;

		memcpy(&h, data, sizeof(h));
		gso_read = h.gso_type != VIRTIO_NET_HDR_GSO_NONE;
	}
	memcpy(buf + b.used, data, size);
	tunseg_take(&b, vnet ? TUNSEG_VNET_LEN : 0, size);
	check_flush(&b, NULL);
}

/* Completes the checksum as the kernel does with NEEDS_CSUM, then cuts it again. */
static void recheck(const ne_tunnel_packet *in, size_t k, const struct tunseg_gro *g,
		    const struct virtio_net_hdr *vh, size_t total)
{
	struct tunseg_batch b = { .buf = buf, .cap = CAP, .pkts = pkts, .max = MAXPK, .flush = check_flush };
	uint8_t *p = merged + TUNSEG_VNET_LEN;
	struct pkt_info pi;
	uint16_t c;
	size_t i;

	c = pkt_csum_fold(pkt_csum_add(0, p + vh->csum_start, total - vh->csum_start));
	p[vh->csum_start + vh->csum_offset] = (uint8_t)(c >> 8);
	p[vh->csum_start + vh->csum_offset + 1] = (uint8_t)c;
	if (pkt_parse(p, total, false, &pi) < 0 || !pkt_checksums_ok(p, total, &pi))
		die("a merged packet that does not parse or has a bad checksum");
	memcpy(merged, vh, sizeof(*vh));
	memcpy(buf, merged, TUNSEG_VNET_LEN + total);
	gso_read = true;
	handed = 0;
	tunseg_take(&b, TUNSEG_VNET_LEN, TUNSEG_VNET_LEN + total);
	if (b.n != k)
		die("cutting a merged packet again gives another count");
	for (i = 0; i < k; i++) {
		if (b.pkts[i].len != in[i].len ||
		    memcmp(b.pkts[i].bytes + g->hlen, in[i].bytes + g->hlen, in[i].len - g->hlen) ||
		    memcmp(b.pkts[i].bytes + g->pi.l4_off + 4, in[i].bytes + g->pi.l4_off + 4, 4))
			die("a segment differs from the packet it was merged from");
	}
	check_flush(&b, NULL);
}

static void write_path(const uint8_t *data, size_t size)
{
	static ne_tunnel_packet in[IN_MAX];
	struct virtio_net_hdr vh;
	uint8_t hdr[TUNSEG_HDR_MAX];
	struct tunseg_gro g;
	size_t n = 0, len, k, total, i, off;

	while (size >= 2 && n < IN_MAX) {
		len = (size_t)data[0] << 8 | data[1];
		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		in[n++] = (ne_tunnel_packet){ data, len, 0 };
		data += len;
		size -= len;
	}
	for (i = 0; i < n; i += k) {
		k = tunseg_gro_span(&in[i], n - i, &g);
		if (k < 1 || k > n - i || k > TUNSEG_GRO_MAX)
			die("a span out of range");
		if (k == 1)
			continue;
		if (g.hlen > TUNSEG_HDR_MAX)
			die("a merged header too long");
		total = tunseg_gro_header(&in[i], k, &g, &vh, hdr);
		if (total > PKT_MAX)
			die("a merged packet too long");
		memcpy(merged + TUNSEG_VNET_LEN, hdr, g.hlen);
		off = TUNSEG_VNET_LEN + g.hlen;
		for (size_t j = 0; j < k; j++) {
			memcpy(merged + off, in[i + j].bytes + g.hlen, in[i + j].len - g.hlen);
			off += in[i + j].len - g.hlen;
		}
		if (off != TUNSEG_VNET_LEN + total)
			die("merged length differs from the header's");
		recheck(&in[i], k, &g, &vh, total);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	handed = 0;
	if (data[0] & 2)
		write_path(data + 2, size - 2);
	else
		read_path(data + 2, size - 2, data[0] & 1, data[1]);
	return 0;
}

/* --- seeds ----------------------------------------------------------------------------------- */

static size_t ip_tcp(uint8_t *p, int family, uint32_t seq, size_t payload, uint8_t flags)
{
	size_t l4 = family == AF_INET ? 20 : 40, n = l4 + 20 + payload, i;

	memset(p, 0, n);
	if (family == AF_INET) {
		p[0] = 0x45, p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n, p[8] = 64, p[9] = IPPROTO_TCP;
		p[12] = 198, p[13] = 18, p[15] = 1, p[16] = 198, p[17] = 18, p[19] = 2;
	} else {
		p[0] = 0x60, p[4] = (uint8_t)((n - 40) >> 8), p[5] = (uint8_t)(n - 40), p[6] = IPPROTO_TCP, p[7] = 64;
		p[8] = 0x20, p[9] = 0x01, p[23] = 1, p[24] = 0x20, p[25] = 0x01, p[39] = 2;
	}
	p[l4] = 0x30, p[l4 + 2] = 0x50;
	p[l4 + 4] = (uint8_t)(seq >> 24), p[l4 + 5] = (uint8_t)(seq >> 16);
	p[l4 + 6] = (uint8_t)(seq >> 8), p[l4 + 7] = (uint8_t)seq;
	p[l4 + 12] = 5 << 4, p[l4 + 13] = flags, p[l4 + 14] = 0x40;
	for (i = 0; i < payload; i++)
		p[l4 + 20 + i] = (uint8_t)(i * 13);
	return n;
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static uint8_t in[2 + TUNSEG_VNET_LEN + 8000];
	struct virtio_net_hdr vh = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_size = 1000 };
	size_t n, off;
	int f;

	for (f = 0; f < 2; f++) {
		int family = f ? AF_INET6 : AF_INET;
		size_t l4 = f ? 40 : 20;

		/* A TSO read. */
		in[0] = 1, in[1] = 3;
		vh.gso_type = f ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
		vh.hdr_len = (uint16_t)(l4 + 20), vh.csum_start = (uint16_t)l4, vh.csum_offset = 16;
		memcpy(in + 2, &vh, sizeof(vh));
		n = ip_tcp(in + 2 + TUNSEG_VNET_LEN, family, 77, 3500, 0x19);
		add(in, 2 + TUNSEG_VNET_LEN + n, userdata);
		/* A plain read. */
		in[0] = 0;
		n = ip_tcp(in + 2, family, 5, 100, 0x10);
		add(in, 2 + n, userdata);
		/* A run of three segments and one after a gap, written. */
		in[0] = 2, in[1] = 0;
		off = 2;
		for (int i = 0; i < 4; i++) {
			n = ip_tcp(in + off + 2, family, i < 3 ? 1000 + (uint32_t)i * 500 : 9000, i == 2 ? 300 : 500,
				   i == 2 ? 0x18 : 0x10);
			in[off] = (uint8_t)(n >> 8), in[off + 1] = (uint8_t)n;
			off += 2 + n;
		}
		add(in, off, userdata);
	}
}
