/*
 * store_nodes: the nodes' heartbeats (migration 13 -> 14,
 * store_nodes_migration; docs/cluster.md "Cluster status").
 *
 * Promises:
 * - One row per node ID. store_node_beat() writes the whole row (an
 *   upsert: the first beat of a node inserts it, a restarted node's first
 *   beat clears its stopped mark); store_node_stop() marks it stopped.
 * - store_node_beat() measures the database's round trip with one
 *   `SELECT 1` before it writes, under st->lock: on PostgreSQL the time
 *   to the server and back, on SQLite a local call (not recorded).
 * - Each beat reads the row's writer (its instance token) before it
 *   writes, under st->lock, so that the caller sees whether another
 *   process with the same node ID wrote it since (cluster_beat.c). A stop
 *   marks the row only while it is the stopping process's.
 * - store_node_forget() deletes a row that is not up (unless forced) with
 *   one conditional DELETE, then the node's tag claim.
 * - store_nodes_list() gives every row, ordered by node ID, with the node
 *   ID that holds its tag; whether a node is up or stale, or has lost its
 *   tag, is the reader's to judge (store_node_state, store_node_tag_lost).
 * - store_node_tag_claim() is the same statement at start and at every
 *   beat: a node's own claim is renewed, another live node's is kept.
 * - The SQL is the same on both engines.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_nodes.h"
#include "store/store_int.h"
#include "util/util.h"

const char store_nodes_migration[] =
    "CREATE TABLE nodes (id TEXT PRIMARY KEY, hostname TEXT NOT NULL, version TEXT NOT NULL,"
    "  started_at BIGINT NOT NULL, beat_at BIGINT NOT NULL, stopped_at BIGINT,"
    "  messages BIGINT NOT NULL, recipients BIGINT NOT NULL, pg_us BIGINT, redis_us BIGINT);";

/* Migration 20 -> 21: the process that wrote the row (a random token made
 * at each start), and the host of another live process writing it too
 * (NULL: none), as the writer saw at its beat. */
const char store_node_instance_migration[] =
    "ALTER TABLE nodes ADD COLUMN instance TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE nodes ADD COLUMN clash_host TEXT;";

static const char beat_sql[] =
    "INSERT INTO nodes (id, hostname, version, started_at, beat_at, stopped_at, messages,"
    " recipients, pg_us, redis_us, instance, clash_host)"
    " VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, ?7, ?8, ?9, ?10, ?11)"
    " ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version,"
    " started_at = excluded.started_at, beat_at = excluded.beat_at, stopped_at = NULL,"
    " messages = excluded.messages, recipients = excluded.recipients, pg_us = excluded.pg_us,"
    " redis_us = excluded.redis_us, instance = excluded.instance,"
    " clash_host = excluded.clash_host";
/* The row as the last writer left it, read before a beat writes. */
static const char prev_sql[] =
    "SELECT instance, hostname, beat_at, stopped_at FROM nodes WHERE id = ?1";
/* Migration 16 -> 17: which node ID holds each queue-ID tag. */
const char store_node_tags_migration[] =
    "CREATE TABLE node_tags (tag TEXT PRIMARY KEY, node_id TEXT NOT NULL,"
    "  claimed_at BIGINT NOT NULL);";

/* One statement: the tag is taken when free, already this node's, or held
 * by a node that is not live: no beat since ?4 (or stopped), and either no
 * claim since ?4 or stopped after its claim. */
static const char tag_claim_sql[] =
    "INSERT INTO node_tags (tag, node_id, claimed_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (tag) DO UPDATE SET node_id = excluded.node_id,"
    " claimed_at = excluded.claimed_at"
    " WHERE node_tags.node_id = excluded.node_id OR (NOT EXISTS (SELECT 1 FROM nodes"
    " WHERE nodes.id = node_tags.node_id AND nodes.stopped_at IS NULL AND nodes.beat_at > ?4)"
    " AND (node_tags.claimed_at <= ?4 OR EXISTS (SELECT 1 FROM nodes WHERE"
    " nodes.id = node_tags.node_id AND nodes.stopped_at >= node_tags.claimed_at)))";
static const char tag_holder_sql[] = "SELECT node_id FROM node_tags WHERE tag = ?1";
static const char stop_sql[] =
    "UPDATE nodes SET stopped_at = ?2, beat_at = ?2 WHERE id = ?1 AND instance = ?3";
static const char forget_sql[] =
    "DELETE FROM nodes WHERE id = ?1 AND (?2 = 1 OR stopped_at IS NOT NULL OR beat_at <= ?3)"
    " RETURNING id";
static const char known_sql[] = "SELECT id FROM nodes WHERE id = ?1";
static const char forget_tag_sql[] = "DELETE FROM node_tags WHERE node_id = ?1 RETURNING tag";
static const char list_sql[] =
    "SELECT id, hostname, version, started_at, beat_at, stopped_at, messages, recipients,"
    " pg_us, redis_us, (SELECT node_id FROM node_tags WHERE node_tags.tag = substr(nodes.id,"
    " 1, 3)), instance, clash_host FROM nodes ORDER BY id";

static void bind_opt(struct db_stmt *s, int i, int64_t v)
{
	if (v < 0)
		db_bind_null(s, i);
	else
		db_bind_int64(s, i, v);
}

static int64_t col_opt(struct db_stmt *s, int i)
{
	return db_column_is_null(s, i) ? -1 : db_column_int64(s, i);
}

/* One `SELECT 1`: its round trip in microseconds, -1 if it failed. */
static int64_t round_trip(struct store *st)
{
	uint64_t t0 = clock_mono_us();
	struct db_stmt *s = store_prepare(st, "SELECT 1", NULL);
	int ok;

	if (!s)
		return -1;
	ok = db_step(s) == DB_ROW;
	db_finalize(s);
	return ok ? (int64_t)(clock_mono_us() - t0) : -1;
}

/* The row's writer before this beat into *prev (prev->instance NULL: no
 * row). */
static int prev_locked(struct store *st, const char *id, struct store_node *prev, char **err)
{
	struct db_stmt *s = store_prepare(st, prev_sql, err);
	int rc;

	if (!s)
		return -1;
	db_bind_text(s, 1, id, -1, DB_STATIC);
	if ((rc = db_step(s)) == DB_ROW) {
		prev->instance = store_col_text(s, 0);
		prev->hostname = store_col_text(s, 1);
		prev->beat_at = db_column_int64(s, 2);
		prev->stopped_at = col_opt(s, 3);
	}
	db_finalize(s);
	return rc == DB_ROW || rc == DB_DONE ? 0 : store_fail_db(st, err, "node heartbeat read");
}

static int beat_locked(struct store *st, struct store_node *n, struct store_node *prev,
                       store_node_judge *judge, void *arg, char **err)
{
	struct db_stmt *s;

	n->pg_us = -1;
	if (db_kind(st->db) == DB_POSTGRES && (n->pg_us = round_trip(st)) < 0)
		return store_fail_db(st, err, "node heartbeat");
	if (prev_locked(st, n->id, prev, err) < 0)
		return -1;
	if (judge)
		judge(arg, prev, n);
	if (!(s = store_prepare(st, beat_sql, err)))
		return -1;
	db_bind_text(s, 1, n->id, -1, DB_STATIC);
	db_bind_text(s, 2, n->hostname, -1, DB_STATIC);
	db_bind_text(s, 3, n->version, -1, DB_STATIC);
	db_bind_int64(s, 4, n->started_at);
	db_bind_int64(s, 5, n->beat_at);
	db_bind_int64(s, 6, n->messages);
	db_bind_int64(s, 7, n->recipients);
	bind_opt(s, 8, n->pg_us);
	bind_opt(s, 9, n->redis_us);
	db_bind_text(s, 10, n->instance ? n->instance : "", -1, DB_STATIC);
	if (n->clash_host)
		db_bind_text(s, 11, n->clash_host, -1, DB_STATIC);
	else
		db_bind_null(s, 11);
	return store_step_done(st, s, "node heartbeat", err);
}

int store_node_beat(struct store *st, struct store_node *n, struct store_node *prev,
                    store_node_judge *judge, void *arg, char **err)
{
	int rc;

	memset(prev, 0, sizeof(*prev));
	pthread_mutex_lock(&st->lock);
	rc = beat_locked(st, n, prev, judge, arg, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_node_stop(struct store *st, const char *id, const char *instance, int64_t now, char **err)
{
	struct db_stmt *s;
	int rc = -1;

	pthread_mutex_lock(&st->lock);
	if ((s = store_prepare(st, stop_sql, err))) {
		db_bind_text(s, 1, id, -1, DB_STATIC);
		db_bind_int64(s, 2, now);
		db_bind_text(s, 3, instance ? instance : "", -1, DB_STATIC);
		rc = store_step_done(st, s, "node stop", err);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int tag_locked(struct store *st, const char *id, int64_t now, char **holder, char **err)
{
	char tag[4];
	struct db_stmt *s;
	int rc;

	snprintf(tag, sizeof(tag), "%.3s", id);
	if (!(s = store_prepare(st, tag_claim_sql, err)))
		return -1;
	db_bind_text(s, 1, tag, -1, DB_TRANSIENT);
	db_bind_text(s, 2, id, -1, DB_STATIC);
	db_bind_int64(s, 3, now);
	db_bind_int64(s, 4, now - STORE_NODE_STALE_S);
	if (store_step_done(st, s, "node tag claim", err) < 0)
		return -1;
	if (!(s = store_prepare(st, tag_holder_sql, err)))
		return -1;
	db_bind_text(s, 1, tag, -1, DB_TRANSIENT);
	rc = db_step(s);
	if (rc == DB_ROW)
		*holder = store_col_text(s, 0);
	db_finalize(s);
	if (rc != DB_ROW)
		return rc == DB_DONE ? store_fail(err, "node tag %s: no row after the claim", tag)
		                     : store_fail_db(st, err, "node tag read");
	return strcmp(*holder, id) == 0;
}

int store_node_tag_claim(struct store *st, const char *id, int64_t now, char **holder, char **err)
{
	int rc;

	*holder = NULL;
	pthread_mutex_lock(&st->lock);
	rc = tag_locked(st, id, now, holder, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* sql with ?1 = id (and ?2, ?3 = ints when n_ints is 2): 1 when it gave
 * a row, 0 when not, -1 with *err. */
static int any_row(struct store *st, const char *sql, const char *id, int n_ints,
                   const int64_t *ints, char **err)
{
	struct db_stmt *s = store_prepare(st, sql, err);
	int rc;

	if (!s)
		return -1;
	db_bind_text(s, 1, id, -1, DB_STATIC);
	for (int i = 0; i < n_ints; i++)
		db_bind_int64(s, 2 + i, ints[i]);
	rc = db_step(s);
	db_finalize(s);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail_db(st, err, "node forget");
	return rc == DB_ROW;
}

static int forget_locked(struct store *st, const char *id, int64_t now, int force, char **err)
{
	int64_t ints[2] = {force ? 1 : 0, now - STORE_NODE_STALE_S};
	int row, tag;

	if ((row = any_row(st, forget_sql, id, 2, ints, err)) < 0)
		return -1;
	if (!row && (row = any_row(st, known_sql, id, 0, NULL, err)) != 0)
		return row < 0 ? -1 : STORE_FORGET_UP;
	if ((tag = any_row(st, forget_tag_sql, id, 0, NULL, err)) < 0)
		return -1;
	return row || tag ? STORE_FORGOT : STORE_FORGET_UNKNOWN;
}

int store_node_forget(struct store *st, const char *id, int64_t now, int force, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = forget_locked(st, id, now, force, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

void store_set_node(struct store *st, const char *id)
{
	pthread_mutex_lock(&st->lock);
	snprintf(st->node_id, sizeof(st->node_id), "%s", id ? id : "");
	pthread_mutex_unlock(&st->lock);
}

static void read_node(struct db_stmt *s, struct store_node *n)
{
	n->id = store_col_text(s, 0);
	n->hostname = store_col_text(s, 1);
	n->version = store_col_text(s, 2);
	n->started_at = db_column_int64(s, 3);
	n->beat_at = db_column_int64(s, 4);
	n->stopped_at = col_opt(s, 5);
	n->messages = db_column_int64(s, 6);
	n->recipients = db_column_int64(s, 7);
	n->pg_us = col_opt(s, 8);
	n->redis_us = col_opt(s, 9);
	n->tag_holder = db_column_is_null(s, 10) ? NULL : store_col_text(s, 10);
	n->instance = store_col_text(s, 11);
	n->clash_host = db_column_is_null(s, 12) ? NULL : store_col_text(s, 12);
}

static int list_locked(struct store *st, struct store_node **out, size_t *n_out, char **err)
{
	struct db_stmt *s = store_prepare(st, list_sql, err);
	size_t n = 0, cap = 0;
	int step;

	*out = NULL;
	if (!s)
		return -1;
	while ((step = db_step(s)) == DB_ROW) {
		if (n == cap)
			*out = xrealloc(*out, (cap = cap ? cap * 2 : 8) * sizeof(**out));
		read_node(s, &(*out)[n++]);
	}
	db_finalize(s);
	*n_out = n;
	if (step == DB_DONE)
		return 0;
	store_nodes_free(*out, n);
	*out = NULL;
	return store_fail_db(st, err, "nodes");
}

int store_nodes_list(struct store *st, struct store_node **out, size_t *n, char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, out, n, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

void store_node_clear(struct store_node *n)
{
	free(n->id);
	free(n->hostname);
	free(n->version);
	free(n->tag_holder);
	free(n->instance);
	free(n->clash_host);
	memset(n, 0, sizeof(*n));
}

void store_nodes_free(struct store_node *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_node_clear(&v[i]);
	free(v);
}

const char *store_node_state(const struct store_node *n, int64_t now)
{
	if (n->stopped_at >= 0)
		return "stopped";
	return now - n->beat_at >= STORE_NODE_STALE_S ? "stale" : "up";
}

int store_node_tag_lost(const struct store_node *n, int64_t now)
{
	return strcmp(store_node_state(n, now), "up") == 0 && n->tag_holder &&
	       strcmp(n->tag_holder, n->id) != 0;
}

int store_node_id_clash(const struct store_node *n, int64_t now)
{
	return strcmp(store_node_state(n, now), "up") == 0 && n->clash_host != NULL;
}
