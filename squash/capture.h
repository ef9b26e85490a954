/* SPDX-License-Identifier: MIT */
/*
 * Capturing the overlay's upper layer consistently for gdroot-commit. The
 * upper's filesystem is frozen (FIFREEZE: writers block, readers do not)
 * while the capture brings a mirror of the upper tree, on another
 * filesystem, up to date; then it is thawed and the layer image is made from
 * the mirror while writers carry on. The mirror persists between commits and
 * a state file records each entry's inode number and ctime as last copied
 * (ctime cannot be set from user space, so an entry whose ctime is unchanged
 * has not changed), so the pause of a later commit costs a walk of the tree
 * plus a copy of what changed since, not a copy of the whole upper.
 *
 * Everything overlayfs keeps in an upper directory is carried: directories,
 * files, symlinks, hard links, devices, fifos, sockets, whiteouts (0:0
 * character devices), owners, modes, times, and xattrs (trusted.overlay.
 * opaque; other trusted.overlay.* are overlayfs' private bookkeeping about
 * this mount and are dropped).
 *
 * If the process dies while the filesystem is frozen, a guardian process
 * thaws it; it also thaws after max_pause_s whatever happens.
 */
#ifndef GDROOT_CAPTURE_H
#define GDROOT_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

struct capture_opts {
	const char *upper;	/* the overlay's upper directory */
	const char *mirror;	/* the mirror tree (created if missing) */
	const char *state;	/* the state file */
	bool freeze;		/* freeze the upper's filesystem (default) */
	unsigned max_pause_s;	/* the guardian thaws after this; default 60 */
};

struct capture_stats {
	uint64_t entries;	/* in the upper */
	uint64_t bytes;		/* of regular files in the upper */
	uint64_t copied;	/* entries (re)made in the mirror */
	uint64_t copied_bytes;
	uint64_t removed;	/* entries removed from the mirror */
	uint64_t pause_ns;	/* from before FIFREEZE to after FITHAW */
	bool frozen;		/* whether the pause was a real freeze */
};

/* 0 or -errno (logged). On failure the mirror may be partly updated; the
 * next capture repairs it. */
int capture(const struct capture_opts *o, struct capture_stats *s);

#endif
