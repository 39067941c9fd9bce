/*
 * test_sched_steer: an operator steering a running scheduler
 * (sched_fixture.h: no sockets, a work pool that runs jobs at once, so an
 * operation has ended when sched_steer() returns). Hold and release in the
 * index and on disk; hold and delete of recipients on an attempt; a
 * manual retry that is not counted; time held not counted toward
 * queue_lifetime; recovery read in slices; the oldest message; pauses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sched_fixture.h"

struct result {
	int done;
	size_t messages, recipients, n_failed, progress_calls;
	char failed[128];
};

static void on_progress(void *arg, size_t done, size_t total)
{
	struct result *r = arg;

	assert_true(done <= total);
	r->progress_calls++;
}

static void on_steered(void *arg, const struct sched_steer_res *res)
{
	struct result *r = arg;

	assert_null(res->error);
	r->done++;
	r->messages = res->messages;
	r->recipients = res->recipients;
	r->n_failed = res->n_failed;
	if (res->n_failed)
		snprintf(r->failed, sizeof(r->failed), "%s", res->failed[0]);
}

static struct result steer(struct fx *f, enum spool_op op, const char *id, const char *domain)
{
	char *ids[1] = {(char *)id};
	struct result r;
	struct sched_steer_req req = {op,     id ? ids : NULL, id ? 1 : 0, domain,
	                              "test", on_progress,     on_steered, &r};

	memset(&r, 0, sizeof(r));
	sched_steer(f->s, &req);
	assert_int_equal(r.done, 1); /* jobs run at once here */
	return r;
}

static int count_one(void *arg, struct envelope *e)
{
	(*(size_t *)arg)++;
	return 0;
}

/* Messages in the spool (reports included). */
static size_t queued(struct fx *f)
{
	size_t n = 0;
	char *err = NULL;

	assert_int_equal(spool_foreach(f->sp, count_one, &n, &err), 0);
	return n;
}

static struct sched_stats stats(struct fx *f)
{
	struct sched_stats st;

	sched_get_stats(f->s, &st);
	return st;
}

/* Held recipients leave their items and stay queued (and on disk) until
 * released; the message stays in the index meanwhile. */
static void test_hold_release(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com", "c@other.example"};
	struct envelope *e;
	char id[ID_LEN + 1];
	struct result r;
	struct fx f;

	fx_open(&f, "hold");
	commit(&f, SENDER, to, NULL, 3, 0, id);
	assert_int_equal(stats(&f).items_ready, 2);
	r = steer(&f, SPOOL_HOLD, NULL, "example.com");
	assert_int_equal(r.messages, 1);
	assert_int_equal(r.recipients, 2);
	assert_true(r.progress_calls >= 1);
	assert_int_equal(stats(&f).items_ready, 1); /* other.example only */
	assert_int_equal(stats(&f).recipients_held, 2);
	e = load(&f, id);
	assert_true(rcpt_is_held(&e->rcpts[0]) && rcpt_is_held(&e->rcpts[1]));
	assert_false(rcpt_is_held(&e->rcpts[2]));
	envelope_free(e);
	/* everything held: the message stays, with no item */
	r = steer(&f, SPOOL_HOLD, id, NULL);
	assert_int_equal(r.recipients, 1);
	assert_int_equal(stats(&f).items_ready, 0);
	assert_int_equal(stats(&f).messages, 1);
	assert_int_equal(stats(&f).recipients_held, 3);
	/* a restart sees it held */
	r = steer(&f, SPOOL_RELEASE, id, NULL);
	assert_int_equal(r.recipients, 3);
	assert_int_equal(stats(&f).recipients_held, 0);
	assert_int_equal(stats(&f).items_ready, 2);
	/* an unknown ID is reported */
	r = steer(&f, SPOOL_RELEASE, "00000000000000AA", NULL);
	assert_int_equal(r.n_failed, 1);
	assert_non_null(strstr(r.failed, "no message"));
	fx_close(&f);
}

/* A recipient held while it is on an attempt: a deferral leaves it held
 * (not back in an item), a delivery makes it final as usual. */
static void test_hold_during_attempt(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	struct smtpc_verdict v[2];
	struct qitem *it;
	char id[ID_LEN + 1];
	struct fx f;

	fx_open(&f, "hold_active");
	commit(&f, SENDER, to, NULL, 2, 0, id);
	it = start_item(&f, "example.com");
	assert_int_equal(steer(&f, SPOOL_HOLD, id, NULL).recipients, 2);
	verdict(&v[0], SMTPC_ACT_OK, "ok");
	verdict(&v[1], SMTPC_ACT_DEFER, "later");
	apply(&f, it, v, 0);
	assert_int_equal(stats(&f).items_deferred, 0);
	assert_int_equal(stats(&f).items_ready, 0);
	assert_int_equal(stats(&f).recipients_held, 1);
	assert_int_equal(stats(&f).messages, 1);
	assert_int_equal(steer(&f, SPOOL_RELEASE, id, NULL).recipients, 1);
	assert_int_equal(stats(&f).items_deferred, 1); /* its next attempt stands */
	smtpc_verdict_clear(&v[0]);
	smtpc_verdict_clear(&v[1]);
	fx_close(&f);
}

/* A recipient deleted while on an attempt: its result is not written and
 * it does not come back; the others go on. A message deleted whole while
 * on an attempt is forgotten when the attempt ends. */
static void test_delete_during_attempt(void **state)
{
	static const char *const to[] = {"a@gone.example", "b@kept.example"};
	static const char *const one[] = {"c@gone.example"};
	struct smtpc_verdict v;
	struct envelope *e;
	struct qitem *it;
	char id[ID_LEN + 1], id2[ID_LEN + 1];
	struct fx f;

	fx_open(&f, "delete_active");
	commit(&f, SENDER, to, NULL, 2, 0, id);
	commit(&f, SENDER, one, NULL, 1, 0, id2);
	it = start_item(&f, "gone.example"); /* id's a@gone.example */
	assert_int_equal(steer(&f, SPOOL_DELETE, NULL, "gone.example").recipients, 2);
	assert_true(gone(&f, id2)); /* everything open in it: the file went */
	verdict(&v, SMTPC_ACT_DEFER, "later");
	apply(&f, it, &v, 1);
	smtpc_verdict_clear(&v);
	e = load(&f, id);
	assert_true(e->rcpts[0].deleted);
	assert_int_equal(e->rcpts[0].state, RCPT_PENDING); /* the deferral was not written */
	assert_true(rcpt_is_open(&e->rcpts[1]));
	envelope_free(e);
	assert_int_equal(stats(&f).items_deferred, 0);
	assert_int_equal(stats(&f).items_ready, 1); /* kept.example */
	/* the whole message, while its last item is on an attempt */
	it = start_item(&f, "kept.example");
	assert_int_equal(steer(&f, SPOOL_DELETE, id, NULL).messages, 1);
	assert_true(gone(&f, id));
	verdict(&v, SMTPC_ACT_BOUNCE, "no");
	apply(&f, it, &v, 1);
	smtpc_verdict_clear(&v);
	assert_int_equal(stats(&f).messages, 0);
	assert_int_equal(queued(&f), 0); /* nobody is told of a deleted message */
	fx_close(&f);
}

/* A manual retry is not an attempt of the schedule: the count and the
 * wait stay as they were. */
static void test_manual_retry(void **state)
{
	static const char *const to[] = {"a@example.com"};
	struct smtpc_verdict v;
	struct envelope *e;
	char id[ID_LEN + 1];
	int64_t before;
	struct fx f;

	fx_open(&f, "manual");
	commit(&f, SENDER, to, NULL, 1, 0, id);
	verdict(&v, SMTPC_ACT_DEFER, "later");
	apply(&f, start_item(&f, "example.com"), &v, 1);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].attempts, 1);
	before = e->rcpts[0].next_attempt - sched_now_s(); /* the first step: 1m */
	envelope_free(e);
	assert_int_equal(sched_retry(f.s, id), 1);
	apply(&f, start_item(&f, "example.com"), &v, 1);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].attempts, 1);
	assert_true(e->rcpts[0].next_attempt - sched_now_s() <= before);
	assert_true(e->rcpts[0].next_attempt - sched_now_s() >= before - 2);
	envelope_free(e);
	/* a scheduled attempt counts again */
	f.s->heap[0]->due = 0;
	sched_item_set(f.s, f.s->heap[0], IT_READY);
	apply(&f, start_item(&f, "example.com"), &v, 1);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].attempts, 2);
	envelope_free(e);
	smtpc_verdict_clear(&v);
	fx_close(&f);
}

/* A stopped server's retry (deferred, next attempt 0) is manual too. */
static void test_offline_retry_is_manual(void **state)
{
	static const char *const to[] = {"a@example.com"};
	struct envelope *e;
	char id[ID_LEN + 1], *err = NULL;
	struct sched_deps d;
	struct sched *again;
	size_t zero = 0;
	struct dest *dest;
	struct fx f;

	fx_open(&f, "offline_retry");
	commit(&f, SENDER, to, NULL, 1, 0, id);
	e = load(&f, id);
	e->rcpts[0].state = RCPT_DEFERRED;
	e->rcpts[0].attempts = 4;
	e->rcpts[0].next_attempt = 0;
	assert_int_equal(spool_set_rcpt_states(f.sp, id, e->rcpts, &zero, 1, 1, &err), 0);
	envelope_free(e);
	d = f.s->deps;
	again = sched_new(&d);
	assert_int_equal(reindex(&f, again), 1);
	dest = sched_dest_get(again, "example.com");
	assert_non_null(TAILQ_FIRST(&dest->ready));
	assert_true(TAILQ_FIRST(&dest->ready)->manual);
	sched_stop(again);
	sched_free(again);
	fx_close(&f);
}

/* Time on hold moves the queue_lifetime deadline (1 day here): a
 * recipient two days old that spent a day and a half held is deferred,
 * not expired. */
static void test_held_time_not_counted(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	struct smtpc_verdict v;
	struct envelope *e;
	char id[ID_LEN + 1], *err = NULL;
	size_t zero = 0;
	struct fx f;

	fx_open(&f, "held_time");
	commit(&f, SENDER, to, NULL, 2, 2 * 24 * HOUR, id);
	e = load(&f, id);
	e->rcpts[0].held_secs = 36 * HOUR;
	assert_int_equal(spool_set_rcpt_steering(f.sp, id, e->rcpts, &zero, 1, 1, &err), 0);
	envelope_free(e);
	verdict(&v, SMTPC_ACT_DEFER, "later");
	apply(&f, start_item(&f, "example.com"), &v, 1);
	smtpc_verdict_clear(&v);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].state, RCPT_DEFERRED);
	assert_int_equal(e->rcpts[1].state, RCPT_BOUNCED); /* never held: expired */
	envelope_free(e);
	fx_close(&f);
}

struct recovered {
	int done;
	long good;
};

static void on_recovered(void *arg, long good)
{
	struct recovered *r = arg;

	r->done++;
	r->good = good;
}

/* Recovery in slices indexes everything, recovered messages before new
 * ones in age order, and held recipients as held. */
static void test_recover_slices(void **state)
{
	static const char *const to[] = {"a@example.com"};
	struct recovered rec = {0, 0};
	struct spool_recovery *rv;
	char id[ID_LEN + 1], first[ID_LEN + 1];
	struct sched_deps d;
	struct sched_stats st;
	struct sched *again;
	size_t i, done, total;
	int64_t t0 = sched_now_s();
	struct fx f;

	fx_open(&f, "recover"); /* 1,050 messages: three slices of at most 500 */
	for (i = 0; i < 1050; i++) {
		commit(&f, SENDER, to, NULL, 1, 100 - (int64_t)(i % 100), id);
		if (i == 0)
			memcpy(first, id, sizeof(first));
	}
	assert_int_equal(steer(&f, SPOOL_HOLD, first, NULL).recipients, 1);
	d = f.s->deps;
	again = sched_new(&d);
	assert_non_null(rv = spool_recover_begin(f.sp));
	sched_recover(again, rv, on_recovered, &rec);
	assert_int_equal(rec.done, 1);
	assert_int_equal(rec.good, 1050);
	assert_false(sched_recovering(again, &done, &total));
	sched_get_stats(again, &st);
	assert_int_equal(st.messages, 1050);
	assert_int_equal(st.recipients_held, 1);
	assert_int_equal(st.items_ready, 1049);
	assert_true(st.oldest_created >= t0 - 100 && st.oldest_created <= t0 - 99);
	sched_stop(again);
	sched_free(again);
	fx_close(&f);
}

/* The oldest queued message, from the index: the next one once it goes. */
static void test_oldest(void **state)
{
	static const char *const to[] = {"a@example.com"};
	char old[ID_LEN + 1], young[ID_LEN + 1];
	struct fx f;
	int64_t t0, got;

	fx_open(&f, "oldest");
	assert_int_equal(stats(&f).oldest_created, 0);
	t0 = sched_now_s(); /* the clock may pass a second between two reads */
	commit(&f, SENDER, to, NULL, 1, 500, old);
	commit(&f, SENDER, to, NULL, 1, 20, young);
	got = stats(&f).oldest_created;
	assert_true(got >= t0 - 500 && got <= sched_now_s() - 500);
	assert_int_equal(steer(&f, SPOOL_DELETE, old, NULL).messages, 1);
	got = stats(&f).oldest_created;
	assert_true(got >= t0 - 20 && got <= sched_now_s() - 20);
	fx_close(&f);
}

/* The pause file: pause and resume by name and all, kept across
 * restarts; the server marks its destinations. */
static void test_pause(void **state)
{
	struct sched_pauses ps;
	struct dest *d;
	char *err = NULL;
	struct fx f;

	fx_open(&f, "pause");
	d = sched_dest_get(f.s, "example.com");
	assert_int_equal(sched_pause_change(f.dir, "example.com", 1, &err), 1);
	assert_int_equal(sched_pause_change(f.dir, "example.com", 1, &err), 0);
	assert_false(d->paused);
	assert_int_equal(sched_pause_reload(f.s, &err), 0);
	assert_true(d->paused);
	assert_false(sched_dest_get(f.s, "other.example")->paused);
	assert_int_equal(stats(&f).paused, 1);
	assert_int_equal(sched_pause_change(f.dir, NULL, 1, &err), 1);
	assert_int_equal(sched_pause_change(f.dir, "example.com", 0, &err), -1);
	assert_non_null(strstr(err, "resume --all"));
	free(err), err = NULL;
	assert_int_equal(sched_pause_reload(f.s, &err), 0);
	assert_true(sched_dest_get(f.s, "other.example")->paused);
	assert_int_equal(sched_pause_read(f.dir, &ps, &err), 0);
	assert_true(ps.all);
	assert_int_equal(ps.n, 1);
	sched_pauses_free(&ps);
	assert_int_equal(sched_pause_change(f.dir, NULL, 0, &err), 1);
	assert_int_equal(sched_pause_reload(f.s, &err), 0);
	assert_false(d->paused);
	assert_int_equal(stats(&f).paused, 0);
	fx_close(&f);
}

/* The pure list: names in normal form, the file's bytes both ways. */
static void test_pause_list(void **state)
{
	static const char text[] = "# comment\n\n  Example.COM.  \r\n*\n[127.0.0.1]\nbad name\n"
	                           "a..b\n.x\nok.example\n";
	struct sched_pauses ps, again;
	char name[300];
	struct buf b;
	size_t bad;

	sched_pauses_parse(text, sizeof(text) - 1, &ps, &bad);
	assert_int_equal(bad, 3);
	assert_true(ps.all);
	assert_int_equal(ps.n, 3);
	assert_string_equal(ps.names[0], "[127.0.0.1]");
	assert_string_equal(ps.names[1], "example.com");
	assert_string_equal(ps.names[2], "ok.example");
	buf_init(&b);
	sched_pauses_format(&ps, &b);
	sched_pauses_parse(b.data, b.len, &again, &bad);
	assert_int_equal(bad, 0);
	assert_int_equal(again.n, 3);
	assert_true(again.all);
	assert_int_equal(sched_pause_name("x.", name, sizeof(name)), 0);
	assert_string_equal(name, "x");
	assert_int_equal(sched_pause_name("", name, sizeof(name)), -1);
	assert_int_equal(sched_pause_name("[1.2.3.4", name, sizeof(name)), -1);
	assert_int_equal(sched_pause_name("under_score.example", name, sizeof(name)), 0);
	assert_int_equal(sched_pauses_del(&again, "example.com"), 1);
	assert_int_equal(sched_pauses_del(&again, "example.com"), 0);
	assert_false(sched_pauses_has(&again, "example.com"));
	assert_true(sched_paused(&again, "anything")); /* all */
	buf_free(&b);
	sched_pauses_free(&ps);
	sched_pauses_free(&again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hold_release),
	    cmocka_unit_test(test_hold_during_attempt),
	    cmocka_unit_test(test_delete_during_attempt),
	    cmocka_unit_test(test_manual_retry),
	    cmocka_unit_test(test_offline_retry_is_manual),
	    cmocka_unit_test(test_held_time_not_counted),
	    cmocka_unit_test(test_recover_slices),
	    cmocka_unit_test(test_oldest),
	    cmocka_unit_test(test_pause),
	    cmocka_unit_test(test_pause_list),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
