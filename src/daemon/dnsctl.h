/* Split-DNS routes managed through the control API (docs/dns.md, netextctl(8) "dns route").
 *
 * Routes added here have source "api" and live in the store (store_dns_route_*) so that they
 * come back after a restart; the route table itself is dnsroutes.c. A change is written to the
 * store first, then to the table, then the engine is told (dnsproxy_reconfigure): when the
 * store cannot be written nothing changes. Routes of the configuration file and of packet
 * tunnels are read-only here; the error says where they come from. */
#pragma once

#include <jansson.h>
#include <sys/types.h>

struct daemon;
struct ctl_req;

#define DNSCTL_SOURCE "api"

/* Adds the stored routes to d->dns_routes (after the configuration file's). A stored route
 * whose suffix the configuration file routes already, or that no longer parses, is skipped
 * with a warning and stays stored. Negative errno when the store cannot be read. */
int dnsctl_load(struct daemon *d);

/* Control methods (admin only; control.c checks): each answers req itself.
 *   dns.route.add  {"suffix": S, "servers": [TEXT…], "exempt": bool} → the route
 *   dns.route.del  {"suffix": S}                                   → {"suffix": S}
 *   dns.route.list {}  → {"routes": [...], "default": {...}, "config_file": PATH|null}
 * S is a domain suffix, "." for the default route. uid names the requester in the log. */
void dnsctl_route_add(struct daemon *d, struct ctl_req *req, json_t *params, uid_t uid);
void dnsctl_route_del(struct daemon *d, struct ctl_req *req, json_t *params, uid_t uid);
void dnsctl_route_list(struct daemon *d, struct ctl_req *req, json_t *params);
