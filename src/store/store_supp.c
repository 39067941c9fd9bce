/*
 * store_supp: the suppression lists (table suppressions, migration 6 in
 * store.c): per account, the addresses mail must not go to, with a reason
 * and the time each was added. How an address is spelt and compared is
 * store_supp_addr.c's (PURE); this file is the SQL.
 *
 * Promises:
 * - A lookup is one statement, prepared once per handle and kept:
 *   accounts(name), then the primary key (account_id, address_key).
 *   store_supp_check_many() holds the lock once for a whole batch of
 *   recipients. On SQLite it reads one snapshot, one lookup per address
 *   (page-cache reads). On PostgreSQL, where each statement is a round
 *   trip, it sends one statement per SUPP_CHECK_SPLIT addresses: the keys
 *   go as one text-array parameter (address_key = ANY(...)), and the rows
 *   that come back are matched to the addresses by key.
 * - An add is idempotent (INSERT ... ON CONFLICT DO NOTHING): the first
 *   time and reason stay, whoever adds the address again.
 * - Changes are committed (fsync'd, synchronous=FULL) before the call
 *   returns, and the next lookup by any process sees them: nothing is
 *   cached here, so the server sees a `posthorn suppress add` at once.
 * - The SQL is what PostgreSQL accepts too: ON CONFLICT DO NOTHING, LIKE
 *   with ESCAPE, BIGINT times, no SQLite-only syntax.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

#define ENTRY_COLUMNS "s.address_key, s.address, s.reason, s.created_at"

/* Addresses looked up by one statement on PostgreSQL, at most. */
#define SUPP_CHECK_SPLIT 256

static const char check_sql[] = "SELECT " ENTRY_COLUMNS " FROM suppressions s"
                                " JOIN accounts a ON a.id = s.account_id"
                                " WHERE a.name = ?1 AND s.address_key = ?2";
static const char check_any_sql[] = "SELECT " ENTRY_COLUMNS " FROM suppressions s"
                                    " JOIN accounts a ON a.id = s.account_id"
                                    " WHERE a.name = ?1"
                                    " AND s.address_key = ANY(CAST(?2 AS TEXT[]))";
static const char get_sql[] = "SELECT " ENTRY_COLUMNS " FROM suppressions s"
                              " WHERE s.account_id = ?1 AND s.address_key = ?2";
static const char insert_sql[] =
    "INSERT INTO suppressions (account_id, address_key, address, reason, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (account_id, address_key) DO NOTHING";
static const char delete_sql[] =
    "DELETE FROM suppressions WHERE account_id = ?1 AND address_key = ?2";
static const char list_sql[] = "SELECT " ENTRY_COLUMNS " FROM suppressions s"
                               " WHERE s.account_id = ?1 AND s.address_key > ?2"
                               " AND s.address_key LIKE ?3 ESCAPE '\\'"
                               " ORDER BY s.address_key LIMIT ?4";

/* An address made ready for the SQL: its key and the form kept. */
struct supp_addr {
	char display[SUPP_ADDRESS_MAX + 1];
	char key[SUPP_ADDRESS_MAX + 1];
};

static void copy_col(char *dst, size_t cap, struct db_stmt *stmt, int col)
{
	const char *s = db_column_text(stmt, col);

	snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

/* Reads the ENTRY_COLUMNS of the current row. */
static void read_entry(struct db_stmt *stmt, struct store_supp *out)
{
	copy_col(out->key, sizeof(out->key), stmt, 0);
	copy_col(out->address, sizeof(out->address), stmt, 1);
	copy_col(out->reason, sizeof(out->reason), stmt, 2);
	out->created_at = db_column_int64(stmt, 3);
}

static int bad_address(const char *addr, char **err)
{
	const char *why = "";
	struct supp_addr a;

	store_supp_normalize(addr, a.display, a.key, &why);
	store_fail(err, "invalid address '%.300s': %s", addr, why);
	return STORE_SUPP_BAD_ADDRESS;
}

static int no_account(const char *account, char **err)
{
	store_fail(err, "no such account '%s'", account);
	return STORE_SUPP_NO_ACCOUNT;
}

/* ---- lookups ----------------------------------------------------------------- */

/* Runs stmt (?1, ?2 bound by the caller) once: 1 row read into out, 0 none,
 * -1 error. The statement is reset for the next use. */
static int step_one(struct store *st, struct db_stmt *stmt, struct store_supp *out, char **err)
{
	int rc = db_step(stmt);

	if (rc == DB_ROW && out)
		read_entry(stmt, out);
	db_reset(stmt);
	if (rc == DB_ROW)
		return 1;
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "suppression lookup");
}

static int check_locked(struct store *st, const char *account, const char *const *addrs, size_t n,
                        unsigned char *found, struct store_supp *out, char **err)
{
	struct db_stmt *stmt = store_prepare_kept(st, STORE_KEPT_SUPP_CHECK, check_sql, err);
	struct supp_addr a;
	int total = 0, rc = 0;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, account, -1, DB_STATIC);
	/* A batch reads one snapshot: one read transaction instead of one per
	 * lookup halves the cost. (Without it, each step is its own.) */
	if (n > 1)
		db_exec(st->db, "BEGIN");
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		if (store_supp_normalize(addrs[i], a.display, a.key, NULL) < 0)
			continue; /* nothing of that shape is ever stored */
		db_bind_text(stmt, 2, a.key, -1, DB_STATIC);
		rc = step_one(st, stmt, out ? &out[i] : NULL, err);
		found[i] = rc > 0;
		total += rc > 0;
	}
	if (n > 1 && db_in_tx(st->db))
		db_exec(st->db, "COMMIT");
	db_clear_bindings(stmt); /* the kept statement must not point at our stack */
	return rc < 0 ? -1 : total;
}

/* ---- lookups on PostgreSQL: one statement per SUPP_CHECK_SPLIT addresses ----- */

/* Appends key to the array literal in b as a quoted element: every
 * character is kept, '"' and '\\' escaped (keys hold no control bytes, and
 * quoting leaves nothing else special: braces, commas, spaces, NULL). */
static void literal_add(struct buf *b, const char *key)
{
	buf_puts(b, b->len > 1 ? ",\"" : "\"");
	for (const char *p = key; *p; p++) {
		if (*p == '"' || *p == '\\')
			buf_puts(b, "\\");
		buf_append(b, p, 1);
	}
	buf_puts(b, "\"");
}

/* The row just read (its key in column 0) answers every address of the
 * chunk with that key (duplicates too): how many it answered. */
static int match_row(struct db_stmt *stmt, const struct supp_addr *a, const unsigned char *ok,
                     size_t n, unsigned char *found, struct store_supp *out)
{
	const char *key = db_column_text(stmt, 0);
	int hits = 0;

	for (size_t i = 0; key && i < n; i++) {
		if (!ok[i] || found[i] || strcmp(a[i].key, key) != 0)
			continue;
		found[i] = 1;
		hits++;
		if (out)
			read_entry(stmt, &out[i]);
	}
	return hits;
}

/* Runs stmt (?1 bound) on the literal: the number found, or -1. */
static int run_chunk(struct store *st, struct db_stmt *stmt, const char *literal,
                     const struct supp_addr *a, const unsigned char *ok, size_t n,
                     unsigned char *found, struct store_supp *out, char **err)
{
	int rc, total = 0;

	db_bind_text(stmt, 2, literal, -1, DB_STATIC);
	while ((rc = db_step(stmt)) == DB_ROW)
		total += match_row(stmt, a, ok, n, found, out);
	db_reset(stmt);
	return rc == DB_DONE ? total : store_fail_db(st, err, "suppression lookup");
}

/* addrs[0..n), n <= SUPP_CHECK_SPLIT, with one statement. */
static int check_chunk_pg(struct store *st, struct db_stmt *stmt, const char *const *addrs,
                          size_t n, unsigned char *found, struct store_supp *out, char **err)
{
	struct supp_addr *a = xcalloc(n, sizeof(*a));
	unsigned char ok[SUPP_CHECK_SPLIT];
	struct buf lit;
	int rc = 0;

	buf_init(&lit);
	buf_puts(&lit, "{");
	for (size_t i = 0; i < n; i++) {
		ok[i] = store_supp_normalize(addrs[i], a[i].display, a[i].key, NULL) == 0;
		if (ok[i]) /* else nothing of that shape is ever stored */
			literal_add(&lit, a[i].key);
	}
	buf_puts(&lit, "}");
	if (lit.len > 2)
		rc = run_chunk(st, stmt, lit.data, a, ok, n, found, out, err);
	buf_free(&lit);
	free(a);
	return rc;
}

static int check_pg_locked(struct store *st, const char *account, const char *const *addrs,
                           size_t n, unsigned char *found, struct store_supp *out, char **err)
{
	struct db_stmt *stmt =
	    store_prepare_kept(st, STORE_KEPT_SUPP_CHECK_ANY, check_any_sql, err);
	int total = 0, rc = 0;

	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, account, -1, DB_STATIC);
	for (size_t i = 0; rc >= 0 && i < n; i += SUPP_CHECK_SPLIT) {
		size_t k = n - i < SUPP_CHECK_SPLIT ? n - i : SUPP_CHECK_SPLIT;

		rc = check_chunk_pg(st, stmt, addrs + i, k, found + i, out ? out + i : NULL, err);
		total += rc > 0 ? rc : 0;
	}
	db_clear_bindings(stmt); /* the kept statement must not point at our memory */
	return rc < 0 ? -1 : total;
}

int store_supp_check_many(struct store *st, const char *account, const char *const *addrs, size_t n,
                          unsigned char *found, struct store_supp *out, char **err)
{
	int rc;

	memset(found, 0, n);
	pthread_mutex_lock(&st->lock);
	if (db_kind(st->db) == DB_POSTGRES)
		rc = check_pg_locked(st, account, addrs, n, found, out, err);
	else
		rc = check_locked(st, account, addrs, n, found, out, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_supp_check(struct store *st, const char *account, const char *addr,
                     struct store_supp *out, char **err)
{
	unsigned char found;

	return store_supp_check_many(st, account, &addr, 1, &found, out, err);
}

/* ---- changes (callers hold the lock and a transaction) --------------------------- */

/* The entry of (id, key): 1 read into out, 0 none, -1 error. */
static int get_entry(struct store *st, int64_t id, const char *key, struct store_supp *out,
                     char **err)
{
	struct db_stmt *stmt = store_prepare(st, get_sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, key, -1, DB_STATIC);
	rc = step_one(st, stmt, out, err);
	db_finalize(stmt);
	return rc;
}

/* Runs insert_sql or delete_sql for (id, a): the rows changed, or -1. */
static int change(struct store *st, const char *sql, int64_t id, const struct supp_addr *a,
                  const char *reason, char **err)
{
	struct db_stmt *stmt = store_prepare(st, sql, err);
	int rc;

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, a->key, -1, DB_STATIC);
	if (reason) {
		db_bind_text(stmt, 3, a->display, -1, DB_STATIC);
		db_bind_text(stmt, 4, reason, -1, DB_STATIC);
		db_bind_int64(stmt, 5, clock_now_s());
	}
	rc = db_step(stmt);
	db_finalize(stmt);
	if (rc != DB_DONE)
		return store_fail_db(st, err, reason ? "add suppression" : "remove suppression");
	return db_changes(st->db);
}

/* The account's id inside the transaction; <= 0 ends it (rolled back). */
static int64_t begin_account(struct store *st, const char *account, char **err)
{
	int64_t id;

	if (store_tx_begin(st, err) < 0)
		return -1;
	id = store_account_id(st, account, err);
	if (id <= 0) {
		store_tx_rollback(st);
		return id < 0 ? -1 : no_account(account, err);
	}
	return id;
}

static int add_locked(struct store *st, const char *account, const struct supp_addr *a,
                      const char *reason, struct store_supp *out, char **err)
{
	int64_t id = begin_account(st, account, err);
	int added;

	if (id <= 0)
		return (int)id;
	if ((added = change(st, insert_sql, id, a, reason, err)) < 0 ||
	    get_entry(st, id, a->key, out, err) <= 0 || store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return added > 0;
}

static int remove_locked(struct store *st, const char *account, const struct supp_addr *a,
                         struct store_supp *out, char **err)
{
	int64_t id = begin_account(st, account, err);
	int found;

	if (id <= 0)
		return (int)id;
	if ((found = get_entry(st, id, a->key, out, err)) < 0 ||
	    (found && change(st, delete_sql, id, a, NULL, err) < 0) || store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return found;
}

int store_supp_add(struct store *st, const char *account, const char *addr, const char *reason,
                   struct store_supp *out, char **err)
{
	char clean[SUPP_REASON_MAX + 1];
	struct store_supp entry;
	struct supp_addr a;
	int rc;

	if (store_supp_normalize(addr, a.display, a.key, NULL) < 0)
		return bad_address(addr, err);
	store_supp_reason_clean(reason, clean);
	pthread_mutex_lock(&st->lock);
	rc = add_locked(st, account, &a, clean, &entry, err);
	pthread_mutex_unlock(&st->lock);
	if (rc >= 0 && out)
		*out = entry;
	return rc;
}

int store_supp_remove(struct store *st, const char *account, const char *addr,
                      struct store_supp *out, char **err)
{
	struct store_supp entry;
	struct supp_addr a;
	int rc;

	if (store_supp_normalize(addr, a.display, a.key, NULL) < 0)
		return bad_address(addr, err);
	pthread_mutex_lock(&st->lock);
	rc = remove_locked(st, account, &a, &entry, err);
	pthread_mutex_unlock(&st->lock);
	if (rc > 0 && out)
		*out = entry;
	return rc;
}

/* One entry of a batch inside the transaction: v->added set; -1 only
 * when the database failed. */
static int add_one_locked(struct store *st, struct store_supp_add *v, char **err)
{
	char clean[SUPP_REASON_MAX + 1];
	struct supp_addr a;
	int64_t id;
	int rc;

	if (store_supp_normalize(v->addr, a.display, a.key, NULL) < 0) {
		v->added = STORE_SUPP_BAD_ADDRESS;
		return 0;
	}
	if ((id = store_account_id(st, v->account, err)) <= 0) {
		v->added = STORE_SUPP_NO_ACCOUNT;
		return (int)id;
	}
	store_supp_reason_clean(v->reason, clean);
	if ((rc = change(st, insert_sql, id, &a, clean, err)) < 0)
		return -1;
	v->added = rc > 0;
	return 0;
}

int store_supp_add_many(struct store *st, struct store_supp_add *v, size_t n, char **err)
{
	int total = 0, rc = 0;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&st->lock);
	if (store_tx_begin(st, err) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = add_one_locked(st, &v[i], err);
		total += rc == 0 && v[i].added > 0;
	}
	if (rc == 0 && store_tx_commit(st, err) < 0)
		rc = -1;
	if (rc < 0)
		store_tx_rollback(st);
	pthread_mutex_unlock(&st->lock);
	return rc < 0 ? -1 : total;
}

/* ---- listing ------------------------------------------------------------------------ */

/* "%part%" for LIKE, the part lower-cased (keys are) and its wildcards
 * escaped; malloc'd. */
static char *like_pattern(const char *contains)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "%");
	for (const char *p = contains ? contains : ""; *p; p++) {
		char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		if (c == '%' || c == '_' || c == '\\')
			buf_puts(&b, "\\");
		buf_append(&b, &c, 1);
	}
	buf_puts(&b, "%");
	return b.data;
}

struct supp_rows {
	struct store_supp *v;
	size_t n;
};

static int list_locked(struct store *st, const struct store_supp_query *q, const char *pattern,
                       struct supp_rows *rows, char **err)
{
	int64_t id = store_account_id(st, q->account, err);
	struct db_stmt *stmt = id > 0 ? store_prepare(st, list_sql, err) : NULL;
	int rc;

	if (id <= 0)
		return id < 0 ? -1 : no_account(q->account, err);
	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, id);
	db_bind_text(stmt, 2, q->after ? q->after : "", -1, DB_STATIC);
	db_bind_text(stmt, 3, pattern, -1, DB_STATIC);
	db_bind_int64(stmt, 4, (int64_t)q->limit + 1); /* one more: is there more? */
	rows->v = xcalloc(q->limit + 1, sizeof(*rows->v));
	while ((rc = db_step(stmt)) == DB_ROW)
		read_entry(stmt, &rows->v[rows->n++]);
	db_finalize(stmt);
	return rc == DB_DONE ? 0 : store_fail_db(st, err, "list suppressions");
}

int store_supp_list(struct store *st, const struct store_supp_query *q,
                    void (*cb)(void *arg, const struct store_supp *s), void *arg, int *more,
                    char **err)
{
	struct supp_rows rows = {0};
	char *pattern;
	int rc;

	*more = 0;
	if (q->limit < 1 || q->limit > SUPP_LIST_MAX)
		return store_fail(err, "limit must be from 1 to %d", SUPP_LIST_MAX);
	pattern = like_pattern(q->contains);
	pthread_mutex_lock(&st->lock);
	rc = list_locked(st, q, pattern, &rows, err);
	pthread_mutex_unlock(&st->lock);
	free(pattern);
	if (rc == 0 && rows.n > q->limit) {
		*more = 1;
		rows.n = q->limit;
	}
	for (size_t i = 0; rc == 0 && i < rows.n; i++)
		cb(arg, &rows.v[i]);
	free(rows.v);
	return rc;
}
