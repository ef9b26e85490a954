// SPDX-License-Identifier: MIT
/*
 * Shared option handling for `gdroot` subcommands (cli.h): the config file,
 * the store URL and option overrides, and the terminal progress bar.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "manifest.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

const char cli_common_help[] =
	"Common options:\n"
	"  -c, --config FILE     configuration file (default " GDROOT_DEFAULT_CONFIG
	" if it exists;\n"
	"                        or $GDROOT_CONFIG)\n"
	"  -s, --store URL       the store: gdrive://FOLDER_ID, s3://BUCKET/PREFIX,\n"
	"                        file:///PATH (overrides store= in the config)\n"
	"  -o, --set NAME=VALUE  set a store option (see README: Configuration)\n"
	"      --ca-file FILE    CA bundle for TLS verification\n"
	"  -k, --key FILE        Ed25519 signing key (signing_key in the config)\n"
	"      --public-key FILE key to check manifests with (public_key)\n"
	"      --unsigned        the store is unsigned: write and accept unsigned\n"
	"                        manifests (unsigned = true)\n"
	"  -v, --verbose         log more (every retry, token refresh, request)\n"
	"  -q, --quiet           only errors; no progress bar\n";

static int other_setting(void *ud, const char *name, const char *value)
{
	struct cli *c = ud;
	if (streq(name, "store")) {
		free(c->store_url);
		c->store_url = xstrdup(value);
		return 0;
	}
	if (streq(name, "signing_key") || streq(name, "public_key")) {
		char **f = streq(name, "signing_key") ? &c->signing_key : &c->public_key;
		free(*f);
		*f = *value ? xstrdup(value) : NULL;
		return 0;
	}
	if (streq(name, "unsigned")) {
		if (!streq(value, "true") && !streq(value, "false"))
			return log_error_errno(-EINVAL, "unsigned: expected true or false, not '%s'", value);
		c->unsigned_store = streq(value, "true");
		return 0;
	}
	/* Settings of other parts (the fetcher, the init) share the file. */
	if (startswith(name, "fetcher_") || startswith(name, "boot_") || startswith(name, "commit_")) {
		c->extra = xrealloc(c->extra, (c->nextra + 1) * sizeof(*c->extra));
		c->extra[c->nextra++] = xasprintf("%s=%s", name, value);
		return 0;
	}
	return -ENOENT;
}

int cli_init(struct cli *c, int *argc, char **argv)
{
	const char *config = getenv("GDROOT_CONFIG");
	bool config_given = config != NULL;
	int verbose = 0, r;
	memset(c, 0, sizeof(*c));

	/* First pass: find --config so the file loads before overrides. */
	for (int i = 1; i < *argc; i++) {
		if ((streq(argv[i], "-c") || streq(argv[i], "--config")) && i + 1 < *argc) {
			config = argv[i + 1];
			config_given = true;
		} else if (startswith(argv[i], "--config=")) {
			config = argv[i] + 9;
			config_given = true;
		} else if (streq(argv[i], "--")) {
			break;
		}
	}
	/* In a booted gdroot system the session's copy (the init wrote it,
	 * with the appliance's settings) comes before the image's own. */
	if (!config && access(GDROOT_SESSION_CONFIG, F_OK) == 0)
		config = GDROOT_SESSION_CONFIG;
	else if (!config && access(GDROOT_DEFAULT_CONFIG, F_OK) == 0)
		config = GDROOT_DEFAULT_CONFIG;
	if (config && *config) {
		r = store_opts_load(&c->opts, config, other_setting, c);
		if (r < 0)
			return r;
		c->config = config;
	} else if (config_given && config && !*config) {
		c->config = NULL; /* --config '' : no file */
	}

	/* Second pass: the shared options, removed from argv. */
	int w = 1;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
#define TAKES(shortopt, longopt)                                                        \
	((streq(a, shortopt) || streq(a, longopt)) ? (i + 1 < *argc ? (val = argv[++i], 1) \
								   : (val = NULL, 1))  \
	 : startswith(a, longopt "=") ? (val = a + strlen(longopt) + 1, 1) : 0)
		if (streq(a, "--")) {
			while (i < *argc)
				argv[w++] = argv[i++];
			break;
		} else if (TAKES("-c", "--config")) {
			if (!val)
				return log_error_errno(-EINVAL, "--config needs a file");
		} else if (TAKES("-s", "--store")) {
			if (!val)
				return log_error_errno(-EINVAL, "--store needs a URL");
			free(c->store_url);
			c->store_url = xstrdup(val);
		} else if (TAKES("-o", "--set")) {
			const char *eq = val ? strchr(val, '=') : NULL;
			if (!eq)
				return log_error_errno(-EINVAL, "--set needs NAME=VALUE");
			_cleanup_free_ char *name = xstrndup(val, (size_t)(eq - val));
			r = store_opts_set(&c->opts, name, eq + 1);
			if (r == -ENOENT)
				return log_error_errno(-EINVAL, "--set: unknown option '%s'", name);
			if (r < 0)
				return r;
		} else if (TAKES("--ca-file", "--ca-file")) {
			if (!val)
				return log_error_errno(-EINVAL, "--ca-file needs a file");
			store_opts_set(&c->opts, "ca_file", val);
		} else if (TAKES("-k", "--key")) {
			if (!val)
				return log_error_errno(-EINVAL, "--key needs a file");
			free(c->signing_key);
			c->signing_key = xstrdup(val);
		} else if (TAKES("--public-key", "--public-key")) {
			if (!val)
				return log_error_errno(-EINVAL, "--public-key needs a file");
			free(c->public_key);
			c->public_key = xstrdup(val);
		} else if (streq(a, "--unsigned")) {
			c->unsigned_store = true;
		} else if (streq(a, "-v") || streq(a, "--verbose")) {
			verbose++;
		} else if (streq(a, "-vv")) {
			verbose += 2;
		} else if (streq(a, "-q") || streq(a, "--quiet")) {
			c->quiet = true;
		} else {
			argv[w++] = argv[i];
		}
#undef TAKES
	}
	argv[w] = NULL;
	*argc = w;
	if (c->quiet)
		log_set_level(LOG_LVL_ERROR);
	else if (verbose)
		log_set_level(LOG_LVL_DEBUG);
	c->progress = !c->quiet && isatty(2);
	return 0;
}

const char *cli_setting(const struct cli *c, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = c->nextra; i-- > 0;)
		if (strncmp(c->extra[i], name, n) == 0 && c->extra[i][n] == '=')
			return c->extra[i] + n + 1;
	return NULL;
}

void cli_free(struct cli *c)
{
	for (size_t i = 0; i < c->nextra; i++)
		free(c->extra[i]);
	free(c->extra);
	free(c->signing_key);
	free(c->public_key);
	store_opts_free(&c->opts);
	free(c->store_url);
}

int cli_open_store(struct cli *c, struct store **out)
{
	if (!c->store_url)
		return log_error_errno(-EINVAL, "no store configured: pass --store URL or set "
					       "store = URL in %s", c->config ? c->config : GDROOT_DEFAULT_CONFIG);
	return store_open(c->store_url, &c->opts, out);
}

static void human(char *out, size_t n, double v)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void cli_human_size(char *out, size_t n, uint64_t v)
{
	if (v >= 1ull << 30)
		snprintf(out, n, "%.2f GiB", (double)v / (1ull << 30));
	else if (v >= 1 << 20)
		snprintf(out, n, "%.1f MiB", (double)v / (1 << 20));
	else if (v >= 1 << 10)
		snprintf(out, n, "%.1f KiB", (double)v / (1 << 10));
	else
		snprintf(out, n, "%llu B", (unsigned long long)v);
}

void progress_bar_begin(struct progress_bar *p, const char *name, bool enabled)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->enabled = enabled;
	p->start_ns = now_ns();
}

static void progress_draw(struct progress_bar *p, bool final)
{
	double secs = (double)(now_ns() - p->start_ns) / 1e9;
	double rate = secs > 0 ? (double)p->done / secs : 0;
	char done[32], total[32], rs[32], eta[32] = "";
	human(done, sizeof(done), (double)p->done);
	human(total, sizeof(total), (double)p->total);
	human(rs, sizeof(rs), rate);
	if (!final && rate > 0 && p->total > p->done)
		snprintf(eta, sizeof(eta), "  ETA %.0fs", (double)(p->total - p->done) / rate);
	else if (final)
		snprintf(eta, sizeof(eta), "  %.1fs", secs);
	int pct = p->total ? (int)(100.0 * (double)p->done / (double)p->total) : 0;
	char bar[21];
	int fill = pct / 5;
	for (int i = 0; i < 20; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[20] = 0;
	fprintf(stderr, "\r%s [%s] %3d%%  %s / %s  %s/s%s\033[K", p->name, bar, pct, done, total, rs, eta);
	if (final)
		fputc('\n', stderr);
}

void progress_bar_update(void *ud, uint64_t done, uint64_t total)
{
	struct progress_bar *p = ud;
	if (!p->enabled)
		return;
	p->done = done;
	p->total = total;
	uint64_t t = now_ns();
	if (t - p->last_ns < 100000000ull && done < total)
		return;
	p->last_ns = t;
	progress_draw(p, false);
}

void progress_bar_end(struct progress_bar *p)
{
	if (p->enabled && p->last_ns)
		progress_draw(p, true);
}

int cli_load_keys(struct cli *c, EVP_PKEY **priv, EVP_PKEY **pub)
{
	int r;
	*pub = NULL;
	if (priv)
		*priv = NULL;
	if (c->unsigned_store) {
		if (c->signing_key && priv)
			log_warn("--unsigned: not signing with %s", c->signing_key);
		return 0;
	}
	if (priv) {
		if (!c->signing_key)
			return log_error_errno(-ENOKEY, "no signing key: pass --key FILE (make one with gdroot keygen), "
							"set signing_key in the config, or pass --unsigned for an unsigned store");
		r = key_load_private(c->signing_key, priv);
		if (r < 0)
			return r;
	}
	if (c->public_key)
		return key_load_public(c->public_key, pub);
	if (priv) {
		/* The signing key's own public half. */
		EVP_PKEY_up_ref(*priv);
		*pub = *priv;
		return 0;
	}
	if (c->signing_key)
		return key_load_private(c->signing_key, pub); /* checks with its public half */
	return log_error_errno(-ENOKEY, "no public key to check manifests with: pass --public-key FILE, set "
					"public_key in the config, or pass --unsigned for an unsigned store");
}
