/*
 * http_route: matching a request to the route table, and the query
 * string. PURE (libc + util): unit-tested in tests/unit/test_http_route.c.
 *
 * A pattern is split at '/'; a segment "{name}" matches any one non-empty
 * segment of the path, any other must be equal. Segments are compared
 * after percent-decoding (so %2F inside a parameter stays inside it).
 * A path that matches a pattern with another method gives "no method"
 * and the Allow list (GET routes answer HEAD too).
 */
#ifndef POSTHORN_HTTP_ROUTE_H
#define POSTHORN_HTTP_ROUTE_H

#include <stddef.h>
#include <stdint.h>

struct http_req;

/* Who may call a route. */
enum http_auth_need {
	HTTP_AUTH_NONE,    /* anyone (healthz, metrics, the OpenAPI document) */
	HTTP_AUTH_ACCOUNT, /* any valid key; it acts for its own account */
	HTTP_AUTH_ADMIN,   /* a key made with --admin; 403 for other keys */
};

typedef void (*http_handler)(struct http_req *r);

struct http_route {
	const char *method;  /* "GET", "POST", ... (a GET route answers HEAD too) */
	const char *pattern; /* "/v1/apikeys/{id}": {name} matches one path segment */
	enum http_auth_need auth;
	http_handler handler;
};

/* The route table (http_routes.c). */
extern const struct http_route http_routes[];
extern const size_t http_n_routes;

#define HTTP_MAX_PARAMS   4
#define HTTP_MAX_SEGMENTS 16

struct http_param {
	const char *name; /* into the pattern */
	size_t name_len;
	const char *value; /* decoded, into the match's storage */
};

struct http_match {
	const struct http_route *route;
	size_t index; /* in the table */
	struct http_param params[HTTP_MAX_PARAMS];
	size_t n_params;
	char *storage;  /* decoded path segments (malloc'd) */
	char allow[96]; /* HTTP_MATCH_NO_METHOD: "GET, HEAD, DELETE" */
};

enum http_match_result {
	HTTP_MATCH_OK,
	HTTP_MATCH_NO_PATH,   /* 404 */
	HTTP_MATCH_NO_METHOD, /* 405 with m->allow */
	HTTP_MATCH_BAD_PATH,  /* 400: not "/...", bad percent-encoding, NUL */
};

enum http_match_result http_route_match(const struct http_route *routes, size_t n,
                                        const char *method, const char *path, struct http_match *m);
void http_match_free(struct http_match *m);

/* Decodes %XX (and '+' as space when plus is set) from s[0..n) into out
 * (n + 1 bytes at least). -1 for a bad escape or a decoded NUL. */
int http_pct_decode(const char *s, size_t n, int plus, char *out);

/* The first value of name in query ("a=1&b=2", without '?'), decoded into
 * a malloc'd string (empty for "a" or "a="); NULL if absent or badly
 * encoded (*bad set to 1 then). */
char *http_query_value(const char *query, const char *name, int *bad);

#endif
