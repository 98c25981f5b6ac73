/* Bundles (src/common/bundle.c): the manifest parser, key files, signing and verification,
 * the bundle rules (links, special files, limits, names, ownership) and the copy into a
 * store. Each test that touches files gets its own mkdtemp directory under /tmp, removed
 * afterwards; the ownership test needs root and skips otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"

/* ---- helpers ------------------------------------------------------------------- */

static void check_err(enum ne_bundle_error got, enum ne_bundle_error want, const char *err,
		      const char *needle)
{
	if (got != want || (needle && !strstr(err, needle)))
		print_error("got %s \"%s\"; want %s containing \"%s\"\n", ne_bundle_error_code(got),
			    err, ne_bundle_error_code(want), needle ? needle : "");
	assert_int_equal(got, want);
	if (needle)
		assert_non_null(strstr(err, needle));
}

struct fixture {
	char dir[64];
	int fd;     /* the temporary directory */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/netext-bundle-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	f->fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	return f->fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	int rc;

	close(f->fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

static void put(int dfd, const char *path, const char *content, size_t len, mode_t mode)
{
	int fd = openat(dfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int truncate_at(int dfd, const char *path, off_t size)
{
	int fd = openat(dfd, path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	int r;

	if (fd < 0)
		return -1;
	r = ftruncate(fd, size);
	close(fd);
	return r;
}

static void puts_at(int dfd, const char *path, const char *content, mode_t mode)
{
	put(dfd, path, content, strlen(content), mode);
}

/* Reads a whole small file into a static buffer. */
static const char *slurp(int dfd, const char *path, size_t *len)
{
	static char buf[1 << 20];
	int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	if (len)
		*len = (size_t)n;
	return buf;
}

#define GOOD_MANIFEST \
	"# hello\n" \
	"[Extension]\n" \
	"Identifier = com.example.hello\n" \
	"Version = 3\n" \
	"ShortVersion = 1.2.0\n" \
	"Team = EXAMPLE123\n" \
	"Executable = bin/netext-hello\n" \
	"Providers = message\n"

/* tmp/b: a valid unsigned bundle of 5 entries. Returns an fd of b. */
static int make_bundle(struct fixture *f)
{
	int fd;

	assert_int_equal(mkdirat(f->fd, "b", 0755), 0);
	assert_int_equal(mkdirat(f->fd, "b/bin", 0755), 0);
	assert_int_equal(mkdirat(f->fd, "b/share", 0755), 0);
	puts_at(f->fd, "b/extension.conf", GOOD_MANIFEST, 0644);
	puts_at(f->fd, "b/bin/netext-hello", "#!/bin/sh\necho hello\n", 0755);
	puts_at(f->fd, "b/share/data.txt", "some data\n", 0644);
	fd = openat(f->fd, "b", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static enum ne_bundle_error load_at(int fd, uid_t reader, struct ne_bundle **b, char *err, size_t n)
{
	*b = NULL;
	err[0] = '\0';
	return ne_bundle_load(fd, reader, b, err, n);
}

static void expect_load(int fd, uid_t reader, enum ne_bundle_error want, const char *needle)
{
	struct ne_bundle *b;
	char err[1024];
	enum ne_bundle_error e = load_at(fd, reader, &b, err, sizeof(err));

	check_err(e, want, err, needle);
	if (want == NE_BUNDLE_OK)
		assert_non_null(b);
	else
		assert_null(b);
	ne_bundle_free(b);
}

static void keypair(const char *team, struct ne_seckey *sk, struct ne_pubkey *pk)
{
	assert_int_equal(ne_key_generate(team, sk, pk), 0);
}

static void sign_ok(int fd, const struct ne_seckey *sk)
{
	char err[512] = "";

	check_err(ne_bundle_sign(fd, sk, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
}

static void expect_verify(int fd, const struct ne_pubkey *trusted, size_t n,
			  enum ne_bundle_error want, const char *needle)
{
	struct ne_bundle *b;
	char err[1024];

	check_err(load_at(fd, (uid_t)-1, &b, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	err[0] = '\0';
	check_err(ne_bundle_verify(b, trusted, n, err, sizeof(err)), want, err, needle);
	ne_bundle_free(b);
}

/* ---- manifest ------------------------------------------------------------------ */

#define SEC "[Extension]\n"
#define L_ID "Identifier = com.example.hello\n"
#define L_VER "Version = 3\n"
#define L_SV "ShortVersion = 1.2.0\n"
#define L_TEAM "Team = EXAMPLE123\n"
#define L_EXE "Executable = bin/netext-hello\n"
#define L_PROV "Providers = message\n"
#define BASE SEC L_ID L_VER L_SV L_TEAM L_EXE L_PROV  /* key lines 2-7 */

struct mcase {
	const char *text;
	size_t len; /* 0: strlen */
	enum ne_bundle_error want;
	const char *needle;
};

static const struct mcase manifest_cases[] = {
	{ BASE, 0, NE_BUNDLE_OK, NULL },
	{ BASE "Description = hello;world\n", 0, NE_BUNDLE_OK, NULL },
	{ BASE "Description = hello # world\n", 0, NE_BUNDLE_OK, NULL },
	{ BASE "X-Vendor = anything at all\nX-Vendor = twice\n", 0, NE_BUNDLE_OK, NULL },
	{ "[Extension]\r\nIdentifier = a.b\r\nVersion=1\r\nShortVersion=0.0.1\r\nTeam=T\r\n"
	  "Executable=x\r\nProviders=dns-proxy\r\n", 0, NE_BUNDLE_OK, NULL },
	{ "", 0, NE_BUNDLE_MISSING_IDENTIFIER, "no Identifier" },
	{ SEC L_VER L_SV L_TEAM L_EXE L_PROV, 0, NE_BUNDLE_MISSING_IDENTIFIER, "no Identifier" },
	{ SEC L_ID L_SV L_TEAM L_EXE L_PROV, 0, NE_BUNDLE_INVALID, "has no Version" },
	{ SEC L_ID L_VER L_SV L_TEAM L_EXE, 0, NE_BUNDLE_INVALID, "has no Providers" },
	{ SEC L_ID L_VER L_SV L_TEAM L_EXE "Providers = message bogus\n", 0,
	  NE_BUNDLE_UNKNOWN_PROVIDER, "line 7: unknown provider type 'bogus'" },
	{ SEC L_ID L_VER L_SV L_TEAM L_EXE "Providers = message, message\n", 0, NE_BUNDLE_INVALID,
	  "line 7: provider type message is listed twice" },
	{ SEC L_ID L_VER L_SV L_TEAM L_EXE "Providers = , \n", 0, NE_BUNDLE_INVALID,
	  "line 7: Providers must name at least one" },
	{ SEC L_ID L_ID L_VER, 0, NE_BUNDLE_INVALID, "line 3: duplicate key Identifier (first on line 2)" },
	{ BASE "Colour = red\n", 0, NE_BUNDLE_INVALID, "line 8: unknown key Colour" },
	{ BASE "version = 4\n", 0, NE_BUNDLE_INVALID, "line 8: unknown key version (keys are case-sensitive: Version)" },
	{ BASE "[Other]\nA = b\n", 0, NE_BUNDLE_INVALID, "line 8: unknown section [Other]" },
	{ BASE "[Extension]\n", 0, NE_BUNDLE_INVALID, "line 8: duplicate section [Extension]" },
	{ L_ID SEC, 0, NE_BUNDLE_INVALID, "line 1: Identifier is outside the [Extension] section" },
	{ SEC L_ID "Version = 0\n", 0, NE_BUNDLE_INVALID, "line 3: Version must be an integer from 1 to 2147483647" },
	{ SEC L_ID "Version = -1\n", 0, NE_BUNDLE_INVALID, "line 3: Version must be an integer" },
	{ SEC L_ID "Version = 2147483648\n", 0, NE_BUNDLE_INVALID, "line 3: Version must be an integer" },
	{ SEC L_ID "Version = 99999999999999999999999\n", 0, NE_BUNDLE_INVALID, "line 3: Version" },
	{ SEC L_ID "Version = 3a\n", 0, NE_BUNDLE_INVALID, "line 3: Version must be an integer" },
	{ SEC L_ID "Version =\n", 0, NE_BUNDLE_INVALID, "line 3: Version must be an integer" },
	{ SEC L_ID L_VER "ShortVersion = 1.2\n", 0, NE_BUNDLE_INVALID, "line 4: ShortVersion" },
	{ SEC L_ID L_VER "ShortVersion = 01.2.3\n", 0, NE_BUNDLE_INVALID, "line 4: ShortVersion" },
	{ SEC L_ID L_VER "ShortVersion = 1.2.3-\n", 0, NE_BUNDLE_INVALID, "line 4: ShortVersion" },
	{ SEC L_ID L_VER "ShortVersion = v1.2.3\n", 0, NE_BUNDLE_INVALID, "line 4: ShortVersion" },
	{ SEC L_ID L_VER "ShortVersion = 1.2.3-rc..1\n", 0, NE_BUNDLE_INVALID, "line 4: ShortVersion" },
	{ SEC L_ID L_VER "ShortVersion = 1.2.3-rc.1+build.7\n" L_TEAM L_EXE L_PROV, 0, NE_BUNDLE_OK, NULL },
	{ SEC L_ID L_VER L_SV "Team = example\n", 0, NE_BUNDLE_INVALID, "line 5: Team must be 1-32" },
	{ SEC L_ID L_VER L_SV "Team = ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\n", 0, NE_BUNDLE_INVALID, "line 5: Team" },
	{ SEC L_ID L_VER L_SV L_TEAM "Executable = ../netext-hello\n", 0, NE_BUNDLE_INVALID,
	  "line 6: Executable must not contain '..'" },
	{ SEC L_ID L_VER L_SV L_TEAM "Executable = bin/../../x\n", 0, NE_BUNDLE_INVALID, "line 6: Executable must not contain '..'" },
	{ SEC L_ID L_VER L_SV L_TEAM "Executable = /usr/bin/x\n", 0, NE_BUNDLE_INVALID,
	  "line 6: Executable must be relative" },
	{ SEC L_ID L_VER L_SV L_TEAM "Executable = bin//x\n", 0, NE_BUNDLE_INVALID, "line 6: Executable must be a path" },
	{ SEC L_ID L_VER L_SV L_TEAM "Executable = bin/a b\n", 0, NE_BUNDLE_INVALID, "line 6: Executable must be a path" },
	{ SEC "Identifier = hello\n", 0, NE_BUNDLE_INVALID, "line 2: Identifier must be reverse-DNS" },
	{ SEC "Identifier = com..hello\n", 0, NE_BUNDLE_INVALID, "line 2: Identifier" },
	{ SEC "Identifier = com.-hello\n", 0, NE_BUNDLE_INVALID, "line 2: Identifier" },
	{ SEC "Identifier = com.hello_x\n", 0, NE_BUNDLE_INVALID, "line 2: Identifier" },
	{ BASE "Permissions = network, root\n", 0, NE_BUNDLE_INVALID, "line 8: unknown permission 'root'" },
	{ BASE "Permissions = network network\n", 0, NE_BUNDLE_INVALID, "line 8: permission network is listed twice" },
	{ BASE "Description = hello ; world\n", 0, NE_BUNDLE_INVALID, "line 8: the value would be read differently" },
	{ BASE "  filter-data\n", 0, NE_BUNDLE_INVALID, "line 8: indented line" },
	{ BASE "Description: x\n", 0, NE_BUNDLE_INVALID, "line 8: expected 'Key = value'" },
	{ BASE "just words\n", 0, NE_BUNDLE_INVALID, "line 8: expected 'Key = value'" },
	{ BASE "Description = a\x01z\n", 0, NE_BUNDLE_INVALID, "line 8: byte 0x01 is not allowed" },
	{ BASE "Description = caf\xc3\xa9\n", 0, NE_BUNDLE_INVALID, "line 8: byte 0xc3" },
	{ BASE "Description = a\0b\n", sizeof(BASE "Description = a\0b\n") - 1, NE_BUNDLE_INVALID, "line 8: NUL byte" },
	{ BASE "Description = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaa\n", 0, NE_BUNDLE_INVALID, "line 8: longer than 199 bytes" },
};

static void test_manifest_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(manifest_cases) / sizeof(manifest_cases[0]); i++) {
		const struct mcase *c = &manifest_cases[i];
		struct ne_manifest m;
		char err[512] = "";
		enum ne_bundle_error e;

		e = ne_manifest_parse(c->text, c->len ? c->len : strlen(c->text), &m, err, sizeof(err));
		if (e != c->want)
			print_error("case %zu: %s\n", i, c->text);
		check_err(e, c->want, err, c->needle);
	}
}

static void test_manifest_values(void **state)
{
	static const char text[] = BASE "Description = hello;world # not a comment\n"
		"Providers2 = x\n";
	struct ne_manifest m;
	char err[256] = "", buf[128];

	/* Providers2 is an unknown key: the parse fails and m keeps its contents. */
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(ne_manifest_parse(text, strlen(text), &m, err, sizeof(err)), NE_BUNDLE_INVALID);
	assert_int_equal(((unsigned char *)&m)[0], 0x5a);

	assert_int_equal(ne_manifest_parse(text, strlen(text) - strlen("Providers2 = x\n"), &m, err,
					   sizeof(err)), NE_BUNDLE_OK);
	assert_string_equal(m.identifier, "com.example.hello");
	assert_int_equal(m.version, 3);
	assert_string_equal(m.short_version, "1.2.0");
	assert_string_equal(m.team, "EXAMPLE123");
	assert_string_equal(m.executable, "bin/netext-hello");
	assert_string_equal(m.description, "hello;world # not a comment");
	assert_int_equal(m.n_providers, 1);
	assert_int_equal(m.permissions, 0);
	ne_manifest_providers_str(&m, buf, sizeof(buf));
	assert_string_equal(buf, "message");
	ne_manifest_permissions_str(&m, buf, sizeof(buf));
	assert_string_equal(buf, "");

	/* Version at the top of the range; a file just over 64 KiB. */
	static const char top[] = SEC L_ID "Version = 2147483647\n" L_SV L_TEAM L_EXE L_PROV;
	assert_int_equal(ne_manifest_parse(top, strlen(top), &m, err, sizeof(err)), NE_BUNDLE_OK);
	assert_int_equal(m.version, 2147483647u);
	char *big = malloc(NE_MANIFEST_MAX + 1);
	assert_non_null(big);
	memset(big, '\n', NE_MANIFEST_MAX + 1);
	check_err(ne_manifest_parse(big, NE_MANIFEST_MAX + 1, &m, err, sizeof(err)), NE_BUNDLE_INVALID,
		  err, "larger than 65536 bytes");
	free(big);
}

static void test_manifest_canonical(void **state)
{
	static const char text[] = SEC L_ID L_VER L_SV L_TEAM L_EXE
		"Description = Says hello\n"
		"Providers = filter-data,dns-proxy  message\n"
		"Permissions = network\n";
	struct ne_manifest m;
	char err[256] = "";
	char *c;

	check_err(ne_manifest_parse(text, strlen(text), &m, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	c = ne_manifest_canonical(&m);
	assert_non_null(c);
	assert_string_equal(c, "identifier=com.example.hello\nversion=3\nshortversion=1.2.0\n"
			    "team=EXAMPLE123\nexecutable=bin/netext-hello\ndescription=Says hello\n"
			    "providers=filter-data dns-proxy message\npermissions=network\n");
	free(c);

	check_err(ne_manifest_parse(BASE, strlen(BASE), &m, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	c = ne_manifest_canonical(&m);
	assert_string_equal(c, "identifier=com.example.hello\nversion=3\nshortversion=1.2.0\n"
			    "team=EXAMPLE123\nexecutable=bin/netext-hello\nproviders=message\n");
	free(c);
	assert_string_equal(ne_permission_name(NE_PERM_NETWORK), "network");
	assert_null(ne_permission_name(0x2));
}

static void test_names(void **state)
{
	assert_true(ne_team_valid("EXAMPLE123"));
	assert_true(ne_team_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"));
	assert_false(ne_team_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"));
	assert_false(ne_team_valid(""));
	assert_false(ne_team_valid("Example"));
	assert_true(ne_identifier_valid("com.example.hello"));
	assert_true(ne_identifier_valid("a.b"));
	assert_true(ne_identifier_valid("com.ex-ample.x9"));
	assert_false(ne_identifier_valid("hello"));
	assert_false(ne_identifier_valid("a."));
	assert_false(ne_identifier_valid(".a.b"));
	assert_false(ne_identifier_valid("a.b-"));
	assert_false(ne_identifier_valid("a/b.c"));
	char id[NE_IDENTIFIER_MAX + 2];
	memset(id, 'a', sizeof(id));
	id[1] = '.';
	id[NE_IDENTIFIER_MAX] = '\0';
	assert_true(ne_identifier_valid(id));
	id[NE_IDENTIFIER_MAX] = 'a';
	id[NE_IDENTIFIER_MAX + 1] = '\0';
	assert_false(ne_identifier_valid(id));
	assert_string_equal(ne_bundle_error_code(NE_BUNDLE_OK), "ok");
	assert_string_equal(ne_bundle_error_code(NE_BUNDLE_NOT_FOUND), "extension-not-found");
	assert_string_equal(ne_bundle_error_code(NE_BUNDLE_MISSING_IDENTIFIER), "missing-identifier");
	assert_string_equal(ne_bundle_error_code(NE_BUNDLE_UNKNOWN_PROVIDER), "unknown-provider-type");
	assert_string_equal(ne_bundle_error_code(NE_BUNDLE_INVALID), "validation-failed");
	assert_string_equal(ne_bundle_error_code(NE_BUNDLE_BAD_SIGNATURE), "signature-invalid");
	assert_string_equal(ne_bundle_error_code(NE_BUNDLE_SYSTEM), "internal");
}

/* ---- keys ---------------------------------------------------------------------- */

static void test_keys_roundtrip(void **state)
{
	struct ne_seckey sk, sk2;
	struct ne_pubkey pk, pk2, pk3;
	char buf[512], b64[45], err[256];
	uint8_t raw[32];
	int n;

	assert_int_equal(ne_key_generate("bad team", &sk, &pk), -EINVAL);
	keypair("EXAMPLE123", &sk, &pk);
	ne_seckey_public(&sk, &pk3);
	assert_memory_equal(pk3.key, pk.key, 32);
	assert_string_equal(pk3.team, "EXAMPLE123");

	n = ne_pubkey_format(&pk, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(strlen(buf), n);
	assert_int_equal(strncmp(buf, "netext-public-key-v1\nteam: EXAMPLE123\nkey: ", 42), 0);
	assert_int_equal(ne_pubkey_parse(buf, (size_t)n, &pk2, err, sizeof(err)), 0);
	assert_memory_equal(pk2.key, pk.key, sizeof(pk.key));
	assert_string_equal(pk2.team, "EXAMPLE123");
	assert_int_equal(ne_pubkey_parse(buf, (size_t)n - 1, &pk2, err, sizeof(err)), 0); /* no final \n */

	n = ne_seckey_format(&sk, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(strncmp(buf, "netext-secret-key-v1\nteam: EXAMPLE123\nkey: ", 42), 0);
	assert_int_equal(ne_seckey_parse(buf, (size_t)n, &sk2, err, sizeof(err)), 0);
	assert_memory_equal(sk2.key, sk.key, sizeof(sk.key));
	assert_string_equal(sk2.team, "EXAMPLE123");
	assert_int_equal(ne_seckey_format(&sk, buf, 60), -ENOSPC);
	assert_int_equal(ne_pubkey_format(&pk, buf, 10), -ENOSPC);

	ne_pubkey_to_base64(pk.key, b64, sizeof(b64));
	assert_int_equal(strlen(b64), 44);
	assert_int_equal(ne_pubkey_from_base64(b64, raw), 0);
	assert_memory_equal(raw, pk.key, 32);
	b64[43] = '\0';
	assert_int_equal(ne_pubkey_from_base64(b64, raw), -EINVAL);
	assert_int_equal(ne_pubkey_from_base64("", raw), -EINVAL);
	assert_int_equal(ne_pubkey_from_base64(NULL, raw), -EINVAL);
	/* 48 characters: 36 bytes. */
	assert_int_equal(ne_pubkey_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", raw), -EINVAL);
	/* Non-zero padding bits are not the canonical encoding. */
	assert_int_equal(ne_pubkey_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", raw), -EINVAL);
	assert_int_equal(ne_pubkey_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", raw), 0);
	assert_int_equal(ne_pubkey_from_base64(" AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", raw), -EINVAL);
	/* libsodium 1.0.18 decodes bytes >= 0x80 as digits; found by fuzz-manifest. */
	assert_int_equal(ne_pubkey_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\xbc" "A=", raw), -EINVAL);
	assert_int_equal(ne_pubkey_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\A=", raw), -EINVAL);
}

static void expect_pub_bad(const char *text, size_t len, const char *needle)
{
	struct ne_pubkey pk;
	char err[256] = "";

	memset(&pk, 0x5a, sizeof(pk));
	if (ne_pubkey_parse(text, len ? len : strlen(text), &pk, err, sizeof(err)) != -EINVAL ||
	    !strstr(err, needle))
		print_error("pubkey \"%s\": \"%s\", want \"%s\"\n", text, err, needle);
	assert_non_null(strstr(err, needle));
	assert_int_equal(((unsigned char *)&pk)[0], 0x5a);
}

static void test_keys_malformed(void **state)
{
	static const char k[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	struct ne_seckey sk, sk2;
	struct ne_pubkey pk;
	char buf[600], err[256] = "";
	int n;

	expect_pub_bad("", 0, "not a netext key file");
	expect_pub_bad("netext-public-key-v2\nteam: A\nkey: AAAA\n", 0, "not a netext key file");
	expect_pub_bad("netext-secret-key-v1\nteam: A\nkey: AAAA\n", 0, "this is a netext-secret-key-v1 file");
	expect_pub_bad("netext-public-key-v1\nteam: a\nkey: x\n", 0, "line 2: team");
	expect_pub_bad("netext-public-key-v1\nteam:A\nkey: x\n", 0, "line 2: expected 'team: TEAM'");
	expect_pub_bad("netext-public-key-v1\nteam: A\nkey: AAAA\n", 0, "line 3");
	expect_pub_bad("netext-public-key-v1\nteam: A\n", 0, "line 3");
	snprintf(buf, sizeof(buf), "netext-public-key-v1\nteam: A\nkey: %s\n\n", k);
	expect_pub_bad(buf, 0, "unexpected text after line 3");
	snprintf(buf, sizeof(buf), "netext-public-key-v1\nteam: A\nkey: %s\nmore\n", k);
	expect_pub_bad(buf, 0, "unexpected text after line 3");
	snprintf(buf, sizeof(buf), "netext-public-key-v1\nteam: A\nkey:  %s\n", k);
	expect_pub_bad(buf, 0, "line 3");
	n = snprintf(buf, sizeof(buf), "netext-public-key-v1\nteam: A\nkey: %s\n", k);
	buf[25] = '\0';
	expect_pub_bad(buf, (size_t)n, "NUL byte");
	memset(buf, 'a', sizeof(buf));
	expect_pub_bad(buf, 513, "key file is longer than 512 bytes");
	snprintf(buf, sizeof(buf), "netext-public-key-v1\nteam: A\nkey: %s\n", k);
	assert_int_equal(ne_pubkey_parse(buf, strlen(buf), &pk, err, sizeof(err)), 0);

	/* A secret key whose public half was altered. */
	keypair("EXAMPLE123", &sk, &pk);
	sk.key[40] ^= 1;
	n = ne_seckey_format(&sk, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(ne_seckey_parse(buf, (size_t)n, &sk2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "secret key is corrupt"));
	/* A public key file is not a secret key. */
	n = ne_pubkey_format(&pk, buf, sizeof(buf));
	assert_int_equal(ne_seckey_parse(buf, (size_t)n, &sk2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "this is a netext-public-key-v1 file"));
}

/* ---- sign and verify ----------------------------------------------------------- */

static void test_sign_verify(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	struct ne_seckey sk;
	struct ne_pubkey pk, trusted[2];
	struct ne_bundle *b;
	char err[512], hex[65], key[45];
	uint8_t h[32];
	const char *sig;

	keypair("EXAMPLE123", &sk, &pk);
	sign_ok(fd, &sk);
	check_err(load_at(fd, (uid_t)-1, &b, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	assert_true(b->has_signature);
	assert_int_equal(b->n_entries, 5);
	assert_int_equal(b->total_bytes, strlen(GOOD_MANIFEST) + 21 + 10);
	assert_string_equal(b->listing, b->signed_listing);
	assert_string_equal(b->signer.team, "EXAMPLE123");
	assert_memory_equal(b->signer.key, pk.key, 32);
	crypto_hash_sha256(h, (const uint8_t *)b->signed_listing, strlen(b->signed_listing));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	assert_string_equal(b->digest, hex);

	/* The file format of docs/lifecycle.md. */
	sig = slurp(fd, "netext.sig", NULL);
	ne_pubkey_to_base64(pk.key, key, sizeof(key));
	assert_int_equal(strncmp(sig, "netext-signature-v1\nteam: EXAMPLE123\nkey: ", 42), 0);
	assert_int_equal(strlen(key), 44);
	assert_memory_equal(sig + 42, key, 44);
	assert_non_null(strstr(sig, "\nmanifest: "));
	assert_non_null(strstr(sig, "\ndir: 0755 0 - bin\nfile: 0755 21 "));
	assert_non_null(strstr(sig, " bin/netext-hello\nfile: 0644 "));
	assert_non_null(strstr(sig, " extension.conf\ndir: 0755 0 - share\nfile: 0644 10 "));
	assert_non_null(strstr(sig, " share/data.txt\nsignature: "));
	assert_null(strstr(sig, " netext.sig\n"));

	trusted[0] = pk;
	err[0] = '\0';
	check_err(ne_bundle_verify(b, trusted, 1, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	ne_bundle_free(b);

	/* Signing again gives the same file (ed25519 is deterministic); an unrelated key of
	 * another team in the trust list does not matter. */
	sign_ok(fd, &sk);
	keypair("OTHER", &sk, &trusted[0]);
	trusted[1] = pk;
	expect_verify(fd, trusted, 2, NE_BUNDLE_OK, NULL);
	close(fd);
}

static void test_verify_changes(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	struct ne_seckey sk;
	struct ne_pubkey pk;

	keypair("EXAMPLE123", &sk, &pk);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "bundle has no netext.sig: sign it with netextctl sign");
	sign_ok(fd, &sk);

	puts_at(fd, "share/data.txt", "some dat4\n", 0644);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE,
		      "file share/data.txt changed after signing (sha256 differs); re-sign the bundle");
	puts_at(fd, "share/data.txt", "some data\n", 0755);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "file share/data.txt changed mode after signing");
	puts_at(fd, "share/data.txt", "some data\n", 0644);
	expect_verify(fd, &pk, 1, NE_BUNDLE_OK, NULL);

	puts_at(fd, "extra.txt", "x", 0644);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "file extra.txt was added after signing");
	assert_int_equal(unlinkat(fd, "extra.txt", 0), 0);
	assert_int_equal(mkdirat(fd, "zdir", 0755), 0);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "directory zdir was added after signing");
	assert_int_equal(unlinkat(fd, "zdir", AT_REMOVEDIR), 0);

	assert_int_equal(unlinkat(fd, "share/data.txt", 0), 0);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "file share/data.txt was removed after signing");
	assert_int_equal(symlinkat("../bin/netext-hello", fd, "share/data.txt"), 0);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "share/data.txt was a file when signed and is now a link");
	assert_int_equal(unlinkat(fd, "share/data.txt", 0), 0);
	puts_at(fd, "share/data.txt", "some data\n", 0644);

	/* The manifest's meaning changed (Version 3 -> 4). */
	puts_at(fd, "extension.conf", SEC L_ID "Version = 4\n" L_SV L_TEAM L_EXE L_PROV, 0644);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE,
		      "extension.conf changed after signing (canonical manifest differs)");
	/* Only a comment changed: the canonical manifest is the same, the file is not. */
	puts_at(fd, "extension.conf", "# changed\n" GOOD_MANIFEST, 0644);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "file extension.conf changed after signing");
	puts_at(fd, "extension.conf", GOOD_MANIFEST, 0644);
	expect_verify(fd, &pk, 1, NE_BUNDLE_OK, NULL);
	close(fd);
}

static void test_verify_trust(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	struct ne_seckey sk, sk_other, sk_team2;
	struct ne_pubkey pk, pk_other, pk_team2;
	char err[512] = "";

	keypair("EXAMPLE123", &sk, &pk);
	keypair("OTHER", &sk_other, &pk_other);
	keypair("EXAMPLE123", &sk_team2, &pk_team2);

	/* sign refuses a key of another team. */
	check_err(ne_bundle_sign(fd, &sk_other, err, sizeof(err)), NE_BUNDLE_BAD_SIGNATURE, err,
		  "the key is for team OTHER but extension.conf names team EXAMPLE123");
	assert_int_equal(faccessat(fd, "netext.sig", F_OK, AT_SYMLINK_NOFOLLOW), -1);

	sign_ok(fd, &sk);
	expect_verify(fd, NULL, 0, NE_BUNDLE_BAD_SIGNATURE,
		      "team EXAMPLE123 is not trusted: add its public key to a policy drop-in in /etc/netext/policy.d");
	expect_verify(fd, &pk_other, 1, NE_BUNDLE_BAD_SIGNATURE, "team EXAMPLE123 is not trusted");
	expect_verify(fd, &pk_team2, 1, NE_BUNDLE_BAD_SIGNATURE, "is not trusted for team EXAMPLE123");
	/* A trusted key listed under another team does not count. */
	pk_other = pk;
	strcpy(pk_other.team, "OTHER");
	expect_verify(fd, &pk_other, 1, NE_BUNDLE_BAD_SIGNATURE, "team EXAMPLE123 is not trusted");

	/* Signed by OTHER (valid signature, manifest said OTHER then), manifest now says
	 * EXAMPLE123. */
	puts_at(fd, "extension.conf", SEC L_ID L_VER L_SV "Team = OTHER\n" L_EXE L_PROV, 0644);
	sign_ok(fd, &sk_other);
	puts_at(fd, "extension.conf", GOOD_MANIFEST, 0644);
	expect_verify(fd, &pk_other, 1, NE_BUNDLE_BAD_SIGNATURE,
		      "netext.sig was made for team OTHER but extension.conf names team EXAMPLE123");
	close(fd);
}

/* Rewrites netext.sig with one substring replaced. */
static void sig_replace(int fd, const char *from, const char *to)
{
	char text[8192], out[8192];
	const char *p;
	size_t len;

	strcpy(text, slurp(fd, "netext.sig", &len));
	p = strstr(text, from);
	assert_non_null(p);
	snprintf(out, sizeof(out), "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
	puts_at(fd, "netext.sig", out, 0644);
}

static void test_signature_malformed(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	struct ne_seckey sk;
	struct ne_pubkey pk;
	char orig[8192], *p, c[2] = "A";
	size_t len;

	keypair("EXAMPLE123", &sk, &pk);
	sign_ok(fd, &sk);
	strcpy(orig, slurp(fd, "netext.sig", &len));

	put(fd, "netext.sig", orig, len / 2, 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "does not end with a newline (truncated?)");
	p = strstr(orig, "signature: ");
	put(fd, "netext.sig", orig, (size_t)(p - orig), 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "has no signature line");
	puts_at(fd, "netext.sig", "garbage\n", 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "does not start with 'netext-signature-v1'");
	put(fd, "netext.sig", "", 0, 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "netext.sig");

	struct {
		const char *from, *to, *needle;
	} edits[] = {
		{ "team: EXAMPLE123", "team: example", "line 2: invalid team" },
		{ "team: EXAMPLE123", "team:EXAMPLE123", "line 2: expected 'team: ...'" },
		{ "key: ", "key: AAAA", "netext.sig line 3: the key is not the base64 of 32 bytes" },
		{ "key: ", "kee: ", "netext.sig line 3: expected 'key: ...'" },
		{ "manifest: ", "manifest: X", "line 4" },
		{ "dir: 0755 0 - bin", "dir: 0700 0 - bin", "line 5: malformed entry" },
		{ "dir: 0755 0 - bin", "dir: 0755 1 - bin", "line 5: malformed entry" },
		{ "dir: 0755 0 - bin", "dir: 0755 0 - bin/../x", "line 5: malformed entry" },
		{ "dir: 0755 0 - bin", "dir: 0755 0 - /bin", "line 5: malformed entry" },
		{ "dir: 0755 0 - bin", "dir: 0755 0 - netext.sig", "line 5: malformed entry" },
		{ "dir: 0755 0 - bin", "dir: 0755 0 - zzz", "line 6: entries are not sorted" },
		{ "dir: 0755 0 - bin", "dir: 0755 0 - bin\ndir: 0755 0 - bin", "line 6: entries are not sorted or repeat" },
		{ "file: 0755 21 ", "file: 0755 021 ", "line 6: malformed entry" },
		{ "file: 0755 21 ", "file: 0755 99999999999999999999999 ", "line 6: malformed entry" },
		{ "signature: ", "signature: AAAA", "signature is not the base64 of 64 bytes" },
		{ "signature: ", "signature:  ", "signature is not the base64 of 64 bytes" },
		{ "signature: ", "signature ", "line 10: malformed entry" },
		{ "netext-signature-v1\n", "netext-signature-v1\r\n", "does not start with" },
	};
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		put(fd, "netext.sig", orig, len, 0644);
		sig_replace(fd, edits[i].from, edits[i].to);
		expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, edits[i].needle);
	}
	/* Text after the signature line; a NUL byte. */
	put(fd, "netext.sig", orig, len, 0644);
	int sfd = openat(fd, "netext.sig", O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(sfd >= 0);
	assert_int_equal(write(sfd, "x\n", 2), 2);
	close(sfd);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "text after the signature line");
	memcpy(orig + 5, "\0", 1);
	put(fd, "netext.sig", orig, len, 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "NUL byte");
	memcpy(orig + 5, "t", 1);

	/* A well-formed file whose signature was altered. */
	p = strstr(orig, "signature: ") + strlen("signature: ");
	c[0] = *p == 'A' ? 'B' : 'A';
	*p = c[0];
	put(fd, "netext.sig", orig, len, 0644);
	expect_verify(fd, &pk, 1, NE_BUNDLE_BAD_SIGNATURE, "does not match its listing");

	/* Not a regular file; larger than any well-formed listing. */
	assert_int_equal(unlinkat(fd, "netext.sig", 0), 0);
	assert_int_equal(symlinkat("extension.conf", fd, "netext.sig"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "netext.sig");
	assert_int_equal(unlinkat(fd, "netext.sig", 0), 0);
	assert_int_equal(mkdirat(fd, "netext.sig", 0755), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "netext.sig must be a regular file");
	assert_int_equal(unlinkat(fd, "netext.sig", AT_REMOVEDIR), 0);
	put(fd, "netext.sig", "x", 1, 0644);
	assert_int_equal(truncate_at(fd, "netext.sig", 64 << 20), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_BAD_SIGNATURE, "netext.sig is larger than");

	/* Signing replaces a malformed netext.sig. */
	sign_ok(fd, &sk);
	expect_verify(fd, &pk, 1, NE_BUNDLE_OK, NULL);
	close(fd);
}

/* ---- bundle rules -------------------------------------------------------------- */

static void test_links(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	struct ne_bundle *b;
	char err[512], hex[65], line[200];
	uint8_t h[32];

	/* Legitimate links inside the bundle, also through other links. */
	assert_int_equal(symlinkat("data.txt", fd, "share/link"), 0);
	assert_int_equal(symlinkat("../share/./link", fd, "bin/via"), 0);
	assert_int_equal(symlinkat("..", fd, "share/up"), 0);
	assert_int_equal(symlinkat("up/bin", fd, "share/bin-dir"), 0);
	assert_int_equal(symlinkat("missing/file", fd, "share/dangling"), 0);
	check_err(load_at(fd, (uid_t)-1, &b, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	crypto_hash_sha256(h, (const uint8_t *)"data.txt", 8);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	snprintf(line, sizeof(line), "\nlink: 0777 8 %s share/link\n", hex);
	assert_non_null(strstr(b->listing, line));
	assert_int_equal(b->n_entries, 10);
	ne_bundle_free(b);

	/* A link that goes up too far, directly or in the middle of its target. */
	assert_int_equal(symlinkat("../../etc/passwd", fd, "share/passwd"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "link share/passwd -> ../../etc/passwd points outside the bundle");
	assert_int_equal(unlinkat(fd, "share/passwd", 0), 0);
	assert_int_equal(symlinkat("../share/../../x", fd, "bin/x"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "link bin/x -> ../share/../../x points outside the bundle");
	assert_int_equal(unlinkat(fd, "bin/x", 0), 0);
	assert_int_equal(symlinkat("/etc/passwd", fd, "share/abs"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "share/abs is an absolute link (-> /etc/passwd)");
	assert_int_equal(unlinkat(fd, "share/abs", 0), 0);

	/* Lexically share/up/.. is share, but share/up is the root, so the kernel would leave
	 * the bundle: links met on the way are expanded. */
	assert_int_equal(symlinkat("up/../..", fd, "share/esc"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "link share/esc -> up/../.. points outside the bundle (through link share/up)");
	assert_int_equal(unlinkat(fd, "share/esc", 0), 0);
	/* A chain: a -> share/up2 -> ../.. */
	assert_int_equal(symlinkat("bin-dir/../..", fd, "share/esc2"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "link share/esc2 -> bin-dir/../.. points outside the bundle");
	assert_int_equal(unlinkat(fd, "share/esc2", 0), 0);

	/* Loops. */
	assert_int_equal(symlinkat("loop2", fd, "share/loop1"), 0);
	assert_int_equal(symlinkat("loop1", fd, "share/loop2"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "too many levels of links");
	assert_int_equal(unlinkat(fd, "share/loop1", 0), 0);
	assert_int_equal(unlinkat(fd, "share/loop2", 0), 0);

	/* Odd target texts. */
	assert_int_equal(symlinkat("a//b", fd, "share/odd"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "link share/odd -> a//b: the target has an invalid name");
	assert_int_equal(unlinkat(fd, "share/odd", 0), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_OK, NULL);

	/* The manifest itself must not be a link. */
	assert_int_equal(renameat(fd, "extension.conf", fd, "share/real.conf"), 0);
	assert_int_equal(symlinkat("share/real.conf", fd, "extension.conf"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "extension.conf is a symbolic link");
	close(fd);
}

static void test_special_files(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);

	assert_int_equal(mkfifoat(fd, "share/fifo", 0644), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "share/fifo is a FIFO: a bundle holds only files, directories and relative links");
	assert_int_equal(unlinkat(fd, "share/fifo", 0), 0);
	if (geteuid() == 0) {
		assert_int_equal(mknodat(fd, "null", S_IFCHR | 0666, makedev(1, 3)), 0);
		expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "null is a character device");
		assert_int_equal(unlinkat(fd, "null", 0), 0);
	}
	expect_load(fd, (uid_t)-1, NE_BUNDLE_OK, NULL);

	/* No manifest. */
	assert_int_equal(unlinkat(fd, "extension.conf", 0), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_NOT_FOUND, "no extension.conf");
	/* A manifest without an Identifier. */
	puts_at(fd, "extension.conf", SEC L_VER, 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_MISSING_IDENTIFIER, "no Identifier");
	close(fd);
}

static void test_executable(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);

	assert_int_equal(fchmodat(fd, "bin/netext-hello", 0644, 0), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "Executable bin/netext-hello is not executable");
	assert_int_equal(fchmodat(fd, "bin/netext-hello", 0711, 0), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_OK, NULL);
	puts_at(fd, "bin/netext-hello", "hello world\n", 0755);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "Executable bin/netext-hello is neither an ELF binary nor a #! script");
	puts_at(fd, "bin/netext-hello", "#", 0755);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "neither an ELF binary");
	puts_at(fd, "bin/netext-hello", "\x7f" "ELF\x02\x01\x01", 0755);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_OK, NULL);
	assert_int_equal(unlinkat(fd, "bin/netext-hello", 0), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "Executable bin/netext-hello does not exist in the bundle");
	assert_int_equal(symlinkat("../share/data.txt", fd, "bin/netext-hello"), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "Executable bin/netext-hello is a link, not a regular file");
	assert_int_equal(unlinkat(fd, "bin/netext-hello", 0), 0);
	assert_int_equal(mkdirat(fd, "bin/netext-hello", 0755), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "is a directory, not a regular file");
	close(fd);
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	struct timespec t0, t1;
	char path[64];
	int i;

	/* A sparse 300 MiB file is refused from its size, without being read. */
	put(fd, "share/big", "x", 1, 0644);
	assert_int_equal(truncate_at(fd, "share/big", 300LL << 20), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "the bundle is larger than 256 MiB (at share/big");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	/* So is a total over 256 MiB spread over two files. */
	assert_int_equal(truncate_at(fd, "share/big", 200LL << 20), 0);
	put(fd, "share/big2", "x", 1, 0644);
	assert_int_equal(truncate_at(fd, "share/big2", 100LL << 20), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "the bundle is larger than 256 MiB");
	assert_int_equal(unlinkat(fd, "share/big", 0), 0);
	assert_int_equal(unlinkat(fd, "share/big2", 0), 0);

	/* 5 entries + the directory m + 4090 files = 4096; one more is refused. */
	assert_int_equal(mkdirat(fd, "m", 0755), 0);
	for (i = 0; i < 4090; i++) {
		snprintf(path, sizeof(path), "m/%d", i);
		put(fd, path, "", 0, 0644);
	}
	struct ne_bundle *b;
	char err[512];
	check_err(load_at(fd, (uid_t)-1, &b, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	assert_int_equal(b->n_entries, NE_BUNDLE_MAX_ENTRIES);
	ne_bundle_free(b);
	put(fd, "m/last", "", 0, 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "the bundle has more than 4096 entries");
	close(fd);
}

static void test_depth_and_names(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	char path[128] = "d";
	int i;

	/* 16 levels are fine, 17 are not. */
	assert_int_equal(mkdirat(fd, path, 0755), 0);
	for (i = 2; i <= 16; i++) {
		strcat(path, "/d");
		assert_int_equal(mkdirat(fd, path, 0755), 0);
	}
	expect_load(fd, (uid_t)-1, NE_BUNDLE_OK, NULL);
	strcat(path, "/f");
	puts_at(fd, path, "deep", 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/f is nested deeper than 16 levels");
	assert_int_equal(unlinkat(fd, path, 0), 0);

	puts_at(fd, "share/a\x01" "b", "", 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "name \"a\\x01b\" in share is not allowed");
	assert_int_equal(unlinkat(fd, "share/a\x01" "b", 0), 0);
	puts_at(fd, "a\\b", "", 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "name \"a\\x5cb\" in the bundle root is not allowed");
	assert_int_equal(unlinkat(fd, "a\\b", 0), 0);
	puts_at(fd, "a b", "", 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "name \"a b\"");
	assert_int_equal(unlinkat(fd, "a b", 0), 0);
	puts_at(fd, "caf\xc3\xa9", "", 0644);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_INVALID, "name \"caf\\xc3\\xa9\"");
	assert_int_equal(unlinkat(fd, "caf\xc3\xa9", 0), 0);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_OK, NULL);
	close(fd);
}

static void test_reader_uid(void **state)
{
	struct fixture *f = *state;
	int fd;

	if (geteuid() != 0)
		skip();
	fd = make_bundle(f);
	assert_int_equal(fchownat(fd, "share/data.txt", 4242, 4242, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fchmodat(fd, "share/data.txt", 0600, 0), 0);
	expect_load(fd, 1000, NE_BUNDLE_INVALID, "share/data.txt is not readable by uid 1000 (owner 4242, mode 0600)");
	expect_load(fd, 4242, NE_BUNDLE_OK, NULL);
	expect_load(fd, (uid_t)-1, NE_BUNDLE_OK, NULL);
	assert_int_equal(fchmodat(fd, "share/data.txt", 0604, 0), 0);
	expect_load(fd, 1000, NE_BUNDLE_OK, NULL);

	/* Directories need o+rx. */
	assert_int_equal(fchownat(fd, "share", 4242, 4242, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fchmodat(fd, "share", 0754, 0), 0);
	expect_load(fd, 1000, NE_BUNDLE_INVALID, "share is not readable by uid 1000");
	assert_int_equal(fchmodat(fd, "share", 0755, 0), 0);
	expect_load(fd, 1000, NE_BUNDLE_OK, NULL);
	/* The root and the manifest too. */
	assert_int_equal(fchownat(fd, "extension.conf", 4242, 4242, AT_SYMLINK_NOFOLLOW), 0);
	assert_int_equal(fchmodat(fd, "extension.conf", 0640, 0), 0);
	expect_load(fd, 1000, NE_BUNDLE_INVALID, "extension.conf is not readable by uid 1000");
	assert_int_equal(fchmodat(fd, "extension.conf", 0644, 0), 0);
	assert_int_equal(fchown(fd, 4242, 4242), 0);
	assert_int_equal(fchmod(fd, 0700), 0);
	expect_load(fd, 1000, NE_BUNDLE_INVALID, "the bundle directory is not readable by uid 1000");
	close(fd);
}

/* ---- copy and rmtree ----------------------------------------------------------- */

static void expect_mode(int dfd, const char *path, mode_t type, mode_t mode)
{
	struct stat st;

	assert_int_equal(fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW), 0);
	if ((st.st_mode & S_IFMT) != type || (st.st_mode & 07777) != mode)
		print_error("%s: mode %o\n", path, (unsigned)st.st_mode);
	assert_int_equal(st.st_mode & S_IFMT, type);
	assert_int_equal(st.st_mode & 07777, mode);
	assert_int_equal(st.st_uid, geteuid());
}

static bool exists(int dfd, const char *path)
{
	struct stat st;

	return fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void test_copy(void **state)
{
	struct fixture *f = *state;
	int fd = make_bundle(f);
	struct ne_bundle *src, *copy;
	struct ne_seckey sk;
	struct ne_pubkey pk;
	char err[512] = "";
	int cfd;

	keypair("EXAMPLE123", &sk, &pk);
	assert_int_equal(symlinkat("data.txt", fd, "share/link"), 0);
	assert_int_equal(mkdirat(fd, "empty", 0700), 0);
	sign_ok(fd, &sk);
	assert_int_equal(fchmodat(fd, "share/data.txt", 0600, 0), 0);
	assert_int_equal(fchmodat(fd, "bin/netext-hello", 0700, 0), 0);
	assert_int_equal(fchmodat(fd, "share", 0711, 0), 0);
	check_err(load_at(fd, (uid_t)-1, &src, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);

	check_err(ne_bundle_copy(fd, (uid_t)-1, f->fd, "copy", &copy, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	assert_string_equal(copy->digest, src->digest);
	assert_string_equal(copy->listing, src->listing);
	assert_true(copy->has_signature);
	assert_string_equal(copy->manifest.identifier, "com.example.hello");
	err[0] = '\0';
	check_err(ne_bundle_verify(copy, &pk, 1, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	ne_bundle_free(copy);
	ne_bundle_free(src);

	cfd = openat(f->fd, "copy", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(cfd >= 0);
	expect_mode(f->fd, "copy", S_IFDIR, 0755);
	expect_mode(cfd, "share", S_IFDIR, 0755);
	expect_mode(cfd, "empty", S_IFDIR, 0755);
	expect_mode(cfd, "share/data.txt", S_IFREG, 0644);
	expect_mode(cfd, "bin/netext-hello", S_IFREG, 0755);
	expect_mode(cfd, "extension.conf", S_IFREG, 0644);
	expect_mode(cfd, "netext.sig", S_IFREG, 0644);
	assert_true(exists(cfd, "share/link"));
	assert_string_equal(slurp(cfd, "share/data.txt", NULL), "some data\n");
	close(cfd);

	/* An existing destination is refused and left alone. */
	check_err(ne_bundle_copy(fd, (uid_t)-1, f->fd, "copy", &copy, err, sizeof(err)), NE_BUNDLE_SYSTEM,
		  err, "already exists");
	assert_true(exists(f->fd, "copy/share/data.txt"));
	check_err(ne_bundle_copy(fd, (uid_t)-1, f->fd, "../x", &copy, err, sizeof(err)), NE_BUNDLE_SYSTEM,
		  err, "invalid destination name");

	/* A violation during the walk (a FIFO after the other entries) or after it (a link
	 * chain leaving the bundle, found by loading the copy) leaves nothing behind. */
	assert_int_equal(mkdirat(fd, "zz", 0755), 0);
	assert_int_equal(mkfifoat(fd, "zz/fifo", 0644), 0);
	check_err(ne_bundle_copy(fd, (uid_t)-1, f->fd, "copy2", &copy, err, sizeof(err)), NE_BUNDLE_INVALID,
		  err, "zz/fifo is a FIFO");
	assert_false(exists(f->fd, "copy2"));
	assert_int_equal(unlinkat(fd, "zz/fifo", 0), 0);
	assert_int_equal(symlinkat("..", fd, "zz/up"), 0);
	assert_int_equal(symlinkat("up/../..", fd, "zz/esc"), 0);
	check_err(ne_bundle_copy(fd, (uid_t)-1, f->fd, "copy2", &copy, err, sizeof(err)), NE_BUNDLE_INVALID,
		  err, "link zz/esc -> up/../.. points outside the bundle");
	assert_false(exists(f->fd, "copy2"));
	assert_int_equal(unlinkat(fd, "zz/esc", 0), 0);
	/* A copy that is complete but whose signature no longer matches is still a copy:
	 * verification is the caller's step. */
	check_err(ne_bundle_copy(fd, (uid_t)-1, f->fd, "copy2", &copy, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
	err[0] = '\0';
	check_err(ne_bundle_verify(copy, &pk, 1, err, sizeof(err)), NE_BUNDLE_BAD_SIGNATURE, err,
		  "directory zz was added after signing");
	ne_bundle_free(copy);
	/* Not a bundle: refused before anything is created. */
	check_err(ne_bundle_copy(f->fd, (uid_t)-1, f->fd, "copy3", &copy, err, sizeof(err)),
		  NE_BUNDLE_NOT_FOUND, err, "no extension.conf");
	assert_false(exists(f->fd, "copy3"));

	if (geteuid() == 0) {
		assert_int_equal(fchmodat(fd, "share", 0755, 0), 0);
		assert_int_equal(fchmodat(fd, "share/data.txt", 0644, 0), 0);
		assert_int_equal(fchmodat(fd, "empty", 0755, 0), 0);
		assert_int_equal(fchmodat(fd, "bin/netext-hello", 0755, 0), 0);
		check_err(ne_bundle_copy(fd, 1000, f->fd, "copy4", &copy, err, sizeof(err)), NE_BUNDLE_OK, err, NULL);
		ne_bundle_free(copy);
		assert_int_equal(ne_rmtree_at(f->fd, "copy4"), 0);
		assert_int_equal(fchownat(fd, "zz", 4242, 4242, AT_SYMLINK_NOFOLLOW), 0);
		assert_int_equal(fchmodat(fd, "zz", 0700, 0), 0);
		check_err(ne_bundle_copy(fd, 1000, f->fd, "copy4", &copy, err, sizeof(err)), NE_BUNDLE_INVALID,
			  err, "zz is not readable by uid 1000");
		assert_false(exists(f->fd, "copy4"));
	}
	close(fd);
}

static void test_rmtree(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mkdirat(f->fd, "outside", 0755), 0);
	puts_at(f->fd, "outside/keep", "keep", 0644);
	assert_int_equal(mkdirat(f->fd, "t", 0755), 0);
	assert_int_equal(mkdirat(f->fd, "t/a", 0700), 0);
	assert_int_equal(mkdirat(f->fd, "t/a/b", 0000), 0);
	puts_at(f->fd, "t/a/file", "x", 0000);
	assert_int_equal(symlinkat("../../outside", f->fd, "t/a/link"), 0);
	assert_int_equal(symlinkat(f->dir, f->fd, "t/abs"), 0);
	assert_int_equal(mkfifoat(f->fd, "t/fifo", 0644), 0);

	assert_int_equal(ne_rmtree_at(f->fd, "t"), 0);
	assert_false(exists(f->fd, "t"));
	assert_true(exists(f->fd, "outside/keep"));
	assert_int_equal(ne_rmtree_at(f->fd, "t"), 0);
	/* A link given as the name is removed, not followed. */
	assert_int_equal(symlinkat("outside", f->fd, "l"), 0);
	assert_int_equal(ne_rmtree_at(f->fd, "l"), 0);
	assert_false(exists(f->fd, "l"));
	assert_true(exists(f->fd, "outside/keep"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_table),
		cmocka_unit_test(test_manifest_values),
		cmocka_unit_test(test_manifest_canonical),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_keys_roundtrip),
		cmocka_unit_test(test_keys_malformed),
		cmocka_unit_test_setup_teardown(test_sign_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_trust, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signature_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_executable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_depth_and_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rmtree, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
