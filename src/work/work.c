/*
 * work: thread pool. Jobs go to the workers through a mutex-protected FIFO;
 * finished jobs come back through a second FIFO and one event that the
 * workers activate (libevent is set up for threads by main via
 * evthread_use_pthreads(), which makes event_active() safe from here).
 *
 * A pool made by work_pool_new_lanes() also has lanes, each a FIFO with a
 * bound on its waiting jobs: a worker takes the plain FIFO's jobs first,
 * then the lowest non-empty lane's.
 */
#include "work/work.h"

#include <assert.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct job {
	void (*fn)(void *);
	void (*done)(void *);
	void *arg;
	int lane; /* -1: the plain FIFO */
	struct job *next;
};

struct fifo {
	struct job *head, *tail;
};

struct work_pool {
	struct event_base *base;
	struct event *ev_done;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fifo todo, finished;
	int stopping;
	int n_threads;
	pthread_t *threads;
	/* work_pool_new_lanes(): waiting jobs per lane, and their bounds */
	int n_lanes;
	struct fifo *lanes;
	size_t *waiting, *max_waiting;
};

static void fifo_push(struct fifo *f, struct job *j)
{
	j->next = NULL;
	if (f->tail)
		f->tail->next = j;
	else
		f->head = j;
	f->tail = j;
}

static struct job *fifo_take_all(struct fifo *f)
{
	struct job *j = f->head;
	f->head = f->tail = NULL;
	return j;
}

/* Under mu: the FIFO the next job comes from, or NULL when none waits. */
static struct fifo *next_fifo(struct work_pool *wp)
{
	int i;

	if (wp->todo.head)
		return &wp->todo;
	for (i = 0; i < wp->n_lanes; i++)
		if (wp->lanes[i].head)
			return &wp->lanes[i];
	return NULL;
}

static void *worker_main(void *arg)
{
	struct work_pool *wp = arg;
	struct fifo *f;
	struct job *j;

	pthread_mutex_lock(&wp->mu);
	for (;;) {
		while (!(f = next_fifo(wp)) && !wp->stopping)
			pthread_cond_wait(&wp->cv, &wp->mu);
		if (!f)
			break;
		j = f->head;
		f->head = j->next;
		if (!f->head)
			f->tail = NULL;
		if (j->lane >= 0)
			wp->waiting[j->lane]--;
		pthread_mutex_unlock(&wp->mu);
		j->fn(j->arg);
		pthread_mutex_lock(&wp->mu);
		fifo_push(&wp->finished, j);
		event_active(wp->ev_done, EV_READ, 0);
	}
	pthread_mutex_unlock(&wp->mu);
	return NULL;
}

static void run_finished(struct work_pool *wp)
{
	struct job *j, *next;

	pthread_mutex_lock(&wp->mu);
	j = fifo_take_all(&wp->finished);
	pthread_mutex_unlock(&wp->mu);
	for (; j; j = next) {
		next = j->next;
		if (j->done)
			j->done(j->arg);
		free(j);
	}
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	run_finished(arg);
}

struct work_pool *work_pool_new(struct event_base *base, int threads)
{
	struct work_pool *wp = xcalloc(1, sizeof(*wp));
	int i;

	wp->base = base;
	if (threads > 0)
		wp->ev_done = event_new(base, -1, 0, on_done, wp);
	pthread_mutex_init(&wp->mu, NULL);
	pthread_cond_init(&wp->cv, NULL);
	wp->n_threads = threads;
	wp->threads = xcalloc((size_t)threads, sizeof(pthread_t));
	for (i = 0; i < threads; i++)
		if (pthread_create(&wp->threads[i], NULL, worker_main, wp) != 0)
			abort();
	return wp;
}

void work_pool_free(struct work_pool *wp)
{
	int i;

	pthread_mutex_lock(&wp->mu);
	wp->stopping = 1;
	pthread_cond_broadcast(&wp->cv);
	pthread_mutex_unlock(&wp->mu);
	for (i = 0; i < wp->n_threads; i++)
		pthread_join(wp->threads[i], NULL);
	run_finished(wp);
	if (wp->ev_done)
		event_free(wp->ev_done);
	pthread_mutex_destroy(&wp->mu);
	pthread_cond_destroy(&wp->cv);
	free(wp->threads);
	free(wp->lanes);
	free(wp->waiting);
	free(wp->max_waiting);
	free(wp);
}

void work_submit(struct work_pool *wp, void (*fn)(void *), void (*done)(void *), void *arg)
{
	struct job *j;

	if (wp->n_threads == 0) {
		fn(arg);
		if (done)
			done(arg);
		return;
	}
	j = xmalloc(sizeof(*j));
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	j->lane = -1;
	pthread_mutex_lock(&wp->mu);
	fifo_push(&wp->todo, j);
	pthread_cond_signal(&wp->cv);
	pthread_mutex_unlock(&wp->mu);
}

struct work_pool *work_pool_new_lanes(struct event_base *base, int threads, int n_lanes,
                                      const size_t *max_waiting)
{
	struct work_pool *wp = work_pool_new(base, threads);
	size_t n = (size_t)n_lanes;

	pthread_mutex_lock(&wp->mu); /* the workers run already */
	wp->lanes = xcalloc(n, sizeof(*wp->lanes));
	wp->waiting = xcalloc(n, sizeof(*wp->waiting));
	wp->max_waiting = xcalloc(n, sizeof(*wp->max_waiting));
	memcpy(wp->max_waiting, max_waiting, n * sizeof(*max_waiting));
	wp->n_lanes = n_lanes;
	pthread_mutex_unlock(&wp->mu);
	return wp;
}

int work_try_submit(struct work_pool *wp, int lane, void (*fn)(void *), void (*done)(void *),
                    void *arg)
{
	struct job *j;

	assert(lane >= 0 && lane < wp->n_lanes);
	if (wp->n_threads == 0) { /* as work_submit(): at once */
		work_submit(wp, fn, done, arg);
		return 0;
	}
	pthread_mutex_lock(&wp->mu);
	if (wp->waiting[lane] >= wp->max_waiting[lane]) {
		pthread_mutex_unlock(&wp->mu);
		return -1;
	}
	j = xmalloc(sizeof(*j));
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	j->lane = lane;
	wp->waiting[lane]++;
	fifo_push(&wp->lanes[lane], j);
	pthread_cond_signal(&wp->cv);
	pthread_mutex_unlock(&wp->mu);
	return 0;
}
