/*
 * test_sched_result: applying the results of a delivery attempt, without
 * sockets or threads (sched_fixture.h): by the time sched_apply_results()
 * returns everything it started has happened: the DSN is in the spool, the
 * recipients' states are on disk, the message is gone when nothing is left
 * open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sched_fixture.h"

/* The reports in the spool: null sender, one recipient who asked for no
 * report about it (an original from the null sender is not one). */
struct reports {
	size_t n;
	char id[4][ID_LEN + 1];
	char to[4][128];
};

static int find_report(void *arg, struct envelope *e)
{
	struct reports *r = arg;

	if (e->mail_from[0] || e->n_rcpts != 1 || e->rcpts[0].notify != DSN_NOTIFY_NEVER)
		return 0;
	assert_true(r->n < ARRAY_LEN(r->id));
	snprintf(r->id[r->n], sizeof(r->id[0]), "%s", e->id);
	snprintf(r->to[r->n], sizeof(r->to[0]), "%s", e->rcpts[0].addr);
	r->n++;
	return 0;
}

static struct reports reports(struct fx *f)
{
	struct reports r;
	char *err = NULL;

	memset(&r, 0, sizeof(r));
	assert_int_equal(spool_foreach(f->sp, find_report, &r, &err), 0);
	return r;
}

/* The report's bytes as a string. */
static char *report_text(struct fx *f, const char *id)
{
	uint64_t off, len;
	char *err = NULL, *t;
	int fd;

	assert_int_equal(spool_open_body(f->sp, id, &fd, &off, &len, &err), 0);
	t = xmalloc(len + 1);
	assert_int_equal(pread(fd, t, len, (off_t)off), (ssize_t)len);
	t[len] = '\0';
	close(fd);
	return t;
}

/* ---- the tests ---- */

static void test_all_delivered(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	struct smtpc_verdict v[2];
	struct sched_stats st;
	char id[ID_LEN + 1];
	struct fx f;
	struct qitem *it;

	fx_open(&f, "delivered");
	commit(&f, SENDER, to, NULL, 2, 0, id);
	it = start_item(&f, "example.com");
	assert_int_equal(it->n, 2);
	verdict(&v[0], SMTPC_ACT_OK, "ok");
	verdict(&v[1], SMTPC_ACT_OK, "ok");
	apply(&f, it, v, 0);
	/* nothing open: the file went, the index forgot it, no report */
	assert_true(gone(&f, id));
	sched_get_stats(f.s, &st);
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.items_ready + st.items_deferred + st.items_active, 0);
	assert_int_equal(reports(&f).n, 0);
	assert_int_equal(counted(&f, "delivered"), 2);
	assert_string_equal(f.counted[0].account, "acct");
	assert_string_equal(f.counted[0].rcpt, "a@example.com"); /* stats key it by domain */
	smtpc_verdict_clear(&v[0]);
	smtpc_verdict_clear(&v[1]);
	fx_close(&f);
}

/* One of each: the delivered and bounced recipients are final on disk, the
 * deferred one waits in the heap for its next attempt, one report names
 * only the bounced one. */
static void test_mixed(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com", "c@example.com"};
	struct smtpc_verdict v[3];
	struct sched_stats st;
	struct envelope *e;
	struct reports r;
	char id[ID_LEN + 1], *text;
	int64_t before = sched_now_s();
	struct fx f;
	struct qitem *it;

	fx_open(&f, "mixed");
	commit(&f, SENDER, to, NULL, 3, 0, id);
	it = start_item(&f, "example.com");
	verdict(&v[0], SMTPC_ACT_OK, "ok");
	verdict(&v[1], SMTPC_ACT_DEFER, "greylisted");
	verdict(&v[2], SMTPC_ACT_BOUNCE, "no such user");
	apply(&f, it, v, 0);

	e = load(&f, id);
	assert_int_equal(e->rcpts[0].state, RCPT_DELIVERED);
	assert_int_equal(e->rcpts[1].state, RCPT_DEFERRED);
	assert_int_equal(e->rcpts[2].state, RCPT_BOUNCED);
	assert_int_equal(e->rcpts[1].attempts, 1);
	/* the first retry step (1m) from now */
	assert_in_range(e->rcpts[1].next_attempt, before + 60, sched_now_s() + 60);
	assert_non_null(strstr(e->rcpts[1].last_reply, "greylisted"));
	assert_non_null(strstr(e->rcpts[2].last_reply, "no such user"));
	/* the deferred rest is one item of one recipient, due then */
	sched_get_stats(f.s, &st);
	assert_int_equal(st.items_deferred, 1);
	assert_int_equal(f.s->heap[0]->n, 1);
	assert_int_equal(f.s->heap[0]->idx[0], 1);
	assert_int_equal(f.s->heap[0]->due, e->rcpts[1].next_attempt);
	envelope_free(e);

	r = reports(&f);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.to[0], SENDER);
	text = report_text(&f, r.id[0]);
	assert_non_null(strstr(text, "Final-Recipient: rfc822; c@example.com"));
	assert_non_null(strstr(text, "Status: 5.1.1"));
	assert_null(strstr(text, "a@example.com"));
	assert_null(strstr(text, "b@example.com"));
	free(text);
	/* the report was indexed for delivery, to the sender's domain */
	assert_int_equal(sched_dest_get(f.s, "sender.example")->n_ready, 1);
	assert_int_equal(counted(&f, "delivered"), 1);
	assert_int_equal(counted(&f, "deferred"), 1);
	assert_int_equal(counted(&f, "bounced"), 1);
	for (size_t i = 0; i < 3; i++)
		smtpc_verdict_clear(&v[i]);
	fx_close(&f);
}

/* Recipients that bounce together get one report; nothing left open: the
 * original goes. */
static void test_all_bounced_one_report(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	struct smtpc_verdict v;
	struct reports r;
	char id[ID_LEN + 1], *text;
	struct fx f;

	fx_open(&f, "bounced");
	commit(&f, SENDER, to, NULL, 2, 0, id);
	verdict(&v, SMTPC_ACT_BOUNCE, "domain gone");
	apply(&f, start_item(&f, "example.com"), &v, 1);
	assert_true(gone(&f, id));
	r = reports(&f);
	assert_int_equal(r.n, 1);
	text = report_text(&f, r.id[0]);
	assert_non_null(strstr(text, "Final-Recipient: rfc822; a@example.com"));
	assert_non_null(strstr(text, "Final-Recipient: rfc822; b@example.com"));
	assert_non_null(strstr(text, "Subject: Hello there")); /* RET=HDRS */
	assert_null(strstr(text, "Body line."));
	free(text);
	smtpc_verdict_clear(&v);
	fx_close(&f);
}

/* The null sender gets no report; the bounce is still final on disk. */
static void test_null_sender_no_report(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	struct smtpc_verdict v[2];
	struct envelope *e;
	char id[ID_LEN + 1];
	struct fx f;

	fx_open(&f, "null");
	commit(&f, "", to, NULL, 2, 0, id);
	verdict(&v[0], SMTPC_ACT_BOUNCE, "no such user");
	verdict(&v[1], SMTPC_ACT_DEFER, "later");
	apply(&f, start_item(&f, "example.com"), v, 0);
	assert_int_equal(reports(&f).n, 0);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].state, RCPT_BOUNCED);
	assert_int_equal(e->rcpts[1].state, RCPT_DEFERRED);
	envelope_free(e);
	smtpc_verdict_clear(&v[0]);
	smtpc_verdict_clear(&v[1]);
	fx_close(&f);
}

/* A deferral past queue_lifetime bounces, 5.4.7, with the last reason. */
static void test_expired(void **state)
{
	static const char *const to[] = {"a@example.com"};
	struct smtpc_verdict v;
	struct reports r;
	char id[ID_LEN + 1], *text;
	struct fx f;

	fx_open(&f, "expired");
	commit(&f, SENDER, to, NULL, 1, 2 * 24 * HOUR, id);
	verdict(&v, SMTPC_ACT_DEFER, "still greylisted");
	apply(&f, start_item(&f, "example.com"), &v, 1);
	assert_true(gone(&f, id));
	r = reports(&f);
	assert_int_equal(r.n, 1);
	text = report_text(&f, r.id[0]);
	assert_non_null(strstr(text, "Action: failed"));
	assert_non_null(strstr(text, "Status: 5.4.7"));
	assert_non_null(strstr(text, "still greylisted"));
	free(text);
	assert_int_equal(counted(&f, "bounced"), 1);
	smtpc_verdict_clear(&v);
	fx_close(&f);
}

/* One event, one report per message: 150 recipients at one domain make
 * two transactions (two items); a dead destination fails both at once,
 * and the sender gets one report naming all 150. Another message failing
 * in the same event gets its own. */
static void test_one_report_per_message_and_event(void **state)
{
	char *addrs[150], id[ID_LEN + 1], id2[ID_LEN + 1], *text;
	const char *to2[] = {"z@example.com"};
	struct qitem *it[3];
	struct smtpc_verdict v;
	struct reports r;
	struct fx f;
	size_t i, n;

	fx_open(&f, "oneperevent");
	for (i = 0; i < ARRAY_LEN(addrs); i++)
		addrs[i] = xasprintf("r%zu@example.com", i);
	commit(&f, SENDER, (const char *const *)addrs, NULL, ARRAY_LEN(addrs), 0, id);
	commit(&f, "other@sender.example", to2, NULL, 1, 0, id2);
	verdict(&v, SMTPC_ACT_BOUNCE, "domain gone");
	for (i = 0; i < 3; i++)
		it[i] = start_item(&f, "example.com");
	assert_int_equal(it[0]->n + it[1]->n + it[2]->n, 151);
	for (i = 0; i < 3; i++)
		sched_apply_results(f.s, it[i], &v, 1, NULL);
	assert_int_equal(reports(&f).n, 0); /* nothing before the event ends */
	sched_reports_start(f.s);
	r = reports(&f);
	assert_int_equal(r.n, 2);
	for (i = 0; i < r.n; i++) {
		text = report_text(&f, r.id[i]);
		n = 0;
		for (const char *p = text; (p = strstr(p, "Final-Recipient:")); p++)
			n++;
		assert_int_equal(n, strcmp(r.to[i], SENDER) == 0 ? 150 : 1);
		free(text);
	}
	assert_true(gone(&f, id) && gone(&f, id2));
	for (i = 0; i < ARRAY_LEN(addrs); i++)
		free(addrs[i]);
	smtpc_verdict_clear(&v);
	fx_close(&f);
}

/* NOTIFY=DELAY, queued past delay_warning: one delay notice, the
 * recipient stays queued. */
static void test_delay_notice(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	static const unsigned notify[] = {DSN_NOTIFY_DELAY | DSN_NOTIFY_FAILURE, 0};
	struct smtpc_verdict v;
	struct envelope *e;
	struct reports r;
	char id[ID_LEN + 1], *text;
	struct fx f;

	fx_open(&f, "delay");
	commit(&f, SENDER, to, notify, 2, 5 * HOUR, id);
	verdict(&v, SMTPC_ACT_DEFER, "busy");
	apply(&f, start_item(&f, "example.com"), &v, 1);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].state, RCPT_DEFERRED);
	assert_int_equal(e->rcpts[1].state, RCPT_DEFERRED);
	envelope_free(e);
	r = reports(&f);
	assert_int_equal(r.n, 1);
	text = report_text(&f, r.id[0]);
	assert_non_null(strstr(text, "Action: delayed"));
	assert_non_null(strstr(text, "a@example.com"));
	assert_null(strstr(text, "b@example.com")); /* it did not ask */
	free(text);
	smtpc_verdict_clear(&v);
	fx_close(&f);
}

/* Deferred, then due again (a manual retry) and delivered: the file goes. */
static void test_deferred_then_delivered(void **state)
{
	static const char *const to[] = {"a@example.com"};
	struct smtpc_verdict v;
	char id[ID_LEN + 1];
	struct fx f;

	fx_open(&f, "retry");
	commit(&f, SENDER, to, NULL, 1, 0, id);
	verdict(&v, SMTPC_ACT_DEFER, "later");
	apply(&f, start_item(&f, "example.com"), &v, 1);
	smtpc_verdict_clear(&v);
	assert_int_equal(f.s->heap_n, 1);
	assert_int_equal(sched_retry(f.s, id), 1);
	verdict(&v, SMTPC_ACT_OK, "ok");
	apply(&f, start_item(&f, "example.com"), &v, 1);
	smtpc_verdict_clear(&v);
	assert_true(gone(&f, id));
	assert_int_equal(htable_count(&f.s->msgs), 0);
	fx_close(&f);
}

/* A restart sees what was written: index the same spool again. */
static void test_state_survives_restart(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	struct smtpc_verdict v[2];
	struct sched_deps d;
	struct sched *again;
	char id[ID_LEN + 1];
	struct fx f;

	fx_open(&f, "restart");
	commit(&f, SENDER, to, NULL, 2, 0, id);
	verdict(&v[0], SMTPC_ACT_BOUNCE, "no");
	verdict(&v[1], SMTPC_ACT_DEFER, "later");
	apply(&f, start_item(&f, "example.com"), v, 0);
	memset(&d, 0, sizeof(d));
	d.base = base;
	d.conf = f.conf;
	d.spool = f.sp;
	d.work = f.wp;
	again = sched_new(&d);
	/* b is open (the original), and the report's one recipient */
	assert_int_equal(reindex(&f, again), 2);
	sched_stop(again);
	sched_free(again);
	smtpc_verdict_clear(&v[0]);
	smtpc_verdict_clear(&v[1]);
	fx_close(&f);
}

/* At exit the work pool may be gone before the last reports commit: a
 * stopped scheduler writes the final states itself. */
static void test_stopped_writes_inline(void **state)
{
	static const char *const to[] = {"a@example.com", "b@example.com"};
	struct smtpc_verdict v[2];
	struct envelope *e;
	struct qitem *it;
	char id[ID_LEN + 1];
	struct fx f;

	fx_open(&f, "stopped");
	commit(&f, SENDER, to, NULL, 2, 0, id);
	it = start_item(&f, "example.com");
	sched_stop(f.s);
	f.s->deps.work = NULL; /* freed, as in server_close(): must not be used */
	verdict(&v[0], SMTPC_ACT_BOUNCE, "no such user");
	verdict(&v[1], SMTPC_ACT_DEFER, "later");
	apply(&f, it, v, 0);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].state, RCPT_BOUNCED);
	assert_int_equal(e->rcpts[1].state, RCPT_DEFERRED);
	envelope_free(e);
	assert_int_equal(reports(&f).n, 1);
	smtpc_verdict_clear(&v[0]);
	smtpc_verdict_clear(&v[1]);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_all_delivered),
	    cmocka_unit_test(test_mixed),
	    cmocka_unit_test(test_all_bounced_one_report),
	    cmocka_unit_test(test_null_sender_no_report),
	    cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_one_report_per_message_and_event),
	    cmocka_unit_test(test_delay_notice),
	    cmocka_unit_test(test_deferred_then_delivered),
	    cmocka_unit_test(test_state_survives_restart),
	    cmocka_unit_test(test_stopped_writes_inline),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
