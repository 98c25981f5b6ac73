/* Routes and policy-routing rules through rtnetlink: see dp_route.h.
 *
 * Each request is sent with NLM_F_ACK and waited for on a socket of its own, so errors come
 * back to the caller. Adding what exists (EEXIST) and deleting what is gone (ENOENT, ESRCH)
 * are successes: the daemon's idea of its routing state converges on the kernel's. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "dp_route.h"
#include "log.h"
#include "util.h"

struct dp_route {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
};

int dp_route_open(struct dp_route **ret)
{
	struct dp_route *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!r->nl || mnl_socket_bind(r->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = ne_negerrno();

		if (r->nl)
			mnl_socket_close(r->nl);
		free(r);
		return e;
	}
	r->portid = mnl_socket_get_portid(r->nl);
	r->seq = (uint32_t)time(NULL);
	*ret = r;
	return 0;
}

void dp_route_close(struct dp_route *r)
{
	if (!r)
		return;
	mnl_socket_close(r->nl);
	free(r);
}

/* Sends nlh and reads until its ACK; dump callbacks (cb) see each reply message. */
static int talk(struct dp_route *r, struct nlmsghdr *nlh, mnl_cb_t cb, void *ud)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	uint32_t seq = nlh->nlmsg_seq = ++r->seq;
	ssize_t n;
	int ret;

	if (mnl_socket_sendto(r->nl, nlh, nlh->nlmsg_len) < 0)
		return ne_negerrno();
	for (;;) {
		n = mnl_socket_recvfrom(r->nl, buf, sizeof(buf));
		if (n < 0)
			return ne_negerrno();
		ret = mnl_cb_run(buf, (size_t)n, seq, r->portid, cb, ud);
		if (ret <= MNL_CB_STOP)
			return ret < 0 ? ne_negerrno() : 0;
	}
}

static int change_result(int r, bool add)
{
	if (add && r == -EEXIST)
		return 0;
	if (!add && (r == -ENOENT || r == -ESRCH || r == -EADDRNOTAVAIL))
		return 0;
	return r;
}

int dp_route_fwmark_rule(struct dp_route *r, bool add, int family, uint32_t mark, uint32_t mask,
			 uint32_t table, uint32_t priority)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;

	nlh->nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)family;
	frh->action = FR_ACT_TO_TBL;
	frh->table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	mnl_attr_put_u32(nlh, FRA_TABLE, table);
	mnl_attr_put_u32(nlh, FRA_FWMARK, mark);
	mnl_attr_put_u32(nlh, FRA_FWMASK, mask);
	mnl_attr_put_u32(nlh, FRA_PRIORITY, priority);
	return change_result(talk(r, nlh, NULL, NULL), add);
}

int dp_route_local_default(struct dp_route *r, bool add, int family, uint32_t table)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	unsigned lo = if_nametoindex("lo");

	if (!lo)
		return -ENODEV;
	nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = 0;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_HOST;
	rtm->rtm_type = RTN_LOCAL;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	mnl_attr_put_u32(nlh, RTA_OIF, lo);
	return change_result(talk(r, nlh, NULL, NULL), add);
}

/* ---- flush ------------------------------------------------------------------------ */

#define FLUSH_MAX 256

struct found {
	size_t n;
	struct {
		bool rule;
		int family;
		uint32_t mark, mask, priority;     /* rules */
		uint8_t dst_len, type, scope;      /* routes */
		uint8_t dst[16];
		uint32_t oif;
	} item[FLUSH_MAX];
	uint32_t table;
};

static uint32_t attr_table(const struct nlmsghdr *nlh, size_t hdrlen, uint16_t type, uint32_t fallback)
{
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, hdrlen)
		if (mnl_attr_get_type(a) == type && mnl_attr_get_payload_len(a) == 4)
			return mnl_attr_get_u32(a);
	return fallback;
}

static int rule_cb(const struct nlmsghdr *nlh, void *ud)
{
	struct found *f = ud;
	const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;

	if (attr_table(nlh, sizeof(*frh), FRA_TABLE, frh->table) != f->table || f->n >= FLUSH_MAX)
		return MNL_CB_OK;
	/* Items are reused across families: attributes a message lacks must read as 0. */
	memset(&f->item[f->n], 0, sizeof(f->item[f->n]));
	f->item[f->n].rule = true;
	f->item[f->n].family = frh->family;
	mnl_attr_for_each(a, nlh, sizeof(*frh)) {
		if (mnl_attr_get_payload_len(a) != 4)
			continue;
		switch (mnl_attr_get_type(a)) {
		case FRA_FWMARK: f->item[f->n].mark = mnl_attr_get_u32(a); break;
		case FRA_FWMASK: f->item[f->n].mask = mnl_attr_get_u32(a); break;
		case FRA_PRIORITY: f->item[f->n].priority = mnl_attr_get_u32(a); break;
		}
	}
	f->n++;
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *nlh, void *ud)
{
	struct found *f = ud;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;

	if (attr_table(nlh, sizeof(*rtm), RTA_TABLE, rtm->rtm_table) != f->table || f->n >= FLUSH_MAX)
		return MNL_CB_OK;
	memset(&f->item[f->n], 0, sizeof(f->item[f->n]));
	f->item[f->n].rule = false;
	f->item[f->n].family = rtm->rtm_family;
	f->item[f->n].dst_len = rtm->rtm_dst_len;
	f->item[f->n].type = rtm->rtm_type;
	f->item[f->n].scope = rtm->rtm_scope;
	mnl_attr_for_each(a, nlh, sizeof(*rtm)) {
		size_t l = mnl_attr_get_payload_len(a);

		if (mnl_attr_get_type(a) == RTA_DST && l <= 16)
			memcpy(f->item[f->n].dst, mnl_attr_get_payload(a), l);
		else if (mnl_attr_get_type(a) == RTA_OIF && l == 4)
			f->item[f->n].oif = mnl_attr_get_u32(a);
	}
	f->n++;
	return MNL_CB_OK;
}

static int dump(struct dp_route *r, uint16_t type, int family, struct found *f)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	if (type == RTM_GETRULE) {
		struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));

		frh->family = (uint8_t)family;
		return talk(r, nlh, rule_cb, f);
	}
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

	rtm->rtm_family = (uint8_t)family;
	return talk(r, nlh, route_cb, f);
}

static int del_route(struct dp_route *r, uint32_t table, int family, uint8_t dst_len, const uint8_t *dst,
		     uint8_t type, uint8_t scope, uint32_t oif)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = dst_len;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	rtm->rtm_type = type;
	rtm->rtm_scope = scope;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	if (dst_len)
		mnl_attr_put(nlh, RTA_DST, family == AF_INET ? 4 : 16, dst);
	if (oif)
		mnl_attr_put_u32(nlh, RTA_OIF, oif);
	return change_result(talk(r, nlh, NULL, NULL), false);
}

/* One pass over both families; *ret_full when a dump filled the item array (more may be left). */
static int flush_pass(struct dp_route *r, struct found *f, uint32_t table, bool rules, bool *ret_full)
{
	static const int families[] = { AF_INET, AF_INET6 };
	int ret = 0, e;
	size_t i, k;

	*ret_full = false;
	for (k = 0; k < 2; k++) {
		f->n = 0;
		f->table = table;
		e = rules ? dump(r, RTM_GETRULE, families[k], f) : 0;
		if (e == 0)
			e = dump(r, RTM_GETROUTE, families[k], f);
		if (e < 0 && !ret)
			ret = e;
		if (f->n == FLUSH_MAX)
			*ret_full = true;
		for (i = 0; i < f->n; i++) {
			if (f->item[i].rule)
				e = dp_route_fwmark_rule(r, false, f->item[i].family, f->item[i].mark,
							 f->item[i].mask, table, f->item[i].priority);
			else
				e = del_route(r, table, f->item[i].family, f->item[i].dst_len, f->item[i].dst,
					      f->item[i].type, f->item[i].scope, f->item[i].oif);
			if (e < 0 && !ret)
				ret = e;
		}
	}
	return ret;
}

static int flush(struct dp_route *r, uint32_t table, bool rules)
{
	struct found *f = calloc(1, sizeof(*f));
	bool full = true;
	int ret = 0, e, pass;

	if (!f)
		return -ENOMEM;
	/* A tunnel's table holds up to 1024 routes per family: repeat while a dump was full. */
	for (pass = 0; full && pass < 16; pass++) {
		e = flush_pass(r, f, table, rules, &full);
		if (e < 0 && !ret)
			ret = e;
	}
	free(f);
	return ret;
}

int dp_route_flush_table(struct dp_route *r, uint32_t table)
{
	return flush(r, table, true);
}

int dp_route_flush_routes(struct dp_route *r, uint32_t table)
{
	return flush(r, table, false);
}

/* ---- packet tunnels ---------------------------------------------------------------- */

static size_t family_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

int dp_route_rule(struct dp_route *r, bool add, int family, const struct dp_rule_spec *s)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct fib_rule_hdr *frh;

	nlh->nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	frh->family = (uint8_t)family;
	frh->action = FR_ACT_TO_TBL;
	frh->flags = s->invert ? FIB_RULE_INVERT : 0;
	frh->table = s->table < 256 ? (uint8_t)s->table : RT_TABLE_UNSPEC;
	mnl_attr_put_u32(nlh, FRA_TABLE, s->table);
	mnl_attr_put_u32(nlh, FRA_FWMARK, s->mark);
	mnl_attr_put_u32(nlh, FRA_FWMASK, s->mask);
	mnl_attr_put_u32(nlh, FRA_PRIORITY, s->priority);
	if (s->suppress >= 0)
		mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, (uint32_t)s->suppress);
	return change_result(talk(r, nlh, NULL, NULL), add);
}

int dp_route_prefix(struct dp_route *r, bool add, uint32_t table, const struct dp_prefix *p, unsigned ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)p->family;
	rtm->rtm_dst_len = p->len;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = ifindex ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
	rtm->rtm_type = ifindex ? RTN_UNICAST : RTN_THROW;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	if (p->len)
		mnl_attr_put(nlh, RTA_DST, family_len(p->family), p->addr);
	if (ifindex)
		mnl_attr_put_u32(nlh, RTA_OIF, ifindex);
	return change_result(talk(r, nlh, NULL, NULL), add);
}

int dp_route_addr(struct dp_route *r, bool add, unsigned ifindex, const struct dp_prefix *p)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)p->family;
	ifa->ifa_prefixlen = p->len;
	ifa->ifa_index = ifindex;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	if (p->family == AF_INET6) {
		ifa->ifa_flags = IFA_F_NODAD;
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
	}
	mnl_attr_put(nlh, IFA_LOCAL, family_len(p->family), p->addr);
	mnl_attr_put(nlh, IFA_ADDRESS, family_len(p->family), p->addr);
	return change_result(talk(r, nlh, NULL, NULL), add);
}

int dp_route_link_set(struct dp_route *r, unsigned ifindex, uint32_t mtu, bool addrgen_none, bool up)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	struct nlattr *spec, *in6;

	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)ifindex;
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	if (addrgen_none) {
		spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
		in6 = mnl_attr_nest_start(nlh, AF_INET6);
		mnl_attr_put_u8(nlh, IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
		mnl_attr_nest_end(nlh, in6);
		mnl_attr_nest_end(nlh, spec);
	}
	return talk(r, nlh, NULL, NULL);
}

int dp_route_link_del(struct dp_route *r, unsigned ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;
	int err;

	nlh->nlmsg_type = RTM_DELLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)ifindex;
	err = talk(r, nlh, NULL, NULL);
	return err == -ENODEV ? 0 : err;
}

struct connected {
	const unsigned *skip;
	size_t n_skip, max, n;
	struct dp_prefix *out;
	unsigned lo;
};

static int connected_cb(const struct nlmsghdr *nlh, void *ud)
{
	struct connected *c = ud;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	struct dp_prefix p = { .family = rtm->rtm_family, .len = rtm->rtm_dst_len };
	unsigned oif = 0;
	bool gw = false;
	size_t i;

	if (attr_table(nlh, sizeof(*rtm), RTA_TABLE, rtm->rtm_table) != RT_TABLE_MAIN ||
	    rtm->rtm_type != RTN_UNICAST || rtm->rtm_dst_len == 0 || c->n >= c->max)
		return MNL_CB_OK;
	mnl_attr_for_each(a, nlh, sizeof(*rtm)) {
		size_t l = mnl_attr_get_payload_len(a);

		if (mnl_attr_get_type(a) == RTA_DST && l == family_len(p.family))
			memcpy(p.addr, mnl_attr_get_payload(a), l);
		else if (mnl_attr_get_type(a) == RTA_OIF && l == 4)
			oif = mnl_attr_get_u32(a);
		else if (mnl_attr_get_type(a) == RTA_GATEWAY || mnl_attr_get_type(a) == RTA_VIA ||
			 mnl_attr_get_type(a) == RTA_MULTIPATH)
			gw = true;
	}
	if (gw || !oif || oif == c->lo)
		return MNL_CB_OK;
	for (i = 0; i < c->n_skip; i++)
		if (c->skip[i] == oif)
			return MNL_CB_OK;
	for (i = 0; i < c->n; i++)
		if (!memcmp(&c->out[i], &p, sizeof(p)))
			return MNL_CB_OK;
	c->out[c->n++] = p;
	return MNL_CB_OK;
}

int dp_route_connected(struct dp_route *r, const unsigned *skip_ifindex, size_t n_skip,
		       struct dp_prefix *out, size_t max, size_t *ret_n)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct connected c = { skip_ifindex, n_skip, max, 0, out, if_nametoindex("lo") };
	size_t k;
	int e;

	memset(out, 0, max * sizeof(*out));
	for (k = 0; k < 2; k++) {
		char buf[MNL_SOCKET_BUFFER_SIZE];
		struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
		struct rtmsg *rtm;

		nlh->nlmsg_type = RTM_GETROUTE;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
		rtm->rtm_family = (uint8_t)families[k];
		e = talk(r, nlh, connected_cb, &c);
		if (e < 0)
			return e;
	}
	*ret_n = c.n;
	return 0;
}

static int stats_cb(const struct nlmsghdr *nlh, void *ud)
{
	struct dp_link_stats *st = ud;
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct ifinfomsg)) {
		if (mnl_attr_get_type(a) == IFLA_STATS64 &&
		    mnl_attr_get_payload_len(a) >= sizeof(struct rtnl_link_stats64)) {
			struct rtnl_link_stats64 s;

			memcpy(&s, mnl_attr_get_payload(a), sizeof(s));
			st->rx_bytes = s.rx_bytes;
			st->rx_packets = s.rx_packets;
			st->tx_bytes = s.tx_bytes;
			st->tx_packets = s.tx_packets;
			st->rx_dropped = s.rx_dropped;
			st->tx_dropped = s.tx_dropped;
		}
	}
	return MNL_CB_OK;
}

int dp_route_link_stats(struct dp_route *r, unsigned ifindex, struct dp_link_stats *ret)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	memset(ret, 0, sizeof(*ret));
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)ifindex;
	return talk(r, nlh, stats_cb, ret);
}

int dp_prefix_parse(const char *text, bool host_bits_ok, struct dp_prefix *ret)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t hl = slash ? (size_t)(slash - text) : strlen(text);
	struct dp_prefix p = { 0 };
	unsigned long len;
	char *end;

	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, text, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, p.addr) == 1)
		p.family = AF_INET;
	else if (inet_pton(AF_INET6, host, p.addr) == 1)
		p.family = AF_INET6;
	else
		return -EINVAL;
	len = family_len(p.family) * 8;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		errno = 0;
		len = strtoul(slash + 1, &end, 10);
		if (*end || errno || len > family_len(p.family) * 8)
			return -EINVAL;
	}
	p.len = (uint8_t)len;
	if (!host_bits_ok) {
		struct dp_prefix n = p;

		dp_prefix_network(&n);
		if (memcmp(n.addr, p.addr, sizeof(p.addr)))
			return -EINVAL;
	}
	*ret = p;
	return 0;
}

void dp_prefix_network(struct dp_prefix *p)
{
	size_t i, bits = p->len;

	for (i = 0; i < 16; i++) {
		if (bits >= 8) {
			bits -= 8;
			continue;
		}
		p->addr[i] &= (uint8_t)(0xff00u >> bits);
		bits = 0;
	}
}

const char *dp_prefix_format(const struct dp_prefix *p, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(p->family, p->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, size, "%s/%u", a, p->len);
	return buf;
}
