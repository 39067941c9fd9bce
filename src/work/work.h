/*
 * work: a small pool of threads for blocking calls (SQLite, argon2id) so
 * the event loop never waits on them. work_submit() runs fn(arg) on a
 * worker, then done(arg) on the event loop thread. Requests complete in
 * any order; each carries its own arg, so nothing is matched by position.
 * Work that moves mail (store writes, sender checks, DKIM) and password
 * hashing never share a pool: the latter has its own, bounded.
 */
#ifndef POSTHORN_WORK_H
#define POSTHORN_WORK_H

#include <stddef.h>

struct event_base;
struct work_pool;

/* threads 0: a pool without threads, for unit tests: work_submit() runs
 * fn(arg) then done(arg) at once, on the caller's thread, before it
 * returns (base may then be NULL). */
struct work_pool *work_pool_new(struct event_base *base, int threads);
/* Waits for queued and running jobs and runs their done() callbacks. */
void work_pool_free(struct work_pool *wp);
void work_submit(struct work_pool *wp, void (*fn)(void *arg), void (*done)(void *arg), void *arg);

/*
 * A pool with lanes 0..n_lanes-1 for work_try_submit(), lane i holding at
 * most max_waiting[i] jobs not yet started (a job that runs no longer
 * counts). A worker takes the oldest job of the lowest non-empty lane
 * (after any work_submit() job). For work that must not pile up without
 * bound, such as password hashing (smtpd's AUTH queue).
 */
struct work_pool *work_pool_new_lanes(struct event_base *base, int threads, int n_lanes,
                                      const size_t *max_waiting);
/* 0 when the job is queued (fn, then done, run as for work_submit(); at
 * once in a pool of 0 threads), -1 when its lane is full (nothing runs;
 * the caller still owns arg). */
int work_try_submit(struct work_pool *wp, int lane, void (*fn)(void *arg), void (*done)(void *arg),
                    void *arg);

#endif
