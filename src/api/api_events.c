/*
 * api_events: GET /v1/events (SPEC 6), the event log with filters and a
 * cursor.
 *
 * The order is the events' ids, which grow in the order events were
 * written (oldest first; order=desc for newest first). `next` is the id of
 * the page's last event: passed back as `after`, it continues exactly
 * there whatever was written meanwhile, so pages never skip or repeat an
 * event. A page shorter than `limit` is the end for now; polling with the
 * same `after` later gets what came since.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "events/events.h"
#include "store/store.h"
#include "util/util.h"

struct events_job {
	struct http_req *r;
	struct store_event_filter f;
	json_t *events;
	int64_t last;
	struct api_answer answer;
};

/* `after`: a cursor from `next` (an event id). */
static int cursor(struct http_req *r, int64_t *after, struct http_problem *p)
{
	const char *v = http_req_query(r, "after");
	uint64_t n;

	if (!v)
		return 0;
	if (parse_u64(v, &n) < 0 || n > INT64_MAX) {
		http_problem_param(p, "after", "expected the \"next\" of an earlier answer");
		return -1;
	}
	*after = (int64_t)n;
	return 0;
}

/* Every filter the query string may set; -1 with p naming the first bad one. */
static int filters(struct http_req *r, struct store_event_filter *f, struct http_problem *p)
{
	const char *v;

	if (api_account(r, &f->account, p) < 0 ||
	    api_types("type", http_req_query(r, "type"), &f->types, p) < 0 ||
	    api_range(r, "since", "until", &f->since_ms, &f->until_ms, p) < 0 ||
	    api_limit(r, &f->limit, p) < 0 || api_order(r, &f->desc, p) < 0 ||
	    cursor(r, &f->after, p) < 0)
		return -1;
	if ((v = http_req_query(r, "recipient")) != NULL) {
		if (!*v || strlen(v) > EVENT_ADDR_MAX) {
			http_problem_param(p, "recipient", "expected an address");
			return -1;
		}
		f->recipient = v;
	}
	if ((v = http_req_query(r, "message")) != NULL) {
		if (!id_valid(v)) {
			http_problem_param(p, "message", "expected a message id (a queue ID)");
			return -1;
		}
		f->message_id = v;
	}
	if ((v = http_req_query(r, "tag")) != NULL) {
		if (!*v || strlen(v) > EVENT_TAG_MAX) {
			http_problem_param(p, "tag", "expected a tag of 1 to %d bytes",
			                   EVENT_TAG_MAX);
			return -1;
		}
		f->tag = v;
	}
	return 0;
}

static void add_event(void *arg, const struct store_event_row *e)
{
	struct events_job *j = arg;

	json_array_append_new(j->events, events_row_json(e));
	j->last = e->id;
}

/* The whole answer is made here, on the worker: a page of 1,000 events
 * costs the loop a copy, not its JSON. */
static void events_work(void *arg)
{
	struct events_job *j = arg;
	char *err = NULL, s[32];
	int64_t next;

	if (store_events_query(http_req_deps(j->r)->store, &j->f, add_event, j, &err) < 0) {
		api_answer_store_error(j->r, &j->answer, err);
		free(err);
		return;
	}
	next = j->last ? j->last : j->f.after;
	snprintf(s, sizeof(s), "%lld", (long long)next);
	api_answer_json(&j->answer, 200,
	                json_pack("{s:O,s:o}", "events", j->events, "next",
	                          next ? json_string(s) : json_null()));
}

static void events_done(void *arg)
{
	struct events_job *j = arg;

	api_answer_send(j->r, &j->answer);
	json_decref(j->events);
	free(j);
}

void api_h_events(struct http_req *r)
{
	struct events_job *j = xcalloc(1, sizeof(*j));
	struct http_problem p;

	j->r = r;
	if (filters(r, &j->f, &p) < 0) {
		http_reply_problem(r, &p);
		free(j);
		return;
	}
	j->events = json_array();
	http_req_defer(r, events_work, events_done, j);
}
