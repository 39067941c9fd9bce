/*
 * dns: asynchronous DNS for the delivery engine, on the server's event loop.
 * The only module that includes ares.h; the rest of Posthorn sees the
 * typed results below.
 *
 * Each call is one half of a pair: dns_route() now, on_route() later, on
 * the loop, never from inside dns_route(), and matched to its request by
 * the returned ID. Answers are cached by their TTL (negative answers too,
 * for a bounded time), and identical lookups in flight share one query.
 * docs/dns.md has the rules for caching and for tempfail vs permanent.
 *
 * One struct dns per event base, used from the loop's thread only.
 */
#ifndef POSTHORN_DNS_H
#define POSTHORN_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns_mx.h"

struct event_base;
struct dns;

struct dns_opts {
	/* "127.0.0.1:5353,[::1]:53" (numeric); NULL or "": /etc/resolv.conf.
	 * With servers given, resolv.conf is not read at all. */
	const char *servers;
	unsigned timeout_ms; /* first try, per server; c-ares doubles it on later rounds. 0: 2000 */
	unsigned tries;      /* per server. 0: 2 */
	unsigned max_ttl;    /* seconds a positive answer is kept at most. 0: 3600 */
	unsigned max_neg_ttl; /* seconds an NXDOMAIN/NODATA is kept at most. 0: 300 */
	size_t cache_size;    /* entries; the oldest go first when full. 0: 10000 */
	/* 1: the servers validate DNSSEC and the path to them is trusted:
	 * queries set the AD bit (RFC 6840 5.7) and answers with AD count as
	 * validated (route->secure, host->secure, tlsa->secure). 0: nothing is. */
	int trust_ad;
	/* Injectable for tests; NULL: clock_mono_ms and arc4random_uniform. */
	uint64_t (*now_ms)(void);
	dns_rand_fn rnd;
	void *rnd_arg;
};

/*
 * opts may be NULL (all defaults); opts->servers is copied. Returns NULL
 * and sets *err (malloc'd, caller frees; err may be NULL) when c-ares
 * cannot start or the server list is malformed.
 */
struct dns *dns_new(struct event_base *base, const struct dns_opts *opts, char **err);

/*
 * Stops every query. Requests not yet answered get their callback, from
 * inside dns_free, with status DNS_CANCELLED; they must not call dns_*
 * functions there. Must not be called from inside a dns callback, and
 * must come before event_base_free() of its base. NULL is fine.
 */
void dns_free(struct dns *d);

/*
 * Resolve destination domain to hosts and addresses: MX, then A and AAAA
 * of every exchange (or of the domain: implicit MX). Returns the request
 * ID (never 0). r and everything it points to are valid only during the
 * callback: keep a copy with dns_route_dup(). A domain that is not a valid
 * name (see dns_name_canon) gets DNS_NXDOMAIN without a query.
 * Domain literals ("[192.0.2.1]") are the caller's business.
 */
typedef void (*dns_route_cb)(void *arg, const struct dns_route *r);
uint64_t dns_route(struct dns *d, const char *domain, dns_route_cb on_route, void *arg);

/* Like dns_route() for one host named outright (a smarthost): its A and
 * AAAA only, no MX lookup. The route has that one host. */
uint64_t dns_host(struct dns *d, const char *host, dns_route_cb on_route, void *arg);

/* name's first address in the hosts file (/etc/hosts), IPv4 before IPv6,
 * as text into out (n >= DNS_ADDR_STRLEN): 0, or -1 when it has none. A
 * local file read, no query: for names of the operator's own machines
 * (Redis), not for mail routing, which is DNS only. */
int dns_hosts_file(struct dns *d, const char *name, char *out, size_t n);

/* TXT records of name, each record's strings joined (RFC 7208 3.3). */
struct dns_txt {
	enum dns_status status;
	int secure; /* validated (see dns_opts.trust_ad) */
	size_t n;
	char **records; /* NUL-terminated; records holding a NUL byte are left out */
	const char *error;
};
#define DNS_MAX_TXT 32
typedef void (*dns_txt_cb)(void *arg, const struct dns_txt *t);
uint64_t dns_query_txt(struct dns *d, const char *name, dns_txt_cb on_txt, void *arg);

/* TLSA records of name (RFC 6698), e.g. "_25._tcp.mx.example.com". Only
 * records whose shape is right (dns_rr_tlsa) are kept, at most
 * DNS_MAX_TLSA; data is owned by the answer. secure: the answer (records
 * or their absence) was validated; only then do they mean anything. */
struct dns_tlsa_rec {
	unsigned char usage, selector, mtype;
	size_t len;
	unsigned char *data;
};
struct dns_tlsa_ans {
	enum dns_status status;
	int secure;
	size_t n;
	const struct dns_tlsa_rec *recs;
	const char *error;
};
#define DNS_MAX_TLSA 16
typedef void (*dns_tlsa_cb)(void *arg, const struct dns_tlsa_ans *t);
uint64_t dns_query_tlsa(struct dns *d, const char *name, dns_tlsa_cb on_tlsa, void *arg);

/*
 * Forget request id: its callback will not run. Lookups it shares with
 * others go on (and fill the cache). Returns 0, or -1 for an ID that is
 * not pending (already answered, or never issued).
 */
int dns_cancel(struct dns *d, uint64_t id);

struct dns_stats {
	uint64_t queries_sent; /* queries handed to c-ares */
	uint64_t cache_hits;   /* lookups answered from the cache */
	uint64_t coalesced;    /* lookups that joined a query already in flight */
	uint64_t tempfails;    /* queries that ended in DNS_TEMPFAIL */
	size_t cache_entries;
	size_t pending; /* requests whose callback has not run */
};
void dns_get_stats(const struct dns *d, struct dns_stats *out);

#endif
