/*
 * cli_stats: `posthorn stats [--since DURATION] [--account NAME] [--json]`,
 * the delivery counters per recipient domain over the last DURATION
 * (default 24h), summed over all accounts unless --account names one (a
 * name that is no account and has no counters in the window: "no such
 * account", exit 1; a deleted account's counters are still shown).
 * The counting is done by the daemon and store/; this file parses
 * arguments, adds up rows and prints.
 *
 * Output, to stdout:
 *   DOMAIN<TAB>accepted<TAB>delivered<TAB>deferred<TAB>bounced<TAB>suppressed
 *   example.com<TAB>12<TAB>10<TAB>1<TAB>1<TAB>0      one line per domain, sorted
 *   TOTAL<TAB>...
 * then the accounts' rates and quotas (cli_stats_rep.c), or with --json
 * one line holding
 *   {"since":T,"domains":{"example.com":{"accepted":12,...}},"total":{...},
 *    "reputation":{...},"accounts":{...}}
 * where T is the unix time the window really starts at: counters are kept
 * per hour, so the window starts at the hour that holds now - DURATION.
 *
 * Domains come from the network: in the table, control bytes and
 * backslashes are printed as \xHH so one domain stays one line; in JSON a
 * domain that is not UTF-8 is escaped the same way, bytes above 0x7F too.
 *
 * Exit codes: 0 ok, 1 runtime error (store, stdout), 2 usage error.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "conf/conf.h"
#include "sched/sched.h"
#include "sched/sched_policy.h"
#include "store/store.h"
#include "util/util.h"

#define DEFAULT_SINCE "24h"

struct stats_args {
	const char *since; /* DURATION as given */
	const char *account;
	int json;
};

/* One output line: a domain and its counts in enum counter_event order. */
struct domain_counts {
	char *domain;
	uint64_t n[COUNTER_EVENTS];
};

struct stats {
	struct domain_counts *v;
	size_t n, cap;
	uint64_t total[COUNTER_EVENTS];
};

/* ---- arguments ----------------------------------------------------------- */

static int parse_args(struct stats_args *a, int argc, char **argv)
{
	const struct cli_opt opts[] = {
	    {"--json", &a->json, NULL},
	    {"--since", NULL, &a->since},
	    {"--account", NULL, &a->account},
	};
	size_t n_pos;

	memset(a, 0, sizeof *a);
	a->since = DEFAULT_SINCE;
	if (cli_parse(argc, argv, opts, ARRAY_LEN(opts), NULL, &n_pos, 0) != CLI_OK)
		return CLI_USAGE;
	if (a->account != NULL && !store_account_name_valid(a->account))
		return cli_say(
		    CLI_USAGE,
		    "invalid account name '%s' (1-64 characters of A-Z a-z 0-9 . _ @ + -)",
		    a->account);
	return CLI_OK;
}

/* now - DURATION in unix seconds, never before the epoch. */
static int since_time(const char *duration, int64_t *since)
{
	int64_t now = clock_now_s();
	uint64_t secs;

	if (parse_duration(duration, &secs) < 0)
		return cli_say(CLI_USAGE, "invalid duration '%s' (e.g. 90m, 24h, 7d)", duration);
	*since = secs >= (uint64_t)now ? 0 : now - (int64_t)secs;
	return CLI_OK;
}

/* ---- adding up ----------------------------------------------------------- */

static void add_sat(uint64_t *to, uint64_t n)
{
	*to = n > UINT64_MAX - *to ? UINT64_MAX : *to + n;
}

/* store_counts_query callback: rows arrive sorted by domain. */
static void collect(void *arg, const char *domain, const char *event, uint64_t n)
{
	struct stats *s = arg;
	struct domain_counts *last = s->n ? &s->v[s->n - 1] : NULL;
	int ev = counter_event_parse(event);

	if (ev < 0)
		return;
	if (last == NULL || strcmp(last->domain, domain) != 0) {
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 16;
			s->v = xrealloc(s->v, s->cap * sizeof *s->v);
		}
		last = &s->v[s->n++];
		memset(last, 0, sizeof *last);
		last->domain = xstrdup(domain);
	}
	add_sat(&last->n[ev], n);
	add_sat(&s->total[ev], n);
}

static void stats_free(struct stats *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].domain);
	free(s->v);
}

static int load(const struct conf *c, int64_t since, const char *account, struct stats *s)
{
	char *err = NULL;
	struct store *st =
	    store_open_url(c->data_dir, c->cluster_postgres, c->cluster_secret_key_file, &err);
	int rc = CLI_OK, exists = 1;

	if (st == NULL || store_counts_query(st, since, account, collect, s, &err) < 0)
		rc = cli_say(CLI_RUNTIME, "%s", err ? err : "cannot read the counters");
	else if (account && (exists = store_user_exists(st, account)) < 0)
		rc = cli_say(CLI_RUNTIME, "cannot look up account '%s'", account);
	else if (!exists && s->n == 0)
		rc = cli_say(CLI_RUNTIME, "no such account '%s'", account);
	else if (!exists)
		fprintf(stderr,
		        "posthorn: account '%s' does not exist any more; these are its counters "
		        "from before it was deleted\n",
		        account);
	free(err);
	store_close(st);
	return rc;
}

/* ---- printing ------------------------------------------------------------ */

static void print_row(const char *name, const uint64_t n[COUNTER_EVENTS])
{
	fputs(name, stdout);
	for (int ev = 0; ev < COUNTER_EVENTS; ev++)
		printf("\t%llu", (unsigned long long)n[ev]);
	putchar('\n');
}

static void print_table(const struct stats *s)
{
	struct buf b;

	fputs("DOMAIN", stdout);
	for (int ev = 0; ev < COUNTER_EVENTS; ev++)
		printf("\t%s", counter_event_name(ev));
	putchar('\n');
	buf_init(&b);
	for (size_t i = 0; i < s->n; i++) {
		buf_reset(&b);
		buf_puts(&b, "");
		cli_escape(&b, s->v[i].domain, 0);
		print_row(b.data, s->v[i].n);
	}
	buf_free(&b);
	print_row("TOTAL", s->total);
}

/* JSON integers are signed; counts are kept below INT64_MAX anyway. */
static json_int_t json_count(uint64_t n)
{
	return n > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)n;
}

static json_t *counts_json(const uint64_t n[COUNTER_EVENTS])
{
	json_t *o = json_object();

	for (int ev = 0; ev < COUNTER_EVENTS; ev++)
		json_object_set_new(o, counter_event_name(ev), json_integer(json_count(n[ev])));
	return o;
}

/*
 * jansson refuses keys that are not UTF-8; those are escaped, and then two
 * domains might meet under one key, so counts add up rather than replace.
 */
static void json_add_domain(json_t *domains, const struct domain_counts *d)
{
	json_t *probe = json_string(d->domain), *have;
	struct buf key;

	buf_init(&key);
	buf_puts(&key, "");
	if (probe != NULL)
		buf_puts(&key, d->domain);
	else
		cli_escape(&key, d->domain, 1);
	json_decref(probe);
	have = json_object_get(domains, key.data);
	for (int ev = 0; have != NULL && ev < COUNTER_EVENTS; ev++) {
		json_t *v = json_object_get(have, counter_event_name(ev));
		uint64_t sum = (uint64_t)json_integer_value(v);

		add_sat(&sum, d->n[ev]);
		json_integer_set(v, json_count(sum));
	}
	if (have == NULL)
		json_object_set_new(domains, key.data, counts_json(d->n));
	buf_free(&key);
}

/* {"all": bool, "destinations": [...]}: what `posthorn pause` keeps. */
static json_t *paused_json(const struct conf *c)
{
	json_t *o = json_object(), *names = json_array();
	struct sched_pauses ps;
	char *err = NULL;

	if (sched_pause_read(c->data_dir, &ps, &err) < 0) {
		free(err);
		memset(&ps, 0, sizeof(ps));
	}
	for (size_t i = 0; i < ps.n; i++)
		json_array_append_new(names, json_string(ps.names[i]));
	json_object_set_new(o, "all", json_boolean(ps.all));
	json_object_set_new(o, "destinations", names);
	sched_pauses_free(&ps);
	return o;
}

static int print_json(const struct stats *s, int64_t since, const struct conf *c,
                      const char *account)
{
	json_t *root = json_object(), *domains = json_object();
	int rc;

	json_object_set_new(root, "since", json_integer(counter_bucket(since)));
	for (size_t i = 0; i < s->n; i++)
		json_add_domain(domains, &s->v[i]);
	json_object_set_new(root, "domains", domains);
	json_object_set_new(root, "total", counts_json(s->total));
	if (cli_stats_accounts(c, account, root) != 0) {
		json_decref(root);
		return CLI_RUNTIME;
	}
	json_object_set_new(root, "paused", paused_json(c));
	rc = json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	putchar('\n');
	json_decref(root);
	return rc == 0 ? CLI_OK : cli_say(CLI_RUNTIME, "cannot write JSON to stdout");
}

static int run_stats(int argc, char **argv, const struct conf *c)
{
	struct stats_args a;
	struct stats s = {0};
	int64_t since = 0;
	int rc = parse_args(&a, argc, argv);

	if (rc == CLI_OK)
		rc = since_time(a.since, &since);
	if (rc != CLI_OK)
		return rc;
	rc = load(c, since, a.account, &s);
	if (rc == CLI_OK && a.json) {
		rc = print_json(&s, since, c, a.account);
	} else if (rc == CLI_OK) {
		char *paused = cli_paused_text(c);
		print_table(&s);
		rc = cli_stats_accounts(c, a.account, NULL);
		if (paused) /* a note for people: the table stays a table */
			fprintf(stderr, "posthorn: delivery paused: %s\n", paused);
		free(paused);
	}
	stats_free(&s);
	return cli_flush(rc);
}

const struct cli_cmd cli_stats_cmd = {
    .path = "stats",
    .args = "[--since DURATION] [--account NAME] [--json]",
    .about = "Delivery counters per recipient domain (see docs/cli.md).",
    .more = "  DURATION: a number with s, m, h or d (default " DEFAULT_SINCE "); counters are\n"
            "  kept per hour, so the window starts at the hour holding now - DURATION.\n"
            "  Without --account, all accounts are summed; an account that does not exist\n"
            "  is an error (exit 1). Columns count recipients:\n"
            "  accepted, delivered, deferred (at least once), bounced, suppressed.\n",
    .run = run_stats,
    .flags = CLI_AS_USER,
};

int cli_stats(int argc, char **argv, const struct conf *c)
{
	return cli_dispatch(&cli_stats_cmd, argc, argv, c);
}
