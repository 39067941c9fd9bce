/*
 * Unit tests for store/store_nodes (the nodes' heartbeats): a beat
 * inserts then updates a node's row, a stop marks it stopped and the next
 * beat clears the mark, rows are listed by ID with their values (NULL
 * round trips as -1; on SQLite the database's round trip is not
 * measured), and the state is up, stale from STORE_NODE_STALE_S after the
 * last beat, or stopped. A stop of an unknown node changes nothing. A
 * forget deletes a stale or stopped node's row and tag claim, refuses an
 * up one unless forced, and knows no unknown ID.
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

static void beat(struct store *st, const char *id, int64_t at, int64_t msgs, int64_t redis_us)
{
	struct store_node n = {.id = (char *)id,
	                       .hostname = "mx.test",
	                       .version = "9.9",
	                       .started_at = 1000,
	                       .beat_at = at,
	                       .stopped_at = -1,
	                       .messages = msgs,
	                       .recipients = msgs * 2,
	                       .redis_us = redis_us};
	char *err = NULL;

	assert_int_equal(store_node_beat(st, &n, &err), 0);
	assert_null(err);
	if (!fixture_pg_url())
		assert_int_equal(n.pg_us, -1); /* SQLite: nothing to measure */
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

	assert_int_equal(store_node_stop(st, "NODEB", 2010, &err), 0);
	assert_int_equal(store_node_stop(st, "NOBODY", 2010, &err), 0);
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
	assert_int_equal(store_node_stop(st, "STOPPD", now, &err), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_beat_list_stop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
