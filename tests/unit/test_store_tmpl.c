/*
 * Unit tests for store/store_tmpl (message templates): names, create with
 * its refusals (taken, full, bounds, unknown account), get, update and
 * delete with their revisions and times, listing by name with cursors,
 * isolation between accounts, and account deletion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("tmpl");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	clock_set_override_ms(0);
	fixture_free(*state);
	return 0;
}

static const struct store_tmpl_in WELCOME = {"Hi {{name}}", "Hello {{name}}\n",
                                             "<p>Hello {{name}}</p>"};

static void create_ok(struct store *st, const char *account, const char *name,
                      const struct store_tmpl_in *in)
{
	char *err = NULL;

	if (store_tmpl_create(st, account, name, in, NULL, &err) != 0)
		fail_msg("create %s: %s", name, err);
}

/* The call's return, and its message checked to hold `part`; *err is
 * read after the call has returned (arguments have no order). */
static void fails_with(int rc, int want, char **err, const char *part)
{
	assert_int_equal(rc, want);
	assert_non_null(*err);
	if (!strstr(*err, part))
		fail_msg("'%s' lacks '%s'", *err, part);
	free(*err);
	*err = NULL;
}

static void test_names(void **state)
{
	const char *good[] = {"welcome", "W", "0", "order-shipped_v2.1", "a-", "a.", "Z9"};
	const char *bad[] = {"", "-a", ".a", "_a", "a b", "a/b", "a%20", "é", "a\n"};
	char long_name[STORE_TMPL_NAME_MAX + 2];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(good); i++)
		if (!store_tmpl_name_valid(good[i]))
			fail_msg("refused '%s'", good[i]);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (store_tmpl_name_valid(bad[i]))
			fail_msg("accepted '%s'", bad[i]);
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[STORE_TMPL_NAME_MAX + 1] = '\0';
	assert_false(store_tmpl_name_valid(long_name));
	long_name[STORE_TMPL_NAME_MAX] = '\0';
	assert_true(store_tmpl_name_valid(long_name));
}

static void test_create_and_get(void **state)
{
	struct store *st = open_ok(*state);
	struct store_tmpl t = {0}, g = {0};
	const struct store_tmpl_in html_only = {"", NULL, "<b>x</b>"};
	char *err = NULL;

	clock_set_override_ms(1700000000000ULL);
	assert_int_equal(store_tmpl_create(st, "default", "welcome", &WELCOME, &t, &err), 0);
	assert_string_equal(t.name, "welcome");
	assert_string_equal(t.subject, "Hi {{name}}");
	assert_string_equal(t.text, "Hello {{name}}\n");
	assert_string_equal(t.html, "<p>Hello {{name}}</p>");
	assert_true(t.revision > 0);
	assert_int_equal(t.created_at, 1700000000);
	assert_int_equal(t.updated_at, 1700000000);
	assert_int_equal(store_tmpl_get(st, "default", "welcome", &g, &err), 0);
	assert_string_equal(g.subject, t.subject);
	assert_string_equal(g.text, t.text);
	assert_string_equal(g.html, t.html);
	assert_int_equal(g.revision, t.revision);
	assert_int_equal(g.created_at, 1700000000);
	store_tmpl_clear(&g);
	store_tmpl_clear(&g); /* twice is safe */
	assert_int_equal(store_tmpl_create(st, "default", "html-only", &html_only, NULL, &err), 0);
	assert_int_equal(store_tmpl_get(st, "default", "html-only", &g, &err), 0);
	assert_null(g.text);
	assert_string_equal(g.html, "<b>x</b>");
	assert_string_equal(g.subject, "");
	store_tmpl_clear(&g);
	store_tmpl_clear(&t);
	store_close(st);
}

static void test_create_refusals(void **state)
{
	struct store *st = open_ok(*state);
	struct store_tmpl_in in = WELCOME;
	char *big = xcalloc(1, STORE_TMPL_PART_MAX + 2), *err = NULL;

	create_ok(st, "default", "welcome", &WELCOME);
	fails_with(store_tmpl_create(st, "default", "welcome", &WELCOME, NULL, &err),
	           STORE_TMPL_EXISTS, &err, "a template named 'welcome' already exists");
	fails_with(store_tmpl_create(st, "nobody", "welcome", &WELCOME, NULL, &err),
	           STORE_TMPL_NO_ACCOUNT, &err, "no such account 'nobody'");
	fails_with(store_tmpl_create(st, "default", "bad name", &WELCOME, NULL, &err), -1, &err,
	           "invalid template name");
	in.subject = "two\nlines";
	fails_with(store_tmpl_create(st, "default", "x", &in, NULL, &err), -1, &err, "one line");
	in.subject = "ok";
	in.text = in.html = NULL;
	fails_with(store_tmpl_create(st, "default", "x", &in, NULL, &err), -1, &err,
	           "needs a text or an html part");
	memset(big, 'a', STORE_TMPL_PART_MAX + 1);
	in.html = big;
	fails_with(store_tmpl_create(st, "default", "x", &in, NULL, &err), -1, &err, "longer than");
	big[STORE_TMPL_PART_MAX] = '\0';
	create_ok(st, "default", "x", &in); /* exactly the bound */
	free(big);
	store_close(st);
}

static void test_an_account_holds_at_most_the_bound(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char sql[512], *err = NULL;

	store_close(st);
	snprintf(sql, sizeof(sql),
	         "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
	         " INSERT INTO templates SELECT 1, 't' || i, 's', 'x', NULL, i, 1, 1 FROM n",
	         STORE_TMPL_MAX - 1);
	raw_exec(f, sql);
	st = open_with_user(f, "bob");
	create_ok(st, "default", "last", &WELCOME);
	fails_with(store_tmpl_create(st, "default", "one-more", &WELCOME, NULL, &err),
	           STORE_TMPL_FULL, &err, "the most it may have");
	create_ok(st, "bob", "one-more", &WELCOME); /* per account */
	assert_int_equal(store_tmpl_delete(st, "default", "t1", NULL, NULL), 0);
	create_ok(st, "default", "one-more", &WELCOME);
	store_close(st);
}

static void test_update(void **state)
{
	struct store *st = open_ok(*state);
	const struct store_tmpl_in text_only = {"New {{x}}", "new text", NULL};
	struct store_tmpl before = {0}, after = {0}, g = {0};
	char *err = NULL;

	clock_set_override_ms(1700000000000ULL);
	assert_int_equal(store_tmpl_create(st, "default", "welcome", &WELCOME, &before, &err), 0);
	clock_set_override_ms(1700000100000ULL);
	assert_int_equal(store_tmpl_update(st, "default", "welcome", &text_only, &after, &err), 0);
	assert_string_equal(after.subject, "New {{x}}");
	assert_null(after.html);
	assert_int_equal(after.created_at, 1700000000);
	assert_int_equal(after.updated_at, 1700000100);
	assert_true(after.revision > 0 && after.revision != before.revision);
	assert_int_equal(store_tmpl_get(st, "default", "welcome", &g, &err), 0);
	assert_string_equal(g.text, "new text");
	assert_null(g.html); /* replaced, not merged */
	assert_int_equal(g.revision, after.revision);
	assert_int_equal(g.updated_at, 1700000100);
	store_tmpl_clear(&g);
	fails_with(store_tmpl_update(st, "default", "missing", &WELCOME, NULL, &err),
	           STORE_TMPL_NOT_FOUND, &err, "no such template 'missing'");
	fails_with(store_tmpl_update(st, "default", "bad name", &WELCOME, NULL, &err),
	           STORE_TMPL_NOT_FOUND, &err, "no such template");
	store_tmpl_clear(&before);
	store_tmpl_clear(&after);
	store_close(st);
}

static void test_delete_and_revisions(void **state)
{
	struct store *st = open_ok(*state);
	struct store_tmpl t = {0};
	int64_t rev1 = 0, rev2 = 0;
	char *err = NULL;

	create_ok(st, "default", "welcome", &WELCOME);
	assert_int_equal(store_tmpl_revision(st, "default", "welcome", &rev1, &err), 0);
	assert_int_equal(store_tmpl_delete(st, "default", "welcome", &t, &err), 0);
	assert_string_equal(t.name, "welcome");
	assert_string_equal(t.html, WELCOME.html);
	assert_int_equal(t.revision, rev1);
	store_tmpl_clear(&t);
	fails_with(store_tmpl_revision(st, "default", "welcome", &rev2, &err), STORE_TMPL_NOT_FOUND,
	           &err, "no such template");
	fails_with(store_tmpl_delete(st, "default", "welcome", NULL, &err), STORE_TMPL_NOT_FOUND,
	           &err, "no such template");
	fails_with(store_tmpl_get(st, "default", "welcome", &t, &err), STORE_TMPL_NOT_FOUND, &err,
	           "no such template");
	/* The same name again: a new revision, never the old one. */
	create_ok(st, "default", "welcome", &WELCOME);
	assert_int_equal(store_tmpl_revision(st, "default", "welcome", &rev2, &err), 0);
	assert_true(rev2 > 0 && rev2 != rev1);
	store_close(st);
}

/* ---- listing --------------------------------------------------------------------------- */

struct seen {
	struct buf b;
	char last[STORE_TMPL_NAME_MAX + 1];
};

static void seen_cb(void *arg, const struct store_tmpl *t)
{
	struct seen *s = arg;

	assert_null(t->text);
	assert_null(t->html);
	assert_non_null(t->subject);
	buf_printf(&s->b, "%s%s", s->b.len ? "," : "", t->name);
	snprintf(s->last, sizeof(s->last), "%s", t->name);
}

static char *page(struct store *st, const char *account, const char *after, size_t limit, int *more,
                  char *last)
{
	struct seen s;
	char *err = NULL;

	buf_init(&s.b);
	s.last[0] = '\0';
	if (store_tmpl_list(st, account, after, limit, seen_cb, &s, more, &err) != 0)
		fail_msg("list: %s", err);
	if (last)
		strcpy(last, s.last);
	return s.b.data;
}

static void test_list(void **state)
{
	struct store *st = open_with_user(*state, "bob");
	const char *names[] = {"b", "a", "C", "c-2", "c"};
	char last[STORE_TMPL_NAME_MAX + 1], *s, *err = NULL;
	int more;

	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		create_ok(st, "default", names[i], &WELCOME);
	create_ok(st, "bob", "z", &WELCOME);
	s = page(st, "default", NULL, 100, &more, NULL);
	assert_string_equal(s, "C,a,b,c,c-2"); /* byte order */
	assert_int_equal(more, 0);
	free(s);
	s = page(st, "default", "", 2, &more, last);
	assert_string_equal(s, "C,a");
	assert_int_equal(more, 1);
	free(s);
	s = page(st, "default", last, 2, &more, last);
	assert_string_equal(s, "b,c");
	assert_int_equal(more, 1);
	free(s);
	s = page(st, "default", last, 2, &more, last);
	assert_string_equal(s, "c-2");
	assert_int_equal(more, 0);
	free(s);
	s = page(st, "bob", NULL, 10, &more, NULL);
	assert_string_equal(s, "z");
	free(s);
	fails_with(store_tmpl_list(st, "nobody", NULL, 10, seen_cb, NULL, &more, &err),
	           STORE_TMPL_NO_ACCOUNT, &err, "no such account");
	fails_with(store_tmpl_list(st, "default", NULL, 0, seen_cb, NULL, &more, &err), -1, &err,
	           "limit");
	fails_with(store_tmpl_list(st, "default", NULL, 1001, seen_cb, NULL, &more, &err), -1, &err,
	           "limit");
	store_close(st);
}

/* ---- accounts ---------------------------------------------------------------------------------
 */

static void test_accounts_are_isolated(void **state)
{
	struct store *st = open_with_user(*state, "bob");
	const struct store_tmpl_in other = {"bob's", "bob's text", NULL};
	struct store_tmpl t = {0};
	char *err = NULL;

	create_ok(st, "default", "welcome", &WELCOME);
	fails_with(store_tmpl_get(st, "bob", "welcome", &t, &err), STORE_TMPL_NOT_FOUND, &err,
	           "no such template");
	fails_with(store_tmpl_update(st, "bob", "welcome", &other, NULL, &err),
	           STORE_TMPL_NOT_FOUND, &err, "no such template");
	fails_with(store_tmpl_delete(st, "bob", "welcome", NULL, &err), STORE_TMPL_NOT_FOUND, &err,
	           "no such template");
	create_ok(st, "bob", "welcome", &other); /* the same name in another account */
	assert_int_equal(store_tmpl_get(st, "default", "welcome", &t, &err), 0);
	assert_string_equal(t.subject, WELCOME.subject);
	store_tmpl_clear(&t);
	assert_int_equal(store_tmpl_get(st, "bob", "welcome", &t, &err), 0);
	assert_string_equal(t.subject, "bob's");
	store_tmpl_clear(&t);
	store_close(st);
}

static void test_deleting_the_account_deletes_its_templates(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "bob");
	struct store_tmpl t = {0};

	create_ok(st, "bob", "welcome", &WELCOME);
	create_ok(st, "default", "welcome", &WELCOME);
	assert_int_equal(store_user_del(st, "bob", NULL), 0);
	assert_int_equal(store_user_add(st, "bob", NULL, NULL, 0, NULL), 0);
	assert_int_equal(store_tmpl_get(st, "bob", "welcome", &t, NULL), STORE_TMPL_NOT_FOUND);
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM templates"), 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    T(test_create_and_get),
	    T(test_create_refusals),
	    T(test_an_account_holds_at_most_the_bound),
	    T(test_update),
	    T(test_delete_and_revisions),
	    T(test_list),
	    T(test_accounts_are_isolated),
	    T(test_deleting_the_account_deletes_its_templates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
