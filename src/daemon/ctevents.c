/* Stub: being written (issue 4). */
#include "ctevents.h"
