/*
 * sched_policy: the scheduler's arithmetic. PURE (libc and util only): no
 * clock is read here, the caller passes the time in, so every rule can be
 * tested by walking time forward by hand.
 *
 * Four pieces:
 *   - the retry schedule of a deferred recipient and its expiry after
 *     queue_lifetime (times in unix seconds, as the spool records them);
 *   - when a delay notice is due (unix seconds too);
 *   - the rate limit of one destination, a token bucket (milliseconds);
 *   - the adaptive shaping of one destination (SPEC 5, "additive increase,
 *     multiplicative decrease"): how many connections it may have now, and
 *     how long to hold off after it pushed back (times in milliseconds, as
 *     the event loop's timers use them).
 * smtpc_policy's verdicts say which event happened (enum smtpc_dest_signal:
 * GOOD → sched_shape_success, DEFERRAL → sched_shape_deferral, BACKOFF →
 * sched_shape_throttle).
 */
#ifndef POSTHORN_SCHED_POLICY_H
#define POSTHORN_SCHED_POLICY_H

#include <stddef.h>
#include <stdint.h>

enum sched_retry {
	SCHED_RETRY_AT,     /* try again at *next */
	SCHED_RETRY_EXPIRE, /* past queue_lifetime: bounce with the last reason */
};

/*
 * When to try a recipient again after an attempt failed at now.
 * steps[0..n_steps) are the waits in seconds after the 1st, 2nd, ...
 * failed attempt; the last step repeats (conf's "retry", n_steps >= 1).
 * attempts counts the attempts made, the failed one included (0 reads as
 * 1). The recipient's deadline is created + lifetime (the message's
 * creation time, saturating):
 *   - now at or past the deadline: EXPIRE (*next untouched);
 *   - else AT with *next = now + the step, but never past the deadline,
 *     so the last attempt happens at the deadline itself rather than the
 *     message bouncing up to a whole step early or sitting a step too long.
 * A lifetime of 0 therefore bounces at the first failure.
 */
enum sched_retry sched_retry_next(const uint64_t *steps, size_t n_steps, uint32_t attempts,
                                  int64_t created, uint64_t lifetime, int64_t now, int64_t *next);

/*
 * When the attempt before this one was made, from what a recipient's
 * record keeps: that attempt planned this one for due (the recipient's
 * next_attempt before this attempt) one retry step after itself. attempts
 * counts the attempts made, this one included. 0: this is the first, or
 * the record cannot tell (due 0). When the previous plan was cut short by
 * the deadline the answer is earlier than the truth, never later.
 */
int64_t sched_prev_attempt(const uint64_t *steps, size_t n_steps, uint32_t attempts, int64_t due);

/*
 * Delay notices (RFC 3461 NOTIFY=DELAY, conf's delay_warning): one per
 * recipient, without a flag kept for it. After a failed attempt at now,
 * the previous one having been at prev (0: none), a notice is due when the
 * moment created + warn_after falls in (prev, now]: exactly one attempt
 * sees it cross. warn_after 0 turns notices off. Whether the recipient
 * asked for one is dsn_delay_wanted()'s business.
 */
int sched_delay_due(int64_t created, uint64_t warn_after, int64_t prev, int64_t now);

/*
 * The rate limit of a destination ([domain.*] max_rate): a token bucket.
 * Tokens refill continuously at max_rate per period_s seconds, up to a
 * burst of min(burst, max_rate) (at least 1): a destination that was quiet
 * may start that many messages at once, then one each 1/rate. A fresh
 * bucket holds one token. Callers pass SCHED_RATE_BURST unless they have a
 * reason not to.
 */
#define SCHED_RATE_BURST 10

struct sched_bucket {
	double tokens; /* messages that may start now; fractional while refilling */
	int64_t at_ms; /* when tokens was last brought up to date */
};

void sched_bucket_init(struct sched_bucket *b, int64_t now_ms);

/* Takes a token and returns 1 when one is there (always, when max_rate or
 * period_s is 0: no limit). Otherwise returns 0 with *wait_ms, how long
 * until one will be (at least 1 ms). A clock that went backwards refills
 * nothing. */
int sched_bucket_take(struct sched_bucket *b, uint64_t max_rate, uint64_t period_s, unsigned burst,
                      int64_t now_ms, int64_t *wait_ms);

/* 1 when a fresh bucket (one token) would give no more than b does at
 * now_ms: no limit, or b has refilled to a whole token. A destination is
 * forgotten only then, or forgetting would let it send early. */
int sched_bucket_rested(const struct sched_bucket *b, uint64_t max_rate, uint64_t period_s,
                        int64_t now_ms);

#define SCHED_WINDOW_START  5      /* connections a fresh destination gets (Postfix's default) */
#define SCHED_BACKOFF_FIRST 1000   /* ms: the first pause after a push back */
#define SCHED_BACKOFF_MAX   300000 /* ms: pauses double up to 5 minutes */
#define SCHED_DEFERRAL_RUN  3      /* 4xx deferrals in a row that count as a push back */

/*
 * Shaping state of one destination. Read the fields; change them only
 * through the functions below.
 */
struct sched_shape {
	unsigned window;       /* connections allowed now, 1..max */
	unsigned max;          /* the configured max_connections, >= 1 */
	unsigned credit;       /* deliveries since the window last grew */
	unsigned deferrals;    /* 4xx deferrals in a row */
	uint64_t backoff_ms;   /* length of the last pause; 0 once healthy again */
	int64_t hold_until_ms; /* no new connection before this time */
};

/* A fresh destination: window min(SCHED_WINDOW_START, max), no pause.
 * max 0 reads as 1. */
void sched_shape_init(struct sched_shape *s, unsigned max);

/* The configuration changed (reload): clamp the window to the new max
 * (0 reads as 1); a larger max is reached by growing as usual. */
void sched_shape_set_max(struct sched_shape *s, unsigned max);

/*
 * A message was delivered. Additive increase as in TCP congestion
 * avoidance: the window grows by one after a window's worth of deliveries,
 * up to max, so growth is steady whatever the window. The deferral run
 * and the pause length reset (the next pause starts at
 * SCHED_BACKOFF_FIRST again); a pause already begun still runs out.
 */
void sched_shape_success(struct sched_shape *s);

/*
 * A 4xx deferral. One alone may be about a single mailbox; a run of
 * SCHED_DEFERRAL_RUN in a row with no delivery between is the destination
 * pushing back, and throttles (see below). Returns 1 when it throttled.
 */
int sched_shape_deferral(struct sched_shape *s, int64_t now_ms);

/*
 * The destination pushed back (421, greeting 4xx, connection trouble, a
 * run of deferrals). Multiplicative decrease: halve the window (minimum
 * 1) and hold new connections for a pause that doubles each time, from
 * SCHED_BACKOFF_FIRST to SCHED_BACKOFF_MAX. The connections that were
 * already open when it began report the same event, so a push back that
 * arrives while a pause is running is one event, not another halving
 * (TCP decreases once per window). Returns 1 when it took effect.
 */
int sched_shape_throttle(struct sched_shape *s, int64_t now_ms);

/* 1 when one more connection may open now: fewer than window open and
 * no pause running. */
int sched_shape_may_connect(const struct sched_shape *s, unsigned active, int64_t now_ms);

/*
 * Paused destinations (sched_pause_list.c, PURE too): the list `posthorn
 * pause` keeps in DATA_DIR/paused, and the bytes of that file.
 */
struct buf;
struct sched_pauses {
	char **names; /* destination names in normal form, sorted */
	size_t n;
	int all; /* pause --all */
};

/* A destination name as the CLI got it, in normal form into out (cap
 * bytes): a domain in lower case without its final dot, or an address
 * literal "[...]". -1 if it is neither. */
int sched_pause_name(const char *in, char *out, size_t cap);
/* 1 if name (normal form) is in the list itself (all aside). */
int sched_pauses_has(const struct sched_pauses *ps, const char *name);
/* 1 if destination dest may not be delivered to now: all, or listed. */
int sched_paused(const struct sched_pauses *ps, const char *dest);
/* 1 added, 0 already there. */
int sched_pauses_add(struct sched_pauses *ps, const char *name);
/* 1 removed, 0 was not there. */
int sched_pauses_del(struct sched_pauses *ps, const char *name);
void sched_pauses_free(struct sched_pauses *ps);
/* The file's bytes: one name a line, "*" for all, blank and '#' lines
 * ignored. Never fails: a line that is not a name is skipped and counted
 * in *bad. out is fresh (free it with sched_pauses_free). */
void sched_pauses_parse(const char *p, size_t n, struct sched_pauses *out, size_t *bad);
/* The file's bytes for ps, appended to out. */
void sched_pauses_format(const struct sched_pauses *ps, struct buf *out);

#endif
