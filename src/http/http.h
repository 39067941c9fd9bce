/*
 * http: the HTTP server of the API, /healthz and /metrics, on the daemon's
 * event loop. This header is what main.c needs; route handlers use
 * http_api.h.
 *
 * Lifecycle: http_open() binds (before privileges are dropped) and accepts
 * nothing yet; http_start() gives it the store, spool, scheduler and work
 * pool and starts accepting; http_drain() stops accepting, closes idle
 * connections, lets requests in progress finish (their replies say
 * Connection: close) and calls done() once no connection is left;
 * http_free() closes whatever is left. Call http_free() after the work
 * pool is freed (its jobs' callbacks may still reply) and before the store
 * is closed.
 */
#ifndef POSTHORN_HTTP_H
#define POSTHORN_HTTP_H

struct api_tmpl_cache;
struct conf;
struct event_base;
struct events;
struct events_message;
struct http;
struct sched;
struct spool;
struct store;
struct unsub;
struct work_pool;

struct deliv;
struct envelope;
struct dkim_signer;

struct http_deps {
	struct store *store;
	struct spool *spool;
	struct sched *sched;
	struct work_pool *work;
	struct api_tmpl_cache *templates; /* compiled templates (src/api/api.h) */
	struct unsub *unsub;              /* one-click unsubscribe links (src/unsub/) */
	struct dkim_signer *dkim;         /* signs POST /v1/messages mail (NULL: unsigned) */
	struct deliv *deliv;              /* quotas and pauses of POST /v1/messages (NULL: none) */
	struct events *events;            /* suppressed, opened, clicked events (NULL: none) */
	/* A message POST /v1/messages made durable, on the loop: its envelope
	 * indexed for delivery from memory (no read back) and its accepted
	 * events emitted, as smtpd's queued(). */
	void (*queued)(void *arg, const struct envelope *env, const struct events_message *m);
	void *queued_arg;
};

/* 0 and *out NULL when the config has no [http] section (SPEC 2): nothing
 * listens. -1 with a malloc'd *err when the address cannot be bound. */
int http_open(struct event_base *base, const struct conf *c, struct http **out, char **err);
/* h may be NULL (no listener). deps is copied. */
void http_start(struct http *h, const struct http_deps *deps);
/* done(arg) runs from the event loop once no connection is left; when h
 * is NULL, before http_drain() returns. */
void http_drain(struct http *h, void (*done)(void *arg), void *arg);
void http_free(struct http *h);

#endif
