/*
 * Unit tests for http/http_route (PURE): matching paths to a table,
 * parameters, 404/405 with Allow, percent-decoding and query strings; and
 * the real route table against docs/openapi.json (embedded in the binary),
 * both ways, with each route's key requirement.
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
#include "http/http_route.h"
#include "util/util.h"

extern const char http_openapi_json[];
extern const unsigned long http_openapi_json_len;

static void h(struct http_req *r)
{
	(void)r;
}

static const struct http_route T[] = {
    {"GET", "/healthz", HTTP_AUTH_NONE, h},
    {"GET", "/v1/things", HTTP_AUTH_ACCOUNT, h},
    {"POST", "/v1/things", HTTP_AUTH_ACCOUNT, h},
    {"GET", "/v1/things/{id}", HTTP_AUTH_ACCOUNT, h},
    {"DELETE", "/v1/things/{id}", HTTP_AUTH_ADMIN, h},
    {"POST", "/v1/things/{id}/parts/{part}", HTTP_AUTH_ACCOUNT, h},
};

static enum http_match_result match(const char *method, const char *path, struct http_match *m)
{
	return http_route_match(T, ARRAY_LEN(T), method, path, m);
}

static void test_literal_and_params(void **state)
{
	struct http_match m;

	(void)state;
	assert_int_equal(match("GET", "/healthz", &m), HTTP_MATCH_OK);
	assert_int_equal(m.index, 0);
	http_match_free(&m);
	assert_int_equal(match("POST", "/v1/things", &m), HTTP_MATCH_OK);
	assert_int_equal(m.index, 2);
	http_match_free(&m);
	assert_int_equal(match("POST", "/v1/things/a%2Fb/parts/x%40y.z", &m), HTTP_MATCH_OK);
	assert_int_equal(m.index, 5);
	assert_int_equal(m.n_params, 2);
	assert_int_equal(m.params[0].name_len, 2);
	assert_memory_equal(m.params[0].name, "id", 2);
	assert_string_equal(m.params[0].value, "a/b");
	assert_string_equal(m.params[1].value, "x@y.z");
	http_match_free(&m);
	/* Literal segments compare decoded. */
	assert_int_equal(match("GET", "/%68ealthz", &m), HTTP_MATCH_OK);
	http_match_free(&m);
}

static void test_head_is_get(void **state)
{
	struct http_match m;

	(void)state;
	assert_int_equal(match("HEAD", "/v1/things/7", &m), HTTP_MATCH_OK);
	assert_int_equal(m.index, 3);
	assert_string_equal(m.params[0].value, "7");
	http_match_free(&m);
}

static void test_not_found(void **state)
{
	struct http_match m;
	const char *paths[] = {
	    "/",         "/healthz/",   "/v1/things/",           "/v1/things/1/parts",
	    "/v1/thing", "/v1//things", "/v1/things/1/parts/2/3"};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
		if (match("GET", paths[i], &m) != HTTP_MATCH_NO_PATH)
			fail_msg("matched %s", paths[i]);
		http_match_free(&m);
	}
}

static void test_method_not_allowed(void **state)
{
	struct http_match m;

	(void)state;
	assert_int_equal(match("PUT", "/v1/things", &m), HTTP_MATCH_NO_METHOD);
	assert_string_equal(m.allow, "GET, HEAD, POST");
	http_match_free(&m);
	assert_int_equal(match("POST", "/v1/things/1", &m), HTTP_MATCH_NO_METHOD);
	assert_string_equal(m.allow, "GET, HEAD, DELETE");
	http_match_free(&m);
	assert_int_equal(match("GET", "/v1/things/1/parts/2", &m), HTTP_MATCH_NO_METHOD);
	assert_string_equal(m.allow, "POST");
	http_match_free(&m);
}

static void test_bad_paths(void **state)
{
	struct http_match m;
	const char *paths[] = {"healthz",        "*",
	                       "/v1/things/%zz", "/v1/things/%4",
	                       "/v1/things/%00", "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q"};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
		if (match("GET", paths[i], &m) != HTTP_MATCH_BAD_PATH)
			fail_msg("not refused: %s", paths[i]);
		http_match_free(&m);
	}
}

static void test_query(void **state)
{
	int bad;
	char *v;

	(void)state;
	v = http_query_value("a=1&limit=20&b", "limit", &bad);
	assert_string_equal(v, "20");
	free(v);
	v = http_query_value("to=a%40b.c&x=y+z", "x", &bad);
	assert_string_equal(v, "y z");
	free(v);
	v = http_query_value("to=a%40b.c", "to", &bad);
	assert_string_equal(v, "a@b.c");
	free(v);
	v = http_query_value("flag&b=", "flag", &bad);
	assert_string_equal(v, "");
	free(v);
	v = http_query_value("a=1&a=2", "a", &bad);
	assert_string_equal(v, "1");
	free(v);
	assert_null(http_query_value("a=1", "b", &bad));
	assert_int_equal(bad, 0);
	assert_null(http_query_value(NULL, "b", &bad));
	assert_null(http_query_value("a=%G1", "a", &bad));
	assert_int_equal(bad, 1);
	assert_null(http_query_value("a=%00", "a", &bad));
	assert_int_equal(bad, 1);
}

/* ---- the real table against docs/openapi.json ---- */

static json_t *openapi(void)
{
	json_error_t e;
	json_t *doc = json_loadb(http_openapi_json, http_openapi_json_len, 0, &e);

	if (!doc)
		fail_msg("docs/openapi.json: line %d: %s", e.line, e.text);
	return doc;
}

static void lower(const char *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s", s);
	for (char *p = out; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
}

static void test_every_route_documented(void **state)
{
	json_t *doc = openapi(), *paths = json_object_get(doc, "paths");
	char method[16];

	(void)state;
	assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
	assert_non_null(json_object_get(
	    json_object_get(json_object_get(doc, "components"), "securitySchemes"), "bearer"));
	for (size_t i = 0; i < http_n_routes; i++) {
		const struct http_route *r = &http_routes[i];
		json_t *op, *sec;
		lower(r->method, method, sizeof(method));
		op = json_object_get(json_object_get(paths, r->pattern), method);
		if (!op)
			fail_msg("route %s %s is not in docs/openapi.json", r->method, r->pattern);
		assert_non_null(json_object_get(op, "responses"));
		sec = json_object_get(op, "security");
		/* No key: "security": [] overrides the global bearer. */
		if ((r->auth == HTTP_AUTH_NONE) !=
		    (json_is_array(sec) && json_array_size(sec) == 0))
			fail_msg("%s %s: security in docs/openapi.json does not match the route",
			         r->method, r->pattern);
		assert_non_null(r->handler);
	}
	json_decref(doc);
}

static int has_route(const char *path, const char *method)
{
	for (size_t i = 0; i < http_n_routes; i++) {
		char m[16];
		lower(http_routes[i].method, m, sizeof(m));
		if (!strcmp(http_routes[i].pattern, path) && !strcmp(m, method))
			return 1;
	}
	return 0;
}

static void test_every_documented_path_routed(void **state)
{
	static const char *const METHODS[] = {"get",   "put",  "post",    "delete",
	                                      "patch", "head", "options", "trace"};
	json_t *doc = openapi(), *item;
	const char *path;
	int ops = 0;

	(void)state;
	json_object_foreach(json_object_get(doc, "paths"), path, item)
	{
		for (size_t i = 0; i < ARRAY_LEN(METHODS); i++) {
			if (!json_object_get(item, METHODS[i]))
				continue;
			ops++;
			if (!has_route(path, METHODS[i]))
				fail_msg("docs/openapi.json has %s %s, the route table does not",
				         METHODS[i], path);
		}
	}
	assert_int_equal(ops, (int)http_n_routes);
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_literal_and_params),
	    cmocka_unit_test(test_head_is_get),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_method_not_allowed),
	    cmocka_unit_test(test_bad_paths),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_every_route_documented),
	    cmocka_unit_test(test_every_documented_path_routed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
