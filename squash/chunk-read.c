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
