/*
 * Unit tests for tmpl/tmpl_js (PURE): the JavaScript rules the renderer
 * copies from mustache.js: RegExp \s, Number.prototype.toString, the
 * properties of arrays and strings (UTF-16 lengths and indexes) and
 * truthiness. The expected strings are what node prints for each value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "tmpl/tmpl_int.h"
#include "util/util.h"

static void test_space(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} rows[] = {
	    {" ", 1},
	    {"\t", 1},
	    {"\n", 1},
	    {"\v", 1},
	    {"\f", 1},
	    {"\r", 1},
	    {"\xC2\xA0", 2},
	    {"\xE1\x9A\x80", 3},
	    {"\xE2\x80\x80", 3},
	    {"\xE2\x80\x8A", 3},
	    {"\xE2\x80\xA8", 3},
	    {"\xE2\x80\xA9", 3},
	    {"\xE2\x80\xAF", 3},
	    {"\xE2\x81\x9F", 3},
	    {"\xE3\x80\x80", 3},
	    {"\xEF\xBB\xBF", 3},
	    /* not whitespace: letters, U+200B, U+0085, U+180E, U+2060, truncated */
	    {"a", 0},
	    {"\xE2\x80\x8B", 0},
	    {"\xC2\x85", 0},
	    {"\xE1\xA0\x8E", 0},
	    {"\xE2\x81\xA0", 0},
	    {"\x00", 0},
	    {"\xC2", 0},
	    {"\xE2\x80\x7F", 0},
	};
	size_t i;

	for (i = 0; i < ARRAY_LEN(rows); i++) {
		size_t n = rows[i].s[0] ? strlen(rows[i].s) : 1;
		assert_int_equal(js_space_len(rows[i].s, n), rows[i].len);
	}
	/* a sequence cut by the end of the input is not whitespace */
	assert_int_equal(js_space_len("\xE3\x80\x80", 2), 0);
	assert_int_equal(js_space_len(" ", 0), 0);
}

static void test_number(void **state)
{
	static const struct {
		double d;
		const char *s;
	} rows[] = {
	    {0, "0"},
	    {-0.0, "0"},
	    {1, "1"},
	    {-1, "-1"},
	    {1.21, "1.21"},
	    {0.1, "0.1"},
	    {0.30000000000000004, "0.30000000000000004"},
	    {100, "100"},
	    {123456789, "123456789"},
	    {1e20, "100000000000000000000"},
	    {1e21, "1e+21"},
	    {1.5e21, "1.5e+21"},
	    {123456789012345680000.0, "123456789012345680000"},
	    {0.000001, "0.000001"},
	    {1e-7, "1e-7"},
	    {1.5e-7, "1.5e-7"},
	    {-2.5e-10, "-2.5e-10"},
	    {9007199254740993.0, "9007199254740992"},
	    {9223372036854775807.0, "9223372036854776000"},
	    {1.7976931348623157e308, "1.7976931348623157e+308"},
	    {5e-324, "5e-324"},
	    {3.141592653589793, "3.141592653589793"},
	    {2.0 / 3.0, "0.6666666666666666"},
	    {1234.5678, "1234.5678"},
	};
	char out[32];
	size_t i;

	for (i = 0; i < ARRAY_LEN(rows); i++) {
		js_number(rows[i].d, out);
		assert_string_equal(out, rows[i].s);
	}
	js_number(NAN, out);
	assert_string_equal(out, "NaN");
	js_number(INFINITY, out);
	assert_string_equal(out, "Infinity");
	js_number(-INFINITY, out);
	assert_string_equal(out, "-Infinity");
}

static struct jv json_v(const json_t *j)
{
	struct jv v = {.kind = JV_JSON, .j = j};
	return v;
}

static void test_array_props(void **state)
{
	json_t *a = json_pack("[s, i, n]", "x", 7);
	struct jv v = json_v(a), out;

	assert_int_equal(jv_prop(&v, "length", 6, 0, &out), 1);
	assert_int_equal(out.kind, JV_NUM);
	assert_true(out.num == 3);
	assert_int_equal(jv_prop(&v, "1", 1, 0, &out), 1);
	assert_int_equal(json_integer_value(out.j), 7);
	/* null elements are there (hit), only their value is null */
	assert_int_equal(jv_prop(&v, "2", 1, 0, &out), 1);
	assert_true(jv_nullish(&out));
	/* past the end and non-canonical indexes are absent */
	assert_int_equal(jv_prop(&v, "3", 1, 0, &out), 0);
	assert_int_equal(out.kind, JV_UNDEF);
	assert_int_equal(jv_prop(&v, "01", 2, 0, &out), 0);
	assert_int_equal(jv_prop(&v, "-0", 2, 0, &out), 0);
	assert_int_equal(jv_prop(&v, "4294967295", 10, 0, &out), 0);
	assert_int_equal(jv_prop(&v, "99999999999", 11, 0, &out), 0);
	assert_int_equal(jv_prop(&v, "", 0, 0, &out), 0);
	/* inherited JavaScript members are not emulated */
	assert_int_equal(jv_prop(&v, "map", 3, 0, &out), 0);
	json_decref(a);
}

static void test_string_props(void **state)
{
	/* "a", U+1F600 (two UTF-16 units), "\xC3\xA9" */
	json_t *s = json_string("a\xF0\x9F\x98\x80\xC3\xA9");
	struct jv v = json_v(s), out, out2;

	/* a string has properties only when asked as a primitive */
	assert_int_equal(jv_prop(&v, "length", 6, 0, &out), 0);
	assert_int_equal(jv_prop(&v, "length", 6, 1, &out), 1);
	assert_true(out.num == 4);
	assert_int_equal(jv_prop(&v, "0", 1, 1, &out), 1);
	assert_int_equal(out.kind, JV_CHAR);
	assert_memory_equal(out.ch, "a", 1);
	assert_int_equal(jv_prop(&v, "1", 1, 1, &out), 1); /* half a surrogate pair */
	assert_int_equal(out.ch_len, 3);
	assert_memory_equal(out.ch, "\xEF\xBF\xBD", 3);
	assert_int_equal(jv_prop(&v, "3", 1, 1, &out), 1);
	assert_memory_equal(out.ch, "\xC3\xA9", 2);
	assert_int_equal(jv_prop(&v, "4", 1, 1, &out), 0);
	/* a character is a one-unit string: its own "0" and "length" */
	assert_int_equal(jv_prop(&out, "0", 1, 1, &out2), 0);
	assert_int_equal(jv_prop(&v, "3", 1, 1, &out), 1);
	assert_int_equal(jv_prop(&out, "0", 1, 1, &out2), 1);
	assert_memory_equal(out2.ch, "\xC3\xA9", 2);
	assert_int_equal(jv_prop(&out, "length", 6, 1, &out2), 1);
	assert_true(out2.num == 1);
	/* out may be the value itself */
	assert_int_equal(jv_prop(&out, "0", 1, 1, &out), 1);
	assert_memory_equal(out.ch, "\xC3\xA9", 2);
	json_decref(s);
}

static void test_object_and_scalar_props(void **state)
{
	json_t *o = json_pack("{s:i, s:s}", "", 1, "a.b", "x");
	json_t *n = json_integer(5);
	struct jv v = json_v(o), nv = json_v(n), undef = {.kind = JV_UNDEF}, out;

	assert_int_equal(jv_prop(&v, "", 0, 0, &out), 1);
	assert_int_equal(jv_prop(&v, "a.b", 3, 0, &out), 1);
	assert_int_equal(jv_prop(&v, "a", 1, 0, &out), 0);
	assert_int_equal(jv_prop(&v, "toString", 8, 0, &out), 0);
	assert_int_equal(jv_prop(&nv, "x", 1, 1, &out), 0);
	assert_int_equal(jv_prop(&undef, "x", 1, 1, &out), 0);
	json_decref(o);
	json_decref(n);
}

static void test_truthy(void **state)
{
	json_t *vals = json_pack("[n, b, b, i, i, f, f, s, s, s, [], {}]", 0, 1, 0, 7, 0.0, -0.5,
	                         "", "0", "false");
	static const int want[] = {0, 0, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1};
	struct jv undef = {.kind = JV_UNDEF}, num0 = {.kind = JV_NUM, .num = 0};
	struct jv nan = {.kind = JV_NUM, .num = NAN}, ch = {.kind = JV_CHAR, .ch_len = 1};
	size_t i;

	for (i = 0; i < ARRAY_LEN(want); i++) {
		struct jv v = json_v(json_array_get(vals, i));
		assert_int_equal(jv_truthy(&v), want[i]);
	}
	assert_false(jv_truthy(&undef));
	assert_false(jv_truthy(&num0));
	assert_false(jv_truthy(&nan));
	assert_true(jv_truthy(&ch));
	json_decref(vals);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_space),
	    cmocka_unit_test(test_number),
	    cmocka_unit_test(test_array_props),
	    cmocka_unit_test(test_string_props),
	    cmocka_unit_test(test_object_and_scalar_props),
	    cmocka_unit_test(test_truthy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
