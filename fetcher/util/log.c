// SPDX-License-Identifier: MIT
/*
 * Implementation of log.h. Lines are formatted into one buffer and written
 * with a single write(2) so concurrent threads never interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *program = "gdroot";
static enum log_level max_level = LOG_LVL_INFO;
static int log_fd = 2;
static int log_kmsg;

void log_set_program(const char *name) { program = name; }
void log_set_level(enum log_level level) { max_level = level; }
enum log_level log_get_level(void) { return max_level; }

int log_open_kmsg(void)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	log_fd = fd;
	log_kmsg = 1;
	return 0;
}

int log_full_errno(enum log_level level, int err, const char *fmt, ...)
{
	int saved = errno;
	if (err < 0)
		err = -err;
	if (level <= max_level) {
		char line[2048];
		int n;
		va_list ap;
		if (log_kmsg)
			n = snprintf(line, sizeof(line), "<%d>%s: ", (int)level, program);
		else
			n = snprintf(line, sizeof(line), "%s: ", program);
		if (n < 0)
			n = 0;
		errno = err ? err : saved; /* %m: the given error, or errno */
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
		va_end(ap);
		if (m < 0)
			m = 0;
		size_t len = (size_t)n + (size_t)m;
		if (len > sizeof(line) - 2)
			len = sizeof(line) - 2;
		line[len++] = '\n';
		ssize_t w = write(log_fd, line, len);
		(void)w;
	}
	errno = saved;
	return -err;
}
