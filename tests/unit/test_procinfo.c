/* procinfo against the real kernel. The test process moves itself into a private network
 * namespace (unshare(CLONE_NEWNET), loopback up) so that every socket it looks up is its own
 * and nothing touches the host; without root those tests are skipped. /proc and pids are the
 * host's: the full-scan figures printed by test_bench are for the machine's real process set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procinfo.h"

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static struct procinfo *pi;
static bool have_netns;
static const char *sleep_path;

/* ---- sockets ------------------------------------------------------------------------------ */

static int lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1;

	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return r;
}

static socklen_t sa_make(struct sockaddr_storage *ss, int family, bool any, uint16_t port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(any ? INADDR_ANY : INADDR_LOOPBACK);
		return sizeof(*s4);
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	s6->sin6_addr = any ? in6addr_any : in6addr_loopback;
	return sizeof(*s6);
}

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
					      : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void sa_addr(const struct sockaddr_storage *ss, void *dst)
{
	if (ss->ss_family == AF_INET)
		memcpy(dst, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	else
		memcpy(dst, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

static struct pi_tuple tuple_make(uint8_t proto, const struct sockaddr_storage *l, const struct sockaddr_storage *r)
{
	struct pi_tuple t;

	memset(&t, 0, sizeof(t));
	t.family = l->ss_family;
	t.proto = proto;
	sa_addr(l, &t.local);
	sa_addr(r, &t.remote);
	t.local_port = sa_port(l);
	t.remote_port = sa_port(r);
	return t;
}

/* The tuple of a connected socket, from its own point of view. */
static struct pi_tuple tuple_of(int fd, uint8_t proto)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l), rl = sizeof(r);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&l, &ll), 0);
	assert_int_equal(getpeername(fd, (struct sockaddr *)&r, &rl), 0);
	return tuple_make(proto, &l, &r);
}

static int sock_bound(int family, int type, bool any, int flags, uint16_t *ret_port)
{
	struct sockaddr_storage ss;
	socklen_t len = sa_make(&ss, family, any, 0);
	int fd = socket(family, type | flags, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
	len = sizeof(ss);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*ret_port = sa_port(&ss);
	return fd;
}

static int tcp_listener(int family, bool any, int backlog, uint16_t *ret_port)
{
	int fd = sock_bound(family, SOCK_STREAM, any, SOCK_CLOEXEC, ret_port);

	assert_int_equal(listen(fd, backlog), 0);
	return fd;
}

static int tcp_connect(int family, uint16_t port, int flags)
{
	struct sockaddr_storage ss;
	socklen_t len = sa_make(&ss, family, false, port);
	int fd = socket(family, SOCK_STREAM | flags, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

static uint64_t ino(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static void self_exe(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);

	assert_true(n > 0);
	buf[n] = '\0';
}

static void need_netns(void)
{
	if (!have_netns)
		skip();
}

/* ---- children ----------------------------------------------------------------------------- */

/* Reads until EOF: the child's copy of the close-on-exec write end is gone, so it has exec'ed
 * (or exited). */
static void wait_exec(int rfd)
{
	char c;

	while (read(rfd, &c, 1) > 0 || errno == EINTR)
		;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* A child that connects to 127.0.0.1:port, sends its tuple up and becomes `sleep arg`
 * holding the socket. */
static pid_t spawn_holder(uint16_t port, const char *arg, struct pi_tuple *ret_t)
{
	int p[2], fd;
	struct pi_tuple t;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fd = tcp_connect(AF_INET, port, 0);
		if (fd < 0)
			_exit(1);
		t = tuple_of(fd, IPPROTO_TCP);
		if (write(p[1], &t, sizeof(t)) != sizeof(t))
			_exit(1);
		execl(sleep_path, "sleep", arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	assert_int_equal(read(p[0], ret_t, sizeof(*ret_t)), sizeof(*ret_t));
	wait_exec(p[0]);
	close(p[0]);
	return pid;
}

struct clone_args_v2 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

/* `sleep arg` as pid `want` (clone3 with set_tid, root only); -errno when that is refused. */
static pid_t spawn_sleep_as(pid_t want, const char *arg)
{
	struct clone_args_v2 ca;
	int p[2];
	long r;

	memset(&ca, 0, sizeof(ca));
	ca.exit_signal = SIGCHLD;
	ca.set_tid = (uint64_t)(uintptr_t)&want;
	ca.set_tid_size = 1;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0) {
		execl(sleep_path, "sleep", arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (r > 0)
		wait_exec(p[0]);
	close(p[0]);
	return r > 0 ? (pid_t)r : -errno;
}

static pid_t spawn_sleep(const char *arg)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(sleep_path, "sleep", arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	wait_exec(p[0]);
	close(p[0]);
	return pid;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void check_tcp(int family)
{
	struct pi_socket s;
	struct pi_process p;
	struct pi_tuple t;
	char exe[PATH_MAX];
	uint16_t port;
	int l, c, a;

	need_netns();
	l = tcp_listener(family, false, 8, &port);
	c = tcp_connect(family, port, SOCK_CLOEXEC);
	assert_true(c >= 0);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(a >= 0);

	t = tuple_of(c, IPPROTO_TCP);
	assert_int_equal(procinfo_lookup(pi, &t, false, &s, &p), 0);
	assert_int_equal(s.inode, ino(c));
	assert_int_equal(s.state, TCP_ESTABLISHED);
	assert_false(s.listener);
	assert_int_equal(s.uid, getuid());
	assert_true(s.cookie != 0);
	assert_int_equal(p.pid, getpid());
	assert_int_equal(p.ppid, getppid());
	self_exe(exe, sizeof(exe));
	assert_string_equal(p.exe, exe);

	/* The accepted end of the same connection, as an inbound flow: not the listener. */
	t = tuple_of(a, IPPROTO_TCP);
	assert_int_equal(procinfo_socket(pi, &t, true, &s), 0);
	assert_int_equal(s.inode, ino(a));
	assert_false(s.listener);

	close(c);
	close(a);
	close(l);
}

static void test_tcp_v4(void **state)
{
	check_tcp(AF_INET);
}

static void test_tcp_v6(void **state)
{
	check_tcp(AF_INET6);
}

/* A SYN to a listener whose accept queue is full is dropped: the connect stays in SYN_SENT. */
static void test_syn_sent(void **state)
{
	struct sockaddr_storage l, r;
	socklen_t ll = sizeof(l);
	struct pi_socket s;
	struct pi_process p;
	struct pi_tuple t;
	uint16_t port;
	int lfd, c1, c2;

	need_netns();
	lfd = tcp_listener(AF_INET, false, 0, &port);
	c1 = tcp_connect(AF_INET, port, SOCK_CLOEXEC);
	assert_true(c1 >= 0);
	c2 = tcp_connect(AF_INET, port, SOCK_CLOEXEC | SOCK_NONBLOCK);
	assert_true(c2 >= 0);
	assert_int_equal(getsockname(c2, (struct sockaddr *)&l, &ll), 0);
	sa_make(&r, AF_INET, false, port);
	t = tuple_make(IPPROTO_TCP, &l, &r);

	assert_int_equal(procinfo_lookup(pi, &t, false, &s, &p), 0);
	assert_int_equal(s.state, TCP_SYN_SENT);
	assert_int_equal(s.inode, ino(c2));
	assert_int_equal(p.pid, getpid());
	close(c2);
	close(c1);
	close(lfd);
}

/* A socket bound to a device is found only with the packet's interface. */
static void test_bound_device(void **state)
{
	struct pi_socket s;
	struct pi_tuple t;
	uint16_t port;
	int l, c, a;

	need_netns();
	l = tcp_listener(AF_INET, false, 8, &port);
	c = tcp_connect(AF_INET, port, SOCK_CLOEXEC);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c >= 0 && a >= 0);
	assert_int_equal(setsockopt(c, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3), 0);
	t = tuple_of(c, IPPROTO_TCP);
	assert_int_equal(procinfo_socket(pi, &t, false, &s), -ENOENT);
	t.ifindex = (int)if_nametoindex("lo");
	assert_int_equal(procinfo_socket(pi, &t, false, &s), 0);
	assert_int_equal(s.inode, ino(c));

	/* The interface does not hide sockets that are not bound to one. */
	t = tuple_of(a, IPPROTO_TCP);
	t.ifindex = (int)if_nametoindex("lo");
	assert_int_equal(procinfo_socket(pi, &t, false, &s), 0);
	assert_int_equal(s.inode, ino(a));
	t.ifindex = -1;
	assert_int_equal(procinfo_socket(pi, &t, false, &s), -EINVAL);
	close(a);
	close(c);
	close(l);
}

/* An inbound SYN has no socket yet: the listener answers, for its own address or a wildcard
 * (a dual-stack IPv6 one too), but only for inbound lookups. */
static void check_listener(int lfamily, bool any, int tfamily)
{
	struct sockaddr_storage l, r;
	struct pi_socket s;
	struct pi_tuple t;
	uint16_t port;
	int lfd;

	lfd = tcp_listener(lfamily, any, 8, &port);
	sa_make(&l, tfamily, false, port);
	sa_make(&r, tfamily, false, 40999); /* no socket there */
	t = tuple_make(IPPROTO_TCP, &l, &r);

	assert_int_equal(procinfo_socket(pi, &t, true, &s), 0);
	assert_true(s.listener);
	assert_int_equal(s.state, TCP_LISTEN);
	assert_int_equal(s.inode, ino(lfd));
	assert_int_equal(procinfo_socket(pi, &t, false, &s), -ENOENT);

	t.local_port = (uint16_t)(port + 1);
	assert_int_equal(procinfo_socket(pi, &t, true, &s), -ENOENT);
	close(lfd);
}

static void test_inbound_listener(void **state)
{
	need_netns();
	check_listener(AF_INET, false, AF_INET);
	check_listener(AF_INET, true, AF_INET);
	check_listener(AF_INET6, false, AF_INET6);
	check_listener(AF_INET6, true, AF_INET6);
	check_listener(AF_INET6, true, AF_INET); /* dual-stack */
}

/* The server closed first: its end of the old connection waits in TIME_WAIT without an owner.
 * A new SYN on that tuple goes to the listener. */
static void test_time_wait(void **state)
{
	struct pi_socket s;
	struct pi_tuple t;
	uint16_t port;
	int l, c, a;
	char buf[1];

	need_netns();
	l = tcp_listener(AF_INET, false, 8, &port);
	c = tcp_connect(AF_INET, port, SOCK_CLOEXEC);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c >= 0 && a >= 0);
	t = tuple_of(a, IPPROTO_TCP);
	close(a);
	assert_int_equal(read(c, buf, 1), 0);
	close(c);

	assert_int_equal(procinfo_socket(pi, &t, false, &s), -ENOENT);
	assert_int_equal(procinfo_socket(pi, &t, true, &s), 0);
	assert_true(s.listener);
	assert_int_equal(s.inode, ino(l));
	close(l);
}

static void check_udp(int family, bool any)
{
	struct sockaddr_storage l, r;
	struct pi_socket s;
	struct pi_process p;
	struct pi_tuple t;
	uint16_t port, port2;
	int u, c;

	u = sock_bound(family, SOCK_DGRAM, any, SOCK_CLOEXEC, &port);
	sa_make(&l, family, false, port);
	sa_make(&r, family, false, 5555);
	t = tuple_make(IPPROTO_UDP, &l, &r);
	assert_int_equal(procinfo_lookup(pi, &t, false, &s, &p), 0);
	assert_int_equal(s.inode, ino(u));
	assert_int_equal(s.state, TCP_CLOSE);
	assert_int_equal(p.pid, getpid());
	t.remote_port = 6666; /* any remote */
	assert_int_equal(procinfo_socket(pi, &t, true, &s), 0);
	assert_int_equal(s.inode, ino(u));

	/* A connected socket is found for its peer; u still for the others. */
	c = sock_bound(family, SOCK_DGRAM, false, SOCK_CLOEXEC, &port2);
	sa_make(&r, family, false, port);
	assert_int_equal(connect(c, (struct sockaddr *)&r, family == AF_INET ? sizeof(struct sockaddr_in)
									   : sizeof(struct sockaddr_in6)), 0);
	t = tuple_of(c, IPPROTO_UDP);
	assert_int_equal(procinfo_socket(pi, &t, false, &s), 0);
	assert_int_equal(s.inode, ino(c));
	assert_int_equal(s.state, TCP_ESTABLISHED);

	close(c);
	close(u);
	t.local_port = port;
	assert_int_equal(procinfo_socket(pi, &t, false, &s), -ENOENT);
}

static void test_udp(void **state)
{
	need_netns();
	check_udp(AF_INET, false);
	check_udp(AF_INET, true);
	check_udp(AF_INET6, false);
	check_udp(AF_INET6, true);
}

static void test_bad_tuple(void **state)
{
	struct pi_tuple t;
	struct pi_socket s;

	memset(&t, 0, sizeof(t));
	t.family = AF_UNIX;
	t.proto = IPPROTO_TCP;
	assert_int_equal(procinfo_socket(pi, &t, false, &s), -EAFNOSUPPORT);
	t.family = AF_INET;
	t.proto = IPPROTO_SCTP;
	assert_int_equal(procinfo_socket(pi, &t, false, &s), -EPROTONOSUPPORT);
}

/* A child holding the socket is its owner, with its own cmdline; once it is gone the flow
 * has no owner. */
static void test_child(void **state)
{
	struct pi_socket s;
	struct pi_process p;
	struct pi_tuple t;
	uint16_t port;
	pid_t pid;
	int l;

	need_netns();
	l = tcp_listener(AF_INET, false, 8, &port);
	pid = spawn_holder(port, "1000", &t);

	assert_int_equal(procinfo_lookup(pi, &t, false, &s, &p), 0);
	assert_int_equal(p.pid, pid);
	assert_int_equal(p.ppid, getpid());
	assert_string_equal(p.cmdline, "sleep 1000");
	assert_non_null(strstr(p.exe, "sleep"));
	assert_int_equal(p.uid, getuid());
	assert_int_equal(p.gid, getgid());
	assert_int_equal(p.cgroup[0], '/');

	reap(pid);
	assert_int_equal(procinfo_lookup(pi, &t, false, &s, &p), -ENOENT);
	assert_int_equal(procinfo_process(pi, pid, &p), -ENOENT);
	close(l);
}

/* The inode cache is verified on each hit: a closed socket's fd reused for another socket
 * is not taken for the old one. The process found last is scanned first next time. */
static void test_inode_cache(void **state)
{
	struct procinfo_stats st0, st1;
	struct pi_process p;
	uint16_t port;
	uint64_t old;
	int u, fd, u2;

	u = sock_bound(AF_INET, SOCK_DGRAM, false, SOCK_CLOEXEC, &port);
	old = ino(u);
	procinfo_get_stats(pi, &st0);
	assert_int_equal(procinfo_process_by_inode(pi, old, getuid(), &p), 0);
	assert_int_equal(p.pid, getpid());
	assert_int_equal(procinfo_process_by_inode(pi, old, getuid(), &p), 0);
	procinfo_get_stats(pi, &st1);
	assert_int_equal(st1.inode_hits, st0.inode_hits + 1);
	assert_true(st1.cache_hits > st0.cache_hits);

	fd = u;
	close(u);
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_equal(u, fd);
	assert_int_equal(procinfo_process_by_inode(pi, old, getuid(), &p), -ENOENT);

	/* A socket of ours not yet cached: found among recent owners. */
	u2 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	procinfo_get_stats(pi, &st0);
	assert_int_equal(procinfo_process_by_inode(pi, ino(u2), (uid_t)-1, &p), 0);
	procinfo_get_stats(pi, &st1);
	assert_int_equal(st1.fast_hits, st0.fast_hits + 1);
	assert_int_equal(st1.full_scans, st0.full_scans);
	assert_int_equal(procinfo_process_by_inode(pi, 0, (uid_t)-1, &p), -ENOENT);
	close(u2);
	close(u);
}

static void test_self(void **state)
{
	char exe[PATH_MAX], cg[1024], *l;
	struct pi_process p;
	FILE *f;

	assert_int_equal(procinfo_process(pi, getpid(), &p), 0);
	assert_int_equal(p.pid, getpid());
	assert_int_equal(p.ppid, getppid());
	assert_int_equal(p.uid, getuid());
	assert_int_equal(p.gid, getgid());
	assert_true(p.start_time > 0);
	self_exe(exe, sizeof(exe));
	assert_string_equal(p.exe, exe);
	assert_non_null(strstr(p.cmdline, "test-procinfo"));

	f = fopen("/proc/self/cgroup", "re");
	assert_non_null(f);
	while ((l = fgets(cg, sizeof(cg), f)) && strncmp(l, "0::", 3) != 0)
		;
	fclose(f);
	if (l) {
		l[strcspn(l, "\n")] = '\0';
		assert_string_equal(p.cgroup, l + 3);
	}
	assert_int_equal(procinfo_process(pi, 0, &p), -EINVAL);
	assert_int_equal(procinfo_process(pi, -1, &p), -EINVAL);
}

/* comm with ')' and spaces, argv with newlines and more bytes than the buffer. */
static void test_hostile(void **state)
{
	char arg0[3000], c;
	struct pi_process p, self;
	int go[2], ready[2];
	pid_t pid;
	size_t len;

	memset(arg0, 'A', sizeof(arg0) - 1);
	arg0[sizeof(arg0) - 1] = '\0';
	memcpy(arg0, "x\ny) 1 2 (", 10);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_NAME, ") 9 9 9 (", 0, 0, 0);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		execl(sleep_path, arg0, "1000", (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);

	assert_int_equal(procinfo_process(pi, pid, &p), 0);
	assert_int_equal(procinfo_process(pi, getpid(), &self), 0);
	assert_int_equal(p.ppid, getpid());
	assert_true(p.start_time >= self.start_time);
	assert_string_equal(p.exe, self.exe);

	/* Same pid and start time after exec: comm changed, so the details are read again. */
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	wait_exec(ready[0]);
	close(ready[0]);
	assert_int_equal(procinfo_process(pi, pid, &p), 0);
	assert_non_null(strstr(p.exe, "sleep"));
	len = strlen(p.cmdline);
	assert_int_equal(len, PROCINFO_CMDLINE_MAX - 1);
	assert_memory_equal(p.cmdline, "x?y) 1 2 (AAA", 13);
	assert_null(strchr(p.cmdline, '\n'));
	reap(pid);
}

/* A pid given to another process (clone3 set_tid) is never answered with the details cached
 * for the one that had it before. */
static void test_pid_reuse(void **state)
{
	struct pi_process a, b;
	pid_t pid, again;

	pid = spawn_sleep("1000");
	assert_int_equal(procinfo_process(pi, pid, &a), 0);
	assert_string_equal(a.cmdline, "sleep 1000");
	reap(pid);
	assert_int_equal(procinfo_process(pi, pid, &b), -ENOENT);
	usleep(30 * 1000); /* start times count 10 ms ticks */

	again = spawn_sleep_as(pid, "1001");
	if (again < 0) {
		print_message("clone3 with set_tid refused (%s): skipped\n", strerror(-again));
		skip();
	}
	assert_int_equal(again, pid);
	assert_int_equal(procinfo_process(pi, pid, &b), 0);
	assert_true(b.start_time != a.start_time);
	assert_string_equal(b.cmdline, "sleep 1001");
	reap(pid);
}

static int count_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static double secs(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* Figures only, nothing asserted about time. */
static void test_bench(void **state)
{
	struct timespec t0, t1;
	struct pi_socket s;
	struct pi_process p;
	struct pi_tuple t;
	uint16_t port;
	int l, c, a, i, n = 20000, fds[200];

	need_netns();
	l = tcp_listener(AF_INET, false, 8, &port);
	c = tcp_connect(AF_INET, port, SOCK_CLOEXEC);
	a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	t = tuple_of(c, IPPROTO_TCP);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		assert_int_equal(procinfo_socket(pi, &t, false, &s), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("sock_diag exact lookup: %.0f lookups/s (%.2f us)\n", n / secs(&t0, &t1),
		      secs(&t0, &t1) * 1e6 / n);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		assert_int_equal(procinfo_lookup(pi, &t, false, &s, &p), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("full lookup, caches warm: %.0f lookups/s (%.2f us)\n", n / secs(&t0, &t1),
		      secs(&t0, &t1) * 1e6 / n);

	/* inode → pid among recent owners: our own fd table (~200 sockets), not yet cached. */
	for (i = 0; i < (int)(sizeof(fds) / sizeof(fds[0])); i++)
		fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < (int)(sizeof(fds) / sizeof(fds[0])); i++)
		assert_int_equal(procinfo_process_by_inode(pi, ino(fds[i]), (uid_t)-1, &p), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("inode -> pid, recent owner (fd table of %d): %.1f us\n", count_fds(),
		      secs(&t0, &t1) * 1e6 / i);

	/* A full /proc scan: an inode nobody holds. */
	n = 20;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		assert_int_equal(procinfo_process_by_inode(pi, 0xfffffff0u, (uid_t)-1, &p), -ENOENT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("inode -> pid, full /proc scan: %.2f ms\n", secs(&t0, &t1) * 1e3 / n);

	for (i = 0; i < (int)(sizeof(fds) / sizeof(fds[0])); i++)
		close(fds[i]);
	close(a);
	close(c);
	close(l);
}

static int group_setup(void **state)
{
	sleep_path = access("/usr/bin/sleep", X_OK) == 0 ? "/usr/bin/sleep" : "/bin/sleep";
	if (geteuid() == 0 && unshare(CLONE_NEWNET) == 0 && lo_up() == 0)
		have_netns = true;
	else
		print_message("no private network namespace (%s): socket tests skipped\n", strerror(errno));
	return procinfo_new(&pi) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	procinfo_free(pi);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_v4),
		cmocka_unit_test(test_tcp_v6),
		cmocka_unit_test(test_syn_sent),
		cmocka_unit_test(test_bound_device),
		cmocka_unit_test(test_inbound_listener),
		cmocka_unit_test(test_time_wait),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_bad_tuple),
		cmocka_unit_test(test_child),
		cmocka_unit_test(test_inode_cache),
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_pid_reuse),
		cmocka_unit_test(test_bench),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
