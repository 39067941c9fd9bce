/*
 * http_reply: what handlers call (http_api.h): the request's accessors,
 * work on workers, and every reply, built here and only here, so that all
 * responses carry the same headers and every error the same JSON shape.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "log/log.h"

/* ---- the request -------------------------------------------------------------- */

const char *http_req_method(const struct http_req *r)
{
	return r->msg->method;
}

const char *http_req_path(const struct http_req *r)
{
	return r->path;
}

const char *http_req_param(const struct http_req *r, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < r->match.n_params; i++)
		if (r->match.params[i].name_len == n && !memcmp(r->match.params[i].name, name, n))
			return r->match.params[i].value;
	return NULL;
}

const char *http_req_query(const struct http_req *r, const char *name)
{
	struct http_req *w = (struct http_req *)r; /* the values are kept with it */
	int bad;
	char *v = http_query_value(r->query, name, &bad);

	if (!v)
		return NULL;
	w->kept = xrealloc(w->kept, (w->n_kept + 1) * sizeof(*w->kept));
	w->kept[w->n_kept++] = v;
	return v;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	return http_request_header(r->msg, name);
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
	*len = r->msg->body.len;
	return r->msg->body.data ? r->msg->body.data : "";
}

const struct http_auth *http_req_auth(const struct http_req *r)
{
	return r->authed ? &r->auth : NULL;
}

const char *http_req_id(const struct http_req *r)
{
	return r->conn->id;
}

const struct conf *http_req_conf(const struct http_req *r)
{
	return r->conn->h->conf;
}

const struct http_deps *http_req_deps(const struct http_req *r)
{
	return &r->conn->h->deps;
}

void http_req_defer(struct http_req *r, void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
	http_conn_defer(r->conn, work, done, arg);
}

int http_query_int(struct http_req *r, const char *name, int64_t min, int64_t max, int64_t *out,
                   struct http_problem *p)
{
	const char *v = http_req_query(r, name);
	uint64_t n;

	if (!v)
		return 0;
	if (parse_u64(v, &n) < 0 || (int64_t)n < min || (int64_t)n > max || n > INT64_MAX) {
		http_problem_param(p, name, "expected an integer from %lld to %lld", (long long)min,
		                   (long long)max);
		return -1;
	}
	*out = (int64_t)n;
	return 0;
}

/* ---- replies ------------------------------------------------------------------ */

static const struct {
	int code;
	const char *text;
} STATUS_TEXT[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Content Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {503, "Service Unavailable"},
    {505, "HTTP Version Not Supported"},
};

const char *http_status_text(int status)
{
	for (size_t i = 0; i < ARRAY_LEN(STATUS_TEXT); i++)
		if (STATUS_TEXT[i].code == status)
			return STATUS_TEXT[i].text;
	return "Unknown";
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
	/* A header is one line: CR or LF would start another. */
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) {
		log_err("http=%s event=bug what=header_with_newline name=%s", r->conn->id,
		        log_q(name));
		return;
	}
	buf_printf(&r->extra_headers, "%s: %s\r\n", name, value);
}

void http_reply(struct http_req *r, int status, const char *content_type, const void *body,
                size_t len)
{
	struct buf out;
	int close, head = r->msg && strcmp(r->msg->method, "HEAD") == 0;

	if (r->replied) {
		log_err("http=%s event=bug what=second_reply status=%d", r->conn->id, status);
		return;
	}
	close = http_conn_closing(r->conn);
	buf_init(&out);
	buf_printf(&out,
	           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	           "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
	           status, http_status_text(status), content_type, len);
	if (r->extra_headers.len)
		buf_append(&out, r->extra_headers.data, r->extra_headers.len);
	if (close)
		buf_puts(&out, "Connection: close\r\n");
	else if (r->msg && r->msg->minor == 0)
		buf_puts(&out, "Connection: keep-alive\r\n");
	buf_puts(&out, "\r\n");
	if (!head && len)
		buf_append(&out, body, len);
	http_conn_send(r->conn, status, &out);
	buf_free(&out);
}

void http_reply_json(struct http_req *r, int status, json_t *body)
{
	char *text =
	    body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))
	         : NULL;
	size_t len = text ? strlen(text) : 0;

	json_decref(body);
	if (!text) {
		http_reply_error(r, 500, "internal_error", "cannot encode the answer");
		return;
	}
	/* A newline, so that curl output ends the line. */
	text = xrealloc(text, len + 2);
	memcpy(text + len, "\n", 2);
	http_reply(r, status, "application/json", text, len + 1);
	free(text);
}

static json_t *error_object(const char *code, const char *message)
{
	return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

void http_reply_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_reply_json(r, status, error_object(code, msg));
}

void http_reply_problem(struct http_req *r, const struct http_problem *p)
{
	json_t *body = error_object(p->code, p->message);
	const char *key = strcmp(p->code, "invalid_parameter") == 0 ? "parameter" : "field";

	if (p->field[0])
		json_object_set_new(json_object_get(body, "error"), key, json_string(p->field));
	http_reply_json(r, p->status ? p->status : 400, body);
}
