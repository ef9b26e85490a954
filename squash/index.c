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
	if (version != INDEX_VERSION)
		return bad(err, errlen, "index version %u; this gdroot reads %d", version, INDEX_VERSION);
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
