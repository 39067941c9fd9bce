/*
 * http_api: what a route handler sees. A route (http_routes.c) names a
 * method, a path pattern, who may call it and a handler; the server has
 * parsed the request, matched the route, checked the API key and read the
 * whole body before the handler runs.
 *
 * A handler must answer exactly once, with one of the http_reply_*()
 * calls, either before it returns or later from the loop. Work that blocks
 * (the database, files) never runs on the loop: hand it to
 * http_req_defer(), which runs work(arg) on a worker thread and done(arg)
 * back on the loop, where done() replies. Until the reply, the request and
 * everything its accessors returned stay valid, even if the client has
 * gone (the reply is then dropped). See http_keys.c for the pattern.
 *
 * Routes themselves (struct http_route, the table) are in http_route.h.
 *
 * Errors are JSON, SPEC 6: {"error": {"code": ..., "message": ...}} plus
 * "field" or "parameter" naming what was wrong. The codes are listed in
 * docs/api.md and never change meaning.
 */
#ifndef POSTHORN_HTTP_API_H
#define POSTHORN_HTTP_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "http/http_route.h"

struct conf;

/* The key a request came with (routes with HTTP_AUTH_ACCOUNT or ADMIN). */
struct http_auth {
	int64_t key_id;
	char account[65];
	int admin; /* sees every account and the queue */
};

/* ---- the request ---- */
const char *http_req_method(const struct http_req *r);
const char *http_req_path(const struct http_req *r); /* as sent, without the query */
/* A {name} of the pattern, percent-decoded; NULL if the pattern has none. */
const char *http_req_param(const struct http_req *r, const char *name);
/* The first ?name= of the query, percent-decoded ('+' is a space); NULL
 * when absent. */
const char *http_req_query(const struct http_req *r, const char *name);
const char *http_req_header(const struct http_req *r, const char *name);
const char *http_req_body(const struct http_req *r, size_t *len);
/* NULL on routes with HTTP_AUTH_NONE. */
const struct http_auth *http_req_auth(const struct http_req *r);
/* The request's ID, for log lines (session=ID). */
const char *http_req_id(const struct http_req *r);
const struct conf *http_req_conf(const struct http_req *r);
const struct http_deps *http_req_deps(const struct http_req *r);

/* Runs work(arg) on a worker, then done(arg) on the loop. */
void http_req_defer(struct http_req *r, void (*work)(void *arg), void (*done)(void *arg),
                    void *arg);

/* ---- replies ---- */
/* An extra response header (Allow, Retry-After, Location...); before the reply. */
void http_add_header(struct http_req *r, const char *name, const char *value);
void http_reply(struct http_req *r, int status, const char *content_type, const void *body,
                size_t len);
/* Takes the reference to body. */
void http_reply_json(struct http_req *r, int status, json_t *body);
void http_reply_error(struct http_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- JSON bodies and fields (http_json.c) ---- */

/* A 4xx answer being built: what http_reply_problem() sends. */
struct http_problem {
	int status;       /* 400 */
	const char *code; /* "malformed_json", "invalid_field", "invalid_parameter" */
	char field[64];   /* the field or parameter named, or "" */
	char message[256];
};

/* Sends p (with "field" or "parameter" when p->field is set). */
void http_reply_problem(struct http_req *r, const struct http_problem *p);

/* The body as a JSON object (new reference), or NULL with p set:
 * malformed_json naming line and column, or "expected a JSON object". */
json_t *http_json_body(const char *body, size_t len, struct http_problem *p);

/*
 * Field accessors: 0 ok (absent optional fields leave *out unchanged),
 * -1 with p set to invalid_field naming the field: "name: required",
 * "name: expected a string of 1 to 64 characters", ...
 */
int http_json_string(json_t *obj, const char *field, int required, size_t min_len, size_t max_len,
                     const char **out, struct http_problem *p);
int http_json_bool(json_t *obj, const char *field, int required, int *out, struct http_problem *p);
int http_json_int(json_t *obj, const char *field, int required, int64_t min, int64_t max,
                  int64_t *out, struct http_problem *p);
/* An array of strings of at most max_items items (each 1..max_len bytes);
 * *out is borrowed from obj. */
int http_json_strings(json_t *obj, const char *field, int required, size_t max_items,
                      size_t max_len, json_t **out, struct http_problem *p);
/* Every member of obj is one of known (NULL-terminated); else the first
 * other one is named: "colour: unknown field". */
int http_json_known(json_t *obj, const char *const *known, struct http_problem *p);
/* Unix seconds as an RFC 3339 UTC string ("2026-01-02T03:04:05Z"), or
 * JSON null for t <= 0 (never). */
json_t *http_json_time(int64_t t);
/* A field that is not what it should be: invalid_field, "field: ...";
 * returns -1. */
int http_problem_field(struct http_problem *p, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A query or path parameter that is not what it should be. */
void http_problem_param(struct http_problem *p, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A query parameter as an integer in [min, max]; absent: *out unchanged. */
int http_query_int(struct http_req *r, const char *name, int64_t min, int64_t max, int64_t *out,
                   struct http_problem *p);

#endif
