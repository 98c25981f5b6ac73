#include "log.h"

int main(void)
{
	log_init("netextd", 0);
	return 0;
}
