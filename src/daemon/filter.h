/* The content filter engine (filter-data providers): docs/filter.md.
 *
 * Owns the filter's NFQUEUE queues (new flows; DNS answers for hostname learning), the flow
 * table, the enabled filter configurations in their order, verdict deadlines and fail
 * policies, and the flows view of the control API. ext.c tells it when filter providers come
 * and go and hands it their FILTER_SETTINGS and FLOW_VERDICT frames. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct ext;
struct ctl_req;
struct dp_ruleset;

/* The packet-mark and conntrack-mark bits netext's filter uses (docs/filter.md). */
#define FILTER_MARK_MASK 0x00300000u
#define FILTER_MARK_ALLOW 0x00100000u
#define FILTER_MARK_DROP 0x00200000u
/* Queue numbers: per network namespace. */
#define FILTER_QUEUE_FLOWS 7100
#define FILTER_QUEUE_DNS 7101

int filter_init(struct daemon *d);
void filter_fini(struct daemon *d);
/* Re-reads the enabled filter-data configurations from the store (order, fail policy,
 * deadline) and rebuilds the datapath when the set changed. */
void filter_reconfigure(struct daemon *d);
/* Appends the filter's chains and rules to the daemon's table (main.c builds the table). */
int filter_add_rules(struct daemon *d, struct dp_ruleset *rs);

/* ext.c: a filter provider for `config` was sent START (present: settings accepted), has
 * started (running: flows are sent), or is stopping / gone. */
void filter_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle);
void filter_provider_running(struct daemon *d, const char *config);
void filter_provider_gone(struct daemon *d, const char *config, const char *why);
/* Frames from a filter provider; return 0 or -EBADMSG / -EPROTO (a protocol fault). */
int filter_on_settings(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len);
int filter_on_verdict(struct daemon *d, const char *config, uint64_t flow_id, const uint8_t *p, size_t len);

/* Whether a filter configuration is enabled: the DNS proxy then attributes each query to its
 * process, so that the names it learns are keyed by the asking process. Cheap. */
bool filter_active(struct daemon *d);
/* The DNS proxy learned an answer for proc's query (NULL: process unknown): the name cache
 * behind flow hostnames (namecache.h). */
struct pi_process;
struct dns_msg;
void filter_learn_answer(struct daemon *d, const struct pi_process *proc, const struct dns_msg *m);

/* Control API. */
void *filter_flows_json(struct daemon *d, bool pending_only); /* json_t array */
/* A person's verdict for a paused or pending flow: 0, -ENOENT (no such waiting flow). */
int filter_flow_decide(struct daemon *d, uint64_t id, bool allow, const char *who);
/* Streams "flow" events to req until its client goes away. */
void filter_follow(struct daemon *d, struct ctl_req *req);
void *filter_status_json(struct daemon *d); /* json_t object: counters, configurations */
