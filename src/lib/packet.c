/* libnetext, filter-packet provider (packet.h): settings, one worker thread per packet
 * queue, verdicts through the shared-memory rings (pktring.h), the packet accessors.
 *
 * Trust: as extension.c. netextd owns the rings' memory and writes the packet records; the
 * library checks each record's lengths before it hands a packet to the author, and a ring
 * found inconsistent is a protocol fault (the extension then exits at its next dispatch and
 * netextd restarts it). The author's code runs on the workers: a verdict the daemon would
 * refuse (an unknown kind, a modify without bytes or beyond 65535 bytes) is sent as an empty
 * modify, which netextd refuses and answers with the configuration's fail policy, rather than
 * the library guessing a verdict.
 *
 * Threads and locks. The dispatch thread creates, replaces and stops queues; each queue's
 * worker is the packet ring's only consumer; the verdict ring has two kinds of producers,
 * the worker and any thread calling ne_packet_resume(), serialised by the queue's lock
 * (which also guards the delayed packets). Lock order: the provider state's lock, then a
 * queue's. A queue is freed only after it left the state's array and its lock was taken
 * once more, so a resume that found it has finished with it. The state itself is reference
 * counted: resume takes a reference under extension.c's live lock, so a provider freed
 * meanwhile leaves the state alive until that resume returns.
 *
 * Packet ids: queue index << 56 | a per-queue sequence number, so that ids stay unique per
 * provider whatever the daemon's slots are. A delayed packet is remembered by id until its
 * resume, or until well after the daemon's deadline (delay_max_ms) passed. A resume that
 * comes while the handler of its packet still runs (another thread was quick) is kept and
 * sent instead of the delay. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netext/packet.h>

#include "lib-internal.h"
#include "pkt.h"
#include "pktring.h"
#include "util.h"

#define BATCH_MAX 64
#define FULL_SLEEP_NS 50000 /* verdict ring full: netextd is behind */
#define DELAY_MAX_MS_DEFAULT 10000
#define DELAY_MAX_MS_LIMIT 600000
#define DELAY_GRACE_USEC (60 * 1000000ULL) /* a late resume still gets 0 this long */
#define SWEEP_USEC 1000000ULL
#define DELAYED_BUCKETS 1024
#define ID_QUEUE_SHIFT 56
#define ID_SEQ_MASK ((1ULL << ID_QUEUE_SHIFT) - 1)
#define COPY_RANGE_MIN 128

struct ne_packet {
	uint64_t id;
	const uint8_t *bytes; /* into the packet ring */
	uint32_t len, orig_len;
	uint32_t slot, nfq_id;
	unsigned indev, outdev, queue;
	uint8_t direction, flags;
	int8_t parsed; /* 0 not yet, 1 parsed, -1 does not parse */
	struct pkt_info pi;
};

/* A packet that got DELAY, until its resume. */
struct delayed {
	struct delayed *next;
	uint64_t id;
	uint32_t slot, nfq_id;
	unsigned long long forget; /* monotonic usec: well after the daemon's deadline */
};

/* A resume that came while the handler of its packet still ran. */
struct early {
	uint64_t id;
	ne_packet_verdict_kind kind;
	uint8_t *bytes;
	size_t len;
};

struct pqueue {
	struct nelib_packet *st;
	unsigned index;
	void *map;
	size_t map_len;
	int efd_pkt, efd_vd, stop_fd;
	struct pr_ring pkt; /* the worker's only */
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;
	uint64_t next_seq; /* the worker's only */

	pthread_mutex_t lock; /* guards what follows */
	struct pr_ring vd;
	uint64_t batch_first, batch_end; /* ids whose handlers may still run */
	struct delayed *delayed[DELAYED_BUCKETS];
	unsigned long long next_sweep;
	struct early early[BATCH_MAX];
	size_t n_early;

	/* The worker's batch. */
	struct ne_packet pkts[BATCH_MAX];
	const ne_packet *ptrs[BATCH_MAX];
	ne_packet_verdict verdicts[BATCH_MAX];
};

struct settings_wait {
	struct settings_wait *next;
	uint64_t id;
	ne_packet_settings_done done;
	void *userdata;
};

struct nelib_packet {
	atomic_int refs;
	atomic_int fault; /* a worker's protocol fault, for the next dispatch */
	ne_provider *pv;  /* outlives the workers: they are joined before it is freed */
	struct ne_packet_filter_ops ops;
	void *userdata;
	unsigned delay_max_ms;
	/* Dispatch thread only. */
	struct settings_wait *settings;
	uint64_t next_settings_id;
	/* Guarded by lock (read by resume on any thread). */
	pthread_mutex_t lock;
	bool stopped;
	unsigned count; /* queues the daemon announced, 0 before the first */
	struct pqueue *queues[NE_PACKET_QUEUES_MAX];
};

/* --- state ------------------------------------------------------------------------------- */

static unsigned option_ms(const ne_options *options, const char *key, unsigned def, unsigned max)
{
	const char *v = ne_options_get(options, key);
	unsigned long t;
	char *end;

	if (!v || !*v)
		return def;
	errno = 0;
	t = strtoul(v, &end, 10);
	if (errno || *end || t > max)
		return def;
	return (unsigned)t;
}

struct nelib_packet *nelib_packet_new(ne_provider *pv, const ne_options *options,
				      const struct ne_packet_filter_ops *ops, void *userdata)
{
	struct nelib_packet *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		free(st);
		return NULL;
	}
	atomic_init(&st->refs, 1);
	atomic_init(&st->fault, 0);
	st->pv = pv;
	st->ops = *ops;
	st->userdata = userdata;
	st->delay_max_ms = option_ms(options, "delay_max_ms", DELAY_MAX_MS_DEFAULT, DELAY_MAX_MS_LIMIT);
	return st;
}

void nelib_packet_ref(struct nelib_packet *st)
{
	atomic_fetch_add(&st->refs, 1);
}

void nelib_packet_unref(struct nelib_packet *st)
{
	struct settings_wait *w;

	if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	while ((w = st->settings)) {
		st->settings = w->next;
		free(w);
	}
	pthread_mutex_destroy(&st->lock);
	free(st);
}

int nelib_packet_fault(const struct nelib_packet *st)
{
	return st ? atomic_load(&st->fault) : 0;
}

/* --- delayed packets (queue lock held) ------------------------------------------------- */

static struct delayed **delayed_slot(struct pqueue *q, uint64_t id)
{
	struct delayed **pp = &q->delayed[(id ^ (id >> 17)) % DELAYED_BUCKETS];

	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

/* Forgets the packets whose resume never came, long after netextd gave up on them. */
static void delayed_sweep(struct pqueue *q, unsigned long long now)
{
	struct delayed **pp, *d;
	size_t i;

	if (now < q->next_sweep)
		return;
	q->next_sweep = now + SWEEP_USEC;
	for (i = 0; i < DELAYED_BUCKETS; i++)
		for (pp = &q->delayed[i]; (d = *pp);) {
			if (d->forget <= now) {
				*pp = d->next;
				free(d);
			} else {
				pp = &d->next;
			}
		}
}

static int delayed_add(struct pqueue *q, const ne_packet *pkt)
{
	unsigned long long now = ne_now_usec();
	struct delayed **pp, *d;

	delayed_sweep(q, now);
	pp = delayed_slot(q, pkt->id);
	if (*pp)
		return 0;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->id = pkt->id;
	d->slot = pkt->slot;
	d->nfq_id = pkt->nfq_id;
	d->forget = now + q->st->delay_max_ms * 1000ULL + DELAY_GRACE_USEC;
	*pp = d;
	return 0;
}

static void delayed_clear(struct pqueue *q)
{
	struct delayed *d;
	size_t i;

	for (i = 0; i < DELAYED_BUCKETS; i++)
		while ((d = q->delayed[i])) {
			q->delayed[i] = d->next;
			free(d);
		}
}

static struct early *early_find(struct pqueue *q, uint64_t id)
{
	size_t i;

	for (i = 0; i < q->n_early; i++)
		if (q->early[i].id == id)
			return &q->early[i];
	return NULL;
}

static void early_clear(struct pqueue *q)
{
	size_t i;

	for (i = 0; i < q->n_early; i++)
		free(q->early[i].bytes);
	q->n_early = 0;
}

/* --- the verdict ring (queue lock held) ------------------------------------------------ */

static void signal_fd(int fd)
{
	uint64_t one = 1;

	(void)!write(fd, &one, sizeof(one));
}

/* One verdict record: 0, or -EAGAIN when the ring lacks room for now. A record that could
 * never fit the ring goes as an empty modify (the fail policy). */
static int vd_write(struct pqueue *q, uint32_t slot, uint32_t nfq_id, unsigned kind,
		    const void *bytes, size_t len)
{
	struct pr_verdict *v;

	if (sizeof(*v) + len > q->vd.size) {
		kind = NE_PACKET_MODIFY;
		len = 0;
	}
	v = pr_reserve(&q->vd, (uint32_t)(sizeof(*v) + len));
	if (!v)
		return -EAGAIN;
	v->rec.type = PR_REC_VERDICT;
	v->rec.flags = 0;
	v->slot = slot;
	v->id = nfq_id;
	v->kind = (uint8_t)kind;
	memset(v->reserved, 0, sizeof(v->reserved));
	v->len = (uint32_t)len;
	if (len)
		memcpy(v->data, bytes, len);
	pr_commit(&q->vd, v);
	return 0;
}

/* Publishes; returns 1 when the daemon asked to be woken, or a fault. */
static int vd_publish(struct pqueue *q)
{
	int r = pr_publish(&q->vd);

	if (r < 0)
		atomic_store(&q->st->fault, -EBADMSG);
	return r;
}

/* The worker's write: waits for room instead of losing a verdict (the lock is dropped
 * while it sleeps). -ECANCELED when the queue stops meanwhile. */
static int vd_write_wait(struct pqueue *q, uint32_t slot, uint32_t nfq_id, unsigned kind,
			 const void *bytes, size_t len)
{
	struct timespec ts = { 0, FULL_SLEEP_NS };

	while (vd_write(q, slot, nfq_id, kind, bytes, len) == -EAGAIN) {
		if (vd_publish(q) < 0)
			return -EBADMSG;
		signal_fd(q->efd_vd);
		pthread_mutex_unlock(&q->lock);
		nanosleep(&ts, NULL);
		pthread_mutex_lock(&q->lock);
		if (atomic_load(&q->stop))
			return -ECANCELED;
	}
	return 0;
}

/* What goes on the wire for the author's verdict (see the trust note at the top). */
static bool verdict_sendable(const ne_packet_verdict *v)
{
	switch (v->kind) {
	case NE_PACKET_ALLOW:
	case NE_PACKET_DROP:
	case NE_PACKET_DELAY:
		return true;
	case NE_PACKET_MODIFY:
		return v->bytes && v->len > 0 && v->len <= PKT_MAX;
	default:
		return false;
	}
}

/* The worker's verdict for one packet of the batch. */
static int put_verdict(struct pqueue *q, const ne_packet *pkt, const ne_packet_verdict *v)
{
	struct early *e;
	int r;

	pthread_mutex_lock(&q->lock);
	if (!verdict_sendable(v)) {
		r = vd_write_wait(q, pkt->slot, pkt->nfq_id, NE_PACKET_MODIFY, NULL, 0);
	} else if (v->kind != NE_PACKET_DELAY) {
		r = vd_write_wait(q, pkt->slot, pkt->nfq_id, v->kind,
				  v->kind == NE_PACKET_MODIFY ? v->bytes : NULL,
				  v->kind == NE_PACKET_MODIFY ? v->len : 0);
	} else if ((e = early_find(q, pkt->id))) {
		/* Resumed before the handler returned: the final verdict only. Copy it out of
		 * the entry first, as the lock may be dropped while the ring is full. */
		struct early x = *e;

		*e = q->early[--q->n_early];
		r = vd_write_wait(q, pkt->slot, pkt->nfq_id, x.kind, x.bytes, x.len);
		free(x.bytes);
	} else {
		/* Without memory the resume cannot be matched: the daemon's deadline decides. */
		(void)delayed_add(q, pkt);
		r = vd_write_wait(q, pkt->slot, pkt->nfq_id, NE_PACKET_DELAY, NULL, 0);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* --- the worker ----------------------------------------------------------------------------- */

/* The record's header is copied before it is checked (the daemon's memory). */
static int packet_from(struct pqueue *q, const struct pr_rec *rec, uint32_t rec_len, struct ne_packet *pkt)
{
	const struct pr_packet *rp = (const struct pr_packet *)rec;
	struct pr_packet h;

	if (rec_len < sizeof(h))
		return -EBADMSG;
	memcpy(&h, rp, sizeof(h));
	if (h.len > rec_len - sizeof(h) || h.len == 0 || h.len > PKT_MAX || h.orig_len < h.len)
		return -EBADMSG;
	memset(pkt, 0, offsetof(struct ne_packet, pi));
	pkt->id = (uint64_t)q->index << ID_QUEUE_SHIFT | (++q->next_seq & ID_SEQ_MASK);
	pkt->bytes = rp->data;
	pkt->len = h.len;
	pkt->orig_len = h.orig_len;
	pkt->slot = h.slot;
	pkt->nfq_id = h.id;
	pkt->indev = h.indev;
	pkt->outdev = h.outdev;
	pkt->queue = q->index;
	pkt->direction = h.direction;
	pkt->flags = h.flags;
	if (pkt->len < pkt->orig_len)
		pkt->flags |= PR_PKT_TRUNCATED;
	return 0;
}

/* Takes up to BATCH_MAX packets off the ring (their bytes stay until pr_release). */
static int take_batch(struct pqueue *q, size_t *ret_n)
{
	const struct pr_rec *rec;
	size_t n = 0;
	int err, r;

	while (n < BATCH_MAX) {
		err = 0;
		rec = pr_peek(&q->pkt, &err);
		if (!rec) {
			if (err)
				return -EBADMSG;
			break;
		}
		if (rec->type != PR_REC_PACKET)
			return -EBADMSG;
		r = packet_from(q, rec, q->pkt.peek_len, &q->pkts[n]);
		if (r < 0)
			return r;
		pr_consume(&q->pkt);
		n++;
	}
	*ret_n = n;
	return 0;
}

static void batch_open(struct pqueue *q, size_t n)
{
	pthread_mutex_lock(&q->lock);
	q->batch_first = q->pkts[0].id;
	q->batch_end = q->pkts[n - 1].id + 1;
	pthread_mutex_unlock(&q->lock);
}

/* Ends the batch: resumes kept for packets that were not delayed were mistakes; publishes. */
static int batch_close(struct pqueue *q)
{
	int r;

	pthread_mutex_lock(&q->lock);
	q->batch_first = q->batch_end = 0;
	early_clear(q);
	r = vd_publish(q);
	pthread_mutex_unlock(&q->lock);
	if (r > 0)
		signal_fd(q->efd_vd);
	return r < 0 ? r : 0;
}

static int handle_batch(struct pqueue *q, size_t n)
{
	struct nelib_packet *st = q->st;
	size_t i;
	int r = 0;

	batch_open(q, n);
	if (st->ops.handle_packets) {
		for (i = 0; i < n; i++) {
			q->ptrs[i] = &q->pkts[i];
			q->verdicts[i] = ne_packet_allow();
		}
		st->ops.handle_packets(st->pv, q->ptrs, q->verdicts, n, st->userdata);
		for (i = 0; i < n && r == 0; i++)
			r = put_verdict(q, &q->pkts[i], &q->verdicts[i]);
	} else {
		/* A modify's bytes are valid until its handler returns: copy each at once. */
		for (i = 0; i < n && r == 0; i++) {
			q->verdicts[i] = st->ops.handle_packet(st->pv, &q->pkts[i], st->userdata);
			r = put_verdict(q, &q->pkts[i], &q->verdicts[i]);
		}
	}
	/* The space goes back after the verdicts are published: netextd re-reads an allowed
	 * packet of a TCP flow it shifts from the ring when the verdict comes, so the bytes
	 * should still be there then. (A daemon stalled on a full packet ring retries on a
	 * timer, so it does not need a wake-up for the space.) */
	if (r == 0)
		r = batch_close(q);
	pr_release(&q->pkt);
	return r;
}

static int drain(struct pqueue *q)
{
	size_t n;
	int r;

	while (!atomic_load(&q->stop)) {
		r = take_batch(q, &n);
		if (r < 0)
			return r;
		if (n == 0)
			return 0;
		r = handle_batch(q, n);
		if (r < 0)
			return r;
	}
	return -ECANCELED;
}

/* Sleeps until the daemon signals packets or the queue stops. */
static int sleep_on(struct pqueue *q)
{
	struct pollfd p[2] = { { .fd = q->efd_pkt, .events = POLLIN }, { .fd = q->stop_fd, .events = POLLIN } };
	uint64_t v;

	if (poll(p, 2, -1) < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents || atomic_load(&q->stop))
		return -ECANCELED;
	if (p[0].revents & (POLLERR | POLLNVAL))
		return -EBADMSG;
	if ((p[0].revents & POLLIN) && read(q->efd_pkt, &v, sizeof(v)) < 0 && errno != EAGAIN &&
	    errno != EINTR)
		return -errno;
	return 0;
}

static void *worker(void *arg)
{
	struct pqueue *q = arg;
	int r = 0;

	while (r == 0 && !atomic_load(&q->stop)) {
		r = drain(q);
		if (r < 0 || !pr_prepare_wait(&q->pkt))
			continue;
		r = sleep_on(q);
		pr_wake_done(&q->pkt);
	}
	if (r < 0 && r != -ECANCELED)
		atomic_store(&q->st->fault, r);
	return NULL;
}

/* --- queues ----------------------------------------------------------------------------- */

static void close_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Stops the worker (if any), then frees the queue; q must have left the state's array.
 * Returns the queue's last packet sequence number. */
static uint64_t queue_free(struct pqueue *q)
{
	uint64_t seq;

	if (!q)
		return 0;
	atomic_store(&q->stop, true);
	if (q->thread_started) {
		signal_fd(q->stop_fd);
		pthread_join(q->thread, NULL);
	}
	/* A resume that found q before it left the array has finished once this returns. */
	pthread_mutex_lock(&q->lock);
	delayed_clear(q);
	early_clear(q);
	pthread_mutex_unlock(&q->lock);
	pthread_mutex_destroy(&q->lock);
	if (q->map)
		pr_shm_unmap(q->map, q->map_len);
	close_fds(&q->efd_pkt, 1);
	close_fds(&q->efd_vd, 1);
	close_fds(&q->stop_fd, 1);
	seq = q->next_seq;
	free(q);
	return seq;
}

/* Workers take no signals: the extension's handlers run on its own threads. */
static int start_worker(struct pqueue *q)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&q->thread, NULL, worker, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	q->thread_started = r == 0;
	return r;
}

/* Takes the three fds in every case. */
static int queue_new(struct nelib_packet *st, const struct ne_msg_packet_queue *m, int *fds,
		     struct pqueue **ret_q)
{
	struct pqueue *q = calloc(1, sizeof(*q));
	int r;

	if (!q || pthread_mutex_init(&q->lock, NULL) != 0) {
		free(q);
		close_fds(fds, 3);
		return -ENOMEM;
	}
	q->st = st;
	q->index = m->index;
	q->efd_pkt = fds[1];
	q->efd_vd = fds[2];
	q->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r = pr_shm_map(fds[0], &q->map, &q->map_len);
	close(fds[0]);
	if (r < 0 || q->map_len != m->map_size) {
		r = r < 0 ? r : -EPROTO;
		goto fail;
	}
	if (q->stop_fd < 0) {
		r = ne_negerrno();
		goto fail;
	}
	pr_ring_attach(&q->pkt, q->map, 0, false);
	pr_ring_attach(&q->vd, q->map, 1, true);
	*ret_q = q;
	return 0;
fail:
	(void)queue_free(q);
	return r;
}

/* PACKET_QUEUE: maps the rings and starts the queue's worker, replacing an older queue of
 * the same index. Takes the fds in every case. */
static int on_queue(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len,
		    int *fds, size_t nfds)
{
	struct ne_msg_packet_queue m;
	struct nelib_packet *st;
	struct pqueue *q, *old;
	ne_provider *pv;
	int r;

	if (h->id != 0 || nfds != 3 || ne_msg_packet_queue_decode(p, len, &m) < 0 ||
	    m.index >= m.count || m.count > NE_PACKET_QUEUES_MAX) {
		close_fds(fds, nfds);
		return -EBADMSG;
	}
	pv = nelib_find_provider(ext, m.provider);
	if (pv && ne_provider_get_type(pv) != NE_PROVIDER_FILTER_PACKET)
		r = -EPROTO;
	else
		r = pv && (st = nelib_provider_packet(pv)) ? 0 : 1; /* 1: stopped meanwhile */
	if (r == 0 && st->count && st->count != m.count)
		r = -EPROTO;
	if (r != 0) {
		close_fds(fds, nfds);
		return r < 0 ? r : 0;
	}
	r = queue_new(st, &m, fds, &q);
	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	old = st->queues[m.index];
	st->queues[m.index] = q;
	st->count = m.count;
	pthread_mutex_unlock(&st->lock);
	/* Ids go on from the old queue's: never reused within the provider. */
	q->next_seq = queue_free(old);
	return start_worker(q);
}

void nelib_packet_stop(struct nelib_packet *st)
{
	struct pqueue *qs[NE_PACKET_QUEUES_MAX];
	size_t i;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->stopped = true;
	memcpy(qs, st->queues, sizeof(qs));
	memset(st->queues, 0, sizeof(st->queues));
	pthread_mutex_unlock(&st->lock);
	for (i = 0; i < NE_PACKET_QUEUES_MAX; i++)
		(void)queue_free(qs[i]);
}

void nelib_packet_free(struct nelib_packet *st)
{
	nelib_packet_stop(st);
	nelib_packet_unref(st);
}

/* --- settings ------------------------------------------------------------------------------ */

static struct ne_view view_of(const char *s)
{
	return (struct ne_view){ s ? s : "", s ? strlen(s) : 0 };
}

static int on_result(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	char text[NE_WIRE_STR_MAX + 1];
	struct settings_wait **pp, *w;
	struct ne_msg_result m;
	struct nelib_packet *st;
	ne_provider *pv;

	if (ne_msg_result_decode(p, len, &m) < 0)
		return -EBADMSG;
	pv = nelib_find_provider(ext, (uint32_t)(id >> 32));
	if (!pv || !(st = nelib_provider_packet(pv)))
		return 0; /* stopped meanwhile */
	for (pp = &st->settings; *pp && (*pp)->id != id; pp = &(*pp)->next)
		;
	if (!*pp)
		return -EPROTO;
	w = *pp;
	*pp = w->next;
	memcpy(text, m.message.p ? m.message.p : "", m.message.len);
	text[m.message.len] = '\0';
	if (w->done)
		w->done(pv, m.error, m.message.len ? text : NULL, w->userdata);
	free(w);
	return 0;
}

int nelib_packet_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len,
		       int *fds, size_t nfds)
{
	switch (h->type) {
	case NE_MSG_PACKET_QUEUE:
		return on_queue(ext, h, p, len, fds, nfds);
	case NE_MSG_RESULT:
		if (nfds) {
			close_fds(fds, nfds);
			return -EBADMSG;
		}
		return on_result(ext, h->id, p, len);
	default:
		close_fds(fds, nfds);
		return -EPROTO;
	}
}

static int rule_to_wire(const struct ne_packet_rule *r, struct ne_wire_packet_rule *w)
{
	if ((unsigned)r->direction > NE_PACKET_FORWARD)
		return -EINVAL;
	if (r->family == AF_INET)
		w->family = 4;
	else if (r->family == AF_INET6)
		w->family = 6;
	else if (r->family == 0)
		w->family = 0;
	else
		return -EINVAL;
	w->direction = (uint8_t)r->direction;
	w->protocol = r->protocol;
	w->interface = view_of(r->interface);
	w->local_network = view_of(r->local_network);
	w->remote_network = view_of(r->remote_network);
	w->local_port = r->local_port;
	w->remote_port = r->remote_port;
	if (w->interface.len > NE_WIRE_STR_MAX || w->local_network.len > NE_WIRE_STR_MAX ||
	    w->remote_network.len > NE_WIRE_STR_MAX)
		return -EINVAL;
	return 0;
}

/* The settings the caller gave, with the fields its (possibly older) struct lacks as 0. */
static int settings_copy(const struct ne_packet_settings *in, struct ne_packet_settings *out)
{
	memset(out, 0, sizeof(*out));
	if (!in || in->size < offsetof(struct ne_packet_settings, copy_range))
		return -EINVAL;
	memcpy(out, in, NE_MIN((size_t)in->size, sizeof(*out)));
	if (out->n_rules && !out->rules)
		return -EINVAL;
	if (out->n_rules > NE_PACKET_RULES_MAX)
		return -E2BIG;
	if ((out->copy_range && out->copy_range < COPY_RANGE_MIN) || out->copy_range > PKT_MAX ||
	    out->queues > NE_PACKET_QUEUES_MAX)
		return -EINVAL;
	return 0;
}

static int send_settings(ne_provider *pv, const struct ne_packet_settings *s, uint64_t id)
{
	struct ne_msg_packet_settings m = { 0 };
	ne_extension *ext = ne_provider_extension(pv);
	struct ne_wbuf b;
	size_t i;
	int r = 0;

	m.rules = calloc(s->n_rules + 1, sizeof(*m.rules));
	if (!m.rules)
		return -ENOMEM;
	m.provider = nelib_provider_handle(pv);
	m.copy_range = s->copy_range;
	m.queues = s->queues;
	m.n_rules = (uint16_t)s->n_rules;
	for (i = 0; i < s->n_rules && r == 0; i++)
		r = rule_to_wire(&s->rules[i], &m.rules[i]);
	if (r == 0) {
		b = nelib_wbuf(ext);
		r = ne_msg_packet_settings_encode(&b, id, &m);
		if (r == -EMSGSIZE)
			r = -E2BIG;
	}
	free(m.rules);
	return r < 0 ? r : nelib_send(ext, r);
}

int ne_packet_apply_settings(ne_provider *provider, const struct ne_packet_settings *settings,
			     ne_packet_settings_done done, void *userdata)
{
	struct ne_packet_settings s;
	struct nelib_packet *st;
	struct settings_wait *w;
	unsigned count;
	int r;

	if (!nelib_provider_live(provider) || !(st = nelib_provider_packet(provider)))
		return -EINVAL;
	r = settings_copy(settings, &s);
	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	count = st->count;
	pthread_mutex_unlock(&st->lock);
	if (count && count != (s.queues ? s.queues : 1u))
		return -EINVAL; /* fixed by the first settings */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	/* Ids carry the provider handle, so a RESULT finds its provider without a search. */
	w->id = (uint64_t)nelib_provider_handle(provider) << 32 | (++st->next_settings_id & 0xffffffffu);
	w->done = done;
	w->userdata = userdata;
	r = send_settings(provider, &s, w->id);
	if (r < 0) {
		free(w);
		return r;
	}
	w->next = st->settings;
	st->settings = w;
	return 0;
}

/* --- resume -------------------------------------------------------------------------------- */

/* Keeps a resume for a packet whose handler may still run; its bytes are copied now. */
static int early_add(struct pqueue *q, uint64_t id, const ne_packet_verdict *v)
{
	struct early *e;

	if (early_find(q, id))
		return -ENOENT; /* resumed twice */
	if (q->n_early == BATCH_MAX)
		return -EAGAIN;
	e = &q->early[q->n_early];
	e->id = id;
	e->kind = v->kind;
	e->len = v->kind == NE_PACKET_MODIFY ? v->len : 0;
	e->bytes = NULL;
	if (e->len && !(e->bytes = malloc(e->len)))
		return -ENOMEM;
	if (e->len)
		memcpy(e->bytes, v->bytes, e->len);
	q->n_early++;
	return 0;
}

/* Queue lock held. 1 when the daemon must be woken. */
static int resume_locked(struct pqueue *q, uint64_t id, const ne_packet_verdict *v)
{
	struct delayed **pp = delayed_slot(q, id), *d = *pp;
	int r;

	if (!d)
		return id >= q->batch_first && id < q->batch_end ? early_add(q, id, v) : -ENOENT;
	r = vd_write(q, d->slot, d->nfq_id, v->kind, v->kind == NE_PACKET_MODIFY ? v->bytes : NULL,
		     v->kind == NE_PACKET_MODIFY ? v->len : 0);
	if (r == -EAGAIN) {
		/* Full: make sure the daemon is reading, and let the caller retry. */
		if (vd_publish(q) < 0)
			return -EBADMSG;
		signal_fd(q->efd_vd);
		return -EAGAIN;
	}
	*pp = d->next;
	free(d);
	return vd_publish(q);
}

static int resume(struct nelib_packet *st, uint64_t id, const ne_packet_verdict *v)
{
	unsigned index = (unsigned)(id >> ID_QUEUE_SHIFT);
	struct pqueue *q;
	int r;

	pthread_mutex_lock(&st->lock);
	if (st->stopped) {
		pthread_mutex_unlock(&st->lock);
		return -EINVAL;
	}
	q = index < NE_PACKET_QUEUES_MAX ? st->queues[index] : NULL;
	if (!q) {
		pthread_mutex_unlock(&st->lock);
		return -ENOENT;
	}
	pthread_mutex_lock(&q->lock);
	pthread_mutex_unlock(&st->lock);
	r = resume_locked(q, id, v);
	/* Under the lock: once it is released, the dispatch thread may close the fd. */
	if (r > 0)
		signal_fd(q->efd_vd);
	pthread_mutex_unlock(&q->lock);
	return r < 0 ? r : 0;
}

int ne_packet_resume(ne_provider *provider, uint64_t packet_id, ne_packet_verdict verdict)
{
	struct nelib_packet *st;
	int r;

	if (verdict.kind == NE_PACKET_DELAY || !verdict_sendable(&verdict))
		return -EINVAL;
	st = nelib_provider_packet_ref(provider);
	if (!st)
		return -EINVAL;
	r = resume(st, packet_id, &verdict);
	nelib_packet_unref(st);
	return r;
}

/* --- registration ---------------------------------------------------------------------------- */

int ne_extension_register_packet_filter(ne_extension *ext, const struct ne_provider_ops *ops,
					const struct ne_packet_filter_ops *packet_ops, void *userdata)
{
	/* The first table ever published is this one: later headers may only append. */
	if (!ext || !packet_ops || packet_ops->size < sizeof(struct ne_packet_filter_ops))
		return -EINVAL;
	if (!packet_ops->handle_packet && !packet_ops->handle_packets)
		return -EINVAL;
	return nelib_register_packet(ext, ops, packet_ops, userdata);
}

/* --- accessors --------------------------------------------------------------------------------- */

uint64_t ne_packet_id(const ne_packet *packet)
{
	return packet ? packet->id : 0;
}

const uint8_t *ne_packet_bytes(const ne_packet *packet)
{
	return packet ? packet->bytes : NULL;
}

size_t ne_packet_length(const ne_packet *packet)
{
	return packet ? packet->len : 0;
}

size_t ne_packet_original_length(const ne_packet *packet)
{
	return packet ? packet->orig_len : 0;
}

ne_packet_direction ne_packet_get_direction(const ne_packet *packet)
{
	return packet ? (ne_packet_direction)packet->direction : NE_PACKET_ANY;
}

unsigned ne_packet_in_interface(const ne_packet *packet)
{
	return packet ? packet->indev : 0;
}

unsigned ne_packet_out_interface(const ne_packet *packet)
{
	return packet ? packet->outdev : 0;
}

bool ne_packet_is_gso(const ne_packet *packet)
{
	return packet && (packet->flags & PR_PKT_GSO);
}

unsigned ne_packet_queue(const ne_packet *packet)
{
	return packet ? packet->queue : 0;
}

static bool truncated(const ne_packet *packet)
{
	return packet->len < packet->orig_len;
}

/* The parse, computed once. The packet is the library's (the handler gets it const), and
 * only the thread running its handler looks at it. */
static const struct pkt_info *parsed(const ne_packet *packet)
{
	struct ne_packet *p = (struct ne_packet *)packet;

	if (!p)
		return NULL;
	if (p->parsed == 0)
		p->parsed = pkt_parse(p->bytes, p->len, truncated(p), &p->pi) == 0 ? 1 : -1;
	return p->parsed > 0 ? &p->pi : NULL;
}

int ne_packet_family(const ne_packet *packet)
{
	const struct pkt_info *pi = parsed(packet);

	return pi ? pi->family : -1;
}

int ne_packet_protocol(const ne_packet *packet)
{
	const struct pkt_info *pi = parsed(packet);

	if (!pi || (pi->fragment && !pi->first_fragment))
		return -1;
	return pi->protocol;
}

static bool has_ports(const struct pkt_info *pi)
{
	return (pi->protocol == IPPROTO_TCP || pi->protocol == IPPROTO_UDP) && pi->l4_hdr_len &&
	       (!pi->fragment || pi->first_fragment);
}

static int endpoint(const ne_packet *packet, bool source, struct sockaddr_storage *ret)
{
	const struct pkt_info *pi = parsed(packet);
	uint16_t port;

	if (!ret)
		return -EINVAL;
	if (!pi)
		return -EPROTO;
	port = has_ports(pi) ? (source ? pi->sport : pi->dport) : 0;
	memset(ret, 0, sizeof(*ret));
	if (pi->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ret;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, source ? pi->saddr : pi->daddr, 16);
		s6->sin6_port = htons(port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ret;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, source ? pi->saddr : pi->daddr, 4);
		s4->sin_port = htons(port);
	}
	return 0;
}

int ne_packet_source(const ne_packet *packet, struct sockaddr_storage *ret)
{
	return endpoint(packet, true, ret);
}

int ne_packet_destination(const ne_packet *packet, struct sockaddr_storage *ret)
{
	return endpoint(packet, false, ret);
}

/* A TCP or UDP packet that is no fragment, with its transport header: 0, -EPROTO. */
static int transport(const ne_packet *packet, const struct pkt_info **ret)
{
	const struct pkt_info *pi = parsed(packet);

	if (!pi || pi->fragment || (pi->protocol != IPPROTO_TCP && pi->protocol != IPPROTO_UDP))
		return -EPROTO;
	if (!pi->l4_hdr_len)
		return -ENODATA; /* the copy range cut into the transport header */
	*ret = pi;
	return 0;
}

int ne_packet_payload(const ne_packet *packet, const uint8_t **ret, size_t *ret_len)
{
	const struct pkt_info *pi;
	int r;

	if (!ret || !ret_len)
		return -EINVAL;
	r = transport(packet, &pi);
	if (r < 0)
		return r;
	if (pi->payload_off + pi->payload_len > packet->len)
		return -ENODATA;
	*ret = packet->bytes + pi->payload_off;
	*ret_len = pi->payload_len;
	return 0;
}

static void put_be16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The headers are copied as they are (options, extension headers) and only the length
 * fields change; IPv6 jumbograms do not occur below 65536 bytes. payload must not overlap
 * buf. A truncated packet cannot be modified (-ENODATA). */
long ne_packet_build(const ne_packet *packet, const void *payload, size_t len, uint8_t *buf,
		     size_t cap)
{
	const struct pkt_info *pi;
	size_t total;
	int r;

	if (!packet || (len && !payload) || (cap && !buf))
		return -EINVAL;
	r = transport(packet, &pi);
	if (r < 0)
		return r;
	if (truncated(packet))
		return -ENODATA;
	if (len > PKT_MAX || pi->payload_off + len > PKT_MAX)
		return -EMSGSIZE;
	total = pi->payload_off + len;
	if (total > cap)
		return -ENOBUFS;
	memcpy(buf, packet->bytes, pi->payload_off);
	if (len)
		memcpy(buf + pi->payload_off, payload, len);
	if (pi->family == AF_INET)
		put_be16(buf + 2, total);
	else
		put_be16(buf + 4, total - 40);
	if (pi->protocol == IPPROTO_UDP)
		put_be16(buf + pi->l4_off + 4, total - pi->l4_off);
	return (long)total;
}
