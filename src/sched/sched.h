/*
 * sched: what to deliver when. Keeps a small index of every open
 * recipient (not the messages: they stay on disk), grouped per message and
 * destination domain into items; items wait in their destination's ready
 * queue or, deferred, in a heap ordered by due time with one timer for the
 * earliest. Destinations apply their limits (connections, messages per
 * connection, rate) and adaptive shaping (sched_policy) and hand items to
 * outbound connections (smtpc). Results are written back to the spool
 * (per-recipient state; the file goes when no recipient is left open),
 * bounces become DSNs (dsn), and one log line goes out per recipient and
 * attempt. MX hosts and address literals that are this relay itself, or
 * inside blocked_destinations, are not used (sched_route.c). Memory
 * follows what is in use: idle destinations are freed.
 *
 * A destination is a domain and a lane: messages that demand REQUIRETLS,
 * messages of an account bound to a [pool.NAME], and messages that waived
 * the domain's TLS policy (TLS-Required: No, met when that policy refused
 * every host) each get their own connections, held to their own rules.
 */
#ifndef POSTHORN_SCHED_H
#define POSTHORN_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct ssl_ctx_st; /* OpenSSL's SSL_CTX, opaque here */

struct event_base;
struct conf;
struct spool;
struct dns;
struct work_pool;
struct policy;
struct deliv;
struct events;
struct store;
struct sched;

struct sched_deps {
	struct event_base *base;
	const struct conf *conf;
	struct spool *spool;
	struct dns *dns;
	struct work_pool *work;
	struct ssl_ctx_st *client_tls;
	/* Outbound TLS policies (MTA-STS, DANE, TLS-RPT) and account pools;
	 * NULL: opportunistic TLS by [relay] outbound_tls only, no pools but
	 * the [domain.X] ones. */
	struct policy *policy;
	/* Delivery events, for counters (may be NULL): event is "delivered",
	 * "deferred" (a recipient's first deferral only) or "bounced"; rcpt is
	 * the recipient's address. */
	void (*count)(void *arg, const char *account, const char *rcpt, const char *event);
	void *count_arg;
	/* Deliverability (may be NULL): VERP return paths, outcomes for the
	 * reputation guard, hard bounces into the suppression list, accounts
	 * whose mail is held (sched_result.c). */
	struct deliv *deliv;
	/* The event writer (may be NULL): each recipient's delivered,
	 * deferred or bounced event. */
	struct events *events;
	/* [cluster] redis (may be NULL): max_rate shared by every node, at
	 * 1/nodes on each while it cannot be reached (sched_cluster.c). */
	struct cluster_redis *redis;
	uint64_t nodes;
	const char *node_id; /* this node's, for its connection leases */
	/* The database (may be NULL): the account of a message that a stopped
	 * server's `queue delete` dropped, for its recipients' events. */
	struct store *store;
};

struct sched *sched_new(const struct sched_deps *deps);

/*
 * Recovery while serving (sched_load.c): rv (from spool_recover_begin(),
 * taken over) is read a slice at a time on the work pool, and each good
 * message indexed on the loop as its slice comes back, so that the server
 * answers and accepts mail from its first second; progress is logged
 * (event=recovery_progress) at least every 10,000 messages. The deletion
 * journal of a stopped server's `queue delete` is logged first. done(arg,
 * good) runs on the loop at the end: good is the count of messages
 * recovered, or -1 when recovery failed (the server must stop).
 */
struct spool_recovery;
void sched_recover(struct sched *s, struct spool_recovery *rv, void (*done)(void *arg, long good),
                   void *arg);
/* 1 while sched_recover() is reading; *done and *total say how far. */
int sched_recovering(const struct sched *s, size_t *done, size_t *total);

/* A message was just committed (smtpd, API, DSN): env is what was
 * committed (with its queue ID), borrowed for the call. No disk read. */
struct envelope;
void sched_add(struct sched *s, const struct envelope *env);
/* The same for a caller without the envelope at hand: reads it back. */
void sched_add_id(struct sched *s, const char *id);
/* Make deferred recipients of message id (or of all messages, id NULL) due
 * now. The attempt that follows is the operator's, not the schedule's:
 * it does not count as an attempt and, if it fails, the recipient waits
 * the same step again (docs/queue.md). Returns how many recipients it
 * made due. */
long sched_retry(struct sched *s, const char *id);
/* The message was deleted behind our back: drop it from the index. */
void sched_forget(struct sched *s, const char *id);

/*
 * Steering (sched_steer.c): hold, release or delete recipients on disk
 * (spool_steer) and in the index, in slices on the work pool: a slice's
 * disk work on a worker, its index changes and log lines on the loop, so
 * that a million messages never hold the loop for long. One operation
 * runs at a time; the others wait their turn. Each recipient changed is
 * logged, "queue=ID event=held|released|deleted to=<ADDR> by=BY".
 *
 * progress(arg, done, total) runs after each slice (messages looked at,
 * of the total; 0 of 0 while the operation waits behind another); done(arg,
 * res) once at the end (res valid during the call). Both on the loop.
 */
struct sched_steer_res {
	size_t messages, recipients; /* changed */
	char **failed;               /* "ID: why" for messages named that could not be done */
	size_t n_failed;
	const char *error; /* the operation failed (the environment); NULL: ok */
};
struct sched_steer_req {
	int op;           /* enum spool_op */
	char *const *ids; /* copied; NULL: every queued message */
	size_t n_ids;
	const char *domain; /* copied; NULL: every open recipient */
	const char *by;     /* who asks, for the log: "cli", "api" */
	void (*progress)(void *arg, size_t done, size_t total);
	void (*done)(void *arg, const struct sched_steer_res *res);
	void *arg;
};
void sched_steer(struct sched *s, const struct sched_steer_req *req);
/* An operation's caller is gone (its client hung up): it still runs to
 * the end, without calling back. */
void sched_steer_detach(struct sched *s, void *arg);

/*
 * Paused destinations (sched_pause.c): DATA_DIR/paused, written by
 * `posthorn pause|resume`; a paused destination starts no transaction
 * (mail keeps arriving and waits). sched_pause_reload() reads the file
 * again (at start, and when the CLI says it changed): 0, or -1 with
 * *err (nothing changed then).
 */
int sched_pause_reload(struct sched *s, char **err);
/* The CLI's side. read: the list in data_dir (empty without a file); 0,
 * or -1 with *err. change: pauses (pause 1) or resumes name (a
 * destination in normal form, sched_pause_name(); NULL: all) and writes
 * the file durably; 1 changed, 0 nothing to change, -1 with *err (also
 * for resuming one destination while all are paused). */
struct sched_pauses;
int sched_pause_read(const char *data_dir, struct sched_pauses *out, char **err);
int sched_pause_change(const char *data_dir, const char *name, int pause, char **err);
/* New per-destination limits ([domain.*] sections of c, which must outlive
 * the scheduler): applied to every destination at once (SIGHUP). */
void sched_set_domains(struct sched *s, const struct conf *c);
/* Starts no new transaction; done() runs once none is in progress. */
void sched_drain(struct sched *s, void (*done)(void *arg), void *arg);
/* At exit, before the work pool and the spool close: nothing new starts;
 * the results of attempts that ended are still written, from then on on
 * the caller's thread (the work pool may be gone), so that a report
 * committed while the spool closes leaves its recipients final on disk. */
void sched_stop(struct sched *s);
/* Cancels the route lookups in flight: may come before or after
 * dns_free(). */
void sched_free(struct sched *s);

struct sched_stats {
	uint64_t messages, items_ready, items_deferred, items_active, connections;
	uint64_t destinations;    /* known now: idle ones are freed after a while */
	uint64_t recipients_held; /* held (queue hold), in no item */
	int64_t oldest_created;   /* arrival of the oldest queued message; 0: none */
	int paused_all;           /* pause --all */
	size_t paused;            /* destinations paused by name */
};
void sched_get_stats(const struct sched *s, struct sched_stats *out);
/* Open recipients of every queued message (held ones too): a walk over
 * the messages, for the node's heartbeat every few seconds (not /metrics). */
uint64_t sched_open_recipients(const struct sched *s);

#endif
