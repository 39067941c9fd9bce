/*
 * deliv_rep_cluster: the reputation guard's windows shared in Redis
 * (docs/cluster.md, "Redis"). Loop thread only.
 *
 * With [cluster] redis, each outcome is noted in the account's local
 * window (its record in the database, and the fallback) and in a pending
 * copy. Once a tick (a second) each account with pending counts pushes
 * them in one script (cluster_rep.c) and gets the sums over every node's
 * counts back; an account with none, but with shared volume seen in the
 * window, only reads the sums, every REP_READ_EVERY_S (so that Redis's
 * load grows with the outcomes, not with accounts x nodes every second).
 * The sums are judged against the thresholds. So a node pauses an account
 * on the cluster's rates within a second or two of the outcome that passed
 * the threshold on it, and within REP_READ_EVERY_S + 1 s of one elsewhere. Redis down or not
 * answering: outcomes are judged at once on the node's own window, as without Redis; the first such
 * judgement logs event=reputation_fallback, the first shared one after it event=reputation_shared,
 * each is counted in /metrics. Counts noted while Redis was down are pushed when it is back; those
 * of a push that got no answer are not pushed again (they may be in Redis).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_rep.h"
#include "conf/conf.h"
#include "deliv/deliv_int.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define REP_READ_EVERY_S 5

_Static_assert(CLUSTER_REP_OUTCOMES == DELIV_OUTCOMES, "one count per outcome");

static int shared(const struct deliv *d)
{
	return d->deps.redis && !d->redis_gone;
}

/* Records whether this judgement was shared or local; logs the changes. */
static void note_mode(struct deliv *d, int local)
{
	if (local)
		metrics_inc_l(M_CLUSTER_FALLBACK, ML_REPUTATION);
	if (local && !d->rep_fallback)
		log_warn("event=reputation_fallback reason=redis_unreachable");
	else if (!local && d->rep_fallback)
		log_info("event=reputation_shared");
	d->rep_fallback = local;
}

int deliv_rep_remote_note(struct deliv *d, struct deliv_acct *a, int64_t now, enum deliv_outcome o)
{
	if (!shared(d))
		return 0;
	deliv_rep_note(&a->pend, d->limits.window, now, o, 1);
	if (cluster_redis_up(d->deps.redis))
		return 1;
	note_mode(d, 1);
	return 0;
}

struct push {
	struct deliv *d;
	char account[COUNTER_ACCOUNT_MAX + 1];
	int64_t since;
};

static void on_sums(void *arg, int ok, uint64_t volume, uint64_t hard, uint64_t complained)
{
	struct push *p = arg;
	struct deliv *d = p->d;
	struct deliv_acct *a = deliv_acct(d, p->account);
	int64_t now = clock_now_s();
	struct deliv_rates r = {volume, hard, complained};

	a->rep_asking = 0;
	if (d->redis_gone) { /* shutdown: nothing more to judge */
		free(p);
		return;
	}
	note_mode(d, !ok);
	if (!ok)
		deliv_rep_sum(&a->rep, d->limits.window, now, a->resumed_at, &r);
	else if (volume)
		a->rep_seen = now;
	if (p->since == a->resumed_at) /* else resumed meanwhile: judged at the next push */
		deliv_rep_check(d, a, &r);
	free(p);
}

/* Takes a's pending slots inside the window into out (emptied in a): how
 * many. Older ones are dropped. */
static size_t take_pending(struct deliv_acct *a, int64_t first, struct cluster_rep_delta *out)
{
	size_t n = 0;

	for (size_t i = 0; i < DELIV_REP_SLOTS && n < CLUSTER_REP_PUSH_MAX; i++) {
		struct deliv_rep_slot *sl = &a->pend.slot[i];
		if (!sl->start)
			continue;
		if (sl->start >= first) {
			out[n].start = sl->start;
			memcpy(out[n++].n, sl->n, sizeof(sl->n));
		}
		memset(sl, 0, sizeof(*sl));
	}
	return n;
}

static void push_one(struct deliv *d, struct deliv_acct *a, int64_t now)
{
	struct cluster_rep_delta dl[CLUSTER_REP_PUSH_MAX];
	int64_t width = deliv_rep_width(d->limits.window);
	struct cluster_rep_push q = {.account = a->name,
	                             .window = d->limits.window,
	                             .width = width,
	                             .first =
	                                 now - now % width - (int64_t)(DELIV_REP_SLOTS - 1) * width,
	                             .now = now,
	                             .since = a->resumed_at,
	                             .d = dl};
	struct push *p;

	q.n = take_pending(a, q.first, dl);
	if (!q.n &&
	    (a->paused_at || !a->rep_seen || now - a->rep_seen >= (int64_t)d->limits.window))
		return; /* nothing new here, nothing shared to watch */
	if (!q.n && now - a->rep_read < REP_READ_EVERY_S)
		return; /* only reading: every few seconds, not every tick per account */
	if (!q.n)
		a->rep_read = now;
	p = xcalloc(1, sizeof(*p));
	p->d = d;
	snprintf(p->account, sizeof(p->account), "%s", a->name);
	p->since = a->resumed_at;
	a->rep_asking = 1;
	if (cluster_rep_push(d->deps.redis, &q, on_sums, p) < 0)
		on_sums(p, 0, 0, 0, 0);
}

void deliv_rep_push_all(struct deliv *d)
{
	struct htable_iter it;
	struct htable_node *n;
	int64_t now = clock_now_s();

	if (!shared(d) || !cluster_redis_up(d->deps.redis))
		return;
	htable_iter_init(&it, &d->accts);
	while ((n = htable_iter_next(&it))) {
		struct deliv_acct *a = HTABLE_ENTRY(n, struct deliv_acct, hn);
		if (!a->rep_asking)
			push_one(d, a, now);
	}
}
