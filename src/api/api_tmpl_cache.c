/*
 * api_tmpl_cache: compiled templates for the routes that render them (the
 * preview here, the message-sending route later), and the rendering of
 * one recipient's message from one. The contract is in api.h.
 *
 * An entry is compiled once and then only read, so renderings need no
 * lock; the cache's lock guards the table and the reference counts, and
 * is never held while the database is read or a template compiled. Two
 * workers that miss the same entry at once may both compile it; the
 * second to finish replaces the first (both copies are correct).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "log/log.h"
#include "store/store.h"
#include "util/util.h"

struct api_template {
	char account[COUNTER_ACCOUNT_MAX + 1];
	char name[STORE_TMPL_NAME_MAX + 1];
	int64_t revision;
	struct tmpl *part[API_PARTS]; /* NULL: no such part */
	size_t bytes;                 /* of template text, for the cache's bound */
	atomic_int refs;              /* the cache's table holds one while it lists t */
	/* The cache's, under its lock: */
	uint64_t checked_ms; /* monotonic: when the revision was last confirmed */
	uint64_t used;       /* the cache's clock when last handed out */
};

struct api_tmpl_cache {
	struct store *st;
	pthread_mutex_t lock;
	struct api_template *v[API_TMPL_CACHE_MAX];
	size_t n, bytes;
	uint64_t clock;
};

static const char *const PART_NAMES[API_PARTS] = {"subject", "text", "html"};

const char *api_part_name(enum api_part part)
{
	return part < API_PARTS ? PART_NAMES[part] : "?";
}

void api_part_limits(enum api_part part, struct tmpl_limits *l)
{
	tmpl_limits_default(l);
	l->max_template = part == API_PART_SUBJECT ? STORE_TMPL_SUBJECT_MAX : STORE_TMPL_PART_MAX;
	if (part == API_PART_SUBJECT)
		l->max_output = API_SUBJECT_OUTPUT_MAX;
}

int api_part_compile(enum api_part part, const char *text, struct tmpl **out,
                     struct tmpl_error *err)
{
	struct tmpl_limits l;

	api_part_limits(part, &l);
	*out = tmpl_compile(text, strlen(text), &l, err);
	return *out ? 0 : -1;
}

/* ---- templates ------------------------------------------------------------------- */

static void template_free(struct api_template *t)
{
	for (int i = 0; i < API_PARTS; i++)
		tmpl_free(t->part[i]);
	free(t);
}

/* Compiles what the store holds; NULL with *err naming the part. */
static struct api_template *template_new(const char *account, const struct store_tmpl *s,
                                         char **err)
{
	struct api_template *t = xcalloc(1, sizeof(*t));
	const char *text[API_PARTS] = {s->subject, s->text, s->html};
	struct tmpl_error e;

	snprintf(t->account, sizeof(t->account), "%s", account);
	snprintf(t->name, sizeof(t->name), "%s", s->name);
	t->revision = s->revision;
	for (int i = 0; i < API_PARTS; i++) {
		if (!text[i])
			continue;
		t->bytes += strlen(text[i]);
		if (api_part_compile((enum api_part)i, text[i], &t->part[i], &e) < 0) {
			*err = xasprintf("template '%s': %s: line %u, column %u: %s", s->name,
			                 PART_NAMES[i], e.line, e.column, e.message);
			template_free(t);
			return NULL;
		}
	}
	return t;
}

int api_template_has(const struct api_template *t, enum api_part part)
{
	return part < API_PARTS && t->part[part] != NULL;
}

int64_t api_template_revision(const struct api_template *t)
{
	return t->revision;
}

/* ---- the table (callers hold c->lock) ------------------------------------------------- */

static size_t find(struct api_tmpl_cache *c, const char *account, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (!strcmp(c->v[i]->name, name) && !strcmp(c->v[i]->account, account))
			break;
	return i;
}

static void drop_locked(struct api_tmpl_cache *c, size_t i)
{
	c->bytes -= c->v[i]->bytes;
	api_template_unref(c->v[i]);
	c->v[i] = c->v[--c->n];
}

static void evict_locked(struct api_tmpl_cache *c, size_t bytes)
{
	while (c->n > 0 &&
	       (c->n == API_TMPL_CACHE_MAX || c->bytes + bytes > API_TMPL_CACHE_BYTES)) {
		size_t lru = 0;
		for (size_t i = 1; i < c->n; i++)
			if (c->v[i]->used < c->v[lru]->used)
				lru = i;
		drop_locked(c, lru);
	}
}

/* Puts t in (replacing an entry of its name) and hands it out. */
static void insert_locked(struct api_tmpl_cache *c, struct api_template *t)
{
	size_t i = find(c, t->account, t->name);

	if (i < c->n)
		drop_locked(c, i);
	evict_locked(c, t->bytes);
	atomic_init(&t->refs, 2); /* the table's and the caller's */
	t->checked_ms = clock_mono_ms();
	t->used = ++c->clock;
	c->v[c->n++] = t;
	c->bytes += t->bytes;
}

/* The entry, handed out (a reference taken) when fresh; else NULL and
 * *rev its revision (0 when there is no entry). */
static struct api_template *lookup(struct api_tmpl_cache *c, const char *account, const char *name,
                                   int64_t *rev)
{
	struct api_template *t = NULL;
	size_t i;

	pthread_mutex_lock(&c->lock);
	i = find(c, account, name);
	*rev = i < c->n ? c->v[i]->revision : 0;
	if (i < c->n && clock_mono_ms() - c->v[i]->checked_ms < API_TMPL_FRESH_MS) {
		t = c->v[i];
		atomic_fetch_add(&t->refs, 1);
		t->used = ++c->clock;
	}
	pthread_mutex_unlock(&c->lock);
	return t;
}

/* The entry of revision rev, confirmed fresh now and handed out; NULL if
 * it is not there any more. */
static struct api_template *confirm(struct api_tmpl_cache *c, const char *account, const char *name,
                                    int64_t rev)
{
	struct api_template *t = NULL;
	size_t i;

	pthread_mutex_lock(&c->lock);
	i = find(c, account, name);
	if (i < c->n && c->v[i]->revision == rev) {
		t = c->v[i];
		atomic_fetch_add(&t->refs, 1);
		t->used = ++c->clock;
		t->checked_ms = clock_mono_ms();
	}
	pthread_mutex_unlock(&c->lock);
	return t;
}

/* ---- the interface ------------------------------------------------------------------------- */

struct api_tmpl_cache *api_tmpl_cache_new(struct store *st)
{
	struct api_tmpl_cache *c = xcalloc(1, sizeof(*c));

	c->st = st;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void api_tmpl_cache_free(struct api_tmpl_cache *c)
{
	if (!c)
		return;
	while (c->n > 0)
		drop_locked(c, c->n - 1);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void api_tmpl_cache_forget(struct api_tmpl_cache *c, const char *account, const char *name)
{
	size_t i;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if ((i = find(c, account, name)) < c->n)
		drop_locked(c, i);
	pthread_mutex_unlock(&c->lock);
}

/* The count is atomic: a renderer lets go of t without the cache's lock. */
void api_template_unref(struct api_template *t)
{
	if (t && atomic_fetch_sub(&t->refs, 1) == 1)
		template_free(t);
}

/* Reads and compiles the stored template, and puts it in the cache. */
static int load(struct api_tmpl_cache *c, const char *account, const char *name,
                struct api_template **out, char **err)
{
	struct store_tmpl s = {0};
	struct api_template *t;
	int rc = store_tmpl_get(c->st, account, name, &s, err);

	if (rc == STORE_TMPL_NOT_FOUND)
		return API_TMPL_NOT_FOUND;
	if (rc < 0)
		return -1;
	t = template_new(account, &s, err);
	store_tmpl_clear(&s);
	if (!t)
		return API_TMPL_BROKEN;
	pthread_mutex_lock(&c->lock);
	insert_locked(c, t);
	pthread_mutex_unlock(&c->lock);
	*out = t;
	return 0;
}

int api_tmpl_get(struct api_tmpl_cache *c, const char *account, const char *name,
                 struct api_template **out, char **err)
{
	int64_t cached, now;
	int rc;

	if ((*out = lookup(c, account, name, &cached)))
		return 0;
	if (cached) {
		rc = store_tmpl_revision(c->st, account, name, &now, err);
		if (rc == STORE_TMPL_NOT_FOUND) {
			api_tmpl_cache_forget(c, account, name);
			return API_TMPL_NOT_FOUND;
		}
		if (rc < 0)
			return -1;
		if (now == cached && (*out = confirm(c, account, name, now)))
			return 0;
	}
	return load(c, account, name, out, err);
}

/* ---- rendering ------------------------------------------------------------------------------ */

static void add_warnings(struct api_rendered *r, enum api_part part, const struct tmpl_result *res)
{
	struct api_warning *w;

	r->warnings_truncated |= res->warnings_truncated;
	for (size_t i = 0; i < res->n_warnings; i++) {
		if (r->n_warnings == API_MAX_WARNINGS) {
			r->warnings_truncated = 1;
			return;
		}
		w = &r->warnings[r->n_warnings++];
		w->part = part;
		w->kind = res->warnings[i].kind;
		snprintf(w->name, sizeof(w->name), "%s", res->warnings[i].name);
	}
}

/* What a part may carry in a message: no NUL anywhere, and the subject on
 * one line (its control characters, line breaks first, become spaces). */
static void make_safe(enum api_part part, struct buf *b)
{
	size_t o = 0;

	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = (unsigned char)b->data[i];
		if (c == '\0')
			continue;
		if (part == API_PART_SUBJECT && ((c < 0x20 && c != '\t') || c == 0x7f))
			c = ' ';
		b->data[o++] = (char)c;
	}
	b->len = o;
	b->data[o] = '\0';
}

int api_template_render(const struct api_template *t, const json_t *vars, struct api_rendered *out)
{
	struct tmpl_result res;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < API_PARTS; i++)
		buf_init(&out->out[i]);
	for (int i = 0; i < API_PARTS; i++) {
		if (!t->part[i])
			continue;
		out->has[i] = 1;
		if (tmpl_render(t->part[i], vars, i == API_PART_HTML ? TMPL_HTML : TMPL_TEXT,
		                &res) < 0) {
			out->failed = (enum api_part)i;
			out->err = res.err;
			tmpl_result_free(&res);
			return -1;
		}
		add_warnings(out, (enum api_part)i, &res);
		buf_free(&out->out[i]);
		out->out[i] = res.out; /* taken over: res must not free it */
		buf_init(&res.out);
		tmpl_result_free(&res);
		make_safe((enum api_part)i, &out->out[i]);
	}
	return 0;
}

void api_rendered_free(struct api_rendered *r)
{
	for (int i = 0; i < API_PARTS; i++)
		buf_free(&r->out[i]);
}
