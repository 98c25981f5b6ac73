/* Logging for the daemon and the control tool (never for libnetext, which does not log).
 * Lines go to stderr; under systemd (JOURNAL_STREAM set) they carry a <N> priority prefix
 * that journald understands. The daemon also keeps the last lines in a ring for
 * `netextctl logs`. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>

void log_init(const char *ident, int verbose);
void log_set_verbose(int verbose);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* appends strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Logs a line on behalf of a source other than the daemon itself (an extension). */
void log_emit(int prio, const char *source, const char *text);

/* The ring of recent lines. Calls fn for the last `max` entries, oldest first. */
typedef void (*log_ring_fn)(unsigned long long seq, double realtime, int prio, const char *source,
			    const char *text, void *userdata);
void log_ring_foreach(size_t max, log_ring_fn fn, void *userdata);
