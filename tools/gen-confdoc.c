/*
 * gen-confdoc: prints the configuration reference (markdown) or the example
 * configuration file, both generated from the key table in src/conf/conf.c.
 * `make docs` writes them to docs/config.md and posthorn.conf.example;
 * `make check-docs` fails when the files in the tree are stale.
 */
#include <stdio.h>
#include <string.h>

#include "conf/conf.h"

int main(int argc, char **argv)
{
	enum conf_doc_format fmt;

	if (argc == 2 && strcmp(argv[1], "markdown") == 0) {
		fmt = CONF_DOC_MARKDOWN;
	} else if (argc == 2 && strcmp(argv[1], "example") == 0) {
		fmt = CONF_DOC_EXAMPLE;
	} else {
		fprintf(stderr, "usage: gen-confdoc markdown|example\n");
		return 2;
	}
	conf_write_doc(fmt, stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("gen-confdoc: stdout");
		return 1;
	}
	return 0;
}
