/* cgroup v2 helpers for confining extension processes. The cgroup2 mount point is found in
 * /proc/self/mountinfo (hybrid layouts mount it at /sys/fs/cgroup/unified); `rel` arguments
 * are paths relative to that mount, without "." or ".." components. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Copies the mount point of the first "cgroup2" file system listed in mountinfo `text` into
 * ret, with octal escapes (\040 …) decoded. -ENOENT when there is none, -ENAMETOOLONG when it
 * does not fit. */
int cgroup_parse_mountinfo(const char *text, char *ret, size_t size);
/* The same for /proc/self/mountinfo. */
int cgroup_find_mount(char *ret, size_t size);
/* The "0::/path" line of /proc/self/cgroup: our own cgroup2 path, starting with '/'. */
int cgroup_self_path(char *ret, size_t size);

/* mkdir -p mount/rel with mode 0755; 0 when it already exists. */
int cgroup_create(const char *mount, const char *rel);
/* Kills every process in mount/rel and its descendants (cgroup.kill when the kernel has it,
 * SIGKILL to each listed pid otherwise), waits a bounded time for them to leave, then removes
 * the directories depth-first. 0 when the cgroup does not exist; -EBUSY when processes did not
 * leave in time. Refuses the root of the hierarchy (-EINVAL). */
int cgroup_remove(const char *mount, const char *rel);
/* An O_WRONLY|O_CLOEXEC fd on mount/rel/cgroup.procs; a child writes "0" to it to join. */
int cgroup_open_procs(const char *mount, const char *rel);
/* The pids in mount/rel/cgroup.procs (not its descendants). -ENOBUFS when more than max; on
 * failure ret_n is untouched but ret may hold a partial list. */
int cgroup_pids(const char *mount, const char *rel, pid_t *ret, size_t max, size_t *ret_n);

/* nftables matches on a cgroup (`socket cgroupv2 level N <inode>`), for the datapath. */
struct daemon;
struct dp_match;
/* The match for mount/rel: its level (path components below the root) and its directory's
 * inode, which is the cgroup id the kernel compares. -ENOENT for the root (rel "" or "/"). */
int cgroup_match(const char *mount, const char *rel, struct dp_match *ret);
/* The cgroup every extension runs below (d->cgroup_base): their traffic is not filtered or
 * proxied by netextd. -ENOENT when extensions have no cgroup of their own. */
int cgroup_exempt_match(struct daemon *d, struct dp_match *ret);
