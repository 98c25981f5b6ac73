/* Process attribution for netextd: sock_diag and /proc readers (see procinfo.h).
 *
 * Trusts: the kernel. sock_diag replies are accepted only from the kernel (sender port 0),
 * for our port and the sequence number of the request just sent, after length checks.
 * Does not trust: anything a process controls under /proc/PID. comm and argv may hold any
 * bytes (')' and spaces in comm, newlines in argv), an executable or cgroup may have any
 * name. Everything is read into bounded buffers, NUL-terminated, control bytes replaced.
 * A pid is only a name that the kernel reuses: all files of one process are read through
 * one open /proc/PID directory fd, which stays tied to the process it was opened for (once
 * that process is gone, lookups below it fail), so details never mix two processes. */
#include "procinfo.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define PI_MRU 16                 /* recently seen socket owners, scanned before /proc */
#define PI_INO_BITS 12
#define PI_INO_MAX (1u << PI_INO_BITS) /* inode → (pid, fd) cache, oldest evicted */
#define PI_DET_MAX 256u           /* details cache, direct-mapped by pid */
#define PI_DET_TTL_USEC 2000000ULL
#define PI_COMM_MAX 64            /* kernel threads' names can exceed TASK_COMM_LEN */
#define PI_FILE_MAX 4096          /* stat; the head of status (Uid/Gid come before Groups) */
#define PI_CGROUP_FILE_MAX 8192   /* hybrid hierarchies list a dozen lines before "0::" */
#define PI_NL_BUF 16384

struct ino_entry {
	uint64_t inode; /* 0: free */
	pid_t pid;
	int fd;
	int32_t next;   /* bucket chain, -1 ends */
};

/* Details are valid for a process while (pid, start time) match: start times count clock
 * ticks and pids are handed out cyclically, so the same pair again would need the whole pid
 * space to wrap within one tick. Each hit re-reads /proc/PID/stat (about as cheap as a
 * /proc read gets) to check that, and gets a fresh ppid for free. execve() keeps both pid
 * and start time, so comm is compared too and entries expire after PI_DET_TTL_USEC: an exec
 * that keeps the name, a uid change or a cgroup move shows within two seconds. */
struct det_entry {
	struct pi_process p; /* p.pid == 0: free */
	char comm[PI_COMM_MAX];
	unsigned long long at;
};

struct stat_info {
	pid_t ppid;
	uint64_t start_time;
	char comm[PI_COMM_MAX];
};

struct procinfo {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	int proc_fd;
	pid_t mru[PI_MRU];
	size_t n_mru;
	struct ino_entry ino[PI_INO_MAX];
	int32_t ino_head[PI_INO_MAX];
	uint32_t ino_clock;
	struct det_entry det[PI_DET_MAX];
	struct procinfo_stats stats;
	char nlbuf[PI_NL_BUF];
};

/* A process that exits while we read it shows as ENOENT or ESRCH depending on the file. */
static int gone(int err)
{
	return err == -ESRCH ? -ENOENT : err;
}

/* ---- sock_diag ---------------------------------------------------------------------------- */

/* TCP (inet_diag_find_one_icsk) reads idiag_src as the local end; udp_dump_one passes
 * idiag_src to the UDP lookup as the packet's source, i.e. the remote end ("swapped for
 * historical reasons" in the kernel). */
static void fill_req(struct inet_diag_req_v2 *r, const struct pi_tuple *t, bool zero_remote)
{
	bool udp = t->proto == IPPROTO_UDP;
	__be32 *loc = udp ? r->id.idiag_dst : r->id.idiag_src;
	__be32 *rem = udp ? r->id.idiag_src : r->id.idiag_dst;
	size_t alen = t->family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);

	memset(r, 0, sizeof(*r));
	r->sdiag_family = (uint8_t)t->family;
	r->sdiag_protocol = t->proto;
	r->idiag_states = ~0u;
	r->id.idiag_if = (uint32_t)t->ifindex;
	r->id.idiag_cookie[0] = r->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	memcpy(loc, &t->local, alen);
	*(udp ? &r->id.idiag_dport : &r->id.idiag_sport) = htons(t->local_port);
	if (zero_remote)
		return;
	memcpy(rem, &t->remote, alen);
	*(udp ? &r->id.idiag_sport : &r->id.idiag_dport) = htons(t->remote_port);
}

/* Our reply among the messages in buf: 0 (ret filled), a negative errno from the kernel, or
 * -EAGAIN when buf held only stale messages (replies to an earlier, interrupted request). */
static int diag_parse(const void *buf, size_t len, uint32_t seq, uint32_t portid, struct pi_socket *ret)
{
	const struct nlmsghdr *nlh = buf;
	const struct inet_diag_msg *m;
	const struct nlmsgerr *e;
	int left = (int)len;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
		if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != portid)
			continue;
		if (nlh->nlmsg_type == NLMSG_ERROR) {
			e = mnl_nlmsg_get_payload(nlh);
			if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*e) || e->error >= 0)
				return -EBADMSG;
			return e->error;
		}
		if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY || mnl_nlmsg_get_payload_len(nlh) < sizeof(*m))
			return -EBADMSG;
		m = mnl_nlmsg_get_payload(nlh);
		memset(ret, 0, sizeof(*ret));
		ret->inode = m->idiag_inode;
		ret->uid = m->idiag_uid;
		ret->cookie = (uint64_t)m->id.idiag_cookie[1] << 32 | m->id.idiag_cookie[0];
		ret->state = m->idiag_state;
		return 0;
	}
	return -EAGAIN;
}

static int diag_recv(struct procinfo *pi, uint32_t seq, struct pi_socket *ret)
{
	struct sockaddr_nl from;
	socklen_t flen;
	ssize_t n;
	int r;

	for (;;) {
		flen = sizeof(from);
		n = recvfrom(mnl_socket_get_fd(pi->nl), pi->nlbuf, sizeof(pi->nlbuf), 0,
			     (struct sockaddr *)&from, &flen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ne_negerrno();
		if (flen != sizeof(from) || from.nl_pid != 0)
			continue; /* not from the kernel */
		r = diag_parse(pi->nlbuf, (size_t)n, seq, pi->portid, ret);
		if (r != -EAGAIN)
			return r;
	}
}

/* One exact lookup (NLM_F_REQUEST without NLM_F_DUMP): the kernel answers inside our send
 * with exactly one message, the socket or an error. */
static int diag_lookup(struct procinfo *pi, const struct pi_tuple *t, bool zero_remote, struct pi_socket *ret)
{
	char req[MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct inet_diag_req_v2))];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
	uint32_t seq = ++pi->seq;

	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	fill_req(mnl_nlmsg_put_extra_header(nlh, sizeof(struct inet_diag_req_v2)), t, zero_remote);
	if (mnl_socket_sendto(pi->nl, nlh, nlh->nlmsg_len) < 0)
		return ne_negerrno();
	return diag_recv(pi, seq, ret);
}

/* The listener on t->local. With the remote end zeroed the kernel's established lookup
 * cannot match and its listener lookup (exact address first, then wildcard, dual-stack
 * IPv6 sockets for IPv4) answers. */
static int tcp_listener(struct procinfo *pi, const struct pi_tuple *t, struct pi_socket *ret)
{
	struct pi_socket s;
	int r = diag_lookup(pi, t, true, &s);

	if (r < 0)
		return r;
	if (s.state != TCP_LISTEN || s.inode == 0)
		return -ENOENT;
	s.listener = true;
	*ret = s;
	return 0;
}

/* Turns the exact lookup's answer into the flow's owner. The kernel's lookup is its own
 * demux: with no connection for the tuple it answers with the listener that would take a SYN
 * (so -ENOENT means there is none), and that listener owns the flow only when the flow is
 * inbound. Sockets without an inode belong to no process, except a request socket (SYN_RECV),
 * which its listener will hand to accept(), and a TIME_WAIT one hit by a new inbound SYN,
 * which the listener accepts in its place: for those the listener is looked up explicitly. */
static int tcp_owner(struct procinfo *pi, const struct pi_tuple *t, bool inbound, struct pi_socket *s)
{
	if (s->state == TCP_LISTEN) {
		s->listener = true;
		return inbound && s->inode ? 0 : -ENOENT;
	}
	if (s->inode)
		return 0;
	if (s->state == TCP_SYN_RECV || (inbound && s->state == TCP_TIME_WAIT))
		return tcp_listener(pi, t, s);
	return -ENOENT;
}

static int tuple_valid(const struct pi_tuple *t)
{
	if (t->family != AF_INET && t->family != AF_INET6)
		return -EAFNOSUPPORT;
	if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
		return -EPROTONOSUPPORT;
	return t->ifindex >= 0 ? 0 : -EINVAL;
}

int procinfo_socket(struct procinfo *pi, const struct pi_tuple *t, bool inbound, struct pi_socket *ret)
{
	struct pi_socket s;
	int r = tuple_valid(t);

	if (r < 0)
		return r;
	pi->stats.lookups++;
	r = diag_lookup(pi, t, false, &s);
	if (r == 0 && t->proto == IPPROTO_TCP)
		r = tcp_owner(pi, t, inbound, &s);
	else if (r == 0 && s.inode == 0)
		r = -ENOENT;
	if (r == -ENOENT)
		pi->stats.sock_missing++;
	if (r < 0)
		return r;
	pi->stats.sock_found++;
	*ret = s;
	return 0;
}

/* ---- reading /proc/PID -------------------------------------------------------------------- */

/* Reads up to size - 1 bytes of dirfd/name and NUL-terminates them. Length or -errno. */
static ssize_t read_at(int dirfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY), err;
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return ne_negerrno();
	while (len + 1 < size) {
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = ne_negerrno();
			close(fd);
			return err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Control bytes (a newline in argv could forge a log line) become '?'. */
static void sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* A decimal number in [s, e) no larger than max. */
static int parse_u64(const char *s, const char *e, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (s == e)
		return -EBADMSG;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

/* "pid (comm) state ppid … starttime(22) …". comm may hold spaces and ')', so it ends at the
 * last ')' of the line; the fields after it are the kernel's numbers. */
static int parse_stat(const char *buf, size_t len, struct stat_info *ret)
{
	const char *open = memchr(buf, '(', len), *close = memrchr(buf, ')', len), *p, *tok;
	const char *end = buf + len;
	uint64_t ppid = 0, start = 0;
	int field = 2, r = 0;

	if (!open || !close || close < open)
		return -EBADMSG;
	for (p = close + 1; p < end && field < 22 && r == 0;) {
		while (p < end && *p == ' ')
			p++;
		for (tok = p, field++; p < end && *p != ' ' && *p != '\n'; p++)
			;
		if (field == 4)
			r = parse_u64(tok, p, INT32_MAX, &ppid);
		else if (field == 22)
			r = parse_u64(tok, p, UINT64_MAX, &start);
	}
	if (r < 0 || field != 22)
		return -EBADMSG;
	ret->ppid = (pid_t)ppid;
	ret->start_time = start;
	len = NE_MIN((size_t)(close - open - 1), sizeof(ret->comm) - 1);
	memcpy(ret->comm, open + 1, len);
	ret->comm[len] = '\0';
	return 0;
}

static int read_stat(int piddir, struct stat_info *ret)
{
	char buf[PI_FILE_MAX];
	ssize_t n = read_at(piddir, "stat", buf, sizeof(buf));

	if (n < 0)
		return gone((int)n);
	return parse_stat(buf, (size_t)n, ret);
}

/* The first id on the line "key\t…" (the real uid or gid). Lines start after a newline; the
 * one line a process controls (Name) has its newlines escaped by the kernel. */
static int status_id(const char *buf, const char *key, uint32_t *ret)
{
	size_t klen = strlen(key);
	const char *l, *e;
	uint64_t v;

	for (l = buf; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, klen) != 0)
			continue;
		for (l += klen; *l == '\t' || *l == ' '; l++)
			;
		for (e = l; *e >= '0' && *e <= '9'; e++)
			;
		if (parse_u64(l, e, UINT32_MAX, &v) < 0)
			return -EBADMSG;
		*ret = (uint32_t)v;
		return 0;
	}
	return -EBADMSG;
}

static int read_ids(int piddir, struct pi_process *p)
{
	char buf[PI_FILE_MAX];
	ssize_t n = read_at(piddir, "status", buf, sizeof(buf));
	uint32_t uid, gid;

	if (n < 0)
		return gone((int)n);
	if (status_id(buf, "Uid:", &uid) < 0 || status_id(buf, "Gid:", &gid) < 0)
		return -EBADMSG;
	p->uid = uid;
	p->gid = gid;
	return 0;
}

static void read_exe(int piddir, char *buf, size_t size)
{
	ssize_t n = readlinkat(piddir, "exe", buf, size - 1);

	buf[n > 0 ? n : 0] = '\0';
	sanitize(buf);
}

/* argv as one line. Only the first size - 1 bytes are read however long argv is. */
static void read_cmdline(int piddir, char *buf, size_t size)
{
	ssize_t n = read_at(piddir, "cmdline", buf, size), i;

	if (n < 0)
		n = 0;
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	sanitize(buf);
}

/* The cgroup2 path: the "0::" line. */
static void read_cgroup(int piddir, char *buf, size_t size)
{
	char file[PI_CGROUP_FILE_MAX];
	ssize_t n = read_at(piddir, "cgroup", file, sizeof(file));
	const char *l = NULL, *e;
	size_t len;

	buf[0] = '\0';
	if (n < 0)
		return;
	if (strncmp(file, "0::", 3) == 0)
		l = file;
	else if ((l = strstr(file, "\n0::")))
		l++;
	if (!l)
		return;
	l += 3;
	e = strchrnul(l, '\n');
	len = NE_MIN((size_t)(e - l), size - 1);
	memcpy(buf, l, len);
	buf[len] = '\0';
	sanitize(buf);
}

static int read_details(int piddir, pid_t pid, const struct stat_info *si, struct pi_process *p)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->ppid = si->ppid;
	p->start_time = si->start_time;
	r = read_ids(piddir, p);
	if (r < 0)
		return r;
	read_exe(piddir, p->exe, sizeof(p->exe));
	read_cmdline(piddir, p->cmdline, sizeof(p->cmdline));
	read_cgroup(piddir, p->cgroup, sizeof(p->cgroup));
	return 0;
}

/* Details of the process behind piddir, from the cache when (pid, start time, comm) still
 * match and the entry is younger than the TTL (see struct det_entry). */
static int process_at(struct procinfo *pi, int piddir, pid_t pid, struct pi_process *ret)
{
	struct det_entry *e = &pi->det[(uint32_t)pid % PI_DET_MAX];
	unsigned long long now = ne_now_usec();
	struct stat_info si;
	int r = read_stat(piddir, &si);

	if (r < 0)
		return r;
	if (e->p.pid == pid && e->p.start_time == si.start_time && strcmp(e->comm, si.comm) == 0 &&
	    now - e->at < PI_DET_TTL_USEC) {
		pi->stats.cache_hits++;
		e->p.ppid = si.ppid;
		*ret = e->p;
		return 0;
	}
	e->p.pid = 0;
	r = read_details(piddir, pid, &si, &e->p);
	if (r < 0) {
		e->p.pid = 0;
		return r;
	}
	memcpy(e->comm, si.comm, sizeof(e->comm));
	e->at = now;
	*ret = e->p;
	return 0;
}

static int pid_open(const struct procinfo *pi, pid_t pid)
{
	char name[16];
	int fd;

	snprintf(name, sizeof(name), "%d", (int)pid);
	fd = openat(pi->proc_fd, name, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : gone(ne_negerrno());
}

int procinfo_process(struct procinfo *pi, pid_t pid, struct pi_process *ret)
{
	int piddir, r;

	if (pid <= 0)
		return -EINVAL;
	piddir = pid_open(pi, pid);
	if (piddir < 0)
		return piddir;
	r = process_at(pi, piddir, pid, ret);
	close(piddir);
	return r;
}

/* ---- inode → pid -------------------------------------------------------------------------- */

static uint32_t ino_hash(uint64_t inode)
{
	return (uint32_t)((inode * 0x9e3779b97f4a7c15ULL) >> (64 - PI_INO_BITS));
}

static struct ino_entry *ino_find(struct procinfo *pi, uint64_t inode)
{
	int32_t i;

	for (i = pi->ino_head[ino_hash(inode)]; i >= 0; i = pi->ino[i].next)
		if (pi->ino[i].inode == inode)
			return &pi->ino[i];
	return NULL;
}

static void ino_drop(struct procinfo *pi, struct ino_entry *e)
{
	int32_t *link = &pi->ino_head[ino_hash(e->inode)], idx = (int32_t)(e - pi->ino);

	while (*link >= 0 && *link != idx)
		link = &pi->ino[*link].next;
	if (*link == idx)
		*link = e->next;
	e->inode = 0;
}

/* Slots are reused in insertion order: the oldest entry goes first. */
static void ino_put(struct procinfo *pi, uint64_t inode, pid_t pid, int fd)
{
	struct ino_entry *e = ino_find(pi, inode);
	uint32_t h;

	if (!e) {
		e = &pi->ino[pi->ino_clock++ % PI_INO_MAX];
		if (e->inode)
			ino_drop(pi, e);
		h = ino_hash(inode);
		e->inode = inode;
		e->next = pi->ino_head[h];
		pi->ino_head[h] = (int32_t)(e - pi->ino);
	}
	e->pid = pid;
	e->fd = fd;
}

static void mru_touch(struct procinfo *pi, pid_t pid)
{
	size_t i;

	for (i = 0; i < pi->n_mru && pi->mru[i] != pid; i++)
		;
	if (i == pi->n_mru && pi->n_mru < PI_MRU)
		pi->n_mru++;
	if (i == PI_MRU)
		i--;
	memmove(pi->mru + 1, pi->mru, i * sizeof(pi->mru[0]));
	pi->mru[0] = pid;
}

static void mru_drop(struct procinfo *pi, size_t i)
{
	memmove(pi->mru + i, pi->mru + i + 1, (pi->n_mru - i - 1) * sizeof(pi->mru[0]));
	pi->n_mru--;
}

static bool mru_has(const struct procinfo *pi, pid_t pid)
{
	size_t i;

	for (i = 0; i < pi->n_mru; i++)
		if (pi->mru[i] == pid)
			return true;
	return false;
}

/* The link text of a socket's fd: "socket:[INODE]". */
struct want {
	char link[32];
	size_t len;
};

/* Looks for the socket in the fd table of the process behind piddir: 0 and *ret_fd, or
 * -ENOENT (also when the table cannot be read: the process exited, or is a kernel thread). */
static int fd_scan(int piddir, const struct want *w, int *ret_fd)
{
	int dfd = openat(piddir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = -ENOENT;
	struct dirent *de;
	char link[sizeof(w->link)];
	uint64_t fd;
	DIR *d;

	if (dfd < 0)
		return -ENOENT;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -ENOMEM;
	}
	while (r == -ENOENT && (de = readdir(d))) {
		if (readlinkat(dirfd(d), de->d_name, link, sizeof(link)) != (ssize_t)w->len ||
		    memcmp(link, w->link, w->len) != 0)
			continue;
		if (parse_u64(de->d_name, de->d_name + strlen(de->d_name), INT32_MAX, &fd) == 0) {
			*ret_fd = (int)fd;
			r = 0;
		}
	}
	closedir(d);
	return r;
}

/* The cached owner, verified with one readlink of /proc/PID/fd/FD. Returns the open piddir. */
static int owner_cached(struct procinfo *pi, uint64_t inode, const struct want *w, pid_t *ret_pid)
{
	struct ino_entry *e = ino_find(pi, inode);
	char path[32], link[sizeof(w->link)];
	int piddir;

	if (!e)
		return -ENOENT;
	snprintf(path, sizeof(path), "fd/%d", e->fd);
	piddir = pid_open(pi, e->pid);
	if (piddir >= 0 && readlinkat(piddir, path, link, sizeof(link)) == (ssize_t)w->len &&
	    memcmp(link, w->link, w->len) == 0) {
		*ret_pid = e->pid;
		return piddir;
	}
	if (piddir >= 0)
		close(piddir);
	ino_drop(pi, e);
	return -ENOENT;
}

static int owner_mru(struct procinfo *pi, const struct want *w, pid_t *ret_pid, int *ret_fd)
{
	size_t i = 0;
	int piddir;

	while (i < pi->n_mru) {
		piddir = pid_open(pi, pi->mru[i]);
		if (piddir < 0) {
			mru_drop(pi, i);
			continue;
		}
		if (fd_scan(piddir, w, ret_fd) == 0) {
			*ret_pid = pi->mru[i];
			return piddir;
		}
		close(piddir);
		i++;
	}
	return -ENOENT;
}

enum scan_pass { SCAN_ALL, SCAN_UID, SCAN_NOT_UID };

/* One pass over /proc. Processes already scanned as recent owners are skipped. */
static int owner_pass(struct procinfo *pi, DIR *d, enum scan_pass pass, uid_t uid, const struct want *w,
		      pid_t *ret_pid, int *ret_fd)
{
	struct dirent *de;
	struct stat st;
	uint64_t pid;
	int piddir;

	rewinddir(d);
	while ((de = readdir(d))) {
		if (parse_u64(de->d_name, de->d_name + strlen(de->d_name), INT32_MAX, &pid) < 0 ||
		    pid == 0 || mru_has(pi, (pid_t)pid))
			continue;
		if (pass != SCAN_ALL && (fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
					 (st.st_uid == uid) != (pass == SCAN_UID)))
			continue;
		piddir = openat(dirfd(d), de->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (piddir < 0)
			continue;
		if (fd_scan(piddir, w, ret_fd) == 0) {
			*ret_pid = (pid_t)pid;
			return piddir;
		}
		close(piddir);
	}
	return -ENOENT;
}

/* The whole of /proc, processes of uid_hint first. /proc/PID belongs to the process's
 * effective uid (root when it is not dumpable): good enough for an order, not for a filter. */
static int owner_scan(struct procinfo *pi, uid_t uid_hint, const struct want *w, pid_t *ret_pid, int *ret_fd)
{
	int dfd = openat(pi->proc_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
	DIR *d;

	if (dfd < 0)
		return ne_negerrno();
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -ENOMEM;
	}
	pi->stats.full_scans++;
	if (uid_hint == (uid_t)-1) {
		r = owner_pass(pi, d, SCAN_ALL, uid_hint, w, ret_pid, ret_fd);
	} else {
		r = owner_pass(pi, d, SCAN_UID, uid_hint, w, ret_pid, ret_fd);
		if (r == -ENOENT)
			r = owner_pass(pi, d, SCAN_NOT_UID, uid_hint, w, ret_pid, ret_fd);
	}
	closedir(d);
	return r;
}

/* The open /proc/PID directory of the process holding the socket, and its pid. */
static int find_owner(struct procinfo *pi, uint64_t inode, uid_t uid_hint, pid_t *ret_pid)
{
	struct want w;
	int piddir, fd = -1;
	pid_t pid = 0;

	w.len = (size_t)snprintf(w.link, sizeof(w.link), "socket:[%" PRIu64 "]", inode);
	piddir = owner_cached(pi, inode, &w, &pid);
	if (piddir >= 0) {
		pi->stats.inode_hits++;
		mru_touch(pi, pid);
		*ret_pid = pid;
		return piddir;
	}
	piddir = owner_mru(pi, &w, &pid, &fd);
	if (piddir >= 0)
		pi->stats.fast_hits++;
	else
		piddir = owner_scan(pi, uid_hint, &w, &pid, &fd);
	if (piddir < 0)
		return piddir;
	mru_touch(pi, pid);
	ino_put(pi, inode, pid, fd);
	*ret_pid = pid;
	return piddir;
}

int procinfo_process_by_inode(struct procinfo *pi, uint64_t inode, uid_t uid_hint, struct pi_process *ret)
{
	pid_t pid = 0;
	int piddir, r;

	piddir = inode ? find_owner(pi, inode, uid_hint, &pid) : -ENOENT;
	r = piddir;
	if (piddir >= 0) {
		r = process_at(pi, piddir, pid, ret);
		close(piddir);
	}
	if (r == 0)
		pi->stats.pid_found++;
	else if (r == -ENOENT)
		pi->stats.pid_missing++;
	return r;
}

int procinfo_lookup(struct procinfo *pi, const struct pi_tuple *t, bool inbound, struct pi_socket *ret_sock,
		    struct pi_process *ret_proc)
{
	int r = procinfo_socket(pi, t, inbound, ret_sock);

	if (r < 0)
		return r;
	return procinfo_process_by_inode(pi, ret_sock->inode, ret_sock->uid, ret_proc);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int procinfo_new(struct procinfo **ret)
{
	struct procinfo *pi = calloc(1, sizeof(*pi));
	size_t i;
	int err;

	if (!pi)
		return -ENOMEM;
	pi->proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pi->proc_fd < 0) {
		err = ne_negerrno();
		goto fail;
	}
	pi->nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	if (!pi->nl || mnl_socket_bind(pi->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = ne_negerrno();
		goto fail;
	}
	pi->portid = mnl_socket_get_portid(pi->nl);
	pi->seq = (uint32_t)ne_now_usec();
	for (i = 0; i < PI_INO_MAX; i++)
		pi->ino_head[i] = -1;
	*ret = pi;
	return 0;
fail:
	procinfo_free(pi);
	return err;
}

void procinfo_free(struct procinfo *pi)
{
	if (!pi)
		return;
	if (pi->nl)
		mnl_socket_close(pi->nl);
	if (pi->proc_fd >= 0)
		close(pi->proc_fd);
	free(pi);
}

void procinfo_get_stats(const struct procinfo *pi, struct procinfo_stats *ret)
{
	*ret = pi->stats;
}
