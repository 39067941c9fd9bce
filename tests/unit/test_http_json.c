/*
 * Unit tests for http/http_json: request bodies and field accessors, the
 * problem each rejection reports (code, field, message), and times.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "http/http_api.h"
#include "util/util.h"

static json_t *body(const char *s, struct http_problem *p)
{
	memset(p, 0, sizeof(*p));
	return http_json_body(s, strlen(s), p);
}

static void assert_problem(const struct http_problem *p, const char *code, const char *field,
                           const char *message)
{
	assert_int_equal(p->status, 400);
	assert_string_equal(p->code, code);
	assert_string_equal(p->field, field);
	if (!strstr(p->message, message))
		fail_msg("message '%s' lacks '%s'", p->message, message);
}

static void test_body_errors(void **state)
{
	struct http_problem p;
	struct buf deep;

	(void)state;
	assert_null(body("", &p));
	assert_problem(&p, "malformed_json", "", "empty body");
	assert_null(body("{\n  \"a\": 1,\n  \"b\": }", &p));
	assert_problem(&p, "malformed_json", "", "line 3, column");
	assert_null(body("[1, 2]", &p));
	assert_problem(&p, "malformed_json", "", "expected a JSON object");
	assert_null(body("{\"a\": 1, \"a\": 2}", &p));
	assert_problem(&p, "malformed_json", "", "duplicate");
	buf_init(&deep);
	buf_puts(&deep, "{\"a\":");
	for (int i = 0; i < 100; i++)
		buf_puts(&deep, "[");
	assert_null(body(deep.data, &p));
	assert_problem(&p, "malformed_json", "", "nested deeper");
	buf_free(&deep);
	/* Brackets inside strings are not nesting. */
	json_decref(body(
	    "{\"a\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}",
	    &p));
	{
		json_t *empty = body("{}", &p);
		assert_non_null(empty);
		json_decref(empty);
	}
}

static void test_strings(void **state)
{
	struct http_problem p;
	json_t *o = body("{\"name\": \"ci\", \"n\": 5, \"empty\": \"\", \"none\": null}", &p);
	const char *v = "unchanged";

	(void)state;
	assert_int_equal(http_json_string(o, "name", 1, 1, 10, &v, &p), 0);
	assert_string_equal(v, "ci");
	assert_int_equal(http_json_string(o, "absent", 0, 1, 10, &v, &p), 0);
	assert_string_equal(v, "ci");
	assert_int_equal(http_json_string(o, "none", 0, 1, 10, &v, &p), 0);
	assert_int_equal(http_json_string(o, "absent", 1, 1, 10, &v, &p), -1);
	assert_problem(&p, "invalid_field", "absent", "absent: required");
	assert_int_equal(http_json_string(o, "n", 1, 1, 10, &v, &p), -1);
	assert_problem(&p, "invalid_field", "n", "n: expected a string of 1 to 10 bytes");
	assert_int_equal(http_json_string(o, "empty", 1, 1, 10, &v, &p), -1);
	assert_int_equal(http_json_string(o, "name", 1, 0, 1, &v, &p), -1);
	json_decref(o);
	/* A NUL inside a string never reaches a field. */
	assert_null(body("{\"nul\": \"a\\u0000b\"}", &p));
	assert_problem(&p, "malformed_json", "", "column");
}

static void test_numbers_bools_arrays(void **state)
{
	struct http_problem p;
	json_t *o = body("{\"n\": 5, \"f\": 1.5, \"b\": true, \"to\": [\"a@b\", \"c@d\"],"
	                 " \"bad\": [\"a\", 3], \"s\": \"x\"}",
	                 &p),
	       *arr = NULL;
	int64_t n = 0;
	int b = 0;

	(void)state;
	assert_int_equal(http_json_int(o, "n", 1, 1, 10, &n, &p), 0);
	assert_int_equal(n, 5);
	assert_int_equal(http_json_int(o, "n", 1, 6, 10, &n, &p), -1);
	assert_problem(&p, "invalid_field", "n", "expected an integer from 6 to 10");
	assert_int_equal(http_json_int(o, "f", 1, 0, 10, &n, &p), -1);
	assert_int_equal(http_json_bool(o, "b", 1, &b, &p), 0);
	assert_int_equal(b, 1);
	assert_int_equal(http_json_bool(o, "s", 1, &b, &p), -1);
	assert_problem(&p, "invalid_field", "s", "s: expected true or false");
	assert_int_equal(http_json_strings(o, "to", 1, 5, 100, &arr, &p), 0);
	assert_int_equal(json_array_size(arr), 2);
	assert_int_equal(http_json_strings(o, "to", 1, 1, 100, &arr, &p), -1);
	assert_problem(&p, "invalid_field", "to", "to: expected an array of at most 1 strings");
	assert_int_equal(http_json_strings(o, "bad", 1, 5, 100, &arr, &p), -1);
	assert_problem(&p, "invalid_field", "bad", "item 1");
	assert_int_equal(http_json_strings(o, "s", 1, 5, 100, &arr, &p), -1);
	json_decref(o);
}

static void test_known_fields(void **state)
{
	static const char *const KNOWN[] = {"name", "admin", NULL};
	struct http_problem p;
	json_t *o = body("{\"name\": \"x\", \"colour\": 1}", &p);

	(void)state;
	assert_int_equal(http_json_known(o, KNOWN, &p), -1);
	assert_problem(&p, "invalid_field", "colour", "colour: unknown field");
	json_decref(o);
	o = body("{\"name\": \"x\"}", &p);
	assert_int_equal(http_json_known(o, KNOWN, &p), 0);
	json_decref(o);
}

static void test_param_problem(void **state)
{
	struct http_problem p;

	(void)state;
	http_problem_param(&p, "limit", "expected %d to %d", 1, 100);
	assert_problem(&p, "invalid_parameter", "limit", "limit: expected 1 to 100");
}

static void test_time(void **state)
{
	json_t *t = http_json_time(1700000000);

	(void)state;
	assert_string_equal(json_string_value(t), "2023-11-14T22:13:20Z");
	json_decref(t);
	assert_true(json_is_null(http_json_time(0)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_body_errors),          cmocka_unit_test(test_strings),
	    cmocka_unit_test(test_numbers_bools_arrays), cmocka_unit_test(test_known_fields),
	    cmocka_unit_test(test_param_problem),        cmocka_unit_test(test_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
