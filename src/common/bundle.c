/* Extension bundles (bundle.h): the manifest parser, ed25519 keys, the bundle walk that
 * produces the signed listing, signing, verification and the copy into the store. The
 * formats are those of docs/lifecycle.md.
 *
 * Trust: every byte read here comes from a requester or a vendor. Directory trees are read
 * only through openat()/fstatat() relative to a directory fd with O_NOFOLLOW and
 * AT_SYMLINK_NOFOLLOW, never through built absolute paths. Every size and count is checked
 * against the limits of bundle.h before anything is read or allocated, and files are read
 * through the fd that was checked (fstat of the fd, not of the name). A file that changes
 * while it is read is refused. Link targets are checked lexically, expanding the bundle's
 * own links on the way, so no chain of links leaves the bundle.
 *
 * Internal helpers that judge bundle content return 0 or -1 with the error recorded in a
 * struct report (the first error wins); the API turns that into enum ne_bundle_error. */
#include "bundle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netext/netext.h>

#include "util.h"

#define SIG_HEADER "netext-signature-v1"
#define PUBKEY_HEADER "netext-public-key-v1"
#define SECKEY_HEADER "netext-secret-key-v1"
/* The longest well-formed netext.sig: header lines plus the maximum number of entries with
 * the longest paths. Anything larger is refused before it is read. */
#define SIG_MAX ((size_t)NE_BUNDLE_MAX_ENTRIES * (NE_BUNDLE_PATH_MAX + 96) + 512)
#define KEYFILE_MAX 512
#define LINK_HOPS_MAX 40   /* as the kernel's MAXSYMLINKS */
#define RMTREE_DEPTH_MAX 128
#define IO_CHUNK 65536
#define HEX_LEN 64
#define B64_PUB_LEN 44     /* sodium_base64_ENCODED_LEN(32, ORIGINAL) - 1 */
#define B64_SEC_LEN 88     /* ... (64) - 1 */
#define B64_SIG_LEN 88
#define OPEN_FILE (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
#define OPEN_DIR (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* ---- errors -------------------------------------------------------------------- */

struct report {
	enum ne_bundle_error code;
	char *err;
	size_t errlen;
};

static int report(struct report *r, enum ne_bundle_error e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int report(struct report *r, enum ne_bundle_error e, const char *fmt, ...)
{
	va_list ap;

	if (r->code != NE_BUNDLE_OK)
		return -1;
	r->code = e;
	if (r->err && r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int report_errno(struct report *r, const char *what, const char *path)
{
	int e = errno;

	return report(r, NE_BUNDLE_SYSTEM, "%s %s: %s", what, path, strerror(e));
}

/* For the API functions without a walk: sets err, returns NE_BUNDLE_BAD_SIGNATURE. */
static enum ne_bundle_error fail_code(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum ne_bundle_error fail_code(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return NE_BUNDLE_BAD_SIGNATURE;
}

const char *ne_bundle_error_code(enum ne_bundle_error e)
{
	static const char *const codes[] = {
		[NE_BUNDLE_OK] = "ok",
		[NE_BUNDLE_NOT_FOUND] = "extension-not-found",
		[NE_BUNDLE_MISSING_IDENTIFIER] = "missing-identifier",
		[NE_BUNDLE_UNKNOWN_PROVIDER] = "unknown-provider-type",
		[NE_BUNDLE_INVALID] = "validation-failed",
		[NE_BUNDLE_BAD_SIGNATURE] = "signature-invalid",
		[NE_BUNDLE_SYSTEM] = "internal",
	};

	if ((unsigned)e >= NE_ARRAY_SIZE(codes))
		return "internal";
	return codes[e];
}

/* Copies n bytes of untrusted text into buf for a message, control and non-ASCII bytes as
 * \xNN, truncated to fit. */
static const char *quote(const char *s, size_t n, char *buf, size_t size)
{
	size_t o = 0, i;

	for (i = 0; i < n && o + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

/* ---- names --------------------------------------------------------------------- */

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool ne_team_valid(const char *team)
{
	size_t n;

	if (!team)
		return false;
	for (n = 0; team[n]; n++)
		if (n >= NE_TEAM_MAX || !((team[n] >= 'A' && team[n] <= 'Z') || is_digit(team[n])))
			return false;
	return n > 0;
}

/* Labels of [A-Za-z0-9-] that neither begin nor end with '-' (so identifiers are also
 * ne_name_valid and safe in paths, unit and cgroup names). */
bool ne_identifier_valid(const char *id)
{
	size_t n, label = 0, labels = 1;

	if (!id)
		return false;
	for (n = 0; id[n]; n++) {
		char c = id[n];

		if (n >= NE_IDENTIFIER_MAX)
			return false;
		if (c == '.') {
			if (label == 0 || id[n - 1] == '-')
				return false;
			labels++;
			label = 0;
		} else if (is_alnum(c) || (c == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
	return labels >= 2 && label > 0 && id[n - 1] != '-';
}

/* A bundle entry's name: 1-255 bytes of 0x21-0x7e other than '/' and '\', not . or .. */
static bool name_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 255 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '/' || s[i] == '\\')
			return false;
	return true;
}

/* A path inside the bundle as listed: valid names joined by single '/', at most
 * NE_BUNDLE_PATH_MAX bytes and NE_BUNDLE_MAX_DEPTH components. */
static bool relpath_valid(const char *p, size_t n)
{
	size_t start = 0, i, depth = 0;

	if (n == 0 || n > NE_BUNDLE_PATH_MAX)
		return false;
	for (i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		if (!name_valid(p + start, i - start) || ++depth > NE_BUNDLE_MAX_DEPTH)
			return false;
		start = i + 1;
	}
	return true;
}

/* ---- manifest ------------------------------------------------------------------ */

enum { K_IDENTIFIER, K_VERSION, K_SHORTVERSION, K_TEAM, K_EXECUTABLE, K_DESCRIPTION,
       K_PROVIDERS, K_PERMISSIONS, K_COUNT };

/* A key line as the pre-scan saw it; inih must deliver exactly these, in this order. */
struct kline {
	unsigned lineno;
	const char *name;
	size_t nlen;
	const char *value;
	size_t vlen;
};

struct mparse {
	struct report r;
	const struct kline *keys;
	size_t n_keys;
	size_t next;
	unsigned seen_line[K_COUNT]; /* 0: not seen */
	struct ne_manifest m;
};

typedef int (*key_fn)(struct mparse *mp, unsigned line, const char *v);

static int key_identifier(struct mparse *mp, unsigned line, const char *v)
{
	if (strlen(v) > NE_IDENTIFIER_MAX)
		return report(&mp->r, NE_BUNDLE_INVALID, "line %u: Identifier is longer than %d bytes",
			      line, NE_IDENTIFIER_MAX);
	if (!ne_identifier_valid(v))
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: Identifier must be reverse-DNS: two or more labels of letters, "
			      "digits and '-' joined by '.' (e.g. com.example.hello)", line);
	strcpy(mp->m.identifier, v);
	return 0;
}

static int key_version(struct mparse *mp, unsigned line, const char *v)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; is_digit(v[i]) && n <= INT32_MAX; i++)
		n = n * 10 + (uint64_t)(v[i] - '0');
	if (i == 0 || v[i] || n < 1 || n > INT32_MAX)
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: Version must be an integer from 1 to 2147483647", line);
	mp->m.version = (uint32_t)n;
	return 0;
}

/* A dot-separated run of non-empty identifiers of [0-9A-Za-z-]; returns the length. */
static size_t semver_idents(const char *s)
{
	size_t i = 0, label = 0;

	for (;; i++) {
		if (is_alnum(s[i]) || s[i] == '-')
			label++;
		else if (s[i] == '.' && label > 0)
			label = 0;
		else
			return label > 0 ? i : 0;
	}
}

/* A semver numeric part: "0" or digits without a leading zero. */
static size_t semver_number(const char *s)
{
	size_t i = 0;

	while (is_digit(s[i]))
		i++;
	return (i > 1 && s[0] == '0') ? 0 : i;
}

static bool semver_valid(const char *v)
{
	size_t i = 0, n, part;

	for (part = 0; part < 3; part++) {
		if (part > 0 && v[i++] != '.')
			return false;
		if ((n = semver_number(v + i)) == 0)
			return false;
		i += n;
	}
	if (v[i] == '-') {
		if ((n = semver_idents(v + i + 1)) == 0)
			return false;
		i += 1 + n;
	}
	if (v[i] == '+') {
		if ((n = semver_idents(v + i + 1)) == 0)
			return false;
		i += 1 + n;
	}
	return v[i] == '\0';
}

static int key_short_version(struct mparse *mp, unsigned line, const char *v)
{
	if (strlen(v) >= sizeof(mp->m.short_version) || !semver_valid(v))
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: ShortVersion must be MAJOR.MINOR.PATCH with optional -pre and "
			      "+build, at most 63 bytes (e.g. 1.2.0, 2.0.0-rc.1)", line);
	strcpy(mp->m.short_version, v);
	return 0;
}

static int key_team(struct mparse *mp, unsigned line, const char *v)
{
	if (!ne_team_valid(v))
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: Team must be 1-32 characters of A-Z and 0-9 (e.g. EXAMPLE123)",
			      line);
	strcpy(mp->m.team, v);
	return 0;
}

static bool has_dotdot(const char *p)
{
	size_t i, start = 0;

	for (i = 0;; i++)
		if (p[i] == '/' || p[i] == '\0') {
			if (i - start == 2 && p[start] == '.' && p[start + 1] == '.')
				return true;
			if (p[i] == '\0')
				return false;
			start = i + 1;
		}
}

static int key_executable(struct mparse *mp, unsigned line, const char *v)
{
	if (v[0] == '/')
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: Executable must be relative to the bundle root, not absolute", line);
	if (has_dotdot(v))
		return report(&mp->r, NE_BUNDLE_INVALID, "line %u: Executable must not contain '..'",
			      line);
	if (!relpath_valid(v, strlen(v)))
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: Executable must be a path inside the bundle: names of printable "
			      "ASCII without '\\' or spaces joined by single '/' (e.g. bin/netext-hello)",
			      line);
	strcpy(mp->m.executable, v);
	return 0;
}

static int key_description(struct mparse *mp, unsigned line, const char *v)
{
	size_t i;

	if (strlen(v) >= sizeof(mp->m.description))
		return report(&mp->r, NE_BUNDLE_INVALID, "line %u: Description is longer than 511 bytes",
			      line);
	for (i = 0; v[i]; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return report(&mp->r, NE_BUNDLE_INVALID,
				      "line %u: Description must be printable ASCII", line);
	strcpy(mp->m.description, v);
	return 0;
}

/* Calls fn for each word of a list separated by spaces, tabs or commas. */
static int for_each_word(struct mparse *mp, unsigned line, const char *v,
			 int (*fn)(struct mparse *, unsigned, const char *))
{
	char word[NE_MANIFEST_LINE_MAX + 1];
	size_t n;

	while (*v) {
		n = strcspn(v, " \t,");
		if (n > 0) {
			memcpy(word, v, NE_MIN(n, sizeof(word) - 1));
			word[NE_MIN(n, sizeof(word) - 1)] = '\0';
			if (fn(mp, line, word) < 0)
				return -1;
		}
		v += n;
		v += strspn(v, " \t,");
	}
	return 0;
}

static int add_provider(struct mparse *mp, unsigned line, const char *word)
{
	int t = ne_provider_type_from_name(word);
	char q[64];
	unsigned i;

	if (t < 0)
		return report(&mp->r, NE_BUNDLE_UNKNOWN_PROVIDER,
			      "line %u: unknown provider type '%s' (known: message, filter-data, "
			      "filter-packet, dns-proxy, transparent-proxy, app-proxy, packet-tunnel, "
			      "endpoint-security)", line, quote(word, strlen(word), q, sizeof(q)));
	for (i = 0; i < mp->m.n_providers; i++)
		if (mp->m.providers[i] == t)
			return report(&mp->r, NE_BUNDLE_INVALID,
				      "line %u: provider type %s is listed twice", line, word);
	if (mp->m.n_providers >= NE_MANIFEST_PROVIDERS_MAX)
		return report(&mp->r, NE_BUNDLE_INVALID, "line %u: too many provider types", line);
	mp->m.providers[mp->m.n_providers++] = (uint16_t)t;
	return 0;
}

static int key_providers(struct mparse *mp, unsigned line, const char *v)
{
	if (for_each_word(mp, line, v, add_provider) < 0)
		return -1;
	if (mp->m.n_providers == 0)
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: Providers must name at least one provider type", line);
	return 0;
}

static int add_permission(struct mparse *mp, unsigned line, const char *word)
{
	unsigned bit;
	char q[64];

	for (bit = 1; bit & NE_PERM_ALL; bit <<= 1)
		if (strcmp(ne_permission_name(bit), word) == 0)
			break;
	if (!(bit & NE_PERM_ALL))
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: unknown permission '%s' (known: network)", line,
			      quote(word, strlen(word), q, sizeof(q)));
	if (mp->m.permissions & bit)
		return report(&mp->r, NE_BUNDLE_INVALID, "line %u: permission %s is listed twice",
			      line, word);
	mp->m.permissions |= bit;
	return 0;
}

static int key_permissions(struct mparse *mp, unsigned line, const char *v)
{
	return for_each_word(mp, line, v, add_permission);
}

/* In the order of docs/lifecycle.md's table, which is also the canonical order. */
static const struct {
	const char *name;
	const char *canonical;
	bool required;
	key_fn fn;
} manifest_keys[K_COUNT] = {
	[K_IDENTIFIER] = { "Identifier", "identifier", true, key_identifier },
	[K_VERSION] = { "Version", "version", true, key_version },
	[K_SHORTVERSION] = { "ShortVersion", "shortversion", true, key_short_version },
	[K_TEAM] = { "Team", "team", true, key_team },
	[K_EXECUTABLE] = { "Executable", "executable", true, key_executable },
	[K_DESCRIPTION] = { "Description", "description", false, key_description },
	[K_PROVIDERS] = { "Providers", "providers", true, key_providers },
	[K_PERMISSIONS] = { "Permissions", "permissions", false, key_permissions },
};

static int apply_key(struct mparse *mp, const struct kline *k, const char *value)
{
	char name[NE_MANIFEST_LINE_MAX + 1];
	unsigned i;

	memcpy(name, k->name, k->nlen);
	name[k->nlen] = '\0';
	if (k->nlen >= 2 && name[0] == 'X' && name[1] == '-')
		return 0;
	for (i = 0; i < K_COUNT; i++)
		if (strcmp(manifest_keys[i].name, name) == 0)
			break;
	if (i == K_COUNT) {
		for (i = 0; i < K_COUNT; i++)
			if (strcasecmp(manifest_keys[i].name, name) == 0)
				return report(&mp->r, NE_BUNDLE_INVALID,
					      "line %u: unknown key %s (keys are case-sensitive: %s)",
					      k->lineno, name, manifest_keys[i].name);
		return report(&mp->r, NE_BUNDLE_INVALID,
			      "line %u: unknown key %s (vendor keys must begin with X-)", k->lineno, name);
	}
	if (mp->seen_line[i])
		return report(&mp->r, NE_BUNDLE_INVALID, "line %u: duplicate key %s (first on line %u)",
			      k->lineno, name, mp->seen_line[i]);
	mp->seen_line[i] = k->lineno;
	return manifest_keys[i].fn(mp, k->lineno, value);
}

/* inih's callback. The pre-scan has already judged every line; this checks that inih read
 * the same key and value (it cuts values at " ;" and joins indented lines, build options
 * we cannot turn off per call) and then applies the key. */
static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
	struct mparse *mp = user;
	const struct kline *k;

	if (mp->r.code != NE_BUNDLE_OK)
		return 1;
	if (mp->next >= mp->n_keys) {
		report(&mp->r, NE_BUNDLE_INVALID, "the INI parser read a key the manifest does not have");
		return 0;
	}
	k = &mp->keys[mp->next++];
	if (strcmp(section, "Extension") != 0 || strlen(name) != k->nlen ||
	    memcmp(name, k->name, k->nlen) != 0 || strlen(value) != k->vlen ||
	    memcmp(value, k->value, k->vlen) != 0) {
		report(&mp->r, NE_BUNDLE_INVALID,
		       "line %u: the value would be read differently from how it is written "
		       "(';' after a space starts an inline comment): remove the ';'", k->lineno);
		return 0;
	}
	return apply_key(mp, k, value) == 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Judges one line (without its terminator) and records it in keys if it is a key line. */
static int prescan_line(struct report *r, const char *p, size_t n, unsigned lineno,
			bool *in_section, struct kline *keys, size_t *n_keys)
{
	size_t i, j;

	if (n > NE_MANIFEST_LINE_MAX)
		return report(r, NE_BUNDLE_INVALID, "line %u: longer than %d bytes", lineno,
			      NE_MANIFEST_LINE_MAX);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == 0)
			return report(r, NE_BUNDLE_INVALID, "line %u: NUL byte", lineno);
		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return report(r, NE_BUNDLE_INVALID,
				      "line %u: byte 0x%02x is not allowed (printable ASCII only)", lineno, c);
	}
	for (i = 0; i < n && is_blank(p[i]); i++)
		;
	if (i == n || p[0] == '#' || p[0] == ';')
		return 0;
	if (i > 0)
		return report(r, NE_BUNDLE_INVALID,
			      "line %u: indented line (continuation lines are not allowed)", lineno);
	while (n > 0 && is_blank(p[n - 1]))
		n--;
	if (p[0] == '[') {
		char q[NE_MANIFEST_LINE_MAX * 4 + 8];

		if (n != 11 || memcmp(p, "[Extension]", 11) != 0)
			return report(r, NE_BUNDLE_INVALID,
				      "line %u: unknown section %s (only [Extension] is allowed)", lineno,
				      quote(p, n, q, sizeof(q)));
		if (*in_section)
			return report(r, NE_BUNDLE_INVALID, "line %u: duplicate section [Extension]", lineno);
		*in_section = true;
		return 0;
	}
	for (i = 0; i < n && (is_alnum(p[i]) || p[i] == '-'); i++)
		;
	for (j = i; j < n && is_blank(p[j]); j++)
		;
	if (i == 0 || j == n || p[j] != '=')
		return report(r, NE_BUNDLE_INVALID, "line %u: expected 'Key = value'", lineno);
	if (!*in_section)
		return report(r, NE_BUNDLE_INVALID, "line %u: %.*s is outside the [Extension] section",
			      lineno, (int)i, p);
	for (j++; j < n && is_blank(p[j]); j++)
		;
	keys[*n_keys] = (struct kline){ lineno, p, i, p + j, n - j };
	(*n_keys)++;
	return 0;
}

/* Checks size, bytes and the shape of every line (so errors can name lines, which this
 * inih does not report per key) and collects the key lines. */
static int prescan(struct report *r, const char *text, size_t len, struct kline **ret_keys,
		   size_t *ret_n)
{
	const char *p = text, *end = text + len, *nl;
	size_t lines = 1, n_keys = 0, n;
	struct kline *keys;
	bool in_section = false;
	unsigned lineno = 0;

	if (len > NE_MANIFEST_MAX)
		return report(r, NE_BUNDLE_INVALID, "extension.conf is larger than %d bytes",
			      NE_MANIFEST_MAX);
	for (nl = text; (nl = memchr(nl, '\n', (size_t)(end - nl))); nl++)
		lines++;
	keys = calloc(lines, sizeof(*keys));
	if (!keys)
		return report(r, NE_BUNDLE_SYSTEM, "out of memory");
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl ? nl : end) - p);
		if (n > 0 && p[n - 1] == '\r')
			n--; /* CRLF */
		if (prescan_line(r, p, n, ++lineno, &in_section, keys, &n_keys) < 0) {
			free(keys);
			return -1;
		}
		p = nl ? nl + 1 : end;
	}
	*ret_keys = keys;
	*ret_n = n_keys;
	return 0;
}

static int check_required(struct mparse *mp)
{
	unsigned i;

	if (!mp->seen_line[K_IDENTIFIER])
		return report(&mp->r, NE_BUNDLE_MISSING_IDENTIFIER,
			      "extension.conf has no Identifier (reverse-DNS, e.g. com.example.hello)");
	for (i = 0; i < K_COUNT; i++)
		if (manifest_keys[i].required && !mp->seen_line[i])
			return report(&mp->r, NE_BUNDLE_INVALID, "extension.conf has no %s",
				      manifest_keys[i].name);
	return 0;
}

enum ne_bundle_error ne_manifest_parse(const char *text, size_t len, struct ne_manifest *ret,
				       char *err, size_t errlen)
{
	struct mparse *mp = calloc(1, sizeof(*mp));
	struct kline *keys = NULL;
	enum ne_bundle_error e;
	char *copy = NULL;
	int r;

	if (!mp)
		return NE_BUNDLE_SYSTEM;
	mp->r = (struct report){ NE_BUNDLE_OK, err, errlen };
	if (prescan(&mp->r, text, len, &keys, &mp->n_keys) < 0)
		goto out;
	mp->keys = keys;
	copy = malloc(len + 1);
	if (!copy) {
		report(&mp->r, NE_BUNDLE_SYSTEM, "out of memory");
		goto out;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	r = ini_parse_string(copy, on_ini_key, mp);
	if (mp->r.code != NE_BUNDLE_OK)
		goto out;
	if (r != 0 || mp->next != mp->n_keys) {
		report(&mp->r, NE_BUNDLE_INVALID, "line %d: not valid INI", r);
		goto out;
	}
	if (check_required(mp) == 0)
		*ret = mp->m;
out:
	e = mp->r.code;
	free(copy);
	free(keys);
	free(mp);
	return e;
}

const char *ne_permission_name(unsigned bit)
{
	return bit == NE_PERM_NETWORK ? "network" : NULL;
}

void ne_manifest_providers_str(const struct ne_manifest *m, char *buf, size_t size)
{
	size_t o = 0;
	unsigned i;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (i = 0; i < m->n_providers && o < size; i++) {
		const char *name = ne_provider_type_name((ne_provider_type)m->providers[i]);

		o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? " " : "", name ? name : "?");
	}
}

void ne_manifest_permissions_str(const struct ne_manifest *m, char *buf, size_t size)
{
	size_t o = 0;
	unsigned bit;

	if (size == 0)
		return;
	buf[0] = '\0';
	for (bit = 1; (bit & NE_PERM_ALL) && o < size; bit <<= 1)
		if (m->permissions & bit)
			o += (size_t)snprintf(buf + o, size - o, "%s%s", o ? " " : "",
					      ne_permission_name(bit));
}

char *ne_manifest_canonical(const struct ne_manifest *m)
{
	char providers[256], perms[64], desc[sizeof(m->description) + 16] = "";
	char permline[sizeof(perms) + 16] = "";
	char *s = NULL;

	ne_manifest_providers_str(m, providers, sizeof(providers));
	ne_manifest_permissions_str(m, perms, sizeof(perms));
	if (m->description[0])
		snprintf(desc, sizeof(desc), "description=%s\n", m->description);
	if (perms[0])
		snprintf(permline, sizeof(permline), "permissions=%s\n", perms);
	if (asprintf(&s, "identifier=%s\nversion=%" PRIu32 "\nshortversion=%s\nteam=%s\n"
		     "executable=%s\n%sproviders=%s\n%s", m->identifier, m->version,
		     m->short_version, m->team, m->executable, desc, providers, permline) < 0)
		return NULL;
	return s;
}

/* ---- keys ---------------------------------------------------------------------- */

/* Decodes exactly outlen bytes (at most 64) of padded standard base64: n characters, no
 * more, no less, in the one canonical spelling. The result is re-encoded and compared
 * because libsodium 1.0.18's decoder accepts bytes 0x80-0xff as digits. */
static int b64_decode_exact(const char *b64, size_t n, uint8_t *out, size_t outlen)
{
	char again[B64_SEC_LEN + 1];
	const char *end = NULL;
	size_t bin_len = 0;

	if (outlen > 64 || n != sodium_base64_ENCODED_LEN(outlen, sodium_base64_VARIANT_ORIGINAL) - 1)
		return -EINVAL;
	if (sodium_base642bin(out, outlen, b64, n, NULL, &bin_len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || end != b64 + n || bin_len != outlen)
		return -EINVAL;
	sodium_bin2base64(again, sizeof(again), out, outlen, sodium_base64_VARIANT_ORIGINAL);
	if (memcmp(again, b64, n) != 0) {
		sodium_memzero(again, sizeof(again));
		sodium_memzero(out, outlen);
		return -EINVAL;
	}
	sodium_memzero(again, sizeof(again));
	return 0;
}

int ne_pubkey_from_base64(const char *b64, uint8_t ret[32])
{
	uint8_t key[32];

	if (!b64 || b64_decode_exact(b64, strnlen(b64, B64_PUB_LEN + 1), key, sizeof(key)) < 0)
		return -EINVAL;
	memcpy(ret, key, sizeof(key));
	return 0;
}

void ne_pubkey_to_base64(const uint8_t key[32], char *buf, size_t size)
{
	if (size < B64_PUB_LEN + 1) {
		if (size)
			buf[0] = '\0';
		return;
	}
	sodium_bin2base64(buf, size, key, 32, sodium_base64_VARIANT_ORIGINAL);
}

int ne_key_generate(const char *team, struct ne_seckey *sk, struct ne_pubkey *pk)
{
	if (!ne_team_valid(team))
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	crypto_sign_ed25519_keypair(pk->key, sk->key);
	strcpy(sk->team, team);
	strcpy(pk->team, team);
	return 0;
}

void ne_seckey_public(const struct ne_seckey *sk, struct ne_pubkey *pk)
{
	crypto_sign_ed25519_sk_to_pk(pk->key, sk->key);
	strcpy(pk->team, sk->team);
}

static int key_format(const char *header, const char *team, const uint8_t *key, size_t keylen,
		      char *buf, size_t size)
{
	char b64[B64_SEC_LEN + 1];
	int n;

	sodium_bin2base64(b64, sizeof(b64), key, keylen, sodium_base64_VARIANT_ORIGINAL);
	n = snprintf(buf, size, "%s\nteam: %s\nkey: %s\n", header, team, b64);
	sodium_memzero(b64, sizeof(b64));
	if (n < 0 || (size_t)n >= size) {
		sodium_memzero(buf, size);
		return -ENOSPC;
	}
	return n;
}

int ne_pubkey_format(const struct ne_pubkey *pk, char *buf, size_t size)
{
	return key_format(PUBKEY_HEADER, pk->team, pk->key, sizeof(pk->key), buf, size);
}

int ne_seckey_format(const struct ne_seckey *sk, char *buf, size_t size)
{
	return key_format(SECKEY_HEADER, sk->team, sk->key, sizeof(sk->key), buf, size);
}

/* Takes the next '\n'-terminated line of [*p, end); the last line may lack its '\n'. */
static bool next_line(const char **p, const char *end, const char **line, size_t *n)
{
	const char *nl;

	if (*p >= end)
		return false;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	*line = *p;
	*n = (size_t)((nl ? nl : end) - *p);
	*p = nl ? nl + 1 : end;
	return true;
}

static bool line_is(const char *line, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(line, s, n) == 0;
}

/* "prefix: value" with the value's length bounded by max; returns the value or NULL. */
static const char *field(const char *line, size_t n, const char *prefix, size_t max, size_t *vlen)
{
	size_t pl = strlen(prefix);

	if (n < pl || memcmp(line, prefix, pl) != 0 || n - pl > max)
		return NULL;
	*vlen = n - pl;
	return line + pl;
}

static int key_parse(const char *text, size_t len, const char *header, const char *other,
		     char team[NE_TEAM_MAX + 1], uint8_t *key, size_t keylen, struct report *r)
{
	const char *p = text, *end = text + len, *line = "", *v;
	size_t n = 0, vlen;

	if (len > KEYFILE_MAX)
		return report(r, NE_BUNDLE_INVALID, "key file is longer than %d bytes", KEYFILE_MAX);
	if (memchr(text, '\0', len))
		return report(r, NE_BUNDLE_INVALID, "key file contains a NUL byte");
	if (!next_line(&p, end, &line, &n) || !line_is(line, n, header))
		return report(r, NE_BUNDLE_INVALID, line_is(line, n, other) ?
			      "this is a %s file, expected a file starting with %s" :
			      "not a netext key file (expected %s on the first line)",
			      line_is(line, n, other) ? other : header, header);
	if (!next_line(&p, end, &line, &n) || !(v = field(line, n, "team: ", NE_TEAM_MAX, &vlen)))
		return report(r, NE_BUNDLE_INVALID, "line 2: expected 'team: TEAM'");
	memcpy(team, v, vlen);
	team[vlen] = '\0';
	if (!ne_team_valid(team))
		return report(r, NE_BUNDLE_INVALID, "line 2: team must be 1-32 characters of A-Z and 0-9");
	if (!next_line(&p, end, &line, &n) || !(v = field(line, n, "key: ", B64_SEC_LEN, &vlen)) ||
	    b64_decode_exact(v, vlen, key, keylen) < 0)
		return report(r, NE_BUNDLE_INVALID, "line 3: expected 'key: ' and the base64 of a "
			      "%zu-byte key", keylen);
	if (p != end)
		return report(r, NE_BUNDLE_INVALID, "unexpected text after line 3");
	return 0;
}

int ne_pubkey_parse(const char *text, size_t len, struct ne_pubkey *ret, char *err, size_t errlen)
{
	struct report r = { NE_BUNDLE_OK, err, errlen };
	struct ne_pubkey pk;

	if (key_parse(text, len, PUBKEY_HEADER, SECKEY_HEADER, pk.team, pk.key, sizeof(pk.key), &r) < 0)
		return -EINVAL;
	*ret = pk;
	return 0;
}

/* The secret key holds the seed and the public key; a file whose halves disagree would sign
 * with one key and name another. */
static bool seckey_consistent(const uint8_t sk[64])
{
	uint8_t seed[32], pk[32], sk2[64];
	bool ok;

	crypto_sign_ed25519_sk_to_seed(seed, sk);
	crypto_sign_ed25519_seed_keypair(pk, sk2, seed);
	ok = sodium_memcmp(sk, sk2, sizeof(sk2)) == 0;
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk2, sizeof(sk2));
	return ok;
}

int ne_seckey_parse(const char *text, size_t len, struct ne_seckey *ret, char *err, size_t errlen)
{
	struct report r = { NE_BUNDLE_OK, err, errlen };
	struct ne_seckey sk;
	int rc = -EINVAL;

	if (sodium_init() < 0)
		return -EIO;
	if (key_parse(text, len, SECKEY_HEADER, PUBKEY_HEADER, sk.team, sk.key, sizeof(sk.key), &r) < 0)
		goto out;
	if (!seckey_consistent(sk.key)) {
		report(&r, NE_BUNDLE_INVALID, "secret key is corrupt: its public half does not match");
		goto out;
	}
	*ret = sk;
	rc = 0;
out:
	sodium_memzero(&sk, sizeof(sk));
	return rc;
}

/* ---- growing strings ----------------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(s->p ? s->p + s->len : NULL, s->p ? s->cap - s->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		s->oom = true;
		return;
	}
	if (!s->p || s->len + (size_t)n >= s->cap) {
		size_t cap = NE_MAX(s->cap * 2, s->len + (size_t)n + 4096);
		char *p = realloc(s->p, cap);

		if (!p) {
			s->oom = true;
			return;
		}
		s->p = p;
		s->cap = cap;
		va_start(ap, fmt);
		vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
		va_end(ap);
	}
	s->len += (size_t)n;
}

static char *sb_steal(struct sbuf *s)
{
	if (s->oom) {
		free(s->p);
		return NULL;
	}
	return s->p;
}

static void sha256_hex(const uint8_t *data, size_t n, char hex[HEX_LEN + 1])
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, n);
	sodium_bin2hex(hex, HEX_LEN + 1, h, sizeof(h));
}

/* ---- the walk ------------------------------------------------------------------ */

struct entry {
	char *path;
	char *target;       /* links: the target text */
	uint64_t size;      /* files: bytes; links: length of the target; dirs: 0 */
	unsigned mode;      /* normalised: 0755, 0644 or 0777 */
	char type;          /* 'f', 'd' or 'l' */
	bool runnable;      /* files: start with \x7fELF or #! */
	char hash[HEX_LEN + 1]; /* "-" for directories */
};

/* One pass over a bundle tree: always checks the rules, records entries (with hashes) when
 * record is set, and copies into dst when a destination fd is given. */
struct walk {
	struct report r;
	uid_t reader;
	bool record;
	struct entry *ents;
	size_t n, cap;
	unsigned count;     /* entries seen, netext.sig not counted */
	uint64_t total;     /* bytes of regular files */
	uint8_t *buf;       /* IO_CHUNK */
	char path[NE_BUNDLE_PATH_MAX + 1];
};

static const char *what(const char *path)
{
	return path[0] ? path : "the bundle directory";
}

static int check_reader(struct walk *w, const struct stat *st, const char *path)
{
	mode_t need = S_ISDIR(st->st_mode) ? (S_IROTH | S_IXOTH) : S_IROTH;

	if (w->reader == (uid_t)-1 || st->st_uid == w->reader || (st->st_mode & need) == need)
		return 0;
	return report(&w->r, NE_BUNDLE_INVALID,
		      "%s is not readable by uid %u (owner %u, mode %04o): make it world-%s or owned "
		      "by uid %u", what(path), (unsigned)w->reader, (unsigned)st->st_uid,
		      (unsigned)(st->st_mode & 07777), S_ISDIR(st->st_mode) ? "readable and searchable" :
		      "readable", (unsigned)w->reader);
}

static struct entry *add_entry(struct walk *w, char type)
{
	struct entry *e;

	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;

		e = realloc(w->ents, cap * sizeof(*e));
		if (!e) {
			report(&w->r, NE_BUNDLE_SYSTEM, "out of memory");
			return NULL;
		}
		w->ents = e;
		w->cap = cap;
	}
	e = &w->ents[w->n];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->path = strdup(w->path);
	if (!e->path) {
		report(&w->r, NE_BUNDLE_SYSTEM, "out of memory");
		return NULL;
	}
	w->n++;
	return e;
}

static void free_entries(struct entry *ents, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(ents[i].path);
		free(ents[i].target);
	}
	free(ents);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		r = write(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static ssize_t read_retry(int fd, void *buf, size_t n)
{
	ssize_t r;

	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Reads exactly size bytes of fd (whose size was checked), hashing and/or copying them. A
 * file that is shorter or longer than its size is one that changed while being read. */
static int stream_file(struct walk *w, int fd, int out, uint64_t size, struct entry *e)
{
	crypto_hash_sha256_state st;
	uint8_t magic[4] = { 0 }, h[crypto_hash_sha256_BYTES];
	uint64_t done = 0;
	ssize_t r;
	int rc;

	crypto_hash_sha256_init(&st);
	while (done < size) {
		r = read_retry(fd, w->buf, (size_t)NE_MIN((uint64_t)IO_CHUNK, size - done));
		if (r < 0)
			return report_errno(&w->r, "cannot read", w->path);
		if (r == 0)
			return report(&w->r, NE_BUNDLE_INVALID, "%s changed while being read", w->path);
		if (done < sizeof(magic))
			memcpy(magic + done, w->buf, NE_MIN((size_t)r, sizeof(magic) - (size_t)done));
		if (e)
			crypto_hash_sha256_update(&st, w->buf, (size_t)r);
		if (out >= 0 && (rc = write_all(out, w->buf, (size_t)r)) < 0) {
			errno = -rc;
			return report_errno(&w->r, "cannot write the copy of", w->path);
		}
		done += (uint64_t)r;
	}
	r = read_retry(fd, w->buf, 1);
	if (r != 0)
		return r < 0 ? report_errno(&w->r, "cannot read", w->path) :
			report(&w->r, NE_BUNDLE_INVALID, "%s changed while being read", w->path);
	if (e) {
		crypto_hash_sha256_final(&st, h);
		sodium_bin2hex(e->hash, sizeof(e->hash), h, sizeof(h));
		e->runnable = memcmp(magic, "\x7f" "ELF", 4) == 0 || memcmp(magic, "#!", 2) == 0;
	}
	return 0;
}

/* Opens name (checked by fstatat as st) for reading and makes sure the fd is the same
 * object, so a swap between the two calls is noticed. */
static int open_same(struct walk *w, int src, const char *name, const struct stat *st, int flags)
{
	struct stat fst;
	int fd = openat(src, name, flags);

	if (fd < 0)
		return report_errno(&w->r, "cannot open", w->path);
	if (fstat(fd, &fst) < 0 || fst.st_dev != st->st_dev || fst.st_ino != st->st_ino ||
	    (fst.st_mode & S_IFMT) != (st->st_mode & S_IFMT) || fst.st_size != st->st_size) {
		close(fd);
		return report(&w->r, NE_BUNDLE_INVALID, "%s changed while being read", w->path);
	}
	return fd;
}

static int walk_file(struct walk *w, int src, int dst, const char *name, const struct stat *st,
		     bool is_sig)
{
	unsigned mode = (st->st_mode & S_IXUSR) ? 0755 : 0644;
	struct entry *e = NULL;
	int fd, out = -1, rc = -1;

	if (is_sig && (uint64_t)st->st_size > SIG_MAX)
		return report(&w->r, NE_BUNDLE_BAD_SIGNATURE, "netext.sig is larger than %zu bytes",
			      (size_t)SIG_MAX);
	if (!is_sig && (uint64_t)st->st_size > NE_BUNDLE_MAX_BYTES - w->total)
		return report(&w->r, NE_BUNDLE_INVALID,
			      "the bundle is larger than %llu MiB (at %s, %lld bytes)",
			      NE_BUNDLE_MAX_BYTES >> 20, w->path, (long long)st->st_size);
	if (!is_sig)
		w->total += (uint64_t)st->st_size;
	if ((fd = open_same(w, src, name, st, OPEN_FILE)) < 0)
		return -1;
	if (dst >= 0) {
		out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (out < 0) {
			report_errno(&w->r, "cannot create the copy of", w->path);
			goto out;
		}
	}
	if (w->record && !is_sig) {
		if (!(e = add_entry(w, 'f')))
			goto out;
		e->mode = mode;
		e->size = (uint64_t)st->st_size;
	}
	if (stream_file(w, fd, out, (uint64_t)st->st_size, e) < 0)
		goto out;
	if (out >= 0 && (fchmod(out, mode) < 0 || fsync(out) < 0)) {
		report_errno(&w->r, "cannot write the copy of", w->path);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	if (out >= 0)
		close(out);
	return rc;
}

/* A link's target text: relative, valid names, no empty components, and not leaving the
 * bundle from the link's own directory (the full check, through other links, is
 * check_links once every entry is known). */
static int check_target(struct walk *w, const char *t, size_t n, unsigned depth)
{
	char q[NE_BUNDLE_PATH_MAX * 4 + 1];
	size_t start = 0, i;
	long level = (long)depth;

	if (n == 0)
		return report(&w->r, NE_BUNDLE_INVALID, "link %s has an empty target", w->path);
	if (t[0] == '/')
		return report(&w->r, NE_BUNDLE_INVALID,
			      "%s is an absolute link (-> %s): only relative links that stay inside the "
			      "bundle are allowed", w->path, quote(t, n, q, sizeof(q)));
	for (i = 0; i <= n; i++) {
		if (i < n && t[i] != '/')
			continue;
		if (i - start == 2 && t[start] == '.' && t[start + 1] == '.') {
			if (--level < 0)
				return report(&w->r, NE_BUNDLE_INVALID,
					      "link %s -> %s points outside the bundle", w->path,
					      quote(t, n, q, sizeof(q)));
		} else if (!(i - start == 1 && t[start] == '.')) {
			if (!name_valid(t + start, i - start))
				return report(&w->r, NE_BUNDLE_INVALID,
					      "link %s -> %s: the target has an invalid name", w->path,
					      quote(t, n, q, sizeof(q)));
			level++;
		}
		start = i + 1;
	}
	return 0;
}

static int walk_link(struct walk *w, int src, int dst, const char *name, unsigned depth)
{
	char target[NE_BUNDLE_PATH_MAX + 2];
	struct entry *e;
	ssize_t n;

	n = readlinkat(src, name, target, sizeof(target));
	if (n < 0)
		return report_errno(&w->r, "cannot read link", w->path);
	if ((size_t)n > NE_BUNDLE_PATH_MAX)
		return report(&w->r, NE_BUNDLE_INVALID, "link %s: target longer than %d bytes", w->path,
			      NE_BUNDLE_PATH_MAX);
	target[n] = '\0';
	if (check_target(w, target, (size_t)n, depth) < 0)
		return -1;
	if (dst >= 0 && symlinkat(target, dst, name) < 0)
		return report_errno(&w->r, "cannot create the copy of", w->path);
	if (!w->record)
		return 0;
	if (!(e = add_entry(w, 'l')) || !(e->target = strdup(target)))
		return report(&w->r, NE_BUNDLE_SYSTEM, "out of memory");
	e->mode = 0777;
	e->size = (uint64_t)n;
	sha256_hex((const uint8_t *)target, (size_t)n, e->hash);
	return 0;
}

static int walk_dir(struct walk *w, int src, int dst, size_t plen, unsigned depth);

static int walk_subdir(struct walk *w, int src, int dst, const char *name, const struct stat *st,
		       size_t len, unsigned depth)
{
	struct entry *e;
	int fd, nd = -1, rc;

	if ((fd = open_same(w, src, name, st, OPEN_DIR)) < 0)
		return -1;
	if (dst >= 0 && (mkdirat(dst, name, 0700) < 0 || (nd = openat(dst, name, OPEN_DIR)) < 0)) {
		close(fd);
		return report_errno(&w->r, "cannot create the copy of", w->path);
	}
	if (w->record) {
		if (!(e = add_entry(w, 'd'))) {
			close(fd);
			return -1;
		}
		e->mode = 0755;
		strcpy(e->hash, "-");
	}
	rc = walk_dir(w, fd, nd, len, depth);
	if (rc == 0 && nd >= 0 && (fchmod(nd, 0755) < 0 || fsync(nd) < 0))
		rc = report_errno(&w->r, "cannot write the copy of", w->path);
	if (nd >= 0)
		close(nd);
	return rc;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFIFO: return "FIFO";
	case S_IFSOCK: return "socket";
	case S_IFCHR: return "character device";
	case S_IFBLK: return "block device";
	default: return "special file";
	}
}

/* One entry of the directory whose path is w->path[0..plen) and depth is depth. */
static int walk_entry(struct walk *w, int src, int dst, const char *name, size_t plen,
		      unsigned depth)
{
	bool is_sig = plen == 0 && strcmp(name, NE_BUNDLE_SIGNATURE) == 0;
	size_t nlen = strlen(name), len = plen + (plen ? 1 : 0) + nlen;
	char q[1100];
	struct stat st;

	if (!name_valid(name, nlen))
		return report(&w->r, NE_BUNDLE_INVALID,
			      "name \"%s\" in %s is not allowed: names are 1-255 printable ASCII "
			      "characters other than space, '/' and '\\'", quote(name, nlen, q, sizeof(q)),
			      plen ? w->path : "the bundle root");
	if (len > NE_BUNDLE_PATH_MAX)
		return report(&w->r, NE_BUNDLE_INVALID, "a path in %s is longer than %d bytes",
			      what(w->path), NE_BUNDLE_PATH_MAX);
	if (plen)
		w->path[plen] = '/';
	memcpy(w->path + plen + (plen ? 1 : 0), name, nlen + 1);
	if (depth + 1 > NE_BUNDLE_MAX_DEPTH)
		return report(&w->r, NE_BUNDLE_INVALID, "%s is nested deeper than %d levels", w->path,
			      NE_BUNDLE_MAX_DEPTH);
	if (!is_sig && ++w->count > NE_BUNDLE_MAX_ENTRIES)
		return report(&w->r, NE_BUNDLE_INVALID, "the bundle has more than %d entries",
			      NE_BUNDLE_MAX_ENTRIES);
	if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return report_errno(&w->r, "cannot stat", w->path);
	if (is_sig && !S_ISREG(st.st_mode))
		return report(&w->r, NE_BUNDLE_BAD_SIGNATURE, "netext.sig must be a regular file");
	if (is_sig && w->record)
		return 0; /* read and parsed by read_signature */
	if (!S_ISLNK(st.st_mode) && check_reader(w, &st, w->path) < 0)
		return -1;
	if (S_ISREG(st.st_mode))
		return walk_file(w, src, dst, name, &st, is_sig);
	if (S_ISDIR(st.st_mode))
		return walk_subdir(w, src, dst, name, &st, len, depth + 1);
	if (S_ISLNK(st.st_mode))
		return walk_link(w, src, dst, name, depth);
	return report(&w->r, NE_BUNDLE_INVALID,
		      "%s is a %s: a bundle holds only files, directories and relative links", w->path,
		      type_name(st.st_mode));
}

/* Walks the directory open as src (consumed), whose path is w->path[0..plen). */
static int walk_dir(struct walk *w, int src, int dst, size_t plen, unsigned depth)
{
	struct dirent *de;
	DIR *d = fdopendir(src);
	int rc = 0;

	if (!d) {
		close(src);
		return report_errno(&w->r, "cannot read directory", what(w->path));
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				rc = report_errno(&w->r, "cannot read directory", what(w->path));
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		rc = walk_entry(w, dirfd(d), dst, de->d_name, plen, depth);
		w->path[plen] = '\0';
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

/* Walks the tree of root (not consumed) from a fresh open file description, so the
 * caller's fd offset is not touched. */
static int walk_tree(struct walk *w, int root, int dst)
{
	struct stat st;
	int fd;

	w->buf = malloc(IO_CHUNK);
	if (!w->buf)
		return report(&w->r, NE_BUNDLE_SYSTEM, "out of memory");
	fd = openat(root, ".", OPEN_DIR);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return report_errno(&w->r, "cannot open", "the bundle directory");
	}
	if (check_reader(w, &st, "") < 0) {
		close(fd);
		return -1;
	}
	w->path[0] = '\0';
	return walk_dir(w, fd, dst, 0, 0);
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static const struct entry *lookup(const struct walk *w, const char *path)
{
	struct entry key = { .path = (char *)path };

	return bsearch(&key, w->ents, w->n, sizeof(*w->ents), entry_cmp);
}

/* Resolves target relative to directory dir (a bundle path, "" for the root) lexically,
 * expanding the bundle's links met on the way as the kernel would, into out. Fails with
 * -EXDEV when a step leaves the bundle, -ELOOP after too many links. */
static int resolve(const struct walk *w, const char *dir, const char *target,
		   char out[NE_BUNDLE_PATH_MAX + 1], unsigned *hops, const char **via)
{
	char cur[NE_BUNDLE_PATH_MAX + 1], sub[NE_BUNDLE_PATH_MAX + 1], *slash;
	const struct entry *e;
	const char *p = target, *q;
	size_t len, n;
	int r;

	strcpy(cur, dir);
	while (*p) {
		q = strchrnul(p, '/');
		n = (size_t)(q - p);
		len = strlen(cur);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (len == 0)
				return -EXDEV;
			slash = strrchr(cur, '/');
			*(slash ? slash : cur) = '\0';
		} else if (!(n == 1 && p[0] == '.')) {
			if (len + 1 + n > NE_BUNDLE_PATH_MAX)
				return -ENAMETOOLONG;
			if (len)
				cur[len++] = '/';
			memcpy(cur + len, p, n);
			cur[len + n] = '\0';
			e = lookup(w, cur);
			if (e && e->type == 'l') {
				if (++*hops > LINK_HOPS_MAX)
					return -ELOOP;
				*via = e->path;
				cur[len ? len - 1 : 0] = '\0'; /* its directory */
				if ((r = resolve(w, cur, e->target, sub, hops, via)) < 0)
					return r;
				strcpy(cur, sub);
			}
		}
		p = *q ? q + 1 : q;
	}
	strcpy(out, cur);
	return 0;
}

static int check_links(struct walk *w)
{
	char dir[NE_BUNDLE_PATH_MAX + 1], out[NE_BUNDLE_PATH_MAX + 1], q[NE_BUNDLE_PATH_MAX * 4 + 1];
	const char *via;
	unsigned hops;
	size_t i;
	int r;

	for (i = 0; i < w->n; i++) {
		const struct entry *e = &w->ents[i];
		char *slash;

		if (e->type != 'l')
			continue;
		strcpy(dir, e->path);
		slash = strrchr(dir, '/');
		*(slash ? slash : dir) = '\0';
		hops = 0;
		via = NULL;
		r = resolve(w, dir, e->target, out, &hops, &via);
		quote(e->target, strlen(e->target), q, sizeof(q));
		if (r == -EXDEV)
			return report(&w->r, NE_BUNDLE_INVALID, "link %s -> %s points outside the bundle%s%s%s",
				      e->path, q, via ? " (through link " : "", via ? via : "", via ? ")" : "");
		if (r == -ELOOP)
			return report(&w->r, NE_BUNDLE_INVALID, "link %s -> %s: too many levels of links",
				      e->path, q);
		if (r < 0)
			return report(&w->r, NE_BUNDLE_INVALID, "link %s -> %s resolves to a path longer than %d bytes",
				      e->path, q, NE_BUNDLE_PATH_MAX);
	}
	return 0;
}

static int check_executable(struct walk *w, const char *exe)
{
	const struct entry *e = lookup(w, exe);

	if (!e)
		return report(&w->r, NE_BUNDLE_INVALID, "Executable %s does not exist in the bundle", exe);
	if (e->type != 'f')
		return report(&w->r, NE_BUNDLE_INVALID, "Executable %s is a %s, not a regular file", exe,
			      e->type == 'l' ? "link" : "directory");
	if (e->mode != 0755)
		return report(&w->r, NE_BUNDLE_INVALID, "Executable %s is not executable: chmod u+x it", exe);
	if (!e->runnable)
		return report(&w->r, NE_BUNDLE_INVALID,
			      "Executable %s is neither an ELF binary nor a #! script", exe);
	return 0;
}

/* ---- netext.sig ---------------------------------------------------------------- */

struct sigline {
	char type;          /* 'f', 'l', 'd' */
	const char *mode;   /* 4 characters */
	uint64_t size;
	const char *hash;   /* 64 hex or "-" */
	const char *path;
	size_t plen;
};

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

/* "file: MODE SIZE SHA256 PATH", "link: 0777 SIZE SHA256 PATH" or "dir: 0755 0 - PATH". */
static bool parse_entry_line(const char *l, size_t n, struct sigline *s)
{
	const char *end = l + n, *p;
	size_t i;

	if (n > 6 && memcmp(l, "file: ", 6) == 0)
		s->type = 'f', p = l + 6;
	else if (n > 6 && memcmp(l, "link: ", 6) == 0)
		s->type = 'l', p = l + 6;
	else if (n > 5 && memcmp(l, "dir: ", 5) == 0)
		s->type = 'd', p = l + 5;
	else
		return false;
	if (end - p < 5 || p[4] != ' ')
		return false;
	s->mode = p;
	if (!(s->type == 'f' && (memcmp(p, "0644", 4) == 0 || memcmp(p, "0755", 4) == 0)) &&
	    !(s->type == 'l' && memcmp(p, "0777", 4) == 0) &&
	    !(s->type == 'd' && memcmp(p, "0755", 4) == 0))
		return false;
	p += 5;
	s->size = 0;
	for (i = 0; p + i < end && is_digit(p[i]) && i < 20; i++) {
		if (s->size > (UINT64_MAX - 9) / 10)
			return false;
		s->size = s->size * 10 + (uint64_t)(p[i] - '0');
	}
	if (i == 0 || (i > 1 && p[0] == '0') || p + i >= end || p[i] != ' ')
		return false;
	p += i + 1;
	s->hash = p;
	if (s->type == 'd') {
		if (s->size != 0 || end - p < 2 || memcmp(p, "- ", 2) != 0)
			return false;
		p += 2;
	} else {
		if (end - p < HEX_LEN + 1 || !is_hex(p, HEX_LEN) || p[HEX_LEN] != ' ')
			return false;
		if (s->type == 'l' && (s->size == 0 || s->size > NE_BUNDLE_PATH_MAX))
			return false;
		p += HEX_LEN + 1;
	}
	s->path = p;
	s->plen = (size_t)(end - p);
	return relpath_valid(p, s->plen) && !line_is(p, s->plen, NE_BUNDLE_SIGNATURE);
}

static int path_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, NE_MIN(an, bn));

	return c ? c : (an > bn) - (an < bn);
}

/* The header lines; v gets the value of "prefix: value" on success. */
static int sig_header_line(struct report *r, const char **p, const char *end, unsigned lineno,
			   const char *prefix, size_t vmax, const char **v, size_t *vlen)
{
	const char *line;
	size_t n;

	if (!next_line(p, end, &line, &n) || !(*v = field(line, n, prefix, vmax, vlen)))
		return report(r, NE_BUNDLE_BAD_SIGNATURE, "netext.sig line %u: expected '%s...'",
			      lineno, prefix);
	return 0;
}

/* Parses netext.sig strictly into b's signer, signed_listing and signature. */
static int parse_signature(struct report *r, const char *text, size_t len, struct ne_bundle *b)
{
	const char *p = text, *end = text + len, *line, *v, *prev = NULL;
	size_t n, vlen, prevlen = 0;
	unsigned lineno = 1, count = 0;
	struct sigline s;
	struct ne_pubkey signer;

	if (memchr(text, '\0', len))
		return report(r, NE_BUNDLE_BAD_SIGNATURE, "netext.sig contains a NUL byte");
	if (len == 0 || text[len - 1] != '\n')
		return report(r, NE_BUNDLE_BAD_SIGNATURE,
			      "netext.sig does not end with a newline (truncated?): re-sign the bundle");
	if (!next_line(&p, end, &line, &n) || !line_is(line, n, SIG_HEADER))
		return report(r, NE_BUNDLE_BAD_SIGNATURE,
			      "netext.sig does not start with '" SIG_HEADER "'");
	if (sig_header_line(r, &p, end, ++lineno, "team: ", NE_TEAM_MAX, &v, &vlen) < 0)
		return -1;
	memcpy(signer.team, v, vlen);
	signer.team[vlen] = '\0';
	if (!ne_team_valid(signer.team))
		return report(r, NE_BUNDLE_BAD_SIGNATURE, "netext.sig line 2: invalid team");
	if (sig_header_line(r, &p, end, ++lineno, "key: ", SIG_MAX, &v, &vlen) < 0)
		return -1;
	if (b64_decode_exact(v, vlen, signer.key, sizeof(signer.key)) < 0)
		return report(r, NE_BUNDLE_BAD_SIGNATURE,
			      "netext.sig line 3: the key is not the base64 of 32 bytes");
	if (sig_header_line(r, &p, end, ++lineno, "manifest: ", SIG_MAX, &v, &vlen) < 0)
		return -1;
	if (vlen != HEX_LEN || !is_hex(v, vlen))
		return report(r, NE_BUNDLE_BAD_SIGNATURE, "netext.sig line 4: expected a sha256 in hex");
	while (next_line(&p, end, &line, &n)) {
		lineno++;
		if ((v = field(line, n, "signature: ", SIG_MAX, &vlen))) {
			if (b64_decode_exact(v, vlen, b->signature, sizeof(b->signature)) < 0)
				return report(r, NE_BUNDLE_BAD_SIGNATURE,
					      "netext.sig line %u: the signature is not the base64 of 64 bytes",
					      lineno);
			if (p != end)
				return report(r, NE_BUNDLE_BAD_SIGNATURE,
					      "netext.sig: text after the signature line");
			b->signed_listing = strndup(text, (size_t)(line - text));
			if (!b->signed_listing)
				return report(r, NE_BUNDLE_SYSTEM, "out of memory");
			b->signer = signer;
			b->has_signature = true;
			return 0;
		}
		if (!parse_entry_line(line, n, &s))
			return report(r, NE_BUNDLE_BAD_SIGNATURE,
				      "netext.sig line %u: malformed entry (expected 'file: MODE SIZE SHA256 "
				      "PATH', 'link: ...', 'dir: ...' or 'signature: ...')", lineno);
		if (prev && path_cmp(prev, prevlen, s.path, s.plen) >= 0)
			return report(r, NE_BUNDLE_BAD_SIGNATURE,
				      "netext.sig line %u: entries are not sorted or repeat a path", lineno);
		if (++count > NE_BUNDLE_MAX_ENTRIES)
			return report(r, NE_BUNDLE_BAD_SIGNATURE, "netext.sig lists more than %d entries",
				      NE_BUNDLE_MAX_ENTRIES);
		prev = s.path;
		prevlen = s.plen;
	}
	return report(r, NE_BUNDLE_BAD_SIGNATURE,
		      "netext.sig has no signature line (truncated?): re-sign the bundle");
}

/* Reads up to max bytes of name in dirfd: a regular file, not a link, checked against the
 * reader rule. *ret_text is malloc'ed. -ENOENT when absent (nothing reported). */
static int read_small(struct walk *w, int dirfd, const char *name, size_t max,
		      enum ne_bundle_error toobig, char **ret_text, size_t *ret_len)
{
	struct stat st;
	char *text;
	int fd;
	ssize_t n;

	strcpy(w->path, name);
	fd = openat(dirfd, name, OPEN_FILE);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0 && errno == ELOOP)
		return report(&w->r, toobig, "%s is a symbolic link: it must be a regular file", name);
	if (fd < 0 || fstat(fd, &st) < 0) {
		report_errno(&w->r, "cannot open", name);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		report(&w->r, toobig, "%s must be a regular file", name);
		goto fail;
	}
	if (check_reader(w, &st, name) < 0)
		goto fail;
	if ((uint64_t)st.st_size > max) {
		report(&w->r, toobig, "%s is larger than %zu bytes", name, max);
		goto fail;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		report(&w->r, NE_BUNDLE_SYSTEM, "out of memory");
		goto fail;
	}
	n = read_retry(fd, text, (size_t)st.st_size + 1);
	if (n != st.st_size) {
		free(text);
		if (n < 0)
			report_errno(&w->r, "cannot read", name);
		else
			report(&w->r, NE_BUNDLE_INVALID, "%s changed while being read", name);
		goto fail;
	}
	close(fd);
	*ret_text = text;
	*ret_len = (size_t)n;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---- load, sign, verify, copy -------------------------------------------------- */

static char *build_listing(const struct walk *w, const struct ne_manifest *m, const char *key_b64)
{
	struct sbuf s = { 0 };
	char hex[HEX_LEN + 1];
	char *canon = ne_manifest_canonical(m);
	size_t i;

	if (!canon)
		return NULL;
	sha256_hex((const uint8_t *)canon, strlen(canon), hex);
	free(canon);
	sb_printf(&s, SIG_HEADER "\nteam: %s\nkey: %s\nmanifest: %s\n", m->team, key_b64, hex);
	for (i = 0; i < w->n; i++) {
		const struct entry *e = &w->ents[i];

		sb_printf(&s, "%s: %04o %" PRIu64 " %s %s\n",
			  e->type == 'f' ? "file" : e->type == 'l' ? "link" : "dir", e->mode, e->size,
			  e->hash, e->path);
	}
	return sb_steal(&s);
}

/* The manifest of the bundle in dirfd, after the directory itself passed the reader rule. */
static int load_manifest(struct walk *w, int dirfd, struct ne_manifest *m)
{
	struct stat st;
	char *text;
	size_t len;
	int r;

	if (fstat(dirfd, &st) < 0 || !S_ISDIR(st.st_mode))
		return report(&w->r, NE_BUNDLE_NOT_FOUND, "the bundle is not a directory");
	if (check_reader(w, &st, "") < 0)
		return -1;
	r = read_small(w, dirfd, NE_BUNDLE_MANIFEST, NE_MANIFEST_MAX, NE_BUNDLE_INVALID, &text, &len);
	if (r == -ENOENT)
		return report(&w->r, NE_BUNDLE_NOT_FOUND,
			      "no extension.conf in the bundle directory: is this a bundle?");
	if (r < 0)
		return -1;
	w->r.code = ne_manifest_parse(text, len, m, w->r.err, w->r.errlen);
	free(text);
	return w->r.code == NE_BUNDLE_OK ? 0 : -1;
}

static int load_signature(struct walk *w, int dirfd, struct ne_bundle *b)
{
	char *text;
	size_t len;
	int r;

	r = read_small(w, dirfd, NE_BUNDLE_SIGNATURE, SIG_MAX, NE_BUNDLE_BAD_SIGNATURE, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return -1;
	r = parse_signature(&w->r, text, len, b);
	free(text);
	return r;
}

static void bundle_free_contents(struct ne_bundle *b)
{
	free(b->listing);
	free(b->signed_listing);
}

void ne_bundle_free(struct ne_bundle *b)
{
	if (!b)
		return;
	bundle_free_contents(b);
	free(b);
}

/* ignore_sig: do not read netext.sig (signing replaces it, whatever it holds); the listing's
 * key line is then "key: -", as for an unsigned bundle. */
static enum ne_bundle_error load(int dirfd, uid_t reader, bool ignore_sig, struct ne_bundle **ret,
				 char *err, size_t errlen)
{
	struct walk w = { .r = { NE_BUNDLE_OK, err, errlen }, .reader = reader, .record = true };
	struct ne_bundle *b = calloc(1, sizeof(*b));
	char key[B64_PUB_LEN + 1] = "-";

	if (!b)
		return NE_BUNDLE_SYSTEM;
	if (load_manifest(&w, dirfd, &b->manifest) < 0 || walk_tree(&w, dirfd, -1) < 0)
		goto out;
	qsort(w.ents, w.n, sizeof(*w.ents), entry_cmp);
	if (check_links(&w) < 0 || check_executable(&w, b->manifest.executable) < 0)
		goto out;
	if (!ignore_sig && load_signature(&w, dirfd, b) < 0)
		goto out;
	if (b->has_signature)
		ne_pubkey_to_base64(b->signer.key, key, sizeof(key));
	b->listing = build_listing(&w, &b->manifest, key);
	if (!b->listing) {
		report(&w.r, NE_BUNDLE_SYSTEM, "out of memory");
		goto out;
	}
	sha256_hex((const uint8_t *)b->listing, strlen(b->listing), b->digest);
	b->n_entries = (unsigned)w.n;
	b->total_bytes = w.total;
out:
	free_entries(w.ents, w.n);
	free(w.buf);
	if (w.r.code != NE_BUNDLE_OK) {
		ne_bundle_free(b);
		return w.r.code;
	}
	*ret = b;
	return NE_BUNDLE_OK;
}

enum ne_bundle_error ne_bundle_load(int dirfd, uid_t reader_uid, struct ne_bundle **ret,
				    char *err, size_t errlen)
{
	return load(dirfd, reader_uid, false, ret, err, errlen);
}

static const char *kind_name(char type)
{
	return type == 'f' ? "file" : type == 'l' ? "link" : "directory";
}

/* Names how one entry differs between the signed listing (s) and the bundle (c). */
static enum ne_bundle_error entry_changed(const struct sigline *s, const struct sigline *c,
					  char *err, size_t errlen)
{
	const char *path = c->path;
	int pl = (int)c->plen;

	if (s->type != c->type)
		return fail_code(err, errlen, "%.*s was a %s when signed and is now a %s; re-sign the "
				 "bundle", pl, path, kind_name(s->type), kind_name(c->type));
	if (s->type == 'l')
		return fail_code(err, errlen, "link %.*s changed target after signing; re-sign the "
				 "bundle", pl, path);
	if (memcmp(s->hash, c->hash, HEX_LEN) != 0)
		return fail_code(err, errlen, "file %.*s changed after signing (sha256 differs); "
				 "re-sign the bundle", pl, path);
	if (s->size != c->size)
		return fail_code(err, errlen, "file %.*s changed after signing (size differs); re-sign "
				 "the bundle", pl, path);
	return fail_code(err, errlen, "%s %.*s changed mode after signing (%.4s, signed %.4s); "
			 "re-sign the bundle", kind_name(c->type), pl, path, c->mode, s->mode);
}

/* Compares the entry lines of the signed and recomputed listings (both sorted by path). */
static enum ne_bundle_error compare_entries(const char *sp, const char *send, const char *cp,
					    const char *cend, char *err, size_t errlen)
{
	const char *sl = NULL, *cl = NULL;
	size_t sn = 0, cn = 0;
	bool have_s, have_c;
	struct sigline s, c;
	int cmp;

	have_s = next_line(&sp, send, &sl, &sn);
	have_c = next_line(&cp, cend, &cl, &cn);
	while (have_s || have_c) {
		if ((have_s && !parse_entry_line(sl, sn, &s)) || (have_c && !parse_entry_line(cl, cn, &c)))
			return fail_code(err, errlen, "netext.sig: malformed listing");
		cmp = !have_s ? 1 : !have_c ? -1 : path_cmp(s.path, s.plen, c.path, c.plen);
		if (cmp < 0)
			return fail_code(err, errlen, "%s %.*s was removed after signing; re-sign the "
					 "bundle", kind_name(s.type), (int)s.plen, s.path);
		if (cmp > 0)
			return fail_code(err, errlen, "%s %.*s was added after signing; re-sign the "
					 "bundle", kind_name(c.type), (int)c.plen, c.path);
		if (sn != cn || memcmp(sl, cl, sn) != 0)
			return entry_changed(&s, &c, err, errlen);
		have_s = next_line(&sp, send, &sl, &sn);
		have_c = next_line(&cp, cend, &cl, &cn);
	}
	return NE_BUNDLE_OK;
}

/* The four header lines, then the entries; names the first difference. */
static enum ne_bundle_error compare_listings(const struct ne_bundle *b, char *err, size_t errlen)
{
	const char *sp = b->signed_listing, *send = sp + strlen(sp);
	const char *cp = b->listing, *cend = cp + strlen(cp);
	const char *sl, *cl;
	size_t sn, cn;
	unsigned i;

	for (i = 1; i <= 4; i++) {
		if (!next_line(&sp, send, &sl, &sn) || !next_line(&cp, cend, &cl, &cn))
			return fail_code(err, errlen, "netext.sig: malformed listing");
		if (sn == cn && memcmp(sl, cl, sn) == 0)
			continue;
		if (i == 2)
			return fail_code(err, errlen, "netext.sig was made for team %s but extension.conf "
					 "names team %s: sign with a key of team %s", b->signer.team,
					 b->manifest.team, b->manifest.team);
		if (i == 4)
			return fail_code(err, errlen, "extension.conf changed after signing (canonical "
					 "manifest differs); re-sign the bundle");
		return fail_code(err, errlen, "netext.sig line %u differs from the bundle", i);
	}
	return compare_entries(sp, send, cp, cend, err, errlen);
}

static bool key_trusted(const struct ne_pubkey *k, const struct ne_pubkey *trusted, size_t n,
			bool *team_known)
{
	size_t i;

	*team_known = false;
	for (i = 0; i < n; i++) {
		if (strcmp(trusted[i].team, k->team) != 0)
			continue;
		*team_known = true;
		if (sodium_memcmp(trusted[i].key, k->key, sizeof(k->key)) == 0)
			return true;
	}
	return false;
}

enum ne_bundle_error ne_bundle_verify(const struct ne_bundle *b, const struct ne_pubkey *trusted,
				      size_t n_trusted, char *err, size_t errlen)
{
	char key[B64_PUB_LEN + 1];
	enum ne_bundle_error e;
	bool team_known;

	if (!b->has_signature || !b->signed_listing)
		return fail_code(err, errlen, "bundle has no netext.sig: sign it with netextctl sign");
	if ((e = compare_listings(b, err, errlen)) != NE_BUNDLE_OK)
		return e;
	if (sodium_init() < 0)
		return NE_BUNDLE_SYSTEM;
	ne_pubkey_to_base64(b->signer.key, key, sizeof(key));
	if (crypto_sign_ed25519_verify_detached(b->signature, (const uint8_t *)b->signed_listing,
						strlen(b->signed_listing), b->signer.key) != 0)
		return fail_code(err, errlen, "the signature in netext.sig does not match its listing for "
				 "key %s: netext.sig was altered; re-sign the bundle", key);
	if (strcmp(b->signer.team, b->manifest.team) != 0)
		return fail_code(err, errlen, "netext.sig was made for team %s but extension.conf names "
				 "team %s", b->signer.team, b->manifest.team);
	if (key_trusted(&b->signer, trusted, n_trusted, &team_known))
		return NE_BUNDLE_OK;
	if (!team_known)
		return fail_code(err, errlen, "team %s is not trusted: add its public key to a policy "
				 "drop-in in /etc/netext/policy.d", b->signer.team);
	return fail_code(err, errlen, "key %s is not trusted for team %s: add it as a Key= of "
			 "[Team %s] in /etc/netext/policy.d", key, b->signer.team, b->signer.team);
}

/* Writes text as name in dirfd atomically: a temporary file, fsync, rename, fsync of the
 * directory. */
static int write_atomic(int dirfd, const char *name, const char *text, size_t len)
{
	char tmp[64];
	int fd, dfd, r;

	snprintf(tmp, sizeof(tmp), ".%s.tmp-%ld", name, (long)getpid());
	if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	r = write_all(fd, (const uint8_t *)text, len);
	if (r == 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0))
		r = -errno;
	close(fd);
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	dfd = openat(dirfd, ".", OPEN_DIR);
	if (dfd < 0)
		return -errno;
	r = fsync(dfd) < 0 ? -errno : 0;
	close(dfd);
	return r;
}

/* The listing of an unsigned load has "key: -" as its third line; the signed text has the
 * signer's key there. */
static char *listing_with_key(const char *listing, const char *key_b64)
{
	const char *line3 = strstr(listing, "\nkey: -\n");
	struct sbuf s = { 0 };

	if (!line3)
		return NULL;
	sb_printf(&s, "%.*s\nkey: %s\n%s", (int)(line3 - listing), listing, key_b64,
		  line3 + strlen("\nkey: -\n"));
	return sb_steal(&s);
}

enum ne_bundle_error ne_bundle_sign(int dirfd, const struct ne_seckey *sk, char *err,
				    size_t errlen)
{
	char key[B64_PUB_LEN + 1], sig_b64[B64_SIG_LEN + 1];
	struct ne_bundle *b = NULL;
	struct ne_pubkey pk;
	uint8_t sig[64];
	char *signed_text = NULL, *text = NULL;
	enum ne_bundle_error e;
	int r;

	if (sodium_init() < 0)
		return NE_BUNDLE_SYSTEM;
	if ((e = load(dirfd, (uid_t)-1, true, &b, err, errlen)) != NE_BUNDLE_OK)
		return e;
	e = NE_BUNDLE_SYSTEM;
	if (strcmp(sk->team, b->manifest.team) != 0) {
		e = fail_code(err, errlen, "the key is for team %s but extension.conf names team %s: "
			      "sign with a key of team %s", sk->team, b->manifest.team, b->manifest.team);
		goto out;
	}
	ne_seckey_public(sk, &pk);
	ne_pubkey_to_base64(pk.key, key, sizeof(key));
	signed_text = listing_with_key(b->listing, key);
	if (!signed_text)
		goto out;
	crypto_sign_ed25519_detached(sig, NULL, (const uint8_t *)signed_text, strlen(signed_text),
				     sk->key);
	sodium_bin2base64(sig_b64, sizeof(sig_b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
	if (asprintf(&text, "%ssignature: %s\n", signed_text, sig_b64) < 0) {
		text = NULL;
		goto out;
	}
	r = write_atomic(dirfd, NE_BUNDLE_SIGNATURE, text, strlen(text));
	if (r < 0) {
		snprintf(err, errlen, "cannot write netext.sig: %s", strerror(-r));
		goto out;
	}
	e = NE_BUNDLE_OK;
out:
	if (e == NE_BUNDLE_SYSTEM && err && errlen && !err[0])
		snprintf(err, errlen, "out of memory");
	free(signed_text);
	free(text);
	ne_bundle_free(b);
	return e;
}

static int rm_entry(int parent, const char *name, unsigned depth)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, r = 0, r2;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (depth >= RMTREE_DEPTH_MAX)
		return -ELOOP;
	fd = openat(parent, name, OPEN_DIR);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r2 = rm_entry(dirfd(d), de->d_name, depth + 1);
		if (r2 < 0 && r == 0)
			r = r2;
	}
	closedir(d);
	if (r == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

int ne_rmtree_at(int parent_fd, const char *name)
{
	return rm_entry(parent_fd, name, 0);
}

/* The copy's directory is 0700 until it is complete, so nobody reads a partial copy. */
static int copy_tree(struct walk *w, int src, int dst_parent, const char *dst_name, bool *created)
{
	int dfd, rc;

	if (mkdirat(dst_parent, dst_name, 0700) < 0) {
		if (errno == EEXIST)
			return report(&w->r, NE_BUNDLE_SYSTEM, "the destination %s already exists", dst_name);
		return report_errno(&w->r, "cannot create", dst_name);
	}
	*created = true;
	dfd = openat(dst_parent, dst_name, OPEN_DIR);
	if (dfd < 0)
		return report_errno(&w->r, "cannot open", dst_name);
	rc = walk_tree(w, src, dfd);
	if (rc == 0 && (fchmod(dfd, 0755) < 0 || fsync(dfd) < 0 || fsync(dst_parent) < 0))
		rc = report_errno(&w->r, "cannot write", dst_name);
	close(dfd);
	return rc;
}

enum ne_bundle_error ne_bundle_copy(int src_dirfd, uid_t reader_uid, int dst_parent_fd,
				    const char *dst_name, struct ne_bundle **ret, char *err,
				    size_t errlen)
{
	struct walk w = { .r = { NE_BUNDLE_OK, err, errlen }, .reader = reader_uid };
	struct ne_manifest m;
	enum ne_bundle_error e;
	bool created = false;
	int fd;

	if (!dst_name || !name_valid(dst_name, strlen(dst_name))) {
		report(&w.r, NE_BUNDLE_SYSTEM, "invalid destination name");
		return w.r.code;
	}
	/* The manifest first, so that a directory that is not a bundle is refused before
	 * anything is copied; the copy's manifest is the one that counts. */
	if (load_manifest(&w, src_dirfd, &m) < 0)
		return w.r.code;
	copy_tree(&w, src_dirfd, dst_parent_fd, dst_name, &created);
	free(w.buf);
	e = w.r.code;
	if (e == NE_BUNDLE_OK) {
		fd = openat(dst_parent_fd, dst_name, OPEN_DIR);
		if (fd < 0) {
			report_errno(&w.r, "cannot open", dst_name);
			e = w.r.code;
		} else {
			e = load(fd, (uid_t)-1, false, ret, err, errlen);
			close(fd);
		}
	}
	if (e != NE_BUNDLE_OK && created)
		ne_rmtree_at(dst_parent_fd, dst_name);
	return e;
}
