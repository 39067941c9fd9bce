/*
 * cluster_beat: this node's heartbeat in the nodes table (store_nodes.c;
 * docs/cluster.md "Cluster status").
 *
 * Every STORE_NODE_BEAT_S seconds (and once at start) the loop takes a
 * snapshot (the scheduler's queue counts, the Redis link's last PING
 * round trip) and hands it to the work pool, where store_node_beat()
 * measures the database's round trip and writes the row: the store's
 * calls block, the loop never does. One beat at a time: a beat still
 * running when the next is due skips that one. A failed write is logged
 * once until a beat succeeds again. cluster_beat_stop() marks the row
 * stopped, on the caller's thread, after the work pool has stopped.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/cluster_redis.h"
#include "log/log.h"
#include "sched/sched.h"
#include "store/store.h"
#include "store/store_nodes.h"
#include "work/work.h"

struct cluster_beat {
	struct cluster_beat_deps d;
	struct event *ev;
	int64_t started_at;
	int busy;    /* a beat is on the work pool */
	int failing; /* the last beat failed (logged) */
	struct store_node row;
	char *err;
};

static void beat_work(void *arg)
{
	struct cluster_beat *b = arg;

	free(b->err);
	b->err = NULL;
	if (store_node_beat(b->d.store, &b->row, &b->err) < 0 && !b->err)
		b->err = xstrdup("unknown error");
}

static void beat_done(void *arg)
{
	struct cluster_beat *b = arg;

	b->busy = 0;
	if (b->err && !b->failing)
		log_warn("event=node_beat_error node=%s error=%s", b->row.id, log_q(b->err));
	else if (!b->err && b->failing)
		log_info("event=node_beat_ok node=%s", b->row.id);
	b->failing = b->err != NULL;
}

static void snapshot(struct cluster_beat *b)
{
	struct sched_stats ss;

	memset(&ss, 0, sizeof(ss));
	if (b->d.sched)
		sched_get_stats(b->d.sched, &ss);
	b->row.messages = (int64_t)ss.messages;
	b->row.recipients = b->d.sched ? (int64_t)sched_open_recipients(b->d.sched) : 0;
	b->row.redis_us = cluster_redis_ping_us(b->d.redis);
	b->row.started_at = b->started_at;
	b->row.beat_at = clock_now_s();
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct cluster_beat *b = arg;

	(void)fd;
	(void)what;
	if (b->busy)
		return;
	snapshot(b);
	b->busy = 1;
	work_submit(b->d.work, beat_work, beat_done, b);
}

struct cluster_beat *cluster_beat_start(const struct cluster_beat_deps *d)
{
	struct cluster_beat *b = xcalloc(1, sizeof(*b));
	struct timeval tv = {STORE_NODE_BEAT_S, 0};

	b->d = *d;
	b->started_at = clock_now_s();
	b->row.id = (char *)d->node_id;
	b->row.hostname = (char *)d->hostname;
	b->row.version = (char *)POSTHORN_VERSION;
	b->ev = event_new(d->base, -1, EV_PERSIST, on_tick, b);
	event_add(b->ev, &tv);
	on_tick(-1, 0, b);
	return b;
}

void cluster_beat_stop(struct cluster_beat *b)
{
	char *err = NULL;

	if (!b)
		return;
	event_free(b->ev);
	if (store_node_stop(b->d.store, b->row.id, clock_now_s(), &err) < 0) {
		log_warn("event=node_stop_error node=%s error=%s", b->row.id, log_q(err));
		free(err);
	}
	free(b->err);
	free(b);
}
