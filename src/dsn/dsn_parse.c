/*
 * dsn_parse: fields of header-like blocks, delivery-status bodies, status
 * codes. PURE (libc + util). Contract in dsn_parse.h.
 */
#include "dsn/dsn_parse.h"

#include <stdio.h>
#include <string.h>

#include "util/util.h"

/* ---- status codes ---- */

static size_t count_digits(const char *s)
{
	return strspn(s, "0123456789");
}

size_t dsn_status_len(const char *s)
{
	size_t a, b;

	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	a = count_digits(s + 2);
	if (a < 1 || a > 3 || s[2 + a] != '.')
		return 0;
	b = count_digits(s + 3 + a);
	if (b < 1 || b > 3)
		return 0;
	return 3 + a + b;
}

char dsn_reply_class(const char *s)
{
	if (s[0] < '2' || s[0] > '5' || count_digits(s) != 3)
		return 0;
	return (s[3] == ' ' || s[3] == '-' || s[3] == '\0') ? s[0] : 0;
}

int dsn_status_of_reply(const char *t, char *out)
{
	const char *code;
	char c = dsn_reply_class(t);
	size_t n;

	if (!c)
		return 0;
	if (c == '3')
		return 0; /* an intermediate reply (354) says nothing final */
	code = t + 3 + strspn(t + 3, " -");
	n = dsn_status_len(code);
	if (n && code[0] == c && (code[n] == ' ' || code[n] == '\0'))
		snprintf(out, DSN_PARSE_STATUS_MAX, "%.*s", (int)n, code);
	else
		snprintf(out, DSN_PARSE_STATUS_MAX, "%c.0.0", c);
	return 1;
}

/* ---- fields ---- */

/* The end of the line at pos (the index of its LF, or n) */
static size_t line_end(const char *p, size_t n, size_t pos)
{
	const char *lf = memchr(p + pos, '\n', n - pos);

	return lf ? (size_t)(lf - p) : n;
}

/* 1 if [p+pos, e) is an empty line (nothing, or a lone CR). */
static int empty_line(const char *p, size_t pos, size_t e)
{
	return e == pos || (e == pos + 1 && p[pos] == '\r');
}

/* The length of a field name at p (printable, no ':'), then optional
 * blanks and ':'; 0 if the line is no field. *colon: the ':'. */
static size_t field_name(const char *p, size_t e, size_t pos, size_t *colon)
{
	size_t i = pos, name;

	while (i < e && p[i] > 32 && p[i] < 127 && p[i] != ':')
		i++;
	name = i - pos;
	while (i < e && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (!name || i >= e || p[i] != ':')
		return 0;
	*colon = i;
	return name;
}

int dsn_field_next(const char *p, size_t n, size_t *pos, struct dsn_field *f)
{
	size_t e, colon = 0, next;

	if (*pos >= n)
		return 0;
	e = line_end(p, n, *pos);
	if (empty_line(p, *pos, e)) {
		*pos = e < n ? e + 1 : n;
		return 0;
	}
	if (!(f->name_len = field_name(p, e, *pos, &colon)))
		return 0;
	f->name = p + *pos;
	f->value = p + colon + 1;
	/* continuation lines: the next line starts with a blank */
	for (next = e < n ? e + 1 : n; next < n && (p[next] == ' ' || p[next] == '\t');
	     next = e < n ? e + 1 : n)
		e = line_end(p, n, next);
	f->value_len = (size_t)(p + e - f->value);
	*pos = e < n ? e + 1 : n;
	return 1;
}

int dsn_field_is(const struct dsn_field *f, const char *name)
{
	return strlen(name) == f->name_len && ascii_ncasecmp(f->name, name, f->name_len) == 0;
}

void dsn_field_value(const struct dsn_field *f, char *out, size_t cap)
{
	size_t o = 0;
	int space = 0;

	if (!cap)
		return;
	for (size_t i = 0; i < f->value_len; i++) {
		unsigned char c = (unsigned char)f->value[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = o > 0;
			continue;
		}
		if (c < 32 || c == 127)
			continue;
		if (space && o + 1 < cap)
			out[o++] = ' ';
		space = 0;
		if (o + 1 < cap)
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

void dsn_typed_value(const char *v, char *out, size_t cap)
{
	const char *semi = strchr(v, ';');
	size_t n;

	v = semi ? semi + 1 : v;
	v += strspn(v, " \t");
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v++;
		n -= 2;
	}
	snprintf(out, cap, "%.*s", (int)n, v);
}

/* ---- delivery-status bodies ---- */

static void status_field(const char *v, struct dsn_parsed_rcpt *r)
{
	size_t n = dsn_status_len(v);

	/* "5.1.1" alone, or followed by a comment: "5.1.1 (bad mailbox)" */
	if (n && (v[n] == '\0' || v[n] == ' ' || v[n] == '('))
		snprintf(r->status, sizeof(r->status), "%.*s", (int)n, v);
}

static void rcpt_field(const struct dsn_field *f, struct dsn_parsed_rcpt *r)
{
	char v[DSN_PARSE_DIAG_MAX];

	dsn_field_value(f, v, sizeof(v));
	if (dsn_field_is(f, "Final-Recipient"))
		dsn_typed_value(v, r->final_rcpt, sizeof(r->final_rcpt));
	else if (dsn_field_is(f, "Original-Recipient"))
		dsn_typed_value(v, r->original_rcpt, sizeof(r->original_rcpt));
	else if (dsn_field_is(f, "Action")) {
		snprintf(r->action, sizeof(r->action), "%.*s", (int)sizeof(r->action) - 1, v);
		ascii_lower(r->action);
	} else if (dsn_field_is(f, "Status"))
		status_field(v, r);
	else if (dsn_field_is(f, "Diagnostic-Code"))
		dsn_typed_value(v, r->diag, sizeof(r->diag));
}

/* Skips lines that are not fields (a stray line in a group). */
static void skip_line(const char *p, size_t n, size_t *pos)
{
	size_t e = line_end(p, n, *pos);

	*pos = e < n ? e + 1 : n;
}

/* One group at *pos: 1 if it named a recipient (then in *r). */
static int one_group(const char *p, size_t n, size_t *pos, struct dsn_parsed_rcpt *r)
{
	struct dsn_field f;

	memset(r, 0, sizeof(*r));
	while (*pos < n) {
		size_t before = *pos;
		if (dsn_field_next(p, n, pos, &f)) {
			rcpt_field(&f, r);
			continue;
		}
		if (*pos != before)
			break;        /* the empty line that ends the group */
		skip_line(p, n, pos); /* a stray line that is no field */
	}
	return r->final_rcpt[0] || r->original_rcpt[0];
}

/* Every group counts that names a recipient: the per-message group never
 * does (RFC 3464 2.2), and a report without one still parses. */
size_t dsn_parse_status(const char *p, size_t n, struct dsn_parsed_rcpt *out, size_t max)
{
	struct dsn_parsed_rcpt r;
	size_t pos = 0, seen = 0;

	while (pos < n) {
		if (one_group(p, n, &pos, &r)) {
			if (seen < max)
				out[seen] = r;
			seen++;
		}
	}
	return seen;
}
