/*
 * What the store test suites share: a fresh temporary data directory per
 * test, opening the store in it, and raw access to the database through a
 * connection of its own (standing in for another process).
 * Included by test_store.c and test_store_stats.c after cmocka.h.
 *
 * With POSTHORN_TEST_PG_URL set (postgresql://...), the store runs on that
 * PostgreSQL database instead, emptied (schema public dropped and made
 * again) at the start of each test; raw_* then run there too. Tests that
 * read SQLite's own pragmas or file fail there by design.
 */
#ifndef POSTHORN_TEST_STORE_FIXTURE_H
#define POSTHORN_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "db/db.h"
#include "store/store.h"
#include "util/util.h"

/* The PostgreSQL database to test on, or NULL for SQLite files. */
static inline const char *fixture_pg_url(void)
{
	const char *u = getenv("POSTHORN_TEST_PG_URL");

	return u && *u ? u : NULL;
}

/* The database raw_* work on: the test's file, or the PostgreSQL URL. */
static inline struct db *fixture_db(const char *file)
{
	const char *url = fixture_pg_url();
	char *err = NULL;
	struct db *db = db_open(url ? url : file, &err);

	if (db == NULL)
		fail_msg("%s", err);
	return db;
}

struct fixture {
	char base[64]; /* mkdtemp directory */
	char *data;    /* base/data: does not exist before the test */
	char *db;      /* data/posthorn.db */
};

static inline struct fixture *fixture_new(const char *name)
{
	struct fixture *f = xcalloc(1, sizeof *f);

	snprintf(f->base, sizeof f->base, "/tmp/posthorn-test-%s-XXXXXX", name);
	if (mkdtemp(f->base) == NULL) {
		free(f);
		return NULL;
	}
	f->data = xasprintf("%s/data", f->base);
	f->db = xasprintf("%s/posthorn.db", f->data);
	if (fixture_pg_url()) {
		struct db *db = fixture_db(NULL);

		if (db_exec(db, "DROP SCHEMA public CASCADE; CREATE SCHEMA public") != DB_OK)
			fail_msg("reset %s: %s", db_name(db), db_errmsg(db));
		db_close(db);
	}
	return f;
}

static inline int fixture_rm_entry(const char *path, const struct stat *sb, int flag,
                                   struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void fixture_free(struct fixture *f)
{
	nftw(f->base, fixture_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f->data);
	free(f->db);
	free(f);
}

static inline struct store *open_ok(const struct fixture *f)
{
	char *err = NULL;
	struct store *st = store_open_url(f->data, fixture_pg_url(), NULL, &err);

	if (st == NULL)
		fail_msg("store_open: %s", err);
	return st;
}

/* open_ok(), with one more account (no password, no domains). */
static inline struct store *open_with_user(const struct fixture *f, const char *name)
{
	struct store *st = open_ok(f);
	char *err = NULL;

	if (store_user_add(st, name, NULL, NULL, 0, &err) < 0)
		fail_msg("user add %s: %s", name, err);
	return st;
}

/* Runs SQL on the database with a connection of its own (another process). */
static inline void raw_exec(const struct fixture *f, const char *sql)
{
	struct db *db = fixture_db(f->db);

	if (db_exec(db, sql) != DB_OK)
		fail_msg("%s: %s", sql, db_errmsg(db));
	db_close(db);
}

static inline long long raw_int(const struct fixture *f, const char *sql)
{
	struct db *db = fixture_db(f->db);
	struct db_stmt *stmt;
	long long v;

	if (db_prepare(db, sql, &stmt) != DB_OK)
		fail_msg("%s: %s", sql, db_errmsg(db));
	assert_int_equal(db_step(stmt), DB_ROW);
	v = db_column_int64(stmt, 0);
	db_finalize(stmt);
	db_close(db);
	return v;
}

#endif
