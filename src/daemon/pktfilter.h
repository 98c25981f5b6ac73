/* The filter-packet provider's daemon side: docs/packet-filter.md.
 *
 * For the enabled filter-packet configuration (one at a time: the first by "order", then
 * name) it turns the provider's PACKET_SETTINGS into nftables rules that queue the selected
 * packets to a range of NFQUEUE queues (flow hash, bypass), binds those queues (F_GSO,
 * fail-open per the fail policy), moves each packet into the queue's shared-memory ring
 * (pktring.h), and turns the extension's verdicts into batched NFQUEUE verdicts: allow, drop,
 * delay (deadline delay_max_ms), modify (checked, checksums rebuilt, TCP sequence shifts
 * tracked per flow with pkt_seqadj). Packets with no verdict by verdict_timeout_ms, or while
 * the extension is not running, get the fail policy. ext.c tells it when filter-packet
 * providers come and go and passes it their frames. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct ext;
struct dp_ruleset;

/* Packet marks (docs/packet-filter.md): a packet the rules selected for the provider; a
 * packet whose flow needs its conntrack mark set (the daemon asks with NF_REPEAT); a flow
 * whose TCP sequence numbers are shifted (conntrack mark: both directions are queued). */
#define PKTF_MARK_SELECTED 0x01000000u
#define PKTF_MARK_SHIFT 0x02000000u
#define PKTF_CTMARK_SHIFTED 0x01000000u
/* Queues: PKTF_QUEUE_BASE .. + NE_PACKET_QUEUES_MAX - 1 (per network namespace). */
#define PKTF_QUEUE_BASE 7200

int pktfilter_init(struct daemon *d);
void pktfilter_fini(struct daemon *d);
/* Re-reads the enabled filter-packet configurations from the store. */
void pktfilter_reconfigure(struct daemon *d);
/* Appends the packet filter's chains and rules to the daemon's table (main.c). */
int pktfilter_add_rules(struct daemon *d, struct dp_ruleset *rs);

/* ext.c: a filter-packet provider for config was sent START, has started, or is stopping /
 * gone (its queues then follow the fail policy until a provider is back). */
void pktfilter_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle);
void pktfilter_provider_running(struct daemon *d, const char *config);
void pktfilter_provider_gone(struct daemon *d, const char *config, const char *why);
/* PACKET_SETTINGS from a provider (answered with RESULT): 0, or -EBADMSG / -EPROTO. */
int pktfilter_on_settings(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len);

void *pktfilter_status_json(struct daemon *d); /* json_t object: configuration, queues, counters */
