/* SPDX-License-Identifier: MIT */
/*
 * A minimal harness for unit test programs: CHECK(cond) records a failure
 * with file and line and carries on; main returns test_exit(). A program
 * exits 0 (pass), 1 (fail) or 77 (skip).
 */
#ifndef GDROOT_TEST_H
#define GDROOT_TEST_H

#include <stdio.h>
#include <string.h>

static int test_failures;

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			test_failures++;                                            \
		}                                                                   \
	} while (0)
#define CHECK_STR(a, b)                                                             \
	do {                                                                        \
		const char *_a = (a), *_b = (b);                                    \
		if (strcmp(_a, _b) != 0) {                                          \
			fprintf(stderr, "%s:%d: '%s' != '%s'\n", __FILE__, __LINE__, _a, _b); \
			test_failures++;                                            \
		}                                                                   \
	} while (0)

static inline int test_exit(void)
{
	if (test_failures)
		fprintf(stderr, "%d check(s) failed\n", test_failures);
	return test_failures ? 1 : 0;
}

#endif
