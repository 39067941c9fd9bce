/*
 * db_pg_sql: pure rewrites of the store's SQL for PostgreSQL (libc and
 * util only; unit-tested in tests/unit/test_db_sql.c).
 *
 * - db_pg_placeholders(): `?N` becomes `$N`, and a bare `?` the number
 *   after the largest used so far (SQLite's rule); text inside '...' and
 *   "..." is copied as it is. *nparams gets the largest number; NULL for
 *   a number over DB_PG_MAX_PARAMS.
 * - db_pg_ddl(): the migration forms SQLite has and PostgreSQL lacks:
 *   `INTEGER PRIMARY KEY AUTOINCREMENT` is an identity column, INTEGER is
 *   BIGINT (SQLite's integers are 64-bit), `WITHOUT ROWID` goes, and
 *   `strftime('%s', 'now')` is `extract(epoch FROM now())`.
 * - db_pg_utf8(): PostgreSQL refuses text that is not UTF-8, where SQLite
 *   keeps any bytes (a recipient domain of 8-bit junk reaches the
 *   counters). NULL when s[0..n) is valid UTF-8 (no overlongs, no
 *   surrogates, at most U+10FFFF); else a copy with each invalid byte
 *   replaced by U+FFFD.
 * All return malloc'd strings.
 */
#ifndef POSTHORN_DB_PG_SQL_H
#define POSTHORN_DB_PG_SQL_H

#include <stddef.h>

#define DB_PG_MAX_PARAMS 256

char *db_pg_placeholders(const char *sql, int *nparams);
char *db_pg_ddl(const char *sql);
char *db_pg_utf8(const char *s, size_t n);

#endif
