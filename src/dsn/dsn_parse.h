/*
 * dsn_parse: reading what other hosts send back. PURE (libc + util).
 *
 *   - dsn_field_next(): one field of a header-like block (a message's
 *     header section, or a group of a delivery-status body), with folded
 *     lines; CRLF or bare LF; never reads past n.
 *   - dsn_parse_status(): the body of a message/delivery-status part
 *     (RFC 3464 2.1; message/global-delivery-status of RFC 6533 too): the
 *     per-message group, then one group per recipient, separated by empty
 *     lines. Unknown fields are skipped; a malformed group is taken for
 *     what it holds. Values are cut to their buffers.
 *
 * Used by the bounce and complaint loop (src/deliv/deliv_report.c); the
 * reports Posthorn itself builds are dsn_build.c's.
 */
#ifndef POSTHORN_DSN_PARSE_H
#define POSTHORN_DSN_PARSE_H

#include <stddef.h>

struct dsn_field {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	const char *value; /* raw: after the colon, up to the end of its last line */
	size_t value_len;
};

/*
 * The next field at *pos of [p, p + n). 1 with *f filled and *pos after
 * the field; 0 at the end of the block: an empty line (*pos then after
 * it), the end of the data, or a line that is not a field (*pos at it).
 * A line that starts with a blank continues the field before it.
 */
int dsn_field_next(const char *p, size_t n, size_t *pos, struct dsn_field *f);
/* 1 if f's name is name (any case). */
int dsn_field_is(const struct dsn_field *f, const char *name);
/* The value unfolded: line breaks and runs of blanks become one space,
 * the ends trimmed, control bytes dropped; cut to cap - 1 bytes. */
void dsn_field_value(const struct dsn_field *f, char *out, size_t cap);

#define DSN_PARSE_ADDR_MAX   256
#define DSN_PARSE_ACTION_MAX 16
#define DSN_PARSE_STATUS_MAX 12
#define DSN_PARSE_DIAG_MAX   512

/* One recipient group. Empty strings for fields the group lacks. */
struct dsn_parsed_rcpt {
	char final_rcpt[DSN_PARSE_ADDR_MAX];    /* Final-Recipient's address (type; dropped) */
	char original_rcpt[DSN_PARSE_ADDR_MAX]; /* Original-Recipient's address */
	char action[DSN_PARSE_ACTION_MAX];      /* "failed", "delayed", ... lower case */
	char status[DSN_PARSE_STATUS_MAX];      /* "5.1.1" when well formed, else "" */
	char diag[DSN_PARSE_DIAG_MAX];          /* Diagnostic-Code's text (type; dropped) */
};

/* Parses a delivery-status body into out[0..max); returns the number of
 * recipient groups seen (more than max when some did not fit). Groups
 * without Final-Recipient or Original-Recipient are not counted. */
size_t dsn_parse_status(const char *p, size_t n, struct dsn_parsed_rcpt *out, size_t max);

/* Status codes and replies (dsn_build.c uses them too). */
/* Length of an RFC 3463 code at the start of s ("5.1.1": class 2, 4 or 5,
 * then 1-3 and 1-3 digits), 0 if there is none. */
size_t dsn_status_len(const char *s);
/* The class digit ('2'..'5') of an SMTP reply at the start of s ("550 ...",
 * "421-..."), or 0. */
char dsn_reply_class(const char *s);
/* The status an SMTP reply t carries: its enhanced code when the class
 * agrees with the reply code's, else the reply's class ("5.0.0"); 0 when
 * t is not a reply of class 2, 4 or 5 (a 3xx is no outcome). out has
 * DSN_PARSE_STATUS_MAX bytes. */
int dsn_status_of_reply(const char *t, char *out);

/* "rfc822; john@example.com" -> "john@example.com" (the part after the
 * first ';', trimmed, without <>); a value without ';' is taken whole. */
void dsn_typed_value(const char *v, char *out, size_t cap);

#endif
