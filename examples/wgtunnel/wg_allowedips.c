#include "wg_allowedips.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void mask(uint8_t *out, const uint8_t *in, unsigned alen, unsigned cidr)
{
	for (unsigned i = 0; i < alen; i++) {
		unsigned bits = cidr > 8 * i ? cidr - 8 * i : 0;

		out[i] = bits >= 8 ? in[i] : (uint8_t)(in[i] & (0xff00 >> bits));
	}
}

static bool matches(const struct wg_aip_entry *e, const uint8_t *addr, unsigned alen)
{
	unsigned full = e->cidr / 8, rest = e->cidr % 8;

	if (memcmp(e->addr, addr, full) != 0)
		return false;
	if (rest == 0 || full >= alen)
		return true;
	return ((addr[full] ^ e->addr[full]) & (0xff00 >> rest)) == 0;
}

int wg_aip_insert(struct wg_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
		  uint32_t peer)
{
	unsigned alen = family == AF_INET ? 4 : 16;
	struct wg_aip_entry **arr = family == AF_INET ? &t->v4 : &t->v6;
	size_t *n = family == AF_INET ? &t->n4 : &t->n6;
	struct wg_aip_entry e = { .cidr = cidr, .peer = peer }, *grown;
	size_t pos;

	if ((family != AF_INET && family != AF_INET6) || cidr > 8 * alen)
		return -EINVAL;
	mask(e.addr, addr, alen, cidr);
	for (pos = 0; pos < *n; pos++)
		if ((*arr)[pos].cidr == cidr && memcmp((*arr)[pos].addr, e.addr, alen) == 0) {
			(*arr)[pos].peer = peer;
			return 0;
		}
	grown = realloc(*arr, (*n + 1) * sizeof(**arr));
	if (!grown)
		return -ENOMEM;
	*arr = grown;
	for (pos = 0; pos < *n && grown[pos].cidr >= cidr; pos++)
		;
	memmove(&grown[pos + 1], &grown[pos], (*n - pos) * sizeof(*grown));
	grown[pos] = e;
	(*n)++;
	return 0;
}

long wg_aip_lookup(const struct wg_allowedips *t, int family, const uint8_t *addr)
{
	const struct wg_aip_entry *arr = family == AF_INET ? t->v4 : t->v6;
	size_t n = family == AF_INET ? t->n4 : t->n6;
	unsigned alen = family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		if (matches(&arr[i], addr, alen))
			return arr[i].peer;
	return -1;
}

void wg_aip_free(struct wg_allowedips *t)
{
	free(t->v4);
	free(t->v6);
	t->v4 = t->v6 = NULL;
	t->n4 = t->n6 = 0;
}
