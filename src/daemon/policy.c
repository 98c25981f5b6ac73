/* Managed policy (policy.h). Placeholder until the implementation lands. */
#include "policy.h"
