/*
 * spool_read.c: everything done to messages already in queue/: loading,
 * listing, opening the body, recording recipient states and deleting.
 * (Recovery at server start is spool_recover.c.)
 *
 * Safe between processes (a server and the CLI): files in queue/ are only
 * ever appended to (state records, one write(2) each with O_APPEND),
 * renamed away or unlinked, so a reader sees either a whole message or
 * none. Memory use is bounded by the envelope record's length (itself
 * bounded by the file's size and SPOOL_ENV_MAX), never by a length field
 * alone; state records are streamed through a fixed buffer.
 *
 * Anything can lie in queue/ (an operator, a restore, a stray process):
 * entries are opened with open_entry(), which neither blocks (a FIFO) nor
 * follows a link, and only a regular file is read. The rest is LOAD_BAD:
 * skipped by readers, quarantined by recovery.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "spool/spool_int.h"

/* 0 ok, -1 with errno set (EIO when the file is shorter than claimed). */
static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = pread(fd, c, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return errno = r < 0 ? errno : EIO, -1;
		c += r, n -= (size_t)r, off += (uint64_t)r;
	}
	return 0;
}

/* EIO is the medium failing under this file: the file is unreadable (and
 * recovery quarantines it). Other errors are the environment's. */
static enum spool_load_res io_error(const char *what, char **why)
{
	int eio = errno == EIO;

	*why = spool_errf("%s: %s", what, strerror(errno));
	return eio ? LOAD_BAD : LOAD_IOERR;
}

/* O_NONBLOCK: opening a FIFO would block until a writer came (reads of a
 * regular file ignore it). O_NOFOLLOW: the relay appends to queue files,
 * and a link would make it write wherever it points. O_NOCTTY: a device
 * node must not become our terminal. */
static int open_entry(int dirfd, const char *name, int flags)
{
	return openat(dirfd, name, flags | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
}

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISSOCK(m))
		return "a socket";
	return S_ISCHR(m) || S_ISBLK(m) ? "a device" : "of an unknown kind";
}

/* After open_entry() failed: the entry is gone, or not a file we would
 * read (ELOOP: a link, O_NOFOLLOW; ENXIO: a socket, or a device without a
 * driver), or the environment failed us. */
static enum spool_load_res open_error(char **why)
{
	if (errno == ENOENT)
		return LOAD_GONE;
	if (errno == ELOOP)
		return *why = xstrdup("not a regular file: a symbolic link"), LOAD_BAD;
	if (errno == ENXIO)
		return *why = xstrdup("not a regular file"), LOAD_BAD;
	return io_error("open", why);
}

static enum spool_load_res read_header(int fd, struct spool_hdr *h, uint64_t *fsize, char **why)
{
	unsigned char raw[SPOOL_HDR_SIZE];
	struct stat st;

	if (fstat(fd, &st) < 0)
		return io_error("fstat", why);
	if (!S_ISREG(st.st_mode))
		return *why = spool_errf("not a regular file: %s", file_kind(st.st_mode)), LOAD_BAD;
	*fsize = (uint64_t)st.st_size;
	if (*fsize < SPOOL_HDR_SIZE)
		return *why = spool_errf("short file (%llu bytes)", (unsigned long long)*fsize),
		       LOAD_BAD;
	if (pread_all(fd, raw, sizeof(raw), 0) < 0)
		return io_error("read header", why);
	if (spool_hdr_decode(raw, h, why) < 0 || spool_hdr_fits(h, *fsize, why) < 0)
		return LOAD_BAD;
	return LOAD_OK;
}

static enum spool_load_res read_envelope(int fd, const char *id, const struct spool_hdr *h,
                                         struct envelope **out, char **why)
{
	char *p = xmalloc((size_t)h->env_len);
	enum spool_load_res res = LOAD_OK;

	if (pread_all(fd, p, (size_t)h->env_len, h->env_off) < 0)
		res = io_error("read envelope", why);
	else if (spool_env_decode(p, (size_t)h->env_len, id, h->n_rcpts, out, why) < 0)
		res = LOAD_BAD;
	free(p);
	return res;
}

/* ---- recipient state records, streamed ---- */

/* Applies records in file order. A line without its '\n' is a record torn
 * by a crash: ignored, like any line whose checksum fails. */
static enum spool_load_res read_states(int fd, uint64_t off, uint64_t end, struct envelope *e,
                                       char **why)
{
	struct spool_records rs;
	char *chunk = xmalloc(SPOOL_BUF_SIZE);
	enum spool_load_res res = LOAD_OK;

	spool_records_init(&rs, e);
	while (off < end) {
		size_t n = end - off < SPOOL_BUF_SIZE ? (size_t)(end - off) : SPOOL_BUF_SIZE;
		if (pread_all(fd, chunk, n, off) < 0) {
			res = io_error("read state records", why);
			break;
		}
		spool_records_feed(&rs, chunk, n);
		off += n;
	}
	if (rs.skipped || spool_records_torn(&rs))
		log_info("queue=%s event=spool_state_records applied=%zu skipped=%zu torn_tail=%d",
		         e->id, rs.applied, rs.skipped, spool_records_torn(&rs));
	spool_records_free(&rs);
	free(chunk);
	return res;
}

static enum spool_load_res load_fd(int fd, const char *id, struct envelope **out, char **why)
{
	struct spool_hdr h;
	uint64_t fsize;
	enum spool_load_res res;

	if ((res = read_header(fd, &h, &fsize, why)) != LOAD_OK)
		return res;
	if ((res = read_envelope(fd, id, &h, out, why)) != LOAD_OK)
		return res;
	if ((res = read_states(fd, h.env_off + h.env_len, fsize, *out, why)) != LOAD_OK) {
		envelope_free(*out);
		*out = NULL;
	}
	return res;
}

enum spool_load_res spool_load_at(int dirfd, const char *name, struct envelope **out, char **why)
{
	enum spool_load_res res;
	int fd = open_entry(dirfd, name, O_RDONLY);

	*out = NULL;
	if (fd < 0)
		return open_error(why);
	res = load_fd(fd, name, out, why);
	close(fd);
	return res;
}

/* ---- the public readers ---- */

static int bad_id(const char *id, char **err)
{
	if (id && id_valid(id))
		return 0;
	*err = xstrdup("invalid queue ID");
	errno = EINVAL;
	return -1;
}

static int no_message(const char *id, char **err)
{
	*err = spool_errf("no message %s", id);
	errno = ENOENT;
	return -1;
}

/* After a failed open of queue/ID. */
static int open_failed(const char *id, char **err)
{
	if (errno == ENOENT)
		return no_message(id, err);
	*err = spool_errf("%s: %s", id, strerror(errno));
	return -1;
}

int spool_load(struct spool *sp, const char *id, struct envelope **out, char **err)
{
	char *why = NULL;
	enum spool_load_res res;

	if (bad_id(id, err) < 0)
		return -1;
	res = spool_load_at(sp->queue_fd, id, out, &why);
	if (res == LOAD_OK)
		return 0;
	if (res == LOAD_GONE)
		return no_message(id, err);
	*err = spool_errf("%s: %s", id, why);
	free(why);
	errno = res == LOAD_BAD ? EBADMSG : EIO;
	return -1;
}

int spool_open_body(struct spool *sp, const char *id, int *fd, uint64_t *offset, uint64_t *len,
                    char **err)
{
	struct spool_hdr h;
	uint64_t fsize;
	char *why = NULL;

	if (bad_id(id, err) < 0)
		return -1;
	*fd = open_entry(sp->queue_fd, id, O_RDONLY);
	if (*fd < 0)
		return open_failed(id, err);
	if (read_header(*fd, &h, &fsize, &why) != LOAD_OK) {
		*err = spool_errf("%s: %s", id, why);
		free(why);
		close(*fd);
		*fd = -1;
		return -1;
	}
	*offset = h.body_off;
	*len = h.body_len;
	return 0;
}

/* ---- listing ---- */

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void spool_free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void spool_free_page(char **ids, size_t n)
{
	spool_free_names(ids, n);
}

/* The entries of DATA_DIR/spool/SUB, sorted (IDs sort by arrival). A fresh
 * open, not the kept directory fd, so that no two listings share a
 * position. */
int spool_list_dir(struct spool *sp, const char *sub, char ***out, size_t *n, char **err)
{
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int fd = openat(sp->dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*out = NULL, *n = 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		*err = spool_errf("%s/%s: %s", sp->path, sub, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (*n == cap)
			*out = xrealloc(*out, (cap = cap ? 2 * cap : 64) * sizeof(**out));
		(*out)[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (*n)
		qsort(*out, *n, sizeof(**out), cmp_name);
	return 0;
}

/* ---- a page of the listing: a bounded max-heap of the smallest names ---- */

static void page_sift_up(char **h, size_t i)
{
	while (i > 0 && strcmp(h[(i - 1) / 2], h[i]) < 0) {
		char *t = h[i];
		h[i] = h[(i - 1) / 2];
		h[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static void page_sift_down(char **h, size_t n)
{
	size_t i = 0;

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && strcmp(h[l], h[m]) > 0)
			m = l;
		if (r < n && strcmp(h[r], h[m]) > 0)
			m = r;
		if (m == i)
			return;
		char *t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* name joins the page if it is among the max smallest seen. */
static void page_offer(char **h, size_t *n, size_t max, const char *name, int *more)
{
	if (*n < max) {
		h[(*n)++] = xstrdup(name);
		page_sift_up(h, *n - 1);
		return;
	}
	*more = 1;
	if (max == 0 || strcmp(name, h[0]) >= 0)
		return;
	free(h[0]);
	h[0] = xstrdup(name);
	page_sift_down(h, *n);
}

int spool_list_page(struct spool *sp, const char *after, size_t max, char ***out, size_t *n,
                    int *more, char **err)
{
	struct dirent *de;
	DIR *d;
	int fd = openat(sp->dir_fd, "queue", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*out = xcalloc(max ? max : 1, sizeof(**out)), *n = 0, *more = 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		*err = spool_errf("%s/queue: %s", sp->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)))
		if (id_valid(de->d_name) && (!after || strcmp(de->d_name, after) > 0))
			page_offer(*out, n, max, de->d_name, more);
	closedir(d);
	qsort(*out, *n, sizeof(**out), cmp_name);
	return 0;
}

int spool_foreach(struct spool *sp, int (*cb)(void *arg, struct envelope *env), void *arg,
                  char **err)
{
	struct envelope *e;
	char **names, *why = NULL;
	size_t n, i;
	int rc = 0, stop = 0;

	if (spool_list_dir(sp, "queue", &names, &n, err) < 0)
		return -1;
	for (i = 0; i < n && !stop && rc == 0; i++) {
		if (!id_valid(names[i]))
			continue;
		switch (spool_load_at(sp->queue_fd, names[i], &e, &why)) {
		case LOAD_OK:
			stop = cb(arg, e);
			envelope_free(e);
			break;
		case LOAD_GONE: /* deleted meanwhile */
			break;
		case LOAD_BAD: /* recovery quarantines it; readers only skip it */
			log_warn("queue=%s event=spool_unreadable reason=%s", names[i], log_q(why));
			break;
		case LOAD_IOERR:
			*err = spool_errf("%s: %s", names[i], why);
			rc = -1;
			break;
		}
		free(why);
		why = NULL;
	}
	spool_free_names(names, n);
	return rc;
}

/* ---- steering ---- */

/* The directory fsync makes the delete durable: an operator's delete must
 * not be undone by a power cut. */
int spool_unlink_message(struct spool *sp, const char *id, int sync, char **err)
{
	if (bad_id(id, err) < 0)
		return -1;
	if (unlinkat(sp->queue_fd, id, 0) < 0) {
		if (errno == ENOENT)
			return no_message(id, err);
		*err = spool_errf("%s: %s", id, strerror(errno));
		return -1;
	}
	if (sync && spool_fsync(sp, sp->queue_fd, 0) < 0)
		log_warn("queue=%s event=spool_delete_fsync_error error=%s", id,
		         log_q(strerror(errno)));
	return 0;
}

int spool_delete(struct spool *sp, const char *id, char **err)
{
	if (spool_unlink_message(sp, id, 1, err) < 0)
		return -1;
	log_info("queue=%s event=deleted", id);
	return 0;
}

int spool_remove_done(struct spool *sp, const char *id, char **err)
{
	if (spool_unlink_message(sp, id, 0, err) < 0)
		return -1;
	log_info("queue=%s event=removed", id);
	return 0;
}

/* A file of version 1 or 2 gets its first steering record (version 3
 * only): its header says version 3 first, durably, so that an older
 * Posthorn quarantines the file rather than skip the record and deliver
 * what an operator held or deleted. The layout stays (version 3 is version
 * 2's, and a version 1 file's body_off is one version 2 takes). The header
 * is rewritten in place (one 128-byte pwrite inside the first sector),
 * through a second descriptor: pwrite on an O_APPEND one would append. */
static int mark_steered(struct spool *sp, const char *id, struct spool_hdr *h, char **err)
{
	unsigned char raw[SPOOL_HDR_SIZE];
	int fd = open_entry(sp->queue_fd, id, O_WRONLY), rc = -1;

	if (fd < 0)
		return open_failed(id, err);
	h->version = SPOOL_VERSION_STEER;
	spool_hdr_encode(h, raw);
	if (pwrite(fd, raw, sizeof(raw), 0) == (ssize_t)sizeof(raw) && spool_fsync(sp, fd, 1) == 0)
		rc = 0;
	else
		*err =
		    spool_errf("%s: rewriting the header: %s", id, strerror(errno ? errno : EIO));
	close(fd);
	return rc;
}

/* Which records an append writes: delivery states, or steering. */
enum rec_kind { REC_STATE, REC_STEERING };

/* Appends the records of recipients idx[i] (now *rs[i]) in one write(2)
 * (O_APPEND: two appenders never interleave), then fdatasync when sync is
 * set. */
static int append_records(struct spool *sp, int fd, const char *id, enum rec_kind kind,
                          const size_t *idx, const struct rcpt *const *rs, size_t n, int sync,
                          char **err)
{
	struct spool_hdr h;
	struct buf rec;
	uint64_t fsize;
	char *why = NULL;
	int rc = -1;
	size_t i;

	if (read_header(fd, &h, &fsize, &why) != LOAD_OK) {
		*err = spool_errf("%s: %s", id, why);
		free(why);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (idx[i] >= h.n_rcpts) {
			*err = spool_errf("%s: no recipient %zu (of %u)", id, idx[i],
			                  (unsigned)h.n_rcpts);
			return -1;
		}
	if (h.version < SPOOL_VERSION_STEER && kind == REC_STEERING &&
	    mark_steered(sp, id, &h, err) < 0)
		return -1;
	buf_init(&rec);
	for (i = 0; i < n; i++) {
		if (kind == REC_STEERING)
			spool_steering_encode(idx[i], rs[i], &rec);
		else
			spool_rcpt_encode(idx[i], rs[i], &rec);
	}
	if (spool_write_all(fd, rec.data, rec.len) < 0 || (sync && spool_fsync(sp, fd, 1) < 0))
		*err = spool_errf("%s: %s", id, strerror(errno));
	else
		rc = 0;
	buf_free(&rec);
	return rc;
}

static int append_to(struct spool *sp, const char *id, enum rec_kind kind, const struct rcpt *rcpts,
                     const size_t *idx, size_t n, int sync, char **err)
{
	const struct rcpt **rs;
	int fd, rc;
	size_t i;

	if (bad_id(id, err) < 0)
		return -1;
	fd = open_entry(sp->queue_fd, id, O_RDWR | O_APPEND);
	if (fd < 0)
		return open_failed(id, err);
	rs = xcalloc(n ? n : 1, sizeof(*rs));
	for (i = 0; i < n; i++)
		rs[i] = &rcpts[idx[i]];
	rc = append_records(sp, fd, id, kind, idx, rs, n, sync, err);
	free(rs);
	close(fd);
	return rc;
}

int spool_set_rcpt_states(struct spool *sp, const char *id, const struct rcpt *rcpts,
                          const size_t *idx, size_t n, int sync, char **err)
{
	return append_to(sp, id, REC_STATE, rcpts, idx, n, sync, err);
}

int spool_set_rcpt_steering(struct spool *sp, const char *id, const struct rcpt *rcpts,
                            const size_t *idx, size_t n, int sync, char **err)
{
	return append_to(sp, id, REC_STEERING, rcpts, idx, n, sync, err);
}

int spool_set_rcpt_state(struct spool *sp, const char *id, size_t rcpt_index, const struct rcpt *r,
                         char **err)
{
	int fd, rc;

	if (bad_id(id, err) < 0)
		return -1;
	fd = open_entry(sp->queue_fd, id, O_RDWR | O_APPEND);
	if (fd < 0)
		return open_failed(id, err);
	rc = append_records(sp, fd, id, REC_STATE, &rcpt_index, &r, 1, 1, err);
	close(fd);
	return rc;
}

/* One call for everything a bulk operation wrote without a sync each:
 * syncfs() of the spool's file system (data, appended records and
 * directory entries alike). */
int spool_sync(struct spool *sp, char **err)
{
	atomic_fetch_add(&sp->fsyncs, 1);
	if (syncfs(sp->queue_fd) == 0)
		return 0;
	*err = spool_errf("%s: syncfs: %s", sp->path, strerror(errno));
	return -1;
}
