/* cluster_url: `[cluster] redis` values, accepted and refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static void test_refused(void **state)
{
	(void)state;
	refuses("127.0.0.1:6379", "redis://HOST");
	refuses("rediss://cache", "redis://HOST");
	refuses("redis://", "expected a host");
	refuses("redis://:6379", "expected a host");
	refuses("redis://cache:0", "port from 1 to 65535");
	refuses("redis://cache:65536", "port from 1 to 65535");
	refuses("redis://cache:63x", "port from 1 to 65535");
	refuses("redis://cache:", "port from 1 to 65535");
	refuses("redis://cache/16", "database number from 0 to 15");
	refuses("redis://cache/a", "database number from 0 to 15");
	refuses("redis://user:pw@cache", "passwords are not supported");
	refuses("redis://cache?x=1", "query");
	refuses("redis://ca che", "a character");
	refuses("redis://[::1", "a character");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepted),
	    cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
