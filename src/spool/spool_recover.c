/*
 * spool_recover.c: what a server does with its spool once, at start.
 *
 * tmp/ is emptied: a message leaves tmp/ by the rename that precedes its
 * 250, so nothing there was ever acknowledged. Every entry of queue/ is
 * then read once: a good message is counted and handed to the caller (so
 * that the scheduler indexes it without reading it again); anything that
 * cannot be read, is not a regular file, or is not named by a queue ID is
 * moved to quarantine/ and never deleted. An error of the environment
 * (EMFILE, EACCES...) is not the file's fault: recovery stops rather than
 * quarantine good mail. docs/spool.md has the table of cases.
 *
 * In steps (begin, step, end; spool.h) so that a caller can read a large
 * queue a slice at a time; spool_recover_each() runs them in one go.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "spool/spool_int.h"

struct spool_recovery {
	struct spool *sp;
	char **names; /* queue/, as listed by begin */
	size_t n, next;
	long good;
	size_t removed, quarantined;
	int failed;
};

static void recover_error(const char *error)
{
	log_err("event=spool_recover_error error=%s", log_q(error));
}

/* tmp/: every entry removed (a directory too, if empty). */
static int recover_tmp(struct spool_recovery *rv)
{
	struct spool *sp = rv->sp;
	char **names, *err = NULL;
	size_t n, i;

	if (spool_list_dir(sp, "tmp", &names, &n, &err) < 0) {
		recover_error(err);
		free(err);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (unlinkat(sp->tmp_fd, names[i], 0) < 0 &&
		    unlinkat(sp->tmp_fd, names[i], AT_REMOVEDIR) < 0) {
			log_warn("queue=%s event=recover_tmp_remove_error error=%s",
			         log_q(names[i]), log_q(strerror(errno)));
			continue;
		}
		log_info("queue=%s event=recover_tmp_removed reason=incomplete", log_q(names[i]));
		rv->removed++;
	}
	spool_free_names(names, n);
	return 0;
}

/* queue/NAME -> quarantine/NAME (or NAME.1, NAME.2... if taken). Works for
 * any kind of entry: rename moves a FIFO, a directory or a link itself. */
static int quarantine(struct spool *sp, const char *name, const char *reason)
{
	char *to = xstrdup(name);
	int rc, i = 0;

	while ((rc = renameat2(sp->queue_fd, name, sp->quar_fd, to, RENAME_NOREPLACE)) < 0 &&
	       errno == EEXIST && ++i < 1000) {
		free(to);
		to = xasprintf("%s.%d", name, i);
	}
	if (rc < 0)
		log_err("queue=%s event=quarantine_error reason=%s error=%s", log_q(name),
		        log_q(reason), log_q(strerror(errno)));
	else
		log_warn("queue=%s event=quarantined reason=%s file=quarantine/%s", log_q(name),
		         log_q(reason), log_q(to));
	free(to);
	return rc;
}

/* One queue entry: handed over and counted if good, quarantined if not. */
static int recover_one(struct spool_recovery *rv, const char *name, spool_env_fn on_env, void *arg)
{
	struct envelope *e = NULL;
	char *why = NULL;
	enum spool_load_res res =
	    id_valid(name) ? spool_load_at(rv->sp->queue_fd, name, &e, &why) : LOAD_BAD;
	int rc = 0;

	/* Read once more before quarantining: the one in-place write to a
	 * queue file (a header marked version 3, spool_read.c) may
	 * have been read half done by a concurrent reader. */
	if (res == LOAD_BAD && id_valid(name)) {
		free(why), why = NULL;
		res = spool_load_at(rv->sp->queue_fd, name, &e, &why);
	}

	if (!why && res == LOAD_BAD)
		why = xstrdup("not a queue ID");
	if (res == LOAD_OK) {
		rv->good++;
		if (on_env)
			on_env(arg, e);
	} else if (res == LOAD_BAD && quarantine(rv->sp, name, why) == 0) {
		rv->quarantined++;
	} else if (res == LOAD_IOERR) {
		log_err("queue=%s event=spool_recover_error error=%s", log_q(name), log_q(why));
		rc = -1;
	}
	envelope_free(e);
	free(why);
	return rc;
}

struct spool_recovery *spool_recover_begin(struct spool *sp)
{
	struct spool_recovery *rv;
	char *err = NULL;

	if (atomic_load(&sp->inflight) > 0) {
		recover_error("messages are being received: recovery must run first");
		return NULL;
	}
	rv = xcalloc(1, sizeof(*rv));
	rv->sp = sp;
	if (recover_tmp(rv) < 0 || spool_list_dir(sp, "queue", &rv->names, &rv->n, &err) < 0) {
		if (err)
			recover_error(err);
		free(err);
		free(rv);
		return NULL;
	}
	return rv;
}

long spool_recover_step(struct spool_recovery *rv, size_t max, spool_env_fn on_env, void *arg)
{
	size_t stop = rv->n - rv->next < max ? rv->n : rv->next + max;

	while (!rv->failed && rv->next < stop)
		if (recover_one(rv, rv->names[rv->next++], on_env, arg) < 0)
			rv->failed = 1;
	return rv->failed ? -1 : (long)(rv->n - rv->next);
}

size_t spool_recover_total(const struct spool_recovery *rv)
{
	return rv->n;
}

long spool_recover_end(struct spool_recovery *rv)
{
	struct spool *sp;
	long good;

	if (!rv)
		return -1;
	sp = rv->sp;
	if (rv->quarantined &&
	    (spool_fsync(sp, sp->quar_fd, 0) < 0 || spool_fsync(sp, sp->queue_fd, 0) < 0))
		log_warn("event=spool_recover_fsync_error error=%s", log_q(strerror(errno)));
	good = rv->failed || rv->next < rv->n ? -1 : rv->good;
	if (good >= 0)
		log_info("event=spool_recovered messages=%ld tmp_removed=%zu "
		         "quarantined=%zu",
		         rv->good, rv->removed, rv->quarantined);
	spool_free_names(rv->names, rv->n);
	free(rv);
	return good;
}

long spool_recover_each(struct spool *sp, spool_env_fn on_env, void *arg)
{
	struct spool_recovery *rv = spool_recover_begin(sp);

	if (rv)
		spool_recover_step(rv, SIZE_MAX, on_env, arg);
	return spool_recover_end(rv);
}

long spool_recover(struct spool *sp)
{
	return spool_recover_each(sp, NULL, NULL);
}
