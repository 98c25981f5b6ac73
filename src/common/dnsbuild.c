/* Building DNS messages (see dns.h, second half).
 *
 * Trust: a message handed in (struct dns_msg) was validated by dns_parse(), but every offset
 * taken from it is still checked against its length before use, so a caller that passes a
 * record of another message gets an error, not a read out of bounds. Names given as text
 * come from providers and people: they are converted with every escape and limit checked.
 * Output never exceeds the caller's capacity (nor DNS_MSG_MAX).
 *
 * This runs for every query the daemon answers or forwards: no allocation, and compression
 * is a bounded search over at most DNS_BUILDER_PTRS remembered label offsets. */
#include "dns.h"

#include <errno.h>
#include <string.h>

#define HDR_LEN 12
#define PTR_LIMIT 0x4000  /* a compression pointer holds 14 bits of offset */
#define JUMPS_MAX 127     /* as in dns.c: one jump per label of a 255-byte name */
#define OPT_UDP_ANSWER 1232
#define EDNS_DO 0x8000u

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) << 16 | get16(p + 2);
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 'a' - 'A') : c;
}

static void fail(struct dns_builder *b, int err)
{
	if (!b->err)
		b->err = err;
}

/* Whether n more bytes fit; records -EMSGSIZE when not. */
static bool room(struct dns_builder *b, size_t n)
{
	if (b->err)
		return false;
	if (b->cap - b->len < n) {
		fail(b, -EMSGSIZE);
		return false;
	}
	return true;
}

static void put_bytes(struct dns_builder *b, const void *p, size_t n)
{
	if (room(b, n) && n) {
		memcpy(b->p + b->len, p, n);
		b->len += n;
	}
}

static void put16(struct dns_builder *b, uint16_t v)
{
	const uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put_bytes(b, p, 2);
}

static void put32(struct dns_builder *b, uint32_t v)
{
	put16(b, (uint16_t)(v >> 16));
	put16(b, (uint16_t)v);
}

static void set16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ---- names ------------------------------------------------------------------------------ */

static int digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : -1;
}

/* One character of presentation form at *s (an escape or a plain byte), advancing *s.
 * Plain bytes are printable ASCII other than space; anything else must be escaped. */
static int text_byte(const char **s)
{
	const char *t = *s;
	int v;

	if (*t != '\\') {
		if (*t <= ' ' || *t > '~')
			return -EINVAL;
		*s = t + 1;
		return (uint8_t)*t;
	}
	t++;
	if (digit(t[0]) < 0) {
		if (*t < ' ' || *t > '~')
			return -EINVAL; /* includes the NUL after a final backslash */
		*s = t + 1;
		return (uint8_t)*t;
	}
	if (digit(t[1]) < 0 || digit(t[2]) < 0)
		return -EINVAL;
	v = digit(t[0]) * 100 + digit(t[1]) * 10 + digit(t[2]);
	if (v > 255)
		return -EINVAL;
	*s = t + 3;
	return v;
}

int dns_name_from_text(const char *text, uint8_t *out, size_t size)
{
	uint8_t w[DNS_NAME_MAX];
	size_t n = 0, label = 0; /* label: where the current label's length byte is */
	const char *s = text;

	if (!text)
		return -EINVAL;
	if (s[0] == '.' && s[1] == '\0')
		s++; /* "." is the root, like "" */
	while (*s) {
		int c;

		if (n == label) { /* starting a label: room for its length byte */
			if (n + 1 >= DNS_NAME_MAX)
				return -EINVAL;
			w[n++] = 0;
		}
		if (*s == '.') {
			if (w[label] == 0)
				return -EINVAL; /* empty label */
			label = n;
			s++;
			continue;
		}
		c = text_byte(&s);
		if (c < 0)
			return c;
		/* The root label still has to follow: n + 1 < DNS_NAME_MAX. */
		if (w[label] == DNS_LABEL_MAX || n + 2 > DNS_NAME_MAX)
			return -EINVAL;
		w[label]++;
		w[n++] = (uint8_t)c;
	}
	w[n++] = 0; /* the root; a label opened above always got a byte or failed */
	if (n > size)
		return -ENOBUFS;
	memcpy(out, w, n);
	return (int)n;
}

/* Flattens the name at off in p[0..len), keeping its case, into out (DNS_NAME_MAX bytes).
 * The first run of labels must end by limit (the end of the rdata it sits in); a pointer
 * must land before the start of the run it was read in (the rule dns_parse() enforces, so
 * a validated message always passes, and no input can loop). *ret_end: just past the name's
 * own bytes at off. Returns the flat length. */
static int name_read(const uint8_t *p, size_t len, size_t off, size_t limit, uint8_t *out,
		     size_t *ret_end)
{
	size_t run_start = off, end = 0, n = 0, jumps = 0;

	if (limit > len)
		return -EINVAL;
	for (;;) {
		uint8_t c;

		if (off >= limit)
			return -EINVAL;
		c = p[off];
		if ((c & 0xc0) == 0xc0) {
			size_t target;

			if (off + 2 > limit || ++jumps > JUMPS_MAX)
				return -EINVAL;
			target = (size_t)(c & 0x3f) << 8 | p[off + 1];
			if (target >= run_start)
				return -EINVAL;
			if (!end)
				end = off + 2;
			off = run_start = target;
			limit = len;
			continue;
		}
		if (c > DNS_LABEL_MAX || off + 1 + c > limit || n + 1 + c > DNS_NAME_MAX)
			return -EINVAL;
		memcpy(out + n, p + off, 1 + (size_t)c);
		n += 1 + (size_t)c;
		off += 1 + (size_t)c;
		if (c == 0)
			break;
	}
	*ret_end = end ? end : off;
	return (int)n;
}

static bool label_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] != b[i] && lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* Whether the name the builder wrote at off equals the flat name w, ignoring ASCII case.
 * Offsets in b->ptrs and the pointers the builder wrote lead only to labels it wrote, but
 * the walk is bounded anyway. */
static bool name_at_equals(const struct dns_builder *b, size_t off, const uint8_t *w)
{
	size_t i = 0, jumps = 0;

	for (;;) {
		uint8_t c;

		if (off >= b->len)
			return false;
		c = b->p[off];
		if ((c & 0xc0) == 0xc0) {
			if (off + 2 > b->len || ++jumps > JUMPS_MAX)
				return false;
			off = (size_t)(c & 0x3f) << 8 | b->p[off + 1];
			continue;
		}
		if (c != w[i] || off + 1 + c > b->len)
			return false;
		if (c == 0)
			return true;
		if (!label_equal(b->p + off + 1, w + i + 1, c))
			return false;
		off += 1 + (size_t)c;
		i += 1 + (size_t)c;
	}
}

/* The remembered name that equals the suffix w, or -1. */
static int find_suffix(const struct dns_builder *b, const uint8_t *w)
{
	size_t k;

	for (k = 0; k < b->n_ptrs; k++)
		if (b->p[b->ptrs[k]] == w[0] && name_at_equals(b, b->ptrs[k], w))
			return (int)k;
	return -1;
}

/* Writes the flat name w: its labels up to the longest suffix written before, then a pointer
 * to that (when compress), and remembers where the new labels start for later names. */
static void put_name(struct dns_builder *b, const uint8_t *w, bool compress)
{
	size_t start = b->len, i = 0, j;
	int k = -1;

	if (b->err)
		return;
	while (w[i]) {
		if (compress && (k = find_suffix(b, w + i)) >= 0)
			break;
		i += 1 + (size_t)w[i];
	}
	if (k >= 0) {
		put_bytes(b, w, i);
		put16(b, (uint16_t)(0xc000 | b->ptrs[k]));
	} else
		put_bytes(b, w, i + 1);
	if (b->err)
		return;
	for (j = 0; j < i && b->n_ptrs < DNS_BUILDER_PTRS; j += 1 + (size_t)w[j])
		if (start + j < PTR_LIMIT)
			b->ptrs[b->n_ptrs++] = (uint16_t)(start + j);
}

static void put_text_name(struct dns_builder *b, const char *name, bool compress)
{
	uint8_t w[DNS_NAME_MAX];

	if (b->err)
		return;
	if (dns_name_from_text(name, w, sizeof(w)) < 0) {
		fail(b, -EINVAL);
		return;
	}
	put_name(b, w, compress);
}

/* Copies the name at *off of message p (its first run ending by end), advancing *off. */
static void copy_name(struct dns_builder *b, const uint8_t *p, size_t len, size_t *off, size_t end,
		      bool compress)
{
	uint8_t w[DNS_NAME_MAX];

	if (b->err)
		return;
	if (name_read(p, len, *off, end, w, off) < 0) {
		fail(b, -EINVAL);
		return;
	}
	put_name(b, w, compress);
}

static void copy_fixed(struct dns_builder *b, const uint8_t *p, size_t *off, size_t end, size_t n)
{
	if (b->err)
		return;
	if (end - *off < n) {
		fail(b, -EINVAL);
		return;
	}
	put_bytes(b, p + *off, n);
	*off += n;
}

/* ---- records ---------------------------------------------------------------------------- */

/* Moves to section sec (never backwards) for one more entry; false when the builder failed. */
static bool enter(struct dns_builder *b, enum dns_section sec)
{
	if (b->err)
		return false;
	if ((unsigned)sec > DNS_SEC_ADDITIONAL) {
		fail(b, -EINVAL);
		return false;
	}
	if (sec < b->section) {
		fail(b, -EPROTO);
		return false;
	}
	b->section = sec;
	return true;
}

/* Counts the entry just written in the current section. */
static void count(struct dns_builder *b)
{
	if (b->err)
		return;
	if (b->counts[b->section] == UINT16_MAX) {
		fail(b, -EMSGSIZE);
		return;
	}
	b->counts[b->section]++;
}

/* Type, class, ttl and a placeholder rdlength after an owner name; returns where the
 * rdlength goes. */
static size_t rr_head(struct dns_builder *b, uint16_t type, uint16_t class, uint32_t ttl)
{
	put16(b, type);
	put16(b, class);
	put32(b, ttl);
	put16(b, 0);
	return b->len - 2;
}

static void rr_end(struct dns_builder *b, size_t rdlen_at)
{
	if (b->err)
		return;
	/* cap ≤ DNS_MSG_MAX, so the rdata is shorter than 65536 bytes. */
	set16(b->p + rdlen_at, (uint16_t)(b->len - rdlen_at - 2));
	count(b);
}

void dns_builder_init(struct dns_builder *b, uint8_t *buf, size_t cap, const struct dns_header *h)
{
	uint8_t hdr[HDR_LEN] = { 0 };

	/* Field by field: ptrs[] needs no clearing (n_ptrs says how many are set). */
	b->p = buf;
	b->len = 0;
	b->cap = cap < DNS_MSG_MAX ? cap : DNS_MSG_MAX;
	b->err = 0;
	b->section = DNS_SEC_QUESTION;
	memset(b->counts, 0, sizeof(b->counts));
	b->n_ptrs = 0;
	set16(hdr, h->id);
	hdr[2] = (uint8_t)((h->qr ? 0x80 : 0) | (h->opcode & 0x0f) << 3 | (h->aa ? 0x04 : 0) |
			   (h->tc ? 0x02 : 0) | (h->rd ? 0x01 : 0));
	hdr[3] = (uint8_t)((h->ra ? 0x80 : 0) | (h->ad ? 0x20 : 0) | (h->cd ? 0x10 : 0) |
			   (h->rcode & 0x0f));
	put_bytes(b, hdr, sizeof(hdr));
}

void dns_builder_question(struct dns_builder *b, const char *name, uint16_t type, uint16_t class)
{
	if (!enter(b, DNS_SEC_QUESTION))
		return;
	put_text_name(b, name, true);
	put16(b, type);
	put16(b, class);
	count(b);
}

void dns_builder_rr(struct dns_builder *b, enum dns_section sec, const char *name, uint16_t type,
		    uint16_t class, uint32_t ttl, const void *rdata, uint16_t rdlen)
{
	size_t at;

	if (sec == DNS_SEC_QUESTION || (rdlen && !rdata))
		fail(b, -EINVAL);
	if (!enter(b, sec))
		return;
	put_text_name(b, name, true);
	at = rr_head(b, type, class, ttl);
	put_bytes(b, rdata, rdlen);
	rr_end(b, at);
}

void dns_builder_rr_name(struct dns_builder *b, enum dns_section sec, const char *name, uint16_t type,
			 uint32_t ttl, const char *target)
{
	size_t at;

	if (sec == DNS_SEC_QUESTION ||
	    (type != DNS_TYPE_CNAME && type != DNS_TYPE_NS && type != DNS_TYPE_PTR))
		fail(b, -EINVAL);
	if (!enter(b, sec))
		return;
	put_text_name(b, name, true);
	at = rr_head(b, type, DNS_CLASS_IN, ttl);
	put_text_name(b, target, true);
	rr_end(b, at);
}

/* The rdata of rr, names read out of p and written per RFC 3597 §4: compressed in the types
 * of RFC 1035, never in SRV (RFC 2782). It must be used up exactly, as dns_parse() checked. */
static void copy_rdata(struct dns_builder *b, const uint8_t *p, size_t len, const struct dns_rr *rr)
{
	size_t off = rr->rdata_off, end = rr->rdata_off + rr->rdlen;

	switch (rr->type) {
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
	case DNS_TYPE_PTR:
		copy_name(b, p, len, &off, end, true);
		break;
	case DNS_TYPE_MX:
		copy_fixed(b, p, &off, end, 2);
		copy_name(b, p, len, &off, end, true);
		break;
	case DNS_TYPE_SRV:
		copy_fixed(b, p, &off, end, 6);
		copy_name(b, p, len, &off, end, false);
		break;
	case DNS_TYPE_SOA:
		copy_name(b, p, len, &off, end, true);
		copy_name(b, p, len, &off, end, true);
		copy_fixed(b, p, &off, end, 20);
		break;
	default:
		copy_fixed(b, p, &off, end, rr->rdlen);
		break;
	}
	if (off != end)
		fail(b, -EINVAL);
}

void dns_builder_copy_rr_raw(struct dns_builder *b, enum dns_section sec, const uint8_t *p, size_t len,
			     const struct dns_rr *rr)
{
	size_t name_off = rr->name_off, at;
	bool question = rr->section == DNS_SEC_QUESTION;

	if (!question && (rr->rdata_off > len || len - rr->rdata_off < rr->rdlen))
		fail(b, -EINVAL);
	if (!enter(b, sec))
		return;
	copy_name(b, p, len, &name_off, len, true);
	if (sec == DNS_SEC_QUESTION) {
		put16(b, rr->type);
		put16(b, rr->class);
		count(b);
		return;
	}
	at = rr_head(b, rr->type, rr->class, question ? 0 : rr->ttl);
	if (!question)
		copy_rdata(b, p, len, rr);
	rr_end(b, at);
}

void dns_builder_copy_rr(struct dns_builder *b, enum dns_section sec, const struct dns_msg *m,
			 const struct dns_rr *rr)
{
	dns_builder_copy_rr_raw(b, sec, m->p, m->len, rr);
}

void dns_builder_opt(struct dns_builder *b, uint16_t udp_size, uint8_t ext_rcode_hi, bool dnssec_ok)
{
	size_t at;

	if (!enter(b, DNS_SEC_ADDITIONAL) || !room(b, 1))
		return;
	b->p[b->len++] = 0; /* root owner */
	at = rr_head(b, DNS_TYPE_OPT, udp_size,
		     (uint32_t)ext_rcode_hi << 24 | (dnssec_ok ? EDNS_DO : 0));
	rr_end(b, at);
}

int dns_builder_finish(struct dns_builder *b)
{
	size_t s;

	if (b->err)
		return b->err;
	for (s = 0; s < 4; s++)
		set16(b->p + 4 + 2 * s, b->counts[s]);
	return (int)b->len;
}

/* ---- answers ---------------------------------------------------------------------------- */

/* The OPT record of a parsed message, or NULL. */
static const struct dns_rr *find_opt(const struct dns_msg *m)
{
	size_t i;

	if (!m->has_opt)
		return NULL;
	for (i = m->n_rr; i-- > 0;)
		if (m->rr[i].type == DNS_TYPE_OPT && m->rr[i].section == DNS_SEC_ADDITIONAL)
			return &m->rr[i];
	return NULL;
}

int dns_answer_rcode(const struct dns_msg *q, uint8_t rcode, uint8_t *out, size_t cap)
{
	const struct dns_header h = {
		.id = q->h.id, .opcode = q->h.opcode, .qr = true, .rd = q->h.rd, .ra = true,
		.rcode = rcode,
	};
	const struct dns_rr *opt = find_opt(q);
	const struct dns_rr *question = q->h.qdcount && q->n_rr ? &q->rr[0] : NULL;
	uint8_t name[DNS_NAME_MAX];
	struct dns_builder b;
	size_t end;

	if (rcode > 0x0f)
		return -EINVAL;
	/* Everything is read from q before out is written: out may be q's own buffer. */
	if (question && name_read(q->p, q->len, question->name_off, q->len, name, &end) < 0)
		return -EINVAL;
	dns_builder_init(&b, out, cap, &h);
	if (question) {
		enter(&b, DNS_SEC_QUESTION);
		put_name(&b, name, true);
		put16(&b, question->type);
		put16(&b, question->class);
		count(&b);
	}
	if (opt) /* RFC 3225 §3: DO is copied from the query */
		dns_builder_opt(&b, OPT_UDP_ANSWER, 0, opt->ttl & EDNS_DO);
	return dns_builder_finish(&b);
}

int dns_answer_formerr_raw(const uint8_t *p, size_t len, uint8_t *out, size_t cap)
{
	uint8_t hdr[HDR_LEN] = { 0 };

	if (len < HDR_LEN || (p[2] & 0x80))
		return -EBADMSG;
	if (cap < HDR_LEN)
		return -EMSGSIZE;
	hdr[0] = p[0];
	hdr[1] = p[1];
	hdr[2] = (uint8_t)(0x80 | (p[2] & 0x78));
	hdr[3] = (uint8_t)(0x80 | DNS_RCODE_FORMERR);
	memcpy(out, hdr, HDR_LEN); /* out may be p */
	return HDR_LEN;
}

/* resp's header with TC set, its questions and, when with_opt, its OPT record. */
static int truncated(const struct dns_msg *resp, bool with_opt, uint8_t *out, size_t cap)
{
	struct dns_header h = resp->h;
	const struct dns_rr *opt = find_opt(resp);
	struct dns_builder b;
	size_t i;

	h.tc = true;
	dns_builder_init(&b, out, cap, &h);
	for (i = 0; i < resp->n_rr && resp->rr[i].section == DNS_SEC_QUESTION; i++)
		dns_builder_copy_rr(&b, DNS_SEC_QUESTION, resp, &resp->rr[i]);
	if (with_opt && opt)
		dns_builder_copy_rr(&b, DNS_SEC_ADDITIONAL, resp, opt);
	return dns_builder_finish(&b);
}

int dns_truncate(const struct dns_msg *resp, size_t limit, uint8_t *out, size_t cap)
{
	int r;

	if (limit > cap)
		limit = cap;
	if (resp->len <= limit) {
		memmove(out, resp->p, resp->len);
		return (int)resp->len;
	}
	/* Rebuilt from resp's bytes: out must not overlap them. */
	if (out < resp->p + resp->len && resp->p < out + limit)
		return -EINVAL;
	/* Without the OPT (its options can be long) when it alone is too much, then without
	 * the questions: a header with TC still tells the client to retry over TCP. */
	r = truncated(resp, true, out, limit);
	if (r == -EMSGSIZE)
		r = truncated(resp, false, out, limit);
	if (r == -EMSGSIZE && limit >= HDR_LEN) {
		struct dns_header h = resp->h;
		struct dns_builder b;

		h.tc = true;
		dns_builder_init(&b, out, limit, &h);
		r = dns_builder_finish(&b);
	}
	return r;
}

bool dns_response_matches(const struct dns_msg *q, const struct dns_msg *resp)
{
	uint8_t a[DNS_NAME_MAX], b[DNS_NAME_MAX];
	const struct dns_rr *qq, *rq;
	int la, lb;

	if (!resp->h.qr || resp->h.id != q->h.id || resp->h.opcode != q->h.opcode ||
	    resp->h.qdcount != q->h.qdcount)
		return false;
	if (q->h.qdcount == 0)
		return true;
	if (q->n_rr == 0 || resp->n_rr == 0)
		return false;
	qq = &q->rr[0];
	rq = &resp->rr[0];
	if (qq->type != rq->type || qq->class != rq->class)
		return false;
	la = dns_name_canonical(q, qq->name_off, a, sizeof(a));
	lb = dns_name_canonical(resp, rq->name_off, b, sizeof(b));
	return la > 0 && la == lb && memcmp(a, b, (size_t)la) == 0;
}

size_t dns_udp_limit(const struct dns_msg *q)
{
	if (!q->has_opt || q->udp_size <= 512)
		return 512;
	return q->udp_size < 4096 ? q->udp_size : 4096;
}

int dns_question(const struct dns_msg *m, char *name, size_t size, uint16_t *ret_type, uint16_t *ret_class)
{
	const struct dns_rr *rr;
	int r;

	if (m->n_rr == 0 || m->rr[0].section != DNS_SEC_QUESTION)
		return -ENOENT;
	rr = &m->rr[0];
	r = dns_name_text(m, rr->name_off, name, size);
	if (r < 0)
		return r;
	if (ret_type)
		*ret_type = rr->type;
	if (ret_class)
		*ret_class = rr->class;
	return 0;
}

/* RFC 2181 §8: a TTL with the top bit set is treated as zero. */
static uint32_t ttl_value(uint32_t ttl)
{
	return ttl & 0x80000000u ? 0 : ttl;
}

uint32_t dns_min_ttl(const struct dns_msg *m)
{
	uint32_t min = UINT32_MAX;
	size_t i;

	for (i = 0; i < m->n_rr; i++) {
		const struct dns_rr *rr = &m->rr[i];

		if (rr->section != DNS_SEC_ANSWER && rr->section != DNS_SEC_AUTHORITY)
			continue;
		if (ttl_value(rr->ttl) < min)
			min = ttl_value(rr->ttl);
		/* RFC 2308 §5: a negative answer lives for min(SOA TTL, SOA MINIMUM). */
		if (rr->type == DNS_TYPE_SOA && rr->section == DNS_SEC_AUTHORITY && rr->rdlen >= 22 &&
		    rr->rdata_off + rr->rdlen <= m->len) {
			uint32_t minimum = ttl_value(get32(m->p + rr->rdata_off + rr->rdlen - 4));

			if (minimum < min)
				min = minimum;
		}
	}
	return min;
}
