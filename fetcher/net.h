/* SPDX-License-Identifier: MIT */
/*
 * The network stage, last in the read path: chunk requests become ranged
 * GETs of their packs, many in flight on one libcurl multi handle, with
 * neighbouring chunks of one pack coalesced into one request and demand
 * reads served before prefetch. It runs its own thread and owns its store
 * from then on. Bytes are handed on unverified: the verify stage in front
 * of it checks them.
 *
 * Outages: requests are retried with backoff for ever (a hard mount) unless
 * timeout_s is set, after which a request fails with -ETIMEDOUT. The stage
 * never gives up on the store as a whole.
 */
#ifndef GDROOT_NET_H
#define GDROOT_NET_H

#include "stage.h"
#include "store/store.h"

struct net_opts {
	unsigned max_inflight;	/* requests in flight; default 16 */
	uint64_t max_request;	/* bytes per coalesced request; default 4 MiB */
	unsigned timeout_s;	/* 0: retry for ever */
};

/* Takes ownership of st (closed by destroy). NULL on failure (logged). */
struct stage *net_stage_new(struct store *st, const struct net_opts *o);

#endif
