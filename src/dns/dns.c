/*
 * dns: c-ares on the libevent loop, a TTL cache, and request bookkeeping.
 *
 * Owns: the c-ares channel (its sockets are watched by libevent events
 * made in the sock-state callback; its timeouts by one evtimer), the
 * cache, the lookups in flight, and the requests (dns_route, dns_query_txt).
 *
 * Three layers:
 *   lookup  - one query (type, name) in flight; many requests may wait on
 *             it (coalescing). Its answer goes to the cache, then to them.
 *   cache   - answers by (type, name) until their TTL runs out; positive
 *             TTLs capped at max_ttl, negative ones at max_neg_ttl.
 *             TEMPFAIL is never cached.
 *   request - what a caller asked for: a route needs one MX answer and
 *             then A and AAAA answers for each host; a TXT request one
 *             answer. When complete it moves to the done list, and the
 *             "ready" event runs the callbacks, so no callback ever runs
 *             inside dns_route() even when the cache answers at once.
 *
 * Lifetimes: a request is freed after its callback; a cancelled one as
 * soon as no lookup still refers to it. A lookup is freed in its c-ares
 * callback, which c-ares always calls exactly once (ECANCELLED or
 * EDESTRUCTION included). Answers are refcounted: the cache holds one
 * reference, a delivery in progress another, so eviction during delivery
 * is harmless.
 */
#include "dns/dns.h"

#include <assert.h>
#include <ares.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include "dns/dns_answer.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "util/htable.h"
#include "util/util.h"

#define DEFAULT_TIMEOUT_MS  2000
#define DEFAULT_TRIES       2
#define DEFAULT_MAX_TTL     3600
#define DEFAULT_MAX_NEG_TTL 300
#define DEFAULT_CACHE_SIZE  10000
/* Key of both hash tables: query type and canonical name. */
struct hnode {
	struct htable_node hn;
	int type;
	char *name;
};

struct centry {
	struct hnode h;
	struct centry *older, *newer;
	uint64_t expires_ms;
	struct dns_answer *ans;
};

struct req;

struct waiter {
	struct waiter *next;
	struct req *req;
	int slot; /* which answer of the request this is: see req_answer() */
};

struct lookup {
	struct hnode h;
	struct dns *d;
	struct waiter *waiters, **tail; /* answered in the order they asked */
};

struct sockwatch {
	struct sockwatch *next;
	int fd;
	struct event *ev;
};

enum req_kind { REQ_ROUTE, REQ_TXT, REQ_TLSA };

/* One address family's answer for one host of a route. */
struct fam_answer {
	enum dns_status st;
	int secure;
	size_t n;
	struct dns_addr a[DNS_MAX_ADDRS];
};

struct req {
	struct req *prev, *next; /* in d->live or d->done; neither once cancelled */
	struct dns *d;
	uint64_t id;
	enum req_kind kind;
	int cancelled;
	unsigned waiting; /* waiters of this request in lookups in flight */
	unsigned todo;    /* answers still needed */
	char name[256];   /* canonical */
	dns_route_cb on_route;
	dns_txt_cb on_txt;
	dns_tlsa_cb on_tlsa;
	void *arg;
	uint64_t started_us; /* monotonic: the latency histogram */
	struct dns_route route;
	struct fam_answer (*fam)[2]; /* per host: [0] A, [1] AAAA */
	struct dns_txt txt;
	struct dns_tlsa_ans tlsa;
	struct dns_answer *tlsa_ans; /* holds tlsa.recs (a reference) */
};

struct reqlist {
	struct req *head, *tail;
	size_t n;
};

struct dns {
	struct event_base *base;
	ares_channel ch;
	struct dns_opts o;   /* o.servers is not kept */
	struct event *timer; /* c-ares timeouts */
	struct event *ready; /* runs the callbacks of finished requests */
	struct sockwatch *socks;
	struct htable cache, inflight; /* of struct hnode */
	struct centry *oldest, *newest;
	struct reqlist live, done;
	uint64_t next_id;
	struct dns_stats st;
	int closing;     /* inside dns_free: answers are dropped, not delivered */
	int dispatching; /* inside a callback: dns_free is forbidden */
};

static void req_answer(struct req *r, int slot, const struct dns_answer *a);
static void req_free(struct req *r);
static void lookup(struct dns *d, struct req *r, int slot, int type, const char *name);

/* ---- small helpers ---------------------------------------------------- */

static const char *type_name(int type)
{
	switch (type) {
	case DNS_T_MX:
		return "MX";
	case DNS_T_A:
		return "A";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_TXT:
		return "TXT";
	case DNS_T_TLSA:
		return "TLSA";
	}
	return "?";
}

static uint64_t now_ms(const struct dns *d)
{
	return d->o.now_ms();
}

static uint32_t default_rnd(void *arg, uint32_t n)
{
	return arc4random_uniform(n);
}

static void list_append(struct reqlist *l, struct req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
	l->n++;
}

static void list_remove(struct reqlist *l, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
	l->n--;
}

/* ---- hash tables keyed by (type, name) ------------------------------ */

struct hkey {
	int type;
	const char *name;
};

static int hnode_match(const struct htable_node *n, const void *key)
{
	const struct hnode *h = HTABLE_ENTRY(n, struct hnode, hn);
	const struct hkey *k = key;

	return h->type == k->type && strcmp(h->name, k->name) == 0;
}

static uint64_t key_hash(int type, const char *name)
{
	return htable_hash_mix(htable_hash_str(name), (uint64_t)type);
}

static struct hnode *hfind(const struct htable *t, int type, const char *name, uint64_t h)
{
	struct hkey k = {type, name};
	struct htable_node *n = htable_find(t, h, hnode_match, &k);

	return n ? HTABLE_ENTRY(n, struct hnode, hn) : NULL;
}

/* ---- cache ------------------------------------------------------------ */

static void cache_drop(struct dns *d, struct centry *c)
{
	htable_del(&d->cache, &c->h.hn);
	if (c->older)
		c->older->newer = c->newer;
	else
		d->oldest = c->newer;
	if (c->newer)
		c->newer->older = c->older;
	else
		d->newest = c->older;
	dns_answer_unref(c->ans);
	free(c->h.name);
	free(c);
}

static struct centry *cache_get(struct dns *d, int type, const char *name, uint64_t h)
{
	struct hnode *n = hfind(&d->cache, type, name, h);
	struct centry *c = n ? HTABLE_ENTRY(n, struct centry, h) : NULL;

	if (!c || c->expires_ms > now_ms(d))
		return c;
	cache_drop(d, c);
	return NULL;
}

static void cache_put(struct dns *d, const struct hnode *key, struct dns_answer *a, uint32_t ttl)
{
	struct hnode *old = hfind(&d->cache, key->type, key->name, key->hn.hash);
	struct centry *c;

	if (ttl == 0)
		return;
	if (old)
		cache_drop(d, HTABLE_ENTRY(old, struct centry, h));
	while (htable_count(&d->cache) >= d->o.cache_size && d->oldest)
		cache_drop(d, d->oldest); /* oldest inserted first: simple and bounded */
	c = xcalloc(1, sizeof *c);
	c->h = (struct hnode){.type = key->type, .name = xstrdup(key->name)};
	c->expires_ms = now_ms(d) + (uint64_t)ttl * 1000;
	c->ans = a;
	a->refs++;
	c->older = d->newest;
	if (d->newest)
		d->newest->newer = c;
	else
		d->oldest = c;
	d->newest = c;
	htable_add(&d->cache, &c->h.hn, key->hn.hash);
}

/* ---- c-ares on libevent ----------------------------------------------- */

static void timer_rearm(struct dns *d)
{
	struct timeval tv, *tvp = ares_timeout(d->ch, NULL, &tv);

	if (tvp)
		evtimer_add(d->timer, tvp);
	else
		evtimer_del(d->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	timer_rearm(d);
}

static void on_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	timer_rearm(d);
}

static struct sockwatch **sock_find(struct dns *d, int fd)
{
	struct sockwatch **pp = &d->socks;

	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	return pp;
}

/*
 * c-ares says which of its sockets it wants to read or write. The event is
 * remade on every change (it may be the one running: libevent allows
 * freeing an event from its own callback on the loop thread).
 */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct sockwatch **pp = sock_find(d, fd), *w = *pp;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));

	if (w)
		event_free(w->ev);
	if (!what) {
		if (w) {
			*pp = w->next;
			free(w);
		}
		return;
	}
	if (!w) {
		w = xcalloc(1, sizeof *w);
		w->fd = fd;
		w->next = d->socks;
		d->socks = w;
	}
	w->ev = event_new(d->base, fd, what | EV_PERSIST, on_sock_event, d);
	if (!w->ev || event_add(w->ev, NULL) < 0)
		fatal("event=dns_error error=\"cannot watch a DNS socket\"");
}

/* ---- lookups ---------------------------------------------------------- */

static void lookup_deliver(struct dns *d, struct lookup *l, const struct dns_answer *a)
{
	struct waiter *w;

	while ((w = l->waiters)) {
		struct req *r = w->req;

		l->waiters = w->next;
		r->waiting--;
		if (r->cancelled) {
			if (r->waiting == 0)
				req_free(r);
		} else if (!d->closing) {
			req_answer(r, w->slot, a);
		}
		free(w);
	}
}

static void on_ares_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup *l = arg;
	struct dns *d = l->d;
	uint32_t ttl;
	struct dns_answer *a = dns_answer_from_reply(l->h.type, status, abuf, alen, &d->o, &ttl);

	htable_del(&d->inflight, &l->h.hn);
	if (a->status == DNS_TEMPFAIL) {
		d->st.tempfails++;
		log_debug("event=dns_tempfail type=%s name=%s error=%s", type_name(l->h.type),
		          log_q(l->h.name), log_q(a->error));
	}
	if (!d->closing)
		cache_put(d, &l->h, a, ttl);
	lookup_deliver(d, l, a);
	dns_answer_unref(a);
	free(l->h.name);
	free(l);
}

static struct lookup *lookup_new(struct dns *d, int type, const char *name, uint64_t h)
{
	struct lookup *l = xcalloc(1, sizeof *l);

	l->h = (struct hnode){.type = type, .name = xstrdup(name)};
	l->d = d;
	l->tail = &l->waiters;
	htable_add(&d->inflight, &l->h.hn, h);
	return l;
}

/*
 * With trust_ad, the query carries the AD bit (RFC 6840 5.7): a validating
 * resolver then says in its answer whether it validated it. c-ares's
 * ares_query() cannot set it, so the query is made with ares_create_query()
 * and sent with ares_send() (which gives it its own ID). AD rather than
 * EDNS0 DO: no OPT record (c-ares 1.18 does not resend without one to a
 * server that answers FORMERR) and no RRSIGs in the answer, which Posthorn
 * would not read anyway. Returns -1 when the query cannot be made.
 */
static int send_with_ad(struct dns *d, struct lookup *l)
{
	unsigned char *q = NULL;
	int len = 0;

	if (ares_create_query(l->h.name, DNS_C_IN, l->h.type, 0, 1, &q, &len, 0) != ARES_SUCCESS ||
	    len < DNS_WIRE_HDR_SIZE) {
		if (q)
			ares_free_string(q);
		return -1;
	}
	q[3] |= (unsigned char)DNS_WIRE_AD; /* the low byte of the flags word */
	ares_send(d->ch, q, len, on_ares_answer, l);
	ares_free_string(q);
	return 0;
}

/* Sent only after the first waiter is attached: c-ares may answer at once. */
static void lookup_send(struct dns *d, struct lookup *l)
{
	d->st.queries_sent++;
	log_debug("event=dns_query type=%s name=%s", type_name(l->h.type), log_q(l->h.name));
	if (!d->o.trust_ad || send_with_ad(d, l) < 0)
		ares_query(d->ch, l->h.name, DNS_C_IN, l->h.type, on_ares_answer, l);
	timer_rearm(d);
}

/*
 * Get the (type, name) answer to request r's slot: from the cache at once,
 * or by joining a lookup in flight, or by starting one.
 */
static void lookup(struct dns *d, struct req *r, int slot, int type, const char *name)
{
	uint64_t h = key_hash(type, name);
	struct centry *c = cache_get(d, type, name, h);
	struct hnode *n;
	struct lookup *l;
	struct waiter *w;
	int fresh = 0;

	if (c) {
		struct dns_answer *a = c->ans;

		d->st.cache_hits++;
		a->refs++; /* the delivery may start queries that evict c */
		req_answer(r, slot, a);
		dns_answer_unref(a);
		return;
	}
	n = hfind(&d->inflight, type, name, h);
	l = n ? HTABLE_ENTRY(n, struct lookup, h) : NULL;
	if (l) {
		d->st.coalesced++;
	} else {
		l = lookup_new(d, type, name, h);
		fresh = 1;
	}
	w = xcalloc(1, sizeof *w);
	*w = (struct waiter){.req = r, .slot = slot};
	*l->tail = w;
	l->tail = &w->next;
	r->waiting++;
	if (fresh)
		lookup_send(d, l);
}

/* ---- requests --------------------------------------------------------- */

static struct req *req_new(struct dns *d, enum req_kind kind, void *arg)
{
	struct req *r = xcalloc(1, sizeof *r);

	r->d = d;
	r->id = d->next_id++;
	r->kind = kind;
	r->arg = arg;
	r->started_us = clock_mono_us();
	list_append(&d->live, r);
	return r;
}

static void txt_clear(struct dns_txt *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->records[i]);
	free(t->records);
	memset(t, 0, sizeof *t);
}

static void req_free(struct req *r)
{
	dns_route_clear(&r->route);
	txt_clear(&r->txt);
	if (r->tlsa_ans)
		dns_answer_unref(r->tlsa_ans);
	free(r->fam);
	free(r);
}

/* Complete: the callback runs from the ready event, never from here. */
static void req_done(struct req *r)
{
	struct dns *d = r->d;

	list_remove(&d->live, r);
	list_append(&d->done, r);
	event_active(d->ready, EV_TIMEOUT, 0);
}

static void route_complete(struct req *r)
{
	size_t i;

	for (i = 0; i < r->route.n_hosts; i++) {
		struct fam_answer *f4 = &r->fam[i][0], *f6 = &r->fam[i][1];

		dns_route_host_addrs(&r->route.hosts[i], f4->st, f4->a, f4->n, f6->st, f6->a,
		                     f6->n);
		r->route.hosts[i].secure = f4->secure && f6->secure;
	}
	dns_route_finish(&r->route);
	req_done(r);
}

static void route_mx_answer(struct req *r, const struct dns_answer *a)
{
	struct dns *d = r->d;
	size_t i, n;

	dns_route_plan(&r->route, r->name, a->status, a->mx, a->n, d->o.rnd, d->o.rnd_arg);
	r->route.secure = a->secure;
	if (a->status == DNS_TEMPFAIL && a->error)
		r->route.error = a->error; /* the c-ares reason says more */
	n = r->route.n_hosts;
	if (r->route.status != DNS_OK || n == 0) {
		req_done(r);
		return;
	}
	r->fam = xcalloc(n, sizeof *r->fam);
	r->todo = (unsigned)(2 * n); /* set first: answers may arrive during the loop */
	for (i = 0; i < n; i++) {
		lookup(d, r, (int)(1 + 2 * i), DNS_T_A, r->route.hosts[i].name);
		lookup(d, r, (int)(2 + 2 * i), DNS_T_AAAA, r->route.hosts[i].name);
	}
}

static void route_addr_answer(struct req *r, int slot, const struct dns_answer *a)
{
	struct fam_answer *f = &r->fam[(slot - 1) / 2][(slot - 1) % 2];

	f->st = a->status;
	f->secure = a->secure;
	f->n = a->n < DNS_MAX_ADDRS ? a->n : DNS_MAX_ADDRS;
	if (f->n)
		memcpy(f->a, a->addrs, f->n * sizeof *f->a);
	if (--r->todo == 0)
		route_complete(r);
}

static void txt_answer(struct req *r, const struct dns_answer *a)
{
	size_t i;

	r->txt.status = a->status;
	r->txt.secure = a->secure;
	r->txt.error = a->error;
	r->txt.records = a->n ? xcalloc(a->n, sizeof *r->txt.records) : NULL;
	for (i = 0; i < a->n; i++)
		r->txt.records[i] = xstrdup(a->txt[i]);
	r->txt.n = a->n;
	req_done(r);
}

/* The records stay in the (refcounted) answer; the request holds it. */
static void tlsa_answer(struct req *r, const struct dns_answer *a)
{
	r->tlsa_ans = (struct dns_answer *)a;
	r->tlsa_ans->refs++;
	r->tlsa = (struct dns_tlsa_ans){a->status, a->secure, a->n, a->tlsa, a->error};
	req_done(r);
}

/*
 * Slots: 0 is the request's first lookup (MX of a route, the TXT or the
 * TLSA); 1 + 2i and 2 + 2i are the A and AAAA of route host i.
 */
static void req_answer(struct req *r, int slot, const struct dns_answer *a)
{
	if (r->kind == REQ_TXT)
		txt_answer(r, a);
	else if (r->kind == REQ_TLSA)
		tlsa_answer(r, a);
	else if (slot == 0)
		route_mx_answer(r, a);
	else
		route_addr_answer(r, slot, a);
}

static void req_callback(struct req *r)
{
	struct dns *d = r->d;

	if (!d->closing)
		metrics_observe_us(M_DNS_LATENCY, clock_mono_us() - r->started_us);
	d->dispatching++;
	if (r->kind == REQ_ROUTE)
		r->on_route(r->arg, &r->route);
	else if (r->kind == REQ_TLSA)
		r->on_tlsa(r->arg, &r->tlsa);
	else
		r->on_txt(r->arg, &r->txt);
	d->dispatching--;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	size_t n = d->done.n; /* those done by now; later ones get another turn */
	struct req *r;

	while (n-- > 0 && (r = d->done.head)) {
		list_remove(&d->done, r);
		req_callback(r);
		req_free(r);
	}
	if (d->done.head)
		event_active(d->ready, EV_TIMEOUT, 0);
}

/* ---- public ----------------------------------------------------------- */

static void opts_defaults(struct dns_opts *o, const struct dns_opts *in)
{
	if (in)
		*o = *in;
	else
		memset(o, 0, sizeof *o);
	o->servers = NULL;
	o->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	o->tries = o->tries ? o->tries : DEFAULT_TRIES;
	o->max_ttl = o->max_ttl ? o->max_ttl : DEFAULT_MAX_TTL;
	o->max_neg_ttl = o->max_neg_ttl ? o->max_neg_ttl : DEFAULT_MAX_NEG_TTL;
	o->cache_size = o->cache_size ? o->cache_size : DEFAULT_CACHE_SIZE;
	o->now_ms = o->now_ms ? o->now_ms : clock_mono_ms;
	if (!o->rnd) {
		o->rnd = default_rnd;
		o->rnd_arg = NULL;
	}
}

static int channel_init(struct dns *d, const char *servers)
{
	struct ares_options ao;
	char lookups[] = "b";
	int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
	int rc;

	memset(&ao, 0, sizeof ao);
	/* Mail domains are absolute: no search list, no HOSTALIASES. No EDNS:
	 * c-ares before 1.34.3 does not resend without it to servers that
	 * answer FORMERR, and a truncated answer falls back to TCP anyway. */
	ao.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	ao.timeout = (int)d->o.timeout_ms;
	ao.tries = (int)d->o.tries;
	ao.sock_state_cb = on_sock_state;
	ao.sock_state_cb_data = d;
	if (servers) {
		/* Explicit servers: the host's resolver setup plays no part. */
		mask |= ARES_OPT_RESOLVCONF | ARES_OPT_LOOKUPS;
		ao.resolvconf_path = (char *)"/dev/null";
		ao.lookups = lookups;
	}
	rc = ares_init_options(&d->ch, &ao, mask);
	if (rc != ARES_SUCCESS)
		return rc;
	if (servers)
		rc = ares_set_servers_ports_csv(d->ch, servers);
	if (rc != ARES_SUCCESS)
		ares_destroy(d->ch);
	return rc;
}

struct dns *dns_new(struct event_base *base, const struct dns_opts *opts, char **err)
{
	const char *servers = opts && opts->servers && *opts->servers ? opts->servers : NULL;
	struct dns *d = xcalloc(1, sizeof *d);
	int rc;

	d->base = base;
	opts_defaults(&d->o, opts);
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc == ARES_SUCCESS && (rc = channel_init(d, servers)) != ARES_SUCCESS)
		ares_library_cleanup();
	if (rc != ARES_SUCCESS) {
		if (err)
			*err =
			    xasprintf("cannot start the resolver%s%s: %s", servers ? " for " : "",
			              servers ? servers : "", ares_strerror(rc));
		free(d);
		return NULL;
	}
	d->timer = evtimer_new(base, on_timer, d);
	d->ready = event_new(base, -1, 0, on_ready, d);
	if (!d->timer || !d->ready)
		fatal("event=dns_error error=\"cannot create events\"");
	htable_init(&d->cache);
	htable_init(&d->inflight);
	d->next_id = 1;
	return d;
}

/* Answer every request still owed one with DNS_CANCELLED, from dns_free. */
static void cancel_all(struct dns *d, struct reqlist *l)
{
	struct req *r;

	while ((r = l->head)) {
		list_remove(l, r);
		dns_route_clear(&r->route);
		txt_clear(&r->txt);
		r->route.status = r->txt.status = r->tlsa.status = DNS_CANCELLED;
		r->route.error = r->txt.error = r->tlsa.error = "resolver shut down";
		r->tlsa.n = 0;
		req_callback(r);
		req_free(r);
	}
}

void dns_free(struct dns *d)
{
	struct sockwatch *w;

	if (!d)
		return;
	assert(!d->dispatching); /* never from inside a dns callback */
	d->closing = 1;
	/* Runs every lookup's callback (EDESTRUCTION): waiters let go, cancelled
	 * requests are freed, nothing is delivered or cached. */
	ares_destroy(d->ch);
	ares_library_cleanup();
	cancel_all(d, &d->live);
	cancel_all(d, &d->done);
	while ((w = d->socks)) {
		d->socks = w->next;
		event_free(w->ev);
		free(w);
	}
	while (d->oldest)
		cache_drop(d, d->oldest);
	event_free(d->timer);
	event_free(d->ready);
	htable_fini(&d->cache);
	htable_fini(&d->inflight);
	free(d);
}

static uint64_t route_start(struct dns *d, const char *domain, int mx, dns_route_cb on_route,
                            void *arg)
{
	struct dns_answer no_mx = {.status = DNS_NODATA};
	struct req *r;

	if (d->closing)
		return 0;
	r = req_new(d, REQ_ROUTE, arg);
	r->on_route = on_route;
	if (dns_name_canon(domain, r->name, sizeof r->name) < 0) {
		r->route.status = DNS_NXDOMAIN;
		r->route.error = "invalid domain name";
		req_done(r);
	} else if (mx) {
		lookup(d, r, 0, DNS_T_MX, r->name);
	} else {
		route_mx_answer(r, &no_mx); /* the name itself, as an implicit MX */
	}
	return r->id;
}

uint64_t dns_route(struct dns *d, const char *domain, dns_route_cb on_route, void *arg)
{
	return route_start(d, domain, 1, on_route, arg);
}

uint64_t dns_host(struct dns *d, const char *host, dns_route_cb on_route, void *arg)
{
	return route_start(d, host, 0, on_route, arg);
}

/* A request for one (type, name) answer: TXT or TLSA. */
static uint64_t single_start(struct dns *d, struct req *r, int type, const char *name)
{
	if (dns_name_canon(name, r->name, sizeof r->name) < 0) {
		r->txt.status = r->tlsa.status = DNS_NXDOMAIN;
		r->txt.error = r->tlsa.error = "invalid domain name";
		req_done(r);
	} else {
		lookup(d, r, 0, type, r->name);
	}
	return r->id;
}

uint64_t dns_query_txt(struct dns *d, const char *name, dns_txt_cb on_txt, void *arg)
{
	struct req *r;

	if (d->closing)
		return 0;
	r = req_new(d, REQ_TXT, arg);
	r->on_txt = on_txt;
	return single_start(d, r, DNS_T_TXT, name);
}

uint64_t dns_query_tlsa(struct dns *d, const char *name, dns_tlsa_cb on_tlsa, void *arg)
{
	struct req *r;

	if (d->closing)
		return 0;
	r = req_new(d, REQ_TLSA, arg);
	r->on_tlsa = on_tlsa;
	return single_start(d, r, DNS_T_TLSA, name);
}

static struct req *find_req(const struct reqlist *l, uint64_t id)
{
	struct req *r;

	for (r = l->head; r && r->id != id; r = r->next)
		;
	return r;
}

int dns_cancel(struct dns *d, uint64_t id)
{
	struct req *r = find_req(&d->live, id);

	if (r) {
		/* Still waiting on lookups: they free it when they answer. */
		list_remove(&d->live, r);
		r->cancelled = 1;
		if (r->waiting == 0)
			req_free(r);
		return 0;
	}
	r = find_req(&d->done, id);
	if (!r)
		return -1;
	list_remove(&d->done, r);
	req_free(r);
	return 0;
}

void dns_get_stats(const struct dns *d, struct dns_stats *out)
{
	*out = d->st;
	out->cache_entries = htable_count(&d->cache);
	out->pending = d->live.n + d->done.n;
}

int dns_hosts_file(struct dns *d, const char *name, char *out, size_t n)
{
	static const int fams[] = {AF_INET, AF_INET6};

	for (size_t i = 0; i < ARRAY_LEN(fams); i++) {
		struct hostent *h = NULL;
		int ok = ares_gethostbyname_file(d->ch, name, fams[i], &h) == ARES_SUCCESS && h &&
		         h->h_addr_list[0] && inet_ntop(fams[i], h->h_addr_list[0], out, n);

		if (h)
			ares_free_hostent(h);
		if (ok)
			return 0;
	}
	return -1;
}
