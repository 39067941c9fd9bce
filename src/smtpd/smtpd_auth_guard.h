/*
 * smtpd_auth_guard: whether a password check may start now, and in which
 * lane of the AUTH queue it waits. PURE (libc and util), unit-tested with
 * the clock passed in.
 *
 * Per address key (smtpd_limits.h: IPv4 alone, IPv6 by /64) it keeps the
 * checks in flight and when a check last failed:
 * - at most SMTPD_AUTH_PER_ADDR checks of one key wait or run at a time;
 *   one more is "busy" (the session answers 454 4.7.0);
 * - a check from a key that failed within SMTPD_AUTH_SUSPECT_MS, or from a
 *   session that failed already, waits in the suspect lane, which runs
 *   only when the clean lane is empty. A guesser keeps the queue busy for
 *   other guessers; a client that has not failed waits behind clean
 *   checks only. A successful check makes its key clean again.
 * Memory: an entry lives while checks are in flight or its failure is
 * recent, and there are at most max_entries of them: when the table is
 * full, a new key is not tracked (its check goes to the suspect lane,
 * without the per-address limit). Expired entries are swept at most once
 * per SMTPD_AUTH_SWEEP_MS, from begin().
 */
#ifndef POSTHORN_SMTPD_AUTH_GUARD_H
#define POSTHORN_SMTPD_AUTH_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "smtpd/smtpd_limits.h"
#include "util/htable.h"

#define SMTPD_AUTH_PER_ADDR   2
#define SMTPD_AUTH_SUSPECT_MS (15 * 60 * 1000)
#define SMTPD_AUTH_SWEEP_MS   (60 * 1000)

enum smtpd_auth_lane { SMTPD_AUTH_BUSY = -1, SMTPD_AUTH_CLEAN = 0, SMTPD_AUTH_SUSPECT = 1 };

struct smtpd_auth_guard {
	struct htable t;
	size_t max_entries;
	uint64_t swept_at;
};

/* What begin() decided, to hand back to end(). */
struct smtpd_auth_ticket {
	struct smtpd_addr_key key;
	int counted; /* the check holds one of its key's in-flight places */
};

void smtpd_auth_guard_init(struct smtpd_auth_guard *g, size_t max_entries);
/* Frees every entry. */
void smtpd_auth_guard_fini(struct smtpd_auth_guard *g);

/* A check for key wants to start at now_ms; session_failed: its session
 * has failed AUTH before. Returns its lane (and fills *ticket), or
 * SMTPD_AUTH_BUSY. */
enum smtpd_auth_lane smtpd_auth_guard_begin(struct smtpd_auth_guard *g,
                                            const struct smtpd_addr_key *key, int session_failed,
                                            uint64_t now_ms, struct smtpd_auth_ticket *ticket);

/* The check of ticket ended: failed (wrong credentials), succeeded, or
 * never ran (failed 0, ok 0: the queue refused it). */
void smtpd_auth_guard_end(struct smtpd_auth_guard *g, const struct smtpd_auth_ticket *ticket,
                          int failed, int ok, uint64_t now_ms);

/* Entries held (in flight or failed recently). */
size_t smtpd_auth_guard_size(const struct smtpd_auth_guard *g);

#endif
