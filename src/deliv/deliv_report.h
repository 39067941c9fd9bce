/*
 * deliv_report: what a message sent to a VERP return path says. PURE
 * (libc + util): bytes in, a struct out. Three readers, tried in order:
 *
 *   1. ARF (RFC 5965): a part message/feedback-report (anywhere in the
 *      MIME tree). Its Feedback-Type, and the complained-about recipients:
 *      Original-Rcpt-To fields, else Removal-Recipient, else the To and Cc
 *      addresses of the returned original (message/rfc822 or
 *      text/rfc822-headers). A feedback type that is no complaint
 *      ("not-spam", "auth-failure") makes a report of kind NONE.
 *   2. DSN (RFC 3464, RFC 6533): a part message/delivery-status or
 *      message/global-delivery-status: one entry per recipient group
 *      (Final-Recipient, else Original-Recipient), with its Action,
 *      Status (or the status of the Diagnostic-Code's reply) and
 *      Diagnostic-Code.
 *   3. Text (deliv_btext.h): the first text/plain part, or the body of a
 *      message that is not multipart, read by the heuristics; only for a
 *      message that presents itself as a bounce (a Subject with "deliver",
 *      "failure", "failed", "returned", "bounce", "rejected", or a From
 *      of MAILER-DAEMON or postmaster): an out-of-office reply is not.
 * A report whose DSN part names no recipient falls through to the text.
 *
 * Only the first DELIV_REPORT_MAX bytes are looked at (the caller keeps
 * no more: the parts read come before any returned original, and a
 * session holding a report holds at most that much), at most
 * DELIV_REPORT_RCPTS recipients are reported.
 */
#ifndef POSTHORN_DELIV_REPORT_H
#define POSTHORN_DELIV_REPORT_H

#include <stddef.h>

#include "deliv/deliv_btext.h"

#define DELIV_REPORT_MAX   (256u * 1024)
#define DELIV_REPORT_RCPTS 32
#define DELIV_FBTYPE_MAX   64

enum deliv_report_kind {
	DELIV_REPORT_NONE, /* nothing to act on (an auto-reply, a not-spam report) */
	DELIV_REPORT_DSN,
	DELIV_REPORT_TEXT,
	DELIV_REPORT_ARF,
};

/* What happened to one recipient, by the report. */
enum deliv_report_what {
	DELIV_RCPT_FAILED,     /* a permanent failure (status class 5) */
	DELIV_RCPT_TEMPORARY,  /* delayed, or a class 4 status: nothing to do */
	DELIV_RCPT_OTHER,      /* delivered, relayed, expanded */
	DELIV_RCPT_COMPLAINED, /* ARF */
};

struct deliv_report_rcpt {
	char addr[DELIV_ADDR_MAX];
	char alt[DELIV_ADDR_MAX]; /* DSN: the Original-Recipient when it differs; else "" */
	enum deliv_report_what what;
	char status[DELIV_STATUS_MAX]; /* "5.1.1"; "" for a complaint */
	char diag[DELIV_DIAG_MAX];     /* the remote reply or the line it came from */
};

struct deliv_report {
	enum deliv_report_kind kind;
	char feedback_type[DELIV_FBTYPE_MAX]; /* ARF: lower case, "abuse" when absent */
	struct deliv_report_rcpt rcpts[DELIV_REPORT_RCPTS];
	size_t n;
};

/* Reads message [p, p + n) (header and body, CRLF or LF lines). */
void deliv_report_parse(const char *p, size_t n, struct deliv_report *out);

const char *deliv_report_kind_name(enum deliv_report_kind k); /* "dsn", "text", ... */

#endif
