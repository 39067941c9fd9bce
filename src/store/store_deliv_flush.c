/*
 * store_deliv_flush: the server's once-a-second write of deliverability
 * state (quota counts, reputation slots, pauses, VERP records) in one
 * transaction, and the reads of slots and VERP records. The tables are
 * store_deliv.c's (migration 10; node_id since migration 19, whose SQL is
 * here); its promises hold here, and:
 * - Quota counts and reputation slots are per node (node_id, the
 *   store_set_node() ID; '' for rows from before migration 19): a flush
 *   writes this node's rows only, so nodes sharing PostgreSQL never
 *   overwrite each other's counts.
 * - Read for one node (a restart) they are that node's rows; read for
 *   every node (`posthorn stats`) they are summed over nodes. On SQLite
 *   (one node) the rows from before are made this node's by
 *   store_deliv_adopt(); on PostgreSQL nobody adopts them (which node
 *   wrote them last is unknown): they are summed into the stats until
 *   their window or slot is past, and no restart reads them.
 * - A reset (`user resume`) clears every node's slots of the account.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

/*
 * 18 -> 19: node_id in the keys of quota_counts and reputation (the tables
 * are made again: a primary key cannot be altered); the rows there were
 * get node ''. Plain SQL both engines accept.
 */
const char store_deliv_node_migration[] =
    "CREATE TABLE quota_counts_n ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  node_id TEXT NOT NULL DEFAULT '',"
    "  period TEXT NOT NULL CHECK (period IN ('hour', 'day')),"
    "  window_start BIGINT NOT NULL,"
    "  used BIGINT NOT NULL CHECK (used >= 0),"
    "  PRIMARY KEY (account_id, node_id, period)"
    ");"
    "INSERT INTO quota_counts_n (account_id, node_id, period, window_start, used)"
    "  SELECT account_id, '', period, window_start, used FROM quota_counts;"
    "DROP TABLE quota_counts;"
    "ALTER TABLE quota_counts_n RENAME TO quota_counts;"
    "CREATE TABLE reputation_n ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  node_id TEXT NOT NULL DEFAULT '',"
    "  slot_start BIGINT NOT NULL,"
    "  delivered BIGINT NOT NULL,"
    "  bounced BIGINT NOT NULL,"
    "  hard BIGINT NOT NULL,"
    "  complained BIGINT NOT NULL,"
    "  PRIMARY KEY (account_id, node_id, slot_start)"
    ");"
    "INSERT INTO reputation_n (account_id, node_id, slot_start, delivered, bounced, hard,"
    "  complained) SELECT account_id, '', slot_start, delivered, bounced, hard, complained"
    "  FROM reputation;"
    "DROP TABLE reputation;"
    "ALTER TABLE reputation_n RENAME TO reputation;";

/* Each INSERT takes the account's id by name: no row for an account
 * deleted meanwhile; the last parameter is this node (each_row's node_param). */
static const char quota_sql[] =
    "INSERT INTO quota_counts (account_id, node_id, period, window_start, used)"
    " SELECT id, ?5, ?2, ?3, ?4 FROM accounts WHERE name = ?1"
    " ON CONFLICT (account_id, node_id, period) DO UPDATE SET"
    " window_start = excluded.window_start, used = excluded.used";
static const char rep_sql[] =
    "INSERT INTO reputation (account_id, node_id, slot_start, delivered, bounced, hard,"
    " complained) SELECT id, ?7, ?2, ?3, ?4, ?5, ?6 FROM accounts WHERE name = ?1"
    " ON CONFLICT (account_id, node_id, slot_start) DO UPDATE SET delivered ="
    " excluded.delivered, bounced = excluded.bounced, hard = excluded.hard,"
    " complained = excluded.complained";
static const char rep_reset_sql[] = "DELETE FROM reputation WHERE account_id ="
                                    " (SELECT id FROM accounts WHERE name = ?1)";
static const char pause_sql[] = "UPDATE accounts SET paused_at = ?2, paused_reason = ?3"
                                " WHERE name = ?1 AND paused_at IS NULL";
/* VERP records, one per message: VERP_ROWS to an INSERT (on PostgreSQL a
 * statement is a round trip). */
#define VERP_ROWS 32
static const char verp_head[] = "INSERT INTO verp_messages (id, account, created, rcpts) VALUES ";
static const char verp_tail[] = " ON CONFLICT (id) DO NOTHING";

/* One statement, reset and bound for each row by bind(i), and with this
 * node's ID as parameter node_param (0: none). */
static int each_row(struct store *st, const char *sql, size_t n, int node_param,
                    void (*bind)(struct db_stmt *s, const void *rows, size_t i), const void *rows,
                    const char *what, char **err)
{
	struct db_stmt *stmt;
	int rc = 0;

	if (n == 0)
		return 0;
	if (!(stmt = store_prepare(st, sql, err)))
		return -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		db_reset(stmt);
		db_clear_bindings(stmt);
		bind(stmt, rows, i);
		if (node_param)
			db_bind_text(stmt, node_param, st->node_id, -1, DB_STATIC);
		if (db_step(stmt) != DB_DONE)
			rc = store_fail_db(st, err, what);
	}
	db_finalize(stmt);
	return rc;
}

static void bind_quota(struct db_stmt *s, const void *rows, size_t i)
{
	const struct store_quota_row *r = (const struct store_quota_row *)rows + i;

	db_bind_text(s, 1, r->account, -1, DB_STATIC);
	db_bind_text(s, 2, r->period ? "day" : "hour", -1, DB_STATIC);
	db_bind_int64(s, 3, r->window_start);
	db_bind_int64(s, 4, (int64_t)(r->used > INT64_MAX ? INT64_MAX : r->used));
}

static void bind_rep(struct db_stmt *s, const void *rows, size_t i)
{
	const struct store_rep_row *r = (const struct store_rep_row *)rows + i;

	db_bind_text(s, 1, r->account, -1, DB_STATIC);
	db_bind_int64(s, 2, r->slot_start);
	for (int k = 0; k < 4; k++)
		db_bind_int64(s, 3 + k, (int64_t)(r->n[k] > INT64_MAX ? INT64_MAX : r->n[k]));
}

static void bind_name(struct db_stmt *s, const void *rows, size_t i)
{
	db_bind_text(s, 1, ((const char *const *)rows)[i], -1, DB_STATIC);
}

static void bind_pause(struct db_stmt *s, const void *rows, size_t i)
{
	const struct store_pause_row *r = (const struct store_pause_row *)rows + i;

	db_bind_text(s, 1, r->account, -1, DB_STATIC);
	db_bind_int64(s, 2, r->at);
	db_bind_text(s, 3, r->reason, -1, DB_STATIC);
}

/* VERP records v[0..n), n <= VERP_ROWS, in one INSERT. */
static int verp_rows(struct store *st, const struct store_verp_msg *v, size_t n, char **err)
{
	struct db_stmt *stmt;
	struct buf b;
	int rc;

	buf_init(&b);
	buf_puts(&b, verp_head);
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s(?%zu, ?%zu, ?%zu, ?%zu)", i ? ", " : "", 4 * i + 1, 4 * i + 2,
		           4 * i + 3, 4 * i + 4);
	buf_puts(&b, verp_tail);
	stmt = store_prepare(st, b.data, err);
	buf_free(&b);
	if (!stmt)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int p = (int)(4 * i) + 1;

		db_bind_text(stmt, p, v[i].id, -1, DB_STATIC);
		db_bind_text(stmt, p + 1, v[i].account, -1, DB_STATIC);
		db_bind_int64(stmt, p + 2, v[i].created);
		db_bind_text(stmt, p + 3, v[i].rcpts, -1, DB_STATIC);
	}
	rc = db_step(stmt) == DB_DONE ? 0 : store_fail_db(st, err, "verp");
	db_finalize(stmt);
	return rc;
}

static int verp_all(struct store *st, const struct store_verp_msg *v, size_t n, char **err)
{
	for (size_t i = 0; i < n; i += VERP_ROWS)
		if (verp_rows(st, v + i, n - i < VERP_ROWS ? n - i : VERP_ROWS, err) < 0)
			return -1;
	return 0;
}

static void bind_time(struct db_stmt *s, const void *rows, size_t i)
{
	db_bind_int64(s, 1, *(const int64_t *)rows);
}

static int flush_fn(struct store *st, void *arg, char **err)
{
	const struct store_deliv_flush *f = arg;

	if (each_row(st, rep_reset_sql, f->n_rep_reset, 0, bind_name, f->rep_reset, "reset", err) ||
	    each_row(st, quota_sql, f->n_quota, 5, bind_quota, f->quota, "quota", err) ||
	    each_row(st, rep_sql, f->n_rep, 7, bind_rep, f->rep, "reputation", err) ||
	    each_row(st, pause_sql, f->n_pause, 0, bind_pause, f->pause, "pause", err) ||
	    verp_all(st, f->verp, f->n_verp, err) ||
	    each_row(st, "DELETE FROM reputation WHERE slot_start < ?1", f->rep_before > 0, 0,
	             bind_time, &f->rep_before, "prune reputation", err) ||
	    each_row(st, "DELETE FROM verp_messages WHERE created < ?1", f->verp_before > 0, 0,
	             bind_time, &f->verp_before, "prune verp", err))
		return -1;
	return 0;
}

int store_deliv_flush(struct store *st, const struct store_deliv_flush *f, char **err)
{
	if (!f->n_quota && !f->n_rep && !f->n_rep_reset && !f->n_pause && !f->n_verp &&
	    !f->rep_before && !f->verp_before)
		return 0; /* nothing: no transaction, no fsync */
	return store_deliv_in_tx(st, flush_fn, (void *)f, err);
}

/* Rows from before migration 19 (node '') become this node's, but where
 * it has a row of the same key already. */
static const char *const adopt_sql[] = {
    "UPDATE quota_counts SET node_id = ?1 WHERE node_id = '' AND NOT EXISTS (SELECT 1"
    " FROM quota_counts o WHERE o.account_id = quota_counts.account_id"
    " AND o.period = quota_counts.period AND o.node_id = ?1)",
    "UPDATE reputation SET node_id = ?1 WHERE node_id = '' AND NOT EXISTS (SELECT 1"
    " FROM reputation o WHERE o.account_id = reputation.account_id"
    " AND o.slot_start = reputation.slot_start AND o.node_id = ?1)",
};

static void bind_nothing(struct db_stmt *s, const void *rows, size_t i)
{
	(void)s, (void)rows, (void)i;
}

static int adopt_fn(struct store *st, void *arg, char **err)
{
	(void)arg;
	for (size_t i = 0; i < ARRAY_LEN(adopt_sql); i++)
		if (each_row(st, adopt_sql[i], 1, 1, bind_nothing, NULL, "adopt rows", err) < 0)
			return -1;
	return 0;
}

int store_deliv_adopt(struct store *st, char **err)
{
	if (db_kind(st->db) == DB_POSTGRES || !st->node_id[0])
		return 0;
	return store_deliv_in_tx(st, adopt_fn, NULL, err);
}

/* ---- reading ----------------------------------------------------------------- */

struct rep_rows {
	struct store_rep_row *v;
	char **names;
	size_t n;
};

/* ?3: one node's rows (a restart), or NULL: every node's, summed. */
static int rep_read(struct store *st, const char *account, int64_t since, const char *node,
                    struct rep_rows *rows, char **err)
{
	struct db_stmt *stmt = store_prepare(
	    st,
	    "SELECT a.name, r.slot_start, CAST(SUM(r.delivered) AS BIGINT),"
	    " CAST(SUM(r.bounced) AS BIGINT), CAST(SUM(r.hard) AS BIGINT),"
	    " CAST(SUM(r.complained) AS BIGINT) FROM reputation r JOIN accounts a ON a.id ="
	    " r.account_id WHERE r.slot_start >= ?1 AND (CAST(?2 AS TEXT) IS NULL OR a.name = ?2)"
	    " AND (CAST(?3 AS TEXT) IS NULL OR r.node_id = ?3)"
	    " GROUP BY a.name, r.slot_start ORDER BY a.name, r.slot_start",
	    err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, since);
	if (account)
		db_bind_text(stmt, 2, account, -1, DB_STATIC);
	if (node)
		db_bind_text(stmt, 3, node, -1, DB_STATIC);
	while ((rc = db_step(stmt)) == DB_ROW) {
		struct store_rep_row *r;
		rows->v = xrealloc(rows->v, (rows->n + 1) * sizeof(*rows->v));
		rows->names = xrealloc(rows->names, (rows->n + 1) * sizeof(*rows->names));
		rows->names[rows->n] = xstrdup((const char *)db_column_text(stmt, 0));
		r = &rows->v[rows->n];
		r->account = rows->names[rows->n++];
		r->slot_start = db_column_int64(stmt, 1);
		for (int k = 0; k < 4; k++)
			r->n[k] = (uint64_t)db_column_int64(stmt, 2 + k);
	}
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "list reputation");
}

int store_rep_list(struct store *st, const char *account, int64_t since, int own,
                   void (*cb)(void *arg, const struct store_rep_row *r), void *arg, char **err)
{
	struct rep_rows rows = {NULL, NULL, 0};
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = rep_read(st, account, since, own ? st->node_id : NULL, &rows, err);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < rows.n; i++) {
		if (rc == 0)
			cb(arg, &rows.v[i]);
		free(rows.names[i]);
	}
	free(rows.names);
	free(rows.v);
	return rc;
}

static int verp_locked(struct store *st, const char *id, char *account, char **rcpts, char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st, "SELECT account, rcpts FROM verp_messages WHERE id = ?1", err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, id, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW) {
		const char *a = db_column_text(stmt, 0);
		const char *r = db_column_text(stmt, 1);
		snprintf(account, COUNTER_ACCOUNT_MAX + 1, "%.*s", COUNTER_ACCOUNT_MAX,
		         a ? (const char *)a : "");
		*rcpts = xstrdup(r ? (const char *)r : "");
	}
	db_finalize(stmt);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail_db(st, err, "verp lookup");
	return rc == DB_ROW;
}

int store_verp_get(struct store *st, const char *id, char *account, char **rcpts, char **err)
{
	int rc;

	*rcpts = NULL;
	pthread_mutex_lock(&st->lock);
	rc = verp_locked(st, id, account, rcpts, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}
