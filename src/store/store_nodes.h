/*
 * store_nodes.h: the nodes' heartbeats in the store (store_nodes.c;
 * docs/cluster.md "Cluster status"). Apart from store.h to keep it short.
 */
#ifndef POSTHORN_STORE_NODES_H
#define POSTHORN_STORE_NODES_H

#include <stddef.h>
#include <stdint.h>

struct store;

#define STORE_NODE_BEAT_S  5                       /* a running node writes its row this often */
#define STORE_NODE_STALE_S (3 * STORE_NODE_BEAT_S) /* no beat for this long: stale */

/* A node's row. Times in Unix seconds; -1: none (stopped_at: running;
 * pg_us, redis_us: no such link, or not measured). */
struct store_node {
	char *id, *hostname, *version;
	int64_t started_at, beat_at, stopped_at;
	int64_t messages, recipients; /* its queue at the beat */
	int64_t pg_us, redis_us;      /* round trips, microseconds */
	char *tag_holder;             /* the node ID holding its tag (list only); NULL: none */
	char *instance;   /* the writing process's token, made at its start ("": none) */
	char *clash_host; /* another live process with this ID, its host; NULL: none */
};
/* Called by store_node_beat between its read and its write, with the row
 * as it was: may set n->clash_host. */
typedef void store_node_judge(void *arg, const struct store_node *prev, struct store_node *n);
/* Writes n's row (running again if it was stopped), after measuring the
 * database's round trip into n->pg_us (PostgreSQL only, else -1), and
 * reading the row as it was into *prev (instance, hostname, beat_at,
 * stopped_at; prev->instance NULL: no row; free with store_node_clear)
 * and calling judge (if not NULL) with it. Blocking: on the work pool. */
int store_node_beat(struct store *st, struct store_node *n, struct store_node *prev,
                    store_node_judge *judge, void *arg, char **err);
/* Marks node id stopped at now, if its row was written last by instance
 * (another process with the same ID running: left alone). */
int store_node_stop(struct store *st, const char *id, const char *instance, int64_t now,
                    char **err);
/* Frees the strings of one row and zeroes it. */
void store_node_clear(struct store_node *n);
/*
 * Forgets node id: deletes its row, unless it is up (no stop mark and a
 * beat within STORE_NODE_STALE_S of now) and not force, and then its
 * queue-ID tag claim. STORE_FORGOT; STORE_FORGET_UP (nothing deleted);
 * STORE_FORGET_UNKNOWN (neither a row nor a claim of id); -1 with *err.
 * A running node forgotten with force writes its row again at its next
 * beat.
 */
enum { STORE_FORGOT = 0, STORE_FORGET_UP = 1, STORE_FORGET_UNKNOWN = 2 };
int store_node_forget(struct store *st, const char *id, int64_t now, int force, char **err);
/* Every node's row, by ID; free with store_nodes_free. */
int store_nodes_list(struct store *st, struct store_node **out, size_t *n, char **err);
void store_nodes_free(struct store_node *v, size_t n);
/*
 * Claims the queue-ID tag of node id (its first 3 characters), in one
 * conditional upsert: taken when no one holds it, when id holds it
 * already, or when its holder is not live: no beat in the last
 * STORE_NODE_STALE_S seconds (or stopped), and no claim in that time (or
 * stopped since its claim). Then *holder (malloc'd)
 * is the node ID that holds it: 1 when it is id, 0 when another live node
 * holds it, -1 with *err.
 */
int store_node_tag_claim(struct store *st, const char *id, int64_t now, char **holder, char **err);
/* This process's node ID: recorded in its Idempotency-Key claims, and
 * only its own open claims are listed at start (store_idem_open_list).
 * Once, at start, before any claim. */
void store_set_node(struct store *st, const char *id);
/* "up", "stale" (no beat for STORE_NODE_STALE_S) or "stopped". */
const char *store_node_state(const struct store_node *n, int64_t now);
/* 1 when n is up and another node holds its queue-ID tag (a row of
 * store_nodes_list): its heartbeats stalled and a new node took it. */
int store_node_tag_lost(const struct store_node *n, int64_t now);
/* 1 when n is up and its last writer saw another live process writing
 * its row (two processes with one node ID: a copied data dir). */
int store_node_id_clash(const struct store_node *n, int64_t now);

#endif
