/* netextd's configuration file: "key = value" lines, '#' comments, optional [netextd]
 * section header. Trusts the file's owner (root); still refuses unknown keys and bad
 * values with the line number, because a typo silently ignored is a wrong daemon. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "dnsproxy.h"
#include "dnsroutes.h"
#include "log.h"
#include "store.h"
#include "util.h"

void daemon_options_defaults(struct daemon_options *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->state_dir, sizeof(o->state_dir), "/var/lib/netext");
	snprintf(o->policy_dir, sizeof(o->policy_dir), "/etc/netext/policy.d");
	snprintf(o->run_dir, sizeof(o->run_dir), "/run/netext");
	snprintf(o->extension_user, sizeof(o->extension_user), "%s", NETEXT_EXTENSION_USER);
	snprintf(o->admin_group, sizeof(o->admin_group), "netext-admin");
	o->heartbeat_ms = 1000;
	o->heartbeat_timeout_ms = 5000;
	o->start_timeout_ms = 10000;
	o->stop_timeout_ms = 5000;
	o->message_timeout_ms = 10000;
	o->restart_max = 5;
	o->restart_window_s = 60;
	snprintf(o->dns_intercept, sizeof(o->dns_intercept), "auto");
	o->dns_port = DNS_PROXY_PORT_DEFAULT;
	o->dns_table = DNS_ROUTE_TABLE_DEFAULT;
	snprintf(o->dns_resolv_conf, sizeof(o->dns_resolv_conf), "/etc/resolv.conf");
	o->dns_timeout_ms = 1500;
	o->dns_attempts = 3;
	o->dns_cache_bytes = 0;
	o->dns_max_tcp_clients = 256;
	o->dns_tcp_idle_ms = 10000;
}

static int parse_uint(const char *v, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return -EINVAL;
	*ret = (unsigned)n;
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*ret = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int set_string(char *dst, size_t size, const char *v)
{
	return ne_strscpy(dst, v, size) < 0 ? -EINVAL : 0;
}

static int apply_key(struct daemon_options *o, const char *k, const char *v)
{
	if (!strcmp(k, "state_dir"))
		return set_string(o->state_dir, sizeof(o->state_dir), v);
	if (!strcmp(k, "run_dir"))
		return set_string(o->run_dir, sizeof(o->run_dir), v);
	if (!strcmp(k, "cgroup"))
		return set_string(o->cgroup, sizeof(o->cgroup), v);
	if (!strcmp(k, "extension_user"))
		return set_string(o->extension_user, sizeof(o->extension_user), v);
	if (!strcmp(k, "admin_group"))
		return set_string(o->admin_group, sizeof(o->admin_group), v);
	if (!strcmp(k, "heartbeat_interval_ms"))
		return parse_uint(v, 50, 600000, &o->heartbeat_ms);
	if (!strcmp(k, "heartbeat_timeout_ms"))
		return parse_uint(v, 100, 3600000, &o->heartbeat_timeout_ms);
	if (!strcmp(k, "start_timeout_ms"))
		return parse_uint(v, 100, 3600000, &o->start_timeout_ms);
	if (!strcmp(k, "stop_timeout_ms"))
		return parse_uint(v, 100, 600000, &o->stop_timeout_ms);
	if (!strcmp(k, "message_timeout_ms"))
		return parse_uint(v, 100, 3600000, &o->message_timeout_ms);
	if (!strcmp(k, "restart_max"))
		return parse_uint(v, 1, 1000, &o->restart_max);
	if (!strcmp(k, "restart_window_s"))
		return parse_uint(v, 1, 86400, &o->restart_window_s);
	if (!strcmp(k, "policy_dir"))
		return set_string(o->policy_dir, sizeof(o->policy_dir), v);
	if (!strcmp(k, "developer_mode"))
		return parse_bool(v, &o->developer);
	return -ENOKEY;
}

/* "route = SUFFIX SERVER [SERVER…]", "exempt = SUFFIX", "default = SERVER [SERVER…]": checked
 * here (so a typo has a line number) and kept as "KIND ARGS" for dnsroutes_load_config(). */
static int dns_route_line(struct daemon_options *o, const char *kind, const char *v)
{
	struct dns_route r;
	int e;

	if (o->n_dns_routes >= DNS_CONFIG_ROUTES_MAX)
		return -E2BIG;
	e = dnsroutes_parse_line(kind, v, &r);
	if (e < 0)
		return e;
	if ((size_t)snprintf(o->dns_routes[o->n_dns_routes], sizeof(o->dns_routes[0]), "%s %s", kind, v) >=
	    sizeof(o->dns_routes[0]))
		return -E2BIG;
	o->n_dns_routes++;
	return 0;
}

static int apply_dns_key(struct daemon_options *o, const char *k, const char *v)
{
	if (!strcmp(k, "intercept")) {
		if (strcmp(v, "auto") && strcmp(v, "always") && strcmp(v, "never"))
			return -EINVAL;
		return set_string(o->dns_intercept, sizeof(o->dns_intercept), v);
	}
	if (!strcmp(k, "port"))
		return parse_uint(v, 1, 65535, &o->dns_port);
	if (!strcmp(k, "table"))
		return parse_uint(v, 256, 0x7fffffffu, &o->dns_table);
	if (!strcmp(k, "resolv_conf"))
		return set_string(o->dns_resolv_conf, sizeof(o->dns_resolv_conf), v);
	if (!strcmp(k, "timeout_ms"))
		return parse_uint(v, 50, 60000, &o->dns_timeout_ms);
	if (!strcmp(k, "attempts"))
		return parse_uint(v, 1, 10, &o->dns_attempts);
	if (!strcmp(k, "cache_bytes"))
		return parse_uint(v, 0, 1u << 30, &o->dns_cache_bytes);
	if (!strcmp(k, "max_tcp_clients"))
		return parse_uint(v, 1, 65536, &o->dns_max_tcp_clients);
	if (!strcmp(k, "tcp_idle_ms"))
		return parse_uint(v, 100, 3600000, &o->dns_tcp_idle_ms);
	if (!strcmp(k, "route") || !strcmp(k, "exempt") || !strcmp(k, "default"))
		return dns_route_line(o, k, v);
	return -ENOKEY;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int load_line(struct daemon_options *o, const char *path, unsigned lineno, char *line, bool *in_dns)
{
	char *s = trim(line), *eq, *k, *v;
	int r;

	if (*s == '\0' || *s == '#' || *s == ';')
		return 0;
	if (*s == '[') {
		if (strcmp(s, "[netextd]") && strcmp(s, "[dns]")) {
			log_warnx("%s:%u: unknown section %s (known: [netextd], [dns])", path, lineno, s);
			return -EINVAL;
		}
		*in_dns = !strcmp(s, "[dns]");
		return 0;
	}
	eq = strchr(s, '=');
	if (!eq) {
		log_warnx("%s:%u: expected key = value", path, lineno);
		return -EINVAL;
	}
	*eq = '\0';
	k = trim(s);
	v = trim(eq + 1);
	r = *in_dns ? apply_dns_key(o, k, v) : apply_key(o, k, v);
	if (r == -ENOKEY)
		log_warnx("%s:%u: unknown key '%s'%s", path, lineno, k, *in_dns ? " in [dns]" : "");
	else if (r == -E2BIG)
		log_warnx("%s:%u: too many routes or a line too long", path, lineno);
	else if (r < 0)
		log_warnx("%s:%u: invalid value '%s' for %s", path, lineno, v, k);
	return r < 0 ? -EINVAL : 0;
}

int daemon_options_load(struct daemon_options *o, const char *path)
{
	char line[1024];
	unsigned lineno = 0;
	bool in_dns = false;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f) {
		log_warn("cannot read configuration %s", path);
		return ne_negerrno();
	}
	while (r == 0 && fgets(line, sizeof(line), f))
		r = load_line(o, path, ++lineno, line, &in_dns);
	fclose(f);
	return r;
}

/* store.h: kept here so that code using it does not pull in the whole store. */
unsigned store_config_option_uint(const struct store_config *sc, const char *key, unsigned def,
				  unsigned min, unsigned max)
{
	size_t i;

	for (i = 0; i < sc->n_options; i++)
		if (!strcmp(sc->keys[i], key)) {
			char *end;
			unsigned long v = strtoul(sc->values[i], &end, 10);

			if (*sc->values[i] && !*end && v >= min && v <= max)
				return (unsigned)v;
			log_warnx("configuration %s: option %s=%s is not a number in %u..%u; using %u",
				  sc->name, key, sc->values[i], min, max, def);
			return def;
		}
	return def;
}
