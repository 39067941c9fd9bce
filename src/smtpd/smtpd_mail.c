/*
 * smtpd_mail: MAIL and RCPT, the envelope of a transaction, and the
 * deliverability policy that applies to it (docs/deliverability.md).
 *
 * MAIL refuses while the data directory is nearly full (measured at most
 * once a second), and binds the sender to the account: an authenticated
 * session may only use its own domains, which the store is asked in the
 * work pool. A relaying session's account (the authenticated one, or
 * "default" for a trusted network) that is paused by the reputation guard,
 * or whose quota is used up, gets 450 4.7.1 at MAIL.
 *
 * RCPT decides relaying: a session relays when it has authenticated or
 * comes from a trusted network; otherwise 554, and Posthorn is never an
 * open relay. One exception (SPEC 3): a valid VERP return path at the
 * [bounces] domain is accepted from anyone, on any listener, and what is
 * sent there is a bounce or complaint report, read and applied, never
 * queued (deliv_inbound); any other address at that domain gets 550.
 *
 * A relayed recipient is checked against the account's suppression list
 * in the work pool, never on the loop: pipelined RCPTs wait in a batch
 * (at most RCPT_BATCH_MAX) while the next buffered line is another RCPT,
 * and the batch goes to the server's check queue (smtpd_supp.c), where
 * one job checks the batches of every session waiting (one
 * store_supp_check_many per account). The replies then
 * go out in order; each recipient that passes reserves one message of the
 * account's quota (deliv), committed with the message or released when
 * the transaction ends without it.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cluster/cluster.h"
#include "conf/conf.h"
#include "deliv/deliv.h"
#include "log/log.h"
#include "smtpd/smtpd_session.h"
#include "smtpd/smtpd_supp.h"
#include "spool/spool.h"
#include "store/store.h"
#include "work/work.h"

#define RCPT_BATCH_MAX 256 /* RCPTs checked by one job, at most */
#define LINE_MAX_REPLY 512

/* A RCPT waiting for its batch: a candidate, or a refusal decided already
 * that must wait for the candidates before it. */
struct rcpt_pend {
	char *addr, *orcpt;
	unsigned notify;
	char *refusal; /* the reply line, or NULL for a candidate */
};

/* Pipelined RCPTs checked against the suppression list together. */
struct rcpt_batch {
	struct smtpd_supp_req req; /* first: done() gets it back as the batch */
	struct session *s;
	char account[COUNTER_ACCOUNT_MAX + 1];
	struct rcpt_pend *v;
	size_t n, cap, n_cand;
	/* the check's answers, by candidate (req.found, req.entries, req.failed) */
	const char **addrs;
	/* the quota's answer for the candidates that may be accepted */
	uint64_t granted;
	char *quota_why; /* the reply for those beyond granted */
};

struct domain_job {
	struct session *s;
	struct store *store;
	char *account;
	char *domain;
	int result;
};

static struct deliv *deliv_of(const struct session *s)
{
	return s->sd->deps->deliv;
}

/* The account mail of this session belongs to (SPEC 1). */
static const char *account_of(const struct session *s)
{
	return s->account ? s->account : "default";
}

static int relay_allowed(const struct session *s)
{
	return s->account != NULL || s->trusted;
}

static int disk_nearly_full(struct smtpd *sd)
{
	const struct conf *c = sd->deps->conf;
	uint64_t now = clock_mono_ms();
	struct statvfs v;

	/* statvfs is cheap, but once a second is plenty. */
	if (sd->disk_checked_at && now - sd->disk_checked_at < 1000)
		return sd->disk_full;
	sd->disk_checked_at = now;
	if (statvfs(c->data_dir, &v) == 0)
		sd->disk_full = (uint64_t)v.f_bavail * v.f_frsize < c->min_free_space;
	return sd->disk_full;
}

static enum smtpd_reply arg_err_reply(enum smtp_arg_err e, int is_mail)
{
	switch (e) {
	case SMTP_ARG_SYNTAX:
		return is_mail ? R_SENDER_SYNTAX : R_RCPT_SYNTAX;
	case SMTP_ARG_BAD_ADDRESS:
		return is_mail ? R_SENDER_BAD : R_RCPT_BAD;
	case SMTP_ARG_UNKNOWN_PARAM:
		return R_UNKNOWN_PARAM;
	case SMTP_ARG_BAD_PARAM:
		return R_PARAM_BAD;
	case SMTP_ARG_NEEDS_UTF8:
		return R_NEEDS_UTF8;
	default:
		return R_ARG_SYNTAX;
	}
}

/* ---------- MAIL ---------- */

static void domain_job_run(void *arg)
{
	struct domain_job *j = arg;

	j->result = store_user_owns_domain(j->store, j->account, j->domain);
}

static void domain_job_done(void *arg)
{
	struct domain_job *j = arg;
	struct session *s = j->s;
	enum smtpd_reply why = j->result < 0 ? R_SENDER_TEMP : R_SENDER_NOT_OWNED;

	if (!session_release(s)) {
		if (j->result == 1) {
			session_reply(s, R_MAIL_OK);
		} else {
			log_info("session=%s event=reject cmd=MAIL from=%s account=%s reply=%s",
			         s->id, log_q(s->txn.mail.addr), log_q(s->account),
			         log_q(smtpd_reply_text(why)));
			session_reply(s, why);
			session_error(s);
			session_txn_reset(s);
		}
		session_resume(s, S_CMD);
	}
	free(j->account);
	free(j->domain);
	free(j);
}

/* Sender binding: ask the store, off the loop thread, whether the
 * account owns the sender's domain; the reply waits for the answer. */
static void sender_check(struct session *s)
{
	struct domain_job *j = xcalloc(1, sizeof(*j));

	j->s = s;
	j->store = s->sd->deps->store;
	j->account = xstrdup(s->account);
	j->domain = xstrdup(smtp_address_domain(s->txn.mail.addr));
	session_hold(s);
	session_set_state(s, S_WAIT);
	work_submit(s->sd->deps->work, domain_job_run, domain_job_done, j);
}

/* 1 when AUTH is missing where the listener requires it. With a
 * [bounces] domain, MAIL goes through without it (a bounce report may come
 * to any listener) and RCPT asks for AUTH for any other recipient. */
static int auth_missing(const struct session *s, int at_mail)
{
	if (s->l->cfg->auth != CONF_AUTH_REQUIRED || s->account)
		return 0;
	return !at_mail || !s->sd->deps->conf->bounces_domain;
}

/* The checks before MAIL's argument is read; 1 when refused. */
static int mail_refused(struct session *s)
{
	if (s->txn.mail_line)
		session_refuse(s, "MAIL", R_NESTED_MAIL);
	else if (auth_missing(s, 1))
		session_refuse(s, "MAIL", R_AUTH_REQUIRED);
	else if (disk_nearly_full(s->sd))
		session_refuse(s, "MAIL", R_DISK_FULL);
	else if (cluster_tag_lost()) /* its queue IDs could be another node's */
		session_refuse_line(s, "MAIL",
		                    "451 4.3.0 This node's queue-ID tag is held by another "
		                    "node; try again later");
	else if (cluster_id_clash()) /* another process makes IDs with this node's tag */
		session_refuse_line(s, "MAIL",
		                    "451 4.3.0 Another process runs with this node's ID; try "
		                    "again later");
	else
		return 0;
	return 1;
}

/* The account's pause and quota, for mail it relays: 1 when refused
 * (the reply given). The null sender is let through: a bounce report to
 * a VERP address is no mail of the account's, and a relayed DSN is
 * checked at RCPT like any recipient. */
static int account_refused(struct session *s)
{
	char why[LINE_MAX_REPLY];
	struct deliv *d = deliv_of(s);

	if (!d || !relay_allowed(s) || !*s->txn.mail.addr)
		return 0;
	if (!deliv_paused(d, account_of(s), why, sizeof(why)) &&
	    !deliv_quota_full(d, account_of(s), why, sizeof(why)))
		return 0;
	session_refuse_line(s, "MAIL", why);
	return 1;
}

void smtpd_cmd_mail(struct session *s, char *arg)
{
	struct txn *t = &s->txn;
	enum smtp_arg_err e;
	char *line;

	if (mail_refused(s))
		return;
	line = xstrdup(arg);
	e = smtp_parse_mail(line, &t->mail);
	if (e != SMTP_ARG_OK || (t->mail.has_size && t->mail.size > s->l->cfg->max_message_size) ||
	    (t->mail.requiretls && !s->tls_active)) {
		/* RFC 8689 4.1: REQUIRETLS only over TLS (5.7.10: encryption needed) */
		enum smtpd_reply why = e != SMTP_ARG_OK                       ? arg_err_reply(e, 1)
		                       : t->mail.requiretls && !s->tls_active ? R_REQUIRETLS_NO_TLS
		                                                              : R_TOO_BIG;
		free(line);
		memset(&t->mail, 0, sizeof(t->mail));
		session_refuse(s, "MAIL", why);
		return;
	}
	if (account_refused(s)) { /* before the line goes: the address points into it */
		free(line);
		memset(&t->mail, 0, sizeof(t->mail));
		return;
	}
	t->mail_line = line;
	if (!s->sent_mail) {
		s->sent_mail = 1; /* the stress timeout no longer applies */
		session_timeouts_update(s);
	}
	if (s->account && *t->mail.addr) {
		sender_check(s);
		return;
	}
	session_reply(s, R_MAIL_OK);
}

/* ---------- RCPT: replies in order ---------- */

static void rcpt_add(struct txn *t, const char *addr, const char *orcpt, unsigned notify)
{
	struct rcpt *r;

	if (t->n_rcpts == t->cap_rcpts) {
		t->cap_rcpts = t->cap_rcpts ? t->cap_rcpts * 2 : 4;
		t->rcpts = xrealloc(t->rcpts, t->cap_rcpts * sizeof(*t->rcpts));
	}
	r = &t->rcpts[t->n_rcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(addr);
	r->orcpt = orcpt ? xstrdup(orcpt) : NULL;
	r->notify = notify;
}

static void batch_free(struct rcpt_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->v[i].addr);
		free(b->v[i].orcpt);
		free(b->v[i].refusal);
	}
	free(b->v);
	free(b->addrs);
	free(b->req.found);
	free(b->req.entries);
	free(b->quota_why);
	free(b);
}

/* A candidate (refusal NULL; ra its arguments) or a decided refusal (ra
 * NULL when the arguments did not parse). */
static void batch_push(struct rcpt_batch *b, const struct smtp_rcpt_args *ra, const char *refusal)
{
	struct rcpt_pend *p;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->v = xrealloc(b->v, b->cap * sizeof(*b->v));
	}
	p = &b->v[b->n++];
	memset(p, 0, sizeof(*p));
	p->addr = xstrdup(ra ? ra->addr : "");
	p->orcpt = ra && ra->orcpt ? xstrdup(ra->orcpt) : NULL;
	p->notify = ra ? ra->notify : 0;
	p->refusal = refusal ? xstrdup(refusal) : NULL;
	b->n_cand += refusal == NULL;
}

static void rcpt_refusal_now(struct session *s, const char *addr, const char *line)
{
	log_info("session=%s event=reject cmd=RCPT ip=%s to=%s reply=%s", s->id, s->ip, log_q(addr),
	         log_q(line));
	session_replyf(s, "%s", line);
	session_error(s);
}

/* A refusal: now, or after the RCPTs waiting in the batch. */
static void rcpt_refuse(struct session *s, const struct smtp_rcpt_args *ra, const char *line)
{
	if (s->txn.batch)
		batch_push(s->txn.batch, ra, line);
	else
		rcpt_refusal_now(s, ra ? ra->addr : "", line);
}

/* ---------- RCPT: the suppression check, batched ---------- */

/* A candidate that is not suppressed: the recipient limit, the quota
 * (reserved for the whole batch before: see batch_done). */
static void rcpt_accept(struct session *s, struct rcpt_batch *b, const struct rcpt_pend *p)
{
	struct txn *t = &s->txn;

	if (t->n_rcpts >= s->l->cfg->max_recipients) {
		rcpt_refusal_now(s, p->addr, smtpd_reply_text(R_TOO_MANY_RCPTS));
		return;
	}
	if (deliv_of(s) && !b->granted) {
		rcpt_refusal_now(s, p->addr,
		                 b->quota_why ? b->quota_why : "450 4.7.1 Quota exceeded");
		return;
	}
	if (deliv_of(s)) {
		b->granted--;
		t->quota_reserved++;
	}
	rcpt_add(t, p->addr, p->orcpt, p->notify);
	session_reply(s, R_RCPT_OK);
}

/* One candidate's answer, k its index among the candidates. */
static void rcpt_answer(struct session *s, struct rcpt_batch *b, const struct rcpt_pend *p,
                        size_t k)
{
	const struct store_supp *e = &b->req.entries[k];
	char line[LINE_MAX_REPLY];

	if (b->req.failed) {
		rcpt_refusal_now(s, p->addr, "451 4.3.0 Temporary failure checking the recipient");
	} else if (b->req.found[k]) {
		deliv_supp_reply(line, sizeof(line), p->addr, e->reason, e->created_at);
		rcpt_refusal_now(s, p->addr, line);
		if (deliv_of(s))
			deliv_refused_suppressed(deliv_of(s), account_of(s), p->addr, e->reason);
	} else {
		rcpt_accept(s, b, p);
	}
}

/* Every recipient of the batch answered, in order. */
static void batch_answer(struct session *s, struct rcpt_batch *b)
{
	size_t k = 0;

	for (size_t i = 0; i < b->n; i++) {
		if (b->v[i].refusal)
			rcpt_refusal_now(s, b->v[i].addr, b->v[i].refusal);
		else
			rcpt_answer(s, b, &b->v[i], k++);
	}
	if (b->granted && deliv_of(s)) /* not expected: the count was exact */
		deliv_quota_release(deliv_of(s), b->account, b->granted);
	b->granted = 0;
	session_resume(s, S_CMD);
}

/* How many of the batch the quota must cover: the candidates neither
 * suppressed nor over the recipient limit. */
static uint64_t quota_wanted(const struct session *s, const struct rcpt_batch *b)
{
	size_t room = s->l->cfg->max_recipients > s->txn.n_rcpts
	                  ? s->l->cfg->max_recipients - s->txn.n_rcpts
	                  : 0;
	uint64_t n = 0;

	if (b->req.failed)
		return 0;
	for (size_t k = 0; k < b->n_cand; k++)
		n += !b->req.found[k];
	return n < room ? n : room;
}

static void on_quota(void *arg, uint64_t granted, const char *why, int64_t reset)
{
	struct rcpt_batch *b = arg;
	struct session *s = b->s;
	struct deliv *d = deliv_of(s);

	b->granted = granted;
	b->quota_why = why && *why ? xstrdup(why) : NULL;
	if (session_release(s)) { /* gone meanwhile: give it back */
		if (granted)
			deliv_quota_release(d, b->account, granted);
		batch_free(b);
		return;
	}
	batch_answer(s, b);
	batch_free(b);
}

static void batch_done(struct smtpd_supp_req *r)
{
	struct rcpt_batch *b = (struct rcpt_batch *)r;
	struct session *s = b->s;
	uint64_t n;

	if (b->n_cand > 1) /* a pipelined group: one check for all */
		log_info("session=%s event=suppression_check rcpts=%zu failed=%d", s->id, b->n_cand,
		         b->req.failed);
	if (session_release(s)) {
		batch_free(b);
		return;
	}
	if (deliv_of(s) && (n = quota_wanted(s, b)) > 0) {
		session_hold(s); /* one reservation for the batch, maybe asked of Redis */
		deliv_quota_reserve_async(deliv_of(s), b->account, n, 0, on_quota, b);
		return;
	}
	batch_answer(s, b);
	batch_free(b);
}

/* The server's check queue, made at the first batch (deps are complete
 * by then). */
static struct smtpd_supp *supp_of(struct smtpd *sd)
{
	if (!sd->supp)
		sd->supp = smtpd_supp_new(sd->deps->base, sd->deps->work, sd->deps->store);
	return sd->supp;
}

/* 1 when the next complete line buffered is another RCPT: it joins the
 * batch (PIPELINING), rather than a job per recipient. */
static int next_is_rcpt(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	char head[5];

	if (eol.pos < 5 || evbuffer_copyout(in, head, sizeof(head)) != (ev_ssize_t)sizeof(head))
		return 0;
	return ascii_ncasecmp(head, "RCPT ", 5) == 0;
}

/* After each RCPT while a batch is open: wait for more, or check now. */
static void batch_maybe_submit(struct session *s)
{
	struct rcpt_batch *b = s->txn.batch;

	if (!b || (b->n < RCPT_BATCH_MAX && next_is_rcpt(s)))
		return;
	s->txn.batch = NULL; /* the check's now */
	b->addrs = xcalloc(b->n_cand, sizeof(*b->addrs));
	for (size_t i = 0, k = 0; i < b->n; i++)
		if (!b->v[i].refusal)
			b->addrs[k++] = b->v[i].addr;
	b->req.account = b->account;
	b->req.addrs = b->addrs;
	b->req.n = b->n_cand;
	b->req.found = xcalloc(b->n_cand, 1);
	b->req.entries = xcalloc(b->n_cand, sizeof(*b->req.entries));
	b->req.done = batch_done;
	session_hold(s);
	session_set_state(s, S_WAIT);
	smtpd_supp_check(supp_of(s->sd), &b->req);
}

static void batch_add(struct session *s, const struct smtp_rcpt_args *ra)
{
	struct rcpt_batch *b = s->txn.batch;

	if (!b) {
		b = s->txn.batch = xcalloc(1, sizeof(*b));
		b->s = s;
		snprintf(b->account, sizeof(b->account), "%s", account_of(s));
	}
	batch_push(b, ra, NULL);
}

/* ---------- RCPT: the bounces domain ---------- */

/* A recipient at the bounces domain: 1 when it was dealt with here
 * (accepted as a report, or refused), 0 when it is no business of ours. */
static int verp_rcpt(struct session *s, const struct smtp_rcpt_args *ra)
{
	struct deliv *d = deliv_of(s);
	const char *dom = s->sd->deps->conf->bounces_domain;
	char id[ID_LEN + 1], line[LINE_MAX_REPLY];
	enum deliv_verp_kind k = d ? deliv_verp_rcpt(d, ra->addr, id) : DELIV_VERP_OTHER;

	if (k == DELIV_VERP_OTHER)
		return 0;
	if (k == DELIV_VERP_NOT_VERP)
		snprintf(line, sizeof(line),
		         "550 5.1.1 <%s>: no such mailbox: %s takes only bounce reports at "
		         "addresses it gave out",
		         ra->addr, dom);
	else if (k == DELIV_VERP_FORGED)
		snprintf(line, sizeof(line), "550 5.1.1 <%s>: not a return path of this host",
		         ra->addr);
	else if (k == DELIV_VERP_EXPIRED)
		snprintf(line, sizeof(line), "550 5.1.1 <%s>: return path expired", ra->addr);
	else if (s->txn.n_rcpts && !s->txn.inbound)
		snprintf(line, sizeof(line),
		         "452 4.5.3 Bounce reports and other mail go in "
		         "separate transactions");
	else
		line[0] = '\0';
	if (line[0]) {
		rcpt_refuse(s, ra, line);
		return 1;
	}
	if (!s->txn.inbound)
		s->txn.inbound = deliv_inbound_new(d, s->id);
	deliv_inbound_rcpt(s->txn.inbound, id);
	rcpt_add(&s->txn, ra->addr, ra->orcpt, ra->notify);
	log_info("session=%s event=report_rcpt ip=%s to=%s about=%s", s->id, s->ip, log_q(ra->addr),
	         id);
	session_reply(s, R_RCPT_OK);
	return 1;
}

/* ---------- RCPT ---------- */

/* The checks of a relayed recipient that need no database: 1 (refused). */
static int rcpt_refused(struct session *s, const struct smtp_rcpt_args *ra)
{
	char why[LINE_MAX_REPLY];

	if (auth_missing(s, 0))
		rcpt_refuse(s, ra, smtpd_reply_text(R_AUTH_REQUIRED));
	else if (!relay_allowed(s))
		rcpt_refuse(s, ra, smtpd_reply_text(R_RELAY_DENIED));
	else if (s->txn.inbound)
		rcpt_refuse(s, ra,
		            "452 4.5.3 Bounce reports and other mail go in separate "
		            "transactions");
	else if (s->txn.n_rcpts >= s->l->cfg->max_recipients)
		rcpt_refuse(s, ra, smtpd_reply_text(R_TOO_MANY_RCPTS));
	else if (deliv_of(s) && deliv_paused(deliv_of(s), account_of(s), why, sizeof(why)))
		rcpt_refuse(s, ra, why);
	else
		return 0;
	return 1;
}

void smtpd_cmd_rcpt(struct session *s, char *arg)
{
	struct txn *t = &s->txn;
	struct smtp_rcpt_args ra;
	enum smtp_arg_err e;

	if (!t->mail_line) {
		rcpt_refuse(s, NULL, smtpd_reply_text(R_NEED_MAIL));
		return;
	}
	e = smtp_parse_rcpt(arg, t->mail.smtputf8, &ra);
	if (e != SMTP_ARG_OK)
		rcpt_refuse(s, NULL, smtpd_reply_text(arg_err_reply(e, 0)));
	else if (!verp_rcpt(s, &ra) && !rcpt_refused(s, &ra))
		batch_add(s, &ra);
	batch_maybe_submit(s);
}

/* ---------- the transaction's end ---------- */

void smtpd_mail_txn_end(struct session *s)
{
	struct txn *t = &s->txn;

	if (t->quota_reserved && deliv_of(s))
		deliv_quota_release(deliv_of(s), account_of(s), t->quota_reserved);
	t->quota_reserved = 0;
	batch_free(t->batch);
	t->batch = NULL;
	deliv_inbound_free(t->inbound);
	t->inbound = NULL;
}

void smtpd_mail_committed(struct session *s)
{
	struct txn *t = &s->txn;

	if (t->quota_reserved && deliv_of(s))
		deliv_quota_commit(deliv_of(s), account_of(s), t->quota_reserved);
	t->quota_reserved = 0;
}

static void on_report_done(void *arg, const char *summary)
{
	struct session *s = arg;

	if (session_release(s))
		return;
	s->n_msgs++;
	s->n_errors = 0;
	session_replyf(s, "250 2.0.0 Ok: report received");
	session_txn_reset(s);
	session_resume(s, S_CMD);
}

void smtpd_mail_report(struct session *s)
{
	struct deliv_inbound *in = s->txn.inbound;

	s->txn.inbound = NULL; /* the job's now */
	session_hold(s);
	session_set_state(s, S_WAIT);
	deliv_inbound_finish(in, on_report_done, s);
}
