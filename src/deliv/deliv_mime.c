/*
 * deliv_mime: header sections, content types, multipart walking and
 * transfer decoding, for the bounce and complaint loop. PURE (libc +
 * util). Contract in deliv_mime.h.
 */
#include "deliv/deliv_mime.h"

#include <stdio.h>
#include <string.h>

#include "dsn/dsn_parse.h"

/* Index of the LF ending the line at pos, or n. */
static size_t eol(const char *p, size_t n, size_t pos)
{
	const char *lf = memchr(p + pos, '\n', n - pos);

	return lf ? (size_t)(lf - p) : n;
}

static int blank_line(const char *p, size_t pos, size_t e)
{
	return e == pos || (e == pos + 1 && p[pos] == '\r');
}

void deliv_mime_split(const char *p, size_t n, struct deliv_mime *e)
{
	size_t pos = 0, end;

	e->head = p;
	e->head_len = n;
	e->body = p + n;
	e->body_len = 0;
	while (pos < n) {
		end = eol(p, n, pos);
		if (blank_line(p, pos, end)) {
			e->head_len = pos;
			e->body = p + (end < n ? end + 1 : n);
			e->body_len = (size_t)(p + n - e->body);
			return;
		}
		pos = end < n ? end + 1 : n;
	}
}

int deliv_mime_header(const struct deliv_mime *e, const char *name, char *out, size_t cap)
{
	struct dsn_field f;
	size_t pos = 0;

	while (pos < e->head_len) {
		size_t before = pos;
		if (dsn_field_next(e->head, e->head_len, &pos, &f)) {
			if (dsn_field_is(&f, name)) {
				dsn_field_value(&f, out, cap);
				return 1;
			}
		} else if (pos == before) {
			size_t end = eol(e->head, e->head_len, pos); /* not a field: skip it */
			pos = end < e->head_len ? end + 1 : e->head_len;
		}
	}
	return 0;
}

void deliv_mime_type(const struct deliv_mime *e, char *out, size_t cap)
{
	char v[DELIV_MIME_VALUE_MAX + 1];
	size_t n;

	/* a type too long for out is no type anyone reads here */
	if (!deliv_mime_header(e, "Content-Type", v, sizeof(v)) || !(n = strcspn(v, "; \t")) ||
	    !memchr(v, '/', n) || n >= cap) {
		snprintf(out, cap, "text/plain");
		return;
	}
	snprintf(out, cap, "%.*s", (int)n, v);
	ascii_lower(out);
}

/* The value at v (after '='): quoted or a token, into out. */
static void param_value(const char *v, char *out, size_t cap)
{
	size_t o = 0;

	if (*v != '"') {
		size_t n = strcspn(v, "; \t");
		snprintf(out, cap, "%.*s", (int)n, v);
		return;
	}
	for (v++; *v && *v != '"' && o + 1 < cap; v++) {
		if (*v == '\\' && v[1])
			v++;
		out[o++] = *v;
	}
	out[o] = '\0';
}

int deliv_mime_param(const struct deliv_mime *e, const char *param, char *out, size_t cap)
{
	char v[DELIV_MIME_VALUE_MAX + 1];
	size_t plen = strlen(param);
	const char *p;

	if (!deliv_mime_header(e, "Content-Type", v, sizeof(v)))
		return 0;
	for (p = strchr(v, ';'); p; p = strchr(p + 1, ';')) {
		const char *name = p + 1 + strspn(p + 1, " \t"), *eq;
		if (ascii_ncasecmp(name, param, plen) != 0)
			continue; /* (stops at the NUL of a shorter name) */
		eq = name + plen + strspn(name + plen, " \t");
		if (*eq == '=') {
			param_value(eq + 1 + strspn(eq + 1, " \t"), out, cap);
			return 1;
		}
	}
	return 0;
}

/* ---- multipart ---- */

struct walk {
	const char *const *types;
	struct deliv_mime *found;
	size_t parts; /* visited, all levels */
};

static int find_in(struct walk *w, const struct deliv_mime *e, int depth);

/* 1 if the line [p, p + len) is a delimiter of boundary b; *close when it
 * is the closing one ("--b--"). */
static int delimiter(const char *p, size_t len, const char *b, size_t blen, int *close)
{
	size_t i = 2 + blen;

	if (len < i || p[0] != '-' || p[1] != '-' || memcmp(p + 2, b, blen) != 0)
		return 0;
	*close = len >= i + 2 && p[i] == '-' && p[i + 1] == '-';
	if (*close)
		i += 2;
	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
		i++;
	return i == len;
}

/* The part [start, end) without the line break before the delimiter. */
static int part_done(struct walk *w, const char *p, size_t start, size_t end, int depth)
{
	struct deliv_mime part;

	if (end > start && p[end - 1] == '\n')
		end--;
	if (end > start && p[end - 1] == '\r')
		end--;
	if (++w->parts > DELIV_MIME_PARTS_MAX)
		return -1;
	deliv_mime_split(p + start, end - start, &part);
	return find_in(w, &part, depth + 1);
}

/* Walks the parts of multipart body e: 1 found, 0 not, -1 budget spent. */
static int parts_of(struct walk *w, const struct deliv_mime *e, const char *b, int depth)
{
	const char *p = e->body;
	size_t n = e->body_len, blen = strlen(b), pos = 0, start = 0;
	int in_part = 0, close = 0, rc;

	while (pos < n) {
		size_t end = eol(p, n, pos);
		if (delimiter(p + pos, end - pos, b, blen, &close)) {
			if (in_part && (rc = part_done(w, p, start, pos, depth)) != 0)
				return rc;
			if (close)
				return 0;
			in_part = 1;
			start = end < n ? end + 1 : n;
		}
		pos = end < n ? end + 1 : n;
	}
	return in_part ? part_done(w, p, start, n, depth) : 0;
}

static int type_wanted(const char *type, const char *const *types)
{
	for (size_t i = 0; types[i]; i++)
		if (strcmp(type, types[i]) == 0)
			return 1;
	return 0;
}

static int find_in(struct walk *w, const struct deliv_mime *e, int depth)
{
	char type[DELIV_MIME_TYPE_MAX], b[DELIV_MIME_VALUE_MAX + 1];

	deliv_mime_type(e, type, sizeof(type));
	if (type_wanted(type, w->types)) {
		*w->found = *e;
		return 1;
	}
	if (depth >= DELIV_MIME_DEPTH_MAX || strncmp(type, "multipart/", 10) != 0 ||
	    !deliv_mime_param(e, "boundary", b, sizeof(b)) || !*b || strlen(b) > 70)
		return 0;
	return parts_of(w, e, b, depth);
}

int deliv_mime_find(const struct deliv_mime *e, const char *const *types, struct deliv_mime *found)
{
	struct walk w = {types, found, 0};

	return find_in(&w, e, 0) == 1;
}

/* ---- transfer encodings ---- */

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void put(struct buf *out, char c, size_t *left)
{
	if (*left) {
		buf_append(out, &c, 1);
		(*left)--;
	}
}

static void qp_decode(const char *p, size_t n, struct buf *out, size_t left)
{
	for (size_t i = 0; i < n && left; i++) {
		if (p[i] != '=') {
			put(out, p[i], &left);
		} else if (i + 2 < n && hex(p[i + 1]) >= 0 && hex(p[i + 2]) >= 0) {
			put(out, (char)(hex(p[i + 1]) << 4 | hex(p[i + 2])), &left);
			i += 2;
		} else if (i + 1 < n && (p[i + 1] == '\n' || p[i + 1] == '\r')) {
			i += p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n' ? 2
			                                                       : 1; /* soft break */
		} else {
			put(out, p[i], &left);
		}
	}
}

static int b64_value(char c)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *q = c ? strchr(a, c) : NULL;

	return q ? (int)(q - a) : -1;
}

/* Lenient: characters outside the alphabet (line breaks) are skipped,
 * and '=' ends the data. */
static void b64_decode(const char *p, size_t n, struct buf *out, size_t left)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n && left && p[i] != '='; i++) {
		int v = b64_value(p[i]);
		if (v < 0)
			continue;
		acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			put(out, (char)(acc >> bits & 0xFF), &left);
		}
	}
}

void deliv_mime_decode(const struct deliv_mime *e, struct buf *out, size_t max)
{
	char cte[64];

	if (!deliv_mime_header(e, "Content-Transfer-Encoding", cte, sizeof(cte)))
		cte[0] = '\0';
	if (ascii_casecmp(cte, "base64") == 0)
		b64_decode(e->body, e->body_len, out, max);
	else if (ascii_casecmp(cte, "quoted-printable") == 0)
		qp_decode(e->body, e->body_len, out, max);
	else
		buf_append(out, e->body, e->body_len < max ? e->body_len : max);
}
