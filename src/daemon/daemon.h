/* State shared by the parts of netextd. One process, one thread, one sd-event loop. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "list.h"

struct store;
struct dp_nft;
struct control;
struct ctl_req;
struct ext;

struct daemon_options {
	char state_dir[PATH_MAX];
	char run_dir[PATH_MAX];
	char config_path[PATH_MAX];
	char cgroup[PATH_MAX];         /* relative to the cgroup2 mount; "" = below our own */
	char extension_user[64];       /* default user extensions run as */
	char admin_group[64];          /* members may change the system, like root */
	unsigned heartbeat_ms;         /* ping interval */
	unsigned heartbeat_timeout_ms; /* no pong for this long: hung */
	unsigned start_timeout_ms;     /* handshake and provider start deadline */
	unsigned stop_timeout_ms;      /* stop completion deadline, then SIGKILL */
	unsigned message_timeout_ms;   /* app message reply deadline */
	unsigned restart_max;          /* crashes in restart_window_s that mark an extension failed */
	unsigned restart_window_s;
	bool developer;                /* allow registering unsigned extensions by path */
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

/* Providers (one per started configuration) live in their extension. */
int ext_config_start(struct daemon *d, const char *config, struct ctl_req *req);
int ext_config_stop(struct daemon *d, const char *config, struct ctl_req *req);
int ext_config_message(struct daemon *d, const char *config, const void *data, size_t len,
		       struct ctl_req *req);
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
struct ctl_req *ctl_req_ref(struct ctl_req *req);

/* main.c */
void daemon_maybe_exit(struct daemon *d);
