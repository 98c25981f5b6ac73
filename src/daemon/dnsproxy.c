/* The DNS proxy engine (see dnsproxy.h, docs/dns.md).
 *
 * Trust: everything a client or an upstream server sends is hostile. Client queries come from
 * any local process (TPROXY listeners); answers come to sockets bound to random ports that
 * anyone on the path can reach. So: every message is parsed (dns_parse never trusts a count or
 * a pointer) before anything looks at it; an answer is accepted only from a server the query
 * was sent to, on the socket it was sent from, with the query's random id and question; TCP
 * clients are bounded in number, pipelined queries, buffered output and idle time. The
 * provider glue (dnsprov.c) and the routes (dnsroutes.c) are the daemon's own, but what a
 * provider answers is parsed and matched like an upstream answer.
 *
 * Hot path (UDP): recvmmsg on the listeners, one parse, a route lookup, the query copied into
 * a preallocated slot and sent with sendmmsg from a pool of upstream sockets; answers come in
 * with recvmmsg and go out to clients with sendmmsg on raw sockets (see reply_*). No
 * allocation, no socket creation, no process lookup unless a provider or a filter wants the
 * asking process.
 *
 * Replies to UDP clients leave from raw IP sockets (IP_HDRINCL) with the original destination
 * as source address, not from transparent UDP sockets bound to it: a socket bound to
 * 127.0.0.53:53 beside a local stub resolver would take the stub's own queries (the kernel
 * delivers to the newest of equal sockets), and a raw socket receives nothing and needs no
 * per-destination cache. */
#include "dnsproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cgroup.h"
#include "daemon.h"
#include "dns.h"
#include "dnsprov.h"
#include "dnsroutes.h"
#include "dp_nft.h"
#include "dp_route.h"
#include "filter.h"
#include "list.h"
#include "log.h"
#include "procinfo.h"
#include "util.h"

#define DQ_MAX 4096               /* queries in flight */
#define DQ_CHUNK 256
#define DQ_INLINE 512             /* a query this size is kept in its slot */
#define ID_BUCKETS 4096
#define BATCH 32                  /* recvmmsg / sendmmsg */
#define RX_BUF 4096               /* larger UDP answers count as truncated (TCP retry) */
#define POOL_SOCKS 4              /* upstream UDP sockets per family */
#define POOL_SWITCH 64            /* queries on one pool socket before the next is used */
#define POOL_ROTATE 50000         /* queries on one socket before it is replaced */
#define TCP_PIPELINE 32           /* queries in flight per TCP client */
#define TCP_QUERY_MAX 16384       /* a longer TCP frame from a client closes it */
#define TCP_WBUF_MAX (256 * 1024) /* unread answers: stop reading from the client */
#define TCP_INLINE 514
#define STUB_CHECK_USEC (5 * 1000000ULL)
/* When interception turns off, flows already diverted keep going to the proxy until they are
 * done: at least DRAIN_MIN (a client's retry of a query just sent), at most DRAIN_MAX. */
#define DRAIN_MIN_USEC (3 * 1000000ULL)
#define DRAIN_MAX_USEC (30 * 1000000ULL)
#define CACHE_TTL_MAX 86400
#define DIVERT_KEEP (~DNS_MARK_DIVERT)
#define PROXIED_KEEP (~DNS_CTMARK_PROXIED)

enum dq_state { DQ_FREE, DQ_PROVIDER, DQ_UDP, DQ_TCP, DQ_RESPONSE };

/* An IPv4 or IPv6 socket address in 28 bytes (a query holds six). */
union sa {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct usock {                   /* an upstream UDP socket */
	int fd, family;
	sd_event_source *src;
	unsigned sent, refs;
	bool retired;
	struct ne_list link;         /* retired sockets waiting for their last answer */
};

struct utcp {                    /* one query's upstream TCP connection */
	int fd;
	sd_event_source *src;
	bool connected, sent;
	size_t woff;
	uint8_t hdr[2];
	size_t hgot, mgot, mlen;
	uint8_t *msg;
};

struct tclient;

struct dq {
	uint64_t id;                 /* engine id; 0 when free */
	enum dq_state st;
	uint8_t proto;               /* the client's: IPPROTO_UDP or IPPROTO_TCP */
	bool provider, has_proc;
	uint16_t client_id, up_id;
	uint16_t udp_limit;
	union sa client, server;
	struct tclient *tc;
	struct ne_list tlink;        /* in tc->queries */
	uint8_t *msg;                /* the query, with up_id while upstream */
	size_t len;
	union sa servers[DNSROUTE_SERVERS_MAX];
	uint8_t n_servers, cur, tries, asked;  /* asked: bit per server sent to over UDP */
	struct usock *us;
	struct utcp *ut;
	struct ne_list tmlink;       /* in P->timeouts */
	uint64_t deadline;
	struct dq *hnext;            /* P->by_id chain (UDP upstream) */
	int32_t pid;
	uint64_t start_time;
	uint8_t *resp;               /* an answer waiting for the provider's verdict */
	size_t resp_len;
	uint8_t ibuf[DQ_INLINE];
};

struct tclient {
	int fd;
	sd_event_source *src;
	struct ne_list link;         /* P->tclients, in deadline order */
	uint64_t deadline;
	union sa peer, local;
	struct ne_list queries;
	unsigned inflight;
	uint8_t hdr[2];
	size_t hgot, mlen, mgot, mcap;
	uint8_t *msg;
	uint8_t *wbuf;
	size_t wlen, woff, wcap;
	uint32_t events;
	uint8_t ibuf[TCP_INLINE];
};

struct centry {
	struct centry *hnext;
	struct ne_list lru;
	uint64_t hash;
	uint64_t stored_usec, expires_usec;
	uint16_t klen, alen;
	uint8_t data[];              /* key, then the answer */
};

struct counters {
	uint64_t queries_udp, queries_tcp, answered, forwarded, servfail, formerr, dropped_short,
		dropped_response, notimp, refused, no_route, timeouts, retries, failovers,
		tcp_fallbacks, wrong_source, wrong_id, mismatch, malformed_answer, tcp_accepted,
		tcp_idle_closed, tcp_refused, tcp_zero_frame, tcp_oversized, tcp_short_frame,
		cancelled, overload, dropped_oversized, send_errors, provider_queries,
		provider_answers, provider_bad, cache_hits, cache_misses, cache_evictions,
		cache_stored, dropped;
};

struct rxbatch {
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_storage from[BATCH];
	uint8_t cbuf[BATCH][CMSG_SPACE(sizeof(struct sockaddr_in6))];
	uint8_t buf[BATCH][RX_BUF];
};

struct fwd {                     /* a query waiting for the next sendmmsg */
	struct usock *us;
	struct dq *q;
};

struct reply {                   /* a UDP reply waiting for the next sendmmsg */
	union sa to;
	size_t len;
	uint8_t pkt[40 + 8 + RX_BUF];
};

struct dnsproxy {
	struct daemon *d;
	bool on, routes_added;
	bool draining;               /* interception off for new flows; diverted ones finish */
	uint64_t drain_start;
	int udp[2], tcp[2], raw[2];
	sd_event_source *udp_src[2], *tcp_src[2];
	struct usock *pool[2][POOL_SOCKS];
	unsigned pool_cur[2], pool_uses[2];
	struct ne_list retired;
	struct dp_route *rt;
	uint32_t table;
	struct dq *chunks[DQ_MAX / DQ_CHUNK];
	size_t n_slots;
	struct dq *free_list;
	unsigned inflight;
	uint32_t gen;
	struct dq *by_id[ID_BUCKETS];
	struct ne_list timeouts;
	sd_event_source *timer;
	uint64_t timer_at;
	struct ne_list tclients;
	unsigned n_tclients;
	struct procinfo *pi;
	uint16_t rnd[256];
	unsigned rnd_left;
	/* answer cache */
	struct centry **cbuckets;
	size_t n_cbuckets, cache_bytes, cache_entries;
	struct ne_list cache_lru;
	uint8_t ckey[crypto_shorthash_KEYBYTES];
	/* local stub resolver exemption */
	bool has_stub;
	struct dp_match stub;
	char stub_desc[160];
	uint64_t stub_checked;
	/* batches */
	struct fwd fwd[BATCH];
	size_t n_fwd;
	struct reply *replies[2];    /* [family] BATCH each */
	size_t n_replies[2];
	struct rxbatch *rx;
	struct counters c;
};

static struct dnsproxy *P;

/* Scratch: one parse of the query and one of the answer at a time (single-threaded). */
static struct dns_msg QM, AM;
static struct pi_process PROC;
static uint8_t OUT[DNS_MSG_MAX + 2], TRUNC[RX_BUF];

static void dq_finish(struct dq *q);
static void dq_servfail(struct dq *q);
static void dq_send(struct dq *q);
static void flush_all(void);
static void tclient_close(struct tclient *tc);
static void tclient_activity(struct tclient *tc);
static void timer_want(uint64_t at);
static void intercept_off(void);

static int fam_idx(int family)
{
	return family == AF_INET6 ? 1 : 0;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t sa_port(const union sa *a)
{
	return ntohs(a->sa.sa_family == AF_INET6 ? a->in6.sin6_port : a->in.sin_port);
}

static socklen_t sa_len(const union sa *a)
{
	return a->sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool sa_equal(const union sa *a, const union sa *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	return a->in6.sin6_port == b->in6.sin6_port && !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, 16);
}

/* From a sockaddr_storage the kernel or the routes filled (AF_INET or AF_INET6). */
static void sa_from(union sa *a, const struct sockaddr_storage *ss)
{
	memset(a, 0, sizeof(*a));
	memcpy(a, ss, ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
}

static void sa_to(struct sockaddr_storage *ss, const union sa *a)
{
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, a, sa_len(a));
}

static const char *sa_text(const union sa *a, char *buf, size_t size)
{
	struct sockaddr_storage ss;

	sa_to(&ss, a);
	return dnsroutes_format_server(&ss, buf, size);
}

static unsigned opt_or(unsigned v, unsigned dflt)
{
	return v ? v : dflt;
}

static uint64_t timeout_usec(void)
{
	return (uint64_t)opt_or(P->d->opt.dns_timeout_ms, 1500) * 1000;
}

/* ---- random ids --------------------------------------------------------------------- */

static uint16_t random16(void)
{
	if (!P->rnd_left) {
		randombytes_buf(P->rnd, sizeof(P->rnd));
		P->rnd_left = NE_ARRAY_SIZE(P->rnd);
	}
	return P->rnd[--P->rnd_left];
}

static struct dq *id_find(uint16_t id)
{
	struct dq *q;

	for (q = P->by_id[id & (ID_BUCKETS - 1)]; q; q = q->hnext)
		if (q->up_id == id)
			return q;
	return NULL;
}

/* An id no other UDP query in flight uses, so an answer names exactly one query. */
static void id_register(struct dq *q)
{
	struct dq **b;

	do
		q->up_id = random16();
	while (id_find(q->up_id));
	b = &P->by_id[q->up_id & (ID_BUCKETS - 1)];
	q->hnext = *b;
	*b = q;
}

static void id_unregister(struct dq *q)
{
	struct dq **pp;

	for (pp = &P->by_id[q->up_id & (ID_BUCKETS - 1)]; *pp; pp = &(*pp)->hnext)
		if (*pp == q) {
			*pp = q->hnext;
			q->hnext = NULL;
			return;
		}
}

/* ---- query slots ------------------------------------------------------------------------ */

static struct dq *dq_by_id(uint64_t id)
{
	size_t slot = (size_t)(id & 0xffff);
	struct dq *q;

	if (!id || slot >= P->n_slots)
		return NULL;
	q = &P->chunks[slot / DQ_CHUNK][slot % DQ_CHUNK];
	return q->id == id ? q : NULL;
}

static int grow_slots(void)
{
	size_t c = P->n_slots / DQ_CHUNK, i;
	struct dq *chunk;

	if (P->n_slots >= DQ_MAX)
		return -ENOSPC;
	chunk = calloc(DQ_CHUNK, sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	P->chunks[c] = chunk;
	for (i = DQ_CHUNK; i-- > 0;) {
		ne_list_init(&chunk[i].tmlink);
		ne_list_init(&chunk[i].tlink);
		chunk[i].hnext = P->free_list;
		P->free_list = &chunk[i];
	}
	P->n_slots += DQ_CHUNK;
	return 0;
}

static size_t dq_slot(const struct dq *q)
{
	for (size_t c = 0; c < P->n_slots / DQ_CHUNK; c++)
		if (q >= P->chunks[c] && q < P->chunks[c] + DQ_CHUNK)
			return c * DQ_CHUNK + (size_t)(q - P->chunks[c]);
	return 0;
}

/* A free slot with a fresh engine id: slot number in the low 16 bits, a generation above. */
static struct dq *dq_alloc(void)
{
	struct dq *q;

	if (!P->free_list && grow_slots() < 0)
		return NULL;
	q = P->free_list;
	P->free_list = q->hnext;
	q->hnext = NULL;
	if (++P->gen == 0)
		P->gen = 1;
	q->id = (uint64_t)P->gen << 16 | dq_slot(q);
	P->inflight++;
	return q;
}

static int dq_set_msg(struct dq *q, const uint8_t *p, size_t len)
{
	uint8_t *m = q->ibuf;

	if (len > DQ_INLINE && !(m = malloc(len)))
		return -ENOMEM;
	if (q->msg && q->msg != q->ibuf)
		free(q->msg);
	memcpy(m, p, len);
	q->msg = m;
	q->len = len;
	return 0;
}

/* ---- timers ----------------------------------------------------------------------------- */

static void timeout_arm(struct dq *q, uint64_t now)
{
	ne_list_remove(&q->tmlink);
	q->deadline = now + timeout_usec();
	ne_list_append(&P->timeouts, &q->tmlink);
	timer_want(q->deadline);
}

/* One timer for everything: armed for the earliest deadline wanted; when it fires, every list
 * is walked from its head (deadlines in a list only grow, each list has one duration). */
static void timer_want(uint64_t at)
{
	int enabled = SD_EVENT_OFF;

	sd_event_source_get_enabled(P->timer, &enabled);
	if (enabled != SD_EVENT_OFF && P->timer_at <= at)
		return;
	P->timer_at = at;
	sd_event_source_set_time(P->timer, at);
	sd_event_source_set_enabled(P->timer, SD_EVENT_ONESHOT);
}

/* The current try failed (timed out, or its TCP connection failed): the next server in turn,
 * or SERVFAIL after the configured attempts. */
static void next_try(struct dq *q, bool timed_out)
{
	unsigned attempts = opt_or(P->d->opt.dns_attempts, 3);
	uint8_t prev = q->cur;

	if (timed_out)
		P->c.timeouts++;
	if (++q->tries >= attempts || q->n_servers == 0) {
		dq_servfail(q);
		return;
	}
	P->c.retries++;
	q->cur = (uint8_t)(q->tries % q->n_servers);
	if (q->cur != prev)
		P->c.failovers++;
	dq_send(q);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	uint64_t now = ne_now_usec(), next = UINT64_MAX;
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &P->timeouts) {
		struct dq *q = ne_container_of(pos, struct dq, tmlink);

		if (q->deadline > now) {
			next = q->deadline;
			break;
		}
		next_try(q, true);
	}
	ne_list_for_each(pos, tmp, &P->tclients) {
		struct tclient *tc = ne_container_of(pos, struct tclient, link);

		if (tc->deadline > now) {
			next = NE_MIN(next, tc->deadline);
			break;
		}
		if (tc->inflight) {
			tclient_activity(tc); /* busy, not idle: its answers are on their way */
			continue;
		}
		P->c.tcp_idle_closed++;
		tclient_close(tc);
	}
	flush_all();
	/* Re-walk for the earliest deadline: expiries above may have re-armed queries. */
	if (!ne_list_empty(&P->timeouts))
		next = NE_MIN(next, ne_container_of(P->timeouts.next, struct dq, tmlink)->deadline);
	if (!ne_list_empty(&P->tclients))
		next = NE_MIN(next, ne_container_of(P->tclients.next, struct tclient, link)->deadline);
	if (P->on)
		next = NE_MIN(next, now + STUB_CHECK_USEC);
	if (P->draining) {
		uint64_t age = now - P->drain_start;

		if (age >= DRAIN_MAX_USEC ||
		    (age >= DRAIN_MIN_USEC && P->inflight == 0 && ne_list_empty(&P->tclients))) {
			intercept_off();
			daemon_apply_ruleset(P->d);
		} else {
			next = NE_MIN(next, now + (age < DRAIN_MIN_USEC ? DRAIN_MIN_USEC - age : 500000));
		}
	}
	if (P->on && now - P->stub_checked >= STUB_CHECK_USEC)
		dnsproxy_reconfigure(P->d);
	if (next != UINT64_MAX) {
		P->timer_at = next;
		sd_event_source_set_time(P->timer, next);
		sd_event_source_set_enabled(P->timer, SD_EVENT_ONESHOT);
	}
	(void)s;
	(void)usec;
	(void)ud;
	return 0;
}

/* ---- sockets ---------------------------------------------------------------------------- */

static int sock_mark(int fd)
{
	uint32_t mark = DNS_MARK_EXEMPT;

	return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ? ne_negerrno() : 0;
}

static void sock_bufsize(int fd, int opt_force, int opt, int size)
{
	if (setsockopt(fd, SOL_SOCKET, opt_force, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size));
}

static void loopback(int family, uint16_t port, union sa *a)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		a->in.sin_family = AF_INET;
		a->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a->in.sin_port = htons(port);
	} else {
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_addr = in6addr_loopback;
		a->in6.sin6_port = htons(port);
	}
}

/* A transparent listener on 127.0.0.1:PORT or [::1]:PORT (TPROXY delivers to it). */
static int listener_open(int family, int type, uint16_t port)
{
	union sa ss;
	int fd, one = 1, r;
	bool v6 = family == AF_INET6;

	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ne_negerrno();
	loopback(family, port, &ss);
	if ((v6 && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
	    (type == SOCK_DGRAM && setsockopt(fd, v6 ? SOL_IPV6 : SOL_IP,
					      v6 ? IPV6_RECVORIGDSTADDR : IP_RECVORIGDSTADDR, &one, sizeof(one)) < 0) ||
	    sock_mark(fd) < 0 || bind(fd, &ss.sa, sa_len(&ss)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 512) < 0)) {
		r = ne_negerrno();
		close(fd);
		return r;
	}
	if (type == SOCK_DGRAM)
		sock_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF, 4 << 20);
	return fd;
}

static int raw_open(int family)
{
	int fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW), r;

	if (fd < 0)
		return ne_negerrno();
	r = sock_mark(fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	sock_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF, 4 << 20);
	return fd;
}

/* ---- replies to UDP clients (raw sockets) -------------------------------------------------- */

static uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void reply_flush(int fi)
{
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	size_t n = P->n_replies[fi], i, done = 0;

	if (!n)
		return;
	for (i = 0; i < n; i++) {
		struct reply *r = &P->replies[fi][i];

		iov[i] = (struct iovec){ r->pkt, r->len };
		mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &r->to, .msg_namelen = sa_len(&r->to),
						       .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	while (done < n) {
		int k = sendmmsg(P->raw[fi], mm + done, (unsigned)(n - done), 0);

		if (k <= 0) {
			P->c.send_errors += n - done;
			break;
		}
		done += (size_t)k;
	}
	P->n_replies[fi] = 0;
}

/* Queues msg as a UDP datagram from `from` (the address the client asked) to `to`. */
static void reply_udp(const union sa *from, const union sa *to, const uint8_t *msg, size_t len)
{
	int fi = fam_idx(to->sa.sa_family);
	struct reply *r;
	struct udphdr *u;
	uint32_t sum;

	if (P->raw[fi] < 0 || len > RX_BUF || from->sa.sa_family != to->sa.sa_family) {
		P->c.send_errors++;
		return;
	}
	if (P->n_replies[fi] == BATCH)
		reply_flush(fi);
	r = &P->replies[fi][P->n_replies[fi]++];
	r->to = *to;
	if (fi == 0) {
		struct iphdr *ip = (struct iphdr *)r->pkt;
		const struct sockaddr_in *f = &from->in, *t = &to->in;

		r->to.in.sin_port = 0;
		*ip = (struct iphdr){ .ihl = 5, .version = 4, .ttl = 64, .protocol = IPPROTO_UDP,
				      .tot_len = htons((uint16_t)(20 + 8 + len)),
				      .saddr = f->sin_addr.s_addr, .daddr = t->sin_addr.s_addr };
		u = (struct udphdr *)(r->pkt + 20);
		*u = (struct udphdr){ .source = f->sin_port, .dest = t->sin_port, .len = htons((uint16_t)(8 + len)) };
		memcpy(r->pkt + 28, msg, len);
		sum = csum_add(0, &ip->saddr, 8);
		r->len = 28 + len;
	} else {
		struct ip6_hdr *ip = (struct ip6_hdr *)r->pkt;
		const struct sockaddr_in6 *f = &from->in6, *t = &to->in6;

		r->to.in6.sin6_port = 0;
		memset(ip, 0, sizeof(*ip));
		ip->ip6_flow = htonl(6u << 28);
		ip->ip6_plen = htons((uint16_t)(8 + len));
		ip->ip6_nxt = IPPROTO_UDP;
		ip->ip6_hlim = 64;
		ip->ip6_src = f->sin6_addr;
		ip->ip6_dst = t->sin6_addr;
		u = (struct udphdr *)(r->pkt + 40);
		*u = (struct udphdr){ .source = f->sin6_port, .dest = t->sin6_port, .len = htons((uint16_t)(8 + len)) };
		memcpy(r->pkt + 48, msg, len);
		sum = csum_add(0, &ip->ip6_src, 32);
		r->len = 48 + len;
	}
	sum += IPPROTO_UDP + (uint32_t)(8 + len);
	sum = csum_add(sum, u, 8 + len);
	u->check = htons(csum_fold(sum));
	if (!u->check)
		u->check = 0xffff;
}

/* ---- TCP clients ---------------------------------------------------------------------------- */

static void tclient_events(struct tclient *tc)
{
	uint32_t ev = 0;

	if (tc->inflight < TCP_PIPELINE && tc->wlen - tc->woff < TCP_WBUF_MAX)
		ev |= EPOLLIN;
	if (tc->wlen > tc->woff)
		ev |= EPOLLOUT;
	if (ev != tc->events) {
		sd_event_source_set_io_events(tc->src, ev);
		sd_event_source_set_enabled(tc->src, ev ? SD_EVENT_ON : SD_EVENT_OFF);
		tc->events = ev;
	}
}

static void tclient_activity(struct tclient *tc)
{
	ne_list_remove(&tc->link);
	tc->deadline = ne_now_usec() + (uint64_t)opt_or(P->d->opt.dns_tcp_idle_ms, 10000) * 1000;
	ne_list_append(&P->tclients, &tc->link);
	timer_want(tc->deadline);
}

static void tclient_close(struct tclient *tc)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &tc->queries) {
		P->c.cancelled++;
		dq_finish(ne_container_of(pos, struct dq, tlink));
	}
	ne_list_remove(&tc->link);
	sd_event_source_disable_unref(tc->src);
	close(tc->fd);
	if (tc->msg != tc->ibuf)
		free(tc->msg);
	free(tc->wbuf);
	free(tc);
	P->n_tclients--;
}

/* Writes what it can now; returns -EPIPE when the client is gone. */
static int tclient_write(struct tclient *tc)
{
	while (tc->woff < tc->wlen) {
		ssize_t n = send(tc->fd, tc->wbuf + tc->woff, tc->wlen - tc->woff, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -EPIPE;
		tc->woff += (size_t)n;
	}
	tc->woff = tc->wlen = 0;
	return 0;
}

static void tclient_send(struct tclient *tc, const uint8_t *msg, size_t len)
{
	size_t need = tc->wlen + 2 + len;

	if (need > tc->wcap) {
		size_t cap = NE_MAX(need, tc->wcap * 2);
		uint8_t *b = realloc(tc->wbuf, cap);

		if (!b) {
			P->c.send_errors++;
			return;
		}
		tc->wbuf = b;
		tc->wcap = cap;
	}
	put16(tc->wbuf + tc->wlen, (uint16_t)len);
	memcpy(tc->wbuf + tc->wlen + 2, msg, len);
	tc->wlen = need;
	tclient_activity(tc);
	/* The connection is closed on the next event when the peer is gone. */
	(void)tclient_write(tc);
	tclient_events(tc);
}

/* ---- answering ---------------------------------------------------------------------------- */

/* Sends msg (client's id already set) to q's client. */
static void deliver_raw(struct dq *q, const uint8_t *msg, size_t len)
{
	if (q->proto == IPPROTO_TCP) {
		if (q->tc)
			tclient_send(q->tc, msg, len);
	} else {
		reply_udp(&q->server, &q->client, msg, len);
	}
}

/* An answer with a parsed copy in *am: truncated for UDP clients as they asked. */
static void deliver(struct dq *q, uint8_t *msg, size_t len, const struct dns_msg *am)
{
	int n;

	if (q->proto == IPPROTO_UDP && len > q->udp_limit) {
		n = dns_truncate(am, q->udp_limit, TRUNC, sizeof(TRUNC));
		if (n < 0) {
			P->c.send_errors++;
			return;
		}
		put16(TRUNC, q->client_id);
		deliver_raw(q, TRUNC, (size_t)n);
		return;
	}
	deliver_raw(q, msg, len);
}

/* Re-parses q's query into QM (it parsed when it came in; the id may have changed). */
static int parse_query(struct dq *q)
{
	return dns_parse(q->msg, q->len, &QM);
}

static void dq_rcode(struct dq *q, uint8_t rcode)
{
	int n = -EBADMSG;

	if (parse_query(q) == 0)
		n = dns_answer_rcode(&QM, rcode, OUT, sizeof(OUT));
	if (n >= 12) {
		put16(OUT, q->client_id);
		deliver_raw(q, OUT, (size_t)n);
	}
	dq_finish(q);
}

static void dq_servfail(struct dq *q)
{
	P->c.servfail++;
	dq_rcode(q, DNS_RCODE_SERVFAIL);
}

/* Only while a filter is enabled: nothing else reads the name cache, and the filter's own
 * snooping is off too then. */
static void learn(struct dq *q, const struct dns_msg *am)
{
	if (!filter_active(P->d))
		return;
	if (q->has_proc) {
		PROC.pid = q->pid;
		PROC.start_time = q->start_time;
	}
	filter_learn_answer(P->d, q->has_proc ? &PROC : NULL, am);
}

static void cache_store(const struct dns_msg *qm, const uint8_t *a, size_t len, const struct dns_msg *am);
static bool name_plain_at12(const uint8_t *p, size_t len, const uint8_t *key, size_t klen);

/* An accepted answer (msg, parsed as *am, matching q's query parsed as QM): learn it, cache
 * it, offer it to the provider, send it. msg may be changed in place. */
static void dq_answer(struct dq *q, uint8_t *msg, size_t len, const struct dns_msg *am, bool upstream)
{
	put16(msg, q->client_id);
	learn(q, am);
	if (upstream && !q->provider)
		cache_store(&QM, msg, len, am);
	if (upstream && q->provider) {
		int r = dnsprov_response(P->d, q->id, msg, len);

		if (r == 1) {
			uint8_t *copy = malloc(len);

			if (!copy) {
				dq_servfail(q);
				return;
			}
			memcpy(copy, msg, len);
			q->resp = copy;
			q->resp_len = len;
			q->st = DQ_RESPONSE;
			ne_list_remove(&q->tmlink);
			return;
		}
	}
	P->c.answered++;
	deliver(q, msg, len, am);
	dq_finish(q);
}

/* ---- upstream UDP ------------------------------------------------------------------------- */

static void usock_free(struct usock *us)
{
	if (!us)
		return;
	sd_event_source_disable_unref(us->src);
	if (us->fd >= 0)
		close(us->fd);
	ne_list_remove(&us->link);
	free(us);
}

static void usock_unref(struct usock *us)
{
	if (--us->refs == 0 && us->retired)
		usock_free(us);
}

static int on_upstream(sd_event_source *s, int fd, uint32_t revents, void *ud);

static int usock_new(int family, struct usock **ret)
{
	union sa ss = { .sa.sa_family = (sa_family_t)family };
	struct usock *us = calloc(1, sizeof(*us));
	int r;

	if (!us)
		return -ENOMEM;
	ne_list_init(&us->link);
	us->family = family;
	us->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* Port 0: the kernel picks a random free ephemeral port. */
	if (us->fd < 0 || sock_mark(us->fd) < 0 || bind(us->fd, &ss.sa, sa_len(&ss)) < 0) {
		r = ne_negerrno();
		usock_free(us);
		return r;
	}
	sock_bufsize(us->fd, SO_RCVBUFFORCE, SO_RCVBUF, 4 << 20);
	r = sd_event_add_io(P->d->event, &us->src, us->fd, EPOLLIN, on_upstream, us);
	if (r < 0) {
		usock_free(us);
		return r;
	}
	*ret = us;
	return 0;
}

/* The pool socket for the next query: one socket takes POOL_SWITCH queries in a row (so a
 * batch goes out in one sendmmsg), and is replaced after POOL_ROTATE. */
static struct usock *pool_pick(int family)
{
	int fi = fam_idx(family);
	unsigned i = P->pool_cur[fi];
	struct usock **slot;

	if (++P->pool_uses[fi] >= POOL_SWITCH) {
		P->pool_uses[fi] = 0;
		i = P->pool_cur[fi] = (i + 1) % POOL_SOCKS;
	}
	slot = &P->pool[fi][i];
	if (*slot && (*slot)->sent >= POOL_ROTATE) {
		(*slot)->retired = true;
		if ((*slot)->refs == 0)
			usock_free(*slot);
		else
			ne_list_append(&P->retired, &(*slot)->link);
		*slot = NULL;
	}
	if (!*slot && usock_new(family, slot) < 0)
		return NULL;
	return *slot;
}

static void fwd_flush(void)
{
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	size_t i = 0, j, n;

	while (i < P->n_fwd) {
		struct usock *us = P->fwd[i].us;

		size_t k = 0;

		for (n = 0; i + n < P->n_fwd && P->fwd[i + n].us == us; n++) {
			struct dq *q = P->fwd[i + n].q;

			if (!q)
				continue; /* finished before it went out */
			iov[k] = (struct iovec){ q->msg, q->len };
			mm[k] = (struct mmsghdr){ .msg_hdr = { .msg_name = &q->servers[q->cur].sa,
							       .msg_namelen = sa_len(&q->servers[q->cur]),
							       .msg_iov = &iov[k], .msg_iovlen = 1 } };
			k++;
		}
		for (j = 0; j < k;) {
			int sent = sendmmsg(us->fd, mm + j, (unsigned)(k - j), 0);

			if (sent <= 0) {
				/* Not sent: the timeout retries it. */
				P->c.send_errors += k - j;
				break;
			}
			j += (size_t)sent;
		}
		i += n;
	}
	P->n_fwd = 0;
}

static void flush_all(void)
{
	fwd_flush();
	reply_flush(0);
	reply_flush(1);
}

static void udp_send(struct dq *q)
{
	const union sa *srv = &q->servers[q->cur];

	if (!q->us) {
		q->us = pool_pick(srv->sa.sa_family);
		if (!q->us) {
			dq_servfail(q);
			return;
		}
		q->us->refs++;
		q->us->sent++;
		id_register(q);
		put16(q->msg, q->up_id);
	} else if (q->us->family != srv->sa.sa_family) {
		/* Failover to a server of the other family: a socket of that family, a new id. */
		id_unregister(q);
		usock_unref(q->us);
		q->us = NULL;
		udp_send(q);
		return;
	}
	q->st = DQ_UDP;
	q->asked |= (uint8_t)(1u << q->cur);
	if (P->n_fwd == BATCH)
		fwd_flush();
	P->fwd[P->n_fwd++] = (struct fwd){ q->us, q };
}

/* ---- upstream TCP --------------------------------------------------------------------------- */

static void utcp_free(struct utcp *ut)
{
	if (!ut)
		return;
	sd_event_source_disable_unref(ut->src);
	if (ut->fd >= 0)
		close(ut->fd);
	free(ut->msg);
	free(ut);
}

static int on_utcp(sd_event_source *s, int fd, uint32_t revents, void *ud);

static int utcp_open(struct dq *q)
{
	const union sa *srv = &q->servers[q->cur];
	struct utcp *ut = calloc(1, sizeof(*ut));
	int r;

	if (!ut)
		return -ENOMEM;
	ut->fd = socket(srv->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ut->fd < 0 || sock_mark(ut->fd) < 0 ||
	    (connect(ut->fd, &srv->sa, sa_len(srv)) < 0 && errno != EINPROGRESS)) {
		r = ne_negerrno();
		utcp_free(ut);
		return r;
	}
	r = sd_event_add_io(P->d->event, &ut->src, ut->fd, EPOLLOUT, on_utcp, q);
	if (r < 0) {
		utcp_free(ut);
		return r;
	}
	q->ut = ut;
	return 0;
}

static void tcp_send(struct dq *q)
{
	utcp_free(q->ut);
	q->ut = NULL;
	if (!q->up_id)
		q->up_id = random16();
	put16(q->msg, q->up_id);
	q->st = DQ_TCP;
	if (utcp_open(q) < 0)
		P->c.send_errors++; /* the timeout moves on to the next try */
}

/* (Re)sends q to servers[cur] with the protocol its client used (UDP, or TCP after TC). */
static void dq_send(struct dq *q)
{
	timeout_arm(q, ne_now_usec());
	if (q->st == DQ_TCP || (q->proto == IPPROTO_TCP && q->st != DQ_UDP))
		tcp_send(q);
	else
		udp_send(q);
}

/* Checks an answer for q: parses into AM, matches against QM. */
static int answer_check(struct dq *q, const uint8_t *a, size_t len)
{
	if (dns_parse(a, len, &AM) < 0) {
		P->c.malformed_answer++;
		return -EBADMSG;
	}
	if (parse_query(q) < 0 || !dns_response_matches(&QM, &AM)) {
		P->c.mismatch++;
		return -EBADMSG;
	}
	return 0;
}

/* The try over TCP failed: next server at once (still within the attempts). */
static void tcp_failed(struct dq *q)
{
	utcp_free(q->ut);
	q->ut = NULL;
	ne_list_remove(&q->tmlink);
	next_try(q, false);
}

static void tcp_answer(struct dq *q, struct utcp *ut)
{
	if (get16(ut->msg) != q->up_id) {
		P->c.wrong_id++;
		tcp_failed(q);
		return;
	}
	if (answer_check(q, ut->msg, ut->mlen) < 0) {
		tcp_failed(q);
		return;
	}
	q->ut = NULL;
	dq_answer(q, ut->msg, ut->mlen, &AM, true);
	utcp_free(ut);
}

static int utcp_write(struct dq *q, struct utcp *ut)
{
	uint8_t hdr[2];
	struct iovec iov[2];
	ssize_t n;
	int err = 0;
	socklen_t el = sizeof(err);

	if (!ut->connected) {
		if (getsockopt(ut->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
			return -ECONNREFUSED;
		ut->connected = true;
	}
	put16(hdr, (uint16_t)q->len);
	iov[0] = (struct iovec){ hdr + NE_MIN(ut->woff, 2), 2 - NE_MIN(ut->woff, 2) };
	iov[1] = (struct iovec){ q->msg + (ut->woff > 2 ? ut->woff - 2 : 0), q->len - (ut->woff > 2 ? ut->woff - 2 : 0) };
	n = writev(ut->fd, iov, 2);
	if (n < 0)
		return errno == EAGAIN ? 0 : -EPIPE;
	ut->woff += (size_t)n;
	if (ut->woff == q->len + 2) {
		ut->sent = true;
		sd_event_source_set_io_events(ut->src, EPOLLIN);
	}
	return 0;
}

/* Reads the 2-byte length, then the message. 1 when complete. */
static int utcp_read(struct utcp *ut)
{
	ssize_t n;

	if (ut->hgot < 2) {
		n = read(ut->fd, ut->hdr + ut->hgot, 2 - ut->hgot);
		if (n <= 0)
			return n < 0 && errno == EAGAIN ? 0 : -EPIPE;
		ut->hgot += (size_t)n;
		if (ut->hgot < 2)
			return 0;
		ut->mlen = get16(ut->hdr);
		if (ut->mlen < 12 || !(ut->msg = malloc(ut->mlen)))
			return -EBADMSG;
	}
	n = read(ut->fd, ut->msg + ut->mgot, ut->mlen - ut->mgot);
	if (n <= 0)
		return n < 0 && errno == EAGAIN ? 0 : -EPIPE;
	ut->mgot += (size_t)n;
	return ut->mgot == ut->mlen ? 1 : 0;
}

static int on_utcp(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct dq *q = ud;
	struct utcp *ut = q->ut;
	int r = 0;

	if (!ut->sent)
		r = utcp_write(q, ut);
	else
		r = utcp_read(ut);
	if (r < 0) {
		if (r == -EBADMSG)
			P->c.malformed_answer++;
		tcp_failed(q);
	} else if (r == 1) {
		tcp_answer(q, ut);
	}
	flush_all();
	(void)s;
	(void)fd;
	(void)revents;
	return 0;
}

/* ---- answers from upstream UDP ---------------------------------------------------------------- */

static bool asked_server(const struct dq *q, const union sa *from)
{
	for (unsigned i = 0; i < q->n_servers; i++)
		if ((q->asked & (1u << i)) && sa_equal(&q->servers[i], from))
			return true;
	return false;
}

static void upstream_datagram(struct usock *us, uint8_t *a, size_t len, bool trunc,
			      const struct sockaddr_storage *ss)
{
	union sa from;
	struct dq *q;

	sa_from(&from, ss);
	if (len < 12) {
		P->c.malformed_answer++;
		return;
	}
	q = id_find(get16(a));
	if (!q || q->us != us || q->st != DQ_UDP) {
		P->c.wrong_id++;
		return;
	}
	if (!asked_server(q, &from)) {
		P->c.wrong_source++;
		return;
	}
	if (trunc || (a[2] & 0x02)) {
		/* TC (or larger than we read): the same server over TCP (RFC 7766 §5). */
		for (uint8_t i = 0; i < q->n_servers; i++)
			if (sa_equal(&q->servers[i], &from))
				q->cur = i;
		P->c.tcp_fallbacks++;
		id_unregister(q);
		usock_unref(q->us);
		q->us = NULL;
		q->st = DQ_TCP;
		dq_send(q);
		return;
	}
	if (answer_check(q, a, len) < 0)
		return;
	dq_answer(q, a, len, &AM, true);
}

static void rx_prepare(struct rxbatch *rx, bool cmsg)
{
	for (size_t i = 0; i < BATCH; i++) {
		rx->iov[i] = (struct iovec){ rx->buf[i], RX_BUF };
		rx->mm[i] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = &rx->from[i], .msg_namelen = sizeof(rx->from[i]),
			.msg_iov = &rx->iov[i], .msg_iovlen = 1,
			.msg_control = cmsg ? rx->cbuf[i] : NULL, .msg_controllen = cmsg ? sizeof(rx->cbuf[i]) : 0 } };
	}
}

static int on_upstream(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct usock *us = ud;
	struct rxbatch *rx = P->rx;
	int n;

	us->refs++; /* answers below may drop the last query's reference */
	for (int rounds = 0; rounds < 4; rounds++) {
		rx_prepare(rx, false);
		n = recvmmsg(fd, rx->mm, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++)
			upstream_datagram(us, rx->buf[i], rx->mm[i].msg_len,
					  rx->mm[i].msg_hdr.msg_flags & MSG_TRUNC, &rx->from[i]);
		flush_all();
		if (n < BATCH)
			break;
	}
	usock_unref(us);
	(void)s;
	(void)revents;
	return 0;
}

/* ---- the answer cache ------------------------------------------------------------------------- */

/* Key: canonical qname, qtype, qclass, DO and CD (answers differ with them). */
static int cache_key(const struct dns_msg *m, uint8_t *key, size_t *ret_len)
{
	const struct dns_rr *q = &m->rr[0];
	uint8_t flags = m->h.cd ? 1 : 0;
	int n = dns_name_canonical(m, q->name_off, key, DNS_NAME_MAX);

	if (n < 0)
		return n;
	for (size_t i = 1; i < m->n_rr; i++)
		if (m->rr[i].type == DNS_TYPE_OPT && (m->rr[i].ttl & 0x8000))
			flags |= 2;
	put16(key + n, q->type);
	put16(key + n + 2, q->class);
	key[n + 4] = flags;
	*ret_len = (size_t)n + 5;
	return 0;
}

static uint64_t cache_hash(const uint8_t *key, size_t len)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, key, len, P->ckey);
	memcpy(&v, h, sizeof(v));
	return v;
}

static size_t centry_size(const struct centry *e)
{
	return sizeof(*e) + e->klen + e->alen;
}

static void cache_unlink(struct centry *e)
{
	struct centry **pp = &P->cbuckets[e->hash % P->n_cbuckets];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	ne_list_remove(&e->lru);
	P->cache_bytes -= centry_size(e);
	P->cache_entries--;
	free(e);
}

static struct centry *cache_find(const uint8_t *key, size_t klen, uint64_t h)
{
	struct centry *e;

	for (e = P->cbuckets[h % P->n_cbuckets]; e; e = e->hnext)
		if (e->hash == h && e->klen == klen && !memcmp(e->data, key, klen))
			return e;
	return NULL;
}

static void cache_store(const struct dns_msg *qm, const uint8_t *a, size_t len, const struct dns_msg *am)
{
	uint8_t key[DNS_NAME_MAX + 5];
	size_t klen, limit = P->d->opt.dns_cache_bytes;
	uint32_t ttl;
	struct centry *e;
	uint64_t h, now;

	if (!P->cbuckets || am->h.tc || (am->h.rcode != DNS_RCODE_NOERROR && am->h.rcode != DNS_RCODE_NXDOMAIN))
		return;
	ttl = dns_min_ttl(am);
	if (ttl == 0 || ttl == UINT32_MAX || cache_key(qm, key, &klen) < 0)
		return;
	/* The answer's question must be the key's name byte for byte (case aside): a hit
	 * copies the asker's question bytes over it. */
	if (!name_plain_at12(a, len, key, klen - 5))
		return;
	if (sizeof(*e) + klen + len > limit / 8)
		return;
	h = cache_hash(key, klen);
	if ((e = cache_find(key, klen, h)))
		cache_unlink(e);
	e = malloc(sizeof(*e) + klen + len);
	if (!e)
		return;
	now = ne_now_usec();
	*e = (struct centry){ .hash = h, .stored_usec = now, .klen = (uint16_t)klen, .alen = (uint16_t)len,
			      .expires_usec = now + (uint64_t)NE_MIN(ttl, CACHE_TTL_MAX) * 1000000 };
	memcpy(e->data, key, klen);
	memcpy(e->data + klen, a, len);
	e->hnext = P->cbuckets[h % P->n_cbuckets];
	P->cbuckets[h % P->n_cbuckets] = e;
	ne_list_append(&P->cache_lru, &e->lru);
	P->cache_bytes += centry_size(e);
	P->cache_entries++;
	P->c.cache_stored++;
	while (P->cache_bytes > limit && !ne_list_empty(&P->cache_lru)) {
		P->c.cache_evictions++;
		cache_unlink(ne_container_of(P->cache_lru.next, struct centry, lru));
	}
}

/* Whether the name at offset 12 of p is written out in full and is key (case aside). */
static bool name_plain_at12(const uint8_t *p, size_t len, const uint8_t *key, size_t klen)
{
	if (len < 12 + klen)
		return false;
	for (size_t i = 0; i < klen; i++)
		if (((p[12 + i] >= 'A' && p[12 + i] <= 'Z') ? p[12 + i] + 32 : p[12 + i]) != key[i])
			return false;
	return true;
}

/* Answers qm (parsed as QM, raw q) from the cache into OUT; the length or -ENOENT. */
static int cache_lookup(const uint8_t *q, const struct dns_msg *qm)
{
	uint8_t key[DNS_NAME_MAX + 5];
	size_t klen, i;
	struct centry *e;
	uint64_t h, now = ne_now_usec();
	uint32_t age;

	if (cache_key(qm, key, &klen) < 0)
		return -ENOENT;
	h = cache_hash(key, klen);
	e = cache_find(key, klen, h);
	if (!e || e->expires_usec <= now) {
		if (e)
			cache_unlink(e);
		P->c.cache_misses++;
		return -ENOENT;
	}
	ne_list_remove(&e->lru);
	ne_list_append(&P->cache_lru, &e->lru);
	memcpy(OUT, e->data + e->klen, e->alen);
	memcpy(OUT, q, 2);                       /* the asker's id */
	if (name_plain_at12(q, qm->len, key, klen - 5))
		memcpy(OUT + 12, q + 12, klen - 5); /* and its question's case (0x20) */
	if (dns_parse(OUT, e->alen, &AM) < 0)
		return -ENOENT;
	age = (uint32_t)((now - e->stored_usec) / 1000000);
	for (i = 0; i < AM.n_rr; i++) {
		const struct dns_rr *rr = &AM.rr[i];
		uint8_t *t = OUT + rr->rdata_off - 6;

		if (rr->section == DNS_SEC_QUESTION || rr->type == DNS_TYPE_OPT)
			continue;
		uint32_t ttl = rr->ttl > age ? rr->ttl - age : 0;

		put16(t, (uint16_t)(ttl >> 16));
		put16(t + 2, (uint16_t)ttl);
	}
	/* The TTL fields changed under AM's records; re-parse so that learners see the new ones. */
	if (dns_parse(OUT, e->alen, &AM) < 0)
		return -ENOENT;
	P->c.cache_hits++;
	return e->alen;
}

static void cache_clear(void)
{
	while (!ne_list_empty(&P->cache_lru))
		cache_unlink(ne_container_of(P->cache_lru.next, struct centry, lru));
}

/* ---- queries from clients ----------------------------------------------------------------------- */

/* Answers a query that never became a slot (errors before routing, cache hits). */
static void answer_direct(uint8_t proto, struct tclient *tc, const union sa *client,
			  const union sa *server, const uint8_t *msg, size_t len)
{
	if (proto == IPPROTO_TCP)
		tclient_send(tc, msg, len);
	else
		reply_udp(server, client, msg, len);
}

static void reject(uint8_t proto, struct tclient *tc, const union sa *client,
		   const union sa *server, const struct dns_msg *qm, uint8_t rcode)
{
	int n = dns_answer_rcode(qm, rcode, OUT, sizeof(OUT));

	if (n >= 12)
		answer_direct(proto, tc, client, server, OUT, (size_t)n);
}

static void attribute(struct dq *q)
{
	struct pi_tuple t = { .family = q->client.sa.sa_family, .proto = q->proto };
	struct pi_socket sock;

	if (t.family == AF_INET) {
		t.local.v4 = q->client.in.sin_addr;
		t.remote.v4 = q->server.in.sin_addr;
	} else {
		t.local.v6 = q->client.in6.sin6_addr;
		t.remote.v6 = q->server.in6.sin6_addr;
	}
	t.local_port = sa_port(&q->client);
	t.remote_port = sa_port(&q->server);
	if (!P->pi && procinfo_new(&P->pi) < 0)
		return;
	if (procinfo_lookup(P->pi, &t, false, &sock, &PROC) == 0) {
		q->has_proc = true;
		q->pid = PROC.pid;
		q->start_time = PROC.start_time;
	}
}

/* Routes q by its name (QM parsed) or by a verdict's target; sends it. */
static void dq_route(struct dq *q, const struct dns_route *r)
{
	if (!r || r->n_servers == 0) {
		P->c.no_route++;
		dq_servfail(q);
		return;
	}
	q->n_servers = (uint8_t)NE_MIN(r->n_servers, (size_t)DNSROUTE_SERVERS_MAX);
	for (size_t i = 0; i < q->n_servers; i++)
		sa_from(&q->servers[i], &r->servers[i]);
	q->cur = q->tries = q->asked = 0;
	P->c.forwarded++;
	dq_send(q);
}

/* parsed: QM already holds q's query (the hot path parsed it a moment ago). */
static void dq_route_by_name(struct dq *q, bool parsed)
{
	char name[DNS_NAME_TEXT_MAX];

	if ((!parsed && parse_query(q) < 0) || dns_name_text(&QM, QM.rr[0].name_off, name, sizeof(name)) < 0) {
		dq_servfail(q);
		return;
	}
	dq_route(q, dnsroutes_lookup(P->d->dns_routes, name));
}

static void offer_provider(struct dq *q)
{
	struct dnsq_view v = { .id = q->id, .protocol = q->proto, .msg = q->msg, .len = q->len,
			       .parsed = &QM };
	int r;

	sa_to(&v.client, &q->client);
	sa_to(&v.server, &q->server);
	if (q->has_proc) {
		v.has_proc = true;
		v.proc = &PROC;
		v.has_uid = true;
		v.uid = PROC.uid;
	}
	r = dnsprov_query(P->d, &v);
	if (r == 1) {
		P->c.provider_queries++;
		q->provider = true;
		q->st = DQ_PROVIDER;
		return;
	}
	if (r == -ECONNREFUSED) {
		dq_servfail(q);
		return;
	}
	dq_route_by_name(q, false);
}

/* A parsed, well-formed query (QM): cache, slot, attribution, provider or routes. */
static void query_accept(uint8_t proto, struct tclient *tc, const union sa *client,
			 const union sa *server, const uint8_t *msg, size_t len)
{
	bool provider = dnsprov_enabled(P->d);
	struct dq *q;
	int n;

	if (P->cbuckets && !provider && (n = cache_lookup(msg, &QM)) > 0) {
		struct dq tmp = { .proto = proto, .tc = tc, .client = *client, .server = *server,
				  .client_id = get16(msg), .udp_limit = (uint16_t)dns_udp_limit(&QM) };

		learn(&tmp, &AM);
		P->c.answered++;
		deliver(&tmp, OUT, (size_t)n, &AM);
		return;
	}
	q = dq_alloc();
	if (!q || dq_set_msg(q, msg, len) < 0) {
		if (q)
			dq_finish(q);
		P->c.overload++;
		reject(proto, tc, client, server, &QM, DNS_RCODE_SERVFAIL);
		return;
	}
	q->proto = proto;
	q->client = *client;
	q->server = *server;
	q->client_id = get16(msg);
	q->udp_limit = (uint16_t)dns_udp_limit(&QM);
	if (tc) {
		q->tc = tc;
		ne_list_append(&tc->queries, &q->tlink);
		tc->inflight++;
	}
	if (provider || filter_active(P->d))
		attribute(q);
	if (provider)
		offer_provider(q);
	else
		dq_route_by_name(q, true);
}

/* Every message from a client goes through here, in the order DNS practice checks it. */
static void client_message(uint8_t proto, struct tclient *tc, const union sa *client,
			   const union sa *server, const uint8_t *msg, size_t len)
{
	int n;

	if (proto == IPPROTO_TCP)
		P->c.queries_tcp++;
	else
		P->c.queries_udp++;
	if (len < 12) {
		P->c.dropped_short++;
		return;
	}
	if (msg[2] & 0x80) {
		P->c.dropped_response++; /* never answer an answer: no loops, no reflection */
		return;
	}
	if (dns_parse(msg, len, &QM) < 0) {
		P->c.formerr++;
		n = dns_answer_formerr_raw(msg, len, OUT, sizeof(OUT));
		if (n >= 12)
			answer_direct(proto, tc, client, server, OUT, (size_t)n);
		return;
	}
	if (QM.h.opcode != 0) {
		P->c.notimp++;
		reject(proto, tc, client, server, &QM, DNS_RCODE_NOTIMP);
		return;
	}
	if (QM.h.qdcount != 1) {
		P->c.formerr++;
		reject(proto, tc, client, server, &QM, DNS_RCODE_FORMERR);
		return;
	}
	query_accept(proto, tc, client, server, msg, len);
}

/* ---- the UDP listeners ------------------------------------------------------------------------- */

static bool orig_dst(struct msghdr *mh, union sa *ret)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in))) {
			memset(ret, 0, sizeof(*ret));
			memcpy(ret, CMSG_DATA(c), sizeof(struct sockaddr_in));
			return true;
		}
		if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR &&
		    c->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in6))) {
			memset(ret, 0, sizeof(*ret));
			memcpy(ret, CMSG_DATA(c), sizeof(struct sockaddr_in6));
			return true;
		}
	}
	return false;
}

static int on_udp_listener(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct rxbatch *rx = P->rx;
	union sa server, client;
	int n;

	for (int rounds = 0; rounds < 4; rounds++) {
		rx_prepare(rx, true);
		n = recvmmsg(fd, rx->mm, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct msghdr *mh = &rx->mm[i].msg_hdr;

			if (mh->msg_flags & MSG_TRUNC) {
				P->c.dropped_oversized++;
				continue;
			}
			if (!orig_dst(mh, &server)) {
				P->c.dropped++;
				continue;
			}
			sa_from(&client, &rx->from[i]);
			client_message(IPPROTO_UDP, NULL, &client, &server, rx->buf[i], rx->mm[i].msg_len);
		}
		flush_all();
		if (n < BATCH)
			break;
	}
	(void)s;
	(void)revents;
	(void)ud;
	return 0;
}

/* ---- TCP clients: reading --------------------------------------------------------------------- */

/* Reads frames; returns -EPIPE when the connection must close. */
static int tclient_read(struct tclient *tc)
{
	for (int frames = 0; frames < TCP_PIPELINE && tc->inflight < TCP_PIPELINE; ) {
		ssize_t n;

		if (tc->hgot < 2) {
			n = read(tc->fd, tc->hdr + tc->hgot, 2 - tc->hgot);
			if (n <= 0)
				return n < 0 && errno == EAGAIN ? 0 : -EPIPE;
			tc->hgot += (size_t)n;
			if (tc->hgot < 2)
				continue;
			tc->mlen = get16(tc->hdr);
			tc->mgot = 0;
			if (tc->mlen == 0) {
				P->c.tcp_zero_frame++;
				return -EPIPE;
			}
			if (tc->mlen > TCP_QUERY_MAX) {
				P->c.tcp_oversized++;
				return -EPIPE;
			}
			if (tc->mlen > tc->mcap) {
				uint8_t *b = tc->msg == tc->ibuf ? malloc(tc->mlen) : realloc(tc->msg, tc->mlen);

				if (!b)
					return -EPIPE;
				tc->msg = b;
				tc->mcap = tc->mlen;
			}
		}
		n = read(tc->fd, tc->msg + tc->mgot, tc->mlen - tc->mgot);
		if (n <= 0)
			return n < 0 && errno == EAGAIN ? 0 : -EPIPE;
		tc->mgot += (size_t)n;
		if (tc->mgot < tc->mlen)
			continue;
		tc->hgot = 0;
		frames++;
		tclient_activity(tc);
		if (tc->mlen < 12) {
			/* No header to answer: RFC 7766 leaves closing as the answer to garbage. */
			P->c.tcp_short_frame++;
			P->c.dropped_short++;
			return -EPIPE;
		}
		client_message(IPPROTO_TCP, tc, &tc->peer, &tc->local, tc->msg, tc->mlen);
	}
	return 0;
}

static int on_tclient(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct tclient *tc = ud;
	int r = 0;

	if (revents & (EPOLLERR | EPOLLHUP) && !(revents & EPOLLIN))
		r = -EPIPE;
	if (r == 0 && (revents & EPOLLOUT))
		r = tclient_write(tc);
	if (r == 0 && (revents & EPOLLIN))
		r = tclient_read(tc);
	flush_all();
	if (r < 0)
		tclient_close(tc);
	else
		tclient_events(tc);
	(void)s;
	(void)fd;
	return 0;
}

static int on_tcp_listener(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	for (int i = 0; i < 64; i++) {
		union sa peer;
		socklen_t pl = sizeof(peer), ll;
		struct tclient *tc;
		int c = accept4(fd, &peer.sa, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0)
			break;
		if (P->n_tclients >= opt_or(P->d->opt.dns_max_tcp_clients, 256) || !(tc = calloc(1, sizeof(*tc)))) {
			P->c.tcp_refused++;
			close(c);
			continue;
		}
		tc->fd = c;
		tc->peer = peer;
		ll = sizeof(tc->local);
		/* TPROXY: the accepted socket's local address is where the client connected. */
		getsockname(c, &tc->local.sa, &ll);
		tc->msg = tc->ibuf;
		tc->mcap = sizeof(tc->ibuf);
		ne_list_init(&tc->queries);
		ne_list_init(&tc->link);
		if (sd_event_add_io(P->d->event, &tc->src, c, EPOLLIN, on_tclient, tc) < 0) {
			close(c);
			free(tc);
			continue;
		}
		tc->events = EPOLLIN;
		P->n_tclients++;
		P->c.tcp_accepted++;
		tclient_activity(tc);
	}
	(void)s;
	(void)revents;
	(void)ud;
	return 0;
}

/* ---- finishing a query ------------------------------------------------------------------------- */

static void dq_finish(struct dq *q)
{
	uint64_t id = q->id;
	bool provider = q->provider;

	for (size_t i = 0; i < P->n_fwd; i++)
		if (P->fwd[i].q == q)
			P->fwd[i].q = NULL;
	if (q->us) {
		id_unregister(q);
		usock_unref(q->us);
	}
	utcp_free(q->ut);
	ne_list_remove(&q->tmlink);
	if (q->tc) {
		ne_list_remove(&q->tlink);
		q->tc->inflight--;
		tclient_events(q->tc);
	}
	if (q->msg != q->ibuf)
		free(q->msg);
	free(q->resp);
	memset(q, 0, offsetof(struct dq, ibuf));
	ne_list_init(&q->tmlink);
	ne_list_init(&q->tlink);
	q->hnext = P->free_list;
	P->free_list = q;
	P->inflight--;
	if (provider)
		dnsprov_query_done(P->d, id);
}

/* ---- verdicts from the provider glue ----------------------------------------------------------- */

/* A provider's answer bytes for q: must parse and answer q's question. */
static int provider_answer(struct dq *q, const uint8_t *bytes, size_t len)
{
	uint8_t *a = OUT + 0;

	if (!bytes || len < 12 || len > DNS_MSG_MAX) {
		P->c.provider_bad++;
		dq_servfail(q);
		return -EBADMSG;
	}
	memmove(a, bytes, len);
	/* Forwarding is over for q: its query carries the client's id again, and so does a. */
	put16(q->msg, q->client_id);
	put16(a, q->client_id);
	if (dns_parse(a, len, &AM) < 0 || parse_query(q) < 0 || !dns_response_matches(&QM, &AM)) {
		P->c.provider_bad++;
		dq_servfail(q);
		return -EBADMSG;
	}
	P->c.provider_answers++;
	learn(q, &AM);
	P->c.answered++;
	deliver(q, a, len, &AM);
	dq_finish(q);
	return 0;
}

static int provider_forward(struct dq *q, const char *target, const uint8_t *bytes, size_t len)
{
	const struct dns_route *r;
	struct dns_route one;

	if (bytes) {
		struct dns_msg *m = &AM;

		if (len < 12 || dns_parse(bytes, len, m) < 0 || m->h.qr || m->h.qdcount != 1 ||
		    dq_set_msg(q, bytes, len) < 0) {
			P->c.provider_bad++;
			dq_servfail(q);
			return -EBADMSG;
		}
		/* The client's id stays the one answers carry back. */
	}
	if (!target || !target[0]) {
		dq_route_by_name(q, false);
		return 0;
	}
	r = dnsroutes_get(P->d->dns_routes, target);
	if (r && r->exempt)
		r = dnsroutes_get(P->d->dns_routes, "");
	if (!r) {
		memset(&one, 0, sizeof(one));
		if (dnsroutes_parse_server(target, &one.servers[0]) < 0) {
			P->c.provider_bad++;
			dq_servfail(q);
			return -EINVAL;
		}
		one.n_servers = 1;
		r = &one;
	}
	dq_route(q, r);
	return 0;
}

int dnsproxy_query_verdict(struct daemon *d, uint64_t id, enum dnsq_action a, const char *target,
			   const uint8_t *bytes, size_t len)
{
	struct dq *q = P ? dq_by_id(id) : NULL;
	int r = 0;

	if (!q || q->st != DQ_PROVIDER)
		return -ENOENT;
	switch (a) {
	case DNSQ_FORWARD:
		r = provider_forward(q, target, bytes, len);
		break;
	case DNSQ_ANSWER:
		r = provider_answer(q, bytes, len);
		break;
	case DNSQ_REFUSE:
		P->c.refused++;
		dq_rcode(q, DNS_RCODE_REFUSED);
		break;
	case DNSQ_DROP:
		P->c.dropped++;
		dq_finish(q);
		break;
	case DNSQ_SERVFAIL:
	default:
		dq_servfail(q);
		break;
	}
	flush_all();
	(void)d;
	return r;
}

int dnsproxy_response_verdict(struct daemon *d, uint64_t id, enum dnsr_action a, const uint8_t *bytes,
			      size_t len)
{
	struct dq *q = P ? dq_by_id(id) : NULL;
	int r = 0;

	if (!q || q->st != DQ_RESPONSE)
		return -ENOENT;
	switch (a) {
	case DNSR_PASS:
		if (dns_parse(q->resp, q->resp_len, &AM) == 0) {
			P->c.answered++;
			deliver(q, q->resp, q->resp_len, &AM);
		}
		dq_finish(q);
		break;
	case DNSR_REWRITE:
		r = provider_answer(q, bytes, len);
		break;
	case DNSR_DROP:
	default:
		P->c.dropped++;
		dq_finish(q);
		break;
	}
	flush_all();
	(void)d;
	return r;
}

/* ---- local stub resolver ------------------------------------------------------------------------ */

static bool is_loopback(const union sa *a)
{
	if (a->sa.sa_family == AF_INET)
		return (ntohl(a->in.sin_addr.s_addr) >> 24) == 127;
	return a->sa.sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&a->in6.sin6_addr);
}

/* The stub listening on srv (UDP): its cgroup, else its uid. 0 when a match was made. */
static int stub_match_for(const union sa *srv, struct dp_match *ret, char *desc, size_t dsize)
{
	struct pi_tuple t = { .family = srv->sa.sa_family, .proto = IPPROTO_UDP };
	char addr[64];
	struct pi_socket sock;
	int r;

	if (!P->pi && procinfo_new(&P->pi) < 0)
		return -ENOMEM;
	if (t.family == AF_INET) {
		t.local.v4 = srv->in.sin_addr;
		t.remote.v4.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		t.local.v6 = srv->in6.sin6_addr;
		t.remote.v6 = in6addr_loopback;
	}
	t.local_port = sa_port(srv);
	t.remote_port = 1;
	sa_text(srv, addr, sizeof(addr));
	r = procinfo_lookup(P->pi, &t, false, &sock, &PROC);
	if (r < 0) {
		snprintf(desc, dsize, "nothing listens on %s", addr);
		return r;
	}
	if (P->d->cgroup_mount[0] && cgroup_match(P->d->cgroup_mount, PROC.cgroup, ret) == 0) {
		snprintf(desc, dsize, "%s (pid %d) on %s, cgroup %s", PROC.exe, (int)PROC.pid, addr, PROC.cgroup);
		return 0;
	}
	if (sock.uid != 0) {
		*ret = (struct dp_match){ .kind = DP_MATCH_SKUID, .uid = sock.uid };
		snprintf(desc, dsize, "%s (pid %d) on %s, uid %u", PROC.exe, (int)PROC.pid, addr, sock.uid);
		return 0;
	}
	snprintf(desc, dsize, "%s (pid %d) on %s runs as root in the root cgroup", PROC.exe, (int)PROC.pid, addr);
	return -EPERM;
}

static bool match_same(const struct dp_match *a, const struct dp_match *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == DP_MATCH_SKUID)
		return a->uid == b->uid;
	return a->cgroup.level == b->cgroup.level && a->cgroup.id == b->cgroup.id;
}

/* Whether the exemption changed. */
static bool stub_refresh(void)
{
	const struct dns_route *def = P->d->dns_routes ? dnsroutes_lookup(P->d->dns_routes, "") : NULL;
	struct dp_match m;
	char desc[160] = "";
	bool has = false, changed;

	P->stub_checked = ne_now_usec();
	for (size_t i = 0; def && i < def->n_servers && !has; i++) {
		union sa srv;

		sa_from(&srv, &def->servers[i]);
		if (!is_loopback(&srv))
			continue;
		if (stub_match_for(&srv, &m, desc, sizeof(desc)) == 0)
			has = true;
		else if (strcmp(desc, P->stub_desc))
			log_warnx("dns: local resolver: %s: its own upstream queries will be proxied a second time",
				  desc);
	}
	changed = has != P->has_stub || (has && !match_same(&m, &P->stub));
	if (changed && has)
		log_info("dns: local stub resolver %s: its upstream queries are not intercepted", desc);
	P->has_stub = has;
	if (has)
		P->stub = m;
	ne_strscpy(P->stub_desc, desc, sizeof(P->stub_desc));
	return changed;
}

/* ---- nftables ------------------------------------------------------------------------------------ */

static int route_chain(struct daemon *d, struct dp_ruleset *rs, size_t ch, bool draining)
{
	const struct dp_action accept = { .kind = DP_ACTION_ACCEPT };
	const struct dp_action proxied = { .kind = DP_ACTION_CT_MARK_SET, .mark = DNS_CTMARK_PROXIED,
					   .mark_keep = PROXIED_KEEP };
	const struct dp_action divert = { .kind = DP_ACTION_META_MARK_SET, .mark = DNS_MARK_DIVERT,
					  .mark_keep = DIVERT_KEEP };
	struct dp_action a[2];
	struct dp_match m[3];
	static const uint8_t protos[] = { IPPROTO_UDP, IPPROTO_TCP };
	int r = 0;

	/* (1) netextd's own DNS sockets: never diverted; their flows are the proxy's. */
	m[0] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .mark = { DNS_MARK_EXEMPT, DNS_MARK_EXEMPT } };
	a[0] = proxied;
	a[1] = accept;
	r |= dp_ruleset_add(rs, ch, m, 1, a, 2);
	/* (2) extensions (a dns-proxy provider resolves for itself). */
	if (cgroup_exempt_match(d, &m[0]) == 0)
		r |= dp_ruleset_add(rs, ch, m, 1, &accept, 1);
	/* (3) the local stub resolver's own upstream queries. */
	if (P->has_stub) {
		m[0] = P->stub;
		r |= dp_ruleset_add(rs, ch, m, 1, &accept, 1);
	}
	/* (4) flows already diverted stay diverted (a TCP connection's later segments; while
	 * draining, a client's retry). */
	for (size_t i = 0; i < NE_ARRAY_SIZE(protos); i++) {
		m[0] = (struct dp_match){ .kind = DP_MATCH_CT_MARK, .mark = { DNS_CTMARK_PROXIED, DNS_CTMARK_PROXIED } };
		m[1] = (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = protos[i] };
		m[2] = (struct dp_match){ .kind = DP_MATCH_DPORT, .port = 53 };
		r |= dp_ruleset_add(rs, ch, m, 3, &divert, 1);
	}
	/* (5) new flows to port 53: every UDP datagram is a whole query, so a UDP flow that began
	 * before interception is diverted from its next query on; a TCP connection only from its
	 * SYN (one that began before keeps going to its server, undisturbed). */
	for (size_t i = 0; !draining && i < NE_ARRAY_SIZE(protos); i++) {
		size_t n = 0;

		m[n++] = (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = protos[i] };
		m[n++] = (struct dp_match){ .kind = DP_MATCH_DPORT, .port = 53 };
		if (protos[i] == IPPROTO_TCP)
			m[n++] = (struct dp_match){ .kind = DP_MATCH_CT_STATE, .ct_state = DP_CT_NEW };
		a[0] = divert;
		a[1] = proxied;
		r |= dp_ruleset_add(rs, ch, m, n, a, 2);
	}
	return r ? -E2BIG : 0;
}

static int tproxy_chain(struct dp_ruleset *rs, size_t ch, uint16_t port)
{
	static const uint8_t protos[] = { IPPROTO_UDP, IPPROTO_TCP };
	const struct dp_action accept = { .kind = DP_ACTION_ACCEPT };
	struct dp_match m[4];
	struct dp_action a[2];
	int r = 0;

	for (int f = 0; f < 2; f++)
		for (size_t i = 0; i < NE_ARRAY_SIZE(protos); i++) {
			m[0] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .mark = { DNS_MARK_DIVERT, DNS_MARK_DIVERT } };
			m[1] = (struct dp_match){ .kind = DP_MATCH_NFPROTO, .nfproto = f ? NFPROTO_IPV6 : NFPROTO_IPV4 };
			m[2] = (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = protos[i] };
			m[3] = (struct dp_match){ .kind = DP_MATCH_DPORT, .port = 53 };
			a[0] = (struct dp_action){ .kind = DP_ACTION_TPROXY,
						   .tproxy = { .family = f ? AF_INET6 : AF_INET, .port = port } };
			if (f)
				a[0].tproxy.v6 = in6addr_loopback;
			else
				a[0].tproxy.v4.s_addr = htonl(INADDR_LOOPBACK);
			a[1] = accept;
			r |= dp_ruleset_add(rs, ch, m, 4, a, 2);
		}
	return r ? -E2BIG : 0;
}

int dnsproxy_add_rules(struct daemon *d, struct dp_ruleset *rs)
{
	size_t route, tp;
	int r;

	if (!P || (!P->on && !P->draining))
		return 0;
	r = dp_ruleset_add_chain(rs, "dns_route", DP_CHAIN_ROUTE, DP_HOOK_OUTPUT, DP_PRIO_MANGLE, &route);
	if (r == 0)
		r = dp_ruleset_add_chain(rs, "dns_tproxy", DP_CHAIN_FILTER, DP_HOOK_PREROUTING, DP_PRIO_MANGLE, &tp);
	if (r == 0)
		r = route_chain(d, rs, route, !P->on);
	if (r == 0)
		r = tproxy_chain(rs, tp, (uint16_t)opt_or(d->opt.dns_port, DNS_PROXY_PORT_DEFAULT));
	return r;
}

/* ---- interception on and off --------------------------------------------------------------------- */

static int routes_set(bool add)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	int r = 0, e;

	for (size_t i = 0; i < 2; i++) {
		e = dp_route_fwmark_rule(P->rt, add, fams[i], DNS_MARK_DIVERT, DNS_MARK_DIVERT, P->table, P->table);
		if (e == 0)
			e = dp_route_local_default(P->rt, add, fams[i], P->table);
		if (e < 0 && !r)
			r = e;
	}
	P->routes_added = add && r == 0;
	return r;
}

static void listeners_close(void)
{
	struct ne_list *pos, *tmp;

	for (int f = 0; f < 2; f++) {
		sd_event_source_disable_unref(P->udp_src[f]);
		sd_event_source_disable_unref(P->tcp_src[f]);
		P->udp_src[f] = P->tcp_src[f] = NULL;
		ne_closep(&P->udp[f]);
		ne_closep(&P->tcp[f]);
	}
	ne_list_for_each(pos, tmp, &P->tclients)
		tclient_close(ne_container_of(pos, struct tclient, link));
}

static int listener_add(int f, int type, uint16_t port)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	int fd = listener_open(fams[f], type, port), r;
	bool udp = type == SOCK_DGRAM;

	if (fd < 0)
		return fd;
	r = sd_event_add_io(P->d->event, udp ? &P->udp_src[f] : &P->tcp_src[f], fd, EPOLLIN,
			    udp ? on_udp_listener : on_tcp_listener, NULL);
	if (r < 0) {
		close(fd);
		return r;
	}
	*(udp ? &P->udp[f] : &P->tcp[f]) = fd;
	return 0;
}

static int listeners_open(void)
{
	uint16_t port = (uint16_t)opt_or(P->d->opt.dns_port, DNS_PROXY_PORT_DEFAULT);
	static const int fams[] = { AF_INET, AF_INET6 };
	int r = 0;

	for (int f = 0; f < 2 && r == 0; f++) {
		if (P->raw[f] < 0) {
			r = raw_open(fams[f]);
			if (r >= 0) {
				P->raw[f] = r;
				r = 0;
			}
		}
		if (r == 0)
			r = listener_add(f, SOCK_DGRAM, port);
		if (r == 0)
			r = listener_add(f, SOCK_STREAM, port);
		if (r < 0 && f == 1) {
			/* A host without IPv6 (or without ::1) still gets IPv4 interception. */
			log_warnx("dns: no IPv6 listeners (%s): IPv6 DNS is not intercepted", strerror(-r));
			sd_event_source_disable_unref(P->udp_src[1]);
			P->udp_src[1] = NULL;
			ne_closep(&P->udp[1]);
			r = 0;
		}
	}
	if (r < 0)
		listeners_close();
	return r;
}

/* A packet tunnel's DNS servers without match domains own the default route: its queries
 * must reach them through the engine as well. */
static bool tunnel_default_route(struct daemon *d)
{
	const struct dns_route *r = dnsroutes_get(d->dns_routes, "");

	return r && !strncmp(r->source, "tunnel:", 7);
}

static bool want_intercept(struct daemon *d)
{
	const char *mode = d->opt.dns_intercept[0] ? d->opt.dns_intercept : "auto";

	if (d->opt.no_datapath || !d->nft || !strcmp(mode, "never"))
		return false;
	if (!strcmp(mode, "always"))
		return true;
	return (d->dns_routes && (dnsroutes_count_split(d->dns_routes) > 0 || tunnel_default_route(d))) ||
	       dnsprov_enabled(d);
}

static int intercept_on(void)
{
	int r = listeners_open();

	if (r < 0) {
		log_warnx("dns: cannot open the proxy's listeners on port %u: %s", P->d->opt.dns_port, strerror(-r));
		return r;
	}
	r = routes_set(true);
	if (r < 0) {
		log_warnx("dns: cannot add the policy rule and route of table %u: %s", P->table, strerror(-r));
		routes_set(false);
		listeners_close();
		return r;
	}
	P->on = true;
	stub_refresh();
	log_info("dns: intercepting DNS on port 53 (listeners on port %u, table %u)",
		 opt_or(P->d->opt.dns_port, DNS_PROXY_PORT_DEFAULT), P->table);
	return 0;
}

/* Stops diverting new flows; the listeners, the policy rule and the route stay until the
 * diverted flows are done (on_timer). */
static void intercept_drain(void)
{
	P->on = false;
	P->draining = true;
	P->drain_start = ne_now_usec();
	timer_want(P->drain_start + DRAIN_MIN_USEC);
	log_info("dns: interception off for new queries; draining those in flight");
}

static void intercept_off(void)
{
	int r = routes_set(false);

	if (r < 0)
		log_warnx("dns: cannot remove the policy rule and route of table %u: %s", P->table, strerror(-r));
	listeners_close();
	P->on = false;
	P->draining = false;
	P->has_stub = false;
	log_info("dns: interception off");
}

void dnsproxy_reconfigure(struct daemon *d)
{
	bool want, changed = false;

	if (!P)
		return;
	want = want_intercept(d);
	if (want && !P->on && P->draining) {
		P->draining = false; /* listeners, rule and route are still there */
		P->on = true;
		stub_refresh();
		log_info("dns: intercepting DNS again");
		changed = true;
	} else if (want && !P->on)
		changed = intercept_on() == 0;
	else if (!want && P->on) {
		intercept_drain();
		changed = true;
	} else if (P->on)
		changed = stub_refresh();
	if (changed) {
		daemon_apply_ruleset(d);
		if (P->on)
			timer_want(ne_now_usec() + STUB_CHECK_USEC);
	}
}

bool dnsproxy_intercepting(const struct daemon *d)
{
	(void)d;
	return P && P->on;
}

/* ---- start and stop ------------------------------------------------------------------------------- */

static int cache_init(void)
{
	size_t bytes = P->d->opt.dns_cache_bytes, n = 64;

	ne_list_init(&P->cache_lru);
	crypto_shorthash_keygen(P->ckey);
	if (!bytes)
		return 0;
	/* About one bucket per 256 bytes of answers, a power of two. */
	while (n < bytes / 256 && n < (1u << 20))
		n *= 2;
	P->cbuckets = calloc(n, sizeof(*P->cbuckets));
	if (!P->cbuckets)
		return -ENOMEM;
	P->n_cbuckets = n;
	return 0;
}

int dnsproxy_init(struct daemon *d)
{
	int r;

	P = calloc(1, sizeof(*P));
	if (!P)
		return -ENOMEM;
	P->d = d;
	for (int f = 0; f < 2; f++)
		P->udp[f] = P->tcp[f] = P->raw[f] = -1;
	ne_list_init(&P->retired);
	ne_list_init(&P->timeouts);
	ne_list_init(&P->tclients);
	P->table = opt_or(d->opt.dns_table, DNS_ROUTE_TABLE_DEFAULT);
	P->rx = malloc(sizeof(*P->rx));
	P->replies[0] = malloc(BATCH * sizeof(struct reply));
	P->replies[1] = malloc(BATCH * sizeof(struct reply));
	if (!P->rx || !P->replies[0] || !P->replies[1]) {
		r = -ENOMEM;
		goto fail;
	}
	r = cache_init();
	if (r == 0)
		r = sd_event_add_time(d->event, &P->timer, CLOCK_MONOTONIC, 0, 1000, on_timer, NULL);
	if (r < 0)
		goto fail;
	sd_event_source_set_enabled(P->timer, SD_EVENT_OFF);
	if (!d->opt.no_datapath && d->nft) {
		r = dp_route_open(&P->rt);
		if (r < 0)
			goto fail;
		/* A killed instance's rule and route. */
		r = dp_route_flush_table(P->rt, P->table);
		if (r < 0)
			log_warnx("dns: cannot flush table %u: %s", P->table, strerror(-r));
	}
	dnsproxy_reconfigure(d);
	return 0;
fail:
	dnsproxy_fini(d);
	return r;
}

void dnsproxy_fini(struct daemon *d)
{
	struct ne_list *pos, *tmp;

	if (!P)
		return;
	/* Queries still in flight get SERVFAIL now rather than silence. */
	for (size_t c = 0; c < P->n_slots / DQ_CHUNK; c++)
		for (size_t i = 0; i < DQ_CHUNK; i++)
			if (P->chunks[c][i].id)
				dq_servfail(&P->chunks[c][i]);
	flush_all();
	if (P->on || P->draining) {
		intercept_off();
		daemon_apply_ruleset(d);
	}
	if (P->rt)
		(void)dp_route_flush_table(P->rt, P->table);
	dp_route_close(P->rt);
	listeners_close();
	for (int f = 0; f < 2; f++) {
		ne_closep(&P->raw[f]);
		for (int i = 0; i < POOL_SOCKS; i++)
			usock_free(P->pool[f][i]);
	}
	ne_list_for_each(pos, tmp, &P->retired)
		usock_free(ne_container_of(pos, struct usock, link));
	if (P->cbuckets)
		cache_clear();
	free(P->cbuckets);
	for (size_t c = 0; c < P->n_slots / DQ_CHUNK; c++)
		free(P->chunks[c]);
	sd_event_source_disable_unref(P->timer);
	procinfo_free(P->pi);
	free(P->rx);
	free(P->replies[0]);
	free(P->replies[1]);
	free(P);
	P = NULL;
}

/* ---- status --------------------------------------------------------------------------------------- */

#define C(name) #name, (json_int_t)P->c.name

void *dnsproxy_status_json(struct daemon *d)
{
	json_t *counters, *more, *cache, *j;

	if (!P)
		return NULL;
	counters = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			     " s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			     C(queries_udp), C(queries_tcp), C(answered), C(forwarded), C(servfail),
			     C(formerr), C(dropped_short), C(dropped_response), C(notimp), C(refused),
			     C(no_route), C(timeouts), C(retries), C(failovers), C(tcp_fallbacks),
			     C(wrong_source), C(wrong_id), C(mismatch), C(malformed_answer), C(cancelled),
			     C(overload), C(dropped_oversized), C(dropped), C(send_errors));
	more = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			     C(tcp_accepted), C(tcp_idle_closed), C(tcp_refused), C(tcp_zero_frame),
			     C(tcp_oversized), C(tcp_short_frame), C(provider_queries), C(provider_answers),
			     C(provider_bad));
	json_object_update_missing(counters, more);
	json_decref(more);
	cache = json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "enabled", P->cbuckets != NULL,
			  "max_bytes", (json_int_t)d->opt.dns_cache_bytes, "bytes", (json_int_t)P->cache_bytes,
			  "entries", (json_int_t)P->cache_entries, C(cache_hits), C(cache_misses),
			  C(cache_evictions), C(cache_stored));
	j = json_pack("{s:b, s:i, s:i, s:I, s:I, s:b, s:s?, s:o, s:o}", "intercepting", P->on,
		      "port", (int)opt_or(d->opt.dns_port, DNS_PROXY_PORT_DEFAULT), "table", (int)P->table,
		      "in_flight", (json_int_t)P->inflight, "tcp_clients", (json_int_t)P->n_tclients,
		      "attribution", filter_active(d) || dnsprov_enabled(d),
		      "stub_resolver", P->has_stub ? P->stub_desc : NULL, "counters", counters, "cache", cache);
	if (j)
		json_object_set_new(j, "draining", json_boolean(P->draining));
	return j;
}
