/* libnetext: DNS messages for providers (include/netext/dns.h). (Being written.) */
#include <netext/dns.h>
