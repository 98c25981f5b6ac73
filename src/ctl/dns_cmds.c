/* netextctl dns: the DNS proxy's split-DNS routes and status (docs/dns.md).
 *
 *   dns route add SUFFIX SERVER [SERVER…]   route SUFFIX ("." for the default) to SERVERs
 *   dns route add --exempt SUFFIX           send SUFFIX's names back to the default route
 *   dns route del SUFFIX                    delete a route of the control API
 *   dns route list [--json]                 every route, longest-suffix semantics
 *   dns status [--json]                     interception, engine and provider counters */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

#define DNS_USAGE \
	"dns route add SUFFIX SERVER [SERVER...] | dns route add --exempt SUFFIX |\n" \
	"           dns route del SUFFIX | dns route list [--json] | dns status [--json]"

static int usage_error(const char *what)
{
	fprintf(stderr, "netextctl: %s\nusage: netextctl " DNS_USAGE "\n", what);
	return EXIT_USAGE;
}

static const char *str(json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : def;
}

/* Splits words into flags (--exempt, --json; "--" ends them) and positional arguments. */
struct words {
	bool exempt, json;
	int n;
	char *pos[16];
};

static int parse_words(int argc, char **argv, bool allow_exempt, struct words *w)
{
	bool flags = true;
	int i;

	for (i = 0; i < argc; i++) {
		if (flags && !strcmp(argv[i], "--")) {
			flags = false;
		} else if (flags && allow_exempt && !strcmp(argv[i], "--exempt")) {
			w->exempt = true;
		} else if (flags && !strcmp(argv[i], "--json")) {
			w->json = true;
		} else if (flags && argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "netextctl: unknown option '%s'\n", argv[i]);
			return -1;
		} else if (w->n == (int)(sizeof(w->pos) / sizeof(w->pos[0]))) {
			fprintf(stderr, "netextctl: too many arguments\n");
			return -1;
		} else {
			w->pos[w->n++] = argv[i];
		}
	}
	if (w->json)
		opt_json = true;
	return 0;
}

/* "198.18.1.2, [fd00::1]:5353", or what an exemption means. */
static void servers_text(json_t *r, char *buf, size_t size)
{
	json_t *a = json_object_get(r, "servers"), *v;
	size_t i, len = 0;

	buf[0] = '\0';
	if (json_is_true(json_object_get(r, "exempt"))) {
		snprintf(buf, size, "(exempt: uses the default route)");
		return;
	}
	json_array_foreach(a, i, v) {
		int n = snprintf(buf + len, size - len, "%s%s", i ? " " : "",
				 json_string_value(v) ? json_string_value(v) : "?");

		if (n < 0 || (size_t)n >= size - len)
			break;
		len += (size_t)n;
	}
	if (!json_array_size(a))
		snprintf(buf, size, "-");
}

static void show_route(json_t *r)
{
	char servers[512];

	if (json_is_true(json_object_get(r, "exempt"))) {
		printf("route %s: exempt, its names use the default route (source %s)\n", str(r, "suffix", "?"),
		       str(r, "source", "?"));
		return;
	}
	servers_text(r, servers, sizeof(servers));
	printf("route %s → %s (source %s)\n", str(r, "suffix", "?"), servers, str(r, "source", "?"));
}

static void show_deleted(json_t *r)
{
	printf("route %s deleted\n", str(r, "suffix", "?"));
}

static void show_default(json_t *r)
{
	json_t *def = json_object_get(r, "default");
	const char *src = str(def, "source", "none");
	char servers[512];

	servers_text(def, servers, sizeof(servers));
	if (!strcmp(src, "resolv.conf"))
		printf("default: the nameservers of %s (%s), re-read when it changes\n",
		       str(def, "resolv_conf", "?"), servers);
	else if (!strcmp(src, "config"))
		printf("default: %s, from %s\n", servers, str(r, "config_file", "the configuration file"));
	else if (!strcmp(src, "api"))
		printf("default: %s, from netextctl dns route add . (the control API)\n", servers);
	else if (!strcmp(src, "none"))
		printf("default: none: %s has no nameservers and no route \".\" is set; names outside "
		       "the routes cannot be resolved\n", str(def, "resolv_conf", "resolv.conf"));
	else
		printf("default: %s, from %s\n", servers, src);
}

static void show_routes(json_t *r)
{
	json_t *routes = json_object_get(r, "routes"), *rt;
	int w = (int)strlen("SUFFIX");
	size_t i;

	json_array_foreach(routes, i, rt) {
		int n = (int)strlen(str(rt, "suffix", "?"));

		if (n > w)
			w = n;
	}
	printf("%-*s  %-40s  %s\n", w, "SUFFIX", "SERVERS", "SOURCE");
	json_array_foreach(routes, i, rt) {
		char servers[512];

		servers_text(rt, servers, sizeof(servers));
		printf("%-*s  %-40s  %s\n", w, str(rt, "suffix", "?"), servers, str(rt, "source", "?"));
	}
	if (!json_array_size(routes))
		printf("(no routes)\n");
	show_default(r);
}

/* The engine's counters are its own business: print any JSON readably, nested by indent. */

static void print_scalar(json_t *v)
{
	if (json_is_string(v))
		printf("%s", json_string_value(v));
	else if (json_is_true(v))
		printf("yes");
	else if (json_is_false(v))
		printf("no");
	else if (json_is_integer(v))
		printf("%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		printf("%g", json_real_value(v));
	else
		printf("-");
}

static bool all_scalars(json_t *a)
{
	json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		if (json_is_object(v) || json_is_array(v))
			return false;
	return true;
}

/* "KEY:" at indent, or nothing for an array's element; then the value. */
static void print_value(const char *key, json_t *v, int indent)
{
	const char *k;
	json_t *x;
	size_t i;

	if (key)
		printf("%*s%s:%s", indent, "", key, json_is_object(v) && json_object_size(v) ? "\n" : " ");
	else if (!json_is_object(v) || !json_object_size(v))
		printf("%*s", indent, "");
	if (json_is_object(v)) {
		if (!json_object_size(v))
			printf("-\n");
		json_object_foreach(v, k, x)
			print_value(k, x, key ? indent + 2 : indent);
	} else if (json_is_array(v) && all_scalars(v)) {
		json_array_foreach(v, i, x) {
			printf("%s", i ? ", " : "");
			print_scalar(x);
		}
		printf("%s\n", json_array_size(v) ? "" : "-");
	} else if (json_is_array(v)) {
		printf("\n");
		json_array_foreach(v, i, x) {
			printf("%*s[%zu]\n", indent + 2, "", i);
			print_value(NULL, x, indent + 4);
		}
	} else {
		print_scalar(v);
		printf("\n");
	}
}

static void show_status(json_t *r)
{
	json_t *engine = json_object_get(r, "engine"), *prov = json_object_get(r, "provider");

	printf("intercepting: %s\n", json_is_true(json_object_get(r, "intercepting")) ? "yes" : "no");
	if (json_is_object(engine))
		print_value("engine", engine, 0);
	else
		printf("engine: (no counters)\n");
	if (json_is_object(prov))
		print_value("provider", prov, 0);
	else
		printf("provider: none (queries follow the routes: netextctl dns route list)\n");
}

static int route_add(struct words *w)
{
	json_t *servers;
	int i;

	if (w->n < 1)
		return usage_error("dns route add needs a suffix (\".\" for the default route)");
	if (w->exempt && w->n > 1)
		return usage_error("an exemption has no servers: its names go to the default route");
	if (!w->exempt && w->n < 2)
		return usage_error("dns route add needs at least one server (or --exempt)");
	servers = json_array();
	for (i = 1; i < w->n; i++)
		json_array_append_new(servers, json_string(w->pos[i]));
	return ctl_run("dns.route.add", json_pack("{s:s, s:o, s:b}", "suffix", w->pos[0], "servers", servers,
						  "exempt", w->exempt), show_route);
}

static int cmd_route(int argc, char **argv)
{
	struct words w = { 0 };

	if (argc < 2)
		return usage_error("dns route needs add, del or list");
	if (parse_words(argc - 2, argv + 2, !strcmp(argv[1], "add"), &w) < 0)
		return EXIT_USAGE;
	if (!strcmp(argv[1], "add"))
		return route_add(&w);
	if (!strcmp(argv[1], "del") || !strcmp(argv[1], "delete")) {
		if (w.n != 1)
			return usage_error("dns route del takes one suffix");
		return ctl_run("dns.route.del", json_pack("{s:s}", "suffix", w.pos[0]), show_deleted);
	}
	if (!strcmp(argv[1], "list")) {
		if (w.n)
			return usage_error("dns route list takes no argument");
		return ctl_run("dns.route.list", NULL, show_routes);
	}
	return usage_error("dns route needs add, del or list");
}

int cmd_dns(int argc, char **argv)
{
	struct words w = { 0 };

	if (argc >= 2 && !strcmp(argv[1], "route"))
		return cmd_route(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "status")) {
		if (parse_words(argc - 2, argv + 2, false, &w) < 0)
			return EXIT_USAGE;
		if (w.n)
			return usage_error("dns status takes no argument");
		return ctl_run("dns.status", NULL, show_status);
	}
	return usage_error(argc >= 2 ? "unknown dns command" : "dns needs route or status");
}
