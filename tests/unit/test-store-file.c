// SPDX-License-Identifier: MIT
/* Description: the file:// backend: atomic puts from memory and from a
 * file, ranged gets, listings that skip temporary files, idempotent
 * deletes, and -ENOENT for missing objects. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "../../fetcher/store/store.h"
#include "../../fetcher/util/log.h"
#include "../../fetcher/util/util.h"

static int count_cb(void *ud, const struct store_obj *o)
{
	int *n = ud;
	(void)o;
	(*n)++;
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/gdroot-file-store-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	_cleanup_free_ char *url = xasprintf("file://%s", dir);
	struct store *st;
	CHECK(store_open(url, NULL, &st) == 0);

	struct store_src m = { .mem = "0123456789", .fd = -1, .size = 10 };
	CHECK(store_put(st, "packs/aa/one", &m) == 0);
	char buf[32] = { 0 };
	CHECK(store_pread(st, "packs/aa/one", buf, 4, 3) == 4);
	CHECK(memcmp(buf, "3456", 4) == 0);
	CHECK(store_pread(st, "packs/aa/one", buf, 20, 8) == 2);
	CHECK(store_pread(st, "packs/aa/one", buf, 20, 10) == 0);
	CHECK(store_pread(st, "packs/aa/one", buf, 20, 100) == 0);
	CHECK(store_pread(st, "packs/aa/missing", buf, 4, 0) == -ENOENT);

	/* From a file descriptor, replacing the object. */
	char src[] = "/tmp/gdroot-src-XXXXXX";
	int fd = mkstemp(src);
	CHECK(write(fd, "abcdef", 6) == 6);
	struct store_src f = { .fd = fd, .size = 6 };
	CHECK(store_put(st, "packs/aa/one", &f) == 0);
	CHECK(store_pread(st, "packs/aa/one", buf, 32, 0) == 6);
	CHECK(memcmp(buf, "abcdef", 6) == 0);
	/* A source that is shorter than claimed is an error, and leaves the
	 * old object in place. */
	struct store_src lie = { .fd = fd, .size = 100 };
	log_set_level(LOG_LVL_ERROR - 1);
	CHECK(store_put(st, "packs/aa/one", &lie) == -EIO);
	CHECK(store_pread(st, "packs/aa/one", buf, 32, 0) == 6);
	close(fd);
	unlink(src);

	struct store_obj o;
	CHECK(store_stat(st, "packs/aa/one", &o) == 0 && o.size == 6 && o.mtime > 0);
	CHECK(store_stat(st, "packs/aa", &o) == -ENOENT); /* a folder is no object */
	CHECK(store_stat(st, "nope", &o) == -ENOENT);

	/* Listings skip leftovers of interrupted puts. */
	_cleanup_free_ char *tmp = xasprintf("%s/packs/aa/.tmp-two.123", dir);
	int t = open(tmp, O_WRONLY | O_CREAT, 0644);
	close(t);
	CHECK(store_put(st, "manifests/1", &m) == 0);
	int n = 0;
	CHECK(store_list(st, "", count_cb, &n) == 0 && n == 2);
	n = 0;
	CHECK(store_list(st, "packs/", count_cb, &n) == 0 && n == 1);
	n = 0;
	CHECK(store_list(st, "pa", count_cb, &n) == 0 && n == 1);
	n = 0;
	CHECK(store_list(st, "zzz/", count_cb, &n) == 0 && n == 0);

	CHECK(store_del(st, "manifests/1") == 0);
	CHECK(store_del(st, "manifests/1") == 0);
	CHECK(store_put(st, "../escape", &m) == -EINVAL);
	CHECK(store_get(st, "a//b", 0, 1, NULL) == -EINVAL);
	store_close(st);

	_cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	return test_exit();
}
