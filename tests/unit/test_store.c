/* The SQLite state store: persistence, constraints, cascades, locking and migrations.
 * Each test gets its own temporary state directory, removed afterwards. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/netext-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	int rc;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

static struct store *open_ok(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;

	assert_int_equal(store_open(f->dir, &s), 0);
	assert_non_null(s);
	return s;
}

static struct store_extension ext(const char *id)
{
	struct store_extension e = { .enabled = true, .developer = false, .created = 1700000000 };

	snprintf(e.identifier, sizeof(e.identifier), "%s", id);
	snprintf(e.executable, sizeof(e.executable), "/usr/libexec/netext/%s", id);
	snprintf(e.user, sizeof(e.user), "netext-ext");
	return e;
}

static char *opt_keys[] = { "zeta", "alpha", "mid" };
static char *opt_values[] = { "1", "", "three" };

static struct store_config cfg(const char *name, const char *extension)
{
	struct store_config c = { .provider_type = 2, .enabled = true, .fail_open = false, .created = 5,
				  .n_options = 3, .keys = opt_keys, .values = opt_values };

	snprintf(c.name, sizeof(c.name), "%s", name);
	snprintf(c.extension, sizeof(c.extension), "%s", extension);
	return c;
}

static void test_reopen_keeps_data(void **state)
{
	struct store_extension e = ext("com.example.filter"), got;
	struct store *s = open_ok(state);

	assert_int_equal(store_schema_version(s), 3);
	assert_int_equal(store_extension_put(s, &e), 0);
	store_close(s);

	s = open_ok(state);
	assert_int_equal(store_schema_version(s), 3);
	assert_int_equal(store_extension_get(s, e.identifier, &got), 0);
	assert_string_equal(got.executable, e.executable);
	assert_string_equal(got.user, "netext-ext");
	assert_true(got.enabled);
	assert_false(got.developer);
	assert_int_equal(got.created, 1700000000);
	assert_string_equal(got.state, "enabled");
	store_close(s);
	store_close(NULL);
}

static void test_extension_crud(void **state)
{
	struct store_extension e = ext("a.ext"), got;
	struct store *s = open_ok(state);

	assert_int_equal(store_extension_get(s, "a.ext", &got), -ENOENT);
	assert_int_equal(store_extension_update(s, &e), -ENOENT);
	assert_int_equal(store_extension_put(s, &e), 0);
	assert_int_equal(store_extension_put(s, &e), -EEXIST);

	e.enabled = false;
	e.developer = true;
	e.created = 1; /* ignored: creation time never changes */
	snprintf(e.executable, sizeof(e.executable), "/opt/a");
	assert_int_equal(store_extension_update(s, &e), 0);
	assert_int_equal(store_extension_get(s, "a.ext", &got), 0);
	assert_string_equal(got.executable, "/opt/a");
	assert_false(got.enabled);
	assert_true(got.developer);
	assert_int_equal(got.created, 1700000000);

	assert_int_equal(store_extension_delete(s, "a.ext"), 0);
	assert_int_equal(store_extension_delete(s, "a.ext"), -ENOENT);
	assert_int_equal(store_extension_get(s, "a.ext", &got), -ENOENT);

	/* Names that would be unsafe in paths are refused before they reach the database. */
	e = ext("../evil");
	assert_int_equal(store_extension_put(s, &e), -EINVAL);
	store_close(s);
}

static int collect_ids(const struct store_extension *e, void *userdata)
{
	char *buf = userdata;

	strcat(buf, e->identifier);
	strcat(buf, ";");
	return strcmp(e->identifier, "c") == 0 ? 42 : 0;
}

static void test_extension_foreach(void **state)
{
	struct store *s = open_ok(state);
	const char *ids[] = { "d", "b", "c", "a" };
	char buf[64] = "";
	size_t i;

	for (i = 0; i < 4; i++) {
		struct store_extension e = ext(ids[i]);
		assert_int_equal(store_extension_put(s, &e), 0);
	}
	/* Ordered by identifier; fn's non-zero return stops the walk and is passed back. */
	assert_int_equal(store_extension_foreach(s, collect_ids, buf), 42);
	assert_string_equal(buf, "a;b;c;");
	store_close(s);
}

static void test_config(void **state)
{
	struct store_extension e = ext("x");
	struct store_config c = cfg("x-vpn", "x"), got = { 0 };
	struct store *s = open_ok(state);

	/* The extension must exist first. */
	assert_int_equal(store_config_put(s, &c), -ENOENT);
	assert_int_equal(store_extension_put(s, &e), 0);
	assert_int_equal(store_config_put(s, &c), 0);
	assert_int_equal(store_config_put(s, &c), -EEXIST);

	assert_int_equal(store_config_get(s, "x-vpn", &got), 0);
	assert_string_equal(got.extension, "x");
	assert_int_equal(got.provider_type, 2);
	assert_true(got.enabled);
	assert_false(got.fail_open);
	assert_int_equal(got.created, 5);
	/* Options come back in the order they were given, not sorted by key. */
	assert_int_equal(got.n_options, 3);
	assert_string_equal(got.keys[0], "zeta");
	assert_string_equal(got.keys[1], "alpha");
	assert_string_equal(got.values[1], "");
	assert_string_equal(got.keys[2], "mid");
	assert_string_equal(got.values[2], "three");
	store_config_clear(&got);
	assert_int_equal(got.n_options, 0);
	store_config_clear(&got);

	assert_int_equal(store_config_set_enabled(s, "x-vpn", false), 0);
	assert_int_equal(store_config_get(s, "x-vpn", &got), 0);
	assert_false(got.enabled);
	store_config_clear(&got);
	assert_int_equal(store_config_set_enabled(s, "nope", false), -ENOENT);

	assert_int_equal(store_config_delete(s, "x-vpn"), 0);
	assert_int_equal(store_config_delete(s, "x-vpn"), -ENOENT);
	assert_int_equal(store_config_get(s, "x-vpn", &got), -ENOENT);
	store_close(s);
}

static void test_config_duplicate_keys(void **state)
{
	char *keys[] = { "k", "k" }, *values[] = { "1", "2" };
	struct store_extension e = ext("x");
	struct store_config c = cfg("c", "x"), got;
	struct store *s = open_ok(state);

	assert_int_equal(store_extension_put(s, &e), 0);
	c.keys = keys;
	c.values = values;
	c.n_options = 2;
	assert_int_equal(store_config_put(s, &c), -EINVAL);
	assert_int_equal(store_config_get(s, "c", &got), -ENOENT);
	store_close(s);
}

static int count_configs(const struct store_config *c, void *userdata)
{
	(*(int *)userdata)++;
	assert_int_equal(c->n_options, 3);
	return 0;
}

static void test_cascade(void **state)
{
	struct store_extension a = ext("a"), b = ext("b");
	struct store_config c1 = cfg("a1", "a"), c2 = cfg("a2", "a"), c3 = cfg("b1", "b");
	struct store *s = open_ok(state);
	int n = 0;

	assert_int_equal(store_extension_put(s, &a), 0);
	assert_int_equal(store_extension_put(s, &b), 0);
	assert_int_equal(store_config_put(s, &c1), 0);
	assert_int_equal(store_config_put(s, &c2), 0);
	assert_int_equal(store_config_put(s, &c3), 0);
	assert_int_equal(store_config_foreach(s, NULL, count_configs, &n), 0);
	assert_int_equal(n, 3);
	n = 0;
	assert_int_equal(store_config_foreach(s, "a", count_configs, &n), 0);
	assert_int_equal(n, 2);

	assert_int_equal(store_extension_delete(s, "a"), 0);
	n = 0;
	assert_int_equal(store_config_foreach(s, NULL, count_configs, &n), 0);
	assert_int_equal(n, 1);
	store_close(s);

	/* The options went with their configurations: look underneath the API. */
	{
		struct fixture *f = *state;
		char path[128];
		sqlite3 *db;
		sqlite3_stmt *st;

		snprintf(path, sizeof(path), "%s/netext.db", f->dir);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM configuration_options", -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 3);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
}

static void test_second_open_busy(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(state), *s2 = (struct store *)0x1;

	assert_int_equal(store_open(f->dir, &s2), -EBUSY);
	assert_ptr_equal(s2, (struct store *)0x1);
	store_close(s);
	/* The lock goes with the handle. */
	s = open_ok(state);
	store_close(s);
}

static void set_user_version(const char *dir, int v)
{
	char path[128], sql[64];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/netext.db", dir);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(state);

	store_close(s);
	set_user_version(f->dir, 99);
	s = NULL;
	assert_int_equal(store_open(f->dir, &s), -EPROTONOSUPPORT);
	assert_null(s);
}

static int db_version(sqlite3 *db)
{
	sqlite3_stmt *st;
	int v;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void test_migration_failure(void **state)
{
	/* The second step half-succeeds (CREATE TABLE b) before failing: all of it must go. */
	const char *const steps[] = {
		"CREATE TABLE a(x INTEGER)",
		"CREATE TABLE b(y INTEGER); INSERT INTO no_such_table VALUES(1)",
		"CREATE TABLE c(z INTEGER)",
	};
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(store_migrate(db, steps, 1), 0);
	assert_int_equal(db_version(db), 1);
	assert_true(store_migrate(db, steps, 3) < 0);
	assert_int_equal(db_version(db), 1);
	assert_int_equal(sqlite3_exec(db, "SELECT * FROM b", NULL, NULL, NULL), SQLITE_ERROR);
	assert_int_equal(sqlite3_exec(db, "SELECT * FROM c", NULL, NULL, NULL), SQLITE_ERROR);
	assert_int_equal(sqlite3_exec(db, "SELECT * FROM a", NULL, NULL, NULL), SQLITE_OK);
	/* Running again with the same list is a no-op, and a shorter list is a newer db. */
	assert_int_equal(store_migrate(db, steps, 1), 0);
	assert_int_equal(store_migrate(db, steps, 0), -EPROTONOSUPPORT);
	sqlite3_close(db);
}

static struct store_extension bundled(const char *id, uint32_t version, const char *dir)
{
	struct store_extension e = ext(id);

	snprintf(e.b.team, sizeof(e.b.team), "TEAM1");
	e.b.version = version;
	snprintf(e.b.short_version, sizeof(e.b.short_version), "1.%u.0", version);
	snprintf(e.b.dir, sizeof(e.b.dir), "%s", dir);
	snprintf(e.b.digest, sizeof(e.b.digest), "%064u", version);
	snprintf(e.b.providers, sizeof(e.b.providers), "message filter-data");
	e.b.permissions = 1;
	return e;
}

static struct store_request request(const char *id, uint32_t version)
{
	struct store_request q = { .requester_uid = 1000, .requester_pid = 42 };

	snprintf(q.identifier, sizeof(q.identifier), "%s", id);
	snprintf(q.executable, sizeof(q.executable), "/var/lib/netext/bundles/x/bin/x");
	snprintf(q.replace, sizeof(q.replace), "ask");
	snprintf(q.source, sizeof(q.source), "/home/u/x.netext");
	q.b = bundled(id, version, "x@1-abc").b;
	return q;
}

/* Replacing an extension keeps its configurations and consumes the request, atomically. */
static void test_install_replaces_keeps_configs(void **state)
{
	struct store_extension e = bundled("com.example.a", 1, "com.example.a@1-aaaa"), got;
	struct store_config c = cfg("conf", "com.example.a"), gc = { 0 };
	struct store_request q = request("com.example.a", 2), gq;
	struct store *s = open_ok(state);

	assert_int_equal(store_extension_install(s, &e, 0), 0);
	assert_int_equal(store_config_put(s, &c), 0);
	assert_int_equal(store_request_put(s, &q, NULL), 0);
	assert_true(q.id > 0);

	e = bundled("com.example.a", 2, "com.example.a@2-bbbb");
	assert_int_equal(store_extension_install(s, &e, q.id), 0);
	assert_int_equal(store_extension_get(s, "com.example.a", &got), 0);
	assert_int_equal(got.b.version, 2);
	assert_string_equal(got.b.dir, "com.example.a@2-bbbb");
	assert_string_equal(got.b.providers, "message filter-data");
	assert_string_equal(got.b.team, "TEAM1");
	assert_int_equal(store_config_get(s, "conf", &gc), 0);
	store_config_clear(&gc);
	assert_int_equal(store_request_get(s, q.id, &gq), -ENOENT);

	/* A request that no longer exists makes the whole install fail, changing nothing. */
	e = bundled("com.example.a", 3, "com.example.a@3-cccc");
	assert_int_equal(store_extension_install(s, &e, q.id), -ENOENT);
	assert_int_equal(store_extension_get(s, "com.example.a", &got), 0);
	assert_int_equal(got.b.version, 2);

	assert_int_equal(store_extension_set_state(s, "com.example.a", "deactivating"), 0);
	assert_int_equal(store_extension_get(s, "com.example.a", &got), 0);
	assert_string_equal(got.state, "deactivating");
	assert_int_equal(store_extension_set_state(s, "nope", "enabled"), -ENOENT);
	store_close(s);
}

static int count_requests(const struct store_request *q, void *userdata)
{
	(*(int *)userdata)++;
	(void)q;
	return 0;
}

/* One waiting request per identifier: a new one supersedes the old in the same transaction. */
static void test_requests(void **state)
{
	struct store_request a = request("com.example.a", 1), a2 = request("com.example.a", 2),
			     b = request("com.example.b", 1), got;
	struct store *s = open_ok(state);
	int64_t superseded = -1;
	int n = 0;

	assert_int_equal(store_request_put(s, &a, &superseded), 0);
	assert_int_equal(superseded, 0);
	assert_int_equal(store_request_put(s, &b, NULL), 0);
	assert_int_equal(store_request_put(s, &a2, &superseded), 0);
	assert_int_equal(superseded, a.id);
	assert_int_equal(store_request_get(s, a.id, &got), -ENOENT);
	assert_int_equal(store_request_find(s, "com.example.a", &got), 0);
	assert_int_equal(got.id, a2.id);
	assert_int_equal(got.b.version, 2);
	assert_int_equal(got.requester_uid, 1000);
	assert_int_equal(got.requester_pid, 42);
	assert_string_equal(got.replace, "ask");
	assert_string_equal(got.source, "/home/u/x.netext");
	assert_int_equal(store_request_foreach(s, count_requests, &n), 0);
	assert_int_equal(n, 2);

	/* Unsafe identifiers and requests without a staged bundle never reach the database. */
	got = request("../x", 1);
	assert_int_equal(store_request_put(s, &got, NULL), -EINVAL);
	got = request("com.example.c", 1);
	got.b.dir[0] = '\0';
	assert_int_equal(store_request_put(s, &got, NULL), -EINVAL);

	assert_int_equal(store_request_delete(s, b.id), 0);
	assert_int_equal(store_request_delete(s, b.id), -ENOENT);
	store_close(s);
	s = open_ok(state);
	assert_int_equal(store_request_find(s, "com.example.a", &got), 0);
	assert_int_equal(store_reset(s), 0);
	assert_int_equal(store_request_find(s, "com.example.a", &got), -ENOENT);
	store_close(s);
}

/* A database written by the foundation (schema 1) keeps its extensions, now "enabled". */
static void test_migration_from_v1(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct store_extension got;
	sqlite3 *db;
	struct store *s;

	snprintf(path, sizeof(path), "%s/netext.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE extensions (identifier TEXT PRIMARY KEY, "
				      "executable TEXT NOT NULL, user TEXT NOT NULL, enabled INTEGER NOT NULL, "
				      "developer INTEGER NOT NULL DEFAULT 1, created INTEGER NOT NULL);"
				      "CREATE TABLE configurations (name TEXT PRIMARY KEY, extension TEXT NOT NULL "
				      "REFERENCES extensions(identifier) ON DELETE CASCADE, provider_type INTEGER NOT NULL, "
				      "enabled INTEGER NOT NULL, fail_open INTEGER NOT NULL, created INTEGER NOT NULL);"
				      "CREATE INDEX configurations_extension ON configurations(extension);"
				      "CREATE TABLE configuration_options (configuration TEXT NOT NULL REFERENCES "
				      "configurations(name) ON DELETE CASCADE, position INTEGER NOT NULL, key TEXT NOT NULL, "
				      "value TEXT NOT NULL, PRIMARY KEY(configuration, key));"
				      "INSERT INTO extensions VALUES('old.ext', '/opt/old', 'netext-ext', 1, 1, 7);"
				      "PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	s = open_ok(state);
	assert_int_equal(store_schema_version(s), 3);
	assert_int_equal(store_extension_get(s, "old.ext", &got), 0);
	assert_string_equal(got.state, "enabled");
	assert_string_equal(got.executable, "/opt/old");
	assert_int_equal(got.b.version, 0);
	assert_int_equal(got.b.permissions, 1);
	store_close(s);
}

static struct store_dns_route dns_route(const char *suffix, bool exempt, const char *servers)
{
	struct store_dns_route r = { .exempt = exempt };

	snprintf(r.suffix, sizeof(r.suffix), "%s", suffix);
	snprintf(r.servers, sizeof(r.servers), "%s", servers);
	return r;
}

struct dns_walk {
	size_t n;
	struct store_dns_route seen[8];
	size_t stop_after; /* 0: never */
};

static int collect_dns(const struct store_dns_route *r, void *userdata)
{
	struct dns_walk *w = userdata;

	if (w->n < 8)
		w->seen[w->n] = *r;
	w->n++;
	return w->stop_after && w->n == w->stop_after ? 42 : 0;
}

static void test_dns_routes(void **state)
{
	struct store_dns_route a = dns_route("corp.example", false, "198.18.1.2 [fd00::1]:5353");
	struct store_dns_route def = dns_route(".", false, "198.18.2.2");
	struct store_dns_route ex = dns_route("dev.corp.example", true, "");
	struct dns_walk w = { 0 };
	struct store *s = open_ok(state);

	a.created = 100;
	assert_int_equal(store_dns_route_put(s, &a), 0);
	assert_int_equal(store_dns_route_put(s, &ex), 0);
	assert_int_equal(store_dns_route_put(s, &def), 0);
	/* Replacing keeps the creation time and changes the rest. */
	a = dns_route("corp.example", false, "198.18.1.3");
	a.created = 999;
	assert_int_equal(store_dns_route_put(s, &a), 0);
	store_close(s);

	s = open_ok(state);
	assert_int_equal(store_dns_route_foreach(s, collect_dns, &w), 0);
	assert_int_equal(w.n, 3);
	assert_string_equal(w.seen[0].suffix, ".");
	assert_string_equal(w.seen[0].servers, "198.18.2.2");
	assert_true(w.seen[0].created > 1000);
	assert_string_equal(w.seen[1].suffix, "corp.example");
	assert_string_equal(w.seen[1].servers, "198.18.1.3");
	assert_false(w.seen[1].exempt);
	assert_int_equal(w.seen[1].created, 100);
	assert_string_equal(w.seen[2].suffix, "dev.corp.example");
	assert_true(w.seen[2].exempt);
	assert_string_equal(w.seen[2].servers, "");

	/* fn's non-zero return stops the walk and comes back. */
	memset(&w, 0, sizeof(w));
	w.stop_after = 2;
	assert_int_equal(store_dns_route_foreach(s, collect_dns, &w), 42);
	assert_int_equal(w.n, 2);

	assert_int_equal(store_dns_route_delete(s, "corp.example"), 0);
	assert_int_equal(store_dns_route_delete(s, "corp.example"), -ENOENT);
	memset(&w, 0, sizeof(w));
	assert_int_equal(store_dns_route_foreach(s, collect_dns, &w), 0);
	assert_int_equal(w.n, 2);
	assert_string_equal(w.seen[1].suffix, "dev.corp.example");
	store_close(s);
}

static void test_dns_routes_invalid(void **state)
{
	struct store_dns_route r;
	struct dns_walk w = { 0 };
	struct store *s = open_ok(state);

	r = dns_route("", false, "198.18.1.2");
	assert_int_equal(store_dns_route_put(s, &r), -EINVAL);
	r = dns_route("x.example", true, "198.18.1.2");
	assert_int_equal(store_dns_route_put(s, &r), -EINVAL);
	r = dns_route("x.example", false, "");
	assert_int_equal(store_dns_route_put(s, &r), -EINVAL);
	r = dns_route("x.example", false, "198.18.1.2");
	memset(r.suffix, 'a', sizeof(r.suffix)); /* not terminated */
	assert_int_equal(store_dns_route_put(s, &r), -EINVAL);
	r = dns_route("x.example", false, "198.18.1.2");
	memset(r.servers, '1', sizeof(r.servers));
	assert_int_equal(store_dns_route_put(s, &r), -EINVAL);
	assert_int_equal(store_dns_route_foreach(s, collect_dns, &w), 0);
	assert_int_equal(w.n, 0);
	store_close(s);
}

/* A text longer than the struct's buffer, written behind the store's back, is refused when read. */
static void test_dns_routes_oversized_row(void **state)
{
	struct fixture *f = *state;
	struct dns_walk w = { 0 };
	char path[128], sql[1024];
	struct store *s = open_ok(state);
	sqlite3 *db;

	store_close(s);
	snprintf(path, sizeof(path), "%s/netext.db", f->dir);
	snprintf(sql, sizeof(sql), "INSERT INTO dns_routes VALUES('a.example', 0, '%0600d', 1)", 1);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	s = open_ok(state);
	assert_int_equal(store_dns_route_foreach(s, collect_dns, &w), -EUCLEAN);
	assert_int_equal(w.n, 0);
	store_close(s);
}

/* A database of schema 2 (before DNS routes) gains the table and keeps its extensions. */
static void test_migration_from_v2(void **state)
{
	struct fixture *f = *state;
	struct store_extension e = ext("kept.ext"), got;
	struct store_dns_route r = dns_route("corp.example", false, "198.18.1.2");
	struct store *s = open_ok(state);
	char path[128];
	sqlite3 *db;

	assert_int_equal(store_extension_put(s, &e), 0);
	store_close(s);
	snprintf(path, sizeof(path), "%s/netext.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE dns_routes; PRAGMA user_version = 2;", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	s = open_ok(state);
	assert_int_equal(store_schema_version(s), 3);
	assert_int_equal(store_extension_get(s, "kept.ext", &got), 0);
	assert_int_equal(store_dns_route_put(s, &r), 0);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extension_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extension_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_duplicate_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cascade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test(test_migration_failure),
		cmocka_unit_test_setup_teardown(test_install_replaces_keeps_configs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_routes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_routes_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dns_routes_oversized_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v2, setup, teardown),
	};

	log_init("test-store", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
