// SPDX-License-Identifier: MIT
/* libFuzzer target: the layer index parser, and write(parse(x)) == x for
 * every input it accepts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../squash/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct index ix;
	char err[128];
	if (index_parse(data, size, &ix, err, sizeof(err)) != 0)
		return 0;
	void *out;
	size_t len;
	index_write(&ix, &out, &len);
	if (len != size || memcmp(out, data, size) != 0)
		__builtin_trap();
	for (uint32_t i = 0; i < ix.nchunks; i++)
		if (index_find(&ix, ix.chunks[i].layer_off) != (long)i)
			__builtin_trap();
	free(out);
	index_free(&ix);
	return 0;
}
