/* libnetext, content filter: the filter-data provider (NEFilterDataProvider for Linux).
 *
 * netextd shows the provider every new flow (TCP connection, UDP or other flow) that its
 * rules send to it, both directions, with the process and the remote hostname already
 * attached; the provider answers with a verdict. Verdicts live in the kernel's conntrack
 * entry, so the rest of a flow never leaves the kernel.
 *
 *     static ne_filter_verdict new_flow(ne_provider *p, ne_flow *f, void *ud)
 *     {
 *             const char *exe = ne_flow_executable(f);
 *             return exe && !strcmp(exe, "/usr/bin/telnet") ? ne_filter_verdict_drop()
 *                                                            : ne_filter_verdict_allow();
 *     }
 *     static void start(ne_provider *p, const ne_options *o, void *ud)
 *     {
 *             struct ne_filter_settings s = { .size = sizeof(s),
 *                     .default_action = NE_FILTER_ACTION_FILTER_DATA };
 *             ne_filter_apply_settings(p, &s, settings_applied, NULL); // → ne_provider_start_done
 *     }
 *     ...
 *     ne_extension_register_filter(ext, &lifecycle_ops, &filter_ops, NULL);
 *
 * Order of decisions for a new flow, per filter configuration (several may be enabled; they
 * run in the order of their "order" option, then name, and a drop from any one wins):
 *   1. flows on loopback are allowed, unless a rule's remote network is a loopback network;
 *   2. the rules of the provider's settings, in order: the first that matches decides
 *      (allow, drop, or filter-data: ask the provider);
 *   3. otherwise the settings' default action.
 * Only flows whose action is filter-data reach handle_new_flow. Until the provider has applied
 * settings, every flow does (default action filter-data, no rules).
 *
 * Verdicts: handle_new_flow returns allow or drop (final), pause (the flow waits for
 * ne_filter_resume_flow: UDP flows at most 10 s, then they are dropped; TCP flows as long as
 * the queue holds them), or none (the provider answers later with ne_filter_resume_flow,
 * within the configuration's verdict deadline, "verdict_timeout_ms", default 2000). A flow
 * with no verdict by its deadline, or whose extension is not running, gets the
 * configuration's fail policy (fail_policy "open": allowed, "closed": dropped).
 *
 * Data filtering (filter-data verdicts with peek sizes, handle_inbound_data /
 * handle_outbound_data) is part of the API but netextd does not deliver flow bytes yet:
 * ne_filter_verdict_filter_data() returns -EOPNOTSUPP, and the data callbacks are never
 * called. The table keeps their place so that extensions built now keep working.
 *
 * Threading: as extension.h; every function here is for the dispatch thread. */
#ifndef NETEXT_FILTER_H
#define NETEXT_FILTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <netext/extension.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A flow as the filter sees it: valid from handle_new_flow until its final verdict has been
 * given (returned, or passed to ne_filter_resume_flow), or during a report callback. */
typedef struct ne_flow ne_flow;

typedef enum ne_flow_direction {
	NE_FLOW_ANY = 0, /* rules only */
	NE_FLOW_OUTBOUND = 1,
	NE_FLOW_INBOUND = 2,
} ne_flow_direction;

/* Flow metadata. Strings are NUL-terminated and owned by the flow. */
NE_EXPORT uint64_t ne_flow_id(const ne_flow *flow); /* unique for the daemon's lifetime, never 0 */
NE_EXPORT ne_flow_direction ne_flow_get_direction(const ne_flow *flow);
NE_EXPORT int ne_flow_family(const ne_flow *flow);   /* AF_INET, AF_INET6 */
NE_EXPORT int ne_flow_protocol(const ne_flow *flow); /* IPPROTO_TCP, IPPROTO_UDP, ... */
/* Endpoints as sockaddr_in / sockaddr_in6 (port 0 for protocols without ports). For an
 * inbound flow the local endpoint is the address and port it arrived at. */
NE_EXPORT int ne_flow_local_endpoint(const ne_flow *flow, struct sockaddr_storage *ret);
NE_EXPORT int ne_flow_remote_endpoint(const ne_flow *flow, struct sockaddr_storage *ret);
/* The name the flow's process most recently resolved to the remote address (learned from
 * the DNS answers the host received), lower-case without the final dot; NULL when unknown. */
NE_EXPORT const char *ne_flow_remote_hostname(const ne_flow *flow);
/* The process that owns the flow's socket (for an inbound flow: the listening process).
 * pid -1 and NULL strings when unknown: the socket was closed before netextd could look,
 * or the packet belongs to no local socket. uid and gid can be known when the process is not;
 * they are -1 when unknown. The start time (clock ticks after boot, /proc/PID/stat field 22)
 * tells a reused pid from the process that had it. */
NE_EXPORT int32_t ne_flow_pid(const ne_flow *flow);
NE_EXPORT int32_t ne_flow_ppid(const ne_flow *flow);
NE_EXPORT int64_t ne_flow_uid(const ne_flow *flow);
NE_EXPORT int64_t ne_flow_gid(const ne_flow *flow);
NE_EXPORT uint64_t ne_flow_process_start_time(const ne_flow *flow);
NE_EXPORT const char *ne_flow_executable(const ne_flow *flow);
NE_EXPORT const char *ne_flow_command_line(const ne_flow *flow); /* arguments joined by spaces */
NE_EXPORT const char *ne_flow_cgroup(const ne_flow *flow);       /* cgroup2 path, "/..." */
/* One line for logs and prompts: "tcp out 198.18.0.1:40000 -> example.com=198.18.0.2:80
 * /usr/bin/curl[1234] uid 1000". Returns the length it needed, as snprintf. */
NE_EXPORT int ne_flow_format(const ne_flow *flow, char *buf, size_t size);

/* NEFilterAction: what a rule or the default action does with a flow. */
typedef enum ne_filter_action {
	NE_FILTER_ACTION_ALLOW = 1,
	NE_FILTER_ACTION_DROP = 2,
	NE_FILTER_ACTION_FILTER_DATA = 3, /* ask the provider (handle_new_flow) */
} ne_filter_action;

/* NEFilterRule with an NENetworkRule, plus the process matches netext adds. Every field left
 * zero / NULL matches anything; the set fields must all match. */
struct ne_filter_rule {
	ne_filter_action action;
	ne_flow_direction direction;
	uint8_t protocol;            /* IPPROTO_TCP or IPPROTO_UDP; 0: any */
	const char *remote_network;  /* "198.18.0.0/15", "2001:db8::/32", "198.18.0.1" */
	uint16_t remote_port;
	/* NENetworkRule remoteDomain: a one-label name ("printer") matches that host only; two or
	 * more labels ("example.com") match the domain and every name below it. */
	const char *remote_hostname;
	const char *local_network;
	uint16_t local_port;
	const char *executable;      /* absolute path, exact */
	bool match_uid;
	uint32_t uid;
	const char *cgroup;          /* a cgroup2 path: that cgroup and those below it */
};

#define NE_FILTER_RULES_MAX 1024

/* Reports the provider asks for (NEFilterReport): each comes to handle_report. */
#define NE_FILTER_REPORT_NEW_FLOWS (1u << 0)  /* every flow this provider was asked about */
#define NE_FILTER_REPORT_CLOSED (1u << 1)     /* those flows when they end, with byte counts */
#define NE_FILTER_REPORT_STATISTICS (1u << 2) /* their counts every statistics_interval_ms */

/* NEFilterSettings. */
struct ne_filter_settings {
	uint32_t size; /* sizeof(struct ne_filter_settings) */
	const struct ne_filter_rule *rules;
	size_t n_rules; /* at most NE_FILTER_RULES_MAX, and the encoded settings at most 128 KiB */
	ne_filter_action default_action;
	uint32_t report_flags;           /* NE_FILTER_REPORT_* */
	uint32_t statistics_interval_ms; /* at least 1000 when statistics are asked for */
};

/* Called once the daemon has applied (error 0) or refused the settings; message says why
 * ("rule 3: remote_network '10.0.0.0/33' is not a network"). */
typedef void (*ne_filter_settings_done)(ne_provider *provider, int error, const char *message,
					void *userdata);

/* apply(_:completionHandler:): replaces the provider's settings; flows already decided keep
 * their verdicts. Returns 0 once sent (done follows), -EINVAL for a provider that is not a
 * started filter or settings with a bad size, -E2BIG when they do not fit a message. */
NE_EXPORT int ne_filter_apply_settings(ne_provider *provider, const struct ne_filter_settings *settings,
				       ne_filter_settings_done done, void *userdata);

/* NEFilterNewFlowVerdict. */
typedef enum ne_verdict_kind {
	NE_VERDICT_NONE = 0, /* no verdict yet: ne_filter_resume_flow() follows within the deadline */
	NE_VERDICT_ALLOW = 1,
	NE_VERDICT_DROP = 2,
	NE_VERDICT_PAUSE = 3,
	NE_VERDICT_FILTER_DATA = 4,
} ne_verdict_kind;

typedef struct ne_filter_verdict {
	ne_verdict_kind kind;
	bool filter_inbound, filter_outbound;
	uint32_t peek_inbound_bytes, peek_outbound_bytes;
} ne_filter_verdict;

static inline ne_filter_verdict ne_filter_verdict_allow(void)
{
	ne_filter_verdict v = { NE_VERDICT_ALLOW, false, false, 0, 0 };
	return v;
}
static inline ne_filter_verdict ne_filter_verdict_drop(void)
{
	ne_filter_verdict v = { NE_VERDICT_DROP, false, false, 0, 0 };
	return v;
}
static inline ne_filter_verdict ne_filter_verdict_pause(void)
{
	ne_filter_verdict v = { NE_VERDICT_PAUSE, false, false, 0, 0 };
	return v;
}
static inline ne_filter_verdict ne_filter_verdict_later(void)
{
	ne_filter_verdict v = { NE_VERDICT_NONE, false, false, 0, 0 };
	return v;
}
/* filterDataVerdict(withFilterInbound:peekInboundBytes:filterOutbound:peekOutboundBytes:).
 * Returns -EOPNOTSUPP (and leaves *ret alone) while netextd does not deliver flow data; 0 and
 * the verdict in *ret once it does. */
NE_EXPORT int ne_filter_verdict_filter_data(bool filter_inbound, uint32_t peek_inbound_bytes,
					    bool filter_outbound, uint32_t peek_outbound_bytes,
					    ne_filter_verdict *ret);

/* NEFilterDataVerdict: let pass_bytes more bytes through, then show the next peek_bytes. */
typedef struct ne_filter_data_verdict {
	bool drop;
	uint64_t pass_bytes;
	uint64_t peek_bytes;
} ne_filter_data_verdict;

/* resumeFlow(_:with:): the verdict for a flow that was paused or given no verdict yet. allow
 * and drop are final (the flow handle is freed); pause turns a pending flow into a paused one.
 * -ENOENT when the flow is not waiting (already decided, expired, or decided by an
 * administrator with netextctl: a RESOLVED report says so), -EOPNOTSUPP for filter-data. */
NE_EXPORT int ne_filter_resume_flow(ne_provider *provider, ne_flow *flow, ne_filter_verdict verdict);
/* The paused or pending flow with this id, or NULL: for providers that name flows by id
 * (in app messages, prompts). */
NE_EXPORT ne_flow *ne_filter_waiting_flow(ne_provider *provider, uint64_t id);

typedef enum ne_filter_report_event {
	NE_FILTER_REPORT_NEW_FLOW = 1,   /* the flow and the final verdict of all filters */
	NE_FILTER_REPORT_FLOW_CLOSED = 2,
	NE_FILTER_REPORT_FLOW_STATISTICS = 3,
	/* A flow waiting for this provider was decided elsewhere: by an administrator
	 * (netextctl flows allow|drop), the UDP pause limit, or the verdict deadline. Its handle
	 * is freed after this callback. */
	NE_FILTER_REPORT_RESOLVED = 4,
} ne_filter_report_event;

struct ne_filter_report {
	uint32_t size;
	ne_filter_report_event event;
	const ne_flow *flow;     /* valid during the callback */
	ne_verdict_kind verdict; /* the flow's verdict (allow or drop) */
	uint64_t bytes_inbound, bytes_outbound;     /* CLOSED and STATISTICS */
	uint64_t packets_inbound, packets_outbound;
	const char *detail;      /* RESOLVED: who decided ("netextctl (uid 0)", "udp-pause-limit") */
};

/* The callbacks of a filter-data provider; lifecycle (start_filter / stop_filter, app
 * messages) stays in struct ne_provider_ops. Set .size = sizeof(struct ne_filter_ops). */
struct ne_filter_ops {
	uint32_t size;
	/* handleNewFlow(_:). NULL: every flow is allowed. */
	ne_filter_verdict (*handle_new_flow)(ne_provider *provider, ne_flow *flow, void *userdata);
	/* handleInboundData / handleOutboundData: not called yet (see the top of this file). */
	ne_filter_data_verdict (*handle_inbound_data)(ne_provider *provider, ne_flow *flow,
						      uint64_t offset, const void *data, size_t len,
						      void *userdata);
	ne_filter_data_verdict (*handle_outbound_data)(ne_provider *provider, ne_flow *flow,
						       uint64_t offset, const void *data, size_t len,
						       void *userdata);
	/* NEFilterReport delivery, for the reports asked for in the settings. */
	void (*handle_report)(ne_provider *provider, const struct ne_filter_report *report,
			      void *userdata);
};

/* Registers a filter-data provider: ops as for ne_extension_register (start is
 * startFilter, stop is stopFilter), filter_ops for the flows. */
NE_EXPORT int ne_extension_register_filter(ne_extension *ext, const struct ne_provider_ops *ops,
					   const struct ne_filter_ops *filter_ops, void *userdata);

#ifdef __cplusplus
}
#endif

#endif
