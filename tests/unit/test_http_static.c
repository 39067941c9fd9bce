/*
 * Unit tests for http/http_static: the dashboard's files embedded from
 * web/dist/ (build/gen/web_assets.c), found by name with their types, and
 * every file the page names is in the binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_static.h"
#include "util/util.h"

static void test_types(void **state)
{
	(void)state;
	assert_string_equal(http_static_type("index.html"), "text/html; charset=utf-8");
	assert_string_equal(http_static_type("app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(http_static_type("app.css"), "text/css; charset=utf-8");
	assert_string_equal(http_static_type("icon.svg"), "image/svg+xml");
	assert_string_equal(http_static_type("licenses.txt"), "text/plain; charset=utf-8");
	assert_string_equal(http_static_type("x.bin"), "application/octet-stream");
	assert_string_equal(http_static_type(".js"), "application/octet-stream");
	assert_string_equal(http_static_type("js"), "application/octet-stream");
}

static void test_find(void **state)
{
	const struct http_asset *a;

	(void)state;
	assert_true(http_n_assets >= 4);
	a = http_static_find("index.html");
	assert_non_null(a);
	assert_true(a->len > 100);
	assert_memory_equal(a->data, "<!doctype html>", 15);
	assert_non_null(http_static_find("app.js"));
	assert_null(http_static_find(""));
	assert_null(http_static_find("app"));
	assert_null(http_static_find("../app.js"));
	assert_null(http_static_find("APP.JS"));
}

/* What index.html loads (src= and href= under /assets/) is embedded: a
 * bundle rebuilt without one of its files cannot ship a broken page. */
static void test_page_files_embedded(void **state)
{
	const struct http_asset *page = http_static_find("index.html");
	char *text = xmalloc(page->len + 1), *p;
	int n = 0;

	(void)state;
	memcpy(text, page->data, page->len);
	text[page->len] = '\0';
	for (p = text; (p = strstr(p, "\"/assets/")) != NULL; n++) {
		char name[64];
		size_t len = strcspn(p + 9, "\"");
		assert_true(len > 0 && len < sizeof(name));
		memcpy(name, p + 9, len);
		name[len] = '\0';
		if (!http_static_find(name))
			fail_msg("index.html names /assets/%s, which is not embedded", name);
		p += 9 + len;
	}
	assert_true(n >= 3); /* the icon, the style sheet, the script */
	assert_null(strstr(text, "http://"));
	assert_null(strstr(text, "https://"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_page_files_embedded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
