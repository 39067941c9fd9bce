/*
 * Unit tests for the batch keys of store/store_events (migration 20): a
 * batch written again under the same key (its COMMIT got no answer, but
 * was committed) stores nothing more, neither events, messages, tags,
 * counters nor a repeat open's count; a batch under another key is stored
 * again; a batch that failed before COMMIT left no key and is written
 * once by its retry; the keys are pruned by age, a bounded number at a
 * time. Runs on SQLite, and on PostgreSQL with POSTHORN_TEST_PG_URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store/store_events_once.h"
#include "store_fixture.h"

#define T0 (1767225600000LL) /* 2026-01-01T00:00:00Z */

static int setup(void **state)
{
	struct fixture *f = fixture_new("events-once");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static const char *const tags[] = {"spring"};

/* One message, its two accepted events and a first open of one of them. */
struct sample {
	struct store_message m;
	struct store_event e[3];
};

static void sample_init(struct sample *s, const char *id)
{
	memset(s, 0, sizeof(*s));
	s->m = (struct store_message){id, "shop", "a@shop.example", "Hi", tags, 1, NULL, T0};
	for (int i = 0; i < 3; i++) {
		s->e[i].type = i < 2 ? EVENT_ACCEPTED : EVENT_OPENED;
		s->e[i].account = "shop";
		s->e[i].message_id = id;
		s->e[i].recipient = i == 1 ? "b@x.example" : "a@x.example";
		s->e[i].time_ms = T0 + i * 1000;
	}
	s->e[2].detail = "{\"first\":\"A\",\"last\":\"A\",\"count\":1,\"machine\":false}";
}

static int write_keyed(struct store *st, const struct sample *s, const char *key, size_t *n_new)
{
	struct store_event_batch b = {&s->m, 1, s->e, 3, key};
	char *err = NULL;
	int rc = store_events_write(st, &b, n_new, &err);

	if (rc < 0)
		fail_msg("store_events_write: %s", err);
	return rc;
}

/* What the rows add up to, one number per table or column. */
static void assert_stored(const struct fixture *f, long long events, long long messages,
                          long long accepted, long long opened)
{
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), events);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM messages"), messages);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM message_tags"), messages);
	assert_int_equal(raw_int(f, "SELECT sum(accepted) FROM event_counters WHERE tag = ''"),
	                 accepted);
	assert_int_equal(raw_int(f, "SELECT sum(accepted) FROM event_counters WHERE tag <> ''"),
	                 accepted);
	assert_int_equal(raw_int(f, "SELECT sum(opened) FROM event_counters WHERE tag = ''"),
	                 opened);
}

static void test_same_key_stored_once(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct sample s;
	size_t n_new = 99;

	sample_init(&s, "M1");
	assert_int_equal(write_keyed(st, &s, "n1.100.1", &n_new), 0);
	assert_int_equal(n_new, 3);
	assert_stored(f, 3, 1, 2, 1);
	/* the retry of a batch whose COMMIT got no answer: nothing more */
	assert_int_equal(write_keyed(st, &s, "n1.100.1", &n_new), STORE_EVENT_WRITTEN_BEFORE);
	assert_int_equal(n_new, 0);
	assert_stored(f, 3, 1, 2, 1);
	assert_int_equal(raw_int(f, "SELECT max(id) FROM events"), 3);
	/* the open was not taken for a repeat: its count is still 1 */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE type = 'opened'"
	                            " AND detail LIKE '%\"count\":1%'"),
	                 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_batches"), 1);
	store_close(st);
}

static void test_other_key_stored_again(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct sample s;
	size_t n_new = 0;

	sample_init(&s, "M1");
	assert_int_equal(write_keyed(st, &s, "n1.100.1", &n_new), 0);
	assert_int_equal(write_keyed(st, &s, "n1.100.2", &n_new), 0);
	/* the same rows again: two more accepted events (the message is kept
	 * once), the open a repeat of the first (counted once) */
	assert_int_equal(n_new, 2);
	assert_stored(f, 5, 1, 4, 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events WHERE type = 'opened'"
	                            " AND detail LIKE '%\"count\":2%'"),
	                 1);
	/* another node's batch with the same sequence is another key */
	sample_init(&s, "M2");
	assert_int_equal(write_keyed(st, &s, "n2.100.1", &n_new), 0);
	assert_int_equal(n_new, 3);
	assert_stored(f, 8, 2, 6, 2);
	/* no key: written each time, as before migration 20 */
	assert_int_equal(write_keyed(st, &s, NULL, &n_new), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), 10);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_batches"), 3);
	store_close(st);
}

/* A batch that fails inside its transaction (here: the counters' table
 * is missing when it comes to them, after its key and events were
 * written) leaves nothing, its key neither: the retry writes it once. */
static void test_failed_batch_written_once_by_retry(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct store_event_batch b;
	struct sample s;
	char *err = NULL;
	size_t n_new = 0;

	sample_init(&s, "M1");
	b = (struct store_event_batch){&s.m, 1, s.e, 3, "n1.100.7"};
	raw_exec(f, "ALTER TABLE event_counters RENAME TO event_counters_away");
	assert_int_equal(store_events_write(st, &b, &n_new, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "event_counters"));
	free(err);
	assert_int_equal(n_new, 0);
	raw_exec(f, "ALTER TABLE event_counters_away RENAME TO event_counters");
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_batches"), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), 0);
	assert_int_equal(write_keyed(st, &s, "n1.100.7", &n_new), 0);
	assert_int_equal(n_new, 3);
	assert_stored(f, 3, 1, 2, 1);
	assert_int_equal(write_keyed(st, &s, "n1.100.7", &n_new), STORE_EVENT_WRITTEN_BEFORE);
	assert_stored(f, 3, 1, 2, 1);
	store_close(st);
}

static void test_invalid_key(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char key[STORE_BATCH_KEY_MAX + 2];
	struct sample s;
	char *err = NULL;

	sample_init(&s, "M1");
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(
	    store_events_write(st, &(struct store_event_batch){&s.m, 1, s.e, 3, key}, NULL, &err),
	    STORE_EVENT_INVALID);
	assert_non_null(strstr(err, "batch key"));
	free(err);
	err = NULL;
	assert_int_equal(
	    store_events_write(st, &(struct store_event_batch){&s.m, 1, s.e, 3, ""}, NULL, &err),
	    STORE_EVENT_INVALID);
	free(err);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM events"), 0);
	key[STORE_BATCH_KEY_MAX] = '\0'; /* the longest allowed */
	assert_int_equal(write_keyed(st, &s, key, NULL), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_batches"), 1);
	store_close(st);
}

static void test_keys_pruned_by_age(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	size_t deleted = 0;
	char *err = NULL;

	raw_exec(f, "INSERT INTO event_batches (batch_key, created) VALUES ('a', 1000),"
	            " ('b', 2000), ('c', 3000), ('d', 9000)");
	assert_int_equal(store_events_prune_keys(st, 5000, 2, &deleted, &err), 0);
	assert_int_equal(deleted, 2);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_batches WHERE batch_key IN"
	                            " ('a', 'b')"),
	                 0);
	assert_int_equal(store_events_prune_keys(st, 5000, 2, &deleted, &err), 0);
	assert_int_equal(deleted, 1);
	assert_int_equal(store_events_prune_keys(st, 5000, 2, &deleted, &err), 0);
	assert_int_equal(deleted, 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_batches WHERE batch_key = 'd'"), 1);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_same_key_stored_once),
	    T(test_other_key_stored_again),
	    T(test_failed_batch_written_once_by_retry),
	    T(test_invalid_key),
	    T(test_keys_pruned_by_age),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
