/* The content filter engine (filter.h, docs/filter.md).
 *
 * Trust: packets are hostile (anyone can send us a first packet), so the flow table is keyed
 * with SipHash and bounded; provider frames come from foreign code and are checked (a verdict
 * for a flow that is not waiting for that very provider is ignored and counted, settings are
 * compiled by frules.c); everything a provider can delay is bounded by a deadline that ends
 * in the configuration's fail policy, never in a packet held forever.
 *
 * Datapath (all in our table, built by filter_add_rules):
 *   input, output (filter, priority 0):
 *     ct mark allow → accept; ct mark drop → drop          (decided flows stay in the kernel)
 *     packet mark allow → ct mark allow, accept             (our NF_REPEAT verdicts)
 *     packet mark drop → drop
 *     socket in netext's cgroup → accept                    (extensions are exempt)
 *     ct state new, tcp or udp → queue FILTER_QUEUE_FLOWS   (bypass when all fail open)
 *   input, before those: udp/tcp from port 53 → queue FILTER_QUEUE_DNS bypass (accepted at
 *     once; the copy feeds hostname learning).
 * A decision is an NF_REPEAT with the mark bits set, so the chain's own rules store it in the
 * conntrack entry (kernel-facts.md: REPEAT re-runs the chain; the queue rule skips marked
 * packets). */
#include "filter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <netext/filter.h>

#include "cgroup.h"
#include "ctevents.h"
#include "daemon.h"
#include "dns.h"
#include "dnsproxy.h"
#include "dnssnoop.h"
#include "dp_nfq.h"
#include "dp_nft.h"
#include "frules.h"
#include "list.h"
#include "log.h"
#include "namecache.h"
#include "procinfo.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#define FLOWS_MAX 16384          /* flows tracked; the oldest decided ones go first */
#define WAITING_MAX 4096         /* flows waiting for a verdict (pending or paused) */
#define PAUSED_TCP_MAX 1024      /* TCP flows a provider may keep paused */
#define UDP_PAUSE_USEC (10 * 1000000ULL) /* Apple's rule */
#define RETRANSMIT_USEC (10 * 1000000ULL) /* first-packet retries of a dropped flow */
#define HELD_PKTS 4              /* packets held per waiting flow (retransmits beyond: dropped) */
#define BUCKETS 16384            /* power of two */
#define VERDICT_TIMEOUT_MS_DEFAULT 2000
#define ORDER_DEFAULT 100
#define NAMECACHE_BYTES (4u << 20)
#define STATS_BATCH 256          /* flows counted per statistics tick and configuration */
#define CFG_SLOTS 32             /* enabled filter configurations at most */
#define GC_INTERVAL_USEC (30 * 1000000ULL)
#define GC_DROPPED_USEC (60 * 1000000ULL)  /* dropped flows have no conntrack entry to end */
#define GC_ALLOWED_USEC (300 * 1000000ULL) /* then checked: a lost DESTROY event */
#define GC_CHECKS 1024

enum flow_state { FLOW_PENDING, FLOW_PAUSED, FLOW_ALLOWED, FLOW_DROPPED };
static const char *const flow_state_names[] = { "pending", "paused", "allowed", "dropped" };

/* A flow from the local socket's point of view; memcmp-able (always zero-filled first). */
struct fkey {
	uint8_t version;   /* 4 or 6 */
	uint8_t proto;
	uint8_t direction; /* 1 outbound, 2 inbound */
	uint8_t pad;
	uint16_t local_port, remote_port;
	uint8_t local[16], remote[16];
};

struct fcfg {
	struct ne_list link;        /* in order */
	char name[NE_WIRE_NAME_MAX + 1];
	unsigned slot;              /* bit in flow->asked */
	int order;
	bool fail_open;
	unsigned timeout_ms;
	bool present, running;      /* provider sent START / has started */
	struct ext *ext;
	uint32_t handle;
	bool has_settings;
	struct frules rules;
	bool wants_details;         /* its rules, provider or reports use process or hostname */
	uint32_t report_flags, stats_ms;
	sd_event_source *stats_timer;
	struct ne_list asked;       /* flows waiting for this provider (deadline order) */
	struct ne_list paused;      /* paused UDP flows (deadline order), then TCP (no deadline) */
	unsigned n_paused_tcp;
	uint64_t n_asked, n_allowed, n_dropped, n_deadline, n_fail_policy, n_paused, n_bad_verdicts;
	bool seen;
};

struct flow {
	struct flow *knext, *inext; /* hash chains: by key, by id */
	struct ne_list link;        /* all flows, oldest first */
	struct ne_list wlink;       /* in a configuration's asked or paused list */
	struct fkey key;
	uint64_t id;
	enum flow_state state;
	struct fcfg *waiting;       /* the configuration that holds it, when pending or paused */
	bool sent;                  /* FLOW_NEW sent to waiting's provider */
	unsigned stage;             /* configurations passed so far */
	uint32_t asked;             /* slots of the providers asked about it */
	uint64_t deadline;          /* monotonic usec; 0: none */
	uint32_t pkt[HELD_PKTS], pkt_mark[HELD_PKTS];
	unsigned n_pkt;
	bool attributed, has_ids;
	int32_t pid, ppid;
	uint32_t uid, gid;
	uint64_t start_time;
	char *exe, *cmdline, *cgroup, *hostname; /* NULL when unknown */
	uint64_t created_usec, decided_usec;
	int64_t created_real;
	char decided_by[160];
	char allowed_by[96];        /* the last rule that allowed it, for decided_by */
};

struct filter {
	struct daemon *d;
	struct ne_list cfgs;        /* struct fcfg, in order */
	unsigned n_cfgs;
	bool any_fail_closed;
	struct dp_nfq *q_flows, *q_dns;
	sd_event_source *q_flows_src, *q_dns_src, *ct_src, *timer;
	struct ct_events *ct;
	sd_event_source *gc;
	struct procinfo *pi;
	struct namecache *names;
	struct dnssnoop *snoop;
	bool acct;
	struct flow *by_key[BUCKETS], *by_id[BUCKETS];
	struct ne_list flows;
	unsigned n_flows, n_waiting;
	uint64_t next_id;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
	struct ctl_req *followers[16];
	uint32_t cur_id;            /* the packet on_flow_packet is deciding, and its verdict */
	struct dp_verdict *cur_v;
	uint64_t n_new, n_evicted, n_held_dropped, n_unparsed, n_closed;
};

static struct filter *F; /* one engine per daemon */

static void flow_decide(struct flow *f, enum flow_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void flow_evaluate(struct flow *f);
static void timer_rearm(void);
static void follow_emit(const struct flow *f, const char *what, const struct ct_flow *counts);

/* --- flow table ---------------------------------------------------------------------------- */

static size_t bucket_key(const struct fkey *k)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, (const unsigned char *)k, sizeof(*k), F->hkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (BUCKETS - 1));
}

static size_t bucket_id(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 50) & (BUCKETS - 1);
}

static struct flow *flow_by_key(const struct fkey *k)
{
	struct flow *f;

	for (f = F->by_key[bucket_key(k)]; f; f = f->knext)
		if (!memcmp(&f->key, k, sizeof(*k)))
			return f;
	return NULL;
}

static struct flow *flow_by_id(uint64_t id)
{
	struct flow *f;

	for (f = F->by_id[bucket_id(id)]; f; f = f->inext)
		if (f->id == id)
			return f;
	return NULL;
}

static void unchain(struct flow **pp, struct flow *f, bool by_key)
{
	for (; *pp; pp = by_key ? &(*pp)->knext : &(*pp)->inext)
		if (*pp == f) {
			*pp = by_key ? f->knext : f->inext;
			return;
		}
}

static void flow_free(struct flow *f)
{
	unchain(&F->by_key[bucket_key(&f->key)], f, true);
	unchain(&F->by_id[bucket_id(f->id)], f, false);
	ne_list_remove(&f->link);
	ne_list_remove(&f->wlink);
	F->n_flows--;
	free(f->exe);
	free(f->cmdline);
	free(f->cgroup);
	free(f->hostname);
	free(f);
}

/* Makes room: the oldest decided flow goes (its end will not be reported). */
static bool flow_evict_one(void)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &F->flows) {
		struct flow *f = ne_container_of(pos, struct flow, link);

		if (f->state == FLOW_ALLOWED || f->state == FLOW_DROPPED) {
			flow_free(f);
			F->n_evicted++;
			return true;
		}
	}
	return false;
}

static struct flow *flow_new(const struct fkey *k)
{
	struct flow *f;
	size_t b;

	if (F->n_flows >= FLOWS_MAX && !flow_evict_one())
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->key = *k;
	f->id = ++F->next_id;
	f->pid = f->ppid = -1;
	f->created_usec = ne_now_usec();
	f->created_real = (int64_t)time(NULL);
	ne_list_init(&f->wlink);
	ne_list_append(&F->flows, &f->link);
	b = bucket_key(k);
	f->knext = F->by_key[b];
	F->by_key[b] = f;
	b = bucket_id(f->id);
	f->inext = F->by_id[b];
	F->by_id[b] = f;
	F->n_flows++;
	F->n_new++;
	return f;
}

/* --- packets ------------------------------------------------------------------------------- */

/* The 5-tuple of an IPv4/IPv6 packet, from the local socket's side. -EINVAL for what is not
 * a first fragment of TCP or UDP with its header in the capture. */
static int parse_key(const uint8_t *p, size_t len, bool outbound, struct fkey *k)
{
	const uint8_t *src, *dst, *l4;
	size_t hl, alen;
	uint8_t proto;

	memset(k, 0, sizeof(*k));
	if (len < 1)
		return -EINVAL;
	if (p[0] >> 4 == 4) {
		if (len < 20 || (hl = (size_t)(p[0] & 0xf) * 4) < 20 || hl > len)
			return -EINVAL;
		if (ntohs(*(const uint16_t *)(const void *)(p + 6)) & 0x1fff)
			return -EINVAL; /* not the first fragment */
		proto = p[9];
		src = p + 12, dst = p + 16, alen = 4, k->version = 4;
	} else if (p[0] >> 4 == 6) {
		if (len < 40)
			return -EINVAL;
		proto = p[6], hl = 40;
		src = p + 8, dst = p + 24, alen = 16, k->version = 6;
		/* Extension headers: hop-by-hop, routing, destination options (bounded walk). */
		for (int i = 0; i < 4 && (proto == 0 || proto == 43 || proto == 60); i++) {
			if (hl + 8 > len)
				return -EINVAL;
			proto = p[hl];
			hl += ((size_t)p[hl + 1] + 1) * 8;
		}
	} else
		return -EINVAL;
	if ((proto != IPPROTO_TCP && proto != IPPROTO_UDP) || hl + 4 > len)
		return -EINVAL;
	l4 = p + hl;
	k->proto = proto;
	k->direction = outbound ? 1 : 2;
	memcpy(k->local, outbound ? src : dst, alen);
	memcpy(k->remote, outbound ? dst : src, alen);
	k->local_port = ntohs(*(const uint16_t *)(const void *)(l4 + (outbound ? 0 : 2)));
	k->remote_port = ntohs(*(const uint16_t *)(const void *)(l4 + (outbound ? 2 : 0)));
	return 0;
}

static void pi_tuple_of(const struct fkey *k, struct pi_tuple *t)
{
	memset(t, 0, sizeof(*t));
	t->family = k->version == 6 ? AF_INET6 : AF_INET;
	t->proto = k->proto;
	memcpy(&t->local, k->local, k->version == 6 ? 16 : 4);
	memcpy(&t->remote, k->remote, k->version == 6 ? 16 : 4);
	t->local_port = k->local_port;
	t->remote_port = k->remote_port;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* No overlong forms, surrogates or code points past U+10FFFF (as jansson checks). */
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* A copy safe for the wire and for JSON: control characters and bytes that are not UTF-8
 * become '?' (a process can put anything in its argv or executable name). */
static char *dup_clean(const char *s)
{
	unsigned char *c;
	size_t i, n;

	if (!s || !*s)
		return NULL;
	c = (unsigned char *)strdup(s);
	for (i = 0; c && c[i]; i += n) {
		n = utf8_len(c + i);
		if (!n || c[i] < 0x20 || c[i] == 0x7f) {
			c[i] = '?';
			n = 1;
		}
	}
	return (char *)c;
}

static void flow_attribute(struct flow *f)
{
	struct pi_process proc;
	struct pi_socket sock = { 0 };
	struct pi_tuple t;
	struct nc_owner owner = { 0, 0 };
	char name[DNS_NAME_TEXT_MAX];
	int r;

	if (f->attributed)
		return;
	f->attributed = true;
	pi_tuple_of(&f->key, &t);
	r = procinfo_lookup(F->pi, &t, f->key.direction == 2, &sock, &proc);
	if (r == 0) {
		f->pid = proc.pid;
		f->ppid = proc.ppid;
		f->uid = proc.uid;
		f->gid = proc.gid;
		f->has_ids = true;
		f->start_time = proc.start_time;
		f->exe = dup_clean(proc.exe);
		f->cmdline = dup_clean(proc.cmdline);
		f->cgroup = dup_clean(proc.cgroup);
		owner.pid = proc.pid;
		owner.start_time = proc.start_time;
	} else if (r == -ENOENT && sock.inode) {
		f->uid = sock.uid; /* the socket's owner is known even when no process holds it */
		f->gid = (uint32_t)-1;
		f->has_ids = true;
	}
	if (namecache_lookup(F->names, &owner, t.family, f->key.remote, ne_now_usec() / 1000000, name,
			     sizeof(name)) == 0)
		f->hostname = dup_clean(name);
}

/* Without a process, the name any process most recently resolved to the address. */
static void flow_name_only(struct flow *f)
{
	struct nc_owner none = { 0, 0 };
	char name[DNS_NAME_TEXT_MAX];

	if (namecache_lookup(F->names, &none, f->key.version == 6 ? AF_INET6 : AF_INET, f->key.remote,
			     ne_now_usec() / 1000000, name, sizeof(name)) == 0)
		f->hostname = dup_clean(name);
}

/* Attribution costs a sock_diag lookup and maybe a /proc scan per flow: done only when a
 * rule, a provider, a report or a person watching (flows --follow) can use it. */
static bool needs_attribution(void)
{
	struct ne_list *pos, *tmp;
	size_t i;

	for (i = 0; i < NE_ARRAY_SIZE(F->followers); i++)
		if (F->followers[i])
			return true;
	ne_list_for_each(pos, tmp, &F->cfgs)
		if (ne_container_of(pos, struct fcfg, link)->wants_details)
			return true;
	return false;
}

static void verdict_for(uint32_t pkt_mark, enum flow_state st, struct dp_verdict *v)
{
	v->kind = DP_VERDICT_REPEAT;
	v->set_mark = true;
	v->mark = (pkt_mark & ~FILTER_MARK_MASK) | (st == FLOW_ALLOWED ? FILTER_MARK_ALLOW : FILTER_MARK_DROP);
}

static void on_flow_packet(struct dp_nfq *q, const struct dp_packet *p, struct dp_verdict *v, void *ud)
{
	bool outbound = p->hook == NF_INET_LOCAL_OUT;
	struct fkey k;
	struct flow *f;

	if (parse_key(p->payload, p->len, outbound, &k) < 0) {
		F->n_unparsed++; /* the queue rule only sends TCP and UDP: accept what we cannot read */
		return;
	}
	f = flow_by_key(&k);
	/* Only packets of new conntrack entries are queued. For a dropped flow (its entry was
	 * never confirmed) that is the first packet again, retransmitted: same verdict, for the
	 * span of the client's retries. An allowed flow's retransmits match its ct mark and never
	 * come here, so this is a new connection reusing the 5-tuple: decide it afresh. */
	if (f && f->state == FLOW_DROPPED && ne_now_usec() - f->decided_usec < RETRANSMIT_USEC) {
		verdict_for(p->mark, f->state, v);
		return;
	}
	if (f && (f->state == FLOW_ALLOWED || f->state == FLOW_DROPPED)) {
		follow_emit(f, "closed", NULL);
		flow_free(f);
		f = NULL;
	}
	if (f) {
		if (f->n_pkt >= HELD_PKTS) {
			F->n_held_dropped++;
			v->kind = DP_VERDICT_DROP;
			return;
		}
		f->pkt[f->n_pkt] = p->id;
		f->pkt_mark[f->n_pkt++] = p->mark;
		v->kind = DP_VERDICT_DEFER;
		return;
	}
	f = F->n_waiting < WAITING_MAX ? flow_new(&k) : NULL;
	if (!f) {
		/* Over every bound: the strictest policy of the enabled configurations. */
		v->kind = F->any_fail_closed ? DP_VERDICT_DROP : DP_VERDICT_ACCEPT;
		return;
	}
	f->pkt[0] = p->id;
	f->pkt_mark[0] = p->mark;
	f->n_pkt = 1;
	f->state = FLOW_PENDING;
	F->n_waiting++;
	v->kind = DP_VERDICT_DEFER;
	if (needs_attribution())
		flow_attribute(f);
	else
		flow_name_only(f);
	F->cur_id = p->id;
	F->cur_v = v;
	flow_evaluate(f);
	F->cur_v = NULL;
	(void)q;
	(void)ud;
}

/* --- reports and events -------------------------------------------------------------------- */

static uint8_t fbuf[NE_WIRE_MAX];

static struct ne_view view(const char *s)
{
	return (struct ne_view){ s ? s : "", s ? strnlen(s, NE_WIRE_STR_MAX) : 0 };
}

static void record_of(const struct flow *f, struct ne_flow_record *r)
{
	memset(r, 0, sizeof(*r));
	r->id = f->id;
	r->direction = f->key.direction;
	r->family = f->key.version;
	r->protocol = f->key.proto;
	memcpy(r->local_addr, f->key.local, 16);
	memcpy(r->remote_addr, f->key.remote, 16);
	r->local_port = f->key.local_port;
	r->remote_port = f->key.remote_port;
	r->hostname = view(f->hostname);
	r->pid = f->pid;
	r->ppid = f->ppid;
	r->has_ids = f->has_ids;
	r->uid = f->uid;
	r->gid = f->gid;
	r->start_time = f->start_time;
	r->executable = view(f->exe);
	r->cmdline = view(f->cmdline);
	r->cgroup = view(f->cgroup);
}

/* Sends without faulting the extension when its channel is full: a flow it cannot take
 * gets the fail policy instead (ext_send_raw returns -EAGAIN). */
static int cfg_send(struct fcfg *c, int len)
{
	if (len < 0)
		return len;
	if (!c->present || !c->ext)
		return -ENOTCONN;
	return ext_send_raw(c->ext, fbuf, (size_t)len, false);
}

/* verdict: NE_VERDICT_ALLOW / _DROP, or 0 for the flow's own (decided) state. */
static void report(struct fcfg *c, const struct flow *f, uint8_t event, const char *detail,
		   const struct ct_flow *counts, uint8_t verdict)
{
	struct ne_msg_flow_report m = { .provider = c->handle, .event = event };
	struct ne_wbuf b = { fbuf, 0, sizeof(fbuf), 0 };
	bool inbound = f->key.direction == 2;

	if (!c->running)
		return;
	m.verdict = verdict ? verdict : f->state == FLOW_ALLOWED ? NE_VERDICT_ALLOW : NE_VERDICT_DROP;
	if (counts && counts->has_counters) {
		/* The original direction is the flow's first packet: outbound for outbound flows. */
		m.bytes_out = inbound ? counts->reply_bytes : counts->orig_bytes;
		m.bytes_in = inbound ? counts->orig_bytes : counts->reply_bytes;
		m.packets_out = inbound ? counts->reply_packets : counts->orig_packets;
		m.packets_in = inbound ? counts->orig_packets : counts->reply_packets;
	}
	m.detail = view(detail);
	record_of(f, &m.flow);
	(void)cfg_send(c, ne_msg_flow_report_encode(&b, &m));
}

static json_t *flow_json(const struct flow *f, const struct ct_flow *counts);

static void follow_emit(const struct flow *f, const char *what, const struct ct_flow *counts)
{
	size_t i;

	for (i = 0; i < NE_ARRAY_SIZE(F->followers); i++) {
		struct ctl_req *req = F->followers[i];
		json_t *j;

		if (!req)
			continue;
		if (!ctl_req_waiting(req)) {
			ctl_req_unref(req);
			F->followers[i] = NULL;
			continue;
		}
		j = flow_json(f, counts);
		json_object_set_new(j, "event", json_string(what));
		ctl_req_event(req, "flow", j);
	}
}

/* --- decisions ----------------------------------------------------------------------------- */

static void waiting_leave(struct flow *f)
{
	if (f->waiting && f->state == FLOW_PAUSED && f->key.proto == IPPROTO_TCP)
		f->waiting->n_paused_tcp--;
	ne_list_remove(&f->wlink);
	f->waiting = NULL;
	f->deadline = 0;
}

static void flow_decide(struct flow *f, enum flow_state st, const char *fmt, ...)
{
	struct ne_list *pos, *tmp;
	struct dp_verdict v = { 0 };
	va_list ap;
	unsigned i;

	waiting_leave(f);
	if (f->state == FLOW_PENDING || f->state == FLOW_PAUSED)
		F->n_waiting--;
	f->state = st;
	f->decided_usec = ne_now_usec();
	va_start(ap, fmt);
	vsnprintf(f->decided_by, sizeof(f->decided_by), fmt, ap);
	va_end(ap);
	for (i = 0; i < f->n_pkt; i++) {
		verdict_for(f->pkt_mark[i], st, &v);
		/* The packet the queue callback is looking at is not deferred yet: answer it there. */
		if (F->cur_v && f->pkt[i] == F->cur_id)
			*F->cur_v = v;
		else
			(void)dp_nfq_verdict(F->q_flows, f->pkt[i], &v);
	}
	f->n_pkt = 0;
	ne_list_for_each(pos, tmp, &F->cfgs) {
		struct fcfg *c = ne_container_of(pos, struct fcfg, link);

		if ((f->asked & (1u << c->slot)) && (c->report_flags & NE_FILTER_REPORT_NEW_FLOWS))
			report(c, f, NE_FILTER_REPORT_NEW_FLOW, f->decided_by, NULL, 0);
		if (st == FLOW_ALLOWED)
			c->n_allowed += (f->asked >> c->slot) & 1;
		else
			c->n_dropped += (f->asked >> c->slot) & 1;
	}
	log_debug("filter: flow %llu %s (%s)", (unsigned long long)f->id, flow_state_names[st],
		  f->decided_by);
	follow_emit(f, "decided", NULL);
}

/* The configuration's fail policy for f; true when that decided the flow (dropped). */
static bool fail_policy(struct fcfg *c, struct flow *f, const char *why)
{
	c->n_fail_policy++;
	if (c->fail_open)
		return false;
	flow_decide(f, FLOW_DROPPED, "%s: %s, fail-closed", c->name, why);
	return true;
}

static struct fcfg *cfg_at(unsigned index)
{
	struct ne_list *pos, *tmp;
	unsigned i = 0;

	ne_list_for_each(pos, tmp, &F->cfgs)
		if (i++ == index)
			return ne_container_of(pos, struct fcfg, link);
	return NULL;
}

static int send_new_flow(struct fcfg *c, struct flow *f)
{
	struct ne_msg_flow_new m = { .provider = c->handle };
	struct ne_wbuf b = { fbuf, 0, sizeof(fbuf), 0 };

	record_of(f, &m.flow);
	return cfg_send(c, ne_msg_flow_new_encode(&b, &m));
}

/* Hands f to c's provider, or holds it until the provider has started. False when that
 * failed and the fail policy answered instead: the flow is dropped, or goes on (fail-open). */
static bool ask(struct fcfg *c, struct flow *f)
{
	if (!f->attributed)
		flow_attribute(f);
	f->waiting = c;
	f->asked |= 1u << c->slot;
	f->sent = false;
	f->deadline = ne_now_usec() + (uint64_t)c->timeout_ms * 1000;
	ne_list_append(&c->asked, &f->wlink);
	c->n_asked++;
	if (c->running) {
		if (send_new_flow(c, f) < 0) {
			waiting_leave(f);
			fail_policy(c, f, "extension not keeping up");
			return false;
		}
		f->sent = true;
	}
	timer_rearm();
	return true;
}

static void flow_evaluate(struct flow *f)
{
	/* Attribution happened before the first evaluation when any configuration can use it
	 * (needs_attribution), so the flow's details do not change between stages. */
	struct frule_flow ff = {
		.direction = f->key.direction, .protocol = f->key.proto,
		.family = f->key.version == 6 ? AF_INET6 : AF_INET,
		.local_port = f->key.local_port, .remote_port = f->key.remote_port,
		.hostname = f->hostname, .executable = f->exe, .cgroup = f->cgroup,
		.has_uid = f->has_ids, .uid = f->uid,
	};
	struct fcfg *c;
	int rule = -1;

	memcpy(ff.local, f->key.local, 16);
	memcpy(ff.remote, f->key.remote, 16);
	for (; (c = cfg_at(f->stage)); f->stage++) {
		enum frule_action a = FRULE_ASK;

		if (!c->present) {
			if (fail_policy(c, f, "extension not running"))
				return;
			continue;
		}
		if (c->has_settings)
			a = frules_match(&c->rules, &ff, &rule);
		if (a == FRULE_ALLOW && rule >= 0)
			snprintf(f->allowed_by, sizeof(f->allowed_by), "%s: rule %d", c->name, rule + 1);
		else if (a == FRULE_ALLOW)
			snprintf(f->allowed_by, sizeof(f->allowed_by), "%s: default action or loopback", c->name);
		if (a == FRULE_DROP) {
			flow_decide(f, FLOW_DROPPED, rule < 0 ? "%s: default action" : "%s: rule %d", c->name,
				    rule + 1);
			return;
		}
		if (a == FRULE_ASK && (ask(c, f) || f->state == FLOW_DROPPED))
			return;
	}
	flow_decide(f, FLOW_ALLOWED, "%s", !F->n_cfgs ? "no filter enabled" :
		    f->allowed_by[0] ? f->allowed_by : "allowed by every filter");
}

/* A verdict from a provider for a flow that waits for it. */
static void flow_verdict(struct fcfg *c, struct flow *f, const struct ne_msg_flow_verdict *m)
{
	switch (m->kind) {
	case NE_VERDICT_ALLOW:
		waiting_leave(f);
		snprintf(f->allowed_by, sizeof(f->allowed_by), "%s: provider", c->name);
		f->stage++;
		flow_evaluate(f);
		return;
	case NE_VERDICT_DROP:
		flow_decide(f, FLOW_DROPPED, "%s: provider", c->name);
		return;
	case NE_VERDICT_PAUSE:
		if (f->state == FLOW_PAUSED)
			return;
		if (f->key.proto == IPPROTO_TCP && c->n_paused_tcp >= PAUSED_TCP_MAX) {
			waiting_leave(f);
			if (!fail_policy(c, f, "too many paused flows")) {
				f->stage++;
				flow_evaluate(f);
			}
			return;
		}
		ne_list_remove(&f->wlink);
		f->state = FLOW_PAUSED;
		c->n_paused++;
		if (f->key.proto == IPPROTO_TCP) {
			f->deadline = 0;
			c->n_paused_tcp++;
		} else
			f->deadline = ne_now_usec() + UDP_PAUSE_USEC;
		ne_list_append(&c->paused, &f->wlink);
		follow_emit(f, "paused", NULL);
		timer_rearm();
		return;
	default:
		c->n_bad_verdicts++;
		log_warnx("filter %s: the provider answered flow %llu with a filter-data verdict, which "
			  "this netextd cannot deliver yet; applying the fail policy", c->name,
			  (unsigned long long)f->id);
		waiting_leave(f);
		if (!fail_policy(c, f, "unsupported verdict")) {
			f->stage++;
			flow_evaluate(f);
		}
	}
}

/* Ends a wait that nobody answered (deadline, pause limit, provider gone, a person). */
static void flow_resolve(struct fcfg *c, struct flow *f, bool allow, const char *detail)
{
	bool was_sent = f->sent;

	waiting_leave(f);
	if (was_sent)
		report(c, f, NE_FILTER_REPORT_RESOLVED, detail, NULL, allow ? NE_VERDICT_ALLOW : NE_VERDICT_DROP);
	if (!allow) {
		flow_decide(f, FLOW_DROPPED, "%s: %s", c->name, detail);
		return;
	}
	f->stage++;
	flow_evaluate(f);
}

static void flow_fail(struct fcfg *c, struct flow *f, const char *why)
{
	c->n_fail_policy++;
	flow_resolve(c, f, c->fail_open, why);
}

/* --- deadlines ----------------------------------------------------------------------------- */

static uint64_t head_deadline(struct ne_list *l)
{
	struct flow *f;

	if (ne_list_empty(l))
		return 0;
	f = ne_container_of(l->next, struct flow, wlink);
	return f->deadline;
}

static void expire_list(struct fcfg *c, struct ne_list *l, uint64_t now)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, l) {
		struct flow *f = ne_container_of(pos, struct flow, wlink);

		if (!f->deadline || f->deadline > now)
			break;
		if (f->state == FLOW_PAUSED) {
			flow_resolve(c, f, false, "udp-pause-limit");
		} else {
			c->n_deadline++;
			flow_fail(c, f, c->running ? "verdict-deadline" : "extension-not-started");
		}
	}
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	uint64_t now = ne_now_usec();
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &F->cfgs) {
		struct fcfg *c = ne_container_of(pos, struct fcfg, link);

		expire_list(c, &c->asked, now);
		expire_list(c, &c->paused, now);
	}
	timer_rearm();
	(void)dp_nfq_flush(F->q_flows);
	(void)s;
	(void)usec;
	(void)ud;
	return 0;
}

static void timer_rearm(void)
{
	struct ne_list *pos, *tmp;
	uint64_t next = 0, t;

	if (!F->timer)
		return;
	ne_list_for_each(pos, tmp, &F->cfgs) {
		struct fcfg *c = ne_container_of(pos, struct fcfg, link);

		if ((t = head_deadline(&c->asked)) && (!next || t < next))
			next = t;
		if ((t = head_deadline(&c->paused)) && (!next || t < next))
			next = t;
	}
	if (!next) {
		sd_event_source_set_enabled(F->timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(F->timer, next);
	sd_event_source_set_enabled(F->timer, SD_EVENT_ONESHOT);
}

/* --- configurations ------------------------------------------------------------------------ */

static struct fcfg *cfg_find(const char *name)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &F->cfgs) {
		struct fcfg *c = ne_container_of(pos, struct fcfg, link);

		if (!strcmp(c->name, name))
			return c;
	}
	return NULL;
}

/* Waiting flows of a provider that is gone get the fail policy. */
static void cfg_release_flows(struct fcfg *c, const char *why)
{
	struct ne_list *lists[2] = { &c->asked, &c->paused };
	struct ne_list *pos, *tmp;
	int i;

	for (i = 0; i < 2; i++)
		ne_list_for_each(pos, tmp, lists[i])
			flow_fail(c, ne_container_of(pos, struct flow, wlink), why);
	timer_rearm();
}

static void cfg_clear_settings(struct fcfg *c)
{
	frules_clear(&c->rules);
	c->has_settings = false;
	c->wants_details = true; /* without settings every flow goes to the provider */
	c->report_flags = 0;
	c->stats_ms = 0;
	sd_event_source_set_enabled(c->stats_timer, SD_EVENT_OFF);
}

static void cfg_free(struct fcfg *c)
{
	c->running = false;
	/* The configuration is gone: its waiting flows go on as if it had allowed them. */
	c->fail_open = true;
	cfg_release_flows(c, "configuration-disabled");
	cfg_clear_settings(c);
	sd_event_source_disable_unref(c->stats_timer);
	ne_list_remove(&c->link);
	F->n_cfgs--;
	free(c);
}

static int stats_tick(sd_event_source *s, uint64_t usec, void *ud);

static struct fcfg *cfg_new(const char *name)
{
	uint32_t used = 0;
	struct ne_list *pos, *tmp;
	struct fcfg *c;
	unsigned slot;

	ne_list_for_each(pos, tmp, &F->cfgs)
		used |= 1u << ne_container_of(pos, struct fcfg, link)->slot;
	for (slot = 0; slot < CFG_SLOTS && (used >> slot & 1); slot++)
		;
	if (slot == CFG_SLOTS)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	ne_strscpy(c->name, name, sizeof(c->name));
	c->slot = slot;
	ne_list_init(&c->asked);
	ne_list_init(&c->paused);
	ne_list_init(&c->link);
	if (sd_event_add_time(F->d->event, &c->stats_timer, CLOCK_MONOTONIC, 0, 0, stats_tick, c) >= 0)
		sd_event_source_set_enabled(c->stats_timer, SD_EVENT_OFF);
	ne_list_append(&F->cfgs, &c->link);
	F->n_cfgs++;
	return c;
}

static int load_cfg_cb(const struct store_config *sc, void *ud)
{
	struct fcfg *c;

	if (sc->provider_type != NE_PROVIDER_FILTER_DATA || !sc->enabled)
		return 0;
	c = cfg_find(sc->name);
	if (!c && !(c = cfg_new(sc->name))) {
		log_warnx("filter %s: more than %d filter configurations enabled; not filtering with it",
			  sc->name, CFG_SLOTS);
		return 0;
	}
	c->seen = true;
	c->fail_open = sc->fail_open;
	c->order = (int)store_config_option_uint(sc, "order", ORDER_DEFAULT, 0, 1000000);
	c->timeout_ms = store_config_option_uint(sc, "verdict_timeout_ms", VERDICT_TIMEOUT_MS_DEFAULT, 50, 600000);
	(void)ud;
	return 0;
}

static int cfg_cmp(const void *pa, const void *pb)
{
	const struct fcfg *a = *(const struct fcfg *const *)pa, *b = *(const struct fcfg *const *)pb;

	return a->order != b->order ? (a->order < b->order ? -1 : 1) : strcmp(a->name, b->name);
}

/* The documented order: the "order" option, then the name. */
static void cfgs_sort(void)
{
	struct fcfg *v[CFG_SLOTS];
	struct ne_list *pos, *tmp;
	size_t n = 0, i;

	ne_list_for_each(pos, tmp, &F->cfgs) {
		v[n++] = ne_container_of(pos, struct fcfg, link);
		ne_list_remove(pos);
	}
	qsort(v, n, sizeof(v[0]), cfg_cmp);
	for (i = 0; i < n; i++)
		ne_list_append(&F->cfgs, &v[i]->link);
}

static int queues_open(void);
static void queues_close(void);

void filter_reconfigure(struct daemon *d)
{
	struct ne_list *pos, *tmp;
	bool was_active, was_closed;

	if (!F)
		return;
	was_active = F->n_cfgs > 0;
	was_closed = F->any_fail_closed;
	ne_list_for_each(pos, tmp, &F->cfgs)
		ne_container_of(pos, struct fcfg, link)->seen = false;
	store_config_foreach(d->store, NULL, load_cfg_cb, NULL);
	ne_list_for_each(pos, tmp, &F->cfgs) {
		struct fcfg *c = ne_container_of(pos, struct fcfg, link);

		if (!c->seen)
			cfg_free(c);
	}
	cfgs_sort();
	F->any_fail_closed = false;
	ne_list_for_each(pos, tmp, &F->cfgs)
		F->any_fail_closed |= !ne_container_of(pos, struct fcfg, link)->fail_open;
	if (!d->nft) {
		if (F->n_cfgs)
			log_warnx("filter: netextd runs without a datapath (--no-datapath): filter "
				  "configurations have no effect");
		return;
	}
	if (F->n_cfgs && !was_active && queues_open() < 0)
		return;
	if ((F->n_cfgs > 0) != was_active || F->any_fail_closed != was_closed) {
		if (F->q_flows)
			(void)dp_nfq_set_fail_open(F->q_flows, !F->any_fail_closed);
		if (daemon_apply_ruleset(d) < 0)
			log_warnx("filter: could not update the nftables table");
	}
	if (!F->n_cfgs && was_active)
		queues_close();
}

/* --- providers ----------------------------------------------------------------------------- */

void filter_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle)
{
	struct fcfg *c;

	if (!F)
		return;
	if (!(c = cfg_find(config))) {
		filter_reconfigure(d);
		if (!(c = cfg_find(config)))
			return;
	}
	c->present = true;
	c->running = false;
	c->ext = e;
	c->handle = handle;
	cfg_clear_settings(c);
}

/* Flows that waited for the provider to start are sent now. */
void filter_provider_running(struct daemon *d, const char *config)
{
	struct fcfg *c = F ? cfg_find(config) : NULL;
	struct ne_list *pos, *tmp;

	if (!c || !c->present)
		return;
	c->running = true;
	log_info("filter %s: provider running (%s, order %d, verdict deadline %u ms)", c->name,
		 c->fail_open ? "fail-open" : "fail-closed", c->order, c->timeout_ms);
	ne_list_for_each(pos, tmp, &c->asked) {
		struct flow *f = ne_container_of(pos, struct flow, wlink);

		if (f->sent)
			continue;
		if (send_new_flow(c, f) < 0)
			flow_fail(c, f, "extension not keeping up");
		else
			f->sent = true;
	}
	(void)dp_nfq_flush(F->q_flows);
	(void)d;
}

void filter_provider_gone(struct daemon *d, const char *config, const char *why)
{
	struct fcfg *c = F ? cfg_find(config) : NULL;

	if (!c || !c->present)
		return;
	log_info("filter %s: provider gone (%s); new flows get the fail policy (%s)", c->name, why,
		 c->fail_open ? "open" : "closed");
	c->present = c->running = false;
	c->ext = NULL;
	cfg_release_flows(c, why);
	cfg_clear_settings(c);
	(void)dp_nfq_flush(F->q_flows);
	(void)d;
}

static struct ne_wire_rule wire_rules[NE_WIRE_RULES_MAX];

static void settings_result(struct fcfg *c, uint64_t id, int error, const char *msg)
{
	struct ne_msg_result m = { .error = error, .message = view(msg) };
	struct ne_wbuf b = { fbuf, 0, sizeof(fbuf), 0 };

	(void)cfg_send(c, ne_msg_result2_encode(&b, NE_MSG_RESULT, id, &m));
}

int filter_on_settings(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len)
{
	struct ne_msg_filter_settings m = { .rules = wire_rules };
	struct fcfg *c = F ? cfg_find(config) : NULL;
	struct frules fr;
	char err[256];

	if (ne_msg_filter_settings_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!c || !c->present) {
		if (c)
			settings_result(c, id, -ESHUTDOWN, "the configuration is not enabled");
		return 0;
	}
	if (frules_compile(m.rules, m.n_rules, m.default_action, &fr, err, sizeof(err)) < 0) {
		log_warnx("filter %s: settings refused: %s", c->name, err);
		settings_result(c, id, -EINVAL, err);
		return 0;
	}
	frules_clear(&c->rules);
	c->rules = fr;
	c->has_settings = true;
	c->report_flags = m.report_flags & 7;
	c->wants_details = fr.needs_process || fr.needs_hostname || fr.any_ask || c->report_flags;
	c->stats_ms = (c->report_flags & NE_FILTER_REPORT_STATISTICS) ? NE_MAX(m.stats_interval_ms, 1000u) : 0;
	if (c->stats_ms) {
		sd_event_source_set_time(c->stats_timer, ne_now_usec() + (uint64_t)c->stats_ms * 1000);
		sd_event_source_set_enabled(c->stats_timer, SD_EVENT_ON);
	} else
		sd_event_source_set_enabled(c->stats_timer, SD_EVENT_OFF);
	log_info("filter %s: settings applied: %zu rules, default %s", c->name, fr.n,
		 fr.default_action == FRULE_ALLOW ? "allow" : fr.default_action == FRULE_DROP ? "drop" : "filter-data");
	settings_result(c, id, 0, NULL);
	(void)d;
	return 0;
}

int filter_on_verdict(struct daemon *d, const char *config, uint64_t flow_id, const uint8_t *p, size_t len)
{
	struct ne_msg_flow_verdict m;
	struct fcfg *c = F ? cfg_find(config) : NULL;
	struct flow *f;

	if (ne_msg_flow_verdict_decode(p, len, &m) < 0 || m.kind == NE_VERDICT_NONE)
		return -EBADMSG;
	if (!c)
		return 0;
	f = flow_by_id(flow_id);
	/* Late (deadline passed, a person decided) or not this provider's to answer: ignored. */
	if (!f || f->waiting != c || !f->sent) {
		c->n_bad_verdicts++;
		return 0;
	}
	flow_verdict(c, f, &m);
	(void)dp_nfq_flush(F->q_flows);
	(void)d;
	return 0;
}

/* --- hostnames, flow ends, statistics ------------------------------------------------------- */

static struct dns_msg dns_scratch; /* 16 KiB: not on the stack */

/* A DNS answer reached a local socket: learn it under the process that owns that socket. */
static void on_dns_message(const struct pi_tuple *t, const uint8_t *msg, size_t len, void *ud)
{
	struct nc_owner owner = { 0, 0 };
	struct pi_process proc;
	struct pi_socket sock = { 0 };
	int r;

	if (dns_parse(msg, len, &dns_scratch) < 0)
		return;
	/* Only answers that reach a local socket teach anything: the queue rule takes replies
	 * of tracked connections only, and an answer nobody is waiting for is not learned. */
	r = procinfo_lookup(F->pi, t, false, &sock, &proc);
	if (r == 0) {
		owner.pid = proc.pid;
		owner.start_time = proc.start_time;
	} else if (!(r == -ENOENT && sock.inode))
		return;
	(void)namecache_learn(F->names, &owner, &dns_scratch, ne_now_usec() / 1000000);
	(void)ud;
}

bool filter_active(struct daemon *d)
{
	(void)d;
	return F && F->n_cfgs > 0;
}

void filter_learn_answer(struct daemon *d, const struct pi_process *proc, const struct dns_msg *m)
{
	struct nc_owner owner = { 0, 0 };

	if (!F || !F->names)
		return;
	if (proc) {
		owner.pid = proc->pid;
		owner.start_time = proc->start_time;
	}
	(void)namecache_learn(F->names, &owner, m, ne_now_usec() / 1000000);
	(void)d;
}

static void on_dns_packet(struct dp_nfq *q, const struct dp_packet *p, struct dp_verdict *v, void *ud)
{
	dnssnoop_packet(F->snoop, p->payload, p->len, ne_now_usec());
	(void)q;
	(void)v; /* always accepted: learning never delays an answer */
	(void)ud;
}

static struct flow *flow_of_ct(const struct ct_flow *cf)
{
	struct fkey k = { .version = cf->family == AF_INET6 ? 6 : 4, .proto = cf->proto };
	size_t alen = cf->family == AF_INET6 ? 16 : 4;
	struct flow *f;

	k.direction = 1;
	memcpy(k.local, &cf->src, alen);
	memcpy(k.remote, &cf->dst, alen);
	k.local_port = cf->sport;
	k.remote_port = cf->dport;
	if ((f = flow_by_key(&k)))
		return f;
	memset(k.local, 0, sizeof(k.local));
	memset(k.remote, 0, sizeof(k.remote));
	k.direction = 2;
	memcpy(k.local, &cf->dst, alen);
	memcpy(k.remote, &cf->src, alen);
	k.local_port = cf->dport;
	k.remote_port = cf->sport;
	return flow_by_key(&k);
}

static void on_ct_destroy(const struct ct_flow *cf, void *ud)
{
	struct flow *f = flow_of_ct(cf);
	struct ne_list *pos, *tmp;

	if (!f || f->state == FLOW_PENDING || f->state == FLOW_PAUSED)
		return;
	ne_list_for_each(pos, tmp, &F->cfgs) {
		struct fcfg *c = ne_container_of(pos, struct fcfg, link);

		if ((f->asked >> c->slot & 1) && (c->report_flags & NE_FILTER_REPORT_CLOSED))
			report(c, f, NE_FILTER_REPORT_FLOW_CLOSED, NULL, cf, 0);
	}
	follow_emit(f, "closed", cf);
	F->n_closed++;
	flow_free(f);
	(void)ud;
}

static void flow_ct_query(const struct flow *f, struct ct_flow *ret)
{
	struct ct_flow q = { .family = f->key.version == 6 ? AF_INET6 : AF_INET, .proto = f->key.proto };
	size_t alen = f->key.version == 6 ? 16 : 4;
	bool out = f->key.direction == 1;

	memcpy(&q.src, out ? f->key.local : f->key.remote, alen);
	memcpy(&q.dst, out ? f->key.remote : f->key.local, alen);
	q.sport = out ? f->key.local_port : f->key.remote_port;
	q.dport = out ? f->key.remote_port : f->key.local_port;
	if (ct_get(&q, ret) < 0)
		memset(ret, 0, sizeof(*ret));
}

static int stats_tick(sd_event_source *s, uint64_t usec, void *ud)
{
	struct fcfg *c = ud;
	struct ne_list *pos, *tmp;
	struct ct_flow cf;
	unsigned n = 0;

	/* Newest first: the flows a provider most likely still cares about. */
	for (pos = F->flows.prev, tmp = pos->prev; pos != &F->flows && n < STATS_BATCH; pos = tmp, tmp = pos->prev) {
		struct flow *f = ne_container_of(pos, struct flow, link);

		if (f->state != FLOW_ALLOWED || !(f->asked >> c->slot & 1))
			continue;
		flow_ct_query(f, &cf);
		report(c, f, NE_FILTER_REPORT_FLOW_STATISTICS, NULL, &cf, 0);
		n++;
	}
	sd_event_source_set_time(s, ne_now_usec() + (uint64_t)c->stats_ms * 1000);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	(void)usec;
	return 0;
}

/* Forgets decided flows whose end no event will report: dropped ones (their conntrack entry
 * was never confirmed) and allowed ones whose entry is gone (a DESTROY event lost to an
 * overrun). Oldest first, bounded per tick. */
static int gc_tick(sd_event_source *s, uint64_t usec, void *ud)
{
	uint64_t now = ne_now_usec();
	struct ne_list *pos, *tmp;
	struct ct_flow cf;
	unsigned checks = 0;

	ne_list_for_each(pos, tmp, &F->flows) {
		struct flow *f = ne_container_of(pos, struct flow, link);

		if (now - f->created_usec < GC_DROPPED_USEC || checks >= GC_CHECKS)
			break;
		if (f->state == FLOW_DROPPED) {
			flow_free(f);
		} else if (f->state == FLOW_ALLOWED && now - f->created_usec >= GC_ALLOWED_USEC) {
			checks++;
			flow_ct_query(f, &cf);
			if (!cf.family)
				flow_free(f);
		}
	}
	sd_event_source_set_time(s, now + GC_INTERVAL_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	(void)usec;
	(void)ud;
	return 0;
}

/* --- datapath ------------------------------------------------------------------------------ */

static int on_queue_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	int r = dp_nfq_dispatch(ud);

	if (r < 0)
		log_warnx("filter: queue read failed: %s", strerror(-r));
	(void)s;
	(void)fd;
	(void)revents;
	return 0;
}

static int on_ct_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	(void)ct_events_dispatch(F->ct);
	(void)dp_nfq_flush(F->q_flows);
	(void)s;
	(void)fd;
	(void)revents;
	(void)ud;
	return 0;
}

static int queue_open(uint16_t num, const struct dp_nfq_options *o, dp_nfq_cb cb, struct dp_nfq **ret_q,
		      sd_event_source **ret_src)
{
	int r = dp_nfq_open(ret_q, num, o, cb, NULL);

	if (r < 0) {
		log_warnx("filter: cannot bind NFQUEUE %u: %s", num, strerror(-r));
		return r;
	}
	r = sd_event_add_io(F->d->event, ret_src, dp_nfq_fd(*ret_q), EPOLLIN, on_queue_io, *ret_q);
	if (r < 0) {
		dp_nfq_close(*ret_q);
		*ret_q = NULL;
	}
	return r;
}

static int queues_open(void)
{
	struct dp_nfq_options flows = { .copy_range = 256, .queue_maxlen = WAITING_MAX * 2,
					.flags = DP_NFQ_F_GSO | (F->any_fail_closed ? 0 : DP_NFQ_F_FAIL_OPEN) };
	struct dp_nfq_options dns = { .copy_range = 0xffff, .queue_maxlen = 1024,
				      .flags = DP_NFQ_F_GSO | DP_NFQ_F_FAIL_OPEN };
	int r;

	r = queue_open(FILTER_QUEUE_FLOWS, &flows, on_flow_packet, &F->q_flows, &F->q_flows_src);
	if (r < 0)
		return r;
	if (queue_open(FILTER_QUEUE_DNS, &dns, on_dns_packet, &F->q_dns, &F->q_dns_src) < 0)
		log_warnx("filter: no hostname learning (DNS queue unavailable)");
	if (ct_acct_enable() == 0)
		F->acct = true;
	else
		log_warnx("filter: cannot enable conntrack accounting: flow byte counts will be 0");
	if (ct_events_open(&F->ct, FILTER_MARK_MASK, 0, on_ct_destroy, NULL) == 0)
		sd_event_add_io(F->d->event, &F->ct_src, ct_events_fd(F->ct), EPOLLIN, on_ct_io, NULL);
	else
		log_warnx("filter: no conntrack events: flow ends are not reported");
	log_info("filter: queues %d (flows) and %d (DNS answers) bound", FILTER_QUEUE_FLOWS,
		 FILTER_QUEUE_DNS);
	return 0;
}

static void queues_close(void)
{
	sd_event_source_disable_unref(F->q_flows_src);
	sd_event_source_disable_unref(F->q_dns_src);
	sd_event_source_disable_unref(F->ct_src);
	F->q_flows_src = F->q_dns_src = F->ct_src = NULL;
	dp_nfq_close(F->q_flows);
	dp_nfq_close(F->q_dns);
	F->q_flows = F->q_dns = NULL;
	ct_events_close(F->ct);
	F->ct = NULL;
	if (F->acct)
		(void)ct_acct_restore();
	F->acct = false;
}

static struct dp_match m_l4(uint8_t proto)
{
	return (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = proto };
}

static struct dp_match m_mark(enum dp_match_kind kind, uint32_t value)
{
	return (struct dp_match){ .kind = kind, .mark = { FILTER_MARK_MASK, value } };
}

static int chain_rules(struct daemon *d, struct dp_ruleset *rs, size_t ch, bool input)
{
	const struct dp_action accept = { .kind = DP_ACTION_ACCEPT }, drop = { .kind = DP_ACTION_DROP };
	struct dp_action store_allow[2] = { { .kind = DP_ACTION_CT_MARK_SET, .mark = FILTER_MARK_ALLOW,
					      .mark_keep = ~FILTER_MARK_MASK }, accept };
	struct dp_action queue = { .kind = DP_ACTION_QUEUE, .queue = { FILTER_QUEUE_FLOWS, 1,
				   F->any_fail_closed ? 0 : DP_QUEUE_F_BYPASS } };
	struct dp_action qdns = { .kind = DP_ACTION_QUEUE, .queue = { FILTER_QUEUE_DNS, 1, DP_QUEUE_F_BYPASS } };
	struct dp_match m[4];
	uint8_t protos[2] = { IPPROTO_UDP, IPPROTO_TCP };
	int r = 0, i;

	/* netextd's own sockets (the DNS proxy's upstream queries and answers) are not flows of
	 * any process: the application's flow to the resolver is the one filtered. */
	if (!input) {
		m[0] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .mark = { DNS_MARK_EXEMPT, DNS_MARK_EXEMPT } };
		r |= dp_ruleset_add(rs, ch, m, 1, &accept, 1);
	}
	/* Answers the DNS proxy handled are learned by the proxy itself, with the asking
	 * process; snooping them again would cost a queue round trip each. */
	for (i = 0; input && i < 2; i++) {
		m[0] = m_l4(protos[i]);
		m[1] = (struct dp_match){ .kind = DP_MATCH_SPORT, .port = 53 };
		m[2] = (struct dp_match){ .kind = DP_MATCH_CT_STATE, .ct_state = DP_CT_ESTABLISHED };
		m[3] = (struct dp_match){ .kind = DP_MATCH_CT_MARK, .mark = { DNS_CTMARK_PROXIED, 0 } };
		r |= dp_ruleset_add(rs, ch, m, 4, &qdns, 1);
	}
	m[0] = m_mark(DP_MATCH_CT_MARK, FILTER_MARK_ALLOW);
	r |= dp_ruleset_add(rs, ch, m, 1, &accept, 1);
	m[0] = m_mark(DP_MATCH_CT_MARK, FILTER_MARK_DROP);
	r |= dp_ruleset_add(rs, ch, m, 1, &drop, 1);
	m[0] = m_mark(DP_MATCH_META_MARK, FILTER_MARK_ALLOW);
	r |= dp_ruleset_add(rs, ch, m, 1, store_allow, 2);
	m[0] = m_mark(DP_MATCH_META_MARK, FILTER_MARK_DROP);
	r |= dp_ruleset_add(rs, ch, m, 1, &drop, 1);
	if (cgroup_exempt_match(d, &m[0]) == 0)
		r |= dp_ruleset_add(rs, ch, m, 1, &accept, 1);
	for (i = 0; i < 2; i++) {
		m[0] = (struct dp_match){ .kind = DP_MATCH_CT_STATE, .ct_state = DP_CT_NEW };
		m[1] = m_l4(protos[i]);
		r |= dp_ruleset_add(rs, ch, m, 2, &queue, 1);
	}
	return r ? -E2BIG : 0;
}

int filter_add_rules(struct daemon *d, struct dp_ruleset *rs)
{
	size_t in, out;
	int r;

	if (!F || !F->n_cfgs || !F->q_flows)
		return 0;
	r = dp_ruleset_add_chain(rs, "filter_in", DP_CHAIN_FILTER, DP_HOOK_INPUT, DP_PRIO_FILTER + 10, &in);
	if (r == 0)
		r = dp_ruleset_add_chain(rs, "filter_out", DP_CHAIN_FILTER, DP_HOOK_OUTPUT, DP_PRIO_FILTER + 10, &out);
	if (r == 0)
		r = chain_rules(d, rs, in, true);
	if (r == 0)
		r = chain_rules(d, rs, out, false);
	return r;
}

/* --- control ------------------------------------------------------------------------------- */

static void addr_str(const struct fkey *k, const uint8_t *a, uint16_t port, char *buf, size_t size)
{
	char t[INET6_ADDRSTRLEN];

	inet_ntop(k->version == 6 ? AF_INET6 : AF_INET, a, t, sizeof(t));
	snprintf(buf, size, k->version == 6 ? "[%s]:%u" : "%s:%u", t, port);
}

static json_t *flow_json(const struct flow *f, const struct ct_flow *counts)
{
	char local[64], remote[64];
	bool in = f->key.direction == 2;
	json_t *j, *proc;

	addr_str(&f->key, f->key.local, f->key.local_port, local, sizeof(local));
	addr_str(&f->key, f->key.remote, f->key.remote_port, remote, sizeof(remote));
	proc = f->pid > 0 ? json_pack("{s:i, s:i, s:s?, s:s?, s:s?, s:I}", "pid", (int)f->pid, "ppid",
				      (int)f->ppid, "executable", f->exe, "command_line", f->cmdline,
				      "cgroup", f->cgroup, "start_time", (json_int_t)f->start_time)
			  : json_pack("{s:s}", "unknown", f->attributed ? "the socket was gone" : "not looked up");
	j = json_pack("{s:I, s:s, s:s, s:i, s:s, s:s, s:s?, s:o, s:s, s:s, s:I}",
		      "id", (json_int_t)f->id, "direction", in ? "inbound" : "outbound",
		      "protocol", f->key.proto == IPPROTO_TCP ? "tcp" : "udp", "family", f->key.version,
		      "local", local, "remote", remote, "hostname", f->hostname, "process", proc,
		      "state", flow_state_names[f->state], "decided_by", f->decided_by,
		      "created", (json_int_t)f->created_real);
	if (f->has_ids) {
		json_object_set_new(j, "uid", json_integer(f->uid));
		if (f->gid != (uint32_t)-1)
			json_object_set_new(j, "gid", json_integer(f->gid));
	}
	if (f->waiting)
		json_object_set_new(j, "waiting_for", json_string(f->waiting->name));
	if (f->decided_usec)
		json_object_set_new(j, "verdict_usec", json_integer((json_int_t)(f->decided_usec - f->created_usec)));
	if (counts && counts->has_counters) {
		json_object_set_new(j, "bytes_in", json_integer((json_int_t)(in ? counts->orig_bytes : counts->reply_bytes)));
		json_object_set_new(j, "bytes_out", json_integer((json_int_t)(in ? counts->reply_bytes : counts->orig_bytes)));
	}
	return j;
}

void *filter_flows_json(struct daemon *d, bool pending_only)
{
	json_t *a = json_array();
	struct ne_list *pos, *tmp;
	struct ct_flow cf;
	unsigned counted = 0;

	if (!F)
		return a;
	/* Newest first; byte counts for the newest STATS_BATCH open flows (one ctnetlink get each). */
	for (pos = F->flows.prev, tmp = pos->prev; pos != &F->flows; pos = tmp, tmp = pos->prev) {
		struct flow *f = ne_container_of(pos, struct flow, link);
		bool waiting = f->state == FLOW_PENDING || f->state == FLOW_PAUSED;

		if (pending_only && !waiting)
			continue;
		if (f->state == FLOW_ALLOWED && counted++ < STATS_BATCH)
			flow_ct_query(f, &cf);
		else
			memset(&cf, 0, sizeof(cf));
		json_array_append_new(a, flow_json(f, &cf));
	}
	(void)d;
	return a;
}

int filter_flow_decide(struct daemon *d, uint64_t id, bool allow, const char *who)
{
	struct flow *f = F ? flow_by_id(id) : NULL;

	if (!f || !f->waiting || (f->state != FLOW_PENDING && f->state != FLOW_PAUSED))
		return -ENOENT;
	log_info("filter: flow %llu %s by %s", (unsigned long long)id, allow ? "allowed" : "dropped", who);
	flow_resolve(f->waiting, f, allow, who);
	timer_rearm();
	(void)dp_nfq_flush(F->q_flows);
	(void)d;
	return 0;
}

void filter_follow(struct daemon *d, struct ctl_req *req)
{
	size_t i;

	for (i = 0; F && i < NE_ARRAY_SIZE(F->followers); i++) {
		if (F->followers[i] && !ctl_req_waiting(F->followers[i])) {
			ctl_req_unref(F->followers[i]);
			F->followers[i] = NULL;
		}
		if (!F->followers[i]) {
			F->followers[i] = ctl_req_ref(req);
			ctl_req_event(req, "following", json_pack("{s:i}", "filters", (int)F->n_cfgs));
			return;
		}
	}
	ctl_req_error(req, "busy", "too many clients are following flows (limit %zu)",
		      F ? NE_ARRAY_SIZE(F->followers) : (size_t)0);
	(void)d;
}

static json_t *cfg_json(const struct fcfg *c)
{
	return json_pack("{s:s, s:i, s:s, s:i, s:b, s:b, s:b, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "configuration", c->name, "order", c->order, "fail_policy",
			 c->fail_open ? "open" : "closed", "verdict_timeout_ms", (int)c->timeout_ms,
			 "present", c->present, "running", c->running, "settings", c->has_settings,
			 "rules", (int)c->rules.n, "asked", (json_int_t)c->n_asked, "allowed",
			 (json_int_t)c->n_allowed, "dropped", (json_int_t)c->n_dropped, "deadline_missed",
			 (json_int_t)c->n_deadline, "fail_policy_applied", (json_int_t)c->n_fail_policy,
			 "paused", (json_int_t)c->n_paused, "late_or_foreign_verdicts",
			 (json_int_t)c->n_bad_verdicts);
}

void *filter_status_json(struct daemon *d)
{
	struct dp_nfq_stats qs = { 0 };
	struct namecache_stats ns = { 0 };
	struct procinfo_stats ps = { 0 };
	struct ne_list *pos, *tmp;
	json_t *cfgs = json_array();

	if (!F)
		return json_pack("{s:o}", "filters", cfgs);
	ne_list_for_each(pos, tmp, &F->cfgs)
		json_array_append_new(cfgs, cfg_json(ne_container_of(pos, struct fcfg, link)));
	if (F->q_flows)
		dp_nfq_get_stats(F->q_flows, &qs);
	namecache_get_stats(F->names, &ns);
	procinfo_get_stats(F->pi, &ps);
	(void)d;
	return json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "filters", cfgs, "flows", (json_int_t)F->n_flows, "waiting",
			 (json_int_t)F->n_waiting, "new_flows", (json_int_t)F->n_new, "closed",
			 (json_int_t)F->n_closed, "evicted", (json_int_t)F->n_evicted,
			 "held_packets_dropped", (json_int_t)F->n_held_dropped, "queued_packets",
			 (json_int_t)qs.received, "names", (json_int_t)ns.entries, "names_learned",
			 (json_int_t)ns.learned, "attribution_lookups", (json_int_t)ps.lookups,
			 "attribution_pid_missing", (json_int_t)ps.pid_missing,
			 "conntrack_events_lost", (json_int_t)(F->ct ? ct_events_lost(F->ct) : 0));
}

/* --- life ---------------------------------------------------------------------------------- */

int filter_init(struct daemon *d)
{
	int r;

	F = calloc(1, sizeof(*F));
	if (!F)
		return -ENOMEM;
	F->d = d;
	ne_list_init(&F->cfgs);
	ne_list_init(&F->flows);
	crypto_shorthash_keygen(F->hkey);
	/* Ids start at a random point so that ids of one daemon run are not mistaken for
	 * another's in logs and reports. */
	randombytes_buf(&F->next_id, sizeof(F->next_id));
	F->next_id &= 0x0000ffffffffffffULL;
	r = procinfo_new(&F->pi);
	if (r == 0)
		r = namecache_new(NAMECACHE_BYTES, &F->names);
	if (r == 0)
		r = dnssnoop_new(on_dns_message, NULL, &F->snoop);
	if (r == 0)
		r = sd_event_add_time(d->event, &F->timer, CLOCK_MONOTONIC, 0, 1000, on_timer, NULL);
	if (r == 0)
		r = sd_event_add_time(d->event, &F->gc, CLOCK_MONOTONIC, ne_now_usec() + GC_INTERVAL_USEC,
				      1000000, gc_tick, NULL);
	if (r < 0) {
		filter_fini(d);
		return r;
	}
	sd_event_source_set_enabled(F->timer, SD_EVENT_OFF);
	filter_reconfigure(d);
	return 0;
}

void filter_fini(struct daemon *d)
{
	struct ne_list *pos, *tmp;
	size_t i;

	if (!F)
		return;
	for (i = 0; i < NE_ARRAY_SIZE(F->followers); i++)
		if (F->followers[i]) {
			if (ctl_req_waiting(F->followers[i]))
				ctl_req_reply(F->followers[i], json_pack("{s:s}", "ended", "netextd is stopping"));
			ctl_req_unref(F->followers[i]);
		}
	ne_list_for_each(pos, tmp, &F->cfgs)
		cfg_free(ne_container_of(pos, struct fcfg, link));
	ne_list_for_each(pos, tmp, &F->flows)
		flow_free(ne_container_of(pos, struct flow, link));
	queues_close();
	sd_event_source_disable_unref(F->timer);
	sd_event_source_disable_unref(F->gc);
	dnssnoop_free(F->snoop);
	namecache_free(F->names);
	procinfo_free(F->pi);
	free(F);
	F = NULL;
	(void)d;
}
