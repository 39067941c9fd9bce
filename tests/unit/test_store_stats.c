/*
 * Unit tests for the delivery counters: migration 2 (store.c), the
 * counters table (store_stats.c), the in-memory tally
 * (store_counter_batch.c), the daemon's writer (store_counter_writer.c)
 * and `posthorn stats` (cli_stats.c). Each test
 * gets a fresh temporary data directory; the clock is fixed at HOUR + 30m.
 */
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sqlite3.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

#include "store/store_events_once.h"
#include "store_fixture.h"

/* 2025-11-28T00:00:00Z, the start of an hour; tests run at HOUR + 30m. */
#define HOUR ((int64_t)1764288000)
#define H    ((int64_t)COUNTER_BUCKET_SECONDS)
#define NOW  (HOUR + 1800)

static int setup(void **state)
{
	struct fixture *f = fixture_new("stats");

	if (f == NULL)
		return -1;
	clock_set_override_ms((uint64_t)NOW * 1000);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	clock_set_override_ms(0);
	fixture_free(*state);
	return 0;
}

static void add_ok(struct store *st, const struct store_count *c, size_t n)
{
	char *err = NULL;

	if (store_counts_add(st, c, n, &err) != 0)
		fail_msg("store_counts_add: %s", err);
}

static void assert_fails_with(int rc, char **err, const char *want)
{
	assert_int_equal(rc, -1);
	assert_non_null(*err);
	if (strstr(*err, want) == NULL)
		fail_msg("error '%s' does not mention '%s'", *err, want);
	free(*err);
	*err = NULL;
}

/* store_counts_query flattened to "domain event n\n..." */
static void query_cb(void *arg, const char *domain, const char *event, uint64_t n)
{
	buf_printf(arg, "%s %s %llu\n", domain, event, (unsigned long long)n);
}

static char *query(struct store *st, int64_t since, const char *account)
{
	struct buf b;
	char *err = NULL;

	buf_init(&b);
	buf_puts(&b, "");
	if (store_counts_query(st, since, account, query_cb, &b, &err) != 0)
		fail_msg("store_counts_query: %s", err);
	return b.data;
}

static void assert_query(struct store *st, int64_t since, const char *account, const char *want)
{
	char *got = query(st, since, account);

	assert_string_equal(got, want);
	free(got);
}

/* ---- migration ----------------------------------------------------------- */

static void test_fresh_db_is_version_2(void **state)
{
	struct fixture *f = *state;

	store_close(open_ok(f));
	assert_int_equal(raw_int(f, "PRAGMA user_version"), store_schema_version());
	assert_int_equal(raw_int(f, "SELECT count(*) FROM sqlite_master"
	                            " WHERE type = 'table' AND name = 'counters'"),
	                 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM counters"), 0);
}

/* Migration 1 as it shipped: what a version-1 posthorn left on disk. */
static const char v1_sql[] =
    "CREATE TABLE accounts ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE account_domains ("
    "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  domain TEXT NOT NULL,"
    "  PRIMARY KEY (account_id, domain)"
    ");"
    "CREATE INDEX account_domains_domain ON account_domains(domain);"
    "INSERT INTO accounts (name, password_hash, created_at)"
    "  VALUES ('default', NULL, CAST(strftime('%s', 'now') AS INTEGER));"
    "INSERT INTO accounts (name, password_hash, created_at) VALUES ('alice', NULL, 7);"
    "INSERT INTO account_domains VALUES (2, 'a.example');"
    "PRAGMA journal_mode = WAL;"
    "PRAGMA user_version = 1;\n";

/* Made by the sqlite3 command-line tool, as an operator or an old build would. */
static void make_v1_db(const struct fixture *f)
{
	char *cmd = xasprintf("sqlite3 -bail '%s' >/dev/null", f->db);
	FILE *p;

	if (access("/usr/bin/sqlite3", X_OK) != 0) {
		free(cmd);
		skip();
	}
	assert_int_equal(mkdir(f->data, 0700), 0);
	p = popen(cmd, "w");
	free(cmd);
	assert_non_null(p);
	fputs(v1_sql, p);
	assert_int_equal(pclose(p), 0);
	assert_int_equal(raw_int(f, "PRAGMA user_version"), 1);
}

static void test_upgrade_from_version_1(void **state)
{
	struct fixture *f = *state;
	const char *d[] = {"b.example"};
	struct store_count c = {HOUR, "alice", "x.example", "delivered", 3};
	struct store *st;

	make_v1_db(f);
	st = open_ok(f);
	assert_int_equal(raw_int(f, "PRAGMA user_version"), store_schema_version());
	/* Version-1 data is untouched and still works. */
	assert_int_equal(store_user_exists(st, "alice"), 1);
	assert_int_equal(store_user_owns_domain(st, "alice", "a.example"), 1);
	assert_int_equal(store_user_add_domains(st, "alice", d, 1, NULL), 0);
	add_ok(st, &c, 1);
	assert_query(st, HOUR, NULL, "x.example delivered 3\n");
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT created_at FROM accounts WHERE name = 'alice'"), 7);
	/* Opening again does not re-run migration 2. */
	store_close(open_ok(f));
	assert_int_equal(raw_int(f, "SELECT count FROM counters"), 3);
}

/* ---- store_counts_add ---------------------------------------------------- */

static void test_counts_add_merges(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	const struct store_count a[] = {
	    {HOUR, "default", "example.com", "delivered", 2},
	    {HOUR, "default", "EXAMPLE.com", "delivered", 3},
	    {HOUR + 59, "default", "example.com", "delivered", 4}, /* same hour */
	    {HOUR, "default", "example.com", "bounced", 1},
	    {HOUR, "default", "example.com", "accepted", 0}, /* skipped */
	};
	const struct store_count b[] = {{HOUR, "default", "example.com", "delivered", 5}};

	add_ok(st, a, ARRAY_LEN(a));
	add_ok(st, b, 1);
	add_ok(st, NULL, 0);
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM counters"), 2);
	assert_int_equal(raw_int(f, "SELECT count FROM counters WHERE event = 'delivered'"
	                            " AND domain = 'example.com' AND bucket = 1764288000"),
	                 14);
	assert_int_equal(raw_int(f, "SELECT count FROM counters WHERE event = 'bounced'"), 1);
}

static void test_counts_add_validates_first(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char *err = NULL;
	struct store_count c[] = {
	    {HOUR, "default", "ok.example", "delivered", 1},
	    {HOUR, "default", "bad.example", "opened", 1},
	};

	assert_fails_with(store_counts_add(st, c, 2, &err), &err, "unknown event 'opened'");
	c[1].event = "delivered";
	c[1].domain = "";
	assert_fails_with(store_counts_add(st, c, 2, &err), &err, "counter 1: invalid domain");
	c[1].domain = "bad.example";
	c[1].account = NULL;
	assert_fails_with(store_counts_add(st, c, 2, &err), &err, "invalid account");
	c[1].account = "default";
	c[1].n = (uint64_t)INT64_MAX + 1;
	assert_fails_with(store_counts_add(st, c, 2, &err), &err, "too large");
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM counters"), 0);
}

/* A row that fails inside the transaction takes the whole batch with it. */
static void test_counts_add_is_one_transaction(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char *err = NULL;
	const struct store_count c[] = {
	    {HOUR, "default", "ok.example", "delivered", 1},
	    {HOUR, "default", "boom.example", "delivered", 1},
	};

	raw_exec(f, "CREATE TRIGGER boom BEFORE INSERT ON counters"
	            " WHEN NEW.domain = 'boom.example' BEGIN SELECT RAISE(ABORT, 'boom'); END");
	assert_fails_with(store_counts_add(st, c, 2, &err), &err, "boom");
	assert_int_equal(raw_int(f, "SELECT count(*) FROM counters"), 0);
	/* The connection is usable afterwards: no transaction left open. */
	add_ok(st, c, 1);
	assert_query(st, HOUR, NULL, "ok.example delivered 1\n");
	store_close(st);
}

/* A batch with a key counts once: the retry of a batch whose COMMIT went
 * through but got no answer adds nothing; a batch that failed counts when
 * it is tried again (its key went with its transaction). */
static void test_counts_add_once_by_key(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	char *err = NULL;
	const struct store_count c[] = {
	    {HOUR, "default", "ok.example", "delivered", 2},
	    {HOUR, "default", "boom.example", "delivered", 1},
	};

	assert_int_equal(store_counts_add_once(st, "c.t.1", c, 1, &err), 0);
	assert_int_equal(store_counts_add_once(st, "c.t.1", c, 1, &err),
	                 STORE_EVENT_WRITTEN_BEFORE);
	assert_query(st, HOUR, NULL, "ok.example delivered 2\n");
	assert_int_equal(store_counts_add_once(st, "c.t.2", c, 1, &err), 0);
	assert_query(st, HOUR, NULL, "ok.example delivered 4\n");
	raw_exec(f, "CREATE TRIGGER boom BEFORE INSERT ON counters"
	            " WHEN NEW.domain = 'boom.example' BEGIN SELECT RAISE(ABORT, 'boom'); END");
	assert_fails_with(store_counts_add_once(st, "c.t.3", c, 2, &err), &err, "boom");
	raw_exec(f, "DROP TRIGGER boom");
	assert_int_equal(store_counts_add_once(st, "c.t.3", c, 2, &err), 0);
	assert_query(st, HOUR, NULL, "boom.example delivered 1\nok.example delivered 6\n");
	store_close(st);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM event_batches"), 3);
}

/* ---- store_counts_query -------------------------------------------------- */

static void fill(struct store *st)
{
	const struct store_count c[] = {
	    {HOUR - 2 * H, "default", "old.example", "delivered", 100},
	    {HOUR - H, "default", "b.example", "delivered", 1},
	    {HOUR - H, "alice", "b.example", "deferred", 2},
	    {HOUR, "default", "b.example", "delivered", 10},
	    {HOUR, "alice", "a.example", "accepted", 5},
	    {HOUR, "alice", "a.example", "suppressed", 1},
	    {HOUR, "bob", "a.example", "accepted", 7},
	};

	add_ok(st, c, ARRAY_LEN(c));
}

static void test_query_sums_and_sorts(void **state)
{
	struct store *st = open_ok(*state);

	fill(st);
	assert_query(st, HOUR - H, NULL,
	             "a.example accepted 12\n"
	             "a.example suppressed 1\n"
	             "b.example deferred 2\n"
	             "b.example delivered 11\n");
	assert_query(st, 0, NULL,
	             "a.example accepted 12\n"
	             "a.example suppressed 1\n"
	             "b.example deferred 2\n"
	             "b.example delivered 11\n"
	             "old.example delivered 100\n");
	store_close(st);
}

/* since is floored to its hour: the hour in progress always counts. */
static void test_query_since_by_hour(void **state)
{
	struct store *st = open_ok(*state);

	fill(st);
	assert_query(st, HOUR + 1799, NULL,
	             "a.example accepted 12\na.example suppressed 1\nb.example delivered 10\n");
	assert_query(st, HOUR - 1, NULL,
	             "a.example accepted 12\n"
	             "a.example suppressed 1\n"
	             "b.example deferred 2\n"
	             "b.example delivered 11\n");
	assert_query(st, HOUR + H, NULL, "");
	store_close(st);
}

static void test_query_account_filter(void **state)
{
	struct store *st = open_ok(*state);

	fill(st);
	assert_query(st, 0, "alice",
	             "a.example accepted 5\na.example suppressed 1\nb.example deferred 2\n");
	assert_query(st, 0, "default", "b.example delivered 11\nold.example delivered 100\n");
	assert_query(st, 0, "nobody", "");
	store_close(st);
}

static void test_bucket_and_event_names(void **state)
{
	assert_int_equal(counter_bucket(HOUR), HOUR);
	assert_int_equal(counter_bucket(HOUR + H - 1), HOUR);
	assert_int_equal(counter_bucket(0), 0);
	assert_int_equal(counter_bucket(-1), -H);
	assert_int_equal(counter_bucket(-H), -H);
	for (int ev = 0; ev < COUNTER_EVENTS; ev++)
		assert_int_equal(counter_event_parse(counter_event_name(ev)), ev);
	assert_string_equal(counter_event_name(COUNTER_SUPPRESSED), "suppressed");
	assert_null(counter_event_name(COUNTER_EVENTS));
	assert_null(counter_event_name(-1));
	assert_int_equal(counter_event_parse("Delivered"), -1);
	assert_int_equal(counter_event_parse(NULL), -1);
}

/* ---- the in-memory tally ------------------------------------------------- */

/* The set as "bucket account domain event n\n" lines, in the order held. */
static char *set_text(const struct store_counter_set *s)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "");
	for (size_t i = 0; i < s->n; i++)
		buf_printf(&b, "%lld %s %s %s %llu\n", (long long)(s->v[i].bucket_hour - HOUR),
		           s->v[i].account, s->v[i].domain, s->v[i].event,
		           (unsigned long long)s->v[i].n);
	return b.data;
}

static void assert_take(struct store_counter_batch *b, const char *want, uint64_t dropped)
{
	struct store_counter_set *s = counter_batch_take(b);
	char *got;

	assert_non_null(s);
	got = set_text(s);
	assert_string_equal(got, want);
	assert_int_equal(s->dropped, dropped);
	free(got);
	counter_set_free(s);
	assert_int_equal(counter_batch_len(b), 0);
}

static void test_batch_merges(void **state)
{
	struct store_counter_batch *b = counter_batch_new();

	assert_null(counter_batch_take(b));
	assert_int_equal(counter_batch_add(b, NOW, "default", "a.example", "delivered", 1), 0);
	assert_int_equal(counter_batch_add(b, HOUR, "default", "A.Example", "delivered", 2), 0);
	assert_int_equal(counter_batch_add(b, NOW, "default", "a.example", "bounced", 1), 0);
	assert_int_equal(counter_batch_add(b, NOW + H, "default", "a.example", "delivered", 4), 0);
	assert_int_equal(counter_batch_add(b, NOW, "alice", "a.example", "delivered", 8), 0);
	/* ("ab", "c") and ("a", "bc") are different keys. */
	assert_int_equal(counter_batch_add(b, NOW, "ab", "c", "accepted", 1), 0);
	assert_int_equal(counter_batch_add(b, NOW, "a", "bc", "accepted", 1), 0);
	assert_int_equal(counter_batch_add(b, NOW, "a", "bc", "accepted", 0), 0);
	assert_int_equal(counter_batch_len(b), 6);
	assert_take(b,
	            "0 default a.example delivered 3\n"
	            "0 default a.example bounced 1\n"
	            "3600 default a.example delivered 4\n"
	            "0 alice a.example delivered 8\n"
	            "0 ab c accepted 1\n"
	            "0 a bc accepted 1\n",
	            0);
	assert_null(counter_batch_take(b));
	/* Usable again after a take. */
	assert_int_equal(counter_batch_add(b, NOW, "default", "z.example", "deferred", 1), 0);
	assert_take(b, "0 default z.example deferred 1\n", 0);
	counter_batch_free(b);
}

static void test_batch_rejects_bad_input(void **state)
{
	struct store_counter_batch *b = counter_batch_new();
	char long_domain[COUNTER_DOMAIN_MAX + 2];

	memset(long_domain, 'a', sizeof long_domain - 1);
	long_domain[sizeof long_domain - 1] = '\0';
	assert_int_equal(counter_batch_add(b, NOW, "default", "a.example", "opened", 1), -1);
	assert_int_equal(counter_batch_add(b, NOW, "default", "a.example", NULL, 1), -1);
	assert_int_equal(counter_batch_add(b, NOW, "", "a.example", "accepted", 1), -1);
	assert_int_equal(counter_batch_add(b, NOW, NULL, "a.example", "accepted", 1), -1);
	assert_int_equal(counter_batch_add(b, NOW, "default", "", "accepted", 1), -1);
	assert_int_equal(counter_batch_add(b, NOW, "default", long_domain, "accepted", 1), -1);
	assert_int_equal(
	    counter_batch_add(b, NOW, "default", "a.example", "accepted", (uint64_t)INT64_MAX + 1),
	    -1);
	long_domain[COUNTER_DOMAIN_MAX] = '\0';
	assert_int_equal(counter_batch_add(b, NOW, "default", long_domain, "accepted", 1), 0);
	assert_int_equal(counter_batch_len(b), 1);
	counter_batch_free(b);
}

static int add_key(struct store_counter_batch *b, size_t i)
{
	char domain[32];

	snprintf(domain, sizeof domain, "d%zu.example", i);
	return counter_batch_add(b, NOW, "default", domain, "accepted", 1);
}

/* Past FLUSH keys the caller is told to flush; at MAX new keys are
 * dropped and counted, while known keys still merge. */
static void test_batch_bounds(void **state)
{
	struct store_counter_batch *b = counter_batch_new();
	struct store_counter_set *s;

	for (size_t i = 0; i + 1 < COUNTER_BATCH_FLUSH; i++)
		assert_int_equal(add_key(b, i), 0);
	assert_int_equal(add_key(b, COUNTER_BATCH_FLUSH - 1), 1);
	for (size_t i = COUNTER_BATCH_FLUSH; i < COUNTER_BATCH_MAX; i++)
		assert_int_equal(add_key(b, i), 1);
	assert_int_equal(counter_batch_len(b), COUNTER_BATCH_MAX);
	assert_int_equal(add_key(b, COUNTER_BATCH_MAX), 1);
	assert_int_equal(counter_batch_add(b, NOW, "x", "y", "bounced", 5), 1);
	assert_int_equal(add_key(b, 0), 1);
	assert_int_equal(counter_batch_len(b), COUNTER_BATCH_MAX);

	s = counter_batch_take(b);
	assert_int_equal(s->n, COUNTER_BATCH_MAX);
	assert_int_equal(s->dropped, 6);
	assert_string_equal(s->v[0].domain, "d0.example");
	assert_int_equal(s->v[0].n, 2);
	assert_int_equal(s->v[1].n, 1);
	counter_set_free(s);
	/* The take emptied it, dropped tally included: reported once. */
	assert_null(counter_batch_take(b));
	assert_int_equal(add_key(b, 1), 0);
	assert_take(b, "0 default d1.example accepted 1\n", 0);
	counter_batch_free(b);
}

/* A failed write goes back into the batch and is written with the next. */
/* The daemon's path: tally on the loop, take, write from a worker. */
static void test_batch_to_store(void **state)
{
	struct store *st = open_ok(*state);
	struct store_counter_batch *b = counter_batch_new();
	struct store_counter_set *s;
	char *err = NULL;

	for (int i = 0; i < 3; i++) {
		counter_batch_add(b, NOW, "default", "A.example", "accepted", 1);
		counter_batch_add(b, NOW, "default", "a.example", "delivered", 1);
		s = counter_batch_take(b);
		assert_int_equal(store_counts_add(st, s->v, s->n, &err), 0);
		counter_set_free(s);
	}
	assert_query(st, NOW, NULL, "a.example accepted 3\na.example delivered 3\n");
	counter_batch_free(b);
	store_close(st);
}

/* ---- the daemon's writer (store_counter_writer.c) ---------------------------- */

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Events by recipient address count under the domain (any case, no root
 * dot); the tick writes them from a worker; stop and free write the rest. */
static void test_writer(void **state)
{
	struct store *st = open_ok(*state);
	struct event_base *base = event_base_new();
	struct work_pool *wp = work_pool_new(base, 1);
	struct store_counters *sc = store_counters_new(base, st, wp);
	struct event *t = evtimer_new(base, on_timeout, base);
	struct timeval tick_and_write = {1, 500000};

	store_counters_count(sc, "default", "a@B.Example.", "accepted");
	store_counters_count(sc, "default", "c@b.example", "delivered");
	store_counters_count(sc, "alice", "nodomain", "deferred");
	evtimer_add(t, &tick_and_write);
	event_base_dispatch(base);
	assert_query(st, NOW, NULL,
	             "b.example accepted 1\nb.example delivered 1\nnodomain deferred 1\n");
	store_counters_count(sc, "default", "d@b.example", "delivered");
	store_counters_stop(sc);
	work_pool_free(wp);
	store_counters_count(sc, "default", "e@b.example", "bounced"); /* after the pool */
	store_counters_free(sc);
	assert_query(st, NOW, NULL,
	             "b.example accepted 1\nb.example bounced 1\nb.example delivered 2\n"
	             "nodomain deferred 1\n");
	event_free(t);
	event_base_free(base);
	store_close(st);
}

/* A set whose write fails is kept and written again, under its key,
 * before the counts that came after it. */
static void test_writer_retries_a_failed_set(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	struct event_base *base = event_base_new();
	struct work_pool *wp = work_pool_new(base, 1);
	struct store_counters *sc = store_counters_new(base, st, wp);
	struct event *t = evtimer_new(base, on_timeout, base);
	struct timeval tick_and_write = {1, 200000}; /* ticks at 1 s, 2 s: one per dispatch */

	raw_exec(
	    f,
	    "CREATE TRIGGER boom BEFORE INSERT ON counters BEGIN SELECT RAISE(ABORT, 'boom'); END");
	store_counters_count(sc, "default", "a@b.example", "delivered");
	evtimer_add(t, &tick_and_write);
	event_base_dispatch(base); /* the write fails */
	assert_query(st, NOW, NULL, "");
	raw_exec(f, "DROP TRIGGER boom");
	store_counters_count(sc, "default", "b@b.example", "bounced");
	evtimer_add(t, &tick_and_write);
	event_base_dispatch(base); /* the failed set, again */
	assert_query(st, NOW, NULL, "b.example delivered 1\n");
	store_counters_stop(sc);
	work_pool_free(wp);
	store_counters_free(sc); /* the set that came after */
	assert_query(st, NOW, NULL, "b.example bounced 1\nb.example delivered 1\n");
	assert_int_equal(
	    raw_int(f, "SELECT count(*) FROM event_batches WHERE batch_key LIKE 'c.%'"), 2);
	event_free(t);
	event_base_free(base);
	store_close(st);
}

/* ---- posthorn stats ------------------------------------------------------ */

/* Runs cli_stats with stdout in a file; *out gets what it printed. */
static int run_cli(const struct fixture *f, char **out, int argc, ...)
{
	struct conf c = {.data_dir = f->data};
	char *argv[16], path[128], chunk[512];
	int rc, fd, saved = dup(1);
	struct buf b;
	va_list ap;
	size_t n;
	FILE *fp;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	argv[argc] = NULL;
	va_end(ap);
	snprintf(path, sizeof path, "%s/stdout", f->base);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fflush(stdout);
	dup2(fd, 1);
	rc = cli_stats(argc, argv, &c);
	fflush(stdout);
	dup2(saved, 1);
	close(fd);
	close(saved);
	buf_init(&b);
	buf_puts(&b, "");
	fp = fopen(path, "r");
	while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
		buf_append(&b, chunk, n);
	fclose(fp);
	*out = b.data;
	return rc;
}

static void fill_store(const struct fixture *f)
{
	struct store *st = open_ok(f);

	fill(st);
	store_close(st);
}

#define HEADER "DOMAIN\taccepted\tdelivered\tdeferred\tbounced\tsuppressed\n"
/* The accounts section that follows the domains (cli_stats_rep.c): the
 * test's configuration has every [quota] and [reputation] key at 0. */
#define ACCOUNTS                                                                                   \
	"\nACCOUNT\tvolume\thard_bounces\tbounce_rate\tmax_bounce_rate\tcomplaints"                \
	"\tcomplaint_rate\tmax_complaint_rate\tquota_hour\tquota_day\tstate\n"
#define DEFAULT_ACCOUNT "default\t0\t0\t0%\t0%\t0\t0%\t0%\t0/unlimited\t0/unlimited\tactive\n"

static void test_cli_table(void **state)
{
	struct fixture *f = *state;
	char *out;

	fill_store(f);
	/* Default 24h: old.example (two hours ago) is in. */
	assert_int_equal(run_cli(f, &out, 1, "stats"), 0);
	assert_string_equal(out, HEADER "a.example\t12\t0\t0\t0\t1\n"
	                                "b.example\t0\t11\t2\t0\t0\n"
	                                "old.example\t0\t100\t0\t0\t0\n"
	                                "TOTAL\t12\t111\t2\t0\t1\n" ACCOUNTS DEFAULT_ACCOUNT);
	free(out);
	/* 30m ago is this hour: the hour in progress only. */
	assert_int_equal(run_cli(f, &out, 3, "stats", "--since", "30m"), 0);
	assert_string_equal(out, HEADER "a.example\t12\t0\t0\t0\t1\n"
	                                "b.example\t0\t10\t0\t0\t0\n"
	                                "TOTAL\t12\t10\t0\t0\t1\n" ACCOUNTS DEFAULT_ACCOUNT);
	free(out);
	assert_int_equal(run_cli(f, &out, 4, "stats", "--since=31m", "--account", "alice"), 0);
	/* alice has counters but is no account: no line of hers */
	assert_string_equal(out, HEADER "a.example\t5\t0\t0\t0\t1\n"
	                                "b.example\t0\t0\t2\t0\t0\n"
	                                "TOTAL\t5\t0\t2\t0\t1\n" ACCOUNTS);
	free(out);
}

static void test_cli_empty(void **state)
{
	struct fixture *f = *state;
	char *out;

	/* no such account, and no counters of that name: an error, not an empty table */
	assert_int_equal(run_cli(f, &out, 2, "stats", "--account=nobody"), CLI_RUNTIME);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(run_cli(f, &out, 2, "stats", "--account=default"), 0);
	assert_string_equal(out, HEADER "TOTAL\t0\t0\t0\t0\t0\n" ACCOUNTS DEFAULT_ACCOUNT);
	free(out);
	assert_int_equal(run_cli(f, &out, 2, "stats", "--json"), 0);
	/* since: NOW - 24h is HOUR - 23.5h, whose hour starts at HOUR - 24h. */
	assert_string_equal(out, "{\"since\":1764201600,\"domains\":{},"
	                         "\"total\":{\"accepted\":0,\"delivered\":0,\"deferred\":0,"
	                         "\"bounced\":0,\"suppressed\":0},"
	                         "\"reputation\":{\"window\":0,\"max_bounce_rate\":0.0,"
	                         "\"max_complaint_rate\":0.0,\"min_volume\":0},"
	                         "\"accounts\":{\"default\":{\"volume\":0,\"hard_bounces\":0,"
	                         "\"bounce_rate\":0.0,\"complaints\":0,\"complaint_rate\":0.0,"
	                         "\"quota_hour\":{\"used\":0,\"limit\":0},"
	                         "\"quota_day\":{\"used\":0,\"limit\":0},\"paused\":false}},"
	                         "\"paused\":{\"all\":false,\"destinations\":[]}}\n");
	free(out);
}

static json_int_t jget(json_t *root, const char *a, const char *b, const char *c)
{
	json_t *v = json_object_get(root, a);

	if (b != NULL)
		v = json_object_get(v, b);
	if (c != NULL)
		v = json_object_get(v, c);
	if (!json_is_integer(v))
		fail_msg("no integer at %s/%s/%s", a, b ? b : "", c ? c : "");
	return json_integer_value(v);
}

static void test_cli_json(void **state)
{
	struct fixture *f = *state;
	json_error_t jerr;
	json_t *root;
	char *out;

	fill_store(f);
	assert_int_equal(run_cli(f, &out, 4, "stats", "--json", "--since", "1h"), 0);
	/* One line, one object. */
	assert_non_null(strchr(out, '\n'));
	assert_int_equal(strchr(out, '\n')[1], '\0');
	root = json_loads(out, 0, &jerr);
	if (root == NULL)
		fail_msg("bad JSON '%s': %s", out, jerr.text);
	assert_int_equal(jget(root, "since", NULL, NULL), HOUR - H);
	assert_int_equal(json_object_size(json_object_get(root, "domains")), 2);
	assert_int_equal(jget(root, "domains", "a.example", "accepted"), 12);
	assert_int_equal(jget(root, "domains", "a.example", "suppressed"), 1);
	assert_int_equal(jget(root, "domains", "b.example", "delivered"), 11);
	assert_int_equal(jget(root, "domains", "b.example", "bounced"), 0);
	assert_int_equal(jget(root, "total", "delivered", NULL), 11);
	assert_int_equal(jget(root, "total", "deferred", NULL), 2);
	json_decref(root);
	free(out);
}

/* Domains come from the network: one stays one line, and JSON stays JSON. */
static void test_cli_escapes_domains(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_ok(f);
	const struct store_count c[] = {
	    {HOUR, "default", "tab\there", "bounced", 1},
	    {HOUR, "default", "bad\xff.example", "bounced", 2},
	};
	json_t *root;
	char *out;

	add_ok(st, c, 2);
	store_close(st);
	assert_int_equal(run_cli(f, &out, 1, "stats"), 0);
	assert_string_equal(out, HEADER "bad\xff.example\t0\t0\t0\t2\t0\n"
	                                "tab\\x09here\t0\t0\t0\t1\t0\n"
	                                "TOTAL\t0\t0\t0\t3\t0\n" ACCOUNTS DEFAULT_ACCOUNT);
	free(out);
	assert_int_equal(run_cli(f, &out, 2, "stats", "--json"), 0);
	root = json_loads(out, 0, NULL);
	assert_non_null(root);
	assert_int_equal(jget(root, "domains", "bad\\xFF.example", "bounced"), 2);
	assert_int_equal(jget(root, "domains", "tab\there", "bounced"), 1);
	json_decref(root);
	free(out);
}

static void test_cli_errors(void **state)
{
	struct fixture *f = *state;
	char *out;
	int fd;

	/* Store errors: 1. The data directory is a file. */
	fd = open(f->data, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(run_cli(f, &out, 1, "stats"), 1);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(unlink(f->data), 0);

	/* Usage errors: 2, and nothing on stdout. */
	assert_int_equal(run_cli(f, &out, 2, "stats", "--bogus"), 2);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(run_cli(f, &out, 2, "stats", "--since"), 2);
	free(out);
	assert_int_equal(run_cli(f, &out, 3, "stats", "--since", "yesterday"), 2);
	free(out);
	assert_int_equal(run_cli(f, &out, 2, "stats", "--since=-1h"), 2);
	free(out);
	assert_int_equal(run_cli(f, &out, 2, "stats", "example.com"), 2);
	free(out);
	assert_int_equal(run_cli(f, &out, 3, "stats", "--account", "bad name"), 2);
	free(out);
	assert_int_equal(run_cli(f, &out, 2, "stats", "--sincere"), 2);
	free(out);
	/* Help: 0, usage on stdout. */
	assert_int_equal(run_cli(f, &out, 2, "stats", "--help"), 0);
	assert_non_null(strstr(out, "usage: posthorn stats"));
	free(out);
	/* A huge duration reaches back to the epoch rather than failing. */
	assert_int_equal(run_cli(f, &out, 3, "stats", "--since", "1000000d"), 0);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_fresh_db_is_version_2),
	    T(test_upgrade_from_version_1),
	    T(test_counts_add_merges),
	    T(test_counts_add_validates_first),
	    T(test_counts_add_is_one_transaction),
	    T(test_counts_add_once_by_key),
	    T(test_query_sums_and_sorts),
	    T(test_query_since_by_hour),
	    T(test_query_account_filter),
	    T(test_bucket_and_event_names),
	    T(test_batch_merges),
	    T(test_batch_rejects_bad_input),
	    T(test_batch_bounds),
	    T(test_batch_to_store),
	    T(test_writer),
	    T(test_writer_retries_a_failed_set),
	    T(test_cli_table),
	    T(test_cli_empty),
	    T(test_cli_json),
	    T(test_cli_escapes_domains),
	    T(test_cli_errors),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
