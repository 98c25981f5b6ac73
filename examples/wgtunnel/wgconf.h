/* The configuration files of `wg setconf` and `wg-quick`: [Interface] and [Peer] sections of
 * Key = Value lines, '#' comments, keys case-insensitive.
 *
 *   [Interface]  PrivateKey, ListenPort, Address, DNS, MTU; FwMark is read and ignored;
 *                Table, PreUp, PostUp, PreDown, PostDown, SaveConfig are wg-quick's own
 *                business and ignored with a warning.
 *   [Peer]       PublicKey, PresharedKey, Endpoint, AllowedIPs, PersistentKeepalive.
 *
 * Endpoints are numeric (1.2.3.4:51820, [2001:db8::1]:51820) or a host name
 * (vpn.example.com:51820). The parser never resolves: it records host names in `names`,
 * and wgconf_resolve() (the caller, before the tunnel exists) fills the peers' endpoints.
 * DNS entries that are not IP addresses are search domains, as in wg-quick. Errors name the
 * file and line. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "wg.h"

struct wgconf_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t prefix;
};

/* A peer's Endpoint given by host name, waiting for wgconf_resolve(). */
struct wgconf_name {
	size_t peer;   /* index into wg.peers */
	char *host;    /* letters, digits, '-', '.'; at most 253 characters */
	uint16_t port;
	unsigned line; /* for messages */
};

struct wgconf {
	struct wg_config wg; /* peers and their allowed IPs point into this object */
	struct wgconf_name *names;
	size_t n_names;
	struct wgconf_addr *addresses;
	size_t n_addresses;
	struct wgconf_addr *dns; /* prefix is the full length */
	size_t n_dns;
	char **search;
	size_t n_search;
	unsigned mtu; /* 0: not given */
	uint32_t fwmark;
	char **warnings; /* "file:line: ..." for what was ignored */
	size_t n_warnings;
};

/* Parses text (len bytes, need not be NUL-terminated); name is used in messages. On error
 * returns -EINVAL (or -ENOMEM) and writes "name:line: what" into err. */
int wgconf_parse(const char *text, size_t len, const char *name, struct wgconf **ret_conf,
		 char *err, size_t errlen);
int wgconf_parse_file(const char *path, struct wgconf **ret_conf, char *err, size_t errlen);
/* Resolves every name of c (getaddrinfo, all at once, the first address of each) into its
 * peer's endpoint, waiting at most timeout_ms: a provider must not block its dispatch thread
 * past netextd's heartbeat deadline. Returns 0; or -ENXIO / -ETIMEDOUT / -EAGAIN with
 * "name:line: Endpoint HOST: why" in err. c->names stays (for messages); calling it again
 * looks the names up again. */
int wgconf_resolve(struct wgconf *c, const char *name, unsigned timeout_ms, char *err, size_t errlen);
void wgconf_free(struct wgconf *c);
