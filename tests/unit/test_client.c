/* libnetext's app side (<netext/system.h>) against a fake netextd: a thread serving a Unix
 * socket in a private directory, which records every request line (and the fds that came
 * with it) and answers from a script, one handler per test. The thread never asserts
 * (cmocka's checks belong to the main thread): tests look at what it recorded after
 * joining it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include <netext/system.h>

#define MAX_REQUESTS 64
#define WAIT_MS 5000

/* --- the fake daemon ---------------------------------------------------------------- */

struct fake;
typedef void (*fake_handler)(struct fake *f, json_t *req, long long id, const char *method);

struct fake {
	char dir[64], path[128], bundle[160];
	int lfd, cfd;
	pthread_t thread;
	fake_handler handler;
	bool hang_up;                 /* set by a handler: close the connection now */
	long long activate_id;        /* the id of the last activation (for later replies) */
	int step;                     /* the handler's own counter */
	json_t *requests;             /* every request line, in order */
	int nfds[MAX_REQUESTS];       /* fds that came with each */
	bool fd_is_bundle[MAX_REQUESTS];
};

static void fake_send_raw(struct fake *f, const char *s, size_t len)
{
	while (len) {
		ssize_t n = send(f->cfd, s, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void fake_send(struct fake *f, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);

	fake_send_raw(f, s, strlen(s));
	fake_send_raw(f, "\n", 1);
	free(s);
	json_decref(msg);
}

static void fake_ok(struct fake *f, long long id, json_t *result)
{
	fake_send(f, json_pack("{s:I, s:b, s:o}", "id", (json_int_t)id, "ok", 1, "result",
			       result ? result : json_object()));
}

static void fake_error(struct fake *f, long long id, const char *code, const char *message)
{
	fake_send(f, json_pack("{s:I, s:b, s:{s:s, s:s}}", "id", (json_int_t)id, "ok", 0, "error",
			       "code", code, "message", message));
}

static void fake_event(struct fake *f, long long id, const char *event, json_t *data)
{
	fake_send(f, json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "event", event, "data",
			       data));
}

static bool fd_is_dir(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && S_ISDIR(a.st_mode) &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Handles one request line with the fds that came with it. */
static void fake_line(struct fake *f, const char *line, size_t len, int *fds, int nfds)
{
	json_t *req = json_loadb(line, len, 0, NULL);
	size_t i = json_array_size(f->requests);
	int k;

	if (i < MAX_REQUESTS) {
		f->nfds[i] = nfds;
		f->fd_is_bundle[i] = nfds == 1 && fd_is_dir(fds[0], f->bundle);
	}
	for (k = 0; k < nfds; k++)
		close(fds[k]);
	if (!req)
		req = json_pack("{s:s}", "garbage", "yes");
	json_array_append(f->requests, req);
	f->handler(f, req, json_integer_value(json_object_get(req, "id")),
		   json_string_value(json_object_get(req, "method")) ?: "");
	json_decref(req);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	static char buf[1 << 16];
	size_t len = 0;
	int fds[8], nfds = 0;

	f->cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	while (f->cfd >= 0 && !f->hang_up) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { buf + len, sizeof(buf) - len };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		struct cmsghdr *cm;
		ssize_t n = recvmsg(f->cfd, &mh, MSG_CMSG_CLOEXEC);
		char *nl;

		if (n <= 0)
			break;
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k, m = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (k = 0; k < m && nfds < 8; k++)
				memcpy(&fds[nfds++], CMSG_DATA(cm) + k * sizeof(int), sizeof(int));
		}
		len += (size_t)n;
		while (!f->hang_up && (nl = memchr(buf, '\n', len))) {
			size_t l = (size_t)(nl - buf);

			fake_line(f, buf, l, fds, nfds);
			nfds = 0;
			memmove(buf, nl + 1, len - l - 1);
			len -= l + 1;
		}
	}
	if (f->cfd >= 0)
		close(f->cfd);
	return NULL;
}

static struct fake *fake_start(fake_handler handler)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	assert_non_null(f);
	strcpy(f->dir, "/tmp/netext-client-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/netextd.sock", f->dir);
	snprintf(f->bundle, sizeof(f->bundle), "%s/hello.netext", f->dir);
	assert_int_equal(mkdir(f->bundle, 0755), 0);
	strcpy(sa.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->handler = handler;
	f->requests = json_array();
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	return f;
}

/* Joins the thread (the client must have been freed or have lost the connection). */
static void fake_join(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

static void fake_free(struct fake *f)
{
	unlink(f->path);
	rmdir(f->bundle);
	rmdir(f->dir);
	json_decref(f->requests);
	free(f);
}

static json_t *fake_request(struct fake *f, size_t i)
{
	return json_array_get(f->requests, i);
}

static const char *fake_method(struct fake *f, size_t i)
{
	return json_string_value(json_object_get(fake_request(f, i), "method")) ?: "";
}

static json_t *fake_param(struct fake *f, size_t i, const char *key)
{
	return json_object_get(json_object_get(fake_request(f, i), "params"), key);
}

/* --- a recording delegate ---------------------------------------------------------- */

#define MAX_PROPS 8

struct rec {
	int finished, failed, needs_approval, will_complete_later, replace, properties;
	ne_sysext_result result;
	ne_sysext_error error;
	char message[256], detail[128], identifier[128];
	uint32_t final_version;        /* ne_sysext_request_properties at finished */
	char final_short[32], final_team[33];
	uint64_t request_id;           /* ne_sysext_request_id at needs-approval / replace */
	ne_sysext_replace_action answer;
	uint32_t old_version, new_version;
	char old_short[32], new_short[32];
	size_t n;
	char p_identifier[MAX_PROPS][64], p_state[MAX_PROPS][32], p_short[MAX_PROPS][32];
	uint32_t p_version[MAX_PROPS];
	int p_enabled[MAX_PROPS], p_awaiting[MAX_PROPS], p_uninstalling[MAX_PROPS];
	ne_client *relist;             /* if set, finished starts a list on this client */
	struct rec *relist_rec;
};

static ne_sysext_replace_action r_replace(ne_sysext_request *r, const ne_sysext_properties *old,
					  const ne_sysext_properties *new, void *userdata)
{
	struct rec *x = userdata;

	x->replace++;
	x->request_id = ne_sysext_request_id(r);
	x->old_version = old->version;
	x->new_version = new->version;
	snprintf(x->old_short, sizeof(x->old_short), "%s", old->short_version);
	snprintf(x->new_short, sizeof(x->new_short), "%s", new->short_version);
	return x->answer;
}

static void r_needs_approval(ne_sysext_request *r, void *userdata)
{
	struct rec *x = userdata;

	x->needs_approval++;
	x->request_id = ne_sysext_request_id(r);
}

static void r_will_complete_later(ne_sysext_request *r, const char *detail, void *userdata)
{
	struct rec *x = userdata;

	x->will_complete_later++;
	snprintf(x->detail, sizeof(x->detail), "%s", detail);
}

static const ne_sysext_delegate delegate;

static void r_finished(ne_sysext_request *r, ne_sysext_result result, void *userdata)
{
	struct rec *x = userdata;

	x->finished++;
	x->result = result;
	snprintf(x->identifier, sizeof(x->identifier), "%s", ne_sysext_request_identifier(r));
	if (ne_sysext_request_properties(r)) {
		const ne_sysext_properties *p = ne_sysext_request_properties(r);

		x->final_version = p->version;
		snprintf(x->final_short, sizeof(x->final_short), "%s", p->short_version);
		snprintf(x->final_team, sizeof(x->final_team), "%s", p->team);
	}
	if (x->relist)
		assert_int_equal(ne_sysext_list(x->relist, &delegate, x->relist_rec, NULL), 0);
}

static void r_failed(ne_sysext_request *r, ne_sysext_error error, const char *message,
		     void *userdata)
{
	struct rec *x = userdata;

	x->failed++;
	x->error = error;
	snprintf(x->message, sizeof(x->message), "%s", message);
}

static void r_properties(ne_sysext_request *r, const ne_sysext_properties *p, size_t n,
			 void *userdata)
{
	struct rec *x = userdata;
	size_t i;

	x->properties++;
	x->n = n;
	for (i = 0; i < n && i < MAX_PROPS; i++) {
		snprintf(x->p_identifier[i], sizeof(x->p_identifier[i]), "%s", p[i].identifier);
		snprintf(x->p_state[i], sizeof(x->p_state[i]), "%s", p[i].state);
		snprintf(x->p_short[i], sizeof(x->p_short[i]), "%s", p[i].short_version);
		x->p_version[i] = p[i].version;
		x->p_enabled[i] = p[i].enabled;
		x->p_awaiting[i] = p[i].awaiting_approval;
		x->p_uninstalling[i] = p[i].uninstalling;
	}
}

static const ne_sysext_delegate delegate = {
	.size = sizeof(delegate), .replace = r_replace, .needs_approval = r_needs_approval,
	.will_complete_later = r_will_complete_later, .finished = r_finished, .failed = r_failed,
	.properties = r_properties,
};

static ne_client *connect_to(struct fake *f)
{
	ne_client *c = NULL;

	assert_int_equal(ne_client_new(f->path, &c), 0);
	assert_true(ne_client_fd(c) >= 0);
	return c;
}

/* Waits for every request, then closes the client and stops the fake. */
static void finish(struct fake *f, ne_client *c)
{
	assert_int_equal(ne_client_wait(c, WAIT_MS), 0);
	ne_client_free(c);
	fake_join(f);
}

static json_t *props_json(int version, const char *short_version)
{
	return json_pack("{s:s, s:i, s:s, s:s}", "identifier", "com.example.hello", "version",
			 version, "short_version", short_version, "team", "EXAMPLE123");
}

static json_t *activation_result(const char *result)
{
	json_t *r = props_json(3, "1.2.0");

	json_object_set_new(r, "result", json_string(result));
	json_object_set_new(r, "request", json_integer(42));
	json_object_set_new(r, "detail", json_string("done"));
	return r;
}

/* Checks the activation request line i: method, params and the one fd. */
static void check_activate(struct fake *f, size_t i)
{
	char real[PATH_MAX];

	assert_string_equal(fake_method(f, i), "extension.activate");
	assert_non_null(realpath(f->bundle, real));
	assert_string_equal(json_string_value(fake_param(f, i, "source")), real);
	assert_string_equal(json_string_value(fake_param(f, i, "replace")), "ask");
	assert_true(json_is_true(fake_param(f, i, "wait")));
	assert_int_equal(f->nfds[i], 1);
	assert_true(f->fd_is_bundle[i]);
}

/* --- activation -------------------------------------------------------------------- */

static void h_completed(struct fake *f, json_t *req, long long id, const char *method)
{
	fake_ok(f, id, activation_result("completed"));
}

static void test_activate_completed(void **state)
{
	struct fake *f = fake_start(h_completed);
	ne_client *c = connect_to(f);
	ne_sysext_request *r = NULL;
	struct rec x = { 0 };

	assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x, &r), 0);
	assert_non_null(r);
	assert_string_equal(ne_sysext_request_identifier(r), "");
	assert_int_equal(ne_sysext_request_id(r), 0);
	assert_null(ne_sysext_request_properties(r));
	finish(f, c);
	assert_int_equal(x.final_version, 3);
	assert_string_equal(x.final_short, "1.2.0");
	assert_string_equal(x.final_team, "EXAMPLE123");
	assert_int_equal(x.finished, 1);
	assert_int_equal(x.failed + x.needs_approval + x.replace + x.will_complete_later, 0);
	assert_int_equal(x.result, NE_SYSEXT_COMPLETED);
	assert_string_equal(x.identifier, "com.example.hello");
	assert_int_equal(json_array_size(f->requests), 1);
	check_activate(f, 0);
	fake_free(f);
}

static void h_needs_approval(struct fake *f, json_t *req, long long id, const char *method)
{
	json_t *data = props_json(3, "1.2.0");

	json_object_set_new(data, "request", json_integer(7));
	fake_event(f, id, "needs-approval", data);
	fake_ok(f, id, activation_result("completed"));
}

static void test_activate_needs_approval(void **state)
{
	struct fake *f = fake_start(h_needs_approval);
	ne_client *c = connect_to(f);
	struct rec x = { 0 };

	assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x, NULL), 0);
	finish(f, c);
	assert_int_equal(x.needs_approval, 1);
	assert_int_equal(x.request_id, 7);
	assert_int_equal(x.finished, 1);
	assert_int_equal(x.result, NE_SYSEXT_COMPLETED);
	check_activate(f, 0);
	fake_free(f);
}

/* Asks; then completes or cancels as decided. step 1: a decide error instead. */
static void h_replace(struct fake *f, json_t *req, long long id, const char *method)
{
	json_t *installed = props_json(2, "1.1.0");
	const char *action;

	if (!strcmp(method, "extension.activate") || !strcmp(method, "extension.approve")) {
		f->activate_id = id;
		json_object_set_new(installed, "state", json_string("enabled"));
		fake_event(f, id, "replace-decision",
			   json_pack("{s:i, s:o, s:o}", "request", 9, "installed", installed, "new",
				     props_json(3, "1.2.0")));
		return;
	}
	json_decref(installed);
	if (strcmp(method, "extension.decide"))
		return;
	if (f->step == 1) {
		fake_error(f, id, "request-superseded", "a newer request replaced this one");
		/* The daemon's own reply to the activation comes later and must be ignored. */
		fake_error(f, f->activate_id, "request-superseded", "superseded");
		return;
	}
	fake_ok(f, id, NULL);
	action = json_string_value(fake_param(f, json_array_size(f->requests) - 1, "action"));
	if (action && !strcmp(action, "replace"))
		fake_ok(f, f->activate_id, activation_result("completed"));
	else
		fake_error(f, f->activate_id, "request-cancelled", "the requester chose cancel");
}

static void run_replace(ne_sysext_replace_action answer, const ne_sysext_delegate *d,
			const char *want_action)
{
	struct fake *f = fake_start(h_replace);
	ne_client *c = connect_to(f);
	struct rec x = { .answer = answer };

	assert_int_equal(ne_sysext_activate(c, f->bundle, d, &x, NULL), 0);
	finish(f, c);
	assert_int_equal(json_array_size(f->requests), 2);
	check_activate(f, 0);
	assert_string_equal(fake_method(f, 1), "extension.decide");
	assert_int_equal(json_integer_value(fake_param(f, 1, "request")), 9);
	assert_string_equal(json_string_value(fake_param(f, 1, "action")), want_action);
	assert_int_equal(f->nfds[1], 0);
	if (d->replace) {
		assert_int_equal(x.replace, 1);
		assert_int_equal(x.request_id, 9);
		assert_int_equal(x.old_version, 2);
		assert_int_equal(x.new_version, 3);
		assert_string_equal(x.old_short, "1.1.0");
		assert_string_equal(x.new_short, "1.2.0");
	}
	if (!strcmp(want_action, "replace")) {
		assert_int_equal(x.finished, 1);
		assert_int_equal(x.failed, 0);
	} else {
		assert_int_equal(x.finished, 0);
		assert_int_equal(x.failed, 1);
		assert_int_equal(x.error, NE_SYSEXT_ERROR_REQUEST_CANCELLED);
		assert_string_equal(x.message, "the requester chose cancel");
	}
	fake_free(f);
}

static void test_activate_replace(void **state)
{
	run_replace(NE_SYSEXT_REPLACE, &delegate, "replace");
}

static void test_activate_replace_cancel(void **state)
{
	run_replace(NE_SYSEXT_REPLACE_CANCEL, &delegate, "cancel");
}

static void test_activate_replace_null_callback(void **state)
{
	ne_sysext_delegate d = delegate;

	d.replace = NULL;
	run_replace(NE_SYSEXT_REPLACE, &d, "cancel");
}

static void test_activate_decide_error(void **state)
{
	struct fake *f = fake_start(h_replace);
	ne_client *c = connect_to(f);
	struct rec x = { .answer = NE_SYSEXT_REPLACE };

	f->step = 1;
	assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x, NULL), 0);
	finish(f, c);
	assert_int_equal(x.failed, 1);
	assert_int_equal(x.finished, 0);
	assert_int_equal(x.error, NE_SYSEXT_ERROR_REQUEST_SUPERSEDED);
	assert_string_equal(x.message, "a newer request replaced this one");
	fake_free(f);
}

static void test_approve_replace(void **state)
{
	struct fake *f = fake_start(h_replace);
	ne_client *c = connect_to(f);
	struct rec x = { .answer = NE_SYSEXT_REPLACE };

	assert_int_equal(ne_sysext_approve(c, "com.example.hello", &delegate, &x, NULL), 0);
	finish(f, c);
	assert_string_equal(fake_method(f, 0), "extension.approve");
	assert_string_equal(json_string_value(fake_param(f, 0, "identifier")), "com.example.hello");
	assert_true(json_is_true(fake_param(f, 0, "wait")));
	assert_int_equal(f->nfds[0], 0);
	assert_string_equal(json_string_value(fake_param(f, 1, "action")), "replace");
	assert_int_equal(x.replace, 1);
	assert_int_equal(x.finished, 1);
	fake_free(f);
}

/* Also sends lines the client must ignore: an unknown event, a reply to no request. */
static void h_will_complete_later(struct fake *f, json_t *req, long long id, const char *method)
{
	fake_event(f, id, "from-the-future", json_object());
	fake_ok(f, id + 1000, NULL);
	fake_event(f, id, "will-complete-later",
		   json_pack("{s:s}", "detail", "waiting for 1 provider to stop"));
	fake_ok(f, id, activation_result("completed"));
}

static void test_activate_will_complete_later(void **state)
{
	struct fake *f = fake_start(h_will_complete_later);
	ne_client *c = connect_to(f);
	struct rec x = { 0 };

	assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x, NULL), 0);
	finish(f, c);
	assert_int_equal(x.will_complete_later, 1);
	assert_string_equal(x.detail, "waiting for 1 provider to stop");
	assert_int_equal(x.finished, 1);
	assert_int_equal(x.result, NE_SYSEXT_COMPLETED);
	fake_free(f);
}

/* A daemon that did not wait: the final reply says will-complete-later. */
static void h_final_will_complete_later(struct fake *f, json_t *req, long long id,
					const char *method)
{
	fake_ok(f, id, activation_result("will-complete-later"));
}

static void test_activate_final_will_complete_later(void **state)
{
	struct fake *f = fake_start(h_final_will_complete_later);
	ne_client *c = connect_to(f);
	struct rec x = { 0 };

	assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x, NULL), 0);
	finish(f, c);
	assert_int_equal(x.will_complete_later, 1);
	assert_string_equal(x.detail, "done");
	assert_int_equal(x.finished, 1);
	assert_int_equal(x.result, NE_SYSEXT_WILL_COMPLETE_LATER);
	fake_free(f);
}

/* needs-approval as a final reply: the request keeps waiting for the real outcome. */
static void h_final_needs_approval(struct fake *f, json_t *req, long long id, const char *method)
{
	fake_ok(f, id, activation_result("needs-approval"));
	fake_ok(f, id, activation_result("completed"));
}

static void test_activate_final_needs_approval(void **state)
{
	struct fake *f = fake_start(h_final_needs_approval);
	ne_client *c = connect_to(f);
	struct rec x = { 0 };

	assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x, NULL), 0);
	finish(f, c);
	assert_int_equal(x.needs_approval, 1);
	assert_int_equal(x.request_id, 42);
	assert_int_equal(x.finished, 1);
	fake_free(f);
}

static const struct {
	const char *code;
	ne_sysext_error error;
} codes[] = {
	{ "extension-not-found", NE_SYSEXT_ERROR_EXTENSION_NOT_FOUND },
	{ "missing-identifier", NE_SYSEXT_ERROR_MISSING_IDENTIFIER },
	{ "duplicate-identifier", NE_SYSEXT_ERROR_DUPLICATE_IDENTIFIER },
	{ "unknown-provider-type", NE_SYSEXT_ERROR_UNKNOWN_PROVIDER_TYPE },
	{ "signature-invalid", NE_SYSEXT_ERROR_SIGNATURE_INVALID },
	{ "validation-failed", NE_SYSEXT_ERROR_VALIDATION_FAILED },
	{ "forbidden-by-policy", NE_SYSEXT_ERROR_FORBIDDEN_BY_POLICY },
	{ "request-cancelled", NE_SYSEXT_ERROR_REQUEST_CANCELLED },
	{ "request-superseded", NE_SYSEXT_ERROR_REQUEST_SUPERSEDED },
	{ "authorization-required", NE_SYSEXT_ERROR_AUTHORIZATION_REQUIRED },
	{ "permission-denied", NE_SYSEXT_ERROR_PERMISSION_DENIED },
	{ "invalid-params", NE_SYSEXT_ERROR_INVALID_ARGUMENT },
	{ "invalid-request", NE_SYSEXT_ERROR_INVALID_ARGUMENT },
	{ "busy", NE_SYSEXT_ERROR_UNKNOWN },
	{ "internal", NE_SYSEXT_ERROR_UNKNOWN },
};

/* The n-th request gets the n-th code. */
static void h_errors(struct fake *f, json_t *req, long long id, const char *method)
{
	size_t i = json_array_size(f->requests) - 1;

	if (i < sizeof(codes) / sizeof(codes[0]))
		fake_error(f, id, codes[i].code, "it went wrong");
}

static void test_error_codes(void **state)
{
	enum { N = sizeof(codes) / sizeof(codes[0]) };
	struct fake *f = fake_start(h_errors);
	ne_client *c = connect_to(f);
	struct rec x[N];
	size_t i;

	memset(x, 0, sizeof(x));
	for (i = 0; i < N; i++)
		assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x[i], NULL), 0);
	finish(f, c);
	for (i = 0; i < N; i++) {
		char want[64];

		assert_int_equal(x[i].failed, 1);
		assert_int_equal(x[i].finished, 0);
		assert_int_equal(x[i].error, codes[i].error);
		if (codes[i].error == NE_SYSEXT_ERROR_UNKNOWN) {
			snprintf(want, sizeof(want), "%s: it went wrong", codes[i].code);
			assert_string_equal(x[i].message, want);
		} else {
			assert_string_equal(x[i].message, "it went wrong");
			if (codes[i].error != NE_SYSEXT_ERROR_INVALID_ARGUMENT)
				assert_string_equal(ne_sysext_error_name(codes[i].error), codes[i].code);
		}
		check_activate(f, i);
	}
	assert_string_equal(ne_sysext_error_name(NE_SYSEXT_ERROR_DAEMON_UNREACHABLE),
			    "daemon-unreachable");
	assert_string_equal(ne_sysext_error_name(NE_SYSEXT_ERROR_UNKNOWN), "unknown");
	assert_string_equal(ne_sysext_error_name((ne_sysext_error)77), "unknown");
	fake_free(f);
}

/* --- connection loss and protocol errors -------------------------------------------- */

/* Answers the activation with needs-approval, hangs up at the next request. */
static void h_hang_up(struct fake *f, json_t *req, long long id, const char *method)
{
	json_t *data = props_json(3, "1.2.0");

	json_object_set_new(data, "request", json_integer(5));
	if (!strcmp(method, "extension.activate"))
		fake_event(f, id, "needs-approval", data);
	else
		json_decref(data);
	f->hang_up = strcmp(method, "extension.activate") != 0;
}

static void test_connection_lost(void **state)
{
	struct fake *f = fake_start(h_hang_up);
	ne_client *c = connect_to(f);
	struct rec x = { 0 }, y = { 0 };

	assert_int_equal(ne_sysext_activate(c, f->bundle, &delegate, &x, NULL), 0);
	assert_int_equal(ne_sysext_list(c, &delegate, &y, NULL), 0);
	assert_true(ne_client_wait(c, WAIT_MS) < 0);
	assert_int_equal(x.needs_approval, 1);
	assert_int_equal(x.failed, 1);
	assert_int_equal(x.error, NE_SYSEXT_ERROR_DAEMON_UNREACHABLE);
	assert_int_equal(y.failed, 1);
	assert_int_equal(y.error, NE_SYSEXT_ERROR_DAEMON_UNREACHABLE);
	/* The client stays lost. */
	assert_true(ne_client_dispatch(c) < 0);
	assert_int_equal(ne_sysext_list(c, &delegate, &y, NULL), -ENOTCONN);
	ne_client_free(c);
	fake_join(f);
	fake_free(f);
}

static void h_garbage(struct fake *f, json_t *req, long long id, const char *method)
{
	fake_send_raw(f, "this is not json\n", 17);
}

static void h_long_line(struct fake *f, json_t *req, long long id, const char *method)
{
	size_t len = 4 * 1024 * 1024 + 16;
	char *s = malloc(len);

	memset(s, ' ', len);
	fake_send_raw(f, s, len);
	free(s);
}

static void h_no_ok(struct fake *f, json_t *req, long long id, const char *method)
{
	fake_send(f, json_pack("{s:I, s:{}}", "id", (json_int_t)id, "result"));
}

static void run_protocol_error(fake_handler h)
{
	struct fake *f = fake_start(h);
	ne_client *c = connect_to(f);
	struct rec x = { 0 };

	assert_int_equal(ne_sysext_list(c, &delegate, &x, NULL), 0);
	assert_true(ne_client_wait(c, WAIT_MS) < 0);
	assert_int_equal(x.failed, 1);
	assert_int_equal(x.properties, 0);
	assert_int_equal(x.error, NE_SYSEXT_ERROR_DAEMON_UNREACHABLE);
	ne_client_free(c);
	fake_join(f);
	fake_free(f);
}

static void test_garbage_line(void **state)
{
	run_protocol_error(h_garbage);
}

static void test_line_too_long(void **state)
{
	run_protocol_error(h_long_line);
}

static void test_reply_without_ok(void **state)
{
	run_protocol_error(h_no_ok);
}

/* --- the other requests -------------------------------------------------------------- */

static void h_list(struct fake *f, json_t *req, long long id, const char *method)
{
	json_t *a = props_json(3, "1.2.0"), *b = props_json(1, "0.9.0"), *q = props_json(4, "1.3.0");

	json_object_set_new(a, "lifecycle", json_string("enabled"));
	json_object_set_new(a, "state", json_string("running"));
	json_object_set_new(b, "identifier", json_string("com.example.dns"));
	json_object_set_new(b, "lifecycle", json_string("deactivating"));
	json_object_set_new(b, "state", json_string("restarting"));
	json_object_set_new(q, "state", json_string("awaiting-approval"));
	if (!strcmp(method, "extension.list")) {
		fake_ok(f, id, json_pack("{s:[o, o], s:[o]}", "extensions", a, b, "requests", q));
		return;
	}
	json_decref(b);
	json_decref(q);
	json_object_del(a, "lifecycle");
	json_object_set_new(a, "state", json_string("replacing"));
	json_object_set_new(a, "enabled", json_true());
	json_object_set_new(a, "awaiting_approval", json_false());
	json_object_set_new(a, "uninstalling", json_false());
	fake_ok(f, id, json_pack("{s:[o]}", "properties", a));
}

static void test_list(void **state)
{
	struct fake *f = fake_start(h_list);
	ne_client *c = connect_to(f);
	ne_sysext_request *r = NULL;
	struct rec x = { 0 };

	/* A bundle that cannot be opened is refused before anything is sent. */
	assert_int_equal(ne_sysext_activate(c, "/nonexistent/hello.netext", &delegate, &x, NULL),
			 -ENOENT);
	assert_int_equal(ne_sysext_activate(c, "/dev/null", &delegate, &x, NULL), -ENOTDIR);
	assert_int_equal(ne_sysext_list(c, &delegate, &x, &r), 0);
	assert_string_equal(ne_sysext_request_identifier(r), "");
	finish(f, c);
	assert_int_equal(json_array_size(f->requests), 1);
	assert_string_equal(fake_method(f, 0), "extension.list");
	assert_int_equal(x.failed, 0);
	assert_int_equal(x.properties, 1);
	assert_int_equal(x.n, 3);
	assert_string_equal(x.p_identifier[0], "com.example.hello");
	assert_string_equal(x.p_state[0], "enabled");
	assert_int_equal(x.p_version[0], 3);
	assert_string_equal(x.p_short[0], "1.2.0");
	assert_true(x.p_enabled[0] && !x.p_awaiting[0] && !x.p_uninstalling[0]);
	assert_string_equal(x.p_identifier[1], "com.example.dns");
	assert_string_equal(x.p_state[1], "deactivating");
	assert_true(!x.p_enabled[1] && !x.p_awaiting[1] && x.p_uninstalling[1]);
	assert_string_equal(x.p_state[2], "awaiting-approval");
	assert_int_equal(x.p_version[2], 4);
	assert_true(!x.p_enabled[2] && x.p_awaiting[2] && !x.p_uninstalling[2]);
	fake_free(f);
}

static void test_properties(void **state)
{
	struct fake *f = fake_start(h_list);
	ne_client *c = connect_to(f);
	ne_sysext_request *r = NULL;
	struct rec x = { 0 };

	assert_int_equal(ne_sysext_get_properties(c, NULL, &delegate, &x, NULL), -EINVAL);
	assert_int_equal(ne_sysext_get_properties(c, "", &delegate, &x, NULL), -EINVAL);
	assert_int_equal(ne_sysext_get_properties(c, "com.example.hello", &delegate, &x, &r), 0);
	assert_string_equal(ne_sysext_request_identifier(r), "com.example.hello");
	finish(f, c);
	assert_string_equal(fake_method(f, 0), "extension.properties");
	assert_string_equal(json_string_value(fake_param(f, 0, "identifier")), "com.example.hello");
	assert_int_equal(x.properties, 1);
	assert_int_equal(x.n, 1);
	assert_string_equal(x.p_state[0], "replacing");
	assert_true(x.p_enabled[0] && !x.p_awaiting[0] && !x.p_uninstalling[0]);
	fake_free(f);
}

static void h_empty_list(struct fake *f, json_t *req, long long id, const char *method)
{
	if (!strcmp(method, "extension.list"))
		fake_ok(f, id, json_pack("{s:[], s:[]}", "extensions", "requests"));
	else if (!strcmp(method, "extension.properties"))
		fake_ok(f, id, json_pack("{s:s}", "properties", "not an array"));
	else if (!strcmp(method, "extension.deactivate"))
		fake_ok(f, id, json_pack("{s:s, s:s}", "result", "completed", "identifier",
					 "com.example.hello"));
	else if (!strcmp(method, "extension.reset"))
		fake_ok(f, id, json_pack("{s:i}", "removed", 2));
	else
		fake_ok(f, id, NULL);
}

static void test_simple_requests(void **state)
{
	struct fake *f = fake_start(h_empty_list);
	ne_client *c = connect_to(f);
	struct rec l = { 0 }, p = { 0 }, d = { 0 }, j = { 0 }, z = { 0 };

	assert_int_equal(ne_sysext_list(c, &delegate, &l, NULL), 0);
	assert_int_equal(ne_sysext_get_properties(c, "com.example.hello", &delegate, &p, NULL), 0);
	assert_int_equal(ne_sysext_deactivate(c, "com.example.hello", &delegate, &d, NULL), 0);
	assert_int_equal(ne_sysext_reject(c, "com.example.hello", &delegate, &j, NULL), 0);
	assert_int_equal(ne_sysext_reset(c, &delegate, &z, NULL), 0);
	finish(f, c);
	assert_int_equal(l.properties, 1);
	assert_int_equal(l.n, 0);
	assert_int_equal(p.failed, 1);
	assert_int_equal(p.error, NE_SYSEXT_ERROR_UNKNOWN);
	assert_int_equal(d.finished, 1);
	assert_int_equal(d.result, NE_SYSEXT_COMPLETED);
	assert_int_equal(j.finished, 1);
	assert_int_equal(z.finished, 1);
	assert_string_equal(fake_method(f, 2), "extension.deactivate");
	assert_true(json_is_true(fake_param(f, 2, "wait")));
	assert_string_equal(fake_method(f, 3), "extension.reject");
	assert_string_equal(json_string_value(fake_param(f, 3, "identifier")), "com.example.hello");
	assert_string_equal(fake_method(f, 4), "extension.reset");
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(f->nfds[i], 0);
	fake_free(f);
}

/* A finished callback starts a new request on the same client. */
static void test_reentrant_request(void **state)
{
	struct fake *f = fake_start(h_empty_list);
	ne_client *c = connect_to(f);
	struct rec x = { 0 }, y = { 0 };

	x.relist = c;
	x.relist_rec = &y;
	assert_int_equal(ne_sysext_reject(c, "com.example.hello", &delegate, &x, NULL), 0);
	finish(f, c);
	assert_int_equal(x.finished, 1);
	assert_int_equal(y.properties, 1);
	assert_string_equal(fake_method(f, 1), "extension.list");
	fake_free(f);
}

/* No callbacks at all: the requests still complete. */
static void test_null_delegate(void **state)
{
	struct fake *f = fake_start(h_replace);
	ne_client *c = connect_to(f);
	ne_sysext_delegate small = { .size = 8 };

	assert_int_equal(ne_sysext_activate(c, f->bundle, &small, NULL, NULL), -EINVAL);
	assert_int_equal(ne_sysext_activate(c, f->bundle, NULL, NULL, NULL), 0);
	finish(f, c);
	assert_string_equal(json_string_value(fake_param(f, 1, "action")), "cancel");
	fake_free(f);
}

/* --- connecting ---------------------------------------------------------------------- */

static void test_client_new(void **state)
{
	char dir[] = "/tmp/netext-client-XXXXXX", path[128], env[160];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ne_client *c = NULL;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/netextd.sock", dir);
	assert_int_equal(ne_client_new(path, &c), -ENOENT);
	assert_null(c);
	/* A socket nobody listens on. */
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(ne_client_new(path, &c), -ECONNREFUSED);
	/* $NETEXT_SOCKET when no path is given. */
	snprintf(env, sizeof(env), "%s", path);
	setenv("NETEXT_SOCKET", env, 1);
	assert_int_equal(ne_client_new(NULL, &c), -ECONNREFUSED);
	unsetenv("NETEXT_SOCKET");
	assert_int_equal(ne_client_new(NULL, NULL), -EINVAL);
	memset(env, 'x', sizeof(env) - 1);
	env[sizeof(env) - 1] = '\0';
	assert_int_equal(ne_client_new(env, &c), -ENAMETOOLONG);
	close(fd);
	unlink(path);
	rmdir(dir);
	ne_client_free(NULL);
	assert_int_equal(ne_client_dispatch(NULL), -EINVAL);
}

static void test_env_socket(void **state)
{
	struct fake *f = fake_start(h_empty_list);
	ne_client *c = NULL;
	struct rec x = { 0 };

	setenv("NETEXT_SOCKET", f->path, 1);
	assert_int_equal(ne_client_new(NULL, &c), 0);
	unsetenv("NETEXT_SOCKET");
	assert_int_equal(ne_sysext_list(c, &delegate, &x, NULL), 0);
	/* Nothing is answered before the daemon had a chance to read. */
	assert_true(ne_client_wait(c, 0) >= 0);
	finish(f, c);
	assert_int_equal(x.properties, 1);
	fake_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_activate_completed),
		cmocka_unit_test(test_activate_needs_approval),
		cmocka_unit_test(test_activate_replace),
		cmocka_unit_test(test_activate_replace_cancel),
		cmocka_unit_test(test_activate_replace_null_callback),
		cmocka_unit_test(test_activate_decide_error),
		cmocka_unit_test(test_approve_replace),
		cmocka_unit_test(test_activate_will_complete_later),
		cmocka_unit_test(test_activate_final_will_complete_later),
		cmocka_unit_test(test_activate_final_needs_approval),
		cmocka_unit_test(test_error_codes),
		cmocka_unit_test(test_connection_lost),
		cmocka_unit_test(test_garbage_line),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_reply_without_ok),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_simple_requests),
		cmocka_unit_test(test_reentrant_request),
		cmocka_unit_test(test_null_delegate),
		cmocka_unit_test(test_client_new),
		cmocka_unit_test(test_env_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
