/* netext-splitdns: split DNS as a dns-proxy provider (NEDNSProxyProvider).
 *
 * The case of the seed question: a company's names go to the company's resolvers, every
 * other name to the system resolver, and nobody parses a datagram. netextd diverts every
 * DNS query of the host, parses it and hands it here with the asking process attached; this
 * provider only picks where it goes:
 *
 *   1. an `app` rule for the asking program (by executable path) wins;
 *   2. else the `route` or `exempt` rule with the longest suffix containing the name:
 *      a route sends it to that rule's servers, an exemption to the system resolver;
 *   3. else the system resolver: ne_dns_verdict_forward(NULL), i.e. netextd's own split-DNS
 *      routes and, under them, the nameservers of /etc/resolv.conf.
 *
 * netextd forwards from its own sockets (ids, retries, TCP fallback); this process never
 * opens a socket. A rule with several servers uses them in turn, query by query, so a
 * client that retries after a silent server asks the next one.
 *
 * Options:   config=PATH   the rule file (default /etc/netext/splitdns.conf; a relative path
 *                          is taken in the bundle directory, $NETEXT_BUNDLE). It must be
 *                          readable by the extension's user.
 * Rule file: one rule a line; '#' at the start of a line or after a blank starts a comment:
 *            route SUFFIX SERVER [SERVER...]   names in SUFFIX (and SUFFIX) go to SERVERs
 *            exempt SUFFIX                     names in SUFFIX go to the system resolver
 *            app EXECUTABLE SERVER... | system every query of that program
 *            SERVER: 10.0.0.53, 10.0.0.53:5353, fd00::53 or [fd00::53]:5353 (at most 4)
 *            A line that does not parse fails the start; the error names file and line.
 * Messages:  stats     {"queries":N,"app":N,"route":N,"exempt":N,"system":N,"rules":N,...}
 *            reload    reads the rule file again ("ok: N rules from PATH" or "error: ...");
 *                      a bad file leaves the running rules in place
 *            rules     the rules in force, one a line
 *
 * Trust: the rule file and app messages come from the administrator; both are parsed with
 * fixed bounds (line length, rule and server counts). Query names come from netextd's parser,
 * already validated and in presentation form. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netext/dnsproxy.h>

#define SD_DEFAULT_CONFIG "/etc/netext/splitdns.conf"
#define SD_LINE_MAX 1024
#define SD_RULES_MAX 1024
#define SD_SERVERS_MAX 4
#define SD_SERVER_TEXT 64 /* "[ffff:...:ffff]:65535" */
#define SD_NAME_MAX 253

enum sd_kind { SD_ROUTE, SD_EXEMPT, SD_APP };
/* Where a query went; the order of the stats counters. */
enum sd_via { SD_VIA_SYSTEM, SD_VIA_ROUTE, SD_VIA_EXEMPT, SD_VIA_APP, SD_VIA_MAX };

static const char *const kind_names[] = { "route", "exempt", "app" };

struct sd_rule {
	enum sd_kind kind;
	char *match;      /* route, exempt: the suffix (normalized); app: the executable */
	size_t n_servers; /* app: 0 means the system resolver; exempt: always 0 */
	char servers[SD_SERVERS_MAX][SD_SERVER_TEXT];
	size_t next;      /* the server for the next query (round robin) */
	unsigned line;
	uint64_t hits;
};

struct sd_rules {
	struct sd_rule *v;
	size_t n;
};

struct sd_decision {
	enum sd_via via;
	struct sd_rule *rule; /* NULL for SD_VIA_SYSTEM */
	const char *server;   /* NULL: the system resolver (forward(NULL)) */
};

/* One per configuration (provider). */
struct splitdns {
	ne_provider *provider;
	ne_extension *ext;
	char path[PATH_MAX];
	struct sd_rules rules;
	uint64_t queries, via[SD_VIA_MAX], reloads;
};

/* --- the rule file ---------------------------------------------------------------------------- */

static void rules_clear(struct sd_rules *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		free(rs->v[i].match);
	free(rs->v);
	rs->v = NULL;
	rs->n = 0;
}

/* A domain suffix as the parser writes names: lower case, no final dot, labels of 1-63
 * characters from [a-z0-9-_], at most 253 characters. Rewrites s in place. */
static int normalize_suffix(char *s)
{
	size_t len = strlen(s), label = 0, i;

	if (len && s[len - 1] == '.')
		s[--len] = '\0';
	if (len == 0 || len > SD_NAME_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			s[i] = c = (char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0)
				return -EINVAL;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return -EINVAL;
		if (++label > 63)
			return -EINVAL;
	}
	return 0;
}

/* A port after ':' : 1-65535. */
static int parse_port(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end || v < 1 || v > 65535 ? -EINVAL : 0;
}

/* Checks one server in the forms netextd takes as a forward target. */
static int check_server(const char *s)
{
	char addr[SD_SERVER_TEXT];
	const char *colon;
	unsigned char buf[16];
	size_t len = strlen(s);

	if (len == 0 || len >= SD_SERVER_TEXT)
		return -EINVAL;
	if (s[0] == '[') { /* [V6]:PORT */
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(addr))
			return -EINVAL;
		memcpy(addr, s + 1, (size_t)(close - s - 1));
		addr[close - s - 1] = '\0';
		return inet_pton(AF_INET6, addr, buf) == 1 ? parse_port(close + 2) : -EINVAL;
	}
	if (inet_pton(AF_INET6, s, buf) == 1 || inet_pton(AF_INET, s, buf) == 1)
		return 0;
	colon = strchr(s, ':'); /* V4:PORT */
	if (!colon || strchr(colon + 1, ':'))
		return -EINVAL;
	memcpy(addr, s, (size_t)(colon - s));
	addr[colon - s] = '\0';
	return inet_pton(AF_INET, addr, buf) == 1 ? parse_port(colon + 1) : -EINVAL;
}

/* The rule with the same kind and match, if any. */
static const struct sd_rule *rules_find(const struct sd_rules *rs, const char *match, bool app)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		if ((rs->v[i].kind == SD_APP) == app && !strcmp(rs->v[i].match, match))
			return &rs->v[i];
	return NULL;
}

/* The servers of a route or app rule, from the words after the match. */
static int parse_servers(struct sd_rule *r, char **save, char *err, size_t errlen)
{
	char *w;

	while ((w = strtok_r(NULL, " \t", save))) {
		if (r->kind == SD_APP && !strcmp(w, "system") && r->n_servers == 0 &&
		    !strtok_r(NULL, " \t", save))
			return 1; /* "app EXE system" */
		if (r->n_servers == SD_SERVERS_MAX) {
			snprintf(err, errlen, "more than %d servers", SD_SERVERS_MAX);
			return -EINVAL;
		}
		if (check_server(w) < 0) {
			snprintf(err, errlen, "'%.64s' is not a server (10.0.0.53, 10.0.0.53:5353, "
				 "fd00::53, [fd00::53]:5353)", w);
			return -EINVAL;
		}
		snprintf(r->servers[r->n_servers++], SD_SERVER_TEXT, "%s", w);
	}
	if (r->kind != SD_EXEMPT && r->n_servers == 0) {
		snprintf(err, errlen, "%s needs at least one server%s", kind_names[r->kind],
			 r->kind == SD_APP ? " or 'system'" : "");
		return -EINVAL;
	}
	return 0;
}

/* "route|exempt|app MATCH [SERVER...]" (modified in place) into *ret; err says why not. */
static int rule_parse(const struct sd_rules *rs, char *line, struct sd_rule *ret, char *err,
		      size_t errlen)
{
	struct sd_rule r = { 0 };
	char *save = NULL, *word = strtok_r(line, " \t", &save), *match;
	int e;

	if (word && !strcmp(word, "route"))
		r.kind = SD_ROUTE;
	else if (word && !strcmp(word, "exempt"))
		r.kind = SD_EXEMPT;
	else if (word && !strcmp(word, "app"))
		r.kind = SD_APP;
	else {
		snprintf(err, errlen, "a rule begins with route, exempt or app");
		return -EINVAL;
	}
	match = strtok_r(NULL, " \t", &save);
	if (!match) {
		snprintf(err, errlen, "%s needs a %s", word, r.kind == SD_APP ? "program" : "domain");
		return -EINVAL;
	}
	if (r.kind == SD_APP ? match[0] != '/' : normalize_suffix(match) < 0) {
		snprintf(err, errlen, r.kind == SD_APP ? "'%.64s' is not an absolute path"
						       : "'%.64s' is not a domain name", match);
		return -EINVAL;
	}
	if (rules_find(rs, match, r.kind == SD_APP)) {
		snprintf(err, errlen, "%.64s has a rule already", match);
		return -EEXIST;
	}
	e = parse_servers(&r, &save, err, errlen);
	if (e < 0)
		return e;
	if (r.kind == SD_EXEMPT && r.n_servers) {
		snprintf(err, errlen, "exempt takes no servers (it uses the system resolver)");
		return -EINVAL;
	}
	r.match = strdup(match);
	if (!r.match) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*ret = r;
	return 0;
}

/* Cuts a line at its end of line and at a comment: '#' at the start of the line or after a
 * blank. Returns the line without leading or trailing blanks. */
static char *strip_line(char *line)
{
	char *hash;
	size_t len;

	line[strcspn(line, "\r\n")] = '\0';
	line += strspn(line, " \t");
	for (hash = strchr(line, '#'); hash; hash = strchr(hash + 1, '#'))
		if (hash == line || hash[-1] == ' ' || hash[-1] == '\t') {
			*hash = '\0';
			break;
		}
	len = strlen(line);
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	return line;
}

static int rules_add_line(struct sd_rules *rs, char *line, unsigned lineno, char *err, size_t errlen)
{
	struct sd_rule r, *v;
	int e;

	line = strip_line(line);
	if (line[0] == '\0')
		return 0;
	if (rs->n == SD_RULES_MAX) {
		snprintf(err, errlen, "more than %d rules", SD_RULES_MAX);
		return -E2BIG;
	}
	e = rule_parse(rs, line, &r, err, errlen);
	if (e < 0)
		return e;
	v = realloc(rs->v, (rs->n + 1) * sizeof(*v));
	if (!v) {
		free(r.match);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r.line = lineno;
	v[rs->n++] = r;
	rs->v = v;
	return 0;
}

/* Reads the rule file at path into *ret (replaced only on success). On failure err reads
 * "PATH:LINE: what" (or "PATH: why" when the file cannot be read). */
static int rules_load(const char *path, struct sd_rules *ret, char *err, size_t errlen)
{
	char line[SD_LINE_MAX + 2], what[200] = "";
	struct sd_rules rs = { 0 };
	FILE *f = fopen(path, "re");
	unsigned lineno = 0;
	int e = 0;

	if (!f) {
		e = -errno;
		snprintf(err, errlen, "%s: %s%s", path, strerror(-e),
			 e == -EACCES ? " (it must be readable by the extension's user)" : "");
		return e;
	}
	while (e == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && strlen(line) > SD_LINE_MAX) {
			snprintf(what, sizeof(what), "line longer than %d bytes", SD_LINE_MAX);
			e = -EINVAL;
		} else
			e = rules_add_line(&rs, line, lineno, what, sizeof(what));
	}
	if (e == 0 && ferror(f)) {
		snprintf(what, sizeof(what), "read error");
		e = -EIO;
	}
	fclose(f);
	if (e < 0) {
		snprintf(err, errlen, "%s:%u: %s", path, lineno, what);
		rules_clear(&rs);
		return e;
	}
	rules_clear(ret);
	*ret = rs;
	return 0;
}

/* --- decisions -------------------------------------------------------------------------------- */

/* Where a query for qname from executable exe (NULL: unknown) goes. Pure apart from the
 * rule's round robin and hit counters. */
static struct sd_decision sd_decide(struct sd_rules *rs, const char *qname, const char *exe)
{
	struct sd_decision d = { SD_VIA_SYSTEM, NULL, NULL };
	struct sd_rule *r = NULL;
	size_t i, best = 0;

	for (i = 0; exe && !r && i < rs->n; i++)
		if (rs->v[i].kind == SD_APP && !strcmp(rs->v[i].match, exe))
			r = &rs->v[i];
	/* Suffixes of one name: the longer text is the deeper domain. */
	for (i = 0; (!r || r->kind != SD_APP) && i < rs->n; i++)
		if (rs->v[i].kind != SD_APP && strlen(rs->v[i].match) > best &&
		    ne_dns_name_in_domain(qname, rs->v[i].match)) {
			best = strlen(rs->v[i].match);
			r = &rs->v[i];
		}
	if (!r)
		return d;
	d.rule = r;
	d.via = r->kind == SD_APP ? SD_VIA_APP : r->kind == SD_ROUTE ? SD_VIA_ROUTE : SD_VIA_EXEMPT;
	r->hits++;
	if (r->n_servers) {
		d.server = r->servers[r->next % r->n_servers];
		r->next = (r->next + 1) % r->n_servers;
	}
	return d;
}

static const char *type_name(uint16_t type, char *buf, size_t size)
{
	switch (type) {
	case NE_DNS_TYPE_A: return "A";
	case NE_DNS_TYPE_AAAA: return "AAAA";
	case NE_DNS_TYPE_CNAME: return "CNAME";
	case NE_DNS_TYPE_MX: return "MX";
	case NE_DNS_TYPE_NS: return "NS";
	case NE_DNS_TYPE_PTR: return "PTR";
	case NE_DNS_TYPE_SOA: return "SOA";
	case NE_DNS_TYPE_SRV: return "SRV";
	case NE_DNS_TYPE_TXT: return "TXT";
	case NE_DNS_TYPE_HTTPS: return "HTTPS";
	default:
		snprintf(buf, size, "TYPE%u", type);
		return buf;
	}
}

/* "query 17 a.corp.example A from /usr/bin/ssh[812]: route corp.example (line 2) -> 10.0.0.53" */
static void log_decision(struct splitdns *sd, ne_dns_query *q, const char *qname,
			 const struct sd_decision *d)
{
	const ne_flow *flow = ne_dns_query_flow(q);
	const char *exe = flow ? ne_flow_executable(flow) : NULL;
	char tbuf[16], rule[320] = "no rule";

	if (d->rule)
		snprintf(rule, sizeof(rule), "%s %s (line %u)", kind_names[d->rule->kind],
			 d->rule->match, d->rule->line);
	ne_extension_log(sd->ext, NE_LOG_DEBUG, "query %" PRIu64 " %s %s from %s[%d]: %s -> %s",
			 ne_dns_query_id(q), qname[0] ? qname : ".",
			 type_name(ne_dns_message_qtype(ne_dns_query_message(q)), tbuf, sizeof(tbuf)),
			 exe ? exe : "?", flow ? (int)ne_flow_pid(flow) : -1, rule,
			 d->server ? d->server : "system resolver");
}

static ne_dns_verdict sd_query(ne_provider *provider, ne_dns_query *q, void *userdata)
{
	struct splitdns *sd = ne_provider_get_context(provider);
	const ne_dns_message *m = ne_dns_query_message(q);
	const ne_flow *flow = ne_dns_query_flow(q);
	const char *qname = m ? ne_dns_message_qname(m) : "";
	struct sd_decision d;

	(void)userdata;
	if (!sd || !m)
		return ne_dns_verdict_forward(NULL);
	d = sd_decide(&sd->rules, qname, flow ? ne_flow_executable(flow) : NULL);
	sd->queries++;
	sd->via[d.via]++;
	log_decision(sd, q, qname, &d);
	/* d.server points into the rule set, which lives until the next reload: past the
	 * return, where the library copies the target. */
	return ne_dns_verdict_forward(d.server);
}

/* --- lifecycle and messages ------------------------------------------------------------------- */

/* The rule file's path: relative paths are in the bundle directory. */
static int config_path(const char *option, char *buf, size_t size)
{
	const char *bundle = getenv("NETEXT_BUNDLE");
	const char *name = option ? option : SD_DEFAULT_CONFIG;
	int n;

	if (name[0] == '/' || !bundle)
		n = snprintf(buf, size, "%s", name);
	else
		n = snprintf(buf, size, "%s/%s", bundle, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static size_t count_kind(const struct sd_rules *rs, enum sd_kind kind)
{
	size_t i, n = 0;

	for (i = 0; i < rs->n; i++)
		n += rs->v[i].kind == kind;
	return n;
}

static void splitdns_free(struct splitdns *sd)
{
	if (!sd)
		return;
	rules_clear(&sd->rules);
	free(sd);
}

static void sd_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	struct splitdns *sd = calloc(1, sizeof(*sd));
	char err[PATH_MAX + 256] = "out of memory";
	int e = -ENOMEM;

	(void)userdata;
	if (sd) {
		sd->provider = provider;
		sd->ext = ne_provider_extension(provider);
		e = config_path(ne_options_get(options, "config"), sd->path, sizeof(sd->path));
		if (e < 0)
			snprintf(err, sizeof(err), "option config: path too long");
	}
	if (e == 0)
		e = rules_load(sd->path, &sd->rules, err, sizeof(err));
	if (e < 0) {
		splitdns_free(sd);
		ne_provider_start_done(provider, e, err);
		return;
	}
	ne_provider_set_context(provider, sd);
	ne_extension_log(sd->ext, NE_LOG_INFO, "%s: %zu routes, %zu exemptions, %zu app rules from %s",
			 ne_provider_configuration(provider), count_kind(&sd->rules, SD_ROUTE),
			 count_kind(&sd->rules, SD_EXEMPT), count_kind(&sd->rules, SD_APP), sd->path);
	ne_provider_start_done(provider, 0, NULL);
}

static void sd_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct splitdns *sd = ne_provider_get_context(provider);
	const char *why = ne_stop_reason_name(reason);

	(void)userdata;
	if (sd)
		ne_extension_log(sd->ext, NE_LOG_INFO, "%s: stopping (%s) after %" PRIu64 " queries",
				 ne_provider_configuration(provider), why ? why : "unknown reason",
				 sd->queries);
	ne_provider_set_context(provider, NULL);
	splitdns_free(sd);
	ne_provider_stop_done(provider);
}

static void reply_text(ne_message *message, const char *text)
{
	ne_message_reply(message, 0, text, strlen(text));
}

static void msg_stats(struct splitdns *sd, ne_message *message)
{
	char out[512];

	snprintf(out, sizeof(out),
		 "{\"queries\":%" PRIu64 ",\"app\":%" PRIu64 ",\"route\":%" PRIu64 ",\"exempt\":%" PRIu64
		 ",\"system\":%" PRIu64 ",\"rules\":%zu,\"reloads\":%" PRIu64 "}",
		 sd->queries, sd->via[SD_VIA_APP], sd->via[SD_VIA_ROUTE], sd->via[SD_VIA_EXEMPT],
		 sd->via[SD_VIA_SYSTEM], sd->rules.n, sd->reloads);
	reply_text(message, out);
}

static void msg_reload(struct splitdns *sd, ne_message *message)
{
	char err[PATH_MAX + 256], out[PATH_MAX + 300];
	int e = rules_load(sd->path, &sd->rules, err, sizeof(err));

	if (e < 0) {
		ne_extension_log(sd->ext, NE_LOG_WARNING, "%s: reload failed, rules unchanged: %s",
				 ne_provider_configuration(sd->provider), err);
		snprintf(out, sizeof(out), "error: %s", err);
	} else {
		sd->reloads++;
		ne_extension_log(sd->ext, NE_LOG_INFO, "%s: reloaded %zu rules from %s",
				 ne_provider_configuration(sd->provider), sd->rules.n, sd->path);
		snprintf(out, sizeof(out), "ok: %zu rules from %s", sd->rules.n, sd->path);
	}
	reply_text(message, out);
}

/* Appends to a bounded buffer; once it is full, further appends do nothing. */
struct sd_buf {
	char *p;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) buf_add(struct sd_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->len >= b->cap - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len = b->len + (size_t)n < b->cap ? b->len + (size_t)n : b->cap - 1;
}

/* "route corp.example 10.0.0.53 10.0.0.54  # line 2, 7 queries" per rule. */
static void msg_rules(struct splitdns *sd, ne_message *message)
{
	static char out[NE_MESSAGE_MAX];
	struct sd_buf b = { out, 0, sizeof(out) };
	size_t i, j;

	for (i = 0; i < sd->rules.n; i++) {
		const struct sd_rule *r = &sd->rules.v[i];

		buf_add(&b, "%s%s %s", i ? "\n" : "", kind_names[r->kind], r->match);
		for (j = 0; j < r->n_servers; j++)
			buf_add(&b, " %s", r->servers[j]);
		if (r->kind == SD_APP && r->n_servers == 0)
			buf_add(&b, " system");
		buf_add(&b, "  # line %u, %" PRIu64 " queries", r->line, r->hits);
	}
	ne_message_reply(message, 0, out, b.len);
}

static bool is(const void *data, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(data, word, len) == 0;
}

static void sd_app_message(ne_provider *provider, ne_message *message, const void *data,
			   size_t len, void *userdata)
{
	struct splitdns *sd = ne_provider_get_context(provider);

	(void)userdata;
	if (!sd)
		ne_message_reply(message, -EINVAL, NULL, 0);
	else if (is(data, len, "stats"))
		msg_stats(sd, message);
	else if (is(data, len, "reload"))
		msg_reload(sd, message);
	else if (is(data, len, "rules"))
		msg_rules(sd, message);
	else
		ne_message_reply(message, -EINVAL, NULL, 0);
}

static const struct ne_provider_ops splitdns_ops = {
	.size = sizeof(splitdns_ops),
	.start = sd_start,
	.stop = sd_stop,
	.app_message = sd_app_message,
};

static const struct ne_dns_proxy_ops splitdns_dns_ops = {
	.size = sizeof(splitdns_dns_ops),
	.handle_query = sd_query,
};

int main(void)
{
	ne_extension *ext = NULL;
	int r;

	r = ne_extension_new(&ext);
	if (r >= 0)
		r = ne_extension_register_dns_proxy(ext, &splitdns_ops, &splitdns_dns_ops, NULL);
	if (r >= 0)
		r = ne_extension_run(ext);
	if (r < 0)
		fprintf(stderr, "netext-splitdns: %s%s\n", strerror(-r),
			r == -ENOTCONN ? " (not started by netextd)" : "");
	ne_extension_free(ext);
	return r < 0 ? 1 : 0;
}
