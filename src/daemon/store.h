/* The daemon's persistent state: extensions, their configurations and options, and the
 * split-DNS routes of the control API, in one SQLite database under the state directory
 * (<state_dir>/netext.db).
 *
 * One daemon owns a state directory: store_open takes an exclusive flock on
 * <state_dir>/lock and keeps it until store_close. The handle is for one thread.
 * Every change runs in its own transaction and either happens whole or not at all.
 * Functions return 0 or a negative errno; outputs are written only on success. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

struct store;

/* What a bundle's manifest said, kept with the extension or request made from it.
 * Developer registrations (no bundle) leave it zeroed. */
struct store_bundle {
	char team[33];
	uint32_t version;
	char short_version[64];
	char dir[256];           /* directory name under <state_dir>/bundles; "" without a bundle */
	char digest[65];
	char description[512];
	char providers[256];     /* provider type names, space-separated */
	unsigned permissions;    /* NE_PERM_* (bundle.h) */
};

struct store_extension {
	char identifier[128];
	char executable[4096];
	char user[64];
	bool enabled;
	bool developer;
	int64_t created; /* unix seconds; 0 on put means "now" */
	char state[16];  /* "enabled" or "deactivating"; "" on put means "enabled" */
	struct store_bundle b;
};

/* An activation request waiting for approval; its bundle is already staged in the store. */
struct store_request {
	int64_t id;              /* assigned by store_request_put */
	char identifier[128];
	char executable[4096];   /* absolute path inside the staged bundle */
	struct store_bundle b;
	char replace[8];         /* "ask", "replace" or "cancel" */
	uint32_t requester_uid;
	int32_t requester_pid;
	char source[4096];       /* the path the requester named, for messages */
	int64_t created;         /* 0 on put means "now" */
};

/* Options are owned by the struct: store_config_get fills them, store_config_clear frees
 * them. keys[i] goes with values[i]; the order is kept. */
struct store_config {
	char name[128];
	char extension[128];
	int provider_type;
	bool enabled;
	bool fail_open;
	int64_t created; /* unix seconds; 0 on put means "now" */
	size_t n_options;
	char **keys;
	char **values;
};

/* A split-DNS route added through the control API (dnsroutes.h holds the parsed form). The
 * store keeps text: validating it is dnsroutes' business, done again when it is loaded. */
struct store_dns_route {
	char suffix[256];  /* normalized; "." for the default route */
	bool exempt;       /* then servers is "" */
	char servers[512]; /* space-separated, as dnsroutes_format_server() writes them */
	int64_t created;   /* unix seconds; 0 on put means "now"; kept when a route is replaced */
};

/* Creates state_dir (0700) when missing, locks it, opens the database and brings its
 * schema up to date. -EBUSY when another process holds the directory,
 * -EPROTONOSUPPORT when the database was written by a newer netextd. */
int store_open(const char *state_dir, struct store **ret);
void store_close(struct store *s);
int store_schema_version(struct store *s);

/* put: -EEXIST when the identifier is taken. update: all fields but created; -ENOENT
 * when absent. delete also removes the extension's configurations. */
int store_extension_put(struct store *s, const struct store_extension *e);
int store_extension_update(struct store *s, const struct store_extension *e);
int store_extension_get(struct store *s, const char *identifier, struct store_extension *ret);
int store_extension_delete(struct store *s, const char *identifier);
/* Calls fn for each extension in identifier order; a non-zero return from fn stops the
 * walk and is returned. fn must not change the store. */
int store_extension_foreach(struct store *s, int (*fn)(const struct store_extension *e, void *userdata),
			    void *userdata);

/* Installs or replaces (same identifier: configurations kept) e, and deletes request
 * request_id (when > 0), in one transaction. */
int store_extension_install(struct store *s, const struct store_extension *e, int64_t request_id);
/* -ENOENT when absent. */
int store_extension_set_state(struct store *s, const char *identifier, const char *state);

/* Adds r and, in the same transaction, deletes any request for the same identifier
 * (whose id, if any, is written to *ret_superseded; 0 otherwise). Sets r->id. */
int store_request_put(struct store *s, struct store_request *r, int64_t *ret_superseded);
int store_request_get(struct store *s, int64_t id, struct store_request *ret);
/* The request waiting for identifier; -ENOENT when there is none. */
int store_request_find(struct store *s, const char *identifier, struct store_request *ret);
int store_request_delete(struct store *s, int64_t id);
/* In id order; a non-zero return from fn stops the walk and is returned. */
int store_request_foreach(struct store *s, int (*fn)(const struct store_request *r, void *userdata),
			  void *userdata);
/* Deletes every extension, configuration and request in one transaction (DNS routes are
 * the administrator's, not the extensions': they stay). */
int store_reset(struct store *s);

/* put: -EEXIST when the name is taken, -ENOENT when the extension does not exist,
 * -EINVAL for duplicate option keys. */
int store_config_put(struct store *s, const struct store_config *c);
/* ret is overwritten on success (not cleared first); the caller frees it with
 * store_config_clear. */
int store_config_get(struct store *s, const char *name, struct store_config *ret);
int store_config_delete(struct store *s, const char *name);
int store_config_set_enabled(struct store *s, const char *name, bool enabled);
/* Like store_extension_foreach, in name order; extension NULL walks every configuration. */
int store_config_foreach(struct store *s, const char *extension,
			 int (*fn)(const struct store_config *c, void *userdata), void *userdata);
void store_config_clear(struct store_config *c);

/* Adds r, or replaces the route with the same suffix. -EINVAL for an empty suffix, servers
 * with an exempt route or none without. */
int store_dns_route_put(struct store *s, const struct store_dns_route *r);
/* -ENOENT when there is no route for suffix. */
int store_dns_route_delete(struct store *s, const char *suffix);
/* In suffix order; a non-zero return from fn stops the walk and is returned. */
int store_dns_route_foreach(struct store *s, int (*fn)(const struct store_dns_route *r, void *userdata),
			    void *userdata);

/* The migration runner, exposed for tests: brings db from its user_version to n by
 * applying migrations[version..n-1], each in its own transaction with its version bump,
 * so a failing step leaves the database at the last good version. */
int store_migrate(sqlite3 *db, const char *const *migrations, size_t n);
