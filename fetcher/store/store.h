/* SPDX-License-Identifier: MIT */
/*
 * The store client: one small interface to the remote object stores that
 * hold gdroot images (Google Drive, S3, a local folder). Objects are named
 * by keys like "packs/3f/3f9a...pack": components of [A-Za-z0-9._-] joined
 * by '/', none empty, none starting with '.'. Every backend sits behind
 * struct store_ops; adding a backend is adding one store-NAME.c file.
 *
 * A struct store is not thread-safe: open one per thread. All functions
 * return 0 (or a count) on success and -errno on failure, having logged the
 * failure with the object named (except -ENOENT from get and stat, which
 * the caller may expect and reports itself):
 *	-ENOENT        no such object (or folder, bucket)
 *	-EACCES        credentials refused (after one token refresh)
 *	-EKEYREJECTED  TLS certificate verification failed
 *	-ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH, -EIO  the store kept failing
 *	               after every retry
 *	-EPROTO        the store answered something that breaks its protocol
 *	-EINVAL        bad URL, key or option
 */
#ifndef GDROOT_STORE_H
#define GDROOT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STORE_KEY_MAX 512

/* Settings shared by every backend. Strings are owned by the struct (see
 * store_opts_set/store_opts_free). Zero values mean "default". */
struct store_opts {
	char *ca_file;		  /* CA bundle for TLS; NULL: system default */
	void *ca_blob;		  /* the CA bundle in memory (a daemon that must
				     outlive its root sets it); overrides ca_file;
				     owned, not an option name */
	size_t ca_blob_len;
	unsigned connect_timeout; /* seconds; default 15 */
	unsigned io_timeout;	  /* abort a transfer stalled this many s; 60 */
	unsigned retries;	  /* attempts after the first; default 10 */
	bool retries_set;	  /* retries was given (0 is a value) */
	unsigned retry_base_ms;	  /* first backoff; default 500 */
	unsigned retry_cap_ms;	  /* backoff cap; default 32000 */
	uint64_t upload_chunk;	  /* resumable upload chunk; default 16 MiB */
	unsigned settle_ms;	  /* store_put_new: wait before the check that
				     decides a race (Drive, S3); default 1000 */
	bool settle_set;
	/* Google Drive and OAuth 2.0 */
	char *credentials;	  /* token file from `gdroot auth`, or a
				     service-account JSON key */
	char *drive_api;	  /* default https://www.googleapis.com */
	char *oauth_token_url;	  /* default https://oauth2.googleapis.com/token */
	char *oauth_device_url;	  /* default .../device/code */
	char *oauth_scope;	  /* default https://www.googleapis.com/auth/drive */
	char *client_id, *client_secret; /* for `gdroot auth` */
	/* S3 */
	char *endpoint;		  /* default https://s3.REGION.amazonaws.com */
	char *region;		  /* default us-east-1 */
	char *style;		  /* "path" or "virtual"; default: virtual on
				     AWS, path on a custom endpoint */
	char *access_key, *secret_key, *session_token; /* default: AWS_* env */
};

/* Set one option by name, as written in gdroot.conf or a store URL query.
 * Returns 0, -ENOENT for an unknown name, -EINVAL for a bad value (logged). */
int store_opts_set(struct store_opts *o, const char *name, const char *value);
/* Load "name = value" lines from a config file; lines whose name is not a
 * store option are passed to other (may be NULL: then they are an error).
 * Returns 0 or -errno, having logged file and line. */
int store_opts_load(struct store_opts *o, const char *path,
		    int (*other)(void *ud, const char *name, const char *value),
		    void *ud);
/* Copy (deep). */
void store_opts_copy(struct store_opts *dst, const struct store_opts *src);
void store_opts_free(struct store_opts *o);

struct store_obj {
	char key[STORE_KEY_MAX];
	uint64_t size;
	int64_t mtime;		/* seconds since the epoch; -1 if unknown */
	char md5[33];		/* lowercase hex; "" if the store gives none */
};

/* Where the bytes of a get go, in order. write returns 0 or -errno; an error
 * aborts the transfer and is returned by store_get. */
struct store_sink {
	int (*write)(struct store_sink *sink, const void *p, size_t n);
};

/* What a put uploads: either n bytes of memory, or n bytes of fd from
 * offset 0 (read with pread, so it may be re-read on retry). */
struct store_src {
	const void *mem;
	int fd;
	uint64_t size;
};

/* Progress of a long transfer: done and total bytes of the object. */
struct store_progress {
	void (*fn)(void *ud, uint64_t done, uint64_t total);
	void *ud;
};

/* Counters, for status output and tests. */
struct store_stats {
	uint64_t requests;	/* HTTP requests sent (or file operations) */
	uint64_t retries;	/* requests repeated after a failure */
	uint64_t bytes_in;	/* object bytes received */
	uint64_t bytes_out;	/* request body bytes sent, retries included */
	uint64_t token_refreshes;
};

struct store;
struct http_ranged;
typedef int (*store_list_fn)(void *ud, const struct store_obj *obj);

struct store_ops {
	const char *scheme;	/* "gdrive", "s3", "file" */
	int (*open)(struct store *st, const char *location);
	int64_t (*get)(struct store *st, const char *key, uint64_t off,
		       uint64_t len, struct store_sink *sink);
	int (*put)(struct store *st, const char *key, const struct store_src *src);
	/* Create key only if no object holds it: see store_put_new. */
	int (*put_new)(struct store *st, const char *key, const struct store_src *src);
	int (*list)(struct store *st, const char *prefix, store_list_fn fn, void *ud);
	int (*del)(struct store *st, const char *key);
	int (*stat)(struct store *st, const char *key, struct store_obj *obj);
	void (*close)(struct store *st);
	/* For many reads in flight (http-multi.h): describe a ranged GET of
	 * key in *g, whose ud (*ctx) lives until ranged_free(*ctx). NULL for
	 * backends that are not HTTP. Called from the one thread that uses
	 * the store. */
	int (*ranged)(struct store *st, const char *key, struct http_ranged *g, void **ctx);
	void (*ranged_free)(void *ctx);
};

struct store {
	const struct store_ops *ops;
	struct store_opts opts;
	char *url;		/* as given, without query: safe to log */
	void *priv;		/* backend state */
	struct store_stats stats;
	struct store_progress progress;
};

/* Open the store named by url ("gdrive://FOLDER_ID", "s3://BUCKET/PREFIX",
 * "file:///path"), with opts (copied; may be NULL) overridden by the URL's
 * query parameters. On success *out is owned by the caller: store_close it.
 * Contacts the store to check the location exists. */
int store_open(const char *url, const struct store_opts *opts, struct store **out);
void store_close(struct store *st);

/* Check a key's syntax. Returns 0 or -EINVAL (not logged). */
int store_key_check(const char *key);

/* Read bytes [off, off+len) of key into sink (len UINT64_MAX: to the end).
 * Returns the count delivered, less than len only at the end of the object
 * (0 when off is at or past it). Interrupted transfers resume where they
 * broke off, so the sink sees every byte exactly once. */
int64_t store_get(struct store *st, const char *key, uint64_t off, uint64_t len,
		  struct store_sink *sink);
/* store_get into memory: up to len bytes at off into buf. Count or -errno. */
int64_t store_pread(struct store *st, const char *key, void *buf, size_t len, uint64_t off);
/* Create or replace key with src's bytes. Large uploads stream and resume
 * from the offset the store confirms. */
int store_put(struct store *st, const char *key, const struct store_src *src);
/* Create key with src's bytes only if no object holds it yet: 0 when this
 * call made the object, -EEXIST (not logged) when another one holds the
 * key, so that of two writers racing for one key exactly one gets 0. How
 * each backend decides (docs/commit.md):
 *	file	link(2) of a finished temporary file: atomic.
 *	gdrive	Drive has no conditional create. Create a file with that name
 *		(duplicates are allowed), wait settle_ms, list the name: the
 *		oldest file (createdTime, then id) is the object, as for every
 *		read; if it is not ours, delete ours and return -EEXIST.
 *	s3	PUT with If-None-Match: * (a 412 means -EEXIST), then after
 *		settle_ms check the ETag is still ours. Atomic on servers that
 *		honour conditional writes (AWS S3, MinIO, Ceph, R2); on others
 *		the check catches most, but not all, overwrites. */
int store_put_new(struct store *st, const char *key, const struct store_src *src);
/* settle_ms, or its default. */
unsigned store_settle_ms(const struct store *st);
/* Call fn for every object whose key starts with prefix ("" for all), in no
 * particular order, each key once. fn returning non-zero stops the walk and
 * that value is returned. */
int store_list(struct store *st, const char *prefix, store_list_fn fn, void *ud);
/* Delete key. Deleting a missing key succeeds (deletes are idempotent). */
int store_del(struct store *st, const char *key);
/* Size and times of key, or -ENOENT. */
int store_stat(struct store *st, const char *key, struct store_obj *obj);

/* A ranged-GET description of key for the multi engine (see the ops).
 * Returns 0, -EOPNOTSUPP for a backend that is not HTTP, or -errno
 * (-ENOENT: no such object). Free with store_ranged_free. */
int store_ranged(struct store *st, const char *key, struct http_ranged *g, void **ctx);
void store_ranged_free(struct store *st, void *ctx);

/* Backends, for store.c's table. */
extern const struct store_ops store_file_ops;
extern const struct store_ops store_gdrive_ops;
extern const struct store_ops store_s3_ops;

#endif
