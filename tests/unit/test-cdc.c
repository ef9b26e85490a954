// SPDX-License-Identifier: MIT
/* Description: the content-defined chunker: the gear table is splitmix64
 * of "gdroot", known cut points never move, cuts are pure and within
 * [min, max], a small edit in 16 MiB changes only the chunks around it,
 * the fd splitter cuts the same whatever the read sizes, bad params are
 * refused, and all-zero input gives max-size chunks. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "../../squash/cdc.h"
#include "../../fetcher/util/util.h"

#define BIG (16u << 20)

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint8_t *random_buf(size_t n, uint64_t seed)
{
	uint8_t *b = xmalloc(n + 8);
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = splitmix64(&seed);
		memcpy(b + i, &v, 8);
	}
	return b;
}

/* Cut all of buf into chunks; returns the number, lengths in *lens. */
static size_t cut_all(const struct cdc_params *p, const uint8_t *buf, size_t n, size_t **lens)
{
	size_t cnt = 0, cap = 0, off = 0;
	*lens = NULL;
	while (off < n) {
		size_t c = cdc_cut(p, buf + off, n - off, true);
		if (c == 0 || c > n - off)
			abort();
		if (cnt == cap)
			*lens = xrealloc(*lens, (cap = cap ? 2 * cap : 256) * sizeof(**lens));
		(*lens)[cnt++] = c;
		off += c;
	}
	return cnt;
}

static void test_gear_table(void)
{
	uint64_t s = UINT64_C(0x6764726f6f74);
	int bad = 0;
	for (int i = 0; i < 256; i++)
		bad += cdc_gear[i] != splitmix64(&s);
	CHECK(bad == 0);
}

static void test_params(void)
{
	struct cdc_params d = CDC_DEFAULT_PARAMS;
	CHECK(cdc_params_check(&d) == 0);
	CHECK(cdc_params_check(&(struct cdc_params){ 64, 128, 129 }) == 0);
	CHECK(cdc_params_check(&(struct cdc_params){ 1u << 20, 2u << 20, 4u << 20 }) == 0);
	CHECK(cdc_params_check(&(struct cdc_params){ 63, 128, 256 }) == -EINVAL);
	CHECK(cdc_params_check(&(struct cdc_params){ 128, 128, 256 }) == -EINVAL);
	CHECK(cdc_params_check(&(struct cdc_params){ 100, 96, 256 }) == -EINVAL);
	CHECK(cdc_params_check(&(struct cdc_params){ 64, 96, 256 }) == -EINVAL);
	CHECK(cdc_params_check(&(struct cdc_params){ 64, 128, 128 }) == -EINVAL);
	CHECK(cdc_params_check(&(struct cdc_params){ 64, 1u << 20, (4u << 20) + 1 }) == -EINVAL);
	CHECK(cdc_params_check(NULL) == -EINVAL);
	CHECK(cdc_split_fd(&(struct cdc_params){ 0, 1, 2 }, 0, NULL, NULL) == -EINVAL);
}

/* Known answers: the first cuts of 16 MiB of splitmix64(1) bytes and the
 * chunk count, for two parameter sets. If this fails, the on-store format
 * changed and every image would be chunked anew: never "fix" the numbers. */
static void check_known(const struct cdc_params *p, const uint8_t *big, const size_t first[8],
			size_t count)
{
	_cleanup_free_ size_t *lens = NULL;
	size_t cnt = cut_all(p, big, BIG, &lens);
	for (size_t i = 0; i < 8; i++)
		CHECK(i < cnt && lens[i] == first[i]);
	CHECK(cnt == count);
}

static void test_known_cuts(const uint8_t *big)
{
	static const size_t f64k[8] = { 69123, 42607, 88751, 74103, 71736, 73107, 18060, 79522 };
	static const size_t f4k[8] = { 4273, 4407, 4351, 4277, 6044, 4400, 5320, 1245 };
	check_known(&(struct cdc_params){ 16384, 65536, 262144 }, big, f64k, 228);
	check_known(&(struct cdc_params){ 1024, 4096, 16384 }, big, f4k, 3606);
}

/* Pure and bounded: every cut is in (min, max], and giving cdc_cut more or
 * fewer bytes (down to just past the cut) never moves it. */
static void test_bounds_and_purity(const struct cdc_params *p, const uint8_t *buf, size_t n)
{
	_cleanup_free_ size_t *lens = NULL;
	size_t cnt = cut_all(p, buf, n, &lens), off = 0;
	int out = 0, moved = 0;
	for (size_t i = 0; i < cnt; i++) {
		size_t c = lens[i];
		bool last = i + 1 == cnt;
		out += c > p->max || (!last && c <= p->min);
		if (!last) {
			moved += cdc_cut(p, buf + off, c, false) != c;
			moved += cdc_cut(p, buf + off, MIN(n - off, (size_t)p->max + 1000), false) != c;
		}
		off += c;
	}
	CHECK(out == 0);
	CHECK(moved == 0);
	CHECK(off == n);
	/* Twice over the same bytes gives the same list. */
	_cleanup_free_ size_t *again = NULL;
	CHECK(cut_all(p, buf, n, &again) == cnt && memcmp(again, lens, cnt * sizeof(*lens)) == 0);
}

static void test_short_input(const struct cdc_params *p, const uint8_t *buf)
{
	CHECK(cdc_cut(p, buf, 0, true) == 0);
	CHECK(cdc_cut(p, buf, 0, false) == 0);
	CHECK(cdc_cut(p, buf, 10, true) == 10);
	CHECK(cdc_cut(p, buf, 10, false) == 0);
	CHECK(cdc_cut(p, buf, p->min, true) == p->min);
	CHECK(cdc_cut(p, buf, p->min, false) == 0);
	/* Find a spot with no cut in the next min + 100 bytes: there, a
	 * short non-final buffer needs more data and a final one ends. */
	size_t c = cdc_cut(p, buf, p->max, false);
	CHECK(c > p->min);
	if (c > p->min + 1) {
		CHECK(cdc_cut(p, buf, c - 1, false) == 0);
		CHECK(cdc_cut(p, buf, c - 1, true) == c - 1);
	}
}

static int cmp32(const void *a, const void *b) { return memcmp(a, b, 32); }

/* Chunk digests of buf, sorted. */
static size_t digests(const struct cdc_params *p, const uint8_t *buf, size_t n,
		      uint8_t (**out)[32])
{
	_cleanup_free_ size_t *lens = NULL;
	size_t cnt = cut_all(p, buf, n, &lens), off = 0;
	*out = xmalloc(cnt * 32);
	for (size_t i = 0; i < cnt; i++) {
		EVP_Digest(buf + off, lens[i], (*out)[i], NULL, EVP_sha256(), NULL);
		off += lens[i];
	}
	qsort(*out, cnt, 32, cmp32);
	return cnt;
}

/* Chunks of b whose digest is not among a's. */
static size_t new_chunks(const struct cdc_params *p, const uint8_t *a, size_t na,
			 const uint8_t *b, size_t nb)
{
	_cleanup_free_ uint8_t(*da)[32] = NULL;
	_cleanup_free_ uint8_t(*db)[32] = NULL;
	size_t ca = digests(p, a, na, &da), cb = digests(p, b, nb, &db), fresh = 0;
	for (size_t i = 0; i < cb; i++)
		fresh += !bsearch(db[i], da, ca, 32, cmp32);
	return fresh;
}

static void test_edits(const struct cdc_params *p, const uint8_t *big)
{
	size_t mid = BIG / 2 + 12345;
	_cleanup_free_ uint8_t *ins = xmalloc(BIG + 7);
	memcpy(ins, big, mid);
	memcpy(ins + mid, "INSERT!", 7);
	memcpy(ins + mid + 7, big + mid, BIG - mid);
	CHECK(new_chunks(p, big, BIG, ins, BIG + 7) <= 4);

	_cleanup_free_ uint8_t *del = xmalloc(BIG);
	memcpy(del, big, mid);
	memcpy(del + mid, big + mid + 5, BIG - mid - 5);
	CHECK(new_chunks(p, big, BIG, del, BIG - 5) <= 4);

	_cleanup_free_ uint8_t *flip = xmalloc(BIG);
	memcpy(flip, big, BIG);
	flip[mid] ^= 0x40;
	CHECK(new_chunks(p, big, BIG, flip, BIG) <= 3);
	/* And the reverse direction: the old data has few chunks the new lacks. */
	CHECK(new_chunks(p, ins, BIG + 7, big, BIG) <= 4);
}

struct collect {
	size_t *lens, cnt, cap;
	uint64_t next_off;
	const uint8_t *want;
	int bad;
};

static int collect_cb(void *ud, uint64_t off, const uint8_t *chunk, size_t len)
{
	struct collect *c = ud;
	c->bad += off != c->next_off || memcmp(chunk, c->want + off, len) != 0;
	if (c->cnt == c->cap)
		c->lens = xrealloc(c->lens, (c->cap = c->cap ? 2 * c->cap : 256) * sizeof(*c->lens));
	c->lens[c->cnt++] = len;
	c->next_off = off + len;
	return 0;
}

static int stop_cb(void *ud, uint64_t off, const uint8_t *chunk, size_t len)
{
	(void)off, (void)chunk, (void)len;
	return ++*(int *)ud == 3 ? -ECANCELED : 0;
}

/* A child writes buf into a pipe in pieces of pseudo-random size. */
static pid_t pipe_writer(const uint8_t *buf, size_t n, uint64_t seed, int *rfd)
{
	int fds[2];
	if (pipe(fds) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		for (size_t off = 0; off < n;) {
			size_t k = 1 + splitmix64(&seed) % 200000; /* not in MIN(): twice */
			k = MIN(k, n - off);
			if (write_all(fds[1], buf + off, k) < 0)
				_exit(1);
			off += k;
		}
		_exit(0);
	}
	close(fds[1]);
	*rfd = fds[0];
	return pid;
}

static void test_split_fd(const struct cdc_params *p, const uint8_t *buf, size_t n)
{
	_cleanup_free_ size_t *lens = NULL;
	size_t cnt = cut_all(p, buf, n, &lens);

	/* A regular file: reads of 2 * max. */
	char path[] = "/tmp/gdroot-cdc-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write_all(fd, buf, n) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	struct collect c = { .want = buf };
	CHECK(cdc_split_fd(p, fd, collect_cb, &c) == 0);
	CHECK(c.cnt == cnt && c.bad == 0 && c.next_off == n);
	CHECK(c.cnt == cnt && memcmp(c.lens, lens, cnt * sizeof(*lens)) == 0);
	free(c.lens);

	/* A callback's error stops the split and is returned. */
	int calls = 0;
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	CHECK(cdc_split_fd(p, fd, stop_cb, &calls) == -ECANCELED && calls == 3);
	/* An empty file has no chunks; a bad fd is -EBADF. */
	CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	struct collect e = { .want = buf };
	CHECK(cdc_split_fd(p, fd, collect_cb, &e) == 0 && e.cnt == 0);
	close(fd);
	unlink(path);
	CHECK(cdc_split_fd(p, -1, collect_cb, &e) == -EBADF);

	/* A pipe: short reads of every size. */
	for (uint64_t seed = 1; seed <= 3; seed++) {
		int rfd = -1;
		pid_t pid = pipe_writer(buf, n, seed, &rfd);
		CHECK(pid > 0);
		struct collect q = { .want = buf };
		CHECK(cdc_split_fd(p, rfd, collect_cb, &q) == 0);
		CHECK(q.cnt == cnt && q.bad == 0);
		CHECK(q.cnt == cnt && memcmp(q.lens, lens, cnt * sizeof(*lens)) == 0);
		free(q.lens);
		close(rfd);
		int st = 0;
		CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
}

static void test_zeros(const struct cdc_params *p)
{
	size_t n = BIG + 1000;
	_cleanup_free_ uint8_t *z = xcalloc(n, 1);
	_cleanup_free_ size_t *lens = NULL;
	size_t cnt = cut_all(p, z, n, &lens);
	CHECK(cnt == n / p->max + 1);
	int bad = 0;
	for (size_t i = 0; i + 1 < cnt; i++)
		bad += lens[i] != p->max;
	CHECK(bad == 0 && lens[cnt - 1] == n % p->max);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct cdc_params d = CDC_DEFAULT_PARAMS;
	struct cdc_params small = { .min = 1024, .avg = 4096, .max = 16384 };
	_cleanup_free_ uint8_t *big = random_buf(BIG, 1);

	test_gear_table();
	test_params();
	test_known_cuts(big);
	test_bounds_and_purity(&d, big, BIG);
	test_bounds_and_purity(&small, big, 4u << 20);
	test_short_input(&d, big);
	test_short_input(&small, big);
	test_edits(&d, big);
	test_edits(&small, big);
	test_split_fd(&d, big, BIG);
	test_split_fd(&small, big, 3u << 20);
	test_zeros(&d);
	test_zeros(&small);
	return test_exit();
}
