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

/* A report on its way: made on the loop thread, built on any one thread,
 * committed on the loop thread; then carried to the spool's done(). */
struct dsn_job {
	struct spool *sp;
	struct spool_msg *m;
	struct dsn_report rep;
	int rc;    /* dsn_build()'s result, once built */
	char *err; /* why the build failed */
	void (*done)(void *arg, int ok, const char *id);
	void *arg;
};

/* The caller's done() logs the outcome (event=dsn_queued, once). */
static void on_committed(void *arg, int ok, const char *id)
{
	struct dsn_job *j = arg;

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
struct envelope dsn_report_envelope(const struct envelope *orig, struct rcpt *r, int64_t now)
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
	/* RFC 8689 5: the report travels under REQUIRETLS like the original */
	e.requiretls = orig->requiretls;
	e.rcpts = r;
	e.n_rcpts = 1;
	return e;
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

struct dsn_job *dsn_job_new(struct spool *sp, const char *hostname, const struct envelope *orig,
                            const struct dsn_rcpt *rcpts, size_t n, char **err)
{
	struct dsn_job *j;

	*err = NULL;
	if (check_indexes(orig, rcpts, n, err) < 0)
		return NULL;
	if (dsn_report_kind(orig, rcpts, n) == DSN_KIND_NONE)
		return NULL; /* checked first: no spool file for a report nobody wants */
	j = xcalloc(1, sizeof(*j));
	j->sp = sp;
	j->rep = (struct dsn_report){orig, hostname, rcpts, n, {-1, 0, 0}, 0, NULL};
	j->rep.now = clock_now_s();
	return j;
}

void dsn_job_build(struct dsn_job *j)
{
	/* the file too is made here: creating one may wait for the disk */
	if (!(j->m = spool_msg_new(j->sp, &j->err))) {
		j->rc = -1;
		return;
	}
	j->rep.body = open_original(j->sp, j->rep.orig);
	j->rc = dsn_build(&j->rep, msg_write, j->m, &j->err);
	if (j->rep.body.fd >= 0)
		close(j->rep.body.fd);
	if (j->rc <= 0) {
		spool_msg_abort(j->m);
		j->m = NULL;
	}
}

int dsn_job_commit(struct dsn_job *j, void (*done)(void *arg, int ok, const char *id), void *arg,
                   char **err)
{
	struct envelope env;
	struct rcpt r;

	*err = NULL;
	if (j->rc <= 0) {
		/* 0 cannot happen (the kind was checked); an error says why */
		*err = j->err ? j->err : xstrdup("dsn: nothing to report");
		free(j);
		return -1;
	}
	j->done = done;
	j->arg = arg;
	env = dsn_report_envelope(j->rep.orig, &r, j->rep.now);
	spool_msg_commit(j->m, &env, on_committed, j);
	return 0;
}

int dsn_queue(struct spool *sp, const char *hostname, const struct envelope *orig,
              const struct dsn_rcpt *rcpts, size_t n,
              void (*done)(void *arg, int ok, const char *id), void *arg, char **err)
{
	struct dsn_job *j = dsn_job_new(sp, hostname, orig, rcpts, n, err);

	if (!j)
		return *err ? -1 : 0;
	dsn_job_build(j);
	return dsn_job_commit(j, done, arg, err) < 0 ? -1 : 1;
}
