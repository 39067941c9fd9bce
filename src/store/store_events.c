/*
 * store_events: writing events, messages and their counters, and pruning
 * them (tables of migration 8 in store.c). Reading is in
 * store_events_query.c.
 *
 * Promises:
 * - store_events_write() is one transaction: the batch's messages, its
 *   events and the counter increments they make are all written, or none
 *   is, and the same batch may then be written again. Every entry is
 *   checked before the transaction starts.
 * - Event ids are max(id) + 1, + 2, ... in batch order, read inside the
 *   write transaction, which waits for every other event writer
 *   (store_tx_serial: one at a time across all nodes on PostgreSQL). Ids
 *   grow in the order batches commit, and a smaller id is never committed
 *   after a larger one, which is what cursors of the API and of webhooks
 *   rely on.
 * - opened and clicked are kept once per message, recipient (and link):
 *   a repeat updates "last" and "count" in the first event's detail, and
 *   counts nowhere (the counters count unique opens and clicks).
 * - Counters are summed in memory per (hour, account, domain, tag) first,
 *   so a batch of 1,000 events makes one UPSERT per distinct key.
 * - A batch with a key is written once. Its key goes into event_batches
 *   (migration 20) first thing in its transaction, under the events' lock:
 *   if the attempt before was committed (its COMMIT timed out or lost its
 *   connection after the server had it), the key is there and the retry
 *   commits nothing; if it was rolled back, so was its key. On PostgreSQL
 *   an attempt whose COMMIT is still running holds the events' lock until
 *   it ends, so the retry sees its outcome.
 * - Pruning deletes at most `limit` rows per table per call, each table in
 *   its own transaction: a big backlog never holds the write lock long.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "store/store_events_once.h"
#include "store/store_int.h"
#include "util/util.h"

/*
 * Migration 7 -> 8 (store.c's list): events, messages, their counters and webhooks
 * (store_events.c, store_events_query.c, store_webhooks.c; the
 * durability argument is in docs/events.md). Accounts are kept by
 * name in the history tables, as in counters: the history of a deleted
 * account stays readable. Times are unix milliseconds in messages and
 * events, seconds in counter buckets. events.id and webhooks.id are
 * given by the code (max + 1, one writer); SQLite's INTEGER PRIMARY KEY
 * is 64-bit and the rowid itself, and the PostgreSQL schema says BIGINT
 * there: the only difference. event_counters holds each event once
 * under tag '' and once more per tag of its message, so that sums by
 * hour, day or domain read tag = '' and sums by tag read tag <> ''.
 */
const char store_events_migration[] =
    "CREATE TABLE messages ("
    "  id TEXT PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  sender TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  tags TEXT NOT NULL,"
    "  metadata TEXT NOT NULL,"
    "  created BIGINT NOT NULL"
    ");"
    "CREATE INDEX messages_account ON messages(account, id);"
    "CREATE INDEX messages_created ON messages(created);"
    "CREATE TABLE message_tags ("
    "  tag TEXT NOT NULL,"
    "  message_id TEXT NOT NULL,"
    "  PRIMARY KEY (tag, message_id)"
    ");"
    "CREATE INDEX message_tags_message ON message_tags(message_id);"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  account TEXT NOT NULL,"
    "  message_id TEXT,"
    "  recipient TEXT,"
    "  type TEXT NOT NULL CHECK (type IN ('accepted', 'delivered', 'deferred', 'bounced',"
    "    'suppressed', 'opened', 'clicked', 'complained')),"
    "  time BIGINT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  tags TEXT NOT NULL"
    ");"
    "CREATE INDEX events_account ON events(account, id);"
    "CREATE INDEX events_message ON events(message_id, recipient);"
    "CREATE INDEX events_recipient ON events(recipient, id);"
    "CREATE INDEX events_time ON events(time);"
    "CREATE TABLE event_counters ("
    "  bucket BIGINT NOT NULL,"
    "  account TEXT NOT NULL,"
    "  domain TEXT NOT NULL,"
    "  tag TEXT NOT NULL,"
    "  accepted BIGINT NOT NULL DEFAULT 0,"
    "  delivered BIGINT NOT NULL DEFAULT 0,"
    "  deferred BIGINT NOT NULL DEFAULT 0,"
    "  bounced BIGINT NOT NULL DEFAULT 0,"
    "  suppressed BIGINT NOT NULL DEFAULT 0,"
    "  opened BIGINT NOT NULL DEFAULT 0,"
    "  clicked BIGINT NOT NULL DEFAULT 0,"
    "  complained BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (bucket, account, domain, tag)"
    ");"
    "CREATE TABLE webhooks ("
    "  id INTEGER PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  url TEXT NOT NULL,"
    "  secret TEXT NOT NULL,"
    "  description TEXT NOT NULL,"
    "  types INTEGER NOT NULL,"
    "  unrestricted INTEGER NOT NULL CHECK (unrestricted IN (0, 1)),"
    "  created_at BIGINT NOT NULL,"
    "  last_event_id BIGINT NOT NULL,"
    "  failures BIGINT NOT NULL DEFAULT 0,"
    "  first_failure_at BIGINT NOT NULL DEFAULT 0,"
    "  next_attempt_at BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX webhooks_account ON webhooks(account_id);"
    "CREATE TABLE webhook_failures ("
    "  id INTEGER PRIMARY KEY,"
    "  webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
    "  time BIGINT NOT NULL,"
    "  first_event BIGINT NOT NULL,"
    "  last_event BIGINT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  error TEXT NOT NULL,"
    "  dropped INTEGER NOT NULL CHECK (dropped IN (0, 1))"
    ");"
    "CREATE INDEX webhook_failures_webhook ON webhook_failures(webhook_id, id);";

static const char *const type_names[EVENT_TYPES] = {
    [EVENT_ACCEPTED] = "accepted", [EVENT_DELIVERED] = "delivered",   [EVENT_DEFERRED] = "deferred",
    [EVENT_BOUNCED] = "bounced",   [EVENT_SUPPRESSED] = "suppressed", [EVENT_OPENED] = "opened",
    [EVENT_CLICKED] = "clicked",   [EVENT_COMPLAINED] = "complained",
};

const char *event_type_name(int type)
{
	if (type < 0 || type >= EVENT_TYPES)
		return NULL;
	return type_names[type];
}

int event_type_parse(const char *name)
{
	for (int t = 0; name != NULL && t < EVENT_TYPES; t++)
		if (strcmp(name, type_names[t]) == 0)
			return t;
	return -1;
}

/* ---- checks ---------------------------------------------------------------- */

static int text_ok(const char *s, size_t max)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

/* A detail: NULL (it stands for {}), or the text of a JSON object of
 * bounded size. Only its shape is checked ("{...}"): details are built by
 * the event writer, once per event, and parsing each again here would
 * cost as much as building it; readers show an unparsable one as {}. */
static int detail_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return !s || (n >= 2 && n <= EVENT_DETAIL_MAX && s[0] == '{' && s[n - 1] == '}');
}

/* NULL is fine (it stands for {}); otherwise a JSON object of bounded size. */
static int object_ok(const char *s, size_t max)
{
	json_t *v;
	int ok;

	if (s == NULL)
		return 1;
	if (strlen(s) > max)
		return 0;
	v = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
	ok = json_is_object(v);
	json_decref(v);
	return ok;
}

static int message_check(const struct store_message *m, size_t i, char **err)
{
	if (!text_ok(m->id, 64) || !text_ok(m->account, COUNTER_ACCOUNT_MAX))
		return store_fail(err, "message %zu: invalid id or account", i);
	if (!m->from || strlen(m->from) > EVENT_ADDR_MAX || !m->subject ||
	    strlen(m->subject) > EVENT_SUBJECT_MAX)
		return store_fail(err, "message %zu: invalid sender or subject", i);
	if (m->n_tags > EVENT_TAGS_MAX)
		return store_fail(err, "message %zu: more than %d tags", i, EVENT_TAGS_MAX);
	for (size_t k = 0; k < m->n_tags; k++)
		if (!text_ok(m->tags[k], EVENT_TAG_MAX))
			return store_fail(err, "message %zu: invalid tag %zu", i, k);
	if (!object_ok(m->metadata, EVENT_METADATA_MAX))
		return store_fail(err, "message %zu: metadata is not a JSON object", i);
	return 0;
}

static int event_check(const struct store_event *e, size_t i, char **err)
{
	if (event_type_name(e->type) == NULL)
		return store_fail(err, "event %zu: unknown type %d", i, e->type);
	if (!text_ok(e->account, COUNTER_ACCOUNT_MAX))
		return store_fail(err, "event %zu: invalid account", i);
	if ((e->message_id && !text_ok(e->message_id, 64)) ||
	    (e->recipient && !text_ok(e->recipient, EVENT_ADDR_MAX)))
		return store_fail(err, "event %zu: invalid message id or recipient", i);
	if (!detail_ok(e->detail))
		return store_fail(err, "event %zu: detail is not a JSON object", i);
	return 0;
}

static int batch_check(const struct store_event_batch *b, char **err)
{
	if (b->key && !text_ok(b->key, STORE_BATCH_KEY_MAX))
		return store_fail(err, "invalid batch key");
	for (size_t i = 0; i < b->n_messages; i++)
		if (message_check(&b->messages[i], i, err) < 0)
			return -1;
	for (size_t i = 0; i < b->n_events; i++)
		if (event_check(&b->events[i], i, err) < 0)
			return -1;
	return 0;
}

/* ---- addresses and domains ---------------------------------------------------- */

char *store_addr_normal(const char *addr)
{
	char *s = xstrdup(addr), *at = strrchr(s, '@');

	/* The domain part is case-insensitive; the local part is not ours to fold. */
	if (at)
		ascii_lower(at + 1);
	return s;
}

/* The recipient's domain, lower-case, into out ("" when there is none). */
static void addr_domain(const char *addr, char *out, size_t cap)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	snprintf(out, cap, "%s", at ? at + 1 : "");
	ascii_lower(out);
}

/* ---- the counters of a batch ------------------------------------------------------ */

struct tally {
	int64_t bucket;
	char *account, *domain, *tag; /* one allocation, "account\0domain\0tag\0" */
	uint64_t n[EVENT_TYPES];
};

struct tallies {
	struct tally *v;
	size_t n, cap;
};

static void tally_add(struct tallies *t, int64_t bucket, const char *account, const char *domain,
                      const char *tag, int type)
{
	size_t a = strlen(account) + 1, d = strlen(domain) + 1, g = strlen(tag) + 1;
	struct tally *x;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	x = &t->v[t->n++];
	memset(x, 0, sizeof(*x));
	x->bucket = bucket;
	x->account = xmalloc(a + d + g);
	x->domain = x->account + a;
	x->tag = x->domain + d;
	memcpy(x->account, account, a);
	memcpy(x->domain, domain, d);
	memcpy(x->tag, tag, g);
	x->n[type] = 1;
}

static int tally_cmp(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	int c;

	if (x->bucket != y->bucket)
		return x->bucket < y->bucket ? -1 : 1;
	if ((c = strcmp(x->account, y->account)) != 0)
		return c;
	if ((c = strcmp(x->domain, y->domain)) != 0)
		return c;
	return strcmp(x->tag, y->tag);
}

static void tally_free_one(struct tally *x)
{
	free(x->account);
}

/* Sorts and merges equal keys: one UPSERT per distinct key. */
static void tallies_merge(struct tallies *t)
{
	size_t w = 0;

	if (t->n == 0)
		return;
	qsort(t->v, t->n, sizeof(*t->v), tally_cmp);
	for (size_t r = 1; r < t->n; r++) {
		if (tally_cmp(&t->v[w], &t->v[r]) == 0) {
			for (int k = 0; k < EVENT_TYPES; k++)
				t->v[w].n[k] += t->v[r].n[k];
			tally_free_one(&t->v[r]);
		} else {
			t->v[++w] = t->v[r];
		}
	}
	t->n = w + 1;
}

static void tallies_free(struct tallies *t)
{
	for (size_t i = 0; i < t->n; i++)
		tally_free_one(&t->v[i]);
	free(t->v);
}

/* One increment under tag '' and one per tag of the message (a JSON array). */
static void tally_event(struct tallies *t, const struct store_event *e, json_t *tags)
{
	char domain[COUNTER_DOMAIN_MAX + 1];
	int64_t bucket = counter_bucket(e->time_ms / 1000);
	json_t *v;
	size_t i;

	addr_domain(e->recipient, domain, sizeof(domain));
	tally_add(t, bucket, e->account, domain, "", e->type);
	json_array_foreach(tags, i, v) if (json_is_string(v))
	    tally_add(t, bucket, e->account, domain, json_string_value(v), e->type);
}

static const char counter_sql[] =
    "INSERT INTO event_counters (bucket, account, domain, tag, accepted, delivered, deferred,"
    " bounced, suppressed, opened, clicked, complained)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    " ON CONFLICT (bucket, account, domain, tag) DO UPDATE SET"
    " accepted = event_counters.accepted + excluded.accepted,"
    " delivered = event_counters.delivered + excluded.delivered,"
    " deferred = event_counters.deferred + excluded.deferred,"
    " bounced = event_counters.bounced + excluded.bounced,"
    " suppressed = event_counters.suppressed + excluded.suppressed,"
    " opened = event_counters.opened + excluded.opened,"
    " clicked = event_counters.clicked + excluded.clicked,"
    " complained = event_counters.complained + excluded.complained";

static int tallies_write(struct store *st, const struct tallies *t, char **err)
{
	struct db_stmt *stmt = store_prepare(st, counter_sql, err);
	int rc = 0;

	if (!stmt)
		return -1;
	for (size_t i = 0; rc == 0 && i < t->n; i++) {
		const struct tally *x = &t->v[i];

		db_reset(stmt);
		db_bind_int64(stmt, 1, x->bucket);
		db_bind_text(stmt, 2, x->account, -1, DB_STATIC);
		db_bind_text(stmt, 3, x->domain, -1, DB_STATIC);
		db_bind_text(stmt, 4, x->tag, -1, DB_STATIC);
		for (int k = 0; k < EVENT_TYPES; k++)
			db_bind_int64(stmt, 5 + k, (int64_t)x->n[k]);
		if (db_step(stmt) != DB_DONE)
			rc = store_fail_db(st, err, "add event counter");
	}
	db_finalize(stmt);
	return rc;
}

/* ---- messages ---------------------------------------------------------------------- */

static char *tags_json(const char *const *tags, size_t n)
{
	json_t *a = json_array();
	char *s;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(tags[i]));
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

static int insert_tags(struct store *st, const struct store_message *m, char **err)
{
	struct db_stmt *stmt = store_prepare(
	    st, "INSERT INTO message_tags (tag, message_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
	    err);
	int rc = 0;

	if (!stmt)
		return -1;
	for (size_t i = 0; rc == 0 && i < m->n_tags; i++) {
		db_reset(stmt);
		db_bind_text(stmt, 1, m->tags[i], -1, DB_STATIC);
		db_bind_text(stmt, 2, m->id, -1, DB_STATIC);
		if (db_step(stmt) != DB_DONE)
			rc = store_fail_db(st, err, "add message tag");
	}
	db_finalize(stmt);
	return rc;
}

/* ---- multi-row INSERTs ------------------------------------------------------------ */

/*
 * Rows go ROWS_PER_INSERT at a time in one INSERT ... VALUES (...), (...):
 * on PostgreSQL a statement is a round trip, and one per row made events
 * about 15 times slower there than on SQLite. 32 rows of 7 parameters
 * stay within DB_PG_MAX_PARAMS (and SQLite's 32,766).
 */
#define ROWS_PER_INSERT 32
#define ROW_PARAMS      7

/* A multi-row INSERT: "head (row 1), (row 2), ... tail", where row(b, p)
 * writes one row whose parameters start at ?p. The statement of a full
 * chunk is prepared once per batch and kept in `full` (SQLite compiles
 * it once, not per chunk); rows_done() resets it or finalizes another. */
struct rows_sql {
	const char *head, *tail;
	void (*row)(struct buf *b, int p);
	struct db_stmt *full;
};

static struct db_stmt *rows_prepare(struct store *st, struct rows_sql *q, size_t n, char **err)
{
	struct db_stmt *stmt;
	struct buf b;

	if (n == ROWS_PER_INSERT && q->full)
		return q->full;
	buf_init(&b);
	buf_puts(&b, q->head);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_puts(&b, ", ");
		q->row(&b, (int)(i * ROW_PARAMS) + 1);
	}
	buf_puts(&b, q->tail);
	stmt = store_prepare(st, b.data, err);
	buf_free(&b);
	if (n == ROWS_PER_INSERT)
		q->full = stmt;
	return stmt;
}

static void rows_done(struct rows_sql *q, struct db_stmt *stmt)
{
	if (stmt == q->full)
		db_reset(stmt);
	else
		db_finalize(stmt);
}

static void message_row(struct buf *b, int p)
{
	buf_printf(b, "(?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d)", p, p + 1, p + 2, p + 3, p + 4, p + 5,
	           p + 6);
}

static void bind_message(struct db_stmt *stmt, int p, const struct store_message *m)
{
	char *tags = tags_json(m->tags, m->n_tags);

	db_bind_text(stmt, p, m->id, -1, DB_STATIC);
	db_bind_text(stmt, p + 1, m->account, -1, DB_STATIC);
	db_bind_text(stmt, p + 2, m->from, -1, DB_STATIC);
	db_bind_text(stmt, p + 3, m->subject, -1, DB_STATIC);
	db_bind_text(stmt, p + 4, tags, -1, DB_TRANSIENT);
	db_bind_text(stmt, p + 5, m->metadata ? m->metadata : "{}", -1, DB_STATIC);
	db_bind_int64(stmt, p + 6, m->created_ms);
	free(tags);
}

/* The tags of the messages that were new (RETURNING id): a repeat keeps
 * the first one's. The first of m[0..n) with that id, as a repeat within
 * one INSERT is skipped too. */
static int new_message_tags(struct store *st, const struct store_message *m, size_t n,
                            const char *id, char **err)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].id, id) == 0)
			return m[i].n_tags ? insert_tags(st, &m[i], err) : 0;
	return 0;
}

/* Messages m[0..n), n <= ROWS_PER_INSERT, in one statement. */
static int insert_message_rows(struct store *st, struct rows_sql *q, const struct store_message *m,
                               size_t n, char **err)
{
	struct db_stmt *stmt = rows_prepare(st, q, n, err);
	int rc = 0, r;

	if (!stmt)
		return -1;
	for (size_t i = 0; i < n; i++)
		bind_message(stmt, (int)(i * ROW_PARAMS) + 1, &m[i]);
	while (rc == 0 && (r = db_step(stmt)) == DB_ROW) {
		char *id = xstrdup(db_column_text(stmt, 0) ? db_column_text(stmt, 0) : "");

		rc = new_message_tags(st, m, n, id, err);
		free(id);
	}
	if (rc == 0 && r != DB_DONE)
		rc = store_fail_db(st, err, "add message");
	rows_done(q, stmt);
	return rc;
}

static int insert_messages(struct store *st, const struct store_event_batch *b, char **err)
{
	struct rows_sql q = {"INSERT INTO messages (id, account, sender, subject, tags, metadata,"
	                     " created) VALUES ",
	                     " ON CONFLICT (id) DO NOTHING RETURNING id", message_row, NULL};
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < b->n_messages; i += ROWS_PER_INSERT) {
		size_t n =
		    b->n_messages - i < ROWS_PER_INSERT ? b->n_messages - i : ROWS_PER_INSERT;

		rc = insert_message_rows(st, &q, &b->messages[i], n, err);
	}
	db_finalize(q.full);
	return rc;
}

/* ---- events --------------------------------------------------------------------------- */

/* An event waiting for its row in the next multi-row INSERT. */
struct ev_pending {
	const struct store_event *e;
	char *rcpt; /* normalized, owned */
};

/* The statements and state of one batch. */
struct ev_stmts {
	struct db_stmt *same, *update;
	struct rows_sql insert;
	int64_t next_id; /* of the first pending event */
	struct ev_pending pend[ROWS_PER_INSERT];
	size_t n_pend;
	char *last_tags;        /* the tags text last parsed */
	json_t *last_tags_json; /* the same, parsed */
	struct tallies tallies;
	size_t n_new;
};

/* The message's tags are read in the same statement (RETURNING them for
 * the counters): no query per event. */
static void event_row(struct buf *b, int p)
{
	buf_printf(b,
	           "(?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d,"
	           " coalesce((SELECT tags FROM messages WHERE id = ?%d), '[]'))",
	           p, p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 2);
}

static const char same_event_sql[] = "SELECT id, detail FROM events WHERE message_id = ?1"
                                     " AND recipient = ?2 AND type = ?3 ORDER BY id";

static int stmts_open(struct store *st, struct ev_stmts *s, char **err)
{
	struct db_stmt *max = store_prepare(st, "SELECT coalesce(max(id), 0) FROM events", err);

	if (!max)
		return -1;
	if (db_step(max) == DB_ROW)
		s->next_id = db_column_int64(max, 0) + 1;
	db_finalize(max);
	s->insert =
	    (struct rows_sql){"INSERT INTO events (id, account, message_id, recipient, type,"
	                      " time, detail, tags) VALUES ",
	                      " RETURNING id, tags", event_row, NULL};
	s->same = store_prepare(st, same_event_sql, err);
	s->update =
	    s->same ? store_prepare(st, "UPDATE events SET detail = ?2 WHERE id = ?1", err) : NULL;
	return s->update && s->next_id > 0 ? 0 : -1;
}

static void pending_clear(struct ev_stmts *s)
{
	for (size_t i = 0; i < s->n_pend; i++)
		free(s->pend[i].rcpt);
	s->n_pend = 0;
}

static void stmts_close(struct ev_stmts *s)
{
	db_finalize(s->insert.full);
	db_finalize(s->same);
	db_finalize(s->update);
	pending_clear(s);
	free(s->last_tags);
	json_decref(s->last_tags_json);
	tallies_free(&s->tallies);
}

/* The tags (JSON text) parsed, kept for the runs of one message's events. */
static json_t *tags_parsed(struct ev_stmts *s, const char *tags)
{
	if (s->last_tags && strcmp(s->last_tags, tags) == 0)
		return s->last_tags_json;
	free(s->last_tags);
	json_decref(s->last_tags_json);
	s->last_tags = xstrdup(tags);
	s->last_tags_json = json_loads(tags, 0, NULL);
	return s->last_tags_json;
}
/*
 * A repeated open or click: the first event's detail takes the repeat's
 * "last" and one more "count"; "machine" stays true only while every open
 * came from a machine. The writer gives a first event its "first", "last"
 * and "count": 1.
 */
static char *repeat_detail(const char *old, const char *repeat)
{
	json_t *d = json_loads(old, 0, NULL), *r = json_loads(repeat ? repeat : "{}", 0, NULL);
	json_int_t count;
	char *s;

	if (!json_is_object(d)) {
		json_decref(d);
		d = json_object();
	}
	count = json_integer_value(json_object_get(d, "count"));
	json_object_set_new(d, "count", json_integer(count > 0 ? count + 1 : 2));
	if (json_object_get(r, "last"))
		json_object_set(d, "last", json_object_get(r, "last"));
	if (json_is_true(json_object_get(d, "machine")) &&
	    !json_is_true(json_object_get(r, "machine")))
		json_object_set_new(d, "machine", json_false());
	s = json_dumps(d, JSON_COMPACT);
	json_decref(d);
	json_decref(r);
	return s;
}

/* 1 if the detail's "url" is link (clicked), or there is no link (opened). */
static int same_link(const char *detail, const char *link)
{
	json_t *d;
	int same;

	if (!link)
		return 1;
	d = json_loads(detail, 0, NULL);
	same = json_is_string(json_object_get(d, "url")) &&
	       strcmp(json_string_value(json_object_get(d, "url")), link) == 0;
	json_decref(d);
	return same;
}

/* An earlier open or click of the same message, recipient (and link):
 * its detail is updated and 1 returned; 0 when this one is the first. */
static int update_repeat(struct store *st, struct ev_stmts *s, const struct store_event *e,
                         const char *rcpt, char **err)
{
	int found = 0, rc;

	if (!e->message_id || !rcpt)
		return 0;
	db_reset(s->same);
	db_bind_text(s->same, 1, e->message_id, -1, DB_STATIC);
	db_bind_text(s->same, 2, rcpt, -1, DB_STATIC);
	db_bind_text(s->same, 3, type_names[e->type], -1, DB_STATIC);
	while (!found && (rc = db_step(s->same)) == DB_ROW) {
		const char *old = (const char *)db_column_text(s->same, 1);
		char *d;

		if (!old || !same_link(old, e->link))
			continue;
		d = repeat_detail(old, e->detail);
		db_reset(s->update);
		db_bind_int64(s->update, 1, db_column_int64(s->same, 0));
		db_bind_text(s->update, 2, d, -1, DB_TRANSIENT);
		free(d);
		if (db_step(s->update) != DB_DONE)
			return store_fail_db(st, err, "update event");
		found = 1;
	}
	db_reset(s->same);
	return found;
}

static void bind_event(struct db_stmt *stmt, int p, const struct ev_pending *x, int64_t id)
{
	const struct store_event *e = x->e;

	db_bind_int64(stmt, p, id);
	db_bind_text(stmt, p + 1, e->account, -1, DB_STATIC);
	db_bind_text(stmt, p + 2, e->message_id, -1, DB_STATIC);
	db_bind_text(stmt, p + 3, x->rcpt, -1, DB_STATIC);
	db_bind_text(stmt, p + 4, type_names[e->type], -1, DB_STATIC);
	db_bind_int64(stmt, p + 5, e->time_ms);
	db_bind_text(stmt, p + 6, e->detail ? e->detail : "{}", -1, DB_STATIC);
}

/* Writes the pending events in one INSERT, ids next_id, next_id + 1, ...
 * in their order, and counts each (by its id: RETURNING has no order). */
static int flush_events(struct store *st, struct ev_stmts *s, char **err)
{
	struct db_stmt *stmt;
	size_t got = 0;
	int r;

	if (s->n_pend == 0)
		return 0;
	stmt = rows_prepare(st, &s->insert, s->n_pend, err);
	if (!stmt)
		return -1;
	for (size_t i = 0; i < s->n_pend; i++)
		bind_event(stmt, (int)(i * ROW_PARAMS) + 1, &s->pend[i], s->next_id + (int64_t)i);
	while ((r = db_step(stmt)) == DB_ROW) {
		int64_t k = db_column_int64(stmt, 0) - s->next_id;
		const char *tags = db_column_text(stmt, 1);

		if (k < 0 || (size_t)k >= s->n_pend)
			continue;
		tally_event(&s->tallies, s->pend[k].e, tags_parsed(s, tags ? tags : "[]"));
		got++;
	}
	if (r != DB_DONE || got != s->n_pend) {
		if (r == DB_DONE)
			store_fail(err, "add event: %zu rows written of %zu", got, s->n_pend);
		else
			store_fail_db(st, err, "add event");
		rows_done(&s->insert, stmt);
		return -1;
	}
	rows_done(&s->insert, stmt);
	s->next_id += (int64_t)s->n_pend;
	s->n_new += s->n_pend;
	pending_clear(s);
	return 0;
}

static int write_event(struct store *st, struct ev_stmts *s, const struct store_event *e,
                       char **err)
{
	char *rcpt = e->recipient ? store_addr_normal(e->recipient) : NULL;
	int rc = 0;

	/* A repeat is looked for among the rows written so far, this batch's too. */
	if (e->type == EVENT_OPENED || e->type == EVENT_CLICKED) {
		rc = flush_events(st, s, err);
		if (rc == 0)
			rc = update_repeat(st, s, e, rcpt, err);
	}
	if (rc == 0) {
		s->pend[s->n_pend++] = (struct ev_pending){e, rcpt};
		rcpt = NULL;
		if (s->n_pend == ROWS_PER_INSERT)
			rc = flush_events(st, s, err);
	}
	free(rcpt);
	return rc < 0 ? -1 : 0;
}

/* The batch's key recorded: 1, or 0 when it was already there (written
 * before), -1 error. No key: 1. In the caller's transaction. */
int store_batch_key_claim(struct store *st, const char *key, char **err)
{
	struct db_stmt *stmt;
	int r;

	if (!key)
		return 1;
	stmt = store_prepare(st,
	                     "INSERT INTO event_batches (batch_key, created) VALUES (?1, ?2)"
	                     " ON CONFLICT (batch_key) DO NOTHING RETURNING batch_key",
	                     err);
	if (!stmt)
		return -1;
	db_bind_text(stmt, 1, key, -1, DB_STATIC);
	db_bind_int64(stmt, 2, (int64_t)clock_now_ms());
	r = db_step(stmt);
	if (r == DB_ROW && db_step(stmt) != DB_DONE)
		r = DB_ERROR;
	if (r != DB_ROW && r != DB_DONE)
		store_fail_db(st, err, "add batch key");
	db_finalize(stmt);
	return r == DB_ROW ? 1 : r == DB_DONE ? 0 : -1;
}

static int write_locked(struct store *st, const struct store_event_batch *b, size_t *n_new,
                        char **err)
{
	struct ev_stmts s;
	int rc = 0, fresh;

	memset(&s, 0, sizeof(s));
	if (store_tx_serial(st, STORE_SERIAL_EVENTS, err) < 0)
		return -1;
	if ((fresh = store_batch_key_claim(st, b->key, err)) <= 0) {
		store_tx_rollback(st);
		return fresh < 0 ? -1 : STORE_EVENT_WRITTEN_BEFORE;
	}
	if (insert_messages(st, b, err) < 0 || stmts_open(st, &s, err) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i < b->n_events; i++)
		rc = write_event(st, &s, &b->events[i], err);
	if (rc == 0)
		rc = flush_events(st, &s, err);
	if (rc == 0) {
		tallies_merge(&s.tallies);
		rc = tallies_write(st, &s.tallies, err);
	}
	if (n_new)
		*n_new = s.n_new;
	stmts_close(&s);
	if (rc < 0 || store_tx_commit(st, err) < 0)
		return store_tx_rollback(st);
	return 0;
}

int store_events_write(struct store *st, const struct store_event_batch *b, size_t *n_new,
                       char **err)
{
	int rc;

	if (n_new)
		*n_new = 0;
	if (batch_check(b, err) < 0)
		return STORE_EVENT_INVALID;
	if (b->n_messages == 0 && b->n_events == 0)
		return 0;
	pthread_mutex_lock(&st->lock);
	rc = write_locked(st, b, n_new, err);
	pthread_mutex_unlock(&st->lock);
	if (rc < 0 && n_new)
		*n_new = 0;
	return rc;
}

/* ---- retention ------------------------------------------------------------------------- */

/* Each statement deletes at most ?2 of the oldest rows before ?1. */
static const char *const prune_sql[] = {
    "DELETE FROM events WHERE id IN"
    " (SELECT id FROM events WHERE time < ?1 ORDER BY time LIMIT ?2)",
    /* The same messages in both: the order is total. */
    "DELETE FROM message_tags WHERE message_id IN"
    " (SELECT id FROM messages WHERE created < ?1 ORDER BY created, id LIMIT ?2)",
    "DELETE FROM messages WHERE id IN"
    " (SELECT id FROM messages WHERE created < ?1 ORDER BY created, id LIMIT ?2)",
    "DELETE FROM event_counters WHERE (bucket, account, domain, tag) IN"
    " (SELECT bucket, account, domain, tag FROM event_counters WHERE bucket < ?1"
    " ORDER BY bucket LIMIT ?2)",
};

/* One statement, one short transaction of its own (autocommit). */
static int prune_one(struct store *st, const char *sql, int64_t before, size_t limit,
                     size_t *deleted, char **err)
{
	struct db_stmt *stmt = store_prepare(st, sql, err);

	if (!stmt)
		return -1;
	db_bind_int64(stmt, 1, before);
	db_bind_int64(stmt, 2, (int64_t)limit);
	if (store_step_done(st, stmt, "prune", err) < 0)
		return -1;
	*deleted += (size_t)db_changes(st->db);
	return 0;
}

int store_events_prune(struct store *st, int64_t events_before_ms, int64_t counters_before,
                       size_t limit, size_t *deleted, char **err)
{
	int64_t before[] = {events_before_ms, events_before_ms, events_before_ms, counters_before};
	int rc = 0;

	*deleted = 0;
	for (size_t i = 0; rc == 0 && i < ARRAY_LEN(prune_sql); i++) {
		pthread_mutex_lock(&st->lock);
		rc = prune_one(st, prune_sql[i], before[i], limit, deleted, err);
		pthread_mutex_unlock(&st->lock);
	}
	return rc;
}

int store_events_prune_keys(struct store *st, int64_t before_ms, size_t limit, size_t *deleted,
                            char **err)
{
	int rc;

	*deleted = 0;
	pthread_mutex_lock(&st->lock);
	rc = prune_one(st,
	               "DELETE FROM event_batches WHERE batch_key IN (SELECT batch_key"
	               " FROM event_batches WHERE created < ?1 ORDER BY created LIMIT ?2)",
	               before_ms, limit, deleted, err);
	pthread_mutex_unlock(&st->lock);
	return rc;
}
