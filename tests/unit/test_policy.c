/* Managed policy drop-ins (policy.c): every key, the merge rules of docs/lifecycle.md, the
 * strictness of the parser (a bad file changes nothing), and policy_load on a real
 * temporary directory. No root needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netext/netext.h>

#include "log.h"
#include "policy.h"

#define KEY0 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="   /* 32 zero bytes */
#define KEY1 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="   /* 0, 1, ..., 31 */
#define KEYF "//////////////////////////////////////////8="   /* 32 bytes of 0xff */

static int merge(struct policy *p, const char *name, const char *text, char *err, size_t errlen)
{
	return policy_merge_text(p, name, text, strlen(text), err, errlen);
}

/* Merges text and fails the test with the message if it is refused. */
static void merge_ok(struct policy *p, const char *text)
{
	char err[512] = "";
	int r = merge(p, "t.conf", text, err, sizeof(err));

	if (r < 0)
		fail_msg("refused: %s", err);
}

/* text must be refused with exactly the message want, and leave p as it was. */
static void merge_bad(struct policy *p, const char *text, const char *want)
{
	struct policy_team before_team = { .team = "" };
	char err[512] = "";
	struct policy before = *p;

	if (p->n_teams)
		before_team = p->teams[0];
	assert_int_equal(merge(p, "bad.conf", text, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
	assert_int_equal(p->n_files, before.n_files);
	assert_int_equal(p->allow_user_overrides, before.allow_user_overrides);
	assert_int_equal(p->allow_downgrade, before.allow_downgrade);
	assert_int_equal(p->allowed_types, before.allowed_types);
	assert_int_equal(p->n_non_removable, before.n_non_removable);
	assert_int_equal(p->n_teams, before.n_teams);
	assert_ptr_equal(p->teams, before.teams);
	if (p->n_teams) {
		assert_int_equal(p->teams[0].n_keys, before_team.n_keys);
		assert_int_equal(p->teams[0].approve, before_team.approve);
		assert_int_equal(p->teams[0].n_extensions, before_team.n_extensions);
	}
}

static struct ne_manifest manifest(unsigned n, const uint16_t *types)
{
	struct ne_manifest m;
	unsigned i;

	memset(&m, 0, sizeof(m));
	strcpy(m.identifier, "com.example.hello");
	strcpy(m.team, "EXAMPLE123");
	for (i = 0; i < n; i++)
		m.providers[i] = types[i];
	m.n_providers = n;
	return m;
}

static void test_defaults(void **state)
{
	static const uint16_t types[] = { NE_PROVIDER_PACKET_TUNNEL, NE_PROVIDER_DNS_PROXY };
	struct ne_manifest m = manifest(2, types);
	struct ne_pubkey *keys = (void *)1;
	struct policy p;
	size_t n = 99;

	policy_init(&p);
	assert_true(p.allow_user_overrides);
	assert_true(p.allow_downgrade);
	assert_int_equal(p.allowed_types, 0);
	assert_int_equal(p.n_teams, 0);
	assert_int_equal(p.n_files, 0);
	assert_null(policy_refused_type(&p, &m));
	assert_false(policy_approves(&p, "EXAMPLE123", "com.example.hello"));
	assert_false(policy_non_removable(&p, "com.example.hello"));
	assert_null(policy_find_team(&p, "EXAMPLE123"));
	assert_int_equal(policy_trusted_keys(&p, &keys, &n), 0);
	assert_null(keys);
	assert_int_equal(n, 0);
	/* Comments, blank lines and empty sections change nothing but count as a file. */
	merge_ok(&p, "# nothing here\n\n; nor here\n[Policy]\n");
	assert_int_equal(p.n_files, 1);
	assert_true(p.allow_user_overrides);
	policy_clear(&p);
	policy_clear(NULL);
}

static void test_every_key(void **state)
{
	static const uint16_t ok_types[] = { NE_PROVIDER_FILTER_DATA, NE_PROVIDER_DNS_PROXY };
	static const uint16_t bad_types[] = { NE_PROVIDER_DNS_PROXY, NE_PROVIDER_PACKET_TUNNEL };
	struct ne_manifest ok = manifest(2, ok_types), bad = manifest(2, bad_types);
	const struct policy_team *t;
	struct ne_pubkey *keys = NULL;
	struct policy p;
	size_t n = 0;

	policy_init(&p);
	merge_ok(&p,
		 "[Policy]\n"
		 "AllowUserOverrides = no\n"
		 "AllowDowngrade = false\n"
		 "AllowedProviderTypes = filter-data, dns-proxy\n"
		 "NonRemovable = com.example.hello\n"
		 "\n"
		 "[Team EXAMPLE123]\n"
		 "Key = " KEY0 "\n"
		 "Key = " KEY1 "   # rotation\n"
		 "Approve = yes\n"
		 "Extensions = com.example.hello,com.example.dns\n");
	assert_false(p.allow_user_overrides);
	assert_false(p.allow_downgrade);
	assert_int_equal(p.allowed_types,
			 (1u << NE_PROVIDER_FILTER_DATA) | (1u << NE_PROVIDER_DNS_PROXY));
	assert_null(policy_refused_type(&p, &ok));
	assert_string_equal(policy_refused_type(&p, &bad), "packet-tunnel");
	assert_true(policy_non_removable(&p, "com.example.hello"));
	assert_false(policy_non_removable(&p, "com.example.dns"));

	t = policy_find_team(&p, "EXAMPLE123");
	assert_non_null(t);
	assert_true(t->approve);
	assert_int_equal(t->n_keys, 2);
	assert_string_equal(t->keys[0].team, "EXAMPLE123");
	assert_int_equal(t->keys[0].key[0], 0);
	assert_int_equal(t->keys[1].key[31], 31);
	assert_int_equal(t->n_extensions, 2);
	assert_true(policy_approves(&p, "EXAMPLE123", "com.example.hello"));
	assert_true(policy_approves(&p, "EXAMPLE123", "com.example.dns"));
	assert_false(policy_approves(&p, "EXAMPLE123", "com.example.other"));
	assert_false(policy_approves(&p, "OTHER", "com.example.hello"));

	assert_int_equal(policy_trusted_keys(&p, &keys, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(keys[1].team, "EXAMPLE123");
	assert_int_equal(keys[1].key[5], 5);
	free(keys);
	policy_clear(&p);
	assert_int_equal(p.n_teams, 0);
	assert_true(p.allow_downgrade);
}

static void test_booleans(void **state)
{
	static const char *const yes[] = { "yes", "true", "1" }, *const no[] = { "no", "false", "0" };
	char text[128];
	struct policy p;
	size_t i;

	for (i = 0; i < 3; i++) {
		policy_init(&p);
		snprintf(text, sizeof(text), "[Policy]\nAllowDowngrade = %s\n", yes[i]);
		merge_ok(&p, text);
		assert_true(p.allow_downgrade);
		snprintf(text, sizeof(text), "[Team T]\nApprove=%s\n", no[i]);
		merge_ok(&p, text);
		assert_false(policy_find_team(&p, "T")->approve);
		snprintf(text, sizeof(text), "[Policy]\nAllowDowngrade = %s\n", no[i]);
		merge_ok(&p, text);
		assert_false(p.allow_downgrade);
		policy_clear(&p);
	}
	policy_init(&p);
	merge_bad(&p, "[Policy]\nAllowDowngrade = Yes\n",
		  "bad.conf line 2: AllowDowngrade must be yes, no, true, false, 1 or 0");
	merge_bad(&p, "[Policy]\nAllowDowngrade = on\n",
		  "bad.conf line 2: AllowDowngrade must be yes, no, true, false, 1 or 0");
	merge_bad(&p, "[Policy]\nAllowDowngrade = yes no\n",
		  "bad.conf line 2: AllowDowngrade must be yes, no, true, false, 1 or 0");
	/* Within one file too, "no" wins whatever the order. */
	merge_ok(&p, "[Policy]\nAllowUserOverrides = no\nAllowUserOverrides = yes\n");
	assert_false(p.allow_user_overrides);
	policy_clear(&p);
}

/* Two files: lists are unions (deduplicated), booleans the most restrictive, team keys
 * the union, Approve = no wins whichever file says it. */
static void test_merge_two_files(void **state)
{
	const struct policy_team *t;
	struct ne_pubkey *keys = NULL;
	struct policy p;
	size_t n = 0;

	policy_init(&p);
	merge_ok(&p,
		 "[Policy]\n"
		 "AllowUserOverrides = no\n"
		 "AllowedProviderTypes = filter-data\n"
		 "NonRemovable = com.example.a com.example.b\n"
		 "[Team AAA]\n"
		 "Key = " KEY0 "\n"
		 "Approve = no\n"
		 "Extensions = com.example.a\n"
		 "[Team BBB]\n"
		 "Key = " KEY1 "\n");
	merge_ok(&p,
		 "[Policy]\n"
		 "AllowUserOverrides = yes\n"
		 "AllowDowngrade = no\n"
		 "AllowedProviderTypes = dns-proxy filter-data\n"
		 "NonRemovable = com.example.b, com.example.c\n"
		 "[Team AAA]\n"
		 "Key = " KEY0 "\n"
		 "Key = " KEYF "\n"
		 "Approve = yes\n"
		 "Extensions = com.example.a com.example.z\n"
		 "[Team BBB]\n"
		 "Key = " KEY1 "\n");
	assert_int_equal(p.n_files, 2);
	assert_false(p.allow_user_overrides);
	assert_false(p.allow_downgrade);
	assert_int_equal(p.allowed_types,
			 (1u << NE_PROVIDER_FILTER_DATA) | (1u << NE_PROVIDER_DNS_PROXY));
	assert_int_equal(p.n_non_removable, 3);
	assert_true(policy_non_removable(&p, "com.example.a"));
	assert_true(policy_non_removable(&p, "com.example.c"));
	assert_int_equal(p.n_teams, 2);

	t = policy_find_team(&p, "AAA");
	assert_non_null(t);
	assert_false(t->approve);
	assert_int_equal(t->n_keys, 2);
	assert_int_equal(t->n_extensions, 2);
	assert_false(policy_approves(&p, "AAA", "com.example.a"));

	t = policy_find_team(&p, "BBB");
	assert_non_null(t);
	assert_true(t->approve);
	assert_int_equal(t->n_keys, 1);
	assert_int_equal(t->n_extensions, 0);   /* absent everywhere: every identifier */
	assert_true(policy_approves(&p, "BBB", "org.other.anything"));

	assert_int_equal(policy_trusted_keys(&p, &keys, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(keys[0].team, "AAA");
	assert_string_equal(keys[2].team, "BBB");
	free(keys);

	/* An Extensions list in a later file narrows "every identifier" to the union of the
	 * lists given: adding a file never widens what is approved. */
	merge_ok(&p, "[Team BBB]\nExtensions = org.other.one\n");
	assert_true(policy_approves(&p, "BBB", "org.other.one"));
	assert_false(policy_approves(&p, "BBB", "org.other.anything"));
	policy_clear(&p);
}

static void test_dedupe(void **state)
{
	struct policy p;

	policy_init(&p);
	merge_ok(&p,
		 "[Policy]\n"
		 "NonRemovable = com.example.a com.example.a,com.example.a\n"
		 "NonRemovable = com.example.a\n"
		 "AllowedProviderTypes = message message\n"
		 "[Team T]\n"
		 "Key = " KEY0 "\n"
		 "Key = " KEY0 "\n"
		 "Extensions = com.example.a com.example.a\n"
		 "[Team T]\n"
		 "Extensions = com.example.a\n");
	merge_ok(&p, "[Policy]\nNonRemovable = com.example.a\n[Team T]\nKey = " KEY0 "\n");
	assert_int_equal(p.n_non_removable, 1);
	assert_int_equal(p.allowed_types, 1u << NE_PROVIDER_MESSAGE);
	assert_int_equal(p.n_teams, 1);
	assert_int_equal(p.teams[0].n_keys, 1);
	assert_int_equal(p.teams[0].n_extensions, 1);
	policy_clear(&p);
}

/* A [Team] section without Key approves but makes nothing trusted. */
static void test_team_without_key(void **state)
{
	struct ne_pubkey *keys = (void *)1;
	struct policy p;
	size_t n = 1;

	policy_init(&p);
	merge_ok(&p, "[Team NOKEY]\n");
	assert_non_null(policy_find_team(&p, "NOKEY"));
	assert_true(policy_approves(&p, "NOKEY", "com.example.x"));
	assert_int_equal(policy_trusted_keys(&p, &keys, &n), 0);
	assert_int_equal(n, 0);
	assert_null(keys);
	policy_clear(&p);
}

static void test_key_limit(void **state)
{
	char text[4096], b64[64];
	struct policy p;
	size_t len;
	int i;

	/* POLICY_MAX_KEYS + 1 distinct keys: 32 bytes whose first base64 digit is A, B, C... */
	policy_init(&p);
	len = (size_t)snprintf(text, sizeof(text), "[Team T]\n");
	for (i = 0; i < POLICY_MAX_KEYS; i++) {
		snprintf(b64, sizeof(b64), "%c%s", 'A' + i, KEY0 + 1);
		len += (size_t)snprintf(text + len, sizeof(text) - len, "Key = %s\n", b64);
	}
	merge_ok(&p, text);
	assert_int_equal(p.teams[0].n_keys, POLICY_MAX_KEYS);
	/* The 17th key in one file names its line; across files, the file that adds it. */
	snprintf(b64, sizeof(b64), "%c%s", 'A' + POLICY_MAX_KEYS, KEY0 + 1);
	len += (size_t)snprintf(text + len, sizeof(text) - len, "Key = %s\n", b64);
	merge_bad(&p, text, "bad.conf line 18: team T has more than 16 keys");
	snprintf(text, sizeof(text), "[Team T]\nKey = %s\n", b64);
	merge_bad(&p, text, "bad.conf: team T would have more than 16 keys");
	assert_int_equal(p.teams[0].n_keys, POLICY_MAX_KEYS);
	policy_clear(&p);
}

static void test_rejected(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{ "[Policy]\nAllowDowngrades = no\n",
		  "bad.conf line 2: unknown key 'AllowDowngrades' in [Policy]" },
		{ "[Policy]\nallowdowngrade = no\n",
		  "bad.conf line 2: unknown key 'allowdowngrade' in [Policy]" },
		{ "[Policy]\nKey = " KEY0 "\n", "bad.conf line 2: unknown key 'Key' in [Policy]" },
		{ "[Team T]\nAllowDowngrade = no\n",
		  "bad.conf line 2: unknown key 'AllowDowngrade' in [Team T]" },
		{ "[Policy]\n[Polcy]\n", "bad.conf line 2: unknown section [Polcy]" },
		{ "[policy]\n", "bad.conf line 1: unknown section [policy]" },
		{ "[Team]\n", "bad.conf line 1: unknown section [Team]" },
		{ "[Team lower]\n",
		  "bad.conf line 1: invalid team identifier 'lower' (1-32 of A-Z, 0-9)" },
		{ "[Team  T]\n", "bad.conf line 1: invalid team identifier ' T' (1-32 of A-Z, 0-9)" },
		{ "[Team ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456]\n",
		  "bad.conf line 1: invalid team identifier 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456' "
		  "(1-32 of A-Z, 0-9)" },
		{ "[Policy] x\n", "bad.conf line 1: text after the section header" },
		{ "[Policy\n", "bad.conf line 1: section header without ']'" },
		{ "AllowDowngrade = no\n", "bad.conf line 1: key outside a section" },
		{ "[Policy]\nAllowDowngrade\n",
		  "bad.conf line 2: expected a section header or KEY = VALUE" },
		{ "[Policy]\n= no\n", "bad.conf line 2: key name missing" },
		{ "[Policy]\nAllowDowngrade =\n", "bad.conf line 2: AllowDowngrade needs a value" },
		{ "[Policy]\nNonRemovable = # nothing\n",
		  "bad.conf line 2: NonRemovable needs a value" },
		{ "[Policy]\nNonRemovable = com.example.a\n  com.example.b\n",
		  "bad.conf line 3: indented line (continuation lines are not supported)" },
		{ "[Policy]\n  [Team T]\n",
		  "bad.conf line 2: indented line (continuation lines are not supported)" },
		{ "[Policy]\nAllowedProviderTypes = filter-data vpn\n",
		  "bad.conf line 2: unknown provider type 'vpn'" },
		{ "[Policy]\nNonRemovable = hello\n",
		  "bad.conf line 2: invalid extension identifier 'hello'" },
		{ "[Policy]\nNonRemovable = com..example\n",
		  "bad.conf line 2: invalid extension identifier 'com..example'" },
		{ "[Policy]\nNonRemovable = com.example.\n",
		  "bad.conf line 2: invalid extension identifier 'com.example.'" },
		{ "[Policy]\nNonRemovable = com.exa_mple\n",
		  "bad.conf line 2: invalid extension identifier 'com.exa_mple'" },
		{ "[Team T]\nExtensions = com.example.a#x\n",
		  "bad.conf line 2: invalid extension identifier 'com.example.a#x'" },
		{ "[Team T]\nKey = AAAA\n",
		  "bad.conf line 2: Key must be one base64 ed25519 public key (32 bytes)" },
		{ "[Team T]\nKey = " KEY0 " " KEY1 "\n",
		  "bad.conf line 2: Key must be one base64 ed25519 public key (32 bytes)" },
		{ "[Team T]\nKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
		  "bad.conf line 2: Key must be one base64 ed25519 public key (32 bytes)" },
		{ "[Team T]\nKey = //////////////////////////////////////////9=\n",
		  "bad.conf line 2: Key must be one base64 ed25519 public key (32 bytes)" },
		{ "[Team T]\nKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==\n",
		  "bad.conf line 2: Key must be one base64 ed25519 public key (32 bytes)" },
	};
	struct policy p;
	size_t i;

	policy_init(&p);
	merge_ok(&p, "[Team T]\nKey = " KEY0 "\n");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("case %zu\n", i);
		merge_bad(&p, cases[i].text, cases[i].err);
	}
	/* A good first half is not applied either. */
	merge_bad(&p, "[Policy]\nAllowDowngrade = no\nNonRemovable = com.example.a\n"
		  "[Team T]\nKey = " KEY1 "\n[Team NEW]\nApprove = no\nBogus = 1\n",
		  "bad.conf line 8: unknown key 'Bogus' in [Team NEW]");
	assert_true(p.allow_downgrade);
	assert_null(policy_find_team(&p, "NEW"));
	assert_int_equal(p.teams[0].n_keys, 1);
	policy_clear(&p);
}

/* What libinih cannot see: over-long lines, NUL bytes, oversized files. */
static void test_raw_limits(void **state)
{
	char line[256], *big, err[256] = "";
	struct policy p;
	size_t n;

	policy_init(&p);
	/* 199 bytes is the longest line (inih's buffer is 200 with the NUL). */
	n = (size_t)snprintf(line, sizeof(line), "[Policy]\nNonRemovable = com.example.a");
	memset(line + n, ' ', 199 - (n - 9));
	line[9 + 199] = '\0';
	assert_int_equal(strlen(line), 9 + 199);
	merge_ok(&p, line);
	line[9 + 199] = ' ';
	line[9 + 200] = '\0';
	merge_bad(&p, line, "bad.conf line 2: line longer than 199 bytes");

	assert_int_equal(policy_merge_text(&p, "nul.conf", "[Policy]\n\nA\0 = yes\n", 18, err,
					   sizeof(err)), -EINVAL);
	assert_string_equal(err, "nul.conf line 3: NUL byte");

	/* CRLF line ends and a UTF-8 byte order mark are fine; the last line may lack '\n'. */
	merge_ok(&p, "\xef\xbb\xbf[Policy]\r\nAllowDowngrade = no\r\nNonRemovable = a.b");
	assert_false(p.allow_downgrade);
	assert_true(policy_non_removable(&p, "a.b"));

	/* 64 KiB exactly is accepted, one byte more is not. */
	big = malloc(64 * 1024 + 2);
	assert_non_null(big);
	memset(big, '\n', 64 * 1024 + 1);
	memcpy(big, "[Policy]\n# padding", 18);
	assert_int_equal(policy_merge_text(&p, "big.conf", big, 64 * 1024, err, sizeof(err)), 0);
	assert_int_equal(policy_merge_text(&p, "big.conf", big, 64 * 1024 + 1, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "big.conf: larger than 65536 bytes");
	free(big);
	assert_int_equal(p.n_files, 3);
	policy_clear(&p);
}

static void test_refused_type(void **state)
{
	static const uint16_t one[] = { NE_PROVIDER_MESSAGE };
	static const uint16_t two[] = { NE_PROVIDER_MESSAGE, NE_PROVIDER_ENDPOINT_SECURITY };
	struct ne_manifest m1 = manifest(1, one), m2 = manifest(2, two);
	struct policy p;

	policy_init(&p);
	merge_ok(&p, "[Policy]\nAllowedProviderTypes = message\n");
	assert_null(policy_refused_type(&p, &m1));
	assert_string_equal(policy_refused_type(&p, &m2), "endpoint-security");
	merge_ok(&p, "[Policy]\nAllowedProviderTypes = endpoint-security\n");
	assert_null(policy_refused_type(&p, &m2));
	policy_clear(&p);
}

/* ---- policy_load ------------------------------------------------------------------------ */

struct ring_search {
	const char *needle;
	int found;
};

static void ring_fn(unsigned long long seq, double realtime, int prio, const char *source,
		    const char *text, void *userdata)
{
	struct ring_search *s = userdata;

	(void)seq;
	(void)realtime;
	(void)prio;
	(void)source;
	if (strstr(text, s->needle))
		s->found++;
}

static int logged(const char *needle)
{
	struct ring_search s = { needle, 0 };

	log_ring_foreach(512, ring_fn, &s);
	return s.found;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static int dir_setup(void **state)
{
	char *dir = strdup("/tmp/netext-policy-XXXXXX");

	if (!dir || !mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int dir_teardown(void **state)
{
	char cmd[128];
	int r;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
	r = system(cmd);
	free(*state);
	return r == 0 ? 0 : -1;
}

static void test_load_missing_dir(void **state)
{
	char path[256];
	struct policy p;

	snprintf(path, sizeof(path), "%s/does-not-exist", (char *)*state);
	p.n_files = 7;
	assert_int_equal(policy_load(&p, path), 0);
	assert_int_equal(p.n_files, 0);
	assert_true(p.allow_user_overrides);
	assert_true(p.allow_downgrade);
	assert_int_equal(p.n_teams, 0);
	policy_clear(&p);

	/* A file where the directory should be is an error, and the empty policy. */
	write_file(*state, "plain", "x");
	snprintf(path, sizeof(path), "%s/plain", (char *)*state);
	assert_int_equal(policy_load(&p, path), -ENOTDIR);
	assert_int_equal(p.n_files, 0);
	policy_clear(&p);
}

static void test_load_dir(void **state)
{
	const char *dir = *state;
	char path[512], target[512];
	struct policy p;

	write_file(dir, "10-base.conf",
		   "[Policy]\nNonRemovable = com.example.a\n[Team AAA]\nKey = " KEY0 "\n");
	/* Lexical order: a 20 file sees 10's list; the bad one in between changes nothing. */
	write_file(dir, "15-bad.conf",
		   "[Policy]\nAllowDowngrade = no\n[Team AAA]\nApprove = no\nOops = 1\n");
	write_file(dir, "20-more.conf",
		   "[Policy]\nNonRemovable = com.example.b\nAllowUserOverrides = no\n");
	write_file(dir, "README", "[Nonsense]\n");
	write_file(dir, "30-ignored.conf.disabled", "[Nonsense]\n");
	write_file(dir, ".hidden.conf", "[Nonsense]\n");
	snprintf(path, sizeof(path), "%s/40-dir.conf", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/50-fifo.conf", dir);
	assert_int_equal(mkfifo(path, 0644), 0);
	/* A symlink to a regular file is read (docs: admins may link drop-ins). */
	write_file(dir, "target", "[Team BBB]\nApprove = no\n");
	snprintf(path, sizeof(path), "%s/60-link.conf", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	assert_int_equal(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/70-dangling.conf", dir);
	assert_int_equal(symlink("/nonexistent/netext", path), 0);

	assert_int_equal(policy_load(&p, dir), 0);
	assert_int_equal(p.n_files, 3);
	assert_true(p.allow_downgrade);
	assert_false(p.allow_user_overrides);
	assert_int_equal(p.n_non_removable, 2);
	assert_true(policy_approves(&p, "AAA", "com.example.a"));
	assert_int_equal(policy_find_team(&p, "AAA")->n_keys, 1);
	assert_false(policy_approves(&p, "BBB", "com.example.a"));
	policy_clear(&p);

	snprintf(path, sizeof(path), "%s/15-bad.conf line 5: unknown key 'Oops' in [Team AAA]; "
		 "file ignored", dir);
	assert_true(logged(path) >= 1);
	snprintf(path, sizeof(path), "%s/40-dir.conf is not a regular file", dir);
	assert_true(logged(path) >= 1);
	snprintf(path, sizeof(path), "%s/50-fifo.conf is not a regular file", dir);
	assert_true(logged(path) >= 1);
	snprintf(path, sizeof(path), "cannot read %s/70-dangling.conf", dir);
	assert_true(logged(path) >= 1);
	assert_int_equal(logged(".hidden.conf"), 0);
	assert_int_equal(logged("README"), 0);
}

/* Files (or a directory) that others than root could change are not policy: they could add
 * trusted keys. */
static void test_load_writable(void **state)
{
	const char *dir = *state;
	char path[512];
	struct policy p;

	write_file(dir, "10-ok.conf", "[Team AAA]\nKey = " KEY0 "\n");
	write_file(dir, "20-open.conf", "[Team BBB]\nKey = " KEY0 "\n");
	snprintf(path, sizeof(path), "%s/10-ok.conf", dir);
	assert_int_equal(chmod(path, 0644), 0);
	snprintf(path, sizeof(path), "%s/20-open.conf", dir);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(policy_load(&p, dir), 0);
	assert_int_equal(p.n_files, 1);
	assert_non_null(policy_find_team(&p, "AAA"));
	assert_null(policy_find_team(&p, "BBB"));
	policy_clear(&p);
	snprintf(path, sizeof(path), "%s/20-open.conf may be changed by others than root", dir);
	assert_true(logged(path) >= 1);

	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(policy_load(&p, dir), -EPERM);
	assert_int_equal(p.n_teams, 0);
	policy_clear(&p);
	assert_int_equal(chmod(dir, 0700), 0);
}

/* More than POLICY_MAX_FILES: the first ones in lexical order are read. */
static void test_load_too_many(void **state)
{
	const char *dir = *state;
	char name[64];
	struct policy p;
	int i;

	for (i = 0; i < POLICY_MAX_FILES + 2; i++) {
		snprintf(name, sizeof(name), "%04d.conf", i);
		write_file(dir, name, i < POLICY_MAX_FILES ? "[Policy]\n" :
			   "[Policy]\nAllowDowngrade = no\n");
	}
	assert_int_equal(policy_load(&p, dir), 0);
	assert_int_equal(p.n_files, POLICY_MAX_FILES);
	assert_true(p.allow_downgrade);
	assert_true(logged("only the first 256 are read") >= 1);
	policy_clear(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_merge_two_files),
		cmocka_unit_test(test_dedupe),
		cmocka_unit_test(test_team_without_key),
		cmocka_unit_test(test_key_limit),
		cmocka_unit_test(test_rejected),
		cmocka_unit_test(test_raw_limits),
		cmocka_unit_test(test_refused_type),
		cmocka_unit_test_setup_teardown(test_load_missing_dir, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_load_dir, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_load_too_many, dir_setup, dir_teardown),
		cmocka_unit_test_setup_teardown(test_load_writable, dir_setup, dir_teardown),
	};

	log_init("test-policy", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
