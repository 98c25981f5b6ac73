/* libFuzzer harness for control requests: untrusted lines from any local user. */
#include <stdint.h>
#include <stddef.h>

#include "control.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_request r;
	char err[256];

	if (ctl_request_parse((const char *)data, size, &r, err, sizeof(err)) == 0) {
		/* A parsed request always has a method string and an object of params. */
		if (!r.method || !json_is_object(r.params))
			__builtin_trap();
	}
	ctl_request_clear(&r);
	return 0;
}

void fuzz_seeds(fuzz_add_fn add, void *userdata)
{
	static const char *const seeds[] = {
		"{\"id\":1,\"method\":\"status\"}",
		"{\"id\":\"a\",\"method\":\"config.add\",\"params\":{\"name\":\"demo\",\"extension\":\"x\","
		"\"provider\":\"message\",\"fail_policy\":\"open\",\"options\":{\"k\":\"v\"}}}",
		"{\"method\":\"config.message\",\"params\":{\"name\":\"demo\",\"data\":\"ping\"}}",
		"{\"method\":\"logs\",\"params\":{\"lines\":10}}",
	};
	size_t i;

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
		add((const uint8_t *)seeds[i], __builtin_strlen(seeds[i]), userdata);
}
