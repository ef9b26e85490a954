/* SPDX-License-Identifier: MIT */
/*
 * The layer index: which chunks, in which packs, make up a layer image, in
 * layer order. Binary, little-endian, content-addressed in the store as
 * "indexes/<sha256 of the index>" and named by that hash in the signed
 * manifest, so its integrity follows from the signature.
 *
 *	header (32 bytes)
 *	  char magic[8]      "GDROOTIX"
 *	  u32  version       1
 *	  u32  npacks
 *	  u64  layer_size    sum of all chunk lengths
 *	  u32  nchunks
 *	  u32  reserved      0
 *	packs   npacks x 32  SHA-256 of each pack = its key "packs/<hex>"
 *	chunks  nchunks x 48 { u8 sha256[32]; u32 pack; u32 len; u64 pack_off }
 *
 * A chunk's offset in the layer is the sum of the lengths before it. The
 * parser accepts only an exact-size, self-consistent index: no allocation
 * is larger than the input, and every field is range-checked.
 *
 * Version 2, a delta index, describes a layer by the chunks it shares with
 * a base index (always a version 1 index), so that a commit that changed
 * 1 MiB of a 200 MiB layer uploads a few KiB of index, not 300 KiB:
 *
 *	header (32 bytes)    as above with version 2; npacks counts the
 *	                     extra packs only; reserved holds nruns
 *	base    32           SHA-256 of the base index ("indexes/<hex>")
 *	packs   npacks x 32  extra packs: the index's packs are the base's
 *	                     followed by these
 *	runs    nruns x 8    { u32 base_start; u32 count }: count chunks copied
 *	                     from the base from base_start on, or, when
 *	                     base_start is 0xffffffff, the next count chunks
 *	                     of the new-chunk list
 *	new     N x 48       chunks as in version 1 (pack numbers over the
 *	                     whole pack list), N = the sum of new runs' counts
 */
#ifndef GDROOT_INDEX_H
#define GDROOT_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INDEX_MAGIC "GDROOTIX"
#define INDEX_VERSION 1
#define INDEX_VERSION_DELTA 2
#define INDEX_RUN_NEW 0xffffffffu
#define INDEX_HEADER_SIZE 32
#define INDEX_CHUNK_SIZE 48
#define INDEX_MAX_CHUNK_LEN (4u << 20)
#define INDEX_MAX_CHUNKS (64u << 20)
#define INDEX_MAX_PACKS (1u << 20)

struct index_chunk {
	uint8_t sha256[32];
	uint32_t pack;		/* into index.packs */
	uint32_t len;
	uint64_t pack_off;
	uint64_t layer_off;	/* computed by the parser / builder */
};

struct index {
	bool has_base;		/* parsed from a delta index: */
	uint8_t base[32];	/* its base index */
	uint64_t layer_size;
	uint32_t npacks, nchunks;
	uint8_t (*packs)[32];	/* owned */
	struct index_chunk *chunks; /* owned, in layer order */
};

/* Parse an index from n bytes. On success *out owns its arrays (free with
 * index_free). Returns 0 or -EBADMSG with a reason in err (which may be
 * NULL; errlen bytes). */
int index_parse(const void *p, size_t n, struct index *out, char *err, size_t errlen);
/* Serialize; *out is malloc'd and owned by the caller. Returns 0. */
int index_write(const struct index *ix, void **out, size_t *len);
void index_free(struct index *ix);

/* The version of n bytes of index (0 if not an index) and, for a delta,
 * its base's hash. */
uint32_t index_version(const void *p, size_t n, uint8_t base[32]);
/* Parse a delta index against its base (a version 1 index, whose hash the
 * caller checked); *out is the whole index, with has_base and base set.
 * 0 or -EBADMSG with a reason in err. */
int index_parse_delta(const void *p, size_t n, const struct index *base, struct index *out, char *err,
		      size_t errlen);
/* Encode ix as a delta against base (hash base_sha). The caller keeps it
 * only if it is smaller than index_write's. Returns 0. */
int index_write_delta(const struct index *ix, const struct index *base, const uint8_t base_sha[32], void **out,
		      size_t *len);

/* The chunk covering layer offset off (binary search), or -1. */
long index_find(const struct index *ix, uint64_t off);

/* Hex of a 32-byte hash into out[65]. */
void sha256_hex(const uint8_t h[32], char out[65]);
/* Parse 64 hex digits. 0 or -EINVAL. */
int sha256_unhex(const char *hex, uint8_t h[32]);
/* SHA-256 of n bytes. */
void sha256_buf(const void *p, size_t n, uint8_t out[32]);

#endif
