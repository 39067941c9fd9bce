/*
 * Unit tests for track/ (PURE): the HTML rewriter (links of every quoting,
 * entity decoding, what is left alone, where the pixel goes), tokens (round
 * trip, and every kind of forgery refused), and machine User-Agents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "track/track.h"
#include "util/util.h"

/* A link maker that shows what it was given: "T(url)". */
static char *show(void *arg, const char *url)
{
	(*(int *)arg)++;
	return xasprintf("T(%s)", url);
}

static char *rewrite(const char *html, const char *pixel, int *links)
{
	struct buf b;

	*links = 0;
	buf_init(&b);
	buf_reserve(&b, 1);
	track_html(html, strlen(html), show, links, pixel, &b);
	return b.data;
}

static void check(const char *in, const char *pixel, const char *want, int n_links)
{
	int links;
	char *got = rewrite(in, pixel, &links);

	assert_string_equal(got, want);
	assert_int_equal(links, n_links);
	free(got);
}

static void test_links(void **state)
{
	(void)state;
	check("<a href=\"https://x.example/?a=1&amp;b=2\">x</a>", NULL,
	      "<a href=\"T(https://x.example/?a=1&amp;b=2)\">x</a>", 1);
	check("<A class=b HREF='http://x.example/p'>", NULL,
	      "<A class=b HREF=\"T(http://x.example/p)\">", 1);
	check("<a href=http://x.example/u>", NULL, "<a href=\"T(http://x.example/u)\">", 1);
	check("<a href=\"https://x.example/&#38;&#x3d;&quot;\">", NULL,
	      "<a href=\"T(https://x.example/&amp;=&quot;)\">", 1);
	/* not rewritten: other schemes, other tags, comments, an attribute that only looks like
	 * href */
	check("<a href=\"mailto:a@b.c\"><abbr href=\"http://x\"><!-- <a href=\"http://y\"> -->"
	      "<a data-href=\"http://z\">",
	      NULL,
	      "<a href=\"mailto:a@b.c\"><abbr href=\"http://x\"><!-- <a href=\"http://y\"> -->"
	      "<a data-href=\"http://z\">",
	      0);
	check("<a href=\"http://unterminated", NULL, "<a href=\"T(http://unterminated)\"", 1);
	check("text < not a tag & no entity", NULL, "text < not a tag & no entity", 0);
}

static void test_pixel(void **state)
{
	(void)state;
	check("<html><body><p>x</p></BODY></html>", "https://r.example/t/o/a&b",
	      "<html><body><p>x</p><img src=\"https://r.example/t/o/a&amp;b\" width=\"1\" "
	      "height=\"1\" alt=\"\" style=\"border:0\"></BODY></html>",
	      0);
	check("<p>no body</p>", "P",
	      "<p>no body</p><img src=\"P\" width=\"1\" height=\"1\" alt=\"\" style=\"border:0\">",
	      0);
}

static void test_entities(void **state)
{
	static const char *const cases[][2] = {
	    {"a&amp;b", "a&b"},
	    {"&lt;&gt;&apos;", "<>'"},
	    {"&#233;", "\xc3\xa9"},
	    {"&#x1F600;", "\xf0\x9f\x98\x80"},
	    {"&nbsp;", "&nbsp;"},
	    {"&#0;&#xD800;", "&#0;&#xD800;"},
	    {"&", "&"},
	    {"&#12", "&#12"},
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *got = track_entity_decode(cases[i][0], strlen(cases[i][0]));
		assert_string_equal(got, cases[i][1]);
		free(got);
	}
}

static void test_tokens(void **state)
{
	unsigned char key[TRACK_KEY_LEN] = {1, 2, 3}, other[TRACK_KEY_LEN] = {9};
	struct track_ref ref = {'c', "shop", "1L95865S80004XGH", "ann@example.org",
	                        "https://x.example/?a=1&b=2"};
	char *tok = track_token_make(key, &ref), *bad;
	struct track_parsed p;

	(void)state;
	assert_null(strpbrk(tok, "+/=?&#% "));
	assert_int_equal(track_token_parse(key, tok, 'c', &p), 0);
	assert_string_equal(p.account, "shop");
	assert_string_equal(p.message_id, "1L95865S80004XGH");
	assert_string_equal(p.recipient, "ann@example.org");
	assert_string_equal(p.url, "https://x.example/?a=1&b=2");
	track_parsed_free(&p);
	assert_int_equal(track_token_parse(key, tok, 'o', &p), -1);   /* another kind */
	assert_int_equal(track_token_parse(other, tok, 'c', &p), -1); /* another key */
	bad = xstrdup(tok);
	bad[3] = bad[3] == 'A' ? 'B' : 'A'; /* the payload changed */
	assert_int_equal(track_token_parse(key, bad, 'c', &p), -1);
	bad[strlen(bad) - 2] = 0; /* the MAC cut */
	assert_int_equal(track_token_parse(key, bad, 'c', &p), -1);
	assert_int_equal(track_token_parse(key, "", 'c', &p), -1);
	assert_int_equal(track_token_parse(key, "abc.def", 'c', &p), -1);
	assert_int_equal(track_token_parse(key, "a+b.c/d", 'c', &p), -1);
	free(bad);
	free(tok);
}

static void test_machine_ua(void **state)
{
	(void)state;
	assert_true(track_machine_ua(NULL));
	assert_true(track_machine_ua("Mozilla/5.0 (compatible; Barracuda Link Checker)"));
	assert_true(track_machine_ua("curl/8.5.0"));
	assert_false(track_machine_ua("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Thunderbird/115"));
	assert_false(track_machine_ua("Mozilla/5.0 (via ggpht.com GoogleImageProxy)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_links),      cmocka_unit_test(test_pixel),
	    cmocka_unit_test(test_entities),   cmocka_unit_test(test_tokens),
	    cmocka_unit_test(test_machine_ua),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
