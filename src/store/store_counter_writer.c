/*
 * store_counter_writer: the daemon's delivery counters, from event to row.
 *
 * The loop thread counts into a store_counter_batch (PURE, no waiting);
 * once a second, or as soon as the batch asks for it, the batch is taken
 * and one worker writes it with store_counts_add(). At most one write is
 * in flight: a slow database makes the batch grow (up to its bound), never
 * the number of writers. Each set taken carries a key (random per process,
 * then a sequence), so that a write whose COMMIT got no answer but went
 * through is not counted again (store_counts_add_once): a failed set is
 * kept, and tried again as it is, under its key, before the next one is
 * taken; meanwhile the batch gathers what comes (up to its bound).
 *
 * What a crash costs: the counts of the last second or so (the SPEC allows
 * it for statistics). A clean stop loses nothing: stop hands the batch to
 * a worker, and free writes whatever came after, on the calling thread.
 */
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "store/store.h"
#include "store/store_events_once.h"
#include "util/util.h"
#include "work/work.h"

#define KEY_LEN 64

struct store_counters {
	struct store *st;
	struct work_pool *wp;
	struct store_counter_batch *batch;
	struct event *tick;
	int writing; /* a set is with a worker */
	char key_prefix[40];
	uint64_t seq;
	struct store_counter_set *retry; /* a set whose write failed, and its key */
	char retry_key[KEY_LEN];
};

struct write_job {
	struct store_counters *sc;
	struct store_counter_set *set;
	char key[KEY_LEN];
	int failed;
};

static void write_set(void *arg)
{
	struct write_job *j = arg;
	char *err = NULL;
	int rc = store_counts_add_once(j->sc->st, j->key, j->set->v, j->set->n, &err);

	if (rc < 0) {
		log_warn("event=counters_error error=%s", log_q(err));
		free(err);
		j->failed = 1;
	} else if (rc == STORE_EVENT_WRITTEN_BEFORE) {
		log_info("event=counters_written_before key=%s", j->key);
	}
}

static void set_written(void *arg)
{
	struct write_job *j = arg;

	if (j->failed) { /* the next round tries it again, under its key */
		j->sc->retry = j->set;
		memcpy(j->sc->retry_key, j->key, KEY_LEN);
	} else {
		counter_set_free(j->set);
	}
	j->sc->writing = 0;
	free(j);
}

/* The set to write next into j (the failed one first), NULL: none. */
static struct store_counter_set *next_set(struct store_counters *sc, struct write_job *j)
{
	struct store_counter_set *set = sc->retry;

	if (set) {
		sc->retry = NULL;
		memcpy(j->key, sc->retry_key, KEY_LEN);
		return set;
	}
	if (!(set = counter_batch_take(sc->batch)))
		return NULL;
	if (set->dropped)
		log_warn("event=counters_dropped n=%llu", (unsigned long long)set->dropped);
	snprintf(j->key, KEY_LEN, "%s.%llu", sc->key_prefix, (unsigned long long)++sc->seq);
	return set;
}

static void flush(struct store_counters *sc)
{
	struct write_job *j;

	if (sc->writing || !sc->wp)
		return;
	j = xcalloc(1, sizeof(*j));
	if (!(j->set = next_set(sc, j))) {
		free(j);
		return;
	}
	j->sc = sc;
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
	unsigned char rnd[8];
	char hex[2 * sizeof(rnd) + 1];

	sc->st = st;
	sc->wp = wp;
	sc->batch = counter_batch_new();
	/* unique among the processes writing to one database: 64 random bits
	 * and the start time */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(sc->key_prefix, sizeof(sc->key_prefix), "c.%s.%llu", hex,
	         (unsigned long long)clock_now_ms());
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
	/* the failed set (if any), then the rest: one try each */
	for (int i = 0; i < 2 && (j.set = next_set(sc, &j)); i++) {
		write_set(&j);
		counter_set_free(j.set);
	}
	event_free(sc->tick);
	counter_batch_free(sc->batch);
	free(sc);
}
