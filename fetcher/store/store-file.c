// SPDX-License-Identifier: MIT
/*
 * The file:// backend: a plain folder (local disk, NFS, a USB stick) holding
 * the same keys as files. Puts are atomic (a temporary file in the same
 * folder, fsync, rename, fsync of the folder), so a reader sees a whole
 * object or none, and a crash leaves at most a ".tmp-*" file that listings
 * skip.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "store.h"
#include "../util/log.h"
#include "../util/util.h"

struct file_store {
	int dirfd;
	char *root;
};

static int file_open(struct store *st, const char *loc)
{
	if (loc[0] != '/')
		return log_error_errno(-EINVAL, "store URL %s: file:// needs an absolute path "
					       "(file:///var/lib/gdroot)", st->url);
	int fd = open(loc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, "store %s: %m", st->url);
	struct file_store *fs = xcalloc(1, sizeof(*fs));
	fs->dirfd = fd;
	fs->root = xstrdup(loc);
	st->priv = fs;
	return 0;
}

static void file_close(struct store *st)
{
	struct file_store *fs = st->priv;
	close(fs->dirfd);
	free(fs->root);
	free(fs);
}

static int64_t file_get(struct store *st, const char *key, uint64_t off, uint64_t len,
			struct store_sink *sink)
{
	struct file_store *fs = st->priv;
	_cleanup_close_ int fd = openat(fs->dirfd, key, O_RDONLY | O_CLOEXEC);
	char buf[128 << 10];
	uint64_t done = 0;

	st->stats.requests++;
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : log_error_errno(-errno, "%s: get %s: %m", st->url, key);
	while (done < len) {
		size_t want = (size_t)MIN((uint64_t)sizeof(buf), len - done);
		ssize_t n = pread(fd, buf, want, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return log_error_errno(-errno, "%s: read %s: %m", st->url, key);
		}
		if (n == 0)
			break;
		int r = sink->write(sink, buf, (size_t)n);
		if (r < 0)
			return r;
		done += (uint64_t)n;
		st->stats.bytes_in += (uint64_t)n;
		if (st->progress.fn && len != UINT64_MAX)
			st->progress.fn(st->progress.ud, done, len);
	}
	return (int64_t)done;
}

/* mkdir -p of key's parent folders below the root. */
static int make_parents(struct file_store *fs, const char *key)
{
	_cleanup_free_ char *p = xstrdup(key);
	for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (mkdirat(fs->dirfd, p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

static int copy_src(struct store *st, int fd, const struct store_src *src)
{
	if (src->mem)
		return write_all(fd, src->mem, (size_t)src->size);
	char buf[256 << 10];
	uint64_t done = 0;
	while (done < src->size) {
		size_t want = (size_t)MIN((uint64_t)sizeof(buf), src->size - done);
		ssize_t n = pread(src->fd, buf, want, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the source shrank */
		int r = write_all(fd, buf, (size_t)n);
		if (r < 0)
			return r;
		done += (uint64_t)n;
		if (st->progress.fn)
			st->progress.fn(st->progress.ud, done, src->size);
	}
	return 0;
}

/* Write src to a temporary file beside key, then either rename it over key
 * (put) or link it to key, which fails if key exists (put_new). */
static int file_write(struct store *st, const char *key, const struct store_src *src, bool exclusive)
{
	struct file_store *fs = st->priv;
	_cleanup_free_ char *tmp = NULL;
	const char *slash = strrchr(key, '/');
	int r;

	st->stats.requests++;
	r = make_parents(fs, key);
	if (r < 0)
		return log_error_errno(r, "%s: put %s: make folder: %m", st->url, key);
	tmp = xasprintf("%.*s.tmp-%s.%ld", slash ? (int)(slash - key + 1) : 0, key,
			slash ? slash + 1 : key, (long)getpid());
	_cleanup_close_ int fd = openat(fs->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return log_error_errno(-errno, "%s: put %s: %m", st->url, key);
	r = copy_src(st, fd, src);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && exclusive) {
		if (linkat(fs->dirfd, tmp, fs->dirfd, key, 0) < 0)
			r = -errno;
		unlinkat(fs->dirfd, tmp, 0);
		if (r == -EEXIST)
			return r;
	} else if (r == 0 && renameat(fs->dirfd, tmp, fs->dirfd, key) < 0) {
		r = -errno;
	}
	if (r < 0) {
		unlinkat(fs->dirfd, tmp, 0);
		return log_error_errno(r, "%s: put %s: %m", st->url, key);
	}
	_cleanup_free_ char *parent = slash ? xstrndup(key, (size_t)(slash - key)) : xstrdup(".");
	_cleanup_close_ int pfd = openat(fs->dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd >= 0)
		fsync(pfd);
	st->stats.bytes_out += src->size;
	return 0;
}

static int file_put(struct store *st, const char *key, const struct store_src *src)
{
	return file_write(st, key, src, false);
}

static int file_put_new(struct store *st, const char *key, const struct store_src *src)
{
	return file_write(st, key, src, true);
}

static int fill_obj(struct store_obj *o, const char *key, const struct stat *s)
{
	snprintf(o->key, sizeof(o->key), "%s", key);
	o->size = (uint64_t)s->st_size;
	o->mtime = s->st_mtim.tv_sec;
	o->md5[0] = 0;
	return 0;
}

static int walk(struct store *st, int dfd, const char *rel, const char *prefix,
		store_list_fn fn, void *ud, unsigned depth)
{
	if (depth > 32)
		return 0;
	int fd = openat(dfd, rel[0] ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *e;
	int r = 0;
	while (r == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue; /* ., .., and .tmp-* leftovers */
		_cleanup_free_ char *key = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
		struct stat s;
		if (fstatat(dfd, key, &s, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		size_t kl = strlen(key), pl = strlen(prefix);
		if (S_ISDIR(s.st_mode)) {
			/* Descend only where a key under it can match the prefix. */
			if (strncmp(key, prefix, MIN(kl, pl)) == 0)
				r = walk(st, dfd, key, prefix, fn, ud, depth + 1);
		} else if (S_ISREG(s.st_mode) && startswith(key, prefix) && store_key_check(key) == 0) {
			struct store_obj o;
			fill_obj(&o, key, &s);
			r = fn(ud, &o);
		}
	}
	closedir(d);
	return r;
}

static int file_list(struct store *st, const char *prefix, store_list_fn fn, void *ud)
{
	struct file_store *fs = st->priv;
	st->stats.requests++;
	int r = walk(st, fs->dirfd, "", prefix, fn, ud, 0);
	if (r < 0 && r != -ENOENT)
		return log_error_errno(r, "%s: list: %m", st->url);
	return r == -ENOENT ? 0 : r;
}

static int file_del(struct store *st, const char *key)
{
	struct file_store *fs = st->priv;
	st->stats.requests++;
	if (unlinkat(fs->dirfd, key, 0) < 0 && errno != ENOENT)
		return log_error_errno(-errno, "%s: delete %s: %m", st->url, key);
	return 0;
}

static int file_stat(struct store *st, const char *key, struct store_obj *o)
{
	struct file_store *fs = st->priv;
	struct stat s;
	st->stats.requests++;
	if (fstatat(fs->dirfd, key, &s, 0) < 0)
		return errno == ENOENT ? -ENOENT : log_error_errno(-errno, "%s: stat %s: %m", st->url, key);
	if (!S_ISREG(s.st_mode))
		return -ENOENT;
	return fill_obj(o, key, &s);
}

const struct store_ops store_file_ops = {
	.scheme = "file",
	.open = file_open,
	.get = file_get,
	.put = file_put,
	.put_new = file_put_new,
	.list = file_list,
	.del = file_del,
	.stat = file_stat,
	.close = file_close,
};
