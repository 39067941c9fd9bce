/*
 * cli_stats_rep: the accounts section of `posthorn stats`: each account's
 * rates over the reputation guard's window against its thresholds, its
 * pause, and its quotas as used in the current hour and day. Read from
 * the database (each node writes its own counts and slots once a second;
 * they are summed over the nodes here), the rates computed as the guard
 * computes them (deliv_policy.h).
 *
 * Table (after the domain table and an empty line), one account a line:
 *   ACCOUNT volume hard_bounces bounce_rate max_bounce_rate complaints
 *   complaint_rate max_complaint_rate quota_hour quota_day state
 * rates as "7.2%", quotas as "used/limit" ("unlimited" for 0), state
 * "active", or "paused" with the time and reason. JSON: "reputation"
 * (window and thresholds) and "accounts" (an object per account).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "deliv/deliv_policy.h"
#include "store/store.h"
#include "util/util.h"

/* One account as the section shows it. */
struct acct_view {
	struct store_account_deliv a;
	struct deliv_rep rep;
	uint64_t used[2], limit[2];
	struct deliv_rates r;
};

struct views {
	struct acct_view *v;
	size_t n;
	const struct conf *c;
	int64_t now;
};

static struct acct_view *find(struct views *vs, const char *name)
{
	for (size_t i = 0; i < vs->n; i++)
		if (strcmp(vs->v[i].a.name, name) == 0)
			return &vs->v[i];
	return NULL;
}

static void on_account(void *arg, const struct store_account_deliv *a)
{
	struct views *vs = arg;
	struct acct_view *v;

	vs->v = xrealloc(vs->v, (vs->n + 1) * sizeof(*vs->v));
	v = &vs->v[vs->n++];
	memset(v, 0, sizeof(*v));
	v->a = *a;
	for (int p = 0; p < 2; p++)
		v->limit[p] = a->quota[p] == STORE_QUOTA_DEFAULT
		                  ? (p ? vs->c->quota_day : vs->c->quota_hour)
		                  : (uint64_t)a->quota[p];
}

static void on_quota(void *arg, const struct store_quota_row *r)
{
	struct views *vs = arg;
	struct acct_view *v = find(vs, r->account);
	enum deliv_period p = r->period ? DELIV_DAY : DELIV_HOUR;

	if (v && r->window_start == deliv_window_start(p, vs->now))
		v->used[p] = r->used; /* a past window's count is spent */
}

static void on_slot(void *arg, const struct store_rep_row *r)
{
	struct views *vs = arg;
	struct acct_view *v = find(vs, r->account);
	struct deliv_rep_slot s;

	if (!v)
		return;
	s.start = r->slot_start;
	memcpy(s.n, r->n, sizeof(s.n));
	deliv_rep_load(&v->rep, vs->c->rep_window, &s);
}

static int load(struct views *vs, const char *account)
{
	struct store *st = cli_open_store(vs->c);
	int64_t since = vs->now - (int64_t)vs->c->rep_window - deliv_rep_width(vs->c->rep_window);
	char *err = NULL;
	int rc = 0;

	if (!st)
		return 1;
	if (store_account_deliv_list(st, on_account, vs, &err) < 0 ||
	    store_quota_list(st, 0, on_quota, vs, &err) < 0 ||
	    store_rep_list(st, account, since, 0, on_slot, vs, &err) < 0)
		rc = cli_fail(err);
	store_close(st);
	for (size_t i = 0; i < vs->n; i++)
		deliv_rep_sum(&vs->v[i].rep, vs->c->rep_window, vs->now, vs->v[i].a.resumed_at,
		              &vs->v[i].r);
	return rc;
}

/* ---- the table ---- */

static void quota_text(char *out, size_t cap, uint64_t used, uint64_t limit)
{
	if (limit)
		snprintf(out, cap, "%llu/%llu", (unsigned long long)used,
		         (unsigned long long)limit);
	else
		snprintf(out, cap, "%llu/unlimited", (unsigned long long)used);
}

static void print_line(const struct views *vs, const struct acct_view *v)
{
	char br[16], bmax[16], cr[16], cmax[16], qh[48], qd[48], when[32];

	deliv_ppm_text(br, sizeof(br), deliv_rate_ppm(v->r.hard, v->r.volume));
	deliv_ppm_text(bmax, sizeof(bmax), vs->c->rep_max_bounce_ppm);
	deliv_ppm_text(cr, sizeof(cr), deliv_rate_ppm(v->r.complained, v->r.volume));
	deliv_ppm_text(cmax, sizeof(cmax), vs->c->rep_max_complaint_ppm);
	quota_text(qh, sizeof(qh), v->used[0], v->limit[0]);
	quota_text(qd, sizeof(qd), v->used[1], v->limit[1]);
	printf("%s\t%llu\t%llu\t%s%%\t%s%%\t%llu\t%s%%\t%s%%\t%s\t%s\t", v->a.name,
	       (unsigned long long)v->r.volume, (unsigned long long)v->r.hard, br, bmax,
	       (unsigned long long)v->r.complained, cr, cmax, qh, qd);
	if (!v->a.paused_at) {
		puts("active");
		return;
	}
	deliv_time_text(when, sizeof(when), v->a.paused_at);
	printf("paused since %s: %s\n", when, v->a.paused_reason);
}

static void print_table(const struct views *vs, const char *account)
{
	char win[32];

	deliv_duration_text(win, sizeof(win), vs->c->rep_window);
	printf("\nACCOUNT\tvolume\thard_bounces\tbounce_rate\tmax_bounce_rate\tcomplaints"
	       "\tcomplaint_rate\tmax_complaint_rate\tquota_hour\tquota_day\tstate\n");
	for (size_t i = 0; i < vs->n; i++)
		if (!account || strcmp(account, vs->v[i].a.name) == 0)
			print_line(vs, &vs->v[i]);
}

/* ---- JSON ---- */

static json_t *rate(uint64_t ppm)
{
	return json_real((double)ppm / 10000.0); /* percent */
}

static json_t *acct_json(const struct views *vs, const struct acct_view *v)
{
	json_t *o = json_object();

	json_object_set_new(o, "volume", json_integer((json_int_t)v->r.volume));
	json_object_set_new(o, "hard_bounces", json_integer((json_int_t)v->r.hard));
	json_object_set_new(o, "bounce_rate", rate(deliv_rate_ppm(v->r.hard, v->r.volume)));
	json_object_set_new(o, "complaints", json_integer((json_int_t)v->r.complained));
	json_object_set_new(o, "complaint_rate",
	                    rate(deliv_rate_ppm(v->r.complained, v->r.volume)));
	json_object_set_new(o, "quota_hour",
	                    json_pack("{s:I,s:I}", "used", (json_int_t)v->used[0], "limit",
	                              (json_int_t)v->limit[0]));
	json_object_set_new(o, "quota_day",
	                    json_pack("{s:I,s:I}", "used", (json_int_t)v->used[1], "limit",
	                              (json_int_t)v->limit[1]));
	json_object_set_new(o, "paused", json_boolean(v->a.paused_at != 0));
	if (v->a.paused_at) {
		json_object_set_new(o, "paused_at", json_integer(v->a.paused_at));
		json_object_set_new(o, "paused_reason", json_string(v->a.paused_reason));
	}
	return o;
}

static void add_json(const struct views *vs, const char *account, json_t *root)
{
	json_t *accts = json_object();

	json_object_set_new(root, "reputation",
	                    json_pack("{s:I,s:o,s:o,s:I}", "window", (json_int_t)vs->c->rep_window,
	                              "max_bounce_rate", rate(vs->c->rep_max_bounce_ppm),
	                              "max_complaint_rate", rate(vs->c->rep_max_complaint_ppm),
	                              "min_volume", (json_int_t)vs->c->rep_min_volume));
	for (size_t i = 0; i < vs->n; i++)
		if (!account || strcmp(account, vs->v[i].a.name) == 0)
			json_object_set_new(accts, vs->v[i].a.name, acct_json(vs, &vs->v[i]));
	json_object_set_new(root, "accounts", accts);
}

int cli_stats_accounts(const struct conf *c, const char *account, json_t *root)
{
	struct views vs = {NULL, 0, c, clock_now_s()};
	int rc = load(&vs, account);

	if (rc == 0 && root)
		add_json(&vs, account, root);
	else if (rc == 0)
		print_table(&vs, account);
	free(vs.v);
	return rc;
}
