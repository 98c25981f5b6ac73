/* DNS messages (RFC 1035, 3596, 6891): a parser that never trusts a count, length or pointer,
 * shared by the daemon's hostname learning and (later) the DNS proxy.
 *
 * The parser works on a view of the caller's buffer: it validates the whole message once in
 * dns_parse() (header, every question and record, every name with compression), after which
 * the iteration functions cannot fail on bounds. Unknown record types are kept as opaque
 * rdata. Names come out in presentation form, lower-case, without the final dot, with
 * characters other than [a-z0-9-_] escaped as \DDD (RFC 4343), so that a name from the wire can
 * never contain a NUL, a dot inside a label, or a control character. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 255         /* wire length of a name */
#define DNS_NAME_TEXT_MAX 1025   /* presentation form incl. NUL: 255 bytes escaped ×4 + 1 */
#define DNS_LABEL_MAX 63
#define DNS_MSG_MAX 65535
#define DNS_MAX_RECORDS 512      /* records (all sections) a message may have to be parsed */

enum dns_type {
	DNS_TYPE_A = 1, DNS_TYPE_NS = 2, DNS_TYPE_CNAME = 5, DNS_TYPE_SOA = 6, DNS_TYPE_PTR = 12,
	DNS_TYPE_MX = 15, DNS_TYPE_TXT = 16, DNS_TYPE_AAAA = 28, DNS_TYPE_SRV = 33,
	DNS_TYPE_OPT = 41, DNS_TYPE_SVCB = 64, DNS_TYPE_HTTPS = 65, DNS_TYPE_ANY = 255,
};
#define DNS_CLASS_IN 1

enum dns_section { DNS_SEC_QUESTION, DNS_SEC_ANSWER, DNS_SEC_AUTHORITY, DNS_SEC_ADDITIONAL };

enum dns_rcode { DNS_RCODE_NOERROR = 0, DNS_RCODE_FORMERR = 1, DNS_RCODE_SERVFAIL = 2,
		 DNS_RCODE_NXDOMAIN = 3, DNS_RCODE_NOTIMP = 4, DNS_RCODE_REFUSED = 5 };

struct dns_header {
	uint16_t id;
	bool qr, aa, tc, rd, ra, ad, cd;
	uint8_t opcode;
	uint8_t rcode; /* the header's 4 bits; extended rcode from OPT is in dns_msg.ext_rcode */
	uint16_t qdcount, ancount, nscount, arcount;
};

/* One question or resource record: offsets into the message (valid after dns_parse()). */
struct dns_rr {
	enum dns_section section;
	size_t name_off;   /* where the owner name starts (may be a pointer) */
	uint16_t type, class;
	uint32_t ttl;      /* 0 for questions */
	size_t rdata_off;  /* 0 and rdlen 0 for questions */
	uint16_t rdlen;
};

struct dns_msg {
	const uint8_t *p;
	size_t len;
	struct dns_header h;
	size_t n_rr;                      /* questions + records */
	struct dns_rr rr[DNS_MAX_RECORDS];
	bool has_opt;                     /* an EDNS(0) OPT record was present (at most one) */
	uint16_t udp_size;                /* from OPT */
	uint16_t ext_rcode;               /* full 12-bit rcode when has_opt */
};

/* Parses and validates p[0..len). -EBADMSG for anything malformed: truncated header or record,
 * a count larger than the message holds, a compression pointer that is not strictly backwards
 * (so loops are impossible), labels over 63 bytes, names over 255 bytes, reserved label types,
 * rdata that overruns, trailing bytes, more than one OPT or an OPT outside the additional
 * section or not owned by the root; also the names in CNAME, NS, PTR, MX, SRV and SOA rdata
 * (which must fill it exactly) and the EDNS options in OPT rdata are checked. -E2BIG when the
 * message has more than DNS_MAX_RECORDS records. On success m refers to p; on failure m is
 * untouched. */
int dns_parse(const uint8_t *p, size_t len, struct dns_msg *m);

/* Decodes the (already validated) name at off into text (size ≥ DNS_NAME_TEXT_MAX). The root
 * name is "". Returns the text length. */
int dns_name_text(const struct dns_msg *m, size_t off, char *text, size_t size);

/* Compares the validated names at two offsets, case-insensitively. */
bool dns_name_equal(const struct dns_msg *m, size_t off_a, size_t off_b);
/* The validated name at off in canonical wire form (RFC 4034 §6.2: uncompressed, ASCII
 * lower-cased, length bytes included, root label last) into out (size ≥ DNS_NAME_MAX): two
 * names are equal exactly when these bytes are, so callers can hash them. Returns the length. */
int dns_name_canonical(const struct dns_msg *m, size_t off, uint8_t *out, size_t size);

/* For A / AAAA records: the 4 or 16 address bytes, NULL for other types or a wrong rdlen. */
const uint8_t *dns_rr_addr(const struct dns_msg *m, const struct dns_rr *rr, int *ret_family);
/* For CNAME records: the offset of the target name inside rdata. -EINVAL for other types. */
int dns_rr_cname_target(const struct dns_msg *m, const struct dns_rr *rr, size_t *ret_off);

/* Text helpers shared by rules: lower-cases and checks a presentation-form hostname given by
 * a person or a provider ("Example.COM." → "example.com"). -EINVAL for an empty or invalid
 * name (empty label, label > 63, name > 253 characters, characters outside [A-Za-z0-9-_.]). */
int dns_name_normalize(const char *in, char *out, size_t size);
/* NENetworkRule hostname semantics: a one-label pattern matches that exact host only; a
 * pattern of two or more labels matches the name itself and every name below it
 * ("example.com" matches "example.com" and "a.b.example.com", not "badexample.com").
 * Both arguments normalized. */
bool dns_name_matches(const char *pattern, const char *name);

/* ---- building messages (dnsbuild.c) ------------------------------------------------------
 * A builder writes a message into the caller's buffer in section order (questions, answers,
 * authority, additional); names are compressed against names written before them. Any
 * failure (no room: -EMSGSIZE; a bad name: -EINVAL; sections out of order: -EPROTO) is kept
 * in b->err and makes later calls no-ops, so callers check once, at dns_builder_finish(). */
#define DNS_BUILDER_PTRS 64 /* names remembered for compression */

struct dns_builder {
	uint8_t *p;
	size_t len, cap;
	int err;
	enum dns_section section;  /* the section being written */
	uint16_t counts[4];        /* per section */
	size_t n_ptrs;
	uint16_t ptrs[DNS_BUILDER_PTRS]; /* offsets of names (and their suffixes) written */
};

/* Starts a message with header h (its counts are ignored: the builder counts). */
void dns_builder_init(struct dns_builder *b, uint8_t *buf, size_t cap, const struct dns_header *h);
/* name: presentation form as dns_name_text() writes it ("" is the root; \DDD and \. escapes
 * are decoded; a final dot is optional). */
void dns_builder_question(struct dns_builder *b, const char *name, uint16_t type, uint16_t class);
/* A record with opaque rdata. */
void dns_builder_rr(struct dns_builder *b, enum dns_section sec, const char *name, uint16_t type,
		    uint16_t class, uint32_t ttl, const void *rdata, uint16_t rdlen);
/* A record whose rdata is one name (CNAME, NS, PTR), compressed. */
void dns_builder_rr_name(struct dns_builder *b, enum dns_section sec, const char *name, uint16_t type,
			 uint32_t ttl, const char *target);
/* Copies record rr of message m (any section, any type) into section sec, rdata verbatim
 * except that names inside CNAME/NS/PTR/MX/SRV/SOA rdata are decompressed (a pointer into m
 * means nothing in the new message). Unknown types pass through byte for byte. */
void dns_builder_copy_rr(struct dns_builder *b, enum dns_section sec, const struct dns_msg *m,
			 const struct dns_rr *rr);
/* The same for a record of the message p[0..len) that dns_parse() validated, when the caller
 * keeps the bytes and the records but not a whole struct dns_msg (libnetext). */
void dns_builder_copy_rr_raw(struct dns_builder *b, enum dns_section sec, const uint8_t *p, size_t len,
			     const struct dns_rr *rr);
/* The EDNS(0) OPT pseudo-record (additional section, last). */
void dns_builder_opt(struct dns_builder *b, uint16_t udp_size, uint8_t ext_rcode_hi, bool dnssec_ok);
/* Writes the counts; returns the message length or b->err. */
int dns_builder_finish(struct dns_builder *b);

/* A response to query q with rcode (NOERROR … REFUSED; FORMERR also for a query that has no
 * question) and no records: same id and opcode, QR set, RD copied, RA set, the question copied
 * when q has one, an OPT record when q had one (udp_size 1232). Returns the length written
 * into out, or a negative errno. */
/* out may be q's own buffer (q is read whole before out is written); q is stale afterwards. */
int dns_answer_rcode(const struct dns_msg *q, uint8_t rcode, uint8_t *out, size_t cap);
/* FORMERR for bytes that do not parse but have at least a 12-byte header: id and opcode
 * copied, no question. -EBADMSG when len < 12 (such input gets no answer: drop it). */
/* Also -EBADMSG when the bytes have QR set: a response is never answered (no FORMERR ping-pong
 * between two servers). */
/* out may be p. */
int dns_answer_formerr_raw(const uint8_t *p, size_t len, uint8_t *out, size_t cap);
/* resp cut to fit limit bytes for UDP: if it fits it is copied as is; otherwise the header
 * with TC set, the question and the OPT record, nothing else (RFC 2181 §9, RFC 6891 §7).
 * Returns the length written into out (cap ≥ limit). */
/* out may be resp's own buffer only when resp fits (then nothing moves); when it must be cut,
 * out must not overlap resp's bytes (-EINVAL). */
/* A limit above cap counts as cap. When even the question and OPT exceed limit, the OPT is
 * left out, then the question (a bare header with TC); -EMSGSIZE when limit < 12. */
int dns_truncate(const struct dns_msg *resp, size_t limit, uint8_t *out, size_t cap);
/* Whether resp answers q: QR set, same id, same opcode, same question count and the same
 * first question (name case-insensitively, type, class). The caller checks the source. */
bool dns_response_matches(const struct dns_msg *q, const struct dns_msg *resp);
/* The UDP payload size a client accepts: 512 without EDNS, else its OPT size clamped to
 * [512, 4096]. */
size_t dns_udp_limit(const struct dns_msg *q);
/* The first question's name (text, size ≥ DNS_NAME_TEXT_MAX), type and class; -ENOENT when the
 * message has no question. */
int dns_question(const struct dns_msg *m, char *name, size_t size, uint16_t *ret_type, uint16_t *ret_class);
/* Lowest TTL of the answer and authority records (for SOA-negative answers the SOA minimum
 * field counts too, RFC 2308); UINT32_MAX when there is none. */
/* A TTL with the top bit set counts as 0 (RFC 2181 §8). */
uint32_t dns_min_ttl(const struct dns_msg *m);
/* Text name → wire form (uncompressed) in out (size ≥ DNS_NAME_MAX); returns the length or
 * -EINVAL (label over 63, name over 255, bad escape, empty label). */
/* Unescaped bytes must be printable ASCII other than space; "." is the root like "". -ENOBUFS
 * when the name does not fit size. */
int dns_name_from_text(const char *text, uint8_t *out, size_t size);
