/*
 * smtp_subject: RFC 2047 encoded words of a Subject value. Contract in
 * smtp_subject.h.
 */
#include "smtpd/smtp_subject.h"

#include <string.h>

#include "util/util.h"

#define WORD_MAX 1024 /* decoded bytes of one encoded word (a value is <= 998) */

enum charset { CS_UTF8, CS_LATIN1, CS_OTHER };

/* One encoded word found at in[0..): its parts. */
struct word {
	enum charset cs;
	char enc;         /* 'B' or 'Q' */
	const char *text; /* the encoded text */
	size_t text_len;
	size_t len; /* the whole word, "=?" to "?=" */
};

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n > o->cap - 1 - o->len)
		n = o->cap - 1 - o->len;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static enum charset charset_of(const char *s, size_t n)
{
	const char *star = memchr(s, '*', n); /* RFC 2231 language: "utf-8*en" */

	if (star)
		n = (size_t)(star - s);
	if ((n == 5 && ascii_ncasecmp(s, "utf-8", 5) == 0) ||
	    (n == 8 && ascii_ncasecmp(s, "us-ascii", 8) == 0))
		return CS_UTF8;
	if ((n == 10 && ascii_ncasecmp(s, "iso-8859-1", 10) == 0) ||
	    (n == 6 && ascii_ncasecmp(s, "latin1", 6) == 0))
		return CS_LATIN1;
	return CS_OTHER;
}

/* 1 if in[0..n) begins with a well-formed encoded word (into w). */
static int word_at(const char *in, size_t n, struct word *w)
{
	const char *q1, *q2, *end;

	if (n < 8 || in[0] != '=' || in[1] != '?')
		return 0;
	q1 = memchr(in + 2, '?', n - 2);
	if (!q1 || q1 == in + 2 || (size_t)(q1 - in) + 3 > n || q1[2] != '?')
		return 0;
	w->enc = (char)(q1[1] & ~0x20);
	if (w->enc != 'B' && w->enc != 'Q')
		return 0;
	w->text = q1 + 3;
	for (end = w->text; end + 1 < in + n; end++) {
		if (end[0] == '?' && end[1] == '=')
			break;
		if (*end == ' ' || *end == '\t' || *end == '?')
			return 0; /* no white space (or '?') inside a word */
	}
	if (end + 1 >= in + n)
		return 0;
	q2 = end;
	w->cs = charset_of(in + 2, (size_t)(q1 - in - 2));
	w->text_len = (size_t)(q2 - w->text);
	w->len = (size_t)(q2 + 2 - in);
	return 1;
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c & ~0x20);
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Q text into buf; -1 if malformed. */
static long q_decode(const char *s, size_t n, unsigned char *buf, size_t cap)
{
	size_t len = 0;

	for (size_t i = 0; i < n && len < cap; i++) {
		if (s[i] == '_') {
			buf[len++] = ' ';
		} else if (s[i] == '=') {
			if (i + 2 >= n || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0)
				return -1;
			buf[len++] = (unsigned char)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
			i += 2;
		} else {
			buf[len++] = (unsigned char)s[i];
		}
	}
	return (long)len;
}

/* The decoded bytes of w into buf (WORD_MAX); -1 if it cannot be decoded
 * (then it is kept as written). */
static long word_bytes(const struct word *w, unsigned char *buf)
{
	if (w->cs == CS_OTHER)
		return -1;
	return w->enc == 'B' ? base64_decode(w->text, w->text_len, buf, WORD_MAX)
	                     : q_decode(w->text, w->text_len, buf, WORD_MAX);
}

/* The decoded bytes of w into o (latin1 turned into UTF-8); 0 if it
 * cannot be decoded. */
static int word_put(const struct word *w, struct out *o)
{
	unsigned char buf[WORD_MAX];
	long n = word_bytes(w, buf);

	if (n < 0)
		return 0;
	for (long i = 0; i < n; i++) {
		char u[2] = {(char)(0xc0 | (buf[i] >> 6)), (char)(0x80 | (buf[i] & 0x3f))};
		if (w->cs == CS_UTF8 || buf[i] < 0x80)
			put(o, (const char *)&buf[i], 1);
		else if (o->cap - 1 - o->len >= 2)
			put(o, u, 2);
	}
	return 1;
}

/* The white space at in[0..n), when an encoded word that decodes follows. */
static size_t ws_before_word(const char *in, size_t n)
{
	unsigned char buf[WORD_MAX];
	size_t i = 0;
	struct word w;

	while (i < n && (in[i] == ' ' || in[i] == '\t'))
		i++;
	return i > 0 && word_at(in + i, n - i, &w) && word_bytes(&w, buf) >= 0 ? i : 0;
}

size_t smtp_subject_decode(const char *in, size_t n, char *out, size_t cap)
{
	struct out o = {out, 0, cap};
	struct word w;
	int after_word = 0;
	size_t i = 0, ws;

	while (i < n && o.len < cap - 1) {
		if (word_at(in + i, n - i, &w) && word_put(&w, &o)) {
			i += w.len;
			after_word = 1;
			continue;
		}
		if (after_word && (ws = ws_before_word(in + i, n - i)) > 0) {
			i += ws; /* between two encoded words: not part of the text */
			continue;
		}
		after_word = 0;
		put(&o, in + i, 1);
		i++;
	}
	out[o.len] = '\0';
	return o.len;
}
