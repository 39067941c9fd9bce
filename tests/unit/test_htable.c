/*
 * Unit tests for util/htable (PURE): SipHash-2-4 against the paper's
 * vector and libsodium, add/find/delete with colliding hashes, growth to a
 * million entries with short chains, shrinking, iteration with deletion,
 * the assert that catches an add during an iteration, and a randomized run
 * of many operations checked against a plain array after each one.
 *
 * The randomized run is reproducible: it uses HTABLE_SEED from the
 * environment, or a fixed seed, and prints the seed and the step whenever
 * a check fails.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "util/htable.h"
#include "util/util.h"

struct ent {
	struct htable_node hn;
	unsigned key;
	int in; /* in the table, by the test's own account */
	int seen;
};

static int ent_match(const struct htable_node *n, const void *key)
{
	return HTABLE_ENTRY(n, struct ent, hn)->key == *(const unsigned *)key;
}

static uint64_t key_hash(unsigned key)
{
	return htable_hash(&key, sizeof(key));
}

static struct ent *find(const struct htable *t, uint64_t h, unsigned key)
{
	struct htable_node *n = htable_find(t, h, ent_match, &key);

	return n ? HTABLE_ENTRY(n, struct ent, hn) : NULL;
}

/* The longest chain: what a lookup costs at worst. */
static size_t max_chain(const struct htable *t)
{
	size_t i, len, max = 0;
	struct htable_node *n;

	for (i = 0; i < htable_buckets(t); i++) {
		for (len = 0, n = t->b[i]; n; n = n->next)
			len++;
		max = len > max ? len : max;
	}
	return max;
}

/* ---- SipHash ---- */

static void test_siphash_vector(void **state)
{
	unsigned char key[16], msg[64];
	size_t i;

	(void)state;
	for (i = 0; i < 16; i++)
		key[i] = (unsigned char)i;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)i;
	/* SipHash paper, appendix A: key 00..0f, message 00..0e */
	assert_true(siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL);
}

static void test_siphash_libsodium(void **state)
{
	unsigned char key[16], msg[200], out[8];
	size_t len;
	int round;

	(void)state;
	assert_true(sodium_init() >= 0);
	for (round = 0; round < 50; round++) {
		randombytes_buf(key, sizeof(key));
		randombytes_buf(msg, sizeof(msg));
		for (len = 0; len <= sizeof(msg); len++) {
			uint64_t want = 0;
			int i;

			crypto_shorthash_siphash24(out, msg, len, key);
			for (i = 7; i >= 0; i--)
				want = want << 8 | out[i];
			assert_true(siphash24(key, msg, len) == want);
		}
	}
}

static void test_hash_stable(void **state)
{
	(void)state;
	assert_true(htable_hash_str("example.com") == htable_hash("example.com", 11));
	assert_true(htable_hash_str("example.com") != htable_hash_str("example.org"));
	assert_true(htable_hash_str("") == htable_hash("", 0));
	assert_true(htable_hash_mix(1, 1) != htable_hash_mix(1, 28));
	assert_true(htable_hash_mix(1, 0) != 1);
}

/* ---- basics ---- */

/* One hash for every key: one chain, and the match function tells apart. */
static void test_collisions(void **state)
{
	struct ent e[100];
	struct htable t;
	unsigned i, k;

	(void)state;
	htable_init(&t);
	for (i = 0; i < 100; i++) {
		e[i] = (struct ent){.key = i};
		htable_add(&t, &e[i].hn, 42);
	}
	assert_int_equal(htable_count(&t), 100);
	for (i = 0; i < 100; i++)
		assert_ptr_equal(find(&t, 42, i), &e[i]);
	k = 100;
	assert_null(find(&t, 42, k));
	assert_null(find(&t, 43, 5)); /* right key, wrong hash */
	for (i = 0; i < 100; i += 2)
		htable_del(&t, &e[i].hn);
	assert_int_equal(htable_count(&t), 50);
	for (i = 0; i < 100; i++)
		assert_ptr_equal(find(&t, 42, i), i % 2 ? &e[i] : NULL);
	htable_fini(&t);
}

static void test_empty(void **state)
{
	struct htable t;
	struct htable_iter it;
	unsigned k = 1;

	(void)state;
	htable_init(&t);
	assert_int_equal(htable_count(&t), 0);
	assert_int_equal(htable_buckets(&t), HTABLE_MIN_BUCKETS);
	assert_null(htable_find(&t, key_hash(k), ent_match, &k));
	htable_iter_init(&it, &t);
	assert_null(htable_iter_next(&it));
	assert_null(htable_iter_next(&it));
	htable_fini(&t);
	htable_fini(&t); /* twice is harmless */
}

#define MILLION 1000000u

/* A million entries: the table grows, chains stay short, every entry is
 * found; deleting almost all of them lets the next add shrink it. */
static void test_million(void **state)
{
	struct ent *e = xcalloc(MILLION, sizeof(*e));
	struct ent extra = {.key = MILLION};
	struct htable t;
	unsigned i;

	(void)state;
	htable_init(&t);
	for (i = 0; i < MILLION; i++) {
		e[i].key = i;
		htable_add(&t, &e[i].hn, key_hash(i));
	}
	assert_int_equal(htable_count(&t), MILLION);
	assert_true(htable_buckets(&t) >= MILLION);
	assert_true(htable_buckets(&t) <= 2 * (size_t)MILLION + 2 * 1024 * 1024);
	/* load <= 1: a longest chain over 16 would mean the hash is broken */
	assert_true(max_chain(&t) <= 16);
	for (i = 0; i < MILLION; i++)
		assert_ptr_equal(find(&t, key_hash(i), i), &e[i]);
	for (i = 10; i < MILLION; i++)
		htable_del(&t, &e[i].hn);
	assert_int_equal(htable_count(&t), 10);
	assert_true(htable_buckets(&t) >= MILLION); /* deletes never resize */
	htable_add(&t, &extra.hn, key_hash(extra.key));
	assert_int_equal(htable_buckets(&t), 32); /* 11 entries, at most half full */
	assert_non_null(t.old);                   /* being emptied, a step per add */
	for (i = 0; i < 10; i++)
		assert_ptr_equal(find(&t, key_hash(i), i), &e[i]);
	assert_ptr_equal(find(&t, key_hash(MILLION), MILLION), &extra);
	htable_fini(&t);
	free(e);
}

static size_t count_old(const struct htable *t)
{
	struct htable_node *n;
	size_t i, c = 0;

	for (i = 0; t->old && i <= t->old_mask; i++)
		for (n = t->old[i]; n; n = n->next)
			c++;
	return c;
}

/* A resize moves a bounded number of nodes per add; meanwhile lookups,
 * deletes and iteration see both arrays. */
static void test_incremental(void **state)
{
	enum { N = 65536 };
	struct ent *e = xcalloc(N + 1000, sizeof(*e));
	struct htable_node *n;
	struct htable_iter it;
	struct htable t;
	unsigned i, visited = 0;
	size_t before;

	(void)state;
	htable_init(&t);
	for (i = 0; i < N + 1000; i++)
		e[i].key = i;
	for (i = 0; i < N; i++)
		htable_add(&t, &e[i].hn, key_hash(i));
	assert_null(t.old);
	htable_add(&t, &e[N].hn, key_hash(N)); /* the grow to 131072 buckets */
	assert_int_equal(htable_buckets(&t), 2 * N);
	assert_non_null(t.old);
	before = count_old(&t);
	assert_true(before >= N - 128 - 16); /* a step, plus one chain */
	htable_add(&t, &e[N + 1].hn, key_hash(N + 1));
	assert_true(before - count_old(&t) <= 128 + 16); /* a step, plus one chain */
	assert_true(before - count_old(&t) > 0);
	for (i = 0; i < N + 2; i++)
		assert_ptr_equal(find(&t, key_hash(i), i), &e[i]);
	/* delete from the old array, then iterate over both */
	for (i = 0; i < N + 2; i += 5)
		htable_del(&t, &e[i].hn);
	htable_iter_init(&it, &t);
	while ((n = htable_iter_next(&it))) {
		struct ent *x = HTABLE_ENTRY(n, struct ent, hn);

		assert_true(x->key % 5 != 0 && !x->seen);
		x->seen = 1;
		visited++;
	}
	assert_int_equal(visited, htable_count(&t));
	before = count_old(&t);
	for (i = N + 2; i < N + 1000 && t.old; i++)
		htable_add(&t, &e[i].hn, key_hash(i));
	/* 128 nodes a step (or 1024 buckets): done in about before / 128 adds */
	assert_null(t.old);
	assert_true(i - (N + 2) <= before / 128 + 2);
	assert_true(i - (N + 2) >= before / (128 + 16));
	htable_fini(&t);
	free(e);
}

/* Grow and shrink at the borders: no resize back and forth. */
static void test_hysteresis(void **state)
{
	struct ent e[64];
	struct htable t;
	unsigned i, gen;

	(void)state;
	htable_init(&t);
	for (i = 0; i < 17; i++) {
		e[i].key = i;
		htable_add(&t, &e[i].hn, key_hash(i));
	}
	assert_int_equal(htable_buckets(&t), 32);
	gen = t.gen;
	for (i = 0; i < 1000; i++) {
		htable_del(&t, &e[16].hn);
		htable_add(&t, &e[16].hn, key_hash(16));
	}
	assert_int_equal(t.gen, gen);
	assert_null(t.old);
	htable_fini(&t);
}

/* ---- iteration ---- */

static void test_iterate_delete(void **state)
{
	enum { N = 5000 };
	struct ent *e = xcalloc(N, sizeof(*e));
	struct htable_node *n;
	struct htable_iter it;
	struct htable t;
	unsigned i, visited = 0;

	(void)state;
	htable_init(&t);
	for (i = 0; i < N; i++) {
		e[i].key = i;
		htable_add(&t, &e[i].hn, key_hash(i));
	}
	/* delete every third entry as it is visited */
	htable_iter_init(&it, &t);
	while ((n = htable_iter_next(&it))) {
		struct ent *x = HTABLE_ENTRY(n, struct ent, hn);

		assert_int_equal(x->seen, 0);
		x->seen = 1;
		visited++;
		if (x->key % 3 == 0)
			htable_del(&t, n);
	}
	assert_int_equal(visited, N);
	assert_int_equal(htable_count(&t), N - (N + 2) / 3);
	/* then all the rest, and the table is empty */
	htable_iter_init(&it, &t);
	while ((n = htable_iter_next(&it))) {
		assert_true(HTABLE_ENTRY(n, struct ent, hn)->key % 3 != 0);
		htable_del(&t, n);
		memset(n, 0xAB, sizeof(*n)); /* as if freed */
	}
	assert_int_equal(htable_count(&t), 0);
	htable_fini(&t);
	free(e);
}

/* An add that resizes during an iteration trips the assert (in a child:
 * the assert aborts). */
static void test_iterate_add_asserts(void **state)
{
	struct ent e[HTABLE_MIN_BUCKETS + 1];
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct htable_iter it;
		struct htable t;
		unsigned i;

		close(2); /* keep the assert's message out of the test output */
		htable_init(&t);
		for (i = 0; i < HTABLE_MIN_BUCKETS; i++)
			htable_add(&t, &e[i].hn, key_hash(i));
		htable_iter_init(&it, &t);
		htable_iter_next(&it);
		htable_add(&t, &e[HTABLE_MIN_BUCKETS].hn, key_hash(99)); /* grows */
		htable_iter_next(&it);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* ---- randomized, against a plain array ---- */

#define UNIVERSE 3000u
#define STEPS    300000u

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t x = rng_state; /* xorshift64* */

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

struct model {
	struct htable t;
	struct ent e[UNIVERSE];
	size_t n;
	int bad_hash; /* hashes with many equal values: long chains, many matches */
	uint64_t seed;
	unsigned step;
	unsigned grows, shrinks; /* the run must see both */
};

#define CHECK(m, cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			print_error("htable randomized: seed %llu step %u: %s\n",                  \
			            (unsigned long long)(m)->seed, (m)->step, #cond);              \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

static uint64_t model_hash(const struct model *m, unsigned key)
{
	return m->bad_hash ? key % 7 : key_hash(key);
}

static void model_find(struct model *m, unsigned key)
{
	struct ent *x = find(&m->t, model_hash(m, key), key);

	CHECK(m, m->e[key].in ? x == &m->e[key] : x == NULL);
}

static void model_toggle(struct model *m, unsigned key)
{
	struct ent *x = &m->e[key];
	size_t nb = htable_buckets(&m->t);

	if (x->in) {
		htable_del(&m->t, &x->hn);
		m->n--;
	} else {
		htable_add(&m->t, &x->hn, model_hash(m, key));
		m->n++;
	}
	x->in = !x->in;
	CHECK(m, htable_count(&m->t) == m->n);
	m->grows += htable_buckets(&m->t) > nb;
	m->shrinks += htable_buckets(&m->t) < nb;
}

/* Every entry in the table once, exactly those in; deletes some as it goes. */
static void model_iterate(struct model *m)
{
	struct htable_node *n;
	struct htable_iter it;
	size_t visited = 0, i;
	unsigned cut = (unsigned)(rng() % 4); /* 0: delete none */

	for (i = 0; i < UNIVERSE; i++)
		m->e[i].seen = 0;
	htable_iter_init(&it, &m->t);
	while ((n = htable_iter_next(&it))) {
		struct ent *x = HTABLE_ENTRY(n, struct ent, hn);

		CHECK(m, x >= m->e && x < m->e + UNIVERSE && x->in && !x->seen);
		x->seen = 1;
		visited++;
		if (cut && rng() % cut == 0) {
			htable_del(&m->t, n);
			x->in = 0;
			m->n--;
		}
	}
	CHECK(m, htable_count(&m->t) == m->n);
	for (i = 0; i < UNIVERSE; i++)
		CHECK(m, !m->e[i].in || m->e[i].seen);
}

static void model_run(struct model *m)
{
	unsigned i;

	htable_init(&m->t);
	for (i = 0; i < UNIVERSE; i++)
		m->e[i] = (struct ent){.key = i};
	for (m->step = 0; m->step < STEPS; m->step++) {
		uint64_t r = rng();
		/* phases that fill and drain, so that the table grows and shrinks */
		unsigned bias = (m->step / 20000) % 2;
		unsigned key = (unsigned)((r >> 32) % UNIVERSE);

		if (r % 1000 == 0)
			model_iterate(m);
		else if (r % 3 == 0)
			model_find(m, key);
		else if (bias || m->e[key].in)
			model_toggle(m, key);
		else
			model_find(m, key);
	}
	for (i = 0; i < UNIVERSE; i++)
		model_find(m, i);
	CHECK(m, m->grows >= 5 && m->shrinks >= 5);
	htable_fini(&m->t);
}

static void test_randomized(void **state)
{
	const char *env = getenv("HTABLE_SEED");
	struct model *m = xcalloc(1, sizeof(*m));
	int bad;

	(void)state;
	for (bad = 0; bad <= 1; bad++) {
		memset(m, 0, sizeof(*m));
		m->seed = env ? strtoull(env, NULL, 10) : 20260601;
		m->bad_hash = bad;
		rng_state = m->seed ? m->seed : 1;
		model_run(m);
	}
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_siphash_vector), cmocka_unit_test(test_siphash_libsodium),
	    cmocka_unit_test(test_hash_stable),    cmocka_unit_test(test_collisions),
	    cmocka_unit_test(test_empty),          cmocka_unit_test(test_million),
	    cmocka_unit_test(test_incremental),    cmocka_unit_test(test_hysteresis),
	    cmocka_unit_test(test_iterate_delete), cmocka_unit_test(test_iterate_add_asserts),
	    cmocka_unit_test(test_randomized),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
