/* Name ↔ address cache (see namecache.h).
 *
 * Trust: names and addresses come from DNS answers, which any server the host talks to (or
 * anyone spoofing one) controls. So: only names on the question's CNAME chain count; the
 * cache holds only normalized hostnames; its memory is bounded whatever arrives; and the
 * hash table is keyed with a random secret (SipHash via libsodium's crypto_shorthash), so a
 * server choosing addresses cannot pile entries into one bucket.
 *
 * Layout: one entry per (owner, family, address), chained in a power-of-two bucket array,
 * and on a list in learn order (oldest first) for eviction. Every mapping learned for a
 * process is also stored under the "any process" owner {0, 0}, which then always holds the
 * most recent name for the address. Expired entries are dropped when a lookup finds them,
 * or evicted with the oldest when memory runs short. */
#include "namecache.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "list.h"
#include "util.h"

#define NC_BUCKETS_MIN 64
#define NC_BUCKETS_MAX (1u << 24)
#define NC_CHAIN_MAX 16          /* CNAME links followed from the question */

struct nc_entry {
	struct nc_entry *hnext;  /* bucket chain */
	struct ne_list lru;      /* namecache.lru: least recently learned first */
	uint64_t hash;
	struct nc_owner owner;
	uint64_t expires;        /* seconds, the clock of `now` */
	int family;
	uint8_t addr[16];
	size_t name_len;
	char name[];
};

struct namecache {
	struct nc_entry **buckets;
	size_t n_buckets;
	struct ne_list lru;
	size_t max_bytes;
	uint8_t key[crypto_shorthash_KEYBYTES];
	struct namecache_stats stats;
};

/* Learning from one answer. Chain membership is decided by comparing keyed hashes of
 * canonical names (confirmed by a real comparison on a match), so an answer of n records
 * costs O(n) hashes and O(n × chain) integer compares, whatever names a server chooses. */
struct nc_learn {
	const struct dns_msg *m;
	uint64_t owner_hash[DNS_MAX_RECORDS];  /* of each answer CNAME, A and AAAA record */
	size_t chain_off[NC_CHAIN_MAX + 1];    /* the question's name, then each CNAME target */
	uint64_t chain_hash[NC_CHAIN_MAX + 1];
	uint32_t chain_ttl[NC_CHAIN_MAX + 1];  /* smallest TTL of the links leading there */
	size_t n;
};

static const struct nc_owner owner_any = { 0, 0 };

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool owner_is_any(const struct nc_owner *o)
{
	return !o || (o->pid == 0 && o->start_time == 0);
}

static size_t entry_bytes(const struct nc_entry *e)
{
	return sizeof(*e) + e->name_len + 1;
}

int namecache_new(size_t max_bytes, struct namecache **ret)
{
	struct namecache *nc;

	if (max_bytes == 0)
		return -EINVAL;
	nc = calloc(1, sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	nc->buckets = calloc(NC_BUCKETS_MIN, sizeof(*nc->buckets));
	if (!nc->buckets || sodium_init() < 0)
		goto fail;
	/* 16 bytes from getrandom() cannot be short once the pool is ready (it blocks until then). */
	if (getrandom(nc->key, sizeof(nc->key), 0) != (ssize_t)sizeof(nc->key))
		goto fail;
	nc->n_buckets = NC_BUCKETS_MIN;
	nc->max_bytes = max_bytes;
	ne_list_init(&nc->lru);
	*ret = nc;
	return 0;
fail:
	free(nc->buckets);
	free(nc);
	return -ENOMEM;
}

void namecache_free(struct namecache *nc)
{
	struct ne_list *pos, *tmp;

	if (!nc)
		return;
	ne_list_for_each(pos, tmp, &nc->lru)
		free(ne_container_of(pos, struct nc_entry, lru));
	free(nc->buckets);
	free(nc);
}

void namecache_get_stats(const struct namecache *nc, struct namecache_stats *ret)
{
	*ret = nc->stats;
}

static uint64_t key_hash(const struct namecache *nc, const struct nc_owner *o, int family, const uint8_t *addr)
{
	uint8_t in[4 + 8 + 1 + 16] = { 0 }, out[crypto_shorthash_BYTES];
	uint32_t pid = (uint32_t)o->pid;
	uint64_t h;

	/* Explicit bytes rather than a struct: no padding reaches the hash. */
	memcpy(in, &pid, 4);
	memcpy(in + 4, &o->start_time, 8);
	in[12] = (uint8_t)family;
	memcpy(in + 13, addr, addr_len(family));
	crypto_shorthash(out, in, sizeof(in), nc->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

/* The link pointing at the entry for the key (or at the NULL ending its chain). */
static struct nc_entry **find_link(struct namecache *nc, uint64_t hash, const struct nc_owner *o, int family,
				   const uint8_t *addr)
{
	struct nc_entry **link = &nc->buckets[hash & (nc->n_buckets - 1)];

	for (; *link; link = &(*link)->hnext) {
		const struct nc_entry *e = *link;

		if (e->hash == hash && e->family == family && e->owner.pid == o->pid &&
		    e->owner.start_time == o->start_time && memcmp(e->addr, addr, addr_len(family)) == 0)
			break;
	}
	return link;
}

static void entry_remove(struct namecache *nc, struct nc_entry *e)
{
	struct nc_entry **link = &nc->buckets[e->hash & (nc->n_buckets - 1)];

	while (*link != e)
		link = &(*link)->hnext;
	*link = e->hnext;
	ne_list_remove(&e->lru);
	nc->stats.entries--;
	nc->stats.bytes -= entry_bytes(e);
	free(e);
}

/* Doubles the bucket array when chains would average more than one entry. Failing to grow
 * only makes chains longer. */
static void maybe_grow(struct namecache *nc)
{
	struct nc_entry **nb;
	struct ne_list *pos, *tmp;
	size_t n = nc->n_buckets * 2;

	if (nc->stats.entries <= nc->n_buckets || n > NC_BUCKETS_MAX)
		return;
	nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	ne_list_for_each(pos, tmp, &nc->lru) {
		struct nc_entry *e = ne_container_of(pos, struct nc_entry, lru);

		e->hnext = nb[e->hash & (n - 1)];
		nb[e->hash & (n - 1)] = e;
	}
	free(nc->buckets);
	nc->buckets = nb;
	nc->n_buckets = n;
}

static void evict(struct namecache *nc)
{
	while (nc->stats.bytes > nc->max_bytes && !ne_list_empty(&nc->lru)) {
		entry_remove(nc, ne_container_of(nc->lru.next, struct nc_entry, lru));
		nc->stats.evicted++;
	}
}

/* Stores (owner, family, addr) → name as the most recently learned entry, replacing any
 * entry for the same key. */
static int put(struct namecache *nc, const struct nc_owner *o, int family, const uint8_t *addr,
	       const char *name, size_t name_len, uint64_t expires)
{
	uint64_t hash = key_hash(nc, o, family, addr);
	struct nc_entry *e, **link;

	e = malloc(sizeof(*e) + name_len + 1);
	if (!e)
		return -ENOMEM;
	*e = (struct nc_entry){ .hash = hash, .owner = *o, .expires = expires, .family = family,
				.name_len = name_len };
	memcpy(e->addr, addr, addr_len(family));
	memcpy(e->name, name, name_len + 1);
	link = find_link(nc, hash, o, family, addr);
	if (*link)
		entry_remove(nc, *link);
	link = &nc->buckets[hash & (nc->n_buckets - 1)];
	e->hnext = *link;
	*link = e;
	ne_list_append(&nc->lru, &e->lru);
	nc->stats.entries++;
	nc->stats.bytes += entry_bytes(e);
	evict(nc);
	maybe_grow(nc);
	return 0;
}

static bool name_is_normalized(const char *name)
{
	char buf[DNS_NAME_TEXT_MAX];

	return dns_name_normalize(name, buf, sizeof(buf)) == 0 && strcmp(buf, name) == 0;
}

int namecache_add(struct namecache *nc, const struct nc_owner *owner, int family, const void *addr,
		  const char *name, uint32_t ttl, uint64_t now)
{
	size_t len = strlen(name);
	uint64_t expires;
	int r;

	if ((family != AF_INET && family != AF_INET6) || !name_is_normalized(name))
		return -EINVAL;
	expires = now + NE_MAX(NAMECACHE_TTL_MIN, NE_MIN(ttl, (uint32_t)NAMECACHE_TTL_MAX));
	if (!owner_is_any(owner)) {
		r = put(nc, owner, family, addr, name, len, expires);
		if (r < 0)
			return r;
	}
	r = put(nc, &owner_any, family, addr, name, len, expires);
	if (r < 0)
		return r;
	nc->stats.learned++;
	return 0;
}

/* The live entry for the key, dropping it if it has expired. */
static const struct nc_entry *get(struct namecache *nc, const struct nc_owner *o, int family, const void *addr,
				  uint64_t now)
{
	struct nc_entry *e = *find_link(nc, key_hash(nc, o, family, addr), o, family, addr);

	if (e && e->expires <= now) {
		entry_remove(nc, e);
		nc->stats.expired++;
		e = NULL;
	}
	return e;
}

int namecache_lookup(struct namecache *nc, const struct nc_owner *owner, int family, const void *addr,
		     uint64_t now, char *name, size_t size)
{
	const struct nc_entry *e = NULL;

	if (family != AF_INET && family != AF_INET6)
		return -EINVAL;
	if (!owner_is_any(owner))
		e = get(nc, owner, family, addr, now);
	if (e)
		nc->stats.hits_owner++;
	else {
		e = get(nc, &owner_any, family, addr, now);
		if (!e) {
			nc->stats.misses++;
			return -ENOENT;
		}
		nc->stats.hits_any++;
	}
	if (e->name_len >= size)
		return -ENOBUFS;
	memcpy(name, e->name, e->name_len + 1);
	return 0;
}

/* An answer to one ordinary IN query that succeeded. */
static int learn_check(const struct dns_msg *m)
{
	if (!m->h.qr || m->h.opcode != 0 || m->ext_rcode != DNS_RCODE_NOERROR || m->h.qdcount != 1)
		return -EINVAL;
	if (m->n_rr < 1 || m->rr[0].section != DNS_SEC_QUESTION || m->rr[0].class != DNS_CLASS_IN)
		return -EINVAL;
	return 0;
}

static uint64_t name_hash(const struct namecache *nc, const struct dns_msg *m, size_t off)
{
	uint8_t canon[DNS_NAME_MAX], out[crypto_shorthash_BYTES];
	int len = dns_name_canonical(m, off, canon, sizeof(canon));
	uint64_t h;

	if (len < 0)
		return 0; /* cannot happen on a parsed message; a false match is confirmed anyway */
	crypto_shorthash(out, canon, (size_t)len, nc->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

/* Whether answer record i may be on the chain: an IN CNAME, A or AAAA. */
static bool chain_candidate(const struct dns_rr *rr)
{
	return rr->section == DNS_SEC_ANSWER && rr->class == DNS_CLASS_IN &&
	       (rr->type == DNS_TYPE_CNAME || rr->type == DNS_TYPE_A || rr->type == DNS_TYPE_AAAA);
}

/* The chain position of record i's owner name, or -ENOENT. */
static int chain_find(const struct nc_learn *l, size_t i)
{
	size_t k;

	for (k = 0; k < l->n; k++)
		if (l->chain_hash[k] == l->owner_hash[i] &&
		    dns_name_equal(l->m, l->chain_off[k], l->m->rr[i].name_off))
			return (int)k;
	return -ENOENT;
}

/* The CNAME record owned by the last name on the chain, or -ENOENT. */
static int chain_next(const struct nc_learn *l)
{
	const struct dns_msg *m = l->m;
	size_t i;

	for (i = 0; i < m->n_rr; i++)
		if (m->rr[i].type == DNS_TYPE_CNAME && chain_candidate(&m->rr[i]) &&
		    l->owner_hash[i] == l->chain_hash[l->n - 1] &&
		    dns_name_equal(m, m->rr[i].name_off, l->chain_off[l->n - 1]))
			return (int)i;
	return -ENOENT;
}

static void learn_prepare(const struct namecache *nc, const struct dns_msg *m, struct nc_learn *l)
{
	const struct dns_rr *rr;
	size_t i;
	int c;

	l->m = m;
	for (i = 0; i < m->n_rr; i++)
		l->owner_hash[i] = chain_candidate(&m->rr[i]) ? name_hash(nc, m, m->rr[i].name_off) : 0;
	l->chain_off[0] = m->rr[0].name_off;
	l->chain_hash[0] = name_hash(nc, m, l->chain_off[0]);
	l->chain_ttl[0] = UINT32_MAX;
	l->n = 1;
	while (l->n <= NC_CHAIN_MAX && (c = chain_next(l)) >= 0) {
		rr = &m->rr[c];
		if (dns_rr_cname_target(m, rr, &l->chain_off[l->n]) < 0)
			break;
		l->chain_hash[l->n] = name_hash(nc, m, l->chain_off[l->n]);
		l->chain_ttl[l->n] = NE_MIN(l->chain_ttl[l->n - 1], rr->ttl);
		l->n++;
	}
}

int namecache_learn(struct namecache *nc, const struct nc_owner *owner, const struct dns_msg *m,
		    uint64_t now)
{
	char name[DNS_NAME_TEXT_MAX];
	struct nc_learn l; /* 4.5 KiB */
	int r, k, family, learned = 0;
	size_t i;

	r = learn_check(m);
	if (r < 0)
		return r;
	/* Only names rules could match are kept: the text form of the question (lower case,
	 * escapes for anything else) must be a valid hostname as it stands. */
	if (dns_name_text(m, m->rr[0].name_off, name, sizeof(name)) < 0 || !name_is_normalized(name))
		return -EINVAL;
	learn_prepare(nc, m, &l);
	for (i = 0; i < m->n_rr; i++) {
		const uint8_t *addr;

		if (!chain_candidate(&m->rr[i]) || !(addr = dns_rr_addr(m, &m->rr[i], &family)))
			continue;
		k = chain_find(&l, i);
		if (k < 0)
			continue;
		r = namecache_add(nc, owner, family, addr, name, NE_MIN(l.chain_ttl[k], m->rr[i].ttl), now);
		if (r < 0)
			return r;
		learned++;
	}
	return learned;
}
