/* netextd's configuration file: "key = value" lines, '#' comments, optional [netextd]
 * section header. Trusts the file's owner (root); still refuses unknown keys and bad
 * values with the line number, because a typo silently ignored is a wrong daemon. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

void daemon_options_defaults(struct daemon_options *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->state_dir, sizeof(o->state_dir), "/var/lib/netext");
	snprintf(o->policy_dir, sizeof(o->policy_dir), "/etc/netext/policy.d");
	snprintf(o->run_dir, sizeof(o->run_dir), "/run/netext");
	snprintf(o->extension_user, sizeof(o->extension_user), "%s", NETEXT_EXTENSION_USER);
	snprintf(o->admin_group, sizeof(o->admin_group), "netext-admin");
	o->heartbeat_ms = 1000;
	o->heartbeat_timeout_ms = 5000;
	o->start_timeout_ms = 10000;
	o->stop_timeout_ms = 5000;
	o->message_timeout_ms = 10000;
	o->restart_max = 5;
	o->restart_window_s = 60;
}

static int parse_uint(const char *v, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || n < min || n > max)
		return -EINVAL;
	*ret = (unsigned)n;
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
		*ret = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int set_string(char *dst, size_t size, const char *v)
{
	return ne_strscpy(dst, v, size) < 0 ? -EINVAL : 0;
}

static int apply_key(struct daemon_options *o, const char *k, const char *v)
{
	if (!strcmp(k, "state_dir"))
		return set_string(o->state_dir, sizeof(o->state_dir), v);
	if (!strcmp(k, "run_dir"))
		return set_string(o->run_dir, sizeof(o->run_dir), v);
	if (!strcmp(k, "cgroup"))
		return set_string(o->cgroup, sizeof(o->cgroup), v);
	if (!strcmp(k, "extension_user"))
		return set_string(o->extension_user, sizeof(o->extension_user), v);
	if (!strcmp(k, "admin_group"))
		return set_string(o->admin_group, sizeof(o->admin_group), v);
	if (!strcmp(k, "heartbeat_interval_ms"))
		return parse_uint(v, 50, 600000, &o->heartbeat_ms);
	if (!strcmp(k, "heartbeat_timeout_ms"))
		return parse_uint(v, 100, 3600000, &o->heartbeat_timeout_ms);
	if (!strcmp(k, "start_timeout_ms"))
		return parse_uint(v, 100, 3600000, &o->start_timeout_ms);
	if (!strcmp(k, "stop_timeout_ms"))
		return parse_uint(v, 100, 600000, &o->stop_timeout_ms);
	if (!strcmp(k, "message_timeout_ms"))
		return parse_uint(v, 100, 3600000, &o->message_timeout_ms);
	if (!strcmp(k, "restart_max"))
		return parse_uint(v, 1, 1000, &o->restart_max);
	if (!strcmp(k, "restart_window_s"))
		return parse_uint(v, 1, 86400, &o->restart_window_s);
	if (!strcmp(k, "policy_dir"))
		return set_string(o->policy_dir, sizeof(o->policy_dir), v);
	if (!strcmp(k, "developer_mode"))
		return parse_bool(v, &o->developer);
	return -ENOKEY;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int load_line(struct daemon_options *o, const char *path, unsigned lineno, char *line)
{
	char *s = trim(line), *eq, *k, *v;
	int r;

	if (*s == '\0' || *s == '#' || *s == ';' || !strcmp(s, "[netextd]"))
		return 0;
	eq = strchr(s, '=');
	if (!eq) {
		log_warnx("%s:%u: expected key = value", path, lineno);
		return -EINVAL;
	}
	*eq = '\0';
	k = trim(s);
	v = trim(eq + 1);
	r = apply_key(o, k, v);
	if (r == -ENOKEY)
		log_warnx("%s:%u: unknown key '%s'", path, lineno, k);
	else if (r < 0)
		log_warnx("%s:%u: invalid value '%s' for %s", path, lineno, v, k);
	return r < 0 ? -EINVAL : 0;
}

int daemon_options_load(struct daemon_options *o, const char *path)
{
	char line[1024];
	unsigned lineno = 0;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f) {
		log_warn("cannot read configuration %s", path);
		return ne_negerrno();
	}
	while (r == 0 && fgets(line, sizeof(line), f))
		r = load_line(o, path, ++lineno, line);
	fclose(f);
	return r;
}
