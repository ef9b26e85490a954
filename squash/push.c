// SPDX-License-Identifier: MIT
/*
 * Implementation of push.h. Pass one streams the image through the chunker,
 * hashing each chunk and the whole image, and appends chunks the store lacks
 * to pack files in the work folder (a pack is closed at pack_target bytes and
 * named by its SHA-256). Pass two uploads the packs the store does not
 * already have, then the index.
 */
#include "push.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>

#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

/* Crash-safety tests kill push with SIGKILL at a named point:
 * GDROOT_TEST_CRASH=pack:N (after the Nth pack upload), index (after the
 * index upload) or manifest (just before publishing). */
void test_crash_point(const char *where, unsigned n)
{
	const char *want = getenv("GDROOT_TEST_CRASH");
	char here[32];
	if (!want)
		return;
	snprintf(here, sizeof(here), n ? "%s:%u" : "%s", where, n);
	if (streq(want, here)) {
		fprintf(stderr, "gdroot: GDROOT_TEST_CRASH=%s: killing myself\n", want);
		kill(getpid(), SIGKILL);
	}
}

/* A chunk of the layer as pass one found it. */
struct entry {
	uint8_t sha[32];
	uint32_t len;
	uint32_t pack;		/* into lp (the layer's packs) */
	uint64_t off;
};

/* A pack the layer refers to: an old one, or one made by this push. */
struct lpack {
	uint8_t sha[32];
	bool fresh;		/* made by this push: a file in workdir */
	bool closed;
	uint64_t size;
};

struct pass1 {
	struct push_ctx *p;
	struct entry *e;
	size_t n, cap;
	struct lpack *lp;
	size_t nlp, caplp;
	struct chunkmap lpmap;	/* old packs the layer uses, by hash */
	uint32_t *old_lp;	/* lpmap pack number -> lp index */
	struct chunkmap fresh;	/* chunks new in this push -> lp, off */
	EVP_MD_CTX *image_md, *pack_md;
	int pack_fd;
	uint32_t cur;		/* lp index of the open fresh pack */
	uint64_t size;
	uint64_t new_bytes;
};

static uint32_t lp_add(struct pass1 *s, const uint8_t *sha, bool fresh)
{
	if (s->nlp == s->caplp)
		s->lp = xrealloc(s->lp, (s->caplp = s->caplp ? s->caplp * 2 : 32) * sizeof(*s->lp));
	struct lpack *l = &s->lp[s->nlp];
	memset(l, 0, sizeof(*l));
	if (sha)
		memcpy(l->sha, sha, 32);
	l->fresh = fresh;
	return (uint32_t)s->nlp++;
}

static char *tmp_pack_path(struct pass1 *s, uint32_t i)
{
	return xasprintf("%s/pack-%u.tmp", s->p->workdir, i);
}

static char *pack_path(struct push_ctx *p, const uint8_t sha[32])
{
	char x[65];
	sha256_hex(sha, x);
	return xasprintf("%s/%s.pack", p->workdir, x);
}

static int pack_close(struct pass1 *s)
{
	struct lpack *l = &s->lp[s->cur];
	unsigned len = 32;
	if (s->pack_fd < 0)
		return 0;
	EVP_DigestFinal_ex(s->pack_md, l->sha, &len);
	l->closed = true;
	int r = fsync(s->pack_fd) < 0 ? -errno : 0;
	close(s->pack_fd);
	s->pack_fd = -1;
	_cleanup_free_ char *from = tmp_pack_path(s, s->cur), *to = pack_path(s->p, l->sha);
	if (r == 0 && rename(from, to) < 0)
		r = -errno;
	if (r < 0)
		return log_error_errno(r, "push: close pack %s: %m", to);
	return 0;
}

static int pack_open(struct pass1 *s)
{
	s->cur = lp_add(s, NULL, true);
	_cleanup_free_ char *path = tmp_pack_path(s, s->cur);
	s->pack_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s->pack_fd < 0)
		return log_error_errno(-errno, "push: %s: %m", path);
	EVP_DigestInit_ex(s->pack_md, EVP_sha256(), NULL);
	return 0;
}

static int on_chunk(void *ud, uint64_t off, const uint8_t *chunk, size_t len)
{
	struct pass1 *s = ud;
	struct push_ctx *p = s->p;
	struct entry e = { .len = (uint32_t)len };
	const struct chunk_loc *loc;
	int r;

	(void)off;
	sha256_buf(chunk, len, e.sha);
	EVP_DigestUpdate(s->image_md, chunk, len);
	s->size += len;
	if ((loc = chunkmap_find(&p->known, e.sha)) &&
	    chunkmap_find_pack(&p->present, p->known.packs[loc->pack]) < 0)
		loc = NULL; /* its pack is gone from the store: store it again */
	if (loc) {
		/* Stored by an earlier generation. */
		const uint8_t *ph = p->known.packs[loc->pack];
		long mi = chunkmap_find_pack(&s->lpmap, ph);
		if (mi < 0) {
			/* lpmap numbers old packs densely; old_lp maps to lp. */
			mi = chunkmap_pack(&s->lpmap, ph);
			s->old_lp = xrealloc(s->old_lp, s->lpmap.npacks * sizeof(*s->old_lp));
			s->old_lp[mi] = lp_add(s, ph, false);
		}
		e.pack = s->old_lp[mi];
		e.off = loc->off;
	} else if ((loc = chunkmap_find(&s->fresh, e.sha))) {
		/* A repeat within this image. */
		e.pack = loc->pack;
		e.off = loc->off;
	} else {
		if (s->pack_fd < 0 || s->lp[s->cur].size + len > p->pack_target) {
			if ((r = pack_close(s)) < 0 || (r = pack_open(s)) < 0)
				return r;
		}
		struct lpack *l = &s->lp[s->cur];
		if ((r = write_all(s->pack_fd, chunk, len)) < 0)
			return log_error_errno(r, "push: write pack: %m");
		EVP_DigestUpdate(s->pack_md, chunk, len);
		e.pack = s->cur;
		e.off = l->size;
		l->size += len;
		s->new_bytes += len;
		chunkmap_add(&s->fresh, e.sha, e.pack, e.off, (uint32_t)len);
	}
	if (s->n == s->cap)
		s->e = xrealloc(s->e, (s->cap = s->cap ? s->cap * 2 : 4096) * sizeof(*s->e));
	s->e[s->n++] = e;
	return 0;
}

struct pack_list_ctx {
	struct chunkmap *present;
	uint64_t *sizes;
};

static int on_pack(void *ud, const struct store_obj *o)
{
	struct chunkmap *present = ud;
	uint8_t h[32];
	if (!startswith(o->key, PACK_KEY_PREFIX) || sha256_unhex(o->key + strlen(PACK_KEY_PREFIX), h) < 0)
		return 0;
	chunkmap_pack(present, h);
	return 0;
}

int push_init(struct push_ctx *p, struct store *st, EVP_PKEY *pub, const char *workdir,
	      struct manifest *newest, uint8_t newest_sha[32], uint64_t *max_gen)
{
	_cleanup_free_ uint64_t *gens = NULL;
	size_t ngens;
	int r;

	memset(p, 0, sizeof(*p));
	memset(newest, 0, sizeof(*newest));
	p->st = st;
	p->cdc = CDC_DEFAULT_PARAMS;
	p->pack_target = PACK_TARGET_SIZE;
	p->workdir = workdir;
	chunkmap_init(&p->known);
	chunkmap_init(&p->present);
	*max_gen = 0;

	r = store_list(st, PACK_KEY_PREFIX, on_pack, &p->present);
	if (r < 0)
		return r;
	r = gen_list(st, &gens, &ngens);
	if (r < 0)
		return r;
	if (ngens)
		*max_gen = gens[ngens - 1];
	struct chunkmap seen;	/* index hashes mapped */
	chunkmap_init(&seen);
	/* Every valid generation's chunks, to deduplicate against all. */
	for (size_t i = ngens; i-- > 0;) {
		struct manifest m;
		uint8_t sha[32];
		r = gen_load(st, gens[i], pub, &m, sha);
		if (r == -EBADMSG || r == -EKEYREJECTED || r == -ENOKEY) {
			log_warn("push: generation %llu is not valid; not deduplicating against it",
				 (unsigned long long)gens[i]);
			continue;
		}
		if (r < 0) {
			chunkmap_free(&seen);
			return r;
		}
		for (size_t l = 0; l < m.nlayers; l++) {
			struct index ix;
			/* Generations share most layers: map each index once. */
			if (chunkmap_find_pack(&seen, m.layers[l].index) >= 0)
				continue;
			chunkmap_pack(&seen, m.layers[l].index);
			r = gen_load_index(st, &m.layers[l], &ix);
			if (r < 0) {
				manifest_free(&m);
				chunkmap_free(&seen);
				return r;
			}
			gen_map_index(&p->known, &ix);
			index_free(&ix);
		}
		if (newest->generation == 0) {
			*newest = m;
			memcpy(newest_sha, sha, 32);
		} else {
			manifest_free(&m);
		}
	}
	chunkmap_free(&seen);
	return 0;
}

void push_free(struct push_ctx *p)
{
	chunkmap_free(&p->known);
	chunkmap_free(&p->present);
}

static int upload_pack(struct push_ctx *p, struct lpack *l, uint64_t *done, uint64_t total)
{
	char key[128];
	pack_key(l->sha, key, sizeof(key));
	_cleanup_free_ char *path = pack_path(p, l->sha);
	if (chunkmap_find_pack(&p->present, l->sha) >= 0) {
		struct store_obj o;
		/* Listed: trust it if the size is right (a rerun after a kill). */
		if (store_stat(p->st, key, &o) == 0 && o.size == l->size) {
			p->packs_skipped++;
			*done += l->size;
			unlink(path);
			return 0;
		}
	}
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(-errno, "push: %s: %m", path);
	struct store_src src = { .fd = fd, .size = l->size };
	int r = store_put(p->st, key, &src);
	if (r < 0)
		return log_error_errno(r, "push: upload %s failed", key);
	p->packs_uploaded++;
	p->uploaded += l->size;
	test_crash_point("pack", p->packs_uploaded);
	*done += l->size;
	if (p->progress)
		p->progress(p->progress_ud, *done, total);
	unlink(path);
	return 0;
}

int push_layer(struct push_ctx *p, const char *path, struct manifest_layer *layer)
{
	struct pass1 s = { .p = p, .pack_fd = -1 };
	struct index ix = { 0 };
	_cleanup_free_ void *ibuf = NULL;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	memset(layer, 0, sizeof(*layer));
	if (fd < 0)
		return log_error_errno(-errno, "push: %s: %m", path);
	chunkmap_init(&s.lpmap);
	chunkmap_init(&s.fresh);
	s.image_md = EVP_MD_CTX_new();
	s.pack_md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(s.image_md, EVP_sha256(), NULL);

	r = cdc_split_fd(&p->cdc, fd, on_chunk, &s);
	if (r == 0)
		r = pack_close(&s);
	if (r < 0)
		goto out;
	unsigned hl = 32;
	EVP_DigestFinal_ex(s.image_md, layer->sha256, &hl);

	/* Pass two: the packs, then the index. */
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < s.nlp; i++)
		if (s.lp[i].fresh)
			total += s.lp[i].size;
	for (size_t i = 0; i < s.nlp && r == 0; i++)
		if (s.lp[i].fresh)
			r = upload_pack(p, &s.lp[i], &done, total);
	if (r < 0)
		goto out;

	ix.layer_size = s.size;
	ix.npacks = (uint32_t)s.nlp;
	ix.nchunks = (uint32_t)s.n;
	ix.packs = xmalloc(s.nlp * 32 + 1);
	ix.chunks = xcalloc(s.n + 1, sizeof(*ix.chunks));
	for (size_t i = 0; i < s.nlp; i++)
		memcpy(ix.packs[i], s.lp[i].sha, 32);
	for (size_t i = 0; i < s.n; i++) {
		memcpy(ix.chunks[i].sha256, s.e[i].sha, 32);
		ix.chunks[i].pack = s.e[i].pack;
		ix.chunks[i].len = s.e[i].len;
		ix.chunks[i].pack_off = s.e[i].off;
	}
	size_t ilen;
	index_write(&ix, &ibuf, &ilen);
	p->index_is_delta = false;
	if (p->delta_base) {
		void *dbuf;
		size_t dlen;
		index_write_delta(&ix, p->delta_base, p->delta_base_sha, &dbuf, &dlen);
		log_debug("push: index %zu bytes, as a delta %zu", ilen, dlen);
		if (dlen < ilen) {
			free(ibuf);
			ibuf = dbuf;
			ilen = dlen;
			p->index_is_delta = true;
		} else {
			free(dbuf);
		}
	}
	sha256_buf(ibuf, ilen, layer->index);
	char key[128];
	index_key(layer->index, key, sizeof(key));
	struct store_src isrc = { .mem = ibuf, .fd = -1, .size = ilen };
	r = store_put(p->st, key, &isrc);
	if (r < 0) {
		log_error_errno(r, "push: upload %s failed", key);
		goto out;
	}
	test_crash_point("index", 0);
	layer->size = s.size;
	layer->index_size = ilen;
	layer->chunks = s.n;
	layer->new_bytes = s.new_bytes;
	p->store_new_bytes += s.new_bytes;
	log_info("push: %llu bytes in %zu chunks; %llu bytes new in %u packs (%u already stored)",
		 (unsigned long long)s.size, s.n, (unsigned long long)s.new_bytes, p->packs_uploaded + p->packs_skipped,
		 p->packs_skipped);
out:
	if (s.pack_fd >= 0)
		close(s.pack_fd);
	for (size_t i = 0; i < s.nlp; i++) {
		if (!s.lp[i].fresh)
			continue;
		_cleanup_free_ char *t = tmp_pack_path(&s, (uint32_t)i);
		unlink(t);
		if (s.lp[i].closed) {
			_cleanup_free_ char *f = pack_path(p, s.lp[i].sha);
			unlink(f);
		}
	}
	index_free(&ix);
	free(s.e);
	free(s.lp);
	free(s.old_lp);
	chunkmap_free(&s.lpmap);
	chunkmap_free(&s.fresh);
	EVP_MD_CTX_free(s.image_md);
	EVP_MD_CTX_free(s.pack_md);
	return r;
}
