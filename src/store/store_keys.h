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
#define STORE_KEYS_LEN 32 /* the keys store_keys_verify() keeps */

/*
 * The cluster's key called name (len bytes) into key (which may be seed):
 * the row the first process made, seeded with seed (this node's own key,
 * so that the first node's links and addresses keep working). fresh: the
 * caller made seed at this start (never used: never kept nor stored).
 * 1: key filled, the same as seed or seed fresh; 2: key filled, not the
 * same as seed (logged once, and seed stored as NAME/NODE_ID for the
 * other nodes: the caller keeps its own key as a second one, accepted
 * when verifying, never used to make links or addresses); 0: keys are not
 * shared here, or the row does not open under this node's secret
 * (logged; key untouched: keep the node's own); -1 with *err. Loads the
 * other nodes' own keys of name (store_keys_verify).
 */
int store_shared_key(struct store *st, const char *name, const unsigned char *seed, int fresh,
                     unsigned char *key, size_t len, char **err);
/* The other nodes' own keys read again, if the last read is REFRESH_S
 * seconds old (a node that joined since). Blocking: from a worker. */
void store_keys_refresh(struct store *st);
/* 1 when check(key, arg) is 1 for one of the other nodes' own keys of
 * name (STORE_KEYS_LEN bytes each); no database. Any thread. */
int store_keys_verify(const char *name, int (*check)(const unsigned char *key, void *arg),
                      void *arg);

#endif
