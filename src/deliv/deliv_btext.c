/*
 * deliv_btext: addresses and statuses in the text of a bounce that is not
 * an RFC 3464 report. PURE (libc + util). The rules are in deliv_btext.h.
 */
#include "deliv/deliv_btext.h"

#include <stdio.h>
#include <string.h>

#include "dsn/dsn_parse.h"
#include "util/util.h"

#define LINE_MAX_SCAN 998 /* longer lines are looked at up to this many bytes */

/* Phrases that say what a reply code does not; detail is the status
 * without its class ("1.1"); klass the class when there is no code. */
static const struct phrase {
	const char *text;
	const char *detail;
	char klass;
} phrases[] = {
    {"user unknown", "1.1", '5'},
    {"unknown user", "1.1", '5'},
    {"no such user", "1.1", '5'},
    {"no such mailbox", "1.1", '5'},
    {"no such recipient", "1.1", '5'},
    {"mailbox not found", "1.1", '5'},
    {"recipient not found", "1.1", '5'},
    {"address not found", "1.1", '5'},
    {"does not exist", "1.1", '5'},
    {"doesn't exist", "1.1", '5'},
    {"no mailbox here", "1.1", '5'},
    {"invalid recipient", "1.1", '5'},
    {"recipient unknown", "1.1", '5'},
    {"unknown recipient", "1.1", '5'},
    {"user doesn't have", "1.1", '5'},
    {"couldn't be found", "1.1", '5'},
    {"account has been disabled", "2.1", '5'},
    {"account disabled", "2.1", '5'},
    {"mailbox disabled", "2.1", '5'},
    {"mailbox is disabled", "2.1", '5'},
    {"mailbox full", "2.2", '4'},
    {"mailbox is full", "2.2", '4'},
    {"over quota", "2.2", '4'},
    {"quota exceeded", "2.2", '4'},
    {"insufficient storage", "2.2", '4'},
};

/* Where the returned original begins: a line that starts with one of
 * these (after leading dashes and blanks), or that is "original message"
 * between dashes. */
static const char *const stops[] = {
    "this is a copy of the message",
    "below this line is a copy of the message",
    "original message follows",
    "received:",
};

/* ---- addresses ---- */

static int local_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c >= 0x80 || (c && strchr("!#$%&'*+/=?^_`{|}~.-", c));
}

static int domain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c >= 0x80 || c == '.' || c == '-';
}

/* The address around the '@' at p + at, as [*b, *e); 0 if not one. */
static int addr_at(const char *p, size_t n, size_t at, size_t *b, size_t *e)
{
	size_t s = at, t = at + 1;

	while (s > 0 && local_char((unsigned char)p[s - 1]))
		s--;
	while (s < at && (p[s] == '.' || p[s] == '\'')) /* "'a@b'" quotes, a dot before */
		s++;
	while (t < n && domain_char((unsigned char)p[t]))
		t++;
	while (t > at + 1 && (p[t - 1] == '.' || p[t - 1] == '-')) /* end of a sentence */
		t--;
	*b = s;
	*e = t;
	return s < at && t > at + 1 && memchr(p + at + 1, '.', t - at - 1) && p[at + 1] != '.' &&
	       t - s < DELIV_ADDR_MAX;
}

void deliv_addr_scan(const char *p, size_t n, int (*cb)(void *arg, const char *addr), void *arg)
{
	char addr[DELIV_ADDR_MAX];
	size_t i = 0, b, e;

	while (i < n) {
		const char *at = memchr(p + i, '@', n - i);
		if (!at)
			return;
		i = (size_t)(at - p);
		if (addr_at(p, n, i, &b, &e)) {
			snprintf(addr, sizeof(addr), "%.*s", (int)(e - b), p + b);
			if (cb(arg, addr))
				return;
			i = e;
		} else {
			i++;
		}
	}
}

/* ---- statuses in a line ---- */

struct line_status {
	char status[DELIV_STATUS_MAX];
	int strength; /* 0: none */
};

static int word_start(const char *l, size_t i)
{
	return i == 0 || strchr(" \t(<[:;'\"#=,", l[i - 1]);
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* An enhanced code of class 4 or 5 in l, standing alone. */
static int enhanced_in(const char *l, struct line_status *ls)
{
	for (size_t i = 0; l[i]; i++) {
		size_t n;
		if ((l[i] != '4' && l[i] != '5') || !word_start(l, i) ||
		    !(n = dsn_status_len(l + i)) || is_digit(l[i + n]) || l[i + n] == '.')
			continue;
		snprintf(ls->status, sizeof(ls->status), "%.*s", (int)n, l + i);
		ls->strength = 3;
		return 1;
	}
	return 0;
}

/* A reply code 4xx/5xx at the start of a word, followed by ' ', '-' or ':'. */
static char reply_code_in(const char *l)
{
	for (size_t i = 0; l[i]; i++)
		if ((l[i] == '4' || l[i] == '5') && word_start(l, i) && l[i + 1] >= '0' &&
		    l[i + 1] <= '5' && is_digit(l[i + 2]) && l[i + 3] && strchr(" -:", l[i + 3]))
			return l[i];
	return 0;
}

static const struct phrase *phrase_in(const char *lower)
{
	for (size_t i = 0; i < ARRAY_LEN(phrases); i++)
		if (strstr(lower, phrases[i].text))
			return &phrases[i];
	return NULL;
}

static void line_status(const char *l, const char *lower, struct line_status *ls)
{
	const struct phrase *ph;
	char klass;

	memset(ls, 0, sizeof(*ls));
	if (enhanced_in(l, ls))
		return;
	klass = reply_code_in(l);
	ph = phrase_in(lower);
	if (!klass && !ph)
		return;
	snprintf(ls->status, sizeof(ls->status), "%c.%s", klass ? klass : ph->klass,
	         ph ? ph->detail : "0.0");
	ls->strength = klass ? 2 : 1;
}

/* ---- the scan ---- */

struct scan {
	struct deliv_btext_hit *out;
	size_t max, n;
	char current[DELIV_ADDR_MAX]; /* the address whose window is open, or "" */
	size_t current_line;          /* where it was last seen */
	char first[DELIV_ADDR_MAX];   /* this line's first address, or "" */
	size_t line;
	const struct line_status *ls; /* this line's status */
	const char *text;             /* this line, trimmed */
};

static struct deliv_btext_hit *hit_for(struct scan *s, const char *addr)
{
	for (size_t i = 0; i < s->n; i++)
		if (ascii_casecmp(s->out[i].addr, addr) == 0)
			return &s->out[i];
	if (s->n == s->max)
		return NULL;
	memset(&s->out[s->n], 0, sizeof(s->out[0]));
	snprintf(s->out[s->n].addr, DELIV_ADDR_MAX, "%s", addr);
	return &s->out[s->n++];
}

/* The line's status goes to addr, unless it already has a stronger one. */
static void give(struct scan *s, const char *addr)
{
	struct deliv_btext_hit *h;

	if (!s->ls->strength || !(h = hit_for(s, addr)) || h->strength >= s->ls->strength)
		return;
	snprintf(h->status, sizeof(h->status), "%s", s->ls->status);
	snprintf(h->diag, sizeof(h->diag), "%s", s->text);
	h->strength = s->ls->strength;
}

static int on_addr(void *arg, const char *addr)
{
	struct scan *s = arg;

	if (!s->first[0])
		snprintf(s->first, sizeof(s->first), "%s", addr);
	give(s, addr);
	return 0;
}

static int stop_line(const char *lower)
{
	static const char marker[] = "original message";
	size_t n;

	lower += strspn(lower, "-= \t");
	for (size_t i = 0; i < ARRAY_LEN(stops); i++)
		if (strncmp(lower, stops[i], strlen(stops[i])) == 0)
			return 1;
	n = strlen(marker);
	return strncmp(lower, marker, n) == 0 && strspn(lower + n, "-= \t") == strlen(lower + n);
}

/* After a line: one that named addresses opens the first one's window; one
 * that did not gives its status to the open window's address. */
static void window_step(struct scan *s)
{
	if (s->first[0]) {
		memcpy(s->current, s->first, sizeof(s->current));
		s->current_line = s->line;
	} else if (s->current[0] && s->line - s->current_line < DELIV_BTEXT_WINDOW) {
		give(s, s->current);
	}
}

/* One line [l, l + len): 1 when the original begins and the scan stops. */
static int scan_line(struct scan *s, const char *l, size_t len)
{
	char text[LINE_MAX_SCAN + 1], lower[LINE_MAX_SCAN + 1];
	struct line_status ls;
	size_t n = len < LINE_MAX_SCAN ? len : LINE_MAX_SCAN;

	memcpy(text, l, n);
	text[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)text[i] < 32)
			text[i] = ' '; /* a NUL or a CR must not end the line early */
	memcpy(lower, text, n + 1);
	ascii_lower(lower);
	if (stop_line(lower))
		return 1;
	line_status(text, lower, &ls);
	s->ls = &ls;
	s->text = str_trim(text);
	s->first[0] = '\0';
	deliv_addr_scan(s->text, strlen(s->text), on_addr, s);
	window_step(s);
	return 0;
}

size_t deliv_btext_scan(const char *p, size_t n, struct deliv_btext_hit *out, size_t max)
{
	struct scan s;
	size_t pos = 0;

	memset(&s, 0, sizeof(s));
	s.out = out;
	s.max = max;
	while (pos < n) {
		const char *lf = memchr(p + pos, '\n', n - pos);
		size_t end = lf ? (size_t)(lf - p) : n;
		if (scan_line(&s, p + pos, end - pos))
			break;
		s.line++;
		pos = end + 1;
	}
	return s.n;
}
