// SPDX-License-Identifier: MIT
/*
 * Implementation of manifest.h: the one reader and writer of generation
 * manifests, and Ed25519 key handling (OpenSSL EVP).
 */
#include "manifest.h"

#include <ctype.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "index.h"
#include "../fetcher/store/gdrive-json.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

static int bad(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int bad(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

void manifest_key(uint64_t generation, char *out, size_t n)
{
	snprintf(out, n, MANIFEST_KEY_PREFIX "%010llu", (unsigned long long)generation);
}

uint64_t manifest_key_generation(const char *key)
{
	uint64_t g;
	if (!startswith(key, MANIFEST_KEY_PREFIX))
		return 0;
	const char *d = key + strlen(MANIFEST_KEY_PREFIX);
	if (strlen(d) != 10 || parse_u64(d, &g) < 0)
		return 0;
	return g;
}

static void time_iso(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static char *b64(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

static json_t *hexs(const uint8_t h[32])
{
	char x[65];
	sha256_hex(h, x);
	return json_string(x);
}

int key_id(EVP_PKEY *k, char out[17])
{
	unsigned char raw[32], h[32];
	size_t len = sizeof(raw);
	if (!k || EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != 32)
		return -EINVAL;
	sha256_buf(raw, len, h);
	hex_encode(h, 8, out);
	return 0;
}

bool manifest_word_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n >= max)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-')
			return false;
	return true;
}

int manifest_encode(const struct manifest *m, EVP_PKEY *key, char **out, size_t *lenp)
{
	char when[32];
	time_iso(m->created, when);
	json_t *layers = json_array();
	for (size_t i = 0; i < m->nlayers; i++) {
		const struct manifest_layer *l = &m->layers[i];
		json_t *lj = json_pack("{s:s, s:I, s:o, s:o, s:I, s:I, s:I}", "format", "squashfs", "size",
				       (json_int_t)l->size, "sha256", hexs(l->sha256), "index", hexs(l->index),
				       "index_size", (json_int_t)l->index_size, "chunks", (json_int_t)l->chunks,
				       "new_bytes", (json_int_t)l->new_bytes);
		if (l->session[0])
			json_object_set_new(lj, "session", json_string(l->session));
		json_array_append_new(layers, lj);
	}
	json_t *inner = json_pack("{s:s, s:I, s:o, s:o, s:s, s:s, s:I, s:o}", "format", MANIFEST_FORMAT, "generation",
				  (json_int_t)m->generation, "parent",
				  m->parent ? json_integer((json_int_t)m->parent) : json_null(), "parent_sha256",
				  m->has_parent_sha ? hexs(m->parent_sha256) : json_null(), "created", when, "tool",
				  m->tool, "new_bytes", (json_int_t)m->new_bytes, "layers", layers);
	if (!inner)
		return -ENOMEM;
	if (m->kind[0])
		json_object_set_new(inner, "kind", json_string(m->kind));
	if (m->from)
		json_object_set_new(inner, "from", json_integer((json_int_t)m->from));
	char *text = json_dumps(inner, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(inner);
	json_t *outer;
	if (key) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		unsigned char sig[64];
		size_t siglen = sizeof(sig);
		char kid[17];
		int ok = md && key_id(key, kid) == 0 && EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
			 EVP_DigestSign(md, sig, &siglen, (const unsigned char *)text, strlen(text)) == 1;
		EVP_MD_CTX_free(md);
		if (!ok) {
			free(text);
			return log_error_errno(-EINVAL, "signing the manifest failed (is the key Ed25519?)");
		}
		_cleanup_free_ char *s64 = b64(sig, siglen);
		outer = json_pack("{s:s, s:{s:s, s:s, s:s}}", "manifest", text, "signature", "alg", "ed25519", "key",
				  kid, "sig", s64);
	} else {
		outer = json_pack("{s:s, s:b}", "manifest", text, "unsigned", 1);
	}
	free(text);
	char *s = json_dumps(outer, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(outer);
	if (!s)
		return -ENOMEM;
	*out = s;
	*lenp = strlen(s);
	return 0;
}

static int get_u64(json_t *o, const char *k, uint64_t *v)
{
	json_t *j = json_object_get(o, k);
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

static int get_hash(json_t *o, const char *k, uint8_t h[32])
{
	json_t *j = json_object_get(o, k);
	return json_is_string(j) && sha256_unhex(json_string_value(j), h) == 0 ? 0 : -1;
}

static int decode_inner(const char *text, size_t n, struct manifest *m, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
	int r = -EBADMSG;
	if (!json_is_object(o)) {
		r = bad(err, errlen, -EBADMSG, "manifest body is not a JSON object (%s)", je.text);
		goto out;
	}
	json_t *fmt = json_object_get(o, "format");
	if (!json_is_string(fmt) || !streq(json_string_value(fmt), MANIFEST_FORMAT)) {
		r = bad(err, errlen, -EBADMSG, "unknown manifest format (want %s)", MANIFEST_FORMAT);
		goto out;
	}
	if (get_u64(o, "generation", &m->generation) < 0 || m->generation == 0) {
		r = bad(err, errlen, -EBADMSG, "bad or missing generation");
		goto out;
	}
	json_t *par = json_object_get(o, "parent"), *psha = json_object_get(o, "parent_sha256");
	if (json_is_null(par) || !par)
		m->parent = 0;
	else if (get_u64(o, "parent", &m->parent) < 0 || m->parent == 0 || m->parent >= m->generation) {
		r = bad(err, errlen, -EBADMSG, "bad parent generation");
		goto out;
	}
	if (psha && !json_is_null(psha)) {
		if (get_hash(o, "parent_sha256", m->parent_sha256) < 0) {
			r = bad(err, errlen, -EBADMSG, "bad parent_sha256");
			goto out;
		}
		m->has_parent_sha = true;
	}
	json_t *created = json_object_get(o, "created"), *tool = json_object_get(o, "tool");
	if (!json_is_string(created) || gd_parse_time(json_string_value(created), &m->created, NULL) < 0) {
		r = bad(err, errlen, -EBADMSG, "bad created time");
		goto out;
	}
	if (!json_is_string(tool) || json_string_length(tool) >= sizeof(m->tool)) {
		r = bad(err, errlen, -EBADMSG, "bad tool");
		goto out;
	}
	snprintf(m->tool, sizeof(m->tool), "%s", json_string_value(tool));
	if (get_u64(o, "new_bytes", &m->new_bytes) < 0) {
		r = bad(err, errlen, -EBADMSG, "bad new_bytes");
		goto out;
	}
	json_t *kind = json_object_get(o, "kind");
	if (kind && (!json_is_string(kind) || !manifest_word_ok(json_string_value(kind), MANIFEST_KIND_MAX))) {
		r = bad(err, errlen, -EBADMSG, "bad kind");
		goto out;
	}
	if (kind)
		snprintf(m->kind, sizeof(m->kind), "%s", json_string_value(kind));
	if (json_object_get(o, "from") && get_u64(o, "from", &m->from) < 0) {
		r = bad(err, errlen, -EBADMSG, "bad from");
		goto out;
	}
	json_t *layers = json_object_get(o, "layers");
	if (!json_is_array(layers) || json_array_size(layers) == 0 || json_array_size(layers) > MANIFEST_MAX_LAYERS) {
		r = bad(err, errlen, -EBADMSG, "layers must be a list of 1 to %d", MANIFEST_MAX_LAYERS);
		goto out;
	}
	m->nlayers = json_array_size(layers);
	m->layers = xcalloc(m->nlayers, sizeof(*m->layers));
	for (size_t i = 0; i < m->nlayers; i++) {
		json_t *l = json_array_get(layers, i), *lf = json_object_get(l, "format");
		struct manifest_layer *ml = &m->layers[i];
		if (!json_is_object(l) || !json_is_string(lf) || !streq(json_string_value(lf), "squashfs") ||
		    get_u64(l, "size", &ml->size) < 0 || get_hash(l, "sha256", ml->sha256) < 0 ||
		    get_hash(l, "index", ml->index) < 0 || get_u64(l, "index_size", &ml->index_size) < 0 ||
		    get_u64(l, "chunks", &ml->chunks) < 0 || get_u64(l, "new_bytes", &ml->new_bytes) < 0) {
			r = bad(err, errlen, -EBADMSG, "layer %zu is malformed", i);
			goto out;
		}
		json_t *sess = json_object_get(l, "session");
		if (sess && (!json_is_string(sess) || !manifest_word_ok(json_string_value(sess), MANIFEST_SESSION_MAX))) {
			r = bad(err, errlen, -EBADMSG, "layer %zu: bad session", i);
			goto out;
		}
		if (sess)
			snprintf(ml->session, sizeof(ml->session), "%s", json_string_value(sess));
		/* A delta index (index.h) is smaller than its chunks. */
		if (ml->chunks > INDEX_MAX_CHUNKS || ml->index_size < INDEX_HEADER_SIZE) {
			r = bad(err, errlen, -EBADMSG, "layer %zu: index size %llu does not fit %llu chunks", i,
				(unsigned long long)ml->index_size, (unsigned long long)ml->chunks);
			goto out;
		}
	}
	r = 0;
out:
	json_decref(o);
	if (r < 0)
		manifest_free(m);
	return r;
}

int manifest_decode(const char *p, size_t n, EVP_PKEY *pub, struct manifest *m, char *err, size_t errlen)
{
	json_error_t je;
	memset(m, 0, sizeof(*m));
	if (n > MANIFEST_MAX_SIZE)
		return bad(err, errlen, -EBADMSG, "manifest is %zu bytes, over the %u limit", n, MANIFEST_MAX_SIZE);
	json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
	int r;
	if (!json_is_object(o)) {
		r = bad(err, errlen, -EBADMSG, "not JSON (line %d: %s)", je.line, je.text);
		goto out;
	}
	json_t *text = json_object_get(o, "manifest"), *sig = json_object_get(o, "signature");
	json_t *uns = json_object_get(o, "unsigned");
	if (!json_is_string(text)) {
		r = bad(err, errlen, -EBADMSG, "no manifest string");
		goto out;
	}
	const char *t = json_string_value(text);
	size_t tl = json_string_length(text);
	if (sig) {
		json_t *alg = json_object_get(sig, "alg"), *kid = json_object_get(sig, "key"), *s = json_object_get(sig, "sig");
		if (!json_is_string(alg) || !streq(json_string_value(alg), "ed25519") || !json_is_string(kid) ||
		    json_string_length(kid) != 16 || !json_is_string(s) || json_string_length(s) > 200) {
			r = bad(err, errlen, -EBADMSG, "malformed signature block");
			goto out;
		}
		if (!pub) {
			r = bad(err, errlen, -ENOKEY, "manifest is signed (key %s) but no public key is configured",
				json_string_value(kid));
			goto out;
		}
		char mine[17];
		if (key_id(pub, mine) < 0) {
			r = bad(err, errlen, -EINVAL, "the configured public key is not Ed25519");
			goto out;
		}
		if (!streq(mine, json_string_value(kid))) {
			r = bad(err, errlen, -EKEYREJECTED, "manifest is signed by key %s, not by the configured key %s",
				json_string_value(kid), mine);
			goto out;
		}
		unsigned char raw[200];
		int sl = EVP_DecodeBlock(raw, (const unsigned char *)json_string_value(s), (int)json_string_length(s));
		/* EVP_DecodeBlock counts padding as zero bytes. */
		if (sl >= 64 && json_string_length(s) == 88)
			sl = 64;
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		int ok = sl == 64 && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub) == 1 &&
			 EVP_DigestVerify(md, raw, 64, (const unsigned char *)t, tl) == 1;
		EVP_MD_CTX_free(md);
		if (!ok) {
			r = bad(err, errlen, -EKEYREJECTED, "bad signature (the manifest was altered or signed wrongly)");
			goto out;
		}
		m->is_signed = true;
		snprintf(m->key_id, sizeof(m->key_id), "%s", mine);
	} else if (json_is_true(uns)) {
		if (pub) {
			r = bad(err, errlen, -ENOKEY, "manifest is unsigned but a public key is configured "
						      "(use --unsigned to accept unsigned stores)");
			goto out;
		}
	} else {
		r = bad(err, errlen, -EBADMSG, "neither signed nor marked unsigned");
		goto out;
	}
	bool is_signed = m->is_signed;
	char kid[17];
	memcpy(kid, m->key_id, sizeof(kid));
	r = decode_inner(t, tl, m, err, errlen);
	m->is_signed = is_signed;
	memcpy(m->key_id, kid, sizeof(kid));
out:
	json_decref(o);
	return r;
}

void manifest_free(struct manifest *m)
{
	free(m->layers);
	m->layers = NULL;
	m->nlayers = 0;
}

int key_generate(const char *priv_path, const char *pub_path)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	int r = 0;
	if (!k)
		return log_error_errno(-ENOMEM, "Ed25519 key generation failed");
	int fd = open(priv_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = log_error_errno(-errno, "%s: %m", priv_path);
		goto out;
	}
	FILE *f = fdopen(fd, "w");
	if (!f || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) != 0 || fsync(fd) < 0) {
		r = log_error_errno(-EIO, "%s: cannot write the private key", priv_path);
		if (f)
			fclose(f);
		else
			close(fd);
		unlink(priv_path);
		goto out;
	}
	fclose(f);
	fd = open(pub_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = log_error_errno(-errno, "%s: %m", pub_path);
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f || PEM_write_PUBKEY(f, k) != 1 || fflush(f) != 0 || fsync(fd) < 0) {
		r = log_error_errno(-EIO, "%s: cannot write the public key", pub_path);
		if (f)
			fclose(f);
		else
			close(fd);
		unlink(pub_path);
		goto out;
	}
	fclose(f);
out:
	EVP_PKEY_free(k);
	return r;
}

static int load_key(const char *path, bool private, EVP_PKEY **out)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return log_error_errno(-errno, "key %s: %m", path);
	EVP_PKEY *k = private ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!k)
		return log_error_errno(-EINVAL, "key %s: not a PEM %s key", path, private ? "private" : "public");
	if (EVP_PKEY_base_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		return log_error_errno(-EINVAL, "key %s: not an Ed25519 key (make one with gdroot keygen)", path);
	}
	*out = k;
	return 0;
}

int key_load_private(const char *path, EVP_PKEY **out) { return load_key(path, true, out); }
int key_load_public(const char *path, EVP_PKEY **out) { return load_key(path, false, out); }
