/* The control protocol: limits and the request parser shared by the daemon's control
 * socket and its fuzz harness. A request is one line of JSON:
 *     {"id": 1, "method": "config.start", "params": {"name": "demo"}}
 * and its reply one line:
 *     {"id": 1, "ok": true, "result": {...}}
 *     {"id": 1, "ok": false, "error": {"code": "not-found", "message": "..."}}
 * Error codes: invalid-request, request-too-large, unknown-method, invalid-params,
 * permission-denied, forbidden, not-found, exists, busy, not-running, unsupported, failed,
 * timeout, internal; and the lifecycle's typed errors (docs/lifecycle.md):
 * extension-not-found, missing-identifier, duplicate-identifier, unknown-provider-type,
 * signature-invalid, validation-failed, forbidden-by-policy, request-cancelled,
 * request-superseded, authorization-required.
 * Lifecycle methods called with "wait": true may send event lines before their reply:
 *     {"id": 1, "event": "needs-approval", "data": {...}} */
#pragma once

#include <stddef.h>

#include <jansson.h>

#define CTL_REQUEST_MAX (64 * 1024)  /* one request line, newline excluded */
#define CTL_OUTPUT_MAX (4 * 1024 * 1024)
#define NE_NAME_MAX 128
#define NE_OPTIONS_MAX 64
#define NE_OPTION_VALUE_MAX 1024

struct ctl_request {
	json_t *msg;         /* owns everything below */
	json_t *id;          /* integer or string, or NULL */
	const char *method;
	json_t *params;      /* always an object (empty when absent) */
};

/* Parses one request line. On failure returns -EINVAL with a message for the client in err;
 * r->id is still set when the line was an object with a usable id. Always call
 * ctl_request_clear afterwards. */
int ctl_request_parse(const char *line, size_t len, struct ctl_request *r, char *err, size_t errlen);
void ctl_request_clear(struct ctl_request *r);
