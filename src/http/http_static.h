/*
 * http_static.h: the files of the dashboard embedded in the binary
 * (web/dist/, turned into build/gen/web_assets.c by the Makefile), and
 * how http_static.c finds them. PURE lookups, unit-tested in
 * tests/unit/test_http_static.c.
 */
#ifndef POSTHORN_HTTP_STATIC_H
#define POSTHORN_HTTP_STATIC_H

#include <stddef.h>

struct http_asset {
	const char *name; /* "index.html", "app.js": a file of web/dist/ */
	const unsigned char *data;
	size_t len;
};

/* build/gen/web_assets.c, sorted by name. */
extern const struct http_asset http_assets[];
extern const size_t http_n_assets;

/* The asset called name, or NULL. */
const struct http_asset *http_static_find(const char *name);
/* The Content-Type of a file by its extension. */
const char *http_static_type(const char *name);

#endif
