/*
 * deliv: accounts in memory (quotas, the reputation guard, pauses), the
 * VERP key and return paths, hard-bounce suppressions and the events they
 * make. Loop thread only, but deliv_supp_add(), which runs on a worker
 * and touches only the store. Contract in deliv.h.
 */
#include "deliv/deliv.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "deliv/deliv_int.h"
#include "store/store_keys.h"
#include "log/log.h"
#include "store/store.h"

#define KEY_FILE           "verp.key"
#define DELIV_ADDR_LOG_MAX 240 /* " to=<...>" with log_q's cut value */

/* ---- events ---- */

/*
 * Every deliverability event goes through here: suppressed, bounced (a
 * later DSN), complained. The log line says it, and events_emit() copies
 * it into the event writer's queue (docs/events.md "For emitters"). A
 * pause and a resume are no event type of SPEC 6: their log lines
 * (account_paused, account_resumed) are their record.
 */
void deliv_event(struct deliv *d, const struct events_event *e)
{
	const char *rcpt = e->recipient, *id = e->message_id;
	const char *detail = e->reason ? e->reason : e->reply;
	char to[DELIV_ADDR_LOG_MAX];

	snprintf(to, sizeof(to), "%s%s%s", rcpt ? " to=<" : "", rcpt ? log_q(rcpt) : "",
	         rcpt ? ">" : "");
	log_info("%s%s%sevent=%s account=%s%s detail=%s", id ? "queue=" : "", id ? id : "",
	         id ? " " : "", event_type_name(e->type), log_q(e->account), to,
	         log_q(detail ? detail : ""));
	if (d->deps.events)
		events_emit(d->deps.events, e);
}

/* ---- accounts ---- */

static int acct_match(const struct htable_node *n, const void *key)
{
	return strcmp(HTABLE_ENTRY(n, struct deliv_acct, hn)->name, key) == 0;
}

static struct deliv_acct *acct_find(struct deliv *d, const char *name)
{
	struct htable_node *n = htable_find(&d->accts, htable_hash_str(name), acct_match, name);

	return n ? HTABLE_ENTRY(n, struct deliv_acct, hn) : NULL;
}

/* The limit of period p: the account's own, or the [quota] default. */
static uint64_t limit_of(const struct deliv *d, const struct deliv_acct *a, int p)
{
	if (a->quota_set[p] != STORE_QUOTA_DEFAULT)
		return (uint64_t)a->quota_set[p];
	return p == DELIV_DAY ? d->conf->quota_day : d->conf->quota_hour;
}

struct deliv_acct *deliv_acct(struct deliv *d, const char *name)
{
	struct deliv_acct *a = acct_find(d, name);

	if (a)
		return a;
	a = xcalloc(1, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%.*s", COUNTER_ACCOUNT_MAX, name);
	a->quota_set[0] = a->quota_set[1] = STORE_QUOTA_DEFAULT;
	for (int p = 0; p < DELIV_PERIODS; p++)
		a->q.limit[p] = limit_of(d, a, p);
	deliv_q_roll(&a->q, clock_now_s());
	htable_add(&d->accts, &a->hn, htable_hash_str(a->name));
	return a;
}

/* The account was resumed (`user resume`): the guard starts afresh, and
 * the mail its pause kept back is due again. */
static void resumed(struct deliv *d, struct deliv_acct *a, int64_t at)
{
	log_info("event=account_resumed account=%s held=%zu", log_q(a->name), a->n_parked);
	a->paused_at = 0;
	a->pause_reason[0] = '\0';
	a->resumed_at = at;
	memset(&a->rep, 0, sizeof(a->rep));
	memset(&a->pend, 0, sizeof(a->pend));
	a->rep_dirty = 0;
	a->rep_reset = 1;
	/* HOLD: with queue-tools' hold on main, this releases what pause_account()
	 * held (sched_steer, op release, by account); until then the messages
	 * deliv_held() kept back are made due again one by one. */
	for (size_t i = 0; i < a->n_parked; i++)
		if (d->deps.release)
			d->deps.release(d->deps.release_arg, a->parked[i]);
	free(a->parked);
	a->parked = NULL;
	a->n_parked = a->cap_parked = 0;
}

void deliv_acct_settings(struct deliv *d, const struct store_account_deliv *s)
{
	struct deliv_acct *a = deliv_acct(d, s->name);

	a->quota_set[0] = s->quota[0];
	a->quota_set[1] = s->quota[1];
	for (int p = 0; p < DELIV_PERIODS; p++)
		a->q.limit[p] = limit_of(d, a, p);
	if (s->paused_at && !a->paused_at) {
		a->paused_at = s->paused_at; /* at start, or paused elsewhere */
		snprintf(a->pause_reason, sizeof(a->pause_reason), "%s", s->paused_reason);
	} else if (!s->paused_at && a->paused_at && !a->pause_pending &&
	           s->resumed_at >= a->paused_at) {
		resumed(d, a, s->resumed_at);
	}
	if (s->resumed_at > a->resumed_at)
		a->resumed_at = s->resumed_at;
}

/* ---- opening and closing ---- */

/* Makes the key file if there is none: 1 made, 0 there already, -1 with
 * *err. */
static int key_make(const char *path, char **err)
{
	unsigned char k[DELIV_VERP_KEY_LEN];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int ok;

	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0) {
		*err = xasprintf("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	randombytes_buf(k, sizeof(k));
	ok = write(fd, k, sizeof(k)) == (ssize_t)sizeof(k) && fsync(fd) == 0;
	sodium_memzero(k, sizeof(k));
	close(fd);
	if (!ok) {
		*err = xasprintf("cannot write %s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 1;
}

/* A key lost with its directory entry would make every return path given
 * out so far a forgery: the entry is made durable. */
static void dir_sync(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* The VERP key: DATA_DIR/verp.key, made the first time; with a cluster
 * database, the cluster's (store_keys.h), seeded with the first node's.
 * The file's key, when it is not the cluster's, stays accepted in the
 * return paths this node gave out before it joined (deliv_verp_rcpt), as
 * do the other nodes' own old keys (store_keys_verify). */
static int key_load(struct deliv *d, char **err)
{
	char *path = xasprintf("%s/%s", d->conf->data_dir, KEY_FILE);
	int fd, rc = -1, made = key_make(path, err);

	if (made > 0)
		dir_sync(d->conf->data_dir);
	if (made >= 0 && (fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if (read(fd, d->own_key, sizeof(d->key)) == (ssize_t)sizeof(d->key)) {
			memcpy(d->key, d->own_key, sizeof(d->key));
			rc = store_shared_key(d->deps.store, "verp", d->own_key, made > 0, d->key,
			                      sizeof(d->key), err);
			d->has_own_key = rc == 2;
			rc = rc < 0 ? -1 : 0;
		} else
			*err = xasprintf("%s: not a key of %d bytes", path, DELIV_VERP_KEY_LEN);
		close(fd);
	} else if (!*err) {
		*err = xasprintf("cannot read %s: %s", path, strerror(errno));
	}
	free(path);
	return rc;
}

struct deliv *deliv_open(const struct deliv_deps *deps, char **err)
{
	struct deliv *d = xcalloc(1, sizeof(*d));

	*err = NULL;
	d->deps = *deps;
	d->conf = deps->conf;
	d->limits.window = d->conf->rep_window;
	d->limits.max_bounce_ppm = d->conf->rep_max_bounce_ppm;
	d->limits.max_complaint_ppm = d->conf->rep_max_complaint_ppm;
	d->limits.min_volume = d->conf->rep_min_volume;
	htable_init(&d->accts);
	if (key_load(d, err) < 0 || deliv_load(d, err) < 0) {
		deliv_close(d);
		return NULL;
	}
	return d;
}

void deliv_start(struct deliv *d)
{
	deliv_sync_start(d);
}

static void acct_free(struct deliv_acct *a)
{
	free(a->parked);
	free(a);
}

void deliv_close(struct deliv *d)
{
	struct htable_iter it;
	struct htable_node *n;

	if (!d)
		return;
	if (d->ev_tick)
		event_free(d->ev_tick);
	deliv_sync_final(d);
	htable_iter_init(&it, &d->accts);
	while ((n = htable_iter_next(&it))) {
		htable_del(&d->accts, n);
		acct_free(HTABLE_ENTRY(n, struct deliv_acct, hn));
	}
	htable_fini(&d->accts);
	for (size_t i = 0; i < d->n_verp; i++) {
		free(d->verp[i].account);
		free(d->verp[i].rcpts);
	}
	free(d->verp);
	sodium_memzero(d->key, sizeof(d->key));
	sodium_memzero(d->own_key, sizeof(d->own_key));
	free(d);
}

/* ---- quotas and pauses ---- */

int deliv_paused(struct deliv *d, const char *account, char *why, size_t cap)
{
	struct deliv_acct *a = acct_find(d, account);

	if (!a || !a->paused_at)
		return 0;
	snprintf(why, cap, "450 4.7.1 account paused: %s",
	         a->pause_reason[0] ? a->pause_reason : "by the reputation guard");
	return 1;
}

int deliv_quota_reserve(struct deliv *d, const char *account, uint64_t n, char *why, size_t cap,
                        int64_t *reset)
{
	struct deliv_acct *a = deliv_acct(d, account);
	enum deliv_period p;

	a->q_dirty |= deliv_q_roll(&a->q, clock_now_s());
	a->q.share = deliv_quota_share(d);
	if (deliv_q_take(&a->q, n, clock_now_s(), &p, reset) == 0)
		return 0;
	deliv_quota_reply(why, cap, account, p, a->q.limit[p], a->q.share, *reset);
	return -1;
}

int deliv_quota_full(struct deliv *d, const char *account, char *why, size_t cap)
{
	struct deliv_acct *a = deliv_acct(d, account);
	enum deliv_period p;
	int64_t reset;

	a->q.share = deliv_quota_share(d);
	if (!deliv_q_full(&a->q, clock_now_s(), &p, &reset))
		return 0;
	if (a->q.share > 1)
		deliv_quota_note_local(d);
	deliv_quota_reply(why, cap, account, p, a->q.limit[p], a->q.share, reset);
	return 1;
}

void deliv_quota_commit(struct deliv *d, const char *account, uint64_t n)
{
	struct deliv_acct *a = deliv_acct(d, account);

	if (!n)
		return;
	deliv_q_commit(&a->q, n, clock_now_s());
	deliv_quota_remote_commit(a, n);
	a->q_dirty = 1;
}

void deliv_quota_release(struct deliv *d, const char *account, uint64_t n)
{
	struct deliv_acct *a = acct_find(d, account);

	if (a) {
		deliv_q_release(&a->q, n);
		deliv_quota_remote_release(d, a, n);
	}
}

/* ---- VERP ---- */

static uint64_t verp_max_age(const struct deliv *d)
{
	return d->conf->queue_lifetime + DELIV_VERP_GRACE;
}

struct other_verp {
	const struct deliv *d;
	const char *addr;
	char *id;
	enum deliv_verp_kind k;
};

/* An address under another node's own key (store_keys_verify). */
static int other_ok(const unsigned char *key, void *arg)
{
	struct other_verp *o = arg;

	o->k = deliv_verp_check(key, o->d->conf->bounces_domain, o->addr, clock_now_s(),
	                        verp_max_age(o->d), o->id);
	return o->k != DELIV_VERP_FORGED;
}

enum deliv_verp_kind deliv_verp_rcpt(struct deliv *d, const char *addr, char id[ID_LEN + 1])
{
	enum deliv_verp_kind k = deliv_verp_check(d->key, d->conf->bounces_domain, addr,
	                                          clock_now_s(), verp_max_age(d), id);
	struct other_verp o = {d, addr, id, DELIV_VERP_FORGED};

	if (k == DELIV_VERP_FORGED && d->has_own_key)
		k = deliv_verp_check(d->own_key, d->conf->bounces_domain, addr, clock_now_s(),
		                     verp_max_age(d), id);
	if (k == DELIV_VERP_FORGED && store_keys_verify("verp", other_ok, &o))
		k = o.k;
	return k;
}

const char *deliv_return_path(struct deliv *d, const char *id, const char *mail_from, char *buf,
                              size_t cap)
{
	char verp[DELIV_VERP_MAX];

	if (!d || !d->conf->bounces_domain || !*mail_from || cap < sizeof(verp))
		return mail_from;
	deliv_verp_make(d->key, id, d->conf->bounces_domain, verp);
	memcpy(buf, verp, sizeof(verp));
	return buf;
}

void deliv_message_queued(struct deliv *d, const char *id, const char *account,
                          const char *const *rcpts, size_t n)
{
	struct deliv_verp_rec *r;
	struct buf b;

	if (!d->conf->bounces_domain)
		return;
	if (d->n_verp >= DELIV_VERP_PENDING_MAX) {
		d->verp_dropped++; /* the database is stuck: said at the next flush */
		return;
	}
	if (d->n_verp == d->cap_verp) {
		d->cap_verp = d->cap_verp ? d->cap_verp * 2 : 64;
		d->verp = xrealloc(d->verp, d->cap_verp * sizeof(*d->verp));
	}
	r = &d->verp[d->n_verp++];
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->account = xstrdup(account);
	r->created = deliv_id_time(id) > 0 ? deliv_id_time(id) : clock_now_s();
	buf_init(&b);
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s%s", i ? "\n" : "", rcpts[i]);
	r->rcpts = b.data ? b.data : xstrdup("");
}

/* ---- outcomes and the guard ---- */

static void pause_account(struct deliv *d, struct deliv_acct *a, enum deliv_rep_verdict v,
                          const struct deliv_rates *r)
{
	a->paused_at = clock_now_s();
	a->pause_pending = 1;
	deliv_rep_reason(a->pause_reason, sizeof(a->pause_reason), v, r, &d->limits);
	log_warn("event=account_paused account=%s volume=%llu hard=%llu "
	         "complained=%llu reason=%s",
	         log_q(a->name), (unsigned long long)r->volume, (unsigned long long)r->hard,
	         (unsigned long long)r->complained, log_q(a->pause_reason));
	/* HOLD: with queue-tools' hold on main, the account's queued mail is
	 * held here on disk (sched_steer, op hold, by account); until then
	 * deliv_held() keeps each of its messages back when it comes up for
	 * delivery. */
}

void deliv_outcome(struct deliv *d, const char *account, enum deliv_outcome o)
{
	struct deliv_acct *a = deliv_acct(d, account);
	int64_t now = clock_now_s();
	struct deliv_rep_slot *sl = deliv_rep_note(&a->rep, d->limits.window, now, o, 1);
	struct deliv_rates r;

	a->rep_dirty |= (uint64_t)1 << (sl - a->rep.slot);
	if (deliv_rep_remote_note(d, a, now, o) || a->paused_at)
		return; /* shared: judged when Redis answers the next push */
	deliv_rep_sum(&a->rep, d->limits.window, now, a->resumed_at, &r);
	deliv_rep_check(d, a, &r);
}

void deliv_rep_check(struct deliv *d, struct deliv_acct *a, const struct deliv_rates *r)
{
	enum deliv_rep_verdict v;

	if (!a->paused_at && (v = deliv_rep_judge(r, &d->limits)) != DELIV_REP_OK)
		pause_account(d, a, v, r);
}

int deliv_held(struct deliv *d, const char *account, const char *id)
{
	struct deliv_acct *a = d ? acct_find(d, account) : NULL;

	if (!a || !a->paused_at)
		return 0;
	/* an item of the same message may come up for another domain */
	if (a->n_parked && strcmp(a->parked[a->n_parked - 1], id) == 0)
		return 1;
	if (a->n_parked == a->cap_parked && a->cap_parked < DELIV_PARKED_MAX) {
		a->cap_parked = a->cap_parked ? a->cap_parked * 2 : 16;
		a->parked = xrealloc(a->parked, a->cap_parked * sizeof(*a->parked));
	}
	if (a->n_parked < a->cap_parked)
		snprintf(a->parked[a->n_parked++], ID_LEN + 1, "%s", id);
	return 1;
}

/* ---- suppressions ---- */

void deliv_supp_add(struct deliv *d, struct deliv_supp *v, size_t n)
{
	struct store_supp_add *a = xcalloc(n ? n : 1, sizeof(*a));
	char *err = NULL;

	for (size_t i = 0; i < n; i++) {
		a[i].account = v[i].account;
		a[i].addr = v[i].addr;
		a[i].reason = v[i].reason;
	}
	if (store_supp_add_many(d->deps.store, a, n, &err) < 0) {
		log_warn("event=suppress_error n=%zu error=%s", n, log_q(err));
		free(err);
		for (size_t i = 0; i < n; i++)
			v[i].added = -1;
	} else {
		for (size_t i = 0; i < n; i++)
			v[i].added = a[i].added;
	}
	free(a);
}

static void count(struct deliv *d, const char *account, const char *addr, const char *event)
{
	const char *at = strrchr(addr, '@');
	char dom[COUNTER_DOMAIN_MAX + 1];

	if (!d->deps.count)
		return;
	snprintf(dom, sizeof(dom), "%s", at && at[1] ? at + 1 : "unknown");
	ascii_lower(dom);
	d->deps.count(d->deps.count_arg, account, dom, event);
}

void deliv_supp_added(struct deliv *d, const struct deliv_supp *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].added == 1)
			deliv_event(d, &(struct events_event){.type = EVENT_SUPPRESSED,
			                                      .account = v[i].account,
			                                      .message_id = v[i].id,
			                                      .recipient = v[i].addr,
			                                      .reason = v[i].reason});
		else if (v[i].added < 0)
			log_warn("%s%s%sevent=suppress_failed account=%s to=<%s>",
			         v[i].id ? "queue=" : "", v[i].id ? v[i].id : "",
			         v[i].id ? " " : "", log_q(v[i].account), log_q(v[i].addr));
	}
}

void deliv_refused_suppressed(struct deliv *d, const char *account, const char *addr,
                              const char *reason)
{
	count(d, account, addr, "suppressed");
	deliv_event(d, &(struct events_event){.type = EVENT_SUPPRESSED,
	                                      .account = account,
	                                      .recipient = addr,
	                                      .reason = reason});
}
