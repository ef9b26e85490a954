// SPDX-License-Identifier: MIT
/* Implementation of verify.h. */
#include "verify.h"

#include <pthread.h>

#include "../squash/gen.h"
#include "../squash/index.h"
#include "util/log.h"
#include "util/util.h"

struct verify {
	struct stage stage;
	pthread_mutex_t lock;
	uint64_t failures;	/* protected by lock */
};

struct vreq {
	struct chunk_req rq;	/* what we send on */
	struct chunk_req *orig;
	struct verify *v;
	unsigned tries;
};

static void vreq_done(struct chunk_req *rq, int err)
{
	struct vreq *x = rq->ud;
	struct verify *v = x->v;
	struct chunk_req *orig = x->orig;
	if (err == 0) {
		uint8_t h[32];
		sha256_buf(rq->buf, rq->id.len, h);
		if (memcmp(h, rq->id.sha256, 32) == 0) {
			free(x);
			orig->done(orig, 0);
			return;
		}
		char ch[65], pk[128];
		sha256_hex(rq->id.sha256, ch);
		pack_key(rq->id.pack, pk, sizeof(pk));
		pthread_mutex_lock(&v->lock);
		v->failures++;
		pthread_mutex_unlock(&v->lock);
		if (x->tries++ == 0) {
			log_warn("verify: chunk %s from %s at %llu: wrong hash; fetching it again", ch, pk,
				 (unsigned long long)rq->id.pack_off);
			stage_read(v->stage.next, &x->rq);
			return;
		}
		log_error("verify: chunk %s from %s at %llu: wrong hash twice; failing the read (EIO)", ch, pk,
			  (unsigned long long)rq->id.pack_off);
		err = -EIO;
	}
	free(x);
	orig->done(orig, err);
}

static void verify_read(struct stage *s, struct chunk_req *orig)
{
	struct verify *v = s->priv;
	struct vreq *x = xcalloc(1, sizeof(*x));
	x->orig = orig;
	x->v = v;
	x->rq.id = orig->id;
	x->rq.buf = orig->buf; /* a failed check is overwritten by the refetch */
	x->rq.prio = orig->prio;
	x->rq.done = vreq_done;
	x->rq.ud = x;
	stage_read(s->next, &x->rq);
}

static void verify_stats(struct stage *s, struct stage_stats *st)
{
	struct verify *v = s->priv;
	pthread_mutex_lock(&v->lock);
	st->verify_failures += v->failures;
	pthread_mutex_unlock(&v->lock);
}

static void verify_destroy(struct stage *s)
{
	struct verify *v = s->priv;
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static const struct stage_ops verify_ops = {
	.name = "verify",
	.read = verify_read,
	.stats = verify_stats,
	.destroy = verify_destroy,
};

struct stage *verify_stage_new(struct stage *next)
{
	struct verify *v = xcalloc(1, sizeof(*v));
	v->stage.ops = &verify_ops;
	v->stage.priv = v;
	v->stage.next = next;
	pthread_mutex_init(&v->lock, NULL);
	return &v->stage;
}
