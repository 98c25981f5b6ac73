/* Building DNS messages: see dns.h. (Being written.) */
#include "dns.h"
