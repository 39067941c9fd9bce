/*
 * deliv: deliverability at run time (SPEC 5; docs/deliverability.md).
 * One struct deliv per server, owned by main.c, used on the event loop
 * thread by smtpd (quotas, pauses, VERP recipients, bounce reports), sched
 * (outcomes, hard bounces, the VERP return path, held accounts) and the
 * HTTP API's send route (quotas and pauses, through the same calls).
 *
 * What it keeps in memory, per account: the quota counts (fixed UTC hour
 * and day, deliv_policy.h) with the recipients reserved by open
 * transactions, the reputation guard's slots, the pause. Nothing here
 * writes to the database on the loop: a timer hands what changed to a
 * worker once a second (store_deliv_flush, one transaction), and the same
 * job reads the account settings back when another process (the CLI:
 * `user set`, `user resume`) changed the database, so such a change takes
 * effect within a second. At exit the last changes are written
 * synchronously. A crash loses at most the last second of counts.
 *
 * The files: deliv.c (accounts, quotas, pauses, outcomes, events),
 * deliv_sync.c (the flush and reload), deliv_inbound.c (what arrives at a
 * VERP address), deliv_verp.c / deliv_policy.c / deliv_report.c and
 * friends (PURE).
 */
#ifndef POSTHORN_DELIV_H
#define POSTHORN_DELIV_H

#include <stddef.h>
#include <stdint.h>

#include "deliv/deliv_policy.h"
#include "deliv/deliv_verp.h"

struct conf;
struct event_base;
struct store;
struct work_pool;
struct deliv;
struct cluster_redis;

struct deliv_deps {
	struct event_base *base;
	const struct conf *conf;
	struct store *store;
	struct work_pool *work; /* may be set after deliv_open(), before deliv_start() */
	/* Counters, as sched's (may be NULL): event "suppressed". */
	void (*count)(void *arg, const char *account, const char *domain, const char *event);
	void *count_arg;
	/* A paused account was resumed: each message its pause kept from
	 * delivery (deliv_held) is due again (may be NULL). */
	void (*release)(void *arg, const char *id);
	void *release_arg;
	/* The event writer (may be NULL): suppressed, bounced (reported
	 * later by a DSN) and complained events. */
	struct events *events;
	/* [cluster] redis (may be NULL): the quotas shared by every node. */
	struct cluster_redis *redis;
};

/* VERP records are kept this long after the message's queue lifetime:
 * complaints come days or weeks after delivery. */
#define DELIV_VERP_GRACE (30 * 86400)

/*
 * Reads the VERP key (DATA_DIR/verp.key, made with 32 random bytes, mode
 * 0600, the first time), the account settings, the quota counts of the
 * current windows and the reputation slots of the window. Blocking: at
 * start, before serving. NULL with a malloc'd *err.
 */
struct deliv *deliv_open(const struct deliv_deps *deps, char **err);
/* Starts the once-a-second flush (deps->work must be set). */
void deliv_start(struct deliv *d);
/* At exit, once the work pool is gone: writes what changed, frees. */
void deliv_close(struct deliv *d);

/* ---- accounts: quotas and pauses (loop thread) ---- */

/* 1 when the account is paused, with the 450 reply in why ("450 4.7.1
 * account paused: bounce rate 7.2 % over 24h (threshold 5 %)"). */
int deliv_paused(struct deliv *d, const char *account, char *why, size_t cap);

/*
 * Quotas, shared by SMTP and the HTTP API: reserve n recipients (all or
 * none; 0, or -1 with the 450 reply in why and the reset time in *reset,
 * for a Retry-After); later commit the ones that were queued and release
 * the rest. deliv_quota_full(): 1 when not one more fits (for MAIL).
 */
int deliv_quota_reserve(struct deliv *d, const char *account, uint64_t n, char *why, size_t cap,
                        int64_t *reset);
int deliv_quota_full(struct deliv *d, const char *account, char *why, size_t cap);
void deliv_quota_commit(struct deliv *d, const char *account, uint64_t n);
/*
 * The same reservation, asked of Redis when [cluster] redis is set and
 * the account has a limit (docs/cluster.md): up to n recipients (all: all
 * or none). cb is called once with how many were granted and, when fewer
 * than n, the 450 reply in why and the reset time: later, on the loop,
 * when Redis is asked; before this returns when the node decides alone
 * (no Redis, an unlimited account, or Redis unreachable: then at 1/N of
 * each limit). Commit and release as above.
 */
/* deps.redis is about to be freed (shutdown): what waits on it is
 * answered locally, and nothing more is asked of it. */
void deliv_redis_gone(struct deliv *d);
typedef void (*deliv_quota_cb)(void *arg, uint64_t granted, const char *why, int64_t reset);
void deliv_quota_reserve_async(struct deliv *d, const char *account, uint64_t n, int all,
                               deliv_quota_cb cb, void *arg);
void deliv_quota_release(struct deliv *d, const char *account, uint64_t n);

/* ---- VERP (loop thread) ---- */

/* What a RCPT address is to the bounces domain (deliv_verp.h). */
enum deliv_verp_kind deliv_verp_rcpt(struct deliv *d, const char *addr, char id[ID_LEN + 1]);
/* The MAIL FROM for delivering message id: its VERP return path in buf
 * when [bounces] domain is set and the sender is not null, else
 * mail_from itself. */
const char *deliv_return_path(struct deliv *d, const char *id, const char *mail_from, char *buf,
                              size_t cap);
/* A message was queued: its VERP record (account, recipients) is written
 * with the next flush, so that its bounces can be matched. */
void deliv_message_queued(struct deliv *d, const char *id, const char *account,
                          const char *const *rcpts, size_t n);

/* ---- delivery outcomes (loop thread) ---- */

/* One recipient's outcome for the reputation guard; may pause the account. */
void deliv_outcome(struct deliv *d, const char *account, enum deliv_outcome o);
/* 1 when the account is paused and message id must wait: it is
 * remembered, and made due again when the account is resumed. */
int deliv_held(struct deliv *d, const char *account, const char *id);

/* Suppression adds of hard bounces: deliv_supp_add() on a worker (one
 * transaction for all), then deliv_supp_added() on the loop (events, log
 * lines, counters). reason is "hard bounce: <remote reply>". */
struct deliv_supp {
	const char *account, *addr, *reason, *id; /* id: the message, for the log */
	int added;                                /* out: 1 added, 0 listed already, < 0 error */
};
void deliv_supp_add(struct deliv *d, struct deliv_supp *v, size_t n);
void deliv_supp_added(struct deliv *d, const struct deliv_supp *v, size_t n);

/* A recipient was refused because it is suppressed (SMTP RCPT, the API):
 * counted and recorded as a suppressed event. */
void deliv_refused_suppressed(struct deliv *d, const char *account, const char *addr,
                              const char *reason);

/* ---- bounce and complaint reports (deliv_inbound.c) ---- */

/*
 * A message sent to VERP addresses: collect it (at most DELIV_REPORT_MAX
 * bytes are kept; the rest is counted), then finish: it is read, matched
 * to the messages the addresses name and applied (suppressions, events,
 * the reputation guard) on a worker, and done(arg, summary) runs on the
 * loop once that is committed. Never queued for delivery.
 */
struct deliv_inbound;
struct deliv_inbound *deliv_inbound_new(struct deliv *d, const char *session);
void deliv_inbound_rcpt(struct deliv_inbound *in, const char id[ID_LEN + 1]);
void deliv_inbound_write(struct deliv_inbound *in, const char *p, size_t n);
uint64_t deliv_inbound_size(const struct deliv_inbound *in);
void deliv_inbound_finish(struct deliv_inbound *in, void (*done)(void *arg, const char *summary),
                          void *arg);
/* Drops one that will not be finished (RSET, a refused message). */
void deliv_inbound_free(struct deliv_inbound *in);

#endif
