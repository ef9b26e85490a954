// SPDX-License-Identifier: MIT
/* Implementation of profile.h: the one reader and writer of boot profiles. */
#include "profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fetcher/util/util.h"

#define PROFILE_MAGIC "GDROOTPF"
#define HEADER 16

void profile_encode(const uint8_t (*sha)[32], size_t n, void **out, size_t *len)
{
	size_t l = HEADER + n * 32;
	uint8_t *p = xmalloc(l);
	uint32_t v = 1, c = (uint32_t)n;
	memcpy(p, PROFILE_MAGIC, 8);
	for (int i = 0; i < 4; i++) {
		p[8 + i] = (uint8_t)(v >> (8 * i));
		p[12 + i] = (uint8_t)(c >> (8 * i));
	}
	if (n)
		memcpy(p + HEADER, sha, n * 32);
	*out = p;
	*len = l;
}

int profile_decode(const void *data, size_t len, uint8_t (**sha)[32], size_t *n, char *err, size_t errlen)
{
	const uint8_t *p = data;
	*sha = NULL;
	*n = 0;
	if (len < HEADER || memcmp(p, PROFILE_MAGIC, 8) != 0) {
		snprintf(err, errlen, "not a gdroot boot profile");
		return -EBADMSG;
	}
	uint32_t v = 0, c = 0;
	for (int i = 0; i < 4; i++) {
		v |= (uint32_t)p[8 + i] << (8 * i);
		c |= (uint32_t)p[12 + i] << (8 * i);
	}
	if (v != 1) {
		snprintf(err, errlen, "profile version %u; this gdroot reads 1", v);
		return -EBADMSG;
	}
	if (c > PROFILE_MAX_CHUNKS || len != HEADER + (size_t)c * 32) {
		snprintf(err, errlen, "profile of %zu bytes does not hold %u chunks", len, c);
		return -EBADMSG;
	}
	*sha = xmalloc((size_t)c * 32 + 1);
	memcpy(*sha, p + HEADER, (size_t)c * 32);
	*n = c;
	return 0;
}

void profile_key(uint64_t generation, char *out, size_t n)
{
	snprintf(out, n, PROFILE_KEY_PREFIX "%010llu", (unsigned long long)generation);
}
