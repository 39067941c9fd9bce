/*
 * store_account_unsub: the per-account one-click unsubscribe flag
 * (accounts.unsubscribe, migration 9 listed in store.c, its SQL here):
 * mail an account sends over SMTP gets List-Unsubscribe when it is on
 * (src/unsub/, docs/deliverability.md).
 *
 * Promises:
 * - A change is one UPDATE, committed before the call returns; the server
 *   reads the list of accounts with the flag once a second
 *   (store_accounts_unsubscribe), so a change is in effect within a second.
 * - Rows are copied out under st->lock; nothing calls back with it held.
 * - The SQL is plain enough for PostgreSQL too.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

/* Migration 8 -> 9 (store.c's list): the flag, off for every account. */
const char store_unsub_migration[] =
    "ALTER TABLE accounts ADD COLUMN unsubscribe INTEGER NOT NULL DEFAULT 0"
    "  CHECK (unsubscribe IN (0, 1));";

static int set_locked(struct store *st, const char *name, int on, char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st, "UPDATE accounts SET unsubscribe = ?2 WHERE name = ?1", err);

	if (stmt == NULL)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	db_bind_int(stmt, 2, on ? 1 : 0);
	if (store_step_done(st, stmt, "set unsubscribe", err) < 0)
		return -1;
	if (db_changes(st->db) == 0)
		return store_fail(err, "no such account '%s'", name);
	return 0;
}

int store_account_set_unsubscribe(struct store *st, const char *name, int on, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = set_locked(st, name, on, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int get_locked(struct store *st, const char *name, int *on, char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st, "SELECT unsubscribe FROM accounts WHERE name = ?1", err);
	int rc;

	if (stmt == NULL)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW)
		*on = db_column_int(stmt, 0) != 0;
	db_finalize(stmt);
	if (rc == DB_DONE)
		return store_fail(err, "no such account '%s'", name);
	if (rc != DB_ROW)
		return store_fail_db(st, err, "get unsubscribe");
	return 0;
}

int store_account_unsubscribe(struct store *st, const char *name, int *on, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = get_locked(st, name, on, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int list_locked(struct store *st, char ***names, size_t *n, char **err)
{
	struct db_stmt *stmt =
	    store_prepare(st, "SELECT name FROM accounts WHERE unsubscribe = 1 ORDER BY name", err);
	size_t cap = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = db_step(stmt)) == DB_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 8;
			*names = xrealloc(*names, cap * sizeof(**names));
		}
		(*names)[(*n)++] = xstrdup((const char *)db_column_text(stmt, 0));
	}
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "list unsubscribe accounts");
	return 0;
}

int store_accounts_unsubscribe(struct store *st, char ***names, size_t *n, char **err)
{
	int rc;

	*names = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, names, n, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		store_strv_free(*names, *n);
		*names = NULL;
		*n = 0;
	}
	return rc;
}
