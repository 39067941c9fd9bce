/*
 * track_text: PURE. HTML character references in attribute values, and
 * which User-Agents fetch images ahead of any reader.
 */
#include <stdlib.h>
#include <string.h>

#include "track/track.h"

static const struct {
	const char *name;
	const char *text;
} named[] = {{"amp;", "&"}, {"lt;", "<"}, {"gt;", ">"}, {"quot;", "\""}, {"apos;", "'"}};

static void put_utf8(unsigned long c, struct buf *out)
{
	char u[4];

	if (c < 0x80) {
		u[0] = (char)c;
		buf_append(out, u, 1);
	} else if (c < 0x800) {
		u[0] = (char)(0xc0 | c >> 6), u[1] = (char)(0x80 | (c & 63));
		buf_append(out, u, 2);
	} else if (c < 0x10000) {
		u[0] = (char)(0xe0 | c >> 12), u[1] = (char)(0x80 | ((c >> 6) & 63));
		u[2] = (char)(0x80 | (c & 63));
		buf_append(out, u, 3);
	} else {
		u[0] = (char)(0xf0 | c >> 18), u[1] = (char)(0x80 | ((c >> 12) & 63));
		u[2] = (char)(0x80 | ((c >> 6) & 63)), u[3] = (char)(0x80 | (c & 63));
		buf_append(out, u, 4);
	}
}

/* A numeric reference at s ("#38;", "#x26;"): its length, 0 if none. */
static size_t numeric(const char *s, size_t n, struct buf *out)
{
	int hex = n > 1 && (s[1] == 'x' || s[1] == 'X');
	size_t i = hex ? 2 : 1, d0 = i;
	unsigned long c = 0;

	for (; i < n && i < d0 + 8; i++) {
		char ch = s[i];
		int v = ch >= '0' && ch <= '9'          ? ch - '0'
		        : hex && ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		        : hex && ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
		                                        : -1;
		if (v < 0)
			break;
		c = c * (hex ? 16 : 10) + (unsigned long)v;
	}
	if (i == d0 || i >= n || s[i] != ';' || c == 0 || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	put_utf8(c, out);
	return i + 1;
}

/* The reference after '&' at s: its length (0: none, copied as it is). */
static size_t reference(const char *s, size_t n, struct buf *out)
{
	size_t i;

	if (n > 0 && s[0] == '#')
		return numeric(s, n, out);
	for (i = 0; i < ARRAY_LEN(named); i++) {
		size_t k = strlen(named[i].name);
		if (n >= k && memcmp(s, named[i].name, k) == 0) {
			buf_puts(out, named[i].text);
			return k;
		}
	}
	return 0;
}

char *track_entity_decode(const char *s, size_t n)
{
	struct buf out;
	size_t i = 0, k;

	buf_init(&out);
	buf_reserve(&out, n + 1);
	while (i < n) {
		const char *amp = memchr(s + i, '&', n - i);
		size_t run = amp ? (size_t)(amp - s) - i : n - i;
		buf_append(&out, s + i, run);
		i += run;
		if (i >= n)
			break;
		k = reference(s + i + 1, n - i - 1, &out);
		if (k == 0)
			buf_append(&out, "&", 1);
		i += 1 + k;
	}
	return out.data;
}

/* Fetchers that load every image of a message whether or not anyone
 * reads it (matched case-insensitively anywhere in the User-Agent). A
 * proxy that fetches on behalf of a reader (Gmail's image proxy) is a
 * reader's open and not listed. */
static const char *const machines[] = {
    "bot",         "spider",     "crawler", "preview",   "barracuda",
    "mimecast",    "proofpoint", "zscaler", "linkcheck", "symantec",
    "messagelabs", "curl/",      "wget/",   "python-",   "go-http-client",
};

int track_machine_ua(const char *ua)
{
	size_t i;

	if (!ua || !*ua)
		return 1; /* people's mail programs say who they are */
	for (i = 0; i < ARRAY_LEN(machines); i++)
		if (strcasestr(ua, machines[i]))
			return 1;
	return 0;
}
