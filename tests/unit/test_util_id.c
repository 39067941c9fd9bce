/* util's IDs: well-formed, the milliseconds they were made at (the log's
 * delay= is measured from a queue ID's), and unique across nodes. */
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

/* The uniqueness rule: IDs made in the same millisecond with the same
 * counter (two nodes started together) differ when the node tags differ,
 * and the time and tag read back. */
static void test_nodes_never_share_an_id(void **state)
{
	const uint64_t ms = 1796534713728ULL;
	const uint32_t counters[] = {0, 1, 0xFFFFF, 0x12345};
	char a[ID_LEN + 1], b[ID_LEN + 1];

	(void)state;
	for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
		for (uint32_t t = 0; t <= ID_NODE_MAX; t++) {
			id_make(a, ms, t, counters[c]);
			id_make(b, ms, (t + 1) & ID_NODE_MAX, counters[c]);
			assert_true(id_valid(a));
			assert_string_not_equal(a, b);
			assert_int_equal(id_time_ms(a), ms);
			assert_int_equal(id_node(a), (int32_t)t);
		}
	}
	/* one node, one millisecond: the counter tells them apart */
	id_make(a, ms, 7, 41);
	id_make(b, ms, 7, 42);
	assert_string_not_equal(a, b);
	assert_true(strcmp(a, b) < 0);
}

/* A process given its node's tag puts it in every ID it makes. */
static void test_new_ids_carry_the_node(void **state)
{
	char node[NODE_ID_LEN + 1], id[ID_LEN + 1], prev[ID_LEN + 1] = "";

	(void)state;
	node_id_new(node);
	assert_true(node_id_valid(node));
	id_set_node((uint32_t)node_id_tag(node));
	for (int i = 0; i < 1000; i++) {
		id_new(id);
		assert_int_equal(id_node(id), node_id_tag(node));
		assert_string_not_equal(id, prev);
		memcpy(prev, id, sizeof(id));
	}
}

/* Node IDs as DATA_DIR/node-id holds them. */
static void test_node_id_form(void **state)
{
	(void)state;
	assert_true(node_id_valid("1L94W0FC000061K5ABCD"));
	assert_int_equal(node_id_tag("1L94W0FC000061K5ABCD"), 1 << 10 | 20 << 5 | 9);
	assert_false(node_id_valid("1L94W0FC000061K5ABC"));   /* short */
	assert_false(node_id_valid("1L94W0FC000061K5ABCDE")); /* long */
	assert_false(node_id_valid("1L94W0FC000061K5ABCI"));  /* I is not a digit */
	assert_int_equal(node_id_tag("node-1"), -1);
	assert_int_equal(node_id_tag(NULL), -1);
	assert_int_equal(id_node("1L94W0FC000061K"), -1);
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
	    cmocka_unit_test(test_nodes_never_share_an_id),
	    cmocka_unit_test(test_new_ids_carry_the_node),
	    cmocka_unit_test(test_node_id_form),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
