// SPDX-License-Identifier: MIT
/*
 * `gdroot verify`: check a store end to end. Every manifest's signature and
 * shape; every index against its hash; every referenced pack exists and is
 * long enough; and (unless --quick) every referenced chunk hashes right.
 * Each problem is reported with the object named; exit 1 if there is any.
 * Shared chunks are checked once, however many generations use them.
 */
#include <inttypes.h>

#include "chunk-read.h"
#include "chunkmap.h"
#include "cli.h"
#include "gen.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

struct verify {
	struct store *st;
	unsigned problems;
	uint64_t chunks_checked, bytes_checked;
	struct chunkmap done;	/* chunks already checked */
	struct chunkmap pack_sizes; /* packs in the store (packs table only) */
	struct chunkmap reported; /* packs already reported missing or short */
	uint64_t *sizes;	/* by pack_sizes number; UINT64_MAX missing */
	struct progress_bar *pb;
	uint64_t total;
};

static int problem(struct verify *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int problem(struct verify *v, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("PROBLEM: %s\n", msg);
	v->problems++;
	return 0;
}

static int on_pack(void *ud, const struct store_obj *o)
{
	struct verify *v = ud;
	uint8_t h[32];
	if (!startswith(o->key, PACK_KEY_PREFIX) || sha256_unhex(o->key + strlen(PACK_KEY_PREFIX), h) < 0)
		return 0;
	uint32_t i = chunkmap_pack(&v->pack_sizes, h);
	v->sizes = xrealloc(v->sizes, v->pack_sizes.npacks * sizeof(*v->sizes));
	v->sizes[i] = o->size;
	return 0;
}

static int on_chunk(void *ud, const struct chunk_ref *ref, const uint8_t *data, int status)
{
	struct verify *v = ud;
	char pk[128], ch[65];
	(void)data;
	pack_key(ref->pack, pk, sizeof(pk));
	sha256_hex(ref->sha256, ch);
	if (status == -EBADMSG)
		problem(v, "chunk %s in %s at offset %" PRIu64 ": wrong hash (the pack was altered)", ch, pk, ref->off);
	else if (status == -ENODATA)
		problem(v, "chunk %s in %s at offset %" PRIu64 ": the pack ends before it (truncated)", ch, pk, ref->off);
	else if (status == -ENOENT)
		problem(v, "chunk %s: %s is missing", ch, pk);
	v->chunks_checked++;
	v->bytes_checked += ref->len;
	progress_bar_update(v->pb, v->bytes_checked, v->total);
	return 0;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct chunk_ref *x = a, *y = b;
	int c = memcmp(x->pack, y->pack, 32);
	if (c)
		return c;
	return x->off < y->off ? -1 : x->off > y->off;
}

int cmd_verify(struct cli *c, int argc, char **argv)
{
	bool quick = false;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			printf("Usage: gdroot verify [OPTIONS] [--gen GEN] [--quick]\n\n"
			       "Check every generation (or only GEN): manifest signatures, indexes, packs,\n"
			       "and every chunk's hash (--quick: only that packs exist and are long enough).\n"
			       "Exit 0 clean, 1 if any problem was found.\n\n%s",
			       cli_common_help);
			return 0;
		}
		if (streq(argv[i], "--quick"))
			quick = true;
		else if (streq(argv[i], "--gen") && i + 1 < argc)
			only = argv[++i];
		else {
			log_error("verify: unexpected '%s'", argv[i]);
			return 2;
		}
	}
	EVP_PKEY *pub = NULL;
	struct verify v = { 0 };
	_cleanup_free_ uint64_t *gens = NULL;
	_cleanup_free_ struct chunk_ref *refs = NULL;
	size_t n = 0, nrefs = 0, caprefs = 0;
	struct index *ixs = NULL;
	size_t nix = 0;
	int r = cli_load_keys(c, NULL, &pub);
	if (r < 0)
		return 2;
	chunkmap_init(&v.done);
	chunkmap_init(&v.pack_sizes);
	chunkmap_init(&v.reported);
	r = cli_open_store(c, &v.st);
	if (r < 0)
		goto out;
	if (only) {
		gens = xmalloc(sizeof(*gens));
		r = parse_generation(v.st, only, pub, &gens[0]);
		n = 1;
	} else {
		r = gen_list(v.st, &gens, &n);
	}
	if (r == 0)
		r = store_list(v.st, PACK_KEY_PREFIX, on_pack, &v);
	if (r < 0)
		goto out;
	for (size_t g = 0; g < n; g++) {
		struct manifest m;
		char mk[64];
		manifest_key(gens[g], mk, sizeof(mk));
		r = gen_load(v.st, gens[g], pub, &m, NULL);
		if (r < 0) {
			if (r != -EBADMSG && r != -EKEYREJECTED && r != -ENOKEY && r != -EFBIG && r != -ENOENT)
				goto out;
			problem(&v, "%s: %s", mk, r == -EKEYREJECTED ? "signature does not verify"
						: r == -ENOKEY	    ? "signed/unsigned mismatch"
						: r == -ENOENT	    ? "missing"
								    : "malformed");
			r = 0;
			continue;
		}
		for (size_t l = 0; l < m.nlayers; l++) {
			char ik[128];
			index_key(m.layers[l].index, ik, sizeof(ik));
			ixs = xrealloc(ixs, (nix + 1) * sizeof(*ixs));
			r = gen_load_index(v.st, &m.layers[l], &ixs[nix]);
			if (r < 0) {
				if (r != -EBADMSG && r != -ENOENT)
					goto out;
				problem(&v, "%s layer %zu: %s %s", mk, l, ik, r == -ENOENT ? "is missing" : "is corrupt");
				r = 0;
				continue;
			}
			struct index *ix = &ixs[nix++];
			for (uint32_t i = 0; i < ix->nchunks; i++) {
				const struct index_chunk *ch = &ix->chunks[i];
				long pi = chunkmap_find_pack(&v.pack_sizes, ix->packs[ch->pack]);
				if (pi < 0 || v.sizes[pi] < ch->pack_off + ch->len) {
					char pk[128];
					pack_key(ix->packs[ch->pack], pk, sizeof(pk));
					/* One line per pack, not per chunk. */
					if (chunkmap_find_pack(&v.reported, ix->packs[ch->pack]) < 0) {
						problem(&v, "%s (layer %zu of %s): %s", pk, l, mk,
							pi < 0 ? "missing" : "shorter than the chunks it should hold");
						chunkmap_pack(&v.reported, ix->packs[ch->pack]);
					}
					continue;
				}
				if (quick || !chunkmap_add(&v.done, ch->sha256, 0, 0, ch->len))
					continue;
				if (nrefs == caprefs)
					refs = xrealloc(refs, (caprefs = caprefs ? caprefs * 2 : 4096) * sizeof(*refs));
				refs[nrefs++] = (struct chunk_ref){ ix->packs[ch->pack], ch->pack_off, ch->len, ch->sha256, 0 };
				v.total += ch->len;
			}
		}
		manifest_free(&m);
	}
	/* Read pack by pack, in offset order, so neighbours coalesce. */
	qsort(refs, nrefs, sizeof(*refs), cmp_ref);
	struct progress_bar pb;
	progress_bar_begin(&pb, "verify", c->progress);
	v.pb = &pb;
	r = chunks_read(v.st, refs, nrefs, on_chunk, &v);
	progress_bar_end(&pb);
	if (r < 0)
		goto out;
	printf("%zu generations, %" PRIu64 " chunks (%" PRIu64 " bytes) checked%s: %s\n", n, v.chunks_checked,
	       v.bytes_checked, quick ? " for presence" : "", v.problems ? "PROBLEMS FOUND" : "clean");
out:
	for (size_t i = 0; i < nix; i++)
		index_free(&ixs[i]);
	free(ixs);
	free(v.sizes);
	chunkmap_free(&v.done);
	chunkmap_free(&v.pack_sizes);
	chunkmap_free(&v.reported);
	store_close(v.st);
	EVP_PKEY_free(pub);
	if (r < 0)
		return 1;
	return v.problems ? 1 : 0;
}
