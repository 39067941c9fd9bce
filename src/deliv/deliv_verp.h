/*
 * deliv_verp: VERP return paths, bounces+ID=HASH@DOMAIN, where ID is the
 * message's queue ID and HASH the first 60 bits of HMAC-SHA256(key, ID)
 * in 12 base32 letters (RFC 4648 alphabet, lower case). PURE: libc, util
 * and libsodium's HMAC (a function, no I/O); the key itself is read by
 * deliv.c. docs/deliverability.md has a worked example and the argument
 * for 60 bits.
 *
 * Remote hosts may change the case of a local part: ID and HASH are
 * compared in any case. The domain is compared in any case too, and a
 * trailing dot is allowed.
 */
#ifndef POSTHORN_DELIV_VERP_H
#define POSTHORN_DELIV_VERP_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define DELIV_VERP_KEY_LEN  32
#define DELIV_VERP_HASH_LEN 12
#define DELIV_VERP_PREFIX   "bounces+"
/* "bounces+" ID "=" HASH: 37 octets, well inside RFC 5321's 64 */
#define DELIV_VERP_LOCAL_LEN (8 + ID_LEN + 1 + DELIV_VERP_HASH_LEN)
/* the whole address with a domain of at most 253 octets, and its NUL */
#define DELIV_VERP_MAX (DELIV_VERP_LOCAL_LEN + 1 + 253 + 1)

/* The HASH of id (ID_LEN characters, any case) into out. */
void deliv_verp_hash(const unsigned char key[DELIV_VERP_KEY_LEN], const char *id,
                     char out[DELIV_VERP_HASH_LEN + 1]);

/* "bounces+ID=HASH@domain" into out (DELIV_VERP_MAX). */
void deliv_verp_make(const unsigned char key[DELIV_VERP_KEY_LEN], const char *id,
                     const char *domain, char out[DELIV_VERP_MAX]);

enum deliv_verp_kind {
	DELIV_VERP_OTHER,    /* not at the bounces domain: not ours to judge */
	DELIV_VERP_NOT_VERP, /* at the bounces domain, but no VERP address */
	DELIV_VERP_FORGED,   /* shaped like one, but the hash is wrong */
	DELIV_VERP_EXPIRED,  /* a true one, for a message older than max_age */
	DELIV_VERP_VALID,    /* a true one: *id holds the queue ID (upper case) */
};

/*
 * What addr (as in RCPT TO, without <>) is to the bounces domain (NULL or
 * "": no VERP, everything is OTHER). The message's age comes from the
 * time in its queue ID; max_age 0 means no limit.
 */
enum deliv_verp_kind deliv_verp_check(const unsigned char key[DELIV_VERP_KEY_LEN],
                                      const char *domain, const char *addr, int64_t now,
                                      uint64_t max_age, char id[ID_LEN + 1]);

/* The creation time (unix seconds) written in a queue ID, or -1 when id
 * is not one. */
int64_t deliv_id_time(const char *id);

#endif
