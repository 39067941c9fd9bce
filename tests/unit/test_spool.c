/*
 * test_spool: the durable spool against a real file system and a real
 * event loop: round trips (odd bytes, many recipients, a 5 MB body),
 * group commit and its fsync count, recipient state records (in order,
 * torn tail ignored), recovery of files crafted byte by byte from the
 * format in docs/spool.md, listing order, delete, abort, the CLI, and a
 * small commit-rate measurement that prints its figures.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <sodium.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "log/log.h"
#include "spool/spool.h"
#include "spool/spool_int.h" /* spool_commit_pause() */
#include "spool_fixture.h"

static char root[256];
static struct event_base *base;

/* ---- helpers ---- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

/* A fresh data directory per test. */
static char *new_dir(const char *name)
{
	char *d = xasprintf("%s/%s", root, name);

	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return d;
}

static char *path_in(const char *dir, const char *sub, const char *name)
{
	return xasprintf("%s/spool/%s/%s", dir, sub, name);
}

static size_t count_entries(const char *dir, const char *sub)
{
	char *cmd = xasprintf("ls -A '%s/spool/%s' | wc -l", dir, sub);
	FILE *p = popen(cmd, "r");
	unsigned long n = 0;

	assert_non_null(p);
	assert_int_equal(fscanf(p, "%lu", &n), 1);
	pclose(p);
	free(cmd);
	return n;
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static void run_until(int *flag, int want)
{
	while (*flag < want)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
}

static struct envelope simple_env(struct rcpt *r, size_t n)
{
	struct envelope e;

	memset(&e, 0, sizeof(e));
	e.mail_from = "sender@example.com";
	e.account = "default";
	e.client_ip = "127.0.0.1";
	e.helo = "client.example";
	e.created = 1700000000;
	e.rcpts = r;
	e.n_rcpts = n;
	return e;
}

/* Commits body as one message and waits for done(); returns ok. */
static int commit_one(struct spool *sp, const struct envelope *e, const char *body, char *id)
{
	struct wait w = {0};
	char *err = NULL;
	struct spool_msg *m = spool_msg_new(sp, &err);

	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, body, strlen(body)), 0);
	spool_msg_commit(m, e, on_done, &w);
	run_until(&w.done, 1);
	if (id)
		memcpy(id, w.id, ID_LEN + 1);
	return w.ok;
}

static struct spool *open_server(const char *dir)
{
	char *err = NULL;
	struct spool *sp = spool_open(dir, base, &err);

	if (!sp)
		fail_msg("spool_open: %s", err);
	return sp;
}

/* ---- round trips ---- */

static void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void test_roundtrip_odd_bytes(void **state)
{
	char *dir = new_dir("odd"), *err = NULL, id[ID_LEN + 1];
	struct rcpt r[4] = {
	    {.addr = "plain@example.com", .notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE},
	    {.addr = "sp ace%25\x01\x7f\xff\xc3\xa9@x",
	     .orcpt = "rfc822;a b@c",
	     .state = RCPT_DEFERRED,
	     .attempts = 3,
	     .next_attempt = 1700000300,
	     .last_reply = "451 4.3.0\r\nline two"},
	    {.addr = "-", .orcpt = "-", .last_reply = ""},
	    {.addr = ".", .orcpt = ".", .notify = DSN_NOTIFY_NEVER},
	};
	struct envelope e = simple_env(r, 4), *got;
	struct spool *sp = open_server(dir);

	e.mail_from = "";
	e.helo = "";
	e.client_ip = "::1";
	e.envid = "env id\t%00";
	e.body = BODY_8BITMIME;
	e.smtputf8 = 1;
	e.ret = DSN_RET_HDRS;
	assert_true(commit_one(sp, &e, "Subject: x\r\n\r\nbody\r\n", id));
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	assert_string_equal(got->id, id);
	assert_string_equal(got->mail_from, "");
	assert_string_equal(got->helo, "");
	assert_string_equal(got->client_ip, "::1");
	assert_string_equal(got->envid, "env id\t%00");
	assert_int_equal(got->size, strlen("Subject: x\r\n\r\nbody\r\n"));
	assert_int_equal(got->created, 1700000000);
	assert_int_equal(got->body, BODY_8BITMIME);
	assert_int_equal(got->smtputf8, 1);
	assert_int_equal(got->ret, DSN_RET_HDRS);
	assert_int_equal(got->n_rcpts, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(got->rcpts[i].addr, r[i].addr);
		assert_str_or_null(got->rcpts[i].orcpt, r[i].orcpt);
		assert_str_or_null(got->rcpts[i].last_reply, r[i].last_reply);
		assert_int_equal(got->rcpts[i].notify, r[i].notify);
		assert_int_equal(got->rcpts[i].state, r[i].state);
		assert_int_equal(got->rcpts[i].attempts, r[i].attempts);
		assert_int_equal(got->rcpts[i].next_attempt, r[i].next_attempt);
	}
	envelope_free(got);
	spool_close(sp);
	free(dir);
}

/* The codec alone (spool_format.h, PURE): what the encoder accepts the
 * decoder gives back, at the edges of every number. Found by
 * fuzz/fuzz_spool_format: INT64_MIN was written, then refused on load. */
static void test_format_number_edges(void **state)
{
	static const int64_t edges[] = {INT64_MIN, INT64_MIN + 1, -1, 0, INT64_MAX};
	struct rcpt r = {.addr = "a@b", .attempts = UINT32_MAX, .notify = 0xFF};
	struct envelope e = simple_env(&r, 1), *got;
	char *reason = NULL;
	struct buf b, rec;
	size_t i;

	(void)state;
	buf_init(&rec);
	for (i = 0; i < ARRAY_LEN(edges); i++) {
		buf_init(&b);
		e.created = edges[i];
		r.next_attempt = edges[ARRAY_LEN(edges) - 1 - i];
		assert_int_equal(spool_env_encode(&e, "0123456789ABCDEF", UINT64_MAX, &b, &reason),
		                 0);
		if (spool_env_decode(b.data, b.len, "0123456789ABCDEF", 1, &got, &reason) < 0)
			fail_msg("edge %zu: %s", i, reason);
		assert_true(got->created == e.created);
		assert_true(got->size == UINT64_MAX);
		assert_true(got->rcpts[0].next_attempt == r.next_attempt);
		assert_int_equal(got->rcpts[0].attempts, UINT32_MAX);
		/* and through a state record */
		buf_reset(&rec);
		r.next_attempt = edges[i];
		spool_rcpt_encode(0, &r, &rec);
		assert_int_equal(spool_rcpt_apply(rec.data + 1, rec.len - 2, got), 0);
		assert_true(got->rcpts[0].next_attempt == edges[i]);
		envelope_free(got);
		buf_free(&b);
	}
	buf_free(&rec);
}

/* REQUIRETLS (RFC 8689) makes the record version 2 with one more line;
 * without it the record stays version 1, byte for byte. A version 2
 * record without the line, or with another value, does not load. */
static void test_format_requiretls_v2(void **state)
{
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1), *got;
	char *reason = NULL, *p;
	struct buf b;

	(void)state;
	buf_init(&b);
	assert_int_equal(spool_env_encode(&e, "0123456789ABCDEF", 1, &b, &reason), 0);
	assert_true(strncmp(b.data, "PHENV 1\n", 8) == 0);
	assert_null(strstr(b.data, "requiretls"));
	buf_reset(&b);
	e.requiretls = 1;
	assert_int_equal(spool_env_encode(&e, "0123456789ABCDEF", 1, &b, &reason), 0);
	assert_true(strncmp(b.data, "PHENV 2\n", 8) == 0);
	assert_non_null(strstr(b.data, "\nenvid -\nrequiretls 1\nrcpts 1\n"));
	if (spool_env_decode(b.data, b.len, "0123456789ABCDEF", 1, &got, &reason) < 0)
		fail_msg("%s", reason);
	assert_int_equal(got->requiretls, 1);
	envelope_free(got);
	/* the line is checksummed: change it and the record is refused */
	p = strstr(b.data, "requiretls 1");
	p[11] = '2';
	assert_int_equal(spool_env_decode(b.data, b.len, "0123456789ABCDEF", 1, &got, &reason), -1);
	free(reason);
	buf_free(&b);
}

/* An envelope the decoder would refuse is refused by the encoder, and out
 * is left as it was: no unloadable file is ever committed. */
static void test_format_encode_refuses(void **state)
{
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1);
	char *reason = NULL, *long_field = xcalloc(1, SPOOL_FIELD_MAX + 2);
	struct buf b;

	(void)state;
	buf_init(&b);
	buf_puts(&b, "kept");
	e.account = NULL;
	assert_int_equal(spool_env_encode(&e, "0123456789ABCDEF", 0, &b, &reason), -1);
	assert_string_equal(reason, "envelope without account");
	free(reason);
	e.account = "default";
	memset(long_field, 'x', SPOOL_FIELD_MAX + 1);
	e.helo = long_field;
	assert_int_equal(spool_env_encode(&e, "0123456789ABCDEF", 0, &b, &reason), -1);
	free(reason);
	assert_string_equal(b.data, "kept");
	buf_free(&b);
	free(long_field);
}

static void test_many_rcpts(void **state)
{
	enum { N = 100000 };
	char *dir = new_dir("many"), *err = NULL, id[ID_LEN + 1];
	struct rcpt *r = calloc(N, sizeof(*r));
	struct envelope e = simple_env(r, N), *got;
	struct spool *sp = open_server(dir);
	size_t i;

	for (i = 0; i < N; i++)
		r[i].addr = xasprintf("user%zu@domain%zu.example", i, i % 97);
	assert_true(commit_one(sp, &e, "\r\n", id));
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	assert_int_equal(got->n_rcpts, N);
	for (i = 0; i < N; i++)
		assert_string_equal(got->rcpts[i].addr, r[i].addr);
	envelope_free(got);
	for (i = 0; i < N; i++)
		free(r[i].addr);
	free(r);
	spool_close(sp);
	free(dir);
}

static unsigned char pattern(uint64_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

static void test_big_body(void **state)
{
	const uint64_t total = 5u << 20;
	char *dir = new_dir("big"), *err = NULL;
	unsigned char piece[1021], back[65536];
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1);
	struct spool *sp = open_server(dir);
	struct spool_msg *m = spool_msg_new(sp, &err);
	struct wait w = {0};
	uint64_t off, len, i = 0, pos;
	int fd;

	while (i < total) {
		size_t n = 1 + (size_t)(i % sizeof(piece)); /* pieces of varying size */
		if (n > total - i)
			n = (size_t)(total - i);
		for (size_t k = 0; k < n; k++)
			piece[k] = pattern(i + k);
		assert_int_equal(spool_msg_write(m, piece, n), 0);
		i += n;
	}
	assert_int_equal(spool_msg_size(m), total);
	spool_msg_commit(m, &e, on_done, &w);
	run_until(&w.done, 1);
	assert_true(w.ok);
	assert_int_equal(spool_open_body(sp, w.id, &fd, &off, &len, &err), 0);
	assert_int_equal(len, total);
	for (pos = 0; pos < len; pos += sizeof(back)) {
		size_t n = len - pos < sizeof(back) ? (size_t)(len - pos) : sizeof(back);
		assert_int_equal(pread(fd, back, n, (off_t)(off + pos)), (ssize_t)n);
		for (size_t k = 0; k < n; k++)
			if (back[k] != pattern(pos + k))
				fail_msg("byte %llu differs", (unsigned long long)(pos + k));
	}
	close(fd);
	spool_close(sp);
	free(dir);
}

/* ---- group commit ---- */

/* Messages committed together share one batch: 50 messages, one
 * directory fsync. The committer is held while they arrive, as it would be
 * by a slow disk, so the batch size is exact. */
static void test_group_commit(void **state)
{
	enum { N = 50 };
	char *dir = new_dir("group"), *err = NULL;
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1);
	struct spool *sp = open_server(dir);
	struct spool_stats s0, s1;
	struct wait w = {0};
	int i;

	spool_get_stats(sp, &s0);
	spool_commit_pause(sp, 1);
	for (i = 0; i < N; i++) {
		struct spool_msg *m = spool_msg_new(sp, &err);
		assert_non_null(m);
		spool_msg_write(m, "Subject: g\r\n\r\nx\r\n", 17);
		spool_msg_commit(m, &e, on_done, &w);
	}
	assert_int_equal(w.done, 0); /* no 250 before the disk says so */
	spool_commit_pause(sp, 0);
	run_until(&w.done, N);
	spool_get_stats(sp, &s1);
	assert_int_equal(s1.commits - s0.commits, N);
	assert_int_equal(s1.commit_batches - s0.commit_batches, 1);
	/* one fdatasync per message, one directory fsync per batch */
	assert_int_equal(s1.fsyncs - s0.fsyncs, N + 1);
	assert_int_equal(count_entries(dir, "queue"), N);
	assert_int_equal(count_entries(dir, "tmp"), 0);
	spool_close(sp);
	free(dir);
}

/* Free-running: sessions that finish while a batch is on the disk join
 * the next one. Fewer batches than messages, and fsyncs = messages +
 * batches, whatever the timing. */
static void test_group_commit_natural(void **state)
{
	enum { N = 50 };
	char *dir = new_dir("group2"), *err = NULL;
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1);
	struct spool *sp = open_server(dir);
	struct spool_stats s0, s1;
	struct wait w = {0};

	spool_get_stats(sp, &s0);
	for (int i = 0; i < N; i++) {
		struct spool_msg *m = spool_msg_new(sp, &err);
		spool_msg_write(m, "x\r\n", 3);
		spool_msg_commit(m, &e, on_done, &w);
	}
	run_until(&w.done, N);
	spool_get_stats(sp, &s1);
	print_message("group commit, free-running: %d messages in %llu batches\n", N,
	              (unsigned long long)(s1.commit_batches - s0.commit_batches));
	assert_true(s1.commit_batches - s0.commit_batches <= N);
	assert_int_equal(s1.fsyncs - s0.fsyncs, N + (s1.commit_batches - s0.commit_batches));
	spool_close(sp);
	free(dir);
}

/* A failed commit (here: a field over the limit) reports ok=0 and leaves
 * nothing behind. */
static void test_commit_failure(void **state)
{
	char *dir = new_dir("fail"), *big = malloc(5000);
	struct rcpt r = {.addr = big};
	struct envelope e = simple_env(&r, 1);
	struct spool *sp = open_server(dir);

	memset(big, 'a', 4999);
	big[4999] = '\0';
	assert_false(commit_one(sp, &e, "x\r\n", NULL));
	assert_int_equal(count_entries(dir, "queue"), 0);
	assert_int_equal(count_entries(dir, "tmp"), 0);
	spool_close(sp);
	free(big);
	free(dir);
}

/* Without an event base (CLI, tools) the commit is synchronous. */
static void test_sync_commit(void **state)
{
	char *dir = new_dir("sync"), *err = NULL;
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1), *got;
	struct spool *sp = spool_open(dir, NULL, &err);
	struct spool_msg *m = spool_msg_new(sp, &err);
	struct wait w = {0};

	spool_msg_write(m, "x\r\n", 3);
	spool_msg_commit(m, &e, on_done, &w);
	assert_int_equal(w.done, 1);
	assert_true(w.ok);
	assert_int_equal(spool_load(sp, w.id, &got, &err), 0);
	envelope_free(got);
	spool_close(sp);
	free(dir);
}

/* ---- recipient states ---- */

static void set_state(struct spool *sp, const char *id, size_t i, enum rcpt_state st,
                      uint32_t attempts, const char *reply)
{
	struct rcpt r = {.state = st,
	                 .attempts = attempts,
	                 .next_attempt = 1700000000 + attempts,
	                 .last_reply = (char *)reply};
	char *err = NULL;

	assert_int_equal(spool_set_rcpt_state(sp, id, i, &r, &err), 0);
}

/* Several records in one append, with and without fdatasync: both load,
 * and only the synced batch costs an fsync. */
static void test_rcpt_states_batch(void **state)
{
	char *dir = new_dir("batch"), *err = NULL, id[ID_LEN + 1];
	struct rcpt r[3] = {{.addr = "a@x"}, {.addr = "b@y"}, {.addr = "c@z"}};
	struct envelope e = simple_env(r, 3), *got;
	struct spool *sp = open_server(dir);
	struct spool_stats before, after;
	size_t idx[2] = {0, 2}, bad[1] = {3};

	assert_true(commit_one(sp, &e, "x\r\n", id));
	r[0].state = RCPT_DEFERRED;
	r[0].next_attempt = 1700000100;
	r[2].state = RCPT_DEFERRED;
	r[2].last_reply = "451 later";
	spool_get_stats(sp, &before);
	assert_int_equal(spool_set_rcpt_states(sp, id, r, idx, 2, 0, &err), 0);
	spool_get_stats(sp, &after);
	assert_int_equal(after.fsyncs, before.fsyncs);
	r[2].state = RCPT_DELIVERED;
	assert_int_equal(spool_set_rcpt_states(sp, id, r, &idx[1], 1, 1, &err), 0);
	spool_get_stats(sp, &after);
	assert_int_equal(after.fsyncs, before.fsyncs + 1);
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	assert_int_equal(got->rcpts[0].state, RCPT_DEFERRED);
	assert_int_equal(got->rcpts[0].next_attempt, 1700000100);
	assert_int_equal(got->rcpts[1].state, RCPT_PENDING);
	assert_int_equal(got->rcpts[2].state, RCPT_DELIVERED);
	assert_string_equal(got->rcpts[2].last_reply, "451 later");
	envelope_free(got);
	/* an index past the envelope is refused and nothing is written */
	assert_int_equal(spool_set_rcpt_states(sp, id, r, bad, 1, 0, &err), -1);
	free(err);
	spool_close(sp);
	free(dir);
}

static void append_raw(const char *dir, const char *id, const char *bytes)
{
	char *p = path_in(dir, "queue", id);
	int fd = open(p, O_WRONLY | O_APPEND);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, strlen(bytes)), (ssize_t)strlen(bytes));
	close(fd);
	free(p);
}

static void test_rcpt_states(void **state)
{
	char *dir = new_dir("states"), *err = NULL, id[ID_LEN + 1];
	struct rcpt r[3] = {{.addr = "a@x"}, {.addr = "b@y"}, {.addr = "c@z"}};
	struct envelope e = simple_env(r, 3), *got;
	struct spool *sp = open_server(dir);
	struct rcpt bad = {0};

	assert_true(commit_one(sp, &e, "x\r\n", id));
	set_state(sp, id, 0, RCPT_DEFERRED, 1, "421 busy");
	set_state(sp, id, 1, RCPT_BOUNCED, 1, "550 5.1.1 no such user");
	set_state(sp, id, 0, RCPT_DELIVERED, 2, "250 ok");
	/* damage in the middle (a bad checksum) and a torn record at the end */
	append_raw(dir, id, "\nR 2 delivered 9 9 - 00000000000000000000000000000000\n");
	append_raw(dir, id, "\nR 2 bounced 7 0 550 ");
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	assert_int_equal(got->rcpts[0].state, RCPT_DELIVERED);
	assert_int_equal(got->rcpts[0].attempts, 2);
	assert_string_equal(got->rcpts[0].last_reply, "250 ok");
	assert_int_equal(got->rcpts[1].state, RCPT_BOUNCED);
	assert_string_equal(got->rcpts[1].last_reply, "550 5.1.1 no such user");
	assert_int_equal(got->rcpts[2].state, RCPT_PENDING);
	assert_null(got->rcpts[2].last_reply);
	envelope_free(got);
	/* a record written after the torn one still counts */
	set_state(sp, id, 2, RCPT_DEFERRED, 1, NULL);
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	assert_int_equal(got->rcpts[2].state, RCPT_DEFERRED);
	assert_int_equal(got->rcpts[2].next_attempt, 1700000001);
	envelope_free(got);
	assert_int_equal(spool_set_rcpt_state(sp, id, 3, &bad, &err), -1);
	free(err);
	spool_close(sp);
	free(dir);
}

/* ---- recovery, with files crafted from the documented format ---- */

static char *craft_env(const char *id, int good_sum, uint32_t n_rcpts, const char *from)
{
	unsigned char sum[16];
	char hex[33];
	char *rec = xasprintf("PHENV 1\nid %s\ncreated 1700000000\nsize 5\nfrom %s\n"
	                      "account default\nclient_ip 127.0.0.1\nhelo .\nbody 7bit\n"
	                      "smtputf8 0\nret -\nenvid -\nrcpts %u\nrcpt x@y - 0 pending 0 0 -\n",
	                      id, from, (unsigned)n_rcpts);
	char *out;

	crypto_generichash(sum, 16, (unsigned char *)rec, strlen(rec), NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), sum, 16);
	if (!good_sum)
		hex[0] = hex[0] == '0' ? '1' : '0';
	out = xasprintf("%send %s\n", rec, hex);
	free(rec);
	return out;
}

/* A whole file: header, 5 body bytes, envelope record. */
static void craft_file_n(const char *dir, const char *name, uint32_t version, uint32_t flags,
                         int good_sum, size_t cut, uint32_t n_rcpts, const char *from)
{
	char *env = craft_env(name, good_sum, n_rcpts, from), *p = path_in(dir, "queue", name);
	size_t n = 128 + 5 + strlen(env);
	unsigned char *f = malloc(n);

	craft_hdr(f, version, flags, 128, 5, strlen(env), n_rcpts);
	memcpy(f + 128, "Hi\r\n\r", 5);
	memcpy(f + 133, env, strlen(env));
	write_file(p, f, cut ? cut : n);
	free(f);
	free(env);
	free(p);
}

static void craft_file(const char *dir, const char *name, uint32_t version, uint32_t flags,
                       int good_sum, size_t cut)
{
	craft_file_n(dir, name, version, flags, good_sum, cut, 1, "a%40b");
}

static void new_ids(char ids[][ID_LEN + 1], int n)
{
	for (int i = 0; i < n; i++)
		id_new(ids[i]);
}

static void test_recover(void **state)
{
	char *dir = new_dir("recover"), *err = NULL, ids[10][ID_LEN + 1], good[ID_LEN + 1], *p, *q;
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1), *got;
	struct spool *sp = open_server(dir);
	unsigned char hdr[128];
	char junk[300];

	new_ids(ids, 10);
	assert_true(commit_one(sp, &e, "x\r\n", good));
	craft_file(dir, ids[0], 1, 1, 1, 0); /* good, crafted by hand */
	memset(junk, 'G', sizeof(junk));
	write_file(p = path_in(dir, "queue", ids[1]), junk, sizeof(junk)), free(p); /* bad magic */
	craft_file(dir, ids[2], SPOOL_VERSION + 1, 1, 1, 0); /* unknown version */
	craft_file(dir, ids[3], 1, 0, 1, 0);                 /* no complete marker */
	craft_file(dir, ids[4], 1, 1, 0, 0);                 /* bad envelope checksum */
	craft_file(dir, ids[5], 1, 1, 1, 150);               /* truncated */
	write_file(p = path_in(dir, "queue", ids[6]), "PHSP", 4), free(p); /* short */
	write_file(p = path_in(dir, "queue", "notanid"), "x", 1), free(p);
	write_file(p = path_in(dir, "quarantine", ids[1]), "older", 5), free(p);
	/* tmp/: a message cut short mid-body, and a stray file */
	craft_hdr(hdr, 1, 0, 128, 0, 1, 0);
	write_file(p = path_in(dir, "tmp", ids[7]), hdr, sizeof(hdr)), free(p);
	write_file(p = path_in(dir, "tmp", "junk"), "j", 1), free(p);

	/* a good file under another name, and a NUL smuggled into a field */
	p = path_in(dir, "queue", ids[0]);
	q = path_in(dir, "queue", ids[8]);
	assert_int_equal(link(p, q), 0);
	free(p), free(q);
	craft_file_n(dir, ids[9], 1, 1, 1, 0, 1, "a%00b");

	assert_int_equal(spool_recover(sp), 2);
	assert_int_equal(count_entries(dir, "tmp"), 0);
	assert_int_equal(count_entries(dir, "queue"), 2);
	assert_int_equal(count_entries(dir, "quarantine"), 10);
	for (int i = 1; i <= 9; i++) {
		if (i == 7)
			continue; /* that one was in tmp/ */
		p = path_in(dir, "quarantine", ids[i]);
		assert_true(file_exists(p));
		free(p);
	}
	p = xasprintf("%s/spool/quarantine/%s.1", dir, ids[1]);
	assert_true(file_exists(p)); /* a name taken in quarantine/ is never overwritten */
	free(p);
	assert_int_equal(spool_load(sp, ids[0], &got, &err), 0);
	assert_string_equal(got->rcpts[0].addr, "x@y");
	assert_string_equal(got->mail_from, "a@b");
	assert_string_equal(got->helo, "");
	envelope_free(got);
	assert_int_equal(spool_recover(sp), 2); /* idempotent */
	spool_close(sp);
	free(dir);
}

struct handed {
	char ids[8][ID_LEN + 1];
	char addrs[8][32];
	int n;
};

static void on_recovered(void *arg, const struct envelope *env)
{
	struct handed *h = arg;

	assert_true(h->n < 8);
	memcpy(h->ids[h->n], env->id, ID_LEN + 1);
	snprintf(h->addrs[h->n], sizeof(h->addrs[0]), "%s", env->rcpts[0].addr);
	h->n++;
}

/* Recovery in steps hands each good envelope over once, in ID order; what
 * arrives or goes meanwhile is neither handed over nor counted. */
static void test_recover_steps(void **state)
{
	char *dir = new_dir("steps"), *err = NULL, ids[5][ID_LEN + 1], late[ID_LEN + 1], bad[17];
	char *p;
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1);
	struct spool *sp = open_server(dir);
	struct handed h = {0};
	struct spool_recovery *rv;
	struct spool_msg *m;
	int i;

	(void)state;
	for (i = 0; i < 5; i++) {
		r.addr = xasprintf("r%d@b", i);
		assert_true(commit_one(sp, &e, "x\r\n", ids[i]));
		free(r.addr);
	}
	r.addr = "a@b";
	id_new(bad);
	write_file(p = path_in(dir, "queue", bad), "junk", 4), free(p);
	write_file(p = path_in(dir, "tmp", "leftover"), "j", 1), free(p);
	/* not while a message is being received */
	assert_non_null(m = spool_msg_new(sp, &err));
	assert_null(spool_recover_begin(sp));
	spool_msg_abort(m);

	assert_non_null(rv = spool_recover_begin(sp));
	assert_int_equal(count_entries(dir, "tmp"), 0);
	assert_int_equal(spool_recover_step(rv, 2, on_recovered, &h), 4);
	assert_int_equal(h.n, 2);
	/* mail arrives, and a listed message goes, between two steps */
	assert_true(commit_one(sp, &e, "y\r\n", late));
	assert_int_equal(spool_delete(sp, ids[3], &err), 0);
	assert_int_equal(spool_recover_step(rv, 2, on_recovered, &h), 2);
	assert_int_equal(spool_recover_step(rv, 100, on_recovered, &h), 0);
	assert_int_equal(spool_recover_end(rv), 4);
	assert_int_equal(h.n, 4);
	for (i = 0; i < 4; i++) {
		int k = i < 3 ? i : 4; /* ids[3] went */
		char want[16];

		snprintf(want, sizeof(want), "r%d@b", k);
		assert_string_equal(h.ids[i], ids[k]);
		assert_string_equal(h.addrs[i], want);
	}
	assert_int_equal(count_entries(dir, "quarantine"), 1);

	/* all at once: the late one is in now; NULL callback too */
	memset(&h, 0, sizeof(h));
	assert_int_equal(spool_recover_each(sp, on_recovered, &h), 5);
	assert_int_equal(h.n, 5);
	assert_string_equal(h.ids[4], late);
	assert_int_equal(spool_recover(sp), 5);
	/* end before the last step, and end of nothing */
	assert_non_null(rv = spool_recover_begin(sp));
	assert_int_equal(spool_recover_step(rv, 1, NULL, NULL), 4);
	assert_int_equal(spool_recover_end(rv), -1);
	assert_int_equal(spool_recover_end(NULL), -1);
	spool_close(sp);
	free(dir);
}

/* Corrupt lengths are refused without allocating what they claim. */
static void test_bounded_lengths(void **state)
{
	char *dir = new_dir("bounds"), *err = NULL, ids[3][ID_LEN + 1], *p;
	struct spool *sp = open_server(dir);
	struct envelope *got;
	unsigned char f[256];

	new_ids(ids, 3);
	craft_hdr(f, 1, 1, 128, 0, 1ull << 40, 1); /* a 1 TB envelope in a tiny file */
	write_file(p = path_in(dir, "queue", ids[0]), f, 200), free(p);
	assert_int_equal(spool_load(sp, ids[0], &got, &err), -1);
	assert_int_equal(errno, EBADMSG);
	free(err);
	craft_hdr(f, 1, 1, 128, 0, 100, 4000000000u); /* 4e9 recipients */
	write_file(p = path_in(dir, "queue", ids[1]), f, 256), free(p);
	assert_int_equal(spool_load(sp, ids[1], &got, &err), -1);
	free(err);
	/* a consistent but lying count: 1,000,000 recipients in a 300-byte record */
	craft_file_n(dir, ids[2], 1, 1, 1, 0, 1000000, "a@b");
	assert_int_equal(spool_load(sp, ids[2], &got, &err), -1);
	assert_non_null(strstr(err, "malformed"));
	free(err);
	spool_close(sp);
	free(dir);
}

/* ---- listing, deleting, aborting ---- */

struct seen {
	char ids[8][ID_LEN + 1];
	int n, stop_at;
};

static int collect(void *arg, struct envelope *env)
{
	struct seen *s = arg;

	memcpy(s->ids[s->n++], env->id, ID_LEN + 1);
	return s->n == s->stop_at;
}

/* Entries of queue/ that are not regular files: a FIFO (opening it used
 * to block forever), a directory (reading it failed recovery) and a link
 * (it was followed, and state records were appended to its target). Each
 * is refused by every reader and quarantined by recovery. */
static void test_not_regular(void **state)
{
	char *dir = new_dir("notreg"), *err = NULL, ids[2][ID_LEN + 1], good[ID_LEN + 1];
	char other[ID_LEN + 1], *p, *outside;
	struct rcpt r = {.addr = "a@b"}, r2 = {.addr = "a@b", .state = RCPT_DELIVERED};
	struct envelope e = simple_env(&r, 1), *got = NULL;
	struct spool *sp = open_server(dir);
	struct seen s = {.stop_at = 0};
	struct stat before, after;
	uint64_t off, len;
	int fd = -1;

	(void)state;
	new_ids(ids, 2);
	assert_true(commit_one(sp, &e, "x\r\n", good));
	assert_true(commit_one(sp, &e, "y\r\n", other));
	assert_int_equal(mkfifo(p = path_in(dir, "queue", ids[0]), 0600), 0), free(p);
	assert_int_equal(mkdir(p = path_in(dir, "queue", ids[1]), 0700), 0), free(p);
	outside = xasprintf("%s/outside", dir);
	assert_int_equal(rename(p = path_in(dir, "queue", other), outside), 0);
	assert_int_equal(symlink(outside, p), 0), free(p);
	assert_int_equal(stat(outside, &before), 0);

	assert_int_equal(spool_load(sp, ids[0], &got, &err), -1);
	assert_int_equal(errno, EBADMSG);
	assert_non_null(strstr(err, "not a regular file: a FIFO")), free(err);
	assert_int_equal(spool_open_body(sp, ids[0], &fd, &off, &len, &err), -1), free(err);
	assert_int_equal(fd, -1);
	assert_int_equal(spool_load(sp, ids[1], &got, &err), -1);
	assert_non_null(strstr(err, "a directory")), free(err);
	assert_int_equal(spool_load(sp, other, &got, &err), -1);
	assert_non_null(strstr(err, "symbolic link")), free(err);
	assert_int_equal(spool_set_rcpt_state(sp, other, 0, &r2, &err), -1), free(err);
	assert_int_equal(stat(outside, &after), 0);
	assert_int_equal(after.st_size, before.st_size); /* nothing appended there */
	assert_int_equal(spool_foreach(sp, collect, &s, &err), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.ids[0], good);

	assert_int_equal(spool_recover(sp), 1);
	assert_int_equal(count_entries(dir, "queue"), 1);
	assert_int_equal(count_entries(dir, "quarantine"), 3);
	assert_int_equal(lstat(p = path_in(dir, "quarantine", other), &after), 0), free(p);
	assert_true(S_ISLNK(after.st_mode));
	assert_int_equal(lstat(p = path_in(dir, "quarantine", ids[0]), &after), 0), free(p);
	assert_true(S_ISFIFO(after.st_mode));
	assert_int_equal(lstat(p = path_in(dir, "quarantine", ids[1]), &after), 0), free(p);
	assert_true(S_ISDIR(after.st_mode));
	assert_true(file_exists(outside));
	spool_close(sp);
	free(outside);
	free(dir);
}

static void test_foreach_delete(void **state)
{
	char *dir = new_dir("foreach"), *err = NULL, ids[5][ID_LEN + 1];
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1), *got;
	struct spool *sp = open_server(dir);
	struct seen s = {.stop_at = 0};
	int i;

	for (i = 0; i < 5; i++)
		assert_true(commit_one(sp, &e, "x\r\n", ids[i]));
	assert_int_equal(spool_foreach(sp, collect, &s, &err), 0);
	assert_int_equal(s.n, 5);
	for (i = 0; i < 5; i++)
		assert_string_equal(s.ids[i], ids[i]); /* arrival order */
	s.n = 0, s.stop_at = 2;
	assert_int_equal(spool_foreach(sp, collect, &s, &err), 0);
	assert_int_equal(s.n, 2);

	assert_int_equal(spool_delete(sp, ids[1], &err), 0);
	assert_int_equal(spool_load(sp, ids[1], &got, &err), -1);
	assert_int_equal(errno, ENOENT);
	free(err);
	assert_int_equal(spool_delete(sp, ids[1], &err), -1);
	assert_int_equal(errno, ENOENT);
	free(err);
	assert_int_equal(spool_delete(sp, "../../etc/passwd", &err), -1);
	assert_int_equal(errno, EINVAL);
	free(err);
	s.n = 0, s.stop_at = 0;
	assert_int_equal(spool_foreach(sp, collect, &s, &err), 0);
	assert_int_equal(s.n, 4);
	spool_close(sp);
	free(dir);
}

static void test_abort(void **state)
{
	char *dir = new_dir("abort"), *err = NULL;
	struct spool *sp = open_server(dir);
	struct spool_msg *m = spool_msg_new(sp, &err);
	char big[100000];

	memset(big, 'z', sizeof(big));
	assert_int_equal(spool_msg_write(m, big, sizeof(big)), 0);
	assert_int_equal(count_entries(dir, "tmp"), 1);
	spool_msg_abort(m);
	assert_int_equal(count_entries(dir, "tmp"), 0);
	assert_int_equal(count_entries(dir, "queue"), 0);
	assert_int_equal(spool_recover(sp), 0);
	spool_close(sp);
	free(dir);
}

/* One server per spool: the second open is refused. */
static void test_lock(void **state)
{
	char *dir = new_dir("lock"), *err = NULL;
	struct spool *sp = open_server(dir);

	assert_null(spool_open(dir, base, &err));
	assert_non_null(strstr(err, "in use"));
	free(err);
	spool_close(sp);
	sp = open_server(dir);
	spool_close(sp);
	free(dir);
}

/* The CLI locks a stopped server's spool while it changes it: no server
 * starts meanwhile, and it cannot lock one a server holds. */
static void test_lock_cli(void **state)
{
	char *dir = new_dir("lock_cli"), *err = NULL;
	struct spool *cli = spool_open(dir, NULL, &err), *srv;

	assert_non_null(cli);
	assert_int_equal(spool_lock(cli, &err), 0);
	assert_int_equal(spool_lock(cli, &err), 0); /* held already */
	assert_null(spool_open(dir, base, &err));
	free(err), err = NULL;
	spool_close(cli);
	srv = open_server(dir);
	cli = spool_open(dir, NULL, &err);
	assert_int_equal(spool_lock(cli, &err), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	assert_non_null(strstr(err, "in use"));
	free(err);
	spool_close(cli);
	spool_close(srv);
	free(dir);
}

/* ---- version 3: steering records ---- */

static uint32_t file_version(const char *dir, const char *id)
{
	char *p = path_in(dir, "queue", id);
	unsigned char h[128];
	int fd = open(p, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(read(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	close(fd);
	free(p);
	return (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 24;
}

/* A version 1 file (written by an older Posthorn, crafted from the
 * documented format) is read as it is; its first steering record marks
 * it version 3 first, so an older reader would quarantine it rather than
 * skip the hold. State records keep their syntax and the version. New
 * files without a front are still version 1 (test_spool_front has a
 * version 2 file steered). */
static void test_version1_steering(void **state)
{
	char *dir = new_dir("v1"), *err = NULL, id[ID_LEN + 1], good[ID_LEN + 1];
	struct spool *sp = open_server(dir);
	struct rcpt r = {.addr = "a@b"};
	struct envelope e = simple_env(&r, 1), *got;
	size_t zero = 0;

	assert_true(commit_one(sp, &e, "x\r\n", good));
	assert_int_equal(file_version(dir, good), 1);
	id_new(id);
	craft_file(dir, id, 1, 1, 1, 0);
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	got->rcpts[0].state = RCPT_DEFERRED;
	got->rcpts[0].next_attempt = 1700000100;
	assert_int_equal(spool_set_rcpt_states(sp, id, got->rcpts, &zero, 1, 1, &err), 0);
	assert_int_equal(file_version(dir, id), 1);
	got->rcpts[0].held_since = 1700000200;
	got->rcpts[0].held_secs = 7;
	assert_int_equal(spool_set_rcpt_steering(sp, id, got->rcpts, &zero, 1, 1, &err), 0);
	assert_int_equal(file_version(dir, id), 3);
	envelope_free(got);
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	assert_int_equal(got->rcpts[0].state, RCPT_DEFERRED);
	assert_int_equal(got->rcpts[0].next_attempt, 1700000100);
	assert_int_equal(got->rcpts[0].held_since, 1700000200);
	assert_int_equal(got->rcpts[0].held_secs, 7);
	assert_true(rcpt_is_held(&got->rcpts[0]));
	assert_string_equal(rcpt_state_shown(&got->rcpts[0]), "held");
	/* a later state record does not touch the steering fields, and a
	 * delete makes the recipient final whatever delivery writes after */
	got->rcpts[0].deleted = 1;
	assert_int_equal(spool_set_rcpt_steering(sp, id, got->rcpts, &zero, 1, 1, &err), 0);
	got->rcpts[0].attempts = 3;
	assert_int_equal(spool_set_rcpt_states(sp, id, got->rcpts, &zero, 1, 1, &err), 0);
	envelope_free(got);
	assert_int_equal(spool_load(sp, id, &got, &err), 0);
	assert_int_equal(got->rcpts[0].attempts, 3);
	assert_int_equal(got->rcpts[0].held_since, 1700000200);
	assert_false(rcpt_is_open(&got->rcpts[0]));
	assert_string_equal(rcpt_state_shown(&got->rcpts[0]), "deleted");
	envelope_free(got);
	assert_int_equal(spool_recover(sp), 2);
	spool_close(sp);
	free(dir);
}

/* ---- the CLI ---- */

/* Runs cli_queue in a child with stdout to a file; returns the exit code
 * and the output (malloc'd). */
static int run_cli(const char *dir, char **out, int argc, ...)
{
	char *argv[4], *file = xasprintf("%s/cli.out", root), buf[4096];
	struct conf c = {.data_dir = (char *)dir};
	va_list ap;
	int status;
	pid_t pid;
	FILE *f;

	va_start(ap, argc);
	for (int i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(open("/dev/null", O_WRONLY), 2);
		_exit(cli_queue(argc, argv, &c));
	}
	waitpid(pid, &status, 0);
	f = fopen(file, "r");
	buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
	fclose(f);
	*out = xstrdup(buf);
	free(file);
	return WEXITSTATUS(status);
}

static void test_cli(void **state)
{
	char *dir = new_dir("cli"), *out, id[ID_LEN + 1], *want, other[ID_LEN + 1];
	struct rcpt r[2] = {{.addr = "a@b"}, {.addr = "c@d"}};
	struct envelope e = simple_env(r, 2);
	struct spool *sp = open_server(dir);

	e.mail_from = "";
	assert_true(commit_one(sp, &e, "Subject: hi\r\nX: y\r\n\r\nbody\r\n", id));
	set_state(sp, id, 0, RCPT_DELIVERED, 1, "250 ok");
	/* mailq-style (cli_queue_list.c): the message, its open recipient, totals */
	want = xasprintf(
	    "\n%s         27  2023-11-14T22:13:20Z  <>\n"
	    "    pending  attempts=0   next=now                  <c@d>\n"
	    "\n-- 1 message, 27 bytes, 1 open recipient (1 pending, 0 deferred, 0 held)\n",
	    id);
	assert_int_equal(run_cli(dir, &out, 2, "queue", "list"), 0);
	assert_non_null(strstr(out, want));
	free(out), free(want);
	assert_int_equal(run_cli(dir, &out, 3, "queue", "show", id), 0);
	assert_non_null(strstr(out, "rcpt: a@b state=delivered attempts=1"));
	assert_non_null(strstr(out, "rcpt: c@d state=pending"));
	assert_non_null(strstr(out, "\n\nSubject: hi\nX: y\n"));
	assert_null(strstr(out, "\nbody\r"));
	assert_null(strstr(out, "\nbody\n"));
	free(out);
	assert_int_equal(run_cli(dir, &out, 3, "queue", "show", "nope"), 2);
	free(out);
	assert_int_equal(run_cli(dir, &out, 2, "queue", "retry"), 2);
	free(out);
	/* a server holds the spool and does not answer: nothing is changed */
	assert_int_equal(run_cli(dir, &out, 3, "queue", "delete", id), 1);
	free(out);
	spool_close(sp); /* stopped: the CLI works on the spool itself */
	id_new(other);
	assert_int_equal(run_cli(dir, &out, 3, "queue", "delete", other), 1);
	assert_string_equal(out, "0\n");
	free(out);
	assert_int_equal(run_cli(dir, &out, 3, "queue", "delete", id), 0);
	assert_string_equal(out, "1\n");
	free(out);
	assert_int_equal(run_cli(dir, &out, 2, "queue", "list"), 0);
	assert_string_equal(
	    out, "-- 0 messages, 0 bytes, 0 open recipients (0 pending, 0 deferred, 0 held)\n");
	free(out);
	free(dir);
}

/* ---- measurement: 2,000 commits of 2 KB, 20 in flight ---- */

struct bench {
	struct spool *sp;
	struct envelope env;
	char body[2048];
	int submitted, done, total;
};

static void bench_submit(struct bench *b);

static void bench_done(void *arg, int ok, const char *id)
{
	struct bench *b = arg;

	assert_true(ok);
	b->done++;
	if (b->submitted < b->total)
		bench_submit(b);
}

static void bench_submit(struct bench *b)
{
	char *err = NULL;
	struct spool_msg *m = spool_msg_new(b->sp, &err);

	assert_non_null(m);
	spool_msg_write(m, b->body, sizeof(b->body));
	b->submitted++;
	spool_msg_commit(m, &b->env, bench_done, b);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_run(unsigned threads)
{
	char *dir = new_dir("bench");
	struct rcpt r = {.addr = "a@b"};
	struct bench b = {.env = simple_env(&r, 1), .total = 2000};
	struct spool_stats s0, s1;
	double t;

	b.sp = open_server(dir);
	spool_set_sync_threads(b.sp, threads);
	memset(b.body, 'm', sizeof(b.body));
	spool_get_stats(b.sp, &s0);
	t = now_s();
	for (int i = 0; i < 20; i++)
		bench_submit(&b);
	run_until(&b.done, b.total);
	t = now_s() - t;
	spool_get_stats(b.sp, &s1);
	print_message("bench: sync_threads=%u: %d commits of 2 KB, 20 in flight: %.2f s, %.0f/s, "
	              "%.2f fsyncs/msg, %.1f msgs/batch\n",
	              threads, b.total, t, b.total / t, (double)(s1.fsyncs - s0.fsyncs) / b.total,
	              (double)b.total / (double)(s1.commit_batches - s0.commit_batches));
	assert_true(s1.fsyncs - s0.fsyncs < 2u * b.total);
	spool_close(b.sp);
	free(dir);
}

/* SPOOL_BENCH_THREADS=N runs only this test, with N fdatasync threads
 * (compare 1 and 4: docs/spool.md, "Measurements"). */
static void test_bench(void **state)
{
	const char *only = getenv("SPOOL_BENCH_THREADS");

	bench_run(only ? (unsigned)atoi(only) : 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip_odd_bytes),
	    cmocka_unit_test(test_format_number_edges),
	    cmocka_unit_test(test_format_encode_refuses),
	    cmocka_unit_test(test_format_requiretls_v2),
	    cmocka_unit_test(test_many_rcpts),
	    cmocka_unit_test(test_big_body),
	    cmocka_unit_test(test_group_commit),
	    cmocka_unit_test(test_group_commit_natural),
	    cmocka_unit_test(test_commit_failure),
	    cmocka_unit_test(test_sync_commit),
	    cmocka_unit_test(test_rcpt_states),
	    cmocka_unit_test(test_rcpt_states_batch),
	    cmocka_unit_test(test_recover),
	    cmocka_unit_test(test_recover_steps),
	    cmocka_unit_test(test_bounded_lengths),
	    cmocka_unit_test(test_foreach_delete),
	    cmocka_unit_test(test_not_regular),
	    cmocka_unit_test(test_abort),
	    cmocka_unit_test(test_lock),
	    cmocka_unit_test(test_lock_cli),
	    cmocka_unit_test(test_version1_steering),
	    cmocka_unit_test(test_cli),
	    cmocka_unit_test(test_bench),
	};
	const char *tmp = getenv("TMPDIR");
	int rc;

	snprintf(root, sizeof(root), "%s/test_spool.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		return 1;
	evthread_use_pthreads();
	base = event_base_new();
	log_set_level(LOG_ERR);
	if (getenv("SPOOL_BENCH_THREADS"))
		cmocka_set_test_filter("test_bench");
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	event_base_free(base);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
