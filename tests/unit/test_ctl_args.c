/*
 * test_ctl_args: the arguments of the control socket's queue requests
 * (ctl_args.c, PURE): "all", "domain D", queue IDs; everything else is
 * refused with a reason, and what parses formats back to itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/ctl.h"
#include "util/util.h"

static void roundtrip(const char *s)
{
	struct ctl_args a;
	char *why = NULL;
	struct buf b;

	assert_int_equal(ctl_args_parse(s, &a, &why), 0);
	buf_init(&b);
	ctl_args_format(&a, &b);
	assert_string_equal(b.data, s);
	buf_free(&b);
	ctl_args_free(&a);
}

static void refused(const char *s, const char *reason)
{
	struct ctl_args a;
	char *why = NULL;

	assert_int_equal(ctl_args_parse(s, &a, &why), -1);
	assert_non_null(strstr(why, reason));
	assert_int_equal(a.n_ids, 0);
	assert_null(a.ids);
	free(why);
}

static void test_forms(void **state)
{
	struct ctl_args a;
	char *why = NULL;

	assert_int_equal(ctl_args_parse("all", &a, &why), 0);
	assert_true(a.all);
	ctl_args_free(&a);
	assert_int_equal(ctl_args_parse("domain Example.COM", &a, &why), 0);
	assert_string_equal(a.domain, "Example.COM");
	ctl_args_free(&a);
	assert_int_equal(ctl_args_parse("1L94W0FC000061K5 1L94W0FD000071K5", &a, &why), 0);
	assert_int_equal(a.n_ids, 2);
	assert_string_equal(a.ids[1], "1L94W0FD000071K5");
	ctl_args_free(&a);
	roundtrip("all");
	roundtrip("domain [127.0.0.1]");
	roundtrip("1L94W0FC000061K5");
	roundtrip("1L94W0FC000061K5 1L94W0FD000071K5");
}

static void test_refused(void **state)
{
	struct buf b;
	size_t i;

	refused("", "nothing named");
	refused("domain ", "not a domain");
	refused("domain a b", "not a domain");
	refused("domain \x01", "not a domain");
	refused("1L94W0FC000061K", "queue IDs");  /* 15 characters */
	refused("1L94W0FC000061KI", "queue IDs"); /* I is not in the alphabet */
	refused("1L94W0FC000061K5  1L94W0FD000071K5", "queue IDs");
	refused("1L94W0FC000061K5 ", "space at the end");
	refused("ALL", "queue IDs");
	buf_init(&b);
	for (i = 0; i <= CTL_IDS_MAX; i++)
		buf_printf(&b, "%s1L94W0FC000061K5", i ? " " : "");
	refused(b.data, "too many");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
