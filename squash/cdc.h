/* SPDX-License-Identifier: MIT */
/*
 * Content-defined chunking (FastCDC, Xia et al., USENIX ATC 2016) for the
 * squashfs images gdroot cuts into chunks. A gear rolling hash
 * h = (h << 1) + gear[byte] runs over the data; a cut falls after the byte
 * where the hash's top bits are all zero. Normalized chunking uses a mask of
 * log2(avg) + 2 bits between min and avg and one of log2(avg) - 2 bits
 * between avg and max, which narrows the spread of chunk sizes around avg.
 * The hash is warmed up over the 64 bytes before min, so whether a position
 * is a cut candidate depends only on the 64 bytes ending there: after an
 * edit, cuts fall back into step within a chunk or two.
 *
 * The cut points are part of the on-store format forever: the same bytes
 * and parameters must give the same chunks in every release, or a new push
 * re-uploads everything. So the gear table (cdc_gear below) is a constant:
 * entry i is the (i+1)-th output of splitmix64 (Steele, Lea and Flood 2014;
 * state += 0x9e3779b97f4a7c15, then the 30/27/31 xor-shift-multiply mix)
 * seeded with 0x6764726f6f74 ("gdroot" in ASCII). tests/unit/test-cdc.c
 * regenerates it and checks every entry and a set of known cut points.
 * Never change the table, the masks or the warm-up.
 */
#ifndef GDROOT_CDC_H
#define GDROOT_CDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cdc_params {
	uint32_t min, avg, max; /* bytes; avg a power of two */
};

/*
 * Chosen by measurement (docs/chunking.md, tests/bench/chunk-sizes.sh): a
 * Debian bookworm systemd root as an LZ4 squashfs, a boot-like read trace
 * and a one-package update, for averages 8 KiB to 256 KiB. 32 KiB is the
 * knee: smaller averages barely cut the bytes a boot fetches (1.12x the
 * bytes read at 32 KiB, 1.03x at 8 KiB) but double the chunks (manifest,
 * index, hashes) at each halving; larger ones fetch more (1.23x at 64 KiB,
 * 1.64x at 256 KiB) and upload more per update. max = 128 KiB, the
 * squashfs block size, bounds what one random read must fetch and verify.
 */
#define CDC_DEFAULT_PARAMS ((struct cdc_params){ .min = 8192, .avg = 32768, .max = 131072 })

/*
 * Target size of a pack object: chunks are laid out in image order and a
 * pack is closed when the next chunk would take it past this size, so no
 * pack exceeds it (a chunk is at most CDC_MAX_LIMIT). Neighbouring chunks coalesce into one Range request only
 * within a pack; 16 MiB packs need 6% more requests than 64 MiB ones and
 * 4% fewer than 4 MiB ones for a boot, make 64 objects per GiB, and keep
 * garbage collection (which deletes whole packs) reasonably fine-grained.
 */
#define PACK_TARGET_SIZE (16u << 20)

/* Largest max the chunker accepts, and the gear hash's window in bytes. */
#define CDC_MAX_LIMIT (4u << 20)
#define CDC_WINDOW 64u

/* The gear table: splitmix64(0x6764726f6f74), outputs 1..256. */
extern const uint64_t cdc_gear[256];

/* Validate params: returns 0, or -EINVAL unless min >= 64, min < avg < max,
 * avg is a power of two and max <= 4 MiB. */
int cdc_params_check(const struct cdc_params *p);

/*
 * Length of the chunk that starts at buf[0], given n available bytes. p must
 * pass cdc_params_check (not re-checked here: this is the hot path).
 *  - A cut found in (min, n]: its length, which is in (min, max].
 *  - No cut before max and n >= max: max.
 *  - No cut before n, n < max: n if eof (the last chunk, which may be
 *    shorter than min), else 0 (need more data). n == 0 returns 0.
 * Pure: the same bytes always give the same cut, whatever n is, as long as
 * the answer is not 0. The caller owns buf; nothing is kept.
 */
size_t cdc_cut(const struct cdc_params *p, const uint8_t *buf, size_t n, bool eof);

/* Called once per chunk, in order: off is the chunk's offset in the stream.
 * chunk is valid only during the call. Return 0 to go on; anything else
 * stops the split and becomes its return value. */
typedef int (*cdc_chunk_fn)(void *ud, uint64_t off, const uint8_t *chunk, size_t len);

/*
 * Read fd from its current position to end of file and call fn for every
 * chunk, in order (a buffer of 2 * max, allocated and freed here). Returns
 * 0, -EINVAL for bad params, -errno from read(2), -ENOMEM, or fn's first
 * nonzero return. An empty file gives no chunks.
 */
int cdc_split_fd(const struct cdc_params *p, int fd, cdc_chunk_fn fn, void *ud);

#endif
