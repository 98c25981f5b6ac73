/* System-extension lifecycle: activation requests, approval, replace decisions,
 * replacement, deactivation, and the protected bundle store <state_dir>/bundles
 * (docs/lifecycle.md has the states, results and errors this file implements).
 *
 * Trust: requests come from anyone on the host (control.c). A bundle is read through the
 * directory fd its requester opened, copied into the store (bundle.c) and judged only as
 * that copy, so what was verified is what runs. Who may do what comes from SO_PEERCRED,
 * the managed policy (root's files, policy.c) and signatures with the policy's team keys,
 * never from what a request says about itself.
 *
 * Crash safety: each change is one SQLite transaction (store.c) plus renames inside the
 * store directory; sysext_init() deletes every directory no record names and finishes
 * deactivations a crash interrupted, so a restart shows the old state or the new one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <netext/netext.h>

#include "bundle.h"
#include "daemon.h"
#include "log.h"
#include "policy.h"
#include "sandbox.h"
#include "store.h"
#include "util.h"

#define DECISION_TIMEOUT_USEC (120ULL * 1000000ULL)
#define TRANSIENT_ID_BASE (1ULL << 32) /* ids of activations never stored as requests */
/* Requests waiting for approval hold a copy of their bundle: bounded, so that users who
 * are not administrators cannot fill the disk. */
#define MAX_WAITING 64
#define MAX_WAITING_PER_UID 8

enum op_kind { OP_ACTIVATE, OP_DEACTIVATE };
enum op_phase { PH_NEW, PH_APPROVAL, PH_DECISION, PH_STOPPING };

/* A lifecycle change in progress, and the clients waiting for its outcome. */
struct sysext_op {
	struct ne_list link;
	struct daemon *d;
	uint64_t id;               /* the stored request's id, or a transient one */
	enum op_kind kind;
	enum op_phase phase;
	struct store_request q;    /* activation: what to install; deactivation: identifier */
	bool persisted;            /* q is in the requests table (waiting for approval) */
	bool consent;              /* approved by an administrator or policy: may replace */
	struct ctl_req *req[2];    /* [0] the requester, [1] an approver; either may be NULL */
	bool wait[2];              /* wants events (else the first milestone is its reply) */
	char old_dir[256];         /* the bundle to delete once the change is done */
	uint32_t old_version;
	sd_event_source *timer;    /* replace-decision deadline */
};

/* ---- the store directory ---------------------------------------------------------- */

static void remove_bundle(struct daemon *d, const char *dir)
{
	int r;

	if (!dir[0] || d->bundles_fd < 0)
		return;
	r = ne_rmtree_at(d->bundles_fd, dir);
	if (r < 0)
		log_warnx("bundle store: cannot remove %s: %s", dir, strerror(-r));
	fsync(d->bundles_fd);
}

static uint32_t random32(void)
{
	uint32_t x = 0;

	if (getrandom(&x, sizeof(x), 0) != sizeof(x))
		x = (uint32_t)ne_now_usec();
	return x;
}

/* ---- JSON descriptions ------------------------------------------------------------ */

static json_t *props_json(const char *identifier, const struct store_bundle *b, const char *state)
{
	bool enabled = !strcmp(state, "enabled") || !strcmp(state, "replacing");

	return json_pack("{s:s, s:I, s:s, s:s, s:b, s:b, s:b, s:s, s:s, s:s, s:s, s:s}",
			 "identifier", identifier, "version", (json_int_t)b->version,
			 "short_version", b->short_version, "team", b->team, "enabled", enabled,
			 "awaiting_approval", !strcmp(state, "awaiting-approval"),
			 "uninstalling", !strcmp(state, "deactivating"), "state", state,
			 "description", b->description, "providers", b->providers, "permissions",
			 (b->permissions & NE_PERM_NETWORK) ? "network" : "", "digest", b->digest);
}

static json_t *request_json(const struct store_request *q)
{
	json_t *j = props_json(q->identifier, &q->b, "awaiting-approval");

	json_object_set_new(j, "request", json_integer((json_int_t)q->id));
	json_object_set_new(j, "requester_uid", json_integer(q->requester_uid));
	json_object_set_new(j, "source", json_string(q->source));
	json_object_set_new(j, "created", json_integer(q->created));
	return j;
}

/* ---- operations and their clients ------------------------------------------------- */

static struct sysext_op *op_new(struct daemon *d, enum op_kind kind, const struct store_request *q)
{
	struct sysext_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->d = d;
	op->kind = kind;
	op->q = *q;
	op->id = q->id > 0 ? (uint64_t)q->id : TRANSIENT_ID_BASE + d->next_op_id++;
	op->persisted = q->id > 0;
	ne_list_init(&op->link);
	ne_list_append(&d->ops, &op->link);
	return op;
}

static void op_free(struct sysext_op *op)
{
	unsigned i;

	for (i = 0; i < 2; i++)
		ctl_req_unref(op->req[i]);
	sd_event_source_disable_unref(op->timer);
	ne_list_remove(&op->link);
	free(op);
}

static void op_attach(struct sysext_op *op, unsigned slot, struct ctl_req *req, bool wait)
{
	if (op->req[slot]) {
		ctl_req_error(op->req[slot], "request-superseded", "another client took over this request");
		ctl_req_unref(op->req[slot]);
	}
	op->req[slot] = req ? ctl_req_ref(req) : NULL;
	op->wait[slot] = wait;
}

static struct sysext_op *op_find(struct daemon *d, uint64_t id)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &d->ops) {
		struct sysext_op *op = ne_container_of(pos, struct sysext_op, link);

		if (op->id == id)
			return op;
	}
	return NULL;
}

static struct sysext_op *op_find_identifier(struct daemon *d, const char *identifier, enum op_kind kind)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &d->ops) {
		struct sysext_op *op = ne_container_of(pos, struct sysext_op, link);

		if (op->kind == kind && !strcmp(op->q.identifier, identifier))
			return op;
	}
	return NULL;
}

static json_t *op_result(struct sysext_op *op, const char *result, const char *detail)
{
	return json_pack("{s:s, s:I, s:s, s:I, s:s, s:s, s:s}", "result", result, "request",
			 (json_int_t)op->id, "identifier", op->q.identifier, "version",
			 (json_int_t)op->q.b.version, "short_version", op->q.b.short_version, "team",
			 op->q.b.team, "detail", detail);
}

/* A milestone (needs-approval, will-complete-later): an event for clients that wait, the
 * final reply for those that do not. */
static void op_progress(struct sysext_op *op, const char *what, const char *detail)
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		if (!op->req[i])
			continue;
		if (op->wait[i]) {
			ctl_req_event(op->req[i], what, op_result(op, what, detail));
			continue;
		}
		ctl_req_reply(op->req[i], op_result(op, what, detail));
		ctl_req_unref(op->req[i]);
		op->req[i] = NULL;
	}
}

/* Completed: every client gets the result, and the operation ends. */
static void op_finish(struct sysext_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void op_finish(struct sysext_op *op, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	unsigned i;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_info("extension %s: %s", op->q.identifier, detail);
	for (i = 0; i < 2; i++)
		if (op->req[i])
			ctl_req_reply(op->req[i], op_result(op, "completed", detail));
	op_free(op);
}

static void op_fail(struct sysext_op *op, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void op_fail(struct sysext_op *op, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	unsigned i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("extension %s: request %llu failed (%s): %s", op->q.identifier,
		  (unsigned long long)op->id, code, msg);
	for (i = 0; i < 2; i++)
		if (op->req[i])
			ctl_req_error(op->req[i], code, "%s", msg);
	op_free(op);
}

/* An activation that will not install: its request and staged bundle go. */
static void op_discard(struct sysext_op *op)
{
	if (op->persisted)
		store_request_delete(op->d->store, op->q.id);
	op->persisted = false;
	remove_bundle(op->d, op->q.b.dir);
}

/* ---- checks ------------------------------------------------------------------------ */

struct verdict {
	const char *code;     /* NULL: acceptable */
	char msg[512];
	bool by_policy;       /* a [Team] section approves it */
};

static void verdict_set(struct verdict *v, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void verdict_set(struct verdict *v, const char *code, const char *fmt, ...)
{
	va_list ap;

	v->code = code;
	va_start(ap, fmt);
	vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
	va_end(ap);
}

/* Signature, policy, identity and version checks for bundle b (already in the store). */
static void judge(struct daemon *d, const struct policy *pol, const struct ne_bundle *b,
		  struct verdict *v)
{
	const struct ne_manifest *m = &b->manifest;
	struct store_extension cur;
	struct store_request other;
	struct ne_pubkey *keys = NULL;
	size_t n_keys = 0;
	const char *type;
	enum ne_bundle_error be;
	uid_t uid;
	gid_t gid;

	memset(v, 0, sizeof(*v));
	if (b->has_signature) {
		if (policy_trusted_keys(pol, &keys, &n_keys) < 0) {
			verdict_set(v, "internal", "out of memory");
			return;
		}
		be = ne_bundle_verify(b, keys, n_keys, v->msg, sizeof(v->msg));
		free(keys);
		if (be != NE_BUNDLE_OK) {
			v->code = ne_bundle_error_code(be);
			return;
		}
		v->by_policy = policy_approves(pol, m->team, m->identifier);
	} else if (!d->opt.developer) {
		verdict_set(v, "signature-invalid",
			    "the bundle is not signed: sign it with `netextctl sign BUNDLE --key FILE` "
			    "(unsigned bundles are accepted only in developer mode)");
		return;
	}
	type = policy_refused_type(pol, m);
	if (type) {
		verdict_set(v, "forbidden-by-policy", "managed policy does not allow %s providers "
			    "(AllowedProviderTypes in %s)", type, d->opt.policy_dir);
		return;
	}
	if (!pol->allow_user_overrides && !v->by_policy) {
		verdict_set(v, "forbidden-by-policy",
			    "managed policy allows only the extensions its [Team] sections approve "
			    "(AllowUserOverrides = no), and not %s of team %s", m->identifier,
			    m->team);
		return;
	}
	if (store_extension_get(d->store, m->identifier, &cur) == 0) {
		if (!cur.b.dir[0]) {
			verdict_set(v, "duplicate-identifier",
				    "%s is registered by a developer from %s; remove that first "
				    "(netextctl dev unregister %s)", m->identifier, cur.executable,
				    m->identifier);
			return;
		}
		if (strcmp(cur.b.team, m->team)) {
			verdict_set(v, "duplicate-identifier", "%s is installed from team %s, not %s",
				    m->identifier, cur.b.team, m->team);
			return;
		}
		if (!pol->allow_downgrade && m->version < cur.b.version) {
			verdict_set(v, "forbidden-by-policy",
				    "version %u would replace the newer version %u, and managed policy "
				    "forbids downgrades (AllowDowngrade = no)", m->version, cur.b.version);
			return;
		}
	}
	if (store_request_find(d->store, m->identifier, &other) == 0 && strcmp(other.b.team, m->team)) {
		verdict_set(v, "duplicate-identifier", "a request for %s from team %s is waiting for "
			    "approval", m->identifier, other.b.team);
		return;
	}
	if (sandbox_resolve_user(d->opt.extension_user, &uid, &gid) < 0) {
		verdict_set(v, "failed", "extensions run as user %s, which cannot run them: create it "
			    "(useradd --system %s)", d->opt.extension_user, d->opt.extension_user);
		return;
	}
}

/* ---- installing -------------------------------------------------------------------- */

static void extension_from_request(struct daemon *d, const struct store_request *q,
				   struct store_extension *se)
{
	memset(se, 0, sizeof(*se));
	ne_strscpy(se->identifier, q->identifier, sizeof(se->identifier));
	ne_strscpy(se->executable, q->executable, sizeof(se->executable));
	ne_strscpy(se->user, d->opt.extension_user, sizeof(se->user));
	se->enabled = true;
	se->developer = false;
	ne_strscpy(se->state, "enabled", sizeof(se->state));
	se->b = q->b;
}

/* A waiting request for the same identifier loses to one that was just installed. */
static void supersede_waiting(struct daemon *d, const char *identifier, uint64_t except)
{
	struct store_request q;
	struct sysext_op *op;

	if (store_request_find(d->store, identifier, &q) < 0 || (uint64_t)q.id == except)
		return;
	store_request_delete(d->store, q.id);
	remove_bundle(d, q.b.dir);
	op = op_find(d, (uint64_t)q.id);
	if (op)
		op_fail(op, "request-superseded", "a newer request for %s was installed", identifier);
	log_info("extension %s: request %lld superseded", identifier, (long long)q.id);
}

/* Records op's version as the installed one (and drops its request) in one transaction.
 * On failure the operation has failed and is gone. */
static int op_record(struct sysext_op *op, bool enabled, struct store_extension *se)
{
	int r;

	extension_from_request(op->d, &op->q, se);
	se->enabled = enabled;
	supersede_waiting(op->d, op->q.identifier, op->id);
	r = store_extension_install(op->d->store, se, op->persisted ? op->q.id : 0);
	if (r < 0) {
		op_discard(op);
		op_fail(op, "internal", "cannot record the extension: %s", strerror(-r));
		return r;
	}
	op->persisted = false;
	return 0;
}

static void install_new(struct sysext_op *op)
{
	struct store_extension se;

	if (op_record(op, true, &se) < 0)
		return;
	ext_install(op->d, &se, NULL);
	op_finish(op, "activated version %u (%s) of team %s", op->q.b.version, op->q.b.short_version,
		  op->q.b.team);
}

static void finish_replace(struct sysext_op *op)
{
	remove_bundle(op->d, op->old_dir);
	op_finish(op, "replaced version %u with version %u (%s)", op->old_version, op->q.b.version,
		  op->q.b.short_version);
}

static void do_replace(struct sysext_op *op, const struct store_extension *cur)
{
	struct daemon *d = op->d;
	struct store_extension se;
	struct ext *e;
	char detail[256];
	int w = 0;

	sd_event_source_disable_unref(op->timer);
	op->timer = NULL;
	if (op_record(op, cur->enabled, &se) < 0)
		return;
	ne_strscpy(op->old_dir, cur->b.dir, sizeof(op->old_dir));
	op->old_version = cur->b.version;
	e = ext_find(d, op->q.identifier);
	if (e)
		w = ext_replace(e, &se);
	else
		ext_install(d, &se, NULL);
	if (w == 1) {
		op->phase = PH_STOPPING;
		snprintf(detail, sizeof(detail), "version %u's providers are stopping (app-update); "
			 "version %u starts once they have, within %u ms", cur->b.version,
			 op->q.b.version, d->opt.stop_timeout_ms);
		op_progress(op, "will-complete-later", detail);
		return;
	}
	finish_replace(op);
}

static int on_decision_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct sysext_op *op = userdata;

	op_discard(op);
	op_fail(op, "request-cancelled", "no replace decision within %llu s",
		DECISION_TIMEOUT_USEC / 1000000ULL);
	(void)s;
	(void)usec;
	return 0;
}

/* An approved activation: install, or decide about the installed version. */
static void activate_approved(struct sysext_op *op)
{
	struct daemon *d = op->d;
	struct store_extension cur;
	struct ext *e;
	json_t *data;

	if (store_extension_get(d->store, op->q.identifier, &cur) < 0) {
		install_new(op);
		return;
	}
	e = ext_find(d, op->q.identifier);
	if (!strcmp(cur.state, "deactivating") || (e && strcmp(ext_lifecycle(e), "enabled"))) {
		op_discard(op);
		op_fail(op, "busy", "%s is being replaced or deactivated; try again when that is done",
			op->q.identifier);
		return;
	}
	if (!strcmp(cur.b.digest, op->q.b.digest)) {
		op_discard(op);
		op_finish(op, "version %u (%s) is already active", cur.b.version, cur.b.short_version);
		return;
	}
	if (!strcmp(op->q.replace, "replace")) {
		do_replace(op, &cur);
		return;
	}
	if (!strcmp(op->q.replace, "ask") && op->req[0] && op->wait[0] && ctl_req_waiting(op->req[0])) {
		op->phase = PH_DECISION;
		data = json_pack("{s:I, s:o, s:o}", "request", (json_int_t)op->id, "installed",
				 props_json(cur.identifier, &cur.b, "enabled"), "new",
				 props_json(op->q.identifier, &op->q.b, "awaiting-approval"));
		json_object_set_new(json_object_get(data, "new"), "state", json_string("requested"));
		/* The decision is the requester's; an approver waits for its outcome. */
		ctl_req_event(op->req[0], "replace-decision", data);
		sd_event_add_time_relative(d->event, &op->timer, CLOCK_MONOTONIC, DECISION_TIMEOUT_USEC,
					   0, on_decision_timeout, op);
		log_info("extension %s: asking requester %llu whether to replace version %u with %u",
			 op->q.identifier, (unsigned long long)op->id, cur.b.version, op->q.b.version);
		return;
	}
	if (!strcmp(op->q.replace, "ask") && op->consent) {
		/* Nobody to ask; approving a request that replaces is consent to replace. */
		do_replace(op, &cur);
		return;
	}
	op_discard(op);
	if (!strcmp(op->q.replace, "cancel"))
		op_fail(op, "request-cancelled", "version %u (%s) of %s is installed and the request "
			"said not to replace it", cur.b.version, cur.b.short_version, cur.identifier);
	else
		op_fail(op, "request-cancelled", "version %u (%s) of %s is installed and nobody could "
			"be asked whether to replace it; activate with --replace (or wait for the "
			"question)", cur.b.version, cur.b.short_version, cur.identifier);
}

/* ---- control requests -------------------------------------------------------------- */

static void fill_request(struct daemon *d, const struct ne_bundle *b, const char *dir,
			 const char *source, const char *replace, const struct ucred *cred,
			 struct store_request *q)
{
	const struct ne_manifest *m = &b->manifest;

	memset(q, 0, sizeof(*q));
	ne_strscpy(q->identifier, m->identifier, sizeof(q->identifier));
	snprintf(q->executable, sizeof(q->executable), "%s/%s/%s", d->bundles_dir, dir, m->executable);
	ne_strscpy(q->b.team, m->team, sizeof(q->b.team));
	q->b.version = m->version;
	ne_strscpy(q->b.short_version, m->short_version, sizeof(q->b.short_version));
	ne_strscpy(q->b.dir, dir, sizeof(q->b.dir));
	ne_strscpy(q->b.digest, b->digest, sizeof(q->b.digest));
	ne_strscpy(q->b.description, m->description, sizeof(q->b.description));
	ne_manifest_providers_str(m, q->b.providers, sizeof(q->b.providers));
	q->b.permissions = m->permissions;
	ne_strscpy(q->replace, replace, sizeof(q->replace));
	q->requester_uid = cred->uid;
	q->requester_pid = cred->pid;
	ne_strscpy(q->source, source, sizeof(q->source));
}

struct waiting_count {
	uid_t uid;
	unsigned all, mine;
};

static int count_waiting_cb(const struct store_request *q, void *userdata)
{
	struct waiting_count *w = userdata;

	w->all++;
	w->mine += q->requester_uid == w->uid;
	return 0;
}

static bool too_many_waiting(struct daemon *d, uid_t uid, struct ctl_req *req)
{
	struct waiting_count w = { .uid = uid };

	store_request_foreach(d->store, count_waiting_cb, &w);
	if (w.mine >= MAX_WAITING_PER_UID)
		ctl_req_error(req, "busy", "uid %u has %u requests waiting for approval already; an "
			      "administrator must approve or reject them first", uid, w.mine);
	else if (w.all >= MAX_WAITING)
		ctl_req_error(req, "busy", "%u requests are waiting for approval already; an "
			      "administrator must approve or reject them first", w.all);
	else
		return false;
	return true;
}

void sysext_activate(struct daemon *d, struct ctl_req *req, int bundle_fd, const char *source,
		     const char *replace, bool wait, const struct ucred *cred, bool admin)
{
	char staging[32], dir[256], err[512];
	struct ne_bundle *b = NULL;
	struct store_request q, old;
	struct sysext_op *op;
	struct policy pol;
	struct verdict v;
	enum ne_bundle_error be;
	int64_t superseded = 0;
	bool had_old;
	int r;

	if (d->bundles_fd < 0) {
		ctl_req_error(req, "internal", "the bundle store is not available");
		return;
	}
	if (!admin && too_many_waiting(d, cred->uid, req))
		return;
	/* Root reads anything anyway; everyone else only gets what they could read. */
	snprintf(staging, sizeof(staging), ".staging-%08x", random32());
	be = ne_bundle_copy(bundle_fd, cred->uid == 0 ? (uid_t)-1 : cred->uid, d->bundles_fd, staging,
			    &b, err, sizeof(err));
	if (be != NE_BUNDLE_OK) {
		log_warnx("activation of %s by uid %u refused: %s", source, cred->uid, err);
		ctl_req_error(req, ne_bundle_error_code(be), "%s: %s", source, err);
		return;
	}
	policy_load(&pol, d->opt.policy_dir);
	judge(d, &pol, b, &v);
	policy_clear(&pol);
	if (v.code) {
		log_warnx("activation of %s (%s) by uid %u refused: %s", b->manifest.identifier, source,
			  cred->uid, v.msg);
		ctl_req_error(req, v.code, "%s", v.msg);
		goto drop;
	}
	snprintf(dir, sizeof(dir), "%s@%u-%.12s.%08x", b->manifest.identifier, b->manifest.version,
		 b->digest, random32());
	if (renameat(d->bundles_fd, staging, d->bundles_fd, dir) < 0) {
		ctl_req_error(req, "internal", "cannot store the bundle: %s", strerror(errno));
		goto drop;
	}
	staging[0] = '\0';
	fsync(d->bundles_fd);
	fill_request(d, b, dir, source, replace, cred, &q);
	log_info("extension %s: activation of version %u (%s, team %s%s) requested by uid %u from %s",
		 q.identifier, q.b.version, q.b.short_version, q.b.team,
		 b->has_signature ? "" : ", unsigned", cred->uid, source);
	if (admin || v.by_policy) {
		op = op_new(d, OP_ACTIVATE, &q);
		if (!op) {
			remove_bundle(d, dir);
			ctl_req_error(req, "internal", "out of memory");
			goto out;
		}
		op->consent = true;
		op_attach(op, 0, req, wait);
		activate_approved(op);
		goto out;
	}
	had_old = store_request_find(d->store, q.identifier, &old) == 0;
	r = store_request_put(d->store, &q, &superseded);
	if (r < 0) {
		remove_bundle(d, dir);
		ctl_req_error(req, "internal", "cannot record the request: %s", strerror(-r));
		goto out;
	}
	if (superseded && had_old) {
		struct sysext_op *prev = op_find(d, (uint64_t)superseded);

		remove_bundle(d, old.b.dir);
		if (prev)
			op_fail(prev, "request-superseded", "request %lld for %s replaces this one",
				(long long)q.id, q.identifier);
	}
	op = op_new(d, OP_ACTIVATE, &q);
	if (!op) {
		ctl_req_error(req, "internal", "out of memory");
		goto out;
	}
	op->phase = PH_APPROVAL;
	op_attach(op, 0, req, wait);
	log_info("extension %s: request %lld waits for approval (netextctl approve %s)", q.identifier,
		 (long long)q.id, q.identifier);
	op_progress(op, "needs-approval", "an administrator must approve it: netextctl approve");
	/* Without a client left to tell, the operation lives on only in the store. */
	if (!op->req[0] && !op->req[1])
		op_free(op);
	goto out;
drop:
	if (staging[0])
		ne_rmtree_at(d->bundles_fd, staging);
out:
	ne_bundle_free(b);
}

void sysext_decide(struct daemon *d, struct ctl_req *req, uint64_t op_id, bool replace,
		   const struct ucred *cred, bool admin)
{
	struct sysext_op *op = op_find(d, op_id);
	struct store_extension cur;

	if (!op || op->phase != PH_DECISION) {
		ctl_req_error(req, "extension-not-found", "no request %llu waits for a replace decision",
			      (unsigned long long)op_id);
		return;
	}
	if (!admin && cred->uid != op->q.requester_uid) {
		ctl_req_error(req, "permission-denied", "only the requester (uid %u) or an administrator "
			      "may decide", op->q.requester_uid);
		return;
	}
	ctl_req_reply(req, NULL);
	if (!replace) {
		op_discard(op);
		op_fail(op, "request-cancelled", "the requester chose not to replace the installed version");
		return;
	}
	if (store_extension_get(d->store, op->q.identifier, &cur) < 0) {
		op->phase = PH_NEW;
		install_new(op);
		return;
	}
	do_replace(op, &cur);
}

/* Re-judges a stored request's staged bundle: trust or policy may have changed since. */
static int rejudge(struct daemon *d, const struct store_request *q, const struct policy *pol,
		   struct verdict *v)
{
	struct ne_bundle *b = NULL;
	enum ne_bundle_error be;
	int fd;

	memset(v, 0, sizeof(*v));
	fd = openat(d->bundles_fd, q->b.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		verdict_set(v, "internal", "the staged bundle %s is missing: %s", q->b.dir, strerror(errno));
		return -1;
	}
	be = ne_bundle_load(fd, (uid_t)-1, &b, v->msg, sizeof(v->msg));
	close(fd);
	if (be != NE_BUNDLE_OK) {
		v->code = ne_bundle_error_code(be);
		return -1;
	}
	if (strcmp(b->digest, q->b.digest))
		verdict_set(v, "signature-invalid", "the staged copy of %s changed in the store", q->identifier);
	else
		judge(d, pol, b, v);
	ne_bundle_free(b);
	return v->code ? -1 : 0;
}

/* Approves q for an administrator (req) or, with req NULL, for the managed policy, which
 * then must approve it (signed with a trusted key of a [Team] section that approves it). */
static void approve_request(struct daemon *d, const struct store_request *q, struct ctl_req *req,
			    bool wait, const struct policy *pol)
{
	struct sysext_op *op = op_find(d, (uint64_t)q->id);
	struct verdict v;
	int r;

	if (op && (op->phase == PH_DECISION || op->phase == PH_STOPPING)) {
		if (req)
			ctl_req_error(req, "busy", "request %lld is approved already and in progress",
				      (long long)q->id);
		return;
	}
	r = rejudge(d, q, pol, &v);
	if (!req && (r < 0 || !v.by_policy))
		return; /* policy approves only what it can; the rest waits for a person */
	if (!op)
		op = op_new(d, OP_ACTIVATE, q);
	if (!op) {
		if (req)
			ctl_req_error(req, "internal", "out of memory");
		return;
	}
	op_attach(op, 1, req, wait);
	if (r < 0) {
		op_discard(op);
		op_fail(op, v.code, "%s", v.msg);
		return;
	}
	op->consent = true;
	op->phase = PH_NEW;
	log_info("extension %s: request %lld approved%s", q->identifier, (long long)q->id,
		 req ? "" : " by managed policy");
	activate_approved(op);
}

void sysext_approve(struct daemon *d, struct ctl_req *req, const char *identifier, bool wait)
{
	struct store_request q;
	struct policy pol;

	if (store_request_find(d->store, identifier, &q) < 0) {
		ctl_req_error(req, "extension-not-found", "no request for %s waits for approval", identifier);
		return;
	}
	policy_load(&pol, d->opt.policy_dir);
	approve_request(d, &q, req, wait, &pol);
	policy_clear(&pol);
}

void sysext_reject(struct daemon *d, struct ctl_req *req, const char *identifier)
{
	struct store_request q;
	struct sysext_op *op;

	if (store_request_find(d->store, identifier, &q) < 0) {
		ctl_req_error(req, "extension-not-found", "no request for %s waits for approval", identifier);
		return;
	}
	store_request_delete(d->store, q.id);
	remove_bundle(d, q.b.dir);
	op = op_find(d, (uint64_t)q.id);
	if (op)
		op_fail(op, "request-cancelled", "an administrator rejected the request");
	log_info("extension %s: request %lld rejected", identifier, (long long)q.id);
	ctl_req_reply(req, NULL);
}

/* ---- deactivation ------------------------------------------------------------------ */

static void finish_deactivate(struct sysext_op *op)
{
	int r = store_extension_delete(op->d->store, op->q.identifier);

	if (r < 0 && r != -ENOENT)
		log_warnx("extension %s: cannot delete its record: %s", op->q.identifier, strerror(-r));
	remove_bundle(op->d, op->old_dir);
	op_finish(op, "deactivated; its configurations were removed");
}

/* Starts deactivating cur (recorded first, so a crash finishes it at the next start). */
static int start_deactivate(struct daemon *d, const struct store_extension *cur, struct ctl_req *req,
			    bool wait)
{
	struct store_request q = { 0 };
	struct sysext_op *op;
	struct ext *e;
	char detail[256];
	int r;

	ne_strscpy(q.identifier, cur->identifier, sizeof(q.identifier));
	q.b = cur->b;
	r = store_extension_set_state(d->store, cur->identifier, "deactivating");
	if (r < 0)
		return r;
	op = op_new(d, OP_DEACTIVATE, &q);
	if (!op)
		return -ENOMEM;
	op_attach(op, 0, req, wait);
	ne_strscpy(op->old_dir, cur->b.dir, sizeof(op->old_dir));
	e = ext_find(d, cur->identifier);
	if (e && ext_deactivate(e) == 1) {
		op->phase = PH_STOPPING;
		snprintf(detail, sizeof(detail), "its providers are stopping (configuration-removed), "
			 "within %u ms", d->opt.stop_timeout_ms);
		op_progress(op, "will-complete-later", detail);
		return 0;
	}
	finish_deactivate(op);
	return 0;
}

/* Cancels activations of identifier still in progress or waiting. Returns how many. */
static int cancel_activations(struct daemon *d, const char *identifier, const char *why)
{
	struct store_request q;
	struct sysext_op *op;
	int n = 0;

	while ((op = op_find_identifier(d, identifier, OP_ACTIVATE)) && op->phase != PH_STOPPING) {
		op_discard(op);
		op_fail(op, "request-cancelled", "%s", why);
		n++;
	}
	if (store_request_find(d->store, identifier, &q) == 0) {
		store_request_delete(d->store, q.id);
		remove_bundle(d, q.b.dir);
		n++;
	}
	return n;
}

void sysext_deactivate(struct daemon *d, struct ctl_req *req, const char *identifier, bool wait,
		       bool admin)
{
	struct store_extension cur;
	struct policy pol;
	bool fixed;
	int r, n;

	if (!admin) {
		ctl_req_error(req, "authorization-required", "deactivating %s needs root or membership in "
			      "group %s", identifier, d->opt.admin_group);
		return;
	}
	policy_load(&pol, d->opt.policy_dir);
	fixed = policy_non_removable(&pol, identifier);
	policy_clear(&pol);
	if (fixed) {
		ctl_req_error(req, "forbidden-by-policy", "managed policy marks %s non-removable "
			      "(NonRemovable in %s)", identifier, d->opt.policy_dir);
		return;
	}
	if (op_find_identifier(d, identifier, OP_DEACTIVATE)) {
		ctl_req_error(req, "busy", "%s is already being deactivated", identifier);
		return;
	}
	if (op_find_identifier(d, identifier, OP_ACTIVATE) &&
	    op_find_identifier(d, identifier, OP_ACTIVATE)->phase == PH_STOPPING) {
		ctl_req_error(req, "busy", "%s is being replaced; deactivate it when that is done", identifier);
		return;
	}
	n = cancel_activations(d, identifier, "the extension is being deactivated");
	if (store_extension_get(d->store, identifier, &cur) < 0) {
		if (n)
			ctl_req_reply(req, json_pack("{s:s, s:s, s:s}", "result", "completed", "identifier",
						     identifier, "detail", "cancelled the waiting request"));
		else
			ctl_req_error(req, "extension-not-found", "%s is not installed", identifier);
		return;
	}
	r = start_deactivate(d, &cur, req, wait);
	if (r < 0)
		ctl_req_error(req, "internal", "cannot deactivate %s: %s", identifier, strerror(-r));
}

void sysext_on_deactivated(struct daemon *d, const char *identifier)
{
	struct sysext_op *op = op_find_identifier(d, identifier, OP_DEACTIVATE);

	if (op)
		finish_deactivate(op);
}

void sysext_on_replaced(struct daemon *d, const char *identifier)
{
	struct sysext_op *op = op_find_identifier(d, identifier, OP_ACTIVATE);

	if (op && op->phase == PH_STOPPING)
		finish_replace(op);
}

/* ---- queries and reset ------------------------------------------------------------- */

void sysext_properties(struct daemon *d, struct ctl_req *req, const char *identifier)
{
	json_t *a = json_array();
	struct store_extension cur;
	struct store_request q;

	if (store_extension_get(d->store, identifier, &cur) == 0) {
		struct ext *e = ext_find(d, identifier);

		json_array_append_new(a, props_json(identifier, &cur.b,
						    e ? ext_lifecycle(e) : cur.state));
	}
	if (store_request_find(d->store, identifier, &q) == 0)
		json_array_append_new(a, request_json(&q));
	ctl_req_reply(req, json_pack("{s:o}", "properties", a));
}

static int request_json_cb(const struct store_request *q, void *userdata)
{
	json_array_append_new(userdata, request_json(q));
	return 0;
}

void *sysext_requests_json(struct daemon *d)
{
	json_t *a = json_array();

	store_request_foreach(d->store, request_json_cb, a);
	return a;
}

struct names {
	char (*v)[256];
	size_t n, cap;
};

static int names_add(struct names *s, const char *name)
{
	if (!name[0])
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		void *p = realloc(s->v, cap * sizeof(*s->v));

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	ne_strscpy(s->v[s->n++], name, sizeof(s->v[0]));
	return 0;
}

static bool names_has(const struct names *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], name))
			return true;
	return false;
}

static int collect_request_cb(const struct store_request *q, void *userdata)
{
	return names_add(userdata, q->identifier);
}

static int collect_extension_cb(const struct store_extension *e, void *userdata)
{
	return names_add(userdata, e->identifier);
}

void sysext_reset(struct daemon *d, struct ctl_req *req)
{
	struct names ids = { 0 };
	struct store_extension cur;
	size_t i;
	int n = 0;

	store_request_foreach(d->store, collect_request_cb, &ids);
	store_extension_foreach(d->store, collect_extension_cb, &ids);
	for (i = 0; i < ids.n; i++) {
		const char *id = ids.v[i];

		n += cancel_activations(d, id, "reset by an administrator");
		if (store_extension_get(d->store, id, &cur) == 0 &&
		    !op_find_identifier(d, id, OP_DEACTIVATE) && start_deactivate(d, &cur, NULL, false) == 0)
			n++;
	}
	free(ids.v);
	log_info("reset: removing every extension and request (%d)", n);
	ctl_req_reply(req, json_pack("{s:i}", "removed", n));
}

/* ---- start-up ---------------------------------------------------------------------- */

struct init_walk {
	struct names keep, deactivating;
};

/* A deactivating extension's bundle is not kept: collect_garbage removes it. */
static int init_extension_cb(const struct store_extension *e, void *userdata)
{
	struct init_walk *w = userdata;

	if (!strcmp(e->state, "deactivating"))
		return names_add(&w->deactivating, e->identifier);
	return names_add(&w->keep, e->b.dir);
}

static int init_request_cb(const struct store_request *q, void *userdata)
{
	return names_add(&((struct init_walk *)userdata)->keep, q->b.dir);
}

/* Deletes every directory in the store that no record names. */
static void collect_garbage(struct daemon *d, const struct names *keep)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	fd = openat(d->bundles_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || names_has(keep, de->d_name))
			continue;
		log_info("bundle store: removing %s (no record names it)", de->d_name);
		remove_bundle(d, de->d_name);
	}
	closedir(dir);
}

int sysext_init(struct daemon *d)
{
	static const char *const db_files[] = { "netext.db", "netext.db-wal", "netext.db-shm" };
	struct init_walk w = { 0 };
	char path[PATH_MAX];
	size_t i;
	int r;

	/* The state directory becomes searchable (not readable) so that extensions reach
	 * their bundle; everything else in it stays private. */
	for (i = 0; i < NE_ARRAY_SIZE(db_files); i++) {
		snprintf(path, sizeof(path), "%s/%s", d->opt.state_dir, db_files[i]);
		if (chmod(path, 0600) < 0 && errno != ENOENT)
			return ne_negerrno();
	}
	if (chmod(d->opt.state_dir, 0711) < 0)
		return ne_negerrno();
	r = snprintf(d->bundles_dir, sizeof(d->bundles_dir), "%s/bundles", d->opt.state_dir);
	if (r < 0 || (size_t)r >= sizeof(d->bundles_dir))
		return -ENAMETOOLONG;
	if (mkdir(d->bundles_dir, 0755) < 0 && errno != EEXIST)
		return ne_negerrno();
	d->bundles_fd = open(d->bundles_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d->bundles_fd < 0 || fchmod(d->bundles_fd, 0755) < 0)
		return ne_negerrno();

	r = store_extension_foreach(d->store, init_extension_cb, &w);
	if (r >= 0)
		r = store_request_foreach(d->store, init_request_cb, &w);
	if (r < 0)
		goto out;
	for (i = 0; i < w.deactivating.n; i++) {
		log_info("extension %s: finishing its interrupted deactivation", w.deactivating.v[i]);
		store_extension_delete(d->store, w.deactivating.v[i]);
	}
	collect_garbage(d, &w.keep);
out:
	free(w.keep.v);
	free(w.deactivating.v);
	return r < 0 ? r : 0;
}

struct request_vec {
	struct store_request *v;
	size_t n, cap;
};

static int request_vec_cb(const struct store_request *q, void *userdata)
{
	struct request_vec *rv = userdata;

	if (rv->n == rv->cap) {
		size_t cap = rv->cap ? rv->cap * 2 : 8;
		void *p = realloc(rv->v, cap * sizeof(*rv->v));

		if (!p)
			return -ENOMEM;
		rv->v = p;
		rv->cap = cap;
	}
	rv->v[rv->n++] = *q;
	return 0;
}

/* Waiting requests that the managed policy approves go ahead without anyone present. */
void sysext_start(struct daemon *d)
{
	struct request_vec rv = { 0 };
	struct policy pol;
	size_t i;

	policy_load(&pol, d->opt.policy_dir);
	store_request_foreach(d->store, request_vec_cb, &rv);
	for (i = 0; i < rv.n; i++)
		if (policy_approves(&pol, rv.v[i].b.team, rv.v[i].identifier))
			approve_request(d, &rv.v[i], NULL, false, &pol);
	free(rv.v);
	policy_clear(&pol);
}

void sysext_fini(struct daemon *d)
{
	struct ne_list *pos, *tmp;

	ne_list_for_each(pos, tmp, &d->ops)
		op_free(ne_container_of(pos, struct sysext_op, link));
	ne_closep(&d->bundles_fd);
}
