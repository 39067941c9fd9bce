/*
 * cluster_rep: the shared reputation windows. Contract in cluster_rep.h.
 */
#include "cluster/cluster_rep.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "util/util.h"

/* KEYS: the account's hash. ARGV: first slot start inside the window, slot
 * width, now, since, TTL, then per slot: start and its four counts.
 * Returns {volume, hard, complained} over the window.
 * A resume newer than the hash's field 'r' drops every count before it
 * (the slot holding the resume too, which would give back the counts that
 * paused the account) and records it; what nodes push after it is kept. */
static const char PUSH_LUA[] =
    "local first, w = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local now, since = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if since > tonumber(redis.call('HGET', KEYS[1], 'r') or '0') then\n"
    "  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do redis.call('HDEL', KEYS[1], f) end\n"
    "  redis.call('HSET', KEYS[1], 'r', since)\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
    "end\n"
    "for i = 6, #ARGV, 5 do\n"
    "  for o = 0, 3 do\n"
    "    local n = tonumber(ARGV[i + 1 + o])\n"
    "    if n > 0 then redis.call('HINCRBY', KEYS[1], ARGV[i] .. ':' .. o, n) end\n"
    "  end\n"
    "end\n"
    "if #ARGV > 5 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end\n"
    "local s = {0, 0, 0, 0}\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #all, 2 do\n"
    "  local c = string.find(all[i], ':', 1, true)\n"
    "  if c then\n"
    "    local st = tonumber(string.sub(all[i], 1, c - 1))\n"
    "    local o = tonumber(string.sub(all[i], c + 1))\n"
    "    if st < first then redis.call('HDEL', KEYS[1], all[i])\n"
    "    elseif st <= now then s[o + 1] = s[o + 1] + tonumber(all[i + 1]) end\n"
    "  end\n"
    "end\n"
    "return {s[1] + s[2], s[3], s[4]}\n";

static char push_sha[CLUSTER_SHA_HEX];

void cluster_rep_setup(struct cluster_redis *r)
{
	cluster_redis_sha1(PUSH_LUA, push_sha);
	cluster_redis_add_script(r, PUSH_LUA);
}

struct push_wait {
	cluster_rep_cb cb;
	void *arg;
};

static int sums_of(const redisReply *rep, long long v[3])
{
	int ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3;

	for (size_t i = 0; ok && i < 3; i++)
		ok = rep->element[i]->type == REDIS_REPLY_INTEGER && rep->element[i]->integer >= 0;
	if (rep && !ok)
		log_warn("event=redis_script_error what=reputation error=%s",
		         log_q(rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply"));
	for (size_t i = 0; i < 3; i++)
		v[i] = ok ? rep->element[i]->integer : 0;
	return ok;
}

static void on_pushed(void *arg, const redisReply *rep)
{
	struct push_wait *w = arg;
	long long v[3];
	int ok = sums_of(rep, v);

	w->cb(w->arg, ok, (uint64_t)v[0], (uint64_t)v[1], (uint64_t)v[2]);
	free(w);
}

/* The script's arguments (after the key) into strs[1..]: their count. */
static int args_of(const struct cluster_rep_push *p, char *strs[])
{
	int n = 0;

	strs[n++] = xasprintf("%lld", (long long)p->first);
	strs[n++] = xasprintf("%lld", (long long)p->width);
	strs[n++] = xasprintf("%lld", (long long)p->now);
	strs[n++] = xasprintf("%lld", (long long)p->since);
	strs[n++] = xasprintf("%llu", (unsigned long long)p->window + 60);
	for (size_t i = 0; i < p->n && i < CLUSTER_REP_PUSH_MAX; i++) {
		strs[n++] = xasprintf("%lld", (long long)p->d[i].start);
		for (int o = 0; o < CLUSTER_REP_OUTCOMES; o++)
			strs[n++] = xasprintf("%llu", (unsigned long long)p->d[i].n[o]);
	}
	return n;
}

int cluster_rep_push(struct cluster_redis *r, const struct cluster_rep_push *p, cluster_rep_cb cb,
                     void *arg)
{
	char *strs[CLUSTER_EVAL_ARGS_MAX];
	struct push_wait *w;
	int n, rc;

	if (!cluster_redis_up(r) || p->width <= 0)
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	strs[0] = xasprintf("posthorn:rep:{%s}:%llu", p->account, (unsigned long long)p->window);
	n = 1 + args_of(p, strs + 1);
	rc = cluster_redis_evalsha(r, push_sha, 1, (const char *const *)strs, n, on_pushed, w);
	for (int i = 0; i < n; i++)
		free(strs[i]);
	if (rc < 0)
		free(w);
	return rc;
}
