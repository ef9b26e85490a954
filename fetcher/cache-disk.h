/* SPDX-License-Identifier: MIT */
/*
 * The cache's persistent store: verified chunks kept in a file or a block
 * device across runs, read and written with io_uring (docs/cache.md has the
 * on-disk format and the crash-safety argument). The device is a header, an
 * index ring of 128-byte records and a data ring of 4 KiB-aligned extents
 * written as a log; a small in-memory map is rebuilt from the index at open.
 * A chunk counts as present on disk only once its data was synced before its
 * record was written. Every read from the disk is checked against the SHA-256
 * recorded with the chunk; a mismatch drops the chunk and reports a miss.
 *
 * Threads: every function may be called from any thread; the store has its
 * own lock (never held while it calls back) and one completion thread, from
 * which read callbacks run.
 */
#ifndef GDROOT_CACHE_DISK_H
#define GDROOT_CACHE_DISK_H

#include <stdint.h>

#include "cache-map.h"

/* On-disk geometry constants (see docs/cache.md). */
#define CACHE_DISK_BLOCK 4096u		/* header size, extent and index alignment */
#define CACHE_DISK_REC 128u		/* one index record */
#define CACHE_DISK_INDEX_OFF (3 * CACHE_DISK_BLOCK)	/* after header and two log states */
#define CACHE_DISK_BYTES_PER_SLOT 16384u	/* index slots: data ring / this, at least 256 */
#define CACHE_DISK_MIN_DATA (1u << 20)	/* smallest data ring accepted */
#define CACHE_DISK_DEFAULT_LIMIT (256ull << 20)	/* a file's data ring when limit is 0 */

struct cache_disk;

struct cache_disk_stats {
	uint64_t bytes;		/* chunk bytes in the map (written or being written) */
	uint64_t chunks;
	uint64_t limit;		/* size of the data ring */
	uint64_t dropped;	/* chunks dropped because a read failed its check */
};

/* Open the store at path (a regular file, created and sized for limit bytes
 * of chunk data (CACHE_DISK_DEFAULT_LIMIT when 0), or a block device, whose size from lseek(SEEK_END) is used,
 * capped to limit when limit is not 0). An unreadable or foreign header is
 * not an error: the store is reinitialized (empty) with a warning. Starts the
 * completion thread. Returns 0 and *out (owned by the caller, free with
 * cache_disk_close()), or -errno, logged. */
int cache_disk_open(const char *path, uint64_t limit, unsigned queue_depth, struct cache_disk **out);

/* Called once per CACHE_DISK_STARTED read, from the completion thread:
 * err 0 means buf holds the chunk; -EBADMSG (the bytes failed their check;
 * the chunk was dropped) or another -errno means treat it as a miss. */
typedef void (*cache_disk_cb)(void *arg, int err);

enum cache_disk_read_result {
	CACHE_DISK_ABSENT = 0,	/* not stored (or stored with another length) */
	CACHE_DISK_COPIED = 1,	/* still in memory awaiting its write: copied into buf now */
	CACHE_DISK_STARTED = 2,	/* a read into buf was submitted; cb will be called */
};

/* Look up the chunk key of len bytes and copy or start reading it into buf
 * (len bytes, owned by the caller, which keeps it valid until cb runs).
 * Returns a cache_disk_read_result. Never calls cb before returning. */
int cache_disk_read(struct cache_disk *d, const uint8_t key[32], uint8_t *buf, uint32_t len,
		    cache_disk_cb cb, void *arg);

/* Store the chunk key whose bytes are b->data (takes its own reference to
 * b; the caller keeps its own). Replaces an older copy of the same key.
 * Silently skips chunks that cannot be stored (too large for the ring, the
 * write queue over its cap, or the device failing writes). */
void cache_disk_insert(struct cache_disk *d, const uint8_t key[32], struct cache_buf *b);

/* Wait until every chunk inserted so far is durable (data and record synced)
 * or has failed. Returns 0, or -EIO when some write or sync failed. */
int cache_disk_sync(struct cache_disk *d);

/* Fill st under the store's lock. */
void cache_disk_stats(struct cache_disk *d, struct cache_disk_stats *st);

/* Wait for started reads (their callbacks run), make queued chunks durable,
 * stop the completion thread, close the device and free d. NULL is a no-op.
 * No other call on d may be running or follow. */
void cache_disk_close(struct cache_disk *d);

#endif
