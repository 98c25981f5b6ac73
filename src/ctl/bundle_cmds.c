/* netextctl keygen / sign / verify: local operations on key files and bundle directories
 * (bundle.h), no daemon involved. They run with the invoking user's rights and trust
 * nothing they read: the library checks every file, these commands only report. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include <netext/netext.h>

#include "bundle.h"
#include "ctl.h"

#define KEY_FILE_MAX 4096
#define TRUSTED_MAX 64

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("netextctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static void print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(o);
}

/* getopt's state belongs to the caller's argv (netextctl.c parses with "+"): optind = 0
 * makes glibc start over. Options and positional words may come in any order, also under
 * POSIXLY_CORRECT: getopt stops at a word, which is taken, and parsing goes on. */
struct args {
	const char *words[4];
	int n_words;
};

typedef int (*opt_fn)(int c, const char *arg, void *userdata);

static int parse_args(int argc, char **argv, const char *shortopts, const struct option *lo,
		      opt_fn fn, void *userdata, struct args *a)
{
	int c, r;

	a->n_words = 0;
	optind = 0;
	opterr = 1;
	for (;;) {
		c = getopt_long(argc, argv, shortopts, lo, NULL);
		if (c == -1) {
			if (optind >= argc)
				return 0;
			if (a->n_words == (int)(sizeof(a->words) / sizeof(a->words[0])))
				return -1;
			a->words[a->n_words++] = argv[optind++];
			continue;
		}
		if (c == '?' || c == ':' || (r = fn(c, optarg, userdata)) < 0)
			return -1;
	}
}

/* Reads a small regular file (a key file) into buf, NUL-terminated. */
static int read_small_file(const char *path, char *buf, size_t size, size_t *ret_len)
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size >= size) {
		int r = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;

		close(fd);
		return r;
	}
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	*ret_len = (size_t)n;
	return 0;
}

/* Creates path with mode and writes text; O_EXCL unless force, in which case an existing
 * file (or link) is removed first rather than written through. */
static int write_new_file(const char *path, const char *text, size_t len, mode_t mode, bool force)
{
	int fd, r = 0;
	ssize_t n;

	if (force && unlink(path) < 0 && errno != ENOENT)
		return -errno;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	n = write(fd, text, len);
	if (n != (ssize_t)len)
		r = n < 0 ? -errno : -EIO;
	if (r == 0 && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		unlink(path);
	return r;
}

/* ---- keygen -------------------------------------------------------------------- */

struct keygen_opts {
	const char *team;
	const char *output;
	bool force;
};

static int keygen_opt(int c, const char *arg, void *userdata)
{
	struct keygen_opts *o = userdata;

	switch (c) {
	case 't': o->team = arg; return 0;
	case 'o': o->output = arg; return 0;
	case 'f': o->force = true; return 0;
	default: return -1;
	}
}

static int keygen_write(const struct keygen_opts *o, const char *pubpath,
			const struct ne_seckey *sk, const struct ne_pubkey *pk)
{
	char sec[256], pub[256];
	int n, r;

	n = ne_seckey_format(sk, sec, sizeof(sec));
	if (n < 0)
		return n;
	r = write_new_file(o->output, sec, (size_t)n, 0600, o->force);
	sodium_memzero(sec, sizeof(sec));
	if (r < 0)
		return fail(EXIT_FAILED, "keygen: cannot write %s: %s%s", o->output, strerror(-r),
			    r == -EEXIST ? " (pass --force to replace it)" : "");
	n = ne_pubkey_format(pk, pub, sizeof(pub));
	r = n < 0 ? n : write_new_file(pubpath, pub, (size_t)n, 0644, o->force);
	if (r < 0) {
		unlink(o->output);
		return fail(EXIT_FAILED, "keygen: cannot write %s: %s%s", pubpath, strerror(-r),
			    r == -EEXIST ? " (pass --force to replace it)" : "");
	}
	return 0;
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "team", required_argument, NULL, 't' },
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	struct keygen_opts o = { 0 };
	struct ne_seckey sk;
	struct ne_pubkey pk;
	char *pubpath = NULL, b64[64];
	struct args a;
	int r;

	if (parse_args(argc, argv, "+", lo, keygen_opt, &o, &a) < 0 || a.n_words > 0 || !o.team ||
	    !o.output)
		return fail(EXIT_USAGE, "usage: netextctl keygen --team TEAM --output FILE [--force]");
	if (!ne_team_valid(o.team))
		return fail(EXIT_USAGE, "keygen: team must be 1-32 characters of A-Z and 0-9 (e.g. EXAMPLE123)");
	if (asprintf(&pubpath, "%s.pub", o.output) < 0)
		return fail(EXIT_FAILED, "keygen: out of memory");
	if (!o.force && (access(o.output, F_OK) == 0 || access(pubpath, F_OK) == 0)) {
		r = fail(EXIT_FAILED, "keygen: %s or %s exists (pass --force to replace them)", o.output,
			 pubpath);
		goto out;
	}
	if (ne_key_generate(o.team, &sk, &pk) < 0) {
		r = fail(EXIT_FAILED, "keygen: cannot generate a key");
		goto out;
	}
	r = keygen_write(&o, pubpath, &sk, &pk);
	sodium_memzero(&sk, sizeof(sk));
	if (r != 0)
		goto out;
	ne_pubkey_to_base64(pk.key, b64, sizeof(b64));
	if (opt_json) {
		print_json(json_pack("{s:s, s:s, s:s, s:s}", "team", pk.team, "secret_key", o.output,
				     "public_key", pubpath, "key", b64));
	} else {
		printf("secret key: %s (keep it private)\n", o.output);
		printf("public key: %s\n", pubpath);
		printf("key: %s\n", b64);
		printf("To trust it, add to a drop-in in /etc/netext/policy.d:\n"
		       "  [Team %s]\n  Key = %s\n", pk.team, b64);
	}
out:
	free(pubpath);
	return r;
}

/* ---- sign ---------------------------------------------------------------------- */

static int open_bundle(const char *cmd, const char *path, int *ret_fd)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return fail(errno == ENOENT || errno == ENOTDIR ? EXIT_NOT_FOUND : EXIT_FAILED,
			    "%s: cannot open bundle %s: %s", cmd, path, strerror(errno));
	*ret_fd = fd;
	return 0;
}

static int bundle_fail(const char *cmd, const char *path, enum ne_bundle_error e, const char *err)
{
	if (opt_json)
		print_json(json_pack("{s:b, s:s, s:s, s:s}", "valid", 0, "bundle", path, "code",
				     ne_bundle_error_code(e), "error", err));
	return fail(e == NE_BUNDLE_NOT_FOUND ? EXIT_NOT_FOUND : EXIT_FAILED, "%s: %s: %s: %s", cmd,
		    path, ne_bundle_error_code(e), err);
}

static unsigned count_files(const char *listing)
{
	unsigned n = 0;
	const char *p;

	for (p = listing; (p = strstr(p, "\nfile: ")); p++)
		n++;
	return n;
}

struct sign_opts {
	const char *key;
};

static int sign_opt(int c, const char *arg, void *userdata)
{
	struct sign_opts *o = userdata;

	if (c != 'k')
		return -1;
	o->key = arg;
	return 0;
}

static int read_seckey(const char *path, struct ne_seckey *sk)
{
	char text[KEY_FILE_MAX], err[256];
	size_t len;
	int r = read_small_file(path, text, sizeof(text), &len);

	if (r < 0)
		return fail(EXIT_FAILED, "sign: cannot read key %s: %s", path, strerror(-r));
	r = ne_seckey_parse(text, len, sk, err, sizeof(err));
	sodium_memzero(text, sizeof(text));
	if (r < 0)
		return fail(EXIT_FAILED, "sign: %s: %s", path, err);
	return 0;
}

int cmd_sign(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	struct sign_opts o = { 0 };
	struct ne_bundle *b = NULL;
	struct ne_seckey sk;
	enum ne_bundle_error e;
	char err[1024] = "";
	struct args a;
	int fd, r;

	if (parse_args(argc, argv, "+", lo, sign_opt, &o, &a) < 0 || a.n_words != 1 || !o.key)
		return fail(EXIT_USAGE, "usage: netextctl sign BUNDLE --key FILE");
	if ((r = read_seckey(o.key, &sk)) != 0)
		return r;
	if ((r = open_bundle("sign", a.words[0], &fd)) != 0) {
		sodium_memzero(&sk, sizeof(sk));
		return r;
	}
	e = ne_bundle_sign(fd, &sk, err, sizeof(err));
	sodium_memzero(&sk, sizeof(sk));
	if (e == NE_BUNDLE_OK)
		e = ne_bundle_load(fd, (uid_t)-1, &b, err, sizeof(err));
	close(fd);
	if (e != NE_BUNDLE_OK)
		return bundle_fail("sign", a.words[0], e, err);
	if (opt_json)
		print_json(json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:i}", "bundle", a.words[0],
				     "identifier", b->manifest.identifier, "version", (int)b->manifest.version,
				     "team", b->manifest.team, "digest", b->digest, "entries", (int)b->n_entries,
				     "files", (int)count_files(b->listing)));
	else
		printf("signed %s %s (%u) for team %s: %u files, %u entries\ndigest: %s\n",
		       b->manifest.identifier, b->manifest.short_version, b->manifest.version,
		       b->manifest.team, count_files(b->listing), b->n_entries, b->digest);
	ne_bundle_free(b);
	return EXIT_OK;
}

/* ---- verify -------------------------------------------------------------------- */

struct verify_opts {
	const char *keys[TRUSTED_MAX];
	size_t n_keys;
};

static int verify_opt(int c, const char *arg, void *userdata)
{
	struct verify_opts *o = userdata;

	if (c != 'k' || o->n_keys == TRUSTED_MAX)
		return -1;
	o->keys[o->n_keys++] = arg;
	return 0;
}

static int read_pubkeys(const struct verify_opts *o, struct ne_pubkey *keys)
{
	char text[KEY_FILE_MAX], err[256];
	size_t i, len;
	int r;

	for (i = 0; i < o->n_keys; i++) {
		r = read_small_file(o->keys[i], text, sizeof(text), &len);
		if (r < 0)
			return fail(EXIT_FAILED, "verify: cannot read key %s: %s", o->keys[i], strerror(-r));
		if (ne_pubkey_parse(text, len, &keys[i], err, sizeof(err)) < 0)
			return fail(EXIT_FAILED, "verify: %s: %s", o->keys[i], err);
	}
	return 0;
}

static void verify_report(const char *path, const struct ne_bundle *b, bool key_checked)
{
	const struct ne_manifest *m = &b->manifest;
	char providers[256], perms[64];

	ne_manifest_providers_str(m, providers, sizeof(providers));
	ne_manifest_permissions_str(m, perms, sizeof(perms));
	if (opt_json) {
		print_json(json_pack("{s:b, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:b}",
				     "valid", 1, "bundle", path, "identifier", m->identifier,
				     "version", (int)m->version, "short_version", m->short_version,
				     "team", m->team, "description", m->description,
				     "providers", providers, "permissions", perms, "digest", b->digest,
				     "key_trusted", key_checked));
		return;
	}
	printf("identifier:    %s\n", m->identifier);
	printf("version:       %u\n", m->version);
	printf("short version: %s\n", m->short_version);
	printf("team:          %s\n", m->team);
	if (m->description[0])
		printf("description:   %s\n", m->description);
	printf("providers:     %s\n", providers);
	printf("permissions:   %s\n", perms[0] ? perms : "(none: AF_UNIX sockets only)");
	printf("digest:        %s\n", b->digest);
	printf("signature:     %s\n", key_checked ? "valid (key trusted)" :
	       "valid, key not checked (pass --key)");
}

int cmd_verify(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	static struct verify_opts o;
	static struct ne_pubkey keys[TRUSTED_MAX];
	struct ne_bundle *b = NULL;
	enum ne_bundle_error e;
	char err[1024] = "";
	struct args a;
	int fd, r;

	o.n_keys = 0;
	if (parse_args(argc, argv, "+", lo, verify_opt, &o, &a) < 0 || a.n_words != 1)
		return fail(EXIT_USAGE, "usage: netextctl verify BUNDLE [--key FILE.pub]... (at most %d keys)",
			    TRUSTED_MAX);
	if ((r = read_pubkeys(&o, keys)) != 0)
		return r;
	if ((r = open_bundle("verify", a.words[0], &fd)) != 0)
		return r;
	e = ne_bundle_load(fd, (uid_t)-1, &b, err, sizeof(err));
	close(fd);
	if (e != NE_BUNDLE_OK)
		return bundle_fail("verify", a.words[0], e, err);
	/* Without --key the signature is checked against the key it names, which proves the
	 * bundle is intact and signed by that key, not that the key is anyone's. */
	if (o.n_keys)
		e = ne_bundle_verify(b, keys, o.n_keys, err, sizeof(err));
	else
		e = ne_bundle_verify(b, &b->signer, 1, err, sizeof(err));
	if (e != NE_BUNDLE_OK) {
		r = bundle_fail("verify", a.words[0], e, err);
		ne_bundle_free(b);
		return r;
	}
	verify_report(a.words[0], b, o.n_keys > 0);
	ne_bundle_free(b);
	return EXIT_OK;
}
