/* SPDX-License-Identifier: MIT */
/*
 * Making a layer image from a root filesystem: unpacking a tar archive with
 * everything a root needs (owners, modes, xattrs, ACLs, devices), reporting
 * by path what squashfs cannot hold, and running squashfs-tools' mksquashfs
 * reproducibly (same tree, same bytes).
 */
#ifndef GDROOT_IMAGE_H
#define GDROOT_IMAGE_H

#include <stdint.h>
#include <stdio.h>

struct image_opts {
	const char *comp;	/* lz4 (default), zstd, xz, gzip, lzo */
	uint32_t block_size;	/* default 128 KiB */
};

/* What squashfs drops or cannot represent, found by image_scan. */
struct image_report {
	uint64_t entries;
	uint64_t acls;		/* system.posix_acl_* xattrs: dropped */
	uint64_t subsec;	/* sub-second mtimes: truncated */
	uint64_t out_of_range;	/* mtimes before 1970 or after 2106 */
	uint64_t other_xattrs;	/* xattrs outside user., trusted., security. */
	FILE *out;		/* every finding, one line each, or NULL */
	unsigned shown;		/* findings printed on stderr so far */
};

/* Run argv (argv[0] found on PATH), wait, and return 0 or -errno (-EIO for
 * a non-zero exit, logged with the command named). */
int run_command(char *const argv[]);
/* Unpack a tar archive (plain, gzip, xz or zstd: tar detects which) into
 * dir, keeping numeric owners, modes, xattrs and ACLs. 0 or -errno. */
int tar_unpack(const char *tarfile, const char *dir);
/* Walk dir and report what squashfs cannot hold. 0 or -errno. */
int image_scan(const char *dir, struct image_report *rep);
/* rm -rf --one-file-system path. 0 or -errno. */
int rm_tree(const char *path);
/* mksquashfs dir into out. 0 or -errno. */
int image_build(const char *dir, const char *out, const struct image_opts *o);

#endif
