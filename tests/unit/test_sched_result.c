/*
 * test_sched_result: applying the results of a delivery attempt, without
 * sockets or threads. The scheduler runs on a real spool opened without an
 * event loop (commits are synchronous) and a work pool of 0 threads (jobs
 * run at once), so by the time sched_apply_results() returns everything it
 * started has happened: the DSN is in the spool, the recipients' states
 * are on disk, the message is gone when nothing is left open.
 *
 * White-box: the test makes an item active as sched_dest.c does
 * (sched_int.h), then hands it verdicts as a connection would.
 */
#include <errno.h>
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

#include "conf/conf.h"
#include "sched/sched.h"
#include "sched/sched_int.h"
#include "smtpc/smtpc_policy.h"
#include "spool/spool.h"
#include "util/util.h"
#include "work/work.h"

#define SENDER "alice@sender.example"
#define HOUR   3600

static char tmpdir[] = "/tmp/posthorn-test-sched-XXXXXX";
static struct event_base *base;

/* One scheduler on a fresh data directory. */
struct fx {
	char *dir;
	struct conf *conf;
	struct spool *sp;
	struct work_pool *wp;
	struct sched *s;
	struct {
		char account[64], domain[128], event[16];
	} counted[16];
	size_t n_counted;
};

static void on_count(void *arg, const char *account, const char *domain, const char *event)
{
	struct fx *f = arg;

	assert_true(f->n_counted < ARRAY_LEN(f->counted));
	snprintf(f->counted[f->n_counted].account, sizeof(f->counted[0].account), "%s", account);
	snprintf(f->counted[f->n_counted].domain, sizeof(f->counted[0].domain), "%s", domain);
	snprintf(f->counted[f->n_counted].event, sizeof(f->counted[0].event), "%s", event);
	f->n_counted++;
}

static size_t counted(const struct fx *f, const char *event)
{
	size_t i, n = 0;

	for (i = 0; i < f->n_counted; i++)
		n += strcmp(f->counted[i].event, event) == 0;
	return n;
}

static struct conf *load_conf(const char *dir)
{
	char *path = xasprintf("%s/posthorn.conf", dir), *errors = NULL;
	FILE *fp = fopen(path, "w");
	struct conf *c;

	assert_non_null(fp);
	fprintf(fp,
	        "[server]\nhostname = relay.test\ndata_dir = %s\n"
	        "[relay]\nretry = 1m, 5m\nqueue_lifetime = 1d\ndelay_warning = 4h\n",
	        dir);
	fclose(fp);
	c = conf_load(path, &errors);
	if (!c)
		fail_msg("conf: %s", errors);
	free(path);
	return c;
}

static void fx_open(struct fx *f, const char *name)
{
	struct sched_deps d;
	char *err = NULL;

	memset(f, 0, sizeof(*f));
	f->dir = xasprintf("%s/%s", tmpdir, name);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	f->conf = load_conf(f->dir);
	f->sp = spool_open(f->dir, NULL, &err); /* no loop: synchronous commits */
	if (!f->sp)
		fail_msg("spool_open: %s", err);
	f->wp = work_pool_new(NULL, 0); /* no thread: jobs run at once */
	memset(&d, 0, sizeof(d));
	d.base = base;
	d.conf = f->conf;
	d.spool = f->sp;
	d.work = f->wp;
	d.count = on_count;
	d.count_arg = f;
	f->s = sched_new(&d);
}

static void fx_close(struct fx *f)
{
	sched_stop(f->s);
	sched_free(f->s);
	work_pool_free(f->wp);
	spool_close(f->sp);
	conf_free(f->conf);
	free(f->dir);
}

static void on_committed(void *arg, int ok, const char *id)
{
	char *out = arg;

	assert_true(ok);
	snprintf(out, ID_LEN + 1, "%s", id);
}

/* Commits a message from from to rcpts[0..n) (NOTIFY as given, 0: none),
 * created age seconds ago, and indexes it; returns its ID in id. */
static void commit(struct fx *f, const char *from, const char *const *rcpts, const unsigned *notify,
                   size_t n, int64_t age, char id[ID_LEN + 1])
{
	static const char body[] = "From: <alice@sender.example>\r\nSubject: Hello there\r\n"
	                           "Message-ID: <m1@sender.example>\r\n\r\nBody line.\r\n";
	struct rcpt r[8];
	struct envelope e;
	struct spool_msg *m;
	char *err = NULL;
	size_t i;

	assert_true(n <= ARRAY_LEN(r));
	memset(r, 0, sizeof(r));
	for (i = 0; i < n; i++) {
		r[i].addr = (char *)rcpts[i];
		r[i].notify = notify ? notify[i] : 0;
	}
	memset(&e, 0, sizeof(e));
	e.mail_from = (char *)from;
	e.account = "acct";
	e.created = sched_now_s() - age;
	e.ret = DSN_RET_HDRS;
	e.rcpts = r;
	e.n_rcpts = n;
	m = spool_msg_new(f->sp, &err);
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, body, sizeof(body) - 1), 0);
	id[0] = '\0';
	spool_msg_commit(m, &e, on_committed, id);
	assert_int_equal(strlen(id), ID_LEN);
	sched_add_id(f->s, id);
}

/* The ready item of destination name, made active as a connection would. */
static struct qitem *start_item(struct fx *f, const char *name)
{
	struct dest *d = sched_dest_get(f->s, name);
	struct qitem *it = TAILQ_FIRST(&d->ready);

	assert_non_null(it);
	sched_item_set(f->s, it, IT_ACTIVE);
	assert_int_equal(sched_item_start(f->s, it), 0);
	return it;
}

static void verdict(struct smtpc_verdict *v, enum smtpc_action a, const char *reply)
{
	struct smtpc_peer peer = {"mx.example", "192.0.2.1"};
	struct smtpc_reply r;

	memset(&r, 0, sizeof(r));
	memset(v, 0, sizeof(*v));
	r.code = a == SMTPC_ACT_OK ? 250 : a == SMTPC_ACT_DEFER ? 451 : 550;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s",
	         a == SMTPC_ACT_OK      ? "2.0.0"
	         : a == SMTPC_ACT_DEFER ? "4.2.0"
	                                : "5.1.1");
	r.text = (char *)reply;
	r.n_lines = 1;
	smtpc_judge_reply(&peer, a == SMTPC_ACT_OK ? SMTPC_STAGE_DOT : SMTPC_STAGE_RCPT, &r, v);
	assert_int_equal(v->action, a);
}

static struct envelope *load(struct fx *f, const char *id)
{
	struct envelope *e = NULL;
	char *err = NULL;

	if (spool_load(f->sp, id, &e, &err) < 0)
		fail_msg("spool_load %s: %s", id, err);
	return e;
}

static int gone(struct fx *f, const char *id)
{
	struct envelope *e = NULL;
	char *err = NULL;
	int rc = spool_load(f->sp, id, &e, &err);

	free(err);
	envelope_free(e);
	return rc < 0 && errno == ENOENT;
}

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
	sched_apply_results(f.s, it, v, 0, NULL);
	/* nothing open: the file went, the index forgot it, no report */
	assert_true(gone(&f, id));
	sched_get_stats(f.s, &st);
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.items_ready + st.items_deferred + st.items_active, 0);
	assert_int_equal(reports(&f).n, 0);
	assert_int_equal(counted(&f, "delivered"), 2);
	assert_string_equal(f.counted[0].account, "acct");
	assert_string_equal(f.counted[0].domain, "example.com");
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
	sched_apply_results(f.s, it, v, 0, NULL);

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
	sched_apply_results(f.s, start_item(&f, "example.com"), &v, 1, NULL);
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
	sched_apply_results(f.s, start_item(&f, "example.com"), v, 0, NULL);
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
	sched_apply_results(f.s, start_item(&f, "example.com"), &v, 1, NULL);
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
	sched_apply_results(f.s, start_item(&f, "example.com"), &v, 1, NULL);
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
	sched_apply_results(f.s, start_item(&f, "example.com"), &v, 1, NULL);
	smtpc_verdict_clear(&v);
	assert_int_equal(f.s->heap_n, 1);
	assert_int_equal(sched_retry(f.s, id), 1);
	verdict(&v, SMTPC_ACT_OK, "ok");
	sched_apply_results(f.s, start_item(&f, "example.com"), &v, 1, NULL);
	smtpc_verdict_clear(&v);
	assert_true(gone(&f, id));
	assert_int_equal(f.s->n_msgs, 0);
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
	sched_apply_results(f.s, start_item(&f, "example.com"), v, 0, NULL);
	memset(&d, 0, sizeof(d));
	d.base = base;
	d.conf = f.conf;
	d.spool = f.sp;
	d.work = f.wp;
	again = sched_new(&d);
	/* b is open (the original), and the report's one recipient */
	assert_int_equal(sched_load(again), 2);
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
	sched_apply_results(f.s, it, v, 0, NULL);
	e = load(&f, id);
	assert_int_equal(e->rcpts[0].state, RCPT_BOUNCED);
	assert_int_equal(e->rcpts[1].state, RCPT_DEFERRED);
	envelope_free(e);
	assert_int_equal(reports(&f).n, 1);
	smtpc_verdict_clear(&v[0]);
	smtpc_verdict_clear(&v[1]);
	fx_close(&f);
}

static int group_setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	base = event_base_new();
	return base ? 0 : -1;
}

static int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc = system(cmd);

	free(cmd);
	event_base_free(base);
	return rc == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_all_delivered),
	    cmocka_unit_test(test_mixed),
	    cmocka_unit_test(test_all_bounced_one_report),
	    cmocka_unit_test(test_null_sender_no_report),
	    cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_delay_notice),
	    cmocka_unit_test(test_deferred_then_delivered),
	    cmocka_unit_test(test_state_survives_restart),
	    cmocka_unit_test(test_stopped_writes_inline),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
