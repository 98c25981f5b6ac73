/* The daemon's own nftables table, built with libnftnl and sent as one atomic batch.
 *
 * Providers describe what they need in a small rule description (struct dp_ruleset); dp_nft
 * turns it into netlink messages. The ruleset is never rendered as nft text: compat
 * expressions (the xtables NFQUEUE target) do not survive a text round trip.
 *
 * Every apply replaces the whole table in one transaction (add, delete, add, chains, rules),
 * so the kernel never sees a half-built table and a crashed daemon's table is replaced. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mnl_nlmsg_batch;

#define DP_NFT_TABLE_DEFAULT "netext"
#define DP_NFT_NAME_MAX 64 /* table and chain names, including the NUL */
#define DP_RULE_MAX_MATCHES 12
#define DP_RULE_MAX_ACTIONS 4
#define DP_RULESET_MAX_CHAINS 16
/* A batch given to dp_nft_build() must have this many bytes of room past its limit: libmnl
 * writes a message before it checks the limit. One rule message stays far below it. */
#define DP_NFT_BATCH_SLACK 16384

/* Standard netfilter priorities (nft's names). */
#define DP_PRIO_RAW (-300)
#define DP_PRIO_MANGLE (-150)
#define DP_PRIO_DSTNAT (-100)
#define DP_PRIO_FILTER 0
#define DP_PRIO_SRCNAT 100

/* How the kernel lets us queue packets: nft's own `queue` expression, or the xtables NFQUEUE
 * target through nft_compat on kernels built without CONFIG_NFT_QUEUE. */
enum dp_queue_backend {
	DP_QUEUE_NATIVE,
	DP_QUEUE_COMPAT,
};

enum dp_chain_type { DP_CHAIN_FILTER, DP_CHAIN_ROUTE, DP_CHAIN_NAT };

enum dp_hook { DP_HOOK_PREROUTING, DP_HOOK_INPUT, DP_HOOK_FORWARD, DP_HOOK_OUTPUT, DP_HOOK_POSTROUTING };

/* Base chains only: regular chains (jump targets) can be added when a provider needs them.
 * The policy is always accept: netext filters by explicit rules, never by a chain default. */
struct dp_chain {
	char name[DP_NFT_NAME_MAX];
	enum dp_chain_type type;
	enum dp_hook hook;
	int32_t priority;
};

enum dp_match_kind {
	DP_MATCH_L4PROTO,  /* meta l4proto */
	DP_MATCH_CT_STATE, /* ct state, any bit of a DP_CT_* mask */
	DP_MATCH_META_MARK, /* meta mark & mask == value */
	DP_MATCH_CT_MARK,  /* ct mark & mask == value */
	DP_MATCH_CGROUPV2, /* socket cgroupv2 level N, by cgroup id (inode of the directory) */
	DP_MATCH_DADDR,    /* ip/ip6 daddr prefix (also implies the address family) */
	DP_MATCH_SADDR,
	DP_MATCH_DPORT,    /* th dport: combine with DP_MATCH_L4PROTO */
	DP_MATCH_SPORT,
	DP_MATCH_NFPROTO,  /* meta nfproto: NFPROTO_IPV4 or NFPROTO_IPV6 */
	DP_MATCH_SKUID,    /* meta skuid: the uid owning the packet's local socket */
	DP_MATCH_IIFNAME,  /* meta iifname: input interface name (exact, IFNAMSIZ compare) */
	DP_MATCH_OIFNAME,  /* meta oifname: output interface name */
	DP_MATCH_TCP_SYN,  /* tcp flags & syn != 0: combine with DP_MATCH_L4PROTO tcp */
	DP_MATCH_TCP_MSS_ABOVE, /* tcp option maxseg size > mss (packets with the option only) */
	DP_MATCH_ICMPV6_TYPE, /* meta l4proto ipv6-icmp and icmpv6 type (neg: the type differs) */
};

/* ct state bits, as the kernel's NF_CT_STATE_BIT() encodes them. */
#define DP_CT_INVALID (1u << 0)
#define DP_CT_ESTABLISHED (1u << 1)
#define DP_CT_RELATED (1u << 2)
#define DP_CT_NEW (1u << 3)
#define DP_CT_UNTRACKED (1u << 6)

struct dp_match {
	enum dp_match_kind kind;
	bool neg; /* != instead of == (for ct state: none of the bits) */
	union {
		uint8_t l4proto;  /* IPPROTO_* */
		uint32_t ct_state; /* DP_CT_* bitmask */
		struct {
			uint32_t mask;
			uint32_t value;
		} mark;
		struct {
			uint32_t level;
			uint64_t id;
		} cgroup;
		struct {
			int family; /* AF_INET or AF_INET6 */
			union {
				struct in_addr v4;
				struct in6_addr v6;
			};
			uint8_t prefix;
		} addr;
		uint16_t port; /* host byte order */
		uint8_t nfproto; /* NFPROTO_IPV4, NFPROTO_IPV6 */
		uint32_t uid;
		char ifname[16]; /* IFNAMSIZ, NUL-padded */
		uint16_t mss;    /* host byte order */
		uint8_t icmp_type;
	};
};

enum dp_action_kind {
	DP_ACTION_ACCEPT,
	DP_ACTION_DROP,
	DP_ACTION_QUEUE,
	DP_ACTION_META_MARK_SET,
	DP_ACTION_CT_MARK_SET,
	DP_ACTION_TPROXY,  /* prerouting only; not a verdict: follow it with accept */
	DP_ACTION_TCP_MSS_SET, /* tcp option maxseg size set mss (checksum updated); not a verdict */
	DP_ACTION_MASQUERADE,  /* nat postrouting only: source address of the output interface */
	DP_ACTION_COUNTER,     /* packets and bytes (nft list shows them); not a verdict */
};

#define DP_QUEUE_F_BYPASS (1u << 0) /* accept when no reader is bound (fail open) */
#define DP_QUEUE_F_FANOUT (1u << 1) /* spread over queues by CPU instead of flow hash */

struct dp_action {
	enum dp_action_kind kind;
	union {
		struct {
			uint16_t num;
			uint16_t total; /* 0 or 1: a single queue */
			uint32_t flags; /* DP_QUEUE_F_* */
		} queue;
		uint32_t mark;
		struct {
			int family; /* AF_INET or AF_INET6: the packets it applies to (match nfproto) */
			union {
				struct in_addr v4;
				struct in6_addr v6;
			};
			uint16_t port; /* host byte order */
		} tproxy;
		uint16_t mss; /* host byte order */
	};
	/* Mark actions: bits of the old mark to keep (host order); 0 overwrites the whole mark. */
	uint32_t mark_keep;
};

/* Matches are ANDed; actions run in order, so a verdict (accept, drop, queue) goes last. */
struct dp_rule {
	size_t chain; /* index into dp_ruleset.chains */
	size_t n_matches;
	struct dp_match matches[DP_RULE_MAX_MATCHES];
	size_t n_actions;
	struct dp_action actions[DP_RULE_MAX_ACTIONS];
};

struct dp_ruleset {
	char table[DP_NFT_NAME_MAX]; /* family inet */
	size_t n_chains;
	struct dp_chain chains[DP_RULESET_MAX_CHAINS];
	size_t n_rules;
	size_t cap_rules;
	struct dp_rule *rules; /* in order of addition; owned, see dp_ruleset_free() */
};

/* An empty ruleset for table `table` (NULL: DP_NFT_TABLE_DEFAULT). */
void dp_ruleset_init(struct dp_ruleset *rs, const char *table);
/* The daemon's start-up table: base chains output (route, mangle), prerouting (filter,
 * mangle), input and forward (filter, 0), no rules. Providers append rules. */
void dp_ruleset_init_base(struct dp_ruleset *rs, const char *table);
void dp_ruleset_free(struct dp_ruleset *rs);
/* Adds a base chain; *ret_index (may be NULL) is what dp_rule.chain refers to. */
int dp_ruleset_add_chain(struct dp_ruleset *rs, const char *name, enum dp_chain_type type,
			 enum dp_hook hook, int32_t priority, size_t *ret_index);
/* Index of the chain called name, -ENOENT when there is none. */
int dp_ruleset_find_chain(const struct dp_ruleset *rs, const char *name, size_t *ret_index);
/* Appends a copy of r (r->chain must name an existing chain). */
int dp_ruleset_add_rule(struct dp_ruleset *rs, const struct dp_rule *r);

/* Appends a rule made of nm matches and na actions to chain: -E2BIG when they do not fit a
 * rule, else what dp_ruleset_add_rule() returns. */
int dp_ruleset_add(struct dp_ruleset *rs, size_t chain, const struct dp_match *m, size_t nm,
		   const struct dp_action *a, size_t na);

/* Rule construction helpers: return -E2BIG when the rule is full. */
int dp_rule_add_match(struct dp_rule *r, const struct dp_match *m);
int dp_rule_add_action(struct dp_rule *r, const struct dp_action *a);

/* Appends one atomic transaction to batch (batch begin/end included): add table, delete table,
 * add table, chains, rules. Pure: touches nothing but batch and *seq (next sequence number;
 * one per message). Returns -ENOBUFS when batch is too small, -EINVAL for a bad ruleset. */
int dp_nft_build(const struct dp_ruleset *rs, enum dp_queue_backend qb, struct mnl_nlmsg_batch *batch,
		 uint32_t *seq);

/* What a table netextd made holds, chain by chain: enough to change it in place.
 *
 * Why in place: whenever a netfilter hook is unregistered, the kernel drops every packet
 * queued to any NFQUEUE of the namespace (nfqnl_nf_hook_drop), and deleting a table or a
 * base chain unregisters hooks. So once the table exists, netextd never deletes a base chain
 * while it runs: a chain whose rules changed is flushed and refilled in the same transaction,
 * a chain the ruleset no longer has is only flushed (it stays, empty, with policy accept,
 * until the table goes), and a chain whose rules did not change is left alone, rule handles
 * and counters included. */
#define DP_NFT_STATE_MAX_CHAINS 48
struct dp_nft_chain_state {
	struct dp_chain chain;
	uint64_t rules_hash; /* of the chain's rule messages, in order; 0: no rules */
};
struct dp_nft_state {
	char table[DP_NFT_NAME_MAX];
	size_t n_chains;
	struct dp_nft_chain_state chains[DP_NFT_STATE_MAX_CHAINS];
};

/* The state of the table dp_nft_build(rs) makes. -EINVAL for a bad ruleset. */
int dp_nft_state_of(const struct dp_ruleset *rs, enum dp_queue_backend qb, struct dp_nft_state *out);
/* Appends one transaction (batch begin/end included) that turns the table *before describes
 * into rs without unregistering a hook unless a chain's type, hook or priority changed (then
 * that chain is deleted and made again), and fills *after. Pure, like dp_nft_build().
 * Returns 0; 1 when the table already matches rs (nothing appended); -ENOSPC when the
 * update cannot be made in place (another table, or more chains than a dp_nft_state holds:
 * use dp_nft_build()); -ENOBUFS; -EINVAL. */
int dp_nft_build_update(const struct dp_nft_state *before, const struct dp_ruleset *rs,
			enum dp_queue_backend qb, struct mnl_nlmsg_batch *batch, uint32_t *seq,
			struct dp_nft_state *after);

struct dp_nft;

int dp_nft_open(struct dp_nft **ret);
void dp_nft_close(struct dp_nft *n);
/* The backend dp_nft_apply() uses for queue actions; DP_QUEUE_COMPAT until probed. */
void dp_nft_set_queue_backend(struct dp_nft *n, enum dp_queue_backend qb);
/* Makes table rs->table hold exactly rs's rules, atomically: the first time (or after the
 * kernel's table no longer matched what netextd made) by replacing the whole table, after
 * that in place with dp_nft_build_update(). Returns the first error the kernel reported. */
int dp_nft_apply(struct dp_nft *n, const struct dp_ruleset *rs);
/* Deletes table `name` (family inet); 0 also when it does not exist. */
int dp_nft_table_delete(struct dp_nft *n, const char *name);
int dp_nft_table_exists(struct dp_nft *n, const char *name, bool *ret);
/* Detects whether the kernel has the native `queue` expression, with a throw-away table that
 * is gone afterwards in every case. Also records the result for dp_nft_apply(). */
int dp_nft_probe_queue(struct dp_nft *n, enum dp_queue_backend *ret);
/* The sum of the counter expressions in table's chain (family inet): -ENOENT without it. */
int dp_nft_chain_counters(struct dp_nft *n, const char *table, const char *chain, uint64_t *ret_packets,
			  uint64_t *ret_bytes);
