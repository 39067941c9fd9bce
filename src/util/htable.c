/*
 * htable: separate chaining over a power-of-two bucket array, with each
 * node's hash kept in the node. htable.h has the contract; this file adds
 * why the numbers are what they are.
 *
 * Grow at load 1 (count > buckets), to twice the buckets: chains average
 * under one node. Shrink at load 1/8, to the smallest size that is again at
 * most half full, so that an add and a delete at the border cannot resize
 * in turn. The shrink waits for an add: a delete never moves nodes.
 *
 * A resize allocates the new array and then empties the old one into it,
 * MOVE_BUCKETS buckets (or MOVE_NODES nodes) per add. After a grow the old
 * array has half as many buckets as adds remain before the next grow, so
 * it is long empty by then; should a resize be due while one is still
 * under way (a shrink right after a mass delete), the rest is moved first.
 * Lookups and deletes look in both arrays meanwhile.
 */
#include "util/htable.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/util.h"

/* ---- SipHash-2-4 (Aumasson and Bernstein, 2012) ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

static uint64_t le64(const unsigned char *p, size_t n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | p[n];
	return v;
}

static void sip_absorb(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	sip_round(v);
	sip_round(v);
	v[0] ^= m;
}

uint64_t siphash24(const unsigned char key[16], const void *p, size_t n)
{
	const unsigned char *in = p;
	uint64_t k0 = le64(key, 8), k1 = le64(key + 8, 8);
	uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
	                 k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
	size_t i;

	for (i = 0; i + 8 <= n; i += 8)
		sip_absorb(v, le64(in + i, 8));
	sip_absorb(v, (uint64_t)n << 56 | le64(in + i, n - i));
	v[2] ^= 0xff;
	for (i = 0; i < 4; i++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- the process key ---- */

static unsigned char hash_key[16];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

/* Without getrandom (a very old kernel), the address of the key and the
 * clock still differ between runs: weaker, but never a fixed key. */
static void hash_key_init(void)
{
	if (getrandom(hash_key, sizeof(hash_key), 0) != (ssize_t)sizeof(hash_key)) {
		uint64_t a = (uint64_t)(uintptr_t)hash_key, b = clock_mono_ms() ^ clock_now_ms();

		memcpy(hash_key, &a, 8);
		memcpy(hash_key + 8, &b, 8);
	}
}

uint64_t htable_hash(const void *key, size_t len)
{
	pthread_once(&hash_key_once, hash_key_init);
	return siphash24(hash_key, key, len);
}

uint64_t htable_hash_str(const char *s)
{
	return htable_hash(s, strlen(s));
}

uint64_t htable_hash_mix(uint64_t h, uint64_t v)
{
	h ^= (v + 1) * 0x9E3779B97F4A7C15ULL; /* 2^64 / golden ratio, odd */
	return h ^ (h >> 29);
}

/* ---- the table ---- */

#define MOVE_BUCKETS 1024 /* old buckets looked at per add, at most */
#define MOVE_NODES   128  /* nodes moved per add, at most (then the step ends) */

void htable_init(struct htable *t)
{
	memset(t, 0, sizeof(*t));
	t->b = xcalloc(HTABLE_MIN_BUCKETS, sizeof(*t->b));
	t->mask = HTABLE_MIN_BUCKETS - 1;
}

void htable_fini(struct htable *t)
{
	free(t->b);
	free(t->old);
	memset(t, 0, sizeof(*t));
}

size_t htable_count(const struct htable *t)
{
	return t->n;
}

size_t htable_buckets(const struct htable *t)
{
	return t->mask + 1;
}

/* Moves the chain of old bucket i into b. */
static size_t move_chain(struct htable *t, size_t i)
{
	struct htable_node *n = t->old[i], *next;
	size_t moved = 0;

	for (; n; n = next, moved++) {
		next = n->next;
		n->next = t->b[n->hash & t->mask];
		t->b[n->hash & t->mask] = n;
	}
	t->old[i] = NULL;
	return moved;
}

/* One step of the resize under way: at most `buckets` old buckets, ended
 * early once `nodes` nodes moved. SIZE_MAX for both finishes it. */
static void move_step(struct htable *t, size_t buckets, size_t nodes)
{
	size_t looked = 0, moved = 0;

	if (!t->old)
		return;
	t->gen++;
	while (t->old_next <= t->old_mask && looked++ < buckets && moved < nodes)
		moved += move_chain(t, t->old_next++);
	if (t->old_next > t->old_mask) {
		free(t->old);
		t->old = NULL;
	}
}

static void resize_start(struct htable *t, size_t nb)
{
	move_step(t, SIZE_MAX, SIZE_MAX);
	t->old = t->b;
	t->old_mask = t->mask;
	t->old_next = 0;
	t->b = xcalloc(nb, sizeof(*t->b));
	t->mask = nb - 1;
	t->gen++;
}

/* The bucket count for n entries after a shrink: at most half full. */
static size_t shrunk_size(size_t n)
{
	size_t nb = HTABLE_MIN_BUCKETS;

	while (nb < 2 * n)
		nb <<= 1;
	return nb;
}

void htable_add(struct htable *t, struct htable_node *n, uint64_t hash)
{
	size_t nb = t->mask + 1;

	if (t->n + 1 > nb)
		resize_start(t, 2 * nb);
	else if (nb > HTABLE_MIN_BUCKETS && t->n + 1 < nb / 8)
		resize_start(t, shrunk_size(t->n + 1));
	move_step(t, MOVE_BUCKETS, MOVE_NODES);
	n->hash = hash;
	n->next = t->b[hash & t->mask];
	t->b[hash & t->mask] = n;
	t->n++;
}

static struct htable_node *chain_find(struct htable_node *n, uint64_t hash, htable_match_fn match,
                                      const void *key)
{
	for (; n; n = n->next)
		if (n->hash == hash && match(n, key))
			return n;
	return NULL;
}

struct htable_node *htable_find(const struct htable *t, uint64_t hash, htable_match_fn match,
                                const void *key)
{
	struct htable_node *n = chain_find(t->b[hash & t->mask], hash, match, key);

	if (!n && t->old)
		n = chain_find(t->old[hash & t->old_mask], hash, match, key);
	return n;
}

/* The link that points at n in chain *pp, or NULL. */
static struct htable_node **chain_link(struct htable_node **pp, const struct htable_node *n)
{
	while (*pp && *pp != n)
		pp = &(*pp)->next;
	return *pp ? pp : NULL;
}

void htable_del(struct htable *t, struct htable_node *n)
{
	struct htable_node **pp = chain_link(&t->b[n->hash & t->mask], n);

	if (!pp && t->old)
		pp = chain_link(&t->old[n->hash & t->old_mask], n);
	assert(pp != NULL); /* n is not in t: the caller's bug */
	*pp = n->next;
	n->next = NULL;
	t->n--;
}

/* ---- iteration: what is left of the old array, then the new one ---- */

/* The first node at or after it->bucket, or NULL past the end. */
static struct htable_node *iter_scan(struct htable_iter *it)
{
	const struct htable *t = it->t;

	for (;;) {
		struct htable_node **b = it->in_old ? t->old : t->b;
		size_t mask = it->in_old ? t->old_mask : t->mask;

		while (it->bucket <= mask) {
			struct htable_node *n = b[it->bucket++];

			if (n)
				return n;
		}
		if (!it->in_old)
			return NULL;
		it->in_old = 0;
		it->bucket = 0;
	}
}

void htable_iter_init(struct htable_iter *it, const struct htable *t)
{
	it->t = t;
	it->in_old = t->old != NULL;
	it->bucket = t->old ? t->old_next : 0;
	it->gen = t->gen;
	it->next = iter_scan(it);
}

/* it->next is fetched before the caller sees the node it returns, so the
 * caller may delete (and free) that node. */
struct htable_node *htable_iter_next(struct htable_iter *it)
{
	struct htable_node *n = it->next;

	assert(it->gen == it->t->gen); /* no add during an iteration */
	if (n)
		it->next = n->next ? n->next : iter_scan(it);
	return n;
}
