/* Parsing of control requests: untrusted bytes from any local user. Pure: no daemon state,
 * so the fuzz harness exercises exactly this code. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control.h"

static int fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

int ctl_request_parse(const char *line, size_t len, struct ctl_request *r, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *id, *method, *params;

	memset(r, 0, sizeof(*r));
	if (len > CTL_REQUEST_MAX)
		return fail(err, errlen, "request too large");
	r->msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!r->msg) {
		snprintf(err, errlen, "not valid JSON: %s (column %d)", jerr.text, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(r->msg))
		return fail(err, errlen, "a request is a JSON object");
	id = json_object_get(r->msg, "id");
	if (id && (json_is_integer(id) || (json_is_string(id) && json_string_length(id) <= 128)))
		r->id = id;
	method = json_object_get(r->msg, "method");
	if (!json_is_string(method) || json_string_length(method) > 64 ||
	    strlen(json_string_value(method)) != json_string_length(method))
		return fail(err, errlen, "a request needs a string 'method'");
	params = json_object_get(r->msg, "params");
	if (params && !json_is_object(params))
		return fail(err, errlen, "'params' must be an object");
	if (!params) {
		params = json_object();
		if (!params || json_object_set_new(r->msg, "params", params) < 0)
			return fail(err, errlen, "out of memory");
	}
	r->method = json_string_value(method);
	r->params = params;
	return 0;
}

void ctl_request_clear(struct ctl_request *r)
{
	json_decref(r->msg);
	memset(r, 0, sizeof(*r));
}
