// SPDX-License-Identifier: MIT
/* Description: cache stage in RAM: hits and misses, single-flight (one fetch for many readers), failures shared by all waiters and not cached, prefetch and demand joining, CLOCK eviction under a limit, cancel on destroy, concurrent stress */
#include <pthread.h>
#include <stdlib.h>

#include "../../fetcher/cache.h"
#include "cache-test.h"
#include "test.h"

static struct stage *ram_cache(uint64_t limit, struct stage *next)
{
	struct cache_opts o = { .limit = limit };
	struct stage *s = cache_stage_new(&o, next);
	if (!s) {
		fprintf(stderr, "cache_stage_new: %m\n");
		exit(1);
	}
	return s;
}

/* ---- tests ---- */

static void test_hit_miss(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	struct stage *s = ram_cache(0, &f.stage);
	struct chunk_id a = mkid(1, 65536), b = mkid(2, 1000);

	CHECK(read_sync(s, &a) == 0);
	CHECK(fake_requests(&f) == 1);
	CHECK(read_sync(s, &a) == 0);
	CHECK(read_sync(s, &a) == 0);
	CHECK(fake_requests(&f) == 1);
	CHECK(read_sync(s, &b) == 0);
	CHECK(fake_requests(&f) == 2);
	struct stage_stats st = stats_of(s);
	CHECK(st.hits == 2);
	CHECK(st.misses == 2);
	CHECK(st.cache_chunks == 2);
	CHECK(st.cache_bytes == 65536 + 1000);
	CHECK(st.cache_limit == CACHE_DEFAULT_LIMIT);
	s->ops->destroy(s);
}

static void test_single_flight_gated(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	struct gate g;
	gate_init(&g, &f.stage);
	struct stage *s = ram_cache(0, &g.stage);
	struct chunk_id id = mkid(10, 200000);
	enum { N = 32 };
	struct waiter w[N];

	for (int i = 0; i < N; i++) {
		waiter_init(&w[i], &id, PRIO_DEMAND);
		stage_read(s, &w[i].rq);
	}
	CHECK(g.seen == 1);
	for (int i = 0; i < N; i++)
		CHECK(!waiter_is_done(&w[i]));
	gate_release(&g, 0);
	for (int i = 0; i < N; i++) {
		CHECK(waiter_wait(&w[i]) == 0);
		CHECK(bytes_ok(&id, w[i].rq.buf));
		waiter_fini(&w[i]);
	}
	CHECK(fake_requests(&f) == 1);
	CHECK(read_sync(s, &id) == 0);
	CHECK(g.seen == 1);
	struct stage_stats st = stats_of(s);
	CHECK(st.misses == N);
	CHECK(st.hits == 1);
	s->ops->destroy(s);
}

struct reader_arg {
	struct stage *s;
	struct chunk_id id;
	int err;
};

static void *reader_thread(void *p)
{
	struct reader_arg *a = p;
	a->err = read_sync(a->s, &a->id);
	return NULL;
}

static void test_single_flight_threads(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	f.delay_ms = 20;
	struct stage *s = ram_cache(0, &f.stage);
	enum { N = 16 };
	pthread_t t[N];
	struct reader_arg a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (struct reader_arg){ s, mkid(20, 123457), -1 };
		pthread_create(&t[i], NULL, reader_thread, &a[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		CHECK(a[i].err == 0);
	}
	/* Whether a thread joined the fetch or came after it, next saw one. */
	CHECK(fake_requests(&f) == 1);
	s->ops->destroy(s);
}

static void test_failure(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	struct gate g;
	gate_init(&g, &f.stage);
	struct stage *s = ram_cache(0, &g.stage);
	struct chunk_id id = mkid(30, 5000);
	enum { N = 8 };
	struct waiter w[N];

	for (int i = 0; i < N; i++) {
		waiter_init(&w[i], &id, i % 2 ? PRIO_PREFETCH : PRIO_DEMAND);
		stage_read(s, &w[i].rq);
	}
	CHECK(g.seen == 1);
	gate_release(&g, -EIO);
	for (int i = 0; i < N; i++) {
		CHECK(waiter_wait(&w[i]) == -EIO);
		waiter_fini(&w[i]);
	}
	CHECK(stats_of(s).cache_chunks == 0);

	/* Not cached: the next read asks again, and can succeed. */
	struct waiter w2;
	waiter_init(&w2, &id, PRIO_DEMAND);
	stage_read(s, &w2.rq);
	CHECK(g.seen == 2);
	gate_release(&g, 0);
	CHECK(waiter_wait(&w2) == 0);
	CHECK(bytes_ok(&id, w2.rq.buf));
	waiter_fini(&w2);
	CHECK(stats_of(s).cache_chunks == 1);
	s->ops->destroy(s);

	/* A failing next, synchronously. */
	fake_stage_init(&f);
	s = ram_cache(0, &f.stage);
	f.fail_err = -ETIMEDOUT;
	CHECK(read_sync(s, &id) == -ETIMEDOUT);
	CHECK(read_sync(s, &id) == -ETIMEDOUT);
	CHECK(fake_requests(&f) == 2);
	f.fail_err = 0;
	CHECK(read_sync(s, &id) == 0);
	CHECK(read_sync(s, &id) == 0);
	CHECK(fake_requests(&f) == 3);
	s->ops->destroy(s);
}

static void test_prefetch_join(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	struct gate g;
	gate_init(&g, &f.stage);
	struct stage *s = ram_cache(0, &g.stage);
	struct chunk_id id = mkid(40, 77777);
	struct waiter pre, dem;
	waiter_init(&pre, &id, PRIO_PREFETCH);
	waiter_init(&dem, &id, PRIO_DEMAND);
	stage_read(s, &pre.rq);
	stage_read(s, &dem.rq);
	CHECK(g.seen == 1);
	CHECK(g.held && g.held->prio == PRIO_PREFETCH);
	gate_release(&g, 0);
	CHECK(waiter_wait(&pre) == 0);
	CHECK(waiter_wait(&dem) == 0);
	CHECK(bytes_ok(&id, pre.rq.buf) && bytes_ok(&id, dem.rq.buf));
	waiter_fini(&pre);
	waiter_fini(&dem);
	s->ops->destroy(s);
}

static void test_eviction(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	const uint64_t limit = 1 << 20;
	struct stage *s = ram_cache(limit, &f.stage);
	struct chunk_id hot = mkid(999, 65536);
	CHECK(read_sync(s, &hot) == 0);
	for (unsigned i = 0; i < 64; i++) {
		struct chunk_id id = mkid(100 + i, 65536 - i * 100);
		CHECK(read_sync(s, &id) == 0);
		CHECK(read_sync(s, &hot) == 0);
		struct stage_stats st = stats_of(s);
		CHECK(st.cache_bytes <= limit);
		CHECK(st.cache_limit == limit);
	}
	/* CLOCK keeps a chunk referenced between every two evictions. */
	CHECK(fake_requests(&f) == 65);
	struct stage_stats st = stats_of(s);
	CHECK(st.cache_chunks >= 15 && st.cache_chunks <= 17);
	for (unsigned i = 0; i < 64; i++) {
		struct chunk_id id = mkid(100 + i, 65536 - i * 100);
		CHECK(read_sync(s, &id) == 0);
	}
	CHECK(stats_of(s).cache_bytes <= limit);
	/* A chunk larger than the whole cache is served, not stored. */
	struct chunk_id big = mkid(5000, (1 << 20) + 1);
	unsigned before = fake_requests(&f);
	CHECK(read_sync(s, &big) == 0);
	CHECK(read_sync(s, &big) == 0);
	CHECK(fake_requests(&f) == before + 2);
	CHECK(stats_of(s).cache_bytes <= limit);
	s->ops->destroy(s);
}

static void test_destroy_cancels(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	struct gate g;
	gate_init(&g, &f.stage);
	struct stage *s = ram_cache(0, &g.stage);
	struct chunk_id id = mkid(50, 4096), id2 = mkid(51, 4096);
	struct waiter w[3];
	waiter_init(&w[0], &id, PRIO_DEMAND);
	waiter_init(&w[1], &id, PRIO_DEMAND);
	waiter_init(&w[2], &id2, PRIO_PREFETCH);
	for (int i = 0; i < 3; i++)
		stage_read(s, &w[i].rq);
	CHECK(g.seen == 2);
	s->ops->destroy(s);
	for (int i = 0; i < 3; i++) {
		CHECK(waiter_wait(&w[i]) == -ECANCELED);
		waiter_fini(&w[i]);
	}
	/* next answers after the stage is gone: the last answer frees it. */
	gate_release(&g, 0);
}

struct stress_arg {
	struct stage *s;
	unsigned seed;
	int bad;
};

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;
	for (int i = 0; i < 3000; i++) {
		unsigned n = (unsigned)rand_r(&a->seed) % 100;
		struct chunk_id id = mkid(1000 + n, 1024 + n * 600);
		if (read_sync(a->s, &id))
			a->bad++;
	}
	return NULL;
}

static void test_stress(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	const uint64_t limit = 512 << 10;
	struct stage *s = ram_cache(limit, &f.stage);
	enum { T = 4 };
	pthread_t t[T];
	struct stress_arg a[T];
	for (int i = 0; i < T; i++) {
		a[i] = (struct stress_arg){ s, (unsigned)i + 1, 0 };
		pthread_create(&t[i], NULL, stress_thread, &a[i]);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(t[i], NULL);
		CHECK(a[i].bad == 0);
	}
	struct stage_stats st = stats_of(s);
	CHECK(st.cache_bytes <= limit);
	CHECK(st.hits + st.misses == T * 3000);
	CHECK(fake_requests(&f) <= st.misses);
	s->ops->destroy(s);
}

int main(void)
{
	test_hit_miss();
	test_single_flight_gated();
	test_single_flight_threads();
	test_failure();
	test_prefetch_join();
	test_eviction();
	test_destroy_cancels();
	test_stress();
	return test_exit();
}
