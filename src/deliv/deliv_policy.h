/*
 * deliv_policy: the arithmetic of deliverability, PURE (libc + util):
 * quota windows and reservations, the reputation guard's sliding window
 * and thresholds, which statuses are "no such user", and the SMTP reply
 * texts that name them. No clock is read here: every function takes `now`
 * (unix seconds), so the unit tests drive time.
 *
 * Quotas (docs/deliverability.md, "Quotas"): fixed UTC windows, the clock
 * hour [HH:00, HH+1:00) and the UTC day [00:00, 24:00). A window's count
 * is what was committed in it; recipients reserved by transactions still
 * open (`reserved`) count against every window until they are committed
 * (then they count in the window current at the commit) or released.
 *
 * Reputation (docs/deliverability.md, "Reputation guard"): per account, a
 * ring of DELIV_REP_SLOTS slots each window/DELIV_REP_SLOTS wide; the
 * rates are sums over the slots inside (now - window, now].
 */
#ifndef POSTHORN_DELIV_POLICY_H
#define POSTHORN_DELIV_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* ---- quotas ------------------------------------------------------------ */

enum deliv_period { DELIV_HOUR = 0, DELIV_DAY = 1, DELIV_PERIODS = 2 };

/* "hour", "day". */
const char *deliv_period_name(enum deliv_period p);
/* The window of period p that holds now: its start, and its end (the
 * next window's start, which is when the quota resets). */
int64_t deliv_window_start(enum deliv_period p, int64_t now);
int64_t deliv_window_end(enum deliv_period p, int64_t now);

/* One account's quota state. */
struct deliv_quota {
	uint64_t limit[DELIV_PERIODS]; /* messages (recipients) per window; 0: unlimited */
	int64_t start[DELIV_PERIODS];  /* the window used[] counts in */
	uint64_t used[DELIV_PERIODS];  /* committed in that window */
	uint64_t reserved;             /* taken by open transactions, not committed yet */
	uint64_t share;                /* > 1: only limit/share (at least 1) may be taken
	                                  here (a node of share nodes, Redis down) */
};

/* Moves each window to the one holding now (a new window starts at 0).
 * 1 if a window moved. */
int deliv_q_roll(struct deliv_quota *q, int64_t now);

/* Reserves n recipients now, all or none: 0 done; -1 when a window would
 * pass its limit: *over says which (the day first if both), *reset when
 * it resets. */
int deliv_q_take(struct deliv_quota *q, uint64_t n, int64_t now, enum deliv_period *over,
                 int64_t *reset);
/* 1 when not even one more recipient fits (for MAIL), with *over and
 * *reset as above. */
int deliv_q_full(struct deliv_quota *q, int64_t now, enum deliv_period *over, int64_t *reset);
/* n reserved recipients were committed (count in the current windows) or
 * released (the transaction ended without them). n is capped at reserved. */
void deliv_q_commit(struct deliv_quota *q, uint64_t n, int64_t now);
void deliv_q_release(struct deliv_quota *q, uint64_t n);

/* What a node may take alone of limit while it is one of share nodes
 * deciding alone (share > 1: limit/share, at least 1); else limit. */
uint64_t deliv_q_share_of(uint64_t limit, uint64_t share);

/* "450 4.7.1 Quota exceeded: account A may send N messages per hour; the
 * quota resets at 2026-01-02T11:00:00Z" into out (NUL-terminated, cut to
 * cap). share > 1 (the node decides alone): "... per hour; this node's
 * share while the shared counter is unreachable: S; the quota ...". */
void deliv_quota_reply(char *out, size_t cap, const char *account, enum deliv_period p,
                       uint64_t limit, uint64_t share, int64_t reset);

/* ---- reputation ---------------------------------------------------------- */

#define DELIV_REP_SLOTS 48

enum deliv_outcome {
	DELIV_OUT_DELIVERED,  /* a recipient was delivered */
	DELIV_OUT_BOUNCED,    /* a recipient bounced (any permanent failure) */
	DELIV_OUT_HARD,       /* ... and the bounce says the address does not exist */
	DELIV_OUT_COMPLAINED, /* a complaint (feedback report) */
	DELIV_OUTCOMES,
	/* (input only) a hard bounce reported later, by a DSN to the VERP
	 * address, for a recipient already counted as delivered: counts as
	 * hard, not as one more recipient */
	DELIV_OUT_LATE_HARD = DELIV_OUTCOMES
};

struct deliv_rep_slot {
	int64_t start; /* slot start (unix seconds, a multiple of the width); 0: empty */
	uint64_t n[DELIV_OUTCOMES];
};

struct deliv_rep {
	struct deliv_rep_slot slot[DELIV_REP_SLOTS];
};

/* Width in seconds of one slot for a window (at least 1). */
int64_t deliv_rep_width(uint64_t window);
/* Adds n outcomes at time t; returns the slot written (for persistence).
 * A hard bounce is noted as DELIV_OUT_HARD and counts as a bounce too. */
struct deliv_rep_slot *deliv_rep_note(struct deliv_rep *r, uint64_t window, int64_t t,
                                      enum deliv_outcome o, uint64_t n);
/* Puts a stored slot back (at start, or read by the CLI); an old or
 * misaligned one is placed by its start time. */
void deliv_rep_load(struct deliv_rep *r, uint64_t window, const struct deliv_rep_slot *s);

/* Sums over (now - window, now] and after `since` (a resume: 0 for none). */
struct deliv_rates {
	uint64_t volume;     /* recipients whose delivery ended: delivered + bounced */
	uint64_t hard;       /* hard bounces */
	uint64_t complained; /* complaints */
};
void deliv_rep_sum(const struct deliv_rep *r, uint64_t window, int64_t now, int64_t since,
                   struct deliv_rates *out);

struct deliv_rep_limits {
	uint64_t window;            /* seconds */
	uint64_t max_bounce_ppm;    /* parts per million: 5% is 50000 */
	uint64_t max_complaint_ppm; /* 0.1% is 1000 */
	uint64_t min_volume;
};

enum deliv_rep_verdict { DELIV_REP_OK, DELIV_REP_BOUNCES, DELIV_REP_COMPLAINTS };

/* A rate passes its threshold when it is above it (not equal) and the
 * volume is at least min_volume. Bounces are looked at first. */
enum deliv_rep_verdict deliv_rep_judge(const struct deliv_rates *r,
                                       const struct deliv_rep_limits *l);
/* part / volume in ppm (0 when volume is 0), rounded down. */
uint64_t deliv_rate_ppm(uint64_t part, uint64_t volume);
/* ppm as a percentage, at most two decimals, no trailing zeros: "7.2",
 * "5", "0.35". */
void deliv_ppm_text(char *out, size_t cap, uint64_t ppm);
/* A duration in its largest whole unit, days only above two of them:
 * "24h", "48h", "7d", "90m", "45s". */
void deliv_duration_text(char *out, size_t cap, uint64_t seconds);
/* "bounce rate 7.2 % over 24h (threshold 5 %)" for verdict v. */
void deliv_rep_reason(char *out, size_t cap, enum deliv_rep_verdict v, const struct deliv_rates *r,
                      const struct deliv_rep_limits *l);

/* ---- statuses and replies -------------------------------------------------- */

/* 1 if an RFC 3463 status says the address does not exist or is gone
 * (5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10, 5.2.1): a hard bounce, which the
 * suppression list takes. The same set as smtpc_policy's for replies. */
int deliv_status_hard(const char *status);

/* RFC 3339 UTC time: "2026-01-02T10:00:00Z" (cap >= 21). */
void deliv_time_text(char *out, size_t cap, int64_t t);

/* "550 5.1.1 <addr> is on the suppression list (reason, since TIME)": one
 * line of at most 510 octets (the reason is cut to fit), bytes outside
 * printable ASCII shown as '?'. */
void deliv_supp_reply(char *out, size_t cap, const char *addr, const char *reason, int64_t since);

#endif
