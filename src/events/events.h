/*
 * events: what happened to every message, recipient by recipient (SPEC 6).
 *
 * Emitters (SMTP and API acceptance, the delivery engine, suppressions,
 * tracking, complaints) call events_accepted() and events_emit() from the
 * event loop (or any thread). Both copy what they are given into a bounded
 * in-memory queue and return at once: no SQLite, no JSON, no allocation
 * once the queue's buffer has grown to its working size. A writer thread
 * takes the queue every 100 ms (sooner at 1,000 events), builds each
 * event's detail JSON, and writes batches of at most 1,000 events in one
 * transaction each (store_events_write: events, messages and the stats
 * counters together). It also prunes what is older than the retention.
 * docs/events.md has the durability argument; in short, an event is on
 * disk within ~100 ms of being emitted, a crash loses at most what was
 * emitted since the last batch, and SIGTERM loses nothing.
 *
 * The webhook dispatcher (events_hooks_*, below) sends what the writer
 * wrote to each account's webhooks, on a thread of its own.
 */
#ifndef POSTHORN_EVENTS_H
#define POSTHORN_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "events/events_text.h"
#include "store/store.h"

struct conf;
struct conf_net;
struct sockaddr;

/* ---- emitting ------------------------------------------------------------------ */

/*
 * One event. Every string is the caller's and only read during the call;
 * NULL (or 0) means "not known" and leaves the field out of detail. Long
 * values are cut to the store's bounds (at a UTF-8 boundary). What each
 * emitter passes is listed in docs/events.md ("For emitters").
 */
struct events_event {
	enum event_type type;
	const char *account;    /* required */
	const char *message_id; /* the queue ID; NULL for a recipient refused before it had one */
	const char *recipient;  /* the address as in RCPT TO / the API's "to" */
	int64_t time_ms;        /* 0: now */
	/* detail */
	const char *mx;     /* delivered/deferred/bounced: the host that answered,
	                       "mx.example.net[192.0.2.1]" */
	const char *reply;  /* the remote reply, or our reason (no MX, expired...) */
	const char *status; /* the enhanced status code, "5.1.1" */
	unsigned attempt;   /* 1 for the first delivery attempt */
	const char *reason; /* suppressed: "unsubscribed", "hard bounce: ...", "complaint (abuse)";
	                       complained: the feedback type */
	const char *url;    /* clicked: the link as redirected to */
	const char *user_agent; /* opened, clicked */
	int machine;            /* opened: a prefetching proxy, not a person */
};

/* An accepted message: its row, and one accepted event per recipient. */
struct events_message {
	const char *id; /* queue ID */
	const char *account;
	const char *from;    /* envelope sender; "" null sender; NULL: unknown */
	const char *subject; /* decoded Subject, or NULL */
	const char *const *tags;
	size_t n_tags;        /* more than EVENT_TAGS_MAX are cut */
	const char *metadata; /* a JSON object as text, or NULL */
	const char *const *rcpts;
	size_t n_rcpts;
	int64_t time_ms; /* 0: now */
};

struct events;

struct events_opts {
	uint64_t retention;       /* seconds events and messages are kept; 0: forever */
	uint64_t stats_retention; /* seconds counters are kept; 0: forever */
	size_t max_queue_bytes;   /* 0: EVENTS_QUEUE_MAX */
	unsigned interval_ms;     /* 0: EVENTS_INTERVAL_MS */
	size_t batch_max;         /* 0: EVENTS_BATCH_MAX */
	/* After each batch that added events, on the writer thread (wakes the
	 * webhook dispatcher). May be NULL. */
	void (*written)(void *arg);
	void *written_arg;
	int own_store; /* st is the writer's own: events_free() closes it */
	/* This node's ID (NULL: ""), the first part of each batch's key. */
	const char *node_id;
};

#define EVENTS_QUEUE_MAX   (64u << 20)
#define EVENTS_INTERVAL_MS 100
#define EVENTS_BATCH_MAX   1000

/* Starts the writer thread. st must outlive the events. */
struct events *events_new(struct store *st, const struct events_opts *o);
/* 0 queued; -1 not: invalid (no account, unknown type) or the queue is
 * full (counted in posthorn_events_dropped_total and logged). Never blocks
 * on the database. */
int events_emit(struct events *ev, const struct events_event *e);
/* The message and its accepted events, queued together or not at all. */
int events_accepted(struct events *ev, const struct events_message *m);
/* Waits until everything queued before the call is written (or given up
 * after a database failure). For tests and shutdown. */
void events_flush(struct events *ev);
/* Writes what is queued, stops the writer, frees. NULL is a no-op. */
void events_free(struct events *ev);

struct events_stats {
	uint64_t queued;  /* records accepted by emit */
	uint64_t written; /* events written (repeats of opens and clicks included) */
	uint64_t dropped; /* events refused because the queue was full */
	uint64_t lost;    /* events given up after the database failed at shutdown */
	uint64_t batches; /* transactions committed */
};
void events_get_stats(struct events *ev, struct events_stats *out);

/* The server's writer and webhook dispatcher, from [events] and [tls]
 * ca_file (events_start.c). Stop them after every emitter has stopped and
 * before the store closes: what is queued is written first. */
struct events_hooks;
struct events *events_start(struct store *st, const struct conf *c, const char *node_id,
                            struct events_hooks **hooks);
void events_stop(struct events *ev, struct events_hooks *hooks);

/* ---- the shape of an event (events_json.c); times: events_text.h ------------------ */

/* An event in the shape of GET /v1/events and webhook bodies (new reference). */
json_t *events_row_json(const struct store_event_row *e);
/* JSON text from the database (tags, metadata, detail), or `fallback` when
 * it is NULL or does not parse; takes the reference to fallback. */
json_t *events_stored_json(const char *text, json_t *fallback);

/* ---- webhooks (events_hook.c) ----------------------------------------------------- */

struct events_hooks;

struct events_hooks_opts {
	uint64_t timeout;   /* seconds for a whole POST (connect included) */
	uint64_t backoff;   /* seconds before the first retry; doubles, at most 1 h */
	uint64_t retry_for; /* seconds a failing batch is retried before it is dropped */
	const struct conf_net *blocked; /* destinations webhooks of account keys may not reach */
	size_t n_blocked;
	const char *ca_file; /* extra trust anchors, or NULL */
	size_t batch_max;    /* events per POST; 0: 100 */
	const char *node_id; /* claims webhooks as this node (NULL: "", one node) */
};

/* Starts the dispatcher thread. NULL (logged) when libcurl cannot start. */
struct events_hooks *events_hooks_new(struct store *st, const struct events_hooks_opts *o);
/* New events were written: look now rather than at the next second. Any
 * thread; usable as events_opts.written. */
void events_hooks_wake(void *hooks);
/* Stops (a POST in flight is abandoned: its batch is sent again after a
 * restart), frees. NULL is a no-op. */
void events_hooks_free(struct events_hooks *h);

/* PURE policy: the delay before the next attempt after `failures` failed
 * attempts in a row (1, 2, ...): backoff seconds, doubled per failure,
 * at most one hour. */
int64_t events_hook_delay_ms(uint64_t backoff, int64_t failures);
/* The signature SPEC 6 pins: hex HMAC-SHA256 keyed with the secret string,
 * over "<timestamp>.<body>". out: 65 bytes. */
void events_hook_sign(const char *secret, int64_t timestamp, const char *body, size_t len,
                      char out[65]);
/* 1 if url is an http or https URL a webhook may use (no control
 * characters or spaces, a host, at most WEBHOOK_URL_MAX bytes); else 0
 * and *why says what is wrong. */
int events_hook_url_ok(const char *url, const char **why);
/* 1 if url's host is an IP address literal inside one of the nets. */
int events_hook_url_blocked(const char *url, const struct conf_net *nets, size_t n);
/* 1 if sa is inside one of the nets (IPv4-mapped IPv6 checked as IPv4). */
int events_hook_addr_blocked(const struct sockaddr *sa, const struct conf_net *nets, size_t n);

#endif
