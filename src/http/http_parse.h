/*
 * http_parse: HTTP/1.1 requests (RFC 9112) from bytes. PURE (libc +
 * util): bytes in; "need more", "head complete", "request complete" or an
 * error with its status out. The connection (http_conn.c) feeds it; unit
 * tests and fuzz/fuzz_http_parse.c feed it without sockets.
 *
 * Strict where leniency lets two parsers disagree about where a request
 * ends (request smuggling): only CRLF ends a line; no obs-fold; no space
 * before a colon; Content-Length digits only and never twice with two
 * values; Transfer-Encoding only "chunked", never with Content-Length,
 * never in HTTP/1.0. HTTP/1.1 needs exactly one Host.
 *
 * Bounded: the head (request line and headers) by HTTP_MAX_HEAD bytes and
 * HTTP_MAX_HEADERS fields (else 431), the body by the caller's max_body,
 * checked against Content-Length before any body byte is read (else 413),
 * chunk lines and trailers by small constants.
 */
#ifndef POSTHORN_HTTP_PARSE_H
#define POSTHORN_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define HTTP_MAX_HEAD     (64 * 1024)
#define HTTP_MAX_HEADERS  100
#define HTTP_MAX_METHOD   16
#define HTTP_MAX_LINE     1024 /* a chunk-size line or one trailer field */
#define HTTP_MAX_TRAILERS (8 * 1024)

struct http_header {
	const char *name; /* as sent; compare case-insensitively */
	const char *value;
};

/* One parsed request. Strings point into the parser's head buffer and are
 * valid until http_parser_reset() or http_parser_free(). */
struct http_request {
	char method[HTTP_MAX_METHOD];
	const char *target; /* request-target as sent: "/v1/x?a=b" */
	int minor;          /* HTTP/1.minor */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t n_headers;
	int keep_alive;      /* the client lets the connection stay open */
	int expect_continue; /* Expect: 100-continue */
	int chunked;
	uint64_t content_length; /* when not chunked */
	int has_body;            /* chunked, or Content-Length above 0 */
	struct buf body;         /* decoded body (chunked: the chunks joined) */
};

enum http_parse_status {
	HTTP_P_MORE,  /* every byte given was used; send more */
	HTTP_P_HEAD,  /* the head is complete (once per request) */
	HTTP_P_DONE,  /* the request is complete */
	HTTP_P_ERROR, /* see err_status, err_code, err_msg; the connection must close */
};

enum http_parse_state {
	HP_HEAD,
	HP_HEAD_DONE,
	HP_BODY,
	HP_CHUNK_SIZE,
	HP_CHUNK_DATA,
	HP_CHUNK_END,
	HP_TRAILERS,
	HP_DONE,
	HP_ERROR
};

struct http_parser {
	enum http_parse_state state;
	uint64_t max_body;
	struct buf head;
	struct http_request req;
	uint64_t remaining;       /* of the fixed body or of the current chunk */
	char line[HTTP_MAX_LINE]; /* a chunk-size or trailer line being read */
	size_t line_len;
	size_t trailer_bytes;
	size_t skipped_crlf; /* empty lines before the request line */
	int err_status;      /* 400, 413, 417, 431, 501 or 505 */
	const char *err_code;
	char err_msg[160];
};

void http_parser_init(struct http_parser *p, uint64_t max_body);
/* Ready for the next request on the same connection; keeps buffers. */
void http_parser_reset(struct http_parser *p);
void http_parser_free(struct http_parser *p);

/*
 * Consumes bytes from data[0..len) and sets *used to how many. After
 * HTTP_P_HEAD the caller looks at the head (route, key, 100-continue) and
 * calls again for the body; a request without a body then gives
 * HTTP_P_DONE at once with *used 0. After HTTP_P_DONE, bytes not used
 * belong to the next request (call http_parser_reset() first).
 */
enum http_parse_status http_parse(struct http_parser *p, const char *data, size_t len,
                                  size_t *used);

/* The value of header name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *r, const char *name);

/* 1 if c may appear in a token (RFC 9110 tchar). */
int http_is_tchar(int c);

#endif
