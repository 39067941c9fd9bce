/*
 * dsn_headers: where the header section of a message ends, for the part
 * of a bounce report that returns the original's headers. PURE (libc
 * only): the message comes in pieces of any size, as it is read from the
 * spool, and nothing is kept but a few counters, so a message of any size
 * costs no memory.
 *
 * The section is the lines from the start up to, not including, the first
 * line that ends it:
 *   - an empty line (CRLF, or a bare LF);
 *   - a line that is not a header field: a field starts with a name of
 *     printable characters other than ':' (RFC 5322 2.2), then optional
 *     blanks (the obsolete syntax), then ':'; a line starting with a blank
 *     continues the field above (not allowed first);
 *   - or the limit: a line that would take the section past max bytes.
 * So a message without an empty line, or with none before its body, still
 * returns its headers only, and never more than max bytes of them.
 */
#ifndef POSTHORN_DSN_HEADERS_H
#define POSTHORN_DSN_HEADERS_H

#include <stddef.h>
#include <stdint.h>

struct dsn_hscan {
	uint64_t pos; /* bytes fed */
	uint64_t end; /* bytes [0, end) are whole lines of the section */
	uint64_t max; /* the limit */
	int state;    /* where in a line pos is (dsn_headers.c) */
	int done;     /* the section ended; later bytes are ignored */
	int cut;      /* it ended at the limit */
};

/* A scan whose section may hold at most max bytes. */
void dsn_hscan_init(struct dsn_hscan *h, uint64_t max);

/* Feeds the next n bytes. Returns 1 once the section has ended (then the
 * rest of the message need not be read), 0 while it goes on. */
int dsn_hscan_feed(struct dsn_hscan *h, const char *p, size_t n);

/* After the last byte (or once feed returned 1): the section's length,
 * with the line ending of its last field. A last line without a line
 * ending counts when it is a whole field. */
uint64_t dsn_hscan_end(struct dsn_hscan *h);

#endif
