/* SPDX-License-Identifier: MIT */
/*
 * Logging for gdroot programs: one line per event on stderr (or the kernel
 * log once a daemon asks for it), prefixed with the program name. The
 * *_errno variants set errno from the -errno they are given so "%m" names
 * the error, and return that -errno, so a failure is logged where it is
 * decided and passed up in one statement:
 *	return log_error_errno(r, "fetch %s: %m", key);
 * Never pass a token, secret or signed URL to these functions.
 */
#ifndef GDROOT_LOG_H
#define GDROOT_LOG_H

enum log_level { LOG_LVL_ERROR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

/* Set the program name used as prefix (not copied; must outlive logging). */
void log_set_program(const char *name);
/* Messages above level are dropped. Default LOG_LVL_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Send log lines to /dev/kmsg instead of stderr. Returns 0 or -errno. */
int log_open_kmsg(void);

/* Log at level; returns -abs(err) (or 0 when err is 0), with errno set to
 * abs(err) while formatting so %m works. */
int log_full_errno(enum log_level level, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error_errno(e, ...) log_full_errno(LOG_LVL_ERROR, (e), __VA_ARGS__)
#define log_warn_errno(e, ...) log_full_errno(LOG_LVL_WARN, (e), __VA_ARGS__)
#define log_error(...) ((void)log_full_errno(LOG_LVL_ERROR, 0, __VA_ARGS__))
#define log_warn(...) ((void)log_full_errno(LOG_LVL_WARN, 0, __VA_ARGS__))
#define log_info(...) ((void)log_full_errno(LOG_LVL_INFO, 0, __VA_ARGS__))
#define log_debug(...) ((void)log_full_errno(LOG_LVL_DEBUG, 0, __VA_ARGS__))

#endif
