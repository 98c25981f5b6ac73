/* netext-testpacket: a filter-packet extension whose behaviour the integration tests choose
 * with configuration options. Not an example to copy (see examples/rewriter, examples/shaper).
 *
 * Options:
 *   mode=allow|drop|delay|modify-same|modify-grow|modify-shrink|bad-version|bad-length|oversize
 *         allow, drop: that verdict for every packet it sees.
 *         delay: DELAY, then allow from another thread delay_ms later (ne_packet_resume).
 *         modify-*: replaces every match in a TCP or UDP payload by replace (defaults:
 *           same "ping"->"PONG", grow "ping"->"PINGPONG", shrink "pingping"->"p") with
 *           ne_packet_build; packets without a match are allowed unchanged.
 *         bad-*: packets with a payload get a malformed replacement (IP version changed;
 *           a length field that does not add up; 70000 bytes); the others are allowed.
 *   match=STR replace=STR   the modify-* marker and its replacement
 *   protocol=tcp|udp|icmp|any   rule protocol (default any)
 *   port=N        rule remote port (outbound: destination; inbound: source)
 *   local_port=N  rule local port
 *   direction=out|in|any  rule direction (default out)
 *   family=4|6    rule family (default both)
 *   delay_ms=N    mode delay (default 100)
 *   queues=N      settings.queues
 *   copy_range=N  settings.copy_range
 *   record=FILE   append a line per packet seen (the file must be writable by the extension):
 *                 "q=Q proto=P src=ADDR:PORT dst=ADDR:PORT len=PAYLOAD gso=0|1 hex=FIRST16"
 *   start_delay_ms=N  complete the start N ms late (packets meanwhile get the fail policy)
 * App message "stats": "seen=N modified=N delayed=N resumed=N resume_errors=N". */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netext/packet.h>

enum mode { M_ALLOW, M_DROP, M_DELAY, M_MODIFY, M_BAD_VERSION, M_BAD_LENGTH, M_OVERSIZE };

struct held {
	uint64_t id;
	unsigned long long due_ms;
};

struct tp {
	ne_extension *ext;
	ne_provider *provider;
	enum mode mode;
	char match[256], replace[256];
	size_t match_len, replace_len;
	unsigned delay_ms;
	int record_fd;
	atomic_ullong seen, modified, delayed, resumed, resume_errors;
	/* delayed packets, resumed by the resumer thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct held *held;
	size_t n_held, cap_held;
	bool resumer_started;
};

static struct tp T = { .record_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER,
		       .cond = PTHREAD_COND_INITIALIZER };

#define BUF_MAX (70000 + 64)
static __thread uint8_t tbuf[BUF_MAX];
static __thread uint8_t tpay[BUF_MAX];

static unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

static void fmt_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
		snprintf(out, cap, "%s:%u", a, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
		snprintf(out, cap, "[%s]:%u", a, port);
	} else {
		snprintf(out, cap, "?");
	}
}

/* One line per packet, in one write() to an O_APPEND file: lines of several queue threads
 * never interleave. */
static void record(const ne_packet *pkt)
{
	struct sockaddr_storage s = { 0 }, d = { 0 };
	char src[80], dst[80], hex[40] = "", line[320];
	const uint8_t *pl = NULL;
	size_t plen = 0, i;
	int proto = ne_packet_protocol(pkt), n;

	if (T.record_fd < 0)
		return;
	(void)ne_packet_source(pkt, &s);
	(void)ne_packet_destination(pkt, &d);
	fmt_addr(&s, src, sizeof(src));
	fmt_addr(&d, dst, sizeof(dst));
	if (ne_packet_payload(pkt, &pl, &plen) < 0)
		plen = 0;
	if (proto == IPPROTO_UDP)
		for (i = 0; i < plen && i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", pl[i]);
	n = snprintf(line, sizeof(line), "q=%u proto=%s src=%s dst=%s len=%zu gso=%d hex=%s\n",
		     ne_packet_queue(pkt),
		     proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" :
		     proto == IPPROTO_ICMP ? "icmp" : proto == IPPROTO_ICMPV6 ? "icmp6" : "other",
		     src, dst, plen, ne_packet_is_gso(pkt) ? 1 : 0, hex[0] ? hex : "-");
	if (n > 0)
		(void)!write(T.record_fd, line, (size_t)n);
}

/* The payload with every match replaced, into tpay; its length, or -1 without a match. */
static long substitute(const uint8_t *pl, size_t plen)
{
	size_t i = 0, o = 0;
	bool any = false;

	while (i < plen) {
		if (i + T.match_len <= plen && !memcmp(pl + i, T.match, T.match_len)) {
			if (o + T.replace_len > BUF_MAX - 128)
				return -1;
			memcpy(tpay + o, T.replace, T.replace_len);
			o += T.replace_len;
			i += T.match_len;
			any = true;
			continue;
		}
		if (o + 1 > BUF_MAX - 128)
			return -1;
		tpay[o++] = pl[i++];
	}
	return any ? (long)o : -1;
}

static ne_packet_verdict modify(const ne_packet *pkt)
{
	const uint8_t *pl;
	size_t plen;
	long n, len;

	if (ne_packet_payload(pkt, &pl, &plen) < 0 || plen == 0)
		return ne_packet_allow();
	if ((n = substitute(pl, plen)) < 0)
		return ne_packet_allow();
	len = ne_packet_build(pkt, tpay, (size_t)n, tbuf, sizeof(tbuf));
	if (len < 0) {
		ne_extension_log(T.ext, NE_LOG_WARNING, "ne_packet_build: %s", strerror((int)-len));
		return ne_packet_allow();
	}
	atomic_fetch_add(&T.modified, 1);
	return ne_packet_modify(tbuf, (size_t)len);
}

/* Deliberately malformed replacements, for packets that carry a payload. */
static ne_packet_verdict malformed(const ne_packet *pkt)
{
	const uint8_t *pl;
	size_t plen, len = ne_packet_length(pkt);

	if (ne_packet_payload(pkt, &pl, &plen) < 0 || plen == 0 || len > 65535)
		return ne_packet_allow();
	memcpy(tbuf, ne_packet_bytes(pkt), len);
	switch (T.mode) {
	case M_BAD_VERSION:
		tbuf[0] = (uint8_t)((tbuf[0] & 0x0f) | ((tbuf[0] >> 4) == 4 ? 0x60 : 0x40));
		break;
	case M_BAD_LENGTH:
		/* the packet's length field claims 100 bytes more than there are */
		if ((tbuf[0] >> 4) == 4) {
			uint16_t tl = (uint16_t)((tbuf[2] << 8 | tbuf[3]) + 100);
			tbuf[2] = (uint8_t)(tl >> 8);
			tbuf[3] = (uint8_t)tl;
		} else {
			uint16_t pl6 = (uint16_t)((tbuf[4] << 8 | tbuf[5]) + 100);
			tbuf[4] = (uint8_t)(pl6 >> 8);
			tbuf[5] = (uint8_t)pl6;
		}
		break;
	case M_OVERSIZE:
		memset(tbuf + len, 'x', 70000 - len);
		len = 70000;
		break;
	default:
		return ne_packet_allow();
	}
	atomic_fetch_add(&T.modified, 1);
	return ne_packet_modify(tbuf, len);
}

static void hold(uint64_t id)
{
	pthread_mutex_lock(&T.lock);
	if (T.n_held == T.cap_held) {
		size_t cap = T.cap_held ? T.cap_held * 2 : 1024;
		struct held *h = realloc(T.held, cap * sizeof(*h));
		if (!h) {
			pthread_mutex_unlock(&T.lock);
			return;
		}
		T.held = h;
		T.cap_held = cap;
	}
	T.held[T.n_held++] = (struct held){ id, now_ms() + T.delay_ms };
	pthread_cond_signal(&T.cond);
	pthread_mutex_unlock(&T.lock);
}

/* Resumes held packets (FIFO, all with the same delay) when they are due. */
static void *resumer(void *arg)
{
	size_t done;
	(void)arg;

	pthread_mutex_lock(&T.lock);
	for (;;) {
		while (T.n_held == 0)
			pthread_cond_wait(&T.cond, &T.lock);
		unsigned long long now = now_ms();
		if (T.held[0].due_ms > now) {
			unsigned long long wait = T.held[0].due_ms - now;
			pthread_mutex_unlock(&T.lock);
			usleep((useconds_t)(wait * 1000));
			pthread_mutex_lock(&T.lock);
			continue;
		}
		for (done = 0; done < T.n_held && T.held[done].due_ms <= now; done++) {
			int r, tries = 0;
			while ((r = ne_packet_resume(T.provider, T.held[done].id, ne_packet_allow())) == -EAGAIN &&
			       tries++ < 1000)
				usleep(200);
			atomic_fetch_add(r == 0 ? &T.resumed : &T.resume_errors, 1);
		}
		memmove(T.held, T.held + done, (T.n_held - done) * sizeof(*T.held));
		T.n_held -= done;
	}
	return NULL;
}

static ne_packet_verdict on_packet(ne_provider *p, const ne_packet *pkt, void *ud)
{
	(void)p;
	(void)ud;
	atomic_fetch_add(&T.seen, 1);
	record(pkt);
	switch (T.mode) {
	case M_ALLOW: return ne_packet_allow();
	case M_DROP: return ne_packet_drop();
	case M_DELAY:
		atomic_fetch_add(&T.delayed, 1);
		hold(ne_packet_id(pkt));
		return ne_packet_delay();
	case M_MODIFY: return modify(pkt);
	default: return malformed(pkt);
	}
}

static void settings_done(ne_provider *p, int error, const char *message, void *ud)
{
	(void)ud;
	ne_extension_log(T.ext, NE_LOG_INFO, "settings %s%s%s%s", error ? "refused: " : "applied",
			 error ? strerror(-error) : "", message ? " " : "", message ? message : "");
	ne_provider_start_done(p, error, message);
}

static int set_mode(const char *m)
{
	static const struct { const char *name; enum mode mode; const char *match, *replace; } modes[] = {
		{ "allow", M_ALLOW, NULL, NULL },
		{ "drop", M_DROP, NULL, NULL },
		{ "delay", M_DELAY, NULL, NULL },
		{ "modify-same", M_MODIFY, "ping", "PONG" },
		{ "modify-grow", M_MODIFY, "ping", "PINGPONG" },
		{ "modify-shrink", M_MODIFY, "pingping", "p" },
		{ "bad-version", M_BAD_VERSION, NULL, NULL },
		{ "bad-length", M_BAD_LENGTH, NULL, NULL },
		{ "oversize", M_OVERSIZE, NULL, NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcmp(m, modes[i].name)) {
			T.mode = modes[i].mode;
			if (modes[i].match) {
				snprintf(T.match, sizeof(T.match), "%s", modes[i].match);
				snprintf(T.replace, sizeof(T.replace), "%s", modes[i].replace);
			}
			return 0;
		}
	return -EINVAL;
}

static uint8_t proto_of(const char *s)
{
	if (!s || !strcmp(s, "any"))
		return 0;
	if (!strcmp(s, "tcp"))
		return IPPROTO_TCP;
	if (!strcmp(s, "udp"))
		return IPPROTO_UDP;
	if (!strcmp(s, "icmp"))
		return IPPROTO_ICMP;
	return 0;
}

static void start(ne_provider *p, const ne_options *o, void *ud)
{
	struct ne_packet_rule r = { .direction = NE_PACKET_OUTBOUND };
	struct ne_packet_settings s = { .size = sizeof(s), .rules = &r, .n_rules = 1 };
	const char *v;
	pthread_t th;

	(void)ud;
	T.provider = p;
	if (set_mode(ne_options_get(o, "mode") ?: "allow") < 0) {
		ne_provider_start_done(p, -EINVAL, "unknown mode");
		return;
	}
	if ((v = ne_options_get(o, "match")))
		snprintf(T.match, sizeof(T.match), "%s", v);
	if ((v = ne_options_get(o, "replace")))
		snprintf(T.replace, sizeof(T.replace), "%s", v);
	T.match_len = strlen(T.match);
	T.replace_len = strlen(T.replace);
	if (T.mode == M_MODIFY && T.match_len == 0) {
		ne_provider_start_done(p, -EINVAL, "modify needs match");
		return;
	}
	T.delay_ms = (unsigned)atoi(ne_options_get(o, "delay_ms") ?: "100");
	r.protocol = proto_of(ne_options_get(o, "protocol"));
	if ((v = ne_options_get(o, "port")))
		r.remote_port = (uint16_t)atoi(v);
	if ((v = ne_options_get(o, "local_port")))
		r.local_port = (uint16_t)atoi(v);
	if ((v = ne_options_get(o, "direction")))
		r.direction = !strcmp(v, "in") ? NE_PACKET_INBOUND : !strcmp(v, "any") ? NE_PACKET_ANY
											: NE_PACKET_OUTBOUND;
	if ((v = ne_options_get(o, "family")))
		r.family = !strcmp(v, "6") ? AF_INET6 : AF_INET;
	if ((v = ne_options_get(o, "queues")))
		s.queues = (uint16_t)atoi(v);
	if ((v = ne_options_get(o, "copy_range")))
		s.copy_range = (uint32_t)atoi(v);
	/* One process serves the configurations one after the other: each start its own file. */
	if (T.record_fd >= 0) {
		close(T.record_fd);
		T.record_fd = -1;
	}
	if ((v = ne_options_get(o, "record"))) {
		T.record_fd = open(v, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (T.record_fd < 0)
			ne_extension_log(T.ext, NE_LOG_WARNING, "record %s: %s", v, strerror(errno));
	}
	if (T.mode == M_DELAY && !T.resumer_started) {
		if (pthread_create(&th, NULL, resumer, NULL) != 0) {
			ne_provider_start_done(p, -EAGAIN, "cannot start the resumer thread");
			return;
		}
		pthread_detach(th);
		T.resumer_started = true;
	}
	if ((v = ne_options_get(o, "start_delay_ms")))
		usleep((useconds_t)atoi(v) * 1000); /* a test of the start window, not a pattern */
	ne_extension_log(T.ext, NE_LOG_INFO, "testpacket: mode %s protocol %u port %u queues %u",
			 ne_options_get(o, "mode") ?: "allow", r.protocol, r.remote_port, s.queues);
	if (ne_packet_apply_settings(p, &s, settings_done, NULL) < 0)
		ne_provider_start_done(p, -EINVAL, "cannot send settings");
}

static void stop(ne_provider *p, ne_stop_reason reason, void *ud)
{
	(void)reason;
	(void)ud;
	pthread_mutex_lock(&T.lock);
	T.n_held = 0; /* the daemon applies the fail policy to what is still held */
	pthread_mutex_unlock(&T.lock);
	ne_provider_stop_done(p);
}

static void app_message(ne_provider *p, ne_message *m, const void *data, size_t len, void *ud)
{
	char out[256];
	int n;

	(void)p;
	(void)ud;
	if (len == 5 && !memcmp(data, "stats", 5)) {
		n = snprintf(out, sizeof(out), "seen=%llu modified=%llu delayed=%llu resumed=%llu resume_errors=%llu",
			     T.seen, T.modified, T.delayed, T.resumed, T.resume_errors);
		ne_message_reply(m, 0, out, (size_t)n);
		return;
	}
	ne_message_reply(m, -EINVAL, NULL, 0);
}

int main(void)
{
	static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = start, .stop = stop,
						    .app_message = app_message };
	static const struct ne_packet_filter_ops pops = { .size = sizeof(pops), .handle_packet = on_packet };
	int r;

	if (ne_extension_new(&T.ext) < 0 || ne_extension_register_packet_filter(T.ext, &ops, &pops, NULL) < 0)
		return 1;
	r = ne_extension_run(T.ext);
	ne_extension_free(T.ext);
	return r < 0;
}
