/* Managed policy (policy.h): drop-in INI files merged into one struct policy.
 *
 * Trust: the directory and its files belong to root, but a typo there must not turn into a
 * half-applied or silently widened policy, so every file is parsed strictly: unknown
 * sections and keys, malformed values, over-long lines, NUL bytes and oversized files reject
 * the whole file. A file is parsed into a scratch policy and merged only when all of it is
 * valid. Nothing here trusts libinih to report problems it cannot see (policy_scan).
 *
 * Symlinks in the directory are followed (policy_load): an administrator or a configuration
 * tool may link a drop-in from elsewhere, and whoever can create a link in a root-owned
 * directory could as well create the file. Only regular files are read. */
#include "policy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netext/netext.h>

#include "log.h"
#include "util.h"

#define POLICY_FILE_MAX (64 * 1024)
/* libinih reads lines into a 200-byte buffer (INI_MAX_LINE) and silently splits longer ones. */
#define POLICY_LINE_MAX NE_MANIFEST_LINE_MAX
#define POLICY_MSG_MAX 192

/* ---- the policy object ------------------------------------------------------------------ */

void policy_init(struct policy *p)
{
	memset(p, 0, sizeof(*p));
	p->allow_user_overrides = true;
	p->allow_downgrade = true;
}

static void policy_strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void policy_clear(struct policy *p)
{
	size_t i;

	if (!p)
		return;
	policy_strv_free(p->non_removable, p->n_non_removable);
	for (i = 0; i < p->n_teams; i++)
		policy_strv_free(p->teams[i].extensions, p->teams[i].n_extensions);
	free(p->teams);
	policy_init(p);
}

static bool policy_strv_contains(char *const *v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Adds a copy of s unless it is already there. */
static int policy_strv_add(char ***v, size_t *n, const char *s)
{
	char **nv, *copy;

	if (policy_strv_contains(*v, *n, s))
		return 0;
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv) {
		free(copy);
		return -ENOMEM;
	}
	nv[(*n)++] = copy;
	*v = nv;
	return 0;
}

const struct policy_team *policy_find_team(const struct policy *p, const char *team)
{
	size_t i;

	for (i = 0; i < p->n_teams; i++)
		if (strcmp(p->teams[i].team, team) == 0)
			return &p->teams[i];
	return NULL;
}

/* The team's entry, added (Approve on, no keys, every identifier) when missing. The pointer
 * is valid until the next call. */
static int policy_team_get(struct policy *p, const char *team, struct policy_team **ret)
{
	struct policy_team *t = (struct policy_team *)policy_find_team(p, team), *nt;

	if (!t) {
		nt = realloc(p->teams, (p->n_teams + 1) * sizeof(*p->teams));
		if (!nt)
			return -ENOMEM;
		p->teams = nt;
		t = &p->teams[p->n_teams++];
		memset(t, 0, sizeof(*t));
		memcpy(t->team, team, strlen(team) + 1);   /* validated: at most NE_TEAM_MAX */
		t->approve = true;
	}
	*ret = t;
	return 0;
}

/* Adds key unless the team has it; -E2BIG when the team already has POLICY_MAX_KEYS. */
static int policy_team_add_key(struct policy_team *t, const uint8_t key[32])
{
	unsigned i;

	for (i = 0; i < t->n_keys; i++)
		if (memcmp(t->keys[i].key, key, 32) == 0)
			return 0;
	if (t->n_keys >= POLICY_MAX_KEYS)
		return -E2BIG;
	memcpy(t->keys[t->n_keys].team, t->team, sizeof(t->team));
	memcpy(t->keys[t->n_keys].key, key, 32);
	t->n_keys++;
	return 0;
}

/* Merges src into dst with the rules of docs/lifecycle.md: lists are unions, booleans take
 * the most restrictive value, a team's keys are the union of its sections. On failure dst
 * may be partly merged, so callers merge into a scratch copy. -EINVAL (with msg) when a
 * team would have more than POLICY_MAX_KEYS keys, or -ENOMEM. */
static int policy_merge(struct policy *dst, const struct policy *src, char *msg, size_t msglen)
{
	const struct policy_team *st;
	struct policy_team *dt;
	size_t i, j;
	int r;

	dst->allow_user_overrides = dst->allow_user_overrides && src->allow_user_overrides;
	dst->allow_downgrade = dst->allow_downgrade && src->allow_downgrade;
	dst->allowed_types |= src->allowed_types;
	for (i = 0; i < src->n_non_removable; i++) {
		r = policy_strv_add(&dst->non_removable, &dst->n_non_removable,
				    src->non_removable[i]);
		if (r < 0)
			return r;
	}
	for (i = 0; i < src->n_teams; i++) {
		st = &src->teams[i];
		r = policy_team_get(dst, st->team, &dt);
		if (r < 0)
			return r;
		dt->approve = dt->approve && st->approve;
		for (j = 0; j < st->n_keys; j++) {
			r = policy_team_add_key(dt, st->keys[j].key);
			if (r < 0) {
				snprintf(msg, msglen, "team %s would have more than %d keys",
					 st->team, POLICY_MAX_KEYS);
				return -EINVAL;
			}
		}
		for (j = 0; j < st->n_extensions; j++) {
			r = policy_strv_add(&dt->extensions, &dt->n_extensions, st->extensions[j]);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* ---- parsing ----------------------------------------------------------------------------- */

struct policy_parse {
	struct policy *p;           /* the file's own policy */
	int r;                      /* first error of the handler: -EINVAL or -ENOMEM */
	char msg[POLICY_MSG_MAX];
};

__attribute__((format(printf, 2, 3)))
static int policy_fail(struct policy_parse *ps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ps->msg, sizeof(ps->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool policy_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* "[Policy]" or "[Team TEAMID]", optionally followed by a comment; b..e is the trimmed line.
 * A team section creates the team's entry, so that a section without keys still counts
 * (libinih never reports a section that has no keys). */
static int policy_scan_section(struct policy_parse *ps, const char *b, const char *e)
{
	char name[POLICY_LINE_MAX + 1];
	const char *close = memchr(b, ']', (size_t)(e - b)), *after;
	struct policy_team *t;

	if (!close)
		return policy_fail(ps, "section header without ']'");
	for (after = close + 1; after < e && policy_space(*after); after++)
		;
	if (after < e && *after != '#' && *after != ';')
		return policy_fail(ps, "text after the section header");
	memcpy(name, b + 1, (size_t)(close - b - 1));
	name[close - b - 1] = '\0';
	if (strcmp(name, "Policy") == 0)
		return 0;
	if (strncmp(name, "Team ", 5) != 0)
		return policy_fail(ps, "unknown section [%s]", name);
	if (!ne_team_valid(name + 5))
		return policy_fail(ps, "invalid team identifier '%s' (1-%d of A-Z, 0-9)", name + 5,
				   NE_TEAM_MAX);
	return policy_team_get(ps->p, name + 5, &t);
}

/* A key line as libinih splits it: a name, then '=' or ':' before any ';' comment. */
static int policy_scan_key(struct policy_parse *ps, const char *b, const char *e)
{
	const char *c;

	for (c = b; c < e; c++) {
		if (*c == '=' || *c == ':')
			return c == b ? policy_fail(ps, "key name missing") : 0;
		if (*c == ';' && c > b && policy_space(c[-1]))
			break;
	}
	return policy_fail(ps, "expected a section header or KEY = VALUE");
}

static int policy_scan_line(struct policy_parse *ps, const char *line, const char *eol,
			    bool *in_section)
{
	const char *b = line, *e = eol;
	int r;

	if (memchr(line, '\0', (size_t)(eol - line)))
		return policy_fail(ps, "NUL byte");
	if (eol - line > POLICY_LINE_MAX)
		return policy_fail(ps, "line longer than %d bytes", POLICY_LINE_MAX);
	while (b < e && policy_space(*b))
		b++;
	while (e > b && policy_space(e[-1]))
		e--;
	if (b == e || *b == '#' || *b == ';')
		return 0;
	if (b != line)   /* libinih would take it as a continuation of the previous value */
		return policy_fail(ps, "indented line (continuation lines are not supported)");
	if (*b == '[') {
		r = policy_scan_section(ps, b, e);
		*in_section = true;
		return r;
	}
	if (!*in_section)
		return policy_fail(ps, "key outside a section");
	return policy_scan_key(ps, b, e);
}

/* Checks every line before libinih sees the text. libinih cannot report what this rejects:
 * it splits lines longer than its buffer, stops at a NUL byte, ignores text after ']',
 * never reports a section without keys, and takes indented lines as continuations of the
 * previous value (INI_ALLOW_MULTILINE), so an indented "[Team X]" would become a value.
 * After this, libinih only ever fails where the handler does. */
static int policy_scan(struct policy_parse *ps, const char *text, size_t len, unsigned *ret_line)
{
	const char *s = text, *end = text + len, *nl, *eol;
	bool in_section = false;
	unsigned line = 0;
	int r;

	while (s < end) {
		line++;
		nl = memchr(s, '\n', (size_t)(end - s));
		eol = nl ? nl : end;
		if (line == 1 && eol - s >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3;   /* a UTF-8 byte order mark, which libinih skips too */
		r = policy_scan_line(ps, s, eol, &in_section);
		if (r < 0) {
			*ret_line = line;
			return r;
		}
		s = nl ? nl + 1 : end;
	}
	return 0;
}

static int policy_bool(struct policy_parse *ps, const char *name, const char *v, bool *ret)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*ret = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*ret = false;
	else
		return policy_fail(ps, "%s must be yes, no, true, false, 1 or 0", name);
	return 0;
}

/* A boolean that can only restrict: within a file as across files, "no" wins. */
static int policy_bool_and(struct policy_parse *ps, const char *name, const char *v, bool *dst)
{
	bool b;
	int r = policy_bool(ps, name, v, &b);

	if (r == 0)
		*dst = *dst && b;
	return r;
}

typedef int (*policy_item_fn)(struct policy_parse *ps, struct policy_team *t, const char *item);

/* Calls fn for each item of a list separated by spaces, tabs or commas. v is modified. */
static int policy_list(struct policy_parse *ps, struct policy_team *t, char *v, policy_item_fn fn)
{
	char *save = NULL, *item;
	int r;

	for (item = strtok_r(v, " \t,", &save); item; item = strtok_r(NULL, " \t,", &save)) {
		r = fn(ps, t, item);
		if (r < 0)
			return r;
	}
	return 0;
}

static int policy_item_type(struct policy_parse *ps, struct policy_team *t NE_UNUSED,
			    const char *item)
{
	int type = ne_provider_type_from_name(item);

	if (type < 0)
		return policy_fail(ps, "unknown provider type '%s'", item);
	ps->p->allowed_types |= 1u << type;
	return 0;
}

static int policy_item_non_removable(struct policy_parse *ps, struct policy_team *t NE_UNUSED,
				     const char *item)
{
	if (!ne_identifier_valid(item))
		return policy_fail(ps, "invalid extension identifier '%s'", item);
	return policy_strv_add(&ps->p->non_removable, &ps->p->n_non_removable, item);
}

static int policy_item_extension(struct policy_parse *ps, struct policy_team *t,
				 const char *item)
{
	if (!ne_identifier_valid(item))
		return policy_fail(ps, "invalid extension identifier '%s'", item);
	return policy_strv_add(&t->extensions, &t->n_extensions, item);
}

static int policy_key_policy(struct policy_parse *ps, const char *name, char *v)
{
	struct policy *p = ps->p;

	if (!strcmp(name, "AllowUserOverrides"))
		return policy_bool_and(ps, name, v, &p->allow_user_overrides);
	if (!strcmp(name, "AllowDowngrade"))
		return policy_bool_and(ps, name, v, &p->allow_downgrade);
	if (!strcmp(name, "AllowedProviderTypes"))
		return policy_list(ps, NULL, v, policy_item_type);
	if (!strcmp(name, "NonRemovable"))
		return policy_list(ps, NULL, v, policy_item_non_removable);
	return policy_fail(ps, "unknown key '%s' in [Policy]", name);
}

/* A [Team] section without Key is valid: it can approve or restrict the team's requests but
 * makes none of its bundles trusted (a bundle is only verified against keys listed here). */
static int policy_key_team(struct policy_parse *ps, const char *team, const char *name, char *v)
{
	struct policy_team *t;
	uint8_t key[32];
	int r;

	r = policy_team_get(ps->p, team, &t);
	if (r < 0)
		return r;
	if (!strcmp(name, "Key")) {
		if (ne_pubkey_from_base64(v, key) < 0)
			return policy_fail(ps, "Key must be one base64 ed25519 public key (32 bytes)");
		if (policy_team_add_key(t, key) < 0)
			return policy_fail(ps, "team %s has more than %d keys", team, POLICY_MAX_KEYS);
		return 0;
	}
	if (!strcmp(name, "Approve"))
		return policy_bool_and(ps, name, v, &t->approve);
	if (!strcmp(name, "Extensions"))
		return policy_list(ps, t, v, policy_item_extension);
	return policy_fail(ps, "unknown key '%s' in [Team %s]", name, team);
}

/* libinih's callback. policy_scan has checked the structure, so section is "Policy" or
 * "Team X" with a valid X. Returns 1 to go on; after the first error every call fails, so
 * the line libinih reports is the line of ps->msg. */
static int policy_ini_handler(void *user, const char *section, const char *name,
			      const char *value)
{
	struct policy_parse *ps = user;
	char v[POLICY_LINE_MAX + 1], *hash;
	size_t n;
	int r;

	if (ps->r < 0)
		return 0;
	ne_strscpy(v, value, sizeof(v));
	/* '#' comments after a value, as in docs/lifecycle.md (libinih only knows " ;"). No
	 * valid value contains '#'. */
	for (hash = strchr(v, '#'); hash; hash = strchr(hash + 1, '#'))
		if (hash == v || policy_space(hash[-1])) {
			*hash = '\0';
			break;
		}
	for (n = strlen(v); n > 0 && policy_space(v[n - 1]); n--)
		v[n - 1] = '\0';
	if (!v[0])
		r = policy_fail(ps, "%s needs a value", name);
	else if (strcmp(section, "Policy") == 0)
		r = policy_key_policy(ps, name, v);
	else
		r = policy_key_team(ps, section + strlen("Team "), name, v);
	if (r < 0) {
		if (r != -EINVAL)
			policy_fail(ps, "%s", strerror(-r));
		ps->r = r;
		return 0;
	}
	return 1;
}

/* Parses one file into ps->p; on error *ret_line is the line (0: the whole file). */
static int policy_parse(struct policy_parse *ps, const char *text, size_t len,
			unsigned *ret_line)
{
	_cleanup_free_ char *copy = NULL;
	int line, r;

	*ret_line = 0;
	if (len > POLICY_FILE_MAX)
		return policy_fail(ps, "larger than %d bytes", POLICY_FILE_MAX);
	r = policy_scan(ps, text, len, ret_line);
	if (r < 0)
		return r;
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = '\0';
	line = ini_parse_string(copy, policy_ini_handler, ps);
	if (line == 0)
		return 0;
	if (line < 0)
		return -ENOMEM;   /* libinih's only failure without a line */
	*ret_line = (unsigned)line;
	if (ps->r < 0)
		return ps->r;
	return policy_fail(ps, "syntax error");   /* policy_scan should have said why */
}

int policy_merge_text(struct policy *p, const char *name, const char *text, size_t len,
		      char *err, size_t errlen)
{
	struct policy_parse ps = { 0 };
	struct policy file, merged;
	unsigned line = 0;
	int r;

	policy_init(&file);
	policy_init(&merged);
	ps.p = &file;
	r = policy_parse(&ps, text, len, &line);
	if (r >= 0)
		r = policy_merge(&merged, p, ps.msg, sizeof(ps.msg));
	if (r >= 0)
		r = policy_merge(&merged, &file, ps.msg, sizeof(ps.msg));
	if (r < 0) {
		if (!ps.msg[0])
			snprintf(ps.msg, sizeof(ps.msg), "%s", strerror(-r));
		if (err && errlen && line)
			snprintf(err, errlen, "%s line %u: %s", name, line, ps.msg);
		else if (err && errlen)
			snprintf(err, errlen, "%s: %s", name, ps.msg);
		policy_clear(&merged);
		goto out;
	}
	merged.n_files = p->n_files + 1;
	policy_clear(p);
	*p = merged;
out:
	policy_clear(&file);
	return r;
}

/* ---- the directory ----------------------------------------------------------------------- */

/* "*.conf", not hidden (editors and package managers leave dot files behind). */
static bool policy_file_name(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".conf") == 0;
}

static int policy_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The drop-in names of dirfd (not consumed), sorted. */
static int policy_list_dir(int dirfd, char ***ret, size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return ne_negerrno();
	d = fdopendir(fd);
	if (!d) {
		r = ne_negerrno();
		close(fd);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (!policy_file_name(de->d_name))
			continue;
		r = policy_strv_add(&v, &n, de->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0) {
		policy_strv_free(v, n);
		return r;
	}
	if (n)
		qsort(v, n, sizeof(*v), policy_cmp_names);
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Policy decides which keys are trusted: a file or directory that someone other than the
 * daemon's user (root) could change is not policy. */
static bool policy_owner_ok(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

/* Reads a regular file of at most POLICY_FILE_MAX bytes (one more is read to notice a larger
 * one, which policy_merge_text then refuses). The type is checked before open, so that no
 * device or FIFO is ever opened, and again on the fd; -EPERM when its owner or mode would let
 * others than root change it. */
static int policy_read_file(int dirfd, const char *name, char *buf, size_t *ret_len)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	size_t len = 0;
	ssize_t n;

	if (fstatat(dirfd, name, &st, 0) < 0)
		return ne_negerrno();
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return ne_negerrno();
	if (fstat(fd, &st) < 0)
		return ne_negerrno();
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if (!policy_owner_ok(&st))
		return -EPERM;
	while (len < POLICY_FILE_MAX + 1) {
		n = read(fd, buf + len, POLICY_FILE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ne_negerrno();
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret_len = len;
	return 0;
}

static void policy_load_file(struct policy *p, int dirfd, const char *dir, const char *name,
			     char *buf)
{
	char path[PATH_MAX], err[PATH_MAX + POLICY_MSG_MAX];
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	r = policy_read_file(dirfd, name, buf, &len);
	if (r == -EBADFD) {
		log_warnx("policy: %s is not a regular file; ignored", path);
		return;
	}
	if (r == -EPERM) {
		log_warnx("policy: %s may be changed by others than root (owner or group/other "
			  "write permission); ignored", path);
		return;
	}
	if (r < 0) {
		log_warnx("policy: cannot read %s: %s; ignored", path, strerror(-r));
		return;
	}
	if (policy_merge_text(p, path, buf, len, err, sizeof(err)) < 0)
		log_warnx("policy: %s; file ignored", err);
}

int policy_load(struct policy *p, const char *dir)
{
	_cleanup_close_ int dirfd = -1;
	_cleanup_free_ char *buf = NULL;
	char **names = NULL;
	size_t n = 0, i;
	struct stat st;
	int r;

	policy_init(p);
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ENOENT ? 0 : ne_negerrno();
	if (fstat(dirfd, &st) < 0)
		return ne_negerrno();
	if (!policy_owner_ok(&st)) {
		log_warnx("policy: %s may be changed by others than root; ignoring every drop-in in it",
			  dir);
		return -EPERM;
	}
	buf = malloc(POLICY_FILE_MAX + 1);
	if (!buf)
		return -ENOMEM;
	r = policy_list_dir(dirfd, &names, &n);
	if (r < 0)
		return r;
	if (n > POLICY_MAX_FILES)
		log_warnx("policy: %s holds %zu drop-ins; only the first %d are read", dir, n,
			  POLICY_MAX_FILES);
	for (i = 0; i < n && i < POLICY_MAX_FILES; i++)
		policy_load_file(p, dirfd, dir, names[i], buf);
	policy_strv_free(names, n);
	return 0;
}

/* ---- queries ------------------------------------------------------------------------------ */

int policy_trusted_keys(const struct policy *p, struct ne_pubkey **ret, size_t *ret_n)
{
	struct ne_pubkey *keys = NULL;
	size_t i, n = 0, k = 0;

	for (i = 0; i < p->n_teams; i++)
		n += p->teams[i].n_keys;
	if (n) {
		keys = malloc(n * sizeof(*keys));
		if (!keys)
			return -ENOMEM;
		for (i = 0; i < p->n_teams; i++) {
			memcpy(keys + k, p->teams[i].keys, p->teams[i].n_keys * sizeof(*keys));
			k += p->teams[i].n_keys;
		}
	}
	*ret = keys;
	*ret_n = n;
	return 0;
}

bool policy_approves(const struct policy *p, const char *team, const char *identifier)
{
	const struct policy_team *t = policy_find_team(p, team);

	if (!t || !t->approve)
		return false;
	return t->n_extensions == 0 || policy_strv_contains(t->extensions, t->n_extensions, identifier);
}

const char *policy_refused_type(const struct policy *p, const struct ne_manifest *m)
{
	const char *name;
	unsigned i;

	if (p->allowed_types == 0)
		return NULL;
	for (i = 0; i < m->n_providers && i < NE_MANIFEST_PROVIDERS_MAX; i++) {
		if (m->providers[i] <= NE_PROVIDER_TYPE_MAX &&
		    (p->allowed_types & (1u << m->providers[i])))
			continue;
		name = ne_provider_type_name((ne_provider_type)m->providers[i]);
		return name ? name : "unknown";
	}
	return NULL;
}

bool policy_non_removable(const struct policy *p, const char *identifier)
{
	return policy_strv_contains(p->non_removable, p->n_non_removable, identifier);
}
