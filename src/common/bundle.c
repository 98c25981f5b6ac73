/* Extension bundles (bundle.h). Placeholder until the implementation lands. */
#include "bundle.h"

#include <errno.h>
#include <stdlib.h>
