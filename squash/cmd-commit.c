// SPDX-License-Identifier: MIT
/*
 * `gdroot commit` (gdroot-commit) and the commit machinery of commit.h.
 */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "cmd-util.h"
#include "commit.h"
#include "gen.h"
#include "image.h"
#include "publish.h"
#include "push.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

const char commit_cfg_help[] =
	"  --upper DIR           the overlay's upper directory (commit_upper;\n"
	"                        default " COMMIT_DEFAULT_UPPER ")\n"
	"  --state DIR           mirror and state (commit_state; default " COMMIT_DEFAULT_STATE ")\n"
	"  --session ID          the session's id (default: from " GDROOT_SESSION_FILE ")\n"
	"  --comp NAME           squashfs compressor of the layer (commit_comp; default lz4)\n"
	"  --no-freeze           copy the upper without freezing it (not consistent:\n"
	"                        for filesystems that cannot freeze)\n";

static const char commit_help[] =
	"Usage: gdroot commit [OPTIONS]\n"
	"       gdroot-commit [OPTIONS]\n\n"
	"Capture this boot session's changes (the overlay's upper layer) and publish\n"
	"them as a new generation: the newest generation's layers, with this\n"
	"session's layer (replaced if it committed before) on top. Writers pause\n"
	"only while the changes since the last commit are copied aside.\n\n"
	"  --force               publish even if nothing changed since the last commit\n";

void commit_cfg_defaults(struct commit_cfg *k, struct cli *c)
{
	const char *v;
	memset(k, 0, sizeof(*k));
	k->cli = c;
	k->upper = (v = cli_setting(c, "commit_upper")) ? v : COMMIT_DEFAULT_UPPER;
	k->state = (v = cli_setting(c, "commit_state")) ? v : COMMIT_DEFAULT_STATE;
	k->comp = cli_setting(c, "commit_comp");
	k->freeze = !((v = cli_setting(c, "commit_freeze")) && streq(v, "false"));
}

int commit_cfg_option(struct commit_cfg *k, int argc, char **argv, int i)
{
	const char *a = argv[i];
	const char **dst = streq(a, "--upper") ? &k->upper : streq(a, "--state") ? &k->state
			 : streq(a, "--session") ? &k->session : streq(a, "--comp") ? &k->comp : NULL;
	if (streq(a, "--no-freeze")) {
		k->freeze = false;
		return 1;
	}
	if (!dst)
		return 0;
	if (i + 1 >= argc) {
		log_error("%s needs a value", a);
		return -1;
	}
	*dst = argv[i + 1];
	return 2;
}

char *commit_reset_marker(const char *state)
{
	return xasprintf("%s.reset", state);
}

int commit_session_id(const struct commit_cfg *k, char *out, size_t n)
{
	if (k->session) {
		if (!manifest_word_ok(k->session, MANIFEST_SESSION_MAX))
			return log_error_errno(-EINVAL, "commit: session id '%s' must be 1 to %d of A-Z a-z 0-9 -",
					       k->session, MANIFEST_SESSION_MAX - 1);
		snprintf(out, n, "%s", k->session);
		return 0;
	}
	_cleanup_free_ char *buf = NULL;
	ssize_t len = read_file(GDROOT_SESSION_FILE, 4096, &buf);
	if (len < 0)
		return log_error_errno((int)len, "commit: %s: %m (not a gdroot boot session? pass --session ID)",
				       GDROOT_SESSION_FILE);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char name[32], value[64];
		if (sscanf(line, " %31[a-z_] = %63s", name, value) == 2 && streq(name, "session")) {
			if (!manifest_word_ok(value, MANIFEST_SESSION_MAX))
				break;
			snprintf(out, n, "%s", value);
			return 0;
		}
	}
	return log_error_errno(-EBADMSG, "commit: %s has no valid 'session = ID' line", GDROOT_SESSION_FILE);
}

/* --- the state filesystem --- */

static int write_sys(const char *path, const char *value)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return write_all(fd, value, strlen(value));
}

/* Bytes for the mirror's zram: commit_mirror_size, else the upper's zram
 * size, else half the RAM. */
static uint64_t mirror_size(const struct commit_cfg *k, dev_t upper_dev)
{
	const char *v = cli_setting(k->cli, "commit_mirror_size");
	uint64_t sz;
	if (v && parse_size(v, &sz) == 0 && sz >= (16u << 20))
		return sz;
	_cleanup_free_ char *p = xasprintf("/sys/dev/block/%u:%u/disksize", major(upper_dev), minor(upper_dev));
	char buf[64];
	if (read_line(p, buf, sizeof(buf)) == 0 && parse_u64(buf, &sz) == 0 && sz)
		return sz;
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kb = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	return kb ? kb * 512 : (1ull << 30);
}

static const char *find_mke2fs(void)
{
	static const char *const c[] = { "/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/sbin/mkfs.ext4" };
	for (size_t i = 0; i < ARRAY_SIZE(c); i++)
		if (access(c[i], X_OK) == 0)
			return c[i];
	return NULL;
}

static int mount_zram(const struct commit_cfg *k, dev_t upper_dev)
{
	char id[32];
	const char *mkfs = find_mke2fs();
	if (!mkfs)
		return -ENOENT;
	int r = read_line("/sys/class/zram-control/hot_add", id, sizeof(id));
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = xasprintf("/sys/block/zram%s", id);
	_cleanup_free_ char *alg = xasprintf("%s/comp_algorithm", dir), *ds = xasprintf("%s/disksize", dir);
	_cleanup_free_ char *dev = xasprintf("/dev/zram%s", id), *size = NULL;
	write_sys(alg, "lz4"); /* the kernel's default otherwise */
	size = xasprintf("%" PRIu64, mirror_size(k, upper_dev));
	r = write_sys(ds, size);
	if (r == 0) {
		char *argv[] = { (char *)mkfs, "-q", "-F", "-t", "ext4", "-O", "^has_journal", "-L", "gdroot-commit",
				 dev, NULL };
		r = run_command(argv);
	}
	if (r == 0 && mount(dev, k->state, "ext4", MS_NOATIME, NULL) < 0)
		r = -errno;
	if (r < 0) {
		write_sys("/sys/class/zram-control/hot_remove", id);
		return r;
	}
	log_info("commit: mirror on %s (%s bytes, LZ4) at %s", dev, size, k->state);
	return 0;
}

/* The state directory, on a filesystem of its own. */
static int state_fs(const struct commit_cfg *k)
{
	struct stat us, ss, ps;
	if (stat(k->upper, &us) < 0)
		return log_error_errno(-errno, "commit: the upper directory %s: %m (not a gdroot boot? pass --upper)",
				       k->upper);
	if (mkdir(k->state, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "commit: make %s: %m", k->state);
	_cleanup_free_ char *parent = xasprintf("%s/..", k->state);
	if (stat(k->state, &ss) < 0 || stat(parent, &ps) < 0)
		return log_error_errno(-errno, "commit: %s: %m", k->state);
	if (ss.st_dev != ps.st_dev && ss.st_dev != us.st_dev)
		return 0; /* mounted already (by an earlier commit, or the admin) */
	int r = mount_zram(k, us.st_dev);
	if (r == 0)
		return 0;
	log_info("commit: no zram for the mirror (%s); using a tmpfs", strerror(-r));
	if (mount("gdroot-commit", k->state, "tmpfs", MS_NOATIME, "mode=0700") < 0)
		return log_error_errno(-errno, "commit: cannot mount a filesystem for the mirror at %s: %m", k->state);
	return 0;
}

/* --- the last commit's record --- */

struct last_commit {
	uint64_t generation;
	uint8_t layer[32];	/* image hash */
	char store[512];	/* the store's URL */
	bool valid;
};

static void last_load(const char *state, struct last_commit *lc)
{
	_cleanup_free_ char *p = xasprintf("%s/committed", state), *buf = NULL;
	char hex[65];
	unsigned long long g;
	memset(lc, 0, sizeof(*lc));
	if (read_file(p, 1024, &buf) > 0 && sscanf(buf, "generation %llu layer %64s store %511s", &g, hex, lc->store) == 3 &&
	    sha256_unhex(hex, lc->layer) == 0) {
		lc->generation = g;
		lc->valid = true;
	}
}

static void last_save(const char *state, uint64_t gen, const uint8_t layer[32], const char *store)
{
	_cleanup_free_ char *p = xasprintf("%s/committed", state);
	char hex[65];
	sha256_hex(layer, hex);
	_cleanup_free_ char *s = xasprintf("generation %" PRIu64 " layer %s store %s\n", gen, hex, store);
	if (write_file_atomic(p, s, strlen(s), 0600) < 0)
		log_warn("commit: could not record the commit in %s", p);
}

/* --- building the generation --- */

struct commit_build {
	const struct manifest_layer *layer;
};

/* The newest generation's layers without this session's, then ours. */
static int build_commit(void *ud, const struct manifest *newest, struct manifest *out)
{
	const struct commit_build *b = ud;
	if (!newest->generation)
		return log_error_errno(-ENOENT, "commit: the store has no generation to commit on top of");
	out->layers = xcalloc(newest->nlayers + 1, sizeof(*out->layers));
	for (size_t i = 0; i < newest->nlayers; i++)
		if (!streq(newest->layers[i].session, b->layer->session))
			out->layers[out->nlayers++] = newest->layers[i];
	if (out->nlayers + 1 > MANIFEST_MAX_LAYERS) {
		free(out->layers);
		out->layers = NULL;
		out->nlayers = 0;
		return log_error_errno(-E2BIG, "commit: generation %" PRIu64 " has %zu layers already: run gdroot "
					       "compact first",
				       newest->generation, newest->nlayers);
	}
	out->layers[out->nlayers++] = *b->layer;
	out->new_bytes = b->layer->new_bytes;
	snprintf(out->kind, sizeof(out->kind), "commit");
	return 0;
}

/* Whether the newest generation already holds layer as this session's. */
static int newest_has(struct cli *c, struct store *st, EVP_PKEY *pub, const uint8_t layer[32], uint64_t *gen)
{
	struct manifest m;
	(void)c;
	int r = gen_load_newest(st, pub, &m, NULL);
	if (r < 0)
		return r;
	bool has = false;
	for (size_t i = 0; i < m.nlayers; i++)
		has |= memcmp(m.layers[i].sha256, layer, 32) == 0;
	*gen = m.generation;
	manifest_free(&m);
	return has;
}

/* Chunk sizes for commit layers: commit_chunk_avg (a power of two, 4K to
 * 128K; min a quarter, max four times), default COMMIT_CHUNK_AVG. */
static struct cdc_params commit_cdc(struct cli *c)
{
	const char *v = cli_setting(c, "commit_chunk_avg");
	uint64_t avg = COMMIT_CHUNK_AVG;
	if (v && (parse_size(v, &avg) < 0 || avg < 4096 || avg > 131072 || (avg & (avg - 1)))) {
		log_warn("commit: commit_chunk_avg = %s is not a power of two from 4K to 128K; using %u", v,
			 COMMIT_CHUNK_AVG);
		avg = COMMIT_CHUNK_AVG;
	}
	return (struct cdc_params){ .min = (uint32_t)avg / 4, .avg = (uint32_t)avg, .max = (uint32_t)avg * 4 };
}

/* A session that committed before must find its layer in the newest
 * generation: if a compaction merged it into a base, or a reset --to
 * elsewhere dropped it, a new layer on top would bring back what the
 * session deleted since (the upper has no whiteout for its own files) or
 * undo the rollback. --force stacks it anyway. */
static int still_ours(const struct commit_cfg *k, const struct manifest *newest, const char *session,
		      const struct last_commit *lc)
{
	if (!lc->valid || k->force)
		return 0;
	for (size_t i = 0; i < newest->nlayers; i++)
		if (streq(newest->layers[i].session, session))
			return 0;
	return log_error_errno(-ENOTRECOVERABLE,
			       "commit: this session's last commit (generation %" PRIu64 ") is not a layer of the newest "
			       "generation %" PRIu64 " any more: it was compacted or rolled back. Committing on top "
			       "could undo that; reboot into a new session, or pass --force to commit this session's "
			       "changes on top anyway",
			       lc->generation, newest->generation);
}

/* The index to write this commit's index as a delta against: the version
 * 1 index under the session's layer in the newest generation. 1 when
 * there is one (in *base, hash in sha), 0 when not, or -errno. */
static int delta_base(struct store *st, const struct manifest *newest, const char *session, struct index *base,
		      uint8_t sha[32])
{
	const struct manifest_layer *mine = NULL;
	for (size_t i = 0; i < newest->nlayers; i++)
		if (streq(newest->layers[i].session, session))
			mine = &newest->layers[i];
	if (!mine)
		return 0;
	int r = gen_load_index(st, mine, base);
	if (r < 0)
		return r;
	if (!base->has_base) {
		memcpy(sha, mine->index, 32);
		return 1;
	}
	memcpy(sha, base->base, 32);
	index_free(base);
	r = gen_load_index_hash(st, sha, INDEX_BASE_MAX, base);
	return r < 0 ? r : 1;
}

static int take_local_lock(const char *state)
{
	_cleanup_free_ char *p = xasprintf("%s.lock", state);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_error_errno(-errno, "commit: %s: %m", p);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			close(fd);
			return log_error_errno(-errno, "commit: lock %s: %m", p);
		}
		log_info("commit: another commit of this machine is running; waiting for it");
		if (flock(fd, LOCK_EX) < 0) {
			close(fd);
			return log_error_errno(-errno, "commit: lock %s: %m", p);
		}
	}
	return fd;
}

int commit_run(const struct commit_cfg *k, struct commit_result *res)
{
	struct cli *c = k->cli;
	EVP_PKEY *priv = NULL, *pub = NULL;
	struct store *st = NULL;
	struct store_lock lock = { .held = false };
	struct push_ctx p;
	bool inited = false;
	struct manifest newest = { 0 };
	uint8_t newest_sha[32];
	uint64_t max_gen, t0 = now_ns(), t;
	struct last_commit lc;
	struct index base = { 0 };
	int r;
	_cleanup_free_ char *tree = xasprintf("%s/tree", k->state), *cstate = xasprintf("%s/capture.state", k->state);
	_cleanup_free_ char *img = xasprintf("%s/layer.sqfs", k->state), *work = xasprintf("%s/work", k->state);
	_cleanup_free_ char *marker = commit_reset_marker(k->state);

	memset(res, 0, sizeof(*res));
	r = commit_session_id(k, res->session, sizeof(res->session));
	if (r < 0)
		return r;
	if (access(marker, F_OK) == 0)
		return log_error_errno(-ESTALE, "commit: this session was reset (%s): nothing more is committed; "
						"reboot to start a new session",
				       marker);
	_cleanup_close_ int lockfd = take_local_lock(k->state);
	if (lockfd < 0)
		return lockfd;
	if (cli_load_keys(c, &priv, &pub) < 0)
		return -ENOKEY;
	r = state_fs(k);
	if (r < 0)
		goto out;

	struct capture_opts co = { .upper = k->upper, .mirror = tree, .state = cstate, .freeze = k->freeze };
	t = now_ns();
	r = capture(&co, &res->cap);
	res->capture_ns = now_ns() - t;
	if (r < 0)
		goto out;
	log_info("commit: captured %" PRIu64 " entries, %" PRIu64 " changed, %" PRIu64 " removed; writers paused "
		 "%.1f ms%s",
		 res->cap.entries, res->cap.copied, res->cap.removed, res->cap.pause_ns / 1e6,
		 res->cap.frozen ? "" : " (not frozen)");

	r = cli_open_store(c, &st);
	if (r < 0)
		goto out;
	last_load(k->state, &lc);
	if (lc.valid && !streq(lc.store, st->url))
		lc.valid = false; /* committed to another store */
	if (!k->force && res->cap.entries == 0 && !lc.valid) {
		/* A session that never wrote anything (or only in work/). */
		res->nothing = true;
		r = 0;
		goto out;
	}
	if (!k->force && lc.valid && res->cap.copied == 0 && res->cap.removed == 0) {
		uint64_t g;
		r = newest_has(c, st, pub, lc.layer, &g);
		if (r < 0)
			goto out;
		if (r) {
			res->nothing = true;
			res->generation = g;
			r = 0;
			goto out;
		}
	}

	struct image_opts io = { .comp = k->comp };
	t = now_ns();
	r = image_build(tree, img, &io);
	res->image_ns = now_ns() - t;
	if (r < 0)
		goto out;
	test_crash_point("image", 0);

	t = now_ns();
	if (mkdir(work, 0700) < 0 && errno != EEXIST) {
		r = log_error_errno(-errno, "commit: %s: %m", work);
		goto out;
	}
	r = lock_take(st, "push", 600, &lock);
	if (r < 0)
		goto out;
	r = push_init(&p, st, pub, work, &newest, newest_sha, &max_gen);
	if (r < 0)
		goto out;
	inited = true;
	p.cdc = commit_cdc(c);
	r = still_ours(k, &newest, res->session, &lc);
	if (r < 0)
		goto out;
	r = delta_base(st, &newest, res->session, &base, p.delta_base_sha);
	if (r < 0)
		goto out;
	if (r > 0)
		p.delta_base = &base;
	log_debug("commit: %s", r > 0 ? "index as a delta against the session's last layer" : "a full index");
	struct manifest_layer layer;
	r = cli_push_layer(c, &p, img, "commit", &layer);
	if (r < 0)
		goto out;
	snprintf(layer.session, sizeof(layer.session), "%s", res->session);
	struct commit_build b = { &layer };
	r = publish(st, priv, pub, build_commit, &b, &res->generation);
	if (r < 0)
		goto out;
	res->push_ns = now_ns() - t;
	res->layer_size = layer.size;
	res->new_bytes = layer.new_bytes;
	res->uploaded = p.uploaded;
	res->packs_uploaded = p.packs_uploaded;
	last_save(k->state, res->generation, layer.sha256, st->url);
	unlink(img);
out:
	if (inited)
		push_free(&p);
	index_free(&base);
	if (st)
		lock_drop(st, &lock);
	manifest_free(&newest);
	store_close(st);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	res->total_ns = now_ns() - t0;
	return r;
}

void commit_print(const struct commit_result *res)
{
	char total[32], fresh[32], up[32], img[32];
	cli_human_size(total, sizeof(total), res->cap.bytes);
	if (res->nothing && !res->generation) {
		printf("nothing to commit: session %s has changed nothing\n", res->session);
		return;
	}
	if (res->nothing) {
		printf("nothing to commit: no change since generation %" PRIu64 " (session %s)\n", res->generation,
		       res->session);
		return;
	}
	cli_human_size(fresh, sizeof(fresh), res->new_bytes);
	cli_human_size(up, sizeof(up), res->uploaded);
	cli_human_size(img, sizeof(img), res->layer_size);
	printf("generation %" PRIu64 ": committed session %s: %" PRIu64 " entries (%s in files), %" PRIu64
	       " changed since the last capture; layer %s, %s new (%s uploaded in %u packs); writers paused %.1f ms%s\n",
	       res->generation, res->session, res->cap.entries, total, res->cap.copied, img, fresh, up,
	       res->packs_uploaded, res->cap.pause_ns / 1e6, res->cap.frozen ? "" : " (not frozen)");
}

int cmd_commit(struct cli *c, int argc, char **argv)
{
	struct commit_cfg k;
	struct commit_result res;
	commit_cfg_defaults(&k, c);
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			fputs(commit_help, stdout);
			fputs(commit_cfg_help, stdout);
			fputs("\n", stdout);
			fputs(cli_common_help, stdout);
			return 0;
		}
		if (streq(argv[i], "--force")) {
			k.force = true;
			continue;
		}
		int n = commit_cfg_option(&k, argc, argv, i);
		if (n < 0)
			return 2;
		if (n == 0) {
			log_error("commit: unknown argument '%s' (see gdroot commit --help)", argv[i]);
			return 2;
		}
		i += n - 1;
	}
	int r = commit_run(&k, &res);
	if (r < 0)
		return r == -EINVAL || r == -ENOKEY ? 2 : 1;
	commit_print(&res);
	return 0;
}
