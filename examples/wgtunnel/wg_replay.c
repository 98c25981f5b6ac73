#include "wg_replay.h"

#include <string.h>

#define BLOCKS (WG_REPLAY_BITS / 64)

void wg_replay_init(struct wg_replay *r)
{
	memset(r, 0, sizeof(*r));
}

bool wg_replay_check(struct wg_replay *r, uint64_t counter, uint64_t limit)
{
	uint64_t block, cur, bit;

	if (counter >= limit)
		return false;
	/* Work with counter + 1 so that next == 0 means "nothing seen" and counter 0 works. */
	counter++;
	if (counter + WG_REPLAY_WINDOW < r->next)
		return false;
	block = counter >> 6;
	if (counter > r->next) {
		cur = r->next >> 6;
		uint64_t gap = block - cur;

		/* Clear the blocks the window slides over; a jump of a whole window or more
		 * clears them all (the shift keeps the bitmap's index wrap-around). */
		if (gap > BLOCKS)
			gap = BLOCKS;
		for (uint64_t i = 1; i <= gap; i++)
			r->bitmap[(cur + i) & (BLOCKS - 1)] = 0;
		r->next = counter;
	}
	bit = 1ULL << (counter & 63);
	block &= BLOCKS - 1;
	if (r->bitmap[block] & bit)
		return false;
	r->bitmap[block] |= bit;
	return true;
}
