/*
 * Unit tests for sched/sched_policy (PURE): the retry schedule (steps, the
 * last step repeating, expiry at queue_lifetime and its edges, overflow),
 * delay notices (the previous attempt's time, one notice per recipient),
 * the rate limit's token bucket (burst, refill, waits) and destination
 * shaping (additive increase, multiplicative decrease,
 * growing pauses, deferral runs), with time moved by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched/sched_policy.h"
#include "util/util.h"

#define DAY 86400

/* ---------- retry schedule ---------- */

static const uint64_t steps3[] = {60, 300, 900};

static int64_t retry_at(uint32_t attempts, int64_t created, uint64_t lifetime, int64_t now)
{
	int64_t next = -1;

	assert_int_equal(
	    sched_retry_next(steps3, ARRAY_LEN(steps3), attempts, created, lifetime, now, &next),
	    SCHED_RETRY_AT);
	return next;
}

static void test_retry_steps(void **state)
{
	(void)state;
	assert_int_equal(retry_at(1, 1000, 5 * DAY, 1000), 1060);
	assert_int_equal(retry_at(2, 1000, 5 * DAY, 1060), 1360);
	assert_int_equal(retry_at(3, 1000, 5 * DAY, 1360), 2260);
	/* the last step repeats */
	assert_int_equal(retry_at(4, 1000, 5 * DAY, 2260), 3160);
	assert_int_equal(retry_at(50, 1000, 5 * DAY, 5000), 5900);
	assert_int_equal(retry_at(UINT32_MAX, 1000, 5 * DAY, 5000), 5900);
	/* attempts 0 reads as the first */
	assert_int_equal(retry_at(0, 1000, 5 * DAY, 1000), 1060);
	/* the step counts from the failure, not from the previous plan */
	assert_int_equal(retry_at(2, 1000, 5 * DAY, 1500), 1800);
}

static void test_retry_single_step(void **state)
{
	static const uint64_t one[] = {3600};
	int64_t next;
	uint32_t a;

	(void)state;
	for (a = 0; a < 10; a++) {
		assert_int_equal(sched_retry_next(one, 1, a, 0, DAY, 7200, &next), SCHED_RETRY_AT);
		assert_int_equal(next, 10800);
	}
}

static void test_retry_expiry_edges(void **state)
{
	int64_t deadline = 1000 + 5 * DAY, next = 42;

	(void)state;
	/* at or past the deadline: expire, *next untouched */
	assert_int_equal(sched_retry_next(steps3, 3, 9, 1000, 5 * DAY, deadline, &next),
	                 SCHED_RETRY_EXPIRE);
	assert_int_equal(sched_retry_next(steps3, 3, 9, 1000, 5 * DAY, deadline + 1, &next),
	                 SCHED_RETRY_EXPIRE);
	assert_int_equal(next, 42);
	/* a second before: one last attempt at the deadline itself */
	assert_int_equal(retry_at(9, 1000, 5 * DAY, deadline - 1), deadline);
	/* a step that ends exactly at the deadline, and one that ends before */
	assert_int_equal(retry_at(9, 1000, 5 * DAY, deadline - 900), deadline);
	assert_int_equal(retry_at(9, 1000, 5 * DAY, deadline - 901), deadline - 1);
	/* lifetime 0: the first failure bounces */
	assert_int_equal(sched_retry_next(steps3, 3, 1, 1000, 0, 1000, &next), SCHED_RETRY_EXPIRE);
	/* a creation time ahead of the clock (skew) still gives a sane plan */
	assert_int_equal(retry_at(1, 2000, 100, 1000), 1060);
	assert_int_equal(retry_at(1, 2000, 100, 2050), 2100);
}

static void test_retry_overflow(void **state)
{
	static const uint64_t huge[] = {UINT64_MAX};
	int64_t next;

	(void)state;
	/* a lifetime beyond int64 never expires and never wraps */
	assert_int_equal(retry_at(1, 1000, UINT64_MAX, 1000), 1060);
	assert_int_equal(retry_at(1, INT64_MAX - 5, 10, INT64_MAX - 100), INT64_MAX - 40);
	assert_int_equal(sched_retry_next(huge, 1, 1, 0, UINT64_MAX, 1000, &next), SCHED_RETRY_AT);
	assert_true(next == INT64_MAX);
	assert_int_equal(sched_retry_next(huge, 1, 1, 0, DAY, 1000, &next), SCHED_RETRY_AT);
	assert_int_equal(next, DAY);
	assert_int_equal(retry_at(1, -1000, 2000, 0), 60); /* times before 1970 */
}

/* The configured default, walked from acceptance to the bounce. */
static void test_retry_default_walk(void **state)
{
	static const uint64_t dflt[] = {60, 300, 900, 1800, 3600, 7200, 14400};
	int64_t created = 1700000000, now = created, next, prev = created;
	uint32_t attempts = 0;

	(void)state;
	for (;;) {
		attempts++; /* an attempt at now fails */
		if (sched_retry_next(dflt, ARRAY_LEN(dflt), attempts, created, 5 * DAY, now,
		                     &next) == SCHED_RETRY_EXPIRE)
			break;
		assert_true(next > now);
		assert_true(next <= created + 5 * DAY);
		if (attempts > ARRAY_LEN(dflt) && next < created + 5 * DAY)
			assert_int_equal(next - now, 14400);
		prev = now;
		now = next;
	}
	/* the bounce comes at the deadline, after an attempt there */
	assert_int_equal(now, created + 5 * DAY);
	assert_true(prev < now);
	/* 8 attempts span the 7 listed waits (28,260 s), then 4 h steps, then
	 * one more at the deadline */
	assert_int_equal(attempts, 8 + (5 * DAY - 28260) / 14400 + 1);
}

/* ---------- delay notices ---------- */

static void test_prev_attempt(void **state)
{
	(void)state;
	/* the first attempt has no previous one */
	assert_int_equal(sched_prev_attempt(steps3, 3, 1, 5000), 0);
	assert_int_equal(sched_prev_attempt(steps3, 3, 0, 5000), 0);
	/* attempt 2 was planned by attempt 1, one step 0 (60 s) later */
	assert_int_equal(sched_prev_attempt(steps3, 3, 2, 1060), 1000);
	assert_int_equal(sched_prev_attempt(steps3, 3, 3, 1360), 1060);
	assert_int_equal(sched_prev_attempt(steps3, 3, 4, 2260), 1360);
	/* past the list: the last step */
	assert_int_equal(sched_prev_attempt(steps3, 3, 40, 9900), 9000);
	assert_int_equal(sched_prev_attempt(steps3, 3, UINT32_MAX, 9900), 9000);
	/* a record that never planned anything, or a nonsense plan */
	assert_int_equal(sched_prev_attempt(steps3, 3, 5, 0), 0);
	assert_int_equal(sched_prev_attempt(steps3, 3, 5, 100), 0);
	assert_int_equal(sched_prev_attempt(steps3, 3, 5, -7), 0);
}

static void test_delay_due(void **state)
{
	static const struct {
		int64_t prev, now;
		uint64_t warn;
		int want;
	} t[] = {
	    {0, 1000 + 3600, 3600, 1},           /* the first crossing */
	    {0, 1000 + 3599, 3600, 0},           /* not yet */
	    {1000 + 1800, 1000 + 7200, 3600, 1}, /* crossed since the last attempt */
	    {1000 + 3600, 1000 + 7200, 3600, 0}, /* the last attempt saw it: sent */
	    {1000 + 4000, 1000 + 9000, 3600, 0}, {0, 1000 + 4000, 0, 0}, /* notices off */
	    {0, INT64_MAX, UINT64_MAX, 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_LEN(t); i++)
		if (sched_delay_due(1000, t[i].warn, t[i].prev, t[i].now) != t[i].want)
			fail_msg("row %zu", i);
	/* no overflow near the end of time */
	assert_int_equal(sched_delay_due(INT64_MAX - 10, 3600, 0, INT64_MAX), 0);
}

/* Walked with the default schedule: exactly one attempt sends the notice,
 * the first one at or after the moment, and none after. */
static void test_delay_one_notice(void **state)
{
	static const uint64_t dflt[] = {60, 300, 900, 1800, 3600, 7200, 14400};
	const uint64_t warn = 4 * 3600;
	int64_t created = 1700000000, now = created, due = 0, next, prev;
	uint32_t attempts = 0;
	int notices = 0;

	(void)state;
	while (sched_retry_next(dflt, ARRAY_LEN(dflt), ++attempts, created, 5 * DAY, now, &next) ==
	       SCHED_RETRY_AT) {
		prev = sched_prev_attempt(dflt, ARRAY_LEN(dflt), attempts, due);
		if (sched_delay_due(created, warn, prev, now)) {
			notices++;
			assert_true(now >= created + (int64_t)warn);
			assert_true(prev < created + (int64_t)warn);
		}
		due = next;
		now = next;
	}
	assert_int_equal(notices, 1);
}

/* ---------- rate limit ---------- */

static void test_bucket_unlimited(void **state)
{
	struct sched_bucket b;
	int64_t wait = -1;
	int i;

	(void)state;
	sched_bucket_init(&b, 0);
	for (i = 0; i < 1000; i++) {
		assert_int_equal(sched_bucket_take(&b, 0, 3600, SCHED_RATE_BURST, 0, &wait), 1);
		assert_int_equal(sched_bucket_take(&b, 10, 0, SCHED_RATE_BURST, 0, &wait), 1);
	}
	assert_int_equal(wait, -1);
}

/* 60/m: one at once, then one a second; a quiet spell buys a burst. */
static void test_bucket_rate_and_burst(void **state)
{
	struct sched_bucket b;
	int64_t wait = 0, t = 1000;
	int n;

	(void)state;
	sched_bucket_init(&b, t);
	assert_int_equal(sched_bucket_take(&b, 60, 60, SCHED_RATE_BURST, t, &wait), 1);
	assert_int_equal(sched_bucket_take(&b, 60, 60, SCHED_RATE_BURST, t, &wait), 0);
	assert_in_range(wait, 1000, 1001);
	assert_int_equal(sched_bucket_take(&b, 60, 60, SCHED_RATE_BURST, t + 500, &wait), 0);
	assert_in_range(wait, 500, 501);
	assert_int_equal(sched_bucket_take(&b, 60, 60, SCHED_RATE_BURST, t + 1000, &wait), 1);
	/* an hour of silence refills SCHED_RATE_BURST tokens, no more */
	t += 3600 * 1000;
	for (n = 0; sched_bucket_take(&b, 60, 60, SCHED_RATE_BURST, t, &wait); n++)
		;
	assert_int_equal(n, SCHED_RATE_BURST);
	/* the burst is the caller's parameter */
	t += 3600 * 1000;
	for (n = 0; sched_bucket_take(&b, 60, 60, 3, t, &wait); n++)
		;
	assert_int_equal(n, 3);
	/* 0 reads as 1 */
	t += 3600 * 1000;
	for (n = 0; sched_bucket_take(&b, 60, 60, 0, t, &wait); n++)
		;
	assert_int_equal(n, 1);
}

/* A rate below the burst caps the burst: 2/h never sends 10 at once. */
static void test_bucket_slow_rate(void **state)
{
	struct sched_bucket b;
	int64_t wait = 0, t = 0;
	int n;

	(void)state;
	sched_bucket_init(&b, t);
	t += 86400 * 1000LL;
	for (n = 0; sched_bucket_take(&b, 2, 3600, SCHED_RATE_BURST, t, &wait); n++)
		;
	assert_int_equal(n, 2);
	assert_in_range(wait, 1800 * 1000, 1800 * 1000 + 1);
}

/* Over a long run the rate holds whatever the burst: at 1/s, 100 s give
 * the first token and 100 more, and no burst on top of them. */
static void test_bucket_long_run(void **state)
{
	struct sched_bucket b;
	int64_t wait = 0, t;
	int sent = 0;

	(void)state;
	sched_bucket_init(&b, 0);
	for (t = 0; t <= 100 * 1000; t += 10)
		while (sched_bucket_take(&b, 1, 1, SCHED_RATE_BURST, t, &wait))
			sent++;
	assert_in_range(sent, 100, 101);
}

static void test_bucket_clock_backwards(void **state)
{
	struct sched_bucket b;
	int64_t wait = 0;

	(void)state;
	sched_bucket_init(&b, 50000);
	assert_int_equal(sched_bucket_take(&b, 1, 1, SCHED_RATE_BURST, 50000, &wait), 1);
	/* an earlier time refills nothing and still gives a positive wait */
	assert_int_equal(sched_bucket_take(&b, 1, 1, SCHED_RATE_BURST, 10000, &wait), 0);
	assert_true(wait >= 1);
	assert_int_equal(sched_bucket_take(&b, 1, 1, SCHED_RATE_BURST, 10000 + 1001, &wait), 1);
}

/* A bucket may be forgotten once a fresh one would not send earlier. */
static void test_bucket_rested(void **state)
{
	struct sched_bucket b;
	int64_t wait = 0;

	(void)state;
	sched_bucket_init(&b, 0);
	assert_true(sched_bucket_rested(&b, 1, 60, 0)); /* fresh: one token */
	assert_int_equal(sched_bucket_take(&b, 1, 60, SCHED_RATE_BURST, 0, &wait), 1);
	assert_false(sched_bucket_rested(&b, 1, 60, 0));
	assert_false(sched_bucket_rested(&b, 1, 60, 59000));
	assert_true(sched_bucket_rested(&b, 1, 60, 60000));
	assert_false(sched_bucket_rested(&b, 1, 60, -5)); /* clock went back */
	/* no limit: always */
	assert_true(sched_bucket_rested(&b, 0, 60, 0));
	assert_true(sched_bucket_rested(&b, 5, 0, 0));
}

/* ---------- shaping ---------- */

static void test_shape_init(void **state)
{
	struct sched_shape s;

	(void)state;
	sched_shape_init(&s, 20);
	assert_int_equal(s.window, SCHED_WINDOW_START);
	assert_int_equal(s.max, 20);
	assert_int_equal(s.backoff_ms, 0);
	assert_true(sched_shape_may_connect(&s, 0, 0));
	assert_true(sched_shape_may_connect(&s, SCHED_WINDOW_START - 1, 0));
	assert_false(sched_shape_may_connect(&s, SCHED_WINDOW_START, 0));
	sched_shape_init(&s, 3);
	assert_int_equal(s.window, 3);
	sched_shape_init(&s, 0);
	assert_int_equal(s.max, 1);
	assert_int_equal(s.window, 1);
}

static void test_shape_additive_increase(void **state)
{
	struct sched_shape s;
	unsigned w, i;

	(void)state;
	sched_shape_init(&s, 8);
	/* window w grows to w+1 after w deliveries */
	for (w = SCHED_WINDOW_START; w < 8; w++) {
		for (i = 0; i + 1 < w; i++) {
			sched_shape_success(&s);
			assert_int_equal(s.window, w);
		}
		sched_shape_success(&s);
		assert_int_equal(s.window, w + 1);
	}
	/* and stops at max */
	for (i = 0; i < 100; i++)
		sched_shape_success(&s);
	assert_int_equal(s.window, 8);
	assert_int_equal(s.credit, 0);
}

static void test_shape_multiplicative_decrease(void **state)
{
	static const unsigned windows[] = {10, 5, 2, 1, 1, 1};
	static const uint64_t pauses[] = {1000, 2000, 4000, 8000, 16000, 32000};
	struct sched_shape s;
	int64_t now = 0;
	size_t i;

	(void)state;
	sched_shape_init(&s, 20);
	while (s.window < 20)
		sched_shape_success(&s);
	for (i = 0; i < ARRAY_LEN(windows); i++) {
		assert_int_equal(sched_shape_throttle(&s, now), 1);
		assert_int_equal(s.window, windows[i]);
		assert_int_equal(s.backoff_ms, pauses[i]);
		assert_int_equal(s.hold_until_ms, now + (int64_t)pauses[i]);
		assert_false(sched_shape_may_connect(&s, 0, now));
		assert_false(sched_shape_may_connect(&s, 0, s.hold_until_ms - 1));
		assert_true(sched_shape_may_connect(&s, 0, s.hold_until_ms));
		now = s.hold_until_ms;
	}
}

static void test_shape_backoff_cap(void **state)
{
	struct sched_shape s;
	int64_t now = 1000000;
	int i;

	(void)state;
	sched_shape_init(&s, 5);
	for (i = 0; i < 30; i++) {
		sched_shape_throttle(&s, now);
		assert_true(s.backoff_ms <= SCHED_BACKOFF_MAX);
		now = s.hold_until_ms;
	}
	assert_int_equal(s.backoff_ms, SCHED_BACKOFF_MAX);
	/* 1 s doubling: 256 s is the last step below the cap */
	sched_shape_init(&s, 5);
	for (i = 0; i < 9; i++) {
		sched_shape_throttle(&s, now);
		now = s.hold_until_ms;
	}
	assert_int_equal(s.backoff_ms, 256000);
	sched_shape_throttle(&s, now);
	assert_int_equal(s.backoff_ms, SCHED_BACKOFF_MAX);
	/* a clock at the very end cannot overflow the hold */
	sched_shape_throttle(&s, INT64_MAX - 10);
	assert_true(s.hold_until_ms == INT64_MAX);
}

/* The connections open when a push back began report it too: one event. */
static void test_shape_one_decrease_per_event(void **state)
{
	struct sched_shape s;

	(void)state;
	sched_shape_init(&s, 20);
	while (s.window < 16)
		sched_shape_success(&s);
	assert_int_equal(sched_shape_throttle(&s, 5000), 1);
	assert_int_equal(s.window, 8);
	assert_int_equal(sched_shape_throttle(&s, 5100), 0);
	assert_int_equal(sched_shape_throttle(&s, 5999), 0);
	assert_int_equal(s.window, 8);
	assert_int_equal(s.backoff_ms, 1000);
	/* after the pause, trouble again is a new event */
	assert_int_equal(sched_shape_throttle(&s, 6000), 1);
	assert_int_equal(s.window, 4);
	assert_int_equal(s.backoff_ms, 2000);
}

static void test_shape_success_resets(void **state)
{
	struct sched_shape s;

	(void)state;
	sched_shape_init(&s, 20);
	sched_shape_throttle(&s, 0);
	sched_shape_throttle(&s, 1000);
	sched_shape_throttle(&s, 3000);
	assert_int_equal(s.backoff_ms, 4000);
	assert_int_equal(s.window, 1);
	/* a delivery resets the growth of the pause, not the pause running */
	sched_shape_success(&s);
	assert_int_equal(s.backoff_ms, 0);
	assert_false(sched_shape_may_connect(&s, 0, 6999));
	assert_true(sched_shape_may_connect(&s, 0, 7000));
	assert_int_equal(s.window, 2); /* window 1 grows after one delivery */
	sched_shape_throttle(&s, 7000);
	assert_int_equal(s.backoff_ms, 1000);
	assert_int_equal(s.window, 1);
}

static void test_shape_deferral_run(void **state)
{
	struct sched_shape s;
	int i;

	(void)state;
	sched_shape_init(&s, 20);
	/* fewer than a run: nothing */
	for (i = 0; i < SCHED_DEFERRAL_RUN - 1; i++)
		assert_int_equal(sched_shape_deferral(&s, 0), 0);
	assert_int_equal(s.window, SCHED_WINDOW_START);
	/* a delivery breaks the run */
	sched_shape_success(&s);
	for (i = 0; i < SCHED_DEFERRAL_RUN - 1; i++)
		assert_int_equal(sched_shape_deferral(&s, 0), 0);
	assert_int_equal(s.window, SCHED_WINDOW_START);
	/* the run's last deferral throttles, and a new run starts */
	assert_int_equal(sched_shape_deferral(&s, 0), 1);
	assert_int_equal(s.window, SCHED_WINDOW_START / 2);
	assert_int_equal(s.deferrals, 0);
	assert_int_equal(s.backoff_ms, SCHED_BACKOFF_FIRST);
	/* a run completed during the pause is the same event */
	for (i = 0; i < SCHED_DEFERRAL_RUN - 1; i++)
		sched_shape_deferral(&s, 10);
	assert_int_equal(sched_shape_deferral(&s, 10), 0);
	assert_int_equal(s.window, SCHED_WINDOW_START / 2);
}

static void test_shape_set_max(void **state)
{
	struct sched_shape s;

	(void)state;
	sched_shape_init(&s, 20);
	while (s.window < 12)
		sched_shape_success(&s);
	sched_shape_set_max(&s, 4);
	assert_int_equal(s.window, 4);
	assert_int_equal(s.max, 4);
	sched_shape_set_max(&s, 30); /* more room: reached by growing */
	assert_int_equal(s.window, 4);
	sched_shape_set_max(&s, 0);
	assert_int_equal(s.window, 1);
	assert_int_equal(s.max, 1);
}

/*
 * A destination that pushes back whenever more than 6 connections are
 * open: the window saws between 3 and 7 and never runs away.
 */
static void test_shape_sawtooth(void **state)
{
	struct sched_shape s;
	int64_t now = 0;
	unsigned lo = 100, hi = 0;
	int i;

	(void)state;
	sched_shape_init(&s, 50);
	for (i = 0; i < 2000; i++) {
		now += 100;
		if (s.window > 6) {
			sched_shape_throttle(&s, now);
		} else if (sched_shape_may_connect(&s, 0, now)) {
			sched_shape_success(&s);
		}
		if (i > 100) {
			lo = s.window < lo ? s.window : lo;
			hi = s.window > hi ? s.window : hi;
		}
	}
	assert_int_equal(lo, 3);
	assert_int_equal(hi, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retry_steps),
	    cmocka_unit_test(test_retry_single_step),
	    cmocka_unit_test(test_retry_expiry_edges),
	    cmocka_unit_test(test_retry_overflow),
	    cmocka_unit_test(test_retry_default_walk),
	    cmocka_unit_test(test_prev_attempt),
	    cmocka_unit_test(test_delay_due),
	    cmocka_unit_test(test_delay_one_notice),
	    cmocka_unit_test(test_bucket_unlimited),
	    cmocka_unit_test(test_bucket_rate_and_burst),
	    cmocka_unit_test(test_bucket_slow_rate),
	    cmocka_unit_test(test_bucket_long_run),
	    cmocka_unit_test(test_bucket_clock_backwards),
	    cmocka_unit_test(test_bucket_rested),
	    cmocka_unit_test(test_shape_init),
	    cmocka_unit_test(test_shape_additive_increase),
	    cmocka_unit_test(test_shape_multiplicative_decrease),
	    cmocka_unit_test(test_shape_backoff_cap),
	    cmocka_unit_test(test_shape_one_decrease_per_event),
	    cmocka_unit_test(test_shape_success_resets),
	    cmocka_unit_test(test_shape_deferral_run),
	    cmocka_unit_test(test_shape_set_max),
	    cmocka_unit_test(test_shape_sawtooth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
