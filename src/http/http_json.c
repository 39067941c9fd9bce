/*
 * http_json: JSON request bodies and their fields (see http_api.h). Only
 * jansson and util: no sockets, unit-tested in tests/unit/test_http_json.c.
 *
 * Every rejection names what was wrong the same way, "FIELD: what was
 * expected", so that a client can show it next to the field.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/http_api.h"
#include "util/util.h"

/* Deeper nesting is refused before jansson recurses into it. */
#define JSON_MAX_DEPTH 64

static int problem(struct http_problem *p, const char *code, const char *field, const char *fmt,
                   va_list ap)
{
	int n;

	p->status = 400;
	p->code = code;
	snprintf(p->field, sizeof(p->field), "%s", field ? field : "");
	n = field ? snprintf(p->message, sizeof(p->message), "%s: ", field) : 0;
	vsnprintf(p->message + n, sizeof(p->message) - (size_t)n, fmt, ap);
	return -1;
}

int http_problem_field(struct http_problem *p, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem(p, "invalid_field", field, fmt, ap);
	va_end(ap);
	return -1;
}

void http_problem_param(struct http_problem *p, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem(p, "invalid_parameter", name, fmt, ap);
	va_end(ap);
}

static int malformed(struct http_problem *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int malformed(struct http_problem *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	problem(p, "malformed_json", NULL, fmt, ap);
	va_end(ap);
	return -1;
}

/* Nesting depth of the brackets outside strings: jansson recurses. */
static size_t json_depth(const char *s, size_t len)
{
	size_t depth = 0, max = 0;
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				max = depth;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return max;
}

json_t *http_json_body(const char *body, size_t len, struct http_problem *p)
{
	json_error_t e;
	json_t *v;

	if (len == 0) {
		malformed(p, "empty body: expected a JSON object");
		return NULL;
	}
	if (json_depth(body, len) > JSON_MAX_DEPTH) {
		malformed(p, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
		return NULL;
	}
	v = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
	if (!v) {
		malformed(p, "malformed JSON at line %d, column %d: %s", e.line, e.column, e.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		malformed(p, "expected a JSON object");
		return NULL;
	}
	return v;
}

/* The member, or NULL (with p set when required). JSON null counts as absent. */
static json_t *member(json_t *obj, const char *field, int required, struct http_problem *p,
                      int *failed)
{
	json_t *v = json_object_get(obj, field);

	*failed = 0;
	if (v && !json_is_null(v))
		return v;
	if (required)
		*failed = http_problem_field(p, field, "required");
	return NULL;
}

int http_json_string(json_t *obj, const char *field, int required, size_t min_len, size_t max_len,
                     const char **out, struct http_problem *p)
{
	int failed;
	json_t *v = member(obj, field, required, p, &failed);
	size_t n;

	if (!v)
		return failed;
	n = json_is_string(v) ? json_string_length(v) : 0;
	if (!json_is_string(v) || n < min_len || n > max_len ||
	    memchr(json_string_value(v), '\0', n))
		return http_problem_field(p, field, "expected a string of %zu to %zu bytes",
		                          min_len, max_len);
	*out = json_string_value(v);
	return 0;
}

int http_json_bool(json_t *obj, const char *field, int required, int *out, struct http_problem *p)
{
	int failed;
	json_t *v = member(obj, field, required, p, &failed);

	if (!v)
		return failed;
	if (!json_is_boolean(v))
		return http_problem_field(p, field, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

int http_json_int(json_t *obj, const char *field, int required, int64_t min, int64_t max,
                  int64_t *out, struct http_problem *p)
{
	int failed;
	json_t *v = member(obj, field, required, p, &failed);

	if (!v)
		return failed;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return http_problem_field(p, field, "expected an integer from %lld to %lld",
		                          (long long)min, (long long)max);
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int http_json_strings(json_t *obj, const char *field, int required, size_t max_items,
                      size_t max_len, json_t **out, struct http_problem *p)
{
	int failed;
	json_t *v = member(obj, field, required, p, &failed), *item;
	size_t i;

	if (!v)
		return failed;
	if (!json_is_array(v) || json_array_size(v) > max_items)
		return http_problem_field(p, field, "expected an array of at most %zu strings",
		                          max_items);
	json_array_foreach(v, i, item)
	{
		size_t n = json_is_string(item) ? json_string_length(item) : 0;
		if (n == 0 || n > max_len || memchr(json_string_value(item), '\0', n))
			return http_problem_field(
			    p, field, "item %zu: expected a string of 1 to %zu bytes", i, max_len);
	}
	*out = v;
	return 0;
}

int http_json_known(json_t *obj, const char *const *known, struct http_problem *p)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		size_t i = 0;
		while (known[i] && strcmp(known[i], key) != 0)
			i++;
		if (!known[i])
			return http_problem_field(p, key, "unknown field");
	}
	return 0;
}

json_t *http_json_time(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[32];

	if (t <= 0 || !gmtime_r(&tt, &tm))
		return json_null();
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}
