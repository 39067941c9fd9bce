/*
 * unsub: one-click unsubscribe (RFC 8058, RFC 2369). docs/deliverability.md
 * is the user's guide.
 *
 * Mail of an account that enables it (`posthorn user set NAME --unsubscribe
 * on`, SMTP) or that asks for it (the HTTP API's `unsubscribe` option)
 * gets, for its one recipient,
 *
 *	List-Unsubscribe: <https://PUBLIC_URL/u/TOKEN>
 *	List-Unsubscribe-Post: List-Unsubscribe=One-Click
 *
 * where TOKEN names the account and the recipient and carries an HMAC-
 * SHA256 under a secret kept in DATA_DIR/unsubscribe.key (made once, 0600):
 * nobody without the secret can make one, or turn one recipient's link
 * into another's. A POST to the link (src/api/api_unsub.c) puts the
 * recipient on the account's suppression list. Nothing is added when
 * [http] public_url is not https (RFC 8058 requires HTTPS).
 *
 * The token (unsub_token.c) is PURE: libc, util and libsodium's HMAC (a
 * function, no I/O), unit-tested and fuzzed. The rest (unsub.c) is the
 * server's: the secret file and the list of accounts with the flag,
 * read from the store once a second.
 */
#ifndef POSTHORN_UNSUB_H
#define POSTHORN_UNSUB_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct event_base;
struct store;
struct work_pool;

#define UNSUB_KEY_LEN     32
#define UNSUB_ACCOUNT_MAX 64  /* as account names are (store.h) */
#define UNSUB_ADDR_MAX    254 /* as suppressed addresses are (store.h) */
/* Longest token: base64url of version, length, account, address and MAC. */
#define UNSUB_TOKEN_MAX 448

/* ---- tokens (PURE) ------------------------------------------------------------- */

/* The token of (account, rcpt) under key, into out (UNSUB_TOKEN_MAX + 1
 * bytes). Its length, or 0 when the account or the address is empty, too
 * long or holds a control byte. */
size_t unsub_token_make(const unsigned char key[UNSUB_KEY_LEN], const char *account,
                        const char *rcpt, char out[UNSUB_TOKEN_MAX + 1]);

enum unsub_token_result {
	UNSUB_TOKEN_OK,
	UNSUB_TOKEN_MALFORMED, /* not a token of ours: bad text, length, version, fields */
	UNSUB_TOKEN_FORGED,    /* shaped like one, but the MAC is not the key's */
};

/* Checks token (a NUL-terminated string of any bytes) and, when it is
 * ours, gives its account and address. */
enum unsub_token_result unsub_token_parse(const unsigned char key[UNSUB_KEY_LEN], const char *token,
                                          char account[UNSUB_ACCOUNT_MAX + 1],
                                          char rcpt[UNSUB_ADDR_MAX + 1]);

/* 1 if url is an https URL with a host (the scheme in any case), which
 * RFC 8058 asks of the link. */
int unsub_url_https(const char *url);

/*
 * Appends to out the two fields for (account, rcpt), each ending in CRLF:
 * the link is base_url (an https URL, a trailing '/' ignored) + "/u/" +
 * the token. -1 (out unchanged) when base_url is not https, the token
 * cannot be made, or the field would pass 998 octets (RFC 5322).
 */
int unsub_fields_for(const unsigned char key[UNSUB_KEY_LEN], const char *base_url,
                     const char *account, const char *rcpt, struct buf *out);

/* ---- the server's -------------------------------------------------------------- */

struct unsub;

/* Reads DATA_DIR/unsubscribe.key, making it first if there is none (32
 * random bytes, 0600, written durably; two processes making it at once
 * end up with the same one). public_url may be NULL. */
struct unsub *unsub_new(const char *data_dir, const char *public_url, char **err);
/* With a cluster database, the cluster's key instead (store_keys.h; the
 * first node's): 0, or -1 with *err. Blocking, at start. */
struct store;
int unsub_share_key(struct unsub *u, struct store *st, char **err);
void unsub_free(struct unsub *u);

/* 1 when public_url is https: the header can be added at all. */
int unsub_active(const struct unsub *u);

/*
 * The exported form for senders (SMTP accept, the HTTP send route): the
 * two fields for (account, rcpt), as unsub_fields_for with the server's
 * key and public_url. Any thread.
 */
int unsub_fields(const struct unsub *u, const char *account, const char *rcpt, struct buf *out);

/* A token of this server's key (unsub_token_parse), or of the node's own
 * key from before it joined the cluster's (unsub_share_key), or of another
 * node's (store_keys_verify). Any thread; never waits on the database. */
enum unsub_token_result unsub_verify(const struct unsub *u, const char *token,
                                     char account[UNSUB_ACCOUNT_MAX + 1],
                                     char rcpt[UNSUB_ADDR_MAX + 1]);

/*
 * The accounts with the flag on (store_accounts_unsubscribe), read in the
 * work pool every every_ms (and once now) while public_url is https;
 * unsub_account_on() asks the last list read, on the loop thread. Stop
 * before the work pool is freed: unsub_stop() (no new read), then
 * work_pool_free() (the one in flight ends), then unsub_free().
 */
void unsub_watch(struct unsub *u, struct event_base *base, struct work_pool *work, struct store *st,
                 uint64_t every_ms);
int unsub_account_on(const struct unsub *u, const char *account);
void unsub_stop(struct unsub *u);

#endif
