/* SPDX-License-Identifier: MIT */
/*
 * The prefetch stage, first in the read path. It records the order in
 * which chunks are first read (the boot profile), and prefetches a profile
 * in the background: at most `window` prefetch reads outstanding, sent at
 * PRIO_PREFETCH, so demand reads overtake them in the network queue and
 * find in the cache whatever the prefetch already brought.
 */
#ifndef GDROOT_PREFETCH_H
#define GDROOT_PREFETCH_H

#include "stage.h"
#include "../squash/index.h"

/* ixs: the layers' indexes, bottom first (borrowed; must outlive the
 * stage). window 0 means 32. NULL on failure (logged). */
struct stage *prefetch_stage_new(struct stage *next, const struct index *const *ixs, size_t nlayers,
				 unsigned window);
/* Prefetch these chunks, in order, in a background thread; hashes no layer
 * holds are skipped. The list is copied. Call at most once. */
void prefetch_start(struct stage *s, const uint8_t (*sha)[32], size_t n);
/* Stop issuing prefetch reads and join the thread; reads already issued
 * complete as usual. For an orderly shutdown: stop, then destroy the stages
 * from the net end, then this one. */
void prefetch_stop(struct stage *s);
/* The hashes of the chunks read on demand since the stage started, in
 * first-read order; *out is malloc'd and owned by the caller. */
size_t prefetch_recorded(struct stage *s, uint8_t (**out)[32]);

#endif
