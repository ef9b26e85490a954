// SPDX-License-Identifier: MIT
/*
 * Throughput of cache hits: fills a cache stage (RAM, or a file/device with
 * --disk) from a fake next stage, then reads every chunk again, PASSES
 * times, with DEPTH requests in flight, and prints MB/s of hits. With
 * --disk the stage is closed and reopened first, so every hit is an
 * io_uring read plus a SHA-256 check; --cold also drops the file's pages
 * from the page cache (posix_fadvise) before each pass.
 *
 *   cache-bench [--disk PATH] [--cold] [--mib N] [--chunk-kib N] [--depth N] [--passes N]
 */
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../fetcher/cache.h"
#include "../../fetcher/util/util.h"
#include "../../squash/index.h"
#include "../unit/fake-stage.h"

struct slot {
	struct chunk_req rq;
	struct slot *next;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *pool;
static sem_t avail;
static unsigned long errors;

static void slot_done(struct chunk_req *rq, int err)
{
	struct slot *s = rq->ud;
	pthread_mutex_lock(&pool_lock);
	if (err)
		errors++;
	s->next = pool;
	pool = s;
	pthread_mutex_unlock(&pool_lock);
	sem_post(&avail);
}

static struct chunk_id bench_id(unsigned i, uint32_t len)
{
	struct chunk_id id;
	memset(&id, 0, sizeof(id));
	sha256_buf(&i, sizeof(i), id.sha256);
	id.len = len;
	return id;
}

/* Read chunks [0, n) once with depth requests in flight; wait for all. */
static void pass(struct stage *st, unsigned n, uint32_t len, unsigned depth)
{
	for (unsigned i = 0; i < n; i++) {
		sem_wait(&avail);
		pthread_mutex_lock(&pool_lock);
		struct slot *s = pool;
		pool = s->next;
		pthread_mutex_unlock(&pool_lock);
		s->rq.id = bench_id(i, len);
		stage_read(st, &s->rq);
	}
	for (unsigned i = 0; i < depth; i++)
		sem_wait(&avail);
	for (unsigned i = 0; i < depth; i++)
		sem_post(&avail);
}

int main(int argc, char **argv)
{
	const char *disk = NULL;
	bool cold = false;
	unsigned mib = 128, chunk_kib = 64, depth = 32, passes = 5;
	static const struct option opts[] = {
		{ "disk", required_argument, NULL, 'd' },  { "cold", no_argument, NULL, 'c' },
		{ "mib", required_argument, NULL, 'm' },   { "chunk-kib", required_argument, NULL, 'k' },
		{ "depth", required_argument, NULL, 'q' }, { "passes", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },	   { 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': disk = optarg; break;
		case 'c': cold = true; break;
		case 'm': mib = (unsigned)atoi(optarg); break;
		case 'k': chunk_kib = (unsigned)atoi(optarg); break;
		case 'q': depth = (unsigned)atoi(optarg); break;
		case 'p': passes = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: cache-bench [--disk PATH] [--cold] [--mib N] [--chunk-kib N] "
					"[--depth N] [--passes N]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!mib || !chunk_kib || !depth || !passes)
		return 2;
	uint32_t len = chunk_kib << 10;
	unsigned n = (unsigned)(((uint64_t)mib << 20) / len);
	uint64_t limit = (uint64_t)mib << 20;
	limit += limit / 4;	/* room for alignment and the reload margin */

	struct fake_stage f;
	fake_stage_init(&f);
	struct cache_opts o = { .limit = limit, .path = disk, .queue_depth = 64 };
	struct stage *st = cache_stage_new(&o, &f.stage);
	if (!st)
		return 1;
	struct slot *slots = calloc(depth, sizeof(*slots));
	sem_init(&avail, 0, depth);
	for (unsigned i = 0; i < depth; i++) {
		slots[i].rq.buf = malloc(len);
		slots[i].rq.done = slot_done;
		slots[i].rq.ud = &slots[i];
		slots[i].next = pool;
		pool = &slots[i];
	}
	/* Fill. A disk cache skips chunks while its write queue is full, so
	 * fill again until nothing new is fetched. */
	for (unsigned before = ~0u, k = 0; k < 8 && fake_requests(&f) != before; k++) {
		before = fake_requests(&f);
		pass(st, n, len, depth);
		if (cache_stage_sync(st) < 0)
			return 1;
	}
	if (disk) {
		st->ops->destroy(st);
		st = cache_stage_new(&o, &f.stage);
		if (!st)
			return 1;
	}
	unsigned fetched = fake_requests(&f);
	uint64_t t0 = now_ns(), cold_ns = 0;
	for (unsigned p = 0; p < passes; p++) {
		if (cold) {
			uint64_t c0 = now_ns();
			int fd = open(disk, O_RDONLY);
			if (fd >= 0) {
				fdatasync(fd);
				posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
				close(fd);
			}
			cold_ns += now_ns() - c0;
		}
		pass(st, n, len, depth);
	}
	double s = (double)(now_ns() - t0 - cold_ns) / 1e9;
	double mb = (double)n * len * passes / 1e6;
	struct stage_stats ss;
	memset(&ss, 0, sizeof(ss));
	st->ops->stats(st, &ss);
	printf("%s%s: %u chunks of %u KiB, depth %u, %u passes: %.0f MB/s of hits (%.2f s; hits %llu, "
	       "refetched %u, errors %lu)\n",
	       disk ? "disk " : "ram", disk ? disk : "", n, chunk_kib, depth, passes, mb / s, s,
	       (unsigned long long)ss.hits, fake_requests(&f) - fetched, errors);
	st->ops->destroy(st);
	for (unsigned i = 0; i < depth; i++)
		free(slots[i].rq.buf);
	free(slots);
	return errors ? 1 : 0;
}
