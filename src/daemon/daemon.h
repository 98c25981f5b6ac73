/* State shared by the parts of netextd. One process, one thread, one sd-event loop. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "list.h"

struct store;
struct dnsroutes;
struct dp_nft;
struct control;
struct ctl_req;
struct ext;
struct store_extension;
struct ucred;

struct daemon_options {
	char state_dir[PATH_MAX];
	char run_dir[PATH_MAX];
	char config_path[PATH_MAX];
	char cgroup[PATH_MAX];         /* relative to the cgroup2 mount; "" = below our own */
	char extension_user[64];       /* default user extensions run as */
	char admin_group[64];          /* members may change the system, like root */
	char policy_dir[PATH_MAX];     /* managed policy drop-ins (docs/lifecycle.md) */
	unsigned heartbeat_ms;         /* ping interval */
	unsigned heartbeat_timeout_ms; /* no pong for this long: hung */
	unsigned start_timeout_ms;     /* handshake and provider start deadline */
	unsigned stop_timeout_ms;      /* stop completion deadline, then SIGKILL */
	unsigned message_timeout_ms;   /* app message reply deadline */
	unsigned restart_max;          /* crashes in restart_window_s that mark an extension failed */
	unsigned restart_window_s;
	/* [dns] (docs/dns.md, netextd.conf(5)) */
	char dns_intercept[16];        /* "auto", "always", "never" */
	unsigned dns_port;             /* transparent listeners on 127.0.0.1 and ::1 */
	unsigned dns_table;            /* policy-routing table (and the rule's priority) */
	char dns_resolv_conf[PATH_MAX]; /* default route's servers when none is configured */
	unsigned dns_timeout_ms;       /* one upstream try */
	unsigned dns_attempts;         /* tries per query, over the route's servers in turn */
	unsigned dns_cache_bytes;      /* answer cache bound; 0: no cache */
	unsigned dns_max_tcp_clients;  /* TCP client connections at once */
	unsigned dns_tcp_idle_ms;      /* a TCP client silent this long is closed */
#define DNS_CONFIG_ROUTES_MAX 64
	size_t n_dns_routes;           /* "route = SUFFIX SERVER[,SERVER…]" / "exempt = SUFFIX" /
					* "default = SERVER[,…]" lines, in file order */
	char dns_routes[DNS_CONFIG_ROUTES_MAX][512];
	bool developer;                /* allow unsigned bundles and registering executables by path */
	bool no_datapath;              /* do not touch nftables (control-only instance) */
	int verbose;
};

struct daemon {
	struct daemon_options opt;
	sd_event *event;
	struct store *store;
	struct dp_nft *nft;
	int queue_backend;             /* enum dp_queue_backend */
	struct control *control;
	struct ne_list exts;           /* struct ext */
	char cgroup_mount[PATH_MAX];
	char cgroup_base[PATH_MAX];    /* relative to cgroup_mount */
	uint64_t started_usec;
	bool shutting_down;
	gid_t admin_gid;               /* (gid_t)-1 when the admin group does not exist */
	int bundles_fd;                /* <state_dir>/bundles, the protected bundle store */
	char bundles_dir[PATH_MAX];
	struct ne_list ops;            /* struct sysext_op: lifecycle requests in progress */
	uint64_t next_op_id;
	struct dnsroutes *dns_routes;  /* split-DNS routes (dnsroutes.h) */
};

/* config.c */
void daemon_options_defaults(struct daemon_options *o);
int daemon_options_load(struct daemon_options *o, const char *path);

/* ext.c: the supervisor */
int ext_load_all(struct daemon *d);
struct ext *ext_find(struct daemon *d, const char *identifier);
int ext_add(struct daemon *d, const char *identifier, const char *executable, const char *user,
	    struct ext **ret);
int ext_remove(struct ext *e);
int ext_restart(struct ext *e);
void ext_shutdown_all(struct daemon *d);
bool ext_all_exited(const struct daemon *d);
const char *ext_identifier(const struct ext *e);
/* e is running, starting or waiting to restart after a crash (not stopped, given up on or
 * being removed). */
bool ext_restart_pending(const struct ext *e);
/* A new supervised extension for an installed store row; spawned when enabled. */
int ext_install(struct daemon *d, const struct store_extension *se, struct ext **ret);
/* Switches e to se (a new version of the same identifier): the running providers stop with
 * the app-update reason, then se's executable starts and the enabled configurations start
 * in it. sysext_on_replaced() runs once it has been spawned. Returns 1 when that waits for
 * the old process to stop, 0 when it happened at once. */
int ext_replace(struct ext *e, const struct store_extension *se);
/* Stops e for good (configuration-removed) and frees it; sysext_on_deactivated() runs once
 * the process is gone. Returns 1 when that waits for the process, 0 when done at once. */
int ext_deactivate(struct ext *e);
/* "enabled", "replacing" or "deactivating". */
const char *ext_lifecycle(const struct ext *e);

/* Providers (one per started configuration) live in their extension. */
int ext_config_start(struct daemon *d, const char *config, struct ctl_req *req);
int ext_config_stop(struct daemon *d, const char *config, struct ctl_req *req);
int ext_config_message(struct daemon *d, const char *config, const void *data, size_t len,
		       struct ctl_req *req);
/* Stops a provider with reason (ne_stop_reason) and disables its configuration, no reply
 * awaited (a packet tunnel that cancelled itself). */
void ext_config_stop_reason(struct daemon *d, const char *config, int reason);
/* Stops a provider because its configuration is being removed; no reply awaited. */
void ext_config_removed(struct daemon *d, const char *config);
/* Describes extensions / running providers into a jansson array (json_t *). */
void *ext_list_json(struct daemon *d);
void *ext_provider_json(struct daemon *d, const char *config);

/* control.c */
int control_open(struct daemon *d, struct control **ret);
void control_close(struct control *c);
/* Answers a request that the handler left pending (result or error takes a json_t *). */
void ctl_req_reply(struct ctl_req *req, void *result);
void ctl_req_error(struct ctl_req *req, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ctl_req_unref(struct ctl_req *req);
/* Sends an event line for a request that is not answered yet (data: json_t *, consumed). */
void ctl_req_event(struct ctl_req *req, const char *event, void *data);
/* False once the request's client has disconnected (or the request was answered). */
bool ctl_req_waiting(const struct ctl_req *req);
struct ctl_req *ctl_req_ref(struct ctl_req *req);

/* sysext.c: activation, approval, replacement, deactivation (docs/lifecycle.md) */
int sysext_init(struct daemon *d);     /* before ext_load_all: store GC, unfinished removals */
void sysext_start(struct daemon *d);   /* after ext_load_all: requests that policy approves */
void sysext_fini(struct daemon *d);
void sysext_activate(struct daemon *d, struct ctl_req *req, int bundle_fd, const char *source,
		     const char *replace, bool wait, const struct ucred *cred, bool admin);
void sysext_decide(struct daemon *d, struct ctl_req *req, uint64_t op_id, bool replace,
		   const struct ucred *cred, bool admin);
void sysext_approve(struct daemon *d, struct ctl_req *req, const char *identifier, bool wait);
void sysext_reject(struct daemon *d, struct ctl_req *req, const char *identifier);
void sysext_deactivate(struct daemon *d, struct ctl_req *req, const char *identifier, bool wait,
		       bool admin);
void sysext_properties(struct daemon *d, struct ctl_req *req, const char *identifier);
void sysext_reset(struct daemon *d, struct ctl_req *req);
void *sysext_requests_json(struct daemon *d); /* json_t array of waiting requests */
void sysext_on_replaced(struct daemon *d, const char *identifier);
void sysext_on_deactivated(struct daemon *d, const char *identifier);

/* Sends a frame that the caller encoded itself (filter.c). With fault_when_full false, a
 * full channel returns -EAGAIN instead of faulting the extension. */
int ext_send_raw(struct ext *e, const void *frame, size_t len, bool fault_when_full);
/* Sends a frame with fds (PACKET_QUEUE); a full channel is a fault. */
int ext_send_fds(struct ext *e, const void *frame, size_t len, const int *fds, size_t nfds);
/* A protocol fault found outside ext.c (a packet ring): closes the channel, kills, restarts. */
void ext_fault_extern(struct ext *e, const char *why);

/* main.c */
void daemon_maybe_exit(struct daemon *d);
/* Rebuilds and applies the whole nftables table: base chains plus every provider's rules. */
int daemon_apply_ruleset(struct daemon *d);
