/* SQLite state of netextd (see store.h).
 *
 * Trust: the database lives in a root-owned 0700 directory, but it is still a file on disk
 * that an administrator may edit or that a crash may leave behind: text read back is
 * length-checked before it is copied into fixed buffers, and a schema newer than this code
 * is refused rather than guessed at. Callers are trusted to pass validated names; the
 * store checks them again because identifiers end up in paths and cgroup names. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct store {
	sqlite3 *db;
	int lock_fd;
};

/* Schema history. Entry i takes the database from user_version i to i + 1; entries are
 * never edited once released, changes go into a new entry. */
static const char *const store_migrations[] = {
	/* 1 */
	"CREATE TABLE extensions ("
	"  identifier TEXT PRIMARY KEY,"
	"  executable TEXT NOT NULL,"
	"  user TEXT NOT NULL,"
	"  enabled INTEGER NOT NULL,"
	"  developer INTEGER NOT NULL DEFAULT 1,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE configurations ("
	"  name TEXT PRIMARY KEY,"
	"  extension TEXT NOT NULL REFERENCES extensions(identifier) ON DELETE CASCADE,"
	"  provider_type INTEGER NOT NULL,"
	"  enabled INTEGER NOT NULL,"
	"  fail_open INTEGER NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE INDEX configurations_extension ON configurations(extension);"
	"CREATE TABLE configuration_options ("
	"  configuration TEXT NOT NULL REFERENCES configurations(name) ON DELETE CASCADE,"
	"  position INTEGER NOT NULL,"
	"  key TEXT NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY(configuration, key));",
	/* 2: bundles, lifecycle states and activation requests (docs/lifecycle.md) */
	"ALTER TABLE extensions ADD COLUMN state TEXT NOT NULL DEFAULT 'enabled';"
	"ALTER TABLE extensions ADD COLUMN team TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE extensions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE extensions ADD COLUMN short_version TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE extensions ADD COLUMN bundle TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE extensions ADD COLUMN digest TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE extensions ADD COLUMN description TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE extensions ADD COLUMN providers TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE extensions ADD COLUMN permissions INTEGER NOT NULL DEFAULT 1;"
	"CREATE TABLE requests ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  identifier TEXT NOT NULL UNIQUE,"
	"  executable TEXT NOT NULL,"
	"  team TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  short_version TEXT NOT NULL,"
	"  bundle TEXT NOT NULL,"
	"  digest TEXT NOT NULL,"
	"  description TEXT NOT NULL,"
	"  providers TEXT NOT NULL,"
	"  permissions INTEGER NOT NULL,"
	"  replace TEXT NOT NULL,"
	"  requester_uid INTEGER NOT NULL,"
	"  requester_pid INTEGER NOT NULL,"
	"  source TEXT NOT NULL,"
	"  created INTEGER NOT NULL);",
	/* 3: split-DNS routes added through the control API (docs/dns.md) */
	"CREATE TABLE dns_routes ("
	"  suffix TEXT PRIMARY KEY,"
	"  exempt INTEGER NOT NULL,"
	"  servers TEXT NOT NULL,"
	"  created INTEGER NOT NULL);",
};

/* Maps an SQLite result code to a negative errno and logs the database's message. */
static int sql_error(sqlite3 *db, int rc, const char *what)
{
	int ext = db ? sqlite3_extended_errcode(db) : rc;
	int r;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		r = -EBUSY;
		break;
	case SQLITE_CONSTRAINT:
		r = (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE) ? -EEXIST
											    : -EINVAL;
		break;
	case SQLITE_FULL:
		r = -ENOSPC;
		break;
	case SQLITE_NOMEM:
		r = -ENOMEM;
		break;
	default:
		r = -EIO;
		break;
	}
	log_warnx("store: %s: %s (sqlite %d)", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), ext);
	return r;
}

/* what names the statement in the log (migrations are too long to quote). */
static int exec_as(sqlite3 *db, const char *sql, const char *what)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sql_error(db, rc, what);
}

static int exec(sqlite3 *db, const char *sql)
{
	return exec_as(db, sql, sql);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, ret, NULL);

	return rc == SQLITE_OK ? 0 : sql_error(db, rc, sql);
}

/* Steps a statement that returns no rows and finalizes it. */
static int step_done(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st), r = 0;

	if (rc != SQLITE_DONE)
		r = sql_error(db, rc, sqlite3_sql(st));
	sqlite3_finalize(st);
	return r;
}

static int tx_begin(sqlite3 *db)
{
	return exec(db, "BEGIN IMMEDIATE");
}

/* Ends the transaction begun by tx_begin: commits when r is 0, rolls back otherwise (or
 * when the commit fails). Returns r or the commit's error. */
static int tx_end(sqlite3 *db, int r)
{
	if (r >= 0) {
		r = exec(db, "COMMIT");
		if (r >= 0)
			return r;
	}
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int user_version(sqlite3 *db, int *ret)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(db, "PRAGMA user_version", &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = sql_error(db, rc, "PRAGMA user_version");
		goto out;
	}
	*ret = sqlite3_column_int(st, 0);
out:
	sqlite3_finalize(st);
	return r;
}

static int migrate_one(sqlite3 *db, const char *sql, int to)
{
	char bump[64];
	int r;

	r = tx_begin(db);
	if (r < 0)
		return r;
	snprintf(bump, sizeof(bump), "migration to schema version %d", to);
	r = exec_as(db, sql, bump);
	if (r >= 0) {
		/* user_version lives in the database header, so the bump commits or rolls back
		 * together with the migration. */
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", to);
		r = exec(db, bump);
	}
	return tx_end(db, r);
}

int store_migrate(sqlite3 *db, const char *const *migrations, size_t n)
{
	int version, r;

	r = user_version(db, &version);
	if (r < 0)
		return r;
	if (version < 0 || (size_t)version > n) {
		log_warnx("store: database schema version %d is newer than this netextd knows (%zu); "
			  "refusing to touch it", version, n);
		return -EPROTONOSUPPORT;
	}
	for (; (size_t)version < n; version++) {
		r = migrate_one(db, migrations[version], version + 1);
		if (r < 0) {
			log_warnx("store: migration to schema version %d failed, staying at %d",
				  version + 1, version);
			return r;
		}
		log_info("store: migrated database to schema version %d", version + 1);
	}
	return 0;
}

static int path_join(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int make_dir(const char *dir)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_warn("store: mkdir %s", dir);
		return ne_negerrno();
	}
	return 0;
}

/* The lock is a separate file so that it is never replaced by SQLite and so that a second
 * daemon fails before it opens (or migrates) the database. */
static int lock_dir(const char *dir, int *ret_fd)
{
	char path[PATH_MAX];
	int fd, r;

	r = path_join(path, sizeof(path), dir, "lock");
	if (r < 0)
		return r;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		log_warn("store: open %s", path);
		return ne_negerrno();
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : ne_negerrno();
		if (r == -EBUSY)
			log_warnx("store: state directory %s is in use by another netextd", dir);
		else
			log_warn("store: flock %s", path);
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* SQLite opens its files with O_CLOEXEC on Linux, so extensions never inherit them. */
static int open_db(const char *dir, sqlite3 **ret)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	char path[PATH_MAX];
	sqlite3 *db = NULL;
	int r, rc;

#ifdef SQLITE_OPEN_EXRESCODE
	flags |= SQLITE_OPEN_EXRESCODE;
#endif
	r = path_join(path, sizeof(path), dir, "netext.db");
	if (r < 0)
		return r;
	rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		r = sql_error(db, rc, path);
		sqlite3_close(db);
		return r;
	}
	*ret = db;
	return 0;
}

static int configure(sqlite3 *db)
{
	sqlite3_stmt *st;
	int r;

	/* WAL keeps readers and the writer apart and makes commits cheap; NORMAL is durable
	 * across a daemon crash, and may lose only the last commits on power loss. */
	r = prepare(db, "PRAGMA journal_mode=WAL", &st);
	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) != SQLITE_TEXT ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		log_warnx("store: WAL journal not available, using the default journal");
	sqlite3_finalize(st);
	r = exec(db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON");
	if (r < 0)
		return r;
	sqlite3_busy_timeout(db, 2000);
	return 0;
}

int store_open(const char *state_dir, struct store **ret)
{
	struct store *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lock_fd = -1;
	r = make_dir(state_dir);
	if (r < 0)
		goto fail;
	r = lock_dir(state_dir, &s->lock_fd);
	if (r < 0)
		goto fail;
	r = open_db(state_dir, &s->db);
	if (r < 0)
		goto fail;
	r = configure(s->db);
	if (r < 0)
		goto fail;
	r = store_migrate(s->db, store_migrations, NE_ARRAY_SIZE(store_migrations));
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	store_close(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db && sqlite3_close(s->db) != SQLITE_OK)
		log_warnx("store: close: %s", sqlite3_errmsg(s->db));
	ne_closep(&s->lock_fd);
	free(s);
}

int store_schema_version(struct store *s)
{
	int version, r;

	r = user_version(s->db, &version);
	return r < 0 ? r : version;
}

/* Fixed-size text fields from callers must be terminated and non-empty. */
static bool field_ok(const char *f, size_t size)
{
	size_t n = strnlen(f, size);

	return n > 0 && n < size;
}

static int bind_text(sqlite3_stmt *st, int i, const char *text)
{
	return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

/* Copies column i into a fixed buffer; a value that does not fit means the database was
 * changed behind our back. */
static int column_copy(sqlite3_stmt *st, int i, char *buf, size_t size)
{
	const char *t = (const char *)sqlite3_column_text(st, i);

	if (!t || ne_strscpy(buf, t, size) < 0) {
		log_warnx("store: %s: column %d is NULL or too long", sqlite3_sql(st), i);
		return -EUCLEAN;
	}
	return 0;
}

static int64_t created_or_now(int64_t created)
{
	return created ? created : (int64_t)time(NULL);
}

/* 1 when the query (with one text parameter) returns a row, 0 when not. */
static int exists(sqlite3 *db, const char *sql, const char *key)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(db, sql, &st);
	if (r < 0)
		return r;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = 1;
	else if (rc != SQLITE_DONE)
		r = sql_error(db, rc, sql);
	sqlite3_finalize(st);
	return r;
}

/* Runs a one-parameter change and turns "no row changed" into -ENOENT. */
static int change_one(sqlite3 *db, const char *sql, const char *key)
{
	sqlite3_stmt *st;
	int r;

	r = tx_begin(db);
	if (r < 0)
		return r;
	r = prepare(db, sql, &st);
	if (r >= 0) {
		bind_text(st, 1, key);
		r = step_done(db, st);
	}
	if (r >= 0 && sqlite3_changes(db) == 0)
		r = -ENOENT;
	return tx_end(db, r);
}

static bool bundle_fields_ok(const struct store_bundle *b);

static int extension_valid(const struct store_extension *e)
{
	if (!field_ok(e->identifier, sizeof(e->identifier)) || !field_ok(e->executable, sizeof(e->executable)) ||
	    !field_ok(e->user, sizeof(e->user)) || !ne_name_valid(e->identifier, sizeof(e->identifier) - 1) ||
	    !memchr(e->state, 0, sizeof(e->state)) || !bundle_fields_ok(&e->b))
		return -EINVAL;
	return 0;
}

static bool bundle_fields_ok(const struct store_bundle *b)
{
	return memchr(b->team, 0, sizeof(b->team)) && memchr(b->short_version, 0, sizeof(b->short_version)) &&
	       memchr(b->dir, 0, sizeof(b->dir)) && memchr(b->digest, 0, sizeof(b->digest)) &&
	       memchr(b->description, 0, sizeof(b->description)) &&
	       memchr(b->providers, 0, sizeof(b->providers));
}

/* Binds b to parameters first .. first + 7. */
static void bind_bundle(sqlite3_stmt *st, int first, const struct store_bundle *b)
{
	bind_text(st, first, b->team);
	sqlite3_bind_int64(st, first + 1, b->version);
	bind_text(st, first + 2, b->short_version);
	bind_text(st, first + 3, b->dir);
	bind_text(st, first + 4, b->digest);
	bind_text(st, first + 5, b->description);
	bind_text(st, first + 6, b->providers);
	sqlite3_bind_int(st, first + 7, (int)b->permissions);
}

static int bundle_from_row(sqlite3_stmt *st, int first, struct store_bundle *b)
{
	int64_t v = sqlite3_column_int64(st, first + 1);
	int r;

	r = column_copy(st, first, b->team, sizeof(b->team));
	if (r >= 0)
		r = column_copy(st, first + 2, b->short_version, sizeof(b->short_version));
	if (r >= 0)
		r = column_copy(st, first + 3, b->dir, sizeof(b->dir));
	if (r >= 0)
		r = column_copy(st, first + 4, b->digest, sizeof(b->digest));
	if (r >= 0)
		r = column_copy(st, first + 5, b->description, sizeof(b->description));
	if (r >= 0)
		r = column_copy(st, first + 6, b->providers, sizeof(b->providers));
	if (r < 0)
		return r;
	if (v < 0 || v > INT32_MAX)
		return -EUCLEAN;
	b->version = (uint32_t)v;
	b->permissions = (unsigned)sqlite3_column_int(st, first + 7);
	return 0;
}

static const char *state_or_enabled(const struct store_extension *e)
{
	return e->state[0] ? e->state : "enabled";
}

#define EXTENSION_COLUMNS "identifier, executable, user, enabled, developer, created, state, " \
	"team, version, short_version, bundle, digest, description, providers, permissions"

static int extension_write(sqlite3 *db, const char *sql, const struct store_extension *e)
{
	sqlite3_stmt *st;
	int r;

	r = prepare(db, sql, &st);
	if (r < 0)
		return r;
	bind_text(st, 1, e->identifier);
	bind_text(st, 2, e->executable);
	bind_text(st, 3, e->user);
	sqlite3_bind_int(st, 4, e->enabled);
	sqlite3_bind_int(st, 5, e->developer);
	sqlite3_bind_int64(st, 6, created_or_now(e->created));
	bind_text(st, 7, state_or_enabled(e));
	bind_bundle(st, 8, &e->b);
	return step_done(db, st);
}

int store_extension_put(struct store *s, const struct store_extension *e)
{
	int r;

	r = extension_valid(e);
	if (r < 0)
		return r;
	r = tx_begin(s->db);
	if (r < 0)
		return r;
	r = exists(s->db, "SELECT 1 FROM extensions WHERE identifier = ?1", e->identifier);
	if (r > 0)
		r = -EEXIST;
	if (r >= 0)
		r = extension_write(s->db,
				    "INSERT INTO extensions(" EXTENSION_COLUMNS ") "
				    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)", e);
	return tx_end(s->db, r);
}

int store_extension_update(struct store *s, const struct store_extension *e)
{
	int r;

	r = extension_valid(e);
	if (r < 0)
		return r;
	r = tx_begin(s->db);
	if (r < 0)
		return r;
	/* extension_write's created (?6) has no place here: creation time never changes,
	 * and binding a parameter the statement lacks is a harmless SQLITE_RANGE. */
	r = extension_write(s->db,
			    "UPDATE extensions SET executable = ?2, user = ?3, enabled = ?4, developer = ?5, "
			    "state = ?7, team = ?8, version = ?9, short_version = ?10, bundle = ?11, "
			    "digest = ?12, description = ?13, providers = ?14, permissions = ?15 "
			    "WHERE identifier = ?1", e);
	if (r >= 0 && sqlite3_changes(s->db) == 0)
		r = -ENOENT;
	return tx_end(s->db, r);
}


static int extension_from_row(sqlite3_stmt *st, struct store_extension *ret)
{
	struct store_extension e;
	int r;

	r = column_copy(st, 0, e.identifier, sizeof(e.identifier));
	if (r >= 0)
		r = column_copy(st, 1, e.executable, sizeof(e.executable));
	if (r >= 0)
		r = column_copy(st, 2, e.user, sizeof(e.user));
	if (r < 0)
		return r;
	e.enabled = sqlite3_column_int(st, 3) != 0;
	e.developer = sqlite3_column_int(st, 4) != 0;
	e.created = sqlite3_column_int64(st, 5);
	r = column_copy(st, 6, e.state, sizeof(e.state));
	if (r >= 0)
		r = bundle_from_row(st, 7, &e.b);
	if (r < 0)
		return r;
	*ret = e;
	return 0;
}

int store_extension_get(struct store *s, const char *identifier, struct store_extension *ret)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(s->db, "SELECT " EXTENSION_COLUMNS " FROM extensions WHERE identifier = ?1", &st);
	if (r < 0)
		return r;
	bind_text(st, 1, identifier);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = extension_from_row(st, ret);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = sql_error(s->db, rc, "get extension");
	sqlite3_finalize(st);
	return r;
}

int store_extension_delete(struct store *s, const char *identifier)
{
	return change_one(s->db, "DELETE FROM extensions WHERE identifier = ?1", identifier);
}

int store_extension_foreach(struct store *s, int (*fn)(const struct store_extension *e, void *userdata),
			    void *userdata)
{
	struct store_extension e;
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(s->db, "SELECT " EXTENSION_COLUMNS " FROM extensions ORDER BY identifier", &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = extension_from_row(st, &e);
		if (r < 0)
			goto out;
		r = fn(&e, userdata);
		if (r != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = sql_error(s->db, rc, "list extensions");
out:
	sqlite3_finalize(st);
	return r;
}

static int request_delete_tx(sqlite3 *db, int64_t id)
{
	sqlite3_stmt *st;
	int r;

	r = prepare(db, "DELETE FROM requests WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	r = step_done(db, st);
	if (r >= 0 && sqlite3_changes(db) == 0)
		r = -ENOENT;
	return r;
}

int store_extension_install(struct store *s, const struct store_extension *e, int64_t request_id)
{
	int r;

	r = extension_valid(e);
	if (r < 0)
		return r;
	r = tx_begin(s->db);
	if (r < 0)
		return r;
	/* An upsert, not INSERT OR REPLACE: replacing the row would delete its
	 * configurations through the foreign key. */
	r = extension_write(s->db,
			    "INSERT INTO extensions(" EXTENSION_COLUMNS ") "
			    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) "
			    "ON CONFLICT(identifier) DO UPDATE SET executable = ?2, user = ?3, "
			    "enabled = ?4, developer = ?5, state = ?7, team = ?8, version = ?9, "
			    "short_version = ?10, bundle = ?11, digest = ?12, description = ?13, "
			    "providers = ?14, permissions = ?15", e);
	if (r >= 0 && request_id > 0)
		r = request_delete_tx(s->db, request_id);
	return tx_end(s->db, r);
}

int store_extension_set_state(struct store *s, const char *identifier, const char *state)
{
	sqlite3_stmt *st;
	int r;

	r = tx_begin(s->db);
	if (r < 0)
		return r;
	r = prepare(s->db, "UPDATE extensions SET state = ?2 WHERE identifier = ?1", &st);
	if (r >= 0) {
		bind_text(st, 1, identifier);
		bind_text(st, 2, state);
		r = step_done(s->db, st);
	}
	if (r >= 0 && sqlite3_changes(s->db) == 0)
		r = -ENOENT;
	return tx_end(s->db, r);
}

/* ---- requests -------------------------------------------------------------------- */

#define REQUEST_COLUMNS "id, identifier, executable, replace, requester_uid, requester_pid, " \
	"source, created, team, version, short_version, bundle, digest, description, providers, " \
	"permissions"

static int request_valid(const struct store_request *r)
{
	if (!field_ok(r->identifier, sizeof(r->identifier)) || !field_ok(r->executable, sizeof(r->executable)) ||
	    !ne_name_valid(r->identifier, sizeof(r->identifier) - 1) ||
	    !field_ok(r->replace, sizeof(r->replace)) || !memchr(r->source, 0, sizeof(r->source)) ||
	    !bundle_fields_ok(&r->b) || !field_ok(r->b.dir, sizeof(r->b.dir)))
		return -EINVAL;
	return 0;
}

static int request_from_row(sqlite3_stmt *st, struct store_request *ret)
{
	struct store_request q = { 0 };
	int r;

	q.id = sqlite3_column_int64(st, 0);
	r = column_copy(st, 1, q.identifier, sizeof(q.identifier));
	if (r >= 0)
		r = column_copy(st, 2, q.executable, sizeof(q.executable));
	if (r >= 0)
		r = column_copy(st, 3, q.replace, sizeof(q.replace));
	if (r >= 0)
		r = column_copy(st, 6, q.source, sizeof(q.source));
	if (r >= 0)
		r = bundle_from_row(st, 8, &q.b);
	if (r < 0)
		return r;
	q.requester_uid = (uint32_t)sqlite3_column_int64(st, 4);
	q.requester_pid = sqlite3_column_int(st, 5);
	q.created = sqlite3_column_int64(st, 7);
	*ret = q;
	return 0;
}

/* One row for a query with one bound parameter (text when key, else id). */
static int request_get_one(struct store *s, const char *sql, const char *key, int64_t id,
			   struct store_request *ret)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(s->db, sql, &st);
	if (r < 0)
		return r;
	if (key)
		bind_text(st, 1, key);
	else
		sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = request_from_row(st, ret);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = sql_error(s->db, rc, "get request");
	sqlite3_finalize(st);
	return r;
}

int store_request_get(struct store *s, int64_t id, struct store_request *ret)
{
	return request_get_one(s, "SELECT " REQUEST_COLUMNS " FROM requests WHERE id = ?1", NULL, id, ret);
}

int store_request_find(struct store *s, const char *identifier, struct store_request *ret)
{
	return request_get_one(s, "SELECT " REQUEST_COLUMNS " FROM requests WHERE identifier = ?1",
			       identifier, 0, ret);
}

int store_request_put(struct store *s, struct store_request *q, int64_t *ret_superseded)
{
	struct store_request old;
	sqlite3_stmt *st;
	int64_t superseded = 0;
	int r;

	r = request_valid(q);
	if (r < 0)
		return r;
	r = tx_begin(s->db);
	if (r < 0)
		return r;
	r = store_request_find(s, q->identifier, &old);
	if (r >= 0) {
		superseded = old.id;
		r = request_delete_tx(s->db, old.id);
	} else if (r == -ENOENT)
		r = 0;
	if (r >= 0)
		r = prepare(s->db, "INSERT INTO requests(identifier, executable, replace, requester_uid, "
				   "requester_pid, source, created, team, version, short_version, bundle, "
				   "digest, description, providers, permissions) "
				   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)", &st);
	if (r >= 0) {
		bind_text(st, 1, q->identifier);
		bind_text(st, 2, q->executable);
		bind_text(st, 3, q->replace);
		sqlite3_bind_int64(st, 4, q->requester_uid);
		sqlite3_bind_int(st, 5, q->requester_pid);
		bind_text(st, 6, q->source);
		sqlite3_bind_int64(st, 7, created_or_now(q->created));
		bind_bundle(st, 8, &q->b);
		r = step_done(s->db, st);
	}
	if (r >= 0)
		q->id = sqlite3_last_insert_rowid(s->db);
	r = tx_end(s->db, r);
	if (r >= 0 && ret_superseded)
		*ret_superseded = superseded;
	return r;
}

int store_request_delete(struct store *s, int64_t id)
{
	int r;

	r = tx_begin(s->db);
	if (r < 0)
		return r;
	return tx_end(s->db, request_delete_tx(s->db, id));
}

int store_request_foreach(struct store *s, int (*fn)(const struct store_request *r, void *userdata),
			  void *userdata)
{
	struct store_request q;
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(s->db, "SELECT " REQUEST_COLUMNS " FROM requests ORDER BY id", &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = request_from_row(st, &q);
		if (r < 0)
			goto out;
		r = fn(&q, userdata);
		if (r != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = sql_error(s->db, rc, "list requests");
out:
	sqlite3_finalize(st);
	return r;
}

/* ---- split-DNS routes -------------------------------------------------------------- */

static int dns_route_valid(const struct store_dns_route *r)
{
	if (!field_ok(r->suffix, sizeof(r->suffix)) || !memchr(r->servers, 0, sizeof(r->servers)))
		return -EINVAL;
	if (r->exempt ? r->servers[0] != '\0' : r->servers[0] == '\0')
		return -EINVAL;
	return 0;
}

int store_dns_route_put(struct store *s, const struct store_dns_route *r)
{
	sqlite3_stmt *st;
	int e;

	e = dns_route_valid(r);
	if (e < 0)
		return e;
	e = tx_begin(s->db);
	if (e < 0)
		return e;
	/* A replaced route keeps its creation time: it is the same route, edited. */
	e = prepare(s->db, "INSERT INTO dns_routes(suffix, exempt, servers, created) VALUES(?1, ?2, ?3, ?4) "
			   "ON CONFLICT(suffix) DO UPDATE SET exempt = ?2, servers = ?3", &st);
	if (e >= 0) {
		bind_text(st, 1, r->suffix);
		sqlite3_bind_int(st, 2, r->exempt);
		bind_text(st, 3, r->servers);
		sqlite3_bind_int64(st, 4, created_or_now(r->created));
		e = step_done(s->db, st);
	}
	return tx_end(s->db, e);
}

int store_dns_route_delete(struct store *s, const char *suffix)
{
	return change_one(s->db, "DELETE FROM dns_routes WHERE suffix = ?1", suffix);
}

static int dns_route_from_row(sqlite3_stmt *st, struct store_dns_route *ret)
{
	struct store_dns_route r;
	int e;

	e = column_copy(st, 0, r.suffix, sizeof(r.suffix));
	if (e >= 0)
		e = column_copy(st, 2, r.servers, sizeof(r.servers));
	if (e < 0)
		return e;
	r.exempt = sqlite3_column_int(st, 1) != 0;
	r.created = sqlite3_column_int64(st, 3);
	*ret = r;
	return 0;
}

int store_dns_route_foreach(struct store *s, int (*fn)(const struct store_dns_route *r, void *userdata),
			    void *userdata)
{
	struct store_dns_route r;
	sqlite3_stmt *st;
	int e, rc;

	e = prepare(s->db, "SELECT suffix, exempt, servers, created FROM dns_routes ORDER BY suffix", &st);
	if (e < 0)
		return e;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e = dns_route_from_row(st, &r);
		if (e < 0)
			goto out;
		e = fn(&r, userdata);
		if (e != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		e = sql_error(s->db, rc, "list dns routes");
out:
	sqlite3_finalize(st);
	return e;
}

int store_reset(struct store *s)
{
	int r;

	r = tx_begin(s->db);
	if (r < 0)
		return r;
	r = exec(s->db, "DELETE FROM requests; DELETE FROM extensions");
	return tx_end(s->db, r);
}

void store_config_clear(struct store_config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n_options; i++) {
		free(c->keys ? c->keys[i] : NULL);
		free(c->values ? c->values[i] : NULL);
	}
	free(c->keys);
	free(c->values);
	c->keys = c->values = NULL;
	c->n_options = 0;
}

static int config_valid(const struct store_config *c)
{
	size_t i, j;

	if (!field_ok(c->name, sizeof(c->name)) || !field_ok(c->extension, sizeof(c->extension)) ||
	    !ne_name_valid(c->name, sizeof(c->name) - 1))
		return -EINVAL;
	if (c->n_options && (!c->keys || !c->values))
		return -EINVAL;
	/* Duplicate keys are the caller's mistake, not a conflict with stored state. */
	for (i = 0; i < c->n_options; i++) {
		if (!c->keys[i] || !c->values[i] || !c->keys[i][0])
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (strcmp(c->keys[i], c->keys[j]) == 0)
				return -EINVAL;
	}
	return 0;
}

static int option_insert(sqlite3 *db, const char *config, size_t position, const char *key, const char *value)
{
	sqlite3_stmt *st;
	int r;

	r = prepare(db, "INSERT INTO configuration_options(configuration, position, key, value) "
			"VALUES(?1, ?2, ?3, ?4)", &st);
	if (r < 0)
		return r;
	bind_text(st, 1, config);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)position);
	bind_text(st, 3, key);
	bind_text(st, 4, value);
	return step_done(db, st);
}

static int config_insert(sqlite3 *db, const struct store_config *c)
{
	sqlite3_stmt *st;
	size_t i;
	int r;

	r = prepare(db, "INSERT INTO configurations(name, extension, provider_type, enabled, fail_open, created) "
			"VALUES(?1, ?2, ?3, ?4, ?5, ?6)", &st);
	if (r < 0)
		return r;
	bind_text(st, 1, c->name);
	bind_text(st, 2, c->extension);
	sqlite3_bind_int(st, 3, c->provider_type);
	sqlite3_bind_int(st, 4, c->enabled);
	sqlite3_bind_int(st, 5, c->fail_open);
	sqlite3_bind_int64(st, 6, created_or_now(c->created));
	r = step_done(db, st);
	for (i = 0; r >= 0 && i < c->n_options; i++)
		r = option_insert(db, c->name, i, c->keys[i], c->values[i]);
	return r;
}

int store_config_put(struct store *s, const struct store_config *c)
{
	int r;

	r = config_valid(c);
	if (r < 0)
		return r;
	r = tx_begin(s->db);
	if (r < 0)
		return r;
	r = exists(s->db, "SELECT 1 FROM extensions WHERE identifier = ?1", c->extension);
	if (r == 0)
		r = -ENOENT;
	if (r >= 0)
		r = exists(s->db, "SELECT 1 FROM configurations WHERE name = ?1", c->name);
	if (r > 0)
		r = -EEXIST;
	if (r >= 0)
		r = config_insert(s->db, c);
	return tx_end(s->db, r);
}

static int option_append(struct store_config *c, const char *key, const char *value)
{
	char **keys, **values;

	keys = realloc(c->keys, (c->n_options + 1) * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	c->keys = keys;
	values = realloc(c->values, (c->n_options + 1) * sizeof(*values));
	if (!values)
		return -ENOMEM;
	c->values = values;
	keys[c->n_options] = strdup(key);
	values[c->n_options] = strdup(value);
	c->n_options++;
	if (!keys[c->n_options - 1] || !values[c->n_options - 1])
		return -ENOMEM;
	return 0;
}

/* Loads c's options into c (which starts without options); c is cleared on failure. */
static int options_load(sqlite3 *db, struct store_config *c)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(db, "SELECT key, value FROM configuration_options WHERE configuration = ?1 ORDER BY position", &st);
	if (r < 0)
		return r;
	bind_text(st, 1, c->name);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const char *v = (const char *)sqlite3_column_text(st, 1);

		/* NOT NULL columns; a NULL here is an allocation failure in SQLite. */
		r = k && v ? option_append(c, k, v) : -ENOMEM;
		if (r < 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = sql_error(db, rc, "load options");
out:
	sqlite3_finalize(st);
	if (r < 0)
		store_config_clear(c);
	return r;
}

#define CONFIG_COLUMNS "name, extension, provider_type, enabled, fail_open, created"

static int config_from_row(sqlite3 *db, sqlite3_stmt *st, struct store_config *ret)
{
	struct store_config c = { 0 };
	int r;

	r = column_copy(st, 0, c.name, sizeof(c.name));
	if (r >= 0)
		r = column_copy(st, 1, c.extension, sizeof(c.extension));
	if (r < 0)
		return r;
	c.provider_type = sqlite3_column_int(st, 2);
	c.enabled = sqlite3_column_int(st, 3) != 0;
	c.fail_open = sqlite3_column_int(st, 4) != 0;
	c.created = sqlite3_column_int64(st, 5);
	r = options_load(db, &c);
	if (r < 0)
		return r;
	*ret = c;
	return 0;
}

int store_config_get(struct store *s, const char *name, struct store_config *ret)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(s->db, "SELECT " CONFIG_COLUMNS " FROM configurations WHERE name = ?1", &st);
	if (r < 0)
		return r;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = config_from_row(s->db, st, ret);
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = sql_error(s->db, rc, "get configuration");
	sqlite3_finalize(st);
	return r;
}

int store_config_delete(struct store *s, const char *name)
{
	return change_one(s->db, "DELETE FROM configurations WHERE name = ?1", name);
}

int store_config_set_enabled(struct store *s, const char *name, bool enabled)
{
	sqlite3_stmt *st;
	int r;

	r = tx_begin(s->db);
	if (r < 0)
		return r;
	r = prepare(s->db, "UPDATE configurations SET enabled = ?2 WHERE name = ?1", &st);
	if (r >= 0) {
		bind_text(st, 1, name);
		sqlite3_bind_int(st, 2, enabled);
		r = step_done(s->db, st);
	}
	if (r >= 0 && sqlite3_changes(s->db) == 0)
		r = -ENOENT;
	return tx_end(s->db, r);
}

int store_config_foreach(struct store *s, const char *extension,
			 int (*fn)(const struct store_config *c, void *userdata), void *userdata)
{
	struct store_config c;
	sqlite3_stmt *st;
	int r, rc;

	/* ?1 IS NULL selects every configuration when no extension is given. */
	r = prepare(s->db, "SELECT " CONFIG_COLUMNS " FROM configurations "
			   "WHERE ?1 IS NULL OR extension = ?1 ORDER BY name", &st);
	if (r < 0)
		return r;
	if (extension)
		bind_text(st, 1, extension);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = config_from_row(s->db, st, &c);
		if (r < 0)
			goto out;
		r = fn(&c, userdata);
		store_config_clear(&c);
		if (r != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		r = sql_error(s->db, rc, "list configurations");
out:
	sqlite3_finalize(st);
	return r;
}
