/*
 * store_int.h: what the files of src/store/ share with each other and with
 * nobody else: the handle and the SQL helpers. Outside store/ the handle is
 * opaque (store.h); only store/ touches the database.
 *
 * Every helper that takes a struct store expects the caller to hold
 * st->lock. Errors: -1 (or NULL) with a malloc'd message in *err when err
 * is not NULL.
 */
#ifndef POSTHORN_STORE_INT_H
#define POSTHORN_STORE_INT_H

#include <pthread.h>

#include "db/db.h"
#include "util/util.h"

/* The built-in account (migration 1 creates it). */
#define STORE_DEFAULT_ACCOUNT "default"

/* Statements of hot paths, prepared on first use and kept until
 * store_close() (store_prepare_kept). */
enum store_kept {
	STORE_KEPT_SUPP_CHECK,     /* store_supp.c: one lookup per recipient */
	STORE_KEPT_SUPP_CHECK_ANY, /* store_supp.c: one per batch (PostgreSQL) */
	STORE_KEPT_OWNS_DOMAIN,    /* store.c: one per message (API send, SMTP MAIL) */
	STORE_KEPT_MAX
};

#define STORE_SECRET_LEN 32

struct store {
	struct db *db;
	unsigned char secret[STORE_SECRET_LEN]; /* [cluster] secret_key_file, if has_secret */
	int has_secret;
	char node_id[NODE_ID_LEN + 1]; /* store_set_node(): whose claims these are; "" none */
	struct db_stmt *kept[STORE_KEPT_MAX];
	char *path; /* db_name(): the file, or the URL without its password */
	/*
	 * One connection, one transaction at a time: two threads running
	 * BEGIN ... COMMIT on it would mix their statements into one
	 * transaction. Every public call holds this lock for its database
	 * work (and only for that: never while hashing).
	 */
	pthread_mutex_t lock;
};

/* Sets *err (when err is not NULL) and returns -1. */
int store_fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As store_fail, with the database's name and its last message. */
int store_fail_db(struct store *st, char **err, const char *what);
struct db_stmt *store_prepare(struct store *st, const char *sql, char **err);
/* Steps stmt, which returns no rows, and finalizes it: 0, or -1 with *err
 * naming `what`. db_changes() still counts its rows afterwards. */
int store_step_done(struct store *st, struct db_stmt *stmt, const char *what, char **err);
/* The kept statement `which` of sql, prepared on first use: the caller
 * binds, steps and resets it (db_reset and db_clear_bindings), never
 * finalizes it. A prepare costs more than the lookup it serves. */
struct db_stmt *store_prepare_kept(struct store *st, enum store_kept which, const char *sql,
                                   char **err);

/* Column i of the current row as a malloc'd string; NULL reads as ""
 * (store_col_text) or stays NULL (store_col_dup). */
static inline char *store_col_text(struct db_stmt *stmt, int i)
{
	const char *t = db_column_text(stmt, i);

	return xstrdup(t ? t : "");
}

static inline char *store_col_dup(struct db_stmt *stmt, int i)
{
	const char *t = db_column_text(stmt, i);

	return t ? xstrdup(t) : NULL;
}

/* db_begin (SQLite: BEGIN IMMEDIATE) / COMMIT; rollback ends a failed transaction (if one is
 * open) and always returns -1, so that `return store_tx_rollback(st);`
 * reports the earlier error. */
int store_tx_begin(struct store *st, char **err);
int store_tx_commit(struct store *st, char **err);
int store_tx_rollback(struct store *st);

/* Tables whose ids are max + 1: store_tx_serial() serializes their writers. */
enum store_serial { STORE_SERIAL_EVENTS = 1, STORE_SERIAL_API_KEYS, STORE_SERIAL_WEBHOOKS };
int store_tx_serial(struct store *st, enum store_serial what, char **err);

/* Migration 6 -> 7 (store.c's list): the outbound TLS policy tables. */
extern const char store_tls_migration[];
/* Migration 7 -> 8: events, messages, their counters, webhooks (store_events.c). */
extern const char store_events_migration[];
/* Migration 8 -> 9: accounts.unsubscribe (store_account_unsub.c). */
extern const char store_unsub_migration[];
/* Migration 9 -> 10 (store.c's list): deliverability (store_deliv.c). */
extern const char store_deliv_migration[];
/* Migration 13 -> 14: the nodes' heartbeats (store_nodes.c). */
extern const char store_nodes_migration[];
/* Migration 10 -> 11: Idempotency-Key records (store_idem.c). */
extern const char store_idem_migration[];
/* Migration 11 -> 12: idempotency_keys.planned (store_idem.c). */
extern const char store_idem_plan_migration[];
/* Runs fn(st, arg, err) in a transaction, holding the lock: committed
 * when fn returns >= 0 (its result is returned), rolled back otherwise. */
int store_deliv_in_tx(struct store *st, int (*fn)(struct store *st, void *arg, char **err),
                      void *arg, char **err);

/* Runs one(st, stmt, i, arg, err) for each i < n on sql, prepared once and
 * reset before each call, in one transaction (a batch may hold thousands
 * of rows): committed when every call returns 0; else rolled back and the
 * first nonzero result returned (-1 when the transaction itself fails). */
int store_each_in_tx(struct store *st, const char *sql, size_t n,
                     int (*one)(struct store *st, struct db_stmt *stmt, size_t i, void *arg,
                                char **err),
                     void *arg, char **err);

/* The cluster secret (store_secret.c): load reads the file into st;
 * seal gives base64 text (malloc'd); open gives the plain text back, or
 * NULL when it does not open under this key. */
int store_secret_load(struct store *st, const char *path, char **err);
char *store_secret_seal(const struct store *st, const char *plain);
char *store_secret_open(const struct store *st, const char *sealed);
/* Migration 12 -> 13: dkim_keys.key_box (store_dkim.c). */
extern const char store_dkim_box_migration[];
/* Migration 13 -> 14: webhook delivery claims (store_webhooks.c). */
extern const char store_claim_migration[];
/* Migration 15 -> 16: the shared node keys (store_keys.c). */
extern const char store_keys_migration[];
/* Migration 16 -> 17: the queue-ID tags' holders (store_nodes.c). */
extern const char store_node_tags_migration[];
extern const char store_node_instance_migration[];
/* Migration 17 -> 18: idempotency_keys.node_id (store_idem.c). */
extern const char store_idem_node_migration[];
/* Migration 18 -> 19: node_id in quota_counts and reputation (store_deliv_flush.c). */
extern const char store_deliv_node_migration[];

/* Opening (store_schema.c): applies every pending migration, under
 * db_migrate_lock, each in its own transaction; refuses a newer schema. */
int store_schema_migrate(struct store *st, char **err);

/* The id of account `name`: 0 if there is none, -1 on error. */
int64_t store_account_id(struct store *st, const char *name, char **err);

#endif
