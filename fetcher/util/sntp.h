/* SPDX-License-Identifier: MIT */
/*
 * A minimal SNTP client (RFC 4330) for setting the clock at boot: TLS needs
 * a sane clock, and busybox in the appliance has no ntpd. One request, one
 * reply, the offset from the four timestamps. The reply parser is a pure
 * function so it can be fuzzed.
 */
#ifndef GDROOT_SNTP_H
#define GDROOT_SNTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SNTP_PACKET 48

/* A client request stamped with the time t (CLOCK_REALTIME). */
void sntp_request(uint8_t out[SNTP_PACKET], const struct timespec *t);

/* Check a reply to the request stamped t0, received at t3, and compute the
 * clock offset (server minus us) in nanoseconds. Returns 0, or -EBADMSG
 * with the reason in err: short, not a server reply, an unsynchronized or
 * invalid server, or not an answer to our request. */
int sntp_parse(const uint8_t *p, size_t n, const struct timespec *t0, const struct timespec *t3,
	       int64_t *offset_ns, char *err, size_t errlen);

#endif
