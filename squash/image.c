// SPDX-License-Identifier: MIT
/*
 * Implementation of image.h. The image is made by mksquashfs itself (the
 * kernel's squashfs driver is the reader, so the format is the kernel's);
 * this file only drives it and reports what the format cannot keep.
 */
#include "image.h"

#include <errno.h>
#include <ftw.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

extern char **environ;

int run_command(char *const argv[])
{
	pid_t pid;
	int st, r = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
	if (r != 0)
		return log_error_errno(-r, "cannot run %s: %m", argv[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return log_error_errno(-errno, "waiting for %s: %m", argv[0]);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		return log_error_errno(-EIO, "%s failed with exit status %d", argv[0], WEXITSTATUS(st));
	return log_error_errno(-EIO, "%s was killed by signal %d", argv[0], WTERMSIG(st));
}

int tar_unpack(const char *tarfile, const char *dir)
{
	char *argv[] = { "tar", "--extract", "--file", (char *)tarfile, "--directory", (char *)dir,
			 "--numeric-owner", "--same-owner", "--preserve-permissions", "--xattrs",
			 "--xattrs-include=*", "--acls", NULL };
	int r = run_command(argv);
	if (r < 0)
		return log_error_errno(r, "unpacking %s failed (is it a tar archive? zstd archives need zstd)", tarfile);
	return 0;
}

static struct image_report *scan_rep;
static size_t scan_root_len;

static void finding(struct image_report *rep, const char *path, const char *what)
{
	const char *rel = path + scan_root_len;
	if (!*rel)
		rel = "/";
	if (rep->out)
		fprintf(rep->out, "%s\t%s\n", what, rel);
}

static void show(struct image_report *rep, const char *path, const char *what)
{
	const char *rel = path + scan_root_len;
	if (rep->shown < 20)
		log_warn("push: %s: %s", *rel ? rel : "/", what);
	else if (rep->shown == 20)
		log_warn("push: more findings: see the report file");
	rep->shown++;
}

static int scan_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct image_report *rep = scan_rep;
	(void)ftw;
	if (type == FTW_NS || type == FTW_DNR)
		return log_error_errno(-EACCES, "push: cannot read %s", path);
	rep->entries++;
	if (st->st_mtim.tv_sec < 0 || st->st_mtim.tv_sec > (time_t)UINT32_MAX) {
		rep->out_of_range++;
		finding(rep, path, "mtime-out-of-range");
		show(rep, path, "mtime before 1970 or after 2106: squashfs cannot store it (mksquashfs will clamp it)");
	} else if (st->st_mtim.tv_nsec != 0) {
		rep->subsec++;
		finding(rep, path, "subsecond-mtime");
	}
	if (S_ISCHR(st->st_mode) && st->st_rdev == 0) {
		finding(rep, path, "whiteout-device");
		show(rep, path, "is a 0:0 character device, which overlayfs reads as a whiteout: it will be "
				"hidden in the booted system");
	}
	if (S_ISLNK(st->st_mode) && st->st_nlink > 1) {
		finding(rep, path, "hardlinked-symlink");
		show(rep, path, "is a symlink with several hard links; squashfs may store them as separate symlinks");
	}
	char names[65536];
	ssize_t n = llistxattr(path, names, sizeof(names));
	for (ssize_t i = 0; n > 0 && i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *x = names + i;
		if (startswith(x, "system.posix_acl_")) {
			rep->acls++;
			finding(rep, path, "posix-acl");
			show(rep, path, "has a POSIX ACL, which squashfs does not keep");
		} else if (!startswith(x, "user.") && !startswith(x, "trusted.") && !startswith(x, "security.")) {
			rep->other_xattrs++;
			_cleanup_free_ char *w = xasprintf("xattr %s is not kept by squashfs", x);
			finding(rep, path, "xattr-dropped");
			show(rep, path, w);
		}
	}
	return 0;
}

int image_scan(const char *dir, struct image_report *rep)
{
	scan_rep = rep;
	scan_root_len = strlen(dir);
	int r = nftw(dir, scan_one, 64, FTW_PHYS);
	if (r < 0)
		return log_error_errno(-errno, "push: walking %s: %m", dir);
	if (r > 0)
		return -EACCES;
	if (rep->subsec)
		log_warn("push: %llu of %llu entries have sub-second mtimes; squashfs keeps whole seconds",
			 (unsigned long long)rep->subsec, (unsigned long long)rep->entries);
	return 0;
}

int image_build(const char *dir, const char *out, const struct image_opts *o)
{
	char block[32];
	snprintf(block, sizeof(block), "%u", o->block_size ? o->block_size : 131072u);
	char *argv[] = { "mksquashfs", (char *)dir, (char *)out, "-noappend", "-no-progress", "-quiet",
			 "-comp", (char *)(o->comp ? o->comp : "lz4"), "-b", block, "-xattrs",
			 /* Reproducible: a fixed filesystem time (file times are kept). */
			 "-mkfs-time", "0", NULL };
	unlink(out);
	return run_command(argv);
}

int rm_tree(const char *path)
{
	char *argv[] = { "rm", "-rf", "--one-file-system", (char *)path, NULL };
	return run_command(argv);
}
