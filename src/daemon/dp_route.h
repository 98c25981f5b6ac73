/* Routes and policy-routing rules through rtnetlink (libmnl): the only file that changes the
 * kernel's routing state. netextd adds only routes in tables it owns and rules that point at
 * them, and removes them on exit; dp_route_flush_table() removes what a killed daemon left. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct dp_route;

int dp_route_open(struct dp_route **ret);
void dp_route_close(struct dp_route *r); /* NULL ok */

/* `ip [-6] rule add|del fwmark MARK/MASK lookup TABLE priority PRIO`. Adding an existing rule
 * is 0; deleting a missing one is 0. */
int dp_route_fwmark_rule(struct dp_route *r, bool add, int family, uint32_t mark, uint32_t mask,
			 uint32_t table, uint32_t priority);
/* `ip [-6] route add|del local 0.0.0.0/0 (::/0) dev lo table TABLE`: everything in the table is
 * delivered locally (TPROXY). Idempotent like the rules. */
int dp_route_local_default(struct dp_route *r, bool add, int family, uint32_t table);
/* Deletes every route in table and every rule whose lookup is table, both families. */
int dp_route_flush_table(struct dp_route *r, uint32_t table);
