// SPDX-License-Identifier: MIT
/* libFuzzer target: the boot profile parser, and encode(decode(x)) == x. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../squash/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t (*sha)[32];
	size_t n;
	char err[128];
	if (profile_decode(data, size, &sha, &n, err, sizeof(err)) != 0)
		return 0;
	void *out;
	size_t len;
	profile_encode((const uint8_t (*)[32])sha, n, &out, &len);
	if (len != size || memcmp(out, data, size) != 0)
		__builtin_trap();
	free(out);
	free(sha);
	return 0;
}
