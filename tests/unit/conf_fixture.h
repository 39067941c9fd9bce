/*
 * A configuration for a unit test: the text written to a file (conf_load()
 * reads files) and loaded; a load error fails the test with the loader's
 * messages. Included after cmocka.h by test_deliv.c, test_sched_route.c and
 * sched_fixture.h.
 */
#ifndef POSTHORN_TEST_CONF_FIXTURE_H
#define POSTHORN_TEST_CONF_FIXTURE_H

#include <stdio.h>

#include "conf/conf.h"

static inline struct conf *conf_from_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	char *errors = NULL;
	struct conf *c;

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	c = conf_load(path, &errors);
	if (!c)
		fail_msg("conf: %s", errors);
	return c;
}

#endif
