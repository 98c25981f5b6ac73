/* libnetext, DNS messages: a parser and a builder, so that providers never parse bytes by hand.
 *
 * The parser is netextd's own (it validates the whole message once: every count, length and
 * compression pointer; it never reads outside the bytes it was given). A parsed message owns a
 * copy of its bytes and decodes every name once, so the accessors below cannot fail on bounds.
 * Names are in presentation form, lower-case, without the final dot; characters outside
 * [a-z0-9-_] are escaped as \DDD, so a name from the wire never contains a NUL, a dot inside a
 * label or a control character. The root is "".
 *
 *     ne_dns_message *q, *a;
 *     ne_dns_message_parse(bytes, len, &q);
 *     if (!strcmp(ne_dns_message_qname(q), "ads.example")) {
 *             ne_dns_builder *b;
 *             ne_dns_builder_new_response(q, NE_DNS_RCODE_NXDOMAIN, &b);
 *             ne_dns_builder_finish(b, &a);           // a is a parsed message too
 *     }
 *
 * Thread safety: a message may be read from several threads; a builder belongs to one. */
#ifndef NETEXT_DNS_H
#define NETEXT_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netext/netext.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ne_dns_message ne_dns_message;
typedef struct ne_dns_builder ne_dns_builder;

typedef enum ne_dns_section {
	NE_DNS_QUESTION = 0,
	NE_DNS_ANSWER = 1,
	NE_DNS_AUTHORITY = 2,
	NE_DNS_ADDITIONAL = 3,
} ne_dns_section;

enum {
	NE_DNS_RCODE_NOERROR = 0, NE_DNS_RCODE_FORMERR = 1, NE_DNS_RCODE_SERVFAIL = 2,
	NE_DNS_RCODE_NXDOMAIN = 3, NE_DNS_RCODE_NOTIMP = 4, NE_DNS_RCODE_REFUSED = 5,
};
enum {
	NE_DNS_TYPE_A = 1, NE_DNS_TYPE_NS = 2, NE_DNS_TYPE_CNAME = 5, NE_DNS_TYPE_SOA = 6,
	NE_DNS_TYPE_PTR = 12, NE_DNS_TYPE_MX = 15, NE_DNS_TYPE_TXT = 16, NE_DNS_TYPE_AAAA = 28,
	NE_DNS_TYPE_SRV = 33, NE_DNS_TYPE_OPT = 41, NE_DNS_TYPE_HTTPS = 65, NE_DNS_TYPE_ANY = 255,
};
#define NE_DNS_CLASS_IN 1
#define NE_DNS_MESSAGE_MAX 65535

/* Header flag bits as in the wire header's second 16-bit word (QR 0x8000 … CD 0x0010). */
#define NE_DNS_FLAG_QR 0x8000
#define NE_DNS_FLAG_AA 0x0400
#define NE_DNS_FLAG_TC 0x0200
#define NE_DNS_FLAG_RD 0x0100
#define NE_DNS_FLAG_RA 0x0080
#define NE_DNS_FLAG_AD 0x0020
#define NE_DNS_FLAG_CD 0x0010

/* One record (or question: ttl 0, no rdata). Strings and rdata are owned by the message. */
struct ne_dns_record {
	ne_dns_section section;
	const char *name;
	uint16_t type, rclass;
	uint32_t ttl;
	const uint8_t *rdata;  /* as on the wire (names inside may be compressed pointers) */
	uint16_t rdlen;
	int family;            /* A: AF_INET, AAAA: AF_INET6, else 0 */
	uint8_t addr[16];      /* the address when family is set */
	const char *target;    /* CNAME, NS, PTR: the name in rdata; MX, SRV: the exchange /
				* target; else NULL */
};

/* Parses bytes (copied). -EBADMSG for a malformed message (see src/common/dns.h for what is
 * checked), -E2BIG for more than 512 records, -ENOMEM. */
NE_EXPORT int ne_dns_message_parse(const void *bytes, size_t len, ne_dns_message **ret);
NE_EXPORT void ne_dns_message_free(ne_dns_message *m); /* NULL ok */
NE_EXPORT const uint8_t *ne_dns_message_bytes(const ne_dns_message *m, size_t *ret_len);

NE_EXPORT uint16_t ne_dns_message_id(const ne_dns_message *m);
NE_EXPORT uint16_t ne_dns_message_flags(const ne_dns_message *m); /* NE_DNS_FLAG_* bits */
NE_EXPORT bool ne_dns_message_is_response(const ne_dns_message *m);
NE_EXPORT int ne_dns_message_opcode(const ne_dns_message *m);
/* The rcode, with the 8 extended bits of EDNS(0) when the message has an OPT record. */
NE_EXPORT int ne_dns_message_rcode(const ne_dns_message *m);
/* EDNS(0): the advertised UDP payload size, 0 without an OPT record. */
NE_EXPORT uint16_t ne_dns_message_edns_udp_size(const ne_dns_message *m);

/* The first question: name ("" when the message has none), type and class (0 when none). */
NE_EXPORT const char *ne_dns_message_qname(const ne_dns_message *m);
NE_EXPORT uint16_t ne_dns_message_qtype(const ne_dns_message *m);
NE_EXPORT uint16_t ne_dns_message_qclass(const ne_dns_message *m);

/* Records per section (the OPT pseudo-record is counted in the additional section). */
NE_EXPORT size_t ne_dns_message_count(const ne_dns_message *m, ne_dns_section section);
/* Record i of a section; -ERANGE past the end. */
NE_EXPORT int ne_dns_message_record(const ne_dns_message *m, ne_dns_section section, size_t i,
				    struct ne_dns_record *ret);

/* Whether name is domain or below it ("a.corp.example" is in "corp.example", and so is
 * "corp.example"; "badcorp.example" is not). Both in presentation form, any case, final dot
 * optional; "" (the root) contains every name. */
NE_EXPORT bool ne_dns_name_in_domain(const char *name, const char *domain);

/* A response to query: same id, opcode and question, QR and RA set, RD copied, an EDNS(0)
 * record when the query had one, rcode as given, no records yet. */
NE_EXPORT int ne_dns_builder_new_response(const ne_dns_message *query, int rcode, ne_dns_builder **ret);
/* A query (tests, providers that resolve on their own): RD set, a random id when id is 0. */
NE_EXPORT int ne_dns_builder_new_query(uint16_t id, const char *name, uint16_t type, ne_dns_builder **ret);
NE_EXPORT void ne_dns_builder_free(ne_dns_builder *b); /* NULL ok */
NE_EXPORT int ne_dns_builder_set_rcode(ne_dns_builder *b, int rcode);
NE_EXPORT int ne_dns_builder_set_flags(ne_dns_builder *b, uint16_t flags); /* NE_DNS_FLAG_* */
/* Records go in section order (answer, then authority, then additional): adding to an
 * earlier section than the last one used returns -EPROTO. */
NE_EXPORT int ne_dns_builder_add_address(ne_dns_builder *b, ne_dns_section section, const char *name,
					 uint32_t ttl, int family, const void *addr);
/* CNAME, NS or PTR. */
NE_EXPORT int ne_dns_builder_add_name(ne_dns_builder *b, ne_dns_section section, const char *name,
				      uint16_t type, uint32_t ttl, const char *target);
/* TXT with one character-string per 255 bytes of text. */
NE_EXPORT int ne_dns_builder_add_txt(ne_dns_builder *b, ne_dns_section section, const char *name,
				     uint32_t ttl, const char *text);
/* Any record with opaque rdata (class IN). */
NE_EXPORT int ne_dns_builder_add_record(ne_dns_builder *b, ne_dns_section section, const char *name,
					uint16_t type, uint32_t ttl, const void *rdata, uint16_t rdlen);
/* Copies record i of section from another message (names in rdata decompressed). */
NE_EXPORT int ne_dns_builder_copy_record(ne_dns_builder *b, ne_dns_section to, const ne_dns_message *from,
					 ne_dns_section section, size_t i);
/* Finishes the message and parses it into *ret; the builder is freed either way. -EMSGSIZE
 * past 65535 bytes; the first error of an add call, if any. */
NE_EXPORT int ne_dns_builder_finish(ne_dns_builder *b, ne_dns_message **ret);

#ifdef __cplusplus
}
#endif

#endif
