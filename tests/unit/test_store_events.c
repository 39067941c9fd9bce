/*
 * Unit tests for store/store_events, store_events_query and
 * store_webhooks: a batch written in one transaction (all or nothing),
 * ids in write order, tags from the message, opens and clicks kept once,
 * the counters, every filter of the queries and their cursors, stats by
 * hour, day, domain and tag, bounded pruning, and the webhooks' scope and
 * delivery state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store_fixture.h"

#define H  3600000LL         /* an hour in ms */
#define T0 (1767225600000LL) /* 2026-01-01T00:00:00Z */

static int setup(void **state)
{
	struct fixture *f = fixture_new("events");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* ---- helpers --------------------------------------------------------------------- */

static void write_ok(struct store *st, const struct store_message *m, size_t n_m,
                     const struct store_event *e, size_t n_e)
{
	struct store_event_batch b = {m, n_m, e, n_e, NULL};
	char *err = NULL;

	if (store_events_write(st, &b, NULL, &err) != 0)
		fail_msg("store_events_write: %s", err);
}

static struct store_event ev(int type, const char *msg, const char *rcpt, int64_t t)
{
	struct store_event e;

	memset(&e, 0, sizeof(e));
	e.type = type;
	e.account = "shop";
	e.message_id = msg;
	e.recipient = rcpt;
	e.time_ms = t;
	return e;
}

/* Events flattened to "id type recipient tags;" */
static void flat_event(void *arg, const struct store_event_row *e)
{
	buf_printf(arg, "%lld %s %s %s;", (long long)e->id, event_type_name(e->type),
	           e->recipient ? e->recipient : "-", e->tags);
}

static char *events(struct store *st, const struct store_event_filter *f)
{
	struct buf b;
	char *err = NULL;

	buf_init(&b);
	buf_puts(&b, "");
	if (store_events_query(st, f, flat_event, &b, &err) != 0)
		fail_msg("store_events_query: %s", err);
	return b.data;
}

#define assert_events(st, f, want)                                                                 \
	do {                                                                                       \
		char *got_ = events(st, f);                                                        \
		assert_string_equal(got_, want);                                                   \
		free(got_);                                                                        \
	} while (0)

/* Two messages of account shop, tagged, with their accepted events. */
static void two_messages(struct store *st)
{
	const char *tags1[] = {"news", "jan"}, *tags2[] = {"receipt"};
	struct store_message m[] = {
	    {"MSG1", "shop", "a@shop.example", "Hello", tags1, 2, "{\"k\":1}", T0},
	    {"MSG2", "shop", "a@shop.example", "Receipt", tags2, 1, NULL, T0 + 1000},
	};
	struct store_event e[] = {
	    ev(EVENT_ACCEPTED, "MSG1", "x@One.Example", T0),
	    ev(EVENT_ACCEPTED, "MSG1", "y@two.example", T0),
	    ev(EVENT_ACCEPTED, "MSG2", "x@one.example", T0 + 1000),
	};

	write_ok(st, m, 2, e, 3);
}

/* ---- writing --------------------------------------------------------------------- */

static void test_write_ids_tags_and_domains(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event_filter all = {.limit = 100};

	two_messages(st);
	/* Ids in order; the recipient's domain is lower-cased, the local part kept. */
	assert_events(st, &all,
	              "1 accepted x@one.example [\"news\",\"jan\"];"
	              "2 accepted y@two.example [\"news\",\"jan\"];"
	              "3 accepted x@one.example [\"receipt\"];");
	/* A later batch goes on from the highest id; an unknown message has no tags. */
	{
		struct store_event e = ev(EVENT_DELIVERED, "NOPE", "z@three.example", T0 + 2000);
		write_ok(st, NULL, 0, &e, 1);
	}
	assert_int_equal(raw_int(f, "SELECT max(id) FROM events"), 4);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE id = 4 AND tags = '[]'"), 1);
	/* A message written twice keeps the first row and tags. */
	{
		const char *tags[] = {"other"};
		struct store_message m = {"MSG1", "shop", "b@x", "Again", tags, 1, NULL, T0};
		write_ok(st, &m, 1, NULL, 0);
	}
	assert_int_equal(raw_int(f, "SELECT count(*) FROM messages WHERE subject = 'Hello'"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM message_tags WHERE tag = 'other'"), 0);
	store_close(st);
}

static void test_invalid_batch_writes_nothing(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event e[2] = {ev(EVENT_ACCEPTED, "M", "a@b.c", T0),
	                           ev(EVENT_DELIVERED, "M", "a@b.c", T0)};
	struct store_event_batch b = {NULL, 0, e, 2, NULL};
	const char *bad_tags[] = {""};
	struct store_message m = {"M", "shop", "", "", bad_tags, 1, NULL, T0};
	char *err = NULL;

	e[1].detail = "[1]";
	assert_int_equal(store_events_write(st, &b, NULL, &err), STORE_EVENT_INVALID);
	assert_non_null(strstr(err, "event 1: detail"));
	free(err);
	e[1].detail = NULL;
	e[1].type = EVENT_TYPES;
	assert_int_equal(store_events_write(st, &b, NULL, &err), STORE_EVENT_INVALID);
	free(err);
	e[1].type = EVENT_DELIVERED;
	e[1].account = "";
	assert_int_equal(store_events_write(st, &b, NULL, &err), STORE_EVENT_INVALID);
	free(err);
	b = (struct store_event_batch){&m, 1, NULL, 0, NULL};
	assert_int_equal(store_events_write(st, &b, NULL, &err), STORE_EVENT_INVALID);
	free(err);
	m.n_tags = 0;
	m.metadata = "{\"a\":1,\"a\":2}";
	assert_int_equal(store_events_write(st, &b, NULL, &err), STORE_EVENT_INVALID);
	free(err);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM messages"), 0);
	store_close(st);
}

static void test_opens_and_clicks_once(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event e[5] = {
	    ev(EVENT_OPENED, "M1", "a@x.example", T0),
	    ev(EVENT_OPENED, "M1", "a@x.example", T0 + 5000),
	    ev(EVENT_CLICKED, "M1", "a@x.example", T0 + 6000),
	    ev(EVENT_CLICKED, "M1", "a@x.example", T0 + 7000),
	    ev(EVENT_CLICKED, "M1", "a@x.example", T0 + 8000),
	};
	size_t n_new;
	char *err = NULL;
	struct store_event_batch b = {NULL, 0, e, 5, NULL};

	e[0].detail = "{\"first\":\"A\",\"last\":\"A\",\"count\":1,\"machine\":true}";
	e[1].detail = "{\"first\":\"B\",\"last\":\"B\",\"count\":1,\"machine\":false}";
	e[2].detail = "{\"url\":\"https://a/\",\"count\":1,\"last\":\"C\"}";
	e[2].link = "https://a/";
	e[3].detail = "{\"url\":\"https://b/\",\"count\":1,\"last\":\"D\"}";
	e[3].link = "https://b/";
	e[4].detail = "{\"url\":\"https://a/\",\"count\":1,\"last\":\"E\"}";
	e[4].link = "https://a/";
	assert_int_equal(store_events_write(st, &b, &n_new, &err), 0);
	assert_int_equal(n_new, 3);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), 3);
	assert_int_equal(
	    raw_int(f, "SELECT count(*) FROM events WHERE type = 'opened' AND detail ="
	               " '{\"first\":\"A\",\"last\":\"B\",\"count\":2,\"machine\":false}'"),
	    1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE detail ="
	                            " '{\"url\":\"https://a/\",\"count\":2,\"last\":\"E\"}'"),
	                 1);
	/* Counted once each: unique opens and clicks per link. */
	assert_int_equal(raw_int(f, "SELECT opened FROM event_counters WHERE tag = ''"), 1);
	assert_int_equal(raw_int(f, "SELECT clicked FROM event_counters WHERE tag = ''"), 2);
	store_close(st);
}

/* Batches longer than one multi-row INSERT (32 rows): every row, ids in
 * batch order across the chunks, each event with its message's tags (in
 * the batch or not), a repeat open in the middle found among the rows the
 * batch wrote before it, a message twice in one batch kept once. */
static void test_long_batches(void **state)
{
	enum { N_MSG = 40, N_EV = 70 };
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	const char *t[] = {"t"}, *dup[] = {"dup"}, *bc[] = {"b", "c"};
	struct store_message m[N_MSG + 1];
	struct store_event e[N_EV + 2];
	char ids[N_MSG][16], rcpts[N_EV][32];
	size_t n_new, k = 0;
	char *err = NULL;

	for (int i = 0; i < N_MSG; i++) {
		snprintf(ids[i], sizeof ids[i], "M%d", i);
		m[i] = (struct store_message){ids[i],
		                              "shop",
		                              "a@shop.example",
		                              "S",
		                              i == 2 ? bc : t,
		                              i == 2 ? 2 : (size_t)(i % 2),
		                              NULL,
		                              T0};
	}
	m[N_MSG] = (struct store_message){"M1", "shop", "a@x", "Again", dup, 1, NULL, T0};
	for (int i = 0; i < N_EV; i++) {
		snprintf(rcpts[i], sizeof rcpts[i], "r%d@d.example", i);
		if (i == 40) {
			e[k++] = ev(EVENT_OPENED, "M2", "r2@d.example", T0);
			e[k++] = ev(EVENT_OPENED, "M2", "r2@d.example", T0 + 1000);
		}
		e[k++] = ev(EVENT_ACCEPTED, i < 60 ? ids[i % 3] : "OLD", rcpts[i], T0);
	}
	assert_int_equal(store_events_write(st,
	                                    &(struct store_event_batch){m, N_MSG + 1, e, k, NULL},
	                                    &n_new, &err),
	                 0);
	assert_int_equal(n_new, N_EV + 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM messages"), N_MSG);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM message_tags WHERE tag = 't'"),
	                 N_MSG / 2);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM message_tags WHERE tag = 'dup'"), 0);
	assert_int_equal(raw_int(f, "SELECT min(id) FROM events"), 1);
	assert_int_equal(raw_int(f, "SELECT max(id) FROM events"), N_EV + 1);
	/* ids follow the batch: r39 is 40, the open 41, r40 42, r69 71 */
	assert_int_equal(raw_int(f, "SELECT id FROM events WHERE recipient = 'r39@d.example'"), 40);
	assert_int_equal(raw_int(f, "SELECT id FROM events WHERE type = 'opened'"), 41);
	assert_int_equal(raw_int(f, "SELECT id FROM events WHERE recipient = 'r40@d.example'"), 42);
	assert_int_equal(raw_int(f, "SELECT id FROM events WHERE recipient = 'r69@d.example'"), 71);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE type = 'opened'"
	                            " AND detail LIKE '%\"count\":2%'"),
	                 1);
	/* Tags: M1 has "t" (its repeat's "dup" is not kept), M0 none, M2 b and c, OLD unknown. */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE tags = '[\"t\"]'"), 20);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE tags = '[\"b\",\"c\"]'"),
	                 21);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE tags = '[]'"), 30);
	assert_int_equal(raw_int(f, "SELECT sum(accepted) FROM event_counters WHERE tag = ''"),
	                 N_EV);
	assert_int_equal(raw_int(f, "SELECT sum(accepted) FROM event_counters WHERE tag = 't'"),
	                 20);
	assert_int_equal(raw_int(f, "SELECT sum(opened) FROM event_counters WHERE tag = 'c'"), 1);
	store_close(st);
}

/* ---- querying --------------------------------------------------------------------- */

static void test_event_filters(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event more[] = {
	    ev(EVENT_DELIVERED, "MSG1", "x@one.example", T0 + 3000),
	    ev(EVENT_BOUNCED, "MSG1", "y@two.example", T0 + 4000),
	};
	struct store_event_filter q;

	two_messages(st);
	more[1].account = "other";
	write_ok(st, NULL, 0, more, 2);
	q = (struct store_event_filter){.limit = 100, .account = "shop"};
	assert_events(st, &q,
	              "1 accepted x@one.example [\"news\",\"jan\"];"
	              "2 accepted y@two.example [\"news\",\"jan\"];"
	              "3 accepted x@one.example [\"receipt\"];"
	              "4 delivered x@one.example [\"news\",\"jan\"];");
	q = (struct store_event_filter){.limit = 100, .types = 1u << EVENT_BOUNCED};
	assert_events(st, &q, "5 bounced y@two.example [\"news\",\"jan\"];");
	q = (struct store_event_filter){.limit = 100,
	                                .types = (1u << EVENT_DELIVERED) | (1u << EVENT_BOUNCED)};
	assert_events(st, &q,
	              "4 delivered x@one.example [\"news\",\"jan\"];"
	              "5 bounced y@two.example [\"news\",\"jan\"];");
	q = (struct store_event_filter){.limit = 100, .recipient = "x@ONE.example"};
	assert_events(st, &q,
	              "1 accepted x@one.example [\"news\",\"jan\"];"
	              "3 accepted x@one.example [\"receipt\"];"
	              "4 delivered x@one.example [\"news\",\"jan\"];");
	q = (struct store_event_filter){.limit = 100, .recipient = "X@one.example"};
	assert_events(st, &q, "");
	q = (struct store_event_filter){.limit = 100, .message_id = "MSG2"};
	assert_events(st, &q, "3 accepted x@one.example [\"receipt\"];");
	q = (struct store_event_filter){.limit = 100, .tag = "receipt"};
	assert_events(st, &q, "3 accepted x@one.example [\"receipt\"];");
	q = (struct store_event_filter){.limit = 100, .since_ms = T0 + 1000, .until_ms = T0 + 4000};
	assert_events(st, &q,
	              "3 accepted x@one.example [\"receipt\"];"
	              "4 delivered x@one.example [\"news\",\"jan\"];");
	store_close(st);
}

static void test_event_cursor_and_order(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event_filter q = {.limit = 2};
	struct store_event e = ev(EVENT_DEFERRED, "MSG2", "x@one.example", T0 + 9000);

	two_messages(st);
	assert_events(st, &q,
	              "1 accepted x@one.example [\"news\",\"jan\"];"
	              "2 accepted y@two.example [\"news\",\"jan\"];");
	q.after = 2;
	assert_events(st, &q, "3 accepted x@one.example [\"receipt\"];");
	/* New events after the cursor come on the next page, none is repeated. */
	write_ok(st, NULL, 0, &e, 1);
	q.after = 3;
	assert_events(st, &q, "4 deferred x@one.example [\"receipt\"];");
	q = (struct store_event_filter){.limit = 2, .desc = 1};
	assert_events(st, &q,
	              "4 deferred x@one.example [\"receipt\"];"
	              "3 accepted x@one.example [\"receipt\"];");
	q.after = 3;
	assert_events(st, &q,
	              "2 accepted y@two.example [\"news\",\"jan\"];"
	              "1 accepted x@one.example [\"news\",\"jan\"];");
	store_close(st);
}

static void flat_message(void *arg, const struct store_message_row *m)
{
	buf_printf(arg, "%s %s %s %s;", m->id, m->account, m->subject, m->tags);
}

static char *messages(struct store *st, const struct store_message_filter *f)
{
	struct buf b;
	char *err = NULL;

	buf_init(&b);
	buf_puts(&b, "");
	if (store_messages_query(st, f, flat_message, &b, &err) != 0)
		fail_msg("store_messages_query: %s", err);
	return b.data;
}

#define assert_messages(st, f, want)                                                               \
	do {                                                                                       \
		char *got_ = messages(st, f);                                                      \
		assert_string_equal(got_, want);                                                   \
		free(got_);                                                                        \
	} while (0)

static void test_messages(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_message_row m;
	struct store_message_filter q;
	char *err = NULL;

	two_messages(st);
	assert_int_equal(store_message_get(st, "shop", "MSG1", &m, &err), 1);
	assert_string_equal(m.from, "a@shop.example");
	assert_string_equal(m.metadata, "{\"k\":1}");
	assert_string_equal(m.tags, "[\"news\",\"jan\"]");
	assert_true(m.created_ms == T0);
	store_message_row_free(&m);
	assert_int_equal(store_message_get(st, NULL, "MSG2", &m, &err), 1);
	assert_string_equal(m.metadata, "{}");
	store_message_row_free(&m);
	/* Another account's message is not found. */
	assert_int_equal(store_message_get(st, "other", "MSG1", &m, &err), 0);
	assert_int_equal(store_message_get(st, NULL, "NOPE", &m, &err), 0);
	q = (struct store_message_filter){.limit = 10, .recipient = "y@TWO.example"};
	assert_messages(st, &q, "MSG1 shop Hello [\"news\",\"jan\"];");
	q = (struct store_message_filter){.limit = 10, .tag = "receipt"};
	assert_messages(st, &q, "MSG2 shop Receipt [\"receipt\"];");
	q = (struct store_message_filter){.limit = 1};
	assert_messages(st, &q, "MSG1 shop Hello [\"news\",\"jan\"];");
	q.after = "MSG1";
	assert_messages(st, &q, "MSG2 shop Receipt [\"receipt\"];");
	q = (struct store_message_filter){.limit = 10, .desc = 1, .since_ms = T0};
	assert_messages(st, &q,
	                "MSG2 shop Receipt [\"receipt\"];MSG1 shop Hello [\"news\",\"jan\"];");
	q = (struct store_message_filter){.limit = 10, .until_ms = T0 + 1000};
	assert_messages(st, &q, "MSG1 shop Hello [\"news\",\"jan\"];");
	q = (struct store_message_filter){.limit = 10, .account = "other"};
	assert_messages(st, &q, "");
	store_close(st);
}

/* ---- stats -------------------------------------------------------------------------- */

static void flat_stats(void *arg, const struct store_stats_row *r)
{
	buf_printf(arg, "%lld %s", (long long)r->start, r->key ? r->key : "-");
	for (int k = 0; k < EVENT_TYPES; k++)
		buf_printf(arg, " %llu", (unsigned long long)r->n[k]);
	buf_puts(arg, ";");
}

static char *stats(struct store *st, const char *account, int64_t from, int64_t to,
                   enum store_stats_group g)
{
	struct buf b;
	char *err = NULL;

	buf_init(&b);
	buf_puts(&b, "");
	if (store_event_stats(st, account, from, to, g, flat_stats, &b, &err) != 0)
		fail_msg("store_event_stats: %s", err);
	return b.data;
}

#define assert_stats(st, a, from, to, g, want)                                                     \
	do {                                                                                       \
		char *got_ = stats(st, a, from, to, g);                                            \
		assert_string_equal(got_, want);                                                   \
		free(got_);                                                                        \
	} while (0)

static void test_stats(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event e[] = {
	    ev(EVENT_DELIVERED, "MSG1", "x@one.example", T0 + 30 * 60000),
	    ev(EVENT_BOUNCED, "MSG1", "y@two.example", T0 + H),
	    ev(EVENT_DELIVERED, "MSG2", "x@one.example", T0 + 25 * H),
	    ev(EVENT_COMPLAINED, "MSG2", "x@one.example", T0 + 25 * H),
	};
	int64_t t0 = T0 / 1000;

	two_messages(st);
	e[3].account = "other";
	write_ok(st, NULL, 0, e, 4);
	assert_stats(st, "shop", 0, 0, STATS_BY_HOUR,
	             "1767225600 - 3 1 0 0 0 0 0 0;1767229200 - 0 0 0 1 0 0 0 0;"
	             "1767315600 - 0 1 0 0 0 0 0 0;");
	assert_stats(st, NULL, 0, 0, STATS_BY_DAY,
	             "1767225600 - 3 1 0 1 0 0 0 0;1767312000 - 0 1 0 0 0 0 0 1;");
	assert_stats(st, NULL, 0, 0, STATS_BY_DOMAIN,
	             "0 one.example 2 2 0 0 0 0 0 1;0 two.example 1 0 0 1 0 0 0 0;");
	/* Each tag counts its messages' events; untagged events are in no tag. */
	assert_stats(st, "shop", 0, 0, STATS_BY_TAG,
	             "0 jan 2 1 0 1 0 0 0 0;0 news 2 1 0 1 0 0 0 0;0 receipt 1 1 0 0 0 0 0 0;");
	/* from/to: the hours that overlap [from, to). */
	assert_stats(st, "shop", t0 + 1800, t0 + 3600, STATS_BY_HOUR,
	             "1767225600 - 3 1 0 0 0 0 0 0;");
	assert_stats(st, "shop", t0 + 3600, 0, STATS_BY_HOUR,
	             "1767229200 - 0 0 0 1 0 0 0 0;1767315600 - 0 1 0 0 0 0 0 0;");
	assert_stats(st, "nobody", 0, 0, STATS_BY_DAY, "");
	store_close(st);
}

/* ---- retention ------------------------------------------------------------------------- */

static void test_prune_is_bounded(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event e[5];
	const char *tags[] = {"t"};
	struct store_message m[3] = {{"OLD1", "shop", "", "", tags, 1, NULL, T0},
	                             {"OLD2", "shop", "", "", tags, 1, NULL, T0 + 1},
	                             {"NEW1", "shop", "", "", tags, 1, NULL, T0 + 10 * H}};
	size_t deleted;
	char *err = NULL;

	for (int i = 0; i < 5; i++)
		e[i] = ev(EVENT_ACCEPTED, i < 3 ? "OLD1" : "NEW1", "a@x.example", T0 + i * 4 * H);
	write_ok(st, m, 3, e, 5);
	/* Events before T0 + 9h: 3 of them; at most 2 per call and table. */
	assert_int_equal(store_events_prune(st, T0 + 9 * H, 0, 2, &deleted, &err), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), 3);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM messages"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM message_tags"), 1);
	assert_int_equal(deleted, 2 + 2 + 2);
	assert_int_equal(store_events_prune(st, T0 + 9 * H, 0, 2, &deleted, &err), 0);
	assert_int_equal(deleted, 1);
	assert_int_equal(store_events_prune(st, T0 + 9 * H, 0, 2, &deleted, &err), 0);
	assert_int_equal(deleted, 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), 2);
	/* Counters go by their own bound (hour buckets, seconds). */
	/* 5 hours, each under tag '' and tag t. */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_counters"), 10);
	assert_int_equal(store_events_prune(st, 0, T0 / 1000 + 5 * 3600, 100, &deleted, &err), 0);
	assert_int_equal(deleted, 4);
	assert_int_equal(raw_int(f, "SELECT min(bucket) FROM event_counters"),
	                 T0 / 1000 + 8 * 3600);
	store_close(st);
}

/* ---- webhooks --------------------------------------------------------------------------- */

static int64_t make_hook(struct store *st, const char *account, const char *url)
{
	struct store_webhook w;
	int64_t id = 0;
	char *err = NULL;

	memset(&w, 0, sizeof(w));
	snprintf(w.account, sizeof(w.account), "%s", account);
	w.url = (char *)url;
	w.secret = (char *)"0123456789abcdef";
	w.description = (char *)"d";
	w.types = (1u << EVENT_BOUNCED);
	if (store_webhook_create(st, &w, &id, &err) != 0)
		fail_msg("create: %s", err);
	return id;
}

static void count_hook(void *arg, const struct store_webhook *w)
{
	buf_printf(arg, "%lld %s;", (long long)w->id, w->account);
}

static void test_webhooks_scope(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_webhook w;
	struct buf b;
	char *err = NULL;

	assert_int_equal(store_user_add(st, "shop", NULL, NULL, 0, &err), 0);
	two_messages(st);
	assert_int_equal(make_hook(st, "shop", "https://a.example/h"), 1);
	assert_int_equal(make_hook(st, "default", "https://b.example/h"), 2);
	/* A new webhook starts after the last event: no history. */
	assert_int_equal(store_webhook_get(st, "shop", 1, &w, &err), 0);
	assert_true(w.last_event_id == 3);
	assert_string_equal(w.url, "https://a.example/h");
	assert_int_equal(w.types, 1u << EVENT_BOUNCED);
	store_webhook_clear(&w);
	assert_int_equal(store_webhook_get(st, "shop", 2, &w, &err), STORE_NOT_FOUND);
	free(err);
	err = NULL;
	buf_init(&b);
	buf_puts(&b, "");
	assert_int_equal(store_webhook_list(st, "shop", count_hook, &b, &err), 0);
	assert_string_equal(b.data, "1 shop;");
	buf_reset(&b);
	assert_int_equal(store_webhook_list(st, NULL, count_hook, &b, &err), 0);
	assert_string_equal(b.data, "1 shop;2 default;");
	buf_free(&b);
	assert_int_equal(store_webhook_update(st, "default", 1, "https://c/", NULL, NULL, 0, &err),
	                 STORE_NOT_FOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_webhook_delete(st, "default", 1, &err), STORE_NOT_FOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_webhook_delete(st, NULL, 1, &err), 0);
	assert_int_equal(store_webhook_get(st, NULL, 1, &w, &err), STORE_NOT_FOUND);
	free(err);
	err = NULL;
	/* Unknown account. */
	assert_int_equal(make_hook(st, "default", "https://d/"), 3);
	memset(&w, 0, sizeof(w));
	snprintf(w.account, sizeof(w.account), "ghost");
	w.url = (char *)"https://x/";
	w.secret = (char *)"s";
	{
		int64_t id;
		assert_int_equal(store_webhook_create(st, &w, &id, &err), -1);
		assert_non_null(strstr(err, "no such account"));
		free(err);
	}
	store_close(st);
}

static void add_failure(void *arg, const struct store_webhook_failure *fl)
{
	buf_printf(arg, "%lld:%d:%s:%d;", (long long)fl->time_ms, fl->status, fl->error,
	           fl->dropped);
}

static void test_webhook_delivery_state(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_webhook w;
	struct store_webhook_failure fl = {0, 1, 2, 500, "HTTP 500", 0};
	struct buf b;
	char *err = NULL;
	int64_t id = make_hook(st, "default", "https://a.example/h");

	for (int i = 0; i < WEBHOOK_FAILURES_KEPT + 3; i++) {
		fl.time_ms = 1000 + i;
		assert_int_equal(store_webhook_failed(st, id, &fl, i + 1, 1000, 5000 + i, &err), 0);
	}
	assert_int_equal(store_webhook_get(st, NULL, id, &w, &err), 0);
	assert_true(w.failures == WEBHOOK_FAILURES_KEPT + 3 && w.first_failure_ms == 1000);
	assert_true(w.next_attempt_ms == 5000 + WEBHOOK_FAILURES_KEPT + 2 && w.last_event_id == 0);
	store_webhook_clear(&w);
	buf_init(&b);
	buf_puts(&b, "");
	assert_int_equal(store_webhook_failures(st, id, add_failure, &b, &err), 0);
	assert_non_null(strstr(b.data, "1022:500:HTTP 500:0;1021:"));
	assert_null(strstr(b.data, "1002:"));
	assert_int_equal(raw_int(f, "SELECT count(*) FROM webhook_failures"),
	                 WEBHOOK_FAILURES_KEPT);
	buf_free(&b);
	/* A drop moves the cursor past the batch; the run goes on. */
	fl.dropped = 1;
	fl.last_event = 7;
	assert_int_equal(store_webhook_failed(st, id, &fl, 30, 1000, 9000, &err), 0);
	assert_int_equal(store_webhook_get(st, NULL, id, &w, &err), 0);
	assert_true(w.last_event_id == 7 && w.failures == 30);
	store_webhook_clear(&w);
	/* Delivered: the cursor moves (never back) and the run ends. */
	assert_int_equal(store_webhook_delivered(st, id, 9, &err), 0);
	assert_int_equal(store_webhook_delivered(st, id, 8, &err), 0);
	assert_int_equal(store_webhook_get(st, NULL, id, &w, &err), 0);
	assert_true(w.last_event_id == 9 && w.failures == 0 && w.next_attempt_ms == 0);
	store_webhook_clear(&w);
	/* A new URL is tried at once. */
	assert_int_equal(store_webhook_failed(st, id, &fl, 3, 1000, 9000, &err), 0);
	assert_int_equal(store_webhook_update(st, NULL, id, NULL, NULL, "x", 0, &err), 0);
	assert_int_equal(store_webhook_get(st, NULL, id, &w, &err), 0);
	assert_true(w.failures == 3);
	store_webhook_clear(&w);
	assert_int_equal(
	    store_webhook_update(st, NULL, id, "https://b/", NULL, NULL, 1u << EVENT_OPENED, &err),
	    0);
	assert_int_equal(store_webhook_get(st, NULL, id, &w, &err), 0);
	assert_true(w.failures == 0 && w.next_attempt_ms == 0 && w.types == 1u << EVENT_OPENED);
	assert_string_equal(w.url, "https://b/");
	assert_string_equal(w.description, "x");
	store_webhook_clear(&w);
	/* Deleting takes its failures along. */
	assert_int_equal(store_webhook_delete(st, NULL, id, &err), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM webhook_failures"), 0);
	store_close(st);
}

/* One node at a time holds a webhook; its claim is renewed by it, taken by
 * another only once it has run out, and reads the cursor another moved. */
static void test_webhook_claims(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_webhook w;
	char *err = NULL;
	int64_t id = make_hook(st, "default", "https://a.example/h");

	memset(&w, 0, sizeof(w));
	assert_int_equal(store_webhook_claim(st, id, "NODEA", 1000, 5000, &w, &err), 1);
	assert_true(w.last_event_id == 0 && w.failures == 0);
	assert_int_equal(store_webhook_claim(st, id, "NODEB", 4999, 9000, &w, &err), 0);
	assert_int_equal(store_webhook_claim(st, id, "NODEA", 4000, 8000, &w, &err), 1);
	assert_int_equal(store_webhook_claim(st, id, "NODEB", 7999, 12000, &w, &err), 0);
	assert_int_equal(store_webhook_delivered(st, id, 42, &err), 0);
	assert_int_equal(
	    store_webhook_failed(st, id,
	                         &(struct store_webhook_failure){8000, 43, 44, 500, "HTTP 500", 0},
	                         1, 8000, 9500, &err),
	    0);
	/* A's claim ran out: B takes it, with the state A left. */
	assert_int_equal(store_webhook_claim(st, id, "NODEB", 8000, 12000, &w, &err), 1);
	assert_true(w.last_event_id == 42 && w.failures == 1 && w.first_failure_ms == 8000 &&
	            w.next_attempt_ms == 9500);
	assert_int_equal(store_webhook_claim(st, id, "NODEA", 11000, 15000, &w, &err), 0);
	assert_int_equal(raw_int(f, "SELECT claimed_until FROM webhooks"), 12000);
	/* A webhook that is gone is nobody's. */
	assert_int_equal(store_webhook_claim(st, id + 1, "NODEA", 1, 2, &w, &err), 0);
	store_close(st);
}

static void test_expired(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	int64_t last, n;
	char *err = NULL;

	two_messages(st);
	assert_int_equal(store_events_expired(st, "shop", 0, 0, T0 + 1000, &last, &n, &err), 0);
	assert_true(last == 2 && n == 2);
	assert_int_equal(store_events_expired(st, "shop", 0, 1, T0 + 1000, &last, &n, &err), 0);
	assert_true(last == 2 && n == 1);
	assert_int_equal(
	    store_events_expired(st, "shop", 1u << EVENT_BOUNCED, 0, T0 + 5000, &last, &n, &err),
	    0);
	assert_true(last == 0 && n == 0);
	assert_int_equal(store_events_last_id(st, &last, &err), 0);
	assert_true(last == 3);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_write_ids_tags_and_domains),
	    T(test_invalid_batch_writes_nothing),
	    T(test_opens_and_clicks_once),
	    T(test_long_batches),
	    T(test_event_filters),
	    T(test_event_cursor_and_order),
	    T(test_messages),
	    T(test_stats),
	    T(test_prune_is_bounded),
	    T(test_webhooks_scope),
	    T(test_webhook_delivery_state),
	    T(test_webhook_claims),
	    T(test_expired),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
