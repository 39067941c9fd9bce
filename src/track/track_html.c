/*
 * track_html: PURE. The HTML of a tracked message, rewritten (track.h):
 * a small scanner that knows tags, quoted attribute values and comments,
 * and nothing else; what it does not rewrite it copies byte for byte.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "track/track.h"

struct scan {
	const char *s;
	size_t n, i;   /* input, position */
	size_t copied; /* input bytes before this are in out */
	struct buf *out;
	track_link_fn link;
	void *arg;
};

static int at_ci(const struct scan *sc, const char *word)
{
	size_t k = strlen(word);

	return sc->n - sc->i >= k && ascii_ncasecmp(sc->s + sc->i, word, k) == 0;
}

static void skip_space(struct scan *sc)
{
	while (sc->i < sc->n && isspace((unsigned char)sc->s[sc->i]))
		sc->i++;
}

static void attr_escape(const char *v, struct buf *out)
{
	for (; *v; v++)
		if (*v == '&')
			buf_puts(out, "&amp;");
		else if (*v == '"')
			buf_puts(out, "&quot;");
		else
			buf_append(out, v, 1);
}

/* The value s[a..b) of an href, written from start (its quote) to sc->i:
 * replaced when it is an http(s) link. */
static void href(struct scan *sc, size_t a, size_t b, size_t start)
{
	char *url = track_entity_decode(sc->s + a, b - a), *tracked;

	if (!sc->link || b - a > TRACK_URL_MAX || strlen(url) != strcspn(url, "\r\n\t") ||
	    !(ascii_startswith(url, "http://") || ascii_startswith(url, "https://"))) {
		free(url);
		return;
	}
	tracked = sc->link(sc->arg, url);
	buf_append(sc->out, sc->s + sc->copied, start - sc->copied);
	buf_puts(sc->out, "\"");
	attr_escape(tracked, sc->out);
	buf_puts(sc->out, "\"");
	sc->copied = sc->i;
	free(url);
	free(tracked);
}

/* One attribute value at sc->i: its bounds without quotes in *a, *b. */
static void attr_value(struct scan *sc, size_t *a, size_t *b)
{
	char q = sc->s[sc->i];

	if (q == '"' || q == '\'') {
		const char *e = memchr(sc->s + sc->i + 1, q, sc->n - sc->i - 1);
		*a = sc->i + 1;
		*b = e ? (size_t)(e - sc->s) : sc->n;
		sc->i = e ? *b + 1 : sc->n;
		return;
	}
	*a = sc->i;
	while (sc->i < sc->n && !isspace((unsigned char)sc->s[sc->i]) && sc->s[sc->i] != '>')
		sc->i++;
	*b = sc->i;
}

/* The attributes of a tag, up to its '>'; is_a: rewrite its href. */
static void attributes(struct scan *sc, int is_a)
{
	for (;;) {
		size_t name, name_len, a, b, start;
		skip_space(sc);
		if (sc->i >= sc->n || sc->s[sc->i] == '>')
			break;
		name = sc->i;
		while (sc->i < sc->n && !isspace((unsigned char)sc->s[sc->i]) &&
		       !strchr("=>", sc->s[sc->i]))
			sc->i++;
		name_len = sc->i - name;
		if (name_len == 0) /* a stray '=': skip it */
			sc->i++;
		skip_space(sc);
		if (sc->i >= sc->n || sc->s[sc->i] != '=')
			continue;
		sc->i++;
		skip_space(sc);
		start = sc->i;
		attr_value(sc, &a, &b);
		if (is_a && name_len == 4 && ascii_ncasecmp(sc->s + name, "href", 4) == 0)
			href(sc, a, b, start);
	}
	if (sc->i < sc->n)
		sc->i++;
}

static void tag(struct scan *sc)
{
	int is_a;

	sc->i++; /* '<' */
	if (at_ci(sc, "!--")) {
		const char *e = memmem(sc->s + sc->i, sc->n - sc->i, "-->", 3);
		sc->i = e ? (size_t)(e - sc->s) + 3 : sc->n;
		return;
	}
	is_a = at_ci(sc, "a") && sc->i + 1 < sc->n &&
	       (isspace((unsigned char)sc->s[sc->i + 1]) || sc->s[sc->i + 1] == '>');
	while (sc->i < sc->n && !isspace((unsigned char)sc->s[sc->i]) && sc->s[sc->i] != '>')
		sc->i++;
	attributes(sc, is_a);
}

/* Where the pixel goes in out: before the last </body>, else the end. */
static size_t pixel_at(const struct buf *out, size_t start)
{
	size_t i = out->len;

	while (i > start) {
		i--;
		if (out->data[i] == '<' && out->len - i >= 6 &&
		    ascii_ncasecmp(out->data + i, "</body", 6) == 0)
			return i;
	}
	return out->len;
}

static void add_pixel(const char *pixel, struct buf *out, size_t start)
{
	struct buf img;
	size_t at = pixel_at(out, start);

	buf_init(&img);
	buf_puts(&img, "<img src=\"");
	attr_escape(pixel, &img);
	buf_puts(&img, "\" width=\"1\" height=\"1\" alt=\"\" style=\"border:0\">");
	buf_reserve(out, img.len);
	memmove(out->data + at + img.len, out->data + at, out->len - at + 1);
	memcpy(out->data + at, img.data, img.len);
	out->len += img.len;
	buf_free(&img);
}

void track_html(const char *html, size_t n, track_link_fn link, void *arg, const char *pixel,
                struct buf *out)
{
	struct scan sc = {html, n, 0, 0, out, link, arg};
	size_t start = out->len;

	while (sc.i < n) {
		const char *lt = memchr(html + sc.i, '<', n - sc.i);
		if (!lt)
			break;
		sc.i = (size_t)(lt - html);
		tag(&sc);
	}
	buf_append(out, html + sc.copied, n - sc.copied);
	if (pixel)
		add_pixel(pixel, out, start);
}
