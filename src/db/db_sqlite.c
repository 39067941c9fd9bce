/*
 * db_sqlite: the SQLite driver, a thin passthrough to sqlite3_* (db.h).
 *
 * Promises:
 * - The file is created 0600 whatever the umask (it holds password
 *   hashes); SQLite gives its -wal and -shm files the same mode.
 * - The connection is serialized (SQLITE_OPEN_FULLMUTEX), waits at most
 *   DB_SQLITE_BUSY_MS for a lock, enforces foreign keys and fsyncs every
 *   commit (synchronous=FULL: an operator's `user passwd` that revoked a
 *   leaked password must not come back undone after a power cut).
 * - The file is switched to WAL (so that the CLI and a server use it at
 *   once) by the first db_migrate_lock(), after the caller has checked the
 *   schema version: a database newer than the code is never written to.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "util/util.h"

#define DB_SQLITE_BUSY_MS 5000

struct db_sqlite {
	struct db base;
	sqlite3 *h;
	int wal;
};

struct sq_stmt {
	struct db_stmt base;
	sqlite3_stmt *s;
};

static sqlite3 *H(struct db *db)
{
	return ((struct db_sqlite *)db)->h;
}

static sqlite3_stmt *S(struct db_stmt *s)
{
	return ((struct sq_stmt *)s)->s;
}

static int map_rc(int rc)
{
	switch (rc) {
	case SQLITE_OK:
		return DB_OK;
	case SQLITE_ROW:
		return DB_ROW;
	case SQLITE_DONE:
		return DB_DONE;
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return DB_CONSTRAINT_UNIQUE;
	case SQLITE_CONSTRAINT_NOTNULL:
		return DB_CONSTRAINT_NOTNULL;
	case SQLITE_CONSTRAINT_CHECK:
		return DB_CONSTRAINT_CHECK;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return DB_CONSTRAINT_FOREIGN;
	default:
		break;
	}
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return DB_BUSY;
	return DB_ERROR;
}

static void sq_close(struct db *db)
{
	sqlite3_close(H(db)); /* NULL is a no-op */
	free(db->name);
	free(db);
}

static int sq_prepare(struct db *db, const char *sql, struct db_stmt **out)
{
	sqlite3_stmt *s = NULL;
	struct sq_stmt *st;
	int rc = sqlite3_prepare_v2(H(db), sql, -1, &s, NULL);

	if (rc != SQLITE_OK)
		return map_rc(rc);
	st = xcalloc(1, sizeof *st);
	st->base.db = db;
	st->s = s;
	*out = &st->base;
	return DB_OK;
}

static sqlite3_destructor_type how(enum db_bind_mode m)
{
	return m == DB_STATIC ? SQLITE_STATIC : SQLITE_TRANSIENT;
}

static int sq_bind_text(struct db_stmt *s, int i, const char *v, int n, enum db_bind_mode m)
{
	return map_rc(sqlite3_bind_text(S(s), i, v, n, how(m)));
}

static int sq_bind_blob(struct db_stmt *s, int i, const void *v, int n, enum db_bind_mode m)
{
	return map_rc(sqlite3_bind_blob(S(s), i, v, n, how(m)));
}

static int sq_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	return map_rc(sqlite3_bind_int64(S(s), i, v));
}

static int sq_bind_null(struct db_stmt *s, int i)
{
	return map_rc(sqlite3_bind_null(S(s), i));
}

static int sq_step(struct db_stmt *s)
{
	return map_rc(sqlite3_step(S(s)));
}

static void sq_reset(struct db_stmt *s)
{
	sqlite3_reset(S(s));
}

static void sq_clear_bindings(struct db_stmt *s)
{
	sqlite3_clear_bindings(S(s));
}

static void sq_finalize(struct db_stmt *s)
{
	sqlite3_finalize(S(s));
	free(s);
}

static int sq_column_is_null(struct db_stmt *s, int i)
{
	return sqlite3_column_type(S(s), i) == SQLITE_NULL;
}

static int64_t sq_column_int64(struct db_stmt *s, int i)
{
	return sqlite3_column_int64(S(s), i);
}

static const char *sq_column_text(struct db_stmt *s, int i)
{
	return (const char *)sqlite3_column_text(S(s), i);
}

static const void *sq_column_blob(struct db_stmt *s, int i, int *n)
{
	const void *p = sqlite3_column_blob(S(s), i);

	*n = sqlite3_column_bytes(S(s), i);
	return p;
}

static int sq_exec(struct db *db, const char *sql)
{
	return map_rc(sqlite3_exec(H(db), sql, NULL, NULL, NULL));
}

static int64_t sq_changes(struct db *db)
{
	return sqlite3_changes(H(db));
}

static int sq_in_tx(struct db *db)
{
	return sqlite3_get_autocommit(H(db)) == 0;
}

/*
 * IMMEDIATE takes the write lock at once, so the busy timeout applies to
 * it. A deferred transaction that reads first and writes later can fail
 * with SQLITE_BUSY at the write without waiting when another process
 * committed in between (WAL snapshots cannot be upgraded).
 */
static int sq_begin(struct db *db)
{
	return sq_exec(db, "BEGIN IMMEDIATE");
}

static const char *sq_errmsg(struct db *db)
{
	return H(db) ? sqlite3_errmsg(H(db)) : "out of memory";
}

/* The one integer `pragma` returns. */
static int pragma_int(struct db *db, const char *pragma, int64_t *v)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(H(db), pragma, -1, &s, NULL);

	if (rc != SQLITE_OK)
		return map_rc(rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? DB_OK : map_rc(rc);
}

static int sq_schema_version(struct db *db, int *v)
{
	int64_t x = 0;
	int rc = pragma_int(db, "PRAGMA user_version", &x);

	*v = (int)x;
	return rc;
}

static int sq_set_schema_version(struct db *db, int v)
{
	char sql[64];

	/* PRAGMA takes no bound parameters; v is the caller's own integer. */
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
	return sq_exec(db, sql);
}

/* One attempt: 1 now in WAL, 0 busy (try again), -1 error. */
static int try_wal(struct db *db)
{
	sqlite3_stmt *s = NULL;
	const char *mode;
	int rc, wal = 0;

	if (sqlite3_prepare_v2(H(db), "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(s, 0);
		wal = mode != NULL && ascii_casecmp(mode, "wal") == 0;
	}
	sqlite3_finalize(s);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return 0;
	return wal ? 1 : -1;
}

/*
 * WAL is recorded in the file. Switching a new file needs an exclusive
 * lock, and SQLite does not call the busy handler for it: when several
 * processes create the database at once (a server and a CLI), the losers
 * retry here for the busy timeout.
 */
static int sq_migrate_lock(struct db *db, int take)
{
	const struct timespec pause = {0, 10 * 1000 * 1000};
	struct db_sqlite *d = (struct db_sqlite *)db;

	if (!take || d->wal)
		return DB_OK;
	for (int waited_ms = 0; waited_ms < DB_SQLITE_BUSY_MS; waited_ms += 10) {
		int rc = try_wal(db);

		if (rc != 0) {
			d->wal = rc > 0;
			return rc > 0 ? DB_OK : DB_ERROR;
		}
		nanosleep(&pause, NULL);
	}
	return DB_BUSY;
}

static int sq_data_version(struct db *db, int64_t *v)
{
	return pragma_int(db, "PRAGMA data_version", v);
}

static const struct db_driver sqlite_driver = {
    .kind = DB_SQLITE,
    .close = sq_close,
    .prepare = sq_prepare,
    .bind_text = sq_bind_text,
    .bind_blob = sq_bind_blob,
    .bind_int64 = sq_bind_int64,
    .bind_null = sq_bind_null,
    .step = sq_step,
    .reset = sq_reset,
    .clear_bindings = sq_clear_bindings,
    .finalize = sq_finalize,
    .column_is_null = sq_column_is_null,
    .column_int64 = sq_column_int64,
    .column_text = sq_column_text,
    .column_blob = sq_column_blob,
    .exec = sq_exec,
    .changes = sq_changes,
    .in_tx = sq_in_tx,
    .begin = sq_begin,
    .errmsg = sq_errmsg,
    .schema_version = sq_schema_version,
    .set_schema_version = sq_set_schema_version,
    .migrate_lock = sq_migrate_lock,
    .data_version = sq_data_version,
};

static char *fail(char **err, const char *path, const char *what)
{
	if (err)
		*err = xasprintf("%s: %s", path, what);
	return NULL;
}

static int make_file(const char *path, char **err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		if (err)
			*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

struct db *db_sqlite_open(const char *path, char **err)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
	struct db_sqlite *d;

	if (make_file(path, err) < 0)
		return NULL;
	d = xcalloc(1, sizeof *d);
	d->base.drv = &sqlite_driver;
	d->base.name = xstrdup(path);
	if (sqlite3_open_v2(path, &d->h, flags, NULL) != SQLITE_OK) {
		fail(err, path, d->h ? sqlite3_errmsg(d->h) : "cannot open: out of memory");
		sq_close(&d->base);
		return NULL;
	}
	sqlite3_busy_timeout(d->h, DB_SQLITE_BUSY_MS);
	sqlite3_extended_result_codes(d->h, 1);
	if (sq_exec(&d->base, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON") != DB_OK) {
		fail(err, path, sqlite3_errmsg(d->h));
		sq_close(&d->base);
		return NULL;
	}
	return &d->base;
}
