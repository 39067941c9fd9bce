/*
 * sched_cluster: a destination's max_rate shared by every node through
 * Redis (docs/cluster.md, "Redis"). Loop thread only.
 *
 * Before each transaction to a destination with max_rate, the node asks
 * Redis's bucket for that destination (one per name: every lane and every
 * node draws from it) for one token, and waits for the answer without
 * blocking (the destination is pumped again when it comes). No token: the
 * bucket says when one is due, and the destination waits that long.
 * Redis configured but unreachable (down, or no answer within the
 * timeout): the node uses its own bucket at max_rate/N (N = [cluster]
 * nodes), logged once (event=throttle_fallback, then event=throttle_shared)
 * and counted in /metrics, and asks Redis again a second later.
 *
 * max_connections the same way, with leases: before opening more
 * connections than Redis leased it, the node asks for the total it wants
 * (cluster_conns_lease) and opens what it gets when the answer comes;
 * while a request is out it opens no more than it asked for (the answer
 * may lower the lease to that). Every LEASE_RENEW_MS it asks again for
 * the connections open or closing (a QUIT keeps its slot until the peer
 * has closed: sched_dest.c), giving back the rest; a lease not renewed
 * lapses after LEASE_TTL_MS, so a node that dies frees its share.
 * Alone: max_connections/N (at least 1).
 */
#include <event2/event.h>
#include <stdlib.h>

#include "cluster/cluster_throttle.h"
#include "conf/conf.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "sched/sched_int.h"

#define RATE_RETRY_MS  1000 /* after a failed answer: alone for this long */
#define RATE_ASK_MS    1000 /* a pump while waiting for Redis: again after this */
#define LEASE_TTL_MS   15000
#define LEASE_RENEW_MS 5000
#define LEASE_RETRY_MS 250 /* granted less than asked: ask again after this */

static void note_mode(struct sched *s, int local)
{
	if (local)
		metrics_inc_l(M_CLUSTER_FALLBACK, ML_THROTTLE);
	if (local && !s->rate_fallback)
		log_warn("event=throttle_fallback reason=redis_unreachable share=1/%llu",
		         (unsigned long long)s->deps.nodes);
	else if (!local && s->rate_fallback)
		log_info("event=throttle_shared");
	s->rate_fallback = local;
}

/* Alone: this node's bucket at max_rate/N (at least 1 per period). */
static int take_local(struct dest *d, int64_t *wait_ms)
{
	uint64_t n = d->s->deps.nodes > 1 ? d->s->deps.nodes : 1;
	uint64_t rate = d->lim->max_rate / n ? d->lim->max_rate / n : 1;

	note_mode(d->s, 1);
	return sched_bucket_take(&d->rate, rate, d->lim->max_rate_period, SCHED_RATE_BURST,
	                         sched_now_ms(), wait_ms);
}

static void on_token(void *arg, int ok, int granted, int64_t wait_ms)
{
	struct dest *d = arg;
	int64_t now = sched_now_ms();

	d->rate_asking = 0;
	if (!ok) {
		d->rate_local_ms = now + RATE_RETRY_MS;
	} else {
		note_mode(d->s, 0);
		d->rate_token = granted;
		d->rate_due_ms = granted ? 0 : now + (wait_ms > 0 ? wait_ms : 1);
	}
	sched_dest_pump_later(d, ok && !granted ? d->rate_due_ms - now : 0);
}

int sched_rate_shared(struct dest *d, int64_t *wait_ms)
{
	struct cluster_redis *r = d->s->deps.redis;
	int64_t now = sched_now_ms();

	if (d->rate_token) {
		d->rate_token = 0;
		return 1;
	}
	if (d->rate_asking) {
		*wait_ms = RATE_ASK_MS; /* the answer pumps sooner */
		return 0;
	}
	if (now < d->rate_local_ms || !cluster_redis_up(r))
		return take_local(d, wait_ms);
	if (now < d->rate_due_ms) {
		*wait_ms = d->rate_due_ms - now;
		return 0;
	}
	if (cluster_rate_take(r, d->name, d->lim->max_rate, d->lim->max_rate_period,
	                      SCHED_RATE_BURST, on_token, d) < 0)
		return take_local(d, wait_ms);
	d->rate_asking = 1;
	*wait_ms = RATE_ASK_MS;
	return 0;
}

/* ---- max_connections ---- */

static int conns_shared(const struct dest *d)
{
	return d->s->deps.redis && d->s->deps.node_id && d->lim->max_connections > 0;
}

struct lease_ask {
	struct dest *d;
	unsigned total;
};

static void on_lease(void *arg, int ok, unsigned allowed)
{
	struct lease_ask *a = arg;
	struct dest *d = a->d;
	int64_t now = sched_now_ms();

	d->conn_asking = 0;
	if (!ok) {
		d->conn_local_ms = now + RATE_RETRY_MS;
	} else {
		note_mode(d->s, 0);
		d->conn_allow = allowed;
		if (allowed < a->total) /* the others hold the rest: not in a loop */
			d->conn_retry_ms = now + LEASE_RETRY_MS;
	}
	free(a);
	sched_dest_pump_later(d, 0);
}

static void ask_lease(struct dest *d, unsigned total)
{
	struct lease_ask *a = xcalloc(1, sizeof(*a));

	a->d = d;
	a->total = total;
	if (cluster_conns_lease(d->s->deps.redis, d->name, d->s->deps.node_id, total,
	                        (unsigned)d->lim->max_connections, LEASE_TTL_MS, on_lease, a) < 0) {
		free(a);
		d->conn_local_ms = sched_now_ms() + RATE_RETRY_MS;
	} else {
		d->conn_asking = 1;
		d->conn_asked = total;
	}
}

/* The share this node may hold now: its lease, or max/N alone. */
static unsigned conns_allowed(struct dest *d, unsigned total)
{
	uint64_t n = d->s->deps.nodes > 1 ? d->s->deps.nodes : 1;
	int64_t now = sched_now_ms();

	if (now < d->conn_local_ms || !cluster_redis_up(d->s->deps.redis)) {
		note_mode(d->s, 1);
		return (unsigned)(d->lim->max_connections / n ? d->lim->max_connections / n : 1);
	}
	if (total > d->conn_allow && !d->conn_asking) {
		if (now >= d->conn_retry_ms)
			ask_lease(d, total);
		else
			sched_dest_pump_later(d, d->conn_retry_ms - now);
	}
	/* an answer may lower the lease to what was asked: no more till then */
	if (d->conn_asking && d->conn_asked < d->conn_allow)
		return d->conn_asked;
	return d->conn_allow;
}

unsigned sched_conns_cap(struct dest *d, unsigned have, unsigned want)
{
	unsigned allow;

	if (!conns_shared(d) || !want)
		return want;
	allow = conns_allowed(d, have + want);
	if (have >= allow)
		return 0;
	return want < allow - have ? want : allow - have;
}

/* Every lease held is asked again for what is in use now. */
static void on_renew(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct htable_iter it;
	struct dest *d;

	if (!cluster_redis_up(s->deps.redis))
		return;
	htable_iter_init(&it, &s->dests);
	while ((d = sched_dest_next(&it)))
		if (conns_shared(d) && d->conn_allow && !d->conn_asking)
			ask_lease(d, d->n_conns + d->n_closing);
}

void sched_leases_start(struct sched *s)
{
	struct timeval tv = {LEASE_RENEW_MS / 1000, 0};

	if (!s->deps.redis)
		return;
	s->ev_leases = event_new(s->deps.base, -1, EV_PERSIST, on_renew, s);
	event_add(s->ev_leases, &tv);
}

void sched_leases_free(struct sched *s)
{
	if (s->ev_leases)
		event_free(s->ev_leases);
	s->ev_leases = NULL;
}
