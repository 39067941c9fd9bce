/*
 * dkim_watch: what a running server does about keys, on its event loop:
 *   - every refresh_ms (1 s): reload the signer's keys if the set of
 *     active keys changed (a `dkim keygen` is signing within a second);
 *   - every check_ms (60 s), and on dkim_watch_run() (SIGHUP): a round of
 *     rotation: look up the record of every pending key, activate those
 *     that are visible (retiring the keys they replace), reload the keys.
 * Store and file work runs in the work pool; lookups on the loop. Rounds
 * never overlap: a request during one runs one more after it.
 *
 * Shutdown order: dkim_watch_stop() (no new work is started, timers
 * stop), then work_pool_free() and dns_free() (which finish or cancel
 * what is in flight), then dkim_watch_free().
 */
#ifndef POSTHORN_DKIM_WATCH_H
#define POSTHORN_DKIM_WATCH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct work_pool;
struct dns;
struct store;
struct dkim_signer;

struct dkim_watch_deps {
	struct event_base *base;
	struct work_pool *work;
	struct dns *dns;
	struct store *store;
	struct dkim_signer *signer;
	const char *data_dir; /* kept by the caller */
	uint64_t refresh_ms;  /* 0: no reload timer */
	uint64_t check_ms;    /* 0: no rotation timer */
	/* Optional: called on the loop after each rotation round, with the
	 * number of keys that became active in it. */
	void (*round_done)(void *arg, size_t activated);
	void *round_arg;
};

struct dkim_watch *dkim_watch_new(const struct dkim_watch_deps *d);
/* A rotation round now (or after the one running); force: reload every
 * key file even if the set is the same (SIGHUP). */
void dkim_watch_run(struct dkim_watch *w, int force);
void dkim_watch_stop(struct dkim_watch *w);
void dkim_watch_free(struct dkim_watch *w);

#endif
