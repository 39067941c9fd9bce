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

#include <arpa/nameser.h>
#include <assert.h>
#include <ares.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log/log.h"
#include "util/util.h"

#define DEFAULT_TIMEOUT_MS  2000
#define DEFAULT_TRIES       2
#define DEFAULT_MAX_TTL     3600
#define DEFAULT_MAX_NEG_TTL 300
#define DEFAULT_CACHE_SIZE  10000
/* A negative answer without an SOA (dnsmasq's local data, some broken
 * servers) says nothing about how long it holds; keep it this long. */
#define NEG_TTL_NO_SOA 60
/* MX records kept from one answer before ordering: the packet bounds the
 * count already, this bounds the memory a cache entry holds. */
#define MX_KEEP          64
#define INFLIGHT_BUCKETS 1024

/* An answer to one (type, name) query, shared by the cache and deliveries. */
struct answer {
	unsigned refs;
	enum dns_status status;
	const char *error; /* static text (ares_strerror) for a failure */
	size_t n;
	struct dns_mx_rr *mx;   /* T_MX; exchanges owned */
	struct dns_addr *addrs; /* T_A, T_AAAA */
	char **txt;             /* T_TXT */
};

/* Key of both hash tables: query type and canonical name. */
struct hnode {
	struct hnode *hnext;
	uint32_t hash;
	int type;
	char *name;
};

struct htab {
	struct hnode **b;
	size_t nb; /* a power of two */
	size_t n;
};

struct centry {
	struct hnode h; /* first: a struct hnode * is a struct centry * */
	struct centry *older, *newer;
	uint64_t expires_ms;
	struct answer *ans;
};

struct req;

struct waiter {
	struct waiter *next;
	struct req *req;
	int slot; /* which answer of the request this is: see req_answer() */
};

struct lookup {
	struct hnode h; /* first, as in centry */
	struct dns *d;
	struct waiter *waiters, **tail; /* answered in the order they asked */
};

struct sockwatch {
	struct sockwatch *next;
	int fd;
	struct event *ev;
};

enum req_kind { REQ_ROUTE, REQ_TXT };

/* One address family's answer for one host of a route. */
struct fam_answer {
	enum dns_status st;
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
	void *arg;
	struct dns_route route;
	struct fam_answer (*fam)[2]; /* per host: [0] A, [1] AAAA */
	struct dns_txt txt;
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
	struct htab cache, inflight;
	struct centry *oldest, *newest;
	struct reqlist live, done;
	uint64_t next_id;
	struct dns_stats st;
	int closing;     /* inside dns_free: answers are dropped, not delivered */
	int dispatching; /* inside a callback: dns_free is forbidden */
};

static void req_answer(struct req *r, int slot, const struct answer *a);
static void req_free(struct req *r);
static void lookup(struct dns *d, struct req *r, int slot, int type, const char *name);

/* ---- small helpers ---------------------------------------------------- */

static const char *type_name(int type)
{
	switch (type) {
	case ns_t_mx:
		return "MX";
	case ns_t_a:
		return "A";
	case ns_t_aaaa:
		return "AAAA";
	case ns_t_txt:
		return "TXT";
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

/* ---- hash table keyed by (type, name) --------------------------------- */

static uint32_t key_hash(int type, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)type; /* FNV-1a */

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h;
}

static void htab_init(struct htab *t, size_t want)
{
	t->nb = 64;
	while (t->nb < want)
		t->nb <<= 1;
	t->b = xcalloc(t->nb, sizeof *t->b);
	t->n = 0;
}

static struct hnode *htab_find(const struct htab *t, int type, const char *name, uint32_t h)
{
	struct hnode *n;

	for (n = t->b[h & (t->nb - 1)]; n; n = n->hnext)
		if (n->hash == h && n->type == type && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static void htab_add(struct htab *t, struct hnode *n)
{
	struct hnode **head = &t->b[n->hash & (t->nb - 1)];

	n->hnext = *head;
	*head = n;
	t->n++;
}

static void htab_del(struct htab *t, struct hnode *n)
{
	struct hnode **pp = &t->b[n->hash & (t->nb - 1)];

	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	t->n--;
}

/* ---- answers ---------------------------------------------------------- */

static struct answer *answer_new(enum dns_status st, const char *error)
{
	struct answer *a = xcalloc(1, sizeof *a);

	a->refs = 1;
	a->status = st;
	a->error = error;
	return a;
}

static void answer_unref(struct answer *a)
{
	size_t i;

	if (--a->refs > 0)
		return;
	for (i = 0; a->mx && i < a->n; i++)
		free((char *)a->mx[i].exchange);
	for (i = 0; a->txt && i < a->n; i++)
		free(a->txt[i]);
	free(a->mx);
	free(a->addrs);
	free(a->txt);
	free(a);
}

static enum dns_status map_ares_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME: /* cannot exist in the DNS; names are checked before */
		return DNS_NXDOMAIN;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return DNS_CANCELLED;
	default: /* timeout, SERVFAIL, REFUSED, unreachable, malformed... */
		return DNS_TEMPFAIL;
	}
}

/* A parser's verdict on a reply c-ares called a success. */
static void set_parse_status(struct answer *a, int rc)
{
	if (rc == ARES_SUCCESS && a->n > 0)
		return;
	if (rc == ARES_SUCCESS || rc == ARES_ENODATA) {
		a->status = DNS_NODATA; /* e.g. only a CNAME, or other types */
		a->error = ares_strerror(ARES_ENODATA);
	} else {
		a->status = DNS_TEMPFAIL;
		a->error = ares_strerror(rc);
	}
}

static int by_pref(const void *x, const void *y)
{
	const struct dns_mx_rr *a = x, *b = y;

	return (a->pref > b->pref) - (a->pref < b->pref);
}

static void parse_mx(struct answer *a, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *list = NULL, *m;
	int rc = ares_parse_mx_reply(abuf, alen, &list);
	size_t n = 0;

	for (m = list; rc == ARES_SUCCESS && m; m = m->next)
		n++;
	a->mx = n ? xcalloc(n, sizeof *a->mx) : NULL;
	for (m = list; rc == ARES_SUCCESS && m; m = m->next)
		a->mx[a->n++] =
		    (struct dns_mx_rr){.exchange = xstrdup(m->host), .pref = m->priority};
	if (list)
		ares_free_data(list);
	if (a->n > MX_KEEP) { /* keep the best: the route wants those */
		qsort(a->mx, a->n, sizeof *a->mx, by_pref);
		while (a->n > MX_KEEP)
			free((char *)a->mx[--a->n].exchange);
	}
	set_parse_status(a, rc);
}

static void parse_a(struct answer *a, const unsigned char *abuf, int alen)
{
	struct ares_addrttl t[DNS_MAX_ADDRS];
	int i, n = DNS_MAX_ADDRS;
	int rc = ares_parse_a_reply(abuf, alen, NULL, t, &n);

	if (rc == ARES_SUCCESS && n > 0) {
		a->addrs = xcalloc((size_t)n, sizeof *a->addrs);
		for (i = 0; i < n; i++) {
			a->addrs[i].family = AF_INET;
			memcpy(a->addrs[i].addr, &t[i].ipaddr, 4);
		}
		a->n = (size_t)n;
	}
	set_parse_status(a, rc);
}

static void parse_aaaa(struct answer *a, const unsigned char *abuf, int alen)
{
	struct ares_addr6ttl t[DNS_MAX_ADDRS];
	int i, n = DNS_MAX_ADDRS;
	int rc = ares_parse_aaaa_reply(abuf, alen, NULL, t, &n);

	if (rc == ARES_SUCCESS && n > 0) {
		a->addrs = xcalloc((size_t)n, sizeof *a->addrs);
		for (i = 0; i < n; i++) {
			a->addrs[i].family = AF_INET6;
			memcpy(a->addrs[i].addr, &t[i].ip6addr, 16);
		}
		a->n = (size_t)n;
	}
	set_parse_status(a, rc);
}

/* Keep a finished TXT record unless it holds a NUL (no policy record does). */
static void txt_keep(struct answer *a, struct buf *rec)
{
	if (rec->len > 0 && !memchr(rec->data, '\0', rec->len) && a->n < DNS_MAX_TXT)
		a->txt[a->n++] = xstrndup(rec->data, rec->len);
	buf_reset(rec);
}

static void parse_txt(struct answer *a, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *list = NULL, *t;
	int rc = ares_parse_txt_reply_ext(abuf, alen, &list);
	struct buf rec;

	buf_init(&rec);
	a->txt = xcalloc(DNS_MAX_TXT, sizeof *a->txt);
	for (t = list; rc == ARES_SUCCESS && t; t = t->next) {
		if (t->record_start && t != list)
			txt_keep(a, &rec);
		buf_append(&rec, t->txt, t->length);
	}
	if (list)
		txt_keep(a, &rec);
	buf_free(&rec);
	if (list)
		ares_free_data(list);
	set_parse_status(a, rc);
}

/* ---- TTLs from the message -------------------------------------------- */

/*
 * c-ares 1.18 reports no TTL for MX or TXT records, and ares_parse_soa_reply
 * reads only the answer section, not the SOA a negative answer carries in
 * its authority section. So the cache reads TTLs off the message itself.
 * The reply was already checked by c-ares; this still bounds every read.
 */
struct msg {
	const unsigned char *p;
	size_t len, off;
};

static int msg_skip_name(struct msg *m)
{
	while (m->off < m->len) {
		unsigned c = m->p[m->off];

		if (c == 0) {
			m->off++;
			return 0;
		}
		if ((c & 0xC0) == 0xC0) { /* compression pointer ends the name */
			m->off += 2;
			return m->off <= m->len ? 0 : -1;
		}
		if (c & 0xC0)
			return -1;
		m->off += 1 + c;
	}
	return -1;
}

static int msg_u16(struct msg *m, unsigned *v)
{
	if (m->off + 2 > m->len)
		return -1;
	*v = (unsigned)m->p[m->off] << 8 | m->p[m->off + 1];
	m->off += 2;
	return 0;
}

static int msg_u32(struct msg *m, uint32_t *v)
{
	if (m->off + 4 > m->len)
		return -1;
	*v = (uint32_t)m->p[m->off] << 24 | (uint32_t)m->p[m->off + 1] << 16 |
	     (uint32_t)m->p[m->off + 2] << 8 | m->p[m->off + 3];
	m->off += 4;
	/* RFC 2181 8: a TTL with the top bit set is read as zero. */
	if (*v > 0x7FFFFFFFu)
		*v = 0;
	return 0;
}

/* Negative-answer TTL from an SOA's rdata: min(TTL, MINIMUM), RFC 2308 5. */
static int soa_neg_ttl(struct msg m, uint32_t ttl, uint32_t *out)
{
	uint32_t v[5];
	int i;

	if (msg_skip_name(&m) < 0 || msg_skip_name(&m) < 0)
		return -1;
	for (i = 0; i < 5; i++)
		if (msg_u32(&m, &v[i]) < 0)
			return -1;
	*out = ttl < v[4] ? ttl : v[4];
	return 0;
}

struct msg_ttls {
	uint32_t answer_min; /* UINT32_MAX: no answer record */
	uint32_t soa_neg;    /* UINT32_MAX: no SOA in the authority section */
};

/* Walk one record; its TTL goes to t according to the section. */
static int msg_rr(struct msg *m, int authority, struct msg_ttls *t)
{
	unsigned type, class, rdlen;
	uint32_t ttl, neg;

	if (msg_skip_name(m) < 0 || msg_u16(m, &type) < 0 || msg_u16(m, &class) < 0 ||
	    msg_u32(m, &ttl) < 0 || msg_u16(m, &rdlen) < 0 || m->off + rdlen > m->len)
		return -1;
	if (!authority && ttl < t->answer_min)
		t->answer_min = ttl;
	if (authority && type == ns_t_soa) {
		struct msg rd = {m->p, m->off + rdlen, m->off};

		if (soa_neg_ttl(rd, ttl, &neg) == 0 && neg < t->soa_neg)
			t->soa_neg = neg;
	}
	m->off += rdlen;
	return 0;
}

static void msg_ttls(const unsigned char *abuf, int alen, struct msg_ttls *t)
{
	struct msg m = {abuf, alen > 0 ? (size_t)alen : 0, 4};
	unsigned qd, an, ns, i;

	t->answer_min = t->soa_neg = UINT32_MAX;
	if (!abuf || msg_u16(&m, &qd) < 0 || msg_u16(&m, &an) < 0 || msg_u16(&m, &ns) < 0)
		return;
	m.off = 12;
	for (i = 0; i < qd; i++)
		if (msg_skip_name(&m) < 0 || (m.off += 4) > m.len)
			return;
	for (i = 0; i < an + ns; i++)
		if (msg_rr(&m, i >= an, t) < 0)
			return;
}

/* Seconds to cache a, 0 for not at all. */
static uint32_t answer_ttl(const struct dns *d, const struct answer *a, const unsigned char *abuf,
                           int alen)
{
	struct msg_ttls t;
	uint32_t ttl;

	msg_ttls(abuf, alen, &t);
	if (a->status == DNS_OK)
		return t.answer_min == UINT32_MAX
		           ? 0
		           : (t.answer_min < d->o.max_ttl ? t.answer_min : d->o.max_ttl);
	if (a->status != DNS_NXDOMAIN && a->status != DNS_NODATA)
		return 0;
	ttl = t.soa_neg == UINT32_MAX ? NEG_TTL_NO_SOA : t.soa_neg;
	return ttl < d->o.max_neg_ttl ? ttl : d->o.max_neg_ttl;
}

static struct answer *answer_from_reply(int type, int status, const unsigned char *abuf, int alen)
{
	enum dns_status st = map_ares_status(status);
	struct answer *a = answer_new(st, st == DNS_OK ? NULL : ares_strerror(status));

	if (st != DNS_OK)
		return a;
	if (type == ns_t_mx)
		parse_mx(a, abuf, alen);
	else if (type == ns_t_a)
		parse_a(a, abuf, alen);
	else if (type == ns_t_aaaa)
		parse_aaaa(a, abuf, alen);
	else
		parse_txt(a, abuf, alen);
	return a;
}

/* ---- cache ------------------------------------------------------------ */

static void cache_drop(struct dns *d, struct centry *c)
{
	htab_del(&d->cache, &c->h);
	if (c->older)
		c->older->newer = c->newer;
	else
		d->oldest = c->newer;
	if (c->newer)
		c->newer->older = c->older;
	else
		d->newest = c->older;
	answer_unref(c->ans);
	free(c->h.name);
	free(c);
}

static struct centry *cache_get(struct dns *d, int type, const char *name, uint32_t h)
{
	struct centry *c = (struct centry *)htab_find(&d->cache, type, name, h);

	if (!c || c->expires_ms > now_ms(d))
		return c;
	cache_drop(d, c);
	return NULL;
}

static void cache_put(struct dns *d, const struct hnode *key, struct answer *a, uint32_t ttl)
{
	struct centry *c = (struct centry *)htab_find(&d->cache, key->type, key->name, key->hash);

	if (ttl == 0)
		return;
	if (c)
		cache_drop(d, c);
	while (d->cache.n >= d->o.cache_size && d->oldest)
		cache_drop(d, d->oldest); /* oldest inserted first: simple and bounded */
	c = xcalloc(1, sizeof *c);
	c->h = (struct hnode){.hash = key->hash, .type = key->type, .name = xstrdup(key->name)};
	c->expires_ms = now_ms(d) + (uint64_t)ttl * 1000;
	c->ans = a;
	a->refs++;
	c->older = d->newest;
	if (d->newest)
		d->newest->newer = c;
	else
		d->oldest = c;
	d->newest = c;
	htab_add(&d->cache, &c->h);
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
		fatal("session=NOQUEUE event=dns_error error=\"cannot watch a DNS socket\"");
}

/* ---- lookups ---------------------------------------------------------- */

static void lookup_deliver(struct dns *d, struct lookup *l, const struct answer *a)
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
	struct answer *a = answer_from_reply(l->h.type, status, abuf, alen);

	htab_del(&d->inflight, &l->h);
	if (a->status == DNS_TEMPFAIL) {
		d->st.tempfails++;
		log_debug("session=NOQUEUE event=dns_tempfail type=%s name=%s error=%s",
		          type_name(l->h.type), log_q(l->h.name), log_q(a->error));
	}
	if (!d->closing)
		cache_put(d, &l->h, a, answer_ttl(d, a, abuf, alen));
	lookup_deliver(d, l, a);
	answer_unref(a);
	free(l->h.name);
	free(l);
}

static struct lookup *lookup_new(struct dns *d, int type, const char *name, uint32_t h)
{
	struct lookup *l = xcalloc(1, sizeof *l);

	l->h = (struct hnode){.hash = h, .type = type, .name = xstrdup(name)};
	l->d = d;
	l->tail = &l->waiters;
	htab_add(&d->inflight, &l->h);
	return l;
}

/* Sent only after the first waiter is attached: c-ares may answer at once. */
static void lookup_send(struct dns *d, struct lookup *l)
{
	d->st.queries_sent++;
	log_debug("session=NOQUEUE event=dns_query type=%s name=%s", type_name(l->h.type),
	          log_q(l->h.name));
	ares_query(d->ch, l->h.name, ns_c_in, l->h.type, on_ares_answer, l);
	timer_rearm(d);
}

/*
 * Get the (type, name) answer to request r's slot: from the cache at once,
 * or by joining a lookup in flight, or by starting one.
 */
static void lookup(struct dns *d, struct req *r, int slot, int type, const char *name)
{
	uint32_t h = key_hash(type, name);
	struct centry *c = cache_get(d, type, name, h);
	struct lookup *l;
	struct waiter *w;
	int fresh = 0;

	if (c) {
		struct answer *a = c->ans;

		d->st.cache_hits++;
		a->refs++; /* the delivery may start queries that evict c */
		req_answer(r, slot, a);
		answer_unref(a);
		return;
	}
	l = (struct lookup *)htab_find(&d->inflight, type, name, h);
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
	}
	dns_route_finish(&r->route);
	req_done(r);
}

static void route_mx_answer(struct req *r, const struct answer *a)
{
	struct dns *d = r->d;
	size_t i, n;

	dns_route_plan(&r->route, r->name, a->status, a->mx, a->n, d->o.rnd, d->o.rnd_arg);
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
		lookup(d, r, (int)(1 + 2 * i), ns_t_a, r->route.hosts[i].name);
		lookup(d, r, (int)(2 + 2 * i), ns_t_aaaa, r->route.hosts[i].name);
	}
}

static void route_addr_answer(struct req *r, int slot, const struct answer *a)
{
	struct fam_answer *f = &r->fam[(slot - 1) / 2][(slot - 1) % 2];

	f->st = a->status;
	f->n = a->n < DNS_MAX_ADDRS ? a->n : DNS_MAX_ADDRS;
	if (f->n)
		memcpy(f->a, a->addrs, f->n * sizeof *f->a);
	if (--r->todo == 0)
		route_complete(r);
}

static void txt_answer(struct req *r, const struct answer *a)
{
	size_t i;

	r->txt.status = a->status;
	r->txt.error = a->error;
	r->txt.records = a->n ? xcalloc(a->n, sizeof *r->txt.records) : NULL;
	for (i = 0; i < a->n; i++)
		r->txt.records[i] = xstrdup(a->txt[i]);
	r->txt.n = a->n;
	req_done(r);
}

/*
 * Slots: 0 is the request's first lookup (MX of a route, or the TXT);
 * 1 + 2i and 2 + 2i are the A and AAAA of route host i.
 */
static void req_answer(struct req *r, int slot, const struct answer *a)
{
	if (r->kind == REQ_TXT)
		txt_answer(r, a);
	else if (slot == 0)
		route_mx_answer(r, a);
	else
		route_addr_answer(r, slot, a);
}

static void req_callback(struct req *r)
{
	struct dns *d = r->d;

	d->dispatching++;
	if (r->kind == REQ_ROUTE)
		r->on_route(r->arg, &r->route);
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
		fatal("session=NOQUEUE event=dns_error error=\"cannot create events\"");
	htab_init(&d->cache, d->o.cache_size);
	htab_init(&d->inflight, INFLIGHT_BUCKETS);
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
		r->route.status = r->txt.status = DNS_CANCELLED;
		r->route.error = r->txt.error = "resolver shut down";
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
	free(d->cache.b);
	free(d->inflight.b);
	free(d);
}

static uint64_t route_start(struct dns *d, const char *domain, int mx, dns_route_cb on_route,
                            void *arg)
{
	struct answer no_mx = {.status = DNS_NODATA};
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
		lookup(d, r, 0, ns_t_mx, r->name);
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

uint64_t dns_query_txt(struct dns *d, const char *name, dns_txt_cb on_txt, void *arg)
{
	struct req *r;

	if (d->closing)
		return 0;
	r = req_new(d, REQ_TXT, arg);
	r->on_txt = on_txt;
	if (dns_name_canon(name, r->name, sizeof r->name) < 0) {
		r->txt.status = DNS_NXDOMAIN;
		r->txt.error = "invalid domain name";
		req_done(r);
	} else {
		lookup(d, r, 0, ns_t_txt, r->name);
	}
	return r->id;
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
	out->cache_entries = d->cache.n;
	out->pending = d->live.n + d->done.n;
}
