/* SPDX-License-Identifier: MIT */
/*
 * Internal pieces shared by the cache stage (cache.c) and its disk store
 * (cache-disk.c): a refcounted chunk buffer, so a chunk being copied out is
 * never freed under the copier, and an intrusive hash map keyed by a chunk's
 * SHA-256. Neither locks anything: callers hold their own lock around every
 * map call; buffer references are atomic and need no lock.
 */
#ifndef GDROOT_CACHE_MAP_H
#define GDROOT_CACHE_MAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/util.h"

/* A chunk's bytes with a reference count. */
struct cache_buf {
	unsigned refs;		/* atomic */
	uint32_t len;
	uint8_t data[];
};

/* A new buffer of len bytes with one reference, owned by the caller. */
static inline struct cache_buf *cache_buf_new(uint32_t len)
{
	struct cache_buf *b = xmalloc(sizeof(*b) + (len ? len : 1));
	b->refs = 1;
	b->len = len;
	return b;
}

static inline struct cache_buf *cache_buf_ref(struct cache_buf *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

/* Drop one reference; the last one frees. NULL is a no-op. */
static inline void cache_buf_unref(struct cache_buf *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

/* Embed in the object to be found; key is the chunk's SHA-256. */
struct cache_node {
	struct cache_node *hnext;
	uint8_t key[32];
};

struct cache_map {
	struct cache_node **b;
	size_t nb;		/* power of two, or 0 before the first insert */
	size_t n;
};

static inline size_t cache_map_slot(const struct cache_map *m, const uint8_t key[32])
{
	uint64_t h;
	memcpy(&h, key, sizeof(h));	/* a SHA-256 is already uniform */
	return (size_t)h & (m->nb - 1);
}

/* The node with this key, or NULL. */
static inline struct cache_node *cache_map_find(const struct cache_map *m, const uint8_t key[32])
{
	if (!m->nb)
		return NULL;
	for (struct cache_node *x = m->b[cache_map_slot(m, key)]; x; x = x->hnext)
		if (!memcmp(x->key, key, 32))
			return x;
	return NULL;
}

/* Add x (its key must be set and absent from m). Grows as needed. */
static inline void cache_map_add(struct cache_map *m, struct cache_node *x)
{
	if (m->n >= m->nb) {
		size_t onb = m->nb, nb = onb ? onb * 2 : 64;
		struct cache_node **ob = m->b;
		m->b = xcalloc(nb, sizeof(*m->b));
		m->nb = nb;
		for (size_t i = 0; i < onb; i++)
			for (struct cache_node *y = ob[i], *nx; y; y = nx) {
				nx = y->hnext;
				size_t s = cache_map_slot(m, y->key);
				y->hnext = m->b[s];
				m->b[s] = y;
			}
		free(ob);
	}
	size_t s = cache_map_slot(m, x->key);
	x->hnext = m->b[s];
	m->b[s] = x;
	m->n++;
}

/* Remove x if it is in m; returns true when it was. */
static inline bool cache_map_del(struct cache_map *m, struct cache_node *x)
{
	if (!m->nb)
		return false;
	for (struct cache_node **p = &m->b[cache_map_slot(m, x->key)]; *p; p = &(*p)->hnext)
		if (*p == x) {
			*p = x->hnext;
			x->hnext = NULL;
			m->n--;
			return true;
		}
	return false;
}

static inline void cache_map_free(struct cache_map *m)
{
	free(m->b);
	memset(m, 0, sizeof(*m));
}

#endif
