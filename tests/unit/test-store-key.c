// SPDX-License-Identifier: MIT
/* Description: object key syntax, store options (names, values, config
 * files), size parsing and store URL errors. */
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "test.h"
#include "../../fetcher/store/store.h"
#include "../../fetcher/util/log.h"
#include "../../fetcher/util/util.h"

int main(void)
{
	const char *good[] = { "a", "packs/ab/abcdef.pack", "manifests/000001.json", "A-Z_0.9", NULL };
	const char *bad[] = { "", "/a", "a/", "a//b", "../a", "a/../b", ".hidden", "a/.tmp-x", "a b", "a\\b",
			      "caf\xc3\xa9", "a\nb", "a?b", NULL };
	for (int i = 0; good[i]; i++)
		CHECK(store_key_check(good[i]) == 0);
	for (int i = 0; bad[i]; i++)
		CHECK(store_key_check(bad[i]) == -EINVAL);
	char longkey[STORE_KEY_MAX + 1];
	memset(longkey, 'k', STORE_KEY_MAX);
	longkey[STORE_KEY_MAX] = 0;
	CHECK(store_key_check(longkey) == -EINVAL);

	uint64_t v;
	CHECK(parse_size("16M", &v) == 0 && v == 16u << 20);
	CHECK(parse_size("256k", &v) == 0 && v == 256u << 10);
	CHECK(parse_size("7", &v) == 0 && v == 7);
	CHECK(parse_size("", &v) == -EINVAL);
	CHECK(parse_size("M", &v) == -EINVAL);
	CHECK(parse_size("1.5G", &v) == -EINVAL);
	CHECK(parse_size("99999999999T", &v) == -ERANGE);
	CHECK(parse_u64("18446744073709551616", &v) == -ERANGE);
	CHECK(parse_u64("18446744073709551615", &v) == 0 && v == UINT64_MAX);

	log_set_level(LOG_LVL_ERROR - 1); /* the error cases below log; keep quiet */
	struct store_opts o = { 0 };
	CHECK(store_opts_set(&o, "retries", "3") == 0 && o.retries == 3);
	CHECK(store_opts_set(&o, "retries", "x") == -EINVAL);
	CHECK(store_opts_set(&o, "upload_chunk", "1M") == 0 && o.upload_chunk == 1u << 20);
	CHECK(store_opts_set(&o, "upload_chunk", "100000") == -EINVAL);
	CHECK(store_opts_set(&o, "nonsense", "1") == -ENOENT);
	CHECK(store_opts_set(&o, "region", "eu-west-1") == 0 && streq(o.region, "eu-west-1"));
	struct store_opts c;
	store_opts_copy(&c, &o);
	CHECK(c.region != o.region && streq(c.region, "eu-west-1"));
	store_opts_free(&c);

	char path[] = "/tmp/gdroot-conf-XXXXXX";
	int fd = mkstemp(path);
	const char *conf = "# comment\n\n  region = \"us-west-2\"  \nretries=4\n";
	CHECK(write(fd, conf, strlen(conf)) == (ssize_t)strlen(conf));
	close(fd);
	CHECK(store_opts_load(&o, path, NULL, NULL) == 0);
	CHECK(streq(o.region, "us-west-2") && o.retries == 4);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "oops\n", 5) == 5);
	close(fd);
	CHECK(store_opts_load(&o, path, NULL, NULL) == -EINVAL);
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "mystery = 1\n", 12) == 12);
	close(fd);
	CHECK(store_opts_load(&o, path, NULL, NULL) == -EINVAL);
	unlink(path);
	CHECK(store_opts_load(&o, path, NULL, NULL) == -ENOENT);
	store_opts_free(&o);

	struct store *st = NULL;
	CHECK(store_open("nothing", NULL, &st) == -EINVAL);
	CHECK(store_open("ftp://x", NULL, &st) == -EINVAL);
	CHECK(store_open("file://relative", NULL, &st) == -EINVAL);
	CHECK(store_open("file:///tmp?secret_key=x", NULL, &st) == -EINVAL);
	CHECK(store_open("file:///tmp?bogus=1", NULL, &st) == -EINVAL);
	CHECK(store_open("file:///nonexistent-gdroot", NULL, &st) == -ENOENT);
	CHECK(store_open("gdrive://a/b", NULL, &st) == -EINVAL);
	CHECK(store_open("file:///tmp?retries=2", NULL, &st) == 0 && st->opts.retries == 2);
	store_close(st);
	return test_exit();
}
