// SPDX-License-Identifier: MIT
/*
 * Implementation of s3-xml.h: libxml2 reads the bodies (from memory, no
 * network, no entity substitution, no DTD at all), and small walkers pick
 * the few elements the S3 backend needs, refusing anything ambiguous
 * (repeated fields, elements where text belongs, entity references).
 */
#include "s3-xml.h"

#include <ctype.h>
#include <pthread.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "../util/util.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
	xmlInitParser();
}

/* libxml2 2.9 prints some errors (bad encodings) through its generic error
 * function even with XML_PARSE_NOERROR: drop them, the caller reports. */
static void xml_quiet(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

/* Parse p[0..n) into a document, or NULL. Entities stay unexpanded
 * (no XML_PARSE_NOENT), nothing is fetched (XML_PARSE_NONET), libxml2's
 * own limits stay on (no XML_PARSE_HUGE), and a document that declares a
 * DTD is refused outright: S3 never sends one, and without a DTD no
 * entity can be declared, so no "billion laughs" can grow. */
static xmlDoc *xml_read(const char *p, size_t n)
{
	static const char doctype[] = "<!DOCTYPE";

	if (!p || n == 0 || n > S3_XML_MAX)
		return NULL;
	if (memmem(p, n, doctype, sizeof(doctype) - 1))
		return NULL;
	pthread_once(&xml_once, xml_init);
	xmlSetGenericErrorFunc(NULL, xml_quiet); /* per thread in libxml2 */
	xmlDoc *doc = xmlReadMemory(p, (int)n, "s3.xml", NULL,
				    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc && (doc->intSubset || doc->extSubset)) {
		xmlFreeDoc(doc);
		return NULL;
	}
	return doc;
}

static bool name_is(const xmlNode *e, const char *name)
{
	return e->type == XML_ELEMENT_NODE && strcmp((const char *)e->name, name) == 0;
}

/* The text of a leaf element: its text and CDATA children joined, comments
 * and processing instructions skipped. Child elements and entity
 * references make it -EPROTO, as does a text over S3_TEXT_MAX bytes.
 * *out is owned by the caller. */
static int elem_text(const xmlNode *e, char **out)
{
	char *s = NULL;
	size_t len = 0;

	for (const xmlNode *c = e->children; c; c = c->next) {
		if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
			continue;
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) {
			free(s);
			return -EPROTO;
		}
		size_t k = c->content ? strlen((const char *)c->content) : 0;
		if (k > S3_TEXT_MAX - len) {
			free(s);
			return -EPROTO;
		}
		s = xrealloc(s, len + k + 1);
		memcpy(s + len, c->content, k);
		len += k;
		s[len] = 0;
	}
	*out = s ? s : xstrdup("");
	return 0;
}

/* Like elem_text, into *slot, which must still be NULL (a repeated field
 * is ambiguous, so it is refused). */
static int field_text(const xmlNode *e, char **slot)
{
	if (*slot)
		return -EPROTO;
	return elem_text(e, slot);
}

/* s without leading and trailing XML white space, in place. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = 0;
	return s;
}

static int parse_number(char *text, uint64_t *out)
{
	return parse_u64(trim(text), out) < 0 ? -EPROTO : 0;
}

static int parse_contents(const xmlNode *e, struct s3_list_entry *ent)
{
	_cleanup_free_ char *size = NULL, *mtime = NULL, *etag = NULL;
	char *key = NULL;
	int r = 0;

	for (const xmlNode *c = e->children; c && r == 0; c = c->next) {
		if (name_is(c, "Key"))
			r = field_text(c, &key);
		else if (name_is(c, "Size"))
			r = field_text(c, &size);
		else if (name_is(c, "LastModified"))
			r = field_text(c, &mtime);
		else if (name_is(c, "ETag"))
			r = field_text(c, &etag);
		/* Owner, StorageClass, ChecksumAlgorithm, ...: not needed. */
	}
	if (r == 0 && (!key || !*key || !size || parse_number(size, &ent->size) < 0))
		r = -EPROTO;
	if (r < 0) {
		free(key);
		return r;
	}
	ent->key = key;
	ent->mtime = -1;
	if (mtime && s3_time_parse(trim(mtime), &ent->mtime) < 0)
		ent->mtime = -1;
	ent->md5[0] = 0;
	if (etag)
		s3_etag_md5(trim(etag), ent->md5);
	return 0;
}

void s3_list_free(struct s3_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
	l->key_count = -1;
}

int s3_xml_parse_list(const char *p, size_t n, struct s3_list *out)
{
	_cleanup_free_ char *truncated = NULL, *key_count = NULL;
	size_t cap = 0;
	int r = 0;

	memset(out, 0, sizeof(*out));
	out->key_count = -1;
	xmlDoc *doc = xml_read(p, n);
	if (!doc)
		return -EPROTO;
	const xmlNode *root = xmlDocGetRootElement(doc);
	if (!root || !name_is(root, "ListBucketResult")) {
		xmlFreeDoc(doc);
		return -EPROTO;
	}
	for (const xmlNode *c = root->children; c && r == 0; c = c->next) {
		if (name_is(c, "Contents")) {
			if (out->n >= S3_LIST_MAX) {
				r = -EPROTO;
				break;
			}
			if (out->n == cap) {
				cap = cap ? cap * 2 : 64;
				out->v = xrealloc(out->v, cap * sizeof(*out->v));
			}
			r = parse_contents(c, &out->v[out->n]);
			if (r == 0)
				out->n++;
		} else if (name_is(c, "IsTruncated")) {
			r = field_text(c, &truncated);
		} else if (name_is(c, "NextContinuationToken")) {
			r = field_text(c, &out->next_token);
		} else if (name_is(c, "KeyCount")) {
			r = field_text(c, &key_count);
		}
		/* Name, Prefix, MaxKeys, CommonPrefixes, ...: not needed. */
	}
	xmlFreeDoc(doc);
	if (r < 0)
		return r;
	if (truncated) {
		const char *t = trim(truncated);
		if (streq(t, "true"))
			out->truncated = true;
		else if (!streq(t, "false"))
			return -EPROTO;
	}
	if (key_count) {
		uint64_t k;
		if (parse_number(key_count, &k) < 0 || k > INT64_MAX)
			return -EPROTO;
		out->key_count = (int64_t)k;
	}
	if (out->next_token && !*out->next_token) {
		free(out->next_token);
		out->next_token = NULL;
	}
	/* A truncated page without a token cannot be continued. */
	if (out->truncated && !out->next_token)
		return -EPROTO;
	return 0;
}

void s3_error_free(struct s3_error *e)
{
	free(e->code);
	free(e->message);
	e->code = e->message = NULL;
}

int s3_xml_parse_error(const char *p, size_t n, struct s3_error *out)
{
	int r = 0;

	memset(out, 0, sizeof(*out));
	xmlDoc *doc = xml_read(p, n);
	if (!doc)
		return -EPROTO;
	const xmlNode *root = xmlDocGetRootElement(doc);
	if (!root || !name_is(root, "Error")) {
		xmlFreeDoc(doc);
		return -EPROTO;
	}
	for (const xmlNode *c = root->children; c && r == 0; c = c->next) {
		if (name_is(c, "Code"))
			r = field_text(c, &out->code);
		else if (name_is(c, "Message"))
			r = field_text(c, &out->message);
	}
	xmlFreeDoc(doc);
	return r;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int s3_time_parse(const char *s, int64_t *out)
{
	int Y, M, D, h, m, sec;
	/* YYYY-MM-DDThh:mm:ss */
	if (strlen(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -EINVAL;
	if (digits(s, 4, &Y) < 0 || digits(s + 5, 2, &M) < 0 || digits(s + 8, 2, &D) < 0 ||
	    digits(s + 11, 2, &h) < 0 || digits(s + 14, 2, &m) < 0 || digits(s + 17, 2, &sec) < 0)
		return -EINVAL;
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -EINVAL;
	const char *t = s + 19;
	if (*t == '.') {
		t++;
		if (!isdigit((unsigned char)*t))
			return -EINVAL;
		while (isdigit((unsigned char)*t))
			t++;
	}
	if (!((t[0] == 'Z' || t[0] == 'z') && t[1] == 0))
		return -EINVAL; /* S3 writes UTC only */
	struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
			 .tm_hour = h, .tm_min = m, .tm_sec = sec };
	*out = (int64_t)timegm(&tm);
	return 0;
}

int s3_etag_md5(const char *etag, char md5[33])
{
	size_t n = strlen(etag);
	md5[0] = 0;
	if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
		etag++;
		n -= 2;
	}
	if (n != 32)
		return -EINVAL;
	for (size_t i = 0; i < 32; i++)
		if (!isxdigit((unsigned char)etag[i]))
			return -EINVAL;
	for (size_t i = 0; i < 32; i++)
		md5[i] = (char)tolower((unsigned char)etag[i]);
	md5[32] = 0;
	return 0;
}

/* A bucket name usable as a DNS label in virtual-host style: 3-63 of
 * [a-z0-9.-], starting and ending with a letter or digit, no "..". */
static bool bucket_dns_ok(const char *b)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-' || c == '.'))
			return false;
		if (c == '.' && b[i + 1] == '.')
			return false;
	}
	return true;
}

/* Any bucket name: 1-255 of [A-Za-z0-9._-] (S3-compatible servers allow
 * more than AWS's DNS rules; nothing here needs escaping in a URL). */
static bool bucket_ok(const char *b)
{
	size_t n = strlen(b);
	if (n == 0 || n > 255 || b[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)b[i]) && b[i] != '.' && b[i] != '_' && b[i] != '-')
			return false;
	return true;
}

static bool region_ok(const char *r)
{
	if (!*r || strlen(r) > 64)
		return false;
	for (; *r; r++)
		if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) && *r != '-')
			return false;
	return true;
}

int s3_url_base(const char *endpoint, const char *region, const char *style,
		const char *bucket, char **out, const char **why)
{
	_cleanup_free_ char *aws = NULL;
	bool virt;

	*out = NULL;
	*why = NULL;
	if (!region || !region_ok(region)) {
		*why = "region must be letters, digits and '-' (like eu-west-1)";
		return -EINVAL;
	}
	if (!bucket_ok(bucket)) {
		*why = "bucket names are letters, digits, '.', '_' and '-'";
		return -EINVAL;
	}
	if (style && !streq(style, "path") && !streq(style, "virtual")) {
		*why = "style must be path or virtual";
		return -EINVAL;
	}
	if (!endpoint) {
		endpoint = aws = xasprintf("https://s3.%s.amazonaws.com", region);
		virt = style ? streq(style, "virtual") : bucket_dns_ok(bucket) && !strchr(bucket, '.');
	} else {
		virt = style && streq(style, "virtual");
	}

	/* SCHEME://HOST[:PORT][/PATH] */
	size_t sl;
	if (startswith(endpoint, "https://"))
		sl = 8;
	else if (startswith(endpoint, "http://"))
		sl = 7;
	else {
		*why = "endpoint must be an http:// or https:// URL";
		return -EINVAL;
	}
	if (strpbrk(endpoint, "?#@ ")) {
		*why = "endpoint must not hold a query, fragment, user or blank";
		return -EINVAL;
	}
	const char *host = endpoint + sl;
	size_t hl = strcspn(host, "/");
	if (hl == 0 || host[0] == ':') {
		*why = "endpoint has no host";
		return -EINVAL;
	}
	const char *path = host + hl; /* "" or "/..." */
	size_t pl = strlen(path);
	while (pl > 0 && path[pl - 1] == '/')
		pl--;

	if (!virt) {
		*out = xasprintf("%.*s%.*s/%s/", (int)(sl + hl), endpoint, (int)pl, path, bucket);
		return 0;
	}
	if (!bucket_dns_ok(bucket)) {
		*why = "virtual-host style needs a bucket name that is a DNS name "
		       "(3-63 of a-z, 0-9, '.', '-'); use style=path";
		return -EINVAL;
	}
	size_t nl = strcspn(host, ":/");
	bool ip = host[0] == '[' || strspn(host, "0123456789.") == nl;
	if (ip) {
		*why = "virtual-host style needs a host name, not an IP address; use style=path";
		return -EINVAL;
	}
	*out = xasprintf("%.*s%s.%.*s%.*s/", (int)sl, endpoint, bucket, (int)hl, host, (int)pl, path);
	return 0;
}
