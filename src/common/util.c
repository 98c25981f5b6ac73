#include "util.h"

#include <ctype.h>
#include <time.h>

unsigned long long ne_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

int ne_strscpy(char *dst, const char *src, size_t size)
{
	size_t n;

	if (size == 0)
		return -ENAMETOOLONG;
	n = strnlen(src, size);
	if (n == size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int ne_name_valid(const char *s, size_t max)
{
	size_t i;

	if (!s || !isalnum((unsigned char)s[0]))
		return 0;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i >= max)
			return 0;
		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return 0;
	}
	return 1;
}
