/* Filter rules: compile once, match per flow (frules.h).
 *
 * Trust: the wire rules come from an extension and are checked here field by field; a
 * compiled rule holds only values that passed (normalized hostnames, absolute executable
 * paths and cgroup paths without "..", networks without host bits). */
#include "frules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "dp_route.h"
#include "util.h"

/* The one prefix parser of the daemon (dp_route.c); rules want networks without host bits. */
int frules_parse_net(const char *s, struct frule_net *ret)
{
	struct dp_prefix p;

	if (dp_prefix_parse(s, false, &p) < 0)
		return -EINVAL;
	*ret = (struct frule_net){ .set = true, .family = p.family, .prefix = p.len };
	memcpy(ret->addr, p.addr, sizeof(ret->addr));
	return 0;
}

bool frules_net_contains(const struct frule_net *n, int family, const uint8_t *addr)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != family)
		return false;
	if (memcmp(n->addr, addr, full))
		return false;
	if (rest && ((n->addr[full] ^ addr[full]) & (uint8_t)(0xff << (8 - rest))))
		return false;
	return true;
}

bool frules_is_loopback(int family, const uint8_t *addr)
{
	static const uint8_t v6_lo[16] = { [15] = 1 };

	if (family == AF_INET)
		return addr[0] == 127;
	return !memcmp(addr, v6_lo, 16);
}

static bool net_is_loopback(const struct frule_net *n)
{
	return (n->family == AF_INET && n->prefix >= 8 && n->addr[0] == 127) ||
	       (n->family == AF_INET6 && n->prefix == 128 && frules_is_loopback(AF_INET6, n->addr));
}

static char *view_dup(struct ne_view v)
{
	return v.len ? strndup(v.p, v.len) : NULL;
}

/* An absolute path without "." or ".." components or a doubled '/', trailing '/' removed. */
static int path_check(char *p)
{
	size_t len = strlen(p);

	if (p[0] != '/' || strstr(p, "//") || strstr(p, "/./") || strstr(p, "/../"))
		return -EINVAL;
	if (len >= 2 && (!strcmp(p + len - 2, "/.") || (len >= 3 && !strcmp(p + len - 3, "/.."))))
		return -EINVAL;
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	return 0;
}

static int net_field(struct ne_view v, struct frule_net *ret, const char *what, size_t i,
		     char *err, size_t errlen)
{
	char buf[NE_WIRE_STR_MAX + 1];

	if (!v.len)
		return 0;
	memcpy(buf, v.p, v.len);
	buf[v.len] = '\0';
	if (frules_parse_net(buf, ret) < 0) {
		snprintf(err, errlen, "rule %zu: %s '%.64s' is not an address or network "
			 "(a.b.c.d/len, x::y/len, host bits clear)", i + 1, what, buf);
		return -EINVAL;
	}
	return 0;
}

static int compile_one(const struct ne_wire_rule *w, size_t i, struct frule *r, char *err,
		       size_t errlen)
{
	char name[DNS_NAME_TEXT_MAX];

	if (w->action < FRULE_ALLOW || w->action > FRULE_ASK) {
		snprintf(err, errlen, "rule %zu: action %u is not allow, drop or filter-data", i + 1,
			 w->action);
		return -EINVAL;
	}
	if (w->direction > 2 || (w->protocol && w->protocol != IPPROTO_TCP && w->protocol != IPPROTO_UDP)) {
		snprintf(err, errlen, "rule %zu: direction must be any/outbound/inbound and protocol "
			 "any/tcp/udp", i + 1);
		return -EINVAL;
	}
	r->action = (enum frule_action)w->action;
	r->direction = w->direction;
	r->protocol = w->protocol;
	r->remote_port = w->remote_port;
	r->local_port = w->local_port;
	r->match_uid = w->match_uid;
	r->uid = w->uid;
	if (net_field(w->remote_network, &r->remote, "remote_network", i, err, errlen) < 0 ||
	    net_field(w->local_network, &r->local, "local_network", i, err, errlen) < 0)
		return -EINVAL;
	r->names_loopback = r->remote.set && net_is_loopback(&r->remote);
	if (w->remote_hostname.len) {
		char *raw = view_dup(w->remote_hostname);
		int k = raw ? dns_name_normalize(raw, name, sizeof(name)) : -ENOMEM;

		free(raw);
		if (k < 0) {
			snprintf(err, errlen, "rule %zu: remote_hostname '%.*s' is not a host name", i + 1,
				 (int)NE_MIN(w->remote_hostname.len, (size_t)64), w->remote_hostname.p);
			return -EINVAL;
		}
		r->hostname = strdup(name);
	}
	r->executable = view_dup(w->executable);
	r->cgroup = view_dup(w->cgroup);
	if ((r->executable && path_check(r->executable) < 0) || (r->cgroup && path_check(r->cgroup) < 0)) {
		snprintf(err, errlen, "rule %zu: executable and cgroup must be absolute paths without "
			 "'.' or '..' components", i + 1);
		return -EINVAL;
	}
	if ((w->remote_hostname.len && !r->hostname) || (w->executable.len && !r->executable) ||
	    (w->cgroup.len && !r->cgroup)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int frules_compile(const struct ne_wire_rule *w, size_t n, uint8_t default_action, struct frules *ret,
		   char *err, size_t errlen)
{
	struct frules fr = { 0 };
	size_t i;
	int r;

	if (default_action < FRULE_ALLOW || default_action > FRULE_ASK) {
		snprintf(err, errlen, "default action %u is not allow, drop or filter-data", default_action);
		return -EINVAL;
	}
	fr.default_action = (enum frule_action)default_action;
	fr.rules = calloc(n + 1, sizeof(*fr.rules));
	if (!fr.rules) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		fr.n = i + 1;
		r = compile_one(&w[i], i, &fr.rules[i], err, errlen);
		if (r < 0) {
			frules_clear(&fr);
			return r;
		}
		fr.any_loopback |= fr.rules[i].names_loopback;
		fr.needs_process |= fr.rules[i].executable || fr.rules[i].match_uid || fr.rules[i].cgroup;
		fr.needs_hostname |= fr.rules[i].hostname != NULL;
		fr.any_ask |= fr.rules[i].action == FRULE_ASK;
	}
	fr.n = n;
	fr.any_ask |= fr.default_action == FRULE_ASK;
	*ret = fr;
	return 0;
}

void frules_clear(struct frules *fr)
{
	size_t i;

	for (i = 0; i < fr->n; i++) {
		free(fr->rules[i].hostname);
		free(fr->rules[i].executable);
		free(fr->rules[i].cgroup);
	}
	free(fr->rules);
	memset(fr, 0, sizeof(*fr));
}

static bool cgroup_within(const char *rule, const char *cg)
{
	size_t n = strlen(rule);

	if (!cg)
		return false;
	if (!strcmp(rule, "/"))
		return true;
	return !strncmp(rule, cg, n) && (cg[n] == '\0' || cg[n] == '/');
}

static bool rule_matches(const struct frule *r, const struct frule_flow *f)
{
	if (r->direction && r->direction != f->direction)
		return false;
	if (r->protocol && r->protocol != f->protocol)
		return false;
	if (r->remote.set && !frules_net_contains(&r->remote, f->family, f->remote))
		return false;
	if (r->local.set && !frules_net_contains(&r->local, f->family, f->local))
		return false;
	if (r->remote_port && r->remote_port != f->remote_port)
		return false;
	if (r->local_port && r->local_port != f->local_port)
		return false;
	if (r->hostname && (!f->hostname || !dns_name_matches(r->hostname, f->hostname)))
		return false;
	if (r->executable && (!f->executable || strcmp(r->executable, f->executable)))
		return false;
	if (r->match_uid && (!f->has_uid || r->uid != f->uid))
		return false;
	if (r->cgroup && !cgroup_within(r->cgroup, f->cgroup))
		return false;
	return true;
}

enum frule_action frules_match(const struct frules *fr, const struct frule_flow *f, int *ret_rule)
{
	bool loopback = frules_is_loopback(f->family, f->remote);
	size_t i;

	*ret_rule = -1;
	if (loopback && !fr->any_loopback)
		return FRULE_ALLOW;
	for (i = 0; i < fr->n; i++) {
		/* On loopback only the rules that name it apply. */
		if (loopback && !fr->rules[i].names_loopback)
			continue;
		if (rule_matches(&fr->rules[i], f)) {
			*ret_rule = (int)i;
			return fr->rules[i].action;
		}
	}
	return loopback ? FRULE_ALLOW : fr->default_action;
}
