// SPDX-License-Identifier: MIT
/* Description: Drive v3 and OAuth response parsers accept Google's shapes
 * and reject malformed, mistyped and oversized input. */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "../../fetcher/store/gdrive-json.h"
#include "../../fetcher/util/util.h"

static int count_cb(void *ud, const struct gd_file *f)
{
	int *n = ud;
	(void)f;
	(*n)++;
	return 0;
}

static int P(const char *s, struct gd_file *f) { return gd_parse_file(s, strlen(s), f); }

int main(void)
{
	struct gd_file f;
	CHECK(P("{\"kind\":\"drive#file\",\"id\":\"1AbC\",\"name\":\"packs/x\",\"mimeType\":\"application/octet-stream\","
		"\"size\":\"12345678901\",\"md5Checksum\":\"0123456789abcdef0123456789abcdef\","
		"\"modifiedTime\":\"2026-12-01T15:44:29.123Z\",\"createdTime\":\"2026-12-01T15:44:29.5Z\"}", &f) == 0);
	CHECK_STR(f.id, "1AbC");
	CHECK_STR(f.name, "packs/x");
	CHECK(f.size == 12345678901ull);
	CHECK(f.mtime == 1796139869);
	CHECK(f.ctime_ms == 1796139869500ll);
	CHECK_STR(f.md5, "0123456789abcdef0123456789abcdef");
	/* Folder: no size. */
	CHECK(P("{\"id\":\"F\",\"mimeType\":\"application/vnd.google-apps.folder\",\"trashed\":true}", &f) == 0);
	CHECK(f.size == 0 && f.trashed == 1 && f.mtime == -1);
	/* Rejections. */
	CHECK(P("{\"name\":\"no id\"}", &f) == -EPROTO);
	CHECK(P("{\"id\":5}", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\",\"size\":12}", &f) == -EPROTO);		/* int64 as number */
	CHECK(P("{\"id\":\"a\",\"size\":\"-1\"}", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\",\"size\":\"99999999999999999999999\"}", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\",\"md5Checksum\":\"short\"}", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\",\"modifiedTime\":\"yesterday\"}", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\",\"trashed\":\"no\"}", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\\u0000b\"}", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\",\"id\":\"b\"}", &f) == -EPROTO);	/* duplicate key */
	CHECK(P("[1,2]", &f) == -EPROTO);
	CHECK(P("{\"id\":\"a\"", &f) == -EPROTO);
	CHECK(P("", &f) == -EPROTO);
	_cleanup_free_ char *longid = xmalloc(GD_ID_MAX + 20);
	memset(longid, 'x', GD_ID_MAX + 19);
	longid[GD_ID_MAX + 19] = 0;
	_cleanup_free_ char *body = xasprintf("{\"id\":\"%s\"}", longid);
	CHECK(P(body, &f) == -EPROTO);
	/* Deep nesting must not crash. */
	_cleanup_free_ char *deep = xmalloc(200001);
	memset(deep, '[', 200000);
	deep[200000] = 0;
	CHECK(P(deep, &f) == -EPROTO);

	/* Lists. */
	const char *page = "{\"nextPageToken\":\"tok==\",\"files\":[{\"id\":\"a\",\"name\":\"x\"},{\"id\":\"b\",\"name\":\"y\"}]}";
	char *next = NULL;
	int n = 0;
	CHECK(gd_parse_list(page, strlen(page), count_cb, &n, &next) == 0);
	CHECK(n == 2);
	CHECK(next && strcmp(next, "tok==") == 0);
	free(next);
	const char *last = "{\"files\":[]}";
	n = 0;
	CHECK(gd_parse_list(last, strlen(last), count_cb, &n, &next) == 0 && n == 0 && next == NULL);
	const char *bad[] = { "{\"files\":{}}", "{}", "{\"files\":[{\"name\":\"noid\"}]}", "{\"files\":[],\"nextPageToken\":7}", NULL };
	for (int i = 0; bad[i]; i++) {
		CHECK(gd_parse_list(bad[i], strlen(bad[i]), count_cb, &n, &next) == -EPROTO);
		CHECK(next == NULL);
	}

	/* Errors. */
	char reason[64], msg[128];
	const char *err = "{\"error\":{\"code\":403,\"message\":\"User Rate Limit Exceeded\",\"errors\":[{\"domain\":\"usageLimits\","
			  "\"reason\":\"userRateLimitExceeded\",\"message\":\"User Rate Limit Exceeded\"}]}}";
	CHECK(gd_parse_error(err, strlen(err), reason, sizeof(reason), msg, sizeof(msg)) == 0);
	CHECK_STR(reason, "userRateLimitExceeded");
	CHECK_STR(msg, "User Rate Limit Exceeded");
	CHECK(gd_parse_error("<html>", 6, reason, sizeof(reason), msg, sizeof(msg)) == -EPROTO);
	CHECK(reason[0] == 0 && msg[0] == 0);

	/* OAuth. */
	struct oauth_token t;
	const char *tok = "{\"access_token\":\"ya29.abc\",\"expires_in\":3599,\"token_type\":\"Bearer\",\"scope\":\"s\"}";
	CHECK(oauth_parse_token(tok, strlen(tok), &t) == 0);
	CHECK_STR(t.access_token, "ya29.abc");
	CHECK(t.expires_in == 3599 && t.error[0] == 0 && t.refresh_token[0] == 0);
	const char *oerr = "{\"error\":\"invalid_grant\",\"error_description\":\"Token has been expired or revoked.\"}";
	CHECK(oauth_parse_token(oerr, strlen(oerr), &t) == 0);
	CHECK_STR(t.error, "invalid_grant");
	const char *badtok[] = { "{\"access_token\":\"\"}", "{\"access_token\":\"a b\"}", "{\"access_token\":\"a\\r\\nX: y\"}",
				 "{\"access_token\":\"a\",\"expires_in\":\"60\"}", "{\"access_token\":\"a\",\"expires_in\":-5}",
				 "{\"token_type\":\"Bearer\"}", "null", NULL };
	for (int i = 0; badtok[i]; i++)
		CHECK(oauth_parse_token(badtok[i], strlen(badtok[i]), &t) == -EPROTO);
	struct oauth_device_code d;
	const char *dc = "{\"device_code\":\"AH-1\",\"user_code\":\"GQVQ-JKEC\",\"verification_url\":\"https://www.google.com/device\","
			 "\"expires_in\":1800,\"interval\":5}";
	CHECK(oauth_parse_device_code(dc, strlen(dc), &d) == 0);
	CHECK_STR(d.user_code, "GQVQ-JKEC");
	CHECK(d.interval == 5 && d.expires_in == 1800);
	const char *dc2 = "{\"device_code\":\"AH-1\",\"user_code\":\"X\",\"verification_uri\":\"https://x\",\"expires_in\":10}";
	CHECK(oauth_parse_device_code(dc2, strlen(dc2), &d) == 0 && d.interval == 5);
	const char *dc3 = "{\"device_code\":\"AH-1\",\"user_code\":\"X\",\"expires_in\":10}";
	CHECK(oauth_parse_device_code(dc3, strlen(dc3), &d) == -EPROTO);
	return test_exit();
}
