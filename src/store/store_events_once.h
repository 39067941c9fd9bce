/*
 * store_events_once.h: event batches written once (store_events.c,
 * migration 20), although a retry may follow a COMMIT that was committed
 * but got no answer ([cluster] postgres_timeout, a connection lost).
 *
 * A batch with a key (store_event_batch.key: unique in the cluster, at
 * most STORE_BATCH_KEY_MAX bytes, the same on every attempt at the batch)
 * is written once: store_events_write() records the key in the batch's
 * transaction, and a batch whose key is already there writes nothing and
 * returns STORE_EVENT_WRITTEN_BEFORE (a success, *n_new 0). Keys are
 * needed while a batch can be retried; they are pruned after a day. The
 * delivery counters' batches (store_counts_add_once) are kept the same way.
 */
#ifndef POSTHORN_STORE_EVENTS_ONCE_H
#define POSTHORN_STORE_EVENTS_ONCE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_EVENT_WRITTEN_BEFORE 1
#define STORE_BATCH_KEY_MAX        96

/* Records key in the caller's transaction (table event_batches): 1, 0
 * when it is there already (that batch was written), -1 and *err. NULL
 * key: 1. */
int store_batch_key_claim(struct store *st, const char *key, char **err);

/* store_counts_add() of a batch with a key, written once as event batches
 * are: 0, STORE_EVENT_WRITTEN_BEFORE (nothing added: that batch's COMMIT
 * had gone through), or -1 and *err (nothing added; try again with the
 * same key). */
int store_counts_add_once(struct store *st, const char *key, const struct store_count *c, size_t n,
                          char **err);

/* Deletes at most `limit` of the batch keys recorded before before_ms
 * (unix ms), oldest first; *deleted: how many. */
int store_events_prune_keys(struct store *st, int64_t before_ms, size_t limit, size_t *deleted,
                            char **err);

#endif
