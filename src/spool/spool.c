/*
 * spool.c: opening the spool and receiving messages into it.
 *
 * Owns DATA_DIR/spool/{tmp,queue,quarantine} (kept open as directory fds,
 * so every file operation is relative to them) and, in a server, the lock
 * file that keeps a second server off the same spool. A message being
 * received is a file tmp/ID written through a bounded buffer: memory per
 * message is SPOOL_BUF_SIZE whatever the message's size.
 *
 * Threads: everything here runs on the caller's (event loop) thread, except
 * spool_write_all/spool_fsync, which the committer uses too.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "spool/spool_int.h"

char *spool_errf(const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	return b.data;
}

int spool_pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, c, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return errno = w < 0 ? errno : EIO, -1;
		c += w, n -= (size_t)w, off += (uint64_t)w;
	}
	return 0;
}

int spool_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return errno = w < 0 ? errno : EIO, -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Every fsync and fdatasync of the spool goes through here, so the
 * counter in spool_stats is exact. */
int spool_fsync(struct spool *sp, int fd, int data_only)
{
	atomic_fetch_add(&sp->fsyncs, 1);
	return data_only ? fdatasync(fd) : fsync(fd);
}

/* ---- opening ---- */

/* mkdir that makes the new entry durable: a queue directory that vanishes
 * with a power cut would take committed messages with it. */
static int mkdir_durable(struct spool *sp, const char *path, char **err)
{
	char *parent, *slash;
	int fd, rc;

	if (mkdir(path, 0700) == 0) {
		parent = xstrdup(path);
		slash = strrchr(parent, '/');
		if (slash)
			*(slash == parent ? slash + 1 : slash) = '\0';
		fd = open(slash ? parent : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = fd < 0 ? -1 : spool_fsync(sp, fd, 0);
		if (fd >= 0)
			close(fd);
		free(parent);
		if (rc == 0)
			return 0;
	} else if (errno == EEXIST) {
		return 0;
	}
	*err = spool_errf("%s: %s", path, strerror(errno));
	return -1;
}

static int open_dir(const char *path, int *fd, char **err)
{
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	*err = spool_errf("%s: %s", path, strerror(errno));
	return -1;
}

static int open_dirs(struct spool *sp, const char *data_dir, char **err)
{
	static const char *const sub[] = {"tmp", "queue", "quarantine"};
	int *fds[] = {&sp->tmp_fd, &sp->queue_fd, &sp->quar_fd};
	char *p;
	size_t i;

	if (mkdir_durable(sp, data_dir, err) < 0 || mkdir_durable(sp, sp->path, err) < 0 ||
	    open_dir(sp->path, &sp->dir_fd, err) < 0)
		return -1;
	for (i = 0; i < ARRAY_LEN(sub); i++) {
		p = xasprintf("%s/%s", sp->path, sub[i]);
		if (mkdir_durable(sp, p, err) < 0 || open_dir(p, fds[i], err) < 0) {
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

/* Only one server may own a spool: its recovery removes tmp/ files, which
 * would be another live server's messages in flight. The CLI takes it
 * only to change the spool of a stopped server (spool_lock()). */
static int take_lock(struct spool *sp, char **err)
{
	int e;

	sp->lock_fd = openat(sp->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sp->lock_fd < 0) {
		*err = spool_errf("%s/lock: %s", sp->path, strerror(errno));
		return -1;
	}
	if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	e = errno;
	*err = spool_errf("%s is in use by another server (%s)", sp->path, strerror(e));
	errno = e;
	return -1;
}

int spool_server_running(struct spool *sp)
{
	int fd = openat(sp->dir_fd, "lock", O_RDWR | O_CLOEXEC);
	int running;

	if (fd < 0)
		return 0; /* no server ever ran here */
	running = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd); /* drops the lock if we got it */
	return running;
}

int spool_lock(struct spool *sp, char **err)
{
	int e;

	if (sp->lock_fd >= 0)
		return 0;
	if (take_lock(sp, err) == 0)
		return 0;
	e = errno; /* EWOULDBLOCK: a server holds it */
	if (sp->lock_fd >= 0)
		close(sp->lock_fd);
	sp->lock_fd = -1;
	errno = e;
	return -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void spool_free(struct spool *sp)
{
	close_fd(&sp->dir_fd);
	close_fd(&sp->tmp_fd);
	close_fd(&sp->queue_fd);
	close_fd(&sp->quar_fd);
	close_fd(&sp->lock_fd);
	free(sp->path);
	free(sp);
}

struct spool *spool_open(const char *data_dir, struct event_base *base, char **err)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));

	sp->dir_fd = sp->tmp_fd = sp->queue_fd = sp->quar_fd = sp->lock_fd = -1;
	sp->path = xasprintf("%s/spool", data_dir);
	sp->base = base;
	atomic_store(&sp->sync_threads, 4);
	if (sodium_init() < 0) {
		*err = xstrdup("libsodium initialisation failed");
		spool_free(sp);
		return NULL;
	}
	if (open_dirs(sp, data_dir, err) < 0 || (base && take_lock(sp, err) < 0) ||
	    (base && spool_committer_start(sp, err) < 0)) {
		spool_free(sp);
		return NULL;
	}
	return sp;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	if (sp->cm)
		spool_committer_stop(sp);
	if (atomic_load(&sp->inflight) > 0)
		log_warn("event=spool_close inflight=%ld", (long)atomic_load(&sp->inflight));
	spool_free(sp);
}

void spool_set_sync_threads(struct spool *sp, unsigned n)
{
	if (n < 1)
		n = 1;
	if (n > SPOOL_SYNC_THREADS_MAX)
		n = SPOOL_SYNC_THREADS_MAX;
	atomic_store(&sp->sync_threads, n);
}

void spool_get_stats(struct spool *sp, struct spool_stats *out)
{
	out->commits = atomic_load(&sp->commits);
	out->commit_batches = atomic_load(&sp->batches);
	out->fsyncs = atomic_load(&sp->fsyncs);
}

/* ---- receiving ---- */

/* tmp/ID, created exclusively; a fresh ID on the (unlikely) clash with a
 * file in tmp/ or queue/. */
static int msg_create(struct spool_msg *m, char **err)
{
	for (int tries = 0; tries < 8; tries++) {
		id_new(m->id);
		if (faccessat(m->sp->queue_fd, m->id, F_OK, 0) == 0)
			continue;
		/* read and write: the accept path reads the message back to sign it */
		m->fd = openat(m->sp->tmp_fd, m->id, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	*err = spool_errf("%s/tmp: %s", m->sp->path, strerror(errno));
	return -1;
}

struct spool_msg *spool_msg_new(struct spool *sp, char **err)
{
	struct spool_msg *m = xcalloc(1, sizeof(*m));
	struct spool_hdr h = {.version = SPOOL_VERSION_FRONT}; /* final in write_out */

	m->sp = sp;
	m->fd = -1;
	m->body_off = SPOOL_HDR_SIZE;
	if (msg_create(m, err) < 0) {
		free(m);
		return NULL;
	}
	/* An incomplete header first: a file cut short anywhere says so. */
	m->buf = xmalloc(SPOOL_BUF_SIZE);
	spool_hdr_encode(&h, (unsigned char *)m->buf);
	m->blen = SPOOL_HDR_SIZE;
	buf_init(&m->env);
	atomic_fetch_add(&sp->inflight, 1);
	return m;
}

const char *spool_msg_id(const struct spool_msg *m)
{
	return m->id;
}

uint64_t spool_msg_size(const struct spool_msg *m)
{
	return m->size;
}

int spool_msg_fail(struct spool_msg *m, const char *what)
{
	if (!m->err) {
		m->err = errno ? errno : EIO;
		log_err("queue=%s event=spool_write_error op=%s error=%s", m->id, what,
		        log_q(strerror(m->err)));
	}
	return -1;
}

int spool_msg_flush(struct spool_msg *m)
{
	if (m->blen && spool_write_all(m->fd, m->buf, m->blen) < 0)
		return spool_msg_fail(m, "write");
	m->blen = 0;
	return 0;
}

int spool_msg_write(struct spool_msg *m, const void *p, size_t n)
{
	const char *c = p;

	if (m->err)
		return -1;
	if (!m->buf) { /* a copy (spool_msg_copy) takes no writes */
		errno = EINVAL;
		return spool_msg_fail(m, "write");
	}
	while (n > 0) {
		size_t take = SPOOL_BUF_SIZE - m->blen;
		if (take > n)
			take = n;
		memcpy(m->buf + m->blen, c, take);
		m->blen += take, m->size += take;
		c += take, n -= take;
		if (m->blen == SPOOL_BUF_SIZE && spool_msg_flush(m) < 0)
			return -1;
	}
	return 0;
}

/* Writes what is buffered, the envelope record and the final header (with
 * the complete flag), and starts the writeback: the file is whole in the
 * page cache and on its way to the disk, still under tmp/. Starting the
 * writeback of a whole batch before the first fdatasync lets one journal
 * commit carry the block allocations of all its files (docs/spool.md,
 * "Measurements"). Runs on the committer. */
int spool_msg_write_out(struct spool_msg *m)
{
	unsigned char hdr[SPOOL_HDR_SIZE];
	/* Without a front the file is as version 1 writes it (spool_format.h). */
	struct spool_hdr h = {.version = m->body_off == SPOOL_HDR_SIZE ? 1 : SPOOL_VERSION_FRONT,
	                      .flags = SPOOL_F_COMPLETE,
	                      .body_off = m->body_off,
	                      .body_len = m->size,
	                      .env_off = m->body_off + m->size,
	                      .env_len = m->env.len,
	                      .n_rcpts = m->n_rcpts};

	if (m->err || spool_msg_flush(m) < 0)
		return -1;
	if (spool_pwrite_all(m->fd, m->env.data, m->env.len, h.env_off) < 0)
		return spool_msg_fail(m, "write_envelope");
	spool_hdr_encode(&h, hdr);
	if (spool_pwrite_all(m->fd, hdr, sizeof(hdr), 0) < 0)
		return spool_msg_fail(m, "write_header");
	/* Only a hint: fdatasync below is what makes it durable. */
	sync_file_range(m->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return 0;
}

/* After this the file is whole on stable storage. */
int spool_msg_sync(struct spool_msg *m)
{
	if (m->err)
		return -1;
	if (spool_fsync(m->sp, m->fd, 1) < 0)
		return spool_msg_fail(m, "fdatasync");
	return 0;
}

void spool_msg_free(struct spool_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	free(m->buf);
	buf_free(&m->env);
	free(m);
}

void spool_msg_abort(struct spool_msg *m)
{
	if (!m)
		return;
	if (unlinkat(m->sp->tmp_fd, m->id, 0) < 0)
		log_warn("queue=%s event=spool_abort error=%s", m->id, log_q(strerror(errno)));
	atomic_fetch_sub(&m->sp->inflight, 1);
	spool_msg_free(m);
}

void spool_msg_commit(struct spool_msg *m, const struct envelope *env,
                      void (*done)(void *arg, int ok, const char *id), void *arg)
{
	char *reason = NULL;

	m->done = done;
	m->arg = arg;
	m->n_rcpts = (uint32_t)env->n_rcpts;
	m->commit_us = clock_mono_us();
	/* Encoded now, on the caller's thread: env is only borrowed. */
	if (!m->err && spool_env_encode(env, m->id, m->size, &m->env, &reason) < 0) {
		log_err("queue=%s event=spool_envelope_error error=%s", m->id, log_q(reason));
		m->err = EINVAL;
		free(reason);
	}
	/* Memory goes back before the wait for the disk. */
	if (!m->err)
		spool_msg_flush(m);
	free(m->buf);
	m->buf = NULL;
	if (m->sp->cm) {
		spool_committer_submit(m->sp, m);
		return;
	}
	/* No event loop (CLI, tools): commit right here, synchronously. */
	spool_commit_batch(m->sp, &m, 1);
	atomic_fetch_sub(&m->sp->inflight, 1);
	done(arg, m->ok, m->id);
	spool_msg_free(m);
}
