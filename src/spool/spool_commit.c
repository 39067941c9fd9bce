/*
 * spool_commit.c: group commit. The one place where a received message
 * becomes durable, in one sequence (docs/spool.md, "Durability"):
 *
 *   1. finish each file of the batch: rest of the body, envelope record,
 *      header with the complete flag (spool_msg_write_out), then
 *      fdatasync each                              (spool_msg_sync)
 *   2. rename each tmp/ID -> queue/ID              (RENAME_NOREPLACE)
 *   3. ONE fsync of queue/ for the whole batch
 *   4. done(ok) for each, on the event loop thread
 *
 * Messages committed while a batch is on the disk wait for the next batch,
 * which takes all of them: the directory fsync, and the journal commits of
 * fdatasyncs issued together, are shared. Step 1 runs on up to
 * sync_threads threads at once (measured: parallel fdatasyncs join one
 * journal commit; see docs/spool.md).
 *
 * Threads: submit and the done() delivery on the loop thread; the
 * committer and its helpers touch a message only between submit and
 * delivery, and the lists only under the mutex.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "spool/spool_int.h"

struct spool_committer {
	pthread_t thread;
	pthread_mutex_t mu; /* guards pending, done, stop */
	pthread_cond_t cv;
	struct spool_msg *pending, **pending_tail;
	struct spool_msg *done, **done_tail;
	int stop;
	int paused; /* tests: hold pending work to build a batch */
	int efd;    /* committer -> loop: "the done list has news" */
	struct event *ev;

	/* Helpers for step 1. jobs..left are guarded by smu. */
	pthread_mutex_t smu;
	pthread_cond_t swork, sidle;
	pthread_t helpers[SPOOL_SYNC_THREADS_MAX];
	unsigned n_helpers;
	struct spool_msg **jobs;
	size_t n_jobs, next_job, left;
	int sstop;
};

/* Worker threads must not take the daemon's signals (SIGTERM, SIGHUP):
 * those belong to the event loop thread. */
static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* ---- step 1: writes on the committer, fdatasyncs possibly in parallel ---- */

/* Runs jobs until none is left to take; smu is held on entry and exit. */
static void take_jobs(struct spool_committer *cm)
{
	while (cm->next_job < cm->n_jobs) {
		struct spool_msg *m = cm->jobs[cm->next_job++];
		pthread_mutex_unlock(&cm->smu);
		spool_msg_sync(m);
		pthread_mutex_lock(&cm->smu);
		if (--cm->left == 0)
			pthread_cond_signal(&cm->sidle);
	}
}

static void *helper_main(void *arg)
{
	struct spool_committer *cm = arg;

	pthread_mutex_lock(&cm->smu);
	while (!cm->sstop) {
		take_jobs(cm);
		if (!cm->sstop)
			pthread_cond_wait(&cm->swork, &cm->smu);
	}
	pthread_mutex_unlock(&cm->smu);
	return NULL;
}

static void grow_helpers(struct spool *sp, struct spool_committer *cm)
{
	unsigned want = atomic_load(&sp->sync_threads) - 1;

	while (cm->n_helpers < want) {
		if (spawn(&cm->helpers[cm->n_helpers], helper_main, cm) != 0) {
			log_warn("event=spool_helper_spawn_failed helpers=%u", cm->n_helpers);
			atomic_store(&sp->sync_threads, cm->n_helpers + 1);
			return;
		}
		cm->n_helpers++;
	}
}

static void finish_all(struct spool *sp, struct spool_msg **ms, size_t n)
{
	struct spool_committer *cm = sp->cm;
	size_t i;

	for (i = 0; i < n; i++)
		spool_msg_write_out(ms[i]);
	if (!cm || n < 2 || atomic_load(&sp->sync_threads) < 2) {
		for (i = 0; i < n; i++)
			spool_msg_sync(ms[i]);
		return;
	}
	grow_helpers(sp, cm);
	pthread_mutex_lock(&cm->smu);
	cm->jobs = ms, cm->n_jobs = n, cm->next_job = 0, cm->left = n;
	pthread_cond_broadcast(&cm->swork);
	take_jobs(cm);
	while (cm->left > 0)
		pthread_cond_wait(&cm->sidle, &cm->smu);
	cm->jobs = NULL, cm->n_jobs = cm->next_job = 0;
	pthread_mutex_unlock(&cm->smu);
}

static void stop_helpers(struct spool_committer *cm)
{
	pthread_mutex_lock(&cm->smu);
	cm->sstop = 1;
	pthread_cond_broadcast(&cm->swork);
	pthread_mutex_unlock(&cm->smu);
	for (unsigned i = 0; i < cm->n_helpers; i++)
		pthread_join(cm->helpers[i], NULL);
	cm->n_helpers = 0;
}

/* ---- steps 2 and 3 ---- */

static int rename_in(struct spool *sp, struct spool_msg *m)
{
	int rc = renameat2(sp->tmp_fd, m->id, sp->queue_fd, m->id, RENAME_NOREPLACE);

	/* A file system without RENAME_NOREPLACE: IDs are unique anyway. */
	if (rc < 0 && errno == EINVAL)
		rc = renameat(sp->tmp_fd, m->id, sp->queue_fd, m->id);
	if (rc < 0) {
		m->err = errno;
		log_err("queue=%s event=spool_rename_error error=%s", m->id,
		        log_q(strerror(errno)));
	}
	return rc;
}

/* After a failed directory fsync nobody knows which renames are durable;
 * the contract is "ok=0 and nothing left in the queue", so take them out
 * (the client will send again: a duplicate at worst, never a loss). */
static void unqueue(struct spool *sp, struct spool_msg **ms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (ms[i]->ok && unlinkat(sp->queue_fd, ms[i]->id, 0) < 0)
			log_err("queue=%s event=spool_unqueue_error error=%s", ms[i]->id,
			        log_q(strerror(errno)));
		ms[i]->ok = 0;
	}
}

static void fail_cleanup(struct spool *sp, struct spool_msg *m)
{
	log_err("queue=%s event=spool_commit_failed error=%s", m->id,
	        log_q(strerror(m->err ? m->err : EIO)));
	if (unlinkat(sp->tmp_fd, m->id, 0) < 0 && errno != ENOENT)
		log_err("queue=%s event=spool_unlink_error error=%s", m->id,
		        log_q(strerror(errno)));
}

void spool_commit_batch(struct spool *sp, struct spool_msg **ms, size_t n)
{
	size_t i, renamed = 0;

	finish_all(sp, ms, n);
	for (i = 0; i < n; i++) {
		ms[i]->ok = !ms[i]->err && rename_in(sp, ms[i]) == 0;
		renamed += (size_t)ms[i]->ok;
		close(ms[i]->fd);
		ms[i]->fd = -1;
	}
	if (renamed && spool_fsync(sp, sp->queue_fd, 0) < 0) {
		log_err("event=spool_dir_fsync_error messages=%zu error=%s", renamed,
		        log_q(strerror(errno)));
		unqueue(sp, ms, n);
		renamed = 0;
	}
	for (i = 0; i < n; i++)
		if (!ms[i]->ok)
			fail_cleanup(sp, ms[i]);
	atomic_fetch_add(&sp->batches, 1);
	atomic_fetch_add(&sp->commits, renamed);
}

/* ---- the committer thread ---- */

/* Commits a list; returns its last element. */
static struct spool_msg *run_batch(struct spool *sp, struct spool_msg *list)
{
	struct spool_msg *m, **ms;
	size_t n = 0, i = 0;

	for (m = list; m; m = m->next)
		n++;
	ms = xcalloc(n, sizeof(*ms));
	for (m = list; m; m = m->next)
		ms[i++] = m;
	spool_commit_batch(sp, ms, n);
	log_debug("event=spool_commit_batch messages=%zu", n);
	m = ms[n - 1];
	free(ms);
	return m;
}

static void notify_loop(struct spool_committer *cm)
{
	uint64_t one = 1;

	if (write(cm->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("event=spool_notify_error error=%s", log_q(strerror(errno)));
}

static void *committer_main(void *arg)
{
	struct spool *sp = arg;
	struct spool_committer *cm = sp->cm;
	struct spool_msg *batch, *last;

	for (;;) {
		pthread_mutex_lock(&cm->mu);
		while ((!cm->pending || cm->paused) && !cm->stop)
			pthread_cond_wait(&cm->cv, &cm->mu);
		batch = cm->pending;
		cm->pending = NULL, cm->pending_tail = &cm->pending;
		pthread_mutex_unlock(&cm->mu);
		if (!batch)
			break;
		last = run_batch(sp, batch);
		pthread_mutex_lock(&cm->mu);
		*cm->done_tail = batch, cm->done_tail = &last->next;
		pthread_mutex_unlock(&cm->mu);
		notify_loop(cm);
	}
	stop_helpers(cm);
	return NULL;
}

void spool_commit_pause(struct spool *sp, int paused)
{
	struct spool_committer *cm = sp->cm;

	pthread_mutex_lock(&cm->mu);
	cm->paused = paused;
	pthread_cond_signal(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
}

void spool_committer_submit(struct spool *sp, struct spool_msg *m)
{
	struct spool_committer *cm = sp->cm;

	m->next = NULL;
	pthread_mutex_lock(&cm->mu);
	*cm->pending_tail = m, cm->pending_tail = &m->next;
	pthread_cond_signal(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
}

/* On the loop thread: done() for every finished message. The list is taken
 * whole and the lock dropped first, so done() may commit again. */
static void deliver_done(struct spool *sp)
{
	struct spool_committer *cm = sp->cm;
	struct spool_msg *m, *next;

	pthread_mutex_lock(&cm->mu);
	m = cm->done;
	cm->done = NULL, cm->done_tail = &cm->done;
	pthread_mutex_unlock(&cm->mu);
	for (; m; m = next) {
		next = m->next;
		atomic_fetch_sub(&sp->inflight, 1);
		metrics_observe_us(M_SPOOL_COMMIT_LATENCY, clock_mono_us() - m->commit_us);
		m->done(m->arg, m->ok, m->id);
		spool_msg_free(m);
	}
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_err("event=spool_notify_error error=%s", log_q(strerror(errno)));
	deliver_done(arg);
}

static void committer_free(struct spool_committer *cm)
{
	if (cm->ev)
		event_free(cm->ev);
	if (cm->efd >= 0)
		close(cm->efd);
	pthread_mutex_destroy(&cm->mu);
	pthread_cond_destroy(&cm->cv);
	pthread_mutex_destroy(&cm->smu);
	pthread_cond_destroy(&cm->swork);
	pthread_cond_destroy(&cm->sidle);
	free(cm);
}

/* An eventfd rather than event_active() from the committer: it works
 * whether or not evthread_use_pthreads() ran before the base was made. */
int spool_committer_start(struct spool *sp, char **err)
{
	struct spool_committer *cm = xcalloc(1, sizeof(*cm));

	pthread_mutex_init(&cm->mu, NULL);
	pthread_cond_init(&cm->cv, NULL);
	pthread_mutex_init(&cm->smu, NULL);
	pthread_cond_init(&cm->swork, NULL);
	pthread_cond_init(&cm->sidle, NULL);
	cm->pending_tail = &cm->pending;
	cm->done_tail = &cm->done;
	cm->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (cm->efd >= 0)
		cm->ev = event_new(sp->base, cm->efd, EV_READ | EV_PERSIST, on_notify, sp);
	if (!cm->ev || event_add(cm->ev, NULL) < 0) {
		*err =
		    spool_errf("spool: cannot set up the commit notification: %s", strerror(errno));
		committer_free(cm);
		return -1;
	}
	sp->cm = cm;
	if (spawn(&cm->thread, committer_main, sp) != 0) {
		*err = xstrdup("spool: cannot start the committer thread");
		sp->cm = NULL;
		committer_free(cm);
		return -1;
	}
	return 0;
}

void spool_committer_stop(struct spool *sp)
{
	struct spool_committer *cm = sp->cm;

	pthread_mutex_lock(&cm->mu);
	cm->stop = 1;
	pthread_cond_signal(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
	pthread_join(cm->thread, NULL);
	deliver_done(sp);
	sp->cm = NULL;
	committer_free(cm);
}
