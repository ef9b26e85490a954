// SPDX-License-Identifier: MIT
/* libFuzzer target: the OAuth 2.0 token and device-code response parsers. */
#include <stdint.h>
#include <string.h>

#include "../../fetcher/store/gdrive-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct oauth_token t;
	struct oauth_device_code d;
	if (oauth_parse_token((const char *)data, size, &t) == 0 && !t.error[0]) {
		/* A token that parsed must be safe to put in a header. */
		for (const char *c = t.access_token; *c; c++)
			if (*c == '\r' || *c == '\n' || *c == ' ')
				__builtin_trap();
	}
	oauth_parse_device_code((const char *)data, size, &d);
	return 0;
}
