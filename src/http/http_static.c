/*
 * http_static: the dashboard (SPEC 7): GET / and GET /assets/{file}, from
 * the files of web/dist/ embedded in the binary at build time (the
 * Makefile turns them into build/gen/web_assets.c). Nothing is read from
 * the disk and nothing refers to another origin, so the dashboard works
 * offline and as the binary was built.
 *
 * These routes need no key: the page and its script are public, the data
 * comes from the API with the key the user types in. Every answer carries
 * a strict Content-Security-Policy (scripts, styles, images and requests
 * from this origin only; no inline script or style; no framing), so that
 * an address or a remote reply shown on a page can never run as code.
 * docs/dashboard.md explains the policy.
 */
#include <string.h>

#include "http/http_handlers.h"
#include "http/http_static.h"
#include "util/util.h"

/* This origin only, nothing inline, no eval, no plugins, no framing of
 * the dashboard by another page. */
#define DASHBOARD_CSP                                                                              \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                \
	"form-action 'self'; frame-src 'self'; frame-ancestors 'none'"

static const struct {
	const char *ext;
	const char *type;
} TYPES[] = {
    {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
    {".json", "application/json"},         {".txt", "text/plain; charset=utf-8"},
};

const char *http_static_type(const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < ARRAY_LEN(TYPES); i++) {
		size_t e = strlen(TYPES[i].ext);
		if (n > e && strcmp(name + n - e, TYPES[i].ext) == 0)
			return TYPES[i].type;
	}
	return "application/octet-stream";
}

const struct http_asset *http_static_find(const char *name)
{
	for (size_t i = 0; i < http_n_assets; i++)
		if (strcmp(http_assets[i].name, name) == 0)
			return &http_assets[i];
	return NULL;
}

static void reply_asset(struct http_req *r, const char *name)
{
	const struct http_asset *a = http_static_find(name);

	if (!a) {
		http_reply_error(r, 404, "not_found", "no such file");
		return;
	}
	http_add_header(r, "Content-Security-Policy", DASHBOARD_CSP);
	http_add_header(r, "Referrer-Policy", "no-referrer");
	http_add_header(r, "X-Frame-Options", "DENY");
	http_add_header(r, "Cross-Origin-Opener-Policy", "same-origin");
	http_add_header(r, "Cross-Origin-Resource-Policy", "same-origin");
	http_reply(r, 200, http_static_type(a->name), a->data, a->len);
}

void http_h_dashboard(struct http_req *r)
{
	reply_asset(r, "index.html");
}

void http_h_asset(struct http_req *r)
{
	const char *name = http_req_param(r, "file");

	/* index.html is served at / only, so that the page has one address. */
	if (strcmp(name, "index.html") == 0)
		name = "";
	reply_asset(r, name);
}
