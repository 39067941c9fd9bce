/*
 * api_webhooks: /v1/webhooks CRUD (SPEC 6). A webhook belongs to an
 * account and is sent that account's events (of the types it names, all
 * when none). Create answers the id and the signing secret: the only
 * answer that holds the secret (it is given, or made of 32 random bytes).
 * GET /v1/webhooks/{id} adds the delivery state and the recent failures.
 *
 * An account key's webhook may not point at an address literal inside
 * [events] webhook_blocked_destinations (names are checked when the
 * dispatcher connects, see events_hook.c); an admin key's may, and an
 * admin key may make one for another account ("account").
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "conf/conf.h"
#include "events/events.h"
#include "store/store.h"
#include "util/util.h"

#define SECRET_PREFIX "whsec_"
#define TYPES_MAX     EVENT_TYPES

struct hook_job {
	struct http_req *r;
	const char *account; /* scope: NULL for admin keys */
	int64_t id;
	json_t *body;           /* the request's, kept for the borrowed strings */
	struct store_webhook w; /* create: what to make; borrowed strings */
	char secret[64 + sizeof(SECRET_PREFIX)];
	const char *url, *description, *new_secret;
	unsigned types;
	json_t *out;
	int status; /* of the answer */
	int rc;
	char *err;
	void (*work)(struct hook_job *j); /* on the worker; then make_answer() */
	struct api_answer answer;
};

static struct hook_job *job_new(struct http_req *r)
{
	struct hook_job *j = xcalloc(1, sizeof(*j));
	const struct http_auth *a = http_req_auth(r);

	j->r = r;
	j->account = a->admin ? NULL : a->account;
	j->id = api_path_id(r);
	j->status = 200;
	return j;
}

static void job_free(struct hook_job *j)
{
	json_decref(j->body);
	json_decref(j->out);
	free(j->err);
	free(j);
}

/* ---- shapes ------------------------------------------------------------------------ */

static json_t *types_json(unsigned types)
{
	json_t *a = json_array();

	for (int t = 0; t < EVENT_TYPES; t++)
		if (types & (1u << t))
			json_array_append_new(a, json_string(event_type_name(t)));
	return a;
}

static json_t *hook_json(const struct store_webhook *w)
{
	json_t *state = json_pack("{s:I,s:I,s:o,s:o}", "last_event_id",
	                          (json_int_t)w->last_event_id, "failures", (json_int_t)w->failures,
	                          "failing_since", api_time_json(w->first_failure_ms),
	                          "next_attempt_at", api_time_json(w->next_attempt_ms));

	return json_pack("{s:I,s:s,s:s,s:o,s:s,s:o,s:o}", "id", (json_int_t)w->id, "account",
	                 w->account, "url", w->url, "types", types_json(w->types), "description",
	                 w->description, "created_at", api_time_json(w->created_at * 1000), "state",
	                 state);
}

static void add_failure(void *arg, const struct store_webhook_failure *f)
{
	json_array_append_new(
	    arg, json_pack("{s:o,s:i,s:s,s:I,s:I,s:b}", "time", api_time_json(f->time_ms), "status",
	                   f->status, "error", f->error, "first_event", (json_int_t)f->first_event,
	                   "last_event", (json_int_t)f->last_event, "dropped", f->dropped));
}

/* ---- replies --------------------------------------------------------------------------- */

/* On the worker, at the end of each job: the answer, made into text. */
static void make_answer(struct hook_job *j)
{
	struct http_problem p = {400, "invalid_field", "account", "account: no such account"};

	if (j->rc == STORE_NOT_FOUND)
		api_answer_error(&j->answer, 404, "not_found", "no such webhook %lld",
		                 (long long)j->id);
	else if (j->rc < 0)
		api_answer_store_error(j->r, &j->answer, j->err);
	else if (j->status == 400)
		api_answer_problem(&j->answer, &p, NULL);
	else
		api_answer_json(&j->answer, j->status, json_incref(j->out));
}

static void reply_done(void *arg)
{
	struct hook_job *j = arg;

	api_answer_send(j->r, &j->answer);
	job_free(j);
}

static void run(void *arg)
{
	struct hook_job *j = arg;

	j->work(j);
	make_answer(j);
}

static void defer(struct hook_job *j, void (*work)(struct hook_job *j))
{
	j->work = work;
	http_req_defer(j->r, run, reply_done, j);
}

static void reply_problem(struct hook_job *j, const struct http_problem *p)
{
	http_reply_problem(j->r, p);
	job_free(j);
}

/* ---- GET /v1/webhooks -------------------------------------------------------------------- */

static void add_hook(void *arg, const struct store_webhook *w)
{
	json_array_append_new(arg, hook_json(w));
}

static void list_work(struct hook_job *j)
{
	json_t *a = json_array();

	j->rc = store_webhook_list(http_req_deps(j->r)->store, j->account, add_hook, a, &j->err);
	j->out = json_pack("{s:o}", "webhooks", a);
}

void api_h_webhooks(struct http_req *r)
{
	struct hook_job *j = job_new(r);
	struct http_problem p;

	if (api_account(r, &j->account, &p) < 0)
		reply_problem(j, &p);
	else
		defer(j, list_work);
}

/* ---- GET and DELETE /v1/webhooks/{id} ------------------------------------------------------ */

static void get_work(struct hook_job *j)
{
	struct store *st = http_req_deps(j->r)->store;
	struct store_webhook w;
	json_t *failures;

	if ((j->rc = store_webhook_get(st, j->account, j->id, &w, &j->err)) < 0)
		return;
	j->out = hook_json(&w);
	store_webhook_clear(&w);
	failures = json_array();
	j->rc = store_webhook_failures(st, j->id, add_failure, failures, &j->err);
	json_object_set_new(j->out, "recent_failures", failures);
}

void api_h_webhook(struct http_req *r)
{
	defer(job_new(r), get_work);
}

static void delete_work(struct hook_job *j)
{
	struct store *st = http_req_deps(j->r)->store;
	struct store_webhook w;

	if ((j->rc = store_webhook_get(st, j->account, j->id, &w, &j->err)) < 0)
		return;
	j->out = hook_json(&w);
	store_webhook_clear(&w);
	j->rc = store_webhook_delete(st, j->account, j->id, &j->err);
}

void api_h_webhook_delete(struct http_req *r)
{
	defer(job_new(r), delete_work);
}

/* ---- the fields of POST and PATCH ------------------------------------------------------------ */

static const char *const FIELDS[] = {"url", "types", "description", "secret", "account", NULL};

static int url_field(struct http_req *r, json_t *body, int required, const char **url,
                     struct http_problem *p)
{
	const struct conf *c = http_req_conf(r);
	const char *why = NULL;

	if (http_json_string(body, "url", required, 1, WEBHOOK_URL_MAX, url, p) < 0)
		return -1;
	if (!*url)
		return 0;
	if (!events_hook_url_ok(*url, &why))
		return http_problem_field(p, "url", "%s", why);
	if (!http_req_auth(r)->admin &&
	    events_hook_url_blocked(*url, c->webhook_blocked, c->n_webhook_blocked))
		return http_problem_field(
		    p, "url", "the address is in [events] webhook_blocked_destinations");
	return 0;
}

static int types_field(json_t *body, unsigned *types, struct http_problem *p)
{
	json_t *a = NULL, *v;
	size_t i;

	if (http_json_strings(body, "types", 0, TYPES_MAX, 16, &a, p) < 0)
		return -1;
	if (!a)
		return 0;
	*types = 0;
	json_array_foreach(a, i, v)
	{
		int t = event_type_parse(json_string_value(v));
		if (t < 0)
			return http_problem_field(p, "types", "item %zu: '%s' is not an event type",
			                          i, json_string_value(v));
		*types |= 1u << t;
	}
	if (!*types)
		*types = EVENT_TYPES_ALL; /* [] is every type, as when absent */
	return 0;
}

/* The secret is the HMAC key as given: printable ASCII, no spaces. */
static int secret_field(json_t *body, const char **secret, struct http_problem *p)
{
	if (http_json_string(body, "secret", 0, WEBHOOK_SECRET_MIN, WEBHOOK_SECRET_MAX, secret, p) <
	    0)
		return -1;
	for (const char *s = *secret; s && *s; s++)
		if (*s <= 0x20 || *s >= 0x7f)
			return http_problem_field(p, "secret",
			                          "printable ASCII without spaces, %d to %d bytes",
			                          WEBHOOK_SECRET_MIN, WEBHOOK_SECRET_MAX);
	return 0;
}

static int description_field(json_t *body, const char **d, struct http_problem *p)
{
	if (http_json_string(body, "description", 0, 0, WEBHOOK_DESCRIPTION_MAX, d, p) < 0)
		return -1;
	for (const char *s = *d; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return http_problem_field(p, "description",
			                          "control characters are not allowed");
	return 0;
}

/* Reads and checks the body; -1 with p set (400, or 403 for `account`). */
static int read_body(struct hook_job *j, int create, struct http_problem *p)
{
	const struct http_auth *a = http_req_auth(j->r);
	const char *account = NULL;
	size_t len;
	const char *text = http_req_body(j->r, &len);

	if (!(j->body = http_json_body(text, len, p)) || http_json_known(j->body, FIELDS, p) < 0 ||
	    url_field(j->r, j->body, create, &j->url, p) < 0 ||
	    types_field(j->body, &j->types, p) < 0 ||
	    description_field(j->body, &j->description, p) < 0 ||
	    secret_field(j->body, &j->new_secret, p) < 0 ||
	    http_json_string(j->body, "account", 0, 1, COUNTER_ACCOUNT_MAX, &account, p) < 0)
		return -1;
	if (account && !store_account_name_valid(account))
		return http_problem_field(p, "account", "expected an account name");
	if (account && (!create || !a->admin)) {
		http_problem_field(p, "account",
		                   create ? "only an admin key makes webhooks for another account"
		                          : "a webhook cannot move to another account");
		if (create) {
			p->status = 403;
			p->code = "forbidden";
			p->field[0] = '\0';
		}
		return -1;
	}
	snprintf(j->w.account, sizeof(j->w.account), "%s", account ? account : a->account);
	return 0;
}

/* ---- POST /v1/webhooks --------------------------------------------------------------------- */

static void make_secret(char *out, size_t cap)
{
	unsigned char raw[32];
	char hex[65];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	snprintf(out, cap, "%s%s", SECRET_PREFIX, hex);
	sodium_memzero(raw, sizeof(raw));
}

static void create_work(struct hook_job *j)
{
	struct store *st = http_req_deps(j->r)->store;
	struct store_webhook w;

	j->rc = store_user_exists(st, j->w.account);
	if (j->rc <= 0) {
		j->status = j->rc == 0 ? 400 : 500;
		j->rc = j->rc == 0 ? 0 : -1;
		return;
	}
	if ((j->rc = store_webhook_create(st, &j->w, &j->id, &j->err)) < 0 ||
	    (j->rc = store_webhook_get(st, NULL, j->id, &w, &j->err)) < 0)
		return;
	j->out = hook_json(&w);
	json_object_set_new(j->out, "secret", json_string(w.secret));
	store_webhook_clear(&w);
	j->status = 201;
}

void api_h_webhook_create(struct http_req *r)
{
	struct hook_job *j = job_new(r);
	struct http_problem p;

	if (read_body(j, 1, &p) < 0) {
		reply_problem(j, &p);
		return;
	}
	if (!j->new_secret)
		make_secret(j->secret, sizeof(j->secret));
	j->w.url = (char *)j->url;
	j->w.secret = j->new_secret ? (char *)j->new_secret : j->secret;
	j->w.description = (char *)(j->description ? j->description : "");
	j->w.types = j->types ? j->types : EVENT_TYPES_ALL;
	j->w.unrestricted = http_req_auth(r)->admin;
	defer(j, create_work);
}

/* ---- PATCH /v1/webhooks/{id} --------------------------------------------------------------- */

static void update_work(struct hook_job *j)
{
	struct store *st = http_req_deps(j->r)->store;
	struct store_webhook w;

	if ((j->rc = store_webhook_update(st, j->account, j->id, j->url, j->new_secret,
	                                  j->description, j->types, &j->err)) < 0 ||
	    (j->rc = store_webhook_get(st, j->account, j->id, &w, &j->err)) < 0)
		return;
	j->out = hook_json(&w);
	store_webhook_clear(&w);
}

void api_h_webhook_update(struct http_req *r)
{
	struct hook_job *j = job_new(r);
	struct http_problem p;

	if (read_body(j, 0, &p) < 0) {
		reply_problem(j, &p);
		return;
	}
	if (!j->url && !j->types && !j->description && !j->new_secret) {
		http_problem_field(&p, "url",
		                   "expected one or more of url, types, description, secret");
		reply_problem(j, &p);
		return;
	}
	defer(j, update_work);
}
