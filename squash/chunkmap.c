// SPDX-License-Identifier: MIT
/* Implementation of chunkmap.h: open-addressing tables keyed by SHA-256. */
#include "chunkmap.h"

#include <string.h>

#include "../fetcher/util/util.h"

static uint64_t h64(const uint8_t h[32])
{
	uint64_t v;
	memcpy(&v, h, sizeof(v));
	return v;
}

void chunkmap_init(struct chunkmap *m)
{
	memset(m, 0, sizeof(*m));
}

void chunkmap_free(struct chunkmap *m)
{
	free(m->slots);
	free(m->packs);
	free(m->pack_slots);
	memset(m, 0, sizeof(*m));
}

static void pack_rehash(struct chunkmap *m, size_t cap)
{
	free(m->pack_slots);
	m->pack_slots = xmalloc(cap * sizeof(uint32_t));
	memset(m->pack_slots, 0xff, cap * sizeof(uint32_t));
	m->pack_slot_cap = cap;
	for (size_t i = 0; i < m->npacks; i++) {
		size_t s = h64(m->packs[i]) & (cap - 1);
		while (m->pack_slots[s] != UINT32_MAX)
			s = (s + 1) & (cap - 1);
		m->pack_slots[s] = (uint32_t)i;
	}
}

long chunkmap_find_pack(const struct chunkmap *m, const uint8_t h[32])
{
	if (!m->pack_slot_cap)
		return -1;
	size_t s = h64(h) & (m->pack_slot_cap - 1);
	while (m->pack_slots[s] != UINT32_MAX) {
		if (memcmp(m->packs[m->pack_slots[s]], h, 32) == 0)
			return m->pack_slots[s];
		s = (s + 1) & (m->pack_slot_cap - 1);
	}
	return -1;
}

uint32_t chunkmap_pack(struct chunkmap *m, const uint8_t h[32])
{
	long f = chunkmap_find_pack(m, h);
	if (f >= 0)
		return (uint32_t)f;
	if (m->npacks == m->pack_cap) {
		m->pack_cap = m->pack_cap ? m->pack_cap * 2 : 64;
		m->packs = xrealloc(m->packs, m->pack_cap * 32);
	}
	memcpy(m->packs[m->npacks], h, 32);
	m->npacks++;
	if (m->npacks * 2 > m->pack_slot_cap)
		pack_rehash(m, m->pack_slot_cap ? m->pack_slot_cap * 2 : 128);
	else {
		size_t s = h64(h) & (m->pack_slot_cap - 1);
		while (m->pack_slots[s] != UINT32_MAX)
			s = (s + 1) & (m->pack_slot_cap - 1);
		m->pack_slots[s] = (uint32_t)(m->npacks - 1);
	}
	return (uint32_t)(m->npacks - 1);
}

static void grow(struct chunkmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	struct chunk_loc *old = m->slots;
	size_t oldcap = m->cap;
	m->slots = xcalloc(cap, sizeof(*m->slots));
	m->cap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].len)
			continue;
		size_t s = h64(old[i].sha256) & (cap - 1);
		while (m->slots[s].len)
			s = (s + 1) & (cap - 1);
		m->slots[s] = old[i];
	}
	free(old);
}

const struct chunk_loc *chunkmap_find(const struct chunkmap *m, const uint8_t sha[32])
{
	if (!m->cap)
		return NULL;
	size_t s = h64(sha) & (m->cap - 1);
	while (m->slots[s].len) {
		if (memcmp(m->slots[s].sha256, sha, 32) == 0)
			return &m->slots[s];
		s = (s + 1) & (m->cap - 1);
	}
	return NULL;
}

bool chunkmap_add(struct chunkmap *m, const uint8_t sha[32], uint32_t pack, uint64_t off, uint32_t len)
{
	if (len == 0 || chunkmap_find(m, sha))
		return false;
	if ((m->n + 1) * 10 > m->cap * 7)
		grow(m);
	size_t s = h64(sha) & (m->cap - 1);
	while (m->slots[s].len)
		s = (s + 1) & (m->cap - 1);
	memcpy(m->slots[s].sha256, sha, 32);
	m->slots[s].pack = pack;
	m->slots[s].off = off;
	m->slots[s].len = len;
	m->n++;
	return true;
}
