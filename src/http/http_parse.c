/*
 * http_parse: the HTTP/1.1 request parser (see http_parse.h). PURE.
 *
 * The head is collected line by line into p->head until the empty line,
 * then parsed in one go (request line, fields, then what the fields mean
 * together). The body is copied into req.body as it arrives; chunked
 * framing is read with a small line buffer. Every path that rejects input
 * sets a status, a stable code and a message naming the problem.
 */
#include "http/http_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_LEADING_CRLF  8  /* empty lines tolerated before a request line */
#define MAX_CHUNK_DIGITS  15 /* hex digits of a chunk size: below 2^60 */
#define MAX_LENGTH_DIGITS 18 /* decimal digits of a Content-Length: below 10^18 */

static enum http_parse_status fail(struct http_parser *p, int status, const char *code,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum http_parse_status fail(struct http_parser *p, int status, const char *code,
                                   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err_msg, sizeof(p->err_msg), fmt, ap);
	va_end(ap);
	p->err_status = status;
	p->err_code = code;
	p->state = HP_ERROR;
	return HTTP_P_ERROR;
}

#define bad(p, ...) fail((p), 400, "bad_request", __VA_ARGS__)

int http_is_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

void http_parser_init(struct http_parser *p, uint64_t max_body)
{
	memset(p, 0, sizeof(*p));
	p->max_body = max_body;
	buf_init(&p->head);
	buf_init(&p->req.body);
	p->state = HP_HEAD;
}

void http_parser_reset(struct http_parser *p)
{
	struct buf head = p->head, body = p->req.body;
	uint64_t max_body = p->max_body;

	buf_reset(&head);
	buf_reset(&body);
	memset(p, 0, sizeof(*p));
	p->head = head;
	p->req.body = body;
	p->max_body = max_body;
	p->state = HP_HEAD;
}

void http_parser_free(struct http_parser *p)
{
	buf_free(&p->head);
	buf_free(&p->req.body);
}

const char *http_request_header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (ascii_casecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

/* ---- the head, once whole ------------------------------------------------- */

static int version_like(const char *v)
{
	return strncmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
	       v[7] >= '0' && v[7] <= '9' && v[8] == '\0';
}

static enum http_parse_status request_line(struct http_parser *p, char *line)
{
	struct http_request *r = &p->req;
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	size_t mlen = sp1 ? (size_t)(sp1 - line) : 0;

	if (!sp1 || !sp2 || sp2 == sp1 + 1 || mlen == 0)
		return bad(p, "malformed request line: expected METHOD TARGET HTTP/1.1");
	if (mlen >= HTTP_MAX_METHOD)
		return fail(p, 501, "not_implemented", "method not implemented");
	for (size_t i = 0; i < mlen; i++)
		if (!http_is_tchar((unsigned char)line[i]))
			return bad(p, "malformed request line: bad method");
	for (char *t = sp1 + 1; t < sp2; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return bad(p, "malformed request line: bad character in the target");
	memcpy(r->method, line, mlen);
	r->method[mlen] = '\0';
	*sp2 = '\0';
	r->target = sp1 + 1;
	if (strcmp(sp2 + 1, "HTTP/1.1") == 0 || strcmp(sp2 + 1, "HTTP/1.0") == 0)
		r->minor = sp2[8] - '0';
	else if (version_like(sp2 + 1))
		return fail(p, 505, "http_version_not_supported",
		            "only HTTP/1.0 and 1.1 are served");
	else
		return bad(p, "malformed request line: bad HTTP version");
	return HTTP_P_HEAD;
}

static int value_ok(const char *v)
{
	for (; *v; v++)
		if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
			return 0;
	return 1;
}

static enum http_parse_status field_line(struct http_parser *p, char *line)
{
	struct http_request *r = &p->req;
	char *colon = strchr(line, ':'), *v, *end;

	if (*line == ' ' || *line == '\t')
		return bad(p, "obsolete line folding in the request head");
	if (!colon || colon == line)
		return bad(p, "malformed header line: expected 'Name: value'");
	for (char *c = line; c < colon; c++)
		if (!http_is_tchar((unsigned char)*c))
			return bad(p, "malformed header name");
	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
		;
	*end = '\0';
	if (!value_ok(v))
		return bad(p, "control character in header %.40s", line);
	if (r->n_headers == HTTP_MAX_HEADERS)
		return fail(p, 431, "headers_too_large", "more than %d header fields",
		            HTTP_MAX_HEADERS);
	r->headers[r->n_headers].name = line;
	r->headers[r->n_headers++].value = v;
	return HTTP_P_HEAD;
}

/* 1 if the comma-separated list s holds token tok (case-insensitive). */
static int list_has(const char *s, const char *tok)
{
	size_t n = strlen(tok);

	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (ascii_ncasecmp(s, tok, n) == 0) {
			const char *e = s + n;
			while (*e == ' ' || *e == '\t')
				e++;
			if (*e == ',' || *e == '\0')
				return 1;
		}
		while (*s && *s != ',')
			s++;
	}
	return 0;
}

static enum http_parse_status content_length(struct http_parser *p, const char *v, int *seen)
{
	struct http_request *r = &p->req;
	size_t n = strlen(v);
	uint64_t len;

	if (n == 0 || strspn(v, "0123456789") != n)
		return bad(p, "malformed Content-Length");
	if (n > MAX_LENGTH_DIGITS || parse_u64(v, &len) < 0)
		return fail(p, 413, "request_too_large", "request body above %llu bytes",
		            (unsigned long long)p->max_body);
	if (*seen && len != r->content_length)
		return bad(p, "two different Content-Length values");
	*seen = 1;
	r->content_length = len;
	return HTTP_P_HEAD;
}

struct head_facts {
	int hosts, length_seen, te_seen;
	const char *connection, *expect;
};

static enum http_parse_status one_fact(struct http_parser *p, const struct http_header *h,
                                       struct head_facts *f)
{
	if (ascii_casecmp(h->name, "Host") == 0)
		f->hosts++;
	else if (ascii_casecmp(h->name, "Content-Length") == 0)
		return content_length(p, h->value, &f->length_seen);
	else if (ascii_casecmp(h->name, "Transfer-Encoding") == 0) {
		if (f->te_seen++ || ascii_casecmp(h->value, "chunked") != 0)
			return fail(p, 501, "not_implemented",
			            "Transfer-Encoding other than chunked is not implemented");
	} else if (ascii_casecmp(h->name, "Connection") == 0)
		f->connection = h->value;
	else if (ascii_casecmp(h->name, "Expect") == 0)
		f->expect = h->value;
	return HTTP_P_HEAD;
}

/* What the fields mean together: framing, persistence, expectations. */
static enum http_parse_status head_semantics(struct http_parser *p)
{
	struct http_request *r = &p->req;
	struct head_facts f = {0};

	for (size_t i = 0; i < r->n_headers; i++)
		if (one_fact(p, &r->headers[i], &f) == HTTP_P_ERROR)
			return HTTP_P_ERROR;
	if (r->minor == 1 && f.hosts != 1)
		return bad(p, "HTTP/1.1 needs exactly one Host header");
	if (f.te_seen && (f.length_seen || r->minor == 0))
		return bad(p, "Transfer-Encoding with Content-Length or in HTTP/1.0");
	if (f.expect && ascii_casecmp(f.expect, "100-continue") != 0)
		return fail(p, 417, "expectation_failed",
		            "only Expect: 100-continue is understood");
	r->chunked = f.te_seen;
	r->has_body = r->chunked || r->content_length > 0;
	r->expect_continue = f.expect != NULL && r->has_body;
	r->keep_alive = r->minor == 1 ? !(f.connection && list_has(f.connection, "close"))
	                              : (f.connection && list_has(f.connection, "keep-alive"));
	if (!r->chunked && r->content_length > p->max_body)
		return fail(p, 413, "request_too_large", "request body above %llu bytes",
		            (unsigned long long)p->max_body);
	return HTTP_P_HEAD;
}

/* p->head holds the whole head, ending in CRLF CRLF. */
static enum http_parse_status finish_head(struct http_parser *p)
{
	char *s = p->head.data, *end = s + p->head.len - 2, *eol;
	enum http_parse_status st;

	if (memchr(s, '\0', p->head.len))
		return bad(p, "NUL byte in the request head");
	for (int first = 1; s < end; s = eol + 2, first = 0) {
		eol = strstr(s, "\r\n");
		*eol = '\0';
		if (strchr(s, '\r'))
			return bad(p, "bare CR in the request head");
		st = first ? request_line(p, s) : field_line(p, s);
		if (st == HTTP_P_ERROR)
			return st;
	}
	if (head_semantics(p) == HTTP_P_ERROR)
		return HTTP_P_ERROR;
	p->state = HP_HEAD_DONE;
	return HTTP_P_HEAD;
}

static enum http_parse_status read_head(struct http_parser *p, const char *data, size_t len,
                                        size_t *used)
{
	size_t i = 0;

	while (i < len) {
		const char *nl = memchr(data + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (data + i)) + 1 : len - i;
		const char *h;

		*used = i;
		if (p->head.len + n > HTTP_MAX_HEAD)
			return fail(p, 431, "headers_too_large", "request head above %d bytes",
			            HTTP_MAX_HEAD);
		buf_append(&p->head, data + i, n);
		i += n;
		if (!nl)
			break;
		h = p->head.data + p->head.len;
		if (p->head.len < 2 || h[-2] != '\r')
			return bad(p, "bare LF in the request head");
		if (p->head.len == 2) { /* an empty line before the request line */
			if (++p->skipped_crlf > MAX_LEADING_CRLF)
				return bad(p, "empty lines instead of a request");
			buf_reset(&p->head);
		} else if (p->head.len >= 4 && memcmp(h - 4, "\r\n\r\n", 4) == 0) {
			*used = i;
			return finish_head(p);
		}
	}
	*used = len;
	return HTTP_P_MORE;
}

/* ---- the body ----------------------------------------------------------------- */

/*
 * Reads one CRLF-terminated line into p->line (without the CRLF).
 * 1 complete, 0 need more (all of data used), -1 error (set).
 */
static int read_line(struct http_parser *p, const char *data, size_t len, size_t *i)
{
	while (*i < len) {
		char c = data[(*i)++];
		if (c == '\n') {
			if (p->line_len == 0 || p->line[p->line_len - 1] != '\r') {
				bad(p, "bare LF in chunked framing");
				return -1;
			}
			p->line[--p->line_len] = '\0';
			return 1;
		}
		if (p->line_len + 2 > sizeof(p->line)) {
			bad(p, "chunk line longer than %d bytes", HTTP_MAX_LINE);
			return -1;
		}
		p->line[p->line_len++] = c;
	}
	return 0;
}

static enum http_parse_status chunk_size(struct http_parser *p)
{
	size_t n = strspn(p->line, "0123456789abcdefABCDEF");
	uint64_t size = 0;

	if (n == 0 || n > MAX_CHUNK_DIGITS ||
	    (p->line[n] != '\0' && p->line[n] != ';' && p->line[n] != ' ' && p->line[n] != '\t'))
		return bad(p, "malformed chunk size");
	for (size_t i = 0; i < n; i++) {
		int c = p->line[i];
		size = size * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	if (size > p->max_body - p->req.body.len)
		return fail(p, 413, "request_too_large", "request body above %llu bytes",
		            (unsigned long long)p->max_body);
	p->remaining = size;
	p->state = size ? HP_CHUNK_DATA : HP_TRAILERS;
	return HTTP_P_MORE;
}

static enum http_parse_status chunk_line(struct http_parser *p)
{
	const char *c;

	switch (p->state) {
	case HP_CHUNK_SIZE:
		return chunk_size(p);
	case HP_CHUNK_END:
		if (p->line[0] != '\0')
			return bad(p, "chunk data longer than its size");
		p->state = HP_CHUNK_SIZE;
		return HTTP_P_MORE;
	default: /* HP_TRAILERS */
		if (p->line[0] == '\0') {
			p->state = HP_DONE;
			return HTTP_P_DONE;
		}
		p->trailer_bytes += strlen(p->line);
		if (p->trailer_bytes > HTTP_MAX_TRAILERS)
			return fail(p, 431, "headers_too_large", "trailers above %d bytes",
			            HTTP_MAX_TRAILERS);
		for (c = p->line; http_is_tchar((unsigned char)*c); c++)
			;
		if (c == p->line || *c != ':')
			return bad(p, "malformed trailer field");
		return HTTP_P_MORE;
	}
}

static size_t take_body(struct http_parser *p, const char *data, size_t len)
{
	size_t n = p->remaining < len ? (size_t)p->remaining : len;

	buf_append(&p->req.body, data, n);
	p->remaining -= n;
	return n;
}

static enum http_parse_status read_chunked(struct http_parser *p, const char *data, size_t len,
                                           size_t *used)
{
	size_t i = 0;
	enum http_parse_status st = HTTP_P_MORE;
	int r;

	while (i < len && st == HTTP_P_MORE) {
		if (p->state == HP_CHUNK_DATA) {
			i += take_body(p, data + i, len - i);
			if (p->remaining == 0)
				p->state = HP_CHUNK_END;
			continue;
		}
		if ((r = read_line(p, data, len, &i)) <= 0) {
			st = r < 0 ? HTTP_P_ERROR : HTTP_P_MORE;
			break;
		}
		p->line_len = 0;
		st = chunk_line(p);
	}
	*used = i;
	return st;
}

/* ---- the whole ------------------------------------------------------------------- */

static enum http_parse_status start_body(struct http_parser *p)
{
	if (!p->req.has_body) {
		p->state = HP_DONE;
		return HTTP_P_DONE;
	}
	p->state = p->req.chunked ? HP_CHUNK_SIZE : HP_BODY;
	p->remaining = p->req.content_length;
	return HTTP_P_MORE;
}

enum http_parse_status http_parse(struct http_parser *p, const char *data, size_t len, size_t *used)
{
	*used = 0;
	switch (p->state) {
	case HP_HEAD:
		return read_head(p, data, len, used);
	case HP_HEAD_DONE:
		if (start_body(p) == HTTP_P_DONE)
			return HTTP_P_DONE;
		return http_parse(p, data, len, used);
	case HP_BODY:
		*used = take_body(p, data, len);
		if (p->remaining > 0)
			return HTTP_P_MORE;
		p->state = HP_DONE;
		return HTTP_P_DONE;
	case HP_DONE:
		return HTTP_P_DONE;
	case HP_ERROR:
		return HTTP_P_ERROR;
	default:
		return read_chunked(p, data, len, used);
	}
}
