/*
 * cli_suppress: `posthorn suppress ...`, an account's suppression list.
 * The store does the work (store_supp.c); this file parses arguments and
 * prints.
 *
 *   suppress list [--account A] [--search TEXT] [--json]
 *   suppress add ADDR [--account A] [--reason TEXT] [--json]
 *   suppress remove ADDR [--account A] [--json]
 *
 * Each entry is one line on stdout: address, reason and the time it was
 * added (RFC 3339 UTC), tab-separated; with --json, one JSON object a line
 * ({"address", "reason", "created_at"}, as the API gives it). add and
 * remove print the entry they added, found or removed; what happened goes
 * to stderr. add is idempotent: an address already listed keeps its first
 * reason and time, and the command succeeds. A running server sees every
 * change at once (nothing caches the list).
 *
 * Exit codes: 0 ok, 1 runtime error (unknown account, an address not on
 * the list for remove, the database), 2 usage error (a bad address too).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "smtpd/smtp_parse.h"
#include "store/store.h"
#include "util/util.h"

#define say(code, ...) cli_say((code), __VA_ARGS__)

struct supp_args {
	const char *account, *reason, *search;
	int json;
	const char *addr;
};

enum { OPT_REASON = 1, OPT_SEARCH = 2 };

/* argv[0] is the verb; takes one address when want_addr. */
static int parse_args(struct supp_args *a, unsigned allowed, int want_addr, int argc, char **argv)
{
	struct cli_opt opts[4] = {{"--json", &a->json, NULL}, {"--account", NULL, &a->account}};
	size_t n_opts = 2, n_pos;
	char *pos[1];

	memset(a, 0, sizeof(*a));
	a->account = "default";
	if (allowed & OPT_REASON)
		opts[n_opts++] = (struct cli_opt){"--reason", NULL, &a->reason};
	if (allowed & OPT_SEARCH)
		opts[n_opts++] = (struct cli_opt){"--search", NULL, &a->search};
	if (cli_parse(argc, argv, opts, n_opts, pos, &n_pos, want_addr ? 1 : 0) != CLI_OK)
		return CLI_USAGE;
	if (want_addr && n_pos == 0)
		return say(CLI_USAGE, "suppress %s takes one address", argv[0]);
	a->addr = want_addr ? pos[0] : NULL;
	return CLI_OK;
}

/* A bad address is a usage error, said with what is wrong. */
static int check_address(const char *addr)
{
	char display[SUPP_ADDRESS_MAX + 1], key[SUPP_ADDRESS_MAX + 1];
	const char *why = "not a valid RFC 5321 address";

	if (store_supp_normalize(addr, display, key, &why) == 0 && smtp_address_valid(display, 1))
		return CLI_OK;
	return say(CLI_USAGE, "invalid address '%s': %s", addr, why);
}

static int check_reason(const char *reason)
{
	if (!reason)
		return CLI_OK;
	if (strlen(reason) > SUPP_REASON_MAX)
		return say(CLI_USAGE, "--reason is longer than %d bytes", SUPP_REASON_MAX);
	for (const char *p = reason; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return say(CLI_USAGE, "--reason: control characters are not allowed");
	return CLI_OK;
}

/* ---- output ---- */

static void format_time(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm))
		snprintf(out, cap, "-");
	else
		strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_entry(void *arg, const struct store_supp *s)
{
	const struct supp_args *a = arg;
	char when[32];
	json_t *o;
	char *line;

	format_time(s->created_at, when, sizeof(when));
	if (!a->json) {
		printf("%s\t%s\t%s\n", s->address, s->reason, when);
		return;
	}
	o = json_pack("{s:s,s:s,s:s}", "address", s->address, "reason", s->reason, "created_at",
	              when);
	line = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII) : NULL;
	printf("%s\n", line ? line : "{}");
	json_decref(o);
	free(line);
}

/* ---- the verbs ---- */

struct pager {
	const struct supp_args *a;
	char last[SUPP_ADDRESS_MAX + 1]; /* the key of the last entry printed */
};

static void print_paged(void *arg, const struct store_supp *s)
{
	struct pager *pg = arg;

	print_entry((void *)pg->a, s);
	snprintf(pg->last, sizeof(pg->last), "%s", s->key);
}

/* Pages through the whole list, so that memory stays bounded. */
static int list_all(struct store *st, const struct supp_args *a, char **err)
{
	struct pager pg = {a, ""};
	struct store_supp_query q = {a->account, a->search, pg.last, SUPP_LIST_MAX};
	int more = 1, rc = 0;

	while (rc == 0 && more)
		rc = store_supp_list(st, &q, print_paged, &pg, &more, err);
	return rc;
}

static int supp_list(int argc, char **argv, const struct conf *c)
{
	struct supp_args a;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, OPT_SEARCH, 0, argc, argv);

	if (rc != CLI_OK || !(st = cli_open_store(c)))
		return rc != CLI_OK ? rc : CLI_RUNTIME;
	if (list_all(st, &a, &err) < 0)
		rc = cli_fail(err);
	store_close(st);
	return cli_flush(rc);
}

static int supp_add(int argc, char **argv, const struct conf *c)
{
	struct supp_args a;
	struct store_supp s;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, OPT_REASON, 1, argc, argv), added;

	if (rc == CLI_OK)
		rc = check_address(a.addr);
	if (rc == CLI_OK)
		rc = check_reason(a.reason);
	if (rc != CLI_OK || !(st = cli_open_store(c)))
		return rc != CLI_OK ? rc : CLI_RUNTIME;
	added = store_supp_add(st, a.account, a.addr, a.reason, &s, &err);
	store_close(st);
	if (added < 0)
		return cli_fail(err);
	print_entry(&a, &s);
	if (added)
		say(CLI_OK, "%s added to the suppression list of account %s", s.address, a.account);
	else
		say(CLI_OK, "%s was already on the suppression list of account %s (kept as it was)",
		    s.address, a.account);
	return cli_flush(CLI_OK);
}

static int supp_remove(int argc, char **argv, const struct conf *c)
{
	struct supp_args a;
	struct store_supp s;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, 0, 1, argc, argv), found;

	if (rc != CLI_OK || !(st = cli_open_store(c)))
		return rc != CLI_OK ? rc : CLI_RUNTIME;
	found = store_supp_remove(st, a.account, a.addr, &s, &err);
	store_close(st);
	if (found == STORE_SUPP_BAD_ADDRESS) {
		free(err);
		return check_address(a.addr);
	}
	if (found < 0)
		return cli_fail(err);
	if (found == 0)
		return say(CLI_RUNTIME, "%s is not on the suppression list of account %s", a.addr,
		           a.account);
	print_entry(&a, &s);
	say(CLI_OK, "%s removed from the suppression list of account %s", s.address, a.account);
	return cli_flush(CLI_OK);
}

static const struct cli_cmd list_cmd = {
    .path = "suppress list",
    .args = "[--account ACCOUNT] [--search TEXT] [--json]",
    .about = "The account's suppression list (default account: default): address, reason,\n"
             "time added (tab-separated), or one JSON object a line with --json.",
    .run = supp_list,
};

static const struct cli_cmd add_cmd = {
    .path = "suppress add",
    .args = "ADDR [--account ACCOUNT] [--reason TEXT] [--json]",
    .about = "Adds ADDR: mail to it is refused. An address already listed keeps its first\n"
             "reason. Addresses compare in any case.",
    .run = supp_add,
};

static const struct cli_cmd remove_cmd = {
    .path = "suppress remove",
    .args = "ADDR [--account ACCOUNT] [--json]",
    .about = "Takes ADDR off the list.",
    .run = supp_remove,
};

static const struct cli_cmd *const suppress_cmds[] = {&list_cmd, &add_cmd, &remove_cmd, NULL};

const struct cli_cmd cli_suppress_cmd = {
    .path = "suppress",
    .about = "Suppression lists: addresses mail is never sent to.",
    .subs = suppress_cmds,
    .flags = CLI_AS_USER,
};
