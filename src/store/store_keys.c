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
 *   its own key for verification only; and the seed is stored, sealed as
 *   the others, under "NAME/NODE_ID", so that every node accepts it too
 *   (links go through a load balancer, bounces to any MX). A seed the
 *   caller made at this start (fresh) was never used: none of that, and
 *   its hash is kept as NAME:unused:NODE_ID so that the node's later
 *   starts, which find the file, know it was never used either.
 * - Every node's stored own keys (not this node's, which its caller
 *   keeps) are read at start and again every REFRESH_S seconds at most
 *   (store_keys_refresh, from a worker), newest first, OLD_MAX per name;
 *   store_keys_verify() tries them without the database, on any thread.
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
static const char list_sql[] = "SELECT name, key_box FROM cluster_keys WHERE name LIKE ?1"
                               " ORDER BY created DESC, name LIMIT 65";

#define OLD_MAX   64 /* other nodes' own keys kept per name, newest first */
#define REFRESH_S 5

/* The other nodes' own keys of one name, for verifying only. */
struct ring {
	const char *name;
	int used; /* store_shared_key() shared this name here */
	int n;
	unsigned char keys[OLD_MAX][STORE_KEYS_LEN];
};

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring rings[] = {{.name = "unsubscribe"}, {.name = "tracking"}, {.name = "verp"}};
static int64_t ring_at; /* the last refresh, clock_now_s() */

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
	db_bind_text(stmt, 1, name, -1, DB_TRANSIENT);
	db_bind_text(stmt, 2, box, -1, DB_TRANSIENT);
	db_bind_int64(stmt, 3, clock_now_s());
	free(box);
	return store_step_done(st, stmt, "insert cluster key", err);
}

/* The row's key into key: 0; 1 when it does not open here (logged unless
 * quiet, as a DKIM box that does not open: the node keeps its own key). */
static int open_row_q(struct store *st, const char *name, const char *box, unsigned char *key,
                      size_t len, int quiet)
{
	char *hex = store_secret_open(st, box);
	unsigned char *tmp = xmalloc(len);
	size_t n = 0;
	int rc = 1;

	if (hex && sodium_hex2bin(tmp, len, hex, strlen(hex), NULL, &n, NULL) == 0 && n == len) {
		memcpy(key, tmp, len);
		rc = 0;
	} else if (!quiet) {
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

static int open_row(struct store *st, const char *name, const char *box, unsigned char *key,
                    size_t len)
{
	return open_row_q(st, name, box, key, len, 0);
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

static struct ring *ring_of(const char *name)
{
	for (size_t i = 0; i < sizeof(rings) / sizeof(rings[0]); i++)
		if (strcmp(rings[i].name, name) == 0)
			return &rings[i];
	return NULL;
}

/* The rows NAME/<node> of the other nodes into a fresh ring (st->lock
 * held); a row that does not open is logged at start only (quiet). */
static int list_locked(struct store *st, const char *name, struct ring *out, int quiet, char **err)
{
	struct db_stmt *stmt = store_prepare(st, list_sql, err);
	char *like = xasprintf("%s/%%", name), *mine = xasprintf("%s/%s", name, st->node_id);
	int rc;

	if (stmt == NULL) {
		free(like), free(mine);
		return -1;
	}
	db_bind_text(stmt, 1, like, -1, DB_TRANSIENT);
	while ((rc = db_step(stmt)) == DB_ROW && out->n < OLD_MAX)
		if (strcmp(db_column_text(stmt, 0), mine) != 0 &&
		    open_row_q(st, db_column_text(stmt, 0), db_column_text(stmt, 1),
		               out->keys[out->n], STORE_KEYS_LEN, quiet) == 0)
			out->n++;
	rc = rc == DB_ROW || rc == DB_DONE ? 0 : store_fail_db(st, err, "read cluster keys");
	db_finalize(stmt);
	free(like), free(mine);
	return rc;
}

/* One name's ring read again: 0, or -1 with *err (the ring kept). */
static int refresh_one(struct store *st, struct ring *r, int quiet, char **err)
{
	struct ring *fresh = xcalloc(1, sizeof(*fresh));
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, r->name, fresh, quiet, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0) {
		pthread_mutex_lock(&ring_lock);
		memcpy(r->keys, fresh->keys, sizeof(r->keys));
		r->n = fresh->n;
		pthread_mutex_unlock(&ring_lock);
	}
	sodium_memzero(fresh, sizeof(*fresh));
	free(fresh);
	return rc;
}

void store_keys_refresh(struct store *st)
{
	int64_t now = clock_now_s();
	char *err = NULL;
	int due;

	pthread_mutex_lock(&ring_lock);
	if ((due = now - ring_at >= REFRESH_S || now < ring_at))
		ring_at = now;
	pthread_mutex_unlock(&ring_lock);
	for (size_t i = 0; due && i < sizeof(rings) / sizeof(rings[0]); i++)
		if (rings[i].used && refresh_one(st, &rings[i], 1, &err) < 0) {
			log_warn("event=node_keys_error error=%s", log_q(err));
			free(err);
			return; /* the database is down: next time */
		}
}

int store_keys_verify(const char *name, int (*check)(const unsigned char *key, void *arg),
                      void *arg)
{
	struct ring *r = ring_of(name);
	int ok = 0;

	if (r == NULL)
		return 0;
	pthread_mutex_lock(&ring_lock);
	for (int i = 0; i < r->n && !ok; i++)
		ok = check(r->keys[i], arg);
	pthread_mutex_unlock(&ring_lock);
	return ok;
}

/* bytes (len) sealed into the row called NAME/NODE_ID or NAME:unused:NODE_ID. */
static int insert_row(struct store *st, const char *name, const char *sep,
                      const unsigned char *bytes, size_t len, char **err)
{
	char *row = xasprintf("%s%s%s", name, sep, st->node_id);
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = insert_locked(st, row, bytes, len, err);
	pthread_mutex_unlock(&st->lock);
	free(row);
	return rc;
}

/* 1 when NAME:unused:NODE_ID holds hash (the file was made at the start
 * that first shared the keys, and never used), 0 if not, -1 with *err. */
static int was_unused(struct store *st, const char *name, const unsigned char *hash, char **err)
{
	char *row = xasprintf("%s:unused:%s", name, st->node_id);
	unsigned char got[STORE_KEYS_LEN];
	struct db_stmt *stmt;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if ((stmt = store_prepare(st, select_sql, err)) != NULL) {
		db_bind_text(stmt, 1, row, -1, DB_TRANSIENT);
		if ((rc = db_step(stmt)) == DB_ROW)
			rc = open_row(st, row, db_column_text(stmt, 0), got, sizeof(got)) == 0 &&
			     sodium_memcmp(got, hash, sizeof(got)) == 0;
		else
			rc = rc == DB_DONE ? 0 : store_fail_db(st, err, "read cluster key");
		db_finalize(stmt);
	}
	pthread_mutex_unlock(&st->lock);
	sodium_memzero(got, sizeof(got));
	free(row);
	return rc;
}

/*
 * The cluster's key got against the node's file seed: 1 the same, or a
 * file never used (made at this start: fresh, marked by its hash so that
 * later starts know it too); 2 the node's own old key, stored for the
 * other nodes; -1 with *err.
 */
static int own_kind(struct store *st, const char *name, const unsigned char *seed,
                    const unsigned char *got, size_t len, int fresh, char **err)
{
	unsigned char hash[STORE_KEYS_LEN];
	int rc;

	if (sodium_memcmp(got, seed, len) == 0)
		return 1;
	if (!st->node_id[0])
		return fresh ? 1 : 2; /* a CLI: it makes no links */
	crypto_generichash(hash, sizeof(hash), seed, len, NULL, 0);
	if (fresh)
		rc = insert_row(st, name, ":unused:", hash, sizeof(hash), err) < 0 ? -1 : 1;
	else if ((rc = was_unused(st, name, hash, err)) == 0)
		rc = insert_row(st, name, "/", seed, len, err) < 0 ? -1 : 2;
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

int store_shared_key(struct store *st, const char *name, const unsigned char *seed, int fresh,
                     unsigned char *key, size_t len, char **err)
{
	struct ring *r = ring_of(name);
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
		rc = own_kind(st, name, seed, got, len, fresh, err);
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
	if (rc > 0 && r && len == STORE_KEYS_LEN) {
		r->used = 1;
		if (refresh_one(st, r, 0, err) < 0)
			rc = -1;
	}
	return rc;
}
