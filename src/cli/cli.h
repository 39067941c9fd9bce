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

struct conf;

/* Prints "posthorn: MESSAGE" to stderr, and the usage text after a usage
 * error (code 2); returns code. */
int cli_say(int code, const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int cli_user(int argc, char **argv, const struct conf *c);
int cli_queue(int argc, char **argv, const struct conf *c);
int cli_stats(int argc, char **argv, const struct conf *c);
int cli_apikey(int argc, char **argv, const struct conf *c);
int cli_dkim(int argc, char **argv, const struct conf *c);

#endif
