/*
 * api_query: the query parameters the read routes share (account, times,
 * limit, order, event types), each answered with a 400 naming the
 * parameter when it is wrong, so that every route says the same thing
 * about the same mistake.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "events/events.h"
#include "log/log.h"
#include "store/store.h"
#include "util/util.h"

int api_account(struct http_req *r, const char **account, struct http_problem *p)
{
	const struct http_auth *a = http_req_auth(r);
	const char *want = http_req_query(r, "account");

	if (want && !store_account_name_valid(want)) {
		http_problem_param(p, "account", "expected an account name");
		return -1;
	}
	if (a->admin) {
		*account = want;
		return 0;
	}
	if (want && strcmp(want, a->account) != 0) {
		http_problem_param(p, "account", "only an admin key reads another account");
		p->status = 403;
		p->code = "forbidden";
		p->field[0] = '\0'; /* "field"/"parameter" go with the 400 codes only */
		return -1;
	}
	*account = a->account;
	return 0;
}

int api_time(struct http_req *r, const char *name, int64_t *ms, struct http_problem *p)
{
	const char *v = http_req_query(r, name);

	if (!v)
		return 0;
	if (events_time_parse(v, ms) < 0) {
		http_problem_param(p, name,
		                   "expected a time: unix seconds, YYYY-MM-DD or RFC 3339 "
		                   "(2026-01-02T03:04:05Z)");
		return -1;
	}
	return 0;
}

int api_range(struct http_req *r, const char *from, const char *to, int64_t *from_ms,
              int64_t *to_ms, struct http_problem *p)
{
	if (api_time(r, from, from_ms, p) < 0 || api_time(r, to, to_ms, p) < 0)
		return -1;
	if (*from_ms && *to_ms && *to_ms <= *from_ms) {
		http_problem_param(p, to, "must be later than %s", from);
		return -1;
	}
	return 0;
}

int api_limit(struct http_req *r, size_t *limit, struct http_problem *p)
{
	int64_t n = API_LIMIT_DEFAULT;

	if (http_query_int(r, "limit", 1, API_LIMIT_MAX, &n, p) < 0)
		return -1;
	*limit = (size_t)n;
	return 0;
}

int api_order(struct http_req *r, int *desc, struct http_problem *p)
{
	const char *v = http_req_query(r, "order");

	if (!v)
		return 0;
	if (strcmp(v, "asc") != 0 && strcmp(v, "desc") != 0) {
		http_problem_param(p, "order", "expected asc or desc");
		return -1;
	}
	*desc = strcmp(v, "desc") == 0;
	return 0;
}

int api_types(const char *name, const char *list, unsigned *types, struct http_problem *p)
{
	char *copy, *save = NULL;
	unsigned mask = 0;

	if (!list)
		return 0;
	copy = xstrdup(list);
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int type = event_type_parse(str_trim(t));
		if (type < 0) {
			http_problem_param(
			    p, name,
			    "'%.40s' is not an event type (accepted, delivered, "
			    "deferred, bounced, suppressed, opened, clicked, complained)",
			    t);
			free(copy);
			return -1;
		}
		mask |= 1u << type;
	}
	free(copy);
	if (!mask) {
		http_problem_param(p, name, "expected one or more event types");
		return -1;
	}
	*types = mask;
	return 0;
}

int64_t api_path_id(struct http_req *r)
{
	uint64_t id;

	if (parse_u64(http_req_param(r, "id"), &id) < 0 || id > INT64_MAX)
		return 0;
	return (int64_t)id;
}

json_t *api_time_json(int64_t ms)
{
	char t[32];

	if (ms <= 0)
		return json_null();
	events_time_format(ms, t, sizeof(t));
	return json_string(t);
}

void api_answer_store_error(struct http_req *r, struct api_answer *a, const char *err)
{
	log_err("http=%s event=api_store_error path=%s error=%s", http_req_id(r),
	        log_q(http_req_path(r)), log_q(err ? err : "unknown"));
	api_answer_error(a, 500, "internal_error", "database error");
}
