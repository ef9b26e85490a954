/* SPDX-License-Identifier: MIT */
/*
 * Committing a boot session's upper layer as a new generation, shared by
 * `gdroot commit` and the commit daemon: capture the upper (capture.h),
 * make a squashfs delta layer of the mirror, push it (chunks the store
 * lacks), and publish generation N+1 = the newest generation's layers,
 * without any earlier layer of this session, plus the new one on top
 * (publish.h). Each step can be interrupted: the previous generation stays
 * valid, and running the commit again completes the job.
 *
 * The state directory (default /run/gdroot/commit) holds the mirror tree
 * (tree/), the capture state, the layer image while it is pushed, the pack
 * work folder, the record of the last commit, and the reset marker. It must
 * be another filesystem than the upper's (it is written while the upper is
 * frozen): if it is not a mount of its own, the commit mounts an ext4 on a
 * new zram device there (LZ4-compressed RAM, like the upper), or a tmpfs.
 */
#ifndef GDROOT_COMMIT_H
#define GDROOT_COMMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "capture.h"
#include "manifest.h"
#include "cli.h"

#define COMMIT_DEFAULT_UPPER "/run/gdroot/upperfs/upper"
#define COMMIT_DEFAULT_STATE "/run/gdroot/commit"
/* Commit layers are cut finer than pushed ones: a small change costs about
 * two chunks per edit besides itself (docs/commit.md). */
#define COMMIT_CHUNK_AVG 8192

struct commit_cfg {
	struct cli *cli;
	const char *upper;
	const char *state;
	const char *session;	/* NULL: from GDROOT_SESSION_FILE */
	const char *comp;	/* squashfs compressor; NULL: lz4 */
	bool freeze;
	bool force;		/* commit even if nothing changed */
};

struct commit_result {
	bool nothing;		/* nothing changed since the last commit */
	uint64_t generation;	/* published (or the current one if nothing) */
	struct capture_stats cap;
	uint64_t layer_size, new_bytes, uploaded;
	unsigned packs_uploaded;
	uint64_t capture_ns, image_ns, push_ns, total_ns;
	char session[MANIFEST_SESSION_MAX];
};

/* Fill cfg's defaults from the configuration (commit_upper, commit_state,
 * commit_comp, commit_freeze). */
void commit_cfg_defaults(struct commit_cfg *k, struct cli *c);
/* Options every commit-like command takes (--upper --state --session
 * --no-freeze --comp); returns the number of argv words used (0: not
 * one), or -1 for a missing value (printed). */
int commit_cfg_option(struct commit_cfg *k, int argc, char **argv, int i);
extern const char commit_cfg_help[];

/* Commit once. 0 or -errno (logged); -ESTALE: the session was reset. */
int commit_run(const struct commit_cfg *k, struct commit_result *res);
/* Print what a commit did, one line, to stdout. */
void commit_print(const struct commit_result *res);

/* The reset marker of a state directory: present once gdroot reset ran in
 * this session, so nothing more is committed. */
char *commit_reset_marker(const char *state);
/* This session's id (GDROOT_SESSION_FILE or cfg), into out. 0 or -errno. */
int commit_session_id(const struct commit_cfg *k, char *out, size_t n);

#endif
