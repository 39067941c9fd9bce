/*
 * Unit tests for store/store_idem (Idempotency-Key records): a key is
 * claimed once, busy until answered, answered with the first answer
 * after, refused with another body, per account, forgotten after the ttl
 * (with or without a prune), and a released claim can be claimed again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("idem");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static int claim(struct store *st, const char *account, const char *hash, int64_t now, int *status,
                 char **answer)
{
	char *err = NULL;
	int rc = store_idem_claim(st, &(struct store_idem){account, "key-1", hash, now, 86400},
	                          status, answer, &err);

	if (rc < 0)
		fail_msg("claim: %s", err);
	return rc;
}

static void test_claim_busy_done_mismatch(void **state)
{
	struct store *st = open_ok(*state);
	char *answer = NULL, *err = NULL;
	int status = 0;

	assert_int_equal(claim(st, "alice", "h1", 1000, &status, &answer), STORE_IDEM_NEW);
	assert_int_equal(claim(st, "alice", "h1", 1001, &status, &answer), STORE_IDEM_BUSY);
	assert_null(answer);
	assert_int_equal(store_idem_finish(st, "alice", "key-1", 200, "{\"messages\":[]}", &err),
	                 0);
	assert_int_equal(claim(st, "alice", "h1", 1002, &status, &answer), STORE_IDEM_DONE);
	assert_int_equal(status, 200);
	assert_string_equal(answer, "{\"messages\":[]}");
	free(answer);
	assert_int_equal(claim(st, "alice", "h2", 1003, &status, &answer), STORE_IDEM_MISMATCH);
	/* another account's key of the same name is its own */
	assert_int_equal(claim(st, "bob", "h2", 1003, &status, &answer), STORE_IDEM_NEW);
	store_close(st);
}

static void test_ttl_and_prune(void **state)
{
	struct store *st = open_ok(*state);
	char *answer = NULL, *err = NULL;
	int status = 0;

	assert_int_equal(claim(st, "alice", "h1", 1000, &status, &answer), STORE_IDEM_NEW);
	assert_int_equal(store_idem_finish(st, "alice", "key-1", 422, "{}", &err), 0);
	/* a day later the key is new again, even before a prune */
	assert_int_equal(claim(st, "alice", "h2", 1000 + 86401, &status, &answer), STORE_IDEM_NEW);
	assert_int_equal(store_idem_prune(st, 1000 + 86401, &err), 0); /* the new row stays */
	assert_int_equal(store_idem_prune(st, 1000 + 86402, &err), 1);
	assert_int_equal(claim(st, "alice", "h2", 1000 + 86403, &status, &answer), STORE_IDEM_NEW);
	store_close(st);
}

static void test_release(void **state)
{
	struct store *st = open_ok(*state);
	char *answer = NULL, *err = NULL;
	int status = 0;

	assert_int_equal(claim(st, "alice", "h1", 1000, &status, &answer), STORE_IDEM_NEW);
	assert_int_equal(store_idem_release(st, "alice", "key-1", &err), 0);
	assert_int_equal(claim(st, "alice", "h2", 1001, &status, &answer), STORE_IDEM_NEW);
	/* an answered key is never released */
	assert_int_equal(store_idem_finish(st, "alice", "key-1", 200, "{}", &err), 0);
	assert_int_equal(store_idem_release(st, "alice", "key-1", &err), 0);
	assert_int_equal(claim(st, "alice", "h2", 1002, &status, &answer), STORE_IDEM_DONE);
	free(answer);
	store_close(st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_claim_busy_done_mismatch),
	    T(test_ttl_and_prune),
	    T(test_release),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
