/* netext — the app side: activation requests for system extensions, as
 * OSSystemExtensionManager / OSSystemExtensionRequest, over netextd's control socket.
 *
 *     ne_client *c;
 *     ne_client_new(NULL, &c);
 *     ne_sysext_activate(c, "/opt/acme/hello.netext", &delegate, app, NULL);
 *     while (ne_client_wait(c, -1) > 0)
 *             ;
 *
 * The delegate's callbacks run inside ne_client_dispatch() / ne_client_wait(), on the
 * caller's thread. Every request ends with exactly one call of finished, failed or
 * properties; after it returns the request is freed. A client is for one thread.
 * Callbacks may start new requests on the same client, but must not call
 * ne_client_free() (not allowed: the dispatcher still uses the client) nor
 * ne_client_dispatch() / ne_client_wait() (they return -EBUSY there).
 * States, results and errors are described in docs/lifecycle.md. */
#ifndef NETEXT_SYSTEM_H
#define NETEXT_SYSTEM_H

#include <stddef.h>
#include <stdint.h>

#include <netext/netext.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ne_client ne_client;
typedef struct ne_sysext_request ne_sysext_request;

/* OSSystemExtensionError, same values; netext's own from 100 on. */
typedef enum ne_sysext_error {
	NE_SYSEXT_ERROR_UNKNOWN = 1,                 /* anything else; see the message */
	NE_SYSEXT_ERROR_EXTENSION_NOT_FOUND = 4,
	NE_SYSEXT_ERROR_MISSING_IDENTIFIER = 5,
	NE_SYSEXT_ERROR_DUPLICATE_IDENTIFIER = 6,
	NE_SYSEXT_ERROR_UNKNOWN_PROVIDER_TYPE = 7,   /* Apple: unknownExtensionCategory */
	NE_SYSEXT_ERROR_SIGNATURE_INVALID = 8,       /* Apple: codeSignatureInvalid */
	NE_SYSEXT_ERROR_VALIDATION_FAILED = 9,
	NE_SYSEXT_ERROR_FORBIDDEN_BY_POLICY = 10,
	NE_SYSEXT_ERROR_REQUEST_CANCELLED = 11,
	NE_SYSEXT_ERROR_REQUEST_SUPERSEDED = 12,
	NE_SYSEXT_ERROR_AUTHORIZATION_REQUIRED = 13,
	NE_SYSEXT_ERROR_DAEMON_UNREACHABLE = 100,    /* no netextd, or the connection was lost */
	NE_SYSEXT_ERROR_PERMISSION_DENIED = 101,     /* needs root or the admin group */
	NE_SYSEXT_ERROR_INVALID_ARGUMENT = 102,
} ne_sysext_error;

/* OSSystemExtensionRequest.Result. */
typedef enum ne_sysext_result {
	NE_SYSEXT_COMPLETED = 0,
	/* The change waits for something (running providers to stop): the detail says what.
	 * The library asks the daemon to wait and reports COMPLETED when it is done, so an app
	 * normally sees this only through the will_complete_later callback. Only a daemon that
	 * answered without waiting ends a request with it (after will_complete_later). */
	NE_SYSEXT_WILL_COMPLETE_LATER = 1,
} ne_sysext_result;

/* OSSystemExtensionRequest.ReplacementAction. */
typedef enum ne_sysext_replace_action {
	NE_SYSEXT_REPLACE_CANCEL = 0,
	NE_SYSEXT_REPLACE = 1,
} ne_sysext_replace_action;

/* OSSystemExtensionProperties. Strings are valid during the callback only. */
typedef struct ne_sysext_properties {
	const char *identifier;
	uint32_t version;          /* bundle version (build number) */
	const char *short_version; /* semantic version */
	const char *team;
	int enabled;
	int awaiting_approval;
	int uninstalling;
	/* The lifecycle state: "awaiting-approval", "enabled", "replacing", "deactivating"
	 * (not the process's runtime state). The three flags follow from it unless the daemon
	 * says otherwise. */
	const char *state;
} ne_sysext_properties;

typedef struct ne_sysext_delegate {
	size_t size; /* sizeof(ne_sysext_delegate) */
	/* Activation found another version installed: replace it or cancel the request.
	 * NULL: cancel (the request then fails with NE_SYSEXT_ERROR_REQUEST_CANCELLED). */
	ne_sysext_replace_action (*replace)(ne_sysext_request *r, const ne_sysext_properties *existing,
					    const ne_sysext_properties *extension, void *userdata);
	/* The request waits for an administrator (netextctl approve). It stays queued in the
	 * daemon, across restarts, even if this client goes away. Optional. */
	void (*needs_approval)(ne_sysext_request *r, void *userdata);
	/* Optional, informational: the change waits (detail says for what); finished follows. */
	void (*will_complete_later)(ne_sysext_request *r, const char *detail, void *userdata);
	void (*finished)(ne_sysext_request *r, ne_sysext_result result, void *userdata);
	/* message is the daemon's (never NULL); for NE_SYSEXT_ERROR_UNKNOWN it begins with the
	 * daemon's error code ("busy: ..."). */
	void (*failed)(ne_sysext_request *r, ne_sysext_error error, const char *message,
		       void *userdata);
	/* The answer to ne_sysext_get_properties() and ne_sysext_list() (installed extensions
	 * first, then the requests awaiting approval); n may be 0. */
	void (*properties)(ne_sysext_request *r, const ne_sysext_properties *props, size_t n,
			   void *userdata);
} ne_sysext_delegate;

/* Connects to netextd: socket_path, else $NETEXT_SOCKET, else /run/netext/netextd.sock.
 * -ENOENT / -ECONNREFUSED when no daemon listens. */
NE_EXPORT int ne_client_new(const char *socket_path, ne_client **ret);
/* Closes the connection; outstanding requests get no more callbacks (the daemon keeps any
 * that wait for approval). Never from inside a callback of this client. */
NE_EXPORT void ne_client_free(ne_client *c);
/* For the caller's own event loop: poll for POLLIN, then ne_client_dispatch(). */
NE_EXPORT int ne_client_fd(const ne_client *c);
/* Handles what the daemon has sent, without blocking. Returns the number of requests still
 * outstanding, or a negative errno when the connection is lost (outstanding requests have
 * then failed with NE_SYSEXT_ERROR_DAEMON_UNREACHABLE). */
NE_EXPORT int ne_client_dispatch(ne_client *c);
/* Dispatches until no request is outstanding or timeout_ms passes (-1: no limit). Returns
 * the number still outstanding, or a negative errno as ne_client_dispatch. */
NE_EXPORT int ne_client_wait(ne_client *c, int timeout_ms);

/* Requests. Each returns 0 once the request is sent (ret, if not NULL, receives a handle
 * valid until its final callback returns) or a negative errno (-EINVAL for bad arguments,
 * -ENOENT when bundle_path cannot be opened, -ENOTDIR, -EACCES ...). The bundle directory
 * is opened here, with the caller's rights, and passed to the daemon as an fd. */
NE_EXPORT int ne_sysext_activate(ne_client *c, const char *bundle_path,
				 const ne_sysext_delegate *d, void *userdata, ne_sysext_request **ret);
NE_EXPORT int ne_sysext_deactivate(ne_client *c, const char *identifier,
				   const ne_sysext_delegate *d, void *userdata, ne_sysext_request **ret);
NE_EXPORT int ne_sysext_get_properties(ne_client *c, const char *identifier,
				       const ne_sysext_delegate *d, void *userdata, ne_sysext_request **ret);
/* Every installed extension and every request waiting for approval (properties callback). */
NE_EXPORT int ne_sysext_list(ne_client *c, const ne_sysext_delegate *d, void *userdata,
			     ne_sysext_request **ret);
/* Administrators: approve or reject the request waiting for identifier; approve finishes
 * like the activation it approves. */
NE_EXPORT int ne_sysext_approve(ne_client *c, const char *identifier,
				const ne_sysext_delegate *d, void *userdata, ne_sysext_request **ret);
NE_EXPORT int ne_sysext_reject(ne_client *c, const char *identifier,
			       const ne_sysext_delegate *d, void *userdata, ne_sysext_request **ret);
/* Developers (daemon in developer mode, caller an administrator): remove every extension,
 * request and stored bundle. */
NE_EXPORT int ne_sysext_reset(ne_client *c, const ne_sysext_delegate *d, void *userdata,
			      ne_sysext_request **ret);

/* The identifier a request is about ("" for list/reset; for activation, known once the
 * daemon has read the manifest). */
NE_EXPORT const char *ne_sysext_request_identifier(const ne_sysext_request *r);
/* The extension a request is about, as the daemon last described it: identifier, version,
 * short version and team (state ""; the flags 0). NULL until the daemon has said (for
 * activation: once it has read the manifest). Valid until the request's final callback
 * returns; the fields may change at the next callback. */
NE_EXPORT const ne_sysext_properties *ne_sysext_request_properties(const ne_sysext_request *r);
/* The daemon's id of a queued activation request (0 until known). */
NE_EXPORT uint64_t ne_sysext_request_id(const ne_sysext_request *r);
/* "extension-not-found", ...: the control protocol's code; "daemon-unreachable",
 * "permission-denied", "invalid-argument" for netext's own; "unknown" for anything else. */
NE_EXPORT const char *ne_sysext_error_name(ne_sysext_error e);

#ifdef __cplusplus
}
#endif

#endif
