/* SPDX-License-Identifier: MIT */
/*
 * The fetcher's read path is a chain of stages with one small interface,
 * like nbdkit's filters:
 *
 *	FUSE -> prefetch -> cache -> verify -> net (store client)
 *
 * A stage receives chunk requests and either answers them itself (a cache
 * hit) or passes them, or requests of its own, to s->next. Every stage can
 * be unit-tested against a fake next stage (tests/unit/fake-stage.h).
 *
 * Threads: read() may be called from any thread, concurrently; done() may
 * be called from any thread, including from inside read() (a synchronous
 * answer). A stage never blocks in read() on I/O it does not own.
 */
#ifndef GDROOT_STAGE_H
#define GDROOT_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a chunk is and what it must hash to. Chunks are identified by
 * their content hash: the same chunk in two layers is one chunk. */
struct chunk_id {
	uint8_t sha256[32];
	uint8_t pack[32];	/* SHA-256 of its pack: key "packs/<hex>" */
	uint64_t pack_off;
	uint32_t len;		/* <= 4 MiB */
	uint32_t layer;		/* which layer file asked (for profiles) */
	uint32_t index;		/* the chunk's number in that layer's index */
};

enum chunk_prio { PRIO_DEMAND = 0, PRIO_PREFETCH = 1 };

struct chunk_req;
/* Called exactly once per request: err 0 means buf holds id.len verified
 * bytes; otherwise -errno (-EIO for a chunk that failed verification or a
 * store that failed for good, -ETIMEDOUT when an outage outlasted the
 * configured timeout). */
typedef void (*chunk_done_fn)(struct chunk_req *rq, int err);

struct chunk_req {
	struct chunk_id id;
	uint8_t *buf;		/* id.len bytes, owned by the requester */
	enum chunk_prio prio;
	chunk_done_fn done;
	void *ud;		/* the requester's */
	struct chunk_req *link;	/* free for the stage that holds rq now */
	void *stage_ud;		/* likewise */
};

struct stage;

struct stage_stats {
	/* Each stage fills what it knows; zero elsewhere. */
	uint64_t hits, misses;		/* cache */
	uint64_t cache_bytes, cache_limit, cache_chunks;
	uint64_t fetched_bytes, fetched_requests, fetch_errors, retries; /* net */
	uint64_t verify_failures;	/* verify */
	uint64_t prefetch_done, prefetch_total; /* prefetch */
	uint64_t in_flight;
};

struct stage_ops {
	const char *name;
	/* Start serving rq (see chunk_done_fn). */
	void (*read)(struct stage *s, struct chunk_req *rq);
	/* Add this stage's counters into st. May be NULL. */
	void (*stats)(struct stage *s, struct stage_stats *st);
	/* Stop and free; pending requests are failed with -ECANCELED first.
	 * Does not destroy next. */
	void (*destroy)(struct stage *s);
};

struct stage {
	const struct stage_ops *ops;
	struct stage *next;	/* NULL for the last stage */
	void *priv;
};

static inline void stage_read(struct stage *s, struct chunk_req *rq) { s->ops->read(s, rq); }

/* Sum the stats of s and every stage after it. */
static inline void stage_stats_all(struct stage *s, struct stage_stats *st)
{
	for (; s; s = s->next)
		if (s->ops->stats)
			s->ops->stats(s, st);
}

#endif
