/* libnetext: DNS messages for providers (include/netext/dns.h), on top of netextd's own
 * parser and builder (src/common/dns.h).
 *
 * Trust: bytes handed to ne_dns_message_parse() may come from anyone; they are copied and
 * validated whole by dns_parse() before anything else reads them, and every name is decoded
 * once, so the accessors only index arrays they built. Handles and indexes come from the
 * extension author: NULL handles and out-of-range sections and indexes are refused, never
 * dereferenced. The library never logs or exits. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <netext/dns.h>

#include "dns.h"

#define NO_TARGET UINT32_MAX
#define BUILDER_INITIAL 512
#define OPT_UDP_ANSWER 1232
#define EDNS_DO 0x8000u
#define FLAGS_MASK (NE_DNS_FLAG_QR | NE_DNS_FLAG_AA | NE_DNS_FLAG_TC | NE_DNS_FLAG_RD | \
		    NE_DNS_FLAG_RA | NE_DNS_FLAG_AD | NE_DNS_FLAG_CD)
#define RCODE_MAX 0xfff /* 4 header bits and 8 from EDNS(0) */

struct rec {
	struct dns_rr rr;
	uint32_t name;    /* offset of the owner's text in names */
	uint32_t target;  /* offset of the rdata name's text, or NO_TARGET */
};

struct ne_dns_message {
	uint8_t *bytes;
	size_t len;
	struct dns_header h;
	bool has_opt;
	uint16_t udp_size, ext_rcode;
	size_t first[4], count[4]; /* records per section, in section order in recs */
	char *names;               /* every decoded name, NUL-terminated */
	size_t names_len, names_cap;
	size_t n_rec;
	struct rec recs[];
};

struct ne_dns_builder {
	struct dns_builder b;
	uint8_t *buf;
	uint16_t flags;   /* NE_DNS_FLAG_* */
	uint16_t rcode;   /* up to 12 bits when opt */
	bool opt, opt_do; /* an OPT record goes last, at finish */
};

/* ---- messages --------------------------------------------------------------------------- */

/* Appends the text of the validated name at off; returns its offset in names. */
static int64_t names_add(ne_dns_message *m, const struct dns_msg *dm, size_t off)
{
	char text[DNS_NAME_TEXT_MAX];
	int n = dns_name_text(dm, off, text, sizeof(text));
	size_t at = m->names_len;

	if (n < 0)
		return n;
	if (m->names_cap - m->names_len < (size_t)n + 1) {
		size_t cap = m->names_cap ? m->names_cap * 2 : 1024;
		char *p;

		while (cap - m->names_len < (size_t)n + 1)
			cap *= 2;
		p = realloc(m->names, cap);
		if (!p)
			return -ENOMEM;
		m->names = p;
		m->names_cap = cap;
	}
	memcpy(m->names + at, text, (size_t)n + 1);
	m->names_len += (size_t)n + 1;
	return (int64_t)at;
}

/* Where the name inside a record's rdata starts (CNAME, NS, PTR, MX, SRV), or 0. */
static size_t target_off(const struct dns_rr *rr)
{
	if (rr->section == DNS_SEC_QUESTION)
		return 0;
	switch (rr->type) {
	case DNS_TYPE_CNAME:
	case DNS_TYPE_NS:
	case DNS_TYPE_PTR:
		return rr->rdata_off;
	case DNS_TYPE_MX:
		return rr->rdata_off + 2;
	case DNS_TYPE_SRV:
		return rr->rdata_off + 6;
	default:
		return 0;
	}
}

/* Decodes the names of every record, sharing the text of an owner with the previous one. */
static int decode_names(ne_dns_message *m, const struct dns_msg *dm)
{
	size_t i, t;
	int64_t r;

	for (i = 0; i < m->n_rec; i++) {
		struct rec *rec = &m->recs[i];

		rec->rr = dm->rr[i];
		m->count[rec->rr.section]++;
		if (i > 0 && dns_name_equal(dm, dm->rr[i - 1].name_off, rec->rr.name_off))
			rec->name = m->recs[i - 1].name;
		else {
			r = names_add(m, dm, rec->rr.name_off);
			if (r < 0)
				return (int)r;
			rec->name = (uint32_t)r;
		}
		rec->target = NO_TARGET;
		t = target_off(&rec->rr);
		if (t) {
			r = names_add(m, dm, t);
			if (r < 0)
				return (int)r;
			rec->target = (uint32_t)r;
		}
	}
	for (i = 1; i < 4; i++)
		m->first[i] = m->first[i - 1] + m->count[i - 1];
	return 0;
}

/* Parses bytes (taking them: freed on failure too) into *ret. */
static int message_new(uint8_t *bytes, size_t len, ne_dns_message **ret)
{
	struct dns_msg *dm = malloc(sizeof(*dm));
	ne_dns_message *m = NULL;
	int r;

	if (!dm) {
		r = -ENOMEM;
		goto fail;
	}
	r = dns_parse(bytes, len, dm);
	if (r < 0)
		goto fail;
	m = calloc(1, sizeof(*m) + dm->n_rr * sizeof(struct rec));
	if (!m) {
		r = -ENOMEM;
		goto fail;
	}
	m->bytes = bytes;
	m->len = len;
	m->h = dm->h;
	m->has_opt = dm->has_opt;
	m->udp_size = dm->udp_size;
	m->ext_rcode = dm->ext_rcode;
	m->n_rec = dm->n_rr;
	r = decode_names(m, dm);
	if (r < 0)
		goto fail;
	free(dm);
	*ret = m;
	return 0;
fail:
	if (m) {
		free(m->names);
		free(m);
	}
	free(dm);
	free(bytes);
	return r;
}

int ne_dns_message_parse(const void *bytes, size_t len, ne_dns_message **ret)
{
	uint8_t *copy;

	if (!ret || (!bytes && len))
		return -EINVAL;
	if (len > DNS_MSG_MAX)
		return -EBADMSG;
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, bytes, len);
	return message_new(copy, len, ret);
}

void ne_dns_message_free(ne_dns_message *m)
{
	if (!m)
		return;
	free(m->names);
	free(m->bytes);
	free(m);
}

const uint8_t *ne_dns_message_bytes(const ne_dns_message *m, size_t *ret_len)
{
	if (!m)
		return NULL;
	if (ret_len)
		*ret_len = m->len;
	return m->bytes;
}

uint16_t ne_dns_message_id(const ne_dns_message *m)
{
	return m ? m->h.id : 0;
}

uint16_t ne_dns_message_flags(const ne_dns_message *m)
{
	if (!m)
		return 0;
	return (uint16_t)((m->h.qr ? NE_DNS_FLAG_QR : 0) | (m->h.aa ? NE_DNS_FLAG_AA : 0) |
			  (m->h.tc ? NE_DNS_FLAG_TC : 0) | (m->h.rd ? NE_DNS_FLAG_RD : 0) |
			  (m->h.ra ? NE_DNS_FLAG_RA : 0) | (m->h.ad ? NE_DNS_FLAG_AD : 0) |
			  (m->h.cd ? NE_DNS_FLAG_CD : 0));
}

bool ne_dns_message_is_response(const ne_dns_message *m)
{
	return m && m->h.qr;
}

int ne_dns_message_opcode(const ne_dns_message *m)
{
	return m ? m->h.opcode : 0;
}

int ne_dns_message_rcode(const ne_dns_message *m)
{
	if (!m)
		return 0;
	return m->has_opt ? m->ext_rcode : m->h.rcode;
}

uint16_t ne_dns_message_edns_udp_size(const ne_dns_message *m)
{
	return m && m->has_opt ? m->udp_size : 0;
}

static const struct rec *question(const ne_dns_message *m)
{
	return m && m->count[DNS_SEC_QUESTION] ? &m->recs[0] : NULL;
}

const char *ne_dns_message_qname(const ne_dns_message *m)
{
	const struct rec *q = question(m);

	return q ? m->names + q->name : "";
}

uint16_t ne_dns_message_qtype(const ne_dns_message *m)
{
	const struct rec *q = question(m);

	return q ? q->rr.type : 0;
}

uint16_t ne_dns_message_qclass(const ne_dns_message *m)
{
	const struct rec *q = question(m);

	return q ? q->rr.class : 0;
}

static bool section_ok(ne_dns_section s)
{
	return (unsigned)s <= NE_DNS_ADDITIONAL;
}

size_t ne_dns_message_count(const ne_dns_message *m, ne_dns_section section)
{
	return m && section_ok(section) ? m->count[section] : 0;
}

int ne_dns_message_record(const ne_dns_message *m, ne_dns_section section, size_t i,
			  struct ne_dns_record *ret)
{
	const struct rec *rec;
	struct ne_dns_record r = { 0 };

	if (!m || !ret || !section_ok(section))
		return -EINVAL;
	if (i >= m->count[section])
		return -ERANGE;
	rec = &m->recs[m->first[section] + i];
	r.section = section;
	r.name = m->names + rec->name;
	r.type = rec->rr.type;
	r.rclass = rec->rr.class;
	r.ttl = rec->rr.ttl;
	r.rdata = rec->rr.rdlen ? m->bytes + rec->rr.rdata_off : NULL;
	r.rdlen = rec->rr.rdlen;
	r.target = rec->target == NO_TARGET ? NULL : m->names + rec->target;
	if (section != NE_DNS_QUESTION && rec->rr.class == DNS_CLASS_IN) {
		if (rec->rr.type == DNS_TYPE_A && rec->rr.rdlen == 4)
			r.family = AF_INET;
		else if (rec->rr.type == DNS_TYPE_AAAA && rec->rr.rdlen == 16)
			r.family = AF_INET6;
		if (r.family)
			memcpy(r.addr, r.rdata, rec->rr.rdlen);
	}
	*ret = r;
	return 0;
}

/* ---- names ------------------------------------------------------------------------------ */

static bool label_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t x = a[i], y = b[i];

		if (x >= 'A' && x <= 'Z')
			x = (uint8_t)(x + 'a' - 'A');
		if (y >= 'A' && y <= 'Z')
			y = (uint8_t)(y + 'a' - 'A');
		if (x != y)
			return false;
	}
	return true;
}

/* Compared in wire form, so that escapes ("a\.corp" is one label) and case cannot fool a
 * comparison of text. */
bool ne_dns_name_in_domain(const char *name, const char *domain)
{
	uint8_t n[DNS_NAME_MAX], d[DNS_NAME_MAX];
	int ln, ld;
	size_t i;

	if (!name || !domain)
		return false;
	ln = dns_name_from_text(name, n, sizeof(n));
	ld = dns_name_from_text(domain, d, sizeof(d));
	if (ln < 0 || ld < 0)
		return false;
	for (i = 0; (size_t)ln - i >= (size_t)ld; i += 1 + (size_t)n[i]) {
		if ((size_t)ln - i == (size_t)ld)
			return label_equal(n + i, d, (size_t)ld);
		if (n[i] == 0)
			break;
	}
	return false;
}

/* ---- builders --------------------------------------------------------------------------- */

enum op_kind { OP_RR, OP_RR_NAME, OP_COPY, OP_OPT };

/* One add, kept so that it can be run again after the buffer grew. */
struct op {
	enum op_kind kind;
	enum dns_section section;
	const char *name, *target;
	uint16_t type;
	uint32_t ttl;
	const void *rdata;
	uint16_t rdlen;
	const ne_dns_message *from;
	const struct dns_rr *rr;
};

static void op_apply(ne_dns_builder *nb, const struct op *op)
{
	switch (op->kind) {
	case OP_RR:
		dns_builder_rr(&nb->b, op->section, op->name, op->type, DNS_CLASS_IN, op->ttl, op->rdata,
			       op->rdlen);
		break;
	case OP_RR_NAME:
		dns_builder_rr_name(&nb->b, op->section, op->name, op->type, op->ttl, op->target);
		break;
	case OP_COPY:
		dns_builder_copy_rr_raw(&nb->b, op->section, op->from->bytes, op->from->len, op->rr);
		break;
	case OP_OPT:
		dns_builder_opt(&nb->b, OPT_UDP_ANSWER, (uint8_t)(nb->rcode >> 4), nb->opt_do);
		break;
	}
}

/* Runs op; when the buffer is too small, grows it (up to DNS_MSG_MAX) and runs op again
 * from the state before it. Returns the builder's (first) error. */
static int op_run(ne_dns_builder *nb, const struct op *op)
{
	for (;;) {
		struct dns_builder saved = nb->b;
		size_t cap;
		uint8_t *p;

		op_apply(nb, op);
		if (nb->b.err != -EMSGSIZE || saved.err || saved.cap >= DNS_MSG_MAX)
			return nb->b.err;
		cap = saved.cap * 2 < DNS_MSG_MAX ? saved.cap * 2 : DNS_MSG_MAX;
		p = realloc(nb->buf, cap);
		if (!p) {
			nb->b.err = -ENOMEM;
			return -ENOMEM;
		}
		nb->buf = p;
		nb->b = saved;
		nb->b.p = p;
		nb->b.cap = cap;
	}
}

/* An add with arguments already refused: the error sticks, like the builder's own. */
static int refuse(ne_dns_builder *nb, int err)
{
	if (!nb->b.err)
		nb->b.err = err;
	return nb->b.err;
}

static int builder_new(const struct dns_header *h, ne_dns_builder **ret)
{
	ne_dns_builder *nb = calloc(1, sizeof(*nb));

	if (!nb)
		return -ENOMEM;
	nb->buf = malloc(BUILDER_INITIAL);
	if (!nb->buf) {
		free(nb);
		return -ENOMEM;
	}
	dns_builder_init(&nb->b, nb->buf, BUILDER_INITIAL, h);
	nb->flags = (uint16_t)((h->qr ? NE_DNS_FLAG_QR : 0) | (h->rd ? NE_DNS_FLAG_RD : 0) |
			       (h->ra ? NE_DNS_FLAG_RA : 0));
	*ret = nb;
	return 0;
}

void ne_dns_builder_free(ne_dns_builder *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b);
}

int ne_dns_builder_set_rcode(ne_dns_builder *b, int rcode)
{
	if (!b)
		return -EINVAL;
	if (rcode < 0 || rcode > RCODE_MAX || (rcode > 0x0f && !b->opt))
		return -EINVAL;
	b->rcode = (uint16_t)rcode;
	return 0;
}

int ne_dns_builder_set_flags(ne_dns_builder *b, uint16_t flags)
{
	if (!b || (flags & ~FLAGS_MASK))
		return -EINVAL;
	b->flags = flags;
	return 0;
}

/* The OPT record of a message, or NULL. */
static const struct rec *message_opt(const ne_dns_message *m)
{
	size_t i;

	for (i = m->first[DNS_SEC_ADDITIONAL]; m->has_opt && i < m->n_rec; i++)
		if (m->recs[i].rr.type == DNS_TYPE_OPT)
			return &m->recs[i];
	return NULL;
}

int ne_dns_builder_new_response(const ne_dns_message *query, int rcode, ne_dns_builder **ret)
{
	const struct rec *opt;
	struct dns_header h;
	ne_dns_builder *nb;
	int r;

	if (!query || !ret)
		return -EINVAL;
	h = (struct dns_header){ .id = query->h.id, .opcode = query->h.opcode, .qr = true,
				 .rd = query->h.rd, .ra = true };
	r = builder_new(&h, &nb);
	if (r < 0)
		return r;
	opt = message_opt(query);
	nb->opt = opt != NULL;
	nb->opt_do = opt && (opt->rr.ttl & EDNS_DO); /* RFC 3225 §3 */
	r = ne_dns_builder_set_rcode(nb, rcode);
	if (r == 0 && query->count[DNS_SEC_QUESTION])
		r = op_run(nb, &(struct op){ .kind = OP_COPY, .section = DNS_SEC_QUESTION,
					     .from = query, .rr = &query->recs[0].rr });
	if (r < 0) {
		ne_dns_builder_free(nb);
		return r;
	}
	*ret = nb;
	return 0;
}

static int random_id(uint16_t *ret)
{
	uint16_t id = 0;

	while (id == 0) { /* 0 asks for a random id: never hand it out as one */
		ssize_t n = getrandom(&id, sizeof(id), 0);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n >= 0 && n != (ssize_t)sizeof(id))
			return -EIO;
	}
	*ret = id;
	return 0;
}

int ne_dns_builder_new_query(uint16_t id, const char *name, uint16_t type, ne_dns_builder **ret)
{
	struct dns_header h = { .id = id, .rd = true };
	ne_dns_builder *nb;
	int r;

	if (!name || !ret)
		return -EINVAL;
	if (id == 0) {
		r = random_id(&h.id);
		if (r < 0)
			return r;
	}
	r = builder_new(&h, &nb);
	if (r < 0)
		return r;
	dns_builder_question(&nb->b, name, type, DNS_CLASS_IN);
	r = nb->b.err;
	if (r < 0) {
		ne_dns_builder_free(nb);
		return r;
	}
	*ret = nb;
	return 0;
}

/* Records only: the question is the constructor's. */
static bool record_section(ne_dns_section s)
{
	return s >= NE_DNS_ANSWER && s <= NE_DNS_ADDITIONAL;
}

int ne_dns_builder_add_address(ne_dns_builder *b, ne_dns_section section, const char *name,
			       uint32_t ttl, int family, const void *addr)
{
	struct op op = { .kind = OP_RR, .section = (enum dns_section)section, .name = name, .ttl = ttl,
			 .rdata = addr };

	if (!b)
		return -EINVAL;
	if (!record_section(section) || !name || !addr)
		return refuse(b, -EINVAL);
	if (family == AF_INET) {
		op.type = DNS_TYPE_A;
		op.rdlen = 4;
	} else if (family == AF_INET6) {
		op.type = DNS_TYPE_AAAA;
		op.rdlen = 16;
	} else
		return refuse(b, -EAFNOSUPPORT);
	return op_run(b, &op);
}

int ne_dns_builder_add_name(ne_dns_builder *b, ne_dns_section section, const char *name,
			    uint16_t type, uint32_t ttl, const char *target)
{
	if (!b)
		return -EINVAL;
	if (!record_section(section) || !name || !target ||
	    (type != DNS_TYPE_CNAME && type != DNS_TYPE_NS && type != DNS_TYPE_PTR))
		return refuse(b, -EINVAL);
	return op_run(b, &(struct op){ .kind = OP_RR_NAME, .section = (enum dns_section)section,
				       .name = name, .type = type, .ttl = ttl, .target = target });
}

int ne_dns_builder_add_txt(ne_dns_builder *b, ne_dns_section section, const char *name,
			   uint32_t ttl, const char *text)
{
	size_t len, n, i, chunk;
	uint8_t *rdata;
	int r;

	if (!b)
		return -EINVAL;
	if (!record_section(section) || !name || !text)
		return refuse(b, -EINVAL);
	len = strlen(text);
	n = len + (len ? (len + 254) / 255 : 1); /* one length byte per 255 bytes, at least one */
	if (n > UINT16_MAX)
		return refuse(b, -EMSGSIZE);
	rdata = malloc(n);
	if (!rdata)
		return refuse(b, -ENOMEM);
	for (i = 0, n = 0; i < len || n == 0; i += chunk) {
		chunk = len - i < 255 ? len - i : 255;
		rdata[n++] = (uint8_t)chunk;
		memcpy(rdata + n, text + i, chunk);
		n += chunk;
	}
	r = op_run(b, &(struct op){ .kind = OP_RR, .section = (enum dns_section)section, .name = name,
				    .type = DNS_TYPE_TXT, .ttl = ttl, .rdata = rdata,
				    .rdlen = (uint16_t)n });
	free(rdata);
	return r;
}

int ne_dns_builder_add_record(ne_dns_builder *b, ne_dns_section section, const char *name,
			      uint16_t type, uint32_t ttl, const void *rdata, uint16_t rdlen)
{
	if (!b)
		return -EINVAL;
	if (!record_section(section) || !name || (rdlen && !rdata) || (type == DNS_TYPE_OPT && b->opt))
		return refuse(b, -EINVAL);
	return op_run(b, &(struct op){ .kind = OP_RR, .section = (enum dns_section)section, .name = name,
				       .type = type, .ttl = ttl, .rdata = rdata, .rdlen = rdlen });
}

int ne_dns_builder_copy_record(ne_dns_builder *b, ne_dns_section to, const ne_dns_message *from,
			       ne_dns_section section, size_t i)
{
	const struct rec *rec;

	if (!b)
		return -EINVAL;
	if (!record_section(to) || !from || !section_ok(section))
		return refuse(b, -EINVAL);
	if (i >= from->count[section])
		return refuse(b, -ERANGE);
	rec = &from->recs[from->first[section] + i];
	if (rec->rr.type == DNS_TYPE_OPT && b->opt)
		return refuse(b, -EINVAL); /* the builder writes its own */
	return op_run(b, &(struct op){ .kind = OP_COPY, .section = (enum dns_section)to, .from = from,
				       .rr = &rec->rr });
}

/* Flags and the rcode's low bits into the header (the builder wrote it at the start). */
static void patch_header(ne_dns_builder *nb)
{
	uint8_t *p = nb->b.p;
	uint16_t word = (uint16_t)((p[2] << 8 | p[3]) & 0x7800); /* opcode */

	word |= nb->flags | (nb->rcode & 0x0f);
	p[2] = (uint8_t)(word >> 8);
	p[3] = (uint8_t)word;
}

int ne_dns_builder_finish(ne_dns_builder *b, ne_dns_message **ret)
{
	int r, n;

	if (!b)
		return -EINVAL;
	r = -EINVAL;
	if (!ret)
		goto out;
	if (b->opt)
		op_run(b, &(struct op){ .kind = OP_OPT });
	n = dns_builder_finish(&b->b);
	if (n < 0) {
		r = n;
		goto out;
	}
	patch_header(b);
	r = message_new(b->buf, (size_t)n, ret); /* takes the buffer */
	b->buf = NULL;
out:
	ne_dns_builder_free(b);
	return r;
}
