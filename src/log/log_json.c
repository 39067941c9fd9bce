/*
 * log_json: key=value fields to one JSON object. PURE. See log_json.h.
 *
 * Two passes over the fields would be simpler to read but the line is
 * short; one pass writes each member into a scratch buffer, then copies it
 * to the output if it fits, so a cut never leaves half a member behind.
 */
#include "log/log_json.h"

#include <stdio.h>
#include <string.h>

#include "util/util.h"

#define TAIL ",\"truncated\":\"yes\"}"

struct out {
	char *p;
	size_t len, cap; /* cap keeps room for TAIL and the NUL */
	int cut;
};

/* Length of the UTF-8 sequence at s (1-4), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] < 0xC2 ? 0 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : s[0] < 0xF5 ? 4 : 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 3 && s[0] == 0xED && s[1] > 0x9F) ||
	    (n == 4 && s[0] == 0xF0 && s[1] < 0x90) || (n == 4 && s[0] == 0xF4 && s[1] > 0x8F))
		return 0; /* overlong, surrogate, above U+10FFFF */
	return n;
}

/* Appends bytes [s, s + n) as the inside of a JSON string. */
static void json_chars(struct buf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		size_t k = u[i] >= 0x80 ? utf8_len(u + i) : 1;
		if (k > n - i)
			k = 0; /* a sequence cut by the end of the value */
		if (u[i] == '"' || u[i] == '\\')
			buf_printf(b, "\\%c", u[i]);
		else if (u[i] < 0x20 || u[i] == 0x7f)
			buf_printf(b, "\\u%04x", u[i]);
		else if (k == 0)
			buf_printf(b, "\\\\x%02X", u[i]);
		else
			buf_append(b, u + i, k);
		i += k ? k : 1;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undoes log_q() quoting from s (just after the opening quote) into v;
 * returns the position after the closing quote (or the end). */
static const char *unquote(const char *s, struct buf *v)
{
	while (*s && *s != '"') {
		if (s[0] == '\\' && (s[1] == '"' || s[1] == '\\')) {
			buf_append(v, s + 1, 1);
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'x' && hexval(s[2]) >= 0 && hexval(s[3]) >= 0) {
			char c = (char)(hexval(s[2]) * 16 + hexval(s[3]));
			buf_append(v, &c, 1);
			s += 4;
		} else {
			buf_append(v, s++, 1);
		}
	}
	return *s ? s + 1 : s;
}

static size_t key_len(const char *s)
{
	size_t n = 0;

	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
	       (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-' || s[n] == '.')
		n++;
	return n;
}

/* Copies member m (",\"k\":\"v\"") to the output if it fits. */
static void emit(struct out *o, const struct buf *m)
{
	if (o->cut || o->len + m->len > o->cap) {
		o->cut = 1;
		return;
	}
	memcpy(o->p + o->len, m->data, m->len);
	o->len += m->len;
}

static void member(struct out *o, struct buf *m, const char *k, size_t kn, const char *v, size_t vn)
{
	buf_reset(m);
	buf_puts(m, ",\"");
	json_chars(m, k, kn);
	buf_puts(m, "\":\"");
	json_chars(m, v, vn);
	buf_puts(m, "\"");
	emit(o, m);
}

/* One word at s: a key=value member, or a word for "msg". Returns the end. */
static const char *field(struct out *o, struct buf *m, struct buf *v, struct buf *msg,
                         const char *s)
{
	size_t kn = key_len(s), n;

	if (kn == 0 || s[kn] != '=') {
		n = strcspn(s, " ");
		if (msg->len)
			buf_puts(msg, " ");
		buf_append(msg, s, n);
		return s + n;
	}
	buf_reset(v);
	buf_puts(v, "");
	if (s[kn + 1] == '"') {
		const char *end = unquote(s + kn + 2, v);
		n = strcspn(end, " "); /* stray bytes after the quote stay with it */
		buf_append(v, end, n);
		end += n;
		member(o, m, s, kn, v->data, v->len);
		return end;
	}
	n = strcspn(s + kn + 1, " ");
	member(o, m, s, kn, s + kn + 1, n);
	return s + kn + 1 + n;
}

size_t log_json_line(char *out, size_t cap, const char *time, const char *level, const char *fields)
{
	struct out o = {out, 0, cap - sizeof(TAIL), 0};
	struct buf m, v, msg;

	o.len = (size_t)snprintf(out, cap, "{\"time\":\"%.63s\",\"level\":\"%.63s\"", time, level);
	buf_init(&m);
	buf_init(&v);
	buf_init(&msg);
	buf_puts(&msg, "");
	while (*fields) {
		if (*fields == ' ')
			fields++;
		else
			fields = field(&o, &m, &v, &msg, fields);
	}
	if (msg.len)
		member(&o, &m, "msg", 3, msg.data, msg.len);
	memcpy(out + o.len, o.cut ? TAIL : "}", o.cut ? sizeof(TAIL) : 2);
	o.len += o.cut ? sizeof(TAIL) - 1 : 1;
	buf_free(&m);
	buf_free(&v);
	buf_free(&msg);
	return o.len;
}
