/*
 * Unit tests for store/store_nodes (the nodes' heartbeats): a beat
 * inserts then updates a node's row, a stop marks it stopped and the next
 * beat clears the mark, rows are listed by ID with their values (NULL
 * round trips as -1; on SQLite the database's round trip is not
 * measured), and the state is up, stale from STORE_NODE_STALE_S after the
 * last beat, or stopped. A stop of an unknown node changes nothing. A
 * forget deletes a stale or stopped node's row and tag claim, refuses an
 * up one unless forced, and knows no unknown ID. A node whose beats
 * stalled loses its tag to a node claiming it meanwhile: listed with the
 * other as its tag's holder and judged lost while up, until its claim at
 * a later beat gets the tag back once the other stopped. Two processes
 * writing one node's row: each beat sees the other's instance token in the
 * row as it was, the row keeps the clash host the writer saw, and a stop
 * marks the row only when the stopping process wrote it last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store_nodes.h"
#include "store_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("nodes");

	assert_non_null(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* A beat of node id by process inst with clash_host clash, at and its
 * queue; the row as it was in *prev. */
static void beat_full(struct store *st, const char *id, const char *inst, const char *clash,
                      int64_t at, int64_t msgs, int64_t redis_us, struct store_node *prev)
{
	struct store_node n = {.id = (char *)id,
	                       .hostname = "mx.test",
	                       .version = "9.9",
	                       .started_at = 1000,
	                       .beat_at = at,
	                       .stopped_at = -1,
	                       .messages = msgs,
	                       .recipients = msgs * 2,
	                       .redis_us = redis_us,
	                       .instance = (char *)inst,
	                       .clash_host = (char *)clash};
	char *err = NULL;

	assert_int_equal(store_node_beat(st, &n, prev, NULL, NULL, &err), 0);
	assert_null(err);
	if (!fixture_pg_url())
		assert_int_equal(n.pg_us, -1); /* SQLite: nothing to measure */
}

static void beat_as(struct store *st, const char *id, const char *inst, const char *clash,
                    int64_t at, struct store_node *prev)
{
	beat_full(st, id, inst, clash, at, 0, -1, prev);
}

static void beat(struct store *st, const char *id, int64_t at, int64_t msgs, int64_t redis_us)
{
	struct store_node prev;

	beat_full(st, id, "I1", NULL, at, msgs, redis_us, &prev);
	store_node_clear(&prev);
}

static void test_beat_list_stop(void **state)
{
	struct store *st = open_ok(*state);
	struct store_node *v;
	size_t n;
	char *err = NULL;

	assert_int_equal(store_nodes_list(st, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	store_nodes_free(v, n);
	beat(st, "NODEB", 2000, 3, 250);
	beat(st, "NODEA", 2000, 1, -1);
	beat(st, "NODEB", 2005, 4, 300); /* the same row, updated */
	assert_int_equal(store_nodes_list(st, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "NODEA");
	assert_int_equal(v[0].redis_us, -1);
	assert_string_equal(v[1].id, "NODEB");
	assert_string_equal(v[1].hostname, "mx.test");
	assert_string_equal(v[1].version, "9.9");
	assert_int_equal(v[1].started_at, 1000);
	assert_int_equal(v[1].beat_at, 2005);
	assert_int_equal(v[1].stopped_at, -1);
	assert_int_equal(v[1].messages, 4);
	assert_int_equal(v[1].recipients, 8);
	assert_int_equal(v[1].redis_us, 300);
	assert_string_equal(store_node_state(&v[1], 2005 + STORE_NODE_STALE_S - 1), "up");
	assert_string_equal(store_node_state(&v[1], 2005 + STORE_NODE_STALE_S), "stale");
	store_nodes_free(v, n);

	assert_int_equal(store_node_stop(st, "NODEB", "I1", 2010, &err), 0);
	assert_int_equal(store_node_stop(st, "NOBODY", "I1", 2010, &err), 0);
	assert_int_equal(store_nodes_list(st, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[1].stopped_at, 2010);
	assert_int_equal(v[1].beat_at, 2010);
	assert_string_equal(store_node_state(&v[1], 99999), "stopped"); /* never stale */
	store_nodes_free(v, n);

	beat(st, "NODEB", 3000, 0, 100); /* restarted */
	assert_int_equal(store_nodes_list(st, &v, &n, &err), 0);
	assert_int_equal(v[1].stopped_at, -1);
	assert_string_equal(store_node_state(&v[1], 3000), "up");
	store_nodes_free(v, n);
	store_close(st);
}

static size_t count(struct store *st)
{
	struct store_node *v;
	size_t n;
	char *err = NULL;

	assert_int_equal(store_nodes_list(st, &v, &n, &err), 0);
	store_nodes_free(v, n);
	return n;
}

static void test_forget(void **state)
{
	struct store *st = open_ok(*state);
	int64_t now = 5000;
	char *err = NULL, *holder = NULL;

	beat(st, "UPNODE", now - STORE_NODE_STALE_S + 1, 0, -1);
	beat(st, "STALEX", now - STORE_NODE_STALE_S, 0, -1);
	beat(st, "STOPPD", now, 0, -1);
	assert_int_equal(store_node_stop(st, "STOPPD", "I1", now, &err), 0);
	assert_int_equal(store_node_tag_claim(st, "STALEX", now - 100, &holder, &err), 1);
	free(holder);
	assert_int_equal(store_node_forget(st, "UPNODE", now, 0, &err), STORE_FORGET_UP);
	assert_int_equal(store_node_forget(st, "NOBODY", now, 0, &err), STORE_FORGET_UNKNOWN);
	assert_int_equal(count(st), 3);
	assert_int_equal(store_node_forget(st, "STALEX", now, 0, &err), STORE_FORGOT);
	assert_int_equal(store_node_forget(st, "STOPPD", now, 0, &err), STORE_FORGOT);
	assert_int_equal(store_node_forget(st, "STALEX", now, 0, &err), STORE_FORGET_UNKNOWN);
	assert_int_equal(count(st), 1);
	/* an up node's tag is held; forced, its row and claim go */
	assert_int_equal(store_node_tag_claim(st, "UPNODE", now, &holder, &err), 1);
	free(holder);
	assert_int_equal(store_node_tag_claim(st, "UPNOTHER", now, &holder, &err), 0);
	free(holder);
	assert_int_equal(store_node_forget(st, "UPNODE", now, 1, &err), STORE_FORGOT);
	assert_int_equal(count(st), 0);
	assert_int_equal(store_node_tag_claim(st, "UPNOTHER", now, &holder, &err), 1);
	free(holder);
	/* a claim without a row is forgotten too */
	assert_int_equal(store_node_forget(st, "UPNOTHER", now, 0, &err), STORE_FORGOT);
	assert_int_equal(store_node_forget(st, "UPNOTHER", now, 0, &err), STORE_FORGET_UNKNOWN);
	assert_null(err);
	store_close(st);
}

/* The tag's holder of node id in the list, and whether id lost its tag. */
static int lost(struct store *st, const char *id, int64_t now, const char *want_holder)
{
	struct store_node *v;
	size_t n;
	char *err = NULL;
	int rc = -1;

	assert_int_equal(store_nodes_list(st, &v, &n, &err), 0);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].id, id) != 0)
			continue;
		assert_non_null(v[i].tag_holder);
		assert_string_equal(v[i].tag_holder, want_holder);
		rc = store_node_tag_lost(&v[i], now);
	}
	store_nodes_free(v, n);
	return rc;
}

static void test_tag_lost_and_regained(void **state)
{
	struct store *st = open_ok(*state);
	int64_t t = 7000;
	char *err = NULL, *holder = NULL;

	beat(st, "ABCONE", t, 0, -1);
	assert_int_equal(store_node_tag_claim(st, "ABCONE", t, &holder, &err), 1);
	free(holder);
	assert_int_equal(lost(st, "ABCONE", t, "ABCONE"), 0);
	/* ABCONE's beats stall for STORE_NODE_STALE_S: ABCTWO takes the tag */
	t += STORE_NODE_STALE_S;
	beat(st, "ABCTWO", t, 0, -1);
	assert_int_equal(store_node_tag_claim(st, "ABCTWO", t, &holder, &err), 1);
	free(holder);
	/* ABCONE's next beat and claim find it held by a live node */
	beat(st, "ABCONE", t + 1, 0, -1);
	assert_int_equal(store_node_tag_claim(st, "ABCONE", t + 1, &holder, &err), 0);
	assert_string_equal(holder, "ABCTWO");
	free(holder);
	assert_int_equal(lost(st, "ABCONE", t + 1, "ABCTWO"), 1);
	assert_int_equal(lost(st, "ABCTWO", t + 1, "ABCTWO"), 0);
	/* a lost node that is not up is not reported */
	assert_int_equal(lost(st, "ABCONE", t + 1 + STORE_NODE_STALE_S, "ABCTWO"), 0);
	/* ABCTWO's own claim is renewed; once it stops, ABCONE gets the tag back */
	assert_int_equal(store_node_tag_claim(st, "ABCTWO", t + 2, &holder, &err), 1);
	free(holder);
	assert_int_equal(store_node_stop(st, "ABCTWO", "I1", t + 3, &err), 0);
	assert_int_equal(store_node_tag_claim(st, "ABCONE", t + 4, &holder, &err), 1);
	free(holder);
	assert_int_equal(lost(st, "ABCONE", t + 4, "ABCONE"), 0);
	store_close(st);
}

/* The one row of the store. */
static void only_row(struct store *st, struct store_node *out)
{
	struct store_node *v;
	size_t n;
	char *err = NULL;

	assert_int_equal(store_nodes_list(st, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	*out = v[0];
	memset(&v[0], 0, sizeof(v[0]));
	store_nodes_free(v, n);
}

static void test_two_processes_one_id(void **state)
{
	struct store *st = open_ok(*state);
	struct store_node prev, row;
	char *err = NULL;

	beat_as(st, "NODEC", "AAAA", NULL, 100, &prev);
	assert_null(prev.instance);                     /* no row before */
	beat_as(st, "NODEC", "BBBB", NULL, 102, &prev); /* a second process */
	assert_string_equal(prev.instance, "AAAA");
	assert_string_equal(prev.hostname, "mx.test");
	assert_int_equal(prev.beat_at, 100);
	assert_int_equal(prev.stopped_at, -1);
	store_node_clear(&prev);
	beat_as(st, "NODEC", "AAAA", "mx.test", 105, &prev);
	assert_string_equal(prev.instance, "BBBB");
	store_node_clear(&prev);
	only_row(st, &row);
	assert_string_equal(row.instance, "AAAA");
	assert_string_equal(row.clash_host, "mx.test");
	assert_int_equal(store_node_id_clash(&row, 105), 1);
	assert_int_equal(store_node_id_clash(&row, 105 + STORE_NODE_STALE_S), 0); /* stale */
	store_node_clear(&row);
	/* BBBB stops while AAAA wrote last: the row stays up */
	assert_int_equal(store_node_stop(st, "NODEC", "BBBB", 106, &err), 0);
	only_row(st, &row);
	assert_string_equal(store_node_state(&row, 106), "up");
	assert_int_equal(row.beat_at, 105);
	store_node_clear(&row);
	/* the clash over: no clash_host; AAAA's own stop marks the row */
	beat_as(st, "NODEC", "AAAA", NULL, 110, &prev);
	assert_string_equal(prev.instance, "AAAA");
	store_node_clear(&prev);
	only_row(st, &row);
	assert_null(row.clash_host);
	assert_int_equal(store_node_id_clash(&row, 110), 0);
	store_node_clear(&row);
	assert_int_equal(store_node_stop(st, "NODEC", "AAAA", 111, &err), 0);
	beat_as(st, "NODEC", "CCCC", NULL, 120, &prev); /* restarted: sees the stop */
	assert_string_equal(prev.instance, "AAAA");
	assert_int_equal(prev.stopped_at, 111);
	store_node_clear(&prev);
	assert_null(err);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_beat_list_stop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tag_lost_and_regained, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_processes_one_id, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
