/*
 * deliv_policy: quota windows, the reputation guard's arithmetic, the
 * hard-bounce statuses and the reply texts. PURE (libc + util). Contract
 * in deliv_policy.h.
 */
#include "deliv/deliv_policy.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

#define HOUR_S 3600
#define DAY_S  86400
#define PPM    1000000u

/* ---- quotas ------------------------------------------------------------ */

static int64_t period_len(enum deliv_period p)
{
	return p == DELIV_DAY ? DAY_S : HOUR_S;
}

const char *deliv_period_name(enum deliv_period p)
{
	return p == DELIV_DAY ? "day" : "hour";
}

/* Floor division: a time before the epoch still lands in its window. */
int64_t deliv_window_start(enum deliv_period p, int64_t now)
{
	int64_t len = period_len(p), r = now % len;

	return now - (r < 0 ? r + len : r);
}

int64_t deliv_window_end(enum deliv_period p, int64_t now)
{
	return deliv_window_start(p, now) + period_len(p);
}

int deliv_q_roll(struct deliv_quota *q, int64_t now)
{
	int moved = 0;

	for (int p = 0; p < DELIV_PERIODS; p++) {
		int64_t w = deliv_window_start((enum deliv_period)p, now);
		if (q->start[p] != w) {
			q->start[p] = w;
			q->used[p] = 0;
			moved = 1;
		}
	}
	return moved;
}

uint64_t deliv_q_share_of(uint64_t limit, uint64_t share)
{
	if (limit && share > 1)
		return limit / share ? limit / share : 1;
	return limit;
}

/* 1 if n more do not fit in period p. */
static int over(const struct deliv_quota *q, int p, uint64_t n)
{
	uint64_t lim = deliv_q_share_of(q->limit[p], q->share);

	return lim && (q->used[p] >= lim || q->reserved >= lim - q->used[p] ||
	               n > lim - q->used[p] - q->reserved);
}

static int check(struct deliv_quota *q, uint64_t n, int64_t now, enum deliv_period *which,
                 int64_t *reset)
{
	deliv_q_roll(q, now);
	/* the day first: its reset is the later one, and the more useful */
	for (int p = DELIV_PERIODS - 1; p >= 0; p--) {
		if (over(q, p, n)) {
			*which = (enum deliv_period)p;
			*reset = deliv_window_end((enum deliv_period)p, now);
			return -1;
		}
	}
	return 0;
}

int deliv_q_take(struct deliv_quota *q, uint64_t n, int64_t now, enum deliv_period *which,
                 int64_t *reset)
{
	if (check(q, n, now, which, reset) < 0)
		return -1;
	q->reserved += n;
	return 0;
}

int deliv_q_full(struct deliv_quota *q, int64_t now, enum deliv_period *which, int64_t *reset)
{
	return check(q, 1, now, which, reset) < 0;
}

void deliv_q_commit(struct deliv_quota *q, uint64_t n, int64_t now)
{
	if (n > q->reserved)
		n = q->reserved;
	q->reserved -= n;
	deliv_q_roll(q, now);
	for (int p = 0; p < DELIV_PERIODS; p++)
		q->used[p] += n;
}

void deliv_q_release(struct deliv_quota *q, uint64_t n)
{
	q->reserved -= n > q->reserved ? q->reserved : n;
}

void deliv_quota_reply(char *out, size_t cap, const char *account, enum deliv_period p,
                       uint64_t limit, uint64_t share, int64_t reset)
{
	char when[32], part[96] = "";

	deliv_time_text(when, sizeof(when), reset);
	if (share > 1)
		snprintf(part, sizeof(part),
		         "; this node's share while the shared counter is unreachable: %llu",
		         (unsigned long long)deliv_q_share_of(limit, share));
	snprintf(out, cap,
	         "450 4.7.1 Quota exceeded: account %s may send %llu messages per %s%s; "
	         "the quota resets at %s",
	         account, (unsigned long long)limit, deliv_period_name(p), part, when);
}

/* ---- reputation ---------------------------------------------------------- */

int64_t deliv_rep_width(uint64_t window)
{
	uint64_t w = (window + DELIV_REP_SLOTS - 1) / DELIV_REP_SLOTS;

	return w ? (int64_t)w : 1;
}

static size_t slot_index(int64_t start, int64_t width)
{
	int64_t k = start / width;

	return (size_t)(k % DELIV_REP_SLOTS);
}

/* The slot for slot-start s, emptied when it held an older one. */
static struct deliv_rep_slot *slot_at(struct deliv_rep *r, int64_t s, int64_t width)
{
	struct deliv_rep_slot *sl = &r->slot[slot_index(s, width)];

	if (sl->start != s) {
		memset(sl, 0, sizeof(*sl));
		sl->start = s;
	}
	return sl;
}

struct deliv_rep_slot *deliv_rep_note(struct deliv_rep *r, uint64_t window, int64_t t,
                                      enum deliv_outcome o, uint64_t n)
{
	int64_t width = deliv_rep_width(window);
	struct deliv_rep_slot *sl;

	if (t < width)
		t = width; /* slot start 0 means "empty" */
	sl = slot_at(r, t - t % width, width);
	if (o == DELIV_OUT_LATE_HARD) {
		sl->n[DELIV_OUT_HARD] += n;
		return sl;
	}
	sl->n[o] += n;
	if (o == DELIV_OUT_HARD)
		sl->n[DELIV_OUT_BOUNCED] += n;
	return sl;
}

void deliv_rep_load(struct deliv_rep *r, uint64_t window, const struct deliv_rep_slot *s)
{
	int64_t width = deliv_rep_width(window);
	struct deliv_rep_slot *sl;

	if (s->start < width)
		return;
	sl = slot_at(r, s->start - s->start % width, width);
	for (int o = 0; o < DELIV_OUTCOMES; o++)
		sl->n[o] += s->n[o];
}

void deliv_rep_sum(const struct deliv_rep *r, uint64_t window, int64_t now, int64_t since,
                   struct deliv_rates *out)
{
	int64_t width = deliv_rep_width(window);
	/* the slots inside the window: the one holding now and those before */
	int64_t first = now - now % width - (int64_t)(DELIV_REP_SLOTS - 1) * width;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < DELIV_REP_SLOTS; i++) {
		const struct deliv_rep_slot *sl = &r->slot[i];
		if (!sl->start || sl->start < first || sl->start > now ||
		    sl->start + width <= since)
			continue;
		out->volume += sl->n[DELIV_OUT_DELIVERED] + sl->n[DELIV_OUT_BOUNCED];
		out->hard += sl->n[DELIV_OUT_HARD];
		out->complained += sl->n[DELIV_OUT_COMPLAINED];
	}
}

uint64_t deliv_rate_ppm(uint64_t part, uint64_t volume)
{
	if (!volume)
		return 0;
	if (part >= volume)
		return PPM;
	return part * PPM / volume; /* part < volume: no overflow below 1.8e13 */
}

/* x * 1e6 > ppm * volume, without overflow for any counts. */
static int above(uint64_t part, uint64_t volume, uint64_t ppm)
{
	return (long double)part * PPM > (long double)ppm * volume;
}

enum deliv_rep_verdict deliv_rep_judge(const struct deliv_rates *r,
                                       const struct deliv_rep_limits *l)
{
	if (!r->volume || r->volume < l->min_volume)
		return DELIV_REP_OK;
	if (above(r->hard, r->volume, l->max_bounce_ppm))
		return DELIV_REP_BOUNCES;
	if (above(r->complained, r->volume, l->max_complaint_ppm))
		return DELIV_REP_COMPLAINTS;
	return DELIV_REP_OK;
}

void deliv_ppm_text(char *out, size_t cap, uint64_t ppm)
{
	uint64_t hundredths = ppm / 100; /* 1 % = 10000 ppm = 100 hundredths */
	size_t n;

	snprintf(out, cap, "%llu.%02llu", (unsigned long long)(hundredths / 100),
	         (unsigned long long)(hundredths % 100));
	n = strlen(out);
	while (n > 0 && out[n - 1] == '0')
		out[--n] = '\0';
	if (n > 0 && out[n - 1] == '.')
		out[--n] = '\0';
}

void deliv_duration_text(char *out, size_t cap, uint64_t s)
{
	/* days only beyond two of them: a window is "24h", as people say it */
	if (s > 2 * DAY_S && s % DAY_S == 0)
		snprintf(out, cap, "%llud", (unsigned long long)(s / DAY_S));
	else if (s && s % HOUR_S == 0)
		snprintf(out, cap, "%lluh", (unsigned long long)(s / HOUR_S));
	else if (s && s % 60 == 0)
		snprintf(out, cap, "%llum", (unsigned long long)(s / 60));
	else
		snprintf(out, cap, "%llus", (unsigned long long)s);
}

void deliv_rep_reason(char *out, size_t cap, enum deliv_rep_verdict v, const struct deliv_rates *r,
                      const struct deliv_rep_limits *l)
{
	int bounces = v != DELIV_REP_COMPLAINTS;
	char rate[32], limit[32], win[32];

	deliv_ppm_text(rate, sizeof(rate),
	               deliv_rate_ppm(bounces ? r->hard : r->complained, r->volume));
	deliv_ppm_text(limit, sizeof(limit), bounces ? l->max_bounce_ppm : l->max_complaint_ppm);
	deliv_duration_text(win, sizeof(win), l->window);
	snprintf(out, cap, "%s rate %s %% over %s (threshold %s %%)",
	         bounces ? "bounce" : "complaint", rate, win, limit);
}

/* ---- statuses and replies -------------------------------------------------- */

int deliv_status_hard(const char *status)
{
	static const char *const hard[] = {"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1"};

	if (!status)
		return 0;
	for (size_t i = 0; i < ARRAY_LEN(hard); i++)
		if (strcmp(status, hard[i]) == 0)
			return 1;
	return 0;
}

void deliv_time_text(char *out, size_t cap, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, cap, "%lld", (long long)t);
}

/* Appends s to b as printable ASCII ('?' for anything else), at most max bytes. */
static void put_ascii(struct buf *b, const char *s, size_t max)
{
	for (size_t i = 0; s[i] && i < max; i++) {
		char c = s[i] >= 32 && s[i] < 127 ? s[i] : '?';
		buf_append(b, &c, 1);
	}
}

#define REPLY_MAX 510 /* RFC 5321 4.5.3.1.5: 512 octets with CRLF */

void deliv_supp_reply(char *out, size_t cap, const char *addr, const char *reason, int64_t since)
{
	char when[32];
	struct buf b;
	size_t fixed, room;

	deliv_time_text(when, sizeof(when), since);
	buf_init(&b);
	buf_puts(&b, "550 5.1.1 <");
	put_ascii(&b, addr, 254);
	buf_puts(&b, "> is on the suppression list (");
	/* the end: ", since " + time + ")" */
	fixed = b.len + strlen(", since ") + strlen(when) + 1;
	room = fixed < REPLY_MAX ? REPLY_MAX - fixed : 0;
	put_ascii(&b, reason && *reason ? reason : "suppressed", room);
	buf_printf(&b, ", since %s)", when);
	snprintf(out, cap, "%s", b.data);
	buf_free(&b);
}
