/* SPDX-License-Identifier: MIT */
/*
 * The verify stage: every chunk that comes from the network is checked
 * against its SHA-256 before any byte of it moves on. A bad chunk is
 * fetched once more; if it is bad again the request fails with -EIO and a
 * log line naming the chunk and its pack. Never a wrong byte.
 */
#ifndef GDROOT_VERIFY_H
#define GDROOT_VERIFY_H

#include "stage.h"

/* NULL on failure (logged). */
struct stage *verify_stage_new(struct stage *next);

#endif
