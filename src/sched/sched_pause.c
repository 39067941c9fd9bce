/*
 * sched_pause: `posthorn pause` and `resume`. The list lives in
 * DATA_DIR/paused (sched_pause_list.c has its bytes), so that a pause
 * outlives restarts and works the same whether a server runs or not.
 *
 * Only the CLI writes the file: it takes an flock on DATA_DIR/paused.lock
 * (two CLIs at once must not lose each other's change), reads the list,
 * changes it and replaces the file durably (temporary file, fsync, rename,
 * fsync of the directory). A running server reads it at start and when
 * the CLI tells it over the control socket (sched_pause_reload), then
 * marks each destination: a paused one starts no transaction, says QUIT
 * on its idle connections, and lets its mail wait (accepting goes on).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "sched/sched_int.h"

#define PAUSE_FILE     "paused"
#define PAUSE_FILE_MAX (1u << 20) /* bytes read at most: a damaged file costs nothing */

static char *path_of(const char *data_dir, const char *name)
{
	return xasprintf("%s/%s", data_dir, name);
}

int sched_pause_read(const char *data_dir, struct sched_pauses *out, char **err)
{
	char *path = path_of(data_dir, PAUSE_FILE), *p = xmalloc(PAUSE_FILE_MAX);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	ssize_t n = 0;
	size_t bad = 0;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (fd < 0 && errno != ENOENT) {
		*err = xasprintf("%s: %s", path, strerror(errno));
	} else if (fd >= 0 && (n = read(fd, p, PAUSE_FILE_MAX)) < 0) {
		*err = xasprintf("%s: %s", path, strerror(errno));
	} else {
		rc = 0;
		sched_pauses_parse(p, (size_t)n, out, &bad);
		if (bad)
			log_warn("event=pause_file_bad lines=%zu file=%s", bad, log_q(path));
	}
	if (fd >= 0)
		close(fd);
	free(p);
	free(path);
	return rc;
}

/* The new list, durably: written aside, fsync'd, renamed over, and the
 * directory fsync'd, so a pause survives a power cut once the CLI said so. */
static int pause_write(const char *data_dir, const struct sched_pauses *ps, char **err)
{
	char *path = path_of(data_dir, PAUSE_FILE), *tmp = path_of(data_dir, PAUSE_FILE ".new");
	struct buf b;
	int fd, dfd, rc = -1;

	buf_init(&b);
	sched_pauses_format(ps, &b);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0 &&
	    rename(tmp, path) == 0) {
		dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = dfd >= 0 && fsync(dfd) == 0 ? 0 : -1;
		if (dfd >= 0)
			close(dfd);
	}
	if (rc < 0)
		*err = xasprintf("%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	free(path);
	free(tmp);
	return rc;
}

/* 1 changed, 0 nothing to change, -1 refused (*err). */
static int pause_apply(struct sched_pauses *ps, const char *name, int pause, char **err)
{
	int changed;

	if (!name && pause) {
		changed = !ps->all;
		ps->all = 1;
		return changed;
	}
	if (!name) {
		changed = ps->all || ps->n > 0;
		sched_pauses_free(ps);
		return changed;
	}
	if (pause)
		return sched_pauses_add(ps, name);
	if (ps->all) {
		*err = xasprintf("every destination is paused (pause --all): resume --all first");
		return -1;
	}
	return sched_pauses_del(ps, name);
}

int sched_pause_change(const char *data_dir, const char *name, int pause, char **err)
{
	char *lock = path_of(data_dir, PAUSE_FILE ".lock");
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600), rc = -1;
	struct sched_pauses ps;

	memset(&ps, 0, sizeof(ps));
	if (fd < 0 || flock(fd, LOCK_EX) < 0)
		*err = xasprintf("%s: %s", lock, strerror(errno));
	else if (sched_pause_read(data_dir, &ps, err) == 0 &&
	         (rc = pause_apply(&ps, name, pause, err)) > 0 &&
	         pause_write(data_dir, &ps, err) < 0)
		rc = -1;
	sched_pauses_free(&ps);
	if (fd >= 0)
		close(fd); /* drops the lock */
	free(lock);
	return rc;
}

/* ---- the server's side ---- */

static void mark(struct sched *s, struct dest *d)
{
	int was = d->paused;

	d->paused = sched_paused(&s->pauses, d->name);
	if (d->paused && !was)
		sched_dest_quit_idle(d);
	if (!d->paused && was)
		sched_dest_pump_later(d, 0);
}

static void log_changes(const struct sched_pauses *old, const struct sched_pauses *now)
{
	size_t i;

	if (old->all != now->all)
		log_info("event=%s dest=*", now->all ? "paused" : "resumed");
	for (i = 0; i < now->n; i++)
		if (!sched_pauses_has(old, now->names[i]))
			log_info("event=paused dest=%s", log_q(now->names[i]));
	for (i = 0; i < old->n; i++)
		if (!sched_pauses_has(now, old->names[i]))
			log_info("event=resumed dest=%s", log_q(old->names[i]));
}

int sched_pause_reload(struct sched *s, char **err)
{
	struct sched_pauses now;
	struct htable_iter di;
	struct dest *d;

	if (sched_pause_read(s->conf->data_dir, &now, err) < 0)
		return -1;
	log_changes(&s->pauses, &now);
	sched_pauses_free(&s->pauses);
	s->pauses = now;
	htable_iter_init(&di, &s->dests);
	while ((d = sched_dest_next(&di)))
		mark(s, d);
	return 0;
}
