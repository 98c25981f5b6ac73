/* Stub: being written (issue 4). */
#include "namecache.h"
