/* Stub: being written (issue 4). */
#include "procinfo.h"
