/* The filter-packet provider's daemon side (pktfilter.h, docs/packet-filter.md).
 *
 * Datapath: base chains pkt_in/pkt_out/pkt_fwd queue the packets the provider's rules select
 * (mark PKTF_MARK_SELECTED) to queues PKTF_QUEUE_BASE.. (flow hash, bypass). Each queue has an
 * NFQUEUE socket (F_GSO) read in the event loop; a selected packet is written into the queue's
 * shared-memory packet ring and recorded in the queue's in-flight FIFO (slot = FIFO index, the
 * token the extension echoes). Verdicts come back through the verdict ring; the FIFO turns
 * them into NFQUEUE verdicts, consecutive plain accepts from its head collapsing into one
 * VERDICT_BATCH. Everything collected in one wake-up goes out in one sendmsg at its end.
 *
 * Trust: NFQUEUE messages come from the kernel. The rings are shared with the extension,
 * foreign code that may scribble on them at any time: every verdict field is copied to a
 * local before it is checked, a replacement packet is copied before it is parsed, and the
 * original packet's headers that a verdict is checked against are the daemon's own copy
 * (struct pentry.hdr), never the ring's bytes. Only where the daemon re-reads a packet from
 * the ring (an allowed packet of a flow whose sequence numbers are shifted) does it compare
 * the headers with its copy first; the payload it then sends is no more than a MODIFY verdict
 * could have sent. A ring found inconsistent is a protocol fault: the extension is killed
 * and its packets get the fail policy. Every packet the extension holds ends at a deadline. */
#include "pktfilter.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netext/netext.h>
#include <netext/packet.h>

#include "daemon.h"
#include "dnsproxy.h"
#include "dp_nfq.h"
#include "dp_nft.h"
#include "dp_route.h"
#include "list.h"
#include "log.h"
#include "pkt.h"
#include "pktring.h"
#include "store.h"
#include "util.h"
#include "wire.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define ORDER_DEFAULT 100
#define TIMEOUT_MS_DEFAULT 2000
#define DELAY_MS_DEFAULT 10000
#define RING_KIB_DEFAULT 4096
#define COPY_RANGE_MIN 128
#define MSS_CLAMP_DEFAULT 1200    /* 240 bytes of growth per segment on a 1500-byte IPv6 link */
#define QUEUE_MAXLEN 4096         /* packets the kernel holds per queue */
#define FIFO_CAP 8192             /* in-flight entries per queue (power of two, ≥ QUEUE_MAXLEN) */
#define HDR_KEEP 160              /* bytes of each packet kept to check a replacement against */
#define RBUF_SIZE (0x10000 + 8192) /* one packet message with a full 64 KiB copy */
#define OUT_CAP (256 * 1024)      /* verdict messages per sendmsg */
#define VERDICT_OVERHEAD 128
#define PUBLISH_EVERY 64          /* packets between publishing, draining and flushing */
#define READ_BUDGET 1024          /* packet messages per wake-up before other sources run */
#define STALL_RETRY_MS 5
#define SEQADJ_FLOWS 65536
#define SEQADJ_IDLE_S 600

enum pe_state { PE_FREE, PE_PENDING, PE_DELAYED, PE_DONE, PE_SENT };

/* One packet the kernel holds for us, in arrival (= id) order. */
struct pentry {
	uint32_t id;
	uint8_t state;     /* enum pe_state */
	uint8_t direction; /* ne_packet_direction */
	uint8_t flags;     /* PR_PKT_* */
	bool set_mark;
	int verdict;       /* NF_ACCEPT, NF_DROP, NF_REPEAT once PE_DONE */
	uint32_t mark;     /* the packet's mark when queued */
	uint32_t vmark;    /* the mark to set with the verdict */
	uint32_t len, orig_len;
	uint32_t rstart;   /* ring position of its record (free-running) */
	uint64_t deadline; /* monotonic usec */
	uint8_t *payload;  /* replacement to send (malloc), or NULL */
	uint32_t plen;
	uint16_t hlen;
	uint8_t hdr[HDR_KEEP];
};

struct pcounters {
	uint64_t received, to_provider, allowed, dropped, delayed, modified, refused, late, timeouts,
		fail_policy, stalls, passthrough, seqadj_applied, seqadj_missed, batch_msgs, verdict_msgs,
		sends, errors;
};

struct pcfg;

struct pfq {
	struct pcfg *c;
	unsigned index;
	uint16_t num;
	struct mnl_socket *nl;
	sd_event_source *nl_src;
	bool stalled;             /* ring or FIFO full: not reading the socket */
	uint8_t *rbuf;            /* the last datagram; kept while stalled on it */
	size_t rlen, roff;
	uint8_t *out;
	size_t out_len;
	bool run_active;
	uint32_t run_max;
	/* rings (while a provider that applied settings is there) */
	bool rings;
	int memfd, efd_pkt, efd_vd;
	void *map;
	size_t map_len;
	struct pr_ring pkt, vd;
	sd_event_source *vd_src;
	bool unpublished;
	/* in-flight FIFO: entries [head, tail) */
	struct pentry *fifo;
	uint32_t head, tail, scan;
	bool blocked;             /* a delayed packet heads the FIFO: later ones go out singly */
	unsigned n_open, n_delayed;
	uint8_t *work;            /* PKT_MAX bytes */
};

struct prule {
	uint8_t direction, protocol;
	int family;               /* AF_INET, AF_INET6, 0 */
	char ifname[IFNAMSIZ];
	struct dp_match local, remote; /* kind 0 .. : has_* says whether set */
	bool has_local, has_remote;
	uint16_t local_port, remote_port;
};

struct pcfg {
	struct ne_list link;
	char name[NE_WIRE_NAME_MAX + 1];
	int order;
	bool fail_open;
	unsigned timeout_ms, delay_max_ms, ring_kib;
	unsigned mss_clamp;       /* TCP MSS of selected flows at most this; 0: untouched */
	bool present, running;
	struct ext *ext;
	uint32_t handle;
	bool has_settings;        /* this provider instance applied settings */
	bool rules_valid;         /* rules below (kept across provider restarts) */
	struct prule *rules;
	size_t n_rules;
	uint32_t copy_range;
	uint16_t queues;
	bool seen;
};

struct pktfilter {
	struct daemon *d;
	struct ne_list cfgs;
	unsigned n_cfgs;
	sd_event_source *timer;
	struct pkt_seqadj *seqadj;
	struct pcfg *qcfg;        /* the configuration the queues serve */
	struct pfq *q[NE_PACKET_QUEUES_MAX];
	unsigned n_queues;
	struct pcounters n;       /* since the daemon started, over every configuration */
};

static struct pktfilter *P;
static uint8_t fbuf[NE_WIRE_MAX];
static struct ne_wire_packet_rule wire_rules[NE_WIRE_PACKET_RULES_MAX];

static void timer_arm(uint64_t at);
static void q_read(struct pfq *q);
static void cfg_rings_lost(struct pcfg *c, const char *why);

static uint64_t now_sec(void)
{
	return ne_now_usec() / 1000000;
}

/* ---- NFQUEUE messages --------------------------------------------------------------------- */

static int send_out(struct pfq *q)
{
	ssize_t n;

	if (q->out_len == 0)
		return 0;
	n = mnl_socket_sendto(q->nl, q->out, q->out_len);
	q->out_len = 0;
	if (n < 0) {
		P->n.errors++;
		return ne_negerrno();
	}
	P->n.sends++;
	return 0;
}

static void out_reserve(struct pfq *q, size_t need)
{
	if (q->out_len + need > OUT_CAP)
		(void)send_out(q);
}

static void emit_run(struct pfq *q)
{
	struct nlmsghdr *nlh;

	if (!q->run_active)
		return;
	out_reserve(q, VERDICT_OVERHEAD);
	nlh = nfq_nlmsg_put((char *)q->out + q->out_len, NFQNL_MSG_VERDICT_BATCH, q->num);
	nfq_nlmsg_verdict_put(nlh, (int)q->run_max, NF_ACCEPT);
	q->out_len += NLMSG_ALIGN(nlh->nlmsg_len);
	q->run_active = false;
	P->n.batch_msgs++;
}

static void emit_single(struct pfq *q, struct pentry *e)
{
	struct nlmsghdr *nlh;

	out_reserve(q, VERDICT_OVERHEAD + e->plen);
	nlh = nfq_nlmsg_put((char *)q->out + q->out_len, NFQNL_MSG_VERDICT, q->num);
	nfq_nlmsg_verdict_put(nlh, (int)e->id, e->verdict);
	if (e->set_mark)
		nfq_nlmsg_verdict_put_mark(nlh, e->vmark);
	if (e->payload)
		nfq_nlmsg_verdict_put_pkt(nlh, e->payload, e->plen);
	q->out_len += NLMSG_ALIGN(nlh->nlmsg_len);
	P->n.verdict_msgs++;
	free(e->payload);
	e->payload = NULL;
	e->plen = 0;
	e->state = PE_SENT;
}

static bool plain_accept(const struct pentry *e)
{
	return e->verdict == NF_ACCEPT && !e->payload && !e->set_mark;
}

static struct pentry *at(struct pfq *q, uint32_t pos)
{
	return &q->fifo[pos & (FIFO_CAP - 1)];
}

/* The free-running FIFO position of e (which is in [head, tail)). */
static uint32_t entry_pos(const struct pfq *q, const struct pentry *e)
{
	return q->head + (((uint32_t)(e - q->fifo) - q->head) & (FIFO_CAP - 1));
}

/* Sends what the FIFO can answer: the decided prefix from the head (plain accepts as one batch
 * after the individual verdicts, so the batch never covers an undecided id), and, while a
 * delayed packet heads the FIFO, every decided entry behind it individually. */
static void q_flush(struct pfq *q)
{
	struct pentry *e;

	while (q->head != q->tail) {
		e = at(q, q->head);
		if (e->state == PE_PENDING || e->state == PE_DELAYED)
			break;
		if (e->state == PE_DONE) {
			if (plain_accept(e)) {
				q->run_active = true;
				q->run_max = e->id;
			} else
				emit_single(q, e);
		}
		e->state = PE_FREE;
		q->head++;
	}
	emit_run(q);
	if ((int32_t)(q->scan - q->head) < 0)
		q->scan = q->head;
	q->blocked = q->head != q->tail && at(q, q->head)->state == PE_DELAYED;
	for (; q->blocked && q->scan != q->tail; q->scan++)
		if (at(q, q->scan)->state == PE_DONE)
			emit_single(q, at(q, q->scan));
	(void)send_out(q);
}

/* ---- decisions ---------------------------------------------------------------------------- */

static void entry_close(struct pfq *q, struct pentry *e)
{
	if (e->state == PE_DELAYED)
		q->n_delayed--;
	if (e->state == PE_PENDING || e->state == PE_DELAYED)
		q->n_open--;
}

/* e (open or new) is decided; payload is malloc'ed and owned by e from here. */
static void entry_decide(struct pfq *q, struct pentry *e, int verdict, bool set_mark, uint32_t mark,
			 uint8_t *payload, uint32_t plen)
{
	entry_close(q, e);
	e->state = PE_DONE;
	e->verdict = verdict;
	e->set_mark = set_mark;
	e->vmark = mark;
	free(e->payload);
	e->payload = payload;
	e->plen = payload ? plen : 0;
	/* Behind a delayed head and already passed by the scan: it would wait for the head. */
	if (q->blocked && (int32_t)(entry_pos(q, e) - q->scan) < 0)
		emit_single(q, e);
}

/* Applies the recorded TCP sequence shifts to a copy of the whole packet p; returns a malloc'ed
 * replacement (checksums fixed) or NULL when nothing changed. p may be q->work (ring_bytes). */
static uint8_t *seqadj_copy(const uint8_t *p, size_t len)
{
	struct pkt_info pi;
	uint8_t *out;

	if (!P->seqadj || pkt_seqadj_count(P->seqadj) == 0 || len == 0 || len > PKT_MAX)
		return NULL;
	out = malloc(len);
	if (!out)
		return NULL;
	memcpy(out, p, len);
	if (pkt_parse(out, len, false, &pi) < 0 || pi.protocol != IPPROTO_TCP || pi.fragment ||
	    pkt_seqadj_apply(P->seqadj, out, len, &pi, now_sec()) <= 0) {
		free(out);
		return NULL;
	}
	pkt_fix_checksums(out, len, &pi);
	P->n.seqadj_applied++;
	return out;
}

/* Whether e's flow has a shift: decided from the daemon's own header copy. */
static bool entry_shifted(struct pentry *e)
{
	struct pkt_info pi;

	if (!P->seqadj || pkt_seqadj_count(P->seqadj) == 0)
		return false;
	if (pkt_parse(e->hdr, e->hlen, e->hlen < e->orig_len, &pi) < 0 || pi.protocol != IPPROTO_TCP)
		return false;
	return pkt_seqadj_known(P->seqadj, &pi);
}

/* The whole packet of e from the packet ring, when its bytes are still there and its headers
 * are the ones the daemon copied; NULL otherwise. */
static const uint8_t *ring_bytes(struct pfq *q, struct pentry *e)
{
	uint32_t off;

	if (!q->rings || (e->flags & PR_PKT_TRUNCATED) || e->len > PKT_MAX ||
	    (uint32_t)(q->pkt.pos - e->rstart) > q->pkt.size)
		return NULL;
	off = (e->rstart & (q->pkt.size - 1)) + (uint32_t)offsetof(struct pr_packet, data);
	memcpy(q->work, q->pkt.data + off, e->len);
	if (memcmp(q->work, e->hdr, e->hlen))
		return NULL;
	return q->work;
}

/* Accepts e, with the sequence shifts of its flow applied (bytes: the whole packet when at
 * hand, else re-read from the ring). */
static void entry_accept(struct pfq *q, struct pentry *e, const uint8_t *bytes)
{
	uint8_t *repl = NULL;

	if (entry_shifted(e)) {
		if (!bytes)
			bytes = ring_bytes(q, e);
		if (bytes)
			repl = seqadj_copy(bytes, e->len);
		else
			P->n.seqadj_missed++;
	}
	entry_decide(q, e, NF_ACCEPT, false, 0, repl, e->len);
}

static void entry_fail(struct pfq *q, struct pentry *e, const uint8_t *bytes)
{
	P->n.fail_policy++;
	if (q->c->fail_open)
		entry_accept(q, e, bytes);
	else
		entry_decide(q, e, NF_DROP, false, 0, NULL, 0);
}

/* ---- packets from the kernel -------------------------------------------------------------- */

/* The ring flags of a queued packet. */
static uint8_t packet_flags(const struct dp_packet *p)
{
	return (uint8_t)((p->gso ? PR_PKT_GSO : 0) | (p->csum_not_ready ? PR_PKT_CSUM_NOT_READY : 0) |
			 (p->orig_len > p->len ? PR_PKT_TRUNCATED : 0));
}

static uint8_t hook_direction(uint8_t hook)
{
	return hook == NF_INET_LOCAL_OUT ? NE_PACKET_OUTBOUND
	       : hook == NF_INET_FORWARD ? NE_PACKET_FORWARD : NE_PACKET_INBOUND;
}

static struct pentry *entry_new(struct pfq *q, const struct dp_packet *p)
{
	struct pentry *e = at(q, q->tail++);

	e->id = p->id;
	e->state = PE_PENDING;
	e->direction = hook_direction(p->hook);
	e->flags = packet_flags(p);
	e->set_mark = false;
	e->mark = p->mark;
	e->len = (uint32_t)p->len;
	e->orig_len = (uint32_t)p->orig_len;
	e->payload = NULL;
	e->plen = 0;
	e->hlen = (uint16_t)NE_MIN(p->len, (size_t)HDR_KEEP);
	memcpy(e->hdr, p->payload, e->hlen);
	q->n_open++;
	return e;
}

/* Writes p into the packet ring; false when the ring lacks room. */
static bool to_ring(struct pfq *q, const struct dp_packet *p, uint32_t slot)
{
	uint32_t rl = (uint32_t)((sizeof(struct pr_packet) + p->len + PR_ALIGN - 1) & ~(size_t)(PR_ALIGN - 1));
	struct pr_packet *r = pr_reserve(&q->pkt, rl);

	if (!r)
		return false;
	r->rec.type = PR_REC_PACKET;
	r->rec.flags = 0;
	r->slot = slot;
	r->id = p->id;
	r->len = (uint32_t)p->len;
	r->orig_len = (uint32_t)p->orig_len;
	r->indev = p->indev;
	r->outdev = p->outdev;
	r->direction = hook_direction(p->hook);
	r->flags = packet_flags(p);
	r->reserved = 0;
	r->reserved2 = 0;
	memcpy(r->data, p->payload, p->len);
	pr_commit(&q->pkt, r);
	q->unpublished = true;
	return true;
}

/* 0: handled; 1: no room (ring or FIFO), keep the message for later. */
static int handle_packet(struct pfq *q, const struct nlmsghdr *nlh)
{
	struct pcfg *c = q->c;
	struct pentry *e;
	struct dp_packet p;
	const uint8_t *whole;
	bool provider;

	if (dp_nfq_parse_packet(nlh, &p) < 0 || !p.payload) {
		P->n.errors++;
		return 0;
	}
	if (q->tail - q->head >= FIFO_CAP)
		return 1;
	provider = (p.mark & PKTF_MARK_SELECTED) && q->rings;
	if (provider) {
		if (!to_ring(q, &p, q->tail & (FIFO_CAP - 1)))
			return 1;
		e = entry_new(q, &p);
		e->rstart = q->pkt.pos - (uint32_t)((sizeof(struct pr_packet) + p.len + PR_ALIGN - 1) &
						    ~(size_t)(PR_ALIGN - 1));
		e->deadline = ne_now_usec() + (uint64_t)c->timeout_ms * 1000;
		if (q->n_open == 1)
			timer_arm(e->deadline);
		P->n.received++;
		P->n.to_provider++;
		return 0;
	}
	e = entry_new(q, &p);
	P->n.received++;
	whole = p.orig_len > p.len ? NULL : p.payload;
	if (!(p.mark & PKTF_MARK_SELECTED)) {
		/* A packet of a shifted flow that the rules do not select (or a TCP packet that
		 * conntrack found out of window): the shift only. */
		P->n.passthrough++;
		entry_accept(q, e, whole);
	} else
		entry_fail(q, e, whole);
	return 0;
}

static void handle_error(struct pfq *q, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*err)) || err->error == 0)
		return;
	P->n.errors++;
	log_debug("packet filter queue %u: kernel error reply: %s", q->num, strerror(-err->error));
}

/* Handles the messages of rbuf from roff on; 1 when stalled on one (roff points at it). */
static int handle_buffer(struct pfq *q)
{
	while (q->roff < q->rlen) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)(q->rbuf + q->roff);
		int left = (int)(q->rlen - q->roff);

		if (!mnl_nlmsg_ok(nlh, left))
			break;
		if (nlh->nlmsg_type == NLMSG_ERROR)
			handle_error(q, nlh);
		else if (nlh->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET) &&
			 handle_packet(q, nlh))
			return 1;
		q->roff += NLMSG_ALIGN(nlh->nlmsg_len);
	}
	q->rlen = q->roff = 0;
	return 0;
}

static void provider_fault(struct pcfg *c, const char *why)
{
	log_warnx("filter-packet %s: %s", c->name, why);
	if (c->ext)
		ext_fault_extern(c->ext, why);
	cfg_rings_lost(c, why);
}

static void q_publish(struct pfq *q)
{
	uint64_t one = 1;
	int r;

	if (!q->rings || !q->unpublished)
		return;
	q->unpublished = false;
	r = pr_publish(&q->pkt);
	if (r < 0) {
		provider_fault(q->c, "packet ring head is impossible");
		return;
	}
	if (r > 0 && write(q->efd_pkt, &one, sizeof(one)) < 0)
		log_debug("packet filter queue %u: cannot wake the extension: %m", q->num);
}

static void q_drain(struct pfq *q);

static void set_stalled(struct pfq *q, bool stalled)
{
	if (q->stalled == stalled)
		return;
	q->stalled = stalled;
	if (stalled) {
		P->n.stalls++;
		timer_arm(ne_now_usec() + STALL_RETRY_MS * 1000);
	}
	sd_event_source_set_enabled(q->nl_src, stalled ? SD_EVENT_OFF : SD_EVENT_ON);
}

/* Reads until the socket is empty, the ring is full or the budget is spent; answers and
 * publishes as it goes. The budget matters under a flood, where the socket never runs dry:
 * without it the loop would never return to sd-event, the heartbeat and the control socket
 * would starve, and a healthy extension would be killed as hung. The io source is
 * level-triggered, so the rest is read on the next turn of the loop. */
static void q_read(struct pfq *q)
{
	unsigned since = 0, budget = READ_BUDGET;

	for (;;) {
		if (budget-- == 0)
			break;
		if (q->rlen == 0) {
			ssize_t n = recv(mnl_socket_get_fd(q->nl), q->rbuf, RBUF_SIZE, MSG_DONTWAIT);

			if (n < 0) {
				if (errno == EINTR || errno == ENOBUFS)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					P->n.errors++;
				set_stalled(q, false);
				break;
			}
			q->rlen = (size_t)n;
			q->roff = 0;
		}
		if (handle_buffer(q)) {
			set_stalled(q, true);
			break;
		}
		if (++since >= PUBLISH_EVERY) {
			/* Under a flood the socket never runs dry: hand over, take verdicts back and
			 * answer the kernel as we go, so its queue keeps moving. */
			since = 0;
			q_publish(q);
			q_drain(q);
		}
	}
	q_publish(q);
	q_drain(q);
}

static int on_nfq(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	q_read(ud);
	(void)s;
	(void)fd;
	(void)revents;
	return 0;
}

/* ---- verdicts from the extension ---------------------------------------------------------- */

/* The entry slot/id names, when it waits for the provider. */
static struct pentry *waiting_entry(struct pfq *q, uint32_t slot, uint32_t id)
{
	struct pentry *e;

	if (slot >= FIFO_CAP)
		return NULL;
	e = &q->fifo[slot];
	if ((e->state != PE_PENDING && e->state != PE_DELAYED) || e->id != id)
		return NULL;
	return e;
}

static void verdict_modify(struct pfq *q, struct pentry *e, const uint8_t *shared, uint32_t len)
{
	struct pcfg *c = q->c;
	struct pkt_info oi, ni;
	uint8_t *repl = NULL;
	bool first = false;
	int32_t delta;
	int r;

	if (len > PKT_MAX || (e->flags & PR_PKT_TRUNCATED) ||
	    pkt_parse(e->hdr, e->hlen, e->hlen < e->orig_len, &oi) < 0)
		goto refused;
	/* Copied once, straight into the verdict's buffer: the extension may change the ring
	 * meanwhile, and everything below works on this copy. */
	repl = malloc(len ? len : 1);
	if (!repl)
		goto refused;
	memcpy(repl, shared, len);
	if (pkt_check_replacement(&oi, repl, len, &ni) < 0)
		goto refused;
	delta = (int32_t)ni.payload_len - (int32_t)oi.payload_len;
	if (oi.protocol == IPPROTO_TCP && !oi.fragment && delta != 0) {
		if (ni.protocol != IPPROTO_TCP || !oi.l4_hdr_len)
			goto refused;
		r = pkt_seqadj_record(P->seqadj, &oi, delta, now_sec());
		if (r < 0)
			goto refused;
		first = r == 1;
	}
	if (ni.protocol == IPPROTO_TCP && !ni.fragment)
		(void)pkt_seqadj_apply(P->seqadj, repl, len, &ni, now_sec());
	/* A grown packet that the kernel will not segment may exceed the MTU; with DF the output
	 * path would drop it (and tell the local sender, whose retransmission grows again). IPv4
	 * may fragment it instead; IPv6 cannot (docs/packet-filter.md, limits). */
	if (ni.family == AF_INET && len > e->orig_len && !(e->flags & PR_PKT_GSO))
		repl[6] &= (uint8_t)~0x40;
	pkt_fix_checksums(repl, len, &ni);
	P->n.modified++;
	/* The flow's first shift: REPEAT with PKTF_MARK_SHIFT makes the chain mark the conntrack
	 * entry (both directions are queued from now on) and accept the new bytes. */
	if (first)
		entry_decide(q, e, NF_REPEAT, true, e->mark | PKTF_MARK_SHIFT, repl, len);
	else
		entry_decide(q, e, NF_ACCEPT, false, 0, repl, len);
	return;
refused:
	free(repl);
	P->n.refused++;
	log_debug("filter-packet %s: replacement for packet %u refused", c->name, e->id);
	entry_fail(q, e, NULL);
}

/* 0, or -EBADMSG for a malformed record (a protocol fault). */
static int handle_verdict(struct pfq *q, const struct pr_rec *rec)
{
	struct pcfg *c = q->c;
	uint32_t rlen = q->vd.peek_len;
	struct pr_verdict v;
	struct pentry *e;

	if (rlen < sizeof(v))
		return -EBADMSG;
	memcpy(&v, rec, sizeof(v));
	if (v.rec.type != PR_REC_VERDICT || v.len > rlen - sizeof(v) ||
	    v.kind < NE_PACKET_ALLOW || v.kind > NE_PACKET_MODIFY)
		return -EBADMSG;
	e = waiting_entry(q, v.slot, v.id);
	if (!e || (v.kind == NE_PACKET_DELAY && e->state == PE_DELAYED)) {
		P->n.late++;
		return 0;
	}
	switch (v.kind) {
	case NE_PACKET_ALLOW:
		P->n.allowed++;
		entry_accept(q, e, NULL);
		break;
	case NE_PACKET_DROP:
		P->n.dropped++;
		entry_decide(q, e, NF_DROP, false, 0, NULL, 0);
		break;
	case NE_PACKET_DELAY:
		P->n.delayed++;
		e->state = PE_DELAYED;
		q->n_delayed++;
		e->deadline = ne_now_usec() + (uint64_t)c->delay_max_ms * 1000;
		timer_arm(e->deadline);
		break;
	case NE_PACKET_MODIFY:
		verdict_modify(q, e, (const uint8_t *)rec + sizeof(v), v.len);
		break;
	}
	return 0;
}

/* Reads every verdict, answers the kernel, then sleeps on the eventfd (or goes on when more
 * arrived meanwhile). */
static void q_drain(struct pfq *q)
{
	const struct pr_rec *rec;
	int err = 0;

	while (q->rings) {
		while ((rec = pr_peek(&q->vd, &err))) {
			if (handle_verdict(q, rec) < 0) {
				err = -EBADMSG;
				break;
			}
			pr_consume(&q->vd);
		}
		if (err) {
			q_flush(q);
			provider_fault(q->c, "malformed verdict ring");
			return;
		}
		pr_release(&q->vd);
		if (pr_prepare_wait(&q->vd))
			break;
	}
	q_flush(q);
}

static int on_vd(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct pfq *q = ud;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("packet filter queue %u: eventfd: %m", q->num);
	if (q->rings)
		pr_wake_done(&q->vd);
	q_drain(q);
	if (q->stalled)
		q_read(q); /* verdicts freed ring space and FIFO entries */
	(void)s;
	(void)revents;
	return 0;
}

/* ---- rings ---------------------------------------------------------------------------------- */

static void q_rings_close(struct pfq *q)
{
	sd_event_source_disable_unref(q->vd_src);
	q->vd_src = NULL;
	if (q->map)
		pr_shm_unmap(q->map, q->map_len);
	q->map = NULL;
	ne_closep(&q->memfd);
	ne_closep(&q->efd_pkt);
	ne_closep(&q->efd_vd);
	q->rings = false;
	q->unpublished = false;
}

static int q_rings_open(struct pfq *q, uint32_t ring_bytes)
{
	int r;

	r = pr_shm_create(ring_bytes, ring_bytes, &q->memfd, &q->map, &q->map_len);
	if (r < 0)
		return r;
	q->efd_pkt = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->efd_vd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd_pkt < 0 || q->efd_vd < 0) {
		r = ne_negerrno();
		goto fail;
	}
	r = sd_event_add_io(P->d->event, &q->vd_src, q->efd_vd, EPOLLIN, on_vd, q);
	if (r < 0)
		goto fail;
	pr_ring_attach(&q->pkt, q->map, 0, true);
	pr_ring_attach(&q->vd, q->map, 1, false);
	(void)pr_prepare_wait(&q->vd);
	q->rings = true;
	return 0;
fail:
	q_rings_close(q);
	return r;
}

/* Every packet the provider holds gets the fail policy; its rings go. New packets get the
 * fail policy until a provider applies settings again. */
static void cfg_rings_lost(struct pcfg *c, const char *why)
{
	unsigned i;

	if (P->qcfg != c)
		return;
	for (i = 0; i < P->n_queues; i++) {
		struct pfq *q = P->q[i];
		uint32_t pos;

		q_rings_close(q);
		for (pos = q->head; pos != q->tail; pos++) {
			struct pentry *e = at(q, pos);

			if (e->state == PE_PENDING || e->state == PE_DELAYED)
				entry_fail(q, e, NULL);
		}
		q_flush(q);
		if (q->stalled)
			q_read(q);
	}
	(void)why;
}

/* ---- queues --------------------------------------------------------------------------------- */

static int config_result(struct mnl_socket *nl)
{
	char buf[256];
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	ssize_t n = recv(mnl_socket_get_fd(nl), buf, sizeof(buf), MSG_DONTWAIT | MSG_PEEK);
	const struct nlmsgerr *e;

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : ne_negerrno();
	if (!mnl_nlmsg_ok(nlh, (int)n) || nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq != 1)
		return 0;
	(void)recv(mnl_socket_get_fd(nl), buf, sizeof(buf), MSG_DONTWAIT);
	e = mnl_nlmsg_get_payload(nlh);
	return e->error;
}

/* Bind (with bind = true) or change copy range and flags of a bound queue. */
static int q_configure(struct pfq *q, bool bind)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->num);
	uint32_t flags = NFQA_CFG_F_GSO | (q->c->fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);

	nlh->nlmsg_seq = 1;
	if (bind)
		nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, (int)q->c->copy_range);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, QUEUE_MAXLEN);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN));
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		return ne_negerrno();
	return bind ? config_result(q->nl) : 0;
}

static void q_free(struct pfq *q)
{
	uint32_t pos;

	if (!q)
		return;
	q_rings_close(q);
	if (q->nl && q->fifo) {
		/* The kernel drops what a closed queue holds: answer by the fail policy first. */
		for (pos = q->head; pos != q->tail; pos++) {
			struct pentry *e = at(q, pos);

			if (e->state == PE_PENDING || e->state == PE_DELAYED)
				entry_fail(q, e, NULL);
		}
		q->stalled = false;
		q_flush(q);
	}
	for (pos = q->head; q->fifo && pos != q->tail; pos++)
		free(at(q, pos)->payload);
	sd_event_source_disable_unref(q->nl_src);
	if (q->nl)
		mnl_socket_close(q->nl);
	free(q->fifo);
	free(q->rbuf);
	free(q->out);
	free(q->work);
	free(q);
}

static int q_open(struct pcfg *c, unsigned index, struct pfq **ret)
{
	struct pfq *q = calloc(1, sizeof(*q));
	int one = 1, size = 16 << 20, r = -ENOMEM;

	if (!q)
		return -ENOMEM;
	q->c = c;
	q->index = index;
	q->num = (uint16_t)(PKTF_QUEUE_BASE + index);
	q->memfd = q->efd_pkt = q->efd_vd = -1;
	q->fifo = calloc(FIFO_CAP, sizeof(*q->fifo));
	q->rbuf = malloc(RBUF_SIZE);
	q->out = malloc(OUT_CAP);
	q->work = malloc(PKT_MAX + 1);
	if (!q->fifo || !q->rbuf || !q->out || !q->work)
		goto fail;
	q->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!q->nl || mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = ne_negerrno();
		goto fail;
	}
	(void)setsockopt(mnl_socket_get_fd(q->nl), SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
	if (setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	size = OUT_CAP * 2;
	if (setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	r = q_configure(q, true);
	if (r < 0)
		goto fail;
	r = sd_event_add_io(P->d->event, &q->nl_src, mnl_socket_get_fd(q->nl), EPOLLIN, on_nfq, q);
	if (r < 0)
		goto fail;
	*ret = q;
	return 0;
fail:
	q_free(q);
	return r;
}

static void queues_close(void)
{
	unsigned i;

	for (i = 0; i < P->n_queues; i++)
		q_free(P->q[i]);
	memset(P->q, 0, sizeof(P->q));
	P->n_queues = 0;
	P->qcfg = NULL;
}

/* Binds c's queues (all or none). */
static int queues_open(struct pcfg *c)
{
	unsigned i;
	int r;

	queues_close();
	for (i = 0; i < c->queues; i++) {
		r = q_open(c, i, &P->q[i]);
		if (r < 0) {
			log_warnx("filter-packet %s: cannot bind NFQUEUE %u: %s", c->name, PKTF_QUEUE_BASE + i,
				  strerror(-r));
			P->n_queues = i;
			queues_close();
			return r;
		}
	}
	P->n_queues = c->queues;
	P->qcfg = c;
	return 0;
}

/* Makes rings for every queue and tells the provider (one PACKET_QUEUE per queue). */
static int rings_send(struct pcfg *c)
{
	struct ne_wbuf b;
	unsigned i;
	int r;

	for (i = 0; i < P->n_queues; i++) {
		struct pfq *q = P->q[i];
		struct ne_msg_packet_queue m = { c->handle, (uint16_t)i, (uint16_t)P->n_queues, 0 };
		int fds[3];

		q_rings_close(q);
		r = q_rings_open(q, c->ring_kib * 1024u);
		if (r < 0)
			goto fail;
		m.map_size = (uint32_t)q->map_len;
		fds[0] = q->memfd;
		fds[1] = q->efd_pkt;
		fds[2] = q->efd_vd;
		b = (struct ne_wbuf){ fbuf, 0, sizeof(fbuf), 0 };
		r = ne_msg_packet_queue_encode(&b, &m);
		if (r >= 0)
			r = ext_send_fds(c->ext, fbuf, (size_t)r, fds, 3);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	for (i = 0; i < P->n_queues; i++)
		q_rings_close(P->q[i]);
	return r;
}

/* ---- deadlines ------------------------------------------------------------------------------ */

static void timer_arm(uint64_t at_usec)
{
	uint64_t cur;
	int on = SD_EVENT_OFF;

	if (!P || !P->timer)
		return;
	(void)sd_event_source_get_enabled(P->timer, &on);
	if (on != SD_EVENT_OFF && sd_event_source_get_time(P->timer, &cur) >= 0 && cur <= at_usec)
		return;
	sd_event_source_set_time(P->timer, at_usec);
	sd_event_source_set_enabled(P->timer, SD_EVENT_ONESHOT);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	uint64_t now = ne_now_usec(), next = 0;
	unsigned i;

	for (i = 0; i < P->n_queues; i++) {
		struct pfq *q = P->q[i];
		uint32_t pos;

		for (pos = q->head; q->n_open && pos != q->tail; pos++) {
			struct pentry *e = at(q, pos);

			if (e->state != PE_PENDING && e->state != PE_DELAYED)
				continue;
			if (e->deadline <= now) {
				P->n.timeouts++;
				entry_fail(q, e, NULL);
			} else if (!next || e->deadline < next)
				next = e->deadline;
		}
		q_flush(q);
		if (q->stalled) {
			q_read(q);
			if (q->stalled && (!next || now + STALL_RETRY_MS * 1000 < next))
				next = now + STALL_RETRY_MS * 1000;
		}
	}
	if (P->seqadj)
		pkt_seqadj_expire(P->seqadj, now_sec());
	sd_event_source_set_enabled(P->timer, SD_EVENT_OFF);
	if (next)
		timer_arm(next);
	(void)s;
	(void)usec;
	(void)ud;
	return 0;
}

/* ---- configurations ------------------------------------------------------------------------- */

static struct pcfg *cfg_find(const char *name)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &P->cfgs) {
		struct pcfg *c = ne_container_of(pos, struct pcfg, link);

		if (!strcmp(c->name, name))
			return c;
	}
	return NULL;
}

static struct pcfg *cfg_active(void)
{
	return P && !ne_list_empty(&P->cfgs) ? ne_container_of(P->cfgs.next, struct pcfg, link) : NULL;
}

static void cfg_free(struct pcfg *c)
{
	if (P->qcfg == c)
		queues_close();
	ne_list_remove(&c->link);
	P->n_cfgs--;
	free(c->rules);
	free(c);
}

static bool pow2(unsigned v)
{
	return v && !(v & (v - 1));
}

static int load_cfg_cb(const struct store_config *sc, void *ud)
{
	bool *changed = ud;
	struct pcfg *c;
	unsigned kib;
	size_t i;

	if (sc->provider_type != NE_PROVIDER_FILTER_PACKET || !sc->enabled)
		return 0;
	c = cfg_find(sc->name);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			log_warnx("filter-packet %s: out of memory; not using it", sc->name);
			return 0;
		}
		ne_strscpy(c->name, sc->name, sizeof(c->name));
		c->copy_range = PKT_MAX;
		ne_list_append(&P->cfgs, &c->link);
		P->n_cfgs++;
		*changed = true;
	}
	c->seen = true;
	c->fail_open = sc->fail_open;
	for (i = 0; i < sc->n_options; i++)
		if (!strcmp(sc->keys[i], "fail_policy"))
			c->fail_open = strcmp(sc->values[i], "closed") != 0;
	c->order = (int)store_config_option_uint(sc, "order", ORDER_DEFAULT, 0, 1000000);
	c->timeout_ms = store_config_option_uint(sc, "verdict_timeout_ms", TIMEOUT_MS_DEFAULT, 10, 600000);
	c->delay_max_ms = store_config_option_uint(sc, "delay_max_ms", DELAY_MS_DEFAULT, 10, 3600000);
	kib = store_config_option_uint(sc, "ring_kib", RING_KIB_DEFAULT, PR_RING_MIN / 1024, PR_RING_MAX / 1024);
	if (!pow2(kib)) {
		log_warnx("filter-packet %s: ring_kib %u is not a power of two; using %u", sc->name, kib,
			  RING_KIB_DEFAULT);
		kib = RING_KIB_DEFAULT;
	}
	c->ring_kib = kib;
	c->mss_clamp = store_config_option_uint(sc, "tcp_mss_clamp", MSS_CLAMP_DEFAULT, 0, 65535);
	if (c->mss_clamp && c->mss_clamp < 536)
		c->mss_clamp = 536;
	return 0;
}

static int cfg_cmp(const void *pa, const void *pb)
{
	const struct pcfg *a = *(const struct pcfg *const *)pa, *b = *(const struct pcfg *const *)pb;

	return a->order != b->order ? (a->order < b->order ? -1 : 1) : strcmp(a->name, b->name);
}

static void cfgs_sort(void)
{
	struct ne_list *pos, *tmp;
	struct pcfg **v = calloc(P->n_cfgs + 1, sizeof(*v));
	size_t n = 0, i;

	if (!v)
		return;
	ne_list_for_each(pos, tmp, &P->cfgs) {
		v[n++] = ne_container_of(pos, struct pcfg, link);
		ne_list_remove(pos);
	}
	qsort(v, n, sizeof(v[0]), cfg_cmp);
	for (i = 0; i < n; i++)
		ne_list_append(&P->cfgs, &v[i]->link);
	free(v);
}

/* The active configuration's queues and rules follow its settings: bound when it has rules,
 * rings when its provider applied them. Returns whether the ruleset must be rebuilt. */
static bool activate(struct pcfg *c)
{
	if (!c || !c->rules_valid) {
		bool had = P->n_queues > 0;

		queues_close();
		return had;
	}
	if (P->qcfg == c && P->n_queues == c->queues)
		return false;
	if (queues_open(c) < 0)
		return true;
	if (c->present && c->has_settings && c->ext && rings_send(c) < 0)
		log_warnx("filter-packet %s: cannot hand the rings to the provider", c->name);
	return true;
}

void pktfilter_reconfigure(struct daemon *d)
{
	struct pcfg *before, *c;
	struct ne_list *pos, *tmp;
	bool changed = false, had_queues;
	unsigned i;

	if (!P)
		return;
	before = cfg_active();
	had_queues = P->n_queues > 0;
	ne_list_for_each(pos, tmp, &P->cfgs)
		ne_container_of(pos, struct pcfg, link)->seen = false;
	if (store_config_foreach(d->store, NULL, load_cfg_cb, &changed) < 0) {
		log_warnx("filter-packet: cannot read the configurations; keeping the ones in use");
		return;
	}
	ne_list_for_each(pos, tmp, &P->cfgs) {
		c = ne_container_of(pos, struct pcfg, link);
		if (!c->seen) {
			cfg_free(c);
			changed = true;
		}
	}
	cfgs_sort();
	c = cfg_active();
	/* Fail policy changes reach the kernel's queue flags at once. */
	for (i = 0; c && P->qcfg == c && i < P->n_queues; i++)
		(void)q_configure(P->q[i], false);
	if (!changed && c == before)
		return;
	if (c)
		log_info("filter-packet: configuration %s filters packets (%s, verdict deadline %u ms, "
			 "delay at most %u ms)%s", c->name, c->fail_open ? "fail-open" : "fail-closed",
			 c->timeout_ms, c->delay_max_ms,
			 P->n_cfgs > 1 ? "; other filter-packet configurations wait" : "");
	else if (before)
		log_info("filter-packet: no filter-packet configuration enabled");
	if ((c != P->qcfg && activate(c)) || (had_queues && !P->n_queues))
		(void)daemon_apply_ruleset(d);
}

/* ---- providers ------------------------------------------------------------------------------ */

void pktfilter_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle)
{
	struct pcfg *c;

	if (!P)
		return;
	if (!(c = cfg_find(config))) {
		pktfilter_reconfigure(d);
		if (!(c = cfg_find(config)))
			return;
	}
	c->present = true;
	c->running = false;
	c->ext = e;
	c->handle = handle;
	c->has_settings = false;
}

void pktfilter_provider_running(struct daemon *d, const char *config)
{
	struct pcfg *c = P ? cfg_find(config) : NULL;

	if (!c || !c->present)
		return;
	c->running = true;
	log_info("filter-packet %s: provider running (%s, %u queue%s)%s", c->name,
		 c->fail_open ? "fail-open" : "fail-closed", c->queues, c->queues == 1 ? "" : "s",
		 c == cfg_active() ? (c->has_settings ? "" : "; no settings applied: no packets yet")
				   : "; not in use (another configuration comes first)");
	(void)d;
}

void pktfilter_provider_gone(struct daemon *d, const char *config, const char *why)
{
	struct pcfg *c = P ? cfg_find(config) : NULL;

	if (!c || !c->present)
		return;
	log_info("filter-packet %s: provider gone (%s); packets get the fail policy (%s)", c->name, why,
		 c->fail_open ? "open" : "closed");
	c->present = c->running = c->has_settings = false;
	c->ext = NULL;
	cfg_rings_lost(c, why);
	(void)d;
}

/* ---- settings ------------------------------------------------------------------------------- */

/* With dp_prefix_parse, the daemon's one prefix parser; host bits are allowed (nft masks). */
static int parse_network(struct ne_view v, struct dp_match *m)
{
	char buf[INET6_ADDRSTRLEN + 8];
	struct dp_prefix p;

	if (v.len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, v.p, v.len);
	buf[v.len] = '\0';
	if (dp_prefix_parse(buf, true, &p) < 0)
		return -EINVAL;
	m->addr.family = p.family;
	if (p.family == AF_INET)
		memcpy(&m->addr.v4, p.addr, 4);
	else
		memcpy(&m->addr.v6, p.addr, 16);
	m->addr.prefix = p.len;
	return 0;
}

static bool ifname_ok(struct ne_view v)
{
	size_t i;

	if (v.len == 0 || v.len >= IFNAMSIZ)
		return false;
	for (i = 0; i < v.len; i++)
		if (v.p[i] == '/' || v.p[i] == ' ' || (unsigned char)v.p[i] <= 0x20 || v.p[i] == ':')
			return false;
	return true;
}

/* Checks and converts rule i; a message naming the rule and field on error. */
static int rule_convert(size_t i, const struct ne_wire_packet_rule *w, struct prule *r, char *err,
			size_t errlen)
{
	memset(r, 0, sizeof(*r));
	if (w->direction > NE_PACKET_FORWARD) {
		snprintf(err, errlen, "rule %zu: direction %u is not any, outbound, inbound or forward", i + 1,
			 w->direction);
		return -EINVAL;
	}
	if (w->family != 0 && w->family != 4 && w->family != 6) {
		snprintf(err, errlen, "rule %zu: family must be AF_INET, AF_INET6 or 0", i + 1);
		return -EINVAL;
	}
	r->direction = w->direction;
	r->protocol = w->protocol;
	r->family = w->family == 4 ? AF_INET : w->family == 6 ? AF_INET6 : 0;
	if (w->interface.len) {
		if (!ifname_ok(w->interface)) {
			snprintf(err, errlen, "rule %zu: interface '%.*s' is not an interface name", i + 1,
				 (int)NE_MIN(w->interface.len, (size_t)64), w->interface.p);
			return -EINVAL;
		}
		memcpy(r->ifname, w->interface.p, w->interface.len);
	}
	if (w->local_network.len) {
		if (parse_network(w->local_network, &r->local) < 0) {
			snprintf(err, errlen, "rule %zu: local_network '%.*s' is not a network", i + 1,
				 (int)NE_MIN(w->local_network.len, (size_t)64), w->local_network.p);
			return -EINVAL;
		}
		r->has_local = true;
	}
	if (w->remote_network.len) {
		if (parse_network(w->remote_network, &r->remote) < 0) {
			snprintf(err, errlen, "rule %zu: remote_network '%.*s' is not a network", i + 1,
				 (int)NE_MIN(w->remote_network.len, (size_t)64), w->remote_network.p);
			return -EINVAL;
		}
		r->has_remote = true;
	}
	if ((r->has_local && r->family && r->local.addr.family != r->family) ||
	    (r->has_remote && r->family && r->remote.addr.family != r->family) ||
	    (r->has_local && r->has_remote && r->local.addr.family != r->remote.addr.family)) {
		snprintf(err, errlen, "rule %zu: the family and networks name different IP versions", i + 1);
		return -EINVAL;
	}
	if ((w->local_port || w->remote_port) && w->protocol != IPPROTO_TCP && w->protocol != IPPROTO_UDP) {
		snprintf(err, errlen, "rule %zu: ports need protocol TCP or UDP", i + 1);
		return -EINVAL;
	}
	r->local_port = w->local_port;
	r->remote_port = w->remote_port;
	return 0;
}

static void settings_result(struct pcfg *c, uint64_t id, int error, const char *msg)
{
	struct ne_msg_result m = { .error = error, .message = { msg, strlen(msg) } };
	struct ne_wbuf b = { fbuf, 0, sizeof(fbuf), 0 };
	int r = ne_msg_result2_encode(&b, NE_MSG_RESULT, id, &m);

	if (r >= 0 && c->ext)
		(void)ext_send_raw(c->ext, fbuf, (size_t)r, true);
	if (error)
		log_info("filter-packet %s: settings refused: %s", c->name, msg);
}

/* Validates m into a new rule array; copy range and queue count into the out parameters. */
static int settings_check(struct pcfg *c, const struct ne_msg_packet_settings *m, struct prule **ret,
			  uint32_t *ret_copy, uint16_t *ret_queues, char *err, size_t errlen)
{
	uint32_t copy = m->copy_range ? m->copy_range : PKT_MAX;
	uint16_t queues = m->queues ? m->queues : 1;
	struct prule *rules;
	size_t i;

	if (copy < COPY_RANGE_MIN || copy > PKT_MAX) {
		snprintf(err, errlen, "copy_range %u is outside %u..%u (0: whole packets)", m->copy_range,
			 COPY_RANGE_MIN, PKT_MAX);
		return -EINVAL;
	}
	if (queues > NE_PACKET_QUEUES_MAX) {
		snprintf(err, errlen, "queues %u is more than %u", queues, NE_PACKET_QUEUES_MAX);
		return -EINVAL;
	}
	if (c->has_settings && queues != c->queues) {
		snprintf(err, errlen, "queues is %u since the first settings; it cannot change to %u", c->queues,
			 queues);
		return -EINVAL;
	}
	rules = calloc(m->n_rules + 1, sizeof(*rules));
	if (!rules) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < m->n_rules; i++)
		if (rule_convert(i, &m->rules[i], &rules[i], err, errlen) < 0) {
			free(rules);
			return -EINVAL;
		}
	*ret = rules;
	*ret_copy = copy;
	*ret_queues = queues;
	return 0;
}

int pktfilter_on_settings(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len)
{
	struct ne_msg_packet_settings m = { .rules = wire_rules };
	struct pcfg *c = P ? cfg_find(config) : NULL;
	struct prule *rules = NULL;
	bool first, rebind;
	uint32_t copy;
	uint16_t queues;
	char err[256];
	unsigned i;
	int r;

	if (ne_msg_packet_settings_decode(p, len, &m) < 0)
		return -EBADMSG;
	if (!c || !c->present)
		return 0; /* disabled meanwhile */
	if (m.provider != c->handle)
		return -EPROTO;
	r = settings_check(c, &m, &rules, &copy, &queues, err, sizeof(err));
	if (r < 0) {
		settings_result(c, id, r, err);
		return 0;
	}
	first = !c->has_settings;
	rebind = c == cfg_active() && (P->qcfg != c || P->n_queues != queues);
	free(c->rules);
	c->rules = rules;
	c->n_rules = m.n_rules;
	c->queues = queues;
	c->rules_valid = true;
	if (rebind && queues_open(c) < 0) {
		snprintf(err, sizeof(err), "cannot bind NFQUEUE %u..%u (another program has them?)",
			 PKTF_QUEUE_BASE, PKTF_QUEUE_BASE + queues - 1);
		c->rules_valid = false;
		settings_result(c, id, -EBUSY, err);
		return 0;
	}
	if (c->copy_range != copy) {
		c->copy_range = copy;
		for (i = 0; P->qcfg == c && i < P->n_queues; i++)
			(void)q_configure(P->q[i], false);
	}
	if (first && P->qcfg == c) {
		r = rings_send(c);
		if (r < 0) {
			snprintf(err, sizeof(err), "cannot set up the packet rings: %s", strerror(-r));
			settings_result(c, id, r, err);
			return 0;
		}
	}
	c->has_settings = true;
	(void)daemon_apply_ruleset(d);
	log_info("filter-packet %s: settings applied (%zu rule%s, copy range %u, %u queue%s)", c->name,
		 c->n_rules, c->n_rules == 1 ? "" : "s", c->copy_range, c->queues, c->queues == 1 ? "" : "s");
	settings_result(c, id, 0, "");
	return 0;
}

/* ---- rules ---------------------------------------------------------------------------------- */

enum { CH_IN, CH_OUT, CH_FWD };

static const struct dp_action select_actions[2] = {
	{ .kind = DP_ACTION_META_MARK_SET, .mark = PKTF_MARK_SELECTED, .mark_keep = ~PKTF_MARK_SELECTED },
	{ .kind = DP_ACTION_QUEUE },
};

static void addr_match(struct dp_match *out, const struct dp_match *net, enum dp_match_kind kind)
{
	*out = *net;
	out->kind = kind;
	out->neg = false;
}

/* The matches of rule r in one chain; iface: DP_MATCH_IIFNAME / OIFNAME or 0. local = source
 * address and port for outbound and forwarded packets, destination for inbound ones. */
static size_t rule_matches(int which, const struct prule *r, int iface, struct dp_match *m)
{
	bool local_is_src = which != CH_IN;
	size_t n = 0;

	if (r->family && !r->has_local && !r->has_remote)
		m[n++] = (struct dp_match){ .kind = DP_MATCH_NFPROTO,
					    .nfproto = r->family == AF_INET ? NFPROTO_IPV4 : NFPROTO_IPV6 };
	if (r->protocol)
		m[n++] = (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = r->protocol };
	if (r->ifname[0] && iface) {
		m[n] = (struct dp_match){ .kind = iface };
		memcpy(m[n++].ifname, r->ifname, IFNAMSIZ);
	}
	if (r->has_local)
		addr_match(&m[n++], &r->local, local_is_src ? DP_MATCH_SADDR : DP_MATCH_DADDR);
	if (r->has_remote)
		addr_match(&m[n++], &r->remote, local_is_src ? DP_MATCH_DADDR : DP_MATCH_SADDR);
	if (r->local_port)
		m[n++] = (struct dp_match){ .kind = local_is_src ? DP_MATCH_SPORT : DP_MATCH_DPORT,
					    .port = r->local_port };
	if (r->remote_port)
		m[n++] = (struct dp_match){ .kind = local_is_src ? DP_MATCH_DPORT : DP_MATCH_SPORT,
					    .port = r->remote_port };
	return n;
}

/* The rule's selection in one chain: mark and queue. */
static int rule_add(struct dp_ruleset *rs, size_t chain, int which, const struct prule *r, int iface,
		    const struct dp_action *act)
{
	struct dp_match m[DP_RULE_MAX_MATCHES];
	size_t n = rule_matches(which, r, iface, m);

	return dp_ruleset_add(rs, chain, m, n, act, 2);
}

/* MSS clamping for the TCP flows a rule selects, in either direction (so the peer's SYN-ACK
 * is clamped too): segments the kernel does not segment stay below the MTU by the headroom a
 * provider needs to grow them (IPv6 cannot fragment a grown segment). */
static int clamp_add(struct dp_ruleset *rs, size_t chain, int which, const struct prule *r, int iface,
		     uint16_t mss)
{
	struct dp_action set = { .kind = DP_ACTION_TCP_MSS_SET, .mss = mss };
	struct dp_match m[DP_RULE_MAX_MATCHES];
	size_t n;

	if (r && r->protocol && r->protocol != IPPROTO_TCP)
		return 0;
	n = r ? rule_matches(which, r, iface, m) : 0;
	if (!r && which != CH_FWD)
		m[n++] = (struct dp_match){ .kind = which == CH_IN ? DP_MATCH_IIFNAME : DP_MATCH_OIFNAME,
					    .neg = true, .ifname = "lo" };
	if (!r || !r->protocol)
		m[n++] = (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = IPPROTO_TCP };
	m[n++] = (struct dp_match){ .kind = DP_MATCH_TCP_SYN };
	m[n++] = (struct dp_match){ .kind = DP_MATCH_TCP_MSS_ABOVE, .mss = mss };
	return dp_ruleset_add(rs, chain, m, n, &set, 1);
}

static int chain_clamps(struct pcfg *c, struct dp_ruleset *rs, size_t chain, int which)
{
	int iface = which == CH_IN ? DP_MATCH_IIFNAME : which == CH_OUT ? DP_MATCH_OIFNAME : 0;
	size_t i;
	int r = 0;

	if (!c->mss_clamp)
		return 0;
	if (c->n_rules == 0)
		return clamp_add(rs, chain, which, NULL, 0, (uint16_t)c->mss_clamp);
	for (i = 0; i < c->n_rules; i++) {
		const struct prule *pr = &c->rules[i];

		if (which == CH_FWD && pr->ifname[0]) {
			r |= clamp_add(rs, chain, which, pr, DP_MATCH_IIFNAME, (uint16_t)c->mss_clamp);
			r |= clamp_add(rs, chain, which, pr, DP_MATCH_OIFNAME, (uint16_t)c->mss_clamp);
		} else
			r |= clamp_add(rs, chain, which, pr, iface, (uint16_t)c->mss_clamp);
	}
	return r;
}

static int chain_rules(struct pcfg *c, struct dp_ruleset *rs, size_t chain, int which)
{
	static const uint8_t dirs[] = { NE_PACKET_INBOUND, NE_PACKET_OUTBOUND, NE_PACKET_FORWARD };
	struct dp_action act[2] = { select_actions[0], select_actions[1] };
	struct dp_action queue = select_actions[1];
	struct dp_action shift[3] = {
		{ .kind = DP_ACTION_CT_MARK_SET, .mark = PKTF_CTMARK_SHIFTED, .mark_keep = ~PKTF_CTMARK_SHIFTED },
		{ .kind = DP_ACTION_META_MARK_SET, .mark = 0, .mark_keep = ~PKTF_MARK_SHIFT },
		{ .kind = DP_ACTION_ACCEPT },
	};
	struct dp_action accept = { .kind = DP_ACTION_ACCEPT };
	struct dp_match m[2];
	size_t i;
	int r = 0;

	queue.queue.num = act[1].queue.num = PKTF_QUEUE_BASE;
	queue.queue.total = act[1].queue.total = (uint16_t)P->n_queues;
	queue.queue.flags = act[1].queue.flags = DP_QUEUE_F_BYPASS;
	m[0] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .mark = { DNS_MARK_EXEMPT, DNS_MARK_EXEMPT } };
	r |= dp_ruleset_add(rs, chain, m, 1, &accept, 1);
	m[0] = (struct dp_match){ .kind = DP_MATCH_META_MARK, .mark = { PKTF_MARK_SHIFT, PKTF_MARK_SHIFT } };
	r |= dp_ruleset_add(rs, chain, m, 1, shift, 3);
	r |= chain_clamps(c, rs, chain, which);
	for (i = 0; i < c->n_rules; i++) {
		const struct prule *pr = &c->rules[i];

		if (pr->direction != NE_PACKET_ANY && pr->direction != dirs[which])
			continue;
		if (which == CH_IN)
			r |= rule_add(rs, chain, which, pr, DP_MATCH_IIFNAME, act);
		else if (which == CH_OUT)
			r |= rule_add(rs, chain, which, pr, DP_MATCH_OIFNAME, act);
		else if (pr->ifname[0]) { /* forwarded: either interface */
			r |= rule_add(rs, chain, which, pr, DP_MATCH_IIFNAME, act);
			r |= rule_add(rs, chain, which, pr, DP_MATCH_OIFNAME, act);
		} else
			r |= rule_add(rs, chain, which, pr, 0, act);
	}
	if (c->n_rules == 0) {
		size_t n = 0;

		if (which != CH_FWD) {
			m[0] = (struct dp_match){ .kind = which == CH_IN ? DP_MATCH_IIFNAME : DP_MATCH_OIFNAME,
						  .neg = true, .ifname = "lo" };
			n = 1;
		}
		r |= dp_ruleset_add(rs, chain, m, n, act, 2);
	}
	/* Flows with shifted sequence numbers: every packet, for the shift only. Conntrack marks
	 * the peer's acknowledgements of a grown segment out of window (no conntrack entry, so
	 * no ct mark): TCP packets it found invalid are queued too. */
	m[0] = (struct dp_match){ .kind = DP_MATCH_CT_MARK, .mark = { PKTF_CTMARK_SHIFTED, PKTF_CTMARK_SHIFTED } };
	r |= dp_ruleset_add(rs, chain, m, 1, &queue, 1);
	m[0] = (struct dp_match){ .kind = DP_MATCH_CT_STATE, .ct_state = DP_CT_INVALID };
	m[1] = (struct dp_match){ .kind = DP_MATCH_L4PROTO, .l4proto = IPPROTO_TCP };
	r |= dp_ruleset_add(rs, chain, m, 2, &queue, 1);
	return r ? -E2BIG : 0;
}

int pktfilter_add_rules(struct daemon *d, struct dp_ruleset *rs)
{
	static const char *const names[] = { "pkt_in", "pkt_out", "pkt_fwd" };
	static const enum dp_hook hooks[] = { DP_HOOK_INPUT, DP_HOOK_OUTPUT, DP_HOOK_FORWARD };
	struct pcfg *c = P ? P->qcfg : NULL;
	size_t ch;
	int i, r;

	(void)d;
	if (!c || !c->rules_valid || !P->n_queues)
		return 0;
	for (i = 0; i < 3; i++) {
		r = dp_ruleset_add_chain(rs, names[i], DP_CHAIN_FILTER, hooks[i], DP_PRIO_FILTER + 10, &ch);
		if (r == 0)
			r = chain_rules(c, rs, ch, i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- status and life ------------------------------------------------------------------------ */

static json_t *counters_json(const struct pcounters *n)
{
	json_t *o = json_object();

#define C(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	C("received", n->received);
	C("to_provider", n->to_provider);
	C("allowed", n->allowed);
	C("dropped", n->dropped);
	C("delayed", n->delayed);
	C("modified", n->modified);
	C("refused", n->refused);
	C("late_verdicts", n->late);
	C("timeouts", n->timeouts);
	C("fail_policy_applied", n->fail_policy);
	C("ring_full_stalls", n->stalls);
	C("passthrough", n->passthrough);
	C("seqadj_applied", n->seqadj_applied);
	C("seqadj_missed", n->seqadj_missed);
	C("seqadj_flows", P->seqadj ? pkt_seqadj_count(P->seqadj) : 0);
	C("nfq_batch_verdicts", n->batch_msgs);
	C("nfq_single_verdicts", n->verdict_msgs);
	C("nfq_sends", n->sends);
	C("errors", n->errors);
#undef C
	return o;
}

static const char *cfg_state(const struct pcfg *c)
{
	return c->running ? "running" : c->present ? "starting" : "not running";
}

void *pktfilter_status_json(struct daemon *d)
{
	struct pcfg *c = cfg_active();
	struct ne_list *pos, *tmp;
	json_t *standby, *queues;
	unsigned i;

	(void)d;
	if (!c)
		return json_pack("{s:n, s:b, s:o}", "configuration", "enabled", false, "counters",
				 counters_json(&P->n));
	standby = json_array();
	ne_list_for_each(pos, tmp, &P->cfgs)
		if (pos != &c->link)
			json_array_append_new(standby, json_string(ne_container_of(pos, struct pcfg, link)->name));
	queues = json_array();
	for (i = 0; P->qcfg == c && i < P->n_queues; i++) {
		struct pfq *q = P->q[i];

		json_array_append_new(queues, json_pack("{s:i, s:i, s:b, s:i, s:i, s:b}", "index", (int)i,
							"nfqueue", (int)q->num, "rings", q->rings,
							"in_flight", (int)(q->tail - q->head), "delayed",
							(int)q->n_delayed, "stalled", q->stalled));
	}
	return json_pack("{s:s, s:b, s:s, s:b, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:o}",
			 "configuration", c->name, "enabled", true, "state", cfg_state(c), "settings",
			 c->has_settings, "fail_policy", c->fail_open ? "open" : "closed",
			 "verdict_timeout_ms", (int)c->timeout_ms, "delay_max_ms", (int)c->delay_max_ms,
			 "ring_kib", (int)c->ring_kib, "order", c->order, "rules", (int)c->n_rules,
			 "copy_range", (int)c->copy_range, "n_queues", (int)(P->qcfg == c ? P->n_queues : 0),
			 "queues", queues, "counters", counters_json(&P->n), "standby", standby);
}

int pktfilter_init(struct daemon *d)
{
	int r;

	P = calloc(1, sizeof(*P));
	if (!P)
		return -ENOMEM;
	P->d = d;
	ne_list_init(&P->cfgs);
	P->seqadj = pkt_seqadj_new(SEQADJ_FLOWS, SEQADJ_IDLE_S);
	if (!P->seqadj) {
		pktfilter_fini(d);
		return -ENOMEM;
	}
	r = sd_event_add_time(d->event, &P->timer, CLOCK_MONOTONIC, 0, 1000, on_timer, NULL);
	if (r < 0) {
		pktfilter_fini(d);
		return r;
	}
	sd_event_source_set_enabled(P->timer, SD_EVENT_OFF);
	pktfilter_reconfigure(d);
	return 0;
}

/* Before the table goes: held packets get the fail policy and the queues are unbound. */
void pktfilter_fini(struct daemon *d)
{
	struct ne_list *pos, *tmp;

	(void)d;
	if (!P)
		return;
	queues_close();
	ne_list_for_each(pos, tmp, &P->cfgs)
		cfg_free(ne_container_of(pos, struct pcfg, link));
	sd_event_source_disable_unref(P->timer);
	pkt_seqadj_free(P->seqadj);
	free(P);
	P = NULL;
}
