/*
 * deliv_mime: just enough MIME (RFC 2045, 2046) to find the parts of a
 * bounce or a complaint report. PURE (libc + util; header fields through
 * dsn_parse.h). Works on a message held in memory; never reads past the
 * bytes given; depth and part counts are bounded, so a hostile message
 * costs at most DELIV_MIME_PARTS_MAX scans of its bytes.
 */
#ifndef POSTHORN_DELIV_MIME_H
#define POSTHORN_DELIV_MIME_H

#include <stddef.h>

#include "util/util.h"

#define DELIV_MIME_DEPTH_MAX 4   /* multipart inside multipart inside ... */
#define DELIV_MIME_PARTS_MAX 64  /* parts looked at in one message, all levels */
#define DELIV_MIME_TYPE_MAX  128 /* "type/subtype" */
#define DELIV_MIME_VALUE_MAX 998 /* an unfolded header value, as kept */

/* An entity: its header section and its body (both inside the message). */
struct deliv_mime {
	const char *head;
	size_t head_len;
	const char *body;
	size_t body_len;
};

/* Splits [p, p + n) into header section and body (after the first empty
 * line; a message without one is all header). */
void deliv_mime_split(const char *p, size_t n, struct deliv_mime *e);

/* The first field called name in e's header section, unfolded (as
 * dsn_field_value), into out. 1 found, 0 not. */
int deliv_mime_header(const struct deliv_mime *e, const char *name, char *out, size_t cap);

/* The entity's content type, lower case ("text/plain" when it has none,
 * as RFC 2045 5.2 says), and one of its parameters (value unquoted, as
 * given): 1 found, 0 not. */
void deliv_mime_type(const struct deliv_mime *e, char *out, size_t cap);
int deliv_mime_param(const struct deliv_mime *e, const char *param, char *out, size_t cap);

/*
 * Depth-first, the first entity (e itself, or a part at any depth below
 * it) whose content type is one of types (NULL-terminated list), into
 * *found. A message/rfc822 part is not entered (it is someone else's
 * message). 1 found, 0 not.
 */
int deliv_mime_find(const struct deliv_mime *e, const char *const *types, struct deliv_mime *found);

/* e's body decoded by its Content-Transfer-Encoding (base64,
 * quoted-printable; anything else as is) and appended to out, at most max
 * bytes of it. */
void deliv_mime_decode(const struct deliv_mime *e, struct buf *out, size_t max);

#endif
