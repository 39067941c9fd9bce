/*
 * Unit tests for http/http_parse (PURE): request heads, bodies (fixed and
 * chunked), keep-alive, every rejection with its status and code, and
 * that feeding bytes one at a time gives what feeding them at once does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_parse.h"
#include "util/util.h"

#define MAX_BODY 1000

/* Feeds s in pieces of at most step bytes (0: all at once) until the
 * request is done or fails. *rest: bytes of s not used. */
static enum http_parse_status feed(struct http_parser *p, const char *s, size_t len, size_t step,
                                   size_t *rest)
{
	size_t off = 0;
	enum http_parse_status st = HTTP_P_MORE;

	for (;;) {
		size_t n = len - off, used = 0;
		if (step && n > step)
			n = step;
		st = http_parse(p, s + off, n, &used);
		assert_true(used <= n);
		off += used;
		if (st == HTTP_P_DONE || st == HTTP_P_ERROR)
			break;
		if (st == HTTP_P_MORE && off == len)
			break;
	}
	if (rest)
		*rest = len - off;
	return st;
}

static enum http_parse_status parse_all(struct http_parser *p, const char *s)
{
	http_parser_init(p, MAX_BODY);
	return feed(p, s, strlen(s), 0, NULL);
}

/* The request fails with status and code. */
static void rejects(const char *s, int status, const char *code)
{
	struct http_parser p;

	if (parse_all(&p, s) != HTTP_P_ERROR)
		fail_msg("accepted: %s", s);
	assert_int_equal(p.err_status, status);
	assert_string_equal(p.err_code, code);
	assert_true(p.err_msg[0] != '\0');
	http_parser_free(&p);
}

static void test_simple_get(void **state)
{
	struct http_parser p;

	(void)state;
	assert_int_equal(parse_all(&p, "GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\nX-Y:  v  \r\n\r\n"),
	                 HTTP_P_DONE);
	assert_string_equal(p.req.method, "GET");
	assert_string_equal(p.req.target, "/healthz?x=1");
	assert_int_equal(p.req.minor, 1);
	assert_int_equal(p.req.keep_alive, 1);
	assert_int_equal(p.req.has_body, 0);
	assert_string_equal(http_request_header(&p.req, "x-y"), "v");
	assert_string_equal(http_request_header(&p.req, "HOST"), "a");
	assert_null(http_request_header(&p.req, "Content-Length"));
	http_parser_free(&p);
}

static void test_head_then_body(void **state)
{
	struct http_parser p;
	const char *s = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET";
	size_t used;

	(void)state;
	http_parser_init(&p, MAX_BODY);
	assert_int_equal(http_parse(&p, s, strlen(s), &used), HTTP_P_HEAD);
	assert_int_equal(used, strlen(s) - 8);
	assert_int_equal(p.req.content_length, 5);
	assert_int_equal(http_parse(&p, s + used, 8, &used), HTTP_P_DONE);
	assert_int_equal(used, 5); /* "GET" is the next request's */
	assert_int_equal(p.req.body.len, 5);
	assert_memory_equal(p.req.body.data, "hello", 5);
	http_parser_free(&p);
}

static void test_keep_alive_rules(void **state)
{
	struct http_parser p;

	(void)state;
	parse_all(&p, "GET / HTTP/1.0\r\n\r\n");
	assert_int_equal(p.req.keep_alive, 0);
	http_parser_free(&p);
	parse_all(&p, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
	assert_int_equal(p.req.keep_alive, 1);
	http_parser_free(&p);
	parse_all(&p, "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n");
	assert_int_equal(p.req.keep_alive, 0);
	http_parser_free(&p);
	parse_all(&p, "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n");
	assert_int_equal(p.req.keep_alive, 1);
	http_parser_free(&p);
}

static const char CHUNKED[] = "PATCH /k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
                              "5;ext=1\r\nhello\r\n"
                              "A\r\n, world!!!\r\n"
                              "0\r\nX-Trailer: t\r\n\r\n";

static void test_chunked(void **state)
{
	struct http_parser p;
	size_t rest;

	(void)state;
	for (size_t step = 0; step < 8; step++) {
		http_parser_init(&p, MAX_BODY);
		assert_int_equal(feed(&p, CHUNKED, strlen(CHUNKED), step, &rest), HTTP_P_DONE);
		assert_int_equal(rest, 0);
		assert_int_equal(p.req.chunked, 1);
		assert_int_equal(p.req.body.len, 15);
		assert_memory_equal(p.req.body.data, "hello, world!!!", 15);
		http_parser_free(&p);
	}
}

/* Byte by byte or at once: the same request. */
static void test_split_anywhere(void **state)
{
	const char *s = "\r\nPOST /a%20b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
	struct http_parser p;

	(void)state;
	for (size_t step = 0; step < 5; step++) {
		http_parser_init(&p, MAX_BODY);
		assert_int_equal(feed(&p, s, strlen(s), step, NULL), HTTP_P_DONE);
		assert_string_equal(p.req.target, "/a%20b");
		assert_memory_equal(p.req.body.data, "abc", 3);
		http_parser_free(&p);
	}
}

static void test_reset_for_next(void **state)
{
	const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n";
	struct http_parser p;
	size_t rest;

	(void)state;
	http_parser_init(&p, MAX_BODY);
	assert_int_equal(feed(&p, s, strlen(s), 0, &rest), HTTP_P_DONE);
	assert_string_equal(p.req.target, "/1");
	http_parser_reset(&p);
	assert_int_equal(feed(&p, s + strlen(s) - rest, rest, 0, &rest), HTTP_P_DONE);
	assert_string_equal(p.req.target, "/2");
	assert_string_equal(http_request_header(&p.req, "Host"), "b");
	assert_int_equal(rest, 0);
	http_parser_free(&p);
}

static void test_expect_continue(void **state)
{
	struct http_parser p;
	size_t used;
	const char *s = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
	                "Content-Length: 2\r\n\r\n";

	(void)state;
	http_parser_init(&p, MAX_BODY);
	assert_int_equal(http_parse(&p, s, strlen(s), &used), HTTP_P_HEAD);
	assert_int_equal(p.req.expect_continue, 1);
	http_parser_free(&p);
	rejects("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417, "expectation_failed");
}

static void test_limits(void **state)
{
	struct buf b;

	(void)state;
	rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", 413,
	        "request_too_large");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	        413, "request_too_large");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "3E9\r\n",
	        413, "request_too_large");
	buf_init(&b);
	buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		buf_printf(&b, "X-%d: v\r\n", i);
	buf_puts(&b, "\r\n");
	rejects(b.data, 431, "headers_too_large");
	buf_reset(&b);
	buf_puts(&b, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	for (int i = 0; i < HTTP_MAX_HEAD; i++)
		buf_puts(&b, "a");
	rejects(b.data, 431, "headers_too_large");
	buf_free(&b);
}

static void test_bad_heads(void **state)
{
	(void)state;
	rejects("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1\r\nX: a\x01\r\nHost: a\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "bad_request");
	rejects("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request");
	rejects("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request");
	rejects("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400, "bad_request");
	rejects("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "http_version_not_supported");
	rejects("VERYLONGMETHODNAME / HTTP/1.1\r\nHost: a\r\n\r\n", 501, "not_implemented");
	rejects("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 400, "bad_request");
}

static void test_bad_framing(void **state)
{
	(void)state;
	rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
	        "\r\n\r\n",
	        400, "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
	        "not_implemented");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
	        "not_implemented");
	rejects("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
	        "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400, "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", 400, "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n", 400,
	        "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400,
	        "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n", 400,
	        "bad_request");
	rejects("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad\r\n\r\n",
	        400, "bad_request");
}

static void test_same_length_twice_ok(void **state)
{
	struct http_parser p;

	(void)state;
	assert_int_equal(parse_all(&p, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n"
	                               "Content-Length: 2\r\n\r\nok"),
	                 HTTP_P_DONE);
	assert_int_equal(p.req.body.len, 2);
	http_parser_free(&p);
}

static void test_nul_in_head(void **state)
{
	static const char s[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
	struct http_parser p;

	(void)state;
	http_parser_init(&p, MAX_BODY);
	assert_int_equal(feed(&p, s, sizeof(s) - 1, 0, NULL), HTTP_P_ERROR);
	assert_int_equal(p.err_status, 400);
	http_parser_free(&p);
}

static void test_trailers_bounded(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	buf_puts(&b, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
	for (int i = 0; i < 20; i++) {
		buf_printf(&b, "X-%d: ", i);
		for (int j = 0; j < 800; j++)
			buf_puts(&b, "v");
		buf_puts(&b, "\r\n");
	}
	buf_puts(&b, "\r\n");
	rejects(b.data, 431, "headers_too_large");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_get),
	    cmocka_unit_test(test_head_then_body),
	    cmocka_unit_test(test_keep_alive_rules),
	    cmocka_unit_test(test_chunked),
	    cmocka_unit_test(test_split_anywhere),
	    cmocka_unit_test(test_reset_for_next),
	    cmocka_unit_test(test_expect_continue),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_bad_heads),
	    cmocka_unit_test(test_bad_framing),
	    cmocka_unit_test(test_same_length_twice_ok),
	    cmocka_unit_test(test_nul_in_head),
	    cmocka_unit_test(test_trailers_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
