/* util's IDs: well-formed, and the milliseconds they were made at (the
 * log's delay= is measured from a queue ID's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/util.h"

static void test_time_of_a_new_id(void **state)
{
	char id[ID_LEN + 1];

	(void)state;
	clock_set_override_ms(1765000000123ULL);
	id_new(id);
	clock_set_override_ms(0);
	assert_true(id_valid(id));
	assert_int_equal(id_time_ms(id), 1765000000123ULL);
}

static void test_time_of_a_known_id(void **state)
{
	(void)state;
	/* 1L94W0FC0 in base 32: 2026-12-06T05:25:13.728Z */
	assert_int_equal(id_time_ms("1L94W0FC000061K5"), 1796534713728ULL);
	assert_int_equal(id_time_ms("0000000000000000"), 0);
}

static void test_time_of_what_is_not_an_id(void **state)
{
	(void)state;
	assert_int_equal(id_time_ms(NULL), 0);
	assert_int_equal(id_time_ms(""), 0);
	assert_int_equal(id_time_ms("1L94W0FC000061K"), 0);   /* short */
	assert_int_equal(id_time_ms("1L94W0FC000061K55"), 0); /* long */
	assert_int_equal(id_time_ms("1L94W0FC000061KU"), 0);  /* U is not a digit */
	assert_int_equal(id_time_ms("1l94w0fc000061k5"), 0);  /* lower case */
}

/* clock_now_s(): the wall clock's whole seconds, the override's too. */
static void test_clock_now_s(void **state)
{
	(void)state;
	clock_set_override_ms(1765000000999ULL);
	assert_int_equal(clock_now_s(), 1765000000);
	clock_set_override_ms(0);
	assert_true(clock_now_s() > 1765000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_time_of_a_new_id),
	    cmocka_unit_test(test_time_of_a_known_id),
	    cmocka_unit_test(test_time_of_what_is_not_an_id),
	    cmocka_unit_test(test_clock_now_s),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
