/*
 * cli_apikey: `posthorn apikey ...`, the HTTP API keys. The store does
 * the work (store_apikey.c); this file parses arguments and prints.
 *
 *   apikey create ACCOUNT [--name N] [--admin]   the key alone on stdout
 *   apikey list [--account A]                    one key a line (below)
 *   apikey revoke ID
 *
 * list prints, tab-separated: ID, account, name ("-" when empty), "admin"
 * or "-", created, last used ("never"), and "active" or "revoked TIME";
 * times in RFC 3339 UTC. The key itself is never printed again: only its
 * hash is kept. A running server sees a revocation within a second.
 *
 * Exit codes: 0 ok, 1 runtime error (unknown account or key, database),
 * 2 usage error.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "store/store.h"
#include "util/util.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
    "usage: posthorn apikey create ACCOUNT [--name NAME] [--admin]\n"
    "       posthorn apikey list [--account ACCOUNT]\n"
    "       posthorn apikey revoke ID\n"
    "  create prints the new key alone on stdout; it is shown only this once.\n"
    "  An --admin key sees every account and the queue.\n"
    "  list: ID, account, name, admin, created, last used, state (tab-separated).\n";

#define say(code, ...) cli_say((code), usage_text, __VA_ARGS__)

struct apikey_args {
	const char *name;    /* --name */
	const char *account; /* --account */
	int admin;           /* --admin */
	const char *pos[2];
	size_t n_pos;
};

enum { OPT_NAME = 1, OPT_ADMIN = 2, OPT_ACCOUNT = 4 };

static int parse_opt(struct apikey_args *a, int allowed, int argc, char **argv, int *i)
{
	int r = 0;

	if ((allowed & OPT_ADMIN) && !strcmp(argv[*i], "--admin")) {
		a->admin = 1;
		return 0;
	}
	if ((allowed & OPT_NAME) &&
	    (r = cli_opt_value("--name", argc, argv, i, &a->name, usage_text)) != 0)
		return r < 0 ? EXIT_USAGE : 0;
	if ((allowed & OPT_ACCOUNT) &&
	    (r = cli_opt_value("--account", argc, argv, i, &a->account, usage_text)) != 0)
		return r < 0 ? EXIT_USAGE : 0;
	return say(EXIT_USAGE, "unknown option '%s'", argv[*i]);
}

/* Parses argv[1..] (argv[0] is the verb); max_pos operands at most. */
static int parse_args(struct apikey_args *a, int allowed, size_t max_pos, int argc, char **argv)
{
	int options = 1;

	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if (options && !strcmp(argv[i], "--")) {
			options = 0;
		} else if (options && argv[i][0] == '-' && argv[i][1]) {
			if (parse_opt(a, allowed, argc, argv, &i) != 0)
				return EXIT_USAGE;
		} else if (a->n_pos == max_pos) {
			return say(EXIT_USAGE, "apikey %s: unexpected argument '%s'", argv[0],
			           argv[i]);
		} else {
			a->pos[a->n_pos++] = argv[i];
		}
	}
	return EXIT_OK;
}

/* ---- create ---- */

static int apikey_create(int argc, char **argv, const struct conf *c)
{
	struct apikey_args a;
	char key[APIKEY_LEN + 1], *err = NULL;
	struct store *st;
	int64_t id = 0;
	int rc = parse_args(&a, OPT_NAME | OPT_ADMIN, 1, argc, argv);

	if (rc == EXIT_OK && a.n_pos != 1)
		return say(EXIT_USAGE, "apikey create takes one account name");
	if (rc == EXIT_OK && !store_apikey_name_valid(a.name ? a.name : ""))
		return say(EXIT_USAGE,
		           "invalid --name: at most %d characters, no control characters",
		           APIKEY_NAME_MAX);
	if (rc != EXIT_OK || !(st = cli_open_store(c)))
		return rc != EXIT_OK ? rc : EXIT_RUNTIME;
	if (store_apikey_create(st, a.pos[0], a.name ? a.name : "", a.admin, key, &id, &err) < 0)
		rc = cli_fail(err);
	store_close(st);
	if (rc != EXIT_OK)
		return rc;
	printf("%s\n", key);
	sodium_memzero(key, sizeof(key));
	fprintf(stderr,
	        "posthorn: API key %lld created for account %s%s; it is shown only this once\n",
	        (long long)id, a.pos[0], a.admin ? " (admin)" : "");
	return cli_flush_stdout(EXIT_OK);
}

/* ---- list ---- */

static void put_time(int64_t t, const char *none)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[32];

	if (t <= 0 || !gmtime_r(&tt, &tm)) {
		fputs(none, stdout);
		return;
	}
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fputs(s, stdout);
}

static void print_key(void *arg, const struct store_apikey *k)
{
	printf("%lld\t%s\t%s\t%s\t", (long long)k->id, k->account, k->name[0] ? k->name : "-",
	       k->admin ? "admin" : "-");
	put_time(k->created_at, "-");
	putchar('\t');
	put_time(k->last_used_at, "never");
	if (k->revoked_at) {
		fputs("\trevoked ", stdout);
		put_time(k->revoked_at, "-");
		putchar('\n');
	} else {
		fputs("\tactive\n", stdout);
	}
}

static int apikey_list(int argc, char **argv, const struct conf *c)
{
	struct apikey_args a;
	struct store_apikey_scope all = {NULL, 1};
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, OPT_ACCOUNT, 0, argc, argv);

	if (rc != EXIT_OK || !(st = cli_open_store(c)))
		return rc != EXIT_OK ? rc : EXIT_RUNTIME;
	all.account = a.account;
	if (a.account && store_user_exists(st, a.account) == 0)
		rc = say(EXIT_RUNTIME, "no such account '%s'", a.account);
	else if (store_apikey_list(st, &all, print_key, NULL, &err) < 0)
		rc = cli_fail(err);
	store_close(st);
	return cli_flush_stdout(rc);
}

/* ---- revoke ---- */

static int apikey_revoke(int argc, char **argv, const struct conf *c)
{
	struct apikey_args a;
	struct store_apikey_scope all = {NULL, 1};
	struct store *st;
	char *err = NULL;
	uint64_t id;
	int rc = parse_args(&a, 0, 1, argc, argv);

	if (rc == EXIT_OK && a.n_pos != 1)
		return say(EXIT_USAGE, "apikey revoke takes one key ID (see apikey list)");
	if (rc == EXIT_OK && (parse_u64(a.pos[0], &id) < 0 || id == 0 || id > INT64_MAX))
		return say(EXIT_USAGE, "invalid key ID '%s': expected a number from apikey list",
		           a.pos[0]);
	if (rc != EXIT_OK || !(st = cli_open_store(c)))
		return rc != EXIT_OK ? rc : EXIT_RUNTIME;
	if (store_apikey_revoke(st, (int64_t)id, &all, NULL, &err) < 0)
		rc = cli_fail(err);
	else
		fprintf(stderr, "posthorn: API key %llu revoked\n", (unsigned long long)id);
	store_close(st);
	return rc;
}

static const struct cli_verb verbs[] = {
    {"create", apikey_create},
    {"list", apikey_list},
    {"revoke", apikey_revoke},
};

int cli_apikey(int argc, char **argv, const struct conf *c)
{
	return cli_run_verb(verbs, ARRAY_LEN(verbs), usage_text, argc, argv, c);
}
