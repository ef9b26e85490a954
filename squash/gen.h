/* SPDX-License-Identifier: MIT */
/*
 * Generations in a store: listing them, loading and checking a manifest and
 * its layer indexes, and finding the newest valid one. Shared by push,
 * log, verify, export and the fetcher, so every program reads the store the
 * same way.
 *
 * Store layout:
 *	manifests/<10-digit generation>   signed manifest (manifest.h)
 *	indexes/<sha256 hex>              layer index (index.h)
 *	packs/<sha256 hex>                concatenated chunks
 */
#ifndef GDROOT_GEN_H
#define GDROOT_GEN_H

#include "chunkmap.h"
#include "index.h"
#include "manifest.h"
#include "../fetcher/store/store.h"

#define INDEX_KEY_PREFIX "indexes/"
#define PACK_KEY_PREFIX "packs/"

/* Generations present (manifest keys), ascending. *out owned by caller. */
int gen_list(struct store *st, uint64_t **out, size_t *n);
/* Fetch manifest gen and check it with pub (NULL: unsigned store). sha (may
 * be NULL) gets the SHA-256 of the manifest object. Returns 0 or -errno,
 * having logged the problem with the generation named. */
int gen_load(struct store *st, uint64_t gen, EVP_PKEY *pub, struct manifest *m, uint8_t sha[32]);
/* The newest generation that loads and checks; invalid newer ones are
 * reported and skipped. -ENOENT when the store has none. */
int gen_load_newest(struct store *st, EVP_PKEY *pub, struct manifest *m, uint8_t sha[32]);
/* Fetch a layer's index, check its SHA-256 and size against the manifest,
 * and parse it. 0 or -errno (-EBADMSG for a bad index), logged. */
int gen_load_index(struct store *st, const struct manifest_layer *l, struct index *ix);
/* The index object with this hash (at most max bytes): a delta index is
 * read with its base (ix->has_base, ix->base say which). 0 or -errno. */
#define INDEX_BASE_MAX (256u << 20) /* the largest base index fetched */
int gen_load_index_hash(struct store *st, const uint8_t hash[32], uint64_t max, struct index *ix);
/* Add every chunk of ix to map (with its packs). */
void gen_map_index(struct chunkmap *map, const struct index *ix);

void pack_key(const uint8_t h[32], char *out, size_t n);
void index_key(const uint8_t h[32], char *out, size_t n);

#endif
