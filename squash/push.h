/* SPDX-License-Identifier: MIT */
/*
 * Pushing a layer image into a store: cut it into content-defined chunks,
 * deduplicate against every chunk the store already holds, write the new
 * ones into packs, upload the packs, then the index. Publishing a
 * generation (the manifest) is a separate, last step, so a push killed at
 * any point never exposes a partial generation, and a rerun makes the same
 * packs and skips those already stored.
 */
#ifndef GDROOT_PUSH_H
#define GDROOT_PUSH_H

#include "cdc.h"
#include "chunkmap.h"
#include "gen.h"
#include "../fetcher/store/store.h"

struct push_ctx {
	struct store *st;
	struct cdc_params cdc;
	uint64_t pack_target;		/* bytes */
	const char *workdir;		/* for pack files */
	struct chunkmap known;		/* chunks of every valid generation */
	struct chunkmap present;	/* packs the store holds (packs only) */
	uint64_t store_new_bytes;	/* bytes stored by this push */
	uint64_t uploaded;		/* pack bytes uploaded */
	unsigned packs_uploaded, packs_skipped;
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	void *progress_ud;
	/* Optional: write the index as a delta against this version 1 index
	 * (hash delta_base_sha) when that is smaller (index.h). */
	const struct index *delta_base;
	uint8_t delta_base_sha[32];
	bool index_is_delta;	/* set by push_layer */
};

/* Set up: list the store's packs, and map the chunks of every valid
 * generation (signed with pub, or unsigned when pub is NULL). *newest gets
 * the newest valid manifest (generation 0 if none; caller frees with
 * manifest_free), newest_sha its object hash, *max_gen the highest
 * generation number present, valid or not. */
int push_init(struct push_ctx *p, struct store *st, EVP_PKEY *pub, const char *workdir,
	      struct manifest *newest, uint8_t newest_sha[32], uint64_t *max_gen);
void push_free(struct push_ctx *p);

/* Push the image at path as one layer; fill *layer. 0 or -errno. */
int push_layer(struct push_ctx *p, const char *path, struct manifest_layer *layer);

/* Tests kill the process with SIGKILL where GDROOT_TEST_CRASH names the
 * point: "pack:N" (after the Nth pack upload), "index" (after the index
 * upload), "manifest" (just before publishing), "capture" (mid-capture,
 * the upper frozen), "image" (after the commit's layer image is made). */
void test_crash_point(const char *where, unsigned n);

#endif
