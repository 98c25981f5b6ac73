#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_RING_SIZE 512
#define LOG_LINE_MAX 1024
#define LOG_SOURCE_MAX 64

struct log_entry {
	unsigned long long seq;
	double realtime;
	int prio;
	char source[LOG_SOURCE_MAX];
	char text[LOG_LINE_MAX];
};

static const char *log_ident = "netext";
static int log_verbose;
static int log_journal;
static struct log_entry log_ring[LOG_RING_SIZE];
static unsigned long long log_seq;

void log_init(const char *ident, int verbose)
{
	log_ident = ident;
	log_verbose = verbose;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_verbose(int verbose)
{
	log_verbose = verbose;
}

static const char *prio_name(int prio)
{
	switch (prio) {
	case LOG_CRIT: return "fatal";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

void log_emit(int prio, const char *source, const char *text)
{
	struct log_entry *e;
	struct timespec ts;

	if (prio >= LOG_DEBUG && !log_verbose)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	e = &log_ring[log_seq % LOG_RING_SIZE];
	e->seq = ++log_seq;
	e->realtime = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	e->prio = prio;
	snprintf(e->source, sizeof(e->source), "%s", source);
	snprintf(e->text, sizeof(e->text), "%s", text);

	if (log_journal)
		fprintf(stderr, "<%d>%s: %s\n", prio, source, text);
	else if (strcmp(source, log_ident) == 0)
		fprintf(stderr, "%s[%s]: %s\n", log_ident, prio_name(prio), text);
	else
		fprintf(stderr, "%s[%s] %s: %s\n", log_ident, prio_name(prio), source, text);
}

static void vlog(int prio, int with_errno, const char *fmt, va_list ap)
{
	char buf[LOG_LINE_MAX];
	int saved = errno;
	int n;

	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (with_errno && n >= 0 && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(saved));
	log_emit(prio, log_ident, buf);
	errno = saved;
}

#define LOG_FN(name, prio, with_errno)          \
	void name(const char *fmt, ...)         \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		vlog(prio, with_errno, fmt, ap); \
		va_end(ap);                     \
	}

LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_warnx, LOG_WARNING, 0)
LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_debug, LOG_DEBUG, 0)

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_ring_foreach(size_t max, log_ring_fn fn, void *userdata)
{
	unsigned long long first, s;

	if (max > LOG_RING_SIZE)
		max = LOG_RING_SIZE;
	first = log_seq > max ? log_seq - max + 1 : 1;
	if (log_seq >= LOG_RING_SIZE && first <= log_seq - LOG_RING_SIZE)
		first = log_seq - LOG_RING_SIZE + 1;
	for (s = first; s <= log_seq && s > 0; s++) {
		const struct log_entry *e = &log_ring[(s - 1) % LOG_RING_SIZE];

		fn(e->seq, e->realtime, e->prio, e->source, e->text, userdata);
	}
}
