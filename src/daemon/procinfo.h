/* Process attribution for flows: which process owns the socket behind a packet.
 *
 * Trust: everything here reads kernel state (NETLINK_SOCK_DIAG, /proc) as root; nothing comes
 * from extensions. A packet's addresses are untrusted only in that they may name no socket.
 *
 * Path: sock_diag exact lookup by 5-tuple (inet_diag_req_v2, no dump) → socket inode, uid and
 * cookie; inode → pid by reading /proc/PID/fd links, trying recently seen owners first (a
 * process that opens many sockets is found in its own fd table) before a full /proc scan;
 * pid → details from /proc/PID/{stat,status,exe,cmdline,cgroup}, cached by (pid, start time),
 * so a reused pid is never mistaken for the process that had it before. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROCINFO_EXE_MAX 512
#define PROCINFO_CMDLINE_MAX 1024
#define PROCINFO_CGROUP_MAX 512

/* A flow's 5-tuple from the local socket's point of view. */
struct pi_tuple {
	int family;      /* AF_INET, AF_INET6 */
	uint8_t proto;   /* IPPROTO_TCP, IPPROTO_UDP */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} local, remote;
	uint16_t local_port, remote_port; /* host byte order */
	int ifindex; /* interface the packet came in on or goes out of; 0 when unknown. Only
		      * sockets bound to a device (SO_BINDTODEVICE, VRF) need it to be found. */
};

/* What sock_diag says about the socket. */
struct pi_socket {
	uint64_t inode;
	uint64_t cookie;
	uint32_t uid;
	uint8_t state; /* <netinet/tcp.h> TCP_ESTABLISHED, TCP_SYN_SENT, TCP_LISTEN…; UDP: TCP_CLOSE
			* when unconnected, TCP_ESTABLISHED when connected */
	bool listener; /* found as the listening socket of an inbound connection */
};

/* A process; strings are NUL-terminated and cut to their buffers (cmdline: arguments joined
 * by single spaces). They are the process's own data: control characters are replaced by '?',
 * other bytes are kept and need not be UTF-8. */
struct pi_process {
	pid_t pid;
	pid_t ppid;
	uid_t uid; /* real uid */
	gid_t gid; /* real gid */
	uint64_t start_time; /* /proc/PID/stat field 22, clock ticks after boot */
	char exe[PROCINFO_EXE_MAX];         /* readlink /proc/PID/exe; "" when unreadable */
	char cmdline[PROCINFO_CMDLINE_MAX];
	char cgroup[PROCINFO_CGROUP_MAX];   /* the "0::" line: cgroup2 path starting with '/' */
};

struct procinfo_stats {
	uint64_t lookups, sock_found, sock_missing, pid_found, pid_missing;
	uint64_t inode_hits;  /* inode → pid served from the inode cache (verified by one readlink) */
	uint64_t fast_hits;   /* inode found among recently seen owners */
	uint64_t full_scans;  /* whole /proc scans */
	uint64_t cache_hits;  /* process details served from the cache */
};

struct procinfo;

int procinfo_new(struct procinfo **ret);
void procinfo_free(struct procinfo *pi);

/* Finds the socket for t. For TCP an exact lookup first; if that finds nothing and
 * `inbound` is set, the listening socket on t->local (address, then wildcard) is returned
 * with listener = true (an inbound SYN has no socket yet). A connection still in the
 * listener's SYN queue (SYN_RECV) is also reported as its listener, and so is a TIME_WAIT
 * socket met by an inbound lookup (a new SYN on an old tuple). UDP lookups match
 * unconnected sockets bound to the local port as the kernel's own demux does. -ENOENT when
 * there is no socket (the process has closed it already; TIME_WAIT and orphaned sockets
 * belong to no process). */
int procinfo_socket(struct procinfo *pi, const struct pi_tuple *t, bool inbound, struct pi_socket *ret);

/* The process holding socket inode `inode`, with its details. `uid_hint` (or (uid_t)-1)
 * orders the /proc scan: processes of that uid first, then the others (a socket's uid is its
 * creator's at creation time; a daemon that dropped privileges or received the socket over
 * a Unix socket holds it under another uid). -ENOENT when no process holds it. A socket
 * shared by several processes (inherited over fork) is attributed to one of them. */
int procinfo_process_by_inode(struct procinfo *pi, uint64_t inode, uid_t uid_hint, struct pi_process *ret);

/* Details of pid (cached by pid and start time, checked on every call; after an execve that
 * keeps the name, exe and cmdline may be up to two seconds old). -ENOENT when it has exited. */
int procinfo_process(struct procinfo *pi, pid_t pid, struct pi_process *ret);

/* procinfo_socket + procinfo_process_by_inode. On -ENOENT from the second step, ret_sock is
 * still filled (the uid is known even when the process is not). */
int procinfo_lookup(struct procinfo *pi, const struct pi_tuple *t, bool inbound, struct pi_socket *ret_sock,
		    struct pi_process *ret_proc);

void procinfo_get_stats(const struct procinfo *pi, struct procinfo_stats *ret);
