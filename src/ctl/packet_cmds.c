/* netextctl packet: the packet filter's status (docs/packet-filter.md).
 *
 *   packet status [--json]   configuration, provider state, queues and counters */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

#define PACKET_USAGE "packet status [--json]"

static int usage_error(const char *what)
{
	fprintf(stderr, "netextctl: %s\nusage: netextctl " PACKET_USAGE "\n", what);
	return EXIT_USAGE;
}

static const char *str(json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : def;
}

static long long num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void show_status(json_t *r)
{
	static const char *const counters[] = {
		"received", "to_provider", "allowed", "dropped", "delayed", "modified", "refused",
		"late_verdicts", "timeouts", "fail_policy_applied", "ring_full_stalls", "passthrough",
		"seqadj_flows", "seqadj_applied", "seqadj_missed", "nfq_batch_verdicts",
		"nfq_single_verdicts", "nfq_sends", "errors",
	};
	json_t *c = json_object_get(r, "counters"), *queues = json_object_get(r, "queues"), *q, *s;
	size_t i;

	if (!json_is_true(json_object_get(r, "enabled"))) {
		printf("packet filter: no filter-packet configuration enabled\n");
		return;
	}
	printf("configuration %s: provider %s, settings %s, fail policy %s\n", str(r, "configuration", "?"),
	       str(r, "state", "?"), json_is_true(json_object_get(r, "settings")) ? "applied" : "not applied",
	       str(r, "fail_policy", "?"));
	printf("  %lld rule(s), copy range %lld, verdict deadline %lld ms, delay at most %lld ms, "
	       "rings %lld KiB\n", num(r, "rules"), num(r, "copy_range"), num(r, "verdict_timeout_ms"),
	       num(r, "delay_max_ms"), num(r, "ring_kib"));
	json_array_foreach(queues, i, q)
		printf("  queue %lld (nfqueue %lld): %s, %lld in flight, %lld delayed%s\n", num(q, "index"),
		       num(q, "nfqueue"), json_is_true(json_object_get(q, "rings")) ? "rings" : "no rings",
		       num(q, "in_flight"), num(q, "delayed"),
		       json_is_true(json_object_get(q, "stalled")) ? ", stalled (ring full)" : "");
	for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		printf("  %-20s %lld\n", counters[i], num(c, counters[i]));
	json_array_foreach(json_object_get(r, "standby"), i, s)
		printf("  waiting: %s (comes after %s)\n", json_string_value(s), str(r, "configuration", "?"));
}

int cmd_packet(int argc, char **argv)
{
	int i;

	if (argc < 2 || strcmp(argv[1], "status"))
		return usage_error(argc >= 2 ? "unknown packet command" : "packet needs status");
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			opt_json = true;
		else
			return usage_error("packet status takes only --json");
	}
	return ctl_run("packet.status", NULL, show_status);
}
