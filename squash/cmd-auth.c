// SPDX-License-Identifier: MIT
/*
 * `gdroot auth`: get a Google Drive refresh token on a machine with no
 * browser, by the OAuth 2.0 device authorization flow. It prints a URL and
 * a code to enter there from any phone or laptop, waits for approval, and
 * saves the refresh token as Google's "authorized_user" JSON in a 0600 file
 * that the `credentials` setting then names.
 */
#include <jansson.h>
#include <libgen.h>
#include <sys/stat.h>

#include "cli.h"
#include "../fetcher/store/http.h"
#include "../fetcher/store/oauth.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

#define DEFAULT_TOKEN_FILE "/etc/gdroot/drive-token.json"

static const char auth_help[] =
	"Usage: gdroot auth [OPTIONS]\n\n"
	"Authorize gdroot to use Google Drive with the OAuth device flow: visit the\n"
	"URL it prints on any device, enter the code, and approve. The refresh token\n"
	"is saved (mode 0600) where the 'credentials' setting points.\n\n"
	"  --client-id ID        OAuth client of type \"TVs and Limited Input devices\"\n"
	"                        (or client_id in the config)\n"
	"  --client-secret S     its secret (or client_secret in the config)\n"
	"  --scope SCOPE         default " OAUTH_DEFAULT_SCOPE "\n"
	"  --out FILE            where to save (default: credentials setting, else\n"
	"                        " DEFAULT_TOKEN_FILE ")\n\n";

int cmd_auth(struct cli *c, int argc, char **argv)
{
	const char *client_id = c->opts.client_id, *secret = c->opts.client_secret;
	const char *scope = c->opts.oauth_scope ? c->opts.oauth_scope : OAUTH_DEFAULT_SCOPE;
	const char *out = c->opts.credentials ? c->opts.credentials : DEFAULT_TOKEN_FILE;
	struct store_stats stats = { 0 };
	struct http h;
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (streq(a, "-h") || streq(a, "--help")) {
			fputs(auth_help, stdout);
			fputs(cli_common_help, stdout);
			return 0;
		}
		if (i + 1 >= argc) {
			log_error("auth: unknown or incomplete option '%s' (see gdroot auth --help)", a);
			return 2;
		}
		if (streq(a, "--client-id"))
			client_id = argv[++i];
		else if (streq(a, "--client-secret"))
			secret = argv[++i];
		else if (streq(a, "--scope"))
			scope = argv[++i];
		else if (streq(a, "--out"))
			out = argv[++i];
		else {
			log_error("auth: unknown option '%s' (see gdroot auth --help)", a);
			return 2;
		}
	}
	if (!client_id) {
		log_error("auth: no OAuth client: pass --client-id (create one of type \"TVs and Limited "
			  "Input devices\" in the Google Cloud console) or set client_id in the config");
		return 2;
	}
	r = http_init(&h, &c->opts, &stats, NULL);
	if (r < 0)
		return 1;
	struct oauth_device_code dc;
	r = oauth_device_start(&h, &c->opts, client_id, scope, &dc);
	if (r < 0) {
		http_free(&h);
		return 1;
	}
	printf("To let this machine use Google Drive, visit\n\n    %s\n\nand enter the code\n\n    %s\n\n"
	       "Waiting for approval (the code expires in %llu minutes)...\n",
	       dc.verification_url, dc.user_code, (unsigned long long)(dc.expires_in + 59) / 60);
	fflush(stdout);
	_cleanup_free_ char *refresh = NULL;
	r = oauth_device_poll(&h, &c->opts, client_id, secret, &dc, &refresh);
	explicit_bzero(&dc, sizeof(dc));
	http_free(&h);
	if (r < 0)
		return 1;

	json_t *j = json_pack("{s:s, s:s, s:s?, s:s}", "type", "authorized_user", "client_id", client_id,
			      "client_secret", secret, "refresh_token", refresh);
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	explicit_bzero(refresh, strlen(refresh));
	_cleanup_free_ char *dir = xstrdup(out);
	mkdir(dirname(dir), 0700);
	r = write_file_atomic(out, text, strlen(text), 0600);
	explicit_bzero(text, strlen(text));
	free(text);
	if (r < 0) {
		log_error_errno(r, "auth: save %s: %m", out);
		return 1;
	}
	printf("Approved. Saved the refresh token to %s (mode 0600).\n", out);
	if (!c->opts.credentials || !streq(c->opts.credentials, out))
		printf("Point gdroot at it with: credentials = %s\n", out);
	return 0;
}
