/* netextctl flows | filter: what the content filter sees (docs/filter.md).
 *
 *   flows [--pending]      one table of the flows the daemon tracks, newest first
 *   flows --follow         one line per flow event until interrupted
 *   flows allow|drop ID    a person's verdict for a paused (or pending) flow */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl.h"

static const char *str(json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : def;
}

/* "curl[1234] uid 1000" or "unknown (the socket was gone)". */
static void process_text(json_t *f, char *buf, size_t size)
{
	json_t *p = json_object_get(f, "process");
	const char *exe = str(p, "executable", NULL), *base;
	json_t *uid = json_object_get(f, "uid");
	int n;

	if (json_object_get(p, "pid")) {
		base = exe ? strrchr(exe, '/') : NULL;
		n = snprintf(buf, size, "%s[%lld]", base ? base + 1 : exe ? exe : "?",
			     json_integer_value(json_object_get(p, "pid")));
	} else
		n = snprintf(buf, size, "unknown (%s)", str(p, "unknown", "?"));
	if (uid && n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, " uid %lld", json_integer_value(uid));
}

static void bytes_text(json_t *f, char *buf, size_t size)
{
	json_t *in = json_object_get(f, "bytes_in"), *out = json_object_get(f, "bytes_out");

	if (!in && !out)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%lld/%lld", json_integer_value(in), json_integer_value(out));
}

static void print_flow(json_t *f, const char *event)
{
	char proc[256], bytes[64], remote[320];
	const char *host = str(f, "hostname", NULL);

	process_text(f, proc, sizeof(proc));
	bytes_text(f, bytes, sizeof(bytes));
	snprintf(remote, sizeof(remote), "%s%s%s", host ? host : "", host ? "=" : "", str(f, "remote", "?"));
	if (event)
		printf("%-8s ", event);
	printf("%-8lld %-3s %-3s %-22s %-40s %-8s %-14s %s\n", json_integer_value(json_object_get(f, "id")),
	       str(f, "protocol", "?"), !strcmp(str(f, "direction", ""), "inbound") ? "in" : "out",
	       str(f, "local", "?"), remote, str(f, "state", "?"), bytes, proc);
}

static void show_flows(json_t *r)
{
	json_t *flows = json_object_get(r, "flows"), *f;
	size_t i;

	if (!json_array_size(flows)) {
		printf("no flows\n");
		return;
	}
	printf("%-8s %-3s %-3s %-22s %-40s %-8s %-14s %s\n", "ID", "PRO", "DIR", "LOCAL", "REMOTE",
	       "STATE", "BYTES IN/OUT", "PROCESS");
	json_array_foreach(flows, i, f) {
		print_flow(f, NULL);
		if (!strcmp(str(f, "state", ""), "paused") || !strcmp(str(f, "state", ""), "pending"))
			printf("         waiting for %s; answer with: netextctl flows allow|drop %lld\n",
			       str(f, "waiting_for", "?"), json_integer_value(json_object_get(f, "id")));
	}
}

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	(void)sig;
	stop = 1;
}

/* Prints each event line until the daemon ends the stream or the user interrupts. */
static int follow(void)
{
	struct sigaction sa = { .sa_handler = on_sigint };
	char buf[65536];
	size_t len = 0;
	int fd;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fd = ctl_connect();
	if (fd < 0)
		return EXIT_UNREACHABLE;
	if (ctl_send_line(fd, "{\"id\":1,\"method\":\"flows.follow\",\"params\":{}}") < 0) {
		close(fd);
		return EXIT_FAILED;
	}
	if (!opt_json)
		printf("%-8s %-8s %-3s %-3s %-22s %-40s %-8s %-14s %s\n", "EVENT", "ID", "PRO", "DIR",
		       "LOCAL", "REMOTE", "STATE", "BYTES IN/OUT", "PROCESS");
	fflush(stdout);
	while (!stop) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
		char *nl, *line = buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		while ((nl = memchr(line, '\n', len - (size_t)(line - buf)))) {
			json_t *j = json_loadb(line, (size_t)(nl - line), 0, NULL), *err;

			line = nl + 1;
			if ((err = json_object_get(j, "error"))) {
				fprintf(stderr, "netextctl: %s: %s\n", str(err, "code", "error"), str(err, "message", ""));
				json_decref(j);
				close(fd);
				return !strcmp(str(err, "code", ""), "permission-denied") ? EXIT_DENIED : EXIT_FAILED;
			}
			if (j && !strcmp(str(j, "event", ""), "flow")) {
				json_t *d = json_object_get(j, "data");

				if (opt_json)
					json_dumpf(d, stdout, JSON_COMPACT), putchar('\n');
				else
					print_flow(d, str(d, "event", "?"));
				fflush(stdout);
			}
			json_decref(j);
		}
		len -= (size_t)(line - buf);
		memmove(buf, line, len);
		if (len == sizeof(buf) - 1)
			len = 0; /* an absurd line: drop it */
	}
	close(fd);
	return EXIT_OK;
}

static void show_decided(json_t *r)
{
	printf("flow %lld: %s\n", json_integer_value(json_object_get(r, "id")), str(r, "verdict", "?"));
}

int cmd_flows(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pending", no_argument, NULL, 'p' },
		{ "follow", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	bool pending = false, fol = false;
	char *end;
	long long id;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "pfj", lo, NULL)) != -1) {
		switch (c) {
		case 'p': pending = true; break;
		case 'f': fol = true; break;
		case 'j': opt_json = true; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		if (optind + 2 != argc || (strcmp(argv[optind], "allow") && strcmp(argv[optind], "drop"))) {
			fprintf(stderr, "netextctl: usage: flows allow ID | flows drop ID\n");
			return EXIT_USAGE;
		}
		id = strtoll(argv[optind + 1], &end, 10);
		if (*end || id <= 0) {
			fprintf(stderr, "netextctl: '%s' is not a flow id (see: netextctl flows --pending)\n",
				argv[optind + 1]);
			return EXIT_USAGE;
		}
		return ctl_run("flows.decide", json_pack("{s:I, s:s}", "id", (json_int_t)id, "verdict",
							 argv[optind]), show_decided);
	}
	if (fol)
		return follow();
	return ctl_run("flows.list", json_pack("{s:b}", "pending", pending), show_flows);
}

static void show_filter(json_t *r)
{
	json_t *cfgs = json_object_get(r, "filters"), *c;
	size_t i;

	printf("flows tracked %lld, waiting %lld, new %lld, closed %lld, names learned %lld\n",
	       json_integer_value(json_object_get(r, "flows")), json_integer_value(json_object_get(r, "waiting")),
	       json_integer_value(json_object_get(r, "new_flows")), json_integer_value(json_object_get(r, "closed")),
	       json_integer_value(json_object_get(r, "names_learned")));
	if (!json_array_size(cfgs)) {
		printf("no filter configuration is enabled\n");
		return;
	}
	printf("%-5s %-24s %-7s %-8s %-9s %-9s %-9s %-9s %s\n", "ORDER", "CONFIGURATION", "POLICY", "STATE",
	       "ASKED", "ALLOWED", "DROPPED", "DEADLINE", "FAIL-POLICY");
	json_array_foreach(cfgs, i, c)
		printf("%-5lld %-24s %-7s %-8s %-9lld %-9lld %-9lld %-9lld %lld\n",
		       json_integer_value(json_object_get(c, "order")), str(c, "configuration", "?"),
		       str(c, "fail_policy", "?"),
		       json_is_true(json_object_get(c, "running")) ? "running" :
		       json_is_true(json_object_get(c, "present")) ? "starting" : "absent",
		       json_integer_value(json_object_get(c, "asked")), json_integer_value(json_object_get(c, "allowed")),
		       json_integer_value(json_object_get(c, "dropped")),
		       json_integer_value(json_object_get(c, "deadline_missed")),
		       json_integer_value(json_object_get(c, "fail_policy_applied")));
}

int cmd_filter(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "netextctl: filter takes no argument\n");
		return EXIT_USAGE;
	}
	return ctl_run("filter.status", NULL, show_filter);
}
