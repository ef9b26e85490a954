// SPDX-License-Identifier: MIT
/* libFuzzer target: the delta index parser, against a fixed base of 64
 * chunks in 3 packs. What it accepts must be a self-consistent index:
 * offsets in order, every pack number in range, index_find agreeing, and
 * the full encoding of it parsing back to the same chunks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../squash/index.h"
#include "../../fetcher/util/util.h"

static struct index base;

static void make_base(void)
{
	base.npacks = 3;
	base.nchunks = 64;
	base.packs = xcalloc(3, 32);
	base.chunks = xcalloc(64, sizeof(*base.chunks));
	for (uint32_t i = 0; i < 64; i++) {
		base.chunks[i].sha256[0] = (uint8_t)i;
		base.chunks[i].pack = i % 3;
		base.chunks[i].len = 100 + i;
		base.chunks[i].pack_off = 1000ull * i;
		base.chunks[i].layer_off = base.layer_size;
		base.layer_size += 100 + i;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct index ix, back;
	char err[128];
	if (!base.chunks)
		make_base();
	if (index_parse_delta(data, size, &base, &ix, err, sizeof(err)) != 0)
		return 0;
	uint64_t off = 0;
	for (uint32_t i = 0; i < ix.nchunks; i++) {
		if (ix.chunks[i].layer_off != off || ix.chunks[i].pack >= ix.npacks ||
		    index_find(&ix, ix.chunks[i].layer_off) != (long)i)
			__builtin_trap();
		off += ix.chunks[i].len;
	}
	if (off != ix.layer_size)
		__builtin_trap();
	void *out;
	size_t len;
	index_write(&ix, &out, &len);
	if (index_parse(out, len, &back, err, sizeof(err)) != 0 || back.nchunks != ix.nchunks)
		__builtin_trap();
	free(out);
	index_free(&back);
	index_free(&ix);
	return 0;
}
