// SPDX-License-Identifier: MIT
/*
 * `gdroot reset` (gdroot-reset): throw this boot session away, or with
 * --to GEN publish a new generation equal to GEN (a rollback that keeps
 * history).
 */
#include <inttypes.h>
#include <signal.h>
#include <sys/reboot.h>
#include <time.h>

#include "commit.h"
#include "gen.h"
#include "image.h"
#include "publish.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static const char reset_help[] =
	"Usage: gdroot reset [OPTIONS]\n"
	"       gdroot reset --to GEN [OPTIONS]\n\n"
	"Without --to: discard this session's uncommitted changes. Nothing more is\n"
	"committed from this session (the commit daemon stops too), and the machine\n"
	"reboots into a clean session of the newest generation.\n\n"
	"With --to GEN: publish a new generation whose layers are those of GEN, so\n"
	"the next boot of every machine sees GEN again; history is kept (gdroot log).\n"
	"In a boot session it then resets the session as above, since its changes\n"
	"were made on top of what was rolled back.\n\n"
	"  --to GEN              the generation to return to (a number)\n"
	"  --no-reboot           do not reboot; only stop further commits\n"
	"  --state DIR           the commit state (commit_state; default " COMMIT_DEFAULT_STATE ")\n\n";

struct reset_build {
	const struct manifest *target;
};

static int build_reset(void *ud, const struct manifest *newest, struct manifest *out)
{
	const struct reset_build *b = ud;
	(void)newest;
	out->nlayers = b->target->nlayers;
	out->layers = xmalloc(out->nlayers * sizeof(*out->layers));
	memcpy(out->layers, b->target->layers, out->nlayers * sizeof(*out->layers));
	out->from = b->target->generation;
	snprintf(out->kind, sizeof(out->kind), "reset");
	return 0;
}

static int rollback(struct cli *c, uint64_t to)
{
	EVP_PKEY *priv = NULL, *pub = NULL;
	struct store *st = NULL;
	struct store_lock lock = { .held = false };
	struct manifest target = { 0 };
	uint64_t gen = 0;
	int r;

	if (cli_load_keys(c, &priv, &pub) < 0)
		return -ENOKEY;
	r = cli_open_store(c, &st);
	if (r < 0)
		goto out;
	r = gen_load(st, to, pub, &target, NULL);
	if (r < 0)
		goto out;
	/* Every layer must still be there: a generation gc removed the packs
	 * of cannot come back. */
	for (size_t i = 0; i < target.nlayers && r == 0; i++) {
		struct index ix;
		r = gen_load_index(st, &target.layers[i], &ix);
		if (r == 0)
			index_free(&ix);
	}
	if (r < 0) {
		log_error("reset: generation %" PRIu64 " cannot be restored: its layers are not all in the store", to);
		goto out;
	}
	r = lock_take(st, "push", 600, &lock);
	if (r < 0)
		goto out;
	struct reset_build b = { &target };
	r = publish(st, priv, pub, build_reset, &b, &gen);
	if (r < 0)
		goto out;
	printf("generation %" PRIu64 ": the layers of generation %" PRIu64 " (%zu); the next boot starts from it\n",
	       gen, to, target.nlayers);
out:
	if (st)
		lock_drop(st, &lock);
	manifest_free(&target);
	store_close(st);
	EVP_PKEY_free(priv);
	EVP_PKEY_free(pub);
	return r;
}

static int mark_reset(const char *state)
{
	_cleanup_free_ char *marker = commit_reset_marker(state);
	_cleanup_free_ char *body = xasprintf("reset at %lld\n", (long long)time(NULL));
	int r = write_file_atomic(marker, body, strlen(body), 0600);
	if (r < 0)
		return log_error_errno(r, "reset: cannot write %s: %m", marker);
	return 0;
}

static int do_reboot(void)
{
	fflush(NULL);
	sync();
	char *sd[] = { "systemctl", "reboot", NULL };
	if (run_command(sd) == 0)
		return 0;
	/* No bus (a minimal system): ask systemd as Ctrl-Alt-Del does, which
	 * still stops every service in order. */
	char comm[64];
	if (read_line("/proc/1/comm", comm, sizeof(comm)) == 0 && streq(comm, "systemd") && kill(1, SIGINT) == 0)
		return 0;
	char *rb[] = { "reboot", NULL };
	if (run_command(rb) == 0)
		return 0;
	reboot(RB_AUTOBOOT);
	return log_error_errno(-errno, "reset: cannot reboot: %m");
}

int cmd_reset(struct cli *c, int argc, char **argv)
{
	const char *to_s = NULL, *v;
	const char *state = (v = cli_setting(c, "commit_state")) ? v : COMMIT_DEFAULT_STATE;
	bool no_reboot = false;
	uint64_t to = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (streq(a, "-h") || streq(a, "--help")) {
			fputs(reset_help, stdout);
			fputs(cli_common_help, stdout);
			return 0;
		} else if (streq(a, "--no-reboot")) {
			no_reboot = true;
		} else if ((streq(a, "--to") || streq(a, "--state")) && i + 1 < argc) {
			*(streq(a, "--to") ? &to_s : &state) = argv[++i];
		} else {
			log_error("reset: unknown or incomplete argument '%s' (see gdroot reset --help)", a);
			return 2;
		}
	}
	if (to_s && (parse_u64(to_s, &to) < 0 || to == 0)) {
		log_error("reset: --to needs a generation number, not '%s'", to_s);
		return 2;
	}
	bool in_session = access(GDROOT_SESSION_FILE, F_OK) == 0;
	if (!to_s && !in_session) {
		log_error("reset: this is not a gdroot boot session (no %s): nothing to discard; "
			  "use --to GEN to roll the store back",
			  GDROOT_SESSION_FILE);
		return 2;
	}
	if (to_s) {
		int r = rollback(c, to);
		if (r < 0)
			return r == -ENOKEY || r == -EINVAL ? 2 : 1;
		if (!in_session)
			return 0;
	}
	if (mark_reset(state) < 0)
		return 1;
	if (no_reboot) {
		printf("session reset: nothing more will be committed from it; its changes are gone at the next "
		       "boot\n");
		return 0;
	}
	printf("session reset: discarding its uncommitted changes and rebooting\n");
	return do_reboot() < 0 ? 1 : 0;
}
