/*
 * mime: PURE (libc + util) builders for the messages the HTTP API sends.
 *
 * mime_build() turns the parts of a message (addresses, subject, text,
 * html, extra headers, attachments) into RFC 5322 + MIME bytes with CRLF
 * line ends: multipart/alternative for text + html, multipart/related for
 * inline parts (content_id) beside the html, multipart/mixed for
 * attachments. Bodies are 7bit when they can be (ASCII, lines of at most
 * 998 bytes), else quoted-printable (lines of at most 76); attachments are
 * base64 (76). Header text that is not ASCII becomes RFC 2047 encoded
 * words (UTF-8, B), folded so that no line passes 78 bytes where a fold is
 * possible and never 998. Addresses are written as given; one that is not
 * ASCII makes the message need SMTPUTF8 (mime_addr_utf8()).
 *
 * The caller has checked the inputs (mime_addr_parse(), mime_header_ok()):
 * the builder does not refuse anything, it only encodes.
 */
#ifndef POSTHORN_MIME_H
#define POSTHORN_MIME_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define MIME_ADDR_MAX 254
#define MIME_NAME_MAX 256

/* "Name <addr>" or "addr", split. */
struct mime_addr {
	char name[MIME_NAME_MAX + 1]; /* "" when none; quotes removed */
	char addr[MIME_ADDR_MAX + 1];
};

/* 0 and *out, or -1 with *why: s is "addr", "<addr>", "Name <addr>" or
 * "\"Name\" <addr>", with no control characters; addr is checked with
 * smtp_address_valid (UTF-8 allowed). */
int mime_addr_parse(const char *s, struct mime_addr *out, const char **why);
/* 1 if the address has bytes above 127 (the message needs SMTPUTF8). */
int mime_addr_utf8(const struct mime_addr *a);

struct mime_header {
	const char *name;
	const char *value;
};

/* 1 if name may be set by a caller: a field name (printable ASCII, no
 * colon, 1..76 bytes) that is none of the fields the builder writes
 * itself (From, To, Cc, Bcc, Reply-To, Subject, Date, Message-ID,
 * MIME-Version, Content-*), nor Received or Return-Path; and value is
 * UTF-8 text without control characters of at most 998 bytes. Else 0 and
 * *why. */
int mime_header_ok(const char *name, const char *value, const char **why);

struct mime_part {
	const char *filename;     /* may be NULL */
	const char *content_type; /* "type/subtype", checked by the caller */
	const char *content_id;   /* inline (beside the html) when set */
	const unsigned char *data;
	size_t len;
};

struct mime_msg {
	const struct mime_addr *from;
	const struct mime_addr *to; /* the To: and Cc: fields (Bcc never appears) */
	size_t n_to;
	const struct mime_addr *cc;
	size_t n_cc;
	const struct mime_addr *reply_to; /* NULL: none */
	const char *subject;              /* UTF-8, one line */
	const char *text, *html;          /* UTF-8 or NULL; at least one, or a part */
	const struct mime_header *headers;
	size_t n_headers;
	const struct mime_part *parts;
	size_t n_parts;
	const char *message_id; /* "<...>" */
	int64_t date;           /* unix seconds */
	const char *seed;       /* makes the boundaries unique: the queue ID */
};

/* Appends the message to out. */
void mime_build(const struct mime_msg *m, struct buf *out);

/* ---- encoders (mime_enc.c), exposed for the tests ---- */

/* 1 if the bytes are UTF-8 (no overlongs, no surrogates). */
int mime_utf8_valid(const char *s, size_t n);
/* Quoted-printable (RFC 2045 6.7) of text whose line ends are LF or CRLF:
 * line breaks stay hard CRLF breaks, lines are at most 76 bytes. */
void mime_qp(const char *s, size_t n, struct buf *out);
/* Base64 in lines of 76 with CRLF. */
void mime_base64_lines(const unsigned char *p, size_t n, struct buf *out);
/* An unstructured header "Name: value\r\n", the value as is when it is
 * ASCII and foldable, else as encoded words. */
void mime_header_text(const char *name, const char *value, struct buf *out);
/* An address header of n addresses, folded between them. */
void mime_header_addrs(const char *name, const struct mime_addr *a, size_t n, struct buf *out);

#endif
