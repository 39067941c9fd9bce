/*
 * cli_util: what the admin subcommands share: options, stdout, the store,
 * the terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "store/store.h"

/* The option named by arg ("--name" or "--name=V"), or NULL. */
static const struct cli_opt *opt_named(const char *arg, const struct cli_opt *opts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(opts[i].name);
		if (!strncmp(arg, opts[i].name, len) &&
		    (arg[len] == '\0' || (arg[len] == '=' && opts[i].value)))
			return &opts[i];
	}
	return NULL;
}

/* The option at argv[*i]: 0 taken, or CLI_USAGE (reported). */
static int take_opt(int argc, char **argv, int *i, const struct cli_opt *opts, size_t n)
{
	const char *arg = argv[*i], *eq;
	const struct cli_opt *o = opt_named(arg, opts, n);

	if (!o)
		return cli_say(CLI_USAGE, "unknown option '%s'", arg);
	if (!o->value) {
		*o->flag = 1;
		return CLI_OK;
	}
	if ((eq = strchr(arg, '='))) {
		*o->value = eq + 1;
		return CLI_OK;
	}
	if (++*i == argc)
		return cli_say(CLI_USAGE, "%s needs a value", o->name);
	*o->value = argv[*i];
	return CLI_OK;
}

int cli_parse(int argc, char **argv, const struct cli_opt *opts, size_t n_opts, char **pos,
              size_t *n_pos, size_t max_pos)
{
	int options = 1;

	*n_pos = 0;
	for (int i = 1; i < argc; i++) {
		if (options && !strcmp(argv[i], "--")) {
			options = 0;
		} else if (options && argv[i][0] == '-' && argv[i][1] != '\0') {
			if (take_opt(argc, argv, &i, opts, n_opts) != CLI_OK)
				return CLI_USAGE;
		} else if (*n_pos == max_pos) {
			return cli_say(CLI_USAGE, "unexpected argument '%s'", argv[i]);
		} else {
			pos[(*n_pos)++] = argv[i];
		}
	}
	return CLI_OK;
}

int cli_flush(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return cli_say(CLI_RUNTIME, "cannot write to stdout: %s", strerror(errno));
	return rc;
}

struct store *cli_open_store(const struct conf *c)
{
	char *err = NULL;
	struct store *st =
	    store_open_url(c->data_dir, c->cluster_postgres, c->cluster_secret_key_file, &err);

	if (!st) {
		cli_say(CLI_RUNTIME, "%s", err);
		free(err);
	}
	return st;
}

int cli_fail(char *err)
{
	cli_say(CLI_RUNTIME, "%s", err ? err : "unknown error");
	free(err);
	return CLI_RUNTIME;
}

static int kept_tty = -1;

void cli_keep_tty(void)
{
	if (kept_tty < 0)
		kept_tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
}

int cli_open_tty(void)
{
	if (kept_tty >= 0)
		return fcntl(kept_tty, F_DUPFD_CLOEXEC, 0);
	return open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
}
