/* netext-simplefirewall: Apple's SimpleFirewall sample for netext.
 *
 * Apple's sample filters inbound TCP connections to one port: the filter pauses each one
 * and its app asks the user whether to allow it. Here the "app" is whoever sends app
 * messages (`netextctl message CONFIG ...`), and an administrator can answer directly
 * with `netextctl flows allow|drop ID`; either way the paused connection completes or
 * fails.
 *
 * Settings:  one rule, inbound TCP to local port `port` (default 8888) -> filter-data
 *            (ask this provider); every other flow is allowed by the daemon alone.
 * Options:   port=N        the local port to guard (1-65535)
 * Messages:  pending       one line per paused flow: "ID description"
 *            allow ID      resume that flow with allow; replies "ok" or an error text
 *            drop ID       resume it with drop;  replies "ok" or an error text
 *
 * Memory is bounded: at most SFW_PAUSED_MAX paused flows are remembered per provider (the
 * daemon's own limit of paused TCP flows per configuration); a flow beyond that is dropped
 * at once and logged. A flow decided elsewhere (netextctl, a limit) arrives as a RESOLVED
 * report and is forgotten. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netext/filter.h>

#define SFW_DEFAULT_PORT 8888
#define SFW_PAUSED_MAX 1024
#define SFW_DESC_MAX 512

struct sfw_paused {
	uint64_t id;
	char *desc; /* ne_flow_format's line, kept for "pending" */
};

/* One per configuration (provider). */
struct sfw {
	ne_provider *provider;
	ne_extension *ext;
	uint16_t port;
	struct sfw_paused *paused; /* SFW_PAUSED_MAX slots, the first n used */
	size_t n;
};

static void sfw_free(struct sfw *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		free(s->paused[i].desc);
	free(s->paused);
	free(s);
}

static struct sfw_paused *sfw_find(struct sfw *s, uint64_t id)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->paused[i].id == id)
			return &s->paused[i];
	return NULL;
}

/* Order does not matter: the last entry takes the freed slot. */
static void sfw_forget(struct sfw *s, uint64_t id)
{
	struct sfw_paused *p = sfw_find(s, id);

	if (!p)
		return;
	free(p->desc);
	*p = s->paused[--s->n];
}

/* Parses "1".."65535"; 0 on success. */
static int parse_port(const char *text, uint16_t *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || end == text || *end || v < 1 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

static void settings_done(ne_provider *provider, int error, const char *message, void *userdata)
{
	struct sfw *s = userdata;

	if (error == 0) {
		ne_extension_log(s->ext, NE_LOG_INFO, "%s: guarding inbound TCP port %u",
				 ne_provider_configuration(provider), s->port);
	} else {
		/* A failed start leaves the provider stopped, without a stop callback. */
		ne_provider_set_context(provider, NULL);
		sfw_free(s);
	}
	ne_provider_start_done(provider, error, message);
}

static void sfw_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	const char *port = ne_options_get(options, "port");
	struct ne_filter_rule rule = {
		.action = NE_FILTER_ACTION_FILTER_DATA,
		.direction = NE_FLOW_INBOUND,
		.protocol = IPPROTO_TCP,
	};
	struct ne_filter_settings settings = {
		.size = sizeof(settings),
		.rules = &rule,
		.n_rules = 1,
		.default_action = NE_FILTER_ACTION_ALLOW,
	};
	struct sfw *s = calloc(1, sizeof(*s));
	int r;

	(void)userdata;
	if (s)
		s->paused = calloc(SFW_PAUSED_MAX, sizeof(*s->paused));
	if (!s || !s->paused) {
		sfw_free(s);
		ne_provider_start_done(provider, -ENOMEM, "out of memory");
		return;
	}
	s->provider = provider;
	s->ext = ne_provider_extension(provider);
	s->port = SFW_DEFAULT_PORT;
	if (port && parse_port(port, &s->port) < 0) {
		sfw_free(s);
		ne_provider_start_done(provider, -EINVAL, "option port: not a port number (1-65535)");
		return;
	}
	ne_provider_set_context(provider, s);
	rule.local_port = s->port;
	/* start_done follows from settings_done, once the daemon has the rule. */
	r = ne_filter_apply_settings(provider, &settings, settings_done, s);
	if (r < 0) {
		ne_provider_set_context(provider, NULL);
		sfw_free(s);
		ne_provider_start_done(provider, r, "cannot send the filter settings");
	}
}

static void sfw_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct sfw *s = ne_provider_get_context(provider);
	const char *why = ne_stop_reason_name(reason);

	(void)userdata;
	/* A provider whose start failed has no context. */
	if (s)
		ne_extension_log(s->ext, NE_LOG_INFO, "%s: stopping (%s), %zu paused flows left to the fail policy",
				 ne_provider_configuration(provider), why ? why : "unknown reason", s->n);
	ne_provider_set_context(provider, NULL);
	sfw_free(s);
	ne_provider_stop_done(provider);
}

/* handleNewFlow: only inbound connections to the guarded port come here (the rule). */
static ne_filter_verdict sfw_new_flow(ne_provider *provider, ne_flow *flow, void *userdata)
{
	struct sfw *s = ne_provider_get_context(provider);
	char desc[SFW_DESC_MAX];
	uint64_t id = ne_flow_id(flow);
	char *copy;

	(void)userdata;
	ne_flow_format(flow, desc, sizeof(desc));
	copy = s && s->n < SFW_PAUSED_MAX ? strdup(desc) : NULL;
	if (!copy) {
		ne_extension_log(ne_provider_extension(provider), NE_LOG_WARNING,
				 "dropped flow %" PRIu64 ": %s (%s)", id, desc,
				 !s ? "not started" : s->n >= SFW_PAUSED_MAX ? "too many paused flows"
						      : "out of memory");
		return ne_filter_verdict_drop();
	}
	s->paused[s->n].id = id;
	s->paused[s->n++].desc = copy;
	ne_extension_log(s->ext, NE_LOG_INFO, "paused flow %" PRIu64 ": %s", id, desc);
	return ne_filter_verdict_pause();
}

/* A paused flow was decided elsewhere: by a person with netextctl, or by a limit. */
static void sfw_report(ne_provider *provider, const struct ne_filter_report *report, void *userdata)
{
	struct sfw *s = ne_provider_get_context(provider);
	uint64_t id = ne_flow_id(report->flow);

	(void)userdata;
	if (!s || report->event != NE_FILTER_REPORT_RESOLVED)
		return;
	ne_extension_log(s->ext, NE_LOG_INFO, "flow %" PRIu64 " %s by %s", id,
			 report->verdict == NE_VERDICT_ALLOW ? "allowed" : "dropped",
			 report->detail ? report->detail : "someone else");
	sfw_forget(s, id);
}

/* "pending": "ID description" per paused flow, as many lines as fit one reply. */
static void reply_pending(struct sfw *s, ne_message *message)
{
	static char out[NE_MESSAGE_MAX];
	size_t i, len = 0;
	int n;

	for (i = 0; i < s->n; i++) {
		n = snprintf(out + len, sizeof(out) - len, "%" PRIu64 " %s\n", s->paused[i].id,
			     s->paused[i].desc);
		if (n < 0 || (size_t)n >= sizeof(out) - len)
			break;
		len += (size_t)n;
	}
	/* Lines are separated, not terminated: netextctl ends the reply with its own newline. */
	ne_message_reply(message, 0, out, len ? len - 1 : 0);
}

/* "allow ID" / "drop ID": the app's answer for one paused flow. */
static void reply_decide(struct sfw *s, ne_message *message, bool allow, const char *arg)
{
	char out[128];
	unsigned long long id;
	ne_flow *flow;
	char *end;
	int n, r;

	errno = 0;
	id = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || !sfw_find(s, id)) {
		n = snprintf(out, sizeof(out), "error: no paused flow '%.32s' (see: pending)", arg);
		ne_message_reply(message, 0, out, (size_t)n);
		return;
	}
	flow = ne_filter_waiting_flow(s->provider, id);
	r = flow ? ne_filter_resume_flow(s->provider, flow,
					 allow ? ne_filter_verdict_allow() : ne_filter_verdict_drop())
		 : -ENOENT;
	sfw_forget(s, id); /* resumed, or already gone from the daemon */
	if (r < 0) {
		n = snprintf(out, sizeof(out), "error: flow %llu: %s", id, strerror(-r));
		ne_message_reply(message, 0, out, (size_t)n);
		return;
	}
	ne_extension_log(s->ext, NE_LOG_INFO, "flow %llu %s by the app", id, allow ? "allowed" : "dropped");
	ne_message_reply(message, 0, "ok", 2);
}

static void sfw_app_message(ne_provider *provider, ne_message *message, const void *data,
			    size_t len, void *userdata)
{
	struct sfw *s = ne_provider_get_context(provider);
	char req[64];

	(void)userdata;
	if (!s || len >= sizeof(req)) {
		ne_message_reply(message, -EINVAL, NULL, 0);
		return;
	}
	if (len) /* data may be NULL when len is 0 */
		memcpy(req, data, len);
	req[len] = '\0';
	if (!strcmp(req, "pending"))
		reply_pending(s, message);
	else if (!strncmp(req, "allow ", 6))
		reply_decide(s, message, true, req + 6);
	else if (!strncmp(req, "drop ", 5))
		reply_decide(s, message, false, req + 5);
	else
		ne_message_reply(message, -EINVAL, NULL, 0);
}

int main(void)
{
	static const struct ne_provider_ops ops = {
		.size = sizeof(ops),
		.start = sfw_start,
		.stop = sfw_stop,
		.app_message = sfw_app_message,
	};
	static const struct ne_filter_ops filter_ops = {
		.size = sizeof(filter_ops),
		.handle_new_flow = sfw_new_flow,
		.handle_report = sfw_report,
	};
	ne_extension *ext = NULL;
	int r;

	r = ne_extension_new(&ext);
	if (r >= 0)
		r = ne_extension_register_filter(ext, &ops, &filter_ops, NULL);
	if (r >= 0)
		r = ne_extension_run(ext);
	if (r < 0)
		fprintf(stderr, "netext-simplefirewall: %s%s\n", strerror(-r),
			r == -ENOTCONN ? " (not started by netextd)" : "");
	ne_extension_free(ext);
	return r < 0 ? 1 : 0;
}
