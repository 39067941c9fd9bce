/*
 * sched_steer: queue hold, release and delete on a running server, from
 * the CLI (control socket) or the API, a slice of STEER_SLICE messages at
 * a time. Each slice:
 *
 *   1. a worker reads the slice's messages and picks their recipients
 *      (spool_steer_read);
 *   2. the loop marks what is about to change in the index: held and
 *      deleted recipients leave their ready or deferred items, and those
 *      on an attempt are noted (qmsg held, dropped), so that no attempt
 *      starts on them from now on and the ones running end right
 *      (sched_result.c);
 *   3. a worker writes the slice (steering records or unlinks, the
 *      deletion journal when asked, one sync: spool_steer_write);
 *   4. the loop logs each recipient changed, indexes the released ones,
 *      drops the deleted messages, reports progress and starts the next
 *      slice.
 *
 * Marking before writing is what makes a hold or a delete safe against
 * delivery: an attempt either began before the mark (and its end knows),
 * or cannot begin. The loop's share is in-memory work on STEER_SLICE
 * messages, so a million messages never hold it for long. Operations
 * run one at a time, in the order asked.
 */
#include <stdlib.h>
#include <string.h>

#include "events/events.h"
#include "log/log.h"
#include "sched/sched_int.h"
#include "spool/spool.h"

#define STEER_SLICE 1000

/* ---- index sets ---- */

int idxset_has(const struct idxset *set, uint32_t k)
{
	uint32_t i;

	for (i = 0; set && i < set->n; i++)
		if (set->v[i] == k)
			return 1;
	return 0;
}

void idxset_add(struct idxset **set, uint32_t k)
{
	struct idxset *x = *set;

	if (idxset_has(x, k))
		return;
	if (!x)
		x = *set = xcalloc(1, sizeof(*x));
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 4;
		x->v = xrealloc(x->v, x->cap * sizeof(*x->v));
	}
	x->v[x->n++] = k;
}

int idxset_del(struct idxset **set, uint32_t k)
{
	struct idxset *x = *set;
	uint32_t i;

	for (i = 0; x && i < x->n; i++) {
		if (x->v[i] != k)
			continue;
		x->v[i] = x->v[--x->n];
		if (x->n == 0)
			idxset_free(set);
		return 1;
	}
	return 0;
}

void idxset_free(struct idxset **set)
{
	if (!*set)
		return;
	free((*set)->v);
	free(*set);
	*set = NULL;
}

/* ---- operations ---- */

struct steer_op {
	struct sched *s;
	struct sched_steer_req req; /* ids, domain and by point to the copies below */
	char **ids;
	char *domain, *by;
	struct spool_steer *st;
	struct spool_steered *v; /* the slice in hand */
	size_t n;
	long left;
	char *err;
	struct sched_steer_res res;
	struct steer_op *next;
};

static const char *const op_events[] = {"held", "released", "deleted"};

static void op_read(struct steer_op *op);

static void op_free(struct steer_op *op)
{
	size_t i;

	spool_steer_end(op->st);
	spool_steered_free(op->v, op->n);
	for (i = 0; i < op->req.n_ids; i++)
		free(op->ids[i]);
	free(op->ids);
	for (i = 0; i < op->res.n_failed; i++)
		free(op->res.failed[i]);
	free(op->res.failed);
	free(op->domain);
	free(op->by);
	free(op->err);
	free(op);
}

/* The end of the operation in front: its caller hears, the next begins. */
static void op_finish(struct steer_op *op)
{
	struct sched *s = op->s;

	op->res.error = op->err;
	if (op->req.done)
		op->req.done(op->req.arg, &op->res);
	s->steer_first = op->next;
	if (!s->steer_first)
		s->steer_last = NULL;
	op_free(op);
	if (s->steer_first && !s->stopped)
		op_read(s->steer_first);
}

void sched_steer(struct sched *s, const struct sched_steer_req *req)
{
	struct steer_op *op = xcalloc(1, sizeof(*op));
	size_t i;

	op->s = s;
	op->req = *req;
	op->ids = xcalloc(req->n_ids ? req->n_ids : 1, sizeof(*op->ids));
	for (i = 0; req->ids && i < req->n_ids; i++)
		op->ids[i] = xstrdup(req->ids[i]);
	op->req.ids = req->ids ? op->ids : NULL;
	op->domain = req->domain ? xstrdup(req->domain) : NULL;
	op->req.domain = op->domain;
	op->by = xstrdup(req->by ? req->by : "cli");
	op->req.by = op->by;
	if (s->steer_last)
		s->steer_last->next = op;
	else
		s->steer_first = op;
	s->steer_last = op;
	if (s->stopped) {
		op->err = xstrdup("the server is stopping");
		if (s->steer_first == op)
			op_finish(op);
	} else if (s->steer_first == op) {
		op_read(op);
	}
}

void sched_steer_detach(struct sched *s, void *arg)
{
	struct steer_op *op;

	for (op = s->steer_first; op; op = op->next)
		if (op->req.arg == arg)
			op->req.progress = NULL, op->req.done = NULL;
}

/* ---- 2: marking ---- */

/* The item of m that holds recipient k, or NULL. */
static struct qitem *item_of(struct qmsg *m, uint32_t k)
{
	struct qitem *it;
	uint32_t i;

	TAILQ_FOREACH(it, &m->items, mlink)
	for (i = 0; i < it->n; i++)
		if (it->idx[i] == k)
			return it;
	return NULL;
}

static int waiting(const struct qitem *it)
{
	return it->where == IT_READY || it->where == IT_DEFERRED;
}

/* Recipient k of m is being held: out of its waiting item, or noted for
 * the end of its attempt. One not in an item is not open here. */
static void mark_hold(struct sched *s, struct qmsg *m, uint32_t k)
{
	struct qitem *it = item_of(m, k);

	if (!it || idxset_has(m->held, k))
		return;
	idxset_add(&m->held, k);
	s->n_held++;
	if (waiting(it))
		sched_item_take_rcpt(s, m, k);
}

/* Recipient k of m is being deleted. Returns 0 when that took m out of
 * the index. */
static int mark_delete(struct sched *s, struct qmsg *m, uint32_t k)
{
	struct qitem *it;
	char id[ID_LEN + 1];

	if (idxset_del(&m->held, k)) {
		s->n_held--;
		m->n_open--;
		return 1;
	}
	if (!(it = item_of(m, k)))
		return 1;
	if (!waiting(it)) {
		idxset_add(&m->dropped, k); /* its attempt's end drops it */
		return 1;
	}
	m->n_open--;
	memcpy(id, m->id, sizeof(id));
	sched_item_take_rcpt(s, m, k); /* m may go with its last item */
	return sched_msg_find(s, id) == m;
}

static void mark(struct steer_op *op, const struct spool_steered *v)
{
	struct sched *s = op->s;
	struct qmsg *m = sched_msg_find(s, v->id);
	size_t i;

	for (i = 0; m && i < v->n; i++) {
		if (op->req.op == SPOOL_HOLD)
			mark_hold(s, m, (uint32_t)v->idx[i]);
		else if (op->req.op == SPOOL_DELETE && !mark_delete(s, m, (uint32_t)v->idx[i]))
			m = NULL;
	}
	if (m)
		sched_msg_maybe_remove(s, m);
}

/* ---- 4: settling ---- */

/*
 * A deleted recipient's terminal event, so that its message's state in
 * /v1/messages and the events say what became of it: `bounced` (SPEC 6
 * has no other type for "will never be delivered"), with reason "deleted"
 * and no mx or status (docs/events.md). Not counted for the reputation
 * guard: that counts delivery attempts, not this. Thread-safe (the
 * journal of a stopped server's deletions is replayed on a worker).
 */
void sched_deleted_event(struct sched *s, const char *account, const char *id, const char *addr,
                         uint32_t attempts, int64_t time_ms)
{
	if (!s->deps.events)
		return;
	events_emit(s->deps.events,
	            &(struct events_event){.type = EVENT_BOUNCED,
	                                   .account = account,
	                                   .message_id = id,
	                                   .recipient = addr,
	                                   .reply = "deleted from the queue (no bounce is sent)",
	                                   .reason = "deleted",
	                                   .attempt = attempts,
	                                   .time_ms = time_ms});
}

static void log_rcpt(const struct steer_op *op, const struct spool_steered *v, size_t k)
{
	const struct rcpt *r = &v->env->rcpts[k];

	if (op->req.op == SPOOL_RELEASE)
		log_info("queue=%s event=released to=<%s> held=%llu by=%s", v->id, log_q(r->addr),
		         (unsigned long long)r->held_secs, op->by);
	else
		log_info("queue=%s event=%s to=<%s> by=%s", v->id, op_events[op->req.op],
		         log_q(r->addr), op->by);
	if (op->req.op == SPOOL_DELETE)
		sched_deleted_event(op->s, v->env->account, v->id, r->addr, r->attempts, 0);
}

/* Released recipients go back into items, unless an attempt has them. */
static void settle_release(struct sched *s, const struct spool_steered *v)
{
	struct qmsg *m = sched_msg_find(s, v->id);
	size_t *back, n = 0, i;

	if (!m)
		return; /* not indexed yet: recovery reads it as it is now */
	back = xcalloc(v->n ? v->n : 1, sizeof(*back));
	for (i = 0; i < v->n; i++) {
		uint32_t k = (uint32_t)v->idx[i];
		if (!idxset_del(&m->held, k))
			continue;
		s->n_held--;
		if (!item_of(m, k))
			back[n++] = k;
	}
	sched_index_rcpts(s, m, v->env, back, n);
	free(back);
}

static void settle(struct steer_op *op, const struct spool_steered *v)
{
	struct sched *s = op->s;
	size_t i;

	if (v->error) {
		if (op->req.ids) {
			op->res.failed =
			    xrealloc(op->res.failed, (op->res.n_failed + 1) * sizeof(char *));
			op->res.failed[op->res.n_failed++] = xstrdup(v->error);
		}
		return;
	}
	if (!v->env && v->removed)
		log_info("queue=%s event=deleted reason=unreadable by=%s", v->id, op->by);
	for (i = 0; v->env && i < v->n; i++)
		log_rcpt(op, v, v->idx[i]);
	if (v->n == 0 && !v->removed)
		return;
	op->res.messages++;
	op->res.recipients += v->n;
	if (op->req.op == SPOOL_RELEASE)
		settle_release(s, v);
	else if (v->removed)
		sched_forget(s, v->id);
}

/* ---- the slice: 1 and 3 on a worker, 2 and 4 on the loop ---- */

static void read_run(void *arg)
{
	struct steer_op *op = arg;
	struct spool_steer_opts o;

	if (!op->st) {
		memset(&o, 0, sizeof(o));
		o.op = (enum spool_op)op->req.op;
		o.ids = op->req.ids;
		o.n_ids = op->req.n_ids;
		o.domain = op->req.domain;
		o.now = sched_now_s();
		if (!(op->st = spool_steer_begin(op->s->deps.spool, &o, &op->err)))
			return;
	}
	op->left = spool_steer_read(op->st, STEER_SLICE, &op->v, &op->n, &op->err);
}

static void write_run(void *arg)
{
	struct steer_op *op = arg;

	if (spool_steer_write(op->st, op->v, op->n, &op->err) < 0)
		op->left = -1;
}

static void write_done(void *arg)
{
	struct steer_op *op = arg;
	size_t i;

	for (i = 0; i < op->n; i++)
		settle(op, &op->v[i]);
	spool_steered_free(op->v, op->n);
	op->v = NULL;
	op->n = 0;
	if (op->req.progress && op->st)
		op->req.progress(op->req.arg, spool_steer_done(op->st), spool_steer_total(op->st));
	for (struct steer_op *w = op->next; w; w = w->next)
		if (w->req.progress) /* waiting their turn: a sign of life */
			w->req.progress(w->req.arg, 0, 0);
	if (op->left > 0 && !op->err && !op->s->stopped)
		op_read(op);
	else
		op_finish(op);
}

static void read_done(void *arg)
{
	struct steer_op *op = arg;
	size_t i;

	if (op->left < 0 || op->err || op->s->stopped) {
		if (!op->err)
			op->err = xstrdup("the server is stopping");
		op_finish(op);
		return;
	}
	for (i = 0; i < op->n; i++)
		if (op->v[i].env && !op->v[i].error)
			mark(op, &op->v[i]);
	sched_run_job(op->s, write_run, write_done, op);
}

static void op_read(struct steer_op *op)
{
	sched_run_job(op->s, read_run, read_done, op);
}

void sched_steer_free_all(struct sched *s)
{
	struct steer_op *op, *next;

	for (op = s->steer_first; op; op = next) {
		next = op->next;
		op_free(op);
	}
	s->steer_first = s->steer_last = NULL;
}
