/* SPDX-License-Identifier: MIT */
/*
 * Reading chunks out of packs with verification, for export and verify (the
 * fetcher has its own concurrent pipeline): neighbouring chunks of one pack
 * are read with one ranged get, and every chunk is checked against its
 * SHA-256 before its bytes are handed on.
 */
#ifndef GDROOT_CHUNK_READ_H
#define GDROOT_CHUNK_READ_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"
#include "manifest.h"
#include "../fetcher/store/store.h"

struct chunk_ref {
	const uint8_t *pack;	/* SHA-256 of the pack */
	uint64_t off;
	uint32_t len;
	const uint8_t *sha256;	/* expected */
	size_t tag;		/* for the caller */
};

/* status: 0 (data holds len verified bytes), -EBADMSG (hash mismatch),
 * -ENOENT (no such pack), -ENODATA (the pack ends before the chunk).
 * Return 0 to go on, anything else to stop (returned by chunks_read). */
typedef int (*chunk_read_fn)(void *ud, const struct chunk_ref *ref, const uint8_t *data, int status);

/* Read refs in the order given, coalescing neighbours (same pack, adjacent
 * offsets) into gets of up to 16 MiB. Returns 0, fn's stop value, or a
 * store error (-errno, logged). */
int chunks_read(struct store *st, const struct chunk_ref *refs, size_t n, chunk_read_fn fn, void *ud);

/* Reassemble the layer image that ix describes into fd, checking every
 * chunk and, at the end, the image's SHA-256 against l: for export and
 * compact. what names the command in messages. progress (may be NULL) is
 * called with bytes done and total; a non-zero *stop (stop may be NULL)
 * ends it with -EINTR. 0 or -errno, logged. */
int layer_write(struct store *st, const struct manifest_layer *l, const struct index *ix, int fd, const char *what,
		void (*progress)(void *ud, uint64_t done, uint64_t total), void *progress_ud,
		volatile sig_atomic_t *stop);

#endif
