/*
 * deliv_int.h: what the files of src/deliv/ share (deliv.c, deliv_sync.c,
 * deliv_inbound.c) and nobody else sees. Everything here is used on the
 * loop thread only, but for the fields a worker job reads while the loop
 * does not change them (the key, the store).
 */
#ifndef POSTHORN_DELIV_INT_H
#define POSTHORN_DELIV_INT_H

#include <stddef.h>
#include <stdint.h>

#include "deliv/deliv.h"
#include "events/events.h"
#include "store/store.h"
#include "util/htable.h"

/* Message IDs a pause keeps from delivery, per account, at most. */
#define DELIV_PARKED_MAX 1000000
/* VERP records waiting for the flush, at most (a stuck database). */
#define DELIV_VERP_PENDING_MAX 100000

struct deliv_acct {
	struct htable_node hn;
	char name[COUNTER_ACCOUNT_MAX + 1];
	int64_t quota_set[2]; /* as stored: STORE_QUOTA_DEFAULT or a number */
	struct deliv_quota q;
	int q_dirty;              /* counts changed since the last flush */
	uint64_t remote_reserved; /* of q.reserved: reserved in Redis */
	int64_t remote_start[2];  /* the windows they were reserved in */
	struct deliv_rep rep;
	uint64_t rep_dirty;    /* bit i: slot i changed since the last flush */
	int rep_reset;         /* resumed: the stored slots go at the next flush */
	struct deliv_rep pend; /* [cluster] redis: counted here, not pushed to Redis yet */
	int rep_asking;        /* a push is out */
	int64_t rep_seen;      /* the last shared answer that had volume in the window */
	int64_t rep_read;      /* the last push without counts of its own (a read) */
	int64_t paused_at;     /* 0: not paused */
	char pause_reason[STORE_PAUSE_REASON_MAX + 1];
	int pause_pending; /* the pause is not in the database yet */
	int64_t resumed_at;
	char (*parked)[ID_LEN + 1]; /* messages kept from delivery by the pause */
	size_t n_parked, cap_parked;
	uint64_t q_owed[2];      /* granted alone (Redis unreachable), not in Redis yet */
	int64_t q_owed_start[2]; /* the windows q_owed counts in */
	uint64_t q_fb_reserved;  /* of q.reserved: granted alone (Redis unreachable) */
	int q_pushing;           /* a push of q_owed is out */
};

struct deliv_verp_rec {
	char id[ID_LEN + 1];
	char *account;
	int64_t created;
	char *rcpts; /* one a line */
};

struct deliv {
	struct deliv_deps deps;
	const struct conf *conf;
	unsigned char key[DELIV_VERP_KEY_LEN];
	unsigned char own_key[DELIV_VERP_KEY_LEN]; /* verp.key when not the cluster's */
	int has_own_key;     /* own_key accepted in return paths, never made */
	struct htable accts; /* struct deliv_acct by name */
	struct deliv_rep_limits limits;
	struct deliv_verp_rec *verp; /* waiting for the flush */
	size_t n_verp, cap_verp;
	uint64_t verp_dropped;
	struct event *ev_tick;
	unsigned ticks;
	int syncing;          /* a flush job is out */
	int64_t data_version; /* the database's, when the settings were read */
	int have_version;
	int q_fallback;   /* the last quota decision was local though Redis is configured */
	int redis_gone;   /* deps.redis freed (shutdown) */
	int rep_fallback; /* the guard last judged local windows though Redis is configured */
};

/* deliv.c */
struct deliv_acct *deliv_acct(struct deliv *d, const char *name);
/* Applies an account's stored settings (start and reload). */
void deliv_acct_settings(struct deliv *d, const struct store_account_deliv *a);
/* The events deliverability records (suppressed, bounced, complained) go
 * through here: one log line, and events_emit() when deps.events is set. */
void deliv_event(struct deliv *d, const struct events_event *e);
/* Judges rates r of account a (not paused); pauses it when over. */
void deliv_rep_check(struct deliv *d, struct deliv_acct *a, const struct deliv_rates *r);

/* deliv_cluster.c */
uint64_t deliv_quota_share(const struct deliv *d);
void deliv_quota_remote_release(struct deliv *d, struct deliv_acct *a, uint64_t n);
void deliv_quota_remote_commit(struct deliv_acct *a, uint64_t n);
/* A quota decision was taken alone though Redis is configured (counted,
 * the first logged). */
void deliv_quota_note_local(struct deliv *d);
/* Each tick, Redis up: what each account was granted alone while Redis
 * was unreachable is added to its shared counters. */
void deliv_quota_push_owed(struct deliv *d);

/* deliv_rep_cluster.c */
/* One outcome of a, to be pushed to Redis: 1 when the shared window will
 * judge it (Redis up), 0 when the local window must (no Redis, or down). */
int deliv_rep_remote_note(struct deliv *d, struct deliv_acct *a, int64_t now, enum deliv_outcome o);
/* Each tick: the counts of each account to Redis, and the shared sums
 * judged as they come back. */
void deliv_rep_push_all(struct deliv *d);

/* deliv_sync.c */
int deliv_load(struct deliv *d, char **err);
void deliv_sync_start(struct deliv *d);
void deliv_sync_final(struct deliv *d);

#endif
