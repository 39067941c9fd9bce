/*
 * policy: the module's life, policy_resolve() and the account pools.
 * Contract in policy.h.
 *
 * policy_resolve() gathers, all at once, what the destination publishes:
 * its MTA-STS policy (policy_sts.c), its _smtp._tls TXT record, and with
 * [relay] dnssec = trust_ad and a validated MX answer, the TLSA records of
 * every MX host whose addresses validated. When the last answer is in, each
 * host is decided (tls_host_decide) and the policy goes to the caller, with
 * the TLS-RPT hook attached when the domain asked for reports, and the
 * TLSA records seen written for `posthorn tls status` (work pool).
 */
#include "policy/policy.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "dns/dns.h"
#include "log/log.h"
#include "policy/https.h"
#include "policy/policy_int.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

struct resolve {
	struct resolve *prev, *next;
	struct policy *p;
	uint64_t id;
	char *domain; /* NULL: a smarthost or a literal */
	struct dns_route *route;
	struct policy_lane lane;
	policy_cb cb;
	void *arg;
	unsigned todo;
	uint64_t sts_id, txt_id, *tlsa_ids;
	struct sts_snap *snap;
	enum tlsrpt_result sts_error;
	int have_rpt;
	enum tls_dane *dane;    /* per host */
	struct tls_tlsa **tlsa; /* per host: the records */
	size_t *n_tlsa;
	struct tlsa_wait *waits; /* per host: which host an answer is for */
	struct event *ev_done;
};

struct tlsa_wait {
	struct resolve *r;
	size_t i;
};

/* ---------- requests ---------- */

static void resolve_free(struct resolve *r)
{
	struct policy *p = r->p;

	if (r->prev)
		r->prev->next = r->next;
	else
		p->resolving = r->next;
	if (r->next)
		r->next->prev = r->prev;
	for (size_t i = 0; r->route && i < r->route->n_hosts; i++) {
		for (size_t k = 0; k < r->n_tlsa[i]; k++)
			free(r->tlsa[i][k].data);
		free(r->tlsa[i]);
	}
	sts_snap_unref(r->snap);
	dns_route_free(r->route);
	free(r->domain);
	free(r->tlsa_ids);
	free(r->waits);
	free(r->dane);
	free(r->tlsa);
	free(r->n_tlsa);
	event_free(r->ev_done);
	free(r);
}

static void tlsa_text(const struct resolve *r, size_t i, struct buf *b)
{
	for (size_t k = 0; k < r->n_tlsa[i]; k++) {
		const struct tls_tlsa *t = &r->tlsa[i][k];
		buf_printf(b, "%s%u %u %u ", k ? "\n" : "", t->usage, t->selector, t->mtype);
		for (size_t x = 0; x < t->len; x++)
			buf_printf(b, "%02X", t->data[x]);
	}
}

struct seen_job {
	struct policy *p;
	struct store_tlsa *v;
	size_t n;
};

static void seen_run(void *arg)
{
	struct seen_job *j = arg;
	char *err = NULL;

	for (size_t i = 0; i < j->n; i++) {
		if (store_tlsa_put(j->p->deps.store, &j->v[i], &err) < 0) {
			log_warn("event=tlsa_seen_error error=%s", log_q(err));
			free(err);
			err = NULL;
		}
	}
}

static void seen_done(void *arg)
{
	struct seen_job *j = arg;

	store_tlsa_free(j->v, j->n);
	free(j);
}

/* The TLSA records looked up, for posthorn tls status. */
static void record_seen(const struct resolve *r)
{
	static const char *const names[] = {"none", "usable", "unusable", "failed"};
	struct seen_job *j = xcalloc(1, sizeof(*j));

	j->p = r->p;
	j->v = xcalloc(r->route->n_hosts, sizeof(*j->v));
	for (size_t i = 0; i < r->route->n_hosts; i++) {
		struct buf b;
		if (!r->tlsa_ids)
			break;
		buf_init(&b);
		tlsa_text(r, i, &b);
		j->v[j->n++] =
		    (struct store_tlsa){xstrdup(r->route->hosts[i].name), xstrdup(r->domain),
		                        xstrdup(names[r->dane[i]]), b.data, clock_now_s()};
	}
	work_submit(r->p->deps.work, seen_run, seen_done, j);
}

/* Each host decided; NULL when nothing is asked beyond outbound_tls. */
static struct tls_dest_pol *build(struct resolve *r)
{
	const struct conf *c = r->p->conf;
	int sts_mode = r->snap ? (int)r->snap->pol.mode : -1, dane = 0;
	struct tls_dest_pol *pol;

	for (size_t i = 0; r->dane && i < r->route->n_hosts; i++)
		dane |= r->dane[i] != TLS_DANE_NONE;
	if (!r->lane.requiretls && !r->lane.optout && sts_mode <= 0 && !dane && !r->have_rpt)
		return NULL;
	pol = tls_dest_pol_new(r->domain ? r->domain : "", r->route->n_hosts);
	for (size_t i = 0; i < r->route->n_hosts; i++) {
		const char *host = r->route->hosts[i].name;
		struct tls_decide_in in = {r->domain ? r->domain : host,
		                           host,
		                           c->outbound_tls == CONF_OUT_TLS_REQUIRED,
		                           r->lane.requiretls,
		                           r->lane.optout,
		                           sts_mode,
		                           r->dane ? r->dane[i] : TLS_DANE_NONE};
		tls_host_decide(&in, r->snap && sts_policy_allows(&r->snap->pol, host),
		                r->tlsa ? r->tlsa[i] : NULL, r->n_tlsa ? r->n_tlsa[i] : 0,
		                &pol->hosts[i]);
	}
	if (r->have_rpt && r->domain)
		rpt_attach(r->p->rpt, pol, r->snap);
	return pol;
}

static void finish(struct resolve *r)
{
	struct tls_dest_pol *pol = build(r);
	policy_cb cb = r->cb;
	void *arg = r->arg;

	if (r->domain)
		log_info("dest=%s event=tls_policy mta_sts=%s dane_hosts=%zu tlsrpt=%s lane=%s",
		         r->domain, r->snap ? sts_mode_name(r->snap->pol.mode) : "-",
		         r->tlsa_ids ? r->route->n_hosts : 0, r->have_rpt ? "yes" : "no",
		         r->lane.requiretls ? "requiretls"
		         : r->lane.optout   ? "tls-required-no"
		                            : "-");
	if (r->sts_error && r->have_rpt && r->domain)
		rpt_count_fetch_error(r->p->rpt, r->domain, r->sts_error);
	if (r->tlsa_ids && r->domain)
		record_seen(r);
	resolve_free(r);
	cb(arg, pol);
}

static void answered(struct resolve *r)
{
	if (--r->todo == 0)
		finish(r);
}

static void on_done_event(evutil_socket_t fd, short what, void *arg)
{
	finish(arg);
}

/* ---------- the three kinds of answers ---------- */

static void on_sts(void *arg, const struct sts_view *v)
{
	struct resolve *r = arg;

	r->sts_id = 0;
	if (v->snap) {
		r->snap = v->snap;
		r->snap->refs++;
	}
	r->sts_error = v->fetch_error;
	answered(r);
}

static void on_rpt_txt(void *arg, const struct dns_txt *t)
{
	struct resolve *r = arg;
	struct tlsrpt_record rec;

	r->txt_id = 0;
	r->have_rpt = t->status == DNS_OK &&
	              tlsrpt_txt_pick((const char *const *)t->records, t->n, &rec) == 1;
	answered(r);
}

/* RFC 7672 2.2: validated records count; a lookup that failed makes the
 * host unusable; no records, or records not validated, mean no DANE. */
static void on_tlsa(void *arg, const struct dns_tlsa_ans *t)
{
	struct tlsa_wait *w = arg;
	struct resolve *r = w->r;
	size_t i = w->i, usable = 0;

	r->tlsa_ids[i] = 0;
	if (t->status == DNS_TEMPFAIL) {
		r->dane[i] = TLS_DANE_FAILED;
	} else if (t->status == DNS_OK && t->secure && t->n > 0) {
		r->tlsa[i] = xcalloc(t->n, sizeof(**r->tlsa));
		for (size_t k = 0; k < t->n; k++) {
			struct tls_tlsa *x = &r->tlsa[i][r->n_tlsa[i]++];
			*x = (struct tls_tlsa){t->recs[k].usage, t->recs[k].selector,
			                       t->recs[k].mtype, t->recs[k].len,
			                       xmalloc(t->recs[k].len)};
			memcpy(x->data, t->recs[k].data, t->recs[k].len);
			usable += tls_tlsa_usable(x);
		}
		r->dane[i] = usable ? TLS_DANE_USABLE : TLS_DANE_UNUSABLE;
	}
	answered(r);
}

/* DANE: the TLSA records of every host whose name and addresses validated. */
static void ask_tlsa(struct resolve *r)
{
	size_t n = r->route->n_hosts;

	r->tlsa_ids = xcalloc(n ? n : 1, sizeof(*r->tlsa_ids));
	r->waits = xcalloc(n ? n : 1, sizeof(*r->waits));
	for (size_t i = 0; i < n; i++) {
		const struct dns_route_host *h = &r->route->hosts[i];
		char *name;

		if (!h->secure || h->n_addrs == 0)
			continue;
		r->waits[i] = (struct tlsa_wait){r, i};
		name = xasprintf("_25._tcp.%s", h->name);
		r->todo++;
		r->tlsa_ids[i] = dns_query_tlsa(r->p->deps.dns, name, on_tlsa, &r->waits[i]);
		free(name);
		if (!r->tlsa_ids[i])
			r->todo--;
	}
}

/* ---------- public: requests ---------- */

static struct resolve *resolve_new(struct policy *p, const char *domain, const struct dns_route *rt,
                                   const struct policy_lane *lane, policy_cb cb, void *arg)
{
	struct resolve *r = xcalloc(1, sizeof(*r));
	size_t n = rt->n_hosts ? rt->n_hosts : 1;

	r->p = p;
	r->id = p->next_id++;
	r->domain = domain ? xstrdup(domain) : NULL;
	r->route = dns_route_dup(rt);
	r->lane = *lane;
	r->cb = cb;
	r->arg = arg;
	r->dane = xcalloc(n, sizeof(*r->dane));
	r->tlsa = xcalloc(n, sizeof(*r->tlsa));
	r->n_tlsa = xcalloc(n, sizeof(*r->n_tlsa));
	r->ev_done = event_new(p->deps.base, -1, 0, on_done_event, r);
	r->next = p->resolving;
	if (p->resolving)
		p->resolving->prev = r;
	p->resolving = r;
	return r;
}

uint64_t policy_resolve(struct policy *p, const char *domain, const struct dns_route *rt,
                        const struct policy_lane *lane, policy_cb cb, void *arg)
{
	struct resolve *r = resolve_new(p, domain, rt, lane, cb, arg);
	char *name;

	/* the count covers the asking: an answer may come before the last ask */
	r->todo = 1;
	if (domain && !p->stopped) {
		r->todo += 2;
		r->sts_id = sts_get(p->sts, domain, on_sts, r);
		name = xasprintf("_smtp._tls.%s", domain);
		r->txt_id = dns_query_txt(p->deps.dns, name, on_rpt_txt, r);
		free(name);
		if (!r->txt_id)
			r->todo--;
		if (p->conf->dnssec == CONF_DNSSEC_TRUST_AD && rt->secure)
			ask_tlsa(r);
	}
	if (--r->todo == 0)
		event_active(r->ev_done, EV_TIMEOUT, 0); /* never from inside this call */
	return r->id;
}

void policy_cancel(struct policy *p, uint64_t id)
{
	struct resolve *r = p->resolving;

	while (r && r->id != id)
		r = r->next;
	if (!r)
		return;
	if (r->sts_id)
		sts_cancel(p->sts, r->sts_id);
	if (r->txt_id)
		dns_cancel(p->deps.dns, r->txt_id);
	for (size_t i = 0; r->tlsa_ids && i < r->route->n_hosts; i++)
		if (r->tlsa_ids[i])
			dns_cancel(p->deps.dns, r->tlsa_ids[i]);
	resolve_free(r);
}

/* ---------- account pools ---------- */

struct pools_job {
	struct policy *p;
	char **names, **pools;
	size_t n;
	int failed;
};

static void pools_run(void *arg)
{
	struct pools_job *j = arg;
	char *err = NULL;
	unsigned long long n;

	/* one job at a time (pools_loading): the job owns p->pools_rep */
	if (store_account_pools(j->p->deps.store, &j->names, &j->pools, &j->n, &err) < 0) {
		if (log_repeat_fail(&j->p->pools_rep, &n))
			log_warn("event=pools_error error=%s repeated=%llu", log_q(err), n);
		free(err);
		j->failed = 1;
	} else if (log_repeat_ok(&j->p->pools_rep, &n)) {
		log_info("event=pools_ok failures=%llu", n);
	}
}

static void pools_take(struct policy *p, struct pools_job *j)
{
	store_pools_free(p->pool_names, p->pool_pools, p->n_pools);
	p->pool_names = j->names;
	p->pool_pools = j->pools;
	p->n_pools = j->n;
}

static void pools_done(void *arg)
{
	struct pools_job *j = arg;

	if (!j->failed)
		pools_take(j->p, j);
	j->p->pools_loading = 0;
	free(j);
}

static void on_pools_timer(evutil_socket_t fd, short what, void *arg)
{
	struct policy *p = arg;
	struct pools_job *j;

	if (p->pools_loading || p->stopped)
		return;
	j = xcalloc(1, sizeof(*j));
	j->p = p;
	p->pools_loading = 1;
	work_submit(p->deps.work, pools_run, pools_done, j);
}

const char *policy_account_pool(struct policy *p, const char *account)
{
	for (size_t i = 0; account && i < p->n_pools; i++)
		if (strcmp(p->pool_names[i], account) == 0)
			return p->pool_pools[i];
	return NULL;
}

/* ---------- life ---------- */

struct policy *policy_new(const struct policy_deps *deps, char **err)
{
	struct policy *p = xcalloc(1, sizeof(*p));
	struct pools_job j = {p, NULL, NULL, 0, 0};
	const struct conf *c = deps->conf;

	p->deps = *deps;
	p->conf = c;
	p->next_id = 1;
	p->https = https_new(deps->base, deps->dns, c->tls_ca_file, c->blocked_destinations,
	                     c->n_blocked_destinations, err);
	if (!p->https) {
		free(p);
		return NULL;
	}
	pools_run(&j); /* at start, before any message is indexed */
	pools_take(p, &j);
	p->sts = sts_new(p);
	p->rpt = rpt_new(p);
	p->ev_pools = event_new(deps->base, -1, EV_PERSIST, on_pools_timer, p);
	event_add(p->ev_pools, &(struct timeval){1, 0});
	return p;
}

void policy_stop(struct policy *p)
{
	if (!p || p->stopped)
		return;
	p->stopped = 1;
	event_del(p->ev_pools);
	rpt_stop(p->rpt);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	p->stopped = 1;
	while (p->resolving)
		policy_cancel(p, p->resolving->id);
	rpt_free(p->rpt);
	sts_free(p->sts);
	https_free(p->https);
	store_pools_free(p->pool_names, p->pool_pools, p->n_pools);
	event_free(p->ev_pools);
	free(p);
}
