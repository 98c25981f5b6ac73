/* The control socket: JSON requests and replies, one per line, over a Unix stream socket
 * in the run dir.
 *
 * Trust: anyone on the host may connect (the socket is 0666) and read status. Requests that
 * change the system need root or the admin group, decided from the kernel's SO_PEERCRED /
 * SO_PEERGROUPS, never from anything the client says. Requests are untrusted: size-limited
 * (CTL_REQUEST_MAX), parsed by jansson, and checked field by field; a bad one gets a typed
 * error and the connection stays usable. A client that does not read its replies is
 * dropped once its output passes CTL_OUTPUT_MAX, so no client can stall the daemon. */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include <netext/netext.h>

#include "control.h"
#include "daemon.h"
#include "dnsctl.h"
#include "dnsprov.h"
#include "pktfilter.h"
#include "tunnel.h"
#include "dnsproxy.h"
#include "filter.h"
#include "log.h"
#include "sandbox.h"
#include "store.h"
#include "util.h"

#define CTL_MAX_CLIENTS 256
#define CTL_MAX_FDS 4 /* fds received and not yet used by a request, per client */

struct control {
	struct daemon *d;
	int fd;
	sd_event_source *src;
	char path[PATH_MAX];
	struct ne_list clients;
	size_t n_clients;
};

struct ctl_client {
	struct ne_list link;
	struct control *c;
	int fd;
	sd_event_source *src;
	struct ucred cred;
	bool admin;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	unsigned refs;       /* the client and its pending requests */
	bool closed;
	int fds[CTL_MAX_FDS]; /* received with SCM_RIGHTS, oldest first */
	unsigned n_fds;
};

struct ctl_req {
	struct ctl_client *client; /* NULL once the client is gone */
	json_t *id;
	unsigned refs;
	bool answered;
};

static void client_close(struct ctl_client *cl);

/* ---- replies --------------------------------------------------------------------- */

static void client_unref(struct ctl_client *cl)
{
	if (--cl->refs)
		return;
	free(cl->in);
	free(cl->out);
	free(cl);
}

struct ctl_req *ctl_req_ref(struct ctl_req *req)
{
	req->refs++;
	return req;
}

void ctl_req_unref(struct ctl_req *req)
{
	if (!req || --req->refs)
		return;
	if (!req->answered && req->client && !req->client->closed) {
		/* Every request gets an answer, even when a code path forgot it. */
		log_warnx("control: a request of pid %d ended without an answer",
			  (int)req->client->cred.pid);
		req->refs++;
		ctl_req_error(req, "internal", "the request ended without an answer");
		req->refs--;
	}
	if (req->client)
		client_unref(req->client);
	json_decref(req->id);
	free(req);
}

static int client_update_events(struct ctl_client *cl)
{
	uint32_t ev = EPOLLIN | (cl->out_len > cl->out_off ? EPOLLOUT : 0);

	return sd_event_source_set_io_events(cl->src, ev);
}

static void client_flush(struct ctl_client *cl)
{
	while (cl->out_off < cl->out_len) {
		ssize_t n = send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			client_close(cl);
			return;
		}
		cl->out_off += (size_t)n;
	}
	if (cl->out_off == cl->out_len)
		cl->out_off = cl->out_len = 0;
	client_update_events(cl);
}

static void client_write(struct ctl_client *cl, const char *s, size_t len)
{
	char *p;

	if (cl->closed)
		return;
	if (cl->out_len + len + 1 > CTL_OUTPUT_MAX) {
		log_warnx("control: client pid %d is not reading its replies; dropping it",
			  (int)cl->cred.pid);
		client_close(cl);
		return;
	}
	p = realloc(cl->out, cl->out_len + len + 1);
	if (!p) {
		client_close(cl);
		return;
	}
	cl->out = p;
	memcpy(cl->out + cl->out_len, s, len);
	cl->out[cl->out_len + len] = '\n';
	cl->out_len += len + 1;
	client_flush(cl);
}

static void req_send(struct ctl_req *req, json_t *msg)
{
	char *s;

	if (req->answered) {
		json_decref(msg);
		return;
	}
	req->answered = true;
	json_object_set(msg, "id", req->id ? req->id : json_null());
	s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (s && req->client)
		client_write(req->client, s, strlen(s));
	free(s);
}

void ctl_req_reply(struct ctl_req *req, void *result)
{
	json_t *res = result ? result : json_object();

	req_send(req, json_pack("{s:b, s:o}", "ok", 1, "result", res));
}

void ctl_req_event(struct ctl_req *req, const char *event, void *data)
{
	json_t *msg = json_pack("{s:O?, s:s, s:o}", "id", req->id, "event", event, "data",
				data ? (json_t *)data : json_object());
	char *s;

	if (!msg || req->answered || !req->client) {
		json_decref(msg);
		return;
	}
	s = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	if (s)
		client_write(req->client, s, strlen(s));
	free(s);
}

bool ctl_req_waiting(const struct ctl_req *req)
{
	return req && !req->answered && req->client && !req->client->closed;
}

void ctl_req_error(struct ctl_req *req, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	req_send(req, json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", msg));
}

/* ---- parameters ------------------------------------------------------------------ */

/* A string parameter: required or not, ≤ max bytes; replies the error itself. */
static int param_str(struct ctl_req *req, json_t *params, const char *key, bool required,
		     size_t max, const char **ret)
{
	json_t *v = json_object_get(params, key);

	if (!v) {
		if (!required) {
			*ret = NULL;
			return 0;
		}
		ctl_req_error(req, "invalid-params", "missing parameter '%s'", key);
		return -EINVAL;
	}
	if (!json_is_string(v) || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		ctl_req_error(req, "invalid-params", "parameter '%s' must be a string of at most %zu bytes",
			      key, max);
		return -EINVAL;
	}
	*ret = json_string_value(v);
	return 0;
}

static int param_name(struct ctl_req *req, json_t *params, const char *key, const char **ret)
{
	const char *s;

	if (param_str(req, params, key, true, NE_NAME_MAX, &s) < 0)
		return -EINVAL;
	if (!ne_name_valid(s, NE_NAME_MAX)) {
		ctl_req_error(req, "invalid-params",
			      "'%s' must be 1-%d characters of letters, digits, '.', '_' or '-', "
			      "starting with a letter or digit", key, NE_NAME_MAX);
		return -EINVAL;
	}
	*ret = s;
	return 0;
}

static int param_bool(struct ctl_req *req, json_t *params, const char *key, bool *ret)
{
	json_t *v = json_object_get(params, key);

	if (!v) {
		*ret = false;
		return 0;
	}
	if (!json_is_boolean(v)) {
		ctl_req_error(req, "invalid-params", "parameter '%s' must be true or false", key);
		return -EINVAL;
	}
	*ret = json_is_true(v);
	return 0;
}

/* The oldest fd the client sent and no request has used yet, or -1. */
static int client_take_fd(struct ctl_client *cl)
{
	int fd;

	if (!cl->n_fds)
		return -1;
	fd = cl->fds[0];
	memmove(cl->fds, cl->fds + 1, --cl->n_fds * sizeof(int));
	return fd;
}

static void client_close_fds(struct ctl_client *cl)
{
	while (cl->n_fds)
		close(cl->fds[--cl->n_fds]);
}

/* ---- methods --------------------------------------------------------------------- */

static void m_status(struct control *c, struct ctl_req *req, json_t *params)
{
	struct daemon *d = c->d;
	static const char *const qb[] = { "native", "compat-NFQUEUE" };

	ctl_req_reply(req, json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:o}",
		"version", NE_VERSION_STRING, "pid", (int)getpid(),
		"uptime_ms", (json_int_t)((ne_now_usec() - d->started_usec) / 1000),
		"state_dir", d->opt.state_dir, "run_dir", d->opt.run_dir,
		"nftables_table", d->nft ? "inet netext" : "",
		"queue_backend", d->nft ? qb[d->queue_backend ? 1 : 0] : "",
		"cgroup", d->cgroup_base, "developer_mode", d->opt.developer,
		"clients", (int)c->n_clients, "extensions", (json_t *)ext_list_json(d)));
	(void)params;
}

static void m_extension_list(struct control *c, struct ctl_req *req, json_t *params)
{
	ctl_req_reply(req, json_pack("{s:o, s:o}", "extensions", (json_t *)ext_list_json(c->d),
				     "requests", (json_t *)sysext_requests_json(c->d)));
	(void)params;
}

static void m_extension_register(struct control *c, struct ctl_req *req, json_t *params)
{
	struct daemon *d = c->d;
	const char *id, *exe, *user;
	struct stat st;
	struct ext *e;
	uid_t uid;
	gid_t gid;
	int r;

	if (!d->opt.developer) {
		ctl_req_error(req, "forbidden",
			      "registering unsigned extensions needs developer mode "
			      "(netextd --developer, or developer_mode = yes)");
		return;
	}
	if (param_name(req, params, "identifier", &id) < 0 ||
	    param_str(req, params, "executable", true, PATH_MAX - 1, &exe) < 0 ||
	    param_str(req, params, "user", false, 63, &user) < 0)
		return;
	if (exe[0] != '/' || stat(exe, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) {
		ctl_req_error(req, "invalid-params", "'%s' is not an executable file (absolute path)", exe);
		return;
	}
	if (ext_find(d, id)) {
		ctl_req_error(req, "exists", "extension %s is already registered", id);
		return;
	}
	if (!user)
		user = d->opt.extension_user;
	r = sandbox_resolve_user(user, &uid, &gid);
	if (r < 0) {
		ctl_req_error(req, "invalid-params",
			      "user '%s' cannot run extensions (%s): create it (useradd --system %s) "
			      "or pass another user; root is never allowed", user,
			      r == -EPERM ? "it is root" : "no such user", user);
		return;
	}
	r = ext_add(d, id, exe, user, &e);
	if (r < 0) {
		ctl_req_error(req, r == -EEXIST ? "exists" : "internal", "cannot register %s: %s", id,
			      strerror(-r));
		return;
	}
	log_info("extension %s: registered (%s) by uid %d", id, exe, (int)req->client->cred.uid);
	ctl_req_reply(req, json_pack("{s:s}", "identifier", id));
}

static struct ext *param_ext(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *id;
	struct ext *e;

	if (param_name(req, params, "identifier", &id) < 0)
		return NULL;
	e = ext_find(c->d, id);
	if (!e)
		ctl_req_error(req, "not-found", "no extension named %s", id);
	return e;
}

static void m_extension_unregister(struct control *c, struct ctl_req *req, json_t *params)
{
	struct ext *e = param_ext(c, req, params);
	int r;

	if (!e)
		return;
	r = ext_remove(e);
	if (r < 0)
		ctl_req_error(req, "internal", "cannot remove: %s", strerror(-r));
	else
		ctl_req_reply(req, NULL);
}

static void m_extension_restart(struct control *c, struct ctl_req *req, json_t *params)
{
	struct ext *e = param_ext(c, req, params);

	if (!e)
		return;
	if (ext_restart(e) < 0)
		ctl_req_error(req, "failed", "cannot restart %s: its user cannot run extensions",
			      ext_identifier(e));
	else
		ctl_req_reply(req, NULL);
}

static void m_extension_activate(struct control *c, struct ctl_req *req, json_t *params)
{
	struct ctl_client *cl = req->client;
	const char *source, *replace;
	_cleanup_close_ int fd = -1;
	bool wait;

	if (param_str(req, params, "source", false, PATH_MAX - 1, &source) < 0 ||
	    param_str(req, params, "replace", false, 16, &replace) < 0 ||
	    param_bool(req, params, "wait", &wait) < 0)
		return;
	if (replace && strcmp(replace, "ask") && strcmp(replace, "replace") && strcmp(replace, "cancel")) {
		ctl_req_error(req, "invalid-params", "replace must be \"ask\", \"replace\" or \"cancel\"");
		return;
	}
	fd = client_take_fd(cl);
	if (fd < 0) {
		ctl_req_error(req, "invalid-params",
			      "send the bundle directory as an fd (SCM_RIGHTS) with the request line; "
			      "netextctl activate and ne_sysext_activate() do");
		return;
	}
	sysext_activate(c->d, req, fd, source ? source : "(bundle)", replace ? replace : "ask", wait,
			&cl->cred, cl->admin);
}

static void m_extension_decide(struct control *c, struct ctl_req *req, json_t *params)
{
	json_t *id = json_object_get(params, "request");
	const char *action;

	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		ctl_req_error(req, "invalid-params", "'request' must be the positive id of a request");
		return;
	}
	if (param_str(req, params, "action", true, 16, &action) < 0)
		return;
	if (strcmp(action, "replace") && strcmp(action, "cancel")) {
		ctl_req_error(req, "invalid-params", "action must be \"replace\" or \"cancel\"");
		return;
	}
	sysext_decide(c->d, req, (uint64_t)json_integer_value(id), !strcmp(action, "replace"),
		      &req->client->cred, req->client->admin);
}

static void m_extension_approve(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *id;
	bool wait;

	if (param_name(req, params, "identifier", &id) == 0 && param_bool(req, params, "wait", &wait) == 0)
		sysext_approve(c->d, req, id, wait);
}

static void m_extension_reject(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *id;

	if (param_name(req, params, "identifier", &id) == 0)
		sysext_reject(c->d, req, id);
}

static void m_extension_deactivate(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *id;
	bool wait;

	if (param_name(req, params, "identifier", &id) == 0 && param_bool(req, params, "wait", &wait) == 0)
		sysext_deactivate(c->d, req, id, wait, req->client->admin);
}

static void m_extension_properties(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *id;

	if (param_name(req, params, "identifier", &id) == 0)
		sysext_properties(c->d, req, id);
}

static void m_extension_reset(struct control *c, struct ctl_req *req, json_t *params)
{
	if (!req->client->admin) {
		ctl_req_error(req, "authorization-required", "reset needs root or membership in group %s",
			      c->d->opt.admin_group);
		return;
	}
	if (!c->d->opt.developer) {
		ctl_req_error(req, "forbidden", "reset removes every extension; it needs developer mode "
			      "(netextd --developer, or developer_mode = yes)");
		return;
	}
	sysext_reset(c->d, req);
	(void)params;
}

static int config_json_cb(const struct store_config *sc, void *userdata)
{
	json_t *a = userdata, *opts = json_object();
	size_t i;

	for (i = 0; i < sc->n_options; i++)
		json_object_set_new(opts, sc->keys[i], json_string(sc->values[i]));
	json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:s, s:o, s:n}",
		"name", sc->name, "extension", sc->extension,
		"provider", ne_provider_type_name(sc->provider_type) ?: "?",
		"enabled", sc->enabled, "fail_policy", sc->fail_open ? "open" : "closed",
		"options", opts, "running"));
	return 0;
}

static void m_config_list(struct control *c, struct ctl_req *req, json_t *params)
{
	json_t *a = json_array();
	size_t i;
	json_t *cfg;
	int r;

	r = store_config_foreach(c->d->store, NULL, config_json_cb, a);
	if (r < 0) {
		json_decref(a);
		ctl_req_error(req, "internal", "cannot read configurations: %s", strerror(-r));
		return;
	}
	json_array_foreach(a, i, cfg) {
		json_t *p = ext_provider_json(c->d, json_string_value(json_object_get(cfg, "name")));

		json_object_set_new(cfg, "running", p ? p : json_null());
	}
	ctl_req_reply(req, json_pack("{s:o}", "configurations", a));
	(void)params;
}

static int config_options(struct ctl_req *req, json_t *opts, struct store_config *sc)
{
	const char *k;
	json_t *v;
	size_t n = 0;

	if (!opts)
		return 0;
	if (!json_is_object(opts) || json_object_size(opts) > NE_OPTIONS_MAX) {
		ctl_req_error(req, "invalid-params", "'options' must be an object of at most %d strings",
			      NE_OPTIONS_MAX);
		return -EINVAL;
	}
	sc->keys = calloc(json_object_size(opts) + 1, sizeof(char *));
	sc->values = calloc(json_object_size(opts) + 1, sizeof(char *));
	if (!sc->keys || !sc->values)
		return -ENOMEM;
	json_object_foreach(opts, k, v) {
		if (!json_is_string(v) || !ne_name_valid(k, NE_NAME_MAX) ||
		    json_string_length(v) > NE_OPTION_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			ctl_req_error(req, "invalid-params",
				      "option '%s': keys are names, values strings of at most %d bytes",
				      k, NE_OPTION_VALUE_MAX);
			return -EINVAL;
		}
		sc->keys[n] = strdup(k);
		sc->values[n] = strdup(json_string_value(v));
		sc->n_options = ++n;
		if (!sc->keys[n - 1] || !sc->values[n - 1])
			return -ENOMEM;
	}
	return 0;
}

static int param_fail_policy(struct ctl_req *req, json_t *params, bool *ret_open)
{
	const char *s;

	if (param_str(req, params, "fail_policy", false, 16, &s) < 0)
		return -EINVAL;
	if (!s || !strcmp(s, "closed"))
		*ret_open = false;
	else if (!strcmp(s, "open"))
		*ret_open = true;
	else {
		ctl_req_error(req, "invalid-params", "fail_policy must be \"open\" or \"closed\"");
		return -EINVAL;
	}
	return 0;
}

static void m_config_add(struct control *c, struct ctl_req *req, json_t *params)
{
	struct store_config sc = { 0 };
	const char *name, *ext, *prov;
	int type, r;

	if (param_name(req, params, "name", &name) < 0 ||
	    param_name(req, params, "extension", &ext) < 0 ||
	    param_str(req, params, "provider", true, 32, &prov) < 0 ||
	    param_fail_policy(req, params, &sc.fail_open) < 0)
		goto out;
	type = ne_provider_type_from_name(prov);
	if (type < 0) {
		ctl_req_error(req, "invalid-params", "unknown provider type '%s'", prov);
		goto out;
	}
	if (type != NE_PROVIDER_MESSAGE && type != NE_PROVIDER_FILTER_DATA &&
	    type != NE_PROVIDER_DNS_PROXY && type != NE_PROVIDER_FILTER_PACKET &&
	    type != NE_PROVIDER_PACKET_TUNNEL) {
		ctl_req_error(req, "unsupported", "this netextd has no datapath for %s providers yet", prov);
		goto out;
	}
	/* A packet filter fails open unless told otherwise (docs/packet-filter.md). */
	if (type == NE_PROVIDER_FILTER_PACKET && !json_object_get(params, "fail_policy"))
		sc.fail_open = true;
	if (config_options(req, json_object_get(params, "options"), &sc) < 0)
		goto out;
	ne_strscpy(sc.name, name, sizeof(sc.name));
	ne_strscpy(sc.extension, ext, sizeof(sc.extension));
	sc.provider_type = type;
	sc.created = (int64_t)time(NULL);
	r = store_config_put(c->d->store, &sc);
	if (r == -EEXIST)
		ctl_req_error(req, "exists", "configuration %s exists already", name);
	else if (r == -ENOENT)
		ctl_req_error(req, "not-found", "no extension named %s", ext);
	else if (r < 0)
		ctl_req_error(req, "internal", "cannot save: %s", strerror(-r));
	else
		ctl_req_reply(req, json_pack("{s:s}", "name", name));
out:
	store_config_clear(&sc);
}

static void m_config_remove(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *name;
	int r;

	if (param_name(req, params, "name", &name) < 0)
		return;
	r = store_config_delete(c->d->store, name);
	if (r == -ENOENT) {
		ctl_req_error(req, "not-found", "no configuration named %s", name);
		return;
	}
	if (r < 0) {
		ctl_req_error(req, "internal", "cannot remove: %s", strerror(-r));
		return;
	}
	filter_reconfigure(c->d);
	dnsprov_reconfigure(c->d);
	pktfilter_reconfigure(c->d);
	tunnel_reconfigure(c->d);
	ext_config_removed(c->d, name);
	ctl_req_reply(req, NULL);
}

static void m_config_start(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *name;

	if (param_name(req, params, "name", &name) == 0)
		ext_config_start(c->d, name, req);
}

static void m_config_stop(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *name;

	if (param_name(req, params, "name", &name) == 0)
		ext_config_stop(c->d, name, req);
}

static void m_config_message(struct control *c, struct ctl_req *req, json_t *params)
{
	const char *name;
	json_t *data;

	if (param_name(req, params, "name", &name) < 0)
		return;
	data = json_object_get(params, "data");
	if (!json_is_string(data)) {
		ctl_req_error(req, "invalid-params", "missing string parameter 'data'");
		return;
	}
	ext_config_message(c->d, name, json_string_value(data), json_string_length(data), req);
}

static void log_line_cb(unsigned long long seq, double realtime, int prio, const char *source,
			const char *text, void *userdata)
{
	json_array_append_new(userdata, json_pack("{s:I, s:f, s:i, s:s, s:s}", "seq",
		(json_int_t)seq, "time", realtime, "priority", prio, "source", source, "text", text));
}

static void m_logs(struct control *c, struct ctl_req *req, json_t *params)
{
	json_t *lines = json_object_get(params, "lines"), *a = json_array();
	json_int_t n = 100;

	if (lines && (!json_is_integer(lines) || json_integer_value(lines) < 1 ||
		      json_integer_value(lines) > 100000)) {
		json_decref(a);
		ctl_req_error(req, "invalid-params", "'lines' must be a positive integer");
		return;
	}
	if (lines)
		n = json_integer_value(lines);
	log_ring_foreach((size_t)n, log_line_cb, a);
	ctl_req_reply(req, json_pack("{s:o}", "lines", a));
	(void)c;
}

/* ---- content filter ----------------------------------------------------------------- */

static void m_flows_list(struct control *c, struct ctl_req *req, json_t *params)
{
	json_t *pending = json_object_get(params, "pending");

	ctl_req_reply(req, json_pack("{s:o}", "flows", filter_flows_json(c->d, json_is_true(pending))));
}

static void m_flows_decide(struct control *c, struct ctl_req *req, json_t *params)
{
	json_t *id = json_object_get(params, "id");
	const char *verdict;
	char who[64];

	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		ctl_req_error(req, "invalid-params", "'id' must be a flow id (netextctl flows --pending)");
		return;
	}
	if (param_str(req, params, "verdict", true, 16, &verdict) < 0)
		return;
	if (strcmp(verdict, "allow") && strcmp(verdict, "drop")) {
		ctl_req_error(req, "invalid-params", "verdict must be \"allow\" or \"drop\"");
		return;
	}
	snprintf(who, sizeof(who), "netextctl (uid %u)", (unsigned)req->client->cred.uid);
	if (filter_flow_decide(c->d, (uint64_t)json_integer_value(id), !strcmp(verdict, "allow"), who) < 0) {
		ctl_req_error(req, "not-found", "flow %lld is not waiting for a verdict (decided, expired "
			      "or unknown)", (long long)json_integer_value(id));
		return;
	}
	ctl_req_reply(req, json_pack("{s:I, s:s}", "id", json_integer_value(id), "verdict", verdict));
}

static void m_flows_follow(struct control *c, struct ctl_req *req, json_t *params)
{
	filter_follow(c->d, req);
	(void)params;
}

static void m_filter_status(struct control *c, struct ctl_req *req, json_t *params)
{
	ctl_req_reply(req, filter_status_json(c->d));
	(void)params;
}

static void m_dns_status(struct control *c, struct ctl_req *req, json_t *params)
{
	ctl_req_reply(req, json_pack("{s:b, s:o?, s:o?}", "intercepting", dnsproxy_intercepting(c->d),
				     "engine", dnsproxy_status_json(c->d), "provider",
				     dnsprov_status_json(c->d)));
	(void)params;
}

static void m_packet_status(struct control *c, struct ctl_req *req, json_t *params)
{
	ctl_req_reply(req, pktfilter_status_json(c->d));
	(void)params;
}

/* Packet tunnels: tunnel.c. */
static void m_tunnel_start(struct control *c, struct ctl_req *req, json_t *params)
{
	tunnel_ctl_start(c->d, req, params);
}

static void m_tunnel_stop(struct control *c, struct ctl_req *req, json_t *params)
{
	tunnel_ctl_stop(c->d, req, params);
}

static void m_tunnel_status(struct control *c, struct ctl_req *req, json_t *params)
{
	tunnel_ctl_status(c->d, req, params);
}

static void m_tunnel_watch(struct control *c, struct ctl_req *req, json_t *params)
{
	tunnel_ctl_watch(c->d, req, params);
}

/* Split-DNS routes: dnsctl.c. */
static void m_dns_route_add(struct control *c, struct ctl_req *req, json_t *params)
{
	dnsctl_route_add(c->d, req, params, req->client->cred.uid);
}

static void m_dns_route_del(struct control *c, struct ctl_req *req, json_t *params)
{
	dnsctl_route_del(c->d, req, params, req->client->cred.uid);
}

static void m_dns_route_list(struct control *c, struct ctl_req *req, json_t *params)
{
	dnsctl_route_list(c->d, req, params);
}

struct method {
	const char *name;
	bool admin;
	void (*fn)(struct control *, struct ctl_req *, json_t *);
};

static const struct method methods[] = {
	{ "status", false, m_status },
	{ "extension.list", false, m_extension_list },
	{ "extension.register", true, m_extension_register },
	{ "extension.unregister", true, m_extension_unregister },
	{ "extension.restart", true, m_extension_restart },
	{ "extension.activate", false, m_extension_activate },
	{ "extension.decide", false, m_extension_decide },
	{ "extension.approve", true, m_extension_approve },
	{ "extension.reject", true, m_extension_reject },
	{ "extension.deactivate", false, m_extension_deactivate },
	{ "extension.properties", false, m_extension_properties },
	{ "extension.reset", false, m_extension_reset },
	{ "config.list", false, m_config_list },
	{ "config.add", true, m_config_add },
	{ "config.remove", true, m_config_remove },
	{ "config.start", true, m_config_start },
	{ "config.stop", true, m_config_stop },
	{ "config.message", true, m_config_message },
	{ "logs", true, m_logs },
	/* Flows show who talks to whom: administrators only. */
	{ "flows.list", true, m_flows_list },
	{ "flows.decide", true, m_flows_decide },
	{ "flows.follow", true, m_flows_follow },
	{ "filter.status", true, m_filter_status },
	{ "dns.status", true, m_dns_status },
	{ "packet.status", true, m_packet_status },
	/* Tunnels change the host's routing: administrators only; status shows addresses too. */
	{ "tunnel.start", true, m_tunnel_start },
	{ "tunnel.stop", true, m_tunnel_stop },
	{ "tunnel.status", true, m_tunnel_status },
	{ "tunnel.watch", true, m_tunnel_watch },
	/* Routes name internal domains and their servers: administrators only, listing too. */
	{ "dns.route.add", true, m_dns_route_add },
	{ "dns.route.del", true, m_dns_route_del },
	{ "dns.route.list", true, m_dns_route_list },
};

static const struct method *method_find(const char *name)
{
	size_t i;

	for (i = 0; i < NE_ARRAY_SIZE(methods); i++)
		if (!strcmp(methods[i].name, name))
			return &methods[i];
	return NULL;
}

/* ---- requests -------------------------------------------------------------------- */

static void dispatch(struct ctl_client *cl, struct ctl_req *req, const struct ctl_request *r)
{
	const struct method *m = method_find(r->method);

	if (!m) {
		ctl_req_error(req, "unknown-method", "no method '%.64s'", r->method);
		return;
	}
	if (m->admin && !cl->admin) {
		ctl_req_error(req, "permission-denied", "%s needs root or membership in group %s",
			      m->name, cl->c->d->opt.admin_group);
		return;
	}
	m->fn(cl->c, req, r->params);
}

static void handle_line(struct ctl_client *cl, const char *line, size_t len)
{
	struct ctl_request r;
	struct ctl_req *req;
	char err[256];
	int k;

	req = calloc(1, sizeof(*req));
	if (!req) {
		client_close(cl);
		return;
	}
	req->refs = 1;
	req->client = cl;
	cl->refs++;
	k = ctl_request_parse(line, len, &r, err, sizeof(err));
	if (k < 0) {
		req->id = r.id ? json_incref(r.id) : NULL;
		ctl_req_error(req, "invalid-request", "%s", err);
	} else {
		req->id = r.id ? json_incref(r.id) : NULL;
		dispatch(cl, req, &r);
	}
	ctl_request_clear(&r);
	ctl_req_unref(req);
}

static void client_consume(struct ctl_client *cl)
{
	size_t start = 0, i;

	for (i = 0; i < cl->in_len && !cl->closed; i++) {
		if (cl->in[i] != '\n')
			continue;
		if (i > start)
			handle_line(cl, cl->in + start, i - start);
		start = i + 1;
	}
	if (cl->closed)
		return;
	memmove(cl->in, cl->in + start, cl->in_len - start);
	cl->in_len -= start;
}

/* recv plus the fds that came with the bytes (SCM_RIGHTS). Fds past CTL_MAX_FDS are closed. */
static ssize_t client_recv(struct ctl_client *cl)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * CTL_MAX_FDS)];
	} ctrl;
	struct iovec iov = { cl->in + cl->in_len, CTL_REQUEST_MAX - cl->in_len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctrl,
			     .msg_controllen = sizeof(ctrl) };
	struct cmsghdr *cm;
	ssize_t n;

	n = recvmsg(cl->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t i, k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (cl->n_fds < CTL_MAX_FDS)
				cl->fds[cl->n_fds++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

static int client_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct ctl_client *cl = userdata;
	ssize_t n;

	cl->refs++;
	if (revents & EPOLLOUT)
		client_flush(cl);
	if (!cl->closed && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		n = client_recv(cl);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			client_close(cl);
		} else if (n > 0) {
			cl->in_len += (size_t)n;
			client_consume(cl);
			/* An fd belongs to the request line it came with: once no partial line
			 * is buffered, fds that no request took are stale. */
			if (!cl->closed && cl->in_len == 0)
				client_close_fds(cl);
			if (!cl->closed && cl->in_len == CTL_REQUEST_MAX) {
				struct ctl_req tmp = { .client = cl, .refs = 1 };

				cl->refs++;
				ctl_req_error(&tmp, "request-too-large",
					      "a request is one line of at most %d bytes", CTL_REQUEST_MAX);
				client_unref(cl);
				client_close(cl);
			}
		}
	}
	client_unref(cl);
	(void)s;
	return 0;
}

static void client_close(struct ctl_client *cl)
{
	if (cl->closed)
		return;
	cl->closed = true;
	client_close_fds(cl);
	sd_event_source_disable_unref(cl->src);
	cl->src = NULL;
	ne_closep(&cl->fd);
	ne_list_remove(&cl->link);
	cl->c->n_clients--;
	client_unref(cl);
}

static bool cred_is_admin(struct control *c, int fd, const struct ucred *cred)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);
	size_t i;

	if (cred->uid == 0)
		return true;
	if (c->d->admin_gid == (gid_t)-1)
		return false;
	if (cred->gid == c->d->admin_gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == c->d->admin_gid)
			return true;
	return false;
}

static int control_on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct control *c = userdata;
	struct ctl_client *cl;
	socklen_t len = sizeof(struct ucred);
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (cfd < 0)
		return 0;
	if (c->n_clients >= CTL_MAX_CLIENTS) {
		log_warnx("control: %d clients connected; refusing another", CTL_MAX_CLIENTS);
		close(cfd);
		return 0;
	}
	cl = calloc(1, sizeof(*cl));
	if (!cl || !(cl->in = malloc(CTL_REQUEST_MAX)) ||
	    getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cl->cred, &len) < 0 ||
	    sd_event_add_io(c->d->event, &cl->src, cfd, EPOLLIN, client_on_io, cl) < 0) {
		if (cl)
			free(cl->in);
		free(cl);
		close(cfd);
		return 0;
	}
	cl->c = c;
	cl->fd = cfd;
	cl->refs = 1;
	cl->admin = cred_is_admin(c, cfd, &cl->cred);
	ne_list_init(&cl->link);
	ne_list_append(&c->clients, &cl->link);
	c->n_clients++;
	(void)s;
	(void)revents;
	return 0;
}

static int bind_socket(struct control *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (ne_strscpy(sa.sun_path, c->path, sizeof(sa.sun_path)) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return ne_negerrno();
	/* A socket file left by a dead instance is replaced; a live one is not. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	unlink(c->path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(c->path, 0666) < 0 ||
	    listen(fd, 64) < 0) {
		r = ne_negerrno();
		close(fd);
		return r;
	}
	c->fd = fd;
	return 0;
}

int control_open(struct daemon *d, struct control **ret)
{
	struct control *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->d = d;
	c->fd = -1;
	ne_list_init(&c->clients);
	snprintf(c->path, sizeof(c->path), "%s/netextd.sock", d->opt.run_dir);
	r = bind_socket(c);
	if (r < 0) {
		log_warnx("control: cannot listen on %s: %s%s", c->path, strerror(-r),
			  r == -EADDRINUSE ? " (another netextd is using this run dir)" : "");
		free(c);
		return r;
	}
	r = sd_event_add_io(d->event, &c->src, c->fd, EPOLLIN, control_on_accept, c);
	if (r < 0) {
		close(c->fd);
		unlink(c->path);
		free(c);
		return r;
	}
	log_info("control: listening on %s", c->path);
	*ret = c;
	return 0;
}

void control_close(struct control *c)
{
	struct ne_list *pos, *tmp;

	if (!c)
		return;
	ne_list_for_each(pos, tmp, &c->clients)
		client_close(ne_container_of(pos, struct ctl_client, link));
	sd_event_source_disable_unref(c->src);
	ne_closep(&c->fd);
	unlink(c->path);
	free(c);
}
