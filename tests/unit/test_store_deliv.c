/*
 * Unit tests for store_deliv (migration 10): account quotas and pauses,
 * `user resume`, the server's flush (quota counts, reputation slots,
 * pauses, VERP records, pruning) in one transaction, the reads, the
 * data_version another process moves, and store_supp_add_many; counts and
 * slots per node (migration 19): the rows there were kept as node '',
 * two nodes' rows summed, each node's own read back, a resume clears every
 * node's, rows from before adopted on SQLite only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "store/store_nodes.h"
#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("deliv");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static void test_quota_settings(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct store_account_deliv a;
	const int both[2] = {1, 1}, day_only[2] = {0, 1};
	int64_t q[2] = {100, 1000};
	char *err = NULL;

	assert_int_equal(store_account_deliv_get(st, "shop", &a, &err), 1);
	assert_int_equal(a.quota[0], STORE_QUOTA_DEFAULT);
	assert_int_equal(a.quota[1], STORE_QUOTA_DEFAULT);
	assert_int_equal(a.paused_at, 0);
	assert_int_equal(store_user_set_quota(st, "shop", both, q, &err), 0);
	q[1] = STORE_QUOTA_DEFAULT;
	assert_int_equal(store_user_set_quota(st, "shop", day_only, q, &err), 0);
	assert_int_equal(store_account_deliv_get(st, "shop", &a, &err), 1);
	assert_int_equal(a.quota[0], 100);
	assert_int_equal(a.quota[1], STORE_QUOTA_DEFAULT);
	/* errors */
	assert_int_equal(store_user_set_quota(st, "nobody", both, q, &err), STORE_NO_SUCH_ACCOUNT);
	assert_non_null(strstr(err, "no such account 'nobody'"));
	free(err);
	err = NULL;
	q[0] = -5;
	assert_int_equal(store_user_set_quota(st, "shop", both, q, &err), -1);
	free(err);
	assert_int_equal(store_account_deliv_get(st, "nobody", &a, NULL), 0);
	store_close(st);
}

static void test_flush_and_read(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct store_quota_row qr[3] = {
	    {"shop", 0, 3600, 7}, {"shop", 1, 0, 9}, {"ghost", 0, 3600, 1}};
	struct store_rep_row rr[2] = {{"shop", 1800, {10, 2, 1, 0}}, {"shop", 3600, {5, 0, 0, 1}}};
	struct store_verp_msg vm = {"0G3B5K2M1A2B3C4D", "shop", 1000, "a@x.example\nb@x.example"};
	struct store_deliv_flush fl;
	char account[COUNTER_ACCOUNT_MAX + 1], *rcpts = NULL, *err = NULL;

	memset(&fl, 0, sizeof(fl));
	fl.quota = qr;
	fl.n_quota = 3;
	fl.rep = rr;
	fl.n_rep = 2;
	fl.verp = &vm;
	fl.n_verp = 1;
	if (store_deliv_flush(st, &fl, &err) < 0)
		fail_msg("flush: %s", err);
	/* the deleted account's row is skipped, the others written as is */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM quota_counts"), 2);
	assert_int_equal(raw_int(f, "SELECT used FROM quota_counts WHERE period = 'hour'"), 7);
	qr[0].used = 8; /* absolute, not added */
	fl.n_quota = 1;
	fl.n_rep = 0;
	fl.n_verp = 0;
	assert_int_equal(store_deliv_flush(st, &fl, &err), 0);
	assert_int_equal(raw_int(f, "SELECT used FROM quota_counts WHERE period = 'hour'"), 8);
	assert_int_equal(raw_int(f, "SELECT sum(delivered) FROM reputation"), 15);
	assert_int_equal(store_verp_get(st, "0G3B5K2M1A2B3C4D", account, &rcpts, &err), 1);
	assert_string_equal(account, "shop");
	assert_string_equal(rcpts, "a@x.example\nb@x.example");
	free(rcpts);
	assert_int_equal(store_verp_get(st, "0000000000000000", account, &rcpts, &err), 0);
	assert_null(rcpts);
	/* pruning */
	memset(&fl, 0, sizeof(fl));
	fl.rep_before = 3600;
	fl.verp_before = 1001;
	assert_int_equal(store_deliv_flush(st, &fl, &err), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM reputation"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM verp_messages"), 0);
	store_close(st);
}

/* More VERP records than one INSERT takes (32): all written, a repeat of
 * an id (in the same flush or a later one) keeps the first record. */
static void test_flush_many_verp(void **state)
{
	enum { N = 70 };
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct store_verp_msg vm[N + 1];
	char ids[N][32], account[COUNTER_ACCOUNT_MAX + 1], *rcpts = NULL, *err = NULL;
	struct store_deliv_flush fl;

	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof ids[i], "0G3B5K2M1A2B%04d", i);
		vm[i] = (struct store_verp_msg){ids[i], "shop", 1000 + i, "a@x.example"};
	}
	vm[N] = (struct store_verp_msg){ids[5], "other", 5, "b@x.example"};
	memset(&fl, 0, sizeof(fl));
	fl.verp = vm;
	fl.n_verp = N + 1;
	if (store_deliv_flush(st, &fl, &err) < 0)
		fail_msg("flush: %s", err);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM verp_messages"), N);
	assert_int_equal(raw_int(f, "SELECT sum(created) FROM verp_messages"),
	                 N * 1000 + N * (N - 1) / 2);
	assert_int_equal(store_verp_get(st, ids[N - 1], account, &rcpts, &err), 1);
	assert_string_equal(rcpts, "a@x.example");
	free(rcpts);
	assert_int_equal(store_verp_get(st, ids[5], account, &rcpts, &err), 1);
	assert_string_equal(account, "shop");
	free(rcpts);
	fl.verp = &vm[N];
	fl.n_verp = 1;
	assert_int_equal(store_deliv_flush(st, &fl, &err), 0);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM verp_messages WHERE account = 'other'"),
	                 0);
	store_close(st);
}

struct seen {
	size_t n;
	uint64_t sum;
	char last[COUNTER_ACCOUNT_MAX + 1];
};

static void on_quota(void *arg, const struct store_quota_row *r)
{
	struct seen *s = arg;

	s->n++;
	s->sum += r->used;
	snprintf(s->last, sizeof(s->last), "%s", r->account);
}

static void on_rep(void *arg, const struct store_rep_row *r)
{
	struct seen *s = arg;

	s->n++;
	s->sum += r->n[0] + r->n[3];
}

static void test_lists(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct store_quota_row qr[2] = {{"shop", 0, 3600, 7}, {"default", 1, 0, 2}};
	struct store_rep_row rr[2] = {{"shop", 1800, {10, 2, 1, 0}}, {"shop", 3600, {5, 0, 0, 1}}};
	struct store_deliv_flush fl;
	struct seen s = {0, 0, ""};
	char *err = NULL;

	memset(&fl, 0, sizeof(fl));
	fl.quota = qr;
	fl.n_quota = 2;
	fl.rep = rr;
	fl.n_rep = 2;
	assert_int_equal(store_deliv_flush(st, &fl, &err), 0);
	assert_int_equal(store_quota_list(st, 0, on_quota, &s, &err), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.sum, 9);
	assert_string_equal(s.last, "shop"); /* by name */
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_rep_list(st, "shop", 3600, 0, on_rep, &s, &err), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.sum, 6);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_rep_list(st, NULL, 0, 0, on_rep, &s, &err), 0);
	assert_int_equal(s.n, 2);
	/* deleting the account deletes its rows */
	assert_int_equal(store_user_del(st, "shop", &err), 0);
	memset(&s, 0, sizeof(s));
	assert_int_equal(store_rep_list(st, NULL, 0, 0, on_rep, &s, &err), 0);
	assert_int_equal(s.n, 0);
	store_close(st);
}

static void test_pause_resume(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct store_pause_row p = {"shop", 5000, "bounce rate 7.2 % over 24h (threshold 5 %)"};
	struct store_rep_row rr = {"shop", 1800, {10, 2, 1, 0}};
	struct store_account_deliv a;
	struct store_deliv_flush fl;
	char *err = NULL;

	memset(&fl, 0, sizeof(fl));
	fl.pause = &p;
	fl.n_pause = 1;
	fl.rep = &rr;
	fl.n_rep = 1;
	assert_int_equal(store_deliv_flush(st, &fl, &err), 0);
	assert_int_equal(store_account_deliv_get(st, "shop", &a, &err), 1);
	assert_int_equal(a.paused_at, 5000);
	assert_string_equal(a.paused_reason, p.reason);
	/* a pause is not moved by a later one */
	p.at = 6000;
	fl.n_rep = 0;
	assert_int_equal(store_deliv_flush(st, &fl, &err), 0);
	assert_int_equal(store_account_deliv_get(st, "shop", &a, &err), 1);
	assert_int_equal(a.paused_at, 5000);
	/* resume: 1, the pause as it was; the slots are gone */
	memset(&a, 0, sizeof(a));
	assert_int_equal(store_user_resume(st, "shop", 7000, &a, &err), 1);
	assert_int_equal(a.paused_at, 5000);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM reputation"), 0);
	assert_int_equal(store_account_deliv_get(st, "shop", &a, &err), 1);
	assert_int_equal(a.paused_at, 0);
	assert_int_equal(a.resumed_at, 7000);
	assert_string_equal(a.paused_reason, "");
	/* again: not paused, nothing changes */
	assert_int_equal(store_user_resume(st, "shop", 8000, NULL, &err), 0);
	assert_int_equal(store_account_deliv_get(st, "shop", &a, &err), 1);
	assert_int_equal(a.resumed_at, 7000);
	assert_int_equal(store_user_resume(st, "nobody", 8000, NULL, &err), STORE_NO_SUCH_ACCOUNT);
	free(err);
	store_close(st);
}

static void test_data_version(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	int64_t v1 = 0, v2 = 0, v3 = 0;
	const int set[2] = {1, 0};
	const int64_t q[2] = {5, 0};
	char *err = NULL;

	assert_int_equal(store_data_version(st, &v1, &err), 0);
	/* our own writes do not move it */
	assert_int_equal(store_user_set_quota(st, "shop", set, q, &err), 0);
	assert_int_equal(store_data_version(st, &v2, &err), 0);
	assert_int_equal(v1, v2);
	/* another connection's do */
	raw_exec(f, "UPDATE accounts SET quota_day = 3 WHERE name = 'shop'");
	assert_int_equal(store_data_version(st, &v3, &err), 0);
	assert_int_not_equal(v2, v3);
	store_close(st);
}

static void test_supp_add_many(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct store_supp_add v[4] = {
	    {"shop", "Ann@Example.org", "hard bounce: 550 5.1.1 gone", 0},
	    {"shop", "ann@example.org", "complaint (abuse)", 0},
	    {"ghost", "bob@example.org", "x", 0},
	    {"shop", "not an address", "x", 0},
	};
	struct store_supp e;
	char *err = NULL;

	assert_int_equal(store_supp_add_many(st, v, 4, &err), 1);
	assert_int_equal(v[0].added, 1);
	assert_int_equal(v[1].added, 0); /* there already: the first reason stays */
	assert_int_equal(v[2].added, STORE_SUPP_NO_ACCOUNT);
	assert_int_equal(v[3].added, STORE_SUPP_BAD_ADDRESS);
	assert_int_equal(store_supp_check(st, "shop", "ann@example.org", &e, &err), 1);
	assert_string_equal(e.reason, "hard bounce: 550 5.1.1 gone");
	assert_int_equal(store_supp_add_many(st, v, 0, &err), 0);
	store_close(st);
}

/* What node `node` flushes: hour count `used`, one slot of 1800 with
 * delivered `used` and complained 1. */
static void flush_as(struct store *st, const char *node, uint64_t used)
{
	struct store_quota_row q = {"shop", 0, 3600, used};
	struct store_rep_row r = {"shop", 1800, {used, 0, 0, 1}};
	struct store_deliv_flush fl;
	char *err = NULL;

	memset(&fl, 0, sizeof(fl));
	fl.quota = &q;
	fl.n_quota = 1;
	fl.rep = &r;
	fl.n_rep = 1;
	store_set_node(st, node);
	assert_int_equal(store_deliv_flush(st, &fl, &err), 0);
}

/* q, r: the quota rows and the slots of shop, every node's (own 0) or st's node's. */
static void read_both(struct store *st, int own, struct seen *q, struct seen *r)
{
	char *err = NULL;

	memset(q, 0, sizeof(*q));
	memset(r, 0, sizeof(*r));
	assert_int_equal(store_quota_list(st, own, on_quota, q, &err), 0);
	assert_int_equal(store_rep_list(st, "shop", 0, own, on_rep, r, &err), 0);
}

static void test_nodes_summed(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct seen q, r;

	flush_as(st, "node-a", 7);
	flush_as(st, "node-b", 5);
	flush_as(st, "node-a", 9); /* a's row again: b's stays */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM quota_counts"), 2);
	read_both(st, 0, &q, &r);
	assert_int_equal(q.n, 1); /* one row: the sum */
	assert_int_equal(q.sum, 14);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.sum, 14 + 2); /* delivered + complained, summed */
	read_both(st, 1, &q, &r);        /* st is node-a now: its own only */
	assert_int_equal(q.sum, 9);
	assert_int_equal(r.sum, 10);
	store_set_node(st, "node-c");
	read_both(st, 1, &q, &r);
	assert_int_equal(q.n + r.n, 0);
	/* a resume clears every node's slots of the account */
	raw_exec(f, "UPDATE accounts SET paused_at = 5, paused_reason = 'x' WHERE name = 'shop'");
	assert_int_equal(store_user_resume(st, "shop", 7000, NULL, NULL), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM reputation"), 0);
	store_close(st);
}

static void test_adopt_legacy(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct seen q, r;
	char *err = NULL;
	int pg = fixture_pg_url() != NULL;

	flush_as(st, "", 4); /* rows as migration 19 left them: node '' */
	flush_as(st, "node-a", 3);
	raw_exec(f, "DELETE FROM quota_counts WHERE node_id = 'node-a'");
	assert_int_equal(store_deliv_adopt(st, &err), 0);
	read_both(st, 1, &q, &r);
	/* SQLite: the old hour count is node-a's now, its slot stays its own;
	 * PostgreSQL: nobody's */
	assert_int_equal(q.sum, pg ? 0 : 4);
	assert_int_equal(r.sum, 4);
	read_both(st, 0, &q, &r); /* the stats: no row counted twice */
	assert_int_equal(q.sum, 4);
	assert_int_equal(r.sum, 4 + 1 + 3 + 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM quota_counts WHERE node_id = ''"), pg);
	store_close(st);
}

/* The two tables as migration 10 made them, one row each for shop; none
 * of what later migrations made (20: event_batches, 21: two columns of
 * nodes). */
static const char v18_tables[] =
    "DROP TABLE quota_counts; DROP TABLE reputation; DROP TABLE event_batches;"
    "ALTER TABLE nodes DROP COLUMN instance; ALTER TABLE nodes DROP COLUMN clash_host;"
    "CREATE TABLE quota_counts (account_id INTEGER NOT NULL REFERENCES accounts(id)"
    " ON DELETE CASCADE, period TEXT NOT NULL, window_start BIGINT NOT NULL,"
    " used BIGINT NOT NULL, PRIMARY KEY (account_id, period));"
    "CREATE TABLE reputation (account_id INTEGER NOT NULL REFERENCES accounts(id)"
    " ON DELETE CASCADE, slot_start BIGINT NOT NULL, delivered BIGINT NOT NULL,"
    " bounced BIGINT NOT NULL, hard BIGINT NOT NULL, complained BIGINT NOT NULL,"
    " PRIMARY KEY (account_id, slot_start));"
    "INSERT INTO quota_counts SELECT id, 'hour', 3600, 6 FROM accounts WHERE name = 'shop';"
    "INSERT INTO reputation SELECT id, 1800, 6, 0, 0, 1 FROM accounts WHERE name = 'shop';";

static void test_migration_keeps_rows(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_with_user(f, "shop");
	struct db *db;
	struct seen q, r;

	store_close(st);
	raw_exec(f, v18_tables);
	db = fixture_db(f->db);
	assert_int_equal(db_set_schema_version(db, 18), DB_OK);
	db_close(db);
	st = open_ok(f); /* migration 18 -> 19: the rows stay, as node '' */
	assert_int_equal(raw_int(f, "SELECT count(*) FROM quota_counts WHERE node_id = ''"), 1);
	assert_int_equal(raw_int(f, "SELECT count(*) FROM reputation WHERE node_id = ''"), 1);
	flush_as(st, "node-a", 2);
	read_both(st, 0, &q, &r);
	assert_int_equal(q.sum, 8);
	assert_int_equal(r.sum, 7 + 3);
	read_both(st, 1, &q, &r); /* not adopted yet: node-a's own only */
	assert_int_equal(q.sum, 2);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_quota_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_and_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flush_many_verp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_data_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_supp_add_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nodes_summed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_adopt_legacy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration_keeps_rows, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
