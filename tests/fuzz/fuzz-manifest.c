// SPDX-License-Identifier: MIT
/* libFuzzer target: the manifest parser, unsigned mode and signed mode (with
 * a fixed key, so the signature check runs on arbitrary input). */
#include <openssl/evp.h>
#include <stdint.h>

#include "../../squash/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static EVP_PKEY *key;
	if (!key) {
		static const unsigned char raw[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
		key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
	}
	struct manifest m;
	char err[256];
	if (manifest_decode((const char *)data, size, NULL, &m, err, sizeof(err)) == 0)
		manifest_free(&m);
	if (manifest_decode((const char *)data, size, key, &m, err, sizeof(err)) == 0)
		manifest_free(&m);
	return 0;
}
