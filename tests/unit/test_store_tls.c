/*
 * Unit tests for store_tls.c (migration 5): MTA-STS policies replaced
 * whole, and those due for a refresh, TLSA records seen per host, TLS-RPT counts that add up per
 * key, the periods due (not done, ended), a report's delivery per rua across a reopen (sent once),
 * pruning, and account pools. Each test gets a fresh temporary data directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"
#include "util/util.h"

#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("tls");

	*state = f;
	return f ? 0 : -1;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static void test_sts(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_sts p = {"Example.COM", "id1", "enforce", "version: STSv1\n",
	                      86400,         100,   86500};
	struct store_sts got;
	char *err = NULL;

	assert_int_equal(store_sts_get(st, "example.com", &got, &err), 0);
	assert_int_equal(store_sts_put(st, &p, &err), 0);
	p.id = "id2";
	p.mode = "testing";
	p.expires_at = 999;
	assert_int_equal(store_sts_put(st, &p, &err), 0); /* replaced, one row */
	store_close(st);
	st = open_ok(f); /* it survives a restart */
	assert_int_equal(store_sts_get(st, "EXAMPLE.com", &got, &err), 1);
	assert_string_equal(got.domain, "example.com");
	assert_string_equal(got.id, "id2");
	assert_string_equal(got.mode, "testing");
	assert_string_equal(got.policy, "version: STSv1\n");
	assert_int_equal(got.max_age, 86400);
	assert_int_equal(got.fetched_at, 100);
	assert_int_equal(got.expires_at, 999);
	store_sts_clear(&got);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM sts_policies"), 1);
	p.mode = "strict"; /* the CHECK constraint */
	assert_int_equal(store_sts_put(st, &p, &err), -1);
	assert_non_null(err);
	free(err);
	store_close(st);
}

/* The policies to refresh: past half of max_age, not expired, soonest
 * expiry first, at most max. */
static void test_sts_due(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_sts young = {"young.test", "i", "enforce", "p", 100, 1000, 1100};
	struct store_sts due1 = {"due1.test", "i", "enforce", "p", 100, 940, 1040};
	struct store_sts due2 = {"due2.test", "i", "testing", "p", 100, 920, 1020};
	struct store_sts gone = {"gone.test", "i", "enforce", "p", 100, 800, 900};
	char **v, *err = NULL;
	size_t n;

	assert_int_equal(store_sts_due(st, 1000, 10, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	store_strv_free(v, n);
	assert_int_equal(store_sts_put(st, &young, &err), 0);
	assert_int_equal(store_sts_put(st, &due1, &err), 0);
	assert_int_equal(store_sts_put(st, &due2, &err), 0);
	assert_int_equal(store_sts_put(st, &gone, &err), 0);
	assert_int_equal(store_sts_due(st, 1000, 10, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "due2.test");
	assert_string_equal(v[1], "due1.test");
	store_strv_free(v, n);
	assert_int_equal(store_sts_due(st, 1000, 1, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "due2.test");
	store_strv_free(v, n);
	assert_int_equal(store_sts_due(st, 1050, 10, &v, &n, &err), 0); /* young due, rest gone */
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "young.test");
	store_strv_free(v, n);
	store_close(st);
}

static void test_tlsa(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_tlsa a = {"MX1.example.com", "example.com", "usable", "3 1 1 AB", 5};
	struct store_tlsa b = {"mx2.example.com", "example.com", "failed", "", 6};
	struct store_tlsa c = {"mx.other.test", "other.test", "none", "", 7};
	struct store_tlsa *v;
	size_t n;
	char *err = NULL;

	assert_int_equal(store_tlsa_put(st, &b, &err), 0);
	assert_int_equal(store_tlsa_put(st, &a, &err), 0);
	assert_int_equal(store_tlsa_put(st, &c, &err), 0);
	a.state = "unusable";
	assert_int_equal(store_tlsa_put(st, &a, &err), 0);
	assert_int_equal(store_tlsa_list(st, "example.com", &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].host, "mx1.example.com");
	assert_string_equal(v[0].state, "unusable");
	assert_string_equal(v[0].records, "3 1 1 AB");
	assert_string_equal(v[1].state, "failed");
	store_tlsa_free(v, n);
	store_close(st);
}

#define DAY 86400

static struct store_tlsrpt_count cnt(const char *domain, int64_t start, const char *result,
                                     uint64_t n)
{
	struct store_tlsrpt_count c = {domain, start,  start + DAY, "{}", result,
	                               "",     "MX.a", "192.0.2.1", n};
	return c;
}

static void test_tlsrpt_counts(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_tlsrpt_count c[] = {cnt("a.test", DAY, "", 2), cnt("a.test", DAY, "", 3),
	                                 cnt("a.test", DAY, "certificate-expired", 1),
	                                 cnt("a.test", 2 * DAY, "", 1), cnt("b.test", DAY, "", 0)};
	struct store_tlsrpt_row *r;
	size_t n;
	char *err = NULL;

	assert_int_equal(store_tlsrpt_add(st, c, 5, &err), 0);
	assert_int_equal(store_tlsrpt_rows(st, "a.test", DAY, &r, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].result, "");
	assert_int_equal(r[0].n, 5); /* added up */
	assert_string_equal(r[1].result, "certificate-expired");
	assert_string_equal(r[1].mx_host, "mx.a");
	store_tlsrpt_free(r, n);
	assert_int_equal(store_tlsrpt_rows(st, "a.test", 0, &r, &n, &err), 0); /* the latest */
	assert_int_equal(n, 1);
	assert_int_equal(r[0].start, 2 * DAY);
	store_tlsrpt_free(r, n);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM tls_rpt_counts WHERE domain='b.test'"),
	                 0);
	c[0].policy = NULL; /* an invalid entry fails the batch before it starts */
	assert_int_equal(store_tlsrpt_add(st, c, 5, &err), -1);
	free(err);
	store_close(st);
}

static void test_tlsrpt_due_and_sent_once(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_tlsrpt_count c[] = {cnt("a.test", DAY, "", 1), cnt("b.test", DAY, "", 1),
	                                 cnt("a.test", 3 * DAY, "", 1)};
	struct store_tlsrpt_row *r;
	const char *state_s;
	int attempts;
	int64_t at;
	size_t n;
	char *err = NULL;

	assert_int_equal(store_tlsrpt_add(st, c, 3, &err), 0);
	assert_int_equal(store_tlsrpt_due(st, 2 * DAY, 10, &r, &n, &err), 0);
	assert_int_equal(n, 2); /* the third period has not ended */
	assert_string_equal(r[0].domain, "a.test");
	assert_string_equal(r[1].domain, "b.test");
	store_tlsrpt_free(r, n);
	assert_int_equal(
	    store_tlsrpt_sent_get(st, "a.test", DAY, "mailto:x@y", &state_s, &attempts, &at, &err),
	    0);
	assert_string_equal(state_s, "pending");
	assert_int_equal(attempts, 0);
	assert_int_equal(
	    store_tlsrpt_sent_set(st, "a.test", DAY, "mailto:x@y", "pending", 50, &err), 0);
	assert_int_equal(store_tlsrpt_sent_set(st, "a.test", DAY, "mailto:x@y", "sent", 60, &err),
	                 0);
	store_close(st);
	st = open_ok(f);
	assert_int_equal(
	    store_tlsrpt_sent_get(st, "a.test", DAY, "mailto:x@y", &state_s, &attempts, &at, &err),
	    0);
	assert_string_equal(state_s, "sent");
	assert_int_equal(attempts, 1);
	assert_int_equal(at, 60);
	assert_int_equal(store_tlsrpt_done(st, "a.test", DAY, 70, 0, &err), 0);
	assert_int_equal(store_tlsrpt_due(st, 2 * DAY, 10, &r, &n, &err), 0);
	assert_int_equal(n, 1); /* a.test's is done */
	assert_string_equal(r[0].domain, "b.test");
	store_tlsrpt_free(r, n);
	/* pruning: what ended before keep_after goes */
	assert_int_equal(store_tlsrpt_done(st, "b.test", DAY, 80, 3 * DAY, &err), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM tls_rpt_counts"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM tls_rpt_sent"), 0);
	store_close(st);
}

static void test_pools(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char **names, **pools, *err = NULL;
	size_t n;

	assert_int_equal(store_user_add(st, "bob", "pw", NULL, 0, &err), 0);
	assert_int_equal(store_user_set_pool(st, "bob", "mk-1", &err), 0);
	assert_int_equal(store_user_set_pool(st, "default", "tx", &err), 0);
	assert_int_equal(store_account_pools(st, &names, &pools, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "bob");
	assert_string_equal(pools[0], "mk-1");
	store_pools_free(names, pools, n);
	assert_int_equal(store_user_set_pool(st, "bob", NULL, &err), 0);
	assert_int_equal(store_account_pools(st, &names, &pools, &n, &err), 0);
	assert_int_equal(n, 1);
	store_pools_free(names, pools, n);
	assert_int_equal(store_user_set_pool(st, "nobody", "x", &err), -1);
	assert_string_equal(err, "no account 'nobody'");
	free(err);
	err = NULL;
	assert_int_equal(store_user_set_pool(st, "bob", "bad pool", &err), -1);
	assert_non_null(err);
	free(err);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sts_due, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tlsa, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tlsrpt_counts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tlsrpt_due_and_sent_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pools, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
