/* libFuzzer harness for managed policy drop-ins (policy_merge_text). The files are root's,
 * but a typo must be refused whole, never crash the daemon or half-apply. Each input is
 * merged twice into one policy, so the merge of a non-empty policy is exercised too. */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy.h"

/* Invariants of any policy, however it was built. */
static void check(const struct policy *p, unsigned files)
{
	struct ne_pubkey *keys = NULL;
	size_t i, n = 0, total = 0;

	if (p->n_files != files)
		__builtin_trap();
	for (i = 0; i < p->n_teams; i++) {
		if (p->teams[i].n_keys > POLICY_MAX_KEYS || !p->teams[i].team[0] ||
		    strlen(p->teams[i].team) > NE_TEAM_MAX)
			__builtin_trap();
		total += p->teams[i].n_keys;
	}
	if (policy_trusted_keys(p, &keys, &n) == 0) {
		if (n != total)
			__builtin_trap();
		free(keys);
	}
	for (i = 0; i < p->n_non_removable; i++)
		if (!policy_non_removable(p, p->non_removable[i]))
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy p;
	char err[512];
	unsigned files = 0;

	policy_init(&p);
	if (policy_merge_text(&p, "fuzz.conf", (const char *)data, size, err, sizeof(err)) == 0)
		files++;
	else if (!err[0])
		__builtin_trap();   /* a refusal always says why */
	check(&p, files);
	if (policy_merge_text(&p, "fuzz.conf", (const char *)data, size, err, sizeof(err)) == 0)
		files++;
	check(&p, files);
	policy_clear(&p);
	return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static const char *const seeds[] = {
		"[Policy]\nAllowUserOverrides = no\nAllowDowngrade = yes\n"
		"AllowedProviderTypes = filter-data dns-proxy\nNonRemovable = com.example.hello\n",
		"[Team EXAMPLE123]\nKey = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
		"Approve = yes\nExtensions = com.example.hello, com.example.dns\n",
		"# comment\n; comment\n[Team A1]\nApprove = 0 # no\n[Policy]\nAllowDowngrade=false\n",
		"\xef\xbb\xbf[Policy]\r\nNonRemovable = a.b c.d\r\n[Team Z]\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		add((const uint8_t *)seeds[i], __builtin_strlen(seeds[i]), userdata);
}
