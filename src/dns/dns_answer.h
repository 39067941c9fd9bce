/*
 * dns_answer: one (type, name) answer as the cache keeps it and requests
 * read it, made from what a c-ares callback hands over: its status and the
 * reply's bytes, read with dns_wire (the one reader of reply bytes).
 * Internal to src/dns/; no sockets and no event loop, so
 * tests/unit/test_dns_wire.c builds answers from hand-made replies.
 */
#ifndef POSTHORN_DNS_ANSWER_H
#define POSTHORN_DNS_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"
#include "dns/dns_wire.h"

/* A negative answer without an SOA (dnsmasq's local data, some broken
 * servers) says nothing about how long it holds; keep it this long. */
#define DNS_NEG_TTL_NO_SOA 60
/* MX records kept from one answer: the best ones. The packet bounds the
 * count already; this bounds the memory a cache entry holds. */
#define DNS_MX_KEEP 64

/* Shared by the cache and deliveries: refcounted. */
struct dns_answer {
	unsigned refs;
	enum dns_status status;
	const char *error; /* static text (ares_strerror) for a failure */
	size_t n;
	struct dns_mx_rr *mx;      /* DNS_T_MX; exchanges owned */
	struct dns_addr *addrs;    /* DNS_T_A, DNS_T_AAAA: at most DNS_MAX_ADDRS */
	char **txt;                /* DNS_T_TXT: at most DNS_MAX_TXT */
	struct dns_tlsa_rec *tlsa; /* DNS_T_TLSA: at most DNS_MAX_TLSA, data owned */
	int secure;                /* the reply had AD and o->trust_ad is set */
};

/* refs 1. */
struct dns_answer *dns_answer_new(enum dns_status st, const char *error);
void dns_answer_unref(struct dns_answer *a);

/*
 * The answer to a query of `type` (DNS_T_MX, _A, _AAAA, _TXT or _TLSA) from a
 * c-ares callback's status and reply (abuf may be NULL). *ttl: seconds to
 * cache it, 0 for not at all: positive answers for their lowest TTL, at
 * most o->max_ttl; NXDOMAIN and NODATA for the SOA's negative TTL (or
 * DNS_NEG_TTL_NO_SOA), at most o->max_neg_ttl; failures never. A reply
 * c-ares calls a success but dns_wire finds malformed is DNS_TEMPFAIL; one
 * with no record that answers is DNS_NODATA. o holds the defaults applied.
 */
struct dns_answer *dns_answer_from_reply(int type, int ares_status, const unsigned char *abuf,
                                         int alen, const struct dns_opts *o, uint32_t *ttl);

#endif
