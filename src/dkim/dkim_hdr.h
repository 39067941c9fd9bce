/*
 * dkim_hdr: the header section as the signer sees it. PURE (libc + util).
 *
 * - Which header fields are signed: one table (dkim_signed_names), used
 *   both to pick the fields fed to libopendkim and as libopendkim's own
 *   sign list, so the two cannot disagree. From is oversigned: h= names it
 *   once more than it is present, so that a From added later breaks the
 *   signature.
 * - Splitting a header section into fields (a field runs on over folded
 *   lines, those starting with a space or a tab).
 * - The From field's domain: an RFC 5322 mailbox-list parser that knows
 *   comments (nested), quoted strings, angle addresses (with an obsolete
 *   source route), groups and domain literals. Encoded words (RFC 2047)
 *   are atoms of the display name and are never decoded: an address is
 *   never inside one. UTF-8 (RFC 6532) passes through as atom bytes.
 */
#ifndef POSTHORN_DKIM_HDR_H
#define POSTHORN_DKIM_HDR_H

#include <stddef.h>

/* Longest header section a message may have and still be signed: the
 * signer keeps the section in memory until it ends. */
#define DKIM_HDR_MAX (256 * 1024)

/* Longest From domain kept (a DNS name has at most 253 octets). */
#define DKIM_DOMAIN_MAX 253

/* The names of the signed fields, NULL-terminated, and the oversigned one. */
extern const char *const dkim_signed_names[];
extern const char *const dkim_oversigned_names[];

/* 1 if a field named name[0..len) is signed (ASCII case-insensitive). */
int dkim_hdr_signed(const char *name, size_t len);

/* One header field of a section. */
struct dkim_field {
	const char *start; /* the field's first byte (its name) */
	size_t len;        /* through its last folded line, without the final line end */
	size_t name_len;   /* the name without trailing blanks; 0: no colon, not a field */
	const char *value; /* after the colon */
	size_t value_len;
};

/*
 * The next field of the header section p[0..n). Returns 1 and fills *f,
 * setting *used to the bytes consumed (the field and its line end); 0 at
 * the end of the section (an empty line, or no bytes left), *used then
 * covers the empty line. Lines end with CRLF or a bare LF. A line that
 * does not end within p[0..n) is taken as ending there. A continuation
 * line with no field before it is returned as a field with name_len 0.
 */
int dkim_hdr_next(const char *p, size_t n, struct dkim_field *f, size_t *used);

/*
 * Offset just past the empty line that ends the header section in
 * p[0..n), or 0 if the section has not ended in p[0..n). A section may be
 * empty: then the message starts with its empty line. For a section that
 * arrives in pieces: p[0..from) was searched before (0 the first time), so
 * the search resumes near there instead of starting over.
 */
size_t dkim_hdr_end(const char *p, size_t n, size_t from);

enum dkim_from {
	DKIM_FROM_OK,       /* exactly one mailbox, with a domain */
	DKIM_FROM_NONE,     /* no mailbox, or one with no usable domain (none,
	                       empty, a domain literal, or too long) */
	DKIM_FROM_MULTIPLE, /* more than one mailbox */
};

/*
 * The domain of the one mailbox in a From field's value v[0..n) (folded
 * lines included), lower-cased (ASCII), without a trailing dot, into
 * out[cap] (cap > DKIM_DOMAIN_MAX is always enough). out is set only with
 * DKIM_FROM_OK.
 */
enum dkim_from dkim_from_domain(const char *v, size_t n, char *out, size_t cap);

/*
 * The same for a whole header section p[0..n) (fields as dkim_hdr_next
 * splits them; it may end with its empty line): DKIM_FROM_MULTIPLE when
 * more than one field is named From, DKIM_FROM_NONE when none is.
 */
enum dkim_from dkim_hdr_from_domain(const char *p, size_t n, char *out, size_t cap);

#endif
