/* SPDX-License-Identifier: MIT */
/*
 * The HTTP engine under the Drive and S3 backends: one libcurl easy handle
 * per store (so connections and TLS sessions are reused, HTTP/2 where the
 * server offers it), TLS verification always on, connect and stall timeouts,
 * request bodies from memory or streamed from a file, response bodies to a
 * store_sink (2xx) or a capped buffer (everything else, for error JSON), and
 * the retry policy: truncated exponential backoff with full jitter that
 * honours Retry-After.
 */
#ifndef GDROOT_HTTP_H
#define GDROOT_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>

#include "store.h"
#include "../util/buf.h"

struct http {
	CURL *curl;
	const struct store_opts *opts;	/* borrowed from the store */
	struct store_stats *stats;	/* borrowed from the store */
	struct store_progress *progress; /* borrowed; may have fn NULL */
	char errbuf[CURL_ERROR_SIZE];
};

struct http_req {
	const char *method;		/* GET HEAD PUT POST PATCH DELETE */
	const char *url;		/* full URL; never holds a secret */
	struct curl_slist *headers;	/* owned by the caller */
	const void *body;		/* request body in memory, or */
	int body_fd;			/* ... body from this fd (-1: none) */
	uint64_t body_off, body_len;	/* range of body_fd (or len of body) */
	struct store_sink *sink;	/* receives a 2xx body; NULL: resp->body */
	const char *aws_sigv4;		/* CURLOPT_AWS_SIGV4 value, or NULL */
	const char *userpwd;		/* for aws_sigv4: "KEY:SECRET" */
	uint64_t progress_base, progress_total; /* for the progress callback */
};

struct http_resp {
	long status;			/* 0 when no response arrived */
	struct buf body;		/* non-sink body, capped at 8 MiB */
	char *location;			/* Location header, owned */
	char *range;			/* Range header (resumable uploads) */
	char *content_range;
	char *etag, *last_modified;
	int64_t content_length;		/* -1 if absent */
	long retry_after;		/* seconds, -1 if absent */
	uint64_t sunk;			/* body bytes given to the sink */
	CURLcode curl_code;
};

/* One transfer on a curl easy handle, for http_do and the multi engine
 * (http-multi.c): setup configures curl for req (after curl_easy_reset)
 * and empties resp; finish, after the transfer ended with cc, completes
 * resp and the counters and returns what http_do returns. */
struct http_xfer {
	CURL *curl;
	const struct http_req *req;
	struct http_resp *resp;
	struct store_progress *progress;	/* may be NULL */
	struct store_stats *stats;		/* may be NULL */
	char *errbuf;				/* CURL_ERROR_SIZE bytes */
	struct curl_slist *hdrs;		/* private */
	uint64_t upload_pos;			/* private */
	int sink_err;				/* private */
};
void http_xfer_setup(struct http_xfer *x, const struct store_opts *o);
int http_xfer_finish(struct http_xfer *x, CURLcode cc);

/* Set up h for a store; 0 or -errno. */
int http_init(struct http *h, const struct store_opts *opts,
	      struct store_stats *stats, struct store_progress *progress);
void http_free(struct http *h);

/* Run one request. Returns 0 when a complete HTTP response arrived (any
 * status: look at resp->status), or -errno when the transfer failed
 * (resp->curl_code says how; resp->sunk says how much of a body arrived) or
 * the sink refused bytes (the sink's error). resp is reset first; free it
 * with http_resp_free. */
int http_do(struct http *h, const struct http_req *req, struct http_resp *resp);
void http_resp_free(struct http_resp *resp);

/* Map a failed transfer to -errno. */
int http_curl_errno(CURLcode c);
/* Whether a transport failure is worth retrying (resets, timeouts, refused
 * connections: yes; TLS verification, bad URL: no). */
bool http_curl_retryable(CURLcode c);
/* 408, 429, 500, 502, 503, 504. */
bool http_status_retryable(long status);
/* A short human description of a failed transfer, e.g. "Connection reset
 * by peer" or curl's error text; valid until the next http_do. */
const char *http_strerror(struct http *h, const struct http_resp *resp);

struct retry {
	unsigned attempt;		/* retries done so far */
	const struct store_opts *opts;
	struct store_stats *stats;
};
#define RETRY_INIT(o, s) ((struct retry){ .opts = (o), .stats = (s) })

/* After a retryable failure of what (for the log): the wait before the
 * next attempt in *wait_ms (at least retry_after seconds when >= 0), or
 * false when the retry budget is spent. Does not sleep. */
bool retry_next(struct retry *r, long retry_after, const char *what, uint64_t *wait_ms);
/* Called after a retryable failure of what (for the log). Sleeps the
 * backoff, at least retry_after seconds when >= 0, and returns true; or
 * returns false when the retry budget is spent. */
bool retry_wait(struct retry *r, long retry_after, const char *what);
/* The backoff before retry number attempt (0-based), in ms, before jitter. */
uint64_t retry_backoff_ms(const struct store_opts *o, unsigned attempt);


/* A ranged GET that survives resets, truncation and retryable errors,
 * resuming from the first byte not yet delivered, so the sink sees each
 * byte once. The backend supplies: */
struct http_ranged {
	/* Fill req->url and req->headers for one attempt (called before each,
	 * so a token can be refreshed); 0 or -errno. */
	int (*prep)(void *ud, struct http_req *req);
	/* Undo prep (free what it allocated). */
	void (*unprep)(void *ud, struct http_req *req);
	/* Judge a response that is not 200, 206 or 416: return -errno, and set
	 * *retry when another attempt may succeed. */
	int (*fail)(void *ud, const struct http_resp *resp, bool *retry);
	void *ud;
	const char *what;	/* for log lines: "drive get packs/x" */
};

/* Returns the count delivered (short only at the end of the object) or
 * -errno (logged). */
int64_t http_get_range(struct http *h, const struct http_ranged *g, uint64_t off,
		       uint64_t len, struct store_sink *sink);

/* The state of one ranged GET across attempts, for callers that run the
 * attempts themselves (http_get_range, the multi engine). */
struct http_range {
	struct store_sink sink;		/* what the transfer writes to: first */
	struct http_ranged g;
	struct store_sink *next;	/* the caller's sink */
	CURL *curl;			/* of the current attempt */
	struct http_resp *rs;		/* of the current attempt */
	bool started;
	uint64_t pos, want, end, off, len, before;
	struct retry rt;
	char range[80];
};
void http_range_init(struct http_range *r, const struct http_ranged *g, const struct store_opts *o,
		     struct store_stats *stats, uint64_t off, uint64_t len, struct store_sink *next);
/* Fill q for the next attempt on curl, answered into rs. 0 or -errno. */
int http_range_begin(struct http_range *r, struct http_req *q, CURL *curl, struct http_resp *rs);
/* Judge an attempt that returned res (http_do's or http_xfer_finish's
 * result; errbuf is curl's error text): 0 complete, 1 try again after
 * *wait_ms, or -errno (logged). Calls g->unprep. */
int http_range_end(struct http_range *r, struct http_req *q, int res, const char *errbuf, uint64_t *wait_ms);
/* Bytes delivered so far. */
static inline int64_t http_range_count(const struct http_range *r) { return (int64_t)(r->want - r->off); }

#endif
