/*
 * sched_tab: the scheduler's two hash tables (messages by queue ID,
 * destinations by name). Chained, a power-of-two number of buckets that
 * follows the count: doubled when there are more entries than buckets,
 * halved (down to SCHED_TAB_MIN) at the next add once fewer than an
 * eighth of the buckets are used, so a queue that drained gives its
 * memory back. Only sched_tab_add() moves nodes, which makes deleting
 * during a walk safe. Contract in sched_int.h.
 *
 * A stand-in with the interface of the shared table that util/ is getting
 * (issue 7): when it lands, this file goes.
 */
#include <stdlib.h>
#include <string.h>

#include "sched/sched_int.h"

/* FNV-1a: keys are queue IDs and domain names (a hostile sender can pick
 * domains, but each costs it a message and the chains stay at about one
 * entry on average while the table follows the count). */
static size_t hash_str(const char *p)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)h;
}

void sched_tab_init(struct sched_tab *t, const char *(*key)(const struct sched_hnode *n))
{
	t->size = SCHED_TAB_MIN;
	t->b = xcalloc(t->size, sizeof(*t->b));
	t->n = 0;
	t->key = key;
}

void sched_tab_fini(struct sched_tab *t)
{
	free(t->b);
	t->b = NULL;
	t->size = t->n = 0;
}

struct sched_hnode *sched_tab_find(const struct sched_tab *t, const char *key)
{
	struct sched_hnode *n;

	for (n = t->b[hash_str(key) & (t->size - 1)]; n; n = n->next)
		if (strcmp(t->key(n), key) == 0)
			return n;
	return NULL;
}

static void resize(struct sched_tab *t, size_t size)
{
	struct sched_hnode **b = xcalloc(size, sizeof(*b)), *n, *next;
	size_t i, k;

	for (i = 0; i < t->size; i++)
		for (n = t->b[i]; n; n = next) {
			next = n->next;
			k = hash_str(t->key(n)) & (size - 1);
			n->next = b[k];
			b[k] = n;
		}
	free(t->b);
	t->b = b;
	t->size = size;
}

void sched_tab_add(struct sched_tab *t, struct sched_hnode *n)
{
	size_t k;

	if (t->n >= t->size)
		resize(t, t->size * 2);
	else if (t->size > SCHED_TAB_MIN && t->n < t->size / 8)
		resize(t, t->size / 2);
	k = hash_str(t->key(n)) & (t->size - 1);
	n->next = t->b[k];
	t->b[k] = n;
	t->n++;
}

void sched_tab_del(struct sched_tab *t, struct sched_hnode *n)
{
	struct sched_hnode **pp = &t->b[hash_str(t->key(n)) & (t->size - 1)];

	for (; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			t->n--;
			return;
		}
}

struct sched_hnode *sched_tab_next(const struct sched_tab *t, size_t *bucket,
                                   const struct sched_hnode *n)
{
	if (n && n->next)
		return n->next;
	for (*bucket = n ? *bucket + 1 : 0; *bucket < t->size; (*bucket)++)
		if (t->b[*bucket])
			return t->b[*bucket];
	return NULL;
}
