/*
 * dsn: delivery status notifications (RFC 3464 reports, RFC 3461 rules,
 * RFC 6533 for SMTPUTF8 mail). A report is an ordinary message: dsn_queue()
 * builds it into the spool with the null sender and one recipient, the
 * original sender, and the delivery engine then treats it like any other.
 *
 * Three layers:
 *   dsn_headers.c  PURE: where the original's header section ends.
 *   dsn_build.c    PURE-ish (libc + util, plus pread() of the original): the
 *                  NOTIFY policy and the report text, written through a
 *                  callback. Unit-tested without a spool.
 *   dsn.c          dsn_queue() and its three steps: the report into a new
 *                  spool message.
 *
 * Who is told what (dsn_should_report):
 *   - never the null sender: a message with MAIL FROM:<> gets no report.
 *     Every report Posthorn sends has the null sender, so a report about a
 *     report (a bounce loop) cannot happen;
 *   - NOTIFY=NEVER: nothing;
 *   - NOTIFY absent (0): failures only;
 *   - otherwise an event is reported when its keyword was given: FAILURE for
 *     "failed", DELAY for "delayed", SUCCESS for "delivered", "relayed" and
 *     "expanded".
 * A report lists only the recipients whose NOTIFY asks for their event.
 *
 * What comes back (the third part): the whole original for a report with a
 * failed recipient when the sender asked RET=FULL and the original is at
 * most DSN_FULL_MAX bytes; otherwise the headers only (RET=HDRS, RET
 * absent, a larger original, and every delay or success notice, which
 * RFC 3461 says should not return content). The headers are the header
 * section as dsn_headers.h finds it, even in a message without an empty
 * line, and at most DSN_HEADERS_MAX bytes of it. The report's text says
 * when less than asked for came back. So a report is never much larger
 * than DSN_FULL_MAX, whatever the original.
 */
#ifndef POSTHORN_DSN_H
#define POSTHORN_DSN_H

#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"

#define DSN_FULL_MAX    (256u * 1024) /* bytes of an original returned in full, at most */
#define DSN_HEADERS_MAX (128u * 1024) /* bytes of returned headers, at most */

/* RFC 3464 2.3.3 action-value. */
enum dsn_action {
	DSN_ACT_FAILED = 1,
	DSN_ACT_DELAYED,
	DSN_ACT_DELIVERED,
	DSN_ACT_RELAYED,
	DSN_ACT_EXPANDED
};

/* What a report is about, by its most serious listed recipient: it picks
 * the Subject and whether the full original may come back. */
enum dsn_kind { DSN_KIND_NONE = 0, DSN_KIND_SUCCESS, DSN_KIND_DELAY, DSN_KIND_FAILURE };

/* One recipient's result. Strings are borrowed for the duration of the
 * call that receives them. */
struct dsn_rcpt {
	size_t index; /* into orig->rcpts */
	enum dsn_action action;
	const char *status;     /* RFC 3463 "5.1.1"; NULL or malformed: see dsn_status() */
	const char *diagnostic; /* "smtp; 550 5.1.1 <x@y>: no such user", a bare reply
	                           "550 5.1.1 ...", or local text; NULL: none */
	const char *remote_mta; /* host name of the MX that answered, or NULL */
	int64_t last_attempt;   /* unix seconds; 0: no attempt made */
	int64_t retry_until;    /* delayed only: unix seconds; 0: omitted */
};

/* Where the original message is: bytes [offset, offset + len) of fd, as
 * spool_open_body() returns them. fd < 0: not available (the report then
 * goes out without its third part, as Postfix does: the sender must learn
 * of the failure even when the copy is lost). Read in bounded chunks. */
struct dsn_original {
	int fd;
	uint64_t offset;
	uint64_t len;
};

struct dsn_report {
	const struct envelope *orig;
	const char *hostname; /* the reporting MTA: Reporting-MTA, From, Message-ID */
	const struct dsn_rcpt *rcpts;
	size_t n_rcpts;
	struct dsn_original body;
	int64_t now; /* Date: of the report, unix seconds; 0: the clock */
	/* Randomness for the MIME boundary; NULL: getrandom(). Tests inject
	 * one to force a boundary that collides with the content. */
	void (*random)(void *p, size_t n);
};

/* Receives the report's bytes in order; returns 0, or -1 to stop the build. */
typedef int (*dsn_write_fn)(void *ctx, const void *p, size_t n);

/* ---- policy (pure) ---- */

/* 1 if a recipient with these NOTIFY bits asked to hear about action. */
int dsn_notify_wants(unsigned notify, enum dsn_action action);
/* 1 if a report about orig->rcpts[i] for action should be sent: the sender
 * is not null and the recipient's NOTIFY asks for it. 0 for a bad index. */
int dsn_should_report(const struct envelope *orig, size_t i, enum dsn_action action);
/* For the scheduler: 1 if recipient i, still queued after a failed
 * attempt, wants a delay notice at all: it asked NOTIFY=DELAY, the sender
 * is not null, and it is not final. When one is due is sched_policy's
 * sched_delay_due(). */
int dsn_delay_wanted(const struct envelope *orig, size_t i);

/* The kind of report these results make, counting only the recipients
 * dsn_should_report() lets through; DSN_KIND_NONE: nothing to send. */
enum dsn_kind dsn_report_kind(const struct envelope *orig, const struct dsn_rcpt *rcpts, size_t n);

const char *dsn_action_name(enum dsn_action action); /* "failed", ... */
const char *dsn_kind_name(enum dsn_kind kind);       /* "failure", ... */

#define DSN_STATUS_MAX 12 /* "5.123.123" + NUL, rounded up */
/* 1 if s is an RFC 3463 status code: class 2, 4 or 5, then 1-3 and 1-3 digits. */
int dsn_status_valid(const char *s);
/* The Status: to report: status when valid; else the enhanced code at the
 * start of an SMTP reply in diagnostic ("550 5.1.1 ..."); else the reply's
 * class ("4.0.0" for a 421); else by action: 5.0.0 failed, 4.0.0 delayed,
 * 2.0.0 otherwise. */
void dsn_status(enum dsn_action action, const char *status, const char *diagnostic,
                char out[DSN_STATUS_MAX]);

/* ---- building ---- */

/*
 * Writes the complete RFC 5322 report: CRLF lines of at most 998 octets
 * (long fields folded, words too long for a line split), a MIME boundary
 * checked against every part, the original included. Returns 1 when a
 * report was written, 0 when no listed recipient wants one (nothing is
 * written), -1 on error with a malloc'd *err (a bad recipient index, a read
 * error or short original, write() returning -1, no usable boundary).
 */
int dsn_build(const struct dsn_report *r, dsn_write_fn write, void *ctx, char **err);

/* ---- queueing ---- */

/*
 * Builds the report on results of message orig and commits it to sp as a
 * new message: MAIL FROM:<>, one recipient (orig->mail_from, NOTIFY=NEVER),
 * orig's account, SMTPUTF8 and 8BITMIME when the content needs them. The
 * original is read through spool_open_body(sp, orig->id); if it is gone,
 * the report goes without it (logged).
 *
 * Blocking: it reads the original (its header, or all of it for a RET=FULL
 * failure) and writes the report file. The scheduler uses the three steps
 * below instead, to do that on its work pool.
 *
 * Returns 1 when the report was handed to the spool: done(arg, ok, id) then
 * runs once on the event loop thread (before this returns on a spool opened
 * without an event base) with id the report's queue ID. Returns 0 when
 * there is nothing to report (null sender, NOTIFY) and -1 on error with a
 * malloc'd *err; in both cases done() is never called.
 */
int dsn_queue(struct spool *sp, const char *hostname, const struct envelope *orig,
              const struct dsn_rcpt *rcpts, size_t n,
              void (*done)(void *arg, int ok, const char *id), void *arg, char **err);

/*
 * dsn_queue() in three steps, so that the blocking middle one runs off the
 * event loop (the scheduler gives it to its work pool):
 *   dsn_job_new()     loop thread: the checks and the kind, no I/O. NULL
 *                     with *err NULL: nothing to report; NULL with a
 *                     malloc'd *err: an error.
 *   dsn_job_build()   any one thread: makes the report's spool file, reads
 *                     the original and writes the report. Touches no event
 *                     loop and nothing of the caller's but orig and rcpts,
 *                     which it only reads.
 *   dsn_job_commit()  loop thread: hands the report to the spool, as
 *                     dsn_queue() does (0, done() later), or, when the build
 *                     failed, removes it and returns -1 with a malloc'd *err
 *                     (done() is never called).
 * The job is freed by the commit (or by its done()). orig, rcpts and the
 * strings they point to must stay as they are until dsn_job_commit()
 * returns.
 */
/* The envelope a report on orig is committed with (MAIL FROM:<>, one
 * recipient in *r, orig's sender; orig's account, REQUIRETLS and what the
 * content needs): for the scheduler, which indexes the report from it.
 * Its strings are orig's. */
struct envelope dsn_report_envelope(const struct envelope *orig, struct rcpt *r, int64_t now);

struct dsn_job;
struct dsn_job *dsn_job_new(struct spool *sp, const char *hostname, const struct envelope *orig,
                            const struct dsn_rcpt *rcpts, size_t n, char **err);
void dsn_job_build(struct dsn_job *j);
int dsn_job_commit(struct dsn_job *j, void (*done)(void *arg, int ok, const char *id), void *arg,
                   char **err);

#endif
