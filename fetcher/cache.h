/* SPDX-License-Identifier: MIT */
/*
 * The cache stage of the read path (FUSE -> prefetch -> cache -> verify ->
 * net): it answers chunk requests from verified chunks kept in RAM or in a
 * persistent store on a file or block device (cache-disk.h), and sends the
 * rest to the verify stage. Concurrent requests for one missing chunk cause
 * one fetch (single-flight); every waiter gets the same answer, and a failed
 * fetch caches nothing. docs/cache.md has the design.
 */
#ifndef GDROOT_CACHE_H
#define GDROOT_CACHE_H

#include <stdint.h>

#include "stage.h"

#define CACHE_DEFAULT_LIMIT (256ull << 20)
#define CACHE_DEFAULT_QUEUE_DEPTH 64u

struct cache_opts {
	/* Bytes of chunk data kept (not counting the cache's own overhead).
	 * 0: CACHE_DEFAULT_LIMIT for RAM and for a file; a block device's
	 * whole size. For a block device a non-zero limit caps the part used. */
	uint64_t limit;
	/* NULL: RAM, lost at exit. Else a regular file (created, and resized
	 * to hold limit bytes of chunks plus its index) or a block device
	 * (size from lseek(SEEK_END)); either persists across runs. A damaged
	 * or foreign file is reinitialized with a warning. */
	const char *path;
	/* io_uring submission queue depth for the disk store; 0: 64. */
	unsigned queue_depth;
};

/* Create the cache stage in front of next (the verify stage), which it
 * does not own. Returns the stage (owned by the caller: free it with
 * s->ops->destroy(s), which fails waiting requests with -ECANCELED and does
 * not destroy next), or NULL with errno set, logged.
 *
 * read(): any thread, concurrently. A RAM hit is answered synchronously,
 * inside read(); a disk hit from the cache's completion thread; a miss from
 * whatever thread next answers on. A request must not be destroyed nor its
 * buf freed before its done() runs.
 * stats(): adds hits, misses, cache_bytes, cache_limit and cache_chunks. */
struct stage *cache_stage_new(const struct cache_opts *o, struct stage *next);

/* Wait until every chunk the cache stage s has stored so far is durable on
 * its disk (data and index record synced), e.g. before reporting boot
 * complete or in tests. Any thread; no lock held. Returns 0 (at once for a
 * RAM cache), or -EIO when a write or sync failed (logged). */
int cache_stage_sync(struct stage *s);

#endif
