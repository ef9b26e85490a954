// SPDX-License-Identifier: MIT
/*
 * `gdroot log`: the generations of a store, newest first, with time, image
 * size, bytes new in that generation, layers, parent, and whether the
 * manifest checks. An invalid manifest is listed with the reason, not hidden.
 */
#include <inttypes.h>
#include <time.h>

#include "cli.h"
#include "gen.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

int cmd_log(struct cli *c, int argc, char **argv)
{
	bool layers = false;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			printf("Usage: gdroot log [OPTIONS]\n\nList the generations of the store, newest first: what\n"
			       "made each (push, commit, reset, compact) is the last column.\n\n"
			       "  --layers              also list each generation's layers, bottom first\n\n%s",
			       cli_common_help);
			return 0;
		}
		if (streq(argv[i], "--layers")) {
			layers = true;
			continue;
		}
		log_error("log: unexpected '%s'", argv[i]);
		return 2;
	}
	EVP_PKEY *pub = NULL;
	struct store *st = NULL;
	_cleanup_free_ uint64_t *gens = NULL;
	size_t n = 0;
	unsigned bad = 0;
	int r = cli_load_keys(c, NULL, &pub);
	if (r < 0)
		return 2;
	r = cli_open_store(c, &st);
	if (r == 0)
		r = gen_list(st, &gens, &n);
	if (r < 0)
		goto out;
	if (n == 0) {
		printf("no generations in %s (publish one with gdroot push)\n", st->url);
		goto out;
	}
	printf("%-6s  %-20s  %10s  %10s  %6s  %-6s  %-16s  %s\n", "GEN", "CREATED", "SIZE", "NEW", "LAYERS", "PARENT",
	       "SIGNED", "KIND");
	/* Quiet the loader: problems are shown in the table. */
	enum log_level lvl = log_get_level();
	for (size_t i = n; i-- > 0;) {
		struct manifest m;
		log_set_level(LOG_LVL_ERROR - 1);
		int e = gen_load(st, gens[i], pub, &m, NULL);
		log_set_level(lvl);
		if (e < 0) {
			printf("%-6" PRIu64 "  INVALID: %s\n", gens[i],
			       e == -EKEYREJECTED ? "bad signature or another key"
			       : e == -ENOKEY	   ? "signed/unsigned mismatch with this configuration"
			       : e == -EBADMSG	   ? "malformed manifest"
						   : strerror(-e));
			bad++;
			if (e != -EKEYREJECTED && e != -ENOKEY && e != -EBADMSG && e != -EFBIG) {
				r = e;
				break;
			}
			continue;
		}
		char when[32], size[32], fresh[32], parent[24] = "-";
		time_t t = (time_t)m.created;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
		uint64_t total = 0;
		for (size_t l = 0; l < m.nlayers; l++)
			total += m.layers[l].size;
		cli_human_size(size, sizeof(size), total);
		cli_human_size(fresh, sizeof(fresh), m.new_bytes);
		if (m.parent)
			snprintf(parent, sizeof(parent), "%" PRIu64, m.parent);
		char kind[48];
		if (m.from)
			snprintf(kind, sizeof(kind), "%s %" PRIu64, m.kind[0] ? m.kind : "reset", m.from);
		else
			snprintf(kind, sizeof(kind), "%s", m.kind[0] ? m.kind : "-");
		printf("%-6" PRIu64 "  %-20s  %10s  %10s  %6zu  %-6s  %-16s  %s\n", m.generation, when, size, fresh,
		       m.nlayers, parent, m.is_signed ? m.key_id : "unsigned", kind);
		for (size_t l = 0; layers && l < m.nlayers; l++) {
			char lsz[32], ix[65];
			cli_human_size(lsz, sizeof(lsz), m.layers[l].size);
			sha256_hex(m.layers[l].index, ix);
			printf("        layer %zu  %10s  index %.16s  %s%s\n", l, lsz, ix,
			       m.layers[l].session[0] ? "session " : "", m.layers[l].session);
		}
		manifest_free(&m);
	}
out:
	store_close(st);
	EVP_PKEY_free(pub);
	return r < 0 ? 1 : bad ? 1 : 0;
}
