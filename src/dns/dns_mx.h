/*
 * dns_mx: how a destination domain becomes an ordered list of hosts to try,
 * and the route type that carries the answer to the delivery engine.
 * PURE: libc and util only; no sockets, no c-ares. dns.c feeds it the
 * answers it got; the tests feed it hand-made ones.
 *
 * Rules (RFC 5321 section 5.1, RFC 7505):
 *   - MX records are tried by preference, lowest first; records of equal
 *     preference are shuffled (randomness injected, so tests can pin it).
 *   - An exchange listed twice is kept once, at its lowest preference.
 *   - No MX record at all (NODATA) means the domain itself is the one host,
 *     preference 0: the implicit MX.
 *   - MX records whose exchanges are all the root ("." or "") form a null
 *     MX: the domain accepts no mail. A root exchange next to real ones is
 *     dropped (it names no host).
 *   - At most DNS_MAX_HOSTS hosts and DNS_MAX_ADDRS addresses per host, so a
 *     hostile zone cannot make one route unbounded.
 */
#ifndef POSTHORN_DNS_MX_H
#define POSTHORN_DNS_MX_H

#include <stddef.h>
#include <stdint.h>

#define DNS_MAX_HOSTS   10
#define DNS_MAX_ADDRS   8  /* per host, IPv6 and IPv4 interleaved */
#define DNS_ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */

/*
 * Outcome of one lookup. NXDOMAIN and NODATA are permanent answers from
 * the DNS (the name does not exist; it exists without such records);
 * TEMPFAIL is everything that may go away on retry (timeout, SERVFAIL,
 * REFUSED, unreachable server, malformed reply).
 */
enum dns_status { DNS_OK, DNS_NXDOMAIN, DNS_NODATA, DNS_TEMPFAIL, DNS_CANCELLED };

/* "ok", "nxdomain", "nodata", "tempfail", "cancelled": for log lines. */
const char *dns_status_name(enum dns_status s);

struct dns_addr {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network order; 4 bytes used for AF_INET */
};

/* Numeric text of a, into out (at least DNS_ADDR_STRLEN bytes); returns out. */
const char *dns_addr_str(const struct dns_addr *a, char *out);

struct dns_route_host {
	char *name;                  /* lower case, no trailing dot */
	unsigned pref;               /* MX preference (0 for the implicit MX) */
	enum dns_status addr_status; /* DNS_OK when n_addrs > 0 */
	size_t n_addrs;
	struct dns_addr *addrs; /* IPv6 first, then alternating families */
	int secure;             /* its A and AAAA answers were DNSSEC-validated (AD
	                           from a resolver trusted with [relay] dnssec) */
};

/*
 * A resolved destination.
 *   status DNS_OK: at least one host has an address; try hosts[] in order,
 *     skipping those with n_addrs == 0.
 *   DNS_NXDOMAIN: the domain does not exist. Permanent.
 *   DNS_NODATA: the domain exists but names no reachable host: null MX
 *     (null_mx set), or no MX host / implicit MX has any address record.
 *     Permanent.
 *   DNS_TEMPFAIL: retry later. DNS_CANCELLED: the resolver was freed.
 * hosts[] is filled whenever the MX step succeeded, also when status is
 * not DNS_OK, so that failures can be logged host by host.
 */
struct dns_route {
	enum dns_status status;
	int null_mx;     /* RFC 7505: bounce with 556 5.1.10 */
	int implicit_mx; /* no MX records: hosts[0] is the domain itself */
	int secure;      /* the MX answer (records, or their absence) was
	                    DNSSEC-validated: the host names can be trusted (DANE) */
	size_t n_hosts;
	struct dns_route_host *hosts;
	const char *error; /* static text explaining a non-OK status, or NULL */
};

/* One MX record as received. */
struct dns_mx_rr {
	const char *exchange;
	unsigned pref;
};

/* Uniform random integer in [0, n), n > 0. arg is passed through. */
typedef uint32_t (*dns_rand_fn)(void *arg, uint32_t n);

/*
 * Plan a route for domain from its MX answer: sets status, null_mx,
 * implicit_mx and hosts[] (names and preferences, no addresses yet).
 * mx_status is the MX lookup's outcome; rr[0..n) its records when DNS_OK
 * (n == 0 counts as NODATA). r is overwritten; release it with
 * dns_route_clear().
 */
void dns_route_plan(struct dns_route *r, const char *domain, enum dns_status mx_status,
                    const struct dns_mx_rr *rr, size_t n, dns_rand_fn rnd, void *rnd_arg);

/*
 * Give host h its addresses from the A and AAAA outcomes: IPv6 and IPv4
 * interleaved (IPv6 first) so that a broken IPv6 path costs one attempt,
 * not all of them; at most DNS_MAX_ADDRS. Sets addr_status.
 */
void dns_route_host_addrs(struct dns_route_host *h, enum dns_status st4, const struct dns_addr *v4,
                          size_t n4, enum dns_status st6, const struct dns_addr *v6, size_t n6);

/* Once every host has its addresses: settle r->status (see above). */
void dns_route_finish(struct dns_route *r);

/* Deep copy, for a caller that keeps a route past its callback. */
struct dns_route *dns_route_dup(const struct dns_route *r);
/* Free the contents of r (not r itself) and zero it. */
void dns_route_clear(struct dns_route *r);
/* Free a route from dns_route_dup(). NULL is fine. */
void dns_route_free(struct dns_route *r);

/*
 * Canonical form of a domain name for comparing and caching: lower case,
 * one trailing dot removed, into out (size cap). Returns -1 (out unset)
 * for a name that cannot be looked up: empty, over 253 bytes, an empty
 * label or a label over 63 bytes, or a byte other than a letter, digit,
 * '-' or '_' (host names, IDNs in A-label form and _service labels pass;
 * bytes that c-ares would read as escapes do not).
 */
int dns_name_canon(const char *name, char *out, size_t cap);

#endif
