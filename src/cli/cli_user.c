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
 *   (quotas and resume: cli_user_deliv.c)
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

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* Longest password accepted, in bytes (argon2id takes any length; a
 * bound keeps a stray binary file on stdin from becoming a password). */
#define PASSWORD_MAX 1024

static const char usage_text[] =
    "usage: posthorn user add NAME [--password-stdin] [--domain D]... [--quota-hour N] "
    "[--quota-day N]\n"
    "       posthorn user list\n"
    "       posthorn user del NAME\n"
    "       posthorn user passwd NAME [--password-stdin]\n"
    "       posthorn user domain add|del NAME DOMAIN...\n"
    "       posthorn user set NAME [--pool POOL] [--unsubscribe on|off] [--quota-hour N|default] "
    "[--quota-day N|default]\n"
    "         (--pool '' : no pool; N: messages per clock hour or UTC day, 0 unlimited;\n"
    "          default: the [quota] setting)\n"
    "       posthorn user resume NAME\n";

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

#define say(code, ...) cli_say((code), usage_text, __VA_ARGS__)

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
		return rc < 0 ? EXIT_USAGE : 0;
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
			return say(EXIT_USAGE, "--domain needs a value");
		a->domains[a->n_domains++] = argv[*i];
		return 0;
	}
	return say(EXIT_USAGE, "unknown option '%s'", arg);
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
				return EXIT_USAGE;
		} else
			a->pos[a->n_pos++] = argv[i];
	}
	return 0;
}

static int check_name(const char *name)
{
	if (!store_account_name_valid(name))
		return say(EXIT_USAGE,
		           "invalid account name '%s' (1-64 characters of A-Z a-z 0-9 . _ @ + -)",
		           name);
	return 0;
}

static int check_domains(const char *const *domains, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!store_domain_valid(domains[i]))
			return say(EXIT_USAGE, "invalid domain '%s'", domains[i]);
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

	if (write(fd, prompt, strlen(prompt)) < 0 || tty_echo_off(fd, old) != 0)
		return -1;
	n = read_line(fd, buf, cap);
	tty_echo_on(fd, old);
	return n;
}

static int password_from_tty(const char *name, char *pw, size_t cap)
{
	char again[PASSWORD_MAX + 1], prompt[128];
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	int rc = EXIT_OK;

	if (fd < 0)
		return say(EXIT_RUNTIME,
		           "no terminal to ask for the password on; use --password-stdin");
	snprintf(prompt, sizeof prompt, "Password for %s: ", name);
	if (tty_ask(fd, prompt, pw, cap) < 0 ||
	    tty_ask(fd, "Repeat password: ", again, sizeof again) < 0)
		rc = say(EXIT_RUNTIME, "cannot read the password: %s",
		         errno == EMSGSIZE ? "longer than 1024 bytes" : strerror(errno));
	else if (strcmp(pw, again) != 0)
		rc = say(EXIT_RUNTIME, "passwords do not match");
	sodium_memzero(again, sizeof again);
	close(fd);
	return rc;
}

static int password_from_stdin(char *pw, size_t cap)
{
	if (read_line(STDIN_FILENO, pw, cap) < 0)
		return say(EXIT_RUNTIME, "cannot read the password from stdin: %s",
		           errno == EMSGSIZE ? "longer than 1024 bytes" : strerror(errno));
	return EXIT_OK;
}

/* Fills pw (PASSWORD_MAX + 1 bytes); the caller wipes it. */
static int read_password(const struct user_args *a, const char *name, char *pw, size_t cap)
{
	int rc =
	    a->password_stdin ? password_from_stdin(pw, cap) : password_from_tty(name, pw, cap);

	if (rc == EXIT_OK && pw[0] == '\0')
		return say(EXIT_RUNTIME, "empty password");
	return rc;
}

/* ---- the verbs ---------------------------------------------------------- */

static struct store *open_store(const struct conf *c)
{
	char *err = NULL;
	struct store *st = store_open(c->data_dir, &err);

	if (st == NULL) {
		say(EXIT_RUNTIME, "%s", err);
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
		return EXIT_OK;
	say(EXIT_RUNTIME, "%s", *err ? *err : "unknown error");
	free(*err);
	*err = NULL;
	return EXIT_RUNTIME;
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
		return say(EXIT_RUNTIME, "cannot read the account list");
	if (exists && !want)
		return say(EXIT_RUNTIME, "account '%s' already exists", name);
	if (!exists && want)
		return say(EXIT_RUNTIME, "no such account '%s'", name);
	return EXIT_OK;
}

static int add_with(struct store *st, const struct user_args *a, const char *name)
{
	char pw[PASSWORD_MAX + 1];
	char *err = NULL;
	int rc = precheck(st, name, 0);

	if (rc == EXIT_OK)
		rc = read_password(a, name, pw, sizeof pw);
	if (rc == EXIT_OK)
		rc = result(store_user_add(st, name, pw, a->domains, a->n_domains, &err), &err);
	sodium_memzero(pw, sizeof pw);
	return rc;
}

static int add_with_quota(struct store *st, const struct user_args *a, const char *name,
                          const struct conf *c)
{
	int rc = add_with(st, a, name);

	return rc == EXIT_OK ? cli_quota_apply(st, c, name, &a->quota) : rc;
}

static int user_add(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	int rc = parse_args(&a, OPT_PASSWORD | OPT_DOMAIN | OPT_QUOTA, argc, argv, 1);

	if (rc == EXIT_OK && a.n_pos != 1)
		rc = say(EXIT_USAGE, "user add takes one account name");
	if (rc == EXIT_OK)
		rc = check_name(a.pos[0]);
	if (rc == EXIT_OK)
		rc = check_domains(a.domains, a.n_domains);
	if (rc == EXIT_OK) {
		st = open_store(c);
		rc = st ? add_with_quota(st, &a, a.pos[0], c) : EXIT_RUNTIME;
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

	if (rc == EXIT_OK && a.n_pos != 0)
		rc = say(EXIT_USAGE, "user list takes no arguments");
	args_free(&a);
	if (rc != EXIT_OK)
		return rc;
	if ((st = open_store(c)) == NULL)
		return EXIT_RUNTIME;
	rc = result(store_user_list(st, print_account, NULL, &err), &err);
	store_close(st);
	/* A full disk or a closed pipe must not look like success. */
	if (fflush(stdout) != 0 || ferror(stdout))
		rc = say(EXIT_RUNTIME, "cannot write to stdout: %s", strerror(errno));
	return rc;
}

static int user_del(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	char *err = NULL;
	int rc = parse_args(&a, 0, argc, argv, 1);

	if (rc == EXIT_OK && a.n_pos != 1)
		rc = say(EXIT_USAGE, "user del takes one account name");
	if (rc == EXIT_OK) {
		st = open_store(c);
		rc = st ? result(store_user_del(st, a.pos[0], &err), &err) : EXIT_RUNTIME;
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

	if (rc == EXIT_OK && strcmp(name, "default") == 0)
		rc = say(EXIT_RUNTIME,
		         "the built-in account 'default' has no password and cannot log in");
	if (rc == EXIT_OK)
		rc = read_password(a, name, pw, sizeof pw);
	if (rc == EXIT_OK)
		rc = result(store_user_passwd(st, name, pw, &err), &err);
	sodium_memzero(pw, sizeof pw);
	return rc;
}

static int user_passwd(int argc, char **argv, const struct conf *c)
{
	struct user_args a;
	struct store *st;
	int rc = parse_args(&a, OPT_PASSWORD, argc, argv, 1);

	if (rc == EXIT_OK && a.n_pos != 1)
		rc = say(EXIT_USAGE, "user passwd takes one account name");
	if (rc == EXIT_OK) {
		st = open_store(c);
		rc = st ? passwd_with(st, &a, a.pos[0]) : EXIT_RUNTIME;
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
	int add, rc;

	if (argc < 2 || (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "del") != 0))
		return say(EXIT_USAGE, "user domain needs 'add' or 'del'");
	add = strcmp(argv[1], "add") == 0;
	rc = parse_args(&a, 0, argc, argv, 2);
	if (rc == EXIT_OK && a.n_pos < 2)
		rc = say(EXIT_USAGE, "user domain %s takes an account name and domains", argv[1]);
	if (rc == EXIT_OK)
		rc = check_domains((const char *const *)a.pos + 1, a.n_pos - 1);
	if (rc == EXIT_OK) {
		st = open_store(c);
		rc = st ? domain_with(st, add, &a) : EXIT_RUNTIME;
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

/* "--opt VALUE" or "--opt=VALUE" at argv[*i]: 1 (and *out) if it is opt. */
static int opt_value(int argc, char **argv, int *i, const char *opt, const char **out)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n) == 0 && argv[*i][n] == '=') {
		*out = argv[*i] + n + 1;
		return 1;
	}
	if (strcmp(argv[*i], opt) == 0 && *i + 1 < argc) {
		*out = argv[++*i];
		return 1;
	}
	return 0;
}

/* NAME and at least one option. */
static int set_opts(int argc, char **argv, struct set_opts *o)
{
	int rc;

	memset(o, 0, sizeof(*o));
	for (int i = 1; i < argc; i++) {
		if ((rc = cli_quota_opt(argc, argv, &i, &o->quota)) != 0) {
			if (rc < 0)
				return EXIT_USAGE;
			continue;
		}
		if (opt_value(argc, argv, &i, "--pool", &o->pool) ||
		    opt_value(argc, argv, &i, "--unsubscribe", &o->unsub))
			continue;
		if (argv[i][0] == '-' || o->name)
			return say(EXIT_USAGE, SET_USAGE);
		o->name = argv[i];
	}
	if (!o->name || (!o->pool && !o->unsub && !o->quota.set[0] && !o->quota.set[1]) ||
	    (o->unsub && strcmp(o->unsub, "on") != 0 && strcmp(o->unsub, "off") != 0))
		return say(EXIT_USAGE, SET_USAGE);
	return EXIT_OK;
}

static int set_unsub(struct store *st, const char *name, int on, const struct conf *c)
{
	char *err = NULL;
	int rc = result(store_account_set_unsubscribe(st, name, on, &err), &err);

	if (rc == EXIT_OK)
		fprintf(stderr, "posthorn: account '%s': one-click unsubscribe %s%s\n", name,
		        on ? "on" : "off",
		        on && !unsub_url_https(c->http_public_url)
		            ? " (no header is added while [http] public_url is not https)"
		            : "");
	return rc;
}

/* user set NAME [--pool POOL] [--unsubscribe on|off] [quotas]: the
 * [pool.NAME] the account's mail leaves from, one-click unsubscribe on its
 * SMTP mail, its quotas (a running server sees each within a second). */
static int user_set(int argc, char **argv, const struct conf *c)
{
	struct set_opts o;
	struct store *st;
	char *err = NULL;
	int rc;

	if (argc > 1 && cli_is_help(argv[1])) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	rc = set_opts(argc, argv, &o);
	if (rc == EXIT_OK && o.pool && *o.pool && !conf_pool_find(c, o.pool))
		rc = say(EXIT_RUNTIME, "no section [pool.%s] in the configuration", o.pool);
	if (rc != EXIT_OK)
		return rc;
	if (!(st = open_store(c)))
		return EXIT_RUNTIME;
	if (o.pool)
		rc = result(store_user_set_pool(st, o.name, *o.pool ? o.pool : NULL, &err), &err);
	if (rc == EXIT_OK && o.unsub)
		rc = set_unsub(st, o.name, strcmp(o.unsub, "on") == 0, c);
	if (rc == EXIT_OK)
		rc = cli_quota_apply(st, c, o.name, &o.quota);
	store_close(st);
	return rc;
}

static const struct user_verb {
	const char *name;
	int (*run)(int argc, char **argv, const struct conf *c);
} user_verbs[] = {
    {"add", user_add},           {"list", user_list},     {"del", user_del},
    {"passwd", user_passwd},     {"domain", user_domain}, {"set", user_set},
    {"resume", cli_user_resume},
};

int cli_user(int argc, char **argv, const struct conf *c)
{
	if (argc < 2)
		return say(EXIT_USAGE, "user needs a command");
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_LEN(user_verbs); i++)
		if (strcmp(argv[1], user_verbs[i].name) == 0)
			return user_verbs[i].run(argc - 1, argv + 1, c);
	return say(EXIT_USAGE, "unknown command 'user %s'", argv[1]);
}
