/* SPDX-License-Identifier: MIT */
/*
 * A fake "next" stage for unit tests of fetcher stages: it serves chunks
 * whose bytes are a function of their hash (byte i of chunk c is
 * c.sha256[i % 32] ^ (i & 0xff)), synchronously or from a helper thread
 * after a delay, counts every request, and can be told to fail or corrupt.
 */
#ifndef GDROOT_FAKE_STAGE_H
#define GDROOT_FAKE_STAGE_H

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../fetcher/stage.h"

struct fake_stage {
	struct stage stage;
	pthread_mutex_t lock;
	unsigned requests;	/* protected by lock */
	int fail_err;		/* fail every request with this -errno */
	unsigned corrupt_next;	/* flip a byte in this many answers */
	unsigned delay_ms;	/* answer from a thread after this delay */
};

static inline void fake_fill(const struct chunk_id *id, uint8_t *buf)
{
	for (uint32_t i = 0; i < id->len; i++)
		buf[i] = id->sha256[i % 32] ^ (uint8_t)(i & 0xff);
}

struct fake_job {
	struct fake_stage *f;
	struct chunk_req *rq;
};

static inline void fake_answer(struct fake_stage *f, struct chunk_req *rq)
{
	bool corrupt = false;
	pthread_mutex_lock(&f->lock);
	if (f->corrupt_next) {
		f->corrupt_next--;
		corrupt = true;
	}
	pthread_mutex_unlock(&f->lock);
	if (f->fail_err) {
		rq->done(rq, f->fail_err);
		return;
	}
	fake_fill(&rq->id, rq->buf);
	if (corrupt && rq->id.len)
		rq->buf[0] ^= 0xff;
	rq->done(rq, 0);
}

static inline void *fake_thread(void *p)
{
	struct fake_job *j = p;
	usleep(j->f->delay_ms * 1000u);
	fake_answer(j->f, j->rq);
	free(j);
	return NULL;
}

static inline void fake_read(struct stage *s, struct chunk_req *rq)
{
	struct fake_stage *f = (struct fake_stage *)s;
	pthread_mutex_lock(&f->lock);
	f->requests++;
	pthread_mutex_unlock(&f->lock);
	if (!f->delay_ms) {
		fake_answer(f, rq);
		return;
	}
	struct fake_job *j = malloc(sizeof(*j));
	j->f = f;
	j->rq = rq;
	pthread_t t;
	pthread_create(&t, NULL, fake_thread, j);
	pthread_detach(t);
}

static inline void fake_destroy(struct stage *s) { (void)s; }

static const struct stage_ops fake_stage_ops = { "fake", fake_read, NULL, fake_destroy };

static inline void fake_stage_init(struct fake_stage *f)
{
	memset(f, 0, sizeof(*f));
	f->stage.ops = &fake_stage_ops;
	pthread_mutex_init(&f->lock, NULL);
}

static inline unsigned fake_requests(struct fake_stage *f)
{
	pthread_mutex_lock(&f->lock);
	unsigned n = f->requests;
	pthread_mutex_unlock(&f->lock);
	return n;
}

#endif
