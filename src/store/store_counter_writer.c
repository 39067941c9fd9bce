/*
 * store_counter_writer: the daemon's delivery counters, from event to row.
 *
 * The loop thread counts into a store_counter_batch (PURE, no waiting);
 * once a second, or as soon as the batch asks for it, the batch is taken
 * and one worker writes it with store_counts_add(). At most one write is
 * in flight: a slow database makes the batch grow (up to its bound), never
 * the number of writers. A failed write goes back into the batch and is
 * tried again with the next one.
 *
 * What a crash costs: the counts of the last second or so (the SPEC allows
 * it for statistics). A clean stop loses nothing: stop hands the batch to
 * a worker, and free writes whatever came after, on the calling thread.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "store/store.h"
#include "util/util.h"
#include "work/work.h"

struct store_counters {
	struct store *st;
	struct work_pool *wp;
	struct store_counter_batch *batch;
	struct event *tick;
	int writing; /* a set is with a worker */
};

struct write_job {
	struct store_counters *sc;
	struct store_counter_set *set;
	int failed;
};

static void write_set(void *arg)
{
	struct write_job *j = arg;
	char *err = NULL;

	if (store_counts_add(j->sc->st, j->set->v, j->set->n, &err) < 0) {
		log_warn("event=counters_error error=%s", log_q(err));
		free(err);
		j->failed = 1;
	}
}

static void set_written(void *arg)
{
	struct write_job *j = arg;

	if (j->failed)
		counter_batch_put_back(j->sc->batch, j->set); /* the next round retries */
	else
		counter_set_free(j->set);
	j->sc->writing = 0;
	free(j);
}

static void flush(struct store_counters *sc)
{
	struct store_counter_set *set;
	struct write_job *j;

	if (sc->writing || !sc->wp || !(set = counter_batch_take(sc->batch)))
		return;
	if (set->dropped)
		log_warn("event=counters_dropped n=%llu", (unsigned long long)set->dropped);
	j = xcalloc(1, sizeof(*j));
	j->sc = sc;
	j->set = set;
	sc->writing = 1;
	work_submit(sc->wp, write_set, set_written, j);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	flush(arg);
}

struct store_counters *store_counters_new(struct event_base *base, struct store *st,
                                          struct work_pool *wp)
{
	struct store_counters *sc = xcalloc(1, sizeof(*sc));

	sc->st = st;
	sc->wp = wp;
	sc->batch = counter_batch_new();
	sc->tick = event_new(base, -1, EV_PERSIST, on_tick, sc);
	event_add(sc->tick, &(struct timeval){1, 0});
	return sc;
}

/* The domain of an address, as counters key it: no trailing root dot. */
static void rcpt_domain(const char *rcpt, char *out, size_t cap)
{
	const char *at = strrchr(rcpt, '@');
	size_t n;

	snprintf(out, cap, "%s", at ? at + 1 : rcpt);
	n = strlen(out);
	if (n > 1 && out[n - 1] == '.')
		out[n - 1] = '\0';
}

void store_counters_count(struct store_counters *sc, const char *account, const char *rcpt,
                          const char *event)
{
	char dom[COUNTER_DOMAIN_MAX + 2];

	rcpt_domain(rcpt, dom, sizeof(dom));
	if (counter_batch_add(sc->batch, clock_now_s(), account, dom, event, 1) == 1)
		flush(sc);
}

void store_counters_stop(struct store_counters *sc)
{
	if (!sc)
		return;
	event_del(sc->tick);
	flush(sc);
	sc->wp = NULL; /* the pool is about to go: nothing more is submitted */
}

void store_counters_free(struct store_counters *sc)
{
	struct write_job j;

	if (!sc)
		return;
	memset(&j, 0, sizeof(j));
	j.sc = sc;
	if ((j.set = counter_batch_take(sc->batch))) {
		write_set(&j);
		counter_set_free(j.set);
	}
	event_free(sc->tick);
	counter_batch_free(sc->batch);
	free(sc);
}
