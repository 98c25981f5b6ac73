/* nftables for netextd: the only place the daemon builds netfilter rules.
 *
 * Trust: the ruleset comes from the daemon itself (providers' requests were validated before
 * they became a dp_ruleset); the kernel's replies are trusted. Runs with CAP_NET_ADMIN. */
#include "dp_nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct dp_nft {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	enum dp_queue_backend qb;
	bool synced;              /* the kernel's table is what `state` says */
	struct dp_nft_state state;
};

/* ---- ruleset description ---------------------------------------------------------------- */

void dp_ruleset_init(struct dp_ruleset *rs, const char *table)
{
	memset(rs, 0, sizeof(*rs));
	(void)ne_strscpy(rs->table, table ? table : DP_NFT_TABLE_DEFAULT, sizeof(rs->table));
}

void dp_ruleset_init_base(struct dp_ruleset *rs, const char *table)
{
	dp_ruleset_init(rs, table);
	/* Route type so that a mark set here reroutes the packet (policy routing by fwmark). */
	(void)dp_ruleset_add_chain(rs, "output", DP_CHAIN_ROUTE, DP_HOOK_OUTPUT, DP_PRIO_MANGLE, NULL);
	(void)dp_ruleset_add_chain(rs, "prerouting", DP_CHAIN_FILTER, DP_HOOK_PREROUTING, DP_PRIO_MANGLE, NULL);
	(void)dp_ruleset_add_chain(rs, "input", DP_CHAIN_FILTER, DP_HOOK_INPUT, DP_PRIO_FILTER, NULL);
	(void)dp_ruleset_add_chain(rs, "forward", DP_CHAIN_FILTER, DP_HOOK_FORWARD, DP_PRIO_FILTER, NULL);
}

void dp_ruleset_free(struct dp_ruleset *rs)
{
	if (!rs)
		return;
	free(rs->rules);
	rs->rules = NULL;
	rs->n_rules = rs->cap_rules = 0;
}

int dp_ruleset_add_chain(struct dp_ruleset *rs, const char *name, enum dp_chain_type type,
			 enum dp_hook hook, int32_t priority, size_t *ret_index)
{
	struct dp_chain *c;
	size_t dummy;

	if (rs->n_chains >= DP_RULESET_MAX_CHAINS)
		return -E2BIG;
	if (dp_ruleset_find_chain(rs, name, &dummy) == 0)
		return -EEXIST;
	c = &rs->chains[rs->n_chains];
	if (ne_strscpy(c->name, name, sizeof(c->name)) < 0)
		return -ENAMETOOLONG;
	c->type = type;
	c->hook = hook;
	c->priority = priority;
	if (ret_index)
		*ret_index = rs->n_chains;
	rs->n_chains++;
	return 0;
}

int dp_ruleset_find_chain(const struct dp_ruleset *rs, const char *name, size_t *ret_index)
{
	for (size_t i = 0; i < rs->n_chains; i++) {
		if (strcmp(rs->chains[i].name, name) == 0) {
			*ret_index = i;
			return 0;
		}
	}
	return -ENOENT;
}

int dp_ruleset_add_rule(struct dp_ruleset *rs, const struct dp_rule *r)
{
	if (r->chain >= rs->n_chains || r->n_matches > DP_RULE_MAX_MATCHES ||
	    r->n_actions > DP_RULE_MAX_ACTIONS)
		return -EINVAL;
	if (rs->n_rules == rs->cap_rules) {
		size_t cap = rs->cap_rules ? rs->cap_rules * 2 : 16;
		struct dp_rule *n = reallocarray(rs->rules, cap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		rs->rules = n;
		rs->cap_rules = cap;
	}
	rs->rules[rs->n_rules++] = *r;
	return 0;
}

int dp_ruleset_add(struct dp_ruleset *rs, size_t chain, const struct dp_match *m, size_t nm,
		   const struct dp_action *a, size_t na)
{
	struct dp_rule r = { .chain = chain };
	size_t i;

	for (i = 0; i < nm; i++)
		if (dp_rule_add_match(&r, &m[i]) < 0)
			return -E2BIG;
	for (i = 0; i < na; i++)
		if (dp_rule_add_action(&r, &a[i]) < 0)
			return -E2BIG;
	return dp_ruleset_add_rule(rs, &r);
}

int dp_rule_add_match(struct dp_rule *r, const struct dp_match *m)
{
	if (r->n_matches >= DP_RULE_MAX_MATCHES)
		return -E2BIG;
	r->matches[r->n_matches++] = *m;
	return 0;
}

int dp_rule_add_action(struct dp_rule *r, const struct dp_action *a)
{
	if (r->n_actions >= DP_RULE_MAX_ACTIONS)
		return -E2BIG;
	r->actions[r->n_actions++] = *a;
	return 0;
}

/* ---- expressions ------------------------------------------------------------------------ */

/* Takes ownership of e in every case. */
static int rule_add(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return -ENOMEM;
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int put_meta_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return rule_add(r, e);
}

static int put_ct_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	return rule_add(r, e);
}

static int put_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	}
	return rule_add(r, e);
}

/* reg1 = reg1 & mask (xor 0), as nft emits for `expr & mask` and prefixes. */
static int put_mask(struct nftnl_rule *r, const void *mask, uint32_t len)
{
	static const uint8_t zero[16];
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, len);
	}
	return rule_add(r, e);
}

static int put_cmp(struct nftnl_rule *r, bool neg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, neg ? NFT_CMP_NEQ : NFT_CMP_EQ);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	}
	return rule_add(r, e);
}

static int put_verdict(struct nftnl_rule *r, int verdict)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
	}
	return rule_add(r, e);
}

static int put_imm_u32(struct nftnl_rule *r, uint32_t value)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DATA, value);
	}
	return rule_add(r, e);
}

/* ---- matches ---------------------------------------------------------------------------- */

static int match_l4proto(struct nftnl_rule *r, const struct dp_match *m)
{
	int err = put_meta_load(r, NFT_META_L4PROTO);

	return err < 0 ? err : put_cmp(r, m->neg, &m->l4proto, sizeof(m->l4proto));
}

/* `ct state a,b` is "any of the bits": (state & mask) != 0. */
static int match_ct_state(struct nftnl_rule *r, const struct dp_match *m)
{
	uint32_t zero = 0;
	int err;

	if ((err = put_ct_load(r, NFT_CT_STATE)) < 0 || (err = put_mask(r, &m->ct_state, 4)) < 0)
		return err;
	return put_cmp(r, !m->neg, &zero, sizeof(zero));
}

static int match_mark(struct nftnl_rule *r, const struct dp_match *m)
{
	uint32_t value = m->mark.value & m->mark.mask;
	int err;

	if (m->kind == DP_MATCH_META_MARK)
		err = put_meta_load(r, NFT_META_MARK);
	else
		err = put_ct_load(r, NFT_CT_MARK);
	if (err == 0 && m->mark.mask != UINT32_MAX)
		err = put_mask(r, &m->mark.mask, 4);
	return err < 0 ? err : put_cmp(r, m->neg, &value, sizeof(value));
}

static int match_cgroupv2(struct nftnl_rule *r, const struct dp_match *m)
{
	struct nftnl_expr *e = nftnl_expr_alloc("socket");
	int err;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_CGROUPV2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_LEVEL, m->cgroup.level);
		nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
	}
	if ((err = rule_add(r, e)) < 0)
		return err;
	return put_cmp(r, m->neg, &m->cgroup.id, sizeof(m->cgroup.id));
}

static void prefix_mask(uint8_t *mask, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++, prefix = prefix > 8 ? prefix - 8 : 0)
		mask[i] = prefix >= 8 ? 0xff : (uint8_t)(0xff << (8 - prefix));
}

/* In an inet table the address match needs its family first (nft's implicit dependency);
 * a negated match negates the address only, not the family. */
static int match_addr(struct nftnl_rule *r, const struct dp_match *m)
{
	bool v4 = m->addr.family == AF_INET;
	uint8_t nfproto = v4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
	uint32_t len = v4 ? 4 : 16;
	uint32_t off = v4 ? (m->kind == DP_MATCH_DADDR ? 16 : 12) : (m->kind == DP_MATCH_DADDR ? 24 : 8);
	uint8_t addr[16], mask[16];
	int err;

	if ((!v4 && m->addr.family != AF_INET6) || m->addr.prefix > len * 8)
		return -EINVAL;
	memcpy(addr, v4 ? (const void *)&m->addr.v4 : (const void *)&m->addr.v6, len);
	prefix_mask(mask, len, m->addr.prefix);
	for (uint32_t i = 0; i < len; i++)
		addr[i] &= mask[i];
	if ((err = put_meta_load(r, NFT_META_NFPROTO)) < 0 || (err = put_cmp(r, false, &nfproto, 1)) < 0 ||
	    (err = put_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, len)) < 0)
		return err;
	if (m->addr.prefix < len * 8 && (err = put_mask(r, mask, len)) < 0)
		return err;
	return put_cmp(r, m->neg, addr, len);
}

static int match_port(struct nftnl_rule *r, const struct dp_match *m)
{
	uint16_t port = htons(m->port);
	int err = put_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, m->kind == DP_MATCH_DPORT ? 2 : 0, 2);

	return err < 0 ? err : put_cmp(r, m->neg, &port, sizeof(port));
}

static int match_nfproto(struct nftnl_rule *r, const struct dp_match *m)
{
	int err = put_meta_load(r, NFT_META_NFPROTO);

	return err < 0 ? err : put_cmp(r, m->neg, &m->nfproto, sizeof(m->nfproto));
}

static int match_skuid(struct nftnl_rule *r, const struct dp_match *m)
{
	int err = put_meta_load(r, NFT_META_SKUID);

	return err < 0 ? err : put_cmp(r, m->neg, &m->uid, sizeof(m->uid));
}

/* nft compares the whole IFNAMSIZ buffer, NUL-padded: `iifname "lo"` is exact, not a
 * prefix. An empty or unterminated name is refused. */
static int match_ifname(struct nftnl_rule *r, const struct dp_match *m)
{
	char name[sizeof(m->ifname)] = {0};
	size_t len = strnlen(m->ifname, sizeof(m->ifname));
	int err;

	if (len == 0 || len == sizeof(m->ifname))
		return -EINVAL;
	memcpy(name, m->ifname, len);
	err = put_meta_load(r, m->kind == DP_MATCH_IIFNAME ? NFT_META_IIFNAME : NFT_META_OIFNAME);
	return err < 0 ? err : put_cmp(r, m->neg, name, sizeof(name));
}

static int put_exthdr_mss(struct nftnl_rule *r, bool load)
{
	struct nftnl_expr *e = nftnl_expr_alloc("exthdr");

	if (e) {
		nftnl_expr_set_u32(e, load ? NFTNL_EXPR_EXTHDR_DREG : NFTNL_EXPR_EXTHDR_SREG, NFT_REG_1);
		nftnl_expr_set_u8(e, NFTNL_EXPR_EXTHDR_TYPE, 2); /* TCPOPT_MAXSEG */
		nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OFFSET, 2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_LEN, 2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_EXTHDR_OP, NFT_EXTHDR_OP_TCPOPT);
	}
	return rule_add(r, e);
}

/* `tcp flags & syn != 0` */
static int match_tcp_syn(struct nftnl_rule *r, const struct dp_match *m)
{
	uint8_t syn = 0x02, zero = 0;
	int err;

	if ((err = put_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1)) < 0 || (err = put_mask(r, &syn, 1)) < 0)
		return err;
	return put_cmp(r, !m->neg, &zero, 1);
}

/* `tcp option maxseg size > mss`: big-endian bytes compare like the numbers. A packet
 * without the option does not match. */
static int match_tcp_mss_above(struct nftnl_rule *r, const struct dp_match *m)
{
	uint16_t mss = htons(m->mss);
	struct nftnl_expr *e;
	int err = put_exthdr_mss(r, true);

	if (err < 0)
		return err;
	e = nftnl_expr_alloc("cmp");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_GT);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &mss, sizeof(mss));
	}
	return rule_add(r, e);
}

/* The l4proto check comes first: the payload load then reads an ICMPv6 header. */
static int match_icmpv6_type(struct nftnl_rule *r, const struct dp_match *m)
{
	uint8_t proto = IPPROTO_ICMPV6;
	int err;

	if ((err = put_meta_load(r, NFT_META_L4PROTO)) < 0 || (err = put_cmp(r, false, &proto, 1)) < 0 ||
	    (err = put_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1)) < 0)
		return err;
	return put_cmp(r, m->neg, &m->icmp_type, sizeof(m->icmp_type));
}

static int put_match(struct nftnl_rule *r, const struct dp_match *m)
{
	switch (m->kind) {
	case DP_MATCH_L4PROTO:
		return match_l4proto(r, m);
	case DP_MATCH_CT_STATE:
		return match_ct_state(r, m);
	case DP_MATCH_META_MARK:
	case DP_MATCH_CT_MARK:
		return match_mark(r, m);
	case DP_MATCH_CGROUPV2:
		return match_cgroupv2(r, m);
	case DP_MATCH_DADDR:
	case DP_MATCH_SADDR:
		return match_addr(r, m);
	case DP_MATCH_DPORT:
	case DP_MATCH_SPORT:
		return match_port(r, m);
	case DP_MATCH_NFPROTO:
		return match_nfproto(r, m);
	case DP_MATCH_SKUID:
		return match_skuid(r, m);
	case DP_MATCH_IIFNAME:
	case DP_MATCH_OIFNAME:
		return match_ifname(r, m);
	case DP_MATCH_TCP_SYN:
		return match_tcp_syn(r, m);
	case DP_MATCH_TCP_MSS_ABOVE:
		return match_tcp_mss_above(r, m);
	case DP_MATCH_ICMPV6_TYPE:
		return match_icmpv6_type(r, m);
	}
	return -EINVAL;
}

/* ---- actions ---------------------------------------------------------------------------- */

static int queue_native(struct nftnl_rule *r, const struct dp_action *a)
{
	struct nftnl_expr *e = nftnl_expr_alloc("queue");
	uint16_t flags = 0;

	if (a->queue.flags & DP_QUEUE_F_BYPASS)
		flags |= NFT_QUEUE_FLAG_BYPASS;
	if (a->queue.flags & DP_QUEUE_F_FANOUT)
		flags |= NFT_QUEUE_FLAG_CPU_FANOUT;
	if (e) {
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_NUM, a->queue.num);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_TOTAL, a->queue.total ? a->queue.total : 1);
		nftnl_expr_set_u16(e, NFTNL_EXPR_QUEUE_FLAGS, flags);
	}
	return rule_add(r, e);
}

/* The xtables NFQUEUE target through nft_compat, for kernels without nft_queue. libnftnl
 * takes ownership of the heap-allocated info. */
static int queue_compat(struct nftnl_rule *r, const struct dp_action *a)
{
	struct xt_NFQ_info_v3 *info = calloc(1, sizeof(*info));
	struct nftnl_expr *e = nftnl_expr_alloc("target");

	if (!info || !e) {
		free(info);
		nftnl_expr_free(e);
		return -ENOMEM;
	}
	info->queuenum = a->queue.num;
	info->queues_total = a->queue.total ? a->queue.total : 1;
	if (a->queue.flags & DP_QUEUE_F_BYPASS)
		info->flags |= NFQ_FLAG_BYPASS;
	if (a->queue.flags & DP_QUEUE_F_FANOUT)
		info->flags |= NFQ_FLAG_CPU_FANOUT;
	nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
	nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
	nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, info, sizeof(*info));
	return rule_add(r, e);
}

/* mark = value, or with mark_keep: mark = (mark & mark_keep) ^ value, so that other software's
 * bits of the mark survive (nft: `ct mark set ct mark & 0xff0fffff | 0x00100000`). */
static int mark_set(struct nftnl_rule *r, const struct dp_action *a)
{
	bool meta = a->kind == DP_ACTION_META_MARK_SET;
	uint32_t key = meta ? NFT_META_MARK : NFT_CT_MARK;
	struct nftnl_expr *e;
	int err;

	if (a->mark_keep) {
		err = meta ? put_meta_load(r, key) : put_ct_load(r, key);
		e = err < 0 ? NULL : nftnl_expr_alloc("bitwise");
		if (e) {
			nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
			nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
			nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &a->mark_keep, sizeof(uint32_t));
			nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &a->mark, sizeof(uint32_t));
		}
		err = err < 0 ? err : rule_add(r, e);
	} else
		err = put_imm_u32(r, a->mark);
	if (err < 0)
		return err;
	e = nftnl_expr_alloc(meta ? "meta" : "ct");
	if (e) {
		nftnl_expr_set_u32(e, meta ? NFTNL_EXPR_META_KEY : NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, meta ? NFTNL_EXPR_META_SREG : NFTNL_EXPR_CT_SREG, NFT_REG_1);
	}
	return rule_add(r, e);
}

static int put_imm(struct nftnl_rule *r, uint32_t reg, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
	}
	return rule_add(r, e);
}

/* `tproxy ip to 127.0.0.1:7153` as nft emits it: address and port loaded into registers,
 * then the tproxy expression of one family. */
static int tproxy(struct nftnl_rule *r, const struct dp_action *a)
{
	bool v6 = a->tproxy.family == AF_INET6;
	uint16_t port = htons(a->tproxy.port);
	struct nftnl_expr *e;
	int err;

	if (a->tproxy.family != AF_INET && !v6)
		return -EINVAL;
	if ((err = put_imm(r, NFT_REG_1, v6 ? (const void *)&a->tproxy.v6 : (const void *)&a->tproxy.v4,
			   v6 ? 16 : 4)) < 0 ||
	    (err = put_imm(r, NFT_REG_2, &port, sizeof(port))) < 0)
		return err;
	e = nftnl_expr_alloc("tproxy");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_FAMILY, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
		nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_REG_ADDR, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_TPROXY_REG_PORT, NFT_REG_2);
	}
	return rule_add(r, e);
}

/* `tcp option maxseg size set N`: the kernel rewrites the option and the checksum. */
static int mss_set(struct nftnl_rule *r, const struct dp_action *a)
{
	uint16_t mss = htons(a->mss);
	int err = put_imm(r, NFT_REG_1, &mss, sizeof(mss));

	return err < 0 ? err : put_exthdr_mss(r, false);
}

/* Expressions without attributes: masq, counter. */
static int put_bare(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	return e ? rule_add(r, e) : -ENOMEM;
}

static int put_action(struct nftnl_rule *r, const struct dp_action *a, enum dp_queue_backend qb)
{
	switch (a->kind) {
	case DP_ACTION_ACCEPT:
		return put_verdict(r, NF_ACCEPT);
	case DP_ACTION_DROP:
		return put_verdict(r, NF_DROP);
	case DP_ACTION_QUEUE:
		return qb == DP_QUEUE_NATIVE ? queue_native(r, a) : queue_compat(r, a);
	case DP_ACTION_META_MARK_SET:
	case DP_ACTION_CT_MARK_SET:
		return mark_set(r, a);
	case DP_ACTION_TPROXY:
		return tproxy(r, a);
	case DP_ACTION_TCP_MSS_SET:
		return mss_set(r, a);
	case DP_ACTION_MASQUERADE:
		return put_bare(r, "masq");
	case DP_ACTION_COUNTER:
		return put_bare(r, "counter");
	}
	return -EINVAL;
}

/* ---- messages --------------------------------------------------------------------------- */

static const char *const chain_types[] = {
	[DP_CHAIN_FILTER] = "filter", [DP_CHAIN_ROUTE] = "route", [DP_CHAIN_NAT] = "nat"};
static const uint32_t hooks[] = {
	[DP_HOOK_PREROUTING] = NF_INET_PRE_ROUTING, [DP_HOOK_INPUT] = NF_INET_LOCAL_IN,
	[DP_HOOK_FORWARD] = NF_INET_FORWARD, [DP_HOOK_OUTPUT] = NF_INET_LOCAL_OUT,
	[DP_HOOK_POSTROUTING] = NF_INET_POST_ROUTING};

static int batch_next(struct mnl_nlmsg_batch *batch)
{
	return mnl_nlmsg_batch_next(batch) ? 0 : -ENOBUFS;
}

static int msg_table(struct mnl_nlmsg_batch *batch, uint16_t type, uint16_t flags, const char *name,
		     uint32_t seq)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(batch), type, NFPROTO_INET, flags, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	return batch_next(batch);
}

static int msg_chain(struct mnl_nlmsg_batch *batch, const char *table, const struct dp_chain *c,
		     uint32_t seq)
{
	struct nftnl_chain *ch = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	if (!ch)
		return -ENOMEM;
	if ((unsigned)c->type >= NE_ARRAY_SIZE(chain_types) || (unsigned)c->hook >= NE_ARRAY_SIZE(hooks)) {
		nftnl_chain_free(ch);
		return -EINVAL;
	}
	nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME, c->name);
	nftnl_chain_set_str(ch, NFTNL_CHAIN_TYPE, chain_types[c->type]);
	nftnl_chain_set_u32(ch, NFTNL_CHAIN_HOOKNUM, hooks[c->hook]);
	nftnl_chain_set_s32(ch, NFTNL_CHAIN_PRIO, c->priority);
	nftnl_chain_set_u32(ch, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(batch), NFT_MSG_NEWCHAIN, NFPROTO_INET,
				    NLM_F_CREATE, seq);
	nftnl_chain_nlmsg_build_payload(nlh, ch);
	nftnl_chain_free(ch);
	return batch_next(batch);
}

static int rule_fill(struct nftnl_rule *r, const struct dp_rule *dr, enum dp_queue_backend qb)
{
	int err = 0;

	for (size_t i = 0; err == 0 && i < dr->n_matches; i++)
		err = put_match(r, &dr->matches[i]);
	for (size_t i = 0; err == 0 && i < dr->n_actions; i++)
		err = put_action(r, &dr->actions[i], qb);
	return err;
}

/* The NEWRULE message for dr at buf (room for DP_NFT_BATCH_SLACK bytes); its length or an error. */
static int rule_nlmsg(void *buf, const char *table, const char *chain, const struct dp_rule *dr,
		      enum dp_queue_backend qb, uint32_t seq)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	int err;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	err = rule_fill(r, dr, qb);
	if (err == 0) {
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_CREATE | NLM_F_APPEND, seq);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		err = (int)nlh->nlmsg_len;
	}
	nftnl_rule_free(r);
	return err;
}

static int msg_rule(struct mnl_nlmsg_batch *batch, const char *table, const char *chain,
		    const struct dp_rule *dr, enum dp_queue_backend qb, uint32_t seq)
{
	int err = rule_nlmsg(mnl_nlmsg_batch_current(batch), table, chain, dr, qb, seq);

	return err < 0 ? err : batch_next(batch);
}

/* NFT_MSG_DELRULE without a handle (flush the chain) or NFT_MSG_DELCHAIN. */
static int msg_chain_del(struct mnl_nlmsg_batch *batch, uint16_t type, const char *table, const char *chain,
			 uint32_t seq)
{
	struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(batch), type, NFPROTO_INET, 0, seq);

	if (type == NFT_MSG_DELRULE) {
		struct nftnl_rule *r = nftnl_rule_alloc();

		if (!r)
			return -ENOMEM;
		nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
		nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		nftnl_rule_free(r);
	} else {
		struct nftnl_chain *c = nftnl_chain_alloc();

		if (!c)
			return -ENOMEM;
		nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
		nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain);
		nftnl_chain_nlmsg_build_payload(nlh, c);
		nftnl_chain_free(c);
	}
	return batch_next(batch);
}

static int batch_marker(struct mnl_nlmsg_batch *batch, bool begin, uint32_t seq)
{
	if (begin)
		nftnl_batch_begin(mnl_nlmsg_batch_current(batch), seq);
	else
		nftnl_batch_end(mnl_nlmsg_batch_current(batch), seq);
	return batch_next(batch);
}

/* Only the last message asks for an ACK: errors are reported for every failing message
 * anyway, and one ACK per rule would overrun the receive buffer on large rulesets. */
static void ack_last(struct mnl_nlmsg_batch *batch, size_t last_off)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)((char *)mnl_nlmsg_batch_head(batch) + last_off);

	nlh->nlmsg_flags |= NLM_F_ACK;
}

static int build_body(const struct dp_ruleset *rs, enum dp_queue_backend qb,
		      struct mnl_nlmsg_batch *batch, uint32_t *seq, size_t *last_off)
{
	int err;

	/* Add before delete: the delete then succeeds whether or not the table existed. */
	if ((err = msg_table(batch, NFT_MSG_NEWTABLE, NLM_F_CREATE, rs->table, (*seq)++)) < 0 ||
	    (err = msg_table(batch, NFT_MSG_DELTABLE, 0, rs->table, (*seq)++)) < 0)
		return err;
	*last_off = mnl_nlmsg_batch_size(batch);
	if ((err = msg_table(batch, NFT_MSG_NEWTABLE, NLM_F_CREATE, rs->table, (*seq)++)) < 0)
		return err;
	for (size_t i = 0; i < rs->n_chains; i++) {
		*last_off = mnl_nlmsg_batch_size(batch);
		if ((err = msg_chain(batch, rs->table, &rs->chains[i], (*seq)++)) < 0)
			return err;
	}
	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct dp_rule *r = &rs->rules[i];

		if (r->chain >= rs->n_chains)
			return -EINVAL;
		*last_off = mnl_nlmsg_batch_size(batch);
		if ((err = msg_rule(batch, rs->table, rs->chains[r->chain].name, r, qb, (*seq)++)) < 0)
			return err;
	}
	return 0;
}

int dp_nft_build(const struct dp_ruleset *rs, enum dp_queue_backend qb, struct mnl_nlmsg_batch *batch,
		 uint32_t *seq)
{
	uint32_t s = *seq;
	size_t last_off = 0;
	int err;

	if (rs->table[0] == '\0')
		return -EINVAL;
	if ((err = batch_marker(batch, true, s++)) < 0 || (err = build_body(rs, qb, batch, &s, &last_off)) < 0 ||
	    (err = batch_marker(batch, false, s++)) < 0)
		return err;
	ack_last(batch, last_off);
	*seq = s;
	return 0;
}

/* ---- in-place updates (see dp_nft.h) -------------------------------------------------------- */

/* FNV-1a over the rule messages of chain ci of rs, in order (sequence number 0): two rule
 * lists that hash alike are, barring a 64-bit collision, the same rules. 0: no rules. */
static int chain_hash(const struct dp_ruleset *rs, size_t ci, enum dp_queue_backend qb, void *scratch,
		      uint64_t *ret)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	bool any = false;

	for (size_t i = 0; i < rs->n_rules; i++) {
		const struct dp_rule *r = &rs->rules[i];
		const uint8_t *p = scratch;
		int len;

		if (r->chain >= rs->n_chains)
			return -EINVAL;
		if (r->chain != ci)
			continue;
		len = rule_nlmsg(scratch, rs->table, rs->chains[ci].name, r, qb, 0);
		if (len < 0)
			return len;
		for (int k = 0; k < len; k++)
			h = (h ^ p[k]) * 0x100000001b3ULL;
		/* libmnl leaves attribute padding unwritten: the next message must find zeros. */
		memset(scratch, 0, (size_t)len);
		any = true;
	}
	*ret = !any ? 0 : h ? h : 1;
	return 0;
}

static int chain_hashes(const struct dp_ruleset *rs, enum dp_queue_backend qb, uint64_t *out)
{
	void *scratch = calloc(1, DP_NFT_BATCH_SLACK);
	int err = scratch ? 0 : -ENOMEM;

	for (size_t i = 0; err == 0 && i < rs->n_chains; i++)
		err = chain_hash(rs, i, qb, scratch, &out[i]);
	free(scratch);
	return err;
}

int dp_nft_state_of(const struct dp_ruleset *rs, enum dp_queue_backend qb, struct dp_nft_state *out)
{
	uint64_t hash[DP_RULESET_MAX_CHAINS];
	int err;

	if (rs->n_chains > DP_RULESET_MAX_CHAINS)
		return -EINVAL;
	if ((err = chain_hashes(rs, qb, hash)) < 0)
		return err;
	memset(out, 0, sizeof(*out));
	(void)ne_strscpy(out->table, rs->table, sizeof(out->table));
	for (size_t i = 0; i < rs->n_chains; i++)
		out->chains[i] = (struct dp_nft_chain_state){ rs->chains[i], hash[i] };
	out->n_chains = rs->n_chains;
	return 0;
}

static bool chain_same(const struct dp_chain *a, const struct dp_chain *b)
{
	return a->type == b->type && a->hook == b->hook && a->priority == b->priority;
}

static ssize_t state_find(const struct dp_nft_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_chains; i++)
		if (!strcmp(st->chains[i].chain.name, name))
			return (ssize_t)i;
	return -1;
}

enum { UP_NONE, UP_FILL, UP_REFILL, UP_REMAKE, UP_NEW };

int dp_nft_build_update(const struct dp_nft_state *before, const struct dp_ruleset *rs,
			enum dp_queue_backend qb, struct mnl_nlmsg_batch *batch, uint32_t *seq,
			struct dp_nft_state *after)
{
	uint64_t hash[DP_RULESET_MAX_CHAINS];
	int todo[DP_RULESET_MAX_CHAINS];
	bool flush_old[DP_NFT_STATE_MAX_CHAINS] = { false };
	bool any = false;
	uint32_t s = *seq;
	size_t last_off = 0;
	int err;

	if (rs->table[0] == '\0' || rs->n_chains > DP_RULESET_MAX_CHAINS)
		return -EINVAL;
	if (strcmp(before->table, rs->table) || before->n_chains > DP_NFT_STATE_MAX_CHAINS)
		return -ENOSPC;
	if ((err = chain_hashes(rs, qb, hash)) < 0)
		return err;
	/* The plan: *after starts as *before; chains rs lacks keep their place, emptied. */
	*after = *before;
	for (size_t i = 0; i < after->n_chains; i++) {
		size_t unused;

		if (after->chains[i].rules_hash &&
		    dp_ruleset_find_chain(rs, after->chains[i].chain.name, &unused) < 0) {
			flush_old[i] = any = true;
			after->chains[i].rules_hash = 0;
		}
	}
	for (size_t i = 0; i < rs->n_chains; i++) {
		ssize_t k = state_find(after, rs->chains[i].name);

		if (k < 0) {
			if (after->n_chains >= DP_NFT_STATE_MAX_CHAINS)
				return -ENOSPC;
			k = (ssize_t)after->n_chains++;
			todo[i] = UP_NEW;
		} else if (!chain_same(&after->chains[k].chain, &rs->chains[i]))
			todo[i] = UP_REMAKE;
		else if (after->chains[k].rules_hash == hash[i])
			todo[i] = UP_NONE;
		else /* an empty chain needs no flush */
			todo[i] = after->chains[k].rules_hash ? UP_REFILL : UP_FILL;
		after->chains[k] = (struct dp_nft_chain_state){ rs->chains[i], hash[i] };
		any |= todo[i] != UP_NONE;
	}
	if (!any)
		return 1;

#define STEP(call)                                           \
	do {                                                 \
		last_off = mnl_nlmsg_batch_size(batch);      \
		if ((err = (call)) < 0)                      \
			return err;                          \
	} while (0)
	if ((err = batch_marker(batch, true, s++)) < 0)
		return err;
	for (size_t i = 0; i < before->n_chains; i++)
		if (flush_old[i])
			STEP(msg_chain_del(batch, NFT_MSG_DELRULE, rs->table, before->chains[i].chain.name, s++));
	for (size_t i = 0; i < rs->n_chains; i++) {
		const char *name = rs->chains[i].name;

		if (todo[i] == UP_NONE)
			continue;
		if (todo[i] == UP_REFILL || todo[i] == UP_REMAKE)
			STEP(msg_chain_del(batch, NFT_MSG_DELRULE, rs->table, name, s++));
		if (todo[i] == UP_REMAKE)
			STEP(msg_chain_del(batch, NFT_MSG_DELCHAIN, rs->table, name, s++));
		if (todo[i] == UP_REMAKE || todo[i] == UP_NEW)
			STEP(msg_chain(batch, rs->table, &rs->chains[i], s++));
		for (size_t r = 0; r < rs->n_rules; r++)
			if (rs->rules[r].chain == i)
				STEP(msg_rule(batch, rs->table, name, &rs->rules[r], qb, s++));
	}
#undef STEP
	if ((err = batch_marker(batch, false, s++)) < 0)
		return err;
	ack_last(batch, last_off);
	*seq = s;
	return 0;
}

/* ---- kernel I/O --------------------------------------------------------------------------- */

int dp_nft_open(struct dp_nft **ret)
{
	struct dp_nft *n = calloc(1, sizeof(*n));
	int err;

	if (!n)
		return -ENOMEM;
	n->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (!n->nl || mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = ne_negerrno();
		dp_nft_close(n);
		return err;
	}
	n->portid = mnl_socket_get_portid(n->nl);
	n->seq = (uint32_t)time(NULL);
	n->qb = DP_QUEUE_COMPAT;
	*ret = n;
	return 0;
}

void dp_nft_close(struct dp_nft *n)
{
	if (!n)
		return;
	if (n->nl)
		mnl_socket_close(n->nl);
	free(n);
}

void dp_nft_set_queue_backend(struct dp_nft *n, enum dp_queue_backend qb)
{
	n->qb = qb;
}

typedef void (*reply_fn)(const struct nlmsghdr *nlh, void *data);

/* Reads every reply queued for us. nfnetlink processes a request inside our sendmsg(), so
 * all replies are already queued when it returns: reading until EAGAIN cannot miss one and
 * cannot block. Returns the first error reported, -EIO when no ACK arrived. */
static int drain_replies(struct dp_nft *n, reply_fn fn, void *data)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int first_err = 0;
	bool acked = false;
	ssize_t len;

	while ((len = recv(mnl_socket_get_fd(n->nl), buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
		int left = (int)len;

		for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

				acked = true;
				if (e->error && !first_err)
					first_err = e->error;
			} else if (fn) {
				fn(nlh, data);
			}
		}
	}
	if (len < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
		return first_err ? first_err : ne_negerrno();
	if (first_err)
		return first_err;
	return acked ? 0 : -EIO;
}

static int talk(struct dp_nft *n, const void *msg, size_t len, reply_fn fn, void *data)
{
	if (mnl_socket_sendto(n->nl, msg, len) < 0)
		return ne_negerrno();
	return drain_replies(n, fn, data);
}

/* Netlink refuses a message larger than the send buffer; big rulesets need a bigger one. */
static void grow_sndbuf(struct dp_nft *n, size_t len)
{
	int fd = mnl_socket_get_fd(n->nl), size = (int)NE_MIN(len, (size_t)1 << 30);

	if (len < 128 * 1024)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

typedef int (*build_fn)(const void *arg, enum dp_queue_backend qb, struct mnl_nlmsg_batch *b,
			uint32_t *seq);

/* Builds with build_fn into a buffer that grows until the batch fits, then sends it. */
static int send_batch(struct dp_nft *n, build_fn build, const void *arg, size_t hint)
{
	size_t limit = NE_MAX(hint, (size_t)16384);
	int err = -ENOBUFS;

	for (int tries = 0; err == -ENOBUFS && tries < 8; tries++, limit *= 2) {
		char *buf = calloc(1, limit + DP_NFT_BATCH_SLACK); /* no stale bytes in padding */
		struct mnl_nlmsg_batch *b = buf ? mnl_nlmsg_batch_start(buf, limit) : NULL;

		err = b ? build(arg, n->qb, b, &n->seq) : -ENOMEM;
		if (err == 0) {
			grow_sndbuf(n, mnl_nlmsg_batch_size(b));
			err = talk(n, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b), NULL, NULL);
		}
		if (b)
			mnl_nlmsg_batch_stop(b);
		free(buf);
	}
	return err;
}

static int build_ruleset(const void *arg, enum dp_queue_backend qb, struct mnl_nlmsg_batch *b,
			 uint32_t *seq)
{
	return dp_nft_build(arg, qb, b, seq);
}

struct update_arg {
	const struct dp_nft_state *before;
	const struct dp_ruleset *rs;
	struct dp_nft_state *after;
};

static int build_update(const void *arg, enum dp_queue_backend qb, struct mnl_nlmsg_batch *b, uint32_t *seq)
{
	const struct update_arg *u = arg;

	return dp_nft_build_update(u->before, u->rs, qb, b, seq, u->after);
}

int dp_nft_apply(struct dp_nft *n, const struct dp_ruleset *rs)
{
	size_t hint = 16384 + rs->n_rules * 1024;
	int err;

	if (n->synced) {
		struct dp_nft_state *after = malloc(sizeof(*after));
		struct update_arg u = { &n->state, rs, after };

		err = after ? send_batch(n, build_update, &u, hint) : -ENOMEM;
		if (err >= 0)
			n->state = *after;
		free(after);
		if (err >= 0)
			return 0;
		/* The kernel refused the transaction as a whole: the table is as it was. Only
		 * ENOENT (a chain or the table is missing) and ENOSPC (no update in place)
		 * make the whole table worth replacing. */
		if (err != -ENOENT && err != -ENOSPC)
			return err;
		if (err == -ENOENT)
			log_warnx("nft: table inet %s is not what netextd made (changed by someone else?); "
				  "replacing it whole", rs->table);
	}
	n->synced = false;
	err = send_batch(n, build_ruleset, rs, hint);
	if (err == 0 && dp_nft_state_of(rs, n->qb, &n->state) == 0)
		n->synced = true;
	return err;
}

int dp_nft_table_delete(struct dp_nft *n, const char *name)
{
	char buf[MNL_SOCKET_BUFFER_SIZE * 2];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, MNL_SOCKET_BUFFER_SIZE);
	int err;

	if (n->synced && !strcmp(n->state.table, name))
		n->synced = false;

	if ((err = batch_marker(b, true, n->seq++)) < 0 ||
	    (err = msg_table(b, NFT_MSG_DELTABLE, NLM_F_ACK, name, n->seq++)) < 0 ||
	    (err = batch_marker(b, false, n->seq++)) < 0)
		goto out;
	err = talk(n, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b), NULL, NULL);
	if (err == -ENOENT)
		err = 0;
out:
	mnl_nlmsg_batch_stop(b);
	return err;
}

static void count_table(const struct nlmsghdr *nlh, void *data)
{
	if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWTABLE)
		*(bool *)data = true;
}

int dp_nft_table_exists(struct dp_nft *n, const char *name, bool *ret)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	bool found = false;
	int err;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, n->seq++);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	err = talk(n, nlh, nlh->nlmsg_len, count_table, &found);
	if (err == -ENOENT) {
		err = 0;
		found = false;
	}
	if (err == 0)
		*ret = found;
	return err;
}

/* The probe: table, a regular (never hooked, so it sees no traffic) chain with one native
 * queue rule, and the table's deletion, all in one transaction. */
static int build_probe(const void *arg, enum dp_queue_backend qb, struct mnl_nlmsg_batch *b,
		       uint32_t *seq)
{
	const char *table = arg;
	struct dp_rule rule = {.n_actions = 1, .actions[0] = {.kind = DP_ACTION_QUEUE, .queue.num = 0}};
	struct nftnl_chain *ch = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	int err;

	if (!ch)
		return -ENOMEM;
	nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME, "probe");
	if ((err = batch_marker(b, true, (*seq)++)) < 0 ||
	    (err = msg_table(b, NFT_MSG_NEWTABLE, NLM_F_CREATE, table, (*seq)++)) < 0)
		goto out;
	nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWCHAIN, NFPROTO_INET,
				    NLM_F_CREATE, (*seq)++);
	nftnl_chain_nlmsg_build_payload(nlh, ch);
	if ((err = batch_next(b)) < 0 || (err = msg_rule(b, table, "probe", &rule, qb, (*seq)++)) < 0 ||
	    (err = msg_table(b, NFT_MSG_DELTABLE, NLM_F_ACK, table, (*seq)++)) < 0)
		goto out;
	err = batch_marker(b, false, (*seq)++);
out:
	nftnl_chain_free(ch);
	return err;
}

int dp_nft_probe_queue(struct dp_nft *n, enum dp_queue_backend *ret)
{
	char table[DP_NFT_NAME_MAX];
	enum dp_queue_backend saved = n->qb;
	int err, derr;

	snprintf(table, sizeof(table), "netext-probe-%ld", (long)getpid());
	n->qb = DP_QUEUE_NATIVE;
	err = send_batch(n, build_probe, table, 16384);
	n->qb = saved;
	/* The batch deletes the table itself; this covers a kernel that half-applied it. */
	derr = dp_nft_table_delete(n, table);
	if (err == -ENOENT || err == -EOPNOTSUPP) {
		log_info("nft: no native queue expression (%s), using the xtables NFQUEUE target via nft_compat",
			 strerror(-err));
		n->qb = DP_QUEUE_COMPAT;
	} else if (err == 0) {
		log_info("nft: using the native nftables queue expression");
		n->qb = DP_QUEUE_NATIVE;
	} else {
		return err;
	}
	if (derr < 0)
		log_warnx("nft: could not delete probe table %s: %s", table, strerror(-derr));
	*ret = n->qb;
	return 0;
}

/* ---- counters ----------------------------------------------------------------------------- */

struct counters {
	uint64_t packets, bytes;
};

static int sum_counter(struct nftnl_expr *e, void *data)
{
	struct counters *c = data;

	if (!strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "counter")) {
		c->packets += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
		c->bytes += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
	}
	return 0;
}

static int counter_rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_rule *r = nftnl_rule_alloc();

	if (r && nftnl_rule_nlmsg_parse(nlh, r) == 0)
		nftnl_expr_foreach(r, sum_counter, data);
	nftnl_rule_free(r);
	return MNL_CB_OK;
}

int dp_nft_chain_counters(struct dp_nft *n, const char *table, const char *chain, uint64_t *ret_packets,
			  uint64_t *ret_bytes)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct counters c = { 0, 0 };
	struct nlmsghdr *nlh;
	uint32_t seq = n->seq++;
	ssize_t len;
	int ret;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, seq);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	if (mnl_socket_sendto(n->nl, nlh, nlh->nlmsg_len) < 0)
		return ne_negerrno();
	/* A dump ends with NLMSG_DONE (MNL_CB_STOP) or an error. */
	do {
		len = mnl_socket_recvfrom(n->nl, buf, sizeof(buf));
		if (len < 0)
			return ne_negerrno();
		ret = mnl_cb_run(buf, (size_t)len, seq, n->portid, counter_rule_cb, &c);
	} while (ret > MNL_CB_STOP);
	if (ret < 0)
		return ne_negerrno();
	*ret_packets = c.packets;
	*ret_bytes = c.bytes;
	return 0;
}
