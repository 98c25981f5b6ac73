/* Fuzz harness for the DNS message parser (src/common/dns.c), which reads answers from
 * anyone who can send a packet from port 53.
 *
 * Besides what ASan/UBSan catch, it checks what callers rely on once dns_parse() accepted a
 * message: every accessor succeeds on every record, names come out as safe text (only
 * [a-z0-9-_.] and \DDD escapes), an unescaped name is a normalized hostname, two names are
 * equal exactly when their texts are, and a refused message leaves the caller's struct
 * untouched. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../unit/dns_build.h"
#include "dns.h"

static struct dns_msg msg, poisoned;

static void die(const char *why)
{
	fprintf(stderr, "fuzz-dns: %s\n", why);
	abort();
}

static void check_text(const char *t, int len)
{
	char norm[DNS_NAME_TEXT_MAX];
	int i;

	if (len < 0 || (size_t)len >= DNS_NAME_TEXT_MAX || strlen(t) != (size_t)len)
		die("name text has a wrong length");
	for (i = 0; i < len; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.\\", t[i]))
			die("name text has a character it should have escaped");
	if (len && !strchr(t, '\\')) {
		if (dns_name_normalize(t, norm, sizeof(norm)) < 0 || strcmp(norm, t) != 0)
			die("an unescaped name is not a normalized hostname");
		if (!dns_name_matches(t, t))
			die("a name does not match itself");
	}
}

static int name_text(size_t off, char *t)
{
	int len = dns_name_text(&msg, off, t, DNS_NAME_TEXT_MAX);

	if (len < 0)
		die("dns_name_text failed on a validated name");
	check_text(t, len);
	return len;
}

static void check_rr(const struct dns_rr *rr, const char *first)
{
	char t[DNS_NAME_TEXT_MAX];
	const uint8_t *a;
	size_t off;
	int family;

	name_text(rr->name_off, t);
	if (dns_name_equal(&msg, rr->name_off, msg.rr[0].name_off) != (strcmp(t, first) == 0))
		die("dns_name_equal disagrees with the names' texts");
	if (rr->rdata_off + rr->rdlen > msg.len)
		die("rdata outside the message");
	a = dns_rr_addr(&msg, rr, &family);
	if (a && ((family == AF_INET && rr->rdlen != 4) || (family == AF_INET6 && rr->rdlen != 16)))
		die("address of the wrong size");
	if (dns_rr_cname_target(&msg, rr, &off) == 0)
		name_text(off, t);
	else if (rr->type == DNS_TYPE_CNAME && rr->section != DNS_SEC_QUESTION)
		die("a CNAME without a target");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char first[DNS_NAME_TEXT_MAX];
	size_t i;

	memset(&msg, 0xa5, sizeof(msg));
	if (dns_parse(data, size, &msg) < 0) {
		memset(&poisoned, 0xa5, sizeof(poisoned));
		if (memcmp(&msg, &poisoned, sizeof(msg)) != 0)
			die("dns_parse wrote its output on failure");
		return 0;
	}
	if (msg.n_rr != (size_t)msg.h.qdcount + msg.h.ancount + msg.h.nscount + msg.h.arcount)
		die("record count differs from the header's counts");
	if (msg.n_rr == 0)
		return 0;
	name_text(msg.rr[0].name_off, first);
	for (i = 0; i < msg.n_rr; i++)
		check_rr(&msg.rr[i], first);
	return 0;
}

/* Answers of the kinds resolvers send, for the standalone driver and the seed corpus. */
void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static struct tb b;
	size_t q, cdn, at;

	tb_answer_a(&b, 1, "www.example.com", "93.184.216.34");
	add(b.p, b.n, userdata);

	tb_header(&b, 2, TB_RESPONSE, 1, 3, 0, 1);
	q = tb_question(&b, "www.example.com", DNS_TYPE_AAAA);
	cdn = tb_cname_rr(&b, q, "cdn.example.net", 300);
	tb_addr_rr(&b, cdn, "2001:db8::1", 60);
	tb_addr_rr(&b, cdn, "2001:db8::2", 60);
	tb_opt_rr(&b, 1232, 0);
	add(b.p, b.n, userdata);

	/* NXDOMAIN with the zone's SOA in the authority section. */
	tb_header(&b, 3, TB_RESPONSE | DNS_RCODE_NXDOMAIN, 1, 0, 1, 0);
	q = tb_question(&b, "nope.example.com", DNS_TYPE_A);
	tb_ptr(&b, q + 5);
	at = tb_rr(&b, DNS_TYPE_SOA, 900);
	tb_labels(&b, "ns1");
	tb_ptr(&b, q + 5);
	tb_labels(&b, "hostmaster");
	tb_ptr(&b, q + 5);
	tb_u32(&b, 2024010101);
	tb_u32(&b, 7200);
	tb_u32(&b, 3600);
	tb_u32(&b, 1209600);
	tb_u32(&b, 300);
	tb_rr_end(&b, at);
	add(b.p, b.n, userdata);

	/* MX and SRV, compressed, and an opaque HTTPS record. */
	tb_header(&b, 4, TB_RESPONSE, 1, 3, 0, 0);
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
	tb_u16(&b, 0);
	tb_u16(&b, 5);
	tb_u16(&b, 5060);
	tb_labels(&b, "sip");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_HTTPS, 300);
	tb_bytes(&b, "\x00\x01\x00\x00\x01\x00\x03\x02h2", 10);
	tb_rr_end(&b, at);
	add(b.p, b.n, userdata);
}
