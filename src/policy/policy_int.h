/*
 * policy_int.h: what the files of src/policy/ share and nobody else sees.
 *
 *   policy.c        the module's life, policy_resolve() (gathering the
 *                   facts and deciding each host), account pools
 *   policy_sts.c    MTA-STS: TXT, cache (memory and database), fetch,
 *                   the background refresh of cached policies
 *   policy_rpt.c    TLS-RPT: the tally of session outcomes, its writes,
 *                   the periodic reports and their delivery
 *   policy_report.c TLS-RPT: the report's JSON, gzip, mail (no I/O)
 *   policy_parse.c  the text formats (PURE)
 *   https.c         HTTPS requests on the loop
 */
#ifndef POSTHORN_POLICY_INT_H
#define POSTHORN_POLICY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "log/log.h"
#include "policy/policy.h"
#include "policy/policy_parse.h"
#include "util/htable.h"

struct https;
struct rpt;
struct sts;

struct policy {
	struct policy_deps deps;
	const struct conf *conf;
	struct https *https;
	struct sts *sts;
	struct rpt *rpt;
	struct resolve *resolving; /* requests in flight */
	uint64_t next_id;
	int stopped;
	/* account pools: names[i] sends from pools[i], refreshed every second */
	char **pool_names, **pool_pools;
	size_t n_pools;
	int pools_loading;
	struct log_repeat pools_rep; /* pools_run's failures (one job at a time) */
	struct event *ev_pools;
};

/* ---- policy_sts.c ---- */

/* A policy in force for a domain, shared (refcounted) between the cache
 * and the decisions that use it. */
struct sts_snap {
	unsigned refs;
	struct sts_policy pol;
	char *text; /* the body as fetched: the report's policy-string */
	char id[STS_ID_MAX + 1];
};
void sts_snap_unref(struct sts_snap *s);

/* What MTA-STS says of a domain now: snap NULL when no policy is in force;
 * fetch_error (TLSRPT_OK: none) when a fetch failed and nothing cached
 * could stand in. */
struct sts_view {
	struct sts_snap *snap; /* borrowed: ref it to keep it */
	enum tlsrpt_result fetch_error;
	const char *why;
};
typedef void (*sts_cb)(void *arg, const struct sts_view *v);

struct sts *sts_new(struct policy *p);
void sts_free(struct sts *s);
/* The view of domain: from the cache when it is fresh and the TXT id
 * matches, else after a fetch. cb runs later, from the loop. */
uint64_t sts_get(struct sts *s, const char *domain, sts_cb cb, void *arg);
void sts_cancel(struct sts *s, uint64_t id);

/* ---- policy_rpt.c, policy_rpt_send.c ---- */

struct round;
struct rpt {
	struct policy *p;
	struct htable tally; /* of struct tally_ent (policy_rpt.c) */
	int flushing, stopped;
	uint64_t dropped; /* counts lost to the tally's bound since the last log */
	struct event *ev_flush, *ev_tick;
	struct round *round; /* the reports being made, or NULL */
};
/* The reports of the periods that ended (policy_rpt_send.c): one round at
 * a time, started by the tick. */
void rpt_round_start(struct rpt *r);
/* At exit, after the spool closed: what a round still holds. */
void rpt_round_free(struct rpt *r);
/* Seconds of a reporting period. */
int64_t rpt_interval(const struct rpt *r);

struct rpt *rpt_new(struct policy *p);
void rpt_stop(struct rpt *r);
void rpt_free(struct rpt *r); /* writes what is left, synchronously */
/* Makes pol report its session outcomes: it is for domain, whose MTA-STS
 * policy in force is snap (NULL: none). */
void rpt_attach(struct rpt *r, struct tls_dest_pol *pol, const struct sts_snap *snap);
/* One outcome that is not a session: a failed policy fetch. */
void rpt_count_fetch_error(struct rpt *r, const char *domain, enum tlsrpt_result res);

/* ---- policy_report.c ---- */

/* The report's JSON "policy" object for a host, as text: policy-type "sts"
 * (snap's body lines, its mx patterns), "tlsa" (the host's records) or
 * "no-policy-found". Malloc'd. */
char *rpt_policy_json(const char *domain, const struct sts_snap *snap,
                      const struct tls_host_pol *h);
/* The policy object of an MTA-STS policy that could not be had (fetch
 * failed): policy-type "sts", no policy-string. */
char *rpt_policy_json_sts_failed(const char *domain);

struct store_tlsrpt_row;
struct rpt_report {
	char *json;        /* the report (RFC 8460 4) */
	unsigned char *gz; /* gzipped (RFC 8460 5.1) */
	size_t gz_len;
	char *report_id, *filename; /* "SUBMITTER!DOMAIN!START!END!ID.json.gz" */
};
/* Builds the report of rows (one period of one domain) from submitter
 * (our host name). 0, or -1 with *err. */
int rpt_report_build(const char *submitter, const struct store_tlsrpt_row *rows, size_t n,
                     struct rpt_report *out, char **err);
void rpt_report_clear(struct rpt_report *r);
/* The RFC 8460 5.3 message carrying r to address to (CRLF lines). */
char *rpt_report_mail(const char *submitter, const char *domain, const char *to,
                      const struct rpt_report *r, int64_t now, size_t *len);

#endif
