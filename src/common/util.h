/* Small helpers shared by every netext process. No state, no I/O. */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NE_MAX(a, b) ((a) > (b) ? (a) : (b))
#define NE_UNUSED __attribute__((unused))

static inline void ne_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
		*fd = -1;
	}
}

static inline void ne_freep(void *p)
{
	free(*(void **)p);
}

#define _cleanup_close_ __attribute__((cleanup(ne_closep)))
#define _cleanup_free_ __attribute__((cleanup(ne_freep)))

/* Returns -errno of the last failed libc call, never 0. */
static inline int ne_negerrno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* Monotonic clock in microseconds. */
unsigned long long ne_now_usec(void);

/* strlcpy-like: copies at most size-1 bytes, always terminates. Returns -ENAMETOOLONG on truncation. */
int ne_strscpy(char *dst, const char *src, size_t size);

/* True when s is 1..max bytes of [A-Za-z0-9._-], starting with an alphanumeric. Used for
 * extension identifiers and configuration names, which end up in paths and cgroup names. */
int ne_name_valid(const char *s, size_t max);
