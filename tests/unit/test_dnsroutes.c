/* Split-DNS routes: longest suffix, exemptions, the default route and its resolv.conf
 * fallback, sources, and the text forms of servers and configuration lines. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dnsroutes.h"

static struct dns_route mk(const char *kind, const char *args, const char *source)
{
	struct dns_route r;

	assert_int_equal(dnsroutes_parse_line(kind, args, &r), 0);
	snprintf(r.source, sizeof(r.source), "%s", source);
	return r;
}

/* The first server of the route for qname, as text; "-" when there is no route. */
static const char *server_for(struct dnsroutes *rt, const char *qname)
{
	static char buf[64];
	const struct dns_route *r = dnsroutes_lookup(rt, qname);

	if (!r)
		return "-";
	return dnsroutes_format_server(&r->servers[0], buf, sizeof(buf));
}

static void test_longest_suffix(void **state)
{
	struct dnsroutes *rt;
	struct dns_route r;

	assert_int_equal(dnsroutes_new(&rt), 0);
	r = mk("default", "192.0.2.1", "config");
	assert_int_equal(dnsroutes_add(rt, &r), 0);
	r = mk("route", "corp.example 10.0.0.1 10.0.0.2", "config");
	assert_int_equal(dnsroutes_add(rt, &r), 0);
	r = mk("route", "lab.corp.example [fd00::53]:5353", "api");
	assert_int_equal(dnsroutes_add(rt, &r), 0);
	r = mk("exempt", "public.corp.example", "api");
	assert_int_equal(dnsroutes_add(rt, &r), 0);

	assert_string_equal(server_for(rt, "corp.example"), "10.0.0.1");
	assert_string_equal(server_for(rt, "host.corp.example"), "10.0.0.1");
	assert_string_equal(server_for(rt, "a.b.lab.corp.example"), "[fd00::53]:5353");
	assert_string_equal(server_for(rt, "lab.corp.example"), "[fd00::53]:5353");
	assert_string_equal(server_for(rt, "www.public.corp.example"), "192.0.2.1"); /* exempt */
	assert_string_equal(server_for(rt, "badcorp.example"), "192.0.2.1");       /* not a suffix */
	assert_string_equal(server_for(rt, "example.org"), "192.0.2.1");
	assert_string_equal(server_for(rt, ""), "192.0.2.1");
	assert_int_equal(dnsroutes_lookup(rt, "x.corp.example")->n_servers, 2);
	assert_int_equal(dnsroutes_count(rt), 4);
	assert_int_equal(dnsroutes_count_split(rt), 3);
	dnsroutes_free(rt);
}

static void test_sources_and_changes(void **state)
{
	struct dnsroutes *rt;
	struct dns_route r, bad;

	assert_int_equal(dnsroutes_new(&rt), 0);
	assert_null(dnsroutes_lookup(rt, "example.org")); /* no default, no resolv.conf */
	r = mk("route", "Corp.Example. 10.0.0.1", "config");
	assert_int_equal(dnsroutes_add(rt, &r), 0);
	assert_string_equal(dnsroutes_get(rt, "corp.example")->suffix, "corp.example");
	r = mk("route", "corp.example 10.0.0.9", "api");
	assert_int_equal(dnsroutes_add(rt, &r), -EEXIST);       /* another source owns it */
	r = mk("route", "corp.example 10.0.0.9", "config");
	assert_int_equal(dnsroutes_add(rt, &r), 0);              /* the owner replaces it */
	assert_string_equal(server_for(rt, "a.corp.example"), "10.0.0.9");
	assert_int_equal(dnsroutes_del(rt, "corp.example", "api"), -EPERM);
	r = mk("route", "t1.example 10.1.0.1", "tunnel:t1");
	assert_int_equal(dnsroutes_add(rt, &r), 0);
	r = mk("route", "t1b.example 10.1.0.2", "tunnel:t1");
	assert_int_equal(dnsroutes_add(rt, &r), 0);
	assert_int_equal(dnsroutes_del_source(rt, "tunnel:t1"), 2);
	assert_int_equal(dnsroutes_del(rt, "corp.example", "config"), 0);
	assert_int_equal(dnsroutes_del(rt, "corp.example", "config"), -ENOENT);
	assert_int_equal(dnsroutes_count(rt), 0);

	memset(&bad, 0, sizeof(bad));
	snprintf(bad.suffix, sizeof(bad.suffix), "x.example");
	assert_int_equal(dnsroutes_add(rt, &bad), -EINVAL);     /* no servers, not exempt */
	bad.exempt = true;
	bad.suffix[0] = '\0';
	assert_int_equal(dnsroutes_add(rt, &bad), -EINVAL);     /* the default cannot be exempt */
	snprintf(bad.suffix, sizeof(bad.suffix), "bad..example");
	assert_int_equal(dnsroutes_add(rt, &bad), -EINVAL);
	dnsroutes_free(rt);
}

static void test_many_routes(void **state)
{
	struct dnsroutes *rt;
	struct dns_route r;
	char args[64], q[64], want[32];
	int i;

	assert_int_equal(dnsroutes_new(&rt), 0);
	for (i = 0; i < 1000; i++) {
		snprintf(args, sizeof(args), "d%d.example 10.0.%d.%d", i, i / 250, i % 250 + 1);
		r = mk("route", args, "api");
		assert_int_equal(dnsroutes_add(rt, &r), 0);
	}
	for (i = 0; i < 1000; i += 37) {
		snprintf(q, sizeof(q), "www.d%d.example", i);
		snprintf(want, sizeof(want), "10.0.%d.%d", i / 250, i % 250 + 1);
		assert_string_equal(server_for(rt, q), want);
	}
	assert_string_equal(server_for(rt, "www.d1000.example"), "-");
	dnsroutes_free(rt);
}

static void test_resolv_conf(void **state)
{
	char path[] = "/tmp/test-dnsroutes-XXXXXX";
	int fd = mkstemp(path);
	struct dnsroutes *rt;
	struct dns_route r;
	FILE *f;

	assert_true(fd >= 0);
	close(fd);
	f = fopen(path, "w");
	fputs("# comment\nsearch example\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0\n", f);
	fclose(f);
	assert_int_equal(dnsroutes_new(&rt), 0);
	assert_int_equal(dnsroutes_set_resolv_conf(rt, path), 0);
	assert_string_equal(server_for(rt, "example.org"), "127.0.0.53");
	assert_int_equal(dnsroutes_lookup(rt, "example.org")->n_servers, 2);
	assert_string_equal(dnsroutes_lookup(rt, "example.org")->source, "resolv.conf");
	assert_int_equal(dnsroutes_count_split(rt), 0);
	/* A configured default wins over resolv.conf. */
	r = mk("default", "192.0.2.7", "config");
	assert_int_equal(dnsroutes_add(rt, &r), 0);
	assert_string_equal(server_for(rt, "example.org"), "192.0.2.7");
	assert_int_equal(dnsroutes_count_split(rt), 0);
	unlink(path);
	dnsroutes_free(rt);
}

static void test_text_forms(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_storage out[4];
	struct dns_route r;
	char buf[64];

	assert_int_equal(dnsroutes_parse_server("10.0.0.1", &ss), 0);
	assert_string_equal(dnsroutes_format_server(&ss, buf, sizeof(buf)), "10.0.0.1");
	assert_int_equal(dnsroutes_parse_server("10.0.0.1:5353", &ss), 0);
	assert_string_equal(dnsroutes_format_server(&ss, buf, sizeof(buf)), "10.0.0.1:5353");
	assert_int_equal(dnsroutes_parse_server("fd00::1", &ss), 0);
	assert_string_equal(dnsroutes_format_server(&ss, buf, sizeof(buf)), "fd00::1");
	assert_int_equal(dnsroutes_parse_server("[fd00::1]:54", &ss), 0);
	assert_string_equal(dnsroutes_format_server(&ss, buf, sizeof(buf)), "[fd00::1]:54");
	assert_int_equal(dnsroutes_parse_server("fe80::1%lo", &ss), 0);
	assert_int_equal(dnsroutes_parse_server("10.0.0.1:0", &ss), -EINVAL);
	assert_int_equal(dnsroutes_parse_server("10.0.0.1:65536", &ss), -EINVAL);
	assert_int_equal(dnsroutes_parse_server("10.0.0", &ss), -EINVAL);
	assert_int_equal(dnsroutes_parse_server("[fd00::1", &ss), -EINVAL);
	assert_int_equal(dnsroutes_parse_server("[fd00::1]x", &ss), -EINVAL);
	assert_int_equal(dnsroutes_parse_server("host.example", &ss), -EINVAL);
	assert_int_equal(dnsroutes_parse_server("", &ss), -EINVAL);

	assert_int_equal(dnsroutes_parse_line("route", "corp.example 10.0.0.1,10.0.0.2", &r), 0);
	assert_int_equal(r.n_servers, 2);
	assert_int_equal(dnsroutes_parse_line("route", "corp.example", &r), -EINVAL);
	assert_int_equal(dnsroutes_parse_line("route", "10.0.0.1", &r), -EINVAL); /* a name, no server */
	assert_int_equal(dnsroutes_parse_line("route", "a.example 1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5", &r),
			 -EINVAL);
	assert_int_equal(dnsroutes_parse_line("exempt", "a.example 10.0.0.1", &r), -EINVAL);
	assert_int_equal(dnsroutes_parse_line("exempt", "a.example", &r), 0);
	assert_true(r.exempt);
	assert_int_equal(dnsroutes_parse_line("default", "", &r), -EINVAL);
	assert_int_equal(dnsroutes_parse_line("default", "192.0.2.1 [2001:db8::1]:53", &r), 0);
	assert_string_equal(r.suffix, "");
	assert_int_equal(dnsroutes_parse_line("routes", "a.example 10.0.0.1", &r), -EINVAL);

	assert_int_equal(dnsroutes_parse_resolv_conf("nameserver 1.2.3.4\nnameserver bogus\n"
						     "nameserver\n  nameserver 2001:db8::1\n", out, 4), 2);
	assert_int_equal(dnsroutes_parse_resolv_conf("nameserver 1.1.1.1\nnameserver 1.1.1.2\n"
						     "nameserver 1.1.1.3\n", out, 2), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_longest_suffix),
		cmocka_unit_test(test_sources_and_changes),
		cmocka_unit_test(test_many_routes),
		cmocka_unit_test(test_resolv_conf),
		cmocka_unit_test(test_text_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
