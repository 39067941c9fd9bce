/*
 * Unit tests for tmpl (PURE): compile errors with their positions, every
 * bound (template size, depth, output, steps) at and past its limit, the
 * warnings (missing names, partials, dedup, the cap), the two modes,
 * compile once / render many, concurrent renderings of one template, and
 * bytes the C interface allows that JSON does not (NUL). What mustache.js
 * would print for each template is checked by tests/e2e/test_tmpl_diff.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "tmpl/tmpl.h"
#include "util/util.h"

/* ---------- helpers ---------- */

static json_t *data_of(const char *json)
{
	json_error_t jerr;
	json_t *d = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

	assert_non_null(d);
	return d;
}

static struct tmpl *compile_ok(const char *text, const struct tmpl_limits *lim)
{
	struct tmpl_error err;
	struct tmpl *t = tmpl_compile(text, strlen(text), lim, &err);

	if (!t)
		fail_msg("compile \"%s\": %s", text, err.message);
	assert_int_equal(err.status, TMPL_OK);
	return t;
}

/* Render text with data (JSON) in mode; returns the output, caller frees. */
static char *render_str(const char *text, const char *json, enum tmpl_mode mode)
{
	struct tmpl *t = compile_ok(text, NULL);
	json_t *d = data_of(json);
	struct tmpl_result res;
	char *out;

	assert_int_equal(tmpl_render(t, d, mode, &res), 0);
	out = xstrndup(res.out.data, res.out.len);
	tmpl_result_free(&res);
	json_decref(d);
	tmpl_free(t);
	return out;
}

static void assert_renders(const char *text, const char *json, enum tmpl_mode mode,
                           const char *want)
{
	char *out = render_str(text, json, mode);

	assert_string_equal(out, want);
	free(out);
}

static void assert_compile_error(const char *text, enum tmpl_status st, unsigned line, unsigned col,
                                 const char *msg_part)
{
	struct tmpl_error err;
	struct tmpl_limits lim;

	tmpl_limits_default(&lim);
	lim.max_depth = 3;
	assert_null(tmpl_compile(text, strlen(text), &lim, &err));
	assert_int_equal(err.status, st);
	assert_int_equal(err.line, line);
	assert_int_equal(err.column, col);
	if (!strstr(err.message, msg_part))
		fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, err.message, msg_part);
}

/* ---------- compile errors ---------- */

static void test_syntax_errors(void **state)
{
	assert_compile_error("Hi {{name", TMPL_ERR_SYNTAX, 1, 4, "unclosed tag: no \"}}\"");
	assert_compile_error("a\nb {{{x}}", TMPL_ERR_SYNTAX, 2, 3, "unclosed tag");
	assert_compile_error("{{=<% %>=}}\n  <%x", TMPL_ERR_SYNTAX, 2, 3, "no \"%>\" after \"<%\"");
	assert_compile_error("{{#a}}\n{{#b}}\nx", TMPL_ERR_SYNTAX, 2, 1, "unclosed section \"b\"");
	assert_compile_error("{{#a}}x{{/b}}", TMPL_ERR_SYNTAX, 1, 8,
	                     "\"/b\" closes section \"a\" opened at line 1, column 1");
	assert_compile_error("x\n\n  {{/a}}", TMPL_ERR_SYNTAX, 3, 3,
	                     "\"/a\" closes no open section");
	assert_compile_error("{{=<%=}}", TMPL_ERR_SYNTAX, 1, 1, "bad delimiters \"<%\"");
	assert_compile_error("{{==}}", TMPL_ERR_SYNTAX, 1, 1, "bad delimiters \"\"");
	assert_compile_error("\xC3\xA9\xF0\x9F\x98\x80 {{", TMPL_ERR_SYNTAX, 1, 4, "unclosed tag");
	assert_compile_error("{{! no end", TMPL_ERR_SYNTAX, 1, 1, "unclosed tag");
	assert_compile_error("{{#a\nb}}{{/a\tb}}", TMPL_ERR_SYNTAX, 2, 4,
	                     "\"/a b\" closes section \"a b\" opened at line 1, column 1");
}

static void test_error_names_are_cut(void **state)
{
	char text[400];
	struct tmpl_error err;

	snprintf(text, sizeof(text), "{{#%0200d}}", 7);
	assert_null(tmpl_compile(text, strlen(text), NULL, &err));
	assert_int_equal(err.status, TMPL_ERR_SYNTAX);
	assert_true(strlen(err.message) < 100);
}

static void test_depth_bound(void **state)
{
	struct tmpl_limits lim;
	struct tmpl_error err;
	struct tmpl *t;

	tmpl_limits_default(&lim);
	lim.max_depth = 3;
	t = compile_ok("{{#a}}{{#a}}{{#a}}x{{/a}}{{/a}}{{/a}}", &lim);
	tmpl_free(t);
	assert_compile_error("{{#a}}{{^b}}{{#c}}\n  {{#d}}{{/d}}{{/c}}{{/b}}{{/a}}", TMPL_ERR_DEPTH,
	                     2, 3, "nested more than 3 deep");
	/* a caller's depth above the ceiling is lowered, not trusted */
	lim.max_depth = 1000000;
	assert_null(tmpl_compile("{{#a}}", 6, &lim, &err));
	assert_int_equal(err.status, TMPL_ERR_SYNTAX);
}

static void test_template_size_bound(void **state)
{
	struct tmpl_limits lim;
	struct tmpl_error err;
	struct tmpl *t;

	tmpl_limits_default(&lim);
	lim.max_template = 10;
	t = compile_ok("0123456789", &lim);
	tmpl_free(t);
	assert_null(tmpl_compile("0123456789a", 11, &lim, &err));
	assert_int_equal(err.status, TMPL_ERR_TEMPLATE);
	assert_int_equal(err.line, 0);
	assert_string_equal(err.message, "the template is 11 bytes, above the limit of 10");
	assert_string_equal(tmpl_status_name(err.status), "template_size");
}

/* ---------- rendering ---------- */

static void test_modes(void **state)
{
	const char *text = "{{s}}|{{{s}}}|{{&s}}";
	const char *json = "{\"s\": \"<a href='/x?a=1&b=`2`'>\\\"q\\\"</a>\"}";

	assert_renders(text, json, TMPL_HTML,
	               "&lt;a href&#x3D;&#39;&#x2F;x?a&#x3D;1&amp;b&#x3D;&#x60;2&#x60;&#39;&gt;"
	               "&quot;q&quot;&lt;&#x2F;a&gt;|<a href='/x?a=1&b=`2`'>\"q\"</a>|"
	               "<a href='/x?a=1&b=`2`'>\"q\"</a>");
	assert_renders(text, json, TMPL_TEXT,
	               "<a href='/x?a=1&b=`2`'>\"q\"</a>|<a href='/x?a=1&b=`2`'>\"q\"</a>|"
	               "<a href='/x?a=1&b=`2`'>\"q\"</a>");
}

static void test_values(void **state)
{
	assert_renders("{{i}} {{r}} {{t}} {{f}} [{{n}}] {{o}} {{a}}",
	               "{\"i\": 12, \"r\": 0.5, \"t\": true, \"f\": false, \"n\": null, "
	               "\"o\": {}, \"a\": [1, null, [2, \"<\"]]}",
	               TMPL_HTML, "12 0.5 true false [] [object Object] 1,,2,&lt;");
	assert_renders("{{#l}}({{.}}){{/l}}{{^e}}empty{{/e}}", "{\"l\": [1, \"x\"], \"e\": []}",
	               TMPL_HTML, "(1)(x)empty");
	assert_renders("{{#a}}{{b.c}}{{/a}}", "{\"a\": {\"b\": {}}, \"b\": {\"c\": \"up\"}}",
	               TMPL_HTML, "up");
	assert_renders("{{.}}", "\"root\"", TMPL_HTML, "root");
}

static void test_standalone_lines(void **state)
{
	assert_renders("a\n  {{#s}}  \nb\n  {{/s}}\r\nc", "{\"s\": true}", TMPL_HTML, "a\nb\nc");
	assert_renders("a\n  {{#s}}{{x}}\nb{{/s}}", "{\"s\": true, \"x\": 1}", TMPL_HTML,
	               "a\n  1\nb");
	/* text after a section is not part of it */
	assert_renders("[{{#s}}in{{/s}}out]", "{\"s\": false}", TMPL_HTML, "[out]");
}

static void test_null_data(void **state)
{
	struct tmpl *t = compile_ok("[{{a}}][{{.}}]{{#a}}x{{/a}}{{^a}}y{{/a}}", NULL);
	struct tmpl_result res;

	assert_int_equal(tmpl_render(t, NULL, TMPL_HTML, &res), 0);
	assert_string_equal(res.out.data, "[][]y");
	assert_int_equal(res.n_warnings, 1);
	tmpl_result_free(&res);
	tmpl_free(t);
}

static void test_nul_bytes(void **state)
{
	static const char text[] = "a\0b{{s}}";
	struct tmpl_error err;
	struct tmpl *t = tmpl_compile(text, sizeof(text) - 1, NULL, &err);
	json_t *d = data_of("{\"s\": \"x\\u0000<\"}");
	struct tmpl_result res;

	assert_non_null(t);
	assert_int_equal(tmpl_render(t, d, TMPL_HTML, &res), 0);
	assert_int_equal(res.out.len, 9);
	assert_memory_equal(res.out.data, "a\0bx\0&lt;", 9);
	tmpl_result_free(&res);
	json_decref(d);
	tmpl_free(t);
}

/* ---------- warnings ---------- */

static void test_warnings(void **state)
{
	struct tmpl *t =
	    compile_ok("{{a}}{{b.c}}{{a}}{{> part}}{{#x}}{{y}}{{/x}}{{^z}}{{/z}}{{>part}}"
	               "{{#no}}{{never}}{{/no}}{{n}}",
	               NULL);
	json_t *d = data_of("{\"b\": {}, \"x\": [1, 2], \"n\": null}");
	struct tmpl_result res;

	assert_int_equal(tmpl_render(t, d, TMPL_HTML, &res), 0);
	assert_int_equal(res.n_warnings, 4);
	assert_int_equal(res.warnings[0].kind, TMPL_WARN_MISSING);
	assert_string_equal(res.warnings[0].name, "a");
	assert_string_equal(res.warnings[1].name, "b.c");
	assert_int_equal(res.warnings[2].kind, TMPL_WARN_PARTIAL);
	assert_string_equal(res.warnings[2].name, "part");
	assert_string_equal(res.warnings[3].name, "y");
	assert_string_equal(tmpl_warning_kind_name(res.warnings[2].kind), "partial");
	assert_string_equal(tmpl_warning_kind_name(res.warnings[3].kind), "missing");
	assert_false(res.warnings_truncated);
	tmpl_result_free(&res);
	tmpl_result_free(&res); /* twice is safe */
	json_decref(d);
	tmpl_free(t);
}

static void test_warnings_bounded(void **state)
{
	struct buf text = {0};
	struct tmpl *t;
	struct tmpl_result res;
	size_t i;

	for (i = 0; i < TMPL_MAX_WARNINGS + 5; i++)
		buf_printf(&text, "{{m%zu}}{{m0}}", i);
	t = compile_ok(text.data, NULL);
	assert_int_equal(tmpl_render(t, NULL, TMPL_TEXT, &res), 0);
	assert_int_equal(res.n_warnings, TMPL_MAX_WARNINGS);
	assert_true(res.warnings_truncated);
	assert_string_equal(res.warnings[TMPL_MAX_WARNINGS - 1].name, "m31");
	tmpl_result_free(&res);
	tmpl_free(t);
	buf_free(&text);
}

static void test_long_name_cut(void **state)
{
	struct buf text = {0};
	struct tmpl *t;
	struct tmpl_result res;
	size_t i;

	buf_puts(&text, "{{x");
	for (i = 0; i < TMPL_NAME_MAX; i++)
		buf_puts(&text, "\xC3\xA9");
	buf_puts(&text, "}}");
	t = compile_ok(text.data, NULL);
	assert_int_equal(tmpl_render(t, NULL, TMPL_TEXT, &res), 0);
	assert_int_equal(res.n_warnings, 1);
	/* "x" and 63 two-byte characters: the 64th would pass TMPL_NAME_MAX */
	assert_int_equal(strlen(res.warnings[0].name), TMPL_NAME_MAX - 1);
	assert_memory_equal(res.warnings[0].name, text.data + 2, TMPL_NAME_MAX - 1);
	tmpl_result_free(&res);
	tmpl_free(t);
	buf_free(&text);
}

/* ---------- render bounds ---------- */

static int render_limited(const char *text, const char *json, size_t max_output, uint64_t max_steps,
                          struct tmpl_result *res)
{
	struct tmpl_limits lim;
	struct tmpl *t;
	json_t *d = data_of(json);
	int rc;

	tmpl_limits_default(&lim);
	lim.max_output = max_output;
	lim.max_steps = max_steps;
	t = compile_ok(text, &lim);
	rc = tmpl_render(t, d, TMPL_HTML, res);
	json_decref(d);
	tmpl_free(t);
	return rc;
}

static void test_output_bound(void **state)
{
	struct tmpl_result res;

	/* "&" escapes to 5 bytes: 2 + 5 + 2 = 9 */
	assert_int_equal(render_limited("ab{{s}}cd", "{\"s\": \"&\"}", 9, 100, &res), 0);
	assert_string_equal(res.out.data, "ab&amp;cd");
	tmpl_result_free(&res);
	assert_int_equal(render_limited("ab{{s}}cd", "{\"s\": \"&\"}", 8, 100, &res), -1);
	assert_int_equal(res.err.status, TMPL_ERR_OUTPUT);
	assert_string_equal(res.err.message, "the output would be larger than 8 bytes");
	assert_string_equal(tmpl_status_name(res.err.status), "output_size");
	tmpl_result_free(&res);
	/* within a list join */
	assert_int_equal(render_limited("{{a}}", "{\"a\": [1, 2, 3]}", 4, 100, &res), -1);
	assert_int_equal(res.err.status, TMPL_ERR_OUTPUT);
	tmpl_result_free(&res);
}

static void test_steps_bound(void **state)
{
	struct tmpl_result res;
	uint64_t need = 0, s;

	/* find the exact number of steps, then check one less fails */
	for (s = 1; s < 1000 && !need; s++) {
		int rc = render_limited("{{#l}}{{#l}}{{.}}{{/l}}{{/l}}", "{\"l\": [1, 2, 3]}", 1000,
		                        s, &res);
		if (rc == 0) {
			assert_string_equal(res.out.data, "123123123");
			need = s;
		} else {
			assert_int_equal(res.err.status, TMPL_ERR_STEPS);
			assert_string_equal(tmpl_status_name(res.err.status), "steps");
			assert_non_null(strstr(res.err.message, "steps"));
		}
		tmpl_result_free(&res);
	}
	assert_true(need > 9 && need < 100);
}

/* The huge loop of the issue: 1,000 x 1,000 x 1,000 stops at a bound. */
static void test_huge_loop_bounds(void **state)
{
	struct tmpl_result res;
	struct buf json = {0};
	int i;

	buf_puts(&json, "{\"a\": [0");
	for (i = 1; i < 1000; i++)
		buf_printf(&json, ",%d", i);
	buf_puts(&json, "]}");
	assert_int_equal(render_limited("{{#a}}{{#a}}{{#a}}{{/a}}{{/a}}{{/a}}", json.data,
	                                TMPL_DEFAULT_MAX_OUTPUT, TMPL_DEFAULT_MAX_STEPS, &res),
	                 -1);
	assert_int_equal(res.err.status, TMPL_ERR_STEPS);
	tmpl_result_free(&res);
	assert_int_equal(render_limited("{{#a}}{{#a}}{{#a}}x{{/a}}{{/a}}{{/a}}", json.data,
	                                TMPL_DEFAULT_MAX_OUTPUT, TMPL_DEFAULT_MAX_STEPS, &res),
	                 -1);
	assert_int_equal(res.err.status, TMPL_ERR_OUTPUT);
	assert_int_equal(res.out.len, TMPL_DEFAULT_MAX_OUTPUT);
	tmpl_result_free(&res);
	buf_free(&json);
}

/* ---------- compile once, render many, concurrently ---------- */

#define THREADS 4
#define ROUNDS  300

struct worker {
	const struct tmpl *t;
	int id;
	int failures;
};

static void *render_worker(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < ROUNDS; i++) {
		char want[128];
		json_t *d =
		    json_pack("{s:i, s:[i, i], s:s}", "id", w->id, "l", i, i + 1, "s", "<&>");
		struct tmpl_result res;
		snprintf(want, sizeof(want), "id=%d: %d,%d,;%d,%d &lt;&amp;&gt;", w->id, i, i + 1,
		         i, i + 1);
		if (tmpl_render(w->t, d, TMPL_HTML, &res) != 0 || strcmp(res.out.data, want) != 0)
			w->failures++;
		tmpl_result_free(&res);
		json_decref(d);
	}
	return NULL;
}

static void test_concurrent_renders(void **state)
{
	struct tmpl *t = compile_ok("id={{id}}: {{#l}}{{.}},{{/l}};{{l}} {{s}}", NULL);
	pthread_t th[THREADS];
	struct worker w[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.t = t, .id = i};
		assert_int_equal(pthread_create(&th[i], NULL, render_worker, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
	tmpl_free(t);
	tmpl_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_error_names_are_cut),
	    cmocka_unit_test(test_depth_bound),
	    cmocka_unit_test(test_template_size_bound),
	    cmocka_unit_test(test_modes),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_standalone_lines),
	    cmocka_unit_test(test_null_data),
	    cmocka_unit_test(test_nul_bytes),
	    cmocka_unit_test(test_warnings),
	    cmocka_unit_test(test_warnings_bounded),
	    cmocka_unit_test(test_long_name_cut),
	    cmocka_unit_test(test_output_bound),
	    cmocka_unit_test(test_steps_bound),
	    cmocka_unit_test(test_huge_loop_bounds),
	    cmocka_unit_test(test_concurrent_renders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
