/*
 * sched_dest: destinations. Each destination (a recipient domain, a
 * domain literal, or the smarthost) has a ready queue of items, the
 * connections that carry them, a route lookup at a time, a rate limit and
 * its shaping state (sched_policy). dest_pump() is the one place that
 * starts work: idle connections take ready items first, then new
 * connections open as the shaping window and the rate allow; connections
 * left idle for SCHED_IDLE_KEEP_MS say QUIT.
 *
 * A destination that cannot be reached at all (DNS, every host failed)
 * fails its ready queue in steps of at most SCHED_FINISH_MAX items being
 * written, so a dead destination with a large queue cannot hold every
 * envelope in memory at once.
 *
 * Memory follows the destinations in use, not every domain ever seen: a
 * sweep every SCHED_SWEEP_MS frees those idle (nothing queued, no
 * connection, no lookup) for SCHED_DEST_IDLE_MS, once forgetting one
 * loses nothing (no pause running, its rate bucket refilled).
 *
 * Routing under TLS policy: a route (MX hosts and addresses, screened)
 * goes to the policy module, whose answer (what each host must give:
 * MTA-STS, DANE, the lane's REQUIRETLS) travels with every connection of
 * that route. A destination lane is a domain plus what its messages ask
 * (sched.h); a lane's connections bind to its pool's source addresses.
 * When the domain's policy refused every host, the ready messages that
 * say TLS-Required: No (RFC 8689 5) move to the domain's opt-out lane,
 * which connects with opportunistic TLS; the others wait (4.7.5).
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf/conf.h"
#include "deliv/deliv.h"
#include "dns/dns.h"
#include "log/log.h"
#include "policy/policy.h"
#include "policy/policy_parse.h"
#include "sched/sched_int.h"
#include "smtpc/smtpc_conn.h"
#include "spool/spool.h"
#include "tls/tls_policy.h"

/* Bytes of a message read for a TLS-Required header: the header section
 * of any sane message, bounded. */
#define OPTOUT_SCAN_MAX (64 * 1024)

static void dest_pump(struct dest *d);

/* ---------- destinations ---------- */

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
	dest_pump(arg);
}

static int dest_match(const struct htable_node *n, const void *key)
{
	return strcmp(HTABLE_ENTRY(n, struct dest, hn)->key, key) == 0;
}

/* "example.com", or with the lane: "example.com\trequiretls\tpool=mk". */
static char *lane_key(const char *name, const struct sched_lane *l)
{
	return xasprintf("%s%s%s%s%s", name, l->requiretls ? "\trequiretls" : "",
	                 l->optout ? "\ttls-required-no" : "", l->pool ? "\tpool=" : "",
	                 l->pool ? l->pool : "");
}

void sched_lane_of(const struct sched *s, const struct envelope *env, struct sched_lane *out)
{
	memset(out, 0, sizeof(*out));
	out->requiretls = env->requiretls;
	if (s->deps.policy)
		out->pool = policy_account_pool(s->deps.policy, env->account);
}

struct dest *sched_dest_get(struct sched *s, const char *name)
{
	static const struct sched_lane none;

	return sched_dest_lane(s, name, &none);
}

struct dest *sched_dest_lane(struct sched *s, const char *name, const struct sched_lane *lane)
{
	char *key = lane_key(name, lane);
	uint64_t h = htable_hash_str(key);
	struct htable_node *n = htable_find(&s->dests, h, dest_match, key);
	struct dest *d;

	if (n) {
		free(key);
		return HTABLE_ENTRY(n, struct dest, hn);
	}
	d = xcalloc(1, sizeof(*d));
	d->s = s;
	d->name = xstrdup(name);
	d->key = key;
	d->requiretls = lane->requiretls;
	d->optout = lane->optout;
	d->pool_name = lane->pool ? xstrdup(lane->pool) : NULL;
	d->lim = conf_domain_for(s->domains_conf, name);
	d->paused = sched_paused(&s->pauses, name);
	d->active_ms = sched_now_ms();
	sched_shape_init(&d->shape, (unsigned)d->lim->max_connections);
	TAILQ_INIT(&d->ready);
	TAILQ_INIT(&d->conns);
	TAILQ_INIT(&d->closing);
	sched_bucket_init(&d->rate, d->active_ms);
	d->ev_pump = evtimer_new(s->deps.base, on_pump, d);
	htable_add(&s->dests, &d->hn, h);
	return d;
}

/* Nothing refers to d and forgetting it loses nothing: a fresh one would
 * neither connect sooner (a pause running) nor send faster (a rate). */
static int dest_forgettable(const struct dest *d, int64_t now_ms)
{
	return d->n_items == 0 && TAILQ_EMPTY(&d->conns) && d->n_closing == 0 &&
	       d->n_opening == 0 && d->route_id == 0 && !d->rate_asking && !d->rate_token &&
	       !d->conn_asking && !d->conn_allow && d->pol_id == 0 && !d->failing &&
	       now_ms - d->active_ms >= SCHED_DEST_IDLE_MS && now_ms >= d->shape.hold_until_ms &&
	       sched_bucket_rested(&d->rate, d->lim->max_rate, d->lim->max_rate_period, now_ms);
}

size_t sched_dest_sweep(struct sched *s, int64_t now_ms)
{
	struct htable_iter it;
	struct dest *d;
	size_t freed = 0;

	htable_iter_init(&it, &s->dests);
	while ((d = sched_dest_next(&it))) {
		if (!dest_forgettable(d, now_ms))
			continue;
		htable_del(&s->dests, &d->hn);
		sched_dest_free(d);
		freed++;
	}
	return freed;
}

/* Load what an attempt needs. -1 if the message is gone (deleted). */
static int item_load(struct sched *s, struct qitem *it)
{
	char *err = NULL;
	uint32_t i;

	struct active *a = xcalloc(1, sizeof(*a));

	a->fd = -1;
	it->act = a;
	if (spool_load(s->deps.spool, it->m->id, &a->env, &err) < 0 ||
	    spool_open_body(s->deps.spool, it->m->id, &a->fd, &a->body_off, &a->body_len, &err) <
	        0) {
		int gone = errno == ENOENT;
		log_warn("queue=%s event=%s error=%s", it->m->id,
		         gone ? "message_gone" : "load_error", log_q(err));
		free(err);
		sched_item_release(it);
		return gone ? -1 : -2;
	}
	a->jr = xcalloc(it->n, sizeof(*a->jr));
	for (i = 0; i < it->n; i++) {
		const struct rcpt *r = &a->env->rcpts[it->idx[i]];
		a->jr[i].addr = r->addr;
		a->jr[i].orcpt = r->orcpt;
		a->jr[i].notify = r->notify;
	}
	return 0;
}

/* For an item just made active: load it. A message deleted behind our back
 * leaves the index; any other failure (EMFILE, EIO) parks the item for a
 * minute rather than dropping recipients that are still open. */
int sched_item_start(struct sched *s, struct qitem *it)
{
	int r = item_load(s, it);

	if (r == 0 && sched_account_held(s, it))
		return -1;
	if (r == -1) {
		/* gone: its held recipients will never be released */
		struct qmsg *m = it->m;
		m->n_open -= it->n + (m->held ? m->held->n : 0);
		s->n_held -= m->held ? m->held->n : 0;
		idxset_free(&m->held);
		it->n = 0;
		sched_item_free(s, it);
	} else if (r < 0) {
		it->due = sched_now_s() + 60;
		sched_item_set(s, it, IT_DEFERRED);
	}
	return r < 0 ? -1 : 0;
}

/* RFC 8689 5: the message says TLS-Required: No. Reads (blocking, but
 * bounded and from the page cache as a rule) the start of the message;
 * only for items a TLS policy just refused. */
static int item_opts_out(const struct qitem *it)
{
	const struct active *a = it->act;
	size_t want = a->body_len < OPTOUT_SCAN_MAX ? (size_t)a->body_len : OPTOUT_SCAN_MAX;
	char *buf = xmalloc(want ? want : 1);
	ssize_t n = pread(a->fd, buf, want, (off_t)a->body_off);
	int yes = n > 0 && tls_required_no(buf, (size_t)n);

	free(buf);
	return yes;
}

/* An item of d that waived the policy goes to d's opt-out lane, ready. */
static void item_to_optout(struct sched *s, struct dest *d, struct qitem *it)
{
	struct sched_lane lane = {d->requiretls, 1, d->pool_name};
	struct dest *to = sched_dest_lane(s, d->name, &lane);

	log_info("queue=%s event=tls_required_no dest=%s action=opportunistic_tls", it->m->id,
	         d->name);
	sched_item_release(it);
	sched_item_set(s, it, IT_NONE);
	d->n_items--;
	it->d = to;
	to->n_items++;
	sched_item_set(s, it, IT_READY);
}

/* Apply d->fail_v to ready items while fewer than SCHED_FINISH_MAX are being
 * written; sched_result calls again as writes finish. */
static void dest_fail_some(struct dest *d)
{
	struct sched *s = d->s;
	struct qitem *it;
	int policy = d->fail_v.tls_policy && !d->optout && !d->requiretls;

	while ((it = TAILQ_FIRST(&d->ready)) && s->n_finishing < SCHED_FINISH_MAX) {
		sched_item_set(s, it, IT_ACTIVE);
		if (sched_item_start(s, it) < 0)
			continue;
		if (policy && item_opts_out(it)) {
			item_to_optout(s, d, it);
			continue;
		}
		sched_apply_results(s, it, &d->fail_v, 1, NULL);
	}
	sched_reports_start(s); /* one event: one report per message */
	if (!TAILQ_FIRST(&d->ready) && d->failing) {
		d->failing = 0;
		smtpc_verdict_clear(&d->fail_v);
		TAILQ_REMOVE(&s->failing, d, fail_link);
	}
}

/* Everything in the ready queue of d gets verdict v (no connection could
 * be made): the destination is dead for now. */
static void dest_fail_ready(struct dest *d, const struct smtpc_verdict *v)
{
	if (!d->failing) {
		d->failing = 1;
		d->fail_v = *v;
		d->fail_v.diag = v->diag ? xstrdup(v->diag) : NULL;
		d->fail_v.reply = v->reply ? xstrdup(v->reply) : NULL;
		TAILQ_INSERT_TAIL(&d->s->failing, d, fail_link);
	}
	dest_fail_some(d);
}

void sched_failing_continue(struct sched *s)
{
	struct dest *d, *next;

	for (d = TAILQ_FIRST(&s->failing); d && s->n_finishing < SCHED_FINISH_MAX; d = next) {
		next = TAILQ_NEXT(d, fail_link);
		dest_fail_some(d);
	}
}

/* ---------- connections ---------- */

static void dconn_remove(struct dconn *dc)
{
	struct dest *d = dc->d;

	TAILQ_REMOVE(&d->conns, dc, link);
	d->n_conns--;
	free(dc);
	sched_dest_pump_later(d, 0);
	sched_check_drained(d->s);
}

/* The peer has closed a connection that said QUIT: its slot is free. */
static void on_conn_gone(void *arg)
{
	struct dconn *dc = arg;
	struct dest *d = dc->d;

	if (d) {
		TAILQ_REMOVE(&d->closing, dc, link);
		d->n_closing--;
		d->s->n_closing--;
		sched_dest_pump_later(d, 0);
		sched_check_drained(d->s);
	}
	free(dc);
}

/* QUIT. The connection keeps its slot of max_connections (and of the
 * node's lease) until the session is over at the peer, so that a new one
 * never overlaps it there. */
static void dconn_quit(struct dconn *dc)
{
	struct dest *d = dc->d;

	TAILQ_REMOVE(&d->conns, dc, link);
	d->n_conns--;
	TAILQ_INSERT_TAIL(&d->closing, dc, link);
	d->n_closing++;
	d->s->n_closing++;
	smtpc_conn_quit_then(dc->c, on_conn_gone, dc);
}

static void on_job_done(void *arg, const struct smtpc_verdict *v, size_t n)
{
	struct dconn *dc = arg;
	struct qitem *it = dc->item;

	dc->item = NULL;
	sched_apply_results(dc->d->s, it, v, 0, dc->c);
	sched_reports_start(dc->d->s);
}

static int rate_take(struct dest *d, int64_t *wait_ms)
{
	if (d->s->deps.redis && d->lim->max_rate && d->lim->max_rate_period)
		return sched_rate_shared(d, wait_ms);
	return sched_bucket_take(&d->rate, d->lim->max_rate, d->lim->max_rate_period,
	                         SCHED_RATE_BURST, sched_now_ms(), wait_ms);
}

/* REQUIRETLS goes on only on a lane that held the route to it. */
static int d_requiretls(const struct dest *d, const struct envelope *env)
{
	return d->requiretls && env->requiretls;
}

static void dconn_start(struct dconn *dc, struct qitem *it)
{
	struct sched *s = dc->d->s;
	struct smtpc_job job;

	sched_item_set(s, it, IT_ACTIVE);
	if (sched_item_start(s, it) < 0) {
		dc->idle = 1;
		sched_dest_pump_later(dc->d, 0);
		return;
	}
	memset(&job, 0, sizeof(job));
	job.id = it->m->id;
	job.mail_from = deliv_return_path(s->deps.deliv, it->m->id, it->act->env->mail_from,
	                                  dc->return_path, sizeof(dc->return_path));
	job.eightbit = it->act->env->body == BODY_8BITMIME;
	job.smtputf8 = it->act->env->smtputf8;
	job.requiretls = d_requiretls(dc->d, it->act->env);
	job.ret = it->act->env->ret;
	job.envid = it->act->env->envid;
	job.rcpts = it->act->jr;
	job.n_rcpts = it->n;
	job.fd = it->act->fd;
	job.offset = it->act->body_off;
	job.len = it->act->body_len;
	dc->item = it;
	dc->idle = 0;
	smtpc_conn_send(dc->c, &job, on_job_done, dc);
}

static void on_conn_ready(void *arg, struct smtpc_conn *c)
{
	struct dconn *dc = arg;
	struct dest *d = dc->d;
	int64_t wait = 0;

	if (!dc->c) {
		/* first READY: it was counted as opening */
		dc->c = c;
		d->n_opening--;
	}
	dc->idle = 1;
	dc->idle_since_ms = sched_now_ms();
	if (d->s->draining || d->paused ||
	    smtpc_conn_count(c) >= d->lim->max_messages_per_connection) {
		dconn_quit(dc);
		sched_dest_pump_later(d, 0);
		sched_check_drained(d->s);
		return;
	}
	if (d->n_ready > 0 && rate_take(d, &wait)) {
		dconn_start(dc, TAILQ_FIRST(&d->ready));
		return;
	}
	sched_dest_pump_later(d, wait ? wait : SCHED_IDLE_KEEP_MS);
}

static void on_conn_failed(void *arg, struct smtpc_conn *c, const struct smtpc_verdict *v)
{
	struct dconn *dc = arg;
	struct dest *d = dc->d;

	d->n_opening--;
	assert(v->action != SMTPC_ACT_OK);
	sched_shape_throttle(&d->shape, sched_now_ms());
	/* With no other connection alive, nothing will carry the waiting
	 * items: they take this failure (deferred on their own schedule). */
	if (d->n_conns == 1)
		dest_fail_ready(d, v);
	dconn_remove(dc);
}

static void on_conn_closed(void *arg, struct smtpc_conn *c)
{
	struct dconn *dc = arg;

	dconn_remove(dc);
}

static const struct smtpc_cbs conn_cbs = {on_conn_ready, on_conn_failed, on_conn_closed};

/* The source addresses of d's connections: its lane's account pool, else
 * its domain's, else none. */
static const struct conf_pool *dest_pool(const struct dest *d)
{
	const struct conf *c = d->s->domains_conf;
	const struct conf_pool *p = conf_pool_find(c, d->pool_name ? d->pool_name : d->lim->pool);

	if (!p && d->pool_name)
		log_warn("dest=%s event=pool_unknown pool=%s action=system_address", d->name,
		         d->pool_name);
	return p;
}

static void open_conn(struct dest *d, struct dns_route *route, uint16_t port)
{
	const struct conf *c = d->s->conf;
	struct dconn *dc = xcalloc(1, sizeof(*dc));
	struct smtpc_target t;

	dc->d = d;
	TAILQ_INSERT_TAIL(&d->conns, dc, link);
	d->n_conns++;
	d->n_opening++;
	memset(&t, 0, sizeof(t));
	t.dest = d->name;
	t.route = route;
	t.port = port;
	t.tls = d->s->deps.client_tls;
	t.tls_required = c->outbound_tls == CONF_OUT_TLS_REQUIRED;
	t.helo = c->hostname;
	t.pol = d->pol;
	t.pool = dest_pool(d);
	t.pool_turn = &d->pool_turn;
	if (c->smarthost) {
		t.auth = c->smarthost_auth;
		t.verify_host = c->smarthost_at.host;
		t.verify_required = c->smarthost_tls == CONF_SMARTHOST_TLS_VERIFY;
		t.tls_required |= c->smarthost_tls != CONF_SMARTHOST_TLS_NONE;
	}
	/* dc->c is set at the first ready(): smtpc_conn_new never calls back
	 * synchronously, but failed() may come before any ready(). */
	smtpc_conn_new(d->s->deps.base, &t, &conn_cbs, dc);
}

/* How many more connections d should open now. */
static unsigned conns_wanted(struct dest *d)
{
	struct dconn *dc;
	unsigned idle = 0, busy_or_opening = d->n_conns + d->n_closing, want;

	TAILQ_FOREACH(dc, &d->conns, link)
	idle += dc->idle;
	if (d->paused || d->n_ready <= idle + d->n_opening)
		return 0;
	want = (unsigned)(d->n_ready - idle - d->n_opening);
	if (!sched_shape_may_connect(&d->shape, busy_or_opening, sched_now_ms()))
		return 0;
	if (busy_or_opening + want > d->shape.window)
		want = d->shape.window - busy_or_opening;
	return sched_conns_cap(d, busy_or_opening, want);
}

/* A route d may not use: every recipient waiting for it bounces. */
static void route_refused(struct dest *d, enum sched_screen why, const char *detail)
{
	struct smtpc_peer peer = {.host = d->name};
	struct smtpc_verdict v;

	memset(&v, 0, sizeof(v));
	if (why == SCHED_SCREEN_LOOP)
		smtpc_judge_failure(&peer, SMTPC_STAGE_DNS, SMTPC_FAIL_LOOP, NULL, &v);
	else
		smtpc_judge_failure(&peer, SMTPC_STAGE_DNS, SMTPC_FAIL_BLOCKED, detail, &v);
	dest_fail_ready(d, &v);
	smtpc_verdict_clear(&v);
}

/* The addresses r offers that d may use; NULL when none (handled). The
 * smarthost is configuration: taken as it is. */
static struct dns_route *route_screened(struct dest *d, const struct dns_route *r)
{
	const struct conf *c = d->s->conf;
	struct dns_route *mine = dns_route_dup(r);
	enum sched_screen v;
	char why[300];

	if (c->smarthost)
		return mine;
	v = sched_route_screen(mine, d->name, d->route_port, c->blocked_destinations,
	                       c->n_blocked_destinations, &d->s->self, why, sizeof(why));
	if (v == SCHED_SCREEN_OK)
		return mine;
	dns_route_free(mine);
	route_refused(d, v, why);
	return NULL;
}

/* A mail domain's route asks its policies (MTA-STS, DANE, TLS-RPT); a
 * smarthost or literal only when its lane asks for something. */
static int policy_wanted(const struct dest *d)
{
	int domain = !d->s->conf->smarthost && d->name[0] != '[';

	return d->s->deps.policy && (domain || d->requiretls || d->optout);
}

/* The policy of the route in d->pol_route is in: connect. */
static void on_policy(void *arg, struct tls_dest_pol *pol)
{
	struct dest *d = arg;
	struct dns_route *route = d->pol_route;
	unsigned want = conns_wanted(d), i;

	d->pol_id = 0;
	d->pol_route = NULL;
	tls_dest_pol_unref(d->pol);
	d->pol = pol;
	for (i = 0; i < want; i++)
		open_conn(d, dns_route_dup(route), d->route_port);
	dns_route_free(route);
	sched_dest_pump_later(d, 0);
}

const char *sched_dest_policy(const struct dest *d)
{
	if (d->pol && d->pol->n_hosts)
		return tls_pol_name(d->pol->hosts[0].pol);
	return d->requiretls ? "requiretls" : "none";
}

/* The route of d: connect as many as wanted, or fail its ready items.
 * Called by the resolver (never from inside dns_route()), or at once for
 * a route that needs no lookup. */
static void on_route(void *arg, const struct dns_route *r)
{
	struct dest *d = arg;
	struct dns_route *mine;
	struct smtpc_verdict v;
	struct smtpc_peer peer = {.host = d->name};
	unsigned want, i;

	d->route_id = 0;
	memset(&v, 0, sizeof(v));
	if (r->status == DNS_CANCELLED)
		return;
	if (r->status != DNS_OK) {
		/* The smarthost is configuration, not the recipient's fault:
		 * whatever DNS says of it, the mail waits. */
		enum smtpc_failure f = d->s->conf->smarthost       ? SMTPC_FAIL_SMARTHOST_DNS
		                       : r->null_mx                ? SMTPC_FAIL_NULL_MX
		                       : r->status == DNS_NXDOMAIN ? SMTPC_FAIL_DNS_NXDOMAIN
		                       : r->status == DNS_NODATA   ? SMTPC_FAIL_DNS_NOHOST
		                                                   : SMTPC_FAIL_DNS_TEMP;
		smtpc_judge_failure(&peer, SMTPC_STAGE_DNS, f, r->error, &v);
		log_info("dest=%s event=route status=%s error=%s", d->name,
		         dns_status_name(r->status), log_q(r->error));
		dest_fail_ready(d, &v);
		smtpc_verdict_clear(&v);
		return;
	}
	if (!(mine = route_screened(d, r)))
		return;
	if (policy_wanted(d)) {
		const char *domain = d->s->conf->smarthost || d->name[0] == '[' ? NULL : d->name;
		struct policy_lane lane = {d->requiretls, d->optout};
		d->pol_route = mine;
		d->pol_id = policy_resolve(d->s->deps.policy, domain, mine, &lane, on_policy, d);
		return;
	}
	want = conns_wanted(d);
	for (i = 0; i < want; i++)
		open_conn(d, dns_route_dup(mine), d->route_port);
	dns_route_free(mine);
}

/* A route for a numeric address (a "[addr]" domain literal, or an IP
 * smarthost); NXDOMAIN for anything else. */
static struct dns_route *literal_route(const char *host)
{
	struct dns_route *r = xcalloc(1, sizeof(*r));
	struct dns_route_host *h = xcalloc(1, sizeof(*h));
	struct dns_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, host, a.addr) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, host, a.addr) == 1)
		a.family = AF_INET6;
	r->hosts = h;
	r->n_hosts = 1;
	h->name = xstrdup(host);
	if (a.family) {
		h->addrs = xmalloc(sizeof(a));
		h->addrs[0] = a;
		h->n_addrs = 1;
		r->status = DNS_OK;
	} else {
		r->status = DNS_NXDOMAIN;
		r->error = "not a numeric address";
	}
	return r;
}

static void route_literal(struct dest *d, const char *host)
{
	struct dns_route *r = literal_route(host);

	on_route(d, r);
	dns_route_free(r);
}

/* RFC 6761 6.3: "localhost" is the loopback host, whatever DNS says (a
 * smarthost written [localhost]:port must work with dns_servers set). */
static int is_localhost(const char *host)
{
	return !strcasecmp(host, "localhost") || !strcasecmp(host, "localhost.");
}

static void route_localhost(struct dest *d)
{
	struct dns_route *r = literal_route("127.0.0.1");
	struct dns_route_host *h = &r->hosts[0];

	h->addrs = xrealloc(h->addrs, 2 * sizeof(*h->addrs));
	memset(&h->addrs[1], 0, sizeof(h->addrs[1]));
	h->addrs[1].family = AF_INET6;
	h->addrs[1].addr[15] = 1; /* ::1 */
	h->n_addrs = 2;
	free(h->name);
	h->name = xstrdup("localhost");
	on_route(d, r);
	dns_route_free(r);
}

/* Resolve and connect, for as many connections as are wanted: the
 * smarthost (an address as is, a name by its A/AAAA), a domain literal,
 * or the domain's MX hosts. */
static void dest_connect(struct dest *d)
{
	const struct conf *c = d->s->conf;
	char lit[128];

	if (d->route_id || d->pol_id || conns_wanted(d) == 0)
		return;
	d->route_port = (uint16_t)c->mx_port;
	if (c->smarthost) {
		d->route_port = c->smarthost_at.port;
		if (c->smarthost_at.is_ip)
			route_literal(d, c->smarthost_at.host);
		else if (is_localhost(c->smarthost_at.host))
			route_localhost(d);
		else
			d->route_id = dns_host(d->s->deps.dns, c->smarthost_at.host, on_route, d);
		return;
	}
	if (d->name[0] == '[') {
		snprintf(lit, sizeof(lit), "%s", d->name + 1);
		lit[strcspn(lit, "]")] = '\0';
		route_literal(d, strncasecmp(lit, "IPv6:", 5) ? lit : lit + 5);
		return;
	}
	d->route_id = dns_route(d->s->deps.dns, d->name, on_route, d);
}

/* Nothing to do: connections idle for SCHED_IDLE_KEEP_MS say QUIT; the rest
 * are looked at again when they reach it. */
static void dest_close_idle(struct dest *d)
{
	struct dconn *dc, *next;
	int64_t now = sched_now_ms(), soonest = 0;

	for (dc = TAILQ_FIRST(&d->conns); dc; dc = next) {
		next = TAILQ_NEXT(dc, link);
		if (!dc->idle || !dc->c)
			continue;
		if (now - dc->idle_since_ms >= SCHED_IDLE_KEEP_MS) {
			dconn_quit(dc);
			continue;
		}
		if (!soonest || dc->idle_since_ms + SCHED_IDLE_KEEP_MS < soonest)
			soonest = dc->idle_since_ms + SCHED_IDLE_KEEP_MS;
	}
	if (soonest)
		sched_dest_pump_later(d, soonest - now);
	sched_check_drained(d->s);
}

static void dest_pump(struct dest *d)
{
	struct dconn *dc;
	int64_t wait = 0;

	if (d->s->draining || d->failing)
		return;
	if (d->paused) {
		sched_dest_quit_idle(d);
		return;
	}
	/* Idle connections first: no handshake needed. dconn_start() changes
	 * only the connection it is given, so the walk may go on. */
	TAILQ_FOREACH(dc, &d->conns, link)
	{
		if (!dc->idle || !dc->c)
			continue;
		if (d->n_ready == 0)
			break;
		if (!rate_take(d, &wait)) {
			sched_dest_pump_later(d, wait);
			return;
		}
		dconn_start(dc, TAILQ_FIRST(&d->ready));
	}
	if (d->n_ready > 0) {
		dest_connect(d);
		if (d->shape.hold_until_ms > sched_now_ms())
			sched_dest_pump_later(d, d->shape.hold_until_ms - sched_now_ms());
		return;
	}
	dest_close_idle(d);
}

void sched_dest_pump_later(struct dest *d, int64_t delay_ms)
{
	d->active_ms = sched_now_ms();
	struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000)};

	if (delay_ms == 0 && evtimer_pending(d->ev_pump, NULL))
		event_del(d->ev_pump);
	else if (evtimer_pending(d->ev_pump, NULL))
		return;
	evtimer_add(d->ev_pump, &tv);
}

void sched_dest_free(struct dest *d)
{
	struct qitem *it;
	struct dconn *dc;

	/* a lookup still pending must not call back into freed memory */
	if (d->route_id)
		dns_cancel(d->s->deps.dns, d->route_id);
	if (d->pol_id)
		policy_cancel(d->s->deps.policy, d->pol_id);
	dns_route_free(d->pol_route);
	tls_dest_pol_unref(d->pol);
	/* those saying QUIT free their dconn when gone */
	while ((dc = TAILQ_FIRST(&d->closing))) {
		TAILQ_REMOVE(&d->closing, dc, link);
		d->s->n_closing--;
		dc->d = NULL;
	}
	/* the connections themselves went with smtpc_conn_free_all() */
	while ((dc = TAILQ_FIRST(&d->conns))) {
		TAILQ_REMOVE(&d->conns, dc, link);
		if (dc->item)
			sched_item_discard(dc->item);
		free(dc);
	}
	while ((it = TAILQ_FIRST(&d->ready))) {
		TAILQ_REMOVE(&d->ready, it, link);
		sched_item_discard(it);
	}
	event_free(d->ev_pump);
	smtpc_verdict_clear(&d->fail_v);
	free(d->name);
	free(d->key);
	free(d->pool_name);
	free(d);
}

void sched_dest_quit_idle(struct dest *d)
{
	struct dconn *dc, *next;

	for (dc = TAILQ_FIRST(&d->conns); dc; dc = next) {
		next = TAILQ_NEXT(dc, link);
		if (dc->idle && dc->c) {
			dconn_quit(dc);
		}
	}
}
