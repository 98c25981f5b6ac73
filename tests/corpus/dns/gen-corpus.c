/* Writes the DNS corpus of tests/corpus/dns (run by make-corpus.sh, not by the build).
 *
 *   gen-corpus hand DIR                                 hand-built messages, valid and not
 *   gen-corpus query SERVER NAME TYPE MODE FILE         one UDP query (MODE: plain, edns,
 *                                                       do), the raw answer into FILE
 *
 * File names say what the differential test (tests/unit/test_dns_ldns.c) expects:
 * ok-* both parsers accept, bad-* both refuse, diff-<why>-* they differ in a documented way;
 * real-* (make-corpus.sh) are answers captured from nsd and dnsmasq. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns.h"
#include "dns_build.h"

static const char *dir;
static struct tb b;

static void save(const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "gen-corpus: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static void save_b(const char *name)
{
	save(name, b.p, b.n);
}

static void soa_rdata(size_t zone, uint32_t minimum)
{
	tb_labels(&b, "ns1");
	tb_ptr(&b, zone);
	tb_labels(&b, "hostmaster");
	tb_ptr(&b, zone);
	tb_u32(&b, 2024010101);
	tb_u32(&b, 7200);
	tb_u32(&b, 3600);
	tb_u32(&b, 1209600);
	tb_u32(&b, minimum);
}

static void opt_cookie(uint16_t udp, uint32_t ttl)
{
	size_t at;

	tb_u8(&b, 0);
	tb_u16(&b, DNS_TYPE_OPT);
	tb_u16(&b, udp);
	tb_u32(&b, ttl);
	at = b.n;
	tb_u16(&b, 0);
	tb_bytes(&b, "\x00\x0a\x00\x08\1\2\3\4\5\6\7\10", 12);
	tb_rr_end(&b, at);
}

/* The kinds of answers resolvers send. */
static void valid(void)
{
	size_t q, at, cdn, i;
	char name[300];

	tb_answer_a(&b, 1, "www.example.com", "93.184.216.34");
	save_b("ok-a");

	tb_header(&b, 2, TB_RESPONSE, 1, 3, 0, 1);
	q = tb_question(&b, "www.Example.com", DNS_TYPE_AAAA);
	cdn = tb_cname_rr(&b, q, "cdn.example.net", 300);
	tb_addr_rr(&b, cdn, "2001:db8::1", 60);
	tb_addr_rr(&b, cdn, "2001:db8::2", 60);
	opt_cookie(1232, 0x8000);
	save_b("ok-cname-aaaa-edns");

	tb_header(&b, 3, TB_RESPONSE | DNS_RCODE_NXDOMAIN, 1, 0, 1, 0);
	q = tb_question(&b, "nope.example.com", DNS_TYPE_A);
	tb_ptr(&b, q + 5);
	at = tb_rr(&b, DNS_TYPE_SOA, 900);
	soa_rdata(q + 5, 300);
	tb_rr_end(&b, at);
	save_b("ok-nxdomain-soa");

	/* MX, SRV (target uncompressed), NS, PTR, TXT, HTTPS, an unknown type whose rdata
	 * looks like a pointer, CAA. */
	tb_header(&b, 4, TB_RESPONSE | TB_AA, 1, 8, 1, 1);
	q = tb_question(&b, "example.org", DNS_TYPE_ANY);
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
	tb_name(&b, "sip.example.org");
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_HTTPS, 300);
	tb_bytes(&b, "\x00\x01\x00\x00\x01\x00\x03\x02h2", 10);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, 65280, 300);
	tb_bytes(&b, "\xc0\x0c\xc0\xff", 4);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_TXT, 300);
	tb_bytes(&b, "\5hello\0\3a\"b", 11);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, 257 /* CAA */, 300);
	tb_bytes(&b, "\0\5issueletsencrypt.org", 22);
	tb_rr_end(&b, at);
	tb_labels(&b, "1.2.0.192.in-addr.arpa");
	tb_u8(&b, 0);
	at = tb_rr(&b, DNS_TYPE_PTR, 300);
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_SOA, 300);
	soa_rdata(q, 60);
	tb_rr_end(&b, at);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_NS, 300);
	tb_labels(&b, "ns1");
	tb_ptr(&b, q);
	tb_rr_end(&b, at);
	tb_labels(&b, "mail");
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_A, 300);
	tb_bytes(&b, "\xc0\0\2\x19", 4);
	tb_rr_end(&b, at);
	save_b("ok-mixed-types");

	/* Queries, with and without EDNS. */
	tb_header(&b, 5, TB_RD, 1, 0, 0, 0);
	tb_question(&b, "wWw.ExAmPlE.CoM", DNS_TYPE_A);
	save_b("ok-query");
	tb_header(&b, 6, TB_RD, 1, 0, 0, 1);
	tb_question(&b, "example.com", DNS_TYPE_HTTPS);
	opt_cookie(4096, 0x8000);
	save_b("ok-query-edns-do");
	/* Just a header; the root; class CH; a name with bytes that need escaping. */
	tb_header(&b, 7, TB_RESPONSE | DNS_RCODE_FORMERR, 0, 0, 0, 0);
	save_b("ok-header-only");
	tb_header(&b, 8, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(&b, "", DNS_TYPE_NS);
	tb_u8(&b, 0);
	at = tb_rr(&b, DNS_TYPE_NS, 518400);
	tb_name(&b, "a.root-servers.net");
	tb_rr_end(&b, at);
	save_b("ok-root-ns");
	tb_header(&b, 9, TB_RESPONSE, 1, 0, 0, 0);
	tb_name(&b, "version.bind");
	tb_u16(&b, DNS_TYPE_TXT);
	tb_u16(&b, 3);
	save_b("ok-class-ch");
	tb_header(&b, 10, TB_RESPONSE, 1, 1, 0, 0);
	q = b.n;
	tb_bytes(&b, "\5a.b c\4\0\xff\x7fZ\7example\0", 20);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	tb_addr_rr(&b, q, "10.0.0.1", 5);
	save_b("ok-escaped-bytes");

	/* Limits: a 63-byte label, a 255-byte name, a pointer to a pointer, a pointer into
	 * the middle of an earlier name. */
	memset(name, 'a', 63);
	strcpy(name + 63, ".b.c.d");
	tb_answer_a(&b, 11, name, "10.0.0.2");
	save_b("ok-label-63");
	for (i = 0; i < 253; i++)
		name[i] = (i + 1) % 64 == 0 ? '.' : (char)('a' + i / 64);
	name[253] = '\0';
	tb_answer_a(&b, 12, name, "10.0.0.3");
	save_b("ok-name-255");
	tb_header(&b, 13, TB_RESPONSE, 1, 2, 0, 0);
	q = tb_question(&b, "a.example", DNS_TYPE_A);
	at = b.n;
	tb_addr_rr(&b, q, "10.0.0.1", 5);
	tb_addr_rr(&b, at, "10.0.0.2", 5);
	save_b("ok-pointer-chain");
	tb_header(&b, 14, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(&b, "abc.example", DNS_TYPE_A);
	tb_labels(&b, "x");
	tb_ptr(&b, q + 4);
	at = tb_rr(&b, DNS_TYPE_A, 1);
	tb_bytes(&b, "\1\2\3\4", 4);
	tb_rr_end(&b, at);
	save_b("ok-pointer-middle");

	/* 500 records: under our limit of 512 with the question. */
	tb_header(&b, 15, TB_RESPONSE, 1, 500, 0, 0);
	q = tb_question(&b, "many.example", DNS_TYPE_A);
	for (i = 0; i < 500; i++) {
		tb_ptr(&b, q);
		at = tb_rr(&b, DNS_TYPE_A, (uint32_t)i);
		tb_u32(&b, 0x0a000000u + (uint32_t)i);
		tb_rr_end(&b, at);
	}
	save_b("ok-500-records");

	/* A CNAME chain over four records, each target compressed against the last. */
	tb_header(&b, 16, TB_RESPONSE, 1, 4, 0, 1);
	q = tb_question(&b, "start.example.com", DNS_TYPE_A);
	cdn = tb_cname_rr(&b, q, "hop1.example.com", 10);
	cdn = tb_cname_rr(&b, cdn, "hop2.example.net", 20);
	cdn = tb_cname_rr(&b, cdn, "hop3.example.org", 30);
	tb_addr_rr(&b, cdn, "198.51.100.7", 40);
	opt_cookie(512, 0x01000000); /* extended rcode bits */
	save_b("ok-cname-chain");

	/* TTL with the top bit set, a zero-length rdata of an unknown type. */
	tb_header(&b, 17, TB_RESPONSE, 1, 2, 0, 0);
	q = tb_question(&b, "ttl.example", DNS_TYPE_A);
	tb_addr_rr(&b, q, "10.9.9.9", 0x80000001u);
	tb_ptr(&b, q);
	tb_rr(&b, 4000, 7);
	save_b("ok-odd-ttl-empty-rdata");
}

/* A question whose name bytes the caller gives. */
static void question_raw(uint16_t id, const void *name, size_t n)
{
	tb_header(&b, id, TB_RESPONSE, 1, 0, 0, 0);
	tb_bytes(&b, name, n);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
}

static void malformed(void)
{
	uint8_t name[300];
	size_t q, at, n, i;

	/* Both refuse. */
	tb_answer_a(&b, 20, "www.example.com", "10.1.2.3");
	save("bad-header-11", b.p, 11);
	question_raw(21, "\xc0\x0c", 2);
	save_b("bad-pointer-self");
	tb_header(&b, 22, TB_RESPONSE, 2, 0, 0, 0);
	tb_ptr(&b, 18);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	tb_ptr(&b, 12);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	save_b("bad-pointer-loop-two");
	question_raw(23, "\xc0\xc8", 2);
	save_b("bad-pointer-outside");
	question_raw(24, "\1a\xc0", 3);
	save_b("bad-pointer-cut");
	name[0] = 0x40;
	memset(name + 1, 'a', 64);
	name[65] = 0;
	question_raw(25, name, 66);
	save_b("bad-label-64");
	for (n = 0, i = 0; i < 4; i++) {
		size_t len = i < 3 ? 63 : 62;

		name[n++] = (uint8_t)len;
		memset(name + n, 'a' + (int)i, len);
		n += len;
	}
	name[n++] = 0;
	question_raw(26, name, n);
	save_b("bad-name-256");
	tb_answer_a(&b, 27, "www.example.com", "10.1.2.3");
	tb_set16(&b, 6, 0xffff);
	save_b("bad-ancount-huge");
	tb_answer_a(&b, 28, "www.example.com", "10.1.2.3");
	tb_set16(&b, 10, 1);
	save_b("bad-arcount-one-more");
	tb_answer_a(&b, 29, "www.example.com", "10.1.2.3");
	tb_set16(&b, b.n - 6, 5);
	save_b("bad-rdlen-past-end");
	tb_header(&b, 30, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(&b, "example.com", DNS_TYPE_A);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_CNAME, 5);
	tb_name(&b, "a.example");
	tb_rr_end(&b, at);
	tb_set16(&b, at, (uint16_t)(b.n - at - 2 - 2));
	save_b("diff-name-overruns-rdata");

	/* We refuse, ldns accepts: see the table in test_dns_ldns.c. */
	tb_answer_a(&b, 40, "www.example.com", "10.1.2.3");
	tb_u8(&b, 0);
	save_b("diff-trailing-1");
	tb_answer_a(&b, 41, "www.example.com", "10.1.2.3");
	tb_bytes(&b, "\xde\xad\xbe\xef", 4);
	save_b("diff-trailing-4");
	tb_header(&b, 42, TB_RESPONSE, 1, 1, 0, 0);
	tb_ptr(&b, 18); /* the answer's owner, just after this question */
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	tb_name(&b, "fwd.example");
	at = tb_rr(&b, DNS_TYPE_A, 1);
	tb_bytes(&b, "\1\2\3\4", 4);
	tb_rr_end(&b, at);
	save_b("diff-forward-pointer");
	tb_header(&b, 43, TB_RESPONSE, 1, 1, 0, 0);
	q = tb_question(&b, "example.com", DNS_TYPE_A);
	tb_ptr(&b, q);
	at = tb_rr(&b, DNS_TYPE_CNAME, 5);
	tb_name(&b, "a.example");
	tb_u8(&b, 0);
	tb_rr_end(&b, at);
	save_b("diff-cname-short-of-rdata");
	tb_header(&b, 44, TB_RESPONSE, 1, 0, 0, 2);
	tb_question(&b, "example.com", DNS_TYPE_A);
	tb_opt_rr(&b, 1232, 0);
	tb_opt_rr(&b, 1232, 0);
	save_b("diff-opt-twice");
	tb_header(&b, 45, TB_RESPONSE, 1, 1, 0, 0);
	tb_question(&b, "example.com", DNS_TYPE_A);
	tb_opt_rr(&b, 1232, 0);
	save_b("diff-opt-in-answer");
	tb_header(&b, 46, TB_RESPONSE, 1, 0, 0, 1);
	q = tb_question(&b, "example.com", DNS_TYPE_A);
	tb_ptr(&b, q);
	tb_u16(&b, DNS_TYPE_OPT);
	tb_u16(&b, 512);
	tb_u32(&b, 0);
	tb_u16(&b, 0);
	save_b("diff-opt-not-root");
	tb_header(&b, 47, TB_RESPONSE, 1, 0, 0, 1);
	tb_question(&b, "example.com", DNS_TYPE_A);
	tb_u8(&b, 0);
	tb_u16(&b, DNS_TYPE_OPT);
	tb_u16(&b, 1232);
	tb_u32(&b, 0);
	tb_u16(&b, 4);
	tb_bytes(&b, "\0\x0a\0\x09", 4);
	save_b("diff-opt-option-overruns");
	tb_header(&b, 48, TB_RESPONSE, 513, 0, 0, 0);
	for (i = 0; i < 513; i++)
		tb_question(&b, "", DNS_TYPE_A);
	save_b("diff-too-many-records");
	/* A pointer into an earlier label's bytes that reads as a loop back to that spot. */
	tb_header(&b, 49, TB_RESPONSE, 1, 1, 0, 0);
	tb_bytes(&b, "\x10" "aaa" "\x0a" "bbbbbbbbbb" "\xc0\x10" "\x10" "\0", 18);
	tb_u16(&b, DNS_TYPE_A);
	tb_u16(&b, 1);
	tb_addr_rr(&b, 16, "10.0.0.1", 5);
	save_b("diff-loop-inside-label");
	/* An A record of 5 bytes, an AAAA of 4: opaque to us. */
	tb_header(&b, 50, TB_RESPONSE, 1, 2, 0, 0);
	q = tb_question(&b, "www.example.com", DNS_TYPE_A);
	tb_addr_rr(&b, q, "10.1.2.3", 5);
	tb_set16(&b, b.n - 6, 5);
	tb_u8(&b, 9);
	tb_addr_rr(&b, q, "10.1.2.4", 5);
	save_b("diff-a-rdlen-5");
	tb_answer_a(&b, 51, "www.example.com", "10.1.2.3");
	tb_set16(&b, b.n - 6, 3);
	b.n--;
	save_b("diff-a-rdlen-3");
	/* Reserved label types 0x40 and 0x80 (RFC 6891 retired extended labels). */
	question_raw(52, "\x41" "a\0", 3);
	save_b("diff-label-type-0x40");
	question_raw(53, "\x81" "a\0", 3);
	save_b("diff-label-type-0x80");
}

static int hand(void)
{
	valid();
	malformed();
	return 0;
}

static int query(const char *server, const char *name, const char *type, const char *mode,
		 const char *file)
{
	struct dns_header h = { .rd = true };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(53) };
	static uint8_t q[512], a[65536];
	struct dns_builder bd;
	struct pollfd pfd;
	ssize_t n;
	int len, fd;

	const char *c;

	if (inet_pton(AF_INET, server, &sa.sin_addr) != 1)
		return 2;
	/* A fixed id per query, so that a new capture differs from the old only where the
	 * answer does. */
	for (h.id = 0x4e45, c = file; *c; c++)
		h.id = (uint16_t)(h.id * 31 + (uint8_t)*c);
	dns_builder_init(&bd, q, sizeof(q), &h);
	dns_builder_question(&bd, name, (uint16_t)atoi(type), DNS_CLASS_IN);
	if (strcmp(mode, "plain") != 0)
		dns_builder_opt(&bd, 4096, 0, strcmp(mode, "do") == 0);
	len = dns_builder_finish(&bd);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (len < 0 || fd < 0 || sendto(fd, q, (size_t)len, 0, (struct sockaddr *)&sa, sizeof(sa)) != len)
		return 1;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 3000) != 1)
		return 1;
	n = recv(fd, a, sizeof(a), 0);
	close(fd);
	if (n < 12)
		return 1;
	dir = ".";
	{
		FILE *f = fopen(file, "wb");

		if (!f || fwrite(a, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "hand") == 0) {
		dir = argv[2];
		return hand();
	}
	if (argc == 7 && strcmp(argv[1], "query") == 0)
		return query(argv[2], argv[3], argv[4], argv[5], argv[6]);
	fprintf(stderr, "usage: gen-corpus hand DIR | query SERVER NAME TYPE plain|edns|do FILE\n");
	return 2;
}
