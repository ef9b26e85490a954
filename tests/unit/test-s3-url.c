// SPDX-License-Identifier: MIT
/* Description: S3 bucket URLs: AWS defaults (virtual-host style, path style
 * for dotted bucket names), custom endpoints (path style by default, with
 * ports and path prefixes), explicit style=path|virtual, and refusals (bad
 * bucket, region, style or endpoint; virtual style on an IP address). */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "../../fetcher/store/s3-xml.h"

static void ok(const char *endpoint, const char *region, const char *style, const char *bucket,
	       const char *want)
{
	char *url = NULL;
	const char *why = NULL;
	int r = s3_url_base(endpoint, region, style, bucket, &url, &why);
	if (r != 0)
		fprintf(stderr, "%s %s %s %s: %s\n", endpoint ? endpoint : "(aws)", region,
			style ? style : "(default)", bucket, why ? why : "?");
	CHECK(r == 0);
	if (r == 0)
		CHECK_STR(url, want);
	free(url);
}

static void bad(const char *endpoint, const char *region, const char *style, const char *bucket)
{
	char *url = (char *)"unset";
	const char *why = NULL;
	int r = s3_url_base(endpoint, region, style, bucket, &url, &why);
	if (r != -EINVAL)
		fprintf(stderr, "accepted %s %s %s %s\n", endpoint ? endpoint : "(aws)", region,
			style ? style : "(default)", bucket);
	CHECK(r == -EINVAL);
	CHECK(why && *why);
	CHECK(url == NULL);
	if (r == 0)
		free(url);
}

int main(void)
{
	/* AWS: virtual-host style unless the name has dots. */
	ok(NULL, "us-east-1", NULL, "my-bucket", "https://my-bucket.s3.us-east-1.amazonaws.com/");
	ok(NULL, "eu-west-1", NULL, "gdroot-images", "https://gdroot-images.s3.eu-west-1.amazonaws.com/");
	ok(NULL, "eu-west-1", NULL, "images.example.com", "https://s3.eu-west-1.amazonaws.com/images.example.com/");
	ok(NULL, "eu-west-1", "path", "my-bucket", "https://s3.eu-west-1.amazonaws.com/my-bucket/");
	ok(NULL, "eu-west-1", "virtual", "images.example.com", "https://images.example.com.s3.eu-west-1.amazonaws.com/");
	/* AWS with a name that is no DNS label: path style. */
	ok(NULL, "us-east-1", NULL, "My_Bucket", "https://s3.us-east-1.amazonaws.com/My_Bucket/");

	/* Custom endpoints: path style unless asked. */
	ok("http://127.0.0.1:4568", "us-east-1", NULL, "bkt", "http://127.0.0.1:4568/bkt/");
	ok("http://127.0.0.1:4568/", "us-east-1", NULL, "bkt", "http://127.0.0.1:4568/bkt/");
	ok("https://minio.example.net", "us-east-1", "path", "Bkt_1", "https://minio.example.net/Bkt_1/");
	ok("https://gw.example.net/s3//", "us-east-1", NULL, "bkt", "https://gw.example.net/s3/bkt/");
	ok("http://[::1]:9000", "us-east-1", NULL, "bkt", "http://[::1]:9000/bkt/");
	ok("http://s3.localhost:4568", "us-east-1", "virtual", "bkt", "http://bkt.s3.localhost:4568/");
	ok("https://storage.example.net/", "auto", "virtual", "my.bkt", "https://my.bkt.storage.example.net/");
	ok("https://gw.example.net/s3/", "us-east-1", "virtual", "bkt", "https://bkt.gw.example.net/s3/");

	/* Refusals. */
	bad(NULL, "us-east-1", NULL, "");
	bad(NULL, "us-east-1", NULL, "a/b");
	bad(NULL, "us-east-1", NULL, ".bkt");
	bad(NULL, "us-east-1", NULL, "b%6bt");
	bad(NULL, "us-east-1", "sideways", "bkt");
	bad(NULL, "", NULL, "bkt");
	bad(NULL, "us-east-1:x", NULL, "bkt");
	bad(NULL, "US-EAST-1", NULL, "bkt");
	bad(NULL, "us-east-1", "virtual", "My_Bucket");
	bad(NULL, "us-east-1", "virtual", "ab");
	bad(NULL, "us-east-1", "virtual", "a..b");
	bad("ftp://example.net", "us-east-1", NULL, "bkt");
	bad("example.net", "us-east-1", NULL, "bkt");
	bad("http://", "us-east-1", NULL, "bkt");
	bad("http://:9000", "us-east-1", NULL, "bkt");
	bad("http://key:secret@example.net", "us-east-1", NULL, "bkt");
	bad("http://example.net/?x=1", "us-east-1", NULL, "bkt");
	bad("http://example.net/#f", "us-east-1", NULL, "bkt");
	bad("http://127.0.0.1:4568", "us-east-1", "virtual", "bkt");
	bad("http://[::1]:4568", "us-east-1", "virtual", "bkt");
	return test_exit();
}
