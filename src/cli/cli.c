/*
 * cli: walking the command tree, --help, usage texts. See cli.h.
 */
#include "cli/cli.h"

#include <stdarg.h>
#include <string.h>

/* The leaf being run, for the usage after a usage error. */
static const struct cli_cmd *current;

static const char *last_word(const char *path)
{
	const char *sp = strrchr(path, ' ');

	return sp ? sp + 1 : path;
}

static void usage_lines(FILE *out, const struct cli_cmd *cmd, int *first)
{
	if (cmd->subs) {
		for (const struct cli_cmd *const *s = cmd->subs; *s; s++)
			usage_lines(out, *s, first);
		return;
	}
	fprintf(out, "%s posthorn %s%s%s\n", *first ? "usage:" : "      ", cmd->path,
	        cmd->args ? " " : "", cmd->args ? cmd->args : "");
	*first = 0;
}

void cli_usage(FILE *out, const struct cli_cmd *cmd)
{
	int first = 1;

	usage_lines(out, cmd, &first);
	if (cmd->about)
		fprintf(out, "\n%s\n", cmd->about);
	if (cmd->more)
		fprintf(out, "%s", cmd->more);
}

static int is_help(const char *arg)
{
	return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (is_help(argv[i]))
			return 1;
	return 0;
}

static const struct cli_cmd *sub_named(const struct cli_cmd *node, const char *word)
{
	for (const struct cli_cmd *const *s = node->subs; s && *s; s++)
		if (!strcmp(last_word((*s)->path), word))
			return *s;
	return NULL;
}

/* node has children but argv names none of them: a usage error. */
static int no_such_sub(const struct cli_cmd *node, const char *word)
{
	const char *sp = *node->path ? " " : "";

	current = node;
	if (!word)
		return cli_say(CLI_USAGE, "missing command%s%s%s", sp, *sp ? "after " : "",
		               node->path);
	if (word[0] == '-')
		return cli_say(CLI_USAGE, "unknown option '%s'", word);
	return cli_say(CLI_USAGE, "unknown command '%s%s%s'", node->path, sp, word);
}

const struct cli_cmd *cli_find(const struct cli_cmd *node, int argc, char **argv, int *depth,
                               unsigned *flags, int *rc)
{
	const struct cli_cmd *next;
	int i = 0;

	*flags = node->flags;
	while (node->subs && i + 1 < argc && (next = sub_named(node, argv[i + 1]))) {
		node = next;
		*flags |= node->flags;
		i++;
	}
	/* "posthorn queue help" asks for help as "posthorn queue --help" does */
	if (wants_help(argc - i, argv + i) ||
	    (node->subs && i + 1 < argc && !strcmp(argv[i + 1], "help"))) {
		cli_usage(stdout, node);
		*rc = fflush(stdout) == 0 ? CLI_OK : CLI_RUNTIME;
		return NULL;
	}
	if (node->subs) {
		*rc = no_such_sub(node, i + 1 < argc ? argv[i + 1] : NULL);
		return NULL;
	}
	*depth = i;
	return node;
}

int cli_run(const struct cli_cmd *leaf, int argc, char **argv, const struct conf *c)
{
	current = leaf;
	return leaf->run(argc, argv, c);
}

int cli_dispatch(const struct cli_cmd *node, int argc, char **argv, const struct conf *c)
{
	int depth = 0, rc = CLI_USAGE;
	unsigned flags;
	const struct cli_cmd *leaf = cli_find(node, argc, argv, &depth, &flags, &rc);

	return leaf ? cli_run(leaf, argc - depth, argv + depth, c) : rc;
}

int cli_say(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("posthorn: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (code == CLI_USAGE && current)
		cli_usage(stderr, current);
	return code;
}
