// SPDX-License-Identifier: MIT
/* Description: SNTP requests and replies: the offset from the four
 * timestamps, and refusal of short, client-mode, unsynchronized and
 * unrelated replies. */
#include <errno.h>

#include "test.h"
#include "../../fetcher/util/sntp.h"

static void reply_for(const uint8_t req[SNTP_PACKET], const struct timespec *srv, uint8_t out[SNTP_PACKET])
{
	uint8_t tmp[SNTP_PACKET];
	memset(out, 0, SNTP_PACKET);
	out[0] = (0 << 6) | (4 << 3) | 4;
	out[1] = 2;
	memcpy(out + 24, req + 40, 8); /* originate = our transmit */
	sntp_request(tmp, srv);	       /* borrow its timestamp encoding */
	memcpy(out + 32, tmp + 40, 8);
	memcpy(out + 40, tmp + 40, 8);
}

int main(void)
{
	struct timespec t0 = { 1796140000, 0 }, t3 = { 1796140000, 200000000 }, srv = { 1796141000, 100000000 };
	uint8_t req[SNTP_PACKET], rep[SNTP_PACKET];
	int64_t off;
	char err[128];
	sntp_request(req, &t0);
	CHECK((req[0] & 7) == 3);
	reply_for(req, &srv, rep);
	CHECK(sntp_parse(rep, sizeof(rep), &t0, &t3, &off, err, sizeof(err)) == 0);
	/* ((t1 - t0) + (t2 - t3)) / 2 = (1000.1 + 999.9) / 2 = 1000 s */
	CHECK(off > 999990000000ll && off < 1000010000000ll);
	CHECK(sntp_parse(rep, 47, &t0, &t3, &off, err, sizeof(err)) == -EBADMSG);
	uint8_t bad[SNTP_PACKET];
	memcpy(bad, rep, sizeof(bad));
	bad[0] = (bad[0] & ~7) | 3;
	CHECK(sntp_parse(bad, sizeof(bad), &t0, &t3, &off, err, sizeof(err)) == -EBADMSG);
	memcpy(bad, rep, sizeof(bad));
	bad[0] |= 3 << 6;
	CHECK(sntp_parse(bad, sizeof(bad), &t0, &t3, &off, err, sizeof(err)) == -EBADMSG);
	memcpy(bad, rep, sizeof(bad));
	bad[1] = 0;
	CHECK(sntp_parse(bad, sizeof(bad), &t0, &t3, &off, err, sizeof(err)) == -EBADMSG);
	memcpy(bad, rep, sizeof(bad));
	bad[31] ^= 1;
	CHECK(sntp_parse(bad, sizeof(bad), &t0, &t3, &off, err, sizeof(err)) == -EBADMSG);
	memcpy(bad, rep, sizeof(bad));
	memset(bad + 40, 0, 8);
	CHECK(sntp_parse(bad, sizeof(bad), &t0, &t3, &off, err, sizeof(err)) == -EBADMSG);
	return test_exit();
}
