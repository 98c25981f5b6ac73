/* DNS message parser (see dns.h).
 *
 * Trust: the message comes from the network, so from anyone who can send a packet from port 53.
 * dns_parse() checks every count, length and compression pointer before anything else looks
 * at the message; the accessors then walk names with the same checked walker (so a caller
 * that passes a wrong offset gets an error, not a read out of bounds).
 *
 * Compression pointers must point before the start of the run of labels that contains them
 * (the name's own start, or the previous pointer's target): the positions a walk visits
 * strictly decrease at every jump, so no input can make it loop, and it ends after at most
 * len jumps. A cap on jumps bounds the work per name further. */
#include "dns.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define DNS_HDR_LEN 12
#define DNS_QUESTION_MIN 5   /* root name, type, class */
#define DNS_RR_MIN 11        /* root name, type, class, ttl, rdlength */
#define DNS_JUMPS_MAX 127    /* a 255-byte name has at most 127 labels; one jump per label */

/* A name flattened to uncompressed wire form (labels with length bytes, root label last). */
struct wname {
	uint8_t b[DNS_NAME_MAX];
	size_t len;
};

/* The parse in progress. rr == NULL: validate only (first pass). */
struct parser {
	const uint8_t *p;
	size_t len, off;
	struct dns_rr *rr;
	size_t n_rr;
	bool has_opt;
	uint16_t udp_size;
	uint8_t ext_rcode_hi;
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

/* Walks the name at off in p[0..len). The name's first run of labels must end by `limit`
 * (the end of the rdata it sits in, or len); a jump must land before the start of the run it
 * was read in, and the walk then goes on up to len at most. On success, *ret_end is the offset just past the name's bytes at off
 * (after its root label or first pointer), and ret_w (if not NULL) receives the flat name. */
static int name_walk(const uint8_t *p, size_t len, size_t off, size_t limit, size_t *ret_end,
		     struct wname *ret_w)
{
	struct wname w;
	size_t run_start = off, end = 0, jumps = 0;

	w.len = 0;
	for (;;) {
		uint8_t c;

		if (off >= limit)
			return -EBADMSG;
		c = p[off];
		if ((c & 0xc0) == 0xc0) {
			size_t target;

			if (off + 2 > limit || ++jumps > DNS_JUMPS_MAX)
				return -EBADMSG;
			target = (size_t)(c & 0x3f) << 8 | p[off + 1];
			if (target >= run_start)
				return -EBADMSG;
			if (!end)
				end = off + 2;
			off = run_start = target;
			limit = len;
			continue;
		}
		if (c & 0xc0)
			return -EBADMSG; /* 0x40, 0x80: reserved (RFC 6891 retired binary labels) */
		if (off + 1 + c > limit || w.len + 1 + c > DNS_NAME_MAX)
			return -EBADMSG;
		memcpy(w.b + w.len, p + off, 1 + (size_t)c);
		w.len += 1 + (size_t)c;
		off += 1 + (size_t)c;
		if (c == 0)
			break;
	}
	*ret_end = end ? end : off;
	if (ret_w)
		*ret_w = w;
	return 0;
}

/* Checks a name inside rdata and advances *off past it. */
static int rdata_name(const struct parser *ps, size_t *off, size_t end)
{
	return name_walk(ps->p, ps->len, *off, end, off, NULL);
}

/* RFC 6891 options: code, length, data; they must fill the rdata exactly. */
static int opt_options(const uint8_t *p, size_t off, size_t end)
{
	while (off < end) {
		if (end - off < 4 || end - off - 4 < get16(p + off + 2))
			return -EBADMSG;
		off += 4 + (size_t)get16(p + off + 2);
	}
	return 0;
}

/* Types whose rdata holds names are checked, since callers follow them (CNAME) or may
 * print them; other types are opaque bytes. */
static int rdata_check(const struct parser *ps, uint16_t type, size_t off, size_t end)
{
	int r = 0;

	switch (type) {
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
	case DNS_TYPE_PTR:
		r = rdata_name(ps, &off, end);
		break;
	case DNS_TYPE_MX:
		off += 2;
		r = off <= end ? rdata_name(ps, &off, end) : -EBADMSG;
		break;
	case DNS_TYPE_SRV:
		off += 6;
		r = off <= end ? rdata_name(ps, &off, end) : -EBADMSG;
		break;
	case DNS_TYPE_SOA:
		r = rdata_name(ps, &off, end);
		if (r == 0)
			r = rdata_name(ps, &off, end);
		off += 20;
		break;
	case DNS_TYPE_OPT:
		return opt_options(ps->p, off, end);
	default:
		return 0;
	}
	return r == 0 && off != end ? -EBADMSG : r;
}

/* EDNS(0): one OPT, in the additional section, owned by the root name. */
static int opt_record(struct parser *ps, enum dns_section sec, size_t name_off, uint16_t class,
		      uint32_t ttl)
{
	if (ps->has_opt || sec != DNS_SEC_ADDITIONAL || ps->p[name_off] != 0)
		return -EBADMSG;
	ps->has_opt = true;
	ps->udp_size = class;
	ps->ext_rcode_hi = (uint8_t)(ttl >> 24);
	return 0;
}

static int parse_rr(struct parser *ps, enum dns_section sec)
{
	struct dns_rr rr = { .section = sec, .name_off = ps->off };
	size_t off;
	int r;

	r = name_walk(ps->p, ps->len, ps->off, ps->len, &off, NULL);
	if (r < 0)
		return r;
	if (ps->len - off < (sec == DNS_SEC_QUESTION ? 4u : 10u))
		return -EBADMSG;
	rr.type = get16(ps->p + off);
	rr.class = get16(ps->p + off + 2);
	off += 4;
	if (sec != DNS_SEC_QUESTION) {
		rr.ttl = get32(ps->p + off);
		rr.rdlen = get16(ps->p + off + 4);
		rr.rdata_off = off + 6;
		off = rr.rdata_off + rr.rdlen;
		if (off > ps->len)
			return -EBADMSG;
		r = rdata_check(ps, rr.type, rr.rdata_off, off);
		if (r < 0)
			return r;
	}
	if (rr.type == DNS_TYPE_OPT) {
		r = opt_record(ps, sec, rr.name_off, rr.class, rr.ttl);
		if (r < 0)
			return r;
	}
	if (ps->rr)
		ps->rr[ps->n_rr] = rr;
	ps->n_rr++;
	ps->off = off;
	return 0;
}

static void parse_header(const uint8_t *p, struct dns_header *h)
{
	h->id = get16(p);
	h->qr = p[2] & 0x80;
	h->opcode = (p[2] >> 3) & 0x0f;
	h->aa = p[2] & 0x04;
	h->tc = p[2] & 0x02;
	h->rd = p[2] & 0x01;
	h->ra = p[3] & 0x80;
	h->ad = p[3] & 0x20;
	h->cd = p[3] & 0x10;
	h->rcode = p[3] & 0x0f;
	h->qdcount = get16(p + 4);
	h->ancount = get16(p + 6);
	h->nscount = get16(p + 8);
	h->arcount = get16(p + 10);
}

/* One pass over the sections; with ps->rr set it also stores the records. */
static int parse_sections(struct parser *ps, const struct dns_header *h)
{
	const uint16_t counts[] = { h->qdcount, h->ancount, h->nscount, h->arcount };
	size_t s, i;
	int r;

	ps->off = DNS_HDR_LEN;
	for (s = 0; s < 4; s++)
		for (i = 0; i < counts[s]; i++) {
			r = parse_rr(ps, (enum dns_section)s);
			if (r < 0)
				return r;
		}
	return ps->off == ps->len ? 0 : -EBADMSG;
}

int dns_parse(const uint8_t *p, size_t len, struct dns_msg *m)
{
	struct parser ps = { .p = p, .len = len };
	struct dns_header h;
	size_t records;
	int r;

	if (len < DNS_HDR_LEN || len > DNS_MSG_MAX)
		return -EBADMSG;
	parse_header(p, &h);
	/* Counts first against the smallest records they could be, then against our room. */
	records = (size_t)h.ancount + h.nscount + h.arcount;
	if (DNS_HDR_LEN + (size_t)h.qdcount * DNS_QUESTION_MIN + records * DNS_RR_MIN > len)
		return -EBADMSG;
	if (h.qdcount + records > DNS_MAX_RECORDS)
		return -E2BIG;
	/* Validate everything before touching m, then store (which cannot fail). */
	r = parse_sections(&ps, &h);
	if (r < 0)
		return r;
	ps = (struct parser){ .p = p, .len = len, .rr = m->rr };
	r = parse_sections(&ps, &h);
	if (r < 0)
		return r;
	m->p = p;
	m->len = len;
	m->h = h;
	m->n_rr = ps.n_rr;
	m->has_opt = ps.has_opt;
	m->udp_size = ps.has_opt ? ps.udp_size : 0;
	m->ext_rcode = (uint16_t)(ps.ext_rcode_hi << 4 | h.rcode);
	return 0;
}

static int name_get(const struct dns_msg *m, size_t off, struct wname *ret)
{
	size_t end;

	return name_walk(m->p, m->len, off, m->len, &end, ret);
}

static bool char_plain(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 'a' - 'A') : c;
}

/* Appends one label byte in presentation form; t has room (checked by the caller). */
static size_t text_char(char *t, uint8_t c)
{
	c = lower(c);
	if (char_plain(c)) {
		t[0] = (char)c;
		return 1;
	}
	t[0] = '\\';
	t[1] = (char)('0' + c / 100);
	t[2] = (char)('0' + c / 10 % 10);
	t[3] = (char)('0' + c % 10);
	return 4;
}

int dns_name_text(const struct dns_msg *m, size_t off, char *text, size_t size)
{
	char buf[DNS_NAME_TEXT_MAX];
	struct wname w;
	size_t i = 0, n = 0, k;
	int r;

	r = name_get(m, off, &w);
	if (r < 0)
		return r;
	/* buf holds any name: each wire byte gives at most 4 characters. */
	while (w.b[i]) {
		if (n)
			buf[n++] = '.';
		for (k = 1; k <= w.b[i]; k++)
			n += text_char(buf + n, w.b[i + k]);
		i += 1 + (size_t)w.b[i];
	}
	if (n >= size)
		return -ENOBUFS;
	memcpy(text, buf, n);
	text[n] = '\0';
	return (int)n;
}

int dns_name_canonical(const struct dns_msg *m, size_t off, uint8_t *out, size_t size)
{
	struct wname w;
	size_t i;
	int r;

	r = name_get(m, off, &w);
	if (r < 0)
		return r;
	if (w.len > size)
		return -ENOBUFS;
	/* Length bytes are < 64, so lower() leaves them alone. */
	for (i = 0; i < w.len; i++)
		out[i] = lower(w.b[i]);
	return (int)w.len;
}

bool dns_name_equal(const struct dns_msg *m, size_t off_a, size_t off_b)
{
	uint8_t a[DNS_NAME_MAX], b[DNS_NAME_MAX];
	int la = dns_name_canonical(m, off_a, a, sizeof(a));
	int lb = dns_name_canonical(m, off_b, b, sizeof(b));

	return la > 0 && la == lb && memcmp(a, b, (size_t)la) == 0;
}

const uint8_t *dns_rr_addr(const struct dns_msg *m, const struct dns_rr *rr, int *ret_family)
{
	int family;

	if (rr->section == DNS_SEC_QUESTION || rr->class != DNS_CLASS_IN)
		return NULL;
	if (rr->type == DNS_TYPE_A && rr->rdlen == 4)
		family = AF_INET;
	else if (rr->type == DNS_TYPE_AAAA && rr->rdlen == 16)
		family = AF_INET6;
	else
		return NULL;
	if (rr->rdata_off + rr->rdlen > m->len)
		return NULL;
	*ret_family = family;
	return m->p + rr->rdata_off;
}

int dns_rr_cname_target(const struct dns_msg *m, const struct dns_rr *rr, size_t *ret_off)
{
	if (rr->section == DNS_SEC_QUESTION || rr->type != DNS_TYPE_CNAME)
		return -EINVAL;
	if (rr->rdata_off >= m->len)
		return -EINVAL;
	*ret_off = rr->rdata_off;
	return 0;
}

static bool host_char(char c)
{
	return (c >= 'A' && c <= 'Z') || char_plain((uint8_t)c) || c == '.';
}

int dns_name_normalize(const char *in, char *out, size_t size)
{
	char buf[DNS_NAME_MAX];
	size_t len = strnlen(in, DNS_NAME_MAX), i, label = 0;

	if (len && in[len - 1] == '.')
		len--; /* one final dot: the absolute form of the same name */
	if (len == 0 || len > 253)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (!host_char(in[i]))
			return -EINVAL;
		if (in[i] == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
		} else if (++label > DNS_LABEL_MAX)
			return -EINVAL;
		buf[i] = (char)lower((uint8_t)in[i]);
	}
	if (label == 0)
		return -EINVAL;
	if (len >= size)
		return -ENOBUFS;
	memcpy(out, buf, len);
	out[len] = '\0';
	return 0;
}

bool dns_name_matches(const char *pattern, const char *name)
{
	size_t lp = strlen(pattern), ln = strlen(name);

	if (lp == ln)
		return strcmp(pattern, name) == 0;
	if (!strchr(pattern, '.') || ln <= lp + 1)
		return false;
	/* Below the pattern: the name ends in "." + pattern, at a label boundary. */
	return name[ln - lp - 1] == '.' && strcmp(name + ln - lp, pattern) == 0;
}
