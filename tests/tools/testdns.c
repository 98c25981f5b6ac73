/* netext-testdns: a dns-proxy extension whose behaviour the integration tests choose with
 * configuration options. Not an example to copy (see examples/splitdns, examples/dnsblock).
 * Built twice: netext-testdns (parsed mode, handle_query) and netext-testdns-raw (raw mode,
 * handle_raw, -DTESTDNS_RAW): a provider's mode is fixed when it registers.
 *
 * Options:
 *   mode=pass                    forward by netextd's routes (raw: the query's bytes unchanged)
 *   mode=route:TARGET            forward to a route's domain or a server ("10.0.0.53:5353")
 *   mode=answer                  answer A queries with answer_addr (default 192.0.2.99), AAAA
 *                                with answer_addr6 if set, others with no records; ttl=N (60)
 *   mode=refuse | mode=drop
 *   mode=later                   LATER, then the verdict of then=… after delay_ms (default 100)
 *   mode=slow                    sleep delay_ms inside the callback, then the verdict of then=…
 *                                (a test of deadlines, not a pattern)
 *   then=pass|answer|refuse|drop|route:TARGET   (default pass)
 *   match=DOMAIN                 apply mode only to names in DOMAIN; the others pass
 *   responses=pass|drop|rewrite:ADDR   what the provider does with upstream answers (rewrite:
 *                                every A record's address becomes ADDR)
 *   start_delay_ms=N             complete the start N ms late (a test of the window in which
 *                                the provider is not running, not a pattern)
 *   log_queries=1                log "query NAME TYPE from EXE pid PID" for each query, and
 *                                "response NAME rcode N answers N" for each upstream answer
 * App message "stats" answers "queries=N responses=N". */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netext/dnsproxy.h>

#define LATER_MAX 1024

struct later {
	ne_provider *p;
	ne_dns_query *q;
	unsigned long long due_ms;
};

struct td {
	ne_extension *ext;
	char mode[256], then[256], match[256], responses[64];
	struct in_addr addr, rewrite;
	struct in6_addr addr6;
	bool has_addr6, log_queries;
	unsigned ttl, delay_ms;
	struct later later[LATER_MAX];
	size_t n_later;
	unsigned long long n_queries, n_responses;
	uint8_t answer[NE_DNS_MESSAGE_MAX]; /* the bytes of the last answer built */
};

static struct td T;

static unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

static const char *opt(const ne_options *o, const char *key, const char *def)
{
	const char *v = ne_options_get(o, key);

	return v ? v : def;
}

static void start(ne_provider *p, const ne_options *o, void *ud)
{
	const char *v;

	snprintf(T.mode, sizeof(T.mode), "%s", opt(o, "mode", "pass"));
	snprintf(T.then, sizeof(T.then), "%s", opt(o, "then", "pass"));
	snprintf(T.match, sizeof(T.match), "%s", opt(o, "match", ""));
	snprintf(T.responses, sizeof(T.responses), "%s", opt(o, "responses", "pass"));
	T.ttl = (unsigned)atoi(opt(o, "ttl", "60"));
	T.delay_ms = (unsigned)atoi(opt(o, "delay_ms", "100"));
	T.log_queries = !strcmp(opt(o, "log_queries", "0"), "1");
	if (inet_pton(AF_INET, opt(o, "answer_addr", "192.0.2.99"), &T.addr) != 1 ||
	    (!strncmp(T.responses, "rewrite:", 8) && inet_pton(AF_INET, T.responses + 8, &T.rewrite) != 1)) {
		ne_provider_start_done(p, -EINVAL, "answer_addr or responses=rewrite:ADDR is not an IPv4 address");
		return;
	}
	if ((v = ne_options_get(o, "start_delay_ms")))
		usleep((useconds_t)atoi(v) * 1000);
	v = ne_options_get(o, "answer_addr6");
	T.has_addr6 = v && inet_pton(AF_INET6, v, &T.addr6) == 1;
	ne_provider_start_done(p, 0, NULL);
	(void)ud;
}

static const char *type_name(uint16_t t, char *buf, size_t size)
{
	switch (t) {
	case NE_DNS_TYPE_A: return "A";
	case NE_DNS_TYPE_AAAA: return "AAAA";
	case NE_DNS_TYPE_TXT: return "TXT";
	case NE_DNS_TYPE_MX: return "MX";
	case NE_DNS_TYPE_HTTPS: return "HTTPS";
	default:
		snprintf(buf, size, "TYPE%u", t);
		return buf;
	}
}

static void log_query(const ne_dns_query *q)
{
	const ne_dns_message *m = ne_dns_query_message(q);
	const ne_flow *f = ne_dns_query_flow(q);
	char tb[16];

	if (!T.log_queries)
		return;
	ne_extension_log(T.ext, NE_LOG_INFO, "query %s %s from %s pid %d", m ? ne_dns_message_qname(m) : "?",
			 m ? type_name(ne_dns_message_qtype(m), tb, sizeof(tb)) : "?",
			 ne_flow_executable(f) ? ne_flow_executable(f) : "?", (int)ne_flow_pid(f));
}

/* The answer for mode=answer: the query's question, one address record when there is one. */
static ne_dns_verdict answer(const ne_dns_query *q)
{
	const ne_dns_message *m = ne_dns_query_message(q);
	ne_dns_message *a = NULL;
	ne_dns_builder *b;
	const uint8_t *bytes;
	size_t len;
	int r;

	if (!m || ne_dns_builder_new_response(m, NE_DNS_RCODE_NOERROR, &b) < 0)
		return ne_dns_verdict_refuse();
	r = 0;
	if (ne_dns_message_qtype(m) == NE_DNS_TYPE_A)
		r = ne_dns_builder_add_address(b, NE_DNS_ANSWER, ne_dns_message_qname(m), T.ttl, AF_INET, &T.addr);
	else if (ne_dns_message_qtype(m) == NE_DNS_TYPE_AAAA && T.has_addr6)
		r = ne_dns_builder_add_address(b, NE_DNS_ANSWER, ne_dns_message_qname(m), T.ttl, AF_INET6, &T.addr6);
	if (r < 0) {
		ne_dns_builder_free(b);
		return ne_dns_verdict_refuse();
	}
	if (ne_dns_builder_finish(b, &a) < 0)
		return ne_dns_verdict_refuse();
	/* The verdict refers to its bytes until it is taken: keep a copy past the message. */
	bytes = ne_dns_message_bytes(a, &len);
	memcpy(T.answer, bytes, len);
	ne_dns_message_free(a);
	return ne_dns_verdict_answer_bytes(T.answer, len);
}

static ne_dns_verdict verdict_of(const char *what, const ne_dns_query *q)
{
	size_t len = 0;
	const uint8_t *bytes = ne_dns_query_bytes(q, &len);
	bool raw = false;

#ifdef TESTDNS_RAW
	raw = true;
#endif
	if (!strcmp(what, "answer"))
		return answer(q);
	if (!strcmp(what, "refuse"))
		return ne_dns_verdict_refuse();
	if (!strcmp(what, "drop"))
		return ne_dns_verdict_drop();
	if (!strncmp(what, "route:", 6))
		return raw ? ne_dns_verdict_forward_bytes(what + 6, bytes, len) : ne_dns_verdict_forward(what + 6);
	return raw ? ne_dns_verdict_forward_bytes(NULL, bytes, len) : ne_dns_verdict_forward(NULL);
}

static ne_dns_verdict decide(ne_provider *p, ne_dns_query *q)
{
	const ne_dns_message *m = ne_dns_query_message(q);

	T.n_queries++;
	log_query(q);
	if (T.match[0] && (!m || !ne_dns_name_in_domain(ne_dns_message_qname(m), T.match)))
		return verdict_of("pass", q);
	if (!strcmp(T.mode, "slow")) {
		usleep(T.delay_ms * 1000);
		return verdict_of(T.then, q);
	}
	if (!strcmp(T.mode, "later")) {
		if (T.n_later == LATER_MAX)
			return ne_dns_verdict_drop();
		T.later[T.n_later++] = (struct later){ p, q, now_ms() + T.delay_ms };
		return ne_dns_verdict_later();
	}
	return verdict_of(T.mode, q);
}

#ifdef TESTDNS_RAW
static ne_dns_verdict handle_raw(ne_provider *p, ne_dns_query *q, const void *bytes, size_t len, void *ud)
{
	(void)bytes;
	(void)len;
	(void)ud;
	return decide(p, q);
}
#else
static ne_dns_verdict handle_query(ne_provider *p, ne_dns_query *q, void *ud)
{
	(void)ud;
	return decide(p, q);
}
#endif

/* responses=rewrite:ADDR: the same answer with every A record pointing at ADDR. */
static ne_dns_response_verdict rewrite(const ne_dns_query *q, const ne_dns_message *resp)
{
	const ne_dns_message *m = ne_dns_query_message(q);
	ne_dns_message *a = NULL;
	struct ne_dns_record rec;
	ne_dns_builder *b;
	const uint8_t *bytes;
	size_t i, len;
	int r = 0;

	if (!m || ne_dns_builder_new_response(m, ne_dns_message_rcode(resp) & 0xf, &b) < 0)
		return ne_dns_response_pass();
	for (i = 0; r == 0 && i < ne_dns_message_count(resp, NE_DNS_ANSWER); i++) {
		if (ne_dns_message_record(resp, NE_DNS_ANSWER, i, &rec) < 0)
			break;
		if (rec.type == NE_DNS_TYPE_A)
			r = ne_dns_builder_add_address(b, NE_DNS_ANSWER, rec.name, rec.ttl, AF_INET, &T.rewrite);
		else
			r = ne_dns_builder_copy_record(b, NE_DNS_ANSWER, resp, NE_DNS_ANSWER, i);
	}
	if (r < 0 || ne_dns_builder_finish(b, &a) < 0) {
		if (r < 0)
			ne_dns_builder_free(b);
		return ne_dns_response_drop();
	}
	bytes = ne_dns_message_bytes(a, &len);
	memcpy(T.answer, bytes, len);
	ne_dns_message_free(a);
	return (ne_dns_response_verdict){ NE_DNS_RESPONSE_REWRITE, T.answer, len };
}

static ne_dns_response_verdict handle_response(ne_provider *p, ne_dns_query *q, const ne_dns_message *resp,
					       void *ud)
{
	T.n_responses++;
	if (T.log_queries)
		ne_extension_log(T.ext, NE_LOG_INFO, "response %s rcode %d answers %zu", ne_dns_message_qname(resp),
				 ne_dns_message_rcode(resp), ne_dns_message_count(resp, NE_DNS_ANSWER));
	(void)p;
	(void)ud;
	if (!strcmp(T.responses, "drop"))
		return ne_dns_response_drop();
	if (!strncmp(T.responses, "rewrite:", 8))
		return rewrite(q, resp);
	return ne_dns_response_pass();
}

static void app_message(ne_provider *p, ne_message *m, const void *data, size_t len, void *ud)
{
	char out[128];
	int n;

	if (len == 5 && !memcmp(data, "stats", 5)) {
		n = snprintf(out, sizeof(out), "queries=%llu responses=%llu", T.n_queries, T.n_responses);
		ne_message_reply(m, 0, out, (size_t)n);
		return;
	}
	ne_message_reply(m, -EINVAL, NULL, 0);
	(void)p;
	(void)ud;
}

static void stop(ne_provider *p, ne_stop_reason reason, void *ud)
{
	size_t i, k = 0;

	/* Its held queries die with it. */
	for (i = 0; i < T.n_later; i++)
		if (T.later[i].p != p)
			T.later[k++] = T.later[i];
	T.n_later = k;
	ne_provider_stop_done(p);
	(void)reason;
	(void)ud;
}

/* Resumes the LATER queries that are due; the milliseconds until the next one, or -1. */
static int resume_due(void)
{
	unsigned long long now = now_ms();
	size_t i = 0;
	int next = -1;

	while (i < T.n_later) {
		struct later *l = &T.later[i];

		if (l->due_ms <= now) {
			(void)ne_dns_query_resume(l->p, l->q, verdict_of(T.then, l->q));
			*l = T.later[--T.n_later];
			continue;
		}
		if (next < 0 || (int)(l->due_ms - now) < next)
			next = (int)(l->due_ms - now);
		i++;
	}
	return next;
}

int main(void)
{
	static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = start, .stop = stop,
						    .app_message = app_message };
	static const struct ne_dns_proxy_ops dops = {
		.size = sizeof(dops),
#ifdef TESTDNS_RAW
		.handle_raw = handle_raw,
#else
		.handle_query = handle_query,
#endif
		.handle_response = handle_response,
	};
	struct pollfd pfd = { .events = POLLIN };
	int r;

	if (ne_extension_new(&T.ext) < 0 || ne_extension_register_dns_proxy(T.ext, &ops, &dops, NULL) < 0)
		return 1;
	r = ne_extension_connect(T.ext);
	pfd.fd = ne_extension_fd(T.ext);
	while (r >= 0) {
		r = ne_extension_dispatch(T.ext);
		if (r != 0)
			break;
		if (poll(&pfd, 1, resume_due()) < 0 && errno != EINTR)
			r = -errno;
	}
	ne_extension_free(T.ext);
	return r < 0;
}
