/* netext-dnsblock: a DNS blocklist as a dns-proxy provider (Pi-hole, NextDNS, Little Snitch's
 * "deny lists" for names).
 *
 * The list (hosts-file or plain names, 100,000 entries and more) is loaded into a hash set of
 * normalized names. A query whose name, or any domain above it, is listed gets an answer made
 * here with the builder of <netext/dns.h>; every other query is forwarded by netextd's routes
 * (the system resolver). With CNAME checks on, each upstream answer comes back here too, and
 * an answer whose CNAME chain leads to a listed name is replaced by the block answer: that
 * catches trackers hidden behind a first-party name ("CNAME cloaking").
 *
 * Block answers:
 *   mode=nxdomain   NXDOMAIN (the name does not exist)
 *   mode=sinkhole   A and AAAA get the sinkhole address (an answer record with the `ttl`),
 *                   every other type an empty NOERROR answer (NODATA)
 * No SOA goes with them, so resolvers and stub caches do not keep the negative answers: an
 * edit of the list takes effect with the next `reload`.
 *
 * Options:   list=PATH       the list (default /etc/netext/dnsblock.list; a relative path is
 *                            taken in the bundle directory, $NETEXT_BUNDLE); readable by the
 *                            extension's user
 *            mode=nxdomain|sinkhole   (default nxdomain)
 *            sinkhole4=ADDR  (default 0.0.0.0)      sinkhole6=ADDR  (default ::)
 *            ttl=SECONDS     of sinkhole records (default 60, at most 86400)
 *            cname=on|off    check the CNAME targets of upstream answers (default on)
 * List:      one entry a line: "0.0.0.0 name [name...]" (any address: hosts-file style),
 *            "name", "||name^" (adblock style) or "*.name"; '#' starts a comment (and '!' at
 *            the start of a line). A name covers itself and every name below it. Lines that
 *            do not parse are skipped and counted; the hosts-file boilerplate (localhost,
 *            broadcasthost, ip6-...) is ignored.
 * Messages:  stats    {"listed":N,"blocked":N,"cname_blocked":N,"passed":N,"load_ms":F,...}
 *            reload   reads the list again; a list that cannot be read leaves the old one
 *            check NAME   "blocked by LISTED" or "not listed"
 *
 * Trust: the list and app messages come from the administrator; lines are bounded, names
 * are validated before they enter the set. Query and answer names come from netextd's
 * parser (presentation form, lower case, escapes for anything unusual), so a name that a
 * list cannot contain never matches. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <netext/dnsproxy.h>

#define DB_DEFAULT_LIST "/etc/netext/dnsblock.list"
#define DB_LINE_MAX 1024
#define DB_NAME_MAX 253
#define DB_NAMES_MAX (16u * 1024 * 1024) /* keeps offsets and the table in 32 bits */
#define DB_TTL_MAX 86400
#define DB_INVALID_LOGGED 3

/* --- the set ---------------------------------------------------------------------------------
 * Open addressing with linear probing, capacity a power of two, at most half full. A slot
 * holds the name's hash and its offset in one arena of NUL-terminated names (0: empty; the
 * arena starts with one unused byte). 100,000 names take 2 MiB of slots and 2.6 MiB of
 * arena: no pointer per name, no allocation per name. */
struct db_slot {
	uint32_t hash, off;
};

struct db_set {
	struct db_slot *slots;
	size_t cap, n;
	char *arena;
	size_t arena_len, arena_cap;
};

/* FNV-1a with a final mix, so that the low bits that pick the slot depend on every byte. */
static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h;
}

static void set_clear(struct db_set *s)
{
	free(s->slots);
	free(s->arena);
	memset(s, 0, sizeof(*s));
}

static size_t set_bytes(const struct db_set *s)
{
	return s->cap * sizeof(*s->slots) + s->arena_cap;
}

/* The slot of name (hash h): its own, or the empty one where it would go. */
static struct db_slot *set_probe(const struct db_set *s, const char *name, uint32_t h)
{
	size_t mask = s->cap - 1, i = h & mask;

	while (s->slots[i].off && (s->slots[i].hash != h || strcmp(s->arena + s->slots[i].off, name)))
		i = (i + 1) & mask;
	return &s->slots[i];
}

static bool set_contains(const struct db_set *s, const char *name)
{
	return s->n && set_probe(s, name, name_hash(name))->off != 0;
}

static int set_grow(struct db_set *s)
{
	struct db_set bigger = *s;
	size_t i;

	bigger.cap = s->cap ? s->cap * 2 : 1024;
	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (!bigger.slots)
		return -ENOMEM;
	for (i = 0; i < s->cap; i++)
		if (s->slots[i].off)
			*set_probe(&bigger, s->arena + s->slots[i].off, s->slots[i].hash) = s->slots[i];
	free(s->slots);
	*s = bigger;
	return 0;
}

static int arena_reserve(struct db_set *s, size_t more)
{
	size_t used = s->arena_len ? s->arena_len : 1; /* offset 0 means an empty slot */
	size_t cap = s->arena_cap ? s->arena_cap : 64 * 1024;
	char *a;

	if (used + more <= s->arena_cap) {
		s->arena_len = used;
		return 0;
	}
	while (cap < used + more)
		cap *= 2;
	if (cap > UINT32_MAX)
		return -E2BIG;
	a = realloc(s->arena, cap);
	if (!a)
		return -ENOMEM;
	s->arena = a;
	s->arena_cap = cap;
	s->arena_len = used;
	return 0;
}

/* Gives back the arena's unused tail once loading is done (it grows by doubling). */
static void set_trim(struct db_set *s)
{
	char *a;

	if (!s->arena || s->arena_len == s->arena_cap)
		return;
	a = realloc(s->arena, s->arena_len);
	if (a) {
		s->arena = a;
		s->arena_cap = s->arena_len;
	}
}

/* Adds a normalized name. 1 when it was listed already. */
static int set_add(struct db_set *s, const char *name)
{
	size_t len = strlen(name) + 1;
	struct db_slot *slot;
	uint32_t h = name_hash(name);
	int e;

	if (s->n && set_probe(s, name, h)->off)
		return 1;
	if (s->n >= DB_NAMES_MAX)
		return -E2BIG;
	if ((s->n + 1) * 2 > s->cap && (e = set_grow(s)) < 0)
		return e;
	if ((e = arena_reserve(s, len)) < 0)
		return e;
	memcpy(s->arena + s->arena_len, name, len);
	slot = set_probe(s, name, h);
	slot->hash = h;
	slot->off = (uint32_t)s->arena_len;
	s->arena_len += len;
	s->n++;
	return 0;
}

/* The listed domain that contains name (name itself or a parent), or NULL. The result points
 * into name. The root is never looked up: a list cannot block everything by accident. */
static const char *set_match(const struct db_set *s, const char *name)
{
	const char *p = name;

	while (*p) {
		if (set_contains(s, p))
			return p;
		p = strchr(p, '.');
		if (!p)
			break;
		p++;
	}
	return NULL;
}

/* --- the list file ---------------------------------------------------------------------------- */

struct db_load_stats {
	size_t lines, invalid, duplicates;
	unsigned first_invalid[DB_INVALID_LOGGED]; /* line numbers, for the log */
};

/* A name as netextd's parser writes names: lower case, no final dot, labels of 1-63
 * characters from [a-z0-9-_], at most 253 characters in all. Rewrites s in place. */
static int normalize_name(char *s)
{
	size_t len = strlen(s), label = 0, i;

	if (len && s[len - 1] == '.')
		s[--len] = '\0';
	if (len == 0 || len > DB_NAME_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			s[i] = c = (char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -EINVAL;
		else if (++label > 63)
			return -EINVAL;
	}
	return 0;
}

/* The names every hosts file carries for the machine itself: never a block. */
static bool is_boilerplate(const char *name)
{
	static const char *const names[] = {
		"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0",
		"ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
		"ip6-allnodes", "ip6-allrouters", "ip6-allhosts",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

static bool is_address(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* One entry word: "name", "name.", "*.name" or "||name^" → added to s. -EINVAL when it is
 * not a name. */
static int add_word(struct db_set *s, char *w, struct db_load_stats *st)
{
	size_t len = strlen(w);
	int e;

	if (!strncmp(w, "||", 2) && len > 3 && w[len - 1] == '^') {
		w[len - 1] = '\0';
		w += 2;
	} else if (!strncmp(w, "*.", 2))
		w += 2;
	if (normalize_name(w) < 0)
		return -EINVAL;
	if (is_boilerplate(w))
		return 0;
	e = set_add(s, w);
	if (e == 1)
		st->duplicates++;
	return e < 0 ? e : 0;
}

/* One line of the list (modified in place). -EINVAL for a line that does not parse; other
 * errors are fatal for the load. */
static int list_line(struct db_set *s, char *line, struct db_load_stats *st)
{
	char *save = NULL, *w, *first;
	int e = 0;

	line[strcspn(line, "#\r\n")] = '\0';
	line += strspn(line, " \t");
	if (line[0] == '!' || line[0] == '\0')
		return 0;
	first = strtok_r(line, " \t", &save);
	if (!is_address(first)) /* a name alone */
		return strtok_r(NULL, " \t", &save) ? -EINVAL : add_word(s, first, st);
	if (!(w = strtok_r(NULL, " \t", &save)))
		return -EINVAL; /* an address alone */
	do
		e = add_word(s, w, st);
	while (e == 0 && (w = strtok_r(NULL, " \t", &save)));
	return e;
}

static void note_invalid(struct db_load_stats *st)
{
	if (st->invalid < DB_INVALID_LOGGED)
		st->first_invalid[st->invalid] = (unsigned)st->lines;
	st->invalid++;
}

/* Reads the list at path into a new set *ret. Lines that do not parse are counted in st, not
 * fatal; a file that cannot be read is (err says why). */
static int list_load(const char *path, struct db_set *ret, struct db_load_stats *st, char *err,
		     size_t errlen)
{
	char line[DB_LINE_MAX + 2];
	struct db_set s = { 0 };
	FILE *f = fopen(path, "re");
	int e = 0, c;

	memset(st, 0, sizeof(*st));
	if (!f) {
		e = -errno;
		snprintf(err, errlen, "%s: %s%s", path, strerror(-e),
			 e == -EACCES ? " (it must be readable by the extension's user)" : "");
		return e;
	}
	while (fgets(line, sizeof(line), f)) {
		st->lines++;
		if (!strchr(line, '\n') && !feof(f)) { /* too long: skip the rest of it */
			while ((c = getc(f)) != EOF && c != '\n')
				;
			note_invalid(st);
			continue;
		}
		e = list_line(&s, line, st);
		if (e == -EINVAL)
			note_invalid(st);
		else if (e < 0)
			break;
		e = 0;
	}
	if (e == 0 && ferror(f))
		e = -EIO;
	fclose(f);
	if (e < 0) {
		snprintf(err, errlen, "%s: %s", path, e == -E2BIG ? "more than 16777216 names" : strerror(-e));
		set_clear(&s);
		return e;
	}
	set_trim(&s);
	*ret = s;
	return 0;
}

/* --- the provider ----------------------------------------------------------------------------- */

enum db_mode { DB_NXDOMAIN, DB_SINKHOLE };

struct dnsblock {
	ne_provider *provider;
	ne_extension *ext;
	char path[PATH_MAX];
	enum db_mode mode;
	uint8_t sink4[4], sink6[16];
	uint32_t ttl;
	bool cname;
	struct db_set set;
	struct db_load_stats load;
	double load_ms;
	uint64_t blocked, passed;  /* queries answered here / forwarded */
	uint64_t cname_blocked;    /* forwarded, then blocked by their answer's CNAME */
	/* The last block answer: a verdict refers to its bytes until the library has taken the
	 * verdict, after the callback returns; freed at the next callback or at stop. */
	ne_dns_message *answer;
};

/* The block answer to query (mode, sinkhole, ttl), in *ret. */
static int db_answer(const struct dnsblock *db, const ne_dns_message *query, ne_dns_message **ret)
{
	const char *qname = ne_dns_message_qname(query);
	uint16_t qtype = ne_dns_message_qtype(query);
	ne_dns_builder *b;
	int e;

	e = ne_dns_builder_new_response(query, db->mode == DB_NXDOMAIN ? NE_DNS_RCODE_NXDOMAIN
									 : NE_DNS_RCODE_NOERROR, &b);
	if (e < 0)
		return e;
	if (db->mode == DB_SINKHOLE && qtype == NE_DNS_TYPE_A)
		ne_dns_builder_add_address(b, NE_DNS_ANSWER, qname, db->ttl, AF_INET, db->sink4);
	else if (db->mode == DB_SINKHOLE && qtype == NE_DNS_TYPE_AAAA)
		ne_dns_builder_add_address(b, NE_DNS_ANSWER, qname, db->ttl, AF_INET6, db->sink6);
	return ne_dns_builder_finish(b, ret); /* reports an add's error too */
}

/* The answer to block query with, kept in db->answer; NULL when it cannot be built. */
static const ne_dns_message *db_block(struct dnsblock *db, const ne_dns_message *query)
{
	ne_dns_message_free(db->answer);
	db->answer = NULL;
	if (db_answer(db, query, &db->answer) < 0)
		return NULL;
	return db->answer;
}

/* "sub.ads.test A from /usr/bin/curl[812]" for the debug log. */
static void query_text(ne_dns_query *q, char *buf, size_t size)
{
	const ne_dns_message *m = ne_dns_query_message(q);
	const ne_flow *flow = ne_dns_query_flow(q);
	const char *exe = flow ? ne_flow_executable(flow) : NULL;
	uint16_t t = ne_dns_message_qtype(m);
	char type[16];

	if (t == NE_DNS_TYPE_A || t == NE_DNS_TYPE_AAAA)
		snprintf(type, sizeof(type), "%s", t == NE_DNS_TYPE_A ? "A" : "AAAA");
	else
		snprintf(type, sizeof(type), "TYPE%u", t);
	snprintf(buf, size, "%s %s from %s[%d]", ne_dns_message_qname(m), type, exe ? exe : "?",
		 flow ? (int)ne_flow_pid(flow) : -1);
}

static const char *mode_name(const struct dnsblock *db)
{
	return db->mode == DB_NXDOMAIN ? "nxdomain" : "sinkhole";
}

static ne_dns_verdict db_query(ne_provider *provider, ne_dns_query *q, void *userdata)
{
	struct dnsblock *db = ne_provider_get_context(provider);
	const ne_dns_message *m = ne_dns_query_message(q), *a;
	const char *listed;
	char text[600];

	(void)userdata;
	if (!db || !m)
		return ne_dns_verdict_forward(NULL);
	listed = set_match(&db->set, ne_dns_message_qname(m));
	if (!listed) {
		db->passed++;
		return ne_dns_verdict_forward(NULL);
	}
	a = db_block(db, m);
	if (!a) /* cannot happen for a query netextd parsed; refuse rather than leak the name */
		return ne_dns_verdict_refuse();
	db->blocked++;
	query_text(q, text, sizeof(text));
	ne_extension_log(db->ext, NE_LOG_DEBUG, "query %" PRIu64 " %s: blocked (%s listed), %s",
			 ne_dns_query_id(q), text, listed, mode_name(db));
	return ne_dns_verdict_answer(a);
}

/* The first CNAME target in response's answer section that is listed, or NULL; *ret_listed
 * gets the listed domain. */
static const char *cname_listed(const struct dnsblock *db, const ne_dns_message *response,
				const char **ret_listed)
{
	size_t i, n = ne_dns_message_count(response, NE_DNS_ANSWER);
	struct ne_dns_record r;

	for (i = 0; i < n; i++) {
		if (ne_dns_message_record(response, NE_DNS_ANSWER, i, &r) < 0 ||
		    r.type != NE_DNS_TYPE_CNAME || !r.target)
			continue;
		*ret_listed = set_match(&db->set, r.target);
		if (*ret_listed)
			return r.target;
	}
	return NULL;
}

static ne_dns_response_verdict db_response(ne_provider *provider, ne_dns_query *q,
					   const ne_dns_message *response, void *userdata)
{
	struct dnsblock *db = ne_provider_get_context(provider);
	const ne_dns_message *m = ne_dns_query_message(q), *a;
	const char *target, *listed = NULL;
	char text[600];

	(void)userdata;
	if (!db || !db->cname || !m || !(target = cname_listed(db, response, &listed)))
		return ne_dns_response_pass();
	a = db_block(db, m);
	if (!a)
		return ne_dns_response_drop();
	db->cname_blocked++;
	query_text(q, text, sizeof(text));
	ne_extension_log(db->ext, NE_LOG_DEBUG, "query %" PRIu64 " %s: blocked (CNAME %s, %s listed), %s",
			 ne_dns_query_id(q), text, target, listed, mode_name(db));
	return ne_dns_response_rewrite(a);
}

/* --- lifecycle and messages ------------------------------------------------------------------- */

static int list_path(const char *option, char *buf, size_t size)
{
	const char *bundle = getenv("NETEXT_BUNDLE");
	const char *name = option ? option : DB_DEFAULT_LIST;
	int n;

	if (name[0] == '/' || !bundle)
		n = snprintf(buf, size, "%s", name);
	else
		n = snprintf(buf, size, "%s/%s", bundle, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int parse_ttl(const char *text, uint32_t *ret)
{
	char *end;
	long v;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || *end || v > DB_TTL_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* Reads the options into db; err names the bad one. */
static int db_configure(struct dnsblock *db, const ne_options *o, char *err, size_t errlen)
{
	const char *mode = ne_options_get(o, "mode"), *s4 = ne_options_get(o, "sinkhole4");
	const char *s6 = ne_options_get(o, "sinkhole6"), *ttl = ne_options_get(o, "ttl");
	const char *cname = ne_options_get(o, "cname");

	db->ttl = 60;
	db->cname = !cname || !strcmp(cname, "on");
	if (mode && strcmp(mode, "nxdomain") && strcmp(mode, "sinkhole"))
		snprintf(err, errlen, "option mode: nxdomain or sinkhole");
	else if (inet_pton(AF_INET, s4 ? s4 : "0.0.0.0", db->sink4) != 1)
		snprintf(err, errlen, "option sinkhole4: an IPv4 address");
	else if (inet_pton(AF_INET6, s6 ? s6 : "::", db->sink6) != 1)
		snprintf(err, errlen, "option sinkhole6: an IPv6 address");
	else if (ttl && parse_ttl(ttl, &db->ttl) < 0)
		snprintf(err, errlen, "option ttl: seconds, 0 to %d", DB_TTL_MAX);
	else if (cname && strcmp(cname, "on") && strcmp(cname, "off"))
		snprintf(err, errlen, "option cname: on or off");
	else if (list_path(ne_options_get(o, "list"), db->path, sizeof(db->path)) < 0)
		snprintf(err, errlen, "option list: path too long");
	else {
		db->mode = mode && !strcmp(mode, "sinkhole") ? DB_SINKHOLE : DB_NXDOMAIN;
		return 0;
	}
	return -EINVAL;
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Loads db->path into db->set (replaced only on success) and logs what it took. */
static int db_load(struct dnsblock *db, char *err, size_t errlen)
{
	struct db_load_stats st;
	struct timespec t0;
	struct db_set s;
	char bad[80] = "";
	size_t i;
	int e;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	e = list_load(db->path, &s, &st, err, errlen);
	if (e < 0)
		return e;
	db->load_ms = elapsed_ms(&t0);
	set_clear(&db->set);
	db->set = s;
	db->load = st;
	for (i = 0; i < st.invalid && i < DB_INVALID_LOGGED; i++)
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), "%s%u", i ? ", " : " (lines ",
			 st.first_invalid[i]);
	if (st.invalid)
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), "%s)",
			 st.invalid > DB_INVALID_LOGGED ? ", ..." : "");
	ne_extension_log(db->ext, NE_LOG_INFO,
			 "%s: %zu names from %s in %.1f ms, %.1f MiB; %zu lines, %zu invalid%s, "
			 "%zu duplicates",
			 ne_provider_configuration(db->provider), s.n, db->path, db->load_ms,
			 (double)set_bytes(&s) / (1024.0 * 1024.0), st.lines, st.invalid, bad,
			 st.duplicates);
	return 0;
}

static void dnsblock_free(struct dnsblock *db)
{
	if (!db)
		return;
	set_clear(&db->set);
	ne_dns_message_free(db->answer);
	free(db);
}

static void db_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	struct dnsblock *db = calloc(1, sizeof(*db));
	char err[PATH_MAX + 256] = "out of memory";
	int e = -ENOMEM;

	(void)userdata;
	if (db) {
		db->provider = provider;
		db->ext = ne_provider_extension(provider);
		e = db_configure(db, options, err, sizeof(err));
	}
	if (e == 0)
		e = db_load(db, err, sizeof(err));
	if (e < 0) {
		dnsblock_free(db);
		ne_provider_start_done(provider, e, err);
		return;
	}
	ne_provider_set_context(provider, db);
	ne_provider_start_done(provider, 0, NULL);
}

static void db_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct dnsblock *db = ne_provider_get_context(provider);
	const char *why = ne_stop_reason_name(reason);

	(void)userdata;
	if (db)
		ne_extension_log(db->ext, NE_LOG_INFO, "%s: stopping (%s): %" PRIu64 " blocked, %"
				 PRIu64 " by CNAME, %" PRIu64 " passed", ne_provider_configuration(provider),
				 why ? why : "unknown reason", db->blocked, db->cname_blocked, db->passed);
	ne_provider_set_context(provider, NULL);
	dnsblock_free(db);
	ne_provider_stop_done(provider);
}

static void reply_text(ne_message *message, const char *text)
{
	ne_message_reply(message, 0, text, strlen(text));
}

static void msg_stats(struct dnsblock *db, ne_message *message)
{
	char out[512];

	snprintf(out, sizeof(out),
		 "{\"listed\":%zu,\"blocked\":%" PRIu64 ",\"cname_blocked\":%" PRIu64 ",\"passed\":%"
		 PRIu64 ",\"load_ms\":%.1f,\"lines\":%zu,\"invalid\":%zu,\"duplicates\":%zu,"
		 "\"bytes\":%zu,\"mode\":\"%s\"}",
		 db->set.n, db->blocked, db->cname_blocked, db->passed, db->load_ms, db->load.lines,
		 db->load.invalid, db->load.duplicates, set_bytes(&db->set), mode_name(db));
	reply_text(message, out);
}

static void msg_reload(struct dnsblock *db, ne_message *message)
{
	char err[PATH_MAX + 256], out[PATH_MAX + 300];

	if (db_load(db, err, sizeof(err)) < 0) {
		ne_extension_log(db->ext, NE_LOG_WARNING, "%s: reload failed, list unchanged: %s",
				 ne_provider_configuration(db->provider), err);
		snprintf(out, sizeof(out), "error: %s", err);
	} else
		snprintf(out, sizeof(out), "ok: %zu names, %zu invalid lines, %.1f ms", db->set.n,
			 db->load.invalid, db->load_ms);
	reply_text(message, out);
}

static void msg_check(struct dnsblock *db, ne_message *message, const char *data, size_t len)
{
	char name[DB_LINE_MAX], out[2 * DB_NAME_MAX + 32];
	const char *listed;

	snprintf(name, sizeof(name), "%.*s", (int)len, data);
	if (normalize_name(name) < 0) {
		reply_text(message, "error: not a domain name");
		return;
	}
	listed = set_match(&db->set, name);
	if (listed)
		snprintf(out, sizeof(out), "blocked by %s", listed);
	else
		snprintf(out, sizeof(out), "not listed");
	reply_text(message, out);
}

static bool is(const void *data, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(data, word, len) == 0;
}

static void db_app_message(ne_provider *provider, ne_message *message, const void *data,
			   size_t len, void *userdata)
{
	struct dnsblock *db = ne_provider_get_context(provider);

	(void)userdata;
	if (!db)
		ne_message_reply(message, -EINVAL, NULL, 0);
	else if (is(data, len, "stats"))
		msg_stats(db, message);
	else if (is(data, len, "reload"))
		msg_reload(db, message);
	else if (len > 6 && len < DB_LINE_MAX && !memcmp(data, "check ", 6))
		msg_check(db, message, (const char *)data + 6, len - 6);
	else
		ne_message_reply(message, -EINVAL, NULL, 0);
}

static const struct ne_provider_ops dnsblock_ops = {
	.size = sizeof(dnsblock_ops),
	.start = db_start,
	.stop = db_stop,
	.app_message = db_app_message,
};

/* handle_response is set for every configuration: the API asks for upstream answers per
 * extension, not per start, so cname=off answers them at once. */
static const struct ne_dns_proxy_ops dnsblock_dns_ops = {
	.size = sizeof(dnsblock_dns_ops),
	.handle_query = db_query,
	.handle_response = db_response,
};

int main(void)
{
	ne_extension *ext = NULL;
	int r;

	r = ne_extension_new(&ext);
	if (r >= 0)
		r = ne_extension_register_dns_proxy(ext, &dnsblock_ops, &dnsblock_dns_ops, NULL);
	if (r >= 0)
		r = ne_extension_run(ext);
	if (r < 0)
		fprintf(stderr, "netext-dnsblock: %s%s\n", strerror(-r),
			r == -ENOTCONN ? " (not started by netextd)" : "");
	ne_extension_free(ext);
	return r < 0 ? 1 : 0;
}
