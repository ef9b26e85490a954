/* SPDX-License-Identifier: MIT */
/*
 * Parsers for what Google's servers send back, as pure functions over a
 * byte buffer (so each can be fuzzed): Drive v3 file resources and list
 * pages, v3 error bodies, and OAuth 2.0 token and device-code responses.
 * All of them reject missing, mistyped and oversized fields with -EPROTO
 * and never allocate more than a small multiple of their input.
 */
#ifndef GDROOT_GDRIVE_JSON_H
#define GDROOT_GDRIVE_JSON_H

#include <stddef.h>
#include <stdint.h>

#define GD_ID_MAX 256
#define GD_TOKEN_MAX 4096
#define GD_LIST_MAX_FILES 1000	/* Drive's pageSize cap */

struct gd_file {
	char id[GD_ID_MAX];
	char name[512];
	char mime[128];
	uint64_t size;		/* 0 for folders */
	int64_t mtime;		/* modifiedTime, seconds; -1 if absent */
	int64_t ctime_ms;	/* createdTime in ms, for ordering; -1 if absent */
	char md5[33];		/* "" if absent */
	int trashed;
};

/* A Drive file resource. Requires id; other fields optional. */
int gd_parse_file(const char *body, size_t len, struct gd_file *out);

/* A files.list page: calls fn for each file, in order; *next_token (owned
 * by the caller, NULL on the last page) gets nextPageToken. fn returning
 * non-zero stops and that value is returned. */
int gd_parse_list(const char *body, size_t len,
		  int (*fn)(void *ud, const struct gd_file *f), void *ud, char **next_token);

/* A v3 error body: {"error":{"code":N,"message":"...","errors":[{"reason":...}]}}.
 * Fills reason and message (truncated to their sizes; "" when absent).
 * Returns 0, or -EPROTO when the body is not such an error. */
int gd_parse_error(const char *body, size_t len, char *reason, size_t rlen,
		   char *message, size_t mlen);

struct oauth_token {
	char access_token[GD_TOKEN_MAX];
	char refresh_token[GD_TOKEN_MAX]; /* "" unless the response has one */
	uint64_t expires_in;		  /* seconds; 3600 if absent */
	char error[64];			  /* OAuth error code, "" on success */
	char error_description[256];
};

/* A token endpoint response (success or OAuth error). Returns 0 when it is
 * one or the other (look at t->error), -EPROTO otherwise. */
int oauth_parse_token(const char *body, size_t len, struct oauth_token *t);

struct oauth_device_code {
	char device_code[GD_TOKEN_MAX];
	char user_code[64];
	char verification_url[512];
	uint64_t expires_in, interval;
};

/* A device authorization response. 0 or -EPROTO. */
int oauth_parse_device_code(const char *body, size_t len, struct oauth_device_code *d);

/* "2026-12-01T15:44:29.123Z" to seconds (and ms). 0 or -EINVAL. */
int gd_parse_time(const char *s, int64_t *secs, int64_t *ms);

#endif
