/* The transport replay window: RFC 6479's bitmap of 2048 bits in 64-bit blocks, of which one
 * block is always being recycled, so 1984 counters behind the highest are accepted once.
 * Not locked: the caller serialises (the engine keeps one lock per keypair). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define WG_REPLAY_BITS 2048
#define WG_REPLAY_WINDOW (WG_REPLAY_BITS - 64)

struct wg_replay {
	uint64_t next;  /* one past the highest counter accepted */
	uint64_t bitmap[WG_REPLAY_BITS / 64];
};

void wg_replay_init(struct wg_replay *r);
/* Accepts counter once if it is new and not too old; limit is the first counter refused
 * outright (REJECT_AFTER_MESSAGES). Call only after the packet authenticated. */
bool wg_replay_check(struct wg_replay *r, uint64_t counter, uint64_t limit);
