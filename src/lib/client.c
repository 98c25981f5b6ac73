/* The app side of libnetext (<netext/system.h>). Placeholder until the implementation lands. */
#include <netext/system.h>
