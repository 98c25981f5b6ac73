/* The dns-proxy provider's daemon side: see dnsprov.h. (Being written.) */
#include <errno.h>
#include <stddef.h>

#include "daemon.h"
#include "dnsprov.h"

int dnsprov_init(struct daemon *d) { (void)d; return 0; }
void dnsprov_fini(struct daemon *d) { (void)d; }
void dnsprov_reconfigure(struct daemon *d) { (void)d; }
bool dnsprov_enabled(struct daemon *d) { (void)d; return false; }
int dnsprov_query(struct daemon *d, const struct dnsq_view *q) { (void)d; (void)q; return 0; }
int dnsprov_response(struct daemon *d, uint64_t id, const uint8_t *resp, size_t len)
{ (void)d; (void)id; (void)resp; (void)len; return 0; }
void dnsprov_query_done(struct daemon *d, uint64_t id) { (void)d; (void)id; }
void *dnsprov_status_json(struct daemon *d) { (void)d; return NULL; }
