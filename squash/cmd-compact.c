// SPDX-License-Identifier: MIT
/*
 * `gdroot compact [GEN]`: merge the layers of a generation into one new base
 * layer, so boots never stack many lower layers. Each layer image is
 * reassembled from the store (every chunk and the whole image verified, as
 * export does), loop-mounted read-only, and the layers are stacked with a
 * read-only overlayfs exactly as the boot stacks them; mksquashfs then reads
 * the merged tree, so whiteouts and opaque directories are resolved. Every
 * mount is undone before anything is uploaded, also on errors and on
 * SIGINT/SIGTERM. The merged image is pushed like any layer (only chunks the
 * store lacks are uploaded) and published as a generation of kind
 * "compact": the merged layer, plus every layer committed on top of GEN
 * meanwhile. If the newest generation no longer starts with GEN's layers
 * the compaction is refused and nothing is published (docs/compact-gc.md).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "chunk-read.h"
#include "cli.h"
#include "cmd-util.h"
#include "image.h"
#include "publish.h"
#include "push.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static const char compact_help[] =
	"Usage: gdroot compact [OPTIONS] [GEN|latest]\n\n"
	"Merge the layers of generation GEN (default: the newest valid one) into one\n"
	"new base layer and publish it as a new generation. Layers committed on top of\n"
	"GEN while compacting are kept on top. Needs root (loop devices, mounts).\n\n"
	"  --comp NAME           squashfs compressor: lz4 (default), zstd, xz, gzip, lzo\n"
	"  --block-size SIZE     squashfs block size (default 128K)\n"
	"  --work DIR            scratch folder (default $TMPDIR or /var/tmp); needs room\n"
	"                        for every layer image plus the merged one\n\n";

static volatile sig_atomic_t compact_interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	compact_interrupted = 1;
}

/* While layers are mounted, SIGINT/SIGTERM/SIGHUP end the command through
 * its cleanup (so no mount or loop device is left behind) instead of
 * killing it; afterwards (the upload) they kill it, as they kill a push,
 * which is safe at any point. */
static void compact_catch_signals(bool catch)
{
	struct sigaction sa = { .sa_handler = catch ? on_interrupt : SIG_DFL };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int check_interrupted(void)
{
	if (compact_interrupted)
		return log_error_errno(-EINTR, "compact: interrupted; nothing was published");
	return 0;
}

/* --- reassembling a layer image, verified --- */

/* Write layer l of the store into path, checking every chunk and the
 * image's SHA-256 against the manifest. 0 or -errno, logged. */
static int compact_fetch_layer(struct store *st, const struct manifest_layer *l, const char *path,
			       struct progress_bar *pb)
{
	struct index ix = { 0 };
	int r = gen_load_index(st, l, &ix);
	if (r < 0)
		return r;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = log_error_errno(-errno, "compact: %s: %m", path);
	} else {
		r = layer_write(st, l, &ix, fd, "compact", progress_bar_update, pb, &compact_interrupted);
		if (r == -EINTR)
			r = check_interrupted();
		close(fd);
	}
	index_free(&ix);
	return r;
}

/* --- loop devices and mounts --- */

struct mounts {
	char **dirs;		/* mounted, in mount order */
	size_t n;
};

/* A free loop device bound read-only to image, with autoclear: it goes
 * away at the unmount (or when fd is closed without a mount). The loop
 * device's fd, or -errno, logged. */
static int loop_attach(const char *image, char *dev, size_t devlen)
{
	_cleanup_close_ int img = open(image, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (img < 0)
		return log_error_errno(-errno, "compact: %s: %m", image);
	if (ctl < 0)
		return log_error_errno(-errno, "compact: /dev/loop-control: %m (is the loop module loaded?)");
	for (int attempt = 0; attempt < 16; attempt++) {
		int n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			return log_error_errno(-errno, "compact: no free loop device: %m");
		snprintf(dev, devlen, "/dev/loop%d", n);
		int fd = open(dev, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return log_error_errno(-errno, "compact: %s: %m", dev);
		struct loop_config cfg = { .fd = (uint32_t)img, .info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR };
		snprintf((char *)cfg.info.lo_file_name, sizeof(cfg.info.lo_file_name), "%s", image);
		if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (e != EBUSY) /* EBUSY: another process took it first */
			return log_error_errno(-e, "compact: cannot bind %s to %s: %m (LOOP_CONFIGURE needs Linux 5.8)",
					       image, dev);
	}
	return log_error_errno(-EBUSY, "compact: every free loop device was taken by someone else; try again");
}

static void mounts_add(struct mounts *m, const char *dir)
{
	m->dirs = xrealloc(m->dirs, (m->n + 1) * sizeof(*m->dirs));
	m->dirs[m->n++] = xstrdup(dir);
}

/* Mount the squashfs image at dir, read-only, through a loop device. */
static int mount_layer(struct mounts *m, const char *image, const char *dir)
{
	char dev[32];
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "compact: %s: %m", dir);
	int fd = loop_attach(image, dev, sizeof(dev));
	if (fd < 0)
		return fd;
	int r = mount(dev, dir, "squashfs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0 ? -errno : 0;
	close(fd); /* the mount holds the device now; autoclear frees it at umount */
	if (r < 0)
		return log_error_errno(r, "compact: cannot mount %s (%s) on %s: %m (is squashfs available?)", image,
				       dev, dir);
	mounts_add(m, dir);
	return 0;
}

/* Stack lowers (top first, relative to the folder layers) read-only on
 * merged, with the options the boot uses; xino=on gives every file of every
 * layer a distinct inode number on one device, so mksquashfs cannot mistake
 * two files of different layers for hard links. */
static int mount_overlay(struct mounts *m, const char *layers, const char *lowers, const char *merged)
{
	_cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (mkdir(merged, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "compact: %s: %m", merged);
	/* Relative lowerdir paths keep the option string short (it must fit a
	 * page) however many layers there are: the kernel resolves them
	 * against the current folder. */
	if (chdir(layers) < 0)
		return log_error_errno(-errno, "compact: %s: %m", layers);
	_cleanup_free_ char *opts = xasprintf("lowerdir=%s,redirect_dir=off,metacopy=off,xino=on", lowers);
	int r = mount("overlay", merged, "overlay", MS_RDONLY | MS_NODEV | MS_NOSUID, opts) < 0 ? -errno : 0;
	if (r == -EINVAL) {
		/* Without xino, overlayfs gives each lower layer's files that
		 * layer's own device number: still no false hard links. */
		log_warn("compact: the kernel refused overlayfs xino=on; mounting without it");
		free(opts);
		opts = xasprintf("lowerdir=%s,redirect_dir=off,metacopy=off", lowers);
		r = mount("overlay", merged, "overlay", MS_RDONLY | MS_NODEV | MS_NOSUID, opts) < 0 ? -errno : 0;
	}
	if (cwd >= 0 && fchdir(cwd) < 0)
		log_warn("compact: cannot return to the current folder: %m");
	if (r < 0)
		return log_error_errno(r, "compact: cannot mount the overlay of the layers on %s: %m (is overlayfs "
					  "available? see dmesg)", merged);
	mounts_add(m, merged);
	return 0;
}

/* Unmount everything, last mounted first. Returns 0 or the first error. */
static int mounts_undo(struct mounts *m)
{
	int ret = 0;
	while (m->n > 0) {
		char *dir = m->dirs[--m->n];
		int r = 0;
		for (int i = 0; i < 50; i++) {
			r = umount2(dir, 0) < 0 ? -errno : 0;
			if (r != -EBUSY)
				break;
			usleep(100 * 1000);
		}
		if (r == -EBUSY && umount2(dir, MNT_DETACH) == 0) {
			log_warn("compact: %s was busy: detached it lazily", dir);
			r = 0;
		}
		if (r < 0 && r != -EINVAL && r != -ENOENT)
			ret = ret ? ret : log_error_errno(r, "compact: cannot unmount %s: %m (unmount it by hand)", dir);
		free(dir);
	}
	free(m->dirs);
	m->dirs = NULL;
	return ret;
}

/* --- the merge --- */

struct compact {
	struct cli *c;
	struct store *st;
	const struct manifest *gen;	/* the generation compacted */
	struct image_opts io;
	const char *work;
	uint64_t layers_bytes;
};

/* Reassemble GEN's layers into work/img/N and mount them on work/l/N. */
static int compact_mount_layers(struct compact *k, struct mounts *m)
{
	_cleanup_free_ char *imgs = xasprintf("%s/img", k->work), *lays = xasprintf("%s/l", k->work);
	if (mkdir(imgs, 0700) < 0 || mkdir(lays, 0700) < 0)
		return log_error_errno(-errno, "compact: folders in %s: %m", k->work);
	for (size_t i = 0; i < k->gen->nlayers; i++) {
		const struct manifest_layer *l = &k->gen->layers[i];
		_cleanup_free_ char *img = xasprintf("%s/%zu", imgs, i), *dir = xasprintf("%s/%zu", lays, i);
		char name[32];
		snprintf(name, sizeof(name), "layer %zu/%zu", i + 1, k->gen->nlayers);
		struct progress_bar pb;
		progress_bar_begin(&pb, name, k->c->progress);
		int r = compact_fetch_layer(k->st, l, img, &pb);
		progress_bar_end(&pb);
		if (r == 0)
			r = check_interrupted();
		if (r == 0)
			r = mount_layer(m, img, dir);
		if (r < 0)
			return r;
		k->layers_bytes += l->size;
	}
	return 0;
}

/* "N-1:...:1:0": the layers top first, as overlayfs wants them. */
static char *compact_lowers(size_t n)
{
	size_t cap = n * 8 + 1, len = 0;
	char *s = xmalloc(cap);
	s[0] = 0;
	for (size_t i = n; i-- > 0;)
		len += (size_t)snprintf(s + len, cap - len, "%s%zu", len ? ":" : "", i);
	return s;
}

/* Build the merged image of GEN's layers into out; every mount is undone
 * before it returns. 0 or -errno, logged. */
static int compact_build(struct compact *k, const char *out)
{
	struct mounts m = { 0 };
	_cleanup_free_ char *lays = xasprintf("%s/l", k->work), *merged = xasprintf("%s/merged", k->work);
	_cleanup_free_ char *lowers = compact_lowers(k->gen->nlayers);
	int r = compact_mount_layers(k, &m);
	if (r == 0)
		r = mount_overlay(&m, lays, lowers, merged);
	if (r == 0) {
		log_info("compact: building the merged squashfs image (%s)", k->io.comp ? k->io.comp : "lz4");
		r = image_build(merged, out, &k->io);
	}
	if (r == 0)
		r = check_interrupted();
	int u = mounts_undo(&m);
	if (r == 0 && u < 0)
		r = u;
	/* The layer images are not needed any more: free the room for packs. */
	_cleanup_free_ char *imgs = xasprintf("%s/img", k->work);
	rm_tree(imgs);
	return r;
}

/* --- publishing --- */

static bool layer_same(const struct manifest_layer *a, const struct manifest_layer *b)
{
	return memcmp(a->index, b->index, 32) == 0 && memcmp(a->sha256, b->sha256, 32) == 0;
}

/* Whether newest's layers start with all of gen's. */
static bool layers_prefix(const struct manifest *gen, const struct manifest *newest)
{
	if (newest->nlayers < gen->nlayers)
		return false;
	for (size_t i = 0; i < gen->nlayers; i++)
		if (!layer_same(&gen->layers[i], &newest->layers[i]))
			return false;
	return true;
}

struct compact_pub {
	const struct manifest *gen;
	const struct manifest_layer *merged;
	size_t on_top;		/* set by the build: newer layers kept */
};

static int build_compact(void *ud, const struct manifest *newest, struct manifest *out)
{
	struct compact_pub *cp = ud;
	if (newest->generation == 0)
		return log_error_errno(-ESTALE, "compact: the store has no valid generation any more; nothing published");
	if (!layers_prefix(cp->gen, newest))
		return log_error_errno(-ESTALE, "compact: the store changed while compacting (the newest generation "
						"%" PRIu64 " no longer starts with generation %" PRIu64 "'s layers): "
						"run compact again", newest->generation, cp->gen->generation);
	cp->on_top = newest->nlayers - cp->gen->nlayers;
	out->nlayers = 1 + cp->on_top;
	out->layers = xcalloc(out->nlayers, sizeof(*out->layers));
	out->layers[0] = *cp->merged;
	for (size_t i = 0; i < cp->on_top; i++)
		out->layers[1 + i] = newest->layers[cp->gen->nlayers + i];
	out->new_bytes = cp->merged->new_bytes;
	snprintf(out->kind, sizeof(out->kind), "compact");
	return 0;
}

/* Push the merged image as a layer and publish it, holding the push lock
 * (so gc cannot delete what the push deduplicates against). */
static int compact_publish(struct compact *k, const char *img, EVP_PKEY *priv, EVP_PKEY *pub)
{
	struct store_lock lock = { .held = false };
	struct manifest newest = { 0 };
	uint8_t newest_sha[32];
	uint64_t max_gen, gen = 0;
	struct push_ctx p;
	bool inited = false;
	_cleanup_free_ char *packs = xasprintf("%s/packs", k->work);
	if (mkdir(packs, 0700) < 0)
		return log_error_errno(-errno, "compact: %s: %m", packs);
	int r = lock_take(k->st, "push", 600, &lock);
	if (r < 0)
		return r;
	r = push_init(&p, k->st, pub, packs, &newest, newest_sha, &max_gen);
	inited = r == 0;
	struct manifest_layer layer;
	if (r == 0) {
		r = cli_push_layer(k->c, &p, img, "upload", &layer);
	}
	struct compact_pub cp = { .gen = k->gen, .merged = &layer };
	if (r == 0)
		r = publish(k->st, priv, pub, build_compact, &cp, &gen);
	if (r == 0) {
		char before[32], after[32], fresh[32], up[32];
		cli_human_size(before, sizeof(before), k->layers_bytes);
		cli_human_size(after, sizeof(after), layer.size);
		cli_human_size(fresh, sizeof(fresh), layer.new_bytes);
		cli_human_size(up, sizeof(up), p.uploaded);
		char top[64] = "";
		if (cp.on_top)
			snprintf(top, sizeof(top), ", %zu newer layer%s kept on top", cp.on_top, cp.on_top == 1 ? "" : "s");
		printf("generation %" PRIu64 ": compacted generation %" PRIu64 "'s %zu layers (%s) into one %s layer%s; "
		       "%s new (%s uploaded in %u packs, %u already there)%s\n",
		       gen, k->gen->generation, k->gen->nlayers, before, after, top, fresh, up, p.packs_uploaded,
		       p.packs_skipped, priv ? "" : ", unsigned");
	}
	if (inited)
		push_free(&p);
	manifest_free(&newest);
	lock_drop(k->st, &lock);
	return r;
}

/* --- the command --- */

static int compact_parse(int argc, char **argv, struct image_opts *io, const char **gens, const char **work)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (streq(a, "-h") || streq(a, "--help")) {
			fputs(compact_help, stdout);
			fputs(cli_common_help, stdout);
			return 1;
		}
		if (streq(a, "--comp") || streq(a, "--block-size") || streq(a, "--work")) {
			if (i + 1 >= argc)
				return log_error_errno(-EINVAL, "compact: %s needs a value", a);
			const char *v = argv[++i];
			uint64_t b;
			if (streq(a, "--work"))
				*work = v;
			else if (streq(a, "--comp"))
				io->comp = v;
			else if (parse_size(v, &b) < 0 || b < 4096 || b > (1 << 20) || (b & (b - 1)))
				return log_error_errno(-EINVAL, "compact: --block-size must be a power of two from 4K to 1M");
			else
				io->block_size = (uint32_t)b;
		} else if (a[0] == '-') {
			return log_error_errno(-EINVAL, "compact: unknown option '%s' (see gdroot compact --help)", a);
		} else if (!*gens) {
			*gens = a;
		} else {
			return log_error_errno(-EINVAL, "compact: one GEN only ('%s' is extra)", a);
		}
	}
	if (io->comp && !streq(io->comp, "lz4") && !streq(io->comp, "zstd") && !streq(io->comp, "xz") &&
	    !streq(io->comp, "gzip") && !streq(io->comp, "lzo"))
		return log_error_errno(-EINVAL, "compact: unknown compressor '%s' (lz4, zstd, xz, gzip, lzo)", io->comp);
	return 0;
}

/* Load GEN (or the newest) into *m and check it can be compacted now.
 * 1 when there is nothing to do, 0 to go on, -errno. */
static int compact_load(struct store *st, EVP_PKEY *pub, const char *gens, struct manifest *m)
{
	struct manifest newest = { 0 };
	uint64_t gen;
	int r = gen_load_newest(st, pub, &newest, NULL);
	if (r < 0)
		return r;
	if (gens && !streq(gens, "latest")) {
		r = parse_generation(st, gens, pub, &gen);
		if (r == 0)
			r = gen_load(st, gen, pub, m, NULL);
		if (r == 0 && !layers_prefix(m, &newest))
			r = log_error_errno(-ESTALE, "compact: the newest generation %" PRIu64 " does not build on generation "
						     "%" PRIu64 " (its layers do not start with %" PRIu64 "'s); compact the "
						     "newest instead", newest.generation, gen, gen);
		manifest_free(&newest);
	} else {
		*m = newest;
	}
	if (r == 0 && m->nlayers < 2) {
		printf("generation %" PRIu64 " has one layer: nothing to compact\n", m->generation);
		r = 1;
	}
	return r;
}

int cmd_compact(struct cli *c, int argc, char **argv)
{
	struct compact k = { .c = c };
	const char *gens = NULL, *work_parent = NULL;
	EVP_PKEY *priv = NULL, *pub = NULL;
	struct manifest m = { 0 };
	_cleanup_free_ char *work = NULL, *img = NULL;
	int r = compact_parse(argc, argv, &k.io, &gens, &work_parent);
	if (r != 0)
		return r < 0 ? 2 : 0;
	if (geteuid() != 0) {
		log_error("compact: needs root (it loop-mounts the layers and mounts an overlay of them)");
		return 1;
	}
	if (cli_load_keys(c, &priv, &pub) < 0)
		return 2;
	r = cli_open_store(c, &k.st);
	if (r == 0)
		r = compact_load(k.st, pub, gens, &m);
	if (r != 0)
		goto out;
	k.gen = &m;
	if (!work_parent)
		work_parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	work = xasprintf("%s/gdroot-compact.XXXXXX", work_parent);
	if (!mkdtemp(work)) {
		r = log_error_errno(-errno, "compact: scratch folder in %s: %m", work_parent);
		free(work);
		work = NULL;
		goto out;
	}
	k.work = work;
	img = xasprintf("%s/merged.sqfs", work);
	log_info("compact: merging the %zu layers of generation %" PRIu64, m.nlayers, m.generation);
	compact_catch_signals(true);
	r = compact_build(&k, img);
	compact_catch_signals(false);
	if (r == 0)
		r = compact_publish(&k, img, priv, pub);
out:
	if (work)
		rm_tree(work);
	manifest_free(&m);
	store_close(k.st);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	return r == 1 ? 0 : r < 0 ? (r == -EINVAL ? 2 : 1) : 0;
}
