/*
 * deliv_btext: bounces that are not RFC 3464 reports, read as text.
 * PURE (libc + util). The tests hold a corpus of the common shapes
 * (tests/unit/bounces/): a host that names the failed address on one line
 * and the SMTP reply on the same line or one of the next few, as Posthorn
 * itself, qmail-style, Exim-style, Sendmail-style and Exchange-style
 * notices do, and the phrases that say "no such user" without a code.
 *
 * The rules, in order:
 *   1. Lines are read until the returned original begins (a line such as
 *      "------ This is a copy of the message", "Original message follows",
 *      or a "Received:" field): addresses in the original are not failures.
 *   2. Each address seen opens a window of DELIV_BTEXT_WINDOW lines (its
 *      own and the next ones); the first status found in that window is
 *      the address's: an enhanced code ("5.1.1", qmail's "#5.1.1"), else
 *      a reply code at the start of a word ("550 ", "554:", "550-"), else
 *      a phrase of the table in deliv_btext.c ("user unknown" ...).
 *      A reply code with a "no such user" phrase becomes 5.1.1.
 *   3. One hit per address (any case): the strongest status seen wins
 *      (an enhanced code over a bare reply code over a phrase).
 * The hits are candidates: the caller keeps only the addresses that were
 * recipients of the message the bounce names, which is what keeps an
 * address quoted in some text from being taken for a failure.
 */
#ifndef POSTHORN_DELIV_BTEXT_H
#define POSTHORN_DELIV_BTEXT_H

#include <stddef.h>

#define DELIV_BTEXT_WINDOW 4 /* lines: the address's own and 3 more */
#define DELIV_ADDR_MAX     256
#define DELIV_STATUS_MAX   12
#define DELIV_DIAG_MAX     512

struct deliv_btext_hit {
	char addr[DELIV_ADDR_MAX];
	char status[DELIV_STATUS_MAX]; /* "5.1.1"; a reply code alone gives "5.0.0" */
	char diag[DELIV_DIAG_MAX];     /* the line the status was found on, trimmed */
	int strength;                  /* 3 enhanced code, 2 reply code, 1 phrase */
};

/* Scans text [p, p + n); fills out[0..max) and returns the number of hits
 * (at most max). Only statuses of class 4 and 5 are hits. */
size_t deliv_btext_scan(const char *p, size_t n, struct deliv_btext_hit *out, size_t max);

/*
 * The addresses in [p, p + n) (a header value, a line): words with one
 * '@', a local part and a dotted domain, without the <> or quotes around
 * them and trailing punctuation. Calls cb for each, in order; stops when
 * cb returns non-zero.
 */
void deliv_addr_scan(const char *p, size_t n, int (*cb)(void *arg, const char *addr), void *arg);

#endif
