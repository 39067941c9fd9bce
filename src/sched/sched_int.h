/*
 * sched_int.h: what the files of src/sched/ share and nobody else sees.
 *
 *   sched.c         the index (messages and their items), the deferred
 *                   heap, the public API
 *   sched_dest.c    destinations: ready queues, connections, routes,
 *                   pumping, connecting, rate limiting
 *   sched_result.c  the end of an attempt: results applied to recipients,
 *                   written to the spool, bounce reports
 *   sched_route.c   which addresses a route may use: loops, blocked_destinations
 *   sched_load.c    the queue read at start, in slices, while serving
 *   sched_steer.c   an operator's hold, release and delete, in slices
 *   sched_pause.c   paused destinations (DATA_DIR/paused)
 *   sched_policy.c, sched_pause_list.c  the arithmetic, the pause list (PURE)
 *
 * A message's open recipients are in its items, or held by an operator
 * (struct qmsg says which), and an item is in no other message's list.
 * An item (struct qitem) is the open recipients of one message for one
 * destination, at most SCHED_RCPTS_PER_TXN of them: one SMTP transaction.
 * An item is in exactly one place: its destination's ready queue, the
 * deferred heap, a connection (active), or finishing (its results being
 * written). Every transition goes through sched_item_set().
 */
#ifndef POSTHORN_SCHED_INT_H
#define POSTHORN_SCHED_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conf/conf.h"
#include "sched/sched.h"
#include "sched/sched_policy.h"
#include "smtpc/smtpc_policy.h"
#include "spool/spool.h"
#include "util/htable.h"
#include "util/util.h"

#define SCHED_RCPTS_PER_TXN 100  /* RFC 5321 4.5.3.1.8: servers take at least 100 */
#define SCHED_IDLE_KEEP_MS  2000 /* an idle connection waits this long for more work */
/* Items whose results are being written at once: bounds the envelopes in
 * memory when a dead destination defers its whole ready queue. */
#define SCHED_FINISH_MAX 256
/* An item of a paused account waits this long before it is looked at
 * again (a resume makes it due at once). */
#define SCHED_HELD_PARK_S 3600
/* A VERP return path, bounces+ID=HASH@DOMAIN (deliv_verp.h), and its NUL. */
#define SCHED_RETURN_PATH_MAX 300

/* An idle destination (no item, no connection, no lookup) is freed this
 * long after its last activity; the sweep looks every SCHED_SWEEP_MS. */
#define SCHED_DEST_IDLE_MS 60000
#define SCHED_SWEEP_MS     30000

enum where { IT_NONE, IT_READY, IT_DEFERRED, IT_ACTIVE, IT_FINISHING };

/* ---- sched_route.c ---- */

/* Where this relay listens: a connection to an address inside net at port
 * reaches it. */
struct sched_self_net {
	struct conf_net net;
	uint16_t port;
};
struct sched_self {
	struct sched_self_net *v;
	size_t n;
};

/* The listeners of c, a wildcard one (0.0.0.0, ::) as every local address
 * (getifaddrs) and all of loopback; what self held is replaced. */
void sched_self_load(struct sched_self *self, const struct conf *c);
void sched_self_free(struct sched_self *self);

enum sched_screen {
	SCHED_SCREEN_OK,      /* r holds the usable addresses (others dropped) */
	SCHED_SCREEN_BLOCKED, /* every address is in nets: bounce 5.4.4 */
	SCHED_SCREEN_LOOP,    /* no host better than this relay: bounce 5.4.6 */
};

struct dns_route;
/* Screens route r of destination dest (to be reached at port) in place:
 * drops the hosts at or above the preference of one that is this relay
 * and the addresses inside nets[0..n_nets), logging each. On BLOCKED, why
 * names the first address dropped ("host[addr]"). */
enum sched_screen sched_route_screen(struct dns_route *r, const char *dest, uint16_t port,
                                     const struct conf_net *nets, size_t n_nets,
                                     const struct sched_self *self, char *why, size_t cap);

/* A small set of recipient indexes (a message's held or dropped ones). */
struct idxset {
	uint32_t *v;
	uint32_t n, cap;
};

struct qitem;
TAILQ_HEAD(item_list, qitem);

/*
 * A message in the index. Its open recipients (n_open) are in its items,
 * or held (not in any item until released), or on an attempt while an
 * operator held or deleted them: those are in held or dropped too, and the
 * attempt's result is applied with that in mind (sched_result.c). The
 * message leaves the index when it has neither items nor held recipients.
 */
struct qmsg {
	struct htable_node hn; /* in sched->msgs */
	TAILQ_ENTRY(qmsg) age; /* in sched->by_age, oldest first */
	char id[ID_LEN + 1];
	int64_t created;
	uint32_t n_open;
	uint32_t n_items;
	struct item_list items; /* its items, wherever they are */
	struct idxset *held;    /* held recipients, or NULL */
	struct idxset *dropped; /* deleted while on an attempt, or NULL */
	int forgotten;
};
TAILQ_HEAD(msg_list, qmsg);

struct dest;
struct dconn;
struct smtpc_conn;
struct envelope;
struct smtpc_job_rcpt;

/* What an item needs only during an attempt: loaded at its start. */
struct active {
	struct envelope *env;
	int fd;
	uint64_t body_off, body_len;
	struct smtpc_job_rcpt *jr;
};

/* Kept small: one per queued (message, destination), and a queue may
 * hold a million. A single recipient's index lives inline (one). */
struct qitem {
	struct qmsg *m;
	struct dest *d;
	uint32_t *idx; /* &one, or an array of cap */
	uint32_t n, cap;
	uint32_t one;
	int manual; /* due by an operator's retry: the attempt is not counted */
	enum where where;
	int64_t due;
	size_t heap_i;
	TAILQ_ENTRY(qitem) link;  /* in its destination's ready queue */
	TAILQ_ENTRY(qitem) mlink; /* in its message's items */
	struct active *act;       /* NULL unless active */
};

struct dconn {
	struct dest *d;
	struct smtpc_conn *c;
	struct qitem *item;
	int idle;
	int64_t idle_since_ms;
	TAILQ_ENTRY(dconn) link;
	char return_path[SCHED_RETURN_PATH_MAX]; /* the job's VERP MAIL FROM */
};

/* What sets a destination's connections apart besides its domain (see
 * sched.h). The default lane is all zero. */
struct sched_lane {
	int requiretls;   /* messages with MAIL FROM ... REQUIRETLS */
	int optout;       /* messages saying TLS-Required: No */
	const char *pool; /* an account's [pool.NAME] (borrowed while looking up) */
};

struct tls_dest_pol;

struct dest {
	struct htable_node hn; /* in sched->dests, by key */
	struct sched *s;
	char *name; /* the domain (or smarthost, or literal) */
	char *key;  /* name and lane: "example.com" for the default lane */
	int requiretls, optout;
	char *pool_name;             /* the account pool of the lane, or NULL */
	unsigned pool_turn;          /* the pool address the next connection starts at */
	struct tls_dest_pol *pol;    /* of the last route (for connections, logs) */
	uint64_t pol_id;             /* the policy lookup in flight, 0: none */
	struct dns_route *pol_route; /* the route waiting for its policy */
	size_t n_items;              /* items of this destination, wherever they are */
	int64_t active_ms;           /* last time it had something to do */
	const struct conf_domain *lim;
	struct sched_shape shape;
	struct item_list ready;
	size_t n_ready;
	TAILQ_HEAD(, dconn) conns;
	unsigned n_conns;         /* READY or busy */
	unsigned n_opening;       /* connecting, route being resolved included */
	uint64_t route_id;        /* the route lookup in flight (dns), 0: none */
	uint16_t route_port;      /* where the route's hosts listen */
	struct sched_bucket rate; /* max_rate */
	/* said QUIT, the peer not gone yet: they keep their slot till then */
	TAILQ_HEAD(, dconn) closing;
	unsigned n_closing;
	/* max_rate shared through Redis (sched_cluster.c) */
	int rate_token;        /* a token granted by Redis, not used yet */
	int rate_asking;       /* a request to Redis is out */
	int64_t rate_due_ms;   /* Redis said: no token before then */
	int64_t rate_local_ms; /* Redis failed to answer: alone until then */
	unsigned conn_allow;   /* connections Redis leased this node */
	int conn_asking;       /* a lease request is out */
	unsigned conn_asked;   /* what it asked for: no more until the answer */
	int64_t conn_retry_ms; /* granted less than asked: not again before */
	int64_t conn_local_ms; /* Redis failed to answer a lease: alone until then */
	struct event *ev_pump;
	int paused; /* posthorn pause: no new transaction (sched_pause.c) */
	/* A dead destination defers its ready queue in bounded steps. */
	int failing;
	struct smtpc_verdict fail_v;
	TAILQ_ENTRY(dest) fail_link;
};

struct sched {
	struct sched_deps deps;
	int rate_fallback; /* the last shared-rate decision was taken alone */
	const struct conf *conf;
	const struct conf *domains_conf; /* [domain.*] limits: replaced on SIGHUP */
	struct htable msgs;              /* struct qmsg by queue ID */
	struct msg_list by_age;          /* the same, oldest first (the gauge) */
	struct qmsg *recovered_tail;     /* while recovering: the last recovered */
	uint64_t n_held;                 /* held recipients */
	struct sched_pauses pauses;      /* paused destinations */
	struct sched_recovery *rec;      /* recovery in progress (sched_load.c) */
	struct steer_op *steer_first;    /* operations in order; the first runs */
	struct steer_op *steer_last;
	struct htable dests;     /* struct dest by name */
	struct event *ev_sweep;  /* frees idle destinations, reloads self */
	struct event *ev_leases; /* renews the connection leases (sched_cluster.c) */
	struct sched_self self;  /* where this relay listens */
	struct qitem **heap;
	size_t heap_n, heap_cap;
	struct event *ev_heap;
	size_t n_active, n_finishing;
	size_t n_closing; /* connections that said QUIT, until the peer closed them */
	TAILQ_HEAD(, dest) failing;
	struct report *reports; /* bounce reports of this event, not started yet */
	int draining;
	int drained_sent; /* the drained event is on its way */
	int stopped;      /* shutting down: results are dropped, nothing new starts */
	void (*drained)(void *arg);
	void *drained_arg;
	struct event *ev_drained;
};

/* Where recipient r's queue_lifetime starts counting: its message's
 * arrival, moved later by the time it spent held (queue hold). */
static inline int64_t rcpt_clock_start(const struct envelope *e, const struct rcpt *r)
{
	uint64_t held = r->held_secs;

	if (held > (uint64_t)INT64_MAX / 2)
		held = (uint64_t)INT64_MAX / 2;
	return e->created > INT64_MAX - (int64_t)held ? INT64_MAX : e->created + (int64_t)held;
}

static inline int64_t sched_now_s(void)
{
	return clock_now_s();
}

static inline int64_t sched_now_ms(void)
{
	return (int64_t)clock_mono_ms();
}

/* ---- sched.c: items and the index ---- */

struct qmsg *sched_msg_find(struct sched *s, const char *id);
/* Removes m from the index if it has no item and no held recipient. */
void sched_msg_maybe_remove(struct sched *s, struct qmsg *m);
/* Indexes env (a new message, or one recovery read): its open recipients,
 * held ones set aside. Returns how many open recipients it has (0 when it
 * was already known). recovered: it was in the queue before this start. */
long sched_index(struct sched *s, const struct envelope *env, int recovered);
/* Puts recipients idx[0..n) of m (env is its envelope) into items, as
 * many as needed, and places them. */
void sched_index_rcpts(struct sched *s, struct qmsg *m, const struct envelope *env,
                       const size_t *idx, size_t n);
/* Takes recipient k out of m's ready or deferred items (freeing an item
 * left empty). 1 if it was there, 0 if not (on an attempt, or held). */
int sched_item_take_rcpt(struct sched *s, struct qmsg *m, uint32_t k);
/* 1 if recipient k of m is in one of its items, wherever. */
int sched_msg_has_rcpt(const struct qmsg *m, uint32_t k);

/* A deleted recipient's `bounced` event, reason "deleted" (sched_steer.c;
 * thread-safe; time_ms 0: now). */
void sched_deleted_event(struct sched *s, const char *account, const char *id, const char *addr,
                         uint32_t attempts, int64_t time_ms);

/* Index sets (sched_steer.c). */
int idxset_has(const struct idxset *set, uint32_t k);
void idxset_add(struct idxset **set, uint32_t k);
/* 1 if k was there. */
int idxset_del(struct idxset **set, uint32_t k);
void idxset_free(struct idxset **set);

/* Moves an item between places; the only function that does. */
void sched_item_set(struct sched *s, struct qitem *it, enum where to);
/* Places a new or re-deferred item by its due time: ready or deferred. */
void sched_item_place(struct sched *s, struct qitem *it);
/* Takes the item out of its place and the index (its message goes with
 * its last item). */
void sched_item_free(struct sched *s, struct qitem *it);
/* Frees an item that is in no place, without touching the index (exit). */
void sched_item_discard(struct qitem *it);
/* Releases what an attempt loaded (envelope, body fd). */
void sched_item_release(struct qitem *it);
/* The destination key of a recipient address: its domain, lower case (or
 * the smarthost). */
void sched_dest_key(const struct sched *s, const char *addr, char *out, size_t cap);
/* Sends the drained event when draining and nothing is in flight. */
void sched_check_drained(struct sched *s);

/* ---- sched_dest.c: destinations ---- */

/* The destination named name, made on first use: the default lane. */
struct dest *sched_dest_get(struct sched *s, const char *name);
/* The destination of name in lane, made on first use. */
struct dest *sched_dest_lane(struct sched *s, const char *name, const struct sched_lane *lane);
/* The lane of a message's recipients (REQUIRETLS, the account's pool). */
void sched_lane_of(const struct sched *s, const struct envelope *env, struct sched_lane *out);
/* "none", "mta-sts", "dane", "requiretls": the policy d's last route put
 * on its first host, for the log line of an attempt without connection. */
const char *sched_dest_policy(const struct dest *d);
/* The next destination of a walk over sched->dests (htable_iter_init()),
 * NULL at the end. Only the destination returned last may be freed
 * meanwhile (sched_dest_sweep() does), and none added. */
static inline struct dest *sched_dest_next(struct htable_iter *it)
{
	struct htable_node *n = htable_iter_next(it);

	return n ? HTABLE_ENTRY(n, struct dest, hn) : NULL;
}
/* Frees the destinations idle since before now_ms - SCHED_DEST_IDLE_MS
 * (no item, no connection, no lookup, no pause or rate wait that a fresh
 * one would forget); returns how many. */
size_t sched_dest_sweep(struct sched *s, int64_t now_ms);
/* Frees d, the records of its connections and its ready items (at exit:
 * the connections themselves went with smtpc_conn_free_all()) and cancels
 * its route lookup. The caller takes it out of sched->dests, or is
 * freeing the table. */
void sched_dest_free(struct dest *d);
/* Pumps d after delay_ms (0: at the next turn of the loop). */
void sched_dest_pump_later(struct dest *d, int64_t delay_ms);
/* sched_cluster.c: a token of d's max_rate shared through deps.redis (1),
 * or not now (0, *wait_ms: pump again then at the latest). */
int sched_rate_shared(struct dest *d, int64_t *wait_ms);
/* How many of want more connections d may open with have open or opening,
 * under max_connections leased through deps.redis (want itself without). */
unsigned sched_conns_cap(struct dest *d, unsigned have, unsigned want);
/* The lease renewal timer: started with the scheduler, freed with it. */
void sched_leases_start(struct sched *s);
void sched_leases_free(struct sched *s);
/* Draining: idle connections say QUIT now. */
void sched_dest_quit_idle(struct dest *d);
/* Loads what an attempt of an item just made active needs. -1 when it
 * cannot start (it was freed, or parked for a minute). */
int sched_item_start(struct sched *s, struct qitem *it);
/* Dead destinations go on failing their ready items while fewer than
 * SCHED_FINISH_MAX are being written. */
void sched_failing_continue(struct sched *s);

/* ---- sched_result.c: the end of an attempt ---- */

/* The verdicts of an attempt (v[i] for it->idx[i], or v[0] for all when
 * same_for_all); c is NULL when no connection was made (DNS, all hosts
 * failed). Takes it->act's envelope; the item is FINISHING until its
 * results are written. Bounce reports wait in s->reports, one per
 * message, until sched_reports_start(): call it once the event that ended
 * the attempts is handled, so that one report covers every recipient of
 * a message that ended in it. */
void sched_apply_results(struct sched *s, struct qitem *it, const struct smtpc_verdict *v,
                         int same_for_all, struct smtpc_conn *c);
/* Builds the waiting reports (on the work pool), then commits them. */
void sched_reports_start(struct sched *s);
/* fn on the work pool, then done on the loop; once the scheduler is
 * stopped (exit: the pool may be gone), both at once on the caller's
 * thread. */
void sched_run_job(struct sched *s, void (*fn)(void *), void (*done)(void *), void *arg);

/* ---- sched_steer.c, sched_load.c ---- */

/* At exit: operations still waiting go, without calling back. */
void sched_steer_free_all(struct sched *s);
/* At exit: a recovery still reading stops (the rest waits on disk). */
void sched_recover_free(struct sched *s);

/* For an item just loaded: 1 when its account is paused by the reputation
 * guard; the item is then parked (deferred) until the account is resumed. */
int sched_account_held(struct sched *s, struct qitem *it);

#endif
