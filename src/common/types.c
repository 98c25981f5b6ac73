/* Names of the public enums. */
#include <errno.h>
#include <string.h>

#include <netext/netext.h>

static const char *const provider_names[NE_PROVIDER_TYPE_MAX + 1] = {
	[NE_PROVIDER_MESSAGE] = "message",
	[NE_PROVIDER_FILTER_DATA] = "filter-data",
	[NE_PROVIDER_FILTER_PACKET] = "filter-packet",
	[NE_PROVIDER_DNS_PROXY] = "dns-proxy",
	[NE_PROVIDER_TRANSPARENT_PROXY] = "transparent-proxy",
	[NE_PROVIDER_APP_PROXY] = "app-proxy",
	[NE_PROVIDER_PACKET_TUNNEL] = "packet-tunnel",
	[NE_PROVIDER_ENDPOINT_SECURITY] = "endpoint-security",
};

const char *ne_provider_type_name(ne_provider_type type)
{
	if ((int)type <= 0 || type > NE_PROVIDER_TYPE_MAX)
		return NULL;
	return provider_names[type];
}

int ne_provider_type_from_name(const char *name)
{
	int t;

	for (t = 1; name && t <= NE_PROVIDER_TYPE_MAX; t++)
		if (strcmp(provider_names[t], name) == 0)
			return t;
	return -EINVAL;
}

static const struct {
	ne_stop_reason reason;
	const char *name;
} stop_reasons[] = {
	{ NE_STOP_REASON_NONE, "none" },
	{ NE_STOP_REASON_USER_INITIATED, "user-initiated" },
	{ NE_STOP_REASON_PROVIDER_FAILED, "provider-failed" },
	{ NE_STOP_REASON_NO_NETWORK_AVAILABLE, "no-network-available" },
	{ NE_STOP_REASON_UNRECOVERABLE_NETWORK_CHANGE, "unrecoverable-network-change" },
	{ NE_STOP_REASON_PROVIDER_DISABLED, "provider-disabled" },
	{ NE_STOP_REASON_AUTHENTICATION_CANCELED, "authentication-canceled" },
	{ NE_STOP_REASON_CONFIGURATION_FAILED, "configuration-failed" },
	{ NE_STOP_REASON_IDLE_TIMEOUT, "idle-timeout" },
	{ NE_STOP_REASON_CONFIGURATION_DISABLED, "configuration-disabled" },
	{ NE_STOP_REASON_CONFIGURATION_REMOVED, "configuration-removed" },
	{ NE_STOP_REASON_SUPERCEDED, "superceded" },
	{ NE_STOP_REASON_USER_LOGOUT, "user-logout" },
	{ NE_STOP_REASON_USER_SWITCH, "user-switch" },
	{ NE_STOP_REASON_CONNECTION_FAILED, "connection-failed" },
	{ NE_STOP_REASON_SLEEP, "sleep" },
	{ NE_STOP_REASON_APP_UPDATE, "app-update" },
	{ NE_STOP_REASON_INTERNAL_ERROR, "internal-error" },
	{ NE_STOP_REASON_DAEMON_SHUTDOWN, "daemon-shutdown" },
};

const char *ne_stop_reason_name(ne_stop_reason reason)
{
	size_t i;

	for (i = 0; i < sizeof(stop_reasons) / sizeof(stop_reasons[0]); i++)
		if (stop_reasons[i].reason == reason)
			return stop_reasons[i].name;
	return NULL;
}
