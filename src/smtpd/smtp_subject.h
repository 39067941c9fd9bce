/*
 * smtp_subject: a Subject value as a person reads it (PURE: libc + util).
 *
 * Decodes the RFC 2047 encoded words of an unfolded header value
 * ("=?charset?B|Q?text?="): B (base64) and Q (quoted-printable, "_" a
 * space), in UTF-8, US-ASCII or ISO-8859-1 (latin1; turned into UTF-8).
 * White space between two adjacent encoded words is dropped (RFC 2047
 * 6.2). An encoded word that is malformed, or in another charset, is
 * kept as it was written. Other bytes are copied as they are (SMTPUTF8
 * subjects are UTF-8 already); the event writer makes the result valid
 * UTF-8. The output is cut at cap - 1 bytes (a character cut there is
 * dropped by the writer's UTF-8 cleaning).
 */
#ifndef POSTHORN_SMTP_SUBJECT_H
#define POSTHORN_SMTP_SUBJECT_H

#include <stddef.h>

/* in[0..n) decoded into out (cap bytes, NUL-terminated; cap > 0).
 * Returns the length written. */
size_t smtp_subject_decode(const char *in, size_t n, char *out, size_t cap);

#endif
