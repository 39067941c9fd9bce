/*
 * Unit tests for deliv's run-time side (deliv.c, deliv_sync.c,
 * deliv_inbound.c) against a real store in a temporary data directory and
 * a work pool of no threads (jobs run at once), without an event loop:
 * quotas shared by reserve/commit/release and written at close, the guard
 * pausing an account and keeping the pause across a reopen, a resume by
 * another process seen by the reload, held messages released, VERP
 * records and reports matched and applied, hard-bounce suppressions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf_fixture.h"
#include "deliv/deliv.h"
#include "deliv/deliv_int.h"
#include "store_fixture.h"
#include "work/work.h"

struct fx {
	struct fixture *f;
	struct conf *conf;
	struct store *st;
	struct work_pool *wp;
	struct deliv *d;
	char released[8][ID_LEN + 1];
	size_t n_released;
	size_t suppressed_counted;
	char summary[200];
};

static void on_release(void *arg, const char *id)
{
	struct fx *x = arg;

	if (x->n_released < 8)
		snprintf(x->released[x->n_released++], ID_LEN + 1, "%s", id);
}

static void on_count(void *arg, const char *account, const char *domain, const char *event)
{
	struct fx *x = arg;

	x->suppressed_counted += strcmp(event, "suppressed") == 0;
}

static struct conf *load_conf(const char *dir, const char *extra)
{
	char *path = xasprintf("%s/posthorn.conf", dir);
	char *text = xasprintf(
	    "[server]\nhostname = relay.test\ndata_dir = %s\n[relay]\nqueue_lifetime = 1d\n"
	    "[quota]\nhour = 3\n[reputation]\nwindow = 1h\nmin_volume = 10\n"
	    "max_bounce_rate = 20%%\n[bounces]\ndomain = bounces.test\n%s",
	    dir, extra);
	struct conf *c = conf_from_text(path, text);

	free(text);
	free(path);
	return c;
}

static void fx_open(struct fx *x)
{
	struct deliv_deps dd;
	char *err = NULL;

	x->st = open_ok(x->f);
	x->wp = work_pool_new(NULL, 0);
	memset(&dd, 0, sizeof(dd));
	dd.conf = x->conf;
	dd.store = x->st;
	dd.work = x->wp;
	dd.count = on_count;
	dd.count_arg = x;
	dd.release = on_release;
	dd.release_arg = x;
	x->d = deliv_open(&dd, &err);
	if (!x->d)
		fail_msg("deliv_open: %s", err);
}

static void fx_close(struct fx *x)
{
	deliv_close(x->d);
	work_pool_free(x->wp);
	store_close(x->st);
}

static int setup(void **state)
{
	struct fx *x = xcalloc(1, sizeof(*x));

	x->f = fixture_new("deliv_rt");
	assert_non_null(x->f);
	assert_int_equal(mkdir(x->f->data, 0700), 0);
	x->conf = load_conf(x->f->data, "");
	fx_open(x);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	fx_close(x);
	conf_free(x->conf);
	fixture_free(x->f);
	free(x);
	return 0;
}

static void test_quota_shared_and_kept(void **state)
{
	struct fx *x = *state;
	char why[512];
	int64_t reset = 0;

	assert_int_equal(deliv_quota_reserve(x->d, "default", 2, why, sizeof(why), &reset), 0);
	assert_int_equal(deliv_quota_reserve(x->d, "default", 2, why, sizeof(why), &reset), -1);
	assert_non_null(strstr(why, "450 4.7.1 Quota exceeded: account default may send 3"));
	assert_true(reset > 0 && reset % 3600 == 0);
	deliv_quota_release(x->d, "default", 1);
	deliv_quota_commit(x->d, "default", 1);
	assert_false(deliv_quota_full(x->d, "default", why, sizeof(why)));
	assert_int_equal(deliv_quota_reserve(x->d, "default", 2, why, sizeof(why), &reset), 0);
	deliv_quota_commit(x->d, "default", 2);
	assert_true(deliv_quota_full(x->d, "default", why, sizeof(why)));
	/* written at close, read at open: still full */
	fx_close(x);
	assert_int_equal(raw_int(x->f, "SELECT used FROM quota_counts WHERE period = 'hour'"), 3);
	fx_open(x);
	assert_true(deliv_quota_full(x->d, "default", why, sizeof(why)));
	/* an account of its own: `user set` by another process, seen at open */
	raw_exec(x->f, "UPDATE accounts SET quota_hour = 0 WHERE name = 'default'");
	fx_close(x);
	fx_open(x);
	assert_false(deliv_quota_full(x->d, "default", why, sizeof(why)));
}

static void storm(struct fx *x, const char *account)
{
	for (int i = 0; i < 7; i++)
		deliv_outcome(x->d, account, DELIV_OUT_DELIVERED);
	for (int i = 0; i < 3; i++)
		deliv_outcome(x->d, account, DELIV_OUT_HARD);
}

static void test_guard_pause_and_resume(void **state)
{
	struct fx *x = *state;
	char why[512];

	storm(x, "default"); /* 3 in 10: 30 % > 20 % */
	assert_true(deliv_paused(x->d, "default", why, sizeof(why)));
	assert_string_equal(why,
	                    "450 4.7.1 account paused: bounce rate 30 % over 1h (threshold 20 %)");
	assert_true(deliv_held(x->d, "default", "0G3B5K2M1A2B3C4D"));
	assert_true(deliv_held(x->d, "default", "0G3B5K2M1A2B3C4D")); /* once remembered */
	assert_false(deliv_held(x->d, "other", "0G3B5K2M1A2B3C4E"));
	fx_close(x);
	assert_true(raw_int(x->f, "SELECT paused_at FROM accounts WHERE name = 'default'") > 0);
	fx_open(x);
	assert_true(deliv_paused(x->d, "default", why, sizeof(why)));
	assert_non_null(strstr(why, "bounce rate 30 %"));
	/* `user resume` by another process */
	{
		struct store_account_deliv a;
		char *err = NULL;
		struct store *cli = open_ok(x->f);
		assert_int_equal(store_user_resume(cli, "default", clock_now_ms() / 1000, &a, &err),
		                 1);
		store_close(cli);
	}
	deliv_held(x->d, "default", "0G3B5K2M1A2B3C4D");
	{
		struct store_account_deliv a;
		char *err = NULL;
		assert_int_equal(store_account_deliv_get(x->st, "default", &a, &err), 1);
		deliv_acct_settings(x->d, &a);
	}
	assert_false(deliv_paused(x->d, "default", why, sizeof(why)));
	assert_int_equal(x->n_released, 1);
	assert_string_equal(x->released[0], "0G3B5K2M1A2B3C4D");
	/* the window starts afresh: the old rate does not pause again */
	deliv_outcome(x->d, "default", DELIV_OUT_DELIVERED);
	assert_false(deliv_paused(x->d, "default", why, sizeof(why)));
}

static void done_report(void *arg, const char *summary)
{
	struct fx *x = arg;

	snprintf(x->summary, sizeof(x->summary), "%s", summary);
}

static void report(struct fx *x, const char *id, const char *text)
{
	struct deliv_inbound *in = deliv_inbound_new(x->d, "SESSIONIDXXXXXXX");

	deliv_inbound_rcpt(in, id);
	deliv_inbound_write(in, text, strlen(text));
	x->summary[0] = '\0';
	deliv_inbound_finish(in, done_report, x); /* no threads: done before return */
	assert_true(x->summary[0] != '\0');
}

static void test_report_matched_and_applied(void **state)
{
	struct fx *x = *state;
	const char *rcpts[] = {"ann@x.example", "bob@x.example"};
	char id[ID_LEN + 1], path[DELIV_VERP_MAX], buf[DELIV_VERP_MAX];
	struct store_supp e;
	char *err = NULL;

	id_new(id);
	assert_string_equal(deliv_return_path(x->d, id, "", buf, sizeof(buf)), "");
	assert_int_equal(
	    deliv_verp_rcpt(x->d, deliv_return_path(x->d, id, "s@x", path, sizeof(path)), buf),
	    DELIV_VERP_VALID);
	deliv_message_queued(x->d, id, "default", rcpts, 2);
	fx_close(x); /* the record is written at close */
	fx_open(x);
	report(x, id,
	       "Subject: Undelivered\r\nContent-Type: multipart/report; "
	       "report-type=delivery-status; boundary=b\r\n\r\n--b\r\n"
	       "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
	       "Final-Recipient: rfc822; Bob@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	       "Diagnostic-Code: smtp; 550 5.1.1 gone\r\n\r\n"
	       "Final-Recipient: rfc822; eve@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
	       "\r\n--b--\r\n");
	assert_non_null(strstr(x->summary, "kind=dsn reported=2 acted=1 unmatched=1"));
	assert_int_equal(store_supp_check(x->st, "default", "bob@x.example", &e, &err), 1);
	assert_string_equal(e.reason, "hard bounce: 550 5.1.1 gone");
	assert_int_equal(store_supp_check(x->st, "default", "eve@x.example", &e, &err), 0);
	/* an unknown message: taken, nothing done */
	report(x, "0000000000000000", "Subject: failure\r\n\r\n<ann@x.example>: 550 5.1.1 no\r\n");
	assert_int_equal(store_supp_check(x->st, "default", "ann@x.example", &e, &err), 0);
}

static void test_hard_bounce_suppression(void **state)
{
	struct fx *x = *state;
	struct deliv_supp v[2] = {
	    {"default", "carl@x.example", "hard bounce: 550 5.1.1 no", "0G3B5K2M1A2B3C4D", 0},
	    {"nobody", "dan@x.example", "hard bounce: 550 5.1.1 no", "0G3B5K2M1A2B3C4D", 0},
	};
	struct store_supp e;
	char *err = NULL;

	deliv_supp_add(x->d, v, 2);
	assert_int_equal(v[0].added, 1);
	assert_int_equal(v[1].added, STORE_SUPP_NO_ACCOUNT);
	deliv_supp_added(x->d, v, 2);
	assert_int_equal(store_supp_check(x->st, "default", "Carl@X.example", &e, &err), 1);
	deliv_supp_add(x->d, v, 1);
	assert_int_equal(v[0].added, 0); /* listed already */
	deliv_refused_suppressed(x->d, "default", "carl@x.example", e.reason);
	assert_int_equal(x->suppressed_counted, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_quota_shared_and_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_guard_pause_and_resume, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_report_matched_and_applied, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hard_bounce_suppression, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
