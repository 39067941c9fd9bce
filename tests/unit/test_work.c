/*
 * Unit tests for work/ (the thread pool): jobs run off the calling thread
 * and their done() on the loop; a pool with lanes bounds each lane's
 * waiting jobs, refuses over that bound, and runs the plain FIFO's jobs
 * first, then the lowest lane's, each lane in order.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "work/work.h"

struct world {
	struct event_base *base;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int gate_open; /* the blocking job waits for this */
	int blocked;   /* the blocking job has started */
	char order[32];
	int n_run, n_done;
};

struct item {
	struct world *w;
	char name;
	pthread_t ran_on;
};

static void job_block(void *arg)
{
	struct item *it = arg;
	struct world *w = it->w;

	pthread_mutex_lock(&w->mu);
	w->blocked = 1;
	pthread_cond_broadcast(&w->cv);
	while (!w->gate_open)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void job_note(void *arg)
{
	struct item *it = arg;

	it->ran_on = pthread_self();
	pthread_mutex_lock(&it->w->mu);
	it->w->order[it->w->n_run++] = it->name;
	pthread_mutex_unlock(&it->w->mu);
}

static void job_done(void *arg)
{
	struct item *it = arg;

	it->w->n_done++;
	if (it->name != '#')
		assert_true(pthread_equal(pthread_self(), it->ran_on) == 0); /* off the loop */
}

/* Runs the loop until n_done jobs are done (10 s at most): the workers
 * activate the pool's event from their threads. */
static void job_done_inline(void *arg)
{
	((struct item *)arg)->w->n_done++;
}

static void run_until(struct world *w, int n_done)
{
	int rounds = 0;

	while (w->n_done < n_done && rounds++ < 10000) {
		event_base_loop(w->base, EVLOOP_NONBLOCK);
		if (w->n_done < n_done)
			usleep(1000);
	}
	assert_int_equal(w->n_done, n_done);
}

static void world_init(struct world *w)
{
	memset(w, 0, sizeof(*w));
	evthread_use_pthreads();
	w->base = event_base_new();
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static void world_fini(struct world *w)
{
	event_base_free(w->base);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

/* Blocks the pool's one worker until open_gate(). */
static void block_worker(struct world *w, struct work_pool *wp, struct item *it)
{
	it->w = w;
	it->name = '#';
	work_submit(wp, job_block, job_done, it);
	pthread_mutex_lock(&w->mu);
	while (!w->blocked)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void open_gate(struct world *w)
{
	pthread_mutex_lock(&w->mu);
	w->gate_open = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void test_lanes_bound_and_order(void **state)
{
	const size_t max[2] = {2, 1};
	struct world w;
	struct work_pool *wp;
	struct item gate, it[8];
	const char *names = "ABCDEFPQ";
	int i;

	(void)state;
	world_init(&w);
	wp = work_pool_new_lanes(w.base, 1, 2, max);
	block_worker(&w, wp, &gate);
	for (i = 0; i < 8; i++) {
		it[i].w = &w;
		it[i].name = names[i];
	}
	/* while the worker is busy, jobs wait: lane 1 holds one, lane 0 two */
	assert_int_equal(work_try_submit(wp, 1, job_note, job_done, &it[0]), 0);  /* A */
	assert_int_equal(work_try_submit(wp, 1, job_note, job_done, &it[1]), -1); /* B */
	assert_int_equal(work_try_submit(wp, 0, job_note, job_done, &it[2]), 0);  /* C */
	assert_int_equal(work_try_submit(wp, 0, job_note, job_done, &it[3]), 0);  /* D */
	assert_int_equal(work_try_submit(wp, 0, job_note, job_done, &it[4]), -1); /* E */
	work_submit(wp, job_note, job_done, &it[6]);                              /* P */
	open_gate(&w);
	run_until(&w, 5); /* the gate, P, C, D, A */
	assert_memory_equal(w.order, "PCDA", 4);
	/* the lanes have room again */
	assert_int_equal(work_try_submit(wp, 1, job_note, job_done, &it[1]), 0);
	assert_int_equal(work_try_submit(wp, 0, job_note, job_done, &it[4]), 0);
	run_until(&w, 7);
	work_pool_free(wp);
	world_fini(&w);
}

static void test_free_runs_waiting_jobs(void **state)
{
	const size_t max[1] = {4};
	struct world w;
	struct work_pool *wp;
	struct item gate, it[3];
	int i;

	(void)state;
	world_init(&w);
	wp = work_pool_new_lanes(w.base, 1, 1, max);
	block_worker(&w, wp, &gate);
	for (i = 0; i < 3; i++) {
		it[i].w = &w;
		it[i].name = (char)('a' + i);
		assert_int_equal(work_try_submit(wp, 0, job_note, job_done, &it[i]), 0);
	}
	open_gate(&w);
	work_pool_free(wp); /* waits for them and runs their done() */
	assert_int_equal(w.n_done, 4);
	assert_memory_equal(w.order, "abc", 3);
	world_fini(&w);
}

/* A pool of 0 threads (unit tests of other modules) runs a lane's job at
 * once, as work_submit() does. */
static void test_no_threads(void **state)
{
	const size_t max[1] = {0};
	struct world w;
	struct work_pool *wp;
	struct item it = {0};

	(void)state;
	memset(&w, 0, sizeof(w));
	it.w = &w;
	it.name = 'z';
	wp = work_pool_new_lanes(NULL, 0, 1, max);
	pthread_mutex_init(&w.mu, NULL);
	assert_int_equal(work_try_submit(wp, 0, job_note, job_done_inline, &it), 0);
	assert_int_equal(w.n_run, 1);
	assert_int_equal(w.n_done, 1);
	work_pool_free(wp);
	pthread_mutex_destroy(&w.mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lanes_bound_and_order),
	    cmocka_unit_test(test_free_runs_waiting_jobs),
	    cmocka_unit_test(test_no_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
