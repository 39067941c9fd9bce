/*
 * htable: the one hash table of the tree. PURE (libc only).
 *
 * Intrusive and keyed by the caller: an entry embeds a struct htable_node,
 * the caller hashes its key with htable_hash() and says how to compare it
 * (a match function). The table stores each node's full 64-bit hash, so the
 * match function runs only for real candidates, and growing never hashes a
 * key again. Separate chaining; the bucket count is a power of two.
 *
 * Sizes: the table doubles when it holds more entries than buckets, so a
 * chain has one entry on average and a lookup costs O(1) at a million
 * entries as at ten. It shrinks (never below HTABLE_MIN_BUCKETS) when it
 * holds fewer than an eighth of its buckets, at the next htable_add().
 * A resize is incremental: each htable_add() moves a bounded number of
 * buckets from the old array to the new one, so no single call stalls the
 * event loop (growing a table of 500,000 entries in one go took 24 ms on
 * the development VM; the slowest add of a million, 0.3 ms). Only
 * htable_add() moves nodes, which is what makes deleting during an
 * iteration safe. Memory: one pointer per bucket (two arrays while a
 * resize is under way); the nodes are the caller's.
 *
 * Hashing: SipHash-2-4 with a key drawn from getrandom() once per process.
 * Keys come from outside (domains, DNS names, client addresses); with a
 * secret key nobody can choose keys that land in one chain.
 *
 * Keys of fixed size hash as bytes: htable_hash(key, 17) for a 17-byte
 * address key, say; a name with a small tag beside it as
 * htable_hash_mix(htable_hash_str(name), tag) (dns.c: type and name).
 *
 * Use (a table of struct dest by name):
 *
 *	struct dest { struct htable_node hn; char *name; ... };
 *
 *	static int dest_match(const struct htable_node *n, const void *key)
 *	{
 *		return strcmp(HTABLE_ENTRY(n, struct dest, hn)->name, key) == 0;
 *	}
 *
 *	uint64_t h = htable_hash_str(name);
 *	struct htable_node *n = htable_find(&t, h, dest_match, name);
 *	if (!n) { d = new_dest(name); htable_add(&t, &d->hn, h); }
 *	...
 *	htable_del(&t, &d->hn); free(d);
 *
 * Threads: a table is not locked; use it from one thread at a time.
 * htable_hash() is safe from any thread.
 */
#ifndef POSTHORN_HTABLE_H
#define POSTHORN_HTABLE_H

#include <stddef.h>
#include <stdint.h>

#define HTABLE_MIN_BUCKETS 16

/* Embed one in each entry (anywhere: HTABLE_ENTRY finds the entry). The
 * table owns neither the node nor the entry; an entry is in at most one
 * table per node it embeds. While the node is in a table, `hash` is what
 * htable_add() was given: its owner may read it (to look the same key up
 * in another table without hashing it again), never write it. */
struct htable_node {
	struct htable_node *next;
	uint64_t hash;
};

/* The entry of type `type` whose member `member` is node n. */
#define HTABLE_ENTRY(n, type, member) ((type *)(void *)((char *)(n)-offsetof(type, member)))

struct htable {
	struct htable_node **b; /* where adds go */
	size_t mask;            /* buckets of b - 1 */
	/* During a resize, the previous buckets, emptied into b a few at a
	 * time; buckets below old_next are empty already. NULL otherwise. */
	struct htable_node **old;
	size_t old_mask, old_next;
	size_t n;     /* entries, in b and old */
	unsigned gen; /* bumped whenever nodes move; iterators check it */
};

/* Nonzero when entry n has the key `key` (whatever the caller passes to
 * htable_find). Called only for nodes whose hash equals the one looked up. */
typedef int (*htable_match_fn)(const struct htable_node *n, const void *key);

/* An empty table (HTABLE_MIN_BUCKETS buckets). */
void htable_init(struct htable *t);
/* Frees the buckets, not the entries: drain the table first (htable_iter
 * and htable_del) if it owns them. The table can be initialized again. */
void htable_fini(struct htable *t);

/* The hash of len bytes (the key: process-wide, secret). Equal bytes give
 * equal hashes, in every table of the process. For a key made of several
 * parts, hash them laid out in one buffer, or combine the hash of the
 * variable part with the small fixed ones by htable_hash_mix(). */
uint64_t htable_hash(const void *key, size_t len);
uint64_t htable_hash_str(const char *s);
/* h with a small integer mixed in (e.g. a DNS type beside its name). */
uint64_t htable_hash_mix(uint64_t h, uint64_t v);

/* SipHash-2-4 of p[0..n) under a 16-byte key (what htable_hash runs with
 * the process key); the unit test checks it against libsodium. */
uint64_t siphash24(const unsigned char key[16], const void *p, size_t n);

/* The entry with this hash for which match(node, key) holds, or NULL. When
 * several match (the caller added duplicates), any one of them. */
struct htable_node *htable_find(const struct htable *t, uint64_t hash, htable_match_fn match,
                                const void *key);

/* Adds node n with its key's hash. n must not be in a table. Duplicates are
 * not checked: find first when a key must be unique. Moves nodes (a resize
 * step), so no iteration of t may be in progress. */
void htable_add(struct htable *t, struct htable_node *n, uint64_t hash);

/* Removes node n, which must be in t. Never moves other nodes: allowed
 * during an iteration for the node the iterator returned last. */
void htable_del(struct htable *t, struct htable_node *n);

size_t htable_count(const struct htable *t);
/* Buckets of the array adds go to (the size the table is resizing to). */
size_t htable_buckets(const struct htable *t);

/*
 * Iteration, in no particular order, each entry once:
 *
 *	struct htable_iter it;
 *	struct htable_node *n;
 *
 *	htable_iter_init(&it, &t);
 *	while ((n = htable_iter_next(&it)))
 *		if (idle(n)) { htable_del(&t, n); free(entry of n); }
 *
 * Allowed meanwhile: htable_find, and htable_del of the node returned last.
 * Not allowed: htable_add, and deleting any other node (the iterator may
 * hold it as the next one). Nodes moved meanwhile trip an assert.
 */
struct htable_iter {
	const struct htable *t;
	int in_old;               /* still walking t->old */
	size_t bucket;            /* the next bucket to look at */
	struct htable_node *next; /* the node to return next, if any */
	unsigned gen;
};
void htable_iter_init(struct htable_iter *it, const struct htable *t);
struct htable_node *htable_iter_next(struct htable_iter *it);

#endif
