// SPDX-License-Identifier: MIT
/* Implementation of publish.h. */
#include "publish.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <time.h>

#include "gen.h"
#include "push.h"
#include "../fetcher/util/log.h"
#include "../fetcher/util/util.h"

#define PUBLISH_ATTEMPTS 32

/* Tests make writers race: with GDROOT_TEST_BARRIER=DIR, a writer about to
 * publish creates DIR/<what>.<pid> and waits until DIR/go exists. */
static void test_barrier(const char *what)
{
	const char *dir = getenv("GDROOT_TEST_BARRIER");
	if (!dir)
		return;
	_cleanup_free_ char *me = xasprintf("%s/%s.%ld", dir, what, (long)getpid());
	_cleanup_free_ char *go = xasprintf("%s/go", dir);
	close(open(me, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	for (unsigned i = 0; i < 6000 && access(go, F_OK) < 0; i++)
		usleep(10000);
}

static void rand_sleep_ms(unsigned lo, unsigned hi)
{
	unsigned v = 0;
	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (unsigned)now_ns();
	usleep((lo + v % (hi - lo + 1)) * 1000u);
}

int publish(struct store *st, EVP_PKEY *priv, EVP_PKEY *pub, publish_build_fn build, void *ud,
	    uint64_t *published)
{
	int r = -EAGAIN;
	for (unsigned attempt = 0; attempt < PUBLISH_ATTEMPTS; attempt++) {
		_cleanup_free_ uint64_t *gens = NULL;
		_cleanup_free_ char *buf = NULL;
		struct manifest newest = { 0 }, m = { 0 };
		uint8_t newest_sha[32];
		size_t ngens;
		size_t len;
		char key[64];

		r = gen_list(st, &gens, &ngens);
		if (r < 0)
			return r;
		if (ngens) {
			r = gen_load_newest(st, pub, &newest, newest_sha);
			if (r < 0 && r != -ENOENT)
				return r;
		}
		r = build(ud, &newest, &m);
		if (r < 0) {
			manifest_free(&newest);
			return r;
		}
		m.generation = (ngens ? gens[ngens - 1] : 0) + 1;
		m.created = time(NULL);
		snprintf(m.tool, sizeof(m.tool), "gdroot %s", GDROOT_VERSION);
		if (newest.generation) {
			m.parent = newest.generation;
			m.has_parent_sha = true;
			memcpy(m.parent_sha256, newest_sha, 32);
		}
		manifest_free(&newest);
		uint64_t gen = m.generation;
		r = manifest_encode(&m, priv, &buf, &len);
		manifest_free(&m);
		if (r < 0)
			return log_error_errno(r, "publish: cannot encode the manifest: %m");
		manifest_key(gen, key, sizeof(key));
		struct store_src src = { .mem = buf, .fd = -1, .size = len };
		test_crash_point("manifest", 0);
		if (attempt == 0)
			test_barrier("publish");
		r = store_put_new(st, key, &src);
		if (r == 0) {
			if (published)
				*published = gen;
			return 0;
		}
		if (r != -EEXIST)
			return log_error_errno(r, "%s: publishing %s failed; the previous generation stays current, "
						  "and running the same command again completes it",
					       st->url, key);
		log_info("publish: generation %llu was published by another writer first; building on top of it",
			 (unsigned long long)gen);
		rand_sleep_ms(20, 200 + 100 * MIN(attempt, 10u));
	}
	return log_error_errno(-EAGAIN, "%s: %u attempts to publish lost to other writers; try again", st->url,
			       PUBLISH_ATTEMPTS);
}

/* --- locks --- */

struct lock_scan {
	const char *other;	/* "gc-" or "push-" */
	const char *self;
	char found[STORE_KEY_MAX];
	int64_t found_t;
	int64_t now;
};

static int on_lock(void *ud, const struct store_obj *o)
{
	struct lock_scan *s = ud;
	const char *name = o->key + strlen(LOCK_KEY_PREFIX);
	if (streq(o->key, s->self) || !startswith(name, s->other))
		return 0;
	long long t = strtoll(name + strlen(s->other), NULL, 10);
	if (t <= 0 || s->now - t > LOCK_STALE_S)
		return 0; /* a crashed process's: ignore it */
	snprintf(s->found, sizeof(s->found), "%s", o->key);
	s->found_t = t;
	return 0;
}

static int scan(struct store *st, const char *other, const char *self, struct lock_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->other = other;
	s->self = self;
	s->now = time(NULL);
	return store_list(st, LOCK_KEY_PREFIX, on_lock, s);
}

/* Locks of processes of this host that are gone (killed: a rerun is
 * cleaning up after them). Key: locks/KIND-TIME-HOST-PID-NONCE. */
struct dead_scan {
	const char *host;
	char (*keys)[STORE_KEY_MAX];
	size_t n;
};

static int on_dead(void *ud, const struct store_obj *o)
{
	struct dead_scan *d = ud;
	char kind[8], host[64];
	long long t;
	long pid;
	if (sscanf(o->key + strlen(LOCK_KEY_PREFIX), "%7[a-z]-%lld-%63[A-Za-z0-9._]-%ld-", kind, &t, host, &pid) != 4 ||
	    !streq(host, d->host) || pid <= 0 || pid == getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
		return 0;
	d->keys = xrealloc(d->keys, (d->n + 1) * sizeof(*d->keys));
	snprintf(d->keys[d->n++], STORE_KEY_MAX, "%s", o->key);
	return 0;
}

static void clear_dead(struct store *st, const char *host)
{
	struct dead_scan d = { .host = host };
	if (store_list(st, LOCK_KEY_PREFIX, on_dead, &d) == 0)
		for (size_t i = 0; i < d.n; i++)
			if (store_del(st, d.keys[i]) == 0)
				log_info("%s: removed %s, left by a process of this machine that is gone", st->url, d.keys[i]);
	free(d.keys);
}

int lock_take(struct store *st, const char *kind, unsigned wait_s, struct store_lock *l)
{
	unsigned char rnd[8];
	char hex[17], host[64] = "";
	bool gc = streq(kind, "gc");
	memset(l, 0, sizeof(*l));
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	hex_encode(rnd, sizeof(rnd), hex);
	gethostname(host, sizeof(host) - 1);
	for (char *h = host; *h; h++)
		if (!isalnum((unsigned char)*h) && *h != '.')
			*h = '_';
	if (!host[0])
		snprintf(host, sizeof(host), "unknown");
	snprintf(l->key, sizeof(l->key), LOCK_KEY_PREFIX "%s-%lld-%s-%ld-%s", kind, (long long)time(NULL), host,
		 (long)getpid(), hex);
	clear_dead(st, host);
	_cleanup_free_ char *body = xasprintf("{\"kind\": \"%s\", \"host\": \"%s\", \"pid\": %ld}\n", kind, host,
					      (long)getpid());
	struct store_src src = { .mem = body, .fd = -1, .size = strlen(body) };
	int r = store_put(st, l->key, &src);
	if (r < 0)
		return log_error_errno(r, "%s: cannot write the lock %s", st->url, l->key);
	l->held = true;

	struct lock_scan s;
	uint64_t deadline = now_ns() + (uint64_t)wait_s * 1000000000ull;
	for (bool said = false;; said = true) {
		r = scan(st, gc ? "push-" : "gc-", l->key, &s);
		if (r < 0)
			break;
		if (!s.found[0])
			return 0;
		char when[32];
		struct tm tm;
		time_t t = (time_t)s.found_t;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
		if (gc) {
			r = log_error_errno(-EBUSY, "%s: a push or commit is running (%s, since %s); gc gives way: "
						    "run it again later (a lock older than %d h is ignored)",
					    st->url, s.found, when, LOCK_STALE_S / 3600);
			break;
		}
		if (now_ns() > deadline) {
			r = log_error_errno(-EBUSY, "%s: gc has been running since %s (%s); try again when it is done",
					    st->url, when, s.found);
			break;
		}
		if (!said)
			log_info("%s: waiting for gc to finish (%s, since %s)", st->url, s.found, when);
		sleep(2);
	}
	lock_drop(st, l);
	return r;
}

void lock_drop(struct store *st, struct store_lock *l)
{
	if (!l->held)
		return;
	if (store_del(st, l->key) < 0)
		log_warn("%s: could not remove the lock %s; it is ignored after %d h", st->url, l->key,
			 LOCK_STALE_S / 3600);
	l->held = false;
}
