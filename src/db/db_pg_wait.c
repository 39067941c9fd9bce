/*
 * db_pg_wait: every command the PostgreSQL driver sends goes out without
 * blocking (PQsend*) and its answer is awaited with a deadline of our own.
 *
 * Why: the server's statement_timeout and TCP's timeouts do not cover a
 * server that is alive for the kernel but answers nothing (a stopped or
 * stuck postmaster: the kernel still acknowledges every byte). Such a wait
 * in libpq has no end, and the thread (a work-pool worker, the events
 * writer, the stopping main thread) with it.
 *
 * Promises:
 * - A call waits at most the answer limit (db_set_answer_limit, [cluster]
 *   postgres_timeout, 20 s by default) for the whole answer. Past it the
 *   connection is dropped (a transaction open on it is lost, and the
 *   server rolls it back), the error says so, and the call returns NULL;
 *   db_pg_fail then reports DB_LOST. The next statement outside a
 *   transaction connects again.
 * - After db_hurry() (a stopping server) each wait, also one already
 *   under way, ends within DB_HURRY_MS, and a dropped connection is not
 *   opened again: the stop is never held by a silent database.
 * - Like PQexec, the answer is the last result, or the first failed one.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "db/db_pg_int.h"
#include "util/util.h"

/* lock_timeout (10 s) and a margin: a healthy server waiting for a lock
 * answers (with an error) before this, so a stop cuts only a silent one. */
#define DB_HURRY_MS 12000
#define SLICE_MS    250 /* a wait looks at the hurry flag this often */

static atomic_uint answer_limit_ms = 20000;
static atomic_ullong hurry_since_ms; /* 0: not hurrying */

void db_set_answer_limit(unsigned ms)
{
	atomic_store(&answer_limit_ms, ms > 0 ? ms : 1);
}

void db_hurry(void)
{
	unsigned long long zero = 0;

	atomic_compare_exchange_strong(&hurry_since_ms, &zero, clock_mono_ms());
}

int db_pg_hurrying(void)
{
	return atomic_load(&hurry_since_ms) != 0;
}

/* When a wait that began at start must end. */
static uint64_t deadline_of(uint64_t start)
{
	uint64_t end = start + atomic_load(&answer_limit_ms);
	uint64_t hurry = atomic_load(&hurry_since_ms);

	if (hurry) {
		uint64_t h = (hurry > start ? hurry : start) + DB_HURRY_MS;
		end = h < end ? h : end;
	}
	return end;
}

/* The connection given up: the error kept, the connection closed. */
static PGresult *give_up(struct db_pg *d, const char *why)
{
	free(d->err);
	d->err = xstrdup(why);
	PQfinish(d->c);
	d->c = NULL;
	db_pg_cache_clear(d);
	return NULL;
}

/* Waits until the answer is in (0), the deadline passes (1) or the
 * connection fails (-1). */
static int await(struct db_pg *d, uint64_t start)
{
	for (;;) {
		int out = PQflush(d->c);
		uint64_t now = clock_mono_ms(), end;
		struct pollfd p = {PQsocket(d->c), POLLIN, 0};
		int n;

		if (out < 0)
			return -1;
		if (out == 0 && !PQisBusy(d->c))
			return 0;
		end = deadline_of(start);
		if (now >= end)
			return 1;
		p.events |= out ? POLLOUT : 0;
		n = poll(&p, 1, (int)(end - now < SLICE_MS ? end - now : SLICE_MS));
		if (n < 0 && errno != EINTR)
			return -1;
		if (n > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(d->c))
			return -1;
	}
}

/* After a PQsend* that returned sent: the answer, as PQexec gives it. */
static PGresult *answer(struct db_pg *d, int sent)
{
	uint64_t start = clock_mono_ms();
	PGresult *keep = NULL, *r;
	int w;

	if (!sent)
		return NULL;
	for (;;) {
		if ((w = await(d, start)) != 0) {
			PQclear(keep);
			if (w > 0)
				return give_up(d,
				               "no answer from the database server in time "
				               "([cluster] postgres_timeout); connection dropped");
			return NULL;
		}
		if (!(r = PQgetResult(d->c)))
			return keep;
		if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(r);
			continue;
		}
		PQclear(keep);
		keep = r;
	}
}

/* Nonblocking, so that PQsend* never waits on a full socket either. */
static int ready(struct db_pg *d)
{
	return d->c != NULL && (PQisnonblocking(d->c) || PQsetnonblocking(d->c, 1) == 0);
}

PGresult *db_pg_exec(struct db_pg *d, const char *sql)
{
	return ready(d) ? answer(d, PQsendQuery(d->c, sql)) : NULL;
}

PGresult *db_pg_exec_params(struct db_pg *d, const struct pg_stmt *s)
{
	const char *const *vals = (const char *const *)s->vals;

	if (!ready(d))
		return NULL;
	return answer(
	    d, PQsendQueryParams(d->c, s->sql, s->nparams, s->types, vals, s->lens, s->fmts, 0));
}

PGresult *db_pg_exec_prepared(struct db_pg *d, const char *name, const struct pg_stmt *s)
{
	const char *const *vals = (const char *const *)s->vals;

	if (!ready(d))
		return NULL;
	return answer(d, PQsendQueryPrepared(d->c, name, s->nparams, vals, s->lens, s->fmts, 0));
}

PGresult *db_pg_prepare_named(struct db_pg *d, const char *name, const struct pg_stmt *s)
{
	if (!ready(d))
		return NULL;
	return answer(d, PQsendPrepare(d->c, name, s->sql, s->nparams, s->types));
}
