/*
 * store_webhooks: the webhooks table and its recent failures (migration 8
 * in store.c): what the API's /v1/webhooks routes change, and the delivery
 * state the dispatcher (src/events/events_hook.c) keeps across restarts.
 *
 * Promises:
 * - Scope is applied in SQL: a webhook of another account is reported
 *   exactly like one that does not exist (STORE_NOT_FOUND).
 * - A new webhook starts after the last event written: it is sent what
 *   happens from then on, not the history.
 * - The delivery state moves only forwards: a cursor is never set back,
 *   and a failed attempt is recorded together with the run's new state in
 *   one transaction, the failures beyond WEBHOOK_FAILURES_KEPT going.
 * - The secret is kept as given: it is the HMAC key, so it cannot be
 *   hashed. It is handed out once, by the API's create.
 * - ids are given by the code (max + 1) so that the SQL is the same on
 *   PostgreSQL, in transactions that wait for each other (store_tx_serial),
 *   so that nodes adding webhooks or failures at once never take one id.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

#define HOOK_COLUMNS                                                                               \
	"w.id, a.name, w.url, w.secret, w.description, w.types, w.unrestricted, w.created_at,"     \
	" w.last_event_id, w.failures, w.first_failure_at, w.next_attempt_at"
#define IN_SCOPE                                                                                   \
	"(CAST(?2 AS TEXT) IS NULL OR account_id = (SELECT id FROM accounts WHERE name = ?2))"

static const char create_sql[] =
    "INSERT INTO webhooks (id, account_id, url, secret, description, types, unrestricted,"
    " created_at, last_event_id)"
    " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM webhooks),"
    " (SELECT id FROM accounts WHERE name = ?1), ?2, ?3, ?4, ?5, ?6, ?7,"
    " (SELECT coalesce(max(id), 0) FROM events)) RETURNING id";
static const char select_sql[] =
    "SELECT " HOOK_COLUMNS " FROM webhooks w"
    " JOIN accounts a ON a.id = w.account_id"
    " WHERE (?1 = 0 OR w.id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR a.name = ?2)"
    " ORDER BY w.id";
/* A changed URL or secret is tried at once: the run of failures ends. */
static const char update_sql[] =
    "UPDATE webhooks SET url = coalesce(?3, url), secret = coalesce(?4, secret),"
    " description = coalesce(?5, description),"
    " types = CASE WHEN ?6 = 0 THEN types ELSE ?6 END,"
    " failures = CASE WHEN ?3 IS NULL AND ?4 IS NULL THEN failures ELSE 0 END,"
    " first_failure_at = CASE WHEN ?3 IS NULL AND ?4 IS NULL THEN first_failure_at ELSE 0 END,"
    " next_attempt_at = CASE WHEN ?3 IS NULL AND ?4 IS NULL THEN next_attempt_at ELSE 0 END"
    " WHERE id = ?1 AND " IN_SCOPE;
static const char delivered_sql[] =
    "UPDATE webhooks SET last_event_id = CASE WHEN last_event_id < ?2 THEN ?2"
    " ELSE last_event_id END, failures = 0, first_failure_at = 0, next_attempt_at = 0"
    " WHERE id = ?1";
static const char failed_sql[] =
    "UPDATE webhooks SET failures = ?2, first_failure_at = ?3, next_attempt_at = ?4,"
    " last_event_id = CASE WHEN last_event_id < ?5 THEN ?5 ELSE last_event_id END"
    " WHERE id = ?1";
static const char failure_sql[] =
    "INSERT INTO webhook_failures (id, webhook_id, time, first_event, last_event, status,"
    " error, dropped) VALUES ((SELECT coalesce(max(id), 0) + 1 FROM webhook_failures),"
    " ?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char trim_sql[] =
    "DELETE FROM webhook_failures WHERE webhook_id = ?1 AND id NOT IN"
    " (SELECT id FROM webhook_failures WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2)";
static const char failures_sql[] =
    "SELECT time, first_event, last_event, status, error, dropped FROM webhook_failures"
    " WHERE webhook_id = ?1 ORDER BY id DESC";

void store_webhook_clear(struct store_webhook *w)
{
	free(w->url);
	free(w->secret);
	free(w->description);
	memset(w, 0, sizeof(*w));
}

static void read_hook(struct db_stmt *stmt, struct store_webhook *w)
{
	const char *account = db_column_text(stmt, 1);

	memset(w, 0, sizeof(*w));
	w->id = db_column_int64(stmt, 0);
	snprintf(w->account, sizeof(w->account), "%s", account ? (const char *)account : "");
	w->url = store_col_text(stmt, 2);
	w->secret = store_col_text(stmt, 3);
	w->description = store_col_text(stmt, 4);
	w->types = (unsigned)db_column_int64(stmt, 5);
	w->unrestricted = db_column_int(stmt, 6) != 0;
	w->created_at = db_column_int64(stmt, 7);
	w->last_event_id = db_column_int64(stmt, 8);
	w->failures = db_column_int64(stmt, 9);
	w->first_failure_ms = db_column_int64(stmt, 10);
	w->next_attempt_ms = db_column_int64(stmt, 11);
}

static void bind_opt(struct db_stmt *stmt, int i, const char *s)
{
	if (s)
		db_bind_text(stmt, i, s, -1, DB_STATIC);
	else
		db_bind_null(stmt, i);
}

/* ---- create -------------------------------------------------------------------- */

static int create_locked(struct store *st, const struct store_webhook *w, int64_t *id, char **err)
{
	struct db_stmt *stmt = store_prepare(st, create_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, w->account, -1, DB_STATIC);
	db_bind_text(stmt, 2, w->url, -1, DB_STATIC);
	db_bind_text(stmt, 3, w->secret, -1, DB_STATIC);
	db_bind_text(stmt, 4, w->description ? w->description : "", -1, DB_STATIC);
	db_bind_int64(stmt, 5, w->types ? w->types : EVENT_TYPES_ALL);
	db_bind_int(stmt, 6, w->unrestricted ? 1 : 0);
	db_bind_int64(stmt, 7, clock_now_s());
	rc = db_step(stmt);
	if (rc == DB_ROW)
		*id = db_column_int64(stmt, 0);
	db_finalize(stmt);
	if (rc == DB_CONSTRAINT_NOTNULL)
		return store_fail(err, "no such account '%s'", w->account);
	if (rc != DB_ROW)
		return store_fail_db(st, err, "add webhook");
	return 0;
}

int store_webhook_create(struct store *st, const struct store_webhook *w, int64_t *id, char **err)
{
	int rc;

	if (!w->url || !w->secret)
		return store_fail(err, "a webhook needs a URL and a secret");
	pthread_mutex_lock(&st->lock);
	if (store_tx_serial(st, STORE_SERIAL_WEBHOOKS, err) < 0)
		rc = -1;
	else if (create_locked(st, w, id, err) < 0 || store_tx_commit(st, err) < 0)
		rc = store_tx_rollback(st);
	else
		rc = 0;
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- reading ---------------------------------------------------------------------- */

struct hook_rows {
	struct store_webhook *v;
	size_t n, cap;
};

static int select_locked(struct store *st, int64_t id, const char *account, struct hook_rows *rows,
                         char **err)
{
	struct db_stmt *stmt = store_prepare(st, select_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	bind_opt(stmt, 2, account);
	while ((rc = db_step(stmt)) == DB_ROW) {
		if (rows->n == rows->cap) {
			rows->cap = rows->cap ? rows->cap * 2 : 8;
			rows->v = xrealloc(rows->v, rows->cap * sizeof(*rows->v));
		}
		read_hook(stmt, &rows->v[rows->n++]);
	}
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "list webhooks");
	return 0;
}

static int hooks_select(struct store *st, int64_t id, const char *account, struct hook_rows *rows,
                        char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = select_locked(st, id, account, rows, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static void rows_free(struct hook_rows *rows)
{
	for (size_t i = 0; i < rows->n; i++)
		store_webhook_clear(&rows->v[i]);
	free(rows->v);
}

int store_webhook_list(struct store *st, const char *account,
                       void (*cb)(void *arg, const struct store_webhook *w), void *arg, char **err)
{
	struct hook_rows rows = {0};
	int rc = hooks_select(st, 0, account, &rows, err);

	for (size_t i = 0; rc == 0 && i < rows.n; i++)
		cb(arg, &rows.v[i]);
	rows_free(&rows);
	return rc;
}

static int not_found(int64_t id, char **err)
{
	store_fail(err, "no such webhook %lld", (long long)id);
	return STORE_NOT_FOUND;
}

int store_webhook_get(struct store *st, const char *account, int64_t id, struct store_webhook *out,
                      char **err)
{
	struct hook_rows rows = {0};
	int rc;

	if (id <= 0)
		return not_found(id, err);
	rc = hooks_select(st, id, account, &rows, err);
	if (rc == 0 && rows.n == 0)
		rc = not_found(id, err);
	if (rc == 0) {
		*out = rows.v[0];
		rows.n = 0;
	}
	rows_free(&rows);
	return rc;
}

/* ---- changes ------------------------------------------------------------------------ */

static int changed(struct store *st, struct db_stmt *stmt, int64_t id, const char *what, char **err)
{
	if (store_step_done(st, stmt, what, err) < 0)
		return -1;
	return db_changes(st->db) ? 0 : not_found(id, err);
}

static int update_locked(struct store *st, const char *account, int64_t id, const char *url,
                         const char *secret, const char *description, unsigned types, char **err)
{
	struct db_stmt *stmt = store_prepare(st, update_sql, err);

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	bind_opt(stmt, 2, account);
	bind_opt(stmt, 3, url);
	bind_opt(stmt, 4, secret);
	bind_opt(stmt, 5, description);
	db_bind_int64(stmt, 6, types & EVENT_TYPES_ALL);
	return changed(st, stmt, id, "update webhook", err);
}

int store_webhook_update(struct store *st, const char *account, int64_t id, const char *url,
                         const char *secret, const char *description, unsigned types, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = update_locked(st, account, id, url, secret, description, types, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* Explicit rather than ON DELETE CASCADE: another tool may open the file
 * without PRAGMA foreign_keys. */
static int delete_locked(struct store *st, const char *account, int64_t id, char **err)
{
	struct db_stmt *stmt;
	int rc;

	if (store_tx_begin(st, err) < 0)
		return -1;
	stmt = store_prepare(st,
	                     "DELETE FROM webhook_failures WHERE webhook_id IN"
	                     " (SELECT id FROM webhooks WHERE id = ?1 AND " IN_SCOPE ")",
	                     err);
	if (!stmt)
		return store_tx_rollback(st);
	db_bind_int64(stmt, 1, id);
	bind_opt(stmt, 2, account);
	if (db_step(stmt) != DB_DONE) {
		db_finalize(stmt);
		store_fail_db(st, err, "delete webhook failures");
		return store_tx_rollback(st);
	}
	db_finalize(stmt);
	stmt = store_prepare(st, "DELETE FROM webhooks WHERE id = ?1 AND " IN_SCOPE, err);
	if (!stmt)
		return store_tx_rollback(st);
	db_bind_int64(stmt, 1, id);
	bind_opt(stmt, 2, account);
	if ((rc = changed(st, stmt, id, "delete webhook", err)) != 0) {
		store_tx_rollback(st);
		return rc;
	}
	return store_tx_commit(st, err) < 0 ? store_tx_rollback(st) : 0;
}

int store_webhook_delete(struct store *st, const char *account, int64_t id, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = delete_locked(st, account, id, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- delivery state ------------------------------------------------------------------ */

/* Migration 13 -> 14 (store_schema.c's list): who may POST a webhook's next
 * batch, until when (unix ms). */
const char store_claim_migration[] =
    "ALTER TABLE webhooks ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE webhooks ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;";

/* One UPDATE: on PostgreSQL a second node's UPDATE of the row waits for the
 * first one's commit, then finds its condition false (the row is claimed). */
static const char claim_sql[] =
    "UPDATE webhooks SET claimed_by = ?2, claimed_until = ?4"
    " WHERE id = ?1 AND (claimed_by = ?2 OR claimed_until <= ?3)"
    " RETURNING last_event_id, failures, first_failure_at, next_attempt_at";

static int claim_locked(struct store *st, int64_t id, const char *node, int64_t now_ms,
                        int64_t until_ms, struct store_webhook *w, char **err)
{
	struct db_stmt *stmt = store_prepare(st, claim_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, node, -1, DB_STATIC);
	db_bind_int64(stmt, 3, now_ms);
	db_bind_int64(stmt, 4, until_ms);
	rc = db_step(stmt);
	if (rc == DB_ROW) {
		w->last_event_id = db_column_int64(stmt, 0);
		w->failures = db_column_int64(stmt, 1);
		w->first_failure_ms = db_column_int64(stmt, 2);
		w->next_attempt_ms = db_column_int64(stmt, 3);
	}
	db_finalize(stmt);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail_db(st, err, "claim webhook");
	return rc == DB_ROW;
}

int store_webhook_claim(struct store *st, int64_t id, const char *node, int64_t now_ms,
                        int64_t until_ms, struct store_webhook *w, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = claim_locked(st, id, node, now_ms, until_ms, w, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_webhook_delivered(struct store *st, int64_t id, int64_t last_event_id, char **err)
{
	struct db_stmt *stmt;
	int rc;

	pthread_mutex_lock(&st->lock);
	stmt = store_prepare(st, delivered_sql, err);
	if (stmt) {
		db_bind_int64(stmt, 1, id);
		db_bind_int64(stmt, 2, last_event_id);
	}
	rc = stmt ? changed(st, stmt, id, "webhook delivered", err) : -1;
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int record_failure(struct store *st, int64_t id, const struct store_webhook_failure *f,
                          char **err)
{
	struct db_stmt *stmt = store_prepare(st, failure_sql, err);

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_int64(stmt, 2, f->time_ms);
	db_bind_int64(stmt, 3, f->first_event);
	db_bind_int64(stmt, 4, f->last_event);
	db_bind_int(stmt, 5, f->status);
	db_bind_text(stmt, 6, f->error ? f->error : "", -1, DB_STATIC);
	db_bind_int(stmt, 7, f->dropped ? 1 : 0);
	if (store_step_done(st, stmt, "add webhook failure", err) < 0)
		return -1;
	if (!(stmt = store_prepare(st, trim_sql, err)))
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_int(stmt, 2, WEBHOOK_FAILURES_KEPT);
	return store_step_done(st, stmt, "trim webhook failures", err);
}

static int failed_locked(struct store *st, int64_t id, const struct store_webhook_failure *f,
                         int64_t failures, int64_t first_ms, int64_t next_ms, char **err)
{
	struct db_stmt *stmt;

	if (store_tx_serial(st, STORE_SERIAL_WEBHOOKS, err) < 0)
		return -1;
	if (record_failure(st, id, f, err) < 0 || !(stmt = store_prepare(st, failed_sql, err)))
		return store_tx_rollback(st);
	db_bind_int64(stmt, 1, id);
	db_bind_int64(stmt, 2, failures);
	db_bind_int64(stmt, 3, first_ms);
	db_bind_int64(stmt, 4, next_ms);
	db_bind_int64(stmt, 5, f->dropped ? f->last_event : 0);
	if (changed(st, stmt, id, "webhook failed", err) != 0 || store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_webhook_failed(struct store *st, int64_t id, const struct store_webhook_failure *f,
                         int64_t failures, int64_t first_failure_ms, int64_t next_attempt_ms,
                         char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = failed_locked(st, id, f, failures, first_failure_ms, next_attempt_ms, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- recent failures ------------------------------------------------------------------ */

struct failure_rows {
	struct store_webhook_failure v[WEBHOOK_FAILURES_KEPT * 2];
	char *errors[WEBHOOK_FAILURES_KEPT * 2];
	size_t n;
};

static int failures_locked(struct store *st, int64_t id, struct failure_rows *rows, char **err)
{
	struct db_stmt *stmt = store_prepare(st, failures_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	while ((rc = db_step(stmt)) == DB_ROW && rows->n < ARRAY_LEN(rows->v)) {
		struct store_webhook_failure *f = &rows->v[rows->n];

		f->time_ms = db_column_int64(stmt, 0);
		f->first_event = db_column_int64(stmt, 1);
		f->last_event = db_column_int64(stmt, 2);
		f->status = db_column_int(stmt, 3);
		f->error = rows->errors[rows->n] = store_col_text(stmt, 4);
		f->dropped = db_column_int(stmt, 5) != 0;
		rows->n++;
	}
	db_finalize(stmt);
	if (rc != DB_DONE && rc != DB_ROW)
		return store_fail_db(st, err, "webhook failures");
	return 0;
}

int store_webhook_failures(struct store *st, int64_t id,
                           void (*cb)(void *arg, const struct store_webhook_failure *f), void *arg,
                           char **err)
{
	struct failure_rows rows;
	int rc;

	rows.n = 0;
	pthread_mutex_lock(&st->lock);
	rc = failures_locked(st, id, &rows, err);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < rows.n; i++) {
		if (rc == 0)
			cb(arg, &rows.v[i]);
		free(rows.errors[i]);
	}
	return rc;
}
