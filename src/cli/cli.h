/*
 * cli: the admin subcommands. Each works on the data directory whether or
 * not a server is running (SQLite in WAL mode and the spool's own locking
 * make that safe) and prints machine-readable results to stdout, one item a
 * line, everything else to stderr. Each returns the process exit code:
 * 0 ok, 1 runtime error, 2 usage error.
 *
 * argv[0] is the subcommand's own name ("user", "queue"); options that
 * main.c already consumed (-c FILE) are gone.
 */
#ifndef POSTHORN_CLI_H
#define POSTHORN_CLI_H

#include <stddef.h>
#include <stdint.h>

struct conf;

/* Prints "posthorn: MESSAGE" to stderr, and the usage text after a usage
 * error (code 2); returns code. */
int cli_say(int code, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* What the subcommands share (cli_util.c). */
struct store;

/* 1 for --help, -h and help. */
int cli_is_help(const char *arg);
/* --NAME VALUE or --NAME=VALUE at argv[*i] into *out: 1 taken, 0 not this
 * option, -1 a usage error (said, with usage). */
int cli_opt_value(const char *name, int argc, char **argv, int *i, const char **out,
                  const char *usage);
/* The store of c's data directory, or NULL (said). */
struct store *cli_open_store(const struct conf *c);
/* Says err (and frees it); returns 1, the runtime error. */
int cli_fail(char *err);
/* rc, or 1 when stdout could not be written (a full disk, a closed pipe). */
int cli_flush_stdout(int rc);

/* A subcommand's verbs: argv[0] is the subcommand, argv[1] the verb; each
 * run() gets argv from the verb on. --help anywhere before "--" prints
 * usage on stdout (exit 0). */
struct cli_verb {
	const char *name;
	int (*run)(int argc, char **argv, const struct conf *c);
};
int cli_run_verb(const struct cli_verb *verbs, size_t n, const char *usage, int argc, char **argv,
                 const struct conf *c);

int cli_user(int argc, char **argv, const struct conf *c);

/* cli_user_deliv.c: quotas and the reputation guard's pause. */
struct cli_quota {
	int set[2];       /* per hour, per day: given */
	int64_t value[2]; /* STORE_QUOTA_DEFAULT or a count (0: unlimited) */
};
/* --quota-hour/--quota-day N|default at argv[*i] into q: 1 taken, 0 not
 * this option, -1 a usage error (said). */
int cli_quota_opt(int argc, char **argv, int *i, struct cli_quota *q);
/* Stores the quotas q sets (none: nothing) and says so; the exit code. */
int cli_quota_apply(struct store *st, const struct conf *c, const char *name,
                    const struct cli_quota *q);
int cli_user_resume(int argc, char **argv, const struct conf *c);
/* cli_stats_rep.c: each account's rates against the guard's thresholds,
 * and its quotas, after the domain table or into the JSON object. */
struct json_t;
int cli_stats_accounts(const struct conf *c, const char *account, struct json_t *root);
int cli_queue(int argc, char **argv, const struct conf *c);
int cli_stats(int argc, char **argv, const struct conf *c);
int cli_apikey(int argc, char **argv, const struct conf *c);
int cli_dkim(int argc, char **argv, const struct conf *c);
int cli_suppress(int argc, char **argv, const struct conf *c);
int cli_tls(int argc, char **argv, const struct conf *c);

#endif
