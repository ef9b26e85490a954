// SPDX-License-Identifier: MIT
/* Implementation of sntp.h. NTP timestamps are seconds since 1900 in 32.32
 * fixed point; era 0 is enough until 2036, after which the 32-bit seconds
 * wrap and are read as era 1 when that gives a time after 2026. */
#include "sntp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NTP_UNIX_DELTA 2208988800ull	/* 1900 to 1970 */
#define ERA_PIVOT 1767225600ull		/* 2026-01-01: earlier means era 1 */

static void put_ts(uint8_t *p, const struct timespec *t)
{
	uint64_t s = (uint64_t)t->tv_sec + NTP_UNIX_DELTA;
	uint64_t f = ((uint64_t)t->tv_nsec << 32) / 1000000000ull;
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)(s >> (24 - 8 * i));
		p[4 + i] = (uint8_t)(f >> (24 - 8 * i));
	}
}

static int64_t get_ts_ns(const uint8_t *p)
{
	uint64_t s = 0, f = 0;
	for (int i = 0; i < 4; i++) {
		s = s << 8 | p[i];
		f = f << 8 | p[4 + i];
	}
	uint64_t unix_s = s - NTP_UNIX_DELTA;
	if (s < NTP_UNIX_DELTA || unix_s < ERA_PIVOT)
		unix_s = s + (1ull << 32) - NTP_UNIX_DELTA; /* era 1 */
	return (int64_t)(unix_s * 1000000000ull + ((f * 1000000000ull) >> 32));
}

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000ll + t->tv_nsec;
}

void sntp_request(uint8_t out[SNTP_PACKET], const struct timespec *t)
{
	memset(out, 0, SNTP_PACKET);
	out[0] = (0 << 6) | (4 << 3) | 3; /* LI 0, version 4, mode 3 (client) */
	put_ts(out + 40, t);		  /* transmit timestamp */
}

int sntp_parse(const uint8_t *p, size_t n, const struct timespec *t0, const struct timespec *t3,
	       int64_t *offset_ns, char *err, size_t errlen)
{
	uint8_t want[8];
	if (n < SNTP_PACKET) {
		snprintf(err, errlen, "reply of %zu bytes, want %d", n, SNTP_PACKET);
		return -EBADMSG;
	}
	unsigned li = p[0] >> 6, vn = (p[0] >> 3) & 7, mode = p[0] & 7, stratum = p[1];
	if (mode != 4 || vn < 3 || vn > 4) {
		snprintf(err, errlen, "not an NTP server reply (version %u, mode %u)", vn, mode);
		return -EBADMSG;
	}
	if (li == 3 || stratum == 0 || stratum > 15) {
		snprintf(err, errlen, "the server is not synchronized (leap %u, stratum %u)", li, stratum);
		return -EBADMSG;
	}
	put_ts(want, t0);
	if (memcmp(p + 24, want, 8) != 0) {
		snprintf(err, errlen, "the reply does not answer our request");
		return -EBADMSG;
	}
	static const uint8_t zero[8];
	if (memcmp(p + 32, zero, 8) == 0 || memcmp(p + 40, zero, 8) == 0) {
		snprintf(err, errlen, "the reply has no receive or transmit time");
		return -EBADMSG;
	}
	int64_t t1 = get_ts_ns(p + 32), t2 = get_ts_ns(p + 40);
	/* offset = ((t1 - t0) + (t2 - t3)) / 2, without overflow. */
	*offset_ns = (t1 - ts_ns(t0)) / 2 + (t2 - ts_ns(t3)) / 2;
	return 0;
}
