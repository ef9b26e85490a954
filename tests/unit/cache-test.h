/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the cache stage's unit tests: a request a test can wait
 * for, chunk ids with real-looking hashes, a byte check against the fake
 * stage's contents, and a "gate" stage that holds requests until released.
 */
#ifndef GDROOT_CACHE_TEST_H
#define GDROOT_CACHE_TEST_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../squash/index.h"
#include "fake-stage.h"

/* ---- a request someone waits for ---- */

struct waiter {
	struct chunk_req rq;
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done;
	int err;
};

static inline void waiter_done(struct chunk_req *rq, int err)
{
	struct waiter *w = rq->ud;
	pthread_mutex_lock(&w->m);
	w->done = true;
	w->err = err;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->m);
}

static inline void waiter_init(struct waiter *w, const struct chunk_id *id, enum chunk_prio prio)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->m, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->rq.id = *id;
	w->rq.buf = malloc(id->len ? id->len : 1);
	w->rq.prio = prio;
	w->rq.done = waiter_done;
	w->rq.ud = w;
}

static inline int waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->m);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->m);
	pthread_mutex_unlock(&w->m);
	return w->err;
}

static inline bool waiter_is_done(struct waiter *w)
{
	pthread_mutex_lock(&w->m);
	bool d = w->done;
	pthread_mutex_unlock(&w->m);
	return d;
}

static inline void waiter_fini(struct waiter *w)
{
	free(w->rq.buf);
	pthread_mutex_destroy(&w->m);
	pthread_cond_destroy(&w->cv);
}

static inline struct chunk_id mkid(unsigned n, uint32_t len)
{
	struct chunk_id id;
	memset(&id, 0, sizeof(id));
	sha256_buf(&n, sizeof(n), id.sha256);
	id.len = len;
	id.index = n;
	return id;
}

static inline bool bytes_ok(const struct chunk_id *id, const uint8_t *buf)
{
	uint8_t *want = malloc(id->len ? id->len : 1);
	fake_fill(id, want);
	bool ok = !memcmp(want, buf, id->len);
	free(want);
	return ok;
}

/* Read id through s and wait; returns the error and checks the bytes. */
static inline int read_sync(struct stage *s, const struct chunk_id *id)
{
	struct waiter w;
	waiter_init(&w, id, PRIO_DEMAND);
	stage_read(s, &w.rq);
	int err = waiter_wait(&w);
	if (!err && !bytes_ok(id, w.rq.buf)) {
		fprintf(stderr, "wrong bytes for chunk %u\n", id->index);
		err = -EBADMSG;
	}
	waiter_fini(&w);
	return err;
}

static inline struct stage_stats stats_of(struct stage *s)
{
	struct stage_stats st;
	memset(&st, 0, sizeof(st));
	s->ops->stats(s, &st);
	return st;
}

/* ---- a stage that holds requests until released ---- */

struct gate {
	struct stage stage;
	pthread_mutex_t m;
	struct chunk_req *held;	/* linked by ->link */
	unsigned seen;
};

static inline void gate_read(struct stage *s, struct chunk_req *rq)
{
	struct gate *g = (struct gate *)s;
	pthread_mutex_lock(&g->m);
	rq->link = g->held;
	g->held = rq;
	g->seen++;
	pthread_mutex_unlock(&g->m);
}

static inline void gate_destroy(struct stage *s) { (void)s; }
static const struct stage_ops gate_ops = { "gate", gate_read, NULL, gate_destroy };

static inline void gate_init(struct gate *g, struct stage *next)
{
	memset(g, 0, sizeof(*g));
	g->stage.ops = &gate_ops;
	g->stage.next = next;
	pthread_mutex_init(&g->m, NULL);
}

/* Answer everything held: with err, or by passing it on to next. */
static inline void gate_release(struct gate *g, int err)
{
	pthread_mutex_lock(&g->m);
	struct chunk_req *rq = g->held;
	g->held = NULL;
	pthread_mutex_unlock(&g->m);
	while (rq) {
		struct chunk_req *nx = rq->link;
		if (err)
			rq->done(rq, err);
		else
			stage_read(g->stage.next, rq);
		rq = nx;
	}
}

#endif
