/* SPDX-License-Identifier: MIT */
/*
 * The boot profile: which chunks a boot read, in the order it first read
 * them, stored as "profiles/<generation, 10 digits>" next to the manifest so
 * the next boot of any machine prefetches them in that order. Chunks are
 * named by hash, so a profile stays useful for later generations that
 * share most chunks.
 *
 *	char magic[8] "GDROOTPF", u32 version (1), u32 count,
 *	count x 32-byte SHA-256
 */
#ifndef GDROOT_PROFILE_H
#define GDROOT_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#define PROFILE_KEY_PREFIX "profiles/"
#define PROFILE_MAX_CHUNKS (16u << 20)

/* *out (malloc'd, owned by the caller) gets the encoded profile. */
void profile_encode(const uint8_t (*sha)[32], size_t n, void **out, size_t *len);
/* Decode len bytes; *sha (owned by the caller) gets the hashes. Returns 0
 * or -EBADMSG with the reason in err. */
int profile_decode(const void *p, size_t len, uint8_t (**sha)[32], size_t *n, char *err, size_t errlen);
void profile_key(uint64_t generation, char *out, size_t n);

#endif
