/*
 * spool_steer: hold, release and delete queued recipients, a slice at a
 * time (spool.h has the contract). A slice is worked in three passes:
 *
 *   1. read each message and pick its recipients (spool_select rules);
 *   2. DELETE with a journal: write every picked recipient to the
 *      deletion journal and fdatasync it, before anything is dropped, so
 *      that a deletion never takes effect unrecorded (a crash between the
 *      two leaves a journal line for a recipient still queued: the replay
 *      checks, spool_journal.c);
 *   3. append the steering records, or unlink the file, without a sync
 *      each; then one spool_sync() for the whole slice.
 *
 * Pass 1 is spool_steer_read(), 2 and 3 spool_steer_write(): a server
 * marks in its index what it is about to change between the two, so that
 * no attempt starts on a recipient being held or deleted.
 *
 * A message deleted meanwhile is skipped (or reported, when named by ID).
 * An unreadable one named by ID can still be deleted: an operator must be
 * able to remove what cannot be read; otherwise it is left for recovery to
 * quarantine.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "spool/spool_int.h"

struct spool_steer {
	struct spool *sp;
	struct spool_steer_opts o;
	char *domain;
	char **names;
	size_t n, next;
	int by_id;
};

struct spool_steer *spool_steer_begin(struct spool *sp, const struct spool_steer_opts *o,
                                      char **err)
{
	struct spool_steer *st = xcalloc(1, sizeof(*st));
	size_t i;

	st->sp = sp;
	st->o = *o;
	st->domain = o->domain ? xstrdup(o->domain) : NULL;
	st->o.domain = st->domain;
	st->by_id = o->ids != NULL;
	if (st->by_id) {
		st->names = xcalloc(o->n_ids ? o->n_ids : 1, sizeof(*st->names));
		for (i = 0; i < o->n_ids; i++)
			st->names[i] = xstrdup(o->ids[i]);
		st->n = o->n_ids;
	} else if (spool_list_dir(sp, "queue", &st->names, &st->n, err) < 0) {
		spool_steer_end(st);
		return NULL;
	}
	st->o.ids = NULL; /* the caller's; st->names holds copies */
	return st;
}

size_t spool_steer_total(const struct spool_steer *st)
{
	return st->n;
}

size_t spool_steer_done(const struct spool_steer *st)
{
	return st->next;
}

void spool_steer_end(struct spool_steer *st)
{
	if (!st)
		return;
	spool_free_names(st->names, st->n);
	free(st->domain);
	free(st);
}

static void spool_steered_free_one(struct spool_steered *v)
{
	envelope_free(v->env);
	free(v->idx);
	free(v->error);
}

void spool_steered_free(struct spool_steered *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		spool_steered_free_one(&v[i]);
	free(v);
}

/* ---- pass 1: read and pick ---- */

static int picks(const struct spool_steer *st, const struct rcpt *r)
{
	struct spool_filter f = {st->o.domain, NULL, 0};

	switch (st->o.op) {
	case SPOOL_HOLD:
		f.states = SPOOL_SEL_PENDING | SPOOL_SEL_DEFERRED;
		break;
	case SPOOL_RELEASE:
		f.states = SPOOL_SEL_HELD;
		break;
	case SPOOL_DELETE:
		break;
	}
	return spool_filter_rcpt(&f, r);
}

static void pick(const struct spool_steer *st, struct spool_steered *v)
{
	size_t i;

	v->idx = xcalloc(v->env->n_rcpts ? v->env->n_rcpts : 1, sizeof(*v->idx));
	for (i = 0; i < v->env->n_rcpts; i++)
		if (picks(st, &v->env->rcpts[i]))
			v->idx[v->n++] = i;
}

/* Reads one message into v. 1: report it, 0: skip it, -1: environment error. */
static int read_one(struct spool_steer *st, const char *name, struct spool_steered *v, char **err)
{
	char *why = NULL;
	enum spool_load_res res =
	    id_valid(name) ? spool_load_at(st->sp->queue_fd, name, &v->env, &why) : LOAD_GONE;

	snprintf(v->id, sizeof(v->id), "%.*s", ID_LEN, name);
	switch (res) {
	case LOAD_OK:
		pick(st, v);
		return v->n > 0 || st->by_id;
	case LOAD_GONE:
		v->error = id_valid(name) ? spool_errf("no message %s", name)
		                          : spool_errf("invalid queue ID %s", name);
		break;
	case LOAD_BAD:
		v->unreadable = 1;
		v->error = spool_errf("%s: %s", name, why);
		if (!st->by_id)
			log_warn("queue=%s event=spool_unreadable reason=%s", name, log_q(why));
		break;
	case LOAD_IOERR:
		*err = spool_errf("%s: %s", name, why);
		free(why);
		return -1;
	}
	free(why);
	return st->by_id;
}

/* ---- pass 3: write ---- */

static int all_open_picked(const struct spool_steered *v)
{
	size_t i, open = 0;

	for (i = 0; i < v->env->n_rcpts; i++)
		open += (size_t)rcpt_is_open(&v->env->rcpts[i]);
	return open == v->n;
}

static int drop(struct spool_steer *st, struct spool_steered *v, char **why)
{
	size_t i;

	if (!v->env || all_open_picked(v)) {
		if (spool_unlink_message(st->sp, v->id, 0, why) < 0)
			return errno == ENOENT ? 1 : -1; /* gone meanwhile: nothing left to drop */
		v->removed = 1;
		return 0;
	}
	for (i = 0; i < v->n; i++)
		v->env->rcpts[v->idx[i]].deleted = 1;
	return spool_set_rcpt_steering(st->sp, v->id, v->env->rcpts, v->idx, v->n, 0, why);
}

static int hold_or_release(struct spool_steer *st, struct spool_steered *v, char **why)
{
	int64_t now = st->o.now;
	size_t i;

	for (i = 0; i < v->n; i++) {
		struct rcpt *r = &v->env->rcpts[v->idx[i]];
		if (st->o.op == SPOOL_HOLD) {
			r->held_since = now > 0 ? now : 1;
		} else {
			r->held_secs += now > r->held_since ? (uint64_t)(now - r->held_since) : 0;
			r->held_since = 0;
		}
	}
	return spool_set_rcpt_steering(st->sp, v->id, v->env->rcpts, v->idx, v->n, 0, why);
}

/* One message's records or unlink. A failure is the message's (reported
 * in v->error, the slice goes on). */
static void write_one(struct spool_steer *st, struct spool_steered *v)
{
	char *why = NULL;
	int rc;

	if (!v->env && !(st->o.op == SPOOL_DELETE && v->unreadable))
		return; /* gone, or unreadable and not to be deleted */
	if (v->env && v->n == 0)
		return;
	rc = st->o.op == SPOOL_DELETE ? drop(st, v, &why) : hold_or_release(st, v, &why);
	free(v->error);
	v->error = NULL;
	if (rc == 0)
		return;
	v->error = rc > 0 ? spool_errf("no message %s", v->id) : why;
	if (rc > 0)
		free(why);
	v->n = 0;
}

/* ---- the slice ---- */

static int journal_slice(struct spool_steer *st, struct spool_steered *v, size_t n, char **err)
{
	if (!st->o.journal || st->o.op != SPOOL_DELETE)
		return 0;
	return spool_journal_write(st->sp, v, n, st->o.now, err);
}

long spool_steer_read(struct spool_steer *st, size_t max, struct spool_steered **out, size_t *n_out,
                      char **err)
{
	int rc;

	while (st->next < st->n && max-- > 0) {
		struct spool_steered v;
		memset(&v, 0, sizeof(v));
		if ((rc = read_one(st, st->names[st->next++], &v, err)) < 0) {
			spool_steered_free_one(&v);
			return -1;
		}
		if (rc == 0) {
			spool_steered_free_one(&v);
			continue;
		}
		*out = xrealloc(*out, (*n_out + 1) * sizeof(**out));
		(*out)[(*n_out)++] = v;
	}
	return (long)(st->n - st->next);
}

int spool_steer_write(struct spool_steer *st, struct spool_steered *v, size_t n, char **err)
{
	size_t i;

	if (n == 0)
		return 0;
	if (journal_slice(st, v, n, err) < 0)
		return -1;
	for (i = 0; i < n; i++)
		write_one(st, &v[i]);
	return spool_sync(st->sp, err);
}

long spool_steer_step(struct spool_steer *st, size_t max, struct spool_steered **out, size_t *n_out,
                      char **err)
{
	size_t first = *n_out;
	long left = spool_steer_read(st, max, out, n_out, err);

	if (left < 0 || spool_steer_write(st, *out + first, *n_out - first, err) < 0)
		return -1;
	return left;
}
