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
 *
 * With claim_tag (PostgreSQL), each beat also renews the node's claim on
 * its queue-ID tag (store_node_tag_claim, as at start). A node whose beats
 * stalled for STORE_NODE_STALE_S may have lost the tag to a new node; its
 * next beat finds that out, logs event=node_tag_lost at error level, sets
 * the gauge posthorn_node_tag_lost and the flag cluster_tag_lost(), which
 * refuses new mail (queue IDs must stay unique in the cluster) until a
 * beat gets the tag back (the other node stopped or gone 15 s).
 *
 * Each process draws an instance token at start and writes it with its
 * row; each beat reads the row's token before writing (store_node_beat).
 * Another token there, after this process has written once, means a
 * second live process runs with this node ID (a copied data dir): logged
 * event=node_id_clash at error level, the gauge posthorn_node_id_clash
 * and cluster_id_clash() set, new mail refused as for a lost tag, until
 * the other has not written for STORE_NODE_STALE_S (or stopped cleanly).
 * The first beat does not judge: another live token then is as likely a
 * process killed just before this start, which never writes again. A
 * stop marks the row stopped only if this process wrote it last.
 */
#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "cluster/cluster_redis.h"
#include "log/log.h"
#include "metrics/metrics.h"
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
	char *holder;      /* the tag's holder, when the beat's claim found another */
	int claimed;       /* the beat's claim: 1 ours, 0 another's, -1 not made */
	char instance[17]; /* this process's token: 16 hex digits */
	int wrote;         /* a beat of this process has written the row */
	int64_t other_at;  /* another process's last write seen; 0: none */
	int clash;         /* the beat's judgment: another process writes */
	char *other_host;  /* its host */
};

static _Atomic int tag_lost;
static _Atomic int id_clash;

int cluster_id_clash(void)
{
	return atomic_load(&id_clash);
}

int cluster_tag_lost(void)
{
	return atomic_load(&tag_lost);
}

static store_node_judge judge;

static void beat_work(void *arg)
{
	struct cluster_beat *b = arg;
	struct store_node prev = {0};

	free(b->err);
	free(b->holder);
	b->err = b->holder = NULL;
	b->claimed = -1;
	if (store_node_beat(b->d.store, &b->row, &prev, judge, b, &b->err) < 0 && !b->err)
		b->err = xstrdup("unknown error");
	store_node_clear(&prev);
	if (!b->err && b->d.claim_tag &&
	    (b->claimed = store_node_tag_claim(b->d.store, b->row.id, b->row.beat_at, &b->holder,
	                                       &b->err)) < 0 &&
	    !b->err)
		b->err = xstrdup("unknown error");
}

/* The tag's state after a claim: logged when it changes. */
static void tag_seen(struct cluster_beat *b)
{
	int lost = b->claimed == 0;

	if (b->claimed < 0 || lost == atomic_load(&tag_lost))
		return;
	atomic_store(&tag_lost, lost);
	metrics_set(M_NODE_TAG_LOST, lost);
	if (lost)
		log_err("event=node_tag_lost tag=%.3s node=%s held_by=%s hint=%s", b->row.id,
		        b->row.id, log_q(b->holder),
		        log_q("this node's heartbeats stalled and another node took its queue-ID "
		              "tag: new mail is refused (451 4.3.0) until the tag is free again; "
		              "stop one of the two nodes"));
	else
		log_info("event=node_tag_regained tag=%.3s node=%s", b->row.id, b->row.id);
}

/* What the row held before this beat: another process's write since this
 * one's last (its time and host kept), or its clean stop (forgotten). */
static void other_seen(struct cluster_beat *b, const struct store_node *p)
{
	if (!b->wrote || !p->instance || strcmp(p->instance, b->instance) == 0)
		return;
	if (p->stopped_at >= 0) {
		b->other_at = 0;
		return;
	}
	b->other_at = p->beat_at;
	free(b->other_host);
	b->other_host = xstrdup(p->hostname);
}

/* Between the beat's read and write (store_node_judge, on the work pool,
 * the loop leaving b alone while busy): the row written carries the
 * clash as this beat sees it. */
static void judge(void *arg, const struct store_node *prev, struct store_node *n)
{
	struct cluster_beat *b = arg;

	other_seen(b, prev);
	b->clash = b->other_at > 0 && n->beat_at - b->other_at < STORE_NODE_STALE_S;
	n->clash_host = b->clash ? b->other_host : NULL;
}

/* Two live processes with this node ID: logged when it changes. */
static void clash_seen(struct cluster_beat *b)
{
	b->wrote = 1;
	if (b->clash == atomic_load(&id_clash))
		return;
	atomic_store(&id_clash, b->clash);
	metrics_set(M_NODE_ID_CLASH, b->clash);
	if (b->clash)
		log_err(
		    "event=node_id_clash node=%s other_host=%s hint=%s", b->row.id,
		    log_q(b->other_host),
		    log_q("another running process has this node's ID (a copied data dir?): "
		          "new mail is refused (451 4.3.0) until one stops; give the copy a new "
		          "ID by removing its DATA_DIR/node-id"));
	else
		log_info("event=node_id_clash_end node=%s", b->row.id);
}

static void beat_done(void *arg)
{
	struct cluster_beat *b = arg;

	b->busy = 0;
	tag_seen(b);
	if (!b->err)
		clash_seen(b);
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

/* A random token for this process (its pid and the clock if the kernel
 * gives no random bytes). */
static void make_instance(char out[17])
{
	uint64_t r;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = clock_mono_us() ^ ((uint64_t)getpid() << 40);
	snprintf(out, 17, "%016llx", (unsigned long long)r);
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
	make_instance(b->instance);
	b->row.instance = b->instance;
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
	if (store_node_stop(b->d.store, b->row.id, b->instance, clock_now_s(), &err) < 0) {
		log_warn("event=node_stop_error node=%s error=%s", b->row.id, log_q(err));
		free(err);
	}
	free(b->err);
	free(b->holder);
	free(b->other_host);
	free(b);
}
