/* ne_options: the read-only view of a provider's start options handed to the start
 * callback. The strings are copies, so the view does not depend on the frame buffer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib-internal.h"
#include "util.h"

struct ne_options {
	size_t n;
	char *keys[NE_WIRE_OPTIONS_MAX];
	char *values[NE_WIRE_OPTIONS_MAX];
};

void nelib_options_free(ne_options *options)
{
	size_t i;

	if (!options)
		return;
	for (i = 0; i < options->n; i++) {
		free(options->keys[i]);
		free(options->values[i]);
	}
	free(options);
}

int nelib_options_new(const struct ne_msg_start *m, ne_options **ret_options)
{
	ne_options *o;
	size_t i;

	if (m->n_options > NE_WIRE_OPTIONS_MAX)
		return -EINVAL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	for (i = 0; i < m->n_options; i++) {
		o->keys[i] = strndup(m->keys[i].p, m->keys[i].len);
		o->values[i] = strndup(m->values[i].p, m->values[i].len);
		o->n = i + 1;
		if (!o->keys[i] || !o->values[i])
			goto fail;
	}
	*ret_options = o;
	return 0;
fail:
	nelib_options_free(o);
	return -ENOMEM;
}

size_t ne_options_count(const ne_options *options)
{
	return options ? options->n : 0;
}

const char *ne_options_get(const ne_options *options, const char *key)
{
	size_t i;

	if (!options || !key)
		return NULL;
	for (i = 0; i < options->n; i++)
		if (strcmp(options->keys[i], key) == 0)
			return options->values[i];
	return NULL;
}

int ne_options_at(const ne_options *options, size_t i, const char **ret_key,
		  const char **ret_value)
{
	if (!options || i >= options->n)
		return -ERANGE;
	if (ret_key)
		*ret_key = options->keys[i];
	if (ret_value)
		*ret_value = options->values[i];
	return 0;
}

size_t nelib_sanitize(char *dst, const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max) : 0, i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	dst[n] = '\0';
	return n;
}

int nelib_ms_left(unsigned long long deadline_usec, int cap_ms)
{
	unsigned long long now = ne_now_usec(), left;

	if (now >= deadline_usec)
		return 0;
	left = (deadline_usec - now + 999) / 1000;
	return left > (unsigned long long)cap_ms ? cap_ms : (int)left;
}
