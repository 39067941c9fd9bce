/* cluster_url: `[cluster] redis` values, accepted and refused; any URL
 * masked for messages, its passwords never shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cluster_url.h"

static void parses(const char *s, const char *host, int port, int db)
{
	struct cluster_url u;
	const char *why = "unset";

	assert_int_equal(cluster_url_parse(s, &u, &why), 0);
	assert_null(why);
	assert_string_equal(u.host, host);
	assert_int_equal(u.port, port);
	assert_int_equal(u.db, db);
}

static void refuses(const char *s, const char *why_part)
{
	struct cluster_url u;
	const char *why = NULL;

	assert_int_equal(cluster_url_parse(s, &u, &why), -1);
	assert_non_null(why);
	if (!strstr(why, why_part))
		fail_msg("%s: \"%s\" does not say \"%s\"", s, why, why_part);
}

static void test_accepted(void **state)
{
	(void)state;
	parses("redis://127.0.0.1", "127.0.0.1", 6379, 0);
	parses("redis://127.0.0.1:6380", "127.0.0.1", 6380, 0);
	parses("redis://cache.example.com:6380/3", "cache.example.com", 6380, 3);
	parses("REDIS://cache/15", "cache", 6379, 15);
	parses("redis://cache/", "cache", 6379, 0);
	parses("redis://[::1]:7000/1", "::1", 7000, 1);
	parses("redis://[::1]", "::1", 6379, 0);
}

static void auth(const char *s, const char *user, const char *password)
{
	struct cluster_url u;
	const char *why = "unset";

	assert_int_equal(cluster_url_parse(s, &u, &why), 0);
	assert_string_equal(u.host, "cache");
	assert_string_equal(u.user, user);
	assert_string_equal(u.password, password);
}

static void test_user_and_password(void **state)
{
	char shown[CLUSTER_URL_SHOW_MAX], big[CLUSTER_PASSWORD_MAX + 40];
	struct cluster_url u;
	const char *why;

	(void)state;
	auth("redis://:s3cret@cache", "", "s3cret");
	auth("redis://posthorn:s3cret@cache:6380/2", "posthorn", "s3cret");
	auth("redis://po%73thorn:a%2Fb%3Fc%23d%40e%25f:g@cache", "posthorn", "a/b?c#d@e%f:g");
	auth("redis://u:p@ss@cache", "u", "p@ss"); /* the last '@' ends the password */
	auth("redis://cache", "", "");
	parses("redis://u:p@[::1]:7000/1", "::1", 7000, 1);
	/* shown without the password */
	assert_int_equal(cluster_url_parse("redis://posthorn:s3cret@cache:6380/2", &u, &why), 0);
	cluster_url_show(&u, shown);
	assert_string_equal(shown, "redis://posthorn@cache:6380/2");
	assert_int_equal(cluster_url_parse("redis://:s3cret@[::1]", &u, &why), 0);
	cluster_url_show(&u, shown);
	assert_string_equal(shown, "redis://[::1]:6379/0");
	/* the longest password, and one more byte */
	snprintf(big, sizeof(big), "redis://:%0*d@cache", CLUSTER_PASSWORD_MAX, 7);
	assert_int_equal(cluster_url_parse(big, &u, &why), 0);
	assert_int_equal(strlen(u.password), CLUSTER_PASSWORD_MAX);
	snprintf(big, sizeof(big), "redis://:%0*d@cache", CLUSTER_PASSWORD_MAX + 1, 7);
	refuses(big, "password is too long");
	/* a refused URL keeps nothing */
	assert_int_equal(cluster_url_parse("redis://u:s3cret@cache:0", &u, &why), -1);
	assert_string_equal(u.password, "");
	assert_null(strstr(why, "s3cret"));
}

static void test_refused(void **state)
{
	(void)state;
	refuses("127.0.0.1:6379", "expected a URL redis://");
	refuses("rediss://cache", "no TLS");
	refuses("rediss://u:p@cache", "no TLS");
	refuses("redis://", "expected a host");
	refuses("redis://:6379", "expected a host");
	refuses("redis://cache:0", "port from 1 to 65535");
	refuses("redis://cache:65536", "port from 1 to 65535");
	refuses("redis://cache:63x", "port from 1 to 65535");
	refuses("redis://cache:", "port from 1 to 65535");
	refuses("redis://cache/16", "database number from 0 to 15");
	refuses("redis://cache/a", "database number from 0 to 15");
	refuses("redis://user@cache", "a user needs a password");
	refuses("redis://user:@cache", "password after [USER]: is empty");
	refuses("redis://:@cache", "password after [USER]: is empty");
	refuses("redis://u:p%2@cache", "the password");
	refuses("redis://u:p%zz@cache", "the password");
	refuses("redis://u:p%00x@cache", "the password");
	refuses("redis://u:p w@cache", "the password");
	refuses("redis://u:p\x80@cache", "the password");
	refuses("redis://u%0:p@cache", "the user name");
	refuses("redis://u:p@", "expected a host");
	refuses("redis://u:p/x@cache", "database number");
	refuses("redis://cache?x=1", "query");
	refuses("redis://ca che", "a character");
	refuses("redis://[::1", "a character");
}

static void masked(const char *s, int bare, const char *want)
{
	char *got = cluster_url_mask(s, bare);

	if (strcmp(got, want) != 0)
		fail_msg("%s masked as \"%s\", not \"%s\"", s, got, want);
	free(got);
}

static void test_mask(void **state)
{
	(void)state;
	/* with @HOST: the user's name stays, the password goes */
	masked("redis://u:s3cret@cache:6380/2", 0, "redis://u:****@cache:6380/2");
	masked("redis://:s3cret@cache", 0, "redis://:****@cache");
	masked("redis://u:p@ss@cache", 0, "redis://u:****@cache");
	masked("postgresql://s3cret@db/posthorn", 0, "postgresql://****@db/posthorn");
	masked("postgresql://u:a/b?c@db/x", 0, "postgresql://u:****@db/x");
	/* without @HOST: all after the ':' that is not a port */
	masked("redis://user:s3cret", 0, "redis://user:****");
	masked("postgresql://user:s3cret", 0, "postgresql://user:****");
	masked("postgres://user:s3/cr?et#x", 0, "postgres://user:****");
	masked("redis://:s3cret", 0, "redis://:****");
	masked("redis://cache:63x", 0, "redis://cache:****");
	masked("postgresql://h1:5432,user:s3cret/db", 0, "postgresql://h1:5432,user:****");
	/* nothing secret: as it is */
	masked("redis://cache:6379/16", 0, "redis://cache:6379/16");
	masked("redis://[::1]:7000/1", 0, "redis://[::1]:7000/1");
	masked("redis://[::1]", 0, "redis://[::1]");
	masked("postgresql://h1:5432,h2:5433/db", 0, "postgresql://h1:5432,h2:5433/db");
	masked("postgresql://db/posthorn", 0, "postgresql://db/posthorn");
	masked("https://relay.example.com:8443/x", 0, "https://relay.example.com:8443/x");
	masked("25x", 0, "25x");
	masked("", 1, "");
	/* a password= parameter, in any case */
	masked("postgresql://db/p?password=s3cret&sslmode=require", 0,
	       "postgresql://db/p?password=****&sslmode=require");
	masked("postgresql://db/p?sslmode=disable&PassWord=s3cret", 0,
	       "postgresql://db/p?sslmode=disable&PassWord=****");
	masked("postgresql://u:x@db/p?password=s3cret#f", 0,
	       "postgresql://u:****@db/p?password=****#f");
	/* its name's letters percent-encoded: still a password to the client */
	masked("postgresql://db/p?passw%6Frd=s3cret&x=1", 0,
	       "postgresql://db/p?passw%6Frd=****&x=1");
	masked("postgresql://db/p?%50ASSWORD=s3cret", 0, "postgresql://db/p?%50ASSWORD=****");
	masked("postgresql://db/p?passw%6=s3cret", 0, "postgresql://db/p?passw%6=s3cret");
	/* no scheme: as it is, unless the value is a URL key's */
	masked("user:s3cret@cache", 0, "user:s3cret@cache");
	masked("user:s3cret@cache", 1, "user:****@cache");
	masked("user:s3cret", 1, "user:****");
	masked("cache:6379", 1, "cache:6379");
	/* a password written as the user part's only field is never a port */
	assert_null(cluster_url_userinfo_why("postgresql://u:p@db:5432/x"));
	assert_null(cluster_url_userinfo_why("postgresql://db:5432/x"));
	assert_null(cluster_url_userinfo_why("postgresql://h1:1,h2:2/x"));
	assert_null(cluster_url_userinfo_why("postgresql://[::1]:5432/x"));
	assert_non_null(cluster_url_userinfo_why("postgresql://user:s3cret"));
	assert_null(strstr(cluster_url_userinfo_why("postgresql://user:s3cret"), "s3cret"));
	assert_non_null(cluster_url_userinfo_why("postgres://h1:5432,user:pw/db"));
	/* a '/', '?' or '#' in the password (an '@' after it), an '@' in it */
	assert_non_null(
	    strstr(cluster_url_userinfo_why("postgresql://u:Tr0ub/Horse@h:1/db"), "%2F"));
	assert_non_null(cluster_url_userinfo_why("postgresql://u:pa?ss@h/db"));
	assert_non_null(cluster_url_userinfo_why("redis://u:pa#ss@h"));
	assert_non_null(strstr(cluster_url_userinfo_why("postgresql://u:MyP@ss@h:1/db"), "%40"));
	assert_non_null(cluster_url_userinfo_why("postgresql://u:p@ss:w0rd@h:1/db"));
	assert_null(cluster_url_userinfo_why("postgresql://u:p%40ss@h:1/db"));
	assert_null(cluster_url_userinfo_why("postgresql://h:5432/db?user=a@b"));
	assert_null(cluster_url_userinfo_why("postgresql://u@h/db?options=x@y"));
}

static void escape_ok(const char *url)
{
	const char *why = cluster_url_escape_why(url);

	if (why)
		fail_msg("%s: refused: %s", url, why);
}

static void escape_refused(const char *url, const char *why_part)
{
	const char *why = cluster_url_escape_why(url);

	if (!why || !strstr(why, why_part))
		fail_msg("%s: \"%s\" does not say \"%s\"", url, why ? why : "(accepted)", why_part);
	assert_null(strstr(why, "S3cr"));
}

static void test_escape(void **state)
{
	(void)state;
	escape_ok("postgresql://alice:S3cr%25ET@127.0.0.1:1/db");
	escape_ok("postgresql://alice:S3cr%7aET@db/d?password=a%20b&sslmode=require");
	escape_ok("postgresql://db/d?application_name=x%41");
	escape_ok("postgresql://db/d");
	escape_refused("postgresql://alice:S3cr%zzET@127.0.0.1:1/db", "%XX");
	escape_refused("postgresql://alice:S3cr%5@db/d", "%XX");
	escape_refused("postgresql://alice:S3cr%@db/d", "%XX");
	escape_refused("postgresql://alice@db/d?password=S3cr%zz", "%XX");
	escape_refused("postgresql://alice@db/d?password=S3cr%", "%XX");
	escape_refused("postgresql://alice:S3cr%00ET@db/d", "%00");
	escape_refused("postgresql://alice@db/d%00?x=S3cr", "%00");
	escape_refused("postgresql://alice@db/d?passw%6Frd=S3cr", "name");
	escape_refused("postgresql://alice@db/d?x=1&%70assword=S3cr", "name");
	escape_refused("postgresql://alice@db/d?x%3d=S3cr", "name");
}

static void scrubbed(const char *msg, const char *url, const char *want)
{
	char *got = cluster_url_scrub(msg, url);

	assert_string_equal(got, want);
	free(got);
}

static void test_scrub(void **state)
{
	(void)state;
	/* the user part's password, as written and as decoded */
	scrubbed("invalid percent-encoded token: \"S3cr%zzET\"",
	         "postgresql://alice:S3cr%zzET@127.0.0.1:1/db",
	         "invalid percent-encoded token: \"****\"");
	scrubbed("forbidden value %00 in percent-encoded value: \"S3cr%00ET\"",
	         "postgresql://alice:S3cr%00ET@db/d",
	         "forbidden value %00 in percent-encoded value: \"****\"");
	scrubbed("password S3cr/ET and S3cr%2FET rejected", "postgresql://alice:S3cr%2FET@db/d",
	         "password **** and **** rejected");
	/* up to the first '@' (the client's reading) and up to the last (the mask's) */
	scrubbed("a p@ss b p", "postgresql://u:p@ss@db/d", "a **** b ****");
	/* password= values, the name written or %XX, each up to '&' */
	scrubbed("\"TOPSECRET%zz\" is bad", "postgresql://alice@db/d?password=TOPSECRET%zz",
	         "\"****\" is bad");
	scrubbed("x SECRET y", "postgresql://db/d?sslmode=disable&passw%6Frd=SECRET&x=1",
	         "x **** y");
	scrubbed("x SE CRET y SE%20CRET", "postgresql://db/d?PASSWORD=SE%20CRET", "x **** y ****");
	scrubbed("one two", "postgresql://u:one@db/d?password=two", "**** ****");
	/* nothing to scrub: as it is */
	scrubbed("connection refused", "postgresql://alice@db/d", "connection refused");
	scrubbed("alice refused", "postgresql://alice@db/d?password=", "alice refused");
	scrubbed("alice: refused", "postgresql://alice:@db/d", "alice: refused");
	scrubbed("", "postgresql://u:p@db/d", "");
	scrubbed("p", "", "p");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted), cmocka_unit_test(test_user_and_password),
	    cmocka_unit_test(test_refused),  cmocka_unit_test(test_mask),
	    cmocka_unit_test(test_escape),   cmocka_unit_test(test_scrub),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
