/*
 * store_dkim: the DKIM keys table (migrations 4 and 13, store_schema.c):
 * dkim_keys(domain, selector, algorithm, state, created, activated,
 * retired, key_path, key_box), keyed by (domain, selector).
 *
 * Promises:
 * - A key is added whole or not at all (one INSERT); its selector is
 *   unique within its domain.
 * - store_dkim_change() is all or nothing, and each change is a
 *   compare-and-set on the state: two processes activating the same
 *   pending key cannot both retire the old one at different times.
 * - The SQL is plain enough for PostgreSQL too (no SQLite-only types or
 *   clauses).
 * - With a secret key, the private key is stored sealed (key_box) beside
 *   its file; a box that does not open is logged and the file is used.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

static const char insert_sql[] =
    "INSERT INTO dkim_keys (domain, selector, algorithm, state, created, activated, retired,"
    " key_path, key_box) VALUES (lower(?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

static const char list_sql[] =
    "SELECT domain, selector, algorithm, state, created, activated, retired, key_path, key_box"
    " FROM dkim_keys WHERE (CAST(?1 AS TEXT) IS NULL OR domain = lower(?1)) AND (CAST(?2 AS TEXT) "
    "IS NULL OR state = ?2)"
    " ORDER BY domain, created, selector";

static const char change_sql[] = "UPDATE dkim_keys SET state = ?4,"
                                 " activated = CASE WHEN ?4 = 'active' THEN ?5 ELSE activated END,"
                                 " retired = CASE WHEN ?4 = 'retired' THEN ?5 ELSE retired END"
                                 " WHERE domain = lower(?1) AND selector = ?2 AND state = ?3";

/* ---- adding -------------------------------------------------------------- */

static void bind_time(struct db_stmt *stmt, int i, int64_t t)
{
	if (t)
		db_bind_int64(stmt, i, t);
	else
		db_bind_null(stmt, i);
}

/*
 * Migration 12 -> 13 (store_schema.c's list): the private key sealed under
 * [cluster] secret_key_file (store_secret.c), so that every node of a
 * cluster signs with a key made on one of them; NULL without a secret.
 */
const char store_dkim_box_migration[] = "ALTER TABLE dkim_keys ADD COLUMN key_box TEXT;";

static int add_locked(struct store *st, const struct store_dkim_key *k, char **err)
{
	struct db_stmt *stmt = store_prepare(st, insert_sql, err);
	char *box = NULL;
	int rc;

	if (stmt == NULL)
		return -1;
	if (st->has_secret && k->key_pem)
		box = store_secret_seal(st, k->key_pem);
	db_bind_text(stmt, 9, box, -1, DB_TRANSIENT); /* NULL binds NULL */
	free(box);
	db_bind_text(stmt, 1, k->domain, -1, DB_STATIC);
	db_bind_text(stmt, 2, k->selector, -1, DB_STATIC);
	db_bind_text(stmt, 3, k->algorithm, -1, DB_STATIC);
	db_bind_text(stmt, 4, k->state, -1, DB_STATIC);
	db_bind_int64(stmt, 5, k->created);
	bind_time(stmt, 6, k->activated);
	bind_time(stmt, 7, k->retired);
	db_bind_text(stmt, 8, k->key_path, -1, DB_STATIC);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc == DB_CONSTRAINT_UNIQUE)
		return store_fail(err, "%s already has a key with selector '%s'", k->domain,
		                  k->selector);
	if (rc == DB_CONSTRAINT_CHECK)
		return store_fail(err, "invalid algorithm '%s' or state '%s'", k->algorithm,
		                  k->state);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "add DKIM key");
	return 0;
}

int store_dkim_add(struct store *st, const struct store_dkim_key *k, char **err)
{
	int rc;

	if (!k->domain || !k->selector || !k->algorithm || !k->state || !k->key_path)
		return store_fail(err, "incomplete DKIM key");
	pthread_mutex_lock(&st->lock);
	rc = add_locked(st, k, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- listing -------------------------------------------------------------- */

static void row_read(const struct store *st, struct db_stmt *stmt, struct store_dkim_key *k)
{
	k->domain = store_col_text(stmt, 0);
	k->selector = store_col_text(stmt, 1);
	k->algorithm = store_col_text(stmt, 2);
	k->state = store_col_text(stmt, 3);
	k->created = db_column_int64(stmt, 4);
	k->activated = db_column_int64(stmt, 5); /* NULL reads as 0 */
	k->retired = db_column_int64(stmt, 6);
	k->key_path = store_col_text(stmt, 7);
	k->key_pem = NULL;
	if (st->has_secret && !db_column_is_null(stmt, 8)) {
		k->key_pem = store_secret_open(st, db_column_text(stmt, 8));
		if (k->key_pem == NULL)
			log_err("event=dkim_key_box_error domain=%s selector=%s error=%s",
			        log_q(k->domain), log_q(k->selector),
			        log_q("does not open under [cluster] secret_key_file"));
	}
}

static int list_locked(struct store *st, const char *domain, const char *state,
                       struct store_dkim_key **out, size_t *n, char **err)
{
	struct db_stmt *stmt = store_prepare(st, list_sql, err);
	size_t cap = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	db_bind_text(stmt, 1, domain, -1, DB_STATIC); /* NULL binds NULL */
	db_bind_text(stmt, 2, state, -1, DB_STATIC);
	while ((rc = db_step(stmt)) == DB_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 8;
			*out = xrealloc(*out, cap * sizeof **out);
		}
		row_read(st, stmt, &(*out)[(*n)++]);
	}
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "list DKIM keys");
	return 0;
}

int store_dkim_list(struct store *st, const char *domain, const char *state,
                    struct store_dkim_key **out, size_t *n, char **err)
{
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, domain, state, out, n, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		store_dkim_keys_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

void store_dkim_keys_free(struct store_dkim_key *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].domain);
		free(v[i].selector);
		free(v[i].algorithm);
		free(v[i].state);
		free(v[i].key_path);
		if (v[i].key_pem) {
			sodium_memzero(v[i].key_pem, strlen(v[i].key_pem));
			free(v[i].key_pem);
		}
	}
	free(v);
}

/* ---- state changes ---------------------------------------------------------- */

/* Change i of arg, one of store_each_in_tx: 0 applied, 1 the key was not in
 * c->from, -1 error. */
static int change_one(struct store *st, struct db_stmt *stmt, size_t i, void *arg, char **err)
{
	const struct store_dkim_change *c = (const struct store_dkim_change *)arg + i;

	db_bind_text(stmt, 1, c->domain, -1, DB_STATIC);
	db_bind_text(stmt, 2, c->selector, -1, DB_STATIC);
	db_bind_text(stmt, 3, c->from, -1, DB_STATIC);
	db_bind_text(stmt, 4, c->to, -1, DB_STATIC);
	db_bind_int64(stmt, 5, c->at);
	if (db_step(stmt) != DB_DONE)
		return store_fail_db(st, err, "change DKIM key");
	return db_changes(st->db) == 1 ? 0 : 1;
}

int store_dkim_change(struct store *st, const struct store_dkim_change *c, size_t n, char **err)
{
	int rc;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&st->lock);
	rc = store_each_in_tx(st, change_sql, n, change_one, (void *)c, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}
