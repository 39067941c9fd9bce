/*
 * smtpd_supp: RCPT suppression checks grouped across sessions (contract in
 * smtpd_supp.h). The queue and the job in flight belong to the loop
 * thread; a job's worker reads only its own list of requests, and writes
 * only their answers, until its done() hands them back to the loop.
 */
#include "smtpd/smtpd_supp.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

struct smtpd_supp {
	struct work_pool *wp;
	struct store *store;
	struct event *ev_next;              /* starts the next job, from the loop */
	struct smtpd_supp_req *head, *tail; /* waiting for a job */
	int running;                        /* a job is in flight */
};

/* One job: its requests (a list taken from the queue), by arrival. */
struct supp_job {
	struct smtpd_supp *g;
	struct store *store;
	struct smtpd_supp_req *reqs;
	size_t n_reqs, n_addrs;
};

/* ---- the worker: one store call per account ---------------------------------- */

/* The requests of the group from first on with first's account: how many,
 * and their addresses in total. */
static size_t same_account(struct smtpd_supp_req *first, size_t *n_addrs)
{
	size_t n = 0;

	*n_addrs = 0;
	for (struct smtpd_supp_req *r = first; r; r = r->next) {
		if (strcmp(r->account, first->account) != 0)
			continue;
		n++;
		*n_addrs += r->n;
	}
	return n;
}

/* Gives the requests with first's account (from index first_i in the
 * job) their answers, found[] and entries[] in their order, and marks
 * them checked. */
static void scatter(struct smtpd_supp_req *first, size_t first_i, unsigned char *checked,
                    int failed, const unsigned char *found, const struct store_supp *entries)
{
	size_t k = 0, i = first_i;

	for (struct smtpd_supp_req *r = first; r; r = r->next, i++) {
		if (strcmp(r->account, first->account) != 0)
			continue;
		checked[i] = 1;
		r->failed = failed;
		memcpy(r->found, found + k, r->n);
		memcpy(r->entries, entries + k, r->n * sizeof(*entries));
		k += r->n;
	}
}

/* Checks the requests with first's account (first is the earliest of
 * them: none is checked yet) with one store call, and marks them checked.
 * A lone request is checked in place, without copies. */
static void check_account(struct supp_job *j, struct smtpd_supp_req *first, unsigned char *checked,
                          size_t first_i)
{
	size_t n_addrs, n_reqs = same_account(first, &n_addrs), k = 0;
	const char *const *addrs = first->addrs;
	const char **all = NULL; /* the group's addresses, in order */
	unsigned char *found = first->found;
	struct store_supp *entries = first->entries;
	char *err = NULL;
	int rc;

	if (n_reqs > 1) {
		addrs = all = xcalloc(n_addrs + 1, sizeof(*all)); /* + 1: never 0 */
		found = xcalloc(n_addrs + 1, 1);
		entries = xcalloc(n_addrs + 1, sizeof(*entries));
		for (struct smtpd_supp_req *r = first; r; r = r->next)
			if (strcmp(r->account, first->account) == 0)
				for (size_t a = 0; a < r->n; a++)
					all[k++] = r->addrs[a];
	}
	rc = store_supp_check_many(j->store, first->account, addrs, n_addrs, found, entries, &err);
	if (rc < 0)
		log_warn("event=suppression_check_error account=%s sessions=%zu rcpts=%zu error=%s",
		         log_q(first->account), n_reqs, n_addrs, log_q(err));
	free(err);
	if (n_reqs == 1) {
		checked[first_i] = 1;
		first->failed = rc < 0;
		return;
	}
	scatter(first, first_i, checked, rc < 0, found, entries);
	free(all);
	free(found);
	free(entries);
}

static void job_run(void *arg)
{
	struct supp_job *j = arg;
	unsigned char *checked = xcalloc(j->n_reqs, 1);
	size_t i = 0;

	for (struct smtpd_supp_req *r = j->reqs; r; r = r->next, i++)
		if (!checked[i])
			check_account(j, r, checked, i);
	free(checked);
}

/* ---- the loop: the queue, one job at a time ---------------------------------- */

static void job_done(void *arg)
{
	struct supp_job *j = arg;
	struct smtpd_supp *g = j->g;
	struct smtpd_supp_req *r = j->reqs, *next;

	if (j->n_reqs > 1)
		log_info("event=suppression_group sessions=%zu rcpts=%zu", j->n_reqs, j->n_addrs);
	g->running = 0;
	free(j);
	if (g->head)
		event_active(g->ev_next, EV_TIMEOUT, 0);
	for (; r; r = next) {
		next = r->next; /* done() may free r */
		r->next = NULL;
		r->done(r);
	}
}

/* Takes the oldest requests, up to SMTPD_SUPP_GROUP_MAX addresses (always
 * one at least), into a job. */
static struct supp_job *job_take(struct smtpd_supp *g)
{
	struct supp_job *j = xcalloc(1, sizeof(*j));
	struct smtpd_supp_req **tail = &j->reqs;

	j->g = g;
	j->store = g->store;
	while (g->head && (j->n_reqs == 0 || j->n_addrs + g->head->n <= SMTPD_SUPP_GROUP_MAX)) {
		struct smtpd_supp_req *r = g->head;

		g->head = r->next;
		r->next = NULL;
		*tail = r;
		tail = &r->next;
		j->n_reqs++;
		j->n_addrs += r->n;
	}
	if (!g->head)
		g->tail = NULL;
	return j;
}

static void on_next(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_supp *g = arg;

	if (g->running || !g->head)
		return;
	g->running = 1;
	work_submit(g->wp, job_run, job_done, job_take(g));
}

struct smtpd_supp *smtpd_supp_new(struct event_base *base, struct work_pool *wp, struct store *st)
{
	struct smtpd_supp *g = xcalloc(1, sizeof(*g));

	g->wp = wp;
	g->store = st;
	g->ev_next = event_new(base, -1, 0, on_next, g);
	return g;
}

void smtpd_supp_check(struct smtpd_supp *g, struct smtpd_supp_req *r)
{
	r->failed = 0;
	r->next = NULL;
	if (g->tail)
		g->tail->next = r;
	else
		g->head = r;
	g->tail = r;
	/* from the loop, not now: the sessions served in this turn join too */
	if (!g->running)
		event_active(g->ev_next, EV_TIMEOUT, 0);
}

void smtpd_supp_free(struct smtpd_supp *g)
{
	struct smtpd_supp_req *r, *next;

	if (!g)
		return;
	r = g->head;
	g->head = g->tail = NULL;
	for (; r; r = next) {
		next = r->next;
		r->next = NULL;
		r->failed = 1;
		r->done(r);
	}
	event_free(g->ev_next);
	free(g);
}
