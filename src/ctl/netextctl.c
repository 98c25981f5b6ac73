/* netextctl: the administrator's tool. Speaks the control protocol (src/daemon/control.h)
 * to netextd: one JSON request line, one JSON reply line. Human tables by default, the
 * daemon's JSON with --json. System-extension requests that unfold over time (activate,
 * deactivate, approve, reject, reset) go through libnetext's app side (<netext/system.h>),
 * as any app's would. Exit codes: see ctl.h and netextctl(8). */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <netext/netext.h>
#include <netext/system.h>

#include "ctl.h"


static const char *sock_path = "/run/netext/netextd.sock";
bool opt_json;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: netextctl [--socket PATH] [--json] COMMAND [ARGS]\n"
		"\n"
		"  status                         the daemon, its datapath and extensions\n"
		"  list [-v]                      system extensions and waiting requests\n"
		"                                 (-v: processes: pid, user, restarts, last exit)\n"
		"  activate BUNDLE [--wait] [--replace|--no-replace]\n"
		"                                 install or update the extension in BUNDLE\n"
		"  deactivate ID [--wait]         stop and remove an extension\n"
		"  approve ID | reject ID         decide on a request awaiting approval\n"
		"  properties ID                  an extension's (and its request's) properties\n"
		"  reset [--yes]                  remove every extension (developer mode only)\n"
		"  keygen --team TEAM --output FILE [--force]\n"
		"                                 make a signing key pair (FILE, FILE.pub)\n"
		"  sign BUNDLE --key FILE         sign a bundle (writes BUNDLE/netext.sig)\n"
		"  verify BUNDLE [--key FILE.pub]...   check a bundle and its signature\n"
		"  configs                        configurations and their providers\n"
		"  config add NAME --extension ID --provider TYPE [--fail-open|--fail-closed]\n"
		"             [--option KEY=VALUE]...\n"
		"  config remove NAME\n"
		"  start NAME | stop NAME         start or stop a configuration's provider\n"
		"  message NAME TEXT              send an app message, print the reply\n"
		"  restart ID                     restart an extension (also clears 'failed')\n"
		"  logs [-n LINES]                recent daemon and extension log lines\n"
		"  flows [--pending] [--follow]   flows seen by the content filter (--follow: live)\n"
		"  flows allow ID | flows drop ID decide a paused or pending flow\n"
		"  filter                         content filter configurations and counters\n"
		"  dns route add SUFFIX SERVER [SERVER...]\n"
		"                                 send names under SUFFIX to SERVERs (\".\": the default)\n"
		"  dns route add --exempt SUFFIX  send names under SUFFIX to the default route\n"
		"  dns route del SUFFIX           delete a route added with dns route add\n"
		"  dns route list                 split-DNS routes, the default route and their sources\n"
		"  dns status                     DNS interception, engine and provider counters\n"
		"  packet status                  packet filter: configuration, queues and counters\n"
		"  tunnel start NAME [--option KEY=VALUE]...\n"
		"                                 start a packet tunnel, wait until it is connected\n"
		"  tunnel stop NAME               stop it (device, routes, rules and DNS go)\n"
		"  tunnel status [NAME] [--follow]   state, interface, addresses, routes, DNS,\n"
		"                                 traffic, last error (--follow: state changes)\n"
		"  dev register ID EXECUTABLE [--user USER]   (developer mode only)\n"
		"  dev unregister ID\n"
		"  raw METHOD JSON-PARAMS         send any request (for scripts)\n"
		"\n"
		"The socket is $NETEXT_SOCKET, else /run/netext/netextd.sock.\n"
		"Exit codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable, 4 permission denied\n"
		"(or forbidden by policy, or authorization required), 5 not found.\n");
}

static int die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("netextctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(netextctl --help for usage)\n", stderr);
	return EXIT_USAGE;
}

static void print_unreachable(int err)
{
	fprintf(stderr, "netextctl: cannot reach netextd at %s: %s\n"
			"Is netextd running? (systemctl status netextd, or --socket / NETEXT_SOCKET)\n",
		sock_path, strerror(-err));
}

static int connect_daemon(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 60, 0 };
	int fd;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static int send_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one reply line. */
static json_t *read_reply(int fd)
{
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap);
	json_t *j = NULL;

	while (buf) {
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		char *nl;

		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
		nl = memchr(buf, '\n', len);
		if (nl) {
			j = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
			break;
		}
		if (len == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	free(buf);
	return j;
}

/* Sends method(params) and returns the reply object (NULL: printed an error; *ret_exit set). */
static json_t *call(const char *method, json_t *params, int *ret_exit)
{
	json_t *req = json_pack("{s:i, s:s, s:o}", "id", 1, "method", method,
				"params", params ? params : json_object());
	char *line = json_dumps(req, JSON_COMPACT);
	json_t *reply = NULL;
	int fd;

	json_decref(req);
	fd = connect_daemon();
	if (fd < 0) {
		print_unreachable(fd);
		*ret_exit = EXIT_UNREACHABLE;
		free(line);
		return NULL;
	}
	if (line && send_all(fd, line, strlen(line)) == 0 && send_all(fd, "\n", 1) == 0)
		reply = read_reply(fd);
	free(line);
	close(fd);
	if (!reply) {
		fprintf(stderr, "netextctl: no valid reply from netextd\n");
		*ret_exit = EXIT_FAILED;
	}
	return reply;
}

static int error_exit(const char *code)
{
	if (!strcmp(code, "permission-denied") || !strcmp(code, "forbidden") ||
	    !strcmp(code, "forbidden-by-policy") || !strcmp(code, "authorization-required"))
		return EXIT_DENIED;
	if (!strcmp(code, "not-found") || !strcmp(code, "extension-not-found"))
		return EXIT_NOT_FOUND;
	return EXIT_FAILED;
}

/* Runs a request; prints JSON or calls show(result). */
static int run(const char *method, json_t *params, void (*show)(json_t *))
{
	json_t *reply, *err;
	int code = EXIT_OK;

	reply = call(method, params, &code);
	if (!reply)
		return code;
	err = json_object_get(reply, "error");
	if (!json_is_true(json_object_get(reply, "ok"))) {
		const char *c = json_string_value(json_object_get(err, "code"));

		if (opt_json)
			json_dumpf(reply, stdout, JSON_INDENT(2)), putchar('\n');
		else
			fprintf(stderr, "netextctl: %s: %s\n", c ? c : "error",
				json_string_value(json_object_get(err, "message")) ?: "");
		code = error_exit(c ? c : "");
	} else if (opt_json) {
		json_dumpf(json_object_get(reply, "result"), stdout, JSON_INDENT(2));
		putchar('\n');
	} else if (show) {
		show(json_object_get(reply, "result"));
	}
	json_decref(reply);
	return code;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static long long jint(json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void fmt_duration(long long ms, char *buf, size_t size)
{
	if (ms < 1000)
		snprintf(buf, size, "%lldms", ms);
	else if (ms < 120000)
		snprintf(buf, size, "%llds", ms / 1000);
	else if (ms < 7200000)
		snprintf(buf, size, "%lldm", ms / 60000);
	else
		snprintf(buf, size, "%lldh", ms / 3600000);
}

/* "3/1.2.0", or "-" for an extension without a bundle (dev register). */
static const char *fmt_version(json_t *e, char *buf, size_t size)
{
	if (!jint(e, "version"))
		return "-";
	snprintf(buf, size, "%lld/%s", jint(e, "version"), jstr(e, "short_version"));
	return buf;
}

/* The processes: the table of `status` and `list -v`. */
static void show_extensions(json_t *exts)
{
	size_t i;
	json_t *e;

	printf("%-32s %-10s %-12s %-14s %7s %-10s %8s  %s\n", "IDENTIFIER", "STATE", "LIFECYCLE",
	       "VERSION", "PID", "USER", "RESTARTS", "LAST EXIT");
	json_array_foreach(exts, i, e) {
		char pid[16], ver[96];

		snprintf(pid, sizeof(pid), "%lld", jint(e, "pid"));
		printf("%-32s %-10s %-12s %-14s %7s %-10s %8lld  %s\n", jstr(e, "identifier"),
		       jstr(e, "state"), jstr(e, "lifecycle"), fmt_version(e, ver, sizeof(ver)),
		       jint(e, "pid") ? pid : "-", jstr(e, "user"), jint(e, "restarts"),
		       *jstr(e, "last_exit") ? jstr(e, "last_exit") : "-");
	}
	if (!json_array_size(exts))
		printf("(no extensions)\n");
}

/* One line of `list`, after systemextensionsctl: enabled, active, team, bundle id
 * (version/short version), [lifecycle state], process state. */
static void show_list_line(json_t *e, bool request)
{
	const char *lc = request ? "awaiting approval" : jstr(e, "lifecycle");
	bool enabled = !request && (!strcmp(lc, "enabled") || !strcmp(lc, "replacing") ||
				    !json_object_get(e, "lifecycle"));
	bool active = !request && !strcmp(jstr(e, "state"), "running");
	char id[200], ver[96], state[48];

	if (!json_object_get(e, "lifecycle") && !request)
		lc = "enabled";
	if (jint(e, "version"))
		snprintf(id, sizeof(id), "%s (%s)", jstr(e, "identifier"),
			 fmt_version(e, ver, sizeof(ver)));
	else
		snprintf(id, sizeof(id), "%s", jstr(e, "identifier"));
	snprintf(state, sizeof(state), "[%s]", lc);
	printf("%-8s %-7s %-11s %-44s %-20s %s\n", enabled ? "*" : "", active ? "*" : "",
	       jstr(e, "team"), id, state, request ? "" : jstr(e, "state"));
}

static void show_status(json_t *r)
{
	char up[32];

	fmt_duration(jint(r, "uptime_ms"), up, sizeof(up));
	printf("netextd %s, pid %lld, up %s\n", jstr(r, "version"), jint(r, "pid"), up);
	printf("  state dir   %s\n  run dir     %s\n", jstr(r, "state_dir"), jstr(r, "run_dir"));
	if (*jstr(r, "nftables_table"))
		printf("  datapath    table %s, queue via %s\n", jstr(r, "nftables_table"),
		       jstr(r, "queue_backend"));
	else
		printf("  datapath    off (--no-datapath)\n");
	printf("  cgroup      %s\n  developer   %s\n  clients     %lld\n\n", jstr(r, "cgroup"),
	       json_is_true(json_object_get(r, "developer_mode")) ? "on" : "off", jint(r, "clients"));
	show_extensions(json_object_get(r, "extensions"));
}

static bool opt_verbose;

static void show_list(json_t *r)
{
	json_t *exts = json_object_get(r, "extensions"), *reqs = json_object_get(r, "requests"), *e;
	size_t i, n = json_array_size(exts) + json_array_size(reqs);

	if (opt_verbose) {
		show_extensions(exts);
		json_array_foreach(reqs, i, e) {
			char ver[96];

			printf("%-32s awaiting approval: version %s, team %s\n", jstr(e, "identifier"),
			       fmt_version(e, ver, sizeof(ver)), jstr(e, "team"));
		}
		return;
	}
	printf("%zu extension(s)\n", n);
	if (!n) {
		printf("(no extensions)\n");
		return;
	}
	printf("%-8s %-7s %-11s %-44s %-20s %s\n", "enabled", "active", "teamID",
	       "bundleID (version/short)", "state", "process");
	json_array_foreach(exts, i, e)
		show_list_line(e, false);
	json_array_foreach(reqs, i, e)
		show_list_line(e, true);
}

/* A JSON list or string as words. */
static void print_words(json_t *v)
{
	size_t i;
	json_t *w;

	if (json_is_string(v)) {
		printf("%s", json_string_value(v));
		return;
	}
	json_array_foreach(v, i, w)
		printf("%s%s", i ? " " : "", json_string_value(w) ? json_string_value(w) : "?");
	if (!json_array_size(v))
		printf("-");
}

static void show_properties(json_t *r)
{
	json_t *props = json_object_get(r, "properties"), *p;
	size_t i;

	json_array_foreach(props, i, p) {
		char ver[96];

		printf("%s%s\n", i ? "\n" : "", jstr(p, "identifier"));
		printf("  version            %s\n", fmt_version(p, ver, sizeof(ver)));
		printf("  team               %s\n", jstr(p, "team"));
		printf("  state              %s\n", jstr(p, "state"));
		printf("  enabled            %s\n", json_is_true(json_object_get(p, "enabled")) ? "yes" : "no");
		printf("  awaiting approval  %s\n",
		       json_is_true(json_object_get(p, "awaiting_approval")) ? "yes" : "no");
		printf("  uninstalling       %s\n",
		       json_is_true(json_object_get(p, "uninstalling")) ? "yes" : "no");
		printf("  description        %s\n", jstr(p, "description"));
		printf("  providers          ");
		print_words(json_object_get(p, "providers"));
		printf("\n  permissions        ");
		print_words(json_object_get(p, "permissions"));
		printf("\n  digest             %s\n", jstr(p, "digest"));
	}
	if (!json_array_size(props))
		printf("(no such extension)\n");
}

static void show_configs(json_t *r)
{
	json_t *cfgs = json_object_get(r, "configurations"), *c;
	size_t i;

	printf("%-24s %-32s %-18s %-8s %-7s %s\n", "NAME", "EXTENSION", "PROVIDER", "ENABLED",
	       "FAIL", "STATE");
	json_array_foreach(cfgs, i, c) {
		json_t *run = json_object_get(c, "running");

		printf("%-24s %-32s %-18s %-8s %-7s %s\n", jstr(c, "name"), jstr(c, "extension"),
		       jstr(c, "provider"), json_is_true(json_object_get(c, "enabled")) ? "yes" : "no",
		       jstr(c, "fail_policy"), json_is_object(run) ? jstr(run, "state") : "stopped");
	}
	if (!json_array_size(cfgs))
		printf("(no configurations)\n");
}

static void show_message(json_t *r)
{
	if (json_object_get(r, "data"))
		printf("%s\n", jstr(r, "data"));
	else
		printf("(binary reply, hex) %s\n", jstr(r, "data_hex"));
}

static void show_state(json_t *r)
{
	const char *msg = json_string_value(json_object_get(r, "message"));

	printf("%s: %s%s%s\n", jstr(r, "configuration"), jstr(r, "state"), msg ? " — " : "",
	       msg ? msg : "");
}

static void show_ok(json_t *r)
{
	(void)r;
	printf("ok\n");
}

static const char *prio_name(long long p)
{
	return p <= 3 ? "error" : p == 4 ? "warning" : p <= 6 ? "info" : "debug";
}

static void show_logs(json_t *r)
{
	json_t *lines = json_object_get(r, "lines"), *l;
	size_t i;

	json_array_foreach(lines, i, l) {
		time_t t = (time_t)json_real_value(json_object_get(l, "time"));
		char ts[32];

		strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", localtime(&t));
		printf("%s %-7s %s: %s\n", ts, prio_name(jint(l, "priority")), jstr(l, "source"),
		       jstr(l, "text"));
	}
}

static int cmd_config_add(int argc, char **argv)
{
	json_t *p = json_object(), *opts = json_object();
	static const struct option lo[] = {
		{ "extension", required_argument, NULL, 'e' },
		{ "provider", required_argument, NULL, 'p' },
		{ "fail-open", no_argument, NULL, 'o' },
		{ "fail-closed", no_argument, NULL, 'c' },
		{ "option", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	if (argc < 2) {
		json_decref(p);
		json_decref(opts);
		return die_usage("config add NAME --extension ID --provider TYPE");
	}
	json_object_set_new(p, "name", json_string(argv[1]));
	optind = 2;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *eq;

		switch (c) {
		case 'e': json_object_set_new(p, "extension", json_string(optarg)); break;
		case 'p': json_object_set_new(p, "provider", json_string(optarg)); break;
		case 'o': json_object_set_new(p, "fail_policy", json_string("open")); break;
		case 'c': json_object_set_new(p, "fail_policy", json_string("closed")); break;
		case 'O':
			eq = strchr(optarg, '=');
			if (!eq) {
				json_decref(p);
				json_decref(opts);
				return die_usage("--option takes KEY=VALUE");
			}
			*eq = '\0';
			json_object_set_new(opts, optarg, json_string(eq + 1));
			break;
		default:
			json_decref(p);
			json_decref(opts);
			return EXIT_USAGE;
		}
	}
	json_object_set_new(p, "options", opts);
	return run("config.add", p, show_ok);
}

static int cmd_dev(int argc, char **argv)
{
	json_t *p;

	if (argc >= 3 && !strcmp(argv[1], "unregister"))
		return run("extension.unregister", json_pack("{s:s}", "identifier", argv[2]), show_ok);
	if (argc < 4 || strcmp(argv[1], "register"))
		return die_usage("dev register ID EXECUTABLE [--user USER] | dev unregister ID");
	p = json_pack("{s:s, s:s}", "identifier", argv[2], "executable", argv[3]);
	if (argc >= 6 && !strcmp(argv[4], "--user"))
		json_object_set_new(p, "user", json_string(argv[5]));
	else if (argc > 4) {
		json_decref(p);
		return die_usage("unexpected '%s'", argv[4]);
	}
	return run("extension.register", p, show_ok);
}

static int cmd_logs(int argc, char **argv)
{
	long n = 100;

	if (argc >= 3 && !strcmp(argv[1], "-n"))
		n = strtol(argv[2], NULL, 10);
	if (n <= 0)
		return die_usage("-n takes a positive number");
	return run("logs", json_pack("{s:i}", "lines", (int)n), show_logs);
}

static int cmd_name(const char *method, int argc, char **argv, const char *key,
		    void (*show)(json_t *))
{
	if (argc < 2)
		return die_usage("%s needs a name", argv[0]);
	return run(method, json_pack("{s:s}", key, argv[1]), show);
}

static int cmd_raw(int argc, char **argv)
{
	json_t *p;

	if (argc < 3)
		return die_usage("raw METHOD JSON-PARAMS");
	p = json_loads(argv[2], 0, NULL);
	if (!p)
		return die_usage("JSON-PARAMS is not valid JSON");
	opt_json = true;
	return run(argv[1], p, NULL);
}

/* --- system extensions, through libnetext ---------------------------------------- */

enum replace_mode { REPLACE_ASK, REPLACE_YES, REPLACE_NO };

struct sysext_run {
	const char *done_verb;   /* "activated", "deactivated" */
	bool wait;               /* stay while the request waits for approval */
	bool leave_when_later;   /* leave at will-complete-later (deactivate without --wait) */
	enum replace_mode replace;
	bool done;
	int exit_code;
};

/* "com.x version 3 (1.2.0)", or the identifier alone while the version is unknown. */
static void fmt_props(const ne_sysext_properties *p, const char *fallback, char *buf,
		      size_t size)
{
	if (p && p->version)
		snprintf(buf, size, "%s version %u (%s)", p->identifier, p->version, p->short_version);
	else
		snprintf(buf, size, "%s", p && *p->identifier ? p->identifier : fallback);
}

static bool ask_yes(const char *question)
{
	char line[64];

	printf("%s [y/N] ", question);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

static ne_sysext_replace_action on_replace(ne_sysext_request *r, const ne_sysext_properties *old,
					   const ne_sysext_properties *new, void *userdata)
{
	struct sysext_run *x = userdata;
	char have[256], q[512];

	fmt_props(old, "", have, sizeof(have));
	if (x->replace == REPLACE_ASK && isatty(STDIN_FILENO)) {
		snprintf(q, sizeof(q), "%s is installed. Replace it with version %u (%s)?", have,
			 new->version, new->short_version);
		x->replace = ask_yes(q) ? REPLACE_YES : REPLACE_NO;
	} else if (x->replace == REPLACE_ASK) {
		fprintf(stderr, "netextctl: %s is installed; pass --replace to replace it with "
				"version %u (%s)\n", have, new->version, new->short_version);
		return NE_SYSEXT_REPLACE_CANCEL;
	}
	if (x->replace == REPLACE_NO) {
		printf("%s is installed; keeping it, request cancelled\n", have);
		return NE_SYSEXT_REPLACE_CANCEL;
	}
	printf("%s is installed; replacing it with version %u (%s)\n", have, new->version,
	       new->short_version);
	return NE_SYSEXT_REPLACE;
}

static void on_needs_approval(ne_sysext_request *r, void *userdata)
{
	struct sysext_run *x = userdata;
	const char *id = ne_sysext_request_identifier(r);

	printf("needs approval: an administrator must run `netextctl approve %s`\n",
	       *id ? id : "ID");
	if (!x->wait)
		x->done = true; /* the request stays queued in the daemon */
	else
		printf("waiting for approval (interrupting leaves the request queued)\n");
	fflush(stdout);
}

static void on_will_complete_later(ne_sysext_request *r, const char *detail, void *userdata)
{
	struct sysext_run *x = userdata;

	printf("will complete later: %s\n", *detail ? detail : "waiting for providers to stop");
	if (x->leave_when_later)
		x->done = true; /* the daemon finishes the change on its own */
	fflush(stdout);
}

static void on_finished(ne_sysext_request *r, ne_sysext_result result, void *userdata)
{
	struct sysext_run *x = userdata;
	const char *id = ne_sysext_request_identifier(r);
	char what[256];

	fmt_props(ne_sysext_request_properties(r), id, what, sizeof(what));
	if (result == NE_SYSEXT_WILL_COMPLETE_LATER)
		printf("accepted: %s; netextd completes it later\n", what);
	else if (*what)
		printf("%s %s\n", x->done_verb, what);
	else
		printf("%s\n", x->done_verb);
	x->done = true;
}

static int exit_for(ne_sysext_error e)
{
	switch (e) {
	case NE_SYSEXT_ERROR_PERMISSION_DENIED:
	case NE_SYSEXT_ERROR_FORBIDDEN_BY_POLICY:
	case NE_SYSEXT_ERROR_AUTHORIZATION_REQUIRED:
		return EXIT_DENIED;
	case NE_SYSEXT_ERROR_EXTENSION_NOT_FOUND:
		return EXIT_NOT_FOUND;
	case NE_SYSEXT_ERROR_DAEMON_UNREACHABLE:
		return EXIT_UNREACHABLE;
	default:
		return EXIT_FAILED;
	}
}

static const char *hint_for(ne_sysext_error e)
{
	switch (e) {
	case NE_SYSEXT_ERROR_PERMISSION_DENIED:
	case NE_SYSEXT_ERROR_AUTHORIZATION_REQUIRED:
		return "run it as root or as a member of netextd's admin group";
	case NE_SYSEXT_ERROR_SIGNATURE_INVALID:
		return "check the bundle with `netextctl verify BUNDLE`";
	case NE_SYSEXT_ERROR_VALIDATION_FAILED:
		return "check the bundle with `netextctl verify BUNDLE`";
	case NE_SYSEXT_ERROR_FORBIDDEN_BY_POLICY:
		return "see the managed policy in /etc/netext/policy.d";
	default:
		return NULL;
	}
}

static void on_failed(ne_sysext_request *r, ne_sysext_error e, const char *message,
		      void *userdata)
{
	struct sysext_run *x = userdata;
	const char *hint = hint_for(e);

	x->done = true;
	x->exit_code = exit_for(e);
	fprintf(stderr, "netextctl: %s: %s\n", ne_sysext_error_name(e), message);
	if (hint)
		fprintf(stderr, "(%s)\n", hint);
}

static const ne_sysext_delegate sysext_delegate = {
	.size = sizeof(sysext_delegate),
	.replace = on_replace,
	.needs_approval = on_needs_approval,
	.will_complete_later = on_will_complete_later,
	.finished = on_finished,
	.failed = on_failed,
};

/* Dispatches until the request is done or no longer worth waiting for. */
static int sysext_loop(ne_client *c, struct sysext_run *x)
{
	while (!x->done) {
		struct pollfd p = { .fd = ne_client_fd(c), .events = POLLIN };
		int n = ne_client_dispatch(c);

		if (n < 0 && !x->done) {
			fprintf(stderr, "netextctl: connection to netextd lost: %s\n", strerror(-n));
			return EXIT_UNREACHABLE;
		}
		if (x->done || n <= 0)
			break;
		if (poll(&p, 1, -1) < 0 && errno != EINTR) {
			fprintf(stderr, "netextctl: poll: %s\n", strerror(errno));
			return EXIT_FAILED;
		}
	}
	return x->exit_code;
}

typedef int (*sysext_fn)(ne_client *c, const char *arg, const ne_sysext_delegate *d,
			 void *userdata, ne_sysext_request **ret);

/* Starts one request through libnetext and follows it to its end. */
static int sysext_run(sysext_fn fn, const char *arg, struct sysext_run *x)
{
	ne_client *c = NULL;
	int r, code;

	r = ne_client_new(sock_path, &c);
	if (r < 0) {
		print_unreachable(r);
		return EXIT_UNREACHABLE;
	}
	r = fn(c, arg, &sysext_delegate, x, NULL);
	if (r < 0) {
		fprintf(stderr, "netextctl: %s: %s\n", arg ? arg : "request", strerror(-r));
		ne_client_free(c);
		return r == -ENOENT ? EXIT_NOT_FOUND : r == -EACCES ? EXIT_DENIED : EXIT_FAILED;
	}
	code = sysext_loop(c, x);
	ne_client_free(c);
	return code;
}

static int sysext_reset_fn(ne_client *c, const char *arg, const ne_sysext_delegate *d,
			   void *userdata, ne_sysext_request **ret)
{
	return ne_sysext_reset(c, d, userdata, ret);
}

enum { OPT_WAIT = 1, OPT_REPLACE = 2, OPT_YES = 4 };

/* Parses "CMD [ARG] [--wait] [--replace|--no-replace] [--yes]" (allowed: OPT_* mask).
 * Returns the argument (NULL when nargs is 0), or NULL with *ret_exit set. */
static const char *sysext_args(int argc, char **argv, int allowed, int nargs,
			       struct sysext_run *x, bool *ret_yes, int *ret_exit)
{
	static const struct option lo[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "replace", no_argument, NULL, 'r' },
		{ "no-replace", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*ret_exit = EXIT_OK;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'w' && (allowed & OPT_WAIT))
			x->wait = true;
		else if ((c == 'r' || c == 'n') && (allowed & OPT_REPLACE))
			x->replace = c == 'r' ? REPLACE_YES : REPLACE_NO;
		else if (c == 'y' && (allowed & OPT_YES))
			*ret_yes = true;
		else {
			*ret_exit = die_usage("%s: unexpected option '%s'", argv[0], argv[optind - 1]);
			return NULL;
		}
	}
	if (argc - optind != nargs) {
		*ret_exit = die_usage(nargs ? "%s needs one argument" : "%s takes no argument",
				      argv[0]);
		return NULL;
	}
	return nargs ? argv[optind] : NULL;
}

static int cmd_activate(int argc, char **argv)
{
	struct sysext_run x = { .done_verb = "activated" };
	const char *bundle;
	int code;

	bundle = sysext_args(argc, argv, OPT_WAIT | OPT_REPLACE, 1, &x, NULL, &code);
	if (!bundle)
		return code;
	return sysext_run(ne_sysext_activate, bundle, &x);
}

static int cmd_approve(int argc, char **argv)
{
	struct sysext_run x = { .done_verb = "activated", .wait = true };
	const char *id;
	int code;

	id = sysext_args(argc, argv, OPT_REPLACE, 1, &x, NULL, &code);
	if (!id)
		return code;
	return sysext_run(ne_sysext_approve, id, &x);
}

static int cmd_deactivate(int argc, char **argv)
{
	struct sysext_run x = { .done_verb = "deactivated" };
	const char *id;
	int code;

	id = sysext_args(argc, argv, OPT_WAIT, 1, &x, NULL, &code);
	if (!id)
		return code;
	x.leave_when_later = !x.wait;
	return sysext_run(ne_sysext_deactivate, id, &x);
}

static int cmd_reject(int argc, char **argv)
{
	struct sysext_run x = { .done_verb = "rejected the request for" };
	const char *id;
	int code;

	id = sysext_args(argc, argv, 0, 1, &x, NULL, &code);
	if (!id)
		return code;
	return sysext_run(ne_sysext_reject, id, &x);
}

static int cmd_reset(int argc, char **argv)
{
	struct sysext_run x = { .done_verb = "removed every extension, request and stored bundle" };
	bool yes = false;
	int code;

	sysext_args(argc, argv, OPT_YES, 0, &x, &yes, &code);
	if (code != EXIT_OK)
		return code;
	if (!yes && isatty(STDIN_FILENO) &&
	    !ask_yes("Remove every extension, request and stored bundle?")) {
		fprintf(stderr, "netextctl: reset: not confirmed\n");
		return EXIT_FAILED;
	}
	return sysext_run(sysext_reset_fn, NULL, &x);
}

/* list [-v] [--json] and properties ID [--json]: one request, the daemon's JSON. */
static int cmd_show(const char *method, int argc, char **argv, int nargs, void (*show)(json_t *))
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, nargs ? "j" : "jv", lo, NULL)) != -1) {
		if (c == 'j')
			opt_json = true;
		else if (c == 'v' && !nargs)
			opt_verbose = true;
		else
			return die_usage("%s: unexpected option '%s'", argv[0], argv[optind - 1]);
	}
	if (argc - optind != nargs)
		return die_usage(nargs ? "%s needs an identifier" : "%s takes no argument", argv[0]);
	return run(method, nargs ? json_pack("{s:s}", "identifier", argv[optind]) : NULL, show);
}

int ctl_run(const char *method, json_t *params, void (*show)(json_t *))
{
	return run(method, params, show);
}

int ctl_connect(void)
{
	int fd = connect_daemon();

	if (fd < 0)
		print_unreachable(fd);
	return fd;
}

int ctl_send_line(int fd, const char *s)
{
	int r = send_all(fd, s, strlen(s));

	return r < 0 ? r : send_all(fd, "\n", 1);
}

static int dispatch(int argc, char **argv)
{
	const char *cmd = argv[0];

	if (!strcmp(cmd, "status"))
		return run("status", NULL, show_status);
	if (!strcmp(cmd, "list"))
		return cmd_show("extension.list", argc, argv, 0, show_list);
	if (!strcmp(cmd, "properties"))
		return cmd_show("extension.properties", argc, argv, 1, show_properties);
	if (!strcmp(cmd, "activate"))
		return cmd_activate(argc, argv);
	if (!strcmp(cmd, "deactivate"))
		return cmd_deactivate(argc, argv);
	if (!strcmp(cmd, "approve"))
		return cmd_approve(argc, argv);
	if (!strcmp(cmd, "reject"))
		return cmd_reject(argc, argv);
	if (!strcmp(cmd, "reset"))
		return cmd_reset(argc, argv);
	if (!strcmp(cmd, "keygen"))
		return cmd_keygen(argc, argv);
	if (!strcmp(cmd, "sign"))
		return cmd_sign(argc, argv);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argc, argv);
	if (!strcmp(cmd, "configs") || (!strcmp(cmd, "config") && argc >= 2 && !strcmp(argv[1], "list")))
		return run("config.list", NULL, show_configs);
	if (!strcmp(cmd, "config") && argc >= 2 && !strcmp(argv[1], "add"))
		return cmd_config_add(argc - 1, argv + 1);
	if (!strcmp(cmd, "config") && argc >= 2 && !strcmp(argv[1], "remove"))
		return cmd_name("config.remove", argc - 1, argv + 1, "name", show_ok);
	if (!strcmp(cmd, "start"))
		return cmd_name("config.start", argc, argv, "name", show_state);
	if (!strcmp(cmd, "stop"))
		return cmd_name("config.stop", argc, argv, "name", show_state);
	if (!strcmp(cmd, "restart"))
		return cmd_name("extension.restart", argc, argv, "identifier", show_ok);
	if (!strcmp(cmd, "message")) {
		if (argc < 3)
			return die_usage("message NAME TEXT");
		return run("config.message", json_pack("{s:s, s:s}", "name", argv[1], "data", argv[2]),
			   show_message);
	}
	if (!strcmp(cmd, "logs"))
		return cmd_logs(argc, argv);
	if (!strcmp(cmd, "flows"))
		return cmd_flows(argc, argv);
	if (!strcmp(cmd, "filter"))
		return cmd_filter(argc, argv);
	if (!strcmp(cmd, "dns"))
		return cmd_dns(argc, argv);
	if (!strcmp(cmd, "packet"))
		return cmd_packet(argc, argv);
	if (!strcmp(cmd, "tunnel"))
		return cmd_tunnel(argc, argv);
	if (!strcmp(cmd, "dev"))
		return cmd_dev(argc, argv);
	if (!strcmp(cmd, "raw"))
		return cmd_raw(argc, argv);
	return die_usage("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env = getenv("NETEXT_SOCKET");
	int c;

	if (env && *env)
		sock_path = env;
	while ((c = getopt_long(argc, argv, "+hj", lo, NULL)) != -1) {
		switch (c) {
		case 's': sock_path = optarg; break;
		case 'j': opt_json = true; break;
		case 'h': usage(stdout); return EXIT_OK;
		case 'V': printf("netextctl %s\n", NE_VERSION_STRING); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	return dispatch(argc - optind, argv + optind);
}
