/*
 * smtpd_supp: the suppression checks of RCPT batches, grouped across the
 * server's sessions (as a group commit groups writes). Internal to
 * src/smtpd; smtpd_mail.c is its one user.
 *
 * Contract:
 * - smtpd_supp_check() queues a request (one session's RCPT batch) and
 *   returns at once; its done() runs later on the loop thread, once, with
 *   found[], entries[] and failed filled in. Never inside the call.
 * - One check job is in flight per server at a time. Requests that arrive
 *   while it runs wait, and the next job checks them all (at most
 *   SMTPD_SUPP_GROUP_MAX addresses; the rest wait for the one after):
 *   one store_supp_check_many() per account in the group, in the work
 *   pool. The loop never blocks and holds no lock across a round trip.
 * - A failed check (the database down) sets failed in every request of
 *   that account in the group: each of its RCPTs gets 451 4.3.0.
 * - The queue is bounded by the sessions: a session waits (S_WAIT) while
 *   its request is queued, so it has at most one, of at most
 *   RCPT_BATCH_MAX addresses. A request holds its session (session_hold);
 *   its done() releases it, so a session that closed meanwhile is freed
 *   then, never before.
 * - smtpd_supp_free(), after the work pool has run its jobs' done()
 *   (server_close frees the pool first): requests still queued get done()
 *   with failed set.
 */
#ifndef POSTHORN_SMTPD_SUPP_H
#define POSTHORN_SMTPD_SUPP_H

#include <stddef.h>

struct event_base;
struct store;
struct store_supp;
struct work_pool;
struct smtpd_supp;

/* Addresses one job checks, at most (a request is never split). */
#define SMTPD_SUPP_GROUP_MAX 4096

struct smtpd_supp_req {
	/* set by the caller; kept valid until done() */
	const char *account;
	const char *const *addrs;
	size_t n;
	unsigned char *found;       /* n answers: 1 suppressed (entries[i] filled) */
	struct store_supp *entries; /* n */
	void (*done)(struct smtpd_supp_req *r);
	/* set here */
	int failed; /* the check failed: no answer is known */
	struct smtpd_supp_req *next;
};

struct smtpd_supp *smtpd_supp_new(struct event_base *base, struct work_pool *wp, struct store *st);
void smtpd_supp_check(struct smtpd_supp *g, struct smtpd_supp_req *r);
void smtpd_supp_free(struct smtpd_supp *g);

#endif
