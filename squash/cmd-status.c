// SPDX-License-Identifier: MIT
/*
 * `gdroot status` and `gdroot boot-done`: the two commands that talk to the
 * running fetcher through its control socket (fetcher/control.h). status
 * pretty-prints the daemon's status object (or prints it raw with --json);
 * a key the daemon did not send shows as "-". boot-done asks the daemon to
 * save the boot profile now. Exit codes: 0 done, 1 no fetcher or the
 * fetcher refused, 2 bad usage.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

#include "cli.h"
#include "../fetcher/control.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static const char status_help[] =
	"Usage: gdroot status [--json] [--socket PATH]\n\n"
	"Show what the running fetcher is doing: generation, layers, cache use and\n"
	"hit rate, bytes fetched, prefetch progress.\n\n"
	"      --json            print the fetcher's status object as it is\n"
	"      --socket PATH     its control socket (default: fetcher_socket in the\n"
	"                        config, else " CONTROL_DEFAULT_SOCKET ")\n\n";

static const char boot_done_help[] =
	"Usage: gdroot boot-done [--socket PATH]\n\n"
	"Tell the fetcher that the boot is complete: it saves the access profile\n"
	"(which chunks, in which order) so the next boot prefetches them. Needs root.\n\n"
	"      --socket PATH     its control socket (default: fetcher_socket in the\n"
	"                        config, else " CONTROL_DEFAULT_SOCKET ")\n\n";

/* Parse [--json] [--socket PATH]; 0, 1 after --help, or -EINVAL. */
static int parse_args(struct cli *c, int argc, char **argv, const char *help, bool allow_json,
		      bool *json, const char **sock)
{
	*sock = cli_setting(c, "fetcher_socket");
	if (!*sock || !**sock)
		*sock = CONTROL_DEFAULT_SOCKET;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			fputs(help, stdout);
			fputs(cli_common_help, stdout);
			return 1;
		} else if (allow_json && streq(argv[i], "--json")) {
			*json = true;
		} else if (streq(argv[i], "--socket") && i + 1 < argc) {
			*sock = argv[++i];
		} else if (startswith(argv[i], "--socket=")) {
			*sock = argv[i] + strlen("--socket=");
		} else {
			log_error("%s: unexpected '%s' (see --help)", argv[0], argv[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* Send cmd; on success *out is the reply (caller frees). Errors are
 * printed; returns 0 or -errno. */
static int call(const char *sock, const char *cmd, char **out)
{
	int r = control_call(sock, cmd, out);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return log_error_errno(r, "no fetcher running? (no socket at %s)", sock);
	if (r == -EACCES)
		return log_error_errno(r, "%s: permission denied (the control socket is root's)", sock);
	if (r < 0)
		return log_error_errno(r, "%s: %m", sock);
	return 0;
}

/* The value at a dotted path ("cache.hits") as a non-negative integer. */
static bool get_u64(json_t *root, const char *path, uint64_t *v)
{
	char key[64];
	json_t *j = root;
	while (j && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key))
			return false;
		memcpy(key, path, n);
		key[n] = 0;
		j = json_object_get(j, key);
		path += n + (path[n] == '.');
	}
	if (json_is_integer(j) && json_integer_value(j) >= 0) {
		*v = (uint64_t)json_integer_value(j);
		return true;
	}
	if (json_is_real(j) && json_real_value(j) >= 0) {
		*v = (uint64_t)json_real_value(j);
		return true;
	}
	return false;
}

/* Formatters writing "-" when the key is missing. */
static const char *fmt_num(char *buf, size_t n, json_t *root, const char *path)
{
	uint64_t v;
	if (!get_u64(root, path, &v))
		return "-";
	snprintf(buf, n, "%" PRIu64, v);
	return buf;
}

static const char *fmt_size(char *buf, size_t n, json_t *root, const char *path)
{
	uint64_t v;
	if (!get_u64(root, path, &v))
		return "-";
	cli_human_size(buf, n, v);
	return buf;
}

static void print_status(json_t *root)
{
	char a[48], b[48], cc[48], d[48];
	const char *store = json_string_value(json_object_get(root, "store"));

	printf("generation  %s", fmt_num(a, sizeof(a), root, "generation"));
	if (store)
		printf("  (%s)", store);
	printf("\n");

	json_t *layers = json_object_get(root, "layers");
	if (json_is_array(layers)) {
		printf("layers      %zu\n", json_array_size(layers));
		size_t i;
		json_t *l;
		json_array_foreach(layers, i, l) {
			const char *name = json_string_value(json_object_get(l, "name"));
			printf("  %-10s%s\n", name ? name : "-", fmt_size(a, sizeof(a), l, "size"));
		}
	} else {
		printf("layers      -\n");
	}

	printf("cache       %s / %s, %s chunks", fmt_size(a, sizeof(a), root, "cache.bytes"),
	       fmt_size(b, sizeof(b), root, "cache.limit"), fmt_num(cc, sizeof(cc), root, "cache.chunks"));
	uint64_t hits, misses;
	if (get_u64(root, "cache.hits", &hits) && get_u64(root, "cache.misses", &misses) &&
	    hits + misses > 0)
		printf(", hit rate %.1f%% (%" PRIu64 " hits, %" PRIu64 " misses)\n",
		       100.0 * (double)hits / (double)(hits + misses), hits, misses);
	else
		printf(", hit rate -\n");

	printf("fetched     %s in %s requests, %s errors, %s retries\n",
	       fmt_size(a, sizeof(a), root, "fetched.bytes"),
	       fmt_num(b, sizeof(b), root, "fetched.requests"),
	       fmt_num(cc, sizeof(cc), root, "fetched.errors"),
	       fmt_num(d, sizeof(d), root, "fetched.retries"));
	printf("verify      %s failures\n", fmt_num(a, sizeof(a), root, "verify_failures"));

	uint64_t done, total;
	const char *state = json_string_value(json_object_get(json_object_get(root, "prefetch"), "state"));
	printf("prefetch    %s / %s chunks", fmt_num(a, sizeof(a), root, "prefetch.done"),
	       fmt_num(b, sizeof(b), root, "prefetch.total"));
	if (get_u64(root, "prefetch.done", &done) && get_u64(root, "prefetch.total", &total) && total)
		printf(" (%.0f%%)", 100.0 * (double)done / (double)total);
	printf(", %s\n", state ? state : "-");

	uint64_t up;
	if (get_u64(root, "uptime_s", &up))
		printf("uptime      %" PRIu64 "d %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 "\n",
		       up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
	else
		printf("uptime      -\n");
}

int cmd_status(struct cli *c, int argc, char **argv)
{
	bool json = false;
	const char *sock;
	int r = parse_args(c, argc, argv, status_help, true, &json, &sock);
	if (r != 0)
		return r > 0 ? 0 : 2;
	_cleanup_free_ char *out = NULL;
	if (call(sock, "status", &out) < 0)
		return 1;
	if (json) {
		printf("%s\n", out);
		return 0;
	}
	json_error_t err;
	json_t *root = json_loads(out, 0, &err);
	if (!json_is_object(root)) {
		json_decref(root);
		log_error("%s: the fetcher's answer is not a JSON object: %s", sock, err.text);
		return 1;
	}
	const char *e = json_string_value(json_object_get(root, "error"));
	if (json_is_false(json_object_get(root, "ok"))) {
		log_error("status: the fetcher says: %s", e ? e : "error");
		json_decref(root);
		return 1;
	}
	print_status(root);
	json_decref(root);
	return 0;
}

int cmd_boot_done(struct cli *c, int argc, char **argv)
{
	bool json = false;
	const char *sock;
	int r = parse_args(c, argc, argv, boot_done_help, false, &json, &sock);
	if (r != 0)
		return r > 0 ? 0 : 2;
	_cleanup_free_ char *out = NULL;
	if (call(sock, "boot-done", &out) < 0)
		return 1;
	json_t *root = json_loads(out, 0, NULL);
	if (json_is_true(json_object_get(root, "ok"))) {
		json_decref(root);
		if (!c->quiet)
			log_info("boot profile saved");
		return 0;
	}
	const char *e = json_string_value(json_object_get(root, "error"));
	log_error("boot-done: the fetcher says: %s", e ? e : out);
	json_decref(root);
	return 1;
}
