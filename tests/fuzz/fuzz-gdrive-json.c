// SPDX-License-Identifier: MIT
/* libFuzzer target: the Drive v3 response parsers (file resource, list page,
 * error body) over arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../fetcher/store/gdrive-json.h"

static int cb(void *ud, const struct gd_file *f)
{
	(void)ud;
	return f->id[0] == 0; /* never: id is required */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gd_file f;
	char *next = NULL, reason[64], msg[256];
	int64_t s, ms;
	gd_parse_file((const char *)data, size, &f);
	if (gd_parse_list((const char *)data, size, cb, NULL, &next) != 0 && next)
		__builtin_trap(); /* a failed parse must not hand out a token */
	free(next);
	gd_parse_error((const char *)data, size, reason, sizeof(reason), msg, sizeof(msg));
	if (size < 64) {
		char t[64];
		memcpy(t, data, size);
		t[size] = 0;
		gd_parse_time(t, &s, &ms);
	}
	return 0;
}
