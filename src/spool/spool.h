/*
 * spool: messages and envelopes on disk; the only module that touches
 * DATA_DIR/spool. See docs/spool.md for the format and the durability
 * argument.
 *
 * Writing: spool_msg_new() opens a temporary file, spool_msg_write()
 * streams the message into it (bounded buffering, never the whole body in
 * memory), spool_msg_commit() hands it to the committer thread, which makes
 * it durable (fdatasync of the file, rename into the queue, fsync of the
 * queue directory, shared by every commit that arrived meanwhile: group
 * commit) and then calls done() on the event loop thread. Only after done()
 * reports success may the server answer 250.
 *
 * Reading (CLI, recovery, delivery): spool_load(), spool_foreach(),
 * spool_delete(), spool_set_rcpt_state().
 */
#ifndef POSTHORN_SPOOL_H
#define POSTHORN_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct event_base;
struct spool;
struct spool_msg;

/* DSN NOTIFY bits (RFC 3461); 0 means "not given" (default: FAILURE). */
enum { DSN_NOTIFY_NEVER = 1, DSN_NOTIFY_SUCCESS = 2, DSN_NOTIFY_FAILURE = 4, DSN_NOTIFY_DELAY = 8 };
enum dsn_ret { DSN_RET_UNSET = 0, DSN_RET_FULL, DSN_RET_HDRS };
enum body_type { BODY_7BIT = 0, BODY_8BITMIME };

/* The delivery state; delivered and bounced are final. */
enum rcpt_state { RCPT_PENDING = 0, RCPT_DELIVERED, RCPT_BOUNCED, RCPT_DEFERRED };

struct rcpt {
	char *addr;  /* as given in RCPT TO, without <> */
	char *orcpt; /* DSN ORCPT= value (xtext-decoded "type;addr") or NULL */
	unsigned notify;
	enum rcpt_state state;
	uint32_t attempts;
	int64_t next_attempt; /* unix seconds; 0 = now */
	char *last_reply;     /* last remote reply or reason, or NULL */
	/* An operator's steering (queue hold, release, delete), kept in
	 * records of their own that delivery never writes. On hold: with
	 * held_since set, an open recipient is neither tried nor expired
	 * until released; held_secs, the time spent on hold before, moves
	 * its queue_lifetime deadline later. deleted: dropped by queue
	 * delete, final (docs/queue.md). */
	int64_t held_since; /* unix seconds; 0: not held */
	uint64_t held_secs;
	int deleted;
};

/* Still to be delivered: pending or deferred, and not deleted. */
static inline int rcpt_is_open(const struct rcpt *r)
{
	return (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) && !r->deleted;
}

/* Open and on hold. */
static inline int rcpt_is_held(const struct rcpt *r)
{
	return rcpt_is_open(r) && r->held_since != 0;
}

/* The state an operator sees: "held" for an open recipient on hold,
 * "deleted" for one deleted while open, else the state's name
 * ("pending", "deferred", "delivered", "bounced"). */
const char *rcpt_state_shown(const struct rcpt *r);

struct envelope {
	char id[ID_LEN + 1];
	char *mail_from; /* "" for the null sender */
	char *account;   /* owning account ("default" for trusted relay) */
	char *client_ip;
	char *helo;
	int64_t created; /* unix seconds */
	uint64_t size;   /* bytes of the stored message (prepend + body) */
	enum body_type body;
	int smtputf8;
	enum dsn_ret ret;
	char *envid;    /* DSN ENVID or NULL */
	int requiretls; /* RFC 8689 MAIL FROM ... REQUIRETLS: deliver only over
	                   verified TLS to servers that offer it (record v2) */
	struct rcpt *rcpts;
	size_t n_rcpts;
};

void envelope_free(struct envelope *e);

/* base may be NULL (CLI, tools: no committer thread, commits run in the
 * caller, no server lock). Creates the folders. Does not
 * recover; call spool_recover() once at server start. */
struct spool *spool_open(const char *data_dir, struct event_base *base, char **err);
/* Waits for pending commits to finish (their done() runs first). Abort
 * messages still being received first; never call from inside done(). */
void spool_close(struct spool *sp);

/*
 * Recovery, once at server start (docs/spool.md, "Recovery"): removes what
 * tmp/ holds (never acknowledged), moves every queue entry that cannot be
 * read, or is not a regular file, or is not named by a queue ID, to
 * DATA_DIR/spool/quarantine (never deleting it), and reads each good
 * message's envelope exactly once, handing it to on_env.
 *
 * spool_recover_each(): all of it in one call. on_env (NULL: none) gets
 * each good message in ID (= arrival) order; env belongs to the spool and
 * is freed when on_env returns: copy what you keep. Returns the number of
 * good messages, or -1 when the environment fails (EMFILE, EACCES...:
 * recovery stops rather than quarantine good mail, and the server must
 * not start) or messages are being received (recovery must come first).
 * spool_recover(sp) is spool_recover_each(sp, NULL, NULL).
 */
typedef void (*spool_env_fn)(void *arg, const struct envelope *env);
long spool_recover_each(struct spool *sp, spool_env_fn on_env, void *arg);
long spool_recover(struct spool *sp);

/*
 * The same in steps, so that a server can answer connections while a large
 * queue is read (say, a step of a few hundred entries per loop turn):
 *
 *	struct spool_recovery *rv = spool_recover_begin(sp);
 *	while (rv && spool_recover_step(rv, 500, on_env, arg) > 0)
 *		;
 *	long good = spool_recover_end(rv);
 *
 * begin: tmp/ emptied, queue/ listed; NULL on error (or messages being
 * received). step: reads up to max listed entries; returns how many are
 * left (0: done), -1 on an environment error (then only end is allowed).
 * end: fsyncs what was moved, logs the counts, frees rv; returns the good
 * count, or -1 after a failed step, before the last step, or for rv NULL. Messages may be received
 *as soon as begin has returned: they are not in the listing, so on_env never sees them (the caller
 *indexes them as they are committed), and a listed message deleted meanwhile is skipped.
 */
struct spool_recovery;
struct spool_recovery *spool_recover_begin(struct spool *sp);
long spool_recover_step(struct spool_recovery *rv, size_t max, spool_env_fn on_env, void *arg);
long spool_recover_end(struct spool_recovery *rv);
/* The entries begin listed in queue/. */
size_t spool_recover_total(const struct spool_recovery *rv);

/* Receiving. spool_msg_new() assigns the queue ID (spool_msg_id()). */
struct spool_msg *spool_msg_new(struct spool *sp, char **err);
const char *spool_msg_id(const struct spool_msg *m);
/* Appends message bytes (CRLF lines, already dot-unstuffed). -1 on I/O
 * error (the message is then doomed: commit will fail). */
int spool_msg_write(struct spool_msg *m, const void *p, size_t n);
/* Bytes written so far. */
uint64_t spool_msg_size(const struct spool_msg *m);
/* Takes ownership of m. env->id is overwritten with m's ID. done() runs on
 * the event loop thread with ok=1 once the message is on stable storage,
 * ok=0 (and nothing left in the queue) on failure. env is only borrowed:
 * it is encoded before this returns. done() is never called from inside
 * spool_msg_commit(), except on a spool opened without an event base, where
 * the commit is synchronous and done() runs before this returns. */
void spool_msg_commit(struct spool_msg *m, const struct envelope *env,
                      void (*done)(void *arg, int ok, const char *id), void *arg);
/* Discards a message being received. */
void spool_msg_abort(struct spool_msg *m);

/*
 * Header fields added at accept (DKIM signatures, List-Unsubscribe), put
 * in front of a message without copying it (spool_front.c; the layout is
 * format version 2, docs/spool.md):
 *
 *	m = spool_msg_new(sp, &err);
 *	spool_msg_write(m, ...) ...         the message, as usual
 *	spool_msg_reserve_front(m);         while the buffer holds all of it
 *	spool_msg_flush(m);                 every byte in the file
 *	spool_msg_pread(m, off, p, n) ...   read it back (the page cache)
 *	spool_msg_prepend(m, fields, n);    in front of what is there
 *	spool_msg_commit(m, ...);           the size counts the fields
 *
 * Threads: a message belongs to one thread at a time; everything from
 * flush to prepend may run on a worker (they block on the file), as long
 * as the loop does not touch m meanwhile. All return 0, or -1 with the
 * message doomed (its commit fails; the error is logged), except pread.
 */
/* Room for the fields: 0 reserved (or reserved before); 1 too late, the
 * buffer was written out already (64 KiB of message: prepend will copy
 * the message instead); -1 I/O error. Cheap: one pwrite of the header. */
int spool_msg_reserve_front(struct spool_msg *m);
/* Writes what the buffer holds (needed before pread, prepend and copy). */
int spool_msg_flush(struct spool_msg *m);
/* Up to n bytes of the message from offset off (0: its first byte, the
 * fields put in front included); the count read (0 at the end), -1 on
 * error (errno; the message is not doomed by it). */
long spool_msg_pread(struct spool_msg *m, uint64_t off, void *p, size_t n);
/* Puts p[0..n) in front of the message (and of fields put there before).
 * The reserved front holds a few KiB; more fields than fit move the
 * message to a larger front first (a copy inside tmp/). n is at most
 * SPOOL_PREPEND_MAX (spool_format.h). */
int spool_msg_prepend(struct spool_msg *m, const void *p, size_t n);
/* A new message (its own ID, in tmp/) holding the same bytes as m, m
 * flushed; it takes no spool_msg_write, only prepend and commit (or
 * abort). For a message split per recipient at accept. NULL and *err. */
struct spool_msg *spool_msg_copy(struct spool_msg *m, char **err);

/* Reading and steering. All return 0 ok, -1 error with a malloc'd *err;
 * then errno is ENOENT if there is no such message, EINVAL for a malformed
 * ID, EBADMSG for an unreadable file. */
int spool_load(struct spool *sp, const char *id, struct envelope **out, char **err);
/* Opens the message content (what goes on the wire after DATA) for reading:
 * bytes [*offset, *offset + *len) of *fd. The caller closes *fd; the bytes
 * stay readable after a spool_delete() of the message. */
int spool_open_body(struct spool *sp, const char *id, int *fd, uint64_t *offset, uint64_t *len,
                    char **err);
/* Calls cb for each queued message in ID (= arrival) order; stops if cb
 * returns non-zero. env belongs to the spool and is freed when cb returns.
 * Unreadable messages are skipped with a warning (recovery quarantines them). */
int spool_foreach(struct spool *sp, int (*cb)(void *arg, struct envelope *env), void *arg,
                  char **err);
/* A page of the queue: up to max IDs after `after` (NULL: from the
 * start), in ID order; *more says whether others follow. Memory and
 * sorting follow max, whatever the queue's size. Free with
 * spool_free_page(). */
int spool_list_page(struct spool *sp, const char *after, size_t max, char ***out, size_t *n,
                    int *more, char **err);
void spool_free_page(char **ids, size_t n);
int spool_delete(struct spool *sp, const char *id, char **err);
/* The delivery engine's delete, once every recipient is final: no fsync of
 * the directory. If a power loss undoes the unlink, the message comes back
 * with its recipients open and is sent again (at least once, never lost);
 * a crash of the process alone cannot undo it. */
int spool_remove_done(struct spool *sp, const char *id, char **err);
/* Records the new states of rcpts[idx[0..n)] (the envelope's array) in one
 * append; with sync, durably (fdatasync). A deferral needs no sync: if it
 * is lost, the recipient is only tried earlier. A final state does: if it
 * is lost, the recipient is sent again. Blocks: call it off the loop. */
int spool_set_rcpt_states(struct spool *sp, const char *id, const struct rcpt *rcpts,
                          const size_t *idx, size_t n, int sync, char **err);
/* Durably records a recipient's new state (appends a record; fdatasync).
 * Blocks for the fdatasync: call it off the event loop thread. */
int spool_set_rcpt_state(struct spool *sp, const char *id, size_t rcpt_index, const struct rcpt *r,
                         char **err);

/* Records the steering fields (held_since, held_secs, deleted) of
 * rcpts[idx[0..n)] in one append of steering records; with sync,
 * durably. Blocks. */
int spool_set_rcpt_steering(struct spool *sp, const char *id, const struct rcpt *rcpts,
                            const size_t *idx, size_t n, int sync, char **err);

/* Makes durable everything written to the spool so far (syncfs of its file
 * system): bulk operations append and unlink without a sync each, then
 * call this once per slice. Blocks. */
int spool_sync(struct spool *sp, char **err);

/* 1 if a server holds this spool (for the CLI, opened without a base). */
int spool_server_running(struct spool *sp);
/* For the CLI before it changes the spool of a stopped server: takes the
 * lock a server takes, so that no server starts (and recovers) while it
 * works. -1 with a malloc'd *err, errno EWOULDBLOCK when a server holds
 * it. Released by spool_close(). */
int spool_lock(struct spool *sp, char **err);

/*
 * Filters (spool_select.c, PURE): which open recipients a listing or a
 * bulk operation picks. docs/queue.md has the rules.
 */
enum { SPOOL_SEL_PENDING = 1, SPOOL_SEL_DEFERRED = 2, SPOOL_SEL_HELD = 4 };
struct spool_filter {
	const char *domain; /* the recipient's domain (any case, root dot ignored); NULL: any */
	const char *sender; /* the envelope sender (any case; "<>": null); NULL: any */
	unsigned states;    /* SPOOL_SEL_* bits (as rcpt_state_shown() says); 0: any open */
};
/* 1 if addr's domain is domain. */
int spool_domain_is(const char *addr, const char *domain);
/* "pending", "deferred", "held" -> its SPOOL_SEL_ bit; 0 for anything else. */
unsigned spool_filter_state(const char *name);
/* 1 if r is open and passes the state and domain rules. */
int spool_filter_rcpt(const struct spool_filter *f, const struct rcpt *r);
int spool_filter_sender(const struct spool_filter *f, const struct envelope *e);
/* The recipients of e that pass (0 when its sender does not). */
size_t spool_filter_count(const struct spool_filter *f, const struct envelope *e);

/*
 * Steering in slices (spool_steer.c): hold, release or delete recipients
 * of the messages named, or of every queued message, a slice at a time,
 * so that a million messages neither hold a server's loop nor go without
 * progress. Works the same from a server (a slice per work-pool job) and
 * from the CLI on a stopped server's spool (after spool_lock()).
 *
 *   HOLD     open recipients not yet held get held_since = now;
 *   RELEASE  held recipients: held_secs grows by the time held,
 *            held_since = 0; their next attempt is unchanged;
 *   DELETE   open recipients are dropped: the file goes when that takes
 *            every open one, otherwise they are marked deleted.
 * With a domain, only recipients at that domain are picked.
 *
 * Each step writes its slice without a sync per file, then spool_sync()s
 * once: what a step reports is durable. With journal set (DELETE on a
 * stopped server), the recipients a step drops are first written, durably,
 * to the deletion journal, which the next server start logs (below).
 */
enum spool_op { SPOOL_HOLD, SPOOL_RELEASE, SPOOL_DELETE };

struct spool_steer_opts {
	enum spool_op op;
	char *const *ids; /* these messages; NULL: every queued one */
	size_t n_ids;
	const char *domain; /* only recipients at this domain; NULL: every open one */
	int journal;
	int64_t now; /* unix seconds */
};

/* What a step did to one message. Messages named by ID are always
 * reported (n 0 when nothing was to be done); others only when changed. */
struct spool_steered {
	char id[ID_LEN + 1];
	struct envelope *env; /* as it is now, or NULL when it could not be read */
	size_t *idx;          /* the recipients changed */
	size_t n;
	int removed;    /* the file is gone (DELETE took its last open recipients) */
	int unreadable; /* env NULL: the file cannot be read (DELETE removes it anyway) */
	char *error;    /* named by ID and not done: no such message, unreadable... */
};

struct spool_steer;
struct spool_steer *spool_steer_begin(struct spool *sp, const struct spool_steer_opts *o,
                                      char **err);
/* Up to max messages: appends what it did to *out (*n_out grows; free
 * with spool_steered_free()). Returns how many messages are left (0:
 * done), or -1 with *err when the environment fails (then only end). */
long spool_steer_step(struct spool_steer *st, size_t max, struct spool_steered **out, size_t *n_out,
                      char **err);
/* The step in two halves, for a server that updates its index between
 * them: read reads up to max messages and picks their recipients
 * (returns as step does); write makes v[0..n) so on disk (journal,
 * records or unlinks, one sync): 0, or -1 with *err. A message that
 * cannot be done gets v[i].error and n 0. */
long spool_steer_read(struct spool_steer *st, size_t max, struct spool_steered **out, size_t *n_out,
                      char **err);
int spool_steer_write(struct spool_steer *st, struct spool_steered *v, size_t n, char **err);
/* Messages listed at begin, and looked at so far. */
size_t spool_steer_total(const struct spool_steer *st);
size_t spool_steer_done(const struct spool_steer *st);
void spool_steer_end(struct spool_steer *st);
void spool_steered_free(struct spool_steered *v, size_t n);

/*
 * The deletion journal (spool_journal.c): DATA_DIR/spool/deleted holds
 * the recipients that `queue delete` dropped while no server ran. The next
 * server calls spool_journal_replay() once, after recovery has begun: fn
 * gets each recipient whose deletion took effect (the message is gone, or
 * the recipient's state is "deleted"), with when it was deleted; the
 * journal is then removed. Returns the count, or -1 with *err.
 */
typedef void (*spool_journal_fn)(void *arg, int64_t when, const char *id, const char *addr);
long spool_journal_replay(struct spool *sp, spool_journal_fn fn, void *arg, char **err);

/* Counters for /metrics and the benchmark. */
struct spool_stats {
	uint64_t commits;        /* messages made durable */
	uint64_t commit_batches; /* rounds of the committer */
	uint64_t fsyncs;         /* fsync/fdatasync calls made */
};
void spool_get_stats(struct spool *sp, struct spool_stats *out);

/* How many threads issue the fdatasync calls of one batch (default 4,
 * 1..16). For tests and the benchmark; call before the first commit. */
void spool_set_sync_threads(struct spool *sp, unsigned n);

#endif
