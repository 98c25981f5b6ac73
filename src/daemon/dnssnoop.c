/* Stub: being written (issue 4). */
#include "dnssnoop.h"
