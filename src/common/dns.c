/* Stub: being written (issue 4). */
#include "dns.h"
