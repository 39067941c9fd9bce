/*
 * What the scheduler's test suites share: one scheduler on a fresh data
 * directory, with a real spool opened without an event loop (synchronous
 * commits) and a work pool of 0 threads (jobs run at once), so that what
 * a call starts has happened when it returns; committing and indexing a
 * message; making an item active as a connection would; verdicts as a
 * connection would give them. White-box: it includes sched_int.h.
 * Included by test_sched_result.c and test_sched_dest.c after cmocka.h.
 */
#ifndef POSTHORN_TEST_SCHED_FIXTURE_H
#define POSTHORN_TEST_SCHED_FIXTURE_H

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf_fixture.h"
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
		char account[64], rcpt[128], event[16];
	} counted[16]; /* the first events counted */
	size_t n_counted, n_events;
};

static inline void on_count(void *arg, const char *account, const char *rcpt, const char *event)
{
	struct fx *f = arg;

	if (f->n_events++ >= ARRAY_LEN(f->counted))
		return;
	snprintf(f->counted[f->n_counted].account, sizeof(f->counted[0].account), "%s", account);
	snprintf(f->counted[f->n_counted].rcpt, sizeof(f->counted[0].rcpt), "%s", rcpt);
	snprintf(f->counted[f->n_counted].event, sizeof(f->counted[0].event), "%s", event);
	f->n_counted++;
}

static inline size_t counted(const struct fx *f, const char *event)
{
	size_t i, n = 0;

	for (i = 0; i < f->n_counted; i++)
		n += strcmp(f->counted[i].event, event) == 0;
	return n;
}

static inline struct conf *load_conf(const char *dir)
{
	char *path = xasprintf("%s/posthorn.conf", dir);
	char *text = xasprintf("[server]\nhostname = relay.test\ndata_dir = %s\n"
	                       "[relay]\nretry = 1m, 5m\nqueue_lifetime = 1d\ndelay_warning = 4h\n"
	                       "[domain.slow.example]\nmax_rate = 1/h\n",
	                       dir);
	struct conf *c = conf_from_text(path, text);

	free(text);
	free(path);
	return c;
}

static inline void fx_open(struct fx *f, const char *name)
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

static inline void fx_close(struct fx *f)
{
	sched_stop(f->s);
	sched_free(f->s);
	work_pool_free(f->wp);
	spool_close(f->sp);
	conf_free(f->conf);
	free(f->dir);
}

static inline void on_committed(void *arg, int ok, const char *id)
{
	char *out = arg;

	assert_true(ok);
	snprintf(out, ID_LEN + 1, "%s", id);
}

/* Commits a message from from to rcpts[0..n) (NOTIFY as given, 0: none),
 * created age seconds ago, and indexes it; returns its ID in id. */
static inline void commit(struct fx *f, const char *from, const char *const *rcpts,
                          const unsigned *notify, size_t n, int64_t age, char id[ID_LEN + 1])
{
	static const char body[] = "From: <alice@sender.example>\r\nSubject: Hello there\r\n"
	                           "Message-ID: <m1@sender.example>\r\n\r\nBody line.\r\n";
	struct rcpt *r = xcalloc(n, sizeof(*r));
	struct envelope e;
	struct spool_msg *m;
	char *err = NULL;
	size_t i;

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
	memcpy(e.id, id, sizeof(e.id));
	sched_add(f->s, &e); /* from memory, as the listener hands it over */
	free(r);
}

static inline void on_recovered_fx(void *arg, long good)
{
	*(long *)arg = good;
}

/* A restart's view: s indexes the spool as recovery reads it (jobs run
 * at once here). Returns the messages recovered. */
static inline long reindex(struct fx *f, struct sched *s)
{
	struct spool_recovery *rv = spool_recover_begin(f->sp);
	long good = -2;

	assert_non_null(rv);
	sched_recover(s, rv, on_recovered_fx, &good);
	assert_false(good == -2);
	return good;
}

/* The ready item of destination name, made active as a connection would. */
static inline struct qitem *start_item(struct fx *f, const char *name)
{
	struct dest *d = sched_dest_get(f->s, name);
	struct qitem *it = TAILQ_FIRST(&d->ready);

	assert_non_null(it);
	sched_item_set(f->s, it, IT_ACTIVE);
	assert_int_equal(sched_item_start(f->s, it), 0);
	return it;
}

static inline void verdict(struct smtpc_verdict *v, enum smtpc_action a, const char *reply)
{
	struct smtpc_peer peer = {.host = "mx.example", .addr = "192.0.2.1"};
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

/* The verdicts of an attempt, as a connection ends it (no connection
 * made: c NULL), and the end of that event: its reports start. */
static inline void apply(struct fx *f, struct qitem *it, const struct smtpc_verdict *v, int same)
{
	sched_apply_results(f->s, it, v, same, NULL);
	sched_reports_start(f->s);
}

static inline struct envelope *load(struct fx *f, const char *id)
{
	struct envelope *e = NULL;
	char *err = NULL;

	if (spool_load(f->sp, id, &e, &err) < 0)
		fail_msg("spool_load %s: %s", id, err);
	return e;
}

static inline int gone(struct fx *f, const char *id)
{
	struct envelope *e = NULL;
	char *err = NULL;
	int rc = spool_load(f->sp, id, &e, &err);

	free(err);
	envelope_free(e);
	return rc < 0 && errno == ENOENT;
}

static inline int group_setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	base = event_base_new();
	return base ? 0 : -1;
}

static inline int group_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc = system(cmd);

	free(cmd);
	event_base_free(base);
	return rc == 0 ? 0 : -1;
}

#endif
