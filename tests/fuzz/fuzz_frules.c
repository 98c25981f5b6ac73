/* Fuzz harness for what a filter provider's settings become in the daemon: the
 * FILTER_SETTINGS decoder, then frules_compile (every string checked and normalised), then
 * frules_match against flows of both families with and without process data. The input is
 * a FILTER_SETTINGS payload. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "frules.h"
#include "wire.h"

static struct ne_wire_rule rules[NE_WIRE_RULES_MAX];
static uint8_t out[NE_WIRE_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ne_msg_filter_settings m = { .rules = rules };
	struct frule_flow f[3] = {
		{ .direction = 1, .protocol = 6, .family = AF_INET, .local = { 198, 18, 1, 1 },
		  .remote = { 198, 18, 1, 2 }, .remote_port = 443, .hostname = "a.example.com",
		  .executable = "/usr/bin/curl", .cgroup = "/user.slice/x", .has_uid = true, .uid = 1000 },
		{ .direction = 2, .protocol = 17, .family = AF_INET6, .remote = { [15] = 1 } },
		{ .direction = 1, .protocol = 6, .family = AF_INET, .remote = { 127, 0, 0, 53 }, .remote_port = 53 },
	};
	struct frules fr;
	char err[256];
	size_t i;
	int rule;

	if (ne_msg_filter_settings_decode(data, size, &m) < 0)
		return 0;
	if (frules_compile(m.rules, m.n_rules, m.default_action, &fr, err, sizeof(err)) < 0) {
		if (!memchr(err, '\0', sizeof(err)))
			abort();
		return 0;
	}
	for (i = 0; i < 3; i++) {
		enum frule_action a = frules_match(&fr, &f[i], &rule);

		if (a < FRULE_ALLOW || a > FRULE_ASK || rule < -1 || rule >= (int)fr.n)
			abort();
	}
	frules_clear(&fr);
	return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static struct ne_wire_rule w[3] = {
		{ .action = 2, .direction = 1, .protocol = 6, .remote_network = { "198.18.0.0/15", 13 },
		  .remote_port = 443, .remote_hostname = { "example.com", 11 } },
		{ .action = 3, .executable = { "/usr/bin/curl", 13 }, .match_uid = true, .uid = 1000,
		  .cgroup = { "/user.slice", 11 } },
		{ .action = 1, .remote_network = { "127.0.0.0/8", 11 }, .local_network = { "::1", 3 } },
	};
	struct ne_msg_filter_settings s = { 1, 3, 7, 1000, 3, w };
	struct ne_wbuf b = { out, 0, sizeof(out), 0 };
	int len = ne_msg_filter_settings_encode(&b, 1, &s);

	if (len < NE_WIRE_HDR_LEN)
		abort();
	add(out + NE_WIRE_HDR_LEN, (size_t)len - NE_WIRE_HDR_LEN, userdata);
}
