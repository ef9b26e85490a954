// SPDX-License-Identifier: MIT
/* Implementation of chunk-read.h. */
#include "chunk-read.h"

#include "gen.h"
#include "index.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

#define GROUP_MAX (16u << 20)

int chunks_read(struct store *st, const struct chunk_ref *refs, size_t n, chunk_read_fn fn, void *ud)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t cap = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		uint64_t len = refs[i].len;
		while (j < n && memcmp(refs[j].pack, refs[i].pack, 32) == 0 &&
		       refs[j].off == refs[j - 1].off + refs[j - 1].len && len + refs[j].len <= GROUP_MAX) {
			len += refs[j].len;
			j++;
		}
		if (len > cap)
			buf = xrealloc(buf, cap = (size_t)len);
		char key[128];
		pack_key(refs[i].pack, key, sizeof(key));
		int64_t got = store_pread(st, key, buf, (size_t)len, refs[i].off);
		if (got < 0 && got != -ENOENT)
			return (int)got;
		uint64_t pos = 0;
		for (size_t k = i; k < j; k++) {
			int status = 0, r;
			uint8_t h[32];
			if (got == -ENOENT) {
				status = -ENOENT;
			} else if (pos + refs[k].len > (uint64_t)got) {
				status = -ENODATA;
			} else {
				sha256_buf(buf + pos, refs[k].len, h);
				if (memcmp(h, refs[k].sha256, 32) != 0)
					status = -EBADMSG;
			}
			r = fn(ud, &refs[k], status == 0 ? buf + pos : NULL, status);
			if (r != 0)
				return r;
			pos += refs[k].len;
		}
		i = j;
	}
	return 0;
}

struct layer_write_ctx {
	int fd;
	EVP_MD_CTX *md;
	const char *what;
	uint64_t done, total;
	void (*progress)(void *ud, uint64_t done, uint64_t total);
	void *progress_ud;
	volatile sig_atomic_t *stop;
};

static int on_layer_chunk(void *ud, const struct chunk_ref *ref, const uint8_t *data, int status)
{
	struct layer_write_ctx *x = ud;
	char pk[128], ch[65];
	if (status < 0) {
		pack_key(ref->pack, pk, sizeof(pk));
		sha256_hex(ref->sha256, ch);
		return log_error_errno(-EBADMSG, "%s: chunk %s (%s at %" PRIu64 "): %s", x->what, ch, pk, ref->off,
				       status == -EBADMSG ? "hash mismatch: the pack was altered"
				       : status == -ENOENT ? "the pack is missing"
							   : "the pack is truncated");
	}
	if (x->stop && *x->stop)
		return -EINTR;
	EVP_DigestUpdate(x->md, data, ref->len);
	x->done += ref->len;
	if (x->progress)
		x->progress(x->progress_ud, x->done, x->total);
	return write_all(x->fd, data, ref->len);
}

int layer_write(struct store *st, const struct manifest_layer *l, const struct index *ix, int fd, const char *what,
		void (*progress)(void *ud, uint64_t done, uint64_t total), void *progress_ud,
		volatile sig_atomic_t *stop)
{
	_cleanup_free_ struct chunk_ref *refs = xcalloc(ix->nchunks + 1, sizeof(*refs));
	for (uint32_t i = 0; i < ix->nchunks; i++)
		refs[i] = (struct chunk_ref){ ix->packs[ix->chunks[i].pack], ix->chunks[i].pack_off, ix->chunks[i].len,
					      ix->chunks[i].sha256, i };
	struct layer_write_ctx x = { .fd = fd, .md = EVP_MD_CTX_new(), .what = what, .total = l->size,
				     .progress = progress, .progress_ud = progress_ud, .stop = stop };
	EVP_DigestInit_ex(x.md, EVP_sha256(), NULL);
	int r = chunks_read(st, refs, ix->nchunks, on_layer_chunk, &x);
	uint8_t h[32];
	unsigned hl = 32;
	EVP_DigestFinal_ex(x.md, h, &hl);
	EVP_MD_CTX_free(x.md);
	if (r == 0 && memcmp(h, l->sha256, 32) != 0)
		r = log_error_errno(-EBADMSG, "%s: the reassembled image does not match the manifest's hash", what);
	return r;
}
