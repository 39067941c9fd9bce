/*
 * sched: the delivery scheduler. See sched.h for the shape of the data.
 *
 * An item (struct qitem) is the open recipients of one message for one
 * destination, at most MAX_RCPTS_PER_TXN of them: one SMTP transaction.
 * An item is in exactly one place: its destination's ready queue, the
 * deferred heap, a connection (active), or finishing (its results being
 * written). Every transition goes through item_set().
 *
 * Writing results: bounces first become DSNs (committed through the
 * spool), then the recipients' new states are written to the spool file
 * (or the file is deleted when nothing is left open), on the work pool,
 * because both fsync. Only then is the item forgotten. A crash anywhere in
 * between re-sends at worst: delivery is at least once.
 */
#include "sched/sched.h"

#include <arpa/inet.h>
#include <errno.h>
#include <assert.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "dsn/dsn.h"
#include "log/log.h"
#include "sched/sched_policy.h"
#include "smtpc/smtpc_conn.h"
#include "spool/spool.h"
#include "util/util.h"
#include "work/work.h"

#define MAX_RCPTS_PER_TXN 100  /* RFC 5321 4.5.3.1.8: servers take at least 100 */
#define IDLE_KEEP_MS      2000 /* an idle connection waits this long for more work */
#define FINISH_MAX                                                                                 \
	256 /* items whose results are being written at once: bounds                               \
	       the envelopes in memory when a dead destination                                     \
	       defers its whole ready queue */

enum where { IT_NONE, IT_READY, IT_DEFERRED, IT_ACTIVE, IT_FINISHING };

struct qmsg {
	char id[ID_LEN + 1];
	int64_t created;
	uint32_t n_open;
	uint32_t n_items;
	int forgotten;
	struct qmsg *hnext;
};

struct dest;
struct dconn;

/* What an item needs only during an attempt: loaded at its start. */
struct active {
	struct envelope *env;
	int fd;
	uint64_t body_off, body_len;
	struct smtpc_job_rcpt *jr;
};

/* Kept small: one per queued (message, destination), and a queue may
 * hold a million. A single recipient's index lives inline (one). */
struct qitem {
	struct qmsg *m;
	struct dest *d;
	uint32_t *idx; /* &one, or an array of cap */
	uint32_t n, cap;
	uint32_t one;
	uint32_t attempts;
	enum where where;
	int64_t due;
	size_t heap_i;
	TAILQ_ENTRY(qitem) link;
	struct active *act; /* NULL unless active */
};
TAILQ_HEAD(item_list, qitem);

struct dconn {
	struct dest *d;
	struct smtpc_conn *c;
	struct qitem *item;
	int idle;
	int64_t idle_since_ms;
	TAILQ_ENTRY(dconn) link;
};

struct dest {
	struct sched *s;
	char *name;
	const struct conf_domain *lim;
	struct sched_shape shape;
	struct item_list ready;
	size_t n_ready;
	TAILQ_HEAD(, dconn) conns;
	unsigned n_conns;   /* READY or busy */
	unsigned n_opening; /* connecting, route being resolved included */
	int resolving;
	double tokens;
	int64_t tokens_ms;
	struct event *ev_pump;
	struct dest *hnext;
	/* A dead destination defers its ready queue in bounded steps. */
	int failing;
	struct smtpc_verdict fail_v;
	TAILQ_ENTRY(dest) fail_link;
};

struct sched {
	struct sched_deps deps;
	const struct conf *conf;
	const struct conf *domains_conf; /* [domain.*] limits: replaced on SIGHUP */
	struct qmsg **mtab;
	size_t mtab_size, n_msgs;
	struct dest **dtab;
	size_t dtab_size;
	struct qitem **heap;
	size_t heap_n, heap_cap;
	struct event *ev_heap;
	size_t n_active, n_finishing;
	TAILQ_HEAD(, dest) failing;
	int draining;
	int drained_sent; /* the drained event is on its way */
	int stopped;      /* shutting down: results are dropped, nothing new starts */
	void (*drained)(void *arg);
	void *drained_arg;
	struct event *ev_drained;
};

static void dest_pump(struct dest *d);
static void dest_pump_later(struct dest *d, int64_t delay_ms);
static void check_drained(struct sched *s);
static void failing_continue(struct sched *s);

static int64_t now_s(void)
{
	return (int64_t)(clock_now_ms() / 1000);
}

static int64_t now_ms(void)
{
	return (int64_t)clock_mono_ms();
}

static size_t hash_str(const char *p, size_t buckets)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h & (buckets - 1));
}

/* ---------- messages ---------- */

static struct qmsg *msg_find(struct sched *s, const char *id)
{
	struct qmsg *m;

	for (m = s->mtab[hash_str(id, s->mtab_size)]; m; m = m->hnext)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static void msg_table_grow(struct sched *s)
{
	size_t i, size = s->mtab_size * 2;
	struct qmsg **t = xcalloc(size, sizeof(*t)), *m, *next;

	for (i = 0; i < s->mtab_size; i++)
		for (m = s->mtab[i]; m; m = next) {
			next = m->hnext;
			m->hnext = t[hash_str(m->id, size)];
			t[hash_str(m->id, size)] = m;
		}
	free(s->mtab);
	s->mtab = t;
	s->mtab_size = size;
}

static struct qmsg *msg_add(struct sched *s, const struct envelope *env)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));
	size_t b;

	if (s->n_msgs >= s->mtab_size)
		msg_table_grow(s);
	memcpy(m->id, env->id, sizeof(m->id));
	m->created = env->created;
	b = hash_str(m->id, s->mtab_size);
	m->hnext = s->mtab[b];
	s->mtab[b] = m;
	s->n_msgs++;
	return m;
}

static void msg_remove(struct sched *s, struct qmsg *m)
{
	struct qmsg **pp = &s->mtab[hash_str(m->id, s->mtab_size)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			s->n_msgs--;
			free(m);
			return;
		}
}

/* ---------- destinations ---------- */

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
	dest_pump(arg);
}

static struct dest *dest_get(struct sched *s, const char *name)
{
	size_t b = hash_str(name, s->dtab_size);
	struct dest *d;

	for (d = s->dtab[b]; d; d = d->hnext)
		if (strcmp(d->name, name) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->s = s;
	d->name = xstrdup(name);
	d->lim = conf_domain_for(s->domains_conf, name);
	sched_shape_init(&d->shape, (unsigned)d->lim->max_connections);
	TAILQ_INIT(&d->ready);
	TAILQ_INIT(&d->conns);
	d->tokens = 1;
	d->tokens_ms = now_ms();
	d->ev_pump = evtimer_new(s->deps.base, on_pump, d);
	d->hnext = s->dtab[b];
	s->dtab[b] = d;
	return d;
}

/* The destination key of a recipient address: its domain, lower case. */
static void dest_key(const struct sched *s, const char *addr, char *out, size_t cap)
{
	const char *at = strrchr(addr, '@');

	if (s->conf->smarthost) {
		/* One destination, named after the host: its [domain.HOST]
		 * limits apply, and logs name the real next hop. */
		snprintf(out, cap, "%s", s->conf->smarthost_at.host);
		return;
	}
	snprintf(out, cap, "%s", at ? at + 1 : addr);
	ascii_lower(out);
	if (*out && out[strlen(out) - 1] == '.')
		out[strlen(out) - 1] = '\0';
}

/* ---------- the deferred heap ---------- */

static void heap_swap(struct sched *s, size_t a, size_t b)
{
	struct qitem *t = s->heap[a];

	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap_i = a;
	s->heap[b]->heap_i = b;
}

static void heap_up(struct sched *s, size_t i)
{
	while (i > 0 && s->heap[(i - 1) / 2]->due > s->heap[i]->due) {
		heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct sched *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->heap_n && s->heap[l]->due < s->heap[m]->due)
			m = l;
		if (r < s->heap_n && s->heap[r]->due < s->heap[m]->due)
			m = r;
		if (m == i)
			return;
		heap_swap(s, i, m);
		i = m;
	}
}

static void heap_arm(struct sched *s)
{
	struct timeval tv = {0, 0};
	int64_t wait;

	event_del(s->ev_heap);
	if (s->heap_n == 0)
		return;
	wait = s->heap[0]->due - now_s();
	tv.tv_sec = wait > 0 ? (time_t)wait : 0;
	evtimer_add(s->ev_heap, &tv);
}

static void heap_push(struct sched *s, struct qitem *it)
{
	if (s->heap_n == s->heap_cap) {
		s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
		s->heap = xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
	}
	it->heap_i = s->heap_n;
	s->heap[s->heap_n++] = it;
	heap_up(s, it->heap_i);
	if (it->heap_i == 0)
		heap_arm(s);
}

static void heap_remove(struct sched *s, struct qitem *it)
{
	size_t i = it->heap_i;

	s->heap_n--;
	if (i != s->heap_n) {
		heap_swap(s, i, s->heap_n);
		heap_up(s, i);
		heap_down(s, s->heap[i]->heap_i == i ? i : s->heap[i]->heap_i);
		heap_down(s, i);
	}
	if (i == 0)
		heap_arm(s);
}

/* ---------- items ---------- */

/* Moves an item between places; the only function that does. */
static void item_set(struct sched *s, struct qitem *it, enum where to)
{
	switch (it->where) {
	case IT_READY:
		TAILQ_REMOVE(&it->d->ready, it, link);
		it->d->n_ready--;
		break;
	case IT_DEFERRED:
		heap_remove(s, it);
		break;
	case IT_ACTIVE:
		s->n_active--;
		break;
	case IT_FINISHING:
		s->n_finishing--;
		break;
	case IT_NONE:
		break;
	}
	it->where = to;
	switch (to) {
	case IT_READY:
		TAILQ_INSERT_TAIL(&it->d->ready, it, link);
		it->d->n_ready++;
		dest_pump_later(it->d, 0);
		break;
	case IT_DEFERRED:
		heap_push(s, it);
		break;
	case IT_ACTIVE:
		s->n_active++;
		break;
	case IT_FINISHING:
		s->n_finishing++;
		break;
	case IT_NONE:
		break;
	}
}

static struct qitem *item_new(struct qmsg *m, struct dest *d)
{
	struct qitem *it = xcalloc(1, sizeof(*it));

	it->m = m;
	it->d = d;
	it->idx = &it->one;
	it->cap = 1;
	m->n_items++;
	return it;
}

static void item_add_rcpt(struct qitem *it, uint32_t k)
{
	if (it->n == it->cap) {
		uint32_t *more = xmalloc(2 * it->cap * sizeof(*more));
		memcpy(more, it->idx, it->n * sizeof(*more));
		if (it->idx != &it->one)
			free(it->idx);
		it->idx = more;
		it->cap *= 2;
	}
	it->idx[it->n++] = k;
}

static void item_free_idx(struct qitem *it)
{
	if (it->idx != &it->one)
		free(it->idx);
	it->idx = NULL;
}

static void item_release_env(struct qitem *it)
{
	struct active *a = it->act;

	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	envelope_free(a->env);
	free(a->jr);
	free(a);
	it->act = NULL;
}

static void item_free(struct sched *s, struct qitem *it)
{
	struct qmsg *m = it->m;

	item_set(s, it, IT_NONE);
	item_release_env(it);
	item_free_idx(it);
	free(it);
	if (--m->n_items == 0)
		msg_remove(s, m);
	check_drained(s);
}

/* Place a new or re-deferred item by its due time. */
static void item_place(struct sched *s, struct qitem *it)
{
	item_set(s, it, it->due <= now_s() ? IT_READY : IT_DEFERRED);
}

static void on_heap(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	int64_t now = now_s();

	while (s->heap_n > 0 && s->heap[0]->due <= now)
		item_set(s, s->heap[0], IT_READY);
	heap_arm(s);
}

/* ---------- indexing ---------- */

static int rcpt_open(const struct rcpt *r)
{
	return r->state == RCPT_PENDING || r->state == RCPT_DEFERRED;
}

/* Open recipients of env, grouped by destination into items. */
static long index_envelope(struct sched *s, const struct envelope *env)
{
	struct qmsg *m;
	size_t i, j;
	long n_open = 0;
	char key[300];
	struct qitem **open_items = xcalloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*open_items));
	size_t n_items = 0;

	if (msg_find(s, env->id)) {
		free(open_items);
		return 0; /* already known */
	}
	m = msg_add(s, env);
	for (i = 0; i < env->n_rcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];
		struct qitem *it = NULL;
		if (!rcpt_open(r))
			continue;
		dest_key(s, r->addr, key, sizeof(key));
		for (j = 0; j < n_items; j++)
			if (!strcmp(open_items[j]->d->name, key) &&
			    open_items[j]->n < MAX_RCPTS_PER_TXN)
				it = open_items[j];
		if (!it) {
			it = item_new(m, dest_get(s, key));
			open_items[n_items++] = it;
		}
		item_add_rcpt(it, (uint32_t)i);
		if (r->attempts > it->attempts)
			it->attempts = r->attempts;
		if (r->next_attempt > it->due)
			it->due = r->next_attempt;
		m->n_open++;
		n_open++;
	}
	for (j = 0; j < n_items; j++)
		item_place(s, open_items[j]);
	free(open_items);
	if (m->n_items == 0)
		msg_remove(s, m);
	return n_open;
}

static int load_one(void *arg, struct envelope *env)
{
	long *count = arg;
	struct sched *s = *(struct sched **)(count + 1);

	*count += index_envelope(s, env);
	return 0;
}

long sched_load(struct sched *s)
{
	struct {
		long count;
		struct sched *s;
	} ctx = {0, s};
	char *err = NULL;

	if (spool_foreach(s->deps.spool, load_one, &ctx, &err) < 0) {
		log_err("session=NOQUEUE event=sched_load_error error=%s", log_q(err));
		free(err);
		return -1;
	}
	return ctx.count;
}

void sched_add_id(struct sched *s, const char *id)
{
	struct envelope *env = NULL;
	char *err = NULL;

	if (s->stopped)
		return; /* on disk: the next start indexes it */
	if (spool_load(s->deps.spool, id, &env, &err) < 0) {
		log_err("queue=%s event=sched_add_error error=%s", id, log_q(err));
		free(err);
		return;
	}
	index_envelope(s, env);
	envelope_free(env);
}

/* ---------- results ---------- */

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
};

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
	free(f->changed);
	free(f);
}

static void persist_run(void *arg)
{
	struct finish *f = arg;
	struct spool *sp = f->s->deps.spool;
	char *err = NULL;

	if (f->delete_file) {
		if (spool_remove_done(sp, f->env->id, &err) < 0)
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

static void persist_done(void *arg)
{
	struct finish *f = arg;
	struct sched *s = f->s;
	struct qitem *it = f->it;

	envelope_free(f->env);
	finish_free(f);
	if (s->stopped) {
		/* at exit: the item is in no list; its message goes with sched_free() */
		item_release_env(it);
		item_free_idx(it);
		free(it);
		return;
	}
	if (it->n > 0 && !it->m->forgotten) {
		item_place(s, it); /* the deferred rest */
		check_drained(s);
	} else {
		item_free(s, it);
	}
	failing_continue(s);
}

static void persist(struct finish *f)
{
	work_submit(f->s->deps.work, persist_run, persist_done, f);
}

static void on_dsn_committed(void *arg, int ok, const char *id)
{
	struct finish *f = arg;

	if (ok) {
		log_info("queue=%s event=dsn_queued dsn=%s rcpts=%zu", f->env->id, id, f->n_dsn);
		sched_add_id(f->s, id);
	} else {
		log_err("queue=%s event=dsn_error error=commit_failed", f->env->id);
	}
	persist(f);
}

static void queue_dsn(struct finish *f)
{
	const struct conf *c = f->s->conf;
	char *err = NULL;
	int r;

	r = dsn_queue(f->s->deps.spool, c->hostname, f->env, f->dsn, f->n_dsn, on_dsn_committed, f,
	              &err);
	if (r == 1)
		return;
	if (r < 0) {
		/* The bounce is lost, not the original's state: log it loudly. */
		log_err("queue=%s event=dsn_error error=%s", f->env->id, log_q(err));
		free(err);
	}
	persist(f);
}

static void log_attempt(const struct qitem *it, const struct rcpt *r, struct smtpc_conn *c,
                        const char *status, const struct smtpc_verdict *v)
{
	double delay = (double)(clock_now_ms() / 10) / 100.0 - (double)it->m->created;

	if (c)
		log_info("queue=%s event=delivery to=<%s> relay=%s[%s]:%u tls=%s delay=%.2f "
		         "attempt=%u status=%s dsn=%s reply=%s",
		         it->m->id, log_q(r->addr), smtpc_conn_host(c), smtpc_conn_addr(c),
		         smtpc_conn_port(c), smtpc_conn_tls(c), delay, r->attempts, status,
		         v->status, log_q(v->diag));
	else
		log_info(
		    "queue=%s event=delivery to=<%s> relay=none delay=%.2f attempt=%u status=%s "
		    "dsn=%s reply=%s",
		    it->m->id, log_q(r->addr), delay, r->attempts, status, v->status,
		    log_q(v->diag));
}

static void count(struct sched *s, const struct envelope *env, const struct rcpt *r,
                  const char *event)
{
	char key[300];

	if (!s->deps.count)
		return;
	dest_key(s, r->addr, key, sizeof(key));
	s->deps.count(s->deps.count_arg, env->account, key, event);
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
	d->last_attempt = now_s();
	if (action == DSN_ACT_DELAYED)
		d->retry_until = f->env->created + (int64_t)f->s->conf->queue_lifetime;
}

/* A DSN's Diagnostic-Code: the server's own reply (smtp;) when there was
 * one, else our account of what happened. */
static const char *dsn_diag(const struct smtpc_verdict *v)
{
	return v->reply ? v->reply : v->diag;
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

	r->attempts++;
	free(r->last_reply);
	r->last_reply = v->diag ? xstrdup(v->diag) : NULL;
	f->changed[f->n_changed++] = k;
	if (v->action == SMTPC_ACT_OK) {
		r->state = RCPT_DELIVERED;
		log_attempt(it, r, c, "sent", v);
		count(s, f->env, r, "delivered");
		/* RFC 3461 6.2.3: a next hop without DSN cannot report success,
		 * so we say "relayed"; one with DSN got NOTIFY and reports itself. */
		if (c && !smtpc_conn_has_dsn(c))
			add_dsn(f, k, DSN_ACT_RELAYED, v->status, dsn_diag(v), smtpc_conn_host(c));
		return 0;
	}
	if (v->action == SMTPC_ACT_DEFER &&
	    sched_retry_next(cf->retry, cf->n_retry, r->attempts, f->env->created,
	                     cf->queue_lifetime, now_s(), &next) == SCHED_RETRY_AT) {
		/* The previous attempt was one retry step before this one was due
		 * (r->attempts counts this one already); 0: this was the first. */
		int64_t since = 0;
		if (r->attempts > 1 && r->next_attempt > 0) {
			size_t si =
			    r->attempts - 2 < cf->n_retry ? r->attempts - 2 : cf->n_retry - 1;
			since = r->next_attempt - (int64_t)cf->retry[si];
		}
		r->state = RCPT_DEFERRED;
		r->next_attempt = next;
		log_attempt(it, r, c, "deferred", v);
		count(s, f->env, r, "deferred");
		if (dsn_delay_due(f->env, k, since, now_s(), cf->delay_warning))
			add_dsn(f, k, DSN_ACT_DELAYED, v->status, dsn_diag(v),
			        c ? smtpc_conn_host(c) : NULL);
		return 1;
	}
	r->state = RCPT_BOUNCED;
	if (v->action == SMTPC_ACT_DEFER) {
		struct smtpc_verdict ex;
		struct smtpc_peer peer = {it->d->name, NULL};
		memset(&ex, 0, sizeof(ex));
		smtpc_judge_failure(&peer, SMTPC_STAGE_QUEUE, SMTPC_FAIL_EXPIRED, v->diag, &ex);
		log_attempt(it, r, c, "bounced", &ex);
		add_dsn(f, k, DSN_ACT_FAILED, ex.status, ex.diag, c ? smtpc_conn_host(c) : NULL);
		smtpc_verdict_clear(&ex);
	} else {
		log_attempt(it, r, c, "bounced", v);
		add_dsn(f, k, DSN_ACT_FAILED, v->status, dsn_diag(v),
		        c ? smtpc_conn_host(c) : NULL);
	}
	if (!*f->env->mail_from)
		log_info("queue=%s event=bounce_dropped to=<%s> reason=null_sender", f->env->id,
		         log_q(r->addr));
	count(s, f->env, r, "bounced");
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
		sched_shape_throttle(&d->shape, now_ms());
	else if (deferral)
		sched_shape_deferral(&d->shape, now_ms());
	else if (good)
		sched_shape_success(&d->shape);
}

/* The verdicts of an attempt (v[i] for it->idx[i]); c is NULL when no
 * connection was made (DNS, all hosts failed). Takes it->env. */
static void apply_results(struct sched *s, struct qitem *it, const struct smtpc_verdict *v,
                          int same_for_all, struct smtpc_conn *c)
{
	struct finish *f = xcalloc(1, sizeof(*f));
	uint32_t i, kept = 0;

	f->s = s;
	f->it = it;
	f->env = it->act->env;
	it->act->env = NULL;
	item_release_env(it);
	item_set(s, it, IT_FINISHING);
	f->changed = xcalloc(it->n, sizeof(*f->changed));
	shape_signal(it->d, v, same_for_all ? 1 : it->n);
	for (i = 0; i < it->n; i++) {
		size_t k = it->idx[i];
		if (apply_one(f, k, same_for_all ? v : &v[i], c)) {
			it->idx[kept++] = (uint32_t)k;
			if (f->env->rcpts[k].next_attempt > it->due || kept == 1)
				it->due = f->env->rcpts[k].next_attempt;
		} else {
			it->m->n_open--;
			f->sync = 1;
		}
	}
	it->n = kept;
	it->attempts++;
	f->delete_file = it->m->n_open == 0;
	if (f->n_dsn > 0)
		queue_dsn(f);
	else
		persist(f);
}

/* Load what an attempt needs. -1 if the message is gone (deleted). */
static int item_load(struct sched *s, struct qitem *it)
{
	char *err = NULL;
	uint32_t i;

	struct active *a = xcalloc(1, sizeof(*a));

	a->fd = -1;
	it->act = a;
	if (spool_load(s->deps.spool, it->m->id, &a->env, &err) < 0 ||
	    spool_open_body(s->deps.spool, it->m->id, &a->fd, &a->body_off, &a->body_len, &err) <
	        0) {
		int gone = errno == ENOENT;
		log_warn("queue=%s event=%s error=%s", it->m->id,
		         gone ? "message_gone" : "load_error", log_q(err));
		free(err);
		item_release_env(it);
		return gone ? -1 : -2;
	}
	a->jr = xcalloc(it->n, sizeof(*a->jr));
	for (i = 0; i < it->n; i++) {
		const struct rcpt *r = &a->env->rcpts[it->idx[i]];
		a->jr[i].addr = r->addr;
		a->jr[i].orcpt = r->orcpt;
		a->jr[i].notify = r->notify;
	}
	return 0;
}

/* For an item just made active: load it. A message deleted behind our back
 * leaves the index; any other failure (EMFILE, EIO) parks the item for a
 * minute rather than dropping recipients that are still open. */
static int item_start(struct sched *s, struct qitem *it)
{
	int r = item_load(s, it);

	if (r == -1) {
		it->m->n_open -= it->n;
		it->n = 0;
		item_free(s, it);
	} else if (r < 0) {
		it->due = now_s() + 60;
		item_set(s, it, IT_DEFERRED);
	}
	return r < 0 ? -1 : 0;
}

/* Apply d->fail_v to ready items while fewer than FINISH_MAX are being
 * written; persist_done() calls again as writes finish. */
static void dest_fail_some(struct dest *d)
{
	struct sched *s = d->s;
	struct qitem *it;

	while ((it = TAILQ_FIRST(&d->ready)) && s->n_finishing < FINISH_MAX) {
		item_set(s, it, IT_ACTIVE);
		if (item_start(s, it) < 0)
			continue;
		apply_results(s, it, &d->fail_v, 1, NULL);
	}
	if (!TAILQ_FIRST(&d->ready) && d->failing) {
		d->failing = 0;
		smtpc_verdict_clear(&d->fail_v);
		TAILQ_REMOVE(&s->failing, d, fail_link);
	}
}

/* Everything in the ready queue of d gets verdict v (no connection could
 * be made): the destination is dead for now. */
static void dest_fail_ready(struct dest *d, const struct smtpc_verdict *v)
{
	if (!d->failing) {
		d->failing = 1;
		d->fail_v = *v;
		d->fail_v.diag = v->diag ? xstrdup(v->diag) : NULL;
		d->fail_v.reply = v->reply ? xstrdup(v->reply) : NULL;
		TAILQ_INSERT_TAIL(&d->s->failing, d, fail_link);
	}
	dest_fail_some(d);
}

static void failing_continue(struct sched *s)
{
	struct dest *d, *next;

	for (d = TAILQ_FIRST(&s->failing); d && s->n_finishing < FINISH_MAX; d = next) {
		next = TAILQ_NEXT(d, fail_link);
		dest_fail_some(d);
	}
}

/* ---------- connections ---------- */

static void dconn_remove(struct dconn *dc)
{
	struct dest *d = dc->d;

	TAILQ_REMOVE(&d->conns, dc, link);
	d->n_conns--;
	free(dc);
	dest_pump_later(d, 0);
	check_drained(d->s);
}

static void on_job_done(void *arg, const struct smtpc_verdict *v, size_t n)
{
	struct dconn *dc = arg;
	struct qitem *it = dc->item;

	dc->item = NULL;
	apply_results(dc->d->s, it, v, 0, dc->c);
}

/* Rate limit: tokens refill at max_rate per period. */
static int rate_take(struct dest *d, int64_t *wait_ms)
{
	const struct conf_domain *l = d->lim;
	double per_ms, burst;
	int64_t now = now_ms();

	if (l->max_rate == 0 || l->max_rate_period == 0)
		return 1;
	per_ms = (double)l->max_rate / ((double)l->max_rate_period * 1000.0);
	burst = l->max_rate < 10 ? (double)l->max_rate : 10.0;
	d->tokens += (double)(now - d->tokens_ms) * per_ms;
	if (d->tokens > burst)
		d->tokens = burst;
	d->tokens_ms = now;
	if (d->tokens >= 1.0) {
		d->tokens -= 1.0;
		return 1;
	}
	*wait_ms = (int64_t)((1.0 - d->tokens) / per_ms) + 1;
	return 0;
}

static void dconn_start(struct dconn *dc, struct qitem *it)
{
	struct sched *s = dc->d->s;
	struct smtpc_job job;

	item_set(s, it, IT_ACTIVE);
	if (item_start(s, it) < 0) {
		dc->idle = 1;
		dest_pump_later(dc->d, 0);
		return;
	}
	memset(&job, 0, sizeof(job));
	job.id = it->m->id;
	job.mail_from = it->act->env->mail_from;
	job.eightbit = it->act->env->body == BODY_8BITMIME;
	job.smtputf8 = it->act->env->smtputf8;
	job.ret = it->act->env->ret;
	job.envid = it->act->env->envid;
	job.rcpts = it->act->jr;
	job.n_rcpts = it->n;
	job.fd = it->act->fd;
	job.offset = it->act->body_off;
	job.len = it->act->body_len;
	dc->item = it;
	dc->idle = 0;
	smtpc_conn_send(dc->c, &job, on_job_done, dc);
}

static void on_conn_ready(void *arg, struct smtpc_conn *c)
{
	struct dconn *dc = arg;
	struct dest *d = dc->d;
	int64_t wait = 0;

	if (!dc->c) {
		/* first READY: it was counted as opening */
		dc->c = c;
		d->n_opening--;
	}
	dc->idle = 1;
	dc->idle_since_ms = now_ms();
	if (d->s->draining || smtpc_conn_count(c) >= d->lim->max_messages_per_connection) {
		smtpc_conn_quit(c);
		dconn_remove(dc);
		return;
	}
	if (d->n_ready > 0 && rate_take(d, &wait)) {
		dconn_start(dc, TAILQ_FIRST(&d->ready));
		return;
	}
	dest_pump_later(d, wait ? wait : IDLE_KEEP_MS);
}

static void on_conn_failed(void *arg, struct smtpc_conn *c, const struct smtpc_verdict *v)
{
	struct dconn *dc = arg;
	struct dest *d = dc->d;

	d->n_opening--;
	assert(v->action != SMTPC_ACT_OK);
	sched_shape_throttle(&d->shape, now_ms());
	/* With no other connection alive, nothing will carry the waiting
	 * items: they take this failure (deferred on their own schedule). */
	if (d->n_conns == 1)
		dest_fail_ready(d, v);
	dconn_remove(dc);
}

static void on_conn_closed(void *arg, struct smtpc_conn *c)
{
	struct dconn *dc = arg;

	dconn_remove(dc);
}

static const struct smtpc_cbs conn_cbs = {on_conn_ready, on_conn_failed, on_conn_closed};

static void open_conn(struct dest *d, struct dns_route *route, uint16_t port)
{
	const struct conf *c = d->s->conf;
	struct dconn *dc = xcalloc(1, sizeof(*dc));
	struct smtpc_target t;

	dc->d = d;
	TAILQ_INSERT_TAIL(&d->conns, dc, link);
	d->n_conns++;
	d->n_opening++;
	memset(&t, 0, sizeof(t));
	t.dest = d->name;
	t.route = route;
	t.port = port;
	t.tls = d->s->deps.client_tls;
	t.tls_required = c->outbound_tls == CONF_OUT_TLS_REQUIRED;
	t.helo = c->hostname;
	if (c->smarthost) {
		t.auth = c->smarthost_auth;
		t.verify_host = c->smarthost_at.host;
		t.verify_required = c->smarthost_tls == CONF_SMARTHOST_TLS_VERIFY;
		t.tls_required |= c->smarthost_tls != CONF_SMARTHOST_TLS_NONE;
	}
	/* dc->c is set at the first ready(): smtpc_conn_new never calls back
	 * synchronously, but failed() may come before any ready(). */
	smtpc_conn_new(d->s->deps.base, &t, &conn_cbs, dc);
}

/* How many more connections d should open now. */
static unsigned conns_wanted(struct dest *d)
{
	struct dconn *dc;
	unsigned idle = 0, busy_or_opening = d->n_conns, want;

	TAILQ_FOREACH(dc, &d->conns, link)
	idle += dc->idle;
	if (d->n_ready <= idle + d->n_opening)
		return 0;
	want = (unsigned)(d->n_ready - idle - d->n_opening);
	if (!sched_shape_may_connect(&d->shape, busy_or_opening, now_ms()))
		return 0;
	if (busy_or_opening + want > d->shape.window)
		want = d->shape.window - busy_or_opening;
	return want;
}

struct route_req {
	struct dest *d;
	uint16_t port;
};

static void on_route(void *arg, const struct dns_route *r)
{
	struct route_req *rq = arg;
	struct dest *d = rq->d;
	struct smtpc_verdict v;
	struct smtpc_peer peer = {d->name, NULL};
	unsigned want, i;

	d->resolving = 0;
	memset(&v, 0, sizeof(v));
	if (r->status == DNS_CANCELLED) {
		free(rq);
		return;
	}
	if (r->status != DNS_OK) {
		/* The smarthost is configuration, not the recipient's fault:
		 * whatever DNS says of it, the mail waits. */
		enum smtpc_failure f = d->s->conf->smarthost       ? SMTPC_FAIL_SMARTHOST_DNS
		                       : r->null_mx                ? SMTPC_FAIL_NULL_MX
		                       : r->status == DNS_NXDOMAIN ? SMTPC_FAIL_DNS_NXDOMAIN
		                       : r->status == DNS_NODATA   ? SMTPC_FAIL_DNS_NOHOST
		                                                   : SMTPC_FAIL_DNS_TEMP;
		smtpc_judge_failure(&peer, SMTPC_STAGE_DNS, f, r->error, &v);
		log_info("session=%s event=route status=%s error=%s", d->name,
		         dns_status_name(r->status), log_q(r->error));
		dest_fail_ready(d, &v);
		smtpc_verdict_clear(&v);
		free(rq);
		return;
	}
	want = conns_wanted(d);
	for (i = 0; i < want; i++)
		open_conn(d, dns_route_dup(r), rq->port);
	free(rq);
}

/* A route for a numeric address (a "[addr]" domain literal, or an IP
 * smarthost); NXDOMAIN for anything else. */
static struct dns_route *literal_route(const char *host)
{
	struct dns_route *r = xcalloc(1, sizeof(*r));
	struct dns_route_host *h = xcalloc(1, sizeof(*h));
	struct dns_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, host, a.addr) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, host, a.addr) == 1)
		a.family = AF_INET6;
	r->hosts = h;
	r->n_hosts = 1;
	h->name = xstrdup(host);
	if (a.family) {
		h->addrs = xmalloc(sizeof(a));
		h->addrs[0] = a;
		h->n_addrs = 1;
		r->status = DNS_OK;
	} else {
		r->status = DNS_NXDOMAIN;
		r->error = "not a numeric address";
	}
	return r;
}

static void route_literal(struct route_req *rq, const char *host)
{
	struct dns_route *r = literal_route(host);

	on_route(rq, r);
	dns_route_free(r);
}

/* RFC 6761 6.3: "localhost" is the loopback host, whatever DNS says (a
 * smarthost written [localhost]:port must work with dns_servers set). */
static int is_localhost(const char *host)
{
	return !strcasecmp(host, "localhost") || !strcasecmp(host, "localhost.");
}

static void route_localhost(struct route_req *rq)
{
	struct dns_route *r = literal_route("127.0.0.1");
	struct dns_route_host *h = &r->hosts[0];

	h->addrs = xrealloc(h->addrs, 2 * sizeof(*h->addrs));
	memset(&h->addrs[1], 0, sizeof(h->addrs[1]));
	h->addrs[1].family = AF_INET6;
	h->addrs[1].addr[15] = 1; /* ::1 */
	h->n_addrs = 2;
	free(h->name);
	h->name = xstrdup("localhost");
	on_route(rq, r);
	dns_route_free(r);
}

/* Resolve and connect, for as many connections as are wanted: the
 * smarthost (an address as is, a name by its A/AAAA), a domain literal,
 * or the domain's MX hosts. */
static void dest_connect(struct dest *d)
{
	const struct conf *c = d->s->conf;
	struct route_req *rq;
	char lit[128];

	if (d->resolving || conns_wanted(d) == 0)
		return;
	rq = xcalloc(1, sizeof(*rq));
	rq->d = d;
	rq->port = (uint16_t)c->mx_port;
	if (c->smarthost) {
		rq->port = c->smarthost_at.port;
		if (c->smarthost_at.is_ip) {
			route_literal(rq, c->smarthost_at.host);
			return;
		}
		if (is_localhost(c->smarthost_at.host)) {
			route_localhost(rq);
			return;
		}
		d->resolving = 1;
		dns_host(d->s->deps.dns, c->smarthost_at.host, on_route, rq);
		return;
	}
	if (d->name[0] == '[') {
		snprintf(lit, sizeof(lit), "%s", d->name + 1);
		lit[strcspn(lit, "]")] = '\0';
		route_literal(rq, strncasecmp(lit, "IPv6:", 5) ? lit : lit + 5);
		return;
	}
	d->resolving = 1;
	dns_route(d->s->deps.dns, d->name, on_route, rq);
}

/* Nothing to do: connections idle for IDLE_KEEP_MS say QUIT; the rest
 * are looked at again when they reach it. */
static void dest_close_idle(struct dest *d)
{
	struct dconn *dc, *next;
	int64_t now = now_ms(), soonest = 0;

	for (dc = TAILQ_FIRST(&d->conns); dc; dc = next) {
		next = TAILQ_NEXT(dc, link);
		if (!dc->idle || !dc->c)
			continue;
		if (now - dc->idle_since_ms >= IDLE_KEEP_MS) {
			smtpc_conn_quit(dc->c);
			TAILQ_REMOVE(&d->conns, dc, link);
			d->n_conns--;
			free(dc);
			continue;
		}
		if (!soonest || dc->idle_since_ms + IDLE_KEEP_MS < soonest)
			soonest = dc->idle_since_ms + IDLE_KEEP_MS;
	}
	if (soonest)
		dest_pump_later(d, soonest - now);
	check_drained(d->s);
}

static void dest_pump(struct dest *d)
{
	struct dconn *dc;
	int64_t wait = 0;

	if (d->s->draining || d->failing)
		return;
	/* Idle connections first: no handshake needed. dconn_start() changes
	 * only the connection it is given, so the walk may go on. */
	TAILQ_FOREACH(dc, &d->conns, link)
	{
		if (!dc->idle || !dc->c)
			continue;
		if (d->n_ready == 0)
			break;
		if (!rate_take(d, &wait)) {
			dest_pump_later(d, wait);
			return;
		}
		dconn_start(dc, TAILQ_FIRST(&d->ready));
	}
	if (d->n_ready > 0) {
		dest_connect(d);
		if (d->shape.hold_until_ms > now_ms())
			dest_pump_later(d, d->shape.hold_until_ms - now_ms());
		return;
	}
	dest_close_idle(d);
}

static void dest_pump_later(struct dest *d, int64_t delay_ms)
{
	struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};

	if (delay_ms == 0 && evtimer_pending(d->ev_pump, NULL))
		event_del(d->ev_pump);
	else if (evtimer_pending(d->ev_pump, NULL))
		return;
	evtimer_add(d->ev_pump, &tv);
}

/* ---------- public ---------- */

static void on_drained_ev(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	void (*drained)(void *) = s->drained;

	if (s->n_active || s->n_finishing) {
		s->drained_sent = 0; /* work came back: wait for it */
		return;
	}
	s->drained = NULL; /* once */
	if (drained)
		drained(s->drained_arg);
}

struct sched *sched_new(const struct sched_deps *deps)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	s->deps = *deps;
	s->conf = deps->conf;
	s->domains_conf = deps->conf;
	s->mtab_size = 1024;
	s->mtab = xcalloc(s->mtab_size, sizeof(*s->mtab));
	s->dtab_size = 256;
	s->dtab = xcalloc(s->dtab_size, sizeof(*s->dtab));
	s->ev_heap = evtimer_new(deps->base, on_heap, s);
	TAILQ_INIT(&s->failing);
	s->ev_drained = event_new(deps->base, -1, 0, on_drained_ev, s);
	return s;
}

long sched_retry(struct sched *s, const char *id)
{
	struct qmsg *m = id ? msg_find(s, id) : NULL;
	long moved = 0;
	size_t i;

	if (id && !m)
		return 0;
	/* Scan from the end: item_set() on the last heap slot moves nothing. */
	for (i = s->heap_n; i-- > 0;) {
		struct qitem *it = i < s->heap_n ? s->heap[i] : NULL;
		if (!it || (m && it->m != m))
			continue;
		it->due = 0;
		item_set(s, it, IT_READY);
		sched_shape_init(&it->d->shape, (unsigned)it->d->lim->max_connections);
		moved++;
		i = s->heap_n; /* the heap changed shape: start over */
	}
	return moved;
}

void sched_forget(struct sched *s, const char *id)
{
	struct qmsg *m = msg_find(s, id);
	size_t b;

	if (!m)
		return;
	m->forgotten = 1;
	for (b = 0; b < s->dtab_size; b++) {
		struct dest *d;
		for (d = s->dtab[b]; d; d = d->hnext) {
			struct qitem *it, *next;
			for (it = TAILQ_FIRST(&d->ready); it; it = next) {
				next = TAILQ_NEXT(it, link);
				if (it->m == m)
					item_free(s, it);
			}
		}
	}
	for (b = s->heap_n; b-- > 0;) {
		if (b < s->heap_n && s->heap[b]->m == m) {
			item_free(s, s->heap[b]);
			b = s->heap_n;
		}
	}
}

static void check_drained(struct sched *s)
{
	if (s->draining && !s->drained_sent && s->n_active == 0 && s->n_finishing == 0 &&
	    s->drained) {
		s->drained_sent = 1;
		event_active(s->ev_drained, EV_TIMEOUT, 0);
	}
}

void sched_drain(struct sched *s, void (*done)(void *arg), void *arg)
{
	size_t b;

	s->draining = 1;
	s->drained = done;
	s->drained_arg = arg;
	for (b = 0; b < s->dtab_size; b++) {
		struct dest *d;
		for (d = s->dtab[b]; d; d = d->hnext) {
			struct dconn *dc, *next;
			for (dc = TAILQ_FIRST(&d->conns); dc; dc = next) {
				next = TAILQ_NEXT(dc, link);
				if (dc->idle && dc->c) {
					smtpc_conn_quit(dc->c);
					TAILQ_REMOVE(&d->conns, dc, link);
					d->n_conns--;
					free(dc);
				}
			}
		}
	}
	check_drained(s);
}

static void dest_free(struct dest *d)
{
	struct qitem *it;
	struct dconn *dc;

	/* the connections themselves went with smtpc_conn_free_all() */
	while ((dc = TAILQ_FIRST(&d->conns))) {
		TAILQ_REMOVE(&d->conns, dc, link);
		if (dc->item) {
			item_release_env(dc->item);
			item_free_idx(dc->item);
			free(dc->item);
		}
		free(dc);
	}
	while ((it = TAILQ_FIRST(&d->ready))) {
		TAILQ_REMOVE(&d->ready, it, link);
		item_free_idx(it);
		free(it);
	}
	event_free(d->ev_pump);
	smtpc_verdict_clear(&d->fail_v);
	free(d->name);
	free(d);
}

void sched_free(struct sched *s)
{
	size_t i;
	struct qmsg *m, *mn;
	struct dest *d, *dn;

	for (i = 0; i < s->heap_n; i++) {
		item_release_env(s->heap[i]);
		item_free_idx(s->heap[i]);
		free(s->heap[i]);
	}
	free(s->heap);
	for (i = 0; i < s->dtab_size; i++)
		for (d = s->dtab[i]; d; d = dn) {
			dn = d->hnext;
			dest_free(d);
		}
	for (i = 0; i < s->mtab_size; i++)
		for (m = s->mtab[i]; m; m = mn) {
			mn = m->hnext;
			free(m);
		}
	free(s->dtab);
	free(s->mtab);
	event_free(s->ev_heap);
	event_free(s->ev_drained);
	free(s);
}

void sched_set_domains(struct sched *s, const struct conf *c)
{
	size_t b;
	struct dest *d;

	s->domains_conf = c;
	for (b = 0; b < s->dtab_size; b++)
		for (d = s->dtab[b]; d; d = d->hnext) {
			d->lim = conf_domain_for(c, d->name);
			sched_shape_set_max(&d->shape, (unsigned)d->lim->max_connections);
			dest_pump_later(d, 0); /* a rate wait may be shorter now */
		}
}

void sched_stop(struct sched *s)
{
	s->stopped = 1;
	s->draining = 1;
}

void sched_get_stats(const struct sched *s, struct sched_stats *out)
{
	size_t b;
	struct dest *d;

	memset(out, 0, sizeof(*out));
	out->messages = s->n_msgs;
	out->items_deferred = s->heap_n;
	out->items_active = s->n_active;
	for (b = 0; b < s->dtab_size; b++)
		for (d = s->dtab[b]; d; d = d->hnext) {
			out->items_ready += d->n_ready;
			out->connections += d->n_conns;
		}
}
