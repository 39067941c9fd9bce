/*
 * api_suppressions: the account's suppression list (SPEC 6), the same
 * list as `posthorn suppress` and the SMTP checks (store_supp_*):
 *
 *   GET    /v1/suppressions?address=&limit=&after=   entries by address, paged
 *   POST   /v1/suppressions {address, reason}       201 added; 200 it was there (unchanged)
 *   GET    /v1/suppressions/{address}               the entry; 404 when absent
 *   DELETE /v1/suppressions/{address}               the entry as it was; 404 when absent
 *
 * ?address= searches: the entries whose address contains it, in any case.
 * An address given in a body must be a valid RFC 5321 mailbox; one in the
 * path only has to be shaped like an address (so that any entry, however
 * it came in, can be looked at and removed). The store compares them
 * case-insensitively (store.h says why). Nothing is cached: a change made
 * with the CLI, or on another node, is seen by the next request.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/http.h"
#include "log/log.h"
#include "smtpd/smtp_parse.h"
#include "store/store.h"
#include "util/util.h"

#define LIST_DEFAULT 100

struct supp_job {
	struct http_req *r;
	struct store *st;
	char account[COUNTER_ACCOUNT_MAX + 1];
	const char *address; /* the path's {address}, or NULL */
	struct store_supp_query q;
	char contains[SUPP_ADDRESS_MAX + 1];
	char after[SUPP_ADDRESS_MAX + 1];
	struct api_answer ans;
};

static struct supp_job *job_new(struct http_req *r)
{
	struct supp_job *j = xcalloc(1, sizeof(*j));

	j->r = r;
	j->st = http_req_deps(r)->store;
	snprintf(j->account, sizeof(j->account), "%s", http_req_auth(r)->account);
	j->address = http_req_param(r, "address");
	j->q.account = j->account;
	return j;
}

static void job_done(void *arg)
{
	struct supp_job *j = arg;

	api_answer_send(j->r, &j->ans);
	free(j);
}

static json_t *entry_json(const struct store_supp *s)
{
	return json_pack("{s:s,s:s,s:o}", "address", s->address, "reason", s->reason, "created_at",
	                 http_json_time(s->created_at));
}

static void store_error(struct supp_job *j, int rc, const char *err)
{
	if (rc == STORE_SUPP_NO_ACCOUNT) {
		api_answer_error(&j->ans, 404, "not_found", "%s", err ? err : "no such account");
		return;
	}
	api_answer_error(&j->ans, 500, "internal_error", "database error");
	log_err("http=%s event=api_error route=suppressions error=%s", http_req_id(j->r),
	        log_q(err ? err : "unknown"));
}

/* Who changed the list, for the operator's log. */
static void log_change(struct supp_job *j, const char *event, const struct store_supp *s)
{
	log_info("http=%s event=%s account=%s key_id=%lld address=%s reason=%s", http_req_id(j->r),
	         event, j->account, (long long)http_req_auth(j->r)->key_id, log_q(s->address),
	         log_q(s->reason));
}

static void not_listed(struct supp_job *j, const char *address)
{
	api_answer_error(&j->ans, 404, "not_found", "%s is not on the suppression list", address);
}

/* The path's {address}, checked on the loop: 0, or -1 with the 400 sent. */
static int path_address(struct http_req *r, const char *address)
{
	char display[SUPP_ADDRESS_MAX + 1], key[SUPP_ADDRESS_MAX + 1];
	struct http_problem p;
	const char *why = "";

	if (store_supp_normalize(address, display, key, &why) == 0)
		return 0;
	http_problem_param(&p, "address", "not an address: %s", why);
	http_reply_problem(r, &p);
	return -1;
}

/* ---- GET and DELETE /v1/suppressions/{address} --------------------------------------- */

/* GET (remove 0) or DELETE (remove 1) of the path's address. */
static void one_work(struct supp_job *j, int remove)
{
	struct store_supp s;
	char *err = NULL;
	int rc = remove ? store_supp_remove(j->st, j->account, j->address, &s, &err)
	                : store_supp_check(j->st, j->account, j->address, &s, &err);

	if (rc > 0 && remove)
		log_change(j, "suppression_removed", &s);
	if (rc > 0)
		api_answer_json(&j->ans, 200, entry_json(&s));
	else if (rc == 0)
		not_listed(j, j->address);
	else
		store_error(j, rc, err);
	free(err);
}

static void get_work(void *arg)
{
	one_work(arg, 0);
}

static void delete_work(void *arg)
{
	one_work(arg, 1);
}

static void with_address(struct http_req *r, void (*work)(void *arg))
{
	if (path_address(r, http_req_param(r, "address")) == 0)
		http_req_defer(r, work, job_done, job_new(r));
}

void api_h_suppression_get(struct http_req *r)
{
	with_address(r, get_work);
}

void api_h_suppression_delete(struct http_req *r)
{
	with_address(r, delete_work);
}

/* ---- POST /v1/suppressions --------------------------------------------------------------- */

static const char *const FIELDS[] = {"address", "reason", NULL};

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* The address and reason of the body: 0, or -1 with p set. */
static int read_entry(json_t *body, const char **address, const char **reason,
                      struct http_problem *p)
{
	char display[SUPP_ADDRESS_MAX + 1], key[SUPP_ADDRESS_MAX + 1];
	const char *why = "not a valid RFC 5321 address";

	if (http_json_known(body, FIELDS, p) < 0 ||
	    http_json_string(body, "address", 1, 1, SUPP_ADDRESS_MAX + 2, address, p) < 0 ||
	    http_json_string(body, "reason", 0, 0, SUPP_REASON_MAX, reason, p) < 0)
		return -1;
	if (store_supp_normalize(*address, display, key, &why) < 0 ||
	    !smtp_address_valid(display, 1))
		return http_problem_field(p, "address", "%s", why);
	if (*reason && has_control(*reason))
		return http_problem_field(p, "reason", "control characters are not allowed");
	return 0;
}

static void add_work(void *arg)
{
	struct supp_job *j = arg;
	struct http_problem p;
	struct store_supp s;
	const char *address = NULL, *reason = NULL;
	char *err = NULL;
	size_t len;
	const char *text = http_req_body(j->r, &len);
	json_t *body = http_json_body(text, len, &p);
	int rc;

	if (!body || read_entry(body, &address, &reason, &p) < 0) {
		api_answer_problem(&j->ans, &p, NULL);
	} else {
		rc = store_supp_add(j->st, j->account, address, reason, &s, &err);
		if (rc > 0)
			log_change(j, "suppression_added", &s);
		if (rc >= 0)
			api_answer_json(&j->ans, rc ? 201 : 200, entry_json(&s));
		else
			store_error(j, rc, err);
	}
	json_decref(body);
	free(err);
}

void api_h_suppression_add(struct http_req *r)
{
	http_req_defer(r, add_work, job_done, job_new(r));
}

/* ---- GET /v1/suppressions ------------------------------------------------------------------- */

struct listing {
	json_t *list;
	char last[SUPP_ADDRESS_MAX + 1]; /* the key of the last entry */
};

static void add_entry(void *arg, const struct store_supp *s)
{
	struct listing *l = arg;

	json_array_append_new(l->list, entry_json(s));
	snprintf(l->last, sizeof(l->last), "%s", s->key);
}

static void list_work(void *arg)
{
	struct supp_job *j = arg;
	struct listing l = {json_array(), ""};
	json_t *next = json_null();
	char *err = NULL, *cursor;
	int more = 0, rc = store_supp_list(j->st, &j->q, add_entry, &l, &more, &err);

	if (rc < 0) {
		json_decref(l.list);
		store_error(j, rc, err);
		free(err);
		return;
	}
	if (more) {
		cursor = api_cursor_encode(l.last);
		next = json_string(cursor);
		free(cursor);
	}
	api_answer_json(&j->ans, 200, json_pack("{s:o,s:o}", "suppressions", l.list, "next", next));
}

/* The query of a listing, on the loop: 0, or -1 with p set. */
static int list_query(struct http_req *r, struct supp_job *j, struct http_problem *p)
{
	const char *contains = http_req_query(r, "address");

	if (api_list_query(r, LIST_DEFAULT, SUPP_LIST_MAX, &j->q.limit, j->after, sizeof(j->after),
	                   p) < 0)
		return -1;
	if (contains && strlen(contains) > SUPP_ADDRESS_MAX) {
		http_problem_param(p, "address", "at most %d bytes", SUPP_ADDRESS_MAX);
		return -1;
	}
	snprintf(j->contains, sizeof(j->contains), "%s", contains ? contains : "");
	return 0;
}

void api_h_suppressions_list(struct http_req *r)
{
	struct supp_job *j = job_new(r);
	struct http_problem p;

	if (list_query(r, j, &p) < 0) {
		http_reply_problem(r, &p);
		free(j);
		return;
	}
	j->q.contains = j->contains;
	j->q.after = j->after;
	http_req_defer(r, list_work, job_done, j);
}
