/*
 * db: a thin layer over the SQL engines the store runs on: SQLite (the
 * embedded default, a file in DATA_DIR) and PostgreSQL (a cluster's shared
 * database, through libpq). Only src/store/ calls it.
 *
 * Contract:
 * - db_open(target) opens "postgresql://..." (or "postgres://...") with
 *   the PostgreSQL driver and anything else as the path of a SQLite file
 *   (created 0600 if missing).
 * - SQL is written once, with `?` or `?N` placeholders (numbered from 1; a
 *   number may appear more than once); the PostgreSQL driver rewrites them
 *   to `$N`. Statements follow SQLite's life cycle: prepare, bind, step
 *   until DB_DONE, reset (to run again) or finalize.
 * - Text bound with DB_STATIC must stay valid until the statement is reset
 *   or finalized; DB_TRANSIENT copies it at bind time.
 * - db_step() returns DB_ROW, DB_DONE, or a negative DB_* error; the
 *   message of the last error is db_errmsg(). Column accessors read the
 *   current row; a pointer they return is valid until the next step, reset
 *   or finalize of that statement.
 * - One struct db is one connection. It is not safe for two threads at once:
 *   the caller serializes (the store holds its lock around every use).
 * - Every wait is bounded: SQLite's busy timeout; PostgreSQL's connect and
 *   statement timeouts, and a deadline on every answer (db_set_answer_limit). A lost PostgreSQL
 * connection is opened again on the next statement outside a transaction.
 */
#ifndef POSTHORN_DB_H
#define POSTHORN_DB_H

#include <stddef.h>
#include <stdint.h>

struct db;
struct db_stmt;

enum db_rc {
	DB_OK = 0,
	DB_ROW = 1,
	DB_DONE = 2,
	DB_ERROR = -1,
	DB_BUSY = -2,              /* locked, timed out: worth trying again later */
	DB_CONSTRAINT_UNIQUE = -3, /* a primary key or unique index refused the row */
	DB_CONSTRAINT_NOTNULL = -4,
	DB_CONSTRAINT_CHECK = -5,
	DB_CONSTRAINT_FOREIGN = -6,
	DB_LOST = -7, /* the server cannot be reached (PostgreSQL) */
};

enum db_kind { DB_SQLITE, DB_POSTGRES };

/* How bound text is kept (see the contract). */
enum db_bind_mode { DB_STATIC, DB_TRANSIENT };

/* The driver's functions: db.c dispatches every call through them. */
struct db_driver {
	enum db_kind kind;
	void (*close)(struct db *db);
	int (*prepare)(struct db *db, const char *sql, struct db_stmt **out);
	int (*bind_text)(struct db_stmt *s, int i, const char *v, int n, enum db_bind_mode m);
	int (*bind_blob)(struct db_stmt *s, int i, const void *v, int n, enum db_bind_mode m);
	int (*bind_int64)(struct db_stmt *s, int i, int64_t v);
	int (*bind_null)(struct db_stmt *s, int i);
	int (*step)(struct db_stmt *s);
	void (*reset)(struct db_stmt *s);
	void (*clear_bindings)(struct db_stmt *s);
	void (*finalize)(struct db_stmt *s);
	int (*column_is_null)(struct db_stmt *s, int i);
	int64_t (*column_int64)(struct db_stmt *s, int i);
	const char *(*column_text)(struct db_stmt *s, int i);
	const void *(*column_blob)(struct db_stmt *s, int i, int *n);
	int (*exec)(struct db *db, const char *sql);
	int64_t (*changes)(struct db *db);
	int (*in_tx)(struct db *db);
	int (*begin)(struct db *db);
	const char *(*errmsg)(struct db *db);
	/* The schema version, and the lock migrations run under. */
	int (*schema_version)(struct db *db, int *v);
	int (*set_schema_version)(struct db *db, int v);
	int (*migrate_lock)(struct db *db, int take);
	/* A number that changes when another connection has committed. */
	int (*data_version)(struct db *db, int64_t *v);
};

/* Every handle starts with this. */
struct db {
	const struct db_driver *drv;
	char *name; /* for messages: the file, or the URL without its password */
};

struct db_stmt {
	struct db *db;
};

/* NULL with a malloc'd message in *err (when err is not NULL). */
struct db *db_open(const char *target, char **err);
void db_close(struct db *db);
enum db_kind db_kind(const struct db *db);
const char *db_name(const struct db *db);
const char *db_errmsg(struct db *db);

/* DB_OK, or an error (db_errmsg); *out is NULL on error. */
int db_prepare(struct db *db, const char *sql, struct db_stmt **out);
int db_bind_text(struct db_stmt *s, int i, const char *v, int n, enum db_bind_mode m);
int db_bind_blob(struct db_stmt *s, int i, const void *v, int n, enum db_bind_mode m);
int db_bind_int64(struct db_stmt *s, int i, int64_t v);
int db_bind_int(struct db_stmt *s, int i, int v);
int db_bind_null(struct db_stmt *s, int i);
int db_step(struct db_stmt *s);
/* Ready to run again, bindings kept; clear_bindings sets them to NULL. */
void db_reset(struct db_stmt *s);
void db_clear_bindings(struct db_stmt *s);
void db_finalize(struct db_stmt *s); /* NULL is a no-op */

int db_column_is_null(struct db_stmt *s, int i);
int64_t db_column_int64(struct db_stmt *s, int i);
int db_column_int(struct db_stmt *s, int i);
/* NULL for SQL NULL. */
const char *db_column_text(struct db_stmt *s, int i);
const void *db_column_blob(struct db_stmt *s, int i, int *n);

/* Runs fixed SQL, several statements allowed, no parameters. */
int db_exec(struct db *db, const char *sql);
/* Rows the last INSERT, UPDATE or DELETE changed. */
int64_t db_changes(struct db *db);
/* A write transaction (SQLite: BEGIN IMMEDIATE); commit; rollback. */
int db_begin(struct db *db);
int db_commit(struct db *db);
/* Ends an open transaction, if any. */
void db_rollback(struct db *db);
int db_in_tx(struct db *db);

int db_schema_version(struct db *db, int *v);
int db_set_schema_version(struct db *db, int v);
/* take = 1: waits for the cluster-wide migration lock (PostgreSQL advisory
 * lock; SQLite has the file's write lock and does nothing); 0: releases it. */
int db_migrate_lock(struct db *db, int take);
int db_data_version(struct db *db, int64_t *v);

/* The longest a PostgreSQL call waits for its answer ([cluster]
 * postgres_timeout); past it the connection is dropped and the call fails
 * with DB_LOST. Process-wide; 20 s until set. */
void db_set_answer_limit(unsigned ms);
/* The process is stopping: from now on every PostgreSQL wait, also one
 * under way, ends within 12 s, and a lost connection is not reopened. */
void db_hurry(void);

/* Drivers (db_sqlite.c, db_pg.c). */
struct db *db_sqlite_open(const char *path, char **err);
struct db *db_pg_open(const char *url, char **err);
/* 1 when target names a PostgreSQL database. */
int db_target_is_pg(const char *target);

#endif
