/*
 * sched_policy: retry schedule, expiry, delay notices, the rate limit and
 * destination shaping. PURE:
 * libc and util only; the caller passes the time. Contract in
 * sched_policy.h.
 */
#include "sched/sched_policy.h"

#include <assert.h>
#include <string.h>

/* created + lifetime without overflow. */
static int64_t deadline_of(int64_t created, uint64_t lifetime)
{
	if (lifetime > (uint64_t)INT64_MAX ||
	    (created > 0 && (int64_t)lifetime > INT64_MAX - created))
		return INT64_MAX;
	return created + (int64_t)lifetime;
}

enum sched_retry sched_retry_next(const uint64_t *steps, size_t n_steps, uint32_t attempts,
                                  int64_t created, uint64_t lifetime, int64_t now, int64_t *next)
{
	int64_t deadline = deadline_of(created, lifetime);
	size_t i;
	uint64_t step;

	assert(n_steps > 0);
	if (now >= deadline)
		return SCHED_RETRY_EXPIRE;
	i = attempts > 0 ? (size_t)attempts - 1 : 0;
	step = steps[i < n_steps ? i : n_steps - 1];
	/* now < deadline, so the difference is positive and fits */
	if (step >= (uint64_t)(deadline - now))
		*next = deadline;
	else
		*next = now + (int64_t)step;
	return SCHED_RETRY_AT;
}

int64_t sched_prev_attempt(const uint64_t *steps, size_t n_steps, uint32_t attempts, int64_t due)
{
	size_t i;

	assert(n_steps > 0);
	if (attempts < 2 || due <= 0)
		return 0;
	/* the previous attempt was number attempts-1: it waited step attempts-2 */
	i = (size_t)attempts - 2 < n_steps ? (size_t)attempts - 2 : n_steps - 1;
	if (steps[i] >= (uint64_t)due)
		return 0;
	return due - (int64_t)steps[i];
}

int sched_delay_due(int64_t created, uint64_t warn_after, int64_t prev, int64_t now)
{
	int64_t at;

	if (warn_after == 0 || warn_after > (uint64_t)INT64_MAX / 2 ||
	    created > INT64_MAX - (int64_t)warn_after)
		return 0;
	at = created + (int64_t)warn_after;
	return at > prev && at <= now;
}

void sched_bucket_init(struct sched_bucket *b, int64_t now_ms)
{
	b->tokens = 1.0;
	b->at_ms = now_ms;
}

int sched_bucket_take(struct sched_bucket *b, uint64_t max_rate, uint64_t period_s, unsigned burst,
                      int64_t now_ms, int64_t *wait_ms)
{
	double per_ms, cap;

	if (max_rate == 0 || period_s == 0)
		return 1;
	per_ms = (double)max_rate / ((double)period_s * 1000.0);
	cap = (double)(burst < max_rate ? burst : max_rate);
	if (cap < 1.0)
		cap = 1.0;
	if (now_ms > b->at_ms)
		b->tokens += (double)(now_ms - b->at_ms) * per_ms;
	if (b->tokens > cap)
		b->tokens = cap;
	b->at_ms = now_ms;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 1;
	}
	*wait_ms = (int64_t)((1.0 - b->tokens) / per_ms) + 1;
	return 0;
}

int sched_bucket_rested(const struct sched_bucket *b, uint64_t max_rate, uint64_t period_s,
                        int64_t now_ms)
{
	double per_ms;

	if (max_rate == 0 || period_s == 0 || b->tokens >= 1.0)
		return 1;
	per_ms = (double)max_rate / ((double)period_s * 1000.0);
	return now_ms > b->at_ms && b->tokens + (double)(now_ms - b->at_ms) * per_ms >= 1.0;
}

void sched_shape_init(struct sched_shape *s, unsigned max)
{
	memset(s, 0, sizeof(*s));
	s->max = max ? max : 1;
	s->window = s->max < SCHED_WINDOW_START ? s->max : SCHED_WINDOW_START;
}

void sched_shape_set_max(struct sched_shape *s, unsigned max)
{
	s->max = max ? max : 1;
	if (s->window > s->max)
		s->window = s->max;
}

void sched_shape_success(struct sched_shape *s)
{
	s->deferrals = 0;
	s->backoff_ms = 0;
	if (s->window >= s->max) {
		s->credit = 0;
		return;
	}
	if (++s->credit >= s->window) {
		s->window++;
		s->credit = 0;
	}
}

int sched_shape_throttle(struct sched_shape *s, int64_t now_ms)
{
	if (now_ms < s->hold_until_ms)
		return 0;
	s->window = s->window > 1 ? s->window / 2 : 1;
	s->credit = 0;
	s->deferrals = 0;
	if (s->backoff_ms == 0)
		s->backoff_ms = SCHED_BACKOFF_FIRST;
	else if (s->backoff_ms < SCHED_BACKOFF_MAX / 2)
		s->backoff_ms *= 2;
	else
		s->backoff_ms = SCHED_BACKOFF_MAX;
	s->hold_until_ms = now_ms > INT64_MAX - (int64_t)s->backoff_ms
	                       ? INT64_MAX
	                       : now_ms + (int64_t)s->backoff_ms;
	return 1;
}

int sched_shape_deferral(struct sched_shape *s, int64_t now_ms)
{
	if (++s->deferrals < SCHED_DEFERRAL_RUN)
		return 0;
	s->deferrals = 0;
	return sched_shape_throttle(s, now_ms);
}

int sched_shape_may_connect(const struct sched_shape *s, unsigned active, int64_t now_ms)
{
	return active < s->window && now_ms >= s->hold_until_ms;
}
