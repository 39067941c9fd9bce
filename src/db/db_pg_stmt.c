/*
 * db_pg_stmt: statements of the PostgreSQL driver (db.h, db_pg_int.h).
 *
 * - SQL is rewritten once at prepare (`?N` to `$N`); nothing is sent then.
 * - Parameters go as text with their type (text, int8; bytea in binary;
 *   NULL untyped, so the server infers it), so that a parameter used only
 *   in a SELECT list still has a type. Text that is not UTF-8 goes with
 *   U+FFFD for each invalid byte (db_pg_utf8): PostgreSQL refuses it.
 * - The first run of a given SQL on a connection is one round trip
 *   (PQexecParams); from the second on it is prepared, under a name kept
 *   per connection with its parameter types, and run by name. The names
 *   die with the connection (gen) and are all dropped past DB_PG_CACHE_MAX.
 * - A step runs the statement at once and keeps the whole result: the
 *   store's reads are bounded by their LIMITs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_pg_int.h"
#include "util/util.h"

#define OID_BYTEA 17
#define OID_INT8  20
#define OID_TEXT  25

struct pg_prep {
	struct htable_node hn;
	char *key; /* the SQL, then NUL, then the types as text */
	size_t key_len;
	unsigned uses;
	char name[24]; /* empty until prepared */
};

struct prep_key {
	const char *p;
	size_t n;
};

static struct db_pg *D(struct db_stmt *s)
{
	return (struct db_pg *)s->db;
}

static struct pg_stmt *P(struct db_stmt *s)
{
	return (struct pg_stmt *)s;
}

int db_pg_prepare(struct db *db, const char *sql, struct db_stmt **out)
{
	struct db_pg *d = (struct db_pg *)db;
	struct pg_stmt *s;
	int n;
	char *q = db_pg_placeholders(sql, &n);

	if (q == NULL) {
		free(d->err);
		d->err = xasprintf("more than %d parameters in: %s", DB_PG_MAX_PARAMS, sql);
		return DB_ERROR;
	}
	s = xcalloc(1, sizeof *s);
	s->base.db = db;
	s->sql = q;
	s->nparams = n;
	*out = &s->base;
	return DB_OK;
}

static void unbind(struct pg_stmt *s, int i)
{
	if (s->owned[i])
		free(s->vals[i]);
	s->vals[i] = NULL;
	s->owned[i] = 0;
	s->lens[i] = 0;
	s->fmts[i] = 0;
	s->types[i] = 0;
}

/* Index i (1-based) as a slot, or -1. */
static int slot(struct pg_stmt *s, int i)
{
	if (i < 1 || i > s->nparams)
		return -1;
	unbind(s, i - 1);
	return i - 1;
}

int db_pg_bind_text(struct db_stmt *st, int i, const char *v, int n, enum db_bind_mode m)
{
	struct pg_stmt *s = P(st);
	int k = slot(s, i);

	if (k < 0)
		return DB_ERROR;
	if (v == NULL)
		return DB_OK;
	s->types[k] = OID_TEXT;
	if ((s->vals[k] = db_pg_utf8(v, n >= 0 ? (size_t)n : strlen(v)))) {
		s->owned[k] = 1; /* not UTF-8: PostgreSQL would refuse it */
		return DB_OK;
	}
	if (n >= 0 || m == DB_TRANSIENT) {
		s->vals[k] = n >= 0 ? xstrndup(v, (size_t)n) : xstrdup(v);
		s->owned[k] = 1;
	} else {
		s->vals[k] = (char *)v;
	}
	return DB_OK;
}

int db_pg_bind_blob(struct db_stmt *st, int i, const void *v, int n, enum db_bind_mode m)
{
	struct pg_stmt *s = P(st);
	int k = slot(s, i);

	if (k < 0 || n < 0)
		return DB_ERROR;
	s->vals[k] = xmalloc((size_t)n + 1);
	memcpy(s->vals[k], v, (size_t)n);
	s->owned[k] = 1;
	s->lens[k] = n;
	s->fmts[k] = 1;
	s->types[k] = OID_BYTEA;
	return DB_OK;
}

int db_pg_bind_int64(struct db_stmt *st, int i, int64_t v)
{
	struct pg_stmt *s = P(st);
	int k = slot(s, i);

	if (k < 0)
		return DB_ERROR;
	snprintf(s->num[k], sizeof s->num[k], "%lld", (long long)v);
	s->vals[k] = s->num[k];
	s->types[k] = OID_INT8;
	return DB_OK;
}

int db_pg_bind_null(struct db_stmt *st, int i)
{
	return slot(P(st), i) < 0 ? DB_ERROR : DB_OK;
}

void db_pg_clear_bindings(struct db_stmt *st)
{
	for (int i = 0; i < P(st)->nparams; i++)
		unbind(P(st), i);
}

void db_pg_reset(struct db_stmt *st)
{
	struct pg_stmt *s = P(st);

	PQclear(s->res);
	s->res = NULL;
	PQfreemem(s->blob);
	s->blob = NULL;
}

void db_pg_finalize(struct db_stmt *st)
{
	db_pg_reset(st);
	db_pg_clear_bindings(st);
	free(P(st)->sql);
	free(st);
}

/* ---- the cache of prepared statements --------------------------------- */

static int prep_match(const struct htable_node *n, const void *key)
{
	const struct pg_prep *p = HTABLE_ENTRY(n, struct pg_prep, hn);
	const struct prep_key *k = key;

	return p->key_len == k->n && memcmp(p->key, k->p, k->n) == 0;
}

void db_pg_cache_clear(struct db_pg *d)
{
	struct htable_iter it;
	struct htable_node *n;

	htable_iter_init(&it, &d->cache);
	while ((n = htable_iter_next(&it))) {
		struct pg_prep *p = HTABLE_ENTRY(n, struct pg_prep, hn);

		htable_del(&d->cache, n);
		free(p->key);
		free(p);
	}
}

/* The cache entry of s's SQL and types, made if missing. */
static struct pg_prep *prep_of(struct db_pg *d, struct pg_stmt *s)
{
	struct buf b;
	struct prep_key k;
	struct htable_node *n;
	struct pg_prep *p;
	uint64_t h;

	buf_init(&b);
	buf_printf(&b, "%s", s->sql);
	buf_append(&b, "", 1);
	for (int i = 0; i < s->nparams; i++)
		buf_printf(&b, "%u,", (unsigned)s->types[i]);
	k.p = b.data;
	k.n = b.len;
	h = htable_hash(k.p, k.n);
	if ((n = htable_find(&d->cache, h, prep_match, &k))) {
		buf_free(&b);
		return HTABLE_ENTRY(n, struct pg_prep, hn);
	}
	if (htable_count(&d->cache) >= DB_PG_CACHE_MAX &&
	    PQtransactionStatus(d->c) == PQTRANS_IDLE) {
		PQclear(db_pg_exec(d, "DEALLOCATE ALL"));
		db_pg_cache_clear(d);
	}
	p = xcalloc(1, sizeof *p);
	p->key = b.data;
	p->key_len = b.len;
	htable_add(&d->cache, &p->hn, h);
	return p;
}

/* Prepares p's statement under a new name; 0, or -1 with the error kept. */
static int prep_make(struct db_pg *d, struct pg_stmt *s, struct pg_prep *p)
{
	char name[24];
	PGresult *r;

	snprintf(name, sizeof name, "ph%u", ++d->seq);
	r = db_pg_prepare_named(d, name, s);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		db_pg_fail(d, r);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	memcpy(p->name, name, sizeof name);
	return 0;
}

PGresult *db_pg_run(struct db_pg *d, struct pg_stmt *s)
{
	struct pg_prep *p = prep_of(d, s);

	if (d->c == NULL) /* given up while making room in the cache */
		return NULL;
	if (p->name[0] == '\0' && p->uses++ == 0)
		return db_pg_exec_params(d, s);
	if (p->name[0] == '\0' && prep_make(d, s, p) < 0)
		return NULL;
	return db_pg_exec_prepared(d, p->name, s);
}

/* ---- stepping and reading --------------------------------------------- */

static int run(struct db_pg *d, struct pg_stmt *s)
{
	PGresult *r;
	ExecStatusType t;
	int rc = db_pg_ensure(d);

	if (rc != DB_OK)
		return rc;
	r = db_pg_run(d, s);
	if (r == NULL)
		return db_pg_fail(d, NULL);
	t = PQresultStatus(r);
	if (t != PGRES_TUPLES_OK && t != PGRES_COMMAND_OK) {
		rc = db_pg_fail(d, r);
		PQclear(r);
		return rc;
	}
	d->changes = strtoll(PQcmdTuples(r), NULL, 10);
	s->res = r;
	s->row = -1;
	s->nrows = t == PGRES_TUPLES_OK ? PQntuples(r) : 0;
	return DB_OK;
}

int db_pg_step(struct db_stmt *st)
{
	struct pg_stmt *s = P(st);

	if (s->res == NULL) {
		int rc = run(D(st), s);

		if (rc != DB_OK)
			return rc;
	}
	PQfreemem(s->blob);
	s->blob = NULL;
	if (s->row < s->nrows)
		s->row++;
	return s->row < s->nrows ? DB_ROW : DB_DONE;
}

static int has(struct pg_stmt *s, int i)
{
	return s->res && s->row >= 0 && s->row < s->nrows && i >= 0 && i < PQnfields(s->res);
}

int db_pg_column_is_null(struct db_stmt *st, int i)
{
	struct pg_stmt *s = P(st);

	return !has(s, i) || PQgetisnull(s->res, s->row, i);
}

const char *db_pg_column_text(struct db_stmt *st, int i)
{
	struct pg_stmt *s = P(st);

	if (db_pg_column_is_null(st, i))
		return NULL;
	return PQgetvalue(s->res, s->row, i);
}

/* Integers, and booleans ('t', 'f') as 1 and 0. */
int64_t db_pg_column_int64(struct db_stmt *st, int i)
{
	const char *v = db_pg_column_text(st, i);

	if (v == NULL)
		return 0;
	if (v[0] == 't' || v[0] == 'f')
		return v[0] == 't';
	return strtoll(v, NULL, 10);
}

const void *db_pg_column_blob(struct db_stmt *st, int i, int *n)
{
	struct pg_stmt *s = P(st);
	const char *v = db_pg_column_text(st, i);
	size_t len = 0;

	*n = 0;
	if (v == NULL)
		return NULL;
	PQfreemem(s->blob);
	s->blob = PQunescapeBytea((const unsigned char *)v, &len);
	*n = (int)len;
	return s->blob;
}
