/*
 * spool_int.h: what the files of src/spool/ share and nobody else sees.
 *
 *   spool.c         opening, the directories, receiving (new/write/abort)
 *   spool_front.c   the front: fields put before a message, copies of one
 *   spool_commit.c  the committer thread, group commit, done() delivery
 *   spool_format.c  the bytes on disk: header, envelope record, rcpt records
 *                   (PURE: spool_format.h)
 *   spool_read.c    load, foreach, body, delete, rcpt state
 *   spool_recover.c recovery at server start, in steps
 *   spool_steer.c   hold, release and delete, in slices (bulk operations)
 *   spool_select.c  which recipients a filter picks (PURE)
 *   spool_journal.c deletions made while no server ran, for its log
 *
 * docs/spool.md describes the format and the durability argument.
 */
#ifndef POSTHORN_SPOOL_INT_H
#define POSTHORN_SPOOL_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"
#include "spool/spool_format.h"
#include "util/util.h"

/* Writing and streaming, beside spool_format.h's bounds. */
#define SPOOL_BUF_SIZE         65536 /* write buffer of a message being received */
#define SPOOL_SYNC_THREADS_MAX 16

struct spool_committer;

struct spool {
	char *path; /* DATA_DIR/spool */
	int dir_fd, tmp_fd, queue_fd, quar_fd;
	int lock_fd; /* server only: flock held while open */
	struct event_base *base;
	struct spool_committer *cm; /* NULL without a base */
	_Atomic unsigned sync_threads;
	_Atomic uint64_t commits, batches, fsyncs;
	_Atomic long inflight; /* between spool_msg_new and done()/abort */
};

struct spool_msg {
	struct spool *sp;
	char id[ID_LEN + 1];
	int fd;
	int err;           /* errno of the first failure; 0 while healthy */
	uint64_t size;     /* message bytes accepted (with the fields put in front) */
	uint64_t body_off; /* where they start in the file (spool_front.c) */
	char *buf;         /* SPOOL_BUF_SIZE bytes, not yet written */
	size_t blen;
	struct buf env; /* the encoded envelope record, set at commit */
	uint32_t n_rcpts;
	void (*done)(void *arg, int ok, const char *id);
	void *arg;
	int ok;
	uint64_t commit_us; /* monotonic, when the commit was asked (its latency) */
	struct spool_msg *next;
};

/* spool.c */
int spool_write_all(int fd, const void *p, size_t n);
int spool_pwrite_all(int fd, const void *p, size_t n, uint64_t off);
/* Records the first failure of m (errno, logged with what); returns -1. */
int spool_msg_fail(struct spool_msg *m, const char *what);
int spool_fsync(struct spool *sp, int fd, int data_only);
char *spool_errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void spool_msg_free(struct spool_msg *m);
/* Commit step 1 in two halves (0 ok, -1 and m->err set): write the rest,
 * the envelope and the final header, start writeback; then fdatasync. */
int spool_msg_write_out(struct spool_msg *m);
int spool_msg_sync(struct spool_msg *m);

/* spool_read.c, for spool_recover.c too */
enum spool_load_res { LOAD_OK, LOAD_GONE, LOAD_BAD, LOAD_IOERR };
/* Loads queue entry `name` of dirfd: LOAD_BAD (and *why) for anything
 * unreadable or not a regular file; LOAD_IOERR (and *why) for an error of
 * the environment; LOAD_GONE if it is not there. */
enum spool_load_res spool_load_at(int dirfd, const char *name, struct envelope **out, char **why);
/* Unlinks queue/ID (with sync, then fsyncs queue/); 0, or -1 and *err
 * (errno ENOENT: no such message). Logs nothing. */
int spool_unlink_message(struct spool *sp, const char *id, int sync, char **err);
/* spool_journal.c: the picked recipients of v[0..n) (a whole unreadable
 * message as one line with an empty address), appended to the deletion
 * journal and fdatasync'd. 0, or -1 and *err. */
int spool_journal_write(struct spool *sp, const struct spool_steered *v, size_t n, int64_t now,
                        char **err);
/* The entries of DATA_DIR/spool/SUB, sorted. */
int spool_list_dir(struct spool *sp, const char *sub, char ***out, size_t *n, char **err);
void spool_free_names(char **names, size_t n);

/* spool_commit.c */
int spool_committer_start(struct spool *sp, char **err);
void spool_committer_stop(struct spool *sp);
void spool_committer_submit(struct spool *sp, struct spool_msg *m);
/* Tests only: while paused the committer leaves submitted messages
 * waiting, so that a test can build a batch of a known size. */
void spool_commit_pause(struct spool *sp, int paused);
/* Makes a batch durable and sets each m->ok. Any thread. */
void spool_commit_batch(struct spool *sp, struct spool_msg **ms, size_t n);

#endif
