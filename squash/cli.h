/* SPDX-License-Identifier: MIT */
/*
 * What every `gdroot` subcommand shares: the configuration (gdroot.conf plus
 * command-line overrides), the store URL, and the progress bar shown on a
 * terminal during long transfers.
 */
#ifndef GDROOT_CLI_H
#define GDROOT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "../fetcher/store/store.h"

#define GDROOT_DEFAULT_CONFIG "/etc/gdroot/gdroot.conf"
#define GDROOT_SESSION_CONFIG "/run/gdroot/gdroot.conf"
/* Written by the init at boot: "session = ID" (see overlay-init/init). */
#define GDROOT_SESSION_FILE "/run/gdroot/session"

struct cli {
	struct store_opts opts;
	char *store_url;	/* owned; NULL until configured */
	const char *config;	/* the file read, or NULL */
	bool progress;		/* draw progress bars (stderr is a terminal) */
	char *signing_key;	/* signing_key = (push, commit) */
	char *public_key;	/* public_key = (everything that reads) */
	bool unsigned_store;	/* --unsigned or unsigned = true */
	char **extra;		/* "name=value" of other parts' settings */
	size_t nextra;
	bool quiet;
};

/* Parse the options every subcommand takes (--config, --store, --set,
 * --ca-file, -v, -q) from argv, removing them; loads the config file first.
 * Returns 0, or -errno after printing the problem. */
int cli_init(struct cli *c, int *argc, char **argv);
void cli_free(struct cli *c);
/* Open the configured store (error if none is configured). */
int cli_open_store(struct cli *c, struct store **out);
/* Load the keys a command needs: the private key when priv is not NULL
 * (signing), and the public key (from public_key, or derived from the
 * private key) unless the store is unsigned, where *pub stays NULL.
 * Errors are printed; returns 0 or -errno. */
#include <openssl/evp.h>
int cli_load_keys(struct cli *c, EVP_PKEY **priv, EVP_PKEY **pub);
/* The value of another part's setting (fetcher_*, boot_*, commit_*) from
 * the config file, or NULL. */
const char *cli_setting(const struct cli *c, const char *name);
/* A byte count for people: "512 B", "1.5 KiB", "12.3 MiB", "1.25 GiB". */
void cli_human_size(char *out, size_t n, uint64_t v);
/* GEN as typed: a number, or "latest" (the newest valid generation). */
int parse_generation(struct store *st, const char *s, EVP_PKEY *pub, uint64_t *gen);
/* Help for the shared options, for subcommands' --help. */
extern const char cli_common_help[];

/* A progress bar on stderr: "name  12.3 MiB / 40.0 MiB  5.1 MiB/s  ETA 6s".
 * Redraws at most 10 times a second; does nothing unless enabled. */
struct progress_bar {
	const char *name;
	bool enabled;
	uint64_t start_ns, last_ns;
	uint64_t done, total;
};
void progress_bar_begin(struct progress_bar *p, const char *name, bool enabled);
void progress_bar_update(void *ud, uint64_t done, uint64_t total);
void progress_bar_end(struct progress_bar *p);

/* Subcommands. */
int cmd_store(struct cli *c, int argc, char **argv);
int cmd_auth(struct cli *c, int argc, char **argv);
int cmd_keygen(struct cli *c, int argc, char **argv);
int cmd_clock(struct cli *c, int argc, char **argv);
int cmd_push(struct cli *c, int argc, char **argv);
int cmd_log(struct cli *c, int argc, char **argv);
int cmd_verify(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_boot_done(struct cli *c, int argc, char **argv);
int cmd_commit(struct cli *c, int argc, char **argv);
int cmd_commitd(struct cli *c, int argc, char **argv);
int cmd_reset(struct cli *c, int argc, char **argv);
int cmd_compact(struct cli *c, int argc, char **argv);
int cmd_gc(struct cli *c, int argc, char **argv);

#endif
