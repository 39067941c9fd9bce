/*
 * work: a small pool of threads for blocking calls (SQLite, argon2id) so
 * the event loop never waits on them. work_submit() runs fn(arg) on a
 * worker, then done(arg) on the event loop thread. Requests complete in
 * any order; each carries its own arg, so nothing is matched by position.
 */
#ifndef POSTHORN_WORK_H
#define POSTHORN_WORK_H

struct event_base;
struct work_pool;

/* threads 0: a pool without threads, for unit tests: work_submit() runs
 * fn(arg) then done(arg) at once, on the caller's thread, before it
 * returns (base may then be NULL). */
struct work_pool *work_pool_new(struct event_base *base, int threads);
/* Waits for queued and running jobs and runs their done() callbacks. */
void work_pool_free(struct work_pool *wp);
void work_submit(struct work_pool *wp, void (*fn)(void *arg), void (*done)(void *arg), void *arg);

#endif
