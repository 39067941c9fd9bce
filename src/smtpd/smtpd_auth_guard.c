/*
 * smtpd_auth_guard: per-address AUTH limits and lanes (see the header).
 * PURE: libc and util only.
 */
#include "smtpd/smtpd_auth_guard.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct guard_entry {
	struct htable_node hn;
	struct smtpd_addr_key key;
	unsigned inflight;
	uint64_t failed_at; /* 0: no failure remembered */
};

static int entry_match(const struct htable_node *n, const void *key)
{
	return memcmp(&HTABLE_ENTRY(n, struct guard_entry, hn)->key, key,
	              sizeof(struct smtpd_addr_key)) == 0;
}

static struct guard_entry *entry_find(const struct smtpd_auth_guard *g,
                                      const struct smtpd_addr_key *k)
{
	struct htable_node *n = htable_find(&g->t, htable_hash(k, sizeof(*k)), entry_match, k);

	return n ? HTABLE_ENTRY(n, struct guard_entry, hn) : NULL;
}

static int recent_failure(const struct guard_entry *e, uint64_t now)
{
	return e->failed_at && now - e->failed_at < SMTPD_AUTH_SUSPECT_MS;
}

/* An entry is kept while a check is in flight or its failure is recent. */
static void entry_drop_if_idle(struct smtpd_auth_guard *g, struct guard_entry *e, uint64_t now)
{
	if (e->inflight > 0 || recent_failure(e, now))
		return;
	htable_del(&g->t, &e->hn);
	free(e);
}

static void sweep(struct smtpd_auth_guard *g, uint64_t now)
{
	struct htable_iter it;
	struct htable_node *n;

	g->swept_at = now;
	htable_iter_init(&it, &g->t);
	while ((n = htable_iter_next(&it)))
		entry_drop_if_idle(g, HTABLE_ENTRY(n, struct guard_entry, hn), now);
}

static struct guard_entry *entry_add(struct smtpd_auth_guard *g, const struct smtpd_addr_key *k)
{
	struct guard_entry *e;

	if (htable_count(&g->t) >= g->max_entries)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->key = *k;
	htable_add(&g->t, &e->hn, htable_hash(k, sizeof(*k)));
	return e;
}

void smtpd_auth_guard_init(struct smtpd_auth_guard *g, size_t max_entries)
{
	memset(g, 0, sizeof(*g));
	htable_init(&g->t);
	g->max_entries = max_entries;
}

void smtpd_auth_guard_fini(struct smtpd_auth_guard *g)
{
	struct htable_iter it;
	struct htable_node *n;

	htable_iter_init(&it, &g->t);
	while ((n = htable_iter_next(&it))) {
		htable_del(&g->t, n);
		free(HTABLE_ENTRY(n, struct guard_entry, hn));
	}
	htable_fini(&g->t);
}

enum smtpd_auth_lane smtpd_auth_guard_begin(struct smtpd_auth_guard *g,
                                            const struct smtpd_addr_key *key, int session_failed,
                                            uint64_t now_ms, struct smtpd_auth_ticket *ticket)
{
	struct guard_entry *e;
	int suspect;

	if (now_ms - g->swept_at >= SMTPD_AUTH_SWEEP_MS)
		sweep(g, now_ms);
	e = entry_find(g, key);
	if (e && e->inflight >= SMTPD_AUTH_PER_ADDR)
		return SMTPD_AUTH_BUSY;
	suspect = session_failed || (e && recent_failure(e, now_ms));
	if (!e && !(e = entry_add(g, key)))
		suspect = 1; /* the table is full: not tracked */
	ticket->key = *key;
	ticket->counted = e != NULL;
	if (e)
		e->inflight++;
	return suspect ? SMTPD_AUTH_SUSPECT : SMTPD_AUTH_CLEAN;
}

void smtpd_auth_guard_end(struct smtpd_auth_guard *g, const struct smtpd_auth_ticket *ticket,
                          int failed, int ok, uint64_t now_ms)
{
	struct guard_entry *e = entry_find(g, &ticket->key);

	if (ticket->counted) {
		assert(e && e->inflight > 0); /* begin() counted it: still there */
		e->inflight--;
	}
	if (failed && !e)
		e = entry_add(g, &ticket->key);
	if (!e)
		return;
	if (failed)
		e->failed_at = now_ms ? now_ms : 1;
	else if (ok)
		e->failed_at = 0;
	entry_drop_if_idle(g, e, now_ms);
}

size_t smtpd_auth_guard_size(const struct smtpd_auth_guard *g)
{
	return htable_count(&g->t);
}
