/* netextctl: the administrator's tool. Speaks the control protocol (src/daemon/control.h)
 * to netextd: one JSON request line, one JSON reply line. Human tables by default, the
 * daemon's JSON with --json. Exit codes: see EXIT_* below and netextctl(8). */
#include <errno.h>
#include <getopt.h>
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

#include "ctl.h"


static const char *sock_path = "/run/netext/netextd.sock";
bool opt_json;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: netextctl [--socket PATH] [--json] COMMAND [ARGS]\n"
		"\n"
		"  status                         the daemon, its datapath and extensions\n"
		"  list                           extensions and their processes\n"
		"  configs                        configurations and their providers\n"
		"  config add NAME --extension ID --provider TYPE [--fail-open|--fail-closed]\n"
		"             [--option KEY=VALUE]...\n"
		"  config remove NAME\n"
		"  start NAME | stop NAME         start or stop a configuration's provider\n"
		"  message NAME TEXT              send an app message, print the reply\n"
		"  restart ID                     restart an extension (also clears 'failed')\n"
		"  logs [-n LINES]                recent daemon and extension log lines\n"
		"  dev register ID EXECUTABLE [--user USER]   (developer mode only)\n"
		"  dev unregister ID\n"
		"  raw METHOD JSON-PARAMS         send any request (for scripts)\n"
		"\n"
		"The socket is $NETEXT_SOCKET, else /run/netext/netextd.sock.\n"
		"Exit codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable, 4 permission denied,\n"
		"5 not found.\n");
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
		fprintf(stderr, "netextctl: cannot reach netextd at %s: %s\n"
				"Is netextd running? (systemctl status netextd, or --socket / NETEXT_SOCKET)\n",
			sock_path, strerror(-fd));
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
	if (!strcmp(code, "permission-denied") || !strcmp(code, "forbidden"))
		return EXIT_DENIED;
	if (!strcmp(code, "not-found"))
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

static void show_extensions(json_t *exts)
{
	size_t i;
	json_t *e;

	printf("%-32s %-10s %7s %-10s %8s  %s\n", "IDENTIFIER", "STATE", "PID", "USER", "RESTARTS",
	       "LAST EXIT");
	json_array_foreach(exts, i, e) {
		char pid[16];

		snprintf(pid, sizeof(pid), "%lld", jint(e, "pid"));
		printf("%-32s %-10s %7s %-10s %8lld  %s\n", jstr(e, "identifier"), jstr(e, "state"),
		       jint(e, "pid") ? pid : "-", jstr(e, "user"), jint(e, "restarts"),
		       *jstr(e, "last_exit") ? jstr(e, "last_exit") : "-");
	}
	if (!json_array_size(exts))
		printf("(no extensions)\n");
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

static void show_list(json_t *r)
{
	show_extensions(json_object_get(r, "extensions"));
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

static int dispatch(int argc, char **argv)
{
	const char *cmd = argv[0];

	if (!strcmp(cmd, "status"))
		return run("status", NULL, show_status);
	if (!strcmp(cmd, "list"))
		return run("extension.list", NULL, show_list);
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
