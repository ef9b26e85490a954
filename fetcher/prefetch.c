// SPDX-License-Identifier: MIT
/* Implementation of prefetch.h. */
#include "prefetch.h"

#include <pthread.h>

#include "../squash/chunkmap.h"
#include "util/log.h"
#include "util/util.h"

struct prefetch {
	struct stage stage;
	const struct index *const *ixs;
	size_t nlayers;
	unsigned window;
	struct chunkmap where;		/* sha -> (layer in .pack, index in .off) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t **seen;			/* per layer bitmap; protected by lock */
	uint8_t (*order)[32];		/* first reads; protected by lock */
	size_t norder, caporder;
	/* the background prefetch */
	pthread_t thread;
	bool running, stop;		/* protected by lock */
	unsigned outstanding;		/* protected by lock */
	uint8_t (*list)[32];
	size_t nlist;
	uint64_t done, total;		/* protected by lock */
};

static void chunk_id_of(const struct prefetch *p, uint32_t layer, uint32_t i, struct chunk_id *id)
{
	const struct index *ix = p->ixs[layer];
	const struct index_chunk *c = &ix->chunks[i];
	memcpy(id->sha256, c->sha256, 32);
	memcpy(id->pack, ix->packs[c->pack], 32);
	id->pack_off = c->pack_off;
	id->len = c->len;
	id->layer = layer;
	id->index = i;
}

static void prefetch_read(struct stage *s, struct chunk_req *rq)
{
	struct prefetch *p = s->priv;
	uint32_t l = rq->id.layer, i = rq->id.index;
	if (l < p->nlayers && i < p->ixs[l]->nchunks) {
		pthread_mutex_lock(&p->lock);
		if (!(p->seen[l][i / 8] & (1u << (i % 8)))) {
			p->seen[l][i / 8] |= (uint8_t)(1u << (i % 8));
			if (p->norder == p->caporder)
				p->order = xrealloc(p->order, (p->caporder = p->caporder ? p->caporder * 2 : 1024) * 32);
			memcpy(p->order[p->norder++], rq->id.sha256, 32);
		}
		pthread_mutex_unlock(&p->lock);
	}
	stage_read(s->next, rq);
}

struct pf_req {
	struct chunk_req rq;
	struct prefetch *p;
};

static void pf_done(struct chunk_req *rq, int err)
{
	struct pf_req *x = rq->ud;
	struct prefetch *p = x->p;
	if (err && err != -ECANCELED)
		log_debug("prefetch: chunk %u of layer %u: %d", rq->id.index, rq->id.layer, err);
	free(rq->buf);
	free(x);
	pthread_mutex_lock(&p->lock);
	p->outstanding--;
	p->done++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void *prefetch_thread(void *arg)
{
	struct prefetch *p = arg;
	unsigned window = p->window ? p->window : 32;
	for (size_t i = 0; i < p->nlist; i++) {
		const struct chunk_loc *loc = chunkmap_find(&p->where, p->list[i]);
		pthread_mutex_lock(&p->lock);
		if (!loc) {
			p->done++;
			pthread_mutex_unlock(&p->lock);
			continue;
		}
		while (p->outstanding >= window && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		p->outstanding++;
		pthread_mutex_unlock(&p->lock);
		struct pf_req *x = xcalloc(1, sizeof(*x));
		x->p = p;
		chunk_id_of(p, loc->pack, (uint32_t)loc->off, &x->rq.id);
		x->rq.buf = xmalloc(x->rq.id.len);
		x->rq.prio = PRIO_PREFETCH;
		x->rq.done = pf_done;
		x->rq.ud = x;
		stage_read(p->stage.next, &x->rq);
	}
	pthread_mutex_lock(&p->lock);
	while (p->outstanding > 0 && !p->stop)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	log_info("prefetch: done, %llu of %llu profile chunks", (unsigned long long)p->done,
		 (unsigned long long)p->total);
	return NULL;
}

void prefetch_start(struct stage *s, const uint8_t (*sha)[32], size_t n)
{
	struct prefetch *p = s->priv;
	if (p->running || n == 0)
		return;
	p->list = xmalloc(n * 32);
	memcpy(p->list, sha, n * 32);
	p->nlist = n;
	pthread_mutex_lock(&p->lock);
	p->total = n;
	p->running = true;
	pthread_mutex_unlock(&p->lock);
	int e = pthread_create(&p->thread, NULL, prefetch_thread, p);
	if (e) {
		log_error_errno(-e, "prefetch: cannot start its thread: %m");
		p->running = false;
	}
}

size_t prefetch_recorded(struct stage *s, uint8_t (**out)[32])
{
	struct prefetch *p = s->priv;
	pthread_mutex_lock(&p->lock);
	size_t n = p->norder;
	*out = xmalloc(n * 32 + 1);
	memcpy(*out, p->order, n * 32);
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void prefetch_stats(struct stage *s, struct stage_stats *st)
{
	struct prefetch *p = s->priv;
	pthread_mutex_lock(&p->lock);
	st->prefetch_done += p->done;
	st->prefetch_total += p->total;
	pthread_mutex_unlock(&p->lock);
}

void prefetch_stop(struct stage *s)
{
	struct prefetch *p = s->priv;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (p->running)
		pthread_join(p->thread, NULL);
	p->running = false;
}

static void prefetch_destroy(struct stage *s)
{
	struct prefetch *p = s->priv;
	prefetch_stop(s);
	/* Reads still in the pipeline call pf_done, which needs p. */
	pthread_mutex_lock(&p->lock);
	while (p->outstanding > 0)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	for (size_t l = 0; l < p->nlayers; l++)
		free(p->seen[l]);
	free(p->seen);
	free(p->order);
	free(p->list);
	chunkmap_free(&p->where);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

static const struct stage_ops prefetch_ops = {
	.name = "prefetch",
	.read = prefetch_read,
	.stats = prefetch_stats,
	.destroy = prefetch_destroy,
};

struct stage *prefetch_stage_new(struct stage *next, const struct index *const *ixs, size_t nlayers,
				 unsigned window)
{
	struct prefetch *p = xcalloc(1, sizeof(*p));
	p->stage.ops = &prefetch_ops;
	p->stage.priv = p;
	p->stage.next = next;
	p->ixs = ixs;
	p->nlayers = nlayers;
	p->window = window;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	chunkmap_init(&p->where);
	p->seen = xcalloc(nlayers + 1, sizeof(*p->seen));
	/* Upper layers first: where a chunk is in several, any copy will do. */
	for (size_t l = 0; l < nlayers; l++) {
		p->seen[l] = xcalloc(ixs[l]->nchunks / 8 + 1, 1);
		for (uint32_t i = 0; i < ixs[l]->nchunks; i++)
			chunkmap_add(&p->where, ixs[l]->chunks[i].sha256, (uint32_t)l, i, ixs[l]->chunks[i].len);
	}
	return &p->stage;
}
