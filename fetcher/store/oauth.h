/* SPDX-License-Identifier: MIT */
/*
 * OAuth 2.0 for Google Drive: access tokens from a refresh token (the file
 * `gdroot auth` writes, Google's "authorized_user" JSON) or from a service
 * account key (Google's "service_account" JSON: a JWT signed RS256 with
 * OpenSSL), refreshed before they expire and when the server says 401; and
 * the device authorization flow for machines with no browser. No token,
 * secret or assertion is ever logged.
 */
#ifndef GDROOT_OAUTH_H
#define GDROOT_OAUTH_H

#include <curl/curl.h>
#include <openssl/evp.h>

#include "gdrive-json.h"
#include "http.h"

#define OAUTH_DEFAULT_TOKEN_URL "https://oauth2.googleapis.com/token"
#define OAUTH_DEFAULT_DEVICE_URL "https://oauth2.googleapis.com/device/code"
#define OAUTH_DEFAULT_SCOPE "https://www.googleapis.com/auth/drive"

enum oauth_kind { OAUTH_REFRESH_TOKEN, OAUTH_SERVICE_ACCOUNT };

struct oauth {
	struct http *http;		/* borrowed */
	const struct store_opts *opts;	/* borrowed */
	enum oauth_kind kind;
	char *source;			/* credentials file, for messages */
	char *token_url, *scope;
	char *client_id, *client_secret, *refresh_token;
	char *sa_email;
	EVP_PKEY *sa_key;
	char *access_token;		/* NULL until fetched */
	uint64_t refresh_at_ns;		/* monotonic time to refresh */
};

/* Load credentials: opts->credentials, else $GOOGLE_APPLICATION_CREDENTIALS.
 * Returns 0 or -errno (-ENOKEY when none are configured), logged. */
int oauth_init(struct oauth *o, struct http *h, const struct store_opts *opts);
void oauth_free(struct oauth *o);

/* Append "Authorization: Bearer ..." to *hdrs, fetching or refreshing the
 * token first when it is missing or about to expire. 0 or -errno (-EACCES
 * when the token endpoint refuses the credentials). */
int oauth_authorize(struct oauth *o, struct curl_slist **hdrs);
/* Forget the access token (after a 401), so the next authorize refreshes. */
void oauth_invalidate(struct oauth *o);

/* The device flow, step one: ask for a user code. */
int oauth_device_start(struct http *h, const struct store_opts *opts, const char *client_id,
		       const char *scope, struct oauth_device_code *out);
/* Step two: poll until the user approves (refresh token into *refresh_token,
 * owned by the caller), denies (-EACCES) or the code expires (-ETIME). */
int oauth_device_poll(struct http *h, const struct store_opts *opts, const char *client_id,
		      const char *client_secret, const struct oauth_device_code *dc,
		      char **refresh_token);

/* base64url without padding of n bytes; caller frees. */
char *base64url(const unsigned char *p, size_t n);

#endif
