/*
 * dkim_check: what DNS publishes for each key, and the rotation step a
 * visible record triggers. The lookups run on the event loop (dns/); the
 * activation writes the store (blocking). `dkim check` runs both in turn;
 * the server runs them from its watch (dkim_watch.c), the store part in a
 * worker.
 */
#include "dkim/dkim.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"
#include "log/log.h"
#include "store/store.h"
#include "util/util.h"

/* ---- lookups -------------------------------------------------------------------- */

struct lookup_job {
	const struct dkim_key_info *keys;
	struct dkim_lookup *res;
	size_t n, waiting;
	dkim_lookup_cb done;
	void *arg;
};

struct lookup_one {
	struct lookup_job *job;
	size_t i;
};

static void job_done(struct lookup_job *j)
{
	j->done(j->arg, j->res);
	free(j->res);
	free(j);
}

static void on_empty(evutil_socket_t fd, short what, void *arg)
{
	job_done(arg);
}

static void judge(const struct dkim_key_info *k, const struct dns_txt *t, struct dkim_lookup *r)
{
	r->status = DKIM_LOOKUP_ANSWERED;
	if (t->status == DNS_OK) {
		r->verdict = dkim_record_compare((const char *const *)t->records, t->n, k->algo,
		                                 k->pub, &r->why);
	} else if (t->status == DNS_NXDOMAIN || t->status == DNS_NODATA) {
		r->verdict = DKIM_VERDICT_MISSING;
		r->why = t->status == DNS_NXDOMAIN ? "no such name" : "no TXT record";
	} else {
		r->status = DKIM_LOOKUP_FAILED;
		r->why = t->error ? t->error : dns_status_name(t->status);
	}
}

static void on_txt(void *arg, const struct dns_txt *t)
{
	struct lookup_one *o = arg;
	struct lookup_job *j = o->job;

	judge(&j->keys[o->i], t, &j->res[o->i]);
	free(o);
	if (--j->waiting == 0)
		job_done(j);
}

void dkim_lookup_records(struct event_base *base, struct dns *dns, const struct dkim_key_info *keys,
                         size_t n, int (*want)(const struct dkim_key_info *k), dkim_lookup_cb done,
                         void *arg)
{
	struct lookup_job *j = xcalloc(1, sizeof *j);
	size_t i;

	j->keys = keys;
	j->n = n;
	j->done = done;
	j->arg = arg;
	j->res = xcalloc(n ? n : 1, sizeof *j->res);
	for (i = 0; i < n; i++) {
		j->res[i] =
		    (struct dkim_lookup){DKIM_LOOKUP_FAILED, DKIM_VERDICT_MISSING, "not looked up"};
		if (keys[i].pub == NULL)
			j->res[i].why = "the key file is unusable";
		else if (want == NULL || want(&keys[i]))
			j->waiting++;
	}
	/* Counted first: an answer from the cache may come before the loop
	 * ends, and must not find waiting at 0 while queries remain. */
	for (i = 0; i < n; i++) {
		struct lookup_one *o;
		char *name;

		if (keys[i].pub == NULL || (want && !want(&keys[i])))
			continue;
		o = xcalloc(1, sizeof *o);
		o->job = j;
		o->i = i;
		name = dkim_record_name(keys[i].selector, keys[i].domain);
		dns_query_txt(dns, name, on_txt, o);
		free(name);
	}
	if (j->waiting == 0)
		event_base_once(base, -1, EV_TIMEOUT, on_empty, j, &(struct timeval){0, 0});
}

/* ---- activation ------------------------------------------------------------------ */

/* The keys of one domain as dkim_rotate sees them; idx maps back. */
static size_t domain_states(const struct dkim_key_info *keys, size_t n, const char *domain,
                            struct dkim_key_state *ks, size_t *idx)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].domain, domain) == 0) {
			ks[m] = (struct dkim_key_state){keys[i].selector, keys[i].algo,
			                                keys[i].state, keys[i].retired};
			idx[m++] = i;
		}
	return m;
}

/* Another process changed the domain's keys first: take its states. */
static int reload_states(struct store *st, struct dkim_key_info *keys, size_t n, const char *domain,
                         char **err)
{
	struct store_dkim_key *rows;
	size_t nr;

	if (store_dkim_list(st, domain, NULL, &rows, &nr, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		for (size_t r = 0; r < nr; r++)
			if (!strcmp(keys[i].domain, rows[r].domain) &&
			    !strcmp(keys[i].selector, rows[r].selector)) {
				int s = dkim_state_parse(rows[r].state);
				keys[i].state = s < 0 ? keys[i].state : (enum dkim_state)s;
				keys[i].activated = rows[r].activated;
				keys[i].retired = rows[r].retired;
			}
	store_dkim_keys_free(rows, nr);
	return 0;
}

struct acts {
	struct dkim_activation *v;
	size_t n;
};

/* Applies the transitions t[0..m) of the keys idx[] to the store and keys[]. */
static int apply(struct store *st, struct dkim_key_info *keys, const size_t *idx,
                 const struct dkim_transition *t, size_t m, struct acts *acts, char **err)
{
	struct store_dkim_change *c = xcalloc(m, sizeof *c);
	int rc;

	for (size_t i = 0; i < m; i++) {
		const struct dkim_key_info *k = &keys[idx[t[i].key]];
		c[i] =
		    (struct store_dkim_change){k->domain, k->selector, dkim_state_name(t[i].from),
		                               dkim_state_name(t[i].to), t[i].at};
	}
	rc = store_dkim_change(st, c, m, err);
	free(c);
	for (size_t i = 0; rc == 0 && i < m; i++) {
		struct dkim_key_info *k = &keys[idx[t[i].key]];
		k->state = t[i].to;
		*(t[i].to == DKIM_STATE_ACTIVE ? &k->activated : &k->retired) = t[i].at;
		acts->v = xrealloc(acts->v, (acts->n + 1) * sizeof *acts->v);
		acts->v[acts->n++] = (struct dkim_activation){idx[t[i].key], t[i].to, t[i].at};
	}
	return rc;
}

/* Activates keys[p] (pending, its record seen). */
static int activate_one(struct store *st, struct dkim_key_info *keys, size_t n, size_t p,
                        int64_t now, struct acts *acts, char **err)
{
	struct dkim_key_state *ks = xcalloc(n, sizeof *ks);
	struct dkim_transition *t = xcalloc(n, sizeof *t);
	size_t *idx = xcalloc(n, sizeof *idx), m, me = 0;
	int rc = 0;

	m = domain_states(keys, n, keys[p].domain, ks, idx);
	while (idx[me] != p)
		me++;
	m = dkim_rotation_activate(ks, m, me, now, t);
	if (m > 0 && (rc = apply(st, keys, idx, t, m, acts, err)) == 1)
		rc = reload_states(st, keys, n, keys[p].domain, err);
	free(ks);
	free(t);
	free(idx);
	return rc;
}

int dkim_activate_visible(struct store *st, struct dkim_key_info *keys, size_t n,
                          const struct dkim_lookup *res, int64_t now, struct dkim_activation **out,
                          size_t *n_out, char **err)
{
	struct acts acts = {NULL, 0};
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++)
		if (keys[i].state == DKIM_STATE_PENDING && res[i].status == DKIM_LOOKUP_ANSWERED &&
		    res[i].verdict == DKIM_VERDICT_MATCH)
			rc = activate_one(st, keys, n, i, now, &acts, err);
	*out = acts.v;
	*n_out = acts.n;
	return rc;
}
