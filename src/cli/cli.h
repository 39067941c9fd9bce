/*
 * cli: the command line. Commands form a tree of struct cli_cmd ("user" has
 * "add", "list", ... and "domain", which has "add" and "del"); each file of
 * src/cli/ owns the nodes of its commands, main.c the root.
 *
 * The tree gives every command its --help: cli_find() answers --help or -h
 * anywhere before "--" with the usage of the deepest command named (exit
 * 0, stdout), and a usage error with it on stderr (exit 2). Usage texts are
 * made from the leaves' synopses, so a usage lists every subcommand.
 *
 * Each admin command works on the data directory whether or not a server is
 * running (SQLite in WAL mode and the spool's own locking make that safe)
 * and prints machine-readable results to stdout, one item a line,
 * everything else to stderr. Exit codes: 0 ok, 1 runtime error, 2 usage or
 * config error.
 */
#ifndef POSTHORN_CLI_H
#define POSTHORN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct conf;
struct store;

enum { CLI_OK = 0, CLI_RUNTIME = 1, CLI_USAGE = 2 };

#define CLI_NO_CONF 1u /* runs without loading the configuration */
#define CLI_AS_USER 2u /* works on the data directory: as [server] user when root */

struct cli_cmd {
	const char *path;  /* the command words, e.g. "user domain add" */
	const char *args;  /* leaf: what follows the words, e.g. "NAME DOMAIN..." */
	const char *about; /* one line: what it does */
	const char *more;  /* or NULL: details shown by --help of this command */
	/* A leaf: argv[0] is its last word, the arguments follow. -c FILE is
	 * already gone. Returns the exit code. */
	int (*run)(int argc, char **argv, const struct conf *c);
	const struct cli_cmd *const *subs; /* not a leaf: its children, NULL-terminated */
	unsigned flags;
};

/* The subtrees, for main.c's root. */
extern const struct cli_cmd cli_user_cmd, cli_queue_cmd, cli_stats_cmd, cli_check_cmd,
    cli_apikey_cmd, cli_dkim_cmd, cli_suppress_cmd, cli_tls_cmd, cli_pause_cmd, cli_resume_cmd,
    cli_cluster_cmd;

/*
 * Walks argv (argv[0] names node) down the tree. Returns the leaf to run
 * with *depth its index in argv and *flags those of every node on the way;
 * or NULL with *rc the exit code, after printing the usage for --help (0)
 * or a usage error (2).
 */
const struct cli_cmd *cli_find(const struct cli_cmd *node, int argc, char **argv, int *depth,
                               unsigned *flags, int *rc);

/* Runs leaf on argv (argv[0] is its word); cli_say() then knows it. */
int cli_run(const struct cli_cmd *leaf, int argc, char **argv, const struct conf *c);

/* cli_find() and cli_run() in one: for `user` and `queue` called alone. */
int cli_dispatch(const struct cli_cmd *node, int argc, char **argv, const struct conf *c);

/* The usage of a command: a line per leaf below it, then its details. */
void cli_usage(FILE *out, const struct cli_cmd *cmd);

/* Prints "posthorn: MESSAGE" to stderr, and after a usage error (code 2)
 * the usage of the command being run; returns code. */
int cli_say(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Entry points that dispatch from argv[0] = "user" / "queue" / "stats"
 * (the unit tests call them; main.c walks the tree itself). */
int cli_user(int argc, char **argv, const struct conf *c);
int cli_queue(int argc, char **argv, const struct conf *c);
int cli_stats(int argc, char **argv, const struct conf *c);

/* cli_user_deliv.c: quotas and the reputation guard's pause. */
struct cli_quota {
	int set[2];       /* per hour, per day: given */
	int64_t value[2]; /* STORE_QUOTA_DEFAULT or a count (0: unlimited) */
};
/* --quota-hour/--quota-day N|default at argv[*i] into q: 1 taken, 0 not
 * this option, -1 a usage error (said). */
int cli_quota_opt(int argc, char **argv, int *i, struct cli_quota *q);
/* The values of --quota-hour and --quota-day (NULL: not given) into q:
 * CLI_OK, or CLI_USAGE (said). */
int cli_quota_parse(const char *hour, const char *day, struct cli_quota *q);
/* Stores the quotas q sets (none: nothing) and says so; the exit code. */
int cli_quota_apply(struct store *st, const struct conf *c, const char *name,
                    const struct cli_quota *q);
extern const struct cli_cmd cli_user_resume_cmd;
/* cli_stats_rep.c: each account's rates against the guard's thresholds,
 * and its quotas, after the domain table or into the JSON object. */
struct json_t;
int cli_stats_accounts(const struct conf *c, const char *account, struct json_t *root);

/* ---- options (cli_util.c) ---- */

/* One option a command takes: a flag (*flag = 1) or, with value set, one
 * that takes a value as "--name V" or "--name=V". */
struct cli_opt {
	const char *name; /* "--json" */
	int *flag;
	const char **value;
};

/*
 * Parses argv[1..]: options of opts (anywhere; "--" ends them) and up to
 * max_pos operands, stored in pos. An unknown option, a missing value or
 * too many operands is a usage error (reported). 0 ok, or CLI_USAGE.
 */
int cli_parse(int argc, char **argv, const struct cli_opt *opts, size_t n_opts, char **pos,
              size_t *n_pos, size_t max_pos);

/* The terminal, for password prompts. cli_keep_tty() opens it while the
 * process is still root: the [server] user it then becomes may not open
 * root's terminal. cli_open_tty() returns a descriptor of it (the caller
 * closes it), opening /dev/tty when none was kept; -1 if there is none. */
void cli_keep_tty(void);
int cli_open_tty(void);

/* Flushes stdout: a full disk or a closed pipe is an error (1, reported). */
int cli_flush(int rc);

/* The store of c's data directory, or NULL (said). */
struct store;
struct store *cli_open_store(const struct conf *c);
/* Says err (and frees it); returns CLI_RUNTIME. */
int cli_fail(char *err);

#endif
