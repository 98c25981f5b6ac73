/* libnetext test harness: drives an extension's providers in-process, without netextd and
 * without root, so authors can unit-test them (with cmocka, gtest, anything).
 *
 *     ne_extension *ext;  ne_harness *h;  int err;
 *     ne_extension_new(&ext);
 *     ne_extension_register(ext, NE_PROVIDER_MESSAGE, &my_ops, NULL);
 *     ne_harness_new(ext, &h);                      // connects ext to the harness
 *     ne_harness_start(h, "cfg", NE_PROVIDER_MESSAGE, NULL, &err);
 *     ne_harness_message(h, "cfg", "ping", 4, &err, buf, sizeof buf, &len);
 *     ne_harness_stop(h, "cfg", NE_STOP_REASON_USER_INITIATED);
 *     ne_harness_free(h); ne_extension_free(ext);
 *
 * The harness speaks the real wire protocol to the extension over a socketpair and runs
 * the extension's dispatch itself while it waits, so asynchronous completions that the
 * provider makes from its callbacks work. Calls time out after timeout_ms (default 5000)
 * with -ETIMEDOUT, e.g. when a provider never completes. */
#ifndef NETEXT_HARNESS_H
#define NETEXT_HARNESS_H

#include <netext/extension.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ne_harness ne_harness;

NE_EXPORT int ne_harness_new(ne_extension *ext, ne_harness **ret_harness);
NE_EXPORT void ne_harness_free(ne_harness *harness);
NE_EXPORT void ne_harness_set_timeout(ne_harness *harness, int timeout_ms);
/* Called on every turn of the harness's wait loop (every few milliseconds while a call
 * waits), after the extension's dispatch: the place to run work a provider defers to its
 * own event loop, such as a timer that completes a start later. NULL removes it. */
NE_EXPORT void ne_harness_set_idle(ne_harness *harness, void (*idle)(void *userdata),
				   void *userdata);

/* Starts a provider for configuration `config`. options is a NULL-terminated array of
 * "key", "value" strings (NULL ok). *ret_error gets the provider's completion error. */
NE_EXPORT int ne_harness_start(ne_harness *harness, const char *config, ne_provider_type type,
			       const char *const *options, int *ret_error);
/* Stops it and waits for the stop completion. */
NE_EXPORT int ne_harness_stop(ne_harness *harness, const char *config, ne_stop_reason reason);
/* Sends an app message and waits for the reply: *ret_error, and up to cap bytes of data. */
NE_EXPORT int ne_harness_message(ne_harness *harness, const char *config, const void *data,
				 size_t len, int *ret_error, void *reply, size_t cap,
				 size_t *ret_len);
/* Log lines the extension sent, oldest first; NULL past the end. */
NE_EXPORT const char *ne_harness_log_line(const ne_harness *harness, size_t i);

#ifdef __cplusplus
}
#endif

#endif
