/* Managed policy: drop-in INI files in a directory (default /etc/netext/policy.d), merged
 * as docs/lifecycle.md says. Read on every activation request and at start-up.
 *
 * Trust: the files are root's, but they are still parsed strictly (libinih, every value
 * checked); a malformed file is logged and ignored as a whole, never half-applied. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle.h"

#define POLICY_MAX_FILES 256
#define POLICY_MAX_KEYS 16 /* per team */

struct policy_team {
	char team[NE_TEAM_MAX + 1];
	struct ne_pubkey keys[POLICY_MAX_KEYS];
	unsigned n_keys;
	bool approve;          /* default true; "no" in any file wins */
	char **extensions;     /* identifiers auto-approved; n_extensions == 0: all of the team */
	size_t n_extensions;
};

struct policy {
	bool allow_user_overrides; /* default true */
	bool allow_downgrade;      /* default true */
	uint32_t allowed_types;    /* bit (1 << ne_provider_type); 0: all types */
	char **non_removable;
	size_t n_non_removable;
	struct policy_team *teams;
	size_t n_teams;
	unsigned n_files;          /* files applied */
};

void policy_init(struct policy *p); /* the empty policy: defaults above */
void policy_clear(struct policy *p);

/* Parses one drop-in's text and merges it into p. On error p is unchanged and err says
 * "NAME line N: ...". */
int policy_merge_text(struct policy *p, const char *name, const char *text, size_t len,
		      char *err, size_t errlen);

/* policy_init + every "*.conf" regular file of dir in lexical order (at most
 * POLICY_MAX_FILES, each at most 64 KiB). A missing dir is the empty policy; a bad file is
 * logged (log_warnx) and skipped. Returns 0, or a negative errno when dir exists but cannot
 * be read (p is then the empty policy). p is overwritten, not freed: policy_clear an old
 * policy first. Files are "*.conf" not starting with '.'; symlinks to regular files are
 * followed; beyond POLICY_MAX_FILES the rest are ignored with a warning. */
int policy_load(struct policy *p, const char *dir);

const struct policy_team *policy_find_team(const struct policy *p, const char *team);
/* Every trusted key of every team, for ne_bundle_verify; *ret is malloc'ed (free it). */
int policy_trusted_keys(const struct policy *p, struct ne_pubkey **ret, size_t *ret_n);
/* A [Team] section with Approve on covers this team and identifier. */
bool policy_approves(const struct policy *p, const char *team, const char *identifier);
/* NULL when every provider type of m is allowed, else the name of the first refused one. */
const char *policy_refused_type(const struct policy *p, const struct ne_manifest *m);
bool policy_non_removable(const struct policy *p, const char *identifier);
