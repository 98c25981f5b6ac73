/* Fuzz harness for the bundle text parsers (src/common/bundle.c): extension.conf, key files
 * and base64 public keys, all written by vendors or requesters.
 *
 * The whole input is parsed as a manifest. Its first byte also selects a key parser for the
 * rest: 'P' public key file, 'S' secret key file, 'B' base64 public key. Besides what
 * ASan/UBSan catch, it checks that a refused input leaves the output untouched, that what
 * a parser accepts is valid (identifier, team, version range, providers), and that it
 * round-trips: a manifest rebuilt from the parsed fields parses to the same canonical form,
 * and a key formats back to the text it was parsed from. */
#include "fuzz.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netext/netext.h>

#include "bundle.h"

static void die(const char *why)
{
	fprintf(stderr, "fuzz-manifest: %s\n", why);
	abort();
}

static void poison(void *m, size_t size)
{
	memset(m, 0xa5, size);
}

static void check_poisoned(const void *m, size_t size)
{
	const uint8_t *b = m;
	size_t i;

	for (i = 0; i < size; i++)
		if (b[i] != 0xa5)
			die("a parser wrote its output on failure");
}

/* An INI text with the parsed fields, as a vendor would write it. */
static int manifest_text(const struct ne_manifest *m, char *buf, size_t size)
{
	char providers[256], perms[64];

	ne_manifest_providers_str(m, providers, sizeof(providers));
	ne_manifest_permissions_str(m, perms, sizeof(perms));
	return snprintf(buf, size,
			"[Extension]\nIdentifier = %s\nVersion = %u\nShortVersion = %s\nTeam = %s\n"
			"Executable = %s\n%s%s%sProviders = %s\n%s%s%s", m->identifier,
			(unsigned)m->version, m->short_version, m->team, m->executable,
			m->description[0] ? "Description = " : "", m->description,
			m->description[0] ? "\n" : "", providers, perms[0] ? "Permissions = " : "",
			perms, perms[0] ? "\n" : "");
}

static void fuzz_manifest(const uint8_t *data, size_t size)
{
	static char text[4096];
	struct ne_manifest m, m2;
	char err[256];
	char *c1, *c2;
	int n;

	poison(&m, sizeof(m));
	if (ne_manifest_parse((const char *)data, size, &m, err, sizeof(err)) != NE_BUNDLE_OK) {
		check_poisoned(&m, sizeof(m));
		if (!memchr(err, '\0', sizeof(err)))
			die("error message not terminated");
		return;
	}
	if (!ne_identifier_valid(m.identifier) || !ne_team_valid(m.team) || m.version < 1 ||
	    m.version > INT32_MAX || m.n_providers < 1 || m.n_providers > NE_MANIFEST_PROVIDERS_MAX ||
	    (m.permissions & ~NE_PERM_ALL) || !m.executable[0] || m.executable[0] == '/')
		die("accepted an invalid manifest");
	c1 = ne_manifest_canonical(&m);
	if (!c1)
		die("canonical: out of memory");
	n = manifest_text(&m, text, sizeof(text));
	if (n < 0 || (size_t)n >= sizeof(text))
		die("rebuilt manifest too long");
	if (ne_manifest_parse(text, (size_t)n, &m2, err, sizeof(err)) != NE_BUNDLE_OK) {
		fprintf(stderr, "%s\n%s\n", text, err);
		die("a manifest rebuilt from parsed fields is refused");
	}
	c2 = ne_manifest_canonical(&m2);
	if (!c2 || strcmp(c1, c2) != 0)
		die("canonical form differs after a round trip");
	free(c1);
	free(c2);
}

/* The key file text equals the formatted key, except that the final newline is optional. */
static void check_same_text(const uint8_t *data, size_t size, const char *buf, int n)
{
	if (n < 0 || !((size_t)n == size || (size_t)n == size + 1) || memcmp(buf, data, size) != 0)
		die("a key file does not format back to itself");
}

static void fuzz_pubkey(const uint8_t *data, size_t size)
{
	struct ne_pubkey pk;
	char err[256], buf[512];

	poison(&pk, sizeof(pk));
	if (ne_pubkey_parse((const char *)data, size, &pk, err, sizeof(err)) < 0) {
		check_poisoned(&pk, sizeof(pk));
		return;
	}
	if (!ne_team_valid(pk.team))
		die("accepted an invalid team");
	check_same_text(data, size, buf, ne_pubkey_format(&pk, buf, sizeof(buf)));
}

static void fuzz_seckey(const uint8_t *data, size_t size)
{
	struct ne_seckey sk;
	struct ne_pubkey pk;
	char err[256], buf[512];

	poison(&sk, sizeof(sk));
	if (ne_seckey_parse((const char *)data, size, &sk, err, sizeof(err)) < 0) {
		check_poisoned(&sk, sizeof(sk));
		return;
	}
	check_same_text(data, size, buf, ne_seckey_format(&sk, buf, sizeof(buf)));
	ne_seckey_public(&sk, &pk);
	if (memcmp(pk.key, sk.key + 32, 32) != 0)
		die("accepted a secret key whose halves disagree");
}

static void fuzz_base64(const uint8_t *data, size_t size)
{
	char text[128], back[64];
	uint8_t key[32];

	if (size >= sizeof(text))
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	memset(key, 0xa5, sizeof(key));
	if (ne_pubkey_from_base64(text, key) < 0) {
		check_poisoned(key, sizeof(key));
		return;
	}
	ne_pubkey_to_base64(key, back, sizeof(back));
	if (strcmp(back, text) != 0)
		die("base64 key does not encode back to itself");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_manifest(data, size);
	if (size == 0)
		return 0;
	switch (data[0]) {
	case 'P': fuzz_pubkey(data + 1, size - 1); break;
	case 'S': fuzz_seckey(data + 1, size - 1); break;
	case 'B': fuzz_base64(data + 1, size - 1); break;
	default: break;
	}
	return 0;
}

/* Valid inputs of each kind, from a fixed seed (tests/fuzz/corpus/manifest/ was written
 * with -write_seeds). */
void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static const char manifest[] =
		"# hello\n[Extension]\nIdentifier = com.example.hello\nVersion = 3\n"
		"ShortVersion = 1.2.0-rc.1+b7\nTeam = EXAMPLE123\nExecutable = bin/netext-hello\n"
		"Description = Says hello; politely\nProviders = message, filter-data dns-proxy\n"
		"Permissions = network\nX-Vendor = 1\n";
	uint8_t seed[32], pkb[32];
	struct ne_seckey sk;
	struct ne_pubkey pk;
	char buf[600];
	int n;

	add((const uint8_t *)manifest, sizeof(manifest) - 1, userdata);
	if (sodium_init() < 0)
		die("sodium_init");
	memset(seed, 7, sizeof(seed));
	crypto_sign_ed25519_seed_keypair(pkb, sk.key, seed);
	strcpy(sk.team, "EXAMPLE123");
	ne_seckey_public(&sk, &pk);
	buf[0] = 'P';
	n = ne_pubkey_format(&pk, buf + 1, sizeof(buf) - 1);
	add((const uint8_t *)buf, (size_t)n + 1, userdata);
	buf[0] = 'S';
	n = ne_seckey_format(&sk, buf + 1, sizeof(buf) - 1);
	add((const uint8_t *)buf, (size_t)n + 1, userdata);
	buf[0] = 'B';
	ne_pubkey_to_base64(pk.key, buf + 1, sizeof(buf) - 1);
	add((const uint8_t *)buf, strlen(buf), userdata);
}
