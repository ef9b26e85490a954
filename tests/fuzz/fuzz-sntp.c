// SPDX-License-Identifier: MIT
/* libFuzzer target: the SNTP reply parser. */
#include <stdint.h>
#include <time.h>

#include "../../fetcher/util/sntp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct timespec t0 = { 1796140000, 123456789 }, t3 = { 1796140000, 223456789 };
	int64_t off;
	char err[128];
	sntp_parse(data, size, &t0, &t3, &off, err, sizeof(err));
	return 0;
}
