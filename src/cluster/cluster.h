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

#endif
