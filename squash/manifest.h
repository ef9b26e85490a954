/* SPDX-License-Identifier: MIT */
/*
 * The generation manifest: which layers (bottom to top) make up generation
 * N, their sizes and index hashes, the parent generation, time and tool,
 * signed with Ed25519. Stored as "manifests/<generation, 10 digits>":
 *
 *	{"manifest": "<the manifest JSON, as a string>",
 *	 "signature": {"alg": "ed25519", "key": "<key id>", "sig": "<base64>"}}
 *
 * or, for a store created with --unsigned, {"manifest": "...",
 * "unsigned": true}. The signature covers the exact bytes of the inner
 * string, so parsing never depends on JSON canonical forms. The inner JSON:
 *
 *	{"format": "gdroot-manifest-1", "generation": 3, "parent": 2,
 *	 "parent_sha256": "<hex of the parent's manifest object>" | null,
 *	 "created": "2026-12-01T15:00:00Z", "tool": "gdroot 0.1.0",
 *	 "new_bytes": 1234,
 *	 "layers": [{"format": "squashfs", "size": N, "sha256": "<image hex>",
 *	             "index": "<index hex>", "index_size": N, "chunks": N,
 *	             "new_bytes": N, "session": "<id>"}, ...],
 *	 "kind": "commit", "from": 2}
 *
 * "session" (per layer), "kind" and "from" are optional: a layer committed
 * from a boot session names it, so later commits of that session replace
 * the layer; "kind" says what made the generation and "from" which one a
 * reset copied.
 *
 * Keys: a key id is the first 16 hex digits of SHA-256 of the raw 32-byte
 * Ed25519 public key.
 */
#ifndef GDROOT_MANIFEST_H
#define GDROOT_MANIFEST_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MANIFEST_FORMAT "gdroot-manifest-1"
#define MANIFEST_MAX_SIZE (1u << 20)
#define MANIFEST_MAX_LAYERS 128
#define MANIFEST_KEY_PREFIX "manifests/"
#define MANIFEST_SESSION_MAX 40	/* [A-Za-z0-9-], 1 to 39 */
#define MANIFEST_KIND_MAX 16

struct manifest_layer {
	uint64_t size;		/* bytes of the layer image */
	uint8_t sha256[32];	/* of the layer image */
	uint8_t index[32];	/* of the index object "indexes/<hex>" */
	uint64_t index_size;
	uint64_t chunks;
	uint64_t new_bytes;	/* chunk bytes first stored by this layer */
	char session[MANIFEST_SESSION_MAX]; /* the boot session that committed
				   it ("" for a pushed or compacted layer) */
};

struct manifest {
	uint64_t generation;	/* >= 1 */
	uint64_t parent;	/* 0: none */
	bool has_parent_sha;
	uint8_t parent_sha256[32];
	int64_t created;	/* seconds since the epoch */
	char tool[64];
	uint64_t new_bytes;
	char kind[MANIFEST_KIND_MAX]; /* "push", "commit", "reset", "compact";
				   "" in manifests from before it was added */
	uint64_t from;		/* reset: the generation copied; 0 otherwise */
	size_t nlayers;
	struct manifest_layer *layers; /* owned; bottom first */
	/* Set by manifest_decode: */
	bool is_signed;
	char key_id[17];
};

/* Encode and sign with key (an Ed25519 private key), or unsigned when key
 * is NULL. *out (malloc'd, owned by the caller) gets the object bytes.
 * Returns 0 or -errno. */
int manifest_encode(const struct manifest *m, EVP_PKEY *key, char **out, size_t *len);

/* Decode n bytes of a manifest object and check its signature with pub.
 * pub NULL means the caller runs unsigned: then only unsigned manifests are
 * accepted. Returns 0, or:
 *	-EBADMSG	malformed (err says how)
 *	-EKEYREJECTED	bad signature, or signed by another key
 *	-ENOKEY		unsigned manifest but a key was given, or signed but
 *			no key was given
 * out owns its layers array (manifest_free). */
int manifest_decode(const char *p, size_t n, EVP_PKEY *pub, struct manifest *out, char *err,
		    size_t errlen);
void manifest_free(struct manifest *m);

/* A session id or kind: 1 to max-1 of [A-Za-z0-9-]. */
bool manifest_word_ok(const char *s, size_t max);
/* "manifests/0000000042" into out (>= 32 bytes). */
void manifest_key(uint64_t generation, char *out, size_t n);
/* The generation of a manifest key, or 0 when key is not one. */
uint64_t manifest_key_generation(const char *key);

/* Ed25519 keys. key_generate writes a private key (PKCS#8 PEM, mode 0600)
 * and its public key (PEM); it refuses to overwrite. The loaders return 0 or
 * -errno with the problem logged; *out is owned by the caller
 * (EVP_PKEY_free). */
int key_generate(const char *priv_path, const char *pub_path);
int key_load_private(const char *path, EVP_PKEY **out);
int key_load_public(const char *path, EVP_PKEY **out);
/* The key id of a public (or private) key into out[17]. 0 or -EINVAL. */
int key_id(EVP_PKEY *k, char out[17]);

#endif
