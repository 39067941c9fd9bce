/*
 * spool_journal: DATA_DIR/spool/deleted, the recipients `queue delete`
 * dropped while no server ran, so that the server's own log still names
 * every one of them (docs/queue.md says why there and not elsewhere).
 *
 * Written by the CLI (which holds the spool lock meanwhile: no server can
 * start and replay a journal still being written) before each slice's
 * deletions, and fdatasync'd: a deletion never takes effect unrecorded.
 * Read once by the next server (spool_journal_replay), which logs the
 * lines whose deletion did take effect and removes the file. A crash
 * after the log lines and before the unlink logs them again at the next
 * start: at least once, as everything else here.
 *
 * Lines are decoded by spool_format.c (PURE, fuzzed); a line over
 * SPOOL_LINE_MAX or malformed is skipped and counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "spool/spool_int.h"

#define JOURNAL "deleted"

int spool_journal_write(struct spool *sp, const struct spool_steered *v, size_t n, int64_t now,
                        char **err)
{
	struct buf b;
	size_t i, k;
	int fd, rc = -1;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		if (!v[i].env && v[i].unreadable)
			spool_journal_encode(now, v[i].id, 0, "", &b);
		for (k = 0; v[i].env && k < v[i].n; k++)
			spool_journal_encode(now, v[i].id, v[i].idx[k],
			                     v[i].env->rcpts[v[i].idx[k]].addr, &b);
	}
	if (b.len == 0) {
		buf_free(&b);
		return 0;
	}
	fd = openat(sp->dir_fd, JOURNAL, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	            0600);
	if (fd >= 0 && spool_write_all(fd, b.data, b.len) == 0 && spool_fsync(sp, fd, 1) == 0)
		rc = 0;
	else
		*err = spool_errf("%s/" JOURNAL ": %s", sp->path, strerror(errno));
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	return rc;
}

/* The replay's memory of the message last looked at: the lines of one
 * message follow each other. */
struct replay {
	struct spool *sp;
	spool_journal_fn fn;
	void *arg;
	char id[ID_LEN + 1];
	struct envelope *env; /* NULL: the message is gone */
	long logged;
	size_t skipped;
};

/* 1 if the deletion took effect: the message is gone, or the recipient
 * is marked deleted (a crash may have come between journal and
 * deletion). */
static int took_effect(struct replay *rp, const struct spool_journal_line *l)
{
	char *why = NULL;

	if (strcmp(rp->id, l->id) != 0) {
		envelope_free(rp->env);
		rp->env = NULL;
		memcpy(rp->id, l->id, sizeof(rp->id));
		if (spool_load_at(rp->sp->queue_fd, l->id, &rp->env, &why) != LOAD_OK)
			rp->env = NULL; /* gone (or unreadable: recovery's business) */
		free(why);
	}
	if (!rp->env)
		return 1;
	return l->idx < rp->env->n_rcpts && rp->env->rcpts[l->idx].deleted;
}

static void replay_line(struct replay *rp, const char *line, size_t n)
{
	struct spool_journal_line l;

	if (spool_journal_decode(line, n, &l) < 0) {
		rp->skipped++;
		return;
	}
	if (took_effect(rp, &l)) {
		rp->fn(rp->arg, l.when, l.id, l.addr);
		rp->logged++;
	} else {
		rp->skipped++;
	}
	free(l.addr);
}

/* Feeds every complete line of fp to replay_line; an overlong one is
 * skipped whole, a last one without its '\n' (torn) too. */
static void replay_lines(struct replay *rp, FILE *fp)
{
	char *line = xmalloc(SPOOL_LINE_MAX + 2);
	int overlong = 0;

	while (fgets(line, SPOOL_LINE_MAX + 2, fp)) {
		size_t n = strlen(line);
		int whole = n > 0 && line[n - 1] == '\n';
		if (whole && !overlong)
			replay_line(rp, line, n - 1);
		else if (whole || feof(fp))
			rp->skipped++;
		overlong = !whole;
	}
	free(line);
}

long spool_journal_replay(struct spool *sp, spool_journal_fn fn, void *arg, char **err)
{
	struct replay rp = {sp, fn, arg, "", NULL, 0, 0};
	int fd = openat(sp->dir_fd, JOURNAL, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	FILE *fp;

	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || !(fp = fdopen(fd, "r"))) {
		*err = spool_errf("%s/" JOURNAL ": %s", sp->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	replay_lines(&rp, fp);
	fclose(fp);
	envelope_free(rp.env);
	if (unlinkat(sp->dir_fd, JOURNAL, 0) < 0)
		log_warn("event=journal_remove_error error=%s", log_q(strerror(errno)));
	if (rp.skipped)
		log_info("event=journal_replayed logged=%ld skipped=%zu", rp.logged, rp.skipped);
	return rp.logged;
}
