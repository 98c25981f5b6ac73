/* Private to libnetext: shared between extension.c, options.c and harness.c. Nothing here
 * is exported (see libnetext.map). */
#pragma once

#include <netext/netext.h>

#include "wire.h"

/* Copies the options of a START into NUL-terminated strings owned by the returned object.
 * Returns 0 or -ENOMEM. */
int nelib_options_new(const struct ne_msg_start *m, ne_options **ret_options);
void nelib_options_free(ne_options *options);

/* Copies at most max bytes of s into dst (capacity max + 1), replacing the control
 * characters the wire refuses in strings by spaces, and NUL-terminates. Returns the
 * length written. */
size_t nelib_sanitize(char *dst, const char *s, size_t max);

/* Milliseconds left until deadline_usec (monotonic), at least 0, at most cap_ms. */
int nelib_ms_left(unsigned long long deadline_usec, int cap_ms);
