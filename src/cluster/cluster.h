/*
 * cluster: what a node shares with the other nodes of a cluster
 * (SPEC 8; docs/cluster.md). Its identity (cluster_node.c) and the Redis
 * link that holds the counters which must be exact across nodes
 * (cluster_redis.c, cluster_quota.c).
 */
#ifndef POSTHORN_CLUSTER_H
#define POSTHORN_CLUSTER_H

#include "util/util.h"

/*
 * The node's ID from DATA_DIR/node-id, drawn and written (synced) the first
 * time. *made: 1 when it was drawn now. Blocking: at start. -1 with a
 * malloc'd *err (unreadable, not a node ID, cannot write).
 */
int cluster_node_id(const char *data_dir, char out[NODE_ID_LEN + 1], int *made, char **err);

struct cluster_redis;
/*
 * Records in Redis, each time the link comes up, that this node's tag (the
 * first 3 characters of node_id, its queue IDs' tag) is held by node_id;
 * logs event=node_tag_clash (error) when another node ID holds it. The
 * string must outlive r.
 */
void cluster_node_claim(struct cluster_redis *r, const char *node_id);

#endif
