/*
 * api_common: what the routes of src/api/ share: answers made on a worker
 * and sent from the loop, opaque pagination cursors, and the limit and
 * after of a listing's query.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "util/util.h"

/* ---- answers ------------------------------------------------------------------- */

void api_answer_json(struct api_answer *a, int status, json_t *body)
{
	char *text =
	    body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))
	         : NULL;

	json_decref(body);
	free(a->body);
	a->body = NULL;
	if (!text) {
		a->status = 500; /* api_answer_send says so */
		return;
	}
	/* A newline, so that curl output ends the line. */
	a->len = strlen(text) + 1;
	a->body = xrealloc(text, a->len + 1);
	memcpy(a->body + a->len - 1, "\n", 2);
	a->status = status;
}

static json_t *error_json(const char *code, const char *message)
{
	return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

void api_answer_error(struct api_answer *a, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_answer_json(a, status, error_json(code, msg));
}

void api_answer_problem(struct api_answer *a, const struct http_problem *p, json_t *extra)
{
	json_t *body = error_json(p->code, p->message), *err = json_object_get(body, "error");
	const char *key = strcmp(p->code, "invalid_parameter") == 0 ? "parameter" : "field";

	if (err && p->field[0])
		json_object_set_new(err, key, json_string(p->field));
	if (err && extra)
		json_object_update(err, extra);
	json_decref(extra);
	api_answer_json(a, p->status, body);
}

void api_answer_send(struct http_req *r, struct api_answer *a)
{
	if (a->body)
		http_reply(r, a->status, "application/json", a->body, a->len);
	else
		http_reply_error(r, 500, "internal_error", "cannot encode the answer");
	free(a->body);
	a->body = NULL;
}

/* ---- cursors: base64url without padding ------------------------------------------ */

char *api_cursor_encode(const char *key)
{
	size_t n = strlen(key);
	char *out = xmalloc(base64_encoded_len(n) + 1);
	size_t len = base64_encode((const unsigned char *)key, n, out);

	while (len > 0 && out[len - 1] == '=')
		out[--len] = '\0';
	for (char *c = out; *c; c++)
		*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	return out;
}

int api_cursor_decode(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s), padded = (n + 3) / 4 * 4;
	char *b64;
	long len;

	if (n == 0 || n % 4 == 1 || padded > (cap + 2) / 3 * 4 + 4 ||
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != n)
		return -1;
	b64 = xmalloc(padded + 1);
	for (size_t i = 0; i < padded; i++)
		b64[i] = i >= n ? '=' : s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	b64[padded] = '\0';
	len = base64_decode(b64, padded, (unsigned char *)out, cap - 1);
	free(b64);
	if (len <= 0 || memchr(out, '\0', (size_t)len))
		return -1;
	out[len] = '\0';
	return 0;
}

/* ---- listings ---------------------------------------------------------------------- */

int api_list_query(struct http_req *r, size_t def, size_t max, size_t *limit, char *after,
                   size_t cap, struct http_problem *p)
{
	int64_t n = (int64_t)def;
	const char *cursor = http_req_query(r, "after");

	if (http_query_int(r, "limit", 1, (int64_t)max, &n, p) < 0)
		return -1;
	*limit = (size_t)n;
	after[0] = '\0';
	if (cursor && cursor[0] && api_cursor_decode(cursor, after, cap) < 0) {
		http_problem_param(p, "after", "not a cursor: pass the \"next\" of the last page");
		return -1;
	}
	return 0;
}
