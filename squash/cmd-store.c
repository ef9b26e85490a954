// SPDX-License-Identifier: MIT
/*
 * `gdroot store`: direct access to the objects of a store, for admins
 * (inspect what a push wrote, copy a pack out) and for tests of the store
 * client. Exit codes: 0 done, 1 the store failed, 2 bad usage, 3 no such
 * object.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static const char store_help[] =
	"Usage: gdroot store [OPTIONS] SUBCOMMAND ...\n\n"
	"  ls [PREFIX]                 list objects (key, size, time, md5)\n"
	"  stat KEY                    one object's size, time and md5\n"
	"  get KEY [FILE|-] [--offset N] [--length N]\n"
	"                              download (a byte range of) an object\n"
	"  put FILE|- KEY [--if-absent]\n"
	"                              upload a file (replaces KEY; with --if-absent only\n"
	"                              if no object holds KEY: exit 4 if one does)\n"
	"  rm KEY...                   delete objects (missing ones are fine)\n"
	"  stats                       with any subcommand: print request counters\n\n";

static int exit_code(int r)
{
	if (r >= 0)
		return 0;
	if (r == -ENOENT)
		return 3;
	if (r == -EINVAL)
		return 2;
	if (r == -EEXIST)
		return 4;
	return 1;
}

static int print_obj(void *ud, const struct store_obj *o)
{
	(void)ud;
	char when[32] = "-";
	if (o->mtime >= 0) {
		time_t t = (time_t)o->mtime;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	printf("%12" PRIu64 "  %s  %s  %s\n", o->size, when, o->md5[0] ? o->md5 : "-", o->key);
	return 0;
}

struct fd_sink {
	struct store_sink sink;
	int fd;
};

static int fd_sink_write(struct store_sink *s, const void *p, size_t n)
{
	return write_all(((struct fd_sink *)s)->fd, p, n);
}

static int do_get(struct cli *c, struct store *st, int argc, char **argv)
{
	uint64_t off = 0, len = UINT64_MAX;
	const char *key = NULL, *out = "-";
	int npos = 0;
	for (int i = 0; i < argc; i++) {
		if ((streq(argv[i], "--offset") || streq(argv[i], "--length")) && i + 1 < argc) {
			uint64_t v;
			if (parse_size(argv[i + 1], &v) < 0)
				return log_error_errno(-EINVAL, "%s: '%s' is not a size", argv[i], argv[i + 1]);
			*(streq(argv[i], "--offset") ? &off : &len) = v;
			i++;
		} else if (npos == 0) {
			key = argv[i];
			npos++;
		} else if (npos == 1) {
			out = argv[i];
			npos++;
		} else {
			return log_error_errno(-EINVAL, "store get: unexpected '%s'", argv[i]);
		}
	}
	if (!key)
		return log_error_errno(-EINVAL, "store get: which KEY?");
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *tmp = NULL;
	struct stat os;
	if (streq(out, "-")) {
		fd = dup(1);
	} else if (stat(out, &os) == 0 && !S_ISREG(os.st_mode)) {
		/* A device or pipe (/dev/null): write it directly. */
		fd = open(out, O_WRONLY | O_CLOEXEC);
	} else {
		tmp = xasprintf("%s.part", out);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return log_error_errno(-errno, "store get: %s: %m", tmp ? tmp : "stdout");

	struct progress_bar pb;
	uint64_t total = len;
	if (c->progress && !streq(out, "-") && len == UINT64_MAX) {
		struct store_obj o;
		if (store_stat(st, key, &o) == 0)
			total = o.size > off ? o.size - off : 0;
	}
	progress_bar_begin(&pb, key, c->progress && !streq(out, "-"));
	st->progress = (struct store_progress){ progress_bar_update, &pb };
	struct fd_sink sink = { { fd_sink_write }, fd };
	int64_t n = store_get(st, key, off, total, &sink.sink);
	progress_bar_end(&pb);
	st->progress.fn = NULL;
	if (n < 0) {
		if (tmp)
			unlink(tmp);
		return n == -ENOENT ? log_error_errno(-ENOENT, "%s: no object '%s'", st->url, key) : (int)n;
	}
	if (tmp) {
		if (fsync(fd) < 0 || rename(tmp, out) < 0) {
			int e = -errno;
			unlink(tmp);
			return log_error_errno(e, "store get: %s: %m", out);
		}
	}
	if (!c->quiet && !streq(out, "-"))
		log_info("%s: %" PRId64 " bytes", out, n);
	return 0;
}

static int do_put(struct cli *c, struct store *st, int argc, char **argv)
{
	bool if_absent = argc == 3 && streq(argv[2], "--if-absent");
	if (argc != 2 && !if_absent)
		return log_error_errno(-EINVAL, "store put: expected FILE KEY [--if-absent]");
	const char *file = argv[0], *key = argv[1];
	_cleanup_free_ char *mem = NULL;
	_cleanup_close_ int fd = -1;
	struct store_src src = { .fd = -1 };
	if (streq(file, "-")) {
		/* A pipe cannot be re-read on retry: take it into memory. */
		size_t cap = 0, len = 0;
		for (;;) {
			if (len + 65536 > cap)
				mem = xrealloc(mem, cap = cap ? cap * 2 : 1 << 20);
			ssize_t n = read(0, mem + len, cap - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return log_error_errno(-errno, "store put: stdin: %m");
			if (n == 0)
				break;
			len += (size_t)n;
		}
		src.mem = mem ? mem : "";
		src.size = len;
	} else {
		struct stat s;
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &s) < 0)
			return log_error_errno(-errno, "store put: %s: %m", file);
		if (!S_ISREG(s.st_mode))
			return log_error_errno(-EINVAL, "store put: %s is not a regular file", file);
		src.fd = fd;
		src.size = (uint64_t)s.st_size;
	}
	struct progress_bar pb;
	progress_bar_begin(&pb, key, c->progress);
	st->progress = (struct store_progress){ progress_bar_update, &pb };
	int r = if_absent ? store_put_new(st, key, &src) : store_put(st, key, &src);
	progress_bar_end(&pb);
	st->progress.fn = NULL;
	if (r == -EEXIST)
		log_error("store put: %s exists already (--if-absent)", key);
	return r;
}

int cmd_store(struct cli *c, int argc, char **argv)
{
	struct store *st = NULL;
	bool stats = false;
	int r;

	for (int i = 1; i < argc; i++)
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			fputs(store_help, stdout);
			fputs(cli_common_help, stdout);
			return 0;
		}
	int w = 1;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--stats"))
			stats = true;
		else
			argv[w++] = argv[i];
	}
	argc = w;
	if (argc < 2) {
		fputs(store_help, stderr);
		return 2;
	}
	const char *sub = argv[1];
	if (!streq(sub, "ls") && !streq(sub, "stat") && !streq(sub, "get") && !streq(sub, "put") &&
	    !streq(sub, "rm")) {
		log_error("store: unknown subcommand '%s' (ls, stat, get, put, rm)", sub);
		return 2;
	}
	r = cli_open_store(c, &st);
	if (r < 0)
		return exit_code(r);
	argc -= 2;
	argv += 2;
	if (streq(sub, "ls")) {
		r = store_list(st, argc > 0 ? argv[0] : "", print_obj, NULL);
	} else if (streq(sub, "stat")) {
		struct store_obj o;
		if (argc != 1)
			r = log_error_errno(-EINVAL, "store stat: expected KEY");
		else if ((r = store_stat(st, argv[0], &o)) == 0)
			print_obj(NULL, &o);
		else if (r == -ENOENT)
			log_error("%s: no object '%s'", st->url, argv[0]);
	} else if (streq(sub, "get")) {
		r = do_get(c, st, argc, argv);
	} else if (streq(sub, "put")) {
		r = do_put(c, st, argc, argv);
	} else {
		r = argc ? 0 : log_error_errno(-EINVAL, "store rm: which KEY?");
		for (int i = 0; i < argc && r == 0; i++)
			r = store_del(st, argv[i]);
	}
	fflush(stdout);
	if (stats)
		fprintf(stderr, "requests=%" PRIu64 " retries=%" PRIu64 " bytes_in=%" PRIu64
				" bytes_out=%" PRIu64 " token_refreshes=%" PRIu64 "\n",
			st->stats.requests, st->stats.retries, st->stats.bytes_in, st->stats.bytes_out,
			st->stats.token_refreshes);
	store_close(st);
	return exit_code(r);
}
