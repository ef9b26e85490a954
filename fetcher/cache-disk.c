// SPDX-License-Identifier: MIT
/*
 * The cache's persistent store on a file or block device, through io_uring.
 * Layout (all integers little-endian; docs/cache.md explains the why):
 *
 *   [0, 4K)       header: magic, version, geometry, UUID, SHA-256 of itself
 *   [4K, 8K)      log state A \ two copies, alternating: generation and
 *   [8K, 12K)     log state B / "reserved", the end of the writable log
 *   [12K, ...)    index ring: nslots records of 128 bytes, slot = seq % nslots
 *   [data_off, +data_size)  data ring: 4 KiB-aligned extents, written as a log
 *
 * Chunk data goes to monotonic 64-bit log positions (physical offset = pos %
 * data_size; an extent never straddles the ring's end). Before any byte is
 * written at or past "reserved", a larger "reserved" is synced to the log
 * state, which declares every extent below reserved - data_size dead: so a
 * record can never describe bytes that were overwritten, even if the record
 * that overwrote them was lost in a crash. A chunk's record is written only
 * after an fdatasync that follows the completion of its data write, and
 * records are synced in batches (group commit: one flush chain in flight,
 * everything that completed meanwhile goes in the next).
 *
 * Eviction is FIFO, which is what a log ring gives for free: the oldest
 * extents are overwritten first; an extent still being read or written stalls
 * the writer until it is released, so no read ever sees it overwritten.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#include "../squash/index.h"
#include "cache-disk.h"
#include "util/log.h"
#include "util/util.h"

#define CD_VERSION 1u
#define CD_MAX_CHUNK (4u << 20)
#define CD_LOGSTATE_A (1 * CACHE_DISK_BLOCK)
#define CD_LOGSTATE_B (2 * CACHE_DISK_BLOCK)
#define CD_REC_MAGIC 0x52524447u	/* "GDRR" */
#define CD_FLUSH_MAX 1024u		/* records per flush */
#define CD_QUEUE_CAP (64u << 20)	/* bytes waiting for their write */

static const char cd_magic[8] = { 'G', 'D', 'R', 'C', 'A', 'C', 'H', 'E' };
static const char cd_log_magic[8] = { 'G', 'D', 'R', 'C', 'L', 'O', 'G', '1' };

struct cd_geom {
	uint64_t total, index_off, nslots, data_off, data_size;
};

enum cd_state { CD_QUEUED, CD_WRITING, CD_ONDISK };

struct cd_prec;

struct cd_entry {
	struct cache_node node;	/* key */
	uint32_t len, alen;
	uint64_t pos, seq;	/* valid unless CD_QUEUED */
	uint8_t dsha[32];	/* SHA-256 of the bytes as stored */
	enum cd_state state;
	struct cache_buf *buf;	/* the bytes while CD_QUEUED or CD_WRITING */
	unsigned busy;		/* reads and the data write in flight */
	bool live;		/* in the map and in d->fifo or d->wq */
	bool stalling;		/* evicted for overwrite while busy: counted in d->stalls */
	struct cd_entry *prev, *next;
	struct cd_prec *rec;	/* while CD_WRITING */
};

/* A record waiting to be flushed; kept in seq order. */
struct cd_prec {
	uint64_t seq;
	int state;		/* 0 data in flight, 1 data written, 2 data failed */
	uint8_t rec[CACHE_DISK_REC];
	struct cd_prec *next;
};

enum cd_op_type { OP_READ, OP_WRITE, OP_FLUSH, OP_RESERVE, OP_STOP };

struct cd_op {
	enum cd_op_type type;
	int cqes;		/* completions still to come */
	int err;
	struct cd_entry *e;	/* READ, WRITE */
	uint8_t *buf;		/* READ: the caller's; FLUSH: records; RESERVE: sector */
	uint32_t len;
	cache_disk_cb cb;
	void *arg;
	uint64_t first_seq, value;	/* FLUSH: first seq, count; RESERVE: reserved */
	struct cd_op *next;	/* backlog, done list */
};

struct cache_disk {
	int fd;
	int efd;		/* eventfd the ring signals on completions */
	char *path;
	struct io_uring ring;
	unsigned cq_entries;
	pthread_t thread;
	struct cd_geom g;
	uint8_t uuid[16];

	pthread_mutex_t lock;
	pthread_cond_t idle;	/* broadcast after each completion batch */
	/* Everything below is protected by lock. */
	struct cache_map map;
	struct cd_entry *fifo, *fifo_tail;	/* on disk or being written, seq order */
	struct cd_entry *wq, *wq_tail;		/* queued for their write */
	uint64_t wq_bytes;
	struct cd_prec *prec, *prec_tail;
	struct cd_op *backlog, *backlog_tail;
	unsigned inflight;	/* SQEs submitted and not yet completed */
	unsigned ops;		/* ops started and not yet completed */
	uint64_t head, seq, reserved, log_gen;
	unsigned stalls;
	bool reserving, flushing, wfail, closing, in_reaper;
	int sync_err;
	uint64_t bytes, chunks, dropped;
};

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}
static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}
static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return le32toh(v);
}
static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static int cd_geom_for_data(uint64_t data, struct cd_geom *g)
{
	data = data / CACHE_DISK_BLOCK * CACHE_DISK_BLOCK;
	if (data < CACHE_DISK_MIN_DATA)
		return -EINVAL;
	g->nslots = MAX(256, data / CACHE_DISK_BYTES_PER_SLOT);
	g->index_off = CACHE_DISK_INDEX_OFF;
	g->data_off = g->index_off + round_up(g->nslots * CACHE_DISK_REC, CACHE_DISK_BLOCK);
	g->data_size = data;
	g->total = g->data_off + data;
	return 0;
}

static int cd_geom_for_device(uint64_t size, uint64_t limit, struct cd_geom *g)
{
	uint64_t idx = round_up(MAX(256, size / CACHE_DISK_BYTES_PER_SLOT) * CACHE_DISK_REC, CACHE_DISK_BLOCK);
	if (size < CACHE_DISK_INDEX_OFF + idx)
		return -EINVAL;
	uint64_t data = size - CACHE_DISK_INDEX_OFF - idx;
	if (limit && limit < data)
		data = limit;
	return cd_geom_for_data(data, g);
}

/* ---- on-disk encodings ---- */

static void cd_header_encode(const struct cache_disk *d, uint8_t h[512])
{
	memset(h, 0, 512);
	memcpy(h, cd_magic, 8);
	put_le32(h + 8, CD_VERSION);
	put_le32(h + 12, CACHE_DISK_REC);
	put_le64(h + 16, d->g.total);
	put_le64(h + 24, d->g.index_off);
	put_le64(h + 32, d->g.nslots);
	put_le64(h + 40, d->g.data_off);
	put_le64(h + 48, d->g.data_size);
	memcpy(h + 56, d->uuid, 16);
	sha256_buf(h, 72, h + 72);
}

/* 0 when h is a valid header for geometry g (and copies the UUID), else
 * -EBADMSG with *why set. */
static int cd_header_check(struct cache_disk *d, const uint8_t h[512], const char **why)
{
	uint8_t sum[32];
	if (memcmp(h, cd_magic, 8))
		return *why = "no cache header", -EBADMSG;
	sha256_buf(h, 72, sum);
	if (memcmp(sum, h + 72, 32))
		return *why = "header checksum mismatch", -EBADMSG;
	if (get_le32(h + 8) != CD_VERSION || get_le32(h + 12) != CACHE_DISK_REC)
		return *why = "unknown version", -EBADMSG;
	if (get_le64(h + 16) != d->g.total || get_le64(h + 24) != d->g.index_off ||
	    get_le64(h + 32) != d->g.nslots || get_le64(h + 40) != d->g.data_off ||
	    get_le64(h + 48) != d->g.data_size)
		return *why = "geometry changed", -EBADMSG;
	memcpy(d->uuid, h + 56, 16);
	return 0;
}

static void cd_logstate_encode(const struct cache_disk *d, uint64_t gen, uint64_t reserved, uint8_t s[512])
{
	memset(s, 0, 512);
	memcpy(s, cd_log_magic, 8);
	memcpy(s + 8, d->uuid, 16);
	put_le64(s + 24, gen);
	put_le64(s + 32, reserved);
	sha256_buf(s, 40, s + 40);
}

static bool cd_logstate_decode(const struct cache_disk *d, const uint8_t s[512], uint64_t *gen, uint64_t *reserved)
{
	uint8_t sum[32];
	if (memcmp(s, cd_log_magic, 8) || memcmp(s + 8, d->uuid, 16))
		return false;
	sha256_buf(s, 40, sum);
	if (memcmp(sum, s + 40, 32))
		return false;
	*gen = get_le64(s + 24);
	*reserved = get_le64(s + 32);
	return true;
}

static void cd_rec_encode(const struct cache_disk *d, const struct cd_entry *e, uint8_t r[CACHE_DISK_REC])
{
	uint8_t sum[32];
	memset(r, 0, CACHE_DISK_REC);
	put_le32(r, CD_REC_MAGIC);
	put_le32(r + 4, e->len);
	put_le64(r + 8, e->seq);
	put_le64(r + 16, e->pos);
	memcpy(r + 24, e->node.key, 32);
	memcpy(r + 56, e->dsha, 32);
	memcpy(r + 88, d->uuid, 16);
	sha256_buf(r, 112, sum);
	memcpy(r + 112, sum, 16);
}

struct cd_loaded {
	uint64_t seq, pos;
	uint32_t len;
	uint8_t key[32], dsha[32];
};

/* Decode a record read from slot; false when it is not one of ours or is
 * damaged. */
static bool cd_rec_decode(const struct cache_disk *d, const uint8_t r[CACHE_DISK_REC], uint64_t slot,
			  struct cd_loaded *out)
{
	uint8_t sum[32];
	if (get_le32(r) != CD_REC_MAGIC || memcmp(r + 88, d->uuid, 16))
		return false;
	sha256_buf(r, 112, sum);
	if (memcmp(sum, r + 112, 16))
		return false;
	out->len = get_le32(r + 4);
	out->seq = get_le64(r + 8);
	out->pos = get_le64(r + 16);
	memcpy(out->key, r + 24, 32);
	memcpy(out->dsha, r + 56, 32);
	if (!out->len || out->len > CD_MAX_CHUNK || out->seq % d->g.nslots != slot ||
	    out->pos % CACHE_DISK_BLOCK)
		return false;
	uint64_t off = out->pos % d->g.data_size;
	return off + round_up(out->len, CACHE_DISK_BLOCK) <= d->g.data_size;
}

/* ---- lists and entries (d->lock held) ---- */

static void cd_list_add(struct cd_entry **head, struct cd_entry **tail, struct cd_entry *e)
{
	e->next = NULL;
	e->prev = *tail;
	if (*tail)
		(*tail)->next = e;
	else
		*head = e;
	*tail = e;
}

static void cd_list_del(struct cd_entry **head, struct cd_entry **tail, struct cd_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		*head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		*tail = e->prev;
	e->prev = e->next = NULL;
}

static void cd_entry_free(struct cd_entry *e)
{
	cache_buf_unref(e->buf);
	free(e);
}

/* Take e out of the map and its list. overwrite: its extent is about to be
 * overwritten, so a busy e stalls the writer until released. */
static void cd_evict(struct cache_disk *d, struct cd_entry *e, bool overwrite)
{
	if (!e->live)
		return;
	e->live = false;
	cache_map_del(&d->map, &e->node);
	if (e->state == CD_QUEUED) {
		cd_list_del(&d->wq, &d->wq_tail, e);
		d->wq_bytes -= e->len;
	} else {
		cd_list_del(&d->fifo, &d->fifo_tail, e);
		d->bytes -= e->len;
		d->chunks--;
	}
	if (!e->busy)
		cd_entry_free(e);
	else if (overwrite) {
		e->stalling = true;
		d->stalls++;
	}
}

/* Drop one busy reference; frees an evicted entry. Returns true when a
 * stall was released (the caller should pump). */
static bool cd_release(struct cache_disk *d, struct cd_entry *e)
{
	if (--e->busy || e->live)
		return false;
	bool stalled = e->stalling;
	if (stalled)
		d->stalls--;
	cd_entry_free(e);
	return stalled;
}

/* ---- submission (d->lock held) ---- */

static unsigned cd_op_sqes(const struct cd_op *op)
{
	switch (op->type) {
	case OP_FLUSH:
		return 4;
	case OP_RESERVE:
		return 2;
	default:
		return 1;
	}
}

static void cd_submit(struct cache_disk *d)
{
	if (d->in_reaper)
		return;	/* the reaper submits once at the end of its batch */
	int r = io_uring_submit(&d->ring);
	if (r < 0)
		log_warn_errno(r, "cache %s: io_uring_submit: %m", d->path);
}

static struct io_uring_sqe *cd_sqe(struct cache_disk *d, struct cd_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
	io_uring_sqe_set_data(sqe, op);
	op->cqes++;
	d->inflight++;
	return sqe;
}

/* Prepare op's SQEs, or queue it when the ring is full. */
static void cd_start(struct cache_disk *d, struct cd_op *op, bool from_backlog)
{
	unsigned need = cd_op_sqes(op);
	if (!from_backlog)
		d->ops++;
	if ((d->backlog && !from_backlog) || d->inflight + need > d->cq_entries)
		goto queue;
	if (io_uring_sq_space_left(&d->ring) < need) {
		io_uring_submit(&d->ring);
		if (io_uring_sq_space_left(&d->ring) < need)
			goto queue;
	}
	struct io_uring_sqe *sqe;
	switch (op->type) {
	case OP_READ:
		sqe = cd_sqe(d, op);
		io_uring_prep_read(sqe, d->fd, op->buf, op->len, d->g.data_off + op->e->pos % d->g.data_size);
		break;
	case OP_WRITE:
		sqe = cd_sqe(d, op);
		io_uring_prep_write(sqe, d->fd, op->e->buf->data, op->e->len,
				    d->g.data_off + op->e->pos % d->g.data_size);
		break;
	case OP_FLUSH: {
		/* fdatasync -> records (one write, or two when the slots wrap)
		 * -> fdatasync, linked: the records start only once the data
		 * of every chunk they name is durable. */
		uint64_t n = op->value, slot = op->first_seq % d->g.nslots;
		uint64_t n1 = MIN(n, d->g.nslots - slot);
		sqe = cd_sqe(d, op);
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		sqe->flags |= IOSQE_IO_LINK;
		sqe = cd_sqe(d, op);
		io_uring_prep_write(sqe, d->fd, op->buf, n1 * CACHE_DISK_REC, d->g.index_off + slot * CACHE_DISK_REC);
		sqe->flags |= IOSQE_IO_LINK;
		if (n1 < n) {
			sqe = cd_sqe(d, op);
			io_uring_prep_write(sqe, d->fd, op->buf + n1 * CACHE_DISK_REC, (n - n1) * CACHE_DISK_REC,
					    d->g.index_off);
			sqe->flags |= IOSQE_IO_LINK;
		}
		sqe = cd_sqe(d, op);
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	case OP_RESERVE:
		sqe = cd_sqe(d, op);
		io_uring_prep_write(sqe, d->fd, op->buf, 512, (d->log_gen + 1) % 2 ? CD_LOGSTATE_A : CD_LOGSTATE_B);
		sqe->flags |= IOSQE_IO_LINK;
		sqe = cd_sqe(d, op);
		io_uring_prep_fsync(sqe, d->fd, IORING_FSYNC_DATASYNC);
		break;
	case OP_STOP:
		sqe = cd_sqe(d, op);
		io_uring_prep_nop(sqe);
		break;
	}
	return;
queue:
	op->next = NULL;
	if (from_backlog) {	/* back at the front */
		op->next = d->backlog;
		d->backlog = op;
		if (!d->backlog_tail)
			d->backlog_tail = op;
	} else {
		if (d->backlog_tail)
			d->backlog_tail->next = op;
		else
			d->backlog = op;
		d->backlog_tail = op;
	}
}

static void cd_drain_backlog(struct cache_disk *d)
{
	while (d->backlog) {
		struct cd_op *op = d->backlog;
		d->backlog = op->next;
		if (!d->backlog)
			d->backlog_tail = NULL;
		unsigned before = d->inflight;
		cd_start(d, op, true);
		if (d->inflight == before)
			break;	/* went back to the backlog */
	}
}

static struct cd_op *cd_op_new(enum cd_op_type type)
{
	struct cd_op *op = xcalloc(1, sizeof(*op));
	op->type = type;
	return op;
}

/* Write out every record whose data write has finished, in seq order. */
static void cd_flush(struct cache_disk *d)
{
	if (d->flushing || !d->prec || !d->prec->state)
		return;
	uint64_t n = 0, cap = MIN(CD_FLUSH_MAX, d->g.nslots);
	for (struct cd_prec *p = d->prec; p && p->state && n < cap; p = p->next)
		n++;
	struct cd_op *op = cd_op_new(OP_FLUSH);
	op->buf = xmalloc(n * CACHE_DISK_REC);
	op->first_seq = d->prec->seq;
	op->value = n;
	for (uint64_t i = 0; i < n; i++) {
		struct cd_prec *p = d->prec;
		/* A failed write leaves an invalid record: it also erases the
		 * older record that used this slot. */
		if (p->state == 1)
			memcpy(op->buf + i * CACHE_DISK_REC, p->rec, CACHE_DISK_REC);
		else
			memset(op->buf + i * CACHE_DISK_REC, 0, CACHE_DISK_REC);
		d->prec = p->next;
		free(p);
	}
	if (!d->prec)
		d->prec_tail = NULL;
	d->flushing = true;
	cd_start(d, op, false);
}

static void cd_drop_queue(struct cache_disk *d)
{
	while (d->wq)
		cd_evict(d, d->wq, false);
}

/* Start the writes of queued chunks that have room. */
static void cd_pump(struct cache_disk *d)
{
	const uint64_t ds = d->g.data_size;
	if (d->wfail)
		cd_drop_queue(d);
	while (d->wq && !d->stalls && !d->reserving) {
		struct cd_entry *e = d->wq;
		uint64_t p = d->head, off = p % ds;
		if (off + e->alen > ds)
			p += ds - off;	/* an extent never straddles the ring's end */
		uint64_t end = p + e->alen;
		if (end > d->reserved) {
			/* Declare [.., end + ds/16 - ds) dead before writing there. */
			struct cd_op *op = cd_op_new(OP_RESERVE);
			op->value = end + ds / 16;
			op->buf = xmalloc(512);
			cd_logstate_encode(d, d->log_gen + 1, op->value, op->buf);
			d->reserving = true;
			cd_start(d, op, false);
			return;
		}
		while (d->fifo && (d->fifo->pos + ds < end || d->fifo->seq + d->g.nslots <= d->seq))
			cd_evict(d, d->fifo, d->fifo->pos + ds < end);
		if (d->stalls)
			return;
		cd_list_del(&d->wq, &d->wq_tail, e);
		d->wq_bytes -= e->len;
		e->pos = p;
		e->seq = d->seq++;
		e->state = CD_WRITING;
		e->busy++;
		d->head = end;
		cd_list_add(&d->fifo, &d->fifo_tail, e);
		d->bytes += e->len;
		d->chunks++;
		struct cd_prec *pr = xcalloc(1, sizeof(*pr));
		pr->seq = e->seq;
		if (d->prec_tail)
			d->prec_tail->next = pr;
		else
			d->prec = pr;
		d->prec_tail = pr;
		e->rec = pr;
		struct cd_op *op = cd_op_new(OP_WRITE);
		op->e = e;
		cd_start(d, op, false);
	}
}

/* ---- completion thread ---- */

/* Handle one finished op with d->lock held; returns an op whose callback
 * must run after the lock is dropped, or NULL. */
static struct cd_op *cd_complete_locked(struct cache_disk *d, struct cd_op *op)
{
	char hex[65];
	d->ops--;
	switch (op->type) {
	case OP_READ: {
		struct cd_entry *e = op->e;
		if (op->err && e->live) {
			sha256_hex(e->node.key, hex);
			if (op->err == -EBADMSG)
				log_warn("cache %s: chunk %s failed its check on read; dropped", d->path, hex);
			else
				log_warn_errno(op->err, "cache %s: read chunk %s: %m; dropped", d->path, hex);
			d->dropped++;
			cd_evict(d, e, false);
		}
		if (cd_release(d, e))
			cd_pump(d);
		return op;
	}
	case OP_WRITE: {
		struct cd_entry *e = op->e;
		e->rec->state = op->err ? 2 : 1;
		if (!op->err)
			cd_rec_encode(d, e, e->rec->rec);
		e->rec = NULL;
		e->state = CD_ONDISK;
		cache_buf_unref(e->buf);
		e->buf = NULL;
		if (op->err) {
			sha256_hex(e->node.key, hex);
			log_warn_errno(op->err, "cache %s: write chunk %s: %m; not caching on disk any more",
				       d->path, hex);
			d->wfail = true;
			d->sync_err = -EIO;
			cd_evict(d, e, false);
		}
		cd_release(d, e);
		cd_flush(d);
		cd_pump(d);
		break;
	}
	case OP_FLUSH:
		d->flushing = false;
		if (op->err) {
			log_warn_errno(op->err, "cache %s: write index records: %m", d->path);
			d->sync_err = -EIO;
		}
		cd_flush(d);
		break;
	case OP_RESERVE:
		d->reserving = false;
		if (op->err) {
			log_warn_errno(op->err, "cache %s: write log state: %m; not caching on disk any more", d->path);
			d->wfail = true;
			d->sync_err = -EIO;
		} else {
			d->log_gen++;
			d->reserved = op->value;
		}
		cd_pump(d);
		break;
	case OP_STOP:
		break;
	}
	free(op->type == OP_READ ? NULL : op->buf);
	free(op);
	return NULL;
}

static void *cd_thread(void *p)
{
	struct cache_disk *d = p;
	bool stop = false;
	while (!stop) {
		/* Sleep in read(2) of an eventfd the ring signals after posting
		 * completions, rather than inside io_uring_enter: the same
		 * wakeups, but tools like valgrind know read() blocks. */
		uint64_t v;
		ssize_t r = read(d->efd, &v, sizeof(v));
		if (r < 0 && errno != EINTR && errno != EAGAIN) {
			log_error_errno(-errno, "cache %s: wait for completions: %m", d->path);
			break;
		}
		struct io_uring_cqe *cqe;
		/* The lock is not needed for the CQ, but taking it orders this
		 * thread after the submitter's writes to each op in a way that
		 * race checkers can see (they do not see through the ring). */
		struct cd_op *done = NULL;
		unsigned head, n = 0;
		pthread_mutex_lock(&d->lock);
		io_uring_for_each_cqe(&d->ring, head, cqe) {
			struct cd_op *op = io_uring_cqe_get_data(cqe);
			n++;
			if (cqe->res < 0 && !op->err)
				op->err = cqe->res;
			else if (cqe->res >= 0 && op->type == OP_READ && (unsigned)cqe->res != op->len && !op->err)
				op->err = -EIO;	/* short read: the file was cut */
			if (--op->cqes)
				continue;
			op->next = done;
			done = op;
		}
		io_uring_cq_advance(&d->ring, n);
		d->inflight -= n;
		pthread_mutex_unlock(&d->lock);

		/* Check what reads brought in before taking the lock. */
		for (struct cd_op *op = done; op; op = op->next)
			if (op->type == OP_READ && !op->err) {
				uint8_t sum[32];
				VALGRIND_MAKE_MEM_DEFINED(op->buf, op->len);	/* the kernel wrote it */
				sha256_buf(op->buf, op->len, sum);
				if (memcmp(sum, op->e->dsha, 32))
					op->err = -EBADMSG;
			}

		struct cd_op *cbs = NULL;
		pthread_mutex_lock(&d->lock);
		d->in_reaper = true;
		while (done) {
			struct cd_op *op = done;
			done = op->next;
			if (op->type == OP_STOP)
				stop = true;
			struct cd_op *cb = cd_complete_locked(d, op);
			if (cb) {
				cb->next = cbs;
				cbs = cb;
			}
		}
		cd_drain_backlog(d);
		d->in_reaper = false;
		cd_submit(d);
		pthread_cond_broadcast(&d->idle);
		pthread_mutex_unlock(&d->lock);

		while (cbs) {
			struct cd_op *op = cbs;
			cbs = op->next;
			op->cb(op->arg, op->err);
			free(op);
		}
	}
	return NULL;
}

/* ---- open: header, log state, index ---- */

static int cd_pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			memset(p, 0, n);	/* past the end reads as zeros */
			return 0;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int cd_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const uint8_t *p = buf;
	while (n) {
		ssize_t r = pwrite(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* Make an empty store: new UUID, header, no log state, synced. Old records
 * carry the old UUID and are ignored from now on. */
static int cd_init(struct cache_disk *d)
{
	uint8_t blk[CACHE_DISK_INDEX_OFF] = { 0 };	/* header, empty log states */
	if (getrandom(d->uuid, sizeof(d->uuid), 0) != (ssize_t)sizeof(d->uuid))
		return log_error_errno(-errno, "cache %s: getrandom: %m", d->path);
	d->uuid[6] = (d->uuid[6] & 0x0f) | 0x40;
	d->uuid[8] = (d->uuid[8] & 0x3f) | 0x80;
	cd_header_encode(d, blk);
	int r = cd_pwrite_all(d->fd, blk, sizeof(blk), 0);
	if (r >= 0 && fdatasync(d->fd) < 0)
		r = -errno;
	if (r < 0)
		return log_error_errno(r, "cache %s: write header: %m", d->path);
	d->head = d->seq = d->reserved = d->log_gen = 0;
	return 0;
}

static int cd_loaded_cmp_desc(const void *a, const void *b)
{
	const struct cd_loaded *x = a, *y = b;
	return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

static int cd_load(struct cache_disk *d)
{
	uint8_t s[512];
	uint64_t gen, res;
	d->log_gen = d->reserved = 0;
	for (unsigned i = 0; i < 2; i++) {
		int r = cd_pread_all(d->fd, s, sizeof(s), i ? CD_LOGSTATE_B : CD_LOGSTATE_A);
		if (r < 0)
			return r;
		if (cd_logstate_decode(d, s, &gen, &res) && gen >= d->log_gen && (gen % 2 == (i ? 0 : 1))) {
			d->log_gen = gen;
			d->reserved = res;
		}
	}

	/* Read the index ring in pieces; keep what decodes. */
	const uint64_t piece = 8192;	/* slots per read: 1 MiB */
	uint8_t *buf = xmalloc(piece * CACHE_DISK_REC);
	size_t n = 0, cap = 0, bad = 0;
	struct cd_loaded *v = NULL;
	uint64_t maxseq = 0;
	bool any = false;
	for (uint64_t slot = 0; slot < d->g.nslots; slot += piece) {
		uint64_t k = MIN(piece, d->g.nslots - slot);
		int r = cd_pread_all(d->fd, buf, k * CACHE_DISK_REC, d->g.index_off + slot * CACHE_DISK_REC);
		if (r < 0) {
			free(buf);
			free(v);
			return r;
		}
		for (uint64_t i = 0; i < k; i++) {
			const uint8_t *rec = buf + i * CACHE_DISK_REC;
			struct cd_loaded l;
			if (!cd_rec_decode(d, rec, slot + i, &l)) {
				if (get_le32(rec) == CD_REC_MAGIC)
					bad++;
				continue;
			}
			if (!any || l.seq > maxseq)
				maxseq = l.seq;
			any = true;
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n++] = l;
		}
	}
	free(buf);

	/* Newest first: a record counts when its extent lies inside the live
	 * window [reserved - data_size, reserved) and below every newer
	 * extent (log positions grow with seq), and its key is not newer. */
	if (n)
		qsort(v, n, sizeof(*v), cd_loaded_cmp_desc);
	const uint64_t ds = d->g.data_size;
	uint64_t lowest = UINT64_MAX, maxend = 0;
	size_t kept = 0, dropped = 0;
	struct cd_entry *newest_first = NULL;
	for (size_t i = 0; i < n; i++) {
		struct cd_loaded *l = &v[i];
		uint64_t alen = round_up(l->len, CACHE_DISK_BLOCK);
		if (l->pos + ds < d->reserved || l->pos + alen > d->reserved || l->pos + alen > lowest ||
		    cache_map_find(&d->map, l->key)) {
			dropped++;
			continue;
		}
		lowest = l->pos;
		maxend = MAX(maxend, l->pos + alen);
		struct cd_entry *e = xcalloc(1, sizeof(*e));
		memcpy(e->node.key, l->key, 32);
		memcpy(e->dsha, l->dsha, 32);
		e->len = l->len;
		e->alen = (uint32_t)alen;
		e->pos = l->pos;
		e->seq = l->seq;
		e->state = CD_ONDISK;
		e->live = true;
		cache_map_add(&d->map, &e->node);
		e->next = newest_first;	/* reversed below into seq order */
		newest_first = e;
		d->bytes += e->len;
		d->chunks++;
		kept++;
	}
	free(v);
	/* newest_first was built by prepending newest-first records, so it
	 * is already oldest first. */
	for (struct cd_entry *e = newest_first, *nx; e; e = nx) {
		nx = e->next;
		cd_list_add(&d->fifo, &d->fifo_tail, e);
	}
	d->head = kept ? maxend : d->reserved;
	d->seq = any ? maxseq + 1 : 0;
	if (bad || dropped)
		log_info("cache %s: %zu chunks; ignored %zu damaged and %zu stale records", d->path, kept, bad, dropped);
	return 0;
}

static int cd_open_device(struct cache_disk *d, uint64_t limit)
{
	struct stat st;
	int r;
	d->fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->fd < 0)
		return log_error_errno(-errno, "cache %s: open: %m", d->path);
	if (fstat(d->fd, &st) < 0)
		return log_error_errno(-errno, "cache %s: stat: %m", d->path);
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(d->fd, 0, SEEK_END);
		if (end < 0)
			return log_error_errno(-errno, "cache %s: size: %m", d->path);
		r = cd_geom_for_device((uint64_t)end, limit, &d->g);
		if (r < 0)
			return log_error_errno(r, "cache %s: device of %lld bytes is too small", d->path,
					       (long long)end);
	} else if (S_ISREG(st.st_mode)) {
		r = cd_geom_for_data(limit ? limit : CACHE_DISK_DEFAULT_LIMIT, &d->g);
		if (r < 0)
			return log_error_errno(r, "cache %s: limit %llu is below %u bytes", d->path,
					       (unsigned long long)limit, CACHE_DISK_MIN_DATA);
		if ((uint64_t)st.st_size != d->g.total && ftruncate(d->fd, (off_t)d->g.total) < 0)
			return log_error_errno(-errno, "cache %s: resize to %llu bytes: %m", d->path,
					       (unsigned long long)d->g.total);
	} else
		return log_error_errno(-EINVAL, "cache %s: not a file or block device", d->path);

	uint8_t h[512];
	const char *why = NULL;
	r = cd_pread_all(d->fd, h, sizeof(h), 0);
	if (r < 0)
		return log_error_errno(r, "cache %s: read header: %m", d->path);
	r = cd_header_check(d, h, &why);
	if (r < 0) {
		bool blank = true;
		for (size_t i = 0; i < sizeof(h); i++)
			blank &= !h[i];
		if (!blank)
			log_warn("cache %s: %s; starting with an empty cache", d->path, why);
		return cd_init(d);
	}
	r = cd_load(d);
	if (r < 0) {
		log_warn_errno(r, "cache %s: read index: %m; starting with an empty cache", d->path);
		return cd_init(d);
	}
	return 0;
}

static void cd_free(struct cache_disk *d)
{
	for (struct cd_entry *e = d->fifo, *nx; e; e = nx) {
		nx = e->next;
		cd_entry_free(e);
	}
	for (struct cd_entry *e = d->wq, *nx; e; e = nx) {
		nx = e->next;
		cd_entry_free(e);
	}
	cache_map_free(&d->map);
	if (d->fd >= 0)
		close(d->fd);
	if (d->efd >= 0)
		close(d->efd);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->idle);
	free(d->path);
	free(d);
}

int cache_disk_open(const char *path, uint64_t limit, unsigned queue_depth, struct cache_disk **out)
{
	struct cache_disk *d = xcalloc(1, sizeof(*d));
	d->fd = d->efd = -1;
	d->path = xstrdup(path);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->idle, NULL);
	int r = cd_open_device(d, limit);
	if (r < 0) {
		cd_free(d);
		return r;
	}
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE };
	queue_depth = queue_depth ? MIN(queue_depth, 4096u) : 64;
	p.cq_entries = queue_depth * 4;
	r = io_uring_queue_init_params(queue_depth, &d->ring, &p);
	if (r < 0) {
		log_error_errno(r, "cache %s: io_uring_queue_init: %m", path);
		cd_free(d);
		return r;
	}
	d->cq_entries = p.cq_entries;
	d->efd = eventfd(0, EFD_CLOEXEC);
	r = d->efd < 0 ? -errno : io_uring_register_eventfd(&d->ring, d->efd);
	if (r < 0) {
		log_error_errno(r, "cache %s: completion eventfd: %m", path);
		io_uring_queue_exit(&d->ring);
		cd_free(d);
		return r;
	}
	r = -pthread_create(&d->thread, NULL, cd_thread, d);
	if (r < 0) {
		log_error_errno(r, "cache %s: start completion thread: %m", path);
		io_uring_queue_exit(&d->ring);
		cd_free(d);
		return r;
	}
	*out = d;
	return 0;
}

int cache_disk_read(struct cache_disk *d, const uint8_t key[32], uint8_t *buf, uint32_t len,
		    cache_disk_cb cb, void *arg)
{
	pthread_mutex_lock(&d->lock);
	struct cache_node *x = cache_map_find(&d->map, key);
	struct cd_entry *e = x ? (struct cd_entry *)x : NULL;
	if (!e || e->len != len) {
		pthread_mutex_unlock(&d->lock);
		return CACHE_DISK_ABSENT;
	}
	if (e->buf) {
		struct cache_buf *b = cache_buf_ref(e->buf);
		pthread_mutex_unlock(&d->lock);
		memcpy(buf, b->data, len);
		cache_buf_unref(b);
		return CACHE_DISK_COPIED;
	}
	e->busy++;
	struct cd_op *op = cd_op_new(OP_READ);
	op->e = e;
	op->buf = buf;
	op->len = len;
	op->cb = cb;
	op->arg = arg;
	cd_start(d, op, false);
	cd_submit(d);
	pthread_mutex_unlock(&d->lock);
	return CACHE_DISK_STARTED;
}

void cache_disk_insert(struct cache_disk *d, const uint8_t key[32], struct cache_buf *b)
{
	if (!b->len || b->len > CD_MAX_CHUNK || b->len > d->g.data_size / 4)
		return;
	uint8_t sum[32];
	sha256_buf(b->data, b->len, sum);
	pthread_mutex_lock(&d->lock);
	if (d->wfail || d->closing || d->wq_bytes + b->len > MIN(CD_QUEUE_CAP, d->g.data_size / 2)) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	struct cache_node *x = cache_map_find(&d->map, key);
	if (x)
		cd_evict(d, (struct cd_entry *)x, false);
	struct cd_entry *e = xcalloc(1, sizeof(*e));
	memcpy(e->node.key, key, 32);
	memcpy(e->dsha, sum, 32);
	e->len = b->len;
	e->alen = (uint32_t)round_up(b->len, CACHE_DISK_BLOCK);
	e->state = CD_QUEUED;
	e->buf = cache_buf_ref(b);
	e->live = true;
	cache_map_add(&d->map, &e->node);
	cd_list_add(&d->wq, &d->wq_tail, e);
	d->wq_bytes += e->len;
	cd_pump(d);
	cd_submit(d);
	pthread_mutex_unlock(&d->lock);
}

/* Nothing left to write or sync (queued chunks are dropped once writes
 * failed). d->lock held. */
static bool cd_quiet(struct cache_disk *d)
{
	if (d->wfail)
		cd_drop_queue(d);
	return !d->wq && !d->prec && !d->flushing && !d->reserving;
}

int cache_disk_sync(struct cache_disk *d)
{
	pthread_mutex_lock(&d->lock);
	while (!cd_quiet(d))
		pthread_cond_wait(&d->idle, &d->lock);
	int r = d->sync_err;
	pthread_mutex_unlock(&d->lock);
	return r;
}

void cache_disk_stats(struct cache_disk *d, struct cache_disk_stats *st)
{
	pthread_mutex_lock(&d->lock);
	st->bytes = d->bytes;
	st->chunks = d->chunks;
	st->limit = d->g.data_size;
	st->dropped = d->dropped;
	pthread_mutex_unlock(&d->lock);
}

void cache_disk_close(struct cache_disk *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	while (!cd_quiet(d) || d->ops)
		pthread_cond_wait(&d->idle, &d->lock);
	d->closing = true;
	cd_start(d, cd_op_new(OP_STOP), false);
	cd_submit(d);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	io_uring_queue_exit(&d->ring);
	cd_free(d);
}
