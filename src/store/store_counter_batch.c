/*
 * store_counter_batch: the daemon's in-memory tally of delivery events,
 * merged by (hour, account, recipient domain, event) until a worker writes
 * it with store_counts_add(). Also the event names and the hour bucket,
 * shared with store_stats.c and `posthorn stats`.
 *
 * PURE: libc and util only. It runs on the event loop thread, which must
 * never wait for SQLite; see store.h for ownership and the two limits.
 *
 * An open-addressing hash table (linear probing, at most half full) indexes
 * an array of entries. Each entry's account and domain live in one
 * allocation, "account\0domain\0", which a take hands to the set as is, so
 * taking costs one array and no string copies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/util.h"

static const char *const event_names[COUNTER_EVENTS] = {
    [COUNTER_ACCEPTED] = "accepted",     [COUNTER_DELIVERED] = "delivered",
    [COUNTER_DEFERRED] = "deferred",     [COUNTER_BOUNCED] = "bounced",
    [COUNTER_SUPPRESSED] = "suppressed",
};

/* Slots of a new table; a power of two, like every table size. */
#define SLOTS_MIN 64

struct entry {
	int64_t bucket;
	uint64_t n;
	uint32_t hash;
	int event;
	char *key;    /* "account\0domain\0" */
	char *domain; /* points into key */
};

struct store_counter_batch {
	struct entry *v;
	size_t n, cap;
	uint32_t *slots; /* index into v plus one; 0 is an empty slot */
	size_t n_slots;
	uint64_t dropped;
	uint32_t seed;
};

const char *counter_event_name(int ev)
{
	if (ev < 0 || ev >= COUNTER_EVENTS)
		return NULL;
	return event_names[ev];
}

int counter_event_parse(const char *name)
{
	for (int ev = 0; name != NULL && ev < COUNTER_EVENTS; ev++)
		if (strcmp(name, event_names[ev]) == 0)
			return ev;
	return -1;
}

/* C division truncates towards zero; an hour must start at or before t. */
int64_t counter_bucket(int64_t t)
{
	int64_t r = t % COUNTER_BUCKET_SECONDS;

	return r < 0 ? t - r - COUNTER_BUCKET_SECONDS : t - r;
}

struct store_counter_batch *counter_batch_new(void)
{
	struct store_counter_batch *b = xcalloc(1, sizeof *b);

	/* Not a defence against chosen collisions (FNV is not keyed that
	 * strongly); COUNTER_BATCH_MAX bounds the worst case anyway. It keeps
	 * two processes from sharing one bad layout. */
	b->seed = (uint32_t)(clock_mono_ms() * 2654435761u) ^ (uint32_t)(uintptr_t)b;
	return b;
}

/* Frees the entries and the index, keeping `dropped`. */
static void batch_clear(struct store_counter_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->v[i].key);
	free(b->v);
	free(b->slots);
	b->v = NULL;
	b->slots = NULL;
	b->n = b->cap = b->n_slots = 0;
}

void counter_batch_free(struct store_counter_batch *b)
{
	if (b == NULL)
		return;
	batch_clear(b);
	free(b);
}

size_t counter_batch_len(const struct store_counter_batch *b)
{
	return b->n;
}

/* ---- the index ----------------------------------------------------------- */

static uint32_t fnv_bytes(uint32_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

/* The strings are hashed with their NULs, so ("ab", "c") != ("a", "bc"). */
static uint32_t key_hash(uint32_t seed, int64_t bucket, int event, const char *account,
                         const char *domain)
{
	unsigned char ev = (unsigned char)event;
	uint32_t h = 2166136261u ^ seed;

	h = fnv_bytes(h, &bucket, sizeof bucket);
	h = fnv_bytes(h, &ev, 1);
	h = fnv_bytes(h, account, strlen(account) + 1);
	return fnv_bytes(h, domain, strlen(domain) + 1);
}

static int entry_is(const struct entry *e, uint32_t hash, int64_t bucket, int event,
                    const char *account, const char *domain)
{
	return e->hash == hash && e->bucket == bucket && e->event == event &&
	       strcmp(e->key, account) == 0 && strcmp(e->domain, domain) == 0;
}

/* The slot holding the key, or the empty slot where it would go. */
static size_t slot_find(const struct store_counter_batch *b, uint32_t hash, int64_t bucket,
                        int event, const char *account, const char *domain)
{
	size_t mask = b->n_slots - 1, i = hash & mask;

	while (b->slots[i] != 0 &&
	       !entry_is(&b->v[b->slots[i] - 1], hash, bucket, event, account, domain))
		i = (i + 1) & mask;
	return i;
}

/* Doubles the index (or makes the first one) and re-inserts every entry. */
static void slots_grow(struct store_counter_batch *b)
{
	size_t n_slots = b->n_slots ? b->n_slots * 2 : SLOTS_MIN, mask = n_slots - 1;

	free(b->slots);
	b->slots = xcalloc(n_slots, sizeof *b->slots);
	b->n_slots = n_slots;
	for (size_t k = 0; k < b->n; k++) {
		size_t i = b->v[k].hash & mask;

		while (b->slots[i] != 0)
			i = (i + 1) & mask;
		b->slots[i] = (uint32_t)(k + 1);
	}
}

/* ---- adding -------------------------------------------------------------- */

static struct entry *entry_new(struct store_counter_batch *b, uint32_t hash, int64_t bucket,
                               int event, const char *account, const char *domain)
{
	size_t alen = strlen(account), dlen = strlen(domain);
	struct entry *e;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : SLOTS_MIN / 2;
		b->v = xrealloc(b->v, b->cap * sizeof *b->v);
	}
	e = &b->v[b->n++];
	e->bucket = bucket;
	e->n = 0;
	e->hash = hash;
	e->event = event;
	e->key = xmalloc(alen + dlen + 2);
	memcpy(e->key, account, alen + 1);
	e->domain = e->key + alen + 1;
	memcpy(e->domain, domain, dlen + 1);
	return e;
}

/* Counts stop at INT64_MAX, the most SQLite stores: never wrap to small. */
static void entry_count(struct entry *e, uint64_t n)
{
	e->n = n > (uint64_t)INT64_MAX - e->n ? (uint64_t)INT64_MAX : e->n + n;
}

/* Adds n to the key (bucket, account, domain, event); domain already lower-case. */
static int batch_add_key(struct store_counter_batch *b, int64_t bucket, const char *account,
                         const char *domain, int event, uint64_t n)
{
	uint32_t hash = key_hash(b->seed, bucket, event, account, domain);
	size_t i;

	if ((b->n + 1) * 2 > b->n_slots)
		slots_grow(b);
	i = slot_find(b, hash, bucket, event, account, domain);
	if (b->slots[i] == 0) {
		if (b->n >= COUNTER_BATCH_MAX) {
			b->dropped += n;
			return 1;
		}
		entry_new(b, hash, bucket, event, account, domain);
		b->slots[i] = (uint32_t)b->n;
	}
	entry_count(&b->v[b->slots[i] - 1], n);
	return b->n >= COUNTER_BATCH_FLUSH;
}

int counter_batch_add(struct store_counter_batch *b, int64_t now, const char *account,
                      const char *domain, const char *event, uint64_t n)
{
	char lower[COUNTER_DOMAIN_MAX + 1];
	int ev = counter_event_parse(event);
	size_t alen = account ? strlen(account) : 0, dlen = domain ? strlen(domain) : 0;

	if (ev < 0 || alen == 0 || alen > COUNTER_ACCOUNT_MAX || dlen == 0 ||
	    dlen > COUNTER_DOMAIN_MAX || n > (uint64_t)INT64_MAX)
		return -1;
	if (n == 0)
		return b->n >= COUNTER_BATCH_FLUSH;
	/* Example.COM and example.com are one destination. */
	memcpy(lower, domain, dlen + 1);
	ascii_lower(lower);
	return batch_add_key(b, counter_bucket(now), account, lower, ev, n);
}

/* ---- taking -------------------------------------------------------------- */

struct store_counter_set *counter_batch_take(struct store_counter_batch *b)
{
	struct store_counter_set *s;

	if (b->n == 0 && b->dropped == 0)
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->n = b->n;
	s->dropped = b->dropped;
	s->v = xcalloc(b->n ? b->n : 1, sizeof *s->v);
	s->keys = xcalloc(b->n ? b->n : 1, sizeof *s->keys);
	for (size_t i = 0; i < b->n; i++) {
		const struct entry *e = &b->v[i];

		s->v[i] =
		    (struct store_count){e->bucket, e->key, e->domain, event_names[e->event], e->n};
		s->keys[i] = e->key;
	}
	/* The keys now belong to the set: forget them before clearing. */
	b->n = 0;
	batch_clear(b);
	b->dropped = 0;
	return s;
}

void counter_set_free(struct store_counter_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
	free(s->v);
	free(s);
}
