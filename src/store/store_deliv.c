/*
 * store_deliv: what deliverability keeps in the database (migration 10,
 * whose SQL is here: store_deliv_migration): per account, the quotas and
 * the reputation guard's pause; the quota counts and reputation slots the
 * server flushes; the VERP records that match a bounce to its message.
 *
 * Promises:
 * - store_deliv_flush() writes everything of one server tick in one
 *   transaction: one fsync a second at most, whatever the traffic. Counts
 *   and slots are written as absolute values (the server is their only
 *   writer), so a flush that failed is simply retried with newer values.
 * - A row for an account that no longer exists is skipped (the INSERT
 *   selects the account's id; nothing is inserted without one), and
 *   deleting an account deletes its rows (ON DELETE CASCADE).
 * - The SQL is what PostgreSQL accepts too (ON CONFLICT, BIGINT).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

/*
 * 9 -> 10: quotas and the reputation guard's pause on accounts (NULL
 * quotas: the [quota] defaults; NULL paused_at: not paused); quota counts
 * per account and period (the window they count in, and the count);
 * reputation slots per account (absolute counts of delivered, bounced,
 * hard-bounced and complained recipients in the slot); VERP records by
 * queue ID, pruned by their creation time.
 */
const char store_deliv_migration[] =
    "ALTER TABLE accounts ADD COLUMN quota_hour BIGINT;"
    "ALTER TABLE accounts ADD COLUMN quota_day BIGINT;"
    "ALTER TABLE accounts ADD COLUMN paused_at BIGINT;"
    "ALTER TABLE accounts ADD COLUMN paused_reason TEXT;"
    "ALTER TABLE accounts ADD COLUMN resumed_at BIGINT;"
    "CREATE TABLE quota_counts ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  period TEXT NOT NULL CHECK (period IN ('hour', 'day')),"
    "  window_start BIGINT NOT NULL,"
    "  used BIGINT NOT NULL CHECK (used >= 0),"
    "  PRIMARY KEY (account_id, period)"
    ");"
    "CREATE TABLE reputation ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  slot_start BIGINT NOT NULL,"
    "  delivered BIGINT NOT NULL,"
    "  bounced BIGINT NOT NULL,"
    "  hard BIGINT NOT NULL,"
    "  complained BIGINT NOT NULL,"
    "  PRIMARY KEY (account_id, slot_start)"
    ");"
    "CREATE TABLE verp_messages ("
    "  id TEXT PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  created BIGINT NOT NULL,"
    "  rcpts TEXT NOT NULL"
    ");"
    "CREATE INDEX verp_messages_created ON verp_messages (created);";

/* ---- account settings ---------------------------------------------------------- */

#define DELIV_COLUMNS "name, quota_hour, quota_day, paused_at, paused_reason, resumed_at"

static int64_t col_or(struct db_stmt *stmt, int col, int64_t dflt)
{
	return db_column_is_null(stmt, col) ? dflt : db_column_int64(stmt, col);
}

static void read_deliv(struct db_stmt *stmt, struct store_account_deliv *a)
{
	const char *name = db_column_text(stmt, 0);
	const char *why = db_column_text(stmt, 4);

	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%.*s", COUNTER_ACCOUNT_MAX,
	         name ? (const char *)name : "");
	a->quota[0] = col_or(stmt, 1, STORE_QUOTA_DEFAULT);
	a->quota[1] = col_or(stmt, 2, STORE_QUOTA_DEFAULT);
	a->paused_at = col_or(stmt, 3, 0);
	snprintf(a->paused_reason, sizeof(a->paused_reason), "%.*s", STORE_PAUSE_REASON_MAX,
	         why ? (const char *)why : "");
	a->resumed_at = col_or(stmt, 5, 0);
}

static int get_locked(struct store *st, const char *name, struct store_account_deliv *out,
                      char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st, "SELECT " DELIV_COLUMNS " FROM accounts WHERE name = ?1", err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW && out)
		read_deliv(stmt, out);
	db_finalize(stmt);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail_db(st, err, "account settings");
	return rc == DB_ROW;
}

int store_account_deliv_get(struct store *st, const char *name, struct store_account_deliv *out,
                            char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = get_locked(st, name, out, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_account_deliv_list(struct store *st,
                             void (*cb)(void *arg, const struct store_account_deliv *a), void *arg,
                             char **err)
{
	struct store_account_deliv *v = NULL;
	size_t n = 0;
	struct db_stmt *stmt;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if ((stmt =
	         store_prepare(st, "SELECT " DELIV_COLUMNS " FROM accounts ORDER BY name", err))) {
		while ((rc = db_step(stmt)) == DB_ROW) {
			v = xrealloc(v, (n + 1) * sizeof(*v));
			read_deliv(stmt, &v[n++]);
		}
		db_finalize(stmt);
		rc = rc == DB_DONE ? 0 : store_fail_db(st, err, "list account settings");
	}
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; rc == 0 && i < n; i++)
		cb(arg, &v[i]);
	free(v);
	return rc;
}

static int set_quota_locked(struct store *st, const char *name, const int set[2],
                            const int64_t quota[2], char **err)
{
	static const char *const sql[2] = {"UPDATE accounts SET quota_hour = ?2 WHERE name = ?1",
	                                   "UPDATE accounts SET quota_day = ?2 WHERE name = ?1"};
	int found = get_locked(st, name, NULL, err);

	if (found <= 0)
		return found < 0 ? -1 : STORE_NO_SUCH_ACCOUNT;
	for (int i = 0; i < 2; i++) {
		struct db_stmt *stmt;
		if (!set[i])
			continue;
		if (!(stmt = store_prepare(st, sql[i], err)))
			return -1;
		db_bind_text(stmt, 1, name, -1, DB_STATIC);
		if (quota[i] != STORE_QUOTA_DEFAULT)
			db_bind_int64(stmt, 2, quota[i]);
		if (store_step_done(st, stmt, "set quota", err) < 0)
			return -1;
	}
	return 0;
}

int store_deliv_in_tx(struct store *st, int (*fn)(struct store *st, void *arg, char **err),
                      void *arg, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	if ((rc = store_tx_begin(st, err)) == 0) {
		rc = fn(st, arg, err);
		if (rc >= 0 && store_tx_commit(st, err) < 0)
			rc = -1;
		if (rc < 0)
			store_tx_rollback(st);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_each_in_tx(struct store *st, const char *sql, size_t n,
                     int (*one)(struct store *st, struct db_stmt *stmt, size_t i, void *arg,
                                char **err),
                     void *arg, char **err)
{
	struct db_stmt *stmt = store_prepare(st, sql, err);
	int rc = 0;

	if (!stmt)
		return -1;
	if (store_tx_begin(st, err) < 0) {
		db_finalize(stmt);
		return -1;
	}
	for (size_t i = 0; rc == 0 && i < n; i++) {
		db_reset(stmt);
		rc = one(st, stmt, i, arg, err);
	}
	db_finalize(stmt);
	if (rc == 0 && store_tx_commit(st, err) < 0)
		rc = -1;
	if (rc != 0)
		store_tx_rollback(st);
	return rc;
}

struct quota_args {
	const char *name;
	const int *set;
	const int64_t *quota;
};

static int set_quota_fn(struct store *st, void *arg, char **err)
{
	struct quota_args *a = arg;

	return set_quota_locked(st, a->name, a->set, a->quota, err);
}

int store_user_set_quota(struct store *st, const char *name, const int set[2],
                         const int64_t quota[2], char **err)
{
	struct quota_args a = {name, set, quota};
	int rc;

	for (int i = 0; i < 2; i++)
		if (set[i] && quota[i] < 0 && quota[i] != STORE_QUOTA_DEFAULT)
			return store_fail(err, "a quota is 0 (unlimited) or more");
	rc = store_deliv_in_tx(st, set_quota_fn, &a, err);
	if (rc == STORE_NO_SUCH_ACCOUNT)
		store_fail(err, "no such account '%s'", name);
	return rc;
}

static int resume_locked(struct store *st, const char *name, int64_t now,
                         struct store_account_deliv *out, char **err)
{
	struct db_stmt *stmt;
	int found = get_locked(st, name, out, err);

	if (found <= 0)
		return found < 0 ? -1 : STORE_NO_SUCH_ACCOUNT;
	if (!out->paused_at)
		return 0;
	stmt = store_prepare(st,
	                     "UPDATE accounts SET paused_at = NULL, paused_reason = NULL,"
	                     " resumed_at = ?2 WHERE name = ?1",
	                     err);
	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	db_bind_int64(stmt, 2, now);
	if (store_step_done(st, stmt, "resume", err) < 0)
		return -1;
	stmt = store_prepare(st,
	                     "DELETE FROM reputation WHERE account_id ="
	                     " (SELECT id FROM accounts WHERE name = ?1)",
	                     err);
	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	return store_step_done(st, stmt, "reset reputation", err) < 0 ? -1 : 1;
}

struct resume_args {
	const char *name;
	int64_t now;
	struct store_account_deliv was;
};

static int resume_fn(struct store *st, void *arg, char **err)
{
	struct resume_args *a = arg;

	return resume_locked(st, a->name, a->now, &a->was, err);
}

int store_user_resume(struct store *st, const char *name, int64_t now,
                      struct store_account_deliv *out, char **err)
{
	struct resume_args a;
	int rc;

	memset(&a, 0, sizeof(a));
	a.name = name;
	a.now = now;
	rc = store_deliv_in_tx(st, resume_fn, &a, err);

	if (rc == STORE_NO_SUCH_ACCOUNT)
		store_fail(err, "no such account '%s'", name);
	if (rc >= 0 && out)
		*out = a.was;
	return rc;
}

int store_data_version(struct store *st, int64_t *v, char **err)
{
	int rc = 0;

	pthread_mutex_lock(&st->lock);
	if (db_data_version(st->db, v) != DB_OK)
		rc = store_fail_db(st, err, "data_version");
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- reading counts, slots and VERP records ------------------------------------- */

int store_quota_list(struct store *st, int own,
                     void (*cb)(void *arg, const struct store_quota_row *r), void *arg, char **err)
{
	struct db_stmt *stmt;
	struct store_quota_row *v = NULL;
	char **names = NULL;
	size_t n = 0;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if ((stmt = store_prepare(
	         st,
	         "SELECT a.name, q.period, q.window_start, CAST(SUM(q.used) AS BIGINT)"
	         " FROM quota_counts q JOIN accounts a ON a.id = q.account_id"
	         " WHERE CAST(?1 AS TEXT) IS NULL OR q.node_id = ?1"
	         " GROUP BY a.name, q.period, q.window_start"
	         " ORDER BY a.name, q.period, q.window_start",
	         err))) {
		if (own)
			db_bind_text(stmt, 1, st->node_id, -1, DB_STATIC);
		while ((rc = db_step(stmt)) == DB_ROW) {
			v = xrealloc(v, (n + 1) * sizeof(*v));
			names = xrealloc(names, (n + 1) * sizeof(*names));
			names[n] = xstrdup((const char *)db_column_text(stmt, 0));
			v[n].account = names[n];
			v[n].period = strcmp((const char *)db_column_text(stmt, 1), "day") == 0;
			v[n].window_start = db_column_int64(stmt, 2);
			v[n].used = (uint64_t)db_column_int64(stmt, 3);
			n++;
		}
		db_finalize(stmt);
		rc = rc == DB_DONE ? 0 : store_fail_db(st, err, "list quota counts");
	}
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0)
			cb(arg, &v[i]);
		free(names[i]);
	}
	free(names);
	free(v);
	return rc;
}
