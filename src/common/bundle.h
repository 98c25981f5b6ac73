/* Extension bundles: the manifest parser, ed25519 keys, signing and verification, and the
 * copy into the daemon's store. The formats are specified in docs/lifecycle.md.
 *
 * Trust: everything read here (manifest text, file names, links, signature files, key
 * files) is untrusted. Nothing is followed out of the bundle directory (openat with
 * O_NOFOLLOW all the way down), every count and size is bounded before use, and a bundle
 * is judged by the copy the daemon made, never by the source a requester could still change.
 *
 * Linked into netextd and netextctl (libsodium for ed25519 and SHA-256, libinih for INI);
 * not part of libnetext. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NE_BUNDLE_MANIFEST "extension.conf"
#define NE_BUNDLE_SIGNATURE "netext.sig"
#define NE_BUNDLE_MAX_ENTRIES 4096
#define NE_BUNDLE_MAX_DEPTH 16
#define NE_BUNDLE_MAX_BYTES (256ULL << 20)
#define NE_BUNDLE_PATH_MAX 1024
#define NE_MANIFEST_MAX (64 * 1024)
#define NE_MANIFEST_LINE_MAX 199
#define NE_TEAM_MAX 32
#define NE_IDENTIFIER_MAX 127
#define NE_MANIFEST_PROVIDERS_MAX 16

/* Each value maps to one control error code (ne_bundle_error_code). */
enum ne_bundle_error {
	NE_BUNDLE_OK = 0,
	NE_BUNDLE_NOT_FOUND,          /* extension-not-found: no directory or no manifest */
	NE_BUNDLE_MISSING_IDENTIFIER, /* missing-identifier */
	NE_BUNDLE_UNKNOWN_PROVIDER,   /* unknown-provider-type */
	NE_BUNDLE_INVALID,            /* validation-failed */
	NE_BUNDLE_BAD_SIGNATURE,      /* signature-invalid (also: unknown team, changed file) */
	NE_BUNDLE_SYSTEM,             /* internal: I/O error, out of memory or space */
};

/* "extension-not-found", ..., "internal". */
const char *ne_bundle_error_code(enum ne_bundle_error e);

#define NE_PERM_NETWORK 0x1u      /* "network": AF_INET / AF_INET6 sockets */
#define NE_PERM_ALL NE_PERM_NETWORK

struct ne_manifest {
	char identifier[NE_IDENTIFIER_MAX + 1];
	uint32_t version;                     /* 1 .. INT32_MAX */
	char short_version[64];
	char team[NE_TEAM_MAX + 1];
	char executable[NE_BUNDLE_PATH_MAX + 1]; /* relative to the bundle root */
	char description[512];
	uint16_t providers[NE_MANIFEST_PROVIDERS_MAX]; /* ne_provider_type, no duplicates */
	unsigned n_providers;                 /* >= 1 */
	unsigned permissions;                 /* NE_PERM_* */
};

/* Parses extension.conf text (need not be NUL-terminated). On failure err holds a message
 * such as "line 4: Version must be an integer from 1 to 2147483647". */
enum ne_bundle_error ne_manifest_parse(const char *text, size_t len, struct ne_manifest *ret,
				       char *err, size_t errlen);
/* The canonical form the signature covers (docs/lifecycle.md); malloc'ed, NULL on ENOMEM. */
char *ne_manifest_canonical(const struct ne_manifest *m);
/* "network" for NE_PERM_NETWORK; NULL for others. */
const char *ne_permission_name(unsigned bit);
/* Providers as "filter-data dns-proxy" and permissions as "network" (space-separated). */
void ne_manifest_providers_str(const struct ne_manifest *m, char *buf, size_t size);
void ne_manifest_permissions_str(const struct ne_manifest *m, char *buf, size_t size);
/* True for a valid team identifier (1-32 of [A-Z0-9]) / reverse-DNS identifier. */
bool ne_team_valid(const char *team);
bool ne_identifier_valid(const char *id);

/* ---- keys ---------------------------------------------------------------------- */

struct ne_pubkey {
	char team[NE_TEAM_MAX + 1];
	uint8_t key[32];
};

struct ne_seckey {
	char team[NE_TEAM_MAX + 1];
	uint8_t key[64]; /* libsodium's ed25519 secret key (seed + public key) */
};

/* Needs sodium_init(), which these functions call themselves. -EINVAL for a bad team. */
int ne_key_generate(const char *team, struct ne_seckey *sk, struct ne_pubkey *pk);
void ne_seckey_public(const struct ne_seckey *sk, struct ne_pubkey *pk);
/* The key file texts of docs/lifecycle.md ("netext-public-key-v1\nteam: ...\nkey: ...\n").
 * Return the length written, or -ENOSPC. */
int ne_pubkey_format(const struct ne_pubkey *pk, char *buf, size_t size);
int ne_seckey_format(const struct ne_seckey *sk, char *buf, size_t size);
/* Parse key files; -EINVAL with a message in err. */
int ne_pubkey_parse(const char *text, size_t len, struct ne_pubkey *ret, char *err, size_t errlen);
int ne_seckey_parse(const char *text, size_t len, struct ne_seckey *ret, char *err, size_t errlen);
/* The base64 of a public key as in "key:" lines and policy Key= values; -EINVAL if not
 * exactly 32 bytes of standard base64. */
int ne_pubkey_from_base64(const char *b64, uint8_t ret[32]);
void ne_pubkey_to_base64(const uint8_t key[32], char *buf, size_t size); /* size >= 45 */

/* ---- bundles ------------------------------------------------------------------- */

/* A bundle as read from a directory: manifest, the listing of its entries and, when it has
 * one, its parsed (not yet verified) signature file. */
struct ne_bundle {
	struct ne_manifest manifest;
	char *listing;              /* the signed text up to the signature line, recomputed;
				     * its key line is the signer's, "key: -" when unsigned */
	char digest[65];            /* sha256 hex of listing */
	uint64_t total_bytes;       /* of regular files, netext.sig not counted */
	unsigned n_entries;         /* entries listed (files, directories, links) */
	bool has_signature;         /* netext.sig present and well-formed */
	struct ne_pubkey signer;    /* team and key named in netext.sig */
	char *signed_listing;       /* netext.sig's text before "signature:" */
	uint8_t signature[64];
};

/* Reads and validates the bundle in dirfd (an O_DIRECTORY fd; not consumed). reader_uid
 * (uid_t)-1 skips the ownership rule; otherwise every entry must be owned by reader_uid or
 * be world-readable (docs/lifecycle.md). Checks the manifest, names, links, limits and the
 * executable, and computes the listing and digest. A signature file that is present but
 * malformed is NE_BUNDLE_BAD_SIGNATURE. */
enum ne_bundle_error ne_bundle_load(int dirfd, uid_t reader_uid, struct ne_bundle **ret,
				    char *err, size_t errlen);

/* Copies the bundle in src_dirfd into a new directory dst_name below dst_parent_fd (which
 * must not exist; created 0755), with the rules of ne_bundle_load applied while copying and
 * the store's modes (directories 0755, files 0644 or 0755, owned by the caller), fsyncs
 * every file and directory, then loads the copy into *ret. On failure the partial copy is
 * removed. An existing dst_name (left untouched) or a dst_name that is not a single valid
 * name is NE_BUNDLE_SYSTEM. The copy is not verified: call ne_bundle_verify on *ret. */
enum ne_bundle_error ne_bundle_copy(int src_dirfd, uid_t reader_uid, int dst_parent_fd,
				    const char *dst_name, struct ne_bundle **ret, char *err,
				    size_t errlen);

/* Verifies a loaded bundle: it has a signature, the signed listing equals the recomputed one
 * (else names the first differing entry), the signature is valid for the signer key, the
 * signer's team is the manifest's team, and the signer key is one of trusted[] for that
 * team (else "team X is not trusted" / "key is not trusted for team X"). Every failure is
 * NE_BUNDLE_BAD_SIGNATURE. Passing &b->signer as the only trusted key checks integrity and
 * the signature without trust (netextctl verify without --key). */
enum ne_bundle_error ne_bundle_verify(const struct ne_bundle *b, const struct ne_pubkey *trusted,
				      size_t n_trusted, char *err, size_t errlen);

/* Signs the bundle in dirfd with sk (whose team must be the manifest's, else
 * NE_BUNDLE_BAD_SIGNATURE), replacing netext.sig atomically (write to a temporary file,
 * fsync, rename), whatever the old netext.sig held. */
enum ne_bundle_error ne_bundle_sign(int dirfd, const struct ne_seckey *sk, char *err,
				    size_t errlen);

void ne_bundle_free(struct ne_bundle *b);

/* Removes a directory tree below parent_fd without following links (for the store's
 * cleanup). Returns 0 or a negative errno; a missing name is 0. */
int ne_rmtree_at(int parent_fd, const char *name);
