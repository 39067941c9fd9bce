/*
 * api_stats: GET /v1/stats (SPEC 6), counts per hour, UTC day, recipient
 * domain or tag, read from the hourly counters the event writer keeps
 * (never from a scan of the events), so it costs the same for a day of
 * mail as for a year.
 *
 * Each row also carries its rates, all derived from the row's counts:
 * delivery = delivered / accepted, bounce = bounced / accepted, and
 * complaint, open and click over delivered (null when the divisor is 0).
 * Counts are of events in the row's hour or day, so a message accepted
 * late on one day and delivered the next counts on both days.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "events/events.h"
#include "store/store.h"
#include "util/util.h"

static const char *const GROUPS[] = {
    [STATS_BY_HOUR] = "hour",
    [STATS_BY_DAY] = "day",
    [STATS_BY_DOMAIN] = "domain",
    [STATS_BY_TAG] = "tag",
};

struct stats_job {
	struct http_req *r;
	const char *account;
	int64_t from, to; /* unix seconds, 0: no bound */
	enum store_stats_group group;
	json_t *rows;
	struct api_answer answer;
};

static json_t *rate(uint64_t n, uint64_t of)
{
	if (of == 0)
		return json_null();
	return json_real((double)(int64_t)((double)n / (double)of * 10000.0 + 0.5) / 10000.0);
}

static json_t *rates(const uint64_t *n)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o}", "delivery",
	                 rate(n[EVENT_DELIVERED], n[EVENT_ACCEPTED]), "bounce",
	                 rate(n[EVENT_BOUNCED], n[EVENT_ACCEPTED]), "complaint",
	                 rate(n[EVENT_COMPLAINED], n[EVENT_DELIVERED]), "open",
	                 rate(n[EVENT_OPENED], n[EVENT_DELIVERED]), "click",
	                 rate(n[EVENT_CLICKED], n[EVENT_DELIVERED]));
}

static json_t *key_json(enum store_stats_group g, const struct store_stats_row *row)
{
	time_t t = (time_t)row->start;
	struct tm tm;
	char s[32];

	if (g == STATS_BY_DOMAIN || g == STATS_BY_TAG)
		return json_string(row->key ? row->key : "");
	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), g == STATS_BY_DAY ? "%Y-%m-%d" : "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(s);
}

static void add_row(void *arg, const struct store_stats_row *row)
{
	struct stats_job *j = arg;
	json_t *o = json_object();

	json_object_set_new(o, GROUPS[j->group], key_json(j->group, row));
	for (int t = 0; t < EVENT_TYPES; t++)
		json_object_set_new(o, event_type_name(t), json_integer((json_int_t)row->n[t]));
	json_object_set_new(o, "rates", rates(row->n));
	json_array_append_new(j->rows, o);
}

static void stats_work(void *arg)
{
	struct stats_job *j = arg;
	char *err = NULL;

	if (store_event_stats(http_req_deps(j->r)->store, j->account, j->from, j->to, j->group,
	                      add_row, j, &err) < 0) {
		api_answer_store_error(j->r, &j->answer, err);
		free(err);
		return;
	}
	api_answer_json(&j->answer, 200, json_pack("{s:O}", "stats", j->rows));
}

static void stats_done(void *arg)
{
	struct stats_job *j = arg;

	api_answer_send(j->r, &j->answer);
	json_decref(j->rows);
	free(j);
}

static int group_param(struct http_req *r, enum store_stats_group *g, struct http_problem *p)
{
	const char *v = http_req_query(r, "group");

	*g = STATS_BY_DAY;
	if (!v)
		return 0;
	for (size_t i = 0; i < ARRAY_LEN(GROUPS); i++) {
		if (strcmp(v, GROUPS[i]) == 0) {
			*g = (enum store_stats_group)i;
			return 0;
		}
	}
	http_problem_param(p, "group", "expected hour, day, domain or tag");
	return -1;
}

void api_h_stats(struct http_req *r)
{
	struct stats_job *j = xcalloc(1, sizeof(*j));
	struct http_problem p;
	int64_t from = 0, to = 0;

	j->r = r;
	if (api_account(r, &j->account, &p) < 0 || api_range(r, "from", "to", &from, &to, &p) < 0 ||
	    group_param(r, &j->group, &p) < 0) {
		http_reply_problem(r, &p);
		free(j);
		return;
	}
	/* Counters are hourly: a bound inside an hour takes the whole hour. */
	j->from = from / 1000;
	j->to = to ? (to + 999) / 1000 : 0;
	j->rows = json_array();
	http_req_defer(r, stats_work, stats_done, j);
}
