/* libnetext, packet-tunnel provider (tunnel.h): settings, the TUN device's queues with one
 * packet thread each, segmentation of the kernel's offloaded packets, writes, transport
 * sockets, reasserting and cancel.
 *
 * Trust: as extension.c. netextd opens the TUN device and sends its queue fds; the kernel
 * writes the packets and the vnet header in front of each. Both mean well, but every vnet
 * header and IP header is still checked before it is used (a length that does not add up, an
 * unknown GSO type, a checksum offset outside the packet): such a packet is dropped and
 * counted, never handed to the provider half-made.
 *
 * Threads and locks. The dispatch thread creates, replaces and stops the queues and handles
 * every frame; each queue's packet thread is the only reader of its fd and runs
 * ops->read_packets; ne_tunnel_write_packets() may run on any thread and writes on the queue
 * fds under the read side of the state's rwlock, which the dispatch thread takes for writing
 * to swap or stop the queues, so a fd is never closed under a writer. The state is reference
 * counted: writers take a reference under extension.c's live lock, so a provider freed
 * meanwhile leaves the state alive until the write returns.
 *
 * Reading: poll (queue fd + a stop eventfd), then read until EAGAIN or BATCH_MAX reads into
 * one preallocated buffer per thread; GSO packets are cut in place into that buffer (from the
 * last segment backwards, each segment's output lies at or after its input); read_packets
 * gets the packets whenever BATCH_MAX have gathered and once the queue is empty. No
 * allocation per packet.
 *
 * Writing: a queue per calling thread (each thread gets a slot number once, round robin;
 * queue = slot % queues), so one thread's packets stay in order and threads do not share a
 * queue when there are enough. The fds are non-blocking: a full queue drops the rest of the
 * call and counts them. Consecutive TCP segments of one flow within a call are merged into
 * one GSO write (tunseg.c, which also does the segmentation: the
 * packet work without I/O, fuzzed by tests/fuzz/fuzz_tunseg.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <netext/tunnel.h>

#include "lib-internal.h"
#include "pkt.h"
#include "tunseg.h"
#include "util.h"

#define VNET_HDR_LEN 10
#define BATCH_MAX 64 /* reads per poll; a batch goes out once it holds this many packets */
#define SEGS_MAX 1024                     /* room: a batch plus one GSO read's segments */
#define BUF_SIZE (1024 * 1024)            /* per packet thread */

struct tqueue {
	struct nelib_tunnel *st;
	unsigned index;
	int fd, stop_fd;
	size_t vnet; /* 0 or VNET_HDR_LEN */
	pthread_t thread;
	bool thread_started;
	/* The packet thread's. */
	struct tunseg_batch batch;
	ne_tunnel_packet pkts[SEGS_MAX];
};

/* A settings or socket request waiting for the daemon's answer. */
struct req {
	struct req *next;
	uint64_t id;
	bool socket;
	ne_tunnel_settings_done settings_done;
	ne_tunnel_socket_done socket_done;
	void *userdata;
};

struct nelib_tunnel {
	atomic_int refs;
	ne_provider *pv; /* outlives the packet threads: they are joined before it is freed */
	struct ne_tunnel_ops ops;
	void *userdata;
	atomic_uint_fast64_t write_drops;
	/* Dispatch thread only. */
	struct req *reqs;
	bool settings_busy;
	uint32_t next_id;
	/* Guarded by lock: read by writers and ne_tunnel_interface_name on any thread. */
	pthread_rwlock_t lock;
	bool stopped;
	unsigned count; /* queues of the device, 0 before it exists */
	struct tqueue *queues[NE_WIRE_TUNNEL_QUEUES_MAX];
	char ifname[IFNAMSIZ];
	uint32_t ifindex, mtu, offloads;
};

static atomic_uint next_thread_slot;
static _Thread_local unsigned thread_slot; /* 0: none yet */

/* --- state ------------------------------------------------------------------------------- */

struct nelib_tunnel *nelib_tunnel_new(ne_provider *pv, const struct ne_tunnel_ops *ops, void *userdata)
{
	struct nelib_tunnel *st = calloc(1, sizeof(*st));
	pthread_rwlockattr_t a;
	int r;

	if (!st || pthread_rwlockattr_init(&a) != 0) {
		free(st);
		return NULL;
	}
	/* A stop must not wait behind a stream of writers. */
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	r = pthread_rwlock_init(&st->lock, &a);
	pthread_rwlockattr_destroy(&a);
	if (r != 0) {
		free(st);
		return NULL;
	}
	atomic_init(&st->refs, 1);
	atomic_init(&st->write_drops, 0);
	st->pv = pv;
	st->ops = *ops;
	st->userdata = userdata;
	return st;
}

void nelib_tunnel_ref(struct nelib_tunnel *st)
{
	atomic_fetch_add(&st->refs, 1);
}

void nelib_tunnel_unref(struct nelib_tunnel *st)
{
	struct req *w;

	if (!st || atomic_fetch_sub(&st->refs, 1) != 1)
		return;
	while ((w = st->reqs)) {
		st->reqs = w->next;
		free(w);
	}
	pthread_rwlock_destroy(&st->lock);
	free(st);
}

/* --- packet threads ------------------------------------------------------------------------ */

/* The batch is full, or the reads are done: the provider gets it. */
static void flush(struct tunseg_batch *b, void *userdata)
{
	struct tqueue *q = userdata;

	/* Registered through ne_extension_register() alone, a tunnel has no reader: drop. */
	if (b->n && q->st->ops.read_packets)
		q->st->ops.read_packets(q->st->pv, b->pkts, b->n, q->index, q->st->userdata);
	b->n = 0;
	b->used = 0;
}

/* Reads until the queue is empty or BATCH_MAX packets were read, then hands the batch over.
 * Returns 0, or -EPIPE / a negative errno when the fd is done. */
static int read_batch(struct tqueue *q)
{
	struct tunseg_batch *b = &q->batch;
	size_t reads = 0;
	ssize_t r;
	int err = 0;

	b->n = 0;
	b->used = 0;
	while (reads < BATCH_MAX) {
		/* Small batches: a provider that sends each batch at once (sendmmsg) would
		 * otherwise burst hundreds of segments of a TSO read into a slow peer's socket
		 * (bench/tunnel: C→S 0.56× of the engine without netext with 1024-packet batches,
		 * 1.03× with 64). */
		if (b->cap - b->used < TUNSEG_READ_MAX || b->n >= BATCH_MAX)
			flush(b, q);
		r = read(q->fd, b->buf + b->used, TUNSEG_READ_MAX);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno == EAGAIN ? 0 : -errno;
			break;
		}
		if (r == 0) {
			err = -EPIPE;
			break;
		}
		reads++;
		tunseg_take(b, q->vnet, (size_t)r);
	}
	flush(b, q);
	return err;
}

static void *reader(void *arg)
{
	struct tqueue *q = arg;
	struct pollfd p[2] = { { .fd = q->fd, .events = POLLIN }, { .fd = q->stop_fd, .events = POLLIN } };

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLNVAL)
			break;
		if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) {
			/* An error or hang-up without data: the device is gone. */
			if (read_batch(q) < 0)
				break;
		}
	}
	return NULL;
}

/* --- queues ------------------------------------------------------------------------------- */

static void close_fds(int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void queue_free(struct tqueue *q)
{
	uint64_t one = 1;

	if (!q)
		return;
	if (q->thread_started) {
		if (write(q->stop_fd, &one, sizeof(one)) < 0) {
			/* an eventfd write fails only at its maximum: it is readable then */
		}
		pthread_join(q->thread, NULL);
	}
	if (q->fd >= 0)
		close(q->fd);
	if (q->stop_fd >= 0)
		close(q->stop_fd);
	free(q->batch.buf);
	free(q);
}

/* Takes fd in every case. */
static int queue_new(struct nelib_tunnel *st, unsigned index, int fd, size_t vnet, struct tqueue **ret_q)
{
	struct tqueue *q = calloc(1, sizeof(*q));
	int fl;

	if (!q) {
		close(fd);
		return -ENOMEM;
	}
	q->st = st;
	q->index = index;
	q->fd = fd;
	q->vnet = vnet;
	q->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->batch = (struct tunseg_batch){ .buf = malloc(BUF_SIZE), .cap = BUF_SIZE, .pkts = q->pkts,
					  .max = SEGS_MAX, .flush = flush, .userdata = q };
	fl = fcntl(fd, F_GETFL);
	if (q->stop_fd < 0 || !q->batch.buf || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = q->batch.buf ? ne_negerrno() : -ENOMEM;

		queue_free(q);
		return r;
	}
	*ret_q = q;
	return 0;
}

/* Packet threads take no signals: the extension's handlers run on its own threads. */
static int start_reader(struct tqueue *q)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&q->thread, NULL, reader, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	q->thread_started = r == 0;
	return r;
}

static void queues_free(struct tqueue **qs)
{
	size_t i;

	for (i = 0; i < NE_WIRE_TUNNEL_QUEUES_MAX; i++)
		queue_free(qs[i]);
}

/* --- frames from the daemon --------------------------------------------------------------- */

static bool device_valid(const struct ne_msg_hdr *h, const struct ne_msg_tunnel_device *m, size_t nfds)
{
	return h->id == 0 && m->count >= 1 && m->count <= NE_WIRE_TUNNEL_QUEUES_MAX && nfds == m->count &&
	       (m->vnet_hdr_len == 0 || m->vnet_hdr_len == VNET_HDR_LEN) && m->ifname.len >= 1 &&
	       m->ifname.len < IFNAMSIZ && !memchr(m->ifname.p, '\0', m->ifname.len);
}

/* Installs the queues (replacing an earlier device's) and starts their threads before the
 * settings' RESULT arrives. */
static int install_device(struct nelib_tunnel *st, const struct ne_msg_tunnel_device *m, struct tqueue **qs)
{
	struct tqueue *old[NE_WIRE_TUNNEL_QUEUES_MAX];
	unsigned i;
	int r = 0;

	pthread_rwlock_wrlock(&st->lock);
	memcpy(old, st->queues, sizeof(old));
	memcpy(st->queues, qs, sizeof(old));
	st->count = m->count;
	memcpy(st->ifname, m->ifname.p, m->ifname.len);
	st->ifname[m->ifname.len] = '\0';
	st->ifindex = m->ifindex;
	st->mtu = m->mtu;
	st->offloads = m->offloads;
	pthread_rwlock_unlock(&st->lock);
	queues_free(old);
	for (i = 0; i < m->count && r == 0; i++)
		r = start_reader(qs[i]);
	return r;
}

static int on_device(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len,
		     int *fds, size_t nfds)
{
	struct tqueue *qs[NE_WIRE_TUNNEL_QUEUES_MAX] = { 0 };
	struct ne_msg_tunnel_device m;
	struct nelib_tunnel *st = NULL;
	ne_provider *pv;
	unsigned i;
	int r;

	if (ne_msg_tunnel_device_decode(p, len, &m) < 0 || !device_valid(h, &m, nfds)) {
		close_fds(fds, nfds);
		return -EBADMSG;
	}
	pv = nelib_find_provider(ext, m.provider);
	if (pv && ne_provider_get_type(pv) != NE_PROVIDER_PACKET_TUNNEL)
		r = -EPROTO;
	else
		r = pv && (st = nelib_provider_tunnel(pv)) ? 0 : 1; /* 1: stopped meanwhile */
	if (r == 0 && st->count && st->count != m.count)
		r = -EPROTO; /* the number of queues is fixed by the first device */
	if (r != 0) {
		close_fds(fds, nfds);
		return r < 0 ? r : 0;
	}
	for (i = 0; i < m.count; i++) {
		r = queue_new(st, i, fds[i], m.vnet_hdr_len, &qs[i]);
		fds[i] = -1;
		if (r < 0) {
			close_fds(fds, nfds);
			queues_free(qs);
			return r;
		}
	}
	return install_device(st, &m, qs);
}

static struct req *req_take(struct nelib_tunnel *st, uint64_t id, bool socket)
{
	struct req **pp, *w;

	for (pp = &st->reqs; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id && (*pp)->socket == socket) {
			w = *pp;
			*pp = w->next;
			return w;
		}
	return NULL;
}

static const char *text_of(const struct ne_msg_result *m, char *text)
{
	memcpy(text, m->message.p ? m->message.p : "", m->message.len);
	text[m->message.len] = '\0';
	return m->message.len ? text : NULL;
}

static int on_result(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	char text[NE_WIRE_STR_MAX + 1];
	struct ne_msg_result m;
	struct nelib_tunnel *st;
	ne_provider *pv;
	struct req *w;

	if (ne_msg_result_decode(p, len, &m) < 0)
		return -EBADMSG;
	pv = nelib_find_provider(ext, (uint32_t)(id >> 32));
	if (!pv || !(st = nelib_provider_tunnel(pv)))
		return 0; /* stopped meanwhile */
	w = req_take(st, id, false);
	if (!w)
		return -EPROTO;
	st->settings_busy = false;
	if (w->settings_done)
		w->settings_done(pv, m.error, text_of(&m, text), w->userdata);
	free(w);
	return 0;
}

static int on_socket_fd(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len, int *fds,
			size_t nfds)
{
	char text[NE_WIRE_STR_MAX + 1];
	struct ne_msg_result m;
	struct nelib_tunnel *st;
	ne_provider *pv;
	struct req *w;

	if (ne_msg_result_decode(p, len, &m) < 0 || m.error > 0 || (m.error == 0) != (nfds == 1)) {
		close_fds(fds, nfds);
		return -EBADMSG;
	}
	pv = nelib_find_provider(ext, (uint32_t)(id >> 32));
	if (!pv || !(st = nelib_provider_tunnel(pv))) {
		close_fds(fds, nfds);
		return 0; /* stopped meanwhile: its request was failed already */
	}
	w = req_take(st, id, true);
	if (!w) {
		close_fds(fds, nfds);
		return -EPROTO;
	}
	if (m.error == 0) {
		int fl = fcntl(fds[0], F_GETFL);

		/* tunnel.h promises a blocking socket, whatever the daemon's flags were. */
		if (fl >= 0 && (fl & O_NONBLOCK))
			(void)fcntl(fds[0], F_SETFL, fl & ~O_NONBLOCK);
		w->socket_done(pv, fds[0], 0, NULL, w->userdata);
	}
	else
		w->socket_done(pv, -1, m.error, text_of(&m, text), w->userdata);
	free(w);
	return 0;
}

int nelib_tunnel_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len,
		       int *fds, size_t nfds)
{
	switch (h->type) {
	case NE_MSG_TUNNEL_DEVICE:
		return on_device(ext, h, p, len, fds, nfds);
	case NE_MSG_TUNNEL_SOCKET_FD:
		return on_socket_fd(ext, h->id, p, len, fds, nfds);
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

/* --- stop ----------------------------------------------------------------------------------- */

/* Fails the requests still waiting with -ECANCELED. A callback may end the provider (stop
 * done): the rest are then freed without a call. */
static void fail_requests(struct nelib_tunnel *st)
{
	ne_provider *pv = st->pv;
	struct req *w;

	nelib_tunnel_ref(st);
	while ((w = st->reqs)) {
		st->reqs = w->next;
		st->settings_busy = false;
		if (nelib_provider_live(pv)) {
			if (w->socket)
				w->socket_done(pv, -1, -ECANCELED, "the tunnel stopped", w->userdata);
			else if (w->settings_done)
				w->settings_done(pv, -ECANCELED, "the tunnel stopped", w->userdata);
		}
		free(w);
	}
	nelib_tunnel_unref(st);
}

void nelib_tunnel_stop(struct nelib_tunnel *st, bool notify)
{
	struct tqueue *qs[NE_WIRE_TUNNEL_QUEUES_MAX];

	if (!st)
		return;
	pthread_rwlock_wrlock(&st->lock);
	st->stopped = true;
	memcpy(qs, st->queues, sizeof(qs));
	memset(st->queues, 0, sizeof(st->queues));
	pthread_rwlock_unlock(&st->lock);
	queues_free(qs);
	if (notify)
		fail_requests(st);
}

void nelib_tunnel_free(struct nelib_tunnel *st)
{
	nelib_tunnel_stop(st, false);
	nelib_tunnel_unref(st);
}

/* --- settings ----------------------------------------------------------------------------- */

static int list_to_wire(const char *const *in, size_t n, size_t max, struct ne_view *out, uint16_t *ret_n)
{
	size_t i, l;

	if (n && !in)
		return -EINVAL;
	if (n > max)
		return -E2BIG;
	for (i = 0; i < n; i++) {
		if (!in[i])
			return -EINVAL;
		l = strlen(in[i]);
		if (l == 0 || l > NE_WIRE_STR_MAX)
			return -EINVAL;
		out[i] = (struct ne_view){ in[i], l };
	}
	*ret_n = (uint16_t)n;
	return 0;
}

static int settings_to_wire(const struct ne_tunnel_settings *in, struct ne_msg_tunnel_settings *m)
{
	struct ne_tunnel_settings s;
	int r;

	memset(&s, 0, sizeof(s));
	if (in->size < offsetof(struct ne_tunnel_settings, queues) + sizeof(in->queues))
		return -EINVAL;
	memcpy(&s, in, NE_MIN((size_t)in->size, sizeof(s)));
	if (s.queues > NE_WIRE_TUNNEL_QUEUES_MAX || s.mtu > PKT_MAX || s.tunnel_overhead > PKT_MAX)
		return -EINVAL;
	if (s.remote_address && strlen(s.remote_address) > NE_WIRE_STR_MAX)
		return -EINVAL;
	m->flags = (uint8_t)((s.include_all_networks ? NE_TUNNEL_F_INCLUDE_ALL : 0) |
			     (s.exclude_local_networks ? NE_TUNNEL_F_EXCLUDE_LOCAL : 0) |
			     (s.enforce_routes ? NE_TUNNEL_F_ENFORCE_ROUTES : 0));
	m->remote_address = (struct ne_view){ s.remote_address ? s.remote_address : "",
					      s.remote_address ? strlen(s.remote_address) : 0 };
	m->mtu = s.mtu;
	m->overhead = s.tunnel_overhead;
	m->queues = s.queues;
	r = list_to_wire(s.addresses, s.n_addresses, NE_WIRE_TUNNEL_ADDRESSES_MAX, m->addresses, &m->n_addresses);
	if (r == 0)
		r = list_to_wire(s.included_routes, s.n_included_routes, NE_WIRE_TUNNEL_ROUTES_MAX, m->included,
				 &m->n_included);
	if (r == 0)
		r = list_to_wire(s.excluded_routes, s.n_excluded_routes, NE_WIRE_TUNNEL_ROUTES_MAX, m->excluded,
				 &m->n_excluded);
	if (r == 0)
		r = list_to_wire(s.dns_servers, s.n_dns_servers, NE_WIRE_TUNNEL_DNS_MAX, m->dns, &m->n_dns);
	if (r == 0)
		r = list_to_wire(s.search_domains, s.n_search_domains, NE_WIRE_TUNNEL_SEARCH_MAX, m->search,
				 &m->n_search);
	if (r == 0)
		r = list_to_wire(s.match_domains, s.n_match_domains, NE_WIRE_TUNNEL_MATCH_MAX, m->match,
				 &m->n_match);
	return r;
}

static int send_settings(ne_provider *pv, const struct ne_tunnel_settings *s, unsigned count, uint64_t id)
{
	struct ne_msg_tunnel_settings *m = calloc(1, sizeof(*m)); /* ~21 KiB: not on the stack */
	ne_extension *ext = ne_provider_extension(pv);
	struct ne_wbuf b;
	int r;

	if (!m)
		return -ENOMEM;
	m->provider = nelib_provider_handle(pv);
	r = s ? settings_to_wire(s, m) : 0;
	if (!s)
		m->flags = NE_TUNNEL_F_CLEAR;
	if (r == 0 && count && m->queues && m->queues != count)
		r = -EINVAL; /* fixed by the first settings */
	if (r == 0) {
		b = nelib_wbuf(ext);
		r = ne_msg_tunnel_settings_encode(&b, id, m);
		if (r == -EMSGSIZE)
			r = -E2BIG;
	}
	free(m);
	return r < 0 ? r : nelib_send(ext, r);
}

/* Ids carry the provider handle, so an answer finds its provider without a search. */
static uint64_t next_id(struct nelib_tunnel *st)
{
	return (uint64_t)nelib_provider_handle(st->pv) << 32 | ++st->next_id;
}

static int req_new(struct nelib_tunnel *st, bool socket, struct req **ret)
{
	struct req *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->id = next_id(st);
	w->socket = socket;
	*ret = w;
	return 0;
}

static void req_add(struct nelib_tunnel *st, struct req *w)
{
	w->next = st->reqs;
	st->reqs = w;
}

static struct nelib_tunnel *tunnel_of(ne_provider *pv)
{
	return nelib_provider_live(pv) ? nelib_provider_tunnel(pv) : NULL;
}

int ne_tunnel_set_network_settings(ne_provider *provider, const struct ne_tunnel_settings *settings,
				   ne_tunnel_settings_done done, void *userdata)
{
	struct nelib_tunnel *st = tunnel_of(provider);
	unsigned count;
	struct req *w;
	int r;

	if (!st)
		return -EINVAL;
	if (st->settings_busy)
		return -EBUSY;
	pthread_rwlock_rdlock(&st->lock);
	count = st->count;
	pthread_rwlock_unlock(&st->lock);
	r = req_new(st, false, &w);
	if (r < 0)
		return r;
	w->settings_done = done;
	w->userdata = userdata;
	r = send_settings(provider, settings, count, w->id);
	if (r < 0) {
		free(w);
		return r;
	}
	req_add(st, w);
	st->settings_busy = true;
	return 0;
}

/* --- writing -------------------------------------------------------------------------------- */

static bool packet_valid(const ne_tunnel_packet *pk)
{
	int family;

	if (!pk->bytes || pk->len > PKT_MAX)
		return false;
	family = tunseg_family(pk->bytes, pk->len);
	return family && (pk->family == 0 || pk->family == family);
}

static unsigned my_slot(void)
{
	if (!thread_slot)
		thread_slot = atomic_fetch_add_explicit(&next_thread_slot, 1, memory_order_relaxed) + 1;
	return thread_slot - 1;
}

static ssize_t write_iov(int fd, const struct iovec *iov, int n)
{
	ssize_t r;

	do
		r = writev(fd, iov, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Writes the k packets that tunseg_gro_span() found as one GSO packet. */
static ssize_t write_merged(struct tqueue *q, const ne_tunnel_packet *pk, size_t k, const struct tunseg_gro *g)
{
	struct iovec iov[2 + TUNSEG_GRO_MAX];
	struct virtio_net_hdr vh;
	uint8_t hdr[TUNSEG_HDR_MAX];
	size_t i;

	(void)tunseg_gro_header(pk, k, g, &vh, hdr);
	iov[0] = (struct iovec){ &vh, VNET_HDR_LEN };
	iov[1] = (struct iovec){ hdr, g->hlen };
	for (i = 0; i < k; i++)
		iov[2 + i] = (struct iovec){ (void *)(pk[i].bytes + g->hlen), pk[i].len - g->hlen };
	return write_iov(q->fd, iov, (int)(2 + k));
}

static ssize_t write_one(struct tqueue *q, const ne_tunnel_packet *pk)
{
	static const uint8_t zeros[VNET_HDR_LEN];
	struct iovec iov[2] = { { (void *)zeros, q->vnet }, { (void *)pk->bytes, pk->len } };

	return q->vnet ? write_iov(q->fd, iov, 2) : write_iov(q->fd, iov + 1, 1);
}

/* Lock held for reading. Malformed packets after the first are dropped; a full queue drops
 * the rest. A merged write the kernel refuses is retried packet by packet. */
static int write_locked(struct nelib_tunnel *st, const ne_tunnel_packet *packets, size_t n)
{
	struct tqueue *q = st->queues[my_slot() % st->count];
	uint64_t dropped = 0;
	struct tunseg_gro g;
	bool merge = q->vnet;
	size_t i, k;
	ssize_t r;
	int written = 0;

	for (i = 0; i < n; i += k) {
		k = 1;
		if (!packet_valid(&packets[i])) {
			dropped++;
			continue;
		}
		if (merge)
			k = tunseg_gro_span(&packets[i], n - i, &g);
		r = k > 1 ? write_merged(q, &packets[i], k, &g) : write_one(q, &packets[i]);
		if (r < 0 && k > 1 && errno != EAGAIN && errno != ENOBUFS) {
			k = 1; /* refused: one by one from here on */
			merge = false;
			r = write_one(q, &packets[i]);
		}
		if (r >= 0) {
			written += (int)k;
		} else if (errno == EAGAIN || errno == ENOBUFS) {
			dropped += n - i;
			break;
		} else {
			dropped++;
		}
	}
	if (dropped)
		atomic_fetch_add_explicit(&st->write_drops, dropped, memory_order_relaxed);
	return written;
}

int ne_tunnel_write_packets(ne_provider *provider, const ne_tunnel_packet *packets, size_t n)
{
	struct nelib_tunnel *st;
	int r;

	if (n == 0)
		return 0;
	if (!packets || !packet_valid(&packets[0]))
		return -EINVAL;
	if (n > INT_MAX)
		n = INT_MAX;
	st = nelib_provider_tunnel_ref(provider);
	if (!st)
		return -ENOTCONN;
	pthread_rwlock_rdlock(&st->lock);
	r = st->stopped || !st->count ? -ENOTCONN : write_locked(st, packets, n);
	pthread_rwlock_unlock(&st->lock);
	nelib_tunnel_unref(st);
	return r;
}

/* The name lives as long as the provider: stop clears nothing but the queues. */
const char *ne_tunnel_interface_name(const ne_provider *provider)
{
	struct nelib_tunnel *st = nelib_provider_tunnel_ref((ne_provider *)provider);
	const char *name = NULL;

	if (!st)
		return NULL;
	pthread_rwlock_rdlock(&st->lock);
	if (st->ifname[0])
		name = st->ifname;
	pthread_rwlock_unlock(&st->lock);
	nelib_tunnel_unref(st);
	return name;
}

/* --- state, cancel, sockets ------------------------------------------------------------------ */

int ne_tunnel_set_reasserting(ne_provider *provider, bool reasserting)
{
	struct ne_msg_tunnel_state m = { .reasserting = reasserting };
	ne_extension *ext;
	struct ne_wbuf b;

	if (!tunnel_of(provider))
		return -EINVAL;
	ext = ne_provider_extension(provider);
	m.provider = nelib_provider_handle(provider);
	b = nelib_wbuf(ext);
	return nelib_send(ext, ne_msg_tunnel_state_encode(&b, &m));
}

int ne_tunnel_cancel(ne_provider *provider, int error, const char *message)
{
	char text[NE_WIRE_STR_MAX + 1];
	struct ne_msg_tunnel_cancel m = { .error = error, .message = { text, 0 } };
	ne_extension *ext;
	struct ne_wbuf b;

	if (!tunnel_of(provider) || error > 0 || error < -4095)
		return -EINVAL;
	ext = ne_provider_extension(provider);
	m.provider = nelib_provider_handle(provider);
	m.message.len = nelib_sanitize(text, message ? message : "", NE_WIRE_STR_MAX);
	b = nelib_wbuf(ext);
	return nelib_send(ext, ne_msg_tunnel_cancel_encode(&b, &m));
}

int ne_tunnel_open_socket(ne_provider *provider, int family, int protocol, uint16_t port,
			  ne_tunnel_socket_done done, void *userdata)
{
	struct nelib_tunnel *st = tunnel_of(provider);
	struct ne_msg_tunnel_socket m = { .protocol = (uint8_t)protocol, .port = port };
	ne_extension *ext;
	struct ne_wbuf b;
	struct req *w;
	int r;

	if (!st || !done || (protocol != IPPROTO_UDP && protocol != IPPROTO_TCP))
		return -EINVAL;
	if (family == AF_INET)
		m.family = 4;
	else if (family == AF_INET6)
		m.family = 6;
	else if (family != AF_UNSPEC)
		return -EINVAL;
	r = req_new(st, true, &w);
	if (r < 0)
		return r;
	w->socket_done = done;
	w->userdata = userdata;
	ext = ne_provider_extension(provider);
	m.provider = nelib_provider_handle(provider);
	b = nelib_wbuf(ext);
	r = nelib_send(ext, ne_msg_tunnel_socket_encode(&b, w->id, &m));
	if (r < 0) {
		free(w);
		return r;
	}
	req_add(st, w);
	return 0;
}

/* --- registration ---------------------------------------------------------------------------- */

int ne_extension_register_packet_tunnel(ne_extension *ext, const struct ne_provider_ops *ops,
					const struct ne_tunnel_ops *tunnel_ops, void *userdata)
{
	/* The first table ever published is this one: later headers may only append. */
	if (!ext || !tunnel_ops || tunnel_ops->size < sizeof(struct ne_tunnel_ops) || !tunnel_ops->read_packets)
		return -EINVAL;
	return nelib_register_tunnel(ext, ops, tunnel_ops, userdata);
}
