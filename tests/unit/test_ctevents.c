/* ctevents: message parsing (no root), and against the real kernel (root) in a network
 * namespace this process makes for itself with unshare(CLONE_NEWNET): an nftables table that
 * uses conntrack and marks some flows, TCP over 127.0.0.1 and ::1, DESTROY events, ct_get,
 * ct_delete, the mark filter, overruns and the accounting sysctl. The namespace disappears
 * with the process; the host's network configuration is never touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctevents.h"

#define MARK 0x100000u
#define PORT_MARKED_V4 7001
#define PORT_MARKED_V6 7002
#define PORT_UNMARKED 7100
#define PAYLOAD (8 * 4096)
#define ACCT_PATH "/proc/sys/net/netfilter/nf_conntrack_acct"

static const char ruleset[] =
	"table inet cttest {\n"
	"	chain out {\n"
	"		type filter hook output priority 0; policy accept;\n"
	"		ct state new tcp dport { 7001, 7002 } ct mark set 0x100000 counter\n"
	"		ct state new counter\n"
	"	}\n"
	"}\n";

static bool live; /* root, in our own namespace, with the table and accounting on */

/* ---- parsing, no root ----------------------------------------------------------------- */

static struct ct_flow flow_v4(uint8_t proto, uint16_t sport, uint16_t dport)
{
	struct ct_flow f = {.family = AF_INET, .proto = proto, .sport = sport, .dport = dport};

	inet_pton(AF_INET, "198.18.0.1", &f.src.v4);
	inet_pton(AF_INET, "198.18.0.2", &f.dst.v4);
	return f;
}

static struct ct_flow flow_v6(uint8_t proto, uint16_t sport, uint16_t dport)
{
	struct ct_flow f = {.family = AF_INET6, .proto = proto, .sport = sport, .dport = dport};

	inet_pton(AF_INET6, "fd00:198:18::1", &f.src.v6);
	inet_pton(AF_INET6, "fd00:198:18::2", &f.dst.v6);
	return f;
}

static void put_counters(struct nlmsghdr *nlh, uint16_t type, uint64_t packets, uint64_t bytes)
{
	struct nlattr *n = mnl_attr_nest_start(nlh, type);

	mnl_attr_put_u64(nlh, CTA_COUNTERS_PACKETS, htobe64(packets));
	mnl_attr_put_u64(nlh, CTA_COUNTERS_BYTES, htobe64(bytes));
	mnl_attr_nest_end(nlh, n);
}

/* What the kernel sends for a destroyed entry: the tuple plus mark, id and counters. */
static struct nlmsghdr *event_msg(char *buf, const struct ct_flow *f)
{
	struct nlmsghdr *nlh = ct_msg_build(buf, IPCTNL_MSG_CT_DELETE, 0, f);

	if (f->mark)
		mnl_attr_put_u32(nlh, CTA_MARK, htonl(f->mark));
	mnl_attr_put_u32(nlh, CTA_ID, htonl(f->id));
	if (f->has_counters) {
		put_counters(nlh, CTA_COUNTERS_ORIG, f->orig_packets, f->orig_bytes);
		put_counters(nlh, CTA_COUNTERS_REPLY, f->reply_packets, f->reply_bytes);
	}
	return nlh;
}

static void assert_flow_equal(const struct ct_flow *a, const struct ct_flow *b)
{
	size_t alen = a->family == AF_INET ? 4 : 16;

	assert_int_equal(a->family, b->family);
	assert_int_equal(a->proto, b->proto);
	assert_memory_equal(&a->src, &b->src, alen);
	assert_memory_equal(&a->dst, &b->dst, alen);
	assert_int_equal(a->sport, b->sport);
	assert_int_equal(a->dport, b->dport);
	assert_int_equal(a->mark, b->mark);
	assert_int_equal(a->id, b->id);
	assert_int_equal(a->has_counters, b->has_counters);
	assert_int_equal(a->orig_packets, b->orig_packets);
	assert_int_equal(a->orig_bytes, b->orig_bytes);
	assert_int_equal(a->reply_packets, b->reply_packets);
	assert_int_equal(a->reply_bytes, b->reply_bytes);
}

static void roundtrip(struct ct_flow f)
{
	char buf[CT_MSG_BUILD_SIZE * 2];
	struct ct_flow got;

	assert_int_equal(ct_msg_parse(event_msg(buf, &f), &got), 0);
	assert_flow_equal(&got, &f);
}

static void test_parse_roundtrip(void **state)
{
	struct ct_flow f = flow_v4(IPPROTO_TCP, 40000, 443);

	f.mark = MARK | 7;
	f.id = 0xdeadbeef;
	f.has_counters = true;
	f.orig_packets = 12;
	f.orig_bytes = 5000000000ull;
	f.reply_packets = 10;
	f.reply_bytes = 777;
	roundtrip(f);
	roundtrip(flow_v6(IPPROTO_UDP, 5353, 53));
	roundtrip(flow_v6(IPPROTO_SCTP, 1, 65535));
	roundtrip(flow_v4(IPPROTO_UDPLITE, 9, 10));
	roundtrip(flow_v4(IPPROTO_ICMP, 0, 0)); /* no ports on the wire */
}

static void test_parse_rejects(void **state)
{
	char buf[CT_MSG_BUILD_SIZE * 2];
	struct ct_flow f = flow_v4(IPPROTO_TCP, 1, 2), got = {.id = 42};
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	/* the family in the header decides which addresses must be there */
	nlh = event_msg(buf, &f);
	nfg = mnl_nlmsg_get_payload(nlh);
	nfg->nfgen_family = AF_INET6;
	assert_int_equal(ct_msg_parse(nlh, &got), -EBADMSG);
	nfg->nfgen_family = AF_UNSPEC;
	assert_int_equal(ct_msg_parse(nlh, &got), -EBADMSG);

	/* no tuple at all */
	nlh = mnl_nlmsg_put_header(memset(buf, 0, sizeof(buf)));
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_INET;
	mnl_attr_put_u32(nlh, CTA_ID, 1);
	assert_int_equal(ct_msg_parse(nlh, &got), -EBADMSG);

	/* a mark of the wrong size */
	nlh = ct_msg_build(buf, IPCTNL_MSG_CT_DELETE, 0, &f);
	mnl_attr_put_u16(nlh, CTA_MARK, 1);
	assert_int_equal(ct_msg_parse(nlh, &got), -EBADMSG);

	/* counters for one direction only */
	nlh = ct_msg_build(buf, IPCTNL_MSG_CT_DELETE, 0, &f);
	put_counters(nlh, CTA_COUNTERS_ORIG, 1, 60);
	assert_int_equal(ct_msg_parse(nlh, &got), -EBADMSG);

	/* header only */
	nlh = ct_msg_build(buf, IPCTNL_MSG_CT_DELETE, 0, &f);
	nlh->nlmsg_len = MNL_NLMSG_HDRLEN;
	assert_int_equal(ct_msg_parse(nlh, &got), -EBADMSG);
	assert_int_equal(got.id, 42); /* untouched on failure */
}

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Parses a copy in a heap block of exactly len bytes, so that ASan sees any overread. */
static void parse_exact(const void *msg, size_t len)
{
	char *copy = malloc(len);
	struct ct_flow got;
	int r;

	assert_non_null(copy);
	memcpy(copy, msg, len);
	if (mnl_nlmsg_ok((struct nlmsghdr *)copy, (int)len)) {
		r = ct_msg_parse((struct nlmsghdr *)copy, &got);
		assert_true(r == 0 || r == -EBADMSG);
	}
	free(copy);
}

/* Every truncation and many random mutations of a full event: never a crash. */
static void test_parse_malformed(void **state)
{
	char buf[CT_MSG_BUILD_SIZE * 2], mut[CT_MSG_BUILD_SIZE * 2];
	struct ct_flow f = flow_v6(IPPROTO_TCP, 1234, 80);
	struct nlmsghdr *nlh;
	uint32_t seed = 0x12345678, len;

	f.mark = MARK;
	f.has_counters = true;
	nlh = event_msg(buf, &f);
	len = nlh->nlmsg_len;
	for (uint32_t cut = sizeof(struct nlmsghdr); cut < len; cut++) {
		memcpy(mut, buf, len);
		((struct nlmsghdr *)mut)->nlmsg_len = cut;
		parse_exact(mut, cut);
	}
	for (int i = 0; i < 20000; i++) {
		memcpy(mut, buf, len);
		for (uint32_t k = xorshift(&seed) % 4 + 1; k > 0; k--)
			mut[sizeof(struct nlmsghdr) + xorshift(&seed) % (len - sizeof(struct nlmsghdr))] =
				(char)xorshift(&seed);
		parse_exact(mut, len);
	}
}

static void test_build_tuple(void **state)
{
	char buf[CT_MSG_BUILD_SIZE];
	struct ct_flow f = flow_v6(IPPROTO_UDP, 53, 5353), got;
	struct nlmsghdr *nlh = ct_msg_build(buf, IPCTNL_MSG_CT_GET, 9, &f);

	assert_int_equal(nlh->nlmsg_type, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET);
	assert_int_equal(nlh->nlmsg_seq, 9);
	assert_true(nlh->nlmsg_flags & NLM_F_REQUEST);
	assert_true(nlh->nlmsg_len <= CT_MSG_BUILD_SIZE);
	assert_int_equal(ct_msg_parse(nlh, &got), 0);
	assert_flow_equal(&got, &f);
}

/* ---- the live namespace ---------------------------------------------------------------- */

static int lo_up(void)
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	if (fd < 0)
		return -1;
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return r;
}

static int nft_load(const char *text)
{
	FILE *p = popen("nft -f -", "w");

	if (!p)
		return -1;
	fputs(text, p);
	return pclose(p) == 0 ? 0 : -1;
}

static int read_acct(void)
{
	char c = 0;
	int fd = open(ACCT_PATH, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c - '0';
}

static void write_acct(int v)
{
	char buf[2] = {(char)('0' + v), '\n'};
	int fd = open(ACCT_PATH, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, 2), 2);
	close(fd);
}

/* Without root there is nothing to set up: the live tests skip. */
static int group_setup(void **state)
{
	if (geteuid() != 0)
		return 0;
	if (unshare(CLONE_NEWNET) < 0 || lo_up() < 0 || nft_load(ruleset) < 0) {
		fprintf(stderr, "live setup failed: %s\n", strerror(errno));
		return -1;
	}
	if (read_acct() != 0 || ct_acct_enable() < 0 || read_acct() != 1) {
		fprintf(stderr, "nf_conntrack_acct could not be turned on\n");
		return -1;
	}
	live = true;
	return 0;
}

static void need_live(void)
{
	if (!live)
		skip();
}

struct collector {
	struct ct_flow f[512];
	size_t n;
};

static void collect_cb(const struct ct_flow *f, void *userdata)
{
	struct collector *c = userdata;

	if (c->n < sizeof(c->f) / sizeof(c->f[0]))
		c->f[c->n++] = *f;
}

/* Reads events until none has come for a moment. DESTROY events are queued inside the
 * kernel's delete, so a short quiet period is enough. */
static void drain(struct ct_events *ev)
{
	struct pollfd p = {.fd = ct_events_fd(ev), .events = POLLIN};

	while (poll(&p, 1, 200) > 0)
		assert_int_equal(ct_events_dispatch(ev), 0);
}

static bool same_tuple(const struct ct_flow *a, const struct ct_flow *b)
{
	size_t alen = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && a->proto == b->proto && a->sport == b->sport &&
	       a->dport == b->dport && memcmp(&a->src, &b->src, alen) == 0 &&
	       memcmp(&a->dst, &b->dst, alen) == 0;
}

static const struct ct_flow *find(const struct collector *c, const struct ct_flow *f)
{
	for (size_t i = 0; i < c->n; i++)
		if (same_tuple(&c->f[i], f))
			return &c->f[i];
	return NULL;
}

struct conn {
	int lfd, cfd, sfd;
	struct ct_flow f; /* client → server, as conntrack's original direction */
};

static void sa_make(int family, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		s->sin6_addr = in6addr_loopback;
		*len = sizeof(*s);
	}
}

static void tuple_from(struct conn *c, int family, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(c->cfd, (struct sockaddr *)&ss, &len), 0);
	c->f = (struct ct_flow){.family = family, .proto = IPPROTO_TCP, .dport = port};
	if (family == AF_INET) {
		c->f.src.v4 = ((struct sockaddr_in *)&ss)->sin_addr;
		c->f.dst.v4.s_addr = htonl(INADDR_LOOPBACK);
		c->f.sport = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else {
		c->f.src.v6 = ((struct sockaddr_in6 *)&ss)->sin6_addr;
		c->f.dst.v6 = in6addr_loopback;
		c->f.sport = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
}

static void read_full(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, buf, len);

		assert_true(n > 0);
		buf += n;
		len -= (size_t)n;
	}
}

/* A connection that has carried PAYLOAD bytes from client to server, still open. */
static void conn_open(struct conn *c, int family, uint16_t port)
{
	static char chunk[4096];
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	sa_make(family, port, &ss, &len);
	c->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->lfd >= 0);
	assert_int_equal(setsockopt(c->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(c->lfd, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(listen(c->lfd, 4), 0);
	c->cfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(c->cfd, (struct sockaddr *)&ss, len), 0);
	c->sfd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c->sfd >= 0);
	for (size_t sent = 0; sent < PAYLOAD; sent += sizeof(chunk)) {
		assert_int_equal(write(c->cfd, chunk, sizeof(chunk)), sizeof(chunk));
		read_full(c->sfd, chunk, sizeof(chunk));
	}
	tuple_from(c, family, port);
}

/* Both FINs exchanged and seen before the entry is deleted, so that no late packet of this
 * connection can create a fresh entry with the same tuple. */
static void conn_close(struct conn *c)
{
	char b;

	assert_int_equal(shutdown(c->cfd, SHUT_WR), 0);
	assert_int_equal(read(c->sfd, &b, 1), 0);
	close(c->sfd);
	assert_int_equal(read(c->cfd, &b, 1), 0);
	close(c->cfd);
	close(c->lfd);
}

static void check_counters(const struct ct_flow *f)
{
	assert_true(f->has_counters);
	assert_true(f->orig_bytes >= PAYLOAD);
	assert_true(f->orig_packets >= 3);
	assert_true(f->reply_packets >= 2);
	assert_true(f->reply_bytes > 0);
}

static void destroy_one(int family, uint16_t port)
{
	struct collector col = {0};
	struct ct_events *ev;
	struct conn c;
	struct ct_flow got;
	const struct ct_flow *e;

	assert_int_equal(ct_events_open(&ev, MARK, 0, collect_cb, &col), 0);
	conn_open(&c, family, port);
	assert_int_equal(ct_get(&c.f, &got), 0); /* the live entry */
	assert_true(same_tuple(&got, &c.f));
	assert_int_equal(got.mark, MARK);
	check_counters(&got);
	conn_close(&c);
	assert_int_equal(ct_delete(&c.f), 0);
	assert_int_equal(ct_delete(&c.f), -ENOENT);
	assert_int_equal(ct_get(&c.f, &got), -ENOENT);
	drain(ev);
	assert_non_null(e = find(&col, &c.f));
	assert_int_equal(e->mark, MARK);
	check_counters(e);
	assert_true(e->orig_bytes >= got.orig_bytes); /* only grew since the live lookup */
	assert_int_equal(ct_events_errors(ev), 0);
	assert_int_equal(ct_events_lost(ev), 0);
	ct_events_close(ev);
}

static void test_destroy_v4(void **state)
{
	need_live();
	destroy_one(AF_INET, PORT_MARKED_V4);
}

static void test_destroy_v6(void **state)
{
	need_live();
	destroy_one(AF_INET6, PORT_MARKED_V6);
}

/* An unmarked entry reaches a listener without a mask and not one with the mask. */
static void test_mark_filter(void **state)
{
	struct collector all = {0}, marked = {0};
	struct ct_events *ev_all, *ev_marked;
	struct conn c;
	const struct ct_flow *e;

	need_live();
	assert_int_equal(ct_events_open(&ev_all, 0, 0, collect_cb, &all), 0);
	assert_int_equal(ct_events_open(&ev_marked, MARK, 0, collect_cb, &marked), 0);
	conn_open(&c, AF_INET, PORT_UNMARKED);
	conn_close(&c);
	assert_int_equal(ct_delete(&c.f), 0);
	drain(ev_all);
	drain(ev_marked);
	assert_non_null(e = find(&all, &c.f));
	assert_int_equal(e->mark, 0);
	assert_null(find(&marked, &c.f));
	ct_events_close(ev_all);
	ct_events_close(ev_marked);
}

static void test_get_missing(void **state)
{
	struct ct_flow f = flow_v4(IPPROTO_TCP, 1, 2), got = {.id = 42};

	need_live();
	assert_int_equal(ct_get(&f, &got), -ENOENT);
	assert_int_equal(got.id, 42);
	f.family = AF_UNIX;
	assert_int_equal(ct_get(&f, &got), -EAFNOSUPPORT);
}

/* Deletes every entry in the namespace (CT_DELETE without a tuple, version 0: all families). */
static void ct_flush_for_test(void)
{
	char buf[8192];
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nfgenmsg *nfg;
	ssize_t n;

	assert_non_null(nl);
	assert_int_equal(mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID), 0);
	nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = 1;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	assert_true(mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) > 0);
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(mnl_cb_run(buf, (size_t)n, 1, mnl_socket_get_portid(nl), NULL, NULL),
			 MNL_CB_STOP);
	mnl_socket_close(nl);
}

/* A tiny receive buffer and 200 destroyed entries at once: the overrun is counted, and
 * every entry is either reported or counted as lost. */
static void test_overrun(void **state)
{
	enum { FLOWS = 200 };
	struct collector col = {0};
	struct ct_events *ev;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	need_live();
	ct_flush_for_test();
	assert_int_equal(ct_events_open(&ev, 0, 1, collect_cb, &col), 0);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	for (uint16_t i = 0; i < FLOWS; i++) {
		sa_make(AF_INET, (uint16_t)(20000 + i), &ss, &len);
		assert_int_equal(sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len), 1);
	}
	close(fd);
	ct_flush_for_test();
	drain(ev);
	assert_true(ct_events_lost(ev) > 0);
	assert_true(col.n > 0);
	assert_true(col.n + ct_events_lost(ev) >= FLOWS);
	assert_int_equal(ct_events_errors(ev), 0);
	ct_events_close(ev);
}

/* Runs last: the group setup turned accounting on from 0. */
static void test_acct_restore(void **state)
{
	need_live();
	assert_int_equal(ct_acct_enable(), 0); /* again: keeps the value found first */
	assert_int_equal(read_acct(), 1);
	assert_int_equal(ct_acct_restore(), 0);
	assert_int_equal(read_acct(), 0);
	assert_int_equal(ct_acct_restore(), 0); /* nothing left to restore */
	assert_int_equal(read_acct(), 0);

	/* found on: left on */
	write_acct(1);
	assert_int_equal(ct_acct_enable(), 0);
	assert_int_equal(ct_acct_restore(), 0);
	assert_int_equal(read_acct(), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_roundtrip),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_build_tuple),
		cmocka_unit_test(test_destroy_v4),
		cmocka_unit_test(test_destroy_v6),
		cmocka_unit_test(test_mark_filter),
		cmocka_unit_test(test_get_missing),
		cmocka_unit_test(test_overrun),
		cmocka_unit_test(test_acct_restore),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
