/* sandbox_spawn and the seccomp policy against the real kernel. Needs root (to drop it);
 * every test is skipped otherwise. Each test works in its own cgroup below a group cgroup
 * "netext-test-PID" that is removed at the end, also when a test fails (teardown). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "sandbox.h"

#define NOBODY 65534

static char cg_mount[PATH_MAX];
static char cg_group[64];

static int group_setup(void **state)
{
	if (geteuid() != 0)
		return 0;
	if (cgroup_find_mount(cg_mount, sizeof(cg_mount)) < 0)
		return -1;
	snprintf(cg_group, sizeof(cg_group), "netext-test-%d", (int)getpid());
	return cgroup_create(cg_mount, cg_group) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	if (!cg_group[0])
		return 0;
	return cgroup_remove(cg_mount, cg_group) < 0 ? -1 : 0;
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip();
}

static void base_spec(struct sandbox_spec *s, const char *exe, char *const *argv)
{
	static char *const env[] = { "PATH=/usr/bin:/bin", NULL };

	memset(s, 0, sizeof(*s));
	s->executable = exe;
	s->argv = argv;
	s->envp = env;
	s->uid = NOBODY;
	s->gid = NOBODY;
	s->channel_fd = s->stdout_fd = s->stderr_fd = s->cgroup_procs_fd = s->exec_fd = -1;
	s->seccomp = true;
}

/* Spawns s with stdout to a pipe, collects the output and the exit status. */
static int run_capture(struct sandbox_spec *s, char *out, size_t size, int *ret_status,
		       char *err, size_t errlen)
{
	int p[2], pidfd = -1, r, status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	s->stdout_fd = p[1];
	r = sandbox_spawn(s, &pid, &pidfd, err, errlen);
	close(p[1]);
	s->stdout_fd = -1;
	if (r < 0) {
		close(p[0]);
		return r;
	}
	while (len + 1 < size && (n = read(p[0], out + len, size - len - 1)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(p[0]);
	assert_true(pidfd >= 0);
	close(pidfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	*ret_status = status;
	return 0;
}

static void test_confined(void **state)
{
	char *argv[] = { "sh", "-c",
		"id -u; id -g; grep -E '^(NoNewPrivs|CapEff|CapBnd|CapInh|CapAmb|Seccomp):' "
		"/proc/self/status; cat /proc/self/cgroup", NULL };
	char rel[128], out[4096], err[256] = "", want[160];
	struct sandbox_spec s;
	int status;

	need_root();
	snprintf(rel, sizeof(rel), "%s/confined", cg_group);
	assert_int_equal(cgroup_create(cg_mount, rel), 0);
	base_spec(&s, "/bin/sh", argv);
	s.cgroup_procs_fd = cgroup_open_procs(cg_mount, rel);
	assert_true(s.cgroup_procs_fd >= 0);
	assert_int_equal(run_capture(&s, out, sizeof(out), &status, err, sizeof(err)), 0);
	close(s.cgroup_procs_fd);
	print_message("%s", out);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_non_null(strstr(out, "65534\n65534\n"));
	assert_non_null(strstr(out, "NoNewPrivs:\t1\n"));
	assert_non_null(strstr(out, "CapEff:\t0000000000000000\n"));
	assert_non_null(strstr(out, "CapBnd:\t0000000000000000\n"));
	assert_non_null(strstr(out, "CapInh:\t0000000000000000\n"));
	assert_non_null(strstr(out, "CapAmb:\t0000000000000000\n"));
	assert_non_null(strstr(out, "Seccomp:\t2\n"));
	snprintf(want, sizeof(want), "0::/%s\n", rel);
	assert_non_null(strstr(out, want));
	assert_int_equal(cgroup_remove(cg_mount, rel), 0);
}

static void test_root_refused(void **state)
{
	char *argv[] = { "true", NULL };
	char err[256] = "";
	struct sandbox_spec s;
	pid_t pid = 4242;

	need_root();
	base_spec(&s, "/bin/true", argv);
	s.uid = 0;
	assert_int_equal(sandbox_spawn(&s, &pid, NULL, err, sizeof(err)), -EPERM);
	assert_int_equal(pid, 4242);
	s.uid = NOBODY;
	s.gid = 0;
	assert_int_equal(sandbox_spawn(&s, &pid, NULL, err, sizeof(err)), -EPERM);
	/* No child was forked. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_missing_executable(void **state)
{
	char *argv[] = { "nope", NULL };
	char err[256] = "";
	struct sandbox_spec s;

	need_root();
	base_spec(&s, "/nonexistent/netext-nope", argv);
	assert_int_equal(sandbox_spawn(&s, NULL, NULL, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "execve: No such file or directory");
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);   /* reaped */
}

/* Bit i of the exit code is set when probe i did not behave as the policy says. */
static int seccomp_probes(void)
{
	int bad = 0, fd;

	if (sandbox_seccomp_load() < 0)
		return 0xff;
	if (mount("none", "/mnt", "tmpfs", 0, NULL) == 0 || errno != EPERM)
		bad |= 1;
	if (unshare(CLONE_NEWNS) == 0 || errno != EPERM)
		bad |= 2;
	if (socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0) >= 0 || errno != EPERM)
		bad |= 4;
	if (socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) >= 0 || errno != EPERM)
		bad |= 8;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		bad |= 16;
	if (syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) == 0)
		_exit(0);
	if (errno != EPERM)
		bad |= 32;
	if (syscall(SYS_clone3, NULL, 0) >= 0 || errno != ENOSYS)
		bad |= 64;
	fd = fork();   /* glibc's fork is clone without namespace flags */
	if (fd == 0)
		_exit(0);
	if (fd < 0 || waitpid(fd, NULL, 0) != fd)
		bad |= 128;
	return bad;
}

/* The policy itself, in a forked child of this (root) test: without the filter root could do
 * all of this, so EPERM proves the filter. The child leaves with _exit, so LeakSanitizer's
 * exit-time check (which needs ptrace, refused by the filter) never runs. */
static void test_seccomp_policy(void **state)
{
	int status;
	pid_t pid;

	need_root();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(seccomp_probes());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* exec_fd: the binary sits in a root-only directory that nobody cannot search. */
static void test_exec_fd(void **state)
{
	char dir[] = "/tmp/netext-sbx-XXXXXX", path[PATH_MAX], cmd[PATH_MAX + 64];
	char *argv[] = { "echo", "hello from exec_fd", NULL };
	char out[256], err[256] = "";
	struct sandbox_spec s;
	int status, r;

	need_root();
	assert_non_null(mkdtemp(dir));   /* mode 0700 */
	snprintf(path, sizeof(path), "%s/echo", dir);
	snprintf(cmd, sizeof(cmd), "cp /bin/echo '%s'", path);
	assert_int_equal(system(cmd), 0);

	base_spec(&s, path, argv);
	r = run_capture(&s, out, sizeof(out), &status, err, sizeof(err));
	s.exec_fd = open(path, O_PATH | O_CLOEXEC);
	unlink(path);   /* clean up before asserting */
	rmdir(dir);
	assert_int_equal(r, -EACCES);
	assert_string_equal(err, "execve: Permission denied");
	assert_true(s.exec_fd >= 0);
	r = run_capture(&s, out, sizeof(out), &status, err, sizeof(err));
	close(s.exec_fd);
	assert_int_equal(r, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_string_equal(out, "hello from exec_fd\n");
}

/* Only 0-3 reach the child (ls adds one for reading the directory); fd 3 is the channel. */
static void test_fds(void **state)
{
	char *ls_argv[] = { "ls", "/proc/self/fd", NULL };
	char *echo_argv[] = { "sh", "-c", "echo ping >&3", NULL };
	char out[256], err[256] = "", buf[16] = "";
	struct sandbox_spec s;
	int sp[2], leak, status;

	need_root();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	leak = dup(sp[0]);   /* not close-on-exec: must still not leak */
	assert_true(leak >= 0);
	base_spec(&s, "/bin/ls", ls_argv);
	s.channel_fd = sp[1];
	assert_int_equal(run_capture(&s, out, sizeof(out), &status, err, sizeof(err)), 0);
	assert_string_equal(out, "0\n1\n2\n3\n4\n");

	base_spec(&s, "/bin/sh", echo_argv);
	s.channel_fd = sp[1];
	assert_int_equal(run_capture(&s, out, sizeof(out), &status, err, sizeof(err)), 0);
	assert_int_equal(read(sp[0], buf, sizeof(buf) - 1), 5);
	assert_string_equal(buf, "ping\n");
	close(leak);
	close(sp[0]);
	close(sp[1]);
}

/* cgroup_remove kills what is left inside (also in a child cgroup) and removes the tree. */
static void test_cgroup_remove(void **state)
{
	char *argv[] = { "sleep", "1000", NULL };
	char rel[128], sub[160], path[PATH_MAX + 160], err[256] = "";
	struct sandbox_spec s;
	pid_t pid, pids[4];
	size_t n = 0;
	int status;

	need_root();
	snprintf(rel, sizeof(rel), "%s/leftover", cg_group);
	snprintf(sub, sizeof(sub), "%s/inner", rel);
	assert_int_equal(cgroup_create(cg_mount, sub), 0);
	base_spec(&s, "/bin/sleep", argv);
	s.cgroup_procs_fd = cgroup_open_procs(cg_mount, sub);
	assert_true(s.cgroup_procs_fd >= 0);
	assert_int_equal(sandbox_spawn(&s, &pid, NULL, err, sizeof(err)), 0);
	close(s.cgroup_procs_fd);
	assert_int_equal(cgroup_pids(cg_mount, sub, pids, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(pids[0], pid);

	assert_int_equal(cgroup_remove(cg_mount, rel), 0);
	snprintf(path, sizeof(path), "%s/%s", cg_mount, rel);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(cgroup_remove(cg_mount, rel), 0);   /* absent: 0 */
}

static void test_resolve_user(void **state)
{
	uid_t u = 1;
	gid_t g = 1;

	assert_int_equal(sandbox_resolve_user("65534:65533", &u, &g), 0);
	assert_int_equal(u, 65534);
	assert_int_equal(g, 65533);
	assert_int_equal(sandbox_resolve_user("nobody", &u, &g), 0);
	assert_int_equal(u, NOBODY);
	assert_int_equal(sandbox_resolve_user("root", &u, &g), -EPERM);
	assert_int_equal(sandbox_resolve_user("0:5", &u, &g), -EPERM);
	assert_int_equal(sandbox_resolve_user("5:0", &u, &g), -EPERM);
	assert_int_equal(sandbox_resolve_user("5:", &u, &g), -EINVAL);
	assert_int_equal(sandbox_resolve_user("5:x", &u, &g), -EINVAL);
	assert_int_equal(sandbox_resolve_user("-1:5", &u, &g), -EINVAL);
	assert_int_equal(sandbox_resolve_user("netext-no-such-user", &u, &g), -ENOENT);
	assert_int_equal(u, NOBODY);
}

/* ---- permissions: "network" (allow_inet) and the working directory ----------------------- */

static const char *probe_result(int domain, int type)
{
	static char buf[3][32];
	static int next;
	char *out = buf[next++ % 3];
	int fd = socket(domain, type | SOCK_CLOEXEC, 0);

	if (fd >= 0) {
		close(fd);
		return "ok";
	}
	if (errno == EPERM)
		return "EPERM";
	snprintf(out, sizeof(buf[0]), "errno %d", errno);
	return out;
}

/* Run in a confined child (this binary re-executed with --socket-probe): one line saying
 * which socket families it may create. */
static int socket_probe(void)
{
	printf("unix=%s inet=%s inet-stream=%s inet6=%s\n", probe_result(AF_UNIX, SOCK_STREAM),
	       probe_result(AF_INET, SOCK_DGRAM), probe_result(AF_INET, SOCK_STREAM),
	       probe_result(AF_INET6, SOCK_DGRAM));
	fflush(stdout);
	_exit(0);   /* no LeakSanitizer at exit: it needs ptrace, which the filter refuses */
}

/* Spawns this test binary (through exec_fd: nobody need not reach the build directory) as
 * the socket probe. */
static void spawn_probe(bool allow_inet, char *out, size_t size)
{
	char *argv[] = { "test-sandbox", "--socket-probe", NULL };
	char err[256] = "";
	struct sandbox_spec s;
	int status;

	base_spec(&s, "test-sandbox", argv);
	s.allow_inet = allow_inet;
	s.exec_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	assert_true(s.exec_fd >= 0);
	assert_int_equal(run_capture(&s, out, size, &status, err, sizeof(err)), 0);
	close(s.exec_fd);
	print_message("allow_inet=%d: %s", allow_inet, out);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_allow_inet(void **state)
{
	char out[256];

	need_root();
	spawn_probe(false, out, sizeof(out));
	assert_string_equal(out, "unix=ok inet=EPERM inet-stream=EPERM inet6=EPERM\n");
	spawn_probe(true, out, sizeof(out));
	/* inet6 may be missing from the kernel (EAFNOSUPPORT); it must not be the filter. */
	assert_true(strncmp(out, "unix=ok inet=ok inet-stream=ok inet6=", 37) == 0);
	assert_null(strstr(out, "EPERM"));
}

/* The filter alone, loaded in a forked child of this root test: EPERM proves the filter. */
static void test_seccomp_no_inet(void **state)
{
	int status, fd;
	pid_t pid;

	need_root();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_seccomp_load_ex(false) < 0)
			_exit(1);
		if (socket(AF_INET, SOCK_DGRAM, 0) >= 0 || errno != EPERM)
			_exit(2);
		if (socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0) >= 0 || errno != EPERM)
			_exit(3);
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		_exit(fd >= 0 ? 0 : 4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* cwd is entered as the extension's uid: a root-only directory fails the spawn with the
 * path in the message, a reachable one is the child's working directory. */
static void test_cwd(void **state)
{
	char dir[] = "/tmp/netext-sbx-cwd-XXXXXX", want[PATH_MAX + 64], missing[PATH_MAX];
	char *argv[] = { "pwd", "-P", NULL };
	char out[PATH_MAX + 8], err[PATH_MAX + 64] = "";
	struct sandbox_spec s;
	int status, r;

	need_root();
	assert_non_null(mkdtemp(dir));   /* mode 0700: nobody cannot enter it */
	base_spec(&s, "/bin/pwd", argv);
	s.cwd = dir;
	r = run_capture(&s, out, sizeof(out), &status, err, sizeof(err));
	assert_int_equal(chmod(dir, 0755), 0);
	if (r == 0)
		rmdir(dir);
	assert_int_equal(r, -EACCES);
	snprintf(want, sizeof(want), "chdir %s: Permission denied", dir);
	assert_string_equal(err, want);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);   /* reaped */

	r = run_capture(&s, out, sizeof(out), &status, err, sizeof(err));
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	rmdir(dir);
	assert_int_equal(r, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(want, sizeof(want), "%s\n", dir);
	assert_string_equal(out, want);

	s.cwd = missing;
	assert_int_equal(run_capture(&s, out, sizeof(out), &status, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "chdir %s: No such file or directory", missing);
	assert_string_equal(err, want);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_user),
		cmocka_unit_test(test_root_refused),
		cmocka_unit_test(test_missing_executable),
		cmocka_unit_test(test_confined),
		cmocka_unit_test(test_seccomp_policy),
		cmocka_unit_test(test_exec_fd),
		cmocka_unit_test(test_fds),
		cmocka_unit_test(test_cgroup_remove),
		cmocka_unit_test(test_allow_inet),
		cmocka_unit_test(test_seccomp_no_inet),
		cmocka_unit_test(test_cwd),
	};

	if (argc == 2 && strcmp(argv[1], "--socket-probe") == 0)
		return socket_probe();
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
