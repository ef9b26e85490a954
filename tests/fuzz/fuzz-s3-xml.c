// SPDX-License-Identifier: MIT
/* libFuzzer target: the S3 XML parsers (ListObjectsV2 page, Error body) and
 * the LastModified and ETag forms over arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fetcher/store/s3-xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_list l;
	struct s3_error e;

	if (s3_xml_parse_list((const char *)data, size, &l) == 0) {
		if (l.truncated && !l.next_token)
			__builtin_trap(); /* a page that cannot be continued */
		for (size_t i = 0; i < l.n; i++) {
			if (!l.v[i].key || !l.v[i].key[0] || strlen(l.v[i].key) > S3_TEXT_MAX)
				__builtin_trap();
			if (l.v[i].md5[0] && strlen(l.v[i].md5) != 32)
				__builtin_trap();
		}
		if (l.n > S3_LIST_MAX)
			__builtin_trap();
	}
	s3_list_free(&l);
	if (s3_xml_parse_error((const char *)data, size, &e) == 0 &&
	    ((e.code && strlen(e.code) > S3_TEXT_MAX) || (e.message && strlen(e.message) > S3_TEXT_MAX)))
		__builtin_trap();
	s3_error_free(&e);
	if (size < 128) {
		char t[128], md5[33];
		int64_t s;
		memcpy(t, data, size);
		t[size] = 0;
		s3_time_parse(t, &s);
		s3_etag_md5(t, md5);
	}
	return 0;
}
