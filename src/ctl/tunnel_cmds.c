/* netextctl tunnel: packet tunnels (docs/tunnel.md).
 *
 *   tunnel start NAME [--option KEY=VALUE]...   start, wait for the provider's start
 *   tunnel stop NAME                            stop, wait until stopped
 *   tunnel status [NAME] [--json] [--follow]    a table, or one line per state change */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define TUNNEL_USAGE "tunnel start NAME [--option KEY=VALUE]... | tunnel stop NAME |\n" \
		     "       tunnel status [NAME] [--json] [--follow]"

static volatile sig_atomic_t stop;

static void on_sigint(int sig)
{
	(void)sig;
	stop = 1;
}

static int usage_error(const char *what)
{
	fprintf(stderr, "netextctl: %s\nusage: netextctl " TUNNEL_USAGE "\n", what);
	return EXIT_USAGE;
}

static const char *str(json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s && *s ? s : def;
}

static long long num(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void list_text(json_t *a, char *buf, size_t size)
{
	size_t i, n = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(a, i, v) {
		int w = snprintf(buf + n, size - n, "%s%s", i ? " " : "", json_string_value(v));

		if (w < 0 || (size_t)w >= size - n)
			break;
		n += (size_t)w;
	}
	if (!n)
		snprintf(buf, size, "-");
}

static void show_one(json_t *t)
{
	json_t *s = json_object_get(t, "settings"), *dns = json_object_get(s, "dns");
	json_t *rt = json_object_get(t, "routing"), *st = json_object_get(t, "stats");
	json_t *err = json_object_get(t, "last_error");
	char buf[2048];

	printf("%s (extension %s): %s\n", str(t, "configuration", "?"), str(t, "extension", "?"),
	       str(t, "state", "?"));
	if (str(t, "interface", NULL))
		printf("  interface  %s (index %lld), %lld queue(s), mtu %lld, offloads %s\n",
		       str(t, "interface", "-"), num(t, "ifindex"), num(t, "queues"), num(t, "mtu"),
		       str(t, "offloads", "none"));
	if (json_is_object(s)) {
		printf("  remote     %s\n", str(s, "remote_address", "-"));
		list_text(json_object_get(s, "addresses"), buf, sizeof(buf));
		printf("  addresses  %s\n", buf);
		list_text(json_object_get(s, "included_routes"), buf, sizeof(buf));
		printf("  included   %s\n", buf);
		list_text(json_object_get(s, "excluded_routes"), buf, sizeof(buf));
		printf("  excluded   %s\n", buf);
		list_text(json_object_get(dns, "servers"), buf, sizeof(buf));
		printf("  dns        %s", buf);
		list_text(json_object_get(dns, "match_domains"), buf, sizeof(buf));
		printf("; match %s", buf);
		list_text(json_object_get(dns, "search_domains"), buf, sizeof(buf));
		printf("; search %s\n", buf);
		if (str(dns, "note", NULL))
			printf("  dns note   %s\n", str(dns, "note", ""));
		printf("  flags      %s%s%s%s%s\n",
		       json_is_true(json_object_get(s, "include_all_networks")) ? "include-all-networks " : "",
		       json_is_true(json_object_get(s, "exclude_local_networks")) ? "exclude-local-networks " : "",
		       json_is_true(json_object_get(s, "enforce_routes")) ? "enforce-routes " : "",
		       json_is_true(json_object_get(t, "kill_switch")) ? "kill-switch " : "",
		       json_is_true(json_object_get(t, "per_app")) ? "per-app" : "");
	} else if (str(t, "interface", NULL)) {
		printf("  settings   none (cleared or not yet applied)\n");
	}
	if (json_array_size(json_object_get(t, "apps"))) {
		list_text(json_object_get(t, "apps"), buf, sizeof(buf));
		printf("  apps       %s\n", buf);
	}
	if (json_is_object(rt))
		printf("  routing    table %lld, rules at %lld/%lld (app %lld), bypass mark 0x%08llx, app mark 0x%08llx\n",
		       num(rt, "table"), num(rt, "priority_specific"), num(rt, "priority_default"),
		       num(rt, "priority_app"), num(rt, "bypass_mark"), num(rt, "app_mark"));
	if (json_is_object(st) && str(t, "interface", NULL))
		printf("  traffic    rx %lld bytes / %lld packets, tx %lld bytes / %lld packets\n",
		       num(st, "rx_bytes"), num(st, "rx_packets"), num(st, "tx_bytes"), num(st, "tx_packets"));
	if (json_is_true(json_object_get(t, "kill_switch_held")))
		printf("  kill switch held: the extension died; traffic outside the tunnel stays blocked "
		       "until it is back or `netextctl tunnel stop %s`\n", str(t, "name", "NAME"));
	if (json_is_object(json_object_get(t, "kill_switch_drops")))
		printf("  kill switch dropped %lld packets (%lld bytes)\n",
		       num(json_object_get(t, "kill_switch_drops"), "packets"),
		       num(json_object_get(t, "kill_switch_drops"), "bytes"));
	if (json_is_object(err))
		printf("  last error %s: %s\n", str(err, "error", "?"), str(err, "message", ""));
}

static void show_status(json_t *r)
{
	json_t *a = json_object_get(r, "tunnels"), *t;
	size_t i;

	if (!json_array_size(a)) {
		printf("no packet-tunnel configurations\n");
		return;
	}
	json_array_foreach(a, i, t)
		show_one(t);
}

static void show_started(json_t *r)
{
	printf("tunnel %s: %s\n", str(r, "configuration", "?"), str(r, "state", "?"));
	if (str(r, "message", NULL))
		printf("  %s\n", str(r, "message", ""));
}

static void show_stopped(json_t *r)
{
	printf("tunnel %s: %s\n", str(r, "configuration", "?"), str(r, "state", "?"));
}

static void print_event(const char *event, json_t *d)
{
	json_t *t = json_object_get(d, "tunnel"), *err = json_object_get(t, "last_error");
	char when[32];
	time_t now = time(NULL);

	strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
	if (!strcmp(event, "settings"))
		printf("%s %s: settings %s", when, str(d, "configuration", "?"),
		       json_is_object(json_object_get(t, "settings")) ? "applied" : "cleared");
	else
		printf("%s %s: %s -> %s", when, str(d, "configuration", "?"), str(d, "previous", "?"),
		       str(d, "state", "?"));
	if (str(t, "interface", NULL))
		printf(" (%s)", str(t, "interface", ""));
	if (json_is_object(err) && !strcmp(str(d, "state", ""), "disconnected"))
		printf(": %s", str(err, "message", ""));
	putchar('\n');
}

static int follow(const char *name)
{
	struct sigaction sa = { .sa_handler = on_sigint };
	json_t *req = json_pack("{s:i, s:s, s:{}}", "id", 1, "method", "tunnel.watch", "params");
	char buf[65536], *line_out;
	size_t len = 0;
	int fd;

	if (name)
		json_object_set_new(json_object_get(req, "params"), "name", json_string(name));
	line_out = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fd = ctl_connect();
	if (fd < 0) {
		free(line_out);
		return EXIT_UNREACHABLE;
	}
	if (!line_out || ctl_send_line(fd, line_out) < 0) {
		free(line_out);
		close(fd);
		return EXIT_FAILED;
	}
	free(line_out);
	while (!stop) {
		ssize_t n = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
		char *nl, *line = buf;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		while ((nl = memchr(line, '\n', len - (size_t)(line - buf)))) {
			json_t *j = json_loadb(line, (size_t)(nl - line), 0, NULL), *err, *d;

			line = nl + 1;
			if ((err = json_object_get(j, "error"))) {
				fprintf(stderr, "netextctl: %s: %s\n", str(err, "code", "error"), str(err, "message", ""));
				json_decref(j);
				close(fd);
				return !strcmp(str(err, "code", ""), "permission-denied") ? EXIT_DENIED : EXIT_FAILED;
			}
			d = json_object_get(j, "data");
			if (j && (!strcmp(str(j, "event", ""), "state") || !strcmp(str(j, "event", ""), "settings")) &&
			    (!name || !strcmp(str(d, "configuration", ""), name))) {
				if (opt_json) {
					json_object_set_new(d, "event", json_string(str(j, "event", "")));
					json_dumpf(d, stdout, JSON_COMPACT), putchar('\n');
				} else {
					print_event(str(j, "event", ""), d);
				}
				fflush(stdout);
			}
			json_decref(j);
		}
		len -= (size_t)(line - buf);
		memmove(buf, line, len);
		if (len == sizeof(buf) - 1)
			len = 0;
	}
	close(fd);
	return EXIT_OK;
}

static int cmd_start(int argc, char **argv)
{
	json_t *params, *opts = json_object();
	char *eq;
	int i;

	if (argc < 3 || argv[2][0] == '-') {
		json_decref(opts);
		return usage_error("tunnel start needs a configuration name");
	}
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			opt_json = true;
			continue;
		}
		if (strcmp(argv[i], "--option") || i + 1 >= argc || !(eq = strchr(argv[i + 1], '=')) ||
		    eq == argv[i + 1]) {
			json_decref(opts);
			return usage_error("tunnel start takes --option KEY=VALUE");
		}
		*eq = '\0';
		json_object_set_new(opts, argv[i + 1], json_string(eq + 1));
		i++;
	}
	params = json_pack("{s:s, s:o}", "name", argv[2], "options", opts);
	return ctl_run("tunnel.start", params, show_started);
}

int cmd_tunnel(int argc, char **argv)
{
	const char *name = NULL;
	bool follow_opt = false;
	int i;

	if (argc < 2)
		return usage_error("tunnel needs start, stop or status");
	if (!strcmp(argv[1], "start"))
		return cmd_start(argc, argv);
	if (!strcmp(argv[1], "stop")) {
		if (argc != 3 || argv[2][0] == '-')
			return usage_error("tunnel stop needs exactly a configuration name");
		return ctl_run("tunnel.stop", json_pack("{s:s}", "name", argv[2]), show_stopped);
	}
	if (strcmp(argv[1], "status"))
		return usage_error("unknown tunnel command");
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			opt_json = true;
		else if (!strcmp(argv[i], "--follow"))
			follow_opt = true;
		else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else
			return usage_error("tunnel status takes [NAME] [--json] [--follow]");
	}
	if (follow_opt)
		return follow(name);
	return ctl_run("tunnel.status", name ? json_pack("{s:s}", "name", name) : NULL, show_status);
}
