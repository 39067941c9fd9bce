/*
 * dkim: DKIM signing (RFC 6376; ed25519-sha256 of RFC 8463) with
 * libopendkim, and the signing keys: making them, their DNS records,
 * checking those, and rotation. docs/dkim.md is the user's guide and
 * describes the wiring into the accept path.
 *
 * What is signed: every message whose From field holds exactly one
 * address, whose domain has active keys, once per active key, with
 * c=relaxed/relaxed over the fields of dkim_hdr.h (From oversigned).
 * Anything else is not signed and is never refused for it: the result
 * code says why (the caller logs "unsigned: no key for DOMAIN").
 *
 * Threads: a struct dkim_signer is shared by every thread. Its keys are
 * loaded once (dkim_signer_refresh, from a worker: it reads the store and
 * key files) and swapped in whole; contexts made before a swap keep what
 * they were given. A context (struct dkim_ctx, struct dkim_msg) belongs to
 * one thread at a time: feed it on the loop thread as bytes arrive
 * (hashing is cheap), then hand it to a worker for the finish (the
 * private-key operation, about 1 ms for RSA-2048).
 *
 * Errors: -1 (or NULL) with a malloc'd *err when err is not NULL.
 */
#ifndef POSTHORN_DKIM_H
#define POSTHORN_DKIM_H

#include <stddef.h>
#include <stdint.h>

#include "dkim/dkim_hdr.h"
#include "dkim/dkim_record.h"
#include "dkim/dkim_rotate.h"

struct buf;
struct dns;
struct event_base;
struct store;
struct store_dkim_key;

/* ---- signing ---------------------------------------------------------------- */

enum dkim_result {
	DKIM_SIGNED,           /* out holds one DKIM-Signature field per active key */
	DKIM_NO_FROM,          /* no From field, or no address (or domain) in it */
	DKIM_MULTIPLE_FROM,    /* several From fields, or several addresses in one */
	DKIM_NO_KEY,           /* the From domain has no active key */
	DKIM_HEADER_TOO_LARGE, /* header section over DKIM_HDR_MAX bytes */
	DKIM_FAILED,           /* libopendkim failed (logged with the reason) */
};

/* "signed", "no_from", "multiple_from", "no_key", "header_too_large",
 * "failed": for log lines ("result=no_key domain=example.com"). */
const char *dkim_result_name(enum dkim_result r);

struct dkim_signer;

/* data_dir: where stored key paths are relative to. No keys until the
 * first dkim_signer_refresh. */
struct dkim_signer *dkim_signer_new(const char *data_dir, char **err);
/* After every context made from it is freed. NULL is fine. */
void dkim_signer_free(struct dkim_signer *s);

/*
 * Loads the active keys from the store when the set differs from the one
 * loaded (or always, with force: SIGHUP), reading each key file once.
 * Blocking: call it from a worker, e.g. once a second and on SIGHUP. A key
 * whose file cannot be used is left out with a log line (the domain's
 * other keys still sign). 1 a new set is in use, 0 nothing changed, -1
 * the store failed (the old set stays in use).
 */
int dkim_signer_refresh(struct dkim_signer *s, struct store *st, int force, char **err);

/* Active keys in use now (all domains). Cheap: the accept path asks it
 * for every message (0: nothing can be signed, no front is reserved). */
size_t dkim_signer_key_count(struct dkim_signer *s);
/* 1 if domain (lower case, as dkim_hdr_from_domain gives it) has a key
 * that signs now. Cheap (a binary search under the read lock): the accept
 * path decides with it, on the loop, whether a message is signed at all. */
int dkim_signer_has_key(struct dkim_signer *s, const char *domain);

/*
 * The low-level context, for a caller that has the From domain already:
 * made with every active key of domain (lower case, as dkim_from_domain
 * gives it); NULL with *res = DKIM_NO_KEY (or DKIM_FAILED). id names the
 * message in log lines (the queue ID) and is copied.
 *
 * Feed it every header field, in order (those outside the signed set are
 * skipped here), each with its folded lines but without its final CRLF;
 * then the body, in chunks of any size, CRLF line ends, without the SMTP
 * end-of-data dot. dkim_ctx_finish does the private-key operations and
 * appends the DKIM-Signature fields to out, each folded and ending in
 * CRLF, ready to go on top of the message. -1 from a feed call: the
 * context has failed; finish then says DKIM_FAILED.
 */
struct dkim_ctx;
struct dkim_ctx *dkim_ctx_new(struct dkim_signer *s, const char *domain, const char *id,
                              enum dkim_result *res);
int dkim_ctx_header(struct dkim_ctx *c, const char *field, size_t len);
int dkim_ctx_body(struct dkim_ctx *c, const char *p, size_t n);
enum dkim_result dkim_ctx_finish(struct dkim_ctx *c, struct buf *out);
void dkim_ctx_free(struct dkim_ctx *c);

/*
 * The stream form, for the accept path: give it the message exactly as it
 * goes to the spool (CRLF lines, dot-unstuffed, the Received, Date and
 * Message-ID fields the relay adds included where they are written), in
 * pieces of any size. It keeps the header section (up to DKIM_HDR_MAX),
 * finds the From domain when the section ends, then hashes the body as it
 * comes. dkim_msg_finish ends it as dkim_ctx_finish does; a message
 * without an empty line is all header.
 */
struct dkim_msg;
struct dkim_msg *dkim_msg_new(struct dkim_signer *s, const char *id);
void dkim_msg_write(struct dkim_msg *m, const char *p, size_t n);
enum dkim_result dkim_msg_finish(struct dkim_msg *m, struct buf *out);
/* The From domain once the header section has ended ("" before, or when
 * there is none): for the "unsigned: no key for DOMAIN" log line. */
const char *dkim_msg_domain(const struct dkim_msg *m);
void dkim_msg_free(struct dkim_msg *m);

/* ---- keys (blocking: the CLI, or a worker) -------------------------------------- */

/* A key as the admin side sees it: the stored row, parsed, with its record. */
struct dkim_key_info {
	char *domain, *selector, *key_path;
	enum dkim_algo algo;
	enum dkim_state state;
	int64_t created, activated, retired;
	char *pub;    /* the record's p= value; NULL if the key file is unusable */
	char *record; /* "v=DKIM1; k=...; p=..."; NULL with pub */
	char *error;  /* why pub is NULL */
};
/* Frees what k holds (not k) and zeroes it. */
void dkim_key_info_clear(struct dkim_key_info *k);
/* Frees an array of n from dkim_keys_load. NULL is fine. */
void dkim_key_info_free(struct dkim_key_info *v, size_t n);

/* The keys of domain (NULL: all), as dkim_key_info (records derived from
 * the key files). */
int dkim_keys_load(struct store *st, const char *data_dir, const char *domain,
                   struct dkim_key_info **out, size_t *n, char **err);

/* 1 if s can be a selector (letters, digits, inner '-', dot-separated
 * labels) and S._domainkey.DOMAIN is a name DNS can hold. */
int dkim_selector_valid(const char *selector, const char *domain);

/*
 * Makes a key of algorithm a for domain, in state `state` (active for
 * keygen, pending for rotate), under selector (NULL: dkim_selector_new),
 * writes its file and adds its row. *out gets the key (with its record).
 */
int dkim_keygen(struct store *st, const char *data_dir, const char *domain, const char *selector,
                enum dkim_algo a, enum dkim_state state, struct dkim_key_info *out, char **err);

/* ---- checking what DNS publishes --------------------------------------------------- */

/* One key's record, looked up. */
struct dkim_lookup {
	enum {
		DKIM_LOOKUP_ANSWERED, /* verdict is set */
		DKIM_LOOKUP_FAILED,   /* DNS failed (timeout, SERVFAIL): no verdict */
	} status;
	enum dkim_verdict verdict;
	const char *why; /* static: what differs, or the DNS failure */
};

/*
 * Looks up the records of keys[0..n) (those where want(key) is 1; want
 * NULL: all) with dns, on the loop thread of base (dns's base), then calls
 * done once with res[0..n), one result per key (a key not looked up gets
 * DKIM_LOOKUP_FAILED, why "not looked up"). keys must stay valid until
 * then. done runs from the loop, never from inside this call; res is
 * freed after it returns.
 */
typedef void (*dkim_lookup_cb)(void *arg, const struct dkim_lookup *res);
void dkim_lookup_records(struct event_base *base, struct dns *dns, const struct dkim_key_info *keys,
                         size_t n, int (*want)(const struct dkim_key_info *k), dkim_lookup_cb done,
                         void *arg);

/* What an activation did to one key, for the operator. */
struct dkim_activation {
	size_t key; /* index in keys[] */
	enum dkim_state to;
	int64_t at;
};

/*
 * Rotation: every pending key whose record matched (res[i]) becomes
 * active at `now`, and retires the active keys of its domain and
 * algorithm (dkim_rotate.h). keys[] is updated to match, and what changed
 * goes to *acts (malloc'd; *n_acts entries). 0 ok (maybe nothing to do),
 * -1 the store failed. A key another process moved first is left as that
 * process left it (reloaded).
 */
int dkim_activate_visible(struct store *st, struct dkim_key_info *keys, size_t n,
                          const struct dkim_lookup *res, int64_t now, struct dkim_activation **acts,
                          size_t *n_acts, char **err);

#endif
