/*
 * cluster_quota: per-account quota counters in Redis, exact across nodes
 * (docs/cluster.md, "Redis"). Loop thread only; deliv_cluster.c is the
 * caller.
 *
 * One counter per account, period (hour, day) and window, under
 * posthorn:quota:{ACCOUNT}:h:START and ...:d:START, expiring a minute
 * after the window ends. A reservation is one Lua script (EVALSHA), so
 * reading the counters, deciding and adding happen at once for the whole
 * cluster: two nodes can never both take the last unit. A reservation
 * counts at once (there is no separate commit); a release gives back what
 * a transaction reserved and did not send, in the windows it reserved in.
 * What a node granted alone while Redis was unreachable is added back in
 * the same script, before the reservation is decided (INCRBY, the key's
 * expiry kept).
 */
#ifndef POSTHORN_CLUSTER_QUOTA_H
#define POSTHORN_CLUSTER_QUOTA_H

#include <stdint.h>

#include "cluster/cluster_redis.h"

struct cluster_quota_ask {
	const char *account;
	uint64_t n;        /* wanted */
	int all;           /* 1: all or none; 0: as many as fit, up to n */
	uint64_t limit[2]; /* hour, day; 0: unlimited */
	int64_t start[2];  /* the windows' starts */
	int64_t ttl[2];    /* seconds the counters are kept (set on a counter without one) */
	uint64_t owed[2];  /* added to the counters first: what this node granted
	                      alone while Redis was unreachable (n 0: only that) */
};

/* ok 0: no answer (Redis down, timed out, an error reply: logged).
 * over: the period that refused part or all (0 hour, 1 day), -1 none. */
typedef void (*cluster_quota_cb)(void *arg, int ok, uint64_t granted, int over);

/* Loads the scripts on every connection of r. Once, before the loop runs. */
void cluster_quota_setup(struct cluster_redis *r);
/* 0: cb will be called; -1: the link is down (cb is not called). */
int cluster_quota_reserve(struct cluster_redis *r, const struct cluster_quota_ask *q,
                          cluster_quota_cb cb, void *arg);
/* Gives back n of account's counters of the windows that start at start[]
 * (best effort: a release that fails leaves the count high, the safe side). */
void cluster_quota_release(struct cluster_redis *r, const char *account, const int64_t start[2],
                           uint64_t n);

#endif
