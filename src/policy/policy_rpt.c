/*
 * policy_rpt: TLS-RPT (RFC 8460) for the delivery engine.
 *
 * Counting: a route whose domain publishes _smtp._tls TXT gets a report
 * hook (rpt_attach). Each session outcome is tallied in memory on the loop
 * (domain, period, policy, result, and for failures the addresses and MX
 * name), and a work-pool job adds the tally to tls_rpt_counts every
 * second, in one transaction; a failed write is merged back and retried.
 * So a restart loses nothing but, after a crash, the last second. While
 * writes fail, at most RPT_TALLY_MAX keys are held; counts of new keys
 * beyond are dropped (and the drops logged), counts of held keys still add.
 *
 * Periods are [k * tls_rpt_interval, (k + 1) * tls_rpt_interval) in unix
 * time: with the default 24h, UTC days as RFC 8460 4.1 expects.
 *
 * Reporting: every RPT_TICK (a quarter of the interval, 1 to 60 seconds)
 * a round takes the periods that ended RPT_GRACE_S ago and are not done,
 * oldest first, and for each, one after the other:
 *   _smtp._tls TXT again (no record now: the period is done, unsent) ->
 *   the report built from the counts on the work pool (policy_report.c),
 *   with the message for each mailto: address written into a new spool
 *   file there too -> each address not yet served: mailto: committed to
 *   the spool (and indexed: the queue delivers it), https: POSTed
 *   (application/tlsrpt+gzip) -> each outcome recorded in tls_rpt_sent ->
 *   when every address got it (or gave up after RPT_MAX_ATTEMPTS, spaced
 *   by a doubling delay), the period is done.
 * tls_rpt_sent is what makes a report go once per address across
 * restarts: an address recorded "sent" is never served again.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "log/log.h"
#include "policy/https.h"
#include "policy/policy_int.h"
#include "spool/spool.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

#define RPT_FIELDS    6      /* domain, policy, result, src, mx, ip */
#define RPT_TALLY_MAX 100000 /* keys held while the database does not take them */

/* ---------- the tally ---------- */

struct tally_ent {
	struct htable_node hn;
	char *buf; /* the six fields, each NUL-terminated, one after the other */
	size_t len;
	struct store_tlsrpt_count c; /* strings point into buf */
};

struct tally_key {
	const char *buf;
	size_t len;
	int64_t start;
};

static int tally_match(const struct htable_node *n, const void *key)
{
	const struct tally_ent *e = HTABLE_ENTRY(n, struct tally_ent, hn);
	const struct tally_key *k = key;

	return e->c.start == k->start && e->len == k->len && memcmp(e->buf, k->buf, k->len) == 0;
}

static void tally_add(struct rpt *r, const struct store_tlsrpt_count *c)
{
	const char *f[RPT_FIELDS] = {c->domain,     c->policy,  c->result,
	                             c->sending_ip, c->mx_host, c->receiving_ip};
	struct buf b;
	struct tally_key k;
	struct htable_node *n;
	struct tally_ent *e;
	uint64_t h;

	buf_init(&b);
	for (int i = 0; i < RPT_FIELDS; i++)
		buf_append(&b, f[i] ? f[i] : "", strlen(f[i] ? f[i] : "") + 1);
	k = (struct tally_key){b.data, b.len, c->start};
	h = htable_hash_mix(htable_hash(b.data, b.len), (uint64_t)c->start);
	if ((n = htable_find(&r->tally, h, tally_match, &k)) ||
	    htable_count(&r->tally) >= RPT_TALLY_MAX) {
		if (n)
			HTABLE_ENTRY(n, struct tally_ent, hn)->c.n += c->n;
		else
			r->dropped += c->n;
		buf_free(&b);
		return;
	}
	e = xcalloc(1, sizeof(*e));
	e->buf = b.data;
	e->len = b.len;
	e->c = *c;
	e->c.domain = e->buf;
	e->c.policy = e->c.domain + strlen(e->c.domain) + 1;
	e->c.result = e->c.policy + strlen(e->c.policy) + 1;
	e->c.sending_ip = e->c.result + strlen(e->c.result) + 1;
	e->c.mx_host = e->c.sending_ip + strlen(e->c.sending_ip) + 1;
	e->c.receiving_ip = e->c.mx_host + strlen(e->c.mx_host) + 1;
	htable_add(&r->tally, &e->hn, h);
}

int64_t rpt_interval(const struct rpt *r)
{
	return (int64_t)(r->p->conf->tls_rpt_interval ? r->p->conf->tls_rpt_interval : 86400);
}

static void count(struct rpt *r, const char *domain, const char *policy, enum tlsrpt_result res,
                  const char *src, const char *mx, const char *ip)
{
	int64_t now = clock_now_s(), iv = rpt_interval(r);
	struct store_tlsrpt_count c = {domain,
	                               now - now % iv,
	                               now - now % iv + iv,
	                               policy,
	                               tlsrpt_result_name(res),
	                               "",
	                               "",
	                               "",
	                               1};

	if (res != TLSRPT_OK) { /* successes only add to the summary */
		c.sending_ip = src;
		c.mx_host = mx;
		c.receiving_ip = ip;
	}
	tally_add(r, &c);
}

/* ---------- writing the tally ---------- */

struct flush_job {
	struct rpt *r;
	struct tally_ent **v;
	struct store_tlsrpt_count *c;
	size_t n;
	int failed;
};

static void flush_run(void *arg)
{
	struct flush_job *j = arg;
	char *err = NULL;

	if (store_tlsrpt_add(j->r->p->deps.store, j->c, j->n, &err) < 0) {
		log_warn("event=tlsrpt_write_error error=%s", log_q(err));
		free(err);
		j->failed = 1;
	}
}

static void flush_done(void *arg)
{
	struct flush_job *j = arg;

	for (size_t i = 0; i < j->n; i++) {
		if (j->failed)
			tally_add(j->r, &j->c[i]); /* written with the next one */
		free(j->v[i]->buf);
		free(j->v[i]);
	}
	j->r->flushing = 0;
	free(j->v);
	free(j->c);
	free(j);
}

/* Everything tallied, taken out of the table. NULL when empty. */
static struct flush_job *flush_take(struct rpt *r)
{
	struct flush_job *j;
	struct htable_iter it;
	struct htable_node *n;
	size_t cap = htable_count(&r->tally);

	if (cap == 0)
		return NULL;
	j = xcalloc(1, sizeof(*j));
	j->r = r;
	j->v = xcalloc(cap, sizeof(*j->v));
	j->c = xcalloc(cap, sizeof(*j->c));
	htable_iter_init(&it, &r->tally);
	while ((n = htable_iter_next(&it))) {
		struct tally_ent *e = HTABLE_ENTRY(n, struct tally_ent, hn);
		htable_del(&r->tally, n);
		j->v[j->n] = e;
		j->c[j->n++] = e->c;
	}
	return j;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct rpt *r = arg;
	struct flush_job *j;

	if (r->dropped) {
		log_warn("event=tlsrpt_dropped counts=%llu", (unsigned long long)r->dropped);
		r->dropped = 0;
	}
	if (r->flushing || !(j = flush_take(r)))
		return;
	r->flushing = 1;
	work_submit(r->p->deps.work, flush_run, flush_done, j);
}

/* ---------- the report hook ---------- */

/* What a route's hook knows: the domain and each host's policy text. */
struct rdest {
	char *domain;
	char **policy; /* per host of the tls_dest_pol */
	size_t n;
};

static void rdest_free(void *arg)
{
	struct rdest *d = arg;

	for (size_t i = 0; i < d->n; i++)
		free(d->policy[i]);
	free(d->policy);
	free(d->domain);
	free(d);
}

static void on_report(void *arg, const struct tls_dest_pol *p, const struct tls_host_pol *h,
                      const char *addr, const char *src, enum tlsrpt_result res)
{
	struct rpt *r = arg;
	const struct rdest *d = p->report_data;
	size_t i = (size_t)(h - p->hosts);

	if (r->stopped || i >= d->n)
		return;
	count(r, d->domain, d->policy[i], res, src, h->host, addr);
}

void rpt_attach(struct rpt *r, struct tls_dest_pol *pol, const struct sts_snap *snap)
{
	struct rdest *d = xcalloc(1, sizeof(*d));

	d->domain = xstrdup(pol->domain);
	d->n = pol->n_hosts;
	d->policy = xcalloc(d->n ? d->n : 1, sizeof(*d->policy));
	for (size_t i = 0; i < d->n; i++)
		d->policy[i] = rpt_policy_json(pol->domain, snap, &pol->hosts[i]);
	pol->report = on_report;
	pol->report_arg = r;
	pol->report_data = d;
	pol->report_data_free = rdest_free;
}

void rpt_count_fetch_error(struct rpt *r, const char *domain, enum tlsrpt_result res)
{
	char *policy = rpt_policy_json_sts_failed(domain);

	if (!r->stopped)
		count(r, domain, policy, res, "", "", "");
	free(policy);
}

/* ---------- life ---------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	rpt_round_start(arg);
}

struct rpt *rpt_new(struct policy *p)
{
	struct rpt *r = xcalloc(1, sizeof(*r));
	int64_t tick;
	struct timeval tv;

	r->p = p;
	htable_init(&r->tally);
	tick = rpt_interval(r) / 4;
	tick = tick < 1 ? 1 : tick > 60 ? 60 : tick;
	tv = (struct timeval){(time_t)tick, 0};
	r->ev_flush = event_new(p->deps.base, -1, EV_PERSIST, on_flush, r);
	r->ev_tick = event_new(p->deps.base, -1, EV_PERSIST, on_tick, r);
	event_add(r->ev_flush, &(struct timeval){1, 0});
	event_add(r->ev_tick, &tv);
	return r;
}

/* No new rounds or counts; the tally goes to the work pool one last time. */
void rpt_stop(struct rpt *r)
{
	event_del(r->ev_flush);
	event_del(r->ev_tick);
	on_flush(-1, 0, r);
	r->stopped = 1;
}

void rpt_free(struct rpt *r)
{
	struct flush_job *j;

	if (!r)
		return;
	r->flushing = 0;
	if ((j = flush_take(r))) { /* the pool is gone: written here */
		flush_run(j);
		j->failed = 0;
		flush_done(j);
	}
	rpt_round_free(r);
	htable_fini(&r->tally);
	event_free(r->ev_flush);
	event_free(r->ev_tick);
	free(r);
}
