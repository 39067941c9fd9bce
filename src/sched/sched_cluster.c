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
 */
#include "cluster/cluster_throttle.h"
#include "conf/conf.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "sched/sched_int.h"

#define RATE_RETRY_MS 1000 /* after a failed answer: alone for this long */
#define RATE_ASK_MS   1000 /* a pump while waiting for Redis: again after this */

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
