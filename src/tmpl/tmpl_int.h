/*
 * tmpl_int: what the files of src/tmpl/ share and nobody else sees: the
 * compiled form (written by tmpl_parse.c, read by tmpl_render.c) and the
 * JavaScript value semantics that mustache.js gives JSON data (tmpl_js.c).
 */
#ifndef POSTHORN_TMPL_INT_H
#define POSTHORN_TMPL_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tmpl/tmpl.h"
#include "util/util.h"

/* Above this, a caller's max_depth is lowered: rendering recurses once per level. */
#define TMPL_DEPTH_CEILING 1000

enum tnode_type {
	TN_TEXT,     /* off/len in text */
	TN_ESCAPED,  /* {{name}}: off/len in names */
	TN_RAW,      /* {{{name}}}, {{& name}} */
	TN_SECTION,  /* {{#name}}: children are the nodes up to end */
	TN_INVERTED, /* {{^name}} */
	TN_PARTIAL,  /* {{> name}}: renders empty, with a warning */
};

struct tnode {
	uint32_t type;
	uint32_t off, len;
	uint32_t end; /* sections: index of the first node after the section */
};

/*
 * Nodes in template order; a section's children follow it, up to its end.
 * Text and names live in two arenas because the standalone-line rule cuts
 * text back after tags on the same line have been stored.
 */
struct tmpl {
	struct tnode *nodes;
	size_t n_nodes, cap_nodes;
	struct buf text;
	struct buf names;
	unsigned max_nest; /* deepest section nesting in this template */
	struct tmpl_limits lim;
};

/* ---------- JavaScript semantics (tmpl_js.c) ---------- */

/* Length of the JavaScript whitespace character (RegExp \s) at s, or 0. */
size_t js_space_len(const char *s, size_t n);

/* Number.prototype.toString(): shortest round-trip digits; out has 32 bytes. */
void js_number(double d, char out[32]);

/*
 * A value as mustache.js sees it: undefined, a JSON value (null
 * included), or what JavaScript makes of one: the length of an array or a
 * string (a number), one UTF-16 unit of a string (a one-character string;
 * half of a surrogate pair is U+FFFD, as it is when written out as UTF-8).
 */
enum jv_kind { JV_UNDEF, JV_JSON, JV_NUM, JV_CHAR };
struct jv {
	enum jv_kind kind;
	const json_t *j; /* JV_JSON */
	double num;      /* JV_NUM */
	char ch[4];      /* JV_CHAR */
	size_t ch_len;
};

/*
 * v[name]: 1 and *out when v has the property: an object's key, an
 * array's index or "length", and, when primitives is set, a string's index
 * or "length" (mustache.js asks strings only at the end of a dotted name).
 * Otherwise 0 and *out undefined. Properties that JavaScript inherits
 * (toString, map, ...) are not emulated.
 */
int jv_prop(const struct jv *v, const char *name, size_t n, int primitives, struct jv *out);
/* undefined or null: what ends a dotted name and renders nothing. */
int jv_nullish(const struct jv *v);
/* JavaScript's truthiness: false for undefined, null, false, 0, NaN, "". */
int jv_truthy(const struct jv *v);

#endif
