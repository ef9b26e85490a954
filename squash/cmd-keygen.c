// SPDX-License-Identifier: MIT
/*
 * `gdroot keygen`: make the Ed25519 key pair that signs manifests. The
 * private key stays with whoever pushes and commits (mode 0600); the public
 * key goes into the appliance, which refuses manifests not signed by it.
 */
#include "cli.h"
#include "manifest.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

int cmd_keygen(struct cli *c, int argc, char **argv)
{
	(void)c;
	const char *out = NULL;
	for (int i = 1; i < argc; i++) {
		if (streq(argv[i], "-h") || streq(argv[i], "--help")) {
			printf("Usage: gdroot keygen PREFIX\n\n"
			       "Write an Ed25519 key pair: PREFIX.key (private, PKCS#8 PEM, mode 0600)\n"
			       "and PREFIX.pub (public, PEM). Existing files are never overwritten.\n"
			       "Sign with signing_key = PREFIX.key; check with public_key = PREFIX.pub.\n");
			return 0;
		}
		if (out) {
			log_error("keygen: one PREFIX only");
			return 2;
		}
		out = argv[i];
	}
	if (!out) {
		log_error("keygen: which PREFIX? (e.g. gdroot keygen /etc/gdroot/signing)");
		return 2;
	}
	_cleanup_free_ char *priv = xasprintf("%s.key", out), *pub = xasprintf("%s.pub", out);
	if (key_generate(priv, pub) < 0)
		return 1;
	EVP_PKEY *k = NULL;
	char id[17] = "";
	if (key_load_public(pub, &k) == 0)
		key_id(k, id);
	EVP_PKEY_free(k);
	printf("wrote %s (private, keep it secret) and %s (public), key id %s\n", priv, pub, id);
	return 0;
}
