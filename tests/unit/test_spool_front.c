/*
 * test_spool_front: spool format version 2, the front (spool_front.c,
 * docs/spool.md): fields put in front of a message without copying it,
 * read back through spool_open_body() as one message; a message without
 * a front is written as version 1, byte for byte; fields that do not fit
 * move the message to a larger front; a front reserved after the first
 * bytes (while the buffer holds them) or too late; copies for a split; the header
 * decoder's bounds on body_off per version; the misuse a caller can make
 * (a write to a copy, pread before a flush, fields over the bound) dooms
 * the message rather than corrupting it; recovery reads version 2 files;
 * a version 2 file's first steering record marks it version 3 (version
 * 2's layout), and it reads back whole.
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
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "log/log.h"
#include "spool/spool.h"
#include "spool/spool_format.h"
#include "spool_fixture.h"

static char root[256];
static struct event_base *base;

#define MSG "Received: by test\r\nFrom: a@example.com\r\n\r\nbody line\r\n"

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static struct spool *open_fresh(const char *name)
{
	char *d = xasprintf("%s/%s", root, name), *err = NULL;
	struct spool *sp;

	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	sp = spool_open(d, base, &err);
	if (!sp)
		fail_msg("spool_open: %s", err);
	free(d);
	return sp;
}

static size_t count_tmp(const char *name)
{
	char *cmd = xasprintf("ls -A '%s/%s/spool/tmp' | wc -l", root, name);
	FILE *p = popen(cmd, "r");
	unsigned long n = 0;

	assert_non_null(p);
	assert_int_equal(fscanf(p, "%lu", &n), 1);
	pclose(p);
	free(cmd);
	return n;
}

/* Commits m and waits; 1 if it became durable (its ID in id). */
static int commit(struct spool_msg *m, char *id)
{
	struct rcpt r = {.addr = "x@example.net"};
	struct envelope e = {.mail_from = "a@example.com",
	                     .account = "default",
	                     .client_ip = "127.0.0.1",
	                     .helo = "h",
	                     .created = 1700000000,
	                     .rcpts = &r,
	                     .n_rcpts = 1};
	struct wait w = {0};

	e.size = spool_msg_size(m);
	spool_msg_commit(m, &e, on_done, &w);
	while (w.done < 1)
		assert_true(event_base_loop(base, EVLOOP_ONCE) >= 0);
	if (id)
		memcpy(id, w.id, ID_LEN + 1);
	return w.ok;
}

/* The message as delivery reads it, and the file header's version. */
static char *body_of(struct spool *sp, const char *id, uint64_t *off, uint32_t *version)
{
	uint64_t len;
	unsigned char h[4];
	char *err = NULL, *b;
	int fd;

	if (spool_open_body(sp, id, &fd, off, &len, &err) < 0)
		fail_msg("spool_open_body: %s", err);
	b = xcalloc(1, (size_t)len + 1);
	assert_int_equal(pread(fd, b, (size_t)len, (off_t)*off), (ssize_t)len);
	assert_int_equal(pread(fd, h, 4, 8), 4);
	*version =
	    (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
	close(fd);
	return b;
}

static struct spool_msg *new_with(struct spool *sp, int front, const char *text)
{
	char *err = NULL;
	struct spool_msg *m = spool_msg_new(sp, &err);

	assert_non_null(m);
	if (front)
		assert_int_equal(spool_msg_reserve_front(m), 0);
	assert_int_equal(spool_msg_write(m, text, strlen(text)), 0);
	return m;
}

static void test_prepend(void **state)
{
	struct spool *sp = open_fresh("prepend");
	struct spool_msg *m = new_with(sp, 1, MSG);
	char back[sizeof(MSG)] = {0}, id[ID_LEN + 1], *b, *want;
	uint64_t off;
	uint32_t version;
	struct envelope *env;
	char *err = NULL;

	assert_int_equal(spool_msg_pread(m, 0, back, sizeof(back)), -1); /* not flushed yet */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_msg_flush(m), 0);
	assert_int_equal(spool_msg_pread(m, 0, back, sizeof(back)), (long)strlen(MSG));
	assert_string_equal(back, MSG);
	assert_int_equal(spool_msg_pread(m, 10, back, 4), 4);
	assert_memory_equal(back, MSG + 10, 4);
	assert_int_equal(spool_msg_pread(m, strlen(MSG), back, 4), 0);
	assert_int_equal(spool_msg_prepend(m, "X-A: 1\r\n", 8), 0);
	assert_int_equal(spool_msg_prepend(m, "X-B: 2\r\n", 8), 0); /* goes before */
	assert_int_equal(spool_msg_size(m), strlen(MSG) + 16);
	assert_true(commit(m, id));
	b = body_of(sp, id, &off, &version);
	want = xasprintf("X-B: 2\r\nX-A: 1\r\n%s", MSG);
	assert_string_equal(b, want);
	assert_int_equal(off, SPOOL_FRONT - 16);
	assert_int_equal(version, 2);
	assert_int_equal(spool_load(sp, id, &env, &err), 0);
	assert_int_equal(env->size, strlen(want));
	envelope_free(env);
	free(b), free(want);
	spool_close(sp);
}

/* No front: the file is what version 1 wrote. */
static void test_no_front_is_v1(void **state)
{
	struct spool *sp = open_fresh("v1");
	char id[ID_LEN + 1], *b;
	uint64_t off;
	uint32_t version;

	assert_true(commit(new_with(sp, 0, MSG), id));
	b = body_of(sp, id, &off, &version);
	assert_string_equal(b, MSG);
	assert_int_equal(off, SPOOL_HDR_SIZE);
	assert_int_equal(version, 1);
	free(b);
	spool_close(sp);
}

/* Fields larger than the front: the message moves, once, and nothing is
 * left behind in tmp/. Without a front reserved, the same. */
static void test_grow(void **state)
{
	struct spool *sp = open_fresh("grow");
	size_t big = 10000;
	char *fields = xmalloc(big + 1), id[ID_LEN + 1], *b;
	uint64_t off;
	uint32_t version;

	memset(fields, 'F', big - 2);
	memcpy(fields + big - 2, "\r\n", 3);
	for (int front = 0; front <= 1; front++) {
		struct spool_msg *m = new_with(sp, front, MSG);
		assert_int_equal(spool_msg_flush(m), 0);
		assert_int_equal(spool_msg_prepend(m, "X: y\r\n", 6), 0);
		assert_int_equal(spool_msg_prepend(m, fields, big), 0);
		assert_int_equal(count_tmp("grow"), 1);
		assert_true(commit(m, id));
		assert_int_equal(count_tmp("grow"), 0);
		b = body_of(sp, id, &off, &version);
		assert_int_equal(strlen(b), big + 6 + strlen(MSG));
		assert_memory_equal(b, fields, big);
		assert_int_equal(memcmp(b + big, "X: y\r\n", 6), 0);
		assert_string_equal(b + big + 6, MSG);
		assert_int_equal(version, 2);
		assert_true(off >= SPOOL_HDR_SIZE && (off + big) % SPOOL_FRONT == 0);
		free(b);
	}
	free(fields);
	spool_close(sp);
}

/* A copy holds the same message under its own ID; each gets its fields. */
static void test_copy(void **state)
{
	struct spool *sp = open_fresh("copy");
	struct spool_msg *m = new_with(sp, 1, MSG), *c;
	char id1[ID_LEN + 1], id2[ID_LEN + 1], *b, *err = NULL;
	uint64_t off;
	uint32_t version;

	assert_null(spool_msg_copy(m, &err)); /* not flushed */
	assert_non_null(err);
	free(err), err = NULL;
	assert_int_equal(spool_msg_flush(m), 0);
	c = spool_msg_copy(m, &err);
	assert_non_null(c);
	assert_string_not_equal(spool_msg_id(c), spool_msg_id(m));
	assert_int_equal(spool_msg_prepend(m, "To-1: a\r\n", 9), 0);
	assert_int_equal(spool_msg_prepend(c, "To-2: b\r\n", 9), 0);
	assert_true(commit(m, id1));
	assert_true(commit(c, id2));
	b = body_of(sp, id1, &off, &version);
	assert_string_equal(b, "To-1: a\r\n" MSG);
	free(b);
	b = body_of(sp, id2, &off, &version);
	assert_string_equal(b, "To-2: b\r\n" MSG);
	free(b);
	/* a copy takes no writes: the attempt dooms it, and its commit fails */
	m = new_with(sp, 1, MSG);
	assert_int_equal(spool_msg_flush(m), 0);
	c = spool_msg_copy(m, &err);
	assert_int_equal(spool_msg_write(c, "more", 4), -1);
	assert_false(commit(c, NULL));
	assert_true(commit(m, NULL));
	assert_int_equal(count_tmp("copy"), 0);
	spool_close(sp);
}

/* Fields over SPOOL_PREPEND_MAX, or a prepend before the flush, doom the
 * message: its commit fails and leaves nothing. */
static void test_misuse(void **state)
{
	struct spool *sp = open_fresh("misuse");
	struct spool_msg *m = new_with(sp, 1, MSG);
	char *err = NULL;

	assert_int_equal(spool_msg_prepend(m, "X: y\r\n", 6), -1); /* not flushed */
	assert_false(commit(m, NULL));
	m = new_with(sp, 1, MSG);
	assert_int_equal(spool_msg_flush(m), 0);
	assert_int_equal(spool_msg_prepend(m, MSG, (size_t)SPOOL_PREPEND_MAX + 1), -1);
	assert_false(commit(m, NULL));
	assert_int_equal(count_tmp("misuse"), 0);
	(void)err;
	spool_close(sp);
}

/* The front may be reserved once some of the message is written, while
 * the buffer holds it all; later it is too late (1), and prepend copies. */
static void test_reserve_late(void **state)
{
	struct spool *sp = open_fresh("late");
	struct spool_msg *m = new_with(sp, 0, MSG);
	size_t big = 100 * 1024;
	char *filler = xmalloc(big), id[ID_LEN + 1], *b, *want;
	uint64_t off;
	uint32_t version;

	assert_int_equal(spool_msg_reserve_front(m), 0);
	assert_int_equal(spool_msg_reserve_front(m), 0); /* twice: nothing more */
	assert_int_equal(spool_msg_write(m, "more\r\n", 6), 0);
	assert_int_equal(spool_msg_flush(m), 0);
	assert_int_equal(spool_msg_prepend(m, "F: 1\r\n", 6), 0);
	assert_true(commit(m, id));
	b = body_of(sp, id, &off, &version);
	want = xasprintf("F: 1\r\n%smore\r\n", MSG);
	assert_string_equal(b, want);
	assert_int_equal(off, SPOOL_FRONT - 6);
	free(b), free(want);

	memset(filler, 'x', big);
	m = new_with(sp, 0, MSG);
	assert_int_equal(spool_msg_write(m, filler, big), 0); /* the buffer went out */
	assert_int_equal(spool_msg_reserve_front(m), 1);
	assert_int_equal(spool_msg_flush(m), 0);
	assert_int_equal(spool_msg_prepend(m, "F: 2\r\n", 6), 0); /* a copy */
	assert_true(commit(m, id));
	b = body_of(sp, id, &off, &version);
	assert_int_equal(memcmp(b, "F: 2\r\n" MSG, 6 + strlen(MSG)), 0);
	assert_int_equal(strlen(b), 6 + strlen(MSG) + big);
	assert_int_equal(version, 2);
	free(b), free(filler);
	spool_close(sp);
}

/* A complete header with body_off and version, checksummed. */
static int decode(uint32_t version, uint64_t body_off)
{
	unsigned char h[SPOOL_HDR_SIZE];
	struct spool_hdr out;
	char *why = NULL;
	int rc;

	craft_hdr(h, version, SPOOL_F_COMPLETE, body_off, 10, 100, 1);
	rc = spool_hdr_decode(h, &out, &why);
	if (rc == 0)
		assert_int_equal(out.body_off, body_off);
	free(why);
	return rc;
}

static void test_header_bounds(void **state)
{
	assert_int_equal(decode(1, SPOOL_HDR_SIZE), 0);
	assert_int_equal(decode(1, SPOOL_FRONT), -1); /* version 1 has no front */
	assert_int_equal(decode(2, SPOOL_HDR_SIZE), 0);
	assert_int_equal(decode(2, SPOOL_FRONT - 700), 0);
	assert_int_equal(decode(2, SPOOL_BODY_OFF_MAX), 0);
	assert_int_equal(decode(2, (uint64_t)SPOOL_BODY_OFF_MAX + 1), -1);
	assert_int_equal(decode(2, SPOOL_HDR_SIZE - 1), -1); /* inside the header */
	assert_int_equal(decode(2, 0), -1);
	assert_int_equal(decode(3, SPOOL_HDR_SIZE), 0); /* a version 1 file steered */
	assert_int_equal(decode(3, SPOOL_FRONT - 700), 0);
	assert_int_equal(decode(3, SPOOL_BODY_OFF_MAX), 0);
	assert_int_equal(decode(3, (uint64_t)SPOOL_BODY_OFF_MAX + 1), -1);
	assert_int_equal(decode(3, SPOOL_HDR_SIZE - 1), -1);
	assert_int_equal(decode(SPOOL_VERSION + 1, SPOOL_HDR_SIZE), -1);
	assert_int_equal(decode(SPOOL_VERSION + 1, SPOOL_FRONT), -1);
	assert_int_equal(decode(0, SPOOL_HDR_SIZE), -1);
}

/* A server restarted on a spool with version 2 files reads them. */
static void test_recover_v2(void **state)
{
	struct spool *sp = open_fresh("recover");
	struct spool_msg *m = new_with(sp, 1, MSG);
	char id[ID_LEN + 1], *err = NULL, *d = xasprintf("%s/recover", root), *b;
	uint64_t off;
	uint32_t version;

	assert_int_equal(spool_msg_flush(m), 0);
	assert_int_equal(spool_msg_prepend(m, "S: 1\r\n", 6), 0);
	assert_true(commit(m, id));
	spool_close(sp);
	sp = spool_open(d, base, &err);
	assert_non_null(sp);
	assert_int_equal(spool_recover(sp), 1);
	b = body_of(sp, id, &off, &version);
	assert_string_equal(b, "S: 1\r\n" MSG);
	free(b), free(d);
	spool_close(sp);
}

/* A version 2 file (a front) gets a steering record: marked version 3
 * first, its front and message read back as before, the hold kept across
 * a restart; a later state record keeps the version. */
static void test_steer_v2(void **state)
{
	struct spool *sp = open_fresh("steer");
	struct spool_msg *m = new_with(sp, 1, MSG);
	char id[ID_LEN + 1], *err = NULL, *d = xasprintf("%s/steer", root), *b;
	struct envelope *env;
	size_t zero = 0;
	uint64_t off;
	uint32_t version;

	assert_int_equal(spool_msg_flush(m), 0);
	assert_int_equal(spool_msg_prepend(m, "S: 1\r\n", 6), 0);
	assert_true(commit(m, id));
	free(body_of(sp, id, &off, &version));
	assert_int_equal(version, 2);
	assert_int_equal(spool_load(sp, id, &env, &err), 0);
	env->rcpts[0].held_since = 1700000200;
	assert_int_equal(spool_set_rcpt_steering(sp, id, env->rcpts, &zero, 1, 1, &err), 0);
	env->rcpts[0].attempts = 2;
	assert_int_equal(spool_set_rcpt_states(sp, id, env->rcpts, &zero, 1, 1, &err), 0);
	envelope_free(env);
	spool_close(sp);
	sp = spool_open(d, base, &err);
	assert_non_null(sp);
	assert_int_equal(spool_recover(sp), 1);
	b = body_of(sp, id, &off, &version);
	assert_int_equal(version, 3);
	assert_true(off > SPOOL_HDR_SIZE);
	assert_string_equal(b, "S: 1\r\n" MSG);
	assert_int_equal(spool_load(sp, id, &env, &err), 0);
	assert_int_equal(env->rcpts[0].held_since, 1700000200);
	assert_int_equal(env->rcpts[0].attempts, 2);
	assert_true(rcpt_is_held(&env->rcpts[0]));
	envelope_free(env);
	free(b), free(d);
	spool_close(sp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prepend),    cmocka_unit_test(test_no_front_is_v1),
	    cmocka_unit_test(test_grow),       cmocka_unit_test(test_copy),
	    cmocka_unit_test(test_misuse),     cmocka_unit_test(test_header_bounds),
	    cmocka_unit_test(test_recover_v2), cmocka_unit_test(test_reserve_late),
	    cmocka_unit_test(test_steer_v2),
	};
	const char *tmp = getenv("TMPDIR");
	int rc;

	snprintf(root, sizeof(root), "%s/test_spool_front.XXXXXX", tmp ? tmp : "/tmp");
	if (!mkdtemp(root))
		return 1;
	evthread_use_pthreads();
	base = event_base_new();
	log_set_level(LOG_ERR);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	event_base_free(base);
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
