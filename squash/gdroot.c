// SPDX-License-Identifier: MIT
/*
 * gdroot: the multi-call command-line tool. `gdroot CMD ...` dispatches to
 * a subcommand; each one parses its own options after the shared ones.
 */
#include <stdio.h>

#include "cli.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static const struct {
	const char *name;
	int (*fn)(struct cli *c, int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "push", cmd_push, "publish a root filesystem as a new generation" },
	{ "log", cmd_log, "list the generations of a store" },
	{ "verify", cmd_verify, "check every generation, index and pack of a store" },
	{ "export", cmd_export, "reassemble a layer image of a generation" },
	{ "keygen", cmd_keygen, "make an Ed25519 key pair for signing manifests" },
	{ "clock", cmd_clock, "set the clock from an NTP server (SNTP)" },
	{ "store", cmd_store, "read and write objects in a store (ls, stat, get, put, rm)" },
	{ "auth", cmd_auth, "get a Google Drive refresh token (OAuth device flow)" },
	{ "status", cmd_status, "show the running fetcher's cache, fetches and prefetch" },
	{ "boot-done", cmd_boot_done, "tell the fetcher the boot is complete (save the profile)" },
	{ "commit", cmd_commit, "capture this session's changes and publish them (gdroot-commit)" },
	{ "commitd", cmd_commitd, "commit on a schedule or when enough changed (gdroot-commitd)" },
	{ "reset", cmd_reset, "discard this session, or --to GEN: publish an old generation (gdroot-reset)" },
	{ "compact", cmd_compact, "merge a generation's layers into one new base layer" },
	{ "gc", cmd_gc, "delete generations beyond the newest --keep N and what only they use" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: gdroot [OPTIONS] COMMAND [ARGS]\n\n"
		   "Boot Linux from a root filesystem image kept in Google Drive, S3 or a folder.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n%s\n  -h, --help            this help ('gdroot COMMAND --help' for a command's)\n"
		   "      --version         print the version\n",
		cli_common_help);
}

int main(int argc, char **argv)
{
	struct cli c;
	int r;

	log_set_program("gdroot");
	/* gdroot-commit, gdroot-reset, ...: links to this program. */
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	_cleanup_free_ char **av = NULL;
	if (startswith(base, "gdroot-")) {
		for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
			if (!streq(base + strlen("gdroot-"), commands[i].name))
				continue;
			av = xcalloc((size_t)argc + 2, sizeof(*av));
			av[0] = argv[0];
			av[1] = (char *)commands[i].name;
			memcpy(av + 2, argv + 1, (size_t)argc * sizeof(*av));
			argv = av;
			argc++;
			log_set_program(base);
			break;
		}
	}
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "--version")) {
			printf("gdroot %s\n", GDROOT_VERSION);
			return 0;
		}
		if (argv[i][0] != '-')
			break;
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
	}
	r = cli_init(&c, &argc, argv);
	if (r < 0)
		return 2;
	if (argc < 2) {
		usage(stderr);
		cli_free(&c);
		return 2;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (streq(argv[1], commands[i].name)) {
			r = commands[i].fn(&c, argc - 1, argv + 1);
			cli_free(&c);
			return r;
		}
	}
	log_error("unknown command '%s' (see gdroot --help)", argv[1]);
	cli_free(&c);
	return 2;
}
