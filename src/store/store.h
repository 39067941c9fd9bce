/*
 * store: the only owner of the database handle (SQLite, WAL, in
 * DATA_DIR/posthorn.db). Schema and numbered migrations, accounts and their
 * credentials and sender domains, and the delivery counters behind
 * `posthorn stats`, API keys, message templates, suppression lists.
 * Later: events.
 *
 * Every call blocks (disk, argon2id): the daemon calls them from a worker
 * thread, never from the event loop thread. One struct store may be used
 * from several threads (the connection is opened in serialized mode).
 * Changes made by another process (the CLI) are seen by the next call.
 */
#ifndef POSTHORN_STORE_H
#define POSTHORN_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* The schema version this build migrates to (the number of migrations). */
int store_schema_version(void);

/* Opens (creating DATA_DIR and the database if needed) and migrates.
 * NULL on failure with a malloc'd message in *err. */
struct store *store_open(const char *data_dir, char **err);
/* As store_open, but with a non-empty url ([cluster] postgres) the store
 * lives in that PostgreSQL database (data_dir is still made: the spool is
 * there); with a non-empty secret_file ([cluster] secret_key_file) DKIM
 * private keys are kept in the database too, sealed under it. */
struct store *store_open_url(const char *data_dir, const char *url, const char *secret_file,
                             char **err);
void store_close(struct store *st);

/* Account names: 1-64 chars of [A-Za-z0-9._@+-]. "default" is built in
 * (exists after store_open, has no password, cannot AUTH, cannot be
 * deleted). Domains are stored lower-case. */
int store_account_name_valid(const char *name);

/* All return 0 on success, -1 on failure with a malloc'd *err
 * (e.g. "account 'x' already exists"). */
int store_user_add(struct store *st, const char *name, const char *password,
                   const char *const *domains, size_t n_domains, char **err);
int store_user_del(struct store *st, const char *name, char **err);
int store_user_passwd(struct store *st, const char *name, const char *password, char **err);
int store_user_add_domains(struct store *st, const char *name, const char *const *domains,
                           size_t n_domains, char **err);

/* Calls cb once per account, sorted by name; domains is "a.com,b.org" or "". */
int store_user_list(struct store *st, void (*cb)(void *arg, const char *name, const char *domains),
                    void *arg, char **err);

/* 1 password matches, 0 no such account or wrong password, -1 error.
 * Takes the same time whether or not the account exists. */
int store_user_verify(struct store *st, const char *name, const char *password);

/* 1 if account owns domain (case-insensitive), 0 if not, -1 error. */
int store_user_owns_domain(struct store *st, const char *name, const char *domain);

/* Added by the store module. */

/* 1 if d is a DNS name: labels of letters, digits and inner hyphens
 * (1-63 each) joined by single dots, 1-253 characters in all. Any case. */
int store_domain_valid(const char *d);

/* 1 if the account exists, 0 if not, -1 error. */
int store_user_exists(struct store *st, const char *name);

/* Removes sender domains from an account; a domain it does not own is an
 * error and nothing is removed. Same return convention as above. */
int store_user_del_domains(struct store *st, const char *name, const char *const *domains,
                           size_t n_domains, char **err);

/* ---- one-click unsubscribe per account (store_account_unsub.c) -------------
 *
 * accounts.unsubscribe: SMTP mail of an account with the flag on gets
 * List-Unsubscribe (src/unsub/). Off for a new account. The same return
 * convention as above ("no such account 'x'").
 */
int store_account_set_unsubscribe(struct store *st, const char *name, int on, char **err);
int store_account_unsubscribe(struct store *st, const char *name, int *on, char **err);
/* The names of the accounts with the flag on, sorted (free with
 * store_strv_free). */
int store_accounts_unsubscribe(struct store *st, char ***names, size_t *n, char **err);

/* ---- delivery counters (store_stats.c) ------------------------------------
 *
 * One counter per (hour, account, recipient domain, event). The daemon
 * tallies in memory on its loop thread (struct store_counter_batch, below)
 * and a worker writes the tally once a second with store_counts_add().
 */

/* The events counted, in the order `posthorn stats` prints them. */
enum counter_event {
	COUNTER_ACCEPTED,
	COUNTER_DELIVERED,
	COUNTER_DEFERRED,
	COUNTER_BOUNCED,
	COUNTER_SUPPRESSED,
	COUNTER_EVENTS /* how many there are */
};

/* "accepted", "delivered", ...; NULL when ev is out of range. */
const char *counter_event_name(int ev);
/* The enum counter_event of a name (exact, lower-case), or -1. */
int counter_event_parse(const char *name);

#define COUNTER_BUCKET_SECONDS 3600
/* Start of the hour (unix seconds) that holds unix time t. */
int64_t counter_bucket(int64_t t);

/* Longest account and domain a counter accepts, in bytes. */
#define COUNTER_ACCOUNT_MAX 64
#define COUNTER_DOMAIN_MAX  255

/* One increment. The strings are the caller's and only read during the call. */
struct store_count {
	int64_t bucket_hour; /* start of the hour, unix seconds; other times are floored */
	const char *account;
	const char *domain; /* recipient domain; stored lower-case */
	const char *event;  /* a counter_event_name() */
	uint64_t n;         /* 0 is skipped; at most INT64_MAX */
};

/*
 * Adds every c[i].n to its counter (INSERT ... ON CONFLICT DO UPDATE), all
 * in one transaction: on failure nothing was added, and the caller may try
 * the same array again. An invalid entry fails the call before anything is
 * written. 0 ok, -1 with a malloc'd *err.
 */
int store_counts_add(struct store *st, const struct store_count *c, size_t n, char **err);

/*
 * Calls cb for each (domain, event) with its count summed over the hours
 * from the one holding `since` (unix seconds) onwards, sorted by domain
 * then event name; account NULL sums all accounts. Rows with no count are
 * not reported. The strings are valid during the call only. cb runs after
 * the store's lock is released, so it may call the store. 0 ok, -1 with a
 * malloc'd *err (cb was not called).
 */
int store_counts_query(struct store *st, int64_t since, const char *account,
                       void (*cb)(void *arg, const char *domain, const char *event, uint64_t n),
                       void *arg, char **err);

/* ---- the in-memory tally (store_counter_batch.c) ---------------------------
 *
 * PURE (libc + util): the event loop thread, which must not touch SQLite,
 * counts here; identical keys merge. A batch belongs to one thread; a set
 * taken from it belongs to whoever holds it (typically a worker, for
 * store_counts_add), until counter_set_free().
 *
 * Bounded: from COUNTER_BATCH_FLUSH distinct keys on, counter_batch_add()
 * returns 1, asking the caller to take and write now rather than at the
 * next tick. If the writer is stuck (the database locked) and the batch
 * reaches COUNTER_BATCH_MAX keys, increments of new keys are dropped and
 * counted (set->dropped), so that memory stays bounded; increments of keys
 * already held still merge.
 */
#define COUNTER_BATCH_FLUSH 10000
#define COUNTER_BATCH_MAX   100000

struct store_counter_batch;

struct store_counter_set {
	struct store_count *v; /* strings owned by the set */
	size_t n;
	uint64_t dropped; /* increments lost to COUNTER_BATCH_MAX since the last take */
	char **keys;      /* private: the memory v[].account and v[].domain point into */
};

struct store_counter_batch *counter_batch_new(void);
void counter_batch_free(struct store_counter_batch *b);

/*
 * Adds n to (the hour holding `now`, account, lower-cased domain, event).
 * 0 added; 1 added (or dropped, at COUNTER_BATCH_MAX) and the batch is
 * full: take it now; -1 invalid (empty or too long account or domain,
 * unknown event, n above INT64_MAX): nothing added. n = 0 adds nothing.
 */
int counter_batch_add(struct store_counter_batch *b, int64_t now, const char *account,
                      const char *domain, const char *event, uint64_t n);

/* Distinct keys held. */
size_t counter_batch_len(const struct store_counter_batch *b);

/* Hands over everything held and empties the batch; NULL when there is
 * nothing (no keys and nothing dropped). */
struct store_counter_set *counter_batch_take(struct store_counter_batch *b);

void counter_set_free(struct store_counter_set *s);

/* ---- API keys (store_apikey.c) ---------------------------------------------
 *
 * A key is "ph_" and 64 hex digits (32 random bytes). Only its SHA-256 is
 * stored; the key itself is returned once, by store_apikey_create(). A key
 * belongs to one account (deleting the account deletes its keys); an admin
 * key sees every account. Revoked keys stay listed, and never work again.
 */
#define APIKEY_PREFIX   "ph_"
#define APIKEY_LEN      (3 + 64)
#define APIKEY_NAME_MAX 64
#define APIKEY_HASH_LEN 32

struct store_apikey {
	int64_t id;
	char account[COUNTER_ACCOUNT_MAX + 1];
	char name[APIKEY_NAME_MAX + 1];
	int admin;
	int64_t created_at;   /* unix seconds */
	int64_t last_used_at; /* 0: never */
	int64_t revoked_at;   /* 0: active */
};

/* Which keys a caller may see: every key (admin), or the non-admin keys
 * of one account. account NULL with admin 1: all (the CLI). */
struct store_apikey_scope {
	const char *account;
	int admin;
};

/* PURE: 1 if name is 0-64 bytes of printable ASCII or UTF-8 (no control
 * characters, no tab). */
int store_apikey_name_valid(const char *name);
/* PURE: 1 if key looks like a key ("ph_" + 64 lower-case hex digits). */
int store_apikey_format_ok(const char *key);
/* SHA-256 of the key string. */
void store_apikey_hash(const char *key, unsigned char hash[APIKEY_HASH_LEN]);

/* Makes a key for account; key receives it (NUL-terminated), *id its ID. */
int store_apikey_create(struct store *st, const char *account, const char *name, int admin,
                        char key[APIKEY_LEN + 1], int64_t *id, char **err);
/* The active key with this hash: 1 found (*out filled), 0 none or revoked,
 * -1 error. */
int store_apikey_lookup(struct store *st, const unsigned char hash[APIKEY_HASH_LEN],
                        struct store_apikey *out, char **err);
/* Calls cb per key in scope, by ID, after the lock is released. */
int store_apikey_list(struct store *st, const struct store_apikey_scope *scope,
                      void (*cb)(void *arg, const struct store_apikey *k), void *arg, char **err);
/* Revokes key id if in scope. On success *out (if not NULL) holds the key
 * as revoked. Besides -1 (database), STORE_APIKEY_NOT_FOUND ("no such API
 * key N", also for a key out of scope) and STORE_APIKEY_REVOKED ("API key
 * N is already revoked"), each with *err. rename: the same, but a revoked
 * key may be renamed. */
#define STORE_APIKEY_NOT_FOUND (-2)
#define STORE_APIKEY_REVOKED   (-3)
int store_apikey_revoke(struct store *st, int64_t id, const struct store_apikey_scope *scope,
                        struct store_apikey *out, char **err);
int store_apikey_rename(struct store *st, int64_t id, const struct store_apikey_scope *scope,
                        const char *name, struct store_apikey *out, char **err);
/* Records last use times (unix seconds), n keys in one transaction; a
 * time older than the one stored is ignored. */
int store_apikey_touch(struct store *st, const int64_t *ids, const int64_t *times, size_t n,
                       char **err);

/* The sender domains of an account, sorted; *out is a malloc'd array of
 * malloc'd strings. 0 ok (also for an account without domains), -1 error
 * ("no such account 'x'"). */
int store_account_domains(struct store *st, const char *account, char ***out, size_t *n,
                          char **err);
/* One cheap read: 0 if the database answers, -1 with *err if not. */
int store_ping(struct store *st, char **err);
/* ---- the daemon's counter writer (store_counter_writer.c) ------------------
 *
 * Counts on the loop thread into a batch and writes it from a worker of wp
 * once a second (or when the batch is full), one write at a time; a failed
 * write is retried with the next. Every call runs on the loop thread.
 * Shutdown: store_counters_stop() before the work pool is freed (the last
 * batch goes to a worker), store_counters_free() after it (what is left is
 * written on the calling thread) and before store_close().
 */
struct event_base;
struct work_pool;
struct store_counters;

struct store_counters *store_counters_new(struct event_base *base, struct store *st,
                                          struct work_pool *wp);
/* One event ("accepted", "delivered", ...) for one recipient address; the
 * counter is its domain's. */
void store_counters_count(struct store_counters *sc, const char *account, const char *rcpt,
                          const char *event);
void store_counters_stop(struct store_counters *sc);
void store_counters_free(struct store_counters *sc);

/* ---- DKIM signing keys (store_dkim.c) --------------------------------------
 *
 * One row per (domain, selector). algorithm is "rsa2048" or "ed25519",
 * state "pending", "active" or "retired" (the database checks both). The
 * rules of state changes are dkim/'s (dkim_rotate.h); the store records
 * them, each change a compare-and-set so that the CLI and a server that
 * both see a record appear cannot move a key twice.
 */
struct store_dkim_key {
	char *domain; /* lower case */
	char *selector;
	char *algorithm;
	char *state;
	int64_t created;   /* unix seconds */
	int64_t activated; /* 0: not yet */
	int64_t retired;   /* 0: not yet */
	char *key_path;    /* as dkim/ stored it: relative to data_dir, or absolute */
	/* The private key (PEM), or NULL. store_dkim_add keeps it sealed in the
	 * database when the store has a secret key; store_dkim_list gives it
	 * back when the row has one that opens under the store's key. */
	char *key_pem;
};

/* Adds a key (domain stored lower-case). A (domain, selector) that exists
 * is an error: "DOMAIN already has a key with selector S". */
int store_dkim_add(struct store *st, const struct store_dkim_key *k, char **err);

/*
 * The keys of domain (NULL: every domain) in state (NULL: any), sorted by
 * domain, creation time and selector, into *out (a malloc'd array, NULL
 * when there is none; free it with store_dkim_keys_free).
 */
int store_dkim_list(struct store *st, const char *domain, const char *state,
                    struct store_dkim_key **out, size_t *n, char **err);
void store_dkim_keys_free(struct store_dkim_key *v, size_t n);

/* One state change of one key; `at` (unix seconds) becomes its activated
 * or retired time when `to` is "active" or "retired". */
struct store_dkim_change {
	const char *domain, *selector, *from, *to;
	int64_t at;
};

/*
 * Applies c[0..n) in one transaction, all or none. Each applies only if
 * the key is still in state `from`. 0 done; 1 a key was no longer in its
 * `from` state (another process moved it first): nothing changed; -1 error.
 */
int store_dkim_change(struct store *st, const struct store_dkim_change *c, size_t n, char **err);

/* ---- message templates (store_tmpl.c) --------------------------------------
 *
 * Per account, by name. The store keeps the text of each part as it was
 * given; compiling (src/tmpl) and caching are the API's (src/api/api.h).
 * Every write gives the template a new random revision: a cache that
 * holds a compiled copy compares revisions to know it is still current.
 */
#define STORE_TMPL_NAME_MAX    64
#define STORE_TMPL_SUBJECT_MAX 998     /* bytes: an RFC 5322 line */
#define STORE_TMPL_PART_MAX    1048576 /* bytes of text, and of html */
#define STORE_TMPL_MAX         1000    /* templates per account */

/* Besides -1 (database), with *err: */
#define STORE_TMPL_NOT_FOUND  (-2) /* no such template in this account */
#define STORE_TMPL_EXISTS     (-3) /* create: the name is taken */
#define STORE_TMPL_FULL       (-4) /* create: the account has STORE_TMPL_MAX */
#define STORE_TMPL_NO_ACCOUNT (-5)

struct store_tmpl {
	char name[STORE_TMPL_NAME_MAX + 1];
	char *subject;      /* malloc'd */
	char *text, *html;  /* malloc'd; NULL: the template has no such part */
	int64_t revision;   /* > 0, new at every write */
	int64_t created_at; /* unix seconds */
	int64_t updated_at;
};

/* What a create or an update writes; text or html may be NULL, not both. */
struct store_tmpl_in {
	const char *subject, *text, *html;
};

/* PURE: 1 if name is 1-64 bytes of [A-Za-z0-9._-] starting with a letter
 * or a digit (so it is its own URL path segment). */
int store_tmpl_name_valid(const char *name);
/* Frees the strings of t and zeroes it; safe twice. */
void store_tmpl_clear(struct store_tmpl *t);

/* 0 with *out (if not NULL) the template as stored; STORE_TMPL_* or -1.
 * The fields are checked against the bounds above (a bad one: -1). */
int store_tmpl_create(struct store *st, const char *account, const char *name,
                      const struct store_tmpl_in *in, struct store_tmpl *out, char **err);
int store_tmpl_update(struct store *st, const char *account, const char *name,
                      const struct store_tmpl_in *in, struct store_tmpl *out, char **err);
/* *out (if not NULL): the template as it was. */
int store_tmpl_delete(struct store *st, const char *account, const char *name,
                      struct store_tmpl *out, char **err);
/* 0 with *out filled (clear it after), STORE_TMPL_NOT_FOUND, or -1. */
int store_tmpl_get(struct store *st, const char *account, const char *name, struct store_tmpl *out,
                   char **err);
/* The revision alone (one index probe): 0, STORE_TMPL_NOT_FOUND or -1. */
int store_tmpl_revision(struct store *st, const char *account, const char *name, int64_t *rev,
                        char **err);
/*
 * Templates of an account by name (byte order) after `after` (NULL or ""
 * from the first), at most limit (1..1000) of them, without their text
 * and html (subject only). cb runs after the lock is released; *more is 1
 * when templates follow the last one given. 0, STORE_TMPL_NO_ACCOUNT, -1.
 */
int store_tmpl_list(struct store *st, const char *account, const char *after, size_t limit,
                    void (*cb)(void *arg, const struct store_tmpl *t), void *arg, int *more,
                    char **err);

/* ---- suppression lists (store_supp.c, store_supp_addr.c) ------------------
 *
 * Per account: addresses mail must not go to, each with a reason and the
 * time it was added. Lookups compare the address case-insensitively
 * (ASCII letters), domain and local part alike: RFC 5321 lets a host treat
 * local parts as case-sensitive, but next to none does, and a list that
 * let John@x through after john@x bounced would not protect anyone. The
 * address is kept as first given, with its domain lower-cased.
 * A quoted local part that needs no quotes ("john"@x) is the same address
 * as the plain one (john@x). Subaddresses (john+news@x) are other
 * addresses.
 *
 * Cost (measured in docs/deliverability.md): store_supp_check() is one
 * indexed lookup, microseconds, but it blocks like every call here: the
 * daemon calls it on a worker, never on the loop; a batch of recipients
 * goes through store_supp_check_many(), one lock and one statement.
 */
#define SUPP_ADDRESS_MAX   254 /* bytes, as RFC 5321 bounds a path */
#define SUPP_REASON_MAX    512 /* bytes; longer reasons are cut */
#define SUPP_LIST_MAX      1000
#define SUPP_REASON_MANUAL "manual" /* the reason of an add that gives none */

#define STORE_SUPP_NO_ACCOUNT  (-2)
#define STORE_SUPP_BAD_ADDRESS (-3)

struct store_supp {
	char key[SUPP_ADDRESS_MAX + 1];     /* what lookups compare */
	char address[SUPP_ADDRESS_MAX + 1]; /* as kept */
	char reason[SUPP_REASON_MAX + 1];
	int64_t created_at; /* unix seconds */
};

/*
 * PURE: the address as kept (display) and as compared (key), each of at
 * most SUPP_ADDRESS_MAX bytes. Surrounding spaces and one pair of angle
 * brackets are dropped; the domain (after the last '@') is lower-cased and
 * loses a trailing dot; a quoted local part whose content is a dot-string
 * loses its quotes; the key is the display form with ASCII letters
 * lower-cased. 0 ok; -1 with *why ("no '@'", ...) when the input is not
 * shaped like an address (control characters, empty parts, too long). It
 * does not check the full RFC 5321 syntax: callers that take addresses
 * from people (API, CLI) check display with smtp_address_valid() too.
 */
int store_supp_normalize(const char *addr, char display[SUPP_ADDRESS_MAX + 1],
                         char key[SUPP_ADDRESS_MAX + 1], const char **why);
/* PURE: a reason as stored: control characters (line breaks too) become
 * spaces, spaces at the ends go, and it is cut to SUPP_REASON_MAX bytes on
 * a UTF-8 character boundary. "" becomes SUPP_REASON_MANUAL. */
void store_supp_reason_clean(const char *reason, char out[SUPP_REASON_MAX + 1]);

/* 1 suppressed (*out filled if not NULL), 0 not (also for an address that
 * cannot be normalized, or an unknown account), -1 error. */
int store_supp_check(struct store *st, const char *account, const char *addr,
                     struct store_supp *out, char **err);
/* n addresses at once: found[i] is 1 with out[i] filled, or 0. Returns the
 * number found, or -1. */
int store_supp_check_many(struct store *st, const char *account, const char *const *addrs, size_t n,
                          unsigned char *found, struct store_supp *out, char **err);
/*
 * Adds addr with reason (cleaned as above). Idempotent: 1 added, 0 it was
 * there already and nothing changed (the first time and reason are kept:
 * they say why the address is on the list). *out (if not NULL) is the
 * entry as stored. STORE_SUPP_NO_ACCOUNT, STORE_SUPP_BAD_ADDRESS or -1,
 * with *err.
 */
int store_supp_add(struct store *st, const char *account, const char *addr, const char *reason,
                   struct store_supp *out, char **err);
/* 1 removed (*out: the entry it was), 0 not on the list, or the errors of
 * store_supp_add. */
int store_supp_remove(struct store *st, const char *account, const char *addr,
                      struct store_supp *out, char **err);

struct store_supp_query {
	const char *account;
	const char *contains; /* NULL or "": every entry; else a part of the address (any case) */
	const char *after;    /* NULL or "": from the first; else a key: the entries after it */
	size_t limit;         /* 1..SUPP_LIST_MAX */
};
/* Entries by key (byte order). cb runs after the lock is released; *more
 * is 1 when entries follow the last one given. 0, STORE_SUPP_NO_ACCOUNT
 * or -1. A search (contains) reads every entry of the account after
 * `after` until limit match. */
int store_supp_list(struct store *st, const struct store_supp_query *q,
                    void (*cb)(void *arg, const struct store_supp *s), void *arg, int *more,
                    char **err);

/* ---- outbound TLS policy (store_tls.c) --------------------------------------
 *
 * MTA-STS policies (RFC 8461 5.1: cached for max_age, kept across
 * restarts), the TLSA records last seen per MX host, TLS-RPT counts and
 * the delivery of each report (RFC 8460: sent once), and the pool an
 * account sends from. Domains and hosts are stored lower-case.
 */
struct store_sts {
	char *domain;
	char *id;     /* the policy id of the _mta-sts TXT record */
	char *mode;   /* "none", "testing" or "enforce" */
	char *policy; /* the body as fetched */
	int64_t max_age, fetched_at, expires_at;
};
/* 1 and *out (free with store_sts_clear) when a policy is cached, 0 when
 * none is, -1 on error. */
int store_sts_get(struct store *st, const char *domain, struct store_sts *out, char **err);
/* Inserts or replaces the domain's policy. */
int store_sts_put(struct store *st, const struct store_sts *p, char **err);
void store_sts_clear(struct store_sts *p);
/* Up to max domains (soonest expiry first) whose policy, at unix time now,
 * is past half of its max_age and not expired: those to refresh. Free with
 * store_strv_free. */
int store_sts_due(struct store *st, int64_t now, size_t max, char ***domains, size_t *n,
                  char **err);
/* Frees n malloc'd strings and their array (the string lists of store_*). */
void store_strv_free(char **v, size_t n);

/* What a TLSA lookup of _25._tcp.HOST gave for destination domain:
 * state "usable", "unusable", "failed" or "none"; records "3 1 1 HEX" lines
 * joined by newlines. Replaces what host had. */
struct store_tlsa {
	char *host, *domain, *state, *records;
	int64_t seen_at;
};
int store_tlsa_put(struct store *st, const struct store_tlsa *t, char **err);
/* The hosts seen for domain, by host name, into *out (free with
 * store_tlsa_free). */
int store_tlsa_list(struct store *st, const char *domain, struct store_tlsa **out, size_t *n,
                    char **err);
void store_tlsa_free(struct store_tlsa *v, size_t n);

/* One TLS-RPT count: n sessions of a policy (the report's JSON "policy"
 * object, as text) of domain in the period [start, end) that ended in
 * result ("" for success; else an RFC 8460 result type), with these
 * addresses and MX name ("" when not known or, for successes, not kept). */
struct store_tlsrpt_count {
	const char *domain;
	int64_t start, end;
	const char *policy, *result, *sending_ip, *mx_host, *receiving_ip;
	uint64_t n;
};
/* Adds every c[i].n in one transaction (all or nothing). */
int store_tlsrpt_add(struct store *st, const struct store_tlsrpt_count *c, size_t n, char **err);

/* A period with counts. Strings owned by the array (store_tlsrpt_free). */
struct store_tlsrpt_row {
	char *domain, *policy, *result, *sending_ip, *mx_host, *receiving_ip;
	int64_t start, end;
	uint64_t n;
};
void store_tlsrpt_free(struct store_tlsrpt_row *v, size_t n);
/* Up to max periods (domain, start, end; n and the rest unset) that ended
 * at or before `before` and whose report is not done, oldest first. */
int store_tlsrpt_due(struct store *st, int64_t before, size_t max, struct store_tlsrpt_row **out,
                     size_t *n, char **err);
/* The counts of one period of domain; start 0: the latest period. */
int store_tlsrpt_rows(struct store *st, const char *domain, int64_t start,
                      struct store_tlsrpt_row **out, size_t *n, char **err);
/* The delivery state of a report to rua: "pending" (or absent: *attempts
 * 0), "sent" or "failed" (a static string), and when it was last tried. */
int store_tlsrpt_sent_get(struct store *st, const char *domain, int64_t start, const char *rua,
                          const char **state, int *attempts, int64_t *at, char **err);
/* Records an attempt (state "pending", attempts + 1) or its end ("sent",
 * "failed"). */
int store_tlsrpt_sent_set(struct store *st, const char *domain, int64_t start, const char *rua,
                          const char *state, int64_t at, char **err);
/* The report of the period is done: every rua got it or gave up. Counts
 * and delivery rows of periods that ended before keep_after go. */
int store_tlsrpt_done(struct store *st, const char *domain, int64_t start, int64_t at,
                      int64_t keep_after, char **err);

/* The pool an account sends from: NULL (no pool) or a [pool.NAME] name
 * (letters, digits, '-', '_'; not checked against the config here). */
int store_user_set_pool(struct store *st, const char *name, const char *pool, char **err);
/* Every account bound to a pool: names[i] sends from pools[i]. Both arrays
 * and their strings are malloc'd (free with store_pools_free). */
int store_account_pools(struct store *st, char ***names, char ***pools, size_t *n, char **err);
void store_pools_free(char **names, char **pools, size_t n);

/* ---- events, messages and their counters (store_events.c, store_events_query.c) ----
 *
 * What happened to every message, recipient by recipient (SPEC 6): the
 * messages table (one row per accepted message), the events table (one row
 * per state change, ids given in write order) and pre-aggregated counters
 * per hour, account, recipient domain and tag for GET /v1/stats. The
 * daemon's event writer (src/events/) is the only writer of events; it
 * writes batches with store_events_write(). The SQL is what PostgreSQL
 * accepts too (see the migration in store.c for the one DDL difference).
 */

/* The event types of SPEC 6, in this order everywhere (JSON, counters). */
enum event_type {
	EVENT_ACCEPTED,
	EVENT_DELIVERED,
	EVENT_DEFERRED,
	EVENT_BOUNCED,
	EVENT_SUPPRESSED,
	EVENT_OPENED,
	EVENT_CLICKED,
	EVENT_COMPLAINED,
	EVENT_TYPES /* how many there are */
};
#define EVENT_TYPES_ALL ((1u << EVENT_TYPES) - 1)

/* "accepted", ...; NULL out of range. */
const char *event_type_name(int type);
/* The type of an exact lower-case name, or -1. */
int event_type_parse(const char *name);

/* A malloc'd copy of an address with its domain part lower-cased, as
 * events store recipients and as filters compare them. */
char *store_addr_normal(const char *addr);

/* Bounds, in bytes, of what a row holds (the writer truncates to them). */
#define EVENT_ADDR_MAX     512  /* recipient, sender */
#define EVENT_SUBJECT_MAX  1000 /* a subject is cut at a UTF-8 boundary */
#define EVENT_DETAIL_MAX   8192 /* detail JSON text */
#define EVENT_METADATA_MAX 16384
#define EVENT_TAG_MAX      128
#define EVENT_TAGS_MAX     16

/* One accepted message. Strings are the caller's, read during the call. */
struct store_message {
	const char *id; /* queue ID */
	const char *account;
	const char *from;    /* envelope sender, "" for the null sender */
	const char *subject; /* "" when unknown */
	const char *const *tags;
	size_t n_tags;        /* at most EVENT_TAGS_MAX */
	const char *metadata; /* a JSON object as text; NULL: {} */
	int64_t created_ms;
};

/* One event to write. */
struct store_event {
	int type; /* enum event_type */
	const char *account;
	const char *message_id; /* NULL: none (a recipient refused before it had one) */
	const char *recipient;  /* NULL: none */
	int64_t time_ms;
	const char *detail; /* a JSON object as text; NULL: {} */
	/* opened and clicked are kept once per (message, recipient[, link]):
	 * a repeat updates the first event's detail ("last", "count",
	 * "machine") instead of adding one, and is not counted again. link:
	 * the clicked URL, also the detail's "url". */
	const char *link;
};

struct store_event_batch {
	const struct store_message *messages;
	size_t n_messages;
	const struct store_event *events;
	size_t n_events;
	const char *key; /* the batch's, on every attempt (store_events_once.h); NULL: none */
};

/*
 * Writes a batch in one transaction: the messages (a message already there
 * is kept as it is), then the events in order (each gets the next id and
 * its message's tags), and the counters. All or nothing: on failure
 * nothing was written and the same batch may be written again. Invalid
 * entries (no account, unknown type, detail not a JSON object...) fail the
 * call before the transaction with STORE_EVENT_INVALID (writing the batch
 * again cannot help). *n_new (may be NULL): events added (repeats of
 * opened/clicked are not). 0 ok, -1 (the database) or STORE_EVENT_INVALID
 * with a malloc'd *err.
 */
#define STORE_EVENT_INVALID (-4)
int store_events_write(struct store *st, const struct store_event_batch *b, size_t *n_new,
                       char **err);

/* An event as read back; strings valid during the callback. */
struct store_event_row {
	int64_t id;
	int type;
	const char *account;
	const char *message_id; /* NULL when none */
	const char *recipient;  /* NULL when none */
	int64_t time_ms;
	const char *detail; /* JSON object text */
	const char *tags;   /* JSON array text */
};

/* Which events a query returns: every condition set must hold. */
struct store_event_filter {
	const char *account;    /* NULL: every account */
	unsigned types;         /* bit (1 << type) per type; 0: every type */
	const char *recipient;  /* exact (the domain part in any case) */
	const char *message_id; /* exact */
	const char *tag;        /* the message has this tag */
	int64_t since_ms;       /* time >= since (0: no bound) */
	int64_t until_ms;       /* time < until (0: no bound) */
	int64_t after; /* the cursor: ids after this one in the order (0: from the start) */
	int desc;      /* newest first */
	size_t limit;  /* at most this many rows (1..10000) */
};

/* Calls cb per event, in id order (descending with f->desc), after the
 * store's lock is released. 0 ok, -1 with *err. */
int store_events_query(struct store *st, const struct store_event_filter *f,
                       void (*cb)(void *arg, const struct store_event_row *e), void *arg,
                       char **err);

/* A message as read back; strings valid during the callback or until
 * store_message_row_free(). */
struct store_message_row {
	char *id;
	char *account;
	char *from;
	char *subject;
	char *tags;     /* JSON array text */
	char *metadata; /* JSON object text */
	int64_t created_ms;
};
void store_message_row_free(struct store_message_row *m);

/* The message id, if account may see it (account NULL: any). 1 found
 * (*out filled; free it), 0 not found, -1 error. */
int store_message_get(struct store *st, const char *account, const char *id,
                      struct store_message_row *out, char **err);

struct store_message_filter {
	const char *account;   /* NULL: every account */
	const char *recipient; /* a recipient of the message (domain part in any case) */
	const char *tag;
	int64_t since_ms, until_ms; /* created in [since, until); 0: no bound */
	const char *after;          /* the cursor: a queue ID, or NULL */
	int desc;
	size_t limit; /* 1..10000 */
};

/* Calls cb per message in queue ID (= arrival) order, after the lock is
 * released. 0 ok, -1 with *err. */
int store_messages_query(struct store *st, const struct store_message_filter *f,
                         void (*cb)(void *arg, const struct store_message_row *m), void *arg,
                         char **err);

/* GET /v1/stats: counters summed per hour, day, recipient domain or tag. */
enum store_stats_group { STATS_BY_HOUR, STATS_BY_DAY, STATS_BY_DOMAIN, STATS_BY_TAG };

struct store_stats_row {
	int64_t start;   /* STATS_BY_HOUR/DAY: start of the hour or UTC day, unix seconds */
	const char *key; /* STATS_BY_DOMAIN/TAG: the domain or tag */
	uint64_t n[EVENT_TYPES];
};

/* Sums the counters of the hours that overlap [from, to) (unix seconds;
 * 0: no bound), for account (NULL: all), grouped as asked, in key order
 * (at most 10,000 rows). cb runs after the lock is released. 0 ok, -1
 * with *err. */
int store_event_stats(struct store *st, const char *account, int64_t from, int64_t to,
                      enum store_stats_group group,
                      void (*cb)(void *arg, const struct store_stats_row *row), void *arg,
                      char **err);

/*
 * Retention: deletes at most `limit` rows of each of events older than
 * events_before_ms, messages accepted before it, and counter hours
 * starting before counters_before (unix seconds), oldest first, each table
 * in its own short transaction so that no write waits long. *deleted: rows
 * deleted in all. Call again while *deleted is not 0.
 */
int store_events_prune(struct store *st, int64_t events_before_ms, int64_t counters_before,
                       size_t limit, size_t *deleted, char **err);

/* Webhooks: of account's events of the given types (0: all) after id
 * `after`, those that happened before before_ms: *last the highest id
 * (0: none), *n how many. */
int store_events_expired(struct store *st, const char *account, unsigned types, int64_t after,
                         int64_t before_ms, int64_t *last, int64_t *n, char **err);

/* The highest event id written (0: none). */
int store_events_last_id(struct store *st, int64_t *id, char **err);

/* ---- webhooks (store_webhooks.c) --------------------------------------------
 *
 * An account's webhooks: where its events are POSTed, the secret they are
 * signed with, the types wanted, and the delivery state (the last event
 * id delivered or given up, and the current run of failures), kept here
 * so that it survives restarts. A webhook starts at the last event written
 * when it is made: no history is sent.
 */
#define WEBHOOK_URL_MAX         2048
#define WEBHOOK_SECRET_MIN      16
#define WEBHOOK_SECRET_MAX      128
#define WEBHOOK_DESCRIPTION_MAX 256
#define WEBHOOK_FAILURES_KEPT   20
#define WEBHOOK_ERROR_MAX       300
#define STORE_NOT_FOUND         (-2)

struct store_webhook {
	int64_t id;
	char account[COUNTER_ACCOUNT_MAX + 1];
	char *url;
	char *secret;
	char *description;
	unsigned types;     /* bits of enum event_type; 0 is never stored (all = EVENT_TYPES_ALL) */
	int unrestricted;   /* made with an admin key: exempt from webhook_blocked_destinations */
	int64_t created_at; /* unix seconds */
	int64_t last_event_id;    /* events up to this id are done */
	int64_t failures;         /* failed attempts in a row */
	int64_t first_failure_ms; /* of the current run, 0: none */
	int64_t next_attempt_ms;  /* 0: now */
};
void store_webhook_clear(struct store_webhook *w);

/* A failed POST, as recorded (the last WEBHOOK_FAILURES_KEPT are kept). */
struct store_webhook_failure {
	int64_t time_ms;
	int64_t first_event, last_event; /* the batch's event ids */
	int status;                      /* HTTP status, 0 when none came */
	const char *error;               /* what went wrong */
	int dropped;                     /* 1: retries ended, the batch was given up */
};

/* Which webhooks a caller may touch: one account's, or all (account NULL). */
int store_webhook_create(struct store *st, const struct store_webhook *w, int64_t *id, char **err);
/* Calls cb per webhook in scope, by id, after the lock is released. */
int store_webhook_list(struct store *st, const char *account,
                       void (*cb)(void *arg, const struct store_webhook *w), void *arg, char **err);
/* 0 found (*out filled; store_webhook_clear() it), STORE_NOT_FOUND, -1. */
int store_webhook_get(struct store *st, const char *account, int64_t id, struct store_webhook *out,
                      char **err);
/* Sets url, secret, description (each when not NULL) and types (when not 0). */
int store_webhook_update(struct store *st, const char *account, int64_t id, const char *url,
                         const char *secret, const char *description, unsigned types, char **err);
int store_webhook_delete(struct store *st, const char *account, int64_t id, char **err);
/* Takes or renews, for node, the right to POST webhook id's next batch until
 * until_ms: 1 held (w's cursor and failure state set from the database), 0
 * another node holds it past now_ms (or the webhook is gone), -1 error. */
int store_webhook_claim(struct store *st, int64_t id, const char *node, int64_t now_ms,
                        int64_t until_ms, struct store_webhook *w, char **err);
/* The batch up to last_event_id was delivered: the cursor moves, the run of
 * failures ends. */
int store_webhook_delivered(struct store *st, int64_t id, int64_t last_event_id, char **err);
/* A failed attempt: recorded (older failures beyond WEBHOOK_FAILURES_KEPT
 * go), with the run's new state; when f->dropped the cursor moves to
 * f->last_event (the events up to it are given up). */
int store_webhook_failed(struct store *st, int64_t id, const struct store_webhook_failure *f,
                         int64_t failures, int64_t first_failure_ms, int64_t next_attempt_ms,
                         char **err);
/* Calls cb per recorded failure, newest first. */
int store_webhook_failures(struct store *st, int64_t id,
                           void (*cb)(void *arg, const struct store_webhook_failure *f), void *arg,
                           char **err);
/* ---- deliverability: quotas, the reputation guard, VERP (store_deliv.c) ----
 *
 * Per account (migration 10): the quotas set by `user add|set` (NULL in
 * the table, STORE_QUOTA_DEFAULT here: the [quota] default), and the
 * reputation guard's pause. The server keeps quota counts and reputation
 * slots in memory and writes them with store_deliv_flush() once a second
 * and at exit (docs/deliverability.md argues what a crash costs); the CLI
 * reads them. VERP messages: which account sent a message and to whom,
 * so that a bounce or complaint sent to its return path can be matched.
 */
#define STORE_QUOTA_DEFAULT    (-1)
#define STORE_PAUSE_REASON_MAX 255
#define STORE_NO_SUCH_ACCOUNT  (-2)

struct store_account_deliv {
	char name[COUNTER_ACCOUNT_MAX + 1];
	int64_t quota[2];  /* per hour, per day; STORE_QUOTA_DEFAULT: [quota]'s; 0: unlimited */
	int64_t paused_at; /* unix seconds; 0: not paused */
	char paused_reason[STORE_PAUSE_REASON_MAX + 1];
	int64_t resumed_at; /* the last `user resume`; 0: never */
};

/* Sets an account's quotas: quota[i] for each i with set[i] (>= 0, or
 * STORE_QUOTA_DEFAULT). 0, STORE_NO_SUCH_ACCOUNT or -1, with *err. */
int store_user_set_quota(struct store *st, const char *name, const int set[2],
                         const int64_t quota[2], char **err);
/* Lifts the pause (`user resume`): paused_at cleared, resumed_at = now,
 * the reputation slots of the account deleted (the guard starts afresh).
 * 1 it was paused, 0 it was not (nothing changed), STORE_NO_SUCH_ACCOUNT,
 * -1. *out (if not NULL): the account as it was. */
int store_user_resume(struct store *st, const char *name, int64_t now,
                      struct store_account_deliv *out, char **err);
/* The settings of one account: 1 found, 0 not, -1. */
int store_account_deliv_get(struct store *st, const char *name, struct store_account_deliv *out,
                            char **err);
/* Every account's settings, by name; cb after the lock is released. */
int store_account_deliv_list(struct store *st,
                             void (*cb)(void *arg, const struct store_account_deliv *a), void *arg,
                             char **err);
/* SQLite's data_version: it changes when another connection (the CLI)
 * commits. 0 with *v, -1. */
int store_data_version(struct store *st, int64_t *v, char **err);

/* What the server writes once a second, in one transaction. */
struct store_quota_row {
	const char *account;
	int period;           /* 0 hour, 1 day */
	int64_t window_start; /* unix seconds */
	uint64_t used;        /* committed in that window: written as is */
};
struct store_rep_row {
	const char *account;
	int64_t slot_start;
	uint64_t n[4]; /* delivered, bounced, hard, complained: written as is */
};
struct store_pause_row {
	const char *account;
	int64_t at;
	const char *reason;
};
struct store_verp_msg {
	const char *id; /* queue ID */
	const char *account;
	int64_t created;
	const char *rcpts; /* the recipients, one a line ('\n' between) */
};
struct store_deliv_flush {
	const struct store_quota_row *quota;
	size_t n_quota;
	const struct store_rep_row *rep;
	size_t n_rep;
	const char *const *rep_reset; /* accounts whose slots go first (resumed) */
	size_t n_rep_reset;
	const struct store_pause_row *pause; /* applied only to accounts not paused */
	size_t n_pause;
	const struct store_verp_msg *verp;
	size_t n_verp;
	int64_t rep_before;  /* slots older than this go (0: none) */
	int64_t verp_before; /* VERP records older than this go (0: none) */
};
/* Rows of accounts that do not exist (deleted) are skipped. Quota counts
 * and slots are written as this node's (store_set_node()): each node has
 * its own rows. 0, -1. */
int store_deliv_flush(struct store *st, const struct store_deliv_flush *f, char **err);

/* Stored quota rows and reputation slots (since: slots starting at or
 * after it; account NULL: every account), cb after the lock is released.
 * own: this node's rows only (what a restart reads); 0: every node's,
 * summed per account and window or slot (what `posthorn stats` shows). */
int store_quota_list(struct store *st, int own,
                     void (*cb)(void *arg, const struct store_quota_row *r), void *arg, char **err);
int store_rep_list(struct store *st, const char *account, int64_t since, int own,
                   void (*cb)(void *arg, const struct store_rep_row *r), void *arg, char **err);
/* On SQLite (one node): the counts and slots stored before they were kept
 * per node become this node's; on PostgreSQL nothing (no node can tell
 * they were its own; they count in the sums until they are past). 0, -1. */
int store_deliv_adopt(struct store *st, char **err);

/* The VERP record of message id: 1 with *account (COUNTER_ACCOUNT_MAX + 1
 * bytes) and *rcpts (malloc'd, one a line), 0 none, -1. */
int store_verp_get(struct store *st, const char *id, char *account, char **rcpts, char **err);

/* Several suppression adds in one transaction (store_supp_add's rules
 * each): v[i].added is 1 when i was added, 0 when it was there, or a
 * negative STORE_SUPP_* for that entry alone (a deleted account, a bad
 * address), which does not stop the others. Returns the number added, or
 * -1 when the database failed (nothing added). */
struct store_supp_add {
	const char *account, *addr, *reason;
	int added; /* out */
};
int store_supp_add_many(struct store *st, struct store_supp_add *v, size_t n, char **err);

/* ---- Idempotency-Key records (store_idem.c) --------------------------------------- */

#define STORE_IDEM_KEY_MAX 255
enum { STORE_IDEM_NEW, STORE_IDEM_DONE, STORE_IDEM_BUSY, STORE_IDEM_MISMATCH };

struct store_idem {
	const char *account;
	const char *key;
	const char *hash; /* of the request body, hex */
	int64_t now;      /* unix seconds */
	int64_t ttl;      /* seconds a record counts */
};

/*
 * Claims k->key for a request: STORE_IDEM_NEW (the row is this request's:
 * finish or release it), STORE_IDEM_DONE (*status and *answer, malloc'd:
 * the first request's answer), STORE_IDEM_BUSY (the first request has not
 * answered yet), STORE_IDEM_MISMATCH (the key came with another body), or
 * -1 with *err. A record older than ttl counts as none.
 */
int store_idem_claim(struct store *st, const struct store_idem *k, int *status, char **answer,
                     char **err);
/* Records the answer of the request that claimed the key. */
int store_idem_finish(struct store *st, const char *account, const char *key, int status,
                      const char *answer, char **err);
/* Gives up a claim that has no answer (the request was refused whole). */
int store_idem_release(struct store *st, const char *account, const char *key, char **err);
/* Deletes records created before `before`; the number deleted, or -1. */
int store_idem_prune(struct store *st, int64_t before, char **err);
/* Records what the request that holds the key is about to commit
 * (planned: the caller's text, e.g. its queue IDs), before any commit. */
int store_idem_plan(struct store *st, const char *account, const char *key, const char *planned,
                    char **err);
/* A claim without an answer, as found at start (its request's process is gone). */
struct store_idem_open {
	const char *account, *key;
	const char *planned; /* NULL: nothing recorded (nothing was committed) */
};
/* Calls cb for every claim without an answer; 0, or -1 with *err. At
 * start, before serving (cb may call the other store_idem_* functions). */
int store_idem_open_list(struct store *st, void (*cb)(void *arg, const struct store_idem_open *o),
                         void *arg, char **err);

#endif
