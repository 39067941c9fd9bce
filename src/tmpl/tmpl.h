/*
 * tmpl: the Mustache renderer of the HTTP API's templates. PURE: libc,
 * util and jansson's read-only accessors; no I/O, no globals, no locks.
 *
 * The dialect is mustache.js 4.2.0's, byte for byte (docs/templates.md;
 * tests/tmpl/ checks it differentially against mustache.js): variables,
 * {{{raw}}} and {{& raw}}, sections over lists, objects and truthy values,
 * inverted sections, dotted names, {{.}}, comments, set delimiters and the
 * standalone-line rules. Partials ({{> name}}) render empty, as in
 * mustache.js without partials, and are reported as a warning.
 *
 * Compile once, render many times: tmpl_compile() parses the text into an
 * immutable compiled form; tmpl_render() reads it and never writes it, so
 * any number of threads may render one compiled template at once (each
 * with its own result, and data that nobody modifies meanwhile).
 *
 * Every bound is an error, never a crash or a hang: the template's size
 * and section nesting are checked at compile time, the output's size and
 * the work done (steps: tags visited, loop iterations, name lookups) at
 * render time. Errors say which bound, or, for syntax errors, where.
 */
#ifndef POSTHORN_TMPL_H
#define POSTHORN_TMPL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/util.h"

/* The defaults of struct tmpl_limits (tmpl_limits_default). */
#define TMPL_DEFAULT_MAX_TEMPLATE (1024 * 1024)
#define TMPL_DEFAULT_MAX_DEPTH    100
#define TMPL_DEFAULT_MAX_OUTPUT   (4 * 1024 * 1024)
#define TMPL_DEFAULT_MAX_STEPS    10000000

#define TMPL_MAX_WARNINGS 32  /* distinct warnings kept per rendering */
#define TMPL_NAME_MAX     128 /* bytes of a name kept in a warning */

struct tmpl_limits {
	size_t max_template; /* bytes of template text */
	unsigned max_depth;  /* sections nested in sections */
	size_t max_output;   /* bytes of one rendering */
	uint64_t max_steps;  /* units of work of one rendering */
};

/* Fill l with the TMPL_DEFAULT_* values. */
void tmpl_limits_default(struct tmpl_limits *l);

enum tmpl_mode {
	TMPL_HTML, /* {{x}} is HTML-escaped: & < > " ' / ` = (as mustache.js) */
	TMPL_TEXT, /* {{x}} is written as it is, like {{{x}}} */
};

enum tmpl_status {
	TMPL_OK = 0,
	TMPL_ERR_SYNTAX,   /* compile: unclosed tag or section, bad close, bad delimiters */
	TMPL_ERR_TEMPLATE, /* compile: the text is above max_template */
	TMPL_ERR_DEPTH,    /* compile: sections nested deeper than max_depth */
	TMPL_ERR_OUTPUT,   /* render: the output would pass max_output */
	TMPL_ERR_STEPS,    /* render: the work would pass max_steps */
};

/*
 * What went wrong. line and column (1-based; the column counts UTF-8
 * characters) say where in the template, for syntax and depth errors;
 * they are 0 for the other errors. message is the reason without the
 * position: one line, with names from the template cut to 60 bytes and
 * their control characters turned into spaces.
 */
struct tmpl_error {
	enum tmpl_status status;
	unsigned line, column;
	char message[256];
};

/* "syntax", "template_size", "depth", "output_size", "steps"; "ok". */
const char *tmpl_status_name(enum tmpl_status s);

/* Compiled template: opaque, immutable once compiled. */
struct tmpl;

/*
 * Compile text[0..len) (any bytes; the API hands UTF-8). Limits are copied
 * into the template and apply to every rendering of it; NULL means the
 * defaults. Returns NULL and fills *err on an error (err may not be NULL).
 */
struct tmpl *tmpl_compile(const char *text, size_t len, const struct tmpl_limits *lim,
                          struct tmpl_error *err);
/* Free t; NULL is a no-op. No rendering of t may be running. */
void tmpl_free(struct tmpl *t);

enum tmpl_warning_kind {
	TMPL_WARN_MISSING, /* a {{name}} whose name no context has: rendered empty */
	TMPL_WARN_PARTIAL, /* a {{> name}}: partials are not supported, rendered empty */
};

struct tmpl_warning {
	enum tmpl_warning_kind kind;
	char *name; /* the tag's name, cut to TMPL_NAME_MAX bytes; owned by the result */
};

/* "missing", "partial". */
const char *tmpl_warning_kind_name(enum tmpl_warning_kind k);

/*
 * One rendering. out holds the output (NUL-terminated; it may contain NUL
 * bytes from the data, so use out.len); warnings are distinct (kind, name)
 * pairs in the order first met, at most TMPL_MAX_WARNINGS of them;
 * warnings_truncated is 1 when a further one did not fit.
 * On an error out is incomplete and must not be used.
 */
struct tmpl_result {
	struct buf out;
	struct tmpl_warning warnings[TMPL_MAX_WARNINGS];
	size_t n_warnings;
	int warnings_truncated;
	struct tmpl_error err;
};

/*
 * Render t with data (any JSON value, usually an object; NULL renders as
 * an empty context) in the given mode into *res, which this initialises
 * (no need to clear it first; do free it after, even on error). Returns 0,
 * or -1 with res->err filled (TMPL_ERR_OUTPUT or TMPL_ERR_STEPS).
 */
int tmpl_render(const struct tmpl *t, const json_t *data, enum tmpl_mode mode,
                struct tmpl_result *res);
/* Release what res holds and zero it. Safe on a zeroed result and twice. */
void tmpl_result_free(struct tmpl_result *res);

#endif
