/*
 * Unit tests for log/log_json (PURE): key=value fields to one JSON object,
 * values unquoted as log_q() quotes them, words that are not key=value into
 * "msg", bytes that are not UTF-8 as \xHH, and a cut that still leaves one
 * whole object. Every output is parsed back with jansson.
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

#include "log/log.h"
#include "log/log_json.h"
#include "util/util.h"

#define T0 "2025-11-28T00:00:00.000Z"

/* The object for fields, parsed; fails the test if it is not JSON. */
static json_t *convert(const char *fields, size_t cap, size_t *len)
{
	char *out = malloc(cap);
	json_error_t err;
	json_t *o;

	*len = log_json_line(out, cap, T0, "info", fields);
	assert_true(*len < cap);
	assert_int_equal(strlen(out), *len);
	assert_null(strchr(out, '\n'));
	o = json_loads(out, 0, &err);
	if (!o)
		fail_msg("not JSON (%s): %s", err.text, out);
	free(out);
	return o;
}

static const char *str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		fail_msg("no string member %s", key);
	return json_string_value(v);
}

static void test_plain_fields(void **state)
{
	char out[512];
	size_t n = log_json_line(out, sizeof(out), T0, "warning",
	                         "session=ABC event=connect ip=127.0.0.1 n=3");

	assert_string_equal(out, "{\"time\":\"" T0 "\",\"level\":\"warning\",\"session\":\"ABC\","
	                         "\"event\":\"connect\",\"ip\":\"127.0.0.1\",\"n\":\"3\"}");
	assert_int_equal(n, strlen(out));
}

/* What log_q() makes of a value comes back as the value. */
static void test_quoted_values_round_trip(void **state)
{
	const char *values[] = {"two words",
	                        "say \"hi\"",
	                        "back\\slash",
	                        "ctl\x01\x7f end",
	                        "",
	                        "a=b",
	                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xaf"};
	size_t n;

	for (size_t i = 0; i < ARRAY_LEN(values); i++) {
		char *fields = xasprintf("queue=Q reply=%s to=<x@y>", log_q(values[i]));
		json_t *o = convert(fields, 4096, &n);
		assert_string_equal(str(o, "reply"), values[i]);
		assert_string_equal(str(o, "to"), "<x@y>");
		assert_string_equal(str(o, "queue"), "Q");
		json_decref(o);
		free(fields);
	}
}

static void test_words_that_are_not_fields_go_to_msg(void **state)
{
	size_t n;
	json_t *o = convert("cannot open file event=x =y and more", 1024, &n);

	assert_string_equal(str(o, "event"), "x");
	assert_string_equal(str(o, "msg"), "cannot open file =y and more");
	assert_int_equal(json_object_size(o), 4);
	json_decref(o);
}

static void test_bytes_not_utf8_become_text(void **state)
{
	size_t n;
	/* a lone high byte, an overlong form, a surrogate, a cut sequence */
	json_t *o = convert("a=x\xffy b=\xc0\xaf c=\xed\xa0\x80 d=\xe2\x82", 1024, &n);

	assert_string_equal(str(o, "a"), "x\\xFFy");
	assert_string_equal(str(o, "b"), "\\xC0\\xAF");
	assert_string_equal(str(o, "c"), "\\xED\\xA0\\x80");
	assert_string_equal(str(o, "d"), "\\xE2\\x82");
	json_decref(o);
}

static void test_unterminated_quote_and_junk_after_quote(void **state)
{
	size_t n;
	json_t *o = convert("z=1 a=\"open to the end b=2", 1024, &n);

	assert_string_equal(str(o, "a"), "open to the end b=2");
	assert_null(json_object_get(o, "b"));
	json_decref(o);
	o = convert("b=\"x\"tail c=1", 1024, &n);
	assert_string_equal(str(o, "b"), "xtail");
	assert_string_equal(str(o, "c"), "1");
	json_decref(o);
}

/* A line too long for cap keeps whole members only and says so. */
static void test_cut_keeps_one_object(void **state)
{
	struct buf b;
	size_t n;
	json_t *o;

	buf_init(&b);
	for (int i = 0; i < 100; i++)
		buf_printf(&b, "k%d=\"%s\" ", i, "value with \x01 control");
	for (size_t cap = LOG_JSON_MIN_CAP; cap < 3000; cap += 37) {
		o = convert(b.data, cap, &n);
		assert_string_equal(str(o, "truncated"), "yes");
		assert_string_equal(str(o, "level"), "info");
		assert_string_equal(str(o, "k0"), "value with \x01 control");
		json_decref(o);
	}
	o = convert(b.data, 16384, &n);
	assert_null(json_object_get(o, "truncated"));
	assert_string_equal(str(o, "k99"), "value with \x01 control");
	json_decref(o);
	buf_free(&b);
}

static void test_level_names(void **state)
{
	assert_string_equal(log_level_name(LOG_DEBUG), "debug");
	assert_string_equal(log_level_name(LOG_INFO), "info");
	assert_string_equal(log_level_name(LOG_WARN), "warning");
	assert_string_equal(log_level_name(LOG_ERR), "error");
}

static void test_repeat_logs_first_then_once_a_minute_then_ok(void **state)
{
	struct log_repeat r = {0};
	unsigned long long n = 99;

	(void)state;
	assert_int_equal(log_repeat_ok(&r, &n), 0); /* nothing failed */
	assert_int_equal(n, 0);
	assert_int_equal(log_repeat_fail(&r, &n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(log_repeat_fail(&r, &n), 0); /* within the minute */
	assert_int_equal(log_repeat_fail(&r, &n), 0);
	r.last_ms -= LOG_REPEAT_MS; /* a minute later */
	assert_int_equal(log_repeat_fail(&r, &n), 1);
	assert_int_equal(n, 2); /* the two not logged */
	assert_int_equal(log_repeat_ok(&r, &n), 1);
	assert_int_equal(n, 4);
	assert_int_equal(log_repeat_ok(&r, &n), 0);   /* said once */
	assert_int_equal(log_repeat_fail(&r, &n), 1); /* a new run of failures: logged */
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_fields),
	    cmocka_unit_test(test_quoted_values_round_trip),
	    cmocka_unit_test(test_words_that_are_not_fields_go_to_msg),
	    cmocka_unit_test(test_bytes_not_utf8_become_text),
	    cmocka_unit_test(test_unterminated_quote_and_junk_after_quote),
	    cmocka_unit_test(test_cut_keeps_one_object),
	    cmocka_unit_test(test_level_names),
	    cmocka_unit_test(test_repeat_logs_first_then_once_a_minute_then_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
