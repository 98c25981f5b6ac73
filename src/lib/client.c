/* libnetext, app side (<netext/system.h>): activation requests over netextd's control
 * socket, one JSON line per request, event lines and one final reply per request
 * (docs/lifecycle.md, "Control protocol").
 *
 * Trust: the daemon is privileged and means well, but a line that is not a JSON object, a
 * reply without a boolean "ok" or a line over LINE_MAX is a protocol error: the connection
 * is given up and every outstanding request fails with NE_SYSEXT_ERROR_DAEMON_UNREACHABLE,
 * instead of guessing. Lines for no known request (a reply to a request already failed, a
 * notification from a newer daemon) and unknown events are ignored.
 *
 * The callbacks are the app's code and may start new requests on the same client: a
 * request is unlinked before its final callback runs and freed after it returns, and the
 * only handles a callback can reach stay valid until then. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include <netext/system.h>

#include "lib-internal.h"
#include "util.h"

#define DEFAULT_SOCKET "/run/netext/netextd.sock"
#define LINE_MAX_BYTES (4 * 1024 * 1024) /* one line from the daemon, newline excluded */
#define BUF_INITIAL (64 * 1024)
#define SEND_TIMEOUT_MS 5000
#define IDENTIFIER_MAX 127
#define SHORT_VERSION_MAX 63
#define TEAM_MAX 32
/* The first delegate table ever published: later headers may only append. */
#define DELEGATE_MIN_SIZE \
	(offsetof(ne_sysext_delegate, properties) + sizeof(((ne_sysext_delegate *)0)->properties))

enum kind {
	KIND_ACTIVATE,
	KIND_DEACTIVATE,
	KIND_APPROVE,
	KIND_REJECT,
	KIND_PROPERTIES,
	KIND_LIST,
	KIND_RESET,
	KIND_DECIDE, /* internal: answers a replace-decision; not counted as outstanding */
};

struct ne_sysext_request {
	ne_sysext_request *next;
	ne_client *client;
	enum kind kind;
	uint64_t id;          /* ours: the "id" of the request line */
	uint64_t daemon_id;   /* the daemon's id of a queued request, 0 until known */
	uint64_t parent;      /* KIND_DECIDE: the id of the request it answers */
	ne_sysext_delegate d; /* the caller's table, zero-filled beyond its size */
	void *userdata;
	char identifier[IDENTIFIER_MAX + 1];
	/* What the daemon last said about the extension (props points into these). */
	bool has_props;
	ne_sysext_properties props;
	char short_version[SHORT_VERSION_MAX + 1];
	char team[TEAM_MAX + 1];
};

struct ne_client {
	int fd;
	int error;            /* 0, or why the connection was given up (negative errno) */
	char error_message[128];
	bool dispatching;
	uint64_t last_id;
	ne_sysext_request *requests;
	char *buf;            /* received bytes not yet handled */
	size_t len, cap, scanned;
};

static const struct {
	const char *code;
	ne_sysext_error error;
} error_codes[] = {
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
};

const char *ne_sysext_error_name(ne_sysext_error e)
{
	size_t i;

	switch (e) {
	case NE_SYSEXT_ERROR_DAEMON_UNREACHABLE: return "daemon-unreachable";
	case NE_SYSEXT_ERROR_INVALID_ARGUMENT: return "invalid-argument";
	default: break;
	}
	for (i = 0; i < NE_ARRAY_SIZE(error_codes); i++)
		if (error_codes[i].error == e)
			return error_codes[i].code;
	return "unknown";
}

static ne_sysext_error error_from_code(const char *code)
{
	size_t i;

	for (i = 0; code && i < NE_ARRAY_SIZE(error_codes); i++)
		if (!strcmp(error_codes[i].code, code))
			return error_codes[i].error;
	return NE_SYSEXT_ERROR_UNKNOWN;
}

/* --- small JSON readers -------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

static int jbool(json_t *o, const char *key, int dflt)
{
	json_t *v = json_object_get(o, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static uint64_t juint(json_t *o, const char *key, uint64_t max)
{
	json_t *v = json_object_get(o, key);
	json_int_t i = json_integer_value(v);

	return json_is_integer(v) && i > 0 && (uint64_t)i <= max ? (uint64_t)i : 0;
}

/* Reads one record of properties. state: the lifecycle state ("" when unknown); the flags
 * are taken from the record when present, else derived from the state. Strings point into
 * o. */
static void props_from_json(json_t *o, const char *state, ne_sysext_properties *ret)
{
	*ret = (ne_sysext_properties){
		.identifier = jstr(o, "identifier", ""),
		.version = (uint32_t)juint(o, "version", UINT32_MAX),
		.short_version = jstr(o, "short_version", ""),
		.team = jstr(o, "team", ""),
		.state = state,
	};
	ret->enabled = jbool(o, "enabled", !strcmp(state, "enabled") || !strcmp(state, "replacing"));
	ret->awaiting_approval = jbool(o, "awaiting_approval", !strcmp(state, "awaiting-approval"));
	ret->uninstalling = jbool(o, "uninstalling", !strcmp(state, "deactivating"));
}

/* --- requests ------------------------------------------------------------------------ */

static ne_sysext_request *request_find(ne_client *c, uint64_t id)
{
	ne_sysext_request *r;

	for (r = c->requests; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static void request_unlink(ne_client *c, ne_sysext_request *r)
{
	ne_sysext_request **pp;

	for (pp = &c->requests; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

/* Records what the daemon tells about a request: its queue id, the identifier and, when
 * given with it, the version. */
static void request_note(ne_sysext_request *r, json_t *o)
{
	uint64_t id = juint(o, "request", UINT64_MAX);
	const char *ident = jstr(o, "identifier", NULL);
	uint32_t version = (uint32_t)juint(o, "version", UINT32_MAX);

	if (id)
		r->daemon_id = id;
	if (!ident || strlen(ident) > IDENTIFIER_MAX)
		return;
	strcpy(r->identifier, ident);
	if (!version)
		return;
	snprintf(r->short_version, sizeof(r->short_version), "%s", jstr(o, "short_version", ""));
	snprintf(r->team, sizeof(r->team), "%s", jstr(o, "team", ""));
	r->props = (ne_sysext_properties){
		.identifier = r->identifier, .version = version, .short_version = r->short_version,
		.team = r->team, .state = "",
	};
	r->has_props = true;
}

/* The final callbacks: each unlinks r, calls the app, then frees r. */
static void request_failed(ne_client *c, ne_sysext_request *r, ne_sysext_error e,
			   const char *message)
{
	request_unlink(c, r);
	if (r->d.failed)
		r->d.failed(r, e, message, r->userdata);
	free(r);
}

static void request_finished(ne_client *c, ne_sysext_request *r, ne_sysext_result result)
{
	request_unlink(c, r);
	if (r->d.finished)
		r->d.finished(r, result, r->userdata);
	free(r);
}

static void request_properties(ne_client *c, ne_sysext_request *r,
			       const ne_sysext_properties *props, size_t n)
{
	request_unlink(c, r);
	if (r->d.properties)
		r->d.properties(r, props, n, r->userdata);
	free(r);
}

static int count_outstanding(const ne_client *c)
{
	const ne_sysext_request *r;
	int n = 0;

	for (r = c->requests; r; r = r->next)
		n += r->kind != KIND_DECIDE;
	return n;
}

/* --- sending ------------------------------------------------------------------------- */

/* Gives the connection up: requests fail at the next dispatch. shutdown() makes the fd
 * readable, so that an app polling it calls ne_client_dispatch. */
static void give_up(ne_client *c, int error, const char *message)
{
	if (c->error)
		return;
	c->error = error;
	snprintf(c->error_message, sizeof(c->error_message), "%s", message);
	shutdown(c->fd, SHUT_RDWR);
}

static ssize_t send_with_fd(int sock, const char *data, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;

	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* Sends a whole line; pass_fd (or -1) travels with its first byte. The socket is
 * non-blocking; the daemon reads requests promptly, so waiting for it is bounded. */
static int send_line(ne_client *c, const char *line, size_t len, int pass_fd)
{
	unsigned long long deadline = ne_now_usec() + SEND_TIMEOUT_MS * 1000ULL;
	size_t off = 0;

	while (off < len) {
		struct pollfd p = { .fd = c->fd, .events = POLLOUT };
		ssize_t n;
		int ms;

		if (off == 0 && pass_fd >= 0)
			n = send_with_fd(c->fd, line, len, pass_fd);
		else
			n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ne_negerrno();
		ms = nelib_ms_left(deadline, SEND_TIMEOUT_MS);
		if (ms == 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return ne_negerrno();
	}
	return 0;
}

/* Sends {"id", "method", "params"} (params is consumed). */
static int send_request(ne_client *c, uint64_t id, const char *method, json_t *params,
			int pass_fd)
{
	json_t *req = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "method", method,
				"params", params);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	size_t len = text ? strlen(text) : 0;
	char *line = text ? realloc(text, len + 2) : NULL;
	int r;

	json_decref(req);
	if (!line) {
		free(text);
		return -ENOMEM;
	}
	line[len++] = '\n';
	line[len] = '\0';
	r = send_line(c, line, len, pass_fd);
	free(line);
	if (r < 0)
		give_up(c, r, "cannot send to netextd");
	return r;
}

/* Creates, sends and links a request. Consumes params. */
static int submit(ne_client *c, enum kind kind, const char *method, json_t *params, int pass_fd,
		  const ne_sysext_delegate *d, void *userdata, const char *identifier,
		  ne_sysext_request **ret)
{
	ne_sysext_request *r = NULL;
	int e;

	if (!c || (d && d->size < DELEGATE_MIN_SIZE)) {
		e = -EINVAL;
		goto fail;
	}
	if (c->error) {
		e = -ENOTCONN;
		goto fail;
	}
	if (!params || !(r = calloc(1, sizeof(*r)))) {
		e = -ENOMEM;
		goto fail;
	}
	r->client = c;
	r->kind = kind;
	r->id = ++c->last_id;
	if (d)
		memcpy(&r->d, d, NE_MIN(d->size, sizeof(r->d)));
	r->userdata = userdata;
	if (identifier)
		strcpy(r->identifier, identifier);
	e = send_request(c, r->id, method, params, pass_fd);
	params = NULL;
	if (e < 0)
		goto fail;
	r->next = c->requests;
	c->requests = r;
	if (ret)
		*ret = r;
	return 0;
fail:
	json_decref(params);
	free(r);
	return e;
}

static bool identifier_ok(const char *identifier)
{
	return identifier && *identifier && strlen(identifier) <= IDENTIFIER_MAX;
}

/* --- handling what the daemon sends ---------------------------------------------------- */

static int send_decide(ne_client *c, ne_sysext_request *r, ne_sysext_replace_action action)
{
	json_t *p = json_pack("{s:I, s:s}", "request", (json_int_t)r->daemon_id, "action",
			      action == NE_SYSEXT_REPLACE ? "replace" : "cancel");
	ne_sysext_request *dr;
	int e;

	e = submit(c, KIND_DECIDE, "extension.decide", p, -1, NULL, NULL, r->identifier, &dr);
	if (e == 0)
		dr->parent = r->id;
	return e;
}

static int on_replace_decision(ne_client *c, ne_sysext_request *r, json_t *data)
{
	json_t *installed = json_object_get(data, "installed"), *new = json_object_get(data, "new");
	ne_sysext_replace_action action = NE_SYSEXT_REPLACE_CANCEL;
	ne_sysext_properties old_props, new_props;

	request_note(r, new);
	request_note(r, data);
	props_from_json(installed, jstr(installed, "state", "enabled"), &old_props);
	props_from_json(new, jstr(new, "state", ""), &new_props);
	if (r->d.replace)
		action = r->d.replace(r, &old_props, &new_props, r->userdata);
	return send_decide(c, r, action == NE_SYSEXT_REPLACE ? action : NE_SYSEXT_REPLACE_CANCEL);
}

static int on_event(ne_client *c, ne_sysext_request *r, const char *event, json_t *data)
{
	if (r->kind != KIND_ACTIVATE && r->kind != KIND_APPROVE && r->kind != KIND_DEACTIVATE)
		return 0;
	if (!strcmp(event, "replace-decision"))
		return on_replace_decision(c, r, data);
	if (!strcmp(event, "needs-approval")) {
		request_note(r, data);
		if (r->d.needs_approval)
			r->d.needs_approval(r, r->userdata);
	} else if (!strcmp(event, "will-complete-later")) {
		if (r->d.will_complete_later)
			r->d.will_complete_later(r, jstr(data, "detail", ""), r->userdata);
	}
	return 0;
}

static void on_error(ne_client *c, ne_sysext_request *r, json_t *err)
{
	const char *code = jstr(err, "code", "");
	const char *message = jstr(err, "message", code);
	ne_sysext_error e = error_from_code(code);
	char buf[1024];

	/* An unknown code would be lost to the app: keep it in the message. */
	if (e == NE_SYSEXT_ERROR_UNKNOWN && *code && strcmp(message, code)) {
		snprintf(buf, sizeof(buf), "%s: %s", code, message);
		message = buf;
	}
	request_failed(c, r, e, message);
}

/* The result of activate, approve and deactivate. */
static void on_change_result(ne_client *c, ne_sysext_request *r, json_t *result)
{
	const char *s = jstr(result, "result", "");

	request_note(r, result);
	if (!strcmp(s, "completed")) {
		request_finished(c, r, NE_SYSEXT_COMPLETED);
	} else if (!strcmp(s, "will-complete-later")) {
		/* The daemon did not wait: nothing more will come for this request. */
		if (r->d.will_complete_later)
			r->d.will_complete_later(r, jstr(result, "detail", ""), r->userdata);
		request_finished(c, r, NE_SYSEXT_WILL_COMPLETE_LATER);
	} else if (!strcmp(s, "needs-approval")) {
		/* Not expected with "wait": the approval's outcome should still follow. */
		if (r->d.needs_approval)
			r->d.needs_approval(r, r->userdata);
	} else {
		request_failed(c, r, NE_SYSEXT_ERROR_UNKNOWN, "netextd sent an unexpected result");
	}
}

/* extension.properties: {properties: [...]}; extension.list: {extensions, requests}. */
static void on_properties_result(ne_client *c, ne_sysext_request *r, json_t *result)
{
	json_t *exts, *reqs, *o;
	ne_sysext_properties *props = NULL;
	size_t n = 0, i;

	if (r->kind == KIND_PROPERTIES) {
		exts = json_object_get(result, "properties");
		reqs = NULL;
	} else {
		exts = json_object_get(result, "extensions");
		reqs = json_object_get(result, "requests");
	}
	if (!json_is_array(exts) || (reqs && !json_is_array(reqs))) {
		request_failed(c, r, NE_SYSEXT_ERROR_UNKNOWN, "netextd sent a malformed reply");
		return;
	}
	n = json_array_size(exts) + json_array_size(reqs);
	if (n && !(props = calloc(n, sizeof(*props)))) {
		request_failed(c, r, NE_SYSEXT_ERROR_UNKNOWN, strerror(ENOMEM));
		return;
	}
	n = 0;
	json_array_foreach(exts, i, o)
		props_from_json(o, r->kind == KIND_LIST ? jstr(o, "lifecycle", "enabled")
							 : jstr(o, "state", ""), &props[n++]);
	json_array_foreach(reqs, i, o)
		props_from_json(o, jstr(o, "state", "awaiting-approval"), &props[n++]);
	request_properties(c, r, props, n);
	free(props);
}

static void on_decide_reply(ne_client *c, ne_sysext_request *dr, json_t *reply)
{
	ne_sysext_request *parent = request_find(c, dr->parent);
	bool ok = json_is_true(json_object_get(reply, "ok"));

	request_unlink(c, dr);
	free(dr);
	if (!ok && parent && parent->kind != KIND_DECIDE)
		on_error(c, parent, json_object_get(reply, "error"));
}

static void on_reply(ne_client *c, ne_sysext_request *r, json_t *reply)
{
	json_t *result = json_object_get(reply, "result");

	if (r->kind == KIND_DECIDE) {
		on_decide_reply(c, r, reply);
		return;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		on_error(c, r, json_object_get(reply, "error"));
		return;
	}
	switch (r->kind) {
	case KIND_ACTIVATE:
	case KIND_APPROVE:
	case KIND_DEACTIVATE:
		on_change_result(c, r, result);
		break;
	case KIND_PROPERTIES:
	case KIND_LIST:
		on_properties_result(c, r, result);
		break;
	default:
		request_finished(c, r, NE_SYSEXT_COMPLETED);
		break;
	}
}

static int handle_line(ne_client *c, const char *line, size_t len)
{
	json_t *msg = json_loadb(line, len, 0, NULL), *event;
	ne_sysext_request *r;
	int e = 0;

	if (!json_is_object(msg)) {
		json_decref(msg);
		give_up(c, -EPROTO, "netextd sent a line that is not a JSON object");
		return -EPROTO;
	}
	r = request_find(c, juint(msg, "id", UINT64_MAX));
	event = json_object_get(msg, "event");
	if (r && json_is_string(event)) {
		e = on_event(c, r, json_string_value(event), json_object_get(msg, "data"));
	} else if (r && json_is_boolean(json_object_get(msg, "ok"))) {
		on_reply(c, r, msg);
	} else if (r) {
		give_up(c, -EPROTO, "netextd sent a reply without \"ok\"");
		e = -EPROTO;
	}
	json_decref(msg);
	return e;
}

/* Handles every complete line in the buffer and keeps the rest. */
static int handle_lines(ne_client *c)
{
	size_t start = 0;
	char *nl;
	int e = 0;

	while (e == 0 && (nl = memchr(c->buf + c->scanned, '\n', c->len - c->scanned))) {
		size_t end = (size_t)(nl - c->buf);

		if (end > start)
			e = handle_line(c, c->buf + start, end - start);
		start = c->scanned = end + 1;
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	c->scanned = c->len;
	if (e == 0 && c->len > LINE_MAX_BYTES) {
		give_up(c, -EMSGSIZE, "netextd sent a line over 4 MiB");
		e = -EMSGSIZE;
	}
	return e;
}

static int grow(ne_client *c)
{
	size_t cap = NE_MIN(c->cap * 2, (size_t)LINE_MAX_BYTES + 1);
	char *b;

	if (c->len < c->cap)
		return 0;
	b = realloc(c->buf, cap);
	if (!b)
		return -ENOMEM;
	c->buf = b;
	c->cap = cap;
	return 0;
}

/* Reads until the socket is drained; returns 0 or why the connection is lost. */
static int read_all(ne_client *c)
{
	for (;;) {
		ssize_t n;
		int e = grow(c);

		if (e < 0)
			return e;
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return ne_negerrno();
		if (n == 0)
			return -ECONNRESET;
		c->len += (size_t)n;
		e = handle_lines(c);
		if (e < 0)
			return e;
	}
}

/* Fails every outstanding request. Requests started by these callbacks fail at once
 * (-ENOTCONN), so the list only shrinks. */
static void fail_all(ne_client *c)
{
	const char *msg = *c->error_message ? c->error_message : "connection to netextd lost";

	while (c->requests) {
		ne_sysext_request *r = c->requests;

		if (r->kind == KIND_DECIDE) {
			request_unlink(c, r);
			free(r);
		} else {
			request_failed(c, r, NE_SYSEXT_ERROR_DAEMON_UNREACHABLE, msg);
		}
	}
}

/* --- the client ---------------------------------------------------------------------- */

int ne_client_new(const char *socket_path, ne_client **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = socket_path;
	ne_client *c;
	int e;

	if (!ret)
		return -EINVAL;
	if (!path)
		path = secure_getenv("NETEXT_SOCKET");
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cap = BUF_INITIAL;
	c->buf = malloc(c->cap);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!c->buf || c->fd < 0) {
		e = c->buf ? ne_negerrno() : -ENOMEM;
		goto fail;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) {
		e = ne_negerrno();
		goto fail;
	}
	*ret = c;
	return 0;
fail:
	ne_client_free(c);
	return e;
}

void ne_client_free(ne_client *c)
{
	if (!c)
		return;
	while (c->requests) {
		ne_sysext_request *r = c->requests;

		c->requests = r->next;
		free(r);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c);
}

int ne_client_fd(const ne_client *c)
{
	return c ? c->fd : -EINVAL;
}

int ne_client_dispatch(ne_client *c)
{
	int e;

	if (!c)
		return -EINVAL;
	if (c->dispatching)
		return -EBUSY;
	c->dispatching = true;
	e = c->error ? c->error : read_all(c);
	if (e < 0) {
		give_up(c, e, e == -ECONNRESET ? "netextd closed the connection"
					       : "connection to netextd lost");
		fail_all(c);
	}
	c->dispatching = false;
	return e < 0 ? c->error : count_outstanding(c);
}

int ne_client_wait(ne_client *c, int timeout_ms)
{
	unsigned long long deadline = ne_now_usec() + (unsigned long long)NE_MAX(timeout_ms, 0) * 1000ULL;

	for (;;) {
		struct pollfd p = { .fd = c ? c->fd : -1, .events = POLLIN };
		int n = ne_client_dispatch(c), ms = -1;

		if (n <= 0)
			return n;
		if (timeout_ms >= 0) {
			ms = nelib_ms_left(deadline, INT_MAX);
			if (ms == 0)
				return n;
		}
		if (poll(&p, 1, ms) < 0 && errno != EINTR)
			return ne_negerrno();
	}
}

/* --- requests ------------------------------------------------------------------------ */

int ne_sysext_activate(ne_client *c, const char *bundle_path, const ne_sysext_delegate *d,
		       void *userdata, ne_sysext_request **ret)
{
	char *real;
	json_t *p;
	int fd, e;

	if (!c || !bundle_path || !*bundle_path)
		return -EINVAL;
	fd = open(bundle_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ne_negerrno();
	real = realpath(bundle_path, NULL);
	p = json_pack("{s:s, s:s, s:b}", "source", real ? real : bundle_path, "replace", "ask",
		      "wait", 1);
	free(real);
	e = submit(c, KIND_ACTIVATE, "extension.activate", p, fd, d, userdata, NULL, ret);
	close(fd);
	return e;
}

/* deactivate, approve, reject and properties: {"identifier"[, "wait": true]}. */
static int submit_identifier(ne_client *c, enum kind kind, const char *method,
			     const char *identifier, bool wait, const ne_sysext_delegate *d,
			     void *userdata, ne_sysext_request **ret)
{
	json_t *p;

	if (!identifier_ok(identifier))
		return -EINVAL;
	p = wait ? json_pack("{s:s, s:b}", "identifier", identifier, "wait", 1)
		 : json_pack("{s:s}", "identifier", identifier);
	return submit(c, kind, method, p, -1, d, userdata, identifier, ret);
}

int ne_sysext_deactivate(ne_client *c, const char *identifier, const ne_sysext_delegate *d,
			 void *userdata, ne_sysext_request **ret)
{
	return submit_identifier(c, KIND_DEACTIVATE, "extension.deactivate", identifier, true, d,
				 userdata, ret);
}

int ne_sysext_get_properties(ne_client *c, const char *identifier, const ne_sysext_delegate *d,
			     void *userdata, ne_sysext_request **ret)
{
	return submit_identifier(c, KIND_PROPERTIES, "extension.properties", identifier, false, d,
				 userdata, ret);
}

int ne_sysext_approve(ne_client *c, const char *identifier, const ne_sysext_delegate *d,
		      void *userdata, ne_sysext_request **ret)
{
	return submit_identifier(c, KIND_APPROVE, "extension.approve", identifier, true, d,
				 userdata, ret);
}

int ne_sysext_reject(ne_client *c, const char *identifier, const ne_sysext_delegate *d,
		     void *userdata, ne_sysext_request **ret)
{
	return submit_identifier(c, KIND_REJECT, "extension.reject", identifier, false, d,
				 userdata, ret);
}

int ne_sysext_list(ne_client *c, const ne_sysext_delegate *d, void *userdata,
		   ne_sysext_request **ret)
{
	return submit(c, KIND_LIST, "extension.list", json_object(), -1, d, userdata, NULL, ret);
}

int ne_sysext_reset(ne_client *c, const ne_sysext_delegate *d, void *userdata,
		    ne_sysext_request **ret)
{
	return submit(c, KIND_RESET, "extension.reset", json_object(), -1, d, userdata, NULL, ret);
}

const char *ne_sysext_request_identifier(const ne_sysext_request *r)
{
	return r ? r->identifier : "";
}

const ne_sysext_properties *ne_sysext_request_properties(const ne_sysext_request *r)
{
	return r && r->has_props ? &r->props : NULL;
}

uint64_t ne_sysext_request_id(const ne_sysext_request *r)
{
	return r ? r->daemon_id : 0;
}
