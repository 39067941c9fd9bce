/*
 * dkim_watch: the server's key reloads and rotation rounds (dkim_watch.h).
 *
 * A round, each step a pair (work_submit / its done on the loop):
 *   1. worker: load the keys of every domain that has a pending key;
 *   2. loop:   look up the pending keys' records (dkim_lookup_records);
 *   3. worker: activate what matched (dkim_activate_visible), log each
 *              change, reload the signer;
 *   4. loop:   round_done; start the next round if one was asked for.
 * The reload timer is one worker step: dkim_signer_refresh.
 */
#include "dkim/dkim_watch.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "dkim/dkim.h"
#include "log/log.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

struct dkim_watch {
	struct dkim_watch_deps d;
	struct event *ev_refresh, *ev_check;
	int refreshing;  /* a reload job is in the pool */
	int in_round;    /* a rotation round is running */
	int again;       /* a round was asked for during one */
	int force;       /* the next round's reload reads every key file */
	int round_force; /* this round's: taken on the loop when it starts */
	int stopped;
	struct log_repeat reload_rep; /* reload failures, by the job running (one at a time) */
	/* the round's state */
	struct dkim_key_info *keys;
	size_t n;
	struct dkim_lookup *res;
	size_t activated;
};

/* ---- reloads ------------------------------------------------------------------- */

static void reload(struct dkim_watch *w, int force)
{
	char *err = NULL;
	unsigned long long n;

	if (dkim_signer_refresh(w->d.signer, w->d.store, force, &err) < 0) {
		if (log_repeat_fail(&w->reload_rep, &n))
			log_err("event=dkim_reload_error error=%s repeated=%llu", log_q(err), n);
		free(err);
	} else if (log_repeat_ok(&w->reload_rep, &n)) {
		log_info("event=dkim_reload_ok failures=%llu", n);
	}
}

static void refresh_job(void *arg)
{
	reload(arg, 0);
}

static void refresh_done(void *arg)
{
	struct dkim_watch *w = arg;

	w->refreshing = 0;
}

static void on_refresh_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dkim_watch *w = arg;

	if (w->refreshing || w->in_round || w->stopped)
		return;
	w->refreshing = 1;
	work_submit(w->d.work, refresh_job, refresh_done, w);
}

/* ---- rounds ------------------------------------------------------------------ */

static void round_start(struct dkim_watch *w);

static int is_pending(const struct dkim_key_info *k)
{
	return k->state == DKIM_STATE_PENDING;
}

/* 1 if keys[0..n) hold a pending key of domain. */
static int has_pending(const struct dkim_key_info *keys, size_t n, const char *domain)
{
	for (size_t j = 0; j < n; j++)
		if (is_pending(&keys[j]) && strcmp(keys[j].domain, domain) == 0)
			return 1;
	return 0;
}

/* Step 1: every key of the domains with a pending key. */
static void load_job(void *arg)
{
	struct dkim_watch *w = arg;
	struct dkim_key_info *all = NULL;
	size_t n = 0, k = 0;
	char *err = NULL, *keep;

	if (dkim_keys_load(w->d.store, w->d.data_dir, NULL, &all, &n, &err) < 0) {
		log_err("event=dkim_watch_error error=%s", log_q(err));
		free(err);
	}
	keep = xcalloc(n ? n : 1, 1);
	for (size_t i = 0; i < n; i++)
		keep[i] = (char)has_pending(all, n, all[i].domain);
	for (size_t i = 0; i < n; i++) {
		if (!keep[i])
			dkim_key_info_clear(&all[i]);
		else if (k++ != i)
			all[k - 1] = all[i];
	}
	free(keep);
	w->keys = all;
	w->n = k;
}

static void round_end(struct dkim_watch *w)
{
	dkim_key_info_free(w->keys, w->n);
	free(w->res);
	w->keys = NULL;
	w->res = NULL;
	w->n = 0;
	w->in_round = 0;
	if (w->d.round_done)
		w->d.round_done(w->d.round_arg, w->activated);
	if (w->again && !w->stopped) {
		w->again = 0;
		round_start(w);
	}
}

static void log_change(const struct dkim_key_info *k)
{
	log_info("event=dkim_key_%s domain=%s selector=%s algorithm=%s",
	         k->state == DKIM_STATE_ACTIVE ? "activated" : "retired", k->domain, k->selector,
	         dkim_algo_name(k->algo));
}

/* Step 3: activate what is visible, then reload the keys. */
static void activate_job(void *arg)
{
	struct dkim_watch *w = arg;
	struct dkim_activation *acts = NULL;
	size_t n_acts = 0;
	char *err = NULL;

	if (dkim_activate_visible(w->d.store, w->keys, w->n, w->res, clock_now_s(), &acts, &n_acts,
	                          &err) < 0) {
		log_err("event=dkim_watch_error error=%s", log_q(err));
		free(err);
	}
	for (size_t i = 0; i < n_acts; i++) {
		log_change(&w->keys[acts[i].key]);
		w->activated += acts[i].to == DKIM_STATE_ACTIVE;
	}
	free(acts);
	reload(w, w->round_force);
}

static void activate_done(void *arg)
{
	round_end(arg);
}

/* Step 2 done: the lookups are in. */
static void on_lookups(void *arg, const struct dkim_lookup *res)
{
	struct dkim_watch *w = arg;

	w->res = xcalloc(w->n ? w->n : 1, sizeof *w->res);
	if (w->n)
		memcpy(w->res, res, w->n * sizeof *res);
	for (size_t i = 0; i < w->n; i++)
		if (is_pending(&w->keys[i]) && res[i].status != DKIM_LOOKUP_ANSWERED)
			log_warn("event=dkim_lookup_error domain=%s selector=%s "
			         "error=%s",
			         w->keys[i].domain, w->keys[i].selector, log_q(res[i].why));
	if (w->stopped)
		round_end(w);
	else
		work_submit(w->d.work, activate_job, activate_done, w);
}

static void load_done(void *arg)
{
	struct dkim_watch *w = arg;

	/* Nothing pending: no lookup, nor the deferred call it would schedule,
	 * which a shutdown could leave unrun (and its job unfreed). */
	if (w->stopped)
		round_end(w);
	else if (w->n == 0)
		on_lookups(w, NULL);
	else
		dkim_lookup_records(w->d.base, w->d.dns, w->keys, w->n, is_pending, on_lookups, w);
}

static void round_start(struct dkim_watch *w)
{
	w->in_round = 1;
	w->activated = 0;
	/* on the loop: a SIGHUP during the round forces the next one, and the
	 * worker never writes the flag the loop sets */
	w->round_force = w->force;
	w->force = 0;
	work_submit(w->d.work, load_job, load_done, w);
}

void dkim_watch_run(struct dkim_watch *w, int force)
{
	if (w->stopped)
		return;
	w->force |= force;
	if (w->in_round)
		w->again = 1;
	else
		round_start(w);
}

static void on_check_timer(evutil_socket_t fd, short what, void *arg)
{
	dkim_watch_run(arg, 0);
}

/* ---- lifetime ------------------------------------------------------------------ */

static struct event *every(struct dkim_watch *w, uint64_t ms, event_callback_fn fn)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	struct event *ev;

	if (ms == 0)
		return NULL;
	ev = event_new(w->d.base, -1, EV_PERSIST, fn, w);
	event_add(ev, &tv);
	return ev;
}

struct dkim_watch *dkim_watch_new(const struct dkim_watch_deps *d)
{
	struct dkim_watch *w = xcalloc(1, sizeof *w);

	w->d = *d;
	w->ev_refresh = every(w, d->refresh_ms, on_refresh_timer);
	w->ev_check = every(w, d->check_ms, on_check_timer);
	return w;
}

void dkim_watch_stop(struct dkim_watch *w)
{
	w->stopped = 1;
	if (w->ev_refresh)
		event_del(w->ev_refresh);
	if (w->ev_check)
		event_del(w->ev_check);
}

void dkim_watch_free(struct dkim_watch *w)
{
	if (w == NULL)
		return;
	if (w->ev_refresh)
		event_free(w->ev_refresh);
	if (w->ev_check)
		event_free(w->ev_check);
	dkim_key_info_free(w->keys, w->n);
	free(w->res);
	free(w);
}
