// SPDX-License-Identifier: MIT
/* Description: layer index round trip, lookup by offset, and rejection of
 * truncated, oversized and inconsistent indexes. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "../../squash/index.h"
#include "../../fetcher/util/util.h"

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

int main(void)
{
	struct index ix = { .layer_size = 300, .npacks = 2, .nchunks = 3 };
	ix.packs = xcalloc(2, 32);
	ix.packs[1][0] = 7;
	ix.chunks = xcalloc(3, sizeof(*ix.chunks));
	uint32_t lens[3] = { 100, 150, 50 };
	for (int i = 0; i < 3; i++) {
		ix.chunks[i].sha256[0] = (uint8_t)i;
		ix.chunks[i].pack = (uint32_t)(i & 1);
		ix.chunks[i].len = lens[i];
		ix.chunks[i].pack_off = 1000u * (unsigned)i;
	}
	void *buf;
	size_t len;
	char err[128];
	CHECK(index_write(&ix, &buf, &len) == 0);
	CHECK(len == INDEX_HEADER_SIZE + 2 * 32 + 3 * INDEX_CHUNK_SIZE);
	struct index back;
	CHECK(index_parse(buf, len, &back, err, sizeof(err)) == 0);
	CHECK(back.nchunks == 3 && back.npacks == 2 && back.layer_size == 300);
	CHECK(back.chunks[2].layer_off == 250 && back.chunks[1].pack == 1 && back.chunks[2].pack_off == 2000);
	CHECK(back.packs[1][0] == 7);
	CHECK(index_find(&back, 0) == 0 && index_find(&back, 99) == 0 && index_find(&back, 100) == 1);
	CHECK(index_find(&back, 299) == 2 && index_find(&back, 300) == -1);
	index_free(&back);

	uint8_t *b = buf;
	/* Every truncation is refused. */
	for (size_t n = 0; n < len; n++)
		CHECK(index_parse(b, n, &back, err, sizeof(err)) == -EBADMSG);
	/* Extra bytes too. */
	uint8_t *big = xcalloc(1, len + 1);
	memcpy(big, b, len);
	CHECK(index_parse(big, len + 1, &back, err, sizeof(err)) == -EBADMSG);
	free(big);
	/* Field corruptions. */
	struct { size_t off; uint32_t v; } bad[] = {
		{ 0, 0x58585858 },			 /* magic */
		{ 8, 2 },				 /* version */
		{ 12, 0xffffffff },			 /* npacks */
		{ 24, 0x7fffffff },			 /* nchunks */
		{ 28, 1 },				 /* reserved */
		{ 16, 301 },				 /* layer size */
		{ INDEX_HEADER_SIZE + 64 + 32, 2 },	 /* pack out of range */
		{ INDEX_HEADER_SIZE + 64 + 36, 0 },	 /* zero length */
		{ INDEX_HEADER_SIZE + 64 + 36, INDEX_MAX_CHUNK_LEN + 1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint8_t *c = xmalloc(len);
		memcpy(c, b, len);
		put32(c + bad[i].off, bad[i].v);
		CHECK(index_parse(c, len, &back, err, sizeof(err)) == -EBADMSG);
		CHECK(back.chunks == NULL && back.packs == NULL);
		free(c);
	}
	/* Pack offset overflow. */
	uint8_t *c = xmalloc(len);
	memcpy(c, b, len);
	memset(c + INDEX_HEADER_SIZE + 64 + 40, 0xff, 8);
	CHECK(index_parse(c, len, &back, err, sizeof(err)) == -EBADMSG);
	free(c);
	/* Empty layer is fine. */
	struct index empty = { 0 };
	void *eb;
	size_t el;
	CHECK(index_write(&empty, &eb, &el) == 0 && el == INDEX_HEADER_SIZE);
	CHECK(index_parse(eb, el, &back, err, sizeof(err)) == 0 && back.nchunks == 0);
	index_free(&back);
	free(eb);

	uint8_t h[32];
	char hex[65];
	sha256_buf("abc", 3, h);
	sha256_hex(h, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	uint8_t h2[32];
	CHECK(sha256_unhex(hex, h2) == 0 && memcmp(h, h2, 32) == 0);
	CHECK(sha256_unhex("BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h2) == -EINVAL);
	CHECK(sha256_unhex("ba78", h2) == -EINVAL);
	free(buf);
	index_free(&ix);
	return test_exit();
}
