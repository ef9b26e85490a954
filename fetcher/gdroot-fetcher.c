// SPDX-License-Identifier: MIT
/*
 * gdroot-fetcher: the FUSE daemon that serves a generation's layer images
 * from the store. It loads and checks the manifest and indexes, builds the
 * read path (prefetch -> cache -> verify -> net), mounts one read-only file
 * per layer, answers `gdroot status` on its control socket, prefetches the
 * last boot's profile and saves this boot's on `gdroot boot-done` (or after
 * a timeout).
 *
 * Built to outlive switch_root: it marks itself a root storage daemon
 * (argv[0] starting with '@', which systemd spares at shutdown), holds its
 * CA bundle in memory, and after start needs no file of the initramfs.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "cache.h"
#include "control.h"
#include "fs.h"
#include "net.h"
#include "prefetch.h"
#include "verify.h"
#include "../squash/cli.h"
#include "../squash/gen.h"
#include "../squash/profile.h"
#include "util/log.h"
#include "util/util.h"

#define DEFAULT_SOCKET "/run/gdroot/fetcher.sock"
#define DEFAULT_CA "/etc/ssl/certs/ca-certificates.crt"

static const char usage_text[] =
	"Usage: gdroot-fetcher [OPTIONS] --store URL --mount DIR\n\n"
	"Serve the newest valid generation (or --gen N) of the store as one read-only\n"
	"file per layer (layer-0 is the base) under DIR, for loop devices.\n\n"
	"  --mount DIR            where to mount (fetcher_mount)\n"
	"  --gen N                pin a generation instead of the newest valid one\n"
	"  --cache ram|PATH       chunk cache: RAM (default), or a file or block device\n"
	"                         that persists across boots (fetcher_cache)\n"
	"  --cache-size SIZE      cache limit (default 256M; fetcher_cache_size)\n"
	"  --timeout SECONDS      fail reads with EIO after an outage this long\n"
	"                         (default 0: wait for ever; fetcher_timeout)\n"
	"  --socket PATH          control socket (default " DEFAULT_SOCKET ")\n"
	"  --ready-fd N           write READY and close fd N once the mount serves\n"
	"  --ready-file PATH      or create this file then\n"
	"  --no-prefetch          do not prefetch the boot profile\n"
	"  --profile-timeout S    save the boot profile after S seconds if boot-done\n"
	"                         never came (default 300; 0 never; fetcher_profile_timeout)\n"
	"  --log kmsg|stderr      where log lines go (default stderr)\n"
	"  --max-inflight N       requests in flight (default 16)\n\n";

struct fetcher {
	struct cli cli;
	struct store *meta;		/* manifests, profiles; protected by lock */
	pthread_mutex_t lock;
	struct manifest m;
	struct index *ixs;
	const struct index **ixp;
	struct stage *net, *verify, *cache, *prefetch;
	struct fs *fs;
	struct control *ctl;
	uint64_t started_ns;
	bool profile_saved;		/* protected by lock */
	unsigned profile_timeout;
	pthread_t timer;
	bool timer_running;
	bool stop;			/* protected by lock */
	pthread_cond_t cond;
};

static struct fetcher *the_fetcher;

static int save_profile(struct fetcher *f, const char *why)
{
	uint8_t (*sha)[32] = NULL;
	size_t n = prefetch_recorded(f->prefetch, &sha);
	void *buf;
	size_t len;
	char key[64];
	profile_encode((const uint8_t (*)[32])sha, n, &buf, &len);
	free(sha);
	profile_key(f->m.generation, key, sizeof(key));
	struct store_src src = { .mem = buf, .fd = -1, .size = len };
	pthread_mutex_lock(&f->lock);
	int r = store_put(f->meta, key, &src);
	if (r == 0)
		f->profile_saved = true;
	pthread_mutex_unlock(&f->lock);
	free(buf);
	if (r < 0)
		return log_error_errno(r, "boot profile (%s): could not save %s (read-only credentials?)", why, key);
	log_info("boot profile (%s): saved %zu chunks as %s", why, n, key);
	return 0;
}

static int on_boot_done(void *ud)
{
	return save_profile(ud, "boot-done");
}

static json_t *on_status(void *ud)
{
	struct fetcher *f = ud;
	struct stage_stats s = { 0 };
	struct fs_stats fst = { 0 };
	stage_stats_all(f->prefetch, &s);
	fs_get_stats(f->fs, &fst);
	json_t *layers = json_array();
	for (size_t i = 0; i < f->m.nlayers; i++) {
		char name[32];
		snprintf(name, sizeof(name), "layer-%zu", i);
		json_array_append_new(layers, json_pack("{s:s, s:I}", "name", name, "size",
							(json_int_t)f->m.layers[i].size));
	}
	pthread_mutex_lock(&f->lock);
	bool saved = f->profile_saved;
	pthread_mutex_unlock(&f->lock);
	const char *pstate = s.prefetch_total == 0 ? "none" : s.prefetch_done < s.prefetch_total ? "running" : "done";
	return json_pack("{s:I, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I}, s:I,"
			 " s:{s:I, s:I, s:s}, s:b, s:{s:I, s:I, s:I}, s:I}",
			 "generation", (json_int_t)f->m.generation, "store", f->meta->url, "layers", layers,
			 "cache", "bytes", (json_int_t)s.cache_bytes, "limit", (json_int_t)s.cache_limit, "chunks",
			 (json_int_t)s.cache_chunks, "hits", (json_int_t)s.hits, "misses", (json_int_t)s.misses,
			 "fetched", "bytes", (json_int_t)s.fetched_bytes, "requests", (json_int_t)s.fetched_requests,
			 "errors", (json_int_t)s.fetch_errors, "retries", (json_int_t)s.retries, "in_flight",
			 (json_int_t)s.in_flight, "verify_failures", (json_int_t)s.verify_failures, "prefetch", "done",
			 (json_int_t)s.prefetch_done, "total", (json_int_t)s.prefetch_total, "state", pstate,
			 "profile_saved", saved, "reads", "count", (json_int_t)fst.reads, "bytes", (json_int_t)fst.bytes,
			 "errors", (json_int_t)fst.errors, "uptime_s", (json_int_t)((now_ns() - f->started_ns) / 1000000000ull));
}

static void *timer_thread(void *p)
{
	struct fetcher *f = p;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += f->profile_timeout;
	pthread_mutex_lock(&f->lock);
	while (!f->stop && !f->profile_saved) {
		if (pthread_cond_timedwait(&f->cond, &f->lock, &until) == ETIMEDOUT)
			break;
	}
	bool go = !f->stop && !f->profile_saved;
	pthread_mutex_unlock(&f->lock);
	if (go)
		save_profile(f, "timeout");
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	if (the_fetcher && the_fetcher->fs)
		fs_exit(the_fetcher->fs);
}

/* The profile to prefetch: this generation's, else the newest older one. */
static void load_profile(struct fetcher *f)
{
	char key[64], err[128];
	_cleanup_free_ char *buf = NULL;
	struct store_obj o;
	int r = -ENOENT;
	for (uint64_t g = f->m.generation; g >= 1 && g + 8 > f->m.generation; g--) {
		profile_key(g, key, sizeof(key));
		r = store_stat(f->meta, key, &o);
		if (r == 0)
			break;
		if (r != -ENOENT)
			return;
	}
	if (r < 0) {
		log_info("no boot profile yet: nothing to prefetch (this boot records one)");
		return;
	}
	if (o.size > 16 + (uint64_t)PROFILE_MAX_CHUNKS * 32) {
		log_warn("%s is too large to be a profile; ignoring it", key);
		return;
	}
	buf = xmalloc((size_t)o.size + 1);
	int64_t n = store_pread(f->meta, key, buf, (size_t)o.size, 0);
	if (n < 0)
		return;
	uint8_t (*sha)[32];
	size_t count;
	if (profile_decode(buf, (size_t)n, &sha, &count, err, sizeof(err)) < 0) {
		log_warn("%s: %s; not prefetching", key, err);
		return;
	}
	log_info("prefetching %zu chunks in the order of %s", count, key);
	prefetch_start(f->prefetch, (const uint8_t (*)[32])sha, count);
	free(sha);
}

static int read_ca(struct store_opts *o)
{
	const char *path = o->ca_file ? o->ca_file : DEFAULT_CA;
	char *buf;
	ssize_t n = read_file(path, 16u << 20, &buf);
	if (n < 0) {
		if (!o->ca_file)
			return 0; /* curl's built-in default then */
		return log_error_errno((int)n, "CA bundle %s: %m", path);
	}
	o->ca_blob = buf;
	o->ca_blob_len = (size_t)n;
	return 0;
}

static int signal_ready(int fd, const char *file)
{
	if (fd >= 0) {
		int r = write_all(fd, "READY\n", 6);
		close(fd);
		if (r < 0)
			return log_error_errno(r, "ready fd: %m");
	}
	if (file) {
		int r = write_file_atomic(file, "READY\n", 6, 0644);
		if (r < 0)
			return log_error_errno(r, "ready file %s: %m", file);
	}
	return 0;
}

static int ignore_obj(void *ud, const struct store_obj *o)
{
	(void)ud;
	(void)o;
	return 0;
}

static void *loop_thread(void *p)
{
	struct fetcher *f = p;
	int r = fs_loop(f->fs);
	if (r < 0)
		log_error_errno(r, "FUSE session ended: %m");
	return NULL;
}

int main(int argc, char **argv)
{
	struct fetcher F = { 0 }, *f = &F;
	const char *mount = NULL, *gens = NULL, *cache = NULL, *cache_size = NULL, *timeout = NULL;
	const char *sock = NULL, *ready_file = NULL, *logto = NULL, *ptimeout = NULL, *inflight = NULL;
	int ready_fd = -1, rc = 1, r;
	bool prefetch_on = true;
	EVP_PKEY *pub = NULL;

	/* A root storage daemon: systemd leaves processes whose argv[0]
	 * starts with '@' alone at shutdown. Re-exec once under that name. */
	if (argv[0][0] != '@') {
		argv[0] = (char *)"@gdroot-fetcher";
		execv("/proc/self/exe", argv);
		/* No /proc (odd): run on as we are. */
	}
	log_set_program("gdroot-fetcher");
	/* Few malloc arenas: FUSE and stage threads otherwise each keep their
	 * own pools of freed chunk buffers, which is resident memory a
	 * diskless machine pays for. */
	mallopt(M_ARENA_MAX, 2);
	for (int i = 1; i < argc; i++)
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			fputs(usage_text, stdout);
			fputs(cli_common_help, stdout);
			return 0;
		}
	if (cli_init(&f->cli, &argc, argv) < 0)
		return 2;
	struct cli *c = &f->cli;
	mount = cli_setting(c, "fetcher_mount");
	cache = cli_setting(c, "fetcher_cache");
	cache_size = cli_setting(c, "fetcher_cache_size");
	timeout = cli_setting(c, "fetcher_timeout");
	sock = cli_setting(c, "fetcher_socket");
	ptimeout = cli_setting(c, "fetcher_profile_timeout");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **dst = streq(a, "--mount") ? &mount : streq(a, "--gen") ? &gens : streq(a, "--cache") ? &cache
				 : streq(a, "--cache-size") ? &cache_size : streq(a, "--timeout") ? &timeout
				 : streq(a, "--socket") ? &sock : streq(a, "--ready-file") ? &ready_file
				 : streq(a, "--log") ? &logto : streq(a, "--profile-timeout") ? &ptimeout
				 : streq(a, "--max-inflight") ? &inflight : NULL;
		if (streq(a, "--no-prefetch")) {
			prefetch_on = false;
		} else if (streq(a, "--ready-fd") && v) {
			uint64_t fd;
			if (parse_u64(v, &fd) < 0 || fd > 1024) {
				log_error("--ready-fd: '%s' is not a file descriptor", v);
				return 2;
			}
			ready_fd = (int)fd;
			i++;
		} else if (dst && v) {
			*dst = v;
			i++;
		} else {
			log_error("unknown or incomplete option '%s' (see gdroot-fetcher --help)", a);
			return 2;
		}
	}
	if (logto && streq(logto, "kmsg") && log_open_kmsg() < 0)
		log_warn("cannot open /dev/kmsg; logging to stderr");
	if (!mount) {
		log_error("where to mount? pass --mount DIR (or set fetcher_mount)");
		return 2;
	}
	uint64_t csize = 256u << 20, tmo = 0, pt = 300, mi = 16, pin = 0;
	if ((cache_size && parse_size(cache_size, &csize) < 0) || (timeout && parse_u64(timeout, &tmo) < 0) ||
	    (ptimeout && parse_u64(ptimeout, &pt) < 0) || (inflight && (parse_u64(inflight, &mi) < 0 || !mi)) ||
	    (gens && (parse_u64(gens, &pin) < 0 || !pin))) {
		log_error("a size, count or time option has a bad value (see --help)");
		return 2;
	}
	f->profile_timeout = (unsigned)pt;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->started_ns = now_ns();

	/* Everything from the initramfs is read now, never later. */
	if (read_ca(&c->opts) < 0 || cli_load_keys(c, NULL, &pub) < 0)
		goto out;
	/* The read path waits out outages; other calls use the usual budget. */
	if (cli_open_store(c, &f->meta) < 0)
		goto out;
	r = pin ? gen_load(f->meta, pin, pub, &f->m, NULL) : gen_load_newest(f->meta, pub, &f->m, NULL);
	if (r < 0)
		goto out;
	f->ixs = xcalloc(f->m.nlayers, sizeof(*f->ixs));
	f->ixp = xcalloc(f->m.nlayers, sizeof(*f->ixp));
	for (size_t l = 0; l < f->m.nlayers; l++) {
		if (gen_load_index(f->meta, &f->m.layers[l], &f->ixs[l]) < 0)
			goto out;
		f->ixp[l] = &f->ixs[l];
	}

	struct store_opts nopts;
	store_opts_copy(&nopts, &c->opts);
	nopts.retries = UINT32_MAX;
	nopts.retries_set = true;
	if (!nopts.retry_cap_ms)
		nopts.retry_cap_ms = 5000;
	struct store *nst = NULL;
	r = store_open(c->store_url, &nopts, &nst);
	store_opts_free(&nopts);
	if (r < 0)
		goto out;
	/* Learn where the packs are (Drive: their file ids) before the net
	 * thread takes the store. */
	if (nst->ops->ranged && store_list(nst, PACK_KEY_PREFIX, ignore_obj, NULL) < 0)
		log_warn("could not list the packs; looking each up when first read");
	struct net_opts no = { .max_inflight = (unsigned)mi, .timeout_s = (unsigned)tmo };
	f->net = net_stage_new(nst, &no);
	if (!f->net) {
		store_close(nst);
		goto out;
	}
	f->verify = verify_stage_new(f->net);
	struct cache_opts co = { .limit = csize, .path = cache && !streq(cache, "ram") ? cache : NULL };
	f->cache = cache_stage_new(&co, f->verify);
	if (!f->cache)
		goto out;
	f->prefetch = prefetch_stage_new(f->cache, f->ixp, f->m.nlayers, 32);

	struct fs_layer *layers = xcalloc(f->m.nlayers, sizeof(*layers));
	for (size_t l = 0; l < f->m.nlayers; l++) {
		snprintf(layers[l].name, sizeof(layers[l].name), "layer-%zu", l);
		layers[l].ix = f->ixp[l];
	}
	/* Four workers suffice: reads are answered from chunk completions, so
	 * a worker never waits on the network; each costs a 1 MiB buffer. */
	struct fs_opts fo = { .mountpoint = mount, .allow_other = true, .max_threads = 4 };
	f->fs = fs_mount(&fo, layers, f->m.nlayers, f->prefetch);
	free(layers);
	if (!f->fs)
		goto out;
	the_fetcher = f;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct control_ops cops = { .status = on_status, .boot_done = on_boot_done, .ud = f };
	f->ctl = control_start(sock ? sock : DEFAULT_SOCKET, &cops);
	if (!f->ctl)
		log_warn("no control socket: gdroot status will not work");
	if (prefetch_on)
		load_profile(f);
	if (f->profile_timeout && pthread_create(&f->timer, NULL, timer_thread, f) == 0)
		f->timer_running = true;

	pthread_t lt;
	if (pthread_create(&lt, NULL, loop_thread, f) != 0) {
		log_error("cannot start the FUSE loop");
		goto out;
	}
	log_info("serving generation %" PRIu64 " (%zu layers) of %s at %s", f->m.generation, f->m.nlayers,
		 f->meta->url, mount);
	signal_ready(ready_fd, ready_file);
	ready_fd = -1;
	pthread_join(lt, NULL);
	rc = 0;
out:
	/* A signal during teardown must not touch what is being freed. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	the_fetcher = NULL;
	if (ready_fd >= 0)
		close(ready_fd);
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	if (f->timer_running)
		pthread_join(f->timer, NULL);
	control_stop(f->ctl);
	/* No new reads: unmount, stop the prefetch thread. Then end what is
	 * in flight from the net end, so every request is answered while the
	 * stages it passes through still exist; then free those stages. */
	fs_unmount_free(f->fs);
	if (f->prefetch)
		prefetch_stop(f->prefetch);
	if (f->net)
		f->net->ops->destroy(f->net);
	if (f->verify)
		f->verify->ops->destroy(f->verify);
	if (f->cache)
		f->cache->ops->destroy(f->cache);
	if (f->prefetch)
		f->prefetch->ops->destroy(f->prefetch);
	for (size_t l = 0; f->ixs && l < f->m.nlayers; l++)
		index_free(&f->ixs[l]);
	free(f->ixs);
	free(f->ixp);
	manifest_free(&f->m);
	store_close(f->meta);
	EVP_PKEY_free(pub);
	cli_free(c);
	return rc;
}
