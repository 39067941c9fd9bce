/*
 * deliv_sync: deliverability state between memory and the database.
 *
 * Once a second (and at exit), what changed on the loop goes to a worker
 * as one job: a snapshot with copies of everything it writes (quota
 * counts of the accounts that committed recipients, the reputation slots
 * that changed, new pauses, VERP records), so that the loop goes on
 * changing its state meanwhile. The worker writes it in one transaction
 * (store_deliv_flush), then, when another process changed the database
 * since the last look (SQLite's data_version), reads every account's
 * settings back. The loop then applies them: quotas set by `user set`,
 * resumes by `user resume`. One job at a time; a failed write leaves its
 * accounts dirty and its records queued, for the next second.
 *
 * What a crash costs: the changes of the last second at most (counts of
 * recipients accepted meanwhile, slots, VERP records of messages queued
 * meanwhile, whose bounces then go unmatched and are logged). SIGTERM
 * costs nothing: deliv_close() writes the rest after the work pool has
 * stopped. docs/deliverability.md has the argument.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "deliv/deliv_int.h"
#include "log/log.h"
#include "store/store.h"
#include "store/store_keys.h"
#include "work/work.h"

#define PRUNE_EVERY 60 /* ticks between prunes of old slots and records */

struct sync_job {
	struct deliv *d;
	struct store_deliv_flush f;
	struct store_quota_row *quota;
	struct store_rep_row *rep;
	const char **resets;
	struct store_pause_row *pause;
	struct store_verp_msg *verp;
	struct deliv_verp_rec *recs; /* owned: what verp[] points into */
	char **names;                /* owned: account names the rows point to */
	size_t n_names;
	int failed;
	int reload; /* read the settings back */
	struct store_account_deliv *accts;
	size_t n_accts;
	int64_t version;
};

/* ---- loading at start ---- */

static void on_settings(void *arg, const struct store_account_deliv *a)
{
	deliv_acct_settings(arg, a);
}

static void on_quota_row(void *arg, const struct store_quota_row *r)
{
	struct deliv *d = arg;
	struct deliv_acct *a = deliv_acct(d, r->account);
	int p = r->period ? DELIV_DAY : DELIV_HOUR;

	deliv_q_roll(&a->q, clock_now_s());
	if (a->q.start[p] == r->window_start) /* counts of a past window are no use */
		a->q.used[p] = r->used;
}

static void on_rep_row(void *arg, const struct store_rep_row *r)
{
	struct deliv *d = arg;
	struct deliv_acct *a = deliv_acct(d, r->account);
	struct deliv_rep_slot s;

	s.start = r->slot_start;
	memcpy(s.n, r->n, sizeof(s.n));
	deliv_rep_load(&a->rep, d->limits.window, &s);
}

int deliv_load(struct deliv *d, char **err)
{
	int64_t since =
	    clock_now_s() - (int64_t)d->limits.window - deliv_rep_width(d->limits.window);

	if (store_data_version(d->deps.store, &d->data_version, err) < 0 ||
	    store_account_deliv_list(d->deps.store, on_settings, d, err) < 0 ||
	    store_deliv_adopt(d->deps.store, err) < 0 ||
	    store_quota_list(d->deps.store, 1, on_quota_row, d, err) < 0 ||
	    store_rep_list(d->deps.store, NULL, since, 1, on_rep_row, d, err) < 0)
		return -1;
	d->have_version = 1;
	return 0;
}

/* ---- the snapshot ---- */

static const char *keep_name(struct sync_job *j, const char *name)
{
	j->names = xrealloc(j->names, (j->n_names + 1) * sizeof(*j->names));
	return j->names[j->n_names++] = xstrdup(name);
}

static void snap_quota(struct sync_job *j, struct deliv_acct *a, const char *name)
{
	for (int p = 0; p < DELIV_PERIODS; p++) {
		struct store_quota_row *r = &j->quota[j->f.n_quota++];
		r->account = name;
		r->period = p;
		r->window_start = a->q.start[p];
		r->used = a->q.used[p];
	}
	a->q_dirty = 0;
}

static void snap_rep(struct sync_job *j, struct deliv_acct *a, const char *name)
{
	for (size_t i = 0; i < DELIV_REP_SLOTS; i++) {
		if (!(a->rep_dirty >> i & 1) || !a->rep.slot[i].start)
			continue;
		j->rep = xrealloc(j->rep, (j->f.n_rep + 1) * sizeof(*j->rep));
		j->rep[j->f.n_rep].account = name;
		j->rep[j->f.n_rep].slot_start = a->rep.slot[i].start;
		memcpy(j->rep[j->f.n_rep].n, a->rep.slot[i].n, sizeof(j->rep[0].n));
		j->f.n_rep++;
	}
	a->rep_dirty = 0;
}

static void snap_acct(struct sync_job *j, struct deliv_acct *a)
{
	const char *name;

	if (!a->q_dirty && !a->rep_dirty && !a->rep_reset && !a->pause_pending)
		return;
	name = keep_name(j, a->name);
	if (a->rep_reset) {
		j->resets = xrealloc(j->resets, (j->f.n_rep_reset + 1) * sizeof(*j->resets));
		j->resets[j->f.n_rep_reset++] = name;
		a->rep_reset = 0;
	}
	if (a->q_dirty) {
		j->quota = xrealloc(j->quota, (j->f.n_quota + DELIV_PERIODS) * sizeof(*j->quota));
		snap_quota(j, a, name);
	}
	snap_rep(j, a, name);
	if (a->pause_pending) {
		j->pause = xrealloc(j->pause, (j->f.n_pause + 1) * sizeof(*j->pause));
		j->pause[j->f.n_pause].account = name;
		j->pause[j->f.n_pause].at = a->paused_at;
		j->pause[j->f.n_pause++].reason = keep_name(j, a->pause_reason);
	}
}

/* The VERP records move to the job. */
static void snap_verp(struct sync_job *j, struct deliv *d)
{
	if (d->verp_dropped) {
		log_warn("event=verp_records_dropped n=%llu", (unsigned long long)d->verp_dropped);
		d->verp_dropped = 0;
	}
	if (!d->n_verp)
		return;
	j->recs = d->verp;
	j->f.n_verp = d->n_verp;
	j->verp = xcalloc(d->n_verp, sizeof(*j->verp));
	for (size_t i = 0; i < d->n_verp; i++) {
		j->verp[i].id = j->recs[i].id;
		j->verp[i].account = j->recs[i].account;
		j->verp[i].created = j->recs[i].created;
		j->verp[i].rcpts = j->recs[i].rcpts;
	}
	d->verp = NULL;
	d->n_verp = d->cap_verp = 0;
}

static struct sync_job *snapshot(struct deliv *d)
{
	struct sync_job *j = xcalloc(1, sizeof(*j));
	struct htable_iter it;
	struct htable_node *n;

	j->d = d;
	htable_iter_init(&it, &d->accts);
	while ((n = htable_iter_next(&it)))
		snap_acct(j, HTABLE_ENTRY(n, struct deliv_acct, hn));
	snap_verp(j, d);
	j->f.quota = j->quota;
	j->f.rep = j->rep;
	j->f.rep_reset = j->resets;
	j->f.pause = j->pause;
	j->f.verp = j->verp;
	if (++d->ticks % PRUNE_EVERY == 0) {
		j->f.rep_before =
		    clock_now_s() - (int64_t)d->limits.window - deliv_rep_width(d->limits.window);
		j->f.verp_before =
		    clock_now_s() - (int64_t)(d->conf->queue_lifetime + DELIV_VERP_GRACE);
	}
	return j;
}

static void job_free(struct sync_job *j)
{
	for (size_t i = 0; i < j->f.n_verp; i++) {
		free(j->recs[i].account);
		free(j->recs[i].rcpts);
	}
	for (size_t i = 0; i < j->n_names; i++)
		free(j->names[i]);
	free(j->recs);
	free(j->verp);
	free(j->names);
	free(j->quota);
	free(j->rep);
	free(j->resets);
	free(j->pause);
	free(j->accts);
	free(j);
}

/* ---- the job ---- */

static void on_reload(void *arg, const struct store_account_deliv *a)
{
	struct sync_job *j = arg;

	j->accts = xrealloc(j->accts, (j->n_accts + 1) * sizeof(*j->accts));
	j->accts[j->n_accts++] = *a;
}

/* On the worker: the write, then the settings if the database moved. */
static void sync_run(void *arg)
{
	struct sync_job *j = arg;
	char *err = NULL;
	int64_t v;

	if (store_deliv_flush(j->d->deps.store, &j->f, &err) < 0) {
		log_warn("event=deliv_flush_error error=%s", log_q(err));
		free(err);
		err = NULL;
		j->failed = 1;
	}
	store_keys_refresh(j->d->deps.store); /* a node that joined since (store_keys.h) */
	if (!j->reload)
		return;
	j->reload = 0;
	if (store_data_version(j->d->deps.store, &v, &err) < 0 || v == j->version) {
		free(err);
		return;
	}
	j->n_accts = 0;
	if (store_account_deliv_list(j->d->deps.store, on_reload, j, &err) < 0) {
		log_warn("event=deliv_reload_error error=%s", log_q(err));
		free(err);
		return;
	}
	j->version = v;
	j->reload = 1;
}

/* A failed write: everything it held is written with the next one. */
static void put_back(struct deliv *d, struct sync_job *j)
{
	for (size_t i = 0; i < j->f.n_quota; i++)
		deliv_acct(d, j->quota[i].account)->q_dirty = 1;
	for (size_t i = 0; i < j->f.n_rep_reset; i++)
		deliv_acct(d, j->resets[i])->rep_reset = 1;
	for (size_t i = 0; i < j->f.n_rep; i++) {
		struct deliv_acct *a = deliv_acct(d, j->rep[i].account);
		for (size_t k = 0; k < DELIV_REP_SLOTS; k++)
			if (a->rep.slot[k].start == j->rep[i].slot_start)
				a->rep_dirty |= (uint64_t)1 << k;
	}
	for (size_t i = 0; i < j->f.n_verp; i++) {
		struct deliv_verp_rec *r = &j->recs[i];
		if (d->n_verp == d->cap_verp) {
			d->cap_verp = d->cap_verp ? d->cap_verp * 2 : 64;
			d->verp = xrealloc(d->verp, d->cap_verp * sizeof(*d->verp));
		}
		d->verp[d->n_verp++] = *r; /* the strings move back */
	}
	j->f.n_verp = 0;
}

static void written(struct deliv *d, struct sync_job *j)
{
	for (size_t i = 0; i < j->f.n_pause; i++) {
		struct deliv_acct *a = deliv_acct(d, j->pause[i].account);
		if (a->paused_at == j->pause[i].at)
			a->pause_pending = 0;
	}
}

static void sync_done(void *arg)
{
	struct sync_job *j = arg;
	struct deliv *d = j->d;

	if (j->failed)
		put_back(d, j);
	else
		written(d, j);
	if (j->reload) {
		for (size_t i = 0; i < j->n_accts; i++)
			deliv_acct_settings(d, &j->accts[i]);
		d->data_version = j->version;
	}
	d->syncing = 0;
	job_free(j);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct deliv *d = arg;
	struct sync_job *j;

	deliv_rep_push_all(d);
	deliv_quota_push_owed(d);
	if (d->syncing)
		return; /* the database is slow: this second joins the next */
	j = snapshot(d);
	j->reload = 1;
	j->version = d->data_version;
	d->syncing = 1;
	work_submit(d->deps.work, sync_run, sync_done, j);
}

void deliv_sync_start(struct deliv *d)
{
	d->ev_tick = event_new(d->deps.base, -1, EV_PERSIST, on_tick, d);
	event_add(d->ev_tick, &(struct timeval){1, 0});
}

/* At exit, the pool gone (so no job is out): the rest, on this thread. */
void deliv_sync_final(struct deliv *d)
{
	struct sync_job *j = snapshot(d);

	sync_run(j);
	if (j->failed)
		log_err("event=deliv_flush_lost quota_rows=%zu slots=%zu verp=%zu", j->f.n_quota,
		        j->f.n_rep, j->f.n_verp);
	job_free(j);
}
