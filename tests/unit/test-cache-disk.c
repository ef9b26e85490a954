// SPDX-License-Identifier: MIT
/* Description: cache stage on a file or block device (io_uring): chunks persist across close and reopen, corrupted data is refetched, torn or garbage index and header never serve wrong bytes, the limit holds while the ring wraps under concurrent readers, single-flight, recovery after SIGKILL, a loop device (as root) */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../fetcher/cache-disk.h"
#include "../../fetcher/cache.h"
#include "../../fetcher/util/log.h"
#include "cache-test.h"
#include "test.h"

static char tmpdir[] = "/tmp/gdroot-cache-test-XXXXXX";
static unsigned file_no;

/* A fresh path in the temp folder (removed at exit). */
static char *new_path(void)
{
	char *p = xasprintf("%s/cache-%u", tmpdir, file_no++);
	return p;
}

static struct stage *disk_cache(const char *path, uint64_t limit, struct stage *next)
{
	struct cache_opts o = { .limit = limit, .path = path, .queue_depth = 16 };
	struct stage *s = cache_stage_new(&o, next);
	if (!s) {
		fprintf(stderr, "cache_stage_new %s: %m\n", path);
		exit(1);
	}
	return s;
}

static struct chunk_id chunk(unsigned i)
{
	/* Lengths from 1 byte to 200 KiB, not block-aligned. */
	return mkid(7000 + i, 1 + (i * 7919u) % 200000);
}

/* Read chunks [0, n) through s; returns how many failed or were wrong. */
static int read_all(struct stage *s, unsigned n)
{
	int bad = 0;
	for (unsigned i = 0; i < n; i++) {
		struct chunk_id id = chunk(i);
		if (read_sync(s, &id))
			bad++;
	}
	return bad;
}

static void *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	uint8_t *p = malloc((size_t)st.st_size);
	ssize_t r = pread(fd, p, (size_t)st.st_size, 0);
	close(fd);
	*len = r < 0 ? 0 : (size_t)r;
	return p;
}

static void poke(const char *path, uint64_t off, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, buf, n, (off_t)off) == (ssize_t)n);
	close(fd);
}

/* Offset of chunk id's bytes in the file, or -1. */
static long find_chunk(const char *path, const struct chunk_id *id)
{
	size_t len = 0;
	uint8_t *img = slurp(path, &len);
	if (!img)
		return -1;
	uint8_t *want = malloc(id->len);
	fake_fill(id, want);
	uint8_t *at = memmem(img, len, want, id->len);
	long off = at ? at - img : -1;
	free(img);
	free(want);
	return off;
}

static void test_persist(void)
{
	_cleanup_free_ char *path = new_path();
	struct fake_stage f;
	fake_stage_init(&f);
	struct stage *s = disk_cache(path, 8 << 20, &f.stage);
	CHECK(read_all(s, 40) == 0);
	CHECK(fake_requests(&f) == 40);
	CHECK(read_all(s, 40) == 0);	/* from memory while writing, or disk */
	CHECK(fake_requests(&f) == 40);
	CHECK(cache_stage_sync(s) == 0);
	struct stage_stats st = stats_of(s);
	CHECK(st.cache_chunks == 40);
	CHECK(st.cache_limit == 8 << 20);
	s->ops->destroy(s);

	s = disk_cache(path, 8 << 20, &f.stage);
	st = stats_of(s);
	CHECK(st.cache_chunks == 40);
	CHECK(read_all(s, 40) == 0);
	CHECK(fake_requests(&f) == 40);	/* every one a hit, across the reopen */
	st = stats_of(s);
	CHECK(st.hits == 40 && st.misses == 0);
	s->ops->destroy(s);
	unlink(path);
}

/* Fill a fresh cache file with chunks [0, n) and close it. */
static char *filled(unsigned n, struct fake_stage *f)
{
	char *path = new_path();
	fake_stage_init(f);
	struct stage *s = disk_cache(path, 8 << 20, &f->stage);
	CHECK(read_all(s, n) == 0);
	s->ops->destroy(s);
	return path;
}

static void test_corrupt_data(void)
{
	struct fake_stage f;
	_cleanup_free_ char *path = filled(20, &f);
	struct chunk_id id = chunk(5);
	long off = find_chunk(path, &id);
	CHECK(off > 0);
	uint8_t x = 0x5a;
	poke(path, (uint64_t)off + id.len / 2, &x, 1);

	struct stage *s = disk_cache(path, 8 << 20, &f.stage);
	unsigned before = fake_requests(&f);
	CHECK(read_all(s, 20) == 0);
	CHECK(fake_requests(&f) == before + 1);	/* only the damaged one */
	CHECK(read_sync(s, &id) == 0);
	CHECK(fake_requests(&f) == before + 1);	/* and it is cached again */
	s->ops->destroy(s);
	/* The fresh copy persists. */
	s = disk_cache(path, 8 << 20, &f.stage);
	CHECK(read_all(s, 20) == 0);
	CHECK(fake_requests(&f) == before + 1);
	s->ops->destroy(s);
	unlink(path);
}

static void test_torn_record(void)
{
	struct fake_stage f;
	_cleanup_free_ char *path = filled(20, &f);
	/* Slot 3 holds the fourth chunk written (seq 3): tear its second half. */
	uint8_t zero[CACHE_DISK_REC / 2] = { 0 };
	poke(path, CACHE_DISK_INDEX_OFF + 3 * CACHE_DISK_REC + CACHE_DISK_REC / 2, zero, sizeof(zero));
	struct stage *s = disk_cache(path, 8 << 20, &f.stage);
	CHECK(stats_of(s).cache_chunks == 19);
	unsigned before = fake_requests(&f);
	CHECK(read_all(s, 20) == 0);
	CHECK(fake_requests(&f) == before + 1);
	s->ops->destroy(s);
	unlink(path);
}

static void test_garbage(void)
{
	struct fake_stage f;
	_cleanup_free_ char *path = filled(20, &f);
	/* Garbage over the whole index ring. */
	size_t n = (8 << 20) / CACHE_DISK_BYTES_PER_SLOT * CACHE_DISK_REC;
	uint8_t *junk = malloc(n);
	unsigned seed = 42;
	for (size_t i = 0; i < n; i++)
		junk[i] = (uint8_t)rand_r(&seed);
	poke(path, CACHE_DISK_INDEX_OFF, junk, n);
	struct stage *s = disk_cache(path, 8 << 20, &f.stage);
	unsigned before = fake_requests(&f);
	CHECK(read_all(s, 20) == 0);
	CHECK(fake_requests(&f) == before + 20);
	s->ops->destroy(s);

	/* Garbage over the header: reinitialized (with a warning), empty,
	 * and usable again at once. */
	poke(path, 0, junk, 512);
	s = disk_cache(path, 8 << 20, &f.stage);
	CHECK(stats_of(s).cache_chunks == 0);
	before = fake_requests(&f);
	CHECK(read_all(s, 20) == 0);
	CHECK(fake_requests(&f) == before + 20);
	s->ops->destroy(s);
	s = disk_cache(path, 8 << 20, &f.stage);
	CHECK(read_all(s, 20) == 0);
	CHECK(fake_requests(&f) == before + 20);
	s->ops->destroy(s);

	/* Garbage over the data region: no wrong bytes, everything refetched. */
	for (uint64_t off = 0; off < (8u << 20); off += n)
		poke(path, CACHE_DISK_INDEX_OFF + n + off, junk, n);
	s = disk_cache(path, 8 << 20, &f.stage);
	CHECK(read_all(s, 20) == 0);
	CHECK(fake_requests(&f) > before + 20);
	s->ops->destroy(s);

	/* A different limit is a different geometry: reinitialized. */
	s = disk_cache(path, 4 << 20, &f.stage);
	CHECK(stats_of(s).cache_chunks == 0);
	CHECK(stats_of(s).cache_limit == 4 << 20);
	s->ops->destroy(s);
	free(junk);
	unlink(path);
}

static void test_limit(void)
{
	_cleanup_free_ char *path = new_path();
	struct fake_stage f;
	fake_stage_init(&f);
	const uint64_t limit = 1 << 20;
	struct stage *s = disk_cache(path, limit, &f.stage);
	for (unsigned i = 0; i < 64; i++) {
		struct chunk_id id = mkid(9000 + i, 60000);
		CHECK(read_sync(s, &id) == 0);
		CHECK(cache_stage_sync(s) == 0);	/* else a full write queue may skip one */
		struct stage_stats st = stats_of(s);
		CHECK(st.cache_bytes <= limit);
		CHECK(st.cache_limit == limit);
	}
	struct stat sb;
	CHECK(stat(path, &sb) == 0 && (uint64_t)sb.st_size <= limit + CACHE_DISK_INDEX_OFF + 256 * CACHE_DISK_REC);
	CHECK(fake_requests(&f) == 64);
	/* The newest chunks are still there, the oldest are gone. */
	unsigned before = fake_requests(&f);
	for (unsigned i = 60; i < 64; i++) {
		struct chunk_id id = mkid(9000 + i, 60000);
		CHECK(read_sync(s, &id) == 0);
	}
	CHECK(fake_requests(&f) == before);
	struct chunk_id old = mkid(9000, 60000);
	CHECK(read_sync(s, &old) == 0);
	CHECK(fake_requests(&f) == before + 1);
	s->ops->destroy(s);

	s = disk_cache(path, limit, &f.stage);
	struct stage_stats st = stats_of(s);
	CHECK(st.cache_bytes <= limit);
	CHECK(st.cache_chunks > 0);
	before = fake_requests(&f);
	for (unsigned i = 0; i < 64; i++) {
		struct chunk_id id = mkid(9000 + i, 60000);
		CHECK(read_sync(s, &id) == 0);
	}
	CHECK(fake_requests(&f) < before + 64);
	CHECK(stats_of(s).cache_bytes <= limit);
	s->ops->destroy(s);
	unlink(path);
}

static void test_single_flight(void)
{
	_cleanup_free_ char *path = new_path();
	struct fake_stage f;
	fake_stage_init(&f);
	struct gate g;
	gate_init(&g, &f.stage);
	struct stage *s = disk_cache(path, 4 << 20, &g.stage);
	struct chunk_id id = mkid(12345, 150000);
	enum { N = 16 };
	struct waiter w[N];
	for (int i = 0; i < N; i++) {
		waiter_init(&w[i], &id, i % 3 ? PRIO_DEMAND : PRIO_PREFETCH);
		stage_read(s, &w[i].rq);
	}
	CHECK(g.seen == 1);
	gate_release(&g, 0);
	for (int i = 0; i < N; i++) {
		CHECK(waiter_wait(&w[i]) == 0);
		CHECK(bytes_ok(&id, w[i].rq.buf));
		waiter_fini(&w[i]);
	}
	/* A failed fetch fails every waiter and stores nothing. */
	struct chunk_id id2 = mkid(12346, 1000);
	for (int i = 0; i < N; i++) {
		waiter_init(&w[i], &id2, PRIO_DEMAND);
		stage_read(s, &w[i].rq);
	}
	CHECK(g.seen == 2);
	gate_release(&g, -EIO);
	for (int i = 0; i < N; i++) {
		CHECK(waiter_wait(&w[i]) == -EIO);
		waiter_fini(&w[i]);
	}
	CHECK(cache_stage_sync(s) == 0);
	CHECK(stats_of(s).cache_chunks == 1);
	s->ops->destroy(s);
	unlink(path);
}

struct stress_arg {
	struct stage *s;
	unsigned seed;
	int bad;
};

static void *stress_thread(void *p)
{
	struct stress_arg *a = p;
	for (int i = 0; i < 1500; i++) {
		unsigned n = (unsigned)rand_r(&a->seed) % 80;
		struct chunk_id id = mkid(20000 + n, 2000 + n * 800);
		if (read_sync(a->s, &id))
			a->bad++;
	}
	return NULL;
}

static void test_stress(void)
{
	_cleanup_free_ char *path = new_path();
	struct fake_stage f;
	fake_stage_init(&f);
	const uint64_t limit = 1 << 20;	/* far smaller than the 80 chunks */
	struct stage *s = disk_cache(path, limit, &f.stage);
	enum { T = 4 };
	pthread_t t[T];
	struct stress_arg a[T];
	for (int i = 0; i < T; i++) {
		a[i] = (struct stress_arg){ s, (unsigned)i + 7, 0 };
		pthread_create(&t[i], NULL, stress_thread, &a[i]);
	}
	for (int i = 0; i < T; i++) {
		pthread_join(t[i], NULL);
		CHECK(a[i].bad == 0);
	}
	struct stage_stats st = stats_of(s);
	CHECK(st.cache_bytes <= limit);
	CHECK(st.hits + st.misses >= T * 1500);
	s->ops->destroy(s);
	s = disk_cache(path, limit, &f.stage);
	CHECK(stats_of(s).cache_bytes <= limit);
	for (unsigned n = 0; n < 80; n++) {
		struct chunk_id id = mkid(20000 + n, 2000 + n * 800);
		CHECK(read_sync(s, &id) == 0);
	}
	s->ops->destroy(s);
	unlink(path);
}

/* SIGKILL in the middle of writing: the reopened cache serves only right
 * bytes. */
static void test_kill(void)
{
	_cleanup_free_ char *path = new_path();
	struct fake_stage f;
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		fake_stage_init(&f);
		struct stage *s = disk_cache(path, 2 << 20, &f.stage);
		read_all(s, 30);
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
	fake_stage_init(&f);
	struct stage *s = disk_cache(path, 2 << 20, &f.stage);
	CHECK(read_all(s, 30) == 0);
	CHECK(read_all(s, 30) == 0);
	s->ops->destroy(s);
	unlink(path);
}

/* An unusable path falls back to RAM; a nonsensical limit is refused. */
static void test_fallback(void)
{
	struct fake_stage f;
	fake_stage_init(&f);
	_cleanup_free_ char *path = xasprintf("%s/no/such/dir/cache", tmpdir);
	struct cache_opts o = { .limit = 8 << 20, .path = path };
	struct stage *s = cache_stage_new(&o, &f.stage);
	CHECK(s != NULL);
	if (s) {
		CHECK(read_all(s, 10) == 0);
		CHECK(read_all(s, 10) == 0);
		CHECK(fake_requests(&f) == 10);
		CHECK(cache_stage_sync(s) == 0);
		s->ops->destroy(s);
	}
	_cleanup_free_ char *p2 = new_path();
	o = (struct cache_opts){ .limit = 4096, .path = p2 };
	errno = 0;
	CHECK(cache_stage_new(&o, &f.stage) == NULL && errno == EINVAL);
	unlink(p2);
}

static int run(const char *cmd, char *out, size_t n)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t k = fread(out, 1, n - 1, p);
	out[k] = 0;
	while (k && out[k - 1] == '\n')
		out[--k] = 0;
	return pclose(p);
}

static void test_loop_device(void)
{
	if (geteuid() != 0) {
		printf("loop device test skipped: not root\n");
		return;
	}
	_cleanup_free_ char *backing = new_path();
	int fd = open(backing, O_RDWR | O_CREAT, 0600);
	CHECK(fd >= 0 && ftruncate(fd, 8 << 20) == 0);
	close(fd);
	char dev[256], cmd[512];
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", backing);
	if (run(cmd, dev, sizeof(dev)) != 0 || strncmp(dev, "/dev/loop", 9)) {
		printf("loop device test skipped: losetup failed\n");
		unlink(backing);
		return;
	}
	struct fake_stage f;
	fake_stage_init(&f);
	struct stage *s = disk_cache(dev, 0, &f.stage);
	struct stage_stats st = stats_of(s);
	CHECK(st.cache_limit > (7u << 20) && st.cache_limit < (8u << 20));
	CHECK(read_all(s, 30) == 0);
	s->ops->destroy(s);
	s = disk_cache(dev, 0, &f.stage);
	CHECK(read_all(s, 30) == 0);
	CHECK(fake_requests(&f) == 30);
	CHECK(stats_of(s).hits == 30);
	s->ops->destroy(s);
	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	CHECK(run(cmd, dev, sizeof(dev)) == 0);
	unlink(backing);
}

int main(void)
{
	log_set_program("test-cache-disk");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	test_persist();
	test_corrupt_data();
	test_torn_record();
	test_garbage();
	test_limit();
	test_single_flight();
	test_stress();
	test_kill();
	test_fallback();
	test_loop_device();
	rmdir(tmpdir);
	return test_exit();
}
