/*
 * metrics: the registry behind GET /metrics. A fixed set of families
 * (counters, gauges, histograms), each with at most two labels whose values
 * are known in advance, stored as arrays of relaxed atomics.
 *
 * Promises:
 * - metrics_inc/add/set/observe cost one to three relaxed atomic adds: no
 *   lock, no allocation, safe from any thread. An out-of-range label index
 *   is ignored (and counted nowhere), never a crash.
 * - A family's storage exists from metrics_init() on. Families whose label
 *   values are only known at run time (the HTTP routes) get them once with
 *   metrics_bind_labels(), before the first increment of that family.
 * - metrics_render() writes the Prometheus text exposition format 0.0.4,
 *   every family with HELP and TYPE, names prefixed posthorn_. A
 *   histogram's _count is the sum of its buckets in the same snapshot, so
 *   the +Inf bucket and _count always agree.
 *
 * docs/metrics.md lists every family and who increments it.
 */
#ifndef POSTHORN_METRICS_H
#define POSTHORN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* Every family. The names are in metrics.c's table, in this order. */
enum metric_id {
	M_MESSAGES_ACCEPTED,    /* counter{source} */
	M_MESSAGES_DELIVERED,   /* counter */
	M_MESSAGES_DEFERRED,    /* counter{class} */
	M_MESSAGES_BOUNCED,     /* counter{class} */
	M_SMTP_SESSIONS,        /* counter{direction} */
	M_TLS_HANDSHAKES,       /* counter{direction, result} */
	M_DNS_LATENCY,          /* histogram, seconds */
	M_SPOOL_COMMIT_LATENCY, /* histogram, seconds */
	M_DELIVERY_LATENCY,     /* histogram, seconds from acceptance to delivery */
	M_QUEUE_MESSAGES,       /* gauge */
	M_QUEUE_RECIPIENTS,     /* gauge{state} */
	M_QUEUE_OLDEST_AGE,     /* gauge, seconds */
	M_OUTBOUND_CONNECTIONS, /* gauge */
	M_SPOOL_COMMITS,        /* counter, copied from spool_get_stats() */
	M_SPOOL_FSYNCS,         /* counter, copied from spool_get_stats() */
	M_HTTP_REQUESTS,        /* counter{route, code}; routes bound at run time */
	M_HTTP_CONNECTIONS,     /* gauge */
	M_EVENTS_WRITTEN,       /* counter */
	M_EVENTS_DROPPED,       /* counter */
	M_EVENTS_QUEUE_BYTES,   /* gauge */
	M_WEBHOOK_REQUESTS,     /* counter{result} */
	M_WEBHOOK_DROPPED,      /* counter */
	M_REDIS_UP,             /* gauge: 1 when the [cluster] redis link is up */
	M_CLUSTER_FALLBACK,     /* counter{limit}: decisions on local 1/N limits */
	M_NODE_TAG_LOST,        /* gauge: 1 while another node holds this node's tag */
	M_NODE_ID_CLASH,        /* gauge: 1 while another process runs with this node's ID */
	M_COUNT
};

/* Label values of the families above, as indexes. */
enum metric_source { MS_SMTP, MS_HTTP, MS_DSN, MS_COUNT };
enum metric_direction { MD_INBOUND, MD_OUTBOUND, MD_COUNT };
enum metric_result { MRES_OK, MRES_FAILED, MRES_COUNT };
enum metric_limit { ML_QUOTA, ML_THROTTLE, ML_REPUTATION, ML_COUNT };
enum metric_queue_state { MQ_READY, MQ_DEFERRED, MQ_ACTIVE, MQ_COUNT };
/* The subject of an RFC 3463 status (X.SUBJECT.Y), or other. */
enum metric_reason {
	MR_OTHER,    /* no status, or X.0.Y */
	MR_ADDRESS,  /* X.1.Y */
	MR_MAILBOX,  /* X.2.Y */
	MR_SYSTEM,   /* X.3.Y */
	MR_NETWORK,  /* X.4.Y (routing, connections, expiry) */
	MR_PROTOCOL, /* X.5.Y */
	MR_CONTENT,  /* X.6.Y */
	MR_POLICY,   /* X.7.Y (security, policy, spam) */
	MR_COUNT
};

/* PURE: the reason class of an enhanced status code such as "5.1.1";
 * MR_OTHER for NULL or anything else. */
enum metric_reason metrics_reason_class(const char *status);

/* The HTTP status codes counted; any other code is counted as "other". */
size_t metrics_http_code_index(int code);

/* Allocates every family's storage. Call once, before threads start. */
void metrics_init(void);
/* Frees it (tests, exit). */
void metrics_free(void);
/* Zeroes every value (tests). */
void metrics_reset(void);

/* Gives label `label` (0 or 1) of family id its values (strings that must
 * outlive the registry) and (re)allocates the family's storage. Call before
 * the first increment, from the thread that increments. */
void metrics_bind_labels(enum metric_id id, int label, const char *const *values, size_t n);

void metrics_add(enum metric_id id, uint64_t n);
void metrics_add_l(enum metric_id id, size_t l0, uint64_t n);
void metrics_add_l2(enum metric_id id, size_t l0, size_t l1, uint64_t n);
#define metrics_inc(id)            metrics_add((id), 1)
#define metrics_inc_l(id, l0)      metrics_add_l((id), (l0), 1)
#define metrics_inc_l2(id, l0, l1) metrics_add_l2((id), (l0), (l1), 1)

/* Gauges (and counters whose truth is kept elsewhere, copied at scrape). */
void metrics_set(enum metric_id id, int64_t v);
void metrics_set_l(enum metric_id id, size_t l0, int64_t v);

/* Histograms: one observation, in microseconds. */
void metrics_observe_us(enum metric_id id, uint64_t us);

/* Reads one series (tests; histograms: the observation count). */
int64_t metrics_get(enum metric_id id, size_t l0, size_t l1);

/* Appends the whole exposition to out. */
void metrics_render(struct buf *out);

/* The Content-Type of metrics_render()'s output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4"

#endif
