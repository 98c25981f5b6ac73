/* Confinement of extension processes: fork, drop every privilege, exec. Runs in netextd as root.
 *
 * Trusts: the daemon's own spec (paths, argv, envp, fds it opened), the kernel.
 * Does not trust: the extension, which is foreign vendor code. Everything it could use to get
 * back to root or out of its box is removed before its first instruction runs: supplementary
 * groups, uid/gid 0, the capability bounding, ambient and inheritable sets, inherited fds,
 * signal state, the controlling terminal, setuid/file-capability execs (NO_NEW_PRIVS), and the
 * syscalls outside the allow-list below. The child verifies the drop (setuid(0) must fail)
 * instead of assuming it.
 *
 * The child between fork and exec only makes system calls: the daemon may have threads, so it
 * must not take locks (no malloc, stdio, libseccomp). Everything it needs, including the
 * compiled seccomp program, is prepared by the parent before fork. */
#include "sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "util.h"

/* ---- seccomp policy ---------------------------------------------------------------------
 *
 * An allow-list. The default action is EPERM, not a kill: extensions are foreign programs
 * built against libraries we do not control, and an unexpected syscall should give them an
 * ordinary error they can log and survive (and we can diagnose from their logs), not a SIGSYS
 * that looks like a crash. Calls that are dangerous with arguments are allowed only with safe
 * arguments (socket, socketpair, clone). Deliberately absent, so EPERM: mount/umount2,
 * pivot_root, chroot, unshare, setns, ptrace, process_vm_readv/writev, bpf, perf_event_open,
 * init/finit/delete_module, kexec_*, reboot, swapon/swapoff, quotactl, iopl/ioperm, keyctl,
 * add_key, request_key, userfaultfd, io_uring_*, pidfd_*, the set*id family (the uid is
 * already unprivileged), and every other syscall not named here.
 * Syscalls of another ABI (i386 int 0x80 on x86-64) hit libseccomp's bad-architecture action,
 * which kills the thread: only the native ABI is described here.
 * Known gaps: ioctl is unrestricted (TIOCSTI needs a controlling terminal, which setsid
 * removed, or CAP_SYS_ADMIN); kill(-1, …) reaches every process of the same uid, so give each
 * extension its own uid.
 * Consequence: LeakSanitizer cannot run under this filter (it needs ptrace). */
static const char *const seccomp_allow[] = {
	/* memory */
	"mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mincore", "msync",
	"membarrier",
	/* files */
	"openat", "open", "creat", "read", "write", "pread64", "pwrite64", "readv", "writev",
	"preadv", "pwritev", "close", "close_range", "lseek", "fstat", "newfstatat", "statx",
	"stat", "lstat", "fstatfs", "statfs", "access", "faccessat", "faccessat2", "readlink",
	"readlinkat", "getdents64", "fcntl", "flock", "fsync", "fdatasync", "ftruncate",
	"truncate", "fadvise64", "copy_file_range", "sendfile", "dup", "dup2", "dup3", "pipe",
	"pipe2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir", "rename", "renameat",
	"renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat",
	"utimensat", "getcwd", "chdir", "fchdir", "umask", "ioctl", "getxattr", "lgetxattr",
	"fgetxattr", "listxattr", "llistxattr", "flistxattr", "inotify_init1",
	"inotify_add_watch", "inotify_rm_watch",
	/* polling, timers */
	"poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "timerfd_create",
	"timerfd_settime", "timerfd_gettime", "signalfd4", "timer_create", "timer_settime",
	"timer_gettime", "timer_getoverrun", "timer_delete", "setitimer", "getitimer", "alarm",
	/* sockets (socket and socketpair: see seccomp_add_sockets) */
	"connect", "accept", "accept4", "bind", "listen", "getsockname", "getpeername",
	"setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
	"recvmmsg", "shutdown",
	/* processes and threads (clone: see seccomp_add_clone) */
	"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
	"tgkill", "tkill", "getpid", "getppid", "gettid", "getpgrp", "getpgid", "setpgid",
	"getsid", "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
	"futex", "futex_waitv", "sched_yield", "sched_getaffinity", "sched_setaffinity",
	"sched_getparam", "sched_getscheduler", "sched_get_priority_max",
	"sched_get_priority_min", "getcpu", "prctl", "arch_prctl", "getrlimit", "setrlimit",
	"prlimit64", "getrusage", "getpriority", "setpriority", "times", "uname", "sysinfo",
	"personality", "capget",
	/* signals */
	"sigaltstack", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait",
	"rt_sigqueueinfo", "rt_sigpending", "rt_sigsuspend", "pause", "restart_syscall",
	/* time, randomness, identity */
	"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
	"getrandom", "memfd_create", "getuid", "geteuid", "getgid", "getegid", "getgroups",
	"getresuid", "getresgid",
};

/* Namespace flags refused in clone(). CLONE_NEWTIME is only valid with clone3, and clone3
 * cannot be filtered (its flags are behind a pointer), so clone3 answers ENOSYS and glibc
 * falls back to clone. */
#define SANDBOX_CLONE_NS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
			  CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* 32-bit comparisons: the kernel reads these arguments as int, whatever the upper half holds. */
#define A32(n, v) SCMP_CMP((n), SCMP_CMP_MASKED_EQ, 0xffffffffULL, (scmp_datum_t)(v))

static int seccomp_add_table(scmp_filter_ctx ctx)
{
	size_t i;
	int nr, r;

	for (i = 0; i < NE_ARRAY_SIZE(seccomp_allow); i++) {
		nr = seccomp_syscall_resolve_name(seccomp_allow[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;   /* not a syscall of this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* socket(AF_UNIX [| AF_INET | AF_INET6 with allow_inet], SOCK_STREAM | SOCK_DGRAM |
 * SOCK_SEQPACKET [| flags]): no netlink, no packet sockets, no raw sockets. Without
 * allow_inet (the manifest permission "network") an inet socket() fails with EPERM, like
 * every call outside the list; accept4 and the like need a socket to begin with. */
static int seccomp_add_sockets(scmp_filter_ctx ctx, bool allow_inet)
{
	static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
	const scmp_datum_t type_mask = 0xffffffffULL & ~(scmp_datum_t)(SOCK_NONBLOCK | SOCK_CLOEXEC);
	size_t f, t, n_families = allow_inet ? NE_ARRAY_SIZE(families) : 1;
	int r;

	for (f = 0; f < n_families; f++)
		for (t = 0; t < NE_ARRAY_SIZE(types); t++) {
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
					     A32(0, families[f]),
					     SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask, types[t]));
			if (r < 0)
				return r;
		}
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, A32(0, AF_UNIX));
}

static int seccomp_add_clone(scmp_filter_ctx ctx)
{
	int r;

	/* The flags are argument 0 on x86-64 and arm64 (argument 1 on s390, not supported). */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
			     SCMP_A0(SCMP_CMP_MASKED_EQ, SANDBOX_CLONE_NS, 0));
	if (r < 0)
		return r;
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

/* Compiles the policy to a classic BPF program in the parent, so the child can install it with
 * one prctl and no allocation. */
static int seccomp_build(bool allow_inet, struct sock_fprog *ret)
{
	_cleanup_close_ int fd = -1;
	struct sock_filter *insns = NULL;
	scmp_filter_ctx ctx;
	off_t size;
	int r;

	ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return -ENOMEM;
	r = seccomp_add_table(ctx);
	if (r >= 0)
		r = seccomp_add_sockets(ctx, allow_inet);
	if (r >= 0)
		r = seccomp_add_clone(ctx);
	fd = memfd_create("netext-seccomp", MFD_CLOEXEC);
	if (r >= 0 && fd < 0)
		r = ne_negerrno();
	if (r >= 0)
		r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		goto out;
	size = lseek(fd, 0, SEEK_END);
	r = -EIO;
	if (size <= 0 || size % (off_t)sizeof(*insns) != 0 ||
	    size / (off_t)sizeof(*insns) > BPF_MAXINSNS)
		goto out;
	r = -ENOMEM;
	insns = malloc((size_t)size);
	if (!insns)
		goto out;
	r = pread(fd, insns, (size_t)size, 0) == size ? 0 : -EIO;
	if (r < 0) {
		free(insns);
		goto out;
	}
	ret->filter = insns;
	ret->len = (unsigned short)(size / (off_t)sizeof(*insns));
out:
	seccomp_release(ctx);
	return r;
}

int sandbox_seccomp_load(void)
{
	return sandbox_seccomp_load_ex(true);
}

int sandbox_seccomp_load_ex(bool allow_inet)
{
	struct sock_fprog prog;
	int r;

	r = seccomp_build(allow_inet, &prog);
	if (r < 0)
		return r;
	r = 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		r = ne_negerrno();
	free(prog.filter);
	return r;
}

/* ---- spawning ---------------------------------------------------------------------------- */

/* fds in the child: 0-2 stdio, 3 channel, 4 error pipe, 5 exec_fd; all above are closed.
 * Sources are first moved to CHILD_FD_HIGH or above so that no dup2 overwrites one of them. */
#define CHILD_FD_REPORT 4
#define CHILD_FD_EXEC 5
#define CHILD_FD_HIGH 6

struct child_report {
	char step[40];
	int err;
};

/* Everything the child needs, prepared before fork. */
struct child_ctx {
	const struct sandbox_spec *s;
	char *const *argv;
	char *const *envp;
	pid_t parent;
	int devnull;
	int report_fd;
	int cap_last;
	const struct sock_fprog *prog;   /* NULL: no seccomp */
};

static _Noreturn void child_fail(const struct child_ctx *c, const char *step, int err)
{
	struct child_report rep = { .err = err > 0 ? err : EIO };
	size_t n = strlen(step);

	memcpy(rep.step, step, NE_MIN(n, sizeof(rep.step) - 1));
	(void)!write(c->report_fd, &rep, sizeof(rep));
	_exit(127);
}

#define CHILD_TRY(c, expr, step) do { if ((expr) < 0) child_fail((c), (step), errno); } while (0)

static void child_signals(const struct child_ctx *c)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;
	int sig;

	/* Fails with EINVAL for SIGKILL, SIGSTOP and glibc's internal signals: nothing to reset. */
	for (sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	CHILD_TRY(c, sigprocmask(SIG_SETMASK, &none, NULL), "sigprocmask");
}

/* Moves fd to CHILD_FD_HIGH or above (close-on-exec); -1 stays -1. */
static int child_move_high(const struct child_ctx *c, int fd)
{
	int n;

	if (fd < 0)
		return -1;
	n = fcntl(fd, F_DUPFD_CLOEXEC, CHILD_FD_HIGH);
	if (n < 0)
		child_fail(c, "fcntl(F_DUPFD_CLOEXEC)", errno);
	return n;
}

static void child_close_from(const struct child_ctx *c, unsigned int lo)
{
	struct rlimit rl;
	unsigned int fd;

	if (syscall(SYS_close_range, lo, ~0U, 0) == 0)
		return;
	CHILD_TRY(c, getrlimit(RLIMIT_NOFILE, &rl), "getrlimit");
	for (fd = lo; fd < rl.rlim_cur; fd++)
		close((int)fd);
}

static void child_fds(struct child_ctx *c)
{
	const struct sandbox_spec *s = c->s;
	int src[4], report, exec_fd, i;

	src[0] = child_move_high(c, c->devnull);
	src[1] = child_move_high(c, s->stdout_fd >= 0 ? s->stdout_fd : c->devnull);
	src[2] = child_move_high(c, s->stderr_fd >= 0 ? s->stderr_fd : c->devnull);
	src[3] = child_move_high(c, s->channel_fd);
	report = child_move_high(c, c->report_fd);
	exec_fd = child_move_high(c, s->exec_fd);

	c->report_fd = report;
	CHILD_TRY(c, dup3(report, CHILD_FD_REPORT, O_CLOEXEC), "dup3(report)");
	c->report_fd = CHILD_FD_REPORT;
	for (i = 0; i < 4; i++) {
		if (src[i] >= 0)
			CHILD_TRY(c, dup2(src[i], i), "dup2");   /* dup2 clears CLOEXEC */
		else
			close(i);
	}
	if (exec_fd >= 0)
		CHILD_TRY(c, dup3(exec_fd, CHILD_FD_EXEC, O_CLOEXEC), "dup3(exec_fd)");
	child_close_from(c, exec_fd >= 0 ? CHILD_FD_HIGH : CHILD_FD_EXEC);
}

/* Bounding set first: dropping it needs CAP_SETPCAP, which setresuid takes away. */
static void child_caps_bound(const struct child_ctx *c)
{
	int cap;

	for (cap = 0; cap <= c->cap_last; cap++)
		CHILD_TRY(c, prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl(PR_CAPBSET_DROP)");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		child_fail(c, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno);
}

static void child_credentials(const struct child_ctx *c)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { { 0, 0, 0 } };
	uid_t u = c->s->uid;
	gid_t g = c->s->gid;

	CHILD_TRY(c, setgroups(0, NULL), "setgroups");
	CHILD_TRY(c, setresgid(g, g, g), "setresgid");
	CHILD_TRY(c, setresuid(u, u, u), "setresuid");
	/* The inheritable set survives setresuid; clear it too. */
	CHILD_TRY(c, syscall(SYS_capset, &hdr, data), "capset");
	if (setuid(0) == 0 || setgid(0) == 0)
		child_fail(c, "regain root check", EPERM);
}

static _Noreturn void child_run(struct child_ctx *c)
{
	const struct sandbox_spec *s = c->s;

	child_signals(c);
	CHILD_TRY(c, setsid(), "setsid");
	CHILD_TRY(c, prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)");
	if (getppid() != c->parent)
		child_fail(c, "parent exited", ESRCH);
	if (s->cgroup_procs_fd >= 0 && write(s->cgroup_procs_fd, "0", 1) != 1)
		child_fail(c, "cgroup.procs", errno);
	child_fds(c);
	child_caps_bound(c);
	child_credentials(c);
	/* As the extension's uid: a directory it cannot reach fails here, not in its code. */
	if (s->cwd)
		CHILD_TRY(c, chdir(s->cwd), "chdir");
	CHILD_TRY(c, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)");
	if (c->prog)
		CHILD_TRY(c, prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, c->prog, 0, 0), "seccomp");
	if (s->exec_fd >= 0) {
		syscall(SYS_execveat, CHILD_FD_EXEC, "", c->argv, c->envp, AT_EMPTY_PATH);
		child_fail(c, "execveat", errno);
	}
	execve(s->executable, c->argv, c->envp);
	child_fail(c, "execve", errno);
}

static int read_cap_last(void)
{
	_cleanup_close_ int fd = -1;
	char buf[16] = "";
	long v;

	fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		return CAP_LAST_CAP;   /* the kernel may know more: then PR_CAPBSET_DROP misses some */
	v = strtol(buf, NULL, 10);
	return v > 0 && v < 64 ? (int)v : CAP_LAST_CAP;
}

static int spawn_error(char *err, size_t errlen, const char *step, int e)
{
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", step, strerror(e));
	return -e;
}

/* Waits for the child's report: EOF means exec succeeded (the pipe is close-on-exec). The
 * report's step is short and fixed; the parent adds the path for chdir. */
static int spawn_wait_report(const struct sandbox_spec *s, int fd, pid_t pid, char *err,
			     size_t errlen)
{
	char step[PATH_MAX + 16];
	struct child_report rep;
	ssize_t n;

	do
		n = read(fd, &rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(rep))
		return spawn_error(err, errlen, "reading the child's report", n < 0 ? errno : EIO);
	rep.step[sizeof(rep.step) - 1] = '\0';
	if (s->cwd && strcmp(rep.step, "chdir") == 0)
		snprintf(step, sizeof(step), "chdir %s", s->cwd);
	else
		snprintf(step, sizeof(step), "%s", rep.step);
	return spawn_error(err, errlen, step, rep.err);
}

static void spawn_abort(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* fork with every signal blocked, so the child runs none of the daemon's handlers before it
 * resets them; the parent's mask is restored. */
static pid_t spawn_fork(struct child_ctx *c)
{
	sigset_t all, old;
	pid_t pid;
	int e;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_run(c);
	e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return pid;
}

static int spawn_prepare(const struct sandbox_spec *s, struct child_ctx *c,
			 struct sock_fprog *prog, char *err, size_t errlen)
{
	static char *const empty[] = { NULL };
	int r;

	if (s->uid == 0 || s->gid == 0)
		return spawn_error(err, errlen, "refusing to run an extension as root", EPERM);
	if (s->uid == (uid_t)-1 || s->gid == (gid_t)-1 || (!s->executable && s->exec_fd < 0))
		return spawn_error(err, errlen, "invalid sandbox spec", EINVAL);
	c->s = s;
	c->envp = s->envp ? s->envp : empty;
	c->parent = getpid();
	c->cap_last = read_cap_last();
	c->prog = NULL;
	if (s->seccomp) {
		r = seccomp_build(s->allow_inet, prog);
		if (r < 0)
			return spawn_error(err, errlen, "building the seccomp filter", -r);
		c->prog = prog;
	}
	return 0;
}

/* Opens what the child inherits: /dev/null and the report pipe (both close-on-exec). */
static int spawn_fds(struct child_ctx *c, int *ret_rd, char *err, size_t errlen)
{
	int p[2];

	c->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (c->devnull < 0)
		return spawn_error(err, errlen, "open /dev/null", errno);
	if (pipe2(p, O_CLOEXEC) < 0) {
		close(c->devnull);
		return spawn_error(err, errlen, "pipe2", errno);
	}
	c->report_fd = p[1];
	*ret_rd = p[0];
	return 0;
}

int sandbox_spawn(const struct sandbox_spec *s, pid_t *ret_pid, int *ret_pidfd, char *err,
		  size_t errlen)
{
	struct sock_fprog prog = { 0, NULL };
	char *argv0[] = { (char *)s->executable, NULL };
	_cleanup_close_ int rd = -1;
	struct child_ctx c;
	int pidfd = -1, r;
	pid_t pid;

	r = spawn_prepare(s, &c, &prog, err, errlen);
	if (r < 0)
		return r;
	c.argv = s->argv ? s->argv : argv0;
	r = spawn_fds(&c, &rd, err, errlen);
	if (r < 0)
		goto out;
	pid = spawn_fork(&c);
	close(c.devnull);
	close(c.report_fd);
	if (pid < 0) {
		r = spawn_error(err, errlen, "fork", errno);
		goto out;
	}
	/* Before the report: nobody else reaps our child, so the pid cannot be reused yet. */
	if (ret_pidfd) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0) {
			r = spawn_error(err, errlen, "pidfd_open", errno);
			spawn_abort(pid);
			goto out;
		}
	}
	r = spawn_wait_report(s, rd, pid, err, errlen);
	if (r < 0) {
		if (pidfd >= 0)
			close(pidfd);
		goto out;
	}
	if (ret_pid)
		*ret_pid = pid;
	if (ret_pidfd)
		*ret_pidfd = pidfd;
out:
	free(prog.filter);
	return r;
}

static int parse_id(const char *s, const char *end, unsigned int *ret)
{
	unsigned long v;
	char *e;

	if (s == end || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &e, 10);
	if (errno || e != end || v >= UINT32_MAX)
		return -EINVAL;
	*ret = (unsigned int)v;
	return 0;
}

static int lookup_user(const char *name, uid_t *ret_uid, gid_t *ret_gid)
{
	long max = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t len = max > 0 ? (size_t)max : 16384;
	_cleanup_free_ char *buf = NULL;
	struct passwd pw, *res = NULL;
	int r;

	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	r = getpwnam_r(name, &pw, buf, len, &res);
	if (r != 0)
		return -r;
	if (!res)
		return -ENOENT;
	*ret_uid = pw.pw_uid;
	*ret_gid = pw.pw_gid;
	return 0;
}

int sandbox_resolve_user(const char *spec, uid_t *ret_uid, gid_t *ret_gid)
{
	const char *colon = strchr(spec, ':');
	unsigned int u, g;
	int r;

	if (colon) {
		r = parse_id(spec, colon, &u);
		if (r >= 0)
			r = parse_id(colon + 1, colon + 1 + strlen(colon + 1), &g);
	} else {
		uid_t lu = 0;
		gid_t lg = 0;

		r = lookup_user(spec, &lu, &lg);
		u = lu;
		g = lg;
	}
	if (r < 0)
		return r;
	if (u == 0 || g == 0)
		return -EPERM;
	*ret_uid = u;
	*ret_gid = g;
	return 0;
}
