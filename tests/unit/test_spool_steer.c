/*
 * test_spool_steer: hold, release and delete on a real spool, in slices
 * (spool_steer), the deletion journal and its replay, and the filter
 * rules of spool_select (pure). A spool opened without an event loop:
 * commits are synchronous.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "spool/spool.h"
#include "spool/spool_format.h"
#include "util/util.h"

static char root[] = "/tmp/posthorn-test-steer-XXXXXX";

struct fx {
	char *dir;
	struct spool *sp;
};

static void fx_open(struct fx *f, const char *name)
{
	char *err = NULL;

	f->dir = xasprintf("%s/%s", root, name);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	f->sp = spool_open(f->dir, NULL, &err);
	if (!f->sp)
		fail_msg("spool_open: %s", err);
}

static void fx_close(struct fx *f)
{
	spool_close(f->sp);
	free(f->dir);
}

static void on_committed(void *arg, int ok, const char *id)
{
	assert_true(ok);
	snprintf(arg, ID_LEN + 1, "%s", id);
}

/* A message from from to the n addresses given. */
static void commit(struct fx *f, const char *from, char id[ID_LEN + 1], size_t n, ...)
{
	struct rcpt r[8];
	struct envelope e;
	struct spool_msg *m;
	char *err = NULL;
	va_list ap;

	assert_true(n <= 8);
	memset(r, 0, sizeof(r));
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		r[i].addr = va_arg(ap, char *);
	va_end(ap);
	memset(&e, 0, sizeof(e));
	e.mail_from = (char *)from;
	e.account = "default";
	e.created = 1700000000;
	e.rcpts = r;
	e.n_rcpts = n;
	assert_non_null(m = spool_msg_new(f->sp, &err));
	assert_int_equal(spool_msg_write(m, "Subject: x\r\n\r\nhi\r\n", 19), 0);
	spool_msg_commit(m, &e, on_committed, id);
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

/* Runs a whole operation in slices of max; returns what it did (*n). */
static struct spool_steered *run(struct fx *f, enum spool_op op, char *const *ids, size_t n_ids,
                                 const char *domain, int journal, int64_t now, size_t max,
                                 size_t *n, size_t *steps)
{
	struct spool_steer_opts o = {op, ids, n_ids, domain, journal, now};
	struct spool_steered *out = NULL;
	char *err = NULL;
	struct spool_steer *st = spool_steer_begin(f->sp, &o, &err);
	long left;

	assert_non_null(st);
	*n = 0;
	*steps = 0;
	do {
		left = spool_steer_step(st, max, &out, n, &err);
		if (left < 0)
			fail_msg("step: %s", err);
		(*steps)++;
	} while (left > 0);
	assert_int_equal(spool_steer_done(st), spool_steer_total(st));
	spool_steer_end(st);
	return out;
}

/* Hold by domain, across messages: only that domain's open recipients;
 * release adds the time held; both survive a reload. */
static void test_hold_release_domain(void **state)
{
	struct fx f;
	char a[ID_LEN + 1], b[ID_LEN + 1], *ids[1];
	struct spool_steered *v;
	struct envelope *e;
	size_t n, steps;

	fx_open(&f, "hold");
	commit(&f, "s@x", a, 2, "u@Hold.Example", "v@other.example");
	commit(&f, "s@x", b, 1, "w@hold.example.");
	v = run(&f, SPOOL_HOLD, NULL, 0, "hold.example", 0, 5000, 1000, &n, &steps);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].n, 1);
	assert_int_equal(v[0].idx[0], 0);
	spool_steered_free(v, n);
	e = load(&f, a);
	assert_int_equal(e->rcpts[0].held_since, 5000);
	assert_true(rcpt_is_held(&e->rcpts[0]));
	assert_false(rcpt_is_held(&e->rcpts[1]));
	envelope_free(e);
	/* holding again changes nothing; release by ID after 70 s */
	v = run(&f, SPOOL_HOLD, NULL, 0, "hold.example", 0, 5001, 1000, &n, &steps);
	assert_int_equal(n, 0);
	spool_steered_free(v, n);
	ids[0] = a;
	v = run(&f, SPOOL_RELEASE, ids, 1, NULL, 0, 5070, 1000, &n, &steps);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].n, 1);
	assert_null(v[0].error);
	spool_steered_free(v, n);
	e = load(&f, a);
	assert_int_equal(e->rcpts[0].held_since, 0);
	assert_int_equal(e->rcpts[0].held_secs, 70);
	assert_true(rcpt_is_open(&e->rcpts[0]));
	envelope_free(e);
	e = load(&f, b);
	assert_true(rcpt_is_held(&e->rcpts[0])); /* not named */
	envelope_free(e);
	fx_close(&f);
}

/* Delete: the file goes when every open recipient is picked; otherwise
 * the picked ones are marked deleted, final. A delivered recipient is
 * not picked. Unknown IDs are reported, not fatal. */
static void test_delete(void **state)
{
	struct fx f;
	char a[ID_LEN + 1], b[ID_LEN + 1], missing[ID_LEN + 1], *ids[2];
	struct spool_steered *v;
	struct envelope *e;
	size_t n, steps, zero = 0;
	char *err = NULL;

	fx_open(&f, "delete");
	commit(&f, "s@x", a, 2, "u@gone.example", "v@kept.example");
	commit(&f, "s@x", b, 2, "w@gone.example", "x@kept.example");
	e = load(&f, b);
	e->rcpts[0].state = RCPT_DELIVERED; /* b's gone.example recipient is done */
	assert_int_equal(spool_set_rcpt_states(f.sp, b, e->rcpts, &zero, 1, 1, &err), 0);
	envelope_free(e);
	v = run(&f, SPOOL_DELETE, NULL, 0, "gone.example", 0, 5000, 1000, &n, &steps);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, a);
	assert_false(v[0].removed);
	spool_steered_free(v, n);
	e = load(&f, a);
	assert_true(e->rcpts[0].deleted);
	assert_false(rcpt_is_open(&e->rcpts[0]));
	assert_true(rcpt_is_open(&e->rcpts[1]));
	envelope_free(e);
	/* by ID: every open recipient, so the file goes */
	id_new(missing);
	ids[0] = a, ids[1] = missing;
	v = run(&f, SPOOL_DELETE, ids, 2, NULL, 0, 5000, 1000, &n, &steps);
	assert_int_equal(n, 2);
	assert_true(v[0].removed);
	assert_int_equal(v[0].n, 1);
	assert_non_null(v[1].error);
	assert_non_null(strstr(v[1].error, "no message"));
	spool_steered_free(v, n);
	assert_true(gone(&f, a));
	assert_false(gone(&f, b));
	fx_close(&f);
}

/* 2,500 messages in slices of 1,000: three steps, everything held. */
static void test_slices(void **state)
{
	struct fx f;
	char id[ID_LEN + 1];
	struct spool_steered *v;
	size_t n, steps, i;

	fx_open(&f, "slices");
	for (i = 0; i < 2500; i++)
		commit(&f, "s@x", id, 1, "u@d.example");
	v = run(&f, SPOOL_HOLD, NULL, 0, NULL, 0, 5000, 1000, &n, &steps);
	assert_int_equal(n, 2500);
	assert_int_equal(steps, 3);
	for (i = 0; i < n; i++)
		assert_int_equal(v[i].n, 1);
	spool_steered_free(v, n);
	fx_close(&f);
}

static void on_replayed(void *arg, int64_t when, const char *id, const char *addr)
{
	struct buf *b = arg;

	buf_printf(b, "%lld %s %s\n", (long long)when, id, addr);
}

/* A stopped server's deletions are journaled, and the next start logs
 * those that took effect; a line whose deletion never happened (a crash
 * between journal and deletion) is not logged. The journal then goes. */
static void test_journal(void **state)
{
	struct fx f;
	char a[ID_LEN + 1], b[ID_LEN + 1], c[ID_LEN + 1], *ids[1], *path, *err = NULL;
	struct spool_steered *v;
	struct buf got, line;
	size_t n, steps;
	FILE *fp;

	fx_open(&f, "journal");
	commit(&f, "s@x", a, 2, "u@one.example", "v@two.example");
	commit(&f, "s@x", b, 1, "w@one.example");
	commit(&f, "s@x", c, 1, "stays@one.example");
	ids[0] = a;
	v = run(&f, SPOOL_DELETE, ids, 1, "one.example", 1, 4000, 1000, &n, &steps);
	spool_steered_free(v, n);
	ids[0] = b;
	v = run(&f, SPOOL_DELETE, ids, 1, NULL, 1, 4001, 1000, &n, &steps);
	spool_steered_free(v, n);
	/* as if a crash came after the journal line and before the delete */
	buf_init(&line);
	spool_journal_encode(4002, c, 0, "stays@one.example", &line);
	path = xasprintf("%s/spool/deleted", f.dir);
	assert_non_null(fp = fopen(path, "a"));
	fputs(line.data, fp);
	fputs("deleted garbage\n", fp);
	fclose(fp);
	buf_init(&got);
	assert_int_equal(spool_journal_replay(f.sp, on_replayed, &got, &err), 2);
	line.len = 0;
	buf_printf(&line, "4000 %s u@one.example\n4001 %s w@one.example\n", a, b);
	assert_string_equal(got.data, line.data);
	assert_int_equal(access(path, F_OK), -1); /* the journal is gone */
	got.len = 0;
	assert_int_equal(spool_journal_replay(f.sp, on_replayed, &got, &err), 0);
	buf_free(&got);
	buf_free(&line);
	free(path);
	fx_close(&f);
}

/* The journal line decoder refuses what is not one line of its kind. */
static void test_journal_decode(void **state)
{
	struct spool_journal_line l;
	struct buf b;
	char id[ID_LEN + 1];

	id_new(id);
	buf_init(&b);
	spool_journal_encode(-5, id, 3, "a b%@x", &b);
	assert_int_equal(spool_journal_decode(b.data, b.len - 1, &l), 0);
	assert_int_equal(l.when, -5);
	assert_int_equal(l.idx, 3);
	assert_string_equal(l.addr, "a b%@x");
	assert_string_equal(l.id, id);
	free(l.addr);
	assert_int_equal(spool_journal_decode("deleted 1 X 0 a", 15, &l), -1);
	assert_int_equal(spool_journal_decode("", 0, &l), -1);
	b.len = 0;
	buf_printf(&b, "deleted 1 %s 99999999 a", id);
	assert_int_equal(spool_journal_decode(b.data, b.len, &l), -1);
	b.len = 0;
	buf_printf(&b, "deleted 1 %s 0 -", id); /* no address */
	assert_int_equal(spool_journal_decode(b.data, b.len, &l), -1);
	buf_free(&b);
}

/* The filter rules: domain in any case and with a root dot, sender in
 * any case and "<>" for the null sender, states as shown. */
static void test_filter(void **state)
{
	struct rcpt r[4] = {{.addr = "a@Example.COM"},
	                    {.addr = "b@example.com.", .state = RCPT_DEFERRED},
	                    {.addr = "c@example.com", .held_since = 9},
	                    {.addr = "d@example.com", .state = RCPT_DELIVERED}};
	struct envelope e = {.mail_from = "Boss@X.example", .rcpts = r, .n_rcpts = 4};
	struct spool_filter f = {"example.com.", NULL, 0};

	assert_int_equal(spool_filter_count(&f, &e), 3);
	f.states = spool_filter_state("held");
	assert_int_equal(spool_filter_count(&f, &e), 1);
	f.states = spool_filter_state("pending") | spool_filter_state("deferred");
	assert_int_equal(spool_filter_count(&f, &e), 2);
	assert_int_equal(spool_filter_state("delivered"), 0);
	f.states = 0;
	f.sender = "boss@x.example";
	assert_int_equal(spool_filter_count(&f, &e), 3);
	f.sender = "<>";
	assert_int_equal(spool_filter_count(&f, &e), 0);
	e.mail_from = "";
	assert_int_equal(spool_filter_count(&f, &e), 3);
	f.domain = "other.example";
	assert_int_equal(spool_filter_count(&f, &e), 0);
	assert_false(spool_domain_is("nodomain", "example.com"));
	assert_false(spool_domain_is("a@", ""));
	assert_true(spool_domain_is("x@[127.0.0.1]", "[127.0.0.1]"));
	assert_string_equal(rcpt_state_shown(&r[2]), "held");
	assert_string_equal(rcpt_state_shown(&r[3]), "delivered");
}

static int setup(void **state)
{
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", root);
	int rc = system(cmd);

	free(cmd);
	return rc == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hold_release_domain),
	    cmocka_unit_test(test_delete),
	    cmocka_unit_test(test_slices),
	    cmocka_unit_test(test_journal),
	    cmocka_unit_test(test_journal_decode),
	    cmocka_unit_test(test_filter),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
