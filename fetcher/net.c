// SPDX-License-Identifier: MIT
/*
 * Implementation of net.h. read() queues a request and wakes the thread;
 * the thread forms batches (a head request plus every queued request that
 * continues it in the same pack, up to max_request), starts them on the
 * multi engine, and splits each response into the chunks' buffers, handing
 * each chunk on as soon as its last byte arrives. Stores that are not HTTP
 * (file://) are read synchronously in the same thread.
 */
#include "net.h"

#include <malloc.h>
#include <pthread.h>

#include "store/http-multi.h"
#include "../squash/gen.h"
#include "util/log.h"
#include "util/util.h"

struct batch {
	struct net *n;
	struct chunk_req **rq;
	size_t nrq;
	size_t cur;		/* chunk being filled */
	uint32_t cur_got;	/* bytes of it so far */
	struct store_sink sink;
	void *ctx;		/* the store's ranged context */
	uint64_t len;
};

struct net {
	struct stage stage;
	struct net_opts o;
	struct store *st;
	struct http_multi *hm;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* for the non-HTTP path */
	struct chunk_req *queue[2];	/* protected by lock; LIFO, reversed on take */
	bool stop;			/* protected by lock */
	unsigned inflight;		/* net thread only */
	struct chunk_req *pending[2];	/* net thread only, FIFO */
	uint64_t fetched_bytes, fetched_requests, errors; /* protected by lock */
	bool down;			/* net thread only: a request timed out and
					   nothing has succeeded since */
};

static void net_read(struct stage *s, struct chunk_req *rq)
{
	struct net *n = s->priv;
	pthread_mutex_lock(&n->lock);
	if (n->stop) {
		pthread_mutex_unlock(&n->lock);
		rq->done(rq, -ECANCELED);
		return;
	}
	int p = rq->prio == PRIO_DEMAND ? 0 : 1;
	rq->link = n->queue[p];
	n->queue[p] = rq;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	if (n->hm)
		http_multi_wakeup(n->hm);
}

static void batch_fail_rest(struct batch *b, int err)
{
	for (size_t i = b->cur; i < b->nrq; i++)
		b->rq[i]->done(b->rq[i], err);
	b->cur = b->nrq;
}

static int batch_write(struct store_sink *k, const void *p, size_t len)
{
	struct batch *b = (struct batch *)((char *)k - offsetof(struct batch, sink));
	const uint8_t *s = p;
	while (len > 0 && b->cur < b->nrq) {
		struct chunk_req *rq = b->rq[b->cur];
		uint32_t want = rq->id.len - b->cur_got;
		uint32_t take = len < want ? (uint32_t)len : want;
		memcpy(rq->buf + b->cur_got, s, take);
		b->cur_got += take;
		s += take;
		len -= take;
		if (b->cur_got == rq->id.len) {
			/* Complete: hand it on now, before the rest arrives. */
			b->cur++;
			b->cur_got = 0;
			rq->done(rq, 0);
		}
	}
	return 0;
}

static void batch_free(struct batch *b)
{
	store_ranged_free(b->n->st, b->ctx);
	free(b->rq);
	free(b);
}

static void batch_done(void *ud, int64_t result)
{
	struct batch *b = ud;
	struct net *n = b->n;
	pthread_mutex_lock(&n->lock);
	n->fetched_requests++;
	if (result > 0)
		n->fetched_bytes += (uint64_t)result;
	if (result < 0 || b->cur < b->nrq)
		n->errors++;
	pthread_mutex_unlock(&n->lock);
	if (result == -ETIMEDOUT && !n->down) {
		n->down = true;
		log_warn("%s: the store is unreachable; failing reads that miss the cache until it answers",
			 n->st->url);
	} else if (result >= 0 && n->down) {
		n->down = false;
		log_info("%s: the store answers again", n->st->url);
	}
	if (b->cur < b->nrq) {
		char pk[128];
		pack_key(b->rq[b->cur]->id.pack, pk, sizeof(pk));
		if (result >= 0)
			log_error("%s: %s ends before the chunks the index puts in it", n->st->url, pk);
		batch_fail_rest(b, result < 0 ? (int)result : -EIO);
	}
	n->inflight--;
	batch_free(b);
}

/* Take the head of the pending lists (demand first) and every pending
 * request that continues it in the same pack. */
static struct batch *batch_form(struct net *n)
{
	int p = n->pending[0] ? 0 : 1;
	struct chunk_req *head = n->pending[p];
	if (!head)
		return NULL;
	n->pending[p] = head->link;
	struct batch *b = xcalloc(1, sizeof(*b));
	size_t cap = 8;
	b->n = n;
	b->rq = xmalloc(cap * sizeof(*b->rq));
	b->rq[b->nrq++] = head;
	b->len = head->id.len;
	uint64_t end = head->id.pack_off + head->id.len;
	uint64_t max = n->o.max_request ? n->o.max_request : (4u << 20);
	bool grew = true;
	while (grew && b->len < max) {
		grew = false;
		for (int q = 0; q < 2 && !grew; q++) {
			for (struct chunk_req **pp = &n->pending[q]; *pp; pp = &(*pp)->link) {
				struct chunk_req *r = *pp;
				if (r->id.pack_off == end && memcmp(r->id.pack, head->id.pack, 32) == 0 &&
				    b->len + r->id.len <= max) {
					*pp = r->link;
					if (b->nrq == cap)
						b->rq = xrealloc(b->rq, (cap *= 2) * sizeof(*b->rq));
					b->rq[b->nrq++] = r;
					b->len += r->id.len;
					end += r->id.len;
					grew = true;
					break;
				}
			}
		}
	}
	b->sink.write = batch_write;
	return b;
}

static void batch_start(struct net *n, struct batch *b)
{
	char key[128];
	struct http_ranged g;
	pack_key(b->rq[0]->id.pack, key, sizeof(key));
	int e = store_ranged(n->st, key, &g, &b->ctx);
	n->inflight++;
	if (e == -EOPNOTSUPP) {
		/* A folder store: read it here, synchronously. */
		int64_t got = store_get(n->st, key, b->rq[0]->id.pack_off, b->len, &b->sink);
		batch_done(b, got);
		return;
	}
	if (e < 0) {
		log_error_errno(e, "%s: cannot read %s: %m", n->st->url, key);
		batch_done(b, e);
		return;
	}
	/* While the store is known to be down (with a timeout set), a request
	 * is one probe: it fails at its first error instead of waiting again. */
	uint64_t deadline = !n->o.timeout_s ? 0 : n->down ? now_ns() + 1
				: now_ns() + (uint64_t)n->o.timeout_s * 1000000000ull;
	http_multi_add(n->hm, &g, b->rq[0]->id.pack_off, b->len, &b->sink, deadline, batch_done, b);
}

/* Move queued requests to the pending lists, in arrival order. */
static bool take_queue(struct net *n)
{
	pthread_mutex_lock(&n->lock);
	bool stop = n->stop;
	for (int p = 0; p < 2; p++) {
		struct chunk_req *q = n->queue[p], *rev = NULL;
		n->queue[p] = NULL;
		while (q) {
			struct chunk_req *nx = q->link;
			q->link = rev;
			rev = q;
			q = nx;
		}
		struct chunk_req **tail = &n->pending[p];
		while (*tail)
			tail = &(*tail)->link;
		*tail = rev;
	}
	pthread_mutex_unlock(&n->lock);
	return stop;
}

static void *net_thread(void *p)
{
	struct net *n = p;
	unsigned max = n->o.max_inflight ? n->o.max_inflight : 16;
	bool busy = false;
	for (;;) {
		bool stop = take_queue(n);
		if (stop)
			break;
		while (n->inflight < max) {
			struct batch *b = batch_form(n);
			if (!b)
				break;
			batch_start(n, b);
			busy = true;
		}
		if (busy && n->inflight == 0 && !n->pending[0] && !n->pending[1]) {
			/* A burst of fetches is over: give the chunk buffers it
			 * freed back to the system (a diskless machine pays for
			 * resident memory in RAM it cannot swap). */
			malloc_trim(0);
			busy = false;
		}
		if (n->hm) {
			http_multi_poll(n->hm, 1000);
		} else {
			pthread_mutex_lock(&n->lock);
			if (!n->stop && !n->queue[0] && !n->queue[1])
				pthread_cond_wait(&n->cond, &n->lock);
			pthread_mutex_unlock(&n->lock);
		}
	}
	return NULL;
}

static void net_stats(struct stage *s, struct stage_stats *st)
{
	struct net *n = s->priv;
	pthread_mutex_lock(&n->lock);
	st->fetched_bytes += n->fetched_bytes;
	st->fetched_requests += n->fetched_requests;
	st->fetch_errors += n->errors;
	st->retries += n->st->stats.retries;
	st->in_flight += n->inflight;
	pthread_mutex_unlock(&n->lock);
}

static void fail_list(struct chunk_req *q)
{
	while (q) {
		struct chunk_req *nx = q->link;
		q->done(q, -ECANCELED);
		q = nx;
	}
}

static void net_destroy(struct stage *s)
{
	struct net *n = s->priv;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	if (n->hm)
		http_multi_wakeup(n->hm);
	pthread_join(n->thread, NULL);
	for (int p = 0; p < 2; p++) {
		fail_list(n->queue[p]);
		fail_list(n->pending[p]);
	}
	http_multi_free(n->hm); /* in-flight batches are dropped with it */
	store_close(n->st);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	free(n);
}

static const struct stage_ops net_ops = {
	.name = "net",
	.read = net_read,
	.stats = net_stats,
	.destroy = net_destroy,
};

struct stage *net_stage_new(struct store *st, const struct net_opts *o)
{
	struct net *n = xcalloc(1, sizeof(*n));
	n->o = *o;
	n->st = st;
	n->stage.ops = &net_ops;
	n->stage.priv = n;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	if (st->ops->ranged) {
		n->hm = http_multi_new(&st->opts, &st->stats);
		if (!n->hm) {
			free(n);
			return NULL;
		}
	}
	int e = pthread_create(&n->thread, NULL, net_thread, n);
	if (e) {
		http_multi_free(n->hm);
		free(n);
		log_error_errno(-e, "net: cannot start its thread: %m");
		return NULL;
	}
	return &n->stage;
}
