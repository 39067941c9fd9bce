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

/* KEYS: the leases. ARGV: node, want, max, ttl ms. Returns {allowed,
 * held by the others}. Expired leases of other nodes go. */
static const char LEASE_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local node, want = ARGV[1], tonumber(ARGV[2])\n"
    "local max, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local others = 0\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #all, 2 do\n"
    "  if all[i] ~= node then\n"
    "    local n, exp = string.match(all[i + 1], '^(%d+):(%d+)$')\n"
    "    if n and tonumber(exp) > now then others = others + tonumber(n)\n"
    "    else redis.call('HDEL', KEYS[1], all[i]) end\n"
    "  end\n"
    "end\n"
    "local allow = math.min(want, max - others)\n"
    "if allow < 0 then allow = 0 end\n"
    "if allow > 0 then\n"
    "  redis.call('HSET', KEYS[1], node, string.format('%d:%d', allow, now + ttl))\n"
    "  redis.call('PEXPIRE', KEYS[1], ttl)\n"
    "else\n"
    "  redis.call('HDEL', KEYS[1], node)\n"
    "end\n"
    "return {allow, others}\n";

static char rate_sha[CLUSTER_SHA_HEX], lease_sha[CLUSTER_SHA_HEX];

void cluster_throttle_setup(struct cluster_redis *r)
{
	cluster_redis_sha1(RATE_LUA, rate_sha);
	cluster_redis_sha1(LEASE_LUA, lease_sha);
	cluster_redis_add_script(r, RATE_LUA);
	cluster_redis_add_script(r, LEASE_LUA);
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
	rc = cluster_redis_evalsha(r, rate_sha, 1, (const char *[]){key, per_ms, cap}, 3, on_rate,
	                           w);
	free(key);
	if (rc < 0)
		free(w);
	return rc;
}

struct lease_wait {
	cluster_lease_cb cb;
	void *arg;
};

static void on_lease(void *arg, const redisReply *rep)
{
	struct lease_wait *w = arg;
	long long allowed, others;
	int ok = cluster_redis_pair(rep, "lease", &allowed, &others) && allowed >= 0;

	w->cb(w->arg, ok, ok ? (unsigned)allowed : 0);
	free(w);
}

int cluster_conns_lease(struct cluster_redis *r, const char *dest, const char *node_id,
                        unsigned want, unsigned max, unsigned ttl_ms, cluster_lease_cb cb,
                        void *arg)
{
	char *key, nums[3][16];
	struct lease_wait *w;
	int rc;

	if (!cluster_redis_up(r))
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	key = xasprintf("posthorn:conns:{%s}", dest);
	snprintf(nums[0], sizeof(nums[0]), "%u", want);
	snprintf(nums[1], sizeof(nums[1]), "%u", max);
	snprintf(nums[2], sizeof(nums[2]), "%u", ttl_ms);
	rc = cluster_redis_evalsha(r, lease_sha, 1,
	                           (const char *[]){key, node_id, nums[0], nums[1], nums[2]}, 5,
	                           on_lease, w);
	free(key);
	if (rc < 0)
		free(w);
	return rc;
}
