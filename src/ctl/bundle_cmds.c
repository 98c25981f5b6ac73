/* netextctl keygen / sign / verify. Placeholder until the implementation lands. */
#include <stdio.h>

#include "ctl.h"

int cmd_keygen(int argc, char **argv)
{
	fputs("netextctl: keygen is not implemented yet\n", stderr);
	return EXIT_FAILED;
}

int cmd_sign(int argc, char **argv)
{
	fputs("netextctl: sign is not implemented yet\n", stderr);
	return EXIT_FAILED;
}

int cmd_verify(int argc, char **argv)
{
	fputs("netextctl: verify is not implemented yet\n", stderr);
	return EXIT_FAILED;
}
