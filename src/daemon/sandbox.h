/* Spawning extension processes confined: own non-root uid/gid, no supplementary groups, no
 * capabilities (bounding and ambient sets cleared), PR_SET_NO_NEW_PRIVS, a seccomp allow-list,
 * their own session, killed when the daemon dies, placed in a cgroup before exec. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct sandbox_spec {
	const char *executable;     /* path for execve, and for messages when exec_fd is used */
	char *const *argv;          /* NULL: { executable, NULL } */
	char *const *envp;          /* the whole environment; NULL: empty */
	uid_t uid;                  /* never 0 */
	gid_t gid;                  /* never 0 */
	int channel_fd;             /* placed at fd 3; -1: none */
	int stdout_fd, stderr_fd;   /* -1: /dev/null */
	int cgroup_procs_fd;        /* from cgroup_open_procs(); -1: stay in the daemon's cgroup */
	bool seccomp;               /* load the sandbox_seccomp policy before exec */
	bool allow_inet;            /* with seccomp: socket() may also make AF_INET and AF_INET6
	                             * sockets (the manifest permission "network"); false: only
	                             * AF_UNIX, others fail with EPERM. Zero-initialised specs
	                             * get no network. */
	const char *cwd;            /* NULL: stay in the daemon's directory; else chdir there as
	                             * the extension's uid, after dropping privileges (so uid must
	                             * be able to reach it). Failure fails the spawn. */
	int exec_fd;                /* -1, or an fd of the executable opened by the parent: then
	                             * execveat(AT_EMPTY_PATH) is used and the uid needs no access to
	                             * the path. It is close-on-exec in the child, so it must be an ELF
	                             * binary, not a #! script. */
};

/* Forks and execs s->executable confined as above. On success writes the child's pid and a
 * pidfd (O_CLOEXEC; either pointer may be NULL) and returns 0 once exec has succeeded. On
 * failure returns a negative errno, reaps the child if one was forked, and writes a message
 * such as "setresuid: Operation not permitted" into err (may be NULL). uid or gid 0 is refused
 * with -EPERM before forking. The child dies with SIGKILL when the thread that called this
 * exits (PR_SET_PDEATHSIG is per thread): call it from the daemon's main thread. */
int sandbox_spawn(const struct sandbox_spec *s, pid_t *ret_pid, int *ret_pidfd, char *err,
		  size_t errlen);

/* Loads the extension seccomp allow-list into the calling process (irrevocably). Sets
 * PR_SET_NO_NEW_PRIVS, which an unprivileged process needs to load a filter.
 * sandbox_seccomp_load() is sandbox_seccomp_load_ex(true): inet sockets allowed. */
int sandbox_seccomp_load(void);
int sandbox_seccomp_load_ex(bool allow_inet);

/* "name" (looked up with getpwnam_r: its uid and primary gid) or "uid:gid". -EPERM for root
 * (uid 0 or gid 0), -ENOENT for an unknown name, -EINVAL for malformed numbers. */
int sandbox_resolve_user(const char *spec, uid_t *ret_uid, gid_t *ret_gid);
