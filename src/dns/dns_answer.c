/*
 * dns_answer: from a c-ares callback's status and reply bytes to the typed
 * answer the cache keeps (dns_answer.h has the contract).
 *
 * c-ares sends the queries, retries, and maps the reply's code to a
 * status; the records are read by dns_wire, which also gives the TTLs
 * c-ares 1.18 does not report (none for MX or TXT, and not the SOA of a
 * negative answer).
 */
#include "dns/dns_answer.h"

#include <ares.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/util.h"

struct dns_answer *dns_answer_new(enum dns_status st, const char *error)
{
	struct dns_answer *a = xcalloc(1, sizeof *a);

	a->refs = 1;
	a->status = st;
	a->error = error;
	return a;
}

/* Frees what a holds; n becomes 0. */
static void answer_clear(struct dns_answer *a)
{
	size_t i;

	for (i = 0; a->mx && i < a->n; i++)
		free((char *)a->mx[i].exchange);
	for (i = 0; a->txt && i < a->n; i++)
		free(a->txt[i]);
	for (i = 0; a->tlsa && i < a->n; i++)
		free(a->tlsa[i].data);
	free(a->mx);
	free(a->addrs);
	free(a->txt);
	free(a->tlsa);
	a->mx = NULL;
	a->addrs = NULL;
	a->txt = NULL;
	a->tlsa = NULL;
	a->n = 0;
}

void dns_answer_unref(struct dns_answer *a)
{
	if (--a->refs > 0)
		return;
	answer_clear(a);
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

/* ---- the records, read with dns_wire ---- */

struct collect {
	struct dns_answer *a;
	size_t cap; /* of a->mx */
	int bad;    /* a record of the asked type with the wrong shape */
	struct buf txt;
};

static int collect_mx(void *arg, const struct dns_wire *m, const struct dns_rr *rr)
{
	struct collect *c = arg;
	unsigned char flat[DNS_WIRE_NAME_MAX];
	char text[DNS_WIRE_TEXT_MAX];
	unsigned pref;

	if (dns_rr_mx(m, rr, &pref, flat) < 0)
		return c->bad = 1;
	if (c->a->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 8;
		c->a->mx = xrealloc(c->a->mx, c->cap * sizeof *c->a->mx);
	}
	dns_wire_name_text(flat, text);
	c->a->mx[c->a->n++] = (struct dns_mx_rr){.exchange = xstrdup(text), .pref = pref};
	return 0;
}

static int collect_addr(void *arg, const struct dns_wire *m, const struct dns_rr *rr)
{
	struct collect *c = arg;
	struct dns_addr *x = &c->a->addrs[c->a->n];
	int v6 = rr->type == DNS_T_AAAA;

	if ((v6 ? dns_rr_aaaa(m, rr, x->addr) : dns_rr_a(m, rr, x->addr)) < 0)
		return c->bad = 1;
	x->family = v6 ? AF_INET6 : AF_INET;
	return ++c->a->n == DNS_MAX_ADDRS; /* the first ones, as many as a host keeps */
}

/* A TXT record is kept unless it is empty or holds a NUL (no policy
 * record does). */
static int collect_txt(void *arg, const struct dns_wire *m, const struct dns_rr *rr)
{
	struct collect *c = arg;

	buf_reset(&c->txt);
	if (dns_rr_txt(m, rr, &c->txt) < 0)
		return c->bad = 1;
	if (c->txt.len > 0 && !memchr(c->txt.data, '\0', c->txt.len))
		c->a->txt[c->a->n++] = xstrndup(c->txt.data, c->txt.len);
	return c->a->n == DNS_MAX_TXT;
}

/* A TLSA record of the right shape is kept, whether or not it is usable:
 * RFC 7672 2.2 treats "records, none usable" apart from "no records". */
static int collect_tlsa(void *arg, const struct dns_wire *m, const struct dns_rr *rr)
{
	struct collect *c = arg;
	struct dns_tlsa_rec *x = &c->a->tlsa[c->a->n];
	struct dns_tlsa t;

	if (dns_rr_tlsa(m, rr, &t) < 0)
		return c->bad = 1;
	x->usage = (unsigned char)t.usage;
	x->selector = (unsigned char)t.selector;
	x->mtype = (unsigned char)t.mtype;
	x->len = t.len;
	x->data = xmalloc(t.len);
	memcpy(x->data, t.data, t.len);
	return ++c->a->n == DNS_MAX_TLSA;
}

static int by_pref(const void *x, const void *y)
{
	const struct dns_mx_rr *a = x, *b = y;

	return (a->pref > b->pref) - (a->pref < b->pref);
}

/* Keep the best DNS_MX_KEEP: the route wants those. The packet bounds the
 * count already; this bounds the memory a cache entry holds. */
static void mx_trim(struct dns_answer *a)
{
	if (a->n <= DNS_MX_KEEP)
		return;
	qsort(a->mx, a->n, sizeof *a->mx, by_pref);
	while (a->n > DNS_MX_KEEP)
		free((char *)a->mx[--a->n].exchange);
}

static void answer_fail(struct dns_answer *a, enum dns_status st, int ares_code)
{
	answer_clear(a);
	a->status = st;
	a->error = ares_strerror(ares_code);
}

/* The records of a reply c-ares called a success. */
static void read_answers(struct dns_answer *a, int type, const struct dns_wire *m)
{
	struct collect c = {.a = a};
	dns_wire_answer_cb cb = collect_txt;
	long rc = -1;

	if (type == DNS_T_MX) {
		cb = collect_mx;
	} else if (type == DNS_T_A || type == DNS_T_AAAA) {
		cb = collect_addr;
		a->addrs = xcalloc(DNS_MAX_ADDRS, sizeof *a->addrs);
	} else if (type == DNS_T_TLSA) {
		cb = collect_tlsa;
		a->tlsa = xcalloc(DNS_MAX_TLSA, sizeof *a->tlsa);
	} else {
		a->txt = xcalloc(DNS_MAX_TXT, sizeof *a->txt);
	}
	if (m->qtype == (unsigned)type) /* c-ares matched the question already */
		rc = dns_wire_answers(m, cb, &c);
	buf_free(&c.txt);
	mx_trim(a);
	if (rc < 0 || c.bad)
		answer_fail(a, DNS_TEMPFAIL, ARES_EBADRESP);
	else if (a->n == 0) /* e.g. only a CNAME, or other types */
		answer_fail(a, DNS_NODATA, ARES_ENODATA);
}

/* Seconds to cache a, 0 for not at all; t holds the reply's TTLs. */
static uint32_t answer_ttl(const struct dns_opts *o, const struct dns_answer *a,
                           const struct dns_wire_ttls *t)
{
	uint32_t ttl;

	if (a->status == DNS_OK)
		return t->answer_min == UINT32_MAX
		           ? 0
		           : (t->answer_min < o->max_ttl ? t->answer_min : o->max_ttl);
	if (a->status != DNS_NXDOMAIN && a->status != DNS_NODATA)
		return 0;
	ttl = t->soa_neg == UINT32_MAX ? DNS_NEG_TTL_NO_SOA : t->soa_neg;
	return ttl < o->max_neg_ttl ? ttl : o->max_neg_ttl;
}

struct dns_answer *dns_answer_from_reply(int type, int status, const unsigned char *abuf, int alen,
                                         const struct dns_opts *o, uint32_t *ttl)
{
	enum dns_status st = map_ares_status(status);
	struct dns_answer *a = dns_answer_new(st, st == DNS_OK ? NULL : ares_strerror(status));
	struct dns_wire_ttls t = {UINT32_MAX, UINT32_MAX};
	struct dns_wire m;
	int parsed = abuf && alen > 0 && dns_wire_parse(&m, abuf, (size_t)alen) == 0;

	if (parsed)
		dns_wire_ttls(&m, &t);
	/* AD means something only from a resolver the operator trusts */
	a->secure = parsed && o->trust_ad && dns_wire_ad(&m);
	if (st == DNS_OK && parsed)
		read_answers(a, type, &m);
	else if (st == DNS_OK)
		answer_fail(a, DNS_TEMPFAIL, ARES_EBADRESP);
	if (a->status == DNS_TEMPFAIL)
		a->secure = 0;
	*ttl = answer_ttl(o, a, &t);
	return a;
}
