// SPDX-License-Identifier: MIT
/*
 * Description: the FUSE frontend serves layer files byte-exact through the kernel (sequential, random, O_DIRECT, concurrent, across chunks, at EOF, through a loop device), fails reads with EIO when the stage fails, refuses writes, and survives a read racing an unmount.
 *
 * Needs root and /dev/fuse (skips otherwise). Builds a synthetic index of
 * a few hundred chunks of varied sizes, mounts the fs on a temporary
 * directory over fake-stage.h, runs fs_loop in a thread, and reads the
 * layer files with ordinary system calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "../../fetcher/fs.h"
#include "../../fetcher/util/util.h"
#include "fake-stage.h"
#include "test.h"

#define FUSE_SUPER_MAGIC 0x65735546

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A wrapper stage in front of the fake: counts issued and answered
 * requests, so the race test can wait until every completion has run. */
struct count_stage {
	struct stage stage;
	atomic_uint issued, answered;
};
struct count_job {
	chunk_done_fn done;
	void *ud;
	struct count_stage *cs;
};
static void count_done(struct chunk_req *rq, int err)
{
	struct count_job *j = rq->stage_ud;
	struct count_stage *cs = j->cs;
	rq->done = j->done;
	rq->ud = j->ud;
	free(j);
	rq->done(rq, err); /* may free rq */
	atomic_fetch_add(&cs->answered, 1);
}
static void count_read(struct stage *s, struct chunk_req *rq)
{
	struct count_stage *cs = (struct count_stage *)s;
	struct count_job *j = xmalloc(sizeof(*j));
	*j = (struct count_job){ rq->done, rq->ud, cs };
	rq->stage_ud = j;
	rq->done = count_done;
	atomic_fetch_add(&cs->issued, 1);
	stage_read(s->next, rq);
}
static const struct stage_ops count_ops = { "count", count_read, NULL, NULL };

static struct fake_stage fake;
static struct count_stage counter;
static struct index ix0, ix1;
static uint8_t *expect0, *expect1;
static char mnt[64], path0[128], path1[128];

static void build_index(struct index *ix, uint32_t nchunks, uint8_t **expect)
{
	ix->npacks = 3;
	ix->packs = xcalloc(ix->npacks, 32);
	for (uint32_t p = 0; p < ix->npacks; p++)
		for (int b = 0; b < 32; b++)
			ix->packs[p][b] = (uint8_t)rnd();
	ix->nchunks = nchunks;
	ix->chunks = xcalloc(nchunks, sizeof(*ix->chunks));
	uint64_t off = 0;
	for (uint32_t i = 0; i < nchunks; i++) {
		struct index_chunk *c = &ix->chunks[i];
		uint64_t r = rnd();
		switch (r % 10) {
		case 0: c->len = 1 + (uint32_t)(r >> 8) % 16; break;	/* tiny */
		case 1: c->len = 4096; break;
		case 2: c->len = 256 * 1024 + (uint32_t)(r >> 8) % (300 * 1024); break; /* big */
		default: c->len = 1024 + (uint32_t)(r >> 8) % (96 * 1024); break;
		}
		for (int b = 0; b < 32; b++)
			c->sha256[b] = (uint8_t)rnd();
		c->pack = i % ix->npacks;
		c->pack_off = off / 2;
		c->layer_off = off;
		off += c->len;
	}
	ix->layer_size = off;
	*expect = xmalloc(off);
	for (uint32_t i = 0; i < nchunks; i++) {
		struct chunk_id id = { .len = ix->chunks[i].len };
		memcpy(id.sha256, ix->chunks[i].sha256, 32);
		fake_fill(&id, *expect + ix->chunks[i].layer_off);
	}
}

static void *loop_thread(void *p)
{
	intptr_t r = fs_loop(p);
	return (void *)r;
}

static ssize_t pread_full(int fd, void *buf, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t k = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		got += (size_t)k;
	}
	return (ssize_t)got;
}

static bool check_range(int fd, uint64_t off, size_t len)
{
	uint64_t size = ix0.layer_size;
	size_t want = off >= size ? 0 : (size_t)MIN((uint64_t)len, size - off);
	_cleanup_free_ uint8_t *buf = xmalloc(len + 1);
	ssize_t k = pread_full(fd, buf, len, (off_t)off);
	if (k != (ssize_t)want) {
		fprintf(stderr, "pread(%" PRIu64 ", %zu) = %zd (%m), want %zu\n", off, len, k, want);
		return false;
	}
	if (want && memcmp(buf, expect0 + off, want) != 0) {
		fprintf(stderr, "pread(%" PRIu64 ", %zu): wrong bytes\n", off, len);
		return false;
	}
	return true;
}

static bool mounted(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	bool found = false;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char mp[1024];
		if (sscanf(line, "%*s %*s %*s %*s %1023s", mp) == 1 && streq(mp, dir))
			found = true;
	}
	fclose(f);
	return found;
}

static bool mountinfo_has(const char *dir, const char *what)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	bool found = false;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, dir) && strstr(line, what))
			found = true;
	fclose(f);
	return found;
}

/* umount, retrying EBUSY (the kernel may hold the mount for a moment
 * after a loop device detaches), then lazily as a fallback. */
static void umount_retry(const char *dir)
{
	for (int i = 0; i < 100; i++) {
		if (umount2(dir, 0) == 0)
			return;
		if (errno != EBUSY)
			break;
		usleep(20000);
	}
	fprintf(stderr, "umount %s: %m; detaching lazily\n", dir);
	umount2(dir, MNT_DETACH);
}

static void test_metadata(void)
{
	struct stat st;
	CHECK(stat(path0, &st) == 0);
	CHECK((uint64_t)st.st_size == ix0.layer_size);
	CHECK(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0444);
	CHECK(st.st_uid == 0 && st.st_gid == 0);
	CHECK(stat(path1, &st) == 0 && (uint64_t)st.st_size == ix1.layer_size);
	CHECK(stat(mnt, &st) == 0 && S_ISDIR(st.st_mode));
	char nope[160];
	snprintf(nope, sizeof(nope), "%s/layer-9", mnt);
	CHECK(stat(nope, &st) < 0 && errno == ENOENT);

	DIR *d = opendir(mnt);
	CHECK(d != NULL);
	int seen0 = 0, seen1 = 0, other = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (streq(e->d_name, "layer-0"))
			seen0++;
		else if (streq(e->d_name, "layer-1"))
			seen1++;
		else if (!streq(e->d_name, ".") && !streq(e->d_name, ".."))
			other++;
	}
	if (d)
		closedir(d);
	CHECK(seen0 == 1 && seen1 == 1 && other == 0);

	struct statfs sf;
	CHECK(statfs(mnt, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC);
	CHECK(mountinfo_has(mnt, "fuse.gdroot"));
	CHECK(mountinfo_has(mnt, " gdroot "));

	/* Read-only: every way of writing fails with EROFS. */
	CHECK(open(path0, O_WRONLY) < 0 && errno == EROFS);
	CHECK(open(path0, O_RDWR) < 0 && errno == EROFS);
	snprintf(nope, sizeof(nope), "%s/new", mnt);
	CHECK(open(nope, O_WRONLY | O_CREAT, 0644) < 0 && errno == EROFS);
	CHECK(mkdir(nope, 0755) < 0 && errno == EROFS);
	CHECK(unlink(path1) < 0 && errno == EROFS);
	CHECK(chmod(path0, 0644) < 0 && errno == EROFS);
}

static void test_sequential(void)
{
	int fd = open(path0, O_RDONLY);
	CHECK(fd >= 0);
	_cleanup_free_ uint8_t *buf = xmalloc(ix0.layer_size + 4096);
	size_t got = 0;
	for (;;) {
		ssize_t k = read(fd, buf + got, 1 << 20);
		if (k <= 0) {
			CHECK(k == 0);
			break;
		}
		got += (size_t)k;
	}
	CHECK(got == ix0.layer_size);
	CHECK(memcmp(buf, expect0, ix0.layer_size) == 0);
	/* layer-1, whole, in one call */
	int fd1 = open(path1, O_RDONLY);
	CHECK(fd1 >= 0 && pread_full(fd1, buf, ix1.layer_size + 100, 0) == (ssize_t)ix1.layer_size);
	CHECK(memcmp(buf, expect1, ix1.layer_size) == 0);
	close(fd1);
	close(fd);
}

static void test_random(int flags, unsigned iters)
{
	int fd = open(path0, O_RDONLY | flags);
	CHECK(fd >= 0);
	/* Out of the page cache, so reads reach the fs again. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	unsigned bad = 0;
	for (unsigned i = 0; i < iters && bad < 5; i++) {
		uint64_t off = rnd() % (ix0.layer_size + 1000);
		size_t len = 1 + rnd() % (i % 4 == 0 ? 2u << 20 : 70000u);
		if (!check_range(fd, off, len))
			bad++;
	}
	CHECK(bad == 0);
	close(fd);
}

static void test_boundaries(void)
{
	int fd = open(path0, O_RDONLY | O_DIRECT);
	CHECK(fd >= 0);
	unsigned bad = 0;
	for (uint32_t c = 1; c < ix0.nchunks && bad < 5; c += 7) {
		uint64_t b = ix0.chunks[c].layer_off;
		if (!check_range(fd, b > 7 ? b - 7 : 0, 16) || !check_range(fd, b, 1) ||
		    !check_range(fd, b - 1, 2))
			bad++;
	}
	/* A read spanning many chunks, the tiny ones included. */
	if (!check_range(fd, ix0.chunks[3].layer_off + 1, 1 << 20))
		bad++;
	CHECK(bad == 0);
	close(fd);
}

static void test_eof(void)
{
	uint64_t size = ix0.layer_size;
	char buf[256];
	int fd = open(path0, O_RDONLY | O_DIRECT);
	CHECK(fd >= 0);
	CHECK(pread(fd, buf, sizeof(buf), (off_t)size) == 0);
	CHECK(pread(fd, buf, sizeof(buf), (off_t)size + 12345) == 0);
	CHECK(pread(fd, buf, 100, (off_t)size - 10) == 10);
	CHECK(memcmp(buf, expect0 + size - 10, 10) == 0);
	close(fd);
	fd = open(path0, O_RDONLY);
	CHECK(pread(fd, buf, sizeof(buf), (off_t)size) == 0);
	CHECK(pread(fd, buf, 100, (off_t)size - 1) == 1 && (uint8_t)buf[0] == expect0[size - 1]);
	close(fd);
}

static void test_direct_aligned(void)
{
	int fd = open(path0, O_RDONLY | O_DIRECT);
	CHECK(fd >= 0);
	void *buf = NULL;
	CHECK(posix_memalign(&buf, 4096, 1 << 20) == 0);
	unsigned bad = 0;
	for (uint64_t off = 0; off < ix0.layer_size && bad < 3; off += 1 << 20) {
		ssize_t k = pread_full(fd, buf, 1 << 20, (off_t)off);
		size_t want = (size_t)MIN((uint64_t)1 << 20, ix0.layer_size - off);
		if (k != (ssize_t)want || memcmp(buf, expect0 + off, want) != 0)
			bad++;
	}
	for (int i = 0; i < 200 && bad < 3; i++) {
		uint64_t off = (rnd() % ix0.layer_size) & ~4095ull;
		ssize_t k = pread(fd, buf, 65536, (off_t)off);
		size_t want = (size_t)MIN((uint64_t)65536, ix0.layer_size - off);
		if (k != (ssize_t)want || memcmp(buf, expect0 + off, want) != 0)
			bad++;
	}
	CHECK(bad == 0);
	free(buf);
	close(fd);
}

static void *reader(void *p)
{
	intptr_t flags = (intptr_t)p;
	int fd = open(path0, O_RDONLY | (int)flags);
	unsigned bad = fd < 0;
	uint64_t s = (uint64_t)pthread_self() | 1;
	for (int i = 0; i < 150 && !bad; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		uint64_t off = s % ix0.layer_size;
		size_t len = 1 + (s >> 40) % 200000;
		if (!check_range(fd, off, len))
			bad++;
	}
	if (fd >= 0)
		close(fd);
	return (void *)(intptr_t)bad;
}

static void test_concurrent(void)
{
	/* Answers from helper threads, after a delay: completions race. */
	fake.delay_ms = 1;
	pthread_t t[6];
	for (int i = 0; i < 6; i++)
		pthread_create(&t[i], NULL, reader, (void *)(intptr_t)(i % 2 ? O_DIRECT : 0));
	for (int i = 0; i < 6; i++) {
		void *bad;
		pthread_join(t[i], &bad);
		CHECK(bad == NULL);
	}
	fake.delay_ms = 0;
}

static void test_failure(void)
{
	char buf[4096];
	fake.fail_err = -EIO;
	int fd = open(path0, O_RDONLY | O_DIRECT);
	CHECK(fd >= 0);
	errno = 0;
	CHECK(pread(fd, buf, sizeof(buf), 5000) < 0 && errno == EIO);
	close(fd);
	fd = open(path1, O_RDONLY);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	errno = 0;
	CHECK(pread(fd, buf, sizeof(buf), 0) < 0 && errno == EIO);
	close(fd);
	/* Only one chunk of a multi-chunk read fails: still EIO, no bytes. */
	fake.fail_err = 0;
	fake.corrupt_next = 0;
	fake.fail_err = -ETIMEDOUT;
	fd = open(path0, O_RDONLY | O_DIRECT);
	errno = 0;
	CHECK(pread(fd, buf, sizeof(buf), (off_t)ix0.chunks[10].layer_off - 100) < 0 && errno == EIO);
	close(fd);
	fake.fail_err = 0;
	fd = open(path0, O_RDONLY | O_DIRECT);
	CHECK(check_range(fd, 5000, 4096));
	close(fd);
}

static char *sh_out(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	char line[256] = "";
	if (!p)
		return NULL;
	bool ok = fgets(line, sizeof(line), p) != NULL;
	int rc = pclose(p);
	if (!ok || rc != 0)
		return NULL;
	line[strcspn(line, "\n")] = 0;
	return xstrdup(line);
}

static void test_loop(const char *dio)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "losetup -r -f --show --direct-io=%s %s 2>/dev/null", dio, path0);
	_cleanup_free_ char *dev = sh_out(cmd);
	if (!dev) {
		printf("loop device (direct-io=%s): losetup failed, part skipped\n", dio);
		return;
	}
	int fd = open(dev, O_RDONLY);
	CHECK(fd >= 0);
	off_t size = lseek(fd, 0, SEEK_END);
	uint64_t want = ix0.layer_size & ~511ull;
	CHECK((uint64_t)size == want);
	_cleanup_free_ uint8_t *buf = xmalloc(want + 1);
	CHECK(pread_full(fd, buf, want, 0) == (ssize_t)want);
	CHECK(memcmp(buf, expect0, want) == 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	CHECK(system(cmd) == 0);
	printf("loop device (direct-io=%s): %s read back identical\n", dio, dev);
}

struct race {
	int fd;
	ssize_t r;
	int err;
};
static void *race_reader(void *p)
{
	struct race *rc = p;
	char buf[8192];
	rc->r = pread(rc->fd, buf, sizeof(buf), 100000);
	rc->err = errno;
	if (rc->r == (ssize_t)sizeof(buf) && memcmp(buf, expect0 + 100000, sizeof(buf)) != 0)
		rc->r = -2; /* wrong bytes: never acceptable */
	return NULL;
}

/* fs_exit and fs_unmount_free while a read waits for its chunk: the late
 * completion must find live memory, and the session must go away. */
static void test_unmount_race(struct fs_layer *layers)
{
	struct fs_opts o = { .mountpoint = mnt, .max_threads = 4 };
	struct fs *fs = fs_mount(&o, layers, 2, &counter.stage);
	CHECK(fs != NULL);
	if (!fs)
		return;
	pthread_t lt, rt;
	pthread_create(&lt, NULL, loop_thread, fs);
	struct race rc = { .fd = open(path0, O_RDONLY | O_DIRECT) };
	CHECK(rc.fd >= 0);
	unsigned before = atomic_load(&counter.issued);
	fake.delay_ms = 2500; /* longer than fs_unmount_free waits */
	pthread_create(&rt, NULL, race_reader, &rc);
	for (int i = 0; i < 500 && atomic_load(&counter.issued) == before; i++)
		usleep(2000);
	CHECK(atomic_load(&counter.issued) > before);
	fs_exit(fs);
	fs_exit(fs); /* twice is fine */
	void *lr;
	pthread_join(lt, &lr);
	CHECK(lr == NULL);
	fs_unmount_free(fs);
	pthread_join(rt, NULL);
	/* The kernel either got the reply or aborted the read; never wrong data. */
	CHECK(rc.r == 8192 || (rc.r == -1 && rc.err != 0));
	close(rc.fd);
	for (int i = 0; i < 500 && atomic_load(&counter.answered) != atomic_load(&counter.issued); i++)
		usleep(10000);
	CHECK(atomic_load(&counter.answered) == atomic_load(&counter.issued));
	fake.delay_ms = 0;
	CHECK(!mounted(mnt));
}

/* Benchmark mode, for docs/fuse.md: GDROOT_FS_BENCH=MOUNTPOINT mounts one
 * layer-0 of GDROOT_FS_BENCH_MB MiB (default 1024) in CDC-like chunks
 * (8-128 KiB, mean 32 KiB) over the fake stage (answer delay
 * GDROOT_FS_BENCH_DELAY_MS, default 0: synchronous), prints "ready", and
 * serves until SIGINT or SIGTERM, whose handler calls fs_exit. */
static struct fs *bench_fs;
static void bench_signal(int sig)
{
	(void)sig;
	fs_exit(bench_fs);
}

static int bench(const char *dir)
{
	const char *mb = getenv("GDROOT_FS_BENCH_MB"), *delay = getenv("GDROOT_FS_BENCH_DELAY_MS");
	uint64_t size = (mb ? strtoull(mb, NULL, 10) : 1024) << 20;
	static struct index ix;
	ix.npacks = 1;
	ix.packs = xcalloc(1, 32);
	ix.chunks = xcalloc(size / 8192 + 1, sizeof(*ix.chunks));
	uint64_t off = 0;
	while (off < size) {
		struct index_chunk *c = &ix.chunks[ix.nchunks++];
		uint64_t r = rnd();
		c->len = r % 8 == 0 ? 65536 + (uint32_t)(r >> 8) % 65536 : 8192 + (uint32_t)(r >> 8) % 40960;
		if (c->len > size - off)
			c->len = (uint32_t)(size - off);
		for (int b = 0; b < 32; b++)
			c->sha256[b] = (uint8_t)rnd();
		c->pack_off = c->layer_off = off;
		off += c->len;
	}
	ix.layer_size = off;
	fake_stage_init(&fake);
	fake.delay_ms = delay ? (unsigned)atoi(delay) : 0;
	struct fs_layer l = { "layer-0", &ix };
	struct fs_opts o = { .mountpoint = dir };
	bench_fs = fs_mount(&o, &l, 1, &fake.stage);
	if (!bench_fs)
		return 1;
	struct sigaction sa = { .sa_handler = bench_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("ready: %s/layer-0, %u chunks, %" PRIu64 " bytes\n", dir, ix.nchunks, ix.layer_size);
	fflush(stdout);
	int r = fs_loop(bench_fs);
	struct fs_stats st;
	fs_get_stats(bench_fs, &st);
	fs_unmount_free(bench_fs);
	printf("served %" PRIu64 " reads (mean %" PRIu64 " bytes), %u chunk requests\n", st.reads,
	       st.reads ? st.bytes / st.reads : 0, fake_requests(&fake));
	index_free(&ix);
	return r < 0;
}

int main(void)
{
	if (getenv("GDROOT_FS_BENCH"))
		return bench(getenv("GDROOT_FS_BENCH"));
	if (geteuid() != 0) {
		printf("SKIP: needs root (FUSE mount)\n");
		return 77;
	}
	int dfd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (dfd < 0) {
		printf("SKIP: /dev/fuse: %s\n", strerror(errno));
		return 77;
	}
	close(dfd);
	setvbuf(stdout, NULL, _IOLBF, 0);

	build_index(&ix0, 400, &expect0);
	build_index(&ix1, 5, &expect1);
	printf("layer-0: %u chunks, %" PRIu64 " bytes\n", ix0.nchunks, ix0.layer_size);
	fake_stage_init(&fake);
	counter.stage.ops = &count_ops;
	counter.stage.next = &fake.stage;

	snprintf(mnt, sizeof(mnt), "/tmp/gdroot-test-fs.XXXXXX");
	CHECK(mkdtemp(mnt) != NULL);
	snprintf(path0, sizeof(path0), "%s/layer-0", mnt);
	snprintf(path1, sizeof(path1), "%s/layer-1", mnt);
	struct fs_layer layers[2] = { { "layer-0", &ix0 }, { "layer-1", &ix1 } };

	/* Bad arguments. */
	struct fs_opts bad = { .mountpoint = "/nonexistent/gdroot" };
	errno = 0;
	CHECK(fs_mount(&bad, layers, 2, &counter.stage) == NULL && errno == ENOENT);
	struct fs_layer dup[2] = { { "layer-0", &ix0 }, { "layer-0", &ix1 } };
	struct fs_opts o = { .mountpoint = mnt, .max_threads = 4 };
	CHECK(fs_mount(&o, dup, 2, &counter.stage) == NULL && errno == EINVAL);

	struct fs *fs = fs_mount(&o, layers, 2, &counter.stage);
	CHECK(fs != NULL);
	if (!fs)
		return test_exit();
	pthread_t lt;
	pthread_create(&lt, NULL, loop_thread, fs);

	test_metadata();
	test_sequential();
	test_random(0, 300);
	test_random(O_DIRECT, 1000);
	test_boundaries();
	test_eof();
	test_direct_aligned();
	test_concurrent();
	test_failure();
	test_loop("off");
	test_loop("on");

	/* The kernel's last async readahead may still be in the fs. */
	struct fs_stats st;
	for (int i = 0; i < 100; i++) {
		fs_get_stats(fs, &st);
		if (st.in_flight == 0)
			break;
		usleep(10000);
	}
	printf("fs: %" PRIu64 " reads, %" PRIu64 " bytes, %" PRIu64 " errors; fake: %u requests\n",
	       st.reads, st.bytes, st.errors, fake_requests(&fake));
	CHECK(st.reads > 0 && st.bytes >= ix0.layer_size && st.errors >= 3 && st.in_flight == 0);

	/* Unmounted from outside: fs_loop returns by itself. */
	umount_retry(mnt);
	void *lr;
	pthread_join(lt, &lr);
	CHECK(lr == NULL);
	fs_unmount_free(fs);
	CHECK(!mounted(mnt));

	test_unmount_race(layers);

	rmdir(mnt);
	index_free(&ix0);
	index_free(&ix1);
	free(expect0);
	free(expect1);
	return test_exit();
}
