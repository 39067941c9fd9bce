/*
 * policy: the outbound TLS policies of destination domains, on the event
 * loop: MTA-STS (RFC 8461), DANE (RFC 7672), TLS-RPT (RFC 8460), and what
 * a message asks for itself (REQUIRETLS, TLS-Required: No, RFC 8689); and
 * the [pool.NAME] an account sends from.
 *
 * The scheduler asks once per route lookup of a destination:
 * policy_resolve() now, the callback later (never from inside the call),
 * with a struct tls_dest_pol that tells smtpc what each MX host must give
 * (tls/tls_policy.h). Behind it:
 *   - MTA-STS: the _mta-sts TXT record, the policy cached in memory and in
 *     the database (survives restarts, refreshed before it expires, mail
 *     or no mail), and, when the TXT names a policy not yet cached, an
 *     HTTPS fetch that ends
 *     (or fails) before the callback: the first attempt already obeys it;
 *   - DANE: with [relay] dnssec = trust_ad and a validated MX answer, the
 *     TLSA records of each MX host whose address records validated;
 *   - TLS-RPT: the _smtp._tls TXT record; when it is there, the session
 *     outcomes of the route are counted (the report hook of the policy),
 *     written to the database every second, and each period's report goes,
 *     gzipped JSON, to every mailto: (as a message through the spool) and
 *     https: (POST) address once the period has ended.
 */
#ifndef POSTHORN_POLICY_H
#define POSTHORN_POLICY_H

#include <stdint.h>

#include "dns/dns_mx.h"
#include "tls/tls_policy.h"

struct event_base;
struct conf;
struct dns;
struct store;
struct work_pool;
struct spool;
struct policy;
struct dkim_signer;

struct policy_deps {
	struct event_base *base;
	const struct conf *conf;
	struct dns *dns;
	struct store *store;
	struct work_pool *work;
	struct spool *spool; /* TLS-RPT reports by mail are queued here */
	/* Signs report mails whose From domain (the hostname) has a DKIM key;
	 * NULL: unsigned. */
	struct dkim_signer *dkim;
	/* A report message was committed to the spool: index it. */
	void (*queued)(void *arg, const char *id);
	void *queued_arg;
};

/* Loads the account pools (blocking, at start). NULL with *err. */
struct policy *policy_new(const struct policy_deps *deps, char **err);
/* At exit, while the work pool still runs: no new work, the TLS-RPT tally
 * handed to it. */
void policy_stop(struct policy *p);
/* After the work pool is gone and before dns_free(): writes what is left
 * of the tally (synchronously), cancels everything, frees. NULL is fine. */
void policy_free(struct policy *p);

/* What the messages of a destination lane ask for themselves. */
struct policy_lane {
	int requiretls; /* MAIL FROM ... REQUIRETLS */
	int optout;     /* TLS-Required: No */
};

/*
 * The policy for route r of destination domain (r is only read during the
 * call). domain NULL: a smarthost or an address literal, which no domain
 * policy covers (only the lane matters). cb gets a reference to the policy
 * (the callee unrefs it), or NULL when nothing is asked beyond [relay]
 * outbound_tls. Returns the request's ID (never 0).
 */
typedef void (*policy_cb)(void *arg, struct tls_dest_pol *pol);
uint64_t policy_resolve(struct policy *p, const char *domain, const struct dns_route *r,
                        const struct policy_lane *lane, policy_cb cb, void *arg);
/* Forget a request: its callback will not run. */
void policy_cancel(struct policy *p, uint64_t id);

/* The [pool.NAME] name account is bound to (posthorn user set --pool), or
 * NULL; valid until the next turn of the event loop. From a copy of the
 * accounts table read again every second. */
const char *policy_account_pool(struct policy *p, const char *account);

#endif
