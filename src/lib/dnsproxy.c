/* libnetext, dns-proxy provider: queries, verdicts and responses (dnsproxy.h).
 *
 * Trust: as extension.c. Frames come from netextd and are decoded strictly. The author's
 * calls (resume twice, resume a query whose deadline passed, a handle of another provider)
 * are checked against the provider's list of held queries before a handle is used, and a
 * verdict the daemon would refuse as malformed (a kind out of range, a target with control
 * characters, more than 65535 bytes) is never sent: from resume it is an error, from a
 * callback it becomes an answer without bytes, which netextd refuses, counts as a bad
 * verdict and answers SERVFAIL.
 *
 * What is held: a query that got LATER until its verdict or its deadline (the configuration's
 * "verdict_timeout_ms", which the daemon also applies: after it, netextd has used the fail
 * policy), and a forwarded query of a provider with handle_response until its answer comes or
 * RESPONSE_KEEP_USEC passed (netextd gives up on upstream servers well before that, and does not
 * tell). Both lists are in deadline order and swept when a query arrives. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <netext/dnsproxy.h>

#include "lib-internal.h"
#include "util.h"

#define TIMEOUT_MS_DEFAULT 1000 /* as netextd's dnsprov.c */
#define TIMEOUT_MS_MIN 50
#define TIMEOUT_MS_MAX 10000
#define RESPONSE_KEEP_USEC (60 * 1000000ULL)

enum q_state { Q_NEW, Q_LATER, Q_RESPONSE };

struct ne_dns_query {
	ne_dns_query *prev, *next; /* in later or responses */
	uint64_t id;
	enum q_state state;
	int protocol;
	unsigned long long deadline;
	ne_flow *flow;
	ne_dns_message *msg;       /* NULL in raw mode when the bytes do not parse */
	size_t len;
	uint8_t bytes[];
};

struct qlist {
	ne_dns_query *head, *tail;
};

struct nelib_dns {
	struct qlist later, responses;
	unsigned timeout_ms;
};

/* --- held queries ------------------------------------------------------------------------- */

static void list_add(struct qlist *l, ne_dns_query *q)
{
	q->next = NULL;
	q->prev = l->tail;
	if (l->tail)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
}

static void list_del(struct qlist *l, ne_dns_query *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		l->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		l->tail = q->prev;
	q->prev = q->next = NULL;
}

static bool list_has(const struct qlist *l, const ne_dns_query *q)
{
	const ne_dns_query *x;

	for (x = l->head; x; x = x->next)
		if (x == q)
			return true;
	return false;
}

static ne_dns_query *list_find(const struct qlist *l, uint64_t id)
{
	ne_dns_query *x;

	for (x = l->head; x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

static void query_free(ne_dns_query *q)
{
	if (!q)
		return;
	ne_dns_message_free(q->msg);
	free(q->flow);
	free(q);
}

static void list_clear(struct qlist *l)
{
	ne_dns_query *q;

	while ((q = l->head)) {
		list_del(l, q);
		query_free(q);
	}
}

static void list_expire(struct qlist *l, unsigned long long now)
{
	ne_dns_query *q;

	while ((q = l->head) && q->deadline <= now) {
		list_del(l, q);
		query_free(q);
	}
}

struct nelib_dns *nelib_dns_new(const ne_options *options)
{
	struct nelib_dns *dns = calloc(1, sizeof(*dns));
	const char *v = ne_options_get(options, "verdict_timeout_ms");
	char *end;
	unsigned long t;

	if (!dns)
		return NULL;
	dns->timeout_ms = TIMEOUT_MS_DEFAULT;
	if (v && *v) {
		t = strtoul(v, &end, 10);
		if (!*end && t >= TIMEOUT_MS_MIN && t <= TIMEOUT_MS_MAX)
			dns->timeout_ms = (unsigned)t;
	}
	return dns;
}

void nelib_dns_free(struct nelib_dns *dns)
{
	if (!dns)
		return;
	list_clear(&dns->later);
	list_clear(&dns->responses);
	free(dns);
}

/* --- sending ------------------------------------------------------------------------------ */

int nelib_dns_send_settings(ne_provider *pv, const struct ne_dns_proxy_ops *ops)
{
	ne_extension *ext = ne_provider_extension(pv);
	struct ne_msg_dns_settings m = {
		.provider = nelib_provider_handle(pv),
		.mode = ops->handle_raw ? 1 : 0,
		.want_responses = ops->handle_response != NULL,
	};
	struct ne_wbuf b = nelib_wbuf(ext);

	return nelib_send(ext, ne_msg_dns_settings_encode(&b, &m));
}

/* A verdict netextd's decoder accepts: -EINVAL or -EMSGSIZE otherwise. */
static int verdict_check(const ne_dns_verdict *v)
{
	const char *t = v->target;

	if (v->kind < NE_DNS_VERDICT_FORWARD || v->kind > NE_DNS_VERDICT_DROP)
		return -EINVAL;
	if (v->len && !v->bytes)
		return -EINVAL;
	if (v->kind == NE_DNS_VERDICT_ANSWER && !v->len)
		return -EINVAL;
	if (v->len > NE_DNS_MESSAGE_MAX || (t && strlen(t) > NE_WIRE_STR_MAX))
		return -EMSGSIZE;
	for (; t && *t; t++)
		if ((unsigned char)*t < 0x20 || *t == 0x7f)
			return -EINVAL;
	return 0;
}

static int send_verdict(ne_provider *pv, uint64_t id, const ne_dns_verdict *v)
{
	ne_extension *ext = ne_provider_extension(pv);
	bool with_target = v->kind == NE_DNS_VERDICT_FORWARD && v->target;
	bool with_bytes = v->kind == NE_DNS_VERDICT_FORWARD || v->kind == NE_DNS_VERDICT_ANSWER;
	struct ne_msg_dns_verdict m = {
		.provider = nelib_provider_handle(pv),
		.kind = (uint8_t)v->kind,
		.target = { with_target ? v->target : "", with_target ? strlen(v->target) : 0 },
		.message = { with_bytes && v->bytes ? v->bytes : "", with_bytes && v->bytes ? v->len : 0 },
	};
	struct ne_wbuf b = nelib_wbuf(ext);

	return nelib_send(ext, ne_msg_dns_verdict_encode(&b, id, &m));
}

static int send_response_verdict(ne_provider *pv, uint64_t id, const ne_dns_response_verdict *v)
{
	ne_extension *ext = ne_provider_extension(pv);
	bool with_bytes = v->kind == NE_DNS_RESPONSE_REWRITE && v->bytes;
	struct ne_msg_dns_response_verdict m = {
		.provider = nelib_provider_handle(pv),
		.kind = (uint8_t)v->kind,
		.message = { with_bytes ? v->bytes : "", with_bytes ? v->len : 0 },
	};
	struct ne_wbuf b = nelib_wbuf(ext);

	return nelib_send(ext, ne_msg_dns_response_verdict_encode(&b, id, &m));
}

/* Sends a final verdict for q and then frees it, or keeps it for its answer (forward with
 * handle_response). q is in no list. */
static int finish(ne_provider *pv, struct nelib_dns *st, const struct ne_dns_proxy_ops *ops,
		  ne_dns_query *q, const ne_dns_verdict *v)
{
	int r = send_verdict(pv, q->id, v);

	if (r == 0 && v->kind == NE_DNS_VERDICT_FORWARD && ops->handle_response) {
		q->state = Q_RESPONSE;
		q->deadline = ne_now_usec() + RESPONSE_KEEP_USEC;
		list_add(&st->responses, q);
		return 0;
	}
	query_free(q);
	return r;
}

/* --- frames --------------------------------------------------------------------------------- */

static ne_dns_query *query_new(const struct ne_msg_dns_query *m, uint64_t id, bool raw)
{
	ne_dns_query *q = calloc(1, sizeof(*q) + m->message.len);

	if (!q)
		return NULL;
	q->id = id;
	q->protocol = m->protocol;
	q->len = m->message.len;
	memcpy(q->bytes, m->message.p, m->message.len);
	q->flow = nelib_flow_new(&m->flow);
	if (!q->flow || (ne_dns_message_parse(q->bytes, q->len, &q->msg) < 0 && !raw)) {
		/* netextd sends a parsed-mode provider only queries that parse: this is memory. */
		query_free(q);
		return NULL;
	}
	return q;
}

static int on_query(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	const struct ne_dns_proxy_ops *ops;
	struct ne_msg_dns_query m;
	struct nelib_dns *st;
	ne_dns_verdict v;
	ne_dns_query *q;
	ne_provider *pv;
	void *ud;

	if (ne_msg_dns_query_decode(p, len, &m) < 0 || id == 0)
		return -EBADMSG;
	pv = nelib_find_provider(ext, m.provider);
	if (!pv)
		return 0; /* stopped meanwhile: the daemon's deadline answers for it */
	if (ne_provider_get_type(pv) != NE_PROVIDER_DNS_PROXY)
		return -EPROTO;
	st = nelib_provider_dns(pv, &ops, &ud);
	if (!st)
		return 0;
	list_expire(&st->later, ne_now_usec());
	list_expire(&st->responses, ne_now_usec());
	if (list_find(&st->later, id) || list_find(&st->responses, id))
		return -EPROTO;
	q = query_new(&m, id, ops->handle_raw != NULL);
	if (!q)
		return 0; /* out of memory: the deadline applies the fail policy */
	if (ops->handle_raw)
		v = ops->handle_raw(pv, q, q->bytes, q->len, ud);
	else if (ops->handle_query)
		v = ops->handle_query(pv, q, ud);
	else
		v = ne_dns_verdict_forward(NULL);
	/* The callback may have stopped the provider (its handle is gone then). */
	if (!nelib_provider_live(pv) || nelib_provider_dns(pv, &ops, &ud) != st) {
		query_free(q);
		return 0;
	}
	if (v.kind == NE_DNS_VERDICT_LATER) {
		q->state = Q_LATER;
		q->deadline = ne_now_usec() + st->timeout_ms * 1000ULL;
		list_add(&st->later, q);
		return 0;
	}
	if (verdict_check(&v) < 0)
		v = ne_dns_verdict_answer_bytes(NULL, 0); /* refused by netextd: SERVFAIL, counted */
	return finish(pv, st, ops, q, &v);
}

static int on_response(ne_extension *ext, uint64_t id, const uint8_t *p, size_t len)
{
	const struct ne_dns_proxy_ops *ops;
	struct ne_msg_dns_response m;
	ne_dns_response_verdict v = ne_dns_response_pass();
	ne_dns_message *resp = NULL;
	struct nelib_dns *st;
	ne_dns_query *q;
	ne_provider *pv;
	void *ud;
	int r;

	if (ne_msg_dns_response_decode(p, len, &m) < 0)
		return -EBADMSG;
	pv = nelib_find_provider(ext, m.provider);
	if (!pv)
		return 0;
	if (ne_provider_get_type(pv) != NE_PROVIDER_DNS_PROXY)
		return -EPROTO;
	st = nelib_provider_dns(pv, &ops, &ud);
	if (!st)
		return 0;
	q = list_find(&st->responses, id);
	/* A query this library forgot (kept too long) or an answer that does not parse: passed on
	 * unseen, as netextd would without a provider. */
	if (q)
		list_del(&st->responses, q);
	if (q && ops->handle_response && ne_dns_message_parse(m.message.p, m.message.len, &resp) == 0)
		v = ops->handle_response(pv, q, resp, ud);
	ne_dns_message_free(resp);
	query_free(q);
	if (!nelib_provider_live(pv) || !nelib_provider_dns(pv, &ops, &ud))
		return 0;
	if (v.kind < NE_DNS_RESPONSE_PASS || v.kind > NE_DNS_RESPONSE_DROP || (v.len && !v.bytes) ||
	    v.len > NE_DNS_MESSAGE_MAX || (v.kind == NE_DNS_RESPONSE_REWRITE && !v.len))
		v = (ne_dns_response_verdict){ NE_DNS_RESPONSE_REWRITE, NULL, 0 }; /* refused: counted */
	r = send_response_verdict(pv, id, &v);
	return r;
}

int nelib_dns_frame(ne_extension *ext, const struct ne_msg_hdr *h, const uint8_t *p, size_t len)
{
	switch (h->type) {
	case NE_MSG_DNS_QUERY:
		return on_query(ext, h->id, p, len);
	case NE_MSG_DNS_RESPONSE:
		return on_response(ext, h->id, p, len);
	default:
		return -EPROTO;
	}
}

/* --- public API ------------------------------------------------------------------------------ */

int ne_extension_register_dns_proxy(ne_extension *ext, const struct ne_provider_ops *ops,
				    const struct ne_dns_proxy_ops *dns_ops, void *userdata)
{
	/* The first table ever published is this one: later headers may only append. */
	if (!ext || !dns_ops || dns_ops->size < sizeof(struct ne_dns_proxy_ops))
		return -EINVAL;
	if (!dns_ops->handle_query == !dns_ops->handle_raw)
		return -EINVAL;
	return nelib_register_dns(ext, ops, dns_ops, userdata);
}

uint64_t ne_dns_query_id(const ne_dns_query *q)
{
	return q ? q->id : 0;
}

const ne_dns_message *ne_dns_query_message(const ne_dns_query *q)
{
	return q ? q->msg : NULL;
}

const uint8_t *ne_dns_query_bytes(const ne_dns_query *q, size_t *ret_len)
{
	if (!q)
		return NULL;
	if (ret_len)
		*ret_len = q->len;
	return q->bytes;
}

int ne_dns_query_protocol(const ne_dns_query *q)
{
	return q ? q->protocol : -EINVAL;
}

const ne_flow *ne_dns_query_flow(const ne_dns_query *q)
{
	return q ? q->flow : NULL;
}

ne_dns_verdict ne_dns_verdict_answer(const ne_dns_message *answer)
{
	size_t len = 0;
	const uint8_t *bytes = answer ? ne_dns_message_bytes(answer, &len) : NULL;

	return ne_dns_verdict_answer_bytes(bytes, bytes ? len : 0);
}

ne_dns_response_verdict ne_dns_response_rewrite(const ne_dns_message *answer)
{
	ne_dns_response_verdict v = { NE_DNS_RESPONSE_REWRITE, NULL, 0 };

	if (answer)
		v.bytes = ne_dns_message_bytes(answer, &v.len);
	if (!v.bytes)
		v.len = 0;
	return v;
}

/* -EINVAL for bad arguments or a verdict netextd would refuse (the query stays held);
 * -ENOENT when q is not held for a verdict (answered, its deadline passed, its provider
 * stopped, another provider's). */
int ne_dns_query_resume(ne_provider *provider, ne_dns_query *q, ne_dns_verdict verdict)
{
	const struct ne_dns_proxy_ops *ops;
	struct nelib_dns *st;
	void *ud;
	int r;

	if (!nelib_provider_live(provider) || !q)
		return -EINVAL;
	st = nelib_provider_dns(provider, &ops, &ud);
	/* By address first: a handle that was decided is freed, so it is never dereferenced
	 * before it is found among the held ones. */
	if (!st || !list_has(&st->later, q))
		return -ENOENT;
	if (q->deadline <= ne_now_usec()) {
		list_del(&st->later, q);
		query_free(q);
		return -ENOENT;
	}
	if (verdict.kind == NE_DNS_VERDICT_LATER)
		return -EINVAL;
	r = verdict_check(&verdict);
	if (r < 0)
		return r;
	list_del(&st->later, q);
	return finish(provider, st, ops, q, &verdict);
}
