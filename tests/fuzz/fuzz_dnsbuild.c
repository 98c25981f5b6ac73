/* Fuzz harness for the DNS message builder (src/common/dnsbuild.c), which the DNS proxy runs
 * on every query and answer it relays.
 *
 * For input that dns_parse() accepts: every record copied with dns_builder_copy_rr() gives a
 * message that parses to the same records; dns_answer_rcode() gives a message that parses
 * and answers the input (dns_response_matches), the same when written over the input;
 * dns_truncate() at several limits gives a message that parses and fits; the text of the
 * question's name converts back to its wire form. For input it refuses: dns_answer_formerr_raw() answers exactly when there is a
 * header that is not a response, with 12 bytes that parse. */
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/dns_build.h"
#include "dns.h"

static struct dns_msg msg, msg2;
static uint8_t out[DNS_MSG_MAX];

static void die(const char *why)
{
	fprintf(stderr, "fuzz-dnsbuild: %s\n", why);
	abort();
}

static void refused(const uint8_t *data, size_t size)
{
	int n = dns_answer_formerr_raw(data, size, out, sizeof(out));

	if (size < 12 || (data[2] & 0x80)) {
		if (n != -EBADMSG)
			die("FORMERR for a runt or a response");
		return;
	}
	if (n != 12 || dns_parse(out, 12, &msg2) != 0)
		die("FORMERR answer of the wrong size, or it does not parse");
	if (msg2.h.id != (data[0] << 8 | data[1]) || !msg2.h.qr || msg2.h.rcode != DNS_RCODE_FORMERR ||
	    msg2.h.opcode != ((data[2] >> 3) & 0x0f))
		die("FORMERR answer with the wrong header");
	if (dns_answer_formerr_raw(data, size, out, 11) != -EMSGSIZE)
		die("FORMERR answer written into too small a buffer");
}

static bool same_name(const struct dns_msg *a, size_t oa, const struct dns_msg *b, size_t ob)
{
	uint8_t x[DNS_NAME_MAX], y[DNS_NAME_MAX];
	int lx = dns_name_canonical(a, oa, x, sizeof(x)), ly = dns_name_canonical(b, ob, y, sizeof(y));

	return lx > 0 && lx == ly && memcmp(x, y, (size_t)lx) == 0;
}

/* The copy holds the same records; rdata of types without names byte for byte. */
static void check_copy(void)
{
	struct dns_builder b;
	size_t i;
	int n;

	dns_builder_init(&b, out, sizeof(out), &msg.h);
	for (i = 0; i < msg.n_rr; i++)
		dns_builder_copy_rr(&b, msg.rr[i].section, &msg, &msg.rr[i]);
	n = dns_builder_finish(&b);
	if (n == -EMSGSIZE)
		return; /* decompressed names can outgrow 64 KiB */
	if (n < 0 || dns_parse(out, (size_t)n, &msg2) != 0)
		die("a copy of a valid message fails or does not parse");
	if (msg2.n_rr != msg.n_rr || msg2.h.id != msg.h.id || msg2.has_opt != msg.has_opt)
		die("a copy differs in its header");
	for (i = 0; i < msg.n_rr; i++) {
		const struct dns_rr *a = &msg.rr[i], *c = &msg2.rr[i];
		bool names = a->type == DNS_TYPE_CNAME || a->type == DNS_TYPE_NS || a->type == DNS_TYPE_PTR ||
			     a->type == DNS_TYPE_MX || a->type == DNS_TYPE_SRV || a->type == DNS_TYPE_SOA;

		if (a->section != c->section || a->type != c->type || a->class != c->class ||
		    a->ttl != c->ttl || !same_name(&msg, a->name_off, &msg2, c->name_off))
			die("a copied record differs");
		if (a->section != DNS_SEC_QUESTION && !names &&
		    (a->rdlen != c->rdlen || memcmp(msg.p + a->rdata_off, out + c->rdata_off, a->rdlen) != 0))
			die("opaque rdata changed in a copy");
		if (a->type == DNS_TYPE_CNAME && a->section != DNS_SEC_QUESTION &&
		    !same_name(&msg, a->rdata_off, &msg2, c->rdata_off))
			die("a copied CNAME has another target");
	}
}

/* The same answer written over a copy of the query, as a server reusing its buffer does. */
static void check_answer_in_place(uint8_t rcode, const uint8_t *want, int n)
{
	static uint8_t buf[DNS_MSG_MAX];
	static struct dns_msg q;

	memcpy(buf, msg.p, msg.len);
	if (dns_parse(buf, msg.len, &q) != 0)
		die("a copy does not parse");
	if (dns_answer_rcode(&q, rcode, buf, sizeof(buf)) != n || memcmp(buf, want, (size_t)n) != 0)
		die("an answer written in place differs");
}

static void check_answer(uint8_t rcode)
{
	int n = dns_answer_rcode(&msg, rcode, out, sizeof(out));

	if (n < 0 || dns_parse(out, (size_t)n, &msg2) != 0)
		die("dns_answer_rcode output fails or does not parse");
	if (msg2.h.rcode != rcode || msg2.h.id != msg.h.id || msg2.has_opt != msg.has_opt ||
	    msg2.h.qdcount != (msg.h.qdcount ? 1 : 0))
		die("dns_answer_rcode output has the wrong header");
	/* It answers the input exactly when the input had at most one question. */
	if (dns_response_matches(&msg, &msg2) != (msg.h.qdcount <= 1))
		die("dns_answer_rcode output does not match its query");
	check_answer_in_place(rcode, out, n);
}

static void check_truncate(size_t limit)
{
	int n = dns_truncate(&msg, limit, out, sizeof(out));

	if (limit < 12 && msg.len > limit) {
		if (n != -EMSGSIZE)
			die("truncated below a header");
		return;
	}
	if (n < 0 || (size_t)n > limit || dns_parse(out, (size_t)n, &msg2) != 0)
		die("truncated output fails, is too long or does not parse");
	if (msg.len <= limit) {
		if ((size_t)n != msg.len || memcmp(out, msg.p, msg.len) != 0)
			die("a message that fits was changed");
		return;
	}
	if (!msg2.h.tc || msg2.h.ancount || msg2.h.nscount || msg2.h.arcount > 1 ||
	    msg2.h.id != msg.h.id || (msg2.h.qdcount && msg2.h.qdcount != msg.h.qdcount))
		die("truncated output is not a header, the question and the OPT with TC");
}

static void check_question(void)
{
	char text[DNS_NAME_TEXT_MAX];
	uint8_t w[DNS_NAME_MAX], canon[DNS_NAME_MAX];
	uint16_t type, class;
	int r = dns_question(&msg, text, sizeof(text), &type, &class), n, c;

	if (msg.h.qdcount == 0) {
		if (r != -ENOENT)
			die("a question where there is none");
		return;
	}
	if (r != 0 || type != msg.rr[0].type || class != msg.rr[0].class)
		die("dns_question failed");
	/* Text back to wire: the same name, lower-cased. */
	n = dns_name_from_text(text, w, sizeof(w));
	c = dns_name_canonical(&msg, msg.rr[0].name_off, canon, sizeof(canon));
	if (n < 0 || n != c || memcmp(w, canon, (size_t)n) != 0)
		die("a name's text does not convert back to its wire form");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = { 0, 11, 12, 40, 100, 512, 1232, 4096 };
	uint32_t ttl;
	size_t i, udp;

	if (dns_parse(data, size, &msg) < 0) {
		refused(data, size);
		return 0;
	}
	check_copy();
	check_answer(DNS_RCODE_NOERROR);
	check_answer(size ? data[size - 1] & 0x0f : DNS_RCODE_SERVFAIL);
	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		check_truncate(limits[i]);
	check_truncate(size);
	if (size)
		check_truncate(size - 1);
	check_question();
	udp = dns_udp_limit(&msg);
	if (udp < 512 || udp > 4096 || (!msg.has_opt && udp != 512))
		die("UDP limit out of range");
	ttl = dns_min_ttl(&msg);
	for (i = 0; i < msg.n_rr; i++)
		if ((msg.rr[i].section == DNS_SEC_ANSWER || msg.rr[i].section == DNS_SEC_AUTHORITY) &&
		    ttl > (msg.rr[i].ttl & 0x80000000u ? 0 : msg.rr[i].ttl))
			die("min TTL above a record's TTL");
	if (dns_response_matches(&msg, &msg) != msg.h.qr)
		die("a message does not answer itself");
	return 0;
}

/* A query with EDNS, a rich answer and a negative one, for the standalone driver. */
void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static struct tb b;
	size_t q, at;

	tb_header(&b, 1, TB_RD, 1, 0, 0, 1);
	tb_question(&b, "wWw.Example.COM", DNS_TYPE_A);
	tb_opt_rr(&b, 4096, 0);
	add(b.p, b.n, userdata);

	tb_header(&b, 2, TB_RESPONSE, 1, 4, 1, 1);
	q = tb_question(&b, "example.org", DNS_TYPE_MX);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_MX, 300);
	tb_u16(&b, 10);
	tb_labels(&b, "mail");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_labels(&b, "_sip._tcp");
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_SRV, 300);
	tb_bytes(&b, "\0\0\0\5\x13\xc4", 6);
	tb_labels(&b, "sip");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_cname_rr(&b, q, "alias.example.net", 60);
	tb_ptr(&b, q);
	at = tb_rr(&b, 65280, 300);
	tb_bytes(&b, "\xc0\x0c", 2);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_SOA, 900);
	tb_labels(&b, "ns1");
	tb_ptr(&b, q);
	tb_labels(&b, "hostmaster");
	tb_ptr(&b, q);
	tb_bytes(&b, "\0\0\0\1\0\0\0\2\0\0\0\3\0\0\0\4\0\0\0\5", 20);
	tb_rr_end(&b, at);
	tb_opt_rr(&b, 1232, 1);
	add(b.p, b.n, userdata);

	tb_answer_a(&b, 3, "a.b.c.example", "10.0.0.1");
	add(b.p, b.n, userdata);
}
