/* netext-testfilter: a filter-data extension whose behaviour the integration tests choose
 * with configuration options. Not an example to copy (see examples/simplefirewall).
 *
 * Options:
 *   default=allow|drop|ask        the settings' default action (default: ask)
 *   drop_host=NAME                a rule: flows to hostname NAME (and below) are dropped
 *   drop_exe=PATH                 a rule: flows of executable PATH are dropped
 *   ask_port=N                    a rule: flows to remote or local port N are asked about
 *   verdict=allow|drop|pause|later|never
 *                                 what handle_new_flow answers (never: no answer at all, so
 *                                 the configuration's deadline decides)
 *   reports=1                     ask for new-flow and closed reports (logged)
 *   slow_start_ms=N               complete the start N ms late (flows wait meanwhile)
 * Every flow it sees is logged as "flow <id> <ne_flow_format>", every report as
 * "report <event> <id> <verdict> in=<bytes> out=<bytes> <detail>".
 * App messages: "pending" lists waiting flow ids, "allow ID" / "drop ID" resume one. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netext/filter.h>

struct tf {
	ne_extension *ext;
	char verdict[16];
	uint64_t waiting[256];
	size_t n_waiting;
};

static struct tf T;

static void settings_done(ne_provider *p, int error, const char *message, void *ud)
{
	ne_extension_log(T.ext, NE_LOG_INFO, "settings %s%s%s", error ? "refused: " : "applied",
			 error ? strerror(-error) : "", message ? message : "");
	ne_provider_start_done(p, error, message);
}

static ne_filter_action action_of(const char *s)
{
	if (s && !strcmp(s, "allow"))
		return NE_FILTER_ACTION_ALLOW;
	if (s && !strcmp(s, "drop"))
		return NE_FILTER_ACTION_DROP;
	return NE_FILTER_ACTION_FILTER_DATA;
}

static void start(ne_provider *p, const ne_options *o, void *ud)
{
	struct ne_filter_rule rules[4] = { { 0 } };
	struct ne_filter_settings s = { .size = sizeof(s), .rules = rules };
	const char *v;

	snprintf(T.verdict, sizeof(T.verdict), "%s", ne_options_get(o, "verdict") ?: "allow");
	s.default_action = action_of(ne_options_get(o, "default"));
	if ((v = ne_options_get(o, "drop_host")))
		rules[s.n_rules++] = (struct ne_filter_rule){ .action = NE_FILTER_ACTION_DROP, .remote_hostname = v };
	if ((v = ne_options_get(o, "drop_exe")))
		rules[s.n_rules++] = (struct ne_filter_rule){ .action = NE_FILTER_ACTION_DROP, .executable = v };
	if ((v = ne_options_get(o, "ask_port"))) {
		rules[s.n_rules++] = (struct ne_filter_rule){ .action = NE_FILTER_ACTION_FILTER_DATA,
							      .remote_port = (uint16_t)atoi(v) };
		rules[s.n_rules++] = (struct ne_filter_rule){ .action = NE_FILTER_ACTION_FILTER_DATA,
							      .local_port = (uint16_t)atoi(v) };
	}
	if ((v = ne_options_get(o, "reports")) && !strcmp(v, "1"))
		s.report_flags = NE_FILTER_REPORT_NEW_FLOWS | NE_FILTER_REPORT_CLOSED;
	if ((v = ne_options_get(o, "slow_start_ms")))
		usleep((useconds_t)atoi(v) * 1000); /* a test of the start window, not a pattern */
	if (ne_filter_apply_settings(p, &s, settings_done, NULL) < 0)
		ne_provider_start_done(p, -EINVAL, "cannot send settings");
	(void)ud;
}

static void remember(uint64_t id)
{
	if (T.n_waiting < sizeof(T.waiting) / sizeof(T.waiting[0]))
		T.waiting[T.n_waiting++] = id;
}

static void forget(uint64_t id)
{
	size_t i;

	for (i = 0; i < T.n_waiting; i++)
		if (T.waiting[i] == id) {
			T.waiting[i] = T.waiting[--T.n_waiting];
			return;
		}
}

static ne_filter_verdict new_flow(ne_provider *p, ne_flow *f, void *ud)
{
	char line[1024];

	ne_flow_format(f, line, sizeof(line));
	ne_extension_log(T.ext, NE_LOG_INFO, "flow %llu %s cgroup=%s", (unsigned long long)ne_flow_id(f),
			 line, ne_flow_cgroup(f) ?: "-");
	(void)p;
	(void)ud;
	if (!strcmp(T.verdict, "drop"))
		return ne_filter_verdict_drop();
	if (!strcmp(T.verdict, "pause") || !strcmp(T.verdict, "later") || !strcmp(T.verdict, "never")) {
		if (strcmp(T.verdict, "never"))
			remember(ne_flow_id(f));
		return !strcmp(T.verdict, "pause") ? ne_filter_verdict_pause() : ne_filter_verdict_later();
	}
	return ne_filter_verdict_allow();
}

static void on_report(ne_provider *p, const struct ne_filter_report *r, void *ud)
{
	static const char *const names[] = { "?", "new-flow", "closed", "statistics", "resolved" };

	ne_extension_log(T.ext, NE_LOG_INFO, "report %s %llu %s in=%llu out=%llu %s",
			 names[r->event <= 4 ? r->event : 0], (unsigned long long)ne_flow_id(r->flow),
			 r->verdict == NE_VERDICT_ALLOW ? "allow" : "drop",
			 (unsigned long long)r->bytes_inbound, (unsigned long long)r->bytes_outbound,
			 r->detail ?: "");
	if (r->event == NE_FILTER_REPORT_RESOLVED)
		forget(ne_flow_id(r->flow));
	(void)p;
	(void)ud;
}

static void app_message(ne_provider *p, ne_message *m, const void *data, size_t len, void *ud)
{
	char req[64] = "", out[4096];
	size_t i, n = 0;
	unsigned long long id;
	ne_flow *f;
	int r;

	memcpy(req, data, len < sizeof(req) - 1 ? len : sizeof(req) - 1);
	if (!strcmp(req, "pending")) {
		for (i = 0; i < T.n_waiting && n < sizeof(out) - 32; i++)
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%llu\n", (unsigned long long)T.waiting[i]);
		ne_message_reply(m, 0, out, n);
		return;
	}
	if (sscanf(req, "allow %llu", &id) == 1 || sscanf(req, "drop %llu", &id) == 1) {
		f = ne_filter_waiting_flow(p, id);
		r = f ? ne_filter_resume_flow(p, f, req[0] == 'a' ? ne_filter_verdict_allow()
								  : ne_filter_verdict_drop())
		      : -ENOENT;
		if (r == 0)
			forget(id);
		n = (size_t)snprintf(out, sizeof(out), "%s", r ? strerror(-r) : "ok");
		ne_message_reply(m, 0, out, n);
		return;
	}
	ne_message_reply(m, -EINVAL, NULL, 0);
	(void)ud;
}

int main(void)
{
	static const struct ne_provider_ops ops = { .size = sizeof(ops), .start = start,
						    .app_message = app_message };
	static const struct ne_filter_ops fops = { .size = sizeof(fops), .handle_new_flow = new_flow,
						   .handle_report = on_report };
	int r;

	if (ne_extension_new(&T.ext) < 0 || ne_extension_register_filter(T.ext, &ops, &fops, NULL) < 0)
		return 1;
	r = ne_extension_run(T.ext);
	ne_extension_free(T.ext);
	return r < 0;
}
