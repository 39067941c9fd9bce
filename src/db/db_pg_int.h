/*
 * db_pg_int.h: what the PostgreSQL driver's two files share (db_pg.c: the
 * connection; db_pg_stmt.c: statements and the per-connection cache of
 * prepared statements).
 */
#ifndef POSTHORN_DB_PG_INT_H
#define POSTHORN_DB_PG_INT_H

#include <libpq-fe.h>

#include "db/db.h"
#include "db/db_pg_sql.h"
#include "util/htable.h"

/* Prepared statements kept per connection before they are all dropped. */
#define DB_PG_CACHE_MAX 512

struct db_pg {
	struct db base;
	PGconn *c;
	char *url;
	char *err;           /* the last error, malloc'd */
	int64_t changes;     /* rows the last command touched */
	unsigned seq;        /* names prepared statements */
	struct htable cache; /* struct pg_prep by SQL and parameter types */
};

struct pg_stmt {
	struct db_stmt base;
	char *sql; /* with $N */
	int nparams;
	char *vals[DB_PG_MAX_PARAMS];
	int lens[DB_PG_MAX_PARAMS];
	int fmts[DB_PG_MAX_PARAMS];
	Oid types[DB_PG_MAX_PARAMS];
	unsigned char owned[DB_PG_MAX_PARAMS]; /* vals[i] is ours to free */
	char num[DB_PG_MAX_PARAMS][24];        /* bound integers as text */
	PGresult *res;
	int row, nrows;
	unsigned char *blob; /* the last column_blob, unescaped */
};

/* Records the error of res (or of the connection) and maps it to DB_*. */
int db_pg_fail(struct db_pg *d, PGresult *res);
/* Makes sure the connection is up: reconnects when it was lost and no
 * transaction was open. DB_OK or DB_LOST. */
int db_pg_ensure(struct db_pg *d);
/* Runs s with its bindings (prepared on the second use of its SQL). */
PGresult *db_pg_run(struct db_pg *d, struct pg_stmt *s);
void db_pg_cache_clear(struct db_pg *d);

/* db_pg_wait.c: send, then await the answer within the answer limit (NULL
 * on failure; on a missed deadline the connection is gone, d->c NULL). */
PGresult *db_pg_exec(struct db_pg *d, const char *sql);
PGresult *db_pg_exec_params(struct db_pg *d, const struct pg_stmt *s);
PGresult *db_pg_exec_prepared(struct db_pg *d, const char *name, const struct pg_stmt *s);
PGresult *db_pg_prepare_named(struct db_pg *d, const char *name, const struct pg_stmt *s);
/* 1 after db_hurry(). */
int db_pg_hurrying(void);

/* db_pg_stmt.c's driver functions. */
int db_pg_prepare(struct db *db, const char *sql, struct db_stmt **out);
int db_pg_bind_text(struct db_stmt *s, int i, const char *v, int n, enum db_bind_mode m);
int db_pg_bind_blob(struct db_stmt *s, int i, const void *v, int n, enum db_bind_mode m);
int db_pg_bind_int64(struct db_stmt *s, int i, int64_t v);
int db_pg_bind_null(struct db_stmt *s, int i);
int db_pg_step(struct db_stmt *s);
void db_pg_reset(struct db_stmt *s);
void db_pg_clear_bindings(struct db_stmt *s);
void db_pg_finalize(struct db_stmt *s);
int db_pg_column_is_null(struct db_stmt *s, int i);
int64_t db_pg_column_int64(struct db_stmt *s, int i);
const char *db_pg_column_text(struct db_stmt *s, int i);
const void *db_pg_column_blob(struct db_stmt *s, int i, int *n);

#endif
