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
#include "cli/cli_int.h"
#include "conf/conf.h"
#include "store/store.h"
#include "util/util.h"

/* The options and operands of one verb. */
struct apikey_args {
	const char *name;    /* --name */
	const char *account; /* --account */
	int admin;           /* --admin */
	char *pos[1];
	size_t n_pos;
};

/* ---- create ---- */

static int apikey_create(int argc, char **argv, const struct conf *c)
{
	struct apikey_args a = {0};
	const struct cli_opt opts[] = {{"--name", NULL, &a.name}, {"--admin", &a.admin, NULL}};
	char key[APIKEY_LEN + 1], *err = NULL;
	struct store *st;
	int64_t id = 0;
	int rc = cli_parse(argc, argv, opts, ARRAY_LEN(opts), a.pos, &a.n_pos, 1);

	if (rc == CLI_OK && a.n_pos != 1)
		return cli_say(CLI_USAGE, "apikey create takes one account name");
	if (rc == CLI_OK && !store_apikey_name_valid(a.name ? a.name : ""))
		return cli_say(CLI_USAGE,
		               "invalid --name: at most %d characters, no control characters",
		               APIKEY_NAME_MAX);
	if (rc != CLI_OK || !(st = cli_open_store(c)))
		return rc != CLI_OK ? rc : CLI_RUNTIME;
	if (store_apikey_create(st, a.pos[0], a.name ? a.name : "", a.admin, key, &id, &err) < 0)
		rc = cli_fail(err);
	store_close(st);
	if (rc != CLI_OK)
		return rc;
	printf("%s\n", key);
	sodium_memzero(key, sizeof(key));
	fprintf(stderr,
	        "posthorn: API key %lld created for account %s%s; it is shown only this once\n",
	        (long long)id, a.pos[0], a.admin ? " (admin)" : "");
	return cli_flush(CLI_OK);
}

/* ---- list ---- */

static void put_time(int64_t t, const char *none)
{
	char s[32];

	fputs(t > 0 ? cli_time(t, s, sizeof(s)) : none, stdout);
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
	struct apikey_args a = {0};
	const struct cli_opt opts[] = {{"--account", NULL, &a.account}};
	struct store_apikey_scope all = {NULL, 1};
	struct store *st;
	char *err = NULL;
	int rc = cli_parse(argc, argv, opts, ARRAY_LEN(opts), a.pos, &a.n_pos, 0);

	if (rc != CLI_OK || !(st = cli_open_store(c)))
		return rc != CLI_OK ? rc : CLI_RUNTIME;
	all.account = a.account;
	if (a.account && store_user_exists(st, a.account) == 0)
		rc = cli_say(CLI_RUNTIME, "no such account '%s'", a.account);
	else if (store_apikey_list(st, &all, print_key, NULL, &err) < 0)
		rc = cli_fail(err);
	store_close(st);
	return cli_flush(rc);
}

/* ---- revoke ---- */

static int apikey_revoke(int argc, char **argv, const struct conf *c)
{
	struct apikey_args a = {0};
	struct store_apikey_scope all = {NULL, 1};
	struct store *st;
	char *err = NULL;
	uint64_t id;
	int rc = cli_parse(argc, argv, NULL, 0, a.pos, &a.n_pos, 1);

	if (rc == CLI_OK && a.n_pos != 1)
		return cli_say(CLI_USAGE, "apikey revoke takes one key ID (see apikey list)");
	if (rc == CLI_OK && (parse_u64(a.pos[0], &id) < 0 || id == 0 || id > INT64_MAX))
		return cli_say(CLI_USAGE, "invalid key ID '%s': expected a number from apikey list",
		               a.pos[0]);
	if (rc != CLI_OK || !(st = cli_open_store(c)))
		return rc != CLI_OK ? rc : CLI_RUNTIME;
	if (store_apikey_revoke(st, (int64_t)id, &all, NULL, &err) < 0)
		rc = cli_fail(err);
	else
		fprintf(stderr, "posthorn: API key %llu revoked\n", (unsigned long long)id);
	store_close(st);
	return rc;
}

static const struct cli_cmd create_cmd = {
    .path = "apikey create",
    .args = "ACCOUNT [--name NAME] [--admin]",
    .about = "Makes an API key for ACCOUNT and prints it alone on stdout, this once\n"
             "(only its hash is kept). An --admin key sees every account and the queue.",
    .run = apikey_create,
};

static const struct cli_cmd list_cmd = {
    .path = "apikey list",
    .args = "[--account ACCOUNT]",
    .about = "One key a line, tab-separated: ID, account, name, admin, created, last\n"
             "used, state.",
    .run = apikey_list,
};

static const struct cli_cmd revoke_cmd = {
    .path = "apikey revoke",
    .args = "ID",
    .about = "Revokes key ID (see apikey list); a running server sees it within a second.",
    .run = apikey_revoke,
};

static const struct cli_cmd *const apikey_cmds[] = {&create_cmd, &list_cmd, &revoke_cmd, NULL};

const struct cli_cmd cli_apikey_cmd = {
    .path = "apikey",
    .about = "HTTP API keys.",
    .subs = apikey_cmds,
    .flags = CLI_AS_USER,
};
