// SPDX-License-Identifier: MIT
/*
 * fuse-trace IMAGE MOUNTDIR TRACEFILE: a read-only FUSE passthrough of one
 * file that records every read. MOUNTDIR/image shows IMAGE; each read
 * appends "<monotonic_ns> <offset> <length>" to TRACEFILE (length is what
 * pread returned). A test tool: tests/bench/chunk-sizes.sh loop-mounts the
 * squashfs through it to learn which byte ranges a boot reads. Runs in the
 * foreground, single-threaded, until SIGTERM, SIGINT, SIGHUP or umount,
 * all of which exit 0 with the trace flushed.
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../fetcher/util/util.h"

#define IMAGE_NAME "image"

/* Set once in main before the loop starts; the loop is single-threaded. */
static struct {
	int fd;
	off_t size;
	FILE *trace;
} tr = { .fd = -1 };

static void *trace_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->kernel_cache = 1; /* the image never changes under us */
	cfg->attr_timeout = 3600;
	cfg->entry_timeout = 3600;
	return NULL;
}

static void trace_destroy(void *data)
{
	(void)data;
	fflush(tr.trace);
}

static int trace_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof(*st));
	if (streq(path, "/")) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else if (streq(path, "/" IMAGE_NAME)) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = tr.size;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int trace_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
			 struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	if (!streq(path, "/"))
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, IMAGE_NAME, NULL, 0, 0);
	return 0;
}

static int trace_open(const char *path, struct fuse_file_info *fi)
{
	if (!streq(path, "/" IMAGE_NAME))
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	fi->keep_cache = 1;
	return 0;
}

static int trace_read(const char *path, char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	ssize_t n = pread(tr.fd, buf, size, off);
	if (n < 0)
		return -errno;
	if (n > 0)
		fprintf(tr.trace, "%" PRIu64 " %jd %zd\n", now_ns(), (intmax_t)off, n);
	return (int)n;
}

static const struct fuse_operations trace_ops = {
	.init = trace_init,
	.destroy = trace_destroy,
	.getattr = trace_getattr,
	.readdir = trace_readdir,
	.open = trace_open,
	.read = trace_read,
};

static int open_image(const char *path)
{
	tr.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (tr.fd < 0)
		return -errno;
	/* lseek, not fstat: a block device's st_size is 0. */
	tr.size = lseek(tr.fd, 0, SEEK_END);
	return tr.size < 0 ? -errno : 0;
}

/* Mount and serve until unmounted or signalled. fuse_main would do, but
 * it reports a SIGTERM as a failure (libfuse stores the signal as the
 * session's error); here a signal is a clean exit. Returns 0 or 1. */
static int serve(const char *argv0, const char *mountdir)
{
	char *fargv[] = { (char *)argv0, "-o", "ro,fsname=fuse-trace,subtype=trace", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	int ret = 1;

	struct fuse *f = fuse_new(&args, &trace_ops, sizeof(trace_ops), NULL);
	if (!f)
		goto out_args;
	if (fuse_mount(f, mountdir) != 0)
		goto out_destroy;
	struct fuse_session *se = fuse_get_session(f);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_unmount;
	int r = fuse_loop(f); /* single-threaded; > 0 is the signal that ended it */
	if (r < 0)
		fprintf(stderr, "fuse-trace: %s: %s\n", mountdir, strerror(-r));
	ret = r < 0;
	fuse_remove_signal_handlers(se);
out_unmount:
	fuse_unmount(f);
out_destroy:
	fuse_destroy(f);
out_args:
	fuse_opt_free_args(&args);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s IMAGE MOUNTDIR TRACEFILE\n", argv[0]);
		return 2;
	}
	int r = open_image(argv[1]);
	if (r < 0) {
		fprintf(stderr, "fuse-trace: open %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	tr.trace = fopen(argv[3], "ae");
	if (!tr.trace) {
		fprintf(stderr, "fuse-trace: open %s: %m\n", argv[3]);
		return 1;
	}
	setvbuf(tr.trace, NULL, _IOFBF, 1 << 16);

	r = serve(argv[0], argv[2]);
	if (fclose(tr.trace) != 0) {
		fprintf(stderr, "fuse-trace: write %s: %m\n", argv[3]);
		r = 1;
	}
	close(tr.fd);
	return r;
}
