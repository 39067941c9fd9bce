/*
 * What the store test suites share: a fresh temporary data directory per
 * test, opening the store in it, and raw sqlite3 access to the database
 * file through a connection of its own (standing in for another process).
 * Included by test_store.c and test_store_stats.c after cmocka.h.
 */
#ifndef POSTHORN_TEST_STORE_FIXTURE_H
#define POSTHORN_TEST_STORE_FIXTURE_H

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "store/store.h"
#include "util/util.h"

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
	struct store *st = store_open(f->data, &err);

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

/* Runs SQL on the file with a connection of its own (another process). */
static inline void raw_exec(const struct fixture *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

static inline long long raw_int(const struct fixture *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	long long v;

	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

#endif
