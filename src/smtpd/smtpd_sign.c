/*
 * smtpd_sign: the header fields a message gets at accept, between the end
 * of data and the commit, so that what the spool stores, and every
 * delivery attempt sends, is the signed message (docs/dkim.md, "The
 * accept path"):
 *
 *   - List-Unsubscribe and List-Unsubscribe-Post (src/unsub/) when the
 *     account wants them, for the message's one recipient: a message to
 *     several recipients is split into one message per recipient;
 *   - then one DKIM-Signature per active key of the From domain
 *     (src/dkim/), over the message with those fields.
 *
 * The cost is paid only by mail that gets something. At the start of data
 * the loop asks two cheap questions (does the signer have any key? does
 * the account want the header?); if neither, nothing here runs at all. If
 * so, the spool reserves a front (spool_msg_reserve_front) and the loop
 * keeps the header section as it goes by (at most SIGN_HDR_KEEP bytes), to
 * find the From domain at the end: mail whose domain has no key then goes
 * straight to its commit, with a log line, and no work job. The rest runs
 * in one work job per transaction: the message is read back (from the
 * page cache), hashed and signed, and the fields are written into the
 * front (spool_msg_prepend); copies for the other recipients are made in
 * the kernel (spool_msg_copy). Keys are loaded once by the signer
 * (dkim_watch reloads them); jobs of many sessions sign in parallel.
 *
 * Failures: a message that cannot be read back or written fails its
 * transaction as any spool error does (451 4.3.0). A signature that
 * libopendkim cannot make (every key of the domain failed) also gets
 * 451 4.3.0: the client keeps the message and tries again, rather than it
 * going out unsigned under a domain that publishes keys (and may reject
 * unsigned mail with DMARC). What can never be signed (no From, two From
 * addresses, a header section over 256 KiB, no key) goes out unsigned,
 * never refused, with a log line saying why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim.h"
#include "log/log.h"
#include "smtpd/smtpd_session.h"
#include "spool/spool.h"
#include "unsub/unsub.h"
#include "work/work.h"

/* Header bytes the loop keeps to find the From domain; a longer section
 * is left to the job (which reads up to DKIM_HDR_MAX). */
#define SIGN_HDR_KEEP (64 * 1024)
#define READ_CHUNK    (64 * 1024)

struct smtpd_sign {
	int dkim;  /* the signer has keys */
	int unsub; /* the account wants List-Unsubscribe */
	struct buf hdr;
	int hdr_done; /* the section ended (or passed SIGN_HDR_KEEP) */
	int hdr_over; /* it passed SIGN_HDR_KEEP: hdr is empty */
	/* decided once the section has ended (or at the end of data): */
	int decided;
	int sign;             /* the From domain has a key (or the job decides) */
	enum dkim_result why; /* if not, why */
	char domain[DKIM_DOMAIN_MAX + 1];
};

/* What the job did to one message. */
struct part {
	struct spool_msg *m;
	size_t rcpt; /* its recipient (split), or 0 */
	enum dkim_result res;
	int sigs;     /* DKIM-Signature fields made */
	int no_unsub; /* List-Unsubscribe was wanted and could not be made */
	char domain[DKIM_DOMAIN_MAX + 1];
};

struct sign_job {
	struct session *s;          /* held until done: its transaction stays as it is */
	struct dkim_signer *signer; /* NULL: no signature wanted */
	struct unsub *unsub;        /* NULL: no List-Unsubscribe wanted */
	const char *account;
	struct part *parts;
	size_t n;
	enum { JOB_OK, JOB_IO, JOB_SIGN } fail;
	char *err;
};

/* ---- on the loop, while data comes in ------------------------------------------ */

static const char *txn_account(const struct session *s)
{
	return s->account ? s->account : "default";
}

void smtpd_sign_begin(struct session *s)
{
	const struct smtpd_deps *d = s->sd->deps;
	int dkim = d->dkim && dkim_signer_key_count(d->dkim) > 0;
	int unsub = d->unsub && unsub_account_on(d->unsub, txn_account(s));
	struct smtpd_sign *g;

	if (!dkim && !unsub)
		return;
	g = xcalloc(1, sizeof(*g));
	g->dkim = dkim;
	g->unsub = unsub;
	buf_init(&g->hdr);
	s->txn.sign = g;
	/* the link is added whatever the From domain: room for it now (a
	 * failure dooms the message: 451 at its commit) */
	if (unsub)
		spool_msg_reserve_front(s->txn.msg);
}

static void decide(struct session *s, struct smtpd_sign *g);

void smtpd_sign_keep(struct session *s, const char *p, size_t n, int last)
{
	struct smtpd_sign *g = s->txn.sign;

	if (!g || !g->dkim || g->hdr_done)
		return;
	if (g->hdr.len + n > SIGN_HDR_KEEP) {
		g->hdr_over = g->hdr_done = 1;
		buf_free(&g->hdr);
		return;
	}
	buf_append(&g->hdr, p, n);
	g->hdr_done = last;
	if (last)
		decide(s, g);
}

void smtpd_sign_free(struct smtpd_sign *g)
{
	if (!g)
		return;
	buf_free(&g->hdr);
	free(g);
}

/* Whether the message is to be signed; if not, why (for the log). */
static int dkim_wanted(const struct smtpd_sign *g, struct dkim_signer *signer, char *domain,
                       size_t cap, enum dkim_result *why)
{
	enum dkim_from from;

	*domain = '\0';
	if (g->hdr_over)
		return 1; /* the job reads the whole section and decides */
	from = dkim_hdr_from_domain(g->hdr.data ? g->hdr.data : "", g->hdr.len, domain, cap);
	if (from == DKIM_FROM_OK && dkim_signer_has_key(signer, domain))
		return 1;
	*why = from == DKIM_FROM_OK         ? DKIM_NO_KEY
	       : from == DKIM_FROM_MULTIPLE ? DKIM_MULTIPLE_FROM
	                                    : DKIM_NO_FROM;
	if (from != DKIM_FROM_OK)
		*domain = '\0';
	return 0;
}

/* Once the header section is known: signed or not. A message to be
 * signed gets its front now, while the spool still holds what came so far
 * in its buffer (a header section longer than the buffer is too late: the
 * signature is then copied in front, spool_front.c). Mail whose domain has
 * no key gets no front at all. */
static void decide(struct session *s, struct smtpd_sign *g)
{
	g->decided = 1;
	g->why = DKIM_NO_KEY;
	g->sign = dkim_wanted(g, s->sd->deps->dkim, g->domain, sizeof(g->domain), &g->why);
	buf_free(&g->hdr); /* not needed any more */
	if (g->sign && !g->unsub)
		spool_msg_reserve_front(s->txn.msg);
}

static void log_unsigned(const char *id, enum dkim_result why, const char *domain)
{
	log_info("queue=%s event=dkim result=unsigned reason=%s domain=%s", id,
	         dkim_result_name(why), *domain ? log_q(domain) : "-");
}

/* ---- in the work pool -------------------------------------------------------------- */

/* Reads p's message back and signs it, with front (the fields that go
 * before it) hashed first. *io set on a read error. */
static enum dkim_result sign_part(struct sign_job *j, struct part *p, const struct buf *front,
                                  struct buf *sig, int *io)
{
	struct dkim_msg *d = dkim_msg_new(j->signer, spool_msg_id(p->m));
	char *chunk = xmalloc(READ_CHUNK);
	enum dkim_result r = DKIM_FAILED;
	uint64_t off = 0;
	long got;

	if (front->len)
		dkim_msg_write(d, front->data, front->len);
	while ((got = spool_msg_pread(p->m, off, chunk, READ_CHUNK)) > 0) {
		dkim_msg_write(d, chunk, (size_t)got);
		off += (uint64_t)got;
	}
	if (got < 0)
		*io = errno ? errno : EIO;
	else
		r = dkim_msg_finish(d, sig);
	snprintf(p->domain, sizeof(p->domain), "%s", dkim_msg_domain(d));
	dkim_msg_free(d);
	free(chunk);
	return r;
}

static int count_sigs(const struct buf *sig)
{
	int n = 0;

	for (const char *c = sig->data; c && (c = strstr(c, "DKIM-Signature:")); c++)
		n++;
	return n;
}

/* The fields of one message: made, then put in front of it. */
static void part_run(struct sign_job *j, struct part *p)
{
	const struct rcpt *rcpts = j->s->txn.rcpts;
	struct buf front, sig;
	int io = 0;

	buf_init(&front);
	buf_init(&sig);
	p->res = DKIM_NO_KEY;
	if (j->unsub && unsub_fields(j->unsub, j->account, rcpts[p->rcpt].addr, &front) < 0)
		p->no_unsub = 1;
	if (j->signer)
		p->res = sign_part(j, p, &front, &sig, &io);
	if (io || p->res == DKIM_FAILED) {
		j->fail = io ? JOB_IO : JOB_SIGN;
		j->err = xstrdup(io ? strerror(io) : "libopendkim failed");
	} else {
		p->sigs = p->res == DKIM_SIGNED ? count_sigs(&sig) : 0;
		buf_append(&sig, front.data, front.len); /* signatures on top */
		if (sig.len && spool_msg_prepend(p->m, sig.data, sig.len) < 0) {
			j->fail = JOB_IO;
			j->err = xstrdup("cannot write the fields in front");
		}
	}
	buf_free(&front);
	buf_free(&sig);
}

static void job_run(void *arg)
{
	struct sign_job *j = arg;
	size_t i;

	if (spool_msg_flush(j->parts[0].m) < 0) {
		j->fail = JOB_IO;
		j->err = xstrdup("cannot write the message");
		return;
	}
	/* the copies first: they take the message before its fields */
	for (i = 1; i < j->n && !j->fail; i++)
		if (!(j->parts[i].m = spool_msg_copy(j->parts[0].m, &j->err)))
			j->fail = JOB_IO;
	for (i = 0; i < j->n && !j->fail; i++)
		part_run(j, &j->parts[i]);
}

/* ---- back on the loop ---------------------------------------------------------------- */

static void log_part(const struct session *s, const struct sign_job *j, const struct part *p)
{
	const char *id = spool_msg_id(p->m);

	if (p->no_unsub)
		log_warn("queue=%s event=list_unsubscribe result=none to=<%s> "
		         "reason=\"no link can be made for this account and address\"",
		         id, log_q(s->txn.rcpts[p->rcpt].addr));
	if (!j->signer)
		return;
	if (p->res == DKIM_SIGNED)
		log_info("queue=%s event=dkim result=signed domain=%s signatures=%d", id,
		         log_q(p->domain), p->sigs);
	else
		log_unsigned(id, p->res, p->domain);
}

static void job_free(struct sign_job *j, int abort_msgs)
{
	for (size_t i = 0; abort_msgs && i < j->n; i++)
		spool_msg_abort(j->parts[i].m);
	free(j->parts);
	free(j->err);
	free(j);
}

/* ---- the commit of a split message ------------------------------------------------------ */

/* A transaction split per recipient is answered once: 250 when every
 * message is durable, else 451 with none of them left in the queue (the
 * client sends the whole transaction again: no recipient may get it twice
 * or not at all). */
struct split;
struct split_part {
	struct split *sp;
	size_t rcpt;
	uint64_t size;
	char id[ID_LEN + 1];
	int ok;
};
struct split {
	struct session *s; /* held until the last commit reports */
	size_t n, left;
	int failed;
	struct split_part *v;
};

/* A commit failed: the others are taken out again (a rare path, on the
 * loop: an unlink and a directory fsync each). */
static void split_undo(struct split *sp)
{
	char *err = NULL;

	for (size_t i = 0; i < sp->n; i++) {
		if (!sp->v[i].ok) {
			log_warn("session=%s queue=%s event=queue_failed", sp->s->id, sp->v[i].id);
			continue;
		}
		if (spool_delete(sp->s->sd->deps->spool, sp->v[i].id, &err) < 0) {
			log_err("queue=%s event=split_undo_error error=%s", sp->v[i].id,
			        log_q(err));
			free(err), err = NULL;
		}
	}
}

static void split_finish(struct split *sp)
{
	struct session *s = sp->s;

	if (sp->failed)
		split_undo(sp);
	else
		for (size_t i = 0; i < sp->n; i++)
			smtpd_data_announce(s, sp->v[i].id, sp->v[i].rcpt, 1, sp->v[i].size);
	if (!session_release(s)) {
		if (sp->failed)
			smtpd_data_failed(s, R_QUEUE_ERROR);
		else
			smtpd_data_accepted(s, sp->v[0].id, sp->n);
	}
	free(sp->v);
	free(sp);
}

static void split_committed(void *arg, int ok, const char *id)
{
	struct split_part *v = arg;
	struct split *sp = v->sp;

	v->ok = ok;
	sp->failed |= !ok;
	if (--sp->left == 0)
		split_finish(sp);
}

static void split_commit(struct session *s, struct part *parts, size_t n)
{
	struct split *sp = xcalloc(1, sizeof(*sp));
	struct envelope env;

	sp->s = s;
	sp->n = n;
	sp->left = n + 1; /* + 1 until every commit is started */
	sp->v = xcalloc(n, sizeof(*sp->v));
	for (size_t i = 0; i < n; i++) {
		struct split_part *v = &sp->v[i];
		smtpd_data_envelope(s, &env);
		env.rcpts = &s->txn.rcpts[parts[i].rcpt];
		env.n_rcpts = 1;
		env.size = spool_msg_size(parts[i].m);
		v->sp = sp;
		v->rcpt = parts[i].rcpt;
		v->size = env.size;
		snprintf(v->id, sizeof(v->id), "%s", spool_msg_id(parts[i].m));
		spool_msg_commit(parts[i].m, &env, split_committed, v);
	}
	split_committed(&(struct split_part){.sp = sp, .ok = 1}, 1, NULL);
}

/* ---- the job's end ------------------------------------------------------------------------ */

static void job_done(void *arg)
{
	struct sign_job *j = arg;
	struct session *s = j->s;
	int gone;

	if (j->fail == JOB_SIGN)
		log_err("session=%s queue=%s event=queue_failed reason=dkim_error error=%s", s->id,
		        spool_msg_id(j->parts[0].m), log_q(j->err));
	else if (j->fail)
		log_err("session=%s queue=%s event=queue_failed reason=io_error error=%s", s->id,
		        spool_msg_id(j->parts[0].m), log_q(j->err));
	else
		for (size_t i = 0; i < j->n; i++)
			log_part(s, j, &j->parts[i]);
	gone = session_release(s);
	if (gone || j->fail) { /* no 250 was sent: nothing is lost */
		enum smtpd_reply r = j->fail == JOB_SIGN ? R_SIGN_ERROR : R_QUEUE_ERROR;
		job_free(j, 1);
		if (!gone)
			smtpd_data_failed(s, r);
		return;
	}
	session_hold(s);
	if (j->n == 1) {
		s->txn.msg = j->parts[0].m;
		smtpd_data_commit(s);
	} else {
		split_commit(s, j->parts, j->n);
	}
	job_free(j, 0);
}

int smtpd_sign_run(struct session *s)
{
	struct txn *t = &s->txn;
	struct smtpd_sign *g = t->sign;
	const struct smtpd_deps *d = s->sd->deps;
	struct sign_job *j;
	int dkim;

	if (!g)
		return 0;
	if (g->dkim && !g->decided)
		decide(s, g); /* content without an empty line: all header */
	dkim = g->dkim && g->sign;
	if (g->dkim && !dkim)
		log_unsigned(spool_msg_id(t->msg), g->why, g->domain);
	if (!dkim && !g->unsub)
		return 0;
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->signer = dkim ? d->dkim : NULL;
	j->unsub = g->unsub ? d->unsub : NULL;
	j->account = txn_account(s);
	j->n = g->unsub && t->n_rcpts > 1 ? t->n_rcpts : 1; /* the link names one recipient */
	j->parts = xcalloc(j->n, sizeof(*j->parts));
	for (size_t i = 0; i < j->n; i++)
		j->parts[i].rcpt = i;
	j->parts[0].m = t->msg;
	t->msg = NULL; /* the job's now */
	work_submit(d->work, job_run, job_done, j);
	return 1;
}
