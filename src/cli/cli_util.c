/*
 * cli_util: what the admin subcommands share.
 */
#include <stdarg.h>
#include <stdio.h>

#include "cli/cli.h"

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
