/* SPDX-License-Identifier: MIT */
/*
 * A growable byte buffer with a hard cap, for bodies read from the network:
 * a hostile or broken server must not grow our memory without bound. The
 * contents are always NUL-terminated so JSON and XML parsers can take them.
 */
#ifndef GDROOT_BUF_H
#define GDROOT_BUF_H

#include <stddef.h>

struct buf {
	char *data;	/* owned; NUL-terminated; NULL when empty */
	size_t len;
	size_t cap;	/* allocated bytes */
	size_t max;	/* append beyond this fails with -E2BIG */
};

#define BUF_INIT(maxbytes) ((struct buf){ .max = (maxbytes) })

/* Append n bytes. Returns 0, or -E2BIG (buffer unchanged) past b->max. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Empty the buffer, keeping its allocation. */
void buf_reset(struct buf *b);
/* Free the allocation. */
void buf_free(struct buf *b);

#endif
