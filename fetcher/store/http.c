// SPDX-License-Identifier: MIT
/*
 * Implementation of http.h: one request on a reused libcurl easy handle,
 * response headers the backends need, bodies to a sink or a capped buffer,
 * and the backoff policy shared by every HTTP backend.
 */
#include "http.h"

#include <sys/random.h>
#include <time.h>

#include "../util/log.h"
#include "../util/util.h"

#define HTTP_BODY_MAX (8u << 20)


int http_init(struct http *h, const struct store_opts *opts,
	      struct store_stats *stats, struct store_progress *progress)
{
	static int global_done;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return log_error_errno(-EIO, "libcurl initialisation failed");
		global_done = 1;
	}
	memset(h, 0, sizeof(*h));
	h->curl = curl_easy_init();
	if (!h->curl)
		return log_error_errno(-ENOMEM, "curl_easy_init failed");
	h->opts = opts;
	h->stats = stats;
	h->progress = progress;
	return 0;
}

void http_free(struct http *h)
{
	if (h->curl)
		curl_easy_cleanup(h->curl);
	h->curl = NULL;
}

void http_resp_free(struct http_resp *r)
{
	buf_free(&r->body);
	free(r->location);
	free(r->range);
	free(r->content_range);
	free(r->etag);
	free(r->last_modified);
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	r->retry_after = -1;
}

static void resp_clear_headers(struct http_resp *r)
{
	free(r->location);
	free(r->range);
	free(r->content_range);
	free(r->etag);
	free(r->last_modified);
	r->location = r->range = r->content_range = r->etag = r->last_modified = NULL;
	r->content_length = -1;
	r->retry_after = -1;
}

/* Header value with surrounding blanks and CRLF stripped, or NULL when the
 * line is not header `name`. */
static char *header_value(const char *line, size_t n, const char *name)
{
	size_t nl = strlen(name);
	if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return NULL;
	const char *v = line + nl + 1, *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	return xstrndup(v, (size_t)(end - v));
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct http_xfer *x = ud;
	struct http_resp *r = x->resp;
	size_t len = size * n;
	char *v;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue, say): forget the last. */
		resp_clear_headers(r);
		return len;
	}
	if ((v = header_value(p, len, "Location"))) {
		free(r->location);
		r->location = v;
	} else if ((v = header_value(p, len, "Range"))) {
		free(r->range);
		r->range = v;
	} else if ((v = header_value(p, len, "Content-Range"))) {
		free(r->content_range);
		r->content_range = v;
	} else if ((v = header_value(p, len, "ETag"))) {
		free(r->etag);
		r->etag = v;
	} else if ((v = header_value(p, len, "Last-Modified"))) {
		free(r->last_modified);
		r->last_modified = v;
	} else if ((v = header_value(p, len, "Content-Length"))) {
		uint64_t cl;
		if (parse_u64(v, &cl) == 0 && cl <= INT64_MAX)
			r->content_length = (int64_t)cl;
		free(v);
	} else if ((v = header_value(p, len, "Retry-After"))) {
		uint64_t s;
		if (parse_u64(v, &s) == 0)
			r->retry_after = s > 3600 ? 3600 : (long)s;
		else {
			time_t t = curl_getdate(v, NULL);
			time_t now = time(NULL);
			if (t > 0)
				r->retry_after = t > now ? MIN((long)(t - now), 3600L) : 0;
		}
		free(v);
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct http_xfer *x = ud;
	size_t len = size * n;
	long status = 0;

	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	if (x->req->sink && status >= 200 && status < 300) {
		int r = x->req->sink->write(x->req->sink, p, len);
		if (r < 0) {
			x->sink_err = r;
			return 0;
		}
		x->resp->sunk += len;
		return len;
	}
	if (buf_append(&x->resp->body, p, len) < 0) {
		x->sink_err = -E2BIG;
		return 0;
	}
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
	struct http_xfer *x = ud;
	const struct http_req *q = x->req;
	size_t want = size * n;
	uint64_t left = q->body_len - x->upload_pos;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	for (;;) {
		ssize_t r = pread(q->body_fd, p, want, (off_t)(q->body_off + x->upload_pos));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			/* A file that shrank under us is an error, not EOF. */
			x->sink_err = r < 0 ? -errno : -EIO;
			return CURL_READFUNC_ABORT;
		}
		x->upload_pos += (uint64_t)r;
		return (size_t)r;
	}
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
	struct http_xfer *x = ud;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	x->upload_pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct http_xfer *x = ud;
	struct store_progress *p = x->progress;
	(void)dltotal;
	(void)ultotal;
	if (p && p->fn && x->req->progress_total)
		p->fn(p->ud, x->req->progress_base + (uint64_t)(dlnow + ulnow),
		      x->req->progress_total);
	return 0;
}

int http_curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return -EKEYREJECTED;
	case CURLE_SSL_CONNECT_ERROR:
		return -ECONNABORTED;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -ECONNRESET;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

bool http_curl_retryable(CURLcode c)
{
	int e = http_curl_errno(c);
	return e == -EHOSTUNREACH || e == -ECONNREFUSED || e == -ETIMEDOUT ||
	       e == -ECONNABORTED || e == -ECONNRESET || e == -EIO;
}

bool http_status_retryable(long s)
{
	return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

const char *http_strerror(struct http *h, const struct http_resp *resp)
{
	if (h->errbuf[0])
		return h->errbuf;
	return curl_easy_strerror(resp->curl_code);
}

void http_xfer_setup(struct http_xfer *x, const struct store_opts *o)
{
	const struct http_req *q = x->req;
	CURL *c = x->curl;

	http_resp_free(x->resp);
	x->resp->body = BUF_INIT(HTTP_BODY_MAX);
	x->errbuf[0] = 0;
	x->upload_pos = 0;
	x->sink_err = 0;
	x->hdrs = NULL;

	curl_easy_reset(c);
	for (struct curl_slist *l = q->headers; l; l = l->next)
		x->hdrs = curl_slist_append(x->hdrs, l->data);
	/* No 100-continue round trip. Not with SigV4: libcurl 7.88 then lists
	 * "expect" in SignedHeaders without sending it (curl issue 11664). */
	if (!q->aws_sigv4)
		x->hdrs = curl_slist_append(x->hdrs, "Expect:");

	curl_easy_setopt(c, CURLOPT_URL, q->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (o->ca_blob) {
		struct curl_blob blob = { .data = o->ca_blob, .len = o->ca_blob_len, .flags = CURL_BLOB_NOCOPY };
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
	} else if (o->ca_file) {
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
	}
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)(o->connect_timeout ? o->connect_timeout : 15));
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(o->io_timeout ? o->io_timeout : 60));
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "gdroot/" GDROOT_VERSION);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, x->progress && x->progress->fn ? 0L : 1L);
	if (q->aws_sigv4) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, q->aws_sigv4);
		curl_easy_setopt(c, CURLOPT_USERPWD, q->userpwd);
	}

	if (streq(q->method, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (q->body_fd >= 0) {
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->body_len);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, x);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, x);
		if (!streq(q->method, "PUT"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
	} else if (q->body || streq(q->method, "POST") || streq(q->method, "PUT") ||
		   streq(q->method, "PATCH")) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body ? q->body : "");
		if (!streq(q->method, "POST"))
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
	} else if (!streq(q->method, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
	}
	if (x->stats)
		x->stats->requests++;
}

int http_xfer_finish(struct http_xfer *x, CURLcode cc)
{
	const struct http_req *q = x->req;
	struct http_resp *resp = x->resp;
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	resp->curl_code = cc;
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_off_t up = 0;
	if (x->stats) {
		x->stats->bytes_in += resp->sunk;
		if (curl_easy_getinfo(x->curl, CURLINFO_SIZE_UPLOAD_T, &up) == CURLE_OK && up > 0 &&
		    (q->body_fd >= 0 || q->body))
			x->stats->bytes_out += (uint64_t)up;
	}
	if (x->sink_err)
		return x->sink_err;
	if (cc != CURLE_OK)
		return http_curl_errno(cc);
	return 0;
}

int http_do(struct http *h, const struct http_req *q, struct http_resp *resp)
{
	struct http_xfer x = { .curl = h->curl, .req = q, .resp = resp, .progress = h->progress,
			       .stats = h->stats, .errbuf = h->errbuf };
	http_xfer_setup(&x, h->opts);
	return http_xfer_finish(&x, curl_easy_perform(h->curl));
}

static uint64_t rand_u64(void)
{
	static __thread uint64_t s;
	if (!s) {
		if (getrandom(&s, sizeof(s), 0) != sizeof(s))
			s = now_ns() ^ (uint64_t)getpid();
		s |= 1;
	}
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

uint64_t retry_backoff_ms(const struct store_opts *o, unsigned attempt)
{
	uint64_t base = o->retry_base_ms ? o->retry_base_ms : 500;
	uint64_t cap = o->retry_cap_ms ? o->retry_cap_ms : 32000;
	uint64_t d = attempt >= 32 ? cap : base << attempt;
	return d > cap ? cap : d;
}

bool retry_next(struct retry *r, long retry_after, const char *what, uint64_t *wait_ms)
{
	unsigned max = r->opts->retries_set ? r->opts->retries : 10;
	if (r->attempt >= max) {
		log_warn("%s: giving up after %u retries", what, r->attempt);
		return false;
	}
	uint64_t d = retry_backoff_ms(r->opts, r->attempt);
	/* Full jitter over the upper half: spread, but never near zero. */
	uint64_t ms = d / 2 + (d > 1 ? rand_u64() % (d / 2 + 1) : 0);
	if (retry_after >= 0 && (uint64_t)retry_after * 1000 > ms)
		ms = (uint64_t)retry_after * 1000;
	r->attempt++;
	if (r->stats)
		r->stats->retries++;
	if (r->attempt >= 3 && r->attempt % 10 == 3)
		log_warn("%s; retry %u in %.1f s", what, r->attempt, (double)ms / 1000);
	else
		log_debug("%s; retry %u in %.1f s", what, r->attempt, (double)ms / 1000);
	*wait_ms = ms;
	return true;
}

bool retry_wait(struct retry *r, long retry_after, const char *what)
{
	uint64_t ms;
	if (!retry_next(r, retry_after, what, &ms))
		return false;
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return true;
}

/* Parse "bytes A-B/N" (N may be "*"). */
static int parse_content_range(const char *s, uint64_t *a, uint64_t *b)
{
	unsigned long long x, y;
	if (!s || sscanf(s, "bytes %llu-%llu", &x, &y) != 2 || y < x)
		return -EPROTO;
	*a = x;
	*b = y;
	return 0;
}

/* Sits between curl and the caller's sink. On the first body byte it learns
 * where the body starts (206: Content-Range, checked against the request;
 * 200: a server that ignored Range, so byte 0) and then drops bytes before
 * the wanted range and after it. */
static int range_sink_write(struct store_sink *s, const void *p, size_t n)
{
	struct http_range *r = (struct http_range *)s;
	const char *b = p;

	if (!r->started) {
		long status = 0;
		r->started = true;
		curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status == 206) {
			uint64_t a, z;
			if (parse_content_range(r->rs->content_range, &a, &z) < 0 || a != r->want)
				return log_error_errno(-EPROTO, "%s: server sent range '%s' for bytes %llu-",
						       r->g.what, r->rs->content_range ? r->rs->content_range : "(none)",
						       (unsigned long long)r->want);
			r->pos = a;
		} else {
			r->pos = 0;
		}
	}
	uint64_t start = r->pos, stop = r->pos + n;
	r->pos = stop;
	if (start >= r->end)
		return -ECANCELED;
	if (stop <= r->want)
		return 0;
	uint64_t from = MAX(start, r->want), to = MIN(stop, r->end);
	int e = r->next->write(r->next, b + (from - start), (size_t)(to - from));
	if (e < 0)
		return e;
	r->want = to;
	/* Bytes past the range (a 200 with the whole object) are cut by the
	 * check above when they come; the last wanted byte itself ends no
	 * transfer, so the connection stays reusable. */
	return 0;
}

void http_range_init(struct http_range *r, const struct http_ranged *g, const struct store_opts *o,
		     struct store_stats *stats, uint64_t off, uint64_t len, struct store_sink *next)
{
	memset(r, 0, sizeof(*r));
	r->sink.write = range_sink_write;
	r->g = *g;
	r->next = next;
	r->off = r->want = off;
	r->len = len;
	r->end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
	r->rt = RETRY_INIT(o, stats);
}

int http_range_begin(struct http_range *r, struct http_req *q, CURL *curl, struct http_resp *rs)
{
	memset(q, 0, sizeof(*q));
	q->method = "GET";
	q->body_fd = -1;
	q->sink = &r->sink;
	r->curl = curl;
	r->rs = rs;
	r->started = false;
	r->before = r->want;
	if (r->end == UINT64_MAX)
		snprintf(r->range, sizeof(r->range), "Range: bytes=%llu-", (unsigned long long)r->want);
	else
		snprintf(r->range, sizeof(r->range), "Range: bytes=%llu-%llu", (unsigned long long)r->want,
			 (unsigned long long)(r->end - 1));
	int e = r->g.prep(r->g.ud, q);
	if (e < 0)
		return e;
	q->headers = curl_slist_append(q->headers, r->range);
	q->progress_base = r->want - r->off;
	q->progress_total = r->end == UINT64_MAX ? 0 : r->len;
	return 0;
}

static const char *http_range_strerror(const struct http_range *r, const char *errbuf)
{
	if (errbuf && errbuf[0])
		return errbuf;
	return curl_easy_strerror(r->rs->curl_code);
}

int http_range_end(struct http_range *r, struct http_req *q, int res, const char *errbuf, uint64_t *wait_ms)
{
	struct http_resp *rs = r->rs;
	bool retry = false;
	int e;

	r->g.unprep(r->g.ud, q);
	if (res == -ECANCELED)
		res = 0; /* we had every byte we wanted and cut the rest */
	if (res == -EPROTO)
		return res;
	if (rs->status == 416 && (res == 0 || rs->sunk == 0))
		return 0; /* nothing at or past want: the end */
	if (rs->status == 200 || rs->status == 206) {
		if (res == 0)
			return 0; /* complete: the range or the object's end */
		if (res != -ECONNRESET && res != -ETIMEDOUT && res != -EIO)
			return res; /* the caller's sink failed */
		/* Cut off mid-body: resume from want, with a fresh budget when
		 * this attempt made progress. */
		if (r->want > r->before)
			r->rt.attempt = 0;
		_cleanup_free_ char *what = xasprintf("%s: %s after %llu bytes", r->g.what,
						      http_range_strerror(r, errbuf),
						      (unsigned long long)(r->want - r->before));
		if (!retry_next(&r->rt, -1, what, wait_ms))
			return log_error_errno(res, "%s: transfer kept breaking off", r->g.what);
		return 1;
	}
	if (res < 0 && rs->status == 0) {
		if (!http_curl_retryable(rs->curl_code))
			return log_error_errno(res, "%s: %s", r->g.what, http_range_strerror(r, errbuf));
		_cleanup_free_ char *what = xasprintf("%s: %s", r->g.what, http_range_strerror(r, errbuf));
		if (!retry_next(&r->rt, -1, what, wait_ms))
			return log_error_errno(res, "%s: %s", r->g.what, http_range_strerror(r, errbuf));
		return 1;
	}
	e = r->g.fail(r->g.ud, rs, &retry);
	if (!retry)
		return e;
	if (rs->status == 401) {
		*wait_ms = 0; /* the token was dropped: try again at once */
		return 1;
	}
	_cleanup_free_ char *what = xasprintf("%s: HTTP %ld", r->g.what, rs->status);
	if (!retry_next(&r->rt, rs->retry_after, what, wait_ms))
		return log_error_errno(e, "%s: HTTP %ld after every retry", r->g.what, rs->status);
	return 1;
}

int64_t http_get_range(struct http *h, const struct http_ranged *g, uint64_t off,
		       uint64_t len, struct store_sink *sink)
{
	struct http_range r;
	struct http_resp rs = { 0 };
	int e;

	if (len == 0)
		return 0;
	http_range_init(&r, g, h->opts, h->stats, off, len, sink);
	for (;;) {
		struct http_req q;
		uint64_t ms = 0;
		e = http_range_begin(&r, &q, h->curl, &rs);
		if (e < 0)
			break;
		e = http_range_end(&r, &q, http_do(h, &q, &rs), h->errbuf, &ms);
		if (e <= 0)
			break;
		struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	http_resp_free(&rs);
	return e < 0 ? e : http_range_count(&r);
}
