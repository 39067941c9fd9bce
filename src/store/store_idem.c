/*
 * store_idem: Idempotency-Key records of POST /v1/messages (migration
 * 10 -> 11, store_idem_migration; docs/api.md "Idempotency").
 *
 * Promises:
 * - A key is claimed once per account: the first request inserts its row
 *   (in progress, no answer), and every later request with that key, until
 *   the row is older than the ttl, sees either "in progress", "a different
 *   body" or the first answer. Claim is one conditional upsert (INSERT ...
 *   ON CONFLICT DO UPDATE ... WHERE expired RETURNING), so two requests,
 *   of this process or of two nodes, never both win; the loser then reads
 *   the winner's row.
 * - The answer is recorded before it is sent (the caller's order), so a
 *   client that got it and retries gets the same bytes.
 * - Rows older than the ttl are ignored by claim whether or not
 *   store_idem_prune() has deleted them yet.
 * - A claim records what its request is about to commit (plan) before the
 *   first commit; store_idem_open_list() hands the claims left without an
 *   answer to the server's start, which resolves them (api_send_idem.c).
 * - A claim records the node ID of its process (store_set_node), and the
 *   open claims listed at start are that node's only: a node's start never
 *   resolves another node's request in flight. Claims without a node ID
 *   (made before migration 18) are listed on SQLite (one node) only; on
 *   PostgreSQL they wait out their ttl.
 * - The SQL is the same on both engines.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

const char store_idem_migration[] =
    "CREATE TABLE idempotency_keys (account TEXT NOT NULL, idem_key TEXT NOT NULL,"
    "  body_hash TEXT NOT NULL, status INTEGER NOT NULL, answer TEXT,"
    "  created_at BIGINT NOT NULL, PRIMARY KEY (account, idem_key));"
    "CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);";

/* What a claim's request was about to commit, recorded before its first
 * commit, so that a claim left by a crash can be resolved at start. */
const char store_idem_plan_migration[] = "ALTER TABLE idempotency_keys ADD COLUMN planned TEXT;";

/* Migration 17 -> 18: the node whose request holds the claim; NULL:
 * made before, or by a process without a node ID. */
const char store_idem_node_migration[] = "ALTER TABLE idempotency_keys ADD COLUMN node_id TEXT;";

static const char get_sql[] = "SELECT body_hash, status, answer, created_at FROM idempotency_keys"
                              " WHERE account = ?1 AND idem_key = ?2";
/* One statement: the row is this request's when there was none or it had
 * expired (created before ?5); a row returned says so. Two nodes racing
 * for one key: the database makes the second wait and then finds the row
 * taken (no row returned). */
static const char claim_sql[] =
    "INSERT INTO idempotency_keys (account, idem_key, body_hash, status, answer, created_at,"
    " node_id) VALUES (?1, ?2, ?3, 0, NULL, ?4, ?6) ON CONFLICT (account, idem_key) DO UPDATE"
    " SET body_hash = excluded.body_hash, status = 0, answer = NULL, planned = NULL,"
    " created_at = excluded.created_at, node_id = excluded.node_id"
    " WHERE idempotency_keys.created_at < ?5 RETURNING 1";

/* What the row says; -1 none (or expired). */
static int read_row(struct db_stmt *s, const char *hash, int64_t oldest, int *status, char **answer)
{
	const char *h = (const char *)db_column_text(s, 0);
	const char *a = (const char *)db_column_text(s, 2);

	if (db_column_int64(s, 3) < oldest)
		return -1;
	if (!h || strcmp(h, hash) != 0)
		return STORE_IDEM_MISMATCH;
	*status = db_column_int(s, 1);
	if (*status == 0 || !a)
		return STORE_IDEM_BUSY;
	*answer = xstrdup(a);
	return STORE_IDEM_DONE;
}

static int run(struct store *st, const char *sql, const char *account, const char *key,
               const char *text, int64_t n, char **err)
{
	struct db_stmt *s = store_prepare(st, sql, err);
	int rc;

	if (!s)
		return -1;
	db_bind_text(s, 1, account, -1, DB_STATIC);
	db_bind_text(s, 2, key, -1, DB_STATIC);
	if (text)
		db_bind_text(s, 3, text, -1, DB_STATIC);
	db_bind_int64(s, 4, n);
	rc = db_step(s) == DB_DONE ? 0 : store_fail_db(st, err, "idempotency key");
	db_finalize(s);
	return rc;
}

/* The conditional upsert: 1 the row is ours, 0 another request's, -1. */
static int upsert(struct store *st, const struct store_idem *k, char **err)
{
	struct db_stmt *s = store_prepare(st, claim_sql, err);
	int step;

	if (!s)
		return -1;
	db_bind_text(s, 1, k->account, -1, DB_STATIC);
	db_bind_text(s, 2, k->key, -1, DB_STATIC);
	db_bind_text(s, 3, k->hash, -1, DB_STATIC);
	db_bind_int64(s, 4, k->now);
	db_bind_int64(s, 5, k->now - k->ttl);
	db_bind_text(s, 6, st->node_id[0] ? st->node_id : NULL, -1, DB_STATIC);
	step = db_step(s);
	db_finalize(s);
	if (step == DB_ROW)
		return 1;
	return step == DB_DONE ? 0 : store_fail_db(st, err, "idempotency key");
}

/* The row another request holds: what it says; -1 none (released since);
 * -2 with *err. */
static int read_held(struct store *st, const struct store_idem *k, int *status, char **answer,
                     char **err)
{
	struct db_stmt *s = store_prepare(st, get_sql, err);
	int rc = -1, step;

	if (!s)
		return -2;
	db_bind_text(s, 1, k->account, -1, DB_STATIC);
	db_bind_text(s, 2, k->key, -1, DB_STATIC);
	step = db_step(s);
	if (step == DB_ROW) /* created after our cut-off: not expired, unless clocks differ */
		rc = read_row(s, k->hash, INT64_MIN, status, answer);
	else if (step != DB_DONE)
		rc = (store_fail_db(st, err, "idempotency key"), -2);
	db_finalize(s);
	return rc;
}

static int claim_locked(struct store *st, const struct store_idem *k, int *status, char **answer,
                        char **err)
{
	for (int tries = 0; tries < 3; tries++) {
		int rc = upsert(st, k, err);
		if (rc != 0)
			return rc > 0 ? STORE_IDEM_NEW : -1;
		if ((rc = read_held(st, k, status, answer, err)) != -1)
			return rc == -2 ? -1 : rc;
	}
	return STORE_IDEM_BUSY; /* claimed and released again and again: a retry will tell */
}

int store_idem_claim(struct store *st, const struct store_idem *k, int *status, char **answer,
                     char **err)
{
	int rc;

	*answer = NULL;
	pthread_mutex_lock(&st->lock);
	rc = claim_locked(st, k, status, answer, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_idem_finish(struct store *st, const char *account, const char *key, int status,
                      const char *answer, char **err)
{
	static const char sql[] = "UPDATE idempotency_keys SET answer = ?3, status = ?4"
	                          " WHERE account = ?1 AND idem_key = ?2";
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = run(st, sql, account, key, answer, status, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_idem_release(struct store *st, const char *account, const char *key, char **err)
{
	static const char sql[] =
	    "DELETE FROM idempotency_keys WHERE account = ?1 AND idem_key = ?2"
	    " AND status = 0";
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = run(st, sql, account, key, NULL, 0, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_idem_prune(struct store *st, int64_t before, char **err)
{
	struct db_stmt *s;
	int rc;

	pthread_mutex_lock(&st->lock);
	s = store_prepare(st, "DELETE FROM idempotency_keys WHERE created_at < ?1", err);
	rc = s ? 0 : -1;
	if (s) {
		db_bind_int64(s, 1, before);
		rc = db_step(s) == DB_DONE ? db_changes(st->db)
		                           : store_fail_db(st, err, "idempotency prune");
		db_finalize(s);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_idem_plan(struct store *st, const char *account, const char *key, const char *planned,
                    char **err)
{
	static const char sql[] = "UPDATE idempotency_keys SET planned = ?3"
	                          " WHERE account = ?1 AND idem_key = ?2 AND status = ?4";
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = run(st, sql, account, key, planned, 0, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* The rows are copied out first: cb may write to the table. */
int store_idem_open_list(struct store *st, void (*cb)(void *arg, const struct store_idem_open *o),
                         void *arg, char **err)
{
	struct db_stmt *s;
	char **v = NULL;
	size_t n = 0, cap = 0, i;
	int step = DB_DONE;

	pthread_mutex_lock(&st->lock);
	s = store_prepare(st,
	                  "SELECT account, idem_key, planned FROM idempotency_keys"
	                  " WHERE status = 0 AND (node_id = ?1 OR (node_id IS NULL AND ?2 = 0))"
	                  " ORDER BY created_at",
	                  err);
	if (s) {
		db_bind_text(s, 1, st->node_id, -1, DB_STATIC);
		db_bind_int(s, 2, db_kind(st->db) == DB_POSTGRES);
	}
	while (s && (step = db_step(s)) == DB_ROW) {
		if (n + 3 > cap)
			v = xrealloc(v, (cap = cap * 2 + 3) * sizeof(*v));
		for (i = 0; i < 3; i++) {
			const char *t = (const char *)db_column_text(s, (int)i);
			v[n++] = t ? xstrdup(t) : NULL;
		}
	}
	if (s && step != DB_DONE)
		store_fail_db(st, err, "idempotency keys");
	db_finalize(s);
	pthread_mutex_unlock(&st->lock);
	for (i = 0; s && step == DB_DONE && i < n; i += 3)
		cb(arg, &(struct store_idem_open){v[i], v[i + 1], v[i + 2]});
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return s && step == DB_DONE ? 0 : -1;
}
