/*
 * cluster_rep: the reputation guard's sliding windows in Redis, shared by
 * every node (docs/cluster.md, "Redis"). Loop thread only; deliv_cluster.c
 * is the caller.
 *
 * One hash per account and window length, posthorn:rep:{ACCOUNT}:WINDOW,
 * with a field "START:OUTCOME" per slot of the window (the slots of
 * deliv_policy.h: same width, same starts, so every node's slots add up)
 * and outcome (delivered, bounced, hard, complained). A push is one Lua
 * script (EVALSHA): it adds what this node counted since its last push,
 * drops the slots that left the window and answers the sums over the
 * window, all at once, so the answer includes every node's counts pushed
 * before it. The hash expires a minute after the window's length without a
 * push. Slot starts come from the nodes' clocks (keep them in sync, as the
 * quota windows need).
 */
#ifndef POSTHORN_CLUSTER_REP_H
#define POSTHORN_CLUSTER_REP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster_redis.h"

/* The outcomes of a slot, in deliv_policy.h's order: delivered, bounced
 * (hard ones included), hard, complained. */
#define CLUSTER_REP_OUTCOMES 4
/* Slots one push carries at most (the rest waits for the next). */
#define CLUSTER_REP_PUSH_MAX ((CLUSTER_EVAL_ARGS_MAX - 6) / (1 + CLUSTER_REP_OUTCOMES))

struct cluster_rep_delta {
	int64_t start; /* the slot's start */
	uint64_t n[CLUSTER_REP_OUTCOMES];
};

struct cluster_rep_push {
	const char *account;
	uint64_t window; /* seconds */
	int64_t width;   /* one slot's, seconds */
	int64_t first;   /* the start of the window's oldest slot */
	int64_t now;
	int64_t since; /* slots ending at or before it are not summed (a resume); 0 none */
	const struct cluster_rep_delta *d;
	size_t n; /* at most CLUSTER_REP_PUSH_MAX; 0: only read the sums */
};

/* The window's sums over every node, as deliv_rep_sum() makes them
 * (volume: delivered + bounced). ok 0: no answer (Redis down, timed out,
 * an error reply: logged); the counts pushed may or may not be in Redis. */
typedef void (*cluster_rep_cb)(void *arg, int ok, uint64_t volume, uint64_t hard,
                               uint64_t complained);

/* Loads the script on every connection of r. Once, before the loop runs. */
void cluster_rep_setup(struct cluster_redis *r);
/* 0: cb will be called; -1: the link is down (cb is not called). */
int cluster_rep_push(struct cluster_redis *r, const struct cluster_rep_push *p, cluster_rep_cb cb,
                     void *arg);

#endif
