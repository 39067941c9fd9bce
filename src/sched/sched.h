/*
 * sched: what to deliver when. Keeps a small index of every open
 * recipient (not the messages: they stay on disk), grouped per message and
 * destination domain into items; items wait in their destination's ready
 * queue or, deferred, in a heap ordered by due time with one timer for the
 * earliest. Destinations apply their limits (connections, messages per
 * connection, rate) and adaptive shaping (sched_policy) and hand items to
 * outbound connections (smtpc). Results are written back to the spool
 * (per-recipient state; the file goes when no recipient is left open),
 * bounces become DSNs (dsn), and one log line goes out per recipient and
 * attempt. MX hosts and address literals that are this relay itself, or
 * inside blocked_destinations, are not used (sched_route.c). Memory
 * follows what is in use: idle destinations are freed.
 *
 * A destination is a domain and a lane: messages that demand REQUIRETLS,
 * messages of an account bound to a [pool.NAME], and messages that waived
 * the domain's TLS policy (TLS-Required: No, met when that policy refused
 * every host) each get their own connections, held to their own rules.
 */
#ifndef POSTHORN_SCHED_H
#define POSTHORN_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct ssl_ctx_st; /* OpenSSL's SSL_CTX, opaque here */

struct event_base;
struct conf;
struct spool;
struct dns;
struct work_pool;
struct policy;
struct deliv;
struct events;
struct sched;

struct sched_deps {
	struct event_base *base;
	const struct conf *conf;
	struct spool *spool;
	struct dns *dns;
	struct work_pool *work;
	struct ssl_ctx_st *client_tls;
	/* Outbound TLS policies (MTA-STS, DANE, TLS-RPT) and account pools;
	 * NULL: opportunistic TLS by [relay] outbound_tls only, no pools but
	 * the [domain.X] ones. */
	struct policy *policy;
	/* Delivery events, for counters (may be NULL): event is "delivered",
	 * "deferred" (a recipient's first deferral only) or "bounced"; rcpt is
	 * the recipient's address. */
	void (*count)(void *arg, const char *account, const char *rcpt, const char *event);
	void *count_arg;
	/* Deliverability (may be NULL): VERP return paths, outcomes for the
	 * reputation guard, hard bounces into the suppression list, accounts
	 * whose mail is held (sched_result.c). */
	struct deliv *deliv;
	/* The event writer (may be NULL): each recipient's delivered,
	 * deferred or bounced event. */
	struct events *events;
};

struct sched *sched_new(const struct sched_deps *deps);
/* Indexes every message of the spool (at start, after recovery). Returns
 * the number of open recipients. */
long sched_load(struct sched *s);
/* A message was just committed (smtpd, API, DSN): index it. */
void sched_add_id(struct sched *s, const char *id);
/* Make deferred recipients of message id (or of all messages, id NULL) due
 * now. Returns the number of items moved. */
long sched_retry(struct sched *s, const char *id);
/* The message was deleted behind our back (CLI): drop it from the index. */
void sched_forget(struct sched *s, const char *id);
/* New per-destination limits ([domain.*] sections of c, which must outlive
 * the scheduler): applied to every destination at once (SIGHUP). */
void sched_set_domains(struct sched *s, const struct conf *c);
/* Starts no new transaction; done() runs once none is in progress. */
void sched_drain(struct sched *s, void (*done)(void *arg), void *arg);
/* At exit, before the work pool and the spool close: nothing new starts;
 * the results of attempts that ended are still written, from then on on
 * the caller's thread (the work pool may be gone), so that a report
 * committed while the spool closes leaves its recipients final on disk. */
void sched_stop(struct sched *s);
/* Cancels the route lookups in flight: may come before or after
 * dns_free(). */
void sched_free(struct sched *s);

struct sched_stats {
	uint64_t messages, items_ready, items_deferred, items_active, connections;
	uint64_t destinations; /* known now: idle ones are freed after a while */
};
void sched_get_stats(const struct sched *s, struct sched_stats *out);

#endif
