/*
 * test_sched_dest: the scheduler's memory follows what is in use: the
 * sweep that frees idle destinations, only when nothing refers to one and
 * forgetting it loses nothing (sched_fixture.h). The tables themselves are
 * util/htable, tested on their own (test_htable.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sched_fixture.h"

/* ---- the sweep of idle destinations ---- */

static void test_sweep_idle(void **state)
{
	struct sched_stats st;
	struct dest *d;
	int64_t now = sched_now_ms();
	struct fx f;

	fx_open(&f, "sweep");
	d = sched_dest_get(f.s, "idle.example");
	assert_ptr_equal(sched_dest_get(f.s, "idle.example"), d); /* one per name */
	/* just used: kept */
	assert_int_equal(sched_dest_sweep(f.s, now + SCHED_DEST_IDLE_MS / 2), 0);
	sched_get_stats(f.s, &st);
	assert_int_equal(st.destinations, 1);
	/* idle long enough: freed */
	assert_int_equal(sched_dest_sweep(f.s, now + SCHED_DEST_IDLE_MS + 1000), 1);
	sched_get_stats(f.s, &st);
	assert_int_equal(st.destinations, 0);
	/* and made again, fresh, on next use */
	d = sched_dest_get(f.s, "idle.example");
	assert_int_equal(d->n_items, 0);
	assert_int_equal(htable_count(&f.s->dests), 1);
	fx_close(&f);
}

/* Each thing that refers to a destination, or that a fresh one would
 * forget, keeps it. */
static void test_sweep_keeps_what_is_needed(void **state)
{
	static const char *const to[] = {"a@busy.example"};
	int64_t later = sched_now_ms() + 10 * SCHED_DEST_IDLE_MS;
	struct smtpc_verdict v;
	struct dest *d;
	char id[ID_LEN + 1];
	struct fx f;

	fx_open(&f, "keep");
	/* a queued item (ready, then deferred in the heap) */
	commit(&f, SENDER, to, NULL, 1, 0, id);
	assert_int_equal(sched_dest_sweep(f.s, later), 0);
	verdict(&v, SMTPC_ACT_DEFER, "later");
	apply(&f, start_item(&f, "busy.example"), &v, 1);
	smtpc_verdict_clear(&v);
	assert_int_equal(f.s->heap_n, 1);
	assert_int_equal(sched_dest_sweep(f.s, later), 0);
	/* delivered: nothing refers to it any more */
	assert_int_equal(sched_retry(f.s, id), 1);
	verdict(&v, SMTPC_ACT_OK, "ok");
	apply(&f, start_item(&f, "busy.example"), &v, 1);
	smtpc_verdict_clear(&v);
	d = sched_dest_get(f.s, "busy.example");
	/* a route lookup in flight */
	d->route_id = 7;
	assert_int_equal(sched_dest_sweep(f.s, later), 0);
	d->route_id = 0;
	/* a pause after a push back, still running */
	d->shape.hold_until_ms = later + 1;
	assert_int_equal(sched_dest_sweep(f.s, later), 0);
	d->shape.hold_until_ms = 0;
	assert_int_equal(sched_dest_sweep(f.s, later), 1);
	assert_int_equal(htable_count(&f.s->dests), 0);
	/* a rate limit (1/h here) whose bucket has not refilled a token yet */
	d = sched_dest_get(f.s, "slow.example");
	assert_int_equal(d->lim->max_rate, 1);
	d->rate.tokens = 0;
	d->rate.at_ms = later - 1800 * 1000;
	assert_int_equal(sched_dest_sweep(f.s, later), 0);
	assert_int_equal(sched_dest_sweep(f.s, later + 1801 * 1000), 1);
	fx_close(&f);
}

/* A thousand domains seen once: the index keeps none of them. */
static void test_sweep_many(void **state)
{
	char addr[64], id[ID_LEN + 1];
	const char *to[1] = {addr};
	struct smtpc_verdict v;
	struct fx f;
	int i;

	fx_open(&f, "many");
	verdict(&v, SMTPC_ACT_OK, "ok");
	for (i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "u@d%d.example", i);
		commit(&f, SENDER, to, NULL, 1, 0, id);
		apply(&f, start_item(&f, addr + 2), &v, 1);
	}
	smtpc_verdict_clear(&v);
	assert_int_equal(htable_count(&f.s->dests), 1000);
	assert_true(htable_buckets(&f.s->dests) >= 1000);
	assert_int_equal(sched_dest_sweep(f.s, sched_now_ms() + SCHED_DEST_IDLE_MS + 1), 1000);
	assert_int_equal(htable_count(&f.s->dests), 0);
	assert_int_equal(htable_count(&f.s->msgs), 0);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sweep_idle),
	    cmocka_unit_test(test_sweep_keeps_what_is_needed),
	    cmocka_unit_test(test_sweep_many),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
