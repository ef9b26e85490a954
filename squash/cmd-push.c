// SPDX-License-Identifier: MIT
/*
 * `gdroot push ROOTFS`: publish a root filesystem (a folder, or a tar
 * archive: plain, gzip, xz or zstd) as a new base generation. It reports what
 * squashfs cannot hold, builds the image reproducibly, uploads only chunks the
 * store lacks (deduplicating against every generation), and publishes the
 * signed manifest last.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "cmd-util.h"
#include "image.h"
#include "publish.h"
#include "push.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static const char push_help[] =
	"Usage: gdroot push [OPTIONS] ROOTFS\n\n"
	"Publish ROOTFS (a folder, or a tar archive: plain, gzip, xz, zstd) as a new\n"
	"generation of the store: squashfs image, content-defined chunks, packs,\n"
	"index, and a signed manifest, uploaded in that order.\n\n"
	"  --comp NAME           squashfs compressor: lz4 (default), zstd, xz, gzip, lzo\n"
	"  --block-size SIZE     squashfs block size (default 128K)\n"
	"  --image FILE          push this squashfs image as is (no ROOTFS)\n"
	"  --work DIR            scratch folder (default $TMPDIR or /var/tmp)\n"
	"  --report FILE         write every finding of the scan here\n"
	"  --keep-image FILE     also keep the built image here\n\n";

struct one_layer {
	const struct manifest_layer *layer;
};

static int build_push(void *ud, const struct manifest *newest, struct manifest *out)
{
	const struct one_layer *ol = ud;
	(void)newest;
	out->nlayers = 1;
	out->layers = xmalloc(sizeof(*out->layers));
	out->layers[0] = *ol->layer;
	out->new_bytes = ol->layer->new_bytes;
	snprintf(out->kind, sizeof(out->kind), "push");
	return 0;
}

int cmd_push(struct cli *c, int argc, char **argv)
{
	struct image_opts io = { 0 };
	const char *rootfs = NULL, *image = NULL, *work_parent = NULL, *report = NULL, *keep = NULL;
	EVP_PKEY *priv = NULL, *pub = NULL;
	struct store *st = NULL;
	struct push_ctx p;
	struct manifest parent = { 0 };
	uint8_t parent_sha[32];
	uint64_t max_gen = 0;
	_cleanup_free_ char *work = NULL, *img = NULL;
	bool inited = false;
	struct store_lock lock = { .held = false };
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (streq(a, "-h") || streq(a, "--help")) {
			fputs(push_help, stdout);
			fputs(cli_common_help, stdout);
			return 0;
		}
		const char **dst = streq(a, "--comp") ? &io.comp : streq(a, "--image") ? &image
				 : streq(a, "--work") ? &work_parent : streq(a, "--report") ? &report
				 : streq(a, "--keep-image") ? &keep : NULL;
		if (dst || streq(a, "--block-size")) {
			if (i + 1 >= argc) {
				log_error("push: %s needs a value", a);
				return 2;
			}
			if (dst) {
				*dst = argv[++i];
			} else {
				uint64_t b;
				if (parse_size(argv[++i], &b) < 0 || b < 4096 || b > (1 << 20) || (b & (b - 1))) {
					log_error("push: --block-size must be a power of two from 4K to 1M");
					return 2;
				}
				io.block_size = (uint32_t)b;
			}
		} else if (a[0] == '-') {
			log_error("push: unknown option '%s' (see gdroot push --help)", a);
			return 2;
		} else if (!rootfs) {
			rootfs = a;
		} else {
			log_error("push: one ROOTFS only ('%s' is extra)", a);
			return 2;
		}
	}
	if (!rootfs == !image) {
		log_error("push: give ROOTFS (a folder or tar archive) or --image FILE");
		return 2;
	}
	if (io.comp && !streq(io.comp, "lz4") && !streq(io.comp, "zstd") && !streq(io.comp, "xz") &&
	    !streq(io.comp, "gzip") && !streq(io.comp, "lzo")) {
		log_error("push: unknown compressor '%s' (lz4, zstd, xz, gzip, lzo)", io.comp);
		return 2;
	}
	if (cli_load_keys(c, &priv, &pub) < 0)
		return 2;

	if (!work_parent)
		work_parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	work = xasprintf("%s/gdroot-push.XXXXXX", work_parent);
	if (!mkdtemp(work)) {
		r = log_error_errno(-errno, "push: scratch folder in %s: %m", work_parent);
		goto out;
	}
	r = cli_open_store(c, &st);
	if (r < 0)
		goto out;

	img = image ? xstrdup(image) : xasprintf("%s/layer.sqfs", work);
	if (rootfs) {
		struct stat s;
		const char *tree = rootfs;
		_cleanup_free_ char *unpacked = NULL;
		if (stat(rootfs, &s) < 0) {
			r = log_error_errno(-errno, "push: %s: %m", rootfs);
			goto out;
		}
		if (S_ISREG(s.st_mode)) {
			unpacked = xasprintf("%s/root", work);
			if (mkdir(unpacked, 0755) < 0 || (r = tar_unpack(rootfs, unpacked)) < 0) {
				r = r < 0 ? r : -errno;
				goto out;
			}
			tree = unpacked;
		} else if (!S_ISDIR(s.st_mode)) {
			r = log_error_errno(-EINVAL, "push: %s is neither a folder nor a tar archive", rootfs);
			goto out;
		}
		_cleanup_free_ char *rep_path = report ? xstrdup(report) : xasprintf("%s/report.txt", work);
		struct image_report rep = { .out = fopen(rep_path, "we") };
		r = image_scan(tree, &rep);
		if (rep.out)
			fclose(rep.out);
		if (r < 0)
			goto out;
		if (rep.acls + rep.out_of_range + rep.other_xattrs + rep.subsec > 0 && report)
			log_info("push: every finding is listed in %s", report);
		log_info("push: building the squashfs image (%s)", io.comp ? io.comp : "lz4");
		r = image_build(tree, img, &io);
		if (r < 0)
			goto out;
		if (unpacked)
			rm_tree(unpacked);
	}

	r = lock_take(st, "push", 600, &lock);
	if (r < 0)
		goto out;
	r = push_init(&p, st, pub, work, &parent, parent_sha, &max_gen);
	if (r < 0)
		goto out;
	inited = true;
	struct manifest_layer layer;
	r = cli_push_layer(c, &p, img, "push", &layer);
	if (r < 0)
		goto out;

	uint64_t gen = 0;
	struct one_layer ol = { &layer };
	r = publish(st, priv, pub, build_push, &ol, &gen);
	if (r < 0)
		goto out;
	if (keep && !image) {
		if (rename(img, keep) < 0)
			log_warn("push: could not keep the image as %s: %m", keep);
	}
	char size[32], fresh[32], up[32];
	cli_human_size(size, sizeof(size), layer.size);
	cli_human_size(fresh, sizeof(fresh), layer.new_bytes);
	cli_human_size(up, sizeof(up), p.uploaded);
	printf("generation %" PRIu64 ": %s image, %" PRIu64 " chunks, %s new (%s uploaded in %u packs, %u already "
	       "there)%s\n",
	       gen, size, layer.chunks, fresh, up, p.packs_uploaded, p.packs_skipped,
	       priv ? "" : ", unsigned");
out:
	if (inited)
		push_free(&p);
	if (st)
		lock_drop(st, &lock);
	manifest_free(&parent);
	store_close(st);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	if (work)
		rm_tree(work);
	return r < 0 ? (r == -EINVAL ? 2 : 1) : 0;
}
