/*
 * libFuzzer target for tmpl (the Mustache renderer): the input is the
 * template's bytes, compiled under small bounds and rendered against one
 * fixed data object that has every kind of value (escapable strings,
 * numbers, lists, nested and empty objects, unicode, a deep chain).
 *
 * Beyond "no crash, no leak, no hang", it checks what callers rely on:
 *   - compile fails only with a syntax, depth or size error, and syntax
 *     and depth errors carry a line and column;
 *   - a rendering is never longer than max_output, and fails only with the
 *     output or the step bound;
 *   - rendering leaves no trace: the same template renders the same twice;
 *   - HTML mode only adds escapes: when it succeeds, TEXT mode succeeds
 *     with output no longer, and both are equal when no escapable byte
 *     was written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl/tmpl.h"
#include "fuzz_util.h"

static const char data_json[] =
    "{\"a\": \"<b>&amp;'\\\"/`=\", \"b\": {\"c\": {\"d\": \"deep\"}, \"e\": []}, "
    "\"n\": 0, \"i\": 42, \"r\": -1.5e-7, \"big\": 1e21, \"t\": true, \"f\": false, "
    "\"z\": null, \"s\": \"\", \"u\": \"\\u00e9\\ud83d\\ude00\\u00a0x\", "
    "\"list\": [1, \"two\", null, [3, [4]], {\"a\": \"inner\", \"list\": [true, false]}], "
    "\"l2\": [[1, 2], [3, 4], []], \"o\": {}, \"\": \"empty key\", "
    "\"people\": [{\"name\": \"Ann\", \"tags\": [\"x\", \"y\"]}, {\"name\": \"<Bob>\"}], "
    "\"chain\": {\"a\": {\"a\": {\"a\": {\"a\": {\"a\": \"end\"}}}}}}";

static json_t *fixed_data(void)
{
	static json_t *d;

	if (!d) {
		json_error_t err;
		d = json_loads(data_json, 0, &err);
		CHECK(d != NULL);
	}
	return d;
}

static int has_escapable(const struct buf *b)
{
	size_t i;

	for (i = 0; i < b->len; i++)
		if (strchr("&<>\"'/`=", b->data[i]) && b->data[i])
			return 1;
	return 0;
}

static void check_render(const struct tmpl *t, const struct tmpl_limits *lim)
{
	struct tmpl_result html, text, again;
	int rh = tmpl_render(t, fixed_data(), TMPL_HTML, &html);
	int rt = tmpl_render(t, fixed_data(), TMPL_TEXT, &text);
	int ra = tmpl_render(t, fixed_data(), TMPL_HTML, &again);

	CHECK(html.out.len <= lim->max_output && text.out.len <= lim->max_output);
	CHECK(rh == 0 || html.err.status == TMPL_ERR_OUTPUT || html.err.status == TMPL_ERR_STEPS);
	CHECK(rt == 0 || text.err.status == TMPL_ERR_OUTPUT || text.err.status == TMPL_ERR_STEPS);
	CHECK(ra == rh && again.err.status == html.err.status);
	if (rh == 0) {
		CHECK(again.out.len == html.out.len &&
		      memcmp(again.out.data, html.out.data, html.out.len) == 0);
		CHECK(again.n_warnings == html.n_warnings);
		CHECK(rt == 0 && text.out.len <= html.out.len);
		if (!has_escapable(&text.out))
			CHECK(text.out.len == html.out.len &&
			      memcmp(text.out.data, html.out.data, html.out.len) == 0);
	}
	CHECK(html.n_warnings <= TMPL_MAX_WARNINGS);
	tmpl_result_free(&html);
	tmpl_result_free(&text);
	tmpl_result_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tmpl_limits lim;
	struct tmpl_error err;
	struct tmpl *t;

	tmpl_limits_default(&lim);
	lim.max_template = 64 * 1024;
	lim.max_depth = 40;
	lim.max_output = 64 * 1024;
	lim.max_steps = 200000;
	t = tmpl_compile((const char *)data, size, &lim, &err);
	if (!t) {
		CHECK(err.status == TMPL_ERR_SYNTAX || err.status == TMPL_ERR_DEPTH ||
		      err.status == TMPL_ERR_TEMPLATE);
		CHECK(err.status == TMPL_ERR_TEMPLATE || (err.line >= 1 && err.column >= 1));
		CHECK(err.message[0] != '\0');
		return 0;
	}
	CHECK(err.status == TMPL_OK);
	check_render(t, &lim);
	tmpl_free(t);
	return 0;
}
