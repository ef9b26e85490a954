// SPDX-License-Identifier: MIT
/*
 * The cache stage: lookup by chunk SHA-256 in a RAM store (refcounted
 * buffers evicted by CLOCK) or in the disk store (cache-disk.c), and
 * single-flight fetching of misses: the first request for a missing chunk
 * creates a pending entry holding the cache's own request to next; later
 * requests for the same chunk wait on that entry; when next answers, the
 * chunk is stored and every waiter gets a copy (or the same error).
 *
 * Locking: c->lock protects the RAM store, the pending table and the
 * lifecycle flags. It is never held while calling next, a requester's
 * done(), or memcpy of chunk bytes. Lock order: c->lock, then the disk
 * store's own lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache-disk.h"
#include "cache-map.h"
#include "cache.h"
#include "util/log.h"
#include "util/util.h"

/* A chunk in the RAM store, on the CLOCK ring. */
struct cache_entry {
	struct cache_node node;		/* key */
	struct cache_buf *buf;		/* the store's reference */
	bool referenced;		/* CLOCK bit, set by hits */
	struct cache_entry *prev, *next;
};

/* A chunk being fetched from next. */
struct cache_pending {
	struct cache_node node;		/* key; in c->pending until finished */
	struct cache *c;
	struct chunk_req rq;		/* ours, sent to next */
	struct cache_buf *buf;		/* rq.buf points into it */
	struct chunk_req *waiters;	/* linked by ->link; protected by c->lock */
};

struct cache {
	struct stage stage;
	struct cache_disk *disk;	/* NULL: RAM store */
	uint64_t limit;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* completing reached 0 */
	struct cache_map ram;		/* protected by lock */
	struct cache_entry *hand;	/* protected by lock: CLOCK hand */
	uint64_t bytes, chunks;		/* protected by lock (RAM store) */
	struct cache_map pending;	/* protected by lock */
	unsigned npending;		/* protected by lock: pending entries alive */
	unsigned completing;		/* protected by lock: finishing outside the lock */
	bool dying, destroyed;		/* protected by lock */
	uint64_t hits, misses;		/* atomic */
};

static void cache_count(uint64_t *counter) { __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED); }

/* ---- RAM store (c->lock held) ---- */

static void cache_ram_unlink(struct cache *c, struct cache_entry *e)
{
	if (e->next == e)
		c->hand = NULL;
	else {
		e->prev->next = e->next;
		e->next->prev = e->prev;
		if (c->hand == e)
			c->hand = e->next;
	}
	cache_map_del(&c->ram, &e->node);
	c->bytes -= e->buf->len;
	c->chunks--;
	cache_buf_unref(e->buf);	/* a reader still copying holds its own */
	free(e);
}

/* CLOCK: sweep from the hand, clearing reference bits, and evict the first
 * entry not referenced since the hand last passed it. */
static void cache_ram_evict_one(struct cache *c)
{
	while (c->hand->referenced) {
		c->hand->referenced = false;
		c->hand = c->hand->next;
	}
	cache_ram_unlink(c, c->hand);
}

static void cache_ram_insert(struct cache *c, const uint8_t key[32], struct cache_buf *b)
{
	if (b->len > c->limit)
		return;
	struct cache_node *old = cache_map_find(&c->ram, key);
	if (old)
		cache_ram_unlink(c, (struct cache_entry *)old);
	while (c->hand && c->bytes + b->len > c->limit)
		cache_ram_evict_one(c);
	struct cache_entry *e = xcalloc(1, sizeof(*e));
	memcpy(e->node.key, key, 32);
	e->buf = cache_buf_ref(b);
	/* Unreferenced, but behind the hand: a new chunk gets one full turn
	 * of the hand before it can go, and stays longer only if hit. */
	e->referenced = false;
	if (!c->hand) {
		e->prev = e->next = e;
		c->hand = e;
	} else {	/* just behind the hand: the last place it will look */
		e->next = c->hand;
		e->prev = c->hand->prev;
		e->prev->next = e;
		c->hand->prev = e;
	}
	cache_map_add(&c->ram, &e->node);
	c->bytes += b->len;
	c->chunks++;
}

/* ---- misses ---- */

static void cache_free(struct cache *c)
{
	cache_map_free(&c->ram);
	cache_map_free(&c->pending);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

static void cache_answer(struct chunk_req *w, const struct cache_buf *b, int err)
{
	while (w) {
		struct chunk_req *nx = w->link;
		if (!err)
			memcpy(w->buf, b->data, w->id.len);
		w->done(w, err);
		w = nx;
	}
}

static void cache_fetch_done(struct chunk_req *prq, int err)
{
	struct cache_pending *p = prq->stage_ud;
	struct cache *c = p->c;

	pthread_mutex_lock(&c->lock);
	struct chunk_req *w = TAKE_PTR(p->waiters);
	bool store = !err && !c->dying;
	if (store && !c->disk)
		cache_ram_insert(c, p->node.key, p->buf);
	c->completing++;
	pthread_mutex_unlock(&c->lock);

	/* Hashing and queueing the write happen outside c->lock; the pending
	 * entry stays visible until the disk store has the chunk, so a request
	 * arriving meanwhile joins it instead of fetching again. */
	if (store && c->disk)
		cache_disk_insert(c->disk, p->node.key, p->buf);

	pthread_mutex_lock(&c->lock);
	struct chunk_req *late = TAKE_PTR(p->waiters);
	cache_map_del(&c->pending, &p->node);
	c->npending--;
	if (!--c->completing)
		pthread_cond_broadcast(&c->cond);
	bool free_c = c->destroyed && !c->npending;
	pthread_mutex_unlock(&c->lock);

	cache_answer(w, p->buf, err);
	cache_answer(late, p->buf, err);
	cache_buf_unref(p->buf);
	free(p);
	if (free_c)
		cache_free(c);
}

static void cache_disk_done(void *arg, int err);

/* A request the store could not answer: join or start its fetch. Takes
 * c->lock unless locked (then releases it). */
static void cache_miss(struct cache *c, struct chunk_req *rq, bool locked)
{
	if (!locked)
		pthread_mutex_lock(&c->lock);
	if (c->dying) {
		pthread_mutex_unlock(&c->lock);
		rq->done(rq, -ECANCELED);
		return;
	}
	struct cache_node *x = cache_map_find(&c->pending, rq->id.sha256);
	if (x && ((struct cache_pending *)x)->rq.id.len != rq->id.len) {
		/* The same hash with another length: one of the two is wrong and
		 * next will say which. Not worth caching or sharing. */
		pthread_mutex_unlock(&c->lock);
		cache_count(&c->misses);
		stage_read(c->stage.next, rq);
		return;
	}
	if (x) {
		struct cache_pending *p = (struct cache_pending *)x;
		rq->link = p->waiters;
		p->waiters = rq;
		pthread_mutex_unlock(&c->lock);
		cache_count(&c->misses);
		return;
	}
	if (c->disk) {
		/* It may have been stored since the unlocked lookup. */
		int r = cache_disk_read(c->disk, rq->id.sha256, rq->buf, rq->id.len, cache_disk_done, rq);
		if (r != CACHE_DISK_ABSENT) {
			pthread_mutex_unlock(&c->lock);
			if (r == CACHE_DISK_COPIED) {
				cache_count(&c->hits);
				rq->done(rq, 0);
			}
			return;
		}
	}
	struct cache_pending *p = xcalloc(1, sizeof(*p));
	memcpy(p->node.key, rq->id.sha256, 32);
	p->c = c;
	p->buf = cache_buf_new(rq->id.len);
	p->rq.id = rq->id;
	p->rq.buf = p->buf->data;
	p->rq.prio = rq->prio;
	p->rq.done = cache_fetch_done;
	p->rq.stage_ud = p;
	rq->link = NULL;
	p->waiters = rq;
	cache_map_add(&c->pending, &p->node);
	c->npending++;
	pthread_mutex_unlock(&c->lock);
	cache_count(&c->misses);
	stage_read(c->stage.next, &p->rq);
}

/* A disk read finished (on the disk store's completion thread). */
static void cache_disk_done(void *arg, int err)
{
	struct chunk_req *rq = arg;
	struct cache *c = rq->stage_ud;
	if (!err) {
		cache_count(&c->hits);
		rq->done(rq, 0);
		return;
	}
	cache_miss(c, rq, false);	/* damaged on disk: fetch it again */
}

/* ---- stage ops ---- */

static void cache_read(struct stage *s, struct chunk_req *rq)
{
	struct cache *c = s->priv;
	if (c->disk) {
		rq->stage_ud = c;
		int r = cache_disk_read(c->disk, rq->id.sha256, rq->buf, rq->id.len, cache_disk_done, rq);
		if (r == CACHE_DISK_STARTED)
			return;
		if (r == CACHE_DISK_COPIED) {
			cache_count(&c->hits);
			rq->done(rq, 0);
			return;
		}
		cache_miss(c, rq, false);
		return;
	}
	pthread_mutex_lock(&c->lock);
	struct cache_node *x = cache_map_find(&c->ram, rq->id.sha256);
	struct cache_entry *e = (struct cache_entry *)x;
	if (!e || e->buf->len != rq->id.len) {
		cache_miss(c, rq, true);
		return;
	}
	e->referenced = true;
	struct cache_buf *b = cache_buf_ref(e->buf);
	pthread_mutex_unlock(&c->lock);
	memcpy(rq->buf, b->data, rq->id.len);
	cache_buf_unref(b);
	cache_count(&c->hits);
	rq->done(rq, 0);
}

static void cache_stats(struct stage *s, struct stage_stats *st)
{
	struct cache *c = s->priv;
	st->hits += __atomic_load_n(&c->hits, __ATOMIC_RELAXED);
	st->misses += __atomic_load_n(&c->misses, __ATOMIC_RELAXED);
	if (c->disk) {
		struct cache_disk_stats ds;
		cache_disk_stats(c->disk, &ds);
		st->cache_bytes += ds.bytes;
		st->cache_chunks += ds.chunks;
		st->cache_limit += ds.limit;
		return;
	}
	pthread_mutex_lock(&c->lock);
	st->cache_bytes += c->bytes;
	st->cache_chunks += c->chunks;
	st->cache_limit += c->limit;
	pthread_mutex_unlock(&c->lock);
}

static void cache_destroy(struct stage *s)
{
	struct cache *c = s->priv;
	struct chunk_req *cancel = NULL;

	pthread_mutex_lock(&c->lock);
	c->dying = true;
	for (size_t i = 0; i < c->pending.nb; i++)
		for (struct cache_node *x = c->pending.b[i]; x; x = x->hnext) {
			struct cache_pending *p = (struct cache_pending *)x;
			while (p->waiters) {
				struct chunk_req *w = p->waiters;
				p->waiters = w->link;
				w->link = cancel;
				cancel = w;
			}
		}
	while (c->completing)	/* one may be inside cache_disk_insert() */
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	cache_answer(cancel, NULL, -ECANCELED);

	/* Runs the callbacks of started disk reads: hits are answered, the
	 * rest are cancelled by cache_miss(). */
	cache_disk_close(c->disk);
	c->disk = NULL;

	pthread_mutex_lock(&c->lock);
	while (c->hand)
		cache_ram_unlink(c, c->hand);
	/* Fetches still in next keep c alive; the last one frees it. */
	c->destroyed = true;
	bool free_now = !c->npending;
	pthread_mutex_unlock(&c->lock);
	if (free_now)
		cache_free(c);
}

int cache_stage_sync(struct stage *s)
{
	struct cache *c = s->priv;
	return c->disk ? cache_disk_sync(c->disk) : 0;
}

static const struct stage_ops cache_ops = {
	.name = "cache",
	.read = cache_read,
	.stats = cache_stats,
	.destroy = cache_destroy,
};

struct stage *cache_stage_new(const struct cache_opts *o, struct stage *next)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	c->stage.ops = &cache_ops;
	c->stage.next = next;
	c->stage.priv = c;
	c->limit = o->limit ? o->limit : CACHE_DEFAULT_LIMIT;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (o->path) {
		int r = cache_disk_open(o->path, o->limit,
					o->queue_depth ? o->queue_depth : CACHE_DEFAULT_QUEUE_DEPTH, &c->disk);
		if (r == -EINVAL) {	/* a configuration error: say so */
			cache_free(c);
			errno = EINVAL;
			return NULL;
		}
		if (r < 0) {	/* never fail the boot over a cache */
			c->limit = MIN(c->limit, CACHE_DEFAULT_LIMIT);
			log_warn("cache %s unusable; caching %llu MiB in RAM instead", o->path,
				 (unsigned long long)(c->limit >> 20));
		}
	}
	return &c->stage;
}
