/* Split-DNS routes of the control API: see dnsctl.h.
 *
 * Trust: requests reach here only from root or the admin group (control.c checks the peer's
 * credentials), but their parameters are still untrusted text: every suffix and server is
 * parsed by the same code that parses the configuration file (dnsroutes.c) before anything
 * is stored. Stored routes are parsed again when loaded, since the database is a file an
 * administrator may edit. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "dnsctl.h"
#include "dnsproxy.h"
#include "dnsroutes.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define SERVER_TEXT_MAX 96 /* "[addr%ifname]:port" fits with room to spare */

/* "" or "." → "" (the default route); anything else must be a hostname. */
static int suffix_normalize(const char *in, char *out, size_t size)
{
	if (!strcmp(in, "") || !strcmp(in, ".")) {
		out[0] = '\0';
		return 0;
	}
	return dns_name_normalize(in, out, size) < 0 ? -EINVAL : 0;
}

/* The suffix as people and the store see it: "." for the default route. */
static const char *suffix_shown(const char *suffix)
{
	return suffix[0] ? suffix : ".";
}

static int servers_text(const struct dns_route *r, char *buf, size_t size)
{
	char one[SERVER_TEXT_MAX];
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < r->n_servers; i++) {
		int n = snprintf(buf + len, size - len, "%s%s", i ? " " : "",
				 dnsroutes_format_server(&r->servers[i], one, sizeof(one)));

		if (n < 0 || (size_t)n >= size - len)
			return -ENOBUFS;
		len += (size_t)n;
	}
	return 0;
}

static json_t *servers_json(const struct dns_route *r)
{
	char one[SERVER_TEXT_MAX];
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < r->n_servers; i++)
		json_array_append_new(a, json_string(dnsroutes_format_server(&r->servers[i], one, sizeof(one))));
	return a;
}

static json_t *route_json(const struct dns_route *r)
{
	return json_pack("{s:s, s:b, s:o, s:s}", "suffix", suffix_shown(r->suffix), "exempt", r->exempt,
			 "servers", servers_json(r), "source", r->source);
}

/* ---- loading ------------------------------------------------------------------------ */

static int route_from_store(const struct store_dns_route *sr, struct dns_route *ret)
{
	char buf[sizeof(sr->servers)], *tok, *save = NULL;
	struct dns_route r;

	memset(&r, 0, sizeof(r));
	snprintf(r.source, sizeof(r.source), DNSCTL_SOURCE);
	r.exempt = sr->exempt;
	if (suffix_normalize(sr->suffix, r.suffix, sizeof(r.suffix)) < 0)
		return -EINVAL;
	memcpy(buf, sr->servers, sizeof(buf));
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (r.n_servers >= DNSROUTE_SERVERS_MAX || dnsroutes_parse_server(tok, &r.servers[r.n_servers]) < 0)
			return -EINVAL;
		r.n_servers++;
	}
	*ret = r;
	return 0;
}

/* "198.18.1.2 198.18.1.3", or "(exempt)" for an exemption. */
static const char *route_text(const struct dns_route *r, char *buf, size_t size)
{
	if (r->exempt)
		snprintf(buf, size, "(exempt)");
	else if (servers_text(r, buf, size) < 0)
		snprintf(buf, size, "?");
	return buf;
}

static int load_one(const struct store_dns_route *sr, void *userdata)
{
	struct daemon *d = userdata;
	const struct dns_route *cur;
	char theirs[512];
	struct dns_route r;
	int e;

	if (route_from_store(sr, &r) < 0) {
		log_warnx("dns: stored route %s → '%s' does not parse (an interface gone?); skipped, "
			  "replace it with netextctl dns route add", sr->suffix, sr->servers);
		return 0;
	}
	cur = dnsroutes_get(d->dns_routes, r.suffix);
	if (cur && strcmp(cur->source, "resolv.conf") && strcmp(cur->source, DNSCTL_SOURCE)) {
		log_warnx("dns: stored route %s → %s (netextctl dns route add) is skipped: %s routes %s → %s "
			  "and wins; delete one of them", sr->suffix, sr->exempt ? "(exempt)" : sr->servers,
			  strcmp(cur->source, "config") ? cur->source :
			  d->opt.config_path[0] ? d->opt.config_path : "the configuration file",
			  sr->suffix, route_text(cur, theirs, sizeof(theirs)));
		return 0;
	}
	e = dnsroutes_add(d->dns_routes, &r);
	if (e < 0)
		log_warnx("dns: stored route %s is skipped: %s", sr->suffix, strerror(-e));
	return 0;
}

int dnsctl_load(struct daemon *d)
{
	size_t before = dnsroutes_count(d->dns_routes);
	int e;

	e = store_dns_route_foreach(d->store, load_one, d);
	if (e < 0) {
		log_warnx("dns: cannot read the stored routes in %s/netext.db: %s", d->opt.state_dir,
			  strerror(-e));
		return e;
	}
	if (dnsroutes_count(d->dns_routes) > before)
		log_info("dns: %zu route(s) from the store", dnsroutes_count(d->dns_routes) - before);
	return 0;
}

/* ---- requests --------------------------------------------------------------------- */

/* Says where a route the API may not change comes from and what to do instead. */
static void error_not_ours(struct daemon *d, struct ctl_req *req, const struct dns_route *cur)
{
	char what[300];

	if (cur->suffix[0])
		snprintf(what, sizeof(what), "route %s", cur->suffix);
	else
		snprintf(what, sizeof(what), "the default route (.)");
	if (!strcmp(cur->source, "config"))
		ctl_req_error(req, "forbidden", "%s comes from %s; edit it there", what,
			      d->opt.config_path[0] ? d->opt.config_path : "netextd's configuration file");
	else if (!strncmp(cur->source, "tunnel:", 7))
		ctl_req_error(req, "forbidden", "%s comes from packet tunnel %s; it follows that tunnel's "
			      "DNS settings and goes away when the tunnel stops", what, cur->source + 7);
	else
		ctl_req_error(req, "forbidden", "%s comes from %s, not from the control API", what, cur->source);
}

static int param_suffix(struct ctl_req *req, json_t *params, char *out, size_t size)
{
	json_t *v = json_object_get(params, "suffix");
	const char *s = json_string_value(v);

	if (!json_is_string(v) || strlen(s) != json_string_length(v) || json_string_length(v) > 1024) {
		ctl_req_error(req, "invalid-params", "'suffix' must be a domain suffix, or \".\" for the default route");
		return -EINVAL;
	}
	if (suffix_normalize(s, out, size) < 0) {
		ctl_req_error(req, "invalid-params",
			      "'%.300s' is not a domain suffix: labels of letters, digits, '-' or '_', at most "
			      "63 characters each and 253 in all (\".\" is the default route)", s);
		return -EINVAL;
	}
	return 0;
}

static int param_servers(struct ctl_req *req, json_t *params, struct dns_route *r)
{
	json_t *a = json_object_get(params, "servers"), *v;
	size_t i;

	if (!a)
		return 0;
	if (!json_is_array(a)) {
		ctl_req_error(req, "invalid-params", "'servers' must be an array of server addresses");
		return -EINVAL;
	}
	if (json_array_size(a) > DNSROUTE_SERVERS_MAX) {
		ctl_req_error(req, "invalid-params", "too many servers (%zu): a route has at most %d",
			      json_array_size(a), DNSROUTE_SERVERS_MAX);
		return -EINVAL;
	}
	json_array_foreach(a, i, v) {
		const char *s = json_string_value(v);

		if (!s || strlen(s) != json_string_length(v)) {
			ctl_req_error(req, "invalid-params", "'servers' must be an array of strings");
			return -EINVAL;
		}
		if (dnsroutes_parse_server(s, &r->servers[i]) < 0) {
			ctl_req_error(req, "invalid-params",
				      "'%.200s' is not an IP address, [IPv6]:port or IPv4:port", s);
			return -EINVAL;
		}
		r->n_servers = i + 1;
	}
	return 0;
}

/* The route a dns.route.add request describes, checked as the configuration file's are. */
static int route_from_params(struct ctl_req *req, json_t *params, struct dns_route *ret)
{
	json_t *ex = json_object_get(params, "exempt");
	struct dns_route r;

	memset(&r, 0, sizeof(r));
	snprintf(r.source, sizeof(r.source), DNSCTL_SOURCE);
	if (param_suffix(req, params, r.suffix, sizeof(r.suffix)) < 0)
		return -EINVAL;
	if (ex && !json_is_boolean(ex)) {
		ctl_req_error(req, "invalid-params", "'exempt' must be true or false");
		return -EINVAL;
	}
	r.exempt = json_is_true(ex);
	if (param_servers(req, params, &r) < 0)
		return -EINVAL;
	if (r.exempt && !r.suffix[0]) {
		ctl_req_error(req, "invalid-params", "the default route cannot be exempt: an exemption "
			      "sends a domain back to the default route");
		return -EINVAL;
	}
	if (r.exempt && r.n_servers) {
		ctl_req_error(req, "invalid-params", "an exemption has no servers: names under %s go to "
			      "the default route", r.suffix);
		return -EINVAL;
	}
	if (!r.exempt && !r.n_servers) {
		ctl_req_error(req, "invalid-params", "route %s needs at least one server (or \"exempt\": true)",
			      suffix_shown(r.suffix));
		return -EINVAL;
	}
	*ret = r;
	return 0;
}

static int route_to_store(const struct dns_route *r, struct store_dns_route *ret)
{
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->suffix, sizeof(ret->suffix), "%s", suffix_shown(r->suffix));
	ret->exempt = r->exempt;
	return servers_text(r, ret->servers, sizeof(ret->servers));
}

/* The route the API owns for suffix: 1 and *ret filled, 0 when there is none (or only the
 * resolv.conf default), or -EPERM after answering req when another source owns it. */
static int api_route(struct daemon *d, struct ctl_req *req, const char *suffix, struct dns_route *ret)
{
	const struct dns_route *cur = dnsroutes_get(d->dns_routes, suffix);

	if (!cur || !strcmp(cur->source, "resolv.conf"))
		return 0;
	if (strcmp(cur->source, DNSCTL_SOURCE)) {
		error_not_ours(d, req, cur);
		return -EPERM;
	}
	*ret = *cur;
	return 1;
}

/* After the store took a change the table refused: puts the store back as it was. */
static void store_undo(struct daemon *d, const struct dns_route *r, const struct dns_route *old, bool had_old)
{
	struct store_dns_route sr;
	int e;

	if (had_old)
		e = route_to_store(old, &sr) < 0 ? -ENOBUFS : store_dns_route_put(d->store, &sr);
	else
		e = store_dns_route_delete(d->store, suffix_shown(r->suffix));
	if (e < 0)
		log_warnx("dns: the store keeps route %s that the table refused: %s", suffix_shown(r->suffix),
			  strerror(-e));
}

void dnsctl_route_add(struct daemon *d, struct ctl_req *req, json_t *params, uid_t uid)
{
	struct store_dns_route sr;
	struct dns_route r, old;
	int had_old, e;

	if (route_from_params(req, params, &r) < 0)
		return;
	had_old = api_route(d, req, r.suffix, &old);
	if (had_old < 0)
		return;
	if (!had_old && dnsroutes_count(d->dns_routes) >= DNSROUTES_MAX) {
		ctl_req_error(req, "failed", "there are %d routes already, the most netextd keeps", DNSROUTES_MAX);
		return;
	}
	if (route_to_store(&r, &sr) < 0) {
		ctl_req_error(req, "internal", "the servers' text does not fit the store");
		return;
	}
	e = store_dns_route_put(d->store, &sr);
	if (e < 0) {
		ctl_req_error(req, "failed", "cannot save the route (nothing changed): %s", strerror(-e));
		return;
	}
	e = dnsroutes_add(d->dns_routes, &r);
	if (e < 0) {
		store_undo(d, &r, &old, had_old);
		ctl_req_error(req, "internal", "cannot add the route (nothing changed): %s", strerror(-e));
		return;
	}
	dnsproxy_reconfigure(d);
	log_info("dns: route %s → %s %s by uid %u", sr.suffix, r.exempt ? "(exempt: default)" : sr.servers,
		 had_old ? "replaced" : "added", (unsigned)uid);
	ctl_req_reply(req, route_json(&r));
}

void dnsctl_route_del(struct daemon *d, struct ctl_req *req, json_t *params, uid_t uid)
{
	char suffix[DNS_NAME_TEXT_MAX];
	struct dns_route old;
	int e;

	if (param_suffix(req, params, suffix, sizeof(suffix)) < 0)
		return;
	e = api_route(d, req, suffix, &old);
	if (e < 0)
		return;
	if (e == 0) {
		if (suffix[0])
			ctl_req_error(req, "not-found", "there is no route for %s (netextctl dns route list)", suffix);
		else
			ctl_req_error(req, "not-found", "there is no default route to delete: the default is "
				      "the nameservers of %s", d->opt.dns_resolv_conf);
		return;
	}
	e = store_dns_route_delete(d->store, suffix_shown(suffix));
	if (e == -ENOENT)
		log_warnx("dns: route %s was in the table but not in the store", suffix_shown(suffix));
	else if (e < 0) {
		ctl_req_error(req, "failed", "cannot delete the stored route (nothing changed): %s", strerror(-e));
		return;
	}
	e = dnsroutes_del(d->dns_routes, suffix, DNSCTL_SOURCE);
	if (e < 0) /* api_route found it ours a moment ago */
		log_warnx("dns: route %s: %s", suffix_shown(suffix), strerror(-e));
	dnsproxy_reconfigure(d);
	log_info("dns: route %s deleted by uid %u", suffix_shown(suffix), (unsigned)uid);
	ctl_req_reply(req, json_pack("{s:s}", "suffix", suffix_shown(suffix)));
}

static int list_one(const struct dns_route *r, void *userdata)
{
	json_array_append_new(userdata, route_json(r));
	return 0;
}

/* Which default is in force: a route ".", else resolv.conf's nameservers, else none. */
static json_t *default_json(struct daemon *d)
{
	const struct dns_route *def = dnsroutes_get(d->dns_routes, "");
	json_t *o;

	if (!def)
		return json_pack("{s:s, s:[], s:s}", "source", "none", "servers", "resolv_conf",
				 d->opt.dns_resolv_conf);
	o = json_pack("{s:s, s:o}", "source", def->source, "servers", servers_json(def));
	if (!strcmp(def->source, "resolv.conf"))
		json_object_set_new(o, "resolv_conf", json_string(d->opt.dns_resolv_conf));
	return o;
}

void dnsctl_route_list(struct daemon *d, struct ctl_req *req, json_t *params)
{
	json_t *routes = json_array();

	dnsroutes_foreach(d->dns_routes, list_one, routes);
	ctl_req_reply(req, json_pack("{s:o, s:o, s:s?}", "routes", routes, "default", default_json(d),
				     "config_file", d->opt.config_path[0] ? d->opt.config_path : NULL));
	(void)params;
}
