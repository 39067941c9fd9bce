/*
 * sched_result: the end of an attempt. Each recipient's verdict becomes
 * its new state (delivered, deferred with its next attempt, bounced), one
 * log line, a count and an event (src/events); recipients whose sender
 * asked for it get a DSN entry. The destination's shaping hears how it
 * went.
 *
 * Writing results, in this order: bounces first become a report (one per
 * message and event, built on the work pool and committed through the
 * spool), then the recipients' new states are written to the spool file
 * (or the file is deleted when nothing is left open), on the work pool,
 * because both fsync. Only then is the item forgotten or placed again
 * with its deferred rest. A crash anywhere in between re-sends at worst:
 * delivery is at least once. Once the scheduler is stopped (server exit)
 * that work runs on the loop thread instead: the pool may be gone.
 *
 * Deliverability (deliv.h): every delivered or bounced recipient is an
 * outcome for its account's reputation guard; a hard bounce (a 5xx reply
 * to RCPT or after DATA whose status says the address does not exist,
 * smtpc's verdict `hard`) adds the address to the account's suppression
 * list with "hard bounce: <remote reply>", in the same worker job that
 * writes the states, one transaction for the item's adds. An item whose
 * account the guard paused is not delivered but parked until the account
 * is resumed (sched_account_held). Messages with the null sender (the
 * reports Posthorn sends) are neither counted nor held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "deliv/deliv.h"
#include "dsn/dsn.h"
#include "events/events.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "sched/sched_int.h"
#include "smtpc/smtpc_conn.h"
#include "spool/spool.h"
#include "work/work.h"

#define MX_MAX 320 /* "host[address]" of the host that answered, for events */

struct finish {
	struct sched *s;
	struct qitem *it;
	struct envelope *env; /* the item's, taken over */
	size_t *changed;      /* rcpt indices whose state changed */
	size_t n_changed;
	int delete_file;
	int sync; /* a recipient became final: its record must be durable */
	struct dsn_rcpt *dsn;
	size_t n_dsn;
	char **dsn_strs; /* owned copies of the strings dsn[] points to */
	size_t n_strs;
	struct deliv_supp *supp; /* hard bounces for the suppression list */
	size_t n_supp;
};

_Static_assert(SCHED_RETURN_PATH_MAX >= DELIV_VERP_MAX, "return path buffer");

static const char *keep_str(struct finish *f, const char *s)
{
	char *c = s ? xstrdup(s) : NULL;

	f->dsn_strs = xrealloc(f->dsn_strs, (f->n_strs + 1) * sizeof(char *));
	f->dsn_strs[f->n_strs++] = c;
	return c;
}

static void finish_free(struct finish *f)
{
	size_t i;

	for (i = 0; i < f->n_strs; i++)
		free(f->dsn_strs[i]);
	free(f->dsn_strs);
	free(f->dsn);
	free(f->supp);
	free(f->changed);
	free(f);
}

static void persist_run(void *arg)
{
	struct finish *f = arg;
	struct spool *sp = f->s->deps.spool;
	char *err = NULL;

	if (f->n_supp)
		deliv_supp_add(f->s->deps.deliv, f->supp, f->n_supp);
	if (f->delete_file) {
		/* ENOENT: an operator deleted it during the attempt */
		if (spool_remove_done(sp, f->env->id, &err) < 0 && errno != ENOENT)
			log_warn("queue=%s event=spool_delete_error error=%s", f->env->id,
			         log_q(err));
		free(err);
		return;
	}
	if (f->n_changed > 0 && spool_set_rcpt_states(sp, f->env->id, f->env->rcpts, f->changed,
	                                              f->n_changed, f->sync, &err) < 0) {
		log_warn("queue=%s event=spool_state_error error=%s", f->env->id, log_q(err));
		free(err);
	}
}

/* A file whose last open recipients an operator took (removal job). */
struct removal {
	struct spool *sp;
	char id[ID_LEN + 1];
};

static void remove_run(void *arg)
{
	struct removal *rm = arg;
	char *err = NULL;

	if (spool_remove_done(rm->sp, rm->id, &err) < 0)
		log_warn("queue=%s event=spool_delete_error error=%s", rm->id, log_q(err));
	free(err);
}

static void remove_done(void *arg)
{
	free(arg);
}

/* Recipients of the deferred rest that an operator held or deleted while
 * their results were being written leave the item (sched_steer.c). When
 * that leaves the message with nothing open, its file goes too. */
static void drop_steered(struct sched *s, struct qitem *it, int file_deleted)
{
	struct qmsg *m = it->m;
	struct removal *rm;
	uint32_t i, kept = 0;

	for (i = 0; i < it->n; i++) {
		uint32_t k = it->idx[i];
		if (idxset_del(&m->dropped, k))
			m->n_open--;
		else if (!idxset_has(m->held, k))
			it->idx[kept++] = k;
	}
	if (kept == it->n)
		return;
	it->n = kept;
	if (m->n_open > 0 || file_deleted || m->forgotten)
		return;
	rm = xcalloc(1, sizeof(*rm));
	rm->sp = s->deps.spool;
	memcpy(rm->id, m->id, sizeof(rm->id));
	sched_run_job(s, remove_run, remove_done, rm);
}

static void persist_done(void *arg)
{
	struct finish *f = arg;
	struct sched *s = f->s;
	struct qitem *it = f->it;
	int deleted = f->delete_file;

	if (f->n_supp)
		deliv_supp_added(s->deps.deliv, f->supp, f->n_supp);
	envelope_free(f->env);
	finish_free(f);
	if (s->stopped) {
		/* at exit: the item is in no list; its message goes with sched_free() */
		sched_item_discard(it);
		return;
	}
	drop_steered(s, it, deleted);
	if (it->n > 0 && !it->m->forgotten) {
		sched_item_place(s, it); /* the deferred rest */
		sched_check_drained(s);
	} else {
		sched_item_free(s, it);
	}
	sched_failing_continue(s);
}

/* fn on the work pool, then done on the loop thread. Once stopped
 * (server exit) the pool may be gone already, and a report committed
 * during spool_close() still needs its recipients' final states on disk,
 * or the sender would be told twice after the restart: then both run
 * right here. */
void sched_run_job(struct sched *s, void (*fn)(void *), void (*done)(void *), void *arg)
{
	if (s->stopped) {
		fn(arg);
		done(arg);
		return;
	}
	work_submit(s->deps.work, fn, done, arg);
}

/* The writes fsync: on the work pool. */
static void persist(struct finish *f)
{
	sched_run_job(f->s, persist_run, persist_done, f);
}

/* ---------- bounce reports ---------- */

/*
 * A report in the making: the DSN entries of one message from one event
 * (every item of it whose attempt ended in that event, such as a dead
 * destination failing its ready queue), so that recipients that ended
 * together are told of in one report. It is built on the work pool (it
 * reads the original and writes the report), committed, and only then do
 * its finishes write their recipients' states: a crash in between sends
 * the report twice at worst, never loses it.
 */
struct report {
	struct sched *s;
	struct qmsg *m;
	struct finish **fs; /* waiting for the report */
	size_t n_fs;
	struct dsn_rcpt *rcpts; /* the entries of every finish; strings theirs */
	size_t n;
	struct dsn_job *job;
	struct report *next; /* in s->reports until started */
};

static void report_add(struct sched *s, struct finish *f)
{
	struct report *r;

	for (r = s->reports; r && r->m != f->it->m; r = r->next)
		;
	if (!r) {
		r = xcalloc(1, sizeof(*r));
		r->s = s;
		r->m = f->it->m;
		r->next = s->reports;
		s->reports = r;
	}
	r->fs = xrealloc(r->fs, (r->n_fs + 1) * sizeof(*r->fs));
	r->fs[r->n_fs++] = f;
	r->rcpts = xrealloc(r->rcpts, (r->n + f->n_dsn) * sizeof(*r->rcpts));
	memcpy(r->rcpts + r->n, f->dsn, f->n_dsn * sizeof(*r->rcpts));
	r->n += f->n_dsn;
}

/* The report is committed, failed or not needed: its finishes go on. */
static void report_done(struct report *r)
{
	size_t i;

	for (i = 0; i < r->n_fs; i++)
		persist(r->fs[i]);
	free(r->fs);
	free(r->rcpts);
	free(r);
}

/* The report dsn just committed, indexed from memory (its envelope is
 * dsn's: the null sender and one recipient, the original's sender). */
static void index_report(struct sched *s, const char *id, const struct envelope *orig)
{
	struct rcpt rc;
	struct envelope e = dsn_report_envelope(orig, &rc, sched_now_s());

	snprintf(e.id, sizeof(e.id), "%s", id);
	sched_add(s, &e);
	metrics_add_l(M_MESSAGES_ACCEPTED, MS_DSN, 1);
}

static void on_report_committed(void *arg, int ok, const char *id)
{
	struct report *r = arg;

	if (ok) {
		log_info("queue=%s event=dsn_queued dsn=%s rcpts=%zu", r->m->id, id, r->n);
		index_report(r->s, id, r->fs[0]->env);
	} else {
		log_err("queue=%s event=dsn_error error=commit_failed", r->m->id);
	}
	report_done(r);
}

static void report_build(void *arg)
{
	struct report *r = arg;

	dsn_job_build(r->job);
}

static void report_built(void *arg)
{
	struct report *r = arg;
	char *err = NULL;

	if (dsn_job_commit(r->job, on_report_committed, r, &err) < 0) {
		/* The bounce is lost, not the original's state: log it loudly. */
		log_err("queue=%s event=dsn_error error=%s", r->m->id, log_q(err));
		free(err);
		report_done(r);
	}
}

static void report_start(struct report *r)
{
	struct sched *s = r->s;
	char *err = NULL;

	/* every finish holds the message's envelope: the first one will do */
	r->job = dsn_job_new(s->deps.spool, s->conf->hostname, r->fs[0]->env, r->rcpts, r->n, &err);
	if (!r->job) {
		if (err)
			log_err("queue=%s event=dsn_error error=%s", r->m->id, log_q(err));
		free(err);
		report_done(r);
		return;
	}
	sched_run_job(s, report_build, report_built, r);
}

void sched_reports_start(struct sched *s)
{
	struct report *r, *next;

	for (r = s->reports, s->reports = NULL; r; r = next) {
		next = r->next;
		report_start(r);
	}
}

/* Seconds since the message arrived, to the millisecond: its queue ID
 * holds the arrival's milliseconds (created is whole seconds, and moves on
 * by the time a message was held). */
static double arrival_delay(const struct qitem *it)
{
	uint64_t now = clock_now_ms(), at = id_time_ms(it->m->id);

	if (!at)
		at = (uint64_t)it->m->created * 1000;
	return now > at ? (double)(now - at) / 1000.0 : 0.0;
}

/* attempt= counts the attempts of the schedule; an operator's retry is
 * not one of them and says so (retry=manual). delay= is from arrival. */
static void log_attempt(const struct qitem *it, const struct rcpt *r, struct smtpc_conn *c,
                        const char *status, const struct smtpc_verdict *v)
{
	double delay = arrival_delay(it);
	const char *manual = it->manual ? " retry=manual" : "";

	if (c)
		log_info("queue=%s event=delivery to=<%s> relay=%s[%s]:%u tls=%s tls_policy=%s "
		         "verified=%s delay=%.3f attempt=%u%s status=%s dsn=%s reply=%s",
		         it->m->id, log_q(r->addr), smtpc_conn_host(c), smtpc_conn_addr(c),
		         smtpc_conn_port(c), smtpc_conn_tls(c), smtpc_conn_policy(c),
		         smtpc_conn_verified(c) ? "yes" : "no", delay, r->attempts, manual, status,
		         v->status, log_q(v->diag));
	else
		log_info("queue=%s event=delivery to=<%s> relay=none tls_policy=%s verified=no "
		         "delay=%.3f attempt=%u%s status=%s dsn=%s reply=%s",
		         it->m->id, log_q(r->addr), sched_dest_policy(it->d), delay, r->attempts,
		         manual, status, v->status, log_q(v->diag));
}

/* /metrics: per recipient and outcome (docs/metrics.md). */
static void count_metrics(const struct envelope *env, const char *event, const char *status)
{
	int64_t us = (int64_t)clock_now_ms() * 1000 - env->created * 1000000;

	if (!strcmp(event, "delivered")) {
		metrics_inc(M_MESSAGES_DELIVERED);
		metrics_observe_us(M_DELIVERY_LATENCY, us > 0 ? (uint64_t)us : 0);
	} else if (!strcmp(event, "deferred")) {
		metrics_inc_l(M_MESSAGES_DEFERRED, metrics_reason_class(status));
	} else {
		metrics_inc_l(M_MESSAGES_BOUNCED, metrics_reason_class(status));
	}
}

/* Counters count recipients, not attempts: a deferral only the first
 * time (every attempt before a deferral was one; an operator's retry is
 * not one). /metrics counts every outcome. */
static void count(struct sched *s, const struct qitem *it, const struct envelope *env,
                  const struct rcpt *r, const char *event, const char *status)
{
	count_metrics(env, event, status);
	if (s->deps.count && (strcmp(event, "deferred") || (r->attempts == 1 && !it->manual)))
		s->deps.count(s->deps.count_arg, env->account, r->addr, event);
}

/*
 * The recipient's attempt, counted (count above) and recorded as an event
 * (delivered, deferred or bounced, every attempt; docs/events.md "For
 * emitters"): events_emit() copies into the writer's queue, nothing more
 * on the loop.
 */
static void record(struct sched *s, const struct qitem *it, const struct envelope *env,
                   const struct rcpt *r, enum event_type type, const struct smtpc_verdict *v,
                   struct smtpc_conn *c)
{
	char mx[MX_MAX];

	count(s, it, env, r, event_type_name(type), v->status);
	if (!s->deps.events)
		return;
	if (c)
		snprintf(mx, sizeof(mx), "%s[%s]", smtpc_conn_host(c),
		         smtpc_conn_addr(c) ? smtpc_conn_addr(c) : "");
	events_emit(s->deps.events,
	            &(struct events_event){.type = type,
	                                   .account = env->account,
	                                   .message_id = env->id,
	                                   .recipient = r->addr,
	                                   .mx = c ? mx : NULL,
	                                   .reply = v->reply ? v->reply : v->diag,
	                                   .status = v->status[0] ? v->status : NULL,
	                                   .attempt = r->attempts});
}

static void add_dsn(struct finish *f, size_t k, enum dsn_action action, const char *status,
                    const char *diag, const char *remote)
{
	struct dsn_rcpt *d;

	if (!dsn_should_report(f->env, k, action))
		return;
	f->dsn = xrealloc(f->dsn, (f->n_dsn + 1) * sizeof(*f->dsn));
	d = &f->dsn[f->n_dsn++];
	memset(d, 0, sizeof(*d));
	d->index = k;
	d->action = action;
	d->status = keep_str(f, status);
	d->diagnostic = keep_str(f, diag);
	d->remote_mta = keep_str(f, remote);
	d->last_attempt = sched_now_s();
	if (action == DSN_ACT_DELAYED)
		d->retry_until = rcpt_clock_start(f->env, &f->env->rcpts[k]) +
		                 (int64_t)f->s->conf->queue_lifetime;
}

/* A DSN's Diagnostic-Code: the server's own reply (smtp;) when there was
 * one, else our account of what happened. */
static const char *dsn_diag(const struct smtpc_verdict *v)
{
	return v->reply ? v->reply : v->diag;
}

/*
 * The guard hears of every bounce; a hard one, with the remote reply that
 * says so, goes to the suppression list (written by persist_run). An
 * expiry or a DNS verdict is not: no remote host said the address is bad.
 */
static void hard_bounce(struct finish *f, struct rcpt *r, const struct smtpc_verdict *v)
{
	struct deliv *d = f->s->deps.deliv;
	int hard = v->action == SMTPC_ACT_BOUNCE && v->hard && v->reply;
	struct deliv_supp *x;
	char *reason;

	if (!d || !*f->env->mail_from)
		return; /* Posthorn's own reports are no mail of the account's */
	deliv_outcome(d, f->env->account, hard ? DELIV_OUT_HARD : DELIV_OUT_BOUNCED);
	if (!hard)
		return;
	f->supp = xrealloc(f->supp, (f->n_supp + 1) * sizeof(*f->supp));
	x = &f->supp[f->n_supp++];
	memset(x, 0, sizeof(*x));
	x->account = f->env->account; /* the envelope lives until persist_done */
	x->addr = r->addr;
	reason = xasprintf("hard bounce: %s", v->reply);
	x->reason = keep_str(f, reason);
	free(reason);
	x->id = f->env->id;
}

/* A recipient that will not be tried again: bounced now, or expired
 * (a deferral past queue_lifetime bounces with the last reason). */
static void apply_bounce(struct finish *f, size_t k, const struct smtpc_verdict *v,
                         struct smtpc_conn *c)
{
	struct rcpt *r = &f->env->rcpts[k];
	const char *remote = c ? smtpc_conn_host(c) : NULL;

	r->state = RCPT_BOUNCED;
	if (v->action == SMTPC_ACT_DEFER) {
		struct smtpc_verdict ex;
		struct smtpc_peer peer = {.host = f->it->d->name};
		memset(&ex, 0, sizeof(ex));
		smtpc_judge_failure(&peer, SMTPC_STAGE_QUEUE, SMTPC_FAIL_EXPIRED, v->diag, &ex);
		log_attempt(f->it, r, c, "bounced", &ex);
		add_dsn(f, k, DSN_ACT_FAILED, ex.status, ex.diag, remote);
		record(f->s, f->it, f->env, r, EVENT_BOUNCED, &ex, c);
		smtpc_verdict_clear(&ex);
	} else {
		log_attempt(f->it, r, c, "bounced", v);
		add_dsn(f, k, DSN_ACT_FAILED, v->status, dsn_diag(v), remote);
		record(f->s, f->it, f->env, r, EVENT_BOUNCED, v, c);
	}
	if (!*f->env->mail_from)
		log_info("queue=%s event=bounce_dropped to=<%s> reason=null_sender", f->env->id,
		         log_q(r->addr));
	hard_bounce(f, r, v);
}

/* One recipient's verdict: new state, log line, DSN entry. Returns 1 if
 * the recipient stays open (deferred). */
static int apply_one(struct finish *f, size_t k, const struct smtpc_verdict *v,
                     struct smtpc_conn *c)
{
	struct sched *s = f->s;
	struct qitem *it = f->it;
	struct rcpt *r = &f->env->rcpts[k];
	const struct conf *cf = s->conf;
	int64_t next = 0;

	if (!it->manual)
		r->attempts++;
	free(r->last_reply);
	r->last_reply = v->diag ? xstrdup(v->diag) : NULL;
	f->changed[f->n_changed++] = k;
	if (v->action == SMTPC_ACT_OK) {
		r->state = RCPT_DELIVERED;
		log_attempt(it, r, c, "sent", v);
		record(s, it, f->env, r, EVENT_DELIVERED, v, c);
		if (s->deps.deliv && *f->env->mail_from)
			deliv_outcome(s->deps.deliv, f->env->account, DELIV_OUT_DELIVERED);
		/* RFC 3461 6.2.3: a next hop without DSN cannot report success,
		 * so we say "relayed"; one with DSN got NOTIFY and reports itself. */
		if (c && !smtpc_conn_has_dsn(c))
			add_dsn(f, k, DSN_ACT_RELAYED, v->status, dsn_diag(v), smtpc_conn_host(c));
		return 0;
	}
	/* Time held (queue hold) does not count toward queue_lifetime. A
	 * manual attempt leaves the count, so the recipient waits the step
	 * it waited before. */
	if (v->action == SMTPC_ACT_DEFER &&
	    sched_retry_next(cf->retry, cf->n_retry, r->attempts, rcpt_clock_start(f->env, r),
	                     cf->queue_lifetime, sched_now_s(), &next) == SCHED_RETRY_AT) {
		int64_t prev =
		    sched_prev_attempt(cf->retry, cf->n_retry, r->attempts, r->next_attempt);
		r->state = RCPT_DEFERRED;
		r->next_attempt = next;
		log_attempt(it, r, c, "deferred", v);
		record(s, it, f->env, r, EVENT_DEFERRED, v, c);
		if (dsn_delay_wanted(f->env, k) &&
		    sched_delay_due(f->env->created, cf->delay_warning, prev, sched_now_s()))
			add_dsn(f, k, DSN_ACT_DELAYED, v->status, dsn_diag(v),
			        c ? smtpc_conn_host(c) : NULL);
		return 1;
	}
	apply_bounce(f, k, v, c);
	return 0;
}

static void shape_signal(struct dest *d, const struct smtpc_verdict *v, size_t n)
{
	size_t i;
	int good = 0, deferral = 0, backoff = 0;

	for (i = 0; i < n; i++) {
		good |= v[i].dest == SMTPC_DEST_GOOD || v[i].action == SMTPC_ACT_OK;
		deferral |= v[i].dest == SMTPC_DEST_DEFERRAL;
		backoff |= v[i].dest == SMTPC_DEST_BACKOFF;
	}
	if (backoff)
		sched_shape_throttle(&d->shape, sched_now_ms());
	else if (deferral)
		sched_shape_deferral(&d->shape, sched_now_ms());
	else if (good)
		sched_shape_success(&d->shape);
}

/* Recipient k's verdict, in the light of what an operator did during the
 * attempt: one deleted meanwhile is left deleted (its result is not
 * written), one held meanwhile stays held if it stays open. 1 if it goes
 * back into the item. */
static int apply_steered(struct finish *f, size_t k, const struct smtpc_verdict *v,
                         struct smtpc_conn *c)
{
	struct qmsg *m = f->it->m;
	struct sched *s = f->s;

	if (idxset_del(&m->dropped, (uint32_t)k)) {
		log_info("queue=%s event=delivery_ignored to=<%s> reason=deleted", m->id,
		         log_q(f->env->rcpts[k].addr));
		m->n_open--;
		return 0;
	}
	if (apply_one(f, k, v, c))
		return !idxset_has(m->held, (uint32_t)k);
	m->n_open--;
	f->sync = 1;
	if (idxset_del(&m->held, (uint32_t)k))
		s->n_held--;
	return 0;
}

/* A message deleted during the attempt: what happened is logged, nothing
 * is written (the file is gone) and nobody is told. */
static void forget_results(struct finish *f)
{
	f->n_changed = 0;
	f->n_dsn = 0;
	f->delete_file = 0;
}

void sched_apply_results(struct sched *s, struct qitem *it, const struct smtpc_verdict *v,
                         int same_for_all, struct smtpc_conn *c)
{
	struct finish *f = xcalloc(1, sizeof(*f));
	uint32_t i, kept = 0;

	f->s = s;
	f->it = it;
	f->env = it->act->env;
	it->act->env = NULL;
	sched_item_release(it);
	sched_item_set(s, it, IT_FINISHING);
	f->changed = xcalloc(it->n, sizeof(*f->changed));
	shape_signal(it->d, v, same_for_all ? 1 : it->n);
	for (i = 0; i < it->n; i++) {
		size_t k = it->idx[i];
		if (!apply_steered(f, k, same_for_all ? v : &v[i], c))
			continue;
		it->idx[kept++] = (uint32_t)k;
		if (f->env->rcpts[k].next_attempt > it->due || kept == 1)
			it->due = f->env->rcpts[k].next_attempt;
	}
	it->n = kept;
	it->manual = 0;
	f->delete_file = it->m->n_open == 0;
	if (it->m->forgotten)
		forget_results(f);
	if (f->n_dsn > 0)
		report_add(s, f);
	else
		persist(f);
}

/* A report Posthorn made (null sender) still goes: it tells the sender
 * what happened to mail sent before the pause. */
int sched_account_held(struct sched *s, struct qitem *it)
{
	const struct envelope *env = it->act->env;

	if (!s->deps.deliv || !*env->mail_from ||
	    !deliv_held(s->deps.deliv, env->account, it->m->id))
		return 0;
	log_info("queue=%s event=held account=%s reason=account_paused", it->m->id,
	         log_q(it->act->env->account));
	sched_item_release(it);
	it->due = sched_now_s() + SCHED_HELD_PARK_S;
	sched_item_set(s, it, IT_DEFERRED);
	return 1;
}
