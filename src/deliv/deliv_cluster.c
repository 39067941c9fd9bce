/*
 * deliv_cluster: quota reservations that may be asked of Redis
 * (docs/cluster.md, "Redis"). Loop thread only.
 *
 * With [cluster] redis up, a limited account's reservation is one script
 * run in Redis (cluster_quota.c): exact across every node. The grant is
 * then also taken here (without the limit: Redis decided), so that the
 * commit, the counts written to the database and the statistics go on as
 * on one node. Redis configured but unreachable (down, or no answer
 * within the timeout): the node decides alone, against 1/N of each limit
 * (N = [cluster] nodes) and the counts it made itself in the window; the
 * first such decision logs event=quota_fallback, the first shared one
 * after it event=quota_shared, and each is counted in /metrics (the MAIL
 * check's refusals too, deliv.c).
 *
 * What a limited account was granted alone is kept per window (q_owed)
 * and added to its Redis counters once Redis answers again: in the script
 * of this node's next reservation for it (before that is decided), or by
 * the tick's push (within a second). A push or reservation that got no
 * answer keeps its owed counts for the next one (they may be counted
 * twice: the safe side). Counts of a window that ended are dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_quota.h"
#include "conf/conf.h"
#include "deliv/deliv_int.h"
#include "log/log.h"
#include "metrics/metrics.h"

#define WHY_MAX 512

struct qwait {
	struct deliv *d;
	char account[COUNTER_ACCOUNT_MAX + 1];
	uint64_t n;
	int all;
	int64_t start[DELIV_PERIODS];
	uint64_t owed[DELIV_PERIODS]; /* sent with this reservation */
	deliv_quota_cb cb;
	void *arg;
};

/* Records whether this decision was shared or local; logs the changes. */
static void note_mode(struct deliv *d, int local)
{
	if (!d->deps.redis)
		return;
	if (local)
		metrics_inc_l(M_CLUSTER_FALLBACK, ML_QUOTA);
	if (local && !d->q_fallback)
		log_warn("event=quota_fallback reason=redis_unreachable nodes=%llu share=1/%llu",
		         (unsigned long long)d->conf->cluster_nodes,
		         (unsigned long long)d->conf->cluster_nodes);
	else if (!local && d->q_fallback)
		log_info("event=quota_shared");
	d->q_fallback = local;
}

void deliv_quota_note_local(struct deliv *d)
{
	note_mode(d, 1);
}

/* q_owed moved to the windows that hold now (an ended window's dropped). */
static void owed_roll(struct deliv_acct *a, int64_t now)
{
	for (int p = 0; p < DELIV_PERIODS; p++) {
		int64_t w = deliv_window_start((enum deliv_period)p, now);
		if (a->q_owed_start[p] != w) {
			a->q_owed_start[p] = w;
			a->q_owed[p] = 0;
		}
	}
}

/* Takes the owed counts out of a, to be sent (into out). */
static void owed_take(struct deliv_acct *a, int64_t now, uint64_t out[DELIV_PERIODS])
{
	owed_roll(a, now);
	for (int p = 0; p < DELIV_PERIODS; p++) {
		out[p] = a->q_owed[p];
		a->q_owed[p] = 0;
	}
}

/* Owed counts sent for windows start[] that got no answer: kept for the
 * next push, if their windows still hold. */
static void owed_back(struct deliv_acct *a, const int64_t start[DELIV_PERIODS],
                      const uint64_t owed[DELIV_PERIODS])
{
	owed_roll(a, clock_now_s());
	for (int p = 0; p < DELIV_PERIODS; p++)
		if (a->q_owed_start[p] == start[p])
			a->q_owed[p] += owed[p];
}

/* The share of each limit this node may take alone right now. */
uint64_t deliv_quota_share(const struct deliv *d)
{
	if (!d->deps.redis || (!d->redis_gone && cluster_redis_up(d->deps.redis)))
		return 1;
	return d->conf->cluster_nodes;
}

/* Decided here: all of n, or as many as fit (one at a time). */
static uint64_t local_take(struct deliv_acct *a, uint64_t n, int all, char *why, size_t cap,
                           int64_t *reset)
{
	enum deliv_period p;
	uint64_t g = 0;
	int64_t now = clock_now_s();

	if (all) {
		g = deliv_q_take(&a->q, n, now, &p, reset) == 0 ? n : 0;
	} else {
		while (g < n && deliv_q_take(&a->q, 1, now, &p, reset) == 0)
			g++;
	}
	if (g < n)
		deliv_quota_reply(why, cap, a->name, p, a->q.limit[p], a->q.share, *reset);
	return g;
}

/* share: deliv_quota_share(), or N when Redis just failed to answer (the
 * link may not be marked down yet). */
static void answer_local(struct deliv *d, const char *account, uint64_t n, int all, uint64_t share,
                         deliv_quota_cb cb, void *arg)
{
	struct deliv_acct *a = deliv_acct(d, account);
	char why[WHY_MAX] = "";
	int64_t reset = 0;
	uint64_t g;

	a->q.share = share;
	g = local_take(a, n, all, why, sizeof(why), &reset);
	if (g && share > 1 && (a->q.limit[0] || a->q.limit[1])) {
		owed_roll(a, clock_now_s());
		for (int p = 0; p < DELIV_PERIODS; p++)
			a->q_owed[p] += g;
		a->q_fb_reserved += g;
	}
	cb(arg, g, why, reset);
}

static void on_answer(void *arg, int ok, uint64_t g, int over)
{
	struct qwait *w = arg;
	struct deliv_acct *a = deliv_acct(w->d, w->account);
	char why[WHY_MAX] = "";
	int64_t reset = 0;

	note_mode(w->d, !ok);
	owed_back(a, w->start, ok ? (const uint64_t[DELIV_PERIODS]){0, 0} : w->owed);
	if (!ok) {
		answer_local(w->d, w->account, w->n, w->all, w->d->conf->cluster_nodes, w->cb,
		             w->arg);
		free(w);
		return;
	}
	deliv_q_roll(&a->q, clock_now_s());
	a->q.share = 1;
	a->q.reserved += g;
	a->remote_reserved += g;
	memcpy(a->remote_start, w->start, sizeof(a->remote_start));
	if (g < w->n) {
		enum deliv_period p = over == 1 ? DELIV_DAY : DELIV_HOUR;
		reset = deliv_window_end(p, clock_now_s());
		deliv_quota_reply(why, sizeof(why), a->name, p, a->q.limit[p], 1, reset);
	}
	w->cb(w->arg, g, why, reset);
	free(w);
}

void deliv_quota_reserve_async(struct deliv *d, const char *account, uint64_t n, int all,
                               deliv_quota_cb cb, void *arg)
{
	struct deliv_acct *a = deliv_acct(d, account);
	struct cluster_quota_ask q;
	struct qwait *w;
	int64_t now = clock_now_s();

	if (!d->deps.redis || d->redis_gone || (!a->q.limit[0] && !a->q.limit[1]) || !n) {
		answer_local(d, account, n, all, deliv_quota_share(d), cb, arg);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->d = d;
	snprintf(w->account, sizeof(w->account), "%s", a->name);
	w->n = n;
	w->all = all;
	w->cb = cb;
	w->arg = arg;
	memset(&q, 0, sizeof(q));
	q.account = a->name;
	q.n = n;
	q.all = all;
	for (int p = 0; p < DELIV_PERIODS; p++) {
		q.limit[p] = a->q.limit[p];
		q.start[p] = w->start[p] = deliv_window_start((enum deliv_period)p, now);
		q.ttl[p] = deliv_window_end((enum deliv_period)p, now) - now + 60;
	}
	owed_take(a, now, w->owed);
	memcpy(q.owed, w->owed, sizeof(q.owed));
	if (cluster_quota_reserve(d->deps.redis, &q, on_answer, w) < 0)
		on_answer(w, 0, 0, -1);
}

/* What a transaction gives back goes back to Redis first (what it
 * reserved there), the rest was this node's alone. */
void deliv_quota_remote_release(struct deliv *d, struct deliv_acct *a, uint64_t n)
{
	uint64_t r = n < a->remote_reserved ? n : a->remote_reserved;

	a->remote_reserved -= r;
	if (r && d->deps.redis && !d->redis_gone)
		cluster_quota_release(d->deps.redis, a->name, a->remote_start, r);
	n -= r;
	r = n < a->q_fb_reserved ? n : a->q_fb_reserved;
	a->q_fb_reserved -= r; /* granted alone, not sent: not owed */
	for (int p = 0; p < DELIV_PERIODS; p++)
		a->q_owed[p] -= r < a->q_owed[p] ? r : a->q_owed[p];
}

void deliv_quota_remote_commit(struct deliv_acct *a, uint64_t n)
{
	uint64_t r = n < a->remote_reserved ? n : a->remote_reserved;

	a->remote_reserved -= r;
	n -= r;
	a->q_fb_reserved -= n < a->q_fb_reserved ? n : a->q_fb_reserved;
}

struct owed_push {
	struct deliv *d;
	char account[COUNTER_ACCOUNT_MAX + 1];
	int64_t start[DELIV_PERIODS];
	uint64_t owed[DELIV_PERIODS];
};

static void on_pushed(void *arg, int ok, uint64_t g, int over)
{
	struct owed_push *w = arg;
	struct deliv_acct *a = deliv_acct(w->d, w->account);

	(void)g;
	(void)over;
	a->q_pushing = 0;
	if (ok)
		log_info("event=quota_owed_pushed account=%s hour=%llu day=%llu", log_q(a->name),
		         (unsigned long long)w->owed[0], (unsigned long long)w->owed[1]);
	else
		owed_back(a, w->start, w->owed);
	free(w);
}

/* a's owed counts to its Redis counters, alone (no reservation). */
static void push_owed(struct deliv *d, struct deliv_acct *a, int64_t now)
{
	struct cluster_quota_ask q;
	struct owed_push *w = xcalloc(1, sizeof(*w));

	w->d = d;
	snprintf(w->account, sizeof(w->account), "%s", a->name);
	memset(&q, 0, sizeof(q));
	q.account = a->name;
	for (int p = 0; p < DELIV_PERIODS; p++) {
		q.start[p] = w->start[p] = deliv_window_start((enum deliv_period)p, now);
		q.ttl[p] = deliv_window_end((enum deliv_period)p, now) - now + 60;
	}
	owed_take(a, now, w->owed);
	memcpy(q.owed, w->owed, sizeof(q.owed));
	a->q_pushing = 1;
	if (cluster_quota_reserve(d->deps.redis, &q, on_pushed, w) < 0)
		on_pushed(w, 0, 0, -1);
}

void deliv_quota_push_owed(struct deliv *d)
{
	struct htable_iter it;
	struct htable_node *n;
	int64_t now = clock_now_s();

	if (!d->deps.redis || d->redis_gone || !cluster_redis_up(d->deps.redis))
		return;
	htable_iter_init(&it, &d->accts);
	while ((n = htable_iter_next(&it))) {
		struct deliv_acct *a = HTABLE_ENTRY(n, struct deliv_acct, hn);
		owed_roll(a, now);
		if (!a->q_pushing && (a->q_owed[0] || a->q_owed[1]))
			push_owed(d, a, now);
	}
}

void deliv_redis_gone(struct deliv *d)
{
	if (d)
		d->redis_gone = 1;
}
