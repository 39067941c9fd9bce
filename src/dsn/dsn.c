/*
 * dsn.c: queues a delivery status notification as an ordinary spool
 * message. The report text comes from dsn_build() (dsn_build.c); this file
 * only finds the original, picks the report's envelope and hands both to
 * the spool, whose done() tells the caller when the report is durable.
 *
 * The report's envelope is what makes it safe to deliver like any mail:
 * the null sender (so no report is ever made about it: no loops), one
 * recipient (the original sender) with NOTIFY=NEVER (nobody wants a
 * notice about a notice), the original's account (quotas, logs and the API
 * see whose bounce it is), and SMTPUTF8 / 8BITMIME when the returned
 * content needs them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn/dsn.h"
#include "log/log.h"
#include "spool/spool.h"
#include "util/util.h"

/* Carried to the spool's done(): logs the outcome, then tells the caller. */
struct dsn_job {
	char orig_id[ID_LEN + 1];
	enum dsn_kind kind;
	void (*done)(void *arg, int ok, const char *id);
	void *arg;
};

static void on_committed(void *arg, int ok, const char *id)
{
	struct dsn_job *j = arg;

	if (ok)
		log_info("queue=%s event=dsn_queued kind=%s dsn=%s", j->orig_id,
		         dsn_kind_name(j->kind), id);
	else
		log_err("queue=%s event=dsn_failed kind=%s dsn=%s error=commit", j->orig_id,
		        dsn_kind_name(j->kind), id);
	j->done(j->arg, ok, id);
	free(j);
}

static int msg_write(void *ctx, const void *p, size_t n)
{
	return spool_msg_write(ctx, p, n);
}

/* The original's bytes, or fd -1: a report without them still tells the
 * sender what happened, which matters more than the copy. */
static struct dsn_original open_original(struct spool *sp, const struct envelope *orig)
{
	struct dsn_original o = {-1, 0, 0};
	char *err = NULL;

	if (spool_open_body(sp, orig->id, &o.fd, &o.offset, &o.len, &err) < 0) {
		log_warn("queue=%s event=dsn_no_original error=%s", orig->id, log_q(err));
		free(err);
		o.fd = -1;
	}
	return o;
}

static int ascii_only(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* The report's envelope; its one rcpt lives in *r, its strings in orig. */
static struct envelope report_envelope(const struct envelope *orig, struct rcpt *r, int64_t now)
{
	struct envelope e;

	memset(r, 0, sizeof(*r));
	r->addr = orig->mail_from;
	r->notify = DSN_NOTIFY_NEVER;
	r->state = RCPT_PENDING;
	memset(&e, 0, sizeof(e));
	e.mail_from = "";
	e.account = orig->account;
	e.client_ip = NULL; /* made here, not received from a client */
	e.helo = NULL;
	e.created = now;
	/* The report's envelope is MAIL FROM:<> and the original sender: it
	 * needs SMTPUTF8 only when that address is not ASCII. UTF-8 in the
	 * returned headers travels as message/global(-headers) under
	 * 8BITMIME (RFC 6533). */
	e.smtputf8 = orig->smtputf8 && !ascii_only(orig->mail_from);
	e.body = orig->smtputf8 || orig->body == BODY_8BITMIME ? BODY_8BITMIME : BODY_7BIT;
	e.ret = DSN_RET_UNSET;
	e.rcpts = r;
	e.n_rcpts = 1;
	return e;
}

/* Builds the report into a new spool message; m is aborted on failure. */
static int build_into(struct spool_msg *m, const struct dsn_report *rep, char **err)
{
	int rc = dsn_build(rep, msg_write, m, err);

	if (rc <= 0)
		spool_msg_abort(m);
	return rc;
}

/* A bad index is the caller's bug; said here, before a spool file exists. */
static int check_indexes(const struct envelope *orig, const struct dsn_rcpt *rcpts, size_t n,
                         char **err)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (rcpts[i].index >= orig->n_rcpts)
			return *err = xasprintf("dsn: recipient index %zu out of range (%zu)",
			                        rcpts[i].index, orig->n_rcpts),
			       -1;
	return 0;
}

int dsn_queue(struct spool *sp, const char *hostname, const struct envelope *orig,
              const struct dsn_rcpt *rcpts, size_t n,
              void (*done)(void *arg, int ok, const char *id), void *arg, char **err)
{
	struct dsn_report rep = {orig, hostname, rcpts, n, {-1, 0, 0}, 0, NULL};
	struct envelope env;
	struct spool_msg *m;
	struct dsn_job *j;
	struct rcpt r;
	int rc;

	*err = NULL;
	rep.now = (int64_t)(clock_now_ms() / 1000);
	if (check_indexes(orig, rcpts, n, err) < 0)
		return -1;
	if (dsn_report_kind(orig, rcpts, n) == DSN_KIND_NONE)
		return 0; /* checked first: no spool file for a report nobody wants */
	if (!(m = spool_msg_new(sp, err)))
		return -1;
	rep.body = open_original(sp, orig);
	rc = build_into(m, &rep, err);
	if (rep.body.fd >= 0)
		close(rep.body.fd);
	if (rc <= 0)
		return rc;
	j = xcalloc(1, sizeof(*j));
	snprintf(j->orig_id, sizeof(j->orig_id), "%s", orig->id);
	j->kind = dsn_report_kind(orig, rcpts, n);
	j->done = done;
	j->arg = arg;
	env = report_envelope(orig, &r, rep.now);
	spool_msg_commit(m, &env, on_committed, j);
	return 1;
}
