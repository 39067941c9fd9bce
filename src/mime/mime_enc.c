/*
 * mime_enc: PURE encoders for mime_build: quoted-printable, base64 lines,
 * RFC 2047 encoded words and folded header fields. Every line written here
 * ends in CRLF and is at most 998 bytes; QP and base64 lines at most 76.
 */
#include <string.h>

#include "mime/mime.h"

#define FOLD_AT  78 /* the line length RFC 5322 asks for where it can */
#define QP_MAX   76
#define EW_CHUNK 42 /* bytes per encoded word: 56 base64 chars + 12 */
#define WORD_MAX 900

static size_t utf8_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

static int utf8_seq_ok(const unsigned char *p, size_t k)
{
	size_t i;

	for (i = 1; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (k == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f)))
		return 0; /* overlong, surrogate */
	if (k == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f)))
		return 0; /* overlong, above U+10FFFF */
	return 1;
}

int mime_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		k = utf8_len(p[i]);
		if (k == 0 || i + k > n || !utf8_seq_ok(p + i, k))
			return 0;
		i += k;
	}
	return 1;
}

/* The length of the line being written at the end of out. */
static size_t line_len(const struct buf *out)
{
	size_t i = out->len;

	while (i > 0 && out->data[i - 1] != '\n')
		i--;
	return out->len - i;
}

/* ---- quoted-printable ---- */

static void qp_byte(unsigned char c, int last, size_t *col, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char e[3] = {'=', hex[c >> 4], hex[c & 15]};
	int lit = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
	size_t w = lit ? 1 : 3;

	/* a soft break keeps room for its '=' (and for the last char's escape) */
	if (*col + w > QP_MAX - 1 && !(last && *col + w <= QP_MAX)) {
		buf_puts(out, "=\r\n");
		*col = 0;
	}
	buf_append(out, lit ? (const char *)&c : e, w);
	*col += w;
}

void mime_qp(const char *s, size_t n, struct buf *out)
{
	size_t i = 0, end, col;

	for (;;) {
		const char *nl = memchr(s + i, '\n', n - i);
		end = nl ? (size_t)(nl - s) : n;
		if (nl && end > i && s[end - 1] == '\r')
			end--;
		col = 0;
		for (size_t j = i; j < end; j++)
			qp_byte((unsigned char)s[j], j + 1 == end, &col, out);
		if (!nl)
			return;
		buf_puts(out, "\r\n");
		i = (size_t)(nl - s) + 1;
	}
}

void mime_base64_lines(const unsigned char *p, size_t n, struct buf *out)
{
	char line[80];
	size_t i, k;

	for (i = 0; i < n; i += k) {
		k = n - i < 57 ? n - i : 57;
		base64_encode(p + i, k, line);
		buf_puts(out, line);
		buf_puts(out, "\r\n");
	}
}

/* ---- header fields ---- */

/* Encoded words for s, separated by CRLF SP (ignored between encoded
 * words when decoded), each split at a UTF-8 boundary. */
static void encoded_words(const char *s, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, k, c;
	char b64[80];

	while (i < n) {
		for (k = 0; i + k < n; k += c) {
			c = utf8_len(p[i + k]);
			c = c ? c : 1;
			if (k + c > EW_CHUNK)
				break;
		}
		k = k ? k : 1;
		base64_encode(p + i, k, b64);
		if (i > 0)
			buf_puts(out, "\r\n ");
		buf_printf(out, "=?UTF-8?B?%s?=", b64);
		i += k;
	}
}

/* 1 if value can be written as it is: printable ASCII (and tabs), no
 * "=?" (which would read as an encoded word), words short enough to fold. */
static int plain_ok(const char *v)
{
	size_t word = 0;

	if (strstr(v, "=?"))
		return 0;
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if ((c < 32 && c != '\t') || c > 126)
			return 0;
		word = (c == ' ' || c == '\t') ? 0 : word + 1;
		if (word > WORD_MAX)
			return 0;
	}
	return 1;
}

/* Folds before a run of white space when the line would pass FOLD_AT:
 * unfolding (removing the CRLF) gives back the value exactly. */
static void folded_plain(const char *v, struct buf *out)
{
	size_t n;

	while (*v) {
		n = strspn(v, " \t");
		n += strcspn(v + n, " \t");
		if (line_len(out) + n > FOLD_AT && (*v == ' ' || *v == '\t') && line_len(out) > 1)
			buf_puts(out, "\r\n");
		buf_append(out, v, n);
		v += n;
	}
}

void mime_header_text(const char *name, const char *value, struct buf *out)
{
	buf_printf(out, "%s: ", name);
	if (plain_ok(value))
		folded_plain(value, out);
	else
		encoded_words(value, out);
	buf_puts(out, "\r\n");
}

static int atext_phrase(const char *s)
{
	for (; *s; s++)
		if (!(*s == ' ' || (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || strchr("!#$%&'*+-/=?^_`{|}~", *s)))
			return 0;
	return 1;
}

static void display_name(const char *name, struct buf *out)
{
	if (!plain_ok(name)) {
		encoded_words(name, out);
	} else if (atext_phrase(name)) {
		buf_puts(out, name);
	} else {
		buf_puts(out, "\"");
		for (; *name; name++) {
			if (*name == '"' || *name == '\\')
				buf_puts(out, "\\");
			buf_append(out, name, 1);
		}
		buf_puts(out, "\"");
	}
}

static void one_addr(const struct mime_addr *a, struct buf *out)
{
	if (!a->name[0]) {
		buf_puts(out, a->addr);
		return;
	}
	display_name(a->name, out);
	buf_printf(out, " <%s>", a->addr);
}

void mime_header_addrs(const char *name, const struct mime_addr *a, size_t n, struct buf *out)
{
	struct buf one;
	size_t i;

	buf_init(&one);
	buf_printf(out, "%s: ", name);
	for (i = 0; i < n; i++) {
		buf_reset(&one);
		one_addr(&a[i], &one);
		if (i > 0)
			buf_puts(out, ",");
		if (i > 0 && line_len(out) + 1 + one.len > FOLD_AT)
			buf_puts(out, "\r\n");
		if (i > 0)
			buf_puts(out, " ");
		buf_append(out, one.data, one.len);
	}
	buf_puts(out, "\r\n");
	buf_free(&one);
}
