/* Allowed IPs: the routing table from inner addresses to peers, and the source check of
 * decrypted packets (cryptokey routing, paper §2). Built once from the configuration and
 * read-only afterwards, so lookups need no lock. Entries are kept per family sorted by
 * prefix length, longest first: the first match is the longest prefix. A linear scan is
 * right for the tens of prefixes a tunnel has; thousands would want a trie. */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct wg_aip_entry {
	uint8_t addr[16]; /* host bits cleared */
	uint8_t cidr;
	uint32_t peer;
};

struct wg_allowedips {
	struct wg_aip_entry *v4, *v6;
	size_t n4, n6;
};

/* Adds a prefix for peer; the same prefix given again moves to the later peer (as wg does). */
int wg_aip_insert(struct wg_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
		  uint32_t peer);
/* Peer index owning addr (4 or 16 bytes by family), or -1. */
long wg_aip_lookup(const struct wg_allowedips *t, int family, const uint8_t *addr);
void wg_aip_free(struct wg_allowedips *t);
