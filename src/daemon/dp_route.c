/* Routes and policy-routing rules through rtnetlink: see dp_route.h.
 *
 * Each request is sent with NLM_F_ACK and waited for on a socket of its own, so errors come
 * back to the caller. Adding what exists (EEXIST) and deleting what is gone (ENOENT, ESRCH)
 * are successes: the daemon's idea of its routing state converges on the kernel's. */
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
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

int dp_route_flush_table(struct dp_route *r, uint32_t table)
{
	static const int families[] = { AF_INET, AF_INET6 };
	struct found *f = calloc(1, sizeof(*f));
	int ret = 0, e;
	size_t i, k;

	if (!f)
		return -ENOMEM;
	for (k = 0; k < 2; k++) {
		f->n = 0;
		f->table = table;
		e = dump(r, RTM_GETRULE, families[k], f);
		if (e == 0)
			e = dump(r, RTM_GETROUTE, families[k], f);
		if (e < 0 && !ret)
			ret = e;
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
	free(f);
	return ret;
}
