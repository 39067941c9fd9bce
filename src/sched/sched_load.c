/*
 * sched_load: the queue read back at start while the server already
 * serves (issue: a million queued messages kept the ports unanswered for
 * 13 s). The server binds, runs spool_recover_begin() (tmp/ emptied, the
 * queue listed: fast) and starts its loop; this file then reads the
 * listing a slice of RECOVER_SLICE messages at a time on the work pool
 * (spool_recover_step: each file read once, the bad ones quarantined) and
 * indexes each slice on the loop. Connections are answered and mail is
 * accepted from the start: a message committed meanwhile is indexed at
 * its commit (it is not in the listing), and delivery begins with the
 * first slice.
 *
 * A worker cannot keep the spool's envelope past its callback, so each is
 * copied, with only what the index reads (recipient addresses and states).
 * Before the first slice, the deletion journal of a stopped server's
 * `queue delete` is logged (spool_journal_replay).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "sched/sched_int.h"
#include "spool/spool.h"
#include "store/store.h"

#define RECOVER_SLICE       500
#define RECOVER_LOG_EVERY   10000 /* messages between progress lines */
#define RECOVER_LOG_SECONDS 1000  /* ms: ... or this long */

struct sched_recovery {
	struct sched *s;
	struct spool_recovery *rv;
	void (*done)(void *arg, long good);
	void *arg;
	struct envelope **envs; /* the slice read */
	size_t n, cap;
	long left;
	size_t total, indexed, logged_at;
	uint64_t logged_ms;
	int journal_done;
};

/* What the index needs of env (recipients, and what picks their lane),
 * owned: envelope_free() frees it. */
static struct envelope *index_copy(const struct envelope *env)
{
	struct envelope *c = xcalloc(1, sizeof(*c));
	size_t i;

	memcpy(c->id, env->id, sizeof(c->id));
	c->created = env->created;
	c->account = xstrdup(env->account); /* its lane: the account's pool */
	c->requiretls = env->requiretls;    /* and REQUIRETLS */
	c->rcpts = xcalloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*c->rcpts));
	c->n_rcpts = env->n_rcpts;
	for (i = 0; i < env->n_rcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];
		c->rcpts[i] = (struct rcpt){.state = r->state,
		                            .next_attempt = r->next_attempt,
		                            .held_since = r->held_since,
		                            .held_secs = r->held_secs,
		                            .deleted = r->deleted};
		if (rcpt_is_open(r))
			c->rcpts[i].addr = xstrdup(r->addr);
	}
	return c;
}

static void collect(void *arg, const struct envelope *env)
{
	struct sched_recovery *r = arg;

	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : RECOVER_SLICE;
		r->envs = xrealloc(r->envs, r->cap * sizeof(*r->envs));
	}
	r->envs[r->n++] = index_copy(env);
}

/* The account of message id, from the database (the journal does not
 * name it); 0 when it is not known. */
static int message_account(struct sched *s, const char *id, char *out, size_t cap)
{
	struct store_message_row m;
	char *err = NULL;
	int rc;

	if (!s->deps.store || !s->deps.events)
		return 0;
	rc = store_message_get(s->deps.store, NULL, id, &m, &err);
	if (rc < 0) {
		log_warn("queue=%s event=journal_error error=%s", id, log_q(err));
		free(err);
	}
	if (rc <= 0)
		return 0;
	snprintf(out, cap, "%s", m.account);
	store_message_row_free(&m);
	return 1;
}

/* A deletion made while no server ran, in this server's log, and (its
 * message's account known) as each recipient's `bounced` event, as a
 * deletion through the server has. */
static void log_deleted(void *arg, int64_t when, const char *id, const char *addr)
{
	struct sched *s = arg;
	char account[256];

	if (*addr)
		log_info("queue=%s event=deleted to=<%s> by=cli offline=1 deleted_at=%lld", id,
		         log_q(addr), (long long)when);
	else
		log_info(
		    "queue=%s event=deleted reason=unreadable by=cli offline=1 deleted_at=%lld", id,
		    (long long)when);
	if (*addr && message_account(s, id, account, sizeof(account)))
		sched_deleted_event(s, account, id, addr, 0, when * 1000);
}

static void replay_journal(struct sched_recovery *r)
{
	char *err = NULL;

	r->journal_done = 1;
	if (spool_journal_replay(r->s->deps.spool, log_deleted, r->s, &err) < 0) {
		log_warn("event=journal_error error=%s", log_q(err));
		free(err);
	}
}

static void slice_run(void *arg)
{
	struct sched_recovery *r = arg;

	if (!r->journal_done)
		replay_journal(r);
	r->left = spool_recover_step(r->rv, RECOVER_SLICE, collect, r);
}

static void log_progress(struct sched_recovery *r)
{
	uint64_t now = clock_mono_ms();

	if (r->indexed - r->logged_at < RECOVER_LOG_EVERY &&
	    now - r->logged_ms < RECOVER_LOG_SECONDS)
		return;
	log_info("event=recovery_progress recovered=%zu total=%zu", r->indexed, r->total);
	r->logged_at = r->indexed;
	r->logged_ms = now;
}

/* The end: the spool's counts, the caller told, the recovery gone. */
static void finish(struct sched_recovery *r)
{
	struct sched *s = r->s;
	long good = spool_recover_end(r->rv);
	void (*done)(void *, long) = r->done;
	void *arg = r->arg;

	s->rec = NULL;
	s->recovered_tail = NULL; /* from now on, every message is new */
	free(r->envs);
	free(r);
	if (done)
		done(arg, good);
}

static void slice_done(void *arg)
{
	struct sched_recovery *r = arg;
	size_t i;

	for (i = 0; i < r->n; i++) {
		if (!r->s->stopped)
			sched_index(r->s, r->envs[i], 1);
		envelope_free(r->envs[i]);
	}
	r->indexed += r->n;
	r->n = 0;
	if (r->s->stopped) { /* exit: the rest waits on disk for the next start */
		sched_recover_free(r->s);
		return;
	}
	log_progress(r);
	if (r->left > 0)
		sched_run_job(r->s, slice_run, slice_done, r);
	else
		finish(r);
}

void sched_recover(struct sched *s, struct spool_recovery *rv, void (*done)(void *arg, long good),
                   void *arg)
{
	struct sched_recovery *r = xcalloc(1, sizeof(*r));

	r->s = s;
	r->rv = rv;
	r->done = done;
	r->arg = arg;
	r->total = spool_recover_total(rv);
	r->logged_ms = clock_mono_ms();
	s->rec = r;
	log_info("event=recovery_started total=%zu", r->total);
	sched_run_job(s, slice_run, slice_done, r);
}

int sched_recovering(const struct sched *s, size_t *done, size_t *total)
{
	if (!s->rec)
		return 0;
	*done = s->rec->indexed;
	*total = s->rec->total;
	return 1;
}

void sched_recover_free(struct sched *s)
{
	struct sched_recovery *r = s->rec;
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n; i++)
		envelope_free(r->envs[i]);
	spool_recover_end(r->rv);
	free(r->envs);
	free(r);
	s->rec = NULL;
}
