/* Split-DNS routes (NRPT / systemd-resolved "~domain" semantics): docs/dns.md.
 *
 * A route maps a domain suffix to up to DNSROUTE_SERVERS_MAX upstream servers. A query goes to
 * the route with the longest suffix that contains its name ("corp.example" contains
 * "corp.example" and "a.corp.example", not "badcorp.example"); an exemption route has no
 * servers and sends its subtree back to the default route; the default route (suffix "") goes
 * to the servers configured for it, else to the nameservers of /etc/resolv.conf (re-read when
 * that file changes). Routes come from three sources: the configuration file ("config", read
 * only at run time), the control API ("api", kept in the store across restarts) and, later,
 * packet tunnels ("tunnel:NAME"). Two sources may not add the same suffix.
 *
 * Pure data: no sockets, no event loop. The DNS engine copies a route's servers into each
 * query, so a route changed or deleted while a query is in flight does not disturb it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns.h"

#define DNSROUTE_SERVERS_MAX 4
#define DNSROUTE_SOURCE_MAX 64
#define DNSROUTES_MAX 4096

struct dns_route {
	char suffix[DNS_NAME_TEXT_MAX]; /* normalized, "" for the default route */
	bool exempt;                    /* no servers: the subtree uses the default route */
	size_t n_servers;
	struct sockaddr_storage servers[DNSROUTE_SERVERS_MAX]; /* port set (53 by default) */
	char source[DNSROUTE_SOURCE_MAX];  /* "config", "api", "tunnel:NAME" */
};

struct dnsroutes;

int dnsroutes_new(struct dnsroutes **ret);
void dnsroutes_free(struct dnsroutes *rt);

/* Adds r (suffix normalized here; "" or "." is the default route). -EEXIST when the suffix has a
 * route from another source (the same source replaces its own route), -EINVAL for a bad suffix,
 * an exempt route with servers or a non-exempt one without, -ENOSPC past DNSROUTES_MAX. */
int dnsroutes_add(struct dnsroutes *rt, const struct dns_route *r);
/* Deletes the route for suffix if source owns it (-EPERM otherwise, -ENOENT when none). */
int dnsroutes_del(struct dnsroutes *rt, const char *suffix, const char *source);
/* Deletes every route of source (a tunnel going away). Returns how many. */
size_t dnsroutes_del_source(struct dnsroutes *rt, const char *source);

/* The route for qname (normalized presentation form, as dns_name_text() writes it): the longest
 * suffix match, or the default route for names under an exemption or under no route. NULL when
 * there is no default route and nothing matches. The pointer is valid until the next change. */
const struct dns_route *dnsroutes_lookup(struct dnsroutes *rt, const char *qname);
/* The route whose suffix is exactly suffix (forward verdicts naming a route), or NULL. */
const struct dns_route *dnsroutes_get(struct dnsroutes *rt, const char *suffix);

/* Routes in order of suffix (default first); the callback returns nonzero to stop. */
void dnsroutes_foreach(struct dnsroutes *rt, int (*cb)(const struct dns_route *r, void *ud), void *ud);
size_t dnsroutes_count(const struct dnsroutes *rt);
/* Routes other than the default and the resolv.conf default: whether split DNS is in use. */
size_t dnsroutes_count_split(const struct dnsroutes *rt);

/* The default route's servers when no route with suffix "" was added: the nameservers of the
 * resolv.conf at path, read now and again whenever its mtime or size changes (checked at most
 * once a second). Source "resolv.conf". */
int dnsroutes_set_resolv_conf(struct dnsroutes *rt, const char *path);

/* One configuration line: kind "route" (args "SUFFIX SERVER [SERVER…]"), "exempt" ("SUFFIX") or
 * "default" ("SERVER [SERVER…]"), servers separated by spaces or commas. Fills *ret (source
 * "config"). -EINVAL with nothing filled for a bad line. */
int dnsroutes_parse_line(const char *kind, const char *args, struct dns_route *ret);
/* Adds n lines of the form "KIND ARGS" (daemon_options.dns_routes) with source "config". */
int dnsroutes_add_lines(struct dnsroutes *rt, const char (*lines)[512], size_t n);

/* "10.0.0.1", "10.0.0.1:5353", "fd00::1", "[fd00::1]:5353", "fe80::1%eth0" → sockaddr (port 53
 * by default). -EINVAL otherwise. */
int dnsroutes_parse_server(const char *text, struct sockaddr_storage *ret);
/* sockaddr → the text form above (size ≥ 64). */
const char *dnsroutes_format_server(const struct sockaddr_storage *ss, char *buf, size_t size);
/* Parses resolv.conf text: up to max nameserver addresses into out. Returns the count. */
size_t dnsroutes_parse_resolv_conf(const char *text, struct sockaddr_storage *out, size_t max);
