// SPDX-License-Identifier: MIT
/* Description: the S3 XML parsers: ListObjectsV2 pages shaped like AWS's
 * (pretty-printed and compact, truncated with a token, empty), Error
 * bodies, LastModified and ETag forms, and hostile input (truncated or
 * malformed XML, DTDs and entity bombs, missing or repeated fields, too
 * many entries, oversized bodies). */
#include <errno.h>
#include <stdlib.h>

#include "test.h"
#include "../../fetcher/store/s3-xml.h"
#include "../../fetcher/util/util.h"

#define LIST(s) s3_xml_parse_list((s), strlen(s), &l)

/* The shape of the example in AWS's ListObjectsV2 reference. */
static const char aws_page[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
	"    <Name>bucket</Name>\n"
	"    <Prefix/>\n"
	"    <KeyCount>2</KeyCount>\n"
	"    <MaxKeys>1000</MaxKeys>\n"
	"    <IsTruncated>false</IsTruncated>\n"
	"    <Contents>\n"
	"        <Key>my-image.jpg</Key>\n"
	"        <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
	"        <ETag>\"fba9dede5f27731c9771645a39863328\"</ETag>\n"
	"        <Size>434234</Size>\n"
	"        <StorageClass>STANDARD</StorageClass>\n"
	"    </Contents>\n"
	"    <Contents>\n"
	"        <Key>packs/3f/3f9a.pack</Key>\n"
	"        <LastModified>2024-02-29T23:59:59Z</LastModified>\n"
	"        <ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>\n"
	"        <Size>5368709121</Size>\n"
	"        <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>"
	"<DisplayName>mtd@amazon.com</DisplayName></Owner>\n"
	"        <StorageClass>STANDARD</StorageClass>\n"
	"    </Contents>\n"
	"</ListBucketResult>\n";

/* A truncated page in s3rver's compact form (its namespace is wrong). */
static const char truncated_page[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	"<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\"><Name>bkt</Name>"
	"<Prefix>a/</Prefix><NextContinuationToken>15q/8OaQeLkML6Y+Hf9xLzLBLU59XJuq25K1oC3dvsk=</NextContinuationToken>"
	"<KeyCount>1</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated>"
	"<Contents><Key>a/k1</Key><LastModified>2026-12-01T15:46:23.000Z</LastModified>"
	"<ETag>&quot;B1946AC92492D2347C6235B4D2611184&quot;</ETag><Size>6</Size>"
	"<StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>";

static void test_pages(void)
{
	struct s3_list l;

	CHECK(LIST(aws_page) == 0);
	CHECK(l.n == 2 && !l.truncated && !l.next_token && l.key_count == 2);
	if (l.n == 2) {
		CHECK_STR(l.v[0].key, "my-image.jpg");
		CHECK(l.v[0].size == 434234);
		CHECK(l.v[0].mtime == 1255369830);
		CHECK_STR(l.v[0].md5, "fba9dede5f27731c9771645a39863328");
		CHECK_STR(l.v[1].key, "packs/3f/3f9a.pack");
		CHECK(l.v[1].size == 5368709121ull);
		CHECK(l.v[1].mtime == 1709251199);
		CHECK_STR(l.v[1].md5, ""); /* multipart ETag: no MD5 */
	}
	s3_list_free(&l);

	CHECK(LIST(truncated_page) == 0);
	CHECK(l.n == 1 && l.truncated && l.key_count == 1);
	CHECK(l.next_token && streq(l.next_token, "15q/8OaQeLkML6Y+Hf9xLzLBLU59XJuq25K1oC3dvsk="));
	if (l.n == 1)
		CHECK_STR(l.v[0].md5, "b1946ac92492d2347c6235b4d2611184");
	s3_list_free(&l);

	/* An empty bucket; a key in CDATA with a comment beside it. */
	CHECK(LIST("<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>") == 0);
	CHECK(l.n == 0 && !l.truncated && l.key_count == 0);
	s3_list_free(&l);
	CHECK(LIST("<ListBucketResult><Contents><Key><![CDATA[a&b]]><!-- x --></Key><Size> 7 </Size></Contents></ListBucketResult>") == 0);
	CHECK(l.n == 1 && l.v && streq(l.v[0].key, "a&b") && l.v[0].size == 7 && l.v[0].mtime == -1 && !l.v[0].md5[0]);
	CHECK(l.key_count == -1);
	s3_list_free(&l);
	/* Character references are plain text, not entities. */
	CHECK(LIST("<ListBucketResult><Contents><Key>x&#47;y&amp;</Key><Size>1</Size></Contents></ListBucketResult>") == 0);
	CHECK(l.n == 1 && l.v && streq(l.v[0].key, "x/y&"));
	s3_list_free(&l);
	/* A LastModified that does not parse leaves the time unknown. */
	CHECK(LIST("<ListBucketResult><Contents><Key>k</Key><Size>1</Size><LastModified>yesterday</LastModified>"
		   "<ETag>\"nothex-nothex-nothex-nothex-nothe\"</ETag></Contents></ListBucketResult>") == 0);
	CHECK(l.n == 1 && l.v && l.v[0].mtime == -1 && !l.v[0].md5[0]);
	s3_list_free(&l);
}

static void test_bad_pages(void)
{
	struct s3_list l;
	const char *bad[] = {
		"",
		"not xml at all",
		"<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>", /* truncated */
		"<ListBucketResult><Contents><Key>a</Key><Size>1</Si",
		"<Error><Code>AccessDenied</Code></Error>",			/* not a list */
		"<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>", /* no Key */
		"<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key></Contents></ListBucketResult>", /* no Size */
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>1e3</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>18446744073709551616</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a<b/></Key><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", /* no token */
		"<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken></NextContinuationToken></ListBucketResult>",
		"<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>",
		"<ListBucketResult><IsTruncated>false</IsTruncated><IsTruncated>true</IsTruncated></ListBucketResult>",
		"<ListBucketResult><KeyCount>many</KeyCount></ListBucketResult>",
		"<ListBucketResult><Contents><Key>&undefined;</Key><Size>1</Size></Contents></ListBucketResult>",
		"<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>",
		NULL,
	};
	for (int i = 0; bad[i]; i++) {
		int r = LIST(bad[i]);
		if (r != -EPROTO)
			fprintf(stderr, "accepted bad page %d: %s\n", i, bad[i]);
		CHECK(r == -EPROTO);
		s3_list_free(&l);
	}
	CHECK(s3_xml_parse_list(NULL, 0, &l) == -EPROTO);
	s3_list_free(&l);
	/* An embedded NUL. */
	CHECK(s3_xml_parse_list("<ListBucketResult>\0</ListBucketResult>", 38, &l) == -EPROTO);
	s3_list_free(&l);
}

/* Entity expansion must never happen: a DTD is refused before libxml2
 * sees it, whatever the entities would grow to. */
static void test_entities(void)
{
	struct s3_list l;
	struct s3_error e;
	const char *bombs[] = {
		"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
		" <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		" <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
		" <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
		" <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
		" <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
		" <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
		" <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
		" <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
		"]>\n<ListBucketResult><Contents><Key>&lol9;</Key><Size>1</Size></Contents></ListBucketResult>\n",
		/* An external entity (file and network). */
		"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
		"<ListBucketResult><Contents><Key>&x;</Key><Size>1</Size></Contents></ListBucketResult>",
		"<!DOCTYPE r SYSTEM \"http://127.0.0.1:1/evil.dtd\"><ListBucketResult/>",
		/* A harmless-looking internal one is refused too. */
		"<!DOCTYPE ListBucketResult [<!ENTITY k \"key\">]><ListBucketResult><Contents><Key>&k;</Key>"
		"<Size>1</Size></Contents></ListBucketResult>",
		NULL,
	};
	for (int i = 0; bombs[i]; i++) {
		CHECK(LIST(bombs[i]) == -EPROTO);
		s3_list_free(&l);
		CHECK(s3_xml_parse_error(bombs[i], strlen(bombs[i]), &e) == -EPROTO);
		s3_error_free(&e);
	}
}

static void test_limits(void)
{
	struct s3_list l;
	const char item[] = "<Contents><Key>k</Key><Size>1</Size></Contents>";
	size_t n = S3_LIST_MAX + 1, il = sizeof(item) - 1;
	char *doc = xmalloc(n * il + 64), *w = doc;

	w += sprintf(w, "<ListBucketResult>");
	for (size_t i = 0; i < n; i++, w += il)
		memcpy(w, item, il);
	w += sprintf(w, "</ListBucketResult>");
	CHECK(s3_xml_parse_list(doc, (size_t)(w - doc), &l) == -EPROTO); /* one too many */
	s3_list_free(&l);
	/* Exactly S3_LIST_MAX is fine. */
	size_t cut = strlen("<ListBucketResult>") + (n - 1) * il;
	w = doc + cut;
	w += sprintf(w, "</ListBucketResult>");
	CHECK(s3_xml_parse_list(doc, (size_t)(w - doc), &l) == 0 && l.n == S3_LIST_MAX);
	s3_list_free(&l);
	free(doc);

	/* A text over S3_TEXT_MAX. */
	doc = xmalloc(S3_TEXT_MAX + 200);
	w = doc + sprintf(doc, "<ListBucketResult><Contents><Key>");
	memset(w, 'k', S3_TEXT_MAX + 1);
	w += S3_TEXT_MAX + 1;
	w += sprintf(w, "</Key><Size>1</Size></Contents></ListBucketResult>");
	CHECK(s3_xml_parse_list(doc, (size_t)(w - doc), &l) == -EPROTO);
	s3_list_free(&l);
	free(doc);

	/* A body over S3_XML_MAX is refused unread. */
	doc = xcalloc(1, S3_XML_MAX + 2);
	memset(doc, ' ', S3_XML_MAX + 1);
	memcpy(doc, "<ListBucketResult/>", 19);
	CHECK(s3_xml_parse_list(doc, S3_XML_MAX + 1, &l) == -EPROTO);
	s3_list_free(&l);
	CHECK(s3_xml_parse_list(doc, S3_XML_MAX, &l) == 0);
	s3_list_free(&l);
	free(doc);
}

static void test_errors(void)
{
	struct s3_error e;
	const char aws[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>NoSuchKey</Code>\n"
			   "  <Message>The resource you requested does not exist</Message>\n"
			   "  <Resource>/mybucket/myfoto.jpg</Resource>\n  <RequestId>4442587FB7D0A2F9</RequestId>\n</Error>";
	CHECK(s3_xml_parse_error(aws, strlen(aws), &e) == 0);
	CHECK(e.code && streq(e.code, "NoSuchKey"));
	CHECK(e.message && streq(e.message, "The resource you requested does not exist"));
	s3_error_free(&e);

	const char nomsg[] = "<Error><Code>SlowDown</Code></Error>";
	CHECK(s3_xml_parse_error(nomsg, strlen(nomsg), &e) == 0 && e.code && !e.message);
	s3_error_free(&e);
	const char none[] = "<Error/>";
	CHECK(s3_xml_parse_error(none, strlen(none), &e) == 0 && !e.code && !e.message);
	s3_error_free(&e);

	const char *bad[] = { "", "<Error><Code>x</Code>", "<html><body>503</body></html>",
			      "<Error><Code>a</Code><Code>b</Code></Error>", "Service Unavailable", NULL };
	for (int i = 0; bad[i]; i++) {
		CHECK(s3_xml_parse_error(bad[i], strlen(bad[i]), &e) == -EPROTO);
		s3_error_free(&e);
	}
}

static void test_forms(void)
{
	int64_t t;
	char md5[33];

	CHECK(s3_time_parse("1970-01-01T00:00:00Z", &t) == 0 && t == 0);
	CHECK(s3_time_parse("2009-10-12T17:50:30.000Z", &t) == 0 && t == 1255369830);
	CHECK(s3_time_parse("2009-10-12T17:50:30.123456Z", &t) == 0 && t == 1255369830);
	const char *badt[] = { "", "2009-10-12", "2009-10-12T17:50:30", "2009-10-12T17:50:30+02:00",
			       "2009-13-12T17:50:30Z", "2009-10-12T17:50:30.Z", "2009-10-12 17:50:30Z",
			       "2009-1x-12T17:50:30Z", "2009-10-12T17:50:30ZZ", NULL };
	for (int i = 0; badt[i]; i++)
		CHECK(s3_time_parse(badt[i], &t) == -EINVAL);

	CHECK(s3_etag_md5("\"fba9dede5f27731c9771645a39863328\"", md5) == 0);
	CHECK_STR(md5, "fba9dede5f27731c9771645a39863328");
	CHECK(s3_etag_md5("FBA9DEDE5F27731C9771645A39863328", md5) == 0);
	CHECK_STR(md5, "fba9dede5f27731c9771645a39863328");
	const char *bade[] = { "", "\"\"", "\"fba9dede5f27731c9771645a39863328-2\"", "W/\"fba9dede5f27731c9771645a39863328\"",
			       "\"fba9dede5f27731c9771645a3986332g\"", "\"fba9dede5f27731c9771645a3986332\"", NULL };
	for (int i = 0; bade[i]; i++) {
		CHECK(s3_etag_md5(bade[i], md5) == -EINVAL);
		CHECK(md5[0] == 0);
	}
}

int main(void)
{
	test_pages();
	test_bad_pages();
	test_entities();
	test_limits();
	test_errors();
	test_forms();
	return test_exit();
}
