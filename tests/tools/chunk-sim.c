// SPDX-License-Identifier: MIT
/*
 * chunk-sim: what chunk and pack sizes cost a boot. Given a squashfs image
 * and a read trace of it (fuse-trace lines "<ns> <offset> <length>"), it
 * cuts the image with squash/cdc.c at averages 8 KiB to 256 KiB (min =
 * avg / 4, max = avg * 4), lays the chunks out in image order into packs of
 * 4, 16 and 64 MiB, and prints as Markdown: chunks, bytes fetched (whole
 * chunks touched) against bytes the trace read, and HTTP Range requests
 * two ways: a first boot with no profile (reads replayed in order against
 * a chunk cache, each miss one request per run of missing chunks) and a
 * profiled boot (every touched chunk known up front, neighbouring touched
 * chunks of one pack sharing a request, requests capped in size), each
 * with a time estimate for a given RTT and bandwidth. Given a second image, it prints the bytes of its chunks that
 * the first lacks (what a push uploads) for CDC and for fixed-size chunks.
 * `chunk-sim --speed` measures cdc_cut's throughput. Used by
 * tests/bench/chunk-sizes.sh for docs/chunking.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../squash/cdc.h"
#include "../../fetcher/util/util.h"

#define MIB (1024.0 * 1024.0)

static const uint32_t avgs[] = { 8192, 16384, 32768, 65536, 131072, 262144 };
static const uint64_t packs[] = { 4u << 20, 16u << 20, 64u << 20 };

struct image {
	const uint8_t *data;
	size_t size;
};

struct range {
	uint64_t off, end; /* [off, end) */
};

/* A chunking of an image: chunk i is [off[i], off[i + 1]). */
struct chunks {
	size_t n;
	uint64_t *off;
};

struct opts {
	double rtt_s, bw_bps;
	unsigned parallel;
	uint64_t cap, ra;
};

static int image_open(const char *path, struct image *img)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size == 0)
		return -EINVAL;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
	img->data = p;
	img->size = (size_t)st.st_size;
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* A trace: the reads in the order they came, and their union as sorted,
 * disjoint ranges, both clipped to the image. */
struct trace {
	struct range *reads, *merged;
	size_t nreads, nmerged;
	uint64_t bytes; /* of the union */
};

/* Read a trace file into t (arrays owned by t). Returns 0 or -errno. */
static int trace_load(const char *path, uint64_t size, struct trace *t)
{
	*t = (struct trace){ 0 };
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	struct range *r = NULL;
	size_t n = 0, cap = 0;
	uint64_t ns, off, len;
	while (fscanf(f, "%" SCNu64 " %" SCNu64 " %" SCNu64, &ns, &off, &len) == 3) {
		if (off >= size || len == 0)
			continue;
		if (n == cap)
			r = xrealloc(r, (cap = cap ? 2 * cap : 1024) * sizeof(*r));
		r[n++] = (struct range){ off, MIN(off + len, size) };
	}
	if (ferror(f)) {
		free(r);
		return -EIO;
	}
	t->reads = r;
	t->nreads = n;
	t->merged = xmalloc((n ? n : 1) * sizeof(*r));
	memcpy(t->merged, r, n * sizeof(*r));
	qsort(t->merged, n, sizeof(*r), range_cmp);
	size_t m = 0;
	t->bytes = 0;
	for (size_t i = 0; i < n; i++) {
		struct range *last = m ? &t->merged[m - 1] : NULL;
		if (last && t->merged[i].off <= last->end)
			last->end = MAX(last->end, t->merged[i].end);
		else
			t->merged[m++] = t->merged[i];
	}
	for (size_t i = 0; i < m; i++)
		t->bytes += t->merged[i].end - t->merged[i].off;
	t->nmerged = m;
	return 0;
}

static void chunks_push(struct chunks *c, size_t *cap, uint64_t off)
{
	if (c->n + 1 >= *cap)
		c->off = xrealloc(c->off, (*cap = *cap ? 2 * *cap : 4096) * sizeof(*c->off));
	c->off[c->n++] = off;
}

/* Content-defined chunks of img; fixed > 0 cuts every `fixed` bytes. */
static void chunks_make(const struct image *img, uint32_t avg, uint32_t fixed, struct chunks *c)
{
	struct cdc_params p = { .min = avg / 4, .avg = avg, .max = avg * 4 };
	size_t cap = 0;
	uint64_t off = 0;
	*c = (struct chunks){ 0 };
	while (off < img->size) {
		chunks_push(c, &cap, off);
		size_t left = img->size - off;
		off += fixed ? MIN((size_t)fixed, left) : cdc_cut(&p, img->data + off, left, true);
	}
	c->off[c->n] = off; /* the end; chunks_push keeps room for it */
}

static uint64_t chunk_len(const struct chunks *c, size_t i) { return c->off[i + 1] - c->off[i]; }

/* Mark the chunks that any range overlaps; returns bytes of those chunks. */
static uint64_t chunks_touch(const struct chunks *c, const struct range *r, size_t nr,
			     bool *touched)
{
	uint64_t bytes = 0;
	size_t i = 0;
	for (size_t k = 0; k < nr; k++) {
		while (i < c->n && c->off[i + 1] <= r[k].off)
			i++;
		for (size_t j = i; j < c->n && c->off[j] < r[k].end; j++) {
			if (!touched[j])
				bytes += chunk_len(c, j);
			touched[j] = true;
		}
	}
	return bytes;
}

/* Pack number of each chunk: packs fill in image order and close when the
 * next chunk would pass target (a pack holds at least one chunk). Returns
 * the number of packs. */
static size_t chunks_pack(const struct chunks *c, uint64_t target, uint32_t *pack)
{
	size_t np = 0;
	uint64_t fill = 0;
	for (size_t i = 0; i < c->n; i++) {
		uint64_t len = chunk_len(c, i);
		if (i == 0 || (fill > 0 && fill + len > target)) {
			np += i > 0;
			fill = 0;
		}
		pack[i] = (uint32_t)np;
		fill += len;
	}
	return c->n ? np + 1 : 0;
}

/* Range requests to fetch the touched chunks: runs of neighbouring touched
 * chunks in one pack, each split at cap bytes (0: no cap). */
static uint64_t count_requests(const struct chunks *c, const bool *touched, const uint32_t *pack,
			       uint64_t cap)
{
	uint64_t reqs = 0, cur = 0;
	for (size_t i = 0; i < c->n; i++) {
		if (!touched[i]) {
			cur = 0;
			continue;
		}
		uint64_t len = chunk_len(c, i);
		bool joins = cur > 0 && touched[i - 1] && pack[i - 1] == pack[i] &&
			     (!cap || cur + len <= cap);
		if (!joins) {
			reqs++;
			cur = 0;
		}
		cur += len;
	}
	return reqs;
}

/* Index of the chunk that holds byte off (off < image size). */
static size_t chunk_find(const struct chunks *c, uint64_t off)
{
	size_t lo = 0, hi = c->n; /* c->off[lo] <= off < c->off[hi] */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->off[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* A first boot with no profile: the reads replayed in order against a
 * cache of whole chunks. A read that misses fetches its missing chunks, one
 * request per run of neighbouring missing chunks in one pack (split at cap
 * bytes), and a request that reaches the read's end goes on over missing
 * chunks until it is ra bytes long (the fetcher's readahead; 0: none).
 * Returns requests; *fetched gets the bytes fetched. */
static uint64_t demand_requests(const struct chunks *c, const struct trace *t,
				const uint32_t *pack, uint64_t cap, uint64_t ra, uint64_t *fetched)
{
	_cleanup_free_ bool *cached = xcalloc(c->n, sizeof(bool));
	uint64_t reqs = 0;
	*fetched = 0;
	for (size_t k = 0; k < t->nreads; k++) {
		uint64_t cur = 0, end = t->reads[k].end;
		for (size_t j = chunk_find(c, t->reads[k].off); j < c->n; j++) {
			uint64_t len = chunk_len(c, j);
			bool in_read = c->off[j] < end;
			if (cached[j] || (!in_read && (cur == 0 || cur + len > ra))) {
				if (!in_read)
					break;
				cur = 0;
				continue;
			}
			if (!(cur > 0 && pack[j - 1] == pack[j] && (!cap || cur + len <= cap))) {
				if (!in_read)
					break;
				reqs++;
				cur = 0;
			}
			cur += len;
			cached[j] = true;
			*fetched += len;
		}
	}
	return reqs;
}

/* Pack sizes and requests for one chunking of the image. */
struct sim {
	size_t packs;
	uint64_t prefetch, prefetch_capped, demand, demand_bytes, ra, ra_bytes;
};

static void simulate(const struct chunks *c, const struct trace *t, const bool *touched,
		     uint64_t pack_size, const struct opts *o, struct sim *s)
{
	_cleanup_free_ uint32_t *pack = xcalloc(c->n, sizeof(uint32_t));
	s->packs = chunks_pack(c, pack_size, pack);
	s->prefetch = count_requests(c, touched, pack, 0);
	s->prefetch_capped = count_requests(c, touched, pack, o->cap);
	s->demand = demand_requests(c, t, pack, o->cap, 0, &s->demand_bytes);
	s->ra = demand_requests(c, t, pack, o->cap, o->ra, &s->ra_bytes);
}

static void print_trace_tables(const struct image *img, const struct trace *t, const struct opts *o)
{
	struct row {
		size_t n;
		uint64_t fetched;
		struct sim s[ARRAY_SIZE(packs)];
	} rows[ARRAY_SIZE(avgs)];

	for (size_t a = 0; a < ARRAY_SIZE(avgs); a++) {
		struct chunks c;
		chunks_make(img, avgs[a], 0, &c);
		_cleanup_free_ bool *touched = xcalloc(c.n, sizeof(bool));
		rows[a].n = c.n;
		rows[a].fetched = chunks_touch(&c, t->merged, t->nmerged, touched);
		for (size_t k = 0; k < ARRAY_SIZE(packs); k++)
			simulate(&c, t, touched, packs[k], o, &rows[a].s[k]);
		free(c.off);
	}

	/* Table 1: by chunk size, with 16 MiB packs (index 1). A first boot's
	 * reads mostly wait on each other: requests cost a full RTT each. A
	 * profiled boot has parallel requests in flight. */
	printf("| avg | chunks | mean | fetched MiB | fetched/read | first boot: requests | est. s "
	       "| with %" PRIu64 " K readahead: requests | MiB | est. s "
	       "| profiled boot: requests | est. s, %u in flight |\n"
	       "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
	       o->ra >> 10, o->parallel);
	for (size_t a = 0; a < ARRAY_SIZE(avgs); a++) {
		const struct row *w = &rows[a];
		const struct sim *m = &w->s[1];
		double xfer = (double)w->fetched / o->bw_bps;
		printf("| %u K | %zu | %.1f K | %.1f | %.2f | %" PRIu64 " | %.1f | %" PRIu64
		       " | %.1f | %.1f | %" PRIu64 " | %.1f |\n",
		       avgs[a] >> 10, w->n, (double)img->size / (double)w->n / 1024,
		       (double)w->fetched / MIB, (double)w->fetched / (double)t->bytes, m->demand,
		       (double)m->demand * o->rtt_s + (double)m->demand_bytes / o->bw_bps, m->ra,
		       (double)m->ra_bytes / MIB,
		       (double)m->ra * o->rtt_s + (double)m->ra_bytes / o->bw_bps,
		       m->prefetch_capped,
		       (double)m->prefetch_capped * o->rtt_s / o->parallel + xfer);
	}

	/* Table 2: what the pack size changes. */
	printf("\n| avg | pack | packs | profiled: requests | capped at %" PRIu64
	       " MiB | first boot: requests |\n|---|---|---|---|---|---|\n", o->cap >> 20);
	for (size_t a = 0; a < ARRAY_SIZE(avgs); a++)
		for (size_t k = 0; k < ARRAY_SIZE(packs); k++) {
			const struct sim *m = &rows[a].s[k];
			printf("| %u K | %" PRIu64 " M | %zu | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " |\n",
			       avgs[a] >> 10, packs[k] >> 20, m->packs, m->prefetch,
			       m->prefetch_capped, m->demand);
		}
}

static int digest_cmp(const void *a, const void *b) { return memcmp(a, b, 32); }

/* Sorted SHA-256 digests of the chunks of img. Caller frees. */
static uint8_t (*chunks_digest(const struct image *img, const struct chunks *c))[32]
{
	uint8_t(*d)[32] = xmalloc(c->n * 32);
	for (size_t i = 0; i < c->n; i++)
		EVP_Digest(img->data + c->off[i], chunk_len(c, i), d[i], NULL, EVP_sha256(), NULL);
	qsort(d, c->n, 32, digest_cmp);
	return d;
}

/* Bytes of b's distinct chunks that a lacks (what a push of b after a
 * uploads), and b's bytes after dedup within b. */
static void dedup_new(const struct image *a, const struct image *b, uint32_t avg, uint32_t fixed,
		      uint64_t *fresh, uint64_t *unique_b)
{
	struct chunks ca, cb;
	chunks_make(a, avg, fixed, &ca);
	chunks_make(b, avg, fixed, &cb);
	_cleanup_free_ uint8_t(*da)[32] = chunks_digest(a, &ca);
	/* b's digests with lengths, sorted by digest, to count each once. */
	struct dl {
		uint8_t d[32];
		uint64_t len;
	} *v = xmalloc(cb.n * sizeof(*v));
	for (size_t i = 0; i < cb.n; i++) {
		EVP_Digest(b->data + cb.off[i], chunk_len(&cb, i), v[i].d, NULL, EVP_sha256(), NULL);
		v[i].len = chunk_len(&cb, i);
	}
	qsort(v, cb.n, sizeof(*v), digest_cmp);
	*fresh = *unique_b = 0;
	for (size_t i = 0; i < cb.n; i++) {
		if (i > 0 && memcmp(v[i].d, v[i - 1].d, 32) == 0)
			continue;
		*unique_b += v[i].len;
		if (!bsearch(v[i].d, da, ca.n, 32, digest_cmp))
			*fresh += v[i].len;
	}
	free(v);
	free(ca.off);
	free(cb.off);
}

static void print_dedup_table(const struct image *a, const struct image *b)
{
	printf("| size | CDC: new MiB | CDC: image 2 after self-dedup MiB | fixed: new MiB "
	       "| fixed: image 2 after self-dedup MiB |\n|---|---|---|---|---|\n");
	for (size_t k = 0; k < ARRAY_SIZE(avgs); k++) {
		uint64_t cn, cu, fn, fu;
		dedup_new(a, b, avgs[k], 0, &cn, &cu);
		dedup_new(a, b, avgs[k], avgs[k], &fn, &fu);
		printf("| %u K | %.2f | %.1f | %.2f | %.1f |\n", avgs[k] >> 10, cn / MIB, cu / MIB,
		       fn / MIB, fu / MIB);
	}
}

static double mono_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* cdc_cut over `mib` MiB of splitmix64 bytes, best of 3 runs per avg. */
static int speed(size_t mib)
{
	size_t n = mib << 20;
	_cleanup_free_ uint8_t *buf = xmalloc(n + 8);
	uint64_t s = 1;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t z = (s += UINT64_C(0x9e3779b97f4a7c15));
		z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
		z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
		z ^= z >> 31;
		memcpy(buf + i, &z, 8);
	}
	printf("| avg | chunks | mean | MB/s (best of 3) |\n|---|---|---|---|\n");
	for (size_t a = 0; a < ARRAY_SIZE(avgs); a++) {
		struct cdc_params p = { avgs[a] / 4, avgs[a], avgs[a] * 4 };
		double best = 1e9;
		size_t cnt = 0;
		for (int rep = 0; rep < 3; rep++) {
			double t = mono_s();
			cnt = 0;
			for (size_t off = 0; off < n; cnt++)
				off += cdc_cut(&p, buf + off, n - off, true);
			best = MIN(best, mono_s() - t);
		}
		printf("| %u K | %zu | %.1f K | %.0f |\n", avgs[a] >> 10, cnt,
		       (double)n / (double)cnt / 1024, (double)n / best / 1e6);
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: chunk-sim [--rtt MS] [--mbit MBIT/S] [--parallel N] [--cap MIB]\n"
		   "                 [--readahead KIB]\n"
		   "                 IMAGE TRACE [IMAGE2]\n"
		   "       chunk-sim --speed [MIB]\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "rtt", required_argument, NULL, 'r' },     { "mbit", required_argument, NULL, 'b' },
		{ "parallel", required_argument, NULL, 'p' }, { "cap", required_argument, NULL, 'c' },
		{ "readahead", required_argument, NULL, 'a' },
		{ "speed", no_argument, NULL, 's' },          { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t v;
	int c;
	*o = (struct opts){ .rtt_s = 0.1, .bw_bps = 100e6 / 8, .parallel = 8, .cap = 4u << 20,
			    .ra = 256u << 10 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 's' || c == 'h')
			return c;
		if (c == '?' || parse_u64(optarg, &v) < 0 || v == 0)
			return '?';
		if (c == 'r')
			o->rtt_s = (double)v / 1000;
		else if (c == 'b')
			o->bw_bps = (double)v * 1e6 / 8;
		else if (c == 'p')
			o->parallel = (unsigned)v;
		else if (c == 'a')
			o->ra = v << 10;
		else
			o->cap = v << 20;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int c = parse_opts(argc, argv, &o);
	uint64_t mib = 256;
	if (c == 'h' || c == '?') {
		usage(c == 'h' ? stdout : stderr);
		return c == 'h' ? 0 : 2;
	}
	if (c == 's')
		return speed(optind < argc && parse_u64(argv[optind], &mib) == 0 && mib ? mib : 256);
	if (argc - optind < 2 || argc - optind > 3) {
		usage(stderr);
		return 2;
	}

	struct image a, b;
	int r = image_open(argv[optind], &a);
	if (r < 0) {
		fprintf(stderr, "chunk-sim: %s: %s\n", argv[optind], strerror(-r));
		return 1;
	}
	struct trace t = { 0 };
	r = trace_load(argv[optind + 1], a.size, &t);
	if (r < 0 || t.nreads == 0) {
		fprintf(stderr, "chunk-sim: %s: %s\n", argv[optind + 1],
			r < 0 ? strerror(-r) : "no reads inside the image");
		return 1;
	}
	printf("image %.1f MiB; trace: %zu reads, %zu disjoint ranges, %.1f MiB read (%.1f%%)\n"
	       "model: RTT %.0f ms, %.0f Mbit/s, requests capped at %" PRIu64 " MiB, 16 MiB packs "
	       "in table 1\n\n",
	       a.size / MIB, t.nreads, t.nmerged, t.bytes / MIB,
	       100.0 * (double)t.bytes / (double)a.size, o.rtt_s * 1000, o.bw_bps * 8 / 1e6,
	       o.cap >> 20);
	print_trace_tables(&a, &t, &o);
	free(t.reads);
	free(t.merged);

	if (argc - optind == 3) {
		r = image_open(argv[optind + 2], &b);
		if (r < 0) {
			fprintf(stderr, "chunk-sim: %s: %s\n", argv[optind + 2], strerror(-r));
			return 1;
		}
		printf("\nimage 2 %.1f MiB (%+.2f MiB against image 1)\n\n", b.size / MIB,
		       ((double)b.size - (double)a.size) / MIB);
		print_dedup_table(&a, &b);
	}
	return 0;
}
