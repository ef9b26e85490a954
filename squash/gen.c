// SPDX-License-Identifier: MIT
/* Implementation of gen.h: reading generations from a store. */
#include "gen.h"

#include <pthread.h>

#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

void pack_key(const uint8_t h[32], char *out, size_t n)
{
	char x[65];
	sha256_hex(h, x);
	snprintf(out, n, PACK_KEY_PREFIX "%s", x);
}

void index_key(const uint8_t h[32], char *out, size_t n)
{
	char x[65];
	sha256_hex(h, x);
	snprintf(out, n, INDEX_KEY_PREFIX "%s", x);
}

struct gens {
	uint64_t *v;
	size_t n, cap;
};

static int add_gen(void *ud, const struct store_obj *o)
{
	struct gens *g = ud;
	uint64_t gen = manifest_key_generation(o->key);
	if (!gen)
		return 0;
	if (g->n == g->cap)
		g->v = xrealloc(g->v, (g->cap = g->cap ? g->cap * 2 : 16) * sizeof(*g->v));
	g->v[g->n++] = gen;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int gen_list(struct store *st, uint64_t **out, size_t *n)
{
	struct gens g = { 0 };
	int r = store_list(st, MANIFEST_KEY_PREFIX, add_gen, &g);
	if (r < 0) {
		free(g.v);
		return r;
	}
	qsort(g.v, g.n, sizeof(*g.v), cmp_u64);
	/* Drive may list a generation twice (a writer that lost a race and
	 * has not yet deleted its file): it is one generation. */
	size_t u = 0;
	for (size_t i = 0; i < g.n; i++)
		if (u == 0 || g.v[u - 1] != g.v[i])
			g.v[u++] = g.v[i];
	*out = g.v;
	*n = u;
	return 0;
}

/* Fetch a whole small object (at most max bytes). */
static int64_t fetch_all(struct store *st, const char *key, uint64_t max, char **out)
{
	struct store_obj o;
	int r = store_stat(st, key, &o);
	if (r < 0)
		return r;
	if (o.size > max)
		return log_error_errno(-EFBIG, "%s: %s is %llu bytes, more than the %llu a valid one can be", st->url,
				       key, (unsigned long long)o.size, (unsigned long long)max);
	char *buf = xmalloc((size_t)o.size + 1);
	int64_t n = store_pread(st, key, buf, (size_t)o.size, 0);
	if (n < 0) {
		free(buf);
		return n;
	}
	buf[n] = 0;
	*out = buf;
	return n;
}

int gen_load(struct store *st, uint64_t gen, EVP_PKEY *pub, struct manifest *m, uint8_t sha[32])
{
	char key[64], err[256];
	_cleanup_free_ char *buf = NULL;
	manifest_key(gen, key, sizeof(key));
	int64_t n = fetch_all(st, key, MANIFEST_MAX_SIZE, &buf);
	if (n < 0) {
		if (n == -ENOENT)
			return log_error_errno(-ENOENT, "%s: no generation %llu (%s)", st->url, (unsigned long long)gen, key);
		return (int)n;
	}
	int r = manifest_decode(buf, (size_t)n, pub, m, err, sizeof(err));
	if (r < 0)
		return log_error_errno(r, "%s: %s: %s", st->url, key, err);
	if (m->generation != gen) {
		manifest_free(m);
		return log_error_errno(-EBADMSG, "%s: %s claims to be generation %llu", st->url, key,
				       (unsigned long long)m->generation);
	}
	if (sha)
		sha256_buf(buf, (size_t)n, sha);
	return 0;
}

int gen_load_newest(struct store *st, EVP_PKEY *pub, struct manifest *m, uint8_t sha[32])
{
	_cleanup_free_ uint64_t *gens = NULL;
	size_t n;
	int r = gen_list(st, &gens, &n);
	if (r < 0)
		return r;
	for (size_t i = n; i-- > 0;) {
		r = gen_load(st, gens[i], pub, m, sha);
		if (r == 0)
			return 0;
		if (r != -EBADMSG && r != -EKEYREJECTED && r != -ENOKEY && r != -EFBIG)
			return r; /* a store failure, not a bad manifest: don't skip */
		log_warn("%s: skipping generation %llu: it is not valid", st->url, (unsigned long long)gens[i]);
	}
	return log_error_errno(-ENOENT, "%s: no valid generation (%zu manifests)", st->url, n);
}

int gen_load_index_hash(struct store *st, const uint8_t hash[32], uint64_t max, struct index *ix)
{
	char key[128], err[256];
	uint8_t h[32], base[32];
	_cleanup_free_ char *buf = NULL;
	index_key(hash, key, sizeof(key));
	int64_t n = fetch_all(st, key, max, &buf);
	if (n == -EFBIG)
		return -EBADMSG;
	if (n < 0)
		return n == -ENOENT ? log_error_errno(-ENOENT, "%s: index %s is missing", st->url, key) : (int)n;
	sha256_buf(buf, (size_t)n, h);
	if (memcmp(h, hash, 32) != 0)
		return log_error_errno(-EBADMSG, "%s: index %s does not match its hash (tampered or truncated)", st->url, key);
	int r;
	if (index_version(buf, (size_t)n, base) == INDEX_VERSION_DELTA) {
		/* A session's deltas share one base: keep the last one read. */
		static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
		static struct index cached;
		static uint8_t cached_hash[32];
		static char *cached_url;
		pthread_mutex_lock(&lock);
		r = 0;
		if (!cached.chunks || memcmp(cached_hash, base, 32) != 0 || !cached_url || !streq(cached_url, st->url)) {
			struct index b;
			r = gen_load_index_hash(st, base, INDEX_BASE_MAX, &b);
			if (r == 0 && b.has_base) {
				index_free(&b);
				r = log_error_errno(-EBADMSG, "%s: index %s: its base is a delta index too", st->url, key);
			} else if (r < 0) {
				log_error_errno(r, "%s: index %s: its base cannot be read", st->url, key);
			} else {
				index_free(&cached);
				cached = b;
				memcpy(cached_hash, base, 32);
				free(cached_url);
				cached_url = xstrdup(st->url);
			}
		}
		if (r < 0) {
			pthread_mutex_unlock(&lock);
			return r; /* logged */
		}
		r = index_parse_delta(buf, (size_t)n, &cached, ix, err, sizeof(err));
		pthread_mutex_unlock(&lock);
	} else {
		r = index_parse(buf, (size_t)n, ix, err, sizeof(err));
	}
	if (r < 0)
		return log_error_errno(r, "%s: index %s: %s", st->url, key, err);
	return 0;
}

int gen_load_index(struct store *st, const struct manifest_layer *l, struct index *ix)
{
	char key[128];
	int r = gen_load_index_hash(st, l->index, l->index_size, ix);
	if (r < 0)
		return r;
	if (ix->layer_size != l->size || ix->nchunks != l->chunks) {
		index_free(ix);
		index_key(l->index, key, sizeof(key));
		return log_error_errno(-EBADMSG, "%s: index %s disagrees with the manifest on size or chunks", st->url, key);
	}
	return 0;
}

void gen_map_index(struct chunkmap *map, const struct index *ix)
{
	_cleanup_free_ uint32_t *pm = xmalloc((ix->npacks + 1) * sizeof(uint32_t));
	for (uint32_t i = 0; i < ix->npacks; i++)
		pm[i] = chunkmap_pack(map, ix->packs[i]);
	for (uint32_t i = 0; i < ix->nchunks; i++) {
		const struct index_chunk *c = &ix->chunks[i];
		chunkmap_add(map, c->sha256, pm[c->pack], c->pack_off, c->len);
	}
}
