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

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
    "usage: posthorn suppress list [--account ACCOUNT] [--search TEXT] [--json]\n"
    "       posthorn suppress add ADDR [--account ACCOUNT] [--reason TEXT] [--json]\n"
    "       posthorn suppress remove ADDR [--account ACCOUNT] [--json]\n"
    "  The account's suppression list (default account: default). Mail to a listed\n"
    "  address is refused. Each entry prints as address, reason, time added\n"
    "  (tab-separated), or as one JSON object a line with --json. Addresses compare\n"
    "  in any case. add keeps the first reason of an address already listed.\n";

#define say(code, ...) cli_say((code), usage_text, __VA_ARGS__)

struct supp_args {
	const char *account, *reason, *search;
	int json;
	const char *addr;
	int n_pos;
};

enum { OPT_REASON = 1, OPT_SEARCH = 2 };

/* One option at argv[*i]: 0 taken, EXIT_USAGE (said) if not. */
static int parse_opt(struct supp_args *a, int allowed, int argc, char **argv, int *i)
{
	int r;

	if (!strcmp(argv[*i], "--json")) {
		a->json = 1;
		return 0;
	}
	if ((r = cli_opt_value("--account", argc, argv, i, &a->account, usage_text)) != 0 ||
	    ((allowed & OPT_REASON) &&
	     (r = cli_opt_value("--reason", argc, argv, i, &a->reason, usage_text))) ||
	    ((allowed & OPT_SEARCH) &&
	     (r = cli_opt_value("--search", argc, argv, i, &a->search, usage_text))))
		return r < 0 ? EXIT_USAGE : 0;
	return say(EXIT_USAGE, "unknown option '%s'", argv[*i]);
}

/* argv[0] is the verb; takes one address when want_addr. */
static int parse_args(struct supp_args *a, int allowed, int want_addr, int argc, char **argv)
{
	int options = 1;

	memset(a, 0, sizeof(*a));
	a->account = "default";
	for (int i = 1; i < argc; i++) {
		if (options && !strcmp(argv[i], "--"))
			options = 0;
		else if (options && argv[i][0] == '-' && argv[i][1]) {
			if (parse_opt(a, allowed, argc, argv, &i) != 0)
				return EXIT_USAGE;
		} else if (!want_addr || a->n_pos++ > 0)
			return say(EXIT_USAGE, "suppress %s: unexpected argument '%s'", argv[0],
			           argv[i]);
		else
			a->addr = argv[i];
	}
	if (want_addr && !a->addr)
		return say(EXIT_USAGE, "suppress %s takes one address", argv[0]);
	return EXIT_OK;
}

/* A bad address is a usage error, said with what is wrong. */
static int check_address(const char *addr)
{
	char display[SUPP_ADDRESS_MAX + 1], key[SUPP_ADDRESS_MAX + 1];
	const char *why = "not a valid RFC 5321 address";

	if (store_supp_normalize(addr, display, key, &why) == 0 && smtp_address_valid(display, 1))
		return EXIT_OK;
	return say(EXIT_USAGE, "invalid address '%s': %s", addr, why);
}

static int check_reason(const char *reason)
{
	if (!reason)
		return EXIT_OK;
	if (strlen(reason) > SUPP_REASON_MAX)
		return say(EXIT_USAGE, "--reason is longer than %d bytes", SUPP_REASON_MAX);
	for (const char *p = reason; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return say(EXIT_USAGE, "--reason: control characters are not allowed");
	return EXIT_OK;
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

	if (rc != EXIT_OK || !(st = cli_open_store(c)))
		return rc != EXIT_OK ? rc : EXIT_RUNTIME;
	if (list_all(st, &a, &err) < 0)
		rc = cli_fail(err);
	store_close(st);
	return cli_flush_stdout(rc);
}

static int supp_add(int argc, char **argv, const struct conf *c)
{
	struct supp_args a;
	struct store_supp s;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, OPT_REASON, 1, argc, argv), added;

	if (rc == EXIT_OK)
		rc = check_address(a.addr);
	if (rc == EXIT_OK)
		rc = check_reason(a.reason);
	if (rc != EXIT_OK || !(st = cli_open_store(c)))
		return rc != EXIT_OK ? rc : EXIT_RUNTIME;
	added = store_supp_add(st, a.account, a.addr, a.reason, &s, &err);
	store_close(st);
	if (added < 0)
		return cli_fail(err);
	print_entry(&a, &s);
	if (added)
		say(EXIT_OK, "%s added to the suppression list of account %s", s.address,
		    a.account);
	else
		say(EXIT_OK,
		    "%s was already on the suppression list of account %s (kept as it was)",
		    s.address, a.account);
	return cli_flush_stdout(EXIT_OK);
}

static int supp_remove(int argc, char **argv, const struct conf *c)
{
	struct supp_args a;
	struct store_supp s;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, 0, 1, argc, argv), found;

	if (rc != EXIT_OK || !(st = cli_open_store(c)))
		return rc != EXIT_OK ? rc : EXIT_RUNTIME;
	found = store_supp_remove(st, a.account, a.addr, &s, &err);
	store_close(st);
	if (found == STORE_SUPP_BAD_ADDRESS) {
		free(err);
		return check_address(a.addr);
	}
	if (found < 0)
		return cli_fail(err);
	if (found == 0)
		return say(EXIT_RUNTIME, "%s is not on the suppression list of account %s", a.addr,
		           a.account);
	print_entry(&a, &s);
	say(EXIT_OK, "%s removed from the suppression list of account %s", s.address, a.account);
	return cli_flush_stdout(EXIT_OK);
}

static const struct cli_verb verbs[] = {
    {"list", supp_list},
    {"add", supp_add},
    {"remove", supp_remove},
};

int cli_suppress(int argc, char **argv, const struct conf *c)
{
	return cli_run_verb(verbs, ARRAY_LEN(verbs), usage_text, argc, argv, c);
}
