/*
 * tmpl_render: compiled template + JSON data -> text. PURE.
 *
 * It reads the compiled form and the data and writes only the result, so
 * renderings run concurrently. The rules are mustache.js 4.2.0's:
 *   - A name is looked up in the context stack, innermost first: "." is
 *     the innermost context itself; a plain name is a key (or an array's
 *     index or length) of the first context that has it; a dotted name
 *     a.b.c is followed from each context in turn, innermost first, until
 *     one has the whole path (not, as the spec says, only the first part).
 *   - A section renders nothing for a falsy value (undefined, null, false,
 *     0, "", an empty list), once per element for a list, once with the
 *     value pushed for an object, a string or a number, and once in the
 *     same context for true. An inverted section renders once for a
 *     falsy value or an empty list.
 *   - A variable writes String(value): numbers as JavaScript writes them,
 *     lists joined by ",", objects as "[object Object]"; null and
 *     undefined write nothing. In HTML mode {{x}} escapes & < > " ' / ` =.
 * A name found nowhere is a "missing" warning; a partial, a "partial" one.
 * Every node visited, context searched, path part followed, list element
 * and joined element is a step; steps and output bytes are bounded.
 */
#include "tmpl/tmpl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct render {
	const struct tmpl *t;
	enum tmpl_mode mode;
	struct tmpl_result *res;
	struct jv *stack; /* contexts, innermost last */
	size_t depth;
	uint64_t steps;
};

/* ---------- bounds and warnings ---------- */

static int step(struct render *r)
{
	if (++r->steps <= r->t->lim.max_steps)
		return 0;
	r->res->err.status = TMPL_ERR_STEPS;
	snprintf(r->res->err.message, sizeof(r->res->err.message),
	         "rendering needs more than %llu steps (loops or lookups too large)",
	         (unsigned long long)r->t->lim.max_steps);
	return -1;
}

static int emit(struct render *r, const char *s, size_t n)
{
	struct buf *out = &r->res->out;

	if (n > r->t->lim.max_output - out->len) {
		r->res->err.status = TMPL_ERR_OUTPUT;
		snprintf(r->res->err.message, sizeof(r->res->err.message),
		         "the output would be larger than %zu bytes", r->t->lim.max_output);
		return -1;
	}
	buf_append(out, s, n);
	return 0;
}

static const char *html_entity(unsigned char c)
{
	switch (c) {
	case '&':
		return "&amp;";
	case '<':
		return "&lt;";
	case '>':
		return "&gt;";
	case '"':
		return "&quot;";
	case '\'':
		return "&#39;";
	case '/':
		return "&#x2F;";
	case '`':
		return "&#x60;";
	case '=':
		return "&#x3D;";
	default:
		return NULL;
	}
}

/* Write s[0..n), HTML-escaped when esc is set. */
static int emit_text(struct render *r, const char *s, size_t n, int esc)
{
	size_t i, from = 0;

	if (!esc)
		return emit(r, s, n);
	for (i = 0; i < n; i++) {
		const char *ent = html_entity((unsigned char)s[i]);
		if (!ent)
			continue;
		if (emit(r, s + from, i - from) < 0 || emit(r, ent, strlen(ent)) < 0)
			return -1;
		from = i + 1;
	}
	return emit(r, s + from, n - from);
}

static void warn(struct render *r, enum tmpl_warning_kind kind, const char *name, size_t n)
{
	struct tmpl_result *res = r->res;
	size_t i;

	if (n > TMPL_NAME_MAX) {
		n = TMPL_NAME_MAX;
		while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < res->n_warnings; i++) {
		const struct tmpl_warning *w = &res->warnings[i];
		if (w->kind == kind && strlen(w->name) == n && memcmp(w->name, name, n) == 0)
			return;
	}
	if (res->n_warnings == TMPL_MAX_WARNINGS) {
		res->warnings_truncated = 1;
		return;
	}
	res->warnings[res->n_warnings].kind = kind;
	res->warnings[res->n_warnings++].name = xstrndup(name, n);
}

/* ---------- lookup ---------- */

/* A dotted name followed from one context: 1 if its last part is there. */
static int follow_path(struct render *r, const struct jv *ctx, const char *name, size_t n,
                       struct jv *out, int *hit)
{
	const char *seg = name, *end = name + n;
	struct jv v = *ctx;

	*hit = 0;
	while (!jv_nullish(&v)) {
		const char *dot = memchr(seg, '.', (size_t)(end - seg));
		const char *seg_end = dot ? dot : end;
		if (step(r) < 0)
			return -1;
		*hit = jv_prop(&v, seg, (size_t)(seg_end - seg), 1, &v);
		if (!dot) {
			*out = v;
			return 0;
		}
		*hit = 0;
		seg = dot + 1;
	}
	return 0;
}

/* Resolve a name in the context stack. 0 with *found set, or -1 (steps). */
static int lookup(struct render *r, const char *name, size_t n, struct jv *out, int *found)
{
	const char *dot = memchr(name, '.', n);
	size_t i;

	memset(out, 0, sizeof(*out));
	*found = 1;
	if (n == 1 && name[0] == '.') {
		*out = r->stack[r->depth - 1];
		return 0;
	}
	for (i = r->depth; i-- > 0;) {
		int hit;
		if (step(r) < 0)
			return -1;
		if (dot && dot != name) {
			if (follow_path(r, &r->stack[i], name, n, out, &hit) < 0)
				return -1;
		} else {
			hit = jv_prop(&r->stack[i], name, n, 0, out);
		}
		if (hit)
			return 0;
	}
	memset(out, 0, sizeof(*out));
	*found = 0;
	return 0;
}

/* ---------- values ---------- */

static int emit_value(struct render *r, const struct jv *v, int esc);

/* Array.prototype.toString: elements joined by ",", null as "". */
static int emit_array(struct render *r, const json_t *a, int esc)
{
	size_t i;

	for (i = 0; i < json_array_size(a); i++) {
		const json_t *e = json_array_get(a, i);
		struct jv ev = {.kind = JV_JSON, .j = e};
		if (step(r) < 0 || (i > 0 && emit(r, ",", 1) < 0))
			return -1;
		if (!json_is_null(e) && emit_value(r, &ev, esc) < 0)
			return -1;
	}
	return 0;
}

static int emit_number(struct render *r, double d)
{
	char num[32];

	js_number(d, num);
	return emit(r, num, strlen(num));
}

/* String(v), escaped when esc is set. */
static int emit_value(struct render *r, const struct jv *v, int esc)
{
	if (v->kind == JV_NUM)
		return emit_number(r, v->num);
	if (v->kind == JV_CHAR)
		return emit_text(r, v->ch, v->ch_len, esc);
	if (v->kind == JV_UNDEF)
		return emit(r, "undefined", 9);
	switch (json_typeof(v->j)) {
	case JSON_STRING:
		return emit_text(r, json_string_value(v->j), json_string_length(v->j), esc);
	case JSON_INTEGER:
		return emit_number(r, (double)json_integer_value(v->j));
	case JSON_REAL:
		return emit_number(r, json_real_value(v->j));
	case JSON_TRUE:
		return emit(r, "true", 4);
	case JSON_FALSE:
		return emit(r, "false", 5);
	case JSON_NULL:
		return emit(r, "null", 4);
	case JSON_OBJECT:
		return emit(r, "[object Object]", 15);
	case JSON_ARRAY:
		return emit_array(r, v->j, esc);
	}
	return 0;
}

/* ---------- nodes ---------- */

static int render_range(struct render *r, size_t from, size_t to);

static const char *node_name(const struct render *r, const struct tnode *n)
{
	return r->t->names.data + n->off;
}

static int render_variable(struct render *r, const struct tnode *n)
{
	struct jv v;
	int found;

	if (lookup(r, node_name(r, n), n->len, &v, &found) < 0)
		return -1;
	if (!found)
		warn(r, TMPL_WARN_MISSING, node_name(r, n), n->len);
	if (jv_nullish(&v))
		return 0;
	return emit_value(r, &v, n->type == TN_ESCAPED && r->mode == TMPL_HTML);
}

/* The children of section node i, with v as the innermost context. */
static int render_pushed(struct render *r, size_t i, const struct jv *v)
{
	int rc;

	r->stack[r->depth++] = *v;
	rc = render_range(r, i + 1, r->t->nodes[i].end);
	r->depth--;
	return rc;
}

static int render_section(struct render *r, size_t i)
{
	const struct tnode *n = &r->t->nodes[i];
	struct jv v;
	size_t k;
	int found;

	if (lookup(r, node_name(r, n), n->len, &v, &found) < 0)
		return -1;
	if (!jv_truthy(&v))
		return 0;
	if (v.kind == JV_JSON && json_is_array(v.j)) {
		for (k = 0; k < json_array_size(v.j); k++) {
			struct jv e = {.kind = JV_JSON, .j = json_array_get(v.j, k)};
			if (step(r) < 0 || render_pushed(r, i, &e) < 0)
				return -1;
		}
		return 0;
	}
	if (v.kind == JV_JSON && json_is_true(v.j))
		return render_range(r, i + 1, n->end);
	return render_pushed(r, i, &v);
}

static int render_inverted(struct render *r, size_t i)
{
	const struct tnode *n = &r->t->nodes[i];
	struct jv v;
	int found;

	if (lookup(r, node_name(r, n), n->len, &v, &found) < 0)
		return -1;
	if (jv_truthy(&v) &&
	    !(v.kind == JV_JSON && json_is_array(v.j) && json_array_size(v.j) == 0))
		return 0;
	return render_range(r, i + 1, n->end);
}

static int render_node(struct render *r, size_t i)
{
	const struct tnode *n = &r->t->nodes[i];

	switch ((enum tnode_type)n->type) {
	case TN_TEXT:
		return emit(r, r->t->text.data + n->off, n->len);
	case TN_ESCAPED:
	case TN_RAW:
		return render_variable(r, n);
	case TN_SECTION:
		return render_section(r, i);
	case TN_INVERTED:
		return render_inverted(r, i);
	case TN_PARTIAL:
		warn(r, TMPL_WARN_PARTIAL, node_name(r, n), n->len);
		return 0;
	}
	return 0;
}

static int render_range(struct render *r, size_t from, size_t to)
{
	size_t i = from;

	while (i < to) {
		const struct tnode *n = &r->t->nodes[i];
		if (step(r) < 0 || render_node(r, i) < 0)
			return -1;
		i = n->type == TN_SECTION || n->type == TN_INVERTED ? n->end : i + 1;
	}
	return 0;
}

/* ---------- interface ---------- */

const char *tmpl_warning_kind_name(enum tmpl_warning_kind k)
{
	return k == TMPL_WARN_PARTIAL ? "partial" : "missing";
}

int tmpl_render(const struct tmpl *t, const json_t *data, enum tmpl_mode mode,
                struct tmpl_result *res)
{
	struct render r = {.t = t, .mode = mode, .res = res};
	int rc;

	memset(res, 0, sizeof(*res));
	buf_init(&res->out);
	r.stack = xcalloc(t->max_nest + 1, sizeof(*r.stack));
	if (data)
		r.stack[r.depth++] = (struct jv){.kind = JV_JSON, .j = data};
	else
		r.stack[r.depth++] = (struct jv){.kind = JV_UNDEF};
	rc = render_range(&r, 0, t->n_nodes);
	free(r.stack);
	return rc;
}

void tmpl_result_free(struct tmpl_result *res)
{
	size_t i;

	buf_free(&res->out);
	for (i = 0; i < res->n_warnings; i++)
		free(res->warnings[i].name);
	memset(res, 0, sizeof(*res));
}
