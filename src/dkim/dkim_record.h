/*
 * dkim_record: the DNS side of a key. PURE (libc + util); fuzzed by
 * fuzz/fuzz_dkim_hdr.c.
 *
 * - The record to publish, "v=DKIM1; k=rsa; p=BASE64" (RFC 6376 3.6.1,
 *   RFC 8463 for k=ed25519), at SELECTOR._domainkey.DOMAIN, and its
 *   zone-file line with the text cut into strings of at most 255 octets
 *   (the limit of one character-string, RFC 1035 3.3).
 * - What is published compared with the key: the TXT records found at the
 *   name (each record's strings already joined) are parsed as tag lists
 *   (RFC 6376 3.2).
 */
#ifndef POSTHORN_DKIM_RECORD_H
#define POSTHORN_DKIM_RECORD_H

#include <stddef.h>

#include "dkim/dkim_rotate.h"

/* Longest character-string in a TXT record (RFC 1035 3.3). */
#define DKIM_TXT_STRING_MAX 255

/* "SELECTOR._domainkey.DOMAIN" (malloc'd). */
char *dkim_record_name(const char *selector, const char *domain);

/* "v=DKIM1; k=K; p=P" for a key of algorithm a whose public key is the
 * base64 text p (malloc'd). */
char *dkim_record_text(enum dkim_algo a, const char *p);

/* `SELECTOR._domainkey.DOMAIN. IN TXT "..." "..."` on one line, without a
 * line end (malloc'd). text holds no '"' or '\' (base64 and tags only). */
char *dkim_record_zone_line(const char *selector, const char *domain, const char *text);

enum dkim_verdict {
	DKIM_VERDICT_MATCH,     /* every key record at the name is this key */
	DKIM_VERDICT_MISSING,   /* no key record at the name */
	DKIM_VERDICT_DIFFERENT, /* a key record that is not this key */
};

/* "match", "missing", "different". */
const char *dkim_verdict_name(enum dkim_verdict v);

/*
 * Compares the TXT records txt[0..n) found at the key's name with a key of
 * algorithm a and public key p (base64). A TXT record is a key record when
 * it starts with "v=DKIM1" or parses as a tag list with a p= tag; others
 * (an SPF record, a note) are ignored. *why (static text) says what
 * differs: "malformed record", "wrong key type", "revoked (empty p=)",
 * "another public key"; NULL for the other verdicts.
 */
enum dkim_verdict dkim_record_compare(const char *const *txt, size_t n, enum dkim_algo a,
                                      const char *p, const char **why);

#endif
