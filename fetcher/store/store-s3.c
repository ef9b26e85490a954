// SPDX-License-Identifier: MIT
/*
 * The s3:// backend: s3://BUCKET/PREFIX?endpoint=URL&region=R&style=S on AWS
 * or any S3-compatible server (MinIO, Ceph, s3rver). Keys live under
 * "PREFIX/"; requests are signed with SigV4 by libcurl (CURLOPT_AWS_SIGV4)
 * with the keys from the options or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
 * / AWS_SESSION_TOKEN, or sent anonymously (public buckets) when there are
 * none. Reads are ranged GETs that resume (http_get_range), writes are one
 * PUT each (up to 5 GiB), listings are ListObjectsV2 pages, and error bodies
 * are parsed (s3-xml.c) so every failure names S3's own Code and Message.
 *
 * libcurl 7.88 signs the query string as given and does not add
 * x-amz-content-sha256, which S3 requires on every SigV4 request: so
 * queries are built here with their parameters in sorted order and
 * %-escaped with curl_easy_escape (the canonical form), and every request
 * carries x-amz-content-sha256 itself (UNSIGNED-PAYLOAD for uploads, the
 * hash of the empty body otherwise), which libcurl then signs and uses as
 * the payload hash.
 */
#include <curl/curl.h>
#include <openssl/evp.h>

#include "http.h"
#include "s3-xml.h"
#include "store.h"
#include "../util/log.h"
#include "../util/util.h"

/* The largest object one PUT may create. Bigger ones need a multipart
 * upload, which gdroot does not need now: its packs are far smaller. */
#define S3_PUT_MAX (5ull << 30)
/* Truncated pages in a row without a key before a listing is given up. */
#define S3_EMPTY_PAGES_MAX 100

#define HDR_SHA256_EMPTY "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HDR_SHA256_UNSIGNED "x-amz-content-sha256: UNSIGNED-PAYLOAD"

struct s3 {
	struct http http;
	char *bucket;
	char *prefix;		/* "" or "PREFIX/" */
	char *base;		/* the bucket's root URL, ending in '/' */
	char *endpoint;		/* for messages: no secret in it */
	char *sigv4;		/* "aws:amz:REGION:s3"; NULL: anonymous */
	char *userpwd;		/* "KEY:SECRET": never logged */
	char *token_hdr;	/* "x-amz-security-token: ...": never logged */
};

static void hdr_add(struct curl_slist **l, const char *h)
{
	struct curl_slist *n = curl_slist_append(*l, h);
	if (!n) {
		log_error("out of memory");
		abort();
	}
	*l = n;
}

/* The headers every request carries; the caller frees the list. */
static struct curl_slist *s3_headers(const struct s3 *s, bool upload)
{
	struct curl_slist *l = NULL;
	hdr_add(&l, upload ? HDR_SHA256_UNSIGNED : HDR_SHA256_EMPTY);
	if (s->token_hdr)
		hdr_add(&l, s->token_hdr);
	return l;
}

static void s3_sign(const struct s3 *s, struct http_req *q)
{
	q->aws_sigv4 = s->sigv4;
	q->userpwd = s->sigv4 ? s->userpwd : NULL;
}

/* curl_easy_escape into a string the caller frees (aborts on OOM). */
static char *s3_escape(const struct s3 *s, const char *v)
{
	char *e = curl_easy_escape(s->http.curl, v, 0);
	if (!e) {
		log_error("out of memory");
		abort();
	}
	char *r = xstrdup(e);
	curl_free(e);
	return r;
}

static char *s3_obj_url(const struct s3 *s, const char *key)
{
	/* Keys are [A-Za-z0-9._-] and '/' (store_key_check): no escaping. */
	return xasprintf("%s%s%s", s->base, s->prefix, key);
}

/* What an error answer says, for a log line: "HTTP 403 AccessDenied:
 * Access Denied", or "HTTP 503" when the body is not an S3 Error. Sets
 * *code (owned, may be NULL) when code is not NULL. */
static char *s3_describe(const struct http_resp *rs, char **code)
{
	struct s3_error e;
	char *d;
	if (code)
		*code = NULL;
	if (s3_xml_parse_error(rs->body.data, rs->body.len, &e) == 0 && e.code) {
		d = e.message ? xasprintf("HTTP %ld %s: %s", rs->status, e.code, e.message)
			      : xasprintf("HTTP %ld %s", rs->status, e.code);
		if (code)
			*code = TAKE_PTR(e.code);
	} else {
		d = xasprintf("HTTP %ld", rs->status);
	}
	s3_error_free(&e);
	for (char *c = d; *c; c++) /* the server's words: no line breaks or escapes in our log */
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return d;
}

/* Map an answer that is not a success to -errno; *retry tells whether
 * another attempt may succeed. */
static int s3_status_errno(long status, const char *code, bool *retry)
{
	*retry = false;
	if (http_status_retryable(status) || (status == 400 && code && streq(code, "RequestTimeout"))) {
		*retry = true;
		return -EIO;
	}
	switch (status) {
	case 404:
		return -ENOENT;
	case 401:
	case 403:
		return -EACCES;
	case 301:
	case 307:
	case 308:
	case 400:
		return -EINVAL; /* wrong region, bad name, bad option */
	default:
		return -EPROTO;
	}
}

/* A hint for the log line after an -EACCES or -EINVAL answer. */
static const char *s3_hint(int e, long status)
{
	if (e == -EACCES)
		return " (check the access key, secret and session token)";
	if (status == 301 || status == 307 || status == 308)
		return " (the bucket is in another region or at another endpoint: set region=)";
	return "";
}

/* Whether a failed transfer was stopped on our side (the sink refused
 * bytes, the source could not be read), not by the network. */
static bool s3_local_error(const struct http_resp *rs)
{
	return rs->curl_code == CURLE_WRITE_ERROR || rs->curl_code == CURLE_READ_ERROR ||
	       rs->curl_code == CURLE_ABORTED_BY_CALLBACK;
}

/* Run q until an answer that is not worth retrying. Returns 0 when an
 * answer arrived (any status: look at rs->status), or -errno, logged as
 * "WHAT: ...", when the transfer failed or the retries ran out. */
static int s3_run(struct store *st, const struct http_req *q, struct http_resp *rs,
		  const char *what)
{
	struct s3 *s = st->priv;
	struct retry rt = RETRY_INIT(&st->opts, &st->stats);

	for (;;) {
		int r = http_do(&s->http, q, rs);
		long retry_after = -1;
		_cleanup_free_ char *why = NULL;

		if (r == -E2BIG)
			return log_error_errno(-EPROTO, "%s: HTTP %ld with a body over 8 MiB",
					       what, rs->status);
		if (r < 0 && s3_local_error(rs))
			return log_error_errno(r, "%s: read the source: %m", what);
		if (r < 0) {
			if (!http_curl_retryable(rs->curl_code))
				return log_error_errno(r, "%s: %s", what, http_strerror(&s->http, rs));
			why = xasprintf("%s: %s", what, http_strerror(&s->http, rs));
		} else {
			_cleanup_free_ char *code = NULL;
			bool retry;
			if (rs->status < 300)
				return 0;
			why = s3_describe(rs, &code);
			s3_status_errno(rs->status, code, &retry);
			if (!retry)
				return 0;
			char *w = xasprintf("%s: %s", what, why);
			free(why);
			why = w;
			retry_after = rs->retry_after;
		}
		if (!retry_wait(&rt, retry_after, why))
			return log_error_errno(r < 0 ? r : -EIO, "%s (after every retry)", why);
	}
}

/* Log the failure answer rs to a request WHAT and return its -errno. With
 * quiet_enoent a missing object (404 but not NoSuchBucket) is logged at
 * debug level only: get and stat callers probe for objects, and the command
 * line says "no object" in its own words. */
static int s3_fail(struct store *st, const struct http_resp *rs, const char *what,
		   bool quiet_enoent)
{
	struct s3 *s = st->priv;
	_cleanup_free_ char *code = NULL;
	_cleanup_free_ char *why = s3_describe(rs, &code);
	bool retry;
	int e = s3_status_errno(rs->status, code, &retry);

	if (e == -ENOENT && code && streq(code, "NoSuchBucket"))
		return log_error_errno(e, "s3://%s: no such bucket at %s (%s)", s->bucket, s->endpoint, why);
	if (e == -ENOENT && quiet_enoent) {
		log_debug("%s: %s", what, why);
		return e;
	}
	return log_error_errno(e, "%s: %s%s", what, why, s3_hint(e, rs->status));
}

/* get: a resumable ranged GET. */
struct s3_get {
	struct store *st;
	const char *url;
	const char *what;
};

static int s3_get_prep(void *ud, struct http_req *q)
{
	struct s3_get *g = ud;
	struct s3 *s = g->st->priv;
	q->url = g->url;
	q->headers = s3_headers(s, false);
	s3_sign(s, q);
	return 0;
}

static void s3_get_unprep(void *ud, struct http_req *q)
{
	(void)ud;
	curl_slist_free_all(q->headers);
	q->headers = NULL;
}

static int s3_get_fail(void *ud, const struct http_resp *rs, bool *retry)
{
	struct s3_get *g = ud;
	_cleanup_free_ char *code = NULL;
	_cleanup_free_ char *why = s3_describe(rs, &code);
	int e = s3_status_errno(rs->status, code, retry);
	if (*retry) {
		log_debug("%s: %s", g->what, why);
		return e;
	}
	return s3_fail(g->st, rs, g->what, true);
}

/* Counts what reaches the caller's sink, for a resume after a break. */
struct s3_count_sink {
	struct store_sink sink;
	struct store_sink *next;
	uint64_t n;
};

static int s3_count_write(struct store_sink *k, const void *p, size_t n)
{
	struct s3_count_sink *c = (struct s3_count_sink *)k;
	int r = c->next->write(c->next, p, n);
	if (r == 0)
		c->n += n;
	return r;
}

/* A whole object (off 0, to the end) is first asked for with a plain GET,
 * not "Range: bytes=0-": a plain GET is what S3 expects for a whole
 * object, and it serves an empty one as it is, where range answers vary
 * (S3 says 416; s3rver sends a broken 206). Returns the count delivered
 * with *done true when that answered it all, or 0 with *done false to go
 * on with ranged GETs from *sunk (after a break or an error worth
 * retrying), or -errno (logged). */
static int64_t s3_get_whole(struct store *st, struct s3_get *g, struct store_sink *sink,
			    bool *done, uint64_t *sunk)
{
	struct s3 *s = st->priv;
	struct s3_count_sink cs = { { s3_count_write }, sink, 0 };
	struct http_req q = { .method = "GET", .body_fd = -1, .sink = &cs.sink };
	struct http_resp rs = { 0 };
	int64_t ret = 0;
	bool retry = false;

	*done = false;
	s3_get_prep(g, &q);
	int r = http_do(&s->http, &q, &rs);
	s3_get_unprep(g, &q);
	*sunk = cs.n;
	if (r == 0 && rs.status >= 200 && rs.status < 300) {
		*done = true;
		ret = (int64_t)cs.n;
	} else if (r == -E2BIG) {
		ret = log_error_errno(-EPROTO, "%s: HTTP %ld with an error body over 8 MiB", g->what, rs.status);
	} else if (r < 0 && s3_local_error(&rs)) {
		ret = r; /* the caller's sink refused bytes */
	} else if (r < 0 && !http_curl_retryable(rs.curl_code)) {
		ret = log_error_errno(r, "%s: %s", g->what, http_strerror(&s->http, &rs));
	} else if (r == 0) {
		ret = s3_get_fail(g, &rs, &retry);
		if (retry)
			ret = 0;
	}
	if (ret == 0 && !*done) {
		log_debug("%s: whole GET %s after %llu bytes; going on with ranges", g->what,
			  r < 0 ? http_strerror(&s->http, &rs) : "failed", (unsigned long long)cs.n);
		st->stats.retries++;
	}
	http_resp_free(&rs);
	return ret;
}

static int64_t s3_get(struct store *st, const char *key, uint64_t off, uint64_t len,
		      struct store_sink *sink)
{
	struct s3 *s = st->priv;
	_cleanup_free_ char *url = s3_obj_url(s, key);
	_cleanup_free_ char *what = xasprintf("%s: get %s", st->url, key);
	struct s3_get g = { .st = st, .url = url, .what = what };
	struct http_ranged rg = { .prep = s3_get_prep, .unprep = s3_get_unprep,
				  .fail = s3_get_fail, .ud = &g, .what = what };
	uint64_t sunk = 0;

	if (off == 0 && len == UINT64_MAX) {
		bool done;
		int64_t n = s3_get_whole(st, &g, sink, &done, &sunk);
		if (n < 0 || done)
			return n;
	}
	int64_t n = http_get_range(&s->http, &rg, off + sunk, len == UINT64_MAX ? len : len - sunk, sink);
	return n < 0 ? n : n + (int64_t)sunk;
}

/* A get description for the multi engine: the same callbacks as s3_get. */
struct s3_ranged {
	struct s3_get g;
	char *url;
	char *what;
};

static int s3_ranged(struct store *st, const char *key, struct http_ranged *g, void **ctx)
{
	struct s3 *s = st->priv;
	struct s3_ranged *x = xcalloc(1, sizeof(*x));
	x->url = s3_obj_url(s, key);
	x->what = xasprintf("%s: get %s", st->url, key);
	x->g = (struct s3_get){ .st = st, .url = x->url, .what = x->what };
	*g = (struct http_ranged){ .prep = s3_get_prep, .unprep = s3_get_unprep, .fail = s3_get_fail,
				   .ud = &x->g, .what = x->what };
	*ctx = x;
	return 0;
}

static void s3_ranged_free(void *ctx)
{
	struct s3_ranged *x = ctx;
	free(x->url);
	free(x->what);
	free(x);
}

/* The base64 MD5 of what src holds, for Content-MD5: S3 refuses a body
 * that arrives damaged (BadDigest) instead of storing it. */
static int s3_src_md5(const struct store_src *src, char out[32])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int r = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!c || EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return -ENOSYS;
	}
	if (src->mem || src->fd < 0) {
		if (src->size && EVP_DigestUpdate(c, src->mem, (size_t)src->size) != 1)
			r = -EIO;
	} else {
		const size_t bs = 256 << 10;
		_cleanup_free_ char *buf = xmalloc(bs);
		uint64_t done = 0;
		while (r == 0 && done < src->size) {
			ssize_t n = pread(src->fd, buf, (size_t)MIN((uint64_t)bs, src->size - done), (off_t)done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				r = n < 0 ? -errno : -EIO; /* the source shrank */
			else if (EVP_DigestUpdate(c, buf, (size_t)n) != 1)
				r = -EIO;
			else
				done += (uint64_t)n;
		}
	}
	if (r == 0 && EVP_DigestFinal_ex(c, md, &mdlen) != 1)
		r = -EIO;
	EVP_MD_CTX_free(c);
	if (r == 0)
		EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
	return r;
}

/* One PUT; with exclusive, only if the key is free (a 412: -EEXIST). md5
 * gets the base64 Content-MD5 sent. */
static int s3_put_one(struct store *st, const char *key, const struct store_src *src, bool exclusive,
		      char md5[32])
{
	struct s3 *s = st->priv;
	int r;

	if (src->size > S3_PUT_MAX)
		return log_error_errno(-EFBIG, "%s: put %s: %llu bytes is over S3's 5 GiB limit "
					       "for one PUT (multipart upload is not supported)",
				       st->url, key, (unsigned long long)src->size);
	r = s3_src_md5(src, md5);
	if (r < 0)
		return log_error_errno(r, "%s: put %s: read source: %m", st->url, key);

	_cleanup_free_ char *url = s3_obj_url(s, key);
	_cleanup_free_ char *what = xasprintf("%s: put %s", st->url, key);
	_cleanup_free_ char *md5_hdr = xasprintf("Content-MD5: %s", md5);
	struct curl_slist *h = s3_headers(s, true);
	hdr_add(&h, "Content-Type: application/octet-stream");
	hdr_add(&h, md5_hdr);
	if (exclusive)
		hdr_add(&h, "If-None-Match: *");
	struct http_req q = { .method = "PUT", .url = url, .headers = h, .body_fd = -1,
			      .body_len = src->size, .progress_total = src->size };
	if (src->mem || src->fd < 0)
		q.body = src->mem ? src->mem : "";
	else
		q.body_fd = src->fd;
	s3_sign(s, &q);

	/* One PUT cannot resume: s3_run repeats all of it on failures worth
	 * retrying (on_read re-reads the fd from the start). */
	struct http_resp rs = { 0 };
	r = s3_run(st, &q, &rs, what);
	if (r == 0 && exclusive && (rs.status == 412 || rs.status == 409))
		r = -EEXIST; /* 409: a conditional write raced another */
	else if (r == 0 && rs.status != 200)
		r = s3_fail(st, &rs, what, false);
	http_resp_free(&rs);
	curl_slist_free_all(h);
	return r;
}

static int s3_put(struct store *st, const char *key, const struct store_src *src)
{
	char md5[32];
	return s3_put_one(st, key, src, false, md5);
}

/* The ETag of a single PUT is the hex MD5 of the body. */
static bool etag_is_md5(const char *etag_hex, const char md5_b64[32])
{
	unsigned char raw[20];
	char hex[33];
	if (EVP_DecodeBlock(raw, (const unsigned char *)md5_b64, (int)strlen(md5_b64)) != 18)
		return false; /* 16 bytes, padded to 18 by "==" */
	hex_encode(raw, 16, hex);
	return strcasecmp(hex, etag_hex) == 0;
}

static int s3_stat(struct store *st, const char *key, struct store_obj *o);

static int s3_put_new(struct store *st, const char *key, const struct store_src *src)
{
	struct store_obj o;
	char md5[32];
	int r = s3_stat(st, key, &o);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	r = s3_put_one(st, key, src, true, md5);
	if (r < 0)
		return r;
	/* A server that ignores If-None-Match lets a racing PUT overwrite
	 * ours: look again once the race would have shown. */
	usleep(store_settle_ms(st) * 1000u);
	r = s3_stat(st, key, &o);
	if (r < 0)
		return r == -ENOENT ? -EEXIST : r;
	if (o.md5[0] && !etag_is_md5(o.md5, md5))
		return -EEXIST;
	return 0;
}

static int s3_stat(struct store *st, const char *key, struct store_obj *o)
{
	struct s3 *s = st->priv;
	_cleanup_free_ char *url = s3_obj_url(s, key);
	_cleanup_free_ char *what = xasprintf("%s: stat %s", st->url, key);
	struct curl_slist *h = s3_headers(s, false);
	struct http_req q = { .method = "HEAD", .url = url, .headers = h, .body_fd = -1 };
	struct http_resp rs = { 0 };
	int r;

	s3_sign(s, &q);
	r = s3_run(st, &q, &rs, what);
	if (r == 0 && rs.status != 200) {
		r = s3_fail(st, &rs, what, true); /* a HEAD has no body: no Code */
	} else if (r == 0) {
		if (rs.content_length < 0) {
			r = log_error_errno(-EPROTO, "%s: HTTP 200 without Content-Length", what);
		} else {
			snprintf(o->key, sizeof(o->key), "%s", key);
			o->size = (uint64_t)rs.content_length;
			o->mtime = -1;
			if (rs.last_modified) {
				time_t t = curl_getdate(rs.last_modified, NULL);
				if (t >= 0)
					o->mtime = t;
			}
			if (!rs.etag || s3_etag_md5(rs.etag, o->md5) < 0)
				o->md5[0] = 0;
		}
	}
	http_resp_free(&rs);
	curl_slist_free_all(h);
	return r;
}

static int s3_del(struct store *st, const char *key)
{
	struct s3 *s = st->priv;
	_cleanup_free_ char *url = s3_obj_url(s, key);
	_cleanup_free_ char *what = xasprintf("%s: delete %s", st->url, key);
	struct curl_slist *h = s3_headers(s, false);
	struct http_req q = { .method = "DELETE", .url = url, .headers = h, .body_fd = -1 };
	struct http_resp rs = { 0 };
	int r;

	s3_sign(s, &q);
	r = s3_run(st, &q, &rs, what);
	if (r == 0 && rs.status != 200 && rs.status != 204) {
		_cleanup_free_ char *code = NULL;
		free(s3_describe(&rs, &code));
		/* S3 answers 204 for a missing key; some servers say 404. */
		if (!(rs.status == 404 && (!code || streq(code, "NoSuchKey"))))
			r = s3_fail(st, &rs, what, false);
	}
	http_resp_free(&rs);
	curl_slist_free_all(h);
	return r;
}

/* One ListObjectsV2 page of full_prefix after token (NULL: the first). The
 * parameters are in sorted order, as SigV4's canonical query wants. */
static int s3_list_page(struct store *st, const char *full_prefix, const char *token,
			int max_keys, struct s3_list *page, const char *what)
{
	struct s3 *s = st->priv;
	_cleanup_free_ char *p = s3_escape(s, full_prefix);
	_cleanup_free_ char *t = token ? s3_escape(s, token) : NULL;
	_cleanup_free_ char *mk = max_keys > 0 ? xasprintf("&max-keys=%d", max_keys) : xstrdup("");
	_cleanup_free_ char *url = xasprintf("%s?%s%s%slist-type=2%s&prefix=%s", s->base,
					     t ? "continuation-token=" : "", t ? t : "", t ? "&" : "",
					     mk, p);
	struct curl_slist *h = s3_headers(s, false);
	struct http_req q = { .method = "GET", .url = url, .headers = h, .body_fd = -1 };
	struct http_resp rs = { 0 };
	int r;

	*page = (struct s3_list){ .key_count = -1 };
	s3_sign(s, &q);
	r = s3_run(st, &q, &rs, what);
	if (r == 0 && rs.status != 200) {
		r = s3_fail(st, &rs, what, false);
	} else if (r == 0 && s3_xml_parse_list(rs.body.data, rs.body.len, page) < 0) {
		r = log_error_errno(-EPROTO, "%s: the answer (%zu bytes) is not a ListObjectsV2 result",
				    what, rs.body.len);
	}
	http_resp_free(&rs);
	curl_slist_free_all(h);
	return r;
}

static int s3_list(struct store *st, const char *prefix, store_list_fn fn, void *ud)
{
	struct s3 *s = st->priv;
	_cleanup_free_ char *full = xasprintf("%s%s", s->prefix, prefix);
	_cleanup_free_ char *what = xasprintf("%s: list %s", st->url, *prefix ? prefix : "(all)");
	_cleanup_free_ char *token = NULL;
	size_t pl = strlen(s->prefix);
	unsigned empty = 0;
	int r;

	for (;;) {
		struct s3_list page;
		r = s3_list_page(st, full, token, 0, &page, what);
		if (r < 0) {
			s3_list_free(&page);
			return r;
		}
		if (page.key_count >= 0 && (uint64_t)page.key_count != page.n)
			log_debug("%s: KeyCount %lld for %zu keys", what, (long long)page.key_count, page.n);
		for (size_t i = 0; i < page.n; i++) {
			const struct s3_list_entry *e = &page.v[i];
			struct store_obj o;
			/* Not ours (a server that ignored prefix), or a key that
			 * no gdroot program wrote: skip it. */
			if (strncmp(e->key, full, strlen(full)) != 0 || store_key_check(e->key + pl) < 0)
				continue;
			snprintf(o.key, sizeof(o.key), "%s", e->key + pl);
			o.size = e->size;
			o.mtime = e->mtime;
			memcpy(o.md5, e->md5, sizeof(o.md5));
			r = fn(ud, &o);
			if (r != 0) {
				s3_list_free(&page);
				return r;
			}
		}
		if (!page.truncated) {
			s3_list_free(&page);
			return 0;
		}
		if (token && streq(token, page.next_token)) {
			s3_list_free(&page);
			return log_error_errno(-EPROTO, "%s: the server repeats continuation token", what);
		}
		empty = page.n ? 0 : empty + 1;
		if (empty > S3_EMPTY_PAGES_MAX) {
			s3_list_free(&page);
			return log_error_errno(-EPROTO, "%s: %u empty pages in a row", what, empty);
		}
		free(token);
		token = TAKE_PTR(page.next_token);
		s3_list_free(&page);
	}
}

static void s3_free(struct s3 *s)
{
	if (!s)
		return;
	http_free(&s->http);
	free(s->bucket);
	free(s->prefix);
	free(s->base);
	free(s->endpoint);
	free(s->sigv4);
	if (s->userpwd)
		explicit_bzero(s->userpwd, strlen(s->userpwd));
	free(s->userpwd);
	if (s->token_hdr)
		explicit_bzero(s->token_hdr, strlen(s->token_hdr));
	free(s->token_hdr);
	free(s);
}

static void s3_close(struct store *st)
{
	s3_free(st->priv);
	st->priv = NULL;
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

/* Keys from the options, else from the environment (never mixed: a token
 * belongs to its key). None at all means anonymous requests. */
static int s3_credentials(struct store *st, struct s3 *s)
{
	const struct store_opts *o = &st->opts;
	const char *ak, *sk, *tok;

	if (nonempty(o->access_key) || nonempty(o->secret_key)) {
		ak = nonempty(o->access_key);
		sk = nonempty(o->secret_key);
		tok = nonempty(o->session_token);
	} else {
		ak = nonempty(getenv("AWS_ACCESS_KEY_ID"));
		sk = nonempty(getenv("AWS_SECRET_ACCESS_KEY"));
		tok = nonempty(getenv("AWS_SESSION_TOKEN"));
	}
	if (!ak && !sk) {
		log_debug("%s: no S3 credentials: anonymous requests", st->url);
		return 0;
	}
	if (!ak || !sk)
		return log_error_errno(-EINVAL, "%s: an S3 access key needs its secret key, and the other "
						"way round (access_key/secret_key or AWS_ACCESS_KEY_ID/"
						"AWS_SECRET_ACCESS_KEY)", st->url);
	if (strchr(ak, ':'))
		return log_error_errno(-EINVAL, "%s: the S3 access key must not contain ':'", st->url);
	if (tok && strpbrk(tok, "\r\n"))
		return log_error_errno(-EINVAL, "%s: the S3 session token holds a line break", st->url);
	s->userpwd = xasprintf("%s:%s", ak, sk);
	if (tok)
		s->token_hdr = xasprintf("x-amz-security-token: %s", tok);
	return 0;
}

static int s3_open(struct store *st, const char *loc)
{
	const struct store_opts *o = &st->opts;
	const char *region = nonempty(o->region) ? o->region : "us-east-1";
	const char *slash = strchr(loc, '/');
	_cleanup_free_ char *bucket = slash ? xstrndup(loc, (size_t)(slash - loc)) : xstrdup(loc);
	_cleanup_free_ char *prefix = xstrdup(slash ? slash + 1 : "");
	const char *why = NULL;
	struct s3 *s;
	int r;

	size_t n = strlen(prefix);
	while (n > 0 && prefix[n - 1] == '/')
		prefix[--n] = 0;
	if (!*bucket)
		return log_error_errno(-EINVAL, "store URL %s: expected s3://BUCKET/PREFIX", st->url);
	if (*prefix && store_key_check(prefix) < 0)
		return log_error_errno(-EINVAL, "store URL %s: prefix '%s' is not a key path "
						"([A-Za-z0-9._-] components joined by '/')", st->url, prefix);

	s = xcalloc(1, sizeof(*s));
	s->bucket = xstrdup(bucket);
	s->prefix = *prefix ? xasprintf("%s/", prefix) : xstrdup("");
	r = s3_url_base(nonempty(o->endpoint), region, nonempty(o->style), bucket, &s->base, &why);
	if (r < 0) {
		s3_free(s);
		return log_error_errno(r, "store URL %s: %s", st->url, why);
	}
	s->endpoint = nonempty(o->endpoint) ? xstrdup(o->endpoint)
					    : xasprintf("https://s3.%s.amazonaws.com", region);
	r = s3_credentials(st, s);
	if (r < 0) {
		s3_free(s);
		return r;
	}
	if (s->userpwd)
		s->sigv4 = xasprintf("aws:amz:%s:s3", region);
	r = http_init(&s->http, &st->opts, &st->stats, &st->progress);
	if (r < 0) {
		s3_free(s);
		return r;
	}
	st->priv = s;

	/* Check that the bucket is there (and the keys work) with the
	 * cheapest listing, of one key under the prefix. */
	_cleanup_free_ char *what = xasprintf("%s: open (endpoint %s)", st->url, s->endpoint);
	struct s3_list page;
	r = s3_list_page(st, s->prefix, NULL, 1, &page, what);
	s3_list_free(&page);
	if (r < 0) {
		s3_free(s);
		st->priv = NULL;
		return r;
	}
	log_debug("%s: bucket at %s", st->url, s->base);
	return 0;
}

const struct store_ops store_s3_ops = {
	.scheme = "s3",
	.open = s3_open,
	.get = s3_get,
	.put = s3_put,
	.put_new = s3_put_new,
	.list = s3_list,
	.del = s3_del,
	.stat = s3_stat,
	.close = s3_close,
	.ranged = s3_ranged,
	.ranged_free = s3_ranged_free,
};
