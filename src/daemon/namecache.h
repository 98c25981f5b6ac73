/* The name ↔ address cache behind flow hostnames: learned from DNS answers the host receives,
 * keyed by the process that asked, bounded by each record's TTL and by memory.
 *
 * A lookup for (process, address) returns the name that process most recently resolved to
 * that address; if it resolved none, the name any process most recently resolved to it (the
 * answer may have reached the application through a local stub resolver such as
 * systemd-resolved or nscd, whose own upstream query carries the stub's identity). CNAME
 * chains are followed from the question, and every address at the end of the chain is mapped
 * to the question's name: the name the application asked for, which is what rules match. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

#define NAMECACHE_TTL_MIN 5           /* seconds: short TTLs still outlive the connect */
#define NAMECACHE_TTL_MAX (24 * 3600)

/* Who asked: a process identity that survives pid reuse (pid + start time); {0, 0} when
 * unknown, which stores the mapping only under "any process". */
struct nc_owner {
	int32_t pid;
	uint64_t start_time;
};

struct namecache_stats {
	uint64_t entries, bytes, learned, evicted, expired, hits_owner, hits_any, misses;
};

struct namecache;

/* max_bytes bounds the cache's memory (entries and names); the least recently learned
 * entries go first. */
int namecache_new(size_t max_bytes, struct namecache **ret);
void namecache_free(struct namecache *nc);

/* Learns from a parsed response (qr set, rcode NOERROR, one question of class IN): the
 * addresses the question's name resolves to through the answer section's CNAME chain (at most
 * 16 links; records of other owner names are ignored, so a server cannot plant mappings for
 * names nobody asked about). now is in seconds (monotonic). Returns the number of mappings
 * learned, or -EINVAL when the message is not a usable answer. */
int namecache_learn(struct namecache *nc, const struct nc_owner *owner, const struct dns_msg *m,
		    uint64_t now);
/* Adds one mapping (tests, and later the DNS proxy). name must be normalized. */
int namecache_add(struct namecache *nc, const struct nc_owner *owner, int family, const void *addr,
		  const char *name, uint32_t ttl, uint64_t now);
/* The name for addr as described above; copies it into name (size ≥ DNS_NAME_TEXT_MAX).
 * -ENOENT when none is known or it expired. */
int namecache_lookup(struct namecache *nc, const struct nc_owner *owner, int family, const void *addr,
		     uint64_t now, char *name, size_t size);
void namecache_get_stats(const struct namecache *nc, struct namecache_stats *ret);
