/*
 * policy_sts: MTA-STS (RFC 8461) for the delivery engine: which policy is
 * in force for a domain now.
 *
 * One entry per domain asked about, in memory (at most STS_CACHE_MAX; idle
 * ones go first), each backed by its row in sts_policies (read once, on the
 * work pool, when the entry is made). A request runs one chain at a time
 * per domain, and every request that arrives meanwhile joins it:
 *
 *   load (once) -> _mta-sts TXT -> [fetch] -> answer every waiter
 *
 *   - TXT with an id equal to the cached policy's, not expired: the cached
 *     policy, no fetch. Past half of its max_age a background fetch
 *     refreshes it (RFC 8461 5.1: refresh before it expires), nobody waits.
 *   - TXT with another id, or nothing cached: fetch, and wait for it. A
 *     good policy replaces the cache (memory and database); a failed fetch
 *     keeps a cached one in force until it expires (RFC 8461 3.3), or
 *     leaves the domain without a policy and says why (for TLS-RPT).
 *   - No TXT (or a malformed one, or a DNS failure): the cached policy
 *     while it lasts, else none.
 *
 * Refresh without mail (RFC 8461 10.2: a domain mailed rarely must not lose
 * its policy and then depend on a fetch an attacker can block): every
 * [relay] mta_sts_refresh_interval, the domains whose policy in the
 * database is past half of its max_age and not expired (at most
 * STS_REFRESH_BATCH, soonest expiry first) go through the same chain as a
 * delivery's request, STS_REFRESH_CONC at a time, a slot held until the
 * fetch the chain started (if any) ends. A refresh is one more waiter of the
 * chain: deliveries that join it wait no longer than they would for theirs
 * (the background fetch keeps nobody waiting). A failed fetch keeps the
 * cached policy until it expires, logged once per run of failures.
 *
 * The fetch: https://mta-sts.DOMAIN[:mta_sts_port]/.well-known/mta-sts.txt
 * through https.c: verified certificate, no redirect, at most 64 KiB in
 * STS_FETCH_TIMEOUT_MS, status 200 only.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "log/log.h"
#include "policy/https.h"
#include "policy/policy_int.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

#define STS_CACHE_MAX        10000
#define STS_FETCH_TIMEOUT_MS 30000
#define STS_REFRESH_BATCH    1000
#define STS_REFRESH_CONC     4

struct sts_wait {
	struct sts_wait *next;
	uint64_t id;
	sts_cb cb;
	void *arg;
};

struct sts_entry {
	struct htable_node hn;
	struct sts *s;
	char *domain;
	struct sts_snap *snap; /* the cached policy, or NULL */
	int64_t fetched_at, expires_at;
	int loaded, busy; /* the DB row was read; a chain is running */
	int background;   /* the fetch in flight answers nobody */
	int refreshing;   /* a refresh slot is this entry's (until its fetch ends) */
	int hold;         /* the slot is held by the fetch in flight */
	int fail_logged;  /* a failure that kept the cached policy was logged */
	uint64_t txt_id, fetch_id;
	char want_id[STS_ID_MAX + 1];
	struct sts_wait *waiters;
	struct sts_view result; /* what the chain found, for the waiters */
};

struct sts {
	struct policy *p;
	struct htable entries;
	uint64_t next_id;
	/* background refresh: the domains due, the next to start, slots used */
	char **due;
	size_t n_due, next_due, running;
	int listing;
	struct event *ev_tick, *ev_pump;
};

static void chain_txt(struct sts_entry *e);
static void fetch_start(struct sts_entry *e, int background);
static void refresh_end(struct sts_entry *e);

void sts_snap_unref(struct sts_snap *snap)
{
	if (!snap || --snap->refs > 0)
		return;
	sts_policy_clear(&snap->pol);
	free(snap->text);
	free(snap);
}

/* A snapshot of a policy body already known to parse; NULL if it does not. */
static struct sts_snap *snap_new(const char *text, size_t n, const char *id, const char **why)
{
	struct sts_snap *snap = xcalloc(1, sizeof(*snap));

	if (sts_policy_parse(text, n, &snap->pol, why) < 0) {
		free(snap);
		return NULL;
	}
	snap->refs = 1;
	snap->text = xstrndup(text, n);
	snprintf(snap->id, sizeof(snap->id), "%s", id);
	return snap;
}

/* ---------- entries ---------- */

static int entry_match(const struct htable_node *n, const void *key)
{
	return strcmp(HTABLE_ENTRY(n, struct sts_entry, hn)->domain, key) == 0;
}

static int entry_idle(const struct sts_entry *e)
{
	return !e->busy && !e->fetch_id && !e->waiters && !e->refreshing;
}

static void entry_free(struct sts *s, struct sts_entry *e)
{
	htable_del(&s->entries, &e->hn);
	sts_snap_unref(e->snap);
	free(e->domain);
	free(e);
}

/* Room for one more: an idle entry goes (its policy stays in the DB). */
static void entries_trim(struct sts *s)
{
	struct htable_iter it;
	struct htable_node *n;

	if (htable_count(&s->entries) < STS_CACHE_MAX)
		return;
	htable_iter_init(&it, &s->entries);
	while ((n = htable_iter_next(&it))) {
		struct sts_entry *e = HTABLE_ENTRY(n, struct sts_entry, hn);
		if (entry_idle(e)) {
			entry_free(s, e);
			return;
		}
	}
}

static struct sts_entry *entry_get(struct sts *s, const char *domain)
{
	uint64_t h = htable_hash_str(domain);
	struct htable_node *n = htable_find(&s->entries, h, entry_match, domain);
	struct sts_entry *e;

	if (n)
		return HTABLE_ENTRY(n, struct sts_entry, hn);
	entries_trim(s);
	e = xcalloc(1, sizeof(*e));
	e->s = s;
	e->domain = xstrdup(domain);
	htable_add(&s->entries, &e->hn, h);
	return e;
}

static int snap_fresh(const struct sts_entry *e)
{
	return e->snap && clock_now_s() < e->expires_at;
}

/* The chain ends: every waiter hears the result, in the order they asked. */
static void answer(struct sts_entry *e)
{
	struct sts_wait *w = e->waiters, *next;
	struct sts_view v = e->result;

	if (!v.snap && !v.fetch_error && snap_fresh(e))
		v.snap = e->snap;
	e->waiters = NULL;
	e->busy = 0;
	if (v.snap)
		v.snap->refs++; /* alive through the callbacks, whatever they do */
	for (; w; w = next) {
		next = w->next;
		w->cb(w->arg, &v);
		free(w);
	}
	sts_snap_unref(v.snap);
	memset(&e->result, 0, sizeof(e->result));
}

/* ---------- the database row ---------- */

struct load_job {
	struct sts_entry *e;
	struct store_sts row;
	int found;
};

static void load_run(void *arg)
{
	struct load_job *j = arg;
	char *err = NULL;

	j->found = store_sts_get(j->e->s->p->deps.store, j->e->domain, &j->row, &err);
	if (j->found < 0) {
		log_warn("event=mta_sts_error domain=%s error=%s", j->e->domain, log_q(err));
		free(err);
	}
}

static void load_done(void *arg)
{
	struct load_job *j = arg;
	struct sts_entry *e = j->e;
	const char *why = NULL;

	e->loaded = 1;
	if (j->found > 0 && !e->snap && clock_now_s() < j->row.expires_at) {
		e->snap = snap_new(j->row.policy, strlen(j->row.policy), j->row.id, &why);
		e->fetched_at = j->row.fetched_at;
		e->expires_at = j->row.expires_at;
	}
	store_sts_clear(&j->row);
	free(j);
	if (e->s->p->stopped) {
		answer(e);
		return;
	}
	chain_txt(e);
}

struct save_job {
	struct policy *p;
	struct store_sts row;
};

static void save_run(void *arg)
{
	struct save_job *j = arg;
	char *err = NULL;

	if (store_sts_put(j->p->deps.store, &j->row, &err) < 0) {
		log_warn("event=mta_sts_error domain=%s error=%s", j->row.domain, log_q(err));
		free(err);
	}
}

static void save_done(void *arg)
{
	struct save_job *j = arg;

	store_sts_clear(&j->row);
	free(j);
}

static void save(struct sts_entry *e)
{
	struct save_job *j = xcalloc(1, sizeof(*j));

	j->p = e->s->p;
	j->row.domain = xstrdup(e->domain);
	j->row.id = xstrdup(e->snap->id);
	j->row.mode = xstrdup(sts_mode_name(e->snap->pol.mode));
	j->row.policy = xstrdup(e->snap->text);
	j->row.max_age = e->snap->pol.max_age;
	j->row.fetched_at = e->fetched_at;
	j->row.expires_at = e->expires_at;
	work_submit(j->p->deps.work, save_run, save_done, j);
}

/* ---------- the fetch ---------- */

static void fetch_failed(struct sts_entry *e, enum tlsrpt_result r, const char *why)
{
	if (!snap_fresh(e) || !e->fail_logged)
		log_warn("event=mta_sts_fetch_failed domain=%s result=%s reason=%s%s", e->domain,
		         tlsrpt_result_name(r), log_q(why),
		         snap_fresh(e) ? " action=keep_cached" : "");
	e->fail_logged = snap_fresh(e); /* the next failures say nothing new */
	if (!snap_fresh(e)) {
		e->result.fetch_error = r;
		e->result.why = why;
	}
}

static void fetch_ok(struct sts_entry *e, const struct https_result *r)
{
	const char *why = NULL;
	struct sts_snap *snap = snap_new(r->body, r->len, e->want_id, &why);

	if (!snap) {
		fetch_failed(e, TLSRPT_STS_POLICY_INVALID, why);
		return;
	}
	sts_snap_unref(e->snap);
	e->snap = snap;
	e->fail_logged = 0;
	e->fetched_at = clock_now_s();
	e->expires_at = e->fetched_at + snap->pol.max_age;
	log_info("event=mta_sts_policy domain=%s id=%s mode=%s max_age=%u mx=%zu", e->domain,
	         snap->id, sts_mode_name(snap->pol.mode), (unsigned)snap->pol.max_age,
	         snap->pol.n_mx);
	save(e);
}

static void on_fetch(void *arg, const struct https_result *r)
{
	struct sts_entry *e = arg;
	char why[160];

	e->fetch_id = 0;
	if (e->hold) {
		e->hold = 0;
		refresh_end(e);
	}
	if (r->ok && r->status == 200) {
		fetch_ok(e, r);
	} else if (r->ok) {
		snprintf(why, sizeof(why), "HTTP status %ld", r->status);
		fetch_failed(e, TLSRPT_STS_POLICY_FETCH_ERROR, why);
	} else {
		fetch_failed(
		    e, r->cert_failed ? TLSRPT_STS_WEBPKI_INVALID : TLSRPT_STS_POLICY_FETCH_ERROR,
		    r->error);
	}
	if (e->background) {
		e->background = 0;
		memset(&e->result, 0, sizeof(e->result)); /* nobody waited for it */
		return;
	}
	answer(e);
}

static void fetch_start(struct sts_entry *e, int background)
{
	const struct conf *c = e->s->p->conf;
	struct https_req req;
	char *url;

	e->background = background;
	if (e->fetch_id)
		return; /* one in flight: its result will do */
	url = c->mta_sts_port == 443
	          ? xasprintf("https://mta-sts.%s/.well-known/mta-sts.txt", e->domain)
	          : xasprintf("https://mta-sts.%s:%u/.well-known/mta-sts.txt", e->domain,
	                      (unsigned)c->mta_sts_port);
	memset(&req, 0, sizeof(req));
	req.url = url;
	req.max_bytes = STS_POLICY_MAX;
	req.timeout_ms = STS_FETCH_TIMEOUT_MS;
	e->fetch_id = https_start(e->s->p->https, &req, on_fetch, e);
	free(url);
}

/* ---------- the TXT record ---------- */

static void on_txt(void *arg, const struct dns_txt *t)
{
	struct sts_entry *e = arg;
	char id[STS_ID_MAX + 1];
	int have =
	    t->status == DNS_OK && sts_txt_pick((const char *const *)t->records, t->n, id) == 1;

	e->txt_id = 0;
	if (!have || e->s->p->stopped) {
		answer(e); /* no TXT: the cached policy while it lasts */
		return;
	}
	snprintf(e->want_id, sizeof(e->want_id), "%s", id);
	if (snap_fresh(e) && strcmp(e->snap->id, id) == 0) {
		if (clock_now_s() >= e->fetched_at + (e->expires_at - e->fetched_at) / 2)
			fetch_start(e, 1);
		answer(e);
		return;
	}
	/* a new policy, or none cached: the first delivery waits for it */
	fetch_start(e, 0);
}

static void chain_txt(struct sts_entry *e)
{
	char *name = xasprintf("_mta-sts.%s", e->domain);

	e->txt_id = dns_query_txt(e->s->p->deps.dns, name, on_txt, e);
	free(name);
	if (!e->txt_id)
		answer(e);
}

/* ---------- background refresh ---------- */

static void refresh_end(struct sts_entry *e)
{
	e->refreshing = 0;
	e->s->running--;
	event_active(e->s->ev_pump, EV_TIMEOUT, 0); /* not from inside a chain */
}

/* The chain answered: the slot is free, or held until its fetch ends. */
static void on_refreshed(void *arg, const struct sts_view *v)
{
	struct sts_entry *e = arg;

	(void)v;
	if (e->fetch_id)
		e->hold = 1;
	else
		refresh_end(e);
}

static void due_clear(struct sts *s)
{
	store_strv_free(s->due, s->n_due);
	s->due = NULL;
	s->n_due = s->next_due = 0;
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
	struct sts *s = arg;

	while (!s->p->stopped && s->running < STS_REFRESH_CONC && s->next_due < s->n_due) {
		struct sts_entry *e = entry_get(s, s->due[s->next_due++]);
		if (e->refreshing)
			continue;
		e->refreshing = 1;
		s->running++;
		sts_get(s, e->domain, on_refreshed, e);
	}
	if (s->next_due == s->n_due)
		due_clear(s);
}

struct due_job {
	struct sts *s;
	char **domains;
	size_t n;
};

static void due_run(void *arg)
{
	struct due_job *j = arg;
	char *err = NULL;

	if (store_sts_due(j->s->p->deps.store, clock_now_s(), STS_REFRESH_BATCH, &j->domains, &j->n,
	                  &err) < 0) {
		log_warn("event=mta_sts_error error=%s", log_q(err));
		free(err);
	}
}

static void due_done(void *arg)
{
	struct due_job *j = arg;
	struct sts *s = j->s;

	s->listing = 0;
	s->due = j->domains;
	s->n_due = j->n;
	free(j);
	event_active(s->ev_pump, EV_TIMEOUT, 0);
}

/* The previous round is over: list the policies due now. */
static void on_refresh_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sts *s = arg;
	struct due_job *j;

	if (s->p->stopped || s->listing || s->due)
		return;
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	s->listing = 1;
	work_submit(s->p->deps.work, due_run, due_done, j);
}

/* ---------- public ---------- */

uint64_t sts_get(struct sts *s, const char *domain, sts_cb cb, void *arg)
{
	struct sts_entry *e = entry_get(s, domain);
	struct sts_wait *w = xcalloc(1, sizeof(*w)), **tail = &e->waiters;

	w->id = s->next_id++;
	w->cb = cb;
	w->arg = arg;
	while (*tail)
		tail = &(*tail)->next;
	*tail = w;
	if (e->busy)
		return w->id;
	e->busy = 1;
	if (!e->loaded) {
		struct load_job *j = xcalloc(1, sizeof(*j));
		j->e = e;
		work_submit(s->p->deps.work, load_run, load_done, j);
	} else {
		chain_txt(e);
	}
	return w->id;
}

void sts_cancel(struct sts *s, uint64_t id)
{
	struct htable_iter it;
	struct htable_node *n;

	htable_iter_init(&it, &s->entries);
	while ((n = htable_iter_next(&it))) {
		struct sts_entry *e = HTABLE_ENTRY(n, struct sts_entry, hn);
		for (struct sts_wait **pp = &e->waiters; *pp; pp = &(*pp)->next) {
			if ((*pp)->id == id) {
				struct sts_wait *w = *pp;
				*pp = w->next;
				free(w);
				return;
			}
		}
	}
}

struct sts *sts_new(struct policy *p)
{
	struct sts *s = xcalloc(1, sizeof(*s));
	uint64_t iv;

	s->p = p;
	s->next_id = 1;
	htable_init(&s->entries);
	s->ev_pump = event_new(p->deps.base, -1, 0, on_pump, s);
	s->ev_tick = event_new(p->deps.base, -1, EV_PERSIST, on_refresh_tick, s);
	iv = p->conf->mta_sts_refresh_interval ? p->conf->mta_sts_refresh_interval : 3600;
	event_add(s->ev_tick, &(struct timeval){(time_t)iv, 0});
	return s;
}

/* After the work pool is gone: no job can come back. */
void sts_free(struct sts *s)
{
	struct htable_iter it;
	struct htable_node *n;

	if (!s)
		return;
	event_free(s->ev_tick);
	event_free(s->ev_pump);
	due_clear(s);
	htable_iter_init(&it, &s->entries);
	while ((n = htable_iter_next(&it))) {
		struct sts_entry *e = HTABLE_ENTRY(n, struct sts_entry, hn);
		struct sts_wait *w;
		while ((w = e->waiters)) {
			e->waiters = w->next;
			free(w);
		}
		if (e->txt_id)
			dns_cancel(s->p->deps.dns, e->txt_id);
		if (e->fetch_id)
			https_cancel(s->p->https, e->fetch_id);
		entry_free(s, e);
	}
	htable_fini(&s->entries);
	free(s);
}
