/* The dns-proxy provider's daemon side: docs/dns.md.
 *
 * Sends DNS_QUERY (and DNS_RESPONSE when the provider asked for answers) to the enabled
 * dns-proxy provider, keeps each query's verdict deadline, applies the configuration's fail
 * policy, and hands verdicts to the engine (dnsproxy.c). Only one dns-proxy configuration is
 * used: the first enabled by "order", then name. ext.c tells it when dns-proxy providers come
 * and go and passes it their frames. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct ext;
struct dnsq_view;

int dnsprov_init(struct daemon *d);
void dnsprov_fini(struct daemon *d);
/* Re-reads the enabled dns-proxy configurations from the store. */
void dnsprov_reconfigure(struct daemon *d);
/* Whether a dns-proxy configuration is enabled (its provider may or may not be running). */
bool dnsprov_enabled(struct daemon *d);

/* Engine → glue. Offers a query to the provider: 1 when it was sent (a verdict follows through
 * dnsproxy_query_verdict, by the provider or by the fail policy at the deadline); 0 when the
 * engine should route it itself (no provider configured, or fail-open while it is not running);
 * -ECONNREFUSED when the fail policy is closed and the provider is not there (SERVFAIL). */
int dnsprov_query(struct daemon *d, const struct dnsq_view *q);
/* An upstream answer for a query the provider saw: 1 when it was sent to the provider
 * (dnsproxy_response_verdict follows), 0 to pass it on as is. */
int dnsprov_response(struct daemon *d, uint64_t id, const uint8_t *resp, size_t len);
/* The engine is done with a query (answered, timed out, client gone). */
void dnsprov_query_done(struct daemon *d, uint64_t id);

/* ext.c: a dns-proxy provider for config was sent START, has started, or is stopping / gone. */
void dnsprov_provider_present(struct daemon *d, const char *config, struct ext *e, uint32_t handle);
void dnsprov_provider_running(struct daemon *d, const char *config);
void dnsprov_provider_gone(struct daemon *d, const char *config, const char *why);
/* Frames from a dns-proxy provider: 0, or -EBADMSG / -EPROTO (a protocol fault). */
int dnsprov_on_settings(struct daemon *d, const char *config, const uint8_t *p, size_t len);
int dnsprov_on_verdict(struct daemon *d, const char *config, uint64_t id, const uint8_t *p, size_t len);
int dnsprov_on_response_verdict(struct daemon *d, const char *config, uint64_t id, const uint8_t *p,
				size_t len);

void *dnsprov_status_json(struct daemon *d); /* json_t object */
