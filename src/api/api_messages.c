/*
 * api_messages: GET /v1/messages/{id} (SPEC 6: the message and each
 * recipient's state and attempts) and GET /v1/messages (the search).
 *
 * A recipient's state comes from two places, each the truth for its part:
 * while the message is queued, the spool's per-recipient state (what the
 * delivery engine will do next); once it has left the queue, the last
 * state-changing event (delivered, bounced, suppressed, deferred; accepted
 * reads as queued; suppressed only before any delivery result, since a
 * hard bounce or complaint suppresses the address after it). The attempts are the delivered,
 * deferred and bounced events. A message the event writer has not written yet (it writes every 100
 * ms) is still found in the spool. Another account's message is 404, exactly like one that does not
 * exist.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "events/events.h"
#include "spool/spool.h"
#include "store/store.h"
#include "util/util.h"

#define MESSAGE_EVENTS_PAGE 10000

struct rcpt_view {
	char *addr; /* domain part lower-cased, as events store it */
	const char *state;
	json_t *attempts;
};

struct message_job {
	struct http_req *r;
	const char *account; /* NULL: any (admin) */
	char id[ID_LEN + 1];
	struct rcpt_view *rcpts;
	size_t n_rcpts;
	int64_t last_event;
	size_t page_rows;
	char *err;
	struct api_answer answer;
};

/* ---- recipients ------------------------------------------------------------------ */

static struct rcpt_view *rcpt_find(struct message_job *j, const char *addr)
{
	char *norm = store_addr_normal(addr);
	struct rcpt_view *v;

	for (size_t i = 0; i < j->n_rcpts; i++) {
		if (strcmp(j->rcpts[i].addr, norm) == 0) {
			free(norm);
			return &j->rcpts[i];
		}
	}
	j->rcpts = xrealloc(j->rcpts, (j->n_rcpts + 1) * sizeof(*j->rcpts));
	v = &j->rcpts[j->n_rcpts++];
	v->addr = norm;
	v->state = NULL;
	v->attempts = json_array();
	return v;
}

static json_t *detail_field(const json_t *detail, const char *name)
{
	json_t *v = json_object_get(detail, name);

	return v ? json_incref(v) : json_null();
}

static void add_attempt(struct rcpt_view *v, const struct store_event_row *e)
{
	json_t *d = json_loads(e->detail, 0, NULL);

	json_array_append_new(v->attempts,
	                      json_pack("{s:o,s:s,s:o,s:o,s:o}", "time", api_time_json(e->time_ms),
	                                "result", event_type_name(e->type), "mx",
	                                detail_field(d, "mx"), "reply", detail_field(d, "reply"),
	                                "status", detail_field(d, "status")));
	json_decref(d);
}

static void on_event(void *arg, const struct store_event_row *e)
{
	struct message_job *j = arg;
	struct rcpt_view *v;

	j->last_event = e->id;
	j->page_rows++;
	if (!e->recipient)
		return;
	v = rcpt_find(j, e->recipient);
	switch (e->type) {
	case EVENT_ACCEPTED:
		if (!v->state)
			v->state = "queued";
		break;
	case EVENT_DELIVERED:
	case EVENT_DEFERRED:
	case EVENT_BOUNCED:
		add_attempt(v, e);
		v->state = event_type_name(e->type);
		break;
	case EVENT_SUPPRESSED: /* a suppression its own bounce or complaint made
	                          does not undo what delivery did */
		if (!v->state || strcmp(v->state, "queued") == 0)
			v->state = "suppressed";
		break;
	default: /* opened, clicked, complained: no change of state */
		break;
	}
}

static int read_events(struct message_job *j)
{
	struct store_event_filter f = {.message_id = j->id, .limit = MESSAGE_EVENTS_PAGE};

	do {
		j->page_rows = 0;
		f.after = j->last_event;
		if (store_events_query(http_req_deps(j->r)->store, &f, on_event, j, &j->err) < 0)
			return -1;
	} while (j->page_rows == MESSAGE_EVENTS_PAGE);
	return 0;
}

static const char *spool_state(enum rcpt_state s)
{
	switch (s) {
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_BOUNCED:
		return "bounced";
	case RCPT_DEFERRED:
		return "deferred";
	default:
		return "queued";
	}
}

/* The queued message (NULL when it has left the queue or is not ours). */
static struct envelope *load_queued(struct message_job *j)
{
	struct envelope *env = NULL;
	char *err = NULL;

	if (spool_load(http_req_deps(j->r)->spool, j->id, &env, &err) < 0) {
		free(err);
		return NULL;
	}
	if (j->account && strcmp(env->account, j->account) != 0) {
		envelope_free(env);
		return NULL;
	}
	for (size_t i = 0; i < env->n_rcpts; i++)
		rcpt_find(j, env->rcpts[i].addr)->state = spool_state(env->rcpts[i].state);
	return env;
}

/* ---- GET /v1/messages/{id} -------------------------------------------------------- */

static json_t *rcpts_json(struct message_job *j)
{
	json_t *a = json_array();

	for (size_t i = 0; i < j->n_rcpts; i++) {
		struct rcpt_view *v = &j->rcpts[i];
		json_array_append_new(a, json_pack("{s:s,s:s,s:O}", "to", v->addr, "state",
		                                   v->state ? v->state : "queued", "attempts",
		                                   v->attempts));
	}
	return a;
}

static json_t *message_json(const struct store_message_row *m)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:o}", "id", m->id, "account", m->account,
	                 "from", m->from, "subject", m->subject, "tags",
	                 events_stored_json(m->tags, json_array()), "metadata",
	                 events_stored_json(m->metadata, json_object()), "created_at",
	                 api_time_json(m->created_ms));
}

/* The message as the store has it, or as the spool does when the writer
 * has not written it yet: 1, 0 (neither), -1 (the database). */
static int find_message(struct message_job *j, struct store_message_row *m)
{
	struct envelope *env;
	int rc = store_message_get(http_req_deps(j->r)->store, j->account, j->id, m, &j->err);

	if (rc < 0 || read_events(j) < 0)
		return -1;
	env = load_queued(j);
	if (rc == 0 && env) {
		m->id = xstrdup(env->id);
		m->account = xstrdup(env->account);
		m->from = xstrdup(env->mail_from);
		m->subject = xstrdup("");
		m->created_ms = env->created * 1000;
		rc = 1;
	}
	envelope_free(env);
	return rc;
}

static void message_work(void *arg)
{
	struct message_job *j = arg;
	struct store_message_row m = {0};
	int rc = find_message(j, &m);
	json_t *out;

	if (rc < 0) {
		api_answer_store_error(j->r, &j->answer, j->err);
	} else if (rc == 0) {
		api_answer_error(&j->answer, 404, "not_found", "no such message %s", j->id);
	} else {
		out = message_json(&m);
		json_object_set_new(out, "recipients", rcpts_json(j));
		api_answer_json(&j->answer, 200, out);
	}
	store_message_row_free(&m);
}

static void message_done(void *arg)
{
	struct message_job *j = arg;

	api_answer_send(j->r, &j->answer);
	for (size_t i = 0; i < j->n_rcpts; i++) {
		free(j->rcpts[i].addr);
		json_decref(j->rcpts[i].attempts);
	}
	free(j->rcpts);
	free(j->err);
	free(j);
}

void api_h_message(struct http_req *r)
{
	const struct http_auth *a = http_req_auth(r);
	const char *id = http_req_param(r, "id");
	struct message_job *j;

	if (!id_valid(id)) {
		http_reply_error(r, 404, "not_found", "no such message %.40s", id);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->r = r;
	j->account = a->admin ? NULL : a->account;
	snprintf(j->id, sizeof(j->id), "%s", id);
	http_req_defer(r, message_work, message_done, j);
}

/* ---- GET /v1/messages ---------------------------------------------------------------- */

struct search_job {
	struct http_req *r;
	struct store_message_filter f;
	json_t *messages;
	char last[ID_LEN + 1];
	struct api_answer answer;
};

static void add_message(void *arg, const struct store_message_row *m)
{
	struct search_job *j = arg;

	json_array_append_new(j->messages, message_json(m));
	snprintf(j->last, sizeof(j->last), "%s", m->id);
}

static void search_work(void *arg)
{
	struct search_job *j = arg;
	const char *next;
	char *err = NULL;

	if (store_messages_query(http_req_deps(j->r)->store, &j->f, add_message, j, &err) < 0) {
		api_answer_store_error(j->r, &j->answer, err);
		free(err);
		return;
	}
	next = j->last[0] ? j->last : j->f.after;
	api_answer_json(&j->answer, 200,
	                json_pack("{s:O,s:o}", "messages", j->messages, "next",
	                          next ? json_string(next) : json_null()));
}

static void search_done(void *arg)
{
	struct search_job *j = arg;

	api_answer_send(j->r, &j->answer);
	json_decref(j->messages);
	free(j);
}

static int search_filters(struct http_req *r, struct store_message_filter *f,
                          struct http_problem *p)
{
	const char *v;

	if (api_account(r, &f->account, p) < 0 ||
	    api_range(r, "since", "until", &f->since_ms, &f->until_ms, p) < 0 ||
	    api_limit(r, &f->limit, p) < 0 || api_order(r, &f->desc, p) < 0)
		return -1;
	if ((v = http_req_query(r, "after")) != NULL && !id_valid(v)) {
		http_problem_param(p, "after", "expected the \"next\" of an earlier answer");
		return -1;
	}
	f->after = v;
	if ((v = http_req_query(r, "recipient")) != NULL && (!*v || strlen(v) > EVENT_ADDR_MAX)) {
		http_problem_param(p, "recipient", "expected an address");
		return -1;
	}
	f->recipient = v;
	if ((v = http_req_query(r, "tag")) != NULL && (!*v || strlen(v) > EVENT_TAG_MAX)) {
		http_problem_param(p, "tag", "expected a tag of 1 to %d bytes", EVENT_TAG_MAX);
		return -1;
	}
	f->tag = v;
	return 0;
}

void api_h_messages(struct http_req *r)
{
	struct search_job *j = xcalloc(1, sizeof(*j));
	struct http_problem p;

	j->r = r;
	if (search_filters(r, &j->f, &p) < 0) {
		http_reply_problem(r, &p);
		free(j);
		return;
	}
	j->messages = json_array();
	http_req_defer(r, search_work, search_done, j);
}
