/* SPDX-License-Identifier: MIT */
/*
 * The fetcher's FUSE frontend: a read-only mount whose root directory holds
 * one regular file per image layer ("layer-0", ...), the stage chain's
 * first caller. A read becomes one struct chunk_req per covered chunk,
 * issued to the head stage; the reply goes out from the last completion,
 * so no FUSE worker thread ever waits on the network. Any failed chunk
 * fails the whole read with EIO: the kernel never gets a wrong byte.
 * Design and measurements: docs/fuse.md.
 */
#ifndef GDROOT_FS_H
#define GDROOT_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../squash/index.h"
#include "stage.h"

struct fs_layer {
	char name[64];		/* file name in the mount, e.g. "layer-0" */
	const struct index *ix;	/* owned by the caller; outlives the fs */
};

struct fs_opts {
	const char *mountpoint;
	unsigned max_threads;	/* FUSE worker threads; 0: 8 */
	bool allow_other;	/* other users may read (needs root or user_allow_other) */
	bool debug;		/* libfuse's request trace on stderr */
};

struct fs_stats {
	uint64_t reads;		/* read requests answered */
	uint64_t bytes;		/* bytes returned to the kernel */
	uint64_t errors;	/* reads answered with an error */
	uint64_t in_flight;	/* reads waiting for chunks now */
};

struct fs;

/* Mount the layers at o->mountpoint (an existing directory); head is the
 * first stage of the read path and must outlive the fs. layers is copied.
 * Returns the fs, or NULL with errno set (the reason is logged). */
struct fs *fs_mount(const struct fs_opts *o, const struct fs_layer *layers, size_t n,
		    struct stage *head);
/* Serve requests with a pool of worker threads until the file system is
 * unmounted (umount, fusermount3 -u) or fs_exit is called. Call once, from
 * any one thread. Returns 0, or -errno if the session failed. */
int fs_loop(struct fs *fs);
/* Ask fs_loop to return. Async-signal-safe: may be called from a signal
 * handler or any thread, any number of times, before or during fs_loop.
 * Reads already handed to the stages still get their answers. */
void fs_exit(struct fs *fs);
/* Unmount (lazily, if the kernel still has users such as a loop device)
 * and free. Call after fs_loop has returned, or instead of ever calling it.
 * Reads still waiting for their chunks keep the session's memory alive
 * until their last completion; the head stage must answer them (a stage's
 * destroy fails pending requests), and must not be destroyed before this
 * call. fs may be NULL. */
void fs_unmount_free(struct fs *fs);
/* Counters since mount. Lock-free; any thread. */
void fs_get_stats(struct fs *fs, struct fs_stats *st);

#endif
