/* SPDX-License-Identifier: MIT */
/*
 * Publishing generations on stores without compare-and-swap, and the locks
 * that keep garbage collection away from a push in progress. The protocol
 * (docs/commit.md):
 *
 * - Generation N is the object manifests/<N>, created with store_put_new,
 *   which lets exactly one of several racing writers make it. A writer that
 *   loses rebuilds its manifest on top of the winner (the new newest
 *   generation) and tries N+1, so both changes reach the newest
 *   generation and both are in history.
 * - What "on top" means is the caller's: a push makes a one-layer
 *   generation; a commit takes the newest generation's layers, drops its
 *   own session's layer and puts the new one on top; a reset copies an old
 *   generation's layers; a compaction refuses if the newest moved on.
 * - A push, commit or compaction holds a lock object locks/push-* from
 *   before it lists the store until it has published; gc holds locks/gc-*.
 *   Each writes its lock, then lists the other kind: of two that overlap,
 *   at least one sees the other. gc gives way (it stops); a push waits for
 *   gc to finish. Locks older than LOCK_STALE_S are a crashed process's and
 *   are ignored.
 */
#ifndef GDROOT_PUBLISH_H
#define GDROOT_PUBLISH_H

#include "manifest.h"
#include "../fetcher/store/store.h"

#define LOCK_KEY_PREFIX "locks/"
#define LOCK_STALE_S (24 * 3600)

/* Build the manifest to publish on top of newest (generation 0: the store
 * has none). Fill out's layers (malloc'd; publish frees them) and kind,
 * from; publish sets generation, parent, created, tool. Returns 0, or
 * -errno to stop (logged by the callback). */
typedef int (*publish_build_fn)(void *ud, const struct manifest *newest, struct manifest *out);

/* Publish what build makes as the next generation, retrying on top of the
 * winner when another writer takes the number. *published (may be NULL)
 * gets the generation number. 0 or -errno. */
int publish(struct store *st, EVP_PKEY *priv, EVP_PKEY *pub, publish_build_fn build, void *ud,
	    uint64_t *published);

struct store_lock {
	char key[96];
	bool held;
};

/* Take a lock of kind "push" or "gc". A push waits (up to wait_s) while a
 * gc runs; a gc fails with -EBUSY while a push runs. 0 or -errno, logged. */
int lock_take(struct store *st, const char *kind, unsigned wait_s, struct store_lock *l);
void lock_drop(struct store *st, struct store_lock *l);

#endif
