/* libnetext: the dns-proxy provider (include/netext/dnsproxy.h). (Being written.) */
#include <netext/dnsproxy.h>
