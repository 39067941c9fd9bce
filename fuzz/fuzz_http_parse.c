/*
 * libFuzzer target for http/http_parse and http/http_route: the input is
 * a client's byte stream on one connection. The first byte picks the size
 * of the pieces it arrives in, as reads would cut it; requests follow each
 * other (keep-alive) until one fails. Each complete request's target goes
 * through the router (a table like the real one) and its query parser.
 *
 * Beyond "no crash", it checks what the connection relies on: a body
 * never exceeds the limit, a fixed body has exactly its Content-Length,
 * every error has a status and a code, a method is a token, and the
 * parser never claims more bytes than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "http/http_route.h"
#include "fuzz_util.h"

#define MAX_BODY 4096

static void h(struct http_req *r)
{
	(void)r;
}

static const struct http_route ROUTES[] = {
    {"GET", "/healthz", HTTP_AUTH_NONE, h},
    {"GET", "/v1/apikeys", HTTP_AUTH_ACCOUNT, h},
    {"PATCH", "/v1/apikeys/{id}", HTTP_AUTH_ACCOUNT, h},
    {"DELETE", "/v1/apikeys/{id}", HTTP_AUTH_ACCOUNT, h},
    {"POST", "/v1/a/{x}/b/{y}", HTTP_AUTH_ADMIN, h},
};

static void route(const struct http_request *r)
{
	char *path = strdup(r->target), *q = strchr(path, '?'), *v;
	struct http_match m;
	int bad;

	CHECK(path);
	if (q)
		*q++ = '\0';
	if (http_route_match(ROUTES, sizeof(ROUTES) / sizeof(ROUTES[0]), r->method, path, &m) ==
	    HTTP_MATCH_OK)
		for (size_t i = 0; i < m.n_params; i++)
			CHECK(m.params[i].value[0] != '\0');
	http_match_free(&m);
	v = http_query_value(q, "limit", &bad);
	CHECK(!(v && bad));
	free(v);
	free(path);
}

static void check_done(const struct http_parser *p)
{
	const struct http_request *r = &p->req;

	CHECK(r->body.len <= MAX_BODY);
	if (!r->chunked)
		CHECK(r->body.len == r->content_length);
	CHECK(r->method[0] != '\0');
	for (const char *c = r->method; *c; c++)
		CHECK(http_is_tchar((unsigned char)*c));
	route(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_parser p;
	size_t step, off = 1;
	int requests = 0;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 64 + 1;
	http_parser_init(&p, MAX_BODY);
	while (off < size && requests < 64) {
		size_t n = size - off < step ? size - off : step, used = 0;
		/* An exact-size copy: a read past the piece is caught. */
		char *piece = fuzz_copy(data + off, n);
		enum http_parse_status st;

		st = http_parse(&p, piece, n, &used);
		free(piece);
		CHECK(used <= n);
		off += used;
		if (st == HTTP_P_ERROR) {
			CHECK(p.err_status >= 400 && p.err_status < 600 && p.err_code);
			break;
		}
		if (st == HTTP_P_DONE) {
			check_done(&p);
			http_parser_reset(&p);
			requests++;
		} else if (st == HTTP_P_MORE && used == 0 && p.state != HP_HEAD_DONE) {
			break; /* cannot happen: MORE takes every byte */
		}
	}
	http_parser_free(&p);
	return 0;
}
