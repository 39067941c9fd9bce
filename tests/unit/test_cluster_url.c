/* cluster_url: `[cluster] redis` values, accepted and refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted),
	    cmocka_unit_test(test_user_and_password),
	    cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
