/* netext-hello: the example extension. Copy this file to start your own.
 *
 * It hosts NE_PROVIDER_MESSAGE providers (lifecycle and app messages, no traffic) and
 * shows the "own loop" mode of libnetext: main() polls the library's fd next to a timerfd
 * of its own, and a start completes from that timer, the way a real provider completes
 * once its resources are ready. Callbacks never block; they finish their work later from
 * the loop when they cannot finish it at once.
 *
 * Options:   greeting=<text>   (default "hello")
 *            allow-faults=1    honour "crash" and "hang" (for supervision demos and tests)
 * Messages:  ping     -> pong
 *            whoami   -> uid=.. gid=.. nnp=.. caps=<CapEff> cgroup=<line>  (proves the sandbox)
 *            crash    -> abort()            (with allow-faults=1, else -EPERM)
 *            hang     -> stops answering   (with allow-faults=1, else -EPERM)
 *            other    -> "<greeting>, <message>" */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <netext/extension.h>

#define START_DELAY_MS 100

struct hello_provider {
	struct hello_provider *next;
	ne_provider *provider;
	char greeting[256];
	bool allow_faults;
	bool start_pending; /* completed by the timer */
};

struct hello {
	ne_extension *ext;
	int timer;
	struct hello_provider *providers;
};

static void arm_timer(struct hello *h)
{
	struct itimerspec its = { .it_value = { 0, START_DELAY_MS * 1000000L } };

	timerfd_settime(h->timer, 0, &its, NULL);
}

static void forget(struct hello *h, struct hello_provider *hp)
{
	struct hello_provider **pp;

	for (pp = &h->providers; *pp; pp = &(*pp)->next)
		if (*pp == hp) {
			*pp = hp->next;
			break;
		}
	free(hp);
}

static void hello_start(ne_provider *provider, const ne_options *options, void *userdata)
{
	struct hello *h = userdata;
	const char *greeting = ne_options_get(options, "greeting");
	const char *faults = ne_options_get(options, "allow-faults");
	struct hello_provider *hp = calloc(1, sizeof(*hp));

	if (!hp) {
		ne_provider_start_done(provider, -ENOMEM, "out of memory");
		return;
	}
	snprintf(hp->greeting, sizeof(hp->greeting), "%s", greeting ? greeting : "hello");
	hp->allow_faults = faults && strcmp(faults, "1") == 0;
	hp->provider = provider;
	hp->start_pending = true;
	hp->next = h->providers;
	h->providers = hp;
	ne_provider_set_context(provider, hp);
	ne_extension_log(h->ext, NE_LOG_INFO, "%s: starting, greeting \"%s\"%s",
			 ne_provider_configuration(provider), hp->greeting,
			 hp->allow_faults ? ", faults allowed" : "");
	/* Finish later, from main's loop: as if we were waiting for a resource. */
	arm_timer(h);
}

static void on_timer(struct hello *h)
{
	struct hello_provider *hp;
	uint64_t ticks;

	if (read(h->timer, &ticks, sizeof(ticks)) < 0)
		return;
	for (hp = h->providers; hp; hp = hp->next) {
		if (!hp->start_pending)
			continue;
		hp->start_pending = false;
		ne_provider_start_done(hp->provider, 0, NULL);
		ne_extension_log(h->ext, NE_LOG_INFO, "%s: started",
				 ne_provider_configuration(hp->provider));
	}
}

static void hello_stop(ne_provider *provider, ne_stop_reason reason, void *userdata)
{
	struct hello *h = userdata;
	const char *name = ne_stop_reason_name(reason);

	ne_extension_log(h->ext, NE_LOG_INFO, "%s: stopping (%s)",
			 ne_provider_configuration(provider), name ? name : "unknown reason");
	forget(h, ne_provider_get_context(provider));
	/* A start still pending is cancelled by the library. */
	ne_provider_stop_done(provider);
}

/* The value of the "CapEff:" line of /proc/self/status, or "?". */
static void read_capeff(char *buf, size_t size)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];

	snprintf(buf, size, "?");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %63s", buf) == 1)
			break;
	if (f)
		fclose(f);
}

/* The cgroup v2 line of /proc/self/cgroup ("0::/path"), or "?". On hybrid hosts the v1
 * hierarchies come first, so look for the unified one. */
static void read_cgroup(char *buf, size_t size)
{
	FILE *f = fopen("/proc/self/cgroup", "re");

	snprintf(buf, size, "?");
	while (f && fgets(buf, (int)size, f))
		if (strncmp(buf, "0::", 3) == 0)
			break;
	buf[strcspn(buf, "\n")] = '\0';
	if (f)
		fclose(f);
}

static void reply_whoami(ne_message *message)
{
	char caps[64], cgroup[512], out[768];
	int n;

	read_capeff(caps, sizeof(caps));
	read_cgroup(cgroup, sizeof(cgroup));
	n = snprintf(out, sizeof(out), "uid=%u gid=%u nnp=%d caps=%s cgroup=%s",
		     (unsigned)getuid(), (unsigned)getgid(),
		     prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), caps, cgroup);
	ne_message_reply(message, 0, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
}

static bool is(const void *data, size_t len, const char *word)
{
	return len == strlen(word) && memcmp(data, word, len) == 0;
}

/* "crash" and "hang" misbehave on purpose, so that netextd's supervision can be shown
 * and tested: it restarts a crashed extension and kills a hung one. */
static void misbehave(const struct hello_provider *hp, ne_message *message, bool crash)
{
	if (!hp->allow_faults) {
		ne_message_reply(message, -EPERM, NULL, 0);
		return;
	}
	if (crash)
		abort();
	for (;;)
		sleep(3600);
}

static void hello_app_message(ne_provider *provider, ne_message *message, const void *data,
			      size_t len, void *userdata)
{
	const struct hello_provider *hp = ne_provider_get_context(provider);
	static char out[NE_MESSAGE_MAX];
	int n;

	if (is(data, len, "ping")) {
		ne_message_reply(message, 0, "pong", 4);
	} else if (is(data, len, "whoami")) {
		reply_whoami(message);
	} else if (is(data, len, "crash") || is(data, len, "hang")) {
		misbehave(hp, message, is(data, len, "crash"));
	} else {
		n = snprintf(out, sizeof(out), "%s, %.*s", hp->greeting, (int)len, (const char *)data);
		ne_message_reply(message, 0, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
	}
	(void)userdata;
}

static const struct ne_provider_ops hello_ops = {
	.size = sizeof(hello_ops),
	.start = hello_start,
	.stop = hello_stop,
	.app_message = hello_app_message,
};

/* The extension's own loop: libnetext's fd and our timer. Returns 0 when netextd closes
 * the channel, or a negative errno. */
static int run(struct hello *h)
{
	struct pollfd p[2] = {
		{ .fd = ne_extension_fd(h->ext), .events = POLLIN },
		{ .fd = h->timer, .events = POLLIN },
	};
	int r;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents & POLLIN)
			on_timer(h);
		if (p[0].revents) {
			r = ne_extension_dispatch(h->ext);
			if (r != 0)
				return r == 1 ? 0 : r;
		}
	}
}

int main(void)
{
	struct hello h = { .timer = -1 };
	int r;

	r = ne_extension_new(&h.ext);
	if (r < 0)
		goto out;
	r = ne_extension_register(h.ext, NE_PROVIDER_MESSAGE, &hello_ops, &h);
	if (r < 0)
		goto out;
	h.timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (h.timer < 0) {
		r = -errno;
		goto out;
	}
	r = ne_extension_connect(h.ext);
	if (r < 0)
		goto out;
	r = run(&h);
out:
	if (r < 0)
		fprintf(stderr, "netext-hello: %s%s\n", strerror(-r),
			r == -ENOTCONN ? " (not started by netextd)" : "");
	while (h.providers)
		forget(&h, h.providers);
	ne_extension_free(h.ext);
	if (h.timer >= 0)
		close(h.timer);
	return r < 0 ? 1 : 0;
}
