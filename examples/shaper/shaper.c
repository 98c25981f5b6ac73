/* netext-shaper: a filter-packet provider that delays the packets of selected flows, to
 * emulate a slow or distant link (a small netem, per flow, without root in the extension).
 *
 * The handler answers each selected packet with DELAY and files (due time, packet id) in a
 * min-heap; a timer thread sleeps until the earliest due time and resumes the packets that are
 * due with allow. Order is kept per flow: a packet is never due before an earlier packet of
 * its flow (with jitter, a packet whose random due time falls before its predecessor's waits
 * for it), and packets due at the same time leave in arrival order. Flows are told apart by a
 * hash of addresses, ports and protocol (direction-sensitive) into SH_FLOW_SLOTS slots; two
 * flows sharing a slot are merely ordered together.
 *
 * Options:   delay_ms=N       added delay, 0-10000 (default 50); at most the configuration's
 *                             delay_max_ms (netextd's limit for a delayed packet)
 *            jitter_ms=N      plus a uniform random 0..N ms (default 0)
 *            protocol=tcp|udp|icmp|any    (default any)
 *            port=N           the flow's remote or local port (tcp/udp; default any)
 *            direction=outbound|inbound|forward|any   (default any)
 *            queues=N         packet queues, each with its handler thread, 1-8 (default 1)
 *            max_queued=N     packets held at once, beyond that allowed at once (default 100000)
 *            stats_interval=S seconds between counter log lines, 0: never (default 10)
 * Messages:  stats   {"packets":N,"delayed":N,"released":N,"overflow":N,"failed":N,
 *                     "queued":N,"queued_max":N}
 *
 * When the provider stops, packets still held get the configuration's fail policy from
 * netextd (open: they are sent at once). */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <netext/packet.h>

#define SH_DELAY_DEFAULT_MS 50
#define SH_DELAY_MAX_MS 10000
#define SH_QUEUED_DEFAULT 100000
#define SH_FLOW_SLOTS 4096
#define SH_RELEASE_BATCH 256
#define SH_RETRY_NS 100000 /* verdict ring full: netextd is behind */
#define SH_STATS_INTERVAL_DEFAULT 10

/* --- the heap of held packets: earliest due first, then arrival order -------------------- */

struct sh_item {
	uint64_t due; /* monotonic usec */
	uint64_t seq; /* arrival order */
	uint64_t id;  /* ne_packet_id() */
};

struct sh_heap {
	struct sh_item *v;
	size_t n, cap;
};

static bool sh_before(const struct sh_item *a, const struct sh_item *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void sh_swap(struct sh_item *a, struct sh_item *b)
{
	struct sh_item t = *a;

	*a = *b;
	*b = t;
}

static int sh_heap_push(struct sh_heap *h, const struct sh_item *it)
{
	size_t i, cap;
	struct sh_item *v;

	if (h->n == h->cap) {
		cap = h->cap ? h->cap * 2 : 256;
		v = realloc(h->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	i = h->n++;
	h->v[i] = *it;
	while (i > 0 && sh_before(&h->v[i], &h->v[(i - 1) / 2])) {
		sh_swap(&h->v[i], &h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	return 0;
}

static void sh_heap_pop(struct sh_heap *h, struct sh_item *ret)
{
	size_t i = 0, c;

	*ret = h->v[0];
	h->v[0] = h->v[--h->n];
	for (;;) {
		c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && sh_before(&h->v[c + 1], &h->v[c]))
			c++;
		if (!sh_before(&h->v[c], &h->v[i]))
			break;
		sh_swap(&h->v[i], &h->v[c]);
		i = c;
	}
}

/* --- one provider ------------------------------------------------------------------------------ */

struct sh_counters {
	atomic_uint_fast64_t packets, delayed, released, overflow, failed;
};

struct shaper {
	struct shaper *next; /* every started provider, for the periodic log */
	ne_provider *provider;
	ne_extension *ext;
	unsigned delay_ms, jitter_ms;
	int protocol; /* IPPROTO_*, 0: any */
	uint16_t port;
	ne_packet_direction direction;
	unsigned queues;
	size_t max_queued;
	unsigned stats_interval;
	/* How packets are released: ne_packet_resume, or a test's recorder. */
	int (*resume)(ne_provider *provider, uint64_t id, ne_packet_verdict verdict);

	pthread_mutex_t lock; /* guards heap, seq, stop, queued_max */
	pthread_cond_t cond;  /* the heap's top changed, or stop */
	struct sh_heap heap;
	uint64_t seq;
	size_t queued_max;
	bool stop;
	pthread_t timer;
	bool timer_started;

	/* Per flow slot: the latest due time given, so no packet overtakes its flow. */
	atomic_uint_fast64_t last_due[SH_FLOW_SLOTS];
	struct sh_counters n;
	uint64_t logged_packets;
	time_t next_log;
};

static struct shaper *sh_all; /* dispatch thread only */

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* A direction-sensitive hash of the packet's flow (FNV-1a over addresses, ports, protocol). */
static unsigned sh_flow_slot(const ne_packet *pkt)
{
	struct sockaddr_storage ss[2];
	const uint8_t *p;
	uint64_t h = 1469598103934665603ULL;
	size_t i, k, len;
	int proto = ne_packet_protocol(pkt);

	if (ne_packet_source(pkt, &ss[0]) < 0 || ne_packet_destination(pkt, &ss[1]) < 0)
		return 0;
	for (k = 0; k < 2; k++) {
		len = ss[k].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		p = (const uint8_t *)&ss[k];
		for (i = 0; i < len; i++)
			h = (h ^ p[i]) * 1099511628211ULL;
	}
	h = (h ^ (uint8_t)proto) * 1099511628211ULL;
	return (unsigned)(h % SH_FLOW_SLOTS);
}

static uint64_t sh_random(void)
{
	static _Thread_local uint64_t x;

	if (!x)
		x = now_usec() ^ (uint64_t)(uintptr_t)&x ^ 0x9e3779b97f4a7c15ULL;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* The packet's due time: now + delay + jitter, but never before its flow's previous one. */
static uint64_t sh_due(struct shaper *sh, unsigned slot, uint64_t now)
{
	uint64_t due = now + sh->delay_ms * 1000ULL, prev;

	if (sh->jitter_ms)
		due += sh_random() % (sh->jitter_ms * 1000ULL + 1);
	prev = atomic_load(&sh->last_due[slot]);
	do {
		if (due < prev)
			due = prev;
	} while (!atomic_compare_exchange_weak(&sh->last_due[slot], &prev, due));
	return due;
}

static bool sh_port_match(const struct shaper *sh, const ne_packet *pkt)
{
	struct sockaddr_storage s, d;
	uint16_t sp, dp;

	if (ne_packet_source(pkt, &s) < 0 || ne_packet_destination(pkt, &d) < 0)
		return false;
	sp = ntohs(s.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&s)->sin6_port : ((struct sockaddr_in *)&s)->sin_port);
	dp = ntohs(d.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&d)->sin6_port : ((struct sockaddr_in *)&d)->sin_port);
	return sp == sh->port || dp == sh->port;
}

/* The rules select already; the same check for packets from elsewhere (the harness). */
static bool sh_selected(const struct shaper *sh, const ne_packet *pkt)
{
	int proto = ne_packet_protocol(pkt);

	if (sh->direction != NE_PACKET_ANY && ne_packet_get_direction(pkt) != sh->direction)
		return false;
	if (sh->protocol == IPPROTO_ICMP)
		return proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
	if (sh->protocol && proto != sh->protocol)
		return false;
	return !sh->port || sh_port_match(sh, pkt);
}

/* Files the packet; false when it cannot be held (it is allowed at once). */
static bool sh_hold(struct shaper *sh, uint64_t id, uint64_t due)
{
	struct sh_item it = { due, 0, id };
	bool ok = false, top;

	pthread_mutex_lock(&sh->lock);
	if (!sh->stop && sh->heap.n < sh->max_queued) {
		it.seq = sh->seq++;
		ok = sh_heap_push(&sh->heap, &it) == 0;
		top = ok && sh->heap.v[0].seq == it.seq;
		if (ok && sh->heap.n > sh->queued_max)
			sh->queued_max = sh->heap.n;
		if (top)
			pthread_cond_signal(&sh->cond);
	}
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

static ne_packet_verdict sh_handle_packet(ne_provider *provider, const ne_packet *pkt, void *userdata)
{
	struct shaper *sh = ne_provider_get_context(provider);
	uint64_t due;

	(void)userdata;
	if (!sh)
		return ne_packet_allow();
	atomic_fetch_add_explicit(&sh->n.packets, 1, memory_order_relaxed);
	if (!sh_selected(sh, pkt))
		return ne_packet_allow();
	due = sh_due(sh, sh_flow_slot(pkt), now_usec());
	if (!sh_hold(sh, ne_packet_id(pkt), due)) {
		atomic_fetch_add_explicit(&sh->n.overflow, 1, memory_order_relaxed);
		return ne_packet_allow();
	}
	atomic_fetch_add_explicit(&sh->n.delayed, 1, memory_order_relaxed);
	return ne_packet_delay();
}

/* --- the timer thread ----------------------------------------------------------------------- */

/* Resumes one packet; waits while netextd's ring is full rather than lose the verdict. */
static void sh_release(struct shaper *sh, uint64_t id)
{
	struct timespec ts = { 0, SH_RETRY_NS };
	int r;

	while ((r = sh->resume(sh->provider, id, ne_packet_allow())) == -EAGAIN) {
		bool stop;

		pthread_mutex_lock(&sh->lock);
		stop = sh->stop;
		pthread_mutex_unlock(&sh->lock);
		if (stop)
			break;
		nanosleep(&ts, NULL);
	}
	if (r == 0)
		atomic_fetch_add_explicit(&sh->n.released, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&sh->n.failed, 1, memory_order_relaxed);
}

static struct timespec sh_abstime(uint64_t usec)
{
	struct timespec ts = { (time_t)(usec / 1000000), (long)(usec % 1000000) * 1000 };

	return ts;
}

/* Takes the packets that are due (at most SH_RELEASE_BATCH), in order; waits for the
 * earliest otherwise. Called with the lock held; returns how many, 0 on stop. */
static size_t sh_take_due(struct shaper *sh, uint64_t *ids)
{
	struct timespec ts;
	struct sh_item it;
	size_t n = 0;
	uint64_t now;

	while (!sh->stop) {
		if (!sh->heap.n) {
			pthread_cond_wait(&sh->cond, &sh->lock);
			continue;
		}
		now = now_usec();
		if (sh->heap.v[0].due > now) {
			ts = sh_abstime(sh->heap.v[0].due);
			pthread_cond_timedwait(&sh->cond, &sh->lock, &ts);
			continue;
		}
		while (n < SH_RELEASE_BATCH && sh->heap.n && sh->heap.v[0].due <= now) {
			sh_heap_pop(&sh->heap, &it);
			ids[n++] = it.id;
		}
		return n;
	}
	return 0;
}

static void *sh_timer(void *arg)
{
	struct shaper *sh = arg;
	uint64_t ids[SH_RELEASE_BATCH];
	size_t n, i;

	pthread_mutex_lock(&sh->lock);
	while ((n = sh_take_due(sh, ids))) {
		/* Resumed without the lock, so the handlers can file packets meanwhile. */
		pthread_mutex_unlock(&sh->lock);
		for (i = 0; i < n; i++)
			sh_release(sh, ids[i]);
		pthread_mutex_lock(&sh->lock);
	}
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

static void sh_free(struct shaper *sh)
{
	if (!sh)
		return;
	if (sh->timer_started) {
		pthread_mutex_lock(&sh->lock);
		sh->stop = true;
		pthread_cond_signal(&sh->cond);
		pthread_mutex_unlock(&sh->lock);
		pthread_join(sh->timer, NULL);
	}
	pthread_cond_destroy(&sh->cond);
	pthread_mutex_destroy(&sh->lock);
	free(sh->heap.v);
	free(sh);
}

static struct shaper *sh_new(void)
{
	struct shaper *sh = calloc(1, sizeof(*sh));
	pthread_condattr_t ca;

	if (!sh)
		return NULL;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&sh->lock, NULL);
	pthread_cond_init(&sh->cond, &ca);
	pthread_condattr_destroy(&ca);
	sh->resume = ne_packet_resume;
	return sh;
}

static int sh_start_timer(struct shaper *sh)
{
	int r = pthread_create(&sh->timer, NULL, sh_timer, sh);

	sh->timer_started = r == 0;
	return -r;
}

/* --- options ----------------------------------------------------------------------------------- */

static int parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || *text == '-' || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_direction(const char *s, ne_packet_direction *ret)
{
	static const char *const names[] = { "any", "outbound", "inbound", "forward" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i])) {
			*ret = (ne_packet_direction)i;
			return 0;
		}
	return -EINVAL;
}

static int parse_protocol(const char *s, int *ret)
{
	if (!strcmp(s, "tcp"))
		*ret = IPPROTO_TCP;
	else if (!strcmp(s, "udp"))
		*ret = IPPROTO_UDP;
	else if (!strcmp(s, "icmp"))
		*ret = IPPROTO_ICMP;
	else if (!strcmp(s, "any"))
		*ret = 0;
	else
		return -EINVAL;
	return 0;
}

#define SH_FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -EINVAL)

static int sh_configure(struct shaper *sh, const ne_options *o, char *err, size_t errlen)
{
	unsigned long u, limit = SH_DELAY_MAX_MS;
	const char *v;

	sh->delay_ms = SH_DELAY_DEFAULT_MS;
	sh->queues = 1;
	sh->max_queued = SH_QUEUED_DEFAULT;
	sh->stats_interval = SH_STATS_INTERVAL_DEFAULT;
	/* netextd applies the fail policy to a packet delayed longer than this. */
	if ((v = ne_options_get(o, "delay_max_ms")) && parse_uint(v, 1, 600000, &u) == 0)
		limit = u;
	if ((v = ne_options_get(o, "delay_ms"))) {
		if (parse_uint(v, 0, limit, &u) < 0)
			return SH_FAIL("option delay_ms: 0-%lu (delay_max_ms)", limit);
		sh->delay_ms = (unsigned)u;
	}
	if ((v = ne_options_get(o, "jitter_ms"))) {
		if (parse_uint(v, 0, limit - sh->delay_ms, &u) < 0)
			return SH_FAIL("option jitter_ms: delay_ms + jitter_ms at most %lu (delay_max_ms)", limit);
		sh->jitter_ms = (unsigned)u;
	}
	if ((v = ne_options_get(o, "protocol")) && parse_protocol(v, &sh->protocol) < 0)
		return SH_FAIL("option protocol: tcp, udp, icmp or any");
	if ((v = ne_options_get(o, "port"))) {
		if (parse_uint(v, 1, 65535, &u) < 0)
			return SH_FAIL("option port: not a port number (1-65535)");
		if (sh->protocol == IPPROTO_ICMP)
			return SH_FAIL("option port: not with protocol icmp");
		sh->port = (uint16_t)u;
	}
	if ((v = ne_options_get(o, "direction")) && parse_direction(v, &sh->direction) < 0)
		return SH_FAIL("option direction: outbound, inbound, forward or any");
	if ((v = ne_options_get(o, "queues"))) {
		if (parse_uint(v, 1, NE_PACKET_QUEUES_MAX, &u) < 0)
			return SH_FAIL("option queues: 1-%d", NE_PACKET_QUEUES_MAX);
		sh->queues = (unsigned)u;
	}
	if ((v = ne_options_get(o, "max_queued"))) {
		if (parse_uint(v, 1, 10000000, &u) < 0)
			return SH_FAIL("option max_queued: 1-10000000");
		sh->max_queued = u;
	}
	if ((v = ne_options_get(o, "stats_interval"))) {
		if (parse_uint(v, 0, 86400, &u) < 0)
			return SH_FAIL("option stats_interval: 0-86400 seconds");
		sh->stats_interval = (unsigned)u;
	}
	return 0;
}

/* The rules for the options (at most 6): ICMP is two rules (v4 and v6), a port two per
 * protocol (remote and local); nothing selected: no rules (every packet but loopback). */
static size_t sh_rules(const struct shaper *sh, struct ne_packet_rule *rules)
{
	static const int both[] = { IPPROTO_TCP, IPPROTO_UDP };
	size_t n = 0, i;

	if (sh->protocol == IPPROTO_ICMP) {
		rules[n++] = (struct ne_packet_rule){ .direction = sh->direction, .family = AF_INET,
						      .protocol = IPPROTO_ICMP };
		rules[n++] = (struct ne_packet_rule){ .direction = sh->direction, .family = AF_INET6,
						      .protocol = IPPROTO_ICMPV6 };
		return n;
	}
	if (!sh->port) {
		if (!sh->protocol && sh->direction == NE_PACKET_ANY)
			return 0;
		rules[0] = (struct ne_packet_rule){ .direction = sh->direction, .protocol = (uint8_t)sh->protocol };
		return 1;
	}
	for (i = 0; i < 2; i++) {
		if (sh->protocol && sh->protocol != both[i])
			continue;
		rules[n++] = (struct ne_packet_rule){ .direction = sh->direction, .protocol = (uint8_t)both[i],
						      .remote_port = sh->port };
		rules[n++] = (struct ne_packet_rule){ .direction = sh->direction, .protocol = (uint8_t)both[i],
						      .local_port = sh->port };
	}
	return n;
}

/* --- lifecycle (dispatch thread) --------------------------------------------------------------- */

static int sh_stats(struct shaper *sh, char *buf, size_t size)
{
	size_t queued, queued_max;

	pthread_mutex_lock(&sh->lock);
	queued = sh->heap.n;
	queued_max = sh->queued_max;
	pthread_mutex_unlock(&sh->lock);
	return snprintf(buf, size,
			"{\"packets\":%" PRIuFAST64 ",\"delayed\":%" PRIuFAST64 ",\"released\":%" PRIuFAST64
			",\"overflow\":%" PRIuFAST64 ",\"failed\":%" PRIuFAST64 ",\"queued\":%zu,\"queued_max\":%zu}",
			atomic_load(&sh->n.packets), atomic_load(&sh->n.delayed), atomic_load(&sh->n.released),
			atomic_load(&sh->n.overflow), atomic_load(&sh->n.failed), queued, queued_max);
}

static void sh_forget(struct shaper *sh)
{
	struct shaper **pp;

	for (pp = &sh_all; *pp; pp = &(*pp)->next)
		if (*pp == sh) {
			*pp = sh->next;
			break;
		}
}

static void settings_done(ne_provider *provider, int error, const char *message, void *userdata)
{
	struct shaper *sh = userdata;

	if (error == 0) {
		ne_extension_log(sh->ext, NE_LOG_INFO, "%s: delaying selected packets by %u ms (+0..%u ms jitter)",
				 ne_provider_configuration(provider), sh->delay_ms, sh->jitter_ms);
		sh->next = sh_all;
		sh_all = sh;
	} else {
		/* A failed start leaves the provider stopped, without a stop callback. */
		ne_provider_set_context(provider, NULL);
		sh_free(sh);
	}
	ne_provider_start_done(provider, error, message);
}

static void sh_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	struct ne_packet_rule rules[6];
	struct ne_packet_settings s = { .size = sizeof(s), .rules = rules };
	struct shaper *sh = sh_new();
	char err[128];
	int r;

	(void)userdata;
	if (!sh) {
		ne_provider_start_done(provider, -ENOMEM, "out of memory");
		return;
	}
	sh->provider = provider;
	sh->ext = ne_provider_extension(provider);
	r = sh_configure(sh, options, err, sizeof(err));
	if (r == 0 && (r = sh_start_timer(sh)) < 0)
		snprintf(err, sizeof(err), "cannot start the timer thread");
	if (r < 0) {
		sh_free(sh);
		ne_provider_start_done(provider, r, err);
		return;
	}
	sh->next_log = time(NULL) + sh->stats_interval;
	s.n_rules = sh_rules(sh, rules);
	s.queues = (uint16_t)sh->queues;
	/* The handlers read the context: set before the settings start them. */
	ne_provider_set_context(provider, sh);
	r = ne_packet_apply_settings(provider, &s, settings_done, sh);
	if (r < 0) {
		ne_provider_set_context(provider, NULL);
		sh_free(sh);
		ne_provider_start_done(provider, r, "cannot send the packet settings");
	}
}

/* The library has stopped the handlers before this runs; the timer thread goes here. */
static void sh_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct shaper *sh = ne_provider_get_context(provider);
	const char *why = ne_stop_reason_name(reason);
	char stats[256];

	(void)userdata;
	if (sh) {
		sh_stats(sh, stats, sizeof(stats));
		ne_extension_log(sh->ext, NE_LOG_INFO, "%s: stopping (%s), held packets go to the fail policy: %s",
				 ne_provider_configuration(provider), why ? why : "unknown reason", stats);
		sh_forget(sh);
	}
	ne_provider_set_context(provider, NULL);
	sh_free(sh);
	ne_provider_stop_done(provider);
}

static void sh_app_message(ne_provider *provider, ne_message *message, const void *data, size_t len,
			   void *userdata)
{
	struct shaper *sh = ne_provider_get_context(provider);
	char stats[256];
	int n;

	(void)userdata;
	if (!sh || len != 5 || memcmp(data, "stats", 5)) {
		ne_message_reply(message, -EINVAL, NULL, 0);
		return;
	}
	n = sh_stats(sh, stats, sizeof(stats));
	ne_message_reply(message, 0, stats, (size_t)n);
}

static void sh_log_all(time_t now)
{
	struct shaper *sh;
	char stats[256];
	uint64_t packets;

	for (sh = sh_all; sh; sh = sh->next) {
		if (!sh->stats_interval || now < sh->next_log)
			continue;
		sh->next_log = now + sh->stats_interval;
		packets = atomic_load(&sh->n.packets);
		if (packets == sh->logged_packets)
			continue;
		sh->logged_packets = packets;
		sh_stats(sh, stats, sizeof(stats));
		ne_extension_log(sh->ext, NE_LOG_INFO, "%s: %s", ne_provider_configuration(sh->provider), stats);
	}
}

static const struct ne_provider_ops shaper_ops = {
	.size = sizeof(shaper_ops),
	.start = sh_start,
	.stop = sh_stop,
	.app_message = sh_app_message,
};

static const struct ne_packet_filter_ops shaper_packet_ops = {
	.size = sizeof(shaper_packet_ops),
	.handle_packet = sh_handle_packet,
};

/* The library's loop plus a one-second timer for the counters' log lines. */
static int sh_run(ne_extension *ext)
{
	struct itimerspec its = { { 1, 0 }, { 1, 0 } };
	struct pollfd p[2];
	uint64_t ticks;
	int tfd, r;

	r = ne_extension_connect(ext);
	if (r < 0)
		return r;
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0)
		return -errno;
	p[0] = (struct pollfd){ .fd = ne_extension_fd(ext), .events = POLLIN };
	p[1] = (struct pollfd){ .fd = tfd, .events = POLLIN };
	for (;;) {
		r = ne_extension_dispatch(ext);
		if (r != 0)
			break;
		if (poll(p, 2, -1) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if ((p[1].revents & POLLIN) && read(tfd, &ticks, sizeof(ticks)) > 0)
			sh_log_all(time(NULL));
	}
	close(tfd);
	return r == 1 ? 0 : r;
}

int main(void)
{
	ne_extension *ext = NULL;
	int r;

	r = ne_extension_new(&ext);
	if (r >= 0)
		r = ne_extension_register_packet_filter(ext, &shaper_ops, &shaper_packet_ops, NULL);
	if (r >= 0)
		r = sh_run(ext);
	if (r < 0)
		fprintf(stderr, "netext-shaper: %s%s\n", strerror(-r),
			r == -ENOTCONN ? " (not started by netextd)" : "");
	ne_extension_free(ext);
	return r < 0 ? 1 : 0;
}
