/* Differential test: our DNS parser (dns_parse) and builder (dns_builder_copy_rr) against
 * NLnet Labs' ldns, over the corpus in tests/corpus/dns (real answers from nsd and dnsmasq,
 * hand-built valid and malformed messages; see make-corpus.sh).
 *
 * For every message the two verdicts (accept / refuse) must be what the file's name prefix
 * says in the table below; where both accept, every record must decode the same (owner name
 * byte for byte, type, class, TTL, rdata with names expanded) and so must the EDNS fields.
 * Where the two differ, the difference is one we chose, and the table says why. Every
 * accepted message is also rebuilt record by record with dns_builder_copy_rr(); ldns must
 * read the copy as the same records as the original. Every proper prefix of a valid message
 * must be refused by both.
 *
 *   test-dns-ldns CORPUS_DIR */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "dns.h"

#define TYPE_TSIG 250

struct expectation {
	const char *prefix;
	int ours;      /* what dns_parse() returns */
	bool ldns;     /* whether ldns_wire2pkt() accepts */
	const char *why;
	unsigned seen;
};

/* Most specific prefixes first. */
static struct expectation expectations[] = {
	{ "real-", 0, true, "answers captured from nsd and dnsmasq", 0 },
	{ "ok-", 0, true, "valid messages of every kind we expect to see", 0 },
	{ "bad-", -EBADMSG, false, "malformed: both refuse", 0 },
	{ "diff-trailing-", -EBADMSG, true,
	  "bytes after the last record: a message is exactly its records (RFC 1035 §4.1); "
	  "ldns stops reading after the counted records and ignores the rest", 0 },
	{ "diff-forward-pointer", -EBADMSG, true,
	  "a compression pointer to a later offset: we accept only pointers strictly backwards "
	  "(RFC 1035 §4.1.4: \"a prior occurrence\"), which makes loops impossible by "
	  "construction; ldns follows any in-bounds pointer and bounds loops by counting", 0 },
	{ "diff-loop-inside-label", -EBADMSG, false,
	  "both refuse; ldns only because its walk exceeds 255 bytes", 0 },
	{ "diff-cname-short-of-rdata", -EBADMSG, true,
	  "a CNAME name that does not fill its rdata: we require the names of CNAME, NS, PTR, MX, "
	  "SRV and SOA rdata to use it exactly; ldns reads the fields its descriptor lists and "
	  "skips the rest", 0 },
	{ "diff-name-overruns-rdata", -EBADMSG, true,
	  "a CNAME name that runs past its rdlength: we walk a name in rdata only up to the rdata's "
	  "end; ldns walks it up to the end of the message", 0 },
	{ "diff-opt-twice", -EBADMSG, true,
	  "two OPT records (RFC 6891 §6.1.1: FORMERR); ldns keeps the last", 0 },
	{ "diff-opt-in-answer", -EBADMSG, true,
	  "OPT outside the additional section (RFC 6891 §6.1.1); ldns treats it as a record", 0 },
	{ "diff-opt-not-root", -EBADMSG, true,
	  "OPT owned by a name other than the root (RFC 6891 §6.1.2)", 0 },
	{ "diff-opt-option-overruns", -EBADMSG, true,
	  "an EDNS option longer than the OPT rdata: we check options, ldns keeps the rdata opaque", 0 },
	{ "diff-too-many-records", -E2BIG, true,
	  "more than DNS_MAX_RECORDS (512) records: we refuse to keep them, ldns allocates", 0 },
	{ "diff-a-rdlen-5", 0, false,
	  "an A record of 5 bytes: opaque to us (dns_rr_addr() gives no address); ldns reads 4 and "
	  "resumes inside the rdata, so the message falls apart", 0 },
	{ "diff-a-rdlen-3", 0, false,
	  "an A record of 3 bytes: opaque to us; ldns refuses an A shorter than 4 bytes", 0 },
	{ "diff-label-type-0x40", -EBADMSG, false,
	  "both refuse a label type 0x40 (ldns: a label over 63)", 0 },
	{ "diff-label-type-0x80", -EBADMSG, false,
	  "both refuse a label type 0x80", 0 },
};

static const char *corpus_dir;
static struct dns_msg msg, msg2;
static uint8_t out[DNS_MSG_MAX];
static unsigned n_files, n_both, n_prefixes, n_roundtrips;

static struct expectation *expectation_for(const char *file)
{
	struct expectation *best = NULL;
	size_t i;

	for (i = 0; i < sizeof(expectations) / sizeof(expectations[0]); i++)
		if (strncmp(file, expectations[i].prefix, strlen(expectations[i].prefix)) == 0 &&
		    (!best || strlen(expectations[i].prefix) > strlen(best->prefix)))
			best = &expectations[i];
	return best;
}

/* The name at off of a message dns_parse() accepted, flat and with its case. */
static size_t flat_name(const struct dns_msg *m, size_t off, uint8_t *dst)
{
	size_t n = 0;

	for (;;) {
		uint8_t c = m->p[off];

		if ((c & 0xc0) == 0xc0) {
			off = (size_t)(c & 0x3f) << 8 | m->p[off + 1];
			continue;
		}
		memcpy(dst + n, m->p + off, 1 + (size_t)c);
		n += 1 + (size_t)c;
		if (c == 0)
			return n;
		off += 1 + (size_t)c;
	}
}

/* Just past the name's own bytes at off. */
static size_t name_end(const struct dns_msg *m, size_t off)
{
	while (m->p[off] && (m->p[off] & 0xc0) != 0xc0)
		off += 1 + (size_t)m->p[off];
	return off + (m->p[off] ? 2 : 1);
}

/* rdata with the names of CNAME, NS, PTR, MX, SRV and SOA expanded, as ldns stores it. */
static size_t flat_rdata(const struct dns_msg *m, const struct dns_rr *rr, uint8_t *dst)
{
	size_t pre = 0, names = 0, post = 0, n, k, off = rr->rdata_off;

	switch (rr->type) {
	case DNS_TYPE_CNAME: case DNS_TYPE_NS: case DNS_TYPE_PTR: names = 1; break;
	case DNS_TYPE_MX: pre = 2; names = 1; break;
	case DNS_TYPE_SRV: pre = 6; names = 1; break;
	case DNS_TYPE_SOA: names = 2; post = 20; break;
	default:
		memcpy(dst, m->p + off, rr->rdlen);
		return rr->rdlen;
	}
	memcpy(dst, m->p + off, pre);
	n = pre;
	off += pre;
	for (k = 0; k < names; k++) {
		n += flat_name(m, off, dst + n);
		off = name_end(m, off);
	}
	memcpy(dst + n, m->p + off, post);
	return n + post;
}

/* ldns's rdata: its fields one after the other (names uncompressed). */
static size_t ldns_rdata(const ldns_rr *rr, uint8_t *dst)
{
	size_t i, n = 0;

	for (i = 0; i < ldns_rr_rd_count(rr); i++) {
		const ldns_rdf *f = ldns_rr_rdf(rr, i);

		memcpy(dst + n, ldns_rdf_data(f), ldns_rdf_size(f));
		n += ldns_rdf_size(f);
	}
	return n;
}

static const ldns_rr_list *ldns_section(const ldns_pkt *pkt, enum dns_section s)
{
	switch (s) {
	case DNS_SEC_QUESTION: return ldns_pkt_question(pkt);
	case DNS_SEC_ANSWER: return ldns_pkt_answer(pkt);
	case DNS_SEC_AUTHORITY: return ldns_pkt_authority(pkt);
	default: return ldns_pkt_additional(pkt);
	}
}

static unsigned n_failed;

/* Reports a difference and goes on, so that one run lists them all; the test fails at the end. */
static void fail_at(const char *file, const char *what, size_t i)
{
	print_error("%s: %s (record %zu)\n", file, what, i);
	n_failed++;
}

/* Every record of m decodes as ldns decoded it. */
static void compare(const char *file, const struct dns_msg *m, const ldns_pkt *pkt)
{
	static uint8_t ours[DNS_MSG_MAX], theirs[DNS_MSG_MAX];
	size_t i, idx[4] = { 0 }, n_ours, n_theirs;
	const struct dns_rr *opt = NULL;

	if (ldns_pkt_id(pkt) != m->h.id || ldns_pkt_qr(pkt) != m->h.qr ||
	    ldns_pkt_get_opcode(pkt) != m->h.opcode || ldns_pkt_aa(pkt) != m->h.aa ||
	    ldns_pkt_tc(pkt) != m->h.tc || ldns_pkt_rd(pkt) != m->h.rd || ldns_pkt_ra(pkt) != m->h.ra ||
	    ldns_pkt_ad(pkt) != m->h.ad || ldns_pkt_cd(pkt) != m->h.cd ||
	    ldns_pkt_get_rcode(pkt) != m->h.rcode)
		fail_at(file, "header differs", 0);
	for (i = 0; i < m->n_rr; i++) {
		const struct dns_rr *rr = &m->rr[i];
		const ldns_rr_list *list = ldns_section(pkt, rr->section);
		const ldns_rr *lr;
		const ldns_rdf *owner;
		uint8_t name[DNS_NAME_MAX];
		size_t nlen;

		if (rr->type == DNS_TYPE_OPT) {
			opt = rr; /* ldns keeps it out of its lists */
			continue;
		}
		if (rr->type == TYPE_TSIG) {
			fail_at(file, "TSIG in the corpus: not compared", i);
			return;
		}
		if (idx[rr->section] >= ldns_rr_list_rr_count(list)) {
			fail_at(file, "ldns has fewer records in the section", i);
			return;
		}
		lr = ldns_rr_list_rr(list, idx[rr->section]++);
		owner = ldns_rr_owner(lr);
		nlen = flat_name(m, rr->name_off, name);
		if (ldns_rdf_size(owner) != nlen || memcmp(ldns_rdf_data(owner), name, nlen) != 0)
			fail_at(file, "owner name differs", i);
		if (ldns_rr_get_type(lr) != rr->type || ldns_rr_get_class(lr) != rr->class)
			fail_at(file, "type or class differs", i);
		if (rr->section != DNS_SEC_QUESTION && ldns_rr_ttl(lr) != rr->ttl)
			fail_at(file, "TTL differs", i);
		n_ours = rr->section == DNS_SEC_QUESTION ? 0 : flat_rdata(m, rr, ours);
		n_theirs = ldns_rdata(lr, theirs);
		if (n_ours != n_theirs || memcmp(ours, theirs, n_ours) != 0)
			fail_at(file, "rdata differs", i);
	}
	for (i = 0; i < 4; i++)
		if (idx[i] != ldns_rr_list_rr_count(ldns_section(pkt, (enum dns_section)i)))
			fail_at(file, "ldns has more records in a section", i);
	if (ldns_pkt_edns(pkt) != m->has_opt)
		fail_at(file, "EDNS presence differs", 0);
	if (opt && (ldns_pkt_edns_udp_size(pkt) != m->udp_size ||
		    ldns_pkt_edns_extended_rcode(pkt) != m->ext_rcode >> 4 ||
		    ldns_pkt_edns_do(pkt) != !!(opt->ttl & 0x8000)))
		fail_at(file, "EDNS fields differ", 0);
}

/* The two ldns readings hold the same records (names compared case-insensitively: the
 * builder compresses "WWW.x" against an earlier "www.x"). */
static void compare_ldns(const char *file, const ldns_pkt *a, const ldns_pkt *c)
{
	size_t s, i;

	if (ldns_pkt_id(a) != ldns_pkt_id(c) || ldns_pkt_get_rcode(a) != ldns_pkt_get_rcode(c) ||
	    ldns_pkt_edns(a) != ldns_pkt_edns(c) ||
	    ldns_pkt_edns_udp_size(a) != ldns_pkt_edns_udp_size(c) ||
	    ldns_pkt_edns_do(a) != ldns_pkt_edns_do(c))
		fail_at(file, "copy: header or EDNS differs", 0);
	for (s = 0; s < 4; s++) {
		const ldns_rr_list *la = ldns_section(a, (enum dns_section)s);
		const ldns_rr_list *lc = ldns_section(c, (enum dns_section)s);

		if (ldns_rr_list_rr_count(la) != ldns_rr_list_rr_count(lc)) {
			fail_at(file, "copy: record count differs", s);
			return;
		}
		for (i = 0; i < ldns_rr_list_rr_count(la); i++) {
			const ldns_rr *ra = ldns_rr_list_rr(la, i), *rc = ldns_rr_list_rr(lc, i);

			if (ldns_rr_compare(ra, rc) != 0 || ldns_rr_ttl(ra) != ldns_rr_ttl(rc))
				fail_at(file, "copy: record differs", i);
		}
	}
}

static int copy_all(const struct dns_msg *m, uint8_t *dst, size_t cap)
{
	struct dns_builder b;
	size_t i;

	dns_builder_init(&b, dst, cap, &m->h);
	for (i = 0; i < m->n_rr; i++)
		dns_builder_copy_rr(&b, m->rr[i].section, m, &m->rr[i]);
	return dns_builder_finish(&b);
}

static void roundtrip(const char *file, const ldns_pkt *orig)
{
	ldns_pkt *pkt = NULL;
	int n = copy_all(&msg, out, sizeof(out));

	if (n < 0 || dns_parse(out, (size_t)n, &msg2) != 0) {
		fail_at(file, "copy failed or does not parse", 0);
		return;
	}
	if (ldns_wire2pkt(&pkt, out, (size_t)n) != LDNS_STATUS_OK) {
		fail_at(file, "ldns refuses the copy", 0);
		return;
	}
	compare(file, &msg2, pkt);
	compare_ldns(file, orig, pkt);
	ldns_pkt_free(pkt);
	n_roundtrips++;
}

/* Every proper prefix of a valid message is refused by both. */
static void prefixes(const char *file, const uint8_t *p, size_t len)
{
	ldns_pkt *pkt;
	size_t cut;

	for (cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */

		assert_non_null(copy);
		memcpy(copy, p, cut);
		if (dns_parse(copy, cut, &msg2) != -EBADMSG)
			fail_at(file, "a prefix parses; at", cut);
		pkt = NULL;
		if (ldns_wire2pkt(&pkt, copy, cut) == LDNS_STATUS_OK) {
			ldns_pkt_free(pkt);
			fail_at(file, "ldns accepts a prefix; at", cut);
		}
		free(copy);
		n_prefixes++;
	}
}

static void one_file(const char *file, const uint8_t *p, size_t len)
{
	struct expectation *e = expectation_for(file);
	ldns_pkt *pkt = NULL;
	ldns_status st;
	int r;

	if (!e) {
		fail_at(file, "no expectation for this name (see the table)", 0);
		return;
	}
	r = dns_parse(p, len, &msg);
	st = ldns_wire2pkt(&pkt, p, len);
	if (r != e->ours || (st == LDNS_STATUS_OK) != e->ldns) {
		print_error("%s: dns_parse %d (expected %d), ldns \"%s\" (expected %s)\n", file, r,
			    e->ours, ldns_get_errorstr_by_id(st), e->ldns ? "accept" : "refuse");
		n_failed++;
		ldns_pkt_free(pkt);
		return;
	}
	e->seen++;
	if (r == 0 && st == LDNS_STATUS_OK) {
		compare(file, &msg, pkt);
		roundtrip(file, pkt);
		n_both++;
	}
	if (r == 0 && e->ours == 0 && e->ldns)
		prefixes(file, p, len);
	ldns_pkt_free(pkt);
	n_files++;
}

static void test_corpus(void **state)
{
	static uint8_t buf[DNS_MSG_MAX + 1];
	struct dirent **names;
	char path[4096];
	int i, n;
	size_t k;

	n = scandir(corpus_dir, &names, NULL, alphasort);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		const char *f = names[i]->d_name;
		size_t len = strlen(f);
		uint8_t *copy;
		FILE *fp;

		if (len < 5 || strcmp(f + len - 4, ".bin") != 0) {
			free(names[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", corpus_dir, f);
		fp = fopen(path, "rb");
		assert_non_null(fp);
		len = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		assert_true(len <= DNS_MSG_MAX);
		copy = malloc(len ? len : 1);
		assert_non_null(copy);
		memcpy(copy, buf, len);
		one_file(f, copy, len);
		free(copy);
		free(names[i]);
	}
	free(names);
	/* Every documented difference is exercised by at least one file. */
	for (k = 0; k < sizeof(expectations) / sizeof(expectations[0]); k++)
		if (!expectations[k].seen)
			fail_msg("no corpus file for %s*", expectations[k].prefix);
	assert_int_equal(n_failed, 0);
	assert_true(n_both >= 40);
	print_message("%u files: %u accepted by both and compared record by record, %u copies "
		      "re-read by ldns, %u prefixes refused by both\n", n_files, n_both, n_roundtrips,
		      n_prefixes);
	(void)state;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	corpus_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
