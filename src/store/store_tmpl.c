/*
 * store_tmpl: message templates (table templates, migration 5 in store.c),
 * per account and by name: a subject and a text and/or an HTML part, as
 * the client wrote them. Checking the Mustache syntax, compiling and
 * caching are the API's (src/api/); the store checks the bounds of
 * store.h so that nothing larger ever reaches the table.
 *
 * Promises:
 * - Names are exact (case-sensitive) and unique per account; another
 *   account's template is reported exactly like a missing one.
 * - Every write sets a new random revision (libsodium), so a cache that
 *   compiled revision R knows with one index probe (store_tmpl_revision)
 *   whether R is still current, even across a delete and a re-create.
 * - Multi-statement writes are one IMMEDIATE transaction: the count
 *   behind STORE_TMPL_MAX and the insert cannot race another writer.
 * - The SQL is what PostgreSQL accepts too (BIGINT, no AUTOINCREMENT,
 *   no SQLite-only syntax).
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

#define TMPL_COLUMNS                                                                               \
	"t.name, t.subject, t.text_part, t.html_part, t.revision, t.created_at, t.updated_at"

static const char get_sql[] = "SELECT " TMPL_COLUMNS " FROM templates t"
                              " JOIN accounts a ON a.id = t.account_id"
                              " WHERE a.name = ?1 AND t.name = ?2";
static const char revision_sql[] = "SELECT t.revision FROM templates t"
                                   " JOIN accounts a ON a.id = t.account_id"
                                   " WHERE a.name = ?1 AND t.name = ?2";
static const char count_sql[] = "SELECT count(*) FROM templates WHERE account_id = ?1";
static const char insert_sql[] =
    "INSERT INTO templates (account_id, name, subject, text_part, html_part, revision,"
    " created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)";
static const char update_sql[] =
    "UPDATE templates SET subject = ?3, text_part = ?4, html_part = ?5, revision = ?6,"
    " updated_at = ?7 WHERE account_id = (SELECT id FROM accounts WHERE name = ?1)"
    " AND name = ?2";
static const char delete_sql[] = "DELETE FROM templates WHERE account_id ="
                                 " (SELECT id FROM accounts WHERE name = ?1) AND name = ?2";
static const char list_sql[] = "SELECT t.name, t.subject, NULL, NULL, t.revision, t.created_at,"
                               " t.updated_at FROM templates t WHERE t.account_id = ?1"
                               " AND t.name > ?2 ORDER BY t.name LIMIT ?3";

/* ---- pure ------------------------------------------------------------------------ */

int store_tmpl_name_valid(const char *name)
{
	size_t n = strlen(name);
	char c = name[0];

	if (n == 0 || n > STORE_TMPL_NAME_MAX)
		return 0;
	if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                    "0123456789._-") == n;
}

void store_tmpl_clear(struct store_tmpl *t)
{
	free(t->subject);
	free(t->text);
	free(t->html);
	memset(t, 0, sizeof(*t));
}

/* What every write checks before it takes the lock. */
static int check_in(const char *name, const struct store_tmpl_in *in, char **err)
{
	if (!store_tmpl_name_valid(name))
		return store_fail(err,
		                  "invalid template name (1-%d characters of A-Z a-z 0-9 . _ -, "
		                  "starting with a letter or a digit)",
		                  STORE_TMPL_NAME_MAX);
	if (!in->subject || strlen(in->subject) > STORE_TMPL_SUBJECT_MAX ||
	    strpbrk(in->subject, "\r\n"))
		return store_fail(err, "the subject must be one line of at most %d bytes",
		                  STORE_TMPL_SUBJECT_MAX);
	if (!in->text && !in->html)
		return store_fail(err, "a template needs a text or an html part");
	if ((in->text && strlen(in->text) > STORE_TMPL_PART_MAX) ||
	    (in->html && strlen(in->html) > STORE_TMPL_PART_MAX))
		return store_fail(err, "a part is longer than %d bytes", STORE_TMPL_PART_MAX);
	return 0;
}

static int64_t new_revision(void)
{
	uint64_t r;

	randombytes_buf(&r, sizeof(r));
	r &= (uint64_t)INT64_MAX;
	return r ? (int64_t)r : 1;
}

/* Reads the TMPL_COLUMNS of the current row into t (cleared first). */
static void read_tmpl(struct db_stmt *stmt, struct store_tmpl *t)
{
	const char *name = db_column_text(stmt, 0);

	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name ? (const char *)name : "");
	t->subject = store_col_dup(stmt, 1);
	if (!t->subject)
		t->subject = xstrdup("");
	t->text = store_col_dup(stmt, 2);
	t->html = store_col_dup(stmt, 3);
	t->revision = db_column_int64(stmt, 4);
	t->created_at = db_column_int64(stmt, 5);
	t->updated_at = db_column_int64(stmt, 6);
}

static int not_found(const char *name, char **err)
{
	store_fail(err, "no such template '%s'", name);
	return STORE_TMPL_NOT_FOUND;
}

/* ---- reads (callers hold the lock) --------------------------------------------------- */

static struct db_stmt *by_name(struct store *st, const char *sql, const char *account,
                               const char *name, char **err)
{
	struct db_stmt *stmt = store_prepare(st, sql, err);

	if (stmt) {
		db_bind_text(stmt, 1, account, -1, DB_STATIC);
		db_bind_text(stmt, 2, name, -1, DB_STATIC);
	}
	return stmt;
}

static int get_locked(struct store *st, const char *account, const char *name,
                      struct store_tmpl *out, char **err)
{
	struct db_stmt *stmt = by_name(st, get_sql, account, name, err);
	int rc;

	if (!stmt)
		return -1;
	rc = db_step(stmt);
	if (rc == DB_ROW)
		read_tmpl(stmt, out);
	db_finalize(stmt);
	if (rc == DB_DONE)
		return not_found(name, err);
	return rc == DB_ROW ? 0 : store_fail_db(st, err, "template");
}

int store_tmpl_get(struct store *st, const char *account, const char *name, struct store_tmpl *out,
                   char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = get_locked(st, account, name, out, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static int revision_locked(struct store *st, const char *account, const char *name, int64_t *rev,
                           char **err)
{
	struct db_stmt *stmt = by_name(st, revision_sql, account, name, err);
	int rc;

	if (!stmt)
		return -1;
	rc = db_step(stmt);
	if (rc == DB_ROW)
		*rev = db_column_int64(stmt, 0);
	db_finalize(stmt);
	if (rc == DB_DONE)
		return not_found(name, err);
	return rc == DB_ROW ? 0 : store_fail_db(st, err, "template revision");
}

int store_tmpl_revision(struct store *st, const char *account, const char *name, int64_t *rev,
                        char **err)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = revision_locked(st, account, name, rev, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* ---- writes ---------------------------------------------------------------------------- */

/* Binds ?3..?7 of insert_sql and update_sql. */
static void bind_in(struct db_stmt *stmt, const struct store_tmpl_in *in, int64_t rev, int64_t now)
{
	db_bind_text(stmt, 3, in->subject, -1, DB_STATIC);
	if (in->text)
		db_bind_text(stmt, 4, in->text, -1, DB_STATIC);
	if (in->html)
		db_bind_text(stmt, 5, in->html, -1, DB_STATIC);
	db_bind_int64(stmt, 6, rev);
	db_bind_int64(stmt, 7, now);
}

static int count_locked(struct store *st, int64_t id, int64_t *n, char **err)
{
	struct db_stmt *stmt = store_prepare(st, count_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	rc = db_step(stmt);
	*n = rc == DB_ROW ? db_column_int64(stmt, 0) : 0;
	db_finalize(stmt);
	return rc == DB_ROW ? 0 : store_fail_db(st, err, "count templates");
}

static int insert_locked(struct store *st, int64_t id, const char *name,
                         const struct store_tmpl_in *in, int64_t rev, int64_t now, char **err)
{
	struct db_stmt *stmt = store_prepare(st, insert_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, name, -1, DB_STATIC);
	bind_in(stmt, in, rev, now);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc == DB_CONSTRAINT_UNIQUE || rc == DB_CONSTRAINT_UNIQUE) {
		store_fail(err, "a template named '%s' already exists", name);
		return STORE_TMPL_EXISTS;
	}
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "add template");
}

static int create_locked(struct store *st, const char *account, const char *name,
                         const struct store_tmpl_in *in, int64_t rev, int64_t now, char **err)
{
	int64_t id;
	int64_t n;
	int rc;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((id = store_account_id(st, account, err)) <= 0) {
		store_tx_rollback(st);
		if (id < 0)
			return -1;
		store_fail(err, "no such account '%s'", account);
		return STORE_TMPL_NO_ACCOUNT;
	}
	if ((rc = count_locked(st, id, &n, err)) == 0 && n >= STORE_TMPL_MAX) {
		store_fail(err, "account '%s' has %d templates, the most it may have", account,
		           STORE_TMPL_MAX);
		rc = STORE_TMPL_FULL;
	}
	if (rc == 0)
		rc = insert_locked(st, id, name, in, rev, now, err);
	if (rc < 0 || (rc = store_tx_commit(st, err)) < 0)
		store_tx_rollback(st);
	return rc;
}

/* The template as written, for *out. */
static void fill_out(struct store_tmpl *out, const char *name, const struct store_tmpl_in *in,
                     int64_t rev, int64_t created, int64_t now)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->subject = xstrdup(in->subject);
	out->text = in->text ? xstrdup(in->text) : NULL;
	out->html = in->html ? xstrdup(in->html) : NULL;
	out->revision = rev;
	out->created_at = created;
	out->updated_at = now;
}

int store_tmpl_create(struct store *st, const char *account, const char *name,
                      const struct store_tmpl_in *in, struct store_tmpl *out, char **err)
{
	int64_t rev = new_revision(), now = clock_now_s();
	int rc;

	if (check_in(name, in, err) < 0)
		return -1;
	pthread_mutex_lock(&st->lock);
	rc = create_locked(st, account, name, in, rev, now, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0 && out)
		fill_out(out, name, in, rev, now, now);
	return rc;
}

/* Runs update_sql or delete_sql for (account, name): the rows changed, or -1. */
static int write_by_name(struct store *st, const char *sql, const char *account, const char *name,
                         const struct store_tmpl_in *in, int64_t rev, int64_t now, char **err)
{
	struct db_stmt *stmt = by_name(st, sql, account, name, err);
	int rc;

	if (!stmt)
		return -1;
	if (in)
		bind_in(stmt, in, rev, now);
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, in ? "update template" : "delete template");
	return db_changes(st->db);
}

/* Update (in) or delete (in NULL) in one transaction; *before is the
 * template as it was. */
static int change_locked(struct store *st, const char *account, const char *name,
                         const struct store_tmpl_in *in, int64_t rev, int64_t now,
                         struct store_tmpl *before, char **err)
{
	int rc;

	if (store_tx_begin(st, err) < 0)
		return -1;
	if ((rc = get_locked(st, account, name, before, err)) < 0) {
		store_tx_rollback(st);
		return rc;
	}
	if (write_by_name(st, in ? update_sql : delete_sql, account, name, in, rev, now, err) < 0 ||
	    store_tx_commit(st, err) < 0) {
		store_tmpl_clear(before);
		return store_tx_rollback(st);
	}
	return 0;
}

int store_tmpl_update(struct store *st, const char *account, const char *name,
                      const struct store_tmpl_in *in, struct store_tmpl *out, char **err)
{
	int64_t rev = new_revision(), now = clock_now_s();
	struct store_tmpl before = {0};
	int rc;

	if (!store_tmpl_name_valid(name))
		return not_found(name, err); /* no template has it */
	if (check_in(name, in, err) < 0)
		return -1;
	pthread_mutex_lock(&st->lock);
	rc = change_locked(st, account, name, in, rev, now, &before, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0 && out)
		fill_out(out, name, in, rev, before.created_at, now);
	store_tmpl_clear(&before);
	return rc;
}

int store_tmpl_delete(struct store *st, const char *account, const char *name,
                      struct store_tmpl *out, char **err)
{
	struct store_tmpl before = {0};
	int rc;

	if (!store_tmpl_name_valid(name))
		return not_found(name, err);
	pthread_mutex_lock(&st->lock);
	rc = change_locked(st, account, name, NULL, 0, 0, &before, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0 && out)
		*out = before;
	else
		store_tmpl_clear(&before);
	return rc;
}

/* ---- listing ------------------------------------------------------------------------------ */

struct tmpl_rows {
	struct store_tmpl *v;
	size_t n;
};

static int list_locked(struct store *st, const char *account, const char *after, size_t limit,
                       struct tmpl_rows *rows, char **err)
{
	int64_t id = store_account_id(st, account, err);
	struct db_stmt *stmt = id > 0 ? store_prepare(st, list_sql, err) : NULL;
	int rc;

	if (id == 0) {
		store_fail(err, "no such account '%s'", account);
		return STORE_TMPL_NO_ACCOUNT;
	}
	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, after ? after : "", -1, DB_STATIC);
	db_bind_int64(stmt, 3, (int64_t)limit + 1); /* one more: is there more? */
	rows->v = xcalloc(limit + 1, sizeof(*rows->v));
	while ((rc = db_step(stmt)) == DB_ROW)
		read_tmpl(stmt, &rows->v[rows->n++]);
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "list templates");
}

int store_tmpl_list(struct store *st, const char *account, const char *after, size_t limit,
                    void (*cb)(void *arg, const struct store_tmpl *t), void *arg, int *more,
                    char **err)
{
	struct tmpl_rows rows = {0};
	int rc;

	*more = 0;
	if (limit < 1 || limit > 1000)
		return store_fail(err, "limit must be from 1 to 1000");
	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, account, after, limit, &rows, err);
	pthread_mutex_unlock(&st->lock);
	if (rc == 0 && rows.n > limit) {
		*more = 1;
		store_tmpl_clear(&rows.v[limit]);
		rows.n = limit;
	}
	for (size_t i = 0; i < rows.n; i++) {
		if (rc == 0)
			cb(arg, &rows.v[i]);
		store_tmpl_clear(&rows.v[i]);
	}
	free(rows.v);
	return rc;
}
