/*
 * dsn_headers: the end of a message's header section, fed in pieces. PURE
 * (libc only). Contract in dsn_headers.h.
 */
#include "dsn/dsn_headers.h"

#include <string.h>

/* Where pos is within the current line. */
enum {
	ST_START, /* at the start of a line */
	ST_CR,    /* a CR at the start: an empty line if LF follows */
	ST_NAME,  /* in a field name */
	ST_BLANK, /* blanks after the name, before ':' */
	ST_FIELD, /* after ':' or a continuation's blank: anything up to LF */
};

void dsn_hscan_init(struct dsn_hscan *h, uint64_t max)
{
	memset(h, 0, sizeof(*h));
	h->max = max;
	h->state = ST_START;
}

static int name_char(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static int blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* The section ends before the line that starts at h->end. */
static int stop(struct dsn_hscan *h)
{
	h->done = 1;
	return 1;
}

/* One byte c at h->pos, outside ST_FIELD. 1: the section ended. */
static int step(struct dsn_hscan *h, unsigned char c)
{
	switch (h->state) {
	case ST_START:
		if (c == '\n')
			return stop(h); /* an empty line (bare LF) */
		if (c == '\r')
			h->state = ST_CR;
		else if (blank(c) && h->end > 0)
			h->state = ST_FIELD; /* continuation */
		else if (name_char(c))
			h->state = ST_NAME;
		else
			return stop(h);
		return 0;
	case ST_CR:
		return stop(h); /* CRLF: empty; CR then anything: no field */
	case ST_NAME:
		if (c == ':')
			h->state = ST_FIELD;
		else if (blank(c))
			h->state = ST_BLANK;
		else if (!name_char(c))
			return stop(h);
		return 0;
	case ST_BLANK:
		if (c == ':')
			h->state = ST_FIELD;
		else if (!blank(c))
			return stop(h);
		return 0;
	}
	return 0;
}

/* The limit is checked after each byte (in a field, after each run of
 * bytes up to a line end, which decides the same), so the answer does not
 * depend on how the message was cut into pieces. */
static int past_limit(struct dsn_hscan *h)
{
	if (h->pos <= h->max)
		return 0;
	h->cut = 1;
	return stop(h);
}

int dsn_hscan_feed(struct dsn_hscan *h, const char *p, size_t n)
{
	const char *q = p, *e = p + n, *nl;

	while (!h->done && q < e) {
		if (h->state != ST_FIELD) {
			if (step(h, (unsigned char)*q))
				return 1;
			h->pos++, q++;
			if (past_limit(h))
				return 1;
			continue;
		}
		nl = memchr(q, '\n', (size_t)(e - q));
		h->pos += (uint64_t)((nl ? nl + 1 : e) - q);
		q = nl ? nl + 1 : e;
		if (past_limit(h))
			return 1;
		if (nl) {
			h->end = h->pos;
			h->state = ST_START;
		}
	}
	return h->done;
}

uint64_t dsn_hscan_end(struct dsn_hscan *h)
{
	/* a whole field on a last line without its line ending */
	if (!h->done && h->state == ST_FIELD && h->pos <= h->max)
		h->end = h->pos;
	h->done = 1;
	return h->end;
}
