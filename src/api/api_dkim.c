/*
 * api_dkim: GET /v1/dkim, the DKIM keys and the DNS records to publish
 * for them, grouped by domain (the dashboard's DKIM page; SPEC 6).
 *
 * Keys belong to sender domains, not to accounts: an account's key sees
 * the keys of the domains its account may send from (`user add
 * --domain`), an admin key every domain's. ?domain= narrows to one domain.
 * The records come from the key files as `posthorn dkim list` shows them
 * (dkim_keys_load); what DNS publishes is `posthorn dkim check`'s job: a
 * page load never waits for DNS.
 *
 * Blocking (the store, the key files): the whole job runs on a worker,
 * which also makes the answer's text (api.h); the loop only sends it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "conf/conf.h"
#include "dkim/dkim.h"
#include "log/log.h"
#include "store/store.h"
#include "util/util.h"

struct dkim_job {
	struct http_req *r;
	const char *account;   /* NULL: an admin key, every domain */
	char domain[256];      /* ?domain= in lower case (stored so), or "" */
	struct api_answer ans; /* made on the worker */
};

/* 1 if the caller may see domain's keys. */
static int visible(const char *domain, char *const *mine, size_t n_mine, int all)
{
	if (all)
		return 1;
	for (size_t i = 0; i < n_mine; i++)
		if (strcasecmp(mine[i], domain) == 0)
			return 1;
	return 0;
}

static json_t *key_json(const struct dkim_key_info *k, uint64_t grace)
{
	struct dkim_key_state s = {k->selector, k->algo, k->state, k->retired};
	int64_t until = dkim_publish_until(&s, grace);
	char *name = dkim_record_name(k->selector, k->domain);
	json_t *o = json_pack(
	    "{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:s}", "selector", k->selector, "algorithm",
	    dkim_algo_name(k->algo), "state", dkim_state_name(k->state), "created_at",
	    http_json_time(k->created), "activated_at", http_json_time(k->activated), "retired_at",
	    http_json_time(k->retired), "keep_record_until", http_json_time(until), "name", name);
	char *zone = k->record ? dkim_record_zone_line(k->selector, k->domain, k->record) : NULL;

	json_object_set_new(o, "record", k->record ? json_string(k->record) : json_null());
	json_object_set_new(o, "zone", zone ? json_string(zone) : json_null());
	if (k->error)
		json_object_set_new(o, "error", json_string(k->error));
	free(name);
	free(zone);
	return o;
}

/* keys[] is sorted by domain: one object per run of a domain. */
static json_t *domains_json(const struct dkim_key_info *keys, size_t n, char *const *mine,
                            size_t n_mine, int all, uint64_t grace)
{
	json_t *domains = json_array(), *cur = NULL;
	const char *cur_name = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!visible(keys[i].domain, mine, n_mine, all))
			continue;
		if (!cur_name || strcmp(cur_name, keys[i].domain) != 0) {
			cur = json_array();
			cur_name = keys[i].domain;
			json_array_append_new(
			    domains, json_pack("{s:s,s:o}", "domain", cur_name, "keys", cur));
		}
		json_array_append_new(cur, key_json(&keys[i], grace));
	}
	return domains;
}

static void dkim_work(void *arg)
{
	struct dkim_job *j = arg;
	const struct conf *c = http_req_conf(j->r);
	struct store *st = http_req_deps(j->r)->store;
	struct dkim_key_info *keys = NULL;
	char **mine = NULL, *err = NULL;
	size_t n = 0, n_mine = 0;

	if ((j->account && store_account_domains(st, j->account, &mine, &n_mine, &err) < 0) ||
	    dkim_keys_load(st, c->data_dir, j->domain[0] ? j->domain : NULL, &keys, &n, &err) < 0) {
		log_err("http=%s event=dkim_list_failed error=%s", http_req_id(j->r),
		        log_q(err ? err : "?"));
		api_answer_error(&j->ans, 500, "internal_error", "database error");
	} else {
		api_answer_json(&j->ans, 200,
		                json_pack("{s:o}", "domains",
		                          domains_json(keys, n, mine, n_mine, !j->account,
		                                       c->dkim_rotation_grace)));
	}
	free(err);
	dkim_key_info_free(keys, n);
	for (size_t i = 0; i < n_mine; i++)
		free(mine[i]);
	free(mine);
}

static void dkim_done(void *arg)
{
	struct dkim_job *j = arg;

	api_answer_send(j->r, &j->ans);
	free(j);
}

void api_h_dkim(struct http_req *r)
{
	const struct http_auth *a = http_req_auth(r);
	struct dkim_job *j = xcalloc(1, sizeof(*j));
	struct http_problem p;
	const char *domain;

	j->r = r;
	j->account = a->admin ? NULL : a->account;
	domain = http_req_query(r, "domain");
	if (domain && !store_domain_valid(domain)) {
		http_problem_param(&p, "domain", "expected a domain name");
		http_reply_problem(r, &p);
		free(j);
		return;
	}
	for (size_t i = 0; domain && domain[i]; i++) /* valid: at most 253 */
		j->domain[i] = (char)tolower((unsigned char)domain[i]);
	http_req_defer(r, dkim_work, dkim_done, j);
}
