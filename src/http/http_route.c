/*
 * http_route: route matching and query strings (see http_route.h). PURE.
 */
#include "http/http_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int http_pct_decode(const char *s, size_t n, int plus, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '+' && plus) {
			out[o++] = ' ';
		} else if (s[i] != '%') {
			out[o++] = s[i];
		} else {
			if (i + 2 >= n)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		}
	}
	out[o] = '\0';
	return 0;
}

/* Splits the decoded path into segments (pointers into storage). */
static int split_path(const char *path, char *storage, char **segs, size_t *n)
{
	const char *p = path + 1;

	*n = 0;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (*n == HTTP_MAX_SEGMENTS || http_pct_decode(p, len, 0, storage) < 0)
			return -1;
		segs[(*n)++] = storage;
		storage += strlen(storage) + 1;
		if (!slash)
			return 0;
		p = slash + 1;
	}
}

/* 1 if the pattern matches the segments; fills m's params. */
static int pattern_match(const char *pattern, char *const *segs, size_t n, struct http_match *m)
{
	const char *p = pattern + 1;
	size_t i = 0;

	m->n_params = 0;
	for (;; i++) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (i >= n)
			return 0;
		if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
			if (!segs[i][0] || m->n_params == HTTP_MAX_PARAMS)
				return 0;
			m->params[m->n_params].name = p + 1;
			m->params[m->n_params].name_len = len - 2;
			m->params[m->n_params++].value = segs[i];
		} else if (strlen(segs[i]) != len || memcmp(segs[i], p, len) != 0) {
			return 0;
		}
		if (!slash)
			return i + 1 == n;
		p = slash + 1;
	}
}

static int method_fits(const char *route_method, const char *method)
{
	return strcmp(route_method, method) == 0 ||
	       (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

static void allow_add(struct http_match *m, const char *method)
{
	size_t len = strlen(m->allow);

	if (len + strlen(method) + 3 < sizeof(m->allow))
		snprintf(m->allow + len, sizeof(m->allow) - len, "%s%s", len ? ", " : "", method);
}

enum http_match_result http_route_match(const struct http_route *routes, size_t n,
                                        const char *method, const char *path, struct http_match *m)
{
	char *segs[HTTP_MAX_SEGMENTS];
	size_t n_segs;
	int path_known = 0;

	memset(m, 0, sizeof(*m));
	if (path[0] != '/')
		return HTTP_MATCH_BAD_PATH;
	m->storage = xmalloc(strlen(path) + 1);
	if (split_path(path, m->storage, segs, &n_segs) < 0)
		return HTTP_MATCH_BAD_PATH;
	for (size_t i = 0; i < n; i++) {
		struct http_match probe = *m;
		if (!pattern_match(routes[i].pattern, segs, n_segs, &probe))
			continue;
		path_known = 1;
		if (method_fits(routes[i].method, method)) {
			*m = probe;
			m->route = &routes[i];
			m->index = i;
			return HTTP_MATCH_OK;
		}
		allow_add(m, routes[i].method);
		if (strcmp(routes[i].method, "GET") == 0)
			allow_add(m, "HEAD");
	}
	return path_known ? HTTP_MATCH_NO_METHOD : HTTP_MATCH_NO_PATH;
}

void http_match_free(struct http_match *m)
{
	free(m->storage);
	m->storage = NULL;
}

char *http_query_value(const char *query, const char *name, int *bad)
{
	size_t nlen = strlen(name);

	*bad = 0;
	while (query && *query) {
		const char *amp = strchr(query, '&');
		size_t len = amp ? (size_t)(amp - query) : strlen(query);
		const char *eq = memchr(query, '=', len);
		size_t klen = eq ? (size_t)(eq - query) : len;
		char *key = xmalloc(klen + 1), *val = NULL;
		int match = http_pct_decode(query, klen, 1, key) == 0 && strlen(key) == nlen &&
		            memcmp(key, name, nlen) == 0;

		free(key);
		if (match) {
			size_t vlen = eq ? len - klen - 1 : 0;
			val = xmalloc(vlen + 1);
			if (http_pct_decode(eq ? eq + 1 : "", vlen, 1, val) == 0)
				return val;
			free(val);
			*bad = 1;
			return NULL;
		}
		query = amp ? amp + 1 : NULL;
	}
	return NULL;
}
