// SPDX-License-Identifier: MIT
/*
 * `gdroot commitd` (gdroot-commitd): the commit daemon. Every poll it walks
 * the upper for entries whose ctime is newer than the last capture (the
 * change since the last commit, and its size in bytes), and commits when
 * something changed and either the interval has passed since the last
 * commit or the change has grown past the threshold, never sooner than the
 * minimum spacing after the last commit or failed attempt. On SIGTERM it
 * makes a final commit if asked to (commit_on_shutdown). Messages go to
 * stderr, which systemd sends to the journal.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "commit.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static const char commitd_help[] =
	"Usage: gdroot commitd [OPTIONS]\n"
	"       gdroot-commitd [OPTIONS]\n\n"
	"Commit this session's changes on a schedule: when something changed and\n"
	"either INTERVAL passed since the last commit or the change reached\n"
	"THRESHOLD bytes, but never sooner than SPACING after the last commit.\n"
	"Durations: 90, 90s, 15m, 2h. Settings in gdroot.conf in brackets.\n\n"
	"  --interval DUR        commit at least this often when changed (commit_interval; 15m)\n"
	"  --threshold SIZE      commit sooner once this much changed (commit_threshold; 64M)\n"
	"  --min-spacing DUR     never commit more often (commit_min_spacing; 60s)\n"
	"  --poll DUR            how often to look at the upper (commit_poll; 10s)\n"
	"  --on-shutdown         commit once more when stopped (commit_on_shutdown = true)\n";

static int parse_duration(const char *s, uint64_t *sec)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	uint64_t mul = streq(end, "") || streq(end, "s") ? 1 : streq(end, "m") ? 60 : streq(end, "h") ? 3600 : 0;
	if (!mul || v > (1ull << 32))
		return -EINVAL;
	*sec = v * mul;
	return 0;
}

struct dirty {
	int64_t since_ns;	/* ctime threshold */
	uint64_t entries, bytes;
};

static void scan_dir(int dfd, struct dirty *d, unsigned depth)
{
	DIR *dir = fdopendir(dfd);
	if (!dir) {
		close(dfd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(dir))) {
		struct stat st;
		if (streq(e->d_name, ".") || streq(e->d_name, "..") ||
		    fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		int64_t ct = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
		if (ct >= d->since_ns) {
			d->entries++;
			if (S_ISREG(st.st_mode))
				d->bytes += (uint64_t)st.st_size;
		}
		if (S_ISDIR(st.st_mode) && depth < 256) {
			int fd = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0)
				scan_dir(fd, d, depth + 1);
		}
	}
	closedir(dir);
}

/* What changed in the upper since since_ns (the upper itself included). */
static int dirty_scan(const char *upper, int64_t since_ns, struct dirty *d)
{
	struct stat st;
	memset(d, 0, sizeof(*d));
	d->since_ns = since_ns;
	int fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	if ((int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec >= since_ns)
		d->entries++;
	scan_dir(fd, d, 0);
	return 0;
}

static int64_t realtime_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int cmd_commitd(struct cli *c, int argc, char **argv)
{
	struct commit_cfg k;
	uint64_t interval = 900, spacing = 60, poll_s = 10, threshold = 64ull << 20;
	bool on_shutdown = false;
	const char *v;

	commit_cfg_defaults(&k, c);
	struct {
		const char *opt, *key;
		uint64_t *dst;
		bool size;
	} knobs[] = {
		{ "--interval", "commit_interval", &interval, false },
		{ "--min-spacing", "commit_min_spacing", &spacing, false },
		{ "--poll", "commit_poll", &poll_s, false },
		{ "--threshold", "commit_threshold", &threshold, true },
	};
	for (size_t j = 0; j < ARRAY_SIZE(knobs); j++) {
		if (!(v = cli_setting(c, knobs[j].key)))
			continue;
		if ((knobs[j].size ? parse_size(v, knobs[j].dst) : parse_duration(v, knobs[j].dst)) < 0) {
			log_error("commitd: %s = '%s' is not a %s", knobs[j].key, v, knobs[j].size ? "size" : "duration");
			return 2;
		}
	}
	if ((v = cli_setting(c, "commit_on_shutdown")))
		on_shutdown = streq(v, "true");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (streq(a, "-h") || streq(a, "--help")) {
			fputs(commitd_help, stdout);
			fputs(commit_cfg_help, stdout);
			fputs("\n", stdout);
			fputs(cli_common_help, stdout);
			return 0;
		}
		if (streq(a, "--on-shutdown")) {
			on_shutdown = true;
			continue;
		}
		size_t j;
		for (j = 0; j < ARRAY_SIZE(knobs) && !streq(a, knobs[j].opt); j++)
			;
		if (j < ARRAY_SIZE(knobs)) {
			if (i + 1 >= argc || (knobs[j].size ? parse_size(argv[i + 1], knobs[j].dst)
							    : parse_duration(argv[i + 1], knobs[j].dst)) < 0) {
				log_error("commitd: %s needs a %s", a, knobs[j].size ? "size (64M)" : "duration (15m)");
				return 2;
			}
			i++;
			continue;
		}
		int n = commit_cfg_option(&k, argc, argv, i);
		if (n < 0)
			return 2;
		if (n == 0) {
			log_error("commitd: unknown argument '%s' (see gdroot commitd --help)", a);
			return 2;
		}
		i += n - 1;
	}
	if (poll_s == 0)
		poll_s = 1;
	char session[MANIFEST_SESSION_MAX];
	if (commit_session_id(&k, session, sizeof(session)) < 0)
		return 2;

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	_cleanup_free_ char *marker = commit_reset_marker(k.state);
	log_info("commitd: session %s, upper %s: commit when changed and every %" PRIu64 " s or at %" PRIu64
		 " bytes, at most every %" PRIu64 " s%s",
		 session, k.upper, interval, threshold, spacing, on_shutdown ? ", and at shutdown" : "");

	int64_t last_capture = 0;	/* realtime ns of the last capture's start */
	uint64_t last_try = 0;		/* monotonic ns of the last attempt */
	uint64_t last_ok = now_ns();	/* the boot counts as a commit for the interval */
	unsigned failures = 0;
	bool stopping = false;
	for (;;) {
		struct timespec ts = { .tv_sec = (time_t)poll_s };
		int sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			stopping = true;
		if (access(marker, F_OK) == 0) {
			log_info("commitd: the session was reset; stopping without committing");
			return 0;
		}
		struct dirty d;
		if (dirty_scan(k.upper, last_capture, &d) < 0) {
			log_error("commitd: cannot read the upper %s: %s", k.upper, strerror(errno));
			return 1;
		}
		uint64_t now = now_ns();
		bool changed = d.entries > 0;
		bool due = now - last_ok >= interval * 1000000000ull || d.bytes >= threshold;
		bool spaced = now - last_try >= spacing * 1000000000ull * (failures ? MIN(1u << failures, 16u) : 1u);
		if (stopping && !(on_shutdown && changed)) {
			log_info("commitd: stopping%s", changed ? " (uncommitted changes stay in RAM only)" : "");
			return 0;
		}
		if (!stopping && !(changed && due && (spaced || last_try == 0)))
			continue;
		log_info("commitd: %" PRIu64 " entries (%" PRIu64 " bytes) changed; committing%s", d.entries, d.bytes,
			 stopping ? " before shutdown" : "");
		int64_t started = realtime_ns();
		struct commit_result res;
		last_try = now_ns();
		int r = commit_run(&k, &res);
		if (r == -ESTALE)
			return 0;
		if (r < 0) {
			failures++;
			log_error("commitd: commit failed (%u in a row); trying again in %" PRIu64 " s", failures,
				  spacing * MIN(1u << failures, 16u));
			if (stopping)
				return 1;
			continue;
		}
		failures = 0;
		last_capture = started;
		last_ok = now_ns();
		commit_print(&res);
		fflush(stdout);
		if (stopping)
			return 0;
	}
}
