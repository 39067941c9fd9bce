/*
 * api_send_parse: the JSON of POST /v1/messages read into a struct
 * send_req, every field checked, and the first bad one named (400).
 * SPEC 6 and docs/api.md list the fields.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api_send.h"
#include "store/store.h"

static const char *const known_fields[] = {
    "from",     "to",        "cc",         "bcc",         "reply_to",    "subject",
    "text",     "html",      "headers",    "attachments", "tags",        "metadata",
    "template", "variables", "recipients", "track",       "unsubscribe", NULL,
};

static int one_addr(json_t *v, const char *field, struct mime_addr *out, struct http_problem *p)
{
	const char *why = "expected a string";

	if (!json_is_string(v) || json_string_length(v) > 600 ||
	    memchr(json_string_value(v), 0, json_string_length(v)) ||
	    mime_addr_parse(json_string_value(v), out, &why) < 0)
		return http_problem_field(p, field, "%s", why);
	return 0;
}

/* A string or an array of strings, each an address. */
static int addr_list(json_t *obj, const char *field, struct mime_addr **out, size_t *n,
                     struct http_problem *p)
{
	json_t *v = json_object_get(obj, field), *item;
	char name[64];
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		*out = xcalloc(1, sizeof(**out));
		*n = 1;
		return one_addr(v, field, *out, p);
	}
	if (!json_is_array(v) || json_array_size(v) > SEND_MAX_RCPTS)
		return http_problem_field(p, field, "expected an address or an array of at most %d",
		                          SEND_MAX_RCPTS);
	*out = xcalloc(json_array_size(v) + 1, sizeof(**out));
	json_array_foreach(v, i, item)
	{
		snprintf(name, sizeof(name), "%s[%zu]", field, i);
		if (one_addr(item, name, &(*out)[i], p) < 0)
			return -1;
		*n = i + 1;
	}
	return 0;
}

static int addresses(json_t *b, struct send_req *q, struct http_problem *p)
{
	json_t *rt = json_object_get(b, "reply_to");

	if (!json_object_get(b, "from"))
		return http_problem_field(p, "from", "required");
	if (one_addr(json_object_get(b, "from"), "from", &q->from, p) < 0 ||
	    addr_list(b, "to", &q->to, &q->n_to, p) < 0 ||
	    addr_list(b, "cc", &q->cc, &q->n_cc, p) < 0 ||
	    addr_list(b, "bcc", &q->bcc, &q->n_bcc, p) < 0)
		return -1;
	if (rt && !json_is_null(rt)) {
		q->has_reply_to = 1;
		if (one_addr(rt, "reply_to", &q->reply_to, p) < 0)
			return -1;
	}
	if (q->n_to + q->n_cc + q->n_bcc > SEND_MAX_RCPTS)
		return http_problem_field(p, "to", "at most %d recipients in to, cc and bcc",
		                          SEND_MAX_RCPTS);
	return 0;
}

static int utf8_field(json_t *b, const char *field, size_t max, const char **out,
                      struct http_problem *p)
{
	if (http_json_string(b, field, 0, 0, max, out, p) < 0)
		return -1;
	if (*out && !mime_utf8_valid(*out, strlen(*out)))
		return http_problem_field(p, field, "not UTF-8");
	return 0;
}

static int contents(json_t *b, struct send_req *q, struct http_problem *p)
{
	const char *s;

	if (utf8_field(b, "subject", SEND_SUBJECT_MAX, &q->subject, p) < 0 ||
	    utf8_field(b, "text", (size_t)-1 / 2, &q->text, p) < 0 ||
	    utf8_field(b, "html", (size_t)-1 / 2, &q->html, p) < 0)
		return -1;
	for (s = q->subject; s && *s; s++)
		if ((unsigned char)*s < 32)
			return http_problem_field(p, "subject",
			                          "one line without control characters");
	if (http_json_string(b, "template", 0, 1, 128, &q->tmpl, p) < 0)
		return -1;
	if (q->tmpl && (q->subject || q->text || q->html))
		return http_problem_field(p,
		                          q->subject ? "subject"
		                          : q->text  ? "text"
		                                     : "html",
		                          "not with template (the template has the content)");
	if (q->tmpl && !store_tmpl_name_valid(q->tmpl))
		return http_problem_field(p, "template", "not a template name");
	q->vars = json_object_get(b, "variables");
	if (q->vars && !json_is_null(q->vars) && !json_is_object(q->vars))
		return http_problem_field(p, "variables", "expected an object");
	if (q->vars && json_is_null(q->vars))
		q->vars = NULL;
	return 0;
}

static int headers(json_t *b, struct send_req *q, struct http_problem *p)
{
	json_t *h = json_object_get(b, "headers"), *v;
	const char *name, *why;
	size_t i = 0;

	if (!h || json_is_null(h))
		return 0;
	if (!json_is_object(h) || json_object_size(h) > SEND_MAX_HEADERS)
		return http_problem_field(p, "headers", "expected an object of at most %d strings",
		                          SEND_MAX_HEADERS);
	q->headers = xcalloc(json_object_size(h) + 1, sizeof(*q->headers));
	json_object_foreach(h, name, v)
	{
		if (!json_is_string(v) || !mime_header_ok(name, json_string_value(v), &why))
			return http_problem_field(p, "headers", "%s: %s", name,
			                          json_is_string(v) ? why : "expected a string");
		q->headers[i++] = (struct mime_header){name, json_string_value(v)};
		q->n_headers = i;
	}
	return 0;
}

/* type/subtype, each a token of RFC 2045. */
static int content_type_ok(const char *s)
{
	const char *slash = strchr(s, '/');
	size_t n = strlen(s);

	if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/') || n > 127)
		return 0;
	for (; *s; s++)
		if (*s <= 32 || *s >= 127 || (*s != '/' && strchr("()<>@,;:\\\"[]?=", *s)))
			return 0;
	return 1;
}

static int cid_ok(const char *s)
{
	for (; *s; s++)
		if (*s <= 32 || *s >= 127 || strchr("<>\"\\", *s))
			return 0;
	return 1;
}

static int part_strings(json_t *a, const char *f, struct mime_part *m, struct http_problem *p)
{
	char name[96];
	const char *fn = NULL;

	snprintf(name, sizeof(name), "%s.content_type", f);
	if (http_json_string(a, "content_type", 0, 3, 127, &m->content_type, p) < 0 ||
	    (m->content_type && !content_type_ok(m->content_type)))
		return http_problem_field(p, name, "expected type/subtype");
	if (!m->content_type)
		m->content_type = "application/octet-stream";
	snprintf(name, sizeof(name), "%s.filename", f);
	if (utf8_field(a, "filename", SEND_FILENAME_MAX, &fn, p) < 0 || (fn && !*fn))
		return http_problem_field(p, name, "expected 1 to %d bytes of UTF-8",
		                          SEND_FILENAME_MAX);
	for (m->filename = fn; fn && *fn; fn++)
		if ((unsigned char)*fn < 32 || *fn == '/')
			return http_problem_field(p, name, "no control characters or '/'");
	snprintf(name, sizeof(name), "%s.content_id", f);
	if (http_json_string(a, "content_id", 0, 1, SEND_CID_MAX, &m->content_id, p) < 0 ||
	    (m->content_id && !cid_ok(m->content_id)))
		return http_problem_field(p, name, "expected printable ASCII without <>\"\\");
	return 0;
}

static int one_part(json_t *a, size_t i, struct mime_part *m, struct http_problem *p)
{
	static const char *const known[] = {"filename", "content_type", "content", "content_id",
	                                    NULL};
	char f[48], name[128];
	const char *b64 = NULL;
	long n;

	snprintf(f, sizeof(f), "attachments[%zu]", i);
	if (!json_is_object(a))
		return http_problem_field(p, f, "expected an object");
	if (http_json_known(a, known, p) < 0) {
		snprintf(name, sizeof(name), "%s.%s", f, p->field);
		return http_problem_field(p, name, "unknown field");
	}
	if (part_strings(a, f, m, p) < 0)
		return -1;
	snprintf(name, sizeof(name), "%s.content", f);
	if (http_json_string(a, "content", 1, 0, (size_t)-1 / 2, &b64, p) < 0)
		return http_problem_field(p, name, "required: the bytes in base64");
	m->data = xmalloc(strlen(b64) / 4 * 3 + 4);
	n = base64_decode(b64, strlen(b64), (unsigned char *)m->data, strlen(b64) / 4 * 3 + 4);
	if (n < 0)
		return http_problem_field(p, name, "not base64");
	m->len = (size_t)n;
	return 0;
}

static int attachments(json_t *b, struct send_req *q, struct http_problem *p)
{
	json_t *v = json_object_get(b, "attachments"), *a;
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > SEND_MAX_PARTS)
		return http_problem_field(p, "attachments", "expected an array of at most %d",
		                          SEND_MAX_PARTS);
	q->parts = xcalloc(json_array_size(v) + 1, sizeof(*q->parts));
	json_array_foreach(v, i, a)
	{
		q->n_parts = i + 1;
		if (one_part(a, i, &q->parts[i], p) < 0)
			return -1;
	}
	return 0;
}

static int tags_meta(json_t *b, struct send_req *q, struct http_problem *p)
{
	json_t *tags = NULL, *meta = json_object_get(b, "metadata"), *t;
	size_t i;

	if (http_json_strings(b, "tags", 0, EVENT_TAGS_MAX, EVENT_TAG_MAX, &tags, p) < 0)
		return -1;
	if (tags) {
		q->tags = xcalloc(json_array_size(tags) + 1, sizeof(*q->tags));
		json_array_foreach(tags, i, t) q->tags[q->n_tags++] = json_string_value(t);
	}
	if (meta && !json_is_null(meta)) {
		if (!json_is_object(meta))
			return http_problem_field(p, "metadata", "expected an object");
		q->metadata = json_dumps(meta, JSON_COMPACT);
		if (!q->metadata || strlen(q->metadata) > EVENT_METADATA_MAX)
			return http_problem_field(p, "metadata", "at most %d bytes as JSON",
			                          EVENT_METADATA_MAX);
	}
	return 0;
}

static int track(json_t *b, struct send_req *q, struct http_problem *p)
{
	static const char *const known[] = {"opens", "clicks", NULL};
	json_t *t = json_object_get(b, "track");

	if (http_json_bool(b, "unsubscribe", 0, &q->unsubscribe, p) < 0)
		return -1;
	if (!t || json_is_null(t))
		return 0;
	if (!json_is_object(t))
		return http_problem_field(p, "track",
		                          "expected {\"opens\": bool, \"clicks\": bool}");
	if (http_json_known(t, known, p) < 0)
		return http_problem_field(p, "track", "unknown member %s", p->field);
	if (http_json_bool(t, "opens", 0, &q->track_opens, p) < 0 ||
	    http_json_bool(t, "clicks", 0, &q->track_clicks, p) < 0)
		return http_problem_field(p, "track", "opens and clicks are true or false");
	return 0;
}

static int batch_one(json_t *r, size_t i, struct send_batch_rcpt *out, struct http_problem *p)
{
	static const char *const known[] = {"to", "variables", NULL};
	char f[48];

	snprintf(f, sizeof(f), "recipients[%zu]", i);
	if (!json_is_object(r) || http_json_known(r, known, p) < 0)
		return http_problem_field(p, f, "expected {\"to\", \"variables\"}");
	snprintf(f, sizeof(f), "recipients[%zu].to", i);
	if (!json_object_get(r, "to"))
		return http_problem_field(p, f, "required");
	if (one_addr(json_object_get(r, "to"), f, &out->to, p) < 0)
		return -1;
	out->vars = json_object_get(r, "variables");
	if (out->vars && json_is_null(out->vars))
		out->vars = NULL;
	snprintf(f, sizeof(f), "recipients[%zu].variables", i);
	if (out->vars && !json_is_object(out->vars))
		return http_problem_field(p, f, "expected an object");
	return 0;
}

static int batch(json_t *b, struct send_req *q, struct http_problem *p)
{
	json_t *v = json_object_get(b, "recipients"), *r;
	size_t i;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > SEND_MAX_RCPTS)
		return http_problem_field(p, "recipients", "expected an array of 1 to %d",
		                          SEND_MAX_RCPTS);
	if (q->n_to || q->n_cc || q->n_bcc)
		return http_problem_field(
		    p,
		    q->n_to   ? "to"
		    : q->n_cc ? "cc"
		              : "bcc",
		    "not with recipients (each recipient is its own message)");
	q->batch = xcalloc(json_array_size(v), sizeof(*q->batch));
	json_array_foreach(v, i, r)
	{
		if (batch_one(r, i, &q->batch[i], p) < 0)
			return -1;
		q->n_batch = i + 1;
	}
	return 0;
}

int send_req_parse(json_t *b, struct send_req *q, struct http_problem *p)
{
	memset(q, 0, sizeof(*q));
	q->body = b;
	if (http_json_known(b, known_fields, p) < 0 || addresses(b, q, p) < 0 ||
	    contents(b, q, p) < 0 || headers(b, q, p) < 0 || attachments(b, q, p) < 0 ||
	    tags_meta(b, q, p) < 0 || track(b, q, p) < 0 || batch(b, q, p) < 0)
		return -1;
	if (!q->n_batch && !q->n_to && !q->n_cc && !q->n_bcc)
		return http_problem_field(p, "to", "required (or recipients)");
	if (!q->tmpl && !q->text && !q->html && !q->n_parts)
		return http_problem_field(p, "text",
		                          "required: text, html, attachments or template");
	return 0;
}

void send_req_free(struct send_req *q)
{
	size_t i;

	for (i = 0; i < q->n_parts; i++)
		free((void *)q->parts[i].data);
	free(q->parts);
	free(q->to);
	free(q->cc);
	free(q->bcc);
	free(q->headers);
	free(q->tags);
	free(q->metadata);
	free(q->batch);
}
