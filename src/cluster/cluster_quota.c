/*
 * cluster_quota: the quota scripts and their calls. Contract in
 * cluster_quota.h.
 */
#include "cluster/cluster_quota.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "util/util.h"

/* KEYS: hour and day counters. ARGV: n, all, hour limit, day limit, hour
 * TTL, day TTL, hour owed, day owed. The owed counts are added first (a
 * counter's expiry kept, set when it has none). Returns {granted, period
 * over (-1 none)}; the day is named first when both refuse (its reset is
 * the later one). */
static const char RESERVE_LUA[] =
    "for i = 1, 2 do\n"
    "  local o = tonumber(ARGV[6 + i])\n"
    "  if o > 0 then\n"
    "    redis.call('INCRBY', KEYS[i], o)\n"
    "    if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[4 + i]) end\n"
    "  end\n"
    "end\n"
    "local n = tonumber(ARGV[1])\n"
    "local g, over = n, -1\n"
    "for i = 2, 1, -1 do\n"
    "  local lim = tonumber(ARGV[2 + i])\n"
    "  if lim > 0 then\n"
    "    local room = lim - tonumber(redis.call('GET', KEYS[i]) or '0')\n"
    "    if room < 0 then room = 0 end\n"
    "    if room < n and over < 0 then over = i - 1 end\n"
    "    if room < g then g = room end\n"
    "  end\n"
    "end\n"
    "if ARGV[2] == '1' and g < n then g = 0 end\n"
    "if g > 0 then\n"
    "  for i = 1, 2 do\n"
    "    redis.call('INCRBY', KEYS[i], g)\n"
    "    redis.call('EXPIRE', KEYS[i], ARGV[4 + i])\n"
    "  end\n"
    "end\n"
    "return {g, over}\n";

/* KEYS: the counters. ARGV: n. Never below 0, never a counter made. */
static const char RELEASE_LUA[] = "for i = 1, 2 do\n"
                                  "  if redis.call('EXISTS', KEYS[i]) == 1 then\n"
                                  "    if redis.call('DECRBY', KEYS[i], ARGV[1]) < 0 then\n"
                                  "      redis.call('SET', KEYS[i], 0, 'KEEPTTL')\n"
                                  "    end\n"
                                  "  end\n"
                                  "end\n"
                                  "return 1\n";

static char reserve_sha[CLUSTER_SHA_HEX], release_sha[CLUSTER_SHA_HEX];

void cluster_quota_setup(struct cluster_redis *r)
{
	cluster_redis_sha1(RESERVE_LUA, reserve_sha);
	cluster_redis_sha1(RELEASE_LUA, release_sha);
	cluster_redis_add_script(r, RESERVE_LUA);
	cluster_redis_add_script(r, RELEASE_LUA);
}

struct ask_wait {
	cluster_quota_cb cb;
	void *arg;
};

static void on_reserved(void *arg, const redisReply *rep)
{
	struct ask_wait *w = arg;
	long long g, over;
	int ok = cluster_redis_pair(rep, "quota", &g, &over) && g >= 0;

	w->cb(w->arg, ok, ok ? (uint64_t)g : 0, ok ? (int)over : -1);
	free(w);
}

/* The two counters' keys of account for windows start[]. */
static void keys_of(const char *account, const int64_t start[2], char *k[2])
{
	k[0] = xasprintf("posthorn:quota:{%s}:h:%lld", account, (long long)start[0]);
	k[1] = xasprintf("posthorn:quota:{%s}:d:%lld", account, (long long)start[1]);
}

static int send_script(struct cluster_redis *r, const char *sha, char *k[2], char **args,
                       int n_args, cluster_redis_cb cb, void *arg)
{
	const char *strs[10] = {k[0], k[1]};
	int rc;

	for (int i = 0; i < n_args; i++)
		strs[2 + i] = args[i];
	rc = cluster_redis_evalsha(r, sha, 2, strs, 2 + n_args, cb, arg);
	free(k[0]);
	free(k[1]);
	for (int i = 0; i < n_args; i++)
		free(args[i]);
	return rc;
}

int cluster_quota_reserve(struct cluster_redis *r, const struct cluster_quota_ask *q,
                          cluster_quota_cb cb, void *arg)
{
	struct ask_wait *w;
	char *k[2], *args[8];

	if (!cluster_redis_up(r))
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	keys_of(q->account, q->start, k);
	args[0] = xasprintf("%llu", (unsigned long long)q->n);
	args[1] = xasprintf("%d", q->all ? 1 : 0);
	args[2] = xasprintf("%llu", (unsigned long long)q->limit[0]);
	args[3] = xasprintf("%llu", (unsigned long long)q->limit[1]);
	args[4] = xasprintf("%lld", (long long)q->ttl[0]);
	args[5] = xasprintf("%lld", (long long)q->ttl[1]);
	args[6] = xasprintf("%llu", (unsigned long long)q->owed[0]);
	args[7] = xasprintf("%llu", (unsigned long long)q->owed[1]);
	if (send_script(r, reserve_sha, k, args, 8, on_reserved, w) < 0) {
		free(w);
		return -1;
	}
	return 0;
}

static void on_released(void *arg, const redisReply *rep)
{
	if (!rep || rep->type == REDIS_REPLY_ERROR)
		log_warn("event=redis_quota_release_error error=%s",
		         log_q(rep ? rep->str : "no answer"));
}

void cluster_quota_release(struct cluster_redis *r, const char *account, const int64_t start[2],
                           uint64_t n)
{
	char *k[2], *args[1];

	if (!n || !cluster_redis_up(r))
		return;
	keys_of(account, start, k);
	args[0] = xasprintf("%llu", (unsigned long long)n);
	send_script(r, release_sha, k, args, 1, on_released, NULL);
}
