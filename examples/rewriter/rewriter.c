/* netext-rewriter: a filter-packet provider that rewrites a byte pattern in the TCP and UDP
 * payloads of selected flows (seed 001), with a replacement of the same or another length.
 *
 * Each selected packet's transport payload is searched for `match`; every occurrence is
 * replaced by `replace`, and the provider returns the new packet built with
 * ne_packet_build() (netextd fixes the checksums and, when a TCP segment changes length,
 * shifts the sequence and acknowledgement numbers of the rest of the flow). Matching is per
 * packet: an occurrence split across two TCP segments (or two datagrams) is not matched, and
 * the stream is not reassembled. A retransmitted segment is rewritten again the same way.
 *
 * Without `match` the provider allows every packet it sees untouched: the allow-all
 * provider the packet-filter benchmark uses (no options: every packet but loopback).
 *
 * Options:   match=TEXT       the bytes to find; \n \r \t \\ and \xHH escapes (none: allow all)
 *            replace=TEXT     what takes the place of each occurrence (default: nothing)
 *            protocol=tcp|udp|any          (default any)
 *            port=N           the flow's remote or local port (default: any port)
 *            direction=outbound|inbound|forward|any   (default any)
 *            queues=N         packet queues, each with a handler thread, 1-8 (default 1)
 *            copy_range=N     bytes of each packet to see, 128-65535 (default all)
 *            stats_interval=S seconds between two counter log lines, 0: never (default 10)
 * Messages:  stats   {"packets":N,"selected":N,"rewritten":N,"occurrences":N,
 *                     "bytes_delta":N,"skipped":N}
 *            (packets: seen; selected: TCP/UDP of the chosen flows; rewritten: with at least
 *            one occurrence; bytes_delta: the sum of the length changes)
 *
 * A packet is "skipped" (allowed as it is) when it cannot be rewritten: cut by the copy range,
 * or a replacement beyond 65535 bytes. The counters are atomics: the handlers run on one
 * thread per queue, the app messages and the log on the dispatch thread.
 *
 * Trust: options and messages come from the administrator; packets are parsed by libnetext,
 * which bounds every view. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
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

#define RW_PATTERN_MAX 1024
#define RW_PKT_MAX 65535
#define RW_STATS_INTERVAL_DEFAULT 10

struct rw_counters {
	atomic_uint_fast64_t packets, selected, rewritten, occurrences, skipped;
	atomic_int_fast64_t bytes_delta;
};

/* One per configuration (provider). */
struct rw {
	struct rw *next; /* every started provider, for the periodic log */
	ne_provider *provider;
	ne_extension *ext;
	uint8_t match[RW_PATTERN_MAX], repl[RW_PATTERN_MAX];
	size_t match_len, repl_len;
	int protocol; /* IPPROTO_TCP, IPPROTO_UDP, 0: both */
	uint16_t port; /* 0: any */
	ne_packet_direction direction;
	unsigned queues;
	uint32_t copy_range;
	unsigned stats_interval;
	struct rw_counters n;
	uint64_t logged_packets;
	time_t next_log;
};

static struct rw *rw_all; /* dispatch thread only */

/* --- the rewriting: pure functions ----------------------------------------------------- */

/* Replaces every occurrence of match in in (left to right, not overlapping) by repl, into
 * out. Returns the number of occurrences (0: out is not written), or -ENOBUFS when the
 * result would exceed cap. */
static int rw_replace(const uint8_t *in, size_t len, const uint8_t *match, size_t mlen,
		      const uint8_t *repl, size_t rlen, uint8_t *out, size_t cap, size_t *ret_len)
{
	const uint8_t *p = in, *end = in + len, *hit;
	size_t o = 0, chunk;
	int n = 0;

	if (!mlen)
		return 0;
	while ((hit = memmem(p, (size_t)(end - p), match, mlen))) {
		chunk = (size_t)(hit - p);
		if (o + chunk + rlen > cap)
			return -ENOBUFS;
		memcpy(out + o, p, chunk);
		memcpy(out + o + chunk, repl, rlen);
		o += chunk + rlen;
		p = hit + mlen;
		n++;
	}
	if (!n)
		return 0;
	if (o + (size_t)(end - p) > cap)
		return -ENOBUFS;
	memcpy(out + o, p, (size_t)(end - p));
	*ret_len = o + (size_t)(end - p);
	return n;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
					       : ((const struct sockaddr_in *)ss)->sin_port);
}

/* The rules select the packets already; this says the same for packets from elsewhere (the
 * test harness, settings without rules). */
static bool rw_selected(const struct rw *rw, const ne_packet *pkt)
{
	struct sockaddr_storage src, dst;
	int proto = ne_packet_protocol(pkt);

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return false;
	if (rw->protocol && proto != rw->protocol)
		return false;
	if (rw->direction != NE_PACKET_ANY && ne_packet_get_direction(pkt) != rw->direction)
		return false;
	if (!rw->port)
		return true;
	if (ne_packet_source(pkt, &src) < 0 || ne_packet_destination(pkt, &dst) < 0)
		return false;
	return port_of(&src) == rw->port || port_of(&dst) == rw->port;
}

/* The rewritten packet in out (its length in *ret_len): 1, 0 when the payload holds no
 * occurrence, -ENODATA / -ENOBUFS / -EMSGSIZE when it cannot be rewritten. scratch holds
 * the new payload. Counts nothing. */
static int rw_rewrite(const struct rw *rw, const ne_packet *pkt, uint8_t *scratch, size_t scap,
		      uint8_t *out, size_t ocap, size_t *ret_len, int *ret_occurrences)
{
	const uint8_t *payload;
	size_t plen, nlen = 0;
	long built;
	int n, r;

	r = ne_packet_payload(pkt, &payload, &plen);
	if (r < 0)
		return r == -EPROTO ? 0 : r;
	n = rw_replace(payload, plen, rw->match, rw->match_len, rw->repl, rw->repl_len, scratch,
		       scap, &nlen);
	if (n <= 0)
		return n;
	built = ne_packet_build(pkt, scratch, nlen, out, ocap);
	if (built < 0)
		return (int)built;
	*ret_len = (size_t)built;
	*ret_occurrences = n;
	return 1;
}

/* --- the handler (worker threads) ------------------------------------------------------------ */

static ne_packet_verdict rw_handle_packet(ne_provider *provider, const ne_packet *pkt, void *userdata)
{
	/* Per thread: each queue's handler runs on its own thread. The library copies a
	 * modify's bytes as soon as the handler returns. */
	static _Thread_local uint8_t scratch[RW_PKT_MAX], out[RW_PKT_MAX];
	struct rw *rw = ne_provider_get_context(provider);
	size_t len = 0;
	int r, n = 0;

	(void)userdata;
	if (!rw)
		return ne_packet_allow();
	atomic_fetch_add_explicit(&rw->n.packets, 1, memory_order_relaxed);
	if (!rw->match_len || !rw_selected(rw, pkt))
		return ne_packet_allow();
	atomic_fetch_add_explicit(&rw->n.selected, 1, memory_order_relaxed);
	r = rw_rewrite(rw, pkt, scratch, sizeof(scratch), out, sizeof(out), &len, &n);
	if (r == 0)
		return ne_packet_allow();
	if (r < 0) {
		atomic_fetch_add_explicit(&rw->n.skipped, 1, memory_order_relaxed);
		return ne_packet_allow();
	}
	atomic_fetch_add_explicit(&rw->n.rewritten, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rw->n.occurrences, (uint_fast64_t)n, memory_order_relaxed);
	atomic_fetch_add_explicit(&rw->n.bytes_delta, (int_fast64_t)len - (int_fast64_t)ne_packet_length(pkt),
				  memory_order_relaxed);
	return ne_packet_modify(out, len);
}

/* --- options --------------------------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the escapes \n \r \t \\ \xHH into out (at most cap bytes): 0 or -EINVAL. */
static int rw_unescape(const char *s, uint8_t *out, size_t cap, size_t *ret_len)
{
	size_t n = 0;
	int hi, lo;

	for (; *s; s++) {
		uint8_t c = (uint8_t)*s;

		if (c == '\\') {
			s++;
			switch (*s) {
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case '\\': c = '\\'; break;
			case 'x':
				if ((hi = hexval(s[1])) < 0 || (lo = hexval(s[2])) < 0)
					return -EINVAL;
				c = (uint8_t)(hi << 4 | lo);
				s += 2;
				break;
			default:
				return -EINVAL;
			}
		}
		if (n == cap)
			return -EINVAL;
		out[n++] = c;
	}
	*ret_len = n;
	return 0;
}

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

/* Fills rw from the options; on error, err names the bad option. */
static int rw_configure(struct rw *rw, const ne_options *o, char *err, size_t errlen)
{
	const char *v;
	unsigned long u;

	rw->queues = 1;
	rw->stats_interval = RW_STATS_INTERVAL_DEFAULT;
	if ((v = ne_options_get(o, "match")) && rw_unescape(v, rw->match, sizeof(rw->match), &rw->match_len) < 0)
		return snprintf(err, errlen, "option match: a bad escape (\\n \\r \\t \\\\ \\xHH)"), -EINVAL;
	if ((v = ne_options_get(o, "replace")) && rw_unescape(v, rw->repl, sizeof(rw->repl), &rw->repl_len) < 0)
		return snprintf(err, errlen, "option replace: a bad escape (\\n \\r \\t \\\\ \\xHH)"), -EINVAL;
	if ((v = ne_options_get(o, "protocol"))) {
		if (!strcmp(v, "tcp"))
			rw->protocol = IPPROTO_TCP;
		else if (!strcmp(v, "udp"))
			rw->protocol = IPPROTO_UDP;
		else if (strcmp(v, "any"))
			return snprintf(err, errlen, "option protocol: tcp, udp or any"), -EINVAL;
	}
	if ((v = ne_options_get(o, "port"))) {
		if (parse_uint(v, 1, 65535, &u) < 0)
			return snprintf(err, errlen, "option port: not a port number (1-65535)"), -EINVAL;
		rw->port = (uint16_t)u;
	}
	if ((v = ne_options_get(o, "direction")) && parse_direction(v, &rw->direction) < 0)
		return snprintf(err, errlen, "option direction: outbound, inbound, forward or any"), -EINVAL;
	if ((v = ne_options_get(o, "queues"))) {
		if (parse_uint(v, 1, NE_PACKET_QUEUES_MAX, &u) < 0)
			return snprintf(err, errlen, "option queues: 1-%d", NE_PACKET_QUEUES_MAX), -EINVAL;
		rw->queues = (unsigned)u;
	}
	if ((v = ne_options_get(o, "copy_range"))) {
		if (parse_uint(v, 128, 65535, &u) < 0)
			return snprintf(err, errlen, "option copy_range: 128-65535"), -EINVAL;
		rw->copy_range = (uint32_t)u;
	}
	if ((v = ne_options_get(o, "stats_interval"))) {
		if (parse_uint(v, 0, 86400, &u) < 0)
			return snprintf(err, errlen, "option stats_interval: 0-86400 seconds"), -EINVAL;
		rw->stats_interval = (unsigned)u;
	}
	return 0;
}

/* The rules for the options: per protocol (TCP and UDP for "any" with a port), one rule for
 * the remote and one for the local port. Without protocol and port, one rule (direction
 * only), or none at all: every packet. Returns the number of rules (at most 4). */
static size_t rw_rules(const struct rw *rw, struct ne_packet_rule *rules)
{
	static const int both[] = { IPPROTO_TCP, IPPROTO_UDP };
	size_t n = 0, i;

	if (!rw->port) {
		if (!rw->protocol && rw->direction == NE_PACKET_ANY)
			return 0;
		rules[0] = (struct ne_packet_rule){ .direction = rw->direction, .protocol = (uint8_t)rw->protocol };
		return 1;
	}
	for (i = 0; i < 2; i++) {
		if (rw->protocol && rw->protocol != both[i])
			continue;
		rules[n++] = (struct ne_packet_rule){ .direction = rw->direction, .protocol = (uint8_t)both[i],
						      .remote_port = rw->port };
		rules[n++] = (struct ne_packet_rule){ .direction = rw->direction, .protocol = (uint8_t)both[i],
						      .local_port = rw->port };
	}
	return n;
}

/* --- lifecycle (dispatch thread) -------------------------------------------------------------- */

static void rw_forget(struct rw *rw)
{
	struct rw **pp;

	for (pp = &rw_all; *pp; pp = &(*pp)->next)
		if (*pp == rw) {
			*pp = rw->next;
			break;
		}
}

static int rw_stats(const struct rw *rw, char *buf, size_t size)
{
	return snprintf(buf, size,
			"{\"packets\":%" PRIuFAST64 ",\"selected\":%" PRIuFAST64 ",\"rewritten\":%" PRIuFAST64
			",\"occurrences\":%" PRIuFAST64 ",\"bytes_delta\":%" PRIdFAST64 ",\"skipped\":%" PRIuFAST64 "}",
			atomic_load(&rw->n.packets), atomic_load(&rw->n.selected), atomic_load(&rw->n.rewritten),
			atomic_load(&rw->n.occurrences), atomic_load(&rw->n.bytes_delta), atomic_load(&rw->n.skipped));
}

static void settings_done(ne_provider *provider, int error, const char *message, void *userdata)
{
	struct rw *rw = userdata;

	if (error == 0) {
		if (rw->match_len)
			ne_extension_log(rw->ext, NE_LOG_INFO,
					 "%s: rewriting %zu-byte pattern into %zu bytes (%s, port %u, %u queue%s)",
					 ne_provider_configuration(provider), rw->match_len, rw->repl_len,
					 rw->protocol == IPPROTO_TCP ? "tcp" : rw->protocol == IPPROTO_UDP ? "udp" : "tcp+udp",
					 rw->port, rw->queues, rw->queues == 1 ? "" : "s");
		else
			ne_extension_log(rw->ext, NE_LOG_INFO, "%s: no match option: allowing every packet",
					 ne_provider_configuration(provider));
		rw->next = rw_all;
		rw_all = rw;
	} else {
		/* A failed start leaves the provider stopped, without a stop callback. */
		ne_provider_set_context(provider, NULL);
		free(rw);
	}
	ne_provider_start_done(provider, error, message);
}

static void rw_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	struct ne_packet_rule rules[4];
	struct ne_packet_settings s = { .size = sizeof(s), .rules = rules };
	struct rw *rw = calloc(1, sizeof(*rw));
	char err[128];
	int r;

	(void)userdata;
	if (!rw) {
		ne_provider_start_done(provider, -ENOMEM, "out of memory");
		return;
	}
	rw->provider = provider;
	rw->ext = ne_provider_extension(provider);
	r = rw_configure(rw, options, err, sizeof(err));
	if (r < 0) {
		free(rw);
		ne_provider_start_done(provider, r, err);
		return;
	}
	rw->next_log = time(NULL) + rw->stats_interval;
	s.n_rules = rw_rules(rw, rules);
	s.queues = (uint16_t)rw->queues;
	s.copy_range = rw->copy_range;
	/* The handlers read the context: set before the settings start them. */
	ne_provider_set_context(provider, rw);
	r = ne_packet_apply_settings(provider, &s, settings_done, rw);
	if (r < 0) {
		ne_provider_set_context(provider, NULL);
		free(rw);
		ne_provider_start_done(provider, r, "cannot send the packet settings");
	}
}

/* The library has stopped the handlers before this runs: rw is no longer in use. */
static void rw_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct rw *rw = ne_provider_get_context(provider);
	const char *why = ne_stop_reason_name(reason);
	char stats[256];

	(void)userdata;
	if (rw) {
		rw_stats(rw, stats, sizeof(stats));
		ne_extension_log(rw->ext, NE_LOG_INFO, "%s: stopping (%s): %s", ne_provider_configuration(provider),
				 why ? why : "unknown reason", stats);
		rw_forget(rw);
	}
	ne_provider_set_context(provider, NULL);
	free(rw);
	ne_provider_stop_done(provider);
}

static void rw_app_message(ne_provider *provider, ne_message *message, const void *data, size_t len,
			   void *userdata)
{
	struct rw *rw = ne_provider_get_context(provider);
	char stats[256];
	int n;

	(void)userdata;
	if (!rw || len != 5 || memcmp(data, "stats", 5)) {
		ne_message_reply(message, -EINVAL, NULL, 0);
		return;
	}
	n = rw_stats(rw, stats, sizeof(stats));
	ne_message_reply(message, 0, stats, (size_t)n);
}

/* Every second: the counters of each provider whose interval passed, when they moved. */
static void rw_log_all(time_t now)
{
	char stats[256];
	struct rw *rw;
	uint64_t packets;

	for (rw = rw_all; rw; rw = rw->next) {
		if (!rw->stats_interval || now < rw->next_log)
			continue;
		rw->next_log = now + rw->stats_interval;
		packets = atomic_load(&rw->n.packets);
		if (packets == rw->logged_packets)
			continue;
		rw->logged_packets = packets;
		rw_stats(rw, stats, sizeof(stats));
		ne_extension_log(rw->ext, NE_LOG_INFO, "%s: %s", ne_provider_configuration(rw->provider), stats);
	}
}

static const struct ne_provider_ops rewriter_ops = {
	.size = sizeof(rewriter_ops),
	.start = rw_start,
	.stop = rw_stop,
	.app_message = rw_app_message,
};

static const struct ne_packet_filter_ops rewriter_packet_ops = {
	.size = sizeof(rewriter_packet_ops),
	.handle_packet = rw_handle_packet,
};

/* The library's loop plus a one-second timer for the counters' log lines (the log goes
 * through the channel, so only the dispatch thread writes it). */
static int rw_run(ne_extension *ext)
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
			rw_log_all(time(NULL));
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
		r = ne_extension_register_packet_filter(ext, &rewriter_ops, &rewriter_packet_ops, NULL);
	if (r >= 0)
		r = rw_run(ext);
	if (r < 0)
		fprintf(stderr, "netext-rewriter: %s%s\n", strerror(-r),
			r == -ENOTCONN ? " (not started by netextd)" : "");
	ne_extension_free(ext);
	return r < 0 ? 1 : 0;
}
