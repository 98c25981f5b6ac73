/* Build-then-parse round trips for dp_nft: the batch dp_nft_build() produces is walked with
 * libmnl and parsed back with libnftnl, as the kernel would see it. No root needed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <stdlib.h>
#include <string.h>

#include "dp_nft.h"
#include "util.h"

#define BUF_LIMIT (64 * 1024)
#define MAX_MSGS 64
#define MAX_EXPRS 32

struct parsed {
	size_t n_msgs;
	uint16_t types[MAX_MSGS]; /* NFNL_MSG_BATCH_* or NFT_MSG_* */
	uint16_t flags[MAX_MSGS];
	struct nftnl_chain *chains[MAX_MSGS];
	size_t n_chains;
	struct nftnl_rule *rules[MAX_MSGS];
	size_t n_rules;
	char chain[MAX_MSGS][DP_NFT_NAME_MAX]; /* the chain a chain or rule message names */
};

static void parse_msg(struct parsed *p, const struct nlmsghdr *nlh)
{
	uint16_t type = nlh->nlmsg_type;

	if (type != NFNL_MSG_BATCH_BEGIN && type != NFNL_MSG_BATCH_END) {
		assert_int_equal(NFNL_SUBSYS_ID(type), NFNL_SUBSYS_NFTABLES);
		type = NFNL_MSG_TYPE(type);
	}
	assert_true(p->n_msgs < MAX_MSGS);
	p->flags[p->n_msgs] = nlh->nlmsg_flags;
	p->types[p->n_msgs++] = type;
	if (type == NFT_MSG_NEWCHAIN || type == NFT_MSG_DELCHAIN) {
		struct nftnl_chain *c = nftnl_chain_alloc();

		assert_int_equal(nftnl_chain_nlmsg_parse(nlh, c), 0);
		strcpy(p->chain[p->n_msgs - 1], nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
		if (type == NFT_MSG_NEWCHAIN)
			p->chains[p->n_chains++] = c;
		else
			nftnl_chain_free(c);
	} else if (type == NFT_MSG_NEWRULE || type == NFT_MSG_DELRULE) {
		struct nftnl_rule *r = nftnl_rule_alloc();

		assert_int_equal(nftnl_rule_nlmsg_parse(nlh, r), 0);
		strcpy(p->chain[p->n_msgs - 1], nftnl_rule_get_str(r, NFTNL_RULE_CHAIN));
		assert_false(type == NFT_MSG_DELRULE && nftnl_rule_is_set(r, NFTNL_RULE_HANDLE));
		if (type == NFT_MSG_NEWRULE)
			p->rules[p->n_rules++] = r;
		else
			nftnl_rule_free(r);
	}
}

static void build_and_parse(const struct dp_ruleset *rs, enum dp_queue_backend qb, struct parsed *p)
{
	char *buf = malloc(BUF_LIMIT + DP_NFT_BATCH_SLACK);
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, BUF_LIMIT);
	uint32_t seq = 100;
	const struct nlmsghdr *nlh;
	int left;

	memset(p, 0, sizeof(*p));
	assert_int_equal(dp_nft_build(rs, qb, b, &seq), 0);
	nlh = mnl_nlmsg_batch_head(b);
	left = (int)mnl_nlmsg_batch_size(b);
	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		parse_msg(p, nlh);
	assert_int_equal(left, 0);
	assert_int_equal(seq, 100 + p->n_msgs); /* one sequence number per message */
	mnl_nlmsg_batch_stop(b);
	free(buf);
}

/* dp_nft_build_update(before, rs) parsed into p; its return value. */
static int update_and_parse(const struct dp_nft_state *before, const struct dp_ruleset *rs,
			    struct dp_nft_state *after, struct parsed *p)
{
	char *buf = malloc(BUF_LIMIT + DP_NFT_BATCH_SLACK);
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, BUF_LIMIT);
	uint32_t seq = 100;
	const struct nlmsghdr *nlh;
	int left, r;

	memset(p, 0, sizeof(*p));
	r = dp_nft_build_update(before, rs, DP_QUEUE_COMPAT, b, &seq, after);
	nlh = mnl_nlmsg_batch_head(b);
	left = (int)mnl_nlmsg_batch_size(b);
	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		parse_msg(p, nlh);
	assert_int_equal(left, 0);
	assert_int_equal(seq, 100 + p->n_msgs);
	if (r == 0) /* one ACK request, on the last real message */
		for (size_t i = 0; i < p->n_msgs; i++)
			assert_int_equal(!!(p->flags[i] & NLM_F_ACK), i == p->n_msgs - 2);
	mnl_nlmsg_batch_stop(b);
	free(buf);
	return r;
}

static void parsed_free(struct parsed *p)
{
	for (size_t i = 0; i < p->n_chains; i++)
		nftnl_chain_free(p->chains[i]);
	for (size_t i = 0; i < p->n_rules; i++)
		nftnl_rule_free(p->rules[i]);
}

static size_t rule_exprs(struct nftnl_rule *r, struct nftnl_expr **out)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;
	size_t n = 0;

	while ((e = nftnl_expr_iter_next(it)) && n < MAX_EXPRS)
		out[n++] = e;
	nftnl_expr_iter_destroy(it);
	return n;
}

static const char *expr_name(struct nftnl_expr *e)
{
	return nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
}

static void queue_rule(struct dp_ruleset *rs, uint16_t num, uint32_t flags)
{
	struct dp_rule r = {0};
	struct dp_match m = {.kind = DP_MATCH_L4PROTO, .l4proto = IPPROTO_UDP};
	struct dp_action a = {.kind = DP_ACTION_QUEUE, .queue = {.num = num, .flags = flags}};

	assert_int_equal(dp_ruleset_find_chain(rs, "output", &r.chain), 0);
	assert_int_equal(dp_rule_add_match(&r, &m), 0);
	m = (struct dp_match){.kind = DP_MATCH_DPORT, .port = 5353};
	assert_int_equal(dp_rule_add_match(&r, &m), 0);
	assert_int_equal(dp_rule_add_action(&r, &a), 0);
	assert_int_equal(dp_ruleset_add_rule(rs, &r), 0);
}

static void test_transaction_shape(void **state)
{
	static const uint16_t want[] = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE,
					NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWCHAIN,
					NFT_MSG_NEWCHAIN, NFT_MSG_NEWCHAIN, NFNL_MSG_BATCH_END};
	struct dp_ruleset rs;
	struct parsed p;

	dp_ruleset_init_base(&rs, "netext-test");
	build_and_parse(&rs, DP_QUEUE_COMPAT, &p);
	assert_int_equal(p.n_msgs, NE_ARRAY_SIZE(want));
	for (size_t i = 0; i < p.n_msgs; i++)
		assert_int_equal(p.types[i], want[i]);
	/* Exactly one ACK request, on the last real message. */
	for (size_t i = 0; i < p.n_msgs; i++)
		assert_int_equal(!!(p.flags[i] & NLM_F_ACK), i == p.n_msgs - 2);
	parsed_free(&p);
	dp_ruleset_free(&rs);
}

static void check_chain(struct nftnl_chain *c, const char *name, const char *type, uint32_t hook, int32_t prio)
{
	assert_string_equal(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), "netext-test");
	assert_string_equal(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), name);
	assert_string_equal(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), type);
	assert_int_equal(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM), hook);
	assert_int_equal(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO), prio);
	assert_int_equal(nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY), NF_ACCEPT);
}

static void test_base_chains(void **state)
{
	struct dp_ruleset rs;
	struct parsed p;

	dp_ruleset_init_base(&rs, "netext-test");
	build_and_parse(&rs, DP_QUEUE_COMPAT, &p);
	assert_int_equal(p.n_chains, 4);
	check_chain(p.chains[0], "output", "route", NF_INET_LOCAL_OUT, -150);
	check_chain(p.chains[1], "prerouting", "filter", NF_INET_PRE_ROUTING, -150);
	check_chain(p.chains[2], "input", "filter", NF_INET_LOCAL_IN, 0);
	check_chain(p.chains[3], "forward", "filter", NF_INET_FORWARD, 0);
	parsed_free(&p);
	dp_ruleset_free(&rs);
}

static void test_queue_compat(void **state)
{
	struct nftnl_expr *e[MAX_EXPRS];
	const struct xt_NFQ_info_v3 *info;
	struct dp_ruleset rs;
	struct parsed p;
	uint32_t len;
	size_t n;

	dp_ruleset_init_base(&rs, "netext-test");
	queue_rule(&rs, 7, DP_QUEUE_F_BYPASS);
	build_and_parse(&rs, DP_QUEUE_COMPAT, &p);
	assert_int_equal(p.n_rules, 1);
	assert_string_equal(nftnl_rule_get_str(p.rules[0], NFTNL_RULE_CHAIN), "output");
	n = rule_exprs(p.rules[0], e);
	assert_int_equal(n, 5); /* meta, cmp, payload, cmp, target */
	assert_string_equal(expr_name(e[4]), "target");
	assert_string_equal(nftnl_expr_get_str(e[4], NFTNL_EXPR_TG_NAME), "NFQUEUE");
	assert_int_equal(nftnl_expr_get_u32(e[4], NFTNL_EXPR_TG_REV), 3);
	info = nftnl_expr_get(e[4], NFTNL_EXPR_TG_INFO, &len);
	assert_int_equal(len, sizeof(*info));
	assert_int_equal(info->queuenum, 7);
	assert_int_equal(info->queues_total, 1);
	assert_int_equal(info->flags, NFQ_FLAG_BYPASS);
	parsed_free(&p);
	dp_ruleset_free(&rs);
}

static void test_queue_native(void **state)
{
	struct nftnl_expr *e[MAX_EXPRS];
	struct dp_ruleset rs;
	struct parsed p;
	uint32_t len;
	size_t n;

	dp_ruleset_init_base(&rs, "netext-test");
	queue_rule(&rs, 9, DP_QUEUE_F_BYPASS | DP_QUEUE_F_FANOUT);
	build_and_parse(&rs, DP_QUEUE_NATIVE, &p);
	n = rule_exprs(p.rules[0], e);
	assert_int_equal(n, 5);
	assert_string_equal(expr_name(e[0]), "meta");
	assert_int_equal(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_L4PROTO);
	assert_int_equal(*(const uint8_t *)nftnl_expr_get(e[1], NFTNL_EXPR_CMP_DATA, &len), IPPROTO_UDP);
	assert_string_equal(expr_name(e[2]), "payload");
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_PAYLOAD_BASE), NFT_PAYLOAD_TRANSPORT_HEADER);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_PAYLOAD_OFFSET), 2);
	assert_int_equal(*(const uint16_t *)nftnl_expr_get(e[3], NFTNL_EXPR_CMP_DATA, &len), htons(5353));
	assert_string_equal(expr_name(e[4]), "queue");
	assert_int_equal(nftnl_expr_get_u16(e[4], NFTNL_EXPR_QUEUE_NUM), 9);
	assert_int_equal(nftnl_expr_get_u16(e[4], NFTNL_EXPR_QUEUE_TOTAL), 1);
	assert_int_equal(nftnl_expr_get_u16(e[4], NFTNL_EXPR_QUEUE_FLAGS),
			 NFT_QUEUE_FLAG_BYPASS | NFT_QUEUE_FLAG_CPU_FANOUT);
	parsed_free(&p);
	dp_ruleset_free(&rs);
}

/* ip6 daddr fd00::/8 != ; meta mark & 0x100 != 0x100 ; ct state new ; ct mark set 5 ; accept */
static void test_matches_and_actions(void **state)
{
	struct dp_match m6 = {.kind = DP_MATCH_DADDR, .neg = true, .addr = {.family = AF_INET6, .prefix = 12}};
	struct dp_match mk = {.kind = DP_MATCH_META_MARK, .neg = true, .mark = {.mask = 0x100, .value = 0x100}};
	struct dp_match ct = {.kind = DP_MATCH_CT_STATE, .ct_state = DP_CT_NEW};
	struct dp_action set = {.kind = DP_ACTION_CT_MARK_SET, .mark = 5};
	struct dp_action acc = {.kind = DP_ACTION_ACCEPT};
	static const char *want[] = {"meta", "cmp", "payload", "bitwise", "cmp", "meta", "bitwise",
				     "cmp", "ct", "bitwise", "cmp", "immediate", "ct", "immediate"};
	struct nftnl_expr *e[MAX_EXPRS];
	const uint8_t *mask, *addr;
	struct dp_rule r = {.chain = 2};
	struct dp_ruleset rs;
	struct parsed p;
	uint32_t len;
	size_t n;

	inet_pton(AF_INET6, "fd0f::1", &m6.addr.v6);
	dp_ruleset_init_base(&rs, "netext-test");
	assert_int_equal(dp_rule_add_match(&r, &m6), 0);
	assert_int_equal(dp_rule_add_match(&r, &mk), 0);
	assert_int_equal(dp_rule_add_match(&r, &ct), 0);
	assert_int_equal(dp_rule_add_action(&r, &set), 0);
	assert_int_equal(dp_rule_add_action(&r, &acc), 0);
	assert_int_equal(dp_ruleset_add_rule(&rs, &r), 0);
	build_and_parse(&rs, DP_QUEUE_COMPAT, &p);
	assert_string_equal(nftnl_rule_get_str(p.rules[0], NFTNL_RULE_CHAIN), "input");
	n = rule_exprs(p.rules[0], e);
	assert_int_equal(n, NE_ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(expr_name(e[i]), want[i]);
	assert_int_equal(*(const uint8_t *)nftnl_expr_get(e[1], NFTNL_EXPR_CMP_DATA, &len), NFPROTO_IPV6);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_PAYLOAD_OFFSET), 24);
	mask = nftnl_expr_get(e[3], NFTNL_EXPR_BITWISE_MASK, &len);
	assert_int_equal(len, 16);
	assert_int_equal(mask[0], 0xff);
	assert_int_equal(mask[1], 0xf0);
	assert_int_equal(mask[2], 0);
	addr = nftnl_expr_get(e[4], NFTNL_EXPR_CMP_DATA, &len);
	assert_int_equal(addr[0], 0xfd);
	assert_int_equal(addr[1], 0x00); /* host bits masked off */
	assert_int_equal(nftnl_expr_get_u32(e[4], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	assert_int_equal(nftnl_expr_get_u32(e[7], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	assert_int_equal(nftnl_expr_get_u32(e[10], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ); /* any bit set */
	assert_int_equal(nftnl_expr_get_u32(e[11], NFTNL_EXPR_IMM_DATA), 5);
	assert_int_equal(nftnl_expr_get_u32(e[12], NFTNL_EXPR_CT_KEY), NFT_CT_MARK);
	assert_int_equal(nftnl_expr_get_u32(e[13], NFTNL_EXPR_IMM_VERDICT), NF_ACCEPT);
	parsed_free(&p);
	dp_ruleset_free(&rs);
}

/* The DNS proxy's TPROXY rule: meta nfproto ipv6, meta skuid != 0, then
 * `tproxy ip6 to [::1]:7153` as immediate(addr) immediate(port) tproxy. */
static void test_tproxy_nfproto_skuid(void **state)
{
	struct dp_match nf = {.kind = DP_MATCH_NFPROTO, .nfproto = NFPROTO_IPV6};
	struct dp_match uid = {.kind = DP_MATCH_SKUID, .neg = true, .uid = 0};
	struct dp_action tp = {.kind = DP_ACTION_TPROXY, .tproxy = {.family = AF_INET6, .port = 7153}};
	struct dp_action tp4 = {.kind = DP_ACTION_TPROXY, .tproxy = {.family = AF_INET, .port = 53}};
	struct dp_action acc = {.kind = DP_ACTION_ACCEPT};
	static const char *want[] = {"meta", "cmp", "meta", "cmp", "immediate", "immediate", "tproxy",
				     "immediate"};
	struct nftnl_expr *e[MAX_EXPRS];
	struct dp_rule r = {.chain = 1}, r4 = {.chain = 1};
	const uint8_t *data;
	struct dp_ruleset rs;
	struct parsed p;
	uint32_t len;
	size_t n;

	tp.tproxy.v6 = in6addr_loopback;
	inet_pton(AF_INET, "127.0.0.1", &tp4.tproxy.v4);
	dp_ruleset_init_base(&rs, "netext-test");
	assert_int_equal(dp_rule_add_match(&r, &nf), 0);
	assert_int_equal(dp_rule_add_match(&r, &uid), 0);
	assert_int_equal(dp_rule_add_action(&r, &tp), 0);
	assert_int_equal(dp_rule_add_action(&r, &acc), 0);
	assert_int_equal(dp_ruleset_add_rule(&rs, &r), 0);
	assert_int_equal(dp_rule_add_action(&r4, &tp4), 0);
	assert_int_equal(dp_ruleset_add_rule(&rs, &r4), 0);
	build_and_parse(&rs, DP_QUEUE_NATIVE, &p);
	assert_int_equal(p.n_rules, 2);
	assert_string_equal(nftnl_rule_get_str(p.rules[0], NFTNL_RULE_CHAIN), "prerouting");
	n = rule_exprs(p.rules[0], e);
	assert_int_equal(n, NE_ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(expr_name(e[i]), want[i]);
	assert_int_equal(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_NFPROTO);
	assert_int_equal(*(const uint8_t *)nftnl_expr_get(e[1], NFTNL_EXPR_CMP_DATA, &len), NFPROTO_IPV6);
	assert_int_equal(len, 1);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_META_KEY), NFT_META_SKUID);
	assert_int_equal(nftnl_expr_get_u32(e[3], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	assert_int_equal(*(const uint32_t *)nftnl_expr_get(e[3], NFTNL_EXPR_CMP_DATA, &len), 0);
	assert_int_equal(len, 4);
	data = nftnl_expr_get(e[4], NFTNL_EXPR_IMM_DATA, &len);
	assert_int_equal(len, 16);
	assert_memory_equal(data, &in6addr_loopback, 16);
	assert_int_equal(nftnl_expr_get_u32(e[4], NFTNL_EXPR_IMM_DREG), NFT_REG_1);
	data = nftnl_expr_get(e[5], NFTNL_EXPR_IMM_DATA, &len);
	assert_int_equal(len, 2);
	assert_int_equal(data[0] << 8 | data[1], 7153); /* network order */
	assert_int_equal(nftnl_expr_get_u32(e[5], NFTNL_EXPR_IMM_DREG), NFT_REG_2);
	assert_int_equal(nftnl_expr_get_u32(e[6], NFTNL_EXPR_TPROXY_FAMILY), NFPROTO_IPV6);
	assert_int_equal(nftnl_expr_get_u32(e[6], NFTNL_EXPR_TPROXY_REG_ADDR), NFT_REG_1);
	assert_int_equal(nftnl_expr_get_u32(e[6], NFTNL_EXPR_TPROXY_REG_PORT), NFT_REG_2);
	assert_int_equal(nftnl_expr_get_u32(e[7], NFTNL_EXPR_IMM_VERDICT), NF_ACCEPT);
	n = rule_exprs(p.rules[1], e);
	assert_int_equal(n, 3);
	data = nftnl_expr_get(e[0], NFTNL_EXPR_IMM_DATA, &len);
	assert_int_equal(len, 4);
	assert_int_equal(data[0], 127);
	assert_int_equal(data[3], 1);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_TPROXY_FAMILY), NFPROTO_IPV4);
	parsed_free(&p);
	dp_ruleset_free(&rs);
}

/* A TPROXY action without a family cannot be built. */
static void test_tproxy_bad_family(void **state)
{
	char *buf = malloc(BUF_LIMIT + DP_NFT_BATCH_SLACK);
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, BUF_LIMIT);
	struct dp_action tp = {.kind = DP_ACTION_TPROXY, .tproxy = {.family = 0, .port = 1}};
	struct dp_rule r = {.chain = 1};
	struct dp_ruleset rs;
	uint32_t seq = 1;

	dp_ruleset_init_base(&rs, "netext-test");
	assert_int_equal(dp_rule_add_action(&r, &tp), 0);
	assert_int_equal(dp_ruleset_add_rule(&rs, &r), 0);
	assert_int_equal(dp_nft_build(&rs, DP_QUEUE_NATIVE, b, &seq), -EINVAL);
	mnl_nlmsg_batch_stop(b);
	free(buf);
	dp_ruleset_free(&rs);
}

static void test_small_batch(void **state)
{
	char buf[512 + DP_NFT_BATCH_SLACK];
	struct mnl_nlmsg_batch *b = mnl_nlmsg_batch_start(buf, 512);
	struct dp_ruleset rs;
	uint32_t seq = 1;

	dp_ruleset_init_base(&rs, NULL);
	assert_string_equal(rs.table, DP_NFT_TABLE_DEFAULT);
	for (int i = 0; i < 20; i++)
		queue_rule(&rs, (uint16_t)i, 0);
	assert_int_equal(dp_nft_build(&rs, DP_QUEUE_COMPAT, b, &seq), -ENOBUFS);
	assert_int_equal(seq, 1); /* untouched on failure */
	mnl_nlmsg_batch_stop(b);
	dp_ruleset_free(&rs);
}

static void test_ruleset_limits(void **state)
{
	struct dp_ruleset rs;
	struct dp_rule r = {.chain = 4};
	struct dp_action a = {.kind = DP_ACTION_DROP};
	size_t idx;

	dp_ruleset_init_base(&rs, "t");
	assert_int_equal(dp_ruleset_add_rule(&rs, &r), -EINVAL);
	assert_int_equal(dp_ruleset_add_chain(&rs, "input", DP_CHAIN_FILTER, DP_HOOK_INPUT, 0, NULL), -EEXIST);
	assert_int_equal(dp_ruleset_add_chain(&rs, "post", DP_CHAIN_NAT, DP_HOOK_POSTROUTING, 100, &idx), 0);
	assert_int_equal(idx, 4);
	assert_int_equal(dp_ruleset_find_chain(&rs, "nope", &idx), -ENOENT);
	for (int i = 0; i < DP_RULE_MAX_ACTIONS; i++)
		assert_int_equal(dp_rule_add_action(&r, &a), 0);
	assert_int_equal(dp_rule_add_action(&r, &a), -E2BIG);
	assert_int_equal(dp_ruleset_add_rule(&rs, &r), 0);
	dp_ruleset_free(&rs);
	dp_ruleset_free(NULL);
}

/* `iifname != "lo"` and `oifname "veth0"`: meta load of the name, a 16-byte NUL-padded cmp. */
static void test_ifname(void **state)
{
	struct dp_match in = {.kind = DP_MATCH_IIFNAME, .neg = true, .ifname = "lo"};
	struct dp_match out = {.kind = DP_MATCH_OIFNAME, .ifname = "veth0"};
	struct dp_match bad = {.kind = DP_MATCH_IIFNAME};
	struct dp_action acc = {.kind = DP_ACTION_ACCEPT};
	struct nftnl_expr *e[MAX_EXPRS];
	struct mnl_nlmsg_batch *b;
	uint32_t seq = 1;
	char *buf;
	const char *name;
	struct dp_ruleset rs;
	struct parsed p;
	uint32_t len;
	size_t n;

	dp_ruleset_init_base(&rs, "netext-test");
	assert_int_equal(dp_ruleset_add(&rs, 2, &in, 1, &acc, 1), 0);
	assert_int_equal(dp_ruleset_add(&rs, 2, &out, 1, &acc, 1), 0);
	build_and_parse(&rs, DP_QUEUE_COMPAT, &p);
	n = rule_exprs(p.rules[0], e);
	assert_int_equal(n, 3);
	assert_string_equal(expr_name(e[0]), "meta");
	assert_int_equal(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_IIFNAME);
	name = nftnl_expr_get(e[1], NFTNL_EXPR_CMP_DATA, &len);
	assert_int_equal(len, 16);
	assert_memory_equal(name, "lo\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	assert_int_equal(nftnl_expr_get_u32(e[1], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	n = rule_exprs(p.rules[1], e);
	assert_int_equal(n, 3);
	assert_int_equal(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_OIFNAME);
	name = nftnl_expr_get(e[1], NFTNL_EXPR_CMP_DATA, &len);
	assert_string_equal(name, "veth0");
	assert_int_equal(nftnl_expr_get_u32(e[1], NFTNL_EXPR_CMP_OP), NFT_CMP_EQ);
	parsed_free(&p);
	dp_ruleset_free(&rs);
	/* An empty name is refused when the batch is built. */
	dp_ruleset_init_base(&rs, "netext-test");
	assert_int_equal(dp_ruleset_add(&rs, 2, &bad, 1, &acc, 1), 0);
	buf = malloc(BUF_LIMIT + DP_NFT_BATCH_SLACK);
	b = mnl_nlmsg_batch_start(buf, BUF_LIMIT);
	assert_int_equal(dp_nft_build(&rs, DP_QUEUE_COMPAT, b, &seq), -EINVAL);
	mnl_nlmsg_batch_stop(b);
	free(buf);
	dp_ruleset_free(&rs);
	(void)state;
}

/* `tcp flags & syn != 0 tcp option maxseg size > 1200 tcp option maxseg size set 1200`. */
static void test_mss_clamp(void **state)
{
	struct dp_match m[2] = { {.kind = DP_MATCH_TCP_SYN}, {.kind = DP_MATCH_TCP_MSS_ABOVE, .mss = 1200} };
	struct dp_action set = {.kind = DP_ACTION_TCP_MSS_SET, .mss = 1200};
	static const char *want[] = {"payload", "bitwise", "cmp", "exthdr", "cmp", "immediate", "exthdr"};
	struct nftnl_expr *e[MAX_EXPRS];
	struct dp_ruleset rs;
	struct parsed p;
	const uint8_t *v;
	uint32_t len;
	size_t n;

	dp_ruleset_init_base(&rs, "netext-test");
	assert_int_equal(dp_ruleset_add(&rs, 3, m, 2, &set, 1), 0);
	build_and_parse(&rs, DP_QUEUE_COMPAT, &p);
	n = rule_exprs(p.rules[0], e);
	assert_int_equal(n, NE_ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(expr_name(e[i]), want[i]);
	assert_int_equal(nftnl_expr_get_u32(e[0], NFTNL_EXPR_PAYLOAD_OFFSET), 13);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
	assert_int_equal(nftnl_expr_get_u32(e[3], NFTNL_EXPR_EXTHDR_OP), NFT_EXTHDR_OP_TCPOPT);
	assert_int_equal(nftnl_expr_get_u8(e[3], NFTNL_EXPR_EXTHDR_TYPE), 2);
	assert_int_equal(nftnl_expr_get_u32(e[3], NFTNL_EXPR_EXTHDR_OFFSET), 2);
	assert_int_equal(nftnl_expr_get_u32(e[3], NFTNL_EXPR_EXTHDR_LEN), 2);
	assert_true(nftnl_expr_is_set(e[3], NFTNL_EXPR_EXTHDR_DREG));
	assert_int_equal(nftnl_expr_get_u32(e[4], NFTNL_EXPR_CMP_OP), NFT_CMP_GT);
	v = nftnl_expr_get(e[4], NFTNL_EXPR_CMP_DATA, &len);
	assert_int_equal(len, 2);
	assert_int_equal(v[0] << 8 | v[1], 1200);
	assert_true(nftnl_expr_is_set(e[6], NFTNL_EXPR_EXTHDR_SREG));
	assert_false(nftnl_expr_is_set(e[6], NFTNL_EXPR_EXTHDR_DREG));
	parsed_free(&p);
	dp_ruleset_free(&rs);
	(void)state;
}

/* Packet tunnels: `icmpv6 type N`, `counter drop`, and a nat chain with `masquerade`. */
static void test_tunnel_exprs(void **state)
{
	struct dp_match icmp = {.kind = DP_MATCH_ICMPV6_TYPE, .icmp_type = 135};
	struct dp_match oif = {.kind = DP_MATCH_OIFNAME, .ifname = "netext0"};
	struct dp_action acc = {.kind = DP_ACTION_ACCEPT};
	struct dp_action cd[2] = { {.kind = DP_ACTION_COUNTER}, {.kind = DP_ACTION_DROP} };
	struct dp_action masq = {.kind = DP_ACTION_MASQUERADE};
	static const char *want_icmp[] = {"meta", "cmp", "payload", "cmp", "immediate"};
	struct nftnl_expr *e[MAX_EXPRS];
	struct dp_ruleset rs;
	struct parsed p;
	const uint8_t *v;
	uint32_t len;
	size_t n, nat;

	dp_ruleset_init_base(&rs, "netext-test");
	assert_int_equal(dp_ruleset_add_chain(&rs, "tunnel_nat", DP_CHAIN_NAT, DP_HOOK_POSTROUTING,
					      DP_PRIO_SRCNAT, &nat), 0);
	assert_int_equal(dp_ruleset_add(&rs, 3, &icmp, 1, &acc, 1), 0);
	assert_int_equal(dp_ruleset_add(&rs, 3, NULL, 0, cd, 2), 0);
	assert_int_equal(dp_ruleset_add(&rs, nat, &oif, 1, &masq, 1), 0);
	build_and_parse(&rs, DP_QUEUE_COMPAT, &p);
	assert_int_equal(p.n_rules, 3);
	n = rule_exprs(p.rules[0], e);
	assert_int_equal(n, NE_ARRAY_SIZE(want_icmp));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(expr_name(e[i]), want_icmp[i]);
	v = nftnl_expr_get(e[1], NFTNL_EXPR_CMP_DATA, &len);
	assert_int_equal(len, 1);
	assert_int_equal(v[0], IPPROTO_ICMPV6);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_PAYLOAD_BASE), NFT_PAYLOAD_TRANSPORT_HEADER);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_PAYLOAD_OFFSET), 0);
	assert_int_equal(nftnl_expr_get_u32(e[2], NFTNL_EXPR_PAYLOAD_LEN), 1);
	v = nftnl_expr_get(e[3], NFTNL_EXPR_CMP_DATA, &len);
	assert_int_equal(len, 1);
	assert_int_equal(v[0], 135);
	n = rule_exprs(p.rules[1], e);
	assert_int_equal(n, 2);
	assert_string_equal(expr_name(e[0]), "counter");
	assert_string_equal(expr_name(e[1]), "immediate");
	n = rule_exprs(p.rules[2], e);
	assert_string_equal(expr_name(e[n - 1]), "masq");
	assert_string_equal(nftnl_rule_get_str(p.rules[2], NFTNL_RULE_CHAIN), "tunnel_nat");
	parsed_free(&p);
	dp_ruleset_free(&rs);
	(void)state;
}

/* ---- in-place updates ---------------------------------------------------------------------- */

/* The base chains, a "pkt_out" chain unless without_pkt, and n_out queue rules in "output". */
static void update_ruleset(struct dp_ruleset *rs, bool without_pkt, int n_out, int32_t pkt_prio)
{
	size_t ch;
	struct dp_rule r = {0};
	struct dp_action a = {.kind = DP_ACTION_ACCEPT};

	dp_ruleset_init_base(rs, "netext-test");
	for (int i = 0; i < n_out; i++)
		queue_rule(rs, (uint16_t)(7200 + i), 0);
	if (without_pkt)
		return;
	assert_int_equal(dp_ruleset_add_chain(rs, "pkt_out", DP_CHAIN_FILTER, DP_HOOK_OUTPUT, pkt_prio, &ch), 0);
	r.chain = ch;
	assert_int_equal(dp_rule_add_action(&r, &a), 0);
	assert_int_equal(dp_ruleset_add_rule(rs, &r), 0);
}

static void expect_msgs(const struct parsed *p, const uint16_t *types, const char *const *chains, size_t n)
{
	assert_int_equal(p->n_msgs, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(p->types[i], types[i]);
		if (chains[i])
			assert_string_equal(p->chain[i], chains[i]);
	}
}

static void expect_state(const struct dp_nft_state *got, const struct dp_ruleset *rs)
{
	struct dp_nft_state want;

	assert_int_equal(dp_nft_state_of(rs, DP_QUEUE_COMPAT, &want), 0);
	for (size_t i = 0; i < want.n_chains; i++) {
		size_t k;

		for (k = 0; k < got->n_chains; k++)
			if (!strcmp(got->chains[k].chain.name, want.chains[i].chain.name))
				break;
		assert_true(k < got->n_chains);
		assert_int_equal(got->chains[k].chain.priority, want.chains[i].chain.priority);
		assert_true(got->chains[k].rules_hash == want.chains[i].rules_hash);
	}
}

/* The same ruleset again: nothing to send (no hook touched, rule handles and counters kept). */
static void test_update_unchanged(void **state)
{
	struct dp_ruleset rs, rs2;
	struct dp_nft_state before, after;
	struct parsed p;

	update_ruleset(&rs, false, 2, 0);
	update_ruleset(&rs2, false, 2, 0); /* built again: equal by content, not by identity */
	assert_int_equal(dp_nft_state_of(&rs, DP_QUEUE_COMPAT, &before), 0);
	assert_int_equal(before.n_chains, 5);
	assert_true(before.chains[0].rules_hash != 0);  /* output: two rules */
	assert_true(before.chains[1].rules_hash == 0);  /* prerouting: none */
	assert_int_equal(update_and_parse(&before, &rs2, &after, &p), 1);
	assert_int_equal(p.n_msgs, 0);
	assert_memory_equal(&before, &after, sizeof(before));
	parsed_free(&p);
	dp_ruleset_free(&rs);
	dp_ruleset_free(&rs2);
}

/* One chain's rules changed: that chain is flushed and refilled, nothing else; no table or
 * chain is deleted (either would unregister hooks and drop every queued packet). */
static void test_update_one_chain(void **state)
{
	static const uint16_t want[] = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_DELRULE, NFT_MSG_NEWRULE,
					NFT_MSG_NEWRULE, NFT_MSG_NEWRULE, NFNL_MSG_BATCH_END};
	static const char *const chains[] = {NULL, "output", "output", "output", "output", NULL};
	struct dp_ruleset rs, rs2;
	struct dp_nft_state before, after;
	struct parsed p;

	update_ruleset(&rs, false, 2, 0);
	update_ruleset(&rs2, false, 3, 0);
	assert_int_equal(dp_nft_state_of(&rs, DP_QUEUE_COMPAT, &before), 0);
	assert_int_equal(update_and_parse(&before, &rs2, &after, &p), 0);
	expect_msgs(&p, want, chains, NE_ARRAY_SIZE(want));
	expect_state(&after, &rs2);
	parsed_free(&p);
	dp_ruleset_free(&rs);
	dp_ruleset_free(&rs2);
}

/* A chain the ruleset no longer has is emptied but kept; when it comes back it is only filled. */
static void test_update_chain_gone_and_back(void **state)
{
	static const uint16_t gone[] = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_DELRULE, NFNL_MSG_BATCH_END};
	static const char *const gone_chains[] = {NULL, "pkt_out", NULL};
	static const uint16_t back[] = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWRULE, NFNL_MSG_BATCH_END};
	static const char *const back_chains[] = {NULL, "pkt_out", NULL};
	struct dp_ruleset with, without;
	struct dp_nft_state s0, s1, s2;
	struct parsed p;

	update_ruleset(&with, false, 1, 0);
	update_ruleset(&without, true, 1, 0);
	assert_int_equal(dp_nft_state_of(&with, DP_QUEUE_COMPAT, &s0), 0);
	assert_int_equal(update_and_parse(&s0, &without, &s1, &p), 0);
	expect_msgs(&p, gone, gone_chains, NE_ARRAY_SIZE(gone));
	assert_int_equal(s1.n_chains, 5);
	assert_string_equal(s1.chains[4].chain.name, "pkt_out");
	assert_true(s1.chains[4].rules_hash == 0);
	parsed_free(&p);
	/* Gone twice: nothing to do. */
	assert_int_equal(update_and_parse(&s1, &without, &s2, &p), 1);
	parsed_free(&p);
	assert_int_equal(update_and_parse(&s1, &with, &s2, &p), 0);
	expect_msgs(&p, back, back_chains, NE_ARRAY_SIZE(back));
	assert_int_equal(s2.n_chains, 5);
	expect_state(&s2, &with);
	parsed_free(&p);
	dp_ruleset_free(&with);
	dp_ruleset_free(&without);
}

/* A chain that must hook elsewhere (another priority) is the one case that deletes a chain. */
static void test_update_remake(void **state)
{
	static const uint16_t want[] = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_DELRULE, NFT_MSG_DELCHAIN,
					NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFNL_MSG_BATCH_END};
	static const char *const chains[] = {NULL, "pkt_out", "pkt_out", "pkt_out", "pkt_out", NULL};
	struct dp_ruleset rs, rs2;
	struct dp_nft_state before, after;
	struct parsed p;

	update_ruleset(&rs, false, 1, 0);
	update_ruleset(&rs2, false, 1, 10);
	assert_int_equal(dp_nft_state_of(&rs, DP_QUEUE_COMPAT, &before), 0);
	assert_int_equal(update_and_parse(&before, &rs2, &after, &p), 0);
	expect_msgs(&p, want, chains, NE_ARRAY_SIZE(want));
	assert_int_equal(nftnl_chain_get_s32(p.chains[0], NFTNL_CHAIN_PRIO), 10);
	expect_state(&after, &rs2);
	parsed_free(&p);
	dp_ruleset_free(&rs);
	dp_ruleset_free(&rs2);
}

/* What cannot be done in place says so (the caller replaces the whole table). */
static void test_update_not_in_place(void **state)
{
	struct dp_ruleset rs, other;
	struct dp_nft_state before, after;
	struct parsed p;

	update_ruleset(&rs, false, 1, 0);
	dp_ruleset_init_base(&other, "another-table");
	assert_int_equal(dp_nft_state_of(&rs, DP_QUEUE_COMPAT, &before), 0);
	assert_int_equal(update_and_parse(&before, &other, &after, &p), -ENOSPC);
	parsed_free(&p);
	/* A state full of chains the ruleset lacks: no room for pkt_out. */
	before.n_chains = DP_NFT_STATE_MAX_CHAINS;
	for (size_t i = 4; i < DP_NFT_STATE_MAX_CHAINS; i++) {
		before.chains[i] = before.chains[0];
		snprintf(before.chains[i].chain.name, sizeof(before.chains[i].chain.name), "old%zu", i);
	}
	assert_int_equal(update_and_parse(&before, &rs, &after, &p), -ENOSPC);
	parsed_free(&p);
	dp_ruleset_free(&rs);
	dp_ruleset_free(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transaction_shape),
		cmocka_unit_test(test_base_chains),
		cmocka_unit_test(test_queue_compat),
		cmocka_unit_test(test_queue_native),
		cmocka_unit_test(test_matches_and_actions),
		cmocka_unit_test(test_small_batch),
		cmocka_unit_test(test_ruleset_limits),
		cmocka_unit_test(test_tproxy_nfproto_skuid),
		cmocka_unit_test(test_tproxy_bad_family),
		cmocka_unit_test(test_ifname),
		cmocka_unit_test(test_mss_clamp),
		cmocka_unit_test(test_tunnel_exprs),
		cmocka_unit_test(test_update_unchanged),
		cmocka_unit_test(test_update_one_chain),
		cmocka_unit_test(test_update_chain_gone_and_back),
		cmocka_unit_test(test_update_remake),
		cmocka_unit_test(test_update_not_in_place),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
