/* Conntrack DESTROY events, lookups and deletions by tuple, and the accounting sysctl.
 *
 * Written on libmnl and <linux/netfilter/nfnetlink_conntrack.h> rather than
 * libnetfilter_conntrack: the event path needs a handful of attributes, and the library would
 * allocate an nf_conntrack object per event and hide the socket behind nfct_catch(), whose
 * ENOBUFS and sender handling we would have to work around. Parsing by hand keeps every length
 * check in this file, where the unit tests feed it truncated and mutated messages.
 *
 * Trust: only the kernel (sender portid 0) is listened to. Its messages are still validated
 * attribute by attribute; anything malformed is counted and skipped, never fatal. */
#include "ctevents.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <limits.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/sock_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define CT_RCVBUF_DEFAULT (4u << 20)
#define CT_BUF_SIZE 16384         /* one datagram; an event is a few hundred bytes */
#define CT_READS_PER_DISPATCH 1024 /* datagrams; bounds one dispatch under an event storm */
#define CT_MSG(t) ((uint16_t)((NFNL_SUBSYS_CTNETLINK << 8) | (t)))
#define CT_ACCT_PATH "/proc/sys/net/netfilter/nf_conntrack_acct"

struct ct_events {
	struct mnl_socket *nl;
	uint32_t mark_mask;
	ct_destroy_cb cb;
	void *userdata;
	bool has_meminfo;    /* SO_MEMINFO reports the socket's drop counter */
	uint32_t drops_seen; /* that counter when last read; it wraps at 2^32 */
	uint64_t lost, errors;
	char buf[CT_BUF_SIZE];
};

/* ---- parsing -------------------------------------------------------------------------- */

struct attr_tab {
	const struct nlattr **tb;
	uint16_t max;
};

/* Attribute types beyond the table are ignored: newer kernels add attributes. */
static int attr_tab_cb(const struct nlattr *a, void *data)
{
	const struct attr_tab *t = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type <= t->max)
		t->tb[type] = a;
	return MNL_CB_OK;
}

static int parse_nested(const struct nlattr *nest, const struct nlattr **tb, uint16_t max)
{
	struct attr_tab t = {tb, max};

	memset(tb, 0, (max + 1u) * sizeof(*tb));
	if (mnl_attr_validate(nest, MNL_TYPE_NESTED) < 0)
		return -EBADMSG;
	return mnl_attr_parse_nested(nest, attr_tab_cb, &t) == MNL_CB_OK ? 0 : -EBADMSG;
}

static bool attr_len_is(const struct nlattr *a, size_t len)
{
	return a && mnl_attr_get_payload_len(a) == len;
}

static bool proto_has_ports(uint8_t proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
	       proto == IPPROTO_UDPLITE;
}

static int parse_addrs(const struct nlattr *nest, struct ct_flow *f)
{
	const struct nlattr *tb[CTA_IP_MAX + 1];
	bool v4 = f->family == AF_INET;
	int src = v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, dst = v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST;
	size_t len = v4 ? sizeof(struct in_addr) : sizeof(struct in6_addr);

	if (parse_nested(nest, tb, CTA_IP_MAX) < 0 || !attr_len_is(tb[src], len) ||
	    !attr_len_is(tb[dst], len))
		return -EBADMSG;
	memcpy(&f->src, mnl_attr_get_payload(tb[src]), len);
	memcpy(&f->dst, mnl_attr_get_payload(tb[dst]), len);
	return 0;
}

static int parse_proto(const struct nlattr *nest, struct ct_flow *f)
{
	const struct nlattr *tb[CTA_PROTO_MAX + 1];

	if (parse_nested(nest, tb, CTA_PROTO_MAX) < 0 || !attr_len_is(tb[CTA_PROTO_NUM], 1))
		return -EBADMSG;
	f->proto = mnl_attr_get_u8(tb[CTA_PROTO_NUM]);
	if (!proto_has_ports(f->proto))
		return 0;
	if (!attr_len_is(tb[CTA_PROTO_SRC_PORT], 2) || !attr_len_is(tb[CTA_PROTO_DST_PORT], 2))
		return -EBADMSG;
	f->sport = ntohs(mnl_attr_get_u16(tb[CTA_PROTO_SRC_PORT]));
	f->dport = ntohs(mnl_attr_get_u16(tb[CTA_PROTO_DST_PORT]));
	return 0;
}

static int parse_tuple(const struct nlattr *nest, struct ct_flow *f)
{
	const struct nlattr *tb[CTA_TUPLE_MAX + 1];

	if (!nest || parse_nested(nest, tb, CTA_TUPLE_MAX) < 0 || !tb[CTA_TUPLE_IP] ||
	    !tb[CTA_TUPLE_PROTO])
		return -EBADMSG;
	if (parse_addrs(tb[CTA_TUPLE_IP], f) < 0 || parse_proto(tb[CTA_TUPLE_PROTO], f) < 0)
		return -EBADMSG;
	return 0;
}

/* Current kernels send 64-bit counters; the 32-bit pair is the pre-2.6.27 layout. */
static int parse_counters(const struct nlattr *nest, uint64_t *ret_packets, uint64_t *ret_bytes)
{
	const struct nlattr *tb[CTA_COUNTERS_MAX + 1];

	if (parse_nested(nest, tb, CTA_COUNTERS_MAX) < 0)
		return -EBADMSG;
	if (attr_len_is(tb[CTA_COUNTERS_PACKETS], 8) && attr_len_is(tb[CTA_COUNTERS_BYTES], 8)) {
		*ret_packets = be64toh(mnl_attr_get_u64(tb[CTA_COUNTERS_PACKETS]));
		*ret_bytes = be64toh(mnl_attr_get_u64(tb[CTA_COUNTERS_BYTES]));
		return 0;
	}
	if (attr_len_is(tb[CTA_COUNTERS32_PACKETS], 4) && attr_len_is(tb[CTA_COUNTERS32_BYTES], 4)) {
		*ret_packets = ntohl(mnl_attr_get_u32(tb[CTA_COUNTERS32_PACKETS]));
		*ret_bytes = ntohl(mnl_attr_get_u32(tb[CTA_COUNTERS32_BYTES]));
		return 0;
	}
	return -EBADMSG;
}

/* Counters come in pairs when accounting was on at the entry's creation, else not at all. */
static int parse_all_counters(const struct nlattr *const *tb, struct ct_flow *f)
{
	const struct nlattr *o = tb[CTA_COUNTERS_ORIG], *r = tb[CTA_COUNTERS_REPLY];

	if (!o && !r)
		return 0;
	if (!o || !r || parse_counters(o, &f->orig_packets, &f->orig_bytes) < 0 ||
	    parse_counters(r, &f->reply_packets, &f->reply_bytes) < 0)
		return -EBADMSG;
	f->has_counters = true;
	return 0;
}

/* A u32 attribute the kernel may leave out (CTA_MARK is omitted when zero). */
static int parse_opt_u32(const struct nlattr *a, uint32_t *ret)
{
	if (!a)
		return 0;
	if (!attr_len_is(a, 4))
		return -EBADMSG;
	*ret = ntohl(mnl_attr_get_u32(a));
	return 0;
}

int ct_msg_parse(const struct nlmsghdr *nlh, struct ct_flow *ret)
{
	const struct nlattr *tb[CTA_MAX + 1] = {0};
	struct attr_tab t = {tb, CTA_MAX};
	const struct nfgenmsg *nfg;
	struct ct_flow f = {0};

	if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(*nfg)))
		return -EBADMSG;
	nfg = mnl_nlmsg_get_payload(nlh);
	f.family = nfg->nfgen_family;
	if (f.family != AF_INET && f.family != AF_INET6)
		return -EBADMSG;
	if (mnl_attr_parse(nlh, sizeof(*nfg), attr_tab_cb, &t) != MNL_CB_OK)
		return -EBADMSG;
	if (parse_tuple(tb[CTA_TUPLE_ORIG], &f) < 0 || parse_opt_u32(tb[CTA_MARK], &f.mark) < 0 ||
	    parse_opt_u32(tb[CTA_ID], &f.id) < 0 || parse_all_counters(tb, &f) < 0)
		return -EBADMSG;
	*ret = f;
	return 0;
}

/* ---- requests ------------------------------------------------------------------------- */

static void put_tuple(struct nlmsghdr *nlh, const struct ct_flow *f)
{
	bool v4 = f->family == AF_INET;
	size_t len = v4 ? sizeof(struct in_addr) : sizeof(struct in6_addr);
	struct nlattr *tuple = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG), *n;

	n = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
	mnl_attr_put(nlh, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, len, &f->src);
	mnl_attr_put(nlh, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, len, &f->dst);
	mnl_attr_nest_end(nlh, n);
	n = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
	mnl_attr_put_u8(nlh, CTA_PROTO_NUM, f->proto);
	if (proto_has_ports(f->proto)) {
		mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(f->sport));
		mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(f->dport));
	}
	mnl_attr_nest_end(nlh, n);
	mnl_attr_nest_end(nlh, tuple);
}

struct nlmsghdr *ct_msg_build(void *buf, uint16_t type, uint32_t seq, const struct ct_flow *f)
{
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	memset(buf, 0, CT_MSG_BUILD_SIZE);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = CT_MSG(type);
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = (uint8_t)f->family;
	nfg->version = NFNETLINK_V0;
	put_tuple(nlh, f);
	return nlh;
}

struct reply {
	struct ct_flow *out; /* NULL: no conntrack message expected */
	bool got;
	int err;
};

static int reply_cb(const struct nlmsghdr *nlh, void *data)
{
	struct reply *r = data;

	if (nlh->nlmsg_type != CT_MSG(IPCTNL_MSG_CT_NEW) || !r->out)
		return MNL_CB_OK;
	if (ct_msg_parse(nlh, r->out) < 0)
		r->err = -EBADMSG;
	else
		r->got = true;
	return MNL_CB_OK;
}

/* The kernel answers inside our sendmsg(), so the whole answer is queued by the time we read;
 * EAGAIN before the ack means no answer is coming, and the daemon must not block on it. */
static int read_reply(struct mnl_socket *nl, uint32_t seq, struct reply *r)
{
	char buf[8192];
	unsigned int portid = mnl_socket_get_portid(nl);

	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		int ret;

		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : ne_negerrno();
		ret = mnl_cb_run(buf, (size_t)n, seq, portid, reply_cb, r);
		if (ret < 0)
			return ne_negerrno();
		if (ret == MNL_CB_STOP)
			return r->err;
	}
}

static int ct_request(uint16_t type, const struct ct_flow *f, struct reply *r)
{
	char buf[CT_MSG_BUILD_SIZE];
	const uint32_t seq = 1; /* a fresh socket per request: nothing else can answer */
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	int err;

	if (f->family != AF_INET && f->family != AF_INET6)
		return -EAFNOSUPPORT;
	nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!nl)
		return ne_negerrno();
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = ne_negerrno();
		goto out;
	}
	nlh = ct_msg_build(buf, type, seq, f);
	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		err = ne_negerrno();
		goto out;
	}
	err = read_reply(nl, seq, r);
out:
	mnl_socket_close(nl);
	return err;
}

int ct_get(const struct ct_flow *f, struct ct_flow *ret)
{
	struct ct_flow got;
	struct reply r = {.out = &got};
	int err;

	if ((err = ct_request(IPCTNL_MSG_CT_GET, f, &r)) < 0)
		return err;
	if (!r.got)
		return -EBADMSG;
	*ret = got;
	return 0;
}

int ct_delete(const struct ct_flow *f)
{
	struct reply r = {0};

	return ct_request(IPCTNL_MSG_CT_DELETE, f, &r);
}

/* ---- events --------------------------------------------------------------------------- */

/* SO_RCVBUFFORCE passes net.core.rmem_max, far below what an event storm needs; it needs
 * CAP_NET_ADMIN, which the daemon has. Without it we take what rmem_max allows. */
static int sock_rcvbuf(int fd, size_t bytes)
{
	int v = (int)NE_MIN(bytes, (size_t)INT_MAX / 2);

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) == 0)
		return 0;
	return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) == 0 ? 0 : ne_negerrno();
}

/* The kernel counts each multicast message it could not queue in sk_drops (netlink_overrun),
 * while ENOBUFS is raised only once per congestion: the counter is the exact loss. */
static int sock_drops(int fd, uint32_t *ret)
{
	uint32_t mem[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mem);

	if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0)
		return ne_negerrno();
	if (len <= SK_MEMINFO_DROPS * sizeof(uint32_t))
		return -EOPNOTSUPP;
	*ret = mem[SK_MEMINFO_DROPS];
	return 0;
}

/* NETLINK_NO_ENOBUFS is deliberately not set: the overrun must reach us to be counted. */
static int events_socket(struct mnl_socket **ret, size_t rcvbuf)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int group = NFNLGRP_CONNTRACK_DESTROY, err;

	if (!nl)
		return ne_negerrno();
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    mnl_socket_setsockopt(nl, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) < 0) {
		err = ne_negerrno();
		goto fail;
	}
	if ((err = sock_rcvbuf(mnl_socket_get_fd(nl), rcvbuf)) < 0)
		goto fail;
	*ret = nl;
	return 0;
fail:
	mnl_socket_close(nl);
	return err;
}

int ct_events_open(struct ct_events **ret, uint32_t mark_mask, size_t rcvbuf, ct_destroy_cb cb,
		   void *userdata)
{
	struct ct_events *ev;
	int err;

	if (!cb)
		return -EINVAL;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	if ((err = events_socket(&ev->nl, rcvbuf ? rcvbuf : CT_RCVBUF_DEFAULT)) < 0) {
		free(ev);
		return err;
	}
	ev->mark_mask = mark_mask;
	ev->cb = cb;
	ev->userdata = userdata;
	ev->has_meminfo = sock_drops(mnl_socket_get_fd(ev->nl), &ev->drops_seen) == 0;
	*ret = ev;
	return 0;
}

void ct_events_close(struct ct_events *ev)
{
	if (!ev)
		return;
	mnl_socket_close(ev->nl);
	free(ev);
}

int ct_events_fd(const struct ct_events *ev)
{
	return mnl_socket_get_fd(ev->nl);
}

uint64_t ct_events_lost(const struct ct_events *ev)
{
	return ev->lost;
}

uint64_t ct_events_errors(const struct ct_events *ev)
{
	return ev->errors;
}

/* Brings `lost` up to date; without SO_MEMINFO an ENOBUFS report counts as one loss. */
static void sync_lost(struct ct_events *ev, bool enobufs)
{
	uint32_t drops;

	if (ev->has_meminfo && sock_drops(mnl_socket_get_fd(ev->nl), &drops) == 0) {
		ev->lost += (uint32_t)(drops - ev->drops_seen);
		ev->drops_seen = drops;
	} else if (enobufs) {
		ev->lost++;
	}
}

static void handle_msg(struct ct_events *ev, const struct nlmsghdr *nlh)
{
	struct ct_flow f;

	if (nlh->nlmsg_type == NLMSG_NOOP)
		return;
	if (nlh->nlmsg_type != CT_MSG(IPCTNL_MSG_CT_DELETE) || ct_msg_parse(nlh, &f) < 0) {
		ev->errors++;
		return;
	}
	if (ev->mark_mask && !(f.mark & ev->mark_mask))
		return;
	ev->cb(&f, ev->userdata);
}

static void handle_datagram(struct ct_events *ev, size_t len)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)ev->buf;
	int left = (int)len;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left))
		handle_msg(ev, nlh);
	/* left < 0 only when the last message lacks its alignment padding: harmless */
	if (left > 0)
		ev->errors++;
}

/* One datagram. Anything truncated or not sent by the kernel is -EBADMSG. */
static ssize_t recv_kernel(struct ct_events *ev)
{
	struct sockaddr_nl sa;
	struct iovec iov = {ev->buf, sizeof(ev->buf)};
	struct msghdr msg = {.msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n = recvmsg(mnl_socket_get_fd(ev->nl), &msg, 0);

	if (n < 0)
		return ne_negerrno();
	if ((msg.msg_flags & MSG_TRUNC) || msg.msg_namelen != sizeof(sa) || sa.nl_pid != 0)
		return -EBADMSG;
	return n;
}

int ct_events_dispatch(struct ct_events *ev)
{
	bool overrun = false;

	for (unsigned i = 0; i < CT_READS_PER_DISPATCH; i++) {
		ssize_t n = recv_kernel(ev);

		if (n == -EAGAIN)
			break;
		if (n == -ENOBUFS) {
			overrun = true;
			sync_lost(ev, true);
		} else if (n == -EBADMSG) {
			ev->errors++;
		} else if (n < 0 && n != -EINTR) {
			return (int)n;
		} else if (n > 0) {
			handle_datagram(ev, (size_t)n);
		}
	}
	/* messages dropped while we drained the queue raise no second ENOBUFS */
	if (overrun)
		sync_lost(ev, false);
	return 0;
}

/* ---- accounting sysctl ---------------------------------------------------------------- */

static struct {
	bool changed; /* we wrote the sysctl and have not restored it */
	char old;
} acct_state;

static int acct_read(char *ret)
{
	_cleanup_close_ int fd = open(CT_ACCT_PATH, O_RDONLY | O_CLOEXEC);
	char buf[8];
	ssize_t n;

	if (fd < 0)
		return ne_negerrno();
	if ((n = read(fd, buf, sizeof(buf))) < 0)
		return ne_negerrno();
	if (n < 1 || (buf[0] != '0' && buf[0] != '1'))
		return -EBADMSG;
	*ret = buf[0];
	return 0;
}

static int acct_write(char value)
{
	_cleanup_close_ int fd = open(CT_ACCT_PATH, O_WRONLY | O_CLOEXEC);
	char buf[2] = {value, '\n'};
	ssize_t n;

	if (fd < 0)
		return ne_negerrno();
	if ((n = write(fd, buf, sizeof(buf))) < 0)
		return ne_negerrno();
	return n == (ssize_t)sizeof(buf) ? 0 : -EIO;
}

int ct_acct_enable(void)
{
	char cur;
	int err;

	if ((err = acct_read(&cur)) < 0)
		return err;
	if (cur == '1')
		return 0;
	if ((err = acct_write('1')) < 0)
		return err;
	/* a second enable after someone reset it keeps the value found first */
	if (!acct_state.changed) {
		acct_state.changed = true;
		acct_state.old = cur;
	}
	return 0;
}

int ct_acct_restore(void)
{
	int err;

	if (!acct_state.changed)
		return 0;
	if ((err = acct_write(acct_state.old)) < 0)
		return err;
	acct_state.changed = false;
	return 0;
}
