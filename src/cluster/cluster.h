/*
 * cluster: what a node shares with the other nodes of a cluster
 * (SPEC 8; docs/cluster.md). Its identity (cluster_node.c) and the Redis
 * link that holds the counters which must be exact across nodes
 * (cluster_redis.c, cluster_quota.c).
 */
#ifndef POSTHORN_CLUSTER_H
#define POSTHORN_CLUSTER_H

#include <jansson.h>

#include "util/util.h"

/*
 * The node's ID from DATA_DIR/node-id, drawn and written (synced) the first
 * time. *made: 1 when it was drawn now. Blocking: at start. -1 with a
 * malloc'd *err (unreadable, not a node ID, cannot write).
 */
int cluster_node_id(const char *data_dir, char out[NODE_ID_LEN + 1], int *made, char **err);

struct store;
/*
 * With PostgreSQL ([cluster] postgres): claims the node's queue-ID tag (the
 * first 3 characters of id) in the database (store_node_tag_claim), so that
 * no two live nodes share one. A new node (made: its ID was drawn at this
 * start) whose tag is held draws another ID (written to DATA_DIR/node-id,
 * logged event=node_tag_redrawn); an existing node whose tag is held does
 * not start: -1 with *err naming the other node. Blocking: at start.
 */
int cluster_node_tag(struct store *st, const char *data_dir, char id[NODE_ID_LEN + 1], int made,
                     char **err);

struct cluster_redis;
/*
 * Records in Redis, each time the link comes up, that this node's tag (the
 * first 3 characters of node_id, its queue IDs' tag) is held by node_id;
 * logs event=node_tag_clash (error) when another node ID holds it. The
 * string must outlive r.
 */
void cluster_node_claim(struct cluster_redis *r, const char *node_id);

#define POSTHORN_VERSION "0.1.0"

struct event_base;
struct work_pool;
struct store;
struct sched;
struct cluster_beat_deps {
	struct event_base *base;
	struct work_pool *work;
	struct store *store;
	struct sched *sched;            /* its queue counts; may be NULL */
	struct cluster_redis *redis;    /* its PING round trip; may be NULL */
	const char *node_id, *hostname; /* must outlive the beat */
	int claim_tag; /* renew the queue-ID tag claim with each beat (PostgreSQL) */
};
struct cluster_beat;
/*
 * Writes this node's row in the nodes table now and every
 * STORE_NODE_BEAT_S seconds, on the work pool (cluster_beat.c), and with
 * claim_tag renews the node's queue-ID tag claim (store_node_tag_claim).
 * A beat that finds the tag held by another node logs event=node_tag_lost
 * (error level) and sets cluster_tag_lost() until a beat gets it back
 * (event=node_tag_regained). A beat that finds the row written by another
 * live process since its last logs event=node_id_clash and sets
 * cluster_id_clash() until the other has not written for
 * STORE_NODE_STALE_S (event=node_id_clash_end).
 */
struct cluster_beat *cluster_beat_start(const struct cluster_beat_deps *d);
/* 1 while another node holds this node's queue-ID tag: new mail is
 * refused (SMTP 451 4.3.0, HTTP 503), as its queue IDs could be the other
 * node's. Any thread. */
int cluster_tag_lost(void);
/* 1 while another live process writes this node's heartbeat row (two
 * processes with one node ID: a copied data dir): new mail is refused as
 * for a lost tag. Any thread. */
int cluster_id_clash(void);
/* Marks the row stopped (blocking: after the work pool has stopped, so no
 * beat is running), then frees. NULL: nothing. */
void cluster_beat_stop(struct cluster_beat *b);

/* The JSON of the nodes table (cluster_status.c): {"nodes": [...],
 * "stale": N, "tag_lost": M, "id_clash": K}, with *stale the count of
 * stale nodes at now and *lost of up nodes whose tag another node holds
 * (K: up nodes run by two processes, store_node_id_clash). */
struct store_node;
json_t *cluster_nodes_json(const struct store_node *v, size_t n, int64_t now, size_t *stale,
                           size_t *lost);
json_t *cluster_node_json(const struct store_node *n, int64_t now);

#endif
