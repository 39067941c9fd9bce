/*
 * cli_util: what the admin subcommands share: messages, options, the
 * store, stdout, and dispatching a subcommand's verbs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conf/conf.h"
#include "store/store.h"

int cli_say(int code, const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("posthorn: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (code == 2 && usage)
		fputs(usage, stderr);
	return code;
}

int cli_is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h") || !strcmp(arg, "help");
}

int cli_opt_value(const char *name, int argc, char **argv, int *i, const char **out,
                  const char *usage)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0 || (argv[*i][n] && argv[*i][n] != '='))
		return 0;
	if (argv[*i][n] == '=') {
		*out = argv[*i] + n + 1;
		return 1;
	}
	if (++*i == argc) {
		cli_say(2, usage, "%s needs a value", name);
		return -1;
	}
	*out = argv[*i];
	return 1;
}

struct store *cli_open_store(const struct conf *c)
{
	char *err = NULL;
	struct store *st = store_open(c->data_dir, &err);

	if (!st) {
		cli_say(1, NULL, "%s", err);
		free(err);
	}
	return st;
}

int cli_fail(char *err)
{
	cli_say(1, NULL, "%s", err ? err : "unknown error");
	free(err);
	return 1;
}

int cli_flush_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return cli_say(1, NULL, "cannot write to stdout: %s", strerror(errno));
	return rc;
}

int cli_run_verb(const struct cli_verb *verbs, size_t n, const char *usage, int argc, char **argv,
                 const struct conf *c)
{
	if (argc < 2)
		return cli_say(2, usage, "%s needs a command", argv[0]);
	if (cli_is_help(argv[1])) {
		fputs(usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], verbs[i].name) != 0)
			continue;
		for (int j = 2; j < argc && strcmp(argv[j], "--"); j++)
			if (cli_is_help(argv[j])) {
				fputs(usage, stdout);
				return 0;
			}
		return verbs[i].run(argc - 1, argv + 1, c);
	}
	return cli_say(2, usage, "unknown command '%s %s'", argv[0], argv[1]);
}
