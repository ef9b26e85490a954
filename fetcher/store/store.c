// SPDX-License-Identifier: MIT
/*
 * The store front end: options (from gdroot.conf and store URL queries),
 * URL dispatch to a backend, key checks, and the calls every program uses
 * (store_get, store_put, ...), which check arguments once so the backends
 * need not.
 */
#include "store.h"

#include <ctype.h>

#include "../util/log.h"
#include "../util/util.h"

static const struct store_ops *const backends[] = {
	&store_file_ops,
	&store_gdrive_ops,
	&store_s3_ops,
};

enum opt_kind { OPT_STR, OPT_UINT, OPT_SIZE };

static const struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off;
	const char *help;
} opt_defs[] = {
#define S(f, h) { #f, OPT_STR, offsetof(struct store_opts, f), h }
#define U(f, h) { #f, OPT_UINT, offsetof(struct store_opts, f), h }
	S(ca_file, "CA bundle for TLS verification"),
	U(connect_timeout, "seconds to wait for a connection"),
	U(io_timeout, "seconds a transfer may stall before it is retried"),
	U(retries, "retries of a failing request"),
	U(retry_base_ms, "first retry backoff in ms"),
	U(retry_cap_ms, "longest retry backoff in ms"),
	U(settle_ms, "ms to wait before deciding a create race (Drive, S3)"),
	{ "upload_chunk", OPT_SIZE, offsetof(struct store_opts, upload_chunk), "resumable upload chunk (multiple of 256K)" },
	S(credentials, "OAuth token file (gdroot auth) or service-account key"),
	S(drive_api, "Drive API base URL"),
	S(oauth_token_url, "OAuth 2.0 token endpoint"),
	S(oauth_device_url, "OAuth 2.0 device authorization endpoint"),
	S(oauth_scope, "OAuth scope"),
	S(client_id, "OAuth client id (gdroot auth)"),
	S(client_secret, "OAuth client secret (gdroot auth)"),
	S(endpoint, "S3 endpoint URL"),
	S(region, "S3 region"),
	S(style, "S3 addressing: path or virtual"),
	S(access_key, "S3 access key id"),
	S(secret_key, "S3 secret access key"),
	S(session_token, "S3 session token"),
#undef S
#undef U
};

static bool opt_secret(const char *name)
{
	return streq(name, "secret_key") || streq(name, "session_token") ||
	       streq(name, "client_secret");
}

int store_opts_set(struct store_opts *o, const char *name, const char *value)
{
	for (size_t i = 0; i < ARRAY_SIZE(opt_defs); i++) {
		const struct opt_def *d = &opt_defs[i];
		if (!streq(d->name, name))
			continue;
		char *base = (char *)o + d->off;
		uint64_t v;
		switch (d->kind) {
		case OPT_STR:
			free(*(char **)base);
			*(char **)base = *value ? xstrdup(value) : NULL;
			return 0;
		case OPT_UINT:
			if (parse_u64(value, &v) < 0 || v > 1000000000)
				return log_error_errno(-EINVAL, "option %s: '%s' is not a whole number", name, value);
			*(unsigned *)base = (unsigned)v;
			if (streq(name, "retries"))
				o->retries_set = true;
			if (streq(name, "settle_ms"))
				o->settle_set = true;
			return 0;
		case OPT_SIZE:
			if (parse_size(value, &v) < 0)
				return log_error_errno(-EINVAL, "option %s: '%s' is not a size (like 16M)", name, value);
			if (streq(name, "upload_chunk") && (v == 0 || v % (256 << 10)))
				return log_error_errno(-EINVAL, "option upload_chunk: %s is not a multiple of 256K", value);
			*(uint64_t *)base = v;
			return 0;
		}
	}
	return -ENOENT;
}

void store_opts_copy(struct store_opts *dst, const struct store_opts *src)
{
	*dst = *src;
	if (src->ca_blob) {
		dst->ca_blob = xmalloc(src->ca_blob_len + 1);
		memcpy(dst->ca_blob, src->ca_blob, src->ca_blob_len);
	}
	for (size_t i = 0; i < ARRAY_SIZE(opt_defs); i++) {
		if (opt_defs[i].kind != OPT_STR)
			continue;
		char **p = (char **)((char *)dst + opt_defs[i].off);
		if (*p)
			*p = xstrdup(*p);
	}
}

void store_opts_free(struct store_opts *o)
{
	free(o->ca_blob);
	o->ca_blob = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(opt_defs); i++) {
		if (opt_defs[i].kind != OPT_STR)
			continue;
		char **p = (char **)((char *)o + opt_defs[i].off);
		free(*p);
		*p = NULL;
	}
}

static char *strip(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

int store_opts_load(struct store_opts *o, const char *path,
		    int (*other)(void *ud, const char *name, const char *value), void *ud)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t n;

	if (!f)
		return log_error_errno(-errno, "config %s: %m", path);
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		char *s = strip(line);
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq)
			return log_error_errno(-EINVAL, "config %s:%u: expected 'name = value'", path, lineno);
		*eq = 0;
		char *name = strip(s), *value = strip(eq + 1);
		size_t vl = strlen(value);
		if (vl >= 2 && ((value[0] == '"' && value[vl - 1] == '"') ||
				(value[0] == '\'' && value[vl - 1] == '\''))) {
			value[vl - 1] = 0;
			value++;
		}
		int r = store_opts_set(o, name, value);
		if (r == -ENOENT && other)
			r = other(ud, name, value);
		if (r == -ENOENT)
			return log_error_errno(-EINVAL, "config %s:%u: unknown setting '%s'", path, lineno, name);
		if (r < 0)
			return log_error_errno(r, "config %s:%u: bad value for '%s'", path, lineno, name);
	}
	return 0;
}

int store_key_check(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n >= STORE_KEY_MAX)
		return -EINVAL;
	const char *c = key;
	bool comp_start = true;
	for (; *c; c++) {
		if (comp_start && (*c == '.' || *c == '/'))
			return -EINVAL;
		comp_start = false;
		if (*c == '/') {
			comp_start = true;
			continue;
		}
		if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-')
			return -EINVAL;
	}
	return comp_start ? -EINVAL : 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode in place. */
static int url_unescape(char *s)
{
	char *w = s;
	for (; *s; s++) {
		if (*s == '%') {
			int a = hexval(s[1]), b = a >= 0 ? hexval(s[2]) : -1;
			if (b < 0)
				return -EINVAL;
			*w++ = (char)(a * 16 + b);
			s += 2;
		} else if (*s == '+') {
			*w++ = ' ';
		} else {
			*w++ = *s;
		}
	}
	*w = 0;
	return 0;
}

static int apply_query(struct store_opts *o, const char *url, char *query)
{
	char *save = NULL;
	for (char *kv = strtok_r(query, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq)
			return log_error_errno(-EINVAL, "store URL %s: parameter '%s' has no value", url, kv);
		*eq = 0;
		if (url_unescape(kv) < 0 || url_unescape(eq + 1) < 0)
			return log_error_errno(-EINVAL, "store URL %s: bad %%-escape in '%s'", url, kv);
		if (opt_secret(kv))
			return log_error_errno(-EINVAL, "store URL %s: '%s' must not be in a URL "
						       "(use the config file or the environment)", url, kv);
		int r = store_opts_set(o, kv, eq + 1);
		if (r == -ENOENT)
			return log_error_errno(-EINVAL, "store URL %s: unknown parameter '%s'", url, kv);
		if (r < 0)
			return r;
	}
	return 0;
}

int store_open(const char *url, const struct store_opts *opts, struct store **out)
{
	const char *sep = strstr(url, "://");
	if (!sep)
		return log_error_errno(-EINVAL, "store URL '%s': expected gdrive://FOLDER_ID, "
					       "s3://BUCKET/PREFIX or file:///PATH", url);
	size_t sl = (size_t)(sep - url);
	const struct store_ops *ops = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
		if (strlen(backends[i]->scheme) == sl && strncmp(backends[i]->scheme, url, sl) == 0)
			ops = backends[i];
	if (!ops)
		return log_error_errno(-EINVAL, "store URL '%s': unknown scheme '%.*s' "
					       "(gdrive, s3 or file)", url, (int)sl, url);

	struct store *st = xcalloc(1, sizeof(*st));
	st->ops = ops;
	if (opts)
		store_opts_copy(&st->opts, opts);
	_cleanup_free_ char *loc = xstrdup(sep + 3);
	char *q = strchr(loc, '?');
	if (q) {
		*q++ = 0;
		int r = apply_query(&st->opts, url, q);
		if (r < 0) {
			store_opts_free(&st->opts);
			free(st);
			return r;
		}
	}
	st->url = xasprintf("%.*s://%s", (int)sl, url, loc);
	int r = ops->open(st, loc);
	if (r < 0) {
		store_opts_free(&st->opts);
		free(st->url);
		free(st);
		return r;
	}
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	st->ops->close(st);
	store_opts_free(&st->opts);
	free(st->url);
	free(st);
}

static int check_key(const struct store *st, const char *key)
{
	if (store_key_check(key) < 0)
		return log_error_errno(-EINVAL, "%s: '%s' is not a valid object key", st->url, key);
	return 0;
}

int64_t store_get(struct store *st, const char *key, uint64_t off, uint64_t len,
		  struct store_sink *sink)
{
	int r = check_key(st, key);
	if (r < 0)
		return r;
	if (len == 0)
		return 0;
	return st->ops->get(st, key, off, len, sink);
}

struct mem_sink {
	struct store_sink sink;
	char *p;
	size_t left;
};

static int mem_sink_write(struct store_sink *s, const void *p, size_t n)
{
	struct mem_sink *m = (struct mem_sink *)s;
	if (n > m->left)
		return -EPROTO; /* store_get never asks for more than len */
	memcpy(m->p, p, n);
	m->p += n;
	m->left -= n;
	return 0;
}

int64_t store_pread(struct store *st, const char *key, void *buf, size_t len, uint64_t off)
{
	struct mem_sink m = { { mem_sink_write }, buf, len };
	return store_get(st, key, off, len, &m.sink);
}

static int check_put(struct store *st, const char *key, const struct store_src *src)
{
	int r = check_key(st, key);
	if (r < 0)
		return r;
	if (!src->mem && src->fd < 0 && src->size)
		return log_error_errno(-EINVAL, "%s: put %s: no source", st->url, key);
	return 0;
}

int store_put(struct store *st, const char *key, const struct store_src *src)
{
	int r = check_put(st, key, src);
	return r < 0 ? r : st->ops->put(st, key, src);
}

int store_put_new(struct store *st, const char *key, const struct store_src *src)
{
	int r = check_put(st, key, src);
	if (r < 0)
		return r;
	if (!st->ops->put_new)
		return log_error_errno(-EOPNOTSUPP, "%s: this store cannot create an object exclusively", st->url);
	return st->ops->put_new(st, key, src);
}

unsigned store_settle_ms(const struct store *st)
{
	return st->opts.settle_set ? st->opts.settle_ms : 1000;
}

int store_list(struct store *st, const char *prefix, store_list_fn fn, void *ud)
{
	return st->ops->list(st, prefix ? prefix : "", fn, ud);
}

int store_del(struct store *st, const char *key)
{
	int r = check_key(st, key);
	if (r < 0)
		return r;
	return st->ops->del(st, key);
}

int store_stat(struct store *st, const char *key, struct store_obj *obj)
{
	int r = check_key(st, key);
	if (r < 0)
		return r;
	memset(obj, 0, sizeof(*obj));
	obj->mtime = -1;
	return st->ops->stat(st, key, obj);
}

int store_ranged(struct store *st, const char *key, struct http_ranged *g, void **ctx)
{
	int r = check_key(st, key);
	if (r < 0)
		return r;
	if (!st->ops->ranged)
		return -EOPNOTSUPP;
	return st->ops->ranged(st, key, g, ctx);
}

void store_ranged_free(struct store *st, void *ctx)
{
	if (ctx && st->ops->ranged_free)
		st->ops->ranged_free(ctx);
}
