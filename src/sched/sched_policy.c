/*
 * sched_policy: retry schedule, expiry and destination shaping. PURE:
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
