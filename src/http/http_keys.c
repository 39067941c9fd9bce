/*
 * http_keys: the caller's own resources: GET /v1/account, and the API
 * keys it may see (GET /v1/apikeys, PATCH and DELETE /v1/apikeys/{id}).
 * An account key sees its account's keys except admin keys; an admin key
 * sees every key. A key out of sight is answered exactly like one that
 * does not exist (404). Keys are made only by `posthorn apikey create`:
 * a key shown once belongs on the operator's terminal, not in an answer.
 *
 * This file is the pattern for handlers that need the database: the
 * handler checks what it can on the loop, fills a job, and hands it to
 * http_req_defer(); the work function calls the store on a worker and
 * keeps what it found in the job; the done function, back on the loop,
 * builds the JSON and replies.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http_api.h"
#include "http/http_handlers.h"
#include "store/store.h"
#include "util/util.h"

struct keys_job {
	struct http_req *r;
	struct store_apikey_scope scope;
	int64_t id;
	const char *name; /* PATCH: borrowed from body, which the job keeps */
	json_t *body;
	json_t *out; /* the answer, built on the worker */
	int rc;      /* the store's return */
	char *err;
};

static struct keys_job *job_new(struct http_req *r)
{
	struct keys_job *j = xcalloc(1, sizeof(*j));
	const struct http_auth *a = http_req_auth(r);

	j->r = r;
	j->scope.account = a->admin ? NULL : a->account;
	j->scope.admin = a->admin;
	return j;
}

static void job_free(struct keys_job *j)
{
	json_decref(j->body);
	json_decref(j->out);
	free(j->err);
	free(j);
}

static json_t *key_json(const struct store_apikey *k)
{
	return json_pack(
	    "{s:I,s:s,s:s,s:b,s:o,s:o,s:o}", "id", (json_int_t)k->id, "account", k->account, "name",
	    k->name, "admin", k->admin, "created_at", http_json_time(k->created_at), "last_used_at",
	    http_json_time(k->last_used_at), "revoked_at", http_json_time(k->revoked_at));
}

/* The store's answer: 500 for the database, 404 and 409 for the key. */
static void reply_store_error(struct keys_job *j)
{
	if (j->rc == STORE_APIKEY_NOT_FOUND)
		http_reply_error(j->r, 404, "not_found", "%s", j->err);
	else if (j->rc == STORE_APIKEY_REVOKED)
		http_reply_error(j->r, 409, "conflict", "%s", j->err);
	else
		http_reply_error(j->r, 500, "internal_error", "database error");
}

static void reply_done(void *arg)
{
	struct keys_job *j = arg;

	if (j->rc < 0)
		reply_store_error(j);
	else
		http_reply_json(j->r, 200, json_incref(j->out));
	job_free(j);
}

/* ---- GET /v1/account ---- */

static void account_work(void *arg)
{
	struct keys_job *j = arg;
	const struct http_auth *a = http_req_auth(j->r);
	char **domains;
	size_t n;
	json_t *list = json_array();

	j->rc =
	    store_account_domains(http_req_deps(j->r)->store, a->account, &domains, &n, &j->err);
	for (size_t i = 0; j->rc == 0 && i < n; i++) {
		json_array_append_new(list, json_string(domains[i]));
		free(domains[i]);
	}
	if (j->rc == 0)
		free(domains);
	j->out = json_pack("{s:s,s:o,s:b,s:I}", "account", a->account, "domains", list, "admin",
	                   a->admin, "key_id", (json_int_t)a->key_id);
}

void http_h_account(struct http_req *r)
{
	http_req_defer(r, account_work, reply_done, job_new(r));
}

/* ---- GET /v1/apikeys ---- */

static void add_key(void *arg, const struct store_apikey *k)
{
	json_array_append_new(arg, key_json(k));
}

static void list_work(void *arg)
{
	struct keys_job *j = arg;
	json_t *keys = json_array();

	j->rc = store_apikey_list(http_req_deps(j->r)->store, &j->scope, add_key, keys, &j->err);
	j->out = json_pack("{s:o}", "apikeys", keys);
}

void http_h_apikeys_list(struct http_req *r)
{
	http_req_defer(r, list_work, reply_done, job_new(r));
}

/* ---- PATCH and DELETE /v1/apikeys/{id} ---- */

/* The {id} of the path; 0 (no key has it) when it is not a number. */
static int64_t path_id(struct http_req *r)
{
	uint64_t id;

	if (parse_u64(http_req_param(r, "id"), &id) < 0 || id > INT64_MAX)
		return 0;
	return (int64_t)id;
}

static void change_work(void *arg)
{
	struct keys_job *j = arg;
	struct store *st = http_req_deps(j->r)->store;
	struct store_apikey k;

	if (j->name)
		j->rc = store_apikey_rename(st, j->id, &j->scope, j->name, &k, &j->err);
	else
		j->rc = store_apikey_revoke(st, j->id, &j->scope, &k, &j->err);
	if (j->rc == 0)
		j->out = key_json(&k);
}

void http_h_apikey_revoke(struct http_req *r)
{
	struct keys_job *j = job_new(r);

	j->id = path_id(r);
	http_req_defer(r, change_work, reply_done, j);
}

static const char *const PATCH_FIELDS[] = {"name", NULL};

void http_h_apikey_patch(struct http_req *r)
{
	struct keys_job *j = job_new(r);
	struct http_problem p;
	size_t len;
	const char *body = http_req_body(r, &len);

	j->id = path_id(r);
	j->body = http_json_body(body, len, &p);
	if (!j->body || http_json_known(j->body, PATCH_FIELDS, &p) < 0 ||
	    http_json_string(j->body, "name", 1, 0, APIKEY_NAME_MAX, &j->name, &p) < 0) {
		http_reply_problem(r, &p);
		job_free(j);
		return;
	}
	if (!store_apikey_name_valid(j->name)) {
		http_problem_field(&p, "name", "control characters are not allowed");
		http_reply_problem(r, &p);
		job_free(j);
		return;
	}
	http_req_defer(r, change_work, reply_done, j);
}
