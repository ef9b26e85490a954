// SPDX-License-Identifier: MIT
/*
 * Implementation of oauth.h: credential files, the token endpoint (with
 * retries on 429/5xx and connection errors), service-account JWTs, and the
 * device authorization flow.
 */
#include "oauth.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <time.h>

#include "../util/log.h"
#include "../util/util.h"

#define CRED_FILE_MAX (64u << 10)

static const char *token_url(const struct store_opts *o, const char *from_file)
{
	if (o->oauth_token_url)
		return o->oauth_token_url;
	return from_file ? from_file : OAUTH_DEFAULT_TOKEN_URL;
}

static char *json_strdup(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_string(v) && json_string_length(v) > 0 ? xstrdup(json_string_value(v)) : NULL;
}

int oauth_init(struct oauth *o, struct http *h, const struct store_opts *opts)
{
	const char *path = opts->credentials ? opts->credentials : getenv("GOOGLE_APPLICATION_CREDENTIALS");
	_cleanup_free_ char *text = NULL;
	json_error_t jerr;
	ssize_t n;
	int r = 0;

	memset(o, 0, sizeof(*o));
	o->http = h;
	o->opts = opts;
	if (!path || !*path)
		return log_error_errno(-ENOKEY, "no Google credentials: set credentials = FILE (made by "
						"'gdroot auth', or a service-account key)");
	n = read_file(path, CRED_FILE_MAX, &text);
	if (n < 0)
		return log_error_errno((int)n, "credentials %s: %m", path);
	json_t *j = json_loadb(text, (size_t)n, 0, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		return log_error_errno(-EINVAL, "credentials %s: not a JSON object (line %d: %s)", path,
				       jerr.line, jerr.text);
	}
	o->source = xstrdup(path);
	json_t *type = json_object_get(j, "type");
	const char *t = json_is_string(type) ? json_string_value(type) : "authorized_user";
	_cleanup_free_ char *file_token_uri = json_strdup(j, "token_uri");
	o->scope = xstrdup(opts->oauth_scope ? opts->oauth_scope : OAUTH_DEFAULT_SCOPE);
	if (streq(t, "service_account")) {
		o->kind = OAUTH_SERVICE_ACCOUNT;
		o->sa_email = json_strdup(j, "client_email");
		_cleanup_free_ char *pem = json_strdup(j, "private_key");
		if (!o->sa_email || !pem) {
			r = log_error_errno(-EINVAL, "credentials %s: service account key lacks "
						     "client_email or private_key", path);
			goto out;
		}
		BIO *bio = BIO_new_mem_buf(pem, -1);
		o->sa_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (!o->sa_key || EVP_PKEY_base_id(o->sa_key) != EVP_PKEY_RSA) {
			r = log_error_errno(-EINVAL, "credentials %s: private_key is not a PEM RSA key", path);
			goto out;
		}
	} else if (streq(t, "authorized_user")) {
		o->kind = OAUTH_REFRESH_TOKEN;
		o->client_id = json_strdup(j, "client_id");
		o->client_secret = json_strdup(j, "client_secret");
		o->refresh_token = json_strdup(j, "refresh_token");
		if (!o->client_id || !o->refresh_token) {
			r = log_error_errno(-EINVAL, "credentials %s: needs client_id and refresh_token", path);
			goto out;
		}
	} else {
		r = log_error_errno(-EINVAL, "credentials %s: unknown type '%s' (authorized_user or "
					     "service_account)", path, t);
		goto out;
	}
	o->token_url = xstrdup(token_url(opts, file_token_uri));
out:
	json_decref(j);
	if (r < 0)
		oauth_free(o);
	return r;
}

void oauth_free(struct oauth *o)
{
	free(o->source);
	free(o->token_url);
	free(o->scope);
	free(o->client_id);
	if (o->client_secret)
		explicit_bzero(o->client_secret, strlen(o->client_secret));
	free(o->client_secret);
	if (o->refresh_token)
		explicit_bzero(o->refresh_token, strlen(o->refresh_token));
	free(o->refresh_token);
	free(o->sa_email);
	EVP_PKEY_free(o->sa_key);
	if (o->access_token)
		explicit_bzero(o->access_token, strlen(o->access_token));
	free(o->access_token);
	memset(o, 0, sizeof(*o));
}

char *base64url(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = 0;
	for (char *c = out; *c; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	return out;
}

static char *jwt_assertion(struct oauth *o)
{
	time_t now = time(NULL);
	json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", o->sa_email, "scope", o->scope,
				   "aud", o->token_url, "iat", (json_int_t)now, "exp", (json_int_t)now + 3600);
	char *cj = json_dumps(claims, JSON_COMPACT);
	json_decref(claims);
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	_cleanup_free_ char *h64 = base64url((const unsigned char *)header, strlen(header));
	_cleanup_free_ char *c64 = base64url((const unsigned char *)cj, strlen(cj));
	free(cj);
	_cleanup_free_ char *input = xasprintf("%s.%s", h64, c64);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	char *out = NULL;
	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, o->sa_key) == 1 &&
	    EVP_DigestSignUpdate(md, input, strlen(input)) == 1 &&
	    EVP_DigestSignFinal(md, NULL, &siglen) == 1 && siglen <= sizeof(sig) &&
	    EVP_DigestSignFinal(md, sig, &siglen) == 1) {
		_cleanup_free_ char *s64 = base64url(sig, siglen);
		out = xasprintf("%s.%s", input, s64);
	}
	EVP_MD_CTX_free(md);
	return out;
}

/* application/x-www-form-urlencoded from NULL-terminated name, value pairs. */
static char *form(CURL *c, const char *const *kv)
{
	char *out = xstrdup("");
	for (; kv[0]; kv += 2) {
		char *e = curl_easy_escape(c, kv[1] ? kv[1] : "", 0);
		char *n = xasprintf("%s%s%s=%s", out, *out ? "&" : "", kv[0], e ? e : "");
		curl_free(e);
		explicit_bzero(out, strlen(out));
		free(out);
		out = n;
	}
	return out;
}

/* POST a form to url with retries on transient failures. On 0, resp holds
 * the final answer (any status). */
static int post_form(struct http *h, const struct store_opts *opts, const char *url, char *body,
		     struct http_resp *resp, const char *what)
{
	struct retry rt = RETRY_INIT(opts, h->stats);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	int r;
	for (;;) {
		struct http_req q = { .method = "POST", .url = url, .headers = hdrs, .body = body,
				      .body_len = strlen(body), .body_fd = -1 };
		r = http_do(h, &q, resp);
		if (r == 0 && !http_status_retryable(resp->status))
			break;
		if (r < 0 && !http_curl_retryable(resp->curl_code)) {
			r = log_error_errno(r, "%s: %s: %s", what, url, http_strerror(h, resp));
			break;
		}
		_cleanup_free_ char *w = r < 0 ? xasprintf("%s: %s", what, http_strerror(h, resp))
					       : xasprintf("%s: HTTP %ld", what, resp->status);
		if (!retry_wait(&rt, resp->retry_after, w)) {
			r = log_error_errno(r < 0 ? r : -EIO, "%s: %s: no answer after every retry", what, url);
			break;
		}
	}
	curl_slist_free_all(hdrs);
	return r;
}

static int fetch_token(struct oauth *o)
{
	CURL *c = o->http->curl;
	_cleanup_free_ char *assertion = NULL;
	char *body;
	if (o->kind == OAUTH_SERVICE_ACCOUNT) {
		assertion = jwt_assertion(o);
		if (!assertion)
			return log_error_errno(-EINVAL, "credentials %s: signing the JWT failed", o->source);
		const char *kv[] = { "grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer",
				     "assertion", assertion, NULL };
		body = form(c, kv);
	} else {
		/* A public client (no secret) sends no client_secret pair. */
		const char *kv[] = { "grant_type", "refresh_token", "client_id", o->client_id,
				     "refresh_token", o->refresh_token, "client_secret", o->client_secret, NULL };
		if (!o->client_secret)
			kv[6] = NULL;
		body = form(c, kv);
	}
	struct http_resp rs = { 0 };
	int r = post_form(o->http, o->opts, o->token_url, body, &rs, "get an access token");
	explicit_bzero(body, strlen(body));
	free(body);
	if (r < 0)
		goto out;
	struct oauth_token t;
	if (oauth_parse_token(rs.body.data, rs.body.len, &t) < 0) {
		r = log_error_errno(-EPROTO, "token endpoint %s: HTTP %ld with an unreadable body",
				    o->token_url, rs.status);
		goto out;
	}
	if (t.error[0] || rs.status != 200) {
		r = log_error_errno(-EACCES, "token endpoint %s refused the credentials in %s: HTTP %ld %s%s%s%s",
				    o->token_url, o->source, rs.status, t.error[0] ? t.error : "",
				    t.error_description[0] ? " (" : "", t.error_description,
				    t.error_description[0] ? ")" : "");
		if (streq(t.error, "invalid_grant") && o->kind == OAUTH_REFRESH_TOKEN)
			log_error("the refresh token was revoked or has expired: run 'gdroot auth' again");
		goto out;
	}
	if (o->access_token)
		explicit_bzero(o->access_token, strlen(o->access_token));
	free(o->access_token);
	o->access_token = xstrdup(t.access_token);
	/* Refresh ahead of expiry: a minute early, or a quarter of a short
	 * lifetime. */
	uint64_t life = t.expires_in ? t.expires_in : 1;
	explicit_bzero(&t, sizeof(t));
	uint64_t margin_ms = MIN(60000ull, life * 1000 / 4);
	o->refresh_at_ns = now_ns() + (life * 1000 - margin_ms) * 1000000ull;
	o->http->stats->token_refreshes++;
	log_debug("got an access token from %s, valid %llu s", o->token_url, (unsigned long long)life);
out:
	http_resp_free(&rs);
	return r;
}

int oauth_authorize(struct oauth *o, struct curl_slist **hdrs)
{
	if (!o->access_token || now_ns() >= o->refresh_at_ns) {
		int r = fetch_token(o);
		if (r < 0)
			return r;
	}
	_cleanup_free_ char *h = xasprintf("Authorization: Bearer %s", o->access_token);
	*hdrs = curl_slist_append(*hdrs, h);
	explicit_bzero(h, strlen(h));
	return 0;
}

void oauth_invalidate(struct oauth *o)
{
	if (o->access_token)
		explicit_bzero(o->access_token, strlen(o->access_token));
	free(o->access_token);
	o->access_token = NULL;
}

int oauth_device_start(struct http *h, const struct store_opts *opts, const char *client_id,
		       const char *scope, struct oauth_device_code *out)
{
	const char *url = opts->oauth_device_url ? opts->oauth_device_url : OAUTH_DEFAULT_DEVICE_URL;
	const char *kv[] = { "client_id", client_id, "scope", scope, NULL };
	_cleanup_free_ char *body = form(h->curl, kv);
	struct http_resp rs = { 0 };
	int r = post_form(h, opts, url, body, &rs, "device authorization");
	if (r < 0)
		goto out;
	if (rs.status != 200) {
		struct oauth_token t;
		if (oauth_parse_token(rs.body.data, rs.body.len, &t) == 0 && t.error[0])
			r = log_error_errno(-EACCES, "device authorization %s: HTTP %ld %s %s", url, rs.status,
					    t.error, t.error_description);
		else
			r = log_error_errno(-EPROTO, "device authorization %s: HTTP %ld", url, rs.status);
		goto out;
	}
	if (oauth_parse_device_code(rs.body.data, rs.body.len, out) < 0)
		r = log_error_errno(-EPROTO, "device authorization %s: unreadable answer", url);
out:
	http_resp_free(&rs);
	return r;
}

int oauth_device_poll(struct http *h, const struct store_opts *opts, const char *client_id,
		      const char *client_secret, const struct oauth_device_code *dc, char **refresh_token)
{
	const char *url = opts->oauth_token_url ? opts->oauth_token_url : OAUTH_DEFAULT_TOKEN_URL;
	uint64_t interval = dc->interval ? dc->interval : 5;
	uint64_t deadline = now_ns() + dc->expires_in * 1000000000ull;
	const char *kv[] = { "client_id", client_id, "device_code", dc->device_code, "grant_type",
			     "urn:ietf:params:oauth:grant-type:device_code", "client_secret", client_secret, NULL };
	if (!client_secret)
		kv[6] = NULL;
	_cleanup_free_ char *body = form(h->curl, kv);
	int r;

	while (now_ns() < deadline) {
		struct timespec ts = { .tv_sec = (time_t)interval };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		struct http_resp rs = { 0 };
		r = post_form(h, opts, url, body, &rs, "device flow token poll");
		if (r < 0)
			return r;
		struct oauth_token t;
		r = oauth_parse_token(rs.body.data, rs.body.len, &t);
		long status = rs.status;
		http_resp_free(&rs);
		if (r < 0)
			return log_error_errno(-EPROTO, "token endpoint %s: HTTP %ld, unreadable", url, status);
		if (!t.error[0] && status == 200) {
			if (!t.refresh_token[0])
				return log_error_errno(-EPROTO, "token endpoint %s: approved, but sent no refresh token", url);
			*refresh_token = xstrdup(t.refresh_token);
			explicit_bzero(&t, sizeof(t));
			return 0;
		}
		if (streq(t.error, "authorization_pending"))
			continue;
		if (streq(t.error, "slow_down")) {
			interval += 5;
			continue;
		}
		if (streq(t.error, "access_denied"))
			return log_error_errno(-EACCES, "the request was denied at the verification page");
		if (streq(t.error, "expired_token"))
			return log_error_errno(-ETIME, "the code expired before it was approved: run gdroot auth again");
		return log_error_errno(-EACCES, "token endpoint %s: %s %s", url, t.error, t.error_description);
	}
	return log_error_errno(-ETIME, "the code expired before it was approved: run gdroot auth again");
}
