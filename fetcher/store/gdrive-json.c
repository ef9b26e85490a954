// SPDX-License-Identifier: MIT
/*
 * Implementation of gdrive-json.h with jansson. Input is parsed with a
 * depth and size limit, and every string copied out is bounded.
 */
#include "gdrive-json.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "../util/util.h"

#define JSON_BODY_MAX (16u << 20)

static json_t *load(const char *body, size_t len)
{
	json_error_t err;
	if (!body || len == 0 || len > JSON_BODY_MAX)
		return NULL;
	/* jansson limits nesting depth itself (JSON_PARSER_MAX_DEPTH). */
	return json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
}

/* Copy string member key of o into out[n]. Returns 1 copied, 0 absent,
 * -EPROTO when present but not a string or too long. */
static int get_str(json_t *o, const char *key, char *out, size_t n)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -EPROTO;
	size_t l = json_string_length(v);
	if (l >= n)
		return -EPROTO;
	memcpy(out, json_string_value(v), l);
	out[l] = 0;
	if (memchr(out, 0, l))
		return -EPROTO; /* embedded NUL */
	return 1;
}

/* Copy, truncating instead of failing (for messages). */
static void get_str_trunc(json_t *o, const char *key, char *out, size_t n)
{
	json_t *v = json_object_get(o, key);
	out[0] = 0;
	if (json_is_string(v) && n > 0)
		snprintf(out, n, "%s", json_string_value(v));
}

int gd_parse_time(const char *s, int64_t *secs, int64_t *ms)
{
	struct tm tm = { 0 };
	int frac = 0, nd = 0;
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (nd < 3) {
				frac = frac * 10 + (*p - '0');
				nd++;
			}
			p++;
		}
		while (nd > 0 && nd < 3) {
			frac *= 10;
			nd++;
		}
	}
	if (strcmp(p, "Z") != 0)
		return -EINVAL;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	if (secs)
		*secs = t;
	if (ms)
		*ms = (int64_t)t * 1000 + frac;
	return 0;
}

static int file_from_json(json_t *o, struct gd_file *f)
{
	char buf[64];
	int r;
	memset(f, 0, sizeof(*f));
	f->mtime = -1;
	f->ctime_ms = -1;
	if (!json_is_object(o))
		return -EPROTO;
	if ((r = get_str(o, "id", f->id, sizeof(f->id))) <= 0)
		return -EPROTO;
	if (get_str(o, "name", f->name, sizeof(f->name)) < 0 ||
	    get_str(o, "mimeType", f->mime, sizeof(f->mime)) < 0)
		return -EPROTO;
	/* Drive sends int64 fields as strings. */
	if ((r = get_str(o, "size", buf, sizeof(buf))) < 0)
		return -EPROTO;
	if (r == 1 && parse_u64(buf, &f->size) < 0)
		return -EPROTO;
	if ((r = get_str(o, "md5Checksum", f->md5, sizeof(f->md5))) < 0)
		return -EPROTO;
	if (r == 1 && strlen(f->md5) != 32)
		return -EPROTO;
	if ((r = get_str(o, "modifiedTime", buf, sizeof(buf))) < 0)
		return -EPROTO;
	if (r == 1 && gd_parse_time(buf, &f->mtime, NULL) < 0)
		return -EPROTO;
	if ((r = get_str(o, "createdTime", buf, sizeof(buf))) < 0)
		return -EPROTO;
	if (r == 1 && gd_parse_time(buf, NULL, &f->ctime_ms) < 0)
		return -EPROTO;
	json_t *tr = json_object_get(o, "trashed");
	if (tr && !json_is_boolean(tr))
		return -EPROTO;
	f->trashed = json_is_true(tr);
	return 0;
}

int gd_parse_file(const char *body, size_t len, struct gd_file *out)
{
	json_t *o = load(body, len);
	if (!o)
		return -EPROTO;
	int r = file_from_json(o, out);
	json_decref(o);
	return r;
}

int gd_parse_list(const char *body, size_t len,
		  int (*fn)(void *ud, const struct gd_file *f), void *ud, char **next_token)
{
	json_t *o = load(body, len);
	int r = 0;
	*next_token = NULL;
	if (!o)
		return -EPROTO;
	json_t *files = json_object_get(o, "files");
	json_t *next = json_object_get(o, "nextPageToken");
	if (!json_is_object(o) || !json_is_array(files) || json_array_size(files) > GD_LIST_MAX_FILES ||
	    (next && !json_is_string(next)) || (next && json_string_length(next) > GD_TOKEN_MAX)) {
		json_decref(o);
		return -EPROTO;
	}
	size_t i;
	json_t *v;
	json_array_foreach(files, i, v) {
		struct gd_file f;
		if ((r = file_from_json(v, &f)) < 0)
			break;
		if ((r = fn(ud, &f)) != 0)
			break;
	}
	if (r == 0 && next && json_string_length(next) > 0)
		*next_token = xstrdup(json_string_value(next));
	json_decref(o);
	return r;
}

int gd_parse_error(const char *body, size_t len, char *reason, size_t rlen,
		   char *message, size_t mlen)
{
	json_t *o = load(body, len);
	if (rlen)
		reason[0] = 0;
	if (mlen)
		message[0] = 0;
	if (!o)
		return -EPROTO;
	json_t *e = json_object_get(o, "error");
	int r = -EPROTO;
	if (json_is_object(e)) {
		get_str_trunc(e, "message", message, mlen);
		json_t *errs = json_object_get(e, "errors");
		if (json_is_array(errs) && json_array_size(errs) > 0)
			get_str_trunc(json_array_get(errs, 0), "reason", reason, rlen);
		if (!reason[0])
			get_str_trunc(e, "status", reason, rlen);
		r = 0;
	} else if (json_is_string(e)) {
		/* OAuth-style error on a Drive URL. */
		get_str_trunc(o, "error", reason, rlen);
		get_str_trunc(o, "error_description", message, mlen);
		r = 0;
	}
	json_decref(o);
	return r;
}

int oauth_parse_token(const char *body, size_t len, struct oauth_token *t)
{
	json_t *o = load(body, len);
	int r = -EPROTO;
	memset(t, 0, sizeof(*t));
	t->expires_in = 3600;
	if (!json_is_object(o))
		goto out;
	if (json_object_get(o, "error")) {
		if (get_str(o, "error", t->error, sizeof(t->error)) <= 0)
			goto out;
		get_str_trunc(o, "error_description", t->error_description, sizeof(t->error_description));
		r = 0;
		goto out;
	}
	if (get_str(o, "access_token", t->access_token, sizeof(t->access_token)) <= 0 ||
	    !t->access_token[0] || get_str(o, "refresh_token", t->refresh_token, sizeof(t->refresh_token)) < 0)
		goto out;
	json_t *exp = json_object_get(o, "expires_in");
	if (exp) {
		if (!json_is_integer(exp) || json_integer_value(exp) < 0 ||
		    json_integer_value(exp) > 10 * 365 * 86400)
			goto out;
		t->expires_in = (uint64_t)json_integer_value(exp);
	}
	/* The token goes into an HTTP header: no control characters. */
	for (const char *c = t->access_token; *c; c++)
		if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
			goto out;
	r = 0;
out:
	json_decref(o);
	return r;
}

int oauth_parse_device_code(const char *body, size_t len, struct oauth_device_code *d)
{
	json_t *o = load(body, len);
	int r = -EPROTO;
	memset(d, 0, sizeof(*d));
	if (!json_is_object(o))
		goto out;
	if (get_str(o, "device_code", d->device_code, sizeof(d->device_code)) <= 0 ||
	    get_str(o, "user_code", d->user_code, sizeof(d->user_code)) <= 0)
		goto out;
	/* Google says verification_url; RFC 8628 says verification_uri. */
	if (get_str(o, "verification_url", d->verification_url, sizeof(d->verification_url)) <= 0 &&
	    get_str(o, "verification_uri", d->verification_url, sizeof(d->verification_url)) <= 0)
		goto out;
	json_t *exp = json_object_get(o, "expires_in"), *iv = json_object_get(o, "interval");
	if (!json_is_integer(exp) || json_integer_value(exp) <= 0 || json_integer_value(exp) > 86400)
		goto out;
	d->expires_in = (uint64_t)json_integer_value(exp);
	d->interval = 5;
	if (iv) {
		if (!json_is_integer(iv) || json_integer_value(iv) < 0 || json_integer_value(iv) > 3600)
			goto out;
		d->interval = (uint64_t)json_integer_value(iv);
	}
	r = 0;
out:
	json_decref(o);
	return r;
}
