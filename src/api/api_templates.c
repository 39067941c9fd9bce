/*
 * api_templates: message templates, per account and by name (SPEC 6):
 *
 *   GET    /v1/templates                 names, subjects and times, by name, paged
 *   POST   /v1/templates                 {name, subject, text, html}: 201; 409 if the name is taken
 *   GET    /v1/templates/{name}          the template
 *   PUT    /v1/templates/{name}          {subject, text, html}: replaces all three
 *   DELETE /v1/templates/{name}          answers the template as it was
 *   POST   /v1/templates/{name}/preview  {variables}: {subject, text, html, warnings}
 *
 * A template is compiled before it is stored, so a syntax error is a 400
 * that names the part ("field") with its line and column, and a stored
 * template always compiles. Another account's template is a 404, exactly
 * like a missing one. A change through this server reaches the compiled
 * cache at once (api_tmpl_cache_forget); one through another node within
 * API_TMPL_FRESH_MS.
 *
 * Only the query is read on the loop; the body is parsed, the templates
 * compiled, the store called and the answer made on a worker.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/http.h"
#include "log/log.h"
#include "store/store.h"
#include "util/util.h"

#define LIST_DEFAULT 100
#define LIST_MAX     1000

struct tmpl_job {
	struct http_req *r;
	struct store *st;
	struct api_tmpl_cache *cache;
	char account[COUNTER_ACCOUNT_MAX + 1];
	const char *name; /* the path's {name}; NULL on /v1/templates */
	size_t limit;     /* GET /v1/templates */
	char after[STORE_TMPL_NAME_MAX + 1];
	char *location; /* 201: the new template's path */
	struct api_answer ans;
};

static struct tmpl_job *job_new(struct http_req *r)
{
	struct tmpl_job *j = xcalloc(1, sizeof(*j));

	j->r = r;
	j->st = http_req_deps(r)->store;
	j->cache = http_req_deps(r)->templates;
	snprintf(j->account, sizeof(j->account), "%s", http_req_auth(r)->account);
	j->name = http_req_param(r, "name");
	return j;
}

static void job_done(void *arg)
{
	struct tmpl_job *j = arg;

	if (j->location && j->ans.status == 201)
		http_add_header(j->r, "Location", j->location);
	api_answer_send(j->r, &j->ans);
	free(j->location);
	free(j);
}

static void store_error(struct tmpl_job *j, int rc, const char *err)
{
	if (rc == STORE_TMPL_NOT_FOUND || rc == API_TMPL_NOT_FOUND)
		api_answer_error(&j->ans, 404, "not_found", "no such template '%s'", j->name);
	else if (rc == STORE_TMPL_EXISTS || rc == STORE_TMPL_FULL)
		api_answer_error(&j->ans, 409, "conflict", "%s", err ? err : "conflict");
	else if (rc == STORE_TMPL_NO_ACCOUNT)
		api_answer_error(&j->ans, 404, "not_found", "%s", err ? err : "no such account");
	else if (rc == API_TMPL_BROKEN)
		api_answer_error(&j->ans, 500, "internal_error", "%s", err ? err : "bad template");
	else
		api_answer_error(&j->ans, 500, "internal_error", "database error");
	if (rc == -1 || rc == API_TMPL_BROKEN)
		log_err("http=%s event=api_error route=templates error=%s", http_req_id(j->r),
		        log_q(err ? err : "unknown"));
}

/* Who changed a template, for the operator's log. */
static void log_change(struct tmpl_job *j, const char *event, const char *name)
{
	log_info("http=%s event=%s account=%s key_id=%lld template=%s", http_req_id(j->r), event,
	         j->account, (long long)http_req_auth(j->r)->key_id, log_q(name));
}

static json_t *optional_string(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* parts: with text and html (one template), or without (a listing). */
static json_t *template_json(const struct store_tmpl *t, int parts)
{
	json_t *o =
	    json_pack("{s:s,s:s,s:o,s:o}", "name", t->name, "subject", t->subject, "created_at",
	              http_json_time(t->created_at), "updated_at", http_json_time(t->updated_at));

	if (o && parts) {
		json_object_set_new(o, "text", optional_string(t->text));
		json_object_set_new(o, "html", optional_string(t->html));
	}
	return o;
}

/* ---- reading and checking a template ------------------------------------------------- */

static int problem(struct tmpl_job *j, const struct http_problem *p, json_t *extra)
{
	api_answer_problem(&j->ans, p, extra);
	return -1;
}

/* Compiles each part given: a syntax error is a 400 naming the part. */
static int check_syntax(struct tmpl_job *j, const struct store_tmpl_in *in)
{
	const char *text[API_PARTS] = {in->subject, in->text, in->html};
	struct http_problem p;
	struct tmpl_error e;
	struct tmpl *t;

	for (int i = 0; i < API_PARTS; i++) {
		if (!text[i])
			continue;
		if (api_part_compile((enum api_part)i, text[i], &t, &e) == 0) {
			tmpl_free(t);
			continue;
		}
		if (!e.line)
			http_problem_field(&p, api_part_name((enum api_part)i), "%s", e.message);
		else
			http_problem_field(&p, api_part_name((enum api_part)i),
			                   "line %u, column %u: %s", e.line, e.column, e.message);
		return problem(
		    j, &p,
		    e.line ? json_pack("{s:i,s:i}", "line", (int)e.line, "column", (int)e.column)
		           : NULL);
	}
	return 0;
}

static const char *const FIELDS[] = {"name", "subject", "text", "html", NULL};

/* The checks beyond each field's type and size. */
static int check_fields(struct tmpl_job *j, const char *name, const struct store_tmpl_in *in)
{
	struct http_problem p;

	if (name && !store_tmpl_name_valid(name))
		http_problem_field(
		    &p, "name",
		    "1 to %d characters of A-Z a-z 0-9 . _ -, starting with a letter "
		    "or a digit",
		    STORE_TMPL_NAME_MAX);
	else if (name && j->name && strcmp(name, j->name) != 0)
		http_problem_field(&p, "name",
		                   "a template keeps its name: create one under the new name, "
		                   "then delete this one");
	else if (strpbrk(in->subject, "\r\n"))
		http_problem_field(&p, "subject", "must be one line");
	else if (!in->text && !in->html)
		http_problem_field(&p, "text",
		                   "required when there is no html: a template needs "
		                   "a text part, an html part or both");
	else
		return check_syntax(j, in);
	return problem(j, &p, NULL);
}

/* The body of POST (name required) or PUT (name optional, must be the
 * path's). 0 with *name and *in borrowed from *body (the caller's to
 * release), or -1 with the 400 made. */
static int read_template(struct tmpl_job *j, json_t **body, const char **name,
                         struct store_tmpl_in *in)
{
	struct http_problem p;
	size_t len;
	const char *text = http_req_body(j->r, &len);

	memset(in, 0, sizeof(*in));
	*name = NULL;
	if (!(*body = http_json_body(text, len, &p)) || http_json_known(*body, FIELDS, &p) < 0 ||
	    http_json_string(*body, "name", !j->name, 1, STORE_TMPL_NAME_MAX, name, &p) < 0 ||
	    http_json_string(*body, "subject", 1, 0, STORE_TMPL_SUBJECT_MAX, &in->subject, &p) <
	        0 ||
	    http_json_string(*body, "text", 0, 0, STORE_TMPL_PART_MAX, &in->text, &p) < 0 ||
	    http_json_string(*body, "html", 0, 0, STORE_TMPL_PART_MAX, &in->html, &p) < 0)
		return problem(j, &p, NULL);
	return check_fields(j, *name, in);
}

/* ---- POST and PUT ------------------------------------------------------------------------ */

static void write_work(void *arg)
{
	struct tmpl_job *j = arg;
	struct store_tmpl_in in;
	struct store_tmpl t = {0};
	const char *name;
	json_t *body = NULL;
	char *err = NULL;
	int rc;

	if (read_template(j, &body, &name, &in) == 0) {
		if (j->name)
			rc = store_tmpl_update(j->st, j->account, j->name, &in, &t, &err);
		else
			rc = store_tmpl_create(j->st, j->account, name, &in, &t, &err);
		if (rc == 0) {
			log_change(j, j->name ? "template_updated" : "template_created", t.name);
			api_tmpl_cache_forget(j->cache, j->account, t.name);
			j->location = xasprintf("/v1/templates/%s", t.name);
			api_answer_json(&j->ans, j->name ? 200 : 201, template_json(&t, 1));
		} else {
			j->name = j->name ? j->name : name;
			store_error(j, rc, err);
		}
	}
	store_tmpl_clear(&t);
	json_decref(body);
	free(err);
}

void api_h_template_create(struct http_req *r)
{
	http_req_defer(r, write_work, job_done, job_new(r));
}

void api_h_template_put(struct http_req *r)
{
	http_req_defer(r, write_work, job_done, job_new(r));
}

/* ---- GET and DELETE /v1/templates/{name} ---------------------------------------------------- */

/* GET (remove 0) or DELETE (remove 1): both answer the template. */
static void one_work(struct tmpl_job *j, int remove)
{
	struct store_tmpl t = {0};
	char *err = NULL;
	int rc = !store_tmpl_name_valid(j->name) ? STORE_TMPL_NOT_FOUND
	         : remove ? store_tmpl_delete(j->st, j->account, j->name, &t, &err)
	                  : store_tmpl_get(j->st, j->account, j->name, &t, &err);

	if (rc == 0 && remove) {
		log_change(j, "template_deleted", j->name);
		api_tmpl_cache_forget(j->cache, j->account, j->name);
	}
	if (rc == 0)
		api_answer_json(&j->ans, 200, template_json(&t, 1));
	else
		store_error(j, rc, err);
	store_tmpl_clear(&t);
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

void api_h_template_get(struct http_req *r)
{
	http_req_defer(r, get_work, job_done, job_new(r));
}

void api_h_template_delete(struct http_req *r)
{
	http_req_defer(r, delete_work, job_done, job_new(r));
}

/* ---- GET /v1/templates ------------------------------------------------------------------------
 */

static void add_listed(void *arg, const struct store_tmpl *t)
{
	json_array_append_new(arg, template_json(t, 0));
}

static void list_work(void *arg)
{
	struct tmpl_job *j = arg;
	json_t *list = json_array(), *next = json_null();
	char *err = NULL;
	int more = 0, rc;

	rc = store_tmpl_list(j->st, j->account, j->after, j->limit, add_listed, list, &more, &err);
	if (rc == 0 && more) {
		json_t *last = json_array_get(list, json_array_size(list) - 1);
		char *c = api_cursor_encode(json_string_value(json_object_get(last, "name")));
		next = json_string(c);
		free(c);
	}
	if (rc == 0)
		api_answer_json(&j->ans, 200,
		                json_pack("{s:o,s:o}", "templates", list, "next", next));
	else {
		json_decref(list);
		json_decref(next);
		store_error(j, rc, err);
	}
	free(err);
}

void api_h_templates_list(struct http_req *r)
{
	struct tmpl_job *j = job_new(r);
	struct http_problem p;

	if (api_list_query(r, LIST_DEFAULT, LIST_MAX, &j->limit, j->after, sizeof(j->after), &p) <
	    0) {
		http_reply_problem(r, &p);
		free(j);
		return;
	}
	http_req_defer(r, list_work, job_done, j);
}

/* ---- POST /v1/templates/{name}/preview ------------------------------------------------------ */

static const char *const PREVIEW_FIELDS[] = {"variables", NULL};

/* The variables of the body (an empty body has none): 0 with *vars
 * borrowed from *body, or NULL; or -1 with the 400 made. */
static int read_variables(struct tmpl_job *j, json_t **body, json_t **vars)
{
	struct http_problem p;
	size_t len;
	const char *text = http_req_body(j->r, &len);

	*vars = NULL;
	if (len == 0)
		return 0;
	if (!(*body = http_json_body(text, len, &p)) ||
	    http_json_known(*body, PREVIEW_FIELDS, &p) < 0)
		return problem(j, &p, NULL);
	*vars = json_object_get(*body, "variables");
	if (json_is_null(*vars))
		*vars = NULL;
	if (*vars && !json_is_object(*vars)) {
		http_problem_field(&p, "variables", "expected an object");
		return problem(j, &p, NULL);
	}
	return 0;
}

json_t *api_warnings_json(const struct api_rendered *out)
{
	json_t *list = json_array();

	for (size_t i = 0; i < out->n_warnings; i++) {
		const struct api_warning *w = &out->warnings[i];
		json_array_append_new(
		    list, json_pack("{s:s,s:s,s:s}", "part", api_part_name(w->part), "kind",
		                    tmpl_warning_kind_name(w->kind), "name", w->name));
	}
	return list;
}

static json_t *part_json(const struct api_rendered *out, enum api_part part)
{
	return out->has[part] ? json_stringn(out->out[part].data, out->out[part].len) : json_null();
}

static void answer_rendered(struct tmpl_job *j, const struct api_rendered *out, int rc)
{
	struct http_problem p;

	if (rc < 0) {
		http_problem_field(&p, "variables", "rendering the %s part stopped: %s",
		                   api_part_name(out->failed), out->err.message);
		problem(j, &p, json_pack("{s:s}", "part", api_part_name(out->failed)));
		return;
	}
	api_answer_json(&j->ans, 200,
	                json_pack("{s:o,s:o,s:o,s:o,s:b}", "subject",
	                          part_json(out, API_PART_SUBJECT), "text",
	                          part_json(out, API_PART_TEXT), "html",
	                          part_json(out, API_PART_HTML), "warnings", api_warnings_json(out),
	                          "warnings_truncated", out->warnings_truncated));
}

static void preview_work(void *arg)
{
	struct tmpl_job *j = arg;
	struct api_template *t = NULL;
	struct api_rendered out;
	json_t *body = NULL, *vars;
	char *err = NULL;
	int rc;

	if (read_variables(j, &body, &vars) == 0) {
		rc = store_tmpl_name_valid(j->name)
		         ? api_tmpl_get(j->cache, j->account, j->name, &t, &err)
		         : API_TMPL_NOT_FOUND;
		if (rc == 0) {
			answer_rendered(j, &out, api_template_render(t, vars, &out));
			api_rendered_free(&out);
			api_template_unref(t);
		} else {
			store_error(j, rc, err);
		}
	}
	json_decref(body);
	free(err);
}

void api_h_template_preview(struct http_req *r)
{
	http_req_defer(r, preview_work, job_done, job_new(r));
}
