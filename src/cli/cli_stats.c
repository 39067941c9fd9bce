/*
 * cli_stats: `posthorn stats [--since DURATION] [--account NAME] [--json]`,
 * the delivery counters per recipient domain over the last DURATION
 * (default 24h), summed over all accounts unless --account names one.
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
#include "conf/conf.h"
#include "store/store.h"
#include "util/util.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

#define DEFAULT_SINCE "24h"

static const char usage_text[] =
    "usage: posthorn stats [--since DURATION] [--account NAME] [--json]\n"
    "  DURATION: a number with s, m, h or d (default " DEFAULT_SINCE "); counters are\n"
    "  kept per hour, so the window starts at the hour holding now - DURATION.\n"
    "  Without --account, all accounts are summed.\n";

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

#define say(code, ...) cli_say((code), usage_text, __VA_ARGS__)

/* ---- arguments ----------------------------------------------------------- */

/*
 * Takes the value of --NAME VALUE or --NAME=VALUE at argv[*i] into *out.
 * 1 taken, 0 not this option, -1 usage error (reported).
 */
static int opt_value(const char *name, int argc, char **argv, int *i, const char **out)
{
	size_t len = strlen(name);
	const char *arg = argv[*i];

	if (strncmp(arg, name, len) != 0 || (arg[len] != '\0' && arg[len] != '='))
		return 0;
	if (arg[len] == '=') {
		*out = arg + len + 1;
		return 1;
	}
	if (++*i == argc) {
		say(EXIT_USAGE, "%s needs a value", name);
		return -1;
	}
	*out = argv[*i];
	return 1;
}

/* One option at argv[*i]: 0 ok, EXIT_USAGE (reported). */
static int parse_opt(struct stats_args *a, int argc, char **argv, int *i)
{
	int rc;

	if (strcmp(argv[*i], "--json") == 0) {
		a->json = 1;
		return EXIT_OK;
	}
	if ((rc = opt_value("--since", argc, argv, i, &a->since)) != 0)
		return rc < 0 ? EXIT_USAGE : EXIT_OK;
	if ((rc = opt_value("--account", argc, argv, i, &a->account)) != 0)
		return rc < 0 ? EXIT_USAGE : EXIT_OK;
	return say(EXIT_USAGE, "unknown option '%s'", argv[*i]);
}

static int parse_args(struct stats_args *a, int argc, char **argv)
{
	memset(a, 0, sizeof *a);
	a->since = DEFAULT_SINCE;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-')
			return say(EXIT_USAGE, "unexpected argument '%s'", argv[i]);
		if (parse_opt(a, argc, argv, &i) != EXIT_OK)
			return EXIT_USAGE;
	}
	if (a->account != NULL && !store_account_name_valid(a->account))
		return say(EXIT_USAGE,
		           "invalid account name '%s' (1-64 characters of A-Z a-z 0-9 . _ @ + -)",
		           a->account);
	return EXIT_OK;
}

/* now - DURATION in unix seconds, never before the epoch. */
static int since_time(const char *duration, int64_t *since)
{
	int64_t now = (int64_t)(clock_now_ms() / 1000);
	uint64_t secs;

	if (parse_duration(duration, &secs) < 0)
		return say(EXIT_USAGE, "invalid duration '%s' (e.g. 90m, 24h, 7d)", duration);
	*since = secs >= (uint64_t)now ? 0 : now - (int64_t)secs;
	return EXIT_OK;
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
	struct store *st = store_open(c->data_dir, &err);
	int rc = EXIT_OK;

	if (st == NULL || store_counts_query(st, since, account, collect, s, &err) < 0)
		rc = say(EXIT_RUNTIME, "%s", err ? err : "cannot read the counters");
	free(err);
	store_close(st);
	return rc;
}

/* ---- printing ------------------------------------------------------------ */

/* Appends s with control bytes, DEL and backslash (and, if high, bytes
 * above 0x7F) as \xHH. */
static void escape(struct buf *b, const char *s, int high)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || ch == '\\' || (high && ch > 0x7f))
			buf_printf(b, "\\x%02X", ch);
		else
			buf_append(b, s, 1);
	}
}

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
		escape(&b, s->v[i].domain, 0);
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
		escape(&key, d->domain, 1);
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
		return EXIT_RUNTIME;
	}
	rc = json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(root);
	return rc == 0 ? EXIT_OK : say(EXIT_RUNTIME, "cannot write JSON to stdout");
}

int cli_stats(int argc, char **argv, const struct conf *c)
{
	struct stats_args a;
	struct stats s = {0};
	int64_t since = 0;
	int rc;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	rc = parse_args(&a, argc, argv);
	if (rc == EXIT_OK)
		rc = since_time(a.since, &since);
	if (rc != EXIT_OK)
		return rc;
	rc = load(c, since, a.account, &s);
	if (rc == EXIT_OK && a.json)
		rc = print_json(&s, since, c, a.account);
	else if (rc == EXIT_OK) {
		print_table(&s);
		rc = cli_stats_accounts(c, a.account, NULL);
	}
	stats_free(&s);
	/* A full disk or a closed pipe must not look like success. */
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = say(EXIT_RUNTIME, "cannot write to stdout: %s", strerror(errno));
	return rc;
}
