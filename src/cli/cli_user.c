/*
 * cli_user: `posthorn user ...`, the SMTP AUTH accounts and the sender
 * domains each may use. All the work is done by store/; this file parses
 * arguments, reads passwords and prints.
 *
 *   user add NAME [--password-stdin] [--domain D]...
 *   user list                       NAME<TAB>d1,d2 per account, to stdout
 *   user del NAME
 *   user passwd NAME [--password-stdin]
 *   user domain add|del NAME D...
 *   user set NAME [--pool POOL] [--unsubscribe on|off] [--quota-hour N|default]
 *                 [--quota-day N|default]
 *                                   send from [pool.POOL] (--pool '' unbinds);
 *                                   one-click List-Unsubscribe on its SMTP mail; quotas
 *   user resume NAME                lift a reputation-guard pause
 *   (quotas and resume: cli_user_deliv.c; the usage texts are in the
 *   tables at the end)
 *
 * Passwords come from the terminal (no echo, asked twice) or, with
 * --password-stdin, as one line of standard input, so that they never
 * appear in argv (visible in ps) or in shell history. Buffers holding them
 * are wiped before return.
 *
 * Exit codes: 0 ok, 1 runtime error, 2 usage error; messages on stderr as
 * "posthorn: ...".
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "conf/conf.h"
#include "store/store.h"
#include "unsub/unsub.h"
#include "util/util.h"

/* Longest password accepted, in bytes (argon2id takes any length; a
 * bound keeps a stray binary file on stdin from becoming a password). */
#define PASSWORD_MAX 1024

/* Options and operands after the verb. */
struct user_args {
	int password_stdin;
	const char **domains; /* --domain values */
	size_t n_domains;
	char **pos; /* operands, in order */
	size_t n_pos;
	struct cli_quota quota; /* --quota-hour, --quota-day */
};

/* Which options a verb accepts. */
enum { OPT_PASSWORD = 1, OPT_DOMAIN = 2, OPT_QUOTA = 4 };

static void args_free(struct user_args *a)
{
	free(a->domains);
	free(a->pos);
}

/* 0 ok, or a usage error already reported. */
static int parse_opt(struct user_args *a, int allowed, int argc, char **argv, int *i)
{
	const char *arg = argv[*i];
	int rc;

	if ((allowed & OPT_QUOTA) && (rc = cli_quota_opt(argc, argv, i, &a->quota)) != 0)
		return rc < 0 ? CLI_USAGE : 0;
	if ((allowed & OPT_PASSWORD) && strcmp(arg, "--password-stdin") == 0) {
		a->password_stdin = 1;
		return 0;
	}
	if ((allowed & OPT_DOMAIN) && strncmp(arg, "--domain=", 9) == 0) {
		a->domains[a->n_domains++] = arg + 9;
		return 0;
	}
	if ((allowed & OPT_DOMAIN) && strcmp(arg, "--domain") == 0) {
		if (++*i == argc)
			return cli_say(CLI_USAGE, "--domain needs a value");
		a->domains[a->n_domains++] = argv[*i];
		return 0;
	}
	return cli_say(CLI_USAGE, "unknown option '%s'", arg);
}

/* Parses argv[first..]; options may come anywhere, "--" ends them. */
static int parse_args(struct user_args *a, int allowed, int argc, char **argv, int first)
{
	int options = 1;

	memset(a, 0, sizeof *a);
	a->domains = xcalloc((size_t)argc, sizeof *a->domains);
	a->pos = xcalloc((size_t)argc, sizeof *a->pos);
	for (int i = first; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0)
			options = 0;
		else if (options && argv[i][0] == '-' && argv[i][1] != '\0') {
			if (parse_opt(a, allowed, argc, argv, &i) != 0)
				return CLI_USAGE;
		} else
			a->pos[a->n_pos++] = argv[i];
	}
	return 0;
}

static int check_name(const char *name)
{
	if (!store_account_name_valid(name))
		return cli_say(
		    CLI_USAGE,
		    "invalid account name '%s' (1-64 characters of A-Z a-z 0-9 . _ @ + -)", name);
	return 0;
}

static int check_domains(const char *const *domains, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!store_domain_valid(domains[i]))
			return cli_say(CLI_USAGE, "invalid domain '%s'", domains[i]);
	return 0;
}

/* ---- reading passwords -------------------------------------------------- */

/*
 * Reads one line from fd a byte at a time: no stdio buffer keeps a copy of
 * the password, and nothing after the newline is consumed. Strips "\n" and
 * "\r\n". Returns the length, or -1 with errno (EMSGSIZE: too long).
 */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char ch;

	for (;;) {
		ssize_t n = read(fd, &ch, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0 || ch == '\n')
			break;
		if (len + 1 >= cap) {
			errno = EMSGSIZE;
			return -1;
		}
		buf[len++] = ch;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return (ssize_t)len;
}

/* The terminal as it was, restored on return or on a fatal signal. */
static struct termios tty_saved;
static volatile sig_atomic_t tty_fd = -1;

static void tty_restore_and_die(int sig)
{
	if (tty_fd >= 0)
		tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int tty_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};

/* Turns echo off (keeping the newline echoed) and arranges for it to come
 * back if the operator presses ^C at the prompt. */
static int tty_echo_off(int fd, struct sigaction old[])
{
	struct sigaction sa = {0};
	struct termios tio;

	if (tcgetattr(fd, &tty_saved) != 0)
		return -1;
	sa.sa_handler = tty_restore_and_die;
	sigemptyset(&sa.sa_mask);
	tty_fd = fd;
	for (size_t i = 0; i < ARRAY_LEN(tty_signals); i++)
		sigaction(tty_signals[i], &sa, &old[i]);
	tio = tty_saved;
	tio.c_lflag &= ~(tcflag_t)ECHO;
	tio.c_lflag |= ECHONL;
	return tcsetattr(fd, TCSAFLUSH, &tio);
}

static void tty_echo_on(int fd, const struct sigaction old[])
{
	tcsetattr(fd, TCSAFLUSH, &tty_saved);
	tty_fd = -1;
	for (size_t i = 0; i < ARRAY_LEN(tty_signals); i++)
		sigaction(tty_signals[i], &old[i], NULL);
}

static ssize_t tty_ask(int fd, const char *prompt, char *buf, size_t cap)
{
	struct sigaction old[ARRAY_LEN(tty_signals)];
	ssize_t n;

	if (tty_echo_off(fd, old) != 0)
		return -1;
	/* The prompt only once echo is off: turning it off flushes what was
	 * typed, and an answer to a prompt already shown would be lost. */
	n = write(fd, prompt, strlen(prompt)) < 0 ? -1 : read_line(fd, buf, cap);
	tty_echo_on(fd, old);
	return n;
}

static int password_from_tty(const char *name, char *pw, size_t cap)
{
	char again[PASSWORD_MAX + 1], prompt[128];
	int fd = cli_open_tty();
	int rc = CLI_OK;

	if (fd < 0)
		return cli_say(CLI_RUNTIME,
		               "no terminal to ask for the password on; use --password-stdin");
	snprintf(prompt, sizeof prompt, "Password for %s: ", name);
	if (tty_ask(fd, prompt, pw, cap) < 0 ||
	    tty_ask(fd, "Repeat password: ", again, sizeof again) < 0)
		rc = cli_say(CLI_RUNTIME, "cannot read the password: %s",
		             errno == EMSGSIZE ? "longer than 1024 bytes" : strerror(errno));
	else if (strcmp(pw, again) != 0)
		rc = cli_say(CLI_RUNTIME, "passwords do not match");
	sodium_memzero(again, sizeof again);
	close(fd);
	return rc;
}

static int password_from_stdin(char *pw, size_t cap)
{
	if (read_line(STDIN_FILENO, pw, cap) < 0)
		return cli_say(CLI_RUNTIME, "cannot read the password from stdin: %s",
		               errno == EMSGSIZE ? "longer than 1024 bytes" : strerror(errno));
	return CLI_OK;
}

/* Fills pw (PASSWORD_MAX + 1 bytes); the caller wipes it. */
static int read_password(const struct user_args *a, const char *name, char *pw, size_t cap)
{
	int rc =
	    a->password_stdin ? password_from_stdin(pw, cap) : password_from_tty(name, pw, cap);

	if (rc == CLI_OK && pw[0] == '\0')
		return cli_say(CLI_RUNTIME, "empty password");
	return rc;
}

/* ---- the verbs ---------------------------------------------------------- */

static struct store *open_store(const struct conf *c)
{
	char *err = NULL;
	struct store *st =
	    store_open_url(c->data_dir, c->cluster_postgres, c->cluster_secret_key_file, &err);

	if (st == NULL) {
		cli_say(CLI_RUNTIME, "%s", err);
		free(err);
	}
	return st;
}

/*
 * Reports *err (freeing it) when rc is -1; returns the exit code. Takes a
 * pointer, not the value: in result(store_x(..., &err), err) the second
 * argument could be read before the call has set it.
 */
static int result(int rc, char **err)
{
	if (rc == 0)
		return CLI_OK;
	cli_say(CLI_RUNTIME, "%s", *err ? *err : "unknown error");
	free(*err);
	*err = NULL;
	return CLI_RUNTIME;
}

/*
 * Checks that the account does (or does not) exist before asking for a
 * password, so the operator does not type one twice for nothing. The
 * store checks again when it writes.
 */
static int precheck(struct store *st, const char *name, int want)
{
	int exists = store_user_exists(st, name);

	if (exists < 0)
		return cli_say(CLI_RUNTIME, "cannot read the account list");
	if (exists && !want)
		return cli_say(CLI_RUNTIME, "account '%s' already exists", name);
	if (!exists && want)
		return cli_say(CLI_RUNTIME, "no such account '%s'", name);
	return CLI_OK;
}

static int add_with(struct store *st, const struct user_args *a, const char *name)
{
	char pw[PASSWORD_MAX + 1];
	char *err = NULL;
	int rc = precheck(st, name, 0);

	if (rc == CLI_OK)
		rc = read_password(a, name, pw, sizeof pw);
	if (rc == CLI_OK)
		rc = result(store_user_add(st, name, pw, a->domains, a->n_domains, &err), &err);
	sodium_memzero(pw, sizeof pw);
	return rc;
}

static int add_with_quota(struct store *st, const struct user_args *a, const char *name,
                          const struct conf *c)
{
	int rc = add_with(st, a, name);

	return rc == CLI_OK ? cli_quota_apply(st, c, name, &a->quota) : rc;
}

static int user_add(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	int rc = parse_args(&a, OPT_PASSWORD | OPT_DOMAIN | OPT_QUOTA, argc, argv, 1);

	if (rc == CLI_OK && a.n_pos != 1)
		rc = cli_say(CLI_USAGE, "user add takes one account name");
	if (rc == CLI_OK)
		rc = check_name(a.pos[0]);
	if (rc == CLI_OK)
		rc = check_domains(a.domains, a.n_domains);
	if (rc == CLI_OK) {
		st = open_store(c);
		rc = st ? add_with_quota(st, &a, a.pos[0], c) : CLI_RUNTIME;
		store_close(st);
	}
	args_free(&a);
	return rc;
}

static void print_account(void *arg, const char *name, const char *domains)
{
	printf("%s\t%s\n", name, domains);
}

static int user_list(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, 0, argc, argv, 1);

	if (rc == CLI_OK && a.n_pos != 0)
		rc = cli_say(CLI_USAGE, "user list takes no arguments");
	args_free(&a);
	if (rc != CLI_OK)
		return rc;
	if ((st = open_store(c)) == NULL)
		return CLI_RUNTIME;
	rc = result(store_user_list(st, print_account, NULL, &err), &err);
	store_close(st);
	return cli_flush(rc); /* a full disk or a closed pipe is not success */
}

static int user_del(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, 0, argc, argv, 1);

	if (rc == CLI_OK && a.n_pos != 1)
		rc = cli_say(CLI_USAGE, "user del takes one account name");
	if (rc == CLI_OK) {
		st = open_store(c);
		rc = st ? result(store_user_del(st, a.pos[0], &err), &err) : CLI_RUNTIME;
		store_close(st);
	}
	args_free(&a);
	return rc;
}

static int passwd_with(struct store *st, const struct user_args *a, const char *name)
{
	char pw[PASSWORD_MAX + 1];
	char *err = NULL;
	int rc = precheck(st, name, 1);

	if (rc == CLI_OK && strcmp(name, "default") == 0)
		rc = cli_say(CLI_RUNTIME,
		             "the built-in account 'default' has no password and cannot log in");
	if (rc == CLI_OK)
		rc = read_password(a, name, pw, sizeof pw);
	if (rc == CLI_OK)
		rc = result(store_user_passwd(st, name, pw, &err), &err);
	sodium_memzero(pw, sizeof pw);
	return rc;
}

static int user_passwd(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	int rc = parse_args(&a, OPT_PASSWORD, argc, argv, 1);

	if (rc == CLI_OK && a.n_pos != 1)
		rc = cli_say(CLI_USAGE, "user passwd takes one account name");
	if (rc == CLI_OK) {
		st = open_store(c);
		rc = st ? passwd_with(st, &a, a.pos[0]) : CLI_RUNTIME;
		store_close(st);
	}
	args_free(&a);
	return rc;
}

static int domain_with(struct store *st, int add, const struct user_args *a)
{
	const char *const *d = (const char *const *)a->pos + 1;
	size_t n = a->n_pos - 1;
	char *err = NULL;
	int rc = add ? store_user_add_domains(st, a->pos[0], d, n, &err)
	             : store_user_del_domains(st, a->pos[0], d, n, &err);

	return result(rc, &err);
}

/* user domain add|del NAME D... */
static int user_domain(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	int add = strcmp(argv[0], "add") == 0;
	int rc = parse_args(&a, 0, argc, argv, 1);

	if (rc == CLI_OK && a.n_pos < 2)
		rc =
		    cli_say(CLI_USAGE, "user domain %s takes an account name and domains", argv[0]);
	if (rc == CLI_OK)
		rc = check_domains((const char *const *)a.pos + 1, a.n_pos - 1);
	if (rc == CLI_OK) {
		st = open_store(c);
		rc = st ? domain_with(st, add, &a) : CLI_RUNTIME;
		store_close(st);
	}
	args_free(&a);
	return rc;
}

#define SET_USAGE                                                                                  \
	"user set takes NAME and --pool POOL, --unsubscribe on|off, --quota-hour or --quota-day"

/* What user set changes: NULL (or unset quotas) is "not given". */
struct set_opts {
	const char *name, *pool, *unsub;
	struct cli_quota quota;
};

/* NAME and at least one option. */
static int set_opts(int argc, char **argv, struct set_opts *o)
{
	const char *hour = NULL, *day = NULL;
	const struct cli_opt opts[] = {{"--pool", NULL, &o->pool},
	                               {"--unsubscribe", NULL, &o->unsub},
	                               {"--quota-hour", NULL, &hour},
	                               {"--quota-day", NULL, &day}};
	char *name[1];
	size_t n;
	int rc;

	memset(o, 0, sizeof(*o));
	rc = cli_parse(argc, argv, opts, ARRAY_LEN(opts), name, &n, 1);
	if (rc == CLI_OK)
		rc = cli_quota_parse(hour, day, &o->quota);
	if (rc != CLI_OK)
		return rc;
	o->name = n == 1 ? name[0] : NULL;
	if (!o->name || (!o->pool && !o->unsub && !hour && !day) ||
	    (o->unsub && strcmp(o->unsub, "on") != 0 && strcmp(o->unsub, "off") != 0))
		return cli_say(CLI_USAGE, SET_USAGE);
	return CLI_OK;
}

static int set_unsub(struct store *st, const char *name, int on, const struct conf *c)
{
	char *err = NULL;
	int rc = result(store_account_set_unsubscribe(st, name, on, &err), &err);

	if (rc == CLI_OK)
		fprintf(stderr, "posthorn: account '%s': one-click unsubscribe %s%s\n", name,
		        on ? "on" : "off",
		        on && !unsub_url_https(c->http_public_url)
		            ? " (no header is added while [http] public_url is not https)"
		            : "");
	return rc;
}

/* user set NAME [--pool POOL] [--unsubscribe on|off] [quotas]: the
 * [pool.NAME] the account's mail leaves from (--pool '' unbinds), one-click
 * unsubscribe on its SMTP mail, its quotas (a running server sees each
 * within a second). */
static int user_set(int argc, char **argv, const struct conf *c)
{
	struct set_opts o;
	struct store *st;
	char *err = NULL;
	int rc = set_opts(argc, argv, &o);

	if (rc == CLI_OK && o.pool && *o.pool && !conf_pool_find(c, o.pool))
		rc = cli_say(CLI_RUNTIME, "no section [pool.%s] in the configuration", o.pool);
	if (rc != CLI_OK)
		return rc;
	if (!(st = open_store(c)))
		return CLI_RUNTIME;
	if (o.pool)
		rc = result(store_user_set_pool(st, o.name, *o.pool ? o.pool : NULL, &err), &err);
	if (rc == CLI_OK && o.unsub)
		rc = set_unsub(st, o.name, strcmp(o.unsub, "on") == 0, c);
	if (rc == CLI_OK)
		rc = cli_quota_apply(st, c, o.name, &o.quota);
	store_close(st);
	return rc;
}

static const struct cli_cmd domain_add_cmd = {.path = "user domain add",
                                              .args = "NAME DOMAIN...",
                                              .about = "Lets account NAME send from more domains.",
                                              .run = user_domain};

static const struct cli_cmd domain_del_cmd = {.path = "user domain del",
                                              .args = "NAME DOMAIN...",
                                              .about =
                                                  "Takes sender domains away from account NAME.",
                                              .run = user_domain};

static const struct cli_cmd *const domain_cmds[] = {&domain_add_cmd, &domain_del_cmd, NULL};

static const struct cli_cmd add_cmd = {
    .path = "user add",
    .args = "NAME [--password-stdin] [--domain D]... [--quota-hour N] [--quota-day N]",
    .about = "Creates SMTP AUTH account NAME owning sender domains D; the password is\n"
             "asked twice on the terminal, or read as one line of stdin. N: messages\n"
             "(counted per recipient) per clock hour or UTC day, 0 unlimited.",
    .run = user_add};

static const struct cli_cmd list_cmd = {
    .path = "user list", .about = "Prints NAME<TAB>domains per account.", .run = user_list};

static const struct cli_cmd del_cmd = {
    .path = "user del", .args = "NAME", .about = "Deletes account NAME.", .run = user_del};

static const struct cli_cmd passwd_cmd = {.path = "user passwd",
                                          .args = "NAME [--password-stdin]",
                                          .about = "Changes the password of account NAME.",
                                          .run = user_passwd};

static const struct cli_cmd domain_cmd = {.path = "user domain",
                                          .about = "Adds or removes sender domains of an account.",
                                          .subs = domain_cmds};

static const struct cli_cmd set_cmd = {
    .path = "user set",
    .args = "NAME [--pool POOL] [--unsubscribe on|off] [--quota-hour N|default] "
            "[--quota-day N|default]",
    .about = "Sends account NAME's mail from [pool.POOL] (--pool '' unbinds it);\n"
             "turns one-click List-Unsubscribe on its SMTP mail on or off; sets its\n"
             "quotas (default: the [quota] setting).",
    .run = user_set};

static const struct cli_cmd *const user_cmds[] = {
    &add_cmd, &list_cmd, &del_cmd, &passwd_cmd, &domain_cmd, &set_cmd, &cli_user_resume_cmd, NULL};

const struct cli_cmd cli_user_cmd = {
    .path = "user",
    .about = "SMTP AUTH accounts and the sender domains each may use.",
    .subs = user_cmds,
    .flags = CLI_AS_USER,
};

int cli_user(int argc, char **argv, const struct conf *c)
{
	return cli_dispatch(&cli_user_cmd, argc, argv, c);
}
