/*
 * api: the JSON API's routes (listed in src/http/http_routes.c, written
 * as http_api.h says) and what other modules need from them. Each block
 * below belongs to the files it names.
 */
#ifndef POSTHORN_API_H
#define POSTHORN_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http_api.h"
#include "tmpl/tmpl.h"
#include "util/util.h"

struct store;

/* ---- what the routes share (api_common.c) ----------------------------------
 *
 * A handler that needs the database hands its whole job to a worker
 * (http_req_defer): the body is parsed there, the store called there, and
 * the answer, even an error, is made into JSON text there, so that large
 * bodies and answers never cost the loop more than a copy. The done
 * callback only sends it.
 */
struct api_answer {
	int status;
	char *body; /* JSON text and a newline, malloc'd; NULL: nothing made yet */
	size_t len;
};

/* Takes the reference to body (NULL: a 500). */
void api_answer_json(struct api_answer *a, int status, json_t *body);
/* {"error": {"code", "message"}}. */
void api_answer_error(struct api_answer *a, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The 400 of p, with "field" or "parameter", and more members (NULL, or
 * an object whose members are added to "error"; its reference is taken). */
void api_answer_problem(struct api_answer *a, const struct http_problem *p, json_t *extra);
/* On the loop: sends a's answer (a 500 when none was made) and frees it. */
void api_answer_send(struct http_req *r, struct api_answer *a);

/* Pagination cursors: a key (a name, an address) as opaque base64url
 * text, so that a client may put it in a query string as it is.
 * decode: 0 with the key in out (cap bytes with the NUL), -1 if s is not
 * a cursor that fits. */
char *api_cursor_encode(const char *key);
int api_cursor_decode(const char *s, char *out, size_t cap);

/*
 * The common query of a listing, read on the loop: limit (1..max, default
 * def) and after (a cursor, decoded into after, cap bytes). 0, or -1 with
 * p set (invalid_parameter).
 */
int api_list_query(struct http_req *r, size_t def, size_t max, size_t *limit, char *after,
                   size_t cap, struct http_problem *p);

/* ---- templates (api_templates.c, api_tmpl_cache.c) ---------------------------
 *
 * The routes: GET /v1/templates, POST /v1/templates,
 * GET|PUT|DELETE /v1/templates/{name}, POST /v1/templates/{name}/preview.
 */
void api_h_templates_list(struct http_req *r);
void api_h_template_create(struct http_req *r);
void api_h_template_get(struct http_req *r);
void api_h_template_put(struct http_req *r);
void api_h_template_delete(struct http_req *r);
void api_h_template_preview(struct http_req *r);

/* The parts of a template, and how each is rendered: the subject and the
 * text as TMPL_TEXT, the html as TMPL_HTML. */
enum api_part { API_PART_SUBJECT, API_PART_TEXT, API_PART_HTML, API_PARTS };

/* "subject", "text", "html". */
const char *api_part_name(enum api_part part);

/* The bounds of one rendering, per part: the subject may come out at most
 * API_SUBJECT_OUTPUT_MAX bytes, text and html each TMPL_DEFAULT_MAX_OUTPUT. */
#define API_SUBJECT_OUTPUT_MAX 4096
void api_part_limits(enum api_part part, struct tmpl_limits *l);

/*
 * A compiled template, immutable and shared (reference-counted): any
 * number of threads may render it at once. Valid until
 * api_template_unref(); a later change of the template in the database
 * does not change it (the cache hands out a new one instead).
 */
struct api_template;

/*
 * The cache of compiled templates, one per server, shared by every
 * worker (it has its own lock). The message-sending route calls, on a
 * worker (it reads the database):
 *
 *     struct api_template *t;
 *     if (api_tmpl_get(cache, account, name, &t, &err) == 0) {
 *             for each recipient: api_template_render(t, variables, &out) ...
 *             api_template_unref(t);
 *     }
 *
 * Freshness: an entry is used without asking the database for
 * API_TMPL_FRESH_MS after its revision was last confirmed; then one index
 * probe (store_tmpl_revision) confirms it again, and only a new revision
 * is fetched and compiled again. So a change made anywhere (another node,
 * another process) is used within API_TMPL_FRESH_MS; a change made
 * through this server's API (api_tmpl_cache_forget) at once.
 * Bounded: at most API_TMPL_CACHE_MAX entries and API_TMPL_CACHE_BYTES of
 * template text; the least recently used entry goes first.
 */
#define API_TMPL_FRESH_MS    500
#define API_TMPL_CACHE_MAX   256
#define API_TMPL_CACHE_BYTES (64 * 1024 * 1024)

struct api_tmpl_cache;

struct api_tmpl_cache *api_tmpl_cache_new(struct store *st);
/* No api_template it handed out may be in use. NULL is a no-op. */
void api_tmpl_cache_free(struct api_tmpl_cache *c);

/* At start, before serving and before delivery: the Idempotency-Key
 * claims a crash left without an answer, resolved against the spool
 * (api_send_idem.c). 0, or -1 with *err (a database error). */
struct spool;
int api_send_idem_recover(struct store *st, struct spool *sp, char **err);

/* Besides -1 (the database, *err set): */
#define API_TMPL_NOT_FOUND (-2) /* no template of that name in the account; *err set */
#define API_TMPL_BROKEN                                                                            \
	(-3) /* the stored text does not compile (any more); *err names the part                   \
	      */

/* Blocking: on a worker. 0 with *out a reference (api_template_unref it). */
int api_tmpl_get(struct api_tmpl_cache *c, const char *account, const char *name,
                 struct api_template **out, char **err);
void api_template_unref(struct api_template *t);
/* Drops the entry, so that the next get reads the database; c may be NULL. */
void api_tmpl_cache_forget(struct api_tmpl_cache *c, const char *account, const char *name);

/* Which parts t has (the subject always). */
int api_template_has(const struct api_template *t, enum api_part part);
/* The revision t was compiled from (store_tmpl.revision). */
int64_t api_template_revision(const struct api_template *t);

/*
 * Compiles one part's text with that part's limits: 0 and *out, or -1
 * with *err (status, line and column for a syntax or depth error).
 */
int api_part_compile(enum api_part part, const char *text, struct tmpl **out,
                     struct tmpl_error *err);

#define API_MAX_WARNINGS (API_PARTS * TMPL_MAX_WARNINGS)

struct api_warning {
	enum api_part part;
	enum tmpl_warning_kind kind;
	char name[TMPL_NAME_MAX + 1];
};

/*
 * One recipient's rendering: each part in out[part] (has[part] 0 when the
 * template has no such part). What the message will carry, made safe
 * for it: line breaks and other control characters of the subject (from
 * the variables) are spaces, a header holds one line; NUL bytes are
 * dropped from text and html (SMTP cannot carry them).
 */
struct api_rendered {
	struct buf out[API_PARTS];
	int has[API_PARTS];
	struct api_warning warnings[API_MAX_WARNINGS]; /* distinct per part, as met */
	size_t n_warnings;
	int warnings_truncated;
	enum api_part failed; /* on -1: the part whose bound was passed */
	struct tmpl_error err;
};

/* The warnings of a rendering as the preview answers them:
 * [{"part", "kind", "name"}]. */
json_t *api_warnings_json(const struct api_rendered *out);

/* Renders every part of t with vars (a JSON object, or NULL for none).
 * Pure and thread-safe. 0, or -1 with failed and err set (output or step
 * bound). Free out with api_rendered_free() in both cases. */
int api_template_render(const struct api_template *t, const json_t *vars, struct api_rendered *out);
void api_rendered_free(struct api_rendered *r);

/* ---- suppressions (api_suppressions.c) ---------------------------------------
 *
 * GET /v1/suppressions, POST /v1/suppressions,
 * GET|DELETE /v1/suppressions/{address}. The list itself is the store's
 * (store_supp_*), shared with `posthorn suppress` and the SMTP checks.
 */
void api_h_suppressions_list(struct http_req *r);
void api_h_suppression_add(struct http_req *r);
void api_h_suppression_get(struct http_req *r);
void api_h_suppression_delete(struct http_req *r);

/* ---- events, messages, stats and webhooks ---------------------------------------------
 * api_events.c, api_messages.c, api_stats.c, api_webhooks.c; the query
 * parameters they share in api_query.c. docs/api.md and docs/events.md. */

void api_h_events(struct http_req *r);         /* GET /v1/events */
void api_h_messages(struct http_req *r);       /* GET /v1/messages */
void api_h_send(struct http_req *r);           /* POST /v1/messages (api_send.c) */
void api_h_track_open(struct http_req *r);     /* GET /t/o/{token} (api_track.c) */
void api_h_track_click(struct http_req *r);    /* GET /t/c/{token} */
void api_h_message(struct http_req *r);        /* GET /v1/messages/{id} */
void api_h_stats(struct http_req *r);          /* GET /v1/stats */
void api_h_webhooks(struct http_req *r);       /* GET /v1/webhooks */
void api_h_webhook_create(struct http_req *r); /* POST /v1/webhooks */
void api_h_webhook(struct http_req *r);        /* GET /v1/webhooks/{id} */
void api_h_webhook_update(struct http_req *r); /* PATCH /v1/webhooks/{id} */
void api_h_webhook_delete(struct http_req *r); /* DELETE /v1/webhooks/{id} */

/* Query parameters (api_query.c). Each returns 0 (absent ones leave *out
 * as it was) or -1 with p naming the parameter. */
#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX     1000
/* The account whose data is read: an account key's own (an `account`
 * naming another gets 403: -1 with p->status 403); an admin key's
 * `account`, or NULL for every account. */
int api_account(struct http_req *r, const char **account, struct http_problem *p);
/* A time (unix seconds, a date, RFC 3339) as unix milliseconds. */
int api_time(struct http_req *r, const char *name, int64_t *ms, struct http_problem *p);
/* Two times that bound a range: `to` must be later than `from`. */
int api_range(struct http_req *r, const char *from, const char *to, int64_t *from_ms,
              int64_t *to_ms, struct http_problem *p);
/* `limit`: 1 to API_LIMIT_MAX, API_LIMIT_DEFAULT when absent. */
int api_limit(struct http_req *r, size_t *limit, struct http_problem *p);
/* `order`: asc (the default) or desc; *desc 0 or 1. */
int api_order(struct http_req *r, int *desc, struct http_problem *p);
/* Event type names, comma-separated, as bits of enum event_type. */
int api_types(const char *name, const char *list, unsigned *types, struct http_problem *p);
/* The {id} of a path as a positive integer; 0 when it is not one. */
int64_t api_path_id(struct http_req *r);
/* Unix milliseconds as RFC 3339 (JSON string), JSON null for 0. */
json_t *api_time_json(int64_t ms);
/* The 500 of a database error, logged with the request's http= ID (any
 * thread). */
void api_answer_store_error(struct http_req *r, struct api_answer *a, const char *err);
/* ---- DKIM keys (api_dkim.c) ---------------------------------------------------
 *
 * GET /v1/dkim: each domain's keys with the record to publish (the
 * dashboard's DKIM page).
 */
void api_h_dkim(struct http_req *r);

/* ---- one-click unsubscribe (api_unsub.c) ----------------------------------------
 *
 * GET /u/{token}: a page with a button, never an unsubscription;
 * POST /u/{token}: the token's recipient is suppressed ("unsubscribed").
 * No API key (the token is signed: src/unsub/).
 */
void api_h_unsub_page(struct http_req *r);
void api_h_unsub_post(struct http_req *r);

/* ---- the queue, for admin keys (api_queue.c) --------------------------------
 *
 * GET /v1/queue (a page of queued messages, filtered), POST
 * /v1/queue/{id}/retry|hold|release, DELETE /v1/queue/{id} (SPEC 6; the
 * dashboard's Queue page). Their rows are HTTP_AUTH_ADMIN.
 */
void api_h_queue_list(struct http_req *r);
void api_h_queue_retry(struct http_req *r);
void api_h_queue_hold(struct http_req *r);
void api_h_queue_release(struct http_req *r);
void api_h_queue_delete(struct http_req *r);

/* ---- cluster nodes, for admin keys (api_cluster.c) ----------------------------
 *
 * GET /v1/cluster/nodes: every node's heartbeat row (docs/cluster.md
 * "Cluster status"), as `posthorn cluster status --json` prints it.
 */
void api_h_cluster_nodes(struct http_req *r);

#endif
