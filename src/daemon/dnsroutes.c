/* Split-DNS routes: see dnsroutes.h. (Being written.) */
#include "dnsroutes.h"
