/* Parser of wg / wg-quick configuration files (see wgconf.h). The input is a file the
 * operator wrote, but it is still parsed defensively: every value is checked, lines are
 * bounded, and nothing is resolved over the network while parsing (wgconf_resolve() does,
 * afterwards, with a deadline). */
#include "wgconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <time.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_MAX_LEN 4096
#define FILE_MAX_LEN (1 << 20)

/* Peers under construction: wg_peer_config points at allowed IPs that may still grow. */
struct peer_build {
	struct wg_peer_config pc;
	struct wg_allowedip *aips;
	size_t n_aips;
	bool has_key;
};

struct parser {
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
	struct wgconf *c;
	enum { SEC_NONE, SEC_INTERFACE, SEC_PEER } section;
	bool has_private_key;
	struct peer_build *peers;
	size_t n_peers;
};

static int perr(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *ps, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ps->errlen)
		snprintf(ps->err, ps->errlen, "%s:%u: %s", ps->name, ps->line, msg);
	return -EINVAL;
}

static int grow(void **arr, size_t n, size_t size)
{
	void *p = realloc(*arr, (n + 1) * size);

	if (!p)
		return -ENOMEM;
	*arr = p;
	return 0;
}

static int add_string(char ***arr, size_t *n, const char *s)
{
	char *copy = strdup(s);

	if (!copy || grow((void **)arr, *n, sizeof(**arr)) < 0) {
		free(copy);
		return -ENOMEM;
	}
	(*arr)[(*n)++] = copy;
	return 0;
}

static int warn(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int warn(struct parser *ps, const char *fmt, ...)
{
	char msg[256], full[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "%s:%u: %s", ps->name, ps->line, msg);
	return add_string(&ps->c->warnings, &ps->c->n_warnings, full);
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* "addr" or "addr/prefix"; without a prefix, the full length. */
static int parse_cidr(char *s, struct wgconf_addr *ret)
{
	char *slash = strchr(s, '/');
	unsigned long prefix;

	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, s, ret->addr) == 1)
		ret->family = AF_INET;
	else if (inet_pton(AF_INET6, s, ret->addr) == 1)
		ret->family = AF_INET6;
	else
		return -EINVAL;
	prefix = ret->family == AF_INET ? 32 : 128;
	if (slash && parse_uint(slash + 1, prefix, &prefix) < 0)
		return -EINVAL;
	ret->prefix = (uint8_t)prefix;
	return 0;
}

/* host:port or [v6]:port, numeric only. */
static int parse_endpoint(char *s, struct wg_endpoint *ret)
{
	char *host = s, *colon;
	unsigned long port;

	memset(ret, 0, sizeof(*ret));
	if (*s == '[') {
		char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		host = s + 1;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		*colon = '\0';
	}
	if (parse_uint(colon + 1, 65535, &port) < 0 || port == 0)
		return -EINVAL;
	ret->in4.sin_port = htons((uint16_t)port); /* same offset in sockaddr_in6: for a name */
	if (inet_pton(AF_INET, host, &ret->in4.sin_addr) == 1) {
		ret->in4.sin_family = AF_INET;
		ret->in4.sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &ret->in6.sin6_addr) == 1) {
		ret->in6.sin6_family = AF_INET6;
		ret->in6.sin6_port = htons((uint16_t)port);
	} else {
		return -ENOENT; /* a host name, perhaps: the caller checks it */
	}
	return 0;
}

/* A DNS name as wgconf_resolve() may look up: labels of letters, digits and '-'. */
static bool host_name_ok(const char *h)
{
	size_t len = strlen(h), label = 0;

	if (len == 0 || len > 253 || h[0] == '.' || h[0] == '-')
		return false;
	for (const char *p = h; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*p) || *p == '-') {
			if (++label > 63)
				return false;
		} else
			return false;
	}
	return true;
}

static int parse_key(struct parser *ps, const char *what, const char *v, uint8_t out[32])
{
	if (wg_key_from_base64(v, out) < 0)
		return perr(ps, "%s is not a base64 key of 32 bytes", what);
	return 0;
}

/* Calls fn for each comma-separated, trimmed, non-empty item of v. */
static int each_item(struct parser *ps, char *v, int (*fn)(struct parser *, char *))
{
	char *save = NULL;

	for (char *tok = strtok_r(v, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int r = fn(ps, trim(tok));

		if (r < 0)
			return r;
	}
	return 0;
}

static int add_address(struct parser *ps, char *item)
{
	struct wgconf *c = ps->c;
	struct wgconf_addr a;

	if (!*item)
		return 0;
	if (parse_cidr(item, &a) < 0)
		return perr(ps, "Address: '%s' is not an address with an optional /prefix", item);
	if (grow((void **)&c->addresses, c->n_addresses, sizeof(a)) < 0)
		return -ENOMEM;
	c->addresses[c->n_addresses++] = a;
	return 0;
}

/* wg-quick: IP addresses are servers, anything else is a search domain. */
static int add_dns(struct parser *ps, char *item)
{
	struct wgconf *c = ps->c;
	struct wgconf_addr a;

	if (!*item)
		return 0;
	if (!strchr(item, '/') && parse_cidr(item, &a) == 0) {
		if (grow((void **)&c->dns, c->n_dns, sizeof(a)) < 0)
			return -ENOMEM;
		c->dns[c->n_dns++] = a;
		return 0;
	}
	for (const char *p = item; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return perr(ps, "DNS: '%s' is neither an IP address nor a domain", item);
	return add_string(&c->search, &c->n_search, item);
}

static int add_allowed_ip(struct parser *ps, char *item)
{
	struct peer_build *pb = &ps->peers[ps->n_peers - 1];
	struct wgconf_addr a;

	if (!*item)
		return 0;
	if (parse_cidr(item, &a) < 0)
		return perr(ps, "AllowedIPs: '%s' is not an address with an optional /prefix",
			    item);
	if (grow((void **)&pb->aips, pb->n_aips, sizeof(*pb->aips)) < 0)
		return -ENOMEM;
	pb->aips[pb->n_aips].family = a.family;
	memcpy(pb->aips[pb->n_aips].addr, a.addr, 16);
	pb->aips[pb->n_aips].cidr = a.prefix;
	pb->n_aips++;
	return 0;
}

static int interface_key(struct parser *ps, const char *k, char *v)
{
	struct wgconf *c = ps->c;
	unsigned long n;

	if (strcasecmp(k, "PrivateKey") == 0) {
		ps->has_private_key = true;
		return parse_key(ps, "PrivateKey", v, c->wg.private_key);
	}
	if (strcasecmp(k, "ListenPort") == 0) {
		if (parse_uint(v, 65535, &n) < 0)
			return perr(ps, "ListenPort '%s' is not a port number", v);
		c->wg.listen_port = (uint16_t)n;
		return 0;
	}
	if (strcasecmp(k, "Address") == 0)
		return each_item(ps, v, add_address);
	if (strcasecmp(k, "DNS") == 0)
		return each_item(ps, v, add_dns);
	if (strcasecmp(k, "MTU") == 0) {
		if (parse_uint(v, 65535, &n) < 0 || n < 576)
			return perr(ps, "MTU '%s' is not a number from 576 to 65535", v);
		c->mtu = (unsigned)n;
		c->wg.mtu = (unsigned)n;
		return 0;
	}
	if (strcasecmp(k, "FwMark") == 0) {
		if (strcasecmp(v, "off") == 0)
			return 0;
		if (parse_uint(v, UINT32_MAX, &n) < 0)
			return perr(ps, "FwMark '%s' is not a number or 'off'", v);
		c->fwmark = (uint32_t)n;
		return 0;
	}
	if (strcasecmp(k, "Table") == 0 || strcasecmp(k, "PreUp") == 0 ||
	    strcasecmp(k, "PostUp") == 0 || strcasecmp(k, "PreDown") == 0 ||
	    strcasecmp(k, "PostDown") == 0 || strcasecmp(k, "SaveConfig") == 0)
		return warn(ps, "%s is wg-quick's and is ignored", k);
	return perr(ps, "unknown key '%s' in [Interface]", k);
}

static int peer_key(struct parser *ps, const char *k, char *v)
{
	struct peer_build *pb = &ps->peers[ps->n_peers - 1];
	unsigned long n;
	int r;

	if (strcasecmp(k, "PublicKey") == 0) {
		pb->has_key = true;
		return parse_key(ps, "PublicKey", v, pb->pc.public_key);
	}
	if (strcasecmp(k, "PresharedKey") == 0)
		return parse_key(ps, "PresharedKey", v, pb->pc.preshared_key);
	if (strcasecmp(k, "AllowedIPs") == 0)
		return each_item(ps, v, add_allowed_ip);
	if (strcasecmp(k, "Endpoint") == 0) {
		char *host = v[0] == '[' ? v + 1 : v;
		struct wgconf_name *nm;

		r = parse_endpoint(v, &pb->pc.endpoint);
		if (r == -ENOENT && !host_name_ok(host))
			return perr(ps, "Endpoint: '%s' is neither an IP address nor a host name", host);
		if (r < 0 && r != -ENOENT)
			return perr(ps, "Endpoint: expected address:port, [address]:port or name:port");
		/* A later Endpoint line of the same peer replaces an earlier one. */
		for (size_t i = 0; i < ps->c->n_names; i++)
			if (ps->c->names[i].peer == ps->n_peers - 1) {
				free(ps->c->names[i].host);
				ps->c->names[i] = ps->c->names[--ps->c->n_names];
				break;
			}
		if (r == 0)
			return 0;
		if (grow((void **)&ps->c->names, ps->c->n_names, sizeof(*ps->c->names)) < 0)
			return -ENOMEM;
		nm = &ps->c->names[ps->c->n_names];
		nm->host = strdup(host);
		if (!nm->host)
			return -ENOMEM;
		nm->peer = ps->n_peers - 1;
		nm->port = ntohs(pb->pc.endpoint.in4.sin_port);
		nm->line = ps->line;
		ps->c->n_names++;
		memset(&pb->pc.endpoint, 0, sizeof(pb->pc.endpoint));
		return 0;
	}
	if (strcasecmp(k, "PersistentKeepalive") == 0) {
		if (strcasecmp(v, "off") == 0)
			n = 0;
		else if (parse_uint(v, 65535, &n) < 0)
			return perr(ps, "PersistentKeepalive '%s' is not 0–65535 seconds or 'off'",
				    v);
		pb->pc.persistent_keepalive = (uint16_t)n;
		return 0;
	}
	return perr(ps, "unknown key '%s' in [Peer]", k);
}

static int peer_done(struct parser *ps)
{
	if (ps->n_peers && !ps->peers[ps->n_peers - 1].has_key)
		return perr(ps, "the [Peer] section before this line has no PublicKey");
	return 0;
}

static int section(struct parser *ps, const char *s)
{
	int r = peer_done(ps);

	if (r < 0)
		return r;
	if (strcasecmp(s, "[Interface]") == 0) {
		ps->section = SEC_INTERFACE;
		return 0;
	}
	if (strcasecmp(s, "[Peer]") == 0) {
		if (grow((void **)&ps->peers, ps->n_peers, sizeof(*ps->peers)) < 0)
			return -ENOMEM;
		memset(&ps->peers[ps->n_peers++], 0, sizeof(*ps->peers));
		ps->section = SEC_PEER;
		return 0;
	}
	return perr(ps, "unknown section %s", s);
}

static int line(struct parser *ps, char *l)
{
	char *hash = strchr(l, '#'), *eq, *k, *v;

	if (hash)
		*hash = '\0';
	l = trim(l);
	if (!*l)
		return 0;
	if (*l == '[')
		return section(ps, l);
	eq = strchr(l, '=');
	if (!eq)
		return perr(ps, "expected Key = Value");
	*eq = '\0';
	k = trim(l);
	v = trim(eq + 1);
	if (!*k)
		return perr(ps, "a value without a key");
	if (ps->section == SEC_NONE)
		return perr(ps, "'%s' outside of [Interface] or [Peer]", k);
	if (!*v && strcasecmp(k, "AllowedIPs") != 0 && strcasecmp(k, "DNS") != 0 &&
	    strcasecmp(k, "Address") != 0)
		return perr(ps, "%s has no value", k);
	return ps->section == SEC_INTERFACE ? interface_key(ps, k, v) : peer_key(ps, k, v);
}

/* Moves the peers into c->wg; their allowed-IP arrays move with them. */
static int finish(struct parser *ps)
{
	struct wgconf *c = ps->c;
	struct wg_peer_config *pcs;
	int r = peer_done(ps);

	if (r < 0)
		return r;
	if (!ps->has_private_key)
		return perr(ps, "no PrivateKey in [Interface]");
	pcs = calloc(ps->n_peers ? ps->n_peers : 1, sizeof(*pcs));
	if (!pcs)
		return -ENOMEM;
	for (size_t i = 0; i < ps->n_peers; i++) {
		pcs[i] = ps->peers[i].pc;
		pcs[i].allowed_ips = ps->peers[i].aips;
		pcs[i].n_allowed_ips = ps->peers[i].n_aips;
		ps->peers[i].aips = NULL;
	}
	c->wg.peers = pcs;
	c->wg.n_peers = ps->n_peers;
	return 0;
}

static void parser_cleanup(struct parser *ps)
{
	for (size_t i = 0; i < ps->n_peers; i++)
		free(ps->peers[i].aips);
	free(ps->peers);
}

int wgconf_parse(const char *text, size_t len, const char *name, struct wgconf **ret_conf,
		 char *err, size_t errlen)
{
	struct parser ps = { .name = name, .err = err, .errlen = errlen };
	char buf[LINE_MAX_LEN];
	size_t pos = 0;
	int r = 0;

	if (errlen)
		err[0] = '\0';
	ps.c = calloc(1, sizeof(*ps.c));
	if (!ps.c)
		return -ENOMEM;
	while (pos < len && r == 0) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;

		ps.line++;
		if (n >= sizeof(buf) || memchr(text + pos, '\0', n))
			r = perr(&ps, n >= sizeof(buf) ? "line too long" : "a NUL byte");
		else {
			memcpy(buf, text + pos, n);
			buf[n] = '\0';
			r = line(&ps, buf);
		}
		pos += n + 1;
	}
	if (r == 0)
		r = finish(&ps);
	parser_cleanup(&ps);
	if (r < 0) {
		if (r == -ENOMEM && errlen)
			snprintf(err, errlen, "%s: out of memory", name);
		wgconf_free(ps.c);
		return r;
	}
	*ret_conf = ps.c;
	return 0;
}

int wgconf_parse_file(const char *path, struct wgconf **ret_conf, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t n;
	int r;

	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	text = malloc(FILE_MAX_LEN);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(text, 1, FILE_MAX_LEN, f);
	if (ferror(f) || n == FILE_MAX_LEN) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ? "read error" : "file too large");
		r = -EINVAL;
	} else {
		r = wgconf_parse(text, n, path, ret_conf, err, errlen);
	}
	fclose(f);
	free(text);
	return r;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* getaddrinfo_a (glibc): every name in flight at once, and a deadline the blocking
 * getaddrinfo does not have (resolv.conf's timeouts and attempts can add up to minutes). */
struct lookup {
	struct gaicb cb;
	char host[254];
};

int wgconf_resolve(struct wgconf *c, const char *name, unsigned timeout_ms, char *err, size_t errlen)
{
	/* static: a lookup that cannot be cancelled still reads it after we return */
	static const struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
	uint64_t deadline = mono_ms() + timeout_ms;
	size_t n = c->n_names, i;
	struct lookup *lk;
	struct gaicb **list;
	bool leak = false;
	int r = 0;

	if (n == 0)
		return 0;
	lk = calloc(n, sizeof(*lk));
	list = calloc(n, sizeof(*list));
	if (!lk || !list) {
		free(lk);
		free(list);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		snprintf(lk[i].host, sizeof(lk[i].host), "%s", c->names[i].host);
		lk[i].cb.ar_name = lk[i].host;
		lk[i].cb.ar_request = &hints;
		list[i] = &lk[i].cb;
	}
	if (getaddrinfo_a(GAI_NOWAIT, list, (int)n, NULL) != 0) {
		snprintf(err, errlen, "%s: cannot start resolving the endpoints", name);
		free(lk);
		free(list);
		return -EAGAIN;
	}
	for (;;) {
		bool pending = false;
		uint64_t now = mono_ms();
		struct timespec left;

		for (i = 0; i < n; i++)
			pending |= gai_error(list[i]) == EAI_INPROGRESS;
		if (!pending || now >= deadline)
			break;
		left.tv_sec = (time_t)((deadline - now) / 1000);
		left.tv_nsec = (long)((deadline - now) % 1000 * 1000000);
		(void)gai_suspend((const struct gaicb *const *)list, (int)n, &left);
	}
	for (i = 0; i < n; i++) {
		const struct wgconf_name *nm = &c->names[i];
		struct wg_endpoint *ep = (struct wg_endpoint *)&c->wg.peers[nm->peer].endpoint;
		const struct addrinfo *ai = lk[i].cb.ar_result;
		int e = gai_error(list[i]);

		if (r < 0)
			;
		else if (e == EAI_INPROGRESS) {
			snprintf(err, errlen, "%s:%u: Endpoint %s: not resolved within %u ms", name, nm->line,
				 nm->host, timeout_ms);
			r = -ETIMEDOUT;
		} else if (e != 0 || !ai) {
			snprintf(err, errlen, "%s:%u: Endpoint %s: %s", name, nm->line, nm->host,
				 e ? gai_strerror(e) : "no address");
			r = e == EAI_AGAIN ? -EAGAIN : -ENXIO; /* "No such device or address" */
		} else if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
			   ai->ai_addrlen <= sizeof(*ep)) {
			memset(ep, 0, sizeof(*ep));
			memcpy(ep, ai->ai_addr, ai->ai_addrlen);
			if (ai->ai_family == AF_INET)
				ep->in4.sin_port = htons(nm->port);
			else
				ep->in6.sin6_port = htons(nm->port);
		}
		if (e == EAI_INPROGRESS && gai_cancel(list[i]) != EAI_CANCELED)
			leak = true; /* still running: it writes into lk[i] later */
		else if (lk[i].cb.ar_result)
			freeaddrinfo(lk[i].cb.ar_result);
	}
	if (!leak)
		free(lk);
	free(list);
	return r;
}

void wgconf_free(struct wgconf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_names; i++)
		free(c->names[i].host);
	free(c->names);
	for (size_t i = 0; i < c->wg.n_peers; i++)
		free((void *)c->wg.peers[i].allowed_ips);
	free((void *)c->wg.peers);
	free(c->addresses);
	free(c->dns);
	for (size_t i = 0; i < c->n_search; i++)
		free(c->search[i]);
	free(c->search);
	for (size_t i = 0; i < c->n_warnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	explicit_bzero(c, sizeof(*c));
	free(c);
}
