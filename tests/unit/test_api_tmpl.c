/*
 * Unit tests for api/api_tmpl_cache (compiled templates for the routes
 * that render them) and api/api_common's cursors: a template compiled
 * once and handed out while fresh; a change seen after API_TMPL_FRESH_MS,
 * or at once when forgotten; the revision confirmed without recompiling;
 * missing and broken templates; the bounds of the table; renderings in
 * the right mode per part, with warnings, made safe for a message; and
 * many threads at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "api/api.h"
#include "store_fixture.h"

struct ctx {
	struct fixture *f;
	struct store *st;
	struct api_tmpl_cache *c;
};

static int setup(void **state)
{
	struct ctx *x = xcalloc(1, sizeof(*x));

	x->f = fixture_new("apitmpl");
	assert_non_null(x->f);
	x->st = open_ok(x->f);
	x->c = api_tmpl_cache_new(x->st);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *x = *state;

	api_tmpl_cache_free(x->c);
	store_close(x->st);
	fixture_free(x->f);
	free(x);
	return 0;
}

static void put(struct ctx *x, const char *name, const char *subject, const char *text,
                const char *html)
{
	const struct store_tmpl_in in = {subject, text, html};
	char *err = NULL;
	int rc = store_tmpl_update(x->st, "default", name, &in, NULL, &err);

	if (rc == STORE_TMPL_NOT_FOUND) {
		free(err);
		err = NULL;
		rc = store_tmpl_create(x->st, "default", name, &in, NULL, &err);
	}
	if (rc != 0)
		fail_msg("put %s: %s", name, err);
}

static struct api_template *get(struct ctx *x, const char *name)
{
	struct api_template *t = NULL;
	char *err = NULL;

	if (api_tmpl_get(x->c, "default", name, &t, &err) != 0)
		fail_msg("get %s: %s", name, err);
	return t;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* The text of one part of a rendering with vars (JSON text). */
static char *render_part(struct api_template *t, const char *vars, enum api_part part)
{
	json_t *v = vars ? json_loads(vars, 0, NULL) : NULL;
	struct api_rendered out;
	char *s;

	assert_int_equal(api_template_render(t, v, &out), 0);
	s = out.has[part] ? xstrndup(out.out[part].data, out.out[part].len) : NULL;
	api_rendered_free(&out);
	json_decref(v);
	return s;
}

static void assert_renders(struct api_template *t, const char *vars, enum api_part part,
                           const char *want)
{
	char *s = render_part(t, vars, part);

	if (!want)
		assert_null(s);
	else
		assert_string_equal(s, want);
	free(s);
}

/* ---- the cache ---------------------------------------------------------------- */

static void test_compiled_once_while_fresh(void **state)
{
	struct ctx *x = *state;
	struct api_template *a, *b;

	put(x, "w", "Hi {{n}}", "T {{n}}", NULL);
	a = get(x, "w");
	b = get(x, "w");
	assert_ptr_equal(a, b);
	assert_true(api_template_has(a, API_PART_SUBJECT));
	assert_true(api_template_has(a, API_PART_TEXT));
	assert_false(api_template_has(a, API_PART_HTML));
	assert_renders(a, "{\"n\": \"Bo\"}", API_PART_TEXT, "T Bo");
	api_template_unref(a);
	api_template_unref(b);
}

static void test_a_change_elsewhere_is_seen_within_the_fresh_time(void **state)
{
	struct ctx *x = *state;
	struct api_template *old, *again, *now;

	put(x, "w", "s", "old", NULL);
	old = get(x, "w");
	put(x, "w", "s", "new", NULL); /* another node: the cache is not told */
	again = get(x, "w");
	assert_ptr_equal(again, old); /* still fresh */
	api_template_unref(again);
	sleep_ms(API_TMPL_FRESH_MS + 100);
	now = get(x, "w");
	assert_ptr_not_equal(now, old);
	assert_true(api_template_revision(now) != api_template_revision(old));
	assert_renders(now, NULL, API_PART_TEXT, "new");
	/* A reference taken before the change still renders what it was. */
	assert_renders(old, NULL, API_PART_TEXT, "old");
	api_template_unref(old);
	api_template_unref(now);
}

static void test_an_unchanged_revision_is_confirmed_not_recompiled(void **state)
{
	struct ctx *x = *state;
	struct api_template *a, *b;

	put(x, "w", "s", "same", NULL);
	a = get(x, "w");
	sleep_ms(API_TMPL_FRESH_MS + 100);
	b = get(x, "w");
	assert_ptr_equal(a, b);
	api_template_unref(a);
	api_template_unref(b);
}

static void test_forget_takes_effect_at_once(void **state)
{
	struct ctx *x = *state;
	struct api_template *a, *b;

	put(x, "w", "s", "one", NULL);
	a = get(x, "w");
	put(x, "w", "s", "two", NULL);
	api_tmpl_cache_forget(x->c, "default", "w");
	api_tmpl_cache_forget(x->c, "default", "not-there");
	api_tmpl_cache_forget(NULL, "default", "w");
	b = get(x, "w");
	assert_ptr_not_equal(a, b);
	assert_renders(b, NULL, API_PART_TEXT, "two");
	api_template_unref(a);
	api_template_unref(b);
}

static void test_missing_deleted_and_other_accounts(void **state)
{
	struct ctx *x = *state;
	struct api_template *t = NULL;
	char *err = NULL;

	assert_int_equal(api_tmpl_get(x->c, "default", "nope", &t, &err), API_TMPL_NOT_FOUND);
	assert_null(t);
	free(err);
	put(x, "w", "s", "x", NULL);
	t = get(x, "w");
	api_template_unref(t);
	assert_int_equal(store_user_add(x->st, "bob", NULL, NULL, 0, NULL), 0);
	err = NULL;
	assert_int_equal(api_tmpl_get(x->c, "bob", "w", &t, &err), API_TMPL_NOT_FOUND);
	free(err);
	assert_int_equal(store_tmpl_delete(x->st, "default", "w", NULL, NULL), 0);
	sleep_ms(API_TMPL_FRESH_MS + 100);
	err = NULL;
	assert_int_equal(api_tmpl_get(x->c, "default", "w", &t, &err), API_TMPL_NOT_FOUND);
	free(err);
}

static void test_a_stored_template_that_does_not_compile(void **state)
{
	struct ctx *x = *state;
	struct api_template *t = NULL;
	char *err = NULL;

	/* Written behind the API's back (the API compiles before it stores). */
	raw_exec(x->f, "INSERT INTO templates VALUES (1, 'bad', 's', 'line one\n{{#open}}', NULL,"
	               " 7, 1, 1)");
	assert_int_equal(api_tmpl_get(x->c, "default", "bad", &t, &err), API_TMPL_BROKEN);
	assert_null(t);
	assert_non_null(strstr(err, "template 'bad': text: line 2, column 1: unclosed section"));
	free(err);
}

static void test_the_table_is_bounded(void **state)
{
	struct ctx *x = *state;
	struct api_template *first, *t;
	char name[32];

	raw_exec(x->f, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n"
	               " WHERE i < 300) INSERT INTO templates SELECT 1, 't' || i, 's', 'x' || i,"
	               " NULL, i + 1, 1, 1 FROM n");
	first = get(x, "t0");
	for (int i = 1; i <= API_TMPL_CACHE_MAX; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		api_template_unref(get(x, name));
	}
	/* t0 was the least recently used: it went, and comes back compiled anew. */
	t = get(x, "t0");
	assert_ptr_not_equal(t, first);
	assert_renders(t, NULL, API_PART_TEXT, "x0");
	assert_renders(first, NULL, API_PART_TEXT, "x0");
	api_template_unref(t);
	api_template_unref(first);
}

/* ---- rendering --------------------------------------------------------------------------- */

static void test_each_part_in_its_mode(void **state)
{
	struct ctx *x = *state;
	struct api_template *t;
	const char *vars = "{\"n\": \"<A&B>\"}";

	put(x, "w", "Re: {{n}}", "Text {{n}}", "<p>{{n}} {{{n}}}</p>");
	t = get(x, "w");
	assert_renders(t, vars, API_PART_SUBJECT, "Re: <A&B>");
	assert_renders(t, vars, API_PART_TEXT, "Text <A&B>");
	assert_renders(t, vars, API_PART_HTML, "<p>&lt;A&amp;B&gt; <A&B></p>");
	api_template_unref(t);
	put(x, "h", "s", NULL, "<b>only</b>");
	t = get(x, "h");
	assert_renders(t, NULL, API_PART_TEXT, NULL);
	assert_renders(t, NULL, API_PART_HTML, "<b>only</b>");
	api_template_unref(t);
}

static void test_warnings_name_the_part(void **state)
{
	struct ctx *x = *state;
	struct api_template *t;
	struct api_rendered out;

	put(x, "w", "{{first}}", "{{first}} {{last}}", "{{> header}}{{#vip}}x{{/vip}}");
	t = get(x, "w");
	assert_int_equal(api_template_render(t, NULL, &out), 0);
	assert_int_equal(out.n_warnings, 4);
	assert_int_equal(out.warnings[0].part, API_PART_SUBJECT);
	assert_string_equal(out.warnings[0].name, "first");
	assert_int_equal(out.warnings[0].kind, TMPL_WARN_MISSING);
	assert_int_equal(out.warnings[1].part, API_PART_TEXT);
	assert_string_equal(out.warnings[1].name, "first");
	assert_int_equal(out.warnings[2].part, API_PART_TEXT);
	assert_string_equal(out.warnings[2].name, "last");
	assert_int_equal(out.warnings[3].part, API_PART_HTML);
	assert_int_equal(out.warnings[3].kind, TMPL_WARN_PARTIAL);
	assert_string_equal(out.warnings[3].name, "header");
	assert_int_equal(out.warnings_truncated, 0);
	api_rendered_free(&out);
	api_template_unref(t);
}

static void test_output_is_safe_for_a_message(void **state)
{
	struct ctx *x = *state;
	struct api_template *t;
	struct api_rendered out;
	json_t *v = json_pack("{s:s,s:s%}", "s", "a\r\nBcc: evil@x.org\x7f", "t", "n\0ul", 4);

	put(x, "w", "Hi {{s}}", "[{{t}}]", "<{{t}}>");
	t = get(x, "w");
	assert_int_equal(api_template_render(t, v, &out), 0);
	assert_string_equal(out.out[API_PART_SUBJECT].data, "Hi a  Bcc: evil@x.org ");
	assert_int_equal(out.out[API_PART_TEXT].len, 5);
	assert_string_equal(out.out[API_PART_TEXT].data, "[nul]");
	assert_string_equal(out.out[API_PART_HTML].data, "<nul>");
	api_rendered_free(&out);
	api_template_unref(t);
	json_decref(v);
}

static void test_a_bound_passed_names_the_part(void **state)
{
	struct ctx *x = *state;
	struct api_template *t;
	struct api_rendered out;
	json_t *v = json_pack("{s:s}", "long", "0123456789012345678901234567890123456789");

	/* The subject's output bound is API_SUBJECT_OUTPUT_MAX: 4 KiB. */
	put(x, "w", "{{#l}}{{long}}{{/l}}", "fine", NULL);
	t = get(x, "w");
	json_object_set_new(v, "l", json_array());
	for (int i = 0; i < 200; i++)
		json_array_append_new(json_object_get(v, "l"), json_true());
	assert_int_equal(api_template_render(t, v, &out), -1);
	assert_int_equal(out.failed, API_PART_SUBJECT);
	assert_int_equal(out.err.status, TMPL_ERR_OUTPUT);
	api_rendered_free(&out);
	json_array_clear(json_object_get(v, "l"));
	json_array_append_new(json_object_get(v, "l"), json_true());
	assert_int_equal(api_template_render(t, v, &out), 0);
	api_rendered_free(&out);
	api_template_unref(t);
	json_decref(v);
}

static void test_compile_reports_where(void **state)
{
	struct tmpl *t = NULL;
	struct tmpl_error e;
	char big[STORE_TMPL_SUBJECT_MAX + 2];

	(void)state;
	assert_int_equal(api_part_compile(API_PART_HTML, "<p>\n  {{#a}}x{{/b}}", &t, &e), -1);
	assert_null(t);
	assert_int_equal(e.status, TMPL_ERR_SYNTAX);
	assert_int_equal(e.line, 2);
	assert_int_equal(e.column, 10); /* at the {{/b}} */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(api_part_compile(API_PART_SUBJECT, big, &t, &e), -1);
	assert_int_equal(e.status, TMPL_ERR_TEMPLATE);
	assert_int_equal(api_part_compile(API_PART_TEXT, big, &t, &e), 0);
	tmpl_free(t);
	assert_string_equal(api_part_name(API_PART_HTML), "html");
}

/* ---- threads -----------------------------------------------------------------------------------
 */

static void *hammer(void *arg)
{
	struct ctx *x = arg;
	json_t *v = json_pack("{s:s}", "n", "x");

	for (int i = 0; i < 300; i++) {
		struct api_template *t = NULL;
		struct api_rendered out;
		char *err = NULL;
		if (api_tmpl_get(x->c, "default", i % 2 ? "a" : "b", &t, &err) != 0)
			fail_msg("get: %s", err);
		assert_int_equal(api_template_render(t, v, &out), 0);
		assert_string_equal(out.out[API_PART_TEXT].data, i % 2 ? "a x" : "b x");
		api_rendered_free(&out);
		api_template_unref(t);
		if (i % 50 == 0)
			api_tmpl_cache_forget(x->c, "default", "a");
	}
	json_decref(v);
	return NULL;
}

static void test_threads(void **state)
{
	struct ctx *x = *state;
	pthread_t th[4];

	put(x, "a", "s", "a {{n}}", NULL);
	put(x, "b", "s", "b {{n}}", NULL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, x), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
}

/* ---- cursors
 * --------------------------------------------------------------------------------------- */

static void test_cursors(void **state)
{
	const char *keys[] = {"a", "ab", "abc", "john+x@example.com", "é/?&=#%", "\xff\xfe"};
	char out[300];
	char *c;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
		c = api_cursor_encode(keys[i]);
		assert_int_equal(strspn(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                           "0123456789-_"),
		                 strlen(c));
		assert_int_equal(api_cursor_decode(c, out, sizeof(out)), 0);
		assert_string_equal(out, keys[i]);
		free(c);
	}
	assert_int_equal(api_cursor_decode("", out, sizeof(out)), -1);
	assert_int_equal(api_cursor_decode("a", out, sizeof(out)), -1);
	assert_int_equal(api_cursor_decode("ab+c", out, sizeof(out)), -1);
	assert_int_equal(api_cursor_decode("ab==", out, sizeof(out)), -1);
	assert_int_equal(api_cursor_decode("AA", out, sizeof(out)), -1); /* a NUL byte */
	c = api_cursor_encode("0123456789");
	assert_int_equal(api_cursor_decode(c, out, 10), -1); /* does not fit */
	assert_int_equal(api_cursor_decode(c, out, 11), 0);
	free(c);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_compiled_once_while_fresh),
	    T(test_a_change_elsewhere_is_seen_within_the_fresh_time),
	    T(test_an_unchanged_revision_is_confirmed_not_recompiled),
	    T(test_forget_takes_effect_at_once),
	    T(test_missing_deleted_and_other_accounts),
	    T(test_a_stored_template_that_does_not_compile),
	    T(test_the_table_is_bounded),
	    T(test_each_part_in_its_mode),
	    T(test_warnings_name_the_part),
	    T(test_output_is_safe_for_a_message),
	    T(test_a_bound_passed_names_the_part),
	    cmocka_unit_test(test_compile_reports_where),
	    T(test_threads),
	    cmocka_unit_test(test_cursors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
