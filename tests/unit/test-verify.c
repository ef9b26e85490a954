// SPDX-License-Identifier: MIT
/* Description: the verify stage passes good chunks, refetches a bad one
 * once, fails a chunk that is bad twice with EIO (never handing on wrong
 * bytes), and passes errors through; the prefetch stage records first reads
 * once each, in order, and prefetches only chunks its layers hold. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"
#include "../../fetcher/prefetch.h"
#include "../../fetcher/verify.h"
#include "../../fetcher/util/log.h"
#include "../../fetcher/util/util.h"

/* A next stage serving chunk i as bytes (i + k) & 0xff, corrupting the
 * first `corrupt` answers. */
struct src {
	struct stage stage;
	pthread_mutex_t lock;
	unsigned requests, corrupt;
	int fail;
};

static void src_read(struct stage *s, struct chunk_req *rq)
{
	struct src *x = (struct src *)s;
	pthread_mutex_lock(&x->lock);
	x->requests++;
	bool bad = x->corrupt > 0;
	if (bad)
		x->corrupt--;
	pthread_mutex_unlock(&x->lock);
	if (x->fail) {
		rq->done(rq, x->fail);
		return;
	}
	for (uint32_t k = 0; k < rq->id.len; k++)
		rq->buf[k] = (uint8_t)(rq->id.index + k);
	if (bad)
		rq->buf[rq->id.len / 2] ^= 1;
	rq->done(rq, 0);
}
static void src_destroy(struct stage *s) { (void)s; }
static const struct stage_ops src_ops = { "src", src_read, NULL, src_destroy };

static void make_id(struct chunk_id *id, uint32_t index, uint32_t len)
{
	memset(id, 0, sizeof(*id));
	id->index = index;
	id->len = len;
	uint8_t *b = xmalloc(len);
	for (uint32_t k = 0; k < len; k++)
		b[k] = (uint8_t)(index + k);
	sha256_buf(b, len, id->sha256);
	free(b);
}

struct result {
	int err;
	int calls;
};

static void on_done(struct chunk_req *rq, int err)
{
	struct result *r = rq->ud;
	r->err = err;
	r->calls++;
}

static int run(struct stage *v, uint32_t index, uint8_t *buf)
{
	struct result res = { 0 };
	struct chunk_req rq = { .buf = buf, .done = on_done, .ud = &res };
	make_id(&rq.id, index, 1000);
	stage_read(v, &rq);
	CHECK(res.calls == 1);
	return res.err;
}

int main(void)
{
	struct src s = { .stage = { .ops = &src_ops } };
	pthread_mutex_init(&s.lock, NULL);
	struct stage *v = verify_stage_new(&s.stage);
	uint8_t buf[1000];
	log_set_level(LOG_LVL_ERROR - 1);

	CHECK(run(v, 7, buf) == 0 && buf[0] == 7 && s.requests == 1);
	s.corrupt = 1;
	CHECK(run(v, 8, buf) == 0 && buf[500] == (uint8_t)(8 + 500) && s.requests == 3);
	s.corrupt = 2;
	CHECK(run(v, 9, buf) == -EIO && s.requests == 5);
	s.fail = -ETIMEDOUT;
	CHECK(run(v, 10, buf) == -ETIMEDOUT);
	struct stage_stats st = { 0 };
	stage_stats_all(v, &st);
	CHECK(st.verify_failures == 3);
	v->ops->destroy(v);
	s.fail = 0;

	/* Prefetch: two layers of 10 chunks. */
	struct index ix[2];
	memset(ix, 0, sizeof(ix));
	for (int l = 0; l < 2; l++) {
		ix[l].nchunks = 10;
		ix[l].npacks = 1;
		ix[l].packs = xcalloc(1, 32);
		ix[l].chunks = xcalloc(10, sizeof(struct index_chunk));
		for (uint32_t i = 0; i < 10; i++) {
			struct chunk_id id;
			make_id(&id, 100 * (uint32_t)l + i, 1000);
			memcpy(ix[l].chunks[i].sha256, id.sha256, 32);
			ix[l].chunks[i].len = 1000;
			ix[l].chunks[i].pack_off = 1000u * i;
		}
		ix[l].layer_size = 10000;
	}
	const struct index *ixp[2] = { &ix[0], &ix[1] };
	struct stage *p = prefetch_stage_new(&s.stage, ixp, 2, 4);
	uint32_t reads[][2] = { { 0, 3 }, { 1, 2 }, { 0, 3 }, { 0, 1 }, { 1, 2 } };
	for (size_t k = 0; k < ARRAY_SIZE(reads); k++) {
		struct result res = { 0 };
		struct chunk_req rq = { .buf = buf, .done = on_done, .ud = &res };
		make_id(&rq.id, 100 * reads[k][0] + reads[k][1], 1000);
		rq.id.layer = reads[k][0];
		rq.id.index = reads[k][1];
		stage_read(p, &rq);
		CHECK(res.calls == 1 && res.err == 0);
	}
	uint8_t (*order)[32];
	size_t n = prefetch_recorded(p, &order);
	CHECK(n == 3);
	if (n == 3) {
		CHECK(memcmp(order[0], ix[0].chunks[3].sha256, 32) == 0);
		CHECK(memcmp(order[1], ix[1].chunks[2].sha256, 32) == 0);
		CHECK(memcmp(order[2], ix[0].chunks[1].sha256, 32) == 0);
	}
	/* Prefetch the recorded order plus a hash no layer holds. */
	uint8_t (*list)[32] = xmalloc((n + 1) * 32);
	memcpy(list, order, n * 32);
	memset(list[n], 0xab, 32);
	unsigned before = s.requests;
	prefetch_start(p, (const uint8_t (*)[32])list, n + 1);
	for (int w = 0; w < 10000; w++) { /* a hang guard, not a timing check */
		struct stage_stats ps = { 0 };
		p->ops->stats(p, &ps);
		if (ps.prefetch_total == n + 1 && ps.prefetch_done == ps.prefetch_total)
			break;
		usleep(1000);
	}
	p->ops->destroy(p); /* joins the prefetch thread */
	CHECK(s.requests - before == 3);
	free(list);
	free(order);
	for (int l = 0; l < 2; l++) {
		free(ix[l].packs);
		free(ix[l].chunks);
	}
	return test_exit();
}
