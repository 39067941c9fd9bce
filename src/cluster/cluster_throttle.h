/*
 * cluster_throttle: per-destination rate limits ([domain.*] max_rate)
 * shared by every node through Redis (docs/cluster.md, "Redis"). Loop
 * thread only; sched_cluster.c is the caller.
 *
 * One token bucket per destination under posthorn:rate:{DEST}, kept by a
 * Lua script (EVALSHA) with Redis's own clock: tokens refill at max_rate
 * per period up to min(burst, max_rate), and each delivery takes one, in
 * one step for the whole cluster. The bucket expires once it would be
 * full again. Connection leases (max_connections) below.
 */
#ifndef POSTHORN_CLUSTER_THROTTLE_H
#define POSTHORN_CLUSTER_THROTTLE_H

#include <stdint.h>

#include "cluster/cluster_redis.h"

/* ok 0: no answer (down, timed out, an error reply: logged). Otherwise
 * granted (0 or 1) and, when 0, the milliseconds until a token is due. */
typedef void (*cluster_rate_cb)(void *arg, int ok, int granted, int64_t wait_ms);

/* Loads the script on every connection of r. Once, before the loop runs. */
void cluster_throttle_setup(struct cluster_redis *r);
/* Asks for one token of dest's bucket. 0: cb will be called; -1: down. */
int cluster_rate_take(struct cluster_redis *r, const char *dest, uint64_t max_rate,
                      uint64_t period_s, unsigned burst, cluster_rate_cb cb, void *arg);

/*
 * max_connections across nodes: posthorn:conns:{DEST}, a hash of node ID ->
 * "COUNT:EXPIRY_MS" (Redis's clock). A node asks to hold want connections
 * in all; it gets at most max minus what the other nodes' unexpired
 * leases hold, and its lease lasts ttl_ms unless asked again (a node that
 * dies gives its connections back when its lease expires). Asking for 0
 * gives the lease back.
 */
typedef void (*cluster_lease_cb)(void *arg, int ok, unsigned allowed);
int cluster_conns_lease(struct cluster_redis *r, const char *dest, const char *node_id,
                        unsigned want, unsigned max, unsigned ttl_ms, cluster_lease_cb cb,
                        void *arg);

#endif
