/* The pure half of the packet tunnel (tunnel.h): TUNNEL_SETTINGS checked into struct
 * tunnel_settings, and the routes and rules those settings mean for a slot. No kernel, no
 * event loop: the unit tests link this file alone.
 *
 * Trust: the settings come from an extension, which is foreign code. Every string is parsed
 * here; a bad one is an error naming the field, never a fault (only undecodable frames are). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "dnsroutes.h"
#include "tunnel.h"
#include "util.h"

static int view_cstr(const struct ne_view *v, char *buf, size_t size)
{
	if (v->len >= size || (v->len && memchr(v->p, '\0', v->len)))
		return -EINVAL;
	if (v->len) /* an empty view may have p NULL: no memchr/memcpy on it */
		memcpy(buf, v->p, v->len);
	buf[v->len] = '\0';
	return 0;
}

static int bad(char *err, size_t errlen, const char *field, size_t i, const char *what,
	       const struct ne_view *v)
{
	snprintf(err, errlen, "%s[%zu]: %s '%.*s'", field, i, what, (int)NE_MIN(v->len, (size_t)80), v->p);
	return -EINVAL;
}

static int parse_prefixes(const struct ne_view *v, size_t n, bool host_bits_ok, const char *field,
			  struct dp_prefix *out, char *err, size_t errlen)
{
	char text[128];
	size_t i;

	for (i = 0; i < n; i++) {
		if (view_cstr(&v[i], text, sizeof(text)) < 0 ||
		    dp_prefix_parse(text, host_bits_ok, &out[i]) < 0)
			return bad(err, errlen, field, i,
				   host_bits_ok ? "not an address with an optional prefix length" :
						  "not a network prefix (host bits must be zero)", &v[i]);
	}
	return 0;
}

static int parse_domains(const struct ne_view *v, size_t n, const char *field,
			 char (*out)[TUNNEL_DOMAIN_MAX], char *err, size_t errlen)
{
	char text[TUNNEL_DOMAIN_MAX], norm[DNS_NAME_TEXT_MAX];
	size_t i;

	for (i = 0; i < n; i++) {
		if (view_cstr(&v[i], text, sizeof(text)) < 0 ||
		    dns_name_normalize(text, norm, sizeof(norm)) < 0 || strlen(norm) >= TUNNEL_DOMAIN_MAX)
			return bad(err, errlen, field, i, "not a domain name", &v[i]);
		ne_strscpy(out[i], norm, TUNNEL_DOMAIN_MAX);
	}
	return 0;
}

int tunnel_settings_parse(const struct ne_msg_tunnel_settings *m, struct tunnel_settings *s,
			  char *err, size_t errlen)
{
	char text[128];
	size_t i;
	int r;

	memset(s, 0, sizeof(*s));
	s->flags = m->flags;
	if (m->flags & NE_TUNNEL_F_CLEAR)
		return 0;
	if (view_cstr(&m->remote_address, s->remote, sizeof(s->remote)) < 0) {
		snprintf(err, errlen, "remote_address: longer than %zu bytes or not text", sizeof(s->remote) - 1);
		return -EINVAL;
	}
	if (m->mtu && (m->mtu < 576 || m->mtu > 65535)) {
		snprintf(err, errlen, "mtu: %u is outside 576..65535", m->mtu);
		return -EINVAL;
	}
	if (m->overhead > 1500 - 576) {
		snprintf(err, errlen, "tunnel_overhead: %u leaves less than 576 bytes of 1500", m->overhead);
		return -EINVAL;
	}
	if (m->queues > NE_WIRE_TUNNEL_QUEUES_MAX) {
		snprintf(err, errlen, "queues: %u is outside 1..%d", m->queues, NE_WIRE_TUNNEL_QUEUES_MAX);
		return -EINVAL;
	}
	s->mtu = m->mtu ? m->mtu : m->overhead ? 1500 - m->overhead : 1420;
	s->queues = m->queues;
	s->n_addr = m->n_addresses;
	s->n_incl = m->n_included;
	s->n_excl = m->n_excluded;
	s->n_dns = m->n_dns;
	s->n_search = m->n_search;
	s->n_match = m->n_match;
	if ((r = parse_prefixes(m->addresses, m->n_addresses, true, "addresses", s->addr, err, errlen)) < 0 ||
	    (r = parse_prefixes(m->included, m->n_included, false, "included_routes", s->incl, err, errlen)) < 0 ||
	    (r = parse_prefixes(m->excluded, m->n_excluded, false, "excluded_routes", s->excl, err, errlen)) < 0 ||
	    (r = parse_domains(m->search, m->n_search, "search_domains", s->search, err, errlen)) < 0 ||
	    (r = parse_domains(m->match, m->n_match, "match_domains", s->match, err, errlen)) < 0)
		return r;
	for (i = 0; i < m->n_addresses; i++)
		if (s->addr[i].family == AF_INET && s->addr[i].len == 0)
			return bad(err, errlen, "addresses", i, "prefix length 0 is not an address", &m->addresses[i]);
	for (i = 0; i < m->n_dns; i++)
		if (view_cstr(&m->dns[i], text, sizeof(text)) < 0 ||
		    dnsroutes_parse_server(text, &s->dns[i]) < 0)
			return bad(err, errlen, "dns_servers", i, "not a server address", &m->dns[i]);
	if (m->n_match && !m->n_dns) {
		snprintf(err, errlen, "match_domains: given without dns_servers");
		return -EINVAL;
	}
	return 0;
}

static int plan_route(struct tunnel_plan *p, const struct dp_prefix *pfx, bool via_dev)
{
	size_t i;

	for (i = 0; i < p->n_routes; i++)
		if (!memcmp(&p->routes[i].prefix, pfx, sizeof(*pfx)))
			return 0; /* the first wins: an included route over a throw for the same prefix */
	if (p->n_routes >= TUNNEL_PLAN_ROUTES_MAX)
		return -E2BIG;
	p->routes[p->n_routes].prefix = *pfx;
	p->routes[p->n_routes].via_dev = via_dev;
	p->n_routes++;
	return 0;
}

static void plan_rule(struct tunnel_plan *p, int family, uint32_t mark, uint32_t mask, bool invert,
		      int suppress, uint32_t table, uint32_t priority)
{
	struct tunnel_plan_rule *r = &p->rules[p->n_rules++];

	r->family = family;
	r->spec = (struct dp_rule_spec){ mark, mask, invert, suppress, table, priority };
}

int tunnel_plan_build(const struct tunnel_settings *s, unsigned slot, bool per_app,
		      const struct dp_prefix *connected, size_t n_connected, struct tunnel_plan *p)
{
	static const int families[] = { AF_INET, AF_INET6 };
	uint32_t table = TUNNEL_TABLE_BASE + slot;
	struct dp_prefix net;
	size_t i, k;
	int r = 0;

	p->n_routes = p->n_rules = 0;
	if (slot >= TUNNEL_MAX)
		return -EINVAL;
	if (s->flags & NE_TUNNEL_F_CLEAR)
		return 0;
	/* Excluded routes first: an excluded prefix that is also included stays outside. */
	for (i = 0; i < s->n_excl && r == 0; i++)
		r = plan_route(p, &s->excl[i], false);
	for (i = 0; i < s->n_incl && r == 0; i++)
		r = plan_route(p, &s->incl[i], true);
	for (i = 0; i < s->n_addr && r == 0 && s->n_incl == 0; i++) {
		net = s->addr[i];
		dp_prefix_network(&net);
		if (net.len < (net.family == AF_INET ? 32 : 128))
			r = plan_route(p, &net, true);
	}
	if ((s->flags & NE_TUNNEL_F_EXCLUDE_LOCAL) || !(s->flags & NE_TUNNEL_F_ENFORCE_ROUTES))
		for (i = 0; i < n_connected && r == 0; i++)
			r = plan_route(p, &connected[i], false);
	if (r < 0)
		return r;
	for (k = 0; k < 2; k++) {
		if (per_app) {
			plan_rule(p, families[k], TUNNEL_APP_MARK(slot), TUNNEL_APP_MASK, false, -1, table,
				  TUNNEL_PRIO_APP + slot);
			continue;
		}
		plan_rule(p, families[k], TUNNEL_MARK_BYPASS, TUNNEL_MARK_BYPASS, true, 0, table,
			  TUNNEL_PRIO_SPECIFIC + slot);
		plan_rule(p, families[k], TUNNEL_MARK_BYPASS, TUNNEL_MARK_BYPASS, true, -1, table,
			  TUNNEL_PRIO_DEFAULT + slot);
	}
	return 0;
}

int tunnel_dns_routes(const struct tunnel_settings *s, const char *name, struct dns_route *out,
		      size_t max, size_t *ret_n)
{
	struct dns_route base = { 0 };
	size_t i, n = 0;

	*ret_n = 0;
	if (!s->n_dns)
		return 0;
	snprintf(base.source, sizeof(base.source), "tunnel:%s", name);
	base.n_servers = NE_MIN(s->n_dns, (size_t)DNSROUTE_SERVERS_MAX);
	memcpy(base.servers, s->dns, base.n_servers * sizeof(base.servers[0]));
	if (!s->n_match) {
		if (max < 1)
			return -E2BIG;
		out[0] = base; /* suffix "": the default route */
		*ret_n = 1;
		return 0;
	}
	for (i = 0; i < s->n_match; i++) {
		if (n >= max)
			return -E2BIG;
		out[n] = base;
		ne_strscpy(out[n].suffix, s->match[i], sizeof(out[n].suffix));
		n++;
	}
	*ret_n = n;
	return 0;
}

int tunnel_slot_alloc(const bool used[TUNNEL_MAX])
{
	int i;

	for (i = 0; i < TUNNEL_MAX; i++)
		if (!used[i])
			return i;
	return -ENOSPC;
}

int tunnel_ifname_check(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n >= 16 || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (name[i] <= ' ' || name[i] == '/' || name[i] == ':' || (unsigned char)name[i] >= 0x7f)
			return -EINVAL;
	return 0;
}
