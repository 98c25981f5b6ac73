/* cgroup v2 management for extension processes; runs in netextd as root.
 *
 * Trusts: the kernel's /proc and cgroupfs files, and the daemon's own callers for `mount`
 * (found by cgroup_find_mount) and `rel` (built from validated extension names).
 * Does not trust: the contents of a cgroup that held extension processes. Foreign code may
 * have forked, created sub-cgroups (if it was delegated any) or be racing us, so removal
 * kills repeatedly, waits only a bounded time and never follows symlinks out of the tree. */
#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon.h"
#include "dp_nft.h"
#include "util.h"

#define CGROUP_FILE_MAX (4u << 20)   /* mountinfo with thousands of mounts still fits */
#define CGROUP_MAX_DEPTH 32
#define CGROUP_WAIT_STEPS 200        /* × 5 ms: at most one second per cgroup */

/* Reads a whole (proc or cgroupfs) file into a NUL-terminated heap buffer. */
static int read_all(const char *path, char **ret)
{
	_cleanup_close_ int fd = -1;
	size_t len = 0, cap = 4096;
	char *buf = NULL, *n;
	ssize_t r;
	int err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ne_negerrno();
	for (;;) {
		if (len + 1 >= cap || !buf) {
			err = -EFBIG;
			if (buf && cap >= CGROUP_FILE_MAX)
				goto fail;
			cap = buf ? cap * 2 : cap;
			err = -ENOMEM;
			n = realloc(buf, cap);
			if (!n)
				goto fail;
			buf = n;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		err = ne_negerrno();
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	*ret = buf;
	return 0;
fail:
	free(buf);
	return err;
}

/* Decodes the kernel's octal escapes (space, tab, newline, backslash) of a mountinfo field
 * into buf, which holds PATH_MAX bytes. */
static int unescape(const char *s, size_t len, char *buf)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			c = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		}
		if (o + 1 >= PATH_MAX)
			return -ENAMETOOLONG;
		buf[o++] = c;
	}
	buf[o] = '\0';
	return 0;
}

/* Splits the next space-separated field of a line; returns false at the end of the line. */
static bool next_field(const char **p, const char *end, const char **ret, size_t *ret_len)
{
	const char *s = *p, *e;

	while (s < end && *s == ' ')
		s++;
	if (s >= end)
		return false;
	e = s;
	while (e < end && *e != ' ')
		e++;
	*ret = s;
	*ret_len = (size_t)(e - s);
	*p = e;
	return true;
}

static bool field_is(const char *f, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(f, word, len) == 0;
}

/* mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTS */
static bool line_is_cgroup2(const char *p, const char *end, const char **ret_mp, size_t *ret_len)
{
	const char *f, *mp = NULL;
	size_t len, mplen = 0;
	int i;

	for (i = 0; next_field(&p, end, &f, &len); i++) {
		if (i == 4) {
			mp = f;
			mplen = len;
		}
		if (i >= 6 && field_is(f, len, "-"))
			break;
	}
	if (!mp || !next_field(&p, end, &f, &len) || !field_is(f, len, "cgroup2"))
		return false;
	*ret_mp = mp;
	*ret_len = mplen;
	return true;
}

int cgroup_parse_mountinfo(const char *text, char *ret, size_t size)
{
	const char *p = text, *end, *mp;
	char buf[PATH_MAX];
	size_t len;

	while (*p) {
		end = strchrnul(p, '\n');
		if (line_is_cgroup2(p, end, &mp, &len)) {
			if (unescape(mp, len, buf) < 0 || strlen(buf) >= size)
				return -ENAMETOOLONG;
			memcpy(ret, buf, strlen(buf) + 1);
			return 0;
		}
		p = *end ? end + 1 : end;
	}
	return -ENOENT;
}

int cgroup_find_mount(char *ret, size_t size)
{
	_cleanup_free_ char *text = NULL;
	int r;

	r = read_all("/proc/self/mountinfo", &text);
	if (r < 0)
		return r;
	return cgroup_parse_mountinfo(text, ret, size);
}

int cgroup_self_path(char *ret, size_t size)
{
	_cleanup_free_ char *text = NULL;
	const char *line, *end;
	size_t len;
	int r;

	r = read_all("/proc/self/cgroup", &text);
	if (r < 0)
		return r;
	for (line = text; *line; line = *end ? end + 1 : end) {
		end = strchrnul(line, '\n');
		if (strncmp(line, "0::", 3) != 0)
			continue;
		len = (size_t)(end - line) - 3;
		if (len >= size)
			return -ENAMETOOLONG;
		memcpy(ret, line + 3, len);
		ret[len] = '\0';
		return 0;
	}
	return -ENOENT;
}

/* A relative cgroup path: leading slashes are skipped, "." and ".." components refused, so
 * that every path we build stays below the mount. */
static int rel_valid(const char *rel, const char **ret)
{
	const char *p;

	while (*rel == '/')
		rel++;
	for (p = rel; *p;) {
		size_t n = strcspn(p, "/");

		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		p += n;
		while (*p == '/')
			p++;
	}
	*ret = rel;
	return 0;
}

/* buf (PATH_MAX) = mount/rel[/file] */
static int build_path(char *buf, const char *mount, const char *rel, const char *file)
{
	int n, r;

	r = rel_valid(rel, &rel);
	if (r < 0)
		return r;
	n = snprintf(buf, PATH_MAX, "%s/%s%s%s", mount, rel, file && *rel ? "/" : "",
		     file ? file : "");
	if (n < 0 || n >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int cgroup_create(const char *mount, const char *rel)
{
	char path[PATH_MAX];
	size_t base;
	char *p;
	int r;

	r = build_path(path, mount, rel, NULL);
	if (r < 0)
		return r;
	/* Only components below the mount are created; the mount itself must exist. */
	base = strlen(mount);
	for (p = path + base + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (p > path + base + 1 && p[-1] != '/') {
			char saved = *p;

			*p = '\0';
			r = mkdir(path, 0755) < 0 && errno != EEXIST ? ne_negerrno() : 0;
			*p = saved;
			if (r < 0)
				return r;
		}
		if (*p == '\0')
			return 0;
	}
}

int cgroup_open_procs(const char *mount, const char *rel)
{
	char path[PATH_MAX];
	int fd, r;

	r = build_path(path, mount, rel, "cgroup.procs");
	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd < 0 ? ne_negerrno() : fd;
}

/* Parses whitespace-separated pids; -ENOBUFS when there are more than max. */
static int parse_pids(const char *text, pid_t *ret, size_t max, size_t *ret_n)
{
	size_t n = 0;
	const char *p = text;
	char *end;
	long v;

	for (;;) {
		while (*p == '\n' || *p == ' ')
			p++;
		if (!*p)
			break;
		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v <= 0 || v > INT_MAX)
			return -EBADMSG;
		if (n >= max)
			return -ENOBUFS;
		ret[n++] = (pid_t)v;
		p = end;
	}
	*ret_n = n;
	return 0;
}

int cgroup_pids(const char *mount, const char *rel, pid_t *ret, size_t max, size_t *ret_n)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	int r;

	r = build_path(path, mount, rel, "cgroup.procs");
	if (r < 0)
		return r;
	r = read_all(path, &text);
	if (r < 0)
		return r;
	return parse_pids(text, ret, max, ret_n);
}

static int write_file(const char *dir, const char *file, const char *text)
{
	_cleanup_close_ int fd = -1;
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (n < 0 || n >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ne_negerrno();
	if (write(fd, text, strlen(text)) < 0)
		return ne_negerrno();
	return 0;
}

/* SIGKILLs the pids listed in dir/cgroup.procs: the fallback for kernels before 5.14. */
static int kill_listed(const char *dir)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	const char *p;
	char *end;
	long v;
	int r;

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	r = read_all(path, &text);
	if (r < 0)
		return r;
	for (p = text; *p; p = end) {
		v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v > 0 && v <= INT_MAX)
			kill((pid_t)v, SIGKILL);
	}
	return 0;
}

/* Kills everything in dir and below; 1 when cgroup.kill did it, 0 after the fallback. */
static int kill_all(const char *dir)
{
	int r;

	r = write_file(dir, "cgroup.kill", "1");
	if (r == 0)
		return 1;
	if (r != -ENOENT)
		return r;
	r = kill_listed(dir);
	return r < 0 ? r : 0;
}

/* 1 when dir or a descendant still holds a live process, 0 when not. */
static int is_populated(const char *dir)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	const char *p;
	int r;

	if (snprintf(path, sizeof(path), "%s/cgroup.events", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	r = read_all(path, &text);
	if (r < 0)
		return r;
	p = strstr(text, "populated ");
	if (!p)
		return -EBADMSG;
	return p[strlen("populated ")] == '1';
}

/* Bounded wait until dir is empty; without cgroup.kill, kills again each round because a
 * process may have forked between our read of cgroup.procs and its death. */
static int wait_empty(const char *dir, bool have_kill)
{
	const struct timespec step = { 0, 5 * 1000 * 1000 };
	int i, r;

	for (i = 0; i < CGROUP_WAIT_STEPS; i++) {
		r = is_populated(dir);
		if (r <= 0)
			return r;
		if (!have_kill)
			kill_listed(dir);
		nanosleep(&step, NULL);
	}
	return -EBUSY;
}

static int remove_tree(char *path, int depth);

/* Removes every child cgroup of path (a PATH_MAX buffer, restored before returning). */
static int remove_children(char *path, int depth)
{
	size_t len = strlen(path);
	struct dirent *de;
	DIR *d;
	int r = 0, q;

	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : ne_negerrno();
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (len + 1 + strlen(de->d_name) >= PATH_MAX) {
			r = -ENAMETOOLONG;
			continue;
		}
		path[len] = '/';
		strcpy(path + len + 1, de->d_name);
		q = remove_tree(path, depth + 1);
		path[len] = '\0';
		if (q < 0 && r == 0)
			r = q;
	}
	closedir(d);
	return r;
}

static int remove_tree(char *path, int depth)
{
	int have_kill, r;

	if (depth > CGROUP_MAX_DEPTH)
		return -ELOOP;
	have_kill = kill_all(path);
	if (have_kill == -ENOENT)
		return 0;
	r = remove_children(path, depth);
	if (r < 0)
		return r;
	r = wait_empty(path, have_kill > 0);
	if (r < 0 && r != -ENOENT)
		return r;
	if (rmdir(path) < 0 && errno != ENOENT)
		return ne_negerrno();
	return 0;
}

int cgroup_remove(const char *mount, const char *rel)
{
	char path[PATH_MAX];
	const char *r_rel;
	struct stat st;
	int r;

	r = rel_valid(rel, &r_rel);
	if (r < 0)
		return r;
	if (!*r_rel)
		return -EINVAL;
	r = build_path(path, mount, r_rel, NULL);
	if (r < 0)
		return r;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : ne_negerrno();
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return remove_tree(path, 0);
}

int cgroup_match(const char *mount, const char *rel, struct dp_match *ret)
{
	char path[2 * PATH_MAX];
	struct stat st;
	uint32_t level = 0;
	const char *p;

	while (*rel == '/')
		rel++;
	if (!mount[0] || !rel[0])
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%s", mount, rel);
	if (stat(path, &st) < 0)
		return ne_negerrno();
	/* The level is the number of path components below the root: "a/b" is level 2. */
	for (p = rel; *p; p++)
		if (*p != '/' && (p == rel || p[-1] == '/'))
			level++;
	*ret = (struct dp_match){ .kind = DP_MATCH_CGROUPV2, .cgroup = { level, st.st_ino } };
	return 0;
}

int cgroup_exempt_match(struct daemon *d, struct dp_match *ret)
{
	if (!d->cgroup_mount[0] || !d->cgroup_base[0])
		return -ENOENT;
	return cgroup_match(d->cgroup_mount, d->cgroup_base, ret);
}
