/*
 * sched: the delivery scheduler's index and public API. See sched.h for
 * the shape of the data and sched_int.h for the files and the life of an
 * item.
 *
 * The index: every queued message with an open recipient (struct qmsg,
 * in a util/htable by queue ID; destinations are in another, by name)
 * and its items; an item waits in its destination's ready queue
 * (sched_dest.c) or, deferred, in one heap ordered by due time with one
 * timer for the earliest.
 */
#include "sched/sched.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "log/log.h"
#include "sched/sched_int.h"
#include "spool/spool.h"

/* ---------- messages ---------- */

static int msg_match(const struct htable_node *n, const void *id)
{
	return strcmp(HTABLE_ENTRY(n, struct qmsg, hn)->id, id) == 0;
}

struct qmsg *sched_msg_find(struct sched *s, const char *id)
{
	struct htable_node *n = htable_find(&s->msgs, htable_hash_str(id), msg_match, id);

	return n ? HTABLE_ENTRY(n, struct qmsg, hn) : NULL;
}

/* In s->by_age, oldest first: a recovered message goes after the one
 * recovered before it (recovery reads in arrival order, and everything
 * it reads is older than what arrives meanwhile), a new one at the end. */
static void msg_age_insert(struct sched *s, struct qmsg *m, int recovered)
{
	if (!recovered) {
		TAILQ_INSERT_TAIL(&s->by_age, m, age);
		return;
	}
	if (s->recovered_tail)
		TAILQ_INSERT_AFTER(&s->by_age, s->recovered_tail, m, age);
	else
		TAILQ_INSERT_HEAD(&s->by_age, m, age);
	s->recovered_tail = m;
}

static struct qmsg *msg_add(struct sched *s, const struct envelope *env, int recovered)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));

	memcpy(m->id, env->id, sizeof(m->id));
	m->created = env->created;
	TAILQ_INIT(&m->items);
	htable_add(&s->msgs, &m->hn, htable_hash_str(m->id));
	msg_age_insert(s, m, recovered);
	return m;
}

static void msg_free(struct qmsg *m)
{
	idxset_free(&m->held);
	idxset_free(&m->dropped);
	free(m);
}

static void msg_remove(struct sched *s, struct qmsg *m)
{
	if (s->recovered_tail == m)
		s->recovered_tail = TAILQ_PREV(m, msg_list, age);
	TAILQ_REMOVE(&s->by_age, m, age);
	s->n_held -= m->held ? m->held->n : 0;
	htable_del(&s->msgs, &m->hn);
	msg_free(m);
}

void sched_msg_maybe_remove(struct sched *s, struct qmsg *m)
{
	if (m->n_items == 0 && (!m->held || m->held->n == 0))
		msg_remove(s, m);
}

/* The destination key of a recipient address: its domain, lower case. */
void sched_dest_key(const struct sched *s, const char *addr, char *out, size_t cap)
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
	wait = s->heap[0]->due - sched_now_s();
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

void sched_item_set(struct sched *s, struct qitem *it, enum where to)
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
		sched_dest_pump_later(it->d, 0);
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
	d->n_items++;
	TAILQ_INSERT_TAIL(&m->items, it, mlink);
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

void sched_item_release(struct qitem *it)
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

void sched_item_discard(struct qitem *it)
{
	it->d->n_items--;
	TAILQ_REMOVE(&it->m->items, it, mlink);
	sched_item_release(it);
	item_free_idx(it);
	free(it);
}

void sched_item_free(struct sched *s, struct qitem *it)
{
	struct qmsg *m = it->m;

	sched_item_set(s, it, IT_NONE);
	sched_item_discard(it);
	m->n_items--;
	sched_msg_maybe_remove(s, m);
	sched_check_drained(s);
}

void sched_item_place(struct sched *s, struct qitem *it)
{
	sched_item_set(s, it, it->due <= sched_now_s() ? IT_READY : IT_DEFERRED);
}

static void on_heap(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	int64_t now = sched_now_s();

	while (s->heap_n > 0 && s->heap[0]->due <= now)
		sched_item_set(s, s->heap[0], IT_READY);
	heap_arm(s);
}

/* ---------- indexing ---------- */

void sched_index_rcpts(struct sched *s, struct qmsg *m, const struct envelope *env,
                       const size_t *idx, size_t n)
{
	struct qitem **items = xcalloc(n ? n : 1, sizeof(*items));
	size_t i, j, n_items = 0;
	struct sched_lane lane;
	char key[300];

	sched_lane_of(s, env, &lane);
	for (i = 0; i < n; i++) {
		const struct rcpt *r = &env->rcpts[idx[i]];
		struct qitem *it = NULL;
		struct dest *d;
		sched_dest_key(s, r->addr, key, sizeof(key));
		d = sched_dest_lane(s, key, &lane);
		for (j = 0; j < n_items && !it; j++)
			if (items[j]->d == d && items[j]->n < SCHED_RCPTS_PER_TXN)
				it = items[j];
		if (!it) {
			it = item_new(m, d);
			items[n_items++] = it;
		}
		item_add_rcpt(it, (uint32_t)idx[i]);
		if (r->next_attempt > it->due)
			it->due = r->next_attempt;
		/* deferred and due "now": an operator's retry on a stopped server */
		if (r->state == RCPT_DEFERRED && r->next_attempt == 0)
			it->manual = 1;
	}
	for (j = 0; j < n_items; j++)
		sched_item_place(s, items[j]);
	free(items);
}

long sched_index(struct sched *s, const struct envelope *env, int recovered)
{
	size_t *idx, n = 0, i;
	struct qmsg *m;
	long n_open = 0;

	if (sched_msg_find(s, env->id))
		return 0; /* already known */
	m = msg_add(s, env, recovered);
	idx = xcalloc(env->n_rcpts ? env->n_rcpts : 1, sizeof(*idx));
	for (i = 0; i < env->n_rcpts; i++) {
		const struct rcpt *r = &env->rcpts[i];
		if (!rcpt_is_open(r))
			continue;
		m->n_open++;
		n_open++;
		if (rcpt_is_held(r)) {
			idxset_add(&m->held, (uint32_t)i);
			s->n_held++;
			continue;
		}
		idx[n++] = i;
	}
	sched_index_rcpts(s, m, env, idx, n);
	free(idx);
	sched_msg_maybe_remove(s, m);
	return n_open;
}

int sched_msg_has_rcpt(const struct qmsg *m, uint32_t k)
{
	const struct qitem *it;
	uint32_t i;

	TAILQ_FOREACH(it, &m->items, mlink)
	for (i = 0; i < it->n; i++)
		if (it->idx[i] == k)
			return 1;
	return 0;
}

int sched_item_take_rcpt(struct sched *s, struct qmsg *m, uint32_t k)
{
	struct qitem *it;
	uint32_t i;

	TAILQ_FOREACH(it, &m->items, mlink)
	{
		if (it->where != IT_READY && it->where != IT_DEFERRED)
			continue;
		for (i = 0; i < it->n && it->idx[i] != k; i++)
			;
		if (i == it->n)
			continue;
		memmove(&it->idx[i], &it->idx[i + 1], (it->n - i - 1) * sizeof(*it->idx));
		if (--it->n == 0)
			sched_item_free(s, it);
		return 1;
	}
	return 0;
}

void sched_add(struct sched *s, const struct envelope *env)
{
	if (!s->stopped) /* else on disk: the next start indexes it */
		sched_index(s, env, 0);
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
	sched_index(s, env, 0);
	envelope_free(env);
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

static const struct timeval sweep_every = {SCHED_SWEEP_MS / 1000, 0};

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	size_t freed = sched_dest_sweep(s, sched_now_ms());

	sched_self_load(&s->self, s->conf); /* addresses come and go (DHCP) */

	if (freed)
		log_debug("event=destinations_freed freed=%zu left=%zu", freed,
		          htable_count(&s->dests));
}

struct sched *sched_new(const struct sched_deps *deps)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	s->deps = *deps;
	s->conf = deps->conf;
	s->domains_conf = deps->conf;
	htable_init(&s->msgs);
	htable_init(&s->dests);
	TAILQ_INIT(&s->by_age);
	sched_self_load(&s->self, s->conf);
	s->ev_heap = evtimer_new(deps->base, on_heap, s);
	s->ev_sweep = event_new(deps->base, -1, EV_PERSIST, on_sweep, s);
	evtimer_add(s->ev_sweep, &sweep_every);
	sched_leases_start(s);
	TAILQ_INIT(&s->failing);
	s->ev_drained = event_new(deps->base, -1, 0, on_drained_ev, s);
	return s;
}

long sched_retry(struct sched *s, const char *id)
{
	struct qmsg *m = id ? sched_msg_find(s, id) : NULL;
	long moved = 0;
	size_t i;

	if (id && !m)
		return 0;
	/* Scan from the end: sched_item_set() on the last heap slot moves nothing. */
	for (i = s->heap_n; i-- > 0;) {
		struct qitem *it = i < s->heap_n ? s->heap[i] : NULL;
		if (!it || (m && it->m != m))
			continue;
		it->due = 0;
		it->manual = 1; /* not an attempt of the schedule: not counted */
		sched_item_set(s, it, IT_READY);
		sched_shape_init(&it->d->shape, (unsigned)it->d->lim->max_connections);
		moved += it->n;
		i = s->heap_n; /* the heap changed shape: start over */
	}
	return moved;
}

void sched_forget(struct sched *s, const char *id)
{
	struct qmsg *m = sched_msg_find(s, id);
	struct qitem *it, **waiting;
	size_t n = 0, i;

	if (!m)
		return;
	m->forgotten = 1;
	s->n_held -= m->held ? m->held->n : 0;
	idxset_free(&m->held);
	/* Items on an attempt finish it and go then (sched_result.c); the
	 * others go now. Collected first: the last one takes m with it. */
	waiting = xcalloc(m->n_items ? m->n_items : 1, sizeof(*waiting));
	TAILQ_FOREACH(it, &m->items, mlink)
	if (it->where == IT_READY || it->where == IT_DEFERRED)
		waiting[n++] = it;
	if (n == 0)
		sched_msg_maybe_remove(s, m);
	for (i = 0; i < n; i++)
		sched_item_free(s, waiting[i]);
	free(waiting);
}

void sched_check_drained(struct sched *s)
{
	/* drained: no delivery in flight, and every connection closed at the
	 * peer (one that said QUIT waits for its answer or close, 3 s at most), so
	 * nothing of libevent's is left half-done when the loop stops */
	if (s->draining && !s->drained_sent && s->n_active == 0 && s->n_finishing == 0 &&
	    s->n_closing == 0 && s->drained) {
		s->drained_sent = 1;
		event_active(s->ev_drained, EV_TIMEOUT, 0);
	}
}

void sched_drain(struct sched *s, void (*done)(void *arg), void *arg)
{
	struct htable_iter di;
	struct dest *d;

	s->draining = 1;
	s->drained = done;
	s->drained_arg = arg;
	htable_iter_init(&di, &s->dests);
	while ((d = sched_dest_next(&di)))
		sched_dest_quit_idle(d);
	sched_check_drained(s);
}

void sched_free(struct sched *s)
{
	struct htable_iter it;
	struct htable_node *n;
	struct dest *d;
	size_t i;

	sched_recover_free(s);
	sched_steer_free_all(s);
	for (i = 0; i < s->heap_n; i++)
		sched_item_discard(s->heap[i]);
	free(s->heap);
	htable_iter_init(&it, &s->dests);
	while ((d = sched_dest_next(&it))) {
		htable_del(&s->dests, &d->hn);
		sched_dest_free(d);
	}
	htable_iter_init(&it, &s->msgs);
	while ((n = htable_iter_next(&it))) {
		htable_del(&s->msgs, n);
		msg_free(HTABLE_ENTRY(n, struct qmsg, hn));
	}
	sched_pauses_free(&s->pauses);
	htable_fini(&s->dests);
	htable_fini(&s->msgs);
	sched_self_free(&s->self);
	event_free(s->ev_heap);
	event_free(s->ev_sweep);
	sched_leases_free(s);
	event_free(s->ev_drained);
	free(s);
}

void sched_set_domains(struct sched *s, const struct conf *c)
{
	struct htable_iter di;
	struct dest *d;

	s->domains_conf = c;
	htable_iter_init(&di, &s->dests);
	while ((d = sched_dest_next(&di))) {
		d->lim = conf_domain_for(c, d->name);
		sched_shape_set_max(&d->shape, (unsigned)d->lim->max_connections);
		sched_dest_pump_later(d, 0); /* a rate wait may be shorter now */
	}
}

void sched_stop(struct sched *s)
{
	s->stopped = 1;
	s->draining = 1;
}

uint64_t sched_open_recipients(const struct sched *s)
{
	struct htable_iter mi;
	struct htable_node *n;
	uint64_t sum = 0;

	htable_iter_init(&mi, &s->msgs);
	while ((n = htable_iter_next(&mi)))
		sum += HTABLE_ENTRY(n, struct qmsg, hn)->n_open;
	return sum;
}

void sched_get_stats(const struct sched *s, struct sched_stats *out)
{
	struct htable_iter di;
	struct dest *d;

	memset(out, 0, sizeof(*out));
	out->messages = htable_count(&s->msgs);
	out->recipients_held = s->n_held;
	out->oldest_created = TAILQ_EMPTY(&s->by_age) ? 0 : TAILQ_FIRST(&s->by_age)->created;
	out->paused_all = s->pauses.all;
	out->paused = s->pauses.n;
	out->destinations = htable_count(&s->dests);
	out->items_deferred = s->heap_n;
	out->items_active = s->n_active;
	htable_iter_init(&di, &s->dests);
	while ((d = sched_dest_next(&di))) {
		out->items_ready += d->n_ready;
		out->connections += d->n_conns;
	}
}
