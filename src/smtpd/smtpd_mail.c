/*
 * smtpd_mail: MAIL and RCPT, the envelope of a transaction.
 *
 * MAIL refuses while the data directory is nearly full (measured at most
 * once a second), and binds the sender to the account: an authenticated
 * session may only use its own domains, which the store is asked in the
 * work pool. RCPT decides relaying: a session relays when it has
 * authenticated or comes from a trusted network; otherwise 554, and
 * Posthorn is never an open relay.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "log/log.h"
#include "smtpd/smtpd_session.h"
#include "spool/spool.h"
#include "store/store.h"
#include "work/work.h"

struct domain_job {
	struct session *s;
	struct store *store;
	char *account;
	char *domain;
	int result;
};

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

/* The checks before MAIL's argument is read; 1 when refused. */
static int mail_refused(struct session *s)
{
	if (s->txn.mail_line)
		session_refuse(s, "MAIL", R_NESTED_MAIL);
	else if (s->l->cfg->auth == CONF_AUTH_REQUIRED && !s->account)
		session_refuse(s, "MAIL", R_AUTH_REQUIRED);
	else if (disk_nearly_full(s->sd))
		session_refuse(s, "MAIL", R_DISK_FULL);
	else
		return 0;
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

static int relay_allowed(const struct session *s)
{
	return s->account != NULL || s->trusted;
}

static void rcpt_add(struct txn *t, const struct smtp_rcpt_args *ra)
{
	struct rcpt *r;

	if (t->n_rcpts == t->cap_rcpts) {
		t->cap_rcpts = t->cap_rcpts ? t->cap_rcpts * 2 : 4;
		t->rcpts = xrealloc(t->rcpts, t->cap_rcpts * sizeof(*t->rcpts));
	}
	r = &t->rcpts[t->n_rcpts++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(ra->addr);
	r->orcpt = ra->orcpt ? xstrdup(ra->orcpt) : NULL;
	r->notify = ra->notify;
}

void smtpd_cmd_rcpt(struct session *s, char *arg)
{
	struct txn *t = &s->txn;
	struct smtp_rcpt_args ra;
	enum smtp_arg_err e;

	if (!t->mail_line) {
		session_refuse(s, "RCPT", R_NEED_MAIL);
		return;
	}
	e = smtp_parse_rcpt(arg, t->mail.smtputf8, &ra);
	if (e != SMTP_ARG_OK) {
		session_refuse(s, "RCPT", arg_err_reply(e, 0));
		return;
	}
	if (s->l->cfg->auth == CONF_AUTH_REQUIRED && !s->account) {
		session_refuse(s, "RCPT", R_AUTH_REQUIRED);
		return;
	}
	if (!relay_allowed(s)) {
		log_info("session=%s event=reject cmd=RCPT ip=%s to=%s reply=%s", s->id, s->ip,
		         log_q(ra.addr), log_q(smtpd_reply_text(R_RELAY_DENIED)));
		session_reply(s, R_RELAY_DENIED);
		session_error(s);
		return;
	}
	if (t->n_rcpts >= s->l->cfg->max_recipients) {
		session_refuse(s, "RCPT", R_TOO_MANY_RCPTS);
		return;
	}
	rcpt_add(t, &ra);
	session_reply(s, R_RCPT_OK);
}
