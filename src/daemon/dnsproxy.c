/* The DNS proxy engine: see dnsproxy.h. (Being written: interception is never on yet.) */
#include <errno.h>
#include <stddef.h>

#include "daemon.h"
#include "dnsproxy.h"

int dnsproxy_init(struct daemon *d) { (void)d; return 0; }
void dnsproxy_fini(struct daemon *d) { (void)d; }
int dnsproxy_add_rules(struct daemon *d, struct dp_ruleset *rs) { (void)d; (void)rs; return 0; }
void dnsproxy_reconfigure(struct daemon *d) { (void)d; }
bool dnsproxy_intercepting(const struct daemon *d) { (void)d; return false; }
int dnsproxy_query_verdict(struct daemon *d, uint64_t id, enum dnsq_action a, const char *target,
			   const uint8_t *bytes, size_t len)
{ (void)d; (void)id; (void)a; (void)target; (void)bytes; (void)len; return -ENOENT; }
int dnsproxy_response_verdict(struct daemon *d, uint64_t id, enum dnsr_action a, const uint8_t *bytes,
			      size_t len)
{ (void)d; (void)id; (void)a; (void)bytes; (void)len; return -ENOENT; }
void *dnsproxy_status_json(struct daemon *d) { (void)d; return NULL; }
