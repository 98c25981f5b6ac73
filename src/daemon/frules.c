#include "frules.h"
