/* SPDX-License-Identifier: MIT */
/*
 * The S3 wire format that is not HTTP itself: the XML bodies S3 answers
 * (ListObjectsV2 results and Error documents), the timestamp and ETag forms
 * inside them, and the URL of a bucket in path or virtual-host style. Every
 * function here is pure (no I/O, no logging, no global state besides
 * libxml2's one-time initialisation), so it can be unit-tested and fuzzed.
 *
 * The XML parsers take a whole body from memory and treat it as hostile:
 * bodies over S3_XML_MAX, documents with a DTD (so no entity can expand),
 * malformed or truncated XML, pages of more than S3_LIST_MAX entries and
 * texts over S3_TEXT_MAX bytes are all refused with -EPROTO.
 */
#ifndef GDROOT_S3_XML_H
#define GDROOT_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_XML_MAX (8u << 20)	/* largest body parsed (http.c caps at 8 MiB) */
#define S3_LIST_MAX 10000	/* most Contents in one page (S3 sends <= 1000) */
#define S3_TEXT_MAX 4096	/* longest text of one element (keys: 1024) */

struct s3_list_entry {
	char *key;		/* owned; full key, bucket-relative */
	uint64_t size;
	int64_t mtime;		/* seconds since the epoch; -1 if absent */
	char md5[33];		/* lowercase hex from a plain ETag; "" if none */
};

/* One page of a ListObjectsV2 result. */
struct s3_list {
	struct s3_list_entry *v; /* owned array of n */
	size_t n;
	bool truncated;		/* IsTruncated: another page follows */
	char *next_token;	/* owned NextContinuationToken; NULL if absent */
	int64_t key_count;	/* KeyCount; -1 if absent */
};

/* Parse a ListBucketResult. Contents need Key and Size; LastModified and
 * ETag are optional. A truncated page must carry a NextContinuationToken.
 * Returns 0 with *out filled (free it with s3_list_free, also after a
 * failure), or -EPROTO. */
int s3_xml_parse_list(const char *p, size_t n, struct s3_list *out);
void s3_list_free(struct s3_list *l);

/* An S3 Error document: <Error><Code>..</Code><Message>..</Message>. */
struct s3_error {
	char *code;		/* owned; NULL if absent */
	char *message;		/* owned; NULL if absent */
};

/* Parse an Error body. Returns 0 with *out filled (either field may be
 * NULL; free with s3_error_free, also after a failure), or -EPROTO when the
 * body is not an Error document. */
int s3_xml_parse_error(const char *p, size_t n, struct s3_error *out);
void s3_error_free(struct s3_error *e);

/* Parse an ISO 8601 UTC time as S3 writes it, "2009-10-12T17:50:30.000Z"
 * (fraction optional). Returns 0 or -EINVAL. */
int s3_time_parse(const char *s, int64_t *out);

/* The MD5 of an ETag when it is a plain one ("\"<32 hex>\"" or bare): writes
 * 32 lowercase hex digits and a NUL to md5 and returns 0; -EINVAL for
 * multipart ("...-N") and other ETags (md5 set to ""). */
int s3_etag_md5(const char *etag, char md5[33]);

/* The URL of bucket's root, ending in '/', to which "KEY" or "?QUERY" is
 * appended. endpoint NULL means AWS: https://s3.REGION.amazonaws.com.
 * style "path" gives ENDPOINT/BUCKET/, "virtual" SCHEME://BUCKET.HOST/;
 * NULL picks virtual on AWS (path for bucket names with dots, which TLS
 * wildcard certificates do not cover) and path on a custom endpoint.
 * Returns 0 with *out owned by the caller, or -EINVAL with *why set to a
 * static reason. */
int s3_url_base(const char *endpoint, const char *region, const char *style,
		const char *bucket, char **out, const char **why);

#endif
