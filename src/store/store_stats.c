/*
 * store_stats: the delivery counters table (migration 2 in store.c):
 * counters(bucket, account, domain, event, count), one row per hour,
 * account, recipient domain and event.
 *
 * Promises:
 * - store_counts_add() applies a whole batch in one transaction, so a
 *   batch counts fully or not at all; a failed batch may be retried as is.
 *   Every entry is checked before the transaction starts.
 * - store_counts_add_once() does the same with a batch key recorded in the
 *   transaction (store_events_once.h): a retry after a COMMIT that got no
 *   answer but went through adds nothing.
 * - Counts only grow (UPSERT adding to the row), so a CLI reading while
 *   the daemon writes sees each batch entirely or not at all.
 * - Callbacks of store_counts_query() run after st->lock is released.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_events_once.h"
#include "store/store_int.h"
#include "util/util.h"

/* lower(): SQLite folds ASCII only, which is all a DNS name holds. */
static const char upsert_sql[] = "INSERT INTO counters (bucket, account, domain, event, count)"
                                 " VALUES (?1, ?2, lower(?3), ?4, ?5)"
                                 " ON CONFLICT (bucket, account, domain, event)"
                                 " DO UPDATE SET count = counters.count + excluded.count";

/* HAVING: rows another tool left at 0 are not news. */
static const char query_sql[] = "SELECT domain, event, sum(count) FROM counters"
                                " WHERE bucket >= ?1 AND (CAST(?2 AS TEXT) IS NULL OR account = ?2)"
                                " GROUP BY domain, event HAVING sum(count) > 0"
                                " ORDER BY domain, event";

/* ---- adding -------------------------------------------------------------- */

static int text_ok(const char *s, size_t max)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

static int count_check(const struct store_count *c, size_t i, char **err)
{
	if (!text_ok(c->account, COUNTER_ACCOUNT_MAX))
		return store_fail(err, "counter %zu: invalid account", i);
	if (!text_ok(c->domain, COUNTER_DOMAIN_MAX))
		return store_fail(err, "counter %zu: invalid domain", i);
	if (counter_event_parse(c->event) < 0)
		return store_fail(err, "counter %zu: unknown event '%s'", i,
		                  c->event ? c->event : "(null)");
	if (c->n > (uint64_t)INT64_MAX)
		return store_fail(err, "counter %zu: count too large", i);
	return 0;
}

/* Count i of arg (a struct store_count array), in add_once_locked()'s loop: a
 * batch may hold thousands of rows, and they all go in one transaction. */
static int upsert_one(struct store *st, struct db_stmt *stmt, size_t i, void *arg, char **err)
{
	const struct store_count *c = (const struct store_count *)arg + i;

	if (c->n == 0)
		return 0;
	db_bind_int64(stmt, 1, counter_bucket(c->bucket_hour));
	db_bind_text(stmt, 2, c->account, -1, DB_STATIC);
	db_bind_text(stmt, 3, c->domain, -1, DB_STATIC);
	db_bind_text(stmt, 4, c->event, -1, DB_STATIC);
	db_bind_int64(stmt, 5, (int64_t)c->n);
	if (db_step(stmt) != DB_DONE)
		return store_fail_db(st, err, "add counter");
	return 0;
}

static int counts_check(const struct store_count *c, size_t n, size_t *nonzero, char **err)
{
	*nonzero = 0;
	for (size_t i = 0; i < n; i++) {
		if (count_check(&c[i], i, err) < 0)
			return -1;
		*nonzero += c[i].n > 0;
	}
	return 0;
}

int store_counts_add(struct store *st, const struct store_count *c, size_t n, char **err)
{
	return store_counts_add_once(st, NULL, c, n, err); /* no key: never written before */
}

/* The key, then every count, in one transaction (st->lock held). */
static int add_once_locked(struct store *st, const char *key, const struct store_count *c, size_t n,
                           char **err)
{
	struct db_stmt *stmt = NULL;
	int rc, fresh;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((fresh = store_batch_key_claim(st, key, err)) <= 0) {
		store_tx_rollback(st);
		return fresh < 0 ? -1 : STORE_EVENT_WRITTEN_BEFORE;
	}
	rc = (stmt = store_prepare(st, upsert_sql, err)) ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		db_reset(stmt);
		rc = upsert_one(st, stmt, i, (void *)c, err);
	}
	db_finalize(stmt);
	if (rc < 0 || store_tx_commit(st, err) < 0) {
		store_tx_rollback(st);
		return -1;
	}
	return 0;
}

int store_counts_add_once(struct store *st, const char *key, const struct store_count *c, size_t n,
                          char **err)
{
	size_t nonzero;
	int rc;

	if (counts_check(c, n, &nonzero, err) < 0)
		return -1;
	/* Nothing to add: no transaction, no fsync. */
	if (nonzero == 0)
		return 0;
	pthread_mutex_lock(&st->lock);
	rc = add_once_locked(st, key, c, n, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- querying ------------------------------------------------------------ */

struct count_row {
	char *domain;
	int event;
	uint64_t n;
};

struct count_rows {
	struct count_row *v;
	size_t n, cap;
};

static void rows_add(struct count_rows *rows, const char *domain, int event, int64_t n)
{
	struct count_row *r;

	if (rows->n == rows->cap) {
		rows->cap = rows->cap ? rows->cap * 2 : 16;
		rows->v = xrealloc(rows->v, rows->cap * sizeof *rows->v);
	}
	r = &rows->v[rows->n++];
	r->domain = xstrdup(domain);
	r->event = event;
	r->n = (uint64_t)n;
}

static void rows_free(struct count_rows *rows)
{
	for (size_t i = 0; i < rows->n; i++)
		free(rows->v[i].domain);
	free(rows->v);
}

/* One SELECT is one snapshot: the totals are consistent with each other. */
static int query_locked(struct store *st, int64_t since, const char *account,
                        struct count_rows *rows, char **err)
{
	struct db_stmt *stmt = store_prepare(st, query_sql, err);
	int rc;

	if (stmt == NULL)
		return -1;
	db_bind_int64(stmt, 1, counter_bucket(since));
	if (account != NULL)
		db_bind_text(stmt, 2, account, -1, DB_STATIC);
	while ((rc = db_step(stmt)) == DB_ROW) {
		const char *domain = (const char *)db_column_text(stmt, 0);
		int event = counter_event_parse((const char *)db_column_text(stmt, 1));

		/* The CHECK constraint keeps other events out; be safe anyway. */
		if (domain != NULL && event >= 0)
			rows_add(rows, domain, event, db_column_int64(stmt, 2));
	}
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "query counters");
	return 0;
}

int store_counts_query(struct store *st, int64_t since, const char *account,
                       void (*cb)(void *arg, const char *domain, const char *event, uint64_t n),
                       void *arg, char **err)
{
	struct count_rows rows = {0};
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = query_locked(st, since, account, &rows, err);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; rc == 0 && i < rows.n; i++)
		cb(arg, rows.v[i].domain, counter_event_name(rows.v[i].event), rows.v[i].n);
	rows_free(&rows);
	return rc;
}
