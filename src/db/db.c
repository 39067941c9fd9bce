/*
 * db: picks the driver for a target and dispatches every call to it
 * (the contract is in db.h).
 */
#include "db/db.h"

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

int db_target_is_pg(const char *target)
{
	return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0;
}

struct db *db_open(const char *target, char **err)
{
	return db_target_is_pg(target) ? db_pg_open(target, err) : db_sqlite_open(target, err);
}

void db_close(struct db *db)
{
	if (db != NULL)
		db->drv->close(db);
}

enum db_kind db_kind(const struct db *db)
{
	return db->drv->kind;
}

const char *db_name(const struct db *db)
{
	return db->name;
}

const char *db_errmsg(struct db *db)
{
	return db->drv->errmsg(db);
}

int db_prepare(struct db *db, const char *sql, struct db_stmt **out)
{
	*out = NULL;
	return db->drv->prepare(db, sql, out);
}

int db_bind_text(struct db_stmt *s, int i, const char *v, int n, enum db_bind_mode m)
{
	return s->db->drv->bind_text(s, i, v, n, m);
}

int db_bind_blob(struct db_stmt *s, int i, const void *v, int n, enum db_bind_mode m)
{
	return s->db->drv->bind_blob(s, i, v, n, m);
}

int db_bind_int64(struct db_stmt *s, int i, int64_t v)
{
	return s->db->drv->bind_int64(s, i, v);
}

int db_bind_int(struct db_stmt *s, int i, int v)
{
	return s->db->drv->bind_int64(s, i, v);
}

int db_bind_null(struct db_stmt *s, int i)
{
	return s->db->drv->bind_null(s, i);
}

int db_step(struct db_stmt *s)
{
	return s->db->drv->step(s);
}

void db_reset(struct db_stmt *s)
{
	s->db->drv->reset(s);
}

void db_clear_bindings(struct db_stmt *s)
{
	s->db->drv->clear_bindings(s);
}

void db_finalize(struct db_stmt *s)
{
	if (s != NULL)
		s->db->drv->finalize(s);
}

int db_column_is_null(struct db_stmt *s, int i)
{
	return s->db->drv->column_is_null(s, i);
}

int64_t db_column_int64(struct db_stmt *s, int i)
{
	return s->db->drv->column_int64(s, i);
}

int db_column_int(struct db_stmt *s, int i)
{
	return (int)s->db->drv->column_int64(s, i);
}

const char *db_column_text(struct db_stmt *s, int i)
{
	return s->db->drv->column_text(s, i);
}

const void *db_column_blob(struct db_stmt *s, int i, int *n)
{
	return s->db->drv->column_blob(s, i, n);
}

int db_exec(struct db *db, const char *sql)
{
	return db->drv->exec(db, sql);
}

int64_t db_changes(struct db *db)
{
	return db->drv->changes(db);
}

int db_begin(struct db *db)
{
	return db->drv->begin(db);
}

int db_commit(struct db *db)
{
	return db->drv->exec(db, "COMMIT");
}

void db_rollback(struct db *db)
{
	if (db->drv->in_tx(db))
		db->drv->exec(db, "ROLLBACK");
}

int db_in_tx(struct db *db)
{
	return db->drv->in_tx(db);
}

int db_schema_version(struct db *db, int *v)
{
	return db->drv->schema_version(db, v);
}

int db_set_schema_version(struct db *db, int v)
{
	return db->drv->set_schema_version(db, v);
}

int db_migrate_lock(struct db *db, int take)
{
	return db->drv->migrate_lock(db, take);
}

int db_data_version(struct db *db, int64_t *v)
{
	return db->drv->data_version(db, v);
}
