/* SPDX-License-Identifier: MIT */
/*
 * Small helpers every gdroot program uses: scope-bound cleanup
 * (__attribute__((cleanup))), overflow-checked sizes, and string helpers.
 * Nothing here allocates behind the caller's back except the x*() helpers,
 * which abort on out-of-memory: a daemon that cannot allocate 100 bytes has
 * nothing better to do.
 */
#ifndef GDROOT_UTIL_H
#define GDROOT_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Take ownership out of a cleanup variable. */
#define TAKE_PTR(p)                          \
	({                                   \
		__typeof__(p) _tp = (p);     \
		(p) = NULL;                  \
		_tp;                         \
	})
#define TAKE_FD(fd)                          \
	({                                   \
		int _tf = (fd);              \
		(fd) = -1;                   \
		_tf;                         \
	})

/* Allocation that aborts on OOM. Caller owns the result. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline bool streq(const char *a, const char *b) { return strcmp(a, b) == 0; }
static inline bool startswith(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Parse a decimal unsigned 64-bit integer with an optional K/M/G/T suffix
 * (powers of 1024). Returns 0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);
/* Parse a strict decimal integer into *out. Returns 0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, uint64_t *out);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/* Write all of buf to fd, retrying on EINTR and short writes. 0 or -errno. */
int write_all(int fd, const void *buf, size_t n);
/* Write a file atomically: tmp in the same folder, fsync, rename, fsync dir.
 * mode applies to the new file. 0 or -errno. */
int write_file_atomic(const char *path, const void *buf, size_t n, mode_t mode);
/* Read a whole regular file of at most max bytes; *out is NUL-terminated and
 * owned by the caller. Returns length or -errno (-EFBIG when over max). */
ssize_t read_file(const char *path, size_t max, char **out);

/* The first line of a small file whose size the kernel does not report
 * (sysfs, procfs), without its newline, into buf. 0 or -errno. */
int read_line(const char *path, char *buf, size_t n);

/* Hex-encode n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);

#endif
