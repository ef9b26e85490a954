// SPDX-License-Identifier: MIT
/* Description: manifests round trip signed and unsigned, with and without
 * the commit fields (layer session, kind, from); an edited
 * manifest, another key, a missing or unexpected signature, and malformed
 * bodies are each refused with their own error. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"
#include "../../squash/manifest.h"
#include "../../fetcher/util/log.h"
#include "../../fetcher/util/util.h"

static EVP_PKEY *newkey(const char *dir, const char *name)
{
	_cleanup_free_ char *priv = xasprintf("%s/%s.key", dir, name), *pub = xasprintf("%s/%s.pub", dir, name);
	EVP_PKEY *k = NULL;
	CHECK(key_generate(priv, pub) == 0);
	CHECK(key_generate(priv, pub) == -EEXIST); /* never overwrites */
	CHECK(key_load_private(priv, &k) == 0);
	EVP_PKEY *p = NULL;
	CHECK(key_load_public(pub, &p) == 0);
	char a[17], b[17];
	CHECK(key_id(k, a) == 0 && key_id(p, b) == 0 && streq(a, b));
	EVP_PKEY_free(p);
	return k;
}

int main(void)
{
	char dir[] = "/tmp/gdroot-manifest-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	log_set_level(LOG_LVL_ERROR - 1);
	EVP_PKEY *k1 = newkey(dir, "one"), *k2 = newkey(dir, "two");
	struct manifest_layer layers[2] = { { .size = 1000, .index_size = 32 + 32 + 48, .chunks = 1, .new_bytes = 1000 },
					    { .size = 5, .index_size = 32 + 32 + 48, .chunks = 1 } };
	layers[0].sha256[0] = 1;
	layers[1].index[31] = 9;
	struct manifest m = { .generation = 7, .parent = 6, .has_parent_sha = true, .created = 1796139869,
			      .new_bytes = 1000, .nlayers = 2, .layers = layers };
	m.parent_sha256[5] = 5;
	snprintf(m.tool, sizeof(m.tool), "gdroot test");
	char *buf, err[256];
	size_t len;
	struct manifest d;

	CHECK(manifest_encode(&m, k1, &buf, &len) == 0);
	CHECK(manifest_decode(buf, len, k1, &d, err, sizeof(err)) == 0);
	CHECK(d.generation == 7 && d.parent == 6 && d.nlayers == 2 && d.is_signed && d.created == 1796139869);
	CHECK(d.layers[0].size == 1000 && d.layers[0].sha256[0] == 1 && d.layers[1].index[31] == 9);
	CHECK(d.has_parent_sha && d.parent_sha256[5] == 5 && streq(d.tool, "gdroot test"));
	CHECK(d.kind[0] == 0 && d.from == 0 && d.layers[0].session[0] == 0); /* optional fields absent */
	manifest_free(&d);

	/* The commit fields: a layer's session, the generation's kind, from. */
	struct manifest mc = m;
	struct manifest_layer lc[2] = { layers[0], layers[1] };
	snprintf(lc[1].session, sizeof(lc[1].session), "5c1e-0042");
	snprintf(mc.kind, sizeof(mc.kind), "reset");
	mc.from = 3;
	mc.layers = lc;
	char *cbuf;
	size_t clen;
	CHECK(manifest_encode(&mc, k1, &cbuf, &clen) == 0);
	CHECK(manifest_decode(cbuf, clen, k1, &d, err, sizeof(err)) == 0);
	CHECK(streq(d.kind, "reset") && d.from == 3 && d.layers[0].session[0] == 0 && streq(d.layers[1].session, "5c1e-0042"));
	manifest_free(&d);
	free(cbuf);
	snprintf(lc[1].session, sizeof(lc[1].session), "bad/id");
	CHECK(manifest_encode(&mc, NULL, &cbuf, &clen) == 0);
	CHECK(manifest_decode(cbuf, clen, NULL, &d, err, sizeof(err)) == -EBADMSG); /* a session id with '/' */
	free(cbuf);

	CHECK(manifest_decode(buf, len, k2, &d, err, sizeof(err)) == -EKEYREJECTED);
	CHECK(manifest_decode(buf, len, NULL, &d, err, sizeof(err)) == -ENOKEY);
	/* Edit one byte of the signed body: the generation number. */
	char *g = strstr(buf, "\\\"generation\\\":7");
	CHECK(g != NULL);
	if (g) {
		g[strlen("\\\"generation\\\":")] = '8';
		CHECK(manifest_decode(buf, len, k1, &d, err, sizeof(err)) == -EKEYREJECTED);
	}
	free(buf);

	/* A signature made by key 2 but claiming key 1's id. */
	CHECK(manifest_encode(&m, k2, &buf, &len) == 0);
	char id1[17], id2[17];
	key_id(k1, id1);
	key_id(k2, id2);
	char *at = strstr(buf, id2);
	CHECK(at != NULL);
	if (at) {
		memcpy(at, id1, 16);
		CHECK(manifest_decode(buf, len, k1, &d, err, sizeof(err)) == -EKEYREJECTED);
	}
	free(buf);

	/* Unsigned. */
	CHECK(manifest_encode(&m, NULL, &buf, &len) == 0);
	CHECK(manifest_decode(buf, len, NULL, &d, err, sizeof(err)) == 0 && !d.is_signed);
	manifest_free(&d);
	CHECK(manifest_decode(buf, len, k1, &d, err, sizeof(err)) == -ENOKEY);
	free(buf);

	/* Malformed bodies. */
	const char *bad[] = {
		"", "{", "[]", "{\"manifest\": 5, \"unsigned\": true}",
		"{\"manifest\": \"{}\"}",
		"{\"manifest\": \"{}\", \"unsigned\": true}",
		"{\"manifest\": \"{\\\"format\\\":\\\"gdroot-manifest-1\\\",\\\"generation\\\":0}\", \"unsigned\": true}",
		"{\"manifest\": \"{\\\"format\\\":\\\"gdroot-manifest-1\\\",\\\"generation\\\":1,\\\"created\\\":\\\"x\\\"}\", \"unsigned\": true}",
		"{\"manifest\": \"{\\\"format\\\":\\\"gdroot-manifest-1\\\",\\\"generation\\\":2,\\\"parent\\\":3,\\\"created\\\":\\\"2026-01-01T00:00:00Z\\\",\\\"tool\\\":\\\"t\\\",\\\"new_bytes\\\":0,\\\"layers\\\":[]}\", \"unsigned\": true}",
		"{\"manifest\": \"x\", \"signature\": {\"alg\": \"rsa\", \"key\": \"0123456789abcdef\", \"sig\": \"AA==\"}}",
		NULL,
	};
	for (int i = 0; bad[i]; i++) {
		int r = manifest_decode(bad[i], strlen(bad[i]), NULL, &d, err, sizeof(err));
		CHECK(r == -EBADMSG);
		if (r != -EBADMSG)
			fprintf(stderr, "case %d: %d\n", i, r);
		CHECK(d.layers == NULL);
	}
	_cleanup_free_ char *huge = xmalloc(MANIFEST_MAX_SIZE + 2);
	memset(huge, ' ', MANIFEST_MAX_SIZE + 1);
	huge[MANIFEST_MAX_SIZE + 1] = 0;
	CHECK(manifest_decode(huge, MANIFEST_MAX_SIZE + 1, NULL, &d, err, sizeof(err)) == -EBADMSG);

	char key[64];
	manifest_key(42, key, sizeof(key));
	CHECK_STR(key, "manifests/0000000042");
	CHECK(manifest_key_generation(key) == 42);
	CHECK(manifest_key_generation("manifests/42") == 0);
	CHECK(manifest_key_generation("manifests/00000000x2") == 0);
	CHECK(manifest_key_generation("packs/0000000042") == 0);

	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	_cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	return test_exit();
}
