/*
 * tmpl-render: the Posthorn side of the differential Mustache test
 * (tests/e2e/test_tmpl_diff.py; render.js is the mustache.js side).
 *
 *   tmpl-render CORPUS.json
 *
 * CORPUS is a JSON array of cases {"name", "template", "data", "limits"}
 * ("data" defaults to {}, "limits" to the defaults, any of max_template,
 * max_depth, max_output, max_steps). Each case is compiled once and the
 * compiled form rendered in HTML mode, in TEXT mode and in HTML mode again
 * (the two HTML renderings must be equal: a rendering leaves no trace).
 * One JSON line per case and mode goes to stdout:
 *   {"name", "mode", "ok": true, "out": base64 of the bytes, "warnings": [[kind, name]...]}
 *   {"name", "mode", "ok": false, "status", "line", "column", "message"}
 * Exit 0 when every case was run, 2 on a usage or corpus error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tmpl/tmpl.h"
#include "util/util.h"

static const char *const mode_names[] = {[TMPL_HTML] = "html", [TMPL_TEXT] = "text"};

static void limits_from_json(const json_t *j, struct tmpl_limits *lim)
{
	tmpl_limits_default(lim);
	if (!json_is_object(j))
		return;
	if (json_is_integer(json_object_get(j, "max_template")))
		lim->max_template = (size_t)json_integer_value(json_object_get(j, "max_template"));
	if (json_is_integer(json_object_get(j, "max_depth")))
		lim->max_depth = (unsigned)json_integer_value(json_object_get(j, "max_depth"));
	if (json_is_integer(json_object_get(j, "max_output")))
		lim->max_output = (size_t)json_integer_value(json_object_get(j, "max_output"));
	if (json_is_integer(json_object_get(j, "max_steps")))
		lim->max_steps = (uint64_t)json_integer_value(json_object_get(j, "max_steps"));
}

static json_t *error_line(const char *name, const char *mode, const struct tmpl_error *err)
{
	return json_pack("{s:s, s:s, s:b, s:s, s:i, s:i, s:s}", "name", name, "mode", mode, "ok", 0,
	                 "status", tmpl_status_name(err->status), "line", (int)err->line, "column",
	                 (int)err->column, "message", err->message);
}

static json_t *result_line(const char *name, const char *mode, const struct tmpl_result *res)
{
	char *b64 = xmalloc(base64_encoded_len(res->out.len) + 1);
	json_t *warnings = json_array(), *line;
	size_t i;

	base64_encode((const unsigned char *)res->out.data, res->out.len, b64);
	for (i = 0; i < res->n_warnings; i++)
		json_array_append_new(
		    warnings, json_pack("[s, s]", tmpl_warning_kind_name(res->warnings[i].kind),
		                        res->warnings[i].name));
	line = json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", name, "mode", mode, "ok", 1, "out",
	                 b64, "warnings", warnings);
	free(b64);
	return line;
}

static void print_line(json_t *line)
{
	char *s = json_dumps(line, JSON_COMPACT);

	puts(s);
	free(s);
	json_decref(line);
}

/* Render t once per mode, and HTML once more: the second must equal the first. */
static int render_modes(const char *name, const struct tmpl *t, const json_t *data)
{
	static const enum tmpl_mode modes[] = {TMPL_HTML, TMPL_TEXT};
	struct tmpl_result first, again;
	size_t m;
	int same;

	for (m = 0; m < ARRAY_LEN(modes); m++) {
		struct tmpl_result res;
		if (tmpl_render(t, data, modes[m], &res) < 0)
			print_line(error_line(name, mode_names[modes[m]], &res.err));
		else
			print_line(result_line(name, mode_names[modes[m]], &res));
		tmpl_result_free(&res);
	}
	tmpl_render(t, data, TMPL_HTML, &first);
	tmpl_render(t, data, TMPL_HTML, &again);
	same = first.err.status == again.err.status && first.out.len == again.out.len &&
	       memcmp(first.out.data, again.out.data, first.out.len) == 0;
	tmpl_result_free(&first);
	tmpl_result_free(&again);
	if (!same)
		fprintf(stderr, "%s: a second rendering differs from the first\n", name);
	return same ? 0 : -1;
}

static int run_case(const json_t *c)
{
	const char *name = json_string_value(json_object_get(c, "name"));
	const json_t *tj = json_object_get(c, "template"), *data = json_object_get(c, "data");
	json_t *empty = json_object();
	struct tmpl_limits lim;
	struct tmpl_error err;
	struct tmpl *t;
	int rc = 0;

	if (!name || !json_is_string(tj)) {
		fprintf(stderr, "a case needs a string name and a string template\n");
		json_decref(empty);
		return -1;
	}
	limits_from_json(json_object_get(c, "limits"), &lim);
	t = tmpl_compile(json_string_value(tj), json_string_length(tj), &lim, &err);
	if (!t) {
		print_line(error_line(name, "html", &err));
		print_line(error_line(name, "text", &err));
	} else {
		rc = render_modes(name, t, data ? data : empty);
	}
	tmpl_free(t);
	json_decref(empty);
	return rc;
}

int main(int argc, char **argv)
{
	json_error_t jerr;
	json_t *corpus, *c;
	size_t i;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS.json\n", argv[0]);
		return 2;
	}
	corpus = json_load_file(argv[1], 0, &jerr);
	if (!json_is_array(corpus)) {
		fprintf(stderr, "%s: line %d: %s\n", argv[1], jerr.line, jerr.text);
		return 2;
	}
	json_array_foreach(corpus, i, c)
	{
		if (run_case(c) < 0)
			rc = 2;
	}
	json_decref(corpus);
	return rc;
}
