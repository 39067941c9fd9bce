/*
 * events: the bounded queue emitters copy events into, and the writer
 * thread that turns it into batches in the database (see events.h and
 * docs/events.md for the durability argument).
 *
 * Promises:
 * - events_emit() and events_accepted() take the queue's mutex for one
 *   memcpy (the writer holds it only to swap two buffers), so the loop
 *   never waits on SQLite. Once the two buffers have grown to the working
 *   size, an event costs no allocation.
 * - The queue is bounded (max_queue_bytes). A full queue refuses the
 *   event, counts it (posthorn_events_dropped_total) and says so in the
 *   log at most once a second: the loop is never blocked, and memory
 *   never grows with a stuck database.
 * - The writer writes in queue order, at most batch_max events per
 *   transaction, and retries a failed batch every second until it is
 *   written (the database may come back) or the server stops (then it
 *   tries 3 times and logs what it gives up).
 * - Every attempt at a batch passes the same key, unique in the cluster
 *   (node ID, this writer's start, a sequence): an attempt whose COMMIT got
 *   no answer but was committed is not written again by the retry
 *   (store_events_write).
 * - events_free() writes everything queued before it returns.
 * - Pruning runs on the writer thread between batches, 1,000 rows per
 *   table at a time, so writing never waits long behind it.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events/events.h"
#include "events/events_int.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "store/store_events_once.h"
#include "util/util.h"

#define RETRY_MS          1000
#define STOP_ATTEMPTS     3
#define PRUNE_CHUNK       1000
#define PRUNE_MIN_MS      1000
#define PRUNE_MAX_MS      (10 * 60 * 1000)
#define DROP_LOG_EVERY_MS 1000
#define KEY_KEEP_MS       (24 * 3600 * 1000LL) /* batch keys: far longer than any retry */

struct events {
	struct store *st;
	struct events_opts o;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the writer: work, flush or stop */
	pthread_cond_t done; /* flushers: seq_out moved */
	struct buf q;        /* records waiting, in emit order */
	size_t q_events;     /* events in q */
	uint64_t q_records;  /* records in q */
	uint64_t seq_in;     /* records ever queued */
	uint64_t seq_out;    /* records written or given up */
	int stop, flush_now;
	uint64_t dropped_unlogged, last_drop_log_ms;
	struct events_stats stats;
	/* writer thread only */
	int prune_active;
	uint64_t next_prune_ms, pruned;
	char key_prefix[NODE_ID_LEN + 32]; /* node ID and start of the batch keys */
	uint64_t batch_seq;
};

/* ---- time ------------------------------------------------------------------------ */

static struct timespec mono_after(uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static int64_t now_ms(void)
{
	return (int64_t)clock_now_ms();
}

/* ---- emitting ------------------------------------------------------------------- */

static void note_drop(struct events *ev, uint64_t n)
{
	uint64_t t = clock_mono_ms();

	ev->stats.dropped += n;
	ev->dropped_unlogged += n;
	metrics_add(M_EVENTS_DROPPED, n);
	if (t - ev->last_drop_log_ms < DROP_LOG_EVERY_MS && ev->last_drop_log_ms)
		return;
	log_warn("event=events_dropped n=%llu queued_bytes=%zu reason=queue_full",
	         (unsigned long long)ev->dropped_unlogged, ev->q.len);
	ev->dropped_unlogged = 0;
	ev->last_drop_log_ms = t;
}

/* Called with ev->mu held: room for `bytes` more, or the events are dropped. */
static int room_for(struct events *ev, size_t bytes, size_t n_events)
{
	if (!ev->stop && ev->q.len + bytes <= ev->o.max_queue_bytes)
		return 1;
	note_drop(ev, n_events);
	return 0;
}

/* Called with ev->mu held, after appending. */
static void queued(struct events *ev, uint64_t records, size_t n_events)
{
	ev->q_records += records;
	ev->seq_in += records;
	ev->q_events += n_events;
	ev->stats.queued += records;
	metrics_set(M_EVENTS_QUEUE_BYTES, (int64_t)ev->q.len);
	if (ev->q_events >= ev->o.batch_max)
		pthread_cond_signal(&ev->wake);
}

static int account_ok(const char *account)
{
	return account && *account && strlen(account) <= COUNTER_ACCOUNT_MAX;
}

static void event_rec(struct evrec *r, const struct events_event *e)
{
	memset(r, 0, sizeof(*r));
	r->kind = EVREC_EVENT;
	r->type = (uint8_t)e->type;
	r->machine = e->machine ? 1 : 0;
	r->num = e->attempt;
	r->time_ms = e->time_ms ? e->time_ms : now_ms();
	evrec_set(r, RS_ACCOUNT, e->account);
	evrec_set(r, RS_MESSAGE_ID, e->message_id);
	evrec_set(r, RS_RECIPIENT, e->recipient);
	evrec_set(r, RS_MX, e->mx);
	evrec_set(r, RS_REPLY, e->reply);
	evrec_set(r, RS_STATUS, e->status);
	evrec_set(r, RS_REASON, e->reason);
	evrec_set(r, RS_URL, e->url);
	evrec_set(r, RS_AGENT, e->user_agent);
}

int events_emit(struct events *ev, const struct events_event *e)
{
	struct evrec r;
	int ok;

	if (!ev || !account_ok(e->account) || !event_type_name((int)e->type))
		return -1;
	event_rec(&r, e);
	pthread_mutex_lock(&ev->mu);
	ok = room_for(ev, evrec_size(&r), 1);
	if (ok) {
		evrec_append(&ev->q, &r);
		queued(ev, 1, 1);
	}
	pthread_mutex_unlock(&ev->mu);
	return ok ? 0 : -1;
}

/* The tags as one string of NUL-terminated tags; returns how many. */
static uint32_t tags_blob(const struct events_message *m, char *out, size_t cap, size_t *len)
{
	uint32_t n = 0;

	*len = 0;
	for (size_t i = 0; i < m->n_tags && n < EVENT_TAGS_MAX; i++) {
		size_t k = m->tags[i] ? strlen(m->tags[i]) : 0;

		if (k == 0 || k > EVENT_TAG_MAX || *len + k + 1 > cap)
			continue;
		memcpy(out + *len, m->tags[i], k + 1);
		*len += k + 1;
		n++;
	}
	return n;
}

static void message_rec(struct evrec *r, const struct events_message *m, const char *tags,
                        size_t tags_len, uint32_t n_tags)
{
	memset(r, 0, sizeof(*r));
	r->kind = EVREC_MESSAGE;
	r->num = n_tags;
	r->time_ms = m->time_ms ? m->time_ms : now_ms();
	evrec_set(r, RM_ID, m->id);
	evrec_set(r, RM_ACCOUNT, m->account);
	evrec_set(r, RM_FROM, m->from);
	evrec_set(r, RM_SUBJECT, m->subject);
	evrec_set(r, RM_METADATA, m->metadata);
	evrec_set_n(r, RM_TAGS, tags, tags_len);
}

static void accepted_rec(struct evrec *r, const struct events_message *m, int64_t t, size_t i)
{
	struct events_event e;

	memset(&e, 0, sizeof(e));
	e.type = EVENT_ACCEPTED;
	e.account = m->account;
	e.message_id = m->id;
	e.recipient = m->rcpts[i];
	e.time_ms = t;
	event_rec(r, &e);
}

/* Bytes the message and its accepted events take in the queue. */
static size_t accepted_size(const struct evrec *msg, const struct events_message *m)
{
	size_t bytes = evrec_size(msg);

	for (size_t i = 0; i < m->n_rcpts; i++) {
		struct evrec a;
		accepted_rec(&a, m, msg->time_ms, i);
		bytes += evrec_size(&a);
	}
	return bytes;
}

int events_accepted(struct events *ev, const struct events_message *m)
{
	char tags[EVENT_TAGS_MAX * (EVENT_TAG_MAX + 1)];
	size_t tags_len, bytes;
	uint32_t n_tags;
	struct evrec r;
	int ok;

	if (!ev || !account_ok(m->account) || !m->id || !*m->id)
		return -1;
	n_tags = tags_blob(m, tags, sizeof(tags), &tags_len);
	message_rec(&r, m, tags, tags_len, n_tags);
	bytes = accepted_size(&r, m);
	pthread_mutex_lock(&ev->mu);
	ok = room_for(ev, bytes, m->n_rcpts);
	if (ok) {
		evrec_append(&ev->q, &r);
		for (size_t i = 0; i < m->n_rcpts; i++) {
			struct evrec a;
			accepted_rec(&a, m, r.time_ms, i);
			evrec_append(&ev->q, &a);
		}
		queued(ev, 1 + m->n_rcpts, m->n_rcpts);
	}
	pthread_mutex_unlock(&ev->mu);
	return ok ? 0 : -1;
}

/* ---- the writer: records to store rows ---------------------------------------------- */

/* One transaction's worth of rows, and the strings they point to. */
struct chunk {
	struct store_message *m;
	size_t n_m;
	struct store_event *e;
	size_t n_e;
	size_t cap; /* of both arrays */
	char **owned;
	size_t n_owned, cap_owned;
};

static const char *own(struct chunk *c, char *s)
{
	if (c->n_owned == c->cap_owned) {
		c->cap_owned = c->cap_owned ? c->cap_owned * 2 : 256;
		c->owned = xrealloc(c->owned, c->cap_owned * sizeof(*c->owned));
	}
	c->owned[c->n_owned++] = s;
	return s;
}

static void chunk_clear(struct chunk *c)
{
	for (size_t i = 0; i < c->n_owned; i++)
		free(c->owned[i]);
	for (size_t i = 0; i < c->n_m; i++)
		free((void *)c->m[i].tags);
	c->n_owned = c->n_m = c->n_e = 0;
}

static void chunk_free(struct chunk *c)
{
	chunk_clear(c);
	free(c->owned);
	free(c->m);
	free(c->e);
}

/* A string slot as valid UTF-8 within `cap` bytes (cut at a character
 * boundary); NULL when absent or empty. Valid text is used where it is,
 * in the taken queue buffer, which outlives the chunk; only text that
 * needs cleaning is copied (and owned by the chunk). */
static const char *text(struct chunk *c, const struct evrec *r, int slot, size_t cap)
{
	char *s;
	size_t n;

	if (!r->s[slot] || r->len[slot] == 0)
		return NULL;
	if (r->len[slot] <= cap && events_utf8_valid(r->s[slot], r->len[slot]))
		return r->s[slot];
	s = events_utf8_clean(r->s[slot], r->len[slot]);
	n = strlen(s);
	if (n > cap) {
		while (cap > 0 && ((unsigned char)s[cap] & 0xc0) == 0x80)
			cap--;
		s[cap] = '\0';
	}
	return own(c, s);
}

/* Metadata that is not a JSON object of bounded size is not kept. */
static const char *metadata(struct chunk *c, const struct evrec *r, const char *id)
{
	json_t *v;
	int ok;

	if (!r->s[RM_METADATA])
		return NULL;
	v = json_loadb(r->s[RM_METADATA], r->len[RM_METADATA], JSON_REJECT_DUPLICATES, NULL);
	ok = json_is_object(v);
	json_decref(v);
	if (ok)
		return own(c, xstrndup(r->s[RM_METADATA], r->len[RM_METADATA]));
	log_warn("queue=%s event=events_metadata_dropped reason=not_a_json_object", id);
	return NULL;
}

static void chunk_grow(struct chunk *c)
{
	if (c->n_m < c->cap && c->n_e < c->cap)
		return;
	c->cap = c->cap ? c->cap * 2 : 64;
	c->m = xrealloc(c->m, c->cap * sizeof(*c->m));
	c->e = xrealloc(c->e, c->cap * sizeof(*c->e));
}

static void add_message(struct chunk *c, const struct evrec *r)
{
	struct store_message *m;
	const char **tags = xcalloc(r->num ? r->num : 1, sizeof(*tags));
	const char *p = r->s[RM_TAGS];
	size_t n = 0;

	chunk_grow(c);
	m = &c->m[c->n_m++];
	memset(m, 0, sizeof(*m));
	m->id = text(c, r, RM_ID, 64);
	m->account = text(c, r, RM_ACCOUNT, COUNTER_ACCOUNT_MAX);
	m->from = text(c, r, RM_FROM, EVENT_ADDR_MAX);
	m->subject = text(c, r, RM_SUBJECT, EVENT_SUBJECT_MAX);
	if (!m->from)
		m->from = "";
	if (!m->subject)
		m->subject = "";
	m->metadata = metadata(c, r, m->id);
	for (uint32_t i = 0; p && i < r->num && p < r->s[RM_TAGS] + r->len[RM_TAGS]; i++) {
		struct evrec one = {.s = {p}, .len = {strlen(p)}};
		if ((tags[n] = text(c, &one, 0, EVENT_TAG_MAX)) != NULL)
			n++;
		p += strlen(p) + 1;
	}
	m->tags = tags;
	m->n_tags = n;
	m->created_ms = r->time_ms;
}

static void add_event(struct chunk *c, const struct evrec *r)
{
	struct store_event *e;

	chunk_grow(c);
	e = &c->e[c->n_e++];
	memset(e, 0, sizeof(*e));
	e->type = r->type;
	e->account = text(c, r, RS_ACCOUNT, COUNTER_ACCOUNT_MAX);
	e->message_id = text(c, r, RS_MESSAGE_ID, 64);
	e->recipient = text(c, r, RS_RECIPIENT, EVENT_ADDR_MAX);
	e->time_ms = r->time_ms;
	e->detail = own(c, events_detail(r));
	if (r->type == EVENT_CLICKED)
		e->link = text(c, r, RS_URL, EVENT_DETAIL_MAX);
}

/* ---- the writer: batches ------------------------------------------------------------ */

static int stopping(struct events *ev)
{
	int stop;

	pthread_mutex_lock(&ev->mu);
	stop = ev->stop;
	pthread_mutex_unlock(&ev->mu);
	return stop;
}

/* Waits RETRY_MS unless the server stops meanwhile. */
static void pause_retry(struct events *ev)
{
	struct timespec until = mono_after(RETRY_MS);

	pthread_mutex_lock(&ev->mu);
	if (!ev->stop)
		pthread_cond_timedwait(&ev->wake, &ev->mu, &until);
	pthread_mutex_unlock(&ev->mu);
}

static void written(struct events *ev, size_t n_new)
{
	pthread_mutex_lock(&ev->mu);
	ev->stats.written += n_new;
	ev->stats.batches++;
	pthread_mutex_unlock(&ev->mu);
	metrics_add(M_EVENTS_WRITTEN, n_new);
	if (n_new && ev->o.written)
		ev->o.written(ev->o.written_arg);
}

static void given_up(struct events *ev, const struct chunk *c, const char *why)
{
	log_err("event=events_lost n=%zu messages=%zu error=%s", c->n_e, c->n_m, log_q(why));
	pthread_mutex_lock(&ev->mu);
	ev->stats.lost += c->n_e;
	pthread_mutex_unlock(&ev->mu);
}

/* Writes the chunk, again every second while the database fails, each
 * time under the same key. */
static void write_chunk(struct events *ev, struct chunk *c)
{
	char key[sizeof(ev->key_prefix) + 24];
	struct store_event_batch b = {c->m, c->n_m, c->e, c->n_e, key};

	snprintf(key, sizeof(key), "%s.%llu", ev->key_prefix, (unsigned long long)++ev->batch_seq);
	for (int attempt = 1;; attempt++) {
		char *err = NULL;
		size_t n_new = 0;
		int rc = store_events_write(ev->st, &b, &n_new, &err);

		if (rc == STORE_EVENT_WRITTEN_BEFORE) {
			/* the attempt whose COMMIT got no answer wrote them */
			log_info("event=events_written_before n=%zu attempt=%d", c->n_e, attempt);
			n_new = c->n_e;
		}
		if (rc == 0 || rc == STORE_EVENT_WRITTEN_BEFORE) {
			written(ev, n_new);
			return;
		}
		if (rc == STORE_EVENT_INVALID || (stopping(ev) && attempt >= STOP_ATTEMPTS)) {
			given_up(ev, c, err);
			free(err);
			return;
		}
		if (attempt == 1 || attempt % 60 == 0)
			log_warn("event=events_write_error n=%zu attempt=%d error=%s", c->n_e,
			         attempt, log_q(err));
		free(err);
		pause_retry(ev);
	}
}

/* Decodes the taken records and writes them, batch_max events at a time. */
static void write_all(struct events *ev, const struct buf *work)
{
	struct chunk c;
	struct evrec r;
	size_t off = 0;

	memset(&c, 0, sizeof(c));
	while (off < work->len && evrec_read(work->data, work->len, &off, &r) == 0) {
		if (r.kind == EVREC_MESSAGE)
			add_message(&c, &r);
		else
			add_event(&c, &r);
		if (c.n_e >= ev->o.batch_max || c.n_m >= ev->o.batch_max) {
			write_chunk(ev, &c);
			chunk_clear(&c);
		}
	}
	if (c.n_e || c.n_m)
		write_chunk(ev, &c);
	chunk_free(&c);
}

/* ---- the writer: retention -------------------------------------------------------------- */

/* A tenth of the retention; with none, batch keys alone: every PRUNE_MAX_MS. */
static uint64_t prune_every_ms(const struct events_opts *o)
{
	uint64_t r = o->retention ? o->retention : o->stats_retention;
	uint64_t ms = r ? r * 100 : PRUNE_MAX_MS;

	return ms < PRUNE_MIN_MS ? PRUNE_MIN_MS : ms > PRUNE_MAX_MS ? PRUNE_MAX_MS : ms;
}

/* Rows deleted by one step: the retention's tables, then batch keys. */
static size_t prune_rows(struct events *ev, int64_t now)
{
	int64_t ev_before = ev->o.retention ? now - (int64_t)ev->o.retention * 1000 : 0;
	int64_t ct_before = ev->o.stats_retention ? now / 1000 - (int64_t)ev->o.stats_retention : 0;
	size_t deleted = 0, keys = 0;
	char *err = NULL;

	if ((ev->o.retention || ev->o.stats_retention) &&
	    store_events_prune(ev->st, ev_before, ct_before, PRUNE_CHUNK, &deleted, &err) < 0) {
		log_warn("event=events_prune_error error=%s", log_q(err));
		free(err);
		err = NULL;
	}
	if (store_events_prune_keys(ev->st, now - KEY_KEEP_MS, PRUNE_CHUNK, &keys, &err) < 0) {
		log_warn("event=events_prune_error error=%s", log_q(err));
		free(err);
	}
	return deleted + keys;
}

/* One step of at most PRUNE_CHUNK rows per table; a pass goes on at the
 * next turn of the writer until a step finds nothing. */
static void prune_step(struct events *ev)
{
	int64_t now = now_ms();
	size_t deleted;

	if (!ev->prune_active && (uint64_t)now < ev->next_prune_ms)
		return;
	deleted = prune_rows(ev, now);
	ev->pruned += deleted;
	ev->prune_active = deleted > 0;
	if (ev->prune_active)
		return;
	if (ev->pruned)
		log_info("event=events_pruned rows=%llu", (unsigned long long)ev->pruned);
	ev->pruned = 0;
	ev->next_prune_ms = (uint64_t)now + prune_every_ms(&ev->o);
}

/* ---- the writer thread ------------------------------------------------------------------- */

/* With ev->mu held: waits until there is a batch to take, a flush, a stop,
 * or the interval has passed. */
static void wait_for_work(struct events *ev)
{
	struct timespec until = mono_after(ev->o.interval_ms);

	while (!ev->stop && !ev->flush_now && !ev->prune_active && ev->q_events < ev->o.batch_max) {
		if (pthread_cond_timedwait(&ev->wake, &ev->mu, &until) == ETIMEDOUT)
			break;
	}
}

static void swap(struct buf *a, struct buf *b)
{
	struct buf t = *a;

	*a = *b;
	*b = t;
}

static void *writer_main(void *arg)
{
	struct events *ev = arg;
	struct buf work;
	uint64_t taken;

	buf_init(&work);
	pthread_mutex_lock(&ev->mu);
	for (;;) {
		wait_for_work(ev);
		if (ev->stop && ev->q.len == 0)
			break;
		swap(&ev->q, &work);
		taken = ev->q_records;
		ev->q_records = ev->q_events = 0;
		ev->flush_now = 0;
		metrics_set(M_EVENTS_QUEUE_BYTES, 0);
		pthread_mutex_unlock(&ev->mu);
		write_all(ev, &work);
		buf_reset(&work);
		prune_step(ev);
		pthread_mutex_lock(&ev->mu);
		ev->seq_out += taken;
		pthread_cond_broadcast(&ev->done);
	}
	ev->seq_out = ev->seq_in;
	pthread_cond_broadcast(&ev->done);
	pthread_mutex_unlock(&ev->mu);
	buf_free(&work);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

struct events *events_new(struct store *st, const struct events_opts *o)
{
	struct events *ev = xcalloc(1, sizeof(*ev));
	pthread_condattr_t ca;

	ev->st = st;
	ev->o = *o;
	snprintf(ev->key_prefix, sizeof(ev->key_prefix), "%s.%llu", o->node_id ? o->node_id : "",
	         (unsigned long long)clock_now_ms());
	if (!ev->o.max_queue_bytes)
		ev->o.max_queue_bytes = EVENTS_QUEUE_MAX;
	if (!ev->o.interval_ms)
		ev->o.interval_ms = EVENTS_INTERVAL_MS;
	if (!ev->o.batch_max)
		ev->o.batch_max = EVENTS_BATCH_MAX;
	buf_init(&ev->q);
	pthread_mutex_init(&ev->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ev->wake, &ca);
	pthread_cond_init(&ev->done, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&ev->thread, NULL, writer_main, ev) != 0)
		fatal("event=start_error error=\"cannot start the event writer\"");
	return ev;
}

void events_flush(struct events *ev)
{
	uint64_t target;

	if (!ev)
		return;
	pthread_mutex_lock(&ev->mu);
	target = ev->seq_in;
	ev->flush_now = 1;
	pthread_cond_signal(&ev->wake);
	while (ev->seq_out < target)
		pthread_cond_wait(&ev->done, &ev->mu);
	pthread_mutex_unlock(&ev->mu);
}

void events_get_stats(struct events *ev, struct events_stats *out)
{
	pthread_mutex_lock(&ev->mu);
	*out = ev->stats;
	pthread_mutex_unlock(&ev->mu);
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->mu);
	ev->stop = 1;
	pthread_cond_signal(&ev->wake);
	pthread_mutex_unlock(&ev->mu);
	pthread_join(ev->thread, NULL);
	if (ev->stats.dropped || ev->stats.lost)
		log_warn("event=events_stopped written=%llu dropped=%llu lost=%llu",
		         (unsigned long long)ev->stats.written,
		         (unsigned long long)ev->stats.dropped, (unsigned long long)ev->stats.lost);
	if (ev->o.own_store)
		store_close(ev->st);
	buf_free(&ev->q);
	pthread_mutex_destroy(&ev->mu);
	pthread_cond_destroy(&ev->wake);
	pthread_cond_destroy(&ev->done);
	free(ev);
}
