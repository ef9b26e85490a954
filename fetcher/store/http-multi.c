// SPDX-License-Identifier: MIT
/*
 * Implementation of http-multi.h. Each transfer owns an easy handle and an
 * http_range; an attempt that should be retried waits in a due-time list
 * until its backoff has passed, then starts again from the first byte not
 * yet delivered.
 */
#include "http-multi.h"

#include <time.h>

#include "../util/log.h"
#include "../util/util.h"

struct hm_xfer {
	struct hm_xfer *next;	/* in the waiting list */
	struct hm_xfer *anext, *aprev; /* in the list of all transfers */
	struct http_multi *m;
	CURL *curl;
	struct http_range range;
	struct http_req req;
	struct http_resp resp;
	struct http_xfer x;
	char errbuf[CURL_ERROR_SIZE];
	uint64_t due_ns, deadline_ns;
	http_multi_done_fn done;
	void *ud;
};

struct http_multi {
	CURLM *multi;
	const struct store_opts *opts;
	struct store_stats *stats;
	struct hm_xfer *waiting;	/* retries not yet due */
	struct hm_xfer *all;		/* every transfer not done */
	unsigned running;		/* on the multi handle */
	unsigned nwaiting;
};

struct http_multi *http_multi_new(const struct store_opts *opts, struct store_stats *stats)
{
	static int global_done;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_error("libcurl initialisation failed");
			return NULL;
		}
		global_done = 1;
	}
	struct http_multi *m = xcalloc(1, sizeof(*m));
	m->multi = curl_multi_init();
	if (!m->multi) {
		free(m);
		log_error("curl_multi_init failed");
		return NULL;
	}
	curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
	m->opts = opts;
	m->stats = stats;
	return m;
}

static void xfer_free(struct hm_xfer *x)
{
	struct http_multi *m = x->m;
	if (x->aprev)
		x->aprev->anext = x->anext;
	else if (m->all == x)
		m->all = x->anext;
	if (x->anext)
		x->anext->aprev = x->aprev;
	http_resp_free(&x->resp);
	if (x->curl)
		curl_easy_cleanup(x->curl);
	free(x);
}

static void xfer_finish(struct hm_xfer *x, int64_t result)
{
	http_multi_done_fn done = x->done;
	void *ud = x->ud;
	xfer_free(x);
	done(ud, result);
}

static void xfer_start(struct http_multi *m, struct hm_xfer *x)
{
	int e = http_range_begin(&x->range, &x->req, x->curl, &x->resp);
	if (e < 0) {
		xfer_finish(x, e);
		return;
	}
	x->x = (struct http_xfer){ .curl = x->curl, .req = &x->req, .resp = &x->resp, .stats = m->stats,
				   .errbuf = x->errbuf };
	http_xfer_setup(&x->x, m->opts);
	CURLMcode mc = curl_multi_add_handle(m->multi, x->curl);
	if (mc != CURLM_OK) {
		http_xfer_finish(&x->x, CURLE_FAILED_INIT);
		x->range.g.unprep(x->range.g.ud, &x->req);
		log_error("%s: curl_multi_add_handle: %s", x->range.g.what, curl_multi_strerror(mc));
		xfer_finish(x, -EIO);
		return;
	}
	m->running++;
}

void http_multi_add(struct http_multi *m, const struct http_ranged *g, uint64_t off, uint64_t len,
		    struct store_sink *sink, uint64_t deadline_ns, http_multi_done_fn done, void *ud)
{
	if (len == 0) {
		done(ud, 0);
		return;
	}
	struct hm_xfer *x = xcalloc(1, sizeof(*x));
	x->m = m;
	x->anext = m->all;
	if (m->all)
		m->all->aprev = x;
	m->all = x;
	x->done = done;
	x->ud = ud;
	x->deadline_ns = deadline_ns;
	x->curl = curl_easy_init();
	if (!x->curl) {
		xfer_finish(x, -ENOMEM);
		return;
	}
	http_range_init(&x->range, g, m->opts, m->stats, off, len, sink);
	xfer_start(m, x);
}

/* A finished attempt: done, failed, or back to wait for a retry. */
static void on_done(struct http_multi *m, struct hm_xfer *x, CURLcode cc)
{
	uint64_t wait_ms = 0;
	curl_multi_remove_handle(m->multi, x->curl);
	m->running--;
	int res = http_xfer_finish(&x->x, cc);
	int e = http_range_end(&x->range, &x->req, res, x->errbuf, &wait_ms);
	if (e <= 0) {
		xfer_finish(x, e < 0 ? e : http_range_count(&x->range));
		return;
	}
	uint64_t now = now_ns();
	x->due_ns = now + wait_ms * 1000000ull;
	if (x->deadline_ns && x->due_ns > x->deadline_ns) {
		log_error("%s: the store did not answer in time", x->range.g.what);
		xfer_finish(x, -ETIMEDOUT);
		return;
	}
	x->next = m->waiting;
	m->waiting = x;
	m->nwaiting++;
}

/* Start every retry that is due; return ms until the next one (or -1). */
static long start_due(struct http_multi *m)
{
	uint64_t now = now_ns();
	long next = -1;
	struct hm_xfer **p = &m->waiting;
	while (*p) {
		struct hm_xfer *x = *p;
		if (x->due_ns <= now) {
			*p = x->next;
			m->nwaiting--;
			xfer_start(m, x);
			continue;
		}
		long ms = (long)((x->due_ns - now) / 1000000ull) + 1;
		if (next < 0 || ms < next)
			next = ms;
		p = &x->next;
	}
	return next;
}

unsigned http_multi_poll(struct http_multi *m, int timeout_ms)
{
	long due = start_due(m);
	int t = timeout_ms;
	if (due >= 0 && due < t)
		t = (int)due;
	long ct = -1;
	curl_multi_timeout(m->multi, &ct);
	if (m->running && ct >= 0 && ct < t)
		t = (int)ct;
	curl_multi_poll(m->multi, NULL, 0, t, NULL);
	int still = 0;
	curl_multi_perform(m->multi, &still);
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct hm_xfer *x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		/* CURLOPT_PRIVATE holds the http_xfer, the first field we need. */
		struct http_xfer *hx = (struct http_xfer *)x;
		x = (struct hm_xfer *)((char *)hx - offsetof(struct hm_xfer, x));
		on_done(m, x, msg->data.result);
	}
	start_due(m);
	return m->running + m->nwaiting;
}

void http_multi_wakeup(struct http_multi *m)
{
	curl_multi_wakeup(m->multi);
}

void http_multi_free(struct http_multi *m)
{
	if (!m)
		return;
	while (m->all) {
		struct hm_xfer *x = m->all;
		if (x->curl)
			curl_multi_remove_handle(m->multi, x->curl);
		if (x->x.hdrs) {
			/* Mid-attempt: release what the attempt holds. */
			http_xfer_finish(&x->x, CURLE_ABORTED_BY_CALLBACK);
			x->range.g.unprep(x->range.g.ud, &x->req);
		}
		xfer_finish(x, -ECANCELED);
	}
	m->waiting = NULL;
	curl_multi_cleanup(m->multi);
	free(m);
}
