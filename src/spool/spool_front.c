/*
 * spool_front.c: header fields put in front of a message being received,
 * without copying the message (format version 2, docs/spool.md).
 *
 * A message that may get such fields (a DKIM signature, List-Unsubscribe)
 * reserves a front: its bytes are written from SPOOL_FRONT on, and the
 * fields, once known (at the end of DATA, after the message was read back
 * and signed), are written just before them; body_off moves back to their
 * first byte. The bytes between the file header and body_off are never
 * read. The message itself is written once and never moved, unless the
 * fields do not fit the front: then it is copied (in the kernel, with
 * copy_file_range) into a new file with a front large enough, which
 * replaces the old one inside tmp/.
 *
 * Nothing here is durable by itself: every write lands before the commit,
 * whose fdatasync covers the whole file, header last (spool_commit.c). A
 * crash before the commit leaves a tmp/ file, which recovery removes.
 *
 * Threads: one message belongs to one thread at a time (spool.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "spool/spool_int.h"

#define COPY_CHUNK (1u << 30) /* bytes per copy_file_range call */

/* The buffer holds the file's header and every message byte so far:
 * nothing has been written to the file yet. */
static int unflushed(const struct spool_msg *m)
{
	return m->buf && m->body_off == SPOOL_HDR_SIZE && m->blen == SPOOL_HDR_SIZE + m->size;
}

int spool_msg_reserve_front(struct spool_msg *m)
{
	if (m->err)
		return -1;
	if (m->body_off != SPOOL_HDR_SIZE)
		return 0; /* reserved before */
	if (!unflushed(m))
		return 1; /* too late: spool_msg_prepend will copy */
	/* the header to its place, the message bytes to the front's end */
	if (spool_pwrite_all(m->fd, m->buf, SPOOL_HDR_SIZE, 0) < 0)
		return spool_msg_fail(m, "write_header");
	if (lseek(m->fd, SPOOL_FRONT, SEEK_SET) < 0)
		return spool_msg_fail(m, "seek");
	memmove(m->buf, m->buf + SPOOL_HDR_SIZE, m->blen - SPOOL_HDR_SIZE);
	m->blen -= SPOOL_HDR_SIZE;
	m->body_off = SPOOL_FRONT;
	return 0;
}

long spool_msg_pread(struct spool_msg *m, uint64_t off, void *p, size_t n)
{
	ssize_t r;

	if (m->blen != 0)
		return errno = EINVAL, -1; /* not flushed */
	if (off >= m->size)
		return 0;
	if (n > m->size - off)
		n = (size_t)(m->size - off);
	do
		r = pread(m->fd, p, n, (off_t)(m->body_off + off));
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return errno = EIO, -1; /* shorter than what was written */
	return (long)r;
}

/* When copy_file_range cannot: through a buffer. */
static int copy_slow(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len)
{
	char *b = xmalloc(SPOOL_BUF_SIZE);
	int rc = 0;

	while (len > 0 && rc == 0) {
		size_t n = len < SPOOL_BUF_SIZE ? (size_t)len : SPOOL_BUF_SIZE;
		ssize_t r = pread(in, b, n, (off_t)in_off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = (errno = r < 0 ? errno : EIO, -1);
			break;
		}
		rc = spool_pwrite_all(out, b, (size_t)r, out_off);
		in_off += (uint64_t)r, out_off += (uint64_t)r, len -= (uint64_t)r;
	}
	free(b);
	return rc;
}

/* Bytes [in_off, in_off + len) of in to out at out_off. */
static int copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len)
{
	while (len > 0) {
		loff_t a = (loff_t)in_off, b = (loff_t)out_off;
		ssize_t k =
		    copy_file_range(in, &a, out, &b, len < COPY_CHUNK ? len : COPY_CHUNK, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 &&
		    (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
			return copy_slow(in, in_off, out, out_off, len);
		if (k <= 0)
			return errno = k < 0 ? errno : EIO, -1;
		in_off += (uint64_t)k, out_off += (uint64_t)k, len -= (uint64_t)k;
	}
	return 0;
}

/* The fields of n bytes do not fit: the message moves to a front that
 * holds them, in a new file that takes the place of tmp/ID. */
static int front_grow(struct spool_msg *m, size_t n)
{
	uint64_t off = (SPOOL_HDR_SIZE + n + SPOOL_FRONT - 1) / SPOOL_FRONT * SPOOL_FRONT;
	char name[ID_LEN + 8];
	int fd;

	snprintf(name, sizeof(name), "%s.front", m->id);
	unlinkat(m->sp->tmp_fd, name, 0); /* a leftover: nothing in tmp/ is kept */
	fd = openat(m->sp->tmp_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return spool_msg_fail(m, "front_create");
	if (copy_range(m->fd, m->body_off, fd, off, m->size) < 0 ||
	    renameat(m->sp->tmp_fd, name, m->sp->tmp_fd, m->id) < 0) {
		int e = errno;
		close(fd);
		unlinkat(m->sp->tmp_fd, name, 0);
		errno = e;
		return spool_msg_fail(m, "front_copy");
	}
	close(m->fd);
	m->fd = fd;
	m->body_off = off;
	log_info("queue=%s event=spool_front_grown bytes=%zu front=%llu", m->id, n,
	         (unsigned long long)off);
	return 0;
}

int spool_msg_prepend(struct spool_msg *m, const void *p, size_t n)
{
	if (m->err)
		return -1;
	if (n > SPOOL_PREPEND_MAX || m->blen != 0) {
		errno = EINVAL;
		return spool_msg_fail(m, "prepend");
	}
	if (n > m->body_off - SPOOL_HDR_SIZE && front_grow(m, n) < 0)
		return -1;
	if (spool_pwrite_all(m->fd, p, n, m->body_off - n) < 0)
		return spool_msg_fail(m, "prepend");
	m->body_off -= n;
	m->size += n;
	return 0;
}

struct spool_msg *spool_msg_copy(struct spool_msg *m, char **err)
{
	struct spool_msg *c;

	if (m->err || m->blen != 0) {
		*err = xstrdup(m->err ? "the message failed before" : "not flushed");
		return NULL;
	}
	if (!(c = spool_msg_new(m->sp, err)))
		return NULL;
	/* c's buffer holds its incomplete header, as spool_msg_new made it */
	if (spool_pwrite_all(c->fd, c->buf, c->blen, 0) < 0 ||
	    copy_range(m->fd, m->body_off, c->fd, m->body_off, m->size) < 0) {
		*err = spool_errf("copy of %s: %s", m->id, strerror(errno));
		spool_msg_abort(c);
		return NULL;
	}
	free(c->buf); /* it takes no more writes: no buffer held until its commit */
	c->buf = NULL;
	c->blen = 0;
	c->body_off = m->body_off;
	c->size = m->size;
	return c;
}
