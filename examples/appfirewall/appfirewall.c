/* netext-appfirewall: an application firewall in the manner of LuLu or OpenSnitch.
 *
 * Rules name a program (executable path), a user (uid) and a remote host or domain, and
 * allow or drop. They come from a rule file read at start and from app messages at run
 * time. Every rule becomes a daemon rule of the filter settings, so netextd decides the
 * flows they match without asking this process; only flows that no rule matches, under
 * `default=ask`, reach handle_new_flow, which logs them and applies the `unknown` policy.
 *
 * Options:   rules=PATH                 the rule file (default rules.conf; a relative path is
 *                                       taken in the bundle directory, $NETEXT_BUNDLE)
 *            unknown=allow|drop|pause   the verdict for flows no rule matches (default allow;
 *                                       pause leaves them to `netextctl flows allow|drop ID`)
 * Rule file: one rule a line; '#' at the start of a line or after a space starts a comment:
 *            default=ask|allow|drop                        unmatched flows (default ask)
 *            allow|drop [exe=PATH] [uid=N] [host=NAME] [port=N]
 *                                   at least one match; all given must hold. host=example.com
 *                                   matches example.com and every name below it; port is
 *                                   the remote port.
 * Messages:  list                  "default=... unknown=..." then "N origin rule" per rule
 *            add allow|drop ...    a rule line as above, kept in memory, tried before the
 *                                  file's rules; replies "ok: rule N" once netextd has it
 *            remove N              removes run-time rule N (file rules are read-only)
 *            reload                reads the rule file again, keeps the run-time rules
 *
 * The sandbox gives an extension no writable place of its own (it runs as an unprivileged
 * user in its read-only bundle directory), so rules added at run time live until the
 * extension stops; persistent rules go into the rule file.
 *
 * Trust: the rule file and app messages come from the administrator; both are parsed with
 * fixed bounds (line length, rule count) and netextd checks every rule again. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netext/filter.h>

#define AFW_LINE_MAX 1024
#define AFW_DEFAULT_RULES "rules.conf"

enum afw_unknown { AFW_UNKNOWN_ALLOW, AFW_UNKNOWN_DROP, AFW_UNKNOWN_PAUSE };

struct afw_rule {
	ne_filter_action action; /* allow or drop */
	bool runtime;            /* added by an app message, not from the file */
	bool has_uid;
	uint32_t uid;
	uint16_t port; /* remote port; 0: any */
	char *exe;  /* NULL: any */
	char *host; /* NULL: any */
};

/* A complete rule set: the run-time rules first, then the file's, in the order netextd
 * tries them (so "rule N" in `netextctl flows` is rule N of `list`). */
struct afw_rules {
	struct afw_rule *v;
	size_t n, n_runtime;
	ne_filter_action default_action; /* filter-data means "ask" */
};

/* One per configuration (provider). At most one settings change is in flight: `next`
 * becomes `cur` when netextd accepts it. */
struct afw {
	ne_provider *provider;
	ne_extension *ext;
	char path[PATH_MAX];
	enum afw_unknown unknown;
	struct afw_rules cur, next;
	bool applying;
	ne_message *waiting; /* the change's app message; NULL while starting */
	char ok_text[64];    /* the reply once the change is applied */
};

static const char *action_name(ne_filter_action a)
{
	return a == NE_FILTER_ACTION_ALLOW ? "allow" : a == NE_FILTER_ACTION_DROP ? "drop" : "ask";
}

static const char *const unknown_names[] = { "allow", "drop", "pause" };

/* --- rules ---------------------------------------------------------------------------------- */

static void rule_clear(struct afw_rule *r)
{
	free(r->exe);
	free(r->host);
	memset(r, 0, sizeof(*r));
}

static void rules_clear(struct afw_rules *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		rule_clear(&rs->v[i]);
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

static int rule_copy(const struct afw_rule *from, struct afw_rule *to)
{
	*to = *from;
	to->exe = from->exe ? strdup(from->exe) : NULL;
	to->host = from->host ? strdup(from->host) : NULL;
	if ((from->exe && !to->exe) || (from->host && !to->host)) {
		rule_clear(to);
		return -ENOMEM;
	}
	return 0;
}

/* Inserts a copy of r at index at (0 <= at <= n). */
static int rules_insert(struct afw_rules *rs, size_t at, const struct afw_rule *r)
{
	struct afw_rule *v;
	int err;

	if (rs->n >= NE_FILTER_RULES_MAX)
		return -E2BIG;
	v = realloc(rs->v, (rs->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	rs->v = v;
	memmove(&v[at + 1], &v[at], (rs->n - at) * sizeof(*v));
	err = rule_copy(r, &v[at]);
	if (err < 0) {
		memmove(&v[at], &v[at + 1], (rs->n - at) * sizeof(*v));
		return err;
	}
	rs->n++;
	rs->n_runtime += r->runtime;
	return 0;
}

static void rules_remove(struct afw_rules *rs, size_t at)
{
	rs->n_runtime -= rs->v[at].runtime;
	rule_clear(&rs->v[at]);
	memmove(&rs->v[at], &rs->v[at + 1], (rs->n - at - 1) * sizeof(*rs->v));
	rs->n--;
}

/* A copy of rs: its run-time rules, and its file rules unless keep_file is false. */
static int rules_copy(const struct afw_rules *rs, bool keep_file, struct afw_rules *ret)
{
	struct afw_rules c = { .default_action = rs->default_action };
	size_t i;
	int err;

	for (i = 0; i < rs->n; i++) {
		if (!keep_file && !rs->v[i].runtime)
			continue;
		err = rules_insert(&c, c.n, &rs->v[i]);
		if (err < 0) {
			rules_clear(&c);
			return err;
		}
	}
	*ret = c;
	return 0;
}

/* "allow exe=/usr/bin/curl uid=1000 host=example.com port=443" */
static void rule_format(const struct afw_rule *r, char *buf, size_t size)
{
	char uid[24] = "", port[16] = "";

	if (r->has_uid)
		snprintf(uid, sizeof(uid), " uid=%" PRIu32, r->uid);
	if (r->port)
		snprintf(port, sizeof(port), " port=%u", r->port);
	snprintf(buf, size, "%s%s%s%s%s%s%s", action_name(r->action), r->exe ? " exe=" : "",
		 r->exe ? r->exe : "", uid, r->host ? " host=" : "", r->host ? r->host : "", port);
}

static int set_once(char **field, const char *value)
{
	if (*field)
		return -EEXIST;
	*field = strdup(value);
	return *field ? 0 : -ENOMEM;
}

/* A decimal number below max. */
static int parse_number(const char *text, unsigned long max, uint32_t *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || text[0] < '0' || text[0] > '9' || v >= max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_port(const char *text, uint16_t *ret)
{
	uint32_t v;

	if (parse_number(text, 65536, &v) < 0 || v == 0)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

/* One "KEY=VALUE" of a rule; err says what is wrong. */
static int rule_match_parse(struct afw_rule *r, char *word, char *err, size_t errlen)
{
	char *value = strchr(word, '=');
	char *c;
	int e;

	if (!value || value[1] == '\0') {
		snprintf(err, errlen, "'%.64s' is not KEY=VALUE", word);
		return -EINVAL;
	}
	*value++ = '\0';
	if (!strcmp(word, "exe") && value[0] != '/') {
		snprintf(err, errlen, "exe must be an absolute path");
		return -EINVAL;
	}
	if (!strcmp(word, "host"))
		for (c = value; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
	if (!strcmp(word, "uid")) {
		e = r->has_uid ? -EEXIST : parse_number(value, UINT32_MAX, &r->uid);
		r->has_uid = true;
	} else if (!strcmp(word, "port"))
		e = r->port ? -EEXIST : parse_port(value, &r->port);
	else if (!strcmp(word, "exe"))
		e = set_once(&r->exe, value);
	else if (!strcmp(word, "host"))
		e = set_once(&r->host, value);
	else {
		snprintf(err, errlen, "unknown match '%.32s' (exe, uid, host, port)", word);
		return -EINVAL;
	}
	if (e == -EEXIST)
		snprintf(err, errlen, "%s given twice", word);
	else if (e == -EINVAL)
		snprintf(err, errlen, "%s must be a number%s", word, !strcmp(word, "port") ? " (1-65535)" : "");
	else if (e < 0)
		snprintf(err, errlen, "out of memory");
	return e;
}

/* "allow|drop KEY=VALUE..." (modified in place). On failure err says why. */
static int rule_parse(char *line, struct afw_rule *ret, char *err, size_t errlen)
{
	struct afw_rule r = { 0 };
	char *save = NULL, *word;
	int e = 0;

	word = strtok_r(line, " \t", &save);
	if (word && !strcmp(word, "allow"))
		r.action = NE_FILTER_ACTION_ALLOW;
	else if (word && !strcmp(word, "drop"))
		r.action = NE_FILTER_ACTION_DROP;
	else {
		snprintf(err, errlen, "a rule begins with allow or drop");
		return -EINVAL;
	}
	while (e == 0 && (word = strtok_r(NULL, " \t", &save)))
		e = rule_match_parse(&r, word, err, errlen);
	if (e == 0 && !r.exe && !r.host && !r.has_uid && !r.port) {
		snprintf(err, errlen, "a rule needs at least one of exe=, uid=, host=, port=");
		e = -EINVAL;
	}
	if (e < 0) {
		rule_clear(&r);
		return e;
	}
	*ret = r;
	return 0;
}

static int parse_default(const char *value, ne_filter_action *ret)
{
	if (!strcmp(value, "ask"))
		*ret = NE_FILTER_ACTION_FILTER_DATA;
	else if (!strcmp(value, "allow"))
		*ret = NE_FILTER_ACTION_ALLOW;
	else if (!strcmp(value, "drop"))
		*ret = NE_FILTER_ACTION_DROP;
	else
		return -EINVAL;
	return 0;
}

/* One line of the rule file into rs (appended as a file rule). */
/* Cuts a line at its end of line and at a comment: '#' at the start of the line or after a
 * space or tab. Returns the line without leading or trailing blanks. */
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

static int file_line(struct afw_rules *rs, char *line, char *err, size_t errlen)
{
	struct afw_rule r;
	int e;

	line = strip_line(line);
	if (line[0] == '\0')
		return 0;
	if (!strncmp(line, "default=", 8)) {
		if (parse_default(line + 8, &rs->default_action) == 0)
			return 0;
		snprintf(err, errlen, "default must be ask, allow or drop");
		return -EINVAL;
	}
	e = rule_parse(line, &r, err, errlen);
	if (e < 0)
		return e;
	e = rules_insert(rs, rs->n, &r);
	rule_clear(&r);
	if (e < 0)
		snprintf(err, errlen, "%s", e == -E2BIG ? "too many rules" : "out of memory");
	return e;
}

/* Reads the rule file into the file part of rs (rs holds no file rules). A missing file
 * is an empty one when it is the default file (missing_ok). */
static int rules_load(const char *path, bool missing_ok, struct afw_rules *rs, char *err,
		      size_t errlen)
{
	char line[AFW_LINE_MAX + 2], what[160] = "";
	FILE *f = fopen(path, "re");
	unsigned lineno = 0;
	int e = 0;

	rs->default_action = NE_FILTER_ACTION_FILTER_DATA;
	if (!f) {
		e = -errno;
		if (e == -ENOENT && missing_ok)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(-e));
		return e;
	}
	while (e == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && strlen(line) > AFW_LINE_MAX) {
			snprintf(what, sizeof(what), "line longer than %d bytes", AFW_LINE_MAX);
			e = -EINVAL;
		} else
			e = file_line(rs, line, what, sizeof(what));
	}
	if (e == 0 && ferror(f)) {
		e = -EIO;
		snprintf(what, sizeof(what), "read error");
	}
	fclose(f);
	if (e < 0)
		snprintf(err, errlen, "%s:%u: %s", path, lineno, what);
	return e;
}

/* --- settings ------------------------------------------------------------------------------- */

static void after_apply(ne_provider *provider, int error, const char *message, void *userdata);

/* Sends a->next to netextd; after_apply completes the change. */
static int afw_send(struct afw *a)
{
	struct ne_filter_rule *fr = calloc(a->next.n + 1, sizeof(*fr));
	struct ne_filter_settings s = {
		.size = sizeof(s),
		.rules = fr,
		.n_rules = a->next.n,
		.default_action = a->next.default_action,
	};
	size_t i;
	int err;

	if (!fr)
		return -ENOMEM;
	for (i = 0; i < a->next.n; i++) {
		const struct afw_rule *r = &a->next.v[i];

		fr[i] = (struct ne_filter_rule){ .action = r->action, .executable = r->exe,
						 .remote_hostname = r->host, .match_uid = r->has_uid,
						 .uid = r->uid, .remote_port = r->port };
	}
	err = ne_filter_apply_settings(a->provider, &s, after_apply, a);
	free(fr);
	if (err == 0)
		a->applying = true;
	return err;
}

/* Starts a change whose new rule set is in a->next; the reply comes from after_apply. */
static void change_begin(struct afw *a, ne_message *message, const char *ok_text)
{
	char out[96];
	int err;

	a->waiting = message;
	snprintf(a->ok_text, sizeof(a->ok_text), "%s", ok_text);
	err = afw_send(a);
	if (err < 0) {
		rules_clear(&a->next);
		snprintf(out, sizeof(out), "error: cannot send the settings: %s", strerror(-err));
		ne_message_reply(message, 0, out, strlen(out));
	}
}

static void afw_free(struct afw *a)
{
	if (!a)
		return;
	rules_clear(&a->cur);
	rules_clear(&a->next);
	free(a);
}

static void start_finished(struct afw *a, int error, const char *message)
{
	ne_provider *provider = a->provider;

	if (error == 0)
		ne_extension_log(a->ext, NE_LOG_INFO, "%s: %zu rules from %s, default %s, unknown=%s",
				 ne_provider_configuration(provider), a->cur.n, a->path,
				 action_name(a->cur.default_action), unknown_names[a->unknown]);
	else {
		/* A failed start leaves the provider stopped, without a stop callback. */
		ne_provider_set_context(provider, NULL);
		afw_free(a);
	}
	ne_provider_start_done(provider, error, message);
}

static void after_apply(ne_provider *provider, int error, const char *message, void *userdata)
{
	struct afw *a = userdata;
	ne_message *waiting = a->waiting;
	char out[320];

	a->applying = false;
	a->waiting = NULL;
	if (error == 0) {
		rules_clear(&a->cur);
		a->cur = a->next;
		memset(&a->next, 0, sizeof(a->next));
	} else
		rules_clear(&a->next);
	if (!waiting) {
		start_finished(a, error, message);
		return;
	}
	if (error == 0) {
		ne_extension_log(a->ext, NE_LOG_INFO, "%s: rules changed: %s (%zu rules)",
				 ne_provider_configuration(provider), a->ok_text, a->cur.n);
		snprintf(out, sizeof(out), "%s", a->ok_text);
	} else
		snprintf(out, sizeof(out), "error: netextd refused the rules: %s",
			 message ? message : strerror(-error));
	ne_message_reply(waiting, 0, out, strlen(out));
}

/* --- lifecycle ------------------------------------------------------------------------------ */

static int parse_unknown(const char *value, enum afw_unknown *ret)
{
	size_t i;

	for (i = 0; i < sizeof(unknown_names) / sizeof(unknown_names[0]); i++)
		if (!strcmp(value, unknown_names[i])) {
			*ret = (enum afw_unknown)i;
			return 0;
		}
	return -EINVAL;
}

/* The rule file's path: relative paths are in the bundle directory. */
static int rules_path(const char *option, char *buf, size_t size)
{
	const char *bundle = getenv("NETEXT_BUNDLE");
	const char *name = option ? option : AFW_DEFAULT_RULES;
	int n;

	if (name[0] == '/' || !bundle)
		n = snprintf(buf, size, "%s", name);
	else
		n = snprintf(buf, size, "%s/%s", bundle, name);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int afw_configure(struct afw *a, const ne_options *options, char *err, size_t errlen)
{
	const char *unknown = ne_options_get(options, "unknown");
	const char *rules = ne_options_get(options, "rules");

	if (unknown && parse_unknown(unknown, &a->unknown) < 0) {
		snprintf(err, errlen, "option unknown: allow, drop or pause");
		return -EINVAL;
	}
	if (rules_path(rules, a->path, sizeof(a->path)) < 0) {
		snprintf(err, errlen, "option rules: path too long");
		return -ENAMETOOLONG;
	}
	return rules_load(a->path, !rules, &a->next, err, errlen);
}

static void afw_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	struct afw *a = calloc(1, sizeof(*a));
	char err[512] = "out of memory";
	int e = -ENOMEM;

	(void)userdata;
	if (a) {
		a->provider = provider;
		a->ext = ne_provider_extension(provider);
		ne_provider_set_context(provider, a);
		e = afw_configure(a, options, err, sizeof(err));
	}
	if (e == 0) {
		a->waiting = NULL; /* after_apply completes the start */
		e = afw_send(a);
		snprintf(err, sizeof(err), "cannot send the filter settings");
	}
	if (e < 0) {
		ne_provider_set_context(provider, NULL);
		afw_free(a);
		ne_provider_start_done(provider, e, err);
	}
}

static void afw_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct afw *a = ne_provider_get_context(provider);
	const char *why = ne_stop_reason_name(reason);

	(void)userdata;
	if (a)
		ne_extension_log(a->ext, NE_LOG_INFO, "%s: stopping (%s)%s",
				 ne_provider_configuration(provider), why ? why : "unknown reason",
				 a->cur.n_runtime ? "; run-time rules are forgotten" : "");
	ne_provider_set_context(provider, NULL);
	afw_free(a); /* a pending change's message is freed with the provider */
	ne_provider_stop_done(provider);
}

/* --- flows ---------------------------------------------------------------------------------- */

/* "198.18.1.2:443" or "[fd00::2]:443" */
static void endpoint_text(const ne_flow *flow, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
	char addr[INET6_ADDRSTRLEN] = "?";

	if (ne_flow_remote_endpoint(flow, &ss) < 0) {
		snprintf(buf, size, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		snprintf(buf, size, "[%s]:%u", addr, ntohs(in6->sin6_port));
	} else {
		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		snprintf(buf, size, "%s:%u", addr, ntohs(in->sin_port));
	}
}

/* "/usr/bin/curl[1234] uid 1000 -> example.com (198.18.1.2:443 tcp out)": who, as whom,
 * to where; the line a person reads to write a rule. */
static void flow_text(const ne_flow *flow, char *buf, size_t size)
{
	const char *exe = ne_flow_executable(flow), *host = ne_flow_remote_hostname(flow);
	char proc[600], uid[24] = "uid ?", remote[80];

	if (ne_flow_pid(flow) > 0)
		snprintf(proc, sizeof(proc), "%s[%d]", exe ? exe : "?", (int)ne_flow_pid(flow));
	else
		snprintf(proc, sizeof(proc), "unknown process");
	if (ne_flow_uid(flow) >= 0)
		snprintf(uid, sizeof(uid), "uid %lld", (long long)ne_flow_uid(flow));
	endpoint_text(flow, remote, sizeof(remote));
	snprintf(buf, size, "%s %s -> %s (%s %s %s)", proc, uid, host ? host : "no hostname", remote,
		 ne_flow_protocol(flow) == IPPROTO_TCP ? "tcp" : ne_flow_protocol(flow) == IPPROTO_UDP ? "udp" : "ip",
		 ne_flow_get_direction(flow) == NE_FLOW_INBOUND ? "in" : "out");
}

static ne_filter_verdict afw_new_flow(ne_provider *provider, ne_flow *flow, void *userdata)
{
	struct afw *a = ne_provider_get_context(provider);
	enum afw_unknown u = a ? a->unknown : AFW_UNKNOWN_ALLOW;
	char text[1024];

	(void)userdata;
	flow_text(flow, text, sizeof(text));
	ne_extension_log(ne_provider_extension(provider), NE_LOG_INFO,
			 "flow %" PRIu64 " %s: %s, no rule, unknown=%s%s", ne_flow_id(flow),
			 u == AFW_UNKNOWN_PAUSE ? "paused" : unknown_names[u], text, unknown_names[u],
			 u == AFW_UNKNOWN_PAUSE ? " (netextctl flows allow|drop ID)" : "");
	if (u == AFW_UNKNOWN_DROP)
		return ne_filter_verdict_drop();
	return u == AFW_UNKNOWN_PAUSE ? ne_filter_verdict_pause() : ne_filter_verdict_allow();
}

/* The decision for a flow paused by unknown=pause, made by a person (or a limit). */
static void afw_report(ne_provider *provider, const struct ne_filter_report *report, void *userdata)
{
	char text[1024];

	(void)userdata;
	if (report->event != NE_FILTER_REPORT_RESOLVED)
		return;
	flow_text(report->flow, text, sizeof(text));
	ne_extension_log(ne_provider_extension(provider), NE_LOG_INFO, "flow %" PRIu64 " %s: %s, by %s",
			 ne_flow_id(report->flow), report->verdict == NE_VERDICT_ALLOW ? "allow" : "drop",
			 text, report->detail ? report->detail : "someone else");
}

/* --- app messages --------------------------------------------------------------------------- */

static void reply_text(ne_message *message, const char *text)
{
	ne_message_reply(message, 0, text, strlen(text));
}

static void msg_list(struct afw *a, ne_message *message)
{
	static char out[NE_MESSAGE_MAX];
	char rule[AFW_LINE_MAX + 64];
	size_t i, len;
	int n;

	n = snprintf(out, sizeof(out), "default=%s unknown=%s rules=%s\n",
		     action_name(a->cur.default_action), unknown_names[a->unknown], a->path);
	len = (size_t)n; /* a->path is shorter than out */
	for (i = 0; i < a->cur.n; i++) {
		rule_format(&a->cur.v[i], rule, sizeof(rule));
		n = snprintf(out + len, sizeof(out) - len, "%zu %s %s\n", i + 1,
			     a->cur.v[i].runtime ? "runtime" : "file   ", rule);
		if (n < 0 || (size_t)n >= sizeof(out) - len)
			break;
		len += (size_t)n;
	}
	/* Lines are separated, not terminated: netextctl ends the reply with its own newline. */
	ne_message_reply(message, 0, out, len - 1);
}

/* "add allow|drop ...": the new rule goes after the existing run-time rules. */
static void msg_add(struct afw *a, ne_message *message, char *line)
{
	char err[160], out[200], ok[64];
	struct afw_rule r;
	int e;

	if (rule_parse(line, &r, err, sizeof(err)) < 0) {
		snprintf(out, sizeof(out), "error: %s", err);
		reply_text(message, out);
		return;
	}
	r.runtime = true;
	e = rules_copy(&a->cur, true, &a->next);
	if (e == 0)
		e = rules_insert(&a->next, a->next.n_runtime, &r);
	rule_clear(&r);
	if (e < 0) {
		rules_clear(&a->next);
		reply_text(message, e == -E2BIG ? "error: too many rules" : "error: out of memory");
		return;
	}
	snprintf(ok, sizeof(ok), "ok: rule %zu", a->next.n_runtime);
	change_begin(a, message, ok);
}

static void msg_remove(struct afw *a, ne_message *message, const char *arg)
{
	char out[128];
	uint32_t n;

	if (parse_number(arg, UINT32_MAX, &n) < 0 || n < 1 || n > a->cur.n || !a->cur.v[n - 1].runtime) {
		snprintf(out, sizeof(out), "error: '%.16s' is not a run-time rule (see: list; "
			 "file rules are read-only)", arg);
		reply_text(message, out);
		return;
	}
	if (rules_copy(&a->cur, true, &a->next) < 0) {
		reply_text(message, "error: out of memory");
		return;
	}
	rules_remove(&a->next, n - 1);
	change_begin(a, message, "ok");
}

static void msg_reload(struct afw *a, ne_message *message)
{
	char err[512], out[600];
	struct afw_rules file = { 0 };
	size_t i;
	int e;

	e = rules_load(a->path, false, &file, err, sizeof(err));
	if (e == 0)
		e = rules_copy(&a->cur, false, &a->next);
	for (i = 0; e == 0 && i < file.n; i++)
		e = rules_insert(&a->next, a->next.n, &file.v[i]);
	a->next.default_action = file.default_action;
	rules_clear(&file);
	if (e < 0) {
		rules_clear(&a->next);
		snprintf(out, sizeof(out), "error: %s", e == -E2BIG ? "too many rules" : err);
		reply_text(message, out);
		return;
	}
	change_begin(a, message, "ok");
}

static void afw_app_message(ne_provider *provider, ne_message *message, const void *data,
			    size_t len, void *userdata)
{
	struct afw *a = ne_provider_get_context(provider);
	char req[AFW_LINE_MAX + 1];

	(void)userdata;
	/* data may be NULL when len is 0. */
	if (!a || len >= sizeof(req) || (len && memchr(data, '\0', len))) {
		ne_message_reply(message, -EINVAL, NULL, 0);
		return;
	}
	if (len)
		memcpy(req, data, len);
	req[len] = '\0';
	if (!strcmp(req, "list"))
		msg_list(a, message);
	else if (a->applying)
		reply_text(message, "error: busy applying a change, try again");
	else if (!strncmp(req, "add ", 4))
		msg_add(a, message, req + 4);
	else if (!strncmp(req, "remove ", 7))
		msg_remove(a, message, req + 7);
	else if (!strcmp(req, "reload"))
		msg_reload(a, message);
	else
		ne_message_reply(message, -EINVAL, NULL, 0);
}

int main(void)
{
	static const struct ne_provider_ops ops = {
		.size = sizeof(ops),
		.start = afw_start,
		.stop = afw_stop,
		.app_message = afw_app_message,
	};
	static const struct ne_filter_ops filter_ops = {
		.size = sizeof(filter_ops),
		.handle_new_flow = afw_new_flow,
		.handle_report = afw_report,
	};
	ne_extension *ext = NULL;
	int r;

	r = ne_extension_new(&ext);
	if (r >= 0)
		r = ne_extension_register_filter(ext, &ops, &filter_ops, NULL);
	if (r >= 0)
		r = ne_extension_run(ext);
	if (r < 0)
		fprintf(stderr, "netext-appfirewall: %s%s\n", strerror(-r),
			r == -ENOTCONN ? " (not started by netextd)" : "");
	ne_extension_free(ext);
	return r < 0 ? 1 : 0;
}
