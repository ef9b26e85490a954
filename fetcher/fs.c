// SPDX-License-Identifier: MIT
/*
 * The FUSE frontend (fs.h), on libfuse's low-level API. Inodes are fixed:
 * 1 is the root directory, 2 + i is layer i. Content never changes, so
 * entries and attributes are cached "forever" and open files keep the page
 * cache (FOPEN_KEEP_CACHE). An O_DIRECT open (a loop device with
 * --direct-io=on) gets FOPEN_DIRECT_IO, and reads of any offset and size
 * work either way.
 *
 * A read is a struct fs_read holding one chunk_req per covered chunk and
 * a countdown: one count per request plus one for the issuing thread,
 * which drops its count after issuing the last request. Whoever brings the
 * count to zero (a stage's completion thread, or the FUSE worker itself
 * when every chunk was answered synchronously) replies with an iovec of
 * the covered slices of the chunk buffers, or with EIO if any chunk
 * failed. FUSE workers therefore never wait on I/O.
 *
 * Lifetime: each unanswered read holds the session (fs->in_flight, under
 * fs->lock); fs_unmount_free frees at once when nothing is in flight, or
 * leaves the free to the last completion, so a completion that races an
 * unmount never touches freed memory.
 */
#define FUSE_USE_VERSION 314
#include "fs.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "util/log.h"
#include "util/util.h"

#define FS_ROOT_INO 1
#define FS_FIRST_LAYER_INO 2
/* Immutable content: cache names and attributes for a year. */
#define FS_TIMEOUT (365.0 * 86400.0)
#define FS_BLKSIZE 4096
#define FS_DEFAULT_THREADS 8
/* Thread-directed only, to interrupt libfuse's wait in fs_loop's thread. */
#define FS_WAKE_SIGNAL (SIGRTMIN + 4)

struct fs {
	struct fuse_session *se;
	struct stage *head;
	struct fs_layer *layers;	/* copied; read-only after mount */
	size_t nlayers;
	uint64_t total_size;
	struct fuse_loop_config *cfg;

	/* fs_exit -> waker thread -> wake the loop thread. */
	int efd;
	atomic_bool exit_req, loop_done;
	pthread_t loop_thread;

	pthread_mutex_t lock;
	pthread_cond_t drained;
	unsigned in_flight;	/* protected by lock */
	bool freeing;		/* protected by lock */

	atomic_uint_fast64_t reads, bytes, errors;
	atomic_uint_fast64_t last_err_log_ns;
};

struct fs_piece {
	struct chunk_req rq;
	uint64_t layer_off;	/* the chunk's offset in the layer */
	struct fs_read *r;
};

struct fs_read {
	struct fs *fs;
	fuse_req_t req;
	uint64_t off, end;	/* the answered range, within the file */
	uint32_t layer;
	uint32_t n;
	atomic_uint pending;
	atomic_int err;		/* the first failure, -errno */
	uint8_t *mem;		/* every chunk's buffer, back to back */
	struct iovec *iov;	/* n entries, after p[] in the same allocation */
	struct fs_piece p[];
};

static void fs_free(struct fs *fs)
{
	if (fs->se)
		fuse_session_destroy(fs->se);
	if (fs->cfg)
		fuse_loop_cfg_destroy(fs->cfg);
	if (fs->efd >= 0)
		close(fs->efd);
	pthread_cond_destroy(&fs->drained);
	pthread_mutex_destroy(&fs->lock);
	free(fs->layers);
	free(fs);
}

static const struct fs_layer *fs_layer_of(struct fs *fs, fuse_ino_t ino)
{
	if (ino < FS_FIRST_LAYER_INO || ino - FS_FIRST_LAYER_INO >= fs->nlayers)
		return NULL;
	return &fs->layers[ino - FS_FIRST_LAYER_INO];
}

static bool fs_stat_ino(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_blksize = FS_BLKSIZE;
	/* uid, gid and every time stay 0: fixed, like the content. */
	if (ino == FS_ROOT_INO) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return true;
	}
	const struct fs_layer *l = fs_layer_of(fs, ino);
	if (!l)
		return false;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)l->ix->layer_size;
	st->st_blocks = (blkcnt_t)((l->ix->layer_size + 511) / 512);
	return true;
}

/* --- the read path --- */

static void fs_read_log_error(struct fs *fs, const struct fs_read *r, int err)
{
	/* At most one line a second: an outage fails reads by the thousand. */
	uint64_t now = now_ns(), last = atomic_load(&fs->last_err_log_ns);
	if (last && now - last < 1000000000ull)
		return;
	if (!atomic_compare_exchange_strong(&fs->last_err_log_ns, &last, now))
		return;
	log_warn_errno(err, "read %s [%" PRIu64 ", +%" PRIu64 "): %m (replying EIO; %" PRIu64
			    " failed reads so far)",
		       fs->layers[r->layer].name, r->off, r->end - r->off,
		       (uint64_t)atomic_load(&fs->errors));
}

/* Drop a session reference taken by fs_read; frees a session whose
 * fs_unmount_free already ran when this was the last one. */
static void fs_put(struct fs *fs)
{
	pthread_mutex_lock(&fs->lock);
	bool last = --fs->in_flight == 0;
	bool free_now = last && fs->freeing;
	if (last)
		pthread_cond_broadcast(&fs->drained);
	pthread_mutex_unlock(&fs->lock);
	if (free_now)
		fs_free(fs);
}

static void fs_read_finish(struct fs_read *r)
{
	struct fs *fs = r->fs;
	int err = atomic_load(&r->err);
	if (err) {
		atomic_fetch_add(&fs->errors, 1);
		fs_read_log_error(fs, r, err);
		fuse_reply_err(r->req, EIO);
	} else {
		for (uint32_t i = 0; i < r->n; i++) {
			const struct fs_piece *p = &r->p[i];
			uint64_t lo = MAX(r->off, p->layer_off);
			uint64_t hi = MIN(r->end, p->layer_off + p->rq.id.len);
			r->iov[i].iov_base = p->rq.buf + (lo - p->layer_off);
			r->iov[i].iov_len = hi > lo ? hi - lo : 0;
		}
		atomic_fetch_add(&fs->bytes, r->end - r->off);
		fuse_reply_iov(r->req, r->iov, (int)r->n);
	}
	atomic_fetch_add(&fs->reads, 1);
	free(r->mem);
	free(r);
	fs_put(fs);
}

static void fs_read_put(struct fs_read *r)
{
	if (atomic_fetch_sub(&r->pending, 1) == 1)
		fs_read_finish(r);
}

static void fs_chunk_done(struct chunk_req *rq, int err)
{
	struct fs_piece *p = rq->ud;
	if (err) {
		int zero = 0;
		atomic_compare_exchange_strong(&p->r->err, &zero, err < 0 ? err : -EIO);
	}
	fs_read_put(p->r);
}

static void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	struct fs *fs = fuse_req_userdata(req);
	const struct fs_layer *l = fs_layer_of(fs, ino);
	if (!l) {
		fuse_reply_err(req, ino == FS_ROOT_INO ? EISDIR : ENOENT);
		return;
	}
	const struct index *ix = l->ix;
	if (off < 0 || (uint64_t)off >= ix->layer_size || size == 0) {
		atomic_fetch_add(&fs->reads, 1);
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	uint64_t start = (uint64_t)off;
	uint64_t end = start + MIN((uint64_t)size, ix->layer_size - start);
	long first = index_find(ix, start), last = index_find(ix, end - 1);
	if (first < 0 || last < first) {
		/* An index whose chunks do not add up to layer_size. */
		atomic_fetch_add(&fs->errors, 1);
		fuse_reply_err(req, EIO);
		return;
	}
	uint32_t n = (uint32_t)(last - first + 1);
	uint64_t total = 0;
	for (long c = first; c <= last; c++)
		total += ix->chunks[c].len;

	/* One allocation: r, its pieces, then the reply's iovec. */
	struct fs_read *r = xcalloc(1, sizeof(*r) + n * (sizeof(r->p[0]) + sizeof(struct iovec)));
	r->iov = (struct iovec *)&r->p[n];
	r->mem = xmalloc(total ? total : 1);
	r->fs = fs;
	r->req = req;
	r->off = start;
	r->end = end;
	r->layer = (uint32_t)(l - fs->layers);
	r->n = n;
	atomic_init(&r->pending, n + 1);
	atomic_init(&r->err, 0);

	pthread_mutex_lock(&fs->lock);
	fs->in_flight++;
	pthread_mutex_unlock(&fs->lock);

	uint8_t *buf = r->mem;
	for (uint32_t i = 0; i < n; i++) {
		const struct index_chunk *c = &ix->chunks[first + i];
		struct fs_piece *p = &r->p[i];
		p->r = r;
		p->layer_off = c->layer_off;
		memcpy(p->rq.id.sha256, c->sha256, 32);
		memcpy(p->rq.id.pack, ix->packs[c->pack], 32);
		p->rq.id.pack_off = c->pack_off;
		p->rq.id.len = c->len;
		p->rq.id.layer = r->layer;
		p->rq.id.index = (uint32_t)(first + i);
		p->rq.buf = buf;
		p->rq.prio = PRIO_DEMAND;
		p->rq.done = fs_chunk_done;
		p->rq.ud = p;
		buf += c->len;
	}
	/* Issue after building every piece: a synchronous answer may finish
	 * the read, but never before the loop drops its own count. */
	for (uint32_t i = 0; i < n; i++) {
		if (r->p[i].rq.id.len == 0) {
			fs_read_put(r);
			continue;
		}
		stage_read(fs->head, &r->p[i].rq);
	}
	fs_read_put(r);
}

/* --- metadata --- */

static void fs_op_init(void *ud, struct fuse_conn_info *conn)
{
	(void)ud;
	/* Concurrent reads, and O_DIRECT reads split into parallel requests. */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	/* Nothing ever changes: no cache invalidation on attribute changes,
	 * no write paths. */
	conn->want &= ~(unsigned)(FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_WRITEBACK_CACHE |
				  FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	if (parent != FS_ROOT_INO) {
		fuse_reply_err(req, fs_layer_of(fs, parent) ? ENOTDIR : ENOENT);
		return;
	}
	for (size_t i = 0; i < fs->nlayers; i++) {
		if (!streq(fs->layers[i].name, name))
			continue;
		struct fuse_entry_param e = { 0 };
		e.ino = FS_FIRST_LAYER_INO + i;
		e.generation = 1;
		e.attr_timeout = FS_TIMEOUT;
		e.entry_timeout = FS_TIMEOUT;
		fs_stat_ino(fs, e.ino, &e.attr);
		fuse_reply_entry(req, &e);
		return;
	}
	/* A negative entry, cached too: the set of layers is fixed. */
	struct fuse_entry_param e = { .ino = 0, .entry_timeout = FS_TIMEOUT };
	fuse_reply_entry(req, &e);
}

static void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct fs *fs = fuse_req_userdata(req);
	struct stat st;
	if (!fs_stat_ino(fs, ino, &st)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &st, FS_TIMEOUT);
}

static void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	if (ino != FS_ROOT_INO) {
		fuse_reply_err(req, fs_layer_of(fs, ino) ? ENOTDIR : ENOENT);
		return;
	}
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	(void)fi;
	struct fs *fs = fuse_req_userdata(req);
	if (ino != FS_ROOT_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	_cleanup_free_ char *buf = xmalloc(size ? size : 1);
	size_t pos = 0;
	/* Entry k: 0 ".", 1 "..", 2 + i layer i; an entry's offset is k + 1. */
	for (size_t k = off < 0 ? 0 : (size_t)off; k < fs->nlayers + 2; k++) {
		struct stat st = { 0 };
		const char *name;
		if (k < 2) {
			name = k == 0 ? "." : "..";
			st.st_ino = FS_ROOT_INO;
			st.st_mode = S_IFDIR;
		} else {
			name = fs->layers[k - 2].name;
			st.st_ino = FS_FIRST_LAYER_INO + (k - 2);
			st.st_mode = S_IFREG;
		}
		size_t need = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)(k + 1));
		if (need > size - pos)
			break;
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
}

static void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	if (!fs_layer_of(fs, ino)) {
		fuse_reply_err(req, ino == FS_ROOT_INO ? EISDIR : ENOENT);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1;
	fi->noflush = 1;
	/* The opener asked to bypass caches (a loop device with
	 * --direct-io=on): pass its reads through as they come. */
	fi->direct_io = (fi->flags & O_DIRECT) ? 1 : 0;
	fuse_reply_open(req, fi);
}

static void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, 0);
}

static void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
			struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct fs *fs = fuse_req_userdata(req);
	struct statvfs st = { 0 };
	st.f_bsize = FS_BLKSIZE;
	st.f_frsize = FS_BLKSIZE;
	st.f_blocks = (fs->total_size + FS_BLKSIZE - 1) / FS_BLKSIZE;
	st.f_files = fs->nlayers + 1;
	st.f_namemax = sizeof(fs->layers[0].name) - 1;
	st.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &st);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_op_init,
	.lookup = fs_op_lookup,
	.getattr = fs_op_getattr,
	.setattr = fs_op_setattr,
	.opendir = fs_op_opendir,
	.readdir = fs_op_readdir,
	.open = fs_op_open,
	.read = fs_op_read,
	.write = fs_op_write,
	.release = fs_op_release,
	.statfs = fs_op_statfs,
};

/* --- session --- */

__attribute__((format(printf, 2, 0))) static void fs_fuse_log(enum fuse_log_level level,
								const char *fmt, va_list ap)
{
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	enum log_level l = level <= FUSE_LOG_ERR	 ? LOG_LVL_ERROR
			   : level <= FUSE_LOG_WARNING ? LOG_LVL_WARN
			   : level <= FUSE_LOG_INFO	 ? LOG_LVL_INFO
						 : LOG_LVL_DEBUG;
	log_full_errno(l, 0, "%s", line);
}

struct fs *fs_mount(const struct fs_opts *o, const struct fs_layer *layers, size_t n,
		    struct stage *head)
{
	struct stat st;
	int r;

	if (!o || !o->mountpoint || !head || (n && !layers)) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *nm = layers[i].name;
		if (!layers[i].ix || !nm[0] || strchr(nm, '/') || streq(nm, ".") || streq(nm, "..") ||
		    strnlen(nm, sizeof(layers[i].name)) == sizeof(layers[i].name)) {
			log_error("mount %s: layer %zu: bad name or no index", o->mountpoint, i);
			errno = EINVAL;
			return NULL;
		}
		for (size_t j = 0; j < i; j++)
			if (streq(layers[j].name, nm)) {
				log_error("mount %s: two layers named '%s'", o->mountpoint, nm);
				errno = EINVAL;
				return NULL;
			}
	}
	if (stat(o->mountpoint, &st) < 0) {
		r = log_error_errno(-errno, "mount %s: %m", o->mountpoint);
		errno = -r;
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("mount %s: not a directory", o->mountpoint);
		errno = ENOTDIR;
		return NULL;
	}

	struct fs *fs = xcalloc(1, sizeof(*fs));
	fs->efd = -1;
	fs->head = head;
	fs->nlayers = n;
	fs->layers = xcalloc(n ? n : 1, sizeof(*fs->layers));
	memcpy(fs->layers, layers, n * sizeof(*layers));
	for (size_t i = 0; i < n; i++)
		fs->total_size += layers[i].ix->layer_size;
	pthread_mutex_init(&fs->lock, NULL);
	pthread_cond_init(&fs->drained, NULL);
	atomic_init(&fs->exit_req, false);
	atomic_init(&fs->loop_done, false);

	fs->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fs->efd < 0) {
		r = log_error_errno(-errno, "mount %s: eventfd: %m", o->mountpoint);
		goto fail;
	}
	fuse_set_log_func(fs_fuse_log);

	char mopts[128];
	snprintf(mopts, sizeof(mopts), "fsname=gdroot,subtype=gdroot,ro,default_permissions%s",
		 o->allow_other ? ",allow_other" : "");
	char *argv[] = { "gdroot-fetcher", "-o", mopts, o->debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(o->debug ? 4 : 3, argv);
	fs->se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		r = log_error_errno(-EINVAL, "mount %s: cannot create the FUSE session", o->mountpoint);
		goto fail;
	}
	if (fuse_session_mount(fs->se, o->mountpoint) != 0) {
		/* libfuse has logged why (no /dev/fuse, not permitted, ...). */
		r = log_error_errno(-EIO, "mount %s: FUSE mount failed", o->mountpoint);
		goto fail;
	}
	fs->cfg = fuse_loop_cfg_create();
	if (!fs->cfg) {
		fuse_session_unmount(fs->se);
		r = -ENOMEM;
		goto fail;
	}
	unsigned threads = o->max_threads ? o->max_threads : FS_DEFAULT_THREADS;
	fuse_loop_cfg_set_clone_fd(fs->cfg, 0);
	fuse_loop_cfg_set_max_threads(fs->cfg, threads);
	fuse_loop_cfg_set_idle_threads(fs->cfg, threads);
	log_debug("mounted %zu layer(s) at %s", n, o->mountpoint);
	return fs;

fail:
	fs_free(fs);
	errno = -r;
	return NULL;
}

static void fs_wake_handler(int sig) { (void)sig; }

static void fs_install_wake_handler(void)
{
	/* No SA_RESTART: the signal must interrupt libfuse's sem_wait. */
	struct sigaction sa = { .sa_handler = fs_wake_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(FS_WAKE_SIGNAL, &sa, NULL);
}

/* Turns an fs_exit (which may come from a signal handler) into what
 * libfuse needs: the session marked exited, and the loop thread woken
 * from its wait, repeatedly until the loop has really returned (a wake
 * that lands just before the thread waits would otherwise be lost). */
static void *fs_waker(void *p)
{
	struct fs *fs = p;
	for (;;) {
		struct pollfd pfd = { .fd = fs->efd, .events = POLLIN };
		int r = poll(&pfd, 1, atomic_load(&fs->exit_req) ? 20 : -1);
		if (r > 0) {
			uint64_t v;
			ssize_t k = read(fs->efd, &v, sizeof(v));
			(void)k;
		}
		if (atomic_load(&fs->loop_done))
			return NULL;
		if (atomic_load(&fs->exit_req)) {
			fuse_session_exit(fs->se);
			pthread_kill(fs->loop_thread, FS_WAKE_SIGNAL);
		}
	}
}

int fs_loop(struct fs *fs)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, fs_install_wake_handler);

	sigset_t wake, old;
	sigemptyset(&wake);
	sigaddset(&wake, FS_WAKE_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &wake, &old);

	fs->loop_thread = pthread_self();
	atomic_store(&fs->loop_done, false);
	pthread_t waker;
	int r = pthread_create(&waker, NULL, fs_waker, fs);
	if (r != 0) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return log_error_errno(-r, "FUSE loop: thread: %m");
	}
	if (atomic_load(&fs->exit_req))
		r = 0;
	else
		r = fuse_session_loop_mt(fs->se, fs->cfg);
	atomic_store(&fs->loop_done, true);
	uint64_t one = 1;
	ssize_t k = write(fs->efd, &one, sizeof(one));
	(void)k;
	pthread_join(waker, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* libfuse returns -errno, a positive signal number, or -1. */
	if (r < 0)
		return log_error_errno(r == -1 ? -EIO : r, "FUSE loop: %m");
	return 0;
}

void fs_exit(struct fs *fs)
{
	int saved = errno;
	atomic_store(&fs->exit_req, true);
	fuse_session_exit(fs->se);
	uint64_t one = 1;
	ssize_t k = write(fs->efd, &one, sizeof(one));
	(void)k;
	errno = saved;
}

void fs_unmount_free(struct fs *fs)
{
	if (!fs)
		return;
	/* Exited: replies that arrive after the unmount are dropped quietly. */
	fuse_session_exit(fs->se);
	fuse_session_unmount(fs->se);

	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 2;
	pthread_mutex_lock(&fs->lock);
	while (fs->in_flight && pthread_cond_timedwait(&fs->drained, &fs->lock, &until) == 0)
		;
	fs->freeing = true;
	unsigned left = fs->in_flight;
	pthread_mutex_unlock(&fs->lock);
	if (left == 0)
		fs_free(fs);
	else
		log_warn("FUSE: %u read(s) still waiting for chunks; freeing the session when they end",
			 left);
}

void fs_get_stats(struct fs *fs, struct fs_stats *st)
{
	st->reads = atomic_load(&fs->reads);
	st->bytes = atomic_load(&fs->bytes);
	st->errors = atomic_load(&fs->errors);
	pthread_mutex_lock(&fs->lock);
	st->in_flight = fs->in_flight;
	pthread_mutex_unlock(&fs->lock);
}
