// SPDX-License-Identifier: MIT
/*
 * The gdrive:// backend: Google Drive v3. A store is one Drive folder; each
 * key is a file directly in it whose name is the key (Drive names may hold
 * '/'), so no subfolders are created and two writers can never race to make
 * the same folder twice. Drive allows duplicate names: where a key has
 * several files (a retried create whose first answer was lost), the oldest
 * is the object and the rest are ignored until deleted.
 *
 * Reads are ranged files.get?alt=media by file id (ids are cached from
 * listings and lookups). Small objects upload in one multipart request,
 * large ones through a resumable session that resumes from the offset Drive
 * confirms. Every upload is checked against Drive's md5Checksum.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include "gdrive-json.h"
#include "http.h"
#include "oauth.h"
#include "store.h"
#include "../util/log.h"
#include "../util/util.h"

#define DRIVE_DEFAULT_API "https://www.googleapis.com"
#define MULTIPART_MAX (5u << 20)	/* Google: multipart for up to 5 MB */
#define FILE_FIELDS "id,name,mimeType,size,md5Checksum,modifiedTime,createdTime,trashed"
#define FOLDER_MIME "application/vnd.google-apps.folder"
#define CACHE_BUCKETS 4096

struct gd_entry {
	struct gd_entry *next;
	char *key;
	char id[GD_ID_MAX];
	uint64_t size;
	int64_t mtime, ctime_ms;
	char md5[33];
	unsigned pass;
};

struct gd {
	struct http http;
	struct oauth oauth;
	char *api;		/* without trailing '/' */
	char *folder;		/* folder id */
	struct gd_entry *cache[CACHE_BUCKETS];
	unsigned pass;
};

/* --- key -> file id cache --- */

static unsigned hash_key(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % CACHE_BUCKETS;
}

static struct gd_entry *cache_find(struct gd *g, const char *key)
{
	for (struct gd_entry *e = g->cache[hash_key(key)]; e; e = e->next)
		if (streq(e->key, key))
			return e;
	return NULL;
}

static struct gd_entry *cache_put(struct gd *g, const char *key, const struct gd_file *f)
{
	struct gd_entry *e = cache_find(g, key);
	if (!e) {
		unsigned b = hash_key(key);
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		e->next = g->cache[b];
		g->cache[b] = e;
	}
	snprintf(e->id, sizeof(e->id), "%s", f->id);
	e->size = f->size;
	e->mtime = f->mtime;
	e->ctime_ms = f->ctime_ms;
	memcpy(e->md5, f->md5, sizeof(e->md5));
	return e;
}

static void cache_drop(struct gd *g, const char *key)
{
	for (struct gd_entry **p = &g->cache[hash_key(key)]; *p; p = &(*p)->next) {
		if (streq((*p)->key, key)) {
			struct gd_entry *e = *p;
			*p = e->next;
			free(e->key);
			free(e);
			return;
		}
	}
}

static void cache_free(struct gd *g)
{
	for (unsigned b = 0; b < CACHE_BUCKETS; b++) {
		while (g->cache[b]) {
			struct gd_entry *e = g->cache[b];
			g->cache[b] = e->next;
			free(e->key);
			free(e);
		}
	}
}

/* --- requests --- */

/* What a failed Drive answer means: -errno, and whether to retry. */
static int gd_judge(struct gd *g, const struct http_resp *rs, bool *retry, unsigned *auth_retries,
		    const char *what)
{
	char reason[64], message[256];
	*retry = false;
	gd_parse_error(rs->body.data, rs->body.len, reason, sizeof(reason), message, sizeof(message));
	if (rs->status == 401) {
		oauth_invalidate(&g->oauth);
		if ((*auth_retries)++ < 2) {
			*retry = true;
			return -EACCES;
		}
		return log_error_errno(-EACCES, "%s: Drive refused the access token: %s", what, message);
	}
	if (http_status_retryable(rs->status) ||
	    (rs->status == 403 && (streq(reason, "userRateLimitExceeded") || streq(reason, "rateLimitExceeded")))) {
		*retry = true;
		return -EIO;
	}
	if (rs->status == 404)
		return -ENOENT;
	if (rs->status == 403)
		return log_error_errno(-EACCES, "%s: Drive says 403 %s: %s", what, reason, message);
	if (rs->status == 400)
		return log_error_errno(-EINVAL, "%s: Drive says 400 %s: %s", what, reason, message);
	return log_error_errno(-EPROTO, "%s: unexpected HTTP %ld %s %s", what, rs->status, reason, message);
}

/* One Drive API call with auth and retries. On success (2xx) returns 0 with
 * the answer in rs; else -errno (-ENOENT for 404, not logged). */
static int gd_call(struct gd *g, struct http_req *q, struct http_resp *rs, const char *what)
{
	struct retry rt = RETRY_INIT(&g->http.opts[0], g->http.stats);
	unsigned auth_retries = 0;
	struct curl_slist *base = q->headers;
	int r;
	for (;;) {
		struct curl_slist *hdrs = NULL;
		for (struct curl_slist *l = base; l; l = l->next)
			hdrs = curl_slist_append(hdrs, l->data);
		r = oauth_authorize(&g->oauth, &hdrs);
		if (r < 0) {
			curl_slist_free_all(hdrs);
			return r;
		}
		q->headers = hdrs;
		r = http_do(&g->http, q, rs);
		curl_slist_free_all(hdrs);
		q->headers = base;
		bool retry;
		if (r < 0) {
			if (rs->status || !http_curl_retryable(rs->curl_code))
				return log_error_errno(r, "%s: %s", what, http_strerror(&g->http, rs));
			_cleanup_free_ char *w = xasprintf("%s: %s", what, http_strerror(&g->http, rs));
			if (!retry_wait(&rt, -1, w))
				return log_error_errno(r, "%s: %s", what, http_strerror(&g->http, rs));
			continue;
		}
		if (rs->status >= 200 && rs->status < 300)
			return 0;
		r = gd_judge(g, rs, &retry, &auth_retries, what);
		if (!retry)
			return r;
		if (rs->status == 401)
			continue; /* refreshed the token: not a backoff case */
		_cleanup_free_ char *w = xasprintf("%s: HTTP %ld", what, rs->status);
		if (!retry_wait(&rt, rs->retry_after, w))
			return log_error_errno(r, "%s: HTTP %ld after every retry", what, rs->status);
	}
}

static char *q_escape(const char *s)
{
	/* Drive query strings escape ' and \ with a backslash. */
	char *out = xmalloc(2 * strlen(s) + 1), *w = out;
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			*w++ = '\\';
		*w++ = *s;
	}
	*w = 0;
	return out;
}

/* files.list over our folder with an extra condition (may be NULL), every
 * page, calling fn for each non-trashed file. */
static int gd_list_files(struct gd *g, const char *cond, int (*fn)(void *ud, const struct gd_file *f),
			 void *ud)
{
	CURL *c = g->http.curl;
	_cleanup_free_ char *fid = q_escape(g->folder);
	_cleanup_free_ char *q = cond ? xasprintf("'%s' in parents and trashed = false and %s", fid, cond)
				      : xasprintf("'%s' in parents and trashed = false", fid);
	char *qe = curl_easy_escape(c, q, 0);
	char *fe = curl_easy_escape(c, "nextPageToken,files(" FILE_FIELDS ")", 0);
	_cleanup_free_ char *base = xasprintf("%s/drive/v3/files?q=%s&fields=%s&pageSize=1000&orderBy=createdTime"
					      "&supportsAllDrives=true&includeItemsFromAllDrives=true",
					      g->api, qe, fe);
	curl_free(qe);
	curl_free(fe);
	_cleanup_free_ char *token = NULL;
	struct http_resp rs = { 0 };
	int r;
	do {
		_cleanup_free_ char *url = NULL;
		if (token) {
			char *te = curl_easy_escape(c, token, 0);
			url = xasprintf("%s&pageToken=%s", base, te);
			curl_free(te);
		} else {
			url = xstrdup(base);
		}
		struct http_req rq = { .method = "GET", .url = url, .body_fd = -1 };
		_cleanup_free_ char *what = xasprintf("%s: list", "gdrive");
		r = gd_call(g, &rq, &rs, what);
		if (r < 0)
			break;
		free(token);
		token = NULL;
		r = gd_parse_list(rs.body.data, rs.body.len, fn, ud, &token);
		if (r == -EPROTO)
			r = log_error_errno(-EPROTO, "gdrive://%s: files.list answer is malformed", g->folder);
		if (r != 0)
			break;
	} while (token);
	http_resp_free(&rs);
	return r;
}

struct pick {
	struct gd_file best;
	bool found;
	const char *key;
};

static int pick_oldest(void *ud, const struct gd_file *f)
{
	struct pick *p = ud;
	if (!streq(f->name, p->key) || streq(f->mime, FOLDER_MIME))
		return 0;
	/* Ordered by createdTime already; keep the first, break ties by id. */
	if (!p->found || (f->ctime_ms == p->best.ctime_ms && strcmp(f->id, p->best.id) < 0)) {
		p->best = *f;
		p->found = true;
	}
	return 0;
}

/* Find key's file: from the cache, else by a name query. */
static int gd_lookup(struct gd *g, const char *key, struct gd_entry **out, bool fresh)
{
	struct gd_entry *e = fresh ? NULL : cache_find(g, key);
	if (e) {
		*out = e;
		return 0;
	}
	_cleanup_free_ char *ke = q_escape(key);
	_cleanup_free_ char *cond = xasprintf("name = '%s'", ke);
	struct pick p = { .key = key };
	int r = gd_list_files(g, cond, pick_oldest, &p);
	if (r < 0)
		return r;
	if (!p.found) {
		cache_drop(g, key);
		return -ENOENT;
	}
	*out = cache_put(g, key, &p.best);
	return 0;
}

/* --- open/close --- */

/* The folder must exist, be a folder and not be trashed. */
static int gd_check_folder(struct store *st, struct gd *g, const char *loc)
{
	char *fe = curl_easy_escape(g->http.curl, loc, 0);
	_cleanup_free_ char *url = xasprintf("%s/drive/v3/files/%s?fields=id,name,mimeType,trashed"
					     "&supportsAllDrives=true", g->api, fe ? fe : "");
	curl_free(fe);
	struct http_req q = { .method = "GET", .url = url, .body_fd = -1 };
	struct http_resp rs = { 0 };
	_cleanup_free_ char *what = xasprintf("%s: open folder", st->url);
	int r = gd_call(g, &q, &rs, what);
	if (r == -ENOENT) {
		r = log_error_errno(-ENOENT, "%s: no such folder, or these credentials cannot see it", st->url);
	} else if (r == 0) {
		struct gd_file f;
		if (gd_parse_file(rs.body.data, rs.body.len, &f) < 0)
			r = log_error_errno(-EPROTO, "%s: files.get answer is malformed", st->url);
		else if (!streq(f.mime, FOLDER_MIME))
			r = log_error_errno(-ENOTDIR, "%s: '%s' is a file, not a folder", st->url, f.name);
		else if (f.trashed)
			r = log_error_errno(-ENOENT, "%s: the folder '%s' is in the trash", st->url, f.name);
	}
	http_resp_free(&rs);
	return r;
}

static int gd_open(struct store *st, const char *loc)
{
	struct gd *g = xcalloc(1, sizeof(*g));
	int r;
	if (!*loc || strchr(loc, '/') || strlen(loc) >= GD_ID_MAX) {
		free(g);
		return log_error_errno(-EINVAL, "store URL %s: expected gdrive://FOLDER_ID (the id from "
						"the folder's Drive URL)", st->url);
	}
	r = http_init(&g->http, &st->opts, &st->stats, &st->progress);
	if (r < 0) {
		free(g);
		return r;
	}
	g->folder = xstrdup(loc);
	g->api = xstrdup(st->opts.drive_api ? st->opts.drive_api : DRIVE_DEFAULT_API);
	size_t al = strlen(g->api);
	while (al > 0 && g->api[al - 1] == '/')
		g->api[--al] = 0;
	st->priv = g;
	r = oauth_init(&g->oauth, &g->http, &st->opts);
	if (r < 0)
		goto fail;

	r = gd_check_folder(st, g, loc);
	if (r < 0)
		goto fail;
	return 0;
fail:
	oauth_free(&g->oauth);
	http_free(&g->http);
	free(g->folder);
	free(g->api);
	free(g);
	st->priv = NULL;
	return r;
}

static void gd_close(struct store *st)
{
	struct gd *g = st->priv;
	if (!g)
		return;
	cache_free(g);
	oauth_free(&g->oauth);
	http_free(&g->http);
	free(g->folder);
	free(g->api);
	free(g);
}

/* --- get --- */

struct get_ctx {
	struct gd *g;
	const char *id;
	unsigned auth_retries;
	char url[1024];
};

static int get_prep(void *ud, struct http_req *q)
{
	struct get_ctx *c = ud;
	q->url = c->url;
	return oauth_authorize(&c->g->oauth, &q->headers);
}

static void get_unprep(void *ud, struct http_req *q)
{
	(void)ud;
	curl_slist_free_all(q->headers);
	q->headers = NULL;
}

static int get_fail(void *ud, const struct http_resp *rs, bool *retry)
{
	struct get_ctx *c = ud;
	return gd_judge(c->g, rs, retry, &c->auth_retries, c->url);
}

static int64_t gd_get(struct store *st, const char *key, uint64_t off, uint64_t len,
		      struct store_sink *sink)
{
	struct gd *g = st->priv;
	struct gd_entry *e;
	int64_t n = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		int r = gd_lookup(g, key, &e, attempt > 0);
		if (r < 0)
			return r;
		if (off >= e->size)
			return 0;
		struct get_ctx c = { .g = g };
		snprintf(c.url, sizeof(c.url), "%s/drive/v3/files/%s?alt=media&supportsAllDrives=true",
			 g->api, e->id);
		_cleanup_free_ char *what = xasprintf("%s: get %s", st->url, key);
		struct http_ranged rg = { get_prep, get_unprep, get_fail, &c, what };
		n = http_get_range(&g->http, &rg, off, len, sink);
		if (n != -ENOENT)
			return n;
		/* The file id went stale (replaced or deleted): look again. */
		cache_drop(g, key);
	}
	return n;
}

/* A get description for the multi engine: the same callbacks as gd_get. */
struct gd_ranged {
	struct get_ctx c;
	char what[STORE_KEY_MAX + 64];
};

static int gd_ranged(struct store *st, const char *key, struct http_ranged *g, void **ctx)
{
	struct gd *gd = st->priv;
	struct gd_entry *e;
	int r = gd_lookup(gd, key, &e, false);
	if (r < 0)
		return r;
	struct gd_ranged *x = xcalloc(1, sizeof(*x));
	x->c.g = gd;
	snprintf(x->c.url, sizeof(x->c.url), "%s/drive/v3/files/%s?alt=media&supportsAllDrives=true", gd->api, e->id);
	snprintf(x->what, sizeof(x->what), "%s: get %s", st->url, key);
	*g = (struct http_ranged){ get_prep, get_unprep, get_fail, &x->c, x->what };
	*ctx = x;
	return 0;
}

static void gd_ranged_free(void *ctx)
{
	free(ctx);
}

/* --- put --- */

static int src_md5(const struct store_src *src, char out[33])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	int r = 0;
	if (!md || EVP_DigestInit_ex(md, EVP_md5(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return -ENOMEM;
	}
	if (src->mem) {
		EVP_DigestUpdate(md, src->mem, (size_t)src->size);
	} else {
		_cleanup_free_ char *buf = xmalloc(1 << 20);
		uint64_t done = 0;
		while (done < src->size) {
			ssize_t n = pread(src->fd, buf, (size_t)MIN((uint64_t)(1 << 20), src->size - done), (off_t)done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = n < 0 ? -errno : -EIO;
				break;
			}
			EVP_DigestUpdate(md, buf, (size_t)n);
			done += (uint64_t)n;
		}
	}
	EVP_DigestFinal_ex(md, d, &dl);
	EVP_MD_CTX_free(md);
	hex_encode(d, dl, out);
	return r;
}

static char *metadata_json(struct gd *g, const char *key, bool create)
{
	json_t *m = json_object();
	json_object_set_new(m, "name", json_string(key));
	if (create) {
		json_object_set_new(m, "parents", json_pack("[s]", g->folder));
		json_object_set_new(m, "mimeType", json_string("application/octet-stream"));
	}
	char *s = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	return s;
}

/* Read the whole source into memory (small objects only). */
static int src_read_all(const struct store_src *src, char *dst)
{
	if (src->mem) {
		memcpy(dst, src->mem, (size_t)src->size);
		return 0;
	}
	uint64_t done = 0;
	while (done < src->size) {
		ssize_t n = pread(src->fd, dst + done, (size_t)(src->size - done), (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

static int put_multipart(struct store *st, struct gd *g, const char *key, const char *id,
			 const struct store_src *src, struct http_resp *rs)
{
	unsigned char rnd[16];
	char boundary[40];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	hex_encode(rnd, sizeof(rnd), boundary);
	_cleanup_free_ char *meta = metadata_json(g, key, !id);
	_cleanup_free_ char *head = xasprintf("--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n%s\r\n"
					      "--%s\r\nContent-Type: application/octet-stream\r\n\r\n",
					      boundary, meta, boundary);
	_cleanup_free_ char *tail = xasprintf("\r\n--%s--\r\n", boundary);
	size_t hl = strlen(head), tl = strlen(tail), n = (size_t)src->size;
	_cleanup_free_ char *body = xmalloc(hl + n + tl);
	memcpy(body, head, hl);
	int r = src_read_all(src, body + hl);
	if (r < 0)
		return log_error_errno(r, "%s: put %s: read source: %m", st->url, key);
	memcpy(body + hl + n, tail, tl);
	_cleanup_free_ char *url = id ? xasprintf("%s/upload/drive/v3/files/%s?uploadType=multipart&fields=" FILE_FIELDS
						  "&supportsAllDrives=true", g->api, id)
				      : xasprintf("%s/upload/drive/v3/files?uploadType=multipart&fields=" FILE_FIELDS
						  "&supportsAllDrives=true", g->api);
	_cleanup_free_ char *ct = xasprintf("Content-Type: multipart/related; boundary=%s", boundary);
	struct curl_slist *hdrs = curl_slist_append(NULL, ct);
	struct http_req q = { .method = id ? "PATCH" : "POST", .url = url, .headers = hdrs, .body = body,
			      .body_len = hl + n + tl, .body_fd = -1, .progress_total = src->size };
	_cleanup_free_ char *what = xasprintf("%s: put %s", st->url, key);
	r = gd_call(g, &q, rs, what);
	curl_slist_free_all(hdrs);
	return r;
}

/* Parse "bytes=0-N" from a 308's Range header: the next offset. */
static uint64_t committed_from_range(const char *range)
{
	unsigned long long a, b;
	if (range && sscanf(range, "bytes=%llu-%llu", &a, &b) == 2 && a == 0)
		return b + 1;
	return 0;
}

/* Start a resumable session; *session gets the session URI. */
static int resumable_start(struct store *st, struct gd *g, const char *key, const char *id,
			   uint64_t size, char **session)
{
	_cleanup_free_ char *meta = metadata_json(g, key, !id);
	_cleanup_free_ char *url = id ? xasprintf("%s/upload/drive/v3/files/%s?uploadType=resumable&fields=" FILE_FIELDS
						  "&supportsAllDrives=true", g->api, id)
				      : xasprintf("%s/upload/drive/v3/files?uploadType=resumable&fields=" FILE_FIELDS
						  "&supportsAllDrives=true", g->api);
	_cleanup_free_ char *lenh = xasprintf("X-Upload-Content-Length: %llu", (unsigned long long)size);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json; charset=UTF-8");
	hdrs = curl_slist_append(hdrs, "X-Upload-Content-Type: application/octet-stream");
	hdrs = curl_slist_append(hdrs, lenh);
	struct http_req q = { .method = id ? "PATCH" : "POST", .url = url, .headers = hdrs, .body = meta,
			      .body_len = strlen(meta), .body_fd = -1 };
	struct http_resp rs = { 0 };
	_cleanup_free_ char *what = xasprintf("%s: start upload of %s", st->url, key);
	int r = gd_call(g, &q, &rs, what);
	curl_slist_free_all(hdrs);
	if (r == 0) {
		if (!rs.location || !(startswith(rs.location, "https://") || startswith(rs.location, "http://")))
			r = log_error_errno(-EPROTO, "%s: Drive started no upload session (no Location)", what);
		else
			*session = xstrdup(rs.location);
	}
	http_resp_free(&rs);
	return r;
}

/* A request to the session URI (which carries its own authority: Google
 * accepts it without the token, and we still send it). */
static int session_put(struct gd *g, const char *session, const struct store_src *src, uint64_t off,
		       uint64_t n, uint64_t total, struct http_resp *rs)
{
	char cr[96];
	if (n == 0)
		snprintf(cr, sizeof(cr), "Content-Range: bytes */%llu", (unsigned long long)total);
	else
		snprintf(cr, sizeof(cr), "Content-Range: bytes %llu-%llu/%llu", (unsigned long long)off,
			 (unsigned long long)(off + n - 1), (unsigned long long)total);
	struct curl_slist *hdrs = curl_slist_append(NULL, cr);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
	int r = oauth_authorize(&g->oauth, &hdrs);
	if (r < 0) {
		curl_slist_free_all(hdrs);
		return r;
	}
	struct http_req q = { .method = "PUT", .url = session, .headers = hdrs, .body_fd = -1,
			      .progress_base = off, .progress_total = total };
	if (n && src->mem) {
		q.body = (const char *)src->mem + off;
		q.body_len = n;
	} else if (n) {
		q.body_fd = src->fd;
		q.body_off = off;
		q.body_len = n;
	}
	r = http_do(&g->http, &q, rs);
	curl_slist_free_all(hdrs);
	return r;
}

static int put_resumable(struct store *st, struct gd *g, const char *key, const char *id,
			 const struct store_src *src, struct http_resp *rs)
{
	uint64_t chunk = st->opts.upload_chunk ? st->opts.upload_chunk : (16u << 20);
	uint64_t total = src->size, off = 0;
	_cleanup_free_ char *session = NULL;
	_cleanup_free_ char *what = xasprintf("%s: upload %s", st->url, key);
	struct retry rt = RETRY_INIT(&st->opts, &st->stats);
	unsigned restarts = 0, auth_retries = 0;
	bool need_status = false;
	int r;

	for (;;) {
		if (!session) {
			r = resumable_start(st, g, key, id, total, &session);
			if (r < 0)
				return r;
			off = 0;
			need_status = false;
		}
		if (need_status) {
			/* Ask Drive what it has before sending more. */
			r = session_put(g, session, src, 0, 0, total, rs);
		} else {
			uint64_t n = MIN(chunk, total - off);
			r = session_put(g, session, src, off, n, total, rs);
		}
		if (r < 0 && rs->status == 0) {
			if (!http_curl_retryable(rs->curl_code))
				return log_error_errno(r, "%s: %s", what, http_strerror(&g->http, rs));
			_cleanup_free_ char *w = xasprintf("%s at byte %llu: %s", what, (unsigned long long)off,
							   http_strerror(&g->http, rs));
			if (!retry_wait(&rt, -1, w))
				return log_error_errno(r, "%s: %s", what, http_strerror(&g->http, rs));
			need_status = true;
			continue;
		}
		if (r < 0 && rs->status != 308 && !(rs->status >= 200 && rs->status < 300)) {
			/* Broken off after a status line: ask where we are. */
			_cleanup_free_ char *w = xasprintf("%s: %s", what, http_strerror(&g->http, rs));
			if (!retry_wait(&rt, -1, w))
				return log_error_errno(r, "%s: %s", what, http_strerror(&g->http, rs));
			need_status = true;
			continue;
		}
		if (rs->status == 200 || rs->status == 201)
			return 0;
		if (rs->status == 308) {
			uint64_t next = committed_from_range(rs->range);
			if (next > total)
				return log_error_errno(-EPROTO, "%s: Drive claims %llu of %llu bytes", what,
						       (unsigned long long)next, (unsigned long long)total);
			if (next > off || !need_status)
				rt.attempt = 0; /* progress */
			off = next;
			need_status = false;
			if (off == total) {
				/* All bytes are there but the session is open: finish. */
				need_status = true;
				if (!retry_wait(&rt, -1, what))
					return log_error_errno(-EPROTO, "%s: Drive never completed the upload", what);
			}
			continue;
		}
		if (rs->status == 404 || rs->status == 410) {
			/* The session expired: start over, a bounded number of times. */
			if (++restarts > 3)
				return log_error_errno(-EIO, "%s: upload session kept expiring", what);
			log_warn("%s: upload session expired at byte %llu; starting again", what,
				 (unsigned long long)off);
			free(session);
			session = NULL;
			continue;
		}
		bool retry;
		r = gd_judge(g, rs, &retry, &auth_retries, what);
		if (!retry)
			return r;
		_cleanup_free_ char *w = xasprintf("%s: HTTP %ld", what, rs->status);
		if (rs->status != 401 && !retry_wait(&rt, rs->retry_after, w))
			return log_error_errno(r, "%s: HTTP %ld after every retry", what, rs->status);
		need_status = true;
	}
}

static int gd_put(struct store *st, const char *key, const struct store_src *src)
{
	struct gd *g = st->priv;
	struct gd_entry *e = NULL;
	struct http_resp rs = { 0 };
	char md5[33];
	int r = gd_lookup(g, key, &e, false);
	if (r < 0 && r != -ENOENT)
		return r;
	_cleanup_free_ char *id = e ? xstrdup(e->id) : NULL;
	r = src_md5(src, md5);
	if (r < 0)
		return log_error_errno(r, "%s: put %s: read source: %m", st->url, key);
	if (src->size <= MULTIPART_MAX)
		r = put_multipart(st, g, key, id, src, &rs);
	else
		r = put_resumable(st, g, key, id, src, &rs);
	if (r == -ENOENT && id) {
		/* The file we meant to replace is gone: create it instead. */
		cache_drop(g, key);
		http_resp_free(&rs);
		r = src->size <= MULTIPART_MAX ? put_multipart(st, g, key, NULL, src, &rs)
					       : put_resumable(st, g, key, NULL, src, &rs);
	}
	if (r < 0) {
		http_resp_free(&rs);
		return r == -ENOENT ? log_error_errno(-EIO, "%s: put %s: upload target vanished", st->url, key) : r;
	}
	struct gd_file f;
	if (gd_parse_file(rs.body.data, rs.body.len, &f) < 0) {
		http_resp_free(&rs);
		return log_error_errno(-EPROTO, "%s: put %s: Drive's answer is malformed", st->url, key);
	}
	http_resp_free(&rs);
	if (f.size != src->size || (f.md5[0] && strcmp(f.md5, md5) != 0)) {
		log_error("%s: put %s: Drive stored %llu bytes with md5 %s; we sent %llu bytes with md5 %s",
			  st->url, key, (unsigned long long)f.size, f.md5, (unsigned long long)src->size, md5);
		return -EIO;
	}
	snprintf(f.name, sizeof(f.name), "%s", key);
	if (id && !streq(id, f.id))
		log_warn("%s: put %s: Drive answered with another file id", st->url, key);
	cache_put(g, key, &f);
	return 0;
}

static int gd_del_id(struct store *st, struct gd *g, const char *key, const char *id)
{
	_cleanup_free_ char *url = xasprintf("%s/drive/v3/files/%s?supportsAllDrives=true", g->api, id);
	_cleanup_free_ char *what = xasprintf("%s: delete %s", st->url, key);
	struct http_req q = { .method = "DELETE", .url = url, .body_fd = -1 };
	struct http_resp rs = { 0 };
	int r = gd_call(g, &q, &rs, what);
	http_resp_free(&rs);
	return r == -ENOENT ? 0 : r; /* somebody else deleted it: fine */
}

/* Drive cannot create a file only if its name is free, so put_new creates
 * one and then asks which file of that name is the object: the oldest, as
 * for every read (gd_lookup). A writer that lost the race deletes its file.
 * settle_ms between create and check means a file created after the check
 * is younger than ours by more than the clocks' disagreement, so two
 * writers cannot both see themselves as oldest. */
static int gd_put_new(struct store *st, const char *key, const struct store_src *src)
{
	struct gd *g = st->priv;
	struct gd_entry *e = NULL;
	struct http_resp rs = { 0 };
	struct gd_file f;
	char md5[33];
	int r = gd_lookup(g, key, &e, true);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	r = src_md5(src, md5);
	if (r < 0)
		return log_error_errno(r, "%s: put %s: read source: %m", st->url, key);
	r = src->size <= MULTIPART_MAX ? put_multipart(st, g, key, NULL, src, &rs)
				       : put_resumable(st, g, key, NULL, src, &rs);
	if (r == 0 && gd_parse_file(rs.body.data, rs.body.len, &f) < 0)
		r = log_error_errno(-EPROTO, "%s: put %s: Drive's answer is malformed", st->url, key);
	http_resp_free(&rs);
	if (r < 0)
		return r;
	if (f.size != src->size || (f.md5[0] && strcmp(f.md5, md5) != 0)) {
		log_error("%s: put %s: Drive stored %llu bytes with md5 %s; we sent %llu bytes with md5 %s",
			  st->url, key, (unsigned long long)f.size, f.md5, (unsigned long long)src->size, md5);
		gd_del_id(st, g, key, f.id);
		return -EIO;
	}
	usleep(store_settle_ms(st) * 1000u);
	_cleanup_free_ char *ke = q_escape(key);
	_cleanup_free_ char *cond = xasprintf("name = '%s'", ke);
	struct pick p = { .key = key };
	r = gd_list_files(g, cond, pick_oldest, &p);
	if (r < 0)
		return r; /* undecided: our file may be the object, or not */
	if (p.found && streq(p.best.id, f.id)) {
		snprintf(f.name, sizeof(f.name), "%s", key);
		cache_put(g, key, &f);
		return 0;
	}
	/* The oldest is another file. It is ours too when it has our bytes (a
	 * create retried after its answer was lost). */
	bool ours = p.found && p.best.size == f.size && streq(p.best.md5, md5);
	r = gd_del_id(st, g, key, f.id);
	if (r < 0)
		log_warn("%s: put %s: could not delete our younger duplicate %s; readers ignore it", st->url, key, f.id);
	cache_drop(g, key);
	return ours ? 0 : -EEXIST;
}

/* --- list, stat, delete --- */

struct list_ctx {
	struct gd *g;
	const char *prefix;
	store_list_fn fn;
	void *ud;
};

static int list_one(void *ud, const struct gd_file *f)
{
	struct list_ctx *c = ud;
	if (streq(f->mime, FOLDER_MIME) || !startswith(f->name, c->prefix) || store_key_check(f->name) < 0)
		return 0;
	struct gd_entry *e = cache_find(c->g, f->name);
	if (e && e->pass == c->g->pass)
		return 0; /* a younger duplicate: the oldest came first */
	e = cache_put(c->g, f->name, f);
	e->pass = c->g->pass;
	struct store_obj o = { .size = f->size, .mtime = f->mtime };
	snprintf(o.key, sizeof(o.key), "%s", f->name);
	memcpy(o.md5, f->md5, sizeof(o.md5));
	return c->fn(c->ud, &o);
}

static int gd_list(struct store *st, const char *prefix, store_list_fn fn, void *ud)
{
	struct gd *g = st->priv;
	struct list_ctx c = { g, prefix, fn, ud };
	g->pass++;
	return gd_list_files(g, NULL, list_one, &c);
}

static int gd_stat(struct store *st, const char *key, struct store_obj *o)
{
	struct gd *g = st->priv;
	struct gd_entry *e;
	int r = gd_lookup(g, key, &e, true);
	if (r < 0)
		return r;
	snprintf(o->key, sizeof(o->key), "%s", key);
	o->size = e->size;
	o->mtime = e->mtime;
	memcpy(o->md5, e->md5, sizeof(o->md5));
	return 0;
}

struct ids {
	char (*id)[GD_ID_MAX];
	size_t n;
	const char *key;
};

static int collect_ids(void *ud, const struct gd_file *f)
{
	struct ids *s = ud;
	if (!streq(f->name, s->key) || streq(f->mime, FOLDER_MIME))
		return 0;
	s->id = xrealloc(s->id, (s->n + 1) * sizeof(*s->id));
	snprintf(s->id[s->n++], GD_ID_MAX, "%s", f->id);
	return 0;
}

static int gd_del(struct store *st, const char *key)
{
	struct gd *g = st->priv;
	_cleanup_free_ char *ke = q_escape(key);
	_cleanup_free_ char *cond = xasprintf("name = '%s'", ke);
	struct ids s = { .key = key };
	int r = gd_list_files(g, cond, collect_ids, &s);
	for (size_t i = 0; r == 0 && i < s.n; i++) {
		_cleanup_free_ char *url = xasprintf("%s/drive/v3/files/%s?supportsAllDrives=true", g->api, s.id[i]);
		struct http_req q = { .method = "DELETE", .url = url, .body_fd = -1 };
		struct http_resp rs = { 0 };
		_cleanup_free_ char *what = xasprintf("%s: delete %s", st->url, key);
		r = gd_call(g, &q, &rs, what);
		http_resp_free(&rs);
		if (r == -ENOENT)
			r = 0; /* somebody else deleted it: fine */
	}
	free(s.id);
	cache_drop(g, key);
	return r;
}

const struct store_ops store_gdrive_ops = {
	.scheme = "gdrive",
	.open = gd_open,
	.get = gd_get,
	.put = gd_put,
	.put_new = gd_put_new,
	.list = gd_list,
	.del = gd_del,
	.stat = gd_stat,
	.close = gd_close,
	.ranged = gd_ranged,
	.ranged_free = gd_ranged_free,
};
