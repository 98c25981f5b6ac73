/* Split-DNS routes: see dnsroutes.h.
 *
 * Routes live in an array sorted by suffix (the default route, "", first), indexed by an
 * open-addressing hash of the suffix. A lookup tries the query name and each of its parent
 * domains, longest first: one hash probe per label, whatever the number of routes. Changes are
 * rare (an administrator, a tunnel coming up) and rebuild the index. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dnsroutes.h"
#include "util.h"

#define RESOLV_RECHECK_USEC 1000000ull
#define RESOLV_CONF_MAX 65536

struct dnsroutes {
	struct dns_route *r;     /* sorted by suffix */
	size_t n, cap;
	uint32_t *index;         /* slot → position + 1, 0 empty */
	size_t index_cap;        /* power of two, ≥ 2n */
	/* The default route from resolv.conf, used when no route has suffix "". */
	struct dns_route rc;
	char rc_path[4096];
	uint64_t rc_checked_usec;
	struct stat rc_st;
	bool rc_seen;
};

static uint32_t hash_suffix(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a: suffixes are short and the table small */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static int rebuild_index(struct dnsroutes *rt)
{
	size_t cap = 16, i;
	uint32_t *idx;

	while (cap < 2 * rt->n)
		cap *= 2;
	idx = calloc(cap, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	for (i = 0; i < rt->n; i++) {
		size_t s = hash_suffix(rt->r[i].suffix) & (cap - 1);

		while (idx[s])
			s = (s + 1) & (cap - 1);
		idx[s] = (uint32_t)(i + 1);
	}
	free(rt->index);
	rt->index = idx;
	rt->index_cap = cap;
	return 0;
}

static struct dns_route *find(const struct dnsroutes *rt, const char *suffix)
{
	size_t s;

	if (!rt->index)
		return NULL;
	for (s = hash_suffix(suffix) & (rt->index_cap - 1); rt->index[s]; s = (s + 1) & (rt->index_cap - 1))
		if (!strcmp(rt->r[rt->index[s] - 1].suffix, suffix))
			return &rt->r[rt->index[s] - 1];
	return NULL;
}

int dnsroutes_new(struct dnsroutes **ret)
{
	struct dnsroutes *rt = calloc(1, sizeof(*rt));

	if (!rt)
		return -ENOMEM;
	if (rebuild_index(rt) < 0) {
		free(rt);
		return -ENOMEM;
	}
	snprintf(rt->rc.source, sizeof(rt->rc.source), "resolv.conf");
	*ret = rt;
	return 0;
}

void dnsroutes_free(struct dnsroutes *rt)
{
	if (!rt)
		return;
	free(rt->r);
	free(rt->index);
	free(rt);
}

static int normalize_suffix(const char *in, char *out, size_t size)
{
	if (!strcmp(in, "") || !strcmp(in, ".")) {
		out[0] = '\0';
		return 0;
	}
	return dns_name_normalize(in, out, size) < 0 ? -EINVAL : 0;
}

int dnsroutes_add(struct dnsroutes *rt, const struct dns_route *r)
{
	struct dns_route n = *r, *old;
	size_t pos;

	if (normalize_suffix(r->suffix, n.suffix, sizeof(n.suffix)) < 0)
		return -EINVAL;
	if (n.exempt ? n.n_servers != 0 : (n.n_servers == 0 || n.n_servers > DNSROUTE_SERVERS_MAX))
		return -EINVAL;
	if (n.exempt && !n.suffix[0])
		return -EINVAL; /* the default route cannot be exempt from itself */
	n.source[sizeof(n.source) - 1] = '\0';
	old = find(rt, n.suffix);
	if (old) {
		if (strcmp(old->source, n.source))
			return -EEXIST;
		*old = n;
		return 0;
	}
	if (rt->n >= DNSROUTES_MAX)
		return -ENOSPC;
	if (rt->n == rt->cap) {
		size_t cap = rt->cap ? rt->cap * 2 : 16;
		struct dns_route *p = realloc(rt->r, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		rt->r = p;
		rt->cap = cap;
	}
	for (pos = 0; pos < rt->n && strcmp(rt->r[pos].suffix, n.suffix) < 0; pos++)
		;
	memmove(&rt->r[pos + 1], &rt->r[pos], (rt->n - pos) * sizeof(*rt->r));
	rt->r[pos] = n;
	rt->n++;
	if (rebuild_index(rt) < 0) {
		memmove(&rt->r[pos], &rt->r[pos + 1], (rt->n - pos - 1) * sizeof(*rt->r));
		rt->n--;
		return -ENOMEM;
	}
	return 0;
}

static void remove_at(struct dnsroutes *rt, size_t pos)
{
	memmove(&rt->r[pos], &rt->r[pos + 1], (rt->n - pos - 1) * sizeof(*rt->r));
	rt->n--;
}

int dnsroutes_del(struct dnsroutes *rt, const char *suffix, const char *source)
{
	char s[DNS_NAME_TEXT_MAX];
	struct dns_route *r;

	if (normalize_suffix(suffix, s, sizeof(s)) < 0)
		return -EINVAL;
	r = find(rt, s);
	if (!r)
		return -ENOENT;
	if (strcmp(r->source, source))
		return -EPERM;
	remove_at(rt, (size_t)(r - rt->r));
	/* A smaller index always fits in the one we have: only rebuild failure could hurt, and
	 * calloc of a table no larger than the current one is retried by the next change. */
	(void)rebuild_index(rt);
	return 0;
}

size_t dnsroutes_del_source(struct dnsroutes *rt, const char *source)
{
	size_t i = 0, n = 0;

	while (i < rt->n) {
		if (!strcmp(rt->r[i].source, source)) {
			remove_at(rt, i);
			n++;
		} else {
			i++;
		}
	}
	if (n)
		(void)rebuild_index(rt);
	return n;
}

/* ---- resolv.conf ------------------------------------------------------------------ */

size_t dnsroutes_parse_resolv_conf(const char *text, struct sockaddr_storage *out, size_t max)
{
	const char *line = text;
	size_t n = 0;

	while (line && *line && n < max) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[256], word[16], addr[128];

		if (len < sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len] = '\0';
			if (sscanf(buf, " %15s %127s", word, addr) == 2 && !strcmp(word, "nameserver") &&
			    strchr(addr, '[') == NULL && dnsroutes_parse_server(addr, &out[n]) == 0)
				n++;
		}
		line = end ? end + 1 : NULL;
	}
	return n;
}

static void resolv_reload(struct dnsroutes *rt)
{
	char *text;
	FILE *f;
	size_t len;
	struct stat st;

	rt->rc_checked_usec = ne_now_usec();
	if (stat(rt->rc_path, &st) < 0) {
		rt->rc.n_servers = 0;
		rt->rc_seen = false;
		return;
	}
	if (rt->rc_seen && st.st_ino == rt->rc_st.st_ino && st.st_dev == rt->rc_st.st_dev &&
	    st.st_size == rt->rc_st.st_size && st.st_mtim.tv_sec == rt->rc_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == rt->rc_st.st_mtim.tv_nsec)
		return;
	text = malloc(RESOLV_CONF_MAX + 1);
	f = text ? fopen(rt->rc_path, "re") : NULL;
	if (!f) {
		free(text);
		return; /* keep what we had: a transient error should not drop DNS */
	}
	len = fread(text, 1, RESOLV_CONF_MAX, f);
	fclose(f);
	text[len] = '\0';
	rt->rc.n_servers = dnsroutes_parse_resolv_conf(text, rt->rc.servers, DNSROUTE_SERVERS_MAX);
	free(text);
	rt->rc_st = st;
	rt->rc_seen = true;
}

int dnsroutes_set_resolv_conf(struct dnsroutes *rt, const char *path)
{
	if (ne_strscpy(rt->rc_path, path, sizeof(rt->rc_path)) < 0)
		return -EINVAL;
	rt->rc_seen = false;
	resolv_reload(rt);
	return rt->rc_seen ? 0 : -ENOENT;
}

static const struct dns_route *default_route(struct dnsroutes *rt)
{
	struct dns_route *d = find(rt, "");

	if (d)
		return d;
	if (!rt->rc_path[0])
		return NULL;
	if (ne_now_usec() - rt->rc_checked_usec >= RESOLV_RECHECK_USEC)
		resolv_reload(rt);
	return rt->rc.n_servers ? &rt->rc : NULL;
}

/* ---- lookup --------------------------------------------------------------------- */

const struct dns_route *dnsroutes_lookup(struct dnsroutes *rt, const char *qname)
{
	const char *s = qname;
	const struct dns_route *r;

	if (rt->n > (find(rt, "") ? 1u : 0u)) {
		/* Longest suffix first: the name itself, then after each unescaped dot. */
		for (;;) {
			r = find(rt, s);
			if (r && r->suffix[0])
				return r->exempt ? default_route(rt) : r;
			while (*s && *s != '.')
				s += *s == '\\' && s[1] ? 2 : 1;
			if (!*s)
				break;
			s++;
		}
	}
	return default_route(rt);
}

const struct dns_route *dnsroutes_get(struct dnsroutes *rt, const char *suffix)
{
	char s[DNS_NAME_TEXT_MAX];

	if (normalize_suffix(suffix, s, sizeof(s)) < 0)
		return NULL;
	return s[0] ? find(rt, s) : default_route(rt);
}

void dnsroutes_foreach(struct dnsroutes *rt, int (*cb)(const struct dns_route *r, void *ud), void *ud)
{
	size_t i;

	if (!find(rt, "") && default_route(rt) && cb(&rt->rc, ud))
		return;
	for (i = 0; i < rt->n; i++)
		if (cb(&rt->r[i], ud))
			return;
}

size_t dnsroutes_count(const struct dnsroutes *rt)
{
	return rt->n;
}

size_t dnsroutes_count_split(const struct dnsroutes *rt)
{
	return rt->n - (find(rt, "") ? 1 : 0);
}

/* ---- text forms ------------------------------------------------------------------- */

int dnsroutes_parse_server(const char *text, struct sockaddr_storage *ret)
{
	char host[128];
	const char *port_s = NULL, *pct;
	unsigned long port = 53;
	size_t len = strlen(text);
	char *end;

	memset(ret, 0, sizeof(*ret));
	if (len == 0 || len >= sizeof(host))
		return -EINVAL;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (!close || (close[1] && close[1] != ':'))
			return -EINVAL;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		if (close[1] == ':')
			port_s = close + 2;
	} else if (strchr(text, ':') && strchr(text, ':') == strrchr(text, ':')) {
		const char *colon = strchr(text, ':'); /* one colon: IPv4 with a port */

		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		port_s = colon + 1;
	} else {
		memcpy(host, text, len + 1);
	}
	if (port_s) {
		errno = 0;
		port = strtoul(port_s, &end, 10);
		if (errno || end == port_s || *end || port == 0 || port > 65535)
			return -EINVAL;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ret;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ret;

	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return 0;
	}
	pct = strchr(host, '%');
	if (pct) {
		unsigned idx = if_nametoindex(pct + 1);

		if (!idx)
			return -EINVAL;
		s6->sin6_scope_id = idx;
		host[pct - host] = '\0';
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	memset(ret, 0, sizeof(*ret));
	return -EINVAL;
}

const char *dnsroutes_format_server(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN], ifn[IF_NAMESIZE + 1] = "";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		if (ntohs(s4->sin_port) == 53)
			snprintf(buf, size, "%s", a);
		else
			snprintf(buf, size, "%s:%u", a, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		if (s6->sin6_scope_id && if_indextoname(s6->sin6_scope_id, ifn + 1))
			ifn[0] = '%';
		if (ntohs(s6->sin6_port) == 53)
			snprintf(buf, size, "%s%s", a, ifn);
		else
			snprintf(buf, size, "[%s%s]:%u", a, ifn, ntohs(s6->sin6_port));
	} else {
		snprintf(buf, size, "?");
	}
	return buf;
}

int dnsroutes_parse_line(const char *kind, const char *args, struct dns_route *ret)
{
	struct dns_route r;
	char buf[512], *tok, *save = NULL;
	bool first = true;

	memset(&r, 0, sizeof(r));
	snprintf(r.source, sizeof(r.source), "config");
	if (ne_strscpy(buf, args, sizeof(buf)) < 0)
		return -EINVAL;
	if (!strcmp(kind, "default")) {
		first = false; /* no suffix: every word is a server */
	} else if (!strcmp(kind, "exempt")) {
		r.exempt = true;
	} else if (strcmp(kind, "route")) {
		return -EINVAL;
	}
	for (tok = strtok_r(buf, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		if (first) {
			if (normalize_suffix(tok, r.suffix, sizeof(r.suffix)) < 0 || !r.suffix[0])
				return -EINVAL;
			first = false;
			continue;
		}
		if (r.exempt || r.n_servers >= DNSROUTE_SERVERS_MAX ||
		    dnsroutes_parse_server(tok, &r.servers[r.n_servers]) < 0)
			return -EINVAL;
		r.n_servers++;
	}
	if (first || (!r.exempt && r.n_servers == 0))
		return -EINVAL;
	*ret = r;
	return 0;
}

int dnsroutes_add_lines(struct dnsroutes *rt, const char (*lines)[512], size_t n)
{
	size_t i;
	int e;

	for (i = 0; i < n; i++) {
		struct dns_route r;
		char kind[16];
		const char *sp = strchr(lines[i], ' ');

		if (!sp || (size_t)(sp - lines[i]) >= sizeof(kind))
			return -EINVAL;
		memcpy(kind, lines[i], (size_t)(sp - lines[i]));
		kind[sp - lines[i]] = '\0';
		e = dnsroutes_parse_line(kind, sp + 1, &r);
		if (e == 0)
			e = dnsroutes_add(rt, &r);
		if (e < 0)
			return e;
	}
	return 0;
}
