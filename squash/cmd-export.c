// SPDX-License-Identifier: MIT
/*
 * `gdroot export GEN [--layer N] OUT`: reassemble a layer image from its
 * chunks, verifying each chunk and, at the end, the whole image against the
 * signed manifest: the result is bit-identical to what mksquashfs wrote, or
 * the command fails and leaves no OUT.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <openssl/evp.h>

#include "chunk-read.h"
#include "cli.h"
#include "gen.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

int parse_generation(struct store *st, const char *s, EVP_PKEY *pub, uint64_t *gen)
{
	if (streq(s, "latest")) {
		struct manifest m;
		int r = gen_load_newest(st, pub, &m, NULL);
		if (r < 0)
			return r;
		*gen = m.generation;
		manifest_free(&m);
		return 0;
	}
	if (parse_u64(s, gen) < 0 || *gen == 0)
		return log_error_errno(-EINVAL, "'%s' is not a generation (a number, or latest)", s);
	return 0;
}

int cmd_export(struct cli *c, int argc, char **argv)
{
	const char *gens = NULL, *out = NULL;
	long layer_no = -1;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			printf("Usage: gdroot export [OPTIONS] GEN|latest [--layer N] OUT\n\n"
			       "Reassemble layer N (0 = the base; default: the top) of generation GEN into OUT,\n"
			       "verifying every chunk and the whole image.\n\n%s", cli_common_help);
			return 0;
		}
		if (streq(argv[i], "--layer") && i + 1 < argc) {
			uint64_t v;
			if (parse_u64(argv[++i], &v) < 0 || v >= MANIFEST_MAX_LAYERS) {
				log_error("export: --layer needs a layer number");
				return 2;
			}
			layer_no = (long)v;
		} else if (!gens) {
			gens = argv[i];
		} else if (!out) {
			out = argv[i];
		} else {
			log_error("export: unexpected '%s'", argv[i]);
			return 2;
		}
	}
	if (!out) {
		log_error("export: expected GEN and OUT (see gdroot export --help)");
		return 2;
	}
	EVP_PKEY *pub = NULL;
	struct store *st = NULL;
	struct manifest m = { 0 };
	struct index ix = { 0 };
	uint64_t gen;
	_cleanup_free_ char *tmp = NULL;
	int r = cli_load_keys(c, NULL, &pub);
	if (r < 0)
		return 2;
	r = cli_open_store(c, &st);
	if (r < 0)
		goto out;
	r = parse_generation(st, gens, pub, &gen);
	if (r < 0)
		goto out;
	r = gen_load(st, gen, pub, &m, NULL);
	if (r < 0)
		goto out;
	if (layer_no < 0)
		layer_no = (long)m.nlayers - 1;
	if ((size_t)layer_no >= m.nlayers) {
		r = log_error_errno(-EINVAL, "export: generation %" PRIu64 " has %zu layers", gen, m.nlayers);
		goto out;
	}
	const struct manifest_layer *l = &m.layers[layer_no];
	r = gen_load_index(st, l, &ix);
	if (r < 0)
		goto out;

	/* A device or pipe (/dev/null, /dev/sdb) is written in place; a file
	 * appears whole or not at all. */
	struct stat os;
	bool direct = stat(out, &os) == 0 && !S_ISREG(os.st_mode);
	tmp = direct ? xstrdup(out) : xasprintf("%s.part", out);
	struct progress_bar pb;
	progress_bar_begin(&pb, "export", c->progress);
	int fd = direct ? open(tmp, O_WRONLY | O_CLOEXEC) : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = log_error_errno(-errno, "export: %s: %m", tmp);
		goto out;
	}
	r = layer_write(st, l, &ix, fd, "export", progress_bar_update, &pb, NULL);
	progress_bar_end(&pb);
	if (r == 0 && !direct && fsync(fd) < 0)
		r = log_error_errno(-errno, "export: %s: %m", tmp);
	close(fd);
	if (r == 0 && !direct && rename(tmp, out) < 0)
		r = log_error_errno(-errno, "export: %s: %m", out);
	if (r < 0 && !direct)
		unlink(tmp);
	else if (!c->quiet)
		fprintf(stderr, "exported generation %" PRIu64 " layer %ld: %" PRIu64 " bytes, verified\n", gen,
			layer_no, l->size);
out:
	index_free(&ix);
	manifest_free(&m);
	store_close(st);
	EVP_PKEY_free(pub);
	return r == 0 ? 0 : r == -EINVAL ? 2 : 1;
}
