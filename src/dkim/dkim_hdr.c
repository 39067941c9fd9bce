/*
 * dkim_hdr: the signed header set, header field splitting and the From
 * domain. PURE (libc + util); fuzzed by fuzz/fuzz_dkim_hdr.c.
 *
 * The From parser reads a mailbox-list token by token: CFWS (blanks, line
 * ends, nested comments) is skipped between tokens; a segment ends at a
 * top-level ',' or ';' (and a ':' outside an angle address turns what came
 * before it into a group's display name). A segment is a mailbox when it
 * has an angle address (its domain wins) or a top-level '@' (the domain is
 * what follows the last one). Nothing is allocated; every copy is bounded.
 */
#include "dkim/dkim_hdr.h"

#include <string.h>

#include "util/util.h"

/* The header set of the brief and RFC 6376 5.4.1, and RFC 8058's pair. */
const char *const dkim_signed_names[] = {
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    NULL,
};

const char *const dkim_oversigned_names[] = {"From", NULL};

int dkim_hdr_signed(const char *name, size_t len)
{
	for (size_t i = 0; dkim_signed_names[i]; i++)
		if (strlen(dkim_signed_names[i]) == len &&
		    ascii_ncasecmp(name, dkim_signed_names[i], len) == 0)
			return 1;
	return 0;
}

/* ---- fields --------------------------------------------------------------- */

/* Length of the line at p (without its end); *eol: 2 CRLF, 1 LF, 0 none. */
static size_t line_len(const char *p, size_t n, size_t *eol)
{
	const char *lf = memchr(p, '\n', n);
	size_t len;

	if (lf == NULL) {
		*eol = 0;
		return n;
	}
	len = (size_t)(lf - p);
	*eol = len > 0 && p[len - 1] == '\r' ? 2 : 1;
	return len + 1 - *eol;
}

static void field_name(struct dkim_field *f, size_t first_line)
{
	const char *colon = memchr(f->start, ':', first_line);
	size_t k;

	f->name_len = 0;
	f->value = f->start + f->len;
	f->value_len = 0;
	if (colon == NULL || f->start[0] == ' ' || f->start[0] == '\t')
		return;
	k = (size_t)(colon - f->start);
	f->value = colon + 1;
	f->value_len = f->len - k - 1;
	while (k > 0 && (f->start[k - 1] == ' ' || f->start[k - 1] == '\t'))
		k--;
	f->name_len = k;
}

int dkim_hdr_next(const char *p, size_t n, struct dkim_field *f, size_t *used)
{
	size_t eol, len, first, off;

	len = n ? line_len(p, n, &eol) : 0;
	if (n == 0 || len == 0) {
		*used = n ? eol : 0;
		return 0;
	}
	first = len;
	off = len + eol;
	/* folded lines: the field goes on while a line starts with a blank */
	while (eol && off < n && (p[off] == ' ' || p[off] == '\t')) {
		len = off + line_len(p + off, n - off, &eol);
		off = len + eol;
	}
	f->start = p;
	f->len = len;
	field_name(f, first);
	*used = off;
	return 1;
}

size_t dkim_hdr_end(const char *p, size_t n, size_t from)
{
	const char *lf;
	/* an end not found before starts with a line end at from - 2 or later */
	size_t i = from > 2 ? from - 2 : 0;

	if (n >= 1 && p[0] == '\n')
		return 1;
	if (n >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;
	while (i < n && (lf = memchr(p + i, '\n', n - i)) != NULL) {
		i = (size_t)(lf - p) + 1;
		if (i < n && p[i] == '\n')
			return i + 1;
		if (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n')
			return i + 2;
	}
	return 0;
}

/* ---- the From domain -------------------------------------------------------- */

struct dom {
	char v[DKIM_DOMAIN_MAX + 2];
	size_t len;
	int literal; /* a domain literal: no key can be looked up for it */
	int bad;     /* too long, or bytes no domain has */
};

struct from_scan {
	const char *p;
	size_t n, i;
	int mailboxes;
	struct dom first; /* the first mailbox's domain */
	/* the current segment */
	int seg_at, seg_angle;
	struct dom seg_dom;   /* after the last top-level '@' */
	struct dom angle_dom; /* after the last '@' in the angle address */
};

enum tok { T_END, T_ATOM, T_QUOTED, T_LITERAL, T_SPECIAL };

#define SPECIALS "()<>[]:;@\\,.\""

/* Skips blanks, line ends and comments (nested, with quoted pairs). */
static void skip_cfws(struct from_scan *s)
{
	int depth = 0;

	for (; s->i < s->n; s->i++) {
		char c = s->p[s->i];
		if (depth > 0 && c == '\\' && s->i + 1 < s->n)
			s->i++;
		else if (c == '(')
			depth++;
		else if (depth > 0 && c == ')')
			depth--;
		else if (depth == 0 && c != ' ' && c != '\t' && c != '\r' && c != '\n')
			return;
	}
}

/* Skips a quoted string or a domain literal opened at s->i, to its closer. */
static void skip_delimited(struct from_scan *s, char close)
{
	for (s->i++; s->i < s->n; s->i++) {
		if (s->p[s->i] == '\\' && s->i + 1 < s->n)
			s->i++;
		else if (s->p[s->i] == close) {
			s->i++;
			return;
		}
	}
}

/* The next token; an atom's bytes are s->p[*start .. s->i). */
static enum tok next_token(struct from_scan *s, size_t *start, char *special)
{
	char c;

	skip_cfws(s);
	if (s->i >= s->n)
		return T_END;
	*start = s->i;
	c = s->p[s->i];
	if (c == '"' || c == '[') {
		skip_delimited(s, c == '"' ? '"' : ']');
		return c == '"' ? T_QUOTED : T_LITERAL;
	}
	if (strchr(SPECIALS, c) != NULL) {
		*special = c;
		s->i++;
		return T_SPECIAL;
	}
	while (s->i < s->n && strchr(SPECIALS " \t\r\n", s->p[s->i]) == NULL)
		s->i++;
	return T_ATOM;
}

static void dom_add(struct dom *d, const char *p, size_t n)
{
	if (d->len + n > DKIM_DOMAIN_MAX + 1) {
		d->bad = 1;
		return;
	}
	memcpy(d->v + d->len, p, n);
	d->len += n;
	d->v[d->len] = '\0';
}

/* What a token after an '@' does to the domain being read; 0 ends it. */
static int dom_token(struct dom *d, enum tok t, const char *p, size_t n, char special,
                     int *last_atom)
{
	if (t == T_ATOM && !*last_atom) {
		dom_add(d, p, n);
		*last_atom = 1;
		return 1;
	}
	if (t == T_SPECIAL && special == '.') {
		dom_add(d, ".", 1);
		*last_atom = 0;
		return 1;
	}
	if (t == T_LITERAL) {
		d->literal = 1;
		return 1;
	}
	if (t == T_QUOTED)
		d->bad = 1;
	return 0;
}

static void segment_end(struct from_scan *s)
{
	if (s->seg_angle || s->seg_at) {
		if (++s->mailboxes == 1)
			s->first = s->seg_angle ? s->angle_dom : s->seg_dom;
	}
	s->seg_at = s->seg_angle = 0;
	memset(&s->seg_dom, 0, sizeof s->seg_dom);
}

/* An angle address, after its '<': the domain follows its last '@'; a
 * source route's ',' and ':' end a domain, as does the '>'. */
static void angle_addr(struct from_scan *s)
{
	int reading = 0, last_atom = 0;
	size_t start = 0;
	char sp = 0;
	enum tok t;

	memset(&s->angle_dom, 0, sizeof s->angle_dom);
	while ((t = next_token(s, &start, &sp)) != T_END) {
		if (t == T_SPECIAL && sp == '>')
			break;
		if (t == T_SPECIAL && sp == '@') {
			memset(&s->angle_dom, 0, sizeof s->angle_dom);
			reading = 1;
			last_atom = 0;
		} else if (reading) {
			reading =
			    dom_token(&s->angle_dom, t, s->p + start, s->i - start, sp, &last_atom);
		}
	}
	s->seg_angle = 1;
}

/* One top-level token; 0 when the list is over. */
static int list_token(struct from_scan *s, int *reading, int *last_atom)
{
	size_t start = 0;
	char sp = 0;
	enum tok t = next_token(s, &start, &sp);

	if (t == T_END)
		return 0;
	if (t == T_SPECIAL && (sp == ',' || sp == ';' || sp == ':' || sp == '<' || sp == '@'))
		*reading = 0;
	if (t != T_SPECIAL || strchr(",;:<@", sp) == NULL) {
		if (*reading)
			*reading =
			    dom_token(&s->seg_dom, t, s->p + start, s->i - start, sp, last_atom);
		return 1;
	}
	if (sp == ',' || sp == ';')
		segment_end(s);
	else if (sp == ':' && !s->seg_angle) /* a group: what came first was its name */
		s->seg_at = 0;
	else if (sp == '<')
		angle_addr(s);
	else if (sp == '@') {
		memset(&s->seg_dom, 0, sizeof s->seg_dom);
		s->seg_at = *reading = 1;
		*last_atom = 0;
	}
	return 1;
}

static enum dkim_from domain_out(const struct dom *d, char *out, size_t cap)
{
	size_t len = d->len;

	if (d->literal || d->bad)
		return DKIM_FROM_NONE;
	if (len > 0 && d->v[len - 1] == '.')
		len--;
	/* no empty label: not first, not last, not between two dots */
	if (len == 0 || len > DKIM_DOMAIN_MAX || len >= cap || d->v[0] == '.' ||
	    d->v[len - 1] == '.' || memmem(d->v, len, "..", 2) != NULL)
		return DKIM_FROM_NONE;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)d->v[i] < 0x21 || d->v[i] == 0x7f)
			return DKIM_FROM_NONE;
	memcpy(out, d->v, len);
	out[len] = '\0';
	ascii_lower(out);
	return DKIM_FROM_OK;
}

enum dkim_from dkim_from_domain(const char *v, size_t n, char *out, size_t cap)
{
	struct from_scan s;
	int reading = 0, last_atom = 0;

	memset(&s, 0, sizeof s);
	s.p = v;
	s.n = n;
	while (list_token(&s, &reading, &last_atom))
		;
	segment_end(&s);
	if (s.mailboxes == 0)
		return DKIM_FROM_NONE;
	if (s.mailboxes > 1)
		return DKIM_FROM_MULTIPLE;
	return domain_out(&s.first, out, cap);
}

enum dkim_from dkim_hdr_from_domain(const char *p, size_t n, char *out, size_t cap)
{
	const struct dkim_field *from = NULL;
	struct dkim_field f, keep;
	size_t used, off = 0;

	while (off < n && dkim_hdr_next(p + off, n - off, &f, &used)) {
		off += used;
		if (f.name_len != 4 || ascii_ncasecmp(f.start, "From", 4) != 0)
			continue;
		if (from != NULL)
			return DKIM_FROM_MULTIPLE;
		keep = f;
		from = &keep;
	}
	if (from == NULL)
		return DKIM_FROM_NONE;
	return dkim_from_domain(from->value, from->value_len, out, cap);
}
