/* Loading the control API's stored split-DNS routes at start (dnsctl_load): stored routes join
 * the configuration file's, a stored route that the file routes too is skipped (the file wins),
 * a row that no longer parses is skipped, and an unreadable store is an error. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "daemon.h"
#include "dnsctl.h"
#include "dnsroutes.h"
#include "log.h"
#include "store.h"

/* dnsctl.c answers control requests, which links control.c and with it the rest of the daemon
 * but main.c: these two are main.c's, never reached by dnsctl_load. */
void daemon_maybe_exit(struct daemon *d)
{
	(void)d;
}

int daemon_apply_ruleset(struct daemon *d)
{
	(void)d;
	return 0;
}

struct fixture {
	struct daemon d;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->d.opt.state_dir, "/tmp/netext-dnsctl-XXXXXX");
	strcpy(f->d.opt.config_path, "/etc/netext/netextd.conf");
	if (!mkdtemp(f->d.opt.state_dir) || store_open(f->d.opt.state_dir, &f->d.store) < 0 ||
	    dnsroutes_new(&f->d.dns_routes) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[PATH_MAX + 16];
	int rc;

	store_close(f->d.store);
	dnsroutes_free(f->d.dns_routes);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->d.opt.state_dir);
	rc = system(cmd);
	free(f);
	return rc == 0 ? 0 : -1;
}

static void put(struct daemon *d, const char *suffix, bool exempt, const char *servers)
{
	struct store_dns_route r = { .exempt = exempt };

	snprintf(r.suffix, sizeof(r.suffix), "%s", suffix);
	snprintf(r.servers, sizeof(r.servers), "%s", servers);
	assert_int_equal(store_dns_route_put(d->store, &r), 0);
}

static const char *first_server(const struct dns_route *r)
{
	static char buf[96];

	return r && r->n_servers ? dnsroutes_format_server(&r->servers[0], buf, sizeof(buf)) : "-";
}

static void test_load(void **state)
{
	struct fixture *f = *state;
	struct daemon *d = &f->d;
	const char lines[][512] = { "route cfg.example 198.18.9.9" };
	const struct dns_route *r;

	assert_int_equal(dnsroutes_add_lines(d->dns_routes, lines, 1), 0);
	put(d, ".", false, "198.18.2.2 198.18.2.3:5353");
	put(d, "corp.example", false, "198.18.1.2 [fd00::1]:5353");
	put(d, "www.corp.example", true, "");
	put(d, "cfg.example", false, "198.18.1.7");             /* the file routes it: skipped */
	put(d, "gone.example", false, "fe80::1%netext-nosuch0"); /* interface gone: skipped */
	put(d, "bad.example", false, "198.18.1.2 not-an-address");

	assert_int_equal(dnsctl_load(d), 0);
	assert_int_equal(dnsroutes_count(d->dns_routes), 4);

	r = dnsroutes_get(d->dns_routes, ".");
	assert_non_null(r);
	assert_string_equal(r->source, DNSCTL_SOURCE);
	assert_int_equal(r->n_servers, 2);
	r = dnsroutes_get(d->dns_routes, "corp.example");
	assert_string_equal(r->source, DNSCTL_SOURCE);
	assert_string_equal(first_server(r), "198.18.1.2");
	assert_int_equal(r->n_servers, 2);
	r = dnsroutes_get(d->dns_routes, "www.corp.example");
	assert_true(r->exempt);
	r = dnsroutes_get(d->dns_routes, "cfg.example");
	assert_string_equal(r->source, "config");
	assert_string_equal(first_server(r), "198.18.9.9");
	assert_null(dnsroutes_get(d->dns_routes, "gone.example"));
	assert_null(dnsroutes_get(d->dns_routes, "bad.example"));

	/* Lookups follow: the exemption goes to the stored default. */
	assert_string_equal(first_server(dnsroutes_lookup(d->dns_routes, "a.www.corp.example")), "198.18.2.2");
	assert_string_equal(first_server(dnsroutes_lookup(d->dns_routes, "host.corp.example")), "198.18.1.2");
}

/* A configured default wins over a stored one. */
static void test_config_default_wins(void **state)
{
	struct fixture *f = *state;
	struct daemon *d = &f->d;
	const char lines[][512] = { "default 198.18.3.3" };

	assert_int_equal(dnsroutes_add_lines(d->dns_routes, lines, 1), 0);
	put(d, ".", false, "198.18.2.2");
	assert_int_equal(dnsctl_load(d), 0);
	assert_string_equal(dnsroutes_get(d->dns_routes, ".")->source, "config");
	assert_string_equal(first_server(dnsroutes_lookup(d->dns_routes, "example.org")), "198.18.3.3");
}

/* A row the store cannot read back stops the start: routes silently missing would send a
 * private domain's names to the default servers. */
static void test_unreadable(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX + 16], sql[1024];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/netext.db", f->d.opt.state_dir);
	snprintf(sql, sizeof(sql), "INSERT INTO dns_routes VALUES('a.example', 0, '%0700d', 1)", 1);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_true(dnsctl_load(&f->d) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_default_wins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
	};

	log_init("test-dnsctl", 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
