/*
 * cluster_throttle: the shared rate bucket. Contract in cluster_throttle.h.
 */
#include "cluster/cluster_throttle.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "util/util.h"

/* KEYS: the bucket. ARGV: tokens per ms, capacity. Returns {granted,
 * wait ms}. Redis's clock, so that nodes' clocks do not matter. */
static const char RATE_LUA[] =
    "local per_ms, cap = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local b = redis.call('HMGET', KEYS[1], 'tok', 'ts')\n"
    "local tok = tonumber(b[1]) or cap\n"
    "local ts = tonumber(b[2]) or now\n"
    "if now > ts then tok = math.min(cap, tok + (now - ts) * per_ms) end\n"
    "local g, wait = 0, 0\n"
    "if tok >= 1 then g = 1; tok = tok - 1 else wait = math.ceil((1 - tok) / per_ms) end\n"
    "redis.call('HSET', KEYS[1], 'tok', tostring(tok), 'ts', tostring(now))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(cap / per_ms) + 1000)\n"
    "return {g, wait}\n";

static char rate_sha[CLUSTER_SHA_HEX];

void cluster_throttle_setup(struct cluster_redis *r)
{
	cluster_redis_sha1(RATE_LUA, rate_sha);
	cluster_redis_add_script(r, RATE_LUA);
}

struct rate_wait {
	cluster_rate_cb cb;
	void *arg;
};

static void on_rate(void *arg, const redisReply *rep)
{
	struct rate_wait *w = arg;
	long long g, wait;
	int ok = cluster_redis_pair(rep, "rate", &g, &wait);

	w->cb(w->arg, ok, g > 0, wait);
	free(w);
}

int cluster_rate_take(struct cluster_redis *r, const char *dest, uint64_t max_rate,
                      uint64_t period_s, unsigned burst, cluster_rate_cb cb, void *arg)
{
	char *key, per_ms[32], cap[24];
	const char *argv[6];
	size_t lens[6];
	struct rate_wait *w;
	int rc;

	if (!cluster_redis_up(r) || !max_rate || !period_s)
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	key = xasprintf("posthorn:rate:{%s}", dest);
	snprintf(per_ms, sizeof(per_ms), "%.17g", (double)max_rate / ((double)period_s * 1000.0));
	snprintf(cap, sizeof(cap), "%llu",
	         (unsigned long long)(burst && burst < max_rate ? burst : max_rate));
	argv[0] = "EVALSHA";
	argv[1] = rate_sha;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = per_ms;
	argv[5] = cap;
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	rc = cluster_redis_cmd(r, on_rate, w, 6, argv, lens);
	free(key);
	if (rc < 0)
		free(w);
	return rc;
}
