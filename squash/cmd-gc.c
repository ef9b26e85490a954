// SPDX-License-Identifier: MIT
/*
 * `gdroot gc --keep N [--dry-run]`: delete every generation but the newest
 * N valid ones, and every object no kept generation needs: indexes no kept
 * layer names, packs no chunk of a kept layer lies in (leftovers of
 * interrupted pushes too), boot profiles of deleted generations, and stale
 * locks. It holds the "gc" lock throughout, and gives way if a push,
 * commit or compaction holds its lock. Deletions run manifests first, then
 * indexes, then packs, so a crash at any point leaves every kept
 * generation whole and only unreferenced objects behind, which the next
 * run deletes. Invalid manifests (bad signature, another key, malformed)
 * are neither kept nor deleted: they are reported (docs/compact-gc.md).
 */
#include <inttypes.h>
#include <signal.h>
#include <time.h>

#include "chunkmap.h"
#include "cli.h"
#include "gen.h"
#include "profile.h"
#include "publish.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

/* How far back the fetcher looks for a boot profile (load_profile). */
#define GC_PROFILE_REACH 8

static const char gc_help[] =
	"Usage: gdroot gc [OPTIONS] --keep N [--dry-run]\n\n"
	"Keep the newest N valid generations and delete the others, then every index,\n"
	"pack and boot profile no kept generation uses. Manifests go first, packs last,\n"
	"so an interrupted gc leaves every kept generation whole; run it again to finish.\n"
	"Invalid manifests are reported and left alone. gc stops if a push or commit is\n"
	"running (it holds a lock object under locks/).\n\n"
	"  --keep N              how many of the newest valid generations to keep (>= 1)\n"
	"  --dry-run             only print what would be deleted\n\n";

static volatile sig_atomic_t gc_interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	gc_interrupted = 1;
}

/* Objects of one kind, with their total size. */
struct objs {
	struct store_obj *v;
	size_t n, cap;
	uint64_t bytes;
};

static void objs_add(struct objs *o, const struct store_obj *x)
{
	if (o->n == o->cap)
		o->v = xrealloc(o->v, (o->cap = o->cap ? o->cap * 2 : 64) * sizeof(*o->v));
	o->v[o->n++] = *x;
	o->bytes += x->size;
}

enum gc_kind { K_MANIFEST, K_PROFILE, K_INDEX, K_PACK, K_LOCK, K_COUNT };
static const char *const gc_kind_name[K_COUNT] = { "manifests", "profiles", "indexes", "packs", "stale locks" };
static const char *const gc_kind_one[K_COUNT] = { "manifest", "profile", "index", "pack", "stale lock" };

struct gc {
	struct store *st;
	EVP_PKEY *pub;
	uint64_t keep;
	struct objs all[K_COUNT];	/* what the store holds */
	struct objs del[K_COUNT];	/* what goes, in deletion order */
	uint64_t *kept, *gone, *invalid; /* generations, newest first */
	size_t nkept, ngone, ninvalid;
	struct chunkmap kept_ix;	/* index hashes kept (packs table only) */
	struct chunkmap kept_packs;	/* pack hashes kept (packs table only) */
	uint64_t kept_pack_bytes;
	unsigned unknown;		/* objects gc does not know: left alone */
};

static int on_obj(void *ud, const struct store_obj *o)
{
	struct gc *g = ud;
	static const char *const prefix[K_COUNT] = { MANIFEST_KEY_PREFIX, PROFILE_KEY_PREFIX, INDEX_KEY_PREFIX,
						     PACK_KEY_PREFIX, LOCK_KEY_PREFIX };
	for (int k = 0; k < K_COUNT; k++)
		if (startswith(o->key, prefix[k])) {
			objs_add(&g->all[k], o);
			return 0;
		}
	g->unknown++;
	return 0;
}

static void gens_add(uint64_t **v, size_t *n, uint64_t gen)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = gen;
}

static bool gens_has(const uint64_t *v, size_t n, uint64_t gen)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == gen)
			return true;
	return false;
}

/* The generation of a "profiles/<10 digits>" key, or 0. */
static uint64_t profile_key_generation(const char *key)
{
	uint64_t gen;
	const char *s = key + strlen(PROFILE_KEY_PREFIX);
	if (strlen(s) != 10 || parse_u64(s, &gen) < 0)
		return 0;
	return gen;
}

/* The 32-byte hash a "<prefix><64 hex>" key names; -EINVAL if it names none. */
static int key_hash(const char *key, const char *prefix, uint8_t h[32])
{
	const char *s = key + strlen(prefix);
	if (strlen(s) != 64)
		return -EINVAL;
	return sha256_unhex(s, h);
}

/* Mark the index and packs of every layer of a kept generation. A kept
 * generation whose index cannot be read stops gc before anything is
 * deleted: its packs would be unknown. */
static int gc_mark(struct gc *g, const struct manifest *m)
{
	for (size_t l = 0; l < m->nlayers; l++) {
		struct index ix;
		int r = gen_load_index(g->st, &m->layers[l], &ix);
		if (r < 0)
			return log_error_errno(r, "gc: generation %" PRIu64 " (kept) layer %zu: cannot read its index; "
						  "nothing was deleted (run gdroot verify)", m->generation, l);
		chunkmap_pack(&g->kept_ix, m->layers[l].index);
		if (ix.has_base)
			chunkmap_pack(&g->kept_ix, ix.base); /* a delta index needs its base */
		for (uint32_t i = 0; i < ix.nchunks; i++)
			chunkmap_pack(&g->kept_packs, ix.packs[ix.chunks[i].pack]);
		index_free(&ix);
	}
	return 0;
}

static const char *invalid_reason(int r)
{
	return r == -EKEYREJECTED ? "bad signature or another key"
	       : r == -ENOKEY	  ? "signed/unsigned mismatch with this configuration"
				  : "malformed manifest";
}

/* Sort generations into kept (the newest keep valid ones), gone (older
 * valid ones) and invalid (left alone), marking what the kept ones use. */
static int gc_classify(struct gc *g)
{
	_cleanup_free_ uint64_t *gens = NULL;
	size_t n;
	int r = gen_list(g->st, &gens, &n);
	if (r < 0)
		return r;
	for (size_t i = n; i-- > 0;) {
		struct manifest m;
		r = gen_load(g->st, gens[i], g->pub, &m, NULL);
		if (r == -ENOENT)
			continue; /* deleted since the listing */
		if (r == -EBADMSG || r == -EKEYREJECTED || r == -ENOKEY || r == -EFBIG) {
			log_warn("gc: generation %" PRIu64 " is not valid (%s): left alone, and what only it uses is "
				 "not protected", gens[i], invalid_reason(r));
			gens_add(&g->invalid, &g->ninvalid, gens[i]);
			continue;
		}
		if (r < 0)
			return r; /* the store failed: decide nothing */
		if (g->nkept < g->keep) {
			gens_add(&g->kept, &g->nkept, gens[i]);
			r = gc_mark(g, &m);
		} else {
			gens_add(&g->gone, &g->ngone, gens[i]);
		}
		manifest_free(&m);
		if (r < 0)
			return r;
	}
	if (g->nkept == 0)
		return log_error_errno(-ENOENT, "gc: %s has no valid generation (%zu manifests); refusing to delete "
						"anything (is the public key right?)", g->st->url, n);
	if (g->ninvalid && g->invalid[0] > g->kept[0])
		log_warn("gc: the newest manifest (%" PRIu64 ") is not valid with this configuration; check the key",
			 g->invalid[0]);
	return 0;
}

/* Whether a kept generation would prefetch with profile p: the fetcher
 * takes its own generation's profile, else the newest within reach. */
static bool profile_used(const struct gc *g, uint64_t p, const uint64_t *profiles, size_t np)
{
	for (size_t i = 0; i < g->nkept; i++) {
		uint64_t k = g->kept[i], best = 0;
		for (size_t j = 0; j < np; j++)
			if (profiles[j] <= k && profiles[j] + GC_PROFILE_REACH > k && profiles[j] > best)
				best = profiles[j];
		if (best == p)
			return true;
	}
	return false;
}

static void gc_plan_profiles(struct gc *g)
{
	struct objs *all = &g->all[K_PROFILE];
	_cleanup_free_ uint64_t *pg = xcalloc(all->n + 1, sizeof(*pg));
	for (size_t i = 0; i < all->n; i++)
		pg[i] = profile_key_generation(all->v[i].key);
	for (size_t i = 0; i < all->n; i++) {
		uint64_t p = pg[i];
		/* Keep what is not ours to judge: unknown names, the profiles
		 * of kept and invalid generations, and any newer than all kept. */
		if (!p || p >= g->kept[0] || gens_has(g->kept, g->nkept, p) || gens_has(g->invalid, g->ninvalid, p))
			continue;
		if (!profile_used(g, p, pg, all->n))
			objs_add(&g->del[K_PROFILE], &all->v[i]);
	}
}

/* Fill g->del: manifests of gone generations, then what no kept one uses. */
static void gc_plan(struct gc *g)
{
	int64_t now = time(NULL);
	for (size_t i = 0; i < g->all[K_MANIFEST].n; i++) {
		const struct store_obj *o = &g->all[K_MANIFEST].v[i];
		if (gens_has(g->gone, g->ngone, manifest_key_generation(o->key)))
			objs_add(&g->del[K_MANIFEST], o);
	}
	gc_plan_profiles(g);
	for (int k = K_INDEX; k <= K_PACK; k++) {
		const char *prefix = k == K_INDEX ? INDEX_KEY_PREFIX : PACK_KEY_PREFIX;
		const struct chunkmap *kept = k == K_INDEX ? &g->kept_ix : &g->kept_packs;
		for (size_t i = 0; i < g->all[k].n; i++) {
			const struct store_obj *o = &g->all[k].v[i];
			uint8_t h[32];
			if (key_hash(o->key, prefix, h) < 0) {
				g->unknown++;
				continue;
			}
			if (chunkmap_find_pack(kept, h) < 0)
				objs_add(&g->del[k], o);
			else if (k == K_PACK)
				g->kept_pack_bytes += o->size;
		}
	}
	/* Locks of crashed processes ("locks/<kind>-<time>-<random>"). */
	for (size_t i = 0; i < g->all[K_LOCK].n; i++) {
		const struct store_obj *o = &g->all[K_LOCK].v[i];
		const char *name = o->key + strlen(LOCK_KEY_PREFIX), *t = strchr(name, '-');
		long long when = t ? strtoll(t + 1, NULL, 10) : 0;
		if (when > 0 && now - when > LOCK_STALE_S)
			objs_add(&g->del[K_LOCK], o);
	}
}

/* "1-3 5 7-9": generations, ascending, as ranges. */
static void print_gens(const char *what, const uint64_t *v, size_t n)
{
	_cleanup_free_ uint64_t *s = xmalloc((n + 1) * sizeof(*s));
	for (size_t i = 0; i < n; i++)
		s[i] = v[n - 1 - i]; /* v is newest first */
	printf("%s %zu generation%s:", what, n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && s[j + 1] == s[j] + 1)
			j++;
		if (j == i)
			printf(" %" PRIu64, s[i]);
		else
			printf(" %" PRIu64 "-%" PRIu64, s[i], s[j]);
		i = j + 1;
	}
	printf("\n");
}

static void gc_print_plan(const struct gc *g, bool dry)
{
	print_gens("keeping", g->kept, g->nkept);
	if (g->ninvalid)
		print_gens("invalid, left alone:", g->invalid, g->ninvalid);
	if (g->ngone)
		print_gens(dry ? "would delete" : "deleting", g->gone, g->ngone);
	for (int k = 0; k < K_COUNT; k++) {
		char size[32];
		if (!g->del[k].n)
			continue;
		cli_human_size(size, sizeof(size), g->del[k].bytes);
		printf("  %-12s %6zu  %10s\n", gc_kind_name[k], g->del[k].n, size);
		for (size_t i = 0; i < g->del[k].n; i++)
			log_debug("gc: %s %s (%" PRIu64 " bytes)", dry ? "would delete" : "deleting", g->del[k].v[i].key,
				  g->del[k].v[i].size);
	}
	if (g->unknown)
		printf("  %u other objects gc does not know are left alone\n", g->unknown);
}

/* Delete in order, stopping at the first failure so a later kind is never
 * deleted before an earlier one is gone. 0 or -errno, logged. */
static int gc_delete(struct gc *g, bool progress, uint64_t *freed)
{
	uint64_t total = 0;
	for (int k = 0; k < K_COUNT; k++)
		total += g->del[k].bytes;
	struct progress_bar pb;
	progress_bar_begin(&pb, "gc", progress);
	int r = 0;
	for (int k = 0; k < K_COUNT && r == 0; k++) {
		for (size_t i = 0; i < g->del[k].n && r == 0; i++) {
			const struct store_obj *o = &g->del[k].v[i];
			if (gc_interrupted) {
				r = log_error_errno(-EINTR, "gc: interrupted; every kept generation is whole, run gc "
							    "again to finish");
				break;
			}
			r = store_del(g->st, o->key);
			if (r < 0) {
				log_error_errno(r, "gc: cannot delete %s: %m; stopping here (every kept generation is "
						   "whole, run gc again to finish)", o->key);
				break;
			}
			*freed += o->size;
			progress_bar_update(&pb, *freed, total);
		}
	}
	progress_bar_end(&pb);
	return r;
}

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* "gc: deleted 2 generations, 9.8 KiB (2 manifests, 2 indexes, 2 packs);
 * kept 1 generation: 1 pack, 4.0 KiB". */
static void gc_summary(const struct gc *g, bool dry, uint64_t freed)
{
	char fr[32], kb[32], what[256] = "";
	size_t len = 0;
	uint64_t bytes = 0;
	for (int k = 0; k < K_COUNT; k++) {
		bytes += g->del[k].bytes;
		if (g->del[k].n)
			len += (size_t)snprintf(what + len, sizeof(what) - len, "%s%zu %s", len ? ", " : " (",
						 g->del[k].n, plural(g->del[k].n, gc_kind_one[k], gc_kind_name[k]));
	}
	if (len)
		snprintf(what + len, sizeof(what) - len, ")");
	cli_human_size(fr, sizeof(fr), dry ? bytes : freed);
	cli_human_size(kb, sizeof(kb), g->kept_pack_bytes);
	printf("gc: %s %zu %s, %s%s; kept %zu %s: %zu %s, %s%s\n", dry ? "would delete" : "deleted", g->ngone,
	       plural(g->ngone, "generation", "generations"), fr, what, g->nkept,
	       plural(g->nkept, "generation", "generations"), (size_t)g->kept_packs.npacks,
	       plural(g->kept_packs.npacks, "pack", "packs"), kb,
	       g->ninvalid ? "; invalid manifests left alone" : "");
}

static int gc_parse(int argc, char **argv, uint64_t *keep, bool *dry)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (streq(a, "-h") || streq(a, "--help")) {
			fputs(gc_help, stdout);
			fputs(cli_common_help, stdout);
			return 1;
		}
		if (streq(a, "--dry-run")) {
			*dry = true;
		} else if (streq(a, "--keep")) {
			if (i + 1 >= argc || parse_u64(argv[++i], keep) < 0 || *keep == 0)
				return log_error_errno(-EINVAL, "gc: --keep needs a number of generations, at least 1");
		} else {
			return log_error_errno(-EINVAL, "gc: unexpected '%s' (see gdroot gc --help)", a);
		}
	}
	if (*keep == 0)
		return log_error_errno(-EINVAL, "gc: say how many generations to keep: --keep N (see gdroot gc --help)");
	return 0;
}

static void gc_free(struct gc *g)
{
	for (int k = 0; k < K_COUNT; k++) {
		free(g->all[k].v);
		free(g->del[k].v);
	}
	free(g->kept);
	free(g->gone);
	free(g->invalid);
	chunkmap_free(&g->kept_ix);
	chunkmap_free(&g->kept_packs);
}

int cmd_gc(struct cli *c, int argc, char **argv)
{
	struct gc g = { 0 };
	struct store_lock lock = { .held = false };
	bool dry = false;
	uint64_t freed = 0;
	int r = gc_parse(argc, argv, &g.keep, &dry);
	if (r != 0)
		return r < 0 ? 2 : 0;
	if (cli_load_keys(c, NULL, &g.pub) < 0)
		return 2;
	chunkmap_init(&g.kept_ix);
	chunkmap_init(&g.kept_packs);
	/* An interrupted gc must still drop its lock: pushes wait for it. */
	struct sigaction sa = { .sa_handler = on_interrupt };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	r = cli_open_store(c, &g.st);
	if (r == 0)
		r = lock_take(g.st, "gc", 0, &lock);
	/* List after the lock: no push can add objects from here on. */
	if (r == 0)
		r = store_list(g.st, "", on_obj, &g);
	if (r == 0)
		r = gc_classify(&g);
	if (r < 0)
		goto out;
	gc_plan(&g);
	gc_print_plan(&g, dry);
	fflush(stdout);
	if (!dry)
		r = gc_delete(&g, c->progress, &freed);
	if (r == 0)
		gc_summary(&g, dry, freed);
out:
	if (g.st)
		lock_drop(g.st, &lock);
	store_close(g.st);
	EVP_PKEY_free(g.pub);
	gc_free(&g);
	return r < 0 ? 1 : 0;
}
