// SPDX-License-Identifier: MIT
/* Implementation of index.h: the one reader and writer of layer indexes. */
#include "index.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fetcher/util/util.h"

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

int index_parse(const void *data, size_t n, struct index *out, char *err, size_t errlen)
{
	const uint8_t *p = data;
	memset(out, 0, sizeof(*out));
	if (n < INDEX_HEADER_SIZE)
		return bad(err, errlen, "truncated: %zu bytes, header needs %d", n, INDEX_HEADER_SIZE);
	if (memcmp(p, INDEX_MAGIC, 8) != 0)
		return bad(err, errlen, "not a gdroot index (bad magic)");
	uint32_t version = get32(p + 8), npacks = get32(p + 12), nchunks = get32(p + 24);
	uint64_t layer_size = get64(p + 16);
	if (version == INDEX_VERSION_DELTA)
		return bad(err, errlen, "a delta index: it is read with its base");
	if (version != INDEX_VERSION)
		return bad(err, errlen, "index version %u; this gdroot reads %d and %d", version, INDEX_VERSION,
			   INDEX_VERSION_DELTA);
	if (get32(p + 28) != 0)
		return bad(err, errlen, "reserved header field is not zero");
	if (npacks > INDEX_MAX_PACKS || nchunks > INDEX_MAX_CHUNKS)
		return bad(err, errlen, "too many packs (%u) or chunks (%u)", npacks, nchunks);
	uint64_t want = INDEX_HEADER_SIZE + (uint64_t)npacks * 32 + (uint64_t)nchunks * INDEX_CHUNK_SIZE;
	if (want != n)
		return bad(err, errlen, "size %zu does not match %u packs and %u chunks (%llu bytes)", n, npacks,
			   nchunks, (unsigned long long)want);
	if (nchunks > 0 && npacks == 0)
		return bad(err, errlen, "chunks but no packs");

	out->packs = xmalloc((size_t)npacks * 32 + 1);
	memcpy(out->packs, p + INDEX_HEADER_SIZE, (size_t)npacks * 32);
	out->chunks = xcalloc((size_t)nchunks + 1, sizeof(*out->chunks));
	const uint8_t *c = p + INDEX_HEADER_SIZE + (size_t)npacks * 32;
	uint64_t off = 0;
	for (uint32_t i = 0; i < nchunks; i++, c += INDEX_CHUNK_SIZE) {
		struct index_chunk *ch = &out->chunks[i];
		memcpy(ch->sha256, c, 32);
		ch->pack = get32(c + 32);
		ch->len = get32(c + 36);
		ch->pack_off = get64(c + 40);
		ch->layer_off = off;
		if (ch->pack >= npacks || ch->len == 0 || ch->len > INDEX_MAX_CHUNK_LEN ||
		    ch->pack_off > UINT64_MAX - ch->len) {
			int r = bad(err, errlen, "chunk %u: bad pack %u, length %u or offset %llu", i, ch->pack,
				    ch->len, (unsigned long long)ch->pack_off);
			index_free(out);
			return r;
		}
		off += ch->len;
	}
	if (off != layer_size) {
		index_free(out);
		return bad(err, errlen, "chunks add up to %llu bytes, header says %llu", (unsigned long long)off,
			   (unsigned long long)layer_size);
	}
	out->layer_size = layer_size;
	out->npacks = npacks;
	out->nchunks = nchunks;
	return 0;
}

int index_write(const struct index *ix, void **outp, size_t *lenp)
{
	size_t len = INDEX_HEADER_SIZE + (size_t)ix->npacks * 32 + (size_t)ix->nchunks * INDEX_CHUNK_SIZE;
	uint8_t *p = xcalloc(1, len);
	memcpy(p, INDEX_MAGIC, 8);
	put32(p + 8, INDEX_VERSION);
	put32(p + 12, ix->npacks);
	put64(p + 16, ix->layer_size);
	put32(p + 24, ix->nchunks);
	memcpy(p + INDEX_HEADER_SIZE, ix->packs, (size_t)ix->npacks * 32);
	uint8_t *c = p + INDEX_HEADER_SIZE + (size_t)ix->npacks * 32;
	for (uint32_t i = 0; i < ix->nchunks; i++, c += INDEX_CHUNK_SIZE) {
		const struct index_chunk *ch = &ix->chunks[i];
		memcpy(c, ch->sha256, 32);
		put32(c + 32, ch->pack);
		put32(c + 36, ch->len);
		put64(c + 40, ch->pack_off);
	}
	*outp = p;
	*lenp = len;
	return 0;
}

uint32_t index_version(const void *data, size_t n, uint8_t base[32])
{
	const uint8_t *p = data;
	if (n < INDEX_HEADER_SIZE || memcmp(p, INDEX_MAGIC, 8) != 0)
		return 0;
	uint32_t v = get32(p + 8);
	if (v == INDEX_VERSION_DELTA && n >= INDEX_HEADER_SIZE + 32)
		memcpy(base, p + INDEX_HEADER_SIZE, 32);
	return v;
}

/* One version 1 chunk record into ch, range-checked against npacks. */
static bool chunk_read(const uint8_t *c, uint32_t npacks, struct index_chunk *ch)
{
	memcpy(ch->sha256, c, 32);
	ch->pack = get32(c + 32);
	ch->len = get32(c + 36);
	ch->pack_off = get64(c + 40);
	return ch->pack < npacks && ch->len > 0 && ch->len <= INDEX_MAX_CHUNK_LEN &&
	       ch->pack_off <= UINT64_MAX - ch->len;
}

static void chunk_write(uint8_t *c, const struct index_chunk *ch)
{
	memcpy(c, ch->sha256, 32);
	put32(c + 32, ch->pack);
	put32(c + 36, ch->len);
	put64(c + 40, ch->pack_off);
}

int index_parse_delta(const void *data, size_t n, const struct index *base, struct index *out, char *err,
		      size_t errlen)
{
	const uint8_t *p = data;
	memset(out, 0, sizeof(*out));
	if (n < INDEX_HEADER_SIZE + 32 || memcmp(p, INDEX_MAGIC, 8) != 0 || get32(p + 8) != INDEX_VERSION_DELTA)
		return bad(err, errlen, "not a delta index");
	uint32_t nextra = get32(p + 12), nchunks = get32(p + 24), nruns = get32(p + 28);
	uint64_t layer_size = get64(p + 16);
	if (nextra > INDEX_MAX_PACKS || base->npacks > INDEX_MAX_PACKS - nextra || nchunks > INDEX_MAX_CHUNKS ||
	    nruns > nchunks)
		return bad(err, errlen, "too many packs (%u), chunks (%u) or runs (%u)", nextra, nchunks, nruns);
	uint64_t fixed = INDEX_HEADER_SIZE + 32 + (uint64_t)nextra * 32 + (uint64_t)nruns * 8;
	if (fixed > n || (n - fixed) % INDEX_CHUNK_SIZE != 0)
		return bad(err, errlen, "size %zu does not fit %u packs and %u runs", n, nextra, nruns);
	uint64_t nnew = (n - fixed) / INDEX_CHUNK_SIZE;
	uint32_t npacks = base->npacks + nextra;
	if (nchunks > 0 && npacks == 0)
		return bad(err, errlen, "chunks but no packs");

	const uint8_t *runs = p + INDEX_HEADER_SIZE + 32 + (size_t)nextra * 32;
	const uint8_t *fresh = runs + (size_t)nruns * 8;
	/* The runs must add up before anything is allocated for them. */
	uint64_t sum = 0, sum_new = 0;
	for (uint32_t r = 0; r < nruns; r++) {
		uint32_t start = get32(runs + 8 * r), count = get32(runs + 8 * r + 4);
		if (count == 0 || (start != INDEX_RUN_NEW && (uint64_t)start + count > base->nchunks))
			return bad(err, errlen, "run %u (start %u, %u chunks) is out of range", r, start, count);
		sum += count;
		if (start == INDEX_RUN_NEW)
			sum_new += count;
	}
	if (sum != nchunks || sum_new != nnew)
		return bad(err, errlen, "runs cover %llu of %u chunks and %llu of %llu new ones", (unsigned long long)sum,
			   nchunks, (unsigned long long)sum_new, (unsigned long long)nnew);
	out->packs = xmalloc((size_t)npacks * 32 + 1);
	memcpy(out->packs, base->packs, (size_t)base->npacks * 32);
	memcpy(out->packs + base->npacks, p + INDEX_HEADER_SIZE + 32, (size_t)nextra * 32);
	out->chunks = xcalloc((size_t)nchunks + 1, sizeof(*out->chunks));
	uint64_t off = 0, used_new = 0;
	uint32_t k = 0;
	for (uint32_t r = 0; r < nruns; r++) {
		uint32_t start = get32(runs + 8 * r), count = get32(runs + 8 * r + 4);
		bool isnew = start == INDEX_RUN_NEW; /* ranges checked above */
		for (uint32_t i = 0; i < count; i++, k++) {
			struct index_chunk *ch = &out->chunks[k];
			if (isnew) {
				if (!chunk_read(fresh + (used_new++) * INDEX_CHUNK_SIZE, npacks, ch)) {
					index_free(out);
					return bad(err, errlen, "new chunk %llu: bad pack, length or offset",
						   (unsigned long long)(used_new - 1));
				}
			} else {
				*ch = base->chunks[start + i];
			}
			ch->layer_off = off;
			off += ch->len;
		}
	}
	if (off != layer_size) {
		index_free(out);
		return bad(err, errlen, "chunks add up to %llu bytes, header says %llu", (unsigned long long)off,
			   (unsigned long long)layer_size);
	}
	out->layer_size = layer_size;
	out->npacks = npacks;
	out->nchunks = nchunks;
	out->has_base = true;
	memcpy(out->base, p + INDEX_HEADER_SIZE, 32);
	return 0;
}

/* A base chunk by hash: (sha, position) sorted by sha. */
struct bpos {
	const uint8_t *sha;
	uint32_t pos;
};

static int cmp_bpos(const void *a, const void *b)
{
	const struct bpos *x = a, *y = b;
	int c = memcmp(x->sha, y->sha, 32);
	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int cmp_bpos_sha(const void *a, const void *b)
{
	return memcmp(((const struct bpos *)a)->sha, ((const struct bpos *)b)->sha, 32);
}

static int cmp_pack(const void *a, const void *b)
{
	return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, 32);
}

static bool same_chunk(const struct index_chunk *a, const struct index_chunk *b, uint32_t apack)
{
	return apack == b->pack && a->len == b->len && a->pack_off == b->pack_off && memcmp(a->sha256, b->sha256, 32) == 0;
}

int index_write_delta(const struct index *ix, const struct index *base, const uint8_t base_sha[32], void **outp,
		      size_t *lenp)
{
	/* ix's packs in the delta's numbering: the base's, then extras. */
	uint32_t *pmap = xmalloc(((size_t)ix->npacks + 1) * sizeof(*pmap));
	uint8_t (*extra)[32] = xmalloc(((size_t)ix->npacks + 1) * 32);
	uint32_t nextra = 0;
	const uint8_t **bp = xmalloc(((size_t)base->npacks + 1) * sizeof(*bp));
	for (uint32_t i = 0; i < base->npacks; i++)
		bp[i] = base->packs[i];
	qsort(bp, base->npacks, sizeof(*bp), cmp_pack);
	for (uint32_t i = 0; i < ix->npacks; i++) {
		const uint8_t *key = ix->packs[i];
		const uint8_t **hit = bsearch(&key, bp, base->npacks, sizeof(*bp), cmp_pack);
		if (hit) {
			pmap[i] = (uint32_t)((const uint8_t(*)[32])*hit - base->packs);
		} else {
			memcpy(extra[nextra], key, 32);
			pmap[i] = base->npacks + nextra++;
		}
	}
	struct bpos *pos = xmalloc(((size_t)base->nchunks + 1) * sizeof(*pos));
	for (uint32_t i = 0; i < base->nchunks; i++)
		pos[i] = (struct bpos){ base->chunks[i].sha256, i };
	qsort(pos, base->nchunks, sizeof(*pos), cmp_bpos);

	/* Greedy: extend the current copy run while the base continues it,
	 * else start one where the base has the chunk, else a new chunk. */
	uint32_t (*runs)[2] = xmalloc(((size_t)ix->nchunks + 1) * sizeof(*runs));
	uint32_t nruns = 0, nnew = 0;
	struct index_chunk *fresh = xmalloc(((size_t)ix->nchunks + 1) * sizeof(*fresh));
	for (uint32_t i = 0; i < ix->nchunks; i++) {
		const struct index_chunk *c = &ix->chunks[i];
		uint32_t pk = pmap[c->pack];
		uint32_t *last = nruns ? runs[nruns - 1] : NULL;
		if (last && last[0] != INDEX_RUN_NEW && last[0] + last[1] < base->nchunks &&
		    same_chunk(c, &base->chunks[last[0] + last[1]], pk)) {
			last[1]++;
			continue;
		}
		struct bpos key = { c->sha256, 0 };
		struct bpos *hit = bsearch(&key, pos, base->nchunks, sizeof(*pos), cmp_bpos_sha);
		/* bsearch may land on any entry of that hash: go to the first. */
		while (hit && hit > pos && memcmp(hit[-1].sha, c->sha256, 32) == 0)
			hit--;
		for (; hit && hit < pos + base->nchunks && memcmp(hit->sha, c->sha256, 32) == 0; hit++)
			if (same_chunk(c, &base->chunks[hit->pos], pk))
				break;
		if (hit && (hit >= pos + base->nchunks || memcmp(hit->sha, c->sha256, 32) != 0))
			hit = NULL;
		if (hit) {
			runs[nruns][0] = hit->pos;
			runs[nruns++][1] = 1;
			continue;
		}
		if (!last || last[0] != INDEX_RUN_NEW) {
			runs[nruns][0] = INDEX_RUN_NEW;
			runs[nruns++][1] = 0;
		}
		runs[nruns - 1][1]++;
		fresh[nnew] = *c;
		fresh[nnew++].pack = pk;
	}

	size_t len = INDEX_HEADER_SIZE + 32 + (size_t)nextra * 32 + (size_t)nruns * 8 + (size_t)nnew * INDEX_CHUNK_SIZE;
	uint8_t *p = xcalloc(1, len);
	memcpy(p, INDEX_MAGIC, 8);
	put32(p + 8, INDEX_VERSION_DELTA);
	put32(p + 12, nextra);
	put64(p + 16, ix->layer_size);
	put32(p + 24, ix->nchunks);
	put32(p + 28, nruns);
	memcpy(p + INDEX_HEADER_SIZE, base_sha, 32);
	uint8_t *w = p + INDEX_HEADER_SIZE + 32;
	memcpy(w, extra, (size_t)nextra * 32);
	w += (size_t)nextra * 32;
	for (uint32_t r = 0; r < nruns; r++, w += 8) {
		put32(w, runs[r][0]);
		put32(w + 4, runs[r][1]);
	}
	for (uint32_t i = 0; i < nnew; i++, w += INDEX_CHUNK_SIZE)
		chunk_write(w, &fresh[i]);
	free(pmap);
	free(extra);
	free(bp);
	free(pos);
	free(runs);
	free(fresh);
	*outp = p;
	*lenp = len;
	return 0;
}

void index_free(struct index *ix)
{
	free(ix->packs);
	free(ix->chunks);
	memset(ix, 0, sizeof(*ix));
}

long index_find(const struct index *ix, uint64_t off)
{
	if (off >= ix->layer_size || ix->nchunks == 0)
		return -1;
	size_t lo = 0, hi = ix->nchunks;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (ix->chunks[mid].layer_off <= off)
			lo = mid;
		else
			hi = mid;
	}
	return (long)lo;
}

void sha256_hex(const uint8_t h[32], char out[65])
{
	hex_encode(h, 32, out);
}

int sha256_unhex(const char *hex, uint8_t h[32])
{
	if (strlen(hex) != 64)
		return -EINVAL;
	for (int i = 0; i < 32; i++) {
		unsigned v = 0;
		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -EINVAL;
		}
		h[i] = (uint8_t)v;
	}
	return 0;
}

void sha256_buf(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 32;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}
