/*
 * store_keys: the node secrets shared by every node of a cluster
 * (unsubscribe.key, tracking.key, verp.key; docs/cluster.md, "Shared
 * keys"), kept in the database sealed under [cluster] secret_key_file
 * (store_secret.c).
 *
 * Promises:
 * - One row per key name, made once: the first process to ask inserts its
 *   seed with INSERT ... ON CONFLICT DO NOTHING and every process then
 *   reads the row back, so two nodes starting together agree on the one
 *   that got in.
 * - Only on PostgreSQL with a secret: the embedded store (one node) and a
 *   cluster without secret_key_file keep each node's file (the caller's).
 * - A row that does not open under this node's secret (another secret
 *   file) is logged at error level (event=node_key_box_error), and the node
 *   keeps its own key, as with a DKIM box that does not open; the key
 *   itself is never logged.
 * - A shared key that is not the seed (a node that made links and VERP
 *   addresses with its own key before it joined) is told apart (2) and
 *   logged once (event=node_key_own_accepted), so that the caller keeps
 *   its own key for verification only.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "store/store_keys.h"
#include "log/log.h"
#include "util/util.h"

/* Migration 15 -> 16. */
const char store_keys_migration[] = "CREATE TABLE cluster_keys ("
                                    "  name TEXT PRIMARY KEY,"
                                    "  key_box TEXT NOT NULL,"
                                    "  created BIGINT NOT NULL"
                                    ");";

static const char insert_sql[] = "INSERT INTO cluster_keys (name, key_box, created)"
                                 " VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING";
static const char select_sql[] = "SELECT key_box FROM cluster_keys WHERE name = ?1";

int store_keys_shared(const struct store *st)
{
	return db_kind(st->db) == DB_POSTGRES && st->has_secret;
}

static int insert_locked(struct store *st, const char *name, const unsigned char *seed, size_t len,
                         char **err)
{
	struct db_stmt *stmt = store_prepare(st, insert_sql, err);
	char *hex = xmalloc(2 * len + 1), *box;

	if (stmt == NULL) {
		free(hex);
		return -1;
	}
	sodium_bin2hex(hex, 2 * len + 1, seed, len);
	box = store_secret_seal(st, hex);
	sodium_memzero(hex, 2 * len + 1);
	free(hex);
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	db_bind_text(stmt, 2, box, -1, DB_TRANSIENT);
	db_bind_int64(stmt, 3, clock_now_s());
	free(box);
	return store_step_done(st, stmt, "insert cluster key", err);
}

/* The row's key into key: 0; 1 when it does not open here (logged, as a
 * DKIM box that does not open: the node keeps its own key). */
static int open_row(struct store *st, const char *name, const char *box, unsigned char *key,
                    size_t len)
{
	char *hex = store_secret_open(st, box);
	unsigned char *tmp = xmalloc(len);
	size_t n = 0;
	int rc = 1;

	if (hex && sodium_hex2bin(tmp, len, hex, strlen(hex), NULL, &n, NULL) == 0 && n == len) {
		memcpy(key, tmp, len);
		rc = 0;
	} else {
		log_err("event=node_key_box_error name=%s error=%s", name,
		        log_q(hex ? "not a key of the right length"
		                  : "does not open under [cluster] secret_key_file (another secret "
		                    "than the other nodes'?): this node keeps its own key"));
	}
	if (hex) {
		sodium_memzero(hex, strlen(hex));
		free(hex);
	}
	sodium_memzero(tmp, len);
	free(tmp);
	return rc;
}

static int read_locked(struct store *st, const char *name, unsigned char *key, size_t len,
                       char **err)
{
	struct db_stmt *stmt = store_prepare(st, select_sql, err);
	int rc;

	if (stmt == NULL)
		return -1;
	db_bind_text(stmt, 1, name, -1, DB_STATIC);
	rc = db_step(stmt);
	if (rc == DB_ROW)
		rc = open_row(st, name, db_column_text(stmt, 0), key, len);
	else if (rc == DB_DONE)
		rc = store_fail(err, "%s: the shared key %s is missing", st->path, name);
	else
		rc = store_fail_db(st, err, "read cluster key");
	db_finalize(stmt);
	return rc;
}

int store_shared_key(struct store *st, const char *name, const unsigned char *seed,
                     unsigned char *key, size_t len, char **err)
{
	unsigned char *got;
	int rc;

	if (!store_keys_shared(st)) {
		if (db_kind(st->db) == DB_POSTGRES)
			log_warn("event=node_key name=%s shared=0 reason=%s", name,
			         log_q("no [cluster] secret_key_file: this node's own key"));
		return 0;
	}
	got = xmalloc(len);
	pthread_mutex_lock(&st->lock);
	rc = insert_locked(st, name, seed, len, err);
	if (rc == 0)
		rc = read_locked(st, name, got, len, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0) {
		log_info("event=node_key name=%s shared=1", name);
		rc = sodium_memcmp(got, seed, len) == 0 ? 1 : 2;
		if (rc == 2)
			log_info("event=node_key_own_accepted name=%s detail=%s", name,
			         log_q("this node's own key is not the cluster's: links and return "
			               "paths it made with it before keep verifying; new ones use "
			               "the cluster's"));
		memcpy(key, got, len);
	} else if (rc > 0) {
		rc = 0;
	}
	sodium_memzero(got, len);
	free(got);
	return rc;
}
