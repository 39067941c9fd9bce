/*
 * api_queue: the queue routes for admin keys (SPEC 6), the ground of the
 * dashboard's queue page and of scripts:
 *
 *   GET    /v1/queue                  a page of queued messages, filtered
 *   POST   /v1/queue/{id}/retry       due now (not counted as an attempt)
 *   POST   /v1/queue/{id}/hold        held until released
 *   POST   /v1/queue/{id}/release     released
 *   DELETE /v1/queue/{id}             deleted (no bounce is sent)
 *
 * The listing reads the spool on a worker, a page at a time: at most
 * QUEUE_SCAN messages are read per request, whatever the queue's size,
 * and "next" says where the following request goes on (it may come with
 * fewer than limit messages when the filters are picky). The field names
 * are the API's (SPEC 6, as GET /v1/messages has them: from, created_at,
 * to), which the dashboard's queue page reads; `posthorn queue list
 * --json` keeps the CLI's own (docs/cli.md).
 *
 * Hold, release and delete go through the scheduler's steering
 * (sched_steer), as the CLI's do: the same log lines (by=api), the same
 * safety against an attempt in flight; retry is the scheduler's at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/http_api.h"
#include "sched/sched.h"
#include "spool/spool.h"
#include "util/util.h"

#define QUEUE_LIMIT_MAX     1000
#define QUEUE_LIMIT_DEFAULT 100
#define QUEUE_SCAN          5000 /* messages read at most per request */

/* ---- JSON ---- */

/* A string from the network: as is when UTF-8, else with the bytes that
 * are not as \xHH (jansson refuses invalid UTF-8); NULL is null. */
static json_t *safe_str(const char *s)
{
	json_t *j;
	struct buf b;

	if (!s)
		return json_null();
	if ((j = json_string(s)))
		return j;
	buf_init(&b);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x80)
			buf_append(&b, s, 1);
		else
			buf_printf(&b, "\\x%02X", c);
	}
	j = json_string(b.data ? b.data : "");
	buf_free(&b);
	return j;
}

static json_t *rcpt_json(const struct rcpt *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "to", safe_str(r->addr));
	json_object_set_new(o, "state", json_string(rcpt_state_shown(r)));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "next_attempt", http_json_time(r->next_attempt));
	json_object_set_new(o, "last_reply", safe_str(r->last_reply));
	return o;
}

/* The message with the recipients that pass f. */
static json_t *message_json(const struct envelope *e, const struct spool_filter *f)
{
	json_t *o = json_object(), *rcpts = json_array();
	size_t i;

	json_object_set_new(o, "id", json_string(e->id));
	json_object_set_new(o, "size", json_integer((json_int_t)e->size));
	json_object_set_new(o, "account", safe_str(e->account));
	json_object_set_new(o, "from", safe_str(e->mail_from));
	json_object_set_new(o, "created_at", http_json_time(e->created));
	for (i = 0; i < e->n_rcpts; i++)
		if (spool_filter_rcpt(f, &e->rcpts[i]))
			json_array_append_new(rcpts, rcpt_json(&e->rcpts[i]));
	json_object_set_new(o, "recipients", rcpts);
	return o;
}

/* ---- GET /v1/queue ---- */

struct list_job {
	struct http_req *r;
	struct spool_filter f;
	char domain[256], sender[256], after[ID_LEN + 1];
	size_t limit;
	json_t *queue;
	char next[ID_LEN + 1];
	char *err;
};

/* Reads the page; stops at limit messages that pass. */
static void list_work(void *arg)
{
	struct list_job *j = arg;
	struct spool *sp = http_req_deps(j->r)->spool;
	struct envelope *e;
	char **ids, *why = NULL;
	size_t n, i, got = 0;
	int more;

	j->queue = json_array();
	if (spool_list_page(sp, *j->after ? j->after : NULL, QUEUE_SCAN, &ids, &n, &more, &j->err) <
	    0)
		return;
	for (i = 0; i < n && got < j->limit; i++) {
		if (spool_load(sp, ids[i], &e, &why) < 0) {
			free(why), why = NULL; /* gone meanwhile, or recovery's business */
			continue;
		}
		if (spool_filter_count(&j->f, e) > 0) {
			json_array_append_new(j->queue, message_json(e, &j->f));
			got++;
		}
		envelope_free(e);
	}
	if (i < n || more) /* stopped early: the next page starts after the last read */
		snprintf(j->next, sizeof(j->next), "%s", ids[i - 1]);
	spool_free_page(ids, n);
}

static void list_done(void *arg)
{
	struct list_job *j = arg;

	if (j->err)
		http_reply_error(j->r, 500, "internal_error", "the spool cannot be read");
	else
		http_reply_json(j->r, 200,
		                json_pack("{s:O,s:o}", "queue", j->queue, "next",
		                          *j->next ? json_string(j->next) : json_null()));
	json_decref(j->queue);
	free(j->err);
	free(j);
}

/* A text parameter into out; -1 (and p) when it is too long or empty. */
static int query_text(struct http_req *r, const char *name, char *out, size_t cap,
                      struct http_problem *p)
{
	const char *v = http_req_query(r, name);

	if (!v)
		return 0;
	if (!*v || strlen(v) >= cap) {
		http_problem_param(p, name, "expected 1 to %zu bytes", cap - 1);
		return -1;
	}
	snprintf(out, cap, "%s", v);
	return 1;
}

static int list_params(struct http_req *r, struct list_job *j, struct http_problem *p)
{
	const char *state = http_req_query(r, "state");
	int64_t limit = QUEUE_LIMIT_DEFAULT;
	int rc;

	if (http_query_int(r, "limit", 1, QUEUE_LIMIT_MAX, &limit, p) < 0)
		return -1;
	j->limit = (size_t)limit;
	if ((rc = query_text(r, "domain", j->domain, sizeof(j->domain), p)) < 0)
		return -1;
	j->f.domain = rc ? j->domain : NULL;
	if ((rc = query_text(r, "sender", j->sender, sizeof(j->sender), p)) < 0)
		return -1;
	j->f.sender = rc ? j->sender : NULL;
	if (state && !(j->f.states = spool_filter_state(state))) {
		http_problem_param(p, "state", "expected pending, deferred or held");
		return -1;
	}
	if ((rc = query_text(r, "after", j->after, sizeof(j->after), p)) < 0)
		return -1;
	if (rc && !id_valid(j->after)) {
		http_problem_param(p, "after", "expected a queue ID");
		return -1;
	}
	return 0;
}

void api_h_queue_list(struct http_req *r)
{
	struct list_job *j = xcalloc(1, sizeof(*j));
	struct http_problem p;

	memset(&p, 0, sizeof(p));
	j->r = r;
	if (list_params(r, j, &p) < 0) {
		http_reply_problem(r, &p);
		free(j);
		return;
	}
	http_req_defer(r, list_work, list_done, j);
}

/* ---- one message: retry, hold, release, delete ---- */

/* The {id} of the path, or NULL after a 400. */
static const char *path_id(struct http_req *r)
{
	const char *id = http_req_param(r, "id");
	struct http_problem p;

	if (id && id_valid(id))
		return id;
	memset(&p, 0, sizeof(p));
	http_problem_param(&p, "id", "expected a queue ID");
	http_reply_problem(r, &p);
	return NULL;
}

static void reply_count(struct http_req *r, const char *id, size_t n)
{
	http_reply_json(r, 200, json_pack("{s:s,s:I}", "id", id, "recipients", (json_int_t)n));
}

static void on_steered(void *arg, const struct sched_steer_res *res)
{
	struct http_req *r = arg;
	const char *id = http_req_param(r, "id");

	if (res->error)
		http_reply_error(r, 503, "unavailable", "%s", res->error);
	else if (res->n_failed && strstr(res->failed[0], "no message"))
		http_reply_error(r, 404, "not_found", "no message %s in the queue", id);
	else if (res->n_failed)
		http_reply_error(r, 500, "internal_error", "%s", res->failed[0]);
	else
		reply_count(r, id, res->recipients);
}

static void steer(struct http_req *r, enum spool_op op)
{
	const char *id = path_id(r);
	char *ids[1];
	struct sched_steer_req req;

	if (!id)
		return;
	ids[0] = (char *)id;
	memset(&req, 0, sizeof(req));
	req.op = op;
	req.ids = ids;
	req.n_ids = 1;
	req.by = "api";
	req.done = on_steered;
	req.arg = r;
	sched_steer(http_req_deps(r)->sched, &req);
}

void api_h_queue_hold(struct http_req *r)
{
	steer(r, SPOOL_HOLD);
}

void api_h_queue_release(struct http_req *r)
{
	steer(r, SPOOL_RELEASE);
}

void api_h_queue_delete(struct http_req *r)
{
	steer(r, SPOOL_DELETE);
}

/* Retry: the index knows every queued message but those still being
 * recovered; the spool says whether one exists. */
struct retry_job {
	struct http_req *r;
	int exists;
};

static void retry_work(void *arg)
{
	struct retry_job *j = arg;
	struct envelope *e = NULL;
	char *err = NULL;

	j->exists =
	    spool_load(http_req_deps(j->r)->spool, http_req_param(j->r, "id"), &e, &err) == 0 ||
	    errno != ENOENT;
	envelope_free(e);
	free(err);
}

static void retry_done(void *arg)
{
	struct retry_job *j = arg;
	const char *id = http_req_param(j->r, "id");

	if (!j->exists)
		http_reply_error(j->r, 404, "not_found", "no message %s in the queue", id);
	else
		reply_count(j->r, id, (size_t)sched_retry(http_req_deps(j->r)->sched, id));
	free(j);
}

void api_h_queue_retry(struct http_req *r)
{
	struct retry_job *j;

	if (!path_id(r))
		return;
	j = xcalloc(1, sizeof(*j));
	j->r = r;
	http_req_defer(r, retry_work, retry_done, j);
}
