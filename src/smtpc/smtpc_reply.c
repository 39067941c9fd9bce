/*
 * smtpc_reply: the incremental SMTP reply parser and the EHLO keyword
 * parser. PURE: libc and util only. Contract in smtpc_reply.h.
 *
 * Bytes are copied into a line buffer until an LF, so a reply split
 * anywhere (even inside a CRLF) parses the same as one read whole. Limits
 * are checked before bytes are kept, counting the EOL still to come, so an
 * over-long line fails as soon as it is known to be over-long and memory
 * never exceeds one line plus one reply's text.
 */
#include "smtpc/smtpc_reply.h"

#include <stdlib.h>
#include <string.h>

void smtpc_reply_clear(struct smtpc_reply *r)
{
	free(r->text);
	memset(r, 0, sizeof(*r));
}

static void reply_state_reset(struct smtpc_rparser *p)
{
	buf_reset(&p->text);
	p->code = 0;
	p->enhanced[0] = '\0';
	p->n_lines = 0;
	p->total = 0;
}

void smtpc_rparser_init(struct smtpc_rparser *p)
{
	memset(p, 0, sizeof(*p));
	buf_init(&p->line);
	buf_init(&p->text);
}

void smtpc_rparser_free(struct smtpc_rparser *p)
{
	buf_free(&p->line);
	buf_free(&p->text);
	memset(p, 0, sizeof(*p));
}

const char *smtpc_rparser_error(const struct smtpc_rparser *p)
{
	return p->error;
}

int smtpc_rparser_idle(const struct smtpc_rparser *p)
{
	return !p->error && p->line.len == 0 && p->n_lines == 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Length of an RFC 3463 code "class.subject.detail" at s[0..n) whose class
 * is klass, ending at the end of the text or before a space; 0 if none.
 * Subject and detail take 1 to 3 digits (leading zeros tolerated).
 */
static size_t enhanced_len(const char *s, size_t n, char klass)
{
	size_t i = 0, part, digits;

	if (n < 5 || s[0] != klass || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (digits = 0; i < n && is_digit(s[i]) && digits < 3; digits++)
			i++;
		if (digits == 0)
			return 0;
		if (part == 0 && (i >= n || s[i++] != '.'))
			return 0;
	}
	if (i < n && s[i] != ' ')
		return 0;
	return i;
}

/* Append text to the reply, with control characters made harmless. */
static void text_append(struct buf *b, const char *s, size_t n)
{
	size_t start = b->len, i;

	buf_append(b, s, n);
	for (i = start; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];
		if (c == '\t')
			b->data[i] = ' ';
		else if (c < 0x20 || c == 0x7f)
			b->data[i] = '?';
	}
}

/* Parses "NNN" + separator. Returns the code, or -1. *last is set when the
 * line ends the reply. */
static int line_code(const char *s, size_t n, int *last)
{
	if (n < 3 || !is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2]))
		return -1;
	if (s[0] < '2' || s[0] > '5')
		return -1;
	if (n > 3 && s[3] != '-' && s[3] != ' ')
		return -1;
	*last = n == 3 || s[3] == ' ';
	return (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
}

/* The text of one line after "NNN-": drop a leading enhanced code whose
 * class matches the reply (remembering the first line's), then append. */
static void line_text(struct smtpc_rparser *p, const char *s, size_t n)
{
	size_t e = enhanced_len(s, n, (char)('0' + p->code / 100));

	if (e) {
		if (p->n_lines == 0) {
			memcpy(p->enhanced, s, e);
			p->enhanced[e] = '\0';
		}
		s += e;
		n -= e;
		while (n && *s == ' ') {
			s++;
			n--;
		}
	}
	if (p->n_lines > 0)
		buf_append(&p->text, "\n", 1);
	text_append(&p->text, s, n);
}

static int fail(struct smtpc_rparser *p, const char *why)
{
	p->error = why;
	return -1;
}

/* A complete line is in p->line. Returns 1 when it ended the reply, 0 when
 * more lines follow, -1 on a protocol error. */
static int line_done(struct smtpc_rparser *p, size_t eol_len)
{
	const char *s = p->line.data;
	size_t n = p->line.len;
	int code, last = 0;

	if (n && s[n - 1] == '\r')
		n--;
	code = line_code(s, n, &last);
	if (code < 0)
		return fail(p, "malformed reply line");
	if (p->n_lines > 0 && code != p->code)
		return fail(p, "reply code changed within a multi-line reply");
	if (!last && p->n_lines + 1 >= SMTPC_REPLY_LINES_MAX)
		return fail(p, "too many lines in reply");
	p->code = code;
	line_text(p, n > 4 ? s + 4 : "", n > 4 ? n - 4 : 0);
	p->n_lines++;
	p->total += p->line.len + eol_len;
	buf_reset(&p->line);
	return last;
}

/* Keep n more bytes of the current line, if the limits allow them and the
 * EOL that must still follow. */
static int line_take(struct smtpc_rparser *p, const char *s, size_t n)
{
	size_t need = p->line.len + n + 1;
	size_t room = SMTPC_REPLY_TOTAL_MAX - p->total;

	/* name the tighter limit, the one a byte-by-byte feed hits first, so
	 * the error does not depend on how the input was split */
	if (room < SMTPC_REPLY_LINE_MAX && need > room)
		return fail(p, "reply too long");
	if (need > SMTPC_REPLY_LINE_MAX)
		return fail(p, "reply line too long");
	buf_append(&p->line, s, n);
	return 0;
}

static void reply_out(struct smtpc_rparser *p, struct smtpc_reply *out)
{
	out->code = p->code;
	memcpy(out->enhanced, p->enhanced, sizeof(out->enhanced));
	out->n_lines = p->n_lines;
	/* hand the text buffer over rather than copy up to 64 KiB */
	out->text = p->text.data;
	buf_init(&p->text);
	reply_state_reset(p);
}

size_t smtpc_rparser_feed(struct smtpc_rparser *p, const void *data, size_t len,
                          struct smtpc_reply *out, enum smtpc_rstatus *st)
{
	const char *in = data;
	size_t used = 0;

	*st = SMTPC_R_ERROR;
	if (p->error)
		return 0;
	while (used < len) {
		const char *lf = memchr(in + used, '\n', len - used);
		size_t chunk = lf ? (size_t)(lf - (in + used)) : len - used;
		int r;

		if (line_take(p, in + used, chunk) < 0)
			return used;
		used += chunk;
		if (!lf)
			break;
		used++;
		r = line_done(p, 1);
		if (r < 0)
			return used;
		if (r > 0) {
			reply_out(p, out);
			*st = SMTPC_R_REPLY;
			return used;
		}
	}
	*st = SMTPC_R_NEED;
	return used;
}

/* ---------- EHLO keywords ---------- */

static int word_is(const char *w, size_t n, const char *name)
{
	return strlen(name) == n && ascii_ncasecmp(w, name, n) == 0;
}

/* Next space-separated word of s[*i..n): sets *w, returns its length. */
static size_t next_word(const char *s, size_t n, size_t *i, const char **w)
{
	size_t start;

	while (*i < n && s[*i] == ' ')
		(*i)++;
	start = *i;
	while (*i < n && s[*i] != ' ')
		(*i)++;
	*w = s + start;
	return *i - start;
}

/* SIZE's argument: its first word, a decimal number (RFC 1870). */
static void cap_size(struct smtpc_caps *c, const char *arg, size_t n)
{
	char num[24];
	const char *w;
	size_t i = 0, wl = next_word(arg, n, &i, &w);
	uint64_t v;

	c->size = 1;
	c->size_max = 0;
	if (wl == 0 || wl >= sizeof(num))
		return;
	memcpy(num, w, wl);
	num[wl] = '\0';
	if (parse_u64(num, &v) == 0)
		c->size_max = v;
}

static void cap_auth(struct smtpc_caps *c, const char *arg, size_t n)
{
	size_t i = 0, wl;
	const char *w;

	c->auth = 1;
	while ((wl = next_word(arg, n, &i, &w)) > 0) {
		if (word_is(w, wl, "PLAIN"))
			c->auth_plain = 1;
		else if (word_is(w, wl, "LOGIN"))
			c->auth_login = 1;
	}
}

/* Keywords that are plain flags: the table maps each to its field. */
static const struct {
	const char *name;
	size_t off;
} cap_flags[] = {
    {"PIPELINING", offsetof(struct smtpc_caps, pipelining)},
    {"STARTTLS", offsetof(struct smtpc_caps, starttls)},
    {"8BITMIME", offsetof(struct smtpc_caps, eightbitmime)},
    {"SMTPUTF8", offsetof(struct smtpc_caps, smtputf8)},
    {"DSN", offsetof(struct smtpc_caps, dsn)},
    {"CHUNKING", offsetof(struct smtpc_caps, chunking)},
    {"ENHANCEDSTATUSCODES", offsetof(struct smtpc_caps, enhancedstatuscodes)},
    {"REQUIRETLS", offsetof(struct smtpc_caps, requiretls)},
};

/* One "KEYWORD[ =]params" line (the legacy AUTH=... form splits at '='). */
static void cap_line(struct smtpc_caps *c, const char *s, size_t n)
{
	size_t k = 0, i;

	while (n && *s == ' ') {
		s++;
		n--;
	}
	while (k < n && s[k] != ' ' && s[k] != '=')
		k++;
	i = k < n ? k + 1 : n;
	if (word_is(s, k, "SIZE")) {
		cap_size(c, s + i, n - i);
		return;
	}
	if (word_is(s, k, "AUTH")) {
		cap_auth(c, s + i, n - i);
		return;
	}
	for (i = 0; i < ARRAY_LEN(cap_flags); i++)
		if (word_is(s, k, cap_flags[i].name))
			*(int *)((char *)c + cap_flags[i].off) = 1;
}

int smtpc_caps_parse(const struct smtpc_reply *r, struct smtpc_caps *caps)
{
	const char *s, *nl;

	memset(caps, 0, sizeof(*caps));
	if (r->code / 100 != 2 || !r->text)
		return -1;
	/* the first line is the server's name, not a keyword */
	for (s = strchr(r->text, '\n'); s; s = nl) {
		s++;
		nl = strchr(s, '\n');
		cap_line(caps, s, nl ? (size_t)(nl - s) : strlen(s));
	}
	return 0;
}
