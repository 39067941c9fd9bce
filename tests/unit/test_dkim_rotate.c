/*
 * Unit tests for dkim/dkim_rotate (PURE): state and algorithm names,
 * activation (pending -> active, the same algorithm's active keys ->
 * retired), which algorithms a rotation makes keys for, grace arithmetic
 * and new selectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dkim/dkim_rotate.h"
#include "util/util.h"

#define P   DKIM_STATE_PENDING
#define A   DKIM_STATE_ACTIVE
#define R   DKIM_STATE_RETIRED
#define RSA DKIM_ALGO_RSA2048
#define ED  DKIM_ALGO_ED25519

/* 2026-11-28 10:00:00 UTC */
#define NOW 1795860000

static void test_names(void **state)
{
	assert_string_equal(dkim_state_name(P), "pending");
	assert_string_equal(dkim_state_name(A), "active");
	assert_string_equal(dkim_state_name(R), "retired");
	assert_string_equal(dkim_state_name((enum dkim_state)7), "unknown");
	assert_int_equal(dkim_state_parse("retired"), R);
	assert_int_equal(dkim_state_parse("Active"), -1);
	assert_int_equal(dkim_state_parse(NULL), -1);
	assert_string_equal(dkim_algo_name(RSA), "rsa2048");
	assert_string_equal(dkim_algo_name(ED), "ed25519");
	assert_int_equal(dkim_algo_parse("ed25519"), ED);
	assert_int_equal(dkim_algo_parse("rsa"), -1);
	assert_int_equal(dkim_algo_parse("rsa4096"), -1);
	assert_string_equal(dkim_algo_k(RSA), "rsa");
	assert_string_equal(dkim_algo_k(ED), "ed25519");
	assert_string_equal(dkim_algo_sig(RSA), "rsa-sha256");
	assert_string_equal(dkim_algo_sig(ED), "ed25519-sha256");
}

static void test_activate_retires_same_algo(void **state)
{
	const struct dkim_key_state keys[] = {
	    {"old", RSA, A, 0}, {"older", RSA, R, 100}, {"ed", ED, A, 0},
	    {"new", RSA, P, 0}, {"ednew", ED, P, 0},
	};
	struct dkim_transition t[ARRAY_LEN(keys)];
	size_t n = dkim_rotation_activate(keys, ARRAY_LEN(keys), 3, NOW, t);

	assert_int_equal(n, 2);
	assert_int_equal(t[0].key, 3);
	assert_int_equal(t[0].from, P);
	assert_int_equal(t[0].to, A);
	assert_int_equal(t[0].at, NOW);
	/* the active rsa key goes; the retired one and the ed25519 key stay */
	assert_int_equal(t[1].key, 0);
	assert_int_equal(t[1].from, A);
	assert_int_equal(t[1].to, R);
	assert_int_equal(t[1].at, NOW);
}

static void test_activate_two_active(void **state)
{
	/* two active keys of one algorithm (two keygens): both retire */
	const struct dkim_key_state keys[] = {{"a", ED, A, 0}, {"b", ED, A, 0}, {"c", ED, P, 0}};
	struct dkim_transition t[3];

	assert_int_equal(dkim_rotation_activate(keys, 3, 2, NOW, t), 3);
	assert_int_equal(t[1].key, 0);
	assert_int_equal(t[2].key, 1);
}

static void test_activate_not_pending(void **state)
{
	const struct dkim_key_state keys[] = {{"a", RSA, A, 0}, {"b", RSA, R, 5}, {"c", RSA, P, 0}};
	struct dkim_transition t[3];

	assert_int_equal(dkim_rotation_activate(keys, 3, 0, NOW, t), 0);
	assert_int_equal(dkim_rotation_activate(keys, 3, 1, NOW, t), 0);
	assert_int_equal(dkim_rotation_activate(keys, 3, 3, NOW, t), 0); /* out of range */
	/* a pending key with nothing to replace just becomes active */
	assert_int_equal(dkim_rotation_activate(keys + 2, 1, 0, NOW, t), 1);
	assert_int_equal(t[0].to, A);
}

static void test_rotation_algos(void **state)
{
	const struct dkim_key_state dual[] = {{"a", RSA, A, 0}, {"b", ED, A, 0}, {"c", RSA, R, 1}};
	const struct dkim_key_state rsa[] = {{"a", RSA, A, 0}, {"c", ED, R, 1}};
	const struct dkim_key_state busy[] = {{"a", RSA, A, 0}, {"b", ED, A, 0}, {"n", ED, P, 0}};
	const struct dkim_key_state none[] = {{"a", RSA, R, 1}, {"n", ED, P, 0}};
	enum dkim_algo out[DKIM_ALGO__COUNT];
	const char *why = NULL;
	size_t blocker = 99;

	assert_int_equal(dkim_rotation_algos(dual, 3, -1, out, &why, &blocker), 2);
	assert_int_equal(out[0], RSA);
	assert_int_equal(out[1], ED);
	assert_int_equal(dkim_rotation_algos(dual, 3, ED, out, &why, &blocker), 1);
	assert_int_equal(out[0], ED);
	assert_int_equal(dkim_rotation_algos(rsa, 2, -1, out, &why, &blocker), 1);
	assert_int_equal(out[0], RSA);
	assert_int_equal(dkim_rotation_algos(rsa, 2, ED, out, &why, &blocker), -1);
	assert_string_equal(why, "no active key for that algorithm");
	/* a pending rotation blocks another of its algorithm, not of others */
	assert_int_equal(dkim_rotation_algos(busy, 3, -1, out, &why, &blocker), -1);
	assert_string_equal(why, "a rotation is pending");
	assert_int_equal(blocker, 2);
	assert_int_equal(dkim_rotation_algos(busy, 3, RSA, out, &why, &blocker), 1);
	assert_int_equal(dkim_rotation_algos(none, 2, -1, out, &why, &blocker), -1);
	assert_string_equal(why, "no active key");
	assert_int_equal(dkim_rotation_algos(NULL, 0, -1, out, &why, &blocker), -1);
}

static void test_publish_until(void **state)
{
	const struct dkim_key_state retired = {"a", RSA, R, NOW};
	const struct dkim_key_state active = {"a", RSA, A, 0};
	const struct dkim_key_state late = {"a", RSA, R, INT64_MAX - 10};

	assert_int_equal(dkim_publish_until(&retired, 7 * 86400), NOW + 7 * 86400);
	assert_int_equal(dkim_publish_until(&retired, 1), NOW + 1);
	assert_int_equal(dkim_publish_until(&active, 7 * 86400), -1);
	assert_int_equal(dkim_publish_until(&late, 7 * 86400), INT64_MAX); /* no overflow */
	assert_int_equal(dkim_publish_until(&late, UINT64_MAX), INT64_MAX);
}

static void test_selector_new(void **state)
{
	const char *taken[] = {"ph202611", "PH202611-2", "other", "ph202611-4"};
	char out[DKIM_SELECTOR_NEW_MAX];
	const char **many = xcalloc(1000, sizeof *many);

	assert_int_equal(dkim_selector_new(NOW, NULL, 0, out), 0);
	assert_string_equal(out, "ph202611");
	assert_int_equal(dkim_selector_new(NOW, taken, 1, out), 0);
	assert_string_equal(out, "ph202611-2");
	assert_int_equal(dkim_selector_new(NOW, taken, 4, out), 0);
	assert_string_equal(out, "ph202611-3"); /* case ignored: PH202611-2 is taken */
	/* January, and the first of a month at midnight UTC */
	assert_int_equal(dkim_selector_new(1767225600, NULL, 0, out), 0);
	assert_string_equal(out, "ph202601");
	assert_int_equal(dkim_selector_new(1767225599, NULL, 0, out), 0);
	assert_string_equal(out, "ph202512");
	/* every one of the month taken */
	many[0] = "ph202611";
	for (int i = 2; i <= 999; i++)
		many[i - 1] = xasprintf("ph202611-%d", i);
	assert_int_equal(dkim_selector_new(NOW, many, 999, out), -1);
	assert_int_equal(dkim_selector_new(NOW, many, 998, out), 0);
	assert_string_equal(out, "ph202611-999");
	for (int i = 1; i < 999; i++)
		free((char *)many[i]);
	free(many);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_activate_retires_same_algo),
	    cmocka_unit_test(test_activate_two_active),
	    cmocka_unit_test(test_activate_not_pending),
	    cmocka_unit_test(test_rotation_algos),
	    cmocka_unit_test(test_publish_until),
	    cmocka_unit_test(test_selector_new),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
