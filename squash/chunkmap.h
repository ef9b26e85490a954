/* SPDX-License-Identifier: MIT */
/*
 * Where each known chunk is stored: a hash table from chunk SHA-256 to
 * (pack, offset, length), and the table of packs it refers to. Push fills it
 * from every generation's indexes to deduplicate against all of them; the
 * fetcher and verify use it to find chunks. Keys are SHA-256 values, so the
 * first 8 bytes serve as the hash.
 */
#ifndef GDROOT_CHUNKMAP_H
#define GDROOT_CHUNKMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chunk_loc {
	uint8_t sha256[32];
	uint32_t pack;		/* into chunkmap.packs */
	uint32_t len;
	uint64_t off;		/* in the pack */
};

struct chunkmap {
	struct chunk_loc *slots; /* open addressing; len 0 = empty */
	size_t cap, n;
	uint8_t (*packs)[32];
	uint32_t *pack_slots;	/* open addressing over packs; UINT32_MAX empty */
	size_t npacks, pack_cap, pack_slot_cap;
};

void chunkmap_init(struct chunkmap *m);
void chunkmap_free(struct chunkmap *m);
/* The number of pack hash h, adding it if new. */
uint32_t chunkmap_pack(struct chunkmap *m, const uint8_t h[32]);
/* Look up a pack without adding it: its number, or -1. */
long chunkmap_find_pack(const struct chunkmap *m, const uint8_t h[32]);
/* Add a chunk; an existing entry for the same hash is kept. Returns true if
 * the chunk was new. */
bool chunkmap_add(struct chunkmap *m, const uint8_t sha[32], uint32_t pack, uint64_t off, uint32_t len);
/* The entry for sha, or NULL. Valid until the next add. */
const struct chunk_loc *chunkmap_find(const struct chunkmap *m, const uint8_t sha[32]);

#endif
