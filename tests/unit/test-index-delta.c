// SPDX-License-Identifier: MIT
/* Description: delta indexes: a layer that shares most chunks with its base
 * encodes in a fraction of a full index and parses back to the same chunk
 * list; bad runs, counts, sizes and versions are rejected. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "../../squash/index.h"
#include "../../fetcher/util/util.h"

static void fill(struct index_chunk *c, uint32_t seed, uint32_t pack, uint64_t off)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < 32; i++)
		c->sha256[i] = (uint8_t)((seed * 2654435761u) >> (i % 4 * 8)) ^ (uint8_t)i;
	memcpy(c->sha256, &seed, 4);
	c->pack = pack;
	c->len = 1000 + seed % 3000;
	c->pack_off = off;
}

static uint64_t sum_len(const struct index *ix)
{
	uint64_t s = 0;
	for (uint32_t i = 0; i < ix->nchunks; i++)
		s += ix->chunks[i].len;
	return s;
}

static bool same(const struct index *a, const struct index *b)
{
	if (a->nchunks != b->nchunks || a->layer_size != b->layer_size)
		return false;
	for (uint32_t i = 0; i < a->nchunks; i++) {
		const struct index_chunk *x = &a->chunks[i], *y = &b->chunks[i];
		if (memcmp(x->sha256, y->sha256, 32) || x->len != y->len || x->pack_off != y->pack_off ||
		    memcmp(a->packs[x->pack], b->packs[y->pack], 32))
			return false;
	}
	return true;
}

int main(void)
{
	const uint32_t n = 1000;
	struct index base = { .npacks = 3, .nchunks = n };
	base.packs = xcalloc(3, 32);
	for (int i = 0; i < 3; i++)
		base.packs[i][0] = (uint8_t)(i + 1);
	base.chunks = xcalloc(n, sizeof(*base.chunks));
	for (uint32_t i = 0; i < n; i++)
		fill(&base.chunks[i], i, i % 3, 5000ull * i);
	base.layer_size = sum_len(&base);
	void *bbuf;
	size_t blen;
	uint8_t bsha[32];
	CHECK(index_write(&base, &bbuf, &blen) == 0);
	sha256_buf(bbuf, blen, bsha);

	/* The new layer: 10 new chunks (in a new pack, listed first in its
	 * own pack table) inserted at 500, chunk 700 changed, the rest the
	 * same; its pack table is in another order than the base's. */
	struct index nx = { .npacks = 4, .nchunks = n + 10 };
	nx.packs = xcalloc(4, 32);
	nx.packs[0][0] = 9;
	for (int i = 0; i < 3; i++)
		nx.packs[3 - i][0] = (uint8_t)(i + 1); /* base pack i is nx pack 3-i */
	nx.chunks = xcalloc(n + 10, sizeof(*nx.chunks));
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (i == 500)
			for (uint32_t j = 0; j < 10; j++)
				fill(&nx.chunks[k++], 100000 + j, 0, 777ull * j);
		nx.chunks[k] = base.chunks[i];
		nx.chunks[k].pack = 3 - base.chunks[i].pack;
		if (i == 700)
			fill(&nx.chunks[k], 200000, 0, 99999);
		k++;
	}
	nx.layer_size = sum_len(&nx);

	void *full, *delta;
	size_t flen, dlen;
	char err[128];
	CHECK(index_write(&nx, &full, &flen) == 0);
	CHECK(index_write_delta(&nx, &base, bsha, &delta, &dlen) == 0);
	CHECK(dlen * 20 < flen);
	uint8_t got_base[32];
	CHECK(index_version(delta, dlen, got_base) == INDEX_VERSION_DELTA);
	CHECK(memcmp(got_base, bsha, 32) == 0);
	struct index back;
	CHECK(index_parse(delta, dlen, &back, err, sizeof(err)) == -EBADMSG); /* needs the base */
	CHECK(index_parse_delta(delta, dlen, &base, &back, err, sizeof(err)) == 0);
	CHECK(same(&back, &nx));
	CHECK(back.has_base && memcmp(back.base, bsha, 32) == 0);
	CHECK(index_find(&back, back.chunks[600].layer_off) == 600);
	index_free(&back);

	/* A delta of the base itself: one run. */
	void *d0;
	size_t l0;
	CHECK(index_write_delta(&base, &base, bsha, &d0, &l0) == 0);
	CHECK(l0 == INDEX_HEADER_SIZE + 32 + 8);
	CHECK(index_parse_delta(d0, l0, &base, &back, err, sizeof(err)) == 0 && same(&back, &base));
	index_free(&back);

	/* Damage: every field that can be wrong. */
	uint8_t *d = delta;
	size_t runs_at = INDEX_HEADER_SIZE + 32 + 32; /* one extra pack */
	uint8_t *bad = xmalloc(dlen);
	struct { size_t at; uint32_t v; } cases[] = {
		{ 24, n + 11 },			/* nchunks */
		{ 28, 0 },			/* nruns */
		{ 12, 5 },			/* extra packs */
		{ runs_at, n },			/* copy run past the base */
		{ runs_at + 4, 0 },		/* empty run */
		{ runs_at + 4, n + 10 },	/* run longer than the layer */
	};
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		memcpy(bad, d, dlen);
		memcpy(bad + cases[c].at, &cases[c].v, 4);
		CHECK(index_parse_delta(bad, dlen, &base, &back, err, sizeof(err)) == -EBADMSG);
	}
	CHECK(index_parse_delta(d, dlen - 1, &base, &back, err, sizeof(err)) == -EBADMSG);
	memcpy(bad, d, dlen);
	bad[16] ^= 1; /* layer size */
	CHECK(index_parse_delta(bad, dlen, &base, &back, err, sizeof(err)) == -EBADMSG);
	CHECK(index_parse_delta(bbuf, blen, &base, &back, err, sizeof(err)) == -EBADMSG); /* a full index */
	free(bad);
	free(d0);
	free(full);
	free(delta);
	free(bbuf);
	index_free(&nx);
	index_free(&base);
	return test_exit();
}
