/*
 * Unit tests for events (the queue and its writer) and events_rec (the
 * queue's record format): records round-trip and are cut at UTF-8
 * boundaries; the writer writes in batches (nothing before the interval
 * or the batch size, at most batch_max per transaction), on a timer, on
 * flush and at free; a full queue refuses and counts; accepted messages
 * carry their tags and metadata; details are valid JSON whatever the peer
 * sent; retention prunes in the background.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "events/events.h"
#include "events/events_int.h"
#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("evw");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static struct events_event delivered(const char *rcpt)
{
	struct events_event e;

	memset(&e, 0, sizeof(e));
	e.type = EVENT_DELIVERED;
	e.account = "default";
	e.message_id = "0123456789ABCDEF";
	e.recipient = rcpt;
	e.mx = "mx.example.net[192.0.2.1]";
	e.reply = "250 2.0.0 Ok: queued as X";
	e.status = "2.0.0";
	e.attempt = 1;
	return e;
}

/* ---- records --------------------------------------------------------------------- */

static void test_record_round_trip(void **state)
{
	struct evrec r, a, b;
	struct buf q;
	size_t off = 0;
	char long_subject[EVENT_SUBJECT_MAX + 10];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.kind = EVREC_EVENT;
	r.type = EVENT_BOUNCED;
	r.num = 3;
	r.time_ms = 1767225600123LL;
	evrec_set(&r, RS_ACCOUNT, "shop");
	evrec_set(&r, RS_RECIPIENT, "a@b.example");
	evrec_set(&r, RS_REPLY, "");
	buf_init(&q);
	evrec_append(&q, &r);
	/* A message whose subject is cut inside a two-byte character. */
	memset(long_subject, 'x', sizeof(long_subject));
	long_subject[EVENT_SUBJECT_MAX - 1] = '\xc3';
	long_subject[EVENT_SUBJECT_MAX] = '\xa9';
	long_subject[sizeof(long_subject) - 1] = '\0';
	memset(&b, 0, sizeof(b));
	b.kind = EVREC_MESSAGE;
	b.num = 2;
	evrec_set(&b, RM_ID, "ID");
	evrec_set(&b, RM_SUBJECT, long_subject);
	evrec_set_n(&b, RM_TAGS, "t1\0t2", 6);
	evrec_append(&q, &b);
	assert_int_equal(q.len % 8, 0);
	assert_int_equal(evrec_read(q.data, q.len, &off, &a), 0);
	assert_int_equal(a.kind, EVREC_EVENT);
	assert_int_equal(a.type, EVENT_BOUNCED);
	assert_int_equal(a.num, 3);
	assert_true(a.time_ms == 1767225600123LL);
	assert_string_equal(a.s[RS_ACCOUNT], "shop");
	assert_string_equal(a.s[RS_RECIPIENT], "a@b.example");
	assert_string_equal(a.s[RS_REPLY], "");
	assert_null(a.s[RS_MX]);
	assert_int_equal(evrec_read(q.data, q.len, &off, &a), 0);
	assert_int_equal(a.len[RM_SUBJECT], EVENT_SUBJECT_MAX - 1);
	assert_int_equal(a.len[RM_TAGS], 6);
	assert_string_equal(a.s[RM_TAGS] + 3, "t2");
	assert_int_equal(off, q.len);
	/* Not a whole record. */
	assert_int_equal(evrec_read(q.data, q.len, &off, &a), -1);
	off = 0;
	assert_int_equal(evrec_read(q.data, 20, &off, &a), -1);
	buf_free(&q);
}

static void test_detail(void **state)
{
	struct evrec r;
	char *d, bad[900];
	json_t *v;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.kind = EVREC_EVENT;
	r.type = EVENT_DEFERRED;
	r.num = 2;
	evrec_set(&r, RS_MX, "mx.example");
	evrec_set(&r, RS_REPLY, "451 4.7.1 \xff try later");
	d = events_detail(&r);
	assert_string_equal(d, "{\"mx\":\"mx.example\",\"reply\":\"451 4.7.1 \xef\xbf\xbd try "
	                       "later\",\"attempt\":2}");
	free(d);
	/* Quotes, backslashes, control characters and bytes that are not UTF-8. */
	evrec_set(&r, RS_REPLY, "a\"b\\c\x01\n\xff\x7f");
	d = events_detail(&r);
	v = json_loads(d, 0, NULL);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(v, "reply")),
	                    "a\"b\\c\x01\n\xef\xbf\xbd\x7f");
	json_decref(v);
	free(d);
	/* Control characters escape to six bytes each: the detail stays bounded. */
	memset(bad, 1, sizeof(bad) - 1);
	bad[sizeof(bad) - 1] = '\0';
	evrec_set(&r, RS_REPLY, bad);
	evrec_set(&r, RS_REASON, bad);
	d = events_detail(&r);
	assert_true(strlen(d) <= EVENT_DETAIL_MAX);
	assert_string_equal(d, "{\"truncated\":true}");
	free(d);
	memset(&r, 0, sizeof(r));
	r.kind = EVREC_EVENT;
	r.type = EVENT_OPENED;
	r.machine = 1;
	r.time_ms = 1767225600000LL;
	d = events_detail(&r);
	v = json_loads(d, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(v, "first")),
	                    "2026-01-01T00:00:00.000Z");
	assert_int_equal(json_integer_value(json_object_get(v, "count")), 1);
	assert_true(json_is_true(json_object_get(v, "machine")));
	json_decref(v);
	free(d);
}

/* ---- the writer --------------------------------------------------------------------- */

static long long n_events(const struct fixture *f)
{
	return raw_int(f, "SELECT count(*) FROM events");
}

static void test_batches_not_per_event(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct events_opts o = {.interval_ms = 60000, .batch_max = 1000};
	struct events *ev = events_new(st, &o);
	struct events_event e = delivered("a@x.example");
	struct events_stats s;

	for (int i = 0; i < 10; i++)
		assert_int_equal(events_emit(ev, &e), 0);
	/* Fewer than batch_max and the interval far off: nothing written yet. */
	sleep_ms(300);
	assert_int_equal(n_events(f), 0);
	events_flush(ev);
	assert_int_equal(n_events(f), 10);
	events_get_stats(ev, &s);
	assert_true(s.batches == 1 && s.written == 10 && s.queued == 10);
	/* 2,500 more: every transaction holds at most batch_max events. */
	for (int i = 0; i < 2500; i++)
		assert_int_equal(events_emit(ev, &e), 0);
	events_flush(ev);
	events_get_stats(ev, &s);
	assert_int_equal(n_events(f), 2510);
	assert_true(s.batches >= 1 + 3 && s.batches <= 1 + 5);
	events_free(ev);
	store_close(st);
}

static void test_interval_and_free_write(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct events_opts o = {.interval_ms = 50};
	struct events *ev = events_new(st, &o);
	struct events_event e = delivered("a@x.example");

	assert_int_equal(events_emit(ev, &e), 0);
	for (int i = 0; i < 100 && n_events(f) == 0; i++)
		sleep_ms(20);
	assert_int_equal(n_events(f), 1);
	events_free(ev);
	o.interval_ms = 60000;
	ev = events_new(st, &o);
	for (int i = 0; i < 5; i++)
		assert_int_equal(events_emit(ev, &e), 0);
	events_free(ev); /* SIGTERM: what is queued is written */
	assert_int_equal(n_events(f), 6);
	store_close(st);
}

static void test_full_queue_refuses_and_counts(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct events_opts o = {
	    .interval_ms = 60000, .batch_max = 1000000, .max_queue_bytes = 4096};
	struct events *ev = events_new(st, &o);
	struct events_event e = delivered("a@x.example");
	struct events_stats s;
	int ok = 0, refused = 0;

	for (int i = 0; i < 100; i++) {
		if (events_emit(ev, &e) == 0)
			ok++;
		else
			refused++;
	}
	assert_true(ok > 0 && refused > 0);
	events_flush(ev);
	events_get_stats(ev, &s);
	assert_true(s.dropped == (uint64_t)refused && s.written == (uint64_t)ok);
	assert_int_equal(n_events(f), ok);
	/* Room again once written. */
	assert_int_equal(events_emit(ev, &e), 0);
	/* Invalid: no account, unknown type. */
	e.account = NULL;
	assert_int_equal(events_emit(ev, &e), -1);
	e.account = "default";
	e.type = EVENT_TYPES;
	assert_int_equal(events_emit(ev, &e), -1);
	events_free(ev);
	store_close(st);
}

static void test_accepted_message(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct events_opts o = {0};
	struct events *ev = events_new(st, &o);
	const char *tags[20], *rcpts[] = {"a@One.Example", "b@two.example"};
	struct events_message m = {"0123456789ABCDEF",
	                           "default",
	                           "s@x.example",
	                           "Caf\xe9",
	                           tags,
	                           20,
	                           "{\"a\":",
	                           rcpts,
	                           2,
	                           0};
	struct store_message_row row;
	char *err = NULL;

	for (int i = 0; i < 20; i++)
		tags[i] = i == 1 ? "" : "tag";
	assert_int_equal(events_accepted(ev, &m), 0);
	events_flush(ev);
	assert_int_equal(n_events(f), 2);
	assert_int_equal(store_message_get(st, "default", m.id, &row, &err), 1);
	assert_string_equal(row.subject, "Caf\xef\xbf\xbd"); /* a Latin-1 byte is not UTF-8 */
	assert_string_equal(row.metadata, "{}");             /* not a JSON object: not kept */
	/* At most 16 tags, empty ones left out. */
	assert_int_equal(raw_int(f, "SELECT json_array_length(tags) FROM messages"), 16);
	store_message_row_free(&row);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE type = 'accepted'"
	                            " AND recipient = 'a@one.example'"),
	                 1);
	m.account = "";
	assert_int_equal(events_accepted(ev, &m), -1);
	events_free(ev);
	store_close(st);
}

static void test_retention_prunes(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct events_opts o = {.retention = 3600, .stats_retention = 4 * 3600, .interval_ms = 20};
	struct events *ev;
	struct events_event e = delivered("a@x.example");
	int64_t now = (int64_t)clock_now_ms();

	e.time_ms = now - 2 * 3600 * 1000; /* older than the retention */
	ev = events_new(st, &(struct events_opts){0});
	assert_int_equal(events_emit(ev, &e), 0);
	e.time_ms = now;
	assert_int_equal(events_emit(ev, &e), 0);
	events_free(ev);
	assert_int_equal(n_events(f), 2);
	ev = events_new(st, &o);
	for (int i = 0; i < 200 && n_events(f) == 2; i++)
		sleep_ms(20);
	assert_int_equal(n_events(f), 1);
	/* Counters: the old hour is within stats_retention and stays. */
	assert_int_equal(raw_int(f, "SELECT count(DISTINCT bucket) FROM event_counters"), 2);
	events_free(ev);
	store_close(st);
}

/* What an emitter pays on the loop, and what the writer keeps up with. */
static void test_cost(void **state)
{
	enum { N = 50000 };
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct events *ev = events_new(st, &(struct events_opts){0});
	struct events_event e = delivered("someone@example.org");
	struct events_stats s;
	struct timespec a, b, c;
	double emit_ns, write_s;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++)
		assert_int_equal(events_emit(ev, &e), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	events_flush(ev);
	clock_gettime(CLOCK_MONOTONIC, &c);
	emit_ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
	write_s = (double)(c.tv_sec - a.tv_sec) + (double)(c.tv_nsec - a.tv_nsec) / 1e9;
	events_get_stats(ev, &s);
	print_message("events: emit %.0f ns; %d events written in %.2f s (%.0f/s, %llu batches)\n",
	              emit_ns, N, write_s, N / write_s, (unsigned long long)s.batches);
	assert_int_equal(n_events(f), N);
	assert_true(s.batches >= N / EVENTS_BATCH_MAX);
	assert_true(emit_ns < 50000); /* generous: sanitizer builds, a shared machine */
	events_free(ev);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_round_trip),
	    cmocka_unit_test(test_detail),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_batches_not_per_event),
	    T(test_interval_and_free_write),
	    T(test_full_queue_refuses_and_counts),
	    T(test_accepted_message),
	    T(test_retention_prunes),
	    T(test_cost),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
