/*
 * dkim_rotate: the life of a signing key, as pure rules. PURE (libc +
 * util), unit-tested in tests/unit/test_dkim_rotate.c.
 *
 *   keygen ──▶ active ──────────────────────────▶ retired
 *   rotate ──▶ pending ──(its record seen in DNS)──▶ active
 *
 * - A key made by `dkim keygen` is active at once: the operator publishes
 *   its record while nothing depends on it yet.
 * - `dkim rotate` makes one pending key for each algorithm the domain
 *   signs with (or the one asked for), each under a new selector. A pending
 *   key never signs.
 * - When a pending key's record is seen in DNS, it becomes active, and
 *   every active key of the same domain and algorithm is retired at that
 *   moment: it stops signing. Its record must stay published for the grace
 *   period ([dkim] rotation_grace) after that, for messages it signed that
 *   are still queued or being verified late.
 * - A retired key never comes back; nothing moves a key backwards.
 */
#ifndef POSTHORN_DKIM_ROTATE_H
#define POSTHORN_DKIM_ROTATE_H

#include <stddef.h>
#include <stdint.h>

enum dkim_state { DKIM_STATE_PENDING, DKIM_STATE_ACTIVE, DKIM_STATE_RETIRED };
enum dkim_algo { DKIM_ALGO_RSA2048, DKIM_ALGO_ED25519, DKIM_ALGO__COUNT };

/* "pending", "active", "retired"; and back (-1: unknown). */
const char *dkim_state_name(enum dkim_state s);
int dkim_state_parse(const char *s);

/* "rsa2048", "ed25519" (the names of the CLI and the database); and back. */
const char *dkim_algo_name(enum dkim_algo a);
int dkim_algo_parse(const char *s);
/* The record's k= value: "rsa" or "ed25519". */
const char *dkim_algo_k(enum dkim_algo a);
/* The signature's a= value: "rsa-sha256" or "ed25519-sha256". */
const char *dkim_algo_sig(enum dkim_algo a);

/* What the rules need to know of a key. */
struct dkim_key_state {
	const char *selector;
	enum dkim_algo algo;
	enum dkim_state state;
	int64_t retired; /* unix seconds; with DKIM_STATE_RETIRED */
};

/* One state change; `at` is when it happens (unix seconds). */
struct dkim_transition {
	size_t key; /* index in the caller's array */
	enum dkim_state from, to;
	int64_t at;
};

/*
 * The changes when the record of keys[pending] (a pending key of one
 * domain, whose keys are keys[0..n)) is seen at `now`: the key becomes
 * active and the domain's other active keys of its algorithm are retired.
 * Writes them to out (room for n) and returns how many; 0 if
 * keys[pending] is not pending.
 */
size_t dkim_rotation_activate(const struct dkim_key_state *keys, size_t n, size_t pending,
                              int64_t now, struct dkim_transition *out);

/*
 * The algorithms `dkim rotate` makes new keys for: `only` (>= 0) or every
 * algorithm with an active key in keys[0..n), in enum order, into out
 * (room for DKIM_ALGO__COUNT). Returns how many, or -1 with *why set:
 *   "no active key"            nothing to rotate (keygen makes the first key)
 *   "no active key for that algorithm"   `only` names one the domain lacks
 *   "a rotation is pending"    an algorithm already has a pending key;
 *                              *blocker is its index
 */
int dkim_rotation_algos(const struct dkim_key_state *keys, size_t n, int only,
                        enum dkim_algo out[DKIM_ALGO__COUNT], const char **why, size_t *blocker);

/* Until when a retired key's record must stay published; -1 if the key is
 * not retired. grace in seconds. */
int64_t dkim_publish_until(const struct dkim_key_state *k, uint64_t grace);

/*
 * A new selector for a key made at `now`: "ph" + YYYYMM (UTC), then
 * "-2", "-3", ... until one is not among taken[0..n) (ASCII case
 * ignored). out needs DKIM_SELECTOR_NEW_MAX bytes. 0, or -1 when 999
 * selectors of that month are taken.
 */
#define DKIM_SELECTOR_NEW_MAX 16
int dkim_selector_new(int64_t now, const char *const *taken, size_t n,
                      char out[DKIM_SELECTOR_NEW_MAX]);

#endif
