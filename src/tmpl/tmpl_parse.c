/*
 * tmpl_parse: template text -> compiled form (tmpl_int.h). PURE.
 *
 * The scanner follows mustache.js 4.2.0's parser step by step, because
 * that is what decides the output byte for byte:
 *   1. Text runs up to the next opening delimiter. Each '\n' in text ends
 *      a line; a line that holds at least one tag but, apart from
 *      whitespace (JavaScript's \s, so U+00A0 too), only tags other than
 *      {{name}} and {{{name}}}/{{&name}} is "standalone": its whitespace
 *      text, the '\n' included, is removed. The end of the template ends
 *      the last line the same way.
 *   2. A tag is: the opening delimiter and any whitespace; one type
 *      character of # ^ / > { & = ! (none: a variable); whitespace; the
 *      value up to the whitespace before the closing delimiter ('}' and
 *      the closing delimiter for '{'; '=' for '='). No closing delimiter
 *      is an unclosed tag.
 *   3. {{=a b=}} sets the delimiters to the first two whitespace-separated
 *      words of its value, from the next tag on; fewer than two is an error.
 *   4. Sections nest; a close must name the innermost open section.
 * Beyond mustache.js: the template size and the nesting depth are bounded.
 */
#include "tmpl/tmpl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOT_FOUND ((size_t)-1)

struct open_section {
	size_t node; /* index of the section's node */
	size_t pos;  /* offset of its tag, for errors */
};

struct parser {
	const char *s;
	size_t len, pos;
	struct buf open, close, curly; /* delimiters; curly is "}" + close */
	struct tmpl *t;
	int has_tag, non_space;      /* on the current line */
	int text_closed;             /* a section closed since the last text node */
	size_t line_text, line_node; /* text length and node count when it began */
	struct open_section *stack;  /* open sections, innermost last */
	size_t depth;
	struct tmpl_error *err;
};

/* ---------- errors ---------- */

static void pos_to_line_col(const char *s, size_t pos, unsigned *line, unsigned *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < pos; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)s[i] & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

static int fail_at(struct parser *p, enum tmpl_status st, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(struct parser *p, enum tmpl_status st, size_t pos, const char *fmt, ...)
{
	va_list ap;
	char *m;

	p->err->status = st;
	pos_to_line_col(p->s, pos, &p->err->line, &p->err->column);
	va_start(ap, fmt);
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
	for (m = p->err->message; *m; m++) /* names may hold newlines: keep one line */
		if ((unsigned char)*m < 0x20 || *m == 0x7F)
			*m = ' ';
	return -1;
}

/* A name for an error message: at most 60 bytes, cut on a character boundary. */
static int shown_len(const char *s, size_t n)
{
	if (n <= 60)
		return (int)n;
	n = 60;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return (int)n;
}

/* ---------- compiled form ---------- */

static size_t node_add(struct tmpl *t, enum tnode_type type, uint32_t off, uint32_t len)
{
	if (t->n_nodes == t->cap_nodes) {
		t->cap_nodes = t->cap_nodes ? t->cap_nodes * 2 : 64;
		t->nodes = xrealloc(t->nodes, t->cap_nodes * sizeof(*t->nodes));
	}
	t->nodes[t->n_nodes] = (struct tnode){.type = type, .off = off, .len = len};
	return t->n_nodes++;
}

static size_t name_node(struct parser *p, enum tnode_type type, size_t vs, size_t ve)
{
	size_t off = p->t->names.len;

	buf_append(&p->t->names, p->s + vs, ve - vs);
	return node_add(p->t, type, (uint32_t)off, (uint32_t)(ve - vs));
}

static void text_add(struct parser *p, size_t a, size_t b)
{
	struct tmpl *t = p->t;
	struct tnode *last = t->n_nodes ? &t->nodes[t->n_nodes - 1] : NULL;

	if (b <= a)
		return;
	if (last && last->type == TN_TEXT && last->off + last->len == t->text.len &&
	    !p->text_closed)
		last->len += (uint32_t)(b - a);
	else
		node_add(t, TN_TEXT, (uint32_t)t->text.len, (uint32_t)(b - a));
	buf_append(&t->text, p->s + a, b - a);
	p->text_closed = 0;
}

/* ---------- standalone lines ---------- */

/* The current line ends: remove its text if it is standalone (step 1). */
static void line_end(struct parser *p)
{
	struct tmpl *t = p->t;
	size_t i, keep = p->line_text;

	if (p->has_tag && !p->non_space && t->text.len > keep) {
		t->text.len = keep;
		t->text.data[keep] = '\0';
		/* the first text node of the line may have begun on the line before */
		for (i = t->n_nodes; i-- > 0 && i + 1 >= p->line_node;) {
			struct tnode *n = &t->nodes[i];
			if (n->type != TN_TEXT || n->off + n->len <= keep)
				continue;
			if (n->off >= keep) {
				n->off = (uint32_t)keep;
				n->len = 0;
			} else {
				n->len = (uint32_t)(keep - n->off);
			}
		}
	}
	p->has_tag = p->non_space = 0;
	p->line_text = t->text.len;
	p->line_node = t->n_nodes;
}

/* Text s[a..b): store it, ending lines at each '\n'. */
static void text_run(struct parser *p, size_t a, size_t b)
{
	size_t i = a, from = a;

	while (i < b) {
		size_t w;
		if (p->s[i] == '\n') {
			text_add(p, from, i + 1);
			line_end(p);
			from = ++i;
			continue;
		}
		w = js_space_len(p->s + i, b - i);
		if (w == 0) {
			p->non_space = 1;
			w = 1;
		}
		i += w;
	}
	text_add(p, from, b);
}

/* ---------- scanning ---------- */

static size_t find(const struct parser *p, size_t from, const struct buf *x)
{
	const char *hit;

	if (from >= p->len)
		return NOT_FOUND;
	hit = memmem(p->s + from, p->len - from, x->data, x->len);
	return hit ? (size_t)(hit - p->s) : NOT_FOUND;
}

/*
 * The regular expression \s*X searched from `from`: the offset where the
 * match starts (the whitespace before the first X), or NOT_FOUND; *x_at
 * is where X itself starts.
 */
static size_t find_ws_then(const struct parser *p, size_t from, const char *x, size_t xn,
                           size_t *x_at)
{
	size_t i = from, run = NOT_FOUND;

	while (i < p->len) {
		size_t w;
		if (p->len - i >= xn && memcmp(p->s + i, x, xn) == 0) {
			*x_at = i;
			return run == NOT_FOUND ? i : run;
		}
		w = js_space_len(p->s + i, p->len - i);
		if (w && run == NOT_FOUND)
			run = i;
		if (!w)
			run = NOT_FOUND;
		i += w ? w : 1;
	}
	return NOT_FOUND;
}

static void skip_space(struct parser *p)
{
	size_t w;

	while ((w = js_space_len(p->s + p->pos, p->len - p->pos)) > 0)
		p->pos += w;
}

/* Skip to the closing delimiter and past it. -1: none (unclosed tag). */
static int close_tag(struct parser *p, size_t tag)
{
	size_t x_at;

	if (find_ws_then(p, p->pos, p->close.data, p->close.len, &x_at) == NOT_FOUND)
		return fail_at(p, TMPL_ERR_SYNTAX, tag, "unclosed tag: no \"%.*s\" after \"%.*s\"",
		               shown_len(p->close.data, p->close.len), p->close.data,
		               shown_len(p->open.data, p->open.len), p->open.data);
	p->pos = x_at + p->close.len;
	return 0;
}

/* The value of a tag of the given type, from p->pos: [*vs, *ve). */
static int tag_value(struct parser *p, int type, size_t tag, size_t *vs, size_t *ve)
{
	const struct buf *end = type == '{' ? &p->curly : &p->close;
	size_t x_at;

	*vs = p->pos;
	if (type == '=')
		*ve = find_ws_then(p, p->pos, "=", 1, &x_at);
	else
		*ve = find_ws_then(p, p->pos, end->data, end->len, &x_at);
	if (*ve == NOT_FOUND) {
		p->pos = p->len;
		return close_tag(p, tag);
	}
	p->pos = type == '=' || type == '{' ? x_at + 1 : *ve;
	return close_tag(p, tag);
}

/* ---------- tags ---------- */

static void set_delims(struct parser *p, const char *o, size_t on, const char *c, size_t cn)
{
	buf_reset(&p->open);
	buf_append(&p->open, o, on);
	buf_reset(&p->close);
	buf_append(&p->close, c, cn);
	buf_reset(&p->curly);
	buf_append(&p->curly, "}", 1);
	buf_append(&p->curly, c, cn);
}

/* A word of [i, ve): non-whitespace bytes. Returns its end. */
static size_t word_end(const struct parser *p, size_t i, size_t ve)
{
	while (i < ve && js_space_len(p->s + i, ve - i) == 0)
		i++;
	return i;
}

/* {{=open close=}}: the first two words of the value (step 3). */
static int tag_delims(struct parser *p, size_t tag, size_t vs, size_t ve)
{
	size_t oe = word_end(p, vs, ve), cs = oe, ce;

	while (cs < ve && js_space_len(p->s + cs, ve - cs) > 0)
		cs += js_space_len(p->s + cs, ve - cs);
	ce = word_end(p, cs, ve);
	if (oe == vs || ce == cs)
		return fail_at(p, TMPL_ERR_SYNTAX, tag,
		               "bad delimiters \"%.*s\": two delimiters separated by a space are "
		               "needed, as in {{=<%% %%>=}}",
		               shown_len(p->s + vs, ve - vs), p->s + vs);
	set_delims(p, p->s + vs, oe - vs, p->s + cs, ce - cs);
	return 0;
}

static int tag_open_section(struct parser *p, int type, size_t tag, size_t vs, size_t ve)
{
	size_t node = name_node(p, type == '#' ? TN_SECTION : TN_INVERTED, vs, ve);

	if (p->depth >= p->t->lim.max_depth)
		return fail_at(p, TMPL_ERR_DEPTH, tag, "sections nested more than %u deep",
		               p->t->lim.max_depth);
	p->stack[p->depth++] = (struct open_section){node, tag};
	if (p->depth > p->t->max_nest)
		p->t->max_nest = (unsigned)p->depth;
	return 0;
}

static int tag_close_section(struct parser *p, size_t tag, size_t vs, size_t ve)
{
	struct open_section *o;
	const struct tnode *n;
	unsigned line, col;

	if (p->depth == 0)
		return fail_at(p, TMPL_ERR_SYNTAX, tag, "\"/%.*s\" closes no open section",
		               shown_len(p->s + vs, ve - vs), p->s + vs);
	o = &p->stack[--p->depth];
	n = &p->t->nodes[o->node];
	if (n->len != ve - vs || memcmp(p->t->names.data + n->off, p->s + vs, n->len) != 0) {
		pos_to_line_col(p->s, o->pos, &line, &col);
		return fail_at(p, TMPL_ERR_SYNTAX, tag,
		               "\"/%.*s\" closes section \"%.*s\" opened at line %u, column %u",
		               shown_len(p->s + vs, ve - vs), p->s + vs,
		               shown_len(p->t->names.data + n->off, n->len),
		               p->t->names.data + n->off, line, col);
	}
	p->t->nodes[o->node].end = (uint32_t)p->t->n_nodes;
	p->text_closed = 1; /* the next text is the section's sibling, not its child */
	return 0;
}

/* What a tag of this type adds to the compiled form (steps 3 and 4). */
static int tag_apply(struct parser *p, int type, size_t tag, size_t vs, size_t ve)
{
	switch (type) {
	case '#':
	case '^':
		return tag_open_section(p, type, tag, vs, ve);
	case '/':
		return tag_close_section(p, tag, vs, ve);
	case '>':
		name_node(p, TN_PARTIAL, vs, ve);
		return 0;
	case '=':
		return tag_delims(p, tag, vs, ve);
	case '!':
		return 0;
	case '{':
	case '&':
		p->non_space = 1;
		name_node(p, TN_RAW, vs, ve);
		return 0;
	default:
		p->non_space = 1;
		name_node(p, TN_ESCAPED, vs, ve);
		return 0;
	}
}

/* One tag at p->pos, which is on its opening delimiter (step 2). */
static int parse_tag(struct parser *p)
{
	size_t tag = p->pos, vs, ve;
	int type = 0;

	p->pos += p->open.len;
	skip_space(p);
	p->has_tag = 1;
	if (p->pos < p->len && strchr("#^/>{&=!", p->s[p->pos]) && p->s[p->pos])
		type = p->s[p->pos++];
	skip_space(p);
	if (tag_value(p, type, tag, &vs, &ve) < 0)
		return -1;
	return tag_apply(p, type, tag, vs, ve);
}

static int parse(struct parser *p)
{
	while (p->pos < p->len) {
		size_t at = find(p, p->pos, &p->open);
		if (at == NOT_FOUND)
			at = p->len;
		text_run(p, p->pos, at);
		p->pos = at;
		if (at == p->len)
			break;
		if (parse_tag(p) < 0)
			return -1;
	}
	line_end(p);
	if (p->depth > 0) {
		const struct open_section *o = &p->stack[p->depth - 1];
		const struct tnode *n = &p->t->nodes[o->node];
		return fail_at(p, TMPL_ERR_SYNTAX, o->pos, "unclosed section \"%.*s\"",
		               shown_len(p->t->names.data + n->off, n->len),
		               p->t->names.data + n->off);
	}
	return 0;
}

/* ---------- interface ---------- */

void tmpl_limits_default(struct tmpl_limits *l)
{
	l->max_template = TMPL_DEFAULT_MAX_TEMPLATE;
	l->max_depth = TMPL_DEFAULT_MAX_DEPTH;
	l->max_output = TMPL_DEFAULT_MAX_OUTPUT;
	l->max_steps = TMPL_DEFAULT_MAX_STEPS;
}

const char *tmpl_status_name(enum tmpl_status s)
{
	static const char *const names[] = {
	    [TMPL_OK] = "ok",
	    [TMPL_ERR_SYNTAX] = "syntax",
	    [TMPL_ERR_TEMPLATE] = "template_size",
	    [TMPL_ERR_DEPTH] = "depth",
	    [TMPL_ERR_OUTPUT] = "output_size",
	    [TMPL_ERR_STEPS] = "steps",
	};
	return (unsigned)s < ARRAY_LEN(names) ? names[s] : "unknown";
}

void tmpl_free(struct tmpl *t)
{
	if (!t)
		return;
	free(t->nodes);
	buf_free(&t->text);
	buf_free(&t->names);
	free(t);
}

static struct tmpl *tmpl_new(const struct tmpl_limits *lim)
{
	struct tmpl *t = xcalloc(1, sizeof(*t));

	if (lim)
		t->lim = *lim;
	else
		tmpl_limits_default(&t->lim);
	if (t->lim.max_depth > TMPL_DEPTH_CEILING)
		t->lim.max_depth = TMPL_DEPTH_CEILING;
	buf_init(&t->text);
	buf_init(&t->names);
	return t;
}

struct tmpl *tmpl_compile(const char *text, size_t len, const struct tmpl_limits *lim,
                          struct tmpl_error *err)
{
	struct parser p = {.s = text, .len = len, .err = err};
	int rc;

	memset(err, 0, sizeof(*err));
	p.t = tmpl_new(lim);
	if (len > p.t->lim.max_template || len > UINT32_MAX) {
		err->status = TMPL_ERR_TEMPLATE;
		snprintf(err->message, sizeof(err->message),
		         "the template is %zu bytes, above the limit of %zu", len,
		         p.t->lim.max_template);
		tmpl_free(p.t);
		return NULL;
	}
	set_delims(&p, "{{", 2, "}}", 2);
	p.stack = xcalloc(p.t->lim.max_depth + 1, sizeof(*p.stack));
	rc = parse(&p);
	free(p.stack);
	buf_free(&p.open);
	buf_free(&p.close);
	buf_free(&p.curly);
	if (rc < 0) {
		tmpl_free(p.t);
		return NULL;
	}
	return p.t;
}
