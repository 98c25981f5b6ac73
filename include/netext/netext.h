/* netext — the NetworkExtension system for Linux. Types shared by the extension side and
 * the app side of libnetext.
 *
 * Conventions: functions return 0 or a negative errno; objects are opaque handles with
 * _new/_free; callback tables begin with a size field (set it to sizeof the table) so that
 * new callbacks can be appended without breaking extensions built against older headers.
 * The library never logs and never exits. */
#ifndef NETEXT_NETEXT_H
#define NETEXT_NETEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NE_EXPORT __attribute__((visibility("default")))

#define NE_VERSION_MAJOR 0
#define NE_VERSION_MINOR 1
#define NE_VERSION_STRING "0.1.0"

/* Provider types, as NetworkExtension's provider classes. The numeric values are part of
 * the wire protocol and never change. */
typedef enum ne_provider_type {
	NE_PROVIDER_MESSAGE = 1,           /* no traffic: lifecycle and app messages only */
	NE_PROVIDER_FILTER_DATA = 2,       /* NEFilterDataProvider */
	NE_PROVIDER_FILTER_PACKET = 3,     /* NEFilterPacketProvider, plus modify */
	NE_PROVIDER_DNS_PROXY = 4,         /* NEDNSProxyProvider */
	NE_PROVIDER_TRANSPARENT_PROXY = 5, /* NETransparentProxyProvider */
	NE_PROVIDER_APP_PROXY = 6,         /* NEAppProxyProvider */
	NE_PROVIDER_PACKET_TUNNEL = 7,     /* NEPacketTunnelProvider */
	NE_PROVIDER_ENDPOINT_SECURITY = 8, /* Endpoint Security client */
	NE_PROVIDER_TYPE_MAX = 8,
} ne_provider_type;

/* "filter-data", "dns-proxy", ...; NULL for an unknown value. */
NE_EXPORT const char *ne_provider_type_name(ne_provider_type type);
/* Returns the type for a name, or a negative errno (-EINVAL) for an unknown name. */
NE_EXPORT int ne_provider_type_from_name(const char *name);

/* Why a provider is stopped: NEProviderStopReason, same order and values, plus netext's
 * own reasons from 100 on. */
typedef enum ne_stop_reason {
	NE_STOP_REASON_NONE = 0,
	NE_STOP_REASON_USER_INITIATED = 1,
	NE_STOP_REASON_PROVIDER_FAILED = 2,
	NE_STOP_REASON_NO_NETWORK_AVAILABLE = 3,
	NE_STOP_REASON_UNRECOVERABLE_NETWORK_CHANGE = 4,
	NE_STOP_REASON_PROVIDER_DISABLED = 5,
	NE_STOP_REASON_AUTHENTICATION_CANCELED = 6,
	NE_STOP_REASON_CONFIGURATION_FAILED = 7,
	NE_STOP_REASON_IDLE_TIMEOUT = 8,
	NE_STOP_REASON_CONFIGURATION_DISABLED = 9,
	NE_STOP_REASON_CONFIGURATION_REMOVED = 10,
	NE_STOP_REASON_SUPERCEDED = 11,
	NE_STOP_REASON_USER_LOGOUT = 12,
	NE_STOP_REASON_USER_SWITCH = 13,
	NE_STOP_REASON_CONNECTION_FAILED = 14,
	NE_STOP_REASON_SLEEP = 15,
	NE_STOP_REASON_APP_UPDATE = 16,
	NE_STOP_REASON_INTERNAL_ERROR = 17,
	NE_STOP_REASON_DAEMON_SHUTDOWN = 100, /* netextd is stopping (system shutdown, restart) */
} ne_stop_reason;

/* "user-initiated", "app-update", ...; NULL for an unknown value. */
NE_EXPORT const char *ne_stop_reason_name(ne_stop_reason reason);

/* Log levels for ne_extension_log(); the same numbers as syslog. */
typedef enum ne_log_level {
	NE_LOG_ERROR = 3,
	NE_LOG_WARNING = 4,
	NE_LOG_INFO = 6,
	NE_LOG_DEBUG = 7,
} ne_log_level;

/* A provider's start options: the key/value pairs of its configuration. Read-only, owned
 * by the library, valid during the start callback only (copy what you keep). */
typedef struct ne_options ne_options;

NE_EXPORT size_t ne_options_count(const ne_options *options);
/* The value for key, or NULL when absent. */
NE_EXPORT const char *ne_options_get(const ne_options *options, const char *key);
/* The i-th pair, for i < ne_options_count(); returns -ERANGE past the end. */
NE_EXPORT int ne_options_at(const ne_options *options, size_t i, const char **ret_key,
			    const char **ret_value);

#ifdef __cplusplus
}
#endif

#endif
