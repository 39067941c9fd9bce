/*
 * store_events_query: reading events, messages and the event counters
 * (written by store_events.c) for the API and the webhook dispatcher.
 *
 * Promises:
 * - A query's SQL is built from fixed fragments, one per filter that is
 *   set, so each query can use the index for its most selective filter
 *   (an "(? IS NULL OR col = ?)" form would keep SQLite from it). Values
 *   are always bound, never written into the SQL.
 * - Events come in id order, messages in queue ID order (IDs sort by
 *   arrival): the order is total and stable, so a cursor (the last id or
 *   queue ID seen) pages without gaps or repeats while rows are added.
 * - One SELECT is one snapshot; rows are copied out and the callbacks run
 *   after st->lock is released, so they may call the store.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"
#include "util/util.h"

#define QUERY_LIMIT_MAX 10000
#define QUERY_ARGS_MAX  12

/* ---- building a query ---------------------------------------------------------- */

struct query {
	struct buf sql;
	int n;
	struct {
		const char *s; /* NULL: i */
		int64_t i;
	} args[QUERY_ARGS_MAX];
	char *owned[QUERY_ARGS_MAX]; /* normalised copies, freed with the query */
	size_t n_owned;
};

static void q_init(struct query *q, const char *select)
{
	memset(q, 0, sizeof(*q));
	buf_init(&q->sql);
	buf_puts(&q->sql, select);
}

static void q_free(struct query *q)
{
	buf_free(&q->sql);
	for (size_t i = 0; i < q->n_owned; i++)
		free(q->owned[i]);
}

/* Appends " AND " and frag, whose one "?" takes s. */
static void q_text(struct query *q, const char *frag, const char *s)
{
	buf_printf(&q->sql, " AND %s", frag);
	q->args[q->n].s = s;
	q->n++;
}

static void q_int(struct query *q, const char *frag, int64_t v)
{
	buf_printf(&q->sql, " AND %s", frag);
	q->args[q->n].s = NULL;
	q->args[q->n].i = v;
	q->n++;
}

static const char *q_keep(struct query *q, char *s)
{
	q->owned[q->n_owned++] = s;
	return s;
}

static struct db_stmt *q_prepare(struct store *st, struct query *q, char **err)
{
	struct db_stmt *stmt = store_prepare(st, q->sql.data, err);

	for (int i = 0; stmt && i < q->n; i++) {
		if (q->args[i].s)
			db_bind_text(stmt, i + 1, q->args[i].s, -1, DB_STATIC);
		else
			db_bind_int64(stmt, i + 1, q->args[i].i);
	}
	return stmt;
}

static size_t clamp_limit(size_t n)
{
	return n == 0 ? 1 : n > QUERY_LIMIT_MAX ? QUERY_LIMIT_MAX : n;
}

/* The next slot of a growing array of rows (zeroed). */
static void *next_row(void *rows_v, size_t *n, size_t *cap, size_t size)
{
	void **v = rows_v;
	char *slot;

	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		*v = xrealloc(*v, *cap * size);
	}
	slot = (char *)*v + (*n)++ * size;
	memset(slot, 0, size);
	return slot;
}

/* Runs q, handing each row to take(); -1 with *err on failure. */
static int q_run(struct store *st, struct query *q, void (*take)(void *rows, struct db_stmt *stmt),
                 void *rows, char **err)
{
	struct db_stmt *stmt;
	int rc;

	pthread_mutex_lock(&st->lock);
	stmt = q_prepare(st, q, err);
	if (!stmt) {
		pthread_mutex_unlock(&st->lock);
		return -1;
	}
	while ((rc = db_step(stmt)) == DB_ROW)
		take(rows, stmt);
	db_finalize(stmt);
	if (rc != DB_DONE)
		store_fail_db(st, err, "query");
	pthread_mutex_unlock(&st->lock);
	return rc == DB_DONE ? 0 : -1;
}

/* ---- events ------------------------------------------------------------------------ */

struct event_rows {
	struct store_event_row *v;
	size_t n, cap;
};

static void take_event(void *arg, struct db_stmt *stmt)
{
	struct event_rows *rows = arg;
	struct store_event_row *e = next_row(&rows->v, &rows->n, &rows->cap, sizeof(*e));

	e->id = db_column_int64(stmt, 0);
	e->type = event_type_parse((const char *)db_column_text(stmt, 1));
	e->account = store_col_dup(stmt, 2);
	e->message_id = store_col_dup(stmt, 3);
	e->recipient = store_col_dup(stmt, 4);
	e->time_ms = db_column_int64(stmt, 5);
	e->detail = store_col_dup(stmt, 6);
	e->tags = store_col_dup(stmt, 7);
}

static void event_rows_free(struct event_rows *rows)
{
	for (size_t i = 0; i < rows->n; i++) {
		struct store_event_row *e = &rows->v[i];
		free((char *)e->account);
		free((char *)e->message_id);
		free((char *)e->recipient);
		free((char *)e->detail);
		free((char *)e->tags);
	}
	free(rows->v);
}

/* "type IN ('a', 'b')" from fixed names: the mask picks, nothing is user text. */
static void types_clause(struct query *q, unsigned types)
{
	const char *sep = "";

	if (types == 0 || (types & EVENT_TYPES_ALL) == EVENT_TYPES_ALL)
		return;
	buf_puts(&q->sql, " AND type IN (");
	for (int t = 0; t < EVENT_TYPES; t++) {
		if (types & (1u << t)) {
			buf_printf(&q->sql, "%s'%s'", sep, event_type_name(t));
			sep = ", ";
		}
	}
	buf_puts(&q->sql, ")");
}

static void event_where(struct query *q, const struct store_event_filter *f)
{
	if (f->account)
		q_text(q, "account = ?", f->account);
	types_clause(q, f->types);
	if (f->recipient)
		q_text(q, "recipient = ?", q_keep(q, store_addr_normal(f->recipient)));
	if (f->message_id)
		q_text(q, "message_id = ?", f->message_id);
	if (f->tag)
		q_text(q, "message_id IN (SELECT message_id FROM message_tags WHERE tag = ?)",
		       f->tag);
	if (f->since_ms)
		q_int(q, "time >= ?", f->since_ms);
	if (f->until_ms)
		q_int(q, "time < ?", f->until_ms);
	if (f->after)
		q_int(q, f->desc ? "id < ?" : "id > ?", f->after);
}

int store_events_query(struct store *st, const struct store_event_filter *f,
                       void (*cb)(void *arg, const struct store_event_row *e), void *arg,
                       char **err)
{
	struct event_rows rows = {0};
	struct query q;
	int rc;

	q_init(&q, "SELECT id, type, account, message_id, recipient, time, detail, tags"
	           " FROM events WHERE 1 = 1");
	event_where(&q, f);
	buf_printf(&q.sql, " ORDER BY id %s LIMIT %zu", f->desc ? "DESC" : "ASC",
	           clamp_limit(f->limit));
	rc = q_run(st, &q, take_event, &rows, err);
	q_free(&q);
	for (size_t i = 0; rc == 0 && i < rows.n; i++)
		cb(arg, &rows.v[i]);
	event_rows_free(&rows);
	return rc;
}

int store_events_last_id(struct store *st, int64_t *id, char **err)
{
	struct db_stmt *stmt;
	int rc;

	pthread_mutex_lock(&st->lock);
	stmt = store_prepare(st, "SELECT coalesce(max(id), 0) FROM events", err);
	rc = stmt ? db_step(stmt) : DB_ERROR;
	if (rc == DB_ROW)
		*id = db_column_int64(stmt, 0);
	else if (stmt)
		store_fail_db(st, err, "last event id");
	db_finalize(stmt);
	pthread_mutex_unlock(&st->lock);
	return rc == DB_ROW ? 0 : -1;
}

struct expired {
	int64_t last, n;
};

static void take_expired(void *arg, struct db_stmt *stmt)
{
	struct expired *x = arg;

	x->last = db_column_int64(stmt, 0);
	x->n = db_column_int64(stmt, 1);
}

int store_events_expired(struct store *st, const char *account, unsigned types, int64_t after,
                         int64_t before_ms, int64_t *last, int64_t *n, char **err)
{
	struct expired x = {0, 0};
	struct query q;
	int rc;

	q_init(&q, "SELECT coalesce(max(id), 0), count(*) FROM events WHERE 1 = 1");
	q_text(&q, "account = ?", account);
	types_clause(&q, types);
	q_int(&q, "id > ?", after);
	q_int(&q, "time < ?", before_ms);
	rc = q_run(st, &q, take_expired, &x, err);
	q_free(&q);
	*last = x.last;
	*n = x.n;
	return rc;
}

/* ---- messages ------------------------------------------------------------------------ */

#define MESSAGE_COLUMNS "id, account, sender, subject, tags, metadata, created"

struct message_rows {
	struct store_message_row *v;
	size_t n, cap;
};

static void read_message(struct db_stmt *stmt, struct store_message_row *m)
{
	m->id = store_col_dup(stmt, 0);
	m->account = store_col_dup(stmt, 1);
	m->from = store_col_dup(stmt, 2);
	m->subject = store_col_dup(stmt, 3);
	m->tags = store_col_dup(stmt, 4);
	m->metadata = store_col_dup(stmt, 5);
	m->created_ms = db_column_int64(stmt, 6);
}

static void take_message(void *arg, struct db_stmt *stmt)
{
	struct message_rows *rows = arg;

	read_message(stmt, next_row(&rows->v, &rows->n, &rows->cap, sizeof(*rows->v)));
}

void store_message_row_free(struct store_message_row *m)
{
	free(m->id);
	free(m->account);
	free(m->from);
	free(m->subject);
	free(m->tags);
	free(m->metadata);
	memset(m, 0, sizeof(*m));
}

int store_message_get(struct store *st, const char *account, const char *id,
                      struct store_message_row *out, char **err)
{
	struct message_rows rows = {0};
	struct query q;
	int rc;

	q_init(&q, "SELECT " MESSAGE_COLUMNS " FROM messages WHERE 1 = 1");
	q_text(&q, "id = ?", id);
	if (account)
		q_text(&q, "account = ?", account);
	rc = q_run(st, &q, take_message, &rows, err);
	q_free(&q);
	if (rc == 0 && rows.n == 1) {
		*out = rows.v[0];
		free(rows.v);
		return 1;
	}
	for (size_t i = 0; i < rows.n; i++)
		store_message_row_free(&rows.v[i]);
	free(rows.v);
	return rc < 0 ? -1 : 0;
}

static void message_where(struct query *q, const struct store_message_filter *f)
{
	if (f->account)
		q_text(q, "account = ?", f->account);
	if (f->recipient)
		q_text(q, "id IN (SELECT message_id FROM events WHERE recipient = ?)",
		       q_keep(q, store_addr_normal(f->recipient)));
	if (f->tag)
		q_text(q, "id IN (SELECT message_id FROM message_tags WHERE tag = ?)", f->tag);
	if (f->since_ms)
		q_int(q, "created >= ?", f->since_ms);
	if (f->until_ms)
		q_int(q, "created < ?", f->until_ms);
	if (f->after)
		q_text(q, f->desc ? "id < ?" : "id > ?", f->after);
}

int store_messages_query(struct store *st, const struct store_message_filter *f,
                         void (*cb)(void *arg, const struct store_message_row *m), void *arg,
                         char **err)
{
	struct message_rows rows = {0};
	struct query q;
	int rc;

	q_init(&q, "SELECT " MESSAGE_COLUMNS " FROM messages WHERE 1 = 1");
	message_where(&q, f);
	buf_printf(&q.sql, " ORDER BY id %s LIMIT %zu", f->desc ? "DESC" : "ASC",
	           clamp_limit(f->limit));
	rc = q_run(st, &q, take_message, &rows, err);
	q_free(&q);
	for (size_t i = 0; i < rows.n; i++) {
		if (rc == 0)
			cb(arg, &rows.v[i]);
		store_message_row_free(&rows.v[i]);
	}
	free(rows.v);
	return rc;
}

/* ---- stats ---------------------------------------------------------------------------- */

struct stats_rows {
	struct store_stats_row *v;
	size_t n, cap;
};

static void take_stats(void *arg, struct db_stmt *stmt)
{
	struct stats_rows *rows = arg;
	struct store_stats_row *r = next_row(&rows->v, &rows->n, &rows->cap, sizeof(*r));

	r->start = db_column_int64(stmt, 0);
	r->key = store_col_dup(stmt, 1);
	for (int k = 0; k < EVENT_TYPES; k++)
		r->n[k] = (uint64_t)db_column_int64(stmt, 2 + k);
}

/* The grouping column: hour and day give a start time, domain and tag a key. */
static const char *const group_cols[] = {
    [STATS_BY_HOUR] = "bucket, NULL",
    [STATS_BY_DAY] = "(bucket / 86400) * 86400, NULL",
    [STATS_BY_DOMAIN] = "0, domain",
    [STATS_BY_TAG] = "0, tag",
};
static const char *const group_by[] = {
    [STATS_BY_HOUR] = "bucket",
    [STATS_BY_DAY] = "(bucket / 86400) * 86400",
    [STATS_BY_DOMAIN] = "domain",
    [STATS_BY_TAG] = "tag",
};

static void stats_sql(struct query *q, const char *account, int64_t from, int64_t to,
                      enum store_stats_group g)
{
	buf_printf(&q->sql,
	           "SELECT %s, sum(accepted), sum(delivered), sum(deferred), sum(bounced),"
	           " sum(suppressed), sum(opened), sum(clicked), sum(complained)"
	           " FROM event_counters WHERE %s",
	           group_cols[g], g == STATS_BY_TAG ? "tag <> ''" : "tag = ''");
	if (account)
		q_text(q, "account = ?", account);
	if (from)
		q_int(q, "bucket >= ?", counter_bucket(from));
	if (to)
		q_int(q, "bucket < ?", to);
	buf_printf(&q->sql, " GROUP BY %s ORDER BY %s LIMIT %d", group_by[g], group_by[g],
	           QUERY_LIMIT_MAX);
}

int store_event_stats(struct store *st, const char *account, int64_t from, int64_t to,
                      enum store_stats_group group,
                      void (*cb)(void *arg, const struct store_stats_row *row), void *arg,
                      char **err)
{
	struct stats_rows rows = {0};
	struct query q;
	int rc;

	if ((int)group < 0 || group > STATS_BY_TAG)
		return store_fail(err, "unknown stats grouping %d", (int)group);
	q_init(&q, "");
	stats_sql(&q, account, from, to, group);
	rc = q_run(st, &q, take_stats, &rows, err);
	q_free(&q);
	for (size_t i = 0; i < rows.n; i++) {
		if (rc == 0)
			cb(arg, &rows.v[i]);
		free((char *)rows.v[i].key);
	}
	free(rows.v);
	return rc;
}
