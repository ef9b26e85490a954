/* SPDX-License-Identifier: MIT */
/*
 * Many ranged GETs in flight on one libcurl multi handle (connections are
 * shared, HTTP/2 streams multiplexed where the server offers them), each
 * with the same resume-and-retry rules as http_get_range, for the
 * fetcher's network stage. Single-threaded: every call but
 * http_multi_wakeup must come from the thread that runs http_multi_poll,
 * and done callbacks run inside http_multi_poll.
 */
#ifndef GDROOT_HTTP_MULTI_H
#define GDROOT_HTTP_MULTI_H

#include "http.h"

struct http_multi;

/* result: bytes delivered (short only at the object's end), or -errno
 * (-ETIMEDOUT when a retry would start after the deadline). */
typedef void (*http_multi_done_fn)(void *ud, int64_t result);

/* opts and stats are borrowed and must outlive the engine. NULL on
 * failure (logged). */
struct http_multi *http_multi_new(const struct store_opts *opts, struct store_stats *stats);
/* Ends every transfer, calling its done with -ECANCELED, and frees. */
void http_multi_free(struct http_multi *m);

/* Start a ranged GET of [off, off+len) described by g (copied; g->ud must
 * live until done) into sink. deadline_ns (CLOCK_MONOTONIC) 0 means retry
 * for ever. done is called exactly once, from http_multi_poll (or from
 * here, for a request that fails to start). */
void http_multi_add(struct http_multi *m, const struct http_ranged *g, uint64_t off, uint64_t len,
		    struct store_sink *sink, uint64_t deadline_ns, http_multi_done_fn done, void *ud);

/* Wait for network activity, a due retry or a wakeup, at most timeout_ms,
 * and process what happened. Returns the number of transfers not done. */
unsigned http_multi_poll(struct http_multi *m, int timeout_ms);
/* Make a waiting http_multi_poll return. Any thread. */
void http_multi_wakeup(struct http_multi *m);

#endif
