/*
 * db_pg: the PostgreSQL driver (db.h): the connection, commands, errors,
 * the schema version and the migration lock. Statements: db_pg_stmt.c.
 *
 * Promises:
 * - Every wait is bounded: connect_timeout, statement_timeout and
 *   lock_timeout, and TCP keepalives with tcp_user_timeout for a server
 *   that vanishes (settings the URL gives win over these defaults), and
 *   our own deadline on every answer for a server that is there but
 *   silent (db_pg_wait.c).
 * - A lost connection is reported as DB_LOST; the next statement outside
 *   a transaction connects again (a statement is never retried by the
 *   driver: it may have been applied).
 * - The schema version is the one row of posthorn_schema; migrations run
 *   under a session advisory lock (DB_PG_MIGRATE_LOCK), so that any number
 *   of processes starting together apply each step once.
 * - db_name() is the URL without its password.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_url.h"
#include "db/db_pg_int.h"
#include "util/util.h"

/* pg_advisory_lock key of migrations: "posthorn" in ASCII, as an int8. */
#define DB_PG_MIGRATE_LOCK "8066311423659127412"

/* Defaults that the URL may override (PQconnectdbParams, expand_dbname). */
static const char *const conn_keys[] = {
    "connect_timeout",  "keepalives_idle",  "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "application_name",
    "options",          "dbname",           NULL};
static const char *const conn_vals[] = {
    "5",
    "10",
    "3",
    "3",
    "15000",
    "posthorn",
    "-c statement_timeout=15000 -c lock_timeout=10000 -c idle_in_transaction_session_timeout=60000",
    NULL,
    NULL};

static struct db_pg *DP(struct db *db)
{
	return (struct db_pg *)db;
}

/* The client library's message msg, trimmed and without the URL's
 * passwords: it may quote a piece of the URL it could not decode. */
static void set_err(struct db_pg *d, const char *msg)
{
	char *scrubbed = d->url ? cluster_url_scrub(msg, d->url) : xstrdup(msg);
	size_t n = strlen(scrubbed);

	while (n > 0 && (scrubbed[n - 1] == '\n' || scrubbed[n - 1] == ' '))
		n--;
	free(d->err);
	d->err = xstrndup(scrubbed, n);
	free(scrubbed);
}

/* SQLSTATE classes and codes the store tells apart. */
static int map_state(const char *state)
{
	static const struct {
		const char *code;
		int rc;
	} map[] = {
	    {"23505", DB_CONSTRAINT_UNIQUE},
	    {"23502", DB_CONSTRAINT_NOTNULL},
	    {"23514", DB_CONSTRAINT_CHECK},
	    {"23503", DB_CONSTRAINT_FOREIGN},
	    {"40001", DB_BUSY},
	    {"40P01", DB_BUSY},
	    {"55P03", DB_BUSY},
	    {"57014", DB_BUSY},
	    {"57P01", DB_LOST},
	    {"57P03", DB_LOST},
	};

	if (state == NULL)
		return DB_ERROR;
	if (strncmp(state, "08", 2) == 0)
		return DB_LOST;
	for (size_t i = 0; i < ARRAY_LEN(map); i++)
		if (strcmp(state, map[i].code) == 0)
			return map[i].rc;
	return DB_ERROR;
}

int db_pg_fail(struct db_pg *d, PGresult *res)
{
	const char *msg = res ? PQresultErrorMessage(res) : "";

	if (d->c == NULL) { /* given up (db_pg_wait.c), the reason kept */
		if (d->err == NULL)
			set_err(d, "not connected");
		return DB_LOST;
	}

	set_err(d, *msg ? msg : PQerrorMessage(d->c));
	if (PQstatus(d->c) != CONNECTION_OK)
		return DB_LOST;
	return map_state(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
}

static int connect_now(struct db_pg *d)
{
	const char *vals[ARRAY_LEN(conn_vals)];

	memcpy(vals, conn_vals, sizeof vals);
	vals[ARRAY_LEN(conn_vals) - 2] = d->url;
	if (d->c)
		PQfinish(d->c);
	db_pg_cache_clear(d);
	d->c = PQconnectdbParams(conn_keys, vals, 1);
	if (d->c == NULL) {
		set_err(d, "out of memory");
		return DB_LOST;
	}
	if (PQstatus(d->c) != CONNECTION_OK) {
		set_err(d, PQerrorMessage(d->c));
		return DB_LOST;
	}
	/* Notices (e.g. "relation already exists, skipping") are not errors. */
	PQclear(db_pg_exec(d, "SET client_min_messages = warning"));
	return DB_OK;
}

int db_pg_ensure(struct db_pg *d)
{
	if (d->c && PQstatus(d->c) == CONNECTION_OK)
		return DB_OK;
	if (db_pg_hurrying()) {
		set_err(d, "the server is stopping: the database connection is not opened again");
		return DB_LOST;
	}
	return connect_now(d);
}

static int pg_exec(struct db *db, const char *sql)
{
	struct db_pg *d = DP(db);
	PGresult *r;
	ExecStatusType t;
	int rc = db_pg_ensure(d);

	if (rc != DB_OK)
		return rc;
	r = db_pg_exec(d, sql);
	t = PQresultStatus(r);
	if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
		rc = db_pg_fail(d, r);
	} else {
		d->changes = strtoll(PQcmdTuples(r), NULL, 10);
	}
	PQclear(r);
	return rc;
}

/* The one value of a one-row query (malloc'd; NULL for SQL NULL), or an error. */
static int query_one(struct db_pg *d, const char *sql, char **out)
{
	PGresult *r;
	int rc = db_pg_ensure(d);

	*out = NULL;
	if (rc != DB_OK)
		return rc;
	r = db_pg_exec(d, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		rc = db_pg_fail(d, r);
		PQclear(r);
		return rc == DB_OK ? DB_ERROR : rc;
	}
	if (!PQgetisnull(r, 0, 0))
		*out = xstrdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return DB_OK;
}

static int64_t pg_changes(struct db *db)
{
	return DP(db)->changes;
}

static int pg_in_tx(struct db *db)
{
	PGconn *c = DP(db)->c;
	PGTransactionStatusType t = c ? PQtransactionStatus(c) : PQTRANS_UNKNOWN;

	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int pg_begin(struct db *db)
{
	return pg_exec(db, "BEGIN");
}

static const char *pg_errmsg(struct db *db)
{
	return DP(db)->err ? DP(db)->err : "not an error";
}

static int pg_schema_version(struct db *db, int *v)
{
	char *s = NULL;
	int rc = query_one(DP(db), "SELECT to_regclass('posthorn_schema') IS NOT NULL", &s);

	*v = 0;
	if (rc != DB_OK || s == NULL || strcmp(s, "t") != 0) {
		free(s);
		return rc;
	}
	free(s);
	rc = query_one(DP(db), "SELECT max(version) FROM posthorn_schema", &s);
	if (rc == DB_OK && s)
		*v = atoi(s);
	free(s);
	return rc;
}

static int pg_set_schema_version(struct db *db, int v)
{
	char sql[160];

	snprintf(sql, sizeof sql,
	         "CREATE TABLE IF NOT EXISTS posthorn_schema (version INTEGER NOT NULL);"
	         "DELETE FROM posthorn_schema; INSERT INTO posthorn_schema VALUES (%d)",
	         v);
	return pg_exec(db, sql);
}

static int pg_migrate_lock(struct db *db, int take)
{
	char *s = NULL;
	int rc = query_one(DP(db),
	                   take ? "SELECT pg_advisory_lock(" DB_PG_MIGRATE_LOCK ")"
	                        : "SELECT pg_advisory_unlock(" DB_PG_MIGRATE_LOCK ")",
	                   &s);

	free(s);
	return rc;
}

/*
 * The next transaction id of the whole server: it moves whenever any
 * connection writes (this one too), so a cache keyed by it is refreshed
 * after every write anywhere, and only then.
 */
static int pg_data_version(struct db *db, int64_t *v)
{
	char *s = NULL;
	int rc = query_one(DP(db), "SELECT pg_snapshot_xmax(pg_current_snapshot())", &s);

	if (rc == DB_OK)
		*v = s ? strtoll(s, NULL, 10) : 0;
	free(s);
	return rc;
}

static void pg_close(struct db *db)
{
	struct db_pg *d = DP(db);

	if (d->c)
		PQfinish(d->c);
	db_pg_cache_clear(d);
	htable_fini(&d->cache);
	free(d->err);
	free(d->url);
	free(db->name);
	free(d);
}

static const struct db_driver pg_driver = {
    .kind = DB_POSTGRES,
    .close = pg_close,
    .prepare = db_pg_prepare,
    .bind_text = db_pg_bind_text,
    .bind_blob = db_pg_bind_blob,
    .bind_int64 = db_pg_bind_int64,
    .bind_null = db_pg_bind_null,
    .step = db_pg_step,
    .reset = db_pg_reset,
    .clear_bindings = db_pg_clear_bindings,
    .finalize = db_pg_finalize,
    .column_is_null = db_pg_column_is_null,
    .column_int64 = db_pg_column_int64,
    .column_text = db_pg_column_text,
    .column_blob = db_pg_column_blob,
    .exec = pg_exec,
    .changes = pg_changes,
    .in_tx = pg_in_tx,
    .begin = pg_begin,
    .errmsg = pg_errmsg,
    .schema_version = pg_schema_version,
    .set_schema_version = pg_set_schema_version,
    .migrate_lock = pg_migrate_lock,
    .data_version = pg_data_version,
};

/* The URL without its passwords (its user part's, a password= parameter's),
 * for messages and logs. */
static char *redact(const char *url)
{
	return cluster_url_mask(url, 0);
}

struct db *db_pg_open(const char *url, char **err)
{
	struct db_pg *d = xcalloc(1, sizeof *d);

	d->base.drv = &pg_driver;
	d->base.name = redact(url);
	d->url = xstrdup(url);
	htable_init(&d->cache);
	if (connect_now(d) != DB_OK) {
		if (err)
			*err = xasprintf("%s: cannot connect: %s", d->base.name, d->err);
		pg_close(&d->base);
		return NULL;
	}
	return &d->base;
}
