/*
 * dkim_rotate: key states, rotation and grace arithmetic. PURE (libc +
 * util). The rules are stated in dkim_rotate.h; the CLI (`dkim check`,
 * `dkim rotate`) and the server's watch (dkim_check.c) apply them.
 */
#include "dkim/dkim_rotate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

static const char *const state_names[] = {"pending", "active", "retired"};

static const struct {
	const char *name, *k, *sig;
} algos[DKIM_ALGO__COUNT] = {
    [DKIM_ALGO_RSA2048] = {"rsa2048", "rsa", "rsa-sha256"},
    [DKIM_ALGO_ED25519] = {"ed25519", "ed25519", "ed25519-sha256"},
};

const char *dkim_state_name(enum dkim_state s)
{
	return (unsigned)s < ARRAY_LEN(state_names) ? state_names[s] : "unknown";
}

int dkim_state_parse(const char *s)
{
	for (size_t i = 0; s && i < ARRAY_LEN(state_names); i++)
		if (strcmp(s, state_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *dkim_algo_name(enum dkim_algo a)
{
	return (unsigned)a < DKIM_ALGO__COUNT ? algos[a].name : "unknown";
}

int dkim_algo_parse(const char *s)
{
	for (int i = 0; s && i < DKIM_ALGO__COUNT; i++)
		if (strcmp(s, algos[i].name) == 0)
			return i;
	return -1;
}

const char *dkim_algo_k(enum dkim_algo a)
{
	return (unsigned)a < DKIM_ALGO__COUNT ? algos[a].k : "unknown";
}

const char *dkim_algo_sig(enum dkim_algo a)
{
	return (unsigned)a < DKIM_ALGO__COUNT ? algos[a].sig : "unknown";
}

size_t dkim_rotation_activate(const struct dkim_key_state *keys, size_t n, size_t pending,
                              int64_t now, struct dkim_transition *out)
{
	size_t k = 0;

	if (pending >= n || keys[pending].state != DKIM_STATE_PENDING)
		return 0;
	out[k++] = (struct dkim_transition){pending, DKIM_STATE_PENDING, DKIM_STATE_ACTIVE, now};
	for (size_t i = 0; i < n; i++)
		if (i != pending && keys[i].state == DKIM_STATE_ACTIVE &&
		    keys[i].algo == keys[pending].algo)
			out[k++] =
			    (struct dkim_transition){i, DKIM_STATE_ACTIVE, DKIM_STATE_RETIRED, now};
	return k;
}

/* Index of the first key of algo a in state s, or n. */
static size_t find(const struct dkim_key_state *keys, size_t n, int a, enum dkim_state s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((int)keys[i].algo == a && keys[i].state == s)
			break;
	return i;
}

int dkim_rotation_algos(const struct dkim_key_state *keys, size_t n, int only,
                        enum dkim_algo out[DKIM_ALGO__COUNT], const char **why, size_t *blocker)
{
	int k = 0;

	for (int a = 0; a < DKIM_ALGO__COUNT; a++) {
		if ((only >= 0 && a != only) || find(keys, n, a, DKIM_STATE_ACTIVE) == n)
			continue;
		if ((*blocker = find(keys, n, a, DKIM_STATE_PENDING)) < n) {
			*why = "a rotation is pending";
			return -1;
		}
		out[k++] = (enum dkim_algo)a;
	}
	if (k == 0)
		*why = only >= 0 ? "no active key for that algorithm" : "no active key";
	return k ? k : -1;
}

int64_t dkim_publish_until(const struct dkim_key_state *k, uint64_t grace)
{
	if (k->state != DKIM_STATE_RETIRED)
		return -1;
	if (grace > (uint64_t)(INT64_MAX - k->retired))
		return INT64_MAX;
	return k->retired + (int64_t)grace;
}

static int taken_has(const char *const *taken, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_casecmp(taken[i], s) == 0)
			return 1;
	return 0;
}

int dkim_selector_new(int64_t now, const char *const *taken, size_t n,
                      char out[DKIM_SELECTOR_NEW_MAX])
{
	time_t t = (time_t)now;
	struct tm tm;
	char base[9]; /* "ph" YYYY MM */

	if (gmtime_r(&t, &tm) == NULL)
		return -1;
	snprintf(base, sizeof base, "ph%04u%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
	         (unsigned)(tm.tm_mon + 1) % 100u);
	snprintf(out, DKIM_SELECTOR_NEW_MAX, "%s", base);
	for (unsigned i = 2; taken_has(taken, n, out); i++) {
		if (i > 999)
			return -1;
		snprintf(out, DKIM_SELECTOR_NEW_MAX, "%s-%u", base, i % 1000u);
	}
	return 0;
}
