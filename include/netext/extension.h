/* libnetext, extension side: what an extension process links against to host providers.
 *
 * An extension is one process, started and supervised by netextd, that hosts one provider
 * per configuration the administrator enabled. It registers a callback table per provider
 * type it offers, then either runs the library's loop:
 *
 *     ne_extension *ext;
 *     ne_extension_new(&ext);
 *     ne_extension_register(ext, NE_PROVIDER_MESSAGE, &my_ops, my_state);
 *     return ne_extension_run(ext) < 0;          // returns when netextd closes the channel
 *
 * or integrates into its own loop: poll ne_extension_fd() for reading, call
 * ne_extension_dispatch() when it is readable.
 *
 * Threading: all callbacks run on the thread that calls ne_extension_run/dispatch. The
 * completion functions (ne_provider_start_done, ne_provider_stop_done, ne_message_reply)
 * must be called from that thread as well, either inside the callback or later.
 *
 * Heartbeat: netextd pings the extension periodically; the library answers inside
 * dispatch. A callback that blocks longer than the daemon's heartbeat deadline gets the
 * extension killed and restarted as hung, so never block in a callback. */
#ifndef NETEXT_EXTENSION_H
#define NETEXT_EXTENSION_H

#include <netext/netext.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ne_extension ne_extension;
/* One running provider: the instance serving one configuration. */
typedef struct ne_provider ne_provider;
/* An app message waiting for its reply. */
typedef struct ne_message ne_message;

/* The callbacks of every provider type. Set .size = sizeof(struct ne_provider_ops);
 * callbacks left NULL get a default behaviour (documented per field). */
struct ne_provider_ops {
	uint32_t size;

	/* startProvider(options:completionHandler:). Call ne_provider_start_done() once,
	 * now or later. NULL: the provider starts at once. */
	void (*start)(ne_provider *provider, const ne_options *options, void *userdata);

	/* stopProvider(with:completionHandler:). Call ne_provider_stop_done() once, now or
	 * later; netextd kills the extension if it never comes. NULL: stops at once. */
	void (*stop)(ne_provider *provider, ne_stop_reason reason, void *userdata);

	/* handleAppMessage(_:completionHandler:). Reply once with ne_message_reply(), now or
	 * later; data is valid during the call only. NULL: replies -EOPNOTSUPP. */
	void (*app_message)(ne_provider *provider, ne_message *message, const void *data,
			    size_t len, void *userdata);
};

NE_EXPORT int ne_extension_new(ne_extension **ret_ext);
/* Closes the channel (if open) and frees everything, including live providers. NULL ok. */
NE_EXPORT void ne_extension_free(ne_extension *ext);

/* Registers the callbacks for one provider type; userdata is passed to each callback.
 * Call before connecting. -EEXIST if the type is registered already, -EINVAL for a bad
 * type or a table whose size is too small. */
NE_EXPORT int ne_extension_register(ne_extension *ext, ne_provider_type type,
				    const struct ne_provider_ops *ops, void *userdata);

/* Connects to netextd over the channel it passed at fd 3 (or $NETEXT_FD), and sends the
 * handshake. -ENOTCONN when the process was not started by netextd. */
NE_EXPORT int ne_extension_connect(ne_extension *ext);
/* Uses fd as the channel instead (tests, the harness). On success the extension takes
 * ownership of fd; on failure the caller keeps it. -ENOTCONN unless fd is an AF_UNIX
 * SOCK_SEQPACKET socket. */
NE_EXPORT int ne_extension_connect_fd(ne_extension *ext, int fd);

/* The channel's fd, to poll for reading; negative before connect. */
NE_EXPORT int ne_extension_fd(const ne_extension *ext);
/* Handles every message that is ready, without blocking. Returns 0, 1 once the daemon
 * closed the channel (the extension should exit), or a negative errno on a protocol
 * fault (the extension should exit; netextd restarts it). */
NE_EXPORT int ne_extension_dispatch(ne_extension *ext);
/* Connects if needed and dispatches until the daemon closes the channel (returns 0) or an
 * error (negative errno). */
NE_EXPORT int ne_extension_run(ne_extension *ext);

/* Sends a log line to netextd, which records it under the extension's name
 * (`netextctl logs`). printf-style; lines are cut at 1 KiB. */
NE_EXPORT int ne_extension_log(ne_extension *ext, ne_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The identifier netextd knows this extension by (after the handshake), else NULL. */
NE_EXPORT const char *ne_extension_identifier(const ne_extension *ext);

/* Provider accessors. */
NE_EXPORT ne_provider_type ne_provider_get_type(const ne_provider *provider);
/* The configuration this provider serves. */
NE_EXPORT const char *ne_provider_configuration(const ne_provider *provider);
NE_EXPORT ne_extension *ne_provider_extension(const ne_provider *provider);
/* Per-provider state for the author; NULL until set. */
NE_EXPORT void ne_provider_set_context(ne_provider *provider, void *context);
NE_EXPORT void *ne_provider_get_context(const ne_provider *provider);

/* Completes a start: error 0 for success, or a negative errno with a message for the
 * administrator (NULL ok). A failed start leaves the provider stopped. */
NE_EXPORT int ne_provider_start_done(ne_provider *provider, int error, const char *message);
/* Completes a stop. The provider handle is freed: do not use it afterwards. */
NE_EXPORT int ne_provider_stop_done(ne_provider *provider);

/* Replies to an app message (error 0 with data, or a negative errno). The message handle
 * is freed. len is at most NE_MESSAGE_MAX. */
#define NE_MESSAGE_MAX 65536
NE_EXPORT int ne_message_reply(ne_message *message, int error, const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif
