/*
 * cluster_redis: the node's link to Redis, asynchronous on the event loop
 * (hiredis on libevent). Loop thread only.
 *
 * Promises:
 * - Every command is answered exactly once, on the loop: with Redis's
 *   reply, or with NULL when the link is down, breaks, or the answer does
 *   not come within CLUSTER_REDIS_TIMEOUT_MS (the link is then dropped, so
 *   that a hung Redis is not asked again before it answers a PING).
 * - The link is up once a new connection has answered a PING (after its
 *   setup): a Redis that accepts connections but does not answer (hung,
 *   stopped) is never reported up.
 * - A dropped link is dialled again with backoff (100 ms doubling to 5 s),
 *   and each change between up and down is logged once
 *   (event=redis_up / event=redis_down) and shown in /metrics
 *   (posthorn_redis_up). A PING every second keeps the state honest when
 *   nothing else is asked.
 * - With a password in the URL, AUTH is each connection's first command
 *   (then SELECT and the scripts); a refused AUTH drops the link (never
 *   up) and is logged once until the next up (event=redis_auth_error,
 *   Redis's answer, never the password).
 * - The scripts (cluster_quota.c) are loaded on every connection before
 *   any other command, so EVALSHA finds them.
 */
#ifndef POSTHORN_CLUSTER_REDIS_H
#define POSTHORN_CLUSTER_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster_url.h"

#define CLUSTER_REDIS_TIMEOUT_MS 500

struct event_base;
struct dns;
struct redisReply;
struct cluster_redis;

/* reply: NULL when there was none (down, broken, timed out). Borrowed. */
typedef void (*cluster_redis_cb)(void *arg, const struct redisReply *reply);

/* Starts dialling u (from the loop). Never NULL. */
struct cluster_redis *cluster_redis_new(struct event_base *base, const struct cluster_url *u);
/* From now on (before the loop runs, for the first dial) a host name is
 * resolved at each dial through dns: A/AAAA on the loop, the first
 * address dialled. Without it hiredis resolves, a blocking call. dns is
 * freed after r. */
void cluster_redis_set_dns(struct cluster_redis *r, struct dns *dns);
/* Answers what is pending with NULL, then frees. */
void cluster_redis_free(struct cluster_redis *r);
/* The round trip of the last PING answered (one a second), in
 * microseconds; -1 when the link is down or none was answered yet. */
int64_t cluster_redis_ping_us(const struct cluster_redis *r);
/* 1 when the link is up. */
int cluster_redis_up(const struct cluster_redis *r);
/*
 * Sends a command (argv: argc strings of lens bytes, copied). 0: cb will
 * be called; -1: the link is down, cb will not be called.
 */
int cluster_redis_cmd(struct cluster_redis *r, cluster_redis_cb cb, void *arg, int argc,
                      const char **argv, const size_t *lens);
/* A script sent on every new connection (SCRIPT LOAD), before anything
 * else. At most CLUSTER_REDIS_SCRIPTS. */
#define CLUSTER_REDIS_SCRIPTS 5
void cluster_redis_add_script(struct cluster_redis *r, const char *lua);

/* EVALSHA sha with n_keys keys then the arguments (n strings in all, at
 * most CLUSTER_EVAL_ARGS_MAX), as cluster_redis_cmd(). */
#define CLUSTER_EVAL_ARGS_MAX 64
int cluster_redis_evalsha(struct cluster_redis *r, const char *sha, int n_keys,
                          const char *const *strs, int n, cluster_redis_cb cb, void *arg);
/* A script's answer of two integers into a and b: 1; else 0, logged as
 * event=redis_script_error what=WHAT when there was a reply. */
int cluster_redis_pair(const struct redisReply *rep, const char *what, long long *a, long long *b);
/* The SHA1 (hex) of a script, its name for EVALSHA. */
#define CLUSTER_SHA_HEX 41
void cluster_redis_sha1(const char *lua, char out[CLUSTER_SHA_HEX]);
/* fn(arg) each time the link comes up (after the scripts are queued). One. */
void cluster_redis_on_up(struct cluster_redis *r, void (*fn)(void *arg), void *arg);

#endif
