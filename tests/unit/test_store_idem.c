/*
 * Unit tests for store/store_idem (Idempotency-Key records): a key is
 * claimed once, busy until answered, answered with the first answer
 * after, refused with another body, per account, forgotten after the ttl
 * (with or without a prune), and a released claim can be claimed again;
 * a claim's plan is listed with it while it has no answer, and a new
 * claim starts without one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store_nodes.h"
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

struct seen {
	int n;
	char account[32], key[32], planned[64];
	int has_plan;
};

static void on_open(void *arg, const struct store_idem_open *o)
{
	struct seen *v = arg;

	v->n++;
	snprintf(v->account, sizeof(v->account), "%s", o->account);
	snprintf(v->key, sizeof(v->key), "%s", o->key);
	v->has_plan = o->planned != NULL;
	snprintf(v->planned, sizeof(v->planned), "%s", o->planned ? o->planned : "");
}

static void test_plan_and_open_list(void **state)
{
	struct store *st = open_ok(*state);
	char *answer = NULL, *err = NULL;
	struct seen v = {0};
	int status = 0;

	store_set_node(st, "NODEAAAAAAAAAAAAAAAA");
	assert_int_equal(claim(st, "alice", "h1", 1000, &status, &answer), STORE_IDEM_NEW);
	assert_int_equal(store_idem_open_list(st, on_open, &v, &err), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.account, "alice");
	assert_string_equal(v.key, "key-1");
	assert_false(v.has_plan);
	assert_int_equal(store_idem_plan(st, "alice", "key-1", "{\"messages\":[1]}", &err), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(store_idem_open_list(st, on_open, &v, &err), 0);
	assert_true(v.has_plan);
	assert_string_equal(v.planned, "{\"messages\":[1]}");
	/* answered: no longer open, and a plan cannot change it */
	assert_int_equal(store_idem_finish(st, "alice", "key-1", 200, "{}", &err), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(store_idem_open_list(st, on_open, &v, &err), 0);
	assert_int_equal(v.n, 0);
	/* released and claimed again (after the ttl): no plan of the old claim */
	assert_int_equal(claim(st, "alice", "h1", 1000 + 86401, &status, &answer), STORE_IDEM_NEW);
	assert_int_equal(store_idem_open_list(st, on_open, &v, &err), 0);
	assert_int_equal(v.n, 1);
	assert_false(v.has_plan);
	store_close(st);
}

/* A claim records its node: another node's start does not list it. */
static void test_open_list_is_this_nodes(void **state)
{
	struct store *st = open_ok(*state);
	char *answer = NULL, *err = NULL;
	struct seen v = {0};
	int status = 0;

	store_set_node(st, "NODEAAAAAAAAAAAAAAAA");
	assert_int_equal(claim(st, "alice", "h1", 1000, &status, &answer), STORE_IDEM_NEW);
	store_set_node(st, "NODEBBBBBBBBBBBBBBBB");
	assert_int_equal(store_idem_open_list(st, on_open, &v, &err), 0);
	assert_int_equal(v.n, 0);
	/* node B's request with the same key finds it in flight */
	assert_int_equal(claim(st, "alice", "h1", 1001, &status, &answer), STORE_IDEM_BUSY);
	store_set_node(st, "NODEAAAAAAAAAAAAAAAA");
	assert_int_equal(store_idem_open_list(st, on_open, &v, &err), 0);
	assert_int_equal(v.n, 1);
	assert_string_equal(v.key, "key-1");
	store_close(st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_claim_busy_done_mismatch), T(test_ttl_and_prune),           T(test_release),
	    T(test_plan_and_open_list),       T(test_open_list_is_this_nodes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
