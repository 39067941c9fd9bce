/*
 * tls_policy: what a destination's TLS policies ask of each of its MX
 * hosts, and the words TLS-RPT reports outcomes with. PURE (libc and
 * util): the policy module (src/policy/) gathers the facts (the MTA-STS
 * policy, the TLSA records, whether the message demands REQUIRETLS or
 * waives policies with TLS-Required: No) and tls_host_decide() turns them
 * into requirements; smtpc enforces them host by host.
 *
 * Precedence, per host (docs/tls.md has the why):
 *   TLS-Required: No   the sender waives every policy: opportunistic TLS
 *   DANE (RFC 7672)    usable TLSA records: TLS, and a certificate that
 *                      matches one of them; records but none usable: TLS,
 *                      unauthenticated (unless MTA-STS enforce applies,
 *                      which asks more); a TLSA lookup that failed: the
 *                      host is not used (4.7.5, deferred)
 *   MTA-STS enforce    only hosts matching an mx pattern, TLS, a WebPKI
 *                      certificate valid for the MX name (else 4.7.5)
 *   MTA-STS testing    as enforce, but failures are reported, not enforced
 *   REQUIRETLS         (the message's) TLS and at least a WebPKI-verified
 *                      certificate for the MX name, whatever the domain
 *                      publishes; REQUIRETLS offered after TLS
 *   none               [relay] outbound_tls
 * Usable (or failed) DANE wins over MTA-STS as RFC 8461 2 asks. A message with REQUIRETLS
 * ignores TLS-Required (RFC 8689 4.1).
 */
#ifndef POSTHORN_TLS_POLICY_H
#define POSTHORN_TLS_POLICY_H

#include <stddef.h>

/* What governs a connection; the delivery log's tls_policy=. */
enum tls_pol { TLS_POL_NONE, TLS_POL_STS, TLS_POL_DANE, TLS_POL_REQUIRETLS };
const char *tls_pol_name(enum tls_pol p); /* "none", "mta-sts", "dane", "requiretls" */

/* RFC 8460 4.3 result types; TLSRPT_OK counts a successful session. */
enum tlsrpt_result {
	TLSRPT_OK,
	TLSRPT_STARTTLS_NOT_SUPPORTED,
	TLSRPT_CERT_HOST_MISMATCH,
	TLSRPT_CERT_EXPIRED,
	TLSRPT_CERT_NOT_TRUSTED,
	TLSRPT_VALIDATION_FAILURE,
	TLSRPT_TLSA_INVALID,
	TLSRPT_DNSSEC_INVALID,
	TLSRPT_DANE_REQUIRED,
	TLSRPT_STS_POLICY_FETCH_ERROR,
	TLSRPT_STS_POLICY_INVALID,
	TLSRPT_STS_WEBPKI_INVALID,
	TLSRPT__COUNT
};
/* "starttls-not-supported", ...; "" for TLSRPT_OK. */
const char *tlsrpt_result_name(enum tlsrpt_result r);
/* The result of a name, or -1. */
int tlsrpt_result_parse(const char *name);

/* One TLSA record (RFC 6698 2.1). */
struct tls_tlsa {
	unsigned char usage, selector, mtype;
	size_t len;
	unsigned char *data;
};

/* What a host's TLSA lookup gave. */
enum tls_dane {
	TLS_DANE_NONE,     /* no validated TLSA records: the host is not DANE */
	TLS_DANE_USABLE,   /* validated records, some DANE-TA(2) or DANE-EE(3) */
	TLS_DANE_UNUSABLE, /* validated records, none usable (RFC 7672 2.2) */
	TLS_DANE_FAILED,   /* the lookup failed (SERVFAIL, bogus, timeout) */
};

/* The facts about one MX host. */
struct tls_decide_in {
	const char *domain, *host;
	int outbound_required; /* [relay] outbound_tls = required */
	int requiretls;        /* the message demands REQUIRETLS (RFC 8689) */
	int optout;            /* the message says TLS-Required: No */
	int sts_mode;          /* -1 no MTA-STS policy, else enum sts_mode (0 none,
	                          1 testing, 2 enforce) */
	enum tls_dane dane;
};

/* What smtpc must get from one MX host. */
struct tls_host_pol {
	char *host;
	enum tls_pol pol;
	int refuse;                       /* do not connect to it: why says why */
	enum tlsrpt_result refuse_result; /* ... and how it counts in TLS-RPT */
	int tls_required;                 /* no STARTTLS or a failed handshake: next host */
	int verify_required;              /* the certificate must verify (WebPKI or DANE) */
	int testing;                      /* MTA-STS testing: failures reported, not enforced */
	int requiretls;                   /* the server must offer REQUIRETLS after TLS */
	struct tls_tlsa *tlsa;            /* usable records (DANE), owned */
	size_t n_tlsa;
	char *why; /* for refuse: "MX host X does not match the MTA-STS policy of D
	              (enforce)"; else NULL */
};

/*
 * Decide host in->host. sts_allowed: the host matches the MTA-STS policy's
 * mx patterns (ignored without a policy). tlsa[0..n) are the host's
 * records when dane is TLS_DANE_USABLE: the usable ones (usage 2 or 3,
 * selector 0/1, matching type 0/1/2) are copied into out. out is
 * overwritten; free with tls_host_pol_clear().
 */
void tls_host_decide(const struct tls_decide_in *in, int sts_allowed, const struct tls_tlsa *tlsa,
                     size_t n, struct tls_host_pol *out);
void tls_host_pol_clear(struct tls_host_pol *h);

/* 1 for a record DANE for SMTP uses: DANE-TA(2) or DANE-EE(3), selector 0
 * or 1, matching type 0 (any length), 1 (32 bytes) or 2 (64 bytes).
 * PKIX-TA(0) and PKIX-EE(1) are not (RFC 7672 3.1.3). */
int tls_tlsa_usable(const struct tls_tlsa *t);

struct tls_dest_pol;

/* A session outcome, for TLS-RPT: host h of p was tried at addr (from our
 * src address, "" unknown) and ended in r. */
typedef void (*tls_report_fn)(void *arg, const struct tls_dest_pol *p, const struct tls_host_pol *h,
                              const char *addr, const char *src, enum tlsrpt_result r);

/*
 * A destination's policy for one route: hosts[i] belongs to the route's
 * host i. Shared by the scheduler and every connection that uses it:
 * reference counted, immutable once built (but for refs). The report hook
 * and its arg outlive every reference (the policy module owns them).
 */
struct tls_dest_pol {
	unsigned refs;
	char *domain;
	struct tls_host_pol *hosts;
	size_t n_hosts;
	tls_report_fn report; /* NULL: outcomes go nowhere */
	void *report_arg;
	void *report_data; /* for the hook: which policy it reports on */
	void (*report_data_free)(void *);
};

struct tls_dest_pol *tls_dest_pol_new(const char *domain, size_t n_hosts);
struct tls_dest_pol *tls_dest_pol_ref(struct tls_dest_pol *p);
void tls_dest_pol_unref(struct tls_dest_pol *p); /* NULL is fine */
/* The host policy for route host name (i is the hint: the route's index);
 * NULL when p is NULL or does not know it. */
const struct tls_host_pol *tls_dest_pol_host(const struct tls_dest_pol *p, size_t i,
                                             const char *name);

#endif
