// SPDX-License-Identifier: MIT
/*
 * Implementation of capture.h. One recursive walk of the upper tree beside
 * the mirror tree: what the mirror has and the upper does not is removed;
 * what changed (by inode number and ctime against the state file) is made
 * anew under a temporary name and renamed into place, so an interrupted
 * capture leaves every mirror entry either old or whole.
 */
#include "capture.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "push.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

#define STATE_MAGIC "GDRCAP1\n"
#define TMP_NAME ".gdroot-capture.tmp"

/* One upper entry as last copied. key: FNV-1a of its path in the tree. */
struct cap_ent {
	uint64_t key;
	uint64_t ino;
	int64_t ctime_ns;
};

struct hardlink {
	uint64_t ino;
	char *rel;		/* the first path of the inode in this walk */
};

struct walk {
	const struct capture_opts *o;
	struct capture_stats *s;
	struct cap_ent *old;	/* sorted by key */
	size_t nold;
	struct cap_ent *now;
	size_t nnow, capnow;
	struct hardlink *hl;
	size_t nhl, caphl;
	char up[PATH_MAX], mir[PATH_MAX];	/* absolute paths of the entry */
	char rel[PATH_MAX];			/* "" for the root, else "a/b" */
	char *buf;				/* copy buffer */
};

static uint64_t path_key(const char *rel)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *rel; rel++)
		h = (h ^ (unsigned char)*rel) * 0x100000001b3ull;
	return h;
}

static int64_t ctime_ns(const struct stat *st)
{
	return (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

static int cmp_ent(const void *a, const void *b)
{
	uint64_t x = ((const struct cap_ent *)a)->key, y = ((const struct cap_ent *)b)->key;
	return x < y ? -1 : x > y;
}

static const struct cap_ent *old_find(const struct walk *w, uint64_t key)
{
	struct cap_ent k = { .key = key };
	return bsearch(&k, w->old, w->nold, sizeof(k), cmp_ent);
}

static void now_add(struct walk *w, uint64_t key, const struct stat *st)
{
	if (w->nnow == w->capnow)
		w->now = xrealloc(w->now, (w->capnow = w->capnow ? w->capnow * 2 : 1024) * sizeof(*w->now));
	w->now[w->nnow++] = (struct cap_ent){ key, st->st_ino, ctime_ns(st) };
}

static void state_load(struct walk *w)
{
	_cleanup_free_ char *buf = NULL;
	ssize_t n = read_file(w->o->state, 1u << 30, &buf);
	uint64_t count;
	if (n < 0) {
		if (n != -ENOENT)
			log_warn("commit: cannot read %s (%s); copying the whole upper", w->o->state, strerror((int)-n));
		return;
	}
	if ((size_t)n < 16 || memcmp(buf, STATE_MAGIC, 8) != 0 ||
	    (memcpy(&count, buf + 8, 8), (size_t)n != 16 + count * sizeof(struct cap_ent))) {
		log_warn("commit: %s is not a capture state file; copying the whole upper", w->o->state);
		return;
	}
	w->old = xmalloc(count * sizeof(*w->old) + 1);
	memcpy(w->old, buf + 16, count * sizeof(*w->old));
	w->nold = count;
	qsort(w->old, w->nold, sizeof(*w->old), cmp_ent);
}

static int state_save(struct walk *w)
{
	size_t n = 16 + w->nnow * sizeof(struct cap_ent);
	_cleanup_free_ char *buf = xmalloc(n);
	uint64_t count = w->nnow;
	memcpy(buf, STATE_MAGIC, 8);
	memcpy(buf + 8, &count, 8);
	memcpy(buf + 16, w->now, w->nnow * sizeof(struct cap_ent));
	int r = write_file_atomic(w->o->state, buf, n, 0600);
	if (r < 0)
		return log_error_errno(r, "commit: write %s: %m", w->o->state);
	return 0;
}

/* --- the freeze and its guardian --- */

/* A child that thaws the filesystem if we die (its end of the pipe sees
 * EOF) or after max_s seconds. */
static pid_t guardian_start(const char *path, unsigned max_s, int *wfd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		close(p[1]);
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		poll(&pf, 1, (int)max_s * 1000);
		if (fd >= 0 && ioctl(fd, FITHAW, 0) == 0) {
			fprintf(stderr, "gdroot: commit: thawed %s after the committer %s\n", path,
				pf.revents ? "died" : "held it too long");
		}
		_exit(0);
	}
	close(p[0]);
	*wfd = p[1];
	return pid;
}

static void guardian_stop(pid_t pid, int wfd)
{
	close(wfd);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* --- removing --- */

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -errno : 0;
}

/* rm -rf, in process (the pause must not wait for exec). */
static int remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return r < 0 ? -errno : r;
}

/* --- copying one entry --- */

/* POSIX ACLs found (squashfs cannot hold them), and the first path. */
static __thread uint64_t acls_seen;
static __thread char acl_example[PATH_MAX];

static bool keep_xattr(const char *name)
{
	if (startswith(name, "trusted.overlay."))
		return streq(name, "trusted.overlay.opaque");
	return !startswith(name, "system.posix_acl_");
}

/* Make dst's xattrs those of src (paths, not following symlinks). */
static int copy_xattrs(const char *src, const char *dst, bool clear_first)
{
	char names[65536], dnames[65536], val[65536];
	ssize_t n = llistxattr(src, names, sizeof(names));
	if (n < 0)
		return errno == ENOTSUP ? 0 : -errno;
	if (clear_first) {
		ssize_t dn = llistxattr(dst, dnames, sizeof(dnames));
		for (ssize_t i = 0; dn > 0 && i < dn; i += (ssize_t)strlen(dnames + i) + 1) {
			const char *k = dnames + i;
			bool found = false;
			for (ssize_t j = 0; j < n && !found; j += (ssize_t)strlen(names + j) + 1)
				found = keep_xattr(k) && streq(k, names + j);
			if (!found && lremovexattr(dst, k) < 0 && errno != ENODATA)
				return -errno;
		}
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		const char *k = names + i;
		if (startswith(k, "system.posix_acl_") && acls_seen++ == 0)
			snprintf(acl_example, sizeof(acl_example), "%s", src);
		if (!keep_xattr(k))
			continue;
		ssize_t vl = lgetxattr(src, k, val, sizeof(val));
		if (vl < 0) {
			if (errno == ENODATA)
				continue;
			return -errno;
		}
		if (lsetxattr(dst, k, val, (size_t)vl, 0) < 0) {
			int r = -errno;
			if (r == -EOPNOTSUPP)
				log_error("commit: the mirror's filesystem cannot hold the xattr %s of %s", k, src);
			return r;
		}
	}
	return 0;
}

/* Owner, mode (not for symlinks), xattrs, times: in that order, as chown
 * clears set-id bits and file capabilities. */
static int copy_meta(const char *src, const char *dst, const struct stat *st, bool clear_xattrs)
{
	if (lchown(dst, st->st_uid, st->st_gid) < 0)
		return -errno;
	if (!S_ISLNK(st->st_mode) && chmod(dst, st->st_mode & 07777) < 0)
		return -errno;
	int r = copy_xattrs(src, dst, clear_xattrs);
	if (r < 0)
		return r;
	struct timespec t[2] = { st->st_atim, st->st_mtim };
	if (utimensat(AT_FDCWD, dst, t, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* Copy [off, end) of in to the same offsets of out. */
static int copy_range(struct walk *w, int in, int out, uint64_t off, uint64_t end, bool *cfr)
{
	while (off < end) {
		ssize_t n;
		size_t want = (size_t)MIN(end - off, (uint64_t)1 << 30);
		if (*cfr) {
			loff_t a = (loff_t)off, b = (loff_t)off;
			n = copy_file_range(in, &a, out, &b, want, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
				*cfr = false;
				continue;
			}
		} else {
			n = pread(in, w->buf, MIN(want, (size_t)1 << 20), (off_t)off);
			if (n > 0) {
				ssize_t m = pwrite(out, w->buf, (size_t)n, (off_t)off);
				if (m != n)
					return m < 0 ? -errno : -EIO;
			}
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break; /* shrank: only possible without a freeze */
		off += (uint64_t)n;
	}
	return 0;
}

/* Copy a file's data extents only (SEEK_DATA/SEEK_HOLE), so a sparse file
 * stays sparse, then set the size. */
static int copy_data(struct walk *w, int in, int out, uint64_t size)
{
	bool cfr = true;
	uint64_t off = 0;
	while (off < size) {
		off_t d = lseek(in, (off_t)off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break; /* a hole to the end */
		if (d < 0) {
			/* No SEEK_DATA here: copy everything. */
			int r = copy_range(w, in, out, off, size, &cfr);
			if (r < 0)
				return r;
			break;
		}
		off_t h = lseek(in, d, SEEK_HOLE);
		if (h < 0)
			h = (off_t)size;
		int r = copy_range(w, in, out, (uint64_t)d, MIN((uint64_t)h, size), &cfr);
		if (r < 0)
			return r;
		off = (uint64_t)h;
	}
	return ftruncate(out, (off_t)size) < 0 ? -errno : 0;
}

/* A hard link already in the mirror for this inode, or NULL. */
static const char *hl_find(struct walk *w, uint64_t ino)
{
	for (size_t i = 0; i < w->nhl; i++)
		if (w->hl[i].ino == ino)
			return w->hl[i].rel;
	return NULL;
}

static void hl_add(struct walk *w, uint64_t ino, const char *rel)
{
	if (w->nhl == w->caphl)
		w->hl = xrealloc(w->hl, (w->caphl = w->caphl ? w->caphl * 2 : 64) * sizeof(*w->hl));
	w->hl[w->nhl++] = (struct hardlink){ ino, xstrdup(rel) };
}

/* Make the mirror entry at w->mir anew from w->up (not a directory). */
static int make_entry(struct walk *w, const struct stat *st)
{
	_cleanup_free_ char *tmp = NULL;
	char *slash = strrchr(w->mir, '/');
	tmp = xasprintf("%.*s/" TMP_NAME, (int)(slash - w->mir), w->mir);
	unlink(tmp);
	int r = 0;
	if (S_ISREG(st->st_mode)) {
		_cleanup_close_ int in = open(w->up, O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC);
		if (in < 0 && errno == EPERM)
			in = open(w->up, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (in < 0)
			return -errno;
		_cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (out < 0)
			return -errno;
		r = copy_data(w, in, out, (uint64_t)st->st_size);
		if (r < 0)
			goto fail;
		w->s->copied_bytes += (uint64_t)st->st_size;
	} else if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(w->up, target, sizeof(target) - 1);
		if (n < 0)
			return -errno;
		target[n] = 0;
		if (symlink(target, tmp) < 0)
			return -errno;
	} else {
		if (mknod(tmp, st->st_mode, st->st_rdev) < 0)
			return -errno;
	}
	r = copy_meta(w->up, tmp, st, false);
	if (r == 0 && rename(tmp, w->mir) < 0)
		r = -errno;
	if (r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST) {
		/* A directory stood there: remove it and try once more. */
		r = remove_tree(w->mir);
		if (r == 0 && rename(tmp, w->mir) < 0)
			r = -errno;
	}
fail:
	if (r < 0)
		unlink(tmp);
	return r;
}

/* Link the mirror entry at w->mir to the mirror's copy of first. */
static int link_entry(struct walk *w, const char *first)
{
	_cleanup_free_ char *src = xasprintf("%s/%s", w->o->mirror, first);
	char *slash = strrchr(w->mir, '/');
	_cleanup_free_ char *tmp = xasprintf("%.*s/" TMP_NAME, (int)(slash - w->mir), w->mir);
	unlink(tmp);
	if (link(src, tmp) < 0)
		return -errno;
	if (rename(tmp, w->mir) < 0) {
		int r = -errno;
		if (r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST) {
			r = remove_tree(w->mir);
			if (r == 0 && rename(tmp, w->mir) == 0)
				return 0;
			r = r < 0 ? r : -errno;
		}
		unlink(tmp);
		return r;
	}
	return 0;
}

/* --- the walk --- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **read_names(const char *path, size_t *n, int *err)
{
	DIR *d = opendir(path);
	char **v = NULL;
	size_t cap = 0;
	*n = 0;
	*err = 0;
	if (!d) {
		*err = -errno;
		return NULL;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (streq(e->d_name, ".") || streq(e->d_name, ".."))
			continue;
		if (*n == cap)
			v = xrealloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
		v[(*n)++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_str);
	return v;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Append "/name" to the three paths; returns the old lengths packed. */
struct mark {
	size_t up, mir, rel;
};

static int push_name(struct walk *w, const char *name, struct mark *m)
{
	m->up = strlen(w->up);
	m->mir = strlen(w->mir);
	m->rel = strlen(w->rel);
	size_t nl = strlen(name);
	if (m->up + nl + 2 > PATH_MAX || m->mir + nl + 2 > PATH_MAX || m->rel + nl + 2 > PATH_MAX)
		return -ENAMETOOLONG;
	sprintf(w->up + m->up, "/%s", name);
	sprintf(w->mir + m->mir, "/%s", name);
	sprintf(w->rel + m->rel, m->rel ? "/%s" : "%s", name);
	return 0;
}

static void pop_name(struct walk *w, const struct mark *m)
{
	w->up[m->up] = 0;
	w->mir[m->mir] = 0;
	w->rel[m->rel] = 0;
}

static int sync_dir(struct walk *w, unsigned depth);

static int sync_entry(struct walk *w, unsigned depth)
{
	struct stat st, mst;
	if (lstat(w->up, &st) < 0)
		return errno == ENOENT ? 0 : -errno; /* gone (no freeze) */
	bool have = lstat(w->mir, &mst) == 0;
	uint64_t key = path_key(w->rel);
	const struct cap_ent *old = old_find(w, key);
	bool same = have && old && old->ino == st.st_ino && old->ctime_ns == ctime_ns(&st) &&
		    (st.st_mode & S_IFMT) == (mst.st_mode & S_IFMT);
	int r = 0;

	w->s->entries++;
	now_add(w, key, &st);
	if (S_ISDIR(st.st_mode)) {
		if (have && !S_ISDIR(mst.st_mode)) {
			if (unlink(w->mir) < 0)
				return -errno;
			have = same = false;
		}
		if (!have && mkdir(w->mir, 0700) < 0)
			return -errno;
		if (!same)
			w->s->copied++;
		r = sync_dir(w, depth + 1);
		if (r < 0)
			return r;
		/* Always: the walk itself changed the mirror directory's times. */
		if (!same)
			return copy_meta(w->up, w->mir, &st, have);
		struct timespec t[2] = { st.st_atim, st.st_mtim };
		return utimensat(AT_FDCWD, w->mir, t, 0) < 0 ? -errno : 0;
	}
	if (S_ISREG(st.st_mode))
		w->s->bytes += (uint64_t)st.st_size;
	if (st.st_nlink > 1) {
		const char *first = hl_find(w, st.st_ino);
		if (first) {
			_cleanup_free_ char *fm = xasprintf("%s/%s", w->o->mirror, first);
			struct stat fst;
			if (same && stat(fm, &fst) == 0 && fst.st_ino == mst.st_ino)
				return 0;
			w->s->copied++;
			return link_entry(w, first);
		}
		hl_add(w, st.st_ino, w->rel);
	}
	if (same)
		return 0;
	w->s->copied++;
	return make_entry(w, &st);
}

static int sync_dir(struct walk *w, unsigned depth)
{
	size_t nu, nm;
	int err;
	if (depth > 256)
		return -ELOOP;
	char **un = read_names(w->up, &nu, &err);
	if (err < 0)
		return err;
	char **mn = read_names(w->mir, &nm, &err);
	if (err < 0) {
		free_names(un, nu);
		return err;
	}
	int r = 0;
	/* Both sorted: one merge finds what the mirror must lose. */
	for (size_t i = 0, j = 0; r == 0 && j < nm; j++) {
		while (i < nu && strcmp(un[i], mn[j]) < 0)
			i++;
		if (i < nu && streq(un[i], mn[j]))
			continue;
		struct mark m;
		if ((r = push_name(w, mn[j], &m)) < 0)
			break;
		r = remove_tree(w->mir);
		w->s->removed++;
		pop_name(w, &m);
	}
	for (size_t i = 0; r == 0 && i < nu; i++) {
		struct mark m;
		if ((r = push_name(w, un[i], &m)) < 0)
			break;
		r = sync_entry(w, depth);
		if (r < 0)
			log_error_errno(r, "commit: capture %s: %m", w->up);
		pop_name(w, &m);
	}
	free_names(un, nu);
	free_names(mn, nm);
	return r < 0 ? -ECANCELED : 0;
}

int capture(const struct capture_opts *o, struct capture_stats *s)
{
	struct walk w = { .o = o, .s = s };
	struct stat ust;
	int r;

	memset(s, 0, sizeof(*s));
	if (lstat(o->upper, &ust) < 0 || !S_ISDIR(ust.st_mode))
		return log_error_errno(-ENOTDIR, "commit: the upper directory %s is not there", o->upper);
	if (mkdir(o->mirror, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "commit: make %s: %m", o->mirror);
	state_load(&w);
	acls_seen = 0;
	w.buf = xmalloc(1 << 20);
	snprintf(w.up, sizeof(w.up), "%s", o->upper);
	snprintf(w.mir, sizeof(w.mir), "%s", o->mirror);
	mode_t um = umask(0);

	_cleanup_close_ int fsfd = open(o->upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int gfd = -1;
	pid_t guardian = 0;
	if (fsfd < 0) {
		r = log_error_errno(-errno, "commit: %s: %m", o->upper);
		goto out;
	}
	/* Write back first, so the freeze has little left to flush. */
	syncfs(fsfd);
	uint64_t t0 = now_ns();
	if (o->freeze) {
		guardian = guardian_start(o->upper, o->max_pause_s ? o->max_pause_s : 60, &gfd);
		if (guardian < 0) {
			r = log_error_errno((int)guardian, "commit: cannot start the thaw guardian: %m");
			goto out;
		}
		if (ioctl(fsfd, FIFREEZE, 0) < 0) {
			r = -errno;
			guardian_stop(guardian, gfd);
			log_error_errno(r, "commit: cannot freeze the filesystem of %s: %m%s", o->upper,
					r == -EOPNOTSUPP ? " (it does not support freezing, as tmpfs does not: use "
							   "the default ext4 on zram, or --no-freeze to copy it live)"
					: r == -EBUSY	 ? " (frozen by somebody else)"
					: r == -EPERM	 ? " (freezing needs root)"
							 : "");
			goto out;
		}
		s->frozen = true;
	}
	r = sync_dir(&w, 0);
	test_crash_point("capture", 0);
	if (r == 0) {
		struct timespec t[2] = { ust.st_atim, ust.st_mtim };
		if (lchown(w.mir, ust.st_uid, ust.st_gid) < 0 || chmod(w.mir, ust.st_mode & 07777) < 0 ||
		    copy_xattrs(o->upper, o->mirror, true) < 0 || utimensat(AT_FDCWD, w.mir, t, 0) < 0)
			r = log_error_errno(-errno, "commit: capture %s: %m", o->mirror);
	}
	if (o->freeze) {
		if (ioctl(fsfd, FITHAW, 0) < 0)
			log_error_errno(-errno, "commit: thaw %s: %m (the guardian will try)", o->upper);
		guardian_stop(guardian, gfd);
	}
	s->pause_ns = now_ns() - t0;
	if (acls_seen)
		log_warn("commit: %" PRIu64 " POSIX ACL(s) dropped, as squashfs cannot hold them (e.g. on %s); "
			 "the owners and modes are kept",
			 acls_seen, acl_example);
	if (r == 0)
		r = state_save(&w);
out:
	umask(um);
	for (size_t i = 0; i < w.nhl; i++)
		free(w.hl[i].rel);
	free(w.hl);
	free(w.old);
	free(w.now);
	free(w.buf);
	return r;
}
