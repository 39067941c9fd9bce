/*
 * store_apikey: the HTTP API keys (table api_keys, migration 3 in
 * store.c), an account's sender domains for the API, and a ping for
 * /healthz.
 *
 * Promises:
 * - A key is made from 32 bytes of libsodium's randombytes and shown once;
 *   only its SHA-256 (hex) is stored, and lookups go by that hash. A key
 *   has 256 bits of entropy, so a fast hash is enough: nobody can search
 *   the key space, and the hash in the database is useless without the key.
 * - A lookup compares the stored hash with the computed one in constant
 *   time before it answers (the index lookup itself only ever sees hashes).
 * - Scope (struct store_apikey_scope) is applied in SQL: a key out of the
 *   caller's scope is reported exactly like a key that does not exist.
 * - The SQL is what PostgreSQL accepts too (no AUTOINCREMENT, RETURNING,
 *   BIGINT times, hex TEXT instead of BLOB).
 */
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

#define KEY_COLUMNS                                                                                \
	"k.id, a.name, k.name, k.admin, k.created_at, coalesce(k.last_used_at, 0),"                \
	" coalesce(k.revoked_at, 0)"

static const char insert_sql[] =
    "INSERT INTO api_keys (id, account_id, name, key_hash, admin, created_at)"
    " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM api_keys),"
    " (SELECT id FROM accounts WHERE name = ?1), ?2, ?3, ?4, ?5) RETURNING id";
static const char lookup_sql[] = "SELECT " KEY_COLUMNS ", k.key_hash FROM api_keys k"
                                 " JOIN accounts a ON a.id = k.account_id"
                                 " WHERE k.key_hash = ?1 AND k.revoked_at IS NULL";
static const char scoped_sql[] =
    "SELECT " KEY_COLUMNS " FROM api_keys k"
    " JOIN accounts a ON a.id = k.account_id"
    " WHERE (CAST(?1 AS TEXT) IS NULL OR a.name = ?1) AND (?2 = 1 OR k.admin = 0)"
    " AND (?3 = 0 OR k.id = ?3) ORDER BY k.id";

/* ---- pure ------------------------------------------------------------------- */

int store_apikey_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n > APIKEY_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return 0;
	return 1;
}

int store_apikey_format_ok(const char *key)
{
	size_t p = strlen(APIKEY_PREFIX);

	return strlen(key) == APIKEY_LEN && strncmp(key, APIKEY_PREFIX, p) == 0 &&
	       strspn(key + p, "0123456789abcdef") == APIKEY_LEN - p;
}

void store_apikey_hash(const char *key, unsigned char hash[APIKEY_HASH_LEN])
{
	crypto_hash_sha256(hash, (const unsigned char *)key, strlen(key));
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
	sodium_bin2hex(out, n * 2 + 1, b, n);
}

/* ---- rows -------------------------------------------------------------------- */

static void copy_text(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? (const char *)src : "");
}

/* Reads the KEY_COLUMNS of the current row. */
static void read_key(struct db_stmt *stmt, struct store_apikey *k)
{
	memset(k, 0, sizeof(*k));
	k->id = db_column_int64(stmt, 0);
	copy_text(k->account, sizeof(k->account), db_column_text(stmt, 1));
	copy_text(k->name, sizeof(k->name), db_column_text(stmt, 2));
	k->admin = db_column_int(stmt, 3) != 0;
	k->created_at = db_column_int64(stmt, 4);
	k->last_used_at = db_column_int64(stmt, 5);
	k->revoked_at = db_column_int64(stmt, 6);
}

/* ---- create ------------------------------------------------------------------- */

static int create_locked(struct store *st, const char *account, const char *name, int admin,
                         const char *hash_hex, int64_t *id, char **err)
{
	struct db_stmt *stmt = store_prepare(st, insert_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, account, -1, DB_STATIC);
	db_bind_text(stmt, 2, name, -1, DB_STATIC);
	db_bind_text(stmt, 3, hash_hex, -1, DB_STATIC);
	db_bind_int(stmt, 4, admin ? 1 : 0);
	db_bind_int64(stmt, 5, clock_now_s());
	rc = db_step(stmt);
	if (rc == DB_ROW)
		*id = db_column_int64(stmt, 0);
	db_finalize(stmt);
	if (rc == DB_CONSTRAINT_NOTNULL)
		return store_fail(err, "no such account '%s'", account);
	if (rc != DB_ROW)
		return store_fail_db(st, err, "add API key");
	return 0;
}

int store_apikey_create(struct store *st, const char *account, const char *name, int admin,
                        char key[APIKEY_LEN + 1], int64_t *id, char **err)
{
	unsigned char raw[32], hash[APIKEY_HASH_LEN];
	char hash_hex[APIKEY_HASH_LEN * 2 + 1];
	int rc;

	if (!store_apikey_name_valid(name))
		return store_fail(err,
		                  "invalid key name (at most %d characters, no control "
		                  "characters)",
		                  APIKEY_NAME_MAX);
	randombytes_buf(raw, sizeof(raw));
	memcpy(key, APIKEY_PREFIX, strlen(APIKEY_PREFIX));
	to_hex(raw, sizeof(raw), key + strlen(APIKEY_PREFIX));
	sodium_memzero(raw, sizeof(raw));
	store_apikey_hash(key, hash);
	to_hex(hash, sizeof(hash), hash_hex);
	pthread_mutex_lock(&st->lock);
	/* max(id) + 1 and the insert in a transaction that waits for every
	 * other node adding a key (store_tx_serial). */
	if (store_tx_serial(st, STORE_SERIAL_API_KEYS, err) < 0)
		rc = -1;
	else if (create_locked(st, account, name, admin, hash_hex, id, err) < 0 ||
	         store_tx_commit(st, err) < 0)
		rc = store_tx_rollback(st);
	else
		rc = 0;
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		sodium_memzero(key, APIKEY_LEN + 1);
	return rc;
}

/* ---- lookup --------------------------------------------------------------------- */

static int lookup_locked(struct store *st, const char *hash_hex, struct store_apikey *out,
                         char **err)
{
	struct db_stmt *stmt = store_prepare(st, lookup_sql, err);
	const char *stored;
	int rc, found = 0;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, hash_hex, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW) {
		stored = db_column_text(stmt, 7);
		found = stored && strlen((const char *)stored) == strlen(hash_hex) &&
		        sodium_memcmp(stored, hash_hex, strlen(hash_hex)) == 0;
		if (found)
			read_key(stmt, out);
	}
	db_finalize(stmt);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail_db(st, err, "API key lookup");
	return found;
}

int store_apikey_lookup(struct store *st, const unsigned char hash[APIKEY_HASH_LEN],
                        struct store_apikey *out, char **err)
{
	char hash_hex[APIKEY_HASH_LEN * 2 + 1];
	int rc;

	to_hex(hash, APIKEY_HASH_LEN, hash_hex);
	pthread_mutex_lock(&st->lock);
	rc = lookup_locked(st, hash_hex, out, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- listing and changes ---------------------------------------------------------- */

static struct db_stmt *scoped(struct store *st, const struct store_apikey_scope *scope, int64_t id,
                              char **err)
{
	struct db_stmt *stmt = store_prepare(st, scoped_sql, err);

	if (!stmt)
		return NULL;
	if (scope->account)
		db_bind_text(stmt, 1, scope->account, -1, DB_STATIC);
	db_bind_int(stmt, 2, scope->admin ? 1 : 0);
	db_bind_int64(stmt, 3, id);
	return stmt;
}

static int list_locked(struct store *st, const struct store_apikey_scope *scope,
                       struct store_apikey **v, size_t *n, char **err)
{
	struct db_stmt *stmt = scoped(st, scope, 0, err);
	int rc;

	if (!stmt)
		return -1;
	while ((rc = db_step(stmt)) == DB_ROW) {
		*v = xrealloc(*v, (*n + 1) * sizeof(**v));
		read_key(stmt, &(*v)[(*n)++]);
	}
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "list API keys");
	return 0;
}

int store_apikey_list(struct store *st, const struct store_apikey_scope *scope,
                      void (*cb)(void *arg, const struct store_apikey *k), void *arg, char **err)
{
	struct store_apikey *v = NULL;
	size_t n = 0;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, scope, &v, &n, err);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; rc == 0 && i < n; i++)
		cb(arg, &v[i]);
	free(v);
	return rc;
}

static int no_such_key(int64_t id, char **err)
{
	store_fail(err, "no such API key %lld", (long long)id);
	return STORE_APIKEY_NOT_FOUND;
}

/* The key id if in scope: 1 found, STORE_APIKEY_NOT_FOUND, -1 error. */
static int get_scoped(struct store *st, int64_t id, const struct store_apikey_scope *scope,
                      struct store_apikey *out, char **err)
{
	struct db_stmt *stmt = id > 0 ? scoped(st, scope, id, err) : NULL;
	int rc;

	if (id <= 0)
		return no_such_key(id, err);
	if (!stmt)
		return -1;
	rc = db_step(stmt);
	if (rc == DB_ROW)
		read_key(stmt, out);
	db_finalize(stmt);
	if (rc == DB_DONE)
		return no_such_key(id, err);
	return rc == DB_ROW ? 1 : store_fail_db(st, err, "API key");
}

/* Runs UPDATE api_keys SET <set> = ?2 WHERE id = ?1. */
static int update_key(struct store *st, const char *sql, int64_t id, const char *text,
                      int64_t value, char **err)
{
	struct db_stmt *stmt = store_prepare(st, sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	if (text)
		db_bind_text(stmt, 2, text, -1, DB_STATIC);
	else
		db_bind_int64(stmt, 2, value);
	rc = db_step(stmt);
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "update API key");
}

static int revoke_locked(struct store *st, int64_t id, const struct store_apikey_scope *scope,
                         struct store_apikey *k, char **err)
{
	int rc;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((rc = get_scoped(st, id, scope, k, err)) <= 0) {
		store_tx_rollback(st);
		return rc;
	}
	if (k->revoked_at) {
		store_tx_rollback(st);
		store_fail(err, "API key %lld is already revoked", (long long)id);
		return STORE_APIKEY_REVOKED;
	}
	k->revoked_at = clock_now_s();
	if (update_key(st, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1", id, NULL,
	               k->revoked_at, err) < 0 ||
	    store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_apikey_revoke(struct store *st, int64_t id, const struct store_apikey_scope *scope,
                        struct store_apikey *out, char **err)
{
	struct store_apikey k;
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = revoke_locked(st, id, scope, &k, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0 && out)
		*out = k;
	return rc;
}

static int rename_locked(struct store *st, int64_t id, const struct store_apikey_scope *scope,
                         const char *name, struct store_apikey *k, char **err)
{
	int rc;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((rc = get_scoped(st, id, scope, k, err)) <= 0) {
		store_tx_rollback(st);
		return rc;
	}
	if (update_key(st, "UPDATE api_keys SET name = ?2 WHERE id = ?1", id, name, 0, err) < 0 ||
	    store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	snprintf(k->name, sizeof(k->name), "%s", name);
	return 0;
}

int store_apikey_rename(struct store *st, int64_t id, const struct store_apikey_scope *scope,
                        const char *name, struct store_apikey *out, char **err)
{
	struct store_apikey k;
	int rc;

	if (!store_apikey_name_valid(name))
		return store_fail(err, "invalid key name");
	pthread_mutex_lock(&st->lock);
	rc = rename_locked(st, id, scope, name, &k, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0 && out)
		*out = k;
	return rc;
}

static int touch_locked(struct store *st, const int64_t *ids, const int64_t *times, size_t n,
                        char **err)
{
	static const char sql[] = "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1"
	                          " AND (last_used_at IS NULL OR last_used_at < ?2)";

	if (store_tx_begin(st, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (update_key(st, sql, ids[i], NULL, times[i], err) < 0)
			return store_tx_rollback(st);
	if (store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_apikey_touch(struct store *st, const int64_t *ids, const int64_t *times, size_t n,
                       char **err)
{
	int rc;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&st->lock);
	rc = touch_locked(st, ids, times, n, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- accounts, health ------------------------------------------------------------------ */

static int domains_locked(struct store *st, const char *account, char ***out, size_t *n, char **err)
{
	struct db_stmt *stmt = store_prepare(st,
	                                     "SELECT a.id, d.domain FROM accounts a"
	                                     " LEFT JOIN account_domains d ON d.account_id = a.id"
	                                     " WHERE a.name = ?1 ORDER BY d.domain",
	                                     err);
	int rc, rows = 0;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, account, -1, DB_STATIC);
	while ((rc = db_step(stmt)) == DB_ROW) {
		const char *d = db_column_text(stmt, 1);
		rows++;
		if (!d)
			continue;
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		(*out)[(*n)++] = xstrdup((const char *)d);
	}
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, "account domains");
	return rows ? 0 : store_fail(err, "no such account '%s'", account);
}

int store_account_domains(struct store *st, const char *account, char ***out, size_t *n, char **err)
{
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&st->lock);
	rc = domains_locked(st, account, out, n, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0) {
		for (size_t i = 0; i < *n; i++)
			free((*out)[i]);
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int store_ping(struct store *st, char **err)
{
	struct db_stmt *stmt;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	stmt = store_prepare(st, "SELECT 1 FROM accounts LIMIT 1", err);
	if (stmt) {
		rc = db_step(stmt);
		db_finalize(stmt);
		rc = (rc == DB_ROW || rc == DB_DONE) ? 0 : store_fail_db(st, err, "ping");
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}
