/*
 * test_sched_dest: the scheduler's memory follows what is in use. The hash
 * table behind the message and destination indexes (grows, shrinks, walks
 * while deleting; checked against a plain reference on random operations),
 * and the sweep that frees idle destinations: only when nothing refers to
 * one and forgetting it loses nothing (sched_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sched_fixture.h"

/* ---- the table ---- */

#define KEYS 4000

struct entry {
	struct sched_hnode hn;
	char key[16];
	int in;
};

static const char *entry_key(const struct sched_hnode *n)
{
	return SCHED_ENTRY(n, struct entry, hn)->key;
}

static size_t walk_count(const struct sched_tab *t, const struct entry *e)
{
	struct sched_hnode *n;
	size_t b, seen = 0;
	int *hit = xcalloc(KEYS, sizeof(*hit));

	for (n = sched_tab_next(t, &b, NULL); n; n = sched_tab_next(t, &b, n)) {
		const struct entry *x = SCHED_ENTRY(n, struct entry, hn);
		size_t i = (size_t)(x - e);
		assert_true(i < KEYS && x->in);
		assert_int_equal(hit[i]++, 0); /* each once */
		seen++;
	}
	free(hit);
	return seen;
}

static void test_tab_random(void **state)
{
	struct entry *e = xcalloc(KEYS, sizeof(*e));
	struct sched_tab t;
	size_t i, n = 0, top = 0;
	unsigned seed = 12345;
	int op;

	sched_tab_init(&t, entry_key);
	for (i = 0; i < KEYS; i++)
		snprintf(e[i].key, sizeof(e[i].key), "k%zu", i);
	for (op = 0; op < 200000; op++) {
		seed = seed * 1103515245u + 12345u;
		i = (seed >> 8) % KEYS;
		if (!e[i].in && (seed & 1)) {
			sched_tab_add(&t, &e[i].hn);
			e[i].in = 1, n++;
		} else if (e[i].in && !(seed & 1)) {
			sched_tab_del(&t, &e[i].hn);
			e[i].in = 0, n--;
		}
		assert_int_equal(t.n, n);
		if (sched_tab_find(&t, e[i].key) != (e[i].in ? &e[i].hn : NULL))
			fail_msg("op %d: find %s", op, e[i].key);
		if (t.size > top)
			top = t.size;
	}
	assert_int_equal(walk_count(&t, e), n);
	/* about half the keys are in: the table grew past them */
	assert_true(top >= n && t.size >= n);
	sched_tab_fini(&t);
	free(e);
}

static void test_tab_grow_shrink_walk(void **state)
{
	struct entry *e = xcalloc(KEYS, sizeof(*e));
	struct sched_hnode *n, *next;
	struct sched_tab t;
	size_t i, b, deleted = 0;

	sched_tab_init(&t, entry_key);
	assert_int_equal(t.size, SCHED_TAB_MIN);
	for (i = 0; i < KEYS; i++) {
		snprintf(e[i].key, sizeof(e[i].key), "k%zu", i);
		sched_tab_add(&t, &e[i].hn);
		e[i].in = 1;
		assert_true(t.n <= t.size); /* one entry a bucket on average */
	}
	assert_true(t.size >= KEYS);
	/* delete every other entry during a walk */
	for (n = sched_tab_next(&t, &b, NULL); n; n = next) {
		struct entry *x = SCHED_ENTRY(n, struct entry, hn);
		next = sched_tab_next(&t, &b, n);
		if ((x - e) % 2 == 0) {
			sched_tab_del(&t, n);
			x->in = 0;
			deleted++;
		}
	}
	assert_int_equal(deleted, KEYS / 2);
	assert_int_equal(walk_count(&t, e), KEYS / 2);
	/* nearly empty: the next add gives memory back */
	for (i = 1; i < KEYS; i += 2)
		sched_tab_del(&t, &e[i].hn), e[i].in = 0;
	sched_tab_add(&t, &e[0].hn);
	e[0].in = 1;
	assert_true(t.size < KEYS);
	for (i = 0; i < 50; i++)
		sched_tab_add(&t, &e[2 * i + 2].hn), e[2 * i + 2].in = 1;
	assert_int_equal(t.size, SCHED_TAB_MIN);
	assert_int_equal(walk_count(&t, e), 51);
	assert_ptr_equal(sched_tab_find(&t, "k2"), &e[2].hn);
	assert_null(sched_tab_find(&t, "k3"));
	sched_tab_fini(&t);
	free(e);
}

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
	assert_int_equal(f.s->dests.n, 1);
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
	assert_int_equal(f.s->dests.n, 0);
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
	assert_int_equal(f.s->dests.n, 1000);
	assert_true(f.s->dests.size >= 1000);
	assert_int_equal(sched_dest_sweep(f.s, sched_now_ms() + SCHED_DEST_IDLE_MS + 1), 1000);
	assert_int_equal(f.s->dests.n, 0);
	assert_int_equal(f.s->msgs.n, 0);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tab_random), cmocka_unit_test(test_tab_grow_shrink_walk),
	    cmocka_unit_test(test_sweep_idle), cmocka_unit_test(test_sweep_keeps_what_is_needed),
	    cmocka_unit_test(test_sweep_many),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
