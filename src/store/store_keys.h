/*
 * store_keys: node secrets shared through the database (store_keys.c;
 * docs/cluster.md, "Shared keys"). Any thread; blocking (at start).
 */
#ifndef POSTHORN_STORE_KEYS_H
#define POSTHORN_STORE_KEYS_H

#include <stddef.h>

struct store;

/* 1 when keys are shared here: PostgreSQL with [cluster] secret_key_file. */
int store_keys_shared(const struct store *st);
/*
 * The cluster's key called name (len bytes) into key (which may be seed):
 * the row the first process made, seeded with seed (this node's own key,
 * so that the first node's links and addresses keep working). 1: key
 * filled, the same as seed; 2: key filled, not the same as seed (logged
 * once: the caller keeps its own key as a second one, accepted when
 * verifying, never used to make links or addresses); 0: keys are not
 * shared here, or the row does not open under this node's secret
 * (logged; key untouched: keep the node's own); -1 with *err.
 */
int store_shared_key(struct store *st, const char *name, const unsigned char *seed,
                     unsigned char *key, size_t len, char **err);

#endif
